//! Linearizable histories by construction, for tests and benches: clients run operations on a
//! real in-memory store under a seeded random schedule; each operation takes effect at one
//! instant between its invocation and its completion, so the history is linearizable (and,
//! with distinct written values, causally consistent). Pure: seeded randomness, no clock.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::history::{Call, Event, EventKind, History, Outcome, Value};

/// What a generated history exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Reads and writes of distinct integers on `keys` registers.
    Register,
    /// Get, put and append of short strings on `keys` keys.
    Kv,
}

/// Shape of a generated history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Which operations the clients run.
    pub workload: Workload,
    /// Number of clients, each with at most one operation in flight; 0 counts as 1.
    pub clients: usize,
    /// Number of registers or keys the operations spread over; 0 counts as 1.
    pub keys: usize,
    /// Total operations across all clients.
    pub operations: usize,
    /// Seed of the random schedule; the same shape always yields the same history.
    pub seed: u64,
}

enum Stage {
    Idle,
    Invoked(Call, Option<String>),
    Applied(Call, Option<String>, Outcome),
}

/// Generates a linearizable history of the given shape.
pub fn generate(shape: Shape) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
    let clients = shape.clients.max(1);
    let keys = shape.keys.max(1);
    let mut store: Vec<Value> = vec![Value::Nil; keys];
    let mut stages: Vec<Stage> = (0..clients).map(|_| Stage::Idle).collect();
    let mut events = Vec::new();
    let (mut invoked, mut completed, mut counter) = (0usize, 0usize, 0i64);
    while completed < shape.operations {
        let c = rng.random_range(0..clients);
        let stage = std::mem::replace(&mut stages[c], Stage::Idle);
        stages[c] = match stage {
            Stage::Idle if invoked < shape.operations => {
                invoked += 1;
                counter += 1;
                let key = rng.random_range(0..keys);
                let call = match (shape.workload, rng.random_range(0..4)) {
                    (Workload::Register, 0 | 1) => Call::Read,
                    (Workload::Register, _) => Call::Write(Value::Int(counter)),
                    (Workload::Kv, 0 | 1) => Call::Get,
                    (Workload::Kv, 2) => Call::Put(Value::Str(format!("x {c} {counter} y"))),
                    (Workload::Kv, _) => Call::Append(Value::Str(format!("x {c} {counter} y"))),
                };
                let key = (keys > 1 || shape.workload == Workload::Kv).then(|| key.to_string());
                events.push(event(
                    events.len(),
                    c,
                    EventKind::Invoke,
                    key.clone(),
                    call.clone(),
                    Outcome::Unknown,
                ));
                Stage::Invoked(call, key)
            }
            Stage::Idle => Stage::Idle,
            Stage::Invoked(call, key) => {
                let slot = key
                    .as_deref()
                    .and_then(|k| k.parse::<usize>().ok())
                    .unwrap_or(0)
                    .min(keys - 1);
                let outcome = match &call {
                    Call::Read => Outcome::Value(store[slot].clone()),
                    Call::Get => Outcome::Value(match &store[slot] {
                        Value::Nil => Value::Str(String::new()),
                        v => v.clone(),
                    }),
                    Call::Write(v) | Call::Put(v) => {
                        store[slot] = v.clone();
                        Outcome::Done
                    }
                    Call::Append(Value::Str(s)) => {
                        let mut next = match &store[slot] {
                            Value::Str(old) => old.clone(),
                            _ => String::new(),
                        };
                        next.push_str(s);
                        store[slot] = Value::Str(next);
                        Outcome::Done
                    }
                    _ => Outcome::Done,
                };
                Stage::Applied(call, key, outcome)
            }
            Stage::Applied(call, key, outcome) => {
                completed += 1;
                events.push(event(events.len(), c, EventKind::Ok, key, call, outcome));
                Stage::Idle
            }
        };
    }
    // Every event pairs (one invocation per idle client), so this cannot fail.
    History::from_events(events, false).unwrap_or_default()
}

fn event(
    index: usize,
    client: usize,
    kind: EventKind,
    key: Option<String>,
    call: Call,
    outcome: Outcome,
) -> Event {
    Event {
        line: index + 1,
        client: client as u64,
        kind,
        key,
        call,
        outcome,
        time: None,
    }
}

/// Changes the `nth` completed read (or get) to return a value nobody wrote; `false` when the
/// history has fewer reads. The result is neither linearizable nor causally consistent.
pub fn corrupt_read(history: &mut History, nth: usize) -> bool {
    let reads: Vec<usize> = history
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| {
            matches!(op.call, Call::Read | Call::Get) && matches!(op.outcome, Outcome::Value(_))
        })
        .map(|(i, _)| i)
        .collect();
    let Some(&i) = reads.get(nth % reads.len().max(1)) else {
        return false;
    };
    history.operations[i].outcome = Outcome::Value(match history.operations[i].call {
        Call::Get => Value::Str("never written".to_string()),
        _ => Value::Int(-1),
    });
    true
}
