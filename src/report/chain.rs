//! The block tree from the nodes' `block_found` / `block_received` events (each names its
//! parent) and their `block_reorged` events, laid out for drawing: x is the height, the best
//! chain is row 0 and every side branch gets a row of its own. Pure.

use std::collections::HashMap;

use serde::Serialize;

#[derive(Debug, Clone)]
struct Seen {
    height: u64,
    parent: String,
    miner: Option<usize>,
    first_ms: u64,
    nodes: u64,
}

/// One reorg a node logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reorg {
    /// Lane of the node that logged the reorg.
    pub lane: usize,
    /// When it was logged, in ms since the report's time origin.
    pub at_ms: u64,
    /// Blocks the node's best chain gave up.
    pub depth: u64,
    /// Hash of the tip before the reorg (at most 64 characters).
    pub old_tip: String,
    /// Hash of the tip after the reorg (at most 64 characters).
    pub new_tip: String,
}

/// Collects blocks as the events arrive.
#[derive(Debug, Default)]
pub(super) struct BlockTree {
    blocks: HashMap<String, Seen>,
    reorgs: Vec<Reorg>,
    reorgs_total: u64,
}

/// A block placed for drawing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedBlock {
    /// The block's hash as logged (at most 64 characters).
    pub hash: String,
    /// Height of the block as logged.
    pub height: u64,
    /// Index of the parent in the placed list (`None`: not drawn, e.g. genesis).
    pub parent: Option<usize>,
    /// Row it is drawn on: 0 for the best chain, one row per side branch.
    pub row: usize,
    /// The lane of the node that mined it, when its log says so.
    pub miner: Option<usize>,
    /// When a node first logged it, in ms since the report's time origin.
    pub first_ms: u64,
    /// How many nodes logged it (found or received).
    pub nodes: u64,
    /// Off the best chain: a fork that lost.
    pub orphaned: bool,
}

/// The tree as drawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainView {
    /// The placed blocks, lowest height first, so a parent comes before its children.
    pub blocks: Vec<PlacedBlock>,
    /// Rows used: the best chain plus one per side branch that needed its own.
    pub rows: usize,
    /// Blocks logged; `blocks` holds the highest `max` of them.
    pub total: usize,
    /// Reorgs kept for drawing, at most 2000.
    pub reorgs: Vec<Reorg>,
    /// Reorgs logged, counting those not kept.
    pub reorgs_total: u64,
}

/// Reorgs kept for drawing (all are counted).
const MAX_REORGS: usize = 2_000;
/// Longest hash string kept (display hex is 64).
const MAX_HASH: usize = 64;

fn clip(hash: &str) -> String {
    hash.chars().take(MAX_HASH).collect()
}

impl BlockTree {
    /// A block `hash` (child of `parent`) logged by the node on `lane`, which mined it if
    /// `mined`.
    pub(super) fn block(
        &mut self,
        lane: usize,
        at_ms: u64,
        hash: &str,
        height: u64,
        parent: &str,
        mined: bool,
    ) {
        let seen = self.blocks.entry(clip(hash)).or_insert_with(|| Seen {
            height,
            parent: clip(parent),
            miner: None,
            first_ms: at_ms,
            nodes: 0,
        });
        seen.nodes += 1;
        seen.first_ms = seen.first_ms.min(at_ms);
        if seen.parent.is_empty() {
            seen.parent = clip(parent);
        }
        if mined {
            seen.miner = Some(lane);
        }
    }

    pub(super) fn reorg(
        &mut self,
        lane: usize,
        at_ms: u64,
        old_tip: &str,
        new_tip: &str,
        depth: u64,
    ) {
        self.reorgs_total += 1;
        if self.reorgs.len() < MAX_REORGS {
            self.reorgs.push(Reorg {
                lane,
                at_ms,
                depth,
                old_tip: clip(old_tip),
                new_tip: clip(new_tip),
            });
        }
    }

    /// Lays out the highest `max` blocks; times become ms since `origin_ms`.
    pub(super) fn finish(self, origin_ms: u64, max: usize) -> ChainView {
        let total = self.blocks.len();
        let mut order: Vec<(&String, &Seen)> = self.blocks.iter().collect();
        // Highest first; among equals the one most nodes hold, then the earliest.
        order.sort_by(|a, b| {
            (b.1.height, b.1.nodes, std::cmp::Reverse(b.1.first_ms), b.0).cmp(&(
                a.1.height,
                a.1.nodes,
                std::cmp::Reverse(a.1.first_ms),
                a.0,
            ))
        });
        order.truncate(max);
        // The best chain: from the best tip down its parents.
        let mut best = std::collections::HashSet::new();
        if let Some((tip, _)) = order.first() {
            let mut at = Some(tip.as_str());
            while let Some(hash) = at {
                if !best.insert(hash.to_owned()) {
                    break;
                }
                at = self.blocks.get(hash).map(|s| s.parent.as_str());
            }
        }
        order.reverse(); // lowest first, so parents come before children
        order.sort_by_key(|(_, s)| s.height);
        let index: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (h.as_str(), i))
            .collect();
        let mut placed: Vec<PlacedBlock> = Vec::with_capacity(order.len());
        // Per row: the height of its last block.
        let mut row_end: Vec<Option<u64>> = vec![None];
        for (hash, seen) in &order {
            let parent = index.get(seen.parent.as_str()).copied();
            let orphaned = !best.contains(hash.as_str());
            let row = if !orphaned {
                0
            } else {
                let continues = parent
                    .map(|p| &placed[p])
                    .filter(|p| p.orphaned && row_end[p.row] == Some(p.height));
                match continues {
                    Some(p) => p.row,
                    None => {
                        let free = (1..row_end.len())
                            .find(|&r| row_end[r].is_none_or(|end| end + 1 < seen.height));
                        free.unwrap_or_else(|| {
                            row_end.push(None);
                            row_end.len() - 1
                        })
                    }
                }
            };
            row_end[row] = Some(seen.height);
            placed.push(PlacedBlock {
                hash: (*hash).clone(),
                height: seen.height,
                parent,
                row,
                miner: seen.miner,
                first_ms: seen.first_ms.saturating_sub(origin_ms),
                nodes: seen.nodes,
                orphaned,
            });
        }
        let reorgs = self
            .reorgs
            .into_iter()
            .map(|r| Reorg {
                at_ms: r.at_ms.saturating_sub(origin_ms),
                ..r
            })
            .collect();
        ChainView {
            rows: row_end.len(),
            blocks: placed,
            total,
            reorgs,
            reorgs_total: self.reorgs_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> String {
        format!("{n:064x}")
    }

    #[test]
    fn a_fork_gets_its_own_row_and_the_best_chain_row_zero() {
        let mut tree = BlockTree::default();
        // 1 ← 2 ← 3 ← 4 is the best chain; 2 ← 13 ← 14 lost (node 1 mined it, reorged).
        tree.block(0, 10, &hash(1), 1, &hash(0), true);
        tree.block(0, 20, &hash(2), 2, &hash(1), true);
        tree.block(1, 21, &hash(13), 3, &hash(2), true);
        tree.block(1, 22, &hash(14), 4, &hash(13), true);
        tree.block(0, 30, &hash(3), 3, &hash(2), true);
        tree.block(0, 40, &hash(4), 4, &hash(3), true);
        tree.block(0, 41, &hash(5), 5, &hash(4), true);
        tree.block(1, 45, &hash(5), 5, &hash(4), false);
        tree.reorg(1, 45, &hash(14), &hash(5), 2);
        let view = tree.finish(0, 100);
        assert_eq!(view.total, 7);
        assert_eq!(view.rows, 2);
        let find = |n: u32| view.blocks.iter().position(|b| b.hash == hash(n)).unwrap();
        for n in [1, 2, 3, 4, 5] {
            assert_eq!(view.blocks[find(n)].row, 0, "block {n}");
            assert!(!view.blocks[find(n)].orphaned);
        }
        assert_eq!(view.blocks[find(13)].row, 1);
        assert_eq!(view.blocks[find(14)].row, 1);
        assert!(view.blocks[find(14)].orphaned);
        assert_eq!(view.blocks[find(13)].parent, Some(find(2)));
        assert_eq!(view.blocks[find(14)].miner, Some(1));
        assert_eq!(view.blocks[find(5)].nodes, 2);
        assert_eq!(view.blocks[find(1)].parent, None, "genesis is not drawn");
        assert_eq!(view.reorgs.len(), 1);
    }

    #[test]
    fn only_the_highest_blocks_are_kept() {
        let mut tree = BlockTree::default();
        for n in 1..=500u32 {
            tree.block(0, u64::from(n), &hash(n), u64::from(n), &hash(n - 1), true);
        }
        let view = tree.finish(0, 100);
        assert_eq!(view.total, 500);
        assert_eq!(view.blocks.len(), 100);
        assert_eq!(view.blocks[0].height, 401);
        assert_eq!(view.blocks[0].parent, None);
        assert_eq!(view.blocks[99].parent, Some(98));
    }
}
