//! The SHA-NI path: `N` nonces hashed in interleaved streams (`sha-ni-2x`, `sha-ni-4x`) so the
//! long latency of `sha256rnds2` is hidden by independent work.
//!
//! Per nonce: the second block starts from `JobConstants::state4_base` (rounds 0..=3 done on
//! the host; the nonce word only adds to `a` and `e`), rounds 4..16 use compile-time constant
//! `K + W`, schedule terms made of constant words are folded (W16..20 of the first hash come
//! from `JobConstants` with one scalar σ0), and the second hash runs rounds 0..60 on SHA-NI
//! and only `e` of round 60 in scalar code: `h64 = f62 = e61`. That is 60 `sha256rnds2` and
//! 18 `sha256msg1` per nonce (cpuminer-opt's SHA-NI path: 62 and 22); both share the SHA
//! unit, which is what bounds this path.
//!
//! How the compiler is kept from undoing it: every round and schedule step is written out,
//! one call per four rounds (a loop over twelve quads was not unrolled and kept the schedule
//! in memory); streams are filled by plain loops, not `std::array::from_fn`, whose closures
//! were left out of line, which turned the intrinsics in them into calls; and `keep_in_step`
//! ties the streams together once per four rounds, as the scheduler otherwise emitted one
//! stream's whole hash after the other's. Only legacy encodings of `sha256rnds2`,
//! `sha256msg1` and `sha256msg2` exist, so the streams' states and schedule words share the 16
//! `xmm` registers: two streams fit, four spill.
//!
//! Safety: every function here is a `target_feature(sha, sse4.1)` function or is inlined into
//! one; `cpu/mod.rs` calls `scan` only after detecting both features. Must not hold a
//! scalar fallback or the full check: those live in `midstate.rs`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::midstate::{
    DIGEST_BITS, HEADER_BITS, IV, JobConstants, K, PAD_BIT, big_sigma1, small_sigma0, small_sigma1,
};

/// `[w0, w1, w2, w3]` in lanes 0..3.
#[inline(always)]
fn words(w0: u32, w1: u32, w2: u32, w3: u32) -> __m128i {
    // SAFETY: SSE2 is part of x86_64.
    unsafe { _mm_setr_epi32(w0 as i32, w1 as i32, w2 as i32, w3 as i32) }
}

/// `K[4q..4q+4]`.
#[inline(always)]
fn k4(q: usize) -> __m128i {
    words(K[4 * q], K[4 * q + 1], K[4 * q + 2], K[4 * q + 3])
}

#[inline(always)]
fn add(a: __m128i, b: __m128i) -> __m128i {
    // SAFETY: SSE2 is part of x86_64.
    unsafe { _mm_add_epi32(a, b) }
}

/// A state `[a..h]` as the `(ABEF, CDGH)` register pair `sha256rnds2` works on.
#[inline(always)]
fn to_abef_cdgh(s: &[u32; 8]) -> (__m128i, __m128i) {
    (words(s[5], s[4], s[1], s[0]), words(s[7], s[6], s[3], s[2]))
}

/// One value per stream.
type Lanes<const N: usize> = [__m128i; N];

/// `f(s)` for every stream `s`. A plain loop, not `std::array::from_fn`: the compiler kept
/// `from_fn` out of line for four streams, and the intrinsics in a closure that is not inlined
/// into `scan` lose its target features and become calls.
#[inline(always)]
fn each<const N: usize>(mut f: impl FnMut(usize) -> __m128i) -> Lanes<N> {
    // SAFETY: SSE2 is part of x86_64.
    let mut out = [unsafe { _mm_setzero_si128() }; N];
    for (s, lane) in out.iter_mut().enumerate() {
        *lane = f(s);
    }
    out
}

/// `sha256msg1(a, b)`: `a + σ0` of the words after it (`a`'s lanes 1..3, then `b`'s lane 0).
#[inline(always)]
fn msg1(a: __m128i, b: __m128i) -> __m128i {
    // SAFETY: inlined into `scan`, compiled with the SHA extensions.
    unsafe { _mm_sha256msg1_epu32(a, b) }
}

/// `sha256msg2(t, last)`: adds `σ1` of the previous words to `t`, giving four schedule words.
#[inline(always)]
fn msg2(t: __m128i, last: __m128i) -> __m128i {
    // SAFETY: inlined into `scan`, compiled with the SHA extensions.
    unsafe { _mm_sha256msg2_epu32(t, last) }
}

/// Words `i-7 .. i-3` of the schedule from the quads `w[i-8..i-4]` (`older`) and `w[i-4..i]`
/// (`newer`), the `W[t-7]` term of the next quad.
#[inline(always)]
fn minus7(newer: __m128i, older: __m128i) -> __m128i {
    // SAFETY: inlined into `scan`, compiled with SSSE3.
    unsafe { _mm_alignr_epi8::<4>(newer, older) }
}

/// The next four schedule words from the previous sixteen (`w0` oldest).
#[inline(always)]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    msg2(add(msg1(w0, w1), minus7(w3, w2)), w3)
}

/// Makes the compiler treat `a` and `b` as both depending on both, at no cost (an empty
/// `asm!` that takes and returns them in registers). Without it the compiler's scheduler
/// emitted the streams one after another (all of stream 0's first hash, then stream 1's),
/// so the processor found little independent work near each `sha256rnds2`; tied once per
/// four rounds, the streams stay within a quad of each other in the instruction stream.
#[inline(always)]
fn keep_in_step(a: &mut __m128i, b: &mut __m128i) {
    let (mut x, mut y) = (*a, *b);
    // SAFETY: the template is empty; it reads and writes only the two registers.
    unsafe {
        std::arch::asm!(
            "/* {x} {y} */",
            x = inout(xmm_reg) x,
            y = inout(xmm_reg) y,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (*a, *b) = (x, y);
}

/// Every stream's `(ABEF, CDGH)` register pair.
struct Streams<const N: usize> {
    abef: Lanes<N>,
    cdgh: Lanes<N>,
}

impl<const N: usize> Streams<N> {
    /// Every stream starting from the same state.
    #[inline(always)]
    fn starting_at((abef, cdgh): (__m128i, __m128i)) -> Streams<N> {
        Streams {
            abef: [abef; N],
            cdgh: [cdgh; N],
        }
    }

    /// Two rounds on every stream with `K + W` in each `kw`'s low half.
    #[inline(always)]
    // Indexing three arrays in step: an iterator zip of them did not inline for four streams.
    #[allow(clippy::needless_range_loop)]
    fn rounds2(&mut self, kw: &Lanes<N>) {
        for s in 0..N {
            // SAFETY: inlined into `scan`, compiled with the SHA extensions.
            let next = unsafe { _mm_sha256rnds2_epu32(self.cdgh[s], self.abef[s], kw[s]) };
            self.cdgh[s] = self.abef[s];
            self.abef[s] = next;
        }
    }

    /// Four rounds on every stream with its `K + W` vector.
    #[inline(always)]
    fn rounds4(&mut self, kw: &Lanes<N>) {
        self.rounds2(kw);
        // SAFETY: SSE2 is part of x86_64.
        self.rounds2(&each(|s| unsafe { _mm_shuffle_epi32::<0x0E>(kw[s]) }));
        for s in 1..N {
            let (before, after) = self.abef.split_at_mut(s);
            keep_in_step(&mut before[s - 1], &mut after[0]);
        }
    }

    /// Rounds `4q..4q+4` on every stream with its schedule words `w`.
    #[inline(always)]
    fn quad(&mut self, q: usize, w: &Lanes<N>) {
        self.rounds4(&each(|s| add(w[s], k4(q))));
    }

    /// Rounds `4q..4q+4` with the same constant `K + W` on every stream.
    #[inline(always)]
    fn quad_same(&mut self, kw: __m128i) {
        self.rounds4(&[kw; N]);
    }

    /// Rounds 32..60 from schedule words 16..32; returns words 44..60, from which the last
    /// quad's words follow.
    #[inline(always)]
    fn rounds_32_to_60(
        &mut self,
        w16: Lanes<N>,
        w20: Lanes<N>,
        w24: Lanes<N>,
        w28: Lanes<N>,
    ) -> [Lanes<N>; 4] {
        let next = |a: &Lanes<N>, b: &Lanes<N>, c: &Lanes<N>, d: &Lanes<N>| -> Lanes<N> {
            each(|s| schedule(a[s], b[s], c[s], d[s]))
        };
        let w32 = next(&w16, &w20, &w24, &w28);
        self.quad(8, &w32);
        let w36 = next(&w20, &w24, &w28, &w32);
        self.quad(9, &w36);
        let w40 = next(&w24, &w28, &w32, &w36);
        self.quad(10, &w40);
        let w44 = next(&w28, &w32, &w36, &w40);
        self.quad(11, &w44);
        let w48 = next(&w32, &w36, &w40, &w44);
        self.quad(12, &w48);
        let w52 = next(&w36, &w40, &w44, &w48);
        self.quad(13, &w52);
        let w56 = next(&w40, &w44, &w48, &w52);
        self.quad(14, &w56);
        [w44, w48, w52, w56]
    }
}

/// The job's vectors, built once per `scan` call.
struct ScanConstants {
    /// State after rounds 0..=3 of the second block with the nonce word taken as 0.
    state4: (__m128i, __m128i),
    /// The midstate, added to the second block's result.
    mid: (__m128i, __m128i),
    /// `K + W` of rounds 4..16 of the second block, all constant.
    kw4: __m128i,
    kw8: __m128i,
    kw12: __m128i,
    /// `sha256msg1(W[12..16], W[16..20])` of the second block: depends on W16 only.
    s0_28: __m128i,
    /// Schedule words 16 and 17 of the second block (lanes 0 and 1), which have no nonce.
    w16_17: __m128i,
    /// W18 is `w18_base + σ0(W3)`, W19 `w19_base + W3`.
    w18_base: u32,
    w19_base: u32,
}

impl ScanConstants {
    #[inline(always)]
    fn new(c: &JobConstants) -> ScanConstants {
        let w12 = words(0, 0, 0, HEADER_BITS);
        ScanConstants {
            state4: to_abef_cdgh(&c.state4_base),
            mid: to_abef_cdgh(&c.midstate),
            kw4: add(words(PAD_BIT, 0, 0, 0), k4(1)),
            kw8: k4(2),
            kw12: add(w12, k4(3)),
            s0_28: msg1(w12, words(c.w16, 0, 0, 0)),
            w16_17: words(c.w16, c.w17, 0, 0),
            w18_base: c.w18_base,
            w19_base: c.w19_base,
        }
    }
}

/// The first hash's second block for every stream's nonce word `w3` (byte-swapped nonce);
/// returns the digest as the second hash's message words `a b c d | e f g h`.
#[inline(always)]
fn first_hash<const N: usize>(k: &ScanConstants, w3: &[u32; N]) -> [Lanes<N>; 2] {
    // Message words 4..16: `0x80000000 0 … 0 640`.
    let w4 = words(PAD_BIT, 0, 0, 0);
    let w12 = words(0, 0, 0, HEADER_BITS);
    let mut st = Streams::<N>::starting_at(k.state4);
    // Round 3 added `W3` to `a` and `e` only (ABEF lanes 3 and 1).
    // SAFETY: SSE2 is part of x86_64.
    st.abef = each(|s| unsafe {
        let nonce = _mm_cvtsi32_si128(w3[s] as i32);
        add(st.abef[s], _mm_shuffle_epi32::<0x11>(nonce))
    });
    st.quad_same(k.kw4);
    st.quad_same(k.kw8);
    st.quad_same(k.kw12);
    // W16 and W17 do not depend on the nonce; W18 = w18_base + σ0(W3), W19 = w19_base + W3.
    // SAFETY: inlined into `scan`, compiled with SSE4.1.
    let w16: Lanes<N> = each(|s| unsafe {
        let w18 = k.w18_base.wrapping_add(small_sigma0(w3[s]));
        let w19 = k.w19_base.wrapping_add(w3[s]);
        _mm_insert_epi32::<3>(_mm_insert_epi32::<2>(k.w16_17, w18 as i32), w19 as i32)
    });
    st.quad(4, &w16);
    // σ0 of W[5..9] plus W[4..8] is W4 alone.
    let w20: Lanes<N> = each(|s| msg2(add(w4, minus7(w16[s], w12)), w16[s]));
    st.quad(5, &w20);
    // W[8..12] + σ0(W[9..13]) is zero.
    let w24: Lanes<N> = each(|s| msg2(minus7(w20[s], w16[s]), w20[s]));
    st.quad(6, &w24);
    let w28: Lanes<N> = each(|s| msg2(add(k.s0_28, minus7(w24[s], w20[s])), w24[s]));
    st.quad(7, &w28);
    let [w44, w48, w52, w56] = st.rounds_32_to_60(w16, w20, w24, w28);
    st.quad(15, &each(|s| schedule(w44[s], w48[s], w52[s], w56[s])));

    // SAFETY: SSE4.1, inlined into `scan`.
    unsafe {
        let feba: Lanes<N> = each(|s| _mm_shuffle_epi32::<0x1B>(add(st.abef[s], k.mid.0)));
        let dchg: Lanes<N> = each(|s| _mm_shuffle_epi32::<0xB1>(add(st.cdgh[s], k.mid.1)));
        [
            each(|s| _mm_blend_epi16::<0xF0>(feba[s], dchg[s])),
            each(|s| _mm_alignr_epi8::<8>(dchg[s], feba[s])),
        ]
    }
}

/// The second hash of every stream's digest, rounds 0..60 and `e` of round 60; returns each
/// stream's final `h` before the IV is added (`h64 = e61`).
#[inline(always)]
fn second_hash<const N: usize>(digest: &[Lanes<N>; 2]) -> [u32; N] {
    // Message words 8..16: `0x80000000 0 … 0 256`.
    let w8 = words(PAD_BIT, 0, 0, 0);
    let w12 = words(0, 0, 0, DIGEST_BITS);
    let [w0, w4] = digest;
    let mut st = Streams::<N>::starting_at(to_abef_cdgh(&IV));
    st.quad(0, w0);
    st.quad(1, w4);
    st.quad_same(add(w8, k4(2)));
    st.quad_same(add(w12, k4(3)));
    // W[9..13] is zero: no `W[t-7]` term.
    let w16: Lanes<N> = each(|s| msg2(msg1(w0[s], w4[s]), w12));
    st.quad(4, &w16);
    let w20: Lanes<N> = each(|s| schedule(w4[s], w8, w12, w16[s]));
    st.quad(5, &w20);
    // W[8..12] + σ0(W[9..13]) is W8 alone.
    let w24: Lanes<N> = each(|s| msg2(add(w8, minus7(w20[s], w16[s])), w20[s]));
    st.quad(6, &w24);
    let w28: Lanes<N> = each(|s| schedule(w12, w16[s], w20[s], w24[s]));
    st.quad(7, &w28);
    let [w44, _, w52, w56] = st.rounds_32_to_60(w16, w20, w24, w28);
    let mut h = [0u32; N];
    for (s, h) in h.iter_mut().enumerate() {
        *h = round_60_e(st.abef[s], st.cdgh[s], w44[s], w52[s], w56[s]);
    }
    h
}

/// Word `I` of `v`.
#[inline(always)]
fn lane<const I: i32>(v: __m128i) -> u32 {
    // SAFETY: inlined into `scan`, compiled with SSE4.1.
    unsafe { _mm_extract_epi32::<I>(v) as u32 }
}

/// `e` after round 60 (which is `h` after round 63) from the state after round 59, in
/// scalar code: one round and one schedule word cost less here than a `sha256rnds2` and a
/// `sha256msg1`, which share the SHA unit with every other round.
#[inline(always)]
fn round_60_e(abef: __m128i, cdgh: __m128i, w44: __m128i, w52: __m128i, w56: __m128i) -> u32 {
    let (f, e) = (lane::<0>(abef), lane::<1>(abef));
    let (h, g, d) = (lane::<0>(cdgh), lane::<1>(cdgh), lane::<2>(cdgh));
    let w60 = small_sigma1(lane::<2>(w56))
        .wrapping_add(lane::<1>(w52))
        .wrapping_add(small_sigma0(lane::<1>(w44)))
        .wrapping_add(lane::<0>(w44));
    let t1 = h
        .wrapping_add(big_sigma1(e))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(K[60])
        .wrapping_add(w60);
    d.wrapping_add(t1)
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
    let k = ScanConstants::new(c);
    let mut done = 0u32;
    while done < count {
        let base = start.wrapping_add(done);
        let mut w3 = [0u32; N];
        for (s, w) in w3.iter_mut().enumerate() {
            *w = base.wrapping_add(s as u32).swap_bytes();
        }
        let digest = first_hash::<N>(&k, &w3);
        let h7 = second_hash::<N>(&digest);
        let left = (count - done) as usize;
        for (s, &h) in h7.iter().enumerate().take(left) {
            if c.may_meet(h.wrapping_add(IV[7])) {
                candidates.push(base.wrapping_add(s as u32));
            }
        }
        done = done.saturating_add(N as u32);
    }
}
