//! The running testnet: brings the nodes up, starts the `--jepsen` workload, then at every
//! poll steps the chaos schedule, polls `/status`, shows the table and asks the verdict
//! whether the run is over; once the goals are met it settles the receipts. Holds the run's
//! parts, each owning its state: the processes and links (`Cluster`), the schedule
//! (`Chaos`), the polled views (`Observations`), the goals (`Verdict`), the workload and the
//! `Journal`; this file only sequences them and builds the summary from what each holds.

use std::time::Duration;

use tokio::time::Instant;

use super::TestnetError;
use super::chaos::Chaos;
use super::cluster::Cluster;
use super::jepsen::Workload;
use super::journal::Journal;
use super::observe::Observations;
use super::plan::Plan;
use super::propagation::{NoPropagation, Percentiles};
use super::report::Summary;
use super::run::Setup;
use super::status::TrainingView;
use super::verdict::{Verdict, all_at_round};

/// The run's clocks.
struct RunClock {
    /// When the run began (keys, relays and node start-up count from here).
    began: Instant,
    /// When every node first became ready; chaos times count from here.
    t0: Instant,
    /// `t0` on the wall clock (ms since the Unix epoch), as the nodes' event logs count time.
    t0_unix_ms: u64,
}

/// The testnet while it runs.
pub(super) struct Driver<'a> {
    clock: RunClock,
    poll: Duration,
    seed: u64,
    /// Whether the nodes' miners are paced (the table then shows no hash rate).
    paced: bool,
    /// How long the `--jepsen` workload runs, and the workload once started.
    jepsen_for: Option<Duration>,
    workload: Option<Workload>,
    cluster: Cluster,
    chaos: Chaos,
    seen: Observations,
    verdict: Verdict,
    journal: Journal<'a>,
}

impl<'a> Driver<'a> {
    /// A driver for `plan` over `cluster` (nodes not yet started, their miners `paced` or
    /// not), the run having begun at `began`.
    pub(super) fn new(
        plan: &Plan,
        paced: bool,
        cluster: Cluster,
        journal: Journal<'a>,
        began: Instant,
    ) -> Driver<'a> {
        Driver {
            clock: RunClock {
                began,
                t0: Instant::now(),
                t0_unix_ms: 0,
            },
            poll: plan.poll,
            seed: plan.seed,
            paced,
            jepsen_for: plan.jepsen,
            workload: None,
            seen: Observations::new(cluster.len()),
            cluster,
            chaos: Chaos::new(plan),
            verdict: Verdict::new(plan),
            journal,
        }
    }

    /// Starts the nodes and runs the loop; `Ok(None)` when the goals are met, `Ok(Some(why))`
    /// when they cannot be.
    pub(super) async fn drive(&mut self) -> Result<Option<String>, TestnetError> {
        self.bring_up().await?;
        self.start_workload();
        let mut ticker = tokio::time::interval(self.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Some(outcome) = self.step().await? {
                return Ok(outcome);
            }
        }
    }

    /// Starts every node, waits until all are ready and starts the run's clock there.
    async fn bring_up(&mut self) -> Result<(), TestnetError> {
        self.cluster.start_all().await?;
        self.clock.t0 = Instant::now();
        self.clock.t0_unix_ms = unix_micros() / 1000;
        self.chaos.begin(self.clock.t0);
        let pids = self.cluster.pids();
        self.journal
            .event(Duration::ZERO, &format!("nodes up: {pids}"));
        Ok(())
    }

    fn start_workload(&mut self) {
        let Some(duration) = self.jepsen_for else {
            return;
        };
        self.workload = Some(Workload::start(self.cluster.apis(), duration, self.seed));
        self.journal.event(
            Duration::ZERO,
            &format!(
                "jepsen workload started for {:.1} s",
                duration.as_secs_f64()
            ),
        );
    }

    /// One poll: chaos, status, table, verdict. `Some(outcome)` when the run is over.
    async fn step(&mut self) -> Result<Option<Option<String>>, TestnetError> {
        let now = Instant::now();
        let elapsed = now - self.clock.t0;
        let partitioned = self
            .chaos
            .step(
                now,
                elapsed,
                &mut self.cluster,
                &mut self.seen,
                &mut self.journal,
            )
            .await?;
        let all_up = self.observe(elapsed, partitioned).await;
        if self.seen.training_absent(elapsed, all_up) == Some(true)
            && let Some(why) = self.verdict.untrained()
        {
            return Ok(Some(Some(why)));
        }
        self.verdict.note_round_goal(elapsed, &self.seen);
        let workload_due = self.workload.as_ref().is_none_or(Workload::is_due);
        let settled = all_up && self.chaos.over(elapsed);
        match self.verdict.judge(elapsed, settled, &self.seen) {
            Some(None) if workload_due => {
                self.settle().await;
                Ok(Some(None))
            }
            Some(Some(why)) => Ok(Some(Some(why))),
            Some(None) | None => Ok(None),
        }
    }

    /// Polls every node, records what it saw and shows the table; returns whether every node
    /// is up and answered.
    async fn observe(&mut self, elapsed: Duration, partitioned: bool) -> bool {
        self.refresh_views().await;
        if let Some(workload) = &self.workload {
            workload.retarget(self.cluster.apis());
        }
        self.chaos.record_partition_start(elapsed, &self.seen);
        self.verdict
            .observe(elapsed, self.clock.began.elapsed(), &self.seen);
        let states = self.cluster.states();
        self.journal
            .tick(elapsed, &self.seen.rows(&states, self.paced));
        let all_up = self.seen.all_up(&states);
        self.seen
            .note_poll(elapsed, unix_micros(), all_up, partitioned);
        all_up
    }

    async fn refresh_views(&mut self) {
        let timeout = self.poll.max(Duration::from_millis(500));
        let answers = self.cluster.fetch_statuses(timeout).await;
        self.seen.record(answers);
    }

    /// The goals are met: with training, waits for the receipts to reach the chains, then
    /// polls once more so the summary shows the chains with the receipts mined in, if the
    /// nodes agree on a tip at that poll (else it keeps the views that met the goals).
    async fn settle(&mut self) {
        if !self.seen.any_training() {
            return;
        }
        self.verdict.settle_receipts(&self.cluster).await;
        let met = self.seen.views().to_vec();
        self.refresh_views().await;
        if self.seen.one_tip() {
            self.verdict.observe(
                self.clock.t0.elapsed(),
                self.clock.began.elapsed(),
                &self.seen,
            );
        } else {
            self.seen.restore(met);
        }
    }

    /// Stops the workload's clients and returns their histories.
    pub(super) async fn finish_workload(&mut self) -> Option<super::jepsen::Histories> {
        match self.workload.take() {
            Some(workload) => Some(workload.finish().await),
            None => None,
        }
    }

    /// Stops every node (gently, then with -9).
    pub(super) async fn stop_all(&mut self) {
        self.cluster.stop_all().await;
    }

    /// The stretches of wall-clock time (µs since the Unix epoch) with every node up and no
    /// partition, as the polls saw them.
    pub(super) fn clean_stretches(&self) -> Vec<(u64, u64)> {
        self.seen.clean_stretches().to_vec()
    }

    /// The summary of the run, failed for `reason` (`None`: goals met), with the block
    /// propagation times read from the event logs (or why there are none).
    pub(super) fn summary(
        &self,
        setup: &Setup,
        reason: Option<String>,
        propagation: Result<Percentiles, NoPropagation>,
    ) -> Summary {
        let views = self.seen.answered();
        let (heights, tips) = self.seen.heights_and_tips();
        let agreed = self.seen.one_tip();
        let trained: Vec<&TrainingView> =
            views.iter().filter_map(|v| v.training.as_ref()).collect();
        let training = !trained.is_empty();
        let log = self.verdict.rounds();
        let rounds = self.seen.committed_rounds_reported();
        let final_max = rounds.iter().flatten().copied().max().unwrap_or(0);
        let lost = log.conflicts() as u64 + log.max_round().saturating_sub(final_max);
        let same_params = trained.len() == self.cluster.len()
            && all_at_round(&trained, trained.first().and_then(|t| t.round).unwrap_or(0));
        let accuracy_reached = self.verdict.accuracy_reached();
        Summary {
            dir: setup.dir.display().to_string(),
            nodes: self.cluster.len(),
            blocks: if agreed {
                heights.first().copied().unwrap_or(0)
            } else {
                heights.iter().copied().max().unwrap_or(0)
            },
            heights,
            agreed,
            tip: agreed.then(|| tips.first().cloned()).flatten(),
            kills: self.chaos.kills(),
            restarts: self.chaos.restarts(),
            partitions: self.chaos.partitions_healed(),
            partition_reports: self.chaos.partition_reports().to_vec(),
            rounds_committed: training.then(|| log.max_round()),
            rounds,
            rounds_lost: training.then_some(lost),
            rounds_abandoned: training
                .then(|| trained.iter().filter_map(|t| t.rounds_abandoned).sum()),
            training_agreed: training.then_some(lost == 0 && log.conflicts() == 0),
            params_hash: same_params
                .then(|| trained.first().and_then(|t| t.params_hash.clone()))
                .flatten(),
            accuracy: trained
                .iter()
                .filter_map(|t| t.accuracy)
                .min_by(f64::total_cmp),
            accuracy_reached_secs: accuracy_reached.map(|(at, _)| at.as_secs_f64()),
            accuracy_reached_round: accuracy_reached.map(|(_, round)| round),
            rounds_per_sec: log.rate(),
            leader_changes: training.then_some(self.seen.leader_changes()),
            receipts: self.verdict.receipts().cloned(),
            no_propagation: propagation.as_ref().err().map(ToString::to_string),
            propagation: propagation.ok(),
            relay: self.cluster.relay_totals(),
            duration_secs: self.clock.began.elapsed().as_secs_f64(),
            events_epoch_ms: self.clock.t0_unix_ms,
            goals_met: reason.is_none(),
            reason,
            jepsen: None,
        }
    }
}

/// Now on the wall clock, in µs since the Unix epoch (the nodes' event logs' `time_us`).
fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
