//! `hashgrad mine-header HEADER_HEX`: searches a nonce range for the header's own `bits`
//! target and prints each nonce found with its block hash, then the hash rate.

use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::gpu::{AdapterChoice, DeviceChoice};
use crate::hash::select::open_backend;
use crate::hash::{Job, NonceRange, StopFlag, display_hash, parse_header_hex};
use crate::pow::{CompactBits, Target};

/// Byte offset of the little-endian `bits` field in a header.
const BITS_OFFSET: usize = 72;

/// Arguments of `hashgrad mine-header`.
#[derive(Debug, Args)]
pub struct MineHeaderArgs {
    /// The 80-byte header as 160 hex characters (its nonce field is ignored).
    pub header_hex: String,
    /// First nonce to try.
    #[arg(long, default_value_t = 0)]
    pub start: u32,
    /// How many nonces to try (at most 2^32; wraps past 0xffffffff).
    #[arg(long, default_value_t = 1 << 32)]
    pub count: u64,
    /// cpu, gpu or auto (a hardware GPU if one opens, else the CPU).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// CPU worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// GPU adapter by index (see `hashgrad adapters`) or name substring.
    #[arg(long, default_value = "auto")]
    pub adapter: String,
}

/// Searches the nonce range for the header's own target, printing each nonce found and then the
/// hash rate; bad arguments, unusable bits or an unavailable backend are usage errors.
pub fn run(args: MineHeaderArgs) -> anyhow::Result<()> {
    let header = parse_header_hex(&args.header_hex).map_err(|e| super::usage(e.to_string()))?;
    let choice: DeviceChoice = args
        .backend
        .parse()
        .map_err(|e: crate::gpu::UnknownDevice| super::usage(e.to_string()))?;
    if args.threads == Some(0) {
        return Err(super::usage("--threads must be at least 1"));
    }
    if args.count == 0 || args.count > 1 << 32 {
        return Err(super::usage("--count must be between 1 and 4294967296"));
    }
    let mut bits_bytes = [0u8; 4];
    bits_bytes.copy_from_slice(&header[BITS_OFFSET..BITS_OFFSET + 4]);
    let bits = CompactBits(u32::from_le_bytes(bits_bytes));
    let target = Target::from_compact(bits)
        .map_err(|e| super::usage(format!("the header's bits field is unusable: {e}")))?;
    let adapter: AdapterChoice = args.adapter.parse().unwrap_or_default();
    let mut backend = open_backend(choice, &adapter, args.threads).map_err(|e| {
        super::usage(format!(
            "cannot open the {choice} backend: {e} (try --backend cpu)"
        ))
    })?;
    let info = backend.info();
    eprintln!(
        "searching {} nonces from {} for bits {bits} (target {target}) on {} [{}, {} threads]",
        args.count, args.start, info.device, info.path, info.threads
    );
    let job = Job { header, target };
    let started = Instant::now();
    let outcome = backend
        .search(
            &job,
            NonceRange::new(args.start, args.count),
            &StopFlag::new(),
        )
        .context("search failed")?;
    let seconds = started.elapsed().as_secs_f64();
    for found in &outcome.found {
        println!(
            "nonce {} ({:#010x}) hash {}",
            found.nonce,
            found.nonce,
            display_hash(&found.hash)
        );
    }
    let rate = outcome.hashes as f64 / seconds.max(1e-9) / 1e6;
    println!(
        "found {} in {} hashes, {seconds:.2} s, {rate:.2} MH/s ({}, {})",
        outcome.found.len(),
        outcome.hashes,
        backend.info().path,
        backend.info().device
    );
    Ok(())
}
