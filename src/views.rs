//! What the node's services publish and accept at their edges, as typed values: each service's
//! view of itself (`ChainView`, `ConsensusView`, `TrainingView`, each on its own watch
//! channel), the requests an edge sends down a service's channel (`ConfigRequest`,
//! `ReceiptsRequest`, the worker API's `WorkerRequest`, in `views/worker.rs`) and how a read
//! is confirmed (`ReadMode`).
//!
//! Services decide on these values; the HTTP API (`api/`) turns them into JSON at its edge.
//! Owns no behaviour and no I/O; must not know about HTTP, JSON or the services' internals.

mod worker;

pub use worker::{
    GradientSubmission, ParamsView, WorkerFailure, WorkerJob, WorkerRegistered, WorkerReport,
    WorkerRequest,
};

use std::net::SocketAddr;
use std::str::FromStr;

use tokio::sync::{oneshot, watch};

use crate::cluster::receipt::OnChain;
use crate::net::{NodeId, PeerSummary};
use crate::pow::BlockHash;
use crate::raft::Role;
use crate::stratum::session::RejectReason;
use crate::target::Work;
use crate::train::StateHash;

/// The chain service's view: the best chain, the peers, the miner.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainView {
    /// The network profile this node runs (`regtest`, …).
    pub network: String,
    /// This node's key fingerprint.
    pub node: NodeId,
    /// Height of the best chain's tip (genesis = 0).
    pub height: u64,
    /// The best chain's tip.
    pub tip: BlockHash,
    /// Cumulative work of the best chain.
    pub total_work: Work,
    /// The peers connected now, inbound and outbound.
    pub peers: Vec<PeerSummary>,
    /// The miner's recent rate in hashes per second (0 when not mining).
    pub hash_rate: f64,
    /// The mining backend (`cpu: sha-ni-2x, 2 threads`…), or `none`.
    pub backend: String,
    /// Whether the miner is running (mining enabled and a backend started).
    pub mining: bool,
    /// Blocks this node has mined since it started.
    pub blocks_mined: u64,
    /// Training receipts waiting in the pool for a block to include them.
    pub receipts_pooled: usize,
    /// QUIC address peers connect to.
    pub listen: SocketAddr,
}

/// The consensus service's view of Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftPosition {
    /// This node's role.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The leader, when known.
    pub leader: Option<NodeId>,
}

impl Default for RaftPosition {
    fn default() -> RaftPosition {
        RaftPosition {
            role: Role::Follower,
            term: 0,
            leader: None,
        }
    }
}

impl RaftPosition {
    /// Whether this node leads.
    pub fn leads(&self) -> bool {
        self.role == Role::Leader
    }
}

/// The consensus service's view: Raft's position, log and snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsensusView {
    /// Role, term and leader.
    pub position: RaftPosition,
    /// Highest log index known committed.
    pub commit_index: u64,
    /// Highest log index applied to the state machine (at most `commit_index`).
    pub applied_index: u64,
    /// The current voters.
    pub voters: Vec<NodeId>,
    /// Index of the latest snapshot: the log before it is compacted away (0: none).
    pub snapshot_index: u64,
    /// Entries held in the log after the snapshot.
    pub log_entries: u64,
    /// Snapshots a leader sent this node (it was too far behind to catch up from entries).
    pub snapshots_installed: u64,
    /// Snapshots this node took of its own state to compact its log.
    pub snapshots_taken: u64,
}

/// The training service's view: the round log as this node applied it, its trainer, and
/// what it did as leader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingView {
    /// Raft's position as the training service last saw it.
    pub position: RaftPosition,
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
    /// Hash of the params after `round` (`None` before the first committed round).
    pub params_hash: Option<StateHash>,
    /// The round whose params this node's trainer holds (checked against the committed hash).
    pub trained_round: u64,
    /// The round of the last Raft snapshot whose training state the trainer jumped to (0:
    /// none; it replayed every round).
    pub restored_round: u64,
    /// Workers in the cluster's list.
    pub workers: usize,
    /// Whether this node computes gradients.
    pub worker: bool,
    /// Whether the cluster trains an external model (its gradients come from a worker process).
    pub external: bool,
    /// The job this node's external worker computes next (`None`: none open).
    pub job: Option<WorkerJob>,
    /// Whether an external worker is registered with this node.
    pub worker_connected: bool,
}

/// The Stratum server's view: its address, connections and each worker's shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StratumView {
    /// The TCP address miners connect to.
    pub listen: Option<SocketAddr>,
    /// Connections open now.
    pub connections: usize,
    /// Every worker seen since the node started, by name.
    pub workers: Vec<WorkerView>,
}

/// One Stratum worker's shares since the node started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerView {
    /// The worker name as the miner authorized it.
    pub name: String,
    /// Shares credited.
    pub accepted: u64,
    /// Shares refused, by reason (reasons with none left out).
    pub rejected: Vec<(RejectReason, u64)>,
    /// Shares for a job of an older tip: counted, not credited.
    pub stale: u64,
    /// Hashes per second the credited shares of the last minutes stand for.
    pub hash_rate: f64,
    /// Blocks its shares made that the chain accepted.
    pub blocks_found: u64,
}

/// The receivers of every view a node publishes; the consensus and training views exist on a
/// node with a `[train]` section.
#[derive(Debug, Clone)]
pub struct NodeViews {
    /// The chain service's view.
    pub chain: watch::Receiver<ChainView>,
    /// The consensus service's view.
    pub consensus: Option<watch::Receiver<ConsensusView>>,
    /// The training service's view.
    pub training: Option<watch::Receiver<TrainingView>>,
    /// The Stratum server's view, on a node with `[stratum] listen`.
    pub stratum: Option<watch::Receiver<StratumView>>,
    /// The params the trainer holds (`None` inside before the model is known).
    pub params: Option<watch::Receiver<Option<ParamsView>>>,
}

/// One copy of every view, taken together.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSnapshot {
    /// The chain service's view.
    pub chain: ChainView,
    /// The consensus service's view, on a training node.
    pub consensus: Option<ConsensusView>,
    /// The training service's view, on a training node.
    pub training: Option<TrainingView>,
    /// The Stratum server's view, when it runs.
    pub stratum: Option<StratumView>,
}

impl NodeViews {
    /// The latest value of every view.
    pub fn snapshot(&self) -> ViewSnapshot {
        ViewSnapshot {
            chain: self.chain.borrow().clone(),
            consensus: self.consensus.as_ref().map(|view| view.borrow().clone()),
            training: self.training.as_ref().map(|view| view.borrow().clone()),
            stratum: self.stratum.as_ref().map(|view| view.borrow().clone()),
        }
    }
}

/// How a read is confirmed before it sees the replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// ReadIndex: the leader confirms with a quorum that it still leads, then the read waits
    /// until this node has applied that commit index.
    #[default]
    Linearizable,
    /// The leader's lease: no quorum round while a quorum answered within an election
    /// timeout (assumes bounded clock drift). On a follower it is forwarded as ReadIndex.
    Lease,
    /// This node's applied state as it is now; may be stale.
    Local,
}

impl ReadMode {
    /// The mode's name, as `?consistency=` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ReadMode::Linearizable => "linearizable",
            ReadMode::Lease => "lease",
            ReadMode::Local => "local",
        }
    }
}

/// A read mode that is not `linearizable`, `lease` or `local`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown consistency `{0}`; use linearizable, lease or local")]
pub struct UnknownReadMode(pub String);

impl FromStr for ReadMode {
    type Err = UnknownReadMode;
    fn from_str(text: &str) -> Result<ReadMode, UnknownReadMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "linearizable" => Ok(ReadMode::Linearizable),
            "lease" => Ok(ReadMode::Lease),
            "local" => Ok(ReadMode::Local),
            other => Err(UnknownReadMode(other.to_string())),
        }
    }
}

/// A config request from an edge to the training service.
#[derive(Debug)]
pub enum ConfigRequest {
    /// Reads a key from the replicated config store.
    Get {
        /// The config key to read.
        key: String,
        /// How the read is confirmed before it sees the store.
        mode: ReadMode,
        /// Gets the value (`None`: the key is unset) or why the read failed.
        reply: oneshot::Sender<Result<Option<String>, ConfigFailure>>,
    },
    /// Writes a key through Raft, optionally as a compare-and-set.
    Put {
        /// The config key to write.
        key: String,
        /// The new value (`PUT /config/{key}` trims surrounding whitespace from the body).
        value: String,
        /// `Some`: compare-and-set against this value (`Some(None)`: only if unset).
        expected: Option<Option<String>>,
        /// Gets the committed write or why it did not apply.
        reply: oneshot::Sender<Result<ConfigWritten, ConfigFailure>>,
    },
}

/// A config write that applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWritten {
    /// The key written.
    pub key: String,
    /// The value it now holds.
    pub value: String,
    /// The Raft log index it committed at.
    pub index: u64,
}

/// Why a config request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFailure {
    /// A bad key or value.
    BadRequest(String),
    /// A compare-and-set found another value.
    CasFailed {
        /// The value the key holds now (`None`: unset).
        current: Option<String>,
    },
    /// Not done: no leader, the leader unreachable, the entry dropped by a new leader; retry.
    Unavailable(String),
    /// A write whose outcome is unknown: it was proposed but no answer came in time, so it may
    /// or may not take effect; read before retrying a compare-and-set.
    Unknown(String),
}

/// Asks the chain service for the training receipts on its best chain.
pub type ReceiptsRequest = oneshot::Sender<Vec<OnChain>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_modes_parse_by_name_in_any_case() {
        for mode in [ReadMode::Linearizable, ReadMode::Lease, ReadMode::Local] {
            assert_eq!(mode.name().parse(), Ok(mode));
            assert_eq!(mode.name().to_uppercase().parse(), Ok(mode));
        }
        let error = "stale".parse::<ReadMode>().unwrap_err();
        assert!(
            error
                .to_string()
                .contains("use linearizable, lease or local")
        );
    }
}
