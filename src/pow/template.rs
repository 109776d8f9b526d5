//! `BlockTemplate`: a block being mined on the tip, as a search `Job` plus the ways to get a
//! fresh nonce space (extra-nonce and timestamp rolling) and to turn a found nonce into a block.
//!
//! Builds templates from the chain's state and the caller's clock; never mines or reads a clock.

use crate::hash::{Job, NonceRange, StopFlag, reference};

use super::block::{
    Block, BlockBody, Coinbase, EMPTY_BLOCK_BYTES, MAX_BLOCK_BYTES, NodeId, Receipt,
};
use super::chain::Chain;
use super::header::{BlockHash, BlockHeader};
use super::target::Target;
use super::validate::MAX_FUTURE_SECS;

/// A block under construction on a given parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTemplate {
    header: BlockHeader,
    body: BlockBody,
    target: Target,
    /// The header time must exceed this (median time past of the parent).
    min_time_exclusive: u32,
}

impl Chain {
    /// A template extending the tip, mined by `miner`, holding as many of `receipts` (in order,
    /// duplicates dropped) as fit in a block; its time is `now_unix_secs`, raised above the
    /// parent's median time past when the clock is behind.
    pub fn template(
        &self,
        miner: NodeId,
        receipts: Vec<Receipt>,
        now_unix_secs: u64,
    ) -> BlockTemplate {
        let tip = self.tip();
        self.template_on(&tip, miner, receipts, now_unix_secs)
            .unwrap_or_else(|| unreachable!("the tip {tip} is always in the tree"))
    }

    /// Like `template`, but extending any known block (to build side branches in tests and
    /// simulations); `None` when `parent` is unknown.
    pub fn template_on(
        &self,
        parent: &BlockHash,
        miner: NodeId,
        receipts: Vec<Receipt>,
        now_unix_secs: u64,
    ) -> Option<BlockTemplate> {
        if !self.contains(parent) {
            return None;
        }
        let parent = *parent;
        let context = self.parent_context(&parent);
        let mut budget = MAX_BLOCK_BYTES - EMPTY_BLOCK_BYTES;
        let mut seen = std::collections::HashSet::new();
        let receipts: Vec<Receipt> = receipts
            .into_iter()
            .filter(|r| {
                let fits = r.encoded_len() <= budget
                    && r.0.len() <= super::block::MAX_RECEIPT_BYTES
                    && seen.len() < super::block::MAX_RECEIPTS;
                if fits && seen.insert(r.id()) {
                    budget -= r.encoded_len();
                    true
                } else {
                    false
                }
            })
            .collect();
        let body = BlockBody {
            coinbase: Coinbase {
                miner,
                height: context.height + 1,
                extra_nonce: 0,
            },
            receipts,
        };
        let min_time_exclusive = context.median_time_past;
        let time = clamp_time(now_unix_secs, min_time_exclusive);
        let header = BlockHeader {
            version: 1,
            prev: parent,
            merkle_root: body.merkle_root(),
            time,
            bits: context.next_bits,
            nonce: 0,
        };
        let target = Target::from_compact(context.next_bits).unwrap_or(self.params().pow_limit);
        Some(BlockTemplate {
            header,
            body,
            target,
            min_time_exclusive,
        })
    }
}

/// `now` as a header time: after the median time past, saturated to u32.
fn clamp_time(now_unix_secs: u64, min_time_exclusive: u32) -> u32 {
    let now = u32::try_from(now_unix_secs).unwrap_or(u32::MAX);
    now.max(min_time_exclusive.saturating_add(1))
}

impl BlockTemplate {
    /// The search job: the header bytes (nonce ignored) and the target.
    pub fn job(&self) -> Job {
        Job {
            header: self.header.to_bytes(),
            target: self.target,
        }
    }

    /// The header as it stands (nonce 0 until `with_nonce`).
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The body the header commits to.
    pub fn body(&self) -> &BlockBody {
        &self.body
    }

    /// Height of the block this template makes.
    pub fn height(&self) -> u64 {
        self.body.coinbase.height
    }

    /// A fresh nonce space: bumps the coinbase extra-nonce, which changes the merkle root.
    pub fn roll_extra_nonce(&mut self) {
        self.body.coinbase.extra_nonce = self.body.coinbase.extra_nonce.wrapping_add(1);
        self.header.merkle_root = self.body.merkle_root();
    }

    /// Moves the header time to `now_unix_secs` (kept after the median time past); returns
    /// whether it changed, i.e. whether the nonce space is fresh. Stays within the validity
    /// rules as long as `now_unix_secs` is the validating nodes' clock (± `MAX_FUTURE_SECS`).
    pub fn roll_time(&mut self, now_unix_secs: u64) -> bool {
        let time = clamp_time(now_unix_secs, self.min_time_exclusive);
        let changed = time != self.header.time;
        self.header.time = time;
        changed
    }

    /// The latest time a block from this template can carry and still be accepted by a node
    /// whose clock reads `now_unix_secs`.
    pub fn max_time(now_unix_secs: u64) -> u64 {
        now_unix_secs.saturating_add(MAX_FUTURE_SECS)
    }

    /// Searches `range` with the plain `sha2` reference hasher and returns the block of the
    /// first qualifying nonce. Fine for regtest (about one hash in two qualifies) and tests;
    /// real mining goes through a `hash::Backend`.
    pub fn mine_with_reference(&self, range: NonceRange) -> Option<Block> {
        const CHUNK: u64 = 1024;
        let job = self.job();
        let stop = StopFlag::new();
        let mut done = 0;
        while done < range.count {
            let chunk = NonceRange::new(range.nonce(done), CHUNK.min(range.count - done));
            let outcome = reference::search(&job, chunk, &stop);
            if let Some(found) = outcome.found.first() {
                return Some(self.with_nonce(found.nonce));
            }
            done += chunk.count;
        }
        None
    }

    /// Sets the header time exactly (tests build histories with chosen timestamps; a time
    /// the rules refuse makes a block the chain refuses).
    pub fn set_time(&mut self, time: u32) {
        self.header.time = time;
    }

    /// The block with `nonce` in its header (check `job().target` first: this does not).
    pub fn with_nonce(&self, nonce: u32) -> Block {
        Block {
            header: BlockHeader {
                nonce,
                ..self.header
            },
            body: self.body.clone(),
        }
    }
}
