//! Reduction throughput in GB/s of bytes moved, (K + 1)·N·4 (K inputs read, one output
//! written), per rule and backend, against a plain copy of the same number of bytes measured
//! in the same run: CPU `copy_from_slice` over the same threads, GPU the WGSL copy kernel. On
//! the CPU also a read-only pass over the inputs (`cpu/read`: the mean's reads, no writes).
//! Also the default model's mini-batch gradient and one training round with K = 4.
//!
//! K = 4, 16, 64, 256. N = 1M floats by default; `HASHGRAD_BENCH_BIG=1` adds N = 32M (K = 64
//! then needs 8 GiB of inputs, K = 256 32 GiB; each is skipped, with a message, where memory is
//! short). `HASHGRAD_BENCH_GPU=0` skips the GPU. Ratios: see docs/perf.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hashgrad::gpu::{AdapterChoice, GpuContext};
use hashgrad::train::TrainConfig;
use hashgrad::train::aggregate::{GpuReducer, Rule, cpu};
use hashgrad::train::model::Workspace;
use hashgrad::train::simulation::Simulation;
use hashgrad::train::{Dataset, Reducer};

const MIB: usize = 1 << 20;

fn sizes() -> Vec<usize> {
    let mut sizes = vec![MIB];
    if std::env::var("HASHGRAD_BENCH_BIG").is_ok_and(|v| v == "1") {
        sizes.push(32 * MIB);
    }
    sizes
}

/// MemAvailable from /proc/meminfo in bytes (None where unknown).
fn available_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn rules(k: usize) -> Vec<Rule> {
    vec![
        Rule::Mean,
        Rule::Median,
        Rule::TrimmedMean {
            trim: (k / 8).max(1),
        },
    ]
}

fn label(rule: &Rule) -> &'static str {
    rule.name()
}

/// The CPU baseline: copy `source` into `target` split over the reduction's threads.
fn parallel_copy(source: &[f32], target: &mut [f32]) {
    let threads = cpu::threads();
    let chunk = source.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (from, to) in source.chunks(chunk).zip(target.chunks_mut(chunk)) {
            scope.spawn(move || to.copy_from_slice(from));
        }
    });
}

/// The read-only baseline: every input's coordinates read once (XOR-folded so nothing is
/// optimised away), split over the reduction's threads by coordinate ranges as the mean is.
/// It moves K·N·4 bytes, the mean's reads without its N·4 written, so mean / read near 1 says
/// the mean runs at the machine's read rate for this access pattern.
fn parallel_read(inputs: &[&[f32]]) -> u32 {
    let n = inputs.first().map_or(0, |input| input.len());
    let threads = cpu::threads();
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|lo| {
                scope.spawn(move || {
                    inputs.iter().fold(0u32, |acc, input| {
                        input[lo..(lo + chunk).min(n)]
                            .iter()
                            .fold(acc, |a, x| a ^ x.to_bits())
                    })
                })
            })
            .collect();
        parts
            .into_iter()
            .map(|part| part.join().unwrap_or(0))
            .fold(0, |a, b| a ^ b)
    })
}

fn gpu() -> Option<GpuContext> {
    if std::env::var("HASHGRAD_BENCH_GPU").is_ok_and(|v| v == "0") {
        eprintln!("skipped GPU: HASHGRAD_BENCH_GPU=0");
        return None;
    }
    match GpuContext::open(&AdapterChoice::Auto) {
        Ok(context) => Some(context),
        Err(e) => {
            eprintln!("skipped GPU: no GPU adapter ({e})");
            None
        }
    }
}

fn reduce_benches(c: &mut Criterion) {
    let mut gpu = gpu().and_then(|context| GpuReducer::new(context).ok());
    let memory = available_memory();
    for n in sizes() {
        for k in [4usize, 16, 64, 256] {
            let bytes = (k + 1) * n * 4;
            // Inputs + output + copy source/target ≈ 2× the bytes moved.
            if memory.is_some_and(|m| 2 * bytes > m * 3 / 4) {
                eprintln!(
                    "skipped K={k} N={}M: needs about {} GiB, {} GiB available",
                    n / MIB,
                    (2 * bytes) >> 30,
                    memory.unwrap_or(0) >> 30
                );
                continue;
            }
            let inputs: Vec<Vec<f32>> = (0..k)
                .map(|i| {
                    (0..n)
                        .map(|j| ((i * 7919 + j * 104_729) % 2001) as f32 * 1e-3 - 1.0)
                        .collect()
                })
                .collect();
            let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            let mut group = c.benchmark_group(format!("reduce/K={k}/N={}M", n / MIB));
            group.throughput(Throughput::Bytes(bytes as u64));
            group.sample_size(10);
            group.warm_up_time(Duration::from_millis(500));
            group.measurement_time(Duration::from_secs(3));

            // The copy reads copy_len floats and writes as many: (K + 1)·N·4 bytes moved,
            // the same figure the reductions are credited with (K·N read + N written).
            let copy_len = ((k + 1) * n).div_ceil(2);
            let source = vec![1.0f32; copy_len];
            let mut target = vec![0.0f32; copy_len];
            group.bench_function(BenchmarkId::new("cpu", "copy"), |b| {
                b.iter(|| parallel_copy(black_box(&source), black_box(&mut target)))
            });
            drop((source, target));
            group.bench_function(BenchmarkId::new("cpu", "read"), |b| {
                b.iter(|| parallel_read(black_box(&refs)))
            });
            // The output buffer is reused, as an aggregator does round after round (a fresh
            // allocation would add page faults the copy baseline does not pay).
            let mut out = vec![0.0f32; n];
            for rule in rules(k) {
                group.bench_function(BenchmarkId::new("cpu", label(&rule)), |b| {
                    b.iter(|| cpu::reduce_into(&rule, black_box(&refs), &mut out).expect("reduce"))
                });
            }
            drop(out);
            if let Some(reducer) = gpu.as_mut() {
                match reducer.upload(&refs) {
                    Ok(mut batch) => {
                        group.bench_function(BenchmarkId::new("gpu", "copy"), |b| {
                            b.iter(|| reducer.copy_on_device(&mut batch).expect("copy"))
                        });
                        for rule in rules(k) {
                            group.bench_function(BenchmarkId::new("gpu", label(&rule)), |b| {
                                b.iter(|| reducer.reduce_on_device(&rule, &batch).expect("reduce"))
                            });
                        }
                    }
                    Err(e) => eprintln!("skipped GPU K={k} N={}M: {e}", n / MIB),
                }
            }
            group.finish();
        }
    }
}

fn training_benches(c: &mut Criterion) {
    let data = Dataset::digits().expect("digits");
    let config = TrainConfig::default();
    let mut simulation = Simulation::new(&config, &data, Reducer::Cpu).expect("simulation");
    let mut group = c.benchmark_group("train");
    group.bench_function("round/default-model/K=4/cpu", |b| {
        b.iter(|| simulation.run_round().expect("round"))
    });
    let model = simulation.trainer().model().expect("the MLP").clone();
    let params = simulation.trainer().params().to_vec();
    let x = &data.features()[..32 * data.width()];
    let labels = &data.labels()[..32];
    let (mut grad, mut work) = (Vec::new(), Workspace::default());
    group.bench_function("gradient/64-64-10/batch=32", |b| {
        b.iter(|| {
            model
                .gradient(&params, black_box(x), labels, &mut grad, &mut work)
                .expect("gradient")
        })
    });
    group.finish();
}

criterion_group!(benches, training_benches, reduce_benches);
criterion_main!(benches);
