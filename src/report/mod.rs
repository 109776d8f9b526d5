//! `hashgrad report`'s library: one self-contained HTML page (inline CSS, JavaScript and
//! data; canvas and SVG drawn in the browser; nothing fetched at view time) from a testnet
//! dir's parts — the nodes' event logs (folded one event at a time by [`Collector`]), the
//! testnet's `events.log` (faults), `summary.json` and, when a client workload ran, its
//! histories checked by `crate::check`. Pure: texts and events in, a string out; finding and
//! reading the files is the caller's (`cli::report`).
//!
//! Sections (each a `<section id=…>`): `summary`, `messages` (space-time diagram), `raft`,
//! `chain`, `training` (loss and accuracy), `hash-rate`, `latency` (round latency split) and
//! `consistency`. The page's script sets `data-drawn` on `<body>` to the ids it drew and
//! `data-errors` to any script error, which the headless-browser test reads.
//!
//! Every string from a log reaches the page only as JSON inside
//! `<script type="application/json">` (with `<`, `>` and `&` escaped) and is put into the
//! document with `textContent` or as an attribute value, never as markup.

mod chain;
mod collect;
mod faults;
mod messages;
mod page;
mod series;

pub use chain::{ChainView, PlacedBlock, Reorg};
pub use collect::{Collected, Collector, Limits};
pub use faults::{Fault, FaultKind, parse_faults};
pub use messages::MessageClass;
pub use page::{EPOCH_FIELD, SECTIONS};

use crate::check::{History, LinearizabilityReport};

/// Why a report cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// No node logged an event and the testnet wrote no summary, so there is nothing to draw.
    #[error(
        "nothing to report: no node logged an event and there is no testnet summary; run a testnet with event logs first"
    )]
    Empty,
    /// A line of the testnet's `events.log` does not start with `<seconds>s` (finite, 0 to 1e9).
    #[error("testnet events line {line}: expected `<seconds>s <what happened>`, found `{found}`")]
    FaultLine {
        /// 1-based line of `events.log`.
        line: usize,
        /// The line's text, at most 80 characters.
        found: String,
    },
    /// The testnet's `summary.json` is not valid JSON or not an object.
    #[error("testnet summary is not a JSON object: {reason}")]
    Summary {
        /// The JSON parser's message, or `expected an object`.
        reason: String,
    },
    /// The testnet's `verdict.json` is not valid JSON or not an object.
    #[error("consistency verdict is not a JSON object: {reason}")]
    Verdict {
        /// The JSON parser's message, or `expected an object`.
        reason: String,
    },
    /// The page's data could not be serialised to JSON.
    #[error("cannot encode the report's data: {0}")]
    Encode(#[from] serde_json::Error),
}

/// A client history and what the checker found in it.
#[derive(Debug, Clone, Copy)]
pub struct CheckedHistory<'a> {
    /// The parsed client history.
    pub history: &'a History,
    /// The linearizability checker's result for it.
    pub report: &'a LinearizabilityReport,
    /// The model it was checked against (`cas-register`, …).
    pub model: &'a str,
}

/// One recorded client history file and what became of checking it.
#[derive(Debug, Clone, Copy)]
pub struct RecordedHistory<'a> {
    /// Its path in the testnet dir (`jepsen/history.jsonl`).
    pub file: &'a str,
    /// The history checked here, or why it could not be.
    pub checked: Result<CheckedHistory<'a>, &'a str>,
}

/// What the consistency section shows.
#[derive(Debug, Clone, Copy)]
pub enum Consistency<'a> {
    /// No client workload ran.
    NotRecorded,
    /// A client workload ran: its verdict and history files, as far as they exist.
    Recorded {
        /// The testnet's `verdict.json`, as written.
        verdict_json: Option<&'a str>,
        /// Each history file beside it.
        histories: &'a [RecordedHistory<'a>],
    },
}

/// Everything besides the nodes' events.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The page's `<title>` and heading (at most 200 characters shown).
    pub title: &'a str,
    /// `summary.json`, when the run got that far.
    pub summary_json: Option<&'a str>,
    /// `events.log`: what the testnet did (kills, restarts, partitions, heals).
    pub testnet_events: Option<&'a str>,
    /// Whether a client workload ran and, if so, its verdict and checked histories.
    pub consistency: Consistency<'a>,
}

/// Builds the page.
pub fn render(events: Collector, context: &Context<'_>) -> Result<String, ReportError> {
    page::render(events, context)
}
