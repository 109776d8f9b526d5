//! The layout of an external model's flat parameter vector: its tensors' names and shapes in
//! order (tensor i's values follow tensor i−1's), as the first worker registers it. Bounded
//! (tensor count, name length, rank, total size), with a canonical byte encoding and its
//! SHA-256, and a comparison that names the first difference (a worker whose model differs is
//! refused with it). Pure data: no I/O.

use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader, Writer};

use super::params::MAX_PARAMS;

/// Most tensors a layout holds.
pub const MAX_TENSORS: usize = 4096;
/// Longest tensor name in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Most dimensions a tensor has.
pub const MAX_RANK: usize = 8;

/// One tensor: a name (`conv1.weight`) and a shape (`[16, 1, 3, 3]`; `[]` is a scalar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Unique in the layout; letters, digits and `._-/:`.
    pub name: String,
    /// Dimensions, each ≥ 1.
    pub shape: Vec<u64>,
}

impl TensorSpec {
    /// Values the tensor holds (the product of its shape; 1 for a scalar).
    pub fn len(&self) -> u64 {
        self.shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .unwrap_or(u64::MAX)
    }

    /// True when the tensor holds no value (never, in a valid layout).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tensors of a model's parameter vector, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// In vector order.
    pub tensors: Vec<TensorSpec>,
}

impl Layout {
    /// A layout of `tensors` after checking every bound.
    pub fn new(tensors: Vec<TensorSpec>) -> Result<Layout, String> {
        let layout = Layout { tensors };
        layout.validate()?;
        Ok(layout)
    }

    /// Checks the bounds: 1..=`MAX_TENSORS` tensors with unique, well-formed names, ranks up to
    /// `MAX_RANK`, no zero dimension, and at most `MAX_PARAMS` values in all.
    pub fn validate(&self) -> Result<(), String> {
        if self.tensors.is_empty() || self.tensors.len() > MAX_TENSORS {
            return Err(format!(
                "a layout has 1..={MAX_TENSORS} tensors, this one {}",
                self.tensors.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            let good_char = |c: char| c.is_ascii_alphanumeric() || "._-/:".contains(c);
            if t.name.is_empty() || t.name.len() > MAX_NAME_BYTES || !t.name.chars().all(good_char)
            {
                return Err(format!(
                    "tensor {i}: a name is 1..={MAX_NAME_BYTES} bytes of letters, digits and ._-/:"
                ));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(format!("tensor {i}: the name '{}' is used twice", t.name));
            }
            if t.shape.len() > MAX_RANK || t.shape.contains(&0) {
                return Err(format!(
                    "tensor '{}': a shape has at most {MAX_RANK} dimensions, none of them 0",
                    t.name
                ));
            }
            total = total.saturating_add(t.len());
        }
        if total > MAX_PARAMS as u64 {
            return Err(format!(
                "the layout holds {total} values, more than the limit of {MAX_PARAMS}"
            ));
        }
        Ok(())
    }

    /// Values in the whole vector.
    pub fn param_count(&self) -> usize {
        self.tensors
            .iter()
            .map(TensorSpec::len)
            .fold(0u64, u64::saturating_add)
            .try_into()
            .unwrap_or(usize::MAX)
    }

    /// Each tensor with its range in the flat vector.
    pub fn ranges(&self) -> Vec<(&TensorSpec, std::ops::Range<usize>)> {
        let mut start = 0usize;
        self.tensors
            .iter()
            .map(|t| {
                let end = start + usize::try_from(t.len()).unwrap_or(usize::MAX);
                let range = start..end;
                start = end;
                (t, range)
            })
            .collect()
    }

    /// The first difference from `other` in words, or `None` when they are equal.
    pub fn difference(&self, other: &Layout) -> Option<String> {
        for (i, (ours, theirs)) in self.tensors.iter().zip(&other.tensors).enumerate() {
            if ours.name != theirs.name {
                return Some(format!(
                    "tensor {i} is '{}' in the cluster's model, '{}' in this worker's",
                    ours.name, theirs.name
                ));
            }
            if ours.shape != theirs.shape {
                return Some(format!(
                    "tensor '{}' has shape {:?} in the cluster's model, {:?} in this worker's",
                    ours.name, ours.shape, theirs.shape
                ));
            }
        }
        if self.tensors.len() != other.tensors.len() {
            return Some(format!(
                "the cluster's model has {} tensors, this worker's {}",
                self.tensors.len(),
                other.tensors.len()
            ));
        }
        None
    }

    /// Appends the canonical encoding: a count, then per tensor its name and dimensions.
    pub fn encode_to(&self, out: &mut Writer) {
        out.count(self.tensors.len());
        for t in &self.tensors {
            out.str(&t.name).u8(t.shape.len() as u8);
            for d in &t.shape {
                out.u64(*d);
            }
        }
    }

    /// Reads `encode_to` output and validates it.
    pub fn decode_from(r: &mut Reader<'_>) -> Result<Layout, DecodeError> {
        let count = r.count("layout tensors", MAX_TENSORS, 5)?;
        let mut tensors = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.str("tensor name", MAX_NAME_BYTES)?.to_owned();
            let at = r.offset();
            let rank = usize::from(r.u8("tensor rank")?);
            if rank > MAX_RANK {
                return Err(DecodeError::TooLong {
                    what: "tensor rank",
                    count: rank as u64,
                    limit: MAX_RANK,
                    offset: at,
                });
            }
            let shape = (0..rank)
                .map(|_| r.u64("tensor dimension"))
                .collect::<Result<Vec<u64>, DecodeError>>()?;
            tensors.push(TensorSpec { name, shape });
        }
        let layout = Layout { tensors };
        layout
            .validate()
            .map_err(|_| r.invalid("layout", "names, shapes or the total size break the bounds"))?;
        Ok(layout)
    }

    /// SHA-256 of the canonical encoding (a round-0 command names the layout by it).
    pub fn hash(&self) -> [u8; 32] {
        let mut out = Writer::new();
        self.encode_to(&mut out);
        Sha256::digest(out.into_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, shape: &[u64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn a_layout_counts_ranges_and_round_trips() {
        let layout =
            Layout::new(vec![spec("w", &[3, 2]), spec("b", &[2]), spec("s", &[])]).unwrap();
        assert_eq!(layout.param_count(), 9);
        let ranges: Vec<_> = layout.ranges().into_iter().map(|(_, r)| r).collect();
        assert_eq!(ranges, [0..6, 6..8, 8..9]);
        let mut out = Writer::new();
        layout.encode_to(&mut out);
        let bytes = out.into_bytes();
        assert_eq!(
            Layout::decode_from(&mut Reader::new(&bytes)),
            Ok(layout.clone())
        );
        for len in 0..bytes.len() {
            assert!(Layout::decode_from(&mut Reader::new(&bytes[..len])).is_err());
        }
        assert_ne!(
            layout.hash(),
            Layout::new(vec![spec("w", &[6])]).unwrap().hash()
        );
    }

    #[test]
    fn bad_layouts_are_refused_with_the_reason() {
        let cases: [(Vec<TensorSpec>, &str); 5] = [
            (vec![], "1..=4096 tensors"),
            (vec![spec("a", &[2]), spec("a", &[3])], "used twice"),
            (vec![spec("a b", &[2])], "letters, digits"),
            (vec![spec("a", &[2, 0])], "none of them 0"),
            (vec![spec("a", &[1 << 20, 1 << 20])], "more than the limit"),
        ];
        for (tensors, expected) in cases {
            let error = Layout::new(tensors).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn the_difference_names_the_first_mismatch() {
        let ours = Layout::new(vec![spec("w", &[3, 2]), spec("b", &[2])]).unwrap();
        assert_eq!(ours.difference(&ours), None);
        let shape = Layout::new(vec![spec("w", &[2, 3]), spec("b", &[2])]).unwrap();
        let reason = ours.difference(&shape).unwrap();
        assert!(reason.contains("tensor 'w' has shape [3, 2]"), "{reason}");
        let fewer = Layout::new(vec![spec("w", &[3, 2])]).unwrap();
        assert!(ours.difference(&fewer).unwrap().contains("2 tensors"));
        let renamed = Layout::new(vec![spec("w", &[3, 2]), spec("bias", &[2])]).unwrap();
        assert!(ours.difference(&renamed).unwrap().contains("'bias'"));
    }
}
