//! Reads a node's `GET /status` over real HTTP and keeps the fields the testnet shows: the
//! chain's (height, tip, hash rate, peers) and, when the node trains, the `training` object's
//! (role, term, round, loss, accuracy, rounds committed, params hash); and `GET /receipts`,
//! the committed rounds' receipts on the node's best chain. A field the node does not report
//! stays `None` and shows as `-`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use crate::api::ReceiptEntry;

/// Largest status document read (a node with 16 peers sends a few KiB).
const MAX_STATUS_BYTES: usize = 1 << 20;
/// Largest receipt list read (~400 bytes a round: 40 000 rounds).
const MAX_RECEIPTS_BYTES: usize = 16 << 20;

/// One node's status as the testnet sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Height of the node's best chain.
    pub height: u64,
    /// The node's tip hash in display order (hex); empty when the status has none.
    pub tip: String,
    /// The miner's recent rate in hashes per second (0 when not mining).
    pub hash_rate: f64,
    /// Number of connected peers.
    pub peers: usize,
    /// Blocks this node mined that were accepted.
    pub blocks_mined: u64,
    /// `None` when the node does not report training.
    pub training: Option<TrainingView>,
}

/// The training fields of `/status` (`"training": {…}`); each may be absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainingView {
    /// `leader`, `follower` or `candidate`.
    pub role: Option<String>,
    /// The node's Raft term.
    pub term: Option<u64>,
    /// The last committed round.
    pub round: Option<u64>,
    /// The last committed round's mean worker loss.
    pub loss: Option<f64>,
    /// Test accuracy, a fraction in 0..1.
    pub accuracy: Option<f64>,
    /// Rounds committed (equal to `round`: the round log is gap-free).
    pub rounds_committed: Option<u64>,
    /// Rounds started but abandoned (leader change, missing gradients).
    pub rounds_abandoned: Option<u64>,
    /// Fingerprint of the leader this node follows.
    pub leader: Option<String>,
    /// Hash of the params after `round` (hex).
    pub params_hash: Option<String>,
    /// The round whose params this node's trainer holds.
    pub trained_round: Option<u64>,
    /// The round `accuracy` was measured after.
    pub evaluated_round: Option<u64>,
}

/// Why a node's status or receipts could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The `/status` body is not JSON (is the address a hashgrad node's HTTP port?).
    #[error("status is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The status has no numeric `height` (a node of another program or version).
    #[error("status has no numeric `height`")]
    NoHeight,
    /// The status's `training` object does not have the expected fields' types.
    #[error("status `training` does not parse: {0}")]
    Training(#[source] serde_json::Error),
    /// The node did not answer in time (stopped, overloaded or partitioned).
    #[error("{addr}: no {what} reply within {timeout:?}")]
    Timeout {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// `status` or `receipts`.
        what: &'static str,
        /// How long the reader waited.
        timeout: Duration,
    },
    /// The connection failed or the reply was malformed.
    #[error("{0}")]
    Request(RequestError),
    /// The node answered with another code than 200.
    #[error("{addr}: HTTP {code}")]
    Http {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// The status code it sent.
        code: u16,
    },
    /// The `/receipts` body is not a receipt list.
    #[error("{addr}: receipts do not parse: {source}")]
    Receipts {
        /// The node's HTTP address.
        addr: SocketAddr,
        /// The JSON decoder's message.
        #[source]
        source: serde_json::Error,
    },
}

/// Parses a `/status` JSON document. Unknown fields are ignored so the testnet reads newer
/// and older nodes alike.
pub fn parse(body: &str) -> Result<NodeView, StatusError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(StatusError::NotJson)?;
    let height = value["height"].as_u64().ok_or(StatusError::NoHeight)?;
    let training = match value.get("training") {
        None | Some(serde_json::Value::Null) => None,
        Some(t) => {
            Some(serde_json::from_value::<TrainingView>(t.clone()).map_err(StatusError::Training)?)
        }
    };
    Ok(NodeView {
        height,
        tip: value["tip"].as_str().unwrap_or_default().to_string(),
        hash_rate: value["hash_rate"].as_f64().unwrap_or(0.0),
        peers: value["peers"].as_array().map_or(0, Vec::len),
        blocks_mined: value["blocks_mined"].as_u64().unwrap_or(0),
        training,
    })
}

/// `GET /status` from `addr` (HTTP/1.1, connection closed after the reply).
pub async fn fetch(addr: SocketAddr, timeout: Duration) -> Result<NodeView, StatusError> {
    let body = tokio::time::timeout(timeout, get(addr, "/status", MAX_STATUS_BYTES))
        .await
        .map_err(|_| StatusError::Timeout {
            addr,
            what: "status",
            timeout,
        })??;
    parse(&body)
}

/// `GET /receipts` from `addr`: the training receipts on the node's best chain.
pub async fn fetch_receipts(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Vec<ReceiptEntry>, StatusError> {
    let body = tokio::time::timeout(timeout, get(addr, "/receipts", MAX_RECEIPTS_BYTES))
        .await
        .map_err(|_| StatusError::Timeout {
            addr,
            what: "receipts",
            timeout,
        })??;
    serde_json::from_str(&body).map_err(|source| StatusError::Receipts { addr, source })
}

async fn get(addr: SocketAddr, path: &str, max_bytes: usize) -> Result<String, StatusError> {
    let (code, body) = request(addr, None, "GET", path, "", max_bytes)
        .await
        .map_err(StatusError::Request)?;
    if code != 200 {
        return Err(StatusError::Http { addr, code });
    }
    Ok(body)
}

/// Why an HTTP request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// False when the connection failed, so the server never saw the request.
    pub sent: bool,
    /// The I/O error or the malformed reply, prefixed with the server's address.
    pub message: String,
}

/// A node's API as a client sees it: where it serves and the token its writes need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEndpoint {
    /// The node's HTTP address.
    pub addr: SocketAddr,
    /// The token from the node's cookie (`None`: not read yet; writes will be refused).
    pub token: Option<String>,
}

/// One HTTP/1.1 request on its own connection, with `token` as its bearer when given: the
/// status code and at most `max_bytes` of the reply (headers included), or why there is none.
pub async fn request(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
    max_bytes: usize,
) -> Result<(u16, String), RequestError> {
    let failed = |sent: bool| {
        move |e: std::io::Error| RequestError {
            sent,
            message: format!("{addr}: {e}"),
        }
    };
    let mut stream = TcpStream::connect(addr).await.map_err(failed(false))?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(failed(true))?;
    let mut reply = Vec::new();
    (&mut stream)
        .take(max_bytes as u64)
        .read_to_end(&mut reply)
        .await
        .map_err(failed(true))?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n").ok_or_else(|| RequestError {
        sent: true,
        message: format!("{addr}: reply without headers"),
    })?;
    let code = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| RequestError {
            sent: true,
            message: format!("{addr}: not an HTTP/1.1 reply"),
        })?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mining_only_status_has_no_training() {
        let view = parse(
            r#"{"network":"regtest","height":7,"tip":"00ab","hash_rate":1.5e6,
                "peers":[{"id":"a","addr":"x","outbound":true}],"blocks_mined":3}"#,
        )
        .expect("parse");
        assert_eq!(view.height, 7);
        assert_eq!(view.peers, 1);
        assert_eq!(view.training, None);
    }

    #[test]
    fn training_fields_are_read_when_present() {
        let view = parse(
            r#"{"height":1,"tip":"00","peers":[],
                "training":{"role":"leader","term":3,"round":212,"accuracy":0.964}}"#,
        )
        .expect("parse");
        let training = view.training.expect("training");
        assert_eq!(training.role.as_deref(), Some("leader"));
        assert_eq!(training.round, Some(212));
        assert_eq!(training.loss, None);
        assert!(parse("{}").is_err());
        assert!(parse("not json").is_err());
    }
}
