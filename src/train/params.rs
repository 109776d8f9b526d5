//! The training state as bytes: model shape, round, parameters and optimizer state in a
//! versioned little-endian format with a SHA-256 content hash (a training cluster commits that
//! hash through Raft and ships the bytes as a blob). The decoder bounds every size, checks the
//! length before allocating and never panics.

use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader};

use super::TrainError;
use super::model::{MAX_LAYER_WIDTH, MAX_LAYERS, Mlp};
use super::optimizer::Optimizer;

const MAGIC: &[u8; 4] = b"HGTS";
/// The format version `to_bytes` writes and `from_bytes` accepts.
pub const STATE_VERSION: u16 = 1;
/// Most parameters a decoded state may hold (1 GiB of f32).
pub const MAX_PARAMS: usize = 1 << 28;
const TAG_SGD: u8 = 0;
const TAG_ADAM: u8 = 1;

/// SHA-256 of a state's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub [u8; 32]);

impl std::fmt::Display for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Everything needed to resume training: model shape, last completed round, parameters and
/// optimizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainState {
    /// Layer sizes of the MLP, input first.
    pub layers: Vec<usize>,
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
        let vectors = match &self.optimizer {
            Optimizer::Sgd { .. } => 2,
            Optimizer::Adam { .. } => 3,
        };
        let mut out =
            Vec::with_capacity(64 + self.layers.len() * 4 + self.params.len() * 4 * vectors);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STATE_VERSION.to_le_bytes());
        let tag = match self.optimizer {
            Optimizer::Sgd { .. } => TAG_SGD,
            Optimizer::Adam { .. } => TAG_ADAM,
        };
        out.extend_from_slice(&[tag, 0]);
        out.extend_from_slice(&self.round.to_le_bytes());
        out.extend_from_slice(&(self.layers.len() as u32).to_le_bytes());
        for &width in &self.layers {
            out.extend_from_slice(&(width as u32).to_le_bytes());
        }
        out.extend_from_slice(&(self.params.len() as u64).to_le_bytes());
        match &self.optimizer {
            Optimizer::Sgd {
                lr,
                momentum,
                velocity,
            } => {
                put_floats(&mut out, &[*lr, *momentum]);
                put_floats(&mut out, &self.params);
                put_floats(&mut out, velocity);
            }
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                epsilon,
                step,
                m,
                v,
            } => {
                put_floats(&mut out, &[*lr, *beta1, *beta2, *epsilon]);
                out.extend_from_slice(&step.to_le_bytes());
                put_floats(&mut out, &self.params);
                put_floats(&mut out, m);
                put_floats(&mut out, v);
            }
        }
        out
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
        let tag = r.u8("optimizer tag")?;
        if r.u8("reserved byte")? != 0 {
            return Err(TrainError::BadState("reserved byte is not zero".into()));
        }
        let round = r.u64("round")?;
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
        let expected = Mlp::new(&layers)?.param_count();
        let count = r.u64("parameter count")?;
        if count != expected as u64 || expected > MAX_PARAMS {
            return Err(TrainError::BadState(format!(
                "{count} parameters stored; layers {layers:?} need {expected}"
            )));
        }
        let (vectors, header) = match tag {
            TAG_SGD => (2usize, 8usize),
            TAG_ADAM => (3, 24),
            other => {
                return Err(TrainError::BadState(format!(
                    "unknown optimizer tag {other}"
                )));
            }
        };
        let needed = expected
            .checked_mul(4 * vectors)
            .and_then(|b| b.checked_add(header));
        let left = r.remaining();
        if needed != Some(left) {
            return Err(TrainError::BadState(format!(
                "{left} bytes of parameters and optimizer state; {} expected",
                needed.map_or("too many".to_string(), |n| n.to_string())
            )));
        }
        let optimizer_and_params = if tag == TAG_SGD {
            let lr = r.f32("learning rate")?;
            let momentum = r.f32("momentum")?;
            let params = floats(&mut r, expected, "parameters")?;
            let velocity = floats(&mut r, expected, "velocity")?;
            (
                Optimizer::Sgd {
                    lr,
                    momentum,
                    velocity,
                },
                params,
            )
        } else {
            let lr = r.f32("learning rate")?;
            let beta1 = r.f32("beta1")?;
            let beta2 = r.f32("beta2")?;
            let epsilon = r.f32("epsilon")?;
            let step = r.u64("step")?;
            let params = floats(&mut r, expected, "parameters")?;
            let m = floats(&mut r, expected, "first moment")?;
            let v = floats(&mut r, expected, "second moment")?;
            (
                Optimizer::Adam {
                    lr,
                    beta1,
                    beta2,
                    epsilon,
                    step,
                    m,
                    v,
                },
                params,
            )
        };
        let (optimizer, params) = optimizer_and_params;
        Ok(TrainState {
            layers,
            round,
            params,
            optimizer,
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
            layers,
            round: 7,
            params,
            optimizer,
        }
    }

    #[test]
    fn round_trip_and_stable_hash() {
        for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
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
        huge.extend_from_slice(&1u16.to_le_bytes());
        huge.extend_from_slice(&[1, 0]);
        huge.extend_from_slice(&0u64.to_le_bytes());
        huge.extend_from_slice(&3u32.to_le_bytes());
        for w in [65536u32, 65536, 65536] {
            huge.extend_from_slice(&w.to_le_bytes());
        }
        assert!(TrainState::from_bytes(&huge).is_err());
    }

    #[test]
    fn vector_blobs_round_trip_and_bound_their_length() {
        let v = vec![1.5f32, -0.0, 3.25];
        assert_eq!(vector_from_bytes(&vector_to_bytes(&v), 3).unwrap(), v);
        assert!(vector_from_bytes(&vector_to_bytes(&v), 2).is_err());
        assert!(vector_from_bytes(&[0, 1, 2], 10).is_err());
    }
}
