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
mod cluster;
mod driver;
pub mod faketime;
pub mod jepsen;
mod journal;
pub mod layout;
mod observe;
pub mod plan;
pub mod process;
pub mod propagation;
pub mod relay;
pub mod report;
pub mod rounds;
mod run;
pub mod status;
mod verdict;

use std::path::PathBuf;

pub use plan::{
    Byzantine, ClockFault, ClockTarget, Goals, KillTarget, Kills, Latency, Partition, Plan,
};
pub use report::{Row, Summary};
pub use run::{Observer, Setup, run};

/// Errors that stop a testnet before or while it runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestnetError {
    /// A flag's text (latency, partition, ...) does not follow its syntax.
    #[error("{what} `{text}` does not parse: expected {expected}")]
    Spec {
        /// What was being parsed (`latency`, `partition`, ...).
        what: &'static str,
        /// The text as given.
        text: String,
        /// The syntax that would have parsed, with an example.
        expected: &'static str,
    },
    /// A setting parses but cannot run (a node count out of range, a loss outside 0..100 %, ...).
    #[error("{what}: {reason}")]
    Invalid {
        /// The setting at fault (`node count`, `loss`, ...).
        what: &'static str,
        /// Why its value cannot run.
        reason: String,
    },
    /// Reading or writing a file or directory of the testnet dir failed.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The `hashgrad` binary could not be started as a node process.
    #[error("cannot start {0}: {1}")]
    Spawn(PathBuf, #[source] std::io::Error),
    /// A node process exited before it printed its `listening` line.
    #[error("node n{node} exited ({status}) before it was ready; see {log}:\n{tail}")]
    NodeExited {
        /// Index of the node (`n0` is 0).
        node: usize,
        /// The process's exit status, as the OS reports it.
        status: String,
        /// The node's log file.
        log: PathBuf,
        /// The last lines (at most 5) the node logged since it was started.
        tail: String,
    },
    /// A node did not become ready (print `listening` with its HTTP address) in time.
    #[error("node n{node} printed no `listening` line within {secs} s; see {log}")]
    NodeSilent {
        /// Index of the first node not yet ready (`n0` is 0).
        node: usize,
        /// Seconds the testnet waited for every node.
        secs: u64,
        /// The node's log file, relative to the testnet dir.
        log: PathBuf,
    },
    /// A relay could not bind its front address on loopback.
    #[error(
        "cannot bind relay address {addr}: {source}; relays use addresses in 127.0.0.0/8, \
         which Linux routes to loopback (on other systems, add them to lo0)"
    )]
    Relay {
        /// The loopback address and port the relay tried to bind.
        addr: std::net::SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// No free UDP port could be found on 127.0.0.1 for a node.
    #[error("no free UDP port on 127.0.0.1: {0}")]
    NoPort(#[source] std::io::Error),
    /// A node's config, as the testnet writes it, is invalid.
    #[error("node config: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// A node's key could not be loaded or created in its data dir.
    #[error("node key: {0}")]
    Identity(#[from] crate::net::NetError),
}
