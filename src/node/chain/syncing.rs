//! The chain service's sync state: which peers a headers-first sync round is running with
//! (one round per peer at a time, in a `JoinSet` aborted when the service drops it), and
//! which asked for another round while one was running.
//!
//! Owns the round tasks and their bookkeeping; must not accept blocks (the rounds report to
//! the chain service, which decides).

use std::collections::HashSet;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::net::{Network, NodeId};
use crate::node::sync::{self, SyncReport};

/// The sync rounds in flight and the peers owed another.
#[derive(Debug)]
pub(super) struct Syncing {
    running: HashSet<NodeId>,
    again: HashSet<NodeId>,
    reports: mpsc::Sender<SyncReport>,
    tasks: JoinSet<()>,
}

impl Syncing {
    /// No rounds yet; each round reports on `reports`.
    pub(super) fn new(reports: mpsc::Sender<SyncReport>) -> Syncing {
        Syncing {
            running: HashSet::new(),
            again: HashSet::new(),
            reports,
            tasks: JoinSet::new(),
        }
    }

    /// Starts a round with `peer` from `locator`, or — when one is running — notes that
    /// another is wanted once it ends.
    pub(super) fn start(
        &mut self,
        net: &Network,
        peer: NodeId,
        locator: impl FnOnce() -> Vec<[u8; 32]>,
    ) {
        if !self.running.insert(peer) {
            self.again.insert(peer);
            return;
        }
        self.tasks.spawn(sync::run_round(
            net.clone(),
            peer,
            locator(),
            self.reports.clone(),
        ));
        // Finished rounds' tasks are reaped here, so the set holds only running ones.
        while self.tasks.try_join_next().is_some() {}
    }

    /// The round with `peer` ended; true when another should start (the peer has more, or
    /// asked again while it ran).
    pub(super) fn ended(&mut self, peer: NodeId, more: bool) -> bool {
        self.running.remove(&peer);
        self.again.remove(&peer) || more
    }
}
