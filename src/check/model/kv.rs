//! One key of a key/value store with get, put and append on strings (the MIT 6.824 service
//! Porcupine was built for). A key starts as `""`; a `nil` read means `""`; append
//! concatenates. The checker partitions by key, so this model sees one key's operations.

use super::Model;
use crate::check::history::{Call, Operation, Outcome, Value};

/// One key's string value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

fn text(value: &Value) -> String {
    match value {
        Value::Nil => String::new(),
        Value::Int(n) => n.to_string(),
        Value::Str(s) => s.clone(),
    }
}

impl Model for Kv {
    type State = String;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> String {
        String::new()
    }

    fn supports(&self, call: &Call) -> bool {
        matches!(call, Call::Get | Call::Put(_) | Call::Append(_))
    }

    fn step(&self, state: &String, op: &Operation) -> Option<String> {
        match (&op.call, &op.outcome) {
            (Call::Get, Outcome::Value(seen)) => {
                let same = match seen {
                    Value::Nil => state.is_empty(),
                    Value::Str(s) => s == state,
                    Value::Int(n) => *state == n.to_string(),
                };
                same.then(|| state.clone())
            }
            (Call::Get, _) => Some(state.clone()),
            (Call::Put(v), _) => Some(text(v)),
            (Call::Append(v), _) => {
                let mut next = String::with_capacity(state.len() + 16);
                next.push_str(state);
                next.push_str(&text(v));
                Some(next)
            }
            _ => None,
        }
    }

    fn read_only(&self, op: &Operation) -> bool {
        matches!(op.call, Call::Get)
    }

    fn describe(&self, state: &String) -> String {
        format!("{state:?}")
    }
}
