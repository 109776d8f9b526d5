//! GPU kernels vs their CPU twin on random inputs: median and trimmed mean must match exactly
//! (IEEE `==`), the mean within float rounding. Runs on any adapter, lavapipe included.
//!
//! Mean tolerance: both sides sum K values and scale by 1/K; a driver may reorder the sum, so
//! |gpu − cpu| ≤ K·ε·mean|x| + 2ε·|cpu| (ε = f32::EPSILON), the recursive-summation bound
//! for two orders. In practice lavapipe matches bit for bit.

use hashgrad::gpu::DeviceChoice;
use hashgrad::train::TrainConfig;
use hashgrad::train::aggregate::{AggregateError, GpuReducer, Reducer, Rule, cpu};
use hashgrad::train::simulation::run;
use hashgrad::train::{Dataset, attack::Attack};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_inputs(rng: &mut ChaCha8Rng, k: usize, n: usize) -> Vec<Vec<f32>> {
    (0..k)
        .map(|_| {
            (0..n)
                .map(|_| {
                    // Mixed magnitudes, exact ties and signed zeros exercise the sort.
                    match rng.random_range(0..10) {
                        0 => 0.0,
                        1 => -0.0,
                        2 => rng.random_range(-3i32..3) as f32,
                        3 => rng.random_range(-1e6f32..1e6),
                        _ => rng.random_range(-1.0f32..1.0),
                    }
                })
                .collect()
        })
        .collect()
}

fn rules_for(k: usize) -> Vec<Rule> {
    let mut rules = vec![Rule::Mean, Rule::Median];
    for trim in [1, k / 4, (k - 1) / 2] {
        if trim >= 1 && k > 2 * trim && !rules.contains(&Rule::TrimmedMean { trim }) {
            rules.push(Rule::TrimmedMean { trim });
        }
    }
    if k >= 5 {
        rules.push(Rule::Krum {
            byzantine: 1,
            select: 2,
        });
    }
    rules
}

fn assert_agree(rule: &Rule, inputs: &[&[f32]], gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len());
    let k = inputs.len();
    for (j, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let exact = matches!(rule, Rule::Median | Rule::TrimmedMean { .. });
        if exact {
            assert!(g == c, "{rule} K={k} coordinate {j}: gpu {g} != cpu {c}");
        } else {
            let abs_mean = inputs.iter().map(|x| x[j].abs()).sum::<f32>() / k as f32;
            let tolerance = k as f32 * f32::EPSILON * abs_mean + 2.0 * f32::EPSILON * c.abs();
            assert!(
                (g - c).abs() <= tolerance,
                "{rule} K={k} coordinate {j}: gpu {g} vs cpu {c} (tolerance {tolerance})"
            );
        }
    }
}

#[test]
fn gpu_rules_match_the_cpu_twin_on_random_inputs() {
    let Some(context) = hashgrad::gpu::context_for_tests() else {
        return;
    };
    let mut reducer = GpuReducer::new(context).expect("reduce kernels compile");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for k in [1usize, 2, 3, 5, 16, 64] {
        for n in [1usize, 255, 257, 1000] {
            let inputs = random_inputs(&mut rng, k, n);
            let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
            for rule in rules_for(k) {
                let expected = cpu::reduce(&rule, &refs).expect("cpu");
                let got = reducer.reduce(&rule, &refs).expect("gpu");
                assert_agree(&rule, &refs, &got, &expected);
            }
        }
    }
}

#[test]
fn chunked_reductions_match_unchunked() {
    let Some(context) = hashgrad::gpu::context_for_tests() else {
        return;
    };
    let mut reducer = GpuReducer::new(context)
        .expect("kernels")
        .with_chunk_limit(300);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for (k, n) in [(3usize, 1000usize), (16, 601), (5, 300), (2, 299)] {
        let inputs = random_inputs(&mut rng, k, n);
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut batch = reducer.upload(&refs).expect("upload");
        reducer
            .copy_on_device(&mut batch)
            .expect("copy kernel runs");
        assert_eq!(batch.bytes_moved(), ((k + 1) * n * 4) as u64);
        assert_eq!(batch.chunk_count(), n.div_ceil(300), "K={k} N={n}");
        for rule in rules_for(k) {
            let expected = cpu::reduce(&rule, &refs).expect("cpu");
            let got = reducer.reduce(&rule, &refs).expect("gpu");
            assert_agree(&rule, &refs, &got, &expected);
            if !matches!(rule, Rule::Krum { .. }) {
                reducer.reduce_on_device(&rule, &batch).expect("resident");
                let resident = reducer.download(&batch).expect("download");
                assert_agree(&rule, &refs, &resident, &expected);
            }
        }
    }
}

#[test]
fn gpu_rejects_non_finite_inputs_before_dispatch() {
    let Some(context) = hashgrad::gpu::context_for_tests() else {
        return;
    };
    let mut reducer = GpuReducer::new(context).expect("kernels");
    let good = vec![1.0f32; 10];
    let mut bad = good.clone();
    bad[7] = f32::INFINITY;
    let error = reducer
        .reduce(&Rule::Median, &[&good, &bad, &good])
        .expect_err("Inf must be refused");
    assert!(
        matches!(
            error,
            AggregateError::NonFinite {
                index: 1,
                coordinate: 7,
                ..
            }
        ),
        "{error}"
    );
    bad[7] = f32::NAN;
    assert!(reducer.reduce(&Rule::Mean, &[&bad]).is_err());
    let many: Vec<Vec<f32>> = vec![vec![0.5; 4]; 300];
    let refs: Vec<&[f32]> = many.iter().map(Vec::as_slice).collect();
    assert!(matches!(
        reducer.reduce(&Rule::Median, &refs),
        Err(AggregateError::TooManyInputsForGpu { .. })
    ));
    assert_eq!(
        reducer.reduce(&Rule::Mean, &refs).expect("mean"),
        vec![0.5; 4]
    );
}

#[test]
fn auto_backend_uses_the_gpu_only_on_hardware_and_training_matches_the_cpu() {
    let Some(context) = hashgrad::gpu::context_for_tests() else {
        return;
    };
    let software = context.info.device_type == wgpu::DeviceType::Cpu;
    let auto = Reducer::choose(DeviceChoice::Auto, Some(context.clone())).expect("auto");
    assert_eq!(
        matches!(auto, Reducer::Cpu),
        software,
        "{}",
        auto.describe()
    );
    assert!(matches!(
        Reducer::choose(DeviceChoice::Gpu, None),
        Err(AggregateError::Gpu(_))
    ));
    // Median and trimmed mean agree exactly, so a whole training run on the GPU ends in the
    // same state (same hash) as on the CPU.
    let data = Dataset::digits().expect("digits");
    for rule in [Rule::Median, Rule::TrimmedMean { trim: 1 }] {
        let config = TrainConfig {
            workers: 5,
            byzantine: 1,
            attack: Attack::Noise,
            rule,
            ..TrainConfig::default()
        };
        let gpu = Reducer::choose(DeviceChoice::Gpu, Some(context.clone())).expect("gpu");
        let (on_gpu, _) = run(&config, &data, gpu, 15).expect("gpu run");
        let (on_cpu, _) = run(&config, &data, Reducer::Cpu, 15).expect("cpu run");
        assert_eq!(
            on_gpu.trainer().state_hash(),
            on_cpu.trainer().state_hash(),
            "{rule}"
        );
    }
}
