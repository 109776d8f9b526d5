//! The replicated config store: typed training keys (validated, with defaults) and free-form
//! `user.*` string keys for client tests. Values are kept in a canonical spelling so every
//! node reads the same bytes back. Pure data: writes arrive through `ClusterState::apply`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::codec::{DecodeError, Reader, Writer};
use crate::train::aggregate::Rule;
use crate::train::optimizer::{LrSchedule, OptimizerKind, OptimizerSettings};
use crate::train::setup::MAX_WORKERS;

use super::ClusterError;
use super::command::{ConsistencyLevel, MAX_KEY_BYTES, MAX_VALUE_BYTES};

/// Most `user.*` keys the store holds (a put of a new key beyond it is refused).
pub const MAX_USER_KEYS: usize = 10_000;
/// Largest round deadline.
pub const MAX_ROUND_DEADLINE_MS: u64 = 3_600_000;
/// How many typed keys the store has (every one always set).
const TYPED_KEYS: usize = 11;
/// Largest mini-batch.
pub const MAX_BATCH_SIZE: usize = 1 << 16;

/// A key of the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ConfigKey {
    /// `learning_rate`: a positive, finite f32.
    LearningRate,
    /// `rule`: mean, median, trimmed-mean:B or krum:F.
    Rule,
    /// `consistency`: one, quorum or all.
    Consistency,
    /// `round_deadline_ms`: 1..=3600000.
    RoundDeadlineMs,
    /// `batch_size`: 1..=65536 rows per worker.
    BatchSize,
    /// `optimizer`: sgd, adam or adamw.
    Optimizer,
    /// `momentum`: SGD's momentum in 0..1.
    Momentum,
    /// `nesterov`: true or false (SGD).
    Nesterov,
    /// `weight_decay`: a finite number ≥ 0 (L2 for sgd and adam, decoupled for adamw).
    WeightDecay,
    /// `clip_norm`: clip the reduced gradient to this global norm; 0 turns clipping off.
    ClipNorm,
    /// `lr_schedule`: constant, warmup:W, cosine:T or cosine:W:T.
    LrSchedule,
    /// `user.<name>`: any string of at most `MAX_VALUE_BYTES`.
    User(String),
}

impl ConfigKey {
    /// Parses a key name; unknown names and malformed `user.*` names are refused.
    pub fn parse(key: &str) -> Result<ConfigKey, ClusterError> {
        Ok(match key {
            "learning_rate" => ConfigKey::LearningRate,
            "rule" => ConfigKey::Rule,
            "consistency" => ConfigKey::Consistency,
            "round_deadline_ms" => ConfigKey::RoundDeadlineMs,
            "batch_size" => ConfigKey::BatchSize,
            "optimizer" => ConfigKey::Optimizer,
            "momentum" => ConfigKey::Momentum,
            "nesterov" => ConfigKey::Nesterov,
            "weight_decay" => ConfigKey::WeightDecay,
            "clip_norm" => ConfigKey::ClipNorm,
            "lr_schedule" => ConfigKey::LrSchedule,
            _ => match key.strip_prefix("user.") {
                Some(name) => {
                    let bad = |reason: &str| ClusterError::BadKey {
                        key: key.chars().take(MAX_KEY_BYTES).collect(),
                        reason: reason.into(),
                    };
                    if name.is_empty() {
                        return Err(bad("the name after 'user.' is empty"));
                    }
                    if key.len() > MAX_KEY_BYTES {
                        return Err(bad("keys are at most 128 bytes"));
                    }
                    if !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    {
                        return Err(bad("use only letters, digits, '.', '_' and '-'"));
                    }
                    ConfigKey::User(name.to_owned())
                }
                None => {
                    return Err(ClusterError::UnknownKey {
                        key: key.chars().take(MAX_KEY_BYTES).collect(),
                    });
                }
            },
        })
    }

    /// The key's name.
    pub fn name(&self) -> String {
        match self {
            ConfigKey::LearningRate => "learning_rate".into(),
            ConfigKey::Rule => "rule".into(),
            ConfigKey::Consistency => "consistency".into(),
            ConfigKey::RoundDeadlineMs => "round_deadline_ms".into(),
            ConfigKey::BatchSize => "batch_size".into(),
            ConfigKey::Optimizer => "optimizer".into(),
            ConfigKey::Momentum => "momentum".into(),
            ConfigKey::Nesterov => "nesterov".into(),
            ConfigKey::WeightDecay => "weight_decay".into(),
            ConfigKey::ClipNorm => "clip_norm".into(),
            ConfigKey::LrSchedule => "lr_schedule".into(),
            ConfigKey::User(name) => format!("user.{name}"),
        }
    }
}

/// An aggregation rule as the config store spells it; Krum's selection count follows the
/// number of gradients reduced (K − F, as `hashgrad train` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleSpec {
    /// `mean`: the coordinate-wise mean of the gradients (the default).
    #[default]
    Mean,
    /// `median`: the coordinate-wise median of the gradients.
    Median,
    /// `trimmed-mean:B`: drop B values at each end per coordinate.
    TrimmedMean {
        /// Values dropped at each end of every coordinate (0..=`MAX_WORKERS`).
        trim: usize,
    },
    /// `krum:F`: multi-Krum assuming F Byzantine workers.
    Krum {
        /// Workers assumed Byzantine (0..=`MAX_WORKERS`).
        byzantine: usize,
    },
}

impl RuleSpec {
    /// The rule for a round reducing `inputs` gradients.
    pub fn to_rule(self, inputs: usize) -> Rule {
        match self {
            RuleSpec::Mean => Rule::Mean,
            RuleSpec::Median => Rule::Median,
            RuleSpec::TrimmedMean { trim } => Rule::TrimmedMean { trim },
            RuleSpec::Krum { byzantine } => Rule::Krum {
                byzantine,
                select: inputs.saturating_sub(byzantine).max(1),
            },
        }
    }
}

impl fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSpec::Mean => f.write_str("mean"),
            RuleSpec::Median => f.write_str("median"),
            RuleSpec::TrimmedMean { trim } => write!(f, "trimmed-mean:{trim}"),
            RuleSpec::Krum { byzantine } => write!(f, "krum:{byzantine}"),
        }
    }
}

impl FromStr for RuleSpec {
    type Err = ClusterError;
    fn from_str(text: &str) -> Result<Self, ClusterError> {
        let text = text.trim().to_ascii_lowercase();
        let (name, param) = match text.split_once(':') {
            Some((name, param)) => (name, Some(param)),
            None => (text.as_str(), None),
        };
        let count = |what: &'static str| -> Result<usize, ClusterError> {
            let param = param.ok_or_else(|| ClusterError::RuleNeedsCount {
                rule: name.to_owned(),
                what,
            })?;
            match param.parse::<usize>() {
                Ok(v) if v <= MAX_WORKERS => Ok(v),
                _ => Err(ClusterError::RuleCount { what }),
            }
        };
        match name {
            "mean" | "median" if param.is_some() => Err(ClusterError::RuleTakesNoCount {
                rule: name.to_owned(),
            }),
            "mean" => Ok(RuleSpec::Mean),
            "median" => Ok(RuleSpec::Median),
            "trimmed-mean" => Ok(RuleSpec::TrimmedMean {
                trim: count("the values trimmed at each end")?,
            }),
            "krum" => Ok(RuleSpec::Krum {
                byzantine: count("the assumed Byzantine count")?,
            }),
            _ => Err(ClusterError::UnknownRule {
                rule: name.chars().take(MAX_KEY_BYTES).collect(),
            }),
        }
    }
}

/// The typed training settings a round reads (changes take effect from the next round).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingConfig {
    /// Step size of the optimizer; positive and finite (default: Adam's default rate).
    pub learning_rate: f32,
    /// How the leader reduces the gradients it gathers (default: mean).
    pub rule: RuleSpec,
    /// How many announced workers the leader waits for (default: all).
    pub consistency: ConsistencyLevel,
    /// Milliseconds each attempt of a round collects gradients before the leader abandons it
    /// and announces it again; 1..=3600000 (default 10000).
    pub round_deadline_ms: u64,
    /// Rows in each worker's mini-batch; 1..=65536 (default 32).
    pub batch_size: usize,
    /// The optimizer's rule, momentum, Nesterov flag, weight decay and clip norm (default:
    /// Adam, momentum 0.9, no decay, no clipping).
    pub optimizer: OptimizerSettings,
    /// How round r's rate follows from `learning_rate` (default: constant).
    pub lr_schedule: LrSchedule,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            learning_rate: crate::train::optimizer::OptimizerKind::Adam.default_learning_rate(),
            rule: RuleSpec::Mean,
            consistency: ConsistencyLevel::All,
            round_deadline_ms: 10_000,
            batch_size: 32,
            optimizer: OptimizerSettings::default(),
            lr_schedule: LrSchedule::Constant,
        }
    }
}

/// The store: typed keys (always set) and `user.*` strings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigStore {
    training: TrainingConfig,
    user: BTreeMap<String, String>,
}

impl ConfigStore {
    /// A store starting from `training` (the node's configured defaults).
    pub fn new(training: TrainingConfig) -> ConfigStore {
        ConfigStore {
            training,
            user: BTreeMap::new(),
        }
    }

    /// The typed settings.
    pub fn training(&self) -> &TrainingConfig {
        &self.training
    }

    /// The canonical value of `key`, or `None` for an unset `user.*` key.
    pub fn get(&self, key: &str) -> Result<Option<String>, ClusterError> {
        Ok(self.value(&ConfigKey::parse(key)?))
    }

    fn value(&self, key: &ConfigKey) -> Option<String> {
        let t = &self.training;
        match key {
            ConfigKey::LearningRate => Some(t.learning_rate.to_string()),
            ConfigKey::Rule => Some(t.rule.to_string()),
            ConfigKey::Consistency => Some(t.consistency.to_string()),
            ConfigKey::RoundDeadlineMs => Some(t.round_deadline_ms.to_string()),
            ConfigKey::BatchSize => Some(t.batch_size.to_string()),
            ConfigKey::Optimizer => Some(t.optimizer.kind.to_string()),
            ConfigKey::Momentum => Some(t.optimizer.momentum.to_string()),
            ConfigKey::Nesterov => Some(t.optimizer.nesterov.to_string()),
            ConfigKey::WeightDecay => Some(t.optimizer.weight_decay.to_string()),
            ConfigKey::ClipNorm => Some(t.optimizer.clip_norm.to_string()),
            ConfigKey::LrSchedule => Some(t.lr_schedule.to_string()),
            ConfigKey::User(name) => self.user.get(name).cloned(),
        }
    }

    /// Checks a write without applying it (the HTTP layer answers 400 before proposing).
    pub fn validate(&self, key: &str, value: &str) -> Result<(), ClusterError> {
        self.clone().put(key, value)
    }

    /// Sets `key` to `value` after validating both.
    pub fn put(&mut self, key: &str, value: &str) -> Result<(), ClusterError> {
        let parsed = ConfigKey::parse(key)?;
        let bad = |reason: String| ClusterError::BadValue {
            key: key.to_owned(),
            value: value.chars().take(64).collect(),
            reason,
        };
        // Every value travels the Raft log in a `Command`, whose decoder refuses more than
        // `MAX_VALUE_BYTES`: a longer one (`0000…1` is a valid learning rate) would commit as
        // an entry no node can apply.
        if value.len() > MAX_VALUE_BYTES {
            return Err(bad(format!("values are at most {MAX_VALUE_BYTES} bytes")));
        }
        let text = value.trim();
        let t = &mut self.training;
        match parsed {
            ConfigKey::LearningRate => match text.parse::<f32>() {
                Ok(lr) if lr.is_finite() && lr > 0.0 => t.learning_rate = lr,
                _ => return Err(bad("must be a positive, finite number".into())),
            },
            ConfigKey::Rule => {
                t.rule = text.parse().map_err(|e: ClusterError| bad(e.to_string()))?
            }
            ConfigKey::Consistency => {
                t.consistency = text.parse().map_err(|e: ClusterError| bad(e.to_string()))?
            }
            ConfigKey::RoundDeadlineMs => match text.parse::<u64>() {
                Ok(ms) if (1..=MAX_ROUND_DEADLINE_MS).contains(&ms) => t.round_deadline_ms = ms,
                _ => {
                    return Err(bad(format!(
                        "must be whole milliseconds 1..={MAX_ROUND_DEADLINE_MS}"
                    )));
                }
            },
            ConfigKey::BatchSize => match text.parse::<usize>() {
                Ok(rows) if (1..=MAX_BATCH_SIZE).contains(&rows) => t.batch_size = rows,
                _ => return Err(bad(format!("must be whole rows 1..={MAX_BATCH_SIZE}"))),
            },
            ConfigKey::Optimizer => {
                t.optimizer.kind = text.parse::<OptimizerKind>().map_err(bad)?;
            }
            ConfigKey::Momentum => match text.parse::<f32>() {
                Ok(m) if m.is_finite() && (0.0..1.0).contains(&m) => t.optimizer.momentum = m,
                _ => return Err(bad("must be a number in 0..1 (0 ≤ momentum < 1)".into())),
            },
            ConfigKey::Nesterov => match text.to_ascii_lowercase().as_str() {
                "true" => t.optimizer.nesterov = true,
                "false" => t.optimizer.nesterov = false,
                _ => return Err(bad("must be true or false".into())),
            },
            ConfigKey::WeightDecay => match text.parse::<f32>() {
                Ok(wd) if wd.is_finite() && wd >= 0.0 => t.optimizer.weight_decay = wd,
                _ => return Err(bad("must be a finite number ≥ 0".into())),
            },
            ConfigKey::ClipNorm => match text.parse::<f32>() {
                Ok(c) if c.is_finite() && c >= 0.0 => t.optimizer.clip_norm = c,
                _ => return Err(bad("must be a finite number ≥ 0 (0: no clipping)".into())),
            },
            ConfigKey::LrSchedule => {
                t.lr_schedule = text.parse::<LrSchedule>().map_err(bad)?;
            }
            ConfigKey::User(name) => {
                if !self.user.contains_key(&name) && self.user.len() >= MAX_USER_KEYS {
                    return Err(bad(format!(
                        "the store holds its limit of {MAX_USER_KEYS} user keys"
                    )));
                }
                self.user.insert(name, value.to_owned());
            }
        }
        Ok(())
    }

    /// Sets `key` to `value` if its current value is `expected` (`None`: unset). Returns
    /// `Ok(None)` when written, `Ok(Some(current))` when the comparison failed.
    pub fn cas(
        &mut self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<Option<Option<String>>, ClusterError> {
        let current = self.get(key)?;
        if current.as_deref() != expected {
            return Ok(Some(current));
        }
        self.put(key, value)?;
        Ok(None)
    }

    /// Every key and its canonical value, typed keys first, then `user.*` in key order.
    pub fn entries(&self) -> Vec<(String, String)> {
        let typed = [
            ConfigKey::LearningRate,
            ConfigKey::Rule,
            ConfigKey::Consistency,
            ConfigKey::RoundDeadlineMs,
            ConfigKey::BatchSize,
            ConfigKey::Optimizer,
            ConfigKey::Momentum,
            ConfigKey::Nesterov,
            ConfigKey::WeightDecay,
            ConfigKey::ClipNorm,
            ConfigKey::LrSchedule,
        ];
        let mut out: Vec<(String, String)> = typed
            .iter()
            .filter_map(|k| Some((k.name(), self.value(k)?)))
            .collect();
        out.extend(
            self.user
                .iter()
                .map(|(name, value)| (format!("user.{name}"), value.clone())),
        );
        out
    }

    /// Appends the store as (key, value) pairs.
    pub fn encode_to(&self, out: &mut Writer) {
        let entries = self.entries();
        out.count(entries.len());
        for (key, value) in &entries {
            out.str(key).str(value);
        }
    }

    /// Reads a store written by `encode_to`, validating every pair again.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<ConfigStore, DecodeError> {
        let count = r.count("config entries", MAX_USER_KEYS + TYPED_KEYS, 8)?;
        let mut store = ConfigStore::default();
        for _ in 0..count {
            let at = r.offset();
            let key = r.str("config key", MAX_KEY_BYTES)?;
            let value = r.str("config value", MAX_VALUE_BYTES)?;
            store.put(key, value).map_err(|_| DecodeError::Invalid {
                what: "config entry",
                reason: "the key or value does not validate",
                offset: at,
            })?;
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RequestId;
    use crate::cluster::command::Command;
    use crate::codec::{Decode, Encode};

    #[test]
    fn a_typed_value_longer_than_a_log_entry_holds_is_refused() {
        // A `PUT /config/learning_rate` body (the API takes up to 16 KiB) that parses: it was
        // accepted, then committed as a `ConfigPut` whose decoder refuses the value.
        let value = format!("0.{}5", "0".repeat(MAX_VALUE_BYTES));
        let mut store = ConfigStore::default();
        let error = store.validate("learning_rate", &value).unwrap_err();
        assert!(error.to_string().contains("at most 4096 bytes"), "{error}");
        assert!(store.put("batch_size", &format!("{:0>5000}", 32)).is_err());
        assert_eq!(store, ConfigStore::default(), "nothing changed");
        // What is accepted fits the log: the longest value decodes again.
        let longest = format!("{:0>width$}", 32, width = MAX_VALUE_BYTES);
        store.put("batch_size", &longest).unwrap();
        let command = Command::ConfigPut {
            request: RequestId::default(),
            key: "batch_size".into(),
            value: longest,
        };
        assert_eq!(Command::from_bytes(&command.to_bytes()).unwrap(), command);
    }

    #[test]
    fn typed_keys_validate_and_read_back_canonically() {
        let mut store = ConfigStore::default();
        store.put("learning_rate", " 0.0005 ").unwrap();
        assert_eq!(
            store.get("learning_rate").unwrap().as_deref(),
            Some("0.0005")
        );
        assert_eq!(store.training().learning_rate, 0.0005);
        store.put("rule", "Trimmed-Mean:2").unwrap();
        assert_eq!(
            store.get("rule").unwrap().as_deref(),
            Some("trimmed-mean:2")
        );
        store.put("rule", "krum:1").unwrap();
        assert_eq!(
            store.training().rule.to_rule(5),
            Rule::Krum {
                byzantine: 1,
                select: 4
            }
        );
        store.put("consistency", "quorum").unwrap();
        assert_eq!(store.training().consistency, ConsistencyLevel::Quorum);
        store.put("round_deadline_ms", "2500").unwrap();
        store.put("batch_size", "64").unwrap();
        assert_eq!(store.training().round_deadline_ms, 2500);
        assert_eq!(store.training().batch_size, 64);
        store.put("optimizer", "AdamW").unwrap();
        store.put("momentum", "0.5").unwrap();
        store.put("nesterov", "TRUE").unwrap();
        store.put("weight_decay", "0.01").unwrap();
        store.put("clip_norm", "1.5").unwrap();
        store.put("lr_schedule", "cosine:10:100").unwrap();
        let t = store.training();
        assert_eq!(
            t.optimizer,
            OptimizerSettings {
                kind: OptimizerKind::AdamW,
                momentum: 0.5,
                nesterov: true,
                weight_decay: 0.01,
                clip_norm: 1.5,
            }
        );
        assert_eq!(
            t.lr_schedule,
            LrSchedule::Cosine {
                warmup: 10,
                total: 100
            }
        );
        assert_eq!(store.get("optimizer").unwrap().as_deref(), Some("adamw"));
        assert_eq!(store.get("nesterov").unwrap().as_deref(), Some("true"));
        assert_eq!(
            store.get("lr_schedule").unwrap().as_deref(),
            Some("cosine:10:100")
        );
        assert_eq!(store.entries().len(), TYPED_KEYS);
    }

    #[test]
    fn bad_keys_and_values_name_the_key_and_the_reason() {
        let mut store = ConfigStore::default();
        let before = store.clone();
        let cases = [
            ("learning_rat", "1", "unknown config key 'learning_rat'"),
            ("learning_rate", "-1", "'learning_rate': must be a positive"),
            (
                "learning_rate",
                "NaN",
                "'learning_rate': must be a positive",
            ),
            (
                "rule",
                "krum",
                "'rule': krum needs the assumed Byzantine count",
            ),
            ("rule", "mean:2", "'rule': mean takes no parameter"),
            (
                "rule",
                "average",
                "'rule': unknown rule `average`; use mean, median",
            ),
            (
                "consistency",
                "two",
                "'consistency': unknown consistency level `two`; use one, quorum or all",
            ),
            (
                "round_deadline_ms",
                "0",
                "'round_deadline_ms': must be whole",
            ),
            ("batch_size", "1e9", "'batch_size': must be whole rows"),
            ("optimizer", "lamb", "'optimizer': unknown optimizer 'lamb'"),
            ("momentum", "1", "'momentum': must be a number in 0..1"),
            ("nesterov", "yes", "'nesterov': must be true or false"),
            ("weight_decay", "-0.1", "'weight_decay': must be a finite"),
            ("clip_norm", "inf", "'clip_norm': must be a finite"),
            (
                "lr_schedule",
                "cosine:5:5",
                "'lr_schedule': cosine's warm-up",
            ),
            (
                "lr_schedule",
                "step:3",
                "'lr_schedule': use constant, warmup:W",
            ),
            ("user.", "x", "bad config key 'user.': the name after"),
            ("user.a b", "x", "use only letters"),
        ];
        for (key, value, expected) in cases {
            let err = store.put(key, value).unwrap_err().to_string();
            assert!(err.contains(expected), "{key}={value}: {err}");
            assert!(store.validate(key, value).is_err());
        }
        assert_eq!(store, before, "a refused write changes nothing");
    }

    #[test]
    fn user_keys_compare_and_set() {
        let mut store = ConfigStore::default();
        assert_eq!(store.get("user.x").unwrap(), None);
        assert_eq!(store.cas("user.x", Some("1"), "2").unwrap(), Some(None));
        assert_eq!(store.cas("user.x", None, "1").unwrap(), None);
        assert_eq!(
            store.cas("user.x", None, "3").unwrap(),
            Some(Some("1".into()))
        );
        assert_eq!(store.cas("user.x", Some("1"), "2").unwrap(), None);
        assert_eq!(store.get("user.x").unwrap().as_deref(), Some("2"));
        assert_eq!(store.cas("consistency", Some("all"), "one").unwrap(), None);
        assert!(store.cas("consistency", Some("one"), "five").is_err());
    }

    #[test]
    fn the_store_encodes_and_decodes() {
        let mut store = ConfigStore::default();
        store.put("rule", "median").unwrap();
        store.put("user.b", "two words").unwrap();
        store.put("optimizer", "sgd").unwrap();
        store.put("lr_schedule", "warmup:5").unwrap();
        store.put("user.a", "").unwrap();
        let mut out = Writer::new();
        store.encode_to(&mut out);
        let bytes = out.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(ConfigStore::decode_from(&mut r), Ok(store));
        assert_eq!(r.remaining(), 0);
    }
}
