//! Causal consistency (CC) of differentiated read/write histories (every value is written at
//! most once per key), decided in polynomial time by looking for the bad patterns of
//! A. Bouajjani, C. Enea, R. Guerraoui, J. Hamza, "On verifying causal consistency",
//! POPL 2017 (arXiv:1611.00580). With program order PO (each client's operations in order),
//! read-from RF (the write whose value a read returns) and causal order CO = (PO ∪ RF)⁺, a
//! differentiated history is CC iff it has none of:
//!
//! - `ThinAirRead`: a read returns a value no write wrote;
//! - `CyclicCO`: CO has a cycle;
//! - `WriteCOInitRead`: a read returns the initial value although a write to its key
//!   precedes it in CO;
//! - `WriteCORead`: a read returns w1's value although another write w2 to the key lies
//!   between them in CO (w1 <CO w2 <CO read).
//!
//! (The paper's `WriteHBInitRead` and `CyclicHB` characterise the stronger causal memory,
//! CM, and `CyclicCF` causal convergence; they are not checked here.)
//!
//! CO is computed as vector clocks over clients: since PO ⊆ CO, an operation's causal past
//! is a prefix of each client's operations, so one count per client describes it exactly.
//! Reads with unknown results are left out (they constrain nothing). Pure: no I/O, no clock.

use std::collections::HashMap;

use super::CheckError;
use super::history::{Call, History, Outcome, Value};

/// A bad pattern of the paper, for CC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadPattern {
    /// A read returns a value that no write wrote to its key.
    ThinAirRead,
    /// The causal order (program order plus read-from, transitively) has a cycle.
    CyclicCO,
    /// A read returns the initial value although a write to its key precedes it causally.
    WriteCOInitRead,
    /// A read returns w1's value although another write w2 to the key lies causally between them.
    WriteCORead,
}

impl BadPattern {
    /// The paper's name.
    pub fn name(self) -> &'static str {
        match self {
            BadPattern::ThinAirRead => "ThinAirRead",
            BadPattern::CyclicCO => "CyclicCO",
            BadPattern::WriteCOInitRead => "WriteCOInitRead",
            BadPattern::WriteCORead => "WriteCORead",
        }
    }
}

/// A witness of a bad pattern.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which bad pattern the witness shows.
    pub pattern: BadPattern,
    /// The operations involved (indices into `History::operations`), in the pattern's order.
    pub operations: Vec<usize>,
    /// One sentence naming them.
    pub explanation: String,
}

/// The result of a causal check: `None` when causally consistent.
#[derive(Debug, Clone)]
pub struct CausalReport {
    /// The first bad pattern found; `None` when the history is causally consistent.
    pub violation: Option<Violation>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Write,
    Read { init: bool },
}

struct Node {
    op: usize,
    client: usize,
    pos: u32,
    role: Role,
    /// The write a read reads from.
    source: Option<usize>,
}

/// Checks CC of a differentiated history of reads and writes (or gets and puts).
pub fn check(history: &History) -> Result<CausalReport, CheckError> {
    let ops = &history.operations;
    let mut clients: HashMap<u64, usize> = HashMap::new();
    let mut lengths: Vec<u32> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut writes: HashMap<(Option<&str>, &Value), usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        let role = match (&op.call, &op.outcome) {
            (Call::Write(v) | Call::Put(v), _) => {
                if *v == Value::Nil
                    || (matches!(op.call, Call::Put(_)) && *v == Value::Str(String::new()))
                {
                    return Err(CheckError::NotDifferentiated {
                        line: op.line,
                        first_line: 0,
                    });
                }
                Role::Write
            }
            (Call::Read | Call::Get, Outcome::Value(v)) => Role::Read {
                init: *v == Value::Nil || (op.call == Call::Get && *v == Value::Str(String::new())),
            },
            (Call::Read | Call::Get, _) => continue,
            (call, _) => {
                return Err(CheckError::UnsupportedCall {
                    line: op.line,
                    model: "causal",
                    call: call.name(),
                });
            }
        };
        let next = clients.len();
        let client = *clients.entry(op.client).or_insert(next);
        if client == lengths.len() {
            lengths.push(0);
        }
        let pos = lengths[client];
        lengths[client] += 1;
        if let (Role::Write, Call::Write(v) | Call::Put(v)) = (role, &op.call) {
            if let Some(&first) = writes.get(&(op.key.as_deref(), v)) {
                return Err(CheckError::NotDifferentiated {
                    line: op.line,
                    first_line: ops[nodes[first].op].line,
                });
            }
            writes.insert((op.key.as_deref(), v), nodes.len());
        }
        nodes.push(Node {
            op: i,
            client,
            pos,
            role,
            source: None,
        });
    }
    // Read-from; a read of a value nobody wrote is a ThinAirRead.
    let mut thin_air = None;
    for n in 0..nodes.len() {
        if let Role::Read { init: false } = nodes[n].role {
            let op = &ops[nodes[n].op];
            let Outcome::Value(v) = &op.outcome else {
                continue;
            };
            match writes.get(&(op.key.as_deref(), v)) {
                Some(&w) => nodes[n].source = Some(w),
                None => {
                    thin_air = Some(n);
                    break;
                }
            }
        }
    }
    let describe = |n: usize| {
        let op = &ops[nodes[n].op];
        format!("{} (client {}, line {})", op.describe(), op.client, op.line)
    };
    let violation = |pattern: BadPattern, witness: Vec<usize>, explanation: String| {
        Ok(CausalReport {
            violation: Some(Violation {
                pattern,
                operations: witness.iter().map(|&n| nodes[n].op).collect(),
                explanation,
            }),
        })
    };
    if let Some(n) = thin_air {
        let text = format!("{} reads a value that no operation wrote", describe(n));
        return violation(BadPattern::ThinAirRead, vec![n], text);
    }

    // Program order: the previous node of the same client.
    let mut po_pred = vec![usize::MAX; nodes.len()];
    let mut last: Vec<usize> = vec![usize::MAX; lengths.len()];
    for (n, node) in nodes.iter().enumerate() {
        po_pred[n] = last[node.client];
        last[node.client] = n;
    }
    let preds = |n: usize| {
        [po_pred[n], nodes[n].source.unwrap_or(usize::MAX)]
            .into_iter()
            .filter(|&p| p != usize::MAX)
    };

    // Topological order of PO ∪ RF (Kahn); what is left over lies on or after a cycle.
    let mut indegree = vec![0u32; nodes.len()];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (n, degree) in indegree.iter_mut().enumerate() {
        for p in preds(n) {
            *degree += 1;
            succs[p].push(n);
        }
    }
    let mut order: Vec<usize> = (0..nodes.len()).filter(|&n| indegree[n] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let n = order[head];
        head += 1;
        for &s in &succs[n] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                order.push(s);
            }
        }
    }
    if order.len() < nodes.len() {
        // Walk back through predecessors that are still on a cycle until one repeats.
        let Some(start) = (0..nodes.len()).find(|&n| indegree[n] > 0) else {
            return Ok(CausalReport { violation: None });
        };
        let mut seen = vec![usize::MAX; nodes.len()];
        let mut path = Vec::new();
        let mut n = start;
        while seen[n] == usize::MAX {
            seen[n] = path.len();
            path.push(n);
            match preds(n).find(|&p| indegree[p] > 0) {
                Some(p) => n = p,
                None => break,
            }
        }
        let mut cycle: Vec<usize> = path[seen[n].min(path.len())..].to_vec();
        cycle.reverse();
        let text = format!(
            "causal order has a cycle: {}",
            cycle
                .iter()
                .map(|&c| describe(c))
                .collect::<Vec<_>>()
                .join(" → ")
        );
        return violation(BadPattern::CyclicCO, cycle, text);
    }

    // Vector clocks: clock[n][c] = how many of client c's operations are ≤CO n.
    let width = lengths.len();
    let mut clock = vec![0u32; nodes.len() * width];
    for &n in &order {
        for p in preds(n) {
            for c in 0..width {
                let v = clock[p * width + c];
                if v > clock[n * width + c] {
                    clock[n * width + c] = v;
                }
            }
        }
        clock[n * width + nodes[n].client] = nodes[n].pos + 1;
    }

    // Each client's writes per key, in program order.
    let mut writes_of: HashMap<(usize, Option<&str>), Vec<usize>> = HashMap::new();
    for (n, node) in nodes.iter().enumerate() {
        if node.role == Role::Write {
            writes_of
                .entry((node.client, ops[node.op].key.as_deref()))
                .or_default()
                .push(n);
        }
    }
    for &r in &order {
        let Role::Read { init } = nodes[r].role else {
            continue;
        };
        let key = ops[nodes[r].op].key.as_deref();
        for c in 0..width {
            let Some(list) = writes_of.get(&(c, key)) else {
                continue;
            };
            let seen = clock[r * width + c];
            // The latest write of client c to this key in r's causal past.
            let k = list.partition_point(|&w| nodes[w].pos < seen);
            if k == 0 {
                continue;
            }
            let w2 = list[k - 1];
            if init {
                let text = format!(
                    "{} reads the initial value, but {} precedes it in causal order",
                    describe(r),
                    describe(w2)
                );
                return violation(BadPattern::WriteCOInitRead, vec![w2, r], text);
            }
            let Some(w1) = nodes[r].source else { continue };
            if w2 != w1 && clock[w2 * width + nodes[w1].client] > nodes[w1].pos {
                let text = format!(
                    "{} reads from {}, but {} overwrote it in between in causal order",
                    describe(r),
                    describe(w1),
                    describe(w2)
                );
                return violation(BadPattern::WriteCORead, vec![w1, w2, r], text);
            }
        }
    }
    Ok(CausalReport { violation: None })
}
