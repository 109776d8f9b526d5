//! Shared helpers of the `chain_*` integration tests: mining regtest blocks with the reference
//! hasher on any parent.
#![allow(dead_code)]

use hashgrad::hash::NonceRange;
use hashgrad::pow::{Block, BlockHash, Chain, NodeId, Receipt};

/// The clock every test uses (a few years after the genesis time).
pub const NOW: u64 = 1_800_000_000;

/// A distinct miner id per number.
pub fn miner(n: u8) -> NodeId {
    NodeId([n; 32])
}

/// A receipt with recognisable bytes.
pub fn receipt(tag: &str) -> Receipt {
    Receipt(tag.as_bytes().to_vec())
}

/// Mines a valid child of `parent` (regtest: about two hashes).
pub fn mine_on(chain: &Chain, parent: &BlockHash, miner: NodeId, receipts: Vec<Receipt>) -> Block {
    let template = chain
        .template_on(parent, miner, receipts, NOW)
        .expect("parent is known");
    template
        .mine_with_reference(NonceRange::FULL)
        .expect("regtest target is met quickly")
}

/// Mines and accepts `count` blocks on `parent` by `miner`, each with the receipts
/// `receipts(i)`; returns their hashes, oldest first.
pub fn extend(
    chain: &mut Chain,
    parent: BlockHash,
    count: usize,
    miner: NodeId,
    mut receipts: impl FnMut(usize) -> Vec<Receipt>,
) -> Vec<BlockHash> {
    let mut parent = parent;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let block = mine_on(chain, &parent, miner, receipts(i));
        parent = block.hash();
        chain.accept_block(block, NOW).expect("valid block");
        out.push(parent);
    }
    out
}
