//! `PeerAddr`: a `net.peers` entry (`IP:PORT`, or `FINGERPRINT@IP:PORT` to demand that peer's
//! key), parsed and written back in the same spelling.
//!
//! Owns the address text only; must not dial.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::net::NodeId;
use crate::node_id::NodeIdError;

/// A peer to dial, optionally pinned to a key fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// The peer's UDP address.
    pub addr: SocketAddr,
    /// The fingerprint the peer's key must have (the part before `@`); `None` accepts any.
    pub pin: Option<NodeId>,
}

/// Why a `net.peers` entry is not a peer address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerAddrError {
    /// The part before `@` is not a node fingerprint.
    #[error(transparent)]
    Fingerprint(#[from] NodeIdError),
    /// The address part is not `IP:PORT`.
    #[error("`{text}` is not IP:PORT or FINGERPRINT@IP:PORT (e.g. 127.0.0.1:7100)")]
    Address {
        /// The whole entry as written.
        text: String,
    },
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;
    fn from_str(text: &str) -> Result<PeerAddr, PeerAddrError> {
        let (pin, addr) = match text.split_once('@') {
            Some((pin, addr)) => (Some(pin.parse::<NodeId>()?), addr),
            None => (None, text),
        };
        let addr = addr
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| PeerAddrError::Address {
                text: text.to_string(),
            })?;
        Ok(PeerAddr { addr, pin })
    }
}

impl fmt::Display for PeerAddr {
    /// `FINGERPRINT@IP:PORT` when pinned, else `IP:PORT` (`[::1]:8` for IPv6).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pin {
            Some(pin) => write!(f, "{pin}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl From<SocketAddr> for PeerAddr {
    /// A peer at `addr` with any key.
    fn from(addr: SocketAddr) -> PeerAddr {
        PeerAddr { addr, pin: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_their_text() {
        let pin = "ab".repeat(32);
        for text in [
            format!("{pin}@127.0.0.1:9"),
            "[::1]:8".to_string(),
            "10.0.0.1:7100".to_string(),
        ] {
            let peer: PeerAddr = text.parse().expect("valid");
            assert_eq!(peer.to_string(), text);
        }
        assert!(matches!(
            "localhost".parse::<PeerAddr>(),
            Err(PeerAddrError::Address { .. })
        ));
        assert!(matches!(
            "abcd@127.0.0.1:9".parse::<PeerAddr>(),
            Err(PeerAddrError::Fingerprint(_))
        ));
    }
}
