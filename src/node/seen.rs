//! `SeenCache`: the hashes of blocks recently handled, so relayed duplicates are dropped before
//! they are decoded or validated. Bounded; the oldest entries go first.

use std::collections::{HashSet, VecDeque};

use crate::pow::BlockHash;

/// A bounded set of recently seen block hashes.
#[derive(Debug)]
pub struct SeenCache {
    order: VecDeque<BlockHash>,
    set: HashSet<BlockHash>,
    capacity: usize,
}

impl SeenCache {
    /// A cache remembering at most `capacity` hashes.
    pub fn new(capacity: usize) -> SeenCache {
        SeenCache {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// True when `hash` was seen (and not yet evicted).
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.set.contains(hash)
    }

    /// Remembers `hash`; false when it was already there.
    pub fn insert(&mut self, hash: BlockHash) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_oldest_beyond_capacity() {
        let mut seen = SeenCache::new(2);
        assert!(seen.insert(BlockHash([1; 32])));
        assert!(!seen.insert(BlockHash([1; 32])));
        seen.insert(BlockHash([2; 32]));
        seen.insert(BlockHash([3; 32]));
        assert!(!seen.contains(&BlockHash([1; 32])));
        assert!(seen.contains(&BlockHash([2; 32])) && seen.contains(&BlockHash([3; 32])));
    }
}
