//! The consensus service across three in-process nodes on real QUIC loopback sockets with real
//! redb files: one leader is elected, a proposal (a config write of the cluster's state
//! machine) commits on all three, a killed leader is replaced, and a node restarted from its
//! data dir catches up. A lone node bootstraps itself.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::eventually;
use hashgrad::cluster::{Command, RequestId};
use hashgrad::codec::Encode;
use hashgrad::config::{NodeConfig, TrainSection};
use hashgrad::net::{Identity, NodeId};
use hashgrad::node::consensus::ConsensusError;
use hashgrad::node::{Node, NodeHandle};
use hashgrad::views::ReadMode;

fn config(dir: &Path, listen: SocketAddr, peers: &[SocketAddr], voters: &[NodeId]) -> NodeConfig {
    let mut config = NodeConfig {
        train: Some(TrainSection {
            voters: voters.to_vec(),
            tick_ms: 20,
            election_ticks: 10,
            heartbeat_ticks: 2,
            // Consensus only: the leader never announces a training round.
            rounds: Some(0),
            ..TrainSection::default()
        }),
        ..NodeConfig::loopback(dir, peers)
    };
    config.net.listen = listen;
    config
}

/// The index of the one node all of `nodes` agree leads, once they do.
fn agreed_leader(nodes: &[&NodeHandle]) -> Option<usize> {
    // `None` until every node's consensus service has published its first status.
    let statuses: Vec<_> = nodes
        .iter()
        .map(|n| n.status().consensus)
        .collect::<Option<_>>()?;
    let leaders: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| s.role == "leader")
        .map(|(i, _)| i)
        .collect();
    let [leader] = leaders[..] else {
        return None;
    };
    let id = nodes[leader].id().to_string();
    let term = statuses[leader].term;
    statuses
        .iter()
        .all(|s| s.leader.as_deref() == Some(id.as_str()) && s.term == term)
        .then_some(leader)
}

/// A config write of `user.KEY = VALUE` as the log carries it.
fn put(key: &str, value: &str) -> Vec<u8> {
    Command::ConfigPut {
        request: RequestId {
            client: rand::random(),
            seq: 1,
        },
        key: format!("user.{key}"),
        value: value.into(),
    }
    .to_bytes()
}

/// Proposes `command` at whichever node leads, retrying while leadership moves.
async fn propose(nodes: &[&NodeHandle], command: &[u8]) -> u64 {
    eventually(10, "a proposal to commit", || async {
        let leader = agreed_leader(nodes)?;
        let consensus = nodes[leader].consensus().expect("consensus");
        match consensus.propose(command.to_vec()).await {
            Ok(index) => Some(index),
            Err(ConsensusError::NotLeader { .. } | ConsensusError::Dropped { .. }) => None,
            Err(other) => panic!("proposal failed: {other}"),
        }
    })
    .await
}

/// The `user.*` keys `node` has applied and its last applied index, read with `consistency`.
async fn applied(node: &NodeHandle, consistency: ReadMode) -> Option<(Vec<(String, String)>, u64)> {
    let consensus = node.consensus().expect("consensus");
    consensus
        .read(consistency, |machine| {
            let state = machine.state();
            let user = state
                .config()
                .entries()
                .into_iter()
                .filter(|(k, _)| k.starts_with("user."))
                .collect();
            (user, state.last_applied())
        })
        .await
        .ok()
}

async fn has_applied(node: &NodeHandle, entry: &(u64, (String, String))) -> Option<()> {
    let (user, last) = applied(node, ReadMode::Local).await?;
    (user.contains(&entry.1) && last >= entry.0).then_some(())
}

fn kv(key: &str, value: &str) -> (String, String) {
    (format!("user.{key}"), value.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_commit_fail_over_and_catch_up() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let voters: Vec<NodeId> = dirs
        .iter()
        .map(|d| Identity::load_or_create(d.path()).expect("key").id())
        .collect();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut nodes: Vec<Option<NodeHandle>> = Vec::new();
    for dir in &dirs {
        let peers: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.listen_addr()).collect();
        let node = Node::start(config(dir.path(), any, &peers, &voters))
            .await
            .expect("start");
        nodes.push(Some(node));
    }
    let all: Vec<&NodeHandle> = nodes.iter().flatten().collect();

    // One leader, known to all three.
    let leader = eventually(20, "one agreed leader", || async { agreed_leader(&all) }).await;
    let first_term = all[leader].status().consensus.expect("status").term;

    // A proposal commits on all three, and a follower's linearizable read sees it.
    let index = propose(&all, &put("first", "1")).await;
    let first = (index, kv("first", "1"));
    for node in &all {
        eventually(10, "the entry applied everywhere", || {
            has_applied(node, &first)
        })
        .await;
    }
    let follower = (leader + 1) % 3;
    let seen = applied(all[follower], ReadMode::Linearizable)
        .await
        .expect("linearizable read on a follower");
    assert!(seen.0.contains(&first.1), "{seen:?}");
    let leased = applied(all[leader], ReadMode::Lease)
        .await
        .expect("lease read on the leader");
    assert!(leased.0.contains(&first.1), "{leased:?}");

    // Kill the leader: the other two elect a new one in a later term and keep committing.
    let old_listen = all[leader].listen_addr();
    drop(all);
    nodes[leader]
        .take()
        .expect("leader")
        .shutdown()
        .await
        .expect("clean stop");
    let rest: Vec<&NodeHandle> = nodes.iter().flatten().collect();
    let new_leader = eventually(20, "a new leader", || async { agreed_leader(&rest) }).await;
    let new_term = rest[new_leader].status().consensus.expect("status").term;
    assert!(new_term > first_term, "term {new_term} after {first_term}");
    let index = propose(&rest, &put("second", "2")).await;
    let second = (index, kv("second", "2"));
    for node in &rest {
        eventually(10, "the second entry applied", || {
            has_applied(node, &second)
        })
        .await;
    }
    drop(rest);

    // Restart the old leader from its data dir: it catches up on what it missed, in order.
    let peers: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.listen_addr()).collect();
    let restarted = Node::start(config(dirs[leader].path(), old_listen, &peers, &voters))
        .await
        .expect("restart");
    eventually(20, "the restarted node to catch up", || {
        has_applied(&restarted, &second)
    })
    .await;
    let (user, last) = applied(&restarted, ReadMode::Local)
        .await
        .expect("local read");
    assert_eq!(user, vec![first.1.clone(), second.1.clone()]);
    assert!(
        last >= second.0,
        "applied {last}, second entry at {}",
        second.0
    );
    nodes[leader] = Some(restarted);
    let all: Vec<&NodeHandle> = nodes.iter().flatten().collect();
    eventually(20, "all three to agree on a leader again", || async {
        agreed_leader(&all)
    })
    .await;
    drop(all);

    for node in nodes.into_iter().flatten() {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn a_lone_node_bootstraps_and_commits() {
    let dir = tempfile::tempdir().expect("dir");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let node = Node::start(config(dir.path(), any, &[], &[]))
        .await
        .expect("start");
    let leader = eventually(10, "the lone node to lead", || async {
        agreed_leader(&[&node])
    })
    .await;
    assert_eq!(leader, 0);
    let index = propose(&[&node], &put("alone", "1")).await;
    let (user, last) = applied(&node, ReadMode::Linearizable).await.expect("read");
    assert_eq!(user, vec![kv("alone", "1")]);
    assert!(last >= index);
    let metrics = node.metrics().encode();
    assert!(metrics.contains("hashgrad_raft_leader 1"), "{metrics}");
    node.shutdown().await.expect("shutdown");

    // A restart replays the log into the state machine.
    let node = Node::start(config(dir.path(), any, &[], &[]))
        .await
        .expect("restart");
    let (user, _) = eventually(10, "the log replayed", || async {
        applied(&node, ReadMode::Linearizable)
            .await
            .filter(|(user, _)| !user.is_empty())
    })
    .await;
    assert_eq!(user, vec![kv("alone", "1")]);
    node.shutdown().await.expect("shutdown");
}
