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
    /// A line is not valid in the history's format.
    #[error("line {line}: expected {expected}, found `{found}`")]
    Syntax {
        /// Line of the history where the text stopped making sense.
        line: usize,
        /// What the parser would have accepted there.
        expected: String,
        /// The offending text (at most 80 characters), or the JSON parser's own message.
        found: String,
    },
    /// An ok, fail or info line arrives for a client with no operation in flight.
    #[error(
        "line {line}: client {client} completes an operation it never invoked; every ok/fail/info needs an earlier invoke"
    )]
    UnmatchedCompletion {
        /// Line of the completion.
        line: usize,
        /// The client (Jepsen process) that has no operation in flight.
        client: u64,
    },
    /// A client invokes a second operation before the first one completed.
    #[error(
        "line {line}: client {client} invokes while its operation from line {open_line} is still in flight; a client has one operation at a time"
    )]
    OverlappingInvoke {
        /// Line of the second invocation.
        line: usize,
        /// The client (Jepsen process) that invoked twice.
        client: u64,
        /// Line of the invocation still in flight.
        open_line: usize,
    },
    /// A completion names a different call than the invocation it completes.
    #[error(
        "line {line}: client {client} invoked `{invoked}` but the completion says `{completed}`"
    )]
    MismatchedCompletion {
        /// Line of the completion.
        line: usize,
        /// The client (Jepsen process) whose operation it completes.
        client: u64,
        /// Jepsen name of the invoked call (`read`, `write`, `cas`, ...).
        invoked: &'static str,
        /// Jepsen name of the call the completion echoes.
        completed: &'static str,
    },
    /// Only some events carry a time (or index), so real-time order is ambiguous.
    #[error(
        "line {line}: some events have a time and others do not; give every line a time (or index) or none"
    )]
    MixedTimes {
        /// First line that has a time where the first event has none, or lacks one where it has.
        line: usize,
    },
    /// A completion's time is earlier than its invocation's.
    #[error("line {line}: the completion's time is before its invocation's")]
    TimeGoesBack {
        /// Line of the completion.
        line: usize,
    },
    /// The chosen model (or the causal check) cannot apply an operation's call.
    #[error("line {line}: the {model} model has no `{call}`; choose a model that does")]
    UnsupportedCall {
        /// Line of the operation's invocation.
        line: usize,
        /// Command-line name of the chosen model, or `causal` for the causal check.
        model: &'static str,
        /// Jepsen name of the call the model cannot apply.
        call: &'static str,
    },
    /// The causal check met a write of a value already written to the key, or of the initial value.
    #[error(
        "line {line}: the causal check needs every write to write a distinct, non-initial value per key (first written on line {first_line}; 0: nil or empty)"
    )]
    NotDifferentiated {
        /// Line of the write that repeats a value (or writes the initial one).
        line: usize,
        /// Line where that value was first written; 0 when it is the initial nil or empty value.
        first_line: usize,
    },
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
