//! `hashgrad raft-sim`: soak mode of the deterministic Raft simulator (and the exhaustive model
//! check at a chosen depth). Prints progress and a summary; exits 1 with the seed on a
//! violation.

use std::time::Instant;

use clap::Args;

use crate::raft::sim::{self, SimConfig, model_check};

/// Arguments of `hashgrad raft-sim`.
#[derive(Debug, Args)]
pub struct RaftSimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 10_000)]
    pub seeds: u64,
    /// First seed (seeds run from here upward); with `--seeds 1` this replays one run.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cluster size: 3 or 5.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Faulty ticks per run before the network heals.
    #[arg(long, default_value_t = 300)]
    pub steps: u64,
    /// Instead of the simulator, run the exhaustive model check to this depth (CI uses 11).
    #[arg(long)]
    pub model_depth: Option<usize>,
}

/// Runs the soak.
pub fn run(args: RaftSimArgs) -> anyhow::Result<()> {
    if let Some(depth) = args.model_depth {
        if !(1..=30).contains(&depth) {
            return Err(super::usage("--model-depth must be between 1 and 30"));
        }
        let started = Instant::now();
        let config = model_check::ModelConfig {
            depth,
            ..model_check::ModelConfig::ci()
        };
        return match model_check::run(&config) {
            Ok(report) => {
                println!(
                    "model check, 3 nodes, depth {}: {} states, {} transitions, up to {} elections on a path, no violation ({:.1?})",
                    report.depth,
                    report.states,
                    report.transitions,
                    report.max_elections,
                    started.elapsed()
                );
                Ok(())
            }
            Err(v) => Err(anyhow::anyhow!("model check found a violation: {v}")),
        };
    }
    if args.nodes != 3 && args.nodes != 5 {
        return Err(super::usage(format!(
            "--nodes must be 3 or 5, not {}",
            args.nodes
        )));
    }
    if args.seeds == 0 || args.steps == 0 {
        return Err(super::usage("--seeds and --steps must be at least 1"));
    }
    let started = Instant::now();
    let (mut elections, mut commits, mut crashes, mut worst_recovery) = (0u64, 0u64, 0u64, 0u64);
    let progress_every = (args.seeds / 20).max(1);
    for (done, seed) in (args.seed..args.seed.saturating_add(args.seeds)).enumerate() {
        let config = SimConfig::new(seed, args.nodes, args.steps);
        match sim::run(&config) {
            Ok(report) => {
                elections += report.elections;
                commits += report.max_commit;
                crashes += report.crashes;
                worst_recovery = worst_recovery.max(report.recovery_ticks);
            }
            Err(failure) => {
                eprintln!("{failure}");
                return Err(anyhow::anyhow!("violation at seed {seed}"));
            }
        }
        let done = done as u64 + 1;
        if done.is_multiple_of(progress_every) && done < args.seeds {
            eprintln!(
                "  {done}/{} seeds ok ({:.1?})",
                args.seeds,
                started.elapsed()
            );
        }
    }
    println!(
        "{} seeds ({} nodes, {} steps each) ok in {:.1?}: {elections} elections, {commits} commits, \
         {crashes} crashes, slowest recovery after healing {worst_recovery} ticks",
        args.seeds,
        args.nodes,
        args.steps,
        started.elapsed()
    );
    Ok(())
}
