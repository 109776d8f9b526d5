//! `hashgrad check`'s library: linearizability and causal consistency of recorded histories.
//! Sans-IO and clock-free: text in (`format`), a `History` (`history`), a verdict out
//! (`linearize` over a `model`, or `causal`), and an HTML view (`html`). Files, timers and
//! printing belong to `cli::check`.
//!
//! - Formats: Jepsen's etcd register logs, Jepsen's key/value EDN histories (both as in
//!   Porcupine's test data) and hashgrad's JSON Lines (specified in `format::jsonl`).
//! - Linearizability: the Wing–Gong / Lowe search with Porcupine's memoisation (`search`),
//!   partitioned by key and run on all cores, stopped at the first refuted partition or when
//!   the caller's stop flag is set (`linearize`).
//! - Causal consistency: the bad patterns of Bouajjani, Enea, Guerraoui, Hamza, "On verifying
//!   causal consistency" (POPL 2017), for differentiated histories (`causal`).

pub mod causal;
pub mod format;
pub mod history;
pub mod html;
pub mod linearize;
pub mod model;
mod search;
pub mod simulate;

pub use format::Format;
pub use history::{History, Operation};
pub use linearize::{CheckOptions, LinearizabilityReport, Verdict};
pub use model::{Model, ModelKind};

/// Why a history cannot be checked. Lines are 1-based lines of the history file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("line {line}: expected {expected}, found `{found}`")]
    Syntax {
        line: usize,
        expected: String,
        found: String,
    },
    #[error(
        "line {line}: client {client} completes an operation it never invoked; every ok/fail/info needs an earlier invoke"
    )]
    UnmatchedCompletion { line: usize, client: u64 },
    #[error(
        "line {line}: client {client} invokes while its operation from line {open_line} is still in flight; a client has one operation at a time"
    )]
    OverlappingInvoke {
        line: usize,
        client: u64,
        open_line: usize,
    },
    #[error(
        "line {line}: client {client} invoked `{invoked}` but the completion says `{completed}`"
    )]
    MismatchedCompletion {
        line: usize,
        client: u64,
        invoked: &'static str,
        completed: &'static str,
    },
    #[error(
        "line {line}: some events have a time and others do not; give every line a time (or index) or none"
    )]
    MixedTimes { line: usize },
    #[error("line {line}: the completion's time is before its invocation's")]
    TimeGoesBack { line: usize },
    #[error("line {line}: the {model} model has no `{call}`; choose a model that does")]
    UnsupportedCall {
        line: usize,
        model: &'static str,
        call: &'static str,
    },
    #[error(
        "line {line}: the causal check needs every write to write a distinct, non-initial value per key (first written on line {first_line}; 0: nil or empty)"
    )]
    NotDifferentiated { line: usize, first_line: usize },
}

impl CheckError {
    /// The history line the error is about.
    pub fn line(&self) -> usize {
        match self {
            CheckError::Syntax { line, .. }
            | CheckError::UnmatchedCompletion { line, .. }
            | CheckError::OverlappingInvoke { line, .. }
            | CheckError::MismatchedCompletion { line, .. }
            | CheckError::MixedTimes { line }
            | CheckError::TimeGoesBack { line }
            | CheckError::UnsupportedCall { line, .. }
            | CheckError::NotDifferentiated { line, .. } => *line,
        }
    }
}

/// Parses `text` and checks it for linearizability with the given (or inferred) model.
pub fn check_linearizable(
    text: &str,
    format: Option<Format>,
    model: Option<ModelKind>,
    options: &CheckOptions<'_>,
) -> Result<(History, ModelKind, LinearizabilityReport), CheckError> {
    let (_, history) = format::parse(text, format)?;
    let kind = model.unwrap_or_else(|| ModelKind::infer(&history.operations));
    let report = match kind {
        ModelKind::Register => linearize::check(&history, &model::Register, options)?,
        ModelKind::CasRegister => linearize::check(&history, &model::CasRegister, options)?,
        ModelKind::Kv => linearize::check(&history, &model::Kv, options)?,
    };
    Ok((history, kind, report))
}
