//! The round protocol's leader core: the `Coordinator` announces a round, collects gradients up
//! to the consistency level or a deadline, hands them over for reduction and proposes the
//! result (`worker` holds each node's side). Both cores take events and `now` (milliseconds
//! of the caller's monotonic clock) and queue `Action`s; they never touch the network, the
//! trainer or a clock themselves.
//!
//! # Call order (the glue in `node/`)
//! Leader side, while this node is the Raft leader and has applied its log:
//! 1. When `Coordinator::is_idle()`: `announce(now, state.round() + 1, state.params_hash(),
//!    workers, settings)` with `RoundSettings::from_config(state.config().training(), …)`.
//!    `workers` is the configured worker list in a fixed order: position = shard = reduction
//!    order, the same on every node.
//! 2. For each `Gradient` frame from peer `from` (and the node's own gradient, from itself):
//!    `on_gradient(now, from, gradient)`; a `Refusal` is logged and counted, nothing else.
//! 3. On a timer at `poll_timeout()` (or every ~50 ms): `tick(now)`.
//! 4. After each of the calls above, drain `poll_action()` until `None`:
//!    - `Announce` → send to every worker in it;
//!    - `Reduce` → on a blocking thread: `Trainer::set_rule` + `Trainer::reduce`, store the
//!      reduced gradient as a blob (`BlobHash::of(vector_to_bytes(..))`), step a *copy* of the
//!      state (`configure`, `set_learning_rate`, `step`) to learn the new params hash, then
//!      `on_stepped(round, new_params_hash, reduced_hash)` (or `on_reduce_failed(round)`);
//!    - `Propose` → `raft.propose(command.to_bytes())`;
//!    - `Abandoned` → log (it is counted); the retry's `Announce` follows.
//! 5. For each `state::Applied` the state machine emits (every node, the leader too):
//!    `Applied::Round` → `Trainer::configure(&round.optimizer)`,
//!    `set_learning_rate(round.learning_rate)` and `step` with
//!    the blob `round.reduced_hash` (a `BlobRequest` to any peer if absent), then check
//!    `state_hash() == round.params_hash` (a mismatch stops the node); then, on the leader,
//!    `on_applied(&event)`. When the coordinator is idle again, go to 1 for the next round.
//! 6. On losing leadership: `step_down()`.
//!
//! Worker side: see `worker`.

use std::collections::{BTreeMap, VecDeque};

use crate::node_id::NodeId;
use crate::train::StateHash;
use crate::train::aggregate::Rule;
use crate::train::optimizer::{LrSchedule, OptimizerSettings};
use crate::train::setup::mean_loss;

use super::BlobHash;
use super::command::{Command, ConsistencyLevel, RequestId, RoundCommitted};
use super::config_store::{RuleSpec, TrainingConfig};
use super::state::Applied;
use super::wire::{Gradient, RoundAnnounce};

/// What a round needs from the config store (read when the round is announced).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundSettings {
    /// How many of the announced workers the round waits for before it reduces.
    pub consistency: ConsistencyLevel,
    /// The aggregation rule; Krum's selection count follows the gradients actually reduced.
    pub rule: RuleSpec,
    /// Milliseconds each attempt collects gradients before it is abandoned and re-announced.
    pub deadline_ms: u64,
    /// Rows in each worker's mini-batch.
    pub batch_size: usize,
    /// The base step size; the round's rate is `lr_schedule.rate(learning_rate, round)`.
    pub learning_rate: f32,
    /// How the round's rate follows from the base rate.
    pub lr_schedule: LrSchedule,
    /// The optimizer's settings for the step.
    pub optimizer: OptimizerSettings,
    /// Values every gradient must have (the model's parameter count).
    pub gradient_len: usize,
}

impl RoundSettings {
    /// The settings of the next round from the applied config and the model's size.
    pub fn from_config(config: &TrainingConfig, gradient_len: usize) -> RoundSettings {
        RoundSettings {
            consistency: config.consistency,
            rule: config.rule,
            deadline_ms: config.round_deadline_ms,
            batch_size: config.batch_size,
            learning_rate: config.learning_rate,
            lr_schedule: config.lr_schedule,
            optimizer: config.optimizer,
            gradient_len,
        }
    }

    /// The learning rate of `round` under the schedule.
    pub fn rate(&self, round: u64) -> f32 {
        self.lr_schedule.rate(self.learning_rate, round)
    }
}

/// Why a gradient was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The gradient is for a round already past: before the open one, or at or before the one
    /// being reduced or proposed.
    #[error("gradient for round {round}, but round {current} is open")]
    StaleRound {
        /// The round the gradient names.
        round: u64,
        /// The round in progress.
        current: u64,
    },
    /// The gradient is for a round after the one in progress.
    #[error("gradient for round {round}, ahead of the open round {current}")]
    FutureRound {
        /// The round the gradient names.
        round: u64,
        /// The round in progress.
        current: u64,
    },
    /// The gradient came while the coordinator was idle (no round in progress).
    #[error("no round is collecting gradients")]
    NotCollecting,
    /// The sender is not in the round's announced worker list.
    #[error("the sender is not a worker of this round")]
    NotAWorker,
    /// The gradient was computed at params other than the round's `params_hash`.
    #[error("gradient computed at other params than the round's")]
    WrongParams,
    /// The gradient's length differs from the model's parameter count.
    #[error("gradient has {found} values, the model {expected}")]
    WrongLength {
        /// The model's parameter count.
        expected: usize,
        /// Values the gradient holds.
        found: usize,
    },
    /// A gradient value is NaN or infinite.
    #[error("gradient holds a non-finite value at coordinate {coordinate}")]
    NonFinite {
        /// Index of the first non-finite value.
        coordinate: usize,
    },
    /// The gradient's loss is NaN or infinite.
    #[error("gradient reports a non-finite loss")]
    NonFiniteLoss,
    /// This worker's gradient for the round was already accepted.
    #[error("the worker already sent a gradient for this round")]
    Duplicate,
}

/// The leader's counters (for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundCounters {
    /// Gradients taken into a round.
    pub gradients_accepted: u64,
    /// Gradients refused with `Refusal::StaleRound`.
    pub refused_stale: u64,
    /// Gradients refused with `Refusal::FutureRound`.
    pub refused_future: u64,
    /// Gradients refused with `Refusal::NotCollecting`.
    pub refused_not_collecting: u64,
    /// Gradients refused with `Refusal::NotAWorker`.
    pub refused_not_worker: u64,
    /// Gradients refused with `Refusal::WrongParams`.
    pub refused_wrong_params: u64,
    /// Gradients refused with `Refusal::WrongLength`.
    pub refused_wrong_length: u64,
    /// Gradients refused with `Refusal::NonFinite` or `Refusal::NonFiniteLoss`.
    pub refused_non_finite: u64,
    /// Gradients refused with `Refusal::Duplicate`.
    pub refused_duplicate: u64,
    /// Attempts whose deadline passed before the consistency level was reached.
    pub rounds_abandoned: u64,
    /// Rounds that reached their level and were handed over for reduction.
    pub rounds_reduced: u64,
    /// Gradient bytes accepted.
    pub bytes_received: u64,
}

impl RoundCounters {
    /// All refusals together.
    pub fn refused(&self) -> u64 {
        self.refused_stale
            + self.refused_future
            + self.refused_not_collecting
            + self.refused_not_worker
            + self.refused_wrong_params
            + self.refused_wrong_length
            + self.refused_non_finite
            + self.refused_duplicate
    }

    fn count(&mut self, refusal: Refusal) {
        let slot = match refusal {
            Refusal::StaleRound { .. } => &mut self.refused_stale,
            Refusal::FutureRound { .. } => &mut self.refused_future,
            Refusal::NotCollecting => &mut self.refused_not_collecting,
            Refusal::NotAWorker => &mut self.refused_not_worker,
            Refusal::WrongParams => &mut self.refused_wrong_params,
            Refusal::WrongLength { .. } => &mut self.refused_wrong_length,
            Refusal::NonFinite { .. } | Refusal::NonFiniteLoss => &mut self.refused_non_finite,
            Refusal::Duplicate => &mut self.refused_duplicate,
        };
        *slot += 1;
    }
}

/// One worker's accepted gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// The worker that sent it.
    pub worker: NodeId,
    /// Its batch loss before the step.
    pub loss: f32,
    /// The gradient, laid out like the parameters.
    pub values: Vec<f32>,
}

/// Gradients to reduce, in the announced workers' order.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduction {
    /// The round being reduced.
    pub round: u64,
    /// The params the gradients were computed at (the trainer must hold them).
    pub params_hash: StateHash,
    /// The rule to reduce with (`RuleSpec::to_rule` of the contributor count).
    pub rule: Rule,
    /// The learning rate to step with (the schedule's rate of this round).
    pub learning_rate: f32,
    /// The optimizer's settings to step with.
    pub optimizer: OptimizerSettings,
    /// The accepted gradients, ordered by the workers' positions in the announcement.
    pub contributions: Vec<Contribution>,
}

impl Reduction {
    /// The gradients as the trainer takes them.
    pub fn gradients(&self) -> Vec<&[f32]> {
        self.contributions
            .iter()
            .map(|c| c.values.as_slice())
            .collect()
    }
}

/// What the glue must do next.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Leader: send this announcement to every worker in it (a local worker included).
    Announce(RoundAnnounce),
    /// Leader: the deadline passed before the level was reached; an `Announce` of the next
    /// attempt follows.
    Abandoned {
        /// The round whose attempt was given up.
        round: u64,
        /// The attempt given up (0 for the first announcement).
        attempt: u32,
        /// Gradients accepted before the deadline.
        received: usize,
        /// Gradients the attempt needed (the level, at least the rule's minimum inputs).
        required: usize,
    },
    /// Leader: reduce and step, then call `Coordinator::on_stepped`.
    Reduce(Reduction),
    /// Leader: propose this command through Raft.
    Propose(Command),
    /// Worker: compute the gradient of shard `worker_index` at `params_hash`, then call
    /// `Worker::on_computed`.
    ComputeGradient {
        /// The round the gradient is for.
        round: u64,
        /// The params to compute the gradient at.
        params_hash: StateHash,
        /// This worker's shard: its position in the announced worker list.
        worker_index: usize,
        /// Rows in the mini-batch.
        batch_size: usize,
    },
    /// Worker: send the gradient to the leader `to`.
    SendGradient {
        /// The leader that announced the round.
        to: NodeId,
        /// The computed gradient.
        gradient: Gradient,
    },
}

#[derive(Debug)]
struct Collecting {
    announce: RoundAnnounce,
    settings: RoundSettings,
    required: usize,
    deadline: u64,
    received: BTreeMap<usize, Contribution>,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Collecting(Collecting),
    Reducing {
        round: u64,
        parent_hash: StateHash,
        settings: RoundSettings,
        rule: Rule,
        contributors: Vec<NodeId>,
        loss: f32,
    },
    Proposed {
        round: u64,
    },
}

/// The leader's side of the round protocol.
#[derive(Debug)]
pub struct Coordinator {
    client: u64,
    phase: Phase,
    counters: RoundCounters,
    actions: VecDeque<Action>,
}

impl Coordinator {
    /// An idle coordinator; `client` names its proposals (`RequestId { client, seq: round }`).
    pub fn new(client: u64) -> Coordinator {
        Coordinator {
            client,
            phase: Phase::Idle,
            counters: RoundCounters::default(),
            actions: VecDeque::new(),
        }
    }

    /// Whether no round is in progress (announce the next one).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle)
    }

    /// The round in progress, if any.
    pub fn current_round(&self) -> Option<u64> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Collecting(c) => Some(c.announce.round),
            Phase::Reducing { round, .. } | Phase::Proposed { round } => Some(*round),
        }
    }

    /// The leader's counters.
    pub fn counters(&self) -> RoundCounters {
        self.counters
    }

    /// Starts collecting gradients for `round` at `params_hash` from `workers` (their order is
    /// the reduction order and each one's position its shard). Replaces any round in progress.
    pub fn announce(
        &mut self,
        now: u64,
        round: u64,
        params_hash: StateHash,
        workers: Vec<NodeId>,
        settings: RoundSettings,
    ) {
        let n = workers.len();
        let required = settings
            .consistency
            .required(n)
            .max(settings.rule.to_rule(n).min_inputs())
            .min(n);
        let announce = RoundAnnounce {
            round,
            attempt: 0,
            params_hash,
            workers,
            gradient_len: settings.gradient_len as u64,
            batch_size: u32::try_from(settings.batch_size).unwrap_or(u32::MAX),
        };
        self.actions.push_back(Action::Announce(announce.clone()));
        self.phase = Phase::Collecting(Collecting {
            announce,
            settings,
            required,
            deadline: now.saturating_add(settings.deadline_ms),
            received: BTreeMap::new(),
        });
    }

    /// Takes a gradient from `from`; on success it is kept for the round's reduction.
    pub fn on_gradient(
        &mut self,
        now: u64,
        from: NodeId,
        gradient: Gradient,
    ) -> Result<(), Refusal> {
        let result = self.check_gradient(from, &gradient);
        match result {
            Ok(worker_index) => {
                self.counters.gradients_accepted += 1;
                self.counters.bytes_received += 4 * gradient.values.len() as u64;
                if let Phase::Collecting(c) = &mut self.phase {
                    c.received.insert(
                        worker_index,
                        Contribution {
                            worker: from,
                            loss: gradient.loss,
                            values: gradient.values,
                        },
                    );
                }
                self.tick(now);
                Ok(())
            }
            Err(refusal) => {
                self.counters.count(refusal);
                Err(refusal)
            }
        }
    }

    fn check_gradient(&self, from: NodeId, gradient: &Gradient) -> Result<usize, Refusal> {
        let current = match &self.phase {
            Phase::Collecting(c) => c,
            Phase::Idle => return Err(Refusal::NotCollecting),
            Phase::Reducing { round, .. } | Phase::Proposed { round } => {
                return Err(match gradient.round <= *round {
                    true => Refusal::StaleRound {
                        round: gradient.round,
                        current: *round,
                    },
                    false => Refusal::FutureRound {
                        round: gradient.round,
                        current: *round,
                    },
                });
            }
        };
        let open = current.announce.round;
        if gradient.round < open {
            return Err(Refusal::StaleRound {
                round: gradient.round,
                current: open,
            });
        }
        if gradient.round > open {
            return Err(Refusal::FutureRound {
                round: gradient.round,
                current: open,
            });
        }
        let index = current
            .announce
            .workers
            .iter()
            .position(|w| *w == from)
            .ok_or(Refusal::NotAWorker)?;
        if gradient.params_hash != current.announce.params_hash {
            return Err(Refusal::WrongParams);
        }
        if gradient.values.len() != current.settings.gradient_len {
            return Err(Refusal::WrongLength {
                expected: current.settings.gradient_len,
                found: gradient.values.len(),
            });
        }
        if !gradient.loss.is_finite() {
            return Err(Refusal::NonFiniteLoss);
        }
        if let Some(coordinate) = gradient.values.iter().position(|v| !v.is_finite()) {
            return Err(Refusal::NonFinite { coordinate });
        }
        if current.received.contains_key(&index) {
            return Err(Refusal::Duplicate);
        }
        Ok(index)
    }

    /// Advances time: reduces once the level is reached, abandons and re-announces once the
    /// deadline passes first.
    pub fn tick(&mut self, now: u64) {
        let Phase::Collecting(c) = &mut self.phase else {
            return;
        };
        if c.received.len() >= c.required && !c.received.is_empty() {
            let Phase::Collecting(c) = std::mem::replace(&mut self.phase, Phase::Idle) else {
                return;
            };
            let contributions: Vec<Contribution> = c.received.into_values().collect();
            let loss_sum: f64 = contributions.iter().map(|c| f64::from(c.loss)).sum();
            let rule = c.settings.rule.to_rule(contributions.len());
            self.counters.rounds_reduced += 1;
            self.phase = Phase::Reducing {
                round: c.announce.round,
                parent_hash: c.announce.params_hash,
                settings: c.settings,
                rule,
                contributors: contributions.iter().map(|c| c.worker).collect(),
                loss: mean_loss(loss_sum, contributions.len()),
            };
            self.actions.push_back(Action::Reduce(Reduction {
                round: c.announce.round,
                params_hash: c.announce.params_hash,
                rule,
                learning_rate: c.settings.rate(c.announce.round),
                optimizer: c.settings.optimizer,
                contributions,
            }));
        } else if now >= c.deadline {
            self.counters.rounds_abandoned += 1;
            self.actions.push_back(Action::Abandoned {
                round: c.announce.round,
                attempt: c.announce.attempt,
                received: c.received.len(),
                required: c.required,
            });
            c.announce.attempt += 1;
            c.received.clear();
            c.deadline = now.saturating_add(c.settings.deadline_ms);
            self.actions.push_back(Action::Announce(c.announce.clone()));
        }
    }

    /// When `tick` should next be called (the open round's deadline).
    #[must_use = "the driver must call `tick` by this time"]
    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.phase {
            Phase::Collecting(c) => Some(c.deadline),
            _ => None,
        }
    }

    /// The trainer stepped round `round` to `params_hash` with the reduced gradient stored as
    /// the blob `reduced_hash`: queue the proposal.
    pub fn on_stepped(&mut self, round: u64, params_hash: StateHash, reduced_hash: BlobHash) {
        if !matches!(self.phase, Phase::Reducing { round: r, .. } if r == round) {
            return;
        }
        let Phase::Reducing {
            parent_hash,
            settings,
            rule,
            contributors,
            loss,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Proposed { round })
        else {
            return;
        };
        self.actions
            .push_back(Action::Propose(Command::RoundCommitted(RoundCommitted {
                request: RequestId {
                    client: self.client,
                    seq: round,
                },
                round,
                parent_hash,
                params_hash,
                reduced_hash,
                contributors,
                loss,
                learning_rate: settings.rate(round),
                optimizer: settings.optimizer,
                rule,
                consistency: settings.consistency,
            })));
    }

    /// The reduction or step of `round` failed (e.g. a lost GPU): the round is abandoned and
    /// the glue announces it again.
    pub fn on_reduce_failed(&mut self, round: u64) {
        if self.current_round() == Some(round) {
            self.counters.rounds_abandoned += 1;
            self.phase = Phase::Idle;
        }
    }

    /// Follows the state machine: a committed (or refused) round at or past the one in
    /// progress, or a restored snapshot, ends it.
    pub fn on_applied(&mut self, event: &Applied) {
        let Some(current) = self.current_round() else {
            return;
        };
        let done = match event {
            Applied::Round { round, .. } => round.round >= current,
            Applied::RoundRefused { round, .. } => {
                *round >= current && matches!(self.phase, Phase::Proposed { .. })
            }
            Applied::Restored { round, .. } => *round >= current,
            _ => false,
        };
        if done {
            self.phase = Phase::Idle;
        }
    }

    /// This node no longer leads: forget the round in progress and any queued actions.
    pub fn step_down(&mut self) {
        self.phase = Phase::Idle;
        self.actions.clear();
    }

    /// The next action, in order.
    #[must_use = "an action polled is removed; the driver must perform it"]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
#[path = "round_tests.rs"]
mod tests;
