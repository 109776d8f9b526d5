//! `[stratum]`: the node's Stratum v1 server for outside miners: where it listens, the share
//! difficulty and vardiff, and the bounds that keep a hostile client from costing more than an
//! honest one (connections, submit rate, idle and line timeouts).
//!
//! Owns the section's keys and their checks; must not start the server (`node::stratum` does).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::stratum::difficulty::{MAX_DIFFICULTY, MIN_DIFFICULTY, VardiffConfig};

/// `[stratum]`: the Stratum v1 server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StratumSection {
    /// TCP address miners connect to (`stratum+tcp://` this); absent: no Stratum server.
    pub listen: Option<SocketAddr>,
    /// Share difficulty a new connection starts at (fractions below 1 for regtest).
    pub difficulty: f64,
    /// Lowest difficulty vardiff sets.
    pub min_difficulty: f64,
    /// Highest difficulty vardiff sets.
    pub max_difficulty: f64,
    /// Shares per minute per connection vardiff steers toward; 0 keeps `difficulty`.
    pub shares_per_minute: f64,
    /// Seconds between vardiff retargets.
    pub retarget_secs: u64,
    /// Connections served at once; one more is closed at accept.
    pub max_connections: usize,
    /// Submits per second a connection may make (bursts of twice that).
    pub submits_per_sec: u32,
    /// Seconds without a complete line before a connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a started line may take to end with its newline (slowloris).
    pub line_timeout_secs: u64,
}

impl Default for StratumSection {
    fn default() -> StratumSection {
        StratumSection {
            listen: None,
            difficulty: 1.0,
            min_difficulty: MIN_DIFFICULTY,
            max_difficulty: 1e12,
            shares_per_minute: 20.0,
            retarget_secs: 30,
            max_connections: 4096,
            submits_per_sec: 50,
            idle_timeout_secs: 600,
            line_timeout_secs: 10,
        }
    }
}

impl StratumSection {
    /// Checks values the types allow but a server cannot use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let range = format!("must be a number between {MIN_DIFFICULTY:e} and {MAX_DIFFICULTY:e}");
        for (key, value) in [
            ("stratum.difficulty", self.difficulty),
            ("stratum.min_difficulty", self.min_difficulty),
            ("stratum.max_difficulty", self.max_difficulty),
        ] {
            if !(MIN_DIFFICULTY..=MAX_DIFFICULTY).contains(&value) {
                return Err(invalid(key, &range));
            }
        }
        if self.min_difficulty > self.max_difficulty {
            return Err(invalid(
                "stratum.min_difficulty",
                "must not be above stratum.max_difficulty",
            ));
        }
        if !(0.0..=6000.0).contains(&self.shares_per_minute) {
            return Err(invalid(
                "stratum.shares_per_minute",
                "must be between 0 (vardiff off) and 6000",
            ));
        }
        if !(1..=3600).contains(&self.retarget_secs) {
            return Err(invalid(
                "stratum.retarget_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(invalid(
                "stratum.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=100_000).contains(&self.submits_per_sec) {
            return Err(invalid(
                "stratum.submits_per_sec",
                "must be between 1 and 100000",
            ));
        }
        if !(1..=86_400).contains(&self.idle_timeout_secs) {
            return Err(invalid(
                "stratum.idle_timeout_secs",
                "must be between 1 and 86400",
            ));
        }
        if !(1..=3600).contains(&self.line_timeout_secs) {
            return Err(invalid(
                "stratum.line_timeout_secs",
                "must be between 1 and 3600",
            ));
        }
        Ok(())
    }

    /// The difficulty settings as the sessions take them.
    pub fn vardiff(&self) -> VardiffConfig {
        VardiffConfig {
            start: self.difficulty,
            min: self.min_difficulty,
            max: self.max_difficulty,
            shares_per_minute: self.shares_per_minute,
            retarget_every: Duration::from_secs(self.retarget_secs),
        }
    }
}
