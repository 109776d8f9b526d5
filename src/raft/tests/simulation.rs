//! The seeded simulator in the normal suite: many short runs with every fault on.

use crate::raft::sim::{self, SimConfig};

/// Seeds per cluster size in the normal suite; `HASHGRAD_RAFT_SEEDS` overrides.
fn seed_count() -> u64 {
    std::env::var("HASHGRAD_RAFT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

fn run_seeds(nodes: usize, base: u64, steps: u64) {
    let mut elections = 0;
    let mut commits = 0;
    let mut crashes = 0;
    let started = std::time::Instant::now();
    for seed in base..base + seed_count() {
        match sim::run(&SimConfig::new(seed, nodes, steps)) {
            Ok(report) => {
                elections += report.elections;
                commits += report.max_commit;
                crashes += report.crashes;
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    eprintln!(
        "{} seeds x {nodes} nodes: {elections} elections, {commits} commits, {crashes} crashes in {:?}",
        seed_count(),
        started.elapsed()
    );
    // The runs must actually exercise the protocol.
    assert!(elections >= seed_count(), "too few elections: {elections}");
    assert!(commits >= seed_count() * 5, "too few commits: {commits}");
}

#[test]
fn simulator_three_nodes_many_seeds() {
    run_seeds(3, 0, 300);
}

#[test]
fn simulator_five_nodes_many_seeds() {
    run_seeds(5, 1_000_000, 300);
}

#[test]
fn simulator_is_deterministic() {
    let a = sim::run(&SimConfig::new(42, 5, 200))
        .map_err(|f| f.to_string())
        .unwrap();
    let b = sim::run(&SimConfig::new(42, 5, 200))
        .map_err(|f| f.to_string())
        .unwrap();
    assert_eq!(
        (a.ticks, a.messages, a.max_commit, a.elections),
        (b.ticks, b.messages, b.max_commit, b.elections)
    );
}

#[test]
fn model_check_three_nodes_two_elections_with_loss() {
    let started = std::time::Instant::now();
    let report =
        crate::raft::sim::model_check::run(&crate::raft::sim::model_check::ModelConfig::ci())
            .unwrap_or_else(|v| panic!("model check: {v}"));
    eprintln!("model check: {report:?} in {:?}", started.elapsed());
    assert!(report.max_elections >= 2, "{report:?}");
    assert!(report.losses_on_deepest >= 1, "{report:?}");
    assert!(report.states > 10_000, "{report:?}");
}
