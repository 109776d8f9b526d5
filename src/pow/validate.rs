//! The block validity rules, as pure functions: context-free checks (sizes, version, proof of
//! work, merkle root, duplicate receipts) and checks against the parent's context (bits the
//! retarget demands, median time past, clock, coinbase height).
//!
//! Knows nothing of the block tree; `chain` gathers the `ParentContext` and applies the
//! verdict.

use std::collections::HashSet;

use super::block::{Block, MAX_BLOCK_BYTES, MAX_RECEIPT_BYTES, MAX_RECEIPTS};
use super::error::ChainError;
use super::header::{BlockHash, BlockHeader};
use crate::target::{CompactBits, Target};

/// How far ahead of the validating node's clock a block's time may be.
pub const MAX_FUTURE_SECS: u64 = 2 * 60 * 60;
/// How many ancestors the median-time-past rule reads.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// What the chain knows about a block's parent that the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentContext {
    /// The parent's height, genesis = 0; the child's coinbase must claim one more.
    pub height: u64,
    /// The bits the retarget rule demands for the child.
    pub next_bits: CompactBits,
    /// Median time of the parent and up to 10 of its ancestors.
    pub median_time_past: u32,
}

/// Checks a header alone: version, bits and proof of work. What headers-first sync runs on
/// a peer's headers before it fetches any body.
pub fn check_header(header: &BlockHeader, hash: &BlockHash) -> Result<(), ChainError> {
    let hash = *hash;
    if header.version < 1 {
        return Err(ChainError::BadVersion {
            hash,
            version: header.version,
        });
    }
    let target = Target::from_compact(header.bits)
        .map_err(|source| ChainError::InvalidBits { hash, source })?;
    if !target.is_met_by(&hash.0) {
        return Err(ChainError::InsufficientProofOfWork {
            hash,
            bits: header.bits,
        });
    }
    Ok(())
}

/// Checks a header against its parent: the bits the retarget demands, time after the median
/// time past and at most `MAX_FUTURE_SECS` after `now_unix_secs`.
pub fn check_header_against_parent(
    header: &BlockHeader,
    hash: &BlockHash,
    parent: &ParentContext,
    now_unix_secs: u64,
) -> Result<(), ChainError> {
    let hash = *hash;
    if header.bits != parent.next_bits {
        return Err(ChainError::WrongBits {
            hash,
            got: header.bits,
            expected: parent.next_bits,
        });
    }
    if header.time <= parent.median_time_past {
        return Err(ChainError::TimeTooOld {
            hash,
            time: header.time,
            median: parent.median_time_past,
        });
    }
    if u64::from(header.time) > now_unix_secs.saturating_add(MAX_FUTURE_SECS) {
        return Err(ChainError::TimeTooNew {
            hash,
            time: header.time,
            now: now_unix_secs,
        });
    }
    Ok(())
}

/// Checks that need nothing but the block: sizes, version, bits, proof of work, merkle root,
/// no repeated receipt. Cheapest first, so junk is refused before hashing its body.
pub fn check_context_free(block: &Block, hash: &BlockHash) -> Result<(), ChainError> {
    let hash = *hash;
    let receipts = &block.body.receipts;
    if receipts.len() > MAX_RECEIPTS {
        return Err(ChainError::TooManyReceipts {
            hash,
            count: receipts.len(),
            max: MAX_RECEIPTS,
        });
    }
    if let Some((index, r)) = receipts
        .iter()
        .enumerate()
        .find(|(_, r)| r.0.len() > MAX_RECEIPT_BYTES)
    {
        return Err(ChainError::ReceiptTooLarge {
            hash,
            index,
            len: r.0.len(),
            max: MAX_RECEIPT_BYTES,
        });
    }
    let len = block.encoded_len();
    if len > MAX_BLOCK_BYTES {
        return Err(ChainError::BlockTooLarge {
            hash,
            len,
            max: MAX_BLOCK_BYTES,
        });
    }
    check_header(&block.header, &hash)?;
    let mut seen = HashSet::with_capacity(receipts.len());
    for receipt in receipts {
        let id = receipt.id();
        if !seen.insert(id) {
            return Err(ChainError::DuplicateReceipt { hash, id });
        }
    }
    if block.merkle_root() != block.header.merkle_root {
        return Err(ChainError::BadMerkleRoot { hash });
    }
    Ok(())
}

/// Checks against the parent: demanded bits, time after the median time past and at most
/// `MAX_FUTURE_SECS` after `now_unix_secs`, coinbase height = parent height + 1.
pub fn check_against_parent(
    block: &Block,
    hash: &BlockHash,
    parent: &ParentContext,
    now_unix_secs: u64,
) -> Result<(), ChainError> {
    check_header_against_parent(&block.header, hash, parent, now_unix_secs)?;
    let hash = *hash;
    let expected = parent.height + 1;
    if block.body.coinbase.height != expected {
        return Err(ChainError::BadCoinbaseHeight {
            hash,
            got: block.body.coinbase.height,
            expected,
        });
    }
    Ok(())
}

/// The median of up to `MEDIAN_TIME_SPAN` timestamps (any order); 0 for none.
pub fn median_time(times: &[u32]) -> u32 {
    let mut sorted: Vec<u32> = times.iter().copied().take(MEDIAN_TIME_SPAN).collect();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_up_to_eleven_times_in_any_order() {
        assert_eq!(median_time(&[]), 0);
        assert_eq!(median_time(&[5]), 5);
        assert_eq!(median_time(&[9, 1, 5]), 5);
        assert_eq!(median_time(&[4, 1, 3, 2]), 3);
        // Only the first 11 (the parent and its 10 ancestors) count.
        let times: Vec<u32> = (1..=11).chain([1000, 1000, 1000]).collect();
        assert_eq!(median_time(&times), 6);
    }
}
