//! The node: services, each a tokio task with its own channel, composed over one QUIC network
//! and one HTTP API. `chain` wires the sans-IO `Chain` to its redb store, the miner thread,
//! sync and relay (the chain decides; the service persists, relays, syncs and mines). With a
//! `[train]` section, `consensus` drives Raft over the cluster's replicated state
//! (`replicated`) and `training` runs the round protocol, with its arithmetic on the trainer
//! thread (`trainer_thread`) and reduced gradients as blobs on disk (`blobs`).
//!
//! Each service publishes a typed view of itself on its own watch channel (`views`); the
//! HTTP API serves them as JSON. `Node::start` opens the data dir, the identity and the
//! network, starts the services, the HTTP API and a supervisor that stops them together, and
//! returns a `NodeHandle` for the CLI and for in-process tests.

mod backend;
pub mod blobs;
mod chain;
pub mod consensus;
pub mod miner;
pub mod replicated;
pub mod seen;
mod stratum;
pub mod sync;
mod trainer_thread;
mod training;
mod training_setup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::api::{self, ApiParts, Metrics, NodeStatus};
use crate::cluster::ClusterState;
use crate::config::TrainSection;
use crate::config::{ConfigError, NodeConfig};
use crate::events::{EventKind, EventLog};
use crate::net::{Identity, NetConfig, NetError, Network, NodeId, Service};
use crate::pow::{
    Accepted, Block, BlockHash, Chain, ChainError, ChainStore, NetworkError, NetworkParams,
    Receipt, StoreError,
};
use crate::views::{
    ChainView, ConsensusView, NodeViews, ReceiptsRequest, StratumView, TrainingView,
};
use consensus::{ConsensusConfig, ConsensusError, ConsensusHandle};
use replicated::Replicated;

/// Blocks back from the tip `GET /receipts` looks for training receipts.
const RECEIPT_SCAN_BLOCKS: u64 = 100_000;

/// File name of the chain store inside the data dir.
pub use crate::pow::store::STORE_FILE;

/// Errors that stop a node (or a request to it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The node's config holds a value that cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configured network profile is unknown or invalid.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The identity, the QUIC endpoint or a peer exchange failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The chain store could not be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event log directory or file could not be opened.
    #[error("cannot open the event log: {0}")]
    EventLog(#[from] crate::events::EventLogError),
    /// The data dir (or its blob directory) could not be created.
    #[error("cannot create data dir {0}: {1}")]
    DataDir(PathBuf, #[source] std::io::Error),
    /// The HTTP status server could not bind its address.
    #[error("cannot serve HTTP on {0}: {1}; is the port in use?")]
    Http(SocketAddr, #[source] std::io::Error),
    /// The Stratum server could not bind its address.
    #[error("cannot serve Stratum on {0}: {1}; is the port in use? (`stratum.listen`)")]
    Stratum(SocketAddr, #[source] std::io::Error),
    /// The API's cookie could not be written to the data dir.
    #[error(transparent)]
    Cookie(#[from] api::AuthError),
    /// The mining backend was recognised but could not be opened (no GPU, unsupported CPU
    /// path).
    #[error("cannot open the `{name}` mining backend: {source}")]
    Backend {
        /// The backend as configured (`auto`, `cpu`, `gpu`).
        name: String,
        /// Why it could not be opened.
        #[source]
        source: crate::hash::HashError,
    },
    /// A peer's headers or blocks broke a chain rule during sync.
    #[error("block refused: {0}")]
    Refused(#[from] ChainError),
    /// The consensus service failed or refused a request.
    #[error("consensus: {0}")]
    Consensus(#[from] ConsensusError),
    /// Setting up or running the training protocol failed.
    #[error("training: {0}")]
    Training(#[from] crate::train::TrainError),
    /// The training data file could not be opened or read.
    #[error("cannot read the training data {path}: {source}")]
    TrainingData {
        /// The data file from the `[train]` section.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The OS refused to spawn the trainer thread.
    #[error("cannot start the trainer: {0}")]
    TrainerThread(#[source] std::io::Error),
    /// This node's params do not hash to what the round log committed (applying a round or
    /// loading a snapshot's state); the node stops rather than train on them.
    #[error(
        "this node's params after round {round} differ from the committed params hash; it \
         stopped rather than train on diverged params (restart it to replay the round log)"
    )]
    Diverged {
        /// The committed round whose params hash this node's params do not match.
        round: u64,
    },
    /// The trainer thread reported a failure it cannot recover from; holds its reason.
    #[error("the trainer failed: {0}")]
    Trainer(String),
    /// The node (or the service a request was for) has shut down, so the request cannot be
    /// served.
    #[error("the node has stopped")]
    Stopped,
}

/// A block the node accepted into its tree, as tests and benchmarks observe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    /// The block's hash.
    pub hash: BlockHash,
    /// The block's height, genesis = 0.
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
pub(crate) enum ChainCommand {
    SubmitBlock(Block, oneshot::Sender<Result<Accepted, ChainError>>),
    SubmitReceipt(Receipt, oneshot::Sender<bool>),
    Inspect(Inspect),
    SetMining(bool),
    Shutdown,
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    commands: mpsc::Sender<ChainCommand>,
    views: NodeViews,
    events: broadcast::Sender<ChainEvent>,
    #[cfg(feature = "testing")]
    partition: crate::net::PartitionControl,
    id: NodeId,
    listen: SocketAddr,
    http: Option<SocketAddr>,
    stratum: Option<SocketAddr>,
    api_cookie: Option<api::Cookie>,
    metrics: Metrics,
    consensus: Option<ConsensusHandle<Replicated>>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

/// Entry point: `Node::start`.
#[derive(Debug)]
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
    let DataDir {
        params,
        identity,
        store,
        chain,
        event_log,
    } = open_data_dir(&config)?;
    let id = identity.id();
    let (net, net_events) = bind_network(&config, &params, identity, &event_log)?;
    let listen = net.local_addr();
    let metrics = Metrics::new();
    let (senders, views) = view_channels(&config, &chain, id, listen);
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let (config_tx, config_rx) = mpsc::channel(256);
    let (receipts_tx, receipts_rx) = mpsc::channel(16);
    let (worker_tx, worker_rx) = mpsc::channel(64);
    let trains = config.train.is_some();
    // The API's token is written before the API serves, so a client that sees the port open
    // finds the cookie of this start.
    let api_cookie = match (config.http.listen, &config.http.token_file) {
        (None, _) => None,
        (Some(_), None) => Some(api::Cookie::create(&config.data_dir)?),
        (Some(_), Some(file)) => Some(api::Cookie::read_file(file)?),
    }
    .map(|cookie| cookie.guarding(config.http.auth));
    let http = match &api_cookie {
        Some(cookie) => {
            let parts = ApiParts {
                views: views.clone(),
                metrics: metrics.clone(),
                config: trains.then_some(config_tx),
                receipts: trains.then_some(receipts_tx),
                worker: trains.then_some(worker_tx),
                cookie: cookie.clone(),
            };
            serve_http(&config, parts, stopped_rx.clone()).await?
        }
        None => None,
    };
    info!(
        node = %id, network = %config.network, %listen, http = ?http,
        height = chain.height(), tip = %chain.tip(), "node started"
    );

    let consensus = match &config.train {
        Some(train) => Some(start_consensus(
            id,
            train,
            &config.data_dir,
            &net,
            senders.consensus,
            &metrics,
        )?),
        None => None,
    };
    let (events, _) = broadcast::channel(4096);
    let stratum_listen = config.stratum.listen;
    let stratum_section = config.stratum.clone();
    let (offers, offers_rx) = watch::channel(None);
    let (commands, chain_task) = chain::spawn(chain::ChainParts {
        config,
        chain,
        store,
        net: net.clone(),
        net_events,
        metrics: metrics.clone(),
        view: senders.chain,
        events: events.clone(),
        event_log: event_log.clone(),
        offers: stratum_listen.is_some().then_some(offers),
    })?;
    let stratum = match (stratum_listen, senders.stratum) {
        (Some(addr), Some(view)) => Some(
            stratum::serve(
                addr,
                stratum::StratumParts {
                    section: stratum_section,
                    own: id,
                    offers: offers_rx,
                    chain: commands.clone(),
                    metrics: metrics.clone(),
                    view,
                    stopped: stopped_rx,
                },
            )
            .await?,
        ),
        _ => None,
    };
    let (stop_training, stop_training_rx) = watch::channel(false);
    let training = match consensus {
        Some(started) => {
            tokio::spawn(serve_receipts(receipts_rx, commands.clone()));
            Some(start_training(
                started,
                TrainingLinks {
                    own: id,
                    net: net.clone(),
                    chain: commands.clone(),
                    config_requests: config_rx,
                    worker_requests: worker_rx,
                    view: senders.training,
                    params: senders.params,
                    metrics: metrics.clone(),
                    stop: stop_training_rx,
                },
            )?)
        }
        None => None,
    };
    let consensus = training.as_ref().map(|t| t.consensus.clone());
    let task = spawn_supervisor(
        Supervised {
            chain: chain_task,
            training,
            stoppers: Stoppers {
                chain: commands.clone(),
                consensus: consensus.clone(),
                training: stop_training,
            },
        },
        net.clone(),
        event_log,
        stopped_tx,
    );
    Ok(NodeHandle {
        commands,
        views,
        events,
        #[cfg(feature = "testing")]
        partition: net.partition(),
        id,
        listen,
        http,
        stratum,
        api_cookie,
        metrics,
        consensus,
        task,
    })
}

/// What the data dir holds: the network profile's parameters, the identity, the chain store
/// with the chain it loaded, and the event log.
struct DataDir {
    params: NetworkParams,
    identity: Identity,
    store: ChainStore,
    chain: Chain,
    event_log: EventLog,
}

/// Creates the data dir if needed and opens the identity, the chain store and the event log.
fn open_data_dir(config: &NodeConfig) -> Result<DataDir, NodeError> {
    let params = NetworkParams::by_name(&config.network)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeError::DataDir(config.data_dir.clone(), e))?;
    let identity = Identity::load_or_create(&config.data_dir)?;
    let store = ChainStore::open(config.data_dir.join(STORE_FILE), &params)?;
    let chain = store.load_chain()?;
    let event_log = if config.events.enabled {
        let dir = config.data_dir.join(crate::events::EVENTS_DIR);
        EventLog::open(&dir, &identity.id().short(), config.events.limits())?
    } else {
        EventLog::disabled()
    };
    event_log.record(EventKind::NodeStarted);
    Ok(DataDir {
        params,
        identity,
        store,
        chain,
        event_log,
    })
}

/// Binds the QUIC endpoint with the config's pins, bans, timeouts and key exchange.
fn bind_network(
    config: &NodeConfig,
    params: &NetworkParams,
    identity: Identity,
    event_log: &EventLog,
) -> Result<(Network, mpsc::Receiver<crate::net::NetEvent>), NodeError> {
    let mut net_config =
        NetConfig::new(config.net.listen, &config.network, params.genesis_hash().0);
    net_config.events = event_log.clone();
    net_config.pins = config.net.pinned.clone();
    net_config.ban = config.ban();
    net_config.idle_timeout = Duration::from_secs(config.net.idle_timeout_secs);
    net_config.key_exchange = config.net.key_exchange;
    Ok(Network::bind(identity, net_config)?)
}

/// Where each service publishes its view.
struct ViewSenders {
    chain: watch::Sender<ChainView>,
    consensus: watch::Sender<ConsensusView>,
    training: watch::Sender<TrainingView>,
    stratum: Option<watch::Sender<StratumView>>,
    params: watch::Sender<Option<crate::views::ParamsView>>,
}

/// A watch channel per service view, the chain's starting from the loaded chain; the
/// consensus and training receivers are kept only on a training node.
fn view_channels(
    config: &NodeConfig,
    chain: &Chain,
    node: NodeId,
    listen: SocketAddr,
) -> (ViewSenders, NodeViews) {
    let (chain_view, chain_rx) = watch::channel(ChainView {
        network: config.network.clone(),
        node,
        height: chain.height(),
        tip: chain.tip(),
        total_work: chain.total_work(),
        peers: Vec::new(),
        hash_rate: 0.0,
        backend: "none".into(),
        mining: false,
        blocks_mined: 0,
        receipts_pooled: 0,
        listen,
    });
    let (consensus, consensus_rx) = watch::channel(ConsensusView::default());
    let (training, training_rx) = watch::channel(TrainingView::default());
    let (params, params_rx) = watch::channel(None);
    let trains = config.train.is_some();
    let (stratum, stratum_rx) = match config.stratum.listen {
        Some(_) => {
            let (sender, receiver) = watch::channel(StratumView::default());
            (Some(sender), Some(receiver))
        }
        None => (None, None),
    };
    let views = NodeViews {
        chain: chain_rx,
        consensus: trains.then_some(consensus_rx),
        training: trains.then_some(training_rx),
        stratum: stratum_rx,
        params: trains.then_some(params_rx),
    };
    let senders = ViewSenders {
        chain: chain_view,
        consensus,
        training,
        stratum,
        params,
    };
    (senders, views)
}

/// Binds and serves the HTTP API when the config asks for it, until `stopped` turns true.
async fn serve_http(
    config: &NodeConfig,
    parts: ApiParts,
    mut stopped: watch::Receiver<bool>,
) -> Result<Option<SocketAddr>, NodeError> {
    let Some(addr) = config.http.listen else {
        return Ok(None);
    };
    let stopped = async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    };
    let bound = api::serve(addr, parts, stopped)
        .await
        .map_err(|e| NodeError::Http(addr, e))?;
    Ok(Some(bound))
}

/// What the training service is wired to besides the consensus service.
struct TrainingLinks {
    own: NodeId,
    net: Network,
    chain: mpsc::Sender<ChainCommand>,
    config_requests: mpsc::Receiver<crate::views::ConfigRequest>,
    worker_requests: mpsc::Receiver<crate::views::WorkerRequest>,
    view: watch::Sender<TrainingView>,
    params: watch::Sender<Option<crate::views::ParamsView>>,
    metrics: Metrics,
    stop: watch::Receiver<bool>,
}

/// The consensus and training services of a training node, running.
struct RunningTraining {
    consensus: ConsensusHandle<Replicated>,
    consensus_task: consensus::ConsensusTask,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

/// Starts the trainer thread and the training service over a started consensus service.
fn start_training(
    started: StartedConsensus,
    links: TrainingLinks,
) -> Result<RunningTraining, NodeError> {
    let jobs = trainer_thread::spawn(
        trainer_thread::ThreadParts {
            setup: started.prepared.setup,
            params: links.params,
            shard: started.prepared.shard,
            device: started.device,
            blobs: started.blobs.clone(),
            eval_every: started.eval_every,
            last_round: started.max_rounds,
        },
        started.done_tx,
    )
    .map_err(NodeError::TrainerThread)?;
    let task = training::spawn(training::TrainingParts {
        own: links.own,
        workers: started.prepared.workers,
        gradient_len: started.prepared.gradient_len,
        external: started.prepared.genesis.is_none(),
        seed: started.prepared.seed,
        worker_requests: links.worker_requests,
        max_rounds: started.max_rounds,
        join: started.join,
        accept_joins: started.accept_joins,
        consensus: started.handle.clone(),
        applied: started.applied,
        events: links.net.subscribe(Service::Training),
        net: links.net,
        jobs,
        done: started.done_rx,
        blobs: started.blobs,
        chain: links.chain,
        config_requests: links.config_requests,
        view: links.view,
        metrics: links.metrics,
        stop: links.stop,
    });
    Ok(RunningTraining {
        consensus: started.handle,
        consensus_task: started.task,
        task,
    })
}

/// The services the supervisor watches, and how it stops them.
struct Supervised {
    chain: tokio::task::JoinHandle<Result<(), NodeError>>,
    training: Option<RunningTraining>,
    stoppers: Stoppers,
}

/// The supervisor: when a service stops (asked to, or failing), stop the others, then close
/// the network, flush the event log and stop the HTTP server.
fn spawn_supervisor(
    services: Supervised,
    net: Network,
    event_log: EventLog,
    stopped: watch::Sender<bool>,
) -> tokio::task::JoinHandle<Result<(), NodeError>> {
    tokio::spawn(async move {
        let (consensus_task, training_task) = match services.training {
            Some(running) => (Some(running.consensus_task), Some(running.task)),
            None => (None, None),
        };
        let result = supervise(
            services.chain,
            consensus_task,
            training_task,
            services.stoppers,
        )
        .await;
        net.shutdown();
        event_log.record(EventKind::NodeStopped);
        let flushing = event_log.clone();
        let _ = tokio::task::spawn_blocking(move || flushing.flush()).await;
        let _ = stopped.send(true);
        match &result {
            Ok(()) => info!("node stopped"),
            Err(error) => warn!(%error, "node stopped"),
        }
        result
    })
}

/// The consensus service over the cluster's state, and what the training service needs next.
struct StartedConsensus {
    handle: ConsensusHandle<Replicated>,
    task: consensus::ConsensusTask,
    applied: mpsc::UnboundedReceiver<replicated::StateEvent>,
    prepared: training_setup::Prepared,
    blobs: blobs::BlobStore,
    device: crate::gpu::DeviceChoice,
    eval_every: u64,
    max_rounds: Option<u64>,
    join: bool,
    accept_joins: bool,
    done_tx: mpsc::UnboundedSender<trainer_thread::Done>,
    done_rx: mpsc::UnboundedReceiver<trainer_thread::Done>,
}

fn start_consensus(
    id: NodeId,
    train: &TrainSection,
    data_dir: &std::path::Path,
    net: &Network,
    view: watch::Sender<ConsensusView>,
    metrics: &Metrics,
) -> Result<StartedConsensus, NodeError> {
    let prepared = training_setup::prepare(train, id)?;
    let blobs =
        blobs::BlobStore::open(data_dir).map_err(|e| NodeError::DataDir(data_dir.into(), e))?;
    let (applied_tx, applied) = mpsc::unbounded_channel();
    let state = match prepared.genesis {
        Some(genesis) => ClusterState::new(genesis, prepared.defaults.clone()),
        None => ClusterState::awaiting_model(prepared.defaults.clone()),
    };
    let machine = Replicated::new(state, applied_tx, blobs.clone());
    let (handle, task) = consensus::start(
        id,
        &consensus_config(train),
        data_dir,
        machine,
        net.clone(),
        net.subscribe(Service::Raft),
        view,
    )?;
    tokio::spawn(count_consensus(handle.watch(), metrics.clone()));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    Ok(StartedConsensus {
        handle,
        task,
        applied,
        prepared,
        blobs,
        device: train.backend,
        eval_every: train.eval_every,
        max_rounds: train.rounds,
        join: train.join,
        accept_joins: train.accept_joins,
        done_tx,
        done_rx,
    })
}

/// Answers `GET /receipts` from the chain service's best chain.
async fn serve_receipts(
    mut requests: mpsc::Receiver<ReceiptsRequest>,
    chain: mpsc::Sender<ChainCommand>,
) {
    while let Some(reply) = requests.recv().await {
        let inspect: Inspect = Box::new(move |chain| {
            let _ = reply.send(crate::cluster::receipt::on_best_chain(
                chain,
                RECEIPT_SCAN_BLOCKS,
            ));
        });
        if chain.send(ChainCommand::Inspect(inspect)).await.is_err() {
            return;
        }
    }
}

fn consensus_config(train: &TrainSection) -> ConsensusConfig {
    ConsensusConfig {
        voters: train.voters.clone(),
        tick: Duration::from_millis(train.tick_ms),
        election_ticks: train.election_ticks,
        heartbeat_ticks: train.heartbeat_ticks,
        pre_vote: train.pre_vote,
        snapshot_every: train.snapshot_every,
    }
}

/// How the supervisor asks each service to stop.
struct Stoppers {
    chain: mpsc::Sender<ChainCommand>,
    consensus: Option<ConsensusHandle<Replicated>>,
    training: watch::Sender<bool>,
}

/// Waits for the first service to stop (asked to, or failing), stops the others (training
/// first, it uses consensus; then consensus; then the chain) and returns the first error.
async fn supervise(
    chain_task: tokio::task::JoinHandle<Result<(), NodeError>>,
    consensus_task: Option<consensus::ConsensusTask>,
    training_task: Option<tokio::task::JoinHandle<Result<(), NodeError>>>,
    stoppers: Stoppers,
) -> Result<(), NodeError> {
    let (ended, mut results) = mpsc::unbounded_channel::<Result<(), NodeError>>();
    let mut running = 1;
    let watch_task = |task: tokio::task::JoinHandle<Result<(), NodeError>>| {
        let ended = ended.clone();
        tokio::spawn(async move {
            let _ = ended.send(task.await.unwrap_or(Err(NodeError::Stopped)));
        });
    };
    watch_task(chain_task);
    if let Some(task) = training_task {
        running += 1;
        watch_task(task);
    }
    if let Some(task) = consensus_task {
        running += 1;
        let ended = ended.clone();
        tokio::spawn(async move {
            let result = task.await.unwrap_or(Err(ConsensusError::Stopped));
            let _ = ended.send(result.map_err(NodeError::from));
        });
    }
    drop(ended);
    let mut outcome = results.recv().await.unwrap_or(Err(NodeError::Stopped));
    let _ = stoppers.training.send(true);
    if let Some(consensus) = &stoppers.consensus {
        consensus.shutdown().await;
    }
    let _ = stoppers.chain.send(ChainCommand::Shutdown).await;
    for _ in 1..running {
        let result = results.recv().await.unwrap_or(Err(NodeError::Stopped));
        if outcome.is_ok() {
            outcome = result;
        }
    }
    outcome
}

/// Keeps the Raft gauges of `/metrics` in step with the consensus service's view.
async fn count_consensus(mut consensus: watch::Receiver<ConsensusView>, metrics: Metrics) {
    loop {
        let current = consensus.borrow_and_update().clone();
        metrics.raft_term.set(current.position.term as i64);
        metrics.raft_commit_index.set(current.commit_index as i64);
        metrics.raft_applied_index.set(current.applied_index as i64);
        metrics.raft_leader.set(i64::from(current.position.leads()));
        metrics
            .raft_snapshot_index
            .set(current.snapshot_index as i64);
        metrics
            .raft_snapshots_installed
            .set(current.snapshots_installed as i64);
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

    /// The bound Stratum address, when serving (`[stratum] listen`).
    pub fn stratum_addr(&self) -> Option<SocketAddr> {
        self.stratum
    }

    /// The token this start wrote to `DATA_DIR/.cookie` (`None` without an HTTP API), for
    /// `Authorization: Bearer` on requests that change something.
    pub fn api_token(&self) -> Option<&str> {
        self.api_cookie.as_ref().map(api::Cookie::token)
    }

    /// The latest status, as `GET /status` serves it (the views refresh on every tip change
    /// and every second).
    pub fn status(&self) -> NodeStatus {
        NodeStatus::from(&self.views.snapshot())
    }

    /// The services' typed views, as they change.
    pub fn views(&self) -> &NodeViews {
        &self.views
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The consensus service, when the config has a `[train]` section.
    pub fn consensus(&self) -> Option<&ConsensusHandle<Replicated>> {
        self.consensus.as_ref()
    }

    /// Accepted blocks from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// The fault-injection hook of this node's transport (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn partition(&self) -> crate::net::PartitionControl {
        self.partition.clone()
    }

    /// Hands a block to the node as if mined here: validated, stored and relayed.
    pub async fn submit_block(&self, block: Block) -> Result<Accepted, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.send(ChainCommand::SubmitBlock(block, reply)).await?;
        Ok(answer.await.map_err(|_| NodeError::Stopped)??)
    }

    /// Adds a receipt to the pool for the next blocks this node mines; false if already pooled.
    pub async fn submit_receipt(&self, receipt: Receipt) -> Result<bool, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.send(ChainCommand::SubmitReceipt(receipt, reply))
            .await?;
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
        self.send(ChainCommand::Inspect(inspect)).await?;
        answer.await.map_err(|_| NodeError::Stopped)
    }

    /// Starts or stops mining.
    pub async fn set_mining(&self, on: bool) -> Result<(), NodeError> {
        self.send(ChainCommand::SetMining(on)).await
    }

    /// Stops the node and waits until its store is closed.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.commands.send(ChainCommand::Shutdown).await;
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
            let _ = commands.try_send(ChainCommand::Shutdown);
        }
    }

    async fn send(&self, command: ChainCommand) -> Result<(), NodeError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NodeError::Stopped)
    }
}
