//! `Chain`: the in-memory block tree and fork choice (most cumulative work), without I/O.
//!
//! The driver hands it blocks and the current time (`accept_block`) and reads back what
//! changed (`Accepted`): a new tip, perhaps through a reorg that returns the losing branch's
//! receipts, a side branch, a duplicate, or an orphan whose parent must be fetched. It never
//! touches files, sockets or clocks; `store` persists what it accepts.
//!
//! Orphans are not kept: the driver fetches the missing parent (headers-first sync) and hands
//! the blocks over again in order. Between branches of equal work the first seen stays best.

use std::collections::{HashMap, HashSet, VecDeque};

use super::block::{Block, Receipt, ReceiptId};
use super::difficulty::{self, Sample};
use super::error::ChainError;
use super::header::{BlockHash, BlockHeader};
use super::network::NetworkParams;
use super::validate::{self, MEDIAN_TIME_SPAN, ParentContext};
use crate::target::{CompactBits, Target, Work};

/// What `accept_block` did with a valid (or already known) block.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// The block is the new best tip; `reorg` is `None` when it simply extends the old tip.
    NewTip {
        /// The switch of branches, if the new tip is not a child of the old one.
        reorg: Option<Reorg>,
    },
    /// Valid and stored in the tree, but its branch has no more work than the best one.
    SideBranch,
    /// Already known; nothing changed.
    Duplicate,
    /// Its parent is unknown; nothing was stored. Fetch `missing_parent` and retry.
    Orphan {
        /// Hash of the parent the block names and the chain lacks.
        missing_parent: BlockHash,
    },
}

/// A switch of the best chain to another branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reorg {
    /// Blocks removed from the best chain, old tip first.
    pub disconnected: Vec<BlockHash>,
    /// Blocks added to the best chain, oldest first (the new tip last).
    pub connected: Vec<BlockHash>,
    /// Receipts of the disconnected blocks that the new best chain does not hold, in chain
    /// order: put them back in the pool so nothing is lost.
    pub returned_receipts: Vec<Receipt>,
}

/// A known block and where it sits in the tree.
#[derive(Debug, Clone)]
struct Entry {
    block: Block,
    height: u64,
    /// Work of this block and all its ancestors.
    chain_work: Work,
}

/// The block tree of one network, its best chain and fork choice.
#[derive(Debug, Clone)]
pub struct Chain {
    params: NetworkParams,
    entries: HashMap<BlockHash, Entry>,
    /// Hashes of the best chain by height (`best[0]` is the genesis).
    best: Vec<BlockHash>,
    /// How many best-chain blocks hold each receipt.
    best_receipts: HashMap<ReceiptId, u32>,
}

impl Chain {
    /// A chain holding only the network's genesis block.
    pub fn new(params: NetworkParams) -> Chain {
        let genesis = params.genesis.clone();
        let hash = genesis.hash();
        let work = Target::from_compact(genesis.header.bits)
            .unwrap_or(params.pow_limit)
            .work();
        let mut chain = Chain {
            params,
            entries: HashMap::new(),
            best: vec![hash],
            best_receipts: HashMap::new(),
        };
        chain.index_receipts(&genesis, true);
        chain.entries.insert(
            hash,
            Entry {
                block: genesis,
                height: 0,
                chain_work: work,
            },
        );
        chain
    }

    /// The network this chain follows.
    pub fn params(&self) -> &NetworkParams {
        &self.params
    }

    /// Validates `block` and adds it to the tree; `now_unix_secs` bounds its timestamp.
    /// Invalid blocks change nothing and return the rule they break.
    pub fn accept_block(
        &mut self,
        block: Block,
        now_unix_secs: u64,
    ) -> Result<Accepted, ChainError> {
        let hash = block.hash();
        if self.entries.contains_key(&hash) {
            return Ok(Accepted::Duplicate);
        }
        validate::check_context_free(&block, &hash)?;
        let prev = block.header.prev;
        if prev == BlockHash::ZERO {
            return Err(ChainError::ForeignGenesis { hash });
        }
        let Some(parent) = self.entries.get(&prev) else {
            return Ok(Accepted::Orphan {
                missing_parent: prev,
            });
        };
        let (parent_height, parent_work) = (parent.height, parent.chain_work);
        let context = self.parent_context(&prev);
        validate::check_against_parent(&block, &hash, &context, now_unix_secs)?;

        let target = Target::from_compact(block.header.bits)
            .map_err(|source| ChainError::InvalidBits { hash, source })?;
        let chain_work = parent_work + target.work();
        let extends_tip = prev == self.tip();
        let more_work = chain_work > self.total_work();
        self.entries.insert(
            hash,
            Entry {
                block,
                height: parent_height + 1,
                chain_work,
            },
        );
        if !more_work {
            return Ok(Accepted::SideBranch);
        }
        if extends_tip {
            self.connect(hash);
            return Ok(Accepted::NewTip { reorg: None });
        }
        Ok(Accepted::NewTip {
            reorg: Some(self.reorg_to(hash)),
        })
    }

    /// Hash of the best chain's tip.
    pub fn tip(&self) -> BlockHash {
        self.best.last().copied().unwrap_or(BlockHash::ZERO)
    }

    /// Height of the tip (the genesis is height 0).
    pub fn height(&self) -> u64 {
        self.best.len().saturating_sub(1) as u64
    }

    /// Header of the tip.
    pub fn tip_header(&self) -> BlockHeader {
        self.entry(&self.tip())
            .map(|e| e.block.header)
            .unwrap_or(self.params.genesis.header)
    }

    /// Cumulative work of the best chain.
    pub fn total_work(&self) -> Work {
        self.entry(&self.tip())
            .map(|e| e.chain_work)
            .unwrap_or_default()
    }

    /// Cumulative work up to and including `hash`.
    pub fn chain_work(&self, hash: &BlockHash) -> Option<Work> {
        self.entry(hash).map(|e| e.chain_work)
    }

    /// True when the block is in the tree (best chain or a side branch).
    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.entries.contains_key(hash)
    }

    /// A known block.
    pub fn block(&self, hash: &BlockHash) -> Option<&Block> {
        self.entry(hash).map(|e| &e.block)
    }

    /// Height of a known block (on any branch).
    pub fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        self.entry(hash).map(|e| e.height)
    }

    /// Number of blocks in the tree, side branches included.
    pub fn block_count(&self) -> usize {
        self.entries.len()
    }

    /// Hash of the best-chain block at `height`.
    pub fn hash_at_height(&self, height: u64) -> Option<BlockHash> {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.best.get(h))
            .copied()
    }

    /// Header of the best-chain block at `height`.
    pub fn header_at_height(&self, height: u64) -> Option<BlockHeader> {
        self.hash_at_height(height)
            .and_then(|h| self.block(&h))
            .map(|b| b.header)
    }

    /// True when `hash` is on the best chain.
    pub fn is_best(&self, hash: &BlockHash) -> bool {
        self.entry(hash)
            .is_some_and(|e| self.hash_at_height(e.height) == Some(*hash))
    }

    /// True when some best-chain block holds the receipt.
    pub fn has_receipt(&self, id: &ReceiptId) -> bool {
        self.best_receipts.contains_key(id)
    }

    /// Bitcoin-style block locator of the best chain: the last 10 blocks, then exponentially
    /// sparser, always ending with the genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        let mut out = Vec::new();
        let mut height = self.height();
        let mut step = 1u64;
        while height > 0 {
            out.extend(self.hash_at_height(height));
            if out.len() >= 10 {
                step *= 2;
            }
            height = height.saturating_sub(step);
        }
        out.extend(self.hash_at_height(0));
        out
    }

    /// Up to `max` best-chain headers after the first locator entry on the best chain (after
    /// the genesis when none is), oldest first: what a syncing peer asks for.
    pub fn headers_after(&self, locator: &[BlockHash], max: usize) -> Vec<BlockHeader> {
        let start = locator
            .iter()
            .find(|h| self.is_best(h))
            .and_then(|h| self.height_of(h))
            .unwrap_or(0)
            + 1;
        (start..=self.height())
            .take(max)
            .filter_map(|h| self.header_at_height(h))
            .collect()
    }

    /// Checks a peer's headers before any body is fetched (headers-first sync): each links to
    /// the one before, the first to a block in the tree, and each passes the header rules
    /// (version, proof of work, retarget bits, median time past, at most 2 h after
    /// `now_unix_secs`) in the context its predecessors make. Changes nothing.
    pub fn check_headers(
        &self,
        headers: &[BlockHeader],
        now_unix_secs: u64,
    ) -> Result<(), ChainError> {
        let Some(first) = headers.first() else {
            return Ok(());
        };
        let mut prev = first.prev;
        let Some(mut height) = self.height_of(&prev) else {
            return Err(ChainError::UnconnectedHeader {
                hash: first.hash(),
                parent: prev,
            });
        };
        let needed = self.context_span();
        // The parent and its ancestors, oldest first; each checked header joins the window.
        let mut window: VecDeque<Sample> = self
            .ancestors(&prev, needed)
            .iter()
            .rev()
            .map(|e| sample(&e.block.header))
            .collect();
        for header in headers {
            let hash = header.hash();
            if header.prev != prev {
                return Err(ChainError::UnconnectedHeader {
                    hash,
                    parent: header.prev,
                });
            }
            validate::check_header(header, &hash)?;
            let context = context_from(&self.params, height, window.make_contiguous());
            validate::check_header_against_parent(header, &hash, &context, now_unix_secs)?;
            window.push_back(sample(header));
            if window.len() > needed {
                window.pop_front();
            }
            height += 1;
            prev = hash;
        }
        Ok(())
    }

    /// The bits a child of `parent` must carry; `None` for an unknown parent.
    pub fn next_bits(&self, parent: &BlockHash) -> Option<CompactBits> {
        self.contains(parent)
            .then(|| self.parent_context(parent).next_bits)
    }

    /// Median time of `parent` and up to 10 of its ancestors: a child's time must exceed it.
    pub fn median_time_past(&self, parent: &BlockHash) -> Option<u32> {
        self.contains(parent)
            .then(|| self.parent_context(parent).median_time_past)
    }

    fn entry(&self, hash: &BlockHash) -> Option<&Entry> {
        self.entries.get(hash)
    }

    /// `parent` and up to `count - 1` of its ancestors, newest first.
    fn ancestors(&self, parent: &BlockHash, count: usize) -> Vec<&Entry> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = self.entry(parent);
        while let Some(entry) = cursor {
            if out.len() == count {
                break;
            }
            out.push(entry);
            cursor = if entry.height == 0 {
                None
            } else {
                self.entry(&entry.block.header.prev)
            };
        }
        out
    }

    /// How many ancestors (parent included) the rules read: median time past and retarget.
    fn context_span(&self) -> usize {
        MEDIAN_TIME_SPAN.max(difficulty::samples_needed(&self.params.retarget))
    }

    /// What the validity rules need to know about a known `parent`.
    pub(crate) fn parent_context(&self, parent: &BlockHash) -> ParentContext {
        let ancestors = self.ancestors(parent, self.context_span());
        let height = ancestors.first().map_or(0, |e| e.height);
        let samples: Vec<Sample> = ancestors
            .iter()
            .rev()
            .map(|e| sample(&e.block.header))
            .collect();
        context_from(&self.params, height, &samples)
    }

    /// Appends a child of the tip to the best chain.
    fn connect(&mut self, hash: BlockHash) {
        if let Some(block) = self.entries.get(&hash).map(|e| e.block.clone()) {
            self.index_receipts(&block, true);
        }
        self.best.push(hash);
    }

    /// Makes `new_tip`'s branch the best chain.
    fn reorg_to(&mut self, new_tip: BlockHash) -> Reorg {
        let mut connected = Vec::new();
        let mut cursor = new_tip;
        while !self.is_best(&cursor) {
            connected.push(cursor);
            match self.entry(&cursor) {
                Some(e) if e.height > 0 => cursor = e.block.header.prev,
                _ => break,
            }
        }
        connected.reverse();
        let fork_height = self.height_of(&cursor).unwrap_or(0);
        let keep = usize::try_from(fork_height + 1).unwrap_or(usize::MAX);
        let mut disconnected: Vec<BlockHash> = self.best.split_off(keep.min(self.best.len()));
        disconnected.reverse();

        let blocks = |chain: &Chain, hashes: &[BlockHash]| -> Vec<Block> {
            hashes
                .iter()
                .filter_map(|h| chain.block(h).cloned())
                .collect()
        };
        for block in blocks(self, &disconnected) {
            self.index_receipts(&block, false);
        }
        for block in blocks(self, &connected) {
            self.index_receipts(&block, true);
        }
        self.best.extend(connected.iter().copied());

        let mut returned = Vec::new();
        let mut seen = HashSet::new();
        for block in blocks(self, &disconnected).iter().rev() {
            for receipt in &block.body.receipts {
                let id = receipt.id();
                if !self.has_receipt(&id) && seen.insert(id) {
                    returned.push(receipt.clone());
                }
            }
        }
        Reorg {
            disconnected,
            connected,
            returned_receipts: returned,
        }
    }

    fn index_receipts(&mut self, block: &Block, add: bool) {
        for receipt in &block.body.receipts {
            let id = receipt.id();
            if add {
                *self.best_receipts.entry(id).or_insert(0) += 1;
            } else if let Some(count) = self.best_receipts.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    self.best_receipts.remove(&id);
                }
            }
        }
    }
}

fn sample(header: &BlockHeader) -> Sample {
    Sample {
        time: header.time,
        bits: header.bits,
    }
}

/// The context a child of the last of `history` (ancestors oldest first, the parent last, at
/// `parent_height`) is checked in.
fn context_from(params: &NetworkParams, parent_height: u64, history: &[Sample]) -> ParentContext {
    let times: Vec<u32> = history
        .iter()
        .rev()
        .take(MEDIAN_TIME_SPAN)
        .map(|s| s.time)
        .collect();
    ParentContext {
        height: parent_height,
        next_bits: difficulty::next_bits(params, history),
        median_time_past: validate::median_time(&times),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_chain_holds_only_its_genesis() {
        let params = NetworkParams::regtest();
        let chain = Chain::new(params.clone());
        let genesis = params.genesis_hash();
        assert_eq!(chain.tip(), genesis);
        assert_eq!(chain.height(), 0);
        assert_eq!(chain.block_count(), 1);
        assert_eq!(chain.locator(), vec![genesis]);
        assert!(chain.headers_after(&[genesis], 10).is_empty());
        assert_eq!(chain.header_at_height(0), Some(params.genesis.header));
        assert_eq!(chain.header_at_height(1), None);
        let work = Target::from_compact(params.genesis.header.bits)
            .expect("bits")
            .work();
        assert_eq!(chain.total_work(), work);
        assert_eq!(
            chain.next_bits(&genesis),
            Some(params.pow_limit.to_compact())
        );
        assert_eq!(chain.next_bits(&BlockHash([1; 32])), None);
        assert_eq!(
            chain.median_time_past(&genesis),
            Some(params.genesis.header.time)
        );
        let message = &params.genesis.body.receipts[0];
        assert!(chain.has_receipt(&message.id()));
    }
}
