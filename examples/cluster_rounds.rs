//! Training across nodes, measured: committed rounds per second for clusters of 1, 2, 3 and 5
//! in-process nodes on real QUIC loopback sockets with real redb files (digits model, level
//! `all`, mining off so only training runs), each next to the single-process `hashgrad train`
//! rate with as many workers in the same run; then failover: the leader of a 3-node cluster
//! is stopped N times and the time until the survivors commit the next round is recorded.
//!
//! `cargo run --release --example cluster_rounds -- [SECONDS_PER_SIZE] [KILLS]`
//! (defaults 5 and 10).
//!
//! `cargo run --release --example cluster_rounds -- events [SECONDS] [TRIALS]`: the cost of the
//! nodes' event logs instead — 3-node clusters with `[events]` off and on, alternating, the
//! rounds/s of each trial and the on/off ratio.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hashgrad::api::TrainingStatus;
use hashgrad::config::{NodeConfig, TrainSection};
use hashgrad::net::{Identity, NodeId};
use hashgrad::node::{Node, NodeHandle};
use hashgrad::train::aggregate::Reducer;
use hashgrad::train::{Dataset, Simulation, TrainConfig};

/// Whether the clusters started next keep event logs.
static EVENTS: AtomicBool = AtomicBool::new(false);

fn config(dir: &Path, peers: &[SocketAddr], voters: &[NodeId], consistency: &str) -> NodeConfig {
    let loopback = NodeConfig::loopback(dir, peers);
    NodeConfig {
        events: hashgrad::config::EventsSection {
            enabled: EVENTS.load(Ordering::Relaxed),
            ..loopback.events.clone()
        },
        train: Some(TrainSection {
            voters: voters.to_vec(),
            tick_ms: 20,
            consistency: consistency.parse().expect("consistency level"),
            round_deadline_ms: 1000,
            eval_every: 1_000_000,
            ..TrainSection::default()
        }),
        ..loopback
    }
}

fn training(node: &NodeHandle) -> Option<TrainingStatus> {
    node.status().training
}

fn committed(nodes: &[Option<NodeHandle>]) -> u64 {
    nodes
        .iter()
        .flatten()
        .filter_map(training)
        .map(|t| t.round)
        .max()
        .unwrap_or(0)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn cluster(
    size: usize,
    consistency: &str,
) -> (Vec<tempfile::TempDir>, Vec<NodeId>, Vec<Option<NodeHandle>>) {
    let dirs: Vec<tempfile::TempDir> = (0..size)
        .map(|_| tempfile::tempdir().expect("dir"))
        .collect();
    let voters: Vec<NodeId> = dirs
        .iter()
        .map(|d| Identity::load_or_create(d.path()).expect("key").id())
        .collect();
    let mut nodes: Vec<Option<NodeHandle>> = Vec::new();
    for dir in &dirs {
        let peers: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.listen_addr()).collect();
        let node = Node::start(config(dir.path(), &peers, &voters, consistency))
            .await
            .expect("start");
        nodes.push(Some(node));
    }
    (dirs, voters, nodes)
}

async fn stop(nodes: Vec<Option<NodeHandle>>) {
    for node in nodes.into_iter().flatten() {
        node.shutdown().await.expect("shutdown");
    }
}

/// Rounds per second of `hashgrad train` with `workers` workers in one process.
fn single_process_rate(workers: usize, seconds: f64) -> f64 {
    let config = TrainConfig {
        workers,
        ..TrainConfig::default()
    };
    let data = Dataset::digits().expect("digits");
    let mut simulation = Simulation::new(&config, &data, Reducer::Cpu).expect("simulation");
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        simulation.run_round().expect("round");
        rounds += 1;
    }
    rounds as f64 / started.elapsed().as_secs_f64()
}

async fn rounds_per_second(size: usize, seconds: f64) -> f64 {
    let (_dirs, _voters, nodes) = cluster(size, "all").await;
    wait_for("the first rounds", || committed(&nodes) >= 5).await;
    let (start_round, started) = (committed(&nodes), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let rate = (committed(&nodes) - start_round) as f64 / started.elapsed().as_secs_f64();
    stop(nodes).await;
    rate
}

async fn failover(kills: usize) -> Vec<Duration> {
    let (dirs, voters, mut nodes) = cluster(3, "quorum").await;
    let mut times = Vec::new();
    for _ in 0..kills {
        wait_for("a leader with progress", || {
            nodes
                .iter()
                .flatten()
                .any(|n| training(n).is_some_and(|t| t.role == "leader" && t.round >= 3))
        })
        .await;
        let Some(victim) = nodes.iter().position(|n| {
            n.as_ref()
                .and_then(training)
                .is_some_and(|t| t.role == "leader")
        }) else {
            continue;
        };
        let last = committed(&nodes);
        let leader = nodes[victim].take().expect("leader");
        let stopped = Instant::now();
        leader.shutdown().await.expect("stop");
        wait_for("the next round after the kill", || committed(&nodes) > last).await;
        times.push(stopped.elapsed());
        let peers: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.listen_addr()).collect();
        let restarted = Node::start(config(dirs[victim].path(), &peers, &voters, "quorum"))
            .await
            .expect("restart");
        nodes[victim] = Some(restarted);
        let all_back = committed(&nodes);
        wait_for("the restarted node to catch up", || {
            nodes
                .iter()
                .flatten()
                .all(|n| training(n).is_some_and(|t| t.trained_round >= all_back))
        })
        .await;
    }
    stop(nodes).await;
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().is_some_and(|a| a == "events") {
        args.next();
        let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
        let trials: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
        events_cost(seconds, trials).await;
        return;
    }
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let kills: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    println!(
        "| nodes | cluster rounds/s | `hashgrad train` rounds/s, same workers | cluster / single process |"
    );
    println!("| ---: | ---: | ---: | ---: |");
    for size in [1, 2, 3, 5] {
        let cluster = rounds_per_second(size, seconds).await;
        let single = single_process_rate(size, seconds.min(2.0));
        println!(
            "| {size} | {cluster:.1} | {single:.1} | {:.3} |",
            cluster / single
        );
    }
    let mut times = failover(kills).await;
    times.sort();
    println!(
        "failover over {} kills of the leader (3 nodes, quorum): next round committed after p50 {:?}, p90 {:?}, max {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        times.last().copied().unwrap_or_default()
    );
}

/// Rounds/s of 3-node clusters with event logs off and on, alternating so both see the same
/// machine load; prints each pair and the mean ratio.
async fn events_cost(seconds: f64, trials: usize) {
    println!("| trial | events off, rounds/s | events on, rounds/s | on / off |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut ratios = Vec::new();
    for trial in 1..=trials {
        EVENTS.store(false, Ordering::Relaxed);
        let off = rounds_per_second(3, seconds).await;
        EVENTS.store(true, Ordering::Relaxed);
        let on = rounds_per_second(3, seconds).await;
        ratios.push(on / off);
        println!("| {trial} | {off:.1} | {on:.1} | {:.3} |", on / off);
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    println!("mean on / off: {mean:.3}");
}
