//! `hashgrad trace DIR`: reads the event logs of a testnet dir (`DIR/n*/data/events/`, or
//! `DIR/<node>/events/`, or `DIR/events/` for one node), checks happened-before (`--check`)
//! and writes a ShiViz log (`--shiviz OUT`). Exit 0 holds, 1 a violation, 2 bad input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::events::{self, EVENTS_DIR, EventAt, LOG_FILE};

/// Arguments of `hashgrad trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A testnet dir (with `n0/data/events/`, `n1/…`) or one node's data dir.
    pub dir: PathBuf,
    /// Write the merged logs here in ShiViz's format (its default parsing regex).
    #[arg(long, value_name = "OUT.log")]
    pub shiviz: Option<PathBuf>,
    /// Verify happened-before: clocks monotone per node, every receive after its send.
    #[arg(long)]
    pub check: bool,
}

/// Runs `trace`.
pub fn run(args: TraceArgs) -> ExitCode {
    if args.shiviz.is_none() && !args.check {
        eprintln!("error: nothing to do: give --check, --shiviz OUT.log or both");
        return ExitCode::from(2);
    }
    let nodes = match read_nodes(&args.dir) {
        Ok(nodes) => nodes,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let total: usize = nodes.iter().map(Vec::len).sum();
    if let Some(out) = &args.shiviz {
        if let Err(e) = std::fs::write(out, events::shiviz_log(&nodes)) {
            eprintln!("error: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        println!(
            "wrote {total} events of {} nodes to {}",
            nodes.len(),
            out.display()
        );
    }
    if args.check {
        let violations = events::check(&nodes);
        if !violations.is_empty() {
            for violation in &violations {
                println!("violation: {violation}");
            }
            println!(
                "happened-before broken: {} violations in {total} events",
                violations.len()
            );
            return ExitCode::FAILURE;
        }
        println!(
            "happened-before holds: {total} events of {} nodes",
            nodes.len()
        );
    }
    ExitCode::SUCCESS
}

/// Each node's events in log order (oldest rotated file first).
fn read_nodes(dir: &Path) -> Result<Vec<Vec<EventAt>>, String> {
    let log_dirs = find_log_dirs(dir)?;
    if log_dirs.is_empty() {
        return Err(format!(
            "{}: no event logs found (expected {EVENTS_DIR}/{LOG_FILE} in DIR, DIR/<node>/ or DIR/<node>/data/)",
            dir.display()
        ));
    }
    let mut nodes = Vec::new();
    for log_dir in log_dirs {
        let mut events = Vec::new();
        for file in log_files(&log_dir)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let name = file.display().to_string();
            events.extend(events::parse_log(&text, &name).map_err(|e| e.to_string())?);
        }
        if let Some(first) = events.first() {
            let node = first.event.node.clone();
            if let Some(other) = events.iter().find(|at| at.event.node != node) {
                return Err(format!(
                    "{}: expected events of node {node} only (as earlier in {}), found node {}",
                    other.origin,
                    log_dir.display(),
                    other.event.node
                ));
            }
            nodes.push(events);
        }
    }
    Ok(nodes)
}

fn find_log_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let own = dir.join(EVENTS_DIR);
    if own.join(LOG_FILE).is_file() {
        return Ok(vec![own]);
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
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
                found.push(candidate);
                break;
            }
        }
    }
    Ok(found)
}

/// `events.jsonl.<k>` from the oldest (highest k) down, then the live `events.jsonl`.
fn log_files(log_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(log_dir)
        .map_err(|e| format!("cannot list {}: {e}", log_dir.display()))?;
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
    files.push(log_dir.join(LOG_FILE));
    Ok(files)
}
