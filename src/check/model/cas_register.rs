//! A register with compare-and-set, initially `nil` (Jepsen's etcd model, as Porcupine's test
//! defines it). A CAS that answered `ok` needs state = expect; one that failed needs state ≠
//! expect and changes nothing; one with an unknown result (timed out) is always legal and
//! still swaps when state = expect.

use super::Model;
use crate::check::history::{Call, Operation, Outcome, Value};

/// Register with read, write and compare-and-set.
#[derive(Debug, Clone, Copy, Default)]
pub struct CasRegister;

impl Model for CasRegister {
    type State = Value;

    fn name(&self) -> &'static str {
        "cas-register"
    }

    fn init(&self) -> Value {
        Value::Nil
    }

    fn supports(&self, call: &Call) -> bool {
        matches!(call, Call::Read | Call::Write(_) | Call::Cas { .. })
    }

    fn step(&self, state: &Value, op: &Operation) -> Option<Value> {
        match (&op.call, &op.outcome) {
            (Call::Read, Outcome::Value(seen)) => (seen == state).then(|| state.clone()),
            (Call::Read, _) => Some(state.clone()),
            (Call::Write(v), _) => Some(v.clone()),
            (Call::Cas { expect, new }, outcome) => {
                let matches = expect == state;
                match outcome {
                    Outcome::Swapped(true) => matches.then(|| new.clone()),
                    Outcome::Swapped(false) => (!matches).then(|| state.clone()),
                    _ => Some(if matches { new.clone() } else { state.clone() }),
                }
            }
            _ => None,
        }
    }

    fn read_only(&self, op: &Operation) -> bool {
        matches!(
            (&op.call, &op.outcome),
            (Call::Read, _) | (Call::Cas { .. }, Outcome::Swapped(false))
        )
    }

    fn describe(&self, state: &Value) -> String {
        state.to_string()
    }
}
