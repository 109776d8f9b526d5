//! The chain service's dialer: the peer addresses this node knows (configured, stored, heard
//! from connected peers) and the dials in flight, one task each in a `JoinSet` that is
//! aborted when the service drops it.
//!
//! Owns the known-address table and the dial tasks; must not decide what a peer may do once
//! connected (the transport and the chain service do).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use tokio::task::JoinSet;
use tracing::debug;

use crate::net::{NetError, Network, NodeId};

/// What one dial task reports: the address and the peer's fingerprint, or why it failed.
pub(super) type Dialed = (SocketAddr, Result<NodeId, NetError>);

/// Known addresses (each with the fingerprint it must present, if pinned) and the dials in
/// flight.
#[derive(Debug, Default)]
pub(super) struct Dialer {
    known: HashMap<SocketAddr, Option<NodeId>>,
    dialing: HashSet<SocketAddr>,
    tasks: JoinSet<Dialed>,
}

impl Dialer {
    /// Remembers `addr` (a configured peer's, with its pin) unless it is known already.
    pub(super) fn learn(&mut self, addr: SocketAddr, pin: Option<NodeId>) {
        self.known.entry(addr).or_insert(pin);
    }

    /// Dials every known address that is not this node's, not being dialled and not
    /// connected.
    pub(super) fn redial(&mut self, net: &Network) {
        let own = net.local_addr();
        for (&addr, &pin) in &self.known {
            if addr == own || self.dialing.contains(&addr) || net.knows_addr(addr) {
                continue;
            }
            self.dialing.insert(addr);
            let net = net.clone();
            self.tasks
                .spawn(async move { (addr, net.dial(addr, pin).await) });
        }
    }

    /// The next dial to finish; pending forever while none is in flight (for `select!`).
    pub(super) async fn next(&mut self) -> Option<Dialed> {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(dialed)) => return Some(dialed),
                // A dial task that panicked or was aborted reports nothing.
                Some(Err(_)) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// A dial finished: the address may be dialled again on the next redial.
    pub(super) fn finished(&mut self, (addr, result): Dialed) {
        self.dialing.remove(&addr);
        if let Err(error) = result {
            debug!(%addr, %error, "dial failed; will retry");
        }
    }
}
