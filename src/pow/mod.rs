//! Proof-of-work rules without I/O: targets and compact bits (re-exported from `target`),
//! headers, blocks and their merkle
//! roots, network profiles, the retarget rule, validation, the block tree with fork choice,
//! mining templates and the receipt pool. `store` is the one file here that does I/O (redb).
pub mod block;
pub mod chain;
pub mod difficulty;
pub mod error;
pub mod header;
pub mod merkle;
pub mod network;
pub mod pool;
pub mod store;
pub mod template;
pub mod validate;

pub use crate::target::{CompactBits, CompactError, Target, U256, Work};
pub use block::{
    Block, BlockBody, BlockDecodeError, Coinbase, MAX_BLOCK_BYTES, MAX_RECEIPT_BYTES, MAX_RECEIPTS,
    NodeId, Receipt, ReceiptId,
};
pub use chain::{Accepted, Chain, Reorg};
pub use error::ChainError;
pub use header::{BlockHash, BlockHeader};
pub use network::{NetworkError, NetworkParams, RetargetRule};
pub use pool::ReceiptPool;
pub use store::{ChainStore, STORE_FILE, StoreError};
pub use template::BlockTemplate;
