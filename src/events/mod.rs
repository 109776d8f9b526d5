//! Per-node event logs with vector clocks, and what `hashgrad trace` does with them: merge,
//! check happened-before, export for ShiViz. Owns the clock, the record format, the writer
//! (`writer.rs`) and its reading counterpart (`files.rs`) — the only file I/O here — and the
//! pure checker; it must not know about sockets, Raft or chains beyond the names it records.
//!
//! # The JSONL format
//! A node's log lives in `<data dir>/events/`: the live file `events.jsonl`, and rotated ones
//! `events.jsonl.1` (newest) … `events.jsonl.<N-1>` (oldest). Each line is one JSON object:
//!
//! ```text
//! {"node":"n0","time_ms":1764390000123,"clock":{"n0":3,"n1":2},"type":"sent","to":"n1","msg":"block","bytes":312,"id":"n0:3"}
//! ```
//! - `node`: the logging node's name (no whitespace);
//! - `time_ms`: wall-clock milliseconds since the Unix epoch, for people only; `time_us`: the
//!   same in microseconds (absent in older logs), which `testnet` reads to time blocks;
//! - `clock`: the node's vector clock *after* the event; its own entry rises by exactly one per
//!   event, starting at 1, except at `node_recovered`;
//! - `type` and the fields of that kind (see [`EventKind`]): `node_started`, `node_stopped`,
//!   `node_recovered {lost_at_most}` (the log reopened after a crash: the own component jumps
//!   past every event the crash may have lost, so ids are never reused),
//!   `sent {to,msg,bytes,id}`, `received {from,msg,bytes,id}`, `raft_role {role,term}`,
//!   `raft_vote {candidate,term,granted}`, `raft_commit {index,term}`,
//!   `block_found {hash,height,parent}`, `block_received {hash,height,from,parent}`,
//!   `block_reorged {old_tip,new_tip,depth}`, `round_announced {round}`,
//!   `round_committed {round,loss?,contributors,timings?{gradient_wait_ms,reduce_ms,commit_ms}}`,
//!   `round_evaluated {round,accuracy}`, `round_abandoned {round,reason}`,
//!   `hash_rate {hashes_per_sec}`, `config_read {key}`, `config_write {key}`.
//!
//! A message id is `"<sender>:<sender's own clock entry at the send>"`; the receiver logs the
//! same id and its clock merged with the sender's (`Stamp`, carried by the message).
//! Unknown fields are ignored when reading, so kinds can gain fields.
//!
//! # Hooking a node
//! `EventLog` is a cheap `Clone` (an `Arc`); `EventLog::disabled()` turns every call into a
//! no-op. One line per event site: `events.record(EventKind::BlockFound { .. })`,
//! `let stamp = events.sent(peer, "block", len)`, `events.received(peer, "block", len, &stamp)`.

mod check;
mod clock;
mod files;
mod parse;
mod record;
mod shiviz;
mod writer;

pub use check::{EventAt, Violation, check};
pub use clock::{ClockOrder, VectorClock};
pub use files::{LogReadError, NodeLogFiles, find_logs, read_all, read_events};
pub use parse::{ParseError, parse_line, parse_log};
pub use record::{Event, EventKind, RoundTimings, message_id};
pub use shiviz::{SHIVIZ_REGEX, shiviz_log};
pub use writer::{EventLog, EventLogError, EventLogStats, LOG_FILE, LogLimits, Stamp};

/// The log directory's name inside a node's data dir.
pub const EVENTS_DIR: &str = "events";
