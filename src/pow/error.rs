//! `ChainError`: every reason the chain refuses a block, one variant per rule.

use super::block::{BlockDecodeError, ReceiptId};
use super::header::BlockHash;
use crate::target::{CompactBits, CompactError};

/// Why a block was refused. A peer that sends a block failing any of these (except
/// `Decode` of a truncated transfer, at the network layer's discretion) sent an invalid block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The block's bytes could not be decoded (cut short, over a limit, or trailing bytes).
    #[error("block bytes are malformed: {0}")]
    Decode(#[from] BlockDecodeError),
    /// The encoded block is larger than `MAX_BLOCK_BYTES`.
    #[error("block {hash} is {len} bytes, more than the limit of {max}")]
    BlockTooLarge {
        /// Hash of the refused block.
        hash: BlockHash,
        /// Encoded size of the block, in bytes.
        len: usize,
        /// The limit it broke (`MAX_BLOCK_BYTES`), in bytes.
        max: usize,
    },
    /// The body carries more receipt items than `MAX_RECEIPTS`.
    #[error("block {hash} has {count} receipts, more than the limit of {max}")]
    TooManyReceipts {
        /// Hash of the refused block.
        hash: BlockHash,
        /// Number of receipts in the body.
        count: usize,
        /// The limit it broke (`MAX_RECEIPTS`).
        max: usize,
    },
    /// One receipt item is larger than `MAX_RECEIPT_BYTES`.
    #[error("block {hash}: receipt {index} is {len} bytes, more than the limit of {max}")]
    ReceiptTooLarge {
        /// Hash of the refused block.
        hash: BlockHash,
        /// Position of the first oversized receipt in the body, from 0.
        index: usize,
        /// Size of that receipt, in bytes.
        len: usize,
        /// The limit it broke (`MAX_RECEIPT_BYTES`), in bytes.
        max: usize,
    },
    /// The header's version is below 1.
    #[error("block {hash} has version {version}; only versions >= 1 are valid")]
    BadVersion {
        /// Hash of the refused block.
        hash: BlockHash,
        /// The version the header carries.
        version: i32,
    },
    /// The header's compact `bits` are negative, overflow 256 bits or encode zero.
    #[error("block {hash} carries invalid bits: {source}")]
    InvalidBits {
        /// Hash of the refused block.
        hash: BlockHash,
        /// What is wrong with the bits.
        source: CompactError,
    },
    /// The header's hash is above the target its own `bits` encode.
    #[error("block {hash} does not meet its own target (bits {bits})")]
    InsufficientProofOfWork {
        /// Hash of the refused block (the value compared with the target).
        hash: BlockHash,
        /// The compact target the header claims.
        bits: CompactBits,
    },
    /// The header's `bits` differ from what the retarget rule demands after its parent.
    #[error("block {hash} has bits {got} but the retarget rule demands {expected}")]
    WrongBits {
        /// Hash of the refused block.
        hash: BlockHash,
        /// The bits the header carries.
        got: CompactBits,
        /// The bits the retarget rule computes for a child of this parent.
        expected: CompactBits,
    },
    /// The header's time is not later than the median time of its parent and up to 10
    /// ancestors.
    #[error("block {hash} has time {time}, not after the median {median} of the previous 11")]
    TimeTooOld {
        /// Hash of the refused block.
        hash: BlockHash,
        /// The header's time, Unix seconds.
        time: u32,
        /// The median time past it must exceed, Unix seconds.
        median: u32,
    },
    /// The header's time is more than `MAX_FUTURE_SECS` (2 h) after the validating node's
    /// clock; may succeed later, so it is not proof of a bad peer on its own.
    #[error("block {hash} has time {time}, more than 2 h after now ({now}); check the clocks")]
    TimeTooNew {
        /// Hash of the refused block.
        hash: BlockHash,
        /// The header's time, Unix seconds.
        time: u32,
        /// The validating node's clock when it checked, Unix seconds.
        now: u64,
    },
    /// The header's merkle root is not the root computed over the body's items.
    #[error("block {hash} has a merkle root that does not match its body")]
    BadMerkleRoot {
        /// Hash of the refused block.
        hash: BlockHash,
    },
    /// The same receipt (by `ReceiptId`) appears twice in the body.
    #[error("block {hash} repeats receipt {id}")]
    DuplicateReceipt {
        /// Hash of the refused block.
        hash: BlockHash,
        /// The receipt that appears more than once.
        id: ReceiptId,
    },
    /// The coinbase's height is not the parent's height + 1.
    #[error("block {hash} claims height {got} in its coinbase; its parent makes it {expected}")]
    BadCoinbaseHeight {
        /// Hash of the refused block.
        hash: BlockHash,
        /// The height the coinbase claims.
        got: u64,
        /// The parent's height + 1.
        expected: u64,
    },
    /// In headers-first sync, a header's `prev` is neither the header before it in the batch
    /// nor (for the first) a block this node holds.
    #[error(
        "header {hash} builds on {parent}, which neither this node nor the headers before it hold; the peer's headers do not connect"
    )]
    UnconnectedHeader {
        /// Hash of the header that does not connect.
        hash: BlockHash,
        /// The parent it names.
        parent: BlockHash,
    },
    /// A block with no parent (`prev` = `BlockHash::ZERO`) that is not the genesis the chain
    /// already holds.
    #[error("block {hash} is a genesis block (no parent) but not this network's genesis")]
    ForeignGenesis {
        /// Hash of the refused block.
        hash: BlockHash,
    },
}
