//! `hashgrad train`: K simulated workers in one process (no network), round by round, on the
//! embedded digits set or a user's CSV; progress bar with loss on stderr, final test accuracy
//! (or a `--json` summary) on stdout.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::gpu::{AdapterChoice, DeviceChoice};
use crate::train::aggregate::{AggregateError, Reducer, Rule, RuleName};
use crate::train::attack::Attack;
use crate::train::csv::{self, LabelColumn};
use crate::train::optimizer::OptimizerKind;
use crate::train::{Dataset, Setting, Simulation, TrainConfig, TrainError};

/// Largest CSV file `--data` reads.
const MAX_DATA_BYTES: u64 = 1 << 30;

/// Arguments of `hashgrad train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Number of simulated workers K (each trains on its own shard).
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Rounds to run (one reduced gradient and optimizer step each).
    #[arg(long, default_value_t = 300)]
    pub rounds: u64,
    /// Aggregation rule: mean, median, trimmed-mean or krum (multi-Krum averaging the K − f best).
    #[arg(long, default_value = "mean")]
    pub rule: RuleName,
    /// Values dropped at each end per coordinate for trimmed-mean; the assumed Byzantine count f for krum.
    #[arg(long, default_value_t = 1)]
    pub trim: usize,
    /// How many workers (the last ones) are Byzantine.
    #[arg(long, default_value_t = 0)]
    pub byzantine: usize,
    /// What Byzantine workers send: sign-flip (×−10), scale (×100) or noise (+N(0, 10²)).
    #[arg(long, default_value = "sign-flip")]
    pub attack: Attack,
    /// Optimizer: sgd (momentum 0.9) or adam.
    #[arg(long, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Learning rate [default: 0.002 for adam, 0.05 for sgd].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Rows per worker mini-batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Seed for the split, shards, initial weights, batches and attacks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hidden layer widths, comma-separated (e.g. 64 or 128,64).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub hidden: Vec<usize>,
    /// Where gradients are reduced: cpu, gpu, or auto (GPU only on a hardware adapter).
    #[arg(long, default_value = "auto")]
    pub backend: DeviceChoice,
    /// GPU adapter: auto, an index from `hashgrad adapters`, or part of its name.
    #[arg(long, default_value = "auto")]
    pub adapter: AdapterChoice,
    /// Train on this CSV file instead of the embedded digits set (numbers, one row per line).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The CSV column holding the integer class label: a number counted from 1, or last.
    #[arg(long, default_value = "last")]
    pub label_column: LabelColumn,
    /// Print a JSON summary on stdout instead of text (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

fn load_data(args: &TrainArgs) -> anyhow::Result<Dataset> {
    let Some(path) = &args.data else {
        return Ok(Dataset::digits()?);
    };
    let file = std::fs::File::open(path)
        .map_err(|e| super::usage(format!("cannot open --data {}: {e}", path.display())))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_DATA_BYTES), &mut text)
        .map_err(|e| super::usage(format!("cannot read --data {}: {e}", path.display())))?;
    csv::parse(&text, args.label_column, &path.display().to_string()).map_err(|e| match e {
        TrainError::CsvLabelColumn { .. } => super::usage(format!("--label-column: {e}")),
        _ => super::usage(e.to_string()),
    })
}

/// The flag that sets a training setting the library refused.
fn setting_flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Workers => "--workers",
        Setting::Byzantine => "--byzantine",
        Setting::Trim => "lower --trim or raise --workers",
        Setting::Batch => "--batch",
        Setting::LearningRate => "--lr",
    }
}

fn progress_bar(rounds: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(rounds), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} round {pos}/{len} loss {msg} (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

/// Trains the model for the given rounds and prints the test accuracy (or the `--json` summary).
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    // Zero rounds would only evaluate the untrained model and report its chance accuracy as a
    // result; like `--workers 0`, it is a mistake in the command, not a run.
    if args.rounds == 0 {
        return Err(super::usage(
            "--rounds must be at least 1 (zero rounds trains nothing)",
        ));
    }
    let data = load_data(&args)?;
    let rule = Rule::from_name(args.rule, args.trim, args.workers);
    let config = TrainConfig {
        workers: args.workers,
        byzantine: args.byzantine,
        attack: args.attack,
        rule,
        optimizer: args.optimizer,
        learning_rate: args.lr.unwrap_or(args.optimizer.default_learning_rate()),
        batch: args.batch,
        seed: args.seed,
        hidden: args.hidden.clone(),
        test_fraction: 0.2,
    };
    let reducer = Reducer::open(args.backend, &args.adapter).map_err(|e| match e {
        AggregateError::Gpu(_) => anyhow::Error::new(e)
            .context("--backend gpu needs a GPU adapter (or use --backend cpu)"),
        other => other.into(),
    })?;
    let backend = reducer.describe();
    let mut simulation = Simulation::new(&config, &data, reducer).map_err(|e| match e {
        TrainError::BadSetting { setting, .. } => {
            super::usage(format!("{e} ({})", setting_flag(setting)))
        }
        // The model's shape comes from the data's width and classes and --hidden.
        TrainError::BadModel(_) => super::usage(format!("{e} (--hidden)")),
        TrainError::BadConfig(_) | TrainError::BadDataset(_) => super::usage(e.to_string()),
        other => other.into(),
    })?;
    let bar = progress_bar(args.rounds, args.json);
    let started = Instant::now();
    let mut last_loss = f32::NAN;
    for _ in 0..args.rounds {
        let report = simulation.run_round().with_context(|| {
            format!(
                "round {} failed (a diverging model or a non-finite gradient stops training)",
                simulation.trainer().round() + 1
            )
        })?;
        last_loss = report.loss;
        bar.set_message(format!("{:.4}", report.loss));
        bar.inc(1);
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let evaluation = simulation.evaluate()?;
    let per_round = elapsed.as_secs_f64() / args.rounds as f64;
    let hash = simulation.trainer().state_hash();
    let (train_rows, test_rows) = simulation.sizes();
    if args.json {
        let summary = serde_json::json!({
            "accuracy": evaluation.accuracy,
            "test_loss": evaluation.loss,
            "final_loss": last_loss,
            "rounds": args.rounds,
            "rule": rule.name(),
            "trim": args.trim,
            "workers": args.workers,
            "byzantine": args.byzantine,
            "attack": args.attack.name(),
            "optimizer": format!("{:?}", args.optimizer).to_lowercase(),
            "learning_rate": config.learning_rate,
            "backend": backend,
            "params": simulation.trainer().params().len(),
            "params_hash": hash.to_string(),
            "seconds_per_round": per_round,
            "train_rows": train_rows,
            "test_rows": test_rows,
        });
        println!("{summary}");
    } else {
        println!(
            "{} rounds, {} workers ({} Byzantine, {}), rule {rule}, reduced on {backend}",
            args.rounds,
            args.workers,
            args.byzantine,
            args.attack.name()
        );
        println!(
            "final training loss {last_loss:.4}; test loss {:.4}",
            evaluation.loss
        );
        println!(
            "test accuracy {:.2}% ({test_rows} rows)",
            evaluation.accuracy * 100.0
        );
        println!(
            "time per round {:.3} ms; params hash {hash}",
            per_round * 1e3
        );
    }
    Ok(())
}
