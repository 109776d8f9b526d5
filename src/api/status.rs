//! The JSON bodies of `GET /status` and `GET /receipts`, and their conversion from the
//! services' typed views: the only place a role, a hash or an id becomes a string.
//!
//! Must not decide anything; the services decide on the views, this turns them into text.

use serde::{Deserialize, Serialize};

use crate::cluster::receipt::OnChain;
use crate::views::{
    ChainView, ConsensusView, RaftPosition, StratumView, TrainingView, ViewSnapshot, WorkerView,
};

/// What `GET /status` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The network profile this node runs (`regtest`, …), from its config.
    pub network: String,
    /// This node's key fingerprint (hex).
    pub node_id: String,
    /// Height of the best chain's tip (genesis = 0).
    pub height: u64,
    /// Tip hash in display order (byte-reversed hex).
    pub tip: String,
    /// Cumulative work of the best chain, as a decimal number.
    pub total_work: String,
    /// The peers connected now, inbound and outbound.
    pub peers: Vec<PeerStatus>,
    /// The miner's recent rate in hashes per second (0 when not mining).
    pub hash_rate: f64,
    /// The mining backend (`cpu: sha-ni-2x, 2 threads`…), or `none`.
    pub backend: String,
    /// Whether the miner is running (mining enabled and a backend started).
    pub mining: bool,
    /// Blocks this node has mined since it started (not all of them stay on the best chain).
    pub blocks_mined: u64,
    /// Training receipts waiting in the pool for a block to include them.
    pub receipts_pooled: usize,
    /// QUIC address peers connect to.
    pub listen: String,
    /// Raft's view, when this node takes part in consensus (a `[train]` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusStatus>,
    /// The training service's view, when this node trains (a `[train]` section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingStatus>,
    /// The Stratum server's view, when `[stratum] listen` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum: Option<StratumStatus>,
}

/// The Stratum server's part of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StratumStatus {
    /// The address miners connect to.
    pub listen: String,
    /// Connections open now.
    pub connections: usize,
    /// Every worker seen since the node started.
    pub workers: Vec<WorkerStatus>,
}

/// One Stratum worker in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The worker name as authorized.
    pub name: String,
    /// Shares credited.
    pub accepted: u64,
    /// Shares refused, by reason (`low-difficulty`, `duplicate`, …).
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Shares for an older tip's job: counted, not credited.
    pub stale: u64,
    /// Estimated hashes per second from the credited shares.
    pub hash_rate: f64,
    /// Blocks its shares made that the chain accepted.
    pub blocks_found: u64,
}

impl From<&StratumView> for StratumStatus {
    fn from(view: &StratumView) -> StratumStatus {
        StratumStatus {
            listen: view.listen.map(|a| a.to_string()).unwrap_or_default(),
            connections: view.connections,
            workers: view.workers.iter().map(WorkerStatus::from).collect(),
        }
    }
}

impl From<&WorkerView> for WorkerStatus {
    fn from(view: &WorkerView) -> WorkerStatus {
        WorkerStatus {
            name: view.name.clone(),
            accepted: view.accepted,
            rejected: view
                .rejected
                .iter()
                .map(|(reason, count)| (reason.name().to_string(), *count))
                .collect(),
            stale: view.stale,
            hash_rate: view.hash_rate,
            blocks_found: view.blocks_found,
        }
    }
}

/// Training's part of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingStatus {
    /// Raft role: `leader`, `follower`, `pre-candidate` or `candidate`.
    pub role: String,
    /// The Raft term the training service last saw.
    pub term: u64,
    /// The leader's fingerprint (hex), when known.
    pub leader: Option<String>,
    /// The last committed round (0 before the first).
    pub round: u64,
    /// Rounds committed (the round log is gap-free, so equal to `round`).
    pub rounds_committed: u64,
    /// The last committed round's mean worker loss.
    pub loss: Option<f32>,
    /// Held-out test accuracy (0..1) after `evaluated_round`.
    pub accuracy: Option<f32>,
    /// Held-out test loss after `evaluated_round`.
    pub test_loss: Option<f32>,
    /// The round after which `accuracy` and `test_loss` were measured (0: not yet evaluated).
    pub evaluated_round: u64,
    /// Rounds this node abandoned as leader.
    pub rounds_abandoned: u64,
    /// Gradients this node refused as leader.
    pub gradients_refused: u64,
    /// Gradient bytes this node accepted as leader.
    pub bytes_received: u64,
    /// Hash of the params after `round`.
    pub params_hash: String,
    /// The round whose params this node's trainer holds (checked against the committed hash).
    pub trained_round: u64,
    /// The round of the last Raft snapshot whose training state the trainer jumped to (0:
    /// none; it replayed every round).
    #[serde(default)]
    pub restored_round: u64,
    /// Workers in the cluster's list.
    pub workers: usize,
    /// Whether this node computes gradients.
    pub worker: bool,
    /// Whether the cluster trains an external model (`train.model = "external"`).
    #[serde(default)]
    pub external: bool,
    /// Whether an external worker is registered with this node.
    #[serde(default)]
    pub worker_connected: bool,
    /// The round of the job open for this node's external worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_round: Option<u64>,
}

/// Raft's part of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// The current Raft term.
    pub term: u64,
    /// The leader's fingerprint (hex), when known.
    pub leader: Option<String>,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to the state machine (at most `commit_index`).
    pub applied_index: u64,
    /// Fingerprints (hex) of the current voters.
    pub voters: Vec<String>,
    /// Index of the latest snapshot: the log before it is compacted away (0: none).
    #[serde(default)]
    pub snapshot_index: u64,
    /// Entries held in the log after the snapshot.
    #[serde(default)]
    pub log_entries: u64,
    /// Snapshots a leader sent this node (it was too far behind to catch up from entries).
    #[serde(default)]
    pub snapshots_installed: u64,
    /// Snapshots this node took of its own state to compact its log.
    #[serde(default)]
    pub snapshots_taken: u64,
}

/// One connected peer in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's key fingerprint (hex).
    pub id: String,
    /// The peer's QUIC listen address, or the connection's remote address when it did not give one.
    pub addr: String,
    /// True when this node dialed the connection.
    pub outbound: bool,
    /// The connection's TLS key-exchange group, e.g. `X25519MLKEM768`.
    #[serde(default)]
    pub key_exchange: String,
}

/// A committed round's receipt as `GET /receipts` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEntry {
    /// The training round the receipt records.
    pub round: u64,
    /// The best-chain block holding it (display hex) and its height.
    pub block: String,
    /// Height of that block on the best chain.
    pub height: u64,
    /// Hash of the params after the round, as the receipt records it.
    pub params_hash: String,
    /// Fingerprints (hex) of the workers whose gradients the round reduced.
    pub contributors: Vec<String>,
}

impl From<&ViewSnapshot> for NodeStatus {
    fn from(views: &ViewSnapshot) -> NodeStatus {
        let ChainView {
            network,
            node,
            height,
            tip,
            total_work,
            peers,
            hash_rate,
            backend,
            mining,
            blocks_mined,
            receipts_pooled,
            listen,
        } = &views.chain;
        NodeStatus {
            network: network.clone(),
            node_id: node.to_string(),
            height: *height,
            tip: tip.to_string(),
            total_work: total_work.0.to_string(),
            peers: peers
                .iter()
                .map(|p| PeerStatus {
                    id: p.id.to_string(),
                    addr: p.listen_addr.unwrap_or(p.remote).to_string(),
                    outbound: p.outbound,
                    key_exchange: p.key_exchange.name().to_string(),
                })
                .collect(),
            hash_rate: *hash_rate,
            backend: backend.clone(),
            mining: *mining,
            blocks_mined: *blocks_mined,
            receipts_pooled: *receipts_pooled,
            listen: listen.to_string(),
            consensus: views.consensus.as_ref().map(ConsensusStatus::from),
            training: views.training.as_ref().map(TrainingStatus::from),
            stratum: views.stratum.as_ref().map(StratumStatus::from),
        }
    }
}

/// Role, term and leader as both Raft parts of `/status` write them.
fn position(position: &RaftPosition) -> (String, u64, Option<String>) {
    (
        position.role.name().to_string(),
        position.term,
        position.leader.map(|id| id.to_string()),
    )
}

impl From<&ConsensusView> for ConsensusStatus {
    fn from(view: &ConsensusView) -> ConsensusStatus {
        let (role, term, leader) = position(&view.position);
        ConsensusStatus {
            role,
            term,
            leader,
            commit_index: view.commit_index,
            applied_index: view.applied_index,
            voters: view.voters.iter().map(ToString::to_string).collect(),
            snapshot_index: view.snapshot_index,
            log_entries: view.log_entries,
            snapshots_installed: view.snapshots_installed,
            snapshots_taken: view.snapshots_taken,
        }
    }
}

impl From<&TrainingView> for TrainingStatus {
    fn from(view: &TrainingView) -> TrainingStatus {
        let (role, term, leader) = position(&view.position);
        TrainingStatus {
            role,
            term,
            leader,
            round: view.round,
            rounds_committed: view.rounds_committed,
            loss: view.loss,
            accuracy: view.accuracy,
            test_loss: view.test_loss,
            evaluated_round: view.evaluated_round,
            rounds_abandoned: view.rounds_abandoned,
            gradients_refused: view.gradients_refused,
            bytes_received: view.bytes_received,
            params_hash: view.params_hash.map(|h| h.to_string()).unwrap_or_default(),
            trained_round: view.trained_round,
            restored_round: view.restored_round,
            workers: view.workers,
            worker: view.worker,
            external: view.external,
            worker_connected: view.worker_connected,
            job_round: view.job.as_ref().map(|j| j.round),
        }
    }
}

impl From<&OnChain> for ReceiptEntry {
    fn from(found: &OnChain) -> ReceiptEntry {
        ReceiptEntry {
            round: found.round.round,
            block: found.block.to_string(),
            height: found.height,
            params_hash: found.round.params_hash.to_string(),
            contributors: found
                .round
                .contributors
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}
