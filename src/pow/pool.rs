//! `ReceiptPool`: receipts waiting to be mined, deduplicated by id, in arrival order.
//!
//! The driver feeds it new receipts, takes a byte budget's worth for each template, drops
//! those a new best block holds, and puts back those a reorg returns.

use std::collections::{HashSet, VecDeque};

use super::block::{Receipt, ReceiptId};
use super::chain::{Accepted, Chain};

/// Receipts not yet in the best chain, oldest first, at most `max_bytes` of them.
#[derive(Debug, Clone)]
pub struct ReceiptPool {
    queue: VecDeque<Receipt>,
    ids: HashSet<ReceiptId>,
    bytes: usize,
    max_bytes: usize,
}

impl ReceiptPool {
    /// An empty pool holding at most `max_bytes` of receipt bytes.
    pub fn new(max_bytes: usize) -> ReceiptPool {
        ReceiptPool {
            queue: VecDeque::new(),
            ids: HashSet::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Adds a receipt at the back; false when it is already pooled or the pool is full.
    pub fn insert(&mut self, receipt: Receipt) -> bool {
        if self.bytes + receipt.0.len() > self.max_bytes || !self.ids.insert(receipt.id()) {
            return false;
        }
        self.bytes += receipt.0.len();
        self.queue.push_back(receipt);
        true
    }

    /// Puts receipts a reorg returned back at the front (they were mined before the rest),
    /// even past `max_bytes`, so none is lost.
    pub fn put_back(&mut self, receipts: Vec<Receipt>) {
        for receipt in receipts.into_iter().rev() {
            if self.ids.insert(receipt.id()) {
                self.bytes += receipt.0.len();
                self.queue.push_front(receipt);
            }
        }
    }

    /// Copies of the oldest receipts whose encoded size fits in `byte_budget` (they stay
    /// pooled until a best block holds them).
    pub fn select(&self, byte_budget: usize) -> Vec<Receipt> {
        let mut left = byte_budget;
        let mut out = Vec::new();
        for receipt in &self.queue {
            if receipt.encoded_len() <= left {
                left -= receipt.encoded_len();
                out.push(receipt.clone());
            }
        }
        out
    }

    /// Removes the receipts with these ids.
    pub fn remove(&mut self, ids: &HashSet<ReceiptId>) {
        if ids.is_empty() {
            return;
        }
        let mut bytes = self.bytes;
        self.queue.retain(|r| {
            let id = r.id();
            let keep = !ids.contains(&id);
            if !keep {
                bytes -= r.0.len();
            }
            keep
        });
        self.bytes = bytes;
        self.ids.retain(|id| !ids.contains(id));
    }

    /// Brings the pool up to date after `chain.accept_block` returned `accepted`: receipts the
    /// new best blocks hold leave, receipts a reorg returned come back.
    pub fn update(&mut self, accepted: &Accepted, chain: &Chain) {
        let Accepted::NewTip { reorg } = accepted else {
            return;
        };
        let connected: Vec<_> = match reorg {
            Some(reorg) => reorg.connected.clone(),
            None => vec![chain.tip()],
        };
        if let Some(reorg) = reorg {
            self.put_back(reorg.returned_receipts.clone());
        }
        let ids: HashSet<ReceiptId> = connected
            .iter()
            .filter_map(|h| chain.block(h))
            .flat_map(|b| b.body.receipts.iter().map(Receipt::id))
            .collect();
        self.remove(&ids);
    }

    /// True when the receipt is pooled.
    pub fn contains(&self, id: &ReceiptId) -> bool {
        self.ids.contains(id)
    }

    /// Pooled receipts.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is pooled.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Receipt bytes pooled.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(tag: &str) -> Receipt {
        Receipt(tag.as_bytes().to_vec())
    }

    #[test]
    fn dedupes_caps_bytes_and_selects_oldest_within_a_budget() {
        let mut pool = ReceiptPool::new(10);
        assert!(pool.insert(r("aaaa")));
        assert!(!pool.insert(r("aaaa")));
        assert!(pool.insert(r("bbbbbb")));
        assert!(!pool.insert(r("c")), "over max_bytes");
        assert_eq!(pool.bytes(), 10);
        assert_eq!(pool.select(8), vec![r("aaaa")]);
        assert_eq!(pool.select(18), vec![r("aaaa"), r("bbbbbb")]);
        // A budget too small for the oldest still takes a later one that fits.
        let mut small_first = ReceiptPool::new(100);
        small_first.insert(r("0123456789"));
        small_first.insert(r("x"));
        assert_eq!(small_first.select(6), vec![r("x")]);
    }

    #[test]
    fn put_back_goes_first_even_past_the_cap_and_remove_forgets() {
        let mut pool = ReceiptPool::new(4);
        pool.insert(r("new1"));
        pool.put_back(vec![r("old1"), r("old2"), r("new1")]);
        assert_eq!(
            pool.select(usize::MAX),
            vec![r("old1"), r("old2"), r("new1")]
        );
        assert_eq!(pool.bytes(), 12);
        pool.remove(&[r("old2").id()].into());
        assert_eq!(pool.len(), 2);
        assert!(!pool.contains(&r("old2").id()));
        assert_eq!(pool.bytes(), 8);
        assert!(!pool.insert(r("zz")), "still over the cap after put_back");
    }
}
