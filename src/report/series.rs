//! Bounding a series for drawing: consecutive points are merged into buckets (their mean),
//! so a chart of a long run keeps its shape with at most a given number of points. Pure.

/// A point: x and N values (`None`: not known there).
pub(super) type Point<const N: usize> = (f64, [Option<f64>; N]);

/// Merges `points` (x, values…) into at most `max` points, each the mean of up to
/// `ceil(len / max)` consecutive points (a missing value, `None`, is left out of its mean).
/// Returns the points and the bucket size.
pub(super) fn bucket_means<const N: usize>(
    points: &[Point<N>],
    max: usize,
) -> (Vec<Point<N>>, usize) {
    let max = max.max(1);
    let size = points.len().div_ceil(max).max(1);
    if size == 1 {
        return (points.to_vec(), 1);
    }
    let merged = points
        .chunks(size)
        .map(|chunk| {
            let x = chunk.iter().map(|p| p.0).sum::<f64>() / chunk.len() as f64;
            let mut values = [None; N];
            for (k, value) in values.iter_mut().enumerate() {
                let present: Vec<f64> = chunk.iter().filter_map(|p| p.1[k]).collect();
                if !present.is_empty() {
                    *value = Some(present.iter().sum::<f64>() / present.len() as f64);
                }
            }
            (x, values)
        })
        .collect();
    (merged, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_are_kept_and_long_ones_averaged() {
        let points: Vec<(f64, [Option<f64>; 1])> = (0..10)
            .map(|i| (i as f64, [Some(i as f64 * 2.0)]))
            .collect();
        assert_eq!(bucket_means(&points, 10), (points.clone(), 1));
        let (merged, size) = bucket_means(&points, 4);
        assert_eq!(size, 3);
        assert_eq!(merged.len(), 4);
        assert_eq!(merged[0], (1.0, [Some(2.0)]));
        assert_eq!(merged[3], (9.0, [Some(18.0)]));
    }

    #[test]
    fn missing_values_stay_out_of_the_mean() {
        let points = [(0.0, [Some(1.0), None]), (1.0, [Some(3.0), None])];
        let (merged, _) = bucket_means(&points, 1);
        assert_eq!(merged, [(0.5, [Some(2.0), None])]);
    }
}
