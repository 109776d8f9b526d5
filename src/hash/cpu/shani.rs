//! The SHA-NI path: `N` nonces hashed in interleaved streams (`sha-ni-2x`, `sha-ni-4x`) so the
//! long latency of `sha256rnds2` is hidden by independent work.
//!
//! Per nonce: the second block starts from `JobConstants::state2` (rounds 0 and 1 done on the
//! host), rounds 4..16 use compile-time constant `K + W`, and the second hash runs 62 of its 64
//! rounds: after round 61 the state's `f` is the final `h` (`h64 = f62`), so its last word is
//! known without the final `sha256rnds2`.
//!
//! Safety: every function here is a `target_feature(sha, sse4.1)` function or is inlined into
//! one; `cpu/mod.rs` calls `scan` only after detecting both features.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::midstate::{DIGEST_BITS, HEADER_BITS, IV, JobConstants, K, PAD_BIT};

/// `[w0, w1, w2, w3]` in lanes 0..3.
#[inline(always)]
fn words(w0: u32, w1: u32, w2: u32, w3: u32) -> __m128i {
    // SAFETY: SSE2 is part of x86_64.
    unsafe { _mm_setr_epi32(w0 as i32, w1 as i32, w2 as i32, w3 as i32) }
}

/// `K[4i..4i+4]`.
#[inline(always)]
fn k4(i: usize) -> __m128i {
    words(K[4 * i], K[4 * i + 1], K[4 * i + 2], K[4 * i + 3])
}

/// A state `[a..h]` as the `(ABEF, CDGH)` register pair `sha256rnds2` works on.
#[inline(always)]
fn to_abef_cdgh(s: &[u32; 8]) -> (__m128i, __m128i) {
    (words(s[5], s[4], s[1], s[0]), words(s[7], s[6], s[3], s[2]))
}

/// Streams' states and messages, one entry per stream.
type Lanes<const N: usize> = [__m128i; N];

#[inline(always)]
fn each<const N: usize>(f: impl FnMut(usize) -> __m128i) -> Lanes<N> {
    std::array::from_fn(f)
}

/// Four rounds on every stream with message words `kw` (already `K + W`).
#[inline(always)]
fn rounds4<const N: usize>(abef: &mut Lanes<N>, cdgh: &mut Lanes<N>, kw: &Lanes<N>) {
    // SAFETY: inlined into `scan`, compiled with the SHA extensions.
    unsafe {
        for s in 0..N {
            cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], kw[s]);
        }
        for s in 0..N {
            abef[s] = _mm_sha256rnds2_epu32(abef[s], cdgh[s], _mm_shuffle_epi32::<0x0E>(kw[s]));
        }
    }
}

/// Four rounds with the same constant `K + W` on every stream.
#[inline(always)]
fn rounds4_const<const N: usize>(abef: &mut Lanes<N>, cdgh: &mut Lanes<N>, kw: __m128i) {
    rounds4(abef, cdgh, &[kw; N]);
}

/// The next four schedule words from the previous sixteen (`w0` oldest).
#[inline(always)]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    // SAFETY: inlined into `scan`, compiled with the SHA extensions and SSSE3.
    unsafe {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(w0, w1), _mm_alignr_epi8::<4>(w3, w2));
        _mm_sha256msg2_epu32(t, w3)
    }
}

/// Rounds 16..64 (or 16..62 with `skip_last`) with the message schedule, from `w` = words
/// 0..16 as four vectors per stream.
#[inline(always)]
fn rounds_16_to_end<const N: usize>(
    abef: &mut Lanes<N>,
    cdgh: &mut Lanes<N>,
    mut w: [Lanes<N>; 4],
    skip_last: bool,
) {
    // SAFETY: inlined into `scan`, compiled with the SHA extensions.
    unsafe {
        for quad in 4..16 {
            let next: Lanes<N> = each(|s| schedule(w[0][s], w[1][s], w[2][s], w[3][s]));
            w = [w[1], w[2], w[3], next];
            let kw: Lanes<N> = each(|s| _mm_add_epi32(next[s], k4(quad)));
            if quad == 15 && skip_last {
                for s in 0..N {
                    cdgh[s] = _mm_sha256rnds2_epu32(cdgh[s], abef[s], kw[s]);
                }
                // Rounds 62 and 63 are not run: `cdgh` now holds the state after round 61.
                std::mem::swap(abef, cdgh);
            } else {
                rounds4(abef, cdgh, &kw);
            }
        }
    }
}

/// Appends the candidate nonces of `start .. start + count` to `candidates`, `N` at a time.
///
/// # Safety
/// The processor must support SHA-NI and SSE4.1.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) unsafe fn scan<const N: usize>(
    c: &JobConstants,
    start: u32,
    count: u32,
    candidates: &mut Vec<u32>,
) {
    let (abef2, cdgh2) = to_abef_cdgh(&c.state2);
    let (mid_abef, mid_cdgh) = to_abef_cdgh(&c.midstate);
    let (iv_abef, iv_cdgh) = to_abef_cdgh(&IV);
    let w4_7 = words(PAD_BIT, 0, 0, 0);
    let w8_11 = words(0, 0, 0, 0);
    let w12_15 = words(0, 0, 0, HEADER_BITS);
    let digest_pad = words(PAD_BIT, 0, 0, 0);
    let digest_len = words(0, 0, 0, DIGEST_BITS);
    let k2 = K[2].wrapping_add(c.tail[2]);
    let mut done = 0u32;
    while done < count {
        let base = start.wrapping_add(done);
        // First hash, second block, from the state after rounds 0 and 1.
        let w3: [u32; N] = std::array::from_fn(|s| base.wrapping_add(s as u32).swap_bytes());
        let w0_3: Lanes<N> = each(|s| words(c.tail[0], c.tail[1], c.tail[2], w3[s]));
        let mut abef = [abef2; N];
        let mut cdgh = [cdgh2; N];
        // Rounds 2 and 3: one `sha256rnds2` reads K+W of both from the vector's low half.
        let kw2_3: Lanes<N> = each(|s| words(k2, K[3].wrapping_add(w3[s]), 0, 0));
        for s in 0..N {
            let next = _mm_sha256rnds2_epu32(cdgh[s], abef[s], kw2_3[s]);
            cdgh[s] = abef[s];
            abef[s] = next;
        }
        rounds4_const(&mut abef, &mut cdgh, _mm_add_epi32(w4_7, k4(1)));
        rounds4_const(&mut abef, &mut cdgh, _mm_add_epi32(w8_11, k4(2)));
        rounds4_const(&mut abef, &mut cdgh, _mm_add_epi32(w12_15, k4(3)));
        rounds_16_to_end(
            &mut abef,
            &mut cdgh,
            [w0_3, [w4_7; N], [w8_11; N], [w12_15; N]],
            false,
        );

        // The first digest as message words: a b c d | e f g h.
        let digest: [Lanes<N>; 2] = {
            let feba: Lanes<N> =
                each(|s| _mm_shuffle_epi32::<0x1B>(_mm_add_epi32(abef[s], mid_abef)));
            let dchg: Lanes<N> =
                each(|s| _mm_shuffle_epi32::<0xB1>(_mm_add_epi32(cdgh[s], mid_cdgh)));
            [
                each(|s| _mm_blend_epi16::<0xF0>(feba[s], dchg[s])),
                each(|s| _mm_alignr_epi8::<8>(dchg[s], feba[s])),
            ]
        };

        // Second hash: rounds 0..62 from the initial state.
        let mut abef = [iv_abef; N];
        let mut cdgh = [iv_cdgh; N];
        for (quad, w) in digest.iter().enumerate() {
            let kw: Lanes<N> = each(|s| _mm_add_epi32(w[s], k4(quad)));
            rounds4(&mut abef, &mut cdgh, &kw);
        }
        rounds4_const(&mut abef, &mut cdgh, _mm_add_epi32(digest_pad, k4(2)));
        rounds4_const(&mut abef, &mut cdgh, _mm_add_epi32(digest_len, k4(3)));
        rounds_16_to_end(
            &mut abef,
            &mut cdgh,
            [digest[0], digest[1], [digest_pad; N], [digest_len; N]],
            true,
        );
        // `f` of the state after round 61 (lane 0 of ABEF) is the final `h` before the IV add.
        let left = count - done;
        for (s, state) in abef.iter().enumerate().take(left as usize) {
            let h7 = (_mm_cvtsi128_si32(*state) as u32).wrapping_add(IV[7]);
            if c.may_meet(h7) {
                candidates.push(base.wrapping_add(s as u32));
            }
        }
        done = done.saturating_add(N as u32);
    }
}
