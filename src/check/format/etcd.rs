//! Jepsen's etcd register logs, as in Porcupine's `test_data/jepsen/etcd_NNN.log`:
//! `INFO jepsen.util - <process> <:invoke|:ok|:fail|:info> <:read|:write|:cas> <value>`, fields
//! split by any whitespace, one event per line, line order = real-time order. Values: `nil`,
//! an integer, `[A B]` for a CAS, or `:timed-out` on a timeout. Parsing only; pairing is
//! `History::from_events`.

use crate::check::CheckError;
use crate::check::history::{Call, Event, EventKind, Outcome, Value};

/// Parses a whole log into events. Blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Event>, CheckError> {
    let mut events = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        events.push(parse_line(line, &tokens)?);
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

fn parse_line(line: usize, tokens: &[&str]) -> Result<Event, CheckError> {
    match tokens {
        ["INFO", "jepsen.util", "-", process, kind, f, value @ ..] => {
            let client = process
                .parse::<u64>()
                .map_err(|_| syntax(line, "a process number", process))?;
            let kind = match *kind {
                ":invoke" => EventKind::Invoke,
                ":ok" => EventKind::Ok,
                ":fail" => EventKind::Fail,
                ":info" => EventKind::Info,
                other => return Err(syntax(line, ":invoke, :ok, :fail or :info", other)),
            };
            let value = value.join(" ");
            let timed_out = value == ":timed-out";
            let (call, outcome) = match *f {
                ":read" => {
                    let outcome = if timed_out || kind != EventKind::Ok {
                        Outcome::Unknown
                    } else {
                        Outcome::Value(scalar(line, &value)?)
                    };
                    (Call::Read, outcome)
                }
                ":write" => {
                    let arg = if timed_out {
                        Value::Nil
                    } else {
                        scalar(line, &value)?
                    };
                    (Call::Write(arg), Outcome::Done)
                }
                ":cas" => {
                    let (expect, new) = if timed_out {
                        (Value::Nil, Value::Nil)
                    } else {
                        pair(line, &value)?
                    };
                    let outcome = match kind {
                        EventKind::Ok => Outcome::Swapped(true),
                        _ => Outcome::Unknown,
                    };
                    (Call::Cas { expect, new }, outcome)
                }
                other => return Err(syntax(line, ":read, :write or :cas", other)),
            };
            Ok(Event {
                line,
                client,
                kind,
                key: None,
                call,
                outcome,
                time: None,
            })
        }
        _ => Err(syntax(
            line,
            "`INFO jepsen.util - <process> <type> <f> <value>`",
            &tokens.join(" "),
        )),
    }
}

fn scalar(line: usize, text: &str) -> Result<Value, CheckError> {
    if text == "nil" {
        return Ok(Value::Nil);
    }
    text.parse::<i64>()
        .map(Value::Int)
        .map_err(|_| syntax(line, "nil or an integer", text))
}

fn pair(line: usize, text: &str) -> Result<(Value, Value), CheckError> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| syntax(line, "[A B]", text))?;
    match inner.split_whitespace().collect::<Vec<_>>()[..] {
        [a, b] => Ok((scalar(line, a)?, scalar(line, b)?)),
        _ => Err(syntax(line, "[A B]", text)),
    }
}
