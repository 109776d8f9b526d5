//! Optimizers that turn a reduced gradient into a parameter update on the flat vector: SGD
//! with (Nesterov) momentum, Adam and AdamW (decoupled weight decay), each after an optional
//! clipping of the gradient by its global norm; and the learning-rate schedules (constant,
//! linear warm-up, cosine). The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`,
//! `clip_grad_norm_`), so a step can be checked by hand. State lives in plain vectors so
//! `params::TrainState` can serialise and hash it. Pure arithmetic: no clock, no I/O.

use std::str::FromStr;

use super::TrainError;

/// Adam's decay of the first-moment estimate.
pub const BETA1: f32 = 0.9;
/// Adam's decay of the second-moment estimate.
pub const BETA2: f32 = 0.999;
/// Added to Adam's denominator so it never divides by zero.
pub const EPSILON: f32 = 1e-8;
/// Added to the global norm before clipping divides by it (PyTorch's 1e-6).
const CLIP_EPSILON: f64 = 1e-6;

/// Which optimizer (`--optimizer sgd|adam|adamw`, config key `optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OptimizerKind {
    /// SGD with momentum (Nesterov's when `nesterov` is set); weight decay is L2 (added to the
    /// gradient).
    Sgd,
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8); weight decay is L2 (added to the gradient).
    #[default]
    Adam,
    /// AdamW: Adam with decoupled weight decay (params shrink by `lr·wd` before the step).
    AdamW,
}

impl OptimizerKind {
    /// The learning rate `hashgrad train` uses when `--lr` is not given.
    pub fn default_learning_rate(self) -> f32 {
        match self {
            OptimizerKind::Sgd => 0.05,
            OptimizerKind::Adam | OptimizerKind::AdamW => 0.002,
        }
    }

    /// Whether the kind keeps Adam's two moment vectors (SGD keeps one velocity).
    pub fn is_adam(self) -> bool {
        matches!(self, OptimizerKind::Adam | OptimizerKind::AdamW)
    }

    fn tag(self) -> u8 {
        match self {
            OptimizerKind::Sgd => 0,
            OptimizerKind::Adam => 1,
            OptimizerKind::AdamW => 2,
        }
    }

    /// The kind of a state tag (`TrainState` bytes, round commands).
    pub fn from_tag(tag: u8) -> Option<OptimizerKind> {
        match tag {
            0 => Some(OptimizerKind::Sgd),
            1 => Some(OptimizerKind::Adam),
            2 => Some(OptimizerKind::AdamW),
            _ => None,
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    /// The name as `--optimizer` and `train.optimizer` spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        })
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            other => Err(format!(
                "unknown optimizer '{}'; use sgd, adam or adamw",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// The optimizer's settings besides the learning rate; every committed round carries the ones
/// it was stepped with, so a change between rounds steps every node the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerSettings {
    /// Which update rule.
    pub kind: OptimizerKind,
    /// SGD's momentum μ in 0..1 (0: plain SGD).
    pub momentum: f32,
    /// SGD: Nesterov's momentum (the step looks ahead along the velocity).
    pub nesterov: bool,
    /// Weight decay ≥ 0: L2 added to the gradient for SGD and Adam, decoupled for AdamW.
    pub weight_decay: f32,
    /// Clip the gradient to this global (L2) norm before the step; 0: no clipping.
    pub clip_norm: f32,
}

impl Default for OptimizerSettings {
    fn default() -> OptimizerSettings {
        OptimizerSettings::for_kind(OptimizerKind::default())
    }
}

impl OptimizerSettings {
    /// `kind` with momentum 0.9, no Nesterov, no weight decay and no clipping.
    pub fn for_kind(kind: OptimizerKind) -> OptimizerSettings {
        OptimizerSettings {
            kind,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: 0.0,
        }
    }

    /// Checks every value's range; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(format!("momentum must be in 0..1, got {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!(
                "weight_decay must be a finite number ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.clip_norm.is_finite() && self.clip_norm >= 0.0) {
            return Err(format!(
                "clip_norm must be a finite number ≥ 0 (0: off), got {}",
                self.clip_norm
            ));
        }
        Ok(())
    }

    /// Appends the settings (tag, Nesterov flag, momentum, weight decay, clip norm).
    pub fn encode_to(&self, out: &mut crate::codec::Writer) {
        out.u8(self.kind.tag())
            .bool(self.nesterov)
            .f32(self.momentum)
            .f32(self.weight_decay)
            .f32(self.clip_norm);
    }

    /// Reads `encode_to` output and validates it.
    pub fn decode_from(
        r: &mut crate::codec::Reader<'_>,
    ) -> Result<OptimizerSettings, crate::codec::DecodeError> {
        let at = r.offset();
        let tag = r.u8("optimizer kind")?;
        let kind = OptimizerKind::from_tag(tag).ok_or(crate::codec::DecodeError::BadTag {
            what: "optimizer kind",
            tag,
            offset: at,
        })?;
        let settings = OptimizerSettings {
            kind,
            nesterov: r.bool("nesterov flag")?,
            momentum: r.f32("momentum")?,
            weight_decay: r.f32("weight decay")?,
            clip_norm: r.f32("clip norm")?,
        };
        settings
            .validate()
            .map_err(|_| r.invalid("optimizer settings", "a value is out of its range"))?;
        Ok(settings)
    }
}

impl std::fmt::Display for OptimizerSettings {
    /// `adamw(wd=0.01, clip=1)`-style summary (checkpoint metadata, logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if self.kind == OptimizerKind::Sgd {
            write!(f, "(momentum={}", self.momentum)?;
            if self.nesterov {
                f.write_str(", nesterov")?;
            }
        } else {
            write!(f, "(betas=({BETA1}, {BETA2}), eps={EPSILON}")?;
        }
        write!(
            f,
            ", weight_decay={}, clip_norm={})",
            self.weight_decay, self.clip_norm
        )
    }
}

/// Most rounds a schedule may name.
pub const MAX_SCHEDULE_ROUNDS: u64 = 1 << 40;

/// How the learning rate of round r follows from the configured base rate (config key
/// `lr_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LrSchedule {
    /// `constant`: the base rate every round.
    #[default]
    Constant,
    /// `warmup:W`: linear from base/W at round 1 to the base rate at round W, then constant.
    Warmup {
        /// Rounds of warm-up (≥ 1).
        rounds: u64,
    },
    /// `cosine:T` or `cosine:W:T`: linear warm-up over W rounds (0 by default), then a cosine
    /// from the base rate down to 0 at round T, 0 after.
    Cosine {
        /// Rounds of warm-up (< `total`).
        warmup: u64,
        /// The round at which the rate reaches 0.
        total: u64,
    },
}

impl LrSchedule {
    /// The rate of `round` (1 for the first) for the base rate `base`.
    pub fn rate(self, base: f32, round: u64) -> f32 {
        let base = f64::from(base);
        let r = round.max(1) as f64;
        let rate = match self {
            LrSchedule::Constant => base,
            LrSchedule::Warmup { rounds } => base * (r / rounds.max(1) as f64).min(1.0),
            LrSchedule::Cosine { warmup, total } => {
                if warmup > 0 && round <= warmup {
                    base * r / warmup as f64
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let progress = ((r - warmup as f64) / span).clamp(0.0, 1.0);
                    base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
                }
            }
        };
        rate as f32
    }
}

impl std::fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LrSchedule::Constant => f.write_str("constant"),
            LrSchedule::Warmup { rounds } => write!(f, "warmup:{rounds}"),
            LrSchedule::Cosine { warmup: 0, total } => write!(f, "cosine:{total}"),
            LrSchedule::Cosine { warmup, total } => write!(f, "cosine:{warmup}:{total}"),
        }
    }
}

impl FromStr for LrSchedule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        let mut parts = text.split(':');
        let name = parts.next().unwrap_or_default();
        let numbers: Vec<&str> = parts.collect();
        let number = |s: &str| -> Result<u64, String> {
            match s.parse::<u64>() {
                Ok(n) if (1..=MAX_SCHEDULE_ROUNDS).contains(&n) => Ok(n),
                _ => Err(format!(
                    "'{}' is not a round count 1..={MAX_SCHEDULE_ROUNDS}",
                    s.chars().take(24).collect::<String>()
                )),
            }
        };
        match (name, numbers.as_slice()) {
            ("constant", []) => Ok(LrSchedule::Constant),
            ("warmup", [w]) => Ok(LrSchedule::Warmup { rounds: number(w)? }),
            ("cosine", [t]) => Ok(LrSchedule::Cosine {
                warmup: 0,
                total: number(t)?,
            }),
            ("cosine", [w, t]) => {
                let (warmup, total) = (number(w)?, number(t)?);
                if warmup >= total {
                    return Err(format!(
                        "cosine's warm-up ({warmup}) must be shorter than its length ({total})"
                    ));
                }
                Ok(LrSchedule::Cosine { warmup, total })
            }
            _ => Err("use constant, warmup:W, cosine:T or cosine:W:T (W, T in rounds)".into()),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Global L2 norm of the gradient before clipping.
    pub gradient_norm: f32,
    /// Whether clipping scaled the gradient down.
    pub clipped: bool,
}

/// An optimizer with its state for one parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    /// The update rule and its settings.
    pub settings: OptimizerSettings,
    /// The learning rate of the next step.
    pub lr: f32,
    /// Steps applied so far (drives Adam's bias correction).
    pub step: u64,
    /// SGD's velocity or Adam's first moment, one value per parameter.
    pub first: Vec<f32>,
    /// Adam's second moment, one value per parameter (empty for SGD).
    pub second: Vec<f32>,
}

impl Optimizer {
    /// A fresh optimizer of `kind` (default settings) for `params` parameters.
    pub fn new(kind: OptimizerKind, lr: f32, params: usize) -> Optimizer {
        Optimizer::with_settings(OptimizerSettings::for_kind(kind), lr, params)
    }

    /// A fresh optimizer with `settings` for `params` parameters.
    pub fn with_settings(settings: OptimizerSettings, lr: f32, params: usize) -> Optimizer {
        Optimizer {
            settings,
            lr,
            step: 0,
            first: vec![0.0; params],
            second: if settings.kind.is_adam() {
                vec![0.0; params]
            } else {
                Vec::new()
            },
        }
    }

    /// Which kind this is.
    pub fn kind(&self) -> OptimizerKind {
        self.settings.kind
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f32 {
        self.lr
    }

    /// Changes the learning rate from the next step on (the rest of the state is kept).
    pub fn set_learning_rate(&mut self, rate: f32) {
        self.lr = rate;
    }

    /// Takes `settings` from the next step on. Switching between SGD and the Adam family
    /// starts the new rule's state from zero (both sides do it the same way); Adam ↔ AdamW
    /// and any other change keep the moments.
    pub fn configure(&mut self, settings: &OptimizerSettings) {
        if settings.kind.is_adam() != self.settings.kind.is_adam() {
            let n = self.len();
            *self = Optimizer::with_settings(*settings, self.lr, n);
        } else {
            self.settings = *settings;
        }
    }

    /// Number of parameters the state is sized for.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// True when sized for no parameters.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one update to `params` from `gradient` (clipped first when `clip_norm` is set).
    pub fn step(&mut self, params: &mut [f32], gradient: &[f32]) -> Result<StepReport, TrainError> {
        let n = self.len();
        let second_ok = self.second.len() == if self.settings.kind.is_adam() { n } else { 0 };
        if params.len() != n || gradient.len() != n || !second_ok {
            return Err(TrainError::BadModel(format!(
                "optimizer holds state for {n} parameters, got {} parameters and a gradient of {}",
                params.len(),
                gradient.len()
            )));
        }
        let norm = gradient
            .iter()
            .map(|g| f64::from(*g) * f64::from(*g))
            .sum::<f64>()
            .sqrt();
        let clip = f64::from(self.settings.clip_norm);
        let clipped = clip > 0.0 && norm > clip;
        let scale = if clipped {
            (clip / (norm + CLIP_EPSILON)) as f32
        } else {
            1.0
        };
        self.step += 1;
        let lr = self.lr;
        let OptimizerSettings {
            kind,
            momentum,
            nesterov,
            weight_decay: wd,
            ..
        } = self.settings;
        match kind {
            OptimizerKind::Sgd => {
                for ((p, v), g) in params.iter_mut().zip(self.first.iter_mut()).zip(gradient) {
                    let mut g = *g * scale;
                    if wd != 0.0 {
                        g += wd * *p;
                    }
                    *v = momentum * *v + g;
                    let update = if nesterov { g + momentum * *v } else { *v };
                    *p -= lr * update;
                }
            }
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let t = i32::try_from(self.step).unwrap_or(i32::MAX);
                let correction1 = 1.0 - f64::from(BETA1).powi(t);
                let correction2 = 1.0 - f64::from(BETA2).powi(t);
                let step_size = (f64::from(lr) / correction1) as f32;
                let root2 = correction2.sqrt() as f32;
                let decoupled = kind == OptimizerKind::AdamW;
                for (((p, m), v), g) in params
                    .iter_mut()
                    .zip(self.first.iter_mut())
                    .zip(self.second.iter_mut())
                    .zip(gradient)
                {
                    let mut g = *g * scale;
                    if decoupled {
                        *p *= 1.0 - lr * wd;
                    } else if wd != 0.0 {
                        g += wd * *p;
                    }
                    *m = BETA1 * *m + (1.0 - BETA1) * g;
                    *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                    let denominator = v.sqrt() / root2 + EPSILON;
                    *p -= step_size * (*m / denominator);
                }
            }
        }
        Ok(StepReport {
            gradient_norm: norm as f32,
            clipped,
        })
    }
}

#[cfg(test)]
#[path = "optimizer_tests.rs"]
mod tests;
