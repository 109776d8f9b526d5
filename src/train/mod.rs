//! Data-parallel training: the model (an MLP on the CPU), data sets and shards, optimizers,
//! serialisable training state, Byzantine attacks for simulations, the aggregation rules
//! (`aggregate`, CPU and GPU), the sans-IO `Trainer` that turns gradients into new parameters
//! and the in-process `simulation` of K workers. Nothing here opens sockets, reads files or
//! clocks; today only the CLI's `train` drives it (through `simulation`); the node does not
//! train yet (step 5).

pub mod aggregate;
pub mod attack;
pub mod csv;
pub mod dataset;
pub mod model;
pub mod optimizer;
pub mod params;
pub mod shard;
pub mod simulation;
pub mod trainer;

pub use aggregate::{AggregateError, Reducer, Rule};
pub use dataset::Dataset;
pub use model::Mlp;
pub use params::{StateHash, TrainState};
pub use simulation::{Simulation, SimulationConfig};
pub use trainer::Trainer;

/// A training setting a `BadSetting` error is about (the CLI names its flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    Workers,
    Byzantine,
    Trim,
    Batch,
    LearningRate,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Setting::Workers => "the worker count",
            Setting::Byzantine => "the Byzantine worker count",
            Setting::Trim => "the rule",
            Setting::Batch => "the batch size",
            Setting::LearningRate => "the learning rate",
        })
    }
}

/// Errors of the training subsystem (data, model, state, configuration, aggregation).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error(
        "{file}: line {line} has {found} fields but the first data row has {expected}; every row needs the same number of columns"
    )]
    CsvRagged {
        file: String,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("{file}: line {line}, column {column}: '{text}' is not a finite number")]
    CsvNotANumber {
        file: String,
        line: usize,
        column: usize,
        text: String,
    },
    #[error("{file}: line {line}, column {column}: label '{text}' {reason}")]
    CsvBadLabel {
        file: String,
        line: usize,
        column: usize,
        text: String,
        reason: &'static str,
    },
    #[error("{file}: --label-column {column} is past the last of its {columns} columns")]
    CsvLabelColumn {
        file: String,
        column: usize,
        columns: usize,
    },
    #[error("{file}: rows have {columns} column(s); at least one feature and a label are needed")]
    CsvTooNarrow { file: String, columns: usize },
    #[error("{file}: no data rows found (empty file?)")]
    CsvEmpty { file: String },
    #[error("bad data set: {0}")]
    BadDataset(String),
    #[error("bad model: {0}")]
    BadModel(String),
    #[error("bad training state: {0}")]
    BadState(String),
    /// A training state or vector blob is cut short or its bytes break the format.
    #[error("malformed training state: {0}")]
    StateCodec(#[from] crate::codec::DecodeError),
    #[error("bad training configuration: {0}")]
    BadConfig(String),
    #[error("{setting} {reason}")]
    BadSetting { setting: Setting, reason: String },
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
}
