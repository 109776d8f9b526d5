//! The commands a cluster proposes through Raft, and their versioned binary encoding (built on
//! `codec`; the decoder bounds every size and never panics). Large payloads — parameters,
//! gradients — are named by hash only and never enter the log.
//!
//! Layout: `version u8 | tag u8 | request (client u64, seq u64) | fields…` (little-endian).

use std::fmt;
use std::str::FromStr;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::node_id::NodeId;
use crate::train::StateHash;
use crate::train::aggregate::Rule;
use crate::train::optimizer::OptimizerSettings;
use crate::train::setup::MAX_WORKERS;

use super::{BlobHash, ClusterError};

/// The command format version `encode` writes and `decode` accepts.
pub const COMMAND_VERSION: u8 = 2;
/// Most contributors one round may name (the most workers a simulation allows).
pub const MAX_CONTRIBUTORS: usize = MAX_WORKERS;
/// Longest config key in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest config value in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

const TAG_ROUND: u8 = 1;
const TAG_PUT: u8 = 2;
const TAG_CAS: u8 = 3;
const TAG_MODEL: u8 = 4;

/// Names one client request so a retried command applies once: a client picks a random
/// `client` id and numbers its requests with increasing `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RequestId {
    /// The client (an HTTP front end, a leader proposing rounds).
    pub client: u64,
    /// Increasing per client; a request at or below the last applied one is a retry.
    pub seq: u64,
}

/// How many of the announced workers a leader waits for before it reduces (Cassandra's
/// levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsistencyLevel {
    /// One gradient.
    One,
    /// A majority of the workers.
    Quorum,
    /// Every worker.
    #[default]
    All,
}

impl ConsistencyLevel {
    /// The gradients needed out of `workers`.
    pub fn required(self, workers: usize) -> usize {
        match self {
            ConsistencyLevel::One => workers.min(1),
            ConsistencyLevel::Quorum => workers / 2 + 1,
            ConsistencyLevel::All => workers,
        }
    }

    /// The level's name as config values spell it.
    pub fn name(self) -> &'static str {
        match self {
            ConsistencyLevel::One => "one",
            ConsistencyLevel::Quorum => "quorum",
            ConsistencyLevel::All => "all",
        }
    }

    fn tag(self) -> u8 {
        match self {
            ConsistencyLevel::One => 0,
            ConsistencyLevel::Quorum => 1,
            ConsistencyLevel::All => 2,
        }
    }
}

impl fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConsistencyLevel {
    type Err = ClusterError;
    fn from_str(text: &str) -> Result<Self, ClusterError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "one" => Ok(ConsistencyLevel::One),
            "quorum" => Ok(ConsistencyLevel::Quorum),
            "all" => Ok(ConsistencyLevel::All),
            _ => Err(ClusterError::UnknownConsistency {
                level: text.trim().chars().take(MAX_KEY_BYTES).collect(),
            }),
        }
    }
}

/// A training round the leader finished: what the log keeps of it (hashes, not payloads).
#[derive(Debug, Clone, PartialEq)]
pub struct RoundCommitted {
    /// The proposing leader's request.
    pub request: RequestId,
    /// The round completed (1 for the first; the trainer's round counter after the step).
    pub round: u64,
    /// Hash of the training state the round started from (the previous round's `params_hash`).
    pub parent_hash: StateHash,
    /// Hash of the training state after the step (`train::TrainState::hash`).
    pub params_hash: StateHash,
    /// Hash of the reduced gradient's blob: a node that holds the parent state steps with it
    /// and checks `params_hash`, instead of fetching the whole state.
    pub reduced_hash: BlobHash,
    /// The workers whose gradients were reduced, in reduction order.
    pub contributors: Vec<NodeId>,
    /// Mean batch loss of the contributors (before the step).
    pub loss: f32,
    /// The learning rate of the step (the config store's rate and schedule at this round, as
    /// the round was announced; 0 at the end of a cosine).
    pub learning_rate: f32,
    /// The optimizer's settings for the step (the config store's when the round was announced).
    pub optimizer: OptimizerSettings,
    /// The rule that reduced them.
    pub rule: Rule,
    /// The level the leader waited for.
    pub consistency: ConsistencyLevel,
}

/// Round 0 of an external model: the first worker's layout and initial values, committed once
/// as a training-state blob named by its hash (every node loads the same one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRegistered {
    /// The registering node's request.
    pub request: RequestId,
    /// Hash of the round-0 training state (`TrainState::hash`; its blob has the same name).
    pub params_hash: StateHash,
    /// SHA-256 of the layout's canonical encoding (`train::Layout::hash`).
    pub layout_hash: [u8; 32],
    /// Values in the parameter vector.
    pub params: u64,
}

/// A command in the Raft log.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// A finished training round.
    RoundCommitted(RoundCommitted),
    /// An external model's round 0.
    ModelRegistered(ModelRegistered),
    /// Set a config key.
    ConfigPut {
        /// The client request, so a retried write applies once.
        request: RequestId,
        /// The config key (at most `MAX_KEY_BYTES`).
        key: String,
        /// The new value (at most `MAX_VALUE_BYTES`).
        value: String,
    },
    /// Set a config key only if its current value is `expected` (`None`: only if unset).
    ConfigCas {
        /// The client request, so a retried write applies once.
        request: RequestId,
        /// The config key (at most `MAX_KEY_BYTES`).
        key: String,
        /// The value the key must hold for the write to apply (`None`: the key must be unset).
        expected: Option<String>,
        /// The new value (at most `MAX_VALUE_BYTES`).
        value: String,
    },
}

impl Command {
    /// The request that proposed this command.
    pub fn request(&self) -> RequestId {
        match self {
            Command::RoundCommitted(round) => round.request,
            Command::ModelRegistered(model) => model.request,
            Command::ConfigPut { request, .. } | Command::ConfigCas { request, .. } => *request,
        }
    }
}

fn put_request(out: &mut Writer, request: RequestId) {
    out.u64(request.client).u64(request.seq);
}

fn get_request(r: &mut Reader<'_>) -> Result<RequestId, DecodeError> {
    Ok(RequestId {
        client: r.u64("request client")?,
        seq: r.u64("request seq")?,
    })
}

/// Checks a decoded number against its limit (`DecodeError::TooLong` names both).
pub(crate) fn at_most(
    what: &'static str,
    value: u64,
    limit: usize,
    offset: usize,
) -> Result<usize, DecodeError> {
    match usize::try_from(value) {
        Ok(v) if v <= limit => Ok(v),
        _ => Err(DecodeError::TooLong {
            what,
            count: value,
            limit,
            offset,
        }),
    }
}

/// Appends a rule: tag, then its parameters as u32s.
pub(crate) fn put_rule(out: &mut Writer, rule: &Rule) {
    let word = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    match *rule {
        Rule::Mean => {
            out.u8(0);
        }
        Rule::Median => {
            out.u8(1);
        }
        Rule::TrimmedMean { trim } => {
            out.u8(2).u32(word(trim));
        }
        Rule::Krum { byzantine, select } => {
            out.u8(3).u32(word(byzantine)).u32(word(select));
        }
    }
}

/// Reads a rule written by `put_rule`; parameters are bounded by the most workers.
pub(crate) fn get_rule(r: &mut Reader<'_>) -> Result<Rule, DecodeError> {
    let offset = r.offset();
    let param = |r: &mut Reader<'_>, what: &'static str| -> Result<usize, DecodeError> {
        let at = r.offset();
        let value = r.u32(what)?;
        at_most(what, u64::from(value), MAX_WORKERS, at)
    };
    match r.u8("rule")? {
        0 => Ok(Rule::Mean),
        1 => Ok(Rule::Median),
        2 => Ok(Rule::TrimmedMean {
            trim: param(r, "trim")?,
        }),
        3 => Ok(Rule::Krum {
            byzantine: param(r, "krum byzantine")?,
            select: param(r, "krum select")?,
        }),
        tag => Err(DecodeError::BadTag {
            what: "rule",
            tag,
            offset,
        }),
    }
}

fn get_level(r: &mut Reader<'_>) -> Result<ConsistencyLevel, DecodeError> {
    let offset = r.offset();
    match r.u8("consistency level")? {
        0 => Ok(ConsistencyLevel::One),
        1 => Ok(ConsistencyLevel::Quorum),
        2 => Ok(ConsistencyLevel::All),
        tag => Err(DecodeError::BadTag {
            what: "consistency level",
            tag,
            offset,
        }),
    }
}

impl Encode for RoundCommitted {
    fn encode_to(&self, out: &mut Writer) {
        put_request(out, self.request);
        out.u64(self.round)
            .raw(&self.parent_hash.0)
            .raw(&self.params_hash.0)
            .raw(&self.reduced_hash.0)
            .count(self.contributors.len());
        for id in &self.contributors {
            out.raw(&id.0);
        }
        out.f32(self.loss).f32(self.learning_rate);
        self.optimizer.encode_to(out);
        put_rule(out, &self.rule);
        out.u8(self.consistency.tag());
    }
}

impl Decode for RoundCommitted {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request = get_request(r)?;
        let round = r.u64("round")?;
        let parent_hash = StateHash(r.array("parent hash")?);
        let params_hash = StateHash(r.array("params hash")?);
        let reduced_hash = BlobHash(r.array("reduced gradient hash")?);
        let count = r.count("contributors", MAX_CONTRIBUTORS, 32)?;
        let mut contributors = Vec::with_capacity(count);
        for _ in 0..count {
            contributors.push(NodeId(r.array("contributor")?));
        }
        let at = r.offset();
        let loss = r.f32("loss")?;
        if loss.is_nan() {
            return Err(DecodeError::Invalid {
                what: "loss",
                reason: "NaN",
                offset: at,
            });
        }
        let at = r.offset();
        let learning_rate = r.f32("learning rate")?;
        if !(learning_rate.is_finite() && learning_rate >= 0.0) {
            return Err(DecodeError::Invalid {
                what: "learning rate",
                reason: "not a finite number ≥ 0",
                offset: at,
            });
        }
        Ok(RoundCommitted {
            learning_rate,
            optimizer: OptimizerSettings::decode_from(r)?,
            request,
            round,
            parent_hash,
            params_hash,
            reduced_hash,
            contributors,
            loss,
            rule: get_rule(r)?,
            consistency: get_level(r)?,
        })
    }
}

impl Encode for Command {
    fn encode_to(&self, out: &mut Writer) {
        out.u8(COMMAND_VERSION);
        match self {
            Command::RoundCommitted(round) => {
                out.u8(TAG_ROUND).put(round);
            }
            Command::ModelRegistered(model) => {
                out.u8(TAG_MODEL);
                put_request(out, model.request);
                out.raw(&model.params_hash.0)
                    .raw(&model.layout_hash)
                    .u64(model.params);
            }
            Command::ConfigPut {
                request,
                key,
                value,
            } => {
                out.u8(TAG_PUT);
                put_request(out, *request);
                out.str(key).str(value);
            }
            Command::ConfigCas {
                request,
                key,
                expected,
                value,
            } => {
                out.u8(TAG_CAS);
                put_request(out, *request);
                out.str(key).bool(expected.is_some());
                if let Some(expected) = expected {
                    out.str(expected);
                }
                out.str(value);
            }
        }
    }
}

impl Decode for Command {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = r.offset();
        let version = r.u8("command version")?;
        if version != COMMAND_VERSION {
            return Err(DecodeError::BadTag {
                what: "command version",
                tag: version,
                offset,
            });
        }
        let offset = r.offset();
        match r.u8("command")? {
            TAG_ROUND => Ok(Command::RoundCommitted(r.get()?)),
            TAG_MODEL => {
                let request = get_request(r)?;
                let params_hash = StateHash(r.array("params hash")?);
                let layout_hash = r.array("layout hash")?;
                let at = r.offset();
                let params = r.u64("parameter count")?;
                if params == 0 || params > crate::train::params::MAX_PARAMS as u64 {
                    return Err(DecodeError::Invalid {
                        what: "parameter count",
                        reason: "0 or above the most a training state holds",
                        offset: at,
                    });
                }
                Ok(Command::ModelRegistered(ModelRegistered {
                    request,
                    params_hash,
                    layout_hash,
                    params,
                }))
            }
            TAG_PUT => Ok(Command::ConfigPut {
                request: get_request(r)?,
                key: r.str("config key", MAX_KEY_BYTES)?.to_owned(),
                value: r.str("config value", MAX_VALUE_BYTES)?.to_owned(),
            }),
            TAG_CAS => {
                let request = get_request(r)?;
                let key = r.str("config key", MAX_KEY_BYTES)?.to_owned();
                let expected = match r.bool("expected present")? {
                    true => Some(r.str("expected value", MAX_VALUE_BYTES)?.to_owned()),
                    false => None,
                };
                Ok(Command::ConfigCas {
                    request,
                    key,
                    expected,
                    value: r.str("config value", MAX_VALUE_BYTES)?.to_owned(),
                })
            }
            tag => Err(DecodeError::BadTag {
                what: "command",
                tag,
                offset,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn round(round: u64) -> RoundCommitted {
        RoundCommitted {
            request: RequestId {
                client: 7,
                seq: round,
            },
            round,
            parent_hash: StateHash([round as u8; 32]),
            params_hash: StateHash([round as u8 + 1; 32]),
            reduced_hash: BlobHash([0xaa; 32]),
            contributors: vec![NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32])],
            loss: 0.25,
            learning_rate: 0.002,
            optimizer: OptimizerSettings::default(),
            rule: Rule::Krum {
                byzantine: 1,
                select: 2,
            },
            consistency: ConsistencyLevel::Quorum,
        }
    }

    fn samples() -> Vec<Command> {
        let request = RequestId { client: 1, seq: 2 };
        vec![
            Command::RoundCommitted(round(3)),
            Command::ModelRegistered(ModelRegistered {
                request,
                params_hash: StateHash([9; 32]),
                layout_hash: [8; 32],
                params: 12_345,
            }),
            Command::RoundCommitted(RoundCommitted {
                rule: Rule::TrimmedMean { trim: 1 },
                contributors: Vec::new(),
                ..round(1)
            }),
            Command::ConfigPut {
                request,
                key: "learning_rate".into(),
                value: "0.0005".into(),
            },
            Command::ConfigCas {
                request,
                key: "user.x".into(),
                expected: None,
                value: "1".into(),
            },
            Command::ConfigCas {
                request,
                key: "user.x".into(),
                expected: Some("1".into()),
                value: "2".into(),
            },
        ]
    }

    #[test]
    fn commands_round_trip() {
        for command in samples() {
            let bytes = command.to_bytes();
            assert_eq!(Command::from_bytes(&bytes), Ok(command.clone()));
            assert_eq!(
                Command::from_bytes(&bytes).unwrap().request(),
                command.request()
            );
        }
    }

    #[test]
    fn truncations_other_versions_and_tags_are_refused() {
        for command in samples() {
            let bytes = command.to_bytes();
            for cut in 0..bytes.len() {
                assert!(Command::from_bytes(&bytes[..cut]).is_err());
            }
        }
        let mut bytes = samples()[0].to_bytes();
        bytes[0] = 1;
        assert!(matches!(
            Command::from_bytes(&bytes),
            Err(DecodeError::BadTag {
                what: "command version",
                ..
            })
        ));
        bytes[0] = COMMAND_VERSION;
        bytes[1] = 9;
        assert!(matches!(
            Command::from_bytes(&bytes),
            Err(DecodeError::BadTag {
                what: "command",
                ..
            })
        ));
    }

    #[test]
    fn levels_require_their_share_of_workers() {
        assert_eq!(
            [1, 2, 3, 5].map(|n| ConsistencyLevel::One.required(n)),
            [1, 1, 1, 1]
        );
        assert_eq!(
            [1, 2, 3, 5].map(|n| ConsistencyLevel::Quorum.required(n)),
            [1, 2, 2, 3]
        );
        assert_eq!(
            [1, 2, 3, 5].map(|n| ConsistencyLevel::All.required(n)),
            [1, 2, 3, 5]
        );
        assert_eq!("QUORUM".parse(), Ok(ConsistencyLevel::Quorum));
        assert!("two".parse::<ConsistencyLevel>().is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(command) = Command::from_bytes(&bytes) {
                prop_assert_eq!(command.to_bytes(), bytes);
            }
        }

        #[test]
        fn mutated_commands_never_panic(index in 0usize..5, flip in any::<(usize, u8)>()) {
            let mut bytes = samples()[index].to_bytes();
            let at = flip.0 % bytes.len();
            bytes[at] ^= flip.1;
            let _ = Command::from_bytes(&bytes);
        }
    }
}
