//! The handshake's rules: what a node says in its `Hello` and why it refuses a peer's.
//!
//! Pure functions; the transport sends the frames and closes connections.

use super::frame::Hello;
use crate::hash::display_hash;

/// Why a peer's `Hello` is refused, or `Ok` when both sides can talk.
pub fn check_hello(ours: &Hello, theirs: &Hello) -> Result<(), String> {
    if theirs.version != ours.version {
        return Err(format!(
            "peer speaks protocol version {} but this node speaks {}; upgrade the older node",
            theirs.version, ours.version
        ));
    }
    if theirs.network != ours.network {
        return Err(format!(
            "peer is on network `{}`, this node on `{}`",
            theirs.network, ours.network
        ));
    }
    if theirs.genesis != ours.genesis {
        return Err(format!(
            "peer's genesis block is {} but this node's is {} (same network name `{}`, \
             different chain: check the network's genesis in both configs)",
            display_hash(&theirs.genesis),
            display_hash(&ours.genesis),
            ours.network
        ));
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
        let reason = check_hello(&hello("regtest", 1), &hello("main", 1)).expect_err("network");
        assert!(
            reason.contains("`main`") && reason.contains("`regtest`"),
            "{reason}"
        );
        let reason = check_hello(&hello("regtest", 1), &hello("regtest", 2)).expect_err("genesis");
        assert!(reason.contains("genesis"), "{reason}");
        let mut newer = hello("regtest", 1);
        newer.version = 2;
        let reason = check_hello(&hello("regtest", 1), &newer).expect_err("version");
        assert!(reason.contains("version 2"), "{reason}");
    }
}
