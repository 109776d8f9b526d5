//! The AVX2 path: the `lanes` kernel on 8 nonces per 256-bit vector (`avx2-8way`).
//!
//! AVX2 has no rotate, so each rotation is two shifts; the three rotations of a Σ are written
//! as six shifts and five XORs (the shifted halves never overlap, so OR and XOR agree).
//!
//! Safety: `Avx2` values are only created inside `scan`, which is a `target_feature(avx2)`
//! function that `cpu/mod.rs` calls only after `is_x86_feature_detected!("avx2")`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::lanes::{self, Lanes};
use super::midstate::JobConstants;

#[derive(Clone, Copy)]
struct Avx2(__m256i);

macro_rules! shifts_xor {
    ($x:expr; $($r:literal)*; $s:literal) => {{
        let x = $x;
        // SAFETY: see the module comment: only reached with AVX2 present.
        unsafe {
            let acc = _mm256_srli_epi32::<$s>(x);
            $(
                let acc = _mm256_xor_si256(acc, _mm256_srli_epi32::<$r>(x));
                let acc = _mm256_xor_si256(acc, _mm256_slli_epi32::<{ 32 - $r }>(x));
            )*
            acc
        }
    }};
    ($x:expr; $first:literal $($r:literal)*) => {{
        let x = $x;
        // SAFETY: see the module comment: only reached with AVX2 present.
        unsafe {
            let acc = _mm256_xor_si256(
                _mm256_srli_epi32::<$first>(x),
                _mm256_slli_epi32::<{ 32 - $first }>(x),
            );
            $(
                let acc = _mm256_xor_si256(acc, _mm256_srli_epi32::<$r>(x));
                let acc = _mm256_xor_si256(acc, _mm256_slli_epi32::<{ 32 - $r }>(x));
            )*
            acc
        }
    }};
}

impl Lanes for Avx2 {
    const WIDTH: u32 = 8;
    #[inline(always)]
    fn splat(x: u32) -> Avx2 {
        // SAFETY: see the module comment.
        Avx2(unsafe { _mm256_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn nonces(base: u32) -> Avx2 {
        // SAFETY: see the module comment.
        unsafe {
            Avx2(_mm256_add_epi32(
                _mm256_set1_epi32(base as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            ))
        }
    }
    #[inline(always)]
    fn add(self, other: Avx2) -> Avx2 {
        // SAFETY: see the module comment.
        Avx2(unsafe { _mm256_add_epi32(self.0, other.0) })
    }
    #[inline(always)]
    fn xor(self, other: Avx2) -> Avx2 {
        // SAFETY: see the module comment.
        Avx2(unsafe { _mm256_xor_si256(self.0, other.0) })
    }
    #[inline(always)]
    fn and(self, other: Avx2) -> Avx2 {
        // SAFETY: see the module comment.
        Avx2(unsafe { _mm256_and_si256(self.0, other.0) })
    }
    #[inline(always)]
    fn bswap(self) -> Avx2 {
        // SAFETY: see the module comment.
        unsafe {
            let order = _mm256_setr_epi8(
                3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11,
                10, 9, 8, 15, 14, 13, 12,
            );
            Avx2(_mm256_shuffle_epi8(self.0, order))
        }
    }
    #[inline(always)]
    fn big_sigma0(self) -> Avx2 {
        Avx2(shifts_xor!(self.0; 2 13 22))
    }
    #[inline(always)]
    fn big_sigma1(self) -> Avx2 {
        Avx2(shifts_xor!(self.0; 6 11 25))
    }
    #[inline(always)]
    fn small_sigma0(self) -> Avx2 {
        Avx2(shifts_xor!(self.0; 7 18; 3))
    }
    #[inline(always)]
    fn small_sigma1(self) -> Avx2 {
        Avx2(shifts_xor!(self.0; 17 19; 10))
    }
    #[inline(always)]
    fn le_mask(self, bound: u32) -> u32 {
        // SAFETY: see the module comment.
        unsafe {
            let bound = _mm256_set1_epi32(bound as i32);
            let le = _mm256_cmpeq_epi32(_mm256_max_epu32(self.0, bound), bound);
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }
}

/// Appends the candidate nonces of `start .. start + count` to `candidates`.
///
/// # Safety
/// The processor must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn scan(c: &JobConstants, start: u32, count: u32, candidates: &mut Vec<u32>) {
    lanes::scan::<Avx2>(c, start, count, candidates);
}
