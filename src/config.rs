//! The node's TOML configuration: `NodeConfig` with defaults, parsed strictly (an unknown or
//! mistyped key is an error naming the key and the file) and checked for values that cannot
//! work. Every value is typed as it loads (`train.rule` is a `RuleSpec`, `net.peers` are
//! `PeerAddr`s, ...; see `text_values`), so a config that loads cannot fail later for a parse
//! reason, and one parser per kind of value decides what it may be: names are matched ASCII
//! case-blind and trimmed, and written back in their lowercase spelling. Command-line flags
//! override it in `cli::node`.
//!
//! Owns parsing and validation only; must not start anything.

mod peer_addr;
mod stratum;
mod text_values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::{ConsistencyLevel, RuleSpec};
use crate::gpu::DeviceChoice;
use crate::net::NodeId;
use crate::net::tls::KeyExchange;
use crate::train::attack::Attack;
use crate::train::optimizer::{LrSchedule, OptimizerKind};

pub use peer_addr::{PeerAddr, PeerAddrError};
pub use stratum::StratumSection;

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
    /// The text is not valid TOML, or has an unknown key or a value of the wrong type or
    /// spelling (`train.rule = "majority"`).
    #[error("config {path}: {message}")]
    Parse {
        /// The file (or origin name) the text came from.
        path: PathBuf,
        /// The dotted key (`train.rule`, `net.peers[1]`) when there is one, then the TOML
        /// parser's message with line and column.
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
    /// `[stratum]`: the Stratum v1 server for outside miners (off without `listen`).
    pub stratum: StratumSection,
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
    #[serde(with = "text_values::list")]
    pub peers: Vec<PeerAddr>,
    /// When not empty, only these key fingerprints (64 hex digits) may connect at all.
    #[serde(with = "text_values::list")]
    pub pinned: Vec<NodeId>,
    /// Seconds a misbehaving peer stays banned (1 to `MAX_BAN_SECS`).
    pub ban_secs: u64,
    /// Seconds between attempts to reconnect to known peers (0.05 to `MAX_REDIAL_SECS`).
    pub redial_secs: f64,
    /// Seconds of silence after which a connection is dropped.
    pub idle_timeout_secs: u64,
    /// Key-exchange group of every QUIC handshake: `x25519mlkem768` (hybrid post-quantum,
    /// the default) or `x25519` (classical fallback; the whole network must use it).
    #[serde(with = "text_values::one")]
    pub key_exchange: KeyExchange,
}

/// `[http]`: the status and metrics server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// TCP address for `/status` and `/metrics`; absent: no HTTP server.
    pub listen: Option<SocketAddr>,
    /// Which requests need the node's token: `writes` (the default: every method but GET and
    /// HEAD) or `all` (reads too, `/status` and `/metrics` included).
    #[serde(with = "text_values::one")]
    pub auth: HttpAuth,
    /// A file holding the API token (at least 32 characters, no spaces) instead of a fresh
    /// random one in `DATA_DIR/.cookie` at each start.
    pub token_file: Option<PathBuf>,
}

/// Which HTTP requests need the node's token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpAuth {
    /// Every request that can change something (any method but GET and HEAD).
    #[default]
    Writes,
    /// Every request.
    All,
}

impl std::fmt::Display for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpAuth::Writes => "writes",
            HttpAuth::All => "all",
        })
    }
}

impl std::str::FromStr for HttpAuth {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "writes" => Ok(HttpAuth::Writes),
            "all" => Ok(HttpAuth::All),
            other => Err(format!(
                "unknown auth '{other}'; use writes (every change needs the token) or all"
            )),
        }
    }
}

/// `[mining]`: whether and how this node mines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiningSection {
    /// Whether the node mines at all (default true).
    pub enabled: bool,
    /// `auto`, `cpu` or `gpu`.
    #[serde(with = "text_values::one")]
    pub backend: DeviceChoice,
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

/// Which model a training cluster trains (`train.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ModelKind {
    /// The built-in MLP on `train.data` (or the embedded digits).
    #[default]
    Mlp,
    /// A model of external workers: its layout and round 0 come from the first worker.
    External,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Mlp => "mlp",
            ModelKind::External => "external",
        })
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(text: &str) -> Result<ModelKind, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mlp" => Ok(ModelKind::Mlp),
            "external" => Ok(ModelKind::External),
            _ => Err("use mlp or external".into()),
        }
    }
}

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
    #[serde(with = "text_values::list")]
    pub voters: Vec<NodeId>,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Election timeout in ticks (each wait is drawn from `[t, 2t)`).
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks (less than `election_ticks`).
    pub heartbeat_ticks: u32,
    /// Ask for pre-votes before an election, so a node that cannot win (cut off, or with a
    /// fast clock) does not depose the leader with a higher term. On by default.
    pub pre_vote: bool,
    /// Fingerprints of the workers, in shard order (the same list on every node). Empty: the
    /// voters (or this node alone when there are none).
    #[serde(with = "text_values::list")]
    pub workers: Vec<NodeId>,
    /// Seed of the data split, shards, initial weights and batches (as `hashgrad train --seed`).
    pub seed: u64,
    /// A CSV file to train on (label in the last column); absent: the embedded digits.
    pub data: Option<PathBuf>,
    /// `mlp` (the built-in model on `data`) or `external` (the first worker that connects
    /// registers the model's layout and initial values; see README's worker API).
    #[serde(with = "text_values::one")]
    pub model: ModelKind,
    /// Hidden layer widths.
    pub hidden: Vec<usize>,
    /// `adam`, `adamw` or `sgd`.
    #[serde(with = "text_values::one")]
    pub optimizer: OptimizerKind,
    /// Initial SGD momentum (0..1).
    pub momentum: f32,
    /// Initial SGD Nesterov flag.
    pub nesterov: bool,
    /// Initial weight decay (L2 for sgd and adam, decoupled for adamw).
    pub weight_decay: f32,
    /// Initial clip norm of the reduced gradient (0: no clipping).
    pub clip_norm: f32,
    /// Initial learning-rate schedule: `constant`, `warmup:W`, `cosine:T`, `cosine:W:T`.
    #[serde(with = "text_values::one")]
    pub lr_schedule: LrSchedule,
    /// Initial learning rate; absent: the optimizer's default.
    pub learning_rate: Option<f32>,
    /// Initial aggregation rule: `mean`, `median`, `trimmed-mean:B` or `krum:F`.
    #[serde(with = "text_values::one")]
    pub rule: RuleSpec,
    /// Initial gradients to wait for: `one`, `quorum` or `all`.
    #[serde(with = "text_values::one")]
    pub consistency: ConsistencyLevel,
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
    #[serde(with = "text_values::one")]
    pub backend: DeviceChoice,
    /// Test only: this node's gradients are corrupted (`sign-flip`, `scale`, `noise`), to see a
    /// robust rule at work.
    #[serde(with = "text_values::optional")]
    pub attack: Option<Attack>,
}

impl Default for TrainSection {
    fn default() -> TrainSection {
        TrainSection {
            voters: Vec::new(),
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            workers: Vec::new(),
            seed: 1,
            data: None,
            model: ModelKind::Mlp,
            hidden: vec![64],
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            clip_norm: 0.0,
            lr_schedule: LrSchedule::Constant,
            learning_rate: None,
            rule: RuleSpec::Mean,
            consistency: ConsistencyLevel::Quorum,
            round_deadline_ms: 2000,
            batch_size: 32,
            rounds: None,
            eval_every: 10,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            join: false,
            accept_joins: false,
            backend: DeviceChoice::Cpu,
            attack: None,
        }
    }
}

impl TrainSection {
    /// The worker list for a node named `own`: `train.workers`, else the voters, else `own`;
    /// refused when a worker is listed twice or there are more than `MAX_WORKERS`.
    pub fn workers(&self, own: NodeId) -> Result<Vec<NodeId>, ConfigError> {
        let mut workers = self.workers.clone();
        if workers.is_empty() {
            workers = self.voters.clone();
        }
        if workers.is_empty() {
            workers.push(own);
        }
        let key = if self.workers.is_empty() {
            "train.voters"
        } else {
            "train.workers"
        };
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = workers.iter().find(|w| !seen.insert(**w)) {
            return Err(invalid(key, &format!("{twice} is listed twice")));
        }
        if workers.len() > crate::train::setup::MAX_WORKERS {
            return Err(invalid(
                key,
                &format!("at most {} workers", crate::train::setup::MAX_WORKERS),
            ));
        }
        Ok(workers)
    }

    /// The config store's starting values; refused when one is out of range.
    pub fn training_defaults(&self) -> Result<crate::cluster::TrainingConfig, ConfigError> {
        use crate::cluster::config_store::{MAX_BATCH_SIZE, MAX_ROUND_DEADLINE_MS};
        let learning_rate = self
            .learning_rate
            .unwrap_or_else(|| self.optimizer.default_learning_rate());
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(invalid("train.learning_rate", "must be a positive number"));
        }
        let optimizer = crate::train::optimizer::OptimizerSettings {
            kind: self.optimizer,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
        };
        if let Err(reason) = optimizer.validate() {
            let key = match reason.split_whitespace().next() {
                Some("momentum") => "train.momentum",
                Some("weight_decay") => "train.weight_decay",
                _ => "train.clip_norm",
            };
            return Err(invalid(key, &reason));
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
            rule: self.rule,
            consistency: self.consistency,
            round_deadline_ms: self.round_deadline_ms,
            batch_size: self.batch_size,
            optimizer,
            lr_schedule: self.lr_schedule,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        crate::node_id::RaftIds::new(self.voters.iter().copied())
            .map_err(|e| invalid("train.voters", &e.to_string()))?;
        if self.voters.is_empty() && self.join {
            return Err(invalid(
                "train.join",
                "a joining node needs the cluster's initial voters in train.voters",
            ));
        }
        // Any fingerprint would do for `own`: it only stands in when both lists are empty.
        self.workers(NodeId([0; 32]))?;
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
            key_exchange: KeyExchange::X25519MlKem768,
        }
    }
}

impl Default for MiningSection {
    fn default() -> MiningSection {
        MiningSection {
            enabled: true,
            backend: DeviceChoice::Cpu,
            threads: 1,
            pace_ms: 0,
        }
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
            stratum: StratumSection::default(),
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
                peers: peers.iter().map(|&addr| PeerAddr::from(addr)).collect(),
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
        let parse_error = |message: String| ConfigError::Parse {
            path: origin.to_path_buf(),
            message,
        };
        let document = toml::Deserializer::parse(text).map_err(|e| parse_error(e.to_string()))?;
        // The path tracker names the key of a bad value (`train.rule: ...`, `net.peers[1]: ...`).
        let mut config: NodeConfig =
            serde_path_to_error::deserialize(document).map_err(|e| parse_error(e.to_string()))?;
        let probe: PaceProbe = toml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
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
        if !(1..=1024).contains(&self.mining.threads) {
            return Err(invalid("mining.threads", "must be between 1 and 1024"));
        }
        self.stratum.validate()?;
        if let Some(train) = &self.train {
            train.validate()?;
        }
        Ok(())
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
        assert_eq!(classical.net.key_exchange, KeyExchange::X25519);
        assert_eq!(
            parse("").expect("default").net.key_exchange,
            KeyExchange::X25519MlKem768
        );
    }

    #[test]
    fn train_section_names_its_bad_keys() {
        assert_eq!(parse("").expect("no train").train, None);
        let lone = parse("[train]\n").expect("lone node");
        assert_eq!(lone.train.expect("section").voters, vec![]);
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
        let peers = &config.net.peers;
        assert_eq!(peers[0].pin.map(|p| p.to_string()), Some(pin));
        assert_eq!(peers[1].addr.port(), 8);
    }

    #[test]
    fn values_are_typed_as_they_load() {
        let voter = "01".repeat(32);
        let config = parse(&format!(
            "[net]\npinned = [\"{voter}\"]\nkey_exchange = \"x25519\"\n\
             [mining]\nbackend = \"auto\"\n\
             [train]\nvoters = [\"{voter}\"]\noptimizer = \"sgd\"\nrule = \"trimmed-mean:1\"\n\
             consistency = \"all\"\nbackend = \"gpu\"\nattack = \"noise\"\n"
        ))
        .expect("valid");
        let id: NodeId = voter.parse().expect("fingerprint");
        assert_eq!(config.net.pinned, vec![id]);
        assert_eq!(config.net.key_exchange, KeyExchange::X25519);
        assert_eq!(config.mining.backend, DeviceChoice::Auto);
        let train = config.train.expect("train");
        assert_eq!(train.voters, vec![id]);
        assert_eq!(train.optimizer, OptimizerKind::Sgd);
        assert_eq!(train.rule, RuleSpec::TrimmedMean { trim: 1 });
        assert_eq!(train.consistency, ConsistencyLevel::All);
        assert_eq!(train.backend, DeviceChoice::Gpu);
        assert_eq!(train.attack, Some(Attack::Noise));
    }

    #[test]
    fn names_are_case_blind_for_every_key() {
        let config = parse(
            "[net]\nkey_exchange = \"X25519\"\n[mining]\nbackend = \"CPU\"\n\
             [train]\noptimizer = \"SGD\"\nrule = \"Krum:1\"\nconsistency = \"ONE\"\n\
             backend = \"Gpu\"\nattack = \"Scale\"\n",
        )
        .expect("upper case");
        assert_eq!(config.net.key_exchange, KeyExchange::X25519);
        assert_eq!(config.mining.backend, DeviceChoice::Cpu);
        let train = config.train.expect("train");
        assert_eq!(train.optimizer, OptimizerKind::Sgd);
        assert_eq!(train.rule, RuleSpec::Krum { byzantine: 1 });
        assert_eq!(train.consistency, ConsistencyLevel::One);
        assert_eq!(train.backend, DeviceChoice::Gpu);
        assert_eq!(train.attack, Some(Attack::Scale));
    }

    #[test]
    fn a_bad_value_names_its_key_the_entry_and_what_is_allowed() {
        let error = parse("[train]\nrule = \"foo\"\n").expect_err("rule");
        let text = error.to_string();
        assert!(
            text.contains("train.rule") && text.contains("unknown rule `foo`"),
            "{text}"
        );
        assert!(text.contains("mean, median"), "{text}");
        let good = "ab".repeat(32);
        let error = parse(&format!(
            "[net]\npeers = [\"{good}@127.0.0.1:9\", \"127.0.0.1\"]\n"
        ))
        .expect_err("second peer");
        assert!(error.to_string().contains("net.peers[1]"), "{error}");
        let error = parse("[mining]\nbackend = \"quantum\"\n").expect_err("backend");
        assert!(
            error.to_string().contains("mining.backend")
                && error.to_string().contains("cpu, gpu or auto"),
            "{error}"
        );
        let error = parse("[train]\nconsistency = \"most\"\n").expect_err("level");
        assert!(error.to_string().contains("`most`"), "{error}");
    }

    #[test]
    fn a_written_config_reads_back_the_same() {
        let pin: NodeId = "cd".repeat(32).parse().expect("fingerprint");
        let mut config =
            NodeConfig::loopback(Path::new("d"), &[SocketAddr::from(([127, 0, 0, 1], 9))]);
        config.net.peers.push(PeerAddr {
            addr: SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 8)),
            pin: Some(pin),
        });
        config.net.pinned = vec![pin];
        config.net.key_exchange = KeyExchange::X25519;
        config.mining.backend = DeviceChoice::Auto;
        config.train = Some(TrainSection {
            voters: vec![pin],
            workers: vec![pin],
            optimizer: OptimizerKind::Sgd,
            rule: RuleSpec::Krum { byzantine: 0 },
            consistency: ConsistencyLevel::One,
            backend: DeviceChoice::Gpu,
            attack: Some(Attack::SignFlip),
            ..TrainSection::default()
        });
        let text = toml::to_string(&config).expect("serialize");
        assert!(text.contains("rule = \"krum:0\""), "{text}");
        assert!(text.contains("key_exchange = \"x25519\""), "{text}");
        assert_eq!(parse(&text).expect("reads back"), config);
    }
}
