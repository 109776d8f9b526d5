//! The Wing–Gong / Lowe linearizability search for one partition, as Porcupine does it: the
//! history as a doubly linked list of call and return entries in real-time order; try to
//! linearize the first call that no pending return precedes (lift it and its return out of
//! the list), backtrack at a return (unlift), and prune with a cache of (linearized set, model
//! state) pairs already explored.
//!
//! Two representation choices make it cheap: model states are interned to `u32` (with a memo
//! of transitions, so a string-valued state is built and hashed once), and the linearized set
//! is a vector of per-lane counts instead of a bitset. A lane is a chain of operations each of
//! which returns before the next is invoked (a client's operations, split after an open one);
//! a lane's operations can only be linearized in order, so "which are linearized" is "how
//! many of each lane". The search is resumable (`run` takes a step budget) so a scheduler can
//! interleave partitions and stop all of them at the first refutation. No clock, no threads.
//!
//! Two orderings on top, in three passes over the candidates at a point:
//! 1. Read-only operations (a read, a failed CAS: legal states are left unchanged) first, and
//!    a legal one decides the point alone. Linearizing it now dominates every alternative:
//!    any linearization of the rest that places it later stays valid with it removed (it
//!    changed no state there) and with it gone no real-time constraint is stronger. So when
//!    the point after it fails, or was already explored, the point itself fails, and reads
//!    no longer multiply the search by their interleavings.
//! 2. Then operations that completed, 3. then open ones (`info`: timed out, may take effect
//!    any time later or never), so an open write is only placed when something needs its
//!    effect. Every candidate of passes 2 and 3 is tried before backtracking, so the search
//!    stays complete.

use std::hash::{BuildHasher, Hash};

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::history::Operation;
use super::model::Model;

/// Where a search stands after a `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    Linearizable,
    Refuted,
    Running,
}

const HEAD: u32 = 0;
const NONE: u32 = u32::MAX;

/// Read-only operations: a legal one is the only candidate tried at its point.
const READ_ONLY: u8 = 0;
/// Completed operations that may change the state.
const COMPLETED: u8 = 1;
/// Open (`info`) operations that may change the state.
const OPEN: u8 = 2;

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn lane_term(lane: u32, count: u32) -> u64 {
    mix((u64::from(lane) << 32) | u64::from(count))
}

/// Interned model states. Each state is stored once (a kv state is a string that grows with
/// every append, so a second copy as a map key would double the search's memory): the index
/// maps a state's hash to the newest id with that hash, and ids sharing a hash are chained.
pub(crate) struct States<S> {
    pub(crate) values: Vec<S>,
    index: FxHashMap<u64, u32>,
    /// Id → the previous id with the same hash, or `NONE`.
    same_hash: Vec<u32>,
}

impl<S: Clone + Eq + Hash> States<S> {
    fn new() -> Self {
        States {
            values: Vec::new(),
            index: FxHashMap::default(),
            same_hash: Vec::new(),
        }
    }

    fn intern(&mut self, state: S) -> u32 {
        let hash = FxBuildHasher.hash_one(&state);
        let newest = self.index.get(&hash).copied().unwrap_or(NONE);
        let mut id = newest;
        while id != NONE {
            if self.values[id as usize] == state {
                return id;
            }
            id = self.same_hash[id as usize];
        }
        let id = self.values.len() as u32;
        self.values.push(state);
        self.same_hash.push(newest);
        self.index.insert(hash, id);
        id
    }
}

/// The set of (per-lane counts, state) pairs already explored: open addressing over an arena.
/// Counts are stored in the fewest bytes that hold the longest lane (1, 2 or 4), so a pair
/// over 50 short lanes costs 50 bytes, not 200: the arena is most of the search's memory.
struct Cache {
    slots: Vec<u32>,
    hashes: Vec<u64>,
    states: Vec<u32>,
    counts: Vec<u8>,
    /// Bytes per stored count.
    width: usize,
    /// The counts being inserted, packed like the arena's.
    packed: Vec<u8>,
}

impl Cache {
    fn new(lanes: usize, longest_lane: usize) -> Self {
        let width = match longest_lane {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            _ => 4,
        };
        Cache {
            slots: vec![0; 1024],
            hashes: Vec::new(),
            states: Vec::new(),
            counts: Vec::new(),
            width,
            packed: Vec::with_capacity(lanes * width),
        }
    }

    /// Inserts the pair; false when it was already there.
    fn insert(&mut self, hash: u64, state: u32, counts: &[u32]) -> bool {
        self.packed.clear();
        match self.width {
            1 => self.packed.extend(counts.iter().map(|&c| c as u8)),
            2 => counts
                .iter()
                .for_each(|&c| self.packed.extend_from_slice(&(c as u16).to_le_bytes())),
            _ => counts
                .iter()
                .for_each(|&c| self.packed.extend_from_slice(&c.to_le_bytes())),
        }
        let size = self.packed.len();
        let mask = self.slots.len() - 1;
        let mut slot = (hash as usize) & mask;
        loop {
            let entry = self.slots[slot];
            if entry == 0 {
                break;
            }
            let e = (entry - 1) as usize;
            if self.hashes[e] == hash
                && self.states[e] == state
                && self.counts[e * size..(e + 1) * size] == self.packed[..]
            {
                return false;
            }
            slot = (slot + 1) & mask;
        }
        self.hashes.push(hash);
        self.states.push(state);
        self.counts.extend_from_slice(&self.packed);
        self.slots[slot] = self.hashes.len() as u32;
        if self.hashes.len() * 2 > self.slots.len() {
            self.grow();
        }
        true
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        let mask = size - 1;
        let mut slots = vec![0u32; size];
        for (e, &hash) in self.hashes.iter().enumerate() {
            let mut slot = (hash as usize) & mask;
            while slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            slots[slot] = e as u32 + 1;
        }
        self.slots = slots;
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }
}

/// The search over one partition's operations.
pub(crate) struct Search<'a, M: Model> {
    model: &'a M,
    pub(crate) ops: Vec<&'a Operation>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Entry → local op << 1 | 1 for a return entry.
    entry: Vec<u32>,
    /// Local op → its return entry.
    ret_of: Vec<u32>,
    lane: Vec<u32>,
    /// Local op → the pass that tries it: `READ_ONLY`, `COMPLETED` or `OPEN`.
    pass_of: Vec<u8>,
    /// The first pass any operation needs, and the last.
    first_pass: u8,
    last_pass: u8,
    /// The pass now walking the candidates.
    pass: u8,
    counts: Vec<u32>,
    counts_hash: u64,
    tail: u32,
    state: u32,
    /// (call entry, state before, pass) of each linearized operation.
    stack: Vec<(u32, u32, u8)>,
    cursor: u32,
    cache: Cache,
    pub(crate) states: States<M::State>,
    memo: FxHashMap<u64, u32>,
    best: Vec<u32>,
    agree: usize,
    done: Option<Progress>,
    pub(crate) steps: u64,
}

impl<'a, M: Model> Search<'a, M> {
    /// Prepares the search over `ops`, given in invocation order.
    pub(crate) fn new(model: &'a M, ops: Vec<&'a Operation>) -> Self {
        let n = ops.len();
        // Entries sorted by time, calls before returns at equal times.
        let mut order: Vec<(u64, u32, u32)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoked, 0, i as u32));
            order.push((op.completed, 1, i as u32));
        }
        order.sort_unstable();
        let size = 2 * n + 2;
        let tail = (2 * n + 1) as u32;
        let mut entry = vec![0u32; size];
        let mut ret_of = vec![0u32; n];
        let mut next = vec![NONE; size];
        let mut prev = vec![NONE; size];
        for (k, &(_, kind, op)) in order.iter().enumerate() {
            let e = k + 1;
            entry[e] = (op << 1) | kind;
            if kind == 1 {
                ret_of[op as usize] = e as u32;
            }
        }
        for e in 0..size - 1 {
            next[e] = (e + 1) as u32;
            prev[e + 1] = e as u32;
        }
        // Lanes: per client, a new lane whenever the previous operation had not returned.
        let mut lane = vec![0u32; n];
        let mut tails: FxHashMap<u64, (u32, u64)> = FxHashMap::default();
        let mut lanes = 0u32;
        for (i, op) in ops.iter().enumerate() {
            let id = match tails.get(&op.client) {
                Some(&(id, completed)) if completed < op.invoked => id,
                _ => {
                    lanes += 1;
                    lanes - 1
                }
            };
            tails.insert(op.client, (id, op.completed));
            lane[i] = id;
        }
        let pass_of: Vec<u8> = ops
            .iter()
            .map(|op| match () {
                _ if model.read_only(op) => READ_ONLY,
                _ if op.is_open() => OPEN,
                _ => COMPLETED,
            })
            .collect();
        let first_pass = pass_of.iter().copied().min().unwrap_or(COMPLETED);
        let last_pass = pass_of.iter().copied().max().unwrap_or(COMPLETED);
        let counts = vec![0u32; lanes as usize];
        let mut lane_lengths = vec![0usize; lanes as usize];
        for &l in &lane {
            lane_lengths[l as usize] += 1;
        }
        let longest_lane = lane_lengths.iter().copied().max().unwrap_or(0);
        let counts_hash = (0..lanes).fold(0u64, |h, l| h.wrapping_add(lane_term(l, 0)));
        let mut states = States::new();
        let state = states.intern(model.init());
        Search {
            model,
            ops,
            next,
            prev,
            entry,
            ret_of,
            lane,
            pass_of,
            first_pass,
            last_pass,
            pass: first_pass,
            counts,
            counts_hash,
            tail,
            state,
            stack: Vec::new(),
            cursor: if n == 0 { tail } else { 1 },
            cache: Cache::new(lanes as usize, longest_lane),
            states,
            memo: FxHashMap::default(),
            best: Vec::new(),
            agree: 0,
            done: if n == 0 {
                Some(Progress::Linearizable)
            } else {
                None
            },
            steps: 0,
        }
    }

    /// The next state after local op `op` from interned `state`, or `None` when illegal.
    fn transition(&mut self, state: u32, op: u32) -> Option<u32> {
        let key = (u64::from(state) << 32) | u64::from(op);
        if let Some(&next) = self.memo.get(&key) {
            return (next != NONE).then_some(next);
        }
        let next = self
            .model
            .step(&self.states.values[state as usize], self.ops[op as usize])
            .map(|s| self.states.intern(s));
        self.memo.insert(key, next.unwrap_or(NONE));
        next
    }

    fn lift(&mut self, call: u32) {
        let ret = self.ret_of[(self.entry[call as usize] >> 1) as usize];
        for e in [call, ret] {
            let (p, n) = (self.prev[e as usize], self.next[e as usize]);
            self.next[p as usize] = n;
            self.prev[n as usize] = p;
        }
    }

    fn unlift(&mut self, call: u32) {
        let ret = self.ret_of[(self.entry[call as usize] >> 1) as usize];
        for e in [ret, call] {
            let (p, n) = (self.prev[e as usize], self.next[e as usize]);
            self.next[p as usize] = e;
            self.prev[n as usize] = e;
        }
    }

    fn note_longest(&mut self) {
        if self.stack.len() > self.best.len() {
            self.best.truncate(self.agree);
            let entry = &self.entry;
            self.best.extend(
                self.stack[self.agree..]
                    .iter()
                    .map(|&(e, _, _)| entry[e as usize] >> 1),
            );
            self.agree = self.stack.len();
        }
    }

    /// Runs at most `budget` steps.
    pub(crate) fn run(&mut self, budget: u64) -> Progress {
        if let Some(done) = self.done {
            return done;
        }
        for _ in 0..budget {
            self.steps += 1;
            if self.next[HEAD as usize] == self.tail {
                self.note_longest();
                self.done = Some(Progress::Linearizable);
                return Progress::Linearizable;
            }
            let e = self.cursor;
            let code = self.entry[e as usize];
            let op = code >> 1;
            if code & 1 == 1 {
                // The end of this point's candidates: the next pass, or back.
                if self.pass < self.last_pass {
                    self.pass += 1;
                    self.cursor = self.next[HEAD as usize];
                } else if !self.backtrack() {
                    return Progress::Refuted;
                }
                continue;
            }
            if self.pass_of[op as usize] != self.pass {
                self.cursor = self.next[e as usize];
                continue;
            }
            let Some(next_state) = self.transition(self.state, op) else {
                self.cursor = self.next[e as usize];
                continue;
            };
            let lane = self.lane[op as usize];
            let count = self.counts[lane as usize];
            let hash = self
                .counts_hash
                .wrapping_sub(lane_term(lane, count))
                .wrapping_add(lane_term(lane, count + 1));
            self.counts[lane as usize] = count + 1;
            if self.cache.insert(
                hash ^ mix(u64::from(next_state) ^ 0x5851_f42d),
                next_state,
                &self.counts,
            ) {
                self.stack.push((e, self.state, self.pass));
                self.state = next_state;
                self.counts_hash = hash;
                self.lift(e);
                self.pass = self.first_pass;
                self.cursor = self.next[HEAD as usize];
            } else {
                self.counts[lane as usize] = count;
                if self.pass == READ_ONLY {
                    // The point after this read was explored and failed: so does this one.
                    if !self.backtrack() {
                        return Progress::Refuted;
                    }
                } else {
                    self.cursor = self.next[e as usize];
                }
            }
        }
        Progress::Running
    }

    /// Undoes the last linearized operation and resumes after it; a read-only one decided its
    /// point alone, so that point is undone too. False (and refuted) when nothing is left.
    fn backtrack(&mut self) -> bool {
        self.note_longest();
        loop {
            let Some((call, before, pass)) = self.stack.pop() else {
                self.done = Some(Progress::Refuted);
                return false;
            };
            self.agree = self.agree.min(self.stack.len());
            let op = self.entry[call as usize] >> 1;
            let lane = self.lane[op as usize];
            let count = self.counts[lane as usize];
            self.counts_hash = self
                .counts_hash
                .wrapping_sub(lane_term(lane, count))
                .wrapping_add(lane_term(lane, count - 1));
            self.counts[lane as usize] = count - 1;
            self.state = before;
            self.unlift(call);
            if pass != READ_ONLY {
                self.pass = pass;
                self.cursor = self.next[call as usize];
                return true;
            }
        }
    }

    /// The full linearization (when linearizable) or the longest partial one found, as local
    /// operation indices.
    pub(crate) fn longest(&mut self) -> Vec<u32> {
        self.note_longest();
        self.best.clone()
    }

    /// How many (linearized set, state) pairs the cache holds.
    pub(crate) fn explored(&self) -> usize {
        self.cache.len()
    }

    /// Replays a sequence of local operations from the initial state; the interned state
    /// after each, or `None` from the first illegal one.
    pub(crate) fn replay(&mut self, seq: &[u32]) -> Vec<Option<u32>> {
        let mut state = Some(0u32);
        seq.iter()
            .map(|&op| {
                state = state.and_then(|s| self.transition(s, op));
                state
            })
            .collect()
    }

    /// The model's step from an interned state, for explanations.
    pub(crate) fn try_step(&mut self, state: u32, op: u32) -> Option<u32> {
        self.transition(state, op)
    }

    pub(crate) fn describe_state(&self, state: u32) -> String {
        self.model.describe(&self.states.values[state as usize])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Cache, Progress, Search};
    use crate::check::history::{Call, Operation, Outcome, Value};
    use crate::check::model::{CasRegister, Model};

    /// Every order of `ops` that respects real time (a before b when a returned before b was
    /// invoked), tried against the model: the definition, by brute force.
    fn linearizable_by_brute_force(ops: &[Operation]) -> bool {
        fn extend(ops: &[Operation], placed: &mut Vec<bool>, state: &Value) -> bool {
            if placed.iter().all(|&p| p) {
                return true;
            }
            (0..ops.len()).any(|i| {
                let ready = !placed[i]
                    && (0..ops.len())
                        .all(|j| placed[j] || j == i || ops[j].completed >= ops[i].invoked);
                ready
                    && CasRegister.step(state, &ops[i]).is_some_and(|next| {
                        placed[i] = true;
                        let ok = extend(ops, placed, &next);
                        placed[i] = false;
                        ok
                    })
            })
        }
        extend(ops, &mut vec![false; ops.len()], &Value::Nil)
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![Just(Value::Nil), Just(Value::Int(1)), Just(Value::Int(2))]
    }

    fn operation() -> impl Strategy<Value = Operation> {
        let call = prop_oneof![
            (value(), any::<bool>()).prop_map(|(v, known)| (
                Call::Read,
                if known {
                    Outcome::Value(v)
                } else {
                    Outcome::Unknown
                }
            )),
            value().prop_map(|v| (Call::Write(v), Outcome::Done)),
            (value(), value(), 0u8..3).prop_map(|(expect, new, r)| (
                Call::Cas { expect, new },
                match r {
                    0 => Outcome::Swapped(false),
                    1 => Outcome::Swapped(true),
                    _ => Outcome::Unknown,
                }
            )),
        ];
        (call, 0u64..4, 0u64..16, 0u64..8, 0u8..6).prop_map(
            |((call, outcome), client, invoked, length, open)| Operation {
                client,
                key: None,
                call,
                outcome,
                invoked,
                completed: if open == 0 {
                    u64::MAX
                } else {
                    invoked + length
                },
                line: 0,
            },
        )
    }

    /// Whatever width the counts are packed in, a pair is found again exactly and a pair
    /// differing in one count (even only above the low byte) is new.
    #[test]
    fn the_cache_tells_pairs_apart_at_every_count_width() {
        for longest in [200, 60_000, 100_000] {
            let mut cache = Cache::new(3, longest);
            let counts = [longest as u32, 1, 0];
            assert!(cache.insert(7, 0, &counts));
            assert!(!cache.insert(7, 0, &counts));
            assert!(cache.insert(7, 1, &counts), "another state");
            let high = if longest > 0xff { 0x100 } else { 1 };
            assert!(
                cache.insert(7, 0, &[longest as u32 - high, 1, 0]),
                "another count"
            );
            for i in 0..5_000u32 {
                assert!(cache.insert(u64::from(i) * 31, 2, &[i % 97, i / 97, 2]));
            }
            assert!(!cache.insert(31 * 4_999, 2, &[4_999 % 97, 4_999 / 97, 2]));
            assert_eq!(cache.len(), 5_003);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The pruning (the cache, read-only operations deciding their point, open operations
        /// last) never changes a verdict: the search agrees with the definition.
        #[test]
        fn the_search_agrees_with_brute_force(mut ops in prop::collection::vec(operation(), 1..8)) {
            ops.sort_by_key(|op| op.invoked);
            let expected = linearizable_by_brute_force(&ops);
            let mut search = Search::new(&CasRegister, ops.iter().collect());
            let got = search.run(u64::MAX);
            prop_assert_eq!(got == Progress::Linearizable, expected, "{:?}", ops);
        }
    }
}
