//! Blocks: header + body (a coinbase item and opaque receipt items), and their wire encoding.
//!
//! Owns the byte layout and its bounds. The decoder never panics and checks every length
//! before it allocates; whether a decoded block is valid is `validate`'s business.
//!
//! Layout (all integers little-endian):
//! ```text
//! header        80 bytes (see pow::header)
//! coinbase      miner id (32) | height (u64) | extra-nonce (u64)
//! receipt count u32, ≤ MAX_RECEIPTS
//! receipts      count × (length u32 ≤ MAX_RECEIPT_BYTES | bytes)
//! ```

use std::fmt;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::HEADER_LEN;
use crate::hash::reference::sha256d;

use super::header::{BlockHash, BlockHeader};

/// Largest encoded block accepted anywhere (wire, store, template).
pub const MAX_BLOCK_BYTES: usize = 1 << 20;
/// Largest single receipt item.
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;
/// Most receipt items in one block.
pub const MAX_RECEIPTS: usize = 4096;
/// Bytes of an encoded coinbase item.
pub const COINBASE_BYTES: usize = 32 + 8 + 8;
/// Bytes of a block with no receipts.
pub const EMPTY_BLOCK_BYTES: usize = HEADER_LEN + COINBASE_BYTES + 4;

/// Who mined a block: the miner's network fingerprint (the crate's one `NodeId`).
pub use crate::node_id::NodeId;

/// The first body item: who mined the block, at which height, and the extra-nonce a miner
/// rolls when the 32-bit header nonce runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Coinbase {
    /// The node that mined the block.
    pub miner: NodeId,
    /// Height of the block, genesis = 0; must be the parent's height + 1.
    pub height: u64,
    /// Rolled by the miner to change the merkle root once all 2^32 header nonces are tried.
    pub extra_nonce: u64,
}

impl Coinbase {
    /// The item's bytes as encoded in a block (and hashed into the merkle tree).
    pub fn to_bytes(&self) -> [u8; COINBASE_BYTES] {
        let mut out = [0u8; COINBASE_BYTES];
        out[..32].copy_from_slice(&self.miner.0);
        out[32..40].copy_from_slice(&self.height.to_le_bytes());
        out[40..].copy_from_slice(&self.extra_nonce.to_le_bytes());
        out
    }

    /// The coinbase's merkle leaf: sha256d of its bytes.
    pub fn id(&self) -> [u8; 32] {
        sha256d(&self.to_bytes())
    }
}

/// Names a receipt: sha256d of its bytes (pools dedupe by it; it is the receipt's merkle leaf).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReceiptId(pub [u8; 32]);

impl fmt::Display for ReceiptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ReceiptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiptId({self})")
    }
}

/// An opaque body item of at most `MAX_RECEIPT_BYTES` (a training node puts committed rounds
/// in it, see `cluster::receipt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub Vec<u8>);

impl Receipt {
    /// sha256d of the receipt's bytes.
    pub fn id(&self) -> ReceiptId {
        ReceiptId(sha256d(&self.0))
    }

    /// Bytes this receipt takes in an encoded block (length prefix included).
    pub fn encoded_len(&self) -> usize {
        4 + self.0.len()
    }
}

/// Everything in a block after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockBody {
    /// The first item: miner, height and extra-nonce.
    pub coinbase: Coinbase,
    /// The opaque items after the coinbase, in merkle order; at most `MAX_RECEIPTS`.
    pub receipts: Vec<Receipt>,
}

impl BlockBody {
    /// The body's merkle root (coinbase leaf first, then the receipts in order).
    pub fn merkle_root(&self) -> [u8; 32] {
        let leaves: Vec<[u8; 32]> = std::iter::once(self.coinbase.id())
            .chain(self.receipts.iter().map(|r| r.id().0))
            .collect();
        super::merkle::merkle_root(&leaves)
    }
}

/// A block: header + body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The 80-byte header that is hashed and mined.
    pub header: BlockHeader,
    /// The items the header's merkle root commits to.
    pub body: BlockBody,
}

/// Why bytes are not a well-formed block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockDecodeError {
    /// The bytes are longer than `MAX_BLOCK_BYTES`; refused before decoding.
    #[error("block is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Length of the bytes handed in.
        len: usize,
        /// The limit it broke (`MAX_BLOCK_BYTES`).
        max: usize,
    },
    /// A field is cut short, a count or length breaks its limit, or bytes trail the block.
    #[error("malformed block: {0}")]
    Codec(#[from] DecodeError),
}

impl Block {
    /// sha256d of the header.
    pub fn hash(&self) -> BlockHash {
        self.header.hash()
    }

    /// The encoded size in bytes (without encoding).
    pub fn encoded_len(&self) -> usize {
        EMPTY_BLOCK_BYTES
            + self
                .body
                .receipts
                .iter()
                .map(Receipt::encoded_len)
                .sum::<usize>()
    }

    /// The merkle root the body demands (compare with `header.merkle_root`).
    pub fn merkle_root(&self) -> [u8; 32] {
        self.body.merkle_root()
    }

    /// Wire and store encoding (see the module comment for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(self.encoded_len());
        self.encode_to(&mut out);
        out.into_bytes()
    }

    /// Decodes one block occupying all of `bytes`; never panics, bounds every length.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockDecodeError> {
        if bytes.len() > MAX_BLOCK_BYTES {
            return Err(BlockDecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_BLOCK_BYTES,
            });
        }
        Ok(Block::from_bytes(bytes)?)
    }
}

impl Encode for Block {
    fn encode_to(&self, out: &mut Writer) {
        out.raw(&self.header.to_bytes())
            .raw(&self.body.coinbase.to_bytes())
            .count(self.body.receipts.len());
        for receipt in &self.body.receipts {
            out.bytes(&receipt.0);
        }
    }
}

impl Decode for Block {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Block, DecodeError> {
        let header = BlockHeader::from_bytes(&reader.array::<HEADER_LEN>("block header")?);
        let miner = NodeId(reader.array("coinbase miner id")?);
        let height = reader.u64("coinbase height")?;
        let extra_nonce = reader.u64("coinbase extra-nonce")?;
        let count = reader.count("receipt count", MAX_RECEIPTS, 4)?;
        let mut receipts = Vec::with_capacity(count);
        for _ in 0..count {
            receipts.push(Receipt(
                reader.bytes("receipt", MAX_RECEIPT_BYTES)?.to_vec(),
            ));
        }
        Ok(Block {
            header,
            body: BlockBody {
                coinbase: Coinbase {
                    miner,
                    height,
                    extra_nonce,
                },
                receipts,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pow::CompactBits;

    fn sample() -> Block {
        let body = BlockBody {
            coinbase: Coinbase {
                miner: NodeId([7; 32]),
                height: 42,
                extra_nonce: 9,
            },
            receipts: vec![Receipt(b"round 1".to_vec()), Receipt(Vec::new())],
        };
        Block {
            header: BlockHeader {
                version: 1,
                prev: BlockHash([1; 32]),
                merkle_root: body.merkle_root(),
                time: 1_700_000_000,
                bits: CompactBits(0x207fffff),
                nonce: 5,
            },
            body,
        }
    }

    #[test]
    fn encode_decode_round_trip_and_length() {
        let block = sample();
        let bytes = block.encode();
        assert_eq!(bytes.len(), block.encoded_len());
        assert_eq!(bytes.len(), EMPTY_BLOCK_BYTES + 4 + 7 + 4);
        assert_eq!(Block::decode(&bytes), Ok(block));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    Block::decode(&bytes[..len]),
                    Err(BlockDecodeError::Codec(DecodeError::Truncated { .. }))
                ),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn bounds_are_enforced_before_allocation() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(
            Block::decode(&bytes),
            Err(BlockDecodeError::Codec(DecodeError::Trailing {
                offset: bytes.len() - 1,
                extra: 1
            }))
        );
        let count_at = HEADER_LEN + COINBASE_BYTES;
        let mut huge = sample().encode();
        huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Block::decode(&huge),
            Err(BlockDecodeError::Codec(DecodeError::TooLong {
                what: "receipt count",
                ..
            }))
        ));
        let mut big_item = sample().encode();
        big_item[count_at + 4..count_at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Block::decode(&big_item),
            Err(BlockDecodeError::Codec(DecodeError::TooLong {
                what: "receipt",
                ..
            }))
        ));
        let oversized = vec![0u8; MAX_BLOCK_BYTES + 1];
        assert!(matches!(
            Block::decode(&oversized),
            Err(BlockDecodeError::TooLarge { .. })
        ));
    }
}
