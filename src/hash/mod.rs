//! The sha256d nonce-search engine: `Job`, nonce ranges, the `Backend` trait and its
//! implementations (CPU paths in `cpu`, the wgpu kernel in `gpu`), plus the plain `sha2`
//! reference every backend is tested against.
//!
//! Knows nothing of blocks or chains: a job is 80 header bytes and a target.

pub mod cpu;
pub mod gpu;
pub mod reference;
pub mod select;
mod sha256;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::target::Target;

/// Bytes in a Bitcoin-layout block header.
pub const HEADER_LEN: usize = 80;
/// Byte offset of the little-endian nonce inside the header.
pub const NONCE_OFFSET: usize = 76;

/// One unit of search work: a header template (its nonce field is ignored) and a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The 80-byte header to hash; bytes 76..80 are replaced by each nonce tried.
    pub header: [u8; HEADER_LEN],
    /// A nonce qualifies when the header's sha256d, read little-endian, is ≤ this.
    pub target: Target,
}

impl Job {
    /// The header with `nonce` written into bytes 76..80.
    pub fn header_with_nonce(&self, nonce: u32) -> [u8; HEADER_LEN] {
        let mut header = self.header;
        header[NONCE_OFFSET..].copy_from_slice(&nonce.to_le_bytes());
        header
    }
}

/// A contiguous run of nonces, `start, start+1, …` taken modulo 2^32, `count` ≤ 2^32 of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceRange {
    /// The first nonce.
    pub start: u32,
    /// How many nonces, 0 to 2^32.
    pub count: u64,
}

impl NonceRange {
    /// All 2^32 nonces.
    pub const FULL: NonceRange = NonceRange {
        start: 0,
        count: 1 << 32,
    };

    /// A range of `count` nonces from `start`; `count` is capped at 2^32.
    pub fn new(start: u32, count: u64) -> NonceRange {
        NonceRange {
            start,
            count: count.min(1 << 32),
        }
    }

    /// The `i`-th nonce of the range (wrapping past `u32::MAX`).
    pub fn nonce(&self, i: u64) -> u32 {
        self.start.wrapping_add(i as u32)
    }

    /// Splits into `parts` nearly equal consecutive sub-ranges (fewer if the range is small).
    pub fn split(&self, parts: usize) -> Vec<NonceRange> {
        let parts = (parts.max(1) as u64).min(self.count.max(1));
        let base = self.count / parts;
        let extra = self.count % parts;
        let mut offset = 0u64;
        (0..parts)
            .map(|i| {
                let len = base + u64::from(i < extra);
                let part = NonceRange::new(self.nonce(offset), len);
                offset += len;
                part
            })
            .collect()
    }
}

/// A nonce whose header hash meets the job's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The nonce that, written into the header, meets the target.
    pub nonce: u32,
    /// sha256d of the header, in the byte order SHA-256 produced (reverse it for display).
    pub hash: [u8; 32],
}

/// What a search returns: every qualifying nonce in range order, and how much was hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchOutcome {
    /// Every qualifying nonce among those hashed, in range order.
    pub found: Vec<Found>,
    /// Nonces actually hashed (less than the range's count if the search was stopped).
    pub hashes: u64,
    /// True when a `StopFlag` ended the search early.
    pub stopped: bool,
}

/// Lets a caller abandon a search in progress (a new chain tip makes the job stale).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not raised; clones share it.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }
    /// Raises the flag: searches holding a clone return at their next check.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// True once `stop` was called (and `reset` not since).
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// Lowers the flag so it can serve the next search.
    pub fn reset(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Which family of backend runs a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Host threads (`hash::cpu`).
    Cpu,
    /// The wgpu compute kernel (`hash::gpu`).
    Gpu,
}

/// What a backend tells users and `bench` about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// CPU or GPU.
    pub kind: BackendKind,
    /// The device: CPU model or GPU adapter name.
    pub device: String,
    /// The code path that runs, e.g. `avx2-8way`, `sha-ni-2x`, `portable`, `wgsl`.
    pub path: String,
    /// Worker threads (CPU) or 1 (GPU).
    pub threads: usize,
}

/// Errors of the search engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The GPU backend found no adapter, or none matching the requested one; holds the rest of
    /// the message (what was asked, what is available, what to install).
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    /// The GPU was lost during or before a search; holds the driver's reason.
    /// `select::CpuFallback` reruns the search on the CPU.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Any other GPU failure (device creation, validation, mapping, polling).
    #[error("GPU error: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
    /// A hex header decodes to other than 80 bytes; holds the decoded length.
    #[error("header must be {HEADER_LEN} bytes, got {0}")]
    HeaderLength(usize),
    /// A header's text is not valid hex; holds the decoder's message.
    #[error("header is not valid hex: {0}")]
    HeaderHex(String),
    /// A CPU path was asked for that this processor lacks the instructions for (e.g. SHA-NI,
    /// AVX2); holds the path's name.
    #[error("this processor cannot run the CPU path {0} (see `CpuPath::available`)")]
    CpuPathUnsupported(String),
    /// A CPU path name that is none of `CpuPath::ALL`.
    #[error("unknown CPU path {name:?}; use one of {known}")]
    UnknownCpuPath {
        /// The name as given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
}

/// A nonce-search implementation. Every backend returns identical results for the same job
/// and range: the qualifying nonces in range order, none missing, none extra.
pub trait Backend: Send {
    /// The device, code path and thread count this backend searches with.
    fn info(&self) -> BackendInfo;
    /// Hashes every nonce of `range` (until `stop` is raised) and returns those that qualify.
    fn search(
        &mut self,
        job: &Job,
        range: NonceRange,
        stop: &StopFlag,
    ) -> Result<SearchOutcome, HashError>;
}

/// Parses an 80-byte header from hex (whitespace around it is ignored).
pub fn parse_header_hex(text: &str) -> Result<[u8; HEADER_LEN], HashError> {
    let bytes = hex::decode(text.trim()).map_err(|e| HashError::HeaderHex(e.to_string()))?;
    <[u8; HEADER_LEN]>::try_from(bytes.as_slice()).map_err(|_| HashError::HeaderLength(bytes.len()))
}

/// A hash in Bitcoin's display order (byte-reversed hex).
pub fn display_hash(hash: &[u8; 32]) -> String {
    let mut reversed = *hash;
    reversed.reverse();
    hex::encode(reversed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_range_exactly_across_the_wrap() {
        let range = NonceRange::new(u32::MAX - 5, 17);
        let parts = range.split(4);
        assert_eq!(parts.iter().map(|p| p.count).sum::<u64>(), 17);
        let nonces: Vec<u32> = parts
            .iter()
            .flat_map(|p| (0..p.count).map(move |i| p.nonce(i)))
            .collect();
        let expected: Vec<u32> = (0..17).map(|i| range.nonce(i)).collect();
        assert_eq!(nonces, expected);
        assert_eq!(expected[6], 0);
    }

    #[test]
    fn header_hex_errors_are_specific() {
        assert!(matches!(
            parse_header_hex("zz"),
            Err(HashError::HeaderHex(_))
        ));
        assert!(matches!(
            parse_header_hex("00ff"),
            Err(HashError::HeaderLength(2))
        ));
    }
}
