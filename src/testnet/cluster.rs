//! The testnet's processes and links: every node's child process and every directed link's
//! relay. Starts, polls, kills, restarts and stops the nodes, cuts and heals links, and sums
//! the relays' counters. Knows nothing of goals or of the chaos schedule (`chaos.rs` decides
//! what to cut and whom to kill; this only does it).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::TestnetError;
use super::plan::Partition;
use super::process::NodeProcess;
use super::relay::Relay;
use super::report::{NodeState, RelayTotals};
use super::status::{self, ApiEndpoint, NodeView};

/// How long a node may take to print its `listening` line.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a stopping node may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The node processes, in index order, and one relay per directed link.
pub(super) struct Cluster {
    nodes: Vec<NodeProcess>,
    relays: Vec<((usize, usize), Relay)>,
}

impl Cluster {
    /// The nodes (not yet started) and their started relays.
    pub(super) fn new(nodes: Vec<NodeProcess>, relays: Vec<((usize, usize), Relay)>) -> Cluster {
        Cluster { nodes, relays }
    }

    /// Number of nodes.
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Starts every node and waits until each has printed its `listening` line.
    pub(super) async fn start_all(&mut self) -> Result<(), TestnetError> {
        for node in &mut self.nodes {
            node.start()?;
        }
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

    /// `nI pid P` for every node, for the `nodes up` event.
    pub(super) fn pids(&self) -> String {
        let pids: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("n{} pid {}", n.index, n.pid().unwrap_or(0)))
            .collect();
        pids.join(", ")
    }

    /// Each node's API while it serves (`None` while down or starting).
    pub(super) fn apis(&self) -> Vec<Option<ApiEndpoint>> {
        self.nodes
            .iter()
            .map(|n| {
                n.http.map(|addr| ApiEndpoint {
                    addr,
                    token: n.token.clone(),
                })
            })
            .collect()
    }

    /// Indexes of the nodes serving HTTP.
    pub(super) fn serving(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].http.is_some())
            .collect()
    }

    /// Each node's process state, in index order.
    pub(super) fn states(&self) -> Vec<NodeState> {
        self.nodes
            .iter()
            .map(|node| match (node.is_running(), node.http.is_some()) {
                (false, _) => NodeState::Down,
                (true, false) => NodeState::Starting,
                (true, true) => NodeState::Up,
            })
            .collect()
    }

    /// Fetches every ready node's status at once: `(index, view)` for each node asked, the
    /// view `None` when it did not answer.
    pub(super) async fn fetch_statuses(
        &mut self,
        timeout: Duration,
    ) -> Vec<(usize, Option<NodeView>)> {
        let mut fetches = JoinSet::new();
        for node in &mut self.nodes {
            // A restarted node that exits again is retried at the next kill's restart.
            if let Ok(true) = node.poll_ready()
                && let Some(http) = node.http
            {
                let index = node.index;
                fetches.spawn(async move { (index, status::fetch(http, timeout).await.ok()) });
            }
        }
        let mut views = Vec::new();
        while let Some(Ok(view)) = fetches.join_next().await {
            views.push(view);
        }
        views
    }

    /// Every serving node's `GET /receipts`, and whether every node answered.
    pub(super) async fn fetch_receipts(
        &self,
        timeout: Duration,
    ) -> (Vec<Vec<status::ReceiptEntry>>, bool) {
        let mut fetches = JoinSet::new();
        for http in self.nodes.iter().filter_map(|n| n.http) {
            fetches.spawn(async move { status::fetch_receipts(http, timeout).await });
        }
        let mut lists = Vec::new();
        while let Some(result) = fetches.join_next().await {
            if let Ok(Ok(list)) = result {
                lists.push(list);
            }
        }
        let complete = lists.len() == self.nodes.len();
        (lists, complete)
    }

    /// `kill -9` node `index`; returns the pid it had.
    pub(super) async fn kill(&mut self, index: usize) -> u32 {
        let pid = self.nodes[index].pid().unwrap_or(0);
        self.nodes[index].kill().await;
        pid
    }

    /// Starts node `index` again from its data dir; returns its new pid.
    pub(super) fn restart(&mut self, index: usize) -> Result<u32, TestnetError> {
        self.nodes[index].start()?;
        Ok(self.nodes[index].pid().unwrap_or(0))
    }

    /// Sets node `index`'s clock rate (from now, or from its next start while it is down);
    /// `false` when it runs on real time.
    pub(super) fn set_clock_rate(&mut self, index: usize, rate: f64) -> Result<bool, TestnetError> {
        self.nodes[index].set_clock_rate(rate)
    }

    /// Cuts every link one of `active` separates and heals the rest; returns whether any link
    /// changed, and whether that change was a cut.
    pub(super) fn cut_links(&self, active: &[&Partition]) -> Option<bool> {
        let mut changed = None;
        for ((from, to), relay) in &self.relays {
            let cut = active.iter().any(|p| p.separates(*from, *to));
            if relay.faults.cut.swap(cut, Ordering::Relaxed) != cut {
                changed.get_or_insert(cut);
            }
        }
        changed
    }

    /// What every relay has passed and dropped so far.
    pub(super) fn relay_totals(&self) -> RelayTotals {
        let mut totals = RelayTotals::default();
        for (_, r) in &self.relays {
            totals.forwarded += r.stats.forwarded.load(Ordering::Relaxed);
            totals.bytes += r.stats.bytes.load(Ordering::Relaxed);
            totals.lost += r.stats.lost.load(Ordering::Relaxed);
            totals.cut += r.stats.cut.load(Ordering::Relaxed);
        }
        totals
    }

    /// Closes every lifeline at once, then waits for (or kills) each child.
    pub(super) async fn stop_all(&mut self) {
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
