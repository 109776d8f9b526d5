//! The orchestrator's outline: lays out the testnet dir, creates node keys, writes each
//! node's config (training voters, the Byzantine nodes' attack), starts the relays, hands the
//! nodes to the `Driver` (`driver.rs`) until the goals are met, they fail or the caller stops
//! the run, then stops every child, judges the `--jepsen` histories, cleans the data dirs and
//! writes `summary.json` — on success, failure, error or the caller's stop signal alike.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::cluster::Cluster;
use super::driver::Driver;
use super::faketime::{self, FakeClock};
use super::jepsen::{self, Histories};
use super::journal::Journal;
use super::layout::{node_config, relay_back_ip, relay_front};
use super::plan::{ClockTarget, Plan};
use super::process::NodeProcess;
use super::propagation::{BlockTimes, NoPropagation, Percentiles};
use super::relay::{LinkFaults, Relay};
use super::report::{Row, Summary};
use super::{TestnetError, layout};
use crate::config::NodeConfig;
use crate::events::{self, LogReadError};
use crate::net::Identity;

/// Where and with what a testnet runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The testnet dir (created): per node `nI/data`, `nI/node.toml`, `nI/node.log`, then
    /// `events.log` and `summary.json`.
    pub dir: PathBuf,
    /// The `hashgrad` binary to run as `hashgrad node`.
    pub binary: PathBuf,
    /// The config every node starts from (its addresses, peers and pins are replaced; with a
    /// `[train]` section, every node votes and works).
    pub base_config: NodeConfig,
    /// Keep the nodes' data dirs after the run (without it only their event logs,
    /// `nI/data/events/`, stay).
    pub keep_data: bool,
}

/// Receives what happens while the testnet runs.
pub trait Observer {
    /// A poll finished: one row per node.
    fn tick(&mut self, elapsed: Duration, rows: &[Row]);
    /// A kill, a restart, a partition, a heal.
    fn event(&mut self, elapsed: Duration, text: &str);
}

/// Runs the testnet until its goals are met, it fails, or `stop` resolves (with the reason),
/// and returns the summary. Every child process is gone when this returns.
pub async fn run(
    plan: &Plan,
    setup: &Setup,
    observer: &mut dyn Observer,
    stop: impl Future<Output = String>,
) -> Result<Summary, TestnetError> {
    check(plan, setup)?;
    let began = Instant::now();
    let cluster = lay_out(plan, setup).await?;
    let journal = Journal::create(&setup.dir.join("events.log"), observer)?;
    let paced = setup.base_config.mining.pace_ms > 0;
    let mut driver = Driver::new(plan, paced, cluster, journal, began);
    let outcome = tokio::select! {
        outcome = driver.drive() => outcome,
        reason = stop => Ok(Some(reason)),
    };
    let histories = driver.finish_workload().await;
    driver.stop_all().await;
    let reason = outcome?;
    let propagation = time_propagation(setup, plan.nodes, driver.clean_stretches()).await;
    let mut summary = driver.summary(setup, reason, propagation);
    if let Some(histories) = histories {
        judge_workload(setup, histories, &mut summary).await?;
    }
    if !setup.keep_data {
        for index in 0..plan.nodes {
            remove_all_but_events(&data_dir(setup, index));
        }
    }
    write_summary(setup, &summary)?;
    Ok(summary)
}

/// Refuses a plan that cannot run with this setup.
fn check(plan: &Plan, setup: &Setup) -> Result<(), TestnetError> {
    plan.validate()?;
    if plan.byzantine.is_some() && setup.base_config.train.is_none() {
        return Err(TestnetError::Invalid {
            what: "byzantine nodes",
            reason: "the node config has no [train] section, so no node trains".into(),
        });
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TestnetError + use<> {
    let path = path.to_path_buf();
    move |e| TestnetError::Io(path, e)
}

/// Creates the testnet dir, the nodes' keys and configs, and starts the relays: the cluster,
/// its nodes not yet started.
async fn lay_out(plan: &Plan, setup: &Setup) -> Result<Cluster, TestnetError> {
    std::fs::create_dir_all(&setup.dir).map_err(io_error(&setup.dir))?;
    let ports = match plan.base_port {
        Some(base) => (0..plan.nodes).map(|i| base + i as u16).collect(),
        None => free_ports(plan.nodes)?,
    };
    let mut ids = Vec::with_capacity(plan.nodes);
    for index in 0..plan.nodes {
        ids.push(Identity::load_or_create(&data_dir(setup, index))?.id());
    }
    let relays = start_relays(plan, &ports).await?;
    let mut nodes = Vec::with_capacity(plan.nodes);
    for index in 0..plan.nodes {
        let node_dir = setup.dir.join(format!("n{index}"));
        let mut config = node_config(
            &setup.base_config,
            index,
            &data_dir(setup, index),
            &ports,
            &ids,
        );
        if let (Some(byzantine), Some(train)) = (&plan.byzantine, &mut config.train)
            && byzantine.attacks(index, plan.nodes)
        {
            train.attack = Some(byzantine.attack);
        }
        let path = node_dir.join("node.toml");
        write_config(&config, &path)?;
        let mut node = NodeProcess::new(index, &setup.binary, &path, &node_dir.join("node.log"));
        if let Some(rate) = clock_from_start(plan, index) {
            let spec = node_dir.join("faketime.rc");
            node.fake_clock(FakeClock::new(faketime::library()?, spec, rate));
        }
        nodes.push(node);
    }
    Ok(Cluster::new(nodes, relays))
}

/// The rate node `index` starts at when a clock fault may reach it, `None` when none can.
fn clock_from_start(plan: &Plan, index: usize) -> Option<f64> {
    let reached = plan.clocks.iter().any(|fault| match fault.target {
        ClockTarget::Node(n) => n == index,
        ClockTarget::Leader | ClockTarget::Follower => true,
    });
    reached.then(|| plan.base_clock_rate(index))
}

fn write_config(config: &NodeConfig, path: &Path) -> Result<(), TestnetError> {
    config.validate()?;
    let text = toml::to_string(config).map_err(|e| TestnetError::Invalid {
        what: "node config",
        reason: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(io_error(path))
}

/// Checks the `--jepsen` histories (off the async threads) and puts the verdict in the
/// summary; a broken guarantee fails a run that had not failed already.
async fn judge_workload(
    setup: &Setup,
    histories: Histories,
    summary: &mut Summary,
) -> Result<(), TestnetError> {
    let dir = setup.dir.clone();
    let report = tokio::task::spawn_blocking(move || jepsen::judge(&dir, &histories))
        .await
        .map_err(|e| TestnetError::Invalid {
            what: "jepsen check",
            reason: e.to_string(),
        })??;
    if !report.holds() && summary.reason.is_none() {
        summary.reason = Some(format!(
            "the config store broke its guarantees: {}",
            report.text()
        ));
        summary.goals_met = false;
    }
    summary.jepsen = Some(report);
    Ok(())
}

/// Reads the block events of every node's event log (the nodes have stopped, so their logs
/// are complete) and times each block's propagation inside the `clean` stretches.
async fn time_propagation(
    setup: &Setup,
    nodes: usize,
    clean: Vec<(u64, u64)>,
) -> Result<Percentiles, NoPropagation> {
    let dir = setup.dir.clone();
    let read = move || {
        let cannot = |e: LogReadError| NoPropagation::Unreadable(e.to_string());
        let mut times = BlockTimes::default();
        for (index, log) in events::find_logs(&dir).map_err(cannot)?.iter().enumerate() {
            events::read_events(log, |at| times.record(index, &at.event)).map_err(cannot)?;
        }
        times.percentiles(nodes, &clean)
    };
    tokio::task::spawn_blocking(read)
        .await
        .unwrap_or_else(|e| Err(NoPropagation::Unreadable(e.to_string())))
}

fn write_summary(setup: &Setup, summary: &Summary) -> Result<(), TestnetError> {
    let path = setup.dir.join("summary.json");
    if let Ok(json) = serde_json::to_string_pretty(summary) {
        std::fs::write(&path, json + "\n").map_err(io_error(&path))?;
    }
    Ok(())
}

/// Removes a node's data dir except its event log (`hashgrad trace` and the report read it).
fn remove_all_but_events(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name() == crate::events::EVENTS_DIR {
            continue;
        }
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

fn data_dir(setup: &Setup, index: usize) -> PathBuf {
    setup.dir.join(format!("n{index}")).join("data")
}

/// Ports the OS hands out now for UDP on 127.0.0.1 (free at this moment).
fn free_ports(count: usize) -> Result<Vec<u16>, TestnetError> {
    let sockets = (0..count)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TestnetError::NoPort)?;
    sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TestnetError::NoPort)
}

/// One relay per directed link, with the plan's latency and loss.
async fn start_relays(
    plan: &Plan,
    ports: &[u16],
) -> Result<Vec<((usize, usize), Relay)>, TestnetError> {
    let mut relays = Vec::new();
    for from in 0..plan.nodes {
        for to in (0..plan.nodes).filter(|&to| to != from) {
            let front = relay_front(from, to, ports);
            let faults = LinkFaults {
                latency: plan.latency,
                loss: plan.loss_pct / 100.0,
                ..LinkFaults::default()
            };
            let seed = plan.seed ^ ((from as u64) << 32 | to as u64);
            let target = layout::node_addr(ports[to]);
            let relay = Relay::start(front, relay_back_ip(from, to), target, faults, seed)
                .await
                .map_err(|source| TestnetError::Relay {
                    addr: front,
                    source,
                })?;
            relays.push(((from, to), relay));
        }
    }
    Ok(relays)
}
