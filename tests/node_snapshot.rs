//! Raft snapshots in the training node, on real QUIC loopback sockets with real redb files and
//! blob folders: the log is compacted every `train.snapshot_every` entries and stays bounded
//! (in `raft.redb` too), blobs of old rounds are collected, a restarted node restores its own
//! snapshot, and a node stopped while the others compacted past it catches up from the
//! leader's snapshot (jumping to the params the snapshot names) instead of replaying rounds.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::{all_trained, eventually, init_logs, round_log, start_nodes, training, training_node};
use hashgrad::api::{ConsensusStatus, TrainingStatus};
use hashgrad::config::TrainSection;
use hashgrad::net::NodeId;
use hashgrad::node::consensus::RAFT_FILE;
use hashgrad::node::{Node, NodeHandle};
use hashgrad::raft::{RedbStorage, Storage};

const SNAPSHOT_EVERY: u64 = 16;
/// Entries the log may hold: a snapshot is staged `SNAPSHOT_EVERY` entries after the last one
/// and taken a quarter of that later; a few more while the params blob is stored.
const LOG_BOUND: u64 = SNAPSHOT_EVERY + SNAPSHOT_EVERY / 4 + 8;

fn train_section(voters: &[NodeId], rounds: u64) -> TrainSection {
    TrainSection {
        voters: voters.to_vec(),
        tick_ms: 20,
        seed: 3,
        consistency: hashgrad::cluster::ConsistencyLevel::Quorum,
        round_deadline_ms: 1000,
        rounds: Some(rounds),
        eval_every: 10,
        snapshot_every: SNAPSHOT_EVERY,
        ..TrainSection::default()
    }
}

fn consensus(node: &NodeHandle) -> Option<ConsensusStatus> {
    node.status().consensus
}

fn blob_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_stays_bounded_and_a_restarted_node_restores_its_own_snapshot() {
    init_logs();
    const ROUNDS: u64 = 120;
    // A cluster of one: no voters listed, the node is its own only worker.
    let make = || train_section(&[], ROUNDS);
    let (dirs, nodes) = start_nodes(1, |dir, peers, _| training_node(dir, peers, make())).await;
    let node = nodes.into_iter().next().expect("node");

    // Sample the log while training runs: it never holds more than a snapshot's worth.
    let mut longest = 0;
    let mut floors = Vec::new();
    let done = eventually(120, "the node to train every round", || {
        let status = consensus(&node);
        let trained = training(&node);
        if let Some(status) = &status {
            longest = longest.max(status.log_entries);
            if floors.last() != Some(&status.snapshot_index) {
                floors.push(status.snapshot_index);
            }
        }
        async move { trained.filter(|t| t.trained_round == ROUNDS).zip(status) }
    })
    .await;
    let (trained, status) = done;
    assert!(
        longest <= LOG_BOUND,
        "the log grew to {longest} entries (bound {LOG_BOUND})"
    );
    assert!(
        floors.len() >= 4,
        "the snapshot index advanced only through {floors:?}"
    );
    assert!(status.snapshots_taken >= 4, "{status:?}");
    assert_eq!(status.snapshots_installed, 0, "{status:?}");
    // Old rounds' blobs are collected: far fewer than one reduced gradient per round remain.
    let blobs = blob_count(dirs[0].path());
    assert!(
        (blobs as u64) < ROUNDS / 2,
        "{blobs} blobs after {ROUNDS} rounds"
    );
    let log_before = round_log(&node).await;
    assert_eq!(log_before.len() as u64, ROUNDS);
    node.shutdown().await.expect("shutdown");

    // What is on disk: a snapshot well into the run and a short log after it.
    {
        let stored = RedbStorage::open(dirs[0].path().join(RAFT_FILE))
            .expect("open raft.redb")
            .recover()
            .expect("recover");
        assert!(
            stored.snapshot.meta.index > ROUNDS / 2,
            "stored snapshot at {}",
            stored.snapshot.meta.index
        );
        assert!(
            stored.entries.len() as u64 <= LOG_BOUND,
            "{} entries stored",
            stored.entries.len()
        );
    }

    // Restarted from its data dir, the node restores the stored snapshot: the trainer jumps
    // to the params it names (from the node's own blob) and replays only the tail.
    let node = Node::start(training_node(dirs[0].path(), &[], make()))
        .await
        .expect("restart");
    let again = eventually(60, "the restarted node back at the last round", || async {
        training(&node).filter(|t| t.trained_round == ROUNDS)
    })
    .await;
    assert_eq!(again.params_hash, trained.params_hash);
    assert!(
        again.restored_round > ROUNDS / 2,
        "the trainer did not start from the snapshot: {again:?}"
    );
    assert_eq!(round_log(&node).await, log_before);
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_past_a_compaction_catches_up_from_the_leaders_snapshot() {
    init_logs();
    const ROUNDS: u64 = 100;
    let (dirs, nodes) = start_nodes(3, |dir, peers, keys| {
        training_node(dir, peers, train_section(keys, ROUNDS))
    })
    .await;
    let voters: Vec<NodeId> = nodes.iter().map(NodeHandle::id).collect();
    let mut nodes: Vec<Option<NodeHandle>> = nodes.into_iter().map(Some).collect();

    // Stop a follower once training is under way.
    let victim = eventually(60, "ten rounds under a leader", || async {
        let all: Vec<TrainingStatus> = nodes
            .iter()
            .flatten()
            .map(training)
            .collect::<Option<_>>()?;
        let leader = all.iter().position(|t| t.role == "leader")?;
        (all[leader].round >= 10).then_some((leader + 1) % 3)
    })
    .await;
    let stopped = nodes[victim].take().expect("victim");
    let stopped_at = consensus(&stopped).expect("status").commit_index;
    let stopped_round = training(&stopped).expect("status").trained_round;
    stopped.shutdown().await.expect("stop");

    // The others compact their logs past everything the stopped node holds.
    let rest: Vec<&NodeHandle> = nodes.iter().flatten().collect();
    eventually(
        60,
        "both survivors to compact past the stopped node",
        || async {
            rest.iter()
                .all(|n| {
                    consensus(n).is_some_and(|c| c.snapshot_index > stopped_at + SNAPSHOT_EVERY)
                })
                .then_some(())
        },
    )
    .await;
    let peers: Vec<SocketAddr> = rest.iter().map(|n| n.listen_addr()).collect();
    drop(rest);
    let restarted = Node::start(training_node(
        dirs[victim].path(),
        &peers,
        train_section(&voters, ROUNDS),
    ))
    .await
    .expect("restart");
    nodes[victim] = Some(restarted);

    let all: Vec<&NodeHandle> = nodes.iter().flatten().collect();
    let finals = all_trained(
        all.iter().copied(),
        ROUNDS,
        120,
        "all three at the last round",
    )
    .await;
    // It caught up through a snapshot from the leader: Raft installed one, the log starts
    // after the rounds it missed, and its trainer started from the snapshot's params.
    let status = consensus(all[victim]).expect("status");
    assert!(status.snapshots_installed >= 1, "{status:?}");
    assert!(status.snapshot_index > stopped_at, "{status:?}");
    assert!(
        finals[victim].restored_round > stopped_round,
        "the trainer replayed rounds instead of jumping: {:?}",
        finals[victim]
    );
    for t in &finals {
        assert_eq!(t.params_hash, finals[0].params_hash, "{finals:?}");
    }
    // One round log, gap-free and identical on every node.
    let logs = [
        round_log(all[0]).await,
        round_log(all[1]).await,
        round_log(all[2]).await,
    ];
    assert_eq!(logs[0].len() as u64, ROUNDS);
    for (i, (round, parent, _, _)) in logs[0].iter().enumerate() {
        assert_eq!(*round, i as u64 + 1);
        if i > 0 {
            assert_eq!(parent, &logs[0][i - 1].2, "round {round}");
        }
    }
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
    drop(all);
    for node in nodes.into_iter().flatten() {
        node.shutdown().await.expect("shutdown");
    }
}

/// Not a check: the figures for docs/perf.md. A one-node cluster trains `ROUNDS` rounds with
/// and without compaction, then restarts from its data dir; printed: the time until its
/// trainer is back at the last round (replaying every round from local blobs, or jumping to
/// its snapshot's params and replaying the tail), best of three each.
/// `cargo test --test node_snapshot -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for docs/perf.md, not a check: scripts/measurements.sh snapshot runs it"]
async fn restart_catch_up_time_with_and_without_snapshots() {
    const ROUNDS: u64 = 600;
    let mut best = [f64::MAX; 2];
    for _ in 0..3 {
        for (slot, every) in [0, 50].into_iter().enumerate() {
            let make = || TrainSection {
                snapshot_every: every,
                eval_every: ROUNDS,
                ..train_section(&[], ROUNDS)
            };
            let (dirs, nodes) =
                start_nodes(1, |dir, peers, _| training_node(dir, peers, make())).await;
            let node = nodes.into_iter().next().expect("node");
            eventually(300, "every round trained", || async {
                training(&node).filter(|t| t.trained_round == ROUNDS)
            })
            .await;
            node.shutdown().await.expect("shutdown");
            let started = std::time::Instant::now();
            let node = Node::start(training_node(dirs[0].path(), &[], make()))
                .await
                .expect("restart");
            eventually(300, "back at the last round", || async {
                training(&node).filter(|t| t.trained_round == ROUNDS)
            })
            .await;
            best[slot] = best[slot].min(started.elapsed().as_secs_f64());
            node.shutdown().await.expect("shutdown");
        }
    }
    println!(
        "restart catch-up after {ROUNDS} rounds: full replay {:.3} s, from a snapshot (every 50) \
         {:.3} s, ratio {:.1}x",
        best[0],
        best[1],
        best[0] / best[1]
    );
}
