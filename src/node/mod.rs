//! The node: a tokio event loop that wires the sans-IO `Chain` to its redb store, the miner
//! thread, the QUIC network and the HTTP API. The chain decides; the node persists (one
//! transaction per accepted block), relays, syncs and drives the miner.
//!
//! `Node::start` returns a `NodeHandle` for the CLI and for in-process tests.

mod backend;
mod driver;
pub mod miner;
pub mod seen;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::api::{Metrics, NodeStatus};
use crate::config::{ConfigError, NodeConfig};
use crate::net::{NetError, NodeId, PartitionControl};
use crate::pow::{
    Accepted, Block, BlockHash, Chain, ChainError, NetworkError, Receipt, StoreError,
};

/// File name of the chain store inside the data dir.
pub use crate::pow::store::STORE_FILE;

/// Errors that stop a node (or a request to it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create data dir {0}: {1}")]
    DataDir(PathBuf, #[source] std::io::Error),
    #[error("cannot serve HTTP on {0}: {1}; is the port in use?")]
    Http(SocketAddr, #[source] std::io::Error),
    #[error("mining backend: {0}")]
    UnknownBackend(#[from] crate::hash::select::UnknownBackend),
    #[error("cannot open the `{name}` mining backend: {source}")]
    Backend {
        name: String,
        #[source]
        source: crate::hash::HashError,
    },
    #[error("block refused: {0}")]
    Refused(#[from] ChainError),
    #[error("the node has stopped")]
    Stopped,
}

/// A block the node accepted into its tree, as tests and benchmarks observe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    pub hash: BlockHash,
    pub height: u64,
    /// True when the block became the best tip.
    pub tip: bool,
    /// The peer that sent it (`None`: mined or submitted here).
    pub from: Option<NodeId>,
    /// When the node finished validating and storing it.
    pub at: Instant,
}

type Inspect = Box<dyn FnOnce(&Chain) + Send>;

/// Requests from handles to the node loop.
pub(crate) enum Command {
    SubmitBlock(Block, oneshot::Sender<Result<Accepted, ChainError>>),
    SubmitReceipt(Receipt, oneshot::Sender<bool>),
    Inspect(Inspect),
    SetMining(bool),
    Shutdown,
}

/// A running node.
pub struct NodeHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<NodeStatus>,
    events: broadcast::Sender<ChainEvent>,
    partition: PartitionControl,
    id: NodeId,
    listen: SocketAddr,
    http: Option<SocketAddr>,
    metrics: Metrics,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

/// Entry point: `Node::start`.
pub struct Node;

impl Node {
    /// Opens the data dir (key, store), binds QUIC (and HTTP when configured), starts the miner
    /// when enabled, dials the configured and stored peers, and runs until shut down.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        driver::start(config).await
    }
}

impl NodeHandle {
    /// This node's key fingerprint.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The bound QUIC address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The bound HTTP address, when serving.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The latest status snapshot (refreshed on every tip change and every second).
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Accepted blocks from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// The fault-injection hook of this node's transport.
    pub fn partition(&self) -> PartitionControl {
        self.partition.clone()
    }

    /// Hands a block to the node as if mined here: validated, stored and relayed.
    pub async fn submit_block(&self, block: Block) -> Result<Accepted, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::SubmitBlock(block, reply)).await?;
        Ok(answer.await.map_err(|_| NodeError::Stopped)??)
    }

    /// Adds a receipt to the pool for the next blocks this node mines; false if already pooled.
    pub async fn submit_receipt(&self, receipt: Receipt) -> Result<bool, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::SubmitReceipt(receipt, reply)).await?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// Runs `f` on the node's chain inside the loop and returns its result.
    pub async fn with_chain<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Chain) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (reply, answer) = oneshot::channel();
        let inspect: Inspect = Box::new(move |chain| {
            let _ = reply.send(f(chain));
        });
        self.send(Command::Inspect(inspect)).await?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// Starts or stops mining.
    pub async fn set_mining(&self, on: bool) -> Result<(), NodeError> {
        self.send(Command::SetMining(on)).await
    }

    /// Stops the node and waits until its store is closed.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.commands.send(Command::Shutdown).await;
        self.task.await.map_err(|_| NodeError::Stopped)?
    }

    /// Waits until the node stops by itself (an error) — the CLI's main wait.
    pub async fn wait(self) -> Result<(), NodeError> {
        self.task.await.map_err(|_| NodeError::Stopped)?
    }

    /// A sender that asks the node to stop (for signal handlers).
    pub fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let commands = self.commands.clone();
        move || {
            let _ = commands.try_send(Command::Shutdown);
        }
    }

    async fn send(&self, command: Command) -> Result<(), NodeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NodeError::Stopped)
    }
}
