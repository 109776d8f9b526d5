//! The AVX-512 path: the `lanes` kernel on 16 nonces per 512-bit vector (`avx512-16way`),
//! with native rotates (`vprord`) and three-input logic (`vpternlogd`) for `Ch`, `Maj`, the Σs
//! and the byte swap. Only AVX-512F is required (the byte swap uses rotates, not `vpshufb`,
//! which would need AVX-512BW).
//!
//! Same shape as `avx2.rs`; only the lane operations differ. It runs only where `avx512f` is
//! present (not every development machine has it), so its correctness rests on the shared
//! kernel, the tests that compare every available path with the `sha2` reference, and this
//! file's small size.
//!
//! Safety: `Avx512` values are only created inside `scan`, which is a
//! `target_feature(avx512f)` function that `cpu/mod.rs` calls only after
//! `is_x86_feature_detected!("avx512f")`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::lanes::{self, Lanes};
use super::midstate::JobConstants;

#[derive(Clone, Copy)]
struct Avx512(__m512i);

/// `vpternlogd` truth tables (operands a, b, c map to bits 0xF0, 0xCC, 0xAA).
const XOR3: i32 = 0x96;
/// `(a & b) ^ (!a & c)`: Ch(e, f, g).
const CHOOSE: i32 = 0xCA;
/// `(a & b) | (a & c) | (b & c)`: Maj(a, b, c).
const MAJORITY: i32 = 0xE8;
/// `a ? b : c`, bit by bit.
const SELECT: i32 = 0xCA;

#[inline(always)]
fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    // SAFETY: see the module comment.
    unsafe { _mm512_ternarylogic_epi32::<XOR3>(a, b, c) }
}

impl Lanes for Avx512 {
    const WIDTH: u32 = 16;
    #[inline(always)]
    fn splat(x: u32) -> Avx512 {
        // SAFETY: see the module comment.
        Avx512(unsafe { _mm512_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn nonces(base: u32) -> Avx512 {
        // SAFETY: see the module comment.
        unsafe {
            Avx512(_mm512_add_epi32(
                _mm512_set1_epi32(base as i32),
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            ))
        }
    }
    #[inline(always)]
    fn add(self, other: Avx512) -> Avx512 {
        // SAFETY: see the module comment.
        Avx512(unsafe { _mm512_add_epi32(self.0, other.0) })
    }
    #[inline(always)]
    fn xor(self, other: Avx512) -> Avx512 {
        // SAFETY: see the module comment.
        Avx512(unsafe { _mm512_xor_si512(self.0, other.0) })
    }
    #[inline(always)]
    fn and(self, other: Avx512) -> Avx512 {
        // SAFETY: see the module comment.
        Avx512(unsafe { _mm512_and_si512(self.0, other.0) })
    }
    #[inline(always)]
    fn bswap(self) -> Avx512 {
        // SAFETY: see the module comment.
        unsafe {
            // Bytes 3 2 1 0 → 0 1 2 3: ror 8 puts bytes 0 and 2 in place, ror 24 bytes 1 and 3.
            let ror8 = _mm512_ror_epi32::<8>(self.0);
            let ror24 = _mm512_ror_epi32::<24>(self.0);
            let odd_bytes = _mm512_set1_epi32(0xff00_ff00_u32 as i32);
            // Per bit: ror8 where the mask is set, ror24 where it is clear.
            Avx512(_mm512_ternarylogic_epi32::<SELECT>(odd_bytes, ror8, ror24))
        }
    }
    #[inline(always)]
    fn ch(e: Avx512, f: Avx512, g: Avx512) -> Avx512 {
        // SAFETY: see the module comment.
        Avx512(unsafe { _mm512_ternarylogic_epi32::<CHOOSE>(e.0, f.0, g.0) })
    }
    #[inline(always)]
    fn maj(a: Avx512, b: Avx512, c: Avx512, _b_xor_c: Avx512) -> (Avx512, Avx512) {
        // One instruction; the `a ^ b` carry of the two-operation form is not needed.
        // SAFETY: see the module comment.
        let maj = Avx512(unsafe { _mm512_ternarylogic_epi32::<MAJORITY>(a.0, b.0, c.0) });
        (maj, a)
    }
    #[inline(always)]
    fn big_sigma0(self) -> Avx512 {
        // SAFETY: see the module comment.
        unsafe {
            let x = self.0;
            Avx512(xor3(
                _mm512_ror_epi32::<2>(x),
                _mm512_ror_epi32::<13>(x),
                _mm512_ror_epi32::<22>(x),
            ))
        }
    }
    #[inline(always)]
    fn big_sigma1(self) -> Avx512 {
        // SAFETY: see the module comment.
        unsafe {
            let x = self.0;
            Avx512(xor3(
                _mm512_ror_epi32::<6>(x),
                _mm512_ror_epi32::<11>(x),
                _mm512_ror_epi32::<25>(x),
            ))
        }
    }
    #[inline(always)]
    fn small_sigma0(self) -> Avx512 {
        // SAFETY: see the module comment.
        unsafe {
            let x = self.0;
            Avx512(xor3(
                _mm512_ror_epi32::<7>(x),
                _mm512_ror_epi32::<18>(x),
                _mm512_srli_epi32::<3>(x),
            ))
        }
    }
    #[inline(always)]
    fn small_sigma1(self) -> Avx512 {
        // SAFETY: see the module comment.
        unsafe {
            let x = self.0;
            Avx512(xor3(
                _mm512_ror_epi32::<17>(x),
                _mm512_ror_epi32::<19>(x),
                _mm512_srli_epi32::<10>(x),
            ))
        }
    }
    #[inline(always)]
    fn le_mask(self, bound: u32) -> u32 {
        // SAFETY: see the module comment.
        unsafe {
            u32::from(_mm512_cmple_epu32_mask(
                self.0,
                _mm512_set1_epi32(bound as i32),
            ))
        }
    }
}

/// Appends the candidate nonces of `start .. start + count` to `candidates`.
///
/// # Safety
/// The processor must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scan(c: &JobConstants, start: u32, count: u32, candidates: &mut Vec<u32>) {
    lanes::scan::<Avx512>(c, start, count, candidates);
}

#[cfg(test)]
mod tests {
    //! The instructions cannot run on a machine without AVX-512, but their immediates can be
    //! checked against Intel's definition of `vpternlogd` on plain integers.
    use super::*;

    /// `vpternlogd` on one 32-bit lane: bit `i` of the result is bit `(a<<2)|(b<<1)|c` of
    /// `imm`, taking bit `i` of each operand.
    fn ternlog(imm: i32, a: u32, b: u32, c: u32) -> u32 {
        (0..32).fold(0, |out, i| {
            let index = ((a >> i) & 1) << 2 | ((b >> i) & 1) << 1 | ((c >> i) & 1);
            out | ((imm as u32 >> index) & 1) << i
        })
    }

    #[test]
    fn ternary_logic_immediates_compute_the_sha256_functions() {
        let samples = [
            0u32,
            u32::MAX,
            0x1234_5678,
            0x9abc_def0,
            0xdead_beef,
            0x0f0f_3c3c,
        ];
        for &a in &samples {
            for &b in &samples {
                for &c in &samples {
                    assert_eq!(ternlog(XOR3, a, b, c), a ^ b ^ c);
                    assert_eq!(ternlog(CHOOSE, a, b, c), (a & b) ^ (!a & c));
                    assert_eq!(ternlog(MAJORITY, a, b, c), (a & b) ^ (a & c) ^ (b & c));
                    assert_eq!(ternlog(SELECT, a, b, c), (a & b) | (!a & c));
                }
            }
        }
    }

    #[test]
    fn the_rotate_and_select_byte_swap_reverses_bytes() {
        for x in [0x0102_0304u32, 0xdead_beef, 0, u32::MAX, 0x8000_0001] {
            let swapped = ternlog(SELECT, 0xff00_ff00, x.rotate_right(8), x.rotate_right(24));
            assert_eq!(swapped, x.swap_bytes());
        }
    }
}
