//! The plain `sha2` reference: two full SHA-256 calls per nonce. It is the oracle the
//! property tests compare every backend against, and the baseline `bench` reports.

use sha2::{Digest, Sha256};

use super::{Found, Job, NonceRange, SearchOutcome, StopFlag};

/// sha256d of `data`, in the byte order SHA-256 produced.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

/// Searches `range` the slow, obviously correct way.
pub fn search(job: &Job, range: NonceRange, stop: &StopFlag) -> SearchOutcome {
    let mut outcome = SearchOutcome::default();
    for i in 0..range.count {
        if i % 4096 == 0 && stop.is_stopped() {
            outcome.stopped = true;
            break;
        }
        let nonce = range.nonce(i);
        let hash = sha256d(&job.header_with_nonce(nonce));
        outcome.hashes += 1;
        if job.target.is_met_by(&hash) {
            outcome.found.push(Found { nonce, hash });
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{display_hash, parse_header_hex};

    #[test]
    fn bitcoin_genesis_header_hashes_to_the_known_block_hash() {
        let header = parse_header_hex(
            "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
        )
        .expect("valid header");
        assert_eq!(
            display_hash(&sha256d(&header)),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
    }
}
