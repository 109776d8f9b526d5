//! `hashgrad report DIR -o report.html`: reads a testnet dir (the nodes' event logs one event
//! at a time, `events.log`, `summary.json`, and `jepsen/` — the client histories and their verdict — when a
//! client workload ran), checks each history under a time budget, and writes the page
//! `crate::report` builds. Also called by `hashgrad testnet --report`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use crate::check::{
    CheckError, CheckOptions, Format, History, LinearizabilityReport, check_linearizable,
};
use crate::events;
use crate::report::{
    self, CheckedHistory, Collector, Consistency, Context, Limits, RecordedHistory,
};

/// Arguments of `hashgrad report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A testnet dir (`n0/data/events/`, …, `events.log`, `summary.json`, `jepsen/`).
    pub dir: PathBuf,
    /// Where to write the page (default: DIR/report.html).
    #[arg(short, long, value_name = "OUT.html")]
    pub output: Option<PathBuf>,
    /// Most messages drawn in the space-time diagram (a sample beyond it).
    #[arg(long, value_name = "N", default_value_t = Limits::default().messages)]
    pub max_messages: usize,
    /// Time budget in seconds for checking the client history.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub check_timeout: f64,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The page written.
    pub path: PathBuf,
    /// Size of the page in bytes.
    pub bytes: usize,
    /// Events read from the nodes' event logs.
    pub events: usize,
    /// Nodes whose event logs were found.
    pub nodes: usize,
    /// Wall-clock seconds to read, check and write.
    pub seconds: f64,
}

/// The client histories inside a testnet dir (`testnet --jepsen`): linearizable reads, then
/// local reads (which may be stale), and the testnet's verdict on them.
pub const HISTORIES: [&str; 2] = ["jepsen/history.jsonl", "jepsen/local-history.jsonl"];
/// The testnet's verdict on the client histories, inside a testnet dir.
pub const VERDICT: &str = "jepsen/verdict.json";

/// Writes the report of a testnet dir (to DIR/report.html unless `-o`) and prints one line about
/// it; a missing dir or a bad time budget is a usage error.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    if !args.dir.is_dir() {
        return Err(super::usage(format!(
            "{}: not a directory (give a testnet dir)",
            args.dir.display()
        )));
    }
    if !(args.check_timeout > 0.0 && args.check_timeout < 1e6) {
        return Err(super::usage(
            "--check-timeout must be a positive number of seconds",
        ));
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| args.dir.join("report.html"));
    let limits = Limits {
        messages: args.max_messages,
        ..Limits::default()
    };
    let written = write(
        &args.dir,
        &out,
        limits,
        Duration::from_secs_f64(args.check_timeout),
    )?;
    println!("{}", describe(&written));
    Ok(())
}

/// One line about a written report.
pub fn describe(written: &Written) -> String {
    format!(
        "wrote {} ({:.1} KiB, {} events of {} nodes, {:.2} s)",
        written.path.display(),
        written.bytes as f64 / 1024.0,
        written.events,
        written.nodes,
        written.seconds
    )
}

fn optional_text(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Builds the report of testnet dir `dir` and writes it to `out`.
pub fn write(
    dir: &Path,
    out: &Path,
    limits: Limits,
    check_budget: Duration,
) -> anyhow::Result<Written> {
    let began = Instant::now();
    let mut collector = Collector::new(limits);
    let logs = events::find_logs(dir)?;
    let mut count = 0;
    for log in &logs {
        let lane = collector.node(&log.label);
        count += events::read_events(log, |at| collector.add(lane, &at.event))?;
    }
    let summary = optional_text(&dir.join("summary.json"))?;
    let testnet_events = optional_text(&dir.join("events.log"))?;
    let verdict = optional_text(&dir.join(VERDICT))?;
    let mut checked = Vec::new();
    for file in HISTORIES {
        if let Some(text) = optional_text(&dir.join(file))? {
            // The page shows a history that does not check as its file and the reason.
            let result = check(&text, check_budget).map_err(|e| format!("{file}: {e}"));
            checked.push((file, result));
        }
    }
    let histories: Vec<RecordedHistory<'_>> = checked
        .iter()
        .map(|(file, result)| RecordedHistory {
            file,
            checked: match result {
                Ok((history, model, report)) => Ok(CheckedHistory {
                    history,
                    report,
                    model,
                }),
                Err(reason) => Err(reason.as_str()),
            },
        })
        .collect();
    let consistency = if histories.is_empty() && verdict.is_none() {
        Consistency::NotRecorded
    } else {
        Consistency::Recorded {
            verdict_json: verdict.as_deref(),
            histories: &histories,
        }
    };
    let title = format!(
        "hashgrad testnet {}",
        std::path::absolute(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default()
    );
    let context = Context {
        title: &title,
        summary_json: summary.as_deref(),
        testnet_events: testnet_events.as_deref(),
        consistency,
    };
    let page = report::render(collector, &context)
        .with_context(|| format!("cannot build the report of {}", dir.display()))?;
    std::fs::write(out, &page).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Written {
        path: out.to_path_buf(),
        bytes: page.len(),
        events: count,
        nodes: logs.len(),
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// Checks the history for linearizability within `budget` (past it the verdict is unknown).
fn check(
    text: &str,
    budget: Duration,
) -> Result<(History, &'static str, LinearizabilityReport), CheckError> {
    let stop = AtomicBool::new(false);
    let (done, wait) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(budget) {
                stop.store(true, Ordering::Relaxed);
            }
        });
        let options = CheckOptions {
            stop: Some(stop),
            ..CheckOptions::default()
        };
        let result = check_linearizable(text, Some(Format::Jsonl), None, &options)
            .map(|(history, model, report)| (history, model.name(), report));
        drop(done);
        result
    })
}
