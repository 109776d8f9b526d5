//! The external-worker edge of the training service, as typed values: the job a node's worker
//! computes next (`WorkerJob`, in `TrainingView`), the committed params the trainer holds
//! (`ParamsView`, on its own watch channel, for `GET /train/params/{hash}` and checkpoints),
//! and the requests the worker API sends down (`WorkerRequest`) with their answers.
//!
//! Plain data: no behaviour, no I/O, nothing about HTTP or JSON.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::train::optimizer::OptimizerSettings;
use crate::train::{Layout, StateHash};

/// The gradient this node's worker should compute next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerJob {
    /// The round the gradient is for.
    pub round: u64,
    /// The params to compute it at (`GET /train/params/{hash}`).
    pub params_hash: StateHash,
    /// This node's place in the worker list: its shard.
    pub worker_index: usize,
    /// Workers in the list (the shard count).
    pub workers: usize,
    /// Rows in the mini-batch.
    pub batch_size: usize,
    /// The cluster's seed (`train.seed`): with the round and the shard it names the batch.
    pub seed: u64,
}

/// The params after the last committed round this node's trainer applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamsView {
    /// The round applied (0: the initial params).
    pub round: u64,
    /// The training state's hash (the committed `params_hash`).
    pub params_hash: StateHash,
    /// Tensor names and shapes (for the built-in MLP: `layers.I.weight`, `layers.I.bias`).
    pub layout: Arc<Layout>,
    /// The flat parameter vector.
    pub values: Arc<Vec<f32>>,
    /// The rule of the last applied round (`none` before the first).
    pub rule: String,
    /// The optimizer the last round stepped with.
    pub optimizer: OptimizerSettings,
    /// The learning rate the last round stepped with.
    pub learning_rate: f32,
}

/// A worker registered with this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRegistered {
    /// The session id every later request of this worker names; a new registration replaces it.
    pub worker: u64,
    /// The cluster's round-0 params hash.
    pub params_hash: StateHash,
    /// Whether this worker's initial values became round 0 (false: another worker's did, with
    /// the same layout).
    pub created: bool,
}

/// A gradient from this node's worker.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientSubmission {
    /// The worker's session id.
    pub worker: u64,
    /// The job's round.
    pub round: u64,
    /// The job's params hash.
    pub params_hash: StateHash,
    /// The batch loss at those params.
    pub loss: f32,
    /// The gradient, laid out like the params.
    pub values: Vec<f32>,
}

/// Evaluation metrics a worker measured on the params after `round`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerReport {
    /// The worker's session id.
    pub worker: u64,
    /// The round whose params were evaluated.
    pub round: u64,
    /// Held-out accuracy in 0..=1.
    pub accuracy: Option<f32>,
    /// Held-out loss.
    pub loss: Option<f32>,
}

/// A request from the worker API to the training service.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerRequest {
    /// Register a worker with its model's layout and initial values.
    Register {
        /// The model's tensors.
        layout: Layout,
        /// Initial values (round 0 if no model is registered yet).
        values: Vec<f32>,
        /// Gets the session or why it was refused.
        reply: oneshot::Sender<Result<WorkerRegistered, WorkerFailure>>,
    },
    /// Submit the gradient of the open job.
    Submit {
        /// The gradient and what it claims to be for.
        gradient: GradientSubmission,
        /// Gets `Ok` once it was taken (sent to the leader) or why it was refused.
        reply: oneshot::Sender<Result<(), WorkerFailure>>,
    },
    /// Report evaluation metrics (shown in `/status`).
    Report {
        /// The metrics.
        report: WorkerReport,
        /// Gets `Ok` or why it was refused.
        reply: oneshot::Sender<Result<(), WorkerFailure>>,
    },
}

/// Why a worker request was refused; each names the reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerFailure {
    /// Malformed: wrong length, a non-finite value, a bad layout.
    BadRequest(String),
    /// The worker's session is not this node's current one (restarted elsewhere, never
    /// registered).
    UnknownWorker(String),
    /// The gradient is for a round or params that are not the open job's.
    Stale(String),
    /// The worker's model differs from the cluster's registered one.
    LayoutDiffers(String),
    /// Not now: no model registered yet, the cluster cannot commit; retry.
    Unavailable(String),
}
