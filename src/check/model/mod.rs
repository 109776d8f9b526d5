//! Sequential specifications the linearizability search checks against, behind one small
//! trait: a new model is one file. Every model here describes one object (one register, one
//! key's value); the checker partitions a history by key, so a key/value store is the product
//! of its keys (P-compositionality). Models are pure functions of (state, operation).

mod cas_register;
mod kv;
mod register;

use std::fmt::Debug;
use std::hash::Hash;

pub use cas_register::CasRegister;
pub use kv::Kv;
pub use register::Register;

use super::history::{Call, Operation};

/// A sequential specification of one object.
pub trait Model: Sync {
    /// The object's state. The search interns states, so it may be large (a string).
    type State: Clone + Eq + Hash + Debug + Send + Sync;
    /// The name used on the command line.
    fn name(&self) -> &'static str;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Whether this model has a meaning for the call (`read`, `put`, ...).
    fn supports(&self, call: &Call) -> bool;
    /// Applies one operation with its recorded outcome: the next state, or `None` when the
    /// outcome is impossible from `state`.
    fn step(&self, state: &Self::State, op: &Operation) -> Option<Self::State>;
    /// True when `op` leaves every state it is legal in unchanged (a read, a failed CAS). The
    /// search linearizes such an operation as soon as it is legal and tries nothing else at
    /// that point, so a wrong `true` makes the checker refute linearizable histories; `false`
    /// is always safe (only slower).
    fn read_only(&self, op: &Operation) -> bool {
        let _ = op;
        false
    }
    /// A short human form of a state for explanations and the HTML view.
    fn describe(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// The models the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelKind {
    /// A read/write register, initially nil (`register`).
    Register,
    /// A register with compare-and-set, initially nil (`cas-register`).
    CasRegister,
    /// One string value per key with get, put and append, initially empty (`kv`).
    Kv,
}

impl ModelKind {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
        }
    }

    /// The model a history's calls call for: `kv` if it has get/put/append, `cas-register` if
    /// it has a CAS, `register` otherwise.
    pub fn infer(ops: &[Operation]) -> ModelKind {
        if ops
            .iter()
            .any(|op| matches!(op.call, Call::Get | Call::Put(_) | Call::Append(_)))
        {
            ModelKind::Kv
        } else if ops.iter().any(|op| matches!(op.call, Call::Cas { .. })) {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }
}
