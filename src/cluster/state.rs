//! `ClusterState`: the replicated state machine every node applies committed commands to —
//! the gap-free round log (a window of the latest rounds), the config store and the client
//! sessions that make a retried request apply once. Implements `raft::StateMachine`; its
//! snapshot is a versioned encoding of all of it (parameters are a blob named by the last
//! round's hash, never part of the snapshot). Deterministic: the same commands in the same
//! order give every node the same state and the same `Applied` events. No I/O.
//!
//! The glue calls `raft::process_ready(raft, storage, &mut state, send)` and then drains
//! `take_applied()` to answer clients, step its trainer and publish status.

use std::collections::{BTreeMap, VecDeque};

use crate::codec::{Decode, DecodeError, Reader, Writer};
use crate::node_id::NodeId;
use crate::raft::{Snapshot, StateMachine};
use crate::train::StateHash;

use super::ClusterError;
use super::command::{Command, MAX_VALUE_BYTES, ModelRegistered, RequestId, RoundCommitted};
use super::config_store::{ConfigStore, TrainingConfig};

const MAGIC: &[u8; 4] = b"HGCS";
/// The snapshot format version `snapshot` writes and `restore` accepts.
pub const SNAPSHOT_VERSION: u16 = 2;
/// Rounds the state keeps (older ones are dropped from memory and snapshots).
pub const ROUND_LOG_WINDOW: usize = 65_536;
/// Client sessions kept for retry detection (the least recently used is dropped).
pub const MAX_SESSIONS: usize = 4096;
/// Applied events kept until the glue drains them (the oldest are dropped and counted).
pub const MAX_PENDING_APPLIED: usize = 65_536;

/// Why a committed `RoundCommitted` did not enter the round log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoundRefusal {
    /// The round is already in the log (a re-proposal by a new leader, a duplicate).
    AlreadyApplied,
    /// The round is past the next one: the log would have a gap.
    Gap {
        /// The round the log needs next (the last committed round + 1).
        expected: u64,
    },
    /// The round did not start from the last committed params hash.
    ParentMismatch,
}

/// Which model the round log trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSlot {
    /// The built-in model, whose round 0 every node derives from the seed.
    Builtin,
    /// An external model no worker has registered yet: no round can start.
    Awaiting,
    /// An external model whose round 0 (`genesis`) was committed.
    Registered {
        /// SHA-256 of the layout.
        layout_hash: [u8; 32],
        /// Values in the parameter vector.
        params: u64,
    },
}

/// What a config write did; kept per client session so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The value was written.
    Written,
    /// A compare-and-set found another value (`None`: the key was unset).
    CasFailed {
        /// The value the key held.
        current: Option<String>,
    },
    /// The key or value did not validate (the message names the key and the reason).
    Refused {
        /// The validation error's message.
        reason: String,
    },
    /// The request is older than the client's latest applied one; nothing was done.
    Superseded,
}

/// One thing `apply`/`restore` did, for the glue to act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Applied {
    /// A round joined the log: step to `round.params_hash` (fetch the reduced gradient or the
    /// params by hash if needed) before computing the next round.
    Round {
        /// The log index of the command.
        index: u64,
        /// The committed round as the log keeps it.
        round: RoundCommitted,
    },
    /// A round command was refused (and counted); nothing changed.
    RoundRefused {
        /// The log index of the command.
        index: u64,
        /// The round number the command named.
        round: u64,
        /// Why it was refused.
        reason: RoundRefusal,
    },
    /// A config command: answer the client that sent `request`. `retry` when it was applied
    /// before (the outcome is the first application's).
    Config {
        /// The log index of the command.
        index: u64,
        /// The client request the command carried.
        request: RequestId,
        /// What the write did (for a retry: what its first application did).
        outcome: ConfigOutcome,
        /// Whether the request had been applied before (or superseded by a later one).
        retry: bool,
    },
    /// A log entry that is not a command this version knows (counted, skipped).
    Undecodable {
        /// The log index of the entry.
        index: u64,
        /// Why the entry did not decode.
        error: DecodeError,
    },
    /// An external model's round 0 was committed: load the training state `params_hash` (a
    /// blob of that name) before the first round.
    ModelRegistered {
        /// The log index of the command.
        index: u64,
        /// The command as committed.
        model: ModelRegistered,
    },
    /// A registration came after the model was registered (or on a built-in model): nothing
    /// changed; the registering node compares its layout with the registered one.
    ModelRefused {
        /// The log index of the command.
        index: u64,
        /// The command as committed.
        model: ModelRegistered,
    },
    /// A snapshot replaced the state: load the params named by `params_hash`.
    Restored {
        /// The last log index the snapshot covers; applying resumes after it.
        index: u64,
        /// The last committed round in the snapshot (0: none).
        round: u64,
        /// Hash of the params after that round (the initial params' when `round` is 0).
        params_hash: StateHash,
    },
}

/// Counts of what was refused or skipped (for `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateCounters {
    /// Round commands refused with `RoundRefusal::AlreadyApplied`.
    pub rounds_already_applied: u64,
    /// Round commands refused with `RoundRefusal::Gap`.
    pub rounds_with_gap: u64,
    /// Round commands refused with `RoundRefusal::ParentMismatch`.
    pub rounds_parent_mismatch: u64,
    /// Log entries that did not decode as a command and were skipped.
    pub undecodable_entries: u64,
    /// Config requests at or below their client's last applied `seq` (retries and superseded
    /// requests), answered without applying.
    pub retried_requests: u64,
    /// Entries handed to `apply` at or below the last applied index, skipped.
    pub stale_entries: u64,
    /// `Applied` events dropped because `MAX_PENDING_APPLIED` were waiting undrained.
    pub applied_events_dropped: u64,
}

/// What `/status` shows of the round log.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundStatus {
    /// Last committed round (0 before the first).
    pub round: u64,
    /// Its loss.
    pub last_loss: Option<f32>,
    /// Hash of the params after it (the initial params' before the first).
    pub params_hash: StateHash,
    /// Its contributors.
    pub contributors: Vec<NodeId>,
    /// Last applied log index.
    pub last_applied: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Session {
    seq: u64,
    index: u64,
    outcome: ConfigOutcome,
}

/// The replicated state machine of a training cluster.
#[derive(Debug, Clone)]
pub struct ClusterState {
    genesis: StateHash,
    model: ModelSlot,
    last_applied: u64,
    rounds: VecDeque<RoundCommitted>,
    config: ConfigStore,
    sessions: BTreeMap<u64, Session>,
    counters: StateCounters,
    pending: VecDeque<Applied>,
}

impl ClusterState {
    /// A state before any command: round 0 at the `genesis` params (every node derives the
    /// same initial params from the seed) and the node's configured training defaults.
    pub fn new(genesis: StateHash, config: TrainingConfig) -> ClusterState {
        ClusterState {
            genesis,
            model: ModelSlot::Builtin,
            last_applied: 0,
            rounds: VecDeque::new(),
            config: ConfigStore::new(config),
            sessions: BTreeMap::new(),
            counters: StateCounters::default(),
            pending: VecDeque::new(),
        }
    }

    /// A state for an external model: no round starts before a `ModelRegistered` commits.
    pub fn awaiting_model(config: TrainingConfig) -> ClusterState {
        ClusterState {
            model: ModelSlot::Awaiting,
            ..ClusterState::new(StateHash([0; 32]), config)
        }
    }

    /// Which model the log trains.
    pub fn model(&self) -> ModelSlot {
        self.model
    }

    /// Whether rounds can start (the model's round 0 is known).
    pub fn model_ready(&self) -> bool {
        self.model != ModelSlot::Awaiting
    }

    /// Last committed round (0 before the first).
    pub fn round(&self) -> u64 {
        self.rounds.back().map_or(0, |r| r.round)
    }

    /// The params hash after the last committed round (the genesis hash before the first).
    pub fn params_hash(&self) -> StateHash {
        self.rounds.back().map_or(self.genesis, |r| r.params_hash)
    }

    /// Last applied log index.
    pub fn last_applied(&self) -> u64 {
        self.last_applied
    }

    /// The config store (linearizable reads are served from it once the read index is applied).
    pub fn config(&self) -> &ConfigStore {
        &self.config
    }

    /// The kept window of the round log, oldest first.
    pub fn rounds(&self) -> impl Iterator<Item = &RoundCommitted> {
        self.rounds.iter()
    }

    /// A committed round, if still in the window.
    pub fn committed(&self, round: u64) -> Option<&RoundCommitted> {
        let first = self.rounds.front()?.round;
        self.rounds
            .get(usize::try_from(round.checked_sub(first)?).ok()?)
    }

    /// Refusal and skip counts.
    pub fn counters(&self) -> StateCounters {
        self.counters
    }

    /// What `/status` shows.
    pub fn status(&self) -> RoundStatus {
        let last = self.rounds.back();
        RoundStatus {
            round: self.round(),
            last_loss: last.map(|r| r.loss),
            params_hash: self.params_hash(),
            contributors: last.map(|r| r.contributors.clone()).unwrap_or_default(),
            last_applied: self.last_applied,
        }
    }

    /// Everything applied since the last call, in log order.
    #[must_use = "the events taken are removed; the glue must act on them"]
    pub fn take_applied(&mut self) -> Vec<Applied> {
        self.pending.drain(..).collect()
    }

    fn emit(&mut self, event: Applied) {
        if self.pending.len() >= MAX_PENDING_APPLIED {
            self.pending.pop_front();
            self.counters.applied_events_dropped += 1;
        }
        self.pending.push_back(event);
    }

    fn apply_round(&mut self, index: u64, round: RoundCommitted) {
        let expected = self.round() + 1;
        let refusal = if round.round < expected {
            self.counters.rounds_already_applied += 1;
            Some(RoundRefusal::AlreadyApplied)
        } else if round.round > expected {
            self.counters.rounds_with_gap += 1;
            Some(RoundRefusal::Gap { expected })
        } else if round.parent_hash != self.params_hash() {
            self.counters.rounds_parent_mismatch += 1;
            Some(RoundRefusal::ParentMismatch)
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.emit(Applied::RoundRefused {
                index,
                round: round.round,
                reason,
            });
            return;
        }
        if self.rounds.len() == ROUND_LOG_WINDOW {
            self.rounds.pop_front();
        }
        self.rounds.push_back(round.clone());
        self.emit(Applied::Round { index, round });
    }

    fn apply_model(&mut self, index: u64, model: ModelRegistered) {
        if self.model == ModelSlot::Awaiting && self.rounds.is_empty() {
            self.genesis = model.params_hash;
            self.model = ModelSlot::Registered {
                layout_hash: model.layout_hash,
                params: model.params,
            };
            self.emit(Applied::ModelRegistered { index, model });
        } else {
            self.emit(Applied::ModelRefused { index, model });
        }
    }

    fn apply_config(&mut self, index: u64, command: Command) {
        let request = command.request();
        if let Some(session) = self.sessions.get(&request.client)
            && request.seq <= session.seq
        {
            self.counters.retried_requests += 1;
            let outcome = match request.seq == session.seq {
                true => session.outcome.clone(),
                false => ConfigOutcome::Superseded,
            };
            self.emit(Applied::Config {
                index,
                request,
                outcome,
                retry: true,
            });
            return;
        }
        let result = match &command {
            Command::ConfigPut { key, value, .. } => {
                self.config.put(key, value).map(|()| ConfigOutcome::Written)
            }
            Command::ConfigCas {
                key,
                expected,
                value,
                ..
            } => self
                .config
                .cas(key, expected.as_deref(), value)
                .map(|failed| match failed {
                    None => ConfigOutcome::Written,
                    Some(current) => ConfigOutcome::CasFailed { current },
                }),
            Command::RoundCommitted(_) | Command::ModelRegistered(_) => return,
        };
        let outcome = result.unwrap_or_else(|e| ConfigOutcome::Refused {
            reason: e.to_string(),
        });
        self.remember(request, index, outcome.clone());
        self.emit(Applied::Config {
            index,
            request,
            outcome,
            retry: false,
        });
    }

    fn remember(&mut self, request: RequestId, index: u64, outcome: ConfigOutcome) {
        self.sessions.insert(
            request.client,
            Session {
                seq: request.seq,
                index,
                outcome,
            },
        );
        if self.sessions.len() > MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(client, s)| (s.index, **client))
                .map(|(client, _)| *client);
            if let Some(client) = oldest {
                self.sessions.remove(&client);
            }
        }
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = Writer::new();
        out.raw(MAGIC)
            .u16(SNAPSHOT_VERSION)
            .u64(self.last_applied)
            .raw(&self.genesis.0);
        match self.model {
            ModelSlot::Builtin => {
                out.u8(0);
            }
            ModelSlot::Awaiting => {
                out.u8(1);
            }
            ModelSlot::Registered {
                layout_hash,
                params,
            } => {
                out.u8(2).raw(&layout_hash).u64(params);
            }
        }
        self.config.encode_to(&mut out);
        out.count(self.sessions.len());
        for (client, session) in &self.sessions {
            out.u64(*client).u64(session.seq).u64(session.index);
            put_outcome(&mut out, &session.outcome);
        }
        let c = &self.counters;
        for value in [
            c.rounds_already_applied,
            c.rounds_with_gap,
            c.rounds_parent_mismatch,
            c.undecodable_entries,
            c.retried_requests,
            c.stale_entries,
            c.applied_events_dropped,
        ] {
            out.u64(value);
        }
        out.count(self.rounds.len());
        for round in &self.rounds {
            out.put(round);
        }
        out.into_bytes()
    }

    /// Decodes a snapshot's bytes into a state (no pending events).
    pub fn decode_snapshot(bytes: &[u8]) -> Result<ClusterState, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.take(4, "snapshot magic")? != MAGIC {
            return Err(DecodeError::Invalid {
                what: "snapshot magic",
                reason: "not a hashgrad cluster snapshot",
                offset: 0,
            });
        }
        let offset = r.offset();
        let version = r.u16("snapshot version")?;
        if version != SNAPSHOT_VERSION {
            return Err(DecodeError::BadTag {
                what: "snapshot version",
                tag: version.min(255) as u8,
                offset,
            });
        }
        let last_applied = r.u64("last applied")?;
        let genesis = StateHash(r.array("genesis hash")?);
        let at = r.offset();
        let model = match r.u8("model slot")? {
            0 => ModelSlot::Builtin,
            1 => ModelSlot::Awaiting,
            2 => ModelSlot::Registered {
                layout_hash: r.array("layout hash")?,
                params: r.u64("parameter count")?,
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "model slot",
                    tag,
                    offset: at,
                });
            }
        };
        let config = ConfigStore::decode_from(&mut r)?;
        let count = r.count("sessions", MAX_SESSIONS, 25)?;
        let mut sessions = BTreeMap::new();
        for _ in 0..count {
            let client = r.u64("session client")?;
            let session = Session {
                seq: r.u64("session seq")?,
                index: r.u64("session index")?,
                outcome: get_outcome(&mut r)?,
            };
            sessions.insert(client, session);
        }
        let mut c = [0u64; 7];
        for value in &mut c {
            *value = r.u64("counter")?;
        }
        let counters = StateCounters {
            rounds_already_applied: c[0],
            rounds_with_gap: c[1],
            rounds_parent_mismatch: c[2],
            undecodable_entries: c[3],
            retried_requests: c[4],
            stale_entries: c[5],
            applied_events_dropped: c[6],
        };
        let count = r.count("rounds", ROUND_LOG_WINDOW, 134)?;
        let mut rounds: VecDeque<RoundCommitted> = VecDeque::with_capacity(count);
        for _ in 0..count {
            let at = r.offset();
            let round = RoundCommitted::decode_from(&mut r)?;
            if let Some(prev) = rounds.back()
                && (prev.round.checked_add(1) != Some(round.round)
                    || prev.params_hash != round.parent_hash)
            {
                return Err(r_invalid(at, "rounds are not consecutive and linked"));
            }
            rounds.push_back(round);
        }
        r.finish()?;
        Ok(ClusterState {
            genesis,
            model,
            last_applied,
            rounds,
            config,
            sessions,
            counters,
            pending: VecDeque::new(),
        })
    }
}

fn r_invalid(offset: usize, reason: &'static str) -> DecodeError {
    DecodeError::Invalid {
        what: "round log",
        reason,
        offset,
    }
}

fn put_outcome(out: &mut Writer, outcome: &ConfigOutcome) {
    match outcome {
        ConfigOutcome::Written => {
            out.u8(0);
        }
        ConfigOutcome::CasFailed { current: None } => {
            out.u8(1);
        }
        ConfigOutcome::CasFailed {
            current: Some(value),
        } => {
            out.u8(2).str(value);
        }
        ConfigOutcome::Refused { reason } => {
            out.u8(3).str(reason);
        }
        ConfigOutcome::Superseded => {
            out.u8(4);
        }
    }
}

fn get_outcome(r: &mut Reader<'_>) -> Result<ConfigOutcome, DecodeError> {
    let offset = r.offset();
    Ok(match r.u8("config outcome")? {
        0 => ConfigOutcome::Written,
        1 => ConfigOutcome::CasFailed { current: None },
        2 => ConfigOutcome::CasFailed {
            current: Some(r.str("current value", MAX_VALUE_BYTES)?.to_owned()),
        },
        3 => ConfigOutcome::Refused {
            reason: r.str("refusal", 2 * MAX_VALUE_BYTES)?.to_owned(),
        },
        4 => ConfigOutcome::Superseded,
        tag => {
            return Err(DecodeError::BadTag {
                what: "config outcome",
                tag,
                offset,
            });
        }
    })
}

impl StateMachine for ClusterState {
    type RestoreError = ClusterError;
    fn apply(&mut self, index: u64, command: &[u8]) {
        if index <= self.last_applied {
            self.counters.stale_entries += 1;
            return;
        }
        self.last_applied = index;
        match Command::from_bytes(command) {
            Ok(Command::RoundCommitted(round)) if self.model_ready() => {
                self.apply_round(index, round)
            }
            Ok(Command::RoundCommitted(round)) => {
                self.counters.rounds_parent_mismatch += 1;
                self.emit(Applied::RoundRefused {
                    index,
                    round: round.round,
                    reason: RoundRefusal::ParentMismatch,
                });
            }
            Ok(Command::ModelRegistered(model)) => self.apply_model(index, model),
            Ok(other) => self.apply_config(index, other),
            Err(error) => {
                self.counters.undecodable_entries += 1;
                self.emit(Applied::Undecodable { index, error });
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        self.encode_snapshot()
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), ClusterError> {
        let mut state = ClusterState::decode_snapshot(&snapshot.data)
            .map_err(ClusterError::SnapshotUndecodable)?;
        if state.last_applied > snapshot.meta.index {
            return Err(ClusterError::SnapshotAhead {
                covers: state.last_applied,
                filed: snapshot.meta.index,
            });
        }
        state.last_applied = snapshot.meta.index;
        state.pending = std::mem::take(&mut self.pending);
        *self = state;
        let event = Applied::Restored {
            index: self.last_applied,
            round: self.round(),
            params_hash: self.params_hash(),
        };
        self.emit(event);
        Ok(())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
