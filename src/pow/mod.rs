//! Proof-of-work rules without I/O: targets and compact bits (and, from step 2 on, headers,
//! blocks, merkle roots, difficulty, fork choice and the block store's schema).
pub mod target;

pub use target::{CompactBits, CompactError, Target, U256, Work};
