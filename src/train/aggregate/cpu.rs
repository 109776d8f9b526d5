//! The CPU twin of the reduction kernels: the same per-coordinate arithmetic, in the same order,
//! as `shaders/reduce_*.wgsl`, split over threads by coordinate ranges. Sums run in a fixed
//! order (mean: input 0, 1, …, K−1; trimmed mean: the kept values in ascending order) and are
//! scaled by a reciprocal computed once in f32, so median and trimmed mean match the GPU
//! exactly and the mean up to the driver's freedom to reorder additions.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{AggregateError, Rule, validate_finite, validate_shape};

/// Below this many input floats (K·N) the reduction runs on the calling thread: spawning
/// threads costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 18;
/// Coordinates per block of the mean's inner loops: the output block stays in L1 while every
/// input streams through it.
const MEAN_BLOCK: usize = 4096;
/// Outputs of at least this many floats (4 MiB, about half this machine's L3) are written
/// with non-temporal stores: they would evict the inputs and come back from memory anyway,
/// and streaming skips the read-for-ownership of every output line.
const STREAM_MIN_FLOATS: usize = 1 << 20;

/// Reduces `inputs` with `rule` after validating them (see `aggregate::validate`). The mean
/// checks finiteness in the same pass instead of reading the inputs twice: any NaN or Inf
/// input makes its output coordinate non-finite, and only then are the inputs scanned to
/// name the culprit.
pub fn reduce(rule: &Rule, inputs: &[&[f32]]) -> Result<Vec<f32>, AggregateError> {
    let n = validate_shape(rule, inputs)?;
    let mut out = vec![0.0f32; n];
    reduce_into(rule, inputs, &mut out)?;
    Ok(out)
}

/// Like `reduce`, into a caller's buffer of N floats (reused across rounds, no allocation).
pub fn reduce_into(rule: &Rule, inputs: &[&[f32]], out: &mut [f32]) -> Result<(), AggregateError> {
    let n = validate_shape(rule, inputs)?;
    if out.len() != n {
        return Err(AggregateError::OutputLength {
            expected: n,
            found: out.len(),
        });
    }
    let stream = n >= STREAM_MIN_FLOATS;
    if *rule == Rule::Mean {
        let all_finite = AtomicBool::new(true);
        run_parallel(inputs, out, |inputs, lo, out| {
            if !mean_range(inputs, lo, out, stream) {
                all_finite.store(false, Ordering::Relaxed);
            }
        });
        if !all_finite.load(Ordering::Relaxed) {
            validate_finite(inputs)?;
            let coordinate = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(AggregateError::Overflow { coordinate });
        }
        return Ok(());
    }
    validate_finite(inputs)?;
    match *rule {
        Rule::Mean => run_parallel(inputs, out, |inputs, lo, out| {
            mean_range(inputs, lo, out, stream);
        }),
        Rule::Median => run_parallel(inputs, out, median_range),
        Rule::TrimmedMean { trim } => run_parallel(inputs, out, |inputs, lo, out| {
            trimmed_range(inputs, lo, out, trim)
        }),
        Rule::Krum { byzantine, select } => krum(inputs, byzantine, select, out, stream),
    }
    Ok(())
}

/// The reciprocal both backends scale a sum of `count` values by.
pub fn reciprocal(count: usize) -> f32 {
    1.0 / count as f32
}

/// The threads a reduction may use: one per available core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Calls `kernel(inputs, first_coordinate, out_range)` on disjoint ranges of `out`, in
/// parallel when the work is large enough.
fn run_parallel<F>(inputs: &[&[f32]], out: &mut [f32], kernel: F)
where
    F: Fn(&[&[f32]], usize, &mut [f32]) + Sync,
{
    let threads = threads();
    if threads <= 1 || inputs.len() * out.len() < PARALLEL_MIN_WORK {
        kernel(inputs, 0, out);
        return;
    }
    let chunk = out.len().div_ceil(threads).next_multiple_of(64);
    std::thread::scope(|scope| {
        let kernel = &kernel;
        let mut rest = &mut out[..];
        let mut lo = 0;
        while !rest.is_empty() {
            let (part, tail) = rest.split_at_mut(chunk.min(rest.len()));
            let start = lo;
            lo += part.len();
            rest = tail;
            if rest.is_empty() {
                kernel(inputs, start, part);
            } else {
                scope.spawn(move || kernel(inputs, start, part));
            }
        }
    });
}

/// Mean of coordinates `lo..lo + out.len()`: out = x₀; out += x₁ … x_{K−1}; out *= 1/K.
/// Returns whether every result is finite. Uses the AVX kernel (`avx::mean_range`: same
/// additions in the same order, so bit-identical results) where the CPU has AVX; outputs of
/// at least `STREAM_MIN_FLOATS` are then written with non-temporal stores.
fn mean_range(inputs: &[&[f32]], lo: usize, out: &mut [f32], stream: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx")
        && !inputs.is_empty()
        && inputs.iter().all(|input| input.len() >= lo + out.len())
    {
        // The vector part starts where `out` is 32-byte aligned (needed by the streaming
        // store); the few coordinates before and after it take the portable path.
        let head = out.as_ptr().align_offset(32).min(out.len());
        let body = (out.len() - head) / avx::LANES * avx::LANES;
        let (head_out, rest) = out.split_at_mut(head);
        let (body_out, tail_out) = rest.split_at_mut(body);
        let mut finite = mean_range_portable(inputs, lo, head_out);
        // SAFETY: AVX was detected above, every input holds `lo + out.len()` floats, and
        // `body_out` starts 32-byte aligned with a length that is a multiple of 8.
        finite &= unsafe { avx::mean_range(inputs, lo + head, body_out, stream) };
        finite &= mean_range_portable(inputs, lo + head + body, tail_out);
        return finite;
    }
    let _ = stream;
    mean_range_portable(inputs, lo, out)
}

/// The portable mean kernel (the reference the AVX kernel must match bit for bit).
fn mean_range_portable(inputs: &[&[f32]], lo: usize, out: &mut [f32]) -> bool {
    let scale = reciprocal(inputs.len());
    let mut all_finite = true;
    for (block_index, block) in out.chunks_mut(MEAN_BLOCK).enumerate() {
        let start = lo + block_index * MEAN_BLOCK;
        let end = start + block.len();
        let mut first = true;
        for input in inputs {
            let Some(source) = input.get(start..end) else {
                continue;
            };
            if first {
                block.copy_from_slice(source);
                first = false;
            } else {
                for (acc, value) in block.iter_mut().zip(source) {
                    *acc += *value;
                }
            }
        }
        all_finite &= block.iter_mut().fold(true, |ok, acc| {
            *acc *= scale;
            ok & acc.is_finite()
        });
    }
    all_finite
}

/// The mean's AVX kernel (x86-64 only, chosen at run time).
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::{
        _MM_HINT_T1, _mm_prefetch, _mm_sfence, _mm256_add_ps, _mm256_castps_si256, _mm256_loadu_ps,
        _mm256_mul_ps, _mm256_or_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_store_ps,
        _mm256_stream_ps, _mm256_sub_ps, _mm256_testz_si256,
    };

    use super::{MEAN_BLOCK, reciprocal};

    /// Floats per AVX register.
    pub(super) const LANES: usize = 8;
    /// Vectors per 64-byte cache line.
    const VECTORS_PER_LINE: usize = 2;
    const VECTORS: usize = MEAN_BLOCK / LANES;

    /// Mean of coordinates `lo..lo + out.len()` into `out`, block by block: the block's sums
    /// stay in an L1-resident accumulator while the inputs stream through it two at a time
    /// (`(acc + xᵢ) + xᵢ₊₁`: the portable order), then the scaled block is written once,
    /// with non-temporal stores when `stream`. Returns whether every result is finite.
    ///
    /// # Safety
    /// The CPU supports AVX; every input holds at least `lo + out.len()` floats; `out` is
    /// 32-byte aligned and its length a multiple of `LANES`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn mean_range(
        inputs: &[&[f32]],
        lo: usize,
        out: &mut [f32],
        stream: bool,
    ) -> bool {
        let scale = _mm256_set1_ps(reciprocal(inputs.len()));
        let mut acc = [_mm256_setzero_ps(); VECTORS];
        // OR of `y − y` over every result: +0 for finite y, NaN bits otherwise.
        let mut bad = _mm256_setzero_ps();
        for (block_index, block) in out.chunks_mut(MEAN_BLOCK).enumerate() {
            let start = lo + block_index * MEAN_BLOCK;
            let vectors = block.len() / LANES;
            let acc = &mut acc[..vectors];
            let sources: Vec<&[f32]> = inputs
                .iter()
                .filter_map(|input| input.get(start..start + block.len()))
                .collect();
            let Some((first, rest)) = sources.split_first() else {
                continue;
            };
            for (v, slot) in acc.iter_mut().enumerate() {
                // SAFETY: v·LANES + LANES ≤ block.len() = first.len().
                *slot = unsafe { _mm256_loadu_ps(first.as_ptr().add(v * LANES)) };
            }
            for (pair, inputs) in rest.chunks(2).enumerate() {
                // While this pair streams in, the next pair's block is fetched into L2: with
                // K = 64 the hardware prefetcher restarts at each switch between the 64 input
                // streams, and this keeps the next two streams ahead of it.
                let ahead = rest.get(2 * pair + 2..).unwrap_or(&[]);
                let ahead: Vec<*const f32> = ahead.iter().take(2).map(|a| a.as_ptr()).collect();
                match inputs {
                    [a, b] => {
                        for (v, slot) in acc.iter_mut().enumerate() {
                            if v % VECTORS_PER_LINE == 0 {
                                for next in &ahead {
                                    // SAFETY: v·LANES < block.len(), the length of every
                                    // source; a prefetch never faults anyway.
                                    unsafe {
                                        _mm_prefetch::<_MM_HINT_T1>(
                                            next.add(v * LANES).cast::<i8>(),
                                        );
                                    }
                                }
                            }
                            // SAFETY: as above, a and b hold block.len() floats.
                            let (x, y) = unsafe {
                                (
                                    _mm256_loadu_ps(a.as_ptr().add(v * LANES)),
                                    _mm256_loadu_ps(b.as_ptr().add(v * LANES)),
                                )
                            };
                            *slot = _mm256_add_ps(_mm256_add_ps(*slot, x), y);
                        }
                    }
                    [a] => {
                        for (v, slot) in acc.iter_mut().enumerate() {
                            // SAFETY: as above.
                            let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(v * LANES)) };
                            *slot = _mm256_add_ps(*slot, x);
                        }
                    }
                    _ => {}
                }
            }
            for (v, slot) in acc.iter().enumerate() {
                let y = _mm256_mul_ps(*slot, scale);
                bad = _mm256_or_ps(bad, _mm256_sub_ps(y, y));
                // SAFETY: v·LANES + LANES ≤ block.len(); block starts 32-byte aligned because
                // `out` does and MEAN_BLOCK·4 is a multiple of 32.
                unsafe {
                    let target = block.as_mut_ptr().add(v * LANES);
                    if stream {
                        _mm256_stream_ps(target, y);
                    } else {
                        _mm256_store_ps(target, y);
                    }
                }
            }
        }
        if stream {
            // Order the weakly-ordered streaming stores before the caller reads `out`.
            _mm_sfence();
        }
        let bits = _mm256_castps_si256(bad);
        _mm256_testz_si256(bits, bits) == 1
    }
}

/// Copies coordinate `j` of every input into `column`.
fn gather(inputs: &[&[f32]], j: usize, column: &mut [f32]) {
    for (slot, input) in column.iter_mut().zip(inputs) {
        *slot = input.get(j).copied().unwrap_or(0.0);
    }
}

/// The median of a column of finite values: the middle one, or for even K `a·½ + b·½` of the
/// two middle ones (the same expression as the kernel).
pub fn median_of(column: &mut [f32]) -> f32 {
    let k = column.len();
    if k == 0 {
        return 0.0;
    }
    let mid = k / 2;
    let (below, upper, _) = column.select_nth_unstable_by(mid, f32::total_cmp);
    let upper = *upper;
    if k % 2 == 1 {
        return upper;
    }
    let lower = below.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    lower * 0.5 + upper * 0.5
}

fn median_range(inputs: &[&[f32]], lo: usize, out: &mut [f32]) {
    let mut column = vec![0.0f32; inputs.len()];
    for (offset, slot) in out.iter_mut().enumerate() {
        gather(inputs, lo + offset, &mut column);
        *slot = median_of(&mut column);
    }
}

/// Trimmed mean of a column: sort ascending, sum the kept values `trim..K−trim` in ascending
/// order, times 1/(K − 2·trim) (the same sequence of operations as the kernel).
pub fn trimmed_mean_of(column: &mut [f32], trim: usize) -> f32 {
    column.sort_unstable_by(f32::total_cmp);
    let kept = column
        .get(trim..column.len().saturating_sub(trim))
        .unwrap_or(&[]);
    let Some((first, rest)) = kept.split_first() else {
        return 0.0;
    };
    let sum = rest.iter().fold(*first, |acc, v| acc + v);
    sum * reciprocal(kept.len())
}

fn trimmed_range(inputs: &[&[f32]], lo: usize, out: &mut [f32], trim: usize) {
    let mut column = vec![0.0f32; inputs.len()];
    for (offset, slot) in out.iter_mut().enumerate() {
        gather(inputs, lo + offset, &mut column);
        *slot = trimmed_mean_of(&mut column, trim);
    }
}

/// Squared Euclidean distance, accumulated in f64 so scores of long vectors stay comparable.
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

/// Indices of the `select` inputs with the lowest Krum scores, ascending by index.
pub fn krum_selection(inputs: &[&[f32]], byzantine: usize, select: usize) -> Vec<usize> {
    let k = inputs.len();
    let mut distances = vec![0.0f64; k * k];
    for i in 0..k {
        for j in (i + 1)..k {
            let d = squared_distance(inputs[i], inputs[j]);
            distances[i * k + j] = d;
            distances[j * k + i] = d;
        }
    }
    let neighbours = k.saturating_sub(byzantine + 2).max(1);
    let mut scores: Vec<(f64, usize)> = (0..k)
        .map(|i| {
            let mut row: Vec<f64> = (0..k)
                .filter(|&j| j != i)
                .map(|j| distances[i * k + j])
                .collect();
            row.sort_unstable_by(f64::total_cmp);
            (row.iter().take(neighbours).sum(), i)
        })
        .collect();
    scores.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut chosen: Vec<usize> = scores.iter().take(select.max(1)).map(|s| s.1).collect();
    chosen.sort_unstable();
    chosen
}

fn krum(inputs: &[&[f32]], byzantine: usize, select: usize, out: &mut [f32], stream: bool) {
    let chosen: Vec<&[f32]> = krum_selection(inputs, byzantine, select)
        .into_iter()
        .filter_map(|i| inputs.get(i).copied())
        .collect();
    mean_range(&chosen, 0, out, stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_on_a_small_column() {
        let a = [1.0f32, 10.0];
        let b = [2.0f32, -4.0];
        let c = [100.0f32, 0.5];
        let inputs: Vec<&[f32]> = vec![&a, &b, &c];
        assert_eq!(
            reduce(&Rule::Mean, &inputs).unwrap(),
            vec![103.0 * (1.0f32 / 3.0), 6.5 * (1.0f32 / 3.0)]
        );
        assert_eq!(reduce(&Rule::Median, &inputs).unwrap(), vec![2.0, 0.5]);
        assert_eq!(
            reduce(&Rule::TrimmedMean { trim: 1 }, &inputs).unwrap(),
            vec![2.0, 0.5]
        );
        let d = [3.0f32, 1.0];
        let four: Vec<&[f32]> = vec![&a, &b, &c, &d];
        assert_eq!(reduce(&Rule::Median, &four).unwrap(), vec![2.5, 0.75]);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let a = [1.0f32, 2.0];
        let short = [1.0f32];
        let nan = [1.0f32, f32::NAN];
        assert!(matches!(
            reduce(&Rule::Mean, &[]),
            Err(AggregateError::NoInputs)
        ));
        assert!(matches!(
            reduce(&Rule::Mean, &[&a, &short]),
            Err(AggregateError::LengthMismatch { index: 1, .. })
        ));
        assert!(matches!(
            reduce(&Rule::Median, &[&a, &nan]),
            Err(AggregateError::NonFinite {
                index: 1,
                coordinate: 1,
                ..
            })
        ));
        let big = [f32::MAX, 1.0];
        assert!(matches!(
            reduce(&Rule::Mean, &[&big, &big]),
            Err(AggregateError::Overflow { coordinate: 0 })
        ));
        let inf = [f32::INFINITY, 0.0];
        assert!(matches!(
            reduce(&Rule::Mean, &[&inf]),
            Err(AggregateError::NonFinite {
                index: 0,
                coordinate: 0,
                ..
            })
        ));
        assert!(matches!(
            reduce(&Rule::TrimmedMean { trim: 1 }, &[&a, &a]),
            Err(AggregateError::TooFewInputs { needed: 3, .. })
        ));
    }

    #[test]
    fn parallel_mean_matches_the_single_threaded_order() {
        let k = 5;
        let n = PARALLEL_MIN_WORK / 2 + 77;
        let inputs: Vec<Vec<f32>> = (0..k)
            .map(|i| {
                (0..n)
                    .map(|j| ((i * 31 + j * 7) % 1000) as f32 * 0.013 - 6.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let parallel = reduce(&Rule::Mean, &refs).unwrap();
        let mut serial = vec![0.0; n];
        mean_range_portable(&refs, 0, &mut serial);
        assert_eq!(parallel, serial);
    }

    fn inputs_for_paths(k: usize, n: usize) -> Vec<Vec<f32>> {
        (0..k)
            .map(|i| {
                (0..n)
                    .map(|j| ((i * 97 + j * 13) % 777) as f32 * 0.37 - 140.0)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn vector_and_streaming_paths_match_the_portable_kernel() {
        // K = 1 (x₀ alone), one group, exactly one full group, and several groups.
        for k in [1, 2, 7, 9, 10, 20] {
            let n = 3 * MEAN_BLOCK + 37;
            let inputs = inputs_for_paths(k, n);
            let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            let mut expected = vec![0.0; n];
            assert!(mean_range_portable(&refs, 0, &mut expected));
            for stream in [false, true] {
                // Odd offsets put the output off 32-byte alignment and inputs off the grid.
                for skip in [0, 1, 5] {
                    let mut out = vec![0.0; n - skip];
                    assert!(mean_range(&refs, skip, &mut out[..], stream));
                    assert_eq!(
                        out[..],
                        expected[skip..],
                        "K {k}, stream {stream}, skip {skip}"
                    );
                }
            }
        }
        let (k, n) = (7, 3 * MEAN_BLOCK + 37);
        let inputs = inputs_for_paths(k, n);
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut poisoned = inputs[3].clone();
        poisoned[2 * MEAN_BLOCK + 9] = f32::INFINITY;
        let mut with_inf = refs.clone();
        with_inf[3] = &poisoned;
        let mut out = vec![0.0; n];
        assert!(!mean_range(&with_inf, 0, &mut out, true));
        assert!(out[2 * MEAN_BLOCK + 9].is_nan() || out[2 * MEAN_BLOCK + 9].is_infinite());
    }

    #[test]
    fn krum_discards_the_outlier() {
        let honest: Vec<Vec<f32>> = (0..5).map(|i| vec![1.0 + i as f32 * 0.01; 4]).collect();
        let bad = vec![-50.0f32; 4];
        let mut refs: Vec<&[f32]> = honest.iter().map(Vec::as_slice).collect();
        refs.push(&bad);
        let chosen = krum_selection(&refs, 1, 3);
        assert!(!chosen.contains(&5), "{chosen:?}");
        let out = reduce(
            &Rule::Krum {
                byzantine: 1,
                select: 1,
            },
            &refs,
        )
        .unwrap();
        assert!(out.iter().all(|v| (1.0..1.05).contains(v)), "{out:?}");
    }
}
