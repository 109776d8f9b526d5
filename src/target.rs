//! Proof-of-work arithmetic: the 256-bit `Target`, Bitcoin's compact `bits` encoding and `Work`.
//! Below both `hash` (a search compares against a target) and `pow` (which re-exports it).
//!
//! Owns the arithmetic only; which target a block must meet is the chain's business.

use std::fmt;

/// A 256-bit unsigned integer (little-endian limbs), used for targets, hashes and work.
pub type U256 = ruint::aliases::U256;

/// Why a compact `bits` value does not describe a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The mantissa's sign bit (0x0080_0000) is set on a non-zero value; holds the raw bits.
    #[error("compact bits {0:#010x} has the sign bit set (negative target)")]
    Negative(u32),
    /// The exponent shifts the mantissa past 256 bits; holds the raw bits.
    #[error("compact bits {0:#010x} overflows 256 bits")]
    Overflow(u32),
    /// The mantissa is zero, or is shifted out entirely by a small exponent; holds the raw bits.
    #[error("compact bits {0:#010x} encodes a zero target")]
    Zero(u32),
}

/// Bitcoin's compact encoding of a target: one exponent byte and a 23-bit mantissa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompactBits(pub u32);

impl fmt::Display for CompactBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A hash meets the target when, read as a little-endian 256-bit number, it is ≤ the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(pub U256);

/// Expected number of hashes to meet a target: 2^256 / (target + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Work(pub U256);

impl Target {
    /// The largest possible target (every hash meets it).
    pub const MAX: Target = Target(U256::MAX);

    /// Decodes compact `bits` with Bitcoin's rules; negative, overflowing and zero targets are
    /// rejected.
    pub fn from_compact(bits: CompactBits) -> Result<Target, CompactError> {
        let raw = bits.0;
        let exponent = raw >> 24;
        let mantissa = raw & 0x007f_ffff;
        // Same overflow test as Bitcoin Core's arith_uint256::SetCompact.
        let overflow = mantissa != 0
            && (exponent > 34
                || (mantissa > 0xff && exponent > 33)
                || (mantissa > 0xffff && exponent > 32));
        if overflow {
            return Err(CompactError::Overflow(raw));
        }
        let value = if exponent <= 3 {
            U256::from(mantissa >> (8 * (3 - exponent)))
        } else {
            U256::from(mantissa) << (8 * (exponent as usize - 3))
        };
        if value.is_zero() {
            return Err(CompactError::Zero(raw));
        }
        // As in Core, the sign bit only matters for a non-zero value.
        if raw & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(raw));
        }
        Ok(Target(value))
    }

    /// Encodes as compact `bits` (rounding the mantissa down, as Bitcoin does).
    pub fn to_compact(self) -> CompactBits {
        let mut size = self.0.bit_len().div_ceil(8) as u32;
        let mut compact: u32 = if size <= 3 {
            (self.0.as_limbs()[0] << (8 * (3 - size))) as u32
        } else {
            let shifted: U256 = self.0 >> (8 * (size as usize - 3));
            shifted.as_limbs()[0] as u32
        };
        // The 0x00800000 bit is the sign: move to a larger exponent instead.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactBits(compact | (size << 24))
    }

    /// True when `hash` (32 bytes in the order SHA-256 produced them) meets this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        U256::from_le_bytes(*hash) <= self.0
    }

    /// The work a block at this target proves: 2^256 / (target + 1), computed as
    /// `!target / (target + 1) + 1` so it fits in 256 bits.
    pub fn work(&self) -> Work {
        if self.0 == U256::MAX {
            return Work(U256::from(1u8));
        }
        let divisor = self.0 + U256::from(1u8);
        Work((!self.0) / divisor + U256::from(1u8))
    }

    /// The target as 32 big-endian bytes (for display and configs).
    pub fn to_be_bytes(&self) -> [u8; 32] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(self.to_be_bytes()))
    }
}

impl std::ops::Add for Work {
    type Output = Work;
    fn add(self, rhs: Work) -> Work {
        Work(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, rhs: Work) {
        *self = *self + rhs;
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_bits_decode_to_the_known_target() {
        let target = Target::from_compact(CompactBits(0x1d00ffff)).expect("valid bits");
        assert_eq!(
            target.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(target.to_compact(), CompactBits(0x1d00ffff));
        // Bitcoin's genesis block proves 2^32 + 2^16 + 1 hashes of work... approximately: the
        // exact value of 2^256 / (target + 1) is 0x100010001.
        assert_eq!(target.work().0, U256::from(0x1_0001_0001u64));
    }

    #[test]
    fn negative_overflow_and_zero_are_rejected() {
        assert_eq!(
            Target::from_compact(CompactBits(0x04923456)),
            Err(CompactError::Negative(0x04923456))
        );
        assert_eq!(
            Target::from_compact(CompactBits(0xff123456)),
            Err(CompactError::Overflow(0xff123456))
        );
        assert_eq!(
            Target::from_compact(CompactBits(0x01003456)),
            Err(CompactError::Zero(0x01003456))
        );
        assert_eq!(
            Target::from_compact(CompactBits(0)),
            Err(CompactError::Zero(0))
        );
    }

    #[test]
    fn bitcoin_core_compact_vectors_round_trip() {
        // (bits, normalised bits) pairs from Bitcoin Core's arith_uint256 tests.
        for (bits, normal) in [
            (0x01123456u32, 0x01120000u32),
            (0x02123456, 0x02123400),
            (0x03123456, 0x03123456),
            (0x04123456, 0x04123456),
            (0x05009234, 0x05009234),
            (0x20123456, 0x20123456),
        ] {
            let target = Target::from_compact(CompactBits(bits)).expect("valid bits");
            assert_eq!(target.to_compact(), CompactBits(normal), "bits {bits:#x}");
        }
    }

    #[test]
    fn hash_comparison_is_little_endian() {
        let target = Target::from_compact(CompactBits(0x1d00ffff)).expect("valid bits");
        let mut hash = [0u8; 32];
        hash[27] = 0xff; // below the target's top byte position
        assert!(target.is_met_by(&hash));
        hash[28] = 0x01; // bit 224 set: above 0x00000000ffff...
        assert!(!target.is_met_by(&hash));
    }
}
