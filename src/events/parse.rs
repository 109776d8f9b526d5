//! Reading event logs back: JSONL text to events, with the file and line of each. Pure (the
//! caller reads the files).

use super::check::EventAt;
use super::record::Event;

/// A log line that is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: expected one JSON event object per line ({reason})")]
pub struct ParseError {
    /// The file's name as given.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What the JSON parser said.
    pub reason: String,
}

/// Parses one log file's text; blank lines are skipped, a torn last line (a crash mid-write)
/// is an error like any other bad line.
pub fn parse_log(text: &str, file: &str) -> Result<Vec<EventAt>, ParseError> {
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(at) = parse_line(line, file, index + 1)? {
            events.push(at);
        }
    }
    Ok(events)
}

/// Parses line number `line` (1-based) of `file`; `None` for a blank line.
pub fn parse_line(text: &str, file: &str, line: usize) -> Result<Option<EventAt>, ParseError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let event: Event = serde_json::from_str(text).map_err(|e| ParseError {
        file: file.to_owned(),
        line,
        reason: e.to_string(),
    })?;
    Ok(Some(EventAt {
        event,
        origin: format!("{file}:{line}"),
    }))
}
