//! Training across nodes, without I/O: the commands proposed through Raft (`command`), the
//! typed config store (`config_store`), the replicated state machine that applies them
//! (`state`, a `raft::StateMachine`), the round protocol's leader and worker cores (`round`, `worker`),
//! the training/blob messages on the wire (`wire`) and training receipts for blocks
//! (`receipt`). Time comes in as a `now` in milliseconds from the caller; nothing here opens
//! sockets, reads files or clocks, or spawns tasks — `node/` drives these cores.

pub mod command;
pub mod config_store;
pub mod receipt;
pub mod round;
pub mod state;
pub mod wire;
pub mod worker;

pub use command::{Command, ConsistencyLevel, RequestId, RoundCommitted};
pub use config_store::{ConfigKey, ConfigStore, RuleSpec, TrainingConfig};
pub use round::{Action, Coordinator, Refusal, RoundSettings};
pub use state::{Applied, ClusterState, ConfigOutcome, RoundStatus};
pub use wire::{TrainingMessage, WireLimits};
pub use worker::Worker;

/// Errors of the cluster subsystem: config keys and values a client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The key is neither a known training key nor a `user.*` key.
    #[error(
        "unknown config key '{key}'; known keys are learning_rate, rule, consistency, round_deadline_ms, batch_size, optimizer, momentum, nesterov, weight_decay, clip_norm, lr_schedule and user.<name>"
    )]
    UnknownKey {
        /// The key as sent (cut to `MAX_KEY_BYTES` characters).
        key: String,
    },
    /// The key's name breaks the rules for `user.*` keys.
    #[error("bad config key '{key}': {reason}")]
    BadKey {
        /// The key as sent (cut to `MAX_KEY_BYTES` characters).
        key: String,
        /// Which rule the name breaks.
        reason: String,
    },
    /// The value does not parse or is out of range for its key.
    #[error("bad value '{value}' for config key '{key}': {reason}")]
    BadValue {
        /// The key the value was for.
        key: String,
        /// The value as sent (cut to its first 64 characters).
        value: String,
        /// What the key accepts.
        reason: String,
    },
    /// A rule name that is none of mean, median, trimmed-mean:B, krum:F.
    #[error("unknown rule `{rule}`; use mean, median, trimmed-mean:B or krum:F")]
    UnknownRule {
        /// The name as given (before any `:`).
        rule: String,
    },
    /// `mean:1` or `median:1`: these rules take no count.
    #[error("{rule} takes no parameter; write `{rule}`")]
    RuleTakesNoCount {
        /// `mean` or `median`.
        rule: String,
    },
    /// `trimmed-mean` or `krum` without its count.
    #[error("{rule} needs {what}, e.g. {rule}:1")]
    RuleNeedsCount {
        /// `trimmed-mean` or `krum`.
        rule: String,
        /// What the count means.
        what: &'static str,
    },
    /// A rule's count is not a whole number up to `MAX_WORKERS`.
    #[error("{what} must be a whole number 0..={max}", max = crate::train::setup::MAX_WORKERS)]
    RuleCount {
        /// What the count means.
        what: &'static str,
    },
    /// A gradient consistency level that is none of one, quorum, all.
    #[error("unknown consistency level `{level}`; use one, quorum or all")]
    UnknownConsistency {
        /// The level as given.
        level: String,
    },
    /// A Raft snapshot's bytes are not a cluster state (corrupt, or written by another
    /// version of hashgrad).
    #[error(
        "the cluster snapshot does not decode ({0}); the snapshot store is damaged or from another hashgrad version"
    )]
    SnapshotUndecodable(#[source] crate::codec::DecodeError),
    /// A Raft snapshot's state has applied entries past the index it is filed at (the
    /// snapshot store is inconsistent).
    #[error(
        "the cluster snapshot covers index {covers} but is filed at {filed}; the snapshot store is inconsistent"
    )]
    SnapshotAhead {
        /// The last index the snapshot's state has applied.
        covers: u64,
        /// The index the snapshot is filed at.
        filed: u64,
    },
}

/// Names a content-addressed blob (parameters, a reduced gradient): SHA-256 of its bytes. A
/// training state's blob hash equals its `train::StateHash`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> BlobHash {
        use sha2::Digest;
        BlobHash(sha2::Sha256::digest(bytes).into())
    }
}

impl From<crate::train::StateHash> for BlobHash {
    fn from(hash: crate::train::StateHash) -> BlobHash {
        BlobHash(hash.0)
    }
}

impl std::fmt::Display for BlobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobHash({})", hex::encode(&self.0[..4]))
    }
}
