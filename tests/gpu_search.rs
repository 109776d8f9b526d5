//! The GPU backend against the plain `sha2` reference, on any Vulkan adapter (lavapipe in CI):
//! random headers and targets (hard, easy, exactly at a hash), the 2^32 wrap, ranges that are
//! not a multiple of the dispatch size, single nonces, a target so easy that the candidate
//! buffer overflows, and the stop flag. Ranges are small: lavapipe hashes a few MH/s.

use std::time::Duration;

use hashgrad::hash::gpu::{GpuBackend, GpuSearchConfig, JobLoads, KernelVariant, MajForm};
use hashgrad::hash::{Backend, HashError, Job, NonceRange, SearchOutcome, StopFlag, reference};
use hashgrad::pow::{Target, U256};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Small dispatches (3,000 nonces, not a multiple of the 1,024 per workgroup) so even short
/// ranges take several, both buffer sets and the read-back order get exercised.
fn small_dispatches() -> GpuSearchConfig {
    GpuSearchConfig {
        nonces_per_invocation: 4,
        candidate_capacity: 1024,
        dispatch_target: Duration::from_millis(1),
        min_dispatch: 3000,
        max_dispatch: 3000,
        max_workgroups_per_dimension: None,
        variant: KernelVariant::default(),
    }
}

fn backend(config: GpuSearchConfig) -> Option<GpuBackend> {
    let context = hashgrad::gpu::context_for_tests()?;
    Some(GpuBackend::with_context(context, config).expect("kernel builds on the test adapter"))
}

fn random_header(rng: &mut ChaCha8Rng) -> [u8; 80] {
    let mut header = [0u8; 80];
    rng.fill(&mut header[..]);
    header
}

/// A target whose top 32 bits are `top` and the rest random.
fn target_with_top(rng: &mut ChaCha8Rng, top: u32) -> Target {
    let low: u64 = rng.random();
    let high = (u64::from(top) << 32) | u64::from(rng.random::<u32>());
    Target(U256::from_limbs([rng.random(), rng.random(), low, high]))
}

fn search(gpu: &mut GpuBackend, job: &Job, range: NonceRange) -> SearchOutcome {
    gpu.search(job, range, &StopFlag::new())
        .expect("GPU search runs")
}

fn assert_same(gpu: &mut GpuBackend, job: &Job, range: NonceRange) -> SearchOutcome {
    let expected = reference::search(job, range, &StopFlag::new());
    let got = search(gpu, job, range);
    assert_eq!(got.hashes, range.count, "every nonce hashed");
    assert!(!got.stopped);
    assert_eq!(
        got.found, expected.found,
        "GPU and sha2 reference disagree on {range:?} with target {}",
        job.target
    );
    got
}

#[test]
fn random_headers_and_targets_match_the_reference() {
    let Some(mut gpu) = backend(small_dispatches()) else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut found_any = 0;
    for round in 0..4 {
        let header = random_header(&mut rng);
        let start: u32 = rng.random();
        let range = NonceRange::new(start, 7_000 + rng.random_range(0..2_000));
        // Hard: the top word must be zero (about one hash in 2^32).
        let hard = Job {
            header,
            target: target_with_top(&mut rng, 0),
        };
        assert_same(&mut gpu, &hard, range);
        // Medium: about one nonce in 256 qualifies, many in-between candidates are rejected by
        // the host's full comparison.
        let top = 0x00ff_ffff - rng.random_range(0..0x0008_0000);
        let medium = Job {
            header,
            target: target_with_top(&mut rng, top),
        };
        found_any += assert_same(&mut gpu, &medium, range).found.len();
        // Boundary: the target equals the k-th smallest hash of the range (exactly k found),
        // and one less (k - 1 found).
        let mut hashes: Vec<U256> = (0..range.count)
            .map(|i| {
                let nonce = range.nonce(i);
                U256::from_le_bytes(reference::sha256d(&medium_header(&header, nonce)))
            })
            .collect();
        hashes.sort();
        let k = 1 + round * 3;
        let at = Job {
            header,
            target: Target(hashes[k - 1]),
        };
        assert_eq!(assert_same(&mut gpu, &at, range).found.len(), k);
        let below = Job {
            header,
            target: Target(hashes[k - 1] - U256::from(1u8)),
        };
        assert_eq!(assert_same(&mut gpu, &below, range).found.len(), k - 1);
    }
    assert!(
        found_any > 0,
        "medium targets found nothing: the test lost its teeth"
    );
}

fn medium_header(header: &[u8; 80], nonce: u32) -> [u8; 80] {
    let mut with_nonce = *header;
    with_nonce[76..].copy_from_slice(&nonce.to_le_bytes());
    with_nonce
}

#[test]
fn ranges_across_the_wrap_and_single_nonces_match_the_reference() {
    let Some(mut gpu) = backend(small_dispatches()) else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let header = random_header(&mut rng);
    let job = Job {
        header,
        target: target_with_top(&mut rng, 0x01ff_ffff),
    };
    // Across 2^32: 4,000 nonces before the wrap and 3,001 after.
    let wrap = NonceRange::new(u32::MAX - 3_999, 7_001);
    let found = assert_same(&mut gpu, &job, wrap).found;
    assert!(found.iter().any(|f| f.nonce > u32::MAX - 4_000));
    assert!(found.iter().any(|f| f.nonce < 3_001));
    // One nonce, at both ends of the space and in between, with a target every hash meets.
    let every = Job {
        header,
        target: Target::MAX,
    };
    for start in [0, u32::MAX, rng.random()] {
        let got = assert_same(&mut gpu, &every, NonceRange::new(start, 1));
        assert_eq!(got.found.len(), 1);
        assert_eq!(got.found[0].nonce, start);
    }
    let empty = search(&mut gpu, &every, NonceRange::new(5, 0));
    assert_eq!(empty, SearchOutcome::default());
}

#[test]
fn an_easy_target_loses_no_result_when_candidates_overflow() {
    // 64 slots per dispatch of 3,000 nonces: nearly every dispatch overflows and is re-run.
    // The other kernel spellings, generated at run time, so they run on the GPU here too.
    let config = GpuSearchConfig {
        candidate_capacity: 64,
        variant: KernelVariant {
            maj: MajForm::SharedXor,
            job_loads: JobLoads::Inline,
        },
        ..small_dispatches()
    };
    let Some(mut gpu) = backend(config) else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let header = random_header(&mut rng);
    let range = NonceRange::new(u32::MAX - 5_000, 10_000);
    let all = Job {
        header,
        target: Target::MAX,
    };
    let got = assert_same(&mut gpu, &all, range);
    assert_eq!(got.found.len(), 10_000);
    // Half the hashes pass the early reject; about half of those meet the target.
    let half = Job {
        header,
        target: target_with_top(&mut rng, 0x7fff_ffff),
    };
    let got = assert_same(&mut gpu, &half, range);
    assert!(got.found.len() > 4_000 && got.found.len() < 6_000);
}

#[test]
fn a_two_dimensional_grid_covers_every_nonce_once() {
    // 3 workgroups per dimension: a dispatch of 5,000 nonces at 4 per invocation needs 5
    // workgroups of 256, laid out 3 × 2 with one workgroup past the end (it must do nothing).
    let config = GpuSearchConfig {
        max_workgroups_per_dimension: Some(3),
        min_dispatch: 5_000,
        max_dispatch: 5_000,
        ..small_dispatches()
    };
    let Some(mut gpu) = backend(config) else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let header = random_header(&mut rng);
    let range = NonceRange::new(rng.random(), 12_345);
    let every = Job {
        header,
        target: Target::MAX,
    };
    assert_eq!(assert_same(&mut gpu, &every, range).found.len(), 12_345);
    let some = Job {
        header,
        target: target_with_top(&mut rng, 0x00ff_ffff),
    };
    assert_same(&mut gpu, &some, range);
}

#[test]
fn default_configuration_matches_the_reference() {
    // The real dispatch sizes (one dispatch covers the range) and 64 nonces per invocation.
    let Some(mut gpu) = backend(GpuSearchConfig::default()) else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let job = Job {
        header: random_header(&mut rng),
        target: target_with_top(&mut rng, 0x00ff_ffff),
    };
    let got = assert_same(&mut gpu, &job, NonceRange::new(rng.random(), 40_000));
    assert!(!got.found.is_empty());
}

#[test]
fn the_stop_flag_ends_a_search_between_dispatches() {
    let Some(mut gpu) = backend(small_dispatches()) else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let job = Job {
        header: random_header(&mut rng),
        target: target_with_top(&mut rng, 0x00ff_ffff),
    };
    let stop = StopFlag::new();
    stop.stop();
    let got = gpu.search(&job, NonceRange::FULL, &stop).expect("search");
    assert!(got.stopped);
    assert_eq!(got.hashes, 0);
    assert!(got.found.is_empty());

    // Raised from another thread while all 2^32 nonces are being searched.
    stop.reset();
    let raiser = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            stop.stop();
        })
    };
    let start = rng.random();
    let got = gpu
        .search(&job, NonceRange::new(start, 1 << 32), &stop)
        .expect("search");
    raiser.join().expect("stop thread");
    assert!(got.stopped);
    assert!(got.hashes > 0 && got.hashes < 1 << 32);
    assert_eq!(got.hashes % 3000, 0, "whole dispatches only");
    // What was hashed is a prefix of the range, with exactly the reference's results.
    let done = NonceRange::new(start, got.hashes);
    let expected = reference::search(&job, done, &StopFlag::new());
    assert_eq!(got.found, expected.found);
}

#[test]
fn a_lost_device_is_reported_as_device_lost() {
    let Some(mut gpu) = backend(small_dispatches()) else {
        return;
    };
    let job = Job {
        header: [7; 80],
        target: Target::MAX,
    };
    assert_same(&mut gpu, &job, NonceRange::new(0, 100));
    // Destroying the device is what a driver reset looks like to wgpu: the lost callback fires.
    gpu.context().device.destroy();
    match gpu.search(&job, NonceRange::new(0, 100), &StopFlag::new()) {
        Err(HashError::DeviceLost(reason)) => eprintln!("device lost as expected: {reason}"),
        other => panic!("expected DeviceLost, got {other:?}"),
    }
}

#[test]
fn an_adapter_that_does_not_exist_is_no_adapter() {
    // With or without a GPU: the CLI turns this into a clear message and exit code 2.
    let choice = hashgrad::gpu::AdapterChoice::Name("no-such-adapter-7f3a".into());
    match GpuBackend::open(&choice) {
        Err(HashError::NoAdapter(detail)) => assert!(!detail.is_empty()),
        other => panic!("expected NoAdapter, got {other:?}"),
    }
}
