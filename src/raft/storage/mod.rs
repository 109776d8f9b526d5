//! Durable Raft state: the `Storage` trait the driver persists each `Ready` through, the batch
//! it writes and what a restart recovers. Implementations: `MemStorage` (tests, simulator) and
//! `RedbStorage` (a redb file, fsync'd per batch). The core never calls storage itself.

mod mem;
mod redb;

pub use self::mem::MemStorage;
pub use self::redb::RedbStorage;

use super::types::{Entry, HardState, Snapshot};

/// Everything a node needs to restart: hard state, latest snapshot, entries after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredState {
    /// Term, vote, commit.
    pub hard_state: HardState,
    /// The latest snapshot (index 0 and no data when none).
    pub snapshot: Snapshot,
    /// Entries after the snapshot, consecutive.
    pub entries: Vec<Entry>,
}

/// One durable write. Applied in this order: snapshot (dropping the entries it covers, or the
/// whole log when `discard_log`), then `entries` (replacing any stored entries from the first
/// one's index on), then the hard state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistBatch {
    /// A new snapshot to store.
    pub snapshot: Option<Snapshot>,
    /// The snapshot came from the leader and replaces the whole log.
    pub discard_log: bool,
    /// Entries to append, truncating the stored log at the first one's index.
    pub entries: Vec<Entry>,
    /// The new hard state.
    pub hard_state: Option<HardState>,
}

impl PersistBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.entries.is_empty() && self.hard_state.is_none()
    }
}

/// Where a node's Raft state lives between crashes.
pub trait Storage {
    /// Reads back everything persisted so far.
    fn recover(&self) -> Result<RecoveredState, StorageError>;
    /// Writes one batch durably (the call returns only when it is on stable storage).
    fn persist(&mut self, batch: &PersistBatch) -> Result<(), StorageError>;
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database library failed (I/O, a damaged file).
    #[error(
        "raft store {path}: {source}; check the disk, or move the file away to rejoin as a new node"
    )]
    Redb {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: Box<::redb::Error>,
    },
    /// The file is a database but not a hashgrad Raft store.
    #[error("{path} is not a hashgrad raft store ({reason}); point the node at another data dir")]
    Foreign {
        /// The file.
        path: String,
        /// What was found.
        reason: String,
    },
    /// A stored record does not decode.
    #[error("raft store {path} is corrupt: {what}; restore it from a backup or remove it")]
    Corrupt {
        /// The file.
        path: String,
        /// Which record.
        what: String,
    },
}

/// Applies a batch to an in-memory image of the stored state (shared by both backends' logic).
pub(crate) fn apply_batch(state: &mut RecoveredState, batch: &PersistBatch) {
    if let Some(snapshot) = &batch.snapshot {
        if batch.discard_log {
            state.entries.clear();
        } else {
            state.entries.retain(|e| e.index > snapshot.meta.index);
        }
        state.snapshot = snapshot.clone();
    }
    if let Some(first) = batch.entries.first() {
        // Stored entries are consecutive after the snapshot: cut at the first new index.
        let keep = first.index.saturating_sub(state.snapshot.meta.index + 1);
        state
            .entries
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        state.entries.extend(batch.entries.iter().cloned());
    }
    if let Some(hs) = batch.hard_state {
        state.hard_state = hs;
    }
}
