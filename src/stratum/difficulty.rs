//! Share difficulty: the target a `mining.set_difficulty` value means (fractional values below
//! 1 included, for regtest), the hashes a share of some difficulty stands for, and `Vardiff`,
//! which steers a connection's difficulty toward a number of shares per minute.
//!
//! Pure arithmetic on values and `now`; must not send anything (the session does).

use std::time::{Duration, Instant};

use crate::target::{Target, U256};

/// Hashes one share of difficulty 1 stands for on average: 2^256 / (diff1 target + 1) ≈ 2^32.
pub const HASHES_PER_DIFF1: f64 = 4_295_032_833.0;
/// The lowest difficulty accepted anywhere (its target is about 2^256: every hash).
pub const MIN_DIFFICULTY: f64 = 1.0 / 4_294_967_296.0;
/// The highest difficulty accepted anywhere.
pub const MAX_DIFFICULTY: f64 = 1e15;

/// The share target of `difficulty`: diff1 (0xffff · 2^208) / difficulty, computed as
/// cpuminer and cgminer do (`0xffff0000 / difficulty` in f64, shifted by 2^192) and rounded
/// down, so a miner's own target is never above the server's. Out-of-range and non-finite
/// difficulties are clamped to `MIN_DIFFICULTY..=MAX_DIFFICULTY`.
pub fn share_target(difficulty: f64) -> Target {
    let difficulty = if difficulty.is_finite() {
        difficulty.clamp(MIN_DIFFICULTY, MAX_DIFFICULTY)
    } else {
        1.0
    };
    let scaled = 4_294_901_760.0 / difficulty;
    // `scaled` = mantissa · 2^exponent exactly; the target is that times 2^192, floored.
    let bits = scaled.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mantissa = U256::from((bits & ((1u64 << 52) - 1)) | (1u64 << 52));
    let shift = exponent + 192;
    let value = if shift >= 0 {
        let shift = shift as usize;
        if mantissa.bit_len() + shift > 256 {
            U256::MAX
        } else {
            mantissa << shift
        }
    } else {
        mantissa >> ((-shift) as usize)
    };
    Target(value)
}

/// The difficulty a target stands for: diff1 / target, as an f64.
pub fn difficulty_of(target: &Target) -> f64 {
    let diff1 = U256::from(0xffffu64) << 208;
    u256_f64(diff1) / u256_f64(target.0).max(1.0)
}

fn u256_f64(value: U256) -> f64 {
    value.as_limbs().iter().rev().fold(0.0, |acc, &limb| {
        acc * 18_446_744_073_709_551_616.0 + limb as f64
    })
}

/// The settings of a connection's difficulty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VardiffConfig {
    /// Difficulty a new connection starts at.
    pub start: f64,
    /// Lowest difficulty vardiff sets.
    pub min: f64,
    /// Highest difficulty vardiff sets.
    pub max: f64,
    /// Shares per minute to steer toward; 0 turns vardiff off.
    pub shares_per_minute: f64,
    /// How often at most the difficulty is retargeted.
    pub retarget_every: Duration,
}

/// Vardiff for one connection: counts accepted shares since the last retarget and, once the
/// window is over (or shares arrive four times too fast), sets the difficulty that would have
/// made the target rate, moving by at most ×4 per retarget.
#[derive(Debug, Clone)]
pub struct Vardiff {
    config: VardiffConfig,
    difficulty: f64,
    window_start: Instant,
    shares: u32,
}

impl Vardiff {
    /// Starts at `config.start` (clamped to min..=max), window from `now`.
    pub fn new(config: VardiffConfig, now: Instant) -> Vardiff {
        Vardiff {
            difficulty: config.start.clamp(config.min, config.max),
            config,
            window_start: now,
            shares: 0,
        }
    }

    /// The difficulty now in force.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Counts an accepted share; returns the new difficulty when it changed.
    pub fn on_share(&mut self, now: Instant) -> Option<f64> {
        self.shares += 1;
        self.retarget(now)
    }

    /// Retargets when due (call on shares and on a timer, so a miner that found nothing for a
    /// long time gets an easier difficulty); returns the new difficulty when it changed.
    pub fn retarget(&mut self, now: Instant) -> Option<f64> {
        if self.config.shares_per_minute <= 0.0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.window_start);
        let wanted = self.config.shares_per_minute * elapsed.as_secs_f64() / 60.0;
        let flood = f64::from(self.shares) > 4.0 * wanted.max(1.0) && self.shares >= 8;
        if elapsed < self.config.retarget_every && !flood {
            return None;
        }
        // No share at all in the window: at least halve, as if one share had just come.
        let observed = f64::from(self.shares.max(1)) * if self.shares == 0 { 0.5 } else { 1.0 };
        let factor = (observed / wanted.max(1e-9)).clamp(0.25, 4.0);
        let next = (self.difficulty * factor).clamp(self.config.min, self.config.max);
        self.window_start = now;
        self.shares = 0;
        let changed = (next - self.difficulty).abs() > self.difficulty * 1e-9;
        self.difficulty = next;
        changed.then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difficulty_one_is_the_diff1_target_and_fractions_scale_it() {
        let diff1 = U256::from(0xffffu64) << 208;
        assert_eq!(share_target(1.0).0, diff1);
        assert_eq!(share_target(2.0).0, diff1 >> 1);
        assert_eq!(share_target(0.5).0, diff1 << 1);
        assert_eq!(share_target(1.0 / 65536.0).0, diff1 << 16);
        assert_eq!(share_target(f64::NAN), share_target(1.0));
        assert_eq!(share_target(1e-30).0, share_target(MIN_DIFFICULTY).0);
        assert!((difficulty_of(&share_target(0.001)) - 0.001).abs() < 1e-12);
        // Regtest's block target is far easier than any share difficulty a pool sets.
        let regtest = Target::from_compact(crate::target::CompactBits(0x207fffff)).expect("bits");
        assert!(difficulty_of(&regtest) < 1e-9);
    }

    #[test]
    fn vardiff_steers_toward_the_share_rate() {
        let start = Instant::now();
        let config = VardiffConfig {
            start: 1.0,
            min: 0.001,
            max: 1000.0,
            shares_per_minute: 20.0,
            retarget_every: Duration::from_secs(30),
        };
        let mut vardiff = Vardiff::new(config, start);
        // 40 shares in 30 s is 80 per minute, four times the target: ×4.
        let mut changed = None;
        for i in 0..40 {
            changed = changed.or(vardiff.on_share(start + Duration::from_millis(750 * i)));
        }
        assert!(changed.is_some_and(|d| d > 1.0), "{changed:?}");
        // Silence for a window: easier.
        let before = vardiff.difficulty();
        let later = start + Duration::from_secs(120);
        assert!(vardiff.retarget(later).is_some_and(|d| d < before));
        // Never below min.
        for i in 0..20 {
            vardiff.retarget(later + Duration::from_secs(31 * (i + 1)));
        }
        assert_eq!(vardiff.difficulty(), 0.001);
    }
}
