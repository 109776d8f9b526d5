//! The training service's compute thread: owns this node's `Trainer` (the params after the
//! last committed round it applied), its shard's `ShardWorker`, the held-out test rows and the
//! blob store. It takes jobs in order — compute a gradient, reduce and step a copy (leader),
//! apply a committed round, take a fetched blob — and reports what it did. Heavy arithmetic
//! stays off the async runtime, and one thread gives one order: a committed round is always
//! applied before a later gradient is computed at its params.
//!
//! A committed round is applied by stepping with its reduced gradient (a blob, fetched by hash
//! when this node lacks it) and checking the resulting params hash against the committed one;
//! a mismatch ends the thread with `Done::Diverged`, which stops the node.
//!
//! Snapshots: when a Raft snapshot replaced the round log (installed from the leader, or this
//! node's own after a restart) the thread jumps to the training state the snapshot names — a
//! blob named by the params hash, fetched from peers when missing — checks its hash (a
//! mismatch is `Done::Diverged` too) and applies later rounds from there. When the consensus
//! service prepares a snapshot, the thread stores the training state after that round as a
//! blob (`Checkpoint`), and removes the blobs compaction no longer needs (`Collect`).
//!
//! External model (`train.model = "external"`): the thread starts without params; the
//! committed round 0 arrives as a `Restore` of round 0, whose blob is the registered training
//! state (`Done::Model` tells the service its layout). It computes no gradient (the worker
//! process does) and evaluates nothing (the worker reports its metrics). After every applied
//! round it publishes the params on the `ParamsView` channel the worker API reads.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::cluster::round::Reduction;
use crate::cluster::{BlobHash, RoundCommitted};
use crate::gpu::{AdapterChoice, DeviceChoice};
use crate::train::aggregate::{Reducer, Rule};
use crate::train::optimizer::OptimizerSettings;
use crate::train::params::{vector_from_bytes, vector_to_bytes};
use crate::train::setup::{Setup, ShardWorker};
use crate::train::{Layout, ModelShape, StateHash, TensorSpec, TrainState, Trainer};
use crate::views::ParamsView;

use super::blobs::BlobStore;

/// Work for the thread, in the order the service decided it.
#[derive(Debug)]
pub(super) enum Job {
    /// Compute this node's gradient for `round` once the trainer holds `params_hash`.
    Compute {
        round: u64,
        params_hash: StateHash,
        batch_size: usize,
    },
    /// Leader: reduce and step a copy of the state.
    Reduce(Reduction),
    /// A round committed: step to it (after every earlier one).
    Commit(RoundCommitted),
    /// A blob some waiting round needs arrived from a peer.
    Blob(Vec<u8>),
    /// A snapshot replaced the round log: jump to the training state after `round`.
    Restore { round: u64, params_hash: StateHash },
    /// Store the training state after `round` as a blob once the trainer holds it.
    Checkpoint { round: u64, params_hash: StateHash },
    /// Remove these blobs, each of a round, if the trainer has applied that round.
    Collect(Vec<(u64, BlobHash)>),
}

/// What the thread did.
#[derive(Debug)]
pub(super) enum Done {
    Computed {
        round: u64,
        params_hash: StateHash,
        loss: f32,
        values: Vec<f32>,
    },
    Stepped {
        round: u64,
        params_hash: StateHash,
        reduced_hash: BlobHash,
        /// The stored blob's bytes, for the leader's push (no second read from disk).
        reduced: Vec<u8>,
    },
    ReduceFailed {
        round: u64,
        reason: String,
    },
    /// The trainer now holds the params after `round`.
    Applied {
        round: u64,
    },
    /// The trainer jumped to a snapshot's training state after `round`.
    Restored {
        round: u64,
    },
    /// Held-out accuracy and loss after `round`.
    Evaluated {
        round: u64,
        accuracy: f32,
        loss: f32,
    },
    /// Committed rounds wait for this blob.
    NeedBlob(BlobHash),
    /// The trainer took an external model's state: its layout (the registered one).
    Model(Layout),
    /// Fatal: stepping `round` did not give its committed params hash.
    Diverged {
        round: u64,
        expected: StateHash,
        found: StateHash,
    },
    /// Fatal: the trainer cannot go on (a bad blob that hashes right, a failed step).
    Failed(String),
}

/// What the thread starts from.
pub(super) struct ThreadParts {
    /// The built-in model's setup (`None`: an external model).
    pub setup: Option<Setup>,
    /// Where the params after each applied round are published.
    pub params: watch::Sender<Option<ParamsView>>,
    /// This node's shard worker, when it is a worker.
    pub shard: Option<ShardWorker>,
    pub device: DeviceChoice,
    pub blobs: BlobStore,
    /// Evaluate on the held-out rows after every this many rounds (and the first).
    pub eval_every: u64,
    /// The cluster's last round (`train.rounds`), evaluated whatever `eval_every` says.
    pub last_round: Option<u64>,
}

/// Starts the thread; jobs go in through the returned sender, results come out on `done`.
pub(super) fn spawn(
    parts: ThreadParts,
    done: mpsc::UnboundedSender<Done>,
) -> std::io::Result<std_mpsc::Sender<Job>> {
    let (jobs, inbox) = std_mpsc::channel();
    std::thread::Builder::new()
        .name("hashgrad-trainer".into())
        .spawn(move || run(parts, inbox, done))?;
    Ok(jobs)
}

struct Pending {
    round: u64,
    params_hash: StateHash,
    batch_size: usize,
}

struct State {
    setup: Option<Setup>,
    params: watch::Sender<Option<ParamsView>>,
    /// The rule, optimizer and rate of the last applied round (for the params view).
    last_step: (String, OptimizerSettings, f32),
    trainer: Trainer,
    shard: Option<ShardWorker>,
    blobs: BlobStore,
    eval_every: u64,
    last_round: Option<u64>,
    /// Rounds this trainer applied.
    applied: u64,
    /// Batches the shard worker has drawn.
    drawn: u64,
    commits: VecDeque<RoundCommitted>,
    /// A snapshot's training state to jump to before any later round.
    restore: Option<(u64, StateHash)>,
    /// The training state to store as a blob once the trainer reaches its round.
    checkpoint: Option<(u64, StateHash)>,
    asked: Option<BlobHash>,
    compute: Option<Pending>,
    done: mpsc::UnboundedSender<Done>,
}

fn run(parts: ThreadParts, inbox: std_mpsc::Receiver<Job>, done: mpsc::UnboundedSender<Done>) {
    let reducer = Reducer::open(parts.device, &AdapterChoice::Auto).unwrap_or_else(|error| {
        warn!(%error, "no GPU for reductions; reducing on the CPU");
        Reducer::Cpu
    });
    debug!(reducer = %reducer.describe(), "trainer thread started");
    let trainer = match &parts.setup {
        Some(setup) => match Trainer::new(setup.initial.clone(), Rule::Mean, reducer) {
            Ok(trainer) => trainer,
            Err(error) => {
                let _ = done.send(Done::Failed(error.to_string()));
                return;
            }
        },
        None => Trainer::unregistered(Rule::Mean, reducer),
    };
    let last_step = (
        "none".to_string(),
        trainer.state().optimizer.settings,
        trainer.state().optimizer.lr,
    );
    let mut state = State {
        setup: parts.setup,
        params: parts.params,
        last_step,
        trainer,
        shard: parts.shard,
        blobs: parts.blobs,
        eval_every: parts.eval_every.max(1),
        last_round: parts.last_round,
        applied: 0,
        drawn: 0,
        commits: VecDeque::new(),
        restore: None,
        checkpoint: None,
        asked: None,
        compute: None,
        done,
    };
    state.publish();
    while let Ok(job) = inbox.recv() {
        let ok = match job {
            Job::Compute {
                round,
                params_hash,
                batch_size,
            } => {
                state.compute = Some(Pending {
                    round,
                    params_hash,
                    batch_size,
                });
                true
            }
            Job::Reduce(reduction) => {
                state.apply_commits() && {
                    state.reduce(reduction);
                    true
                }
            }
            Job::Commit(round) => {
                state.commits.push_back(round);
                true
            }
            Job::Blob(bytes) => {
                if let Err(error) = state.blobs.put(&bytes) {
                    warn!(%error, "cannot store a fetched blob");
                }
                state.asked = None;
                true
            }
            Job::Restore { round, params_hash } => {
                state.commits.retain(|c| c.round > round);
                state.restore = Some((round, params_hash));
                true
            }
            Job::Checkpoint { round, params_hash } => {
                state.checkpoint = Some((round, params_hash));
                true
            }
            Job::Collect(blobs) => {
                state.collect(&blobs);
                true
            }
        };
        if !ok || !state.apply_commits() {
            return;
        }
        state.compute_if_ready();
    }
}

impl State {
    fn send(&self, done: Done) {
        let _ = self.done.send(done);
    }

    /// Publishes the params the trainer holds (nothing before an external model is known).
    fn publish(&self) {
        let state = self.trainer.state();
        let layout = match &state.model {
            ModelShape::External(layout) if layout.tensors.is_empty() => return,
            ModelShape::External(layout) => layout.clone(),
            ModelShape::Mlp(layers) => mlp_layout(layers),
        };
        let (rule, optimizer, learning_rate) = self.last_step.clone();
        self.params.send_replace(Some(ParamsView {
            round: self.applied,
            params_hash: self.trainer.state_hash(),
            layout: Arc::new(layout),
            values: Arc::new(state.params.clone()),
            rule,
            optimizer,
            learning_rate,
        }));
    }

    /// Applies queued committed rounds while their blobs are at hand (after a pending
    /// snapshot's state); false on a fatal error.
    fn apply_commits(&mut self) -> bool {
        if !self.restore_if_ready() {
            return false;
        }
        if self.restore.is_some() {
            return true;
        }
        self.checkpoint_if_due();
        while let Some(round) = self.commits.front() {
            if round.round <= self.applied {
                self.commits.pop_front();
                continue;
            }
            let Some(blob) = self.blobs.get(&round.reduced_hash) else {
                if self.asked != Some(round.reduced_hash) {
                    self.asked = Some(round.reduced_hash);
                    self.send(Done::NeedBlob(round.reduced_hash));
                }
                return true;
            };
            let Some(round) = self.commits.pop_front() else {
                return true;
            };
            if let Err(reason) = self.step(&round, &blob) {
                self.send(reason);
                return false;
            }
            self.checkpoint_if_due();
        }
        true
    }

    /// Jumps to a snapshot's training state once its blob is at hand (asking for it when
    /// missing); false on a fatal error: a blob that is no training state of this model, or
    /// whose hash is not the snapshot's.
    fn restore_if_ready(&mut self) -> bool {
        let Some((round, params_hash)) = self.restore else {
            return true;
        };
        if self.trainer.state_hash() != params_hash {
            let hash = BlobHash::from(params_hash);
            let Some(bytes) = self.blobs.get(&hash) else {
                if self.asked != Some(hash) {
                    self.asked = Some(hash);
                    self.send(Done::NeedBlob(hash));
                }
                return true;
            };
            if let Err(fatal) = self.load(round, params_hash, &bytes) {
                self.send(fatal);
                return false;
            }
            info!(round, params = %params_hash, "trainer jumped to the snapshot's training state");
        }
        self.restore = None;
        self.applied = round;
        if let ModelShape::External(layout) = &self.trainer.state().model {
            self.send(Done::Model(layout.clone()));
        }
        self.send(Done::Restored { round });
        self.publish();
        self.evaluate();
        true
    }

    fn load(&mut self, round: u64, params_hash: StateHash, bytes: &[u8]) -> Result<(), Done> {
        let state = TrainState::from_bytes(bytes)
            .map_err(|e| Done::Failed(format!("snapshot of round {round}: params blob: {e}")))?;
        let found = state.hash();
        if found != params_hash {
            return Err(Done::Diverged {
                round,
                expected: params_hash,
                found,
            });
        }
        if state.round != round {
            return Err(Done::Failed(format!(
                "the snapshot of round {round} names a training state after {} rounds",
                state.round
            )));
        }
        self.trainer
            .restore(state)
            .map_err(|e| Done::Failed(format!("snapshot of round {round}: {e}")))
    }

    /// Stores the training state as a blob if the trainer is at the checkpoint's round.
    fn checkpoint_if_due(&mut self) {
        let Some((round, params_hash)) = self.checkpoint else {
            return;
        };
        if self.applied < round {
            return;
        }
        self.checkpoint = None;
        if self.applied > round {
            debug!(round, "checkpoint overtaken by later rounds; skipped");
            return;
        }
        let bytes = self.trainer.state().to_bytes();
        let hash = BlobHash::of(&bytes);
        if hash != BlobHash::from(params_hash) {
            warn!(round, expected = %params_hash, found = %hash, "trainer state is not the snapshot's; not stored");
            return;
        }
        match self.blobs.put(&bytes) {
            Ok(_) => debug!(round, params = %params_hash, "training state stored for a snapshot"),
            Err(error) => warn!(round, %error, "cannot store the training state for a snapshot"),
        }
    }

    /// Removes blobs of rounds this trainer has applied (a lagging trainer keeps the rest).
    fn collect(&self, blobs: &[(u64, BlobHash)]) {
        let mut removed = 0;
        for (round, hash) in blobs {
            if *round > self.applied {
                continue;
            }
            match self.blobs.remove(hash) {
                Ok(()) => removed += 1,
                Err(error) => warn!(blob = %hash, %error, "cannot remove a collected blob"),
            }
        }
        debug!(
            removed,
            offered = blobs.len(),
            "blobs collected after compaction"
        );
    }

    fn step(&mut self, round: &RoundCommitted, blob: &[u8]) -> Result<(), Done> {
        let reduced = vector_from_bytes(blob, self.trainer.params().len())
            .map_err(|e| Done::Failed(format!("round {}: reduced gradient: {e}", round.round)))?;
        let before = self.trainer.state_hash();
        if before != round.parent_hash {
            return Err(Done::Diverged {
                round: round.round,
                expected: round.parent_hash,
                found: before,
            });
        }
        self.trainer.configure(&round.optimizer);
        self.trainer.set_learning_rate(round.learning_rate);
        self.trainer
            .step(&reduced)
            .map_err(|e| Done::Failed(format!("round {}: step: {e}", round.round)))?;
        let after = self.trainer.state_hash();
        if after != round.params_hash {
            return Err(Done::Diverged {
                round: round.round,
                expected: round.params_hash,
                found: after,
            });
        }
        self.applied = round.round;
        self.last_step = (round.rule.to_string(), round.optimizer, round.learning_rate);
        self.send(Done::Applied { round: round.round });
        self.publish();
        if round.round == 1
            || round.round.is_multiple_of(self.eval_every)
            || self.last_round == Some(round.round)
        {
            self.evaluate();
        }
        Ok(())
    }

    fn evaluate(&self) {
        let (Some(model), Some(setup)) = (self.trainer.model(), &self.setup) else {
            return;
        };
        match model.evaluate(
            self.trainer.params(),
            setup.test.features(),
            setup.test.labels(),
        ) {
            Ok(evaluation) => self.send(Done::Evaluated {
                round: self.applied,
                accuracy: evaluation.accuracy,
                loss: evaluation.loss,
            }),
            Err(error) => warn!(%error, "evaluation failed"),
        }
    }

    /// Computes the pending gradient once the trainer holds its params and nothing earlier
    /// waits; a gradient for params this trainer has moved past is dropped.
    fn compute_if_ready(&mut self) {
        let Some(pending) = &self.compute else {
            return;
        };
        if !self.commits.is_empty()
            || self.restore.is_some()
            || self.trainer.state_hash() != pending.params_hash
        {
            if pending.round <= self.applied {
                self.compute = None;
            }
            return;
        }
        let Some(pending) = self.compute.take() else {
            return;
        };
        let (Some(shard), Some(model), Some(setup)) =
            (&mut self.shard, self.trainer.model(), &self.setup)
        else {
            return;
        };
        // A restarted node's sampler starts over; skip the batches of the rounds it missed so
        // round r draws the r-th batch, as it would have without the restart.
        let missed = (pending.round - 1).saturating_sub(self.drawn);
        shard.skip_batches(missed, pending.batch_size);
        self.drawn += missed + 1;
        let computed = shard.compute(
            model,
            self.trainer.params(),
            &setup.train,
            pending.batch_size,
        );
        let values = shard.gradient().to_vec();
        match computed {
            Ok(loss) => self.send(Done::Computed {
                round: pending.round,
                params_hash: pending.params_hash,
                loss,
                values,
            }),
            Err(error) => warn!(round = pending.round, %error, "gradient not computed"),
        }
    }

    fn reduce(&mut self, reduction: Reduction) {
        let round = reduction.round;
        let failed = |reason: String| Done::ReduceFailed { round, reason };
        if self.trainer.state_hash() != reduction.params_hash {
            self.send(failed("this node's params are not the round's yet".into()));
            return;
        }
        self.trainer.set_rule(reduction.rule);
        let reduced = match self.trainer.reduce(&reduction.gradients()) {
            Ok(reduced) => reduced,
            Err(error) => return self.send(failed(error.to_string())),
        };
        // Step a copy: this node's trainer steps when the round commits, like every other's.
        let mut copy =
            match Trainer::new(self.trainer.state().clone(), reduction.rule, Reducer::Cpu) {
                Ok(copy) => copy,
                Err(error) => return self.send(failed(error.to_string())),
            };
        copy.configure(&reduction.optimizer);
        copy.set_learning_rate(reduction.learning_rate);
        if let Err(error) = copy.step(&reduced) {
            return self.send(failed(error.to_string()));
        }
        let reduced = vector_to_bytes(&reduced);
        match self.blobs.put(&reduced) {
            Ok(reduced_hash) => self.send(Done::Stepped {
                round,
                params_hash: copy.state_hash(),
                reduced_hash,
                reduced,
            }),
            Err(error) => self.send(failed(format!(
                "cannot store the reduced gradient: {error}"
            ))),
        }
    }
}

/// The built-in MLP's parameters as named tensors, in vector order: per layer I the weights
/// (`layers.I.weight`, in×out row-major, as `train::model` keeps them), then the biases.
pub(super) fn mlp_layout(layers: &[usize]) -> Layout {
    let mut tensors = Vec::new();
    for (i, w) in layers.windows(2).enumerate() {
        tensors.push(TensorSpec {
            name: format!("layers.{i}.weight"),
            shape: vec![w[0] as u64, w[1] as u64],
        });
        tensors.push(TensorSpec {
            name: format!("layers.{i}.bias"),
            shape: vec![w[1] as u64],
        });
    }
    Layout { tensors }
}
