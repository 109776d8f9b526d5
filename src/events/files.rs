//! Finding and reading the event logs of a testnet dir (`DIR/nI/data/events/`), of a dir of
//! node dirs (`DIR/<node>/events/`) or of one node (`DIR/events/`): the reading counterpart
//! of `writer.rs`. File I/O only; each line goes through `parse.rs`.

use std::path::{Path, PathBuf};

use super::check::EventAt;
use super::parse::{ParseError, parse_line};
use super::{EVENTS_DIR, LOG_FILE};

/// One node's log files, oldest first (`events.jsonl.<k>` from the highest k, then the live
/// `events.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLogFiles {
    /// The node's dir name in the testnet dir (`n0`), or the dir's own name for one node.
    pub label: String,
    /// The `events/` dir.
    pub dir: PathBuf,
    /// The log files to read, oldest first.
    pub files: Vec<PathBuf>,
}

/// Why the event logs of a dir cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogReadError {
    /// The path given does not exist or is not a directory.
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    /// Neither the dir nor any node dir under it holds an `events/events.jsonl`.
    #[error(
        "{0}: no event logs found (expected {EVENTS_DIR}/{LOG_FILE} in DIR, DIR/<node>/ or DIR/<node>/data/)"
    )]
    NoLogs(PathBuf),
    /// A dir could not be listed (permissions, removed meanwhile).
    #[error("cannot list {dir}: {source}")]
    List {
        /// The dir being listed.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A log file could not be read (permissions, removed meanwhile, not UTF-8).
    #[error("cannot read {file}: {source}")]
    Read {
        /// The log file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of a log file is not a valid event.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// One node's log dir holds events logged under another node's name.
    #[error(
        "{origin}: expected events of node {expected} only (as earlier in {dir}), found node {found}"
    )]
    MixedNodes {
        /// Where the stray event was read (`file:line`).
        origin: String,
        /// The `events/` dir holding the files.
        dir: PathBuf,
        /// The node the dir's first event named.
        expected: String,
        /// The node this event names.
        found: String,
    },
}

/// Every node's log files under `dir`, nodes sorted by dir name.
pub fn find_logs(dir: &Path) -> Result<Vec<NodeLogFiles>, LogReadError> {
    if !dir.is_dir() {
        return Err(LogReadError::NotADirectory(dir.to_path_buf()));
    }
    let own = dir.join(EVENTS_DIR);
    let name_of = |path: &Path| {
        path.file_name()
            .map_or_else(|| "node".to_string(), |n| n.to_string_lossy().into_owned())
    };
    if own.join(LOG_FILE).is_file() {
        let label = name_of(&std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        return Ok(vec![node_files(label, own)?]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| LogReadError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut found = Vec::new();
    for sub in subdirs {
        for candidate in [sub.join("data").join(EVENTS_DIR), sub.join(EVENTS_DIR)] {
            if candidate.join(LOG_FILE).is_file() {
                found.push(node_files(name_of(&sub), candidate)?);
                break;
            }
        }
    }
    Ok(found)
}

fn node_files(label: String, dir: PathBuf) -> Result<NodeLogFiles, LogReadError> {
    let entries = std::fs::read_dir(&dir).map_err(|source| LogReadError::List {
        dir: dir.clone(),
        source,
    })?;
    let prefix = format!("{LOG_FILE}.");
    let mut rotated: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let k = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((k, e.path()))
        })
        .collect();
    rotated.sort_by_key(|&(k, _)| std::cmp::Reverse(k));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(dir.join(LOG_FILE));
    Ok(NodeLogFiles { label, dir, files })
}

/// Reads one node's files oldest first and hands each event to `each` in log order (one file
/// in memory at a time); refuses a file holding another node's events. Returns the count.
pub fn read_events(
    log: &NodeLogFiles,
    mut each: impl FnMut(EventAt),
) -> Result<usize, LogReadError> {
    let mut node: Option<String> = None;
    let mut count = 0;
    for file in &log.files {
        let text = std::fs::read_to_string(file).map_err(|source| LogReadError::Read {
            file: file.clone(),
            source,
        })?;
        let name = file.display().to_string();
        for (index, line) in text.lines().enumerate() {
            let Some(at) = parse_line(line, &name, index + 1)? else {
                continue;
            };
            match &node {
                None => node = Some(at.event.node.clone()),
                Some(expected) if *expected != at.event.node => {
                    return Err(LogReadError::MixedNodes {
                        origin: at.origin,
                        dir: log.dir.clone(),
                        expected: expected.clone(),
                        found: at.event.node,
                    });
                }
                Some(_) => {}
            }
            count += 1;
            each(at);
        }
    }
    Ok(count)
}

/// Each node's events in log order, for every node under `dir` with at least one event.
pub fn read_all(dir: &Path) -> Result<Vec<Vec<EventAt>>, LogReadError> {
    let logs = find_logs(dir)?;
    if logs.is_empty() {
        return Err(LogReadError::NoLogs(dir.to_path_buf()));
    }
    let mut nodes = Vec::new();
    for log in &logs {
        let mut events = Vec::new();
        read_events(log, |at| events.push(at))?;
        if !events.is_empty() {
            nodes.push(events);
        }
    }
    Ok(nodes)
}
