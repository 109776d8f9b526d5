//! hashgrad's own history format: JSON Lines, one event per line, written by the node's
//! clients. Fields:
//!
//! | field | required | meaning |
//! | --- | --- | --- |
//! | `client` | yes | non-negative integer; a client has at most one operation in flight |
//! | `type` | yes | `invoke`, `ok`, `fail` (did not take effect; a failed read is a read with no answer) or `info` (unknown: stays open to the end) |
//! | `f` | yes | `read`, `write`, `cas`, `get`, `put` or `append` |
//! | `key` | no | string or integer; histories are checked per key (absent: one object) |
//! | `value` | see below | invoke of write/put/append: the argument; invoke of cas: `[expect, new]`; ok of read/get: the value read (`null`: never written); otherwise ignored |
//! | `time` | no | wall-clock nanoseconds; when every line has it, it orders events instead of line order |
//! | `index` | no | a logical time, used like `time` |
//!
//! Values are integers, strings or `null`. Example:
//! `{"client":1,"type":"invoke","f":"write","key":"x","value":3,"time":1700000000000000000}`.

use serde::Deserialize;

use crate::check::CheckError;
use crate::check::history::{Call, Event, EventKind, Outcome, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    client: u64,
    #[serde(rename = "type")]
    kind: String,
    f: String,
    #[serde(default)]
    key: Option<serde_json::Value>,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    time: Option<u64>,
    #[serde(default)]
    index: Option<u64>,
}

/// Parses a whole JSONL history into events. Blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Event>, CheckError> {
    let mut events = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(raw).map_err(|e| CheckError::Syntax {
            line,
            expected: "a JSON object {client, type, f, key?, value?, time?|index?}".to_string(),
            found: e.to_string(),
        })?;
        events.push(event(line, parsed)?);
    }
    Ok(events)
}

fn syntax(line: usize, expected: &str, found: &str) -> CheckError {
    CheckError::Syntax {
        line,
        expected: expected.to_string(),
        found: found.chars().take(80).collect(),
    }
}

fn scalar(line: usize, json: &serde_json::Value) -> Result<Value, CheckError> {
    match json {
        serde_json::Value::Null => Ok(Value::Nil),
        serde_json::Value::String(s) => Ok(Value::Str(s.clone())),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| syntax(line, "an integer that fits in 64 bits", &n.to_string())),
        other => Err(syntax(
            line,
            "`value` as an integer, a string or null",
            &other.to_string(),
        )),
    }
}

fn event(line: usize, parsed: Line) -> Result<Event, CheckError> {
    let kind = match parsed.kind.as_str() {
        "invoke" => EventKind::Invoke,
        "ok" => EventKind::Ok,
        "fail" => EventKind::Fail,
        "info" => EventKind::Info,
        other => return Err(syntax(line, "`type` invoke, ok, fail or info", other)),
    };
    let key = match parsed.key {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(syntax(
                line,
                "`key` as a string or an integer",
                &other.to_string(),
            ));
        }
    };
    let invoke = kind == EventKind::Invoke;
    let ok = kind == EventKind::Ok;
    let value = &parsed.value;
    let argument = || {
        if invoke {
            scalar(line, value)
        } else {
            Ok(Value::Nil)
        }
    };
    let result = || -> Result<Outcome, CheckError> {
        if ok {
            Ok(Outcome::Value(scalar(line, value)?))
        } else {
            Ok(Outcome::Unknown)
        }
    };
    let (call, outcome) = match parsed.f.as_str() {
        "read" => (Call::Read, result()?),
        "get" => (Call::Get, result()?),
        "write" => (Call::Write(argument()?), Outcome::Done),
        "put" => (Call::Put(argument()?), Outcome::Done),
        "append" => (Call::Append(argument()?), Outcome::Done),
        "cas" => {
            let (expect, new) = match value {
                serde_json::Value::Array(items) if items.len() == 2 => {
                    (scalar(line, &items[0])?, scalar(line, &items[1])?)
                }
                _ if !invoke => (Value::Nil, Value::Nil),
                other => {
                    return Err(syntax(
                        line,
                        "`value` [expect, new] for cas",
                        &other.to_string(),
                    ));
                }
            };
            (
                Call::Cas { expect, new },
                if ok {
                    Outcome::Swapped(true)
                } else {
                    Outcome::Unknown
                },
            )
        }
        other => {
            return Err(syntax(
                line,
                "`f` read, write, cas, get, put or append",
                other,
            ));
        }
    };
    Ok(Event {
        line,
        client: parsed.client,
        kind,
        key,
        call,
        outcome,
        time: parsed.time.or(parsed.index),
    })
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Int(n) => serde_json::Value::from(*n),
        Value::Str(s) => serde_json::Value::from(s.as_str()),
    }
}

/// Writes a history in this format, one event per line in time order, with `index` times;
/// open operations end with `info`.
pub fn write(history: &crate::check::History) -> String {
    let mut out = String::new();
    for (index, (_, completion, i)) in crate::check::history::event_order(history)
        .into_iter()
        .enumerate()
    {
        let op = &history.operations[i];
        let kind = match (completion, op.is_open()) {
            (false, _) => "invoke",
            (true, true) => "info",
            (true, false) if op.outcome == Outcome::Swapped(false) => "fail",
            (true, false) => "ok",
        };
        let value = match (&op.call, completion, &op.outcome) {
            (Call::Read | Call::Get, true, Outcome::Value(v)) => json_value(v),
            (Call::Read | Call::Get, _, _) => serde_json::Value::Null,
            (Call::Write(v) | Call::Put(v) | Call::Append(v), _, _) => json_value(v),
            (Call::Cas { expect, new }, _, _) => {
                serde_json::json!([json_value(expect), json_value(new)])
            }
        };
        let mut line = serde_json::json!({
            "client": op.client, "type": kind, "f": op.call.name(), "value": value, "index": index,
        });
        if let Some(key) = &op.key {
            line["key"] = serde_json::Value::from(key.as_str());
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}
