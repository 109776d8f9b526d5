//! The simulated network: messages in flight with a delivery tick, loss, duplication,
//! reordering (random delays, shuffled delivery) and partitions as a set of cut directed links.
//! Deterministic given its RNG; no real time.

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::raft::message::Message;
use crate::raft::types::RaftId;

/// Fault rates of the network (probabilities per message, delay in ticks).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Longest delivery delay in ticks (delays are uniform in `0..=max_delay`).
    pub max_delay: u64,
}

impl Faults {
    /// A perfect network: no loss, no duplicates, delivery within one tick.
    pub const CALM: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        max_delay: 1,
    };
}

#[derive(Debug, Clone)]
struct InFlight {
    deliver_at: u64,
    msg: Message,
}

/// Messages in flight and the links currently cut.
#[derive(Debug, Clone, Default)]
pub struct Network {
    in_flight: Vec<InFlight>,
    cut: BTreeSet<(RaftId, RaftId)>,
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages dropped by loss or partitions.
    pub dropped: u64,
}

impl Network {
    /// Cuts the directed link `from → to`.
    pub fn cut(&mut self, from: RaftId, to: RaftId) {
        self.cut.insert((from, to));
    }
    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&mut self, a: RaftId, b: RaftId) {
        self.cut(a, b);
        self.cut(b, a);
    }
    /// Cuts every link between `group` and the rest of `all`.
    pub fn partition(&mut self, group: &[RaftId], all: &[RaftId]) {
        for &a in group {
            for &b in all {
                if !group.contains(&b) {
                    self.cut_both(a, b);
                }
            }
        }
    }
    /// Isolates `node` from everyone.
    pub fn isolate(&mut self, node: RaftId, all: &[RaftId]) {
        self.partition(&[node], all);
    }
    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
    /// True when `from → to` is cut.
    pub fn is_cut(&self, from: RaftId, to: RaftId) -> bool {
        self.cut.contains(&(from, to))
    }
    /// How many messages are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands a message to the network at tick `now`.
    pub fn send(&mut self, msg: Message, now: u64, faults: &Faults, rng: &mut ChaCha8Rng) {
        self.sent += 1;
        if self.is_cut(msg.from, msg.to) || (faults.loss > 0.0 && rng.random_bool(faults.loss)) {
            self.dropped += 1;
            return;
        }
        let copies = if faults.duplicate > 0.0 && rng.random_bool(faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let deliver_at = now + rng.random_range(0..=faults.max_delay);
            self.in_flight.push(InFlight {
                deliver_at,
                msg: msg.clone(),
            });
        }
    }

    /// Removes and returns the messages due at `now`, shuffled, minus those on cut links.
    #[must_use = "the messages taken are removed; deliver them"]
    pub fn take_due(&mut self, now: u64, rng: &mut ChaCha8Rng) -> Vec<Message> {
        let (mut due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| m.deliver_at <= now);
        self.in_flight = rest;
        due.shuffle(rng);
        let before = due.len();
        let out: Vec<Message> = due
            .into_iter()
            .map(|m| m.msg)
            .filter(|m| !self.is_cut(m.from, m.to))
            .collect();
        self.dropped += (before - out.len()) as u64;
        out
    }

    /// Drops every message to or from `node` (it crashed: its sockets are gone).
    pub fn drop_node(&mut self, node: RaftId) {
        let before = self.in_flight.len();
        self.in_flight.retain(|m| m.msg.to != node);
        self.dropped += (before - self.in_flight.len()) as u64;
    }
}
