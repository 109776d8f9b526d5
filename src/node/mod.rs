//! The node: services, each a tokio task with its own channel, composed over one QUIC network
//! and one HTTP API. `chain` wires the sans-IO `Chain` to its redb store, the miner thread,
//! sync and relay (the chain decides; the service persists, relays, syncs and mines).
//! `consensus` drives Raft for the training cluster when the config has a `[train]` section.
//!
//! `Node::start` opens the data dir, the identity and the network, starts the services and a
//! supervisor that stops them together, and returns a `NodeHandle` for the CLI and for
//! in-process tests.

mod backend;
mod chain;
pub mod consensus;
pub mod miner;
pub mod seen;
pub mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::api::{self, Metrics, NodeStatus};
use crate::config::TrainSection;
use crate::config::{ConfigError, NodeConfig};
use crate::net::{Identity, NetConfig, NetError, Network, NodeId, PartitionControl, Service};
use crate::pow::{
    Accepted, Block, BlockHash, Chain, ChainError, ChainStore, NetworkError, NetworkParams,
    Receipt, StoreError,
};
use consensus::{CommandLog, ConsensusConfig, ConsensusError, ConsensusHandle};

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
    UnknownBackend(#[from] crate::gpu::UnknownDevice),
    #[error("cannot open the `{name}` mining backend: {source}")]
    Backend {
        name: String,
        #[source]
        source: crate::hash::HashError,
    },
    #[error("block refused: {0}")]
    Refused(#[from] ChainError),
    #[error("consensus: {0}")]
    Consensus(#[from] ConsensusError),
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
    consensus: Option<ConsensusHandle<CommandLog>>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

/// Entry point: `Node::start`.
pub struct Node;

impl Node {
    /// Opens the data dir (key, store), binds QUIC (and HTTP when configured), starts the miner
    /// when enabled, dials the configured and stored peers, and runs until shut down.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        start(config).await
    }
}

async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    config.validate()?;
    let params = NetworkParams::by_name(&config.network)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeError::DataDir(config.data_dir.clone(), e))?;
    let identity = Identity::load_or_create(&config.data_dir)?;
    let id = identity.id();
    let store = ChainStore::open(config.data_dir.join(STORE_FILE), &params)?;
    let chain = store.load_chain()?;

    let mut net_config =
        NetConfig::new(config.net.listen, &config.network, params.genesis_hash().0);
    net_config.pins = config.pins()?;
    net_config.ban = config.ban();
    net_config.idle_timeout = Duration::from_secs(config.net.idle_timeout_secs);
    net_config.key_exchange = config.key_exchange()?;
    let (net, net_events) = Network::bind(identity, net_config)?;
    let listen = net.local_addr();

    let metrics = Metrics::new();
    let (status, status_rx) = watch::channel(NodeStatus::default());
    let (stopped_tx, mut stopped_rx) = watch::channel(false);
    let http = match config.http.listen {
        Some(addr) => {
            let stopped = async move {
                let _ = stopped_rx.wait_for(|stopped| *stopped).await;
            };
            let bound = api::serve(addr, status_rx.clone(), metrics.clone(), stopped)
                .await
                .map_err(|e| NodeError::Http(addr, e))?;
            Some(bound)
        }
        None => None,
    };
    info!(
        node = %id, network = %config.network, %listen, http = ?http,
        height = chain.height(), tip = %chain.tip(), "node started"
    );

    let consensus = match &config.train {
        Some(train) => {
            let events = net.subscribe(Service::Raft);
            let (handle, task) = consensus::start(
                id,
                &consensus_config(train)?,
                &config.data_dir,
                CommandLog::default(),
                net.clone(),
                events,
            )?;
            tokio::spawn(forward_consensus_status(
                handle.watch(),
                status.clone(),
                metrics.clone(),
            ));
            Some((handle, task))
        }
        None => None,
    };
    let (events, _) = broadcast::channel(4096);
    let (commands, chain_task) = chain::spawn(chain::ChainParts {
        config,
        chain,
        store,
        net: net.clone(),
        net_events,
        metrics: metrics.clone(),
        status,
        events: events.clone(),
    })?;

    // The supervisor: when a service stops (asked to, or failing), stop the others, then
    // close the network and the HTTP server.
    let supervised = net.clone();
    let (consensus, consensus_task) = consensus.unzip();
    let stop_chain = commands.clone();
    let stop_consensus = consensus.clone();
    let task = tokio::spawn(async move {
        let result = supervise(chain_task, consensus_task, stop_chain, stop_consensus).await;
        supervised.shutdown();
        let _ = stopped_tx.send(true);
        match &result {
            Ok(()) => info!("node stopped"),
            Err(error) => warn!(%error, "node stopped"),
        }
        result
    });
    Ok(NodeHandle {
        commands,
        status: status_rx,
        events,
        partition: net.partition(),
        id,
        listen,
        http,
        metrics,
        consensus,
        task,
    })
}

fn consensus_config(train: &TrainSection) -> Result<ConsensusConfig, NodeError> {
    Ok(ConsensusConfig {
        voters: train.voters()?,
        tick: Duration::from_millis(train.tick_ms),
        election_ticks: train.election_ticks,
        heartbeat_ticks: train.heartbeat_ticks,
    })
}

/// Waits for the chain service to stop, or the consensus service to fail; stops the other.
async fn supervise(
    mut chain_task: tokio::task::JoinHandle<Result<(), NodeError>>,
    consensus_task: Option<tokio::task::JoinHandle<Result<(), ConsensusError>>>,
    stop_chain: mpsc::Sender<Command>,
    stop_consensus: Option<ConsensusHandle<CommandLog>>,
) -> Result<(), NodeError> {
    let Some(mut consensus_task) = consensus_task else {
        return chain_task.await.unwrap_or(Err(NodeError::Stopped));
    };
    tokio::select! {
        chain = &mut chain_task => {
            if let Some(consensus) = &stop_consensus {
                consensus.shutdown().await;
            }
            let consensus = consensus_task.await.unwrap_or(Err(ConsensusError::Stopped));
            chain.unwrap_or(Err(NodeError::Stopped)).and(consensus.map_err(NodeError::from))
        }
        consensus = &mut consensus_task => {
            let _ = stop_chain.send(Command::Shutdown).await;
            let chain = chain_task.await.unwrap_or(Err(NodeError::Stopped));
            consensus
                .unwrap_or(Err(ConsensusError::Stopped))
                .map_err(NodeError::from)
                .and(chain)
        }
    }
}

/// Copies the consensus service's status into `/status` and `/metrics` as it changes.
async fn forward_consensus_status(
    mut consensus: watch::Receiver<consensus::ConsensusStatus>,
    status: watch::Sender<NodeStatus>,
    metrics: Metrics,
) {
    loop {
        let current = consensus.borrow_and_update().clone();
        metrics.raft_term.set(current.term as i64);
        metrics.raft_commit_index.set(current.commit_index as i64);
        metrics.raft_applied_index.set(current.applied_index as i64);
        metrics.raft_leader.set(i64::from(current.role == "leader"));
        status.send_modify(|node| node.consensus = Some(current));
        if consensus.changed().await.is_err() {
            return;
        }
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

    /// The consensus service, when the config has a `[train]` section.
    pub fn consensus(&self) -> Option<&ConsensusHandle<CommandLog>> {
        self.consensus.as_ref()
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
