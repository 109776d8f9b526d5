//! The portable path: two `sha2::compress256` calls per nonce from the host's midstate
//! (`portable`). Runs on any processor; `sha2` itself picks its fastest compression.

use super::midstate::{JobConstants, sha256d_from_midstate};

/// Appends the candidate nonces of `start .. start + count` to `candidates`.
pub(super) fn scan(c: &JobConstants, start: u32, count: u32, candidates: &mut Vec<u32>) {
    for i in 0..count {
        let nonce = start.wrapping_add(i);
        if c.may_meet(sha256d_from_midstate(c, nonce)[7]) {
            candidates.push(nonce);
        }
    }
}
