//! Network profiles: the genesis block, target block time, pow limit and retarget rule of each
//! network (`regtest`, `devnet`, `testnet`), read from `configs/networks.toml`.
//!
//! Parses and validates text handed to it (the built-in profiles are that file compiled in);
//! it never reads files itself, so `config.rs` or a test can pass any TOML text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::block::{Block, BlockBody, Coinbase, MAX_RECEIPT_BYTES, NodeId, Receipt};
use super::header::{BlockHash, BlockHeader};
use crate::target::{CompactBits, Target};

/// The networks built into the binary: `configs/networks.toml` as it was at build time.
pub const BUILTIN_NETWORKS_TOML: &str = include_str!("../../configs/networks.toml");

/// The longest default mining pace a profile may set (one hour).
pub const MAX_PACE_MS: u64 = 3_600_000;

/// How the target of the next block is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RetargetRule {
    /// Every block uses the pow limit (regtest: a CPU finds blocks in microseconds).
    Fixed,
    /// Every block retargets from the mean target and the time span of the last `window`
    /// blocks toward the target block time; the span is clamped to within `max_factor` of
    /// the expected one, so one step changes difficulty by at most that factor.
    PerBlock {
        /// Number of past blocks averaged, 1 to 1000.
        window: u32,
        /// Most the difficulty may change in one block, as a factor, 2 to 64.
        max_factor: u32,
    },
}

/// The genesis block's parameters as a config holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSpec {
    /// Unix seconds; fixed so every node computes the same genesis hash.
    pub time: u32,
    /// Compact bits of the genesis header (must not be easier than `pow_limit`).
    pub bits: u32,
    /// A nonce for which the genesis header meets `bits`.
    pub nonce: u32,
    /// Text of the genesis block's single receipt (makes each network's genesis unique).
    pub message: String,
}

/// One network as a config holds it (a `[name]` table of `networks.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Seconds the retarget rule aims for between blocks, 1 to 86400.
    pub target_block_time_secs: u64,
    /// Compact bits of the easiest target any block may have.
    pub pow_limit: u32,
    /// How each block's target is chosen.
    pub retarget: RetargetRule,
    /// Default mining pace in milliseconds: a miner waits a random 0..=2×pace after each new
    /// tip. Non-zero for fixed easy targets (regtest), where blocks would otherwise come as
    /// fast as a CPU hashes; a node's config may set its own (`mining.pace_ms`, 0 allowed).
    #[serde(default)]
    pub pace_ms: u64,
    /// The parameters of the network's first block.
    pub genesis: GenesisSpec,
}

/// Everything the chain rules need to know about one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkParams {
    /// The profile's name in `networks.toml` (`regtest`, `devnet`, `testnet`, ...).
    pub name: String,
    /// The block at height 0, built from the spec; its hash must match a peer's in the
    /// handshake.
    pub genesis: Block,
    /// Seconds the retarget rule aims for between blocks, 1 to 86400.
    pub target_block_time_secs: u64,
    /// The easiest target any block may have.
    pub pow_limit: Target,
    /// How each block's target is chosen.
    pub retarget: RetargetRule,
    /// The mining pace a node uses unless its config sets one (see `NetworkSpec::pace_ms`).
    pub pace_ms: u64,
}

/// Why a network profile is unknown or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// No profile of that name exists.
    #[error("unknown network `{name}`; known networks: {}", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names of the profiles that do exist.
        known: Vec<String>,
    },
    /// The networks text is not TOML of the expected shape (syntax, unknown key, wrong
    /// type); holds the parser's message.
    #[error("networks file is not valid: {0}")]
    Parse(String),
    /// A profile parsed but one of its values is out of range or inconsistent.
    #[error("network `{network}`: key `{key}` {reason}")]
    Invalid {
        /// The profile's name.
        network: String,
        /// The offending key, dotted (`retarget.window`, `genesis.nonce`, ...).
        key: &'static str,
        /// What is wrong with the value and what range to use.
        reason: String,
    },
}

impl NetworkParams {
    /// A built-in network (`regtest`, `devnet`, `testnet`).
    pub fn by_name(name: &str) -> Result<NetworkParams, NetworkError> {
        let mut all = parse_networks(BUILTIN_NETWORKS_TOML)?;
        match all.remove(name) {
            Some(params) => Ok(params),
            None => Err(NetworkError::Unknown {
                name: name.to_string(),
                known: all.keys().cloned().collect(),
            }),
        }
    }

    /// The regtest profile (fixed easy target), for tests and demos.
    pub fn regtest() -> NetworkParams {
        // The built-in file is checked by the `builtin_networks_are_valid` test.
        match NetworkParams::by_name("regtest") {
            Ok(params) => params,
            Err(e) => unreachable!("built-in regtest profile is invalid: {e}"),
        }
    }

    /// Builds and checks a network from its config form.
    pub fn from_spec(name: &str, spec: &NetworkSpec) -> Result<NetworkParams, NetworkError> {
        let invalid = |key: &'static str, reason: String| NetworkError::Invalid {
            network: name.to_string(),
            key,
            reason,
        };
        if spec.target_block_time_secs == 0 || spec.target_block_time_secs > 86_400 {
            return Err(invalid(
                "target_block_time_secs",
                format!("is {}; use 1 to 86400 seconds", spec.target_block_time_secs),
            ));
        }
        let pow_limit = Target::from_compact(CompactBits(spec.pow_limit))
            .map_err(|e| invalid("pow_limit", e.to_string()))?;
        if spec.pace_ms > MAX_PACE_MS {
            return Err(invalid(
                "pace_ms",
                format!("is {}; use 0 to {MAX_PACE_MS} milliseconds", spec.pace_ms),
            ));
        }
        if let RetargetRule::PerBlock { window, max_factor } = spec.retarget {
            if !(1..=1000).contains(&window) {
                return Err(invalid(
                    "retarget.window",
                    format!("is {window}; use 1 to 1000 blocks"),
                ));
            }
            if !(2..=64).contains(&max_factor) {
                return Err(invalid(
                    "retarget.max_factor",
                    format!("is {max_factor}; use 2 to 64"),
                ));
            }
        }
        let genesis_target = Target::from_compact(CompactBits(spec.genesis.bits))
            .map_err(|e| invalid("genesis.bits", e.to_string()))?;
        if genesis_target > pow_limit {
            return Err(invalid(
                "genesis.bits",
                format!(
                    "{:08x} is easier than pow_limit {:08x}",
                    spec.genesis.bits, spec.pow_limit
                ),
            ));
        }
        if spec.genesis.message.len() > MAX_RECEIPT_BYTES {
            return Err(invalid(
                "genesis.message",
                format!("is longer than {MAX_RECEIPT_BYTES} bytes"),
            ));
        }
        let genesis = genesis_block(&spec.genesis, spec.genesis.nonce);
        if !genesis_target.is_met_by(&genesis.hash().0) {
            let hint = match find_genesis_nonce(&spec.genesis, 1 << 28) {
                Some(nonce) => format!("; nonce {nonce} does"),
                None => String::new(),
            };
            return Err(invalid(
                "genesis.nonce",
                format!(
                    "{} does not meet genesis.bits {:08x}{hint}",
                    spec.genesis.nonce, spec.genesis.bits
                ),
            ));
        }
        Ok(NetworkParams {
            name: name.to_string(),
            genesis,
            target_block_time_secs: spec.target_block_time_secs,
            pow_limit,
            retarget: spec.retarget,
            pace_ms: spec.pace_ms,
        })
    }

    /// The genesis block's hash (what peers compare in the handshake).
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis.hash()
    }
}

/// Parses a `networks.toml` text: one `[name]` table per network. Unknown keys, bad values and
/// a genesis nonce that misses its target are errors naming the network and key.
pub fn parse_networks(text: &str) -> Result<BTreeMap<String, NetworkParams>, NetworkError> {
    let specs: BTreeMap<String, NetworkSpec> =
        toml::from_str(text).map_err(|e| NetworkError::Parse(e.to_string()))?;
    specs
        .iter()
        .map(|(name, spec)| Ok((name.clone(), NetworkParams::from_spec(name, spec)?)))
        .collect()
}

/// The genesis block a spec describes, with `nonce` in its header.
pub fn genesis_block(spec: &GenesisSpec, nonce: u32) -> Block {
    let body = BlockBody {
        coinbase: Coinbase {
            miner: NodeId([0; 32]),
            height: 0,
            extra_nonce: 0,
        },
        receipts: vec![Receipt(spec.message.as_bytes().to_vec())],
    };
    Block {
        header: BlockHeader {
            version: 1,
            prev: BlockHash::ZERO,
            merkle_root: body.merkle_root(),
            time: spec.time,
            bits: CompactBits(spec.bits),
            nonce,
        },
        body,
    }
}

/// The first nonce below `limit` for which the genesis block meets its bits (for writing a
/// new network's config).
pub fn find_genesis_nonce(spec: &GenesisSpec, limit: u64) -> Option<u32> {
    let target = Target::from_compact(CompactBits(spec.bits)).ok()?;
    let mut header = genesis_block(spec, 0).header;
    (0..limit.min(1 << 32)).map(|n| n as u32).find(|&nonce| {
        header.nonce = nonce;
        target.is_met_by(&header.hash().0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_networks_are_valid_and_distinct() {
        let all = parse_networks(BUILTIN_NETWORKS_TOML).expect("built-in networks parse");
        assert!(all.contains_key("regtest"));
        assert!(all.contains_key("devnet"));
        assert!(all.contains_key("testnet"));
        let hashes: std::collections::HashSet<_> =
            all.values().map(NetworkParams::genesis_hash).collect();
        assert_eq!(hashes.len(), all.len(), "each network has its own genesis");
        let regtest = NetworkParams::regtest();
        assert_eq!(regtest.retarget, RetargetRule::Fixed);
        assert_eq!(regtest.pow_limit.to_compact(), CompactBits(0x207fffff));
    }

    #[test]
    fn regtest_carries_its_own_pace_and_retargeting_networks_need_none() {
        // regtest's target is trivially easy: unpaced, one CPU makes hundreds of blocks a
        // second and chain time outruns the clock.
        assert!(NetworkParams::regtest().pace_ms >= 500);
        for name in ["devnet", "testnet"] {
            let params = NetworkParams::by_name(name).expect(name);
            assert_eq!(params.pace_ms, 0, "{name} retargets toward its block time");
        }
        let bad = BUILTIN_NETWORKS_TOML.replacen("pace_ms = 1000", "pace_ms = 99999999", 1);
        assert_ne!(bad, BUILTIN_NETWORKS_TOML);
        let Err(err) = parse_networks(&bad) else {
            panic!("an hour-long pace must be refused");
        };
        assert!(err.to_string().contains("pace_ms"), "{err}");
    }

    #[test]
    fn unknown_network_lists_the_known_ones() {
        let err = NetworkParams::by_name("mainnet").expect_err("no mainnet");
        let text = err.to_string();
        assert!(
            text.contains("mainnet") && text.contains("regtest"),
            "{text}"
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let good = BUILTIN_NETWORKS_TOML;
        let bad = good.replacen("target_block_time_secs = 1", "target_block_secs = 1", 1);
        assert_ne!(bad, good);
        let Err(err) = parse_networks(&bad) else {
            panic!("an unknown key must be an error");
        };
        assert!(err.to_string().contains("target_block_secs"), "{err}");

        let spec = NetworkSpec {
            target_block_time_secs: 0,
            pow_limit: 0x207fffff,
            retarget: RetargetRule::Fixed,
            pace_ms: 0,
            genesis: GenesisSpec {
                time: 1,
                bits: 0x207fffff,
                nonce: 0,
                message: "x".into(),
            },
        };
        let err = NetworkParams::from_spec("t", &spec).expect_err("zero block time");
        assert!(matches!(
            err,
            NetworkError::Invalid {
                key: "target_block_time_secs",
                ..
            }
        ));
        let spec = NetworkSpec {
            target_block_time_secs: 5,
            retarget: RetargetRule::PerBlock {
                window: 0,
                max_factor: 4,
            },
            ..spec
        };
        let err = NetworkParams::from_spec("t", &spec).expect_err("zero window");
        assert!(matches!(
            err,
            NetworkError::Invalid {
                key: "retarget.window",
                ..
            }
        ));
    }

    #[test]
    fn a_genesis_nonce_that_misses_its_target_is_refused_with_a_hint() {
        let mut genesis = GenesisSpec {
            time: 1_800_000_000,
            bits: 0x1f00ffff,
            nonce: 0,
            message: "hint test".into(),
        };
        let good = find_genesis_nonce(&genesis, 1 << 24).expect("a nonce exists");
        genesis.nonce = good.wrapping_add(1);
        let target = Target::from_compact(CompactBits(genesis.bits)).expect("bits");
        if target.is_met_by(&genesis_block(&genesis, genesis.nonce).hash().0) {
            return; // the neighbour happens to qualify too (probability 2^-16)
        }
        let spec = NetworkSpec {
            target_block_time_secs: 5,
            pow_limit: 0x1f00ffff,
            retarget: RetargetRule::Fixed,
            pace_ms: 0,
            genesis,
        };
        let err = NetworkParams::from_spec("t", &spec).expect_err("bad nonce");
        assert!(
            err.to_string().contains(&format!("nonce {good} does")),
            "{err}"
        );
    }
}
