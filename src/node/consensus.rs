//! The consensus service: one tokio task that drives the sans-IO `raft::Raft` for this node.
//! It ticks Raft on an interval, steps Raft frames from the transport, runs `process_ready`
//! with a `RedbStorage` in the data dir (`raft.redb`), sends Raft's messages to peers with
//! `Network::send_to`, and serves proposals and reads that arrive through a
//! [`ConsensusHandle`]. It is generic over the replicated state machine (a
//! [`Compactable`] `raft::StateMachine`).
//!
//! Compaction (`compaction.rs`): once the applied index is `snapshot_every` entries past the last snapshot, the
//! service stages a snapshot of the state machine ([`Compactable::prepare_snapshot`]); when
//! what it names outside the state is durable and a tail of `snapshot_every / 4` more entries
//! has been applied (kept for slightly lagging followers), it hands the snapshot to
//! `Raft::compact`, which drops the log before it. Followers too far behind then get it as
//! `InstallSnapshot`; a restarted node restores its own stored snapshot.
//!
//! Raft ids are the peers' network fingerprints mapped by [`NodeId::raft_id`]; a frame whose
//! Raft sender is not the fingerprint of the connection it came on is dropped.
//!
//! Owns the Raft task, its redb file and its clock; must not decide what commands mean (that
//! is the state machine's business).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

mod compaction;

pub use self::compaction::Compactable;
use self::compaction::Snapshots;
use crate::events::{EventKind, EventLog};
use crate::net::frame::ServiceFrame;
use crate::net::{Message as Frame, NetEvent, Network};
use crate::node_id::{NodeId, NodeIdError, RaftIds};
use crate::raft::{
    self, Config as RaftConfig, ProposeError, Raft, RaftError, ReadOnlyMode, RedbStorage, Role,
    Storage, StorageError,
};
use crate::views::{ConsensusView, RaftPosition, ReadMode};

/// File name of the Raft log inside the data dir.
pub const RAFT_FILE: &str = "raft.redb";
/// Frame type of an encoded `raft::Message` (the first of the Raft range `0x30..=0x4f`).
pub const RAFT_MESSAGE_FRAME: u8 = 0x30;
/// How long a read or proposal may wait inside the service before it is answered `Timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::config::DEFAULT_SNAPSHOT_EVERY;

/// How the service runs Raft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// The initial voters by fingerprint; empty: this node bootstraps a cluster of one.
    pub voters: Vec<NodeId>,
    /// Wall-clock length of one Raft tick.
    pub tick: Duration,
    /// Election timeout base, in ticks (each wait is drawn from `[t, 2t)`).
    pub election_ticks: u32,
    /// Leader heartbeat interval, in ticks.
    pub heartbeat_ticks: u32,
    /// Ask for pre-votes before starting an election (a node that cannot win does not
    /// disturb the leader with a higher term).
    pub pre_vote: bool,
    /// Compact the log once this many entries were applied after the last snapshot (a tail of
    /// a quarter of it stays in the log); 0: never.
    pub snapshot_every: u64,
}

impl Default for ConsensusConfig {
    fn default() -> ConsensusConfig {
        ConsensusConfig {
            voters: Vec::new(),
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// Errors of the consensus service and of requests to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// A voter's fingerprint has a zero Raft id or shares one with another voter.
    #[error(transparent)]
    Ids(#[from] NodeIdError),
    /// The Raft log store could not be opened, read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The Raft core refused its config or found its recovered state inconsistent.
    #[error(transparent)]
    Raft(#[from] RaftError),
    /// A proposal or read went to a node that is not the leader.
    #[error("this node is not the leader (leader: {leader:?}); send the request to the leader")]
    NotLeader {
        /// The node this one believes leads, if it knows one.
        leader: Option<NodeId>,
    },
    /// The leader refused the proposal (transfer in progress, membership change pending,
    /// invalid change, command too large); holds Raft's reason.
    #[error("proposal refused: {0}")]
    Refused(ProposeError),
    /// The proposed entry was overwritten by another leader's entry at the same index before it
    /// committed.
    #[error("the entry proposed at index {index} was replaced by a new leader; propose it again")]
    Dropped {
        /// The log index the entry had been given.
        index: u64,
    },
    /// A proposal did not commit, or a read was not confirmed, within this long.
    #[error("no answer within {0:?} (no leader, or leadership changed); retry")]
    Timeout(Duration),
    /// The consensus service has shut down, so the request cannot be served.
    #[error("the consensus service has stopped")]
    Stopped,
}

type ReadFn<M> = Box<dyn FnOnce(Result<&M, ConsensusError>) + Send>;

enum Request<M> {
    Propose(Vec<u8>, oneshot::Sender<Result<u64, ConsensusError>>),
    AddVoter(NodeId, oneshot::Sender<Result<u64, ConsensusError>>),
    Read(ReadMode, ReadFn<M>),
    Shutdown,
}

/// Proposals and reads for the consensus service; cheap to clone.
pub struct ConsensusHandle<M> {
    requests: mpsc::Sender<Request<M>>,
    view: watch::Receiver<ConsensusView>,
}

impl<M> std::fmt::Debug for ConsensusHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsensusHandle").finish_non_exhaustive()
    }
}

impl<M> Clone for ConsensusHandle<M> {
    fn clone(&self) -> Self {
        ConsensusHandle {
            requests: self.requests.clone(),
            view: self.view.clone(),
        }
    }
}

impl<M: Send + 'static> ConsensusHandle<M> {
    /// Proposes a command at the leader; resolves with its log index once this node has
    /// applied it (so it is committed), or with why it was not.
    pub async fn propose(&self, command: Vec<u8>) -> Result<u64, ConsensusError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Propose(command, reply)).await?;
        answer.await.map_err(|_| ConsensusError::Stopped)?
    }

    /// Adds `node` as a Raft voter (single-server membership change) at the leader; resolves
    /// with the change's log index once this node has applied it.
    pub async fn add_voter(&self, node: NodeId) -> Result<u64, ConsensusError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::AddVoter(node, reply)).await?;
        answer.await.map_err(|_| ConsensusError::Stopped)?
    }

    /// Runs `read` on the state machine once the read mode allows.
    pub async fn read<R: Send + 'static>(
        &self,
        mode: ReadMode,
        read: impl FnOnce(&M) -> R + Send + 'static,
    ) -> Result<R, ConsensusError> {
        let (reply, answer) = oneshot::channel();
        let read: ReadFn<M> = Box::new(move |machine| {
            let _ = reply.send(machine.map(read));
        });
        self.send(Request::Read(mode, read)).await?;
        answer.await.map_err(|_| ConsensusError::Stopped)?
    }

    /// The consensus service's latest view of Raft.
    pub fn view(&self) -> ConsensusView {
        self.view.borrow().clone()
    }

    /// The view as it changes (role, term, leader, commit index).
    pub fn watch(&self) -> watch::Receiver<ConsensusView> {
        self.view.clone()
    }

    pub(crate) async fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown).await;
    }

    async fn send(&self, request: Request<M>) -> Result<(), ConsensusError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| ConsensusError::Stopped)
    }
}

struct PendingProposal {
    term: u64,
    reply: oneshot::Sender<Result<u64, ConsensusError>>,
    since: Instant,
}

struct PendingRead<M> {
    read: ReadFn<M>,
    since: Instant,
}

struct Service<M, S> {
    raft: Raft,
    storage: S,
    machine: M,
    net: Network,
    ids: RaftIds,
    view: watch::Sender<ConsensusView>,
    proposals: BTreeMap<u64, PendingProposal>,
    /// Reads waiting for Raft to confirm them, by request id.
    confirming: BTreeMap<u64, PendingRead<M>>,
    /// Confirmed reads waiting for this node to apply their index.
    applying: Vec<(u64, PendingRead<M>)>,
    next_read: u64,
    /// The event log, and the role, term and commit index it last recorded.
    event_log: EventLog,
    logged: (Role, u64, u64),
    snapshots: Snapshots,
}

/// The consensus service's task; it ends when the service stops or fails.
pub type ConsensusTask = tokio::task::JoinHandle<Result<(), ConsensusError>>;

/// Opens `raft.redb` in `data_dir`, builds Raft for `own` and spawns the service task, which
/// publishes its view on `view`. `events` are the transport's Raft-range events
/// (`Network::subscribe(Service::Raft)`).
pub fn start<M>(
    own: NodeId,
    config: &ConsensusConfig,
    data_dir: &Path,
    machine: M,
    net: Network,
    events: mpsc::Receiver<NetEvent>,
    view: watch::Sender<ConsensusView>,
) -> Result<(ConsensusHandle<M>, ConsensusTask), ConsensusError>
where
    M: Compactable + Send + 'static,
{
    let voters = if config.voters.is_empty() {
        vec![own]
    } else {
        config.voters.clone()
    };
    let mut ids = RaftIds::new(voters.iter().copied())?;
    let id = ids.insert(own)?;
    let storage = RedbStorage::open(data_dir.join(RAFT_FILE))?;
    let recovered = storage.recover()?;
    let mut raft_config = RaftConfig::new(id, voters.iter().filter_map(NodeId::raft_id).collect());
    raft_config.election_ticks = config.election_ticks;
    raft_config.heartbeat_ticks = config.heartbeat_ticks;
    raft_config.pre_vote = config.pre_vote;
    raft_config.seed = rand::random();
    // A stored snapshot comes back in Raft's first `Ready` (restoring `machine`), and the
    // committed entries after it are applied again: the state machine lives in memory.
    let recovered_at = recovered.snapshot.meta.index;
    let raft = Raft::new(raft_config, recovered)?;
    info!(
        raft_id = format_args!("{id:#018x}"),
        voters = voters.len(),
        term = raft.term(),
        commit = raft.commit_index(),
        "consensus started"
    );
    let view_rx = view.subscribe();
    let (requests, requests_rx) = mpsc::channel(1024);
    let event_log = net.event_log();
    let mut service = Service {
        raft,
        storage,
        machine,
        net,
        ids,
        view,
        proposals: BTreeMap::new(),
        confirming: BTreeMap::new(),
        applying: Vec::new(),
        next_read: 1,
        event_log,
        logged: (Role::Follower, 0, 0),
        snapshots: Snapshots::new(config.snapshot_every, recovered_at),
    };
    service.publish();
    let tick = config.tick;
    let task = tokio::spawn(async move { service.run(tick, events, requests_rx).await });
    Ok((
        ConsensusHandle {
            requests,
            view: view_rx,
        },
        task,
    ))
}

impl<M: Compactable, S: Storage> Service<M, S> {
    async fn run(
        &mut self,
        tick: Duration,
        mut events: mpsc::Receiver<NetEvent>,
        mut requests: mpsc::Receiver<Request<M>>,
    ) -> Result<(), ConsensusError> {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.raft.tick();
                    self.expire();
                }
                Some(event) = events.recv() => self.on_net(event),
                request = requests.recv() => match request {
                    Some(Request::Shutdown) | None => break,
                    Some(request) => self.on_request(request),
                },
            }
            if let Err(error) = self.drive() {
                warn!(%error, "consensus stopped");
                self.fail_all();
                return Err(error);
            }
        }
        self.fail_all();
        info!("consensus stopped");
        Ok(())
    }

    fn on_net(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected { peer, .. } => {
                if let Err(error) = self.ids.insert(peer) {
                    warn!(%error, "peer cannot take part in consensus");
                }
            }
            NetEvent::Frame { peer, frame } if frame.code == RAFT_MESSAGE_FRAME => {
                self.on_raft_frame(peer, &frame)
            }
            NetEvent::Frame { peer, frame } => {
                debug!(peer = %peer.short(), code = frame.code, "unknown Raft-range frame dropped")
            }
            _ => {}
        }
    }

    fn on_raft_frame(&mut self, peer: NodeId, frame: &ServiceFrame) {
        let message = match raft::Message::decode(&frame.payload) {
            Ok(message) => message,
            Err(error) => {
                warn!(peer = %peer.short(), %error, "undecodable Raft message dropped");
                return;
            }
        };
        if self.ids.node(message.from) != Some(peer) {
            warn!(
                peer = %peer.short(),
                claimed = format_args!("{:#018x}", message.from),
                "Raft message whose sender is not the connection's peer dropped"
            );
            return;
        }
        if let Err(error) = self.raft.step(message) {
            debug!(peer = %peer.short(), %error, "Raft message refused");
        }
    }

    /// Answers `reply` once the entry proposed at `index` in this term is applied (or lost).
    fn await_commit(&mut self, index: u64, reply: oneshot::Sender<Result<u64, ConsensusError>>) {
        let pending = PendingProposal {
            term: self.raft.term(),
            reply,
            since: Instant::now(),
        };
        self.proposals.insert(index, pending);
    }

    fn on_request(&mut self, request: Request<M>) {
        match request {
            Request::Propose(command, reply) => match self.raft.propose(command) {
                Ok(index) => self.await_commit(index, reply),
                Err(error) => {
                    let _ = reply.send(Err(self.propose_error(error)));
                }
            },
            Request::AddVoter(node, reply) => {
                let proposed = match self.ids.insert(node) {
                    Ok(id) => self
                        .raft
                        .propose_conf_change(raft::ConfChange::AddVoter(id))
                        .map_err(|error| self.propose_error(error)),
                    Err(error) => Err(ConsensusError::Ids(error)),
                };
                match proposed {
                    Ok(index) => {
                        info!(node = %node.short(), index, "adding a voter");
                        self.await_commit(index, reply);
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            Request::Read(ReadMode::Local, read) => read(Ok(&self.machine)),
            Request::Read(requested, read) => {
                let request = self.next_read;
                self.next_read += 1;
                let mode = match requested {
                    ReadMode::Lease => ReadOnlyMode::LeaseBased,
                    _ => ReadOnlyMode::Safe,
                };
                match self.raft.read_index_with(request, mode) {
                    Ok(()) => {
                        let pending = PendingRead {
                            read,
                            since: Instant::now(),
                        };
                        self.confirming.insert(request, pending);
                    }
                    Err(error) => read(Err(self.propose_error(error))),
                }
            }
            Request::Shutdown => {}
        }
    }

    fn propose_error(&self, error: ProposeError) -> ConsensusError {
        match error {
            ProposeError::NotLeader { leader } => ConsensusError::NotLeader {
                leader: leader.and_then(|id| self.ids.node(id)),
            },
            other => ConsensusError::Refused(other),
        }
    }

    /// Persist, send, apply, advance; compact when due; then answer what became answerable.
    fn drive(&mut self) -> Result<(), ConsensusError> {
        let mut reads = self.process_ready()?;
        if self.compact_if_due()? {
            reads.extend(self.process_ready()?);
        }
        self.log_changes();
        for confirmed in reads {
            if let Some(pending) = self.confirming.remove(&confirmed.request) {
                self.applying.push((confirmed.index, pending));
            }
        }
        let applied = self.raft.applied_index();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.applying)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.applying = waiting;
        for (_, pending) in ready {
            (pending.read)(Ok(&self.machine));
        }
        while let Some(entry) = self.proposals.first_entry() {
            let index = *entry.key();
            if index > applied {
                break;
            }
            let pending = entry.remove();
            let kept = self
                .raft
                .entry_term(index)
                .is_none_or(|t| t == pending.term);
            let result = if kept {
                Ok(index)
            } else {
                Err(ConsensusError::Dropped { index })
            };
            let _ = pending.reply.send(result);
        }
        self.publish();
        Ok(())
    }

    /// Answers requests that waited too long (a read Raft silently dropped on a leader change).
    fn expire(&mut self) {
        let old = |since: &Instant| since.elapsed() > REQUEST_TIMEOUT;
        let expired: Vec<u64> = self
            .confirming
            .iter()
            .filter(|(_, p)| old(&p.since))
            .map(|(r, _)| *r)
            .collect();
        for request in expired {
            if let Some(pending) = self.confirming.remove(&request) {
                (pending.read)(Err(ConsensusError::Timeout(REQUEST_TIMEOUT)));
            }
        }
        let expired: Vec<u64> = self
            .proposals
            .iter()
            .filter(|(_, p)| old(&p.since))
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            if let Some(pending) = self.proposals.remove(&index) {
                let _ = pending
                    .reply
                    .send(Err(ConsensusError::Timeout(REQUEST_TIMEOUT)));
            }
        }
    }

    fn fail_all(&mut self) {
        for (_, pending) in std::mem::take(&mut self.proposals) {
            let _ = pending.reply.send(Err(ConsensusError::Stopped));
        }
        for (_, pending) in std::mem::take(&mut self.confirming) {
            (pending.read)(Err(ConsensusError::Stopped));
        }
        for (_, pending) in std::mem::take(&mut self.applying) {
            (pending.read)(Err(ConsensusError::Stopped));
        }
    }

    /// Records role or term changes and commit advances in the event log.
    fn log_changes(&mut self) {
        let (role, term, commit) = (self.raft.role(), self.raft.term(), self.raft.commit_index());
        let (logged_role, logged_term, logged_commit) = self.logged;
        if role != logged_role || term != logged_term {
            self.event_log.record(EventKind::RaftRole {
                role: role.name().replace('-', "_"),
                term,
            });
        }
        if commit > logged_commit {
            self.event_log.record(EventKind::RaftCommit {
                index: commit,
                term: self.raft.entry_term(commit).unwrap_or(term),
            });
        }
        self.logged = (role, term, commit.max(logged_commit));
    }

    fn publish(&mut self) {
        let view = ConsensusView {
            position: RaftPosition {
                role: self.raft.role(),
                term: self.raft.term(),
                leader: self.raft.leader().and_then(|id| self.ids.node(id)),
            },
            commit_index: self.raft.commit_index(),
            applied_index: self.raft.applied_index(),
            voters: self
                .raft
                .voters()
                .into_iter()
                .filter_map(|id| self.ids.node(id))
                .collect(),
            snapshot_index: self.raft.snapshot_index(),
            log_entries: self.raft.last_index() - self.raft.snapshot_index(),
            snapshots_installed: self.snapshots.installed,
            snapshots_taken: self.snapshots.taken,
        };
        self.view.send_if_modified(|current| {
            let changed = *current != view;
            *current = view;
            changed
        });
    }
}

/// Sends one Raft message to the peer its `to` names; a peer that is not connected misses it
/// (Raft retransmits). A vote answer is recorded in the event log.
fn send(net: &Network, ids: &RaftIds, event_log: &EventLog, message: raft::Message) {
    let Some(peer) = ids.node(message.to) else {
        debug!(
            to = format_args!("{:#018x}", message.to),
            "no peer for Raft id"
        );
        return;
    };
    if let raft::MessageBody::VoteResponse { reject } = message.body {
        event_log.record(EventKind::RaftVote {
            candidate: peer.short(),
            term: message.term,
            granted: !reject,
        });
    }
    let frame = Frame::Service(ServiceFrame {
        code: RAFT_MESSAGE_FRAME,
        payload: message.encode(),
    });
    if let Err(error) = net.send_to(peer, &frame) {
        debug!(peer = %peer.short(), %error, "Raft message not sent");
    }
}
