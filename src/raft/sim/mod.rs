//! The deterministic Raft simulator: seeded runs of an N-node cluster under message loss,
//! duplication, reordering, delay, full and partial partitions and crashes (losing whatever
//! was not persisted), with every safety invariant checked after every step and liveness
//! checked once faults heal. Also the bounded exhaustive model checker. Test support (the unit
//! tests and `hashgrad raft-sim`), never run in a node: no real I/O, no clock.

pub mod checker;
pub mod cluster;
pub mod model_check;
pub mod network;

pub use checker::{Property, Violation};
pub use cluster::{Cluster, DigestMachine, SimNode};
pub use network::{Faults, Network};

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::raft::core::Config;
use crate::raft::types::RaftId;

/// One simulator run's settings. Everything is derived from `seed`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// RNG seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Ticks of faults before healing.
    pub steps: u64,
    /// Ticks allowed after healing for a leader to appear and a proposal to commit.
    pub liveness_ticks: u64,
    /// Network faults during the faulty phase.
    pub faults: Faults,
    /// Per-tick probability of a partition change.
    pub partition_rate: f64,
    /// Per-tick probability of a crash.
    pub crash_rate: f64,
    /// Per-tick, per-crashed-node probability of a restart.
    pub restart_rate: f64,
    /// Per-tick probability of a client proposal.
    pub propose_rate: f64,
    /// Per-tick probability of a read request.
    pub read_rate: f64,
    /// Compact a node's log once this many entries are applied past its snapshot.
    pub compact_after: u64,
    /// Probability that a crash hits between `ready()` and persist.
    pub crash_in_ready: f64,
    /// Most entries per append (small values split replication into more steps).
    pub max_entries_per_message: usize,
    /// Serve reads from the leader lease (with check-quorum) instead of ReadIndex rounds.
    pub lease_reads: bool,
    /// Raft settings.
    pub pre_vote: bool,
    /// Raft settings.
    pub check_quorum: bool,
    /// Mutation switch passed to every node (unit tests only).
    #[cfg(test)]
    pub unsafe_disable_figure8_rule: bool,
    /// Mutation switch passed to every node (unit tests only).
    #[cfg(test)]
    pub unsafe_skip_vote_persistence: bool,
}

impl SimConfig {
    /// The default fault mix for `seed` on `nodes` nodes and `steps` faulty ticks.
    pub fn new(seed: u64, nodes: usize, steps: u64) -> Self {
        SimConfig {
            seed,
            nodes,
            steps,
            liveness_ticks: 300,
            faults: Faults {
                loss: 0.05,
                duplicate: 0.03,
                max_delay: 3,
            },
            partition_rate: 0.03,
            crash_rate: 0.01,
            restart_rate: 0.1,
            propose_rate: 0.3,
            read_rate: 0.1,
            compact_after: 12,
            crash_in_ready: 0.002,
            max_entries_per_message: [16, 1, 4][(seed % 3) as usize],
            lease_reads: seed % 4 == 3,
            pre_vote: true,
            check_quorum: true,
            #[cfg(test)]
            unsafe_disable_figure8_rule: false,
            #[cfg(test)]
            unsafe_skip_vote_persistence: false,
        }
    }

    /// The command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run -- raft-sim --seed {} --seeds 1 --nodes {} --steps {}",
            self.seed, self.nodes, self.steps
        )
    }

    fn raft_config(&self, id: RaftId, voters: Vec<RaftId>) -> Config {
        let mut cfg = Config::new(id, voters);
        cfg.election_ticks = 8;
        cfg.heartbeat_ticks = 2;
        cfg.max_entries_per_message = self.max_entries_per_message;
        cfg.pre_vote = self.pre_vote;
        cfg.check_quorum = self.check_quorum;
        if self.lease_reads && self.check_quorum {
            cfg.read_only = crate::raft::ReadOnlyMode::LeaseBased;
        }
        #[cfg(test)]
        {
            cfg.unsafe_disable_figure8_rule = self.unsafe_disable_figure8_rule;
            cfg.unsafe_skip_vote_persistence = self.unsafe_skip_vote_persistence;
        }
        cfg
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Ticks simulated in total.
    pub ticks: u64,
    /// Distinct (term, leader) pairs seen.
    pub elections: u64,
    /// Highest committed index.
    pub max_commit: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages dropped.
    pub dropped: u64,
    /// Crashes.
    pub crashes: u64,
    /// Ticks from healing to the first commit of a new proposal.
    pub recovery_ticks: u64,
}

/// A failed run: the violation and the replay command.
#[derive(Debug, Clone)]
pub struct SimFailure {
    /// The run's settings.
    pub config: SimConfig,
    /// What broke.
    pub violation: Violation,
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "raft simulation seed {} ({} nodes, {} steps): {}\n  replay: {}",
            self.config.seed,
            self.config.nodes,
            self.config.steps,
            self.violation,
            self.config.replay_command()
        )
    }
}

/// Runs one seeded simulation: `steps` faulty ticks, then heal and require liveness.
pub fn run(config: &SimConfig) -> Result<SimReport, Box<SimFailure>> {
    let fail = |violation| {
        Box::new(SimFailure {
            config: config.clone(),
            violation,
        })
    };
    let mut cluster = Cluster::new(config.nodes, config.seed, |id, voters| {
        config.raft_config(id, voters)
    });
    cluster.faults = config.faults;
    cluster.crash_in_ready = config.crash_in_ready;
    let mut next_command = 0u64;
    for _ in 0..config.steps {
        chaos(&mut cluster, config, &mut next_command).map_err(fail)?;
        cluster.tick().map_err(fail)?;
    }
    // Heal: every link back, every node up, a calm network.
    cluster.net.heal();
    cluster.faults = Faults::CALM;
    cluster.crash_in_ready = 0.0;
    for id in cluster.ids() {
        cluster.restart(id).map_err(fail)?;
    }
    let healed_at = cluster.now;
    let mut marker: Option<(RaftId, u64, Vec<u8>)> = None;
    loop {
        if cluster.now - healed_at > config.liveness_ticks {
            let detail = format!(
                "no leader elected and proposal committed within {} ticks of healing (leader: {:?})",
                config.liveness_ticks,
                cluster.leader()
            );
            return Err(fail(Violation {
                property: Property::Liveness,
                tick: cluster.now,
                detail,
            }));
        }
        if let Some(leader) = cluster.leader() {
            let stale = marker.as_ref().is_none_or(|(at, index, data)| {
                *at != leader
                    || cluster
                        .raft(leader)
                        .and_then(|r| r.entry(*index))
                        .is_none_or(|e| &e.data != data)
            });
            if stale {
                let data = format!("liveness-{}", cluster.now).into_bytes();
                if let Some(index) = cluster.propose(leader, data.clone()).map_err(fail)? {
                    marker = Some((leader, index, data));
                }
            }
            if let Some((at, index, _)) = &marker
                && cluster
                    .raft(*at)
                    .is_some_and(|r| r.commit_index() >= *index)
            {
                break;
            }
        }
        cluster.tick().map_err(fail)?;
    }
    Ok(SimReport {
        ticks: cluster.now,
        elections: cluster.checker.elections,
        max_commit: cluster.checker.max_commit,
        messages: cluster.net.sent,
        dropped: cluster.net.dropped,
        crashes: cluster.crashes,
        recovery_ticks: cluster.now - healed_at,
    })
}

/// One tick's worth of random faults and client requests.
fn chaos(
    cluster: &mut Cluster,
    config: &SimConfig,
    next_command: &mut u64,
) -> Result<(), Violation> {
    let ids = cluster.ids();
    if cluster.rng.random_bool(config.partition_rate) {
        cluster.net.heal();
        match cluster.rng.random_range(0..4) {
            0 => {}
            1 => {
                let &node = ids.choose(&mut cluster.rng).unwrap_or(&1);
                cluster.net.isolate(node, &ids);
            }
            2 => {
                let size = cluster.rng.random_range(1..=ids.len() / 2);
                let group: Vec<RaftId> = ids
                    .choose_multiple(&mut cluster.rng, size)
                    .copied()
                    .collect();
                cluster.net.partition(&group, &ids);
            }
            _ => {
                // Partial partition: random links cut, some one way only.
                for &a in &ids {
                    for &b in &ids {
                        if a < b && cluster.rng.random_bool(0.3) {
                            if cluster.rng.random_bool(0.5) {
                                cluster.net.cut_both(a, b);
                            } else {
                                cluster.net.cut(a, b);
                            }
                        }
                    }
                }
            }
        }
    }
    if cluster.rng.random_bool(config.crash_rate)
        && let Some(id) = cluster.random_up()
    {
        cluster.crash(id);
    }
    for id in ids.iter().copied() {
        let down = cluster.nodes.get(&id).is_some_and(|n| n.raft.is_none());
        if down && cluster.rng.random_bool(config.restart_rate) {
            cluster.restart(id)?;
        }
    }
    if cluster.rng.random_bool(config.propose_rate) {
        // Propose at whichever node believes it leads (possibly a stale leader).
        let leaders: Vec<RaftId> = ids
            .iter()
            .copied()
            .filter(|&id| {
                cluster
                    .raft(id)
                    .is_some_and(|r| r.role() == crate::raft::Role::Leader)
            })
            .collect();
        if let Some(&leader) = leaders.choose(&mut cluster.rng) {
            *next_command += 1;
            let data = format!("cmd-{}-{}", config.seed, next_command).into_bytes();
            cluster.propose(leader, data)?;
        }
    }
    if cluster.rng.random_bool(config.read_rate)
        && let Some(id) = cluster.random_up()
    {
        cluster.read(id)?;
    }
    for id in ids {
        let due = cluster
            .raft(id)
            .is_some_and(|r| r.applied_index() >= r.snapshot_index() + config.compact_after);
        if due && cluster.rng.random_bool(0.2) {
            cluster.compact(id)?;
        }
    }
    Ok(())
}
