//! Criterion: GPU sha256d search throughput (nonces per second) next to the plain `sha2`
//! reference on one thread, measured in the same run. Without a GPU adapter it prints
//! "skipped: no GPU adapter" and measures only the reference.
//!
//! `cargo bench --bench gpu_search` (scripts/gpu-check.sh runs it on GPU machines).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgrad::gpu::{AdapterChoice, GpuContext};
use hashgrad::hash::gpu::{GpuBackend, GpuSearchConfig};
use hashgrad::hash::{Backend, Job, NonceRange, StopFlag, reference};
use hashgrad::pow::{CompactBits, Target};

fn genesis_job() -> Job {
    let header = hashgrad::hash::parse_header_hex(
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
    )
    .unwrap_or([0; 80]);
    let target = Target::from_compact(CompactBits(0x1d00ffff)).unwrap_or(Target::MAX);
    Job { header, target }
}

fn gpu_search(c: &mut Criterion) {
    let job = genesis_job();
    let stop = StopFlag::new();
    let mut group = c.benchmark_group("gpu");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));

    let reference_nonces = 1 << 16;
    group.throughput(Throughput::Elements(reference_nonces));
    group.bench_function("sha2-reference-1-thread", |b| {
        b.iter(|| reference::search(&job, black_box(NonceRange::new(0, reference_nonces)), &stop))
    });

    let context = match GpuContext::open(&AdapterChoice::Auto) {
        Ok(context) => context,
        Err(error) => {
            eprintln!("skipped: no GPU adapter ({error})");
            return;
        }
    };
    let adapter = context.adapter_name().to_string();
    let mut gpu = match GpuBackend::with_context(context, GpuSearchConfig::default()) {
        Ok(gpu) => gpu,
        Err(error) => {
            eprintln!("skipped: the GPU kernel did not build on {adapter}: {error}");
            return;
        }
    };
    // About 0.2 s per iteration on lavapipe, 40–80 ms on a data-centre GPU.
    let nonces: u64 = if gpu.is_software() { 1 << 18 } else { 1 << 29 };
    // Warm-up outside the measurement: grows the dispatch size to its steady state.
    let _ = gpu.search(&job, NonceRange::new(0, nonces), &stop);
    group.throughput(Throughput::Elements(nonces));
    group.bench_function(format!("{} {}", gpu.info().path, adapter), |b| {
        b.iter(|| {
            gpu.search(&job, black_box(NonceRange::new(1 << 31, nonces)), &stop)
                .map(|outcome| outcome.hashes)
        })
    });
    group.finish();
}

criterion_group!(benches, gpu_search);
criterion_main!(benches);
