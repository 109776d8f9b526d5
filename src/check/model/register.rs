//! A read/write register, initially `nil`. A read with an unknown result (timed out) is legal
//! in any state.

use super::Model;
use crate::check::history::{Call, Operation, Outcome, Value};

/// Read/write register.
#[derive(Debug, Clone, Copy, Default)]
pub struct Register;

impl Model for Register {
    type State = Value;

    fn name(&self) -> &'static str {
        "register"
    }

    fn init(&self) -> Value {
        Value::Nil
    }

    fn supports(&self, call: &Call) -> bool {
        matches!(call, Call::Read | Call::Write(_))
    }

    fn step(&self, state: &Value, op: &Operation) -> Option<Value> {
        match (&op.call, &op.outcome) {
            (Call::Read, Outcome::Value(seen)) => (seen == state).then(|| state.clone()),
            (Call::Read, _) => Some(state.clone()),
            (Call::Write(v), _) => Some(v.clone()),
            _ => None,
        }
    }

    fn read_only(&self, op: &Operation) -> bool {
        matches!(op.call, Call::Read)
    }

    fn describe(&self, state: &Value) -> String {
        state.to_string()
    }
}
