//! The fault-injection hook for tests, built only with the crate's `testing` feature: cuts this
//! node off from chosen peers (their connections close, new ones are refused in both
//! directions, frames already in flight are dropped) until `heal`. Owns the cut set; a release
//! build has neither the set nor a check of it on any transport path.

use std::collections::HashSet;

use super::super::close_code;
use super::super::identity::NodeId;
use super::Network;

/// The peers a test cut this node off from.
#[derive(Debug, Default)]
pub(super) struct Cut {
    peers: HashSet<NodeId>,
}

impl Cut {
    /// True while `peer` is cut off.
    pub(super) fn contains(&self, peer: &NodeId) -> bool {
        self.peers.contains(peer)
    }
}

/// The handle tests use to partition a node from peers.
#[derive(Clone, Debug)]
pub struct PartitionControl {
    pub(super) network: Network,
}

impl PartitionControl {
    /// Drops and refuses all traffic with `peers`.
    pub fn cut(&self, peers: &[NodeId]) {
        let inner = &self.network.inner;
        let mut state = inner.lock();
        for peer in peers {
            state.cut.peers.insert(*peer);
            if let Some(entry) = state.peers.get(peer) {
                entry
                    .connection
                    .close(close_code::PARTITIONED.into(), b"partitioned by a test");
            }
        }
    }

    /// Lets traffic with every peer flow again (the node redials its known peers).
    pub fn heal(&self) {
        self.network.inner.lock().cut.peers.clear();
    }

    /// True while `peer` is cut off.
    pub fn is_cut(&self, peer: &NodeId) -> bool {
        self.network.inner.lock().cut.contains(peer)
    }
}
