//! The CPU `Backend`: picks the fastest sha256d path this processor runs (AVX-512 16 lanes,
//! SHA-NI in interleaved streams, AVX2 8 lanes, or portable `sha2`), splits a nonce range
//! over worker threads (one per core by default), and checks every candidate of a path's early
//! reject fully against the target.
//!
//! The paths only find candidates (a hash's last word within the target's top word); the full
//! 256-bit comparison happens here, once per candidate, so no path can report a wrong nonce.

mod avx2;
mod avx512;
mod lanes;
mod midstate;
mod portable;
mod shani;

use std::fmt;
use std::str::FromStr;

use super::{
    Backend, BackendInfo, BackendKind, HashError, Job, NonceRange, SearchOutcome, StopFlag,
};
use midstate::{JobConstants, full_check};

/// Nonces a worker hashes between two looks at the `StopFlag` (about a millisecond).
const CHUNK: u32 = 8192;
/// Below this many nonces per thread, extra threads cost more than they save.
const MIN_NONCES_PER_THREAD: u64 = 4096;

/// One way of computing sha256d on this processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CpuPath {
    /// 16 nonces per AVX-512F vector.
    Avx512x16,
    /// SHA-NI, two nonces in interleaved streams.
    ShaNi2x,
    /// SHA-NI, four nonces in interleaved streams.
    ShaNi4x,
    /// 8 nonces per AVX2 vector.
    Avx2x8,
    /// Two `sha2::compress256` calls per nonce; runs anywhere.
    Portable,
}

impl CpuPath {
    /// Every path, in the order `best` prefers them: AVX-512 beats SHA-NI by about 1.65× on
    /// Zen 4 (cpuminer-opt) and 2.1× on the Xeon of docs/perf.md, two SHA-NI streams beat four
    /// (which spill registers) on Zen 1 and on that Xeon, SHA-NI beats AVX2 everywhere
    /// measured (2.9× on the first-generation Zen dev machine, which splits 256-bit
    /// operations). `why_preferred` says the same per path.
    pub const ALL: [CpuPath; 5] = [
        CpuPath::Avx512x16,
        CpuPath::ShaNi2x,
        CpuPath::ShaNi4x,
        CpuPath::Avx2x8,
        CpuPath::Portable,
    ];

    /// The name `bench` and `BackendInfo::path` show, e.g. `avx2-8way`.
    pub fn name(self) -> &'static str {
        match self {
            CpuPath::Avx512x16 => "avx512-16way",
            CpuPath::ShaNi2x => "sha-ni-2x",
            CpuPath::ShaNi4x => "sha-ni-4x",
            CpuPath::Avx2x8 => "avx2-8way",
            CpuPath::Portable => "portable",
        }
    }

    /// True when this processor can run the path.
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                CpuPath::Avx512x16 => std::arch::is_x86_feature_detected!("avx512f"),
                CpuPath::ShaNi2x | CpuPath::ShaNi4x => {
                    std::arch::is_x86_feature_detected!("sha")
                        && std::arch::is_x86_feature_detected!("sse4.1")
                }
                CpuPath::Avx2x8 => std::arch::is_x86_feature_detected!("avx2"),
                CpuPath::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == CpuPath::Portable
        }
    }

    /// Why `best` takes this path when it is the first one the processor runs: the feature
    /// that was found and the measurement behind its place in `ALL`.
    pub fn why_preferred(self) -> &'static str {
        match self {
            CpuPath::Avx512x16 => {
                "AVX-512F present: 16 nonces per instruction, ahead of SHA-NI where measured \
                 (Zen 4, Sapphire Rapids-class Xeon; docs/perf.md)"
            }
            CpuPath::ShaNi2x => {
                "SHA-NI present, no AVX-512F: two interleaved streams, ahead of four (which \
                 spill registers) and of AVX2 where measured (docs/perf.md)"
            }
            CpuPath::ShaNi4x => "SHA-NI present: four streams, behind two where measured",
            CpuPath::Avx2x8 => "AVX2 present, no SHA-NI or AVX-512F: 8 nonces per instruction",
            CpuPath::Portable => "no AVX-512F, SHA-NI or AVX2 detected: sha2's compress256",
        }
    }

    /// The paths this processor can run, fastest first.
    pub fn available() -> Vec<CpuPath> {
        CpuPath::ALL
            .into_iter()
            .filter(|p| p.is_supported())
            .collect()
    }

    /// The fastest path this processor can run.
    pub fn best() -> CpuPath {
        CpuPath::available()
            .first()
            .copied()
            .unwrap_or(CpuPath::Portable)
    }

    /// Appends the nonces of `start .. start + count` (wrapping) whose hash may meet the target
    /// to `candidates`, in nonce order. The caller has checked `is_supported`.
    fn scan(self, c: &JobConstants, start: u32, count: u32, candidates: &mut Vec<u32>) {
        #[cfg(target_arch = "x86_64")]
        {
            debug_assert!(self.is_supported());
            // SAFETY: `CpuBackend` only holds a path whose `is_supported()` was true, which
            // checked the target features each `scan` is compiled for.
            unsafe {
                match self {
                    CpuPath::Avx512x16 => avx512::scan(c, start, count, candidates),
                    CpuPath::ShaNi2x => shani::scan::<2>(c, start, count, candidates),
                    CpuPath::ShaNi4x => shani::scan::<4>(c, start, count, candidates),
                    CpuPath::Avx2x8 => avx2::scan(c, start, count, candidates),
                    CpuPath::Portable => portable::scan(c, start, count, candidates),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        portable::scan(c, start, count, candidates);
    }
}

impl fmt::Display for CpuPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CpuPath {
    type Err = HashError;
    fn from_str(text: &str) -> Result<CpuPath, HashError> {
        CpuPath::ALL
            .into_iter()
            .find(|p| p.name() == text.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = CpuPath::ALL.iter().map(|p| p.name()).collect();
                HashError::UnknownCpuPath {
                    name: text.to_string(),
                    known: names.join(", "),
                }
            })
    }
}

/// The processor's brand string (e.g. `AMD EPYC 7B13`), or a generic name.
pub fn cpu_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        let max_extended = __cpuid(0x8000_0000).eax;
        if max_extended >= 0x8000_0004 {
            let mut bytes = Vec::with_capacity(48);
            for leaf in 0x8000_0002u32..=0x8000_0004 {
                let r = __cpuid(leaf);
                for reg in [r.eax, r.ebx, r.ecx, r.edx] {
                    bytes.extend_from_slice(&reg.to_le_bytes());
                }
            }
            let name = String::from_utf8_lossy(&bytes)
                .trim_matches(char::from(0))
                .trim()
                .to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    format!("{} CPU", std::env::consts::ARCH)
}

/// Worker threads when none are asked for: one per core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU backend: one path, a number of worker threads.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    path: CpuPath,
    threads: usize,
    device: String,
}

impl CpuBackend {
    /// The fastest path on `threads` workers (default: one per core).
    pub fn new(threads: Option<usize>) -> CpuBackend {
        CpuBackend {
            path: CpuPath::best(),
            threads: threads.unwrap_or_else(default_threads).max(1),
            device: cpu_name(),
        }
    }

    /// A specific path (tests and `bench` use this); an error if the processor lacks it.
    pub fn with_path(path: CpuPath, threads: usize) -> Result<CpuBackend, HashError> {
        if !path.is_supported() {
            return Err(HashError::CpuPathUnsupported(path.name().to_string()));
        }
        Ok(CpuBackend {
            path,
            threads: threads.max(1),
            device: cpu_name(),
        })
    }

    /// The path this backend runs.
    pub fn path(&self) -> CpuPath {
        self.path
    }

    /// Worker threads per search.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

/// One worker's share: hashes `range` chunk by chunk until done or stopped.
fn search_part(
    path: CpuPath,
    job: &Job,
    c: &JobConstants,
    range: NonceRange,
    stop: &StopFlag,
) -> SearchOutcome {
    let mut outcome = SearchOutcome::default();
    let mut candidates = Vec::new();
    let mut offset = 0u64;
    while offset < range.count {
        if stop.is_stopped() {
            outcome.stopped = true;
            break;
        }
        let count = (range.count - offset).min(u64::from(CHUNK)) as u32;
        candidates.clear();
        path.scan(c, range.nonce(offset), count, &mut candidates);
        outcome.found.extend(
            candidates
                .iter()
                .filter_map(|&nonce| full_check(job, c, nonce)),
        );
        outcome.hashes += u64::from(count);
        offset += u64::from(count);
    }
    outcome
}

impl Backend for CpuBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Cpu,
            device: self.device.clone(),
            path: self.path.name().to_string(),
            threads: self.threads,
        }
    }

    fn search(
        &mut self,
        job: &Job,
        range: NonceRange,
        stop: &StopFlag,
    ) -> Result<SearchOutcome, HashError> {
        let c = JobConstants::new(job);
        let workers = (range.count.div_ceil(MIN_NONCES_PER_THREAD) as usize).clamp(1, self.threads);
        let parts = range.split(workers);
        if parts.len() == 1 {
            return Ok(search_part(self.path, job, &c, range, stop));
        }
        let path = self.path;
        let outcomes: Vec<SearchOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .map(|&part| {
                    let c = &c;
                    scope.spawn(move || search_part(path, job, c, part, stop))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut merged = SearchOutcome::default();
        for outcome in outcomes {
            merged.found.extend(outcome.found);
            merged.hashes += outcome.hashes;
            merged.stopped |= outcome.stopped;
        }
        Ok(merged)
    }
}

/// Candidates-then-full-check on one thread, for tests of a single path without threads.
#[cfg(test)]
fn search_single_thread(
    path: CpuPath,
    job: &Job,
    range: NonceRange,
) -> Result<Vec<super::Found>, HashError> {
    if !path.is_supported() {
        return Err(HashError::CpuPathUnsupported(path.name().to_string()));
    }
    let c = JobConstants::new(job);
    Ok(search_part(path, job, &c, range, &StopFlag::new()).found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::reference;
    use crate::target::Target;

    fn job(target: Target) -> Job {
        let mut header = [0u8; 80];
        for (i, byte) in header.iter_mut().enumerate() {
            *byte = (i as u8).wrapping_mul(13).wrapping_add(1);
        }
        Job { header, target }
    }

    #[test]
    fn every_available_path_matches_the_reference_on_an_easy_target() {
        // Top word 0x0fffffff: about one nonce in sixteen qualifies, with many near misses
        // that pass the early reject and fail the full check.
        let mut limbs = [u64::MAX; 4];
        limbs[3] = 0x0fff_ffff_0000_0000;
        let job = job(Target(crate::target::U256::from_limbs(limbs)));
        let range = NonceRange::new(u32::MAX - 100, 700);
        let expected = reference::search(&job, range, &StopFlag::new()).found;
        assert!(expected.len() > 10);
        for path in CpuPath::available() {
            let found = search_single_thread(path, &job, range).expect("supported");
            assert_eq!(found, expected, "path {path}");
        }
    }

    #[test]
    fn a_raised_stop_flag_ends_the_search_early() {
        let stop = StopFlag::new();
        stop.stop();
        let mut backend = CpuBackend::new(Some(2));
        let outcome = backend
            .search(&job(Target::MAX), NonceRange::new(0, 1 << 20), &stop)
            .expect("cpu search");
        assert!(outcome.stopped);
        assert_eq!(outcome.hashes, 0);
    }

    #[test]
    fn path_names_round_trip_and_unknown_names_are_refused() {
        for path in CpuPath::ALL {
            assert_eq!(path.name().parse::<CpuPath>().ok(), Some(path));
        }
        let error = "sse9".parse::<CpuPath>().expect_err("unknown");
        assert!(matches!(error, HashError::UnknownCpuPath { .. }), "{error}");
        assert!(error.to_string().contains("portable"), "{error}");
        assert!(CpuPath::available().contains(&CpuPath::Portable));
    }
}
