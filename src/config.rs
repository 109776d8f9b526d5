//! The node's TOML configuration: `NodeConfig` with defaults, parsed strictly (an unknown or
//! mistyped key is an error naming the key and the file) and checked for values that cannot
//! work. Command-line flags override it in `cli::node`.
//!
//! Owns parsing and validation only; must not start anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::NodeId;
use crate::node_id::NodeIdError;

/// Errors in a config file or a flag.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read (missing, no permission, not UTF-8).
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file (or origin name) the text came from.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        message: String,
    },
    /// A value parsed but cannot work (out of range, unknown name, malformed peer address).
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The offending key, dotted (`net.ban_secs`, `mining.threads`, ...).
        key: &'static str,
        /// What is wrong and which values are allowed.
        reason: String,
    },
}

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Directory for the chain store and the node key.
    pub data_dir: PathBuf,
    /// Network profile name (`regtest`, …); peers on another network are refused.
    pub network: String,
    /// `[net]`: the QUIC endpoint and peers.
    pub net: NetSection,
    /// `[http]`: the status and metrics server.
    pub http: HttpSection,
    /// `[mining]`: whether and how this node mines.
    pub mining: MiningSection,
    /// Present: this node takes part in the training cluster's consensus.
    pub train: Option<TrainSection>,
    /// `[events]`: the node's event log.
    pub events: EventsSection,
}

/// `[events]`: the node's event log (`DATA_DIR/events/events.jsonl`, rotated): every message
/// sent and received with a vector clock, Raft role, vote and commit changes, blocks, rounds
/// and config reads and writes; `hashgrad trace` and `hashgrad report` read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Whether the node keeps the log (default true).
    pub enabled: bool,
    /// Rotate the live file at this many MiB.
    pub file_mib: u64,
    /// Files kept, the live one included.
    pub files: usize,
}

impl Default for EventsSection {
    fn default() -> EventsSection {
        EventsSection {
            enabled: true,
            file_mib: 16,
            files: 4,
        }
    }
}

impl EventsSection {
    /// The writer's limits for this section.
    pub fn limits(&self) -> crate::events::LogLimits {
        crate::events::LogLimits {
            file_bytes: self.file_mib << 20,
            files: self.files,
            ..crate::events::LogLimits::default()
        }
    }
}

/// `[net]`: the QUIC endpoint and peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSection {
    /// UDP address to accept peers on.
    pub listen: SocketAddr,
    /// Peers to dial: `IP:PORT`, or `FINGERPRINT@IP:PORT` to demand that peer's key.
    pub peers: Vec<String>,
    /// When not empty, only these key fingerprints (64 hex digits) may connect at all.
    pub pinned: Vec<String>,
    /// Seconds a misbehaving peer stays banned (1 to `MAX_BAN_SECS`).
    pub ban_secs: u64,
    /// Seconds between attempts to reconnect to known peers (0.05 to `MAX_REDIAL_SECS`).
    pub redial_secs: f64,
    /// Seconds of silence after which a connection is dropped.
    pub idle_timeout_secs: u64,
    /// Key-exchange group of every QUIC handshake: `x25519mlkem768` (hybrid post-quantum,
    /// the default) or `x25519` (classical fallback; the whole network must use it).
    pub key_exchange: String,
}

/// `[http]`: the status and metrics server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// TCP address for `/status` and `/metrics`; absent: no HTTP server.
    pub listen: Option<SocketAddr>,
}

/// `[mining]`: whether and how this node mines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningSection {
    /// Whether the node mines at all (default true).
    pub enabled: bool,
    /// `auto`, `cpu` or `gpu`.
    pub backend: String,
    /// CPU miner threads.
    pub threads: usize,
    /// Before mining on a new tip, wait a random time between 0 and twice this many
    /// milliseconds; 0 mines at once. A config file without the key gets the network
    /// profile's pace (regtest: 1000, so blocks come at a human pace and timestamps do not
    /// outrun the clock; devnet and testnet retarget and need none).
    pub pace_ms: u64,
}

/// Default of `[train] snapshot_every`: committed entries between Raft snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;
/// Smallest non-zero `train.snapshot_every`: fewer entries between snapshots would snapshot
/// the state (and write the params blob) nearly every round.
pub const MIN_SNAPSHOT_EVERY: u64 = 4;
/// Largest `train.snapshot_every` (the round log a snapshot holds is bounded anyway).
pub const MAX_SNAPSHOT_EVERY: u64 = 10_000_000;

/// `[train]`: the training cluster — Raft membership and timing, the worker list, the model
/// and data every node derives identically from the seed, and the defaults the replicated
/// config store starts from (`learning_rate`, `rule`, `consistency`, `round_deadline_ms`,
/// `batch_size`; changed at run time with `PUT /config/{key}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Key fingerprints (64 hex digits, as `hashgrad node` logs them) of the initial Raft
    /// voters, this node's own included if it votes. Empty: this node bootstraps a cluster of
    /// one.
    pub voters: Vec<String>,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Election timeout in ticks (each wait is drawn from `[t, 2t)`).
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks (less than `election_ticks`).
    pub heartbeat_ticks: u32,
    /// Fingerprints of the workers, in shard order (the same list on every node). Empty: the
    /// voters (or this node alone when there are none).
    pub workers: Vec<String>,
    /// Seed of the data split, shards, initial weights and batches (as `hashgrad train --seed`).
    pub seed: u64,
    /// A CSV file to train on (label in the last column); absent: the embedded digits.
    pub data: Option<PathBuf>,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// `adam` or `sgd`.
    pub optimizer: String,
    /// Initial learning rate; absent: the optimizer's default.
    pub learning_rate: Option<f32>,
    /// Initial aggregation rule: `mean`, `median`, `trimmed-mean:B` or `krum:F`.
    pub rule: String,
    /// Initial gradients to wait for: `one`, `quorum` or `all`.
    pub consistency: String,
    /// Initial round deadline; a round short of its level by then is abandoned and retried.
    pub round_deadline_ms: u64,
    /// Initial rows per worker mini-batch.
    pub batch_size: usize,
    /// The leader stops announcing after this many committed rounds (absent: it trains until
    /// stopped; 0: the cluster runs consensus and the config store only).
    pub rounds: Option<u64>,
    /// Evaluate the held-out accuracy every this many rounds.
    pub eval_every: u64,
    /// Compact the Raft log once this many entries were applied after the last snapshot (the
    /// snapshot names the training state, kept as a blob; a tail of a quarter of it stays in
    /// the log for slightly lagging followers). 0: never compact.
    pub snapshot_every: u64,
    /// This node is not among the initial voters: ask the cluster's leader (reached through
    /// `net.peers`) to add it as a voter. `voters` must list the cluster's initial voters,
    /// without this node, so it reads the round log the way every other node does.
    pub join: bool,
    /// As leader, add a node that asks to join as a voter (a node that could connect — see
    /// `net.pinned` — may then vote). Off: join requests are refused.
    pub accept_joins: bool,
    /// Where the leader reduces: `cpu`, `gpu` or `auto`.
    pub backend: String,
    /// Test only: this node's gradients are corrupted (`sign-flip`, `scale`, `noise`), to see a
    /// robust rule at work.
    pub attack: Option<String>,
}

impl Default for TrainSection {
    fn default() -> TrainSection {
        TrainSection {
            voters: Vec::new(),
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            workers: Vec::new(),
            seed: 1,
            data: None,
            hidden: vec![64],
            optimizer: "adam".into(),
            learning_rate: None,
            rule: "mean".into(),
            consistency: "quorum".into(),
            round_deadline_ms: 2000,
            batch_size: 32,
            rounds: None,
            eval_every: 10,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            join: false,
            accept_joins: false,
            backend: "cpu".into(),
            attack: None,
        }
    }
}

fn fingerprints(key: &'static str, list: &[String]) -> Result<Vec<NodeId>, ConfigError> {
    list.iter()
        .map(|v| {
            v.parse::<NodeId>()
                .map_err(|e| invalid(key, &e.to_string()))
        })
        .collect()
}

fn parsed<T: FromStr>(key: &'static str, text: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|e| invalid(key, &e.to_string()))
}

impl TrainSection {
    /// The `train.voters` fingerprints, parsed and free of Raft id collisions.
    pub fn voters(&self) -> Result<Vec<NodeId>, ConfigError> {
        let voters = fingerprints("train.voters", &self.voters)?;
        crate::node_id::RaftIds::new(voters.iter().copied())
            .map_err(|e| invalid("train.voters", &e.to_string()))?;
        Ok(voters)
    }

    /// The worker list for a node named `own`: `train.workers`, else the voters, else `own`.
    pub fn workers(&self, own: NodeId) -> Result<Vec<NodeId>, ConfigError> {
        let mut workers = fingerprints("train.workers", &self.workers)?;
        if workers.is_empty() {
            workers = self.voters()?;
        }
        if workers.is_empty() {
            workers.push(own);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = workers.iter().find(|w| !seen.insert(**w)) {
            return Err(invalid(
                "train.workers",
                &format!("{twice} is listed twice"),
            ));
        }
        if workers.len() > crate::train::setup::MAX_WORKERS {
            return Err(invalid(
                "train.workers",
                &format!("at most {} workers", crate::train::setup::MAX_WORKERS),
            ));
        }
        Ok(workers)
    }

    /// The config store's starting values.
    pub fn training_defaults(&self) -> Result<crate::cluster::TrainingConfig, ConfigError> {
        use crate::cluster::config_store::{MAX_BATCH_SIZE, MAX_ROUND_DEADLINE_MS};
        let optimizer = self.optimizer()?;
        let learning_rate = self
            .learning_rate
            .unwrap_or_else(|| optimizer.default_learning_rate());
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(invalid("train.learning_rate", "must be a positive number"));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(invalid(
                "train.batch_size",
                &format!("must be between 1 and {MAX_BATCH_SIZE}"),
            ));
        }
        if !(1..=MAX_ROUND_DEADLINE_MS).contains(&self.round_deadline_ms) {
            return Err(invalid(
                "train.round_deadline_ms",
                &format!("must be between 1 and {MAX_ROUND_DEADLINE_MS}"),
            ));
        }
        Ok(crate::cluster::TrainingConfig {
            learning_rate,
            rule: parsed("train.rule", &self.rule)?,
            consistency: parsed("train.consistency", &self.consistency)?,
            round_deadline_ms: self.round_deadline_ms,
            batch_size: self.batch_size,
        })
    }

    /// `train.optimizer`.
    pub fn optimizer(&self) -> Result<crate::train::optimizer::OptimizerKind, ConfigError> {
        parsed("train.optimizer", &self.optimizer)
    }

    /// `train.backend`.
    pub fn device(&self) -> Result<crate::gpu::DeviceChoice, ConfigError> {
        parsed("train.backend", &self.backend)
    }

    /// `train.attack`.
    pub fn attack(&self) -> Result<Option<crate::train::attack::Attack>, ConfigError> {
        self.attack
            .as_deref()
            .map(|a| parsed("train.attack", a))
            .transpose()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.voters()?.is_empty() && self.join {
            return Err(invalid(
                "train.join",
                "a joining node needs the cluster's initial voters in train.voters",
            ));
        }
        fingerprints("train.workers", &self.workers)?;
        if !(1..=60_000).contains(&self.tick_ms) {
            return Err(invalid("train.tick_ms", "must be between 1 and 60000"));
        }
        if self.heartbeat_ticks == 0 {
            return Err(invalid("train.heartbeat_ticks", "must be at least 1"));
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(invalid(
                "train.election_ticks",
                "must be greater than train.heartbeat_ticks",
            ));
        }
        use crate::train::model::{MAX_LAYER_WIDTH, MAX_LAYERS};
        if self.hidden.len() > MAX_LAYERS - 2
            || self.hidden.iter().any(|&w| w == 0 || w > MAX_LAYER_WIDTH)
        {
            return Err(invalid(
                "train.hidden",
                &format!(
                    "at most {} widths, each between 1 and {MAX_LAYER_WIDTH}",
                    MAX_LAYERS - 2
                ),
            ));
        }
        if self.eval_every == 0 {
            return Err(invalid("train.eval_every", "must be at least 1"));
        }
        if self.snapshot_every != 0
            && !(MIN_SNAPSHOT_EVERY..=MAX_SNAPSHOT_EVERY).contains(&self.snapshot_every)
        {
            return Err(invalid(
                "train.snapshot_every",
                &format!(
                    "must be 0 (never compact) or between {MIN_SNAPSHOT_EVERY} and {MAX_SNAPSHOT_EVERY}"
                ),
            ));
        }
        self.training_defaults()?;
        self.device()?;
        self.attack()?;
        Ok(())
    }
}

impl Default for NodeConfig {
    /// A regtest node with regtest's pace.
    fn default() -> NodeConfig {
        NodeConfig::for_network("regtest")
    }
}

/// Only whether a config file sets `mining.pace_ms` (every other key is ignored here).
#[derive(Deserialize)]
struct PaceProbe {
    #[serde(default)]
    mining: Option<MiningPaceProbe>,
}

#[derive(Deserialize)]
struct MiningPaceProbe {
    #[serde(default)]
    pace_ms: Option<u64>,
}

/// The pace a node on `network` mines with when nothing sets one; 0 for an unknown network
/// (the node refuses to start on it anyway, naming the known ones).
fn network_pace_ms(network: &str) -> u64 {
    crate::pow::NetworkParams::by_name(network).map_or(0, |params| params.pace_ms)
}

impl Default for NetSection {
    fn default() -> NetSection {
        NetSection {
            listen: SocketAddr::from(([0, 0, 0, 0], 7100)),
            peers: Vec::new(),
            pinned: Vec::new(),
            ban_secs: 600,
            redial_secs: 5.0,
            idle_timeout_secs: 30,
            key_exchange: "x25519mlkem768".into(),
        }
    }
}

impl Default for MiningSection {
    fn default() -> MiningSection {
        MiningSection {
            enabled: true,
            backend: "cpu".to_string(),
            threads: 1,
            pace_ms: 0,
        }
    }
}

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

impl NodeConfig {
    /// The defaults for a node on `network`, with that network's default pace.
    pub fn for_network(network: &str) -> NodeConfig {
        NodeConfig {
            data_dir: PathBuf::from("hashgrad-data"),
            network: network.to_string(),
            net: NetSection::default(),
            http: HttpSection::default(),
            mining: MiningSection {
                pace_ms: network_pace_ms(network),
                ..MiningSection::default()
            },
            train: None,
            events: EventsSection::default(),
        }
    }

    /// A regtest node for in-process clusters (tests, examples, benches): QUIC on a free
    /// loopback port, dialing `peers`, redialling within 0.1 s, not mining, no HTTP, no
    /// training, no event log; set the sections a caller needs on top.
    pub fn loopback(data_dir: &Path, peers: &[SocketAddr]) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.to_path_buf(),
            net: NetSection {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                peers: peers.iter().map(ToString::to_string).collect(),
                redial_secs: 0.1,
                ..NetSection::default()
            },
            mining: MiningSection {
                enabled: false,
                ..MiningSection::default()
            },
            events: EventsSection {
                enabled: false,
                ..EventsSection::default()
            },
            ..NodeConfig::for_network("regtest")
        }
    }

    /// Reads and checks a config file.
    pub fn from_file(path: &Path) -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_file_on_network(path, None)
    }

    /// Reads and checks a config file, with `network` (a `--network` flag) replacing the
    /// file's before the network's defaults fill the keys the file leaves out.
    pub fn from_file_on_network(
        path: &Path,
        network: Option<&str>,
    ) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        NodeConfig::from_toml_on_network(&text, path, network)
    }

    /// Parses TOML text (`origin` names it in errors) and checks it.
    pub fn from_toml(text: &str, origin: &Path) -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_toml_on_network(text, origin, None)
    }

    /// `from_toml` with the network replaced as in `from_file_on_network`.
    pub fn from_toml_on_network(
        text: &str,
        origin: &Path,
        network: Option<&str>,
    ) -> Result<NodeConfig, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        };
        let mut config: NodeConfig = toml::from_str(text).map_err(parse_error)?;
        let probe: PaceProbe = toml::from_str(text).map_err(parse_error)?;
        if let Some(network) = network {
            config.network = network.to_string();
        }
        let explicit_pace = probe.mining.and_then(|mining| mining.pace_ms);
        config.mining.pace_ms = explicit_pace.unwrap_or_else(|| network_pace_ms(&config.network));
        config.validate()?;
        Ok(config)
    }

    /// Checks values the types allow but a node cannot use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.peers()?;
        self.pins()?;
        if self.network.is_empty() || self.network.len() > crate::net::frame::MAX_NETWORK_NAME {
            return Err(invalid(
                "network",
                "must be 1 to 32 bytes, e.g. \"regtest\"",
            ));
        }
        // `Instant + ban` and `Duration::from_secs_f64(redial)` panic past their range.
        if !(1..=MAX_BAN_SECS).contains(&self.net.ban_secs) {
            return Err(invalid(
                "net.ban_secs",
                &format!("must be between 1 and {MAX_BAN_SECS} (a year)"),
            ));
        }
        if !(1..=4096).contains(&self.events.file_mib) {
            return Err(invalid("events.file_mib", "must be between 1 and 4096"));
        }
        if !(1..=100).contains(&self.events.files) {
            return Err(invalid("events.files", "must be between 1 and 100"));
        }
        if !(0.05..=MAX_REDIAL_SECS).contains(&self.net.redial_secs) {
            return Err(invalid(
                "net.redial_secs",
                &format!("must be between 0.05 and {MAX_REDIAL_SECS}"),
            ));
        }
        if self.net.idle_timeout_secs < 3 {
            return Err(invalid("net.idle_timeout_secs", "must be at least 3"));
        }
        self.key_exchange()?;
        if !(1..=1024).contains(&self.mining.threads) {
            return Err(invalid("mining.threads", "must be between 1 and 1024"));
        }
        if !["auto", "cpu", "gpu"].contains(&self.mining.backend.as_str()) {
            return Err(invalid(
                "mining.backend",
                &format!("`{}` is not one of auto, cpu, gpu", self.mining.backend),
            ));
        }
        if let Some(train) = &self.train {
            train.validate()?;
        }
        Ok(())
    }

    /// The `net.peers` entries, parsed.
    pub fn peers(&self) -> Result<Vec<PeerAddr>, ConfigError> {
        self.net
            .peers
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e: PeerAddrError| invalid("net.peers", &e.to_string()))
            })
            .collect()
    }

    /// The `net.pinned` fingerprints, parsed.
    pub fn pins(&self) -> Result<Vec<NodeId>, ConfigError> {
        self.net
            .pinned
            .iter()
            .map(|p| {
                p.parse::<NodeId>()
                    .map_err(|e| invalid("net.pinned", &e.to_string()))
            })
            .collect()
    }

    /// `net.key_exchange`, parsed.
    pub fn key_exchange(&self) -> Result<crate::net::tls::KeyExchange, ConfigError> {
        self.net
            .key_exchange
            .parse()
            .map_err(|e: crate::net::NetError| invalid("net.key_exchange", &e.to_string()))
    }

    /// `net.ban_secs` as a duration.
    pub fn ban(&self) -> Duration {
        Duration::from_secs(self.net.ban_secs)
    }

    /// `net.redial_secs` as a duration.
    pub fn redial(&self) -> Duration {
        Duration::from_secs_f64(self.net.redial_secs)
    }
}

/// Longest `net.ban_secs`: a year.
pub const MAX_BAN_SECS: u64 = 365 * 24 * 3600;
/// Longest `net.redial_secs`: an hour.
pub const MAX_REDIAL_SECS: f64 = 3600.0;

fn invalid(key: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn timers_past_what_a_duration_or_an_instant_holds_are_refused() {
        // Both validated and then panicked: `redial()` in `Duration::from_secs_f64`, a ban in
        // `Instant::now() + ban()` when the node banned its first peer.
        for (text, key) in [
            ("[net]\nredial_secs = 1e300\n", "net.redial_secs"),
            ("[net]\nredial_secs = nan\n", "net.redial_secs"),
            ("[net]\nban_secs = 9223372036854775807\n", "net.ban_secs"),
        ] {
            match parse(text) {
                Err(ConfigError::Invalid { key: found, .. }) => assert_eq!(found, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let longest = parse("[net]\nredial_secs = 3600.0\nban_secs = 31536000\n").unwrap();
        assert_eq!(longest.redial(), Duration::from_secs(3600));
        assert!(
            std::time::Instant::now()
                .checked_add(longest.ban())
                .is_some()
        );
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        assert_eq!(parse("").expect("defaults"), NodeConfig::default());
    }

    #[test]
    fn the_network_profile_paces_unless_the_config_says_otherwise() {
        let regtest = crate::pow::NetworkParams::regtest().pace_ms;
        assert!(regtest > 0);
        // No config at all (`hashgrad node --network regtest`): paced.
        assert_eq!(NodeConfig::default().mining.pace_ms, regtest);
        assert_eq!(NodeConfig::for_network("regtest").mining.pace_ms, regtest);
        assert_eq!(parse("").expect("empty").mining.pace_ms, regtest);
        // An explicit 0 stays 0 (benchmarks want blocks as fast as they come).
        let explicit = parse("[mining]\npace_ms = 0\n").expect("explicit");
        assert_eq!(explicit.mining.pace_ms, 0);
        // Retargeting networks need no pacing; a --network flag picks its profile's pace.
        assert_eq!(NodeConfig::for_network("devnet").mining.pace_ms, 0);
        let flagged = NodeConfig::from_toml_on_network("", Path::new("t.toml"), Some("devnet"))
            .expect("devnet");
        assert_eq!(
            (flagged.network.as_str(), flagged.mining.pace_ms),
            ("devnet", 0)
        );
        let flagged = NodeConfig::from_toml_on_network(
            "network = \"devnet\"\n[mining]\nthreads = 2\n",
            Path::new("t.toml"),
            Some("regtest"),
        )
        .expect("regtest");
        assert_eq!(flagged.mining.pace_ms, regtest);
    }

    #[test]
    fn shipped_configs_parse() {
        for file in [
            "configs/node.toml",
            "configs/regtest.toml",
            "configs/testnet.toml",
            "configs/testnet-multi.toml",
            "configs/train-node.toml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            NodeConfig::from_file(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = parse("[net]\nlisten = \"127.0.0.1:1\"\nbogus_key = 3\n").expect_err("unknown");
        let text = error.to_string();
        assert!(
            text.contains("bogus_key") && text.contains("test.toml"),
            "{text}"
        );
        let error = parse("netwrok = \"regtest\"\n").expect_err("typo");
        assert!(error.to_string().contains("netwrok"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let error = parse("[net]\nlisten = \"nonsense\"\n").expect_err("bad addr");
        assert!(error.to_string().contains("listen"), "{error}");
        let error = parse("[net]\npeers = [\"localhost\"]\n").expect_err("bad peer");
        assert!(error.to_string().contains("net.peers"), "{error}");
        let error = parse("[mining]\nthreads = 0\n").expect_err("threads");
        assert!(error.to_string().contains("mining.threads"), "{error}");
        let error = parse("[events]\nfile_mib = 0\n").expect_err("file size");
        assert!(error.to_string().contains("events.file_mib"), "{error}");
        let error = parse("[events]\nfiles = 0\n").expect_err("files");
        assert!(error.to_string().contains("events.files"), "{error}");
        let error = parse("[mining]\nbackend = \"quantum\"\n").expect_err("backend");
        assert!(error.to_string().contains("quantum"), "{error}");
        let error = parse("[net]\nkey_exchange = \"ffdhe2048\"\n").expect_err("group");
        assert!(
            error.to_string().contains("net.key_exchange")
                && error.to_string().contains("ffdhe2048"),
            "{error}"
        );
        let classical = parse("[net]\nkey_exchange = \"x25519\"\n").expect("fallback");
        assert_eq!(
            classical.key_exchange().expect("parsed"),
            crate::net::tls::KeyExchange::X25519
        );
        assert_eq!(
            parse("").expect("default").key_exchange().expect("parsed"),
            crate::net::tls::KeyExchange::X25519MlKem768
        );
    }

    #[test]
    fn train_section_names_its_bad_keys() {
        assert_eq!(parse("").expect("no train").train, None);
        let lone = parse("[train]\n").expect("lone node");
        assert_eq!(
            lone.train.expect("section").voters().expect("voters"),
            vec![]
        );
        let error = parse("[train]\nvoters = [\"abcd\"]\n").expect_err("short");
        assert!(error.to_string().contains("train.voters"), "{error}");
        let (a, b) = (
            "01".repeat(8) + &"aa".repeat(24),
            "01".repeat(8) + &"bb".repeat(24),
        );
        let error =
            parse(&format!("[train]\nvoters = [\"{a}\", \"{b}\"]\n")).expect_err("collision");
        assert!(
            error.to_string().contains("train.voters") && error.to_string().contains("Raft id"),
            "{error}"
        );
        let error = parse("[train]\nelection_ticks = 2\nheartbeat_ticks = 2\n").expect_err("ticks");
        assert!(
            error.to_string().contains("train.election_ticks"),
            "{error}"
        );
        let error = parse("[train]\nvoter = []\n").expect_err("typo");
        assert!(error.to_string().contains("voter"), "{error}");
        for (text, key) in [
            ("rule = \"majority\"", "train.rule"),
            ("consistency = \"most\"", "train.consistency"),
            ("optimizer = \"lbfgs\"", "train.optimizer"),
            ("learning_rate = -1.0", "train.learning_rate"),
            ("batch_size = 0", "train.batch_size"),
            ("round_deadline_ms = 0", "train.round_deadline_ms"),
            ("hidden = [0]", "train.hidden"),
            ("eval_every = 0", "train.eval_every"),
            ("snapshot_every = 2", "train.snapshot_every"),
            ("join = true", "train.join"),
            ("backend = \"tpu\"", "train.backend"),
            ("attack = \"polite\"", "train.attack"),
            ("workers = [\"zz\"]", "train.workers"),
        ] {
            let error = parse(&format!("[train]\n{text}\n")).expect_err(text);
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
        let trained = parse("[train]\nrule = \"krum:1\"\nconsistency = \"all\"\n").expect("valid");
        let defaults = trained
            .train
            .expect("train")
            .training_defaults()
            .expect("defaults");
        assert_eq!(defaults.consistency.name(), "all");
    }

    #[test]
    fn peers_may_carry_a_pin() {
        let pin = "ab".repeat(32);
        let config = parse(&format!(
            "[net]\npeers = [\"{pin}@127.0.0.1:9\", \"[::1]:8\"]\n"
        ))
        .expect("valid");
        let peers = config.peers().expect("peers");
        assert_eq!(peers[0].pin.map(|p| p.to_string()), Some(pin));
        assert_eq!(peers[1].addr.port(), 8);
    }
}
