//! Stratum v1 without I/O, both directions. `message` is the line codec (JSON-RPC, bounded),
//! `work` the job parts in Stratum's byte orders and the header they rebuild, `difficulty` the
//! share target of a difficulty and vardiff, `session` one server-side connection and
//! `client` the miner's side. The node's server (`node::stratum`) and `hashgrad mine --pool`
//! (`cli::mine`) are thin shells that feed them lines, templates and `now`.
//!
//! Must not open sockets, spawn tasks or read a clock.

pub mod client;
pub mod difficulty;
pub mod message;
pub mod session;
pub mod work;

use crate::pow::NodeId;

/// Longest worker name kept (longer ones are refused at authorize).
pub const MAX_WORKER_NAME: usize = 128;

/// Why a Stratum line or parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StratumError {
    /// The line is longer than the limit; the connection should be dropped.
    #[error("line of {len} bytes, more than the limit of {max}")]
    LineTooLong {
        /// Bytes in the line.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a JSON-RPC object; holds the parser's message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A parameter is missing or of the wrong shape; names it.
    #[error("bad parameter: {0}")]
    BadParam(&'static str),
    /// A worker name that is empty, too long or not printable ASCII.
    #[error("worker name must be 1 to {MAX_WORKER_NAME} printable ASCII characters")]
    BadWorker,
    /// The pool answered a call with an error; holds its code and message.
    #[error("the pool refused {what}: {code} {message}")]
    Refused {
        /// What was refused (`mining.subscribe`, `mining.authorize`).
        what: &'static str,
        /// The pool's error code.
        code: i64,
        /// The pool's message.
        message: String,
    },
    /// A `stratum+tcp://HOST:PORT` URL that does not parse; holds why.
    #[error("pool URL {0}")]
    BadUrl(String),
}

/// An authorized worker: its name as the miner gave it and, when the name starts with a
/// 64-hex fingerprint (`FINGERPRINT` or `FINGERPRINT.rig`), the id its blocks pay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Worker {
    name: String,
    payee: Option<NodeId>,
}

impl Worker {
    /// Checks and reads a worker name.
    pub fn parse(name: &str) -> Result<Worker, StratumError> {
        if name.is_empty()
            || name.len() > MAX_WORKER_NAME
            || !name.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(StratumError::BadWorker);
        }
        let head = name.split('.').next().unwrap_or(name);
        let payee = (head.len() == 64)
            .then(|| {
                let mut id = [0u8; 32];
                hex::decode_to_slice(head, &mut id)
                    .ok()
                    .map(|()| NodeId(id))
            })
            .flatten();
        Ok(Worker {
            name: name.to_string(),
            payee,
        })
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who this worker's blocks pay: its fingerprint, else `default`.
    pub fn miner(&self, default: NodeId) -> NodeId {
        self.payee.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_name_pays_its_id_anything_else_the_default() {
        let fp = "ab".repeat(32);
        let own = NodeId([1; 32]);
        assert_eq!(
            Worker::parse(&fp).map(|w| w.miner(own)),
            Ok(NodeId([0xab; 32]))
        );
        assert_eq!(
            Worker::parse(&format!("{fp}.rig7")).map(|w| w.miner(own)),
            Ok(NodeId([0xab; 32]))
        );
        assert_eq!(Worker::parse("alice").map(|w| w.miner(own)), Ok(own));
        assert_eq!(Worker::parse(""), Err(StratumError::BadWorker));
        assert_eq!(Worker::parse("a b"), Err(StratumError::BadWorker));
        assert!(Worker::parse(&"x".repeat(MAX_WORKER_NAME + 1)).is_err());
    }
}
