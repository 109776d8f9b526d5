//! What the testnet shows: the per-node table and the final
//! summary (text and JSON). Pure: takes the views the orchestrator polled, with their times.

use std::fmt::Write as _;

use serde::Serialize;

use super::propagation::{Percentiles, show_micros};
use super::rounds::ReceiptReport;
use super::status::NodeView;

/// A node's row: its state and its last status.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Index of the node (`n0` is 0).
    pub index: usize,
    /// Whether the node is starting, serving or down.
    pub state: NodeState,
    /// The node's last polled `/status`; `None` until one arrives.
    pub view: Option<NodeView>,
    /// Whether the node's miner is paced (`mining.pace_ms` > 0: it waits before each block),
    /// so a hash rate over time says how long it waited, not how fast it hashes.
    pub paced: bool,
}

/// Where a node's process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Started but not yet serving HTTP.
    Starting,
    /// Serving `/status`.
    Up,
    /// Killed; restarts later.
    Down,
}

fn dash<T>(value: Option<T>, show: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_string(), show)
}

/// The table header, aligned with `row_line`.
pub const HEADER: &str =
    "node  role       term  height  MH/s     round  loss    acc     peers  tip";

/// One table line for a node.
pub fn row_line(row: &Row) -> String {
    let name = format!("n{}", row.index);
    let Some(view) = &row.view else {
        let state = match row.state {
            NodeState::Starting => "starting",
            NodeState::Up => "no status",
            NodeState::Down => "down",
        };
        return format!("{name:<5} {state}");
    };
    let training = view.training.clone().unwrap_or_default();
    let role = match row.state {
        NodeState::Down => "down".to_string(),
        _ => training.role.unwrap_or_else(|| "-".into()),
    };
    format!(
        "{name:<5} {role:<10} {:<5} {:<7} {:<8} {:<6} {:<7} {:<7} {:<6} {}",
        dash(training.term, |t| t.to_string()),
        view.height,
        if row.paced {
            "paced".to_string()
        } else {
            format!("{:.2}", view.hash_rate / 1e6)
        },
        dash(training.round, |r| r.to_string()),
        dash(training.loss, |l| format!("{l:.3}")),
        dash(training.accuracy, |a| format!("{:.1}%", a * 100.0)),
        view.peers,
        view.tip.get(..12).unwrap_or(&view.tip),
    )
}

/// The whole table, header first.
pub fn table(rows: &[Row]) -> String {
    let mut text = String::from(HEADER);
    for row in rows {
        text.push('\n');
        text.push_str(&row_line(row));
    }
    text
}

/// Datagrams through every relay, both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayTotals {
    /// Datagrams passed on.
    pub forwarded: u64,
    /// Bytes of the datagrams passed on.
    pub bytes: u64,
    /// Datagrams dropped by random loss.
    pub lost: u64,
    /// Datagrams dropped because a partition cut the link.
    pub cut: u64,
}

/// What one partition did: its groups and each node's height, tip and committed training
/// round around it (0 for a node that reported none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    /// Node indexes per group, as the plan gave them.
    pub groups: Vec<Vec<usize>>,
    /// Each node's height at the first poll once the cut has lasted 300 ms.
    pub heights_at_start: Vec<u64>,
    /// Each node's last committed training round at that poll.
    pub rounds_at_start: Vec<u64>,
    /// At the last poll before healing (empty if the run ended first).
    pub heights_at_heal: Vec<u64>,
    /// Each node's last committed training round at that poll.
    pub rounds_at_heal: Vec<u64>,
    /// Each node's tip hash at that poll.
    pub tips_at_heal: Vec<String>,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The testnet dir (node data, logs, `events.log`, `summary.json`).
    pub dir: String,
    /// Number of nodes in the run.
    pub nodes: usize,
    /// The height every node agrees on (the highest when they do not agree).
    pub blocks: u64,
    /// Each node's last reported height (0 for a node that never reported).
    pub heights: Vec<u64>,
    /// Whether every node reported the same tip at the end.
    pub agreed: bool,
    /// The tip every node reported, when they agree.
    pub tip: Option<String>,
    /// `kill -9`s the testnet sent.
    pub kills: u64,
    /// Nodes it restarted after a kill.
    pub restarts: u64,
    /// Partitions that healed during the run.
    pub partitions: u64,
    /// Each partition: who was cut off, and every node's height when it began and healed.
    pub partition_reports: Vec<PartitionReport>,
    /// Training figures: `None` when no node reported training.
    /// The highest round committed (the round log is gap-free: rounds 1..=this).
    pub rounds_committed: Option<u64>,
    /// Each node's last committed round.
    pub rounds: Vec<Option<u64>>,
    /// Committed rounds a node reported that the network later lost or changed: rounds
    /// reported with two params hashes, plus reported rounds above every node's last round.
    pub rounds_lost: Option<u64>,
    /// Rounds the leaders abandoned at their deadline (summed over nodes; retried, not lost).
    pub rounds_abandoned: Option<u64>,
    /// Whether no committed round was lost and no round committed two different params
    /// hashes (receipts collected from every node).
    pub training_agreed: Option<bool>,
    /// The params hash every node holds, when all end at the same round.
    pub params_hash: Option<String>,
    /// The lowest test accuracy the nodes report (0..1).
    pub accuracy: Option<f64>,
    /// Seconds from the testnet's start (node start-up included) until every node reported
    /// the target accuracy.
    pub accuracy_reached_secs: Option<f64>,
    /// The highest round committed when the target accuracy was reached.
    pub accuracy_reached_round: Option<u64>,
    /// Rounds committed per second once training ran.
    pub rounds_per_sec: Option<f64>,
    /// Times the training leader changed, as seen in the polls.
    pub leader_changes: Option<u64>,
    /// The committed rounds' receipts on the nodes' chains.
    pub receipts: Option<ReceiptReport>,
    /// Block propagation times from the nodes' event logs; `None` when no block was timed.
    pub propagation: Option<Percentiles>,
    /// Why no block was timed, when none was.
    pub no_propagation: Option<String>,
    /// Datagrams through every relay.
    pub relay: RelayTotals,
    /// Wall-clock seconds of the whole run, node start-up included.
    pub duration_secs: f64,
    /// When `events.log`'s time 0 (every node up) was, in ms since the Unix epoch: the clock
    /// of the nodes' event logs, so a report can place the testnet's faults among them.
    pub events_epoch_ms: u64,
    /// Whether every goal was met (and, with `--jepsen`, the store kept its guarantees).
    pub goals_met: bool,
    /// Why the run failed (or was stopped); `None` on success.
    pub reason: Option<String>,
    /// The `--jepsen` workload's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jepsen: Option<super::jepsen::JepsenReport>,
}

impl Summary {
    /// The one-paragraph summary printed at the end.
    pub fn text(&self) -> String {
        let mut text = format!(
            "summary: {} nodes, {} blocks, {}",
            self.nodes,
            self.blocks,
            if self.agreed {
                format!("all on tip {}", self.tip.as_deref().unwrap_or("-"))
            } else {
                format!("tips differ (heights {:?})", self.heights)
            }
        );
        if let Some(rounds) = self.rounds_committed {
            let lost = self.rounds_lost.unwrap_or(0);
            let abandoned = self.rounds_abandoned.unwrap_or(0);
            let _ = write!(
                text,
                ", {rounds} rounds committed ({lost} lost, {abandoned} abandoned and retried)"
            );
            if self.training_agreed == Some(false) {
                let _ = write!(text, " but nodes end at rounds {:?}", self.rounds);
            }
        }
        if let Some(accuracy) = self.accuracy {
            let _ = write!(text, ", accuracy {:.1}%", accuracy * 100.0);
        }
        if let (Some(secs), Some(round)) = (self.accuracy_reached_secs, self.accuracy_reached_round)
        {
            let _ = write!(text, " (target reached at {secs:.1} s, round {round})");
        }
        if let Some(changes) = self.leader_changes {
            let s = if changes == 1 { "" } else { "s" };
            let _ = write!(text, ", {changes} leader change{s}");
        }
        if let Some(receipts) = &self.receipts {
            let _ = write!(
                text,
                ", {}/{} receipts on chain",
                receipts.on_chain, receipts.rounds
            );
        }
        let _ = write!(
            text,
            ", {} kills, {} partitions, {:.1} s",
            self.kills, self.partitions, self.duration_secs
        );
        if let Some(rate) = self.rounds_per_sec {
            let _ = write!(text, "\ntraining: {rate:.1} rounds/s");
            if let Some(hash) = &self.params_hash {
                let _ = write!(
                    text,
                    ", every node at params {}",
                    hash.get(..16).unwrap_or(hash)
                );
            }
        }
        match (&self.propagation, &self.no_propagation) {
            (Some(p), _) => {
                let _ = write!(
                    text,
                    "\npropagation p50 {}, p99 {} ({} blocks, miner to every node)",
                    show_micros(p.p50_us),
                    show_micros(p.p99_us),
                    p.samples
                );
            }
            (None, Some(why)) => {
                let _ = write!(text, "\npropagation: none timed ({why})");
            }
            (None, None) => text.push_str("\npropagation: none timed"),
        }
        let _ = write!(
            text,
            "; relay: {} datagrams, {} lost, {} cut",
            self.relay.forwarded, self.relay.lost, self.relay.cut
        );
        if let Some(jepsen) = &self.jepsen {
            let _ = write!(text, "\n{}", jepsen.text());
        }
        match &self.reason {
            None => text.push_str("\ngoals met"),
            Some(reason) => {
                let _ = write!(text, "\ngoals not met: {reason}");
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testnet::status::TrainingView;

    fn view(height: u64) -> NodeView {
        NodeView {
            height,
            tip: "00000000abcdef0123".into(),
            hash_rate: 2.5e6,
            peers: 2,
            ..NodeView::default()
        }
    }

    #[test]
    fn rows_show_dashes_without_training() {
        let row = Row {
            index: 0,
            state: NodeState::Up,
            view: Some(view(41)),
            paced: false,
        };
        let line = row_line(&row);
        assert!(line.starts_with("n0    -"), "{line}");
        assert!(line.contains(" 41 ") && line.contains("2.50"), "{line}");
        let mut trained = view(41);
        trained.training = Some(TrainingView {
            role: Some("leader".into()),
            accuracy: Some(0.964),
            ..TrainingView::default()
        });
        let line = row_line(&Row {
            view: Some(trained),
            ..row
        });
        assert!(line.contains("leader") && line.contains("96.4%"), "{line}");
        // A paced miner's rate over time measures its waits: the table says so.
        let line = row_line(&Row { paced: true, ..row });
        assert!(line.contains(" paced ") && !line.contains("2.50"), "{line}");
    }
}
