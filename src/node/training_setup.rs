//! What a training node derives from its `[train]` section before any service starts: the
//! worker list, the data (the embedded digits or a CSV file), the seeded `Setup` every node
//! computes identically (split, initial params, shards), this node's shard worker and the
//! replicated config store's defaults. Reading the CSV is the only I/O. An external model
//! (`train.model = "external"`) has no data, setup or genesis here: its round 0 comes from
//! the first worker that registers.

use std::io::Read;
use std::path::Path;

use crate::cluster::TrainingConfig;
use crate::config::{ModelKind, TrainSection};
use crate::net::NodeId;
use crate::train::csv::{self, LabelColumn};
use crate::train::setup::{Setup, ShardWorker};
use crate::train::{Dataset, StateHash, TrainConfig, Trainer};

use super::NodeError;

/// Largest CSV file `train.data` reads.
const MAX_DATA_BYTES: u64 = 1 << 30;

/// A training node's starting point.
pub(super) struct Prepared {
    /// Position = shard = reduction order.
    pub workers: Vec<NodeId>,
    /// The built-in model's setup (`None`: external).
    pub setup: Option<Setup>,
    /// This node's shard worker, when it is in `workers` (built-in model).
    pub shard: Option<ShardWorker>,
    /// Hash of the initial training state (round 0), the same on every node (`None`: an
    /// external model, registered at run time).
    pub genesis: Option<StateHash>,
    /// The config store's starting values.
    pub defaults: TrainingConfig,
    /// Values in a gradient (0 until an external model is registered).
    pub gradient_len: usize,
    /// The cluster's seed (external workers derive their batches from it).
    pub seed: u64,
}

/// Builds the starting point of node `own` from `train`.
pub(super) fn prepare(train: &TrainSection, own: NodeId) -> Result<Prepared, NodeError> {
    let workers = train.workers(own)?;
    let defaults = train.training_defaults()?;
    if train.model == ModelKind::External {
        return Ok(Prepared {
            workers,
            setup: None,
            shard: None,
            genesis: None,
            defaults,
            gradient_len: 0,
            seed: train.seed,
        });
    }
    let data = match &train.data {
        Some(path) => load_csv(path)?,
        None => Dataset::digits()?,
    };
    let config = TrainConfig {
        workers: workers.len(),
        byzantine: 0,
        rule: defaults.rule.to_rule(workers.len()),
        optimizer: train.optimizer,
        learning_rate: defaults.learning_rate,
        batch: defaults.batch_size,
        seed: train.seed,
        hidden: train.hidden.clone(),
        ..TrainConfig::default()
    };
    let setup = Setup::new(&config, &data)?;
    let shard = match workers.iter().position(|w| *w == own) {
        Some(index) => setup.worker_with(index, train.attack),
        None => None,
    };
    let trainer = Trainer::new(
        setup.initial.clone(),
        config.rule,
        crate::train::aggregate::Reducer::Cpu,
    )?;
    Ok(Prepared {
        genesis: Some(trainer.state_hash()),
        gradient_len: trainer.params().len(),
        workers,
        setup: Some(setup),
        shard,
        defaults,
        seed: train.seed,
    })
}

fn load_csv(path: &Path) -> Result<Dataset, NodeError> {
    let unreadable = |source| NodeError::TrainingData {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut text = String::new();
    file.take(MAX_DATA_BYTES)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    Ok(csv::parse(
        &text,
        LabelColumn::Last,
        &path.display().to_string(),
    )?)
}
