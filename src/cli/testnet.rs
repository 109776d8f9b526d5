//! `hashgrad testnet`: starts a local network of `hashgrad node` processes behind fault
//! relays, shows a live table (plain lines when stdout is not a terminal), and ends with a
//! summary (`--json`: one JSON document). Exit 0 when the goals are met, 1 otherwise.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use crate::cluster::{ConsistencyLevel, RuleSpec};
use crate::config::NodeConfig;
use crate::gpu::DeviceChoice;
use crate::testnet::{
    self, Byzantine, ClockFault, Goals, KillTarget, Kills, Latency, Observer, Partition, Plan, Row,
    Setup,
};
use crate::train::attack::Attack;

/// The node config every testnet node starts from unless `--config` is given.
const DEFAULT_CONFIG: &str = include_str!("../../configs/testnet.toml");
/// The goals of a training testnet run with none given: long enough to watch the table (the
/// nodes mine and train for this long), then every node at this accuracy on one tip.
const DEFAULT_SECS: u64 = 20;
const DEFAULT_ACCURACY: f64 = 0.95;
/// The goal of a mining-only testnet run with none given (~20 s at the default pace).
const DEFAULT_BLOCKS: u64 = 20;
/// How long `--report` may spend checking a recorded client history.
const REPORT_CHECK_BUDGET: Duration = Duration::from_secs(30);

/// Arguments of `hashgrad testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Number of nodes (1-16).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Goal: every node at this height or above, all on one tip. The default goal of a
    /// testnet that does not train: 20 (about 20 s at the default pace).
    #[arg(long, value_name = "N")]
    pub blocks: Option<u64>,
    /// Goal: every node has committed and applied this many training rounds and holds the
    /// same params (the leader stops there). With no goal given: train for 20 s, then every
    /// node at 95% on one tip (tests and CI pass short goals instead).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// Goal: test accuracy on every node, in percent (95) or as a fraction (0.95).
    #[arg(long, value_name = "PCT")]
    pub target_accuracy: Option<f64>,
    /// Run this many seconds, then check the goals (alone: succeed once the nodes agree).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Give up after this many seconds when the goals are not met.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub timeout: f64,
    /// Node config for every node (default: configs/testnet.toml, built in); the testnet
    /// replaces its data dir, addresses, peers and pins.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Mining only: drop the config's `[train]` section.
    #[arg(long)]
    pub no_train: bool,
    /// Train on this CSV file (label in the last column) instead of the embedded digits.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Aggregation rule: mean, median, trimmed-mean:B or krum:F.
    #[arg(long, value_name = "RULE")]
    pub rule: Option<RuleSpec>,
    /// Gradients a round waits for: one, quorum or all.
    #[arg(long, value_name = "LEVEL")]
    pub consistency: Option<ConsistencyLevel>,
    /// The last F nodes send corrupted gradients (see --attack).
    #[arg(long, value_name = "F")]
    pub byzantine: Option<usize>,
    /// What Byzantine nodes send: sign-flip, scale or noise.
    #[arg(
        long,
        value_name = "KIND",
        default_value = "sign-flip",
        requires = "byzantine"
    )]
    pub attack: Attack,
    /// Mining backend for every node: cpu, gpu or auto.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<DeviceChoice>,
    /// Milliseconds a node waits (0 to twice this, random) on a new tip before mining.
    #[arg(long, value_name = "MS")]
    pub pace_ms: Option<u64>,
    /// Added delay on every link, `MS` or `MS,JITTER`.
    #[arg(long, value_name = "MS[,JITTER]")]
    pub latency: Option<String>,
    /// Datagrams dropped on every link, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    pub loss: f64,
    /// Cut the network into groups at AT seconds for SECS seconds, e.g. `20+10:0,1|2`
    /// (default groups: the last node alone); repeatable.
    #[arg(long = "partition", value_name = "AT+SECS[:GROUPS]")]
    pub partitions: Vec<String>,
    /// Run a node's clock at RATE times real time (libfaketime: timers, timeouts and clocks of
    /// that process scale), for the whole run or from AT seconds for SECS; NODE is an index,
    /// `leader` or `follower` (resolved when the window opens), e.g. `leader:0.5@10+20`;
    /// repeatable. Needs libfaketime (`apt-get install faketime`).
    #[arg(long = "clock", value_name = "NODE:RATE[@AT+SECS]")]
    pub clocks: Vec<String>,
    /// `kill -9` the training leader every SECS seconds and restart it (a random node while
    /// no node reports a leader).
    #[arg(long, value_name = "SECS", conflicts_with = "kill_random_every")]
    pub kill_leader_every: Option<f64>,
    /// `kill -9` a random node every SECS seconds and restart it.
    #[arg(long, value_name = "SECS")]
    pub kill_random_every: Option<f64>,
    /// Seconds a killed node stays down before it restarts from its data dir.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub restart_after: f64,
    /// First QUIC port (node i gets PORT+i); default: free ports.
    #[arg(long, value_name = "PORT")]
    pub base_port: Option<u16>,
    /// Testnet dir (default: ./hashgrad-testnet-YYYYMMDD-HHMMSS).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the nodes' data dirs (node logs, event logs and the summary are always kept).
    #[arg(long)]
    pub keep: bool,
    /// At the end, write DIR/report.html (as `hashgrad report DIR` does) and print its path.
    #[arg(long)]
    pub report: bool,
    /// Seed for loss, jitter and kill choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Milliseconds between status polls (the table's refresh; block propagation is timed
    /// from the nodes' event logs, in µs).
    #[arg(long, value_name = "MS", default_value_t = 250)]
    pub poll_ms: u64,
    /// Print one JSON summary on stdout instead of the table and text summary.
    #[arg(long)]
    pub json: bool,
    /// Run a Jepsen-style workload for SECS seconds: clients write, compare-and-set and read
    /// config keys on every node while the faults given (or, with none, a partition and leader
    /// kills) hit the cluster; the history is checked (writes and linearizable reads must be
    /// linearizable, local reads causally consistent) and written to DIR/jepsen/.
    #[arg(long, value_name = "SECS")]
    pub jepsen: Option<f64>,
}

fn secs(value: f64, what: &str) -> anyhow::Result<Duration> {
    if (0.0..1e7).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(super::usage(format!(
            "{what}: {value} is not a number of seconds"
        )))
    }
}

impl TestnetArgs {
    fn plan(&self, training: bool) -> anyhow::Result<Plan> {
        let usage = |e: testnet::TestnetError| super::usage(e.to_string());
        let latency = match &self.latency {
            Some(text) => Latency::parse(text).map_err(usage)?,
            None => Latency::default(),
        };
        let partitions = self
            .partitions
            .iter()
            .map(|p| Partition::parse(p, self.nodes.max(1)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(usage)?;
        let clocks = self
            .clocks
            .iter()
            .map(|c| ClockFault::parse(c, self.nodes.max(1)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(usage)?;
        let kills = match (self.kill_leader_every, self.kill_random_every) {
            (Some(every), _) => Some((KillTarget::Leader, every)),
            (None, Some(every)) => Some((KillTarget::Random, every)),
            (None, None) => None,
        };
        let kills = match kills {
            Some((target, every)) => Some(Kills {
                target,
                every: secs(every, "kill period")?,
                pause: secs(self.restart_after, "--restart-after")?,
            }),
            None => None,
        };
        let target_accuracy = self
            .target_accuracy
            .map(|a| if a > 1.0 { a / 100.0 } else { a });
        let mut goals = Goals {
            blocks: self.blocks,
            rounds: self.rounds,
            target_accuracy,
            duration: self.duration.map(|d| secs(d, "--duration")).transpose()?,
        };
        if goals == Goals::default() {
            if training {
                goals.duration = Some(Duration::from_secs(DEFAULT_SECS));
                goals.target_accuracy = Some(DEFAULT_ACCURACY);
            } else {
                goals.blocks = Some(DEFAULT_BLOCKS);
            }
        }
        let mut plan = Plan {
            nodes: self.nodes,
            goals,
            timeout: secs(self.timeout, "--timeout")?,
            latency,
            loss_pct: self.loss,
            partitions,
            kills,
            clocks,
            byzantine: self.byzantine.map(|nodes| Byzantine {
                nodes,
                attack: self.attack,
            }),
            base_port: self.base_port,
            poll: Duration::from_millis(self.poll_ms.clamp(10, 10_000)),
            seed: self.seed,
            jepsen: self.jepsen.map(|s| secs(s, "--jepsen")).transpose()?,
        };
        if plan.jepsen.is_some() && !training {
            return Err(super::usage(
                "--jepsen tests the training cluster's config store: the node config has no \
                 [train] section (or --no-train was given)",
            ));
        }
        let clocks_available = testnet::faketime::library().is_ok();
        if let Some(nemesis) = plan.add_jepsen_nemesis(
            secs(self.restart_after, "--restart-after")?,
            clocks_available,
        ) && !self.json
        {
            eprintln!("jepsen nemesis (no fault flags given): {nemesis}");
        }
        plan.validate().map_err(usage)?;
        if !plan.clocks.is_empty() {
            testnet::faketime::library().map_err(usage)?;
        }
        Ok(plan)
    }

    /// The node config every node starts from; `goal_rounds` becomes `train.rounds`.
    fn base_config(&self, goal_rounds: Option<u64>) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => NodeConfig::from_file(path),
            None => NodeConfig::from_toml(DEFAULT_CONFIG, Path::new("configs/testnet.toml")),
        }
        .map_err(|e| super::usage(e.to_string()))?;
        if self.no_train {
            config.train = None;
        }
        let training_flags = self.data.is_some()
            || self.rule.is_some()
            || self.consistency.is_some()
            || self.byzantine.is_some();
        match &mut config.train {
            None if training_flags => {
                return Err(super::usage(
                    "--data, --rule, --consistency and --byzantine need nodes that train: the \
                     node config has no [train] section (or --no-train was given)",
                ));
            }
            None => {}
            Some(train) => {
                if let Some(data) = &self.data {
                    train.data = Some(std::path::absolute(data)?);
                }
                if let Some(rule) = self.rule {
                    train.rule = rule;
                }
                if let Some(consistency) = self.consistency {
                    train.consistency = consistency;
                }
                // The leader stops at the round goal, so every node ends on the same params.
                train.rounds = goal_rounds;
            }
        }
        if let Some(backend) = self.backend {
            config.mining.backend = backend;
        }
        if let Some(pace) = self.pace_ms {
            config.mining.pace_ms = pace;
        }
        config.validate().map_err(|e| super::usage(e.to_string()))?;
        Ok(config)
    }
}

/// Runs the local network to its end, prints the summary (and with `--report` writes
/// `report.html`); an error (exit 1) when the goals are not met or a signal stopped it.
pub fn run(args: TestnetArgs) -> anyhow::Result<()> {
    let training = args.base_config(None)?.train.is_some();
    let plan = args.plan(training)?;
    let setup = Setup {
        dir: args.dir.clone().unwrap_or_else(default_dir),
        binary: std::env::current_exe()?,
        base_config: args.base_config(plan.goals.rounds)?,
        keep_data: args.keep,
    };
    let terminal = !args.json && std::io::stdout().is_terminal();
    let mut observer = Screen {
        terminal,
        quiet: args.json,
        drawn: 0,
        last_plain: None,
    };
    eprintln!(
        "testnet in {} (logs, data dirs, events)",
        setup.dir.display()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(testnet::run(&plan, &setup, &mut observer, stop_signal()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        observer.clear();
        println!("{}", summary.text());
    }
    if args.report {
        let out = setup.dir.join("report.html");
        let written = super::report::write(
            &setup.dir,
            &out,
            crate::report::Limits::default(),
            REPORT_CHECK_BUDGET,
        )?;
        let line = super::report::describe(&written);
        // `--json` keeps stdout one JSON document.
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    match &summary.reason {
        None => Ok(()),
        Some(reason) => anyhow::bail!("testnet: {reason}"),
    }
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn stop_signal() -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "stopped by SIGINT".into(),
        _ = term.recv() => "stopped by SIGTERM".into(),
    }
}

/// `./hashgrad-testnet-YYYYMMDD-HHMMSS` (UTC).
fn default_dir() -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    PathBuf::from(format!(
        "hashgrad-testnet-{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    ))
}

/// Shows the run: a table redrawn in place on a terminal, a table every few seconds as
/// plain lines otherwise, events as they happen; nothing but the summary with `--json`.
struct Screen {
    terminal: bool,
    quiet: bool,
    drawn: usize,
    last_plain: Option<Duration>,
}

/// Seconds between tables when stdout is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

impl Screen {
    fn clear(&mut self) {
        if self.terminal && self.drawn > 0 {
            print!("\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }
}

impl Observer for Screen {
    fn tick(&mut self, elapsed: Duration, rows: &[Row]) {
        if self.quiet {
            return;
        }
        let table = testnet::report::table(rows);
        if self.terminal {
            self.clear();
            println!("{table}\n{:.1} s", elapsed.as_secs_f64());
            self.drawn = table.lines().count() + 1;
        } else if self
            .last_plain
            .is_none_or(|last| elapsed >= last + PLAIN_EVERY)
        {
            self.last_plain = Some(elapsed);
            println!("t={:.1}s\n{table}", elapsed.as_secs_f64());
        }
        let _ = std::io::stdout().flush();
    }

    fn event(&mut self, elapsed: Duration, text: &str) {
        if self.quiet {
            return;
        }
        self.clear();
        println!("{:7.1} s  {text}", elapsed.as_secs_f64());
    }
}
