//! `hashgrad check`: reads history files, runs the linearizability or causal check of
//! `crate::check` under a time budget, prints a verdict per file (or one `--json` document)
//! and writes the `--html` view. Exit codes: 0 every history holds, 1 one violates, 3 one is
//! unknown (time budget) and none violates, 2 bad input (that wins over the others).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde_json::{Value as Json, json};

use crate::check::causal::{self, CausalReport};
use crate::check::linearize::{LinearizabilityReport, Verdict};
use crate::check::{CheckOptions, Format, History, ModelKind, format, html, linearize, model};

/// Arguments of `hashgrad check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// History files (etcd logs, Jepsen key/value EDN or hashgrad JSONL).
    #[arg(required = true)]
    pub histories: Vec<PathBuf>,
    /// The files' format; `auto` looks at the first line.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,
    /// The sequential specification; by default inferred from the calls (get/put/append: kv,
    /// cas: cas-register, else register).
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Which consistency to check.
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Linearizable)]
    pub consistency: ConsistencyArg,
    /// Time budget per history in seconds; past it the verdict is `unknown`.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// Worker threads for partitions (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the HTML view to this file (with several histories: `OUT-<name>.html` each).
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
}

/// A history file format, as `--format` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect the format from the first non-blank line.
    Auto,
    /// Jepsen's etcd register logs.
    Etcd,
    /// Jepsen's key/value histories, one EDN map per line.
    JepsenKv,
    /// hashgrad's JSON Lines, one event object per line.
    Jsonl,
}

/// A sequential specification, as `--model` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// A read/write register, initially nil.
    Register,
    /// A register with compare-and-set, initially nil.
    CasRegister,
    /// A string per key with get, put and append, initially empty.
    Kv,
}

/// The consistency model, as `--consistency` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsistencyArg {
    /// Linearizability against the sequential specification.
    Linearizable,
    /// Causal consistency; needs every write to write a distinct value per key.
    Causal,
}

/// What became of one file.
enum FileResult {
    Linear {
        history: History,
        model: ModelKind,
        report: LinearizabilityReport,
        seconds: f64,
    },
    Causal {
        history: History,
        report: CausalReport,
        seconds: f64,
    },
    BadInput(String),
}

/// Runs the command and returns its exit code.
pub fn run(args: CheckArgs) -> ExitCode {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        eprintln!("error: --timeout must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut documents = Vec::new();
    let (mut bad, mut violated, mut unknown, mut total_seconds) = (false, false, false, 0.0);
    let several = args.histories.len() > 1;
    for path in &args.histories {
        let result = check_file(path, &args, threads);
        let name = path.display().to_string();
        match &result {
            FileResult::BadInput(message) => {
                bad = true;
                eprintln!("error: {message}");
                documents.push(json!({"file": name, "verdict": "bad input", "error": message}));
            }
            FileResult::Linear {
                history,
                model,
                report,
                seconds,
            } => {
                total_seconds += seconds;
                violated |= report.verdict == Verdict::NotLinearizable;
                unknown |= report.verdict == Verdict::Unknown;
                if !args.json {
                    print_linear(&name, history, report, *seconds, args.timeout);
                }
                documents.push(linear_json(&name, history, *model, report, *seconds));
                if let Some(out) = &args.html {
                    let target = html_path(out, path, several);
                    let page = html::render(&name, history, report);
                    if let Err(e) = std::fs::write(&target, page) {
                        eprintln!("error: cannot write {}: {e}", target.display());
                        bad = true;
                    }
                }
            }
            FileResult::Causal {
                history,
                report,
                seconds,
            } => {
                total_seconds += seconds;
                violated |= report.violation.is_some();
                if !args.json {
                    print_causal(&name, history, report, *seconds);
                }
                documents.push(causal_json(&name, history, report, *seconds));
            }
        }
    }
    let verdict = if bad {
        "bad input"
    } else if violated {
        "violated"
    } else if unknown {
        "unknown"
    } else {
        "holds"
    };
    if args.json {
        let doc = json!({"verdict": verdict, "seconds": total_seconds, "files": documents});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else if several {
        println!(
            "{} histories, {verdict}; checking took {total_seconds:.6} s",
            args.histories.len()
        );
    }
    ExitCode::from(if bad {
        2
    } else if violated {
        1
    } else if unknown {
        3
    } else {
        0
    })
}

fn html_path(out: &Path, history: &Path, several: bool) -> PathBuf {
    if !several {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "check".into());
    let name = history
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!("{stem}-{name}.html"))
}

fn check_file(path: &Path, args: &CheckArgs, threads: usize) -> FileResult {
    let name = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return FileResult::BadInput(format!("{name}: cannot read: {e}")),
    };
    let format = match args.format {
        FormatArg::Auto => None,
        FormatArg::Etcd => Some(Format::Etcd),
        FormatArg::JepsenKv => Some(Format::JepsenKv),
        FormatArg::Jsonl => Some(Format::Jsonl),
    };
    let history = match format::parse(&text, format) {
        Ok((_, h)) => h,
        Err(e) => return FileResult::BadInput(format!("{name}:{}: {e}", e.line())),
    };
    let started = Instant::now();
    if args.consistency == ConsistencyArg::Causal {
        return match causal::check(&history) {
            Ok(report) => FileResult::Causal {
                history,
                report,
                seconds: started.elapsed().as_secs_f64(),
            },
            Err(e) => FileResult::BadInput(format!("{name}:{}: {e}", e.line())),
        };
    }
    let model = match args.model {
        Some(ModelArg::Register) => ModelKind::Register,
        Some(ModelArg::CasRegister) => ModelKind::CasRegister,
        Some(ModelArg::Kv) => ModelKind::Kv,
        None => ModelKind::infer(&history.operations),
    };
    let stop = AtomicBool::new(false);
    let budget = Duration::from_secs_f64(args.timeout);
    let result = std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel::<()>();
        let history = &history;
        let stop = &stop;
        let worker = scope.spawn(move || {
            let options = CheckOptions {
                threads,
                stop: Some(stop),
            };
            let report = match model {
                ModelKind::Register => linearize::check(history, &model::Register, &options),
                ModelKind::CasRegister => linearize::check(history, &model::CasRegister, &options),
                _ => linearize::check(history, &model::Kv, &options),
            };
            let _ = done.send(());
            report
        });
        // The budget: past it, the stop flag ends every search within one slice of steps.
        if finished.recv_timeout(budget).is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => FileResult::Linear {
            history,
            model,
            report,
            seconds,
        },
        Err(e) => FileResult::BadInput(format!("{name}:{}: {e}", e.line())),
    }
}

fn where_(history: &History, i: usize) -> String {
    let op = &history.operations[i];
    format!("{} (client {}, line {})", op.describe(), op.client, op.line)
}

fn print_linear(
    name: &str,
    history: &History,
    report: &LinearizabilityReport,
    seconds: f64,
    timeout: f64,
) {
    let budget = if report.verdict == Verdict::Unknown {
        format!(", the {timeout} s budget ran out")
    } else {
        String::new()
    };
    println!(
        "{name}: {} ({} operations, {} partitions, {seconds:.6} s{budget})",
        report.verdict.name(),
        history.operations.len(),
        report.partitions.len()
    );
    for p in report
        .partitions
        .iter()
        .filter(|p| p.verdict == Verdict::NotLinearizable)
    {
        let key = p
            .key
            .as_ref()
            .map_or_else(|| "the object".to_string(), |k| format!("key {k:?}"));
        if let Some(e) = &p.explanation {
            println!(
                "  {key}: not linearizable; the longest linearizable prefix has {} of {} operations and leaves state {}; none of these can come next:",
                e.prefix,
                p.operations.len(),
                e.state
            );
            for s in &e.stuck {
                let why = if s.refused {
                    "the model refuses it in that state"
                } else {
                    "every continuation after it fails"
                };
                println!("    {}: {why}", where_(history, s.operation));
            }
        }
    }
}

fn linear_json(
    name: &str,
    history: &History,
    model: ModelKind,
    report: &LinearizabilityReport,
    seconds: f64,
) -> Json {
    let partitions: Vec<Json> = report
        .partitions
        .iter()
        .map(|p| {
            let explanation = p.explanation.as_ref().map(|e| {
                json!({
                    "prefix": e.prefix,
                    "state": e.state,
                    "longest_prefix": p.linearization.iter().map(|&i| where_(history, i)).collect::<Vec<_>>(),
                    "cannot_come_next": e.stuck.iter().map(|s| json!({
                        "operation": where_(history, s.operation),
                        "line": history.operations[s.operation].line,
                        "refused_by_model": s.refused,
                    })).collect::<Vec<_>>(),
                })
            });
            json!({
                "key": p.key,
                "verdict": p.verdict.name(),
                "operations": p.operations.len(),
                "explored": p.explored,
                "explanation": explanation,
            })
        })
        .collect();
    json!({
        "file": name,
        "consistency": "linearizable",
        "model": model.name(),
        "verdict": report.verdict.name(),
        "operations": history.operations.len(),
        "clients": history.clients(),
        "partitions": report.partitions.len(),
        "seconds": seconds,
        "by_partition": partitions,
    })
}

fn causal_name(report: &CausalReport) -> &'static str {
    if report.violation.is_some() {
        "not causally consistent"
    } else {
        "causally consistent"
    }
}

fn print_causal(name: &str, history: &History, report: &CausalReport, seconds: f64) {
    println!(
        "{name}: {} ({} operations, {seconds:.6} s)",
        causal_name(report),
        history.operations.len()
    );
    if let Some(v) = &report.violation {
        println!("  {}: {}", v.pattern.name(), v.explanation);
    }
}

fn causal_json(name: &str, history: &History, report: &CausalReport, seconds: f64) -> Json {
    json!({
        "file": name,
        "consistency": "causal",
        "verdict": causal_name(report),
        "operations": history.operations.len(),
        "seconds": seconds,
        "bad_pattern": report.violation.as_ref().map(|v| v.pattern.name()),
        "explanation": report.violation.as_ref().map(|v| v.explanation.clone()),
        "witness": report.violation.as_ref().map(|v| v.operations.iter().map(|&i| where_(history, i)).collect::<Vec<_>>()),
    })
}
