//! The host side of every CPU path: SHA-256 constants, the scalar round, and `JobConstants`,
//! everything about a job that does not depend on the nonce (the midstate of the first 64
//! header bytes, the first rounds and schedule words of the second block, the target's top
//! word), computed once per search. Also the scalar full check of a candidate nonce.
//!
//! Must not contain SIMD code: the paths build on this.

use sha2::digest::generic_array::GenericArray;

use crate::hash::{Found, HEADER_LEN, Job};

pub(crate) use crate::hash::sha256::{IV, K};

/// Word 4 of both padded blocks: the `1` bit that ends the message.
pub(crate) const PAD_BIT: u32 = 0x8000_0000;
/// Word 15 of the header's second block: the header's length in bits.
pub(crate) const HEADER_BITS: u32 = (HEADER_LEN * 8) as u32;
/// Word 15 of the second hash's only block: a 32-byte digest's length in bits.
pub(crate) const DIGEST_BITS: u32 = 256;

pub(crate) fn big_sigma0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}
pub(crate) fn big_sigma1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}
pub(crate) fn small_sigma0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}
pub(crate) fn small_sigma1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}

/// One scalar SHA-256 round on `[a, b, c, d, e, f, g, h]` with `k + w` already summed.
pub(crate) fn scalar_round(s: [u32; 8], kw: u32) -> [u32; 8] {
    let [a, b, c, d, e, f, g, h] = s;
    let t1 = h
        .wrapping_add(big_sigma1(e))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(kw);
    let t2 = big_sigma0(a).wrapping_add((a & b) ^ (a & c) ^ (b & c));
    [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g]
}

/// Everything about a job that is the same for every nonce.
///
/// The header's second block is `W0 W1 W2 W3 | 0x80000000 0 … 0 640` where `W3` is the nonce
/// (byte-swapped: the header stores it little-endian, SHA-256 reads big-endian words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobConstants {
    /// State after compressing header bytes 0..64.
    pub midstate: [u32; 8],
    /// Words 0..3 of the second block (end of the merkle root, time, bits).
    pub tail: [u32; 3],
    /// State after rounds 0..=3 of the second block with `W3` taken as 0: the real state is
    /// this plus `W3` in its `a` and `e` words (rounds 0..=2 and most of round 3 are fixed).
    /// The SHA-NI paths start here.
    pub state4_base: [u32; 8],
    /// Schedule word 16 of the second block (nonce independent).
    pub w16: u32,
    /// Schedule word 17 of the second block (nonce independent).
    pub w17: u32,
    /// Word 18 is `w18_base + σ0(W3)`.
    pub w18_base: u32,
    /// Word 19 is `w19_base + W3`.
    pub w19_base: u32,
    /// Bits 224..256 of the target: a hash whose top word (its last word, byte-swapped) is
    /// above this cannot meet the target.
    pub target_top: u32,
}

impl JobConstants {
    pub(crate) fn new(job: &Job) -> JobConstants {
        let mut midstate = IV;
        let mut first = [0u8; 64];
        first.copy_from_slice(&job.header[..64]);
        sha2::compress256(&mut midstate, &[GenericArray::from(first)]);
        let word = |i: usize| {
            let at = 64 + 4 * i;
            u32::from_be_bytes([
                job.header[at],
                job.header[at + 1],
                job.header[at + 2],
                job.header[at + 3],
            ])
        };
        let tail = [word(0), word(1), word(2)];
        let mut state = midstate;
        state = scalar_round(state, K[0].wrapping_add(tail[0]));
        state = scalar_round(state, K[1].wrapping_add(tail[1]));
        state = scalar_round(state, K[2].wrapping_add(tail[2]));
        let state4_base = scalar_round(state, K[3]);
        let w16 = small_sigma0(tail[1]).wrapping_add(tail[0]);
        let w17 = small_sigma1(HEADER_BITS)
            .wrapping_add(small_sigma0(tail[2]))
            .wrapping_add(tail[1]);
        let w18_base = small_sigma1(w16).wrapping_add(tail[2]);
        let w19_base = small_sigma1(w17).wrapping_add(small_sigma0(PAD_BIT));
        let target_top = job.target.0.as_limbs()[3].wrapping_shr(32) as u32;
        JobConstants {
            midstate,
            tail,
            state4_base,
            w16,
            w17,
            w18_base,
            w19_base,
            target_top,
        }
    }

    /// True when a hash whose last SHA-256 word is `h7` may meet the target.
    pub(crate) fn may_meet(&self, h7: u32) -> bool {
        h7.swap_bytes() <= self.target_top
    }
}

/// sha256d of the job's header with `nonce`, from the midstate, with `sha2::compress256`.
pub(crate) fn sha256d_from_midstate(constants: &JobConstants, nonce: u32) -> [u32; 8] {
    let mut block = [0u8; 64];
    for (i, word) in constants.tail.iter().enumerate() {
        block[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    block[12..16].copy_from_slice(&nonce.to_le_bytes());
    block[16] = 0x80;
    block[60..64].copy_from_slice(&HEADER_BITS.to_be_bytes());
    let mut first = constants.midstate;
    sha2::compress256(&mut first, &[GenericArray::from(block)]);

    let mut block = [0u8; 64];
    for (i, word) in first.iter().enumerate() {
        block[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    block[32] = 0x80;
    block[60..64].copy_from_slice(&DIGEST_BITS.to_be_bytes());
    let mut second = IV;
    sha2::compress256(&mut second, &[GenericArray::from(block)]);
    second
}

/// The full check of a candidate: `Some` when the nonce's hash really meets the target.
pub(crate) fn full_check(job: &Job, constants: &JobConstants, nonce: u32) -> Option<Found> {
    let words = sha256d_from_midstate(constants, nonce);
    let mut hash = [0u8; 32];
    for (i, word) in words.iter().enumerate() {
        hash[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    job.target.is_met_by(&hash).then_some(Found { nonce, hash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::reference::sha256d;
    use crate::target::Target;

    fn job(seed: u8, target: Target) -> Job {
        let mut header = [0u8; HEADER_LEN];
        for (i, byte) in header.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(31).wrapping_add(seed);
        }
        Job { header, target }
    }

    #[test]
    fn midstate_path_matches_the_reference() {
        let job = job(7, Target::MAX);
        let constants = JobConstants::new(&job);
        for nonce in [0u32, 1, 0x1234_5678, u32::MAX] {
            let words = sha256d_from_midstate(&constants, nonce);
            let expected = sha256d(&job.header_with_nonce(nonce));
            let found = full_check(&job, &constants, nonce).expect("MAX target meets all");
            assert_eq!(found.hash, expected);
            assert_eq!(words[7].to_be_bytes(), expected[28..32]);
        }
    }

    #[test]
    fn precomputed_rounds_equal_running_them() {
        let job = job(3, Target::MAX);
        let c = JobConstants::new(&job);
        let w3 = 0xdead_beef_u32;
        let mut s = c.midstate;
        for (i, w) in [c.tail[0], c.tail[1], c.tail[2], w3]
            .into_iter()
            .enumerate()
        {
            s = scalar_round(s, K[i].wrapping_add(w));
        }
        let mut from_base = c.state4_base;
        from_base[0] = from_base[0].wrapping_add(w3);
        from_base[4] = from_base[4].wrapping_add(w3);
        assert_eq!(s, from_base);
    }

    #[test]
    fn target_top_word_is_bits_224_to_256() {
        let target = Target::from_compact(crate::target::CompactBits(0x2000ffff)).expect("bits");
        let c = JobConstants::new(&job(0, target));
        assert_eq!(c.target_top, 0x00ff_ff00);
        assert!(c.may_meet(0x00ff_ff00_u32.swap_bytes()));
        assert!(!c.may_meet(0x00ff_ff01_u32.swap_bytes()));
    }
}
