//! How a run ends: whether the goals are met (one tip, the block height, every node at the
//! round goal with one params hash, the target accuracy on every node), the wait for the
//! committed rounds' receipts to reach the chains, and the summary built from the last views.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::report::{RelayTotals, Summary};
use super::rounds::{ReceiptReport, check_receipts};
use super::run::{Driver, Setup};
use super::status::{self, NodeView, TrainingView};

/// With only a duration goal, how long past it the nodes may take to agree on a tip.
const SETTLE: Duration = Duration::from_secs(15);
/// How long after every node reached the round goal (the leader stopped there) a final
/// evaluation may take to report the target accuracy before the run fails.
const LAST_EVALUATION: Duration = Duration::from_secs(3);
/// How long the committed rounds' receipts may take to reach every node's chain once the
/// goals are met (receipts ride in the next blocks mined).
const RECEIPTS_WITHIN: Duration = Duration::from_secs(10);

/// Whether every node holds round `round` (committed and applied) with one params hash.
fn all_at_round(trainings: &[&TrainingView], round: u64) -> bool {
    trainings.iter().all(|t| {
        t.round.is_some_and(|r| r >= round) && t.trained_round == t.round && t.params_hash.is_some()
    }) && trainings
        .windows(2)
        .all(|w| w[0].round == w[1].round && w[0].params_hash == w[1].params_hash)
}

impl Driver<'_> {
    /// Notes when every node first held the round goal.
    pub(super) fn note_round_goal(&mut self, elapsed: Duration) {
        let Some(round) = self.plan.goals.rounds else {
            return;
        };
        let trainings: Option<Vec<&TrainingView>> = self
            .views
            .iter()
            .map(|v| v.as_ref()?.training.as_ref())
            .collect();
        if self.round_goal_at.is_none() && trainings.is_some_and(|t| all_at_round(&t, round)) {
            self.round_goal_at = Some(elapsed);
        }
    }

    /// Whether the run is over: `Some(None)` goals met, `Some(Some(why))` failed.
    pub(super) fn judge(&self, elapsed: Duration, settled: bool) -> Option<Option<String>> {
        let goals = &self.plan.goals;
        let views: Vec<&NodeView> = self.views.iter().flatten().collect();
        let agreed = settled
            && views.len() == self.nodes.len()
            && views.windows(2).all(|w| w[0].tip == w[1].tip);
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
        let met = agreed && blocks && rounds && accuracy && self.rounds.conflicts() == 0;
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
                self.shortfall(agreed)
            )));
        }
        let other_goals = goals.blocks.is_some() || goals.need_training();
        match goals.duration {
            Some(duration) if elapsed >= duration => {
                if met {
                    return Some(None);
                }
                if other_goals {
                    return Some(Some(format!(
                        "goals not reached in {:.0} s{}",
                        duration.as_secs_f64(),
                        self.shortfall(agreed)
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
        if elapsed >= self.plan.timeout {
            return Some(Some(format!(
                "gave up after {:.0} s{}",
                self.plan.timeout.as_secs_f64(),
                self.shortfall(agreed)
            )));
        }
        None
    }

    fn shortfall(&self, agreed: bool) -> String {
        let show = |f: &dyn Fn(&NodeView) -> String| -> String {
            let values: Vec<String> = self
                .views
                .iter()
                .map(|v| v.as_ref().map_or("-".into(), f))
                .collect();
            values.join("/")
        };
        let tips = if agreed { "one tip" } else { "tips differ" };
        let mut text = format!(" (heights {}, {tips}", show(&|v| v.height.to_string()));
        if self.views.iter().flatten().any(|v| v.training.is_some()) {
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
    /// node's best chain (or `RECEIPTS_WITHIN` passed), and reports what the chains hold.
    pub(super) async fn settle_receipts(&mut self) -> ReceiptReport {
        let rounds = self.rounds.max_round();
        let deadline = Instant::now() + RECEIPTS_WITHIN;
        let timeout = self.plan.poll.max(Duration::from_secs(2));
        loop {
            let mut fetches = JoinSet::new();
            for node in &self.nodes {
                if let Some(http) = node.http {
                    fetches.spawn(async move { status::fetch_receipts(http, timeout).await });
                }
            }
            let mut lists = Vec::new();
            while let Some(result) = fetches.join_next().await {
                if let Ok(Ok(list)) = result {
                    lists.push(list);
                }
            }
            let complete = lists.len() == self.nodes.len();
            let report = check_receipts(&lists, rounds, &self.rounds);
            if (complete && report.on_chain == rounds && report.identical)
                || Instant::now() >= deadline
            {
                return report;
            }
            tokio::time::sleep(self.plan.poll).await;
        }
    }

    pub(super) fn summary(
        &self,
        setup: &Setup,
        duration: Duration,
        reason: Option<String>,
    ) -> Summary {
        let views: Vec<&NodeView> = self.views.iter().flatten().collect();
        let heights: Vec<u64> = self
            .views
            .iter()
            .map(|v| v.as_ref().map_or(0, |v| v.height))
            .collect();
        let agreed =
            views.len() == self.views.len() && views.windows(2).all(|w| w[0].tip == w[1].tip);
        let trained: Vec<&TrainingView> =
            views.iter().filter_map(|v| v.training.as_ref()).collect();
        let training = !trained.is_empty();
        let rounds = self.committed_rounds_reported();
        let final_max = rounds.iter().flatten().copied().max().unwrap_or(0);
        let lost =
            self.rounds.conflicts() as u64 + self.rounds.max_round().saturating_sub(final_max);
        let same_params = trained.len() == self.views.len()
            && all_at_round(&trained, trained.first().and_then(|t| t.round).unwrap_or(0));
        let mut relay = RelayTotals::default();
        for (_, r) in &self.relays {
            relay.forwarded += r.stats.forwarded.load(Ordering::Relaxed);
            relay.bytes += r.stats.bytes.load(Ordering::Relaxed);
            relay.lost += r.stats.lost.load(Ordering::Relaxed);
            relay.cut += r.stats.cut.load(Ordering::Relaxed);
        }
        Summary {
            dir: setup.dir.display().to_string(),
            nodes: self.nodes.len(),
            blocks: if agreed {
                heights.first().copied().unwrap_or(0)
            } else {
                heights.iter().copied().max().unwrap_or(0)
            },
            heights,
            agreed,
            tip: agreed
                .then(|| views.first().map(|v| v.tip.clone()))
                .flatten(),
            kills: self.kills,
            restarts: self.restarts,
            partitions: self.partitions_healed,
            partition_reports: self.partition_reports.clone(),
            rounds_committed: training.then(|| self.rounds.max_round()),
            rounds,
            rounds_lost: training.then_some(lost),
            rounds_abandoned: training
                .then(|| trained.iter().filter_map(|t| t.rounds_abandoned).sum()),
            training_agreed: training.then_some(lost == 0 && self.rounds.conflicts() == 0),
            params_hash: same_params
                .then(|| trained.first().and_then(|t| t.params_hash.clone()))
                .flatten(),
            accuracy: trained
                .iter()
                .filter_map(|t| t.accuracy)
                .min_by(f64::total_cmp),
            accuracy_reached_secs: self.accuracy_reached.map(|(at, _)| at.as_secs_f64()),
            accuracy_reached_round: self.accuracy_reached.map(|(_, round)| round),
            rounds_per_sec: self.rounds.rate(),
            leader_changes: training.then_some(self.leader_changes),
            receipts: self.receipts.clone(),
            propagation: self.propagation.percentiles(),
            relay,
            duration_secs: duration.as_secs_f64(),
            events_epoch_ms: self.t0_unix_ms,
            goals_met: reason.is_none(),
            reason,
            jepsen: None,
        }
    }
}
