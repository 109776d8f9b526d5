//! The training messages between nodes, for the transport's training/blob frame range
//! (`0x50..=0x6f`, see `net::frame`): round announcements, gradients, and content-addressed
//! blob requests and responses. Each payload is `version u8 | fields…` built on `codec`; the
//! decoder bounds every size by `WireLimits` (from the model's size) and never panics. A
//! gradient or a blob is sent as one frame on a stream of its own. No sockets here.

use std::net::SocketAddr;

use crate::codec::{DecodeError, Reader, Writer};
use crate::node_id::NodeId;
use crate::train::StateHash;
use crate::train::params::MAX_PARAMS;

use super::BlobHash;
use super::command::{MAX_CONTRIBUTORS, at_most};

/// The payload format version every training frame starts with.
pub const WIRE_VERSION: u8 = 1;
/// Frame type of a `RoundAnnounce`.
pub const FRAME_ROUND_ANNOUNCE: u8 = 0x50;
/// Frame type of a `Gradient`.
pub const FRAME_GRADIENT: u8 = 0x51;
/// Frame type of a `BlobRequest`.
pub const FRAME_BLOB_REQUEST: u8 = 0x52;
/// Frame type of a `BlobResponse`.
pub const FRAME_BLOB_RESPONSE: u8 = 0x53;
/// Frame type of a `Forward` (a follower hands a client's config write to the leader).
pub const FRAME_FORWARD: u8 = 0x54;
/// Frame type of a `ForwardResult`.
pub const FRAME_FORWARD_RESULT: u8 = 0x55;
/// Frame type of a `BlobStored` (the answer to a leader's blob push).
pub const FRAME_BLOB_STORED: u8 = 0x56;
/// Frame type of a `Join` (a node asks the leader to add it as a Raft voter; answered with a
/// `ForwardResult`).
pub const FRAME_JOIN: u8 = 0x57;
/// Frame type of a `Peers` (sent with the answer to a `Join`: the cluster members the
/// answering node is connected to, so the newcomer can reach the leader and every voter).
pub const FRAME_PEERS: u8 = 0x58;
/// Most peers in a `Peers` frame.
pub const MAX_PEERS: usize = 256;
/// Longest socket address text in a `Peers` frame (`[v6%scope]:port`).
const MAX_ADDR_TEXT: usize = 64;
/// Largest forwarded command (a config write: key, value, request id).
pub const MAX_FORWARD_BYTES: usize = 16 * 1024;
/// Largest error text in a `ForwardResult`.
pub const MAX_FORWARD_ERROR: usize = 1024;
/// Bytes of a `TrainState` blob beyond its vectors (magic, version, an external model's
/// largest layout, optimizer scalars).
const STATE_OVERHEAD: usize = 4096
    + crate::train::layout::MAX_TENSORS
        * (4 + crate::train::layout::MAX_NAME_BYTES + 1 + 8 * crate::train::layout::MAX_RANK);

/// Size bounds for decoding, from the model being trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireLimits {
    /// Values in a gradient (the model's parameter count).
    pub gradient_len: usize,
    /// Bytes in a blob (a training state: params and up to two optimizer vectors).
    pub blob_bytes: usize,
}

impl WireLimits {
    /// Limits for a model of `params` parameters.
    pub fn for_params(params: usize) -> WireLimits {
        let params = params.min(MAX_PARAMS);
        WireLimits {
            gradient_len: params,
            blob_bytes: params * 12 + STATE_OVERHEAD,
        }
    }

    /// The largest limits any model allows (for fuzzing and for frames before the model is
    /// known).
    pub fn max() -> WireLimits {
        WireLimits::for_params(MAX_PARAMS)
    }

    /// The largest payload a frame of `frame_type` may carry, or `None` for a type outside
    /// this module (the transport's per-type frame limit).
    pub fn frame_limit(&self, frame_type: u8) -> Option<usize> {
        match frame_type {
            FRAME_ROUND_ANNOUNCE => Some(1 + 8 + 4 + 32 + 4 + 32 * MAX_CONTRIBUTORS + 8 + 4),
            FRAME_GRADIENT => Some(1 + 8 + 32 + 4 + 4 + 4 * self.gradient_len),
            FRAME_BLOB_REQUEST => Some(1 + 32),
            FRAME_BLOB_RESPONSE => Some(1 + 32 + 1 + 4 + self.blob_bytes),
            FRAME_FORWARD => Some(1 + 4 + MAX_FORWARD_BYTES),
            FRAME_FORWARD_RESULT => Some(1 + 1 + 8 + 4 + MAX_FORWARD_ERROR),
            FRAME_BLOB_STORED => Some(1 + 32),
            FRAME_JOIN => Some(1),
            FRAME_PEERS => Some(1 + 4 + MAX_PEERS * (32 + 4 + MAX_ADDR_TEXT)),
            _ => None,
        }
    }
}

/// The leader starts (or restarts) round `round` from the params named `params_hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundAnnounce {
    /// The round to compute (the last committed round + 1).
    pub round: u64,
    /// 0 for the first announcement, +1 for each after an abandoned attempt.
    pub attempt: u32,
    /// Hash of the training state to compute the gradient at.
    pub params_hash: StateHash,
    /// The expected workers; a worker's position is its shard index and reduction order.
    pub workers: Vec<NodeId>,
    /// Values a gradient must have.
    pub gradient_len: u64,
    /// Rows per worker mini-batch.
    pub batch_size: u32,
}

/// A worker's gradient for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient {
    /// The round it is for.
    pub round: u64,
    /// The params it was computed at.
    pub params_hash: StateHash,
    /// The batch loss before any update.
    pub loss: f32,
    /// The gradient, laid out like the parameters.
    pub values: Vec<f32>,
}

/// A message of the training frame range.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrainingMessage {
    /// The leader opens (or re-opens) a round for the workers it names.
    RoundAnnounce(RoundAnnounce),
    /// A worker sends its gradient to the leader that announced the round.
    Gradient(Gradient),
    /// Asks a peer for the blob named `hash`.
    BlobRequest {
        /// SHA-256 of the wanted bytes.
        hash: BlobHash,
    },
    /// The blob's bytes, or `None` when the peer does not hold it. The decoder refuses bytes
    /// that do not hash to `hash`.
    BlobResponse {
        /// The blob asked for.
        hash: BlobHash,
        /// Its bytes (at most `WireLimits::blob_bytes`), or `None` when the peer lacks it.
        data: Option<Vec<u8>>,
    },
    /// A follower asks the leader to propose a client's config write (an encoded
    /// `cluster::Command`; the leader refuses anything else).
    Forward {
        /// The encoded command, at most `MAX_FORWARD_BYTES`.
        command: Vec<u8>,
    },
    /// The leader's answer: the log index the write committed at, or why not.
    ForwardResult {
        /// The committed log index, or the reason (cut to `MAX_FORWARD_ERROR` bytes).
        result: Result<u64, String>,
    },
    /// A node stored the blob a leader pushed (a `BlobResponse` sent as a request).
    BlobStored {
        /// The blob now held.
        hash: BlobHash,
    },
    /// The sending node (named by its connection's key) asks the leader to add it as a Raft
    /// voter; the answer is a `ForwardResult` with the change's log index.
    Join,
    /// Cluster members by key and listen address (part of the answer to a `Join`).
    Peers {
        /// Each member's key fingerprint and QUIC listen address (at most `MAX_PEERS`).
        peers: Vec<(NodeId, SocketAddr)>,
    },
}

impl TrainingMessage {
    /// The frame type byte this message travels under.
    pub fn frame_type(&self) -> u8 {
        match self {
            TrainingMessage::RoundAnnounce(_) => FRAME_ROUND_ANNOUNCE,
            TrainingMessage::Gradient(_) => FRAME_GRADIENT,
            TrainingMessage::BlobRequest { .. } => FRAME_BLOB_REQUEST,
            TrainingMessage::BlobResponse { .. } => FRAME_BLOB_RESPONSE,
            TrainingMessage::Forward { .. } => FRAME_FORWARD,
            TrainingMessage::ForwardResult { .. } => FRAME_FORWARD_RESULT,
            TrainingMessage::BlobStored { .. } => FRAME_BLOB_STORED,
            TrainingMessage::Join => FRAME_JOIN,
            TrainingMessage::Peers { .. } => FRAME_PEERS,
        }
    }

    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = match self {
            TrainingMessage::Gradient(g) => Writer::with_capacity(64 + 4 * g.values.len()),
            _ => Writer::new(),
        };
        out.u8(WIRE_VERSION);
        match self {
            TrainingMessage::RoundAnnounce(a) => {
                out.u64(a.round)
                    .u32(a.attempt)
                    .raw(&a.params_hash.0)
                    .count(a.workers.len());
                for id in &a.workers {
                    out.raw(&id.0);
                }
                out.u64(a.gradient_len).u32(a.batch_size);
            }
            TrainingMessage::Gradient(g) => {
                out.u64(g.round)
                    .raw(&g.params_hash.0)
                    .f32(g.loss)
                    .floats(&g.values);
            }
            TrainingMessage::BlobRequest { hash } | TrainingMessage::BlobStored { hash } => {
                out.put(&hash.0);
            }
            TrainingMessage::BlobResponse { hash, data } => {
                out.put(&hash.0).bool(data.is_some());
                if let Some(data) = data {
                    out.bytes(data);
                }
            }
            TrainingMessage::Forward { command } => {
                out.bytes(command);
            }
            TrainingMessage::ForwardResult { result } => match result {
                Ok(index) => {
                    out.bool(true).u64(*index);
                }
                Err(reason) => {
                    let mut end = reason.len().min(MAX_FORWARD_ERROR);
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    out.bool(false).str(&reason[..end]);
                }
            },
            TrainingMessage::Join => {}
            TrainingMessage::Peers { peers } => {
                let peers = &peers[..peers.len().min(MAX_PEERS)];
                out.count(peers.len());
                for (id, addr) in peers {
                    out.raw(&id.0).str(&addr.to_string());
                }
            }
        }
        out.into_bytes()
    }

    /// Decodes a payload of `frame_type`, bounding sizes by `limits`.
    pub fn decode(
        frame_type: u8,
        payload: &[u8],
        limits: &WireLimits,
    ) -> Result<TrainingMessage, DecodeError> {
        let mut r = Reader::new(payload);
        let version = r.u8("training message version")?;
        if version != WIRE_VERSION {
            return Err(DecodeError::BadTag {
                what: "training message version",
                tag: version,
                offset: 0,
            });
        }
        let message = match frame_type {
            FRAME_ROUND_ANNOUNCE => {
                let round = r.u64("round")?;
                let attempt = r.u32("attempt")?;
                let params_hash = StateHash(r.array("params hash")?);
                let count = r.count("workers", MAX_CONTRIBUTORS, 32)?;
                let mut workers = Vec::with_capacity(count);
                for _ in 0..count {
                    workers.push(NodeId(r.array("worker")?));
                }
                let at = r.offset();
                let gradient_len = r.u64("gradient length")?;
                at_most("gradient length", gradient_len, limits.gradient_len, at)?;
                TrainingMessage::RoundAnnounce(RoundAnnounce {
                    round,
                    attempt,
                    params_hash,
                    workers,
                    gradient_len,
                    batch_size: r.u32("batch size")?,
                })
            }
            FRAME_GRADIENT => TrainingMessage::Gradient(Gradient {
                round: r.u64("round")?,
                params_hash: StateHash(r.array("params hash")?),
                loss: r.f32("loss")?,
                values: r.floats("gradient", limits.gradient_len)?,
            }),
            FRAME_BLOB_REQUEST => TrainingMessage::BlobRequest {
                hash: BlobHash(r.get()?),
            },
            FRAME_BLOB_RESPONSE => {
                let hash = BlobHash(r.get()?);
                let data = match r.bool("blob present")? {
                    true => {
                        let at = r.offset();
                        let data = r.bytes("blob", limits.blob_bytes)?;
                        if BlobHash::of(data) != hash {
                            return Err(DecodeError::Invalid {
                                what: "blob",
                                reason: "its bytes do not hash to the blob's name",
                                offset: at,
                            });
                        }
                        Some(data.to_vec())
                    }
                    false => None,
                };
                TrainingMessage::BlobResponse { hash, data }
            }
            FRAME_BLOB_STORED => TrainingMessage::BlobStored {
                hash: BlobHash(r.get()?),
            },
            FRAME_FORWARD => TrainingMessage::Forward {
                command: r.bytes("forwarded command", MAX_FORWARD_BYTES)?.to_vec(),
            },
            FRAME_JOIN => TrainingMessage::Join,
            FRAME_PEERS => {
                let count = r.count("peers", MAX_PEERS, 32 + 4)?;
                let mut peers = Vec::with_capacity(count);
                for _ in 0..count {
                    let id = NodeId(r.array("peer key")?);
                    let at = r.offset();
                    let addr = r.str("peer address", MAX_ADDR_TEXT)?.parse().map_err(|_| {
                        DecodeError::Invalid {
                            what: "peer address",
                            reason: "not IP:PORT",
                            offset: at,
                        }
                    })?;
                    peers.push((id, addr));
                }
                TrainingMessage::Peers { peers }
            }
            FRAME_FORWARD_RESULT => TrainingMessage::ForwardResult {
                result: match r.bool("forward succeeded")? {
                    true => Ok(r.u64("log index")?),
                    false => Err(r.str("forward error", MAX_FORWARD_ERROR)?.to_owned()),
                },
            },
            other => {
                return Err(DecodeError::BadTag {
                    what: "training frame type",
                    tag: other,
                    offset: 0,
                });
            }
        };
        r.finish()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> WireLimits {
        WireLimits::for_params(8)
    }

    fn samples() -> Vec<TrainingMessage> {
        let blob = b"params".to_vec();
        vec![
            TrainingMessage::RoundAnnounce(RoundAnnounce {
                round: 4,
                attempt: 1,
                params_hash: StateHash([3; 32]),
                workers: vec![NodeId([1; 32]), NodeId([2; 32])],
                gradient_len: 8,
                batch_size: 32,
            }),
            TrainingMessage::Gradient(Gradient {
                round: 4,
                params_hash: StateHash([3; 32]),
                loss: 1.5,
                values: vec![0.5, -1.0, 0.0, 2.0, 1e-9, 3.0, -0.0, 7.0],
            }),
            TrainingMessage::BlobRequest {
                hash: BlobHash([5; 32]),
            },
            TrainingMessage::BlobResponse {
                hash: BlobHash::of(&blob),
                data: Some(blob),
            },
            TrainingMessage::BlobResponse {
                hash: BlobHash([5; 32]),
                data: None,
            },
            TrainingMessage::Forward {
                command: b"config write".to_vec(),
            },
            TrainingMessage::ForwardResult { result: Ok(42) },
            TrainingMessage::BlobStored {
                hash: BlobHash([6; 32]),
            },
            TrainingMessage::ForwardResult {
                result: Err("not the leader".into()),
            },
            TrainingMessage::Join,
            TrainingMessage::Peers {
                peers: vec![
                    (NodeId([1; 32]), "127.0.0.1:7100".parse().unwrap()),
                    (NodeId([2; 32]), "[::1]:7101".parse().unwrap()),
                ],
            },
        ]
    }

    #[test]
    fn messages_round_trip_within_their_frame_limit() {
        for message in samples() {
            let payload = message.encode();
            let limit = limits().frame_limit(message.frame_type()).unwrap();
            assert!(
                payload.len() <= limit,
                "{message:?}: {} > {limit}",
                payload.len()
            );
            assert_eq!(
                TrainingMessage::decode(message.frame_type(), &payload, &limits()),
                Ok(message)
            );
        }
        assert_eq!(limits().frame_limit(0x30), None);
        assert!((0x50..=0x6f).contains(&FRAME_BLOB_RESPONSE));
    }

    #[test]
    fn oversized_gradients_and_forged_blobs_are_refused() {
        let long = TrainingMessage::Gradient(Gradient {
            round: 1,
            params_hash: StateHash([0; 32]),
            loss: 0.0,
            values: vec![1.0; 9],
        });
        assert!(matches!(
            TrainingMessage::decode(FRAME_GRADIENT, &long.encode(), &limits()),
            Err(DecodeError::TooLong {
                count: 9,
                limit: 8,
                ..
            })
        ));
        let forged = TrainingMessage::BlobResponse {
            hash: BlobHash([0; 32]),
            data: Some(b"other bytes".to_vec()),
        };
        let err =
            TrainingMessage::decode(FRAME_BLOB_RESPONSE, &forged.encode(), &limits()).unwrap_err();
        assert!(err.to_string().contains("do not hash"), "{err}");
        let too_big = TrainingMessage::BlobResponse {
            hash: BlobHash::of(&[0; 200]),
            data: Some(vec![0; 200]),
        };
        let tight = WireLimits {
            gradient_len: 8,
            blob_bytes: 100,
        };
        assert!(TrainingMessage::decode(FRAME_BLOB_RESPONSE, &too_big.encode(), &tight).is_err());
    }

    #[test]
    fn truncations_versions_and_unknown_types_are_refused() {
        for message in samples() {
            let payload = message.encode();
            for cut in 0..payload.len() {
                assert!(
                    TrainingMessage::decode(message.frame_type(), &payload[..cut], &limits())
                        .is_err()
                );
            }
            let mut extra = payload.clone();
            extra.push(0);
            assert!(TrainingMessage::decode(message.frame_type(), &extra, &limits()).is_err());
            let mut other = payload;
            other[0] = 2;
            assert!(TrainingMessage::decode(message.frame_type(), &other, &limits()).is_err());
        }
        assert!(TrainingMessage::decode(0x6f, &[WIRE_VERSION], &limits()).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_payloads_never_panics(
            frame_type in 0x50u8..=0x54,
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            for limits in [limits(), WireLimits::max()] {
                if let Ok(message) = TrainingMessage::decode(frame_type, &bytes, &limits) {
                    prop_assert_eq!(message.encode(), bytes.clone());
                }
            }
        }
    }
}
