//! Raft consensus, sans-IO: elections, replication, commitment, snapshots, reads and membership
//! with no clock, no sockets, no threads and no file I/O (only `storage/redb.rs` touches a file).
//!
//! # Driving a [`Raft`]
//! The core is a plain state machine. A driver (a training node's consensus service in
//! `node::consensus`, the simulator in [`sim`] and the `raft` bench) feeds it events and
//! carries out what it asks for:
//!
//! 1. Recover: `let state = storage.recover()?; let mut raft = Raft::new(config, state)?;`
//! 2. Feed events, in any order: [`Raft::tick`] once per logical tick (e.g. every 100 ms),
//!    [`Raft::step`] for every decoded [`Message`] addressed to this node, [`Raft::propose`] /
//!    [`Raft::propose_conf_change`] for client commands, [`Raft::read_index`] for linearizable
//!    reads, [`Raft::transfer_leadership`], [`Raft::compact`] after taking a snapshot.
//! 3. After each batch of events, while [`Raft::ready`] returns `Some(ready)`, in this order:
//!    1. **persist** `ready.persist` with [`Storage::persist`] (one durable batch: snapshot,
//!       entries, hard state). Nothing may be sent before this returns: a vote or an append
//!       acknowledgement must never leave the node before what it promises is on disk.
//!    2. **send** `ready.messages` (each names its destination).
//!    3. **apply**: first restore the state machine from `ready.snapshot` if present, then apply
//!       `ready.committed_entries` in order (skip [`EntryKind::Noop`]; [`EntryKind::ConfChange`]
//!       entries are already acted on by the core and can be shown to the application). Serve
//!       each `ready.read_states` entry once the state machine has applied its `index`.
//!    4. call [`Raft::advance`].
//!
//! [`process_ready`] is step 3 as a function, for a driver with a [`StateMachine`].
//!
//! A crash at any point is safe: restarting from storage loses only what was never persisted,
//! and nothing unpersisted was ever acknowledged.
//!
//! Commands are opaque `Vec<u8>`; the application owns their meaning and its snapshots
//! ([`Raft::compact`] takes the state machine's snapshot bytes).

mod core;
mod driver;
mod election;
mod log;
mod membership;
pub mod message;
mod read_index;
mod replication;
pub mod sim;
pub mod storage;
mod types;

#[cfg(test)]
mod tests;

pub use core::{Config, Raft, ReadOnlyMode, ReadState, Ready, Role};
pub use driver::{StateMachine, process_ready};
pub use message::{Message, MessageBody, MessageError};
pub use storage::{MemStorage, PersistBatch, RecoveredState, RedbStorage, Storage, StorageError};
pub use types::{ConfChange, Entry, EntryKind, HardState, RaftId, Snapshot, SnapshotMeta};

/// Errors of the Raft core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// The configuration is invalid; the message names the field.
    #[error("invalid raft config: {0}")]
    Config(String),
    /// The recovered state contradicts itself (e.g. a commit index past the last log entry).
    #[error(
        "recovered raft state is inconsistent: {0}; the storage was damaged or written by \
         another program: restore it from a backup or remove it to rejoin as a new node"
    )]
    InconsistentRecovery(String),
    /// A peer sent something that breaks the protocol; the message is dropped.
    #[error("message from node {from} rejected: {reason}")]
    BadMessage {
        /// The sender named in the message.
        from: RaftId,
        /// What was wrong.
        reason: String,
    },
    /// A leader asked this node to overwrite a committed entry: a safety violation elsewhere.
    #[error(
        "node {from} asked to overwrite committed entry {index} (commit {commit}); refusing: \
         the cluster's storage or configuration is broken"
    )]
    CommittedConflict {
        /// The sender.
        from: RaftId,
        /// The conflicting index.
        index: u64,
        /// This node's commit index.
        commit: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// This node's state machine could not restore a snapshot it holds (a local failure: the
    /// leader sent nothing wrong).
    #[error("the state machine cannot restore the snapshot at index {index}: {source}")]
    SnapshotRestore {
        /// The snapshot's last included index.
        index: u64,
        /// The state machine's `RestoreError`.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a proposal, read or leadership request was refused; the client should retry elsewhere
/// or later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProposeError {
    /// Only the leader accepts this; `leader` is the node this one believes leads, if any.
    #[error("this node is not the leader (leader: {leader:?}); send the request to the leader")]
    NotLeader {
        /// The known leader.
        leader: Option<RaftId>,
    },
    /// A leadership transfer is in progress; retry after it finishes.
    #[error("leadership transfer to node {0} in progress; retry shortly")]
    TransferInProgress(RaftId),
    /// A configuration change is still uncommitted, or the leader has not committed an entry of
    /// its own term yet; retry after the next commit.
    #[error("a membership change is pending or the leader's term has no committed entry; retry")]
    ConfChangePending,
    /// The change would do nothing or leave no voters.
    #[error("membership change rejected: {0}")]
    BadConfChange(String),
    /// The command is larger than the wire format allows.
    #[error("command of {size} bytes exceeds the limit of {limit} bytes; split it")]
    TooLarge {
        /// Command size.
        size: usize,
        /// Limit.
        limit: usize,
    },
}
