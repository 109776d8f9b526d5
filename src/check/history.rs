//! Histories: the events a parser reads (one per line) and the operations they pair up into
//! (an invocation and its completion, or an invocation left open by a timeout). Pure data and
//! the pairing rules; no parsing of any text format and no checking.

use std::collections::HashMap;
use std::fmt;

use super::CheckError;

/// A value read or written. `Nil` is a register's initial state ("never written").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    /// A register's initial state: never written.
    Nil,
    /// A signed 64-bit integer, as register histories write them.
    Int(i64),
    /// A string, as key/value histories write them (a key's whole contents).
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// The operation a client asked for (`f` in Jepsen's terms), with its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Read a register.
    Read,
    /// Write the value to a register.
    Write(Value),
    /// Compare-and-set a register: if it holds `expect`, replace it with `new`.
    Cas {
        /// The value the register must hold for the swap.
        expect: Value,
        /// The value swapped in.
        new: Value,
    },
    /// Get a key's value.
    Get,
    /// Put (overwrite) a key's value.
    Put(Value),
    /// Append the string to a key's value.
    Append(Value),
}

impl Call {
    /// The Jepsen name of the function: `read`, `write`, `cas`, `get`, `put`, `append`.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Read => "read",
            Call::Write(_) => "write",
            Call::Cas { .. } => "cas",
            Call::Get => "get",
            Call::Put(_) => "put",
            Call::Append(_) => "append",
        }
    }
}

/// What the completion said. `Unknown` when the client never learnt (a timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A read or get returned this value.
    Value(Value),
    /// A CAS answered: `true` swapped, `false` the comparison failed.
    Swapped(bool),
    /// A write, put or append was acknowledged.
    Done,
    /// The client timed out: any result, and the operation may take effect later or never.
    Unknown,
}

/// How an event moves an operation along (Jepsen's `:type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The client starts an operation.
    Invoke,
    /// The operation completed and took effect; the event carries its result.
    Ok,
    /// The operation did not take effect; the pairing drops it (see `Completion::Dropped`).
    Fail,
    /// Indeterminate: the operation stays open to the end of the history.
    Info,
}

/// One line of a history, already decoded by a parser.
#[derive(Debug, Clone)]
pub struct Event {
    /// 1-based source line, for error messages.
    pub line: usize,
    /// The client (Jepsen process) that issued the event; one operation at a time per client.
    pub client: u64,
    /// Whether the line starts, completes, fails or leaves open an operation.
    pub kind: EventKind,
    /// The key of a key/value operation; `None` for a single register.
    pub key: Option<String>,
    /// On an invocation: the call. On a completion: the call it echoes (only its name is
    /// compared with the invocation's).
    pub call: Call,
    /// On an `Ok` completion: the result. Ignored elsewhere.
    pub outcome: Outcome,
    /// Wall-clock or logical time; when every event has one, it orders them instead of lines.
    pub time: Option<u64>,
}

/// One operation: an invocation paired with its completion.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The client (Jepsen process) that ran it.
    pub client: u64,
    /// The key of a key/value operation; `None` for a single register.
    pub key: Option<String>,
    /// What the client asked for, with its argument.
    pub call: Call,
    /// The result: a value read, a CAS answer, `Done`, or `Unknown` when it never completed.
    pub outcome: Outcome,
    /// Invocation time (line index, or the event's own time).
    pub invoked: u64,
    /// Completion time; `u64::MAX` when the operation stayed open (`info` or no completion).
    pub completed: u64,
    /// Source line of the invocation.
    pub line: usize,
}

impl Operation {
    /// A short human form, e.g. `write(3)`, `get("k") -> "x"`, `cas(1, 2) -> ok`.
    pub fn describe(&self) -> String {
        let key = match &self.key {
            Some(k) => format!("{k:?}"),
            None => String::new(),
        };
        let sep = if key.is_empty() { "" } else { ", " };
        let result = match &self.outcome {
            Outcome::Value(v) => format!(" -> {v}"),
            Outcome::Swapped(true) => " -> ok".to_string(),
            Outcome::Swapped(false) => " -> fail".to_string(),
            Outcome::Done => String::new(),
            Outcome::Unknown => " -> ?".to_string(),
        };
        match &self.call {
            Call::Read | Call::Get => format!("{}({key}){result}", self.call.name()),
            Call::Write(v) | Call::Put(v) | Call::Append(v) => {
                format!("{}({key}{sep}{v}){result}", self.call.name())
            }
            Call::Cas { expect, new } => format!("cas({key}{sep}{expect}, {new}){result}"),
        }
    }

    /// True when the operation never completed (it may take effect at any later point).
    pub fn is_open(&self) -> bool {
        self.completed == u64::MAX
    }
}

/// A complete history: operations in invocation order.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Operations sorted by invocation time; failed writes (and failed CAS outside etcd logs)
    /// are dropped.
    pub operations: Vec<Operation>,
}

impl History {
    /// Pairs events into operations. Events must be in the order they were written; times, when
    /// every event carries one, replace line order as the real-time order.
    ///
    /// Rules (Jepsen's, as Porcupine reads them): an `ok` completes the client's open
    /// invocation with its result; a `fail` drops it, except that a failed CAS becomes a CAS
    /// whose comparison failed when `fail_cas_is_comparison` (etcd logs) and a failed read
    /// becomes a read with an unknown result; an `info` leaves it open, as does a missing
    /// completion. An open operation may take effect at any point after its invocation.
    pub fn from_events(
        events: Vec<Event>,
        fail_cas_is_comparison: bool,
    ) -> Result<History, CheckError> {
        let timed = events.first().is_some_and(|e| e.time.is_some());
        if let Some(bad) = events.iter().find(|e| e.time.is_some() != timed) {
            return Err(CheckError::MixedTimes { line: bad.line });
        }
        let mut open: HashMap<u64, usize> = HashMap::new();
        let mut pending: Vec<Option<Operation>> = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            let now = if timed {
                event.time.unwrap_or(0)
            } else {
                index as u64
            };
            if event.kind == EventKind::Invoke {
                if let Some(&slot) = open.get(&event.client) {
                    let first = pending[slot].as_ref().map_or(0, |op| op.line);
                    return Err(CheckError::OverlappingInvoke {
                        line: event.line,
                        client: event.client,
                        open_line: first,
                    });
                }
                open.insert(event.client, pending.len());
                pending.push(Some(Operation {
                    client: event.client,
                    key: event.key,
                    call: event.call,
                    outcome: Outcome::Unknown,
                    invoked: now,
                    completed: u64::MAX,
                    line: event.line,
                }));
                continue;
            }
            let Some(slot) = open.get(&event.client).copied() else {
                return Err(CheckError::UnmatchedCompletion {
                    line: event.line,
                    client: event.client,
                });
            };
            let Some(op) = pending[slot].as_mut() else {
                return Err(CheckError::UnmatchedCompletion {
                    line: event.line,
                    client: event.client,
                });
            };
            if op.call.name() != event.call.name() {
                return Err(CheckError::MismatchedCompletion {
                    line: event.line,
                    client: event.client,
                    invoked: op.call.name(),
                    completed: event.call.name(),
                });
            }
            if timed && now < op.invoked {
                return Err(CheckError::TimeGoesBack { line: event.line });
            }
            match event.kind {
                EventKind::Ok => {
                    op.completed = now;
                    op.outcome = match (&op.call, event.outcome) {
                        (Call::Cas { .. }, Outcome::Unknown | Outcome::Done) => {
                            Outcome::Swapped(true)
                        }
                        (Call::Write(_) | Call::Put(_) | Call::Append(_), _) => Outcome::Done,
                        (_, outcome) => outcome,
                    };
                    open.remove(&event.client);
                }
                EventKind::Fail => {
                    match op.call {
                        Call::Cas { .. } if fail_cas_is_comparison => {
                            op.completed = now;
                            op.outcome = Outcome::Swapped(false);
                        }
                        Call::Read | Call::Get => {
                            op.completed = now;
                            op.outcome = Outcome::Unknown;
                        }
                        _ => pending[slot] = None,
                    }
                    open.remove(&event.client);
                }
                EventKind::Info => {
                    // Stays open with an unknown result; the client must not continue.
                    open.remove(&event.client);
                }
                EventKind::Invoke => {}
            }
        }
        let mut operations: Vec<Operation> = pending.into_iter().flatten().collect();
        operations.sort_by_key(|op| op.invoked);
        Ok(History { operations })
    }

    /// Number of distinct clients.
    pub fn clients(&self) -> usize {
        let mut seen: Vec<u64> = self.operations.iter().map(|op| op.client).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }
}

/// One line to write back out: (time, completion?, operation index).
pub(crate) fn event_order(history: &History) -> Vec<(u64, bool, usize)> {
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * history.operations.len());
    for (i, op) in history.operations.iter().enumerate() {
        order.push((op.invoked, false, i));
        order.push((op.completed, true, i));
    }
    order.sort_unstable();
    order
}
