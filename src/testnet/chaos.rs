//! The chaos schedule as the orchestrator applies it: partitions cut and heal relay links,
//! kills `kill -9` the training leader (or a random node) and restart it from its data dir
//! after a pause. Each change is an event in `events.log`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::TestnetError;
use super::plan::KillTarget;
use super::report::PartitionReport;
use super::run::Driver;

/// How long after a cut the partition's starting heights and rounds are read: a node's
/// `/status` lags its state by up to a training tick (50 ms), and a datagram may be in flight.
const PARTITION_SETTLED: Duration = Duration::from_millis(300);

impl Driver<'_> {
    /// Cuts every link an active partition separates and heals the rest; returns whether a
    /// partition is active.
    pub(super) fn apply_partitions(&mut self, elapsed: Duration) -> bool {
        let mut active = Vec::new();
        for p in &self.plan.partitions {
            if elapsed >= p.at && elapsed < p.at + p.lasting {
                active.push(p);
            }
        }
        let mut changed = Vec::new();
        for ((from, to), relay) in &self.relays {
            let cut = active.iter().any(|p| p.separates(*from, *to));
            if relay.faults.cut.swap(cut, Ordering::Relaxed) != cut {
                changed.push(cut);
            }
        }
        if let Some(&cut) = changed.first() {
            let (heights, tips) = self.heights_and_tips();
            if cut {
                let groups: Vec<String> =
                    active.iter().map(|p| format!("{:?}", p.groups)).collect();
                // Heights and rounds at the start are taken a little after the cut (a node's
                // status lags its state by a few ticks): what a cut node holds then it got
                // before the cut.
                self.partition_began = Some(elapsed);
                self.partition_reports.push(PartitionReport {
                    groups: active.iter().flat_map(|p| p.groups.clone()).collect(),
                    heights_at_start: Vec::new(),
                    rounds_at_start: Vec::new(),
                    heights_at_heal: Vec::new(),
                    rounds_at_heal: Vec::new(),
                    tips_at_heal: Vec::new(),
                });
                self.event(
                    elapsed,
                    &format!(
                        "partition: groups {} (heights {heights:?})",
                        groups.join(" ")
                    ),
                );
            } else {
                self.partitions_healed += 1;
                self.record_partition_start(Duration::MAX);
                self.partition_began = None;
                let rounds = self.committed_rounds();
                if let Some(report) = self.partition_reports.last_mut() {
                    report.heights_at_heal = heights.clone();
                    report.rounds_at_heal = rounds.clone();
                    report.tips_at_heal = tips;
                }
                self.event(
                    elapsed,
                    &format!(
                        "partition healed (before healing: heights {heights:?}, rounds {rounds:?})"
                    ),
                );
            }
        }
        !active.is_empty()
    }

    /// After a poll: fills in the start of the partition once it has lasted
    /// `PARTITION_SETTLED`.
    pub(super) fn record_partition_start(&mut self, elapsed: Duration) {
        if self
            .partition_began
            .is_none_or(|began| elapsed < began.saturating_add(PARTITION_SETTLED))
        {
            return;
        }
        let (heights, _) = self.heights_and_tips();
        let rounds = self.committed_rounds();
        if let Some(report) = self.partition_reports.last_mut()
            && report.heights_at_start.is_empty()
        {
            report.heights_at_start = heights;
            report.rounds_at_start = rounds;
        }
    }

    pub(super) async fn kill_one(
        &mut self,
        target: KillTarget,
        restart_at: Instant,
        elapsed: Duration,
    ) {
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].http.is_some())
            .collect();
        if running.is_empty() {
            return;
        }
        // The leader of the highest term: a deposed leader cut off from the others may still
        // call itself leader of an older one.
        let leader = running
            .iter()
            .copied()
            .filter_map(|i| {
                let training = self.views[i].as_ref()?.training.as_ref()?;
                (training.role.as_deref() == Some("leader"))
                    .then_some((training.term.unwrap_or(0), i))
            })
            .max()
            .map(|(_, i)| i);
        let (victim, why) = match (target, leader) {
            (KillTarget::Leader, Some(leader)) => (leader, "training leader"),
            (KillTarget::Leader, None) => (
                running[self.rng.random_range(0..running.len())],
                "random node: no node reports a leader",
            ),
            (KillTarget::Random, _) => (running[self.rng.random_range(0..running.len())], "random"),
        };
        let pid = self.nodes[victim].pid().unwrap_or(0);
        self.nodes[victim].kill().await;
        self.views[victim] = None;
        self.restart_at[victim] = Some(restart_at);
        self.kills += 1;
        self.event(elapsed, &format!("kill -9 n{victim} (pid {pid}, {why})"));
    }

    pub(super) fn restart_due(
        &mut self,
        now: Instant,
        elapsed: Duration,
    ) -> Result<(), TestnetError> {
        for index in 0..self.nodes.len() {
            if self.restart_at[index].is_some_and(|at| now >= at) {
                self.restart_at[index] = None;
                self.nodes[index].start()?;
                self.restarts += 1;
                let pid = self.nodes[index].pid().unwrap_or(0);
                self.event(
                    elapsed,
                    &format!("restart n{index} from its data dir (pid {pid})"),
                );
            }
        }
        Ok(())
    }
}
