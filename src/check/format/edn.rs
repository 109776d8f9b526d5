//! Jepsen's key/value histories in EDN, as in Porcupine's `test_data/kv/*.txt`: one map per
//! line, `{:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append, :key "K", :value V}`
//! (`:read`, `:write` and `:cas` are read too). Line order is real-time order unless every line
//! has a `:time`. Only the small EDN subset these files use: keywords, strings, integers, `nil`,
//! `true`/`false` and flat vectors. Parsing only; pairing is `History::from_events`.

use crate::check::CheckError;
use crate::check::history::{Call, Event, EventKind, Outcome, Value};

/// An EDN value of the subset we read.
#[derive(Debug, Clone, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    Keyword(String),
    Vector(Vec<Edn>),
}

/// Parses a whole history into events. Blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Event>, CheckError> {
    let mut events = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let map = Cursor {
            rest: raw.trim(),
            line,
        }
        .map()?;
        events.push(event(line, &map)?);
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

struct Cursor<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) {
        self.rest = self
            .rest
            .trim_start_matches(|c: char| c.is_whitespace() || c == ',');
    }

    fn map(mut self) -> Result<Vec<(String, Edn)>, CheckError> {
        self.rest = self
            .rest
            .strip_prefix('{')
            .ok_or_else(|| syntax(self.line, "an EDN map `{:process ...}`", self.rest))?;
        let mut entries = Vec::new();
        loop {
            self.skip_space();
            if let Some(rest) = self.rest.strip_prefix('}') {
                if !rest.trim().is_empty() {
                    return Err(syntax(self.line, "end of line after `}`", rest));
                }
                return Ok(entries);
            }
            let key = match self.value()? {
                Edn::Keyword(k) => k,
                _ => {
                    return Err(syntax(
                        self.line,
                        "a keyword key like `:process`",
                        self.rest,
                    ));
                }
            };
            self.skip_space();
            let value = self.value()?;
            entries.push((key, value));
        }
    }

    fn value(&mut self) -> Result<Edn, CheckError> {
        self.skip_space();
        let line = self.line;
        if let Some(rest) = self.rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = rest.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.rest = &rest[i + 1..];
                        return Ok(Edn::Str(out));
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, other)) => out.push(other),
                        None => break,
                    },
                    other => out.push(other),
                }
            }
            return Err(syntax(line, "a closing `\"`", self.rest));
        }
        if let Some(rest) = self.rest.strip_prefix('[') {
            self.rest = rest;
            let mut items = Vec::new();
            loop {
                self.skip_space();
                if let Some(rest) = self.rest.strip_prefix(']') {
                    self.rest = rest;
                    return Ok(Edn::Vector(items));
                }
                if self.rest.is_empty() {
                    return Err(syntax(line, "a closing `]`", self.rest));
                }
                let item = self.value()?;
                if matches!(item, Edn::Vector(_)) {
                    return Err(syntax(line, "a flat vector", self.rest));
                }
                items.push(item);
            }
        }
        let end = self
            .rest
            .find(|c: char| {
                c.is_whitespace() || c == ',' || c == '}' || c == ']' || c == '[' || c == '"'
            })
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        match token {
            "" => Err(syntax(line, "a value", rest)),
            "nil" => Ok(Edn::Nil),
            "true" => Ok(Edn::Bool(true)),
            "false" => Ok(Edn::Bool(false)),
            _ => {
                if let Some(name) = token.strip_prefix(':') {
                    Ok(Edn::Keyword(name.to_string()))
                } else {
                    token.parse::<i64>().map(Edn::Int).map_err(|_| {
                        syntax(
                            line,
                            "nil, a keyword, a string, an integer or a vector",
                            token,
                        )
                    })
                }
            }
        }
    }
}

fn field<'m>(map: &'m [(String, Edn)], name: &str) -> Option<&'m Edn> {
    map.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn scalar(line: usize, edn: &Edn) -> Result<Value, CheckError> {
    match edn {
        Edn::Nil => Ok(Value::Nil),
        Edn::Int(n) => Ok(Value::Int(*n)),
        Edn::Str(s) => Ok(Value::Str(s.clone())),
        other => Err(syntax(
            line,
            "nil, an integer or a string",
            &format!("{other:?}"),
        )),
    }
}

fn event(line: usize, map: &[(String, Edn)]) -> Result<Event, CheckError> {
    let client = match field(map, "process") {
        Some(Edn::Int(n)) if *n >= 0 => *n as u64,
        _ => return Err(syntax(line, "`:process` with a non-negative integer", "")),
    };
    let kind = match field(map, "type") {
        Some(Edn::Keyword(k)) => match k.as_str() {
            "invoke" => EventKind::Invoke,
            "ok" => EventKind::Ok,
            "fail" => EventKind::Fail,
            "info" => EventKind::Info,
            other => return Err(syntax(line, "`:type` :invoke, :ok, :fail or :info", other)),
        },
        _ => return Err(syntax(line, "`:type` :invoke, :ok, :fail or :info", "")),
    };
    let key = match field(map, "key") {
        None | Some(Edn::Nil) => None,
        Some(Edn::Str(s)) => Some(s.clone()),
        Some(Edn::Int(n)) => Some(n.to_string()),
        Some(Edn::Keyword(k)) => Some(k.clone()),
        Some(other) => {
            return Err(syntax(
                line,
                "`:key` as a string or integer",
                &format!("{other:?}"),
            ));
        }
    };
    let value = field(map, "value").cloned().unwrap_or(Edn::Nil);
    let ok = kind == EventKind::Ok;
    let known = |edn: &Edn| -> Result<Outcome, CheckError> {
        if ok {
            Ok(Outcome::Value(scalar(line, edn)?))
        } else {
            Ok(Outcome::Unknown)
        }
    };
    let argument = |edn: &Edn| -> Result<Value, CheckError> {
        match edn {
            Edn::Keyword(_) => Ok(Value::Nil), // `:timed-out` and the like on a completion
            other => scalar(line, other),
        }
    };
    let (call, outcome) = match field(map, "f") {
        Some(Edn::Keyword(f)) => match f.as_str() {
            "get" => (Call::Get, known(&value)?),
            "read" => (Call::Read, known(&value)?),
            "put" => (Call::Put(argument(&value)?), Outcome::Done),
            "write" => (Call::Write(argument(&value)?), Outcome::Done),
            "append" => (Call::Append(argument(&value)?), Outcome::Done),
            "cas" => {
                let (expect, new) = match &value {
                    Edn::Vector(items) if items.len() == 2 => {
                        (scalar(line, &items[0])?, scalar(line, &items[1])?)
                    }
                    Edn::Keyword(_) if kind != EventKind::Invoke => (Value::Nil, Value::Nil),
                    _ => {
                        return Err(syntax(
                            line,
                            "`:value [A B]` for :cas",
                            &format!("{value:?}"),
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
                    "`:f` :get, :put, :append, :read, :write or :cas",
                    other,
                ));
            }
        },
        _ => {
            return Err(syntax(
                line,
                "`:f` :get, :put, :append, :read, :write or :cas",
                "",
            ));
        }
    };
    let time = match field(map, "time").or_else(|| field(map, "index")) {
        None | Some(Edn::Nil) => None,
        Some(Edn::Int(n)) if *n >= 0 => Some(*n as u64),
        Some(other) => {
            return Err(syntax(
                line,
                "`:time` as a non-negative integer",
                &format!("{other:?}"),
            ));
        }
    };
    Ok(Event {
        line,
        client,
        kind,
        key,
        call,
        outcome,
        time,
    })
}

fn edn_value(value: &Value) -> String {
    match value {
        Value::Nil => "nil".to_string(),
        Value::Int(n) => n.to_string(),
        Value::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// Writes a history as Jepsen key/value EDN, one event per line in time order (the format of
/// Porcupine's `kv` files, so Porcupine can read it); open operations end with `:info`.
pub fn write(history: &crate::check::History) -> String {
    let mut out = String::new();
    for (_, completion, i) in crate::check::history::event_order(history) {
        let op = &history.operations[i];
        let kind = match (completion, op.is_open()) {
            (false, _) => "invoke",
            (true, true) => "info",
            (true, false) if op.outcome == Outcome::Swapped(false) => "fail",
            (true, false) => "ok",
        };
        let key = op
            .key
            .as_deref()
            .map_or("nil".to_string(), |k| format!("\"{k}\""));
        let value = match (&op.call, completion, &op.outcome) {
            (Call::Read | Call::Get, true, Outcome::Value(v)) => edn_value(v),
            (Call::Read | Call::Get, _, _) => "nil".to_string(),
            (Call::Write(v) | Call::Put(v) | Call::Append(v), _, _) => edn_value(v),
            (Call::Cas { expect, new }, _, _) => {
                format!("[{} {}]", edn_value(expect), edn_value(new))
            }
        };
        out.push_str(&format!(
            "{{:process {}, :type :{kind}, :f :{}, :key {key}, :value {value}}}\n",
            op.client,
            op.call.name()
        ));
    }
    out
}
