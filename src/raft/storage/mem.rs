//! In-memory `Storage` for tests and the simulator: "persisted" means "survives a simulated
//! crash" (the simulator drops the node's `Raft` but keeps this).

use super::{PersistBatch, RecoveredState, Storage, StorageError, apply_batch};

/// A `Storage` that keeps its state in memory.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: RecoveredState,
    batches: u64,
}

impl MemStorage {
    /// Empty storage (a new node).
    pub fn new() -> Self {
        Self::default()
    }
    /// The persisted state.
    pub fn state(&self) -> &RecoveredState {
        &self.state
    }
    /// How many batches were persisted.
    pub fn batches(&self) -> u64 {
        self.batches
    }
}

impl Storage for MemStorage {
    fn recover(&self) -> Result<RecoveredState, StorageError> {
        Ok(self.state.clone())
    }
    fn persist(&mut self, batch: &PersistBatch) -> Result<(), StorageError> {
        apply_batch(&mut self.state, batch);
        self.batches += 1;
        Ok(())
    }
}
