//! The 80-byte Bitcoin-layout block header and the `BlockHash` that names a block.
//!
//! Owns the byte layout and hashing only; whether a header is valid is `validate`'s business.

use std::fmt;
use std::str::FromStr;

use crate::hash::reference::sha256d;
use crate::hash::{HEADER_LEN, NONCE_OFFSET};

use crate::target::CompactBits;

/// sha256d of a block header, stored in the byte order SHA-256 produced. `Display` and
/// `FromStr` use Bitcoin's byte-reversed hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    /// The all-zero hash: the `prev` of a genesis block.
    pub const ZERO: BlockHash = BlockHash([0; 32]);
}

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hash::display_hash(&self.0))
    }
}

impl fmt::Debug for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockHash({self})")
    }
}

/// Why a string is not a block hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashParseError {
    /// The trimmed text is not 64 bytes long; holds its length.
    #[error("a block hash is 64 hex digits, got {0} bytes")]
    Length(usize),
    /// The text is 64 long but not all hex digits; holds the decoder's message.
    #[error("a block hash is hex: {0}")]
    Hex(String),
}

impl FromStr for BlockHash {
    type Err = HashParseError;

    fn from_str(text: &str) -> Result<BlockHash, HashParseError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(HashParseError::Length(text.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| HashParseError::Hex(e.to_string()))?;
        bytes.reverse();
        Ok(BlockHash(bytes))
    }
}

impl serde::Serialize for BlockHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BlockHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BlockHash, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A Bitcoin-layout block header: every field little-endian, 80 bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHeader {
    /// Block format version; blocks below 1 are refused.
    pub version: i32,
    /// Hash of the parent block (`BlockHash::ZERO` for a genesis block).
    pub prev: BlockHash,
    /// Merkle root over the body's items (see `pow::merkle`).
    pub merkle_root: [u8; 32],
    /// Unix seconds.
    pub time: u32,
    /// The target this header's hash must meet, in compact form.
    pub bits: CompactBits,
    /// The value a miner varies to search for a hash that meets `bits`.
    pub nonce: u32,
}

impl BlockHeader {
    /// The 80 bytes that are hashed and sent on the wire.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev.0);
        out[36..68].copy_from_slice(&self.merkle_root);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.0.to_le_bytes());
        out[NONCE_OFFSET..].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Reads the 80-byte layout back; every byte pattern is a header (validity is checked later).
    pub fn from_bytes(bytes: &[u8; HEADER_LEN]) -> BlockHeader {
        let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&bytes[4..36]);
        let mut merkle_root = [0u8; 32];
        merkle_root.copy_from_slice(&bytes[36..68]);
        BlockHeader {
            version: i32::from_le_bytes(word(0)),
            prev: BlockHash(prev),
            merkle_root,
            time: u32::from_le_bytes(word(68)),
            bits: CompactBits(u32::from_le_bytes(word(72))),
            nonce: u32::from_le_bytes(word(NONCE_OFFSET)),
        }
    }

    /// sha256d of the 80 header bytes.
    pub fn hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitcoin_genesis() -> BlockHeader {
        let bytes = crate::hash::parse_header_hex(
            "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
        )
        .expect("valid header");
        BlockHeader::from_bytes(&bytes)
    }

    #[test]
    fn bitcoin_genesis_fields_and_hash() {
        let header = bitcoin_genesis();
        assert_eq!(header.version, 1);
        assert_eq!(header.prev, BlockHash::ZERO);
        assert_eq!(header.time, 1231006505);
        assert_eq!(header.bits, CompactBits(0x1d00ffff));
        assert_eq!(header.nonce, 2083236893);
        assert_eq!(
            header.hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(BlockHeader::from_bytes(&header.to_bytes()), header);
    }

    #[test]
    fn block_hash_parses_what_it_displays() {
        let hash = bitcoin_genesis().hash();
        assert_eq!(hash.to_string().parse::<BlockHash>(), Ok(hash));
        assert_eq!("00".parse::<BlockHash>(), Err(HashParseError::Length(2)));
        assert!(matches!(
            "zz".repeat(32).parse::<BlockHash>(),
            Err(HashParseError::Hex(_))
        ));
    }
}
