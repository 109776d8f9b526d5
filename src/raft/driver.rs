//! The driver's inner loop as a function: hand each `Ready` to storage, the network and the
//! state machine in the required order. The caller supplies the I/O (a `Storage`, a send
//! function, a `StateMachine`); this file does none itself.

use super::RaftError;
use super::core::{Raft, ReadState};
use super::message::Message;
use super::storage::Storage;
use super::types::{Entry, EntryKind, Snapshot};

/// The application's replicated state (the training round log, the config store…).
pub trait StateMachine {
    /// Why a snapshot's bytes could not become the state (`RaftError::SnapshotRestore` carries
    /// it).
    type RestoreError: std::error::Error + Send + Sync + 'static;
    /// Applies one committed command ([`EntryKind::Normal`] entries only), in log order.
    fn apply(&mut self, index: u64, command: &[u8]);
    /// Serialises the whole state (for [`Raft::compact`] and lagging followers).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state with a snapshot's bytes.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), Self::RestoreError>;
}

/// Processes every pending `Ready`: persist, then `send` each message, then restore/apply,
/// then `advance`. Returns the reads confirmed (serve each once `index` is applied: it already
/// is when this returns, unless the state machine lags on purpose).
pub fn process_ready<S: Storage, M: StateMachine>(
    raft: &mut Raft,
    storage: &mut S,
    machine: &mut M,
    mut send: impl FnMut(Message),
) -> Result<Vec<ReadState>, RaftError> {
    let mut reads = Vec::new();
    while let Some(ready) = raft.ready() {
        storage.persist(&ready.persist)?;
        for msg in ready.messages {
            send(msg);
        }
        if let Some(snapshot) = &ready.snapshot {
            machine
                .restore(snapshot)
                .map_err(|source| RaftError::SnapshotRestore {
                    index: snapshot.meta.index,
                    source: Box::new(source),
                })?;
        }
        for Entry {
            index, kind, data, ..
        } in &ready.committed_entries
        {
            if *kind == EntryKind::Normal {
                machine.apply(*index, data);
            }
        }
        reads.extend(ready.read_states);
        raft.advance();
    }
    Ok(reads)
}
