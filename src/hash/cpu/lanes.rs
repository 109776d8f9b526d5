//! The multi-buffer sha256d kernel, written once over `Lanes` (a vector of 32-bit lanes, one
//! nonce per lane) and instantiated by the AVX2 (8 lanes) and AVX-512 (16 lanes) paths, and by
//! a scalar `u32` in tests. Straight-line code: every array index below is a literal, so the
//! compiler keeps the message schedule and the state in registers.
//!
//! The miner tricks live here: the second block starts from `JobConstants::state4_base`
//! (rounds 0..=3 done on the host), schedule words 16..=19 come precomputed, words of the
//! fixed padding are compile-time constants the compiler folds away, and the second hash stops
//! after round 60, which is enough to know its last word (`h7 = e61 + IV7`).
//!
//! Must not decide which path runs (that is `cpu/mod.rs`) nor do the full target check.

use super::midstate::{DIGEST_BITS, HEADER_BITS, IV, JobConstants, K, PAD_BIT};

/// A vector of 32-bit lanes. Implementations are `#[inline(always)]` wrappers around one or two
/// instructions each; the kernel is only fast when it is inlined into a function compiled with
/// the implementation's target features.
pub(crate) trait Lanes: Copy {
    /// Lanes per vector (nonces per kernel call).
    const WIDTH: u32;
    fn splat(x: u32) -> Self;
    /// `base, base + 1, …, base + WIDTH - 1` (wrapping).
    fn nonces(base: u32) -> Self;
    fn add(self, other: Self) -> Self;
    fn xor(self, other: Self) -> Self;
    fn and(self, other: Self) -> Self;
    /// Each lane's bytes reversed.
    fn bswap(self) -> Self;
    /// `Ch(e, f, g) = (e & f) ^ (!e & g)`.
    fn ch(e: Self, f: Self, g: Self) -> Self {
        g.xor(e.and(f.xor(g)))
    }
    /// `(Maj(a, b, c), a ^ b)`, given `b ^ c` (the previous round's `a ^ b`): with that carry
    /// `Maj = b ^ ((a ^ b) & (b ^ c))` costs three operations instead of four.
    fn maj(a: Self, b: Self, _c: Self, b_xor_c: Self) -> (Self, Self) {
        let a_xor_b = a.xor(b);
        (b.xor(a_xor_b.and(b_xor_c)), a_xor_b)
    }
    fn big_sigma0(self) -> Self;
    fn big_sigma1(self) -> Self;
    fn small_sigma0(self) -> Self;
    fn small_sigma1(self) -> Self;
    /// Bit `i` set when lane `i` is ≤ `bound` (unsigned).
    fn le_mask(self, bound: u32) -> u32;
}

/// One round; `bc` carries `b ^ c` from the previous round so `Maj` costs two operations.
#[inline(always)]
fn round<L: Lanes>(s: [L; 8], bc: L, kw: L) -> ([L; 8], L) {
    let [a, b, c, d, e, f, g, h] = s;
    let t1 = h.add(e.big_sigma1()).add(L::ch(e, f, g)).add(kw);
    let (maj, ab) = L::maj(a, b, c, bc);
    let t2 = a.big_sigma0().add(maj);
    ([t1.add(t2), a, b, c, d.add(t1), e, f, g], ab)
}

/// `W[i] = σ1(W[i-2]) + W[i-7] + σ0(W[i-15]) + W[i-16]` for each literal `i`.
macro_rules! schedule {
    ($w:ident; $($i:literal)*) => {$(
        $w[$i] = $w[$i - 2]
            .small_sigma1()
            .add($w[$i - 7])
            .add($w[$i - 15].small_sigma0())
            .add($w[$i - 16]);
    )*};
}

/// Rounds `i` for each literal `i`, with `K[i] + W[i]`.
macro_rules! rounds {
    ($s:ident, $bc:ident, $w:ident; $($i:literal)*) => {$(
        ($s, $bc) = round($s, $bc, L::splat(K[$i]).add($w[$i]));
    )*};
}

/// The last word of sha256d (SHA-256 word order, not yet byte-swapped) for the nonces whose
/// byte-swapped values are in `w3`.
#[inline(always)]
#[allow(unused_assignments)] // the last round's `b ^ c` carry is never read
pub(crate) fn sha256d_h7<L: Lanes>(c: &JobConstants, w3: L) -> L {
    // First hash, second block: W0..W2 from the header, W3 the nonce, then fixed padding.
    let zero = L::splat(0);
    let mut w = [zero; 64];
    w[0] = L::splat(c.tail[0]);
    w[1] = L::splat(c.tail[1]);
    w[2] = L::splat(c.tail[2]);
    w[3] = w3;
    w[4] = L::splat(PAD_BIT);
    w[15] = L::splat(HEADER_BITS);
    w[16] = L::splat(c.w16);
    w[17] = L::splat(c.w17);
    w[18] = L::splat(c.w18_base).add(w3.small_sigma0());
    w[19] = L::splat(c.w19_base).add(w3);
    schedule!(w; 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46
        47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    let b = c.state4_base;
    let mut s = [
        L::splat(b[0]).add(w3),
        L::splat(b[1]),
        L::splat(b[2]),
        L::splat(b[3]),
        L::splat(b[4]).add(w3),
        L::splat(b[5]),
        L::splat(b[6]),
        L::splat(b[7]),
    ];
    let mut bc = L::splat(b[1] ^ b[2]);
    rounds!(s, bc, w; 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61
        62 63);

    // Second hash: the 32-byte digest, then fixed padding, from the standard initial state.
    let mut w = [zero; 64];
    for i in 0..8 {
        w[i] = s[i].add(L::splat(c.midstate[i]));
    }
    w[8] = L::splat(PAD_BIT);
    w[15] = L::splat(DIGEST_BITS);
    schedule!(w; 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42
        43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60);
    let mut s = IV.map(L::splat);
    let mut bc = L::splat(IV[1] ^ IV[2]);
    rounds!(s, bc, w; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28
        29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58
        59);
    // Round 60: only its new `e` is needed, which becomes h after three more rounds.
    let [_, _, _, d, e, f, g, h] = s;
    let t1 = h
        .add(e.big_sigma1())
        .add(L::ch(e, f, g))
        .add(L::splat(K[60]).add(w[60]));
    d.add(t1).add(L::splat(IV[7]))
}

/// Hashes nonces `start .. start + count` (wrapping) `L::WIDTH` at a time and appends those
/// whose last hash word passes `JobConstants::may_meet` to `candidates`, in nonce order.
#[inline(always)]
pub(crate) fn scan<L: Lanes>(c: &JobConstants, start: u32, count: u32, candidates: &mut Vec<u32>) {
    let mut done = 0u32;
    while done < count {
        let base = start.wrapping_add(done);
        let h7 = sha256d_h7(c, L::nonces(base).bswap());
        let mut mask = h7.bswap().le_mask(c.target_top);
        let left = count - done;
        if left < L::WIDTH {
            mask &= (1u32 << left) - 1;
        }
        while mask != 0 {
            candidates.push(base.wrapping_add(mask.trailing_zeros()));
            mask &= mask - 1;
        }
        done = done.saturating_add(L::WIDTH);
    }
}

/// One lane: the kernel on plain `u32`s, so its logic is tested on every machine.
impl Lanes for u32 {
    const WIDTH: u32 = 1;
    #[inline(always)]
    fn splat(x: u32) -> u32 {
        x
    }
    #[inline(always)]
    fn nonces(base: u32) -> u32 {
        base
    }
    #[inline(always)]
    fn add(self, other: u32) -> u32 {
        self.wrapping_add(other)
    }
    #[inline(always)]
    fn xor(self, other: u32) -> u32 {
        self ^ other
    }
    #[inline(always)]
    fn and(self, other: u32) -> u32 {
        self & other
    }
    #[inline(always)]
    fn bswap(self) -> u32 {
        self.swap_bytes()
    }
    #[inline(always)]
    fn big_sigma0(self) -> u32 {
        super::midstate::big_sigma0(self)
    }
    #[inline(always)]
    fn big_sigma1(self) -> u32 {
        super::midstate::big_sigma1(self)
    }
    #[inline(always)]
    fn small_sigma0(self) -> u32 {
        super::midstate::small_sigma0(self)
    }
    #[inline(always)]
    fn small_sigma1(self) -> u32 {
        super::midstate::small_sigma1(self)
    }
    #[inline(always)]
    fn le_mask(self, bound: u32) -> u32 {
        u32::from(self <= bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::cpu::midstate::sha256d_from_midstate;
    use crate::hash::{HEADER_LEN, Job};
    use crate::target::Target;

    #[test]
    fn scalar_kernel_h7_matches_the_midstate_path() {
        let mut header = [0u8; HEADER_LEN];
        for (i, byte) in header.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(77).wrapping_add(5);
        }
        let c = JobConstants::new(&Job {
            header,
            target: Target::MAX,
        });
        for nonce in [0u32, 1, 2, 0x8000_0000, u32::MAX, 0x0102_0304] {
            let h7 = sha256d_h7::<u32>(&c, nonce.swap_bytes());
            assert_eq!(h7, sha256d_from_midstate(&c, nonce)[7], "nonce {nonce:#x}");
        }
    }
}
