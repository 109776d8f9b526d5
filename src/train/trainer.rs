//! The sans-IO round core: a `Trainer` holds parameters and optimizer state, takes the
//! round's gradients, reduces them with the configured rule and steps the optimizer. It does
//! not know where gradients come from (simulated workers in `simulation`, the network on a
//! training node's trainer thread).

use super::TrainError;
use super::aggregate::{Reducer, Rule};
use super::model::Mlp;
use super::optimizer::{Optimizer, OptimizerSettings};
use super::params::{ModelShape, StateHash, TrainState};

/// What one applied round produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// The round just completed (1 for the first).
    pub round: u64,
    /// Euclidean norm of the reduced gradient.
    pub gradient_norm: f32,
}

/// Parameters, optimizer and rule: gradients in, new parameters out.
#[derive(Debug)]
pub struct Trainer {
    /// The built-in MLP (`None` for an external model, whose gradients come from outside).
    model: Option<Mlp>,
    state: TrainState,
    rule: Rule,
    reducer: Reducer,
}

impl Trainer {
    /// A trainer resuming from `state` (round 0 for a fresh model).
    pub fn new(state: TrainState, rule: Rule, reducer: Reducer) -> Result<Trainer, TrainError> {
        let model = match &state.model {
            ModelShape::Mlp(layers) => Some(Mlp::new(layers)?),
            ModelShape::External(_) => None,
        };
        let needed = state.model.param_count();
        if state.params.len() != needed || state.optimizer.len() != needed {
            return Err(TrainError::BadModel(format!(
                "state holds {} parameters and optimizer state for {}; the model needs {needed}",
                state.params.len(),
                state.optimizer.len(),
            )));
        }
        Ok(Trainer {
            model,
            state,
            rule,
            reducer,
        })
    }

    /// A fresh state for `model` with `params` and `optimizer`, round 0.
    pub fn fresh(model: &Mlp, params: Vec<f32>, optimizer: Optimizer) -> TrainState {
        TrainState {
            model: ModelShape::Mlp(model.sizes().to_vec()),
            round: 0,
            params,
            optimizer,
        }
    }

    /// Reduces `gradients` (one per contributing worker) with the rule and steps the
    /// optimizer; the round counter advances only on success.
    pub fn apply(&mut self, gradients: &[&[f32]]) -> Result<RoundOutcome, TrainError> {
        let reduced = self.reduce(gradients)?;
        self.step(&reduced)
    }

    /// Reduces `gradients` with the rule without stepping (a cluster leader ships the result
    /// as a blob so every node can `step` with it).
    pub fn reduce(&mut self, gradients: &[&[f32]]) -> Result<Vec<f32>, TrainError> {
        Ok(self.reducer.reduce(&self.rule, gradients)?)
    }

    /// Steps the optimizer with an already reduced gradient; the round counter advances only
    /// on success.
    pub fn step(&mut self, reduced: &[f32]) -> Result<RoundOutcome, TrainError> {
        if reduced.len() != self.state.params.len() {
            return Err(TrainError::BadModel(format!(
                "gradients have {} values, the model {} parameters",
                reduced.len(),
                self.state.params.len()
            )));
        }
        let report = self.state.optimizer.step(&mut self.state.params, reduced)?;
        self.state.round += 1;
        Ok(RoundOutcome {
            round: self.state.round,
            gradient_norm: report.gradient_norm,
        })
    }

    /// Replaces the whole state (a cluster node jumping to a snapshot's params); refused when
    /// `state` is for another model shape. An external model not registered yet (an empty
    /// layout) takes the first registered one.
    pub fn restore(&mut self, state: TrainState) -> Result<(), TrainError> {
        let unregistered =
            matches!(&self.state.model, ModelShape::External(l) if l.tensors.is_empty());
        let fits = state.params.len() == state.model.param_count()
            && state.optimizer.len() == state.params.len();
        if !fits || (!unregistered && state.model != self.state.model) {
            return Err(TrainError::BadModel(format!(
                "a state for {:?} cannot replace one for {:?}",
                shape_name(&state.model),
                shape_name(&self.state.model)
            )));
        }
        self.state = state;
        Ok(())
    }

    /// A trainer for an external model no worker has registered yet (no parameters); its
    /// first `restore` takes the registered state.
    pub fn unregistered(rule: Rule, reducer: Reducer) -> Trainer {
        Trainer {
            model: None,
            state: TrainState {
                model: ModelShape::External(super::Layout::default()),
                round: 0,
                params: Vec::new(),
                optimizer: Optimizer::new(Default::default(), 1e-3, 0),
            },
            rule,
            reducer,
        }
    }

    /// Takes the optimizer settings a committed round was stepped with.
    pub fn configure(&mut self, settings: &OptimizerSettings) {
        self.state.optimizer.configure(settings);
    }

    /// Replaces the aggregation rule (a cluster's config store may change it between rounds).
    pub fn set_rule(&mut self, rule: Rule) {
        self.rule = rule;
    }

    /// Changes the optimizer's learning rate from the next step on.
    pub fn set_learning_rate(&mut self, rate: f32) {
        self.state.optimizer.set_learning_rate(rate);
    }

    /// The current parameters.
    pub fn params(&self) -> &[f32] {
        &self.state.params
    }
    /// Rounds completed.
    pub fn round(&self) -> u64 {
        self.state.round
    }
    /// The built-in MLP (`None` for an external model).
    pub fn model(&self) -> Option<&Mlp> {
        self.model.as_ref()
    }
    /// The aggregation rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }
    /// Which backend reduces (for summaries).
    pub fn reducer(&self) -> &Reducer {
        &self.reducer
    }
    /// The full state (serialise with `to_bytes`).
    pub fn state(&self) -> &TrainState {
        &self.state
    }
    /// Content hash of the current state.
    pub fn state_hash(&self) -> StateHash {
        self.state.hash()
    }
}

fn shape_name(shape: &ModelShape) -> String {
    match shape {
        ModelShape::Mlp(layers) => format!("the MLP {layers:?}"),
        ModelShape::External(layout) => format!(
            "an external model of {} tensors ({} values)",
            layout.tensors.len(),
            layout.param_count()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optimizer::OptimizerKind;

    #[test]
    fn apply_steps_with_the_reduced_gradient() {
        let model = Mlp::new(&[1, 1]).unwrap();
        let state = Trainer::fresh(
            &model,
            vec![1.0, 0.0],
            Optimizer::new(OptimizerKind::Sgd, 0.5, 2),
        );
        let mut trainer = Trainer::new(state, Rule::Median, Reducer::Cpu).unwrap();
        let before = trainer.state_hash();
        let g = [[1.0f32, 2.0], [3.0, 4.0], [100.0, -100.0]];
        let refs: Vec<&[f32]> = g.iter().map(|v| v.as_slice()).collect();
        let outcome = trainer.apply(&refs).unwrap();
        assert_eq!(outcome.round, 1);
        // Median (3, 2), lr 0.5: params (1 − 1.5, 0 − 1).
        assert_eq!(trainer.params(), &[-0.5, -1.0]);
        assert_ne!(trainer.state_hash(), before);
        let wrong = [[1.0f32; 3]];
        let refs: Vec<&[f32]> = wrong.iter().map(|v| v.as_slice()).collect();
        assert!(trainer.apply(&refs).is_err());
        assert_eq!(trainer.round(), 1);
    }
}
