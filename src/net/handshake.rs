//! The handshake's rules: what a node says in its `Hello` and why it refuses a peer's.
//!
//! Pure functions; the transport sends the frames and closes connections.

use super::frame::Hello;
use crate::hash::display_hash;

/// Why a peer's `Hello` is refused; its text is what both sides see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloMismatch {
    /// The peers speak different protocol versions.
    #[error(
        "peer speaks protocol version {theirs} but this node speaks {ours}; upgrade the older node"
    )]
    Version {
        /// The peer's version.
        theirs: u32,
        /// This node's version.
        ours: u32,
    },
    /// The peers run different network profiles.
    #[error("peer is on network `{theirs}`, this node on `{ours}`")]
    Network {
        /// The peer's network name.
        theirs: String,
        /// This node's network name.
        ours: String,
    },
    /// Same network name, different genesis block: different chains.
    #[error(
        "peer's genesis block is {} but this node's is {} (same network name `{network}`, \
         different chain: check the network's genesis in both configs)",
        display_hash(theirs),
        display_hash(ours)
    )]
    Genesis {
        /// The peer's genesis hash.
        theirs: [u8; 32],
        /// This node's genesis hash.
        ours: [u8; 32],
        /// The network name both announce.
        network: String,
    },
}

/// Why a peer's `Hello` is refused, or `Ok` when both sides can talk.
pub fn check_hello(ours: &Hello, theirs: &Hello) -> Result<(), HelloMismatch> {
    if theirs.version != ours.version {
        return Err(HelloMismatch::Version {
            theirs: theirs.version,
            ours: ours.version,
        });
    }
    if theirs.network != ours.network {
        return Err(HelloMismatch::Network {
            theirs: theirs.network.clone(),
            ours: ours.network.clone(),
        });
    }
    if theirs.genesis != ours.genesis {
        return Err(HelloMismatch::Genesis {
            theirs: theirs.genesis,
            ours: ours.genesis,
            network: ours.network.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(network: &str, genesis: u8) -> Hello {
        Hello {
            version: 1,
            network: network.into(),
            genesis: [genesis; 32],
            listen_port: 1,
        }
    }

    #[test]
    fn mismatches_are_refused_with_a_reason_naming_both_sides() {
        assert_eq!(
            check_hello(&hello("regtest", 1), &hello("regtest", 1)),
            Ok(())
        );
        let reason = check_hello(&hello("regtest", 1), &hello("main", 1))
            .expect_err("network")
            .to_string();
        assert!(
            reason.contains("`main`") && reason.contains("`regtest`"),
            "{reason}"
        );
        let reason = check_hello(&hello("regtest", 1), &hello("regtest", 2))
            .expect_err("genesis")
            .to_string();
        assert!(reason.contains("genesis"), "{reason}");
        let mut newer = hello("regtest", 1);
        newer.version = 2;
        let reason = check_hello(&hello("regtest", 1), &newer)
            .expect_err("version")
            .to_string();
        assert!(reason.contains("version 2"), "{reason}");
    }
}
