//! History file formats: detection and parsing into a `History`. Three formats: Jepsen's etcd
//! register logs (`etcd`), Jepsen's key/value EDN maps (`jepsen-kv`) and hashgrad's JSON Lines
//! (`jsonl`, specified in `jsonl`). Text in, history out; no file access.

pub mod edn;
pub mod etcd;
pub mod jsonl;

use super::CheckError;
use super::history::History;

/// Which parser reads a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Jepsen's etcd register log (`INFO jepsen.util - ...` lines); command-line name `etcd`.
    Etcd,
    /// Jepsen's key/value EDN maps, one per line; command-line name `jepsen-kv`.
    JepsenKv,
    /// hashgrad's JSON Lines history, one object per line; command-line name `jsonl`.
    Jsonl,
}

impl Format {
    /// Guesses the format from the first non-blank line: `INFO` → etcd, `{:` → EDN, `{"` →
    /// JSONL. An empty text is read as JSONL (an empty history).
    pub fn detect(text: &str) -> Result<Format, CheckError> {
        let Some((index, first)) = text.lines().enumerate().find(|(_, l)| !l.trim().is_empty())
        else {
            return Ok(Format::Jsonl);
        };
        let first = first.trim_start();
        if first.starts_with("INFO") {
            Ok(Format::Etcd)
        } else if first.starts_with("{:") {
            Ok(Format::JepsenKv)
        } else if first.starts_with("{\"") || first.starts_with("{ ") || first == "{}" {
            Ok(Format::Jsonl)
        } else {
            Err(CheckError::Syntax {
                line: index + 1,
                expected: "an etcd log line (`INFO jepsen.util - ...`), an EDN map (`{:process ...}`) or a JSON object"
                    .to_string(),
                found: first.chars().take(80).collect(),
            })
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Etcd => "etcd",
            Format::JepsenKv => "jepsen-kv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Parses a history in the given format (or detects it) and pairs its events.
pub fn parse(text: &str, format: Option<Format>) -> Result<(Format, History), CheckError> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(text)?,
    };
    let (events, fail_cas_is_comparison) = match format {
        // Porcupine's reading of etcd logs: `:fail :cas` is a CAS whose comparison failed.
        Format::Etcd => (etcd::parse(text)?, true),
        Format::JepsenKv => (edn::parse(text)?, false),
        Format::Jsonl => (jsonl::parse(text)?, false),
    };
    Ok((
        format,
        History::from_events(events, fail_cas_is_comparison)?,
    ))
}
