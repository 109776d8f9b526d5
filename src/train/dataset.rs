//! Labelled data sets in memory: the embedded digits set, row subsets, a seeded train/test
//! split, and feature standardisation fitted on the training rows. No file I/O: a user's CSV
//! arrives as text (see `csv`).

use std::io::Read;

use super::TrainError;
use super::csv::{self, LabelColumn};
use super::shard::shuffled_indices;

/// The digits set (8×8 images, 1,797 rows, 10 classes), gzip-compressed CSV with the label
/// last; see data/README.md for its attribution.
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");
/// Largest decompressed size accepted for the embedded set.
const DIGITS_MAX_BYTES: u64 = 4 << 20;

/// Rows of `width` features (row-major) with a class label each.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<u32>,
    width: usize,
    classes: usize,
}

impl Dataset {
    /// A data set from row-major features; checks shapes and label range.
    pub fn new(
        features: Vec<f32>,
        labels: Vec<u32>,
        width: usize,
        classes: usize,
    ) -> Result<Dataset, TrainError> {
        if width == 0 || features.len() != labels.len() * width {
            return Err(TrainError::BadDataset(format!(
                "{} feature values do not form {} rows of {width}",
                features.len(),
                labels.len()
            )));
        }
        if let Some(label) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(TrainError::BadDataset(format!(
                "label {label} is not below the {classes} classes"
            )));
        }
        Ok(Dataset {
            features,
            labels,
            width,
            classes,
        })
    }

    /// The embedded handwritten-digits set.
    pub fn digits() -> Result<Dataset, TrainError> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
            .take(DIGITS_MAX_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| TrainError::BadDataset(format!("embedded digits set: {e}")))?;
        csv::parse(&text, LabelColumn::Last, "digits.csv")
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Number of classes (labels are 0..classes).
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }
    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The rows at `indices`, in that order (indices past the end are skipped).
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.width);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if let (Some(row), Some(&label)) = (
                self.features.get(i * self.width..(i + 1) * self.width),
                self.labels.get(i),
            ) {
                features.extend_from_slice(row);
                labels.push(label);
            }
        }
        Dataset {
            features,
            labels,
            width: self.width,
            classes: self.classes,
        }
    }

    /// Shuffles rows with `seed` and splits off `test_fraction` of them as a test set:
    /// returns (train, test). Both keep at least one row when the set has two or more.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset), TrainError> {
        if !(0.0..1.0).contains(&test_fraction) || self.len() < 2 {
            return Err(TrainError::BadDataset(format!(
                "cannot split {} rows with test fraction {test_fraction}",
                self.len()
            )));
        }
        let order = shuffled_indices(self.len(), seed);
        let test = ((self.len() as f64 * test_fraction).round() as usize).clamp(1, self.len() - 1);
        let (test_rows, train_rows) = order.split_at(test);
        Ok((self.subset(train_rows), self.subset(test_rows)))
    }
}

/// Per-feature standardisation (x − mean) / std, fitted on training rows and applied to every
/// set; constant features are only centred.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl Scaler {
    /// Fits mean and standard deviation per feature.
    pub fn fit(data: &Dataset) -> Scaler {
        let width = data.width;
        let rows = data.len().max(1) as f64;
        let mut mean = vec![0.0f64; width];
        let mut square = vec![0.0f64; width];
        for row in data.features.chunks_exact(width) {
            for ((m, s), &v) in mean.iter_mut().zip(&mut square).zip(row) {
                *m += f64::from(v);
                *s += f64::from(v) * f64::from(v);
            }
        }
        let mut inv_std = Vec::with_capacity(width);
        for (m, s) in mean.iter_mut().zip(&square) {
            *m /= rows;
            let variance = (s / rows - *m * *m).max(0.0);
            inv_std.push(if variance > 1e-12 {
                (1.0 / variance.sqrt()) as f32
            } else {
                1.0
            });
        }
        Scaler {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            inv_std,
        }
    }

    /// Standardises `data` in place (its width must match the fitted one).
    pub fn apply(&self, data: &mut Dataset) {
        if data.width != self.mean.len() {
            return;
        }
        for row in data.features.chunks_exact_mut(data.width) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.inv_std) {
                *v = (*v - m) * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_decode_to_1797_rows_of_64_features_and_10_classes() {
        let digits = Dataset::digits().unwrap();
        assert_eq!(
            (digits.len(), digits.width(), digits.classes()),
            (1797, 64, 10)
        );
        assert!(digits.features().iter().all(|v| (0.0..=16.0).contains(v)));
        let mut counts = [0usize; 10];
        for &l in digits.labels() {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let data = Dataset::new(
            (0..20).map(|v| v as f32).collect(),
            (0..20).map(|v| v % 2).collect(),
            1,
            2,
        )
        .unwrap();
        let (train, test) = data.split(0.25, 7).unwrap();
        assert_eq!((train.len(), test.len()), (15, 5));
        let mut all: Vec<f32> = train
            .features()
            .iter()
            .chain(test.features())
            .copied()
            .collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, data.features());
        assert_eq!(data.split(0.25, 7).unwrap(), (train.clone(), test));
        assert_ne!(data.split(0.25, 8).unwrap().0, train);
    }

    #[test]
    fn scaler_standardises_with_training_statistics() {
        let mut train = Dataset::new(vec![1.0, 5.0, 3.0, 5.0], vec![0, 1], 2, 2).unwrap();
        let scaler = Scaler::fit(&train);
        scaler.apply(&mut train);
        assert_eq!(train.features(), &[-1.0, 0.0, 1.0, 0.0]);
        let mut test = Dataset::new(vec![2.0, 6.0], vec![0], 2, 2).unwrap();
        scaler.apply(&mut test);
        assert_eq!(test.features(), &[0.0, 1.0]);
    }
}
