//! Optimizers that turn a reduced gradient into a parameter update: SGD with momentum and
//! Adam. Their state lives in plain vectors so `params::TrainState` can serialise and hash it.

use std::str::FromStr;

use super::TrainError;

/// Which optimizer (`--optimizer sgd|adam`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizerKind {
    /// SGD with momentum 0.9.
    Sgd,
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8).
    #[default]
    Adam,
}

impl OptimizerKind {
    /// The learning rate `hashgrad train` uses when `--lr` is not given.
    pub fn default_learning_rate(self) -> f32 {
        match self {
            OptimizerKind::Sgd => 0.05,
            OptimizerKind::Adam => 0.002,
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    /// The name as `--optimizer` and `train.optimizer` spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        })
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            other => Err(format!("unknown optimizer '{other}'; use sgd or adam")),
        }
    }
}

/// An optimizer with its state for one parameter vector.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Optimizer {
    /// v ← μ·v + g; θ ← θ − lr·v.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum coefficient μ (0.9 for a fresh optimizer).
        momentum: f32,
        /// Velocity v, one value per parameter.
        velocity: Vec<f32>,
    },
    /// Adam with bias correction (Kingma & Ba 2015).
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first-moment estimate (0.9 for a fresh optimizer).
        beta1: f32,
        /// Decay of the second-moment estimate (0.999 for a fresh optimizer).
        beta2: f32,
        /// Added to the denominator's square root to avoid dividing by zero (1e-8 for a fresh optimizer).
        epsilon: f32,
        /// Updates applied so far (0 for a fresh optimizer); drives the bias correction.
        step: u64,
        /// First-moment (mean) estimate, one value per parameter.
        m: Vec<f32>,
        /// Second-moment (uncentred variance) estimate, one value per parameter.
        v: Vec<f32>,
    },
}

impl Optimizer {
    /// A fresh optimizer of `kind` for `params` parameters.
    pub fn new(kind: OptimizerKind, lr: f32, params: usize) -> Optimizer {
        match kind {
            OptimizerKind::Sgd => Optimizer::Sgd {
                lr,
                momentum: 0.9,
                velocity: vec![0.0; params],
            },
            OptimizerKind::Adam => Optimizer::Adam {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                step: 0,
                m: vec![0.0; params],
                v: vec![0.0; params],
            },
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> OptimizerKind {
        match self {
            Optimizer::Sgd { .. } => OptimizerKind::Sgd,
            Optimizer::Adam { .. } => OptimizerKind::Adam,
        }
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f32 {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => *lr,
        }
    }

    /// Changes the learning rate from the next step on (the rest of the state is kept).
    pub fn set_learning_rate(&mut self, rate: f32) {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => *lr = rate,
        }
    }

    /// Number of parameters the state is sized for.
    pub fn len(&self) -> usize {
        match self {
            Optimizer::Sgd { velocity, .. } => velocity.len(),
            Optimizer::Adam { m, .. } => m.len(),
        }
    }

    /// True when sized for no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one update to `params` from `gradient`.
    pub fn step(&mut self, params: &mut [f32], gradient: &[f32]) -> Result<(), TrainError> {
        if params.len() != self.len() || gradient.len() != self.len() {
            return Err(TrainError::BadModel(format!(
                "optimizer holds state for {} parameters, got {} parameters and a gradient of {}",
                self.len(),
                params.len(),
                gradient.len()
            )));
        }
        match self {
            Optimizer::Sgd {
                lr,
                momentum,
                velocity,
            } => {
                for ((p, v), g) in params.iter_mut().zip(velocity.iter_mut()).zip(gradient) {
                    *v = *momentum * *v + g;
                    *p -= *lr * *v;
                }
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
                step,
                m,
                v,
            } => {
                *step += 1;
                let t = i32::try_from(*step).unwrap_or(i32::MAX);
                let correction1 = 1.0 - beta1.powi(t);
                let correction2 = 1.0 - beta2.powi(t);
                let step_size = *lr * correction2.sqrt() / correction1;
                for (((p, m), v), g) in params
                    .iter_mut()
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .zip(gradient)
                {
                    *m = *beta1 * *m + (1.0 - *beta1) * g;
                    *v = *beta2 * *v + (1.0 - *beta2) * g * g;
                    *p -= step_size * *m / (v.sqrt() + *epsilon);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimise(kind: OptimizerKind, lr: f32) -> f32 {
        // f(x) = Σ (x_i − 3)², gradient 2(x − 3).
        let mut x = vec![0.0f32, 10.0, -4.0];
        let mut optimizer = Optimizer::new(kind, lr, x.len());
        for _ in 0..500 {
            let g: Vec<f32> = x.iter().map(|v| 2.0 * (v - 3.0)).collect();
            optimizer.step(&mut x, &g).unwrap();
        }
        x.iter().map(|v| (v - 3.0).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn both_optimizers_reach_the_minimum_of_a_quadratic() {
        assert!(minimise(OptimizerKind::Sgd, 0.05) < 1e-3);
        assert!(minimise(OptimizerKind::Adam, 0.1) < 1e-2);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let mut optimizer = Optimizer::new(OptimizerKind::Adam, 0.1, 3);
        assert!(optimizer.step(&mut [0.0; 2], &[0.0; 2]).is_err());
    }
}
