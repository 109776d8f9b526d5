//! The training service: one tokio task that runs the round protocol's sans-IO cores for this
//! node — the leader's `Coordinator` while Raft says this node leads, the `Worker` when the
//! node is in the worker list — and does their I/O. Announcements go out on the peers' gossip
//! streams, each gradient on a stream of its own (`Network::request`), reduced gradients are
//! blobs on disk served to any peer that asks, proposals go through the consensus service, and
//! every committed round (`Applied::Round`) steps the trainer thread and becomes a receipt for
//! the chain. Config writes from the HTTP API are proposed here (a follower forwards them to
//! the leader); config reads run at the consistency the caller picked.
//!
//! Owns the coordination loop and its clock; the arithmetic runs on the trainer thread
//! (`trainer_thread`), the replicated state in the consensus service (`replicated`). Blob
//! pushes and fetches live in `blob_transfer`, config requests in `config_writes`, what the
//! replicated state hands over in `applied`, joining a running cluster in `join`.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::api::Metrics;
use crate::cluster::round::Action;
use crate::cluster::wire::{
    FRAME_BLOB_REQUEST, FRAME_BLOB_RESPONSE, FRAME_FORWARD, FRAME_GRADIENT, FRAME_JOIN,
    FRAME_ROUND_ANNOUNCE, Gradient, RoundAnnounce,
};
use crate::cluster::{
    BlobHash, Command as ClusterCommand, Coordinator, RoundSettings, TrainingMessage, WireLimits,
    Worker,
};
use crate::codec::Encode;
use crate::events::{EventKind, EventLog, RoundTimings};
use crate::net::frame::ServiceFrame;
use crate::net::{Message, NetEvent, Network, NodeId, Responder};
use crate::train::StateHash;
use crate::views::{ConfigRequest, ConsensusView, ReadMode, TrainingView, WorkerRequest};

mod applied;
mod blob_transfer;
mod config_writes;
mod external;
mod join;

use super::ChainCommand;
use super::NodeError;
use super::blobs::BlobStore;
use super::consensus::{ConsensusError, ConsensusHandle};
use super::replicated::{Replicated, StateEvent};
use super::trainer_thread::{Done, Job};

/// How often the coordinator's deadline and the announce condition are checked.
const TICK: Duration = Duration::from_millis(50);

/// What the service is started with.
pub(super) struct TrainingParts {
    pub own: NodeId,
    /// The worker list: position = shard = reduction order, the same on every node.
    pub workers: Vec<NodeId>,
    /// Values in a gradient (the model's parameter count; 0 until an external model is
    /// registered).
    pub gradient_len: usize,
    /// Whether the cluster trains an external model (gradients from this node's worker
    /// process, through `worker_requests`).
    pub external: bool,
    /// The cluster's seed (`train.seed`), named in an external worker's jobs.
    pub seed: u64,
    /// The worker API's requests.
    pub worker_requests: mpsc::Receiver<WorkerRequest>,
    /// The leader stops announcing after this round (`None`: never).
    pub max_rounds: Option<u64>,
    /// Ask the leader to add this node as a voter (`train.join`).
    pub join: bool,
    /// As leader, add nodes that ask to join (`train.accept_joins`).
    pub accept_joins: bool,
    pub consensus: ConsensusHandle<Replicated>,
    pub applied: mpsc::UnboundedReceiver<StateEvent>,
    pub net: Network,
    /// Training-range events (`Network::subscribe(Service::Training)`).
    pub events: mpsc::Receiver<NetEvent>,
    pub jobs: std_mpsc::Sender<Job>,
    pub done: mpsc::UnboundedReceiver<Done>,
    pub blobs: BlobStore,
    pub chain: mpsc::Sender<ChainCommand>,
    pub config_requests: mpsc::Receiver<ConfigRequest>,
    /// Where the service publishes its view.
    pub view: watch::Sender<TrainingView>,
    pub metrics: Metrics,
    pub stop: watch::Receiver<bool>,
}

/// Results of tasks the service spawned.
enum Inbox {
    ProposeFailed {
        round: u64,
        error: ConsensusError,
    },
    /// A majority of the voters hold the round's reduced gradient: propose it.
    Replicated {
        round: u64,
        params_hash: StateHash,
        reduced_hash: BlobHash,
    },
    ReplicationFailed {
        round: u64,
        stored: usize,
        needed: usize,
    },
    Blob(Vec<u8>),
    BlobMissing(BlobHash),
    /// A registration's round 0 was proposed (`None`) or why not.
    ModelProposed(Option<crate::views::WorkerFailure>),
}

/// The service's state. The round this node leads (`lead`), the config writes it waits on
/// (`config_writes`), its published view (`status`) and its join (`joining`) own their
/// fields; the rest is what every part reads.
struct Service {
    own: NodeId,
    workers: Vec<NodeId>,
    gradient_len: usize,
    limits: WireLimits,
    joining: join::Joining,
    accept_joins: bool,
    consensus: ConsensusHandle<Replicated>,
    raft: watch::Receiver<ConsensusView>,
    lead: LeaderRound,
    net: Network,
    jobs: std_mpsc::Sender<Job>,
    worker: Option<Worker>,
    blobs: BlobStore,
    chain: mpsc::Sender<ChainCommand>,
    metrics: Metrics,
    status: StatusView,
    config_writes: config_writes::ConfigWriters,
    external: external::ExternalWorker,
    inbox: mpsc::UnboundedSender<Inbox>,
    /// Proposals, gradient sends, blob pushes and fetches, join requests in flight; aborted
    /// when the service stops.
    tasks: JoinSet<()>,
    /// An announcement from a peer this node does not (yet) know as the leader: a new leader's
    /// first announcement can overtake the heartbeat that tells this node it leads.
    early_announce: Option<(NodeId, RoundAnnounce)>,
    committed_round: u64,
    trainer_round: u64,
    started: Instant,
    event_log: EventLog,
}

/// The round this node leads: whether it leads, the sans-IO coordinator, where the round
/// spends its time, and the last round it may announce.
struct LeaderRound {
    leading: bool,
    coordinator: Coordinator,
    /// Where the round this node leads spends its time (for the event log).
    timer: RoundTimer,
    /// The leader stops announcing after this round (`None`: never).
    max_rounds: Option<u64>,
}

/// What the service shows of itself, and the channel it publishes it on.
struct StatusView {
    view: TrainingView,
    published: watch::Sender<TrainingView>,
}

impl StatusView {
    /// Publishes the view when it changed.
    fn publish(&mut self) {
        let view = self.view.clone();
        self.published.send_if_modified(|published| {
            let changed = *published != view;
            *published = view;
            changed
        });
    }
}

/// When the round this node leads was announced, reduced and proposed.
#[derive(Debug, Default)]
struct RoundTimer {
    round: u64,
    announced: Option<Instant>,
    reducing: Option<Instant>,
    proposed: Option<Instant>,
}

impl RoundTimer {
    fn announced(&mut self, round: u64) {
        *self = RoundTimer {
            round,
            announced: Some(Instant::now()),
            ..RoundTimer::default()
        };
    }

    fn mark(&mut self, round: u64, at: fn(&mut RoundTimer) -> &mut Option<Instant>) {
        if self.round == round {
            *at(self) = Some(Instant::now());
        }
    }

    /// The split of `round`, committed now, when this node timed all of it.
    fn timings(&self, round: u64) -> Option<RoundTimings> {
        let (announced, reducing, proposed) = (self.announced?, self.reducing?, self.proposed?);
        if self.round != round {
            return None;
        }
        let ms =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
        Some(RoundTimings {
            gradient_wait_ms: ms(announced, reducing),
            reduce_ms: ms(reducing, proposed),
            commit_ms: ms(proposed, Instant::now()),
        })
    }
}

/// Spawns the service; the task ends when `stop` turns true, or with an error that stops the
/// node (the trainer diverged from the committed params).
pub(super) fn spawn(parts: TrainingParts) -> tokio::task::JoinHandle<Result<(), NodeError>> {
    let TrainingParts {
        own,
        workers,
        gradient_len,
        external,
        seed,
        worker_requests,
        max_rounds,
        join,
        accept_joins,
        consensus,
        applied,
        net,
        events,
        jobs,
        done,
        blobs,
        chain,
        config_requests,
        view,
        metrics,
        stop,
    } = parts;
    let (inbox, inbox_rx) = mpsc::unbounded_channel();
    let worker = workers.contains(&own).then(|| Worker::new(own));
    let event_log = net.event_log();
    let mut service = Service {
        own,
        // Before an external model is registered its size is unknown: round 0's push may be
        // as large as any model (`on_model` narrows the limits).
        limits: if external {
            WireLimits::max()
        } else {
            WireLimits::for_params(gradient_len)
        },
        gradient_len,
        joining: join::Joining {
            wanted: join,
            ..join::Joining::default()
        },
        accept_joins,
        raft: consensus.watch(),
        consensus,
        lead: LeaderRound {
            leading: false,
            coordinator: Coordinator::new(rand::random()),
            timer: RoundTimer::default(),
            max_rounds,
        },
        net,
        jobs,
        status: StatusView {
            view: TrainingView {
                workers: workers.len(),
                worker: worker.is_some(),
                external,
                ..TrainingView::default()
            },
            published: view,
        },
        workers,
        worker,
        blobs,
        chain,
        metrics,
        inbox,
        tasks: JoinSet::new(),
        config_writes: config_writes::ConfigWriters::default(),
        external: external::ExternalWorker {
            enabled: external,
            seed,
            ..external::ExternalWorker::default()
        },
        early_announce: None,
        committed_round: 0,
        trainer_round: 0,
        started: Instant::now(),
        event_log,
    };
    tokio::spawn(async move {
        service
            .run(
                applied,
                events,
                done,
                inbox_rx,
                (config_requests, worker_requests),
                stop,
            )
            .await
    })
}

impl Service {
    async fn run(
        &mut self,
        mut applied: mpsc::UnboundedReceiver<StateEvent>,
        mut events: mpsc::Receiver<NetEvent>,
        mut done: mpsc::UnboundedReceiver<Done>,
        mut inbox: mpsc::UnboundedReceiver<Inbox>,
        (mut config_requests, mut worker_requests): (
            mpsc::Receiver<ConfigRequest>,
            mpsc::Receiver<WorkerRequest>,
        ),
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            workers = self.workers.len(),
            worker = self.worker.is_some(),
            "training service started"
        );
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(event) = applied.recv() => self.on_state_event(event),
                Some(event) = events.recv() => self.on_net(event),
                Some(result) = done.recv() => self.on_done(result)?,
                Some(message) = inbox.recv() => self.on_inbox(message),
                Some(request) = config_requests.recv() => self.on_config(request),
                Some(request) = worker_requests.recv() => {
                    self.on_worker(request);
                    self.publish();
                }
                changed = self.raft.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.on_raft();
                }
                _ = ticker.tick() => {
                    let now = self.now();
                    self.lead.coordinator.tick(now);
                    self.drain_coordinator();
                    self.config_writes.waiters.retain(|_, waiter| !waiter.is_closed());
                    while self.tasks.try_join_next().is_some() {}
                    self.join_if_due();
                    self.expire_registrations();
                    self.publish();
                }
            }
            // The next round starts as soon as the last one is applied, not on the next tick.
            self.announce_if_due().await;
        }
        info!("training service stopped");
        Ok(())
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft.borrow().position.leader
    }

    fn on_raft(&mut self) {
        let position = self.raft.borrow_and_update().position;
        let leading = position.leads();
        if self.lead.leading && !leading {
            info!(term = position.term, "no longer the training leader");
            self.lead.coordinator.step_down();
        } else if leading && !self.lead.leading {
            info!(term = position.term, "leading training");
        }
        self.lead.leading = leading;
        self.status.view.position = position;
        if let Some((from, announce)) = self.early_announce.take()
            && position.leader == Some(from)
        {
            self.on_announce(from, &announce);
        }
    }

    /// Leader: announces the next round once this node has applied everything committed and
    /// its trainer holds the last committed params.
    async fn announce_if_due(&mut self) {
        if !self.lead.leading || !self.lead.coordinator.is_idle() {
            return;
        }
        let raft = self.raft.borrow().clone();
        if raft.applied_index < raft.commit_index || self.trainer_round != self.committed_round {
            return;
        }
        if self.external.enabled && self.external.model.is_none() {
            return;
        }
        if self
            .lead
            .max_rounds
            .is_some_and(|last| self.committed_round >= last)
        {
            return;
        }
        let read = self
            .consensus
            .read(ReadMode::Local, |machine| {
                let state = machine.state();
                (
                    state.round(),
                    state.params_hash(),
                    state.config().training().clone(),
                )
            })
            .await;
        let Ok((round, params_hash, config)) = read else {
            return;
        };
        if round != self.committed_round || !self.lead.leading || !self.lead.coordinator.is_idle() {
            return;
        }
        let settings = RoundSettings::from_config(&config, self.gradient_len);
        debug!(round = round + 1, "announcing");
        let now = self.now();
        self.lead
            .coordinator
            .announce(now, round + 1, params_hash, self.workers.clone(), settings);
        self.drain_coordinator();
    }

    fn on_done(&mut self, done: Done) -> Result<(), NodeError> {
        match done {
            Done::Computed {
                round,
                params_hash,
                loss,
                values,
            } => {
                if let Some(worker) = &mut self.worker {
                    worker.on_computed(round, params_hash, loss, values);
                }
                self.drain_worker();
            }
            Done::Stepped {
                round,
                params_hash,
                reduced_hash,
                reduced,
            } => self.replicate_blob(round, params_hash, reduced_hash, reduced),
            Done::ReduceFailed { round, reason } => {
                warn!(round, %reason, "round not reduced; it will be announced again");
                self.lead.coordinator.on_reduce_failed(round);
            }
            Done::Applied { round } => {
                self.trainer_round = round;
                self.status.view.trained_round = round;
            }
            Done::Restored { round } => {
                self.trainer_round = round;
                self.status.view.trained_round = round;
                self.status.view.restored_round = round;
            }
            Done::Evaluated {
                round,
                accuracy,
                loss,
            } => {
                self.event_log.record(EventKind::RoundEvaluated {
                    round,
                    accuracy: f64::from(accuracy),
                });
                self.status.view.accuracy = Some(accuracy);
                self.status.view.test_loss = Some(loss);
                self.status.view.evaluated_round = round;
                self.metrics.training_accuracy.set(f64::from(accuracy));
            }
            Done::NeedBlob(hash) => self.fetch_blob(hash),
            Done::Model(layout) => self.on_model(layout),
            Done::Diverged {
                round,
                expected,
                found,
            } => {
                error!(round, %expected, %found, "params diverged from the committed round; stopping");
                return Err(NodeError::Diverged { round });
            }
            Done::Failed(reason) => {
                error!(%reason, "trainer failed; stopping");
                return Err(NodeError::Trainer(reason));
            }
        }
        Ok(())
    }

    fn on_inbox(&mut self, message: Inbox) {
        match message {
            Inbox::ProposeFailed { round, error } => {
                warn!(round, %error, "round proposal failed; announcing it again");
                self.lead.coordinator.on_reduce_failed(round);
            }
            Inbox::Replicated {
                round,
                params_hash,
                reduced_hash,
            } => {
                self.lead
                    .coordinator
                    .on_stepped(round, params_hash, reduced_hash);
                self.drain_coordinator();
            }
            Inbox::ReplicationFailed {
                round,
                stored,
                needed,
            } => {
                warn!(
                    round,
                    stored,
                    needed,
                    "too few voters stored the reduced gradient; the round will be announced again"
                );
                self.lead.coordinator.on_reduce_failed(round);
            }
            Inbox::Blob(bytes) => {
                let _ = self.jobs.send(Job::Blob(bytes));
            }
            Inbox::BlobMissing(hash) => {
                error!(blob = %hash, "no peer served a blob the round log needs; training here waits");
            }
            Inbox::ModelProposed(failure) => self.on_model_proposed(failure),
        }
    }

    fn drain_coordinator(&mut self) {
        while let Some(action) = self.lead.coordinator.poll_action() {
            match action {
                Action::Announce(announce) => {
                    self.lead.timer.announced(announce.round);
                    self.event_log.record(EventKind::RoundAnnounced {
                        round: announce.round,
                    });
                    let message = TrainingMessage::RoundAnnounce(announce.clone());
                    for worker in &announce.workers {
                        if *worker == self.own {
                            continue;
                        }
                        if let Err(error) = self.net.send_to(*worker, &to_frame(&message)) {
                            debug!(peer = %worker.short(), %error, "announcement not sent");
                        }
                    }
                    if announce.workers.contains(&self.own) {
                        self.on_announce(self.own, &announce);
                    }
                }
                Action::Abandoned {
                    round,
                    attempt,
                    received,
                    required,
                } => {
                    info!(
                        round,
                        attempt, received, required, "round abandoned at its deadline"
                    );
                    self.metrics.training_rounds_abandoned.inc();
                    self.event_log.record(EventKind::RoundAbandoned {
                        round,
                        reason: format!(
                            "deadline passed with {received} of {required} gradients (attempt {attempt})"
                        ),
                    });
                }
                Action::Reduce(reduction) => {
                    self.lead.timer.mark(reduction.round, |t| &mut t.reducing);
                    let _ = self.jobs.send(Job::Reduce(reduction));
                }
                Action::Propose(command) => {
                    let round = match &command {
                        ClusterCommand::RoundCommitted(r) => r.round,
                        _ => 0,
                    };
                    self.lead.timer.mark(round, |t| &mut t.proposed);
                    let consensus = self.consensus.clone();
                    let inbox = self.inbox.clone();
                    self.tasks.spawn(async move {
                        if let Err(error) = consensus.propose(command.to_bytes()).await {
                            let _ = inbox.send(Inbox::ProposeFailed { round, error });
                        }
                    });
                }
                other => debug!(?other, "coordinator action ignored"),
            }
        }
        let counters = self.lead.coordinator.counters();
        self.status.view.rounds_abandoned = self
            .status
            .view
            .rounds_abandoned
            .max(counters.rounds_abandoned);
    }

    fn on_announce(&mut self, from: NodeId, announce: &RoundAnnounce) {
        let Some(worker) = &mut self.worker else {
            return;
        };
        if worker.on_announce(from, announce) {
            self.drain_worker();
        }
    }

    fn drain_worker(&mut self) {
        let mut actions = Vec::new();
        if let Some(worker) = &mut self.worker {
            while let Some(action) = worker.poll_action() {
                actions.push(action);
            }
        }
        for action in actions {
            match action {
                Action::ComputeGradient {
                    round,
                    params_hash,
                    batch_size,
                    ..
                } if self.external.enabled => self.open_job(round, params_hash, batch_size),
                Action::ComputeGradient {
                    round,
                    params_hash,
                    batch_size,
                    ..
                } => {
                    let _ = self.jobs.send(Job::Compute {
                        round,
                        params_hash,
                        batch_size,
                    });
                }
                Action::SendGradient { to, gradient } if to == self.own => {
                    let now = self.now();
                    self.take_gradient(now, self.own, gradient);
                }
                Action::SendGradient { to, gradient } => {
                    let message = to_frame(&TrainingMessage::Gradient(gradient));
                    let net = self.net.clone();
                    self.tasks.spawn(async move {
                        if let Err(error) = net.request(to, message).await {
                            debug!(peer = %to.short(), %error, "gradient not delivered");
                        }
                    });
                }
                other => debug!(?other, "worker action ignored"),
            }
        }
    }

    fn take_gradient(&mut self, now: u64, from: NodeId, gradient: Gradient) {
        let round = gradient.round;
        match self.lead.coordinator.on_gradient(now, from, gradient) {
            Ok(()) => {
                self.metrics.training_gradients_accepted.inc();
                self.drain_coordinator();
            }
            Err(refusal) => {
                self.metrics.training_gradients_refused.inc();
                self.status.view.gradients_refused += 1;
                debug!(peer = %from.short(), round, %refusal, "gradient refused");
            }
        }
        let counters = self.lead.coordinator.counters();
        self.status.view.bytes_received = counters.bytes_received;
    }

    fn on_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Frame { peer, frame } if frame.code == FRAME_ROUND_ANNOUNCE => {
                let announce =
                    match TrainingMessage::decode(frame.code, &frame.payload, &self.limits) {
                        Ok(TrainingMessage::RoundAnnounce(announce)) => announce,
                        Ok(_) => return,
                        Err(error) => {
                            warn!(peer = %peer.short(), %error, "undecodable announcement dropped");
                            return;
                        }
                    };
                if self.leader() != Some(peer) {
                    debug!(peer = %peer.short(), round = announce.round, "announcement from a node not known to lead held");
                    self.early_announce = Some((peer, announce));
                    return;
                }
                self.on_announce(peer, &announce);
            }
            NetEvent::Frame { peer, frame } => {
                debug!(peer = %peer.short(), code = frame.code, "training frame not expected on gossip dropped");
            }
            NetEvent::Request {
                peer,
                request: Message::Service(frame),
                reply,
            } => self.on_request(peer, frame, reply),
            _ => {}
        }
    }

    fn on_request(&mut self, peer: NodeId, frame: ServiceFrame, reply: Responder) {
        let message = match TrainingMessage::decode(frame.code, &frame.payload, &self.limits) {
            Ok(message) => message,
            Err(error) => {
                warn!(peer = %peer.short(), code = frame.code, %error, "undecodable training request dropped");
                if frame.code == FRAME_GRADIENT {
                    self.metrics.training_gradients_refused.inc();
                    self.status.view.gradients_refused += 1;
                }
                return;
            }
        };
        match (frame.code, message) {
            (FRAME_GRADIENT, TrainingMessage::Gradient(gradient)) => {
                let _ = reply.send(Vec::new());
                let now = self.now();
                self.take_gradient(now, peer, gradient);
            }
            (FRAME_BLOB_REQUEST, TrainingMessage::BlobRequest { hash }) => {
                let data = self.blobs.get(&hash);
                let answer = TrainingMessage::BlobResponse { hash, data };
                let _ = reply.send(vec![to_frame(&answer)]);
            }
            (
                FRAME_BLOB_RESPONSE,
                TrainingMessage::BlobResponse {
                    hash,
                    data: Some(data),
                },
            ) => self.on_blob_push(peer, hash, &data, reply),
            (FRAME_FORWARD, TrainingMessage::Forward { command }) => {
                self.on_forward(peer, command, reply)
            }
            (FRAME_JOIN, TrainingMessage::Join) => self.on_join(peer, reply),
            (code, _) => debug!(peer = %peer.short(), code, "training request type not served"),
        }
    }

    fn publish(&mut self) {
        self.status.publish();
    }
}

/// A training message as the frame the transport carries.
pub(super) fn to_frame(message: &TrainingMessage) -> Message {
    Message::Service(ServiceFrame {
        code: message.frame_type(),
        payload: message.encode(),
    })
}
