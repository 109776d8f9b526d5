//! Byzantine behaviour for simulations: how a faulty worker corrupts its honest gradient
//! (sign flip ×−10, scale ×100, or large Gaussian noise), seeded so runs replay exactly.

use std::str::FromStr;

use rand::Rng;

/// Factor a sign-flipping worker multiplies its gradient by.
pub const SIGN_FLIP_FACTOR: f32 = -10.0;
/// Factor a scaling worker multiplies its gradient by.
pub const SCALE_FACTOR: f32 = 100.0;
/// Standard deviation of the noise a noisy worker adds to each coordinate.
pub const NOISE_SIGMA: f32 = 10.0;

/// A Byzantine worker's attack (`--attack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attack {
    /// Sends −10 × its gradient.
    #[default]
    SignFlip,
    /// Sends 100 × its gradient.
    Scale,
    /// Adds N(0, 10²) noise to every coordinate.
    Noise,
}

impl Attack {
    /// The name as the CLI spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Attack::SignFlip => "sign-flip",
            Attack::Scale => "scale",
            Attack::Noise => "noise",
        }
    }

    /// Corrupts `gradient` in place.
    pub fn apply(&self, gradient: &mut [f32], rng: &mut impl Rng) {
        match self {
            Attack::SignFlip => gradient.iter_mut().for_each(|g| *g *= SIGN_FLIP_FACTOR),
            Attack::Scale => gradient.iter_mut().for_each(|g| *g *= SCALE_FACTOR),
            Attack::Noise => {
                for pair in gradient.chunks_mut(2) {
                    let (a, b) = standard_normal_pair(rng);
                    pair[0] += NOISE_SIGMA * a;
                    if let Some(second) = pair.get_mut(1) {
                        *second += NOISE_SIGMA * b;
                    }
                }
            }
        }
    }
}

/// Two independent N(0, 1) samples (Box–Muller).
fn standard_normal_pair(rng: &mut impl Rng) -> (f32, f32) {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random();
    let radius = (-2.0 * u1.ln()).sqrt();
    let angle = std::f64::consts::TAU * u2;
    ((radius * angle.cos()) as f32, (radius * angle.sin()) as f32)
}

impl std::fmt::Display for Attack {
    /// The name as `--attack` and `train.attack` spell it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attack::SignFlip => "sign-flip",
            Attack::Scale => "scale",
            Attack::Noise => "noise",
        })
    }
}

impl FromStr for Attack {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sign-flip" | "signflip" | "sign_flip" => Ok(Attack::SignFlip),
            "scale" => Ok(Attack::Scale),
            "noise" => Ok(Attack::Noise),
            other => Err(format!(
                "unknown attack '{other}'; use sign-flip, scale or noise"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn attacks_corrupt_as_documented() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut g = vec![1.0f32, -2.0];
        Attack::SignFlip.apply(&mut g, &mut rng);
        assert_eq!(g, vec![-10.0, 20.0]);
        Attack::Scale.apply(&mut g, &mut rng);
        assert_eq!(g, vec![-1000.0, 2000.0]);
        let mut noisy = vec![0.0f32; 10_000];
        Attack::Noise.apply(&mut noisy, &mut rng);
        let var = noisy.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / noisy.len() as f64;
        assert!((80.0..120.0).contains(&var), "variance {var}");
    }
}
