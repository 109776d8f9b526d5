//! The nodes' event logs, end to end: three in-process nodes (real QUIC, real redb, the real
//! log writer) mine and train with `[events]` on, one of them is stopped and restarted, and the
//! logs they wrote must hold happened-before (`events::check`) and record every kind of event
//! the report draws: messages of each service, Raft roles, votes and commits, blocks with their
//! parents, rounds with the leader's time split, evaluations, config reads and writes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::{Api, eventually, http, init_logs};
use hashgrad::config::{EventsSection, HttpSection, MiningSection, NodeConfig, TrainSection};
use hashgrad::events::{EVENTS_DIR, EventAt, EventKind, LOG_FILE, check, parse_log};
use hashgrad::net::{Identity, NodeId};
use hashgrad::node::{Node, NodeHandle};

fn config(dir: &Path, peers: &[SocketAddr], voters: &[NodeId]) -> NodeConfig {
    NodeConfig {
        http: HttpSection {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        },
        mining: MiningSection {
            enabled: true,
            backend: hashgrad::gpu::DeviceChoice::Cpu,
            threads: 1,
            pace_ms: 100,
        },
        train: Some(TrainSection {
            voters: voters.to_vec(),
            tick_ms: 20,
            round_deadline_ms: 3000,
            eval_every: 5,
            ..TrainSection::default()
        }),
        events: EventsSection::default(),
        ..NodeConfig::loopback(dir, peers)
    }
}

fn read_log(data_dir: &Path) -> Vec<EventAt> {
    let path = data_dir.join(EVENTS_DIR).join(LOG_FILE);
    let text = std::fs::read_to_string(&path).expect("event log");
    parse_log(&text, &path.display().to_string()).expect("every line an event")
}

fn committed(node: &NodeHandle) -> u64 {
    node.status().training.map_or(0, |t| t.trained_round)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_log_a_consistent_history_of_everything_they_do() {
    init_logs();
    let root = tempfile::tempdir().expect("dir");
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| root.path().join(format!("n{i}")).join("data"))
        .collect();
    let keys: Vec<NodeId> = dirs
        .iter()
        .map(|d| Identity::load_or_create(d).expect("key").id())
        .collect();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for dir in &dirs {
        let peers: Vec<SocketAddr> = nodes.iter().map(NodeHandle::listen_addr).collect();
        let node = Node::start(config(dir, &peers, &keys))
            .await
            .expect("start");
        nodes.push(node);
    }
    eventually(60, "ten rounds on every node", || async {
        nodes.iter().all(|n| committed(n) >= 10).then_some(())
    })
    .await;

    // A config write and read on a follower-or-leader alike.
    let api = Api::of(&nodes[1]);
    let writer = api.clone();
    let (code, body) = tokio::task::spawn_blocking(move || {
        writer
            .call("PUT", "/config/learning_rate", "0.05")
            .expect("answer")
    })
    .await
    .expect("task");
    assert_eq!(code, 200, "{body}");
    let (code, _) = tokio::task::spawn_blocking(move || {
        http(api.addr, "GET", "/config/learning_rate", "").expect("answer")
    })
    .await
    .expect("task");
    assert_eq!(code, 200);

    // Stop node 0 and start it again on the same data dir: its log goes on.
    let peers: Vec<SocketAddr> = nodes[1..].iter().map(NodeHandle::listen_addr).collect();
    nodes.remove(0).shutdown().await.expect("shutdown");
    nodes.insert(
        0,
        Node::start(config(&dirs[0], &peers, &keys))
            .await
            .expect("restart"),
    );
    let target = committed(&nodes[1]) + 5;
    eventually(
        60,
        "five more rounds and a hash rate on every node",
        || async {
            nodes
                .iter()
                .all(|n| committed(n) >= target && n.status().hash_rate > 0.0)
                .then_some(())
        },
    )
    .await;
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }

    let logs: Vec<Vec<EventAt>> = dirs.iter().map(|d| read_log(d)).collect();
    let violations = check(&logs);
    assert!(violations.is_empty(), "{violations:#?}");

    let names: Vec<String> = keys.iter().map(NodeId::short).collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut messages: BTreeSet<String> = BTreeSet::new();
    let mut timed_rounds = 0;
    for (log, name) in logs.iter().zip(&names) {
        for at in log {
            assert_eq!(&at.event.node, name, "{}", at.origin);
            let kind = match &at.event.kind {
                EventKind::NodeStarted => "node_started",
                EventKind::NodeStopped => "node_stopped",
                EventKind::Sent { msg, to, .. } => {
                    assert!(names.contains(to), "{}: sent to {to}", at.origin);
                    messages.insert(msg.split('_').next().unwrap_or_default().to_string());
                    "sent"
                }
                EventKind::Received { from, .. } => {
                    assert!(names.contains(from), "{}", at.origin);
                    "received"
                }
                EventKind::RaftRole { .. } => "raft_role",
                EventKind::RaftVote { granted: true, .. } => "raft_vote",
                EventKind::RaftCommit { .. } => "raft_commit",
                EventKind::BlockFound { parent, .. } => {
                    assert_eq!(parent.len(), 64, "{}", at.origin);
                    "block_found"
                }
                EventKind::BlockReceived { .. } => "block_received",
                EventKind::RoundAnnounced { .. } => "round_announced",
                EventKind::RoundCommitted { loss, timings, .. } => {
                    assert!(loss.is_some_and(f64::is_finite), "{}", at.origin);
                    if timings.is_some() {
                        timed_rounds += 1;
                    }
                    "round_committed"
                }
                EventKind::RoundEvaluated { accuracy, .. } => {
                    assert!((0.0..=1.0).contains(accuracy), "{}", at.origin);
                    "round_evaluated"
                }
                EventKind::HashRate { .. } => "hash_rate",
                EventKind::ConfigRead { .. } => "config_read",
                EventKind::ConfigWrite { .. } => "config_write",
                _ => "other",
            };
            *kinds.entry(kind).or_default() += 1;
        }
    }
    for kind in [
        "sent",
        "received",
        "raft_role",
        "raft_vote",
        "raft_commit",
        "block_found",
        "block_received",
        "round_announced",
        "round_committed",
        "round_evaluated",
        "hash_rate",
        "config_read",
        "config_write",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} event in {kinds:?}");
    }
    assert!(
        timed_rounds >= 10,
        "{timed_rounds} rounds with the leader's time split"
    );
    for family in ["block", "get", "raft", "training"] {
        assert!(
            messages.contains(family),
            "no {family} message in {messages:?}"
        );
    }
    // The restarted node started twice and stopped twice, in one log.
    let restarts = logs[0]
        .iter()
        .filter(|at| matches!(at.event.kind, EventKind::NodeStarted))
        .count();
    assert_eq!(restarts, 2);
}
