//! What the replicated state hands the training service, in log order: committed rounds
//! (queued on the trainer thread, filed as receipts, shown in `/status`), config outcomes
//! (answered to waiting writers), snapshot restores (the trainer jumps to the snapshot's
//! training state), checkpoints and blob collection (passed to the trainer thread).

use crate::events::EventKind;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::cluster::Applied;
use crate::cluster::receipt::to_receipt;

use super::super::ChainCommand;
use super::super::replicated::StateEvent;
use super::super::trainer_thread::Job;
use super::Service;

impl Service {
    pub(super) fn on_state_event(&mut self, event: StateEvent) {
        match event {
            StateEvent::Applied(applied) => self.on_applied(applied),
            StateEvent::Checkpoint { round, params_hash } => {
                let _ = self.jobs.send(Job::Checkpoint { round, params_hash });
            }
            StateEvent::Collect(blobs) => {
                let _ = self.jobs.send(Job::Collect(blobs));
            }
        }
    }

    fn on_applied(&mut self, event: Applied) {
        match &event {
            Applied::Round { round, .. } => {
                self.event_log.record(EventKind::RoundCommitted {
                    round: round.round,
                    loss: Some(f64::from(round.loss)).filter(|loss| loss.is_finite()),
                    contributors: round.contributors.len() as u32,
                    timings: self.lead.timer.timings(round.round),
                });
                self.committed_round = round.round;
                self.status.view.round = round.round;
                self.status.view.rounds_committed = round.round;
                self.status.view.loss = Some(round.loss);
                self.status.view.params_hash = Some(round.params_hash);
                self.metrics.training_round.set(round.round as i64);
                let _ = self.jobs.send(Job::Commit(round.clone()));
                let (reply, _) = oneshot::channel();
                let receipt = ChainCommand::SubmitReceipt(to_receipt(round), reply);
                if self.chain.try_send(receipt).is_err() {
                    debug!(round = round.round, "chain busy; receipt not pooled here");
                }
            }
            Applied::RoundRefused { round, reason, .. } => {
                debug!(round, ?reason, "round command refused by the state machine");
            }
            Applied::Config {
                request, outcome, ..
            } => {
                if let Some(waiter) = self.config_writes.waiters.remove(request) {
                    let _ = waiter.send(outcome.clone());
                }
            }
            Applied::ModelRegistered { model, .. } => {
                info!(params = %model.params_hash, values = model.params, "round 0 of the external model committed");
                self.on_model_committed(model.request, model.params_hash);
                let _ = self.jobs.send(Job::Restore {
                    round: 0,
                    params_hash: model.params_hash,
                });
            }
            Applied::ModelRefused { model, .. } => {
                debug!(params = %model.params_hash, "a second round 0 refused; the first one stands");
            }
            Applied::Undecodable { index, error } => {
                warn!(index, %error, "log entry this version cannot read skipped");
            }
            Applied::Restored {
                index,
                round,
                params_hash,
            } => {
                info!(
                    index,
                    round,
                    "a Raft snapshot replaced the round log; the trainer jumps to its params"
                );
                self.committed_round = *round;
                self.status.view.round = *round;
                self.status.view.rounds_committed = *round;
                self.status.view.params_hash = Some(*params_hash);
                self.metrics.training_round.set(*round as i64);
                let _ = self.jobs.send(Job::Restore {
                    round: *round,
                    params_hash: *params_hash,
                });
            }
        }
        if self.lead.leading {
            self.lead.coordinator.on_applied(&event);
            self.drain_coordinator();
        }
    }
}
