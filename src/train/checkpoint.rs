//! Parameter vectors as safetensors files (the `safetensors` crate): a checkpoint of committed
//! params (tensors named and shaped by the layout, `__metadata__` with round, params hash,
//! rule and optimizer) and the reverse, a worker's initial params: F32 tensors whose order in
//! the vector is the order of their data in the file. Bounded by the layout's limits; never
//! panics on a hostile file. Pure: bytes in, bytes out.

use std::borrow::Cow;
use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, View};

use super::layout::{Layout, TensorSpec};

/// The error a safetensors file is refused with, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a safetensors file, or one that breaks its own offsets.
    #[error("not a valid safetensors file: {0}")]
    Format(String),
    /// A tensor of another dtype than F32.
    #[error("tensor '{name}' is {dtype}; hashgrad trains F32 parameters (convert with .float())")]
    Dtype {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// The tensors break the layout's bounds (names, ranks, count, total size).
    #[error("{0}")]
    Layout(String),
    /// The values cannot be written as a file.
    #[error("cannot write the checkpoint: {0}")]
    Write(String),
}

struct F32Tensor<'a> {
    shape: Vec<usize>,
    values: &'a [f32],
}

impl View for F32Tensor<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        let mut bytes = Vec::with_capacity(self.values.len() * 4);
        for v in self.values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Cow::Owned(bytes)
    }
    fn data_len(&self) -> usize {
        self.values.len() * 4
    }
}

/// `values` laid out by `layout` as a safetensors file with `metadata` in `__metadata__`.
pub fn encode(
    layout: &Layout,
    values: &[f32],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, CheckpointError> {
    if values.len() != layout.param_count() {
        return Err(CheckpointError::Layout(format!(
            "the layout holds {} values, the vector {}",
            layout.param_count(),
            values.len()
        )));
    }
    let tensors = layout.ranges().into_iter().map(|(spec, range)| {
        let shape = spec.shape.iter().map(|d| *d as usize).collect();
        (
            spec.name.clone(),
            F32Tensor {
                shape,
                values: &values[range],
            },
        )
    });
    safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| CheckpointError::Write(e.to_string()))
}

/// What a safetensors file of F32 tensors holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The tensors in the order of their data in the file.
    pub layout: Layout,
    /// Their values, concatenated in that order.
    pub values: Vec<f32>,
    /// The file's `__metadata__`.
    pub metadata: HashMap<String, String>,
}

/// Reads a safetensors file of F32 tensors; the layout follows the data's order in the file.
pub fn decode(bytes: &[u8]) -> Result<Decoded, CheckpointError> {
    let (_, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let names = metadata.offset_keys();
    if names.len() > super::layout::MAX_TENSORS {
        return Err(CheckpointError::Layout(format!(
            "{} tensors; a layout has at most {}",
            names.len(),
            super::layout::MAX_TENSORS
        )));
    }
    let mut tensors = Vec::with_capacity(names.len());
    let mut views = Vec::with_capacity(names.len());
    for name in names {
        let view = file
            .tensor(&name)
            .map_err(|e| CheckpointError::Format(e.to_string()))?;
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::Dtype {
                name,
                dtype: view.dtype().to_string(),
            });
        }
        tensors.push(TensorSpec {
            name,
            shape: view.shape().iter().map(|d| *d as u64).collect(),
        });
        views.push(view);
    }
    let layout = Layout::new(tensors).map_err(CheckpointError::Layout)?;
    let mut values = Vec::with_capacity(layout.param_count());
    for view in views {
        values.extend(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    if values.len() != layout.param_count() {
        return Err(CheckpointError::Format(
            "the tensors' data do not match their shapes".into(),
        ));
    }
    Ok(Decoded {
        layout,
        values,
        metadata: metadata.metadata().clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(vec![
            TensorSpec {
                name: "z.weight".into(),
                shape: vec![2, 3],
            },
            TensorSpec {
                name: "a.bias".into(),
                shape: vec![2],
            },
        ])
        .unwrap()
    }

    #[test]
    fn a_checkpoint_round_trips_with_its_metadata() {
        let values: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect();
        let meta = HashMap::from([("round".to_string(), "7".to_string())]);
        let bytes = encode(&layout(), &values, meta.clone()).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.metadata, meta);
        // The crate writes tensors sorted by name: the decoded order is the file's.
        let by_name: HashMap<_, _> = decoded
            .layout
            .ranges()
            .into_iter()
            .map(|(t, r)| (t.name.clone(), decoded.values[r].to_vec()))
            .collect();
        assert_eq!(by_name["z.weight"], values[..6]);
        assert_eq!(by_name["a.bias"], values[6..]);
    }

    #[test]
    fn hostile_files_are_refused_without_panicking() {
        let bytes = encode(&layout(), &[1.0; 8], HashMap::new()).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "{len}");
        }
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(CheckpointError::Format(_))));
        let header = br#"{"x":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut ints = (header.len() as u64).to_le_bytes().to_vec();
        ints.extend_from_slice(header);
        ints.extend_from_slice(&[0; 8]);
        let err = decode(&ints).unwrap_err();
        assert!(matches!(err, CheckpointError::Dtype { .. }), "{err}");
        assert!(err.to_string().contains("'x' is I32"), "{err}");
        assert!(encode(&layout(), &[1.0; 7], HashMap::new()).is_err());
    }
}
