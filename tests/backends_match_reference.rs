//! Every available CPU path (and the GPU, when `select` can open one) against the plain `sha2`
//! reference: random headers, random targets (easy, hard, random, and exactly at a hash),
//! ranges crossing the 2^32 wrap, an easy target where most nonces qualify, and ranges split
//! across threads.

use std::cell::RefCell;

use hashgrad::gpu::{AdapterChoice, DeviceChoice};
use hashgrad::hash::cpu::{CpuBackend, CpuPath};
use hashgrad::hash::select::open_backend;
use hashgrad::hash::{Backend, Job, NonceRange, StopFlag, reference};
use hashgrad::pow::{Target, U256};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Every CPU path this processor runs, on `threads` workers, plus the GPU if one opens.
fn backends(threads: usize) -> Vec<Box<dyn Backend>> {
    let mut all: Vec<Box<dyn Backend>> = CpuPath::available()
        .into_iter()
        .map(|path| {
            Box::new(CpuBackend::with_path(path, threads).expect("available")) as Box<dyn Backend>
        })
        .collect();
    match open_backend(DeviceChoice::Gpu, &AdapterChoice::Auto, None) {
        Ok(gpu) => all.push(gpu),
        Err(error) => {
            let required = std::env::var(hashgrad::gpu::REQUIRE_GPU_ENV).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{}=1 but the GPU backend did not open: {error}",
                hashgrad::gpu::REQUIRE_GPU_ENV
            );
            // Past the harness's capture, so the skip shows in a normal run.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("skipped (GPU part): no GPU adapter ({error})\n"),
            );
        }
    }
    all
}

fn check_all(
    backends: &mut [Box<dyn Backend>],
    job: &Job,
    range: NonceRange,
) -> Result<(), TestCaseError> {
    let expected = reference::search(job, range, &StopFlag::new());
    for backend in backends.iter_mut() {
        let outcome = backend
            .search(job, range, &StopFlag::new())
            .map_err(|e| TestCaseError::fail(format!("{}: {e}", backend.info().path)))?;
        prop_assert_eq!(
            &outcome.found,
            &expected.found,
            "{} on {:?}",
            backend.info().path,
            range
        );
        prop_assert_eq!(outcome.hashes, range.count);
        prop_assert!(!outcome.stopped);
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum TargetKind {
    /// `MAX >> shift`: shift 0..8 is easy, 32..64 Bitcoin-hard.
    Shifted(u32),
    /// Any 256-bit value.
    Random([u64; 4]),
    /// Exactly the hash of the range's `pick`-th nonce, minus `below` (0 or 1).
    AtHash { pick: u64, below: bool },
}

fn target_kind() -> impl Strategy<Value = TargetKind> {
    prop_oneof![
        (0u32..8).prop_map(TargetKind::Shifted),
        (8u32..40).prop_map(TargetKind::Shifted),
        (32u32..72).prop_map(TargetKind::Shifted),
        any::<[u64; 4]>().prop_map(TargetKind::Random),
        (any::<u64>(), any::<bool>()).prop_map(|(pick, below)| TargetKind::AtHash { pick, below }),
    ]
}

fn start_nonce() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (0u32..600).prop_map(|back| u32::MAX - back),
        0u32..64
    ]
}

#[test]
fn every_backend_returns_what_the_reference_returns() {
    let backends = RefCell::new(backends(1));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(any::<u8>(), 80),
        start_nonce(),
        1u64..700,
        target_kind(),
    );
    runner
        .run(&strategy, |(header, start, count, kind)| {
            let header: [u8; 80] = header.try_into().expect("80 bytes");
            let range = NonceRange::new(start, count);
            let target = match kind {
                TargetKind::Shifted(shift) => Target(U256::MAX >> shift as usize),
                TargetKind::Random(limbs) => Target(U256::from_limbs(limbs)),
                TargetKind::AtHash { pick, below } => {
                    let probe = Job {
                        header,
                        target: Target::MAX,
                    };
                    let hash =
                        reference::sha256d(&probe.header_with_nonce(range.nonce(pick % count)));
                    let at = U256::from_le_bytes(hash);
                    Target(if below {
                        at.saturating_sub(U256::from(1u8))
                    } else {
                        at
                    })
                }
            };
            check_all(&mut backends.borrow_mut(), &Job { header, target }, range)
        })
        .expect("all backends agree with the reference");
}

#[test]
fn easy_targets_lose_no_result_and_threads_split_across_the_wrap() {
    let mut backends = backends(3);
    let header: [u8; 80] = std::array::from_fn(|i| (i * 37 + 11) as u8);
    // 30 000 nonces over 3 threads, crossing 0xffffffff → 0.
    let range = NonceRange::new(u32::MAX - 14_999, 30_000);
    for target in [Target::MAX, Target(U256::MAX >> 1), Target(U256::MAX >> 7)] {
        let job = Job { header, target };
        check_all(&mut backends, &job, range).expect("agree");
    }
    let every = reference::search(
        &Job {
            header,
            target: Target::MAX,
        },
        range,
        &StopFlag::new(),
    );
    assert_eq!(
        every.found.len(),
        30_000,
        "MAX target: every nonce qualifies"
    );
}

#[test]
fn a_stop_flag_raised_mid_search_stops_every_path_promptly() {
    let header = [3u8; 80];
    let job = Job {
        header,
        target: Target(U256::MAX >> 40),
    };
    for path in CpuPath::available() {
        let mut backend = CpuBackend::with_path(path, 2).expect("available");
        let stop = StopFlag::new();
        let raiser = stop.clone();
        let timer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            raiser.stop();
        });
        let started = std::time::Instant::now();
        let outcome = backend
            .search(&job, NonceRange::FULL, &stop)
            .expect("search");
        timer.join().expect("timer");
        assert!(outcome.stopped, "{path}");
        assert!(outcome.hashes < NonceRange::FULL.count, "{path}");
        // A generous bound: stopping is checked every few thousand nonces.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{path}"
        );
    }
}
