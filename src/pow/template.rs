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
use super::validate::MAX_FUTURE_SECS;
use crate::target::Target;

/// How far a template's time may run ahead of the miner's clock. The median-time-past rule
/// forces each block's time above the median of the last 11; a miner faster than about six
/// blocks per second (regtest unpaced) pushes chain time ahead of the clock, and past
/// `MAX_FUTURE_SECS` every peer refuses the blocks. A miner waits for its clock instead
/// (`BlockTemplate::mineable_from`); the margin left below `MAX_FUTURE_SECS` covers peers
/// whose clocks run behind this node's by up to 110 minutes.
pub const MAX_AHEAD_OF_CLOCK_SECS: u64 = 10 * 60;

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

    /// The earliest clock reading (unix seconds) at which this template may be mined: its
    /// time at most `MAX_AHEAD_OF_CLOCK_SECS` ahead of the clock. Before then a miner waits
    /// rather than make blocks whose time outruns the clock toward what peers refuse.
    pub fn mineable_from(&self) -> u64 {
        u64::from(self.header.time).saturating_sub(MAX_AHEAD_OF_CLOCK_SECS)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::NetworkParams;

    /// The old failure: an unpaced regtest miner makes ~200 blocks per second, the
    /// median-time rule pushes chain time ahead of the clock ~30 s per second (about 0.15 s
    /// per block), and once it is 2 h ahead of a peer's clock that peer refuses the blocks as
    /// too far in the future. Simulated clock: it advances a second per 200 blocks, or a
    /// second at a time while the miner waits. The fresh peer's clock runs 6,550 s behind the
    /// miner's (well within the 7,200 s the rules allow), so the old miner's blocks were
    /// refused after about 4,500 blocks instead of 48,000, and the test stays short.
    #[test]
    fn an_unpaced_miner_waits_for_the_clock_and_a_fresh_peer_accepts_every_block() {
        const BLOCKS_PER_SECOND: u64 = 200;
        const BLOCKS: u64 = 5_500;
        const PEER_BEHIND_SECS: u64 = 6_550;
        let params = NetworkParams::regtest();
        let start = u64::from(params.genesis.header.time) + 1_000_000;
        let mut miner = Chain::new(params.clone());
        let mut peer = Chain::new(params);
        let mut now = start;
        let mut waited = 0u64;
        for height in 1..=BLOCKS {
            let mut template = miner.template(NodeId([7; 32]), Vec::new(), now);
            while now < template.mineable_from() {
                now += 1;
                waited += 1;
                template.roll_time(now);
            }
            assert!(u64::from(template.header().time) <= now + MAX_AHEAD_OF_CLOCK_SECS);
            let block = template
                .mine_with_reference(NonceRange::FULL)
                .expect("regtest: about every other nonce qualifies");
            miner.accept_block(block.clone(), now).expect("own block");
            peer.accept_block(block, now - PEER_BEHIND_SECS)
                .unwrap_or_else(|e| panic!("fresh peer refused block {height}: {e}"));
            if height % BLOCKS_PER_SECOND == 0 {
                now += 1;
            }
        }
        assert_eq!(peer.height(), BLOCKS);
        assert!(
            waited > 0,
            "the run is long enough that the miner had to wait for the clock"
        );
    }

    #[test]
    fn a_template_ahead_of_the_clock_is_not_mineable_until_the_clock_catches_up() {
        let chain = Chain::new(NetworkParams::regtest());
        let now = 1_900_000_000;
        let mut template = chain.template(NodeId([1; 32]), Vec::new(), now);
        assert!(template.mineable_from() <= now);
        template.set_time(u32::try_from(now + MAX_AHEAD_OF_CLOCK_SECS + 5).expect("u32"));
        assert_eq!(template.mineable_from(), now + 5);
    }
}
