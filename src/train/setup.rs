//! What every participant of a training run derives from its config and data, identically
//! for a seed: the train/test split, the initial state and each worker's shard with its batch
//! sampler (`ShardWorker`). Used by `hashgrad train`'s simulation and by a training node's
//! trainer thread alike; no clocks or I/O.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::aggregate::Rule;
use super::attack::Attack;
use super::dataset::{Dataset, Scaler};
use super::model::{Mlp, Workspace};
use super::optimizer::{Optimizer, OptimizerKind};
use super::params::TrainState;
use super::shard::{BatchSampler, shards};
use super::trainer::Trainer;
use super::{Setting, TrainError};

/// Most workers in one run (simulated or a cluster's).
pub const MAX_WORKERS: usize = 1024;

/// How to run a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Number of workers K.
    pub workers: usize,
    /// How many of them (the last ones) are Byzantine.
    pub byzantine: usize,
    /// What the Byzantine workers do.
    pub attack: Attack,
    /// The aggregation rule.
    pub rule: Rule,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub learning_rate: f32,
    /// Rows per worker mini-batch.
    pub batch: usize,
    /// Seed for the split, shards, initial weights, batches and attack noise.
    pub seed: u64,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// Fraction of rows held out for the test set.
    pub test_fraction: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let optimizer = OptimizerKind::default();
        TrainConfig {
            workers: 4,
            byzantine: 0,
            attack: Attack::SignFlip,
            rule: Rule::Mean,
            optimizer,
            learning_rate: optimizer.default_learning_rate(),
            batch: 32,
            seed: 1,
            hidden: vec![64],
            test_fraction: 0.2,
        }
    }
}

/// One worker's part of a round: its shard's batch sampler, its attack (if Byzantine) and
/// buffers. `hashgrad train` runs K of them in one process; a cluster node runs the one whose
/// index is its position in the announced worker list, so both compute the same gradients.
#[derive(Debug)]
pub struct ShardWorker {
    sampler: BatchSampler,
    attack: Option<Attack>,
    rng: ChaCha8Rng,
    gradient: Vec<f32>,
    work: Workspace,
    x: Vec<f32>,
    labels: Vec<u32>,
}

impl ShardWorker {
    /// Draws the next mini-batch of `batch` rows from the shard of `train`, computes the
    /// gradient at `params` (a Byzantine worker then corrupts it) and returns the batch loss
    /// (before any corruption). Read the gradient with [`ShardWorker::gradient`].
    pub fn compute(
        &mut self,
        model: &Mlp,
        params: &[f32],
        train: &Dataset,
        batch: usize,
    ) -> Result<f32, TrainError> {
        let width = train.width();
        let rows = self.sampler.next_batch(batch);
        self.x.clear();
        self.labels.clear();
        for &row in &rows {
            if let Some(features) = train.features().get(row * width..(row + 1) * width) {
                self.x.extend_from_slice(features);
                self.labels.push(train.labels()[row]);
            }
        }
        let loss = model.gradient(
            params,
            &self.x,
            &self.labels,
            &mut self.gradient,
            &mut self.work,
        )?;
        if let Some(attack) = self.attack {
            attack.apply(&mut self.gradient, &mut self.rng);
        }
        Ok(loss)
    }

    /// Draws and discards `batches` mini-batches of `batch` rows, as if their gradients had
    /// been computed (a restarted cluster worker catching up with the rounds it missed).
    pub fn skip_batches(&mut self, batches: u64, batch: usize) {
        for _ in 0..batches {
            self.sampler.next_batch(batch);
        }
    }

    /// The gradient of the last `compute`.
    pub fn gradient(&self) -> &[f32] {
        &self.gradient
    }

    /// Whether this worker corrupts its gradients.
    pub fn is_byzantine(&self) -> bool {
        self.attack.is_some()
    }
}

/// What every participant derives from a config and a data set, identically for a seed: the
/// standardised train/test split, the initial training state and each worker's shard.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The training rows (standardised).
    pub train: Dataset,
    /// The held-out rows (standardised with the training rows' scaler).
    pub test: Dataset,
    /// Round 0: the seeded initial parameters and a fresh optimizer.
    pub initial: TrainState,
    shards: Vec<Vec<usize>>,
    config: TrainConfig,
}

impl Setup {
    /// Validates `config`, splits and standardises `data`, initialises the model and shards
    /// the training rows over the workers.
    pub fn new(config: &TrainConfig, data: &Dataset) -> Result<Setup, TrainError> {
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(TrainError::BadSetting {
                setting: Setting::Workers,
                reason: format!("must be 1..={MAX_WORKERS}, got {}", config.workers),
            });
        }
        if config.byzantine >= config.workers {
            return Err(TrainError::BadSetting {
                setting: Setting::Byzantine,
                reason: format!(
                    "{} leaves no honest worker among {}",
                    config.byzantine, config.workers
                ),
            });
        }
        if config.workers < config.rule.min_inputs() {
            return Err(TrainError::BadSetting {
                setting: Setting::Trim,
                reason: format!(
                    "{} needs at least {} workers, got {}",
                    config.rule,
                    config.rule.min_inputs(),
                    config.workers
                ),
            });
        }
        if config.batch == 0 {
            return Err(TrainError::BadSetting {
                setting: Setting::Batch,
                reason: "must be at least 1".into(),
            });
        }
        if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
            return Err(TrainError::BadSetting {
                setting: Setting::LearningRate,
                reason: format!("must be a positive number, got {}", config.learning_rate),
            });
        }
        let (mut train, mut test) =
            data.split(config.test_fraction, derive_seed(config.seed, 1, 0))?;
        if train.len() < config.workers {
            return Err(TrainError::BadConfig(format!(
                "{} training rows cannot be shared by {} workers",
                train.len(),
                config.workers
            )));
        }
        let scaler = Scaler::fit(&train);
        scaler.apply(&mut train);
        scaler.apply(&mut test);
        let mut sizes = vec![data.width()];
        sizes.extend_from_slice(&config.hidden);
        sizes.push(data.classes());
        let model = Mlp::new(&sizes)?;
        let params = model.init(&mut ChaCha8Rng::seed_from_u64(derive_seed(
            config.seed,
            2,
            0,
        )));
        let optimizer = Optimizer::new(config.optimizer, config.learning_rate, model.param_count());
        let initial = Trainer::fresh(&model, params, optimizer);
        let shards = shards(train.len(), config.workers, derive_seed(config.seed, 3, 0));
        Ok(Setup {
            train,
            test,
            initial,
            shards,
            config: config.clone(),
        })
    }

    /// The worker at `index` (0-based) in its initial state, or `None` past the last; the
    /// last `byzantine` workers attack.
    pub fn worker(&self, index: usize) -> Option<ShardWorker> {
        let honest = self.config.workers - self.config.byzantine;
        self.worker_with(index, (index >= honest).then_some(self.config.attack))
    }

    /// The worker at `index` with the given attack (a cluster node configured to attack).
    pub fn worker_with(&self, index: usize, attack: Option<Attack>) -> Option<ShardWorker> {
        let rows = self.shards.get(index)?.clone();
        Some(ShardWorker {
            sampler: BatchSampler::new(rows, derive_seed(self.config.seed, 4, index as u64)),
            attack,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(self.config.seed, 5, index as u64)),
            gradient: Vec::new(),
            work: Workspace::default(),
            x: Vec::new(),
            labels: Vec::new(),
        })
    }

    /// The config this setup was made from.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
}

/// A seed derived from the run's seed for one purpose and worker (SplitMix64 finaliser).
fn derive_seed(seed: u64, purpose: u64, worker: u64) -> u64 {
    let mut z = seed
        ^ purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ worker.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The round loss as `hashgrad train` reports it: the f64 sum of the honest workers' batch
/// losses over their count (a cluster leader computes it the same way).
pub fn mean_loss(sum: f64, count: usize) -> f32 {
    (sum / count.max(1) as f64) as f32
}
