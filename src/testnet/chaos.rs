//! The chaos schedule as the orchestrator applies it: partitions cut and heal relay links
//! (a `leader` partition cuts off whoever leads when it begins), kills `kill -9` the training
//! leader (or a random node) and restart it from its data dir after a pause, clock faults set
//! a node's libfaketime rate for their window. Owns the schedule's state (the next kill, pending restarts, the kill
//! randomness), its counts and each partition's report; acts through the `Cluster`, reads
//! the polled `Observations`, and writes each change as an event to the `Journal`. Decides
//! nothing about goals.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::TestnetError;
use super::cluster::Cluster;
use super::journal::Journal;
use super::observe::Observations;
use super::plan::{ClockFault, ClockTarget, KillTarget, Kills, Partition, Plan};
use super::report::PartitionReport;

/// How long after a cut the partition's starting heights and rounds are read: a node's
/// `/status` lags its state by up to a training tick (50 ms), and a datagram may be in flight.
const PARTITION_SETTLED: Duration = Duration::from_millis(300);

/// The schedule and what it has done so far.
pub(super) struct Chaos {
    partitions: Vec<Partition>,
    kills: Option<Kills>,
    /// When the next kill is due (set once every node is up).
    next_kill: Option<Instant>,
    /// Per node, when its restart is due after a kill.
    restart_at: Vec<Option<Instant>>,
    rng: ChaCha8Rng,
    killed: u64,
    restarted: u64,
    healed: u64,
    reports: Vec<PartitionReport>,
    /// When the active partition began (since every node was up).
    partition_began: Option<Duration>,
    /// The clock faults with a window, each with the node it hit once it began.
    clocks: Vec<(ClockFault, ClockState)>,
    /// Per node, the rate outside any window.
    base_rates: Vec<f64>,
}

/// Where a windowed clock fault is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClockState {
    Pending,
    /// Applied to this node.
    On(usize),
    Over,
}

impl Chaos {
    /// The plan's schedule, not yet started.
    pub(super) fn new(plan: &Plan) -> Chaos {
        Chaos {
            partitions: plan.partitions.clone(),
            kills: plan.kills,
            next_kill: None,
            restart_at: vec![None; plan.nodes],
            rng: ChaCha8Rng::seed_from_u64(plan.seed),
            killed: 0,
            restarted: 0,
            healed: 0,
            reports: Vec::new(),
            partition_began: None,
            clocks: plan
                .clocks
                .iter()
                .filter(|f| f.window.is_some())
                .map(|f| (*f, ClockState::Pending))
                .collect(),
            base_rates: (0..plan.nodes).map(|i| plan.base_clock_rate(i)).collect(),
        }
    }

    /// Starts the clock of the schedule: every node is up at `t0`.
    pub(super) fn begin(&mut self, t0: Instant) {
        self.next_kill = self.kills.map(|k| t0 + k.every);
    }

    /// Whether every partition has healed and every clock window closed by `elapsed`.
    pub(super) fn over(&self, elapsed: Duration) -> bool {
        self.partitions.iter().all(|p| elapsed >= p.at + p.lasting)
            && self.clocks.iter().all(|(fault, _)| {
                fault
                    .window
                    .is_none_or(|(at, lasting)| elapsed >= at + lasting)
            })
    }

    /// `kill -9`s sent.
    pub(super) fn kills(&self) -> u64 {
        self.killed
    }

    /// Restarts after kills.
    pub(super) fn restarts(&self) -> u64 {
        self.restarted
    }

    /// Partitions that healed.
    pub(super) fn partitions_healed(&self) -> u64 {
        self.healed
    }

    /// Each partition's report.
    pub(super) fn partition_reports(&self) -> &[PartitionReport] {
        &self.reports
    }

    /// One step of the schedule before a poll: cuts or heals links, kills a node when a kill
    /// is due, restarts the nodes whose pause is over. Returns whether a partition is active.
    pub(super) async fn step(
        &mut self,
        now: Instant,
        elapsed: Duration,
        cluster: &mut Cluster,
        seen: &mut Observations,
        journal: &mut Journal<'_>,
    ) -> Result<bool, TestnetError> {
        self.resolve_leader_partitions(elapsed, cluster, seen, journal);
        let partitioned = self.apply_partitions(elapsed, cluster, seen, journal);
        self.apply_clocks(elapsed, cluster, seen, journal)?;
        if let (Some(due), Some(kills)) = (self.next_kill, self.kills)
            && now >= due
        {
            self.kill_one(
                kills.target,
                now + kills.pause,
                elapsed,
                cluster,
                seen,
                journal,
            )
            .await;
            self.next_kill = Some(due + kills.every);
        }
        self.restart_due(now, elapsed, cluster, journal)?;
        Ok(partitioned)
    }

    /// A `leader` partition that begins now cuts off the node that leads now (a random
    /// running node while none reports a role).
    fn resolve_leader_partitions(
        &mut self,
        elapsed: Duration,
        cluster: &Cluster,
        seen: &Observations,
        journal: &mut Journal<'_>,
    ) {
        let nodes = cluster.len();
        for index in 0..self.partitions.len() {
            let p = &self.partitions[index];
            if !p.isolates_leader || !p.groups.is_empty() || elapsed < p.at {
                continue;
            }
            let (leader, why) = self.pick(ClockTarget::Leader, cluster, seen);
            let rest = (0..nodes).filter(|&n| n != leader).collect();
            self.partitions[index].groups = vec![vec![leader], rest];
            journal.event(elapsed, &format!("partition cuts off n{leader} ({why})"));
        }
    }

    /// The node a role names now, with why it was picked.
    fn pick(
        &mut self,
        target: ClockTarget,
        cluster: &Cluster,
        seen: &Observations,
    ) -> (usize, &'static str) {
        let running = cluster.serving();
        let all: Vec<usize> = (0..cluster.len()).collect();
        let pool = if running.is_empty() { &all } else { &running };
        let leader = seen.leader_among(pool);
        let random = |rng: &mut ChaCha8Rng, pool: &[usize]| pool[rng.random_range(0..pool.len())];
        match (target, leader) {
            (ClockTarget::Node(n), _) => (n, "named"),
            (ClockTarget::Leader, Some(leader)) => (leader, "training leader"),
            (ClockTarget::Follower, Some(leader)) => {
                let followers: Vec<usize> = pool.iter().copied().filter(|&n| n != leader).collect();
                if followers.is_empty() {
                    (leader, "the only node")
                } else {
                    (random(&mut self.rng, &followers), "a follower")
                }
            }
            (_, None) => (
                random(&mut self.rng, pool),
                "random: no node reports a leader",
            ),
        }
    }

    /// Starts and ends the clock faults' windows.
    fn apply_clocks(
        &mut self,
        elapsed: Duration,
        cluster: &mut Cluster,
        seen: &Observations,
        journal: &mut Journal<'_>,
    ) -> Result<(), TestnetError> {
        for index in 0..self.clocks.len() {
            let (fault, state) = self.clocks[index];
            let Some((at, lasting)) = fault.window else {
                continue;
            };
            match state {
                ClockState::Pending if elapsed >= at => {
                    let (node, why) = self.pick(fault.target, cluster, seen);
                    cluster.set_clock_rate(node, fault.rate)?;
                    self.clocks[index].1 = ClockState::On(node);
                    journal.event(
                        elapsed,
                        &format!(
                            "clock: n{node} ({why}) at x{} for {:.1} s",
                            fault.rate,
                            lasting.as_secs_f64()
                        ),
                    );
                }
                ClockState::On(node) if elapsed >= at + lasting => {
                    let rate = self.base_rates[node];
                    cluster.set_clock_rate(node, rate)?;
                    self.clocks[index].1 = ClockState::Over;
                    journal.event(elapsed, &format!("clock: n{node} back to x{rate}"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Cuts every link an active partition separates and heals the rest; returns whether a
    /// partition is active.
    fn apply_partitions(
        &mut self,
        elapsed: Duration,
        cluster: &Cluster,
        seen: &Observations,
        journal: &mut Journal<'_>,
    ) -> bool {
        let active: Vec<&Partition> = self
            .partitions
            .iter()
            .filter(|p| elapsed >= p.at && elapsed < p.at + p.lasting)
            .collect();
        let is_active = !active.is_empty();
        let Some(cut) = cluster.cut_links(&active) else {
            return is_active;
        };
        let (heights, tips) = seen.heights_and_tips();
        if cut {
            let groups: Vec<String> = active.iter().map(|p| format!("{:?}", p.groups)).collect();
            // Heights and rounds at the start are taken a little after the cut (a node's
            // status lags its state by a few ticks): what a cut node holds then it got before
            // the cut.
            self.partition_began = Some(elapsed);
            self.reports.push(PartitionReport {
                groups: active.iter().flat_map(|p| p.groups.clone()).collect(),
                heights_at_start: Vec::new(),
                rounds_at_start: Vec::new(),
                heights_at_heal: Vec::new(),
                rounds_at_heal: Vec::new(),
                tips_at_heal: Vec::new(),
            });
            journal.event(
                elapsed,
                &format!(
                    "partition: groups {} (heights {heights:?})",
                    groups.join(" ")
                ),
            );
        } else {
            self.healed += 1;
            self.record_partition_start(Duration::MAX, seen);
            self.partition_began = None;
            let rounds = seen.committed_rounds();
            if let Some(report) = self.reports.last_mut() {
                report.heights_at_heal = heights.clone();
                report.rounds_at_heal = rounds.clone();
                report.tips_at_heal = tips;
            }
            journal.event(
                elapsed,
                &format!(
                    "partition healed (before healing: heights {heights:?}, rounds {rounds:?})"
                ),
            );
        }
        is_active
    }

    /// After a poll: fills in the start of the partition once it has lasted
    /// `PARTITION_SETTLED`.
    pub(super) fn record_partition_start(&mut self, elapsed: Duration, seen: &Observations) {
        if self
            .partition_began
            .is_none_or(|began| elapsed < began.saturating_add(PARTITION_SETTLED))
        {
            return;
        }
        let (heights, _) = seen.heights_and_tips();
        let rounds = seen.committed_rounds();
        if let Some(report) = self.reports.last_mut()
            && report.heights_at_start.is_empty()
        {
            report.heights_at_start = heights;
            report.rounds_at_start = rounds;
        }
    }

    async fn kill_one(
        &mut self,
        target: KillTarget,
        restart_at: Instant,
        elapsed: Duration,
        cluster: &mut Cluster,
        seen: &mut Observations,
        journal: &mut Journal<'_>,
    ) {
        let running = cluster.serving();
        if running.is_empty() {
            return;
        }
        let (victim, why) = match (target, seen.leader_among(&running)) {
            (KillTarget::Leader, Some(leader)) => (leader, "training leader"),
            (KillTarget::Leader, None) => (
                running[self.rng.random_range(0..running.len())],
                "random node: no node reports a leader",
            ),
            (KillTarget::Random, _) => (running[self.rng.random_range(0..running.len())], "random"),
        };
        let pid = cluster.kill(victim).await;
        seen.forget(victim);
        self.restart_at[victim] = Some(restart_at);
        self.killed += 1;
        journal.event(elapsed, &format!("kill -9 n{victim} (pid {pid}, {why})"));
    }

    fn restart_due(
        &mut self,
        now: Instant,
        elapsed: Duration,
        cluster: &mut Cluster,
        journal: &mut Journal<'_>,
    ) -> Result<(), TestnetError> {
        for index in 0..self.restart_at.len() {
            if self.restart_at[index].is_some_and(|at| now >= at) {
                self.restart_at[index] = None;
                let pid = cluster.restart(index)?;
                self.restarted += 1;
                journal.event(
                    elapsed,
                    &format!("restart n{index} from its data dir (pid {pid})"),
                );
            }
        }
        Ok(())
    }
}
