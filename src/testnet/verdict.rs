//! How a run ends: whether the goals are met (one tip, the block height, every node at the
//! round goal with one params hash, the target accuracy on every node), the record of the
//! committed rounds that check reads, and the wait for the committed rounds' receipts to
//! reach the chains. Owns the goals' state; reads the polled `Observations`; touches no
//! process (it asks the `Cluster` for receipts only).

use std::time::Duration;

use tokio::time::Instant;

use super::cluster::Cluster;
use super::observe::Observations;
use super::plan::{Goals, Plan};
use super::rounds::{ReceiptReport, RoundLog, check_receipts};
use super::status::{NodeView, TrainingView};

/// How long past the duration goal the nodes may take to agree on a tip (a block in flight or
/// a fork at the last poll) once every other goal is reached.
const SETTLE: Duration = Duration::from_secs(15);
/// How long after every node reached the round goal (the leader stopped there) a final
/// evaluation may take to report the target accuracy before the run fails.
const LAST_EVALUATION: Duration = Duration::from_secs(3);
/// How long the committed rounds' receipts may take to reach every node's chain once the
/// goals are met (receipts ride in the next blocks mined).
const RECEIPTS_WITHIN: Duration = Duration::from_secs(10);

/// Whether every node holds round `round` (committed and applied) with one params hash.
pub(super) fn all_at_round(trainings: &[&TrainingView], round: u64) -> bool {
    trainings.iter().all(|t| {
        t.round.is_some_and(|r| r >= round) && t.trained_round == t.round && t.params_hash.is_some()
    }) && trainings
        .windows(2)
        .all(|w| w[0].round == w[1].round && w[0].params_hash == w[1].params_hash)
}

/// The goals and what the run has reached of them.
pub(super) struct Verdict {
    goals: Goals,
    timeout: Duration,
    poll: Duration,
    /// Every committed round any node reported, with its params hash.
    rounds: RoundLog,
    /// Since the run began, when every node first reported the target accuracy, and the
    /// highest round committed then.
    accuracy_reached: Option<(Duration, u64)>,
    /// Since every node was up, when every node first held the round goal.
    round_goal_at: Option<Duration>,
    /// What the chains held of the committed rounds when the goals were met.
    receipts: Option<ReceiptReport>,
}

impl Verdict {
    /// The plan's goals, nothing reached yet.
    pub(super) fn new(plan: &Plan) -> Verdict {
        Verdict {
            goals: plan.goals.clone(),
            timeout: plan.timeout,
            poll: plan.poll,
            rounds: RoundLog::default(),
            accuracy_reached: None,
            round_goal_at: None,
            receipts: None,
        }
    }

    /// Every committed round any node reported.
    pub(super) fn rounds(&self) -> &RoundLog {
        &self.rounds
    }

    /// When (since the run began) every node first reported the target accuracy, and the
    /// highest round committed then.
    pub(super) fn accuracy_reached(&self) -> Option<(Duration, u64)> {
        self.accuracy_reached
    }

    /// The receipts found on the chains once the goals were met.
    pub(super) fn receipts(&self) -> Option<&ReceiptReport> {
        self.receipts.as_ref()
    }

    /// Records the polled training views (at `elapsed` since every node was up,
    /// `since_began` since the run began): rounds and params hashes, and when every node
    /// first reached the target accuracy.
    pub(super) fn observe(
        &mut self,
        elapsed: Duration,
        since_began: Duration,
        seen: &Observations,
    ) {
        for view in seen.views().iter().flatten() {
            if let Some(training) = &view.training {
                self.rounds.observe(elapsed, training);
            }
        }
        if let Some(target) = self.goals.target_accuracy
            && self.accuracy_reached.is_none()
            && seen.views().iter().all(|v| {
                v.as_ref()
                    .and_then(|v| v.training.as_ref())
                    .and_then(|t| t.accuracy)
                    .is_some_and(|a| a >= target - 1e-6)
            })
        {
            self.accuracy_reached = Some((since_began, self.rounds.max_round()));
        }
    }

    /// Notes when every node first held the round goal.
    pub(super) fn note_round_goal(&mut self, elapsed: Duration, seen: &Observations) {
        let Some(round) = self.goals.rounds else {
            return;
        };
        let trainings: Option<Vec<&TrainingView>> = seen
            .views()
            .iter()
            .map(|v| v.as_ref()?.training.as_ref())
            .collect();
        if self.round_goal_at.is_none() && trainings.is_some_and(|t| all_at_round(&t, round)) {
            self.round_goal_at = Some(elapsed);
        }
    }

    /// A goal needs training but no node reports it: why the run cannot succeed.
    pub(super) fn untrained(&self) -> Option<String> {
        self.goals.need_training().then(|| {
            "the nodes do not train (their config has no [train] section), so round and \
             accuracy goals cannot be met (mining goals can)"
                .into()
        })
    }

    /// Whether the run is over: `Some(None)` goals met, `Some(Some(why))` failed.
    pub(super) fn judge(
        &self,
        elapsed: Duration,
        settled: bool,
        seen: &Observations,
    ) -> Option<Option<String>> {
        let goals = &self.goals;
        let views = seen.answered();
        let agreed = settled && seen.one_tip();
        let trainings: Option<Vec<&TrainingView>> =
            views.iter().map(|v| v.training.as_ref()).collect();
        let blocks = goals
            .blocks
            .is_none_or(|b| views.iter().all(|v| v.height >= b));
        let rounds = goals
            .rounds
            .is_none_or(|r| trainings.as_ref().is_some_and(|t| all_at_round(t, r)));
        let accuracy = goals.target_accuracy.is_none_or(|a| {
            trainings
                .as_ref()
                .is_some_and(|ts| ts.iter().all(|t| t.accuracy.is_some_and(|x| x >= a - 1e-6)))
        });
        let reached = blocks && rounds && accuracy && self.rounds.conflicts() == 0;
        let met = agreed && reached;
        if let (Some(round), Some(target)) = (goals.rounds, goals.target_accuracy)
            && rounds
            && !accuracy
            && self
                .round_goal_at
                .is_some_and(|at| elapsed >= at + LAST_EVALUATION)
        {
            return Some(Some(format!(
                "training stopped at round {round} (the round goal) below the target accuracy \
                 {:.1}%{}",
                target * 100.0,
                self.shortfall(agreed, seen)
            )));
        }
        let other_goals = goals.blocks.is_some() || goals.need_training();
        match goals.duration {
            Some(duration) if elapsed >= duration => {
                if met {
                    return Some(None);
                }
                if other_goals && !reached {
                    return Some(Some(format!(
                        "goals not reached in {:.0} s{}",
                        duration.as_secs_f64(),
                        self.shortfall(agreed, seen)
                    )));
                }
                if elapsed >= duration + SETTLE {
                    return Some(Some(format!(
                        "nodes still on different tips {} s after the run's end",
                        SETTLE.as_secs()
                    )));
                }
            }
            Some(_) => {}
            None if met => return Some(None),
            None => {}
        }
        if elapsed >= self.timeout {
            return Some(Some(format!(
                "gave up after {:.0} s{}",
                self.timeout.as_secs_f64(),
                self.shortfall(agreed, seen)
            )));
        }
        None
    }

    fn shortfall(&self, agreed: bool, seen: &Observations) -> String {
        let show = |f: &dyn Fn(&NodeView) -> String| -> String {
            let values: Vec<String> = seen
                .views()
                .iter()
                .map(|v| v.as_ref().map_or("-".into(), f))
                .collect();
            values.join("/")
        };
        let tips = if agreed { "one tip" } else { "tips differ" };
        let mut text = format!(" (heights {}, {tips}", show(&|v| v.height.to_string()));
        if seen.any_training() {
            let rounds = show(&|v| {
                v.training
                    .as_ref()
                    .and_then(|t| t.round)
                    .map_or("-".into(), |r| r.to_string())
            });
            let accuracy = show(&|v| {
                v.training
                    .as_ref()
                    .and_then(|t| t.accuracy)
                    .map_or("-".into(), |a| format!("{:.1}%", a * 100.0))
            });
            text.push_str(&format!(", rounds {rounds}, accuracy {accuracy}"));
            if self.rounds.conflicts() > 0 {
                text.push_str(&format!(
                    ", {} rounds reported with two params hashes",
                    self.rounds.conflicts()
                ));
            }
        }
        text.push(')');
        text
    }

    /// Once the goals are met: waits until every committed round's receipt is on every
    /// node's best chain (or `RECEIPTS_WITHIN` passed), and keeps what the chains hold.
    pub(super) async fn settle_receipts(&mut self, cluster: &Cluster) {
        let rounds = self.rounds.max_round();
        let deadline = Instant::now() + RECEIPTS_WITHIN;
        let timeout = self.poll.max(Duration::from_secs(2));
        loop {
            let (lists, complete) = cluster.fetch_receipts(timeout).await;
            let report = check_receipts(&lists, rounds, &self.rounds);
            if (complete && report.on_chain == rounds && report.identical)
                || Instant::now() >= deadline
            {
                self.receipts = Some(report);
                return;
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}
