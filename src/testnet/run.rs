//! The orchestrator: lays out the testnet dir, creates node keys, writes each node's config
//! (training voters, the Byzantine nodes' attack), starts the relays and the node processes,
//! then polls `/status` every tick, applies the chaos schedule (`chaos.rs`), records the
//! training rounds, checks the goals (`verdict.rs`), and stops every child before it returns
//! — on success, failure, error or the caller's stop signal alike.

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::jepsen::{self, Targets, Workload};
use super::layout::{node_config, relay_back_ip, relay_front};
use super::plan::Plan;
use super::process::NodeProcess;
use super::relay::{LinkFaults, Relay};
use super::report::{NodeState, PartitionReport, PropagationLog, Row, Summary};
use super::rounds::{ReceiptReport, RoundLog};
use super::status::{self, NodeView};
use super::{TestnetError, layout};
use crate::config::NodeConfig;
use crate::net::Identity;

/// How long a node may take to print its `listening` line.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long after every node is up a training node has surely reported `training`.
const TRAINING_REPORTED_WITHIN: Duration = Duration::from_secs(2);
/// How long a stopping node may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

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
    plan.validate()?;
    if plan.byzantine.is_some() && setup.base_config.train.is_none() {
        return Err(TestnetError::Invalid {
            what: "byzantine nodes",
            reason: "the node config has no [train] section, so no node trains".into(),
        });
    }
    let began = Instant::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| TestnetError::Io(path, e)
    };
    std::fs::create_dir_all(&setup.dir).map_err(io(&setup.dir))?;
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
        config.validate()?;
        let text = toml::to_string(&config).map_err(|e| TestnetError::Invalid {
            what: "node config",
            reason: e.to_string(),
        })?;
        let path = node_dir.join("node.toml");
        std::fs::write(&path, text).map_err(io(&path))?;
        nodes.push(NodeProcess::new(
            index,
            &setup.binary,
            &path,
            &node_dir.join("node.log"),
        ));
    }
    let events = setup.dir.join("events.log");
    let mut driver = Driver {
        plan,
        observer,
        nodes,
        relays,
        events: std::fs::File::create(&events).map_err(io(&events))?,
        began,
        t0: Instant::now(),
        t0_unix_ms: 0,
        views: vec![None; plan.nodes],
        restart_at: vec![None; plan.nodes],
        rng: ChaCha8Rng::seed_from_u64(plan.seed),
        propagation: PropagationLog::default(),
        clean: false,
        kills: 0,
        restarts: 0,
        partitions_healed: 0,
        leader: None,
        leader_changes: 0,
        partition_reports: Vec::new(),
        partition_began: None,
        rounds: RoundLog::default(),
        accuracy_reached: None,
        round_goal_at: None,
        receipts: None,
        jepsen: None,
        targets: Targets::default(),
    };
    let outcome = tokio::select! {
        outcome = driver.drive() => outcome,
        reason = stop => Ok(Some(reason)),
    };
    let histories = match driver.jepsen.take() {
        Some(workload) => Some(workload.finish().await),
        None => None,
    };
    driver.stop_all().await;
    let reason = outcome?;
    let mut summary = driver.summary(setup, began.elapsed(), reason);
    if let Some(histories) = histories {
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
    }
    if !setup.keep_data {
        for index in 0..plan.nodes {
            remove_all_but_events(&data_dir(setup, index));
        }
    }
    let path = setup.dir.join("summary.json");
    if let Ok(json) = serde_json::to_string_pretty(&summary) {
        std::fs::write(&path, json + "\n").map_err(io(&path))?;
    }
    Ok(summary)
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

/// The running testnet; its chaos (`chaos.rs`) and its verdict (`verdict.rs`) are methods
/// too.
pub(super) struct Driver<'a> {
    pub(super) plan: &'a Plan,
    observer: &'a mut dyn Observer,
    pub(super) nodes: Vec<NodeProcess>,
    pub(super) relays: Vec<((usize, usize), Relay)>,
    events: std::fs::File,
    /// When the run began (keys, relays and node start-up count from here).
    began: Instant,
    /// When every node first became ready; chaos times count from here.
    t0: Instant,
    /// `t0` on the wall clock (ms since the Unix epoch), as the nodes' event logs count time.
    pub(super) t0_unix_ms: u64,
    pub(super) views: Vec<Option<NodeView>>,
    pub(super) restart_at: Vec<Option<Instant>>,
    pub(super) rng: ChaCha8Rng,
    pub(super) propagation: PropagationLog,
    /// Whether the last poll saw every node up with no partition.
    clean: bool,
    pub(super) kills: u64,
    pub(super) restarts: u64,
    pub(super) partitions_healed: u64,
    leader: Option<String>,
    pub(super) leader_changes: u64,
    pub(super) partition_reports: Vec<PartitionReport>,
    /// When the active partition began.
    pub(super) partition_began: Option<Duration>,
    /// Every committed round any node reported, with its params hash.
    pub(super) rounds: RoundLog,
    /// Since `began`, when every node first reported the target accuracy, and the highest
    /// round committed then.
    pub(super) accuracy_reached: Option<(Duration, u64)>,
    /// When every node first held the round goal.
    pub(super) round_goal_at: Option<Duration>,
    /// What the chains held of the committed rounds when the goals were met.
    pub(super) receipts: Option<ReceiptReport>,
    /// The `--jepsen` clients, and the node addresses they send to.
    jepsen: Option<Workload>,
    targets: Targets,
}

impl Driver<'_> {
    /// Starts the nodes and runs the loop; `Ok(None)` when the goals are met, `Ok(Some(why))`
    /// when they cannot be.
    async fn drive(&mut self) -> Result<Option<String>, TestnetError> {
        for node in &mut self.nodes {
            node.start()?;
        }
        self.wait_ready().await?;
        self.t0 = Instant::now();
        self.t0_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let pids: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("n{} pid {}", n.index, n.pid().unwrap_or(0)))
            .collect();
        self.event(Duration::ZERO, &format!("nodes up: {}", pids.join(", ")));
        if let Some(duration) = self.plan.jepsen {
            self.targets
                .update(self.nodes.iter().map(|n| n.http).collect());
            self.jepsen = Some(Workload::start(
                &self.targets,
                self.nodes.len(),
                duration,
                self.plan.seed,
            ));
            self.event(
                Duration::ZERO,
                &format!(
                    "jepsen workload started for {:.1} s",
                    duration.as_secs_f64()
                ),
            );
        }
        let mut next_kill = self.plan.kills.map(|k| self.t0 + k.every);
        let mut ticker = tokio::time::interval(self.plan.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When every node was first up: a node reports `training` a tick after it starts.
        let mut all_up_since = None;
        let mut checked_training = false;
        loop {
            ticker.tick().await;
            let now = Instant::now();
            let elapsed = now - self.t0;
            let partitioned = self.apply_partitions(elapsed);
            if let (Some(due), Some(kills)) = (next_kill, self.plan.kills)
                && now >= due
            {
                self.kill_one(kills.target, now + kills.pause, elapsed)
                    .await;
                next_kill = Some(due + kills.every);
            }
            self.restart_due(now, elapsed)?;
            self.poll().await;
            self.targets
                .update(self.nodes.iter().map(|n| n.http).collect());
            self.record_partition_start(elapsed);
            self.observe_training(elapsed);
            let rows = self.rows();
            self.observer.tick(elapsed, &rows);
            let all_up = rows
                .iter()
                .all(|r| r.state == NodeState::Up && r.view.is_some());
            let heights: Vec<u64> = self.views.iter().flatten().map(|v| v.height).collect();
            if all_up && !partitioned {
                if !self.clean {
                    self.propagation.interrupt(&heights);
                }
                self.propagation.observe(elapsed, &heights);
            }
            self.clean = all_up && !partitioned;
            self.track_leader();
            if all_up {
                all_up_since.get_or_insert(elapsed);
            }
            if all_up
                && !checked_training
                && all_up_since.is_some_and(|since| elapsed >= since + TRAINING_REPORTED_WITHIN)
            {
                checked_training = true;
                if self.plan.goals.need_training()
                    && self.views.iter().flatten().all(|v| v.training.is_none())
                {
                    return Ok(Some(
                        "the nodes do not train (their config has no [train] section), so round \
                         and accuracy goals cannot be met (mining goals can)"
                            .into(),
                    ));
                }
            }
            let chaos_over = self
                .plan
                .partitions
                .iter()
                .all(|p| elapsed >= p.at + p.lasting);
            self.note_round_goal(elapsed);
            let workload_due = self.jepsen.as_ref().is_none_or(Workload::is_due);
            if let Some(outcome) = self.judge(elapsed, all_up && chaos_over)
                && (outcome.is_some() || workload_due)
            {
                if outcome.is_none() && self.views.iter().flatten().any(|v| v.training.is_some()) {
                    self.receipts = Some(self.settle_receipts().await);
                    // The summary shows the chains with the receipts mined in, if the nodes
                    // agree on a tip at this poll; else the views that met the goals.
                    let met = self.views.clone();
                    self.poll().await;
                    let views: Vec<&NodeView> = self.views.iter().flatten().collect();
                    if views.len() == self.nodes.len()
                        && views.windows(2).all(|w| w[0].tip == w[1].tip)
                    {
                        self.observe_training(self.t0.elapsed());
                    } else {
                        self.views = met;
                    }
                }
                return Ok(outcome);
            }
        }
    }

    async fn wait_ready(&mut self) -> Result<(), TestnetError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let mut ready = true;
            for node in &mut self.nodes {
                ready &= node.poll_ready()?;
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let node = self
                    .nodes
                    .iter()
                    .position(|n| n.http.is_none())
                    .unwrap_or(0);
                return Err(TestnetError::NodeSilent {
                    node,
                    secs: READY_WITHIN.as_secs(),
                    log: PathBuf::from(format!("n{node}/node.log")),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fetches every ready node's status at once.
    async fn poll(&mut self) {
        let timeout = self.plan.poll.max(Duration::from_millis(500));
        let mut fetches = JoinSet::new();
        for node in &mut self.nodes {
            // A restarted node that exits again is retried at the next kill's restart.
            if let Ok(true) = node.poll_ready()
                && let Some(http) = node.http
            {
                let index = node.index;
                fetches.spawn(async move { (index, status::fetch(http, timeout).await) });
            }
        }
        while let Some(Ok((index, result))) = fetches.join_next().await {
            self.views[index] = result.ok();
        }
    }

    /// Records the polled training views: rounds and params hashes, and when every node
    /// first reached the target accuracy.
    fn observe_training(&mut self, elapsed: Duration) {
        for view in self.views.iter().flatten() {
            if let Some(training) = &view.training {
                self.rounds.observe(elapsed, training);
            }
        }
        if let Some(target) = self.plan.goals.target_accuracy
            && self.accuracy_reached.is_none()
            && self.views.iter().all(|v| {
                v.as_ref()
                    .and_then(|v| v.training.as_ref())
                    .and_then(|t| t.accuracy)
                    .is_some_and(|a| a >= target - 1e-6)
            })
        {
            self.accuracy_reached = Some((self.began.elapsed(), self.rounds.max_round()));
        }
    }

    /// Every node's last committed round (`None`: down or not training).
    pub(super) fn committed_rounds_reported(&self) -> Vec<Option<u64>> {
        self.views
            .iter()
            .map(|v| v.as_ref()?.training.as_ref()?.round)
            .collect()
    }

    /// Every node's last committed round, 0 when unknown.
    pub(super) fn committed_rounds(&self) -> Vec<u64> {
        self.committed_rounds_reported()
            .into_iter()
            .map(|r| r.unwrap_or(0))
            .collect()
    }

    /// Every node's last height and tip (0 and empty when unknown).
    pub(super) fn heights_and_tips(&self) -> (Vec<u64>, Vec<String>) {
        self.views
            .iter()
            .map(|v| {
                v.as_ref()
                    .map_or((0, String::new()), |v| (v.height, v.tip.clone()))
            })
            .unzip()
    }

    fn rows(&self) -> Vec<Row> {
        (0..self.nodes.len())
            .map(|index| {
                let node = &self.nodes[index];
                let state = match (node.is_running(), node.http.is_some()) {
                    (false, _) => NodeState::Down,
                    (true, false) => NodeState::Starting,
                    (true, true) => NodeState::Up,
                };
                Row {
                    index,
                    state,
                    view: self.views[index].clone(),
                }
            })
            .collect()
    }

    /// Counts changes of the leader of the highest term any node reports.
    fn track_leader(&mut self) {
        let leader = self
            .views
            .iter()
            .flatten()
            .filter_map(|v| {
                let t = v.training.as_ref()?;
                (t.role.as_deref() == Some("leader"))
                    .then(|| (t.term.unwrap_or(0), t.leader.clone().unwrap_or_default()))
            })
            .max()
            .map(|(_, leader)| leader);
        if let Some(leader) = leader {
            if self.leader.as_ref().is_some_and(|old| *old != leader) {
                self.leader_changes += 1;
            }
            self.leader = Some(leader);
        }
    }

    pub(super) fn event(&mut self, elapsed: Duration, text: &str) {
        let _ = writeln!(self.events, "{:8.3}s {text}", elapsed.as_secs_f64());
        self.observer.event(elapsed, text);
    }

    /// Closes every lifeline at once, then waits for (or kills) each child.
    async fn stop_all(&mut self) {
        let mut stopping = JoinSet::new();
        for mut node in std::mem::take(&mut self.nodes) {
            stopping.spawn(async move {
                node.stop(STOP_GRACE).await;
                node
            });
        }
        while let Some(Ok(node)) = stopping.join_next().await {
            self.nodes.push(node);
        }
        self.nodes.sort_by_key(|n| n.index);
    }
}
