//! The consensus service's log compaction: the [`Compactable`] trait its state machine
//! implements, the staged snapshot, the compaction rule run after each `process_ready`, and
//! counting the snapshots a leader installed here. No I/O of its own (Raft's `Ready` carries
//! the snapshot to `RedbStorage`).

use tracing::{debug, info, warn};

use crate::raft::{self, StateMachine, Storage};

use super::{ConsensusError, Service, send};

/// A state machine the service can compact the log under. A snapshot's bytes may name data
/// kept outside the state (the training state, a blob named by its hash): the entries that
/// produced it are dropped only once that data is durable, so the snapshot can always be
/// restored, here after a restart or on a follower it is sent to.
pub trait Compactable: StateMachine {
    /// A snapshot of the state as it is now; asks for whatever it names outside the state to
    /// be made durable (replacing an earlier request).
    fn prepare_snapshot(&mut self) -> Vec<u8>;
    /// Whether what the last prepared snapshot names is durable now.
    fn snapshot_durable(&self) -> bool;
    /// The log was compacted up to the last prepared snapshot: data only older entries
    /// needed may go.
    fn compacted(&mut self);
}

/// A snapshot taken at `index`, waiting for its tail and for what it names to be durable.
struct Staged {
    index: u64,
    data: Vec<u8>,
}

/// Snapshot bookkeeping for `/status` and the compaction rule.
#[derive(Default)]
pub(super) struct Snapshots {
    /// Compact after this many applied entries (0: never).
    every: u64,
    staged: Option<Staged>,
    /// The snapshot this node recovered from storage at start (restoring it is no install).
    recovered_at: u64,
    /// Snapshots installed from a leader.
    pub installed: u64,
    /// Local compactions.
    pub taken: u64,
}

impl Snapshots {
    /// Compaction every `every` entries (0: never) for a node that recovered the snapshot at
    /// `recovered_at` from storage.
    pub(super) fn new(every: u64, recovered_at: u64) -> Snapshots {
        Snapshots {
            every,
            recovered_at,
            ..Snapshots::default()
        }
    }
}

impl<M: Compactable, S: Storage> Service<M, S> {
    /// One `process_ready` pass, counting the snapshots a leader installed here.
    pub(super) fn process_ready(&mut self) -> Result<Vec<raft::ReadState>, ConsensusError> {
        let Service {
            raft,
            storage,
            machine,
            net,
            ids,
            snapshots,
            event_log,
            ..
        } = self;
        let mut counted = CountRestores {
            machine,
            recovered_at: snapshots.recovered_at,
            installed: 0,
        };
        let reads = raft::process_ready(raft, storage, &mut counted, |message| {
            send(net, ids, event_log, message)
        })?;
        if counted.installed > 0 {
            snapshots.installed += counted.installed;
            info!(
                index = raft.snapshot_index(),
                "installed a snapshot from the leader"
            );
        }
        Ok(reads)
    }

    /// Stages a snapshot once `every` entries were applied after the last one, and compacts
    /// the log with it once its tail is applied and what it names is durable. True when it
    /// compacted (the snapshot then waits in Raft's next `Ready`).
    pub(super) fn compact_if_due(&mut self) -> Result<bool, ConsensusError> {
        let every = self.snapshots.every;
        if every == 0 {
            return Ok(false);
        }
        let applied = self.raft.applied_index();
        let floor = self.raft.snapshot_index();
        if let Some(staged) = &self.snapshots.staged {
            if staged.index <= floor {
                // A snapshot from the leader overtook it.
                self.snapshots.staged = None;
            } else if applied >= staged.index + every / 4 && self.machine.snapshot_durable() {
                let Some(staged) = self.snapshots.staged.take() else {
                    return Ok(false);
                };
                let index = staged.index;
                self.raft.compact(index, staged.data)?;
                self.machine.compacted();
                self.snapshots.taken += 1;
                info!(index, applied, "log compacted");
                return Ok(true);
            } else if applied >= staged.index + 2 * every {
                warn!(
                    index = staged.index,
                    "what the staged snapshot names never became durable; taking a new one"
                );
                self.snapshots.staged = None;
            } else {
                return Ok(false);
            }
        }
        if applied >= floor + every {
            let data = self.machine.prepare_snapshot();
            debug!(index = applied, bytes = data.len(), "snapshot staged");
            self.snapshots.staged = Some(Staged {
                index: applied,
                data,
            });
        }
        Ok(false)
    }
}

/// The state machine as `process_ready` sees it, counting restores from a leader's snapshot
/// (any restore past the snapshot recovered at start).
struct CountRestores<'a, M> {
    machine: &'a mut M,
    recovered_at: u64,
    installed: u64,
}

impl<M: StateMachine> StateMachine for CountRestores<'_, M> {
    type RestoreError = M::RestoreError;
    fn apply(&mut self, index: u64, command: &[u8]) {
        self.machine.apply(index, command);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.machine.snapshot()
    }

    fn restore(&mut self, snapshot: &raft::Snapshot) -> Result<(), M::RestoreError> {
        self.machine.restore(snapshot)?;
        if snapshot.meta.index > self.recovered_at {
            self.installed += 1;
        }
        Ok(())
    }
}
