//! K simulated workers in one process, round by round: each draws a mini-batch from its shard
//! and computes a gradient (Byzantine ones then corrupt it), the `Trainer` reduces and steps.
//! Deterministic for a seed; no clocks or I/O (the CLI times and prints).

use super::TrainError;
use super::aggregate::Reducer;
use super::dataset::Dataset;
use super::model::Evaluation;
use super::setup::{Setup, ShardWorker, TrainConfig, mean_loss};
use super::trainer::{RoundOutcome, Trainer};

/// One round as the workers saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundReport {
    /// The trainer's outcome.
    pub outcome: RoundOutcome,
    /// Mean training loss of the honest workers' batches (before the update).
    pub loss: f32,
}

/// Workers, trainer and data of one simulated run.
#[derive(Debug)]
pub struct Simulation {
    trainer: Trainer,
    workers: Vec<ShardWorker>,
    train: Dataset,
    test: Dataset,
    batch: usize,
}

impl Simulation {
    /// Splits and standardises `data`, shards the training rows over the workers and
    /// initialises the model.
    pub fn new(
        config: &TrainConfig,
        data: &Dataset,
        reducer: Reducer,
    ) -> Result<Simulation, TrainError> {
        let setup = Setup::new(config, data)?;
        let trainer = Trainer::new(setup.initial.clone(), config.rule, reducer)?;
        let workers = (0..config.workers)
            .filter_map(|w| setup.worker(w))
            .collect();
        Ok(Simulation {
            trainer,
            workers,
            train: setup.train,
            test: setup.test,
            batch: config.batch,
        })
    }

    /// Runs one round: every worker computes (and maybe corrupts) a gradient, the trainer
    /// reduces and steps.
    pub fn run_round(&mut self) -> Result<RoundReport, TrainError> {
        let params = self.trainer.params();
        let model = self.trainer.model().ok_or_else(not_an_mlp)?;
        let (mut loss_sum, mut honest) = (0.0f64, 0usize);
        for worker in &mut self.workers {
            let loss = worker.compute(model, params, &self.train, self.batch)?;
            if !worker.is_byzantine() {
                loss_sum += f64::from(loss);
                honest += 1;
            }
        }
        let gradients: Vec<&[f32]> = self.workers.iter().map(|w| w.gradient()).collect();
        let outcome = self.trainer.apply(&gradients)?;
        Ok(RoundReport {
            outcome,
            loss: mean_loss(loss_sum, honest),
        })
    }

    /// Loss and accuracy of the current parameters on the held-out test rows.
    pub fn evaluate(&self) -> Result<Evaluation, TrainError> {
        self.trainer.model().ok_or_else(not_an_mlp)?.evaluate(
            self.trainer.params(),
            self.test.features(),
            self.test.labels(),
        )
    }

    /// The trainer (parameters, state, hash).
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// (training rows, test rows).
    pub fn sizes(&self) -> (usize, usize) {
        (self.train.len(), self.test.len())
    }
}

/// Runs `rounds` rounds of a simulation on `data` and evaluates on the test rows.
pub fn run(
    config: &TrainConfig,
    data: &Dataset,
    reducer: Reducer,
    rounds: u64,
) -> Result<(Simulation, Evaluation), TrainError> {
    let mut simulation = Simulation::new(config, data, reducer)?;
    for _ in 0..rounds {
        simulation.run_round()?;
    }
    let evaluation = simulation.evaluate()?;
    Ok((simulation, evaluation))
}

fn not_an_mlp() -> TrainError {
    TrainError::BadModel("a simulation trains the built-in MLP".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::Setting;
    use crate::train::aggregate::Rule;
    use crate::train::attack::Attack;

    #[test]
    fn config_errors_are_reported() {
        let data = Dataset::new(
            (0..40).map(|v| v as f32).collect(),
            (0..40).map(|v| v % 2).collect(),
            1,
            2,
        )
        .unwrap();
        let bad = |f: fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            match Simulation::new(&c, &data, Reducer::Cpu) {
                Err(error @ TrainError::BadSetting { setting, .. }) => (setting, error.to_string()),
                other => panic!("expected a BadSetting, got {:?}", other.err()),
            }
        };
        let (setting, text) = bad(|c| c.workers = 0);
        assert_eq!(setting, Setting::Workers);
        assert!(text.contains("worker count must be"), "{text}");
        assert!(
            !text.contains("--"),
            "the library names no CLI flag: {text}"
        );
        let (setting, text) = bad(|c| c.byzantine = 4);
        assert_eq!(setting, Setting::Byzantine);
        assert!(text.contains("no honest worker"), "{text}");
        let (setting, text) = bad(|c| c.rule = Rule::TrimmedMean { trim: 2 });
        assert_eq!(setting, Setting::Trim);
        assert!(text.contains("at least 5 workers"), "{text}");
        assert_eq!(bad(|c| c.batch = 0).0, Setting::Batch);
        let (setting, text) = bad(|c| c.learning_rate = -1.0);
        assert_eq!(setting, Setting::LearningRate);
        assert!(
            text.contains("learning rate must be a positive number"),
            "{text}"
        );
    }

    #[test]
    fn runs_replay_exactly_for_a_seed() {
        let data = Dataset::digits().unwrap();
        let config = TrainConfig {
            byzantine: 1,
            attack: Attack::Noise,
            rule: Rule::Median,
            ..TrainConfig::default()
        };
        let (a, _) = run(&config, &data, Reducer::Cpu, 5).unwrap();
        let (b, _) = run(&config, &data, Reducer::Cpu, 5).unwrap();
        assert_eq!(a.trainer().state_hash(), b.trainer().state_hash());
        let other = TrainConfig { seed: 2, ..config };
        let (c, _) = run(&other, &data, Reducer::Cpu, 5).unwrap();
        assert_ne!(a.trainer().state_hash(), c.trainer().state_hash());
    }
}
