//! Vector clocks keyed by node name: tick, merge and the happened-before order. Pure: no I/O.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How two vector clocks relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockOrder {
    /// Every component equal.
    Equal,
    /// The left clock happened before the right one.
    Before,
    /// The left clock happened after the right one.
    After,
    /// Neither happened before the other.
    Concurrent,
}

/// A vector clock: for each node (by name), how many of its events are known. A missing entry
/// is zero. Serialises as a JSON object `{"n0":3,"n1":1}` (the form ShiViz reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock(BTreeMap<String, u64>);

impl VectorClock {
    /// An all-zero clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// This node's component (0 when absent).
    pub fn get(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// Sets one component (for building clocks in tests and tools).
    pub fn set(&mut self, node: &str, value: u64) {
        self.0.insert(node.to_owned(), value);
    }

    /// Counts one local event of `node`; returns its new component.
    pub fn tick(&mut self, node: &str) -> u64 {
        let entry = self.0.entry(node.to_owned()).or_insert(0);
        *entry = entry.saturating_add(1);
        *entry
    }

    /// Takes the component-wise maximum with `other` (what a receive does before its tick).
    pub fn merge(&mut self, other: &VectorClock) {
        for (node, &value) in &other.0 {
            let entry = self.0.entry(node.clone()).or_insert(0);
            *entry = (*entry).max(value);
        }
    }

    /// The components, by node name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(node, &value)| (node.as_str(), value))
    }

    /// How `self` relates to `other` in the happened-before order.
    pub fn compare(&self, other: &VectorClock) -> ClockOrder {
        let (mut less, mut greater) = (false, false);
        for node in self.0.keys().chain(other.0.keys()) {
            match self.get(node).cmp(&other.get(node)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => ClockOrder::Equal,
            (true, false) => ClockOrder::Before,
            (false, true) => ClockOrder::After,
            (true, true) => ClockOrder::Concurrent,
        }
    }

    /// Whether `self` happened strictly before `other`.
    pub fn happened_before(&self, other: &VectorClock) -> bool {
        self.compare(other) == ClockOrder::Before
    }

    /// Whether neither clock happened before the other (and they differ).
    pub fn concurrent_with(&self, other: &VectorClock) -> bool {
        self.compare(other) == ClockOrder::Concurrent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(pairs: &[(&str, u64)]) -> VectorClock {
        let mut c = VectorClock::new();
        for &(n, v) in pairs {
            c.set(n, v);
        }
        c
    }

    #[test]
    fn tick_counts_local_events() {
        let mut c = VectorClock::new();
        assert_eq!(c.tick("a"), 1);
        assert_eq!(c.tick("a"), 2);
        assert_eq!(c.get("a"), 2);
        assert_eq!(c.get("b"), 0);
    }

    #[test]
    fn merge_takes_the_maximum_of_each_component() {
        let mut a = clock(&[("a", 3), ("b", 1)]);
        a.merge(&clock(&[("b", 4), ("c", 2)]));
        assert_eq!(a, clock(&[("a", 3), ("b", 4), ("c", 2)]));
    }

    #[test]
    fn send_then_receive_is_ordered_and_siblings_are_concurrent() {
        let mut a = VectorClock::new();
        a.tick("a");
        let sent = a.clone();
        let mut b = VectorClock::new();
        b.tick("b");
        let before_receive = b.clone();
        b.merge(&sent);
        b.tick("b");
        assert!(sent.happened_before(&b));
        assert_eq!(b.compare(&sent), ClockOrder::After);
        assert!(sent.concurrent_with(&before_receive));
        assert_eq!(sent.compare(&sent.clone()), ClockOrder::Equal);
        // A missing entry is zero: {a:1} equals {a:1, b:0}.
        assert_eq!(
            clock(&[("a", 1)]).compare(&clock(&[("a", 1), ("b", 0)])),
            ClockOrder::Equal
        );
    }

    #[test]
    fn serialises_as_a_json_object() {
        let c = clock(&[("n0", 2), ("n1", 1)]);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"n0":2,"n1":1}"#);
        assert_eq!(serde_json::from_str::<VectorClock>(&text).unwrap(), c);
    }
}
