//! Event records: what a node logs, and their one-line JSON encoding. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::clock::VectorClock;

/// One logged event of one node: who, when (wall clock, for people only), its vector clock
/// after the event, and what happened. Encoded as one JSON object per line with the kind's
/// fields flattened in (see the module doc of `events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The node that logged the event (its name; no whitespace).
    pub node: String,
    /// Milliseconds since the Unix epoch when it was logged; never used for ordering.
    pub time_ms: u64,
    /// The same instant in microseconds since the Unix epoch (0, and absent from the line, in
    /// logs written before the field existed): fine enough to time a block from one node's
    /// log to another's on one machine (`testnet`'s propagation). Never used for ordering.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub time_us: u64,
    /// The node's vector clock after the event.
    pub clock: VectorClock,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// What happened at an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The node started.
    NodeStarted,
    /// The node is stopping.
    NodeStopped,
    /// The log was reopened after its node died without `node_stopped` (a crash or `kill -9`):
    /// up to `lost_at_most` events queued or buffered then may be lost, so the node's own clock
    /// component jumps by that much here and no message id is ever reused.
    NodeRecovered {
        /// Most events the crash may have lost: the queue's capacity plus the writer's buffer.
        lost_at_most: u64,
    },
    /// A message left for `to`; `id` is `"<sender>:<sender's own clock component>"`.
    Sent {
        /// The receiving node's name (its short key fingerprint).
        to: String,
        /// The message type (`block`, `raft_append`, …).
        msg: String,
        /// The message's size in bytes.
        bytes: u64,
        /// The message id the receiver logs too.
        id: String,
    },
    /// A message from `from` arrived; `id` is the one its send logged.
    Received {
        /// The sending node's name (its short key fingerprint).
        from: String,
        /// The message type (`block`, `raft_append`, …).
        msg: String,
        /// The message's size in bytes.
        bytes: u64,
        /// The id the sender logged at its `sent` event.
        id: String,
    },
    /// The node's Raft role (`follower`, `pre_candidate`, `candidate`, `leader`) or term changed.
    RaftRole {
        /// The new role.
        role: String,
        /// The Raft term it holds in.
        term: u64,
    },
    /// The node gave (or refused) its vote.
    RaftVote {
        /// The candidate's name (its short key fingerprint).
        candidate: String,
        /// The term of the election.
        term: u64,
        /// True when the vote was given, false when refused.
        granted: bool,
    },
    /// The Raft commit index advanced.
    RaftCommit {
        /// The new commit index.
        index: u64,
        /// The term of the entry at that index.
        term: u64,
    },
    /// This node mined a block (`hash` and `parent` in display hex).
    BlockFound {
        /// The block's hash.
        hash: String,
        /// Its height (genesis = 0).
        height: u64,
        /// Its parent's hash (empty when unknown, as in logs written before the field existed).
        #[serde(default)]
        parent: String,
    },
    /// A block from a peer was accepted.
    BlockReceived {
        /// The block's hash.
        hash: String,
        /// Its height (genesis = 0).
        height: u64,
        /// The peer that sent it (its short key fingerprint).
        from: String,
        /// Its parent's hash (empty when unknown, as in logs written before the field existed).
        #[serde(default)]
        parent: String,
    },
    /// The best chain switched branches.
    BlockReorged {
        /// The tip before the switch (display hex).
        old_tip: String,
        /// The tip after it (display hex).
        new_tip: String,
        /// Blocks removed from the best chain.
        depth: u64,
    },
    /// A training round was announced.
    RoundAnnounced {
        /// The round announced.
        round: u64,
    },
    /// A training round committed (logged by every node as it applies the round). `loss` is the
    /// contributors' mean training loss; `timings` only on the leader that reduced it.
    RoundCommitted {
        /// The round committed.
        round: u64,
        /// The contributors' mean loss (`None` when not finite).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss: Option<f64>,
        /// Workers whose gradients the round reduced.
        #[serde(default)]
        contributors: u32,
        /// Where the round's time went (only on the leader that reduced it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timings: Option<RoundTimings>,
    },
    /// The node evaluated its params on the held-out rows after applying `round`.
    RoundEvaluated {
        /// The round whose params were evaluated.
        round: u64,
        /// Fraction of held-out rows classified correctly (0..=1).
        accuracy: f64,
    },
    /// The miner's hash rate over the last report period.
    HashRate {
        /// Hashes per second.
        hashes_per_sec: f64,
    },
    /// A training round was given up.
    RoundAbandoned {
        /// The round given up.
        round: u64,
        /// Why, for a person (e.g. the deadline passed with too few gradients).
        reason: String,
    },
    /// A config key was read.
    ConfigRead {
        /// The key read.
        key: String,
    },
    /// A config key was written.
    ConfigWrite {
        /// The key written.
        key: String,
    },
}

impl EventKind {
    /// One line for a person (ShiViz shows it as the event's text).
    pub fn describe(&self) -> String {
        match self {
            EventKind::NodeStarted => "node started".into(),
            EventKind::NodeStopped => "node stopped".into(),
            EventKind::NodeRecovered { lost_at_most } => {
                format!("node recovered from a crash (up to {lost_at_most} events lost)")
            }
            EventKind::Sent { to, msg, bytes, id } => {
                format!("send {msg} to {to} ({bytes} B) id={id}")
            }
            EventKind::Received {
                from,
                msg,
                bytes,
                id,
            } => {
                format!("receive {msg} from {from} ({bytes} B) id={id}")
            }
            EventKind::RaftRole { role, term } => format!("raft {role} term {term}"),
            EventKind::RaftVote {
                candidate,
                term,
                granted,
            } => {
                let verb = if *granted { "votes for" } else { "refuses" };
                format!("raft {verb} {candidate} term {term}")
            }
            EventKind::RaftCommit { index, term } => format!("raft commit {index} term {term}"),
            EventKind::BlockFound { hash, height, .. } => {
                format!("block found {hash} height {height}")
            }
            EventKind::BlockReceived {
                hash, height, from, ..
            } => {
                format!("block received {hash} height {height} from {from}")
            }
            EventKind::BlockReorged {
                old_tip,
                new_tip,
                depth,
            } => {
                format!("reorg {old_tip} -> {new_tip} depth {depth}")
            }
            EventKind::RoundAnnounced { round } => format!("round {round} announced"),
            EventKind::RoundCommitted { round, loss, .. } => match loss {
                Some(loss) => format!("round {round} committed loss {loss:.4}"),
                None => format!("round {round} committed"),
            },
            EventKind::RoundEvaluated { round, accuracy } => {
                format!("round {round} accuracy {accuracy:.4}")
            }
            EventKind::HashRate { hashes_per_sec } => format!("hash rate {hashes_per_sec:.0} H/s"),
            EventKind::RoundAbandoned { round, reason } => {
                format!("round {round} abandoned: {reason}")
            }
            EventKind::ConfigRead { key } => format!("config read {key}"),
            EventKind::ConfigWrite { key } => format!("config write {key}"),
        }
        // A description is one line whatever a peer put in a string.
        .replace(['\n', '\r'], " ")
    }
}

/// Where a committed round's time went on the leader, in milliseconds: from announcing the
/// round until the consistency level of gradients arrived, reducing and stepping, and from
/// proposing until Raft applied it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoundTimings {
    /// From the announcement until enough gradients arrived.
    pub gradient_wait_ms: f64,
    /// Reducing the gradients and stepping the params.
    pub reduce_ms: f64,
    /// From proposing the round until Raft applied it.
    pub commit_ms: f64,
}

/// The message id of a send by `sender` whose own clock component became `own`.
pub fn message_id(sender: &str, own: u64) -> String {
    format!("{sender}:{own}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_flat_json_object_and_parses_back() {
        let mut clock = VectorClock::new();
        clock.set("n0", 3);
        let event = Event {
            node: "n0".into(),
            time_ms: 5,
            time_us: 0,
            clock,
            kind: EventKind::Sent {
                to: "n1".into(),
                msg: "block".into(),
                bytes: 312,
                id: "n0:3".into(),
            },
        };
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(
            line,
            r#"{"node":"n0","time_ms":5,"clock":{"n0":3},"type":"sent","to":"n1","msg":"block","bytes":312,"id":"n0:3"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
        // Microseconds are written when known and read back.
        let fine = Event {
            time_us: 5_432,
            ..event
        };
        let line = serde_json::to_string(&fine).unwrap();
        assert!(line.contains(r#""time_ms":5,"time_us":5432,"#), "{line}");
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), fine);
    }

    #[test]
    fn descriptions_stay_on_one_line() {
        let kind = EventKind::RoundAbandoned {
            round: 1,
            reason: "a\nb".into(),
        };
        assert_eq!(kind.describe(), "round 1 abandoned: a b");
    }
}
