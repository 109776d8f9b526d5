//! `ChainError`: every reason the chain refuses a block, one variant per rule.

use super::block::{BlockDecodeError, ReceiptId};
use super::header::BlockHash;
use super::target::{CompactBits, CompactError};

/// Why a block was refused. A peer that sends a block failing any of these (except
/// `Decode` of a truncated transfer, at the network layer's discretion) sent an invalid block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("block bytes are malformed: {0}")]
    Decode(#[from] BlockDecodeError),
    #[error("block {hash} is {len} bytes, more than the limit of {max}")]
    BlockTooLarge {
        hash: BlockHash,
        len: usize,
        max: usize,
    },
    #[error("block {hash} has {count} receipts, more than the limit of {max}")]
    TooManyReceipts {
        hash: BlockHash,
        count: usize,
        max: usize,
    },
    #[error("block {hash}: receipt {index} is {len} bytes, more than the limit of {max}")]
    ReceiptTooLarge {
        hash: BlockHash,
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("block {hash} has version {version}; only versions >= 1 are valid")]
    BadVersion { hash: BlockHash, version: i32 },
    #[error("block {hash} carries invalid bits: {source}")]
    InvalidBits {
        hash: BlockHash,
        source: CompactError,
    },
    #[error("block {hash} does not meet its own target (bits {bits})")]
    InsufficientProofOfWork { hash: BlockHash, bits: CompactBits },
    #[error("block {hash} has bits {got} but the retarget rule demands {expected}")]
    WrongBits {
        hash: BlockHash,
        got: CompactBits,
        expected: CompactBits,
    },
    #[error("block {hash} has time {time}, not after the median {median} of the previous 11")]
    TimeTooOld {
        hash: BlockHash,
        time: u32,
        median: u32,
    },
    #[error("block {hash} has time {time}, more than 2 h after now ({now}); check the clocks")]
    TimeTooNew {
        hash: BlockHash,
        time: u32,
        now: u64,
    },
    #[error("block {hash} has a merkle root that does not match its body")]
    BadMerkleRoot { hash: BlockHash },
    #[error("block {hash} repeats receipt {id}")]
    DuplicateReceipt { hash: BlockHash, id: ReceiptId },
    #[error("block {hash} claims height {got} in its coinbase; its parent makes it {expected}")]
    BadCoinbaseHeight {
        hash: BlockHash,
        got: u64,
        expected: u64,
    },
    #[error(
        "header {hash} builds on {parent}, which neither this node nor the headers before it hold; the peer's headers do not connect"
    )]
    UnconnectedHeader { hash: BlockHash, parent: BlockHash },
    #[error("block {hash} is a genesis block (no parent) but not this network's genesis")]
    ForeignGenesis { hash: BlockHash },
}
