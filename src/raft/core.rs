//! The `Raft` node: configuration, roles, the event entry points (`tick`, `step`, `propose`)
//! and the `Ready`/`advance` hand-off to the driver. Election, replication, reads and
//! membership rules live in their own files; nothing here does I/O or reads a clock.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::log::RaftLog;
use super::message::{MAX_ENTRY_BYTES, Message, MessageBody};
use super::read_index::ReadQueue;
use super::replication::Progress;
use super::storage::{PersistBatch, RecoveredState};
use super::types::{Entry, EntryKind, HardState, RaftId, Snapshot};
use super::{ProposeError, RaftError};

/// How linearizable reads are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyMode {
    /// ReadIndex: one heartbeat round acknowledged by a quorum per batch of reads.
    Safe,
    /// Leader lease: served from the commit index while a quorum answered within the election
    /// timeout. Requires `check_quorum` (followers then refuse votes while they hear a leader).
    LeaseBased,
}

/// Static settings of one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node.
    pub id: RaftId,
    /// The voters when storage holds no snapshot (a new cluster); ignored otherwise.
    pub initial_voters: Vec<RaftId>,
    /// Base election timeout in ticks; each wait is drawn from `[t, 2t)`.
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks (less than `election_ticks`).
    pub heartbeat_ticks: u32,
    /// Ask for pre-votes before disturbing the cluster with a new term.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum for an election timeout steps down.
    pub check_quorum: bool,
    /// How reads are confirmed.
    pub read_only: ReadOnlyMode,
    /// Most entries per append message.
    pub max_entries_per_message: usize,
    /// Seed of the election-timeout RNG (the simulator passes its own; production: random).
    pub seed: u64,
    /// Always wait exactly `election_ticks` (the simulator's exhaustive model check).
    pub(crate) fixed_election_timeout: bool,
    /// Mutation (unit tests only): commit entries of earlier terms by counting replicas.
    #[cfg(test)]
    pub unsafe_disable_figure8_rule: bool,
    /// Mutation (unit tests only): never write the vote to storage.
    #[cfg(test)]
    pub unsafe_skip_vote_persistence: bool,
}

impl Config {
    /// Defaults for node `id` in a cluster of `voters`: election 10 ticks, heartbeat 2, pre-vote
    /// and check-quorum on, ReadIndex reads.
    pub fn new(id: RaftId, voters: Vec<RaftId>) -> Self {
        Config {
            id,
            initial_voters: voters,
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            read_only: ReadOnlyMode::Safe,
            max_entries_per_message: 1024,
            seed: id,
            fixed_election_timeout: false,
            #[cfg(test)]
            unsafe_disable_figure8_rule: false,
            #[cfg(test)]
            unsafe_skip_vote_persistence: false,
        }
    }

    /// The Figure 8 commit rule is off (a mutation the unit tests switch on to see the
    /// checker catch it); always false outside `cargo test`.
    pub(crate) fn figure8_rule_disabled(&self) -> bool {
        #[cfg(test)]
        return self.unsafe_disable_figure8_rule;
        #[cfg(not(test))]
        false
    }

    /// Votes are not persisted (a unit-test mutation); always false outside `cargo test`.
    fn vote_persistence_skipped(&self) -> bool {
        #[cfg(test)]
        return self.unsafe_skip_vote_persistence;
        #[cfg(not(test))]
        false
    }

    fn validate(&self) -> Result<(), RaftError> {
        let bad = |m: &str| Err(RaftError::Config(m.to_string()));
        if self.id == 0 {
            return bad("id must not be 0 (0 means \"nobody\")");
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return bad("need 0 < heartbeat_ticks < election_ticks");
        }
        if self.read_only == ReadOnlyMode::LeaseBased && !self.check_quorum {
            return bad("read_only = LeaseBased requires check_quorum = true");
        }
        if self.max_entries_per_message == 0 {
            return bad("max_entries_per_message must be at least 1");
        }
        Ok(())
    }
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes; its term is unchanged.
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

impl Role {
    /// The role's name: `follower`, `pre-candidate`, `candidate` or `leader`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// A confirmed linearizable read: serve `request` once the state machine has applied `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's request id.
    pub request: u64,
    /// Apply at least this far before reading.
    pub index: u64,
}

/// Work for the driver: persist, then send, then apply, then [`Raft::advance`].
#[derive(Debug, Default)]
pub struct Ready {
    /// Write this durably first ([`super::Storage::persist`]).
    pub persist: PersistBatch,
    /// Then send these.
    pub messages: Vec<Message>,
    /// Then restore the state machine from this snapshot (installed from the leader, or the
    /// recovered one after a restart)…
    pub snapshot: Option<Snapshot>,
    /// …and apply these committed entries in order.
    pub committed_entries: Vec<Entry>,
    /// Reads to serve once their index is applied.
    pub read_states: Vec<ReadState>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.messages.is_empty()
            && self.snapshot.is_none()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
    }
}

/// One Raft node. See the module documentation for the driver's calling order.
#[derive(Debug, Clone)]
pub struct Raft {
    pub(crate) cfg: Config,
    pub(crate) id: RaftId,
    pub(crate) term: u64,
    pub(crate) vote: RaftId,
    pub(crate) role: Role,
    pub(crate) leader: Option<RaftId>,
    pub(crate) log: RaftLog,
    pub(crate) voters: BTreeSet<RaftId>,
    /// Votes (or pre-votes) received in the current campaign: voter → granted.
    pub(crate) votes: BTreeMap<RaftId, bool>,
    pub(crate) progress: BTreeMap<RaftId, Progress>,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) randomized_timeout: u32,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) transfer_target: Option<RaftId>,
    pub(crate) transfer_elapsed: u32,
    /// Index of the latest membership change in the log (0: none since the snapshot).
    pub(crate) pending_conf_index: u64,
    pub(crate) reads: ReadQueue,
    pub(crate) msgs: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) pending_snapshot: Option<Snapshot>,
    pub(crate) persist_snapshot: Option<(Snapshot, bool)>,
    pub(crate) persisted_hard_state: HardState,
    pub(crate) awaiting_advance: bool,
    /// Ticks since this node started (the leader's clock for leases).
    pub(crate) ticks: u64,
    /// Set at start: until an election timeout passes, act as if a leader was just heard.
    pub(crate) boot_guard: bool,
}

impl Raft {
    /// Builds a node from its configuration and what storage recovered.
    pub fn new(cfg: Config, state: RecoveredState) -> Result<Raft, RaftError> {
        cfg.validate()?;
        let RecoveredState {
            hard_state,
            snapshot,
            entries,
        } = state;
        for (expected, e) in (snapshot.meta.index + 1..).zip(entries.iter()) {
            if e.index != expected {
                return Err(RaftError::InconsistentRecovery(format!(
                    "entry {} found where {expected} was expected",
                    e.index
                )));
            }
        }
        let mut log = RaftLog::new(snapshot.clone(), entries, hard_state.commit);
        if hard_state.commit > log.last_index() || hard_state.commit < log.snapshot_index() {
            return Err(RaftError::InconsistentRecovery(format!(
                "commit index {} outside the stored log {}..={}",
                hard_state.commit,
                log.snapshot_index(),
                log.last_index()
            )));
        }
        log.committed = hard_state.commit.max(log.snapshot_index());
        let voters: BTreeSet<RaftId> =
            if snapshot.meta.index > 0 || !snapshot.meta.voters.is_empty() {
                snapshot.meta.voters.iter().copied().collect()
            } else {
                cfg.initial_voters.iter().copied().collect()
            };
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ cfg.id.rotate_left(32));
        let mut raft = Raft {
            id: cfg.id,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            voters,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: cfg.election_ticks,
            rng,
            transfer_target: None,
            transfer_elapsed: 0,
            pending_conf_index: 0,
            reads: ReadQueue::default(),
            msgs: Vec::new(),
            read_states: Vec::new(),
            pending_snapshot: (snapshot.meta.index > 0).then_some(snapshot),
            persist_snapshot: None,
            persisted_hard_state: hard_state,
            awaiting_advance: false,
            ticks: 0,
            // A restarted node may have acknowledged a leader just before crashing.
            boot_guard: hard_state.term > 0,
            cfg,
        };
        raft.replay_conf_changes();
        raft.reset_election_timer();
        Ok(raft)
    }

    /// This node's id.
    pub fn id(&self) -> RaftId {
        self.id
    }
    /// Current term.
    pub fn term(&self) -> u64 {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The leader this node knows of in the current term.
    pub fn leader(&self) -> Option<RaftId> {
        self.leader
    }
    /// Commit index.
    pub fn commit_index(&self) -> u64 {
        self.log.committed
    }
    /// Highest index handed to the application.
    pub fn applied_index(&self) -> u64 {
        self.log.applied
    }
    /// Last log index.
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }
    /// Index of the latest snapshot (entries up to it are compacted).
    pub fn snapshot_index(&self) -> u64 {
        self.log.snapshot_index()
    }
    /// The current voters, sorted.
    pub fn voters(&self) -> Vec<RaftId> {
        self.voters.iter().copied().collect()
    }
    /// The current hard state.
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }
    /// Term of the entry at `index`, if held.
    pub fn entry_term(&self, index: u64) -> Option<u64> {
        self.log.term(index)
    }
    /// The held entry at `index`.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.log.entry(index)
    }
    /// The snapshot the log starts after.
    pub fn snapshot(&self) -> &Snapshot {
        &self.log.snapshot
    }

    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub(crate) fn send(&mut self, to: RaftId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.id,
            to,
            term: self.term,
            body,
        });
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let t = self.cfg.election_ticks;
        self.randomized_timeout = if self.cfg.fixed_election_timeout {
            t
        } else {
            self.rng.random_range(t..2 * t)
        };
    }

    /// Becomes a follower of `term` (a new term clears the vote).
    pub(crate) fn become_follower(&mut self, term: u64, leader: Option<RaftId>) {
        if term > self.term {
            self.term = term;
            self.vote = 0;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.transfer_target = None;
        self.reads.clear();
        self.reset_election_timer();
    }

    /// Advances the logical clock by one tick: may start an election, send heartbeats, check
    /// the quorum or abort a stalled leadership transfer.
    pub fn tick(&mut self) {
        self.ticks += 1;
        if self.election_elapsed + 1 >= self.cfg.election_ticks {
            self.boot_guard = false;
        }
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => {
                self.election_elapsed += 1;
                if self.election_elapsed >= self.randomized_timeout
                    && self.voters.contains(&self.id)
                {
                    self.start_election(false);
                }
            }
        }
    }

    /// Handles one message addressed to this node. Messages for other nodes, from older terms
    /// or from non-members are dropped (a stale leader is told the newer term).
    pub fn step(&mut self, msg: Message) -> Result<(), RaftError> {
        if msg.to != self.id || msg.from == 0 {
            return Err(RaftError::BadMessage {
                from: msg.from,
                reason: format!("addressed to node {} but this is node {}", msg.to, self.id),
            });
        }
        if !self.step_term(&msg) {
            return Ok(());
        }
        match msg.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.handle_vote_request(msg),
            MessageBody::PreVoteResponse { reject } => {
                if self.role == Role::PreCandidate
                    && (msg.term == self.term.saturating_add(1) || reject)
                {
                    self.tally(msg.from, !reject);
                }
            }
            MessageBody::VoteResponse { reject } => {
                if self.role == Role::Candidate {
                    self.tally(msg.from, !reject);
                }
            }
            MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. } => {
                self.follow(msg.from);
                self.handle_append(msg)?;
            }
            MessageBody::AppendResponse {
                reject,
                index,
                read_round,
            } => {
                self.handle_append_response(msg.from, reject, index, read_round);
            }
            MessageBody::TimeoutNow => {
                if self.voters.contains(&self.id) {
                    self.start_election(true);
                }
            }
            MessageBody::ReadIndex { request } => self.handle_forwarded_read(msg.from, request),
            MessageBody::ReadIndexResponse { request, index } => {
                self.read_states.push(ReadState { request, index });
            }
        }
        Ok(())
    }

    fn follow(&mut self, leader: RaftId) {
        if self.role != Role::Follower || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        } else {
            self.election_elapsed = 0;
        }
    }

    /// Appends a client command if this node leads; returns its log index.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<u64, ProposeError> {
        if data.len() > MAX_ENTRY_BYTES {
            return Err(ProposeError::TooLarge {
                size: data.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        self.append_as_leader(EntryKind::Normal, data)
    }

    pub(crate) fn append_as_leader(
        &mut self,
        kind: EntryKind,
        data: Vec<u8>,
    ) -> Result<u64, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(target) = self.transfer_target {
            return Err(ProposeError::TransferInProgress(target));
        }
        let index = self.log.last_index() + 1;
        self.log.push(Entry {
            index,
            term: self.term,
            kind,
            data,
        });
        if let Some(p) = self.progress.get_mut(&self.id) {
            p.match_index = index;
            p.next_index = index + 1;
        }
        self.maybe_commit();
        self.broadcast_append();
        Ok(index)
    }

    /// Takes the state machine's snapshot covering entries up to `index` (≤ applied) and drops
    /// those entries from the log.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), RaftError> {
        if index <= self.log.snapshot_index() {
            return Ok(());
        }
        if index > self.log.applied {
            return Err(RaftError::Config(format!(
                "cannot snapshot at {index}: only {} is applied",
                self.log.applied
            )));
        }
        let term = self.log.term(index).unwrap_or_default();
        let voters = self.voters_at(index);
        let snapshot = Snapshot {
            meta: super::SnapshotMeta {
                index,
                term,
                voters,
            },
            data,
        };
        self.log.compact(snapshot.clone());
        self.persist_snapshot = Some((snapshot, false));
        Ok(())
    }

    /// True when [`Raft::ready`] has work.
    pub fn has_ready(&self) -> bool {
        !self.awaiting_advance
            && (self.log.has_unstable()
                || self.hard_state() != self.persisted_hard_state
                || !self.msgs.is_empty()
                || self.pending_snapshot.is_some()
                || self.persist_snapshot.is_some()
                || !self.read_states.is_empty()
                || self.log.committed > self.log.applied)
    }

    /// What the driver must do now: persist, then send, then apply; then call
    /// [`Raft::advance`]. `None` when idle or while a previous `Ready` awaits `advance`.
    #[must_use = "a Ready must be persisted, sent and applied, then `advance` called"]
    pub fn ready(&mut self) -> Option<Ready> {
        if !self.has_ready() {
            return None;
        }
        let hard_state = self.hard_state();
        let mut persist = PersistBatch::default();
        if hard_state != self.persisted_hard_state {
            let mut written = hard_state;
            if self.cfg.vote_persistence_skipped() {
                written.vote = self.persisted_hard_state.vote;
                if written.term != self.persisted_hard_state.term {
                    written.vote = 0;
                }
            }
            persist.hard_state = Some(written);
            self.persisted_hard_state = hard_state;
        }
        if let Some((snapshot, replaces_log)) = self.persist_snapshot.take() {
            persist.snapshot = Some(snapshot);
            persist.discard_log = replaces_log;
        }
        persist.entries = self.log.take_unstable();
        let snapshot = self.pending_snapshot.take();
        let upto = self.log.committed.min(self.log.last_index());
        let committed_entries = self.log.slice(self.log.applied + 1, upto, usize::MAX);
        if let Some(last) = committed_entries.last() {
            self.log.applied = last.index;
        }
        self.awaiting_advance = true;
        Some(Ready {
            persist,
            messages: std::mem::take(&mut self.msgs),
            snapshot,
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
        })
    }

    /// Tells the core the last [`Ready`] was persisted, sent and applied.
    pub fn advance(&mut self) {
        self.awaiting_advance = false;
    }

    /// Test hook (feature `testing`): the election timeout fires now (pre-vote first if
    /// configured).
    #[cfg(any(test, feature = "testing"))]
    pub fn campaign_now(&mut self) {
        if self.role != Role::Leader && self.voters.contains(&self.id) {
            self.start_election(false);
        }
    }

    /// Hashes the protocol state (not the RNG) for the model checker's dedup.
    pub(crate) fn fingerprint<H: std::hash::Hasher>(&self, h: &mut H) {
        use std::hash::Hash;
        (
            self.term,
            self.vote,
            self.role,
            self.leader,
            &self.log.entries,
            &self.log.snapshot,
        )
            .hash(h);
        (
            self.log.committed,
            &self.voters,
            &self.votes,
            &self.progress,
        )
            .hash(h);
        (
            self.election_elapsed,
            self.heartbeat_elapsed,
            self.randomized_timeout,
        )
            .hash(h);
        (
            self.transfer_target,
            self.transfer_elapsed,
            self.pending_conf_index,
            &self.reads,
        )
            .hash(h);
    }

    /// The lowest log index changed since the last call (the simulator's checker).
    #[must_use = "the change is reported once; a dropped index is lost"]
    pub(crate) fn take_log_changed_from(&mut self) -> Option<u64> {
        self.log.changed_from.take()
    }
}
