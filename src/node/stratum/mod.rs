//! The node's Stratum v1 server (`[stratum] listen`): a TCP accept loop that gives every
//! connection its own extranonce1 and task (`connection`), refuses connections past
//! `max_connections`, and once a second publishes the per-worker tally (`ledger`) as the
//! `StratumView` and the connection gauge. Templates come from the chain service's offers
//! (every connection is sent a new tip at once); block shares go back to it as
//! `ChainCommand::SubmitBlock`, through `ChainService::accept` like any mined block.
//!
//! Must not judge shares (`stratum::session` does) or blocks (the chain does).

mod connection;
mod ledger;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, info};

use super::{ChainCommand, NodeError};
use crate::api::Metrics;
use crate::config::StratumSection;
use crate::net::NodeId;
use crate::stratum::session::{Offer, SessionConfig};
use crate::views::StratumView;
use connection::Shared;
use ledger::Ledger;

/// What the server is built from; `node::start` wires it.
pub(super) struct StratumParts {
    pub section: StratumSection,
    /// Who a worker whose name is not a fingerprint mines for.
    pub own: NodeId,
    pub offers: watch::Receiver<Option<Offer>>,
    pub chain: mpsc::Sender<ChainCommand>,
    pub metrics: Metrics,
    pub view: watch::Sender<StratumView>,
    pub stopped: watch::Receiver<bool>,
}

/// Binds `addr` and serves until `stopped` turns true; returns the bound address.
pub(super) async fn serve(addr: SocketAddr, parts: StratumParts) -> Result<SocketAddr, NodeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| NodeError::Stratum(addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| NodeError::Stratum(addr, e))?;
    let StratumParts {
        section,
        own,
        offers,
        chain,
        metrics,
        view,
        mut stopped,
    } = parts;
    let shared = Shared {
        session: SessionConfig {
            vardiff: section.vardiff(),
            submits_per_sec: section.submits_per_sec,
            default_miner: own,
        },
        idle_timeout: Duration::from_secs(section.idle_timeout_secs),
        line_timeout: Duration::from_secs(section.line_timeout_secs),
        offers,
        chain,
        ledger: Arc::new(Mutex::new(Ledger::new(metrics.clone()))),
        stopped: stopped.clone(),
    };
    let slots = Arc::new(Semaphore::new(section.max_connections));
    let max = section.max_connections;
    info!(listen = %bound, "stratum server started");
    tokio::spawn(async move {
        // Distinct per connection until 2^32 connections wrap it; random start so a restart
        // does not hand a reconnecting miner its old extranonce1.
        let mut next_extranonce: u32 = rand::random();
        let mut publish = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        debug!(%peer, max, "stratum connection refused: at max_connections");
                        drop(stream);
                        continue;
                    };
                    let extranonce1 = next_extranonce.to_be_bytes();
                    next_extranonce = next_extranonce.wrapping_add(1);
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        connection::serve(stream, extranonce1, shared).await;
                        drop(slot);
                    });
                }
                _ = publish.tick() => {
                    let connections = max - slots.available_permits();
                    metrics.stratum_connections.set(connections as i64);
                    let workers = match shared.ledger.lock() {
                        Ok(mut ledger) => ledger.views(Instant::now()),
                        Err(_) => Vec::new(),
                    };
                    view.send_replace(StratumView {
                        listen: Some(bound),
                        connections,
                        workers,
                    });
                }
                _ = stopped.wait_for(|stopped| *stopped) => break,
            }
        }
        info!("stratum server stopped");
    });
    Ok(bound)
}
