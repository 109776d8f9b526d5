//! `Replicated`: the training cluster's state machine as the consensus service runs it — the
//! sans-IO `ClusterState` plus a channel that hands every `Applied` event, in log order, to the
//! training service (which steps its trainer, answers config writers and files receipts).

use tokio::sync::mpsc;

use crate::cluster::{Applied, ClusterState};
use crate::raft::{Snapshot, StateMachine};

/// `ClusterState` that forwards what it applied.
#[derive(Debug)]
pub struct Replicated {
    state: ClusterState,
    applied: mpsc::UnboundedSender<Applied>,
}

impl Replicated {
    /// Wraps `state`; its events go to `applied`.
    pub fn new(state: ClusterState, applied: mpsc::UnboundedSender<Applied>) -> Replicated {
        Replicated { state, applied }
    }

    /// The replicated state (round log, config store).
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    fn forward(&mut self) {
        for event in self.state.take_applied() {
            // The training service stopped: the node is stopping too.
            let _ = self.applied.send(event);
        }
    }
}

impl StateMachine for Replicated {
    fn apply(&mut self, index: u64, command: &[u8]) {
        self.state.apply(index, command);
        self.forward();
    }

    fn snapshot(&self) -> Vec<u8> {
        self.state.snapshot()
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let restored = self.state.restore(snapshot);
        self.forward();
        restored
    }
}
