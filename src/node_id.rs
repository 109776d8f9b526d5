//! The one peer identity: `NodeId`, the SHA-256 fingerprint of a node's public key (the
//! transport computes it from the TLS certificate, the chain's coinbase names its miner with it),
//! and the single documented mapping from it to Raft's `u64` ids.
//!
//! Owns the type, its text form and the Raft mapping; must not read keys or certificates (that
//! is `net::identity`).
//!
//! # Raft ids
//! Raft names voters with a `u64` in which `0` means "nobody". A node's Raft id is the first 8
//! bytes of its fingerprint read big-endian ([`NodeId::raft_id`]). Fingerprints are uniform, so
//! two voters of a set share a Raft id with probability about n²/2⁶⁵; [`RaftIds::new`] still
//! refuses such a set (and a fingerprint whose prefix is zero) with an error naming both nodes,
//! rather than letting two nodes vote as one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A node's name: SHA-256 of the DER SubjectPublicKeyInfo of its certificate's key (64 hex
/// digits in text).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// The first 8 hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// This node's Raft id: the first 8 bytes big-endian. `None` for the (astronomically
    /// unlikely) fingerprint whose prefix is zero, which Raft reserves for "nobody".
    pub fn raft_id(&self) -> Option<crate::raft::RaftId> {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&self.0[..8]);
        Some(u64::from_be_bytes(prefix)).filter(|&id| id != 0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

/// Why text is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// The text (trimmed) is not valid hex: a non-hex character or an odd number of digits.
    #[error("`{text}` is not hex ({reason}); a fingerprint is 64 hex digits")]
    NotHex {
        /// The text as given.
        text: String,
        /// The hex decoder's message.
        reason: String,
    },
    /// The text is hex but does not decode to exactly 32 bytes.
    #[error("`{text}` has {len} bytes; a fingerprint is 32 bytes (64 hex digits)")]
    WrongLength {
        /// The text as given.
        text: String,
        /// How many bytes it decodes to.
        len: usize,
    },
    /// The node's Raft id would be 0, which Raft reserves for "nobody"; holds the node.
    #[error(
        "node {0} has a fingerprint whose first 8 bytes are zero, which Raft reserves; give it a new key"
    )]
    ZeroRaftId(NodeId),
    /// Two different nodes of one set map to the same Raft id.
    #[error(
        "nodes {first} and {second} share the Raft id {id:#018x} (the first 8 bytes of their fingerprints); give one of them a new key"
    )]
    RaftIdCollision {
        /// The node already in the set.
        first: NodeId,
        /// The node being added.
        second: NodeId,
        /// The Raft id both map to.
        id: u64,
    },
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(text: &str) -> Result<NodeId, NodeIdError> {
        let bytes = hex::decode(text.trim()).map_err(|e| NodeIdError::NotHex {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
        let array =
            <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| NodeIdError::WrongLength {
                text: text.to_string(),
                len: bytes.len(),
            })?;
        Ok(NodeId(array))
    }
}

/// The Raft id ↔ `NodeId` map of a set of nodes, free of collisions by construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftIds {
    by_raft: BTreeMap<u64, NodeId>,
}

impl RaftIds {
    /// Maps every node; refuses a zero Raft id or two nodes sharing one.
    pub fn new(nodes: impl IntoIterator<Item = NodeId>) -> Result<RaftIds, NodeIdError> {
        let mut ids = RaftIds::default();
        for node in nodes {
            ids.insert(node)?;
        }
        Ok(ids)
    }

    /// Adds one node (a peer seen on the network); a node already present is fine.
    pub fn insert(&mut self, node: NodeId) -> Result<u64, NodeIdError> {
        let id = node.raft_id().ok_or(NodeIdError::ZeroRaftId(node))?;
        match self.by_raft.get(&id) {
            Some(existing) if *existing != node => Err(NodeIdError::RaftIdCollision {
                first: *existing,
                second: node,
                id,
            }),
            _ => {
                self.by_raft.insert(id, node);
                Ok(id)
            }
        }
    }

    /// The node a Raft id names, if mapped.
    pub fn node(&self, raft_id: u64) -> Option<NodeId> {
        self.by_raft.get(&raft_id).copied()
    }

    /// The Raft ids, ascending.
    pub fn raft_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_raft.keys().copied()
    }

    /// How many nodes are mapped.
    pub fn len(&self) -> usize {
        self.by_raft.len()
    }

    /// Whether no node is mapped.
    pub fn is_empty(&self) -> bool {
        self.by_raft.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(prefix: [u8; 8], rest: u8) -> NodeId {
        let mut bytes = [rest; 32];
        bytes[..8].copy_from_slice(&prefix);
        NodeId(bytes)
    }

    #[test]
    fn raft_id_is_the_big_endian_prefix_and_never_zero() {
        let id = node([0, 0, 0, 0, 0, 0, 1, 2], 9);
        assert_eq!(id.raft_id(), Some(0x0102));
        assert_eq!(node([0; 8], 9).raft_id(), None);
    }

    #[test]
    fn collisions_and_zero_ids_are_refused_naming_the_nodes() {
        let a = node([1; 8], 1);
        let b = node([1; 8], 2);
        let error = RaftIds::new([a, b]).expect_err("collision");
        let shown = error.to_string();
        assert!(
            shown.contains(&a.to_string()) && shown.contains(&b.to_string()),
            "{shown}"
        );
        assert!(matches!(
            RaftIds::new([node([0; 8], 3)]),
            Err(NodeIdError::ZeroRaftId(_))
        ));
        let ids = RaftIds::new([a, a, node([2; 8], 0)]).expect("distinct");
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.node(u64::from_be_bytes([1; 8])), Some(a));
    }

    #[test]
    fn fingerprints_parse_from_hex_with_reasons() {
        let id = node([5; 8], 7);
        assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
        assert!(matches!(
            "abcd".parse::<NodeId>(),
            Err(NodeIdError::WrongLength { len: 2, .. })
        ));
        assert!(matches!(
            "zz".parse::<NodeId>(),
            Err(NodeIdError::NotHex { .. })
        ));
    }
}
