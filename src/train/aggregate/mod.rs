//! Gradient aggregation rules (mean, coordinate-wise median, trimmed mean, Krum): K inputs of N
//! floats reduced to N floats, with a CPU twin (`cpu`) and WGSL kernels (`gpu`) that agree.
//! The input checks live here (`validate`: shapes, NaN/Inf); each backend runs them on its
//! inputs before reducing, so neither reduces ragged or non-finite input. This module owns no
//! I/O and knows nothing about models or the network.

pub mod cpu;
pub mod gpu;

use std::fmt;
use std::str::FromStr;

use crate::gpu::{AdapterChoice, DeviceChoice, GpuContext};

pub use gpu::GpuReducer;

/// Largest K the GPU median and trimmed-mean kernels sort per coordinate; larger K runs on the
/// CPU twin (the `auto` backend) or is refused (the `gpu` backend).
pub const GPU_MAX_SORTED_INPUTS: usize = 256;

/// Why a reduction was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The reduction was given no gradients at all.
    #[error("no gradients to aggregate: the rule needs at least one input")]
    NoInputs,
    /// A gradient's length differs from the first one's.
    #[error(
        "gradient {index} has {found} values but gradient 0 has {expected}; all inputs must have the same length"
    )]
    LengthMismatch {
        /// Position of the offending gradient among the inputs.
        index: usize,
        /// Length of gradient 0.
        expected: usize,
        /// Length of this gradient.
        found: usize,
    },
    /// A gradient holds NaN or ±Inf.
    #[error(
        "gradient {index} holds a non-finite value ({value}) at coordinate {coordinate}; NaN and Inf are rejected before aggregation"
    )]
    NonFinite {
        /// Position of the first offending gradient among the inputs.
        index: usize,
        /// Index of its first non-finite value.
        coordinate: usize,
        /// That value (NaN, +Inf or -Inf).
        value: f32,
    },
    /// Fewer gradients than the rule's `min_inputs`.
    #[error("{rule} needs {needed} inputs but got {got}; trim fewer values or add inputs")]
    TooFewInputs {
        /// The rule with its parameters, as `Rule`'s `Display` writes it.
        rule: String,
        /// The rule's minimum number of inputs.
        needed: usize,
        /// Gradients given.
        got: usize,
    },
    /// The GPU median or trimmed-mean kernel was given more gradients than it sorts (the
    /// `auto` reducer then runs them on the CPU twin).
    #[error(
        "the GPU {rule} kernel sorts at most {max} inputs per coordinate, got {got}; reduce this many on the CPU"
    )]
    TooManyInputsForGpu {
        /// The rule's name (`median`, `trimmed-mean`).
        rule: String,
        /// Most inputs the kernel sorts (`GPU_MAX_SORTED_INPUTS`).
        max: usize,
        /// Gradients given.
        got: usize,
    },
    /// The caller's output buffer is not as long as the gradients.
    #[error("the output buffer holds {found} values but the inputs have {expected}")]
    OutputLength {
        /// Length of the gradients.
        expected: usize,
        /// Length of the buffer.
        found: usize,
    },
    /// Finite gradients reduced to a non-finite value: their sum is too large for f32.
    #[error(
        "the mean overflowed f32 at coordinate {coordinate} although every input is finite; gradients this large mean the model diverged (lower the learning rate)"
    )]
    Overflow {
        /// Index of the first coordinate that overflowed.
        coordinate: usize,
    },
    /// The GPU work failed (a lost device, a buffer or pipeline error).
    #[error("GPU reduction failed: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
}

/// An aggregation rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Coordinate-wise arithmetic mean (sum in input order, times 1/K).
    Mean,
    /// Coordinate-wise median; for even K the mean of the two middle values.
    Median,
    /// Coordinate-wise mean after dropping the `trim` largest and `trim` smallest values.
    TrimmedMean {
        /// Values dropped at each end of every coordinate.
        trim: usize,
    },
    /// Multi-Krum (Blanchard et al. 2017): score each input by the summed squared distance to
    /// its K−f−2 nearest others and average the `select` best (`select = 1` is Krum).
    Krum {
        /// f: the number of Byzantine inputs assumed.
        byzantine: usize,
        /// m: how many of the best-scored inputs are averaged (1 is plain Krum).
        select: usize,
    },
}

impl Rule {
    /// The smallest number of inputs this rule accepts.
    pub fn min_inputs(&self) -> usize {
        match *self {
            Rule::Mean | Rule::Median => 1,
            Rule::TrimmedMean { trim } => 2 * trim + 1,
            Rule::Krum { byzantine, select } => (2 * byzantine + 3).max(select),
        }
    }

    /// The rule of family `name` for `workers` inputs: `trim` is the values dropped at each
    /// end for trimmed-mean and the assumed Byzantine count f for Krum (which then averages
    /// the `workers − f` best, at least one).
    pub fn from_name(name: RuleName, trim: usize, workers: usize) -> Rule {
        match name {
            RuleName::Mean => Rule::Mean,
            RuleName::Median => Rule::Median,
            RuleName::TrimmedMean => Rule::TrimmedMean { trim },
            RuleName::Krum => Rule::Krum {
                byzantine: trim,
                select: workers.saturating_sub(trim).max(1),
            },
        }
    }

    /// The rule's name as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Mean => "mean",
            Rule::Median => "median",
            Rule::TrimmedMean { .. } => "trimmed-mean",
            Rule::Krum { .. } => "krum",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::TrimmedMean { trim } => write!(f, "trimmed-mean (b = {trim})"),
            Rule::Krum { byzantine, select } => {
                write!(f, "krum (f = {byzantine}, m = {select})")
            }
            other => f.write_str(other.name()),
        }
    }
}

/// The rule family the CLI names (`--rule`); parameters come from other flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleName {
    /// `mean`: `Rule::Mean`.
    Mean,
    /// `median`: `Rule::Median`.
    Median,
    /// `trimmed-mean` (also `trimmed`, `trimmed_mean`): `Rule::TrimmedMean`.
    TrimmedMean,
    /// `krum` (also `multi-krum`): `Rule::Krum`.
    Krum,
}

impl FromStr for RuleName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mean" => Ok(RuleName::Mean),
            "median" => Ok(RuleName::Median),
            "trimmed-mean" | "trimmed" | "trimmed_mean" => Ok(RuleName::TrimmedMean),
            "krum" | "multi-krum" => Ok(RuleName::Krum),
            other => Err(format!(
                "unknown rule '{other}'; use mean, median, trimmed-mean or krum"
            )),
        }
    }
}

/// Checks that `inputs` form K ≥ `rule.min_inputs()` equal-length, finite vectors; returns N.
pub fn validate(rule: &Rule, inputs: &[&[f32]]) -> Result<usize, AggregateError> {
    let n = validate_shape(rule, inputs)?;
    validate_finite(inputs)?;
    Ok(n)
}

/// Checks the count and lengths of `inputs` only; returns N.
pub fn validate_shape(rule: &Rule, inputs: &[&[f32]]) -> Result<usize, AggregateError> {
    let first = inputs.first().ok_or(AggregateError::NoInputs)?;
    let n = first.len();
    if inputs.len() < rule.min_inputs() {
        return Err(AggregateError::TooFewInputs {
            rule: rule.to_string(),
            needed: rule.min_inputs(),
            got: inputs.len(),
        });
    }
    for (index, input) in inputs.iter().enumerate() {
        if input.len() != n {
            return Err(AggregateError::LengthMismatch {
                index,
                expected: n,
                found: input.len(),
            });
        }
    }
    Ok(n)
}

/// Refuses the first NaN or ±Inf, naming the input and coordinate.
pub fn validate_finite(inputs: &[&[f32]]) -> Result<(), AggregateError> {
    for (index, input) in inputs.iter().enumerate() {
        // A branch-free scan first (vectorises); locate the culprit only on failure.
        if !input.iter().fold(true, |ok, v| ok & v.is_finite()) {
            let coordinate = input.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(AggregateError::NonFinite {
                index,
                coordinate,
                value: input.get(coordinate).copied().unwrap_or(f32::NAN),
            });
        }
    }
    Ok(())
}

/// Reduces gradients with a rule on the CPU or the GPU.
#[derive(Debug)]
pub enum Reducer {
    /// The CPU twin, multi-threaded over coordinates.
    Cpu,
    /// The WGSL kernels (Krum's pairwise distances run on the CPU). With `fallback` (the
    /// `auto` choice) a column too tall for the GPU sort, or a GPU failure such as a lost
    /// device, runs on the CPU twin instead of failing.
    Gpu {
        /// The GPU pipelines and buffers.
        reducer: Box<GpuReducer>,
        /// Whether to reduce on the CPU twin when the GPU cannot (the `auto` choice).
        fallback: bool,
    },
}

impl Reducer {
    /// A reducer for `choice`: `context` is the opened GPU (or `None` when none could be
    /// opened). `Gpu` without a context is an error; `Auto` takes the GPU only when it is
    /// hardware.
    pub fn choose(
        choice: DeviceChoice,
        context: Option<GpuContext>,
    ) -> Result<Reducer, AggregateError> {
        match (choice, context) {
            (DeviceChoice::Cpu, _) => Ok(Reducer::Cpu),
            (DeviceChoice::Gpu, Some(context)) => Ok(Reducer::Gpu {
                reducer: Box::new(GpuReducer::new(context)?),
                fallback: false,
            }),
            (DeviceChoice::Gpu, None) => Err(crate::gpu::GpuError::NoAdapter.into()),
            (DeviceChoice::Auto, Some(context))
                if context.info.device_type != wgpu::DeviceType::Cpu =>
            {
                Ok(Reducer::Gpu {
                    reducer: Box::new(GpuReducer::new(context)?),
                    fallback: true,
                })
            }
            (DeviceChoice::Auto, _) => Ok(Reducer::Cpu),
        }
    }

    /// Opens what `choice` asks for on `adapter`: the CPU twin, the GPU (an error when no
    /// adapter opens), or for `Auto` a hardware GPU if one opens and the CPU otherwise.
    pub fn open(choice: DeviceChoice, adapter: &AdapterChoice) -> Result<Reducer, AggregateError> {
        let context = match choice {
            DeviceChoice::Cpu => None,
            DeviceChoice::Gpu => Some(GpuContext::open(adapter)?),
            DeviceChoice::Auto => GpuContext::open(adapter)
                .inspect_err(|e| tracing::debug!("no GPU for reductions, using the CPU: {e}"))
                .ok(),
        };
        Reducer::choose(choice, context)
    }

    /// `"cpu"` or `"gpu (ADAPTER)"`, for logs and summaries.
    pub fn describe(&self) -> String {
        match self {
            Reducer::Cpu => "cpu".to_string(),
            Reducer::Gpu { reducer, .. } => format!("gpu ({})", reducer.adapter_name()),
        }
    }

    /// Reduces `inputs` (K vectors of N floats) with `rule` into N floats.
    pub fn reduce(&mut self, rule: &Rule, inputs: &[&[f32]]) -> Result<Vec<f32>, AggregateError> {
        match self {
            Reducer::Cpu => cpu::reduce(rule, inputs),
            Reducer::Gpu { reducer, fallback } => match reducer.reduce(rule, inputs) {
                Err(AggregateError::TooManyInputsForGpu { .. }) if *fallback => {
                    cpu::reduce(rule, inputs)
                }
                Err(AggregateError::Gpu(error)) if *fallback => {
                    tracing::warn!("GPU reduction failed, using the CPU twin: {error}");
                    cpu::reduce(rule, inputs)
                }
                other => other,
            },
        }
    }
}
