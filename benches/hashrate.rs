//! sha256d throughput: every CPU path on one thread and on all cores, the plain `sha2`
//! two-call reference and the `compress256` + midstate baseline (the `portable` path) in the
//! same run, and the GPU through `select` when one opens.
//!
//! `cargo bench --bench hashrate`; criterion reports nonces per second as "elements/s".

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgrad::gpu::{AdapterChoice, DeviceChoice};
use hashgrad::hash::cpu::{CpuBackend, CpuPath, default_threads};
use hashgrad::hash::select::open_backend;
use hashgrad::hash::{Backend, Job, NonceRange, StopFlag, reference};
use hashgrad::pow::{CompactBits, Target};

/// Nonces per iteration.
const NONCES: u64 = 1 << 18;

fn job() -> Job {
    let header: [u8; 80] = std::array::from_fn(|i| (i * 29 + 3) as u8);
    Job {
        header,
        target: Target::from_compact(CompactBits(0x1d00ffff)).expect("genesis bits"),
    }
}

fn hashrate(c: &mut Criterion) {
    let job = job();
    let range = NonceRange::new(0, NONCES);
    let mut group = c.benchmark_group("sha256d");
    group.throughput(Throughput::Elements(NONCES));
    group.sample_size(10);

    group.bench_function("sha2-two-call/1", |b| {
        b.iter(|| reference::search(&job, range, &StopFlag::new()))
    });
    let mut thread_counts = vec![1];
    if default_threads() > 1 {
        thread_counts.push(default_threads());
    }
    for path in CpuPath::available() {
        for &threads in &thread_counts {
            let mut backend = CpuBackend::with_path(path, threads).expect("available path");
            // The portable path is the `compress256` + midstate baseline.
            group.bench_function(format!("{path}/{threads}"), |b| {
                b.iter(|| {
                    backend
                        .search(&job, range, &StopFlag::new())
                        .expect("search")
                })
            });
        }
    }
    match open_backend(DeviceChoice::Gpu, &AdapterChoice::Auto, None) {
        Ok(mut gpu) => {
            let name = format!("gpu {}", gpu.info().device);
            let big = NonceRange::new(0, 1 << 24);
            group.throughput(Throughput::Elements(big.count));
            group.bench_function(name, |b| {
                b.iter(|| gpu.search(&job, big, &StopFlag::new()).expect("gpu search"))
            });
        }
        Err(error) => eprintln!("skipped: no GPU adapter ({error})"),
    }
    group.finish();
}

criterion_group!(benches, hashrate);
criterion_main!(benches);
