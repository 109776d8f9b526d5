//! `hashgrad testnet`: a local network of real `hashgrad node` processes, each with its own
//! data dir, ports and log, every node-to-node datagram passing through a UDP relay the
//! testnet owns (one per directed link) so latency, loss and partitions hit real QUIC
//! packets; nodes can be killed with -9 and restarted from their data dirs. With a `[train]`
//! section in their config every node is a training voter and worker. The orchestrator polls
//! each node's `/status` over HTTP, shows a table, checks the goals (blocks, rounds on one
//! params hash, accuracy), checks the committed rounds' receipts on every chain
//! (`/receipts`) and ends with a summary. With `--jepsen` it also runs a client workload on the
//! config store and checks the history (`jepsen.rs`).
//!
//! Owns child processes, relay sockets and the run's clock; must not reach into a node other
//! than through its command line, its config file, its stdin lifeline, `/status` and
//! `/receipts`.

mod chaos;
pub mod jepsen;
pub mod layout;
pub mod plan;
pub mod process;
pub mod relay;
pub mod report;
pub mod rounds;
mod run;
pub mod status;
mod verdict;

use std::path::PathBuf;

pub use plan::{Byzantine, Goals, KillTarget, Kills, Latency, Partition, Plan};
pub use report::{Row, Summary};
pub use run::{Observer, Setup, run};

/// Errors that stop a testnet before or while it runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestnetError {
    #[error("{what} `{text}` does not parse: expected {expected}")]
    Spec {
        what: &'static str,
        text: String,
        expected: &'static str,
    },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("cannot start {0}: {1}")]
    Spawn(PathBuf, #[source] std::io::Error),
    #[error("node n{node} exited ({status}) before it was ready; see {log}:\n{tail}")]
    NodeExited {
        node: usize,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("node n{node} printed no `listening` line within {secs} s; see {log}")]
    NodeSilent {
        node: usize,
        secs: u64,
        log: PathBuf,
    },
    #[error(
        "cannot bind relay address {addr}: {source}; relays use addresses in 127.0.0.0/8, \
         which Linux routes to loopback (on other systems, add them to lo0)"
    )]
    Relay {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no free UDP port on 127.0.0.1: {0}")]
    NoPort(#[source] std::io::Error),
    #[error("node config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("node key: {0}")]
    Identity(#[from] crate::net::NetError),
}
