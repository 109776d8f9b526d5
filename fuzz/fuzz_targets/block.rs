//! Fuzzes the block decoder: it must never panic, and whatever it accepts must re-encode to
//! the same bytes. Run: `cargo fuzz run block --sanitizer none` (from `fuzz/`).
#![no_main]

use hashgrad::pow::Block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = Block::decode(data) {
        assert_eq!(block.encode(), data);
        let _ = block.merkle_root();
        let _ = block.hash();
    }
});
