//! The external worker of this node (`train.model = "external"`): registration of the model's
//! layout and initial values (round 0, pushed to a majority of the voters as a training-state
//! blob and committed as `ModelRegistered` through Raft), the job it computes next (published
//! in `TrainingView`), its gradients (checked like a peer's, then handed to the `Worker` core
//! as if this node's trainer had computed them) and its evaluation reports.
//!
//! Owns the worker's session and the open job; the round rules stay in `cluster`, the HTTP
//! edge in `api::worker`.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::cluster::command::ModelRegistered;
use crate::cluster::{BlobHash, Command as ClusterCommand, RequestId, TrainingMessage, WireLimits};
use crate::codec::Encode;
use crate::events::EventKind;
use crate::net::{Message, NodeId};
use crate::train::optimizer::{Optimizer, OptimizerSettings};
use crate::train::{Layout, ModelShape, StateHash, TrainState};
use crate::views::{
    ConfigFailure, GradientSubmission, WorkerFailure, WorkerJob, WorkerRegistered, WorkerReport,
    WorkerRequest,
};

use super::super::consensus::ConsensusError;
use super::config_writes::forward;
use super::{Inbox, Service, to_frame};

/// How long a registration waits for its model (or another worker's) to be committed here.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the registering node waits for a majority of voters to store round 0.
const MODEL_PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Round 0's learning rate (unused: every round steps at its own committed rate).
const DEFAULT_RATE: f32 = 1e-3;

type RegisterReply = oneshot::Sender<Result<WorkerRegistered, WorkerFailure>>;

/// This node's external worker: the model once known, the session, the open job.
#[derive(Debug, Default)]
pub(super) struct ExternalWorker {
    /// Whether the cluster trains an external model.
    pub enabled: bool,
    /// The cluster's seed (the job names it so the worker can draw its batch).
    pub seed: u64,
    /// The registered layout, once the trainer holds round 0.
    pub model: Option<Layout>,
    /// The registered worker's session id.
    pub session: Option<u64>,
    /// The gradient the worker should compute: round, params hash, batch size.
    pub job: Option<(u64, StateHash, usize)>,
    /// Registrations waiting for the model to be committed.
    pub waiting: Vec<Waiting>,
}

/// A registration that waits for round 0 to be committed and loaded here.
#[derive(Debug)]
pub(super) struct Waiting {
    request: RequestId,
    layout: Layout,
    /// Whether this registration's round 0 is the committed one.
    won: bool,
    deadline: Instant,
    reply: RegisterReply,
}

impl Service {
    pub(super) fn on_worker(&mut self, request: WorkerRequest) {
        match request {
            WorkerRequest::Register {
                layout,
                values,
                reply,
            } => self.on_register(layout, values, reply),
            WorkerRequest::Submit { gradient, reply } => {
                let result = self.on_submit(gradient);
                if let Err(failure) = &result {
                    self.metrics.training_gradients_refused.inc();
                    self.status.view.gradients_refused += 1;
                    debug!(?failure, "worker gradient refused");
                }
                let _ = reply.send(result);
            }
            WorkerRequest::Report { report, reply } => {
                let _ = reply.send(self.on_report(report));
            }
        }
    }

    fn on_register(&mut self, layout: Layout, values: Vec<f32>, reply: RegisterReply) {
        let refuse = |reply: RegisterReply, failure| {
            let _ = reply.send(Err(failure));
        };
        if !self.external.enabled {
            return refuse(
                reply,
                WorkerFailure::BadRequest(
                    "this cluster trains the built-in MLP; set [train] model = \"external\" on every node to train a worker's model".into(),
                ),
            );
        }
        if let Err(reason) = layout.validate() {
            return refuse(reply, WorkerFailure::BadRequest(reason));
        }
        if values.len() != layout.param_count() {
            return refuse(
                reply,
                WorkerFailure::BadRequest(format!(
                    "the layout holds {} values, the initial params {}",
                    layout.param_count(),
                    values.len()
                )),
            );
        }
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return refuse(
                reply,
                WorkerFailure::BadRequest(format!("initial value {at} is not finite")),
            );
        }
        if self.external.model.is_some() {
            let answer = self.session_for(&layout, false);
            let _ = reply.send(answer);
            return;
        }
        let request = RequestId {
            client: rand::random(),
            seq: 1,
        };
        let n = values.len();
        // Round 0's optimizer state is the default's zeros: every round steps with that
        // round's committed settings and rate (`Trainer::configure`), so nothing else matters.
        let state = TrainState {
            model: ModelShape::External(layout.clone()),
            round: 0,
            params: values,
            optimizer: Optimizer::with_settings(OptimizerSettings::default(), DEFAULT_RATE, n),
        };
        let layout_hash = layout.hash();
        let consensus = self.consensus.clone();
        let (net, blobs, inbox) = (self.net.clone(), self.blobs.clone(), self.inbox.clone());
        let targets = self.push_targets();
        let voters = self.raft.borrow().voters.clone();
        self.tasks.spawn(async move {
            let result = async {
                let bytes = tokio::task::spawn_blocking(move || state.to_bytes())
                    .await
                    .map_err(|e| WorkerFailure::Unavailable(e.to_string()))?;
                let blob = blobs.put(&bytes).map_err(|e| {
                    WorkerFailure::Unavailable(format!("cannot store round 0 in the data dir: {e}"))
                })?;
                push_model(&net, targets, &voters, blob, bytes).await?;
                let command = ClusterCommand::ModelRegistered(ModelRegistered {
                    request,
                    params_hash: StateHash(blob.0),
                    layout_hash,
                    params: n as u64,
                });
                let bytes = command.to_bytes();
                match consensus.propose(bytes.clone()).await {
                    Ok(_) => Ok(()),
                    Err(ConsensusError::NotLeader {
                        leader: Some(leader),
                    }) => forward(&net, leader, bytes)
                        .await
                        .map(|_| ())
                        .map_err(|e| match e {
                            ConfigFailure::BadRequest(reason)
                            | ConfigFailure::Unavailable(reason)
                            | ConfigFailure::Unknown(reason) => WorkerFailure::Unavailable(reason),
                            ConfigFailure::CasFailed { .. } => {
                                WorkerFailure::Unavailable("the leader refused round 0".into())
                            }
                        }),
                    Err(error) => Err(unavailable(error)),
                }
            }
            .await;
            let _ = inbox.send(Inbox::ModelProposed(result.err()));
        });
        self.external.waiting.push(Waiting {
            request,
            layout,
            won: false,
            deadline: Instant::now() + REGISTER_TIMEOUT,
            reply,
        });
    }

    /// Round 0 was committed (`request` names the registration that proposed it).
    pub(super) fn on_model_committed(&mut self, request: RequestId, params_hash: StateHash) {
        for waiting in &mut self.external.waiting {
            waiting.won |= waiting.request == request;
        }
        self.status.view.params_hash.get_or_insert(params_hash);
    }

    /// A session for a worker whose layout is `layout`, now that the model is known.
    fn session_for(
        &mut self,
        layout: &Layout,
        created: bool,
    ) -> Result<WorkerRegistered, WorkerFailure> {
        let Some(model) = &self.external.model else {
            return Err(WorkerFailure::Unavailable(
                "no model is registered yet; retry".into(),
            ));
        };
        if let Some(reason) = model.difference(layout) {
            return Err(WorkerFailure::LayoutDiffers(reason));
        }
        let worker = rand::random::<u64>() >> 11;
        self.external.session = Some(worker);
        self.status.view.worker_connected = true;
        let params_hash = self.status.view.params_hash.unwrap_or(StateHash([0; 32]));
        info!(worker, "external worker registered");
        Ok(WorkerRegistered {
            worker,
            params_hash,
            created,
        })
    }

    /// The trainer loaded the registered round 0: answer every waiting registration.
    pub(super) fn on_model(&mut self, layout: Layout) {
        let n = layout.param_count();
        self.gradient_len = n;
        self.limits = WireLimits::for_params(n);
        info!(
            tensors = layout.tensors.len(),
            params = n,
            "external model loaded"
        );
        self.external.model = Some(layout);
        for waiting in std::mem::take(&mut self.external.waiting) {
            let answer = self.session_for(&waiting.layout, waiting.won);
            let _ = waiting.reply.send(answer);
        }
    }

    /// Ticks: registrations past their deadline are answered.
    pub(super) fn expire_registrations(&mut self) {
        let now = Instant::now();
        let (expired, kept): (Vec<Waiting>, Vec<Waiting>) =
            std::mem::take(&mut self.external.waiting)
                .into_iter()
                .partition(|w| w.deadline <= now || w.reply.is_closed());
        self.external.waiting = kept;
        for waiting in expired {
            let _ = waiting.reply.send(Err(WorkerFailure::Unavailable(format!(
                "round 0 was not committed within {REGISTER_TIMEOUT:?}; retry"
            ))));
        }
    }

    /// The registration's push or proposal failed: answer the waiters.
    pub(super) fn on_model_proposed(&mut self, failure: Option<WorkerFailure>) {
        let Some(failure) = failure else {
            return;
        };
        warn!(?failure, "round 0 not proposed");
        if self.external.model.is_none() {
            for waiting in std::mem::take(&mut self.external.waiting) {
                let _ = waiting.reply.send(Err(failure.clone()));
            }
        }
    }

    /// A follower takes a pushed round 0 from any cluster node while no model is registered.
    pub(super) fn takes_model_push(&self, peer: NodeId) -> bool {
        self.external.enabled
            && self.external.model.is_none()
            && (self.workers.contains(&peer) || self.raft.borrow().voters.contains(&peer))
    }

    fn push_targets(&self) -> Vec<NodeId> {
        let mut targets: Vec<NodeId> = self
            .workers
            .iter()
            .copied()
            .filter(|w| *w != self.own)
            .collect();
        for &voter in &self.raft.borrow().voters {
            if voter != self.own && !targets.contains(&voter) {
                targets.push(voter);
            }
        }
        targets
    }

    /// The `Worker` core asked for a gradient: open it as the external worker's job.
    pub(super) fn open_job(&mut self, round: u64, params_hash: StateHash, batch_size: usize) {
        self.external.job = Some((round, params_hash, batch_size));
        let worker_index = self.workers.iter().position(|w| *w == self.own);
        self.status.view.job = worker_index.map(|worker_index| WorkerJob {
            round,
            params_hash,
            worker_index,
            workers: self.workers.len(),
            batch_size,
            seed: self.external.seed,
        });
    }

    fn check_session(&self, worker: u64) -> Result<(), WorkerFailure> {
        if self.external.session == Some(worker) {
            Ok(())
        } else {
            Err(WorkerFailure::UnknownWorker(format!(
                "worker {worker} is not this node's registered worker; register again"
            )))
        }
    }

    fn on_submit(&mut self, gradient: GradientSubmission) -> Result<(), WorkerFailure> {
        self.check_session(gradient.worker)?;
        let Some((round, params_hash, _)) = self.external.job else {
            return Err(WorkerFailure::Stale(format!(
                "no job is open (round {} is done or not announced); wait for the next job",
                gradient.round
            )));
        };
        if gradient.round != round || gradient.params_hash != params_hash {
            return Err(WorkerFailure::Stale(format!(
                "the open job is round {round} at params {params_hash}, this gradient is for round {} at {}",
                gradient.round, gradient.params_hash
            )));
        }
        if gradient.values.len() != self.gradient_len {
            return Err(WorkerFailure::BadRequest(format!(
                "a gradient has {} values, this one {}",
                self.gradient_len,
                gradient.values.len()
            )));
        }
        if let Some(at) = gradient.values.iter().position(|v| !v.is_finite()) {
            return Err(WorkerFailure::BadRequest(format!(
                "gradient value {at} is not finite"
            )));
        }
        if !gradient.loss.is_finite() {
            return Err(WorkerFailure::BadRequest("the loss is not finite".into()));
        }
        self.external.job = None;
        self.status.view.job = None;
        if let Some(worker) = &mut self.worker {
            worker.on_computed(round, params_hash, gradient.loss, gradient.values);
        }
        self.drain_worker();
        Ok(())
    }

    fn on_report(&mut self, report: WorkerReport) -> Result<(), WorkerFailure> {
        self.check_session(report.worker)?;
        if let Some(accuracy) = report.accuracy {
            if !(accuracy.is_finite() && (0.0..=1.0).contains(&accuracy)) {
                return Err(WorkerFailure::BadRequest(
                    "accuracy must be a number in 0..=1".into(),
                ));
            }
            self.event_log.record(EventKind::RoundEvaluated {
                round: report.round,
                accuracy: f64::from(accuracy),
            });
            self.status.view.accuracy = Some(accuracy);
            self.metrics.training_accuracy.set(f64::from(accuracy));
        }
        if let Some(loss) = report.loss {
            if !loss.is_finite() {
                return Err(WorkerFailure::BadRequest("the loss is not finite".into()));
            }
            self.status.view.test_loss = Some(loss);
        }
        self.status.view.evaluated_round = report.round;
        Ok(())
    }
}

fn unavailable(error: ConsensusError) -> WorkerFailure {
    WorkerFailure::Unavailable(format!("{error}; retry"))
}

/// Pushes round 0 to `targets` and returns once a majority of `voters` (this node included)
/// stored it: a committed round 0 then survives any node.
async fn push_model(
    net: &crate::net::Network,
    targets: Vec<NodeId>,
    voters: &[NodeId],
    hash: BlobHash,
    bytes: Vec<u8>,
) -> Result<(), WorkerFailure> {
    let needed = voters.len() / 2;
    let push = to_frame(&TrainingMessage::BlobResponse {
        hash,
        data: Some(bytes),
    });
    let (acks, mut acked) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for peer in targets {
        let (net, push, acks) = (net.clone(), push.clone(), acks.clone());
        let votes = voters.contains(&peer);
        tasks.spawn(async move {
            let stored = match net.request(peer, push).await {
                Ok(answer) => answer.iter().any(|m| stored(m, hash)),
                Err(error) => {
                    debug!(peer = %peer.short(), %error, "round-0 push failed");
                    false
                }
            };
            let _ = acks.send(stored && votes);
        });
    }
    drop(acks);
    let mut count = 0;
    let wait = async {
        while count < needed {
            match acked.recv().await {
                Some(true) => count += 1,
                Some(false) => {}
                None => break,
            }
        }
    };
    let _ = tokio::time::timeout(MODEL_PUSH_TIMEOUT, wait).await;
    if count >= needed {
        Ok(())
    } else {
        Err(WorkerFailure::Unavailable(format!(
            "only {count} of the {needed} other voters needed stored round 0; retry once the cluster is connected"
        )))
    }
}

fn stored(message: &Message, hash: BlobHash) -> bool {
    let Message::Service(frame) = message else {
        return false;
    };
    matches!(
        TrainingMessage::decode(frame.code, &frame.payload, &WireLimits::for_params(0)),
        Ok(TrainingMessage::BlobStored { hash: got }) if got == hash
    )
}
