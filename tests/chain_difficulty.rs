//! The retarget rule on synthetic histories: table-driven vectors from
//! `tests/data/retarget/*.toml` (written by an independent Python model), and simulations of a
//! chain whose block times follow from its difficulty and a changing hash rate.

mod chain_support;

use std::path::Path;

use hashgrad::pow::difficulty::{Sample, next_bits};
use hashgrad::pow::{CompactBits, NetworkParams, RetargetRule, Target, U256};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    target_block_time_secs: u64,
    pow_limit: u32,
    window: u32,
    max_factor: u32,
    history: Vec<(u32, u32)>,
    expected_next_bits: u32,
}

fn params(block_time: u64, pow_limit: u32, window: u32, max_factor: u32) -> NetworkParams {
    let mut params = NetworkParams::by_name("devnet").expect("devnet");
    params.target_block_time_secs = block_time;
    params.pow_limit = Target::from_compact(CompactBits(pow_limit)).expect("limit bits");
    params.retarget = RetargetRule::PerBlock { window, max_factor };
    params
}

#[test]
fn retarget_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/retarget");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vector dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "vectors missing in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable vector");
        let v: Vector = toml::from_str(&text).expect("well-formed vector");
        let params = params(
            v.target_block_time_secs,
            v.pow_limit,
            v.window,
            v.max_factor,
        );
        let history: Vec<Sample> = v
            .history
            .iter()
            .map(|&(time, bits)| Sample {
                time,
                bits: CompactBits(bits),
            })
            .collect();
        assert_eq!(
            next_bits(&params, &history),
            CompactBits(v.expected_next_bits),
            "vector {}",
            file.display()
        );
    }
}

/// Expected seconds to find a block at `bits` with `hashrate` hashes per second.
fn block_time(bits: CompactBits, hashrate: f64) -> u32 {
    let work = Target::from_compact(bits).expect("bits").work().0;
    let hashes = f64::from(work);
    ((hashes / hashrate).round() as u32).max(1)
}

/// Runs `blocks` blocks from `history` at `hashrate(i)`; returns the block times.
fn simulate(
    params: &NetworkParams,
    history: &mut Vec<Sample>,
    blocks: usize,
    hashrate: impl Fn(usize) -> f64,
) -> Vec<u32> {
    let mut times = Vec::new();
    for i in 0..blocks {
        let bits = next_bits(params, history);
        let parent = *history.last().expect("non-empty");
        let change = f64::from(Target::from_compact(bits).expect("bits").0)
            / f64::from(Target::from_compact(parent.bits).expect("bits").0);
        assert!(
            (0.25 / 1.001..=4.0 * 1.001).contains(&change),
            "one step changed the target by {change}"
        );
        let dt = block_time(bits, hashrate(i));
        times.push(dt);
        history.push(Sample {
            time: parent.time + dt,
            bits,
        });
    }
    times
}

fn mean(xs: &[u32]) -> f64 {
    xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64
}

#[test]
fn hash_rate_jumps_converge_back_to_the_target_block_time() {
    let params = params(10, 0x1f00ffff, 20, 4);
    let limit_bits = params.pow_limit.to_compact();
    let mut history = vec![Sample {
        time: 1_000_000,
        bits: limit_bits,
    }];
    // A CPU at 1 MH/s: from the easy pow limit to ~10 s blocks.
    simulate(&params, &mut history, 300, |_| 1.0e6);
    let settled = simulate(&params, &mut history, 50, |_| 1.0e6);
    assert!(
        (mean(&settled) - 10.0).abs() < 1.5,
        "settled at {}",
        mean(&settled)
    );

    // A GPU joins: 50x the hash rate. Blocks come fast, then settle again.
    let jump = simulate(&params, &mut history, 300, |_| 5.0e7);
    assert!(
        jump[0] <= 1,
        "first block after the jump is fast: {}",
        jump[0]
    );
    let after = &jump[250..];
    assert!(
        (mean(after) - 10.0).abs() < 1.5,
        "after jump: {}",
        mean(after)
    );

    // The GPU leaves: blocks slow down, then settle.
    let drop = simulate(&params, &mut history, 300, |_| 1.0e6);
    assert!(drop[0] > 100, "first block after the drop is slow");
    let after = &drop[250..];
    assert!(
        (mean(after) - 10.0).abs() < 1.5,
        "after drop: {}",
        mean(after)
    );
}

#[test]
fn a_stalled_network_eases_by_the_max_factor_per_block_and_never_past_the_limit() {
    let params = params(10, 0x1f00ffff, 20, 4);
    let start_bits = CompactBits(0x1d00ffff);
    let mut history: Vec<Sample> = (0..21)
        .map(|i| Sample {
            time: 1_000_000 + 10 * i,
            bits: start_bits,
        })
        .collect();
    let start = Target::from_compact(start_bits).expect("bits").0;
    let last = history.last().copied().expect("non-empty");
    history.push(Sample {
        time: last.time + 86_400,
        bits: start_bits,
    });
    let eased = Target::from_compact(next_bits(&params, &history))
        .expect("bits")
        .0;
    // Span clamped to 4 × expected; mean target unchanged: 4 × (within compact rounding).
    let four = start * U256::from(4u8);
    assert!(
        eased <= four && eased > four - (four >> 16),
        "eased to {eased:x}"
    );
    // Stalled for ever: the target climbs to the limit and stays there.
    for _ in 0..200 {
        let bits = next_bits(&params, &history);
        let t = history.last().expect("non-empty").time + 86_400;
        history.push(Sample { time: t, bits });
    }
    assert_eq!(
        history.last().expect("non-empty").bits,
        params.pow_limit.to_compact()
    );
}

#[test]
fn the_chain_enforces_the_retarget_on_devnet() {
    use chain_support::{NOW, miner};
    use hashgrad::hash::NonceRange;
    use hashgrad::pow::{Accepted, Chain, ChainError};

    let params = NetworkParams::by_name("devnet").expect("devnet");
    let limit_bits = params.pow_limit.to_compact();
    let mut chain = Chain::new(params.clone());
    let genesis_time = chain.tip_header().time;
    let mine_at = |chain: &Chain, time: u32, bits: Option<CompactBits>| {
        let mut template = chain.template(miner(1), Vec::new(), NOW);
        template.set_time(time);
        let mut block = template.with_nonce(0);
        if let Some(bits) = bits {
            block.header.bits = bits;
        }
        let target = Target::from_compact(block.header.bits).expect("bits");
        (0..=u32::MAX)
            .map(|nonce| {
                block.header.nonce = nonce;
                block.clone()
            })
            .find(|b| target.is_met_by(&b.hash().0))
            .expect("a nonce exists")
    };
    // Block 1 follows the genesis alone: genesis bits.
    assert_eq!(chain.next_bits(&chain.tip()), Some(limit_bits));
    let first = mine_at(&chain, genesis_time + 1, None);
    assert_eq!(
        chain.accept_block(first, NOW),
        Ok(Accepted::NewTip { reorg: None })
    );
    // It came in half the target time: block 2 must be twice as hard.
    let demanded = chain.next_bits(&chain.tip()).expect("tip known");
    let demanded_target = Target::from_compact(demanded).expect("bits").0;
    assert_eq!(demanded_target, params.pow_limit.0 >> 1u8);
    let lazy = mine_at(&chain, genesis_time + 2, Some(limit_bits));
    assert!(matches!(
        chain.accept_block(lazy, NOW),
        Err(ChainError::WrongBits { got, expected, .. }) if got == limit_bits && expected == demanded
    ));
    let honest = chain
        .template(miner(1), Vec::new(), u64::from(genesis_time) + 2)
        .mine_with_reference(NonceRange::FULL)
        .expect("a nonce exists");
    assert_eq!(honest.header.bits, demanded);
    assert_eq!(
        chain.accept_block(honest, NOW),
        Ok(Accepted::NewTip { reorg: None })
    );
}
