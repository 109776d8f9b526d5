//! Data-parallel training: the model (an MLP on the CPU, or an external model's `layout`),
//! data sets and shards, optimizers,
//! serialisable training state, Byzantine attacks for simulations, the aggregation rules
//! (`aggregate`, CPU and GPU), the sans-IO `Trainer` that turns gradients into new parameters,
//! what every participant derives from a config (`setup`) and the in-process `simulation` of K
//! workers. Nothing here opens sockets, reads files or
//! clocks; the CLI's `train` drives it through `simulation`, and a training node through
//! `Trainer` on its trainer thread (`node/trainer_thread.rs`).

pub mod aggregate;
pub mod attack;
pub mod checkpoint;
pub mod csv;
pub mod dataset;
pub mod layout;
pub mod model;
pub mod optimizer;
pub mod params;
pub mod setup;
pub mod shard;
pub mod simulation;
pub mod trainer;

pub use aggregate::{AggregateError, Reducer, Rule};
pub use dataset::Dataset;
pub use layout::{Layout, TensorSpec};
pub use model::Mlp;
pub use params::{ModelShape, StateHash, TrainState};
pub use setup::{Setup, TrainConfig};
pub use simulation::Simulation;
pub use trainer::Trainer;

/// A training setting a `BadSetting` error is about (the CLI names its flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// The number of simulated workers (1..=`MAX_WORKERS`).
    Workers,
    /// How many workers attack; at least one worker must stay honest.
    Byzantine,
    /// The aggregation rule, when it needs more inputs than there are workers.
    Trim,
    /// Rows in each worker's mini-batch (at least 1).
    Batch,
    /// The optimizer's step size (positive and finite).
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
    /// A CSV row has another number of fields than the first data row.
    #[error(
        "{file}: line {line} has {found} fields but the first data row has {expected}; every row needs the same number of columns"
    )]
    CsvRagged {
        /// The input's name, as the caller gave it.
        file: String,
        /// Line number in the file, counted from 1.
        line: usize,
        /// Fields in the first data row.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A CSV feature field does not parse as a finite number.
    #[error("{file}: line {line}, column {column}: '{text}' is not a finite number")]
    CsvNotANumber {
        /// The input's name, as the caller gave it.
        file: String,
        /// Line number in the file, counted from 1.
        line: usize,
        /// Column number, counted from 1.
        column: usize,
        /// The field's text, trimmed.
        text: String,
    },
    /// A CSV label field is not an integer class id below `csv::MAX_CLASSES`.
    #[error("{file}: line {line}, column {column}: label '{text}' {reason}")]
    CsvBadLabel {
        /// The input's name, as the caller gave it.
        file: String,
        /// Line number in the file, counted from 1.
        line: usize,
        /// Column number, counted from 1.
        column: usize,
        /// The field's text, trimmed.
        text: String,
        /// What is wrong with it (not a number, not an integer, out of range).
        reason: &'static str,
    },
    /// The chosen label column is past the last column of the rows.
    #[error("{file}: label column {column} is past the last of its {columns} columns")]
    CsvLabelColumn {
        /// The input's name, as the caller gave it.
        file: String,
        /// The label column asked for, counted from 1.
        column: usize,
        /// Columns each row has.
        columns: usize,
    },
    /// The CSV rows have fewer than two columns, leaving no room for a feature and a label.
    #[error("{file}: rows have {columns} column(s); at least one feature and a label are needed")]
    CsvTooNarrow {
        /// The input's name, as the caller gave it.
        file: String,
        /// Columns each row has.
        columns: usize,
    },
    /// The CSV text holds no data rows (empty, blank lines or only a header).
    #[error("{file}: no data rows found (empty file?)")]
    CsvEmpty {
        /// The input's name, as the caller gave it.
        file: String,
    },
    /// A data set is unusable: features that do not form whole rows, a label outside its
    /// classes, fewer than two classes, or a split asked of too few rows or with a test
    /// fraction outside 0..1.
    #[error("bad data set: {0}")]
    BadDataset(String),
    /// Layer sizes out of range, or parameters, rows, labels, gradients or optimizer state
    /// whose sizes do not fit the model.
    #[error("bad model: {0}")]
    BadModel(String),
    /// Training-state or vector bytes decoded but break the format's rules (magic, version,
    /// layer count or width, optimizer tag, lengths).
    #[error("bad training state: {0}")]
    BadState(String),
    /// A training state or vector blob is cut short or its bytes break the format.
    #[error("malformed training state: {0}")]
    StateCodec(#[from] crate::codec::DecodeError),
    /// Settings that are each valid do not fit the data (too few training rows for the
    /// workers).
    #[error("bad training configuration: {0}")]
    BadConfig(String),
    /// One training setting is out of range.
    #[error("{setting} {reason}")]
    BadSetting {
        /// The setting at fault.
        setting: Setting,
        /// What it must be, and the value given.
        reason: String,
    },
    /// Aggregating the gradients failed.
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
}
