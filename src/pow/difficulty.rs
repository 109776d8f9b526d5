//! The retarget rule: which `bits` the next block must carry, as a pure function of the
//! network's parameters and its ancestors' `(time, bits)`.
//!
//! Knows nothing of the block tree; `chain` collects the ancestors and asks.

use ruint::aliases::U512;

use super::network::{NetworkParams, RetargetRule};
use crate::target::{CompactBits, Target, U256};

/// What the retarget rule reads of one ancestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The ancestor's header time, Unix seconds.
    pub time: u32,
    /// The ancestor's compact target.
    pub bits: CompactBits,
}

/// How many ancestors (parent included) `next_bits` reads at most.
pub fn samples_needed(rule: &RetargetRule) -> usize {
    match rule {
        RetargetRule::Fixed => 0,
        RetargetRule::PerBlock { window, .. } => *window as usize + 1,
    }
}

/// The `bits` the child of `history`'s last block must carry.
///
/// `history` is the parent's ancestors, oldest first, ending with the parent; extra older
/// entries are ignored. With `PerBlock { window: N, max_factor: F }` the next target is the
/// mean target of the last n = min(N, blocks after the oldest sample) blocks times
/// `span / (n × target_block_time)`, where `span` (the time between the first and the last of
/// the n + 1 samples) is clamped to [expected / F, expected × F]; the result is then kept
/// within a factor F of the parent's target and never easier than the pow limit. A chain of only its genesis keeps the genesis bits.
pub fn next_bits(params: &NetworkParams, history: &[Sample]) -> CompactBits {
    let limit_bits = params.pow_limit.to_compact();
    let (window, max_factor) = match params.retarget {
        RetargetRule::Fixed => return limit_bits,
        RetargetRule::PerBlock { window, max_factor } => (window as usize, max_factor),
    };
    let Some(parent) = history.last() else {
        return limit_bits;
    };
    let n = window.min(history.len() - 1);
    if n == 0 {
        return cap(target_of(parent.bits, params), params);
    }
    let samples = &history[history.len() - 1 - n..];
    let expected = n as i64 * params.target_block_time_secs as i64;
    let span = i64::from(parent.time) - i64::from(samples[0].time);
    let factor = i64::from(max_factor);
    let span = span.clamp((expected / factor).max(1), expected * factor);

    let sum = samples[1..]
        .iter()
        .map(|s| U512::from(target_of(s.bits, params).0))
        .fold(U512::ZERO, |acc, t| acc + t);
    let scaled = sum * U512::from(span as u64) / U512::from(expected as u64 * n as u64);
    // One step never moves more than `max_factor` from the parent's own target either.
    let parent_target = U512::from(target_of(parent.bits, params).0);
    let factor = U512::from(max_factor);
    let clamped = scaled.clamp(parent_target / factor, parent_target * factor);
    let next = Target(clamped.saturating_to::<U256>().max(U256::from(1u8)));
    cap(next, params)
}

/// The target `bits` stands for; undecodable bits (never in a validated chain) count as the
/// pow limit.
fn target_of(bits: CompactBits, params: &NetworkParams) -> Target {
    Target::from_compact(bits).unwrap_or(params.pow_limit)
}

fn cap(target: Target, params: &NetworkParams) -> CompactBits {
    target.min(params.pow_limit).to_compact()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devnet() -> NetworkParams {
        NetworkParams::by_name("devnet").expect("devnet")
    }

    fn history(spacings: &[u32], bits: CompactBits) -> Vec<Sample> {
        let mut time = 1_000_000;
        let mut out = vec![Sample { time, bits }];
        for spacing in spacings {
            time += spacing;
            out.push(Sample { time, bits });
        }
        out
    }

    #[test]
    fn on_schedule_keeps_the_target() {
        let params = devnet();
        let bits = CompactBits(0x1e12_3456);
        let t = params.target_block_time_secs as u32;
        let next = next_bits(&params, &history(&[t; 30], bits));
        assert_eq!(next, bits);
    }

    #[test]
    fn fast_blocks_make_it_harder_and_slow_easier() {
        let params = devnet();
        let bits = CompactBits(0x1e12_3456);
        let base = Target::from_compact(bits).expect("bits");
        let t = params.target_block_time_secs as u32;
        let fast = next_bits(&params, &history(&[t / 2; 30], bits));
        let slow = next_bits(&params, &history(&[t * 2; 30], bits));
        assert!(Target::from_compact(fast).expect("bits") < base);
        assert!(Target::from_compact(slow).expect("bits") > base);
    }

    #[test]
    fn fixed_rule_always_gives_the_pow_limit() {
        let params = NetworkParams::regtest();
        let h = history(&[1000; 5], CompactBits(0x1d00ffff));
        assert_eq!(next_bits(&params, &h), params.pow_limit.to_compact());
    }
}
