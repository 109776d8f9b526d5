//! Fuzzes the Raft wire decoder: it must never panic, and whatever decodes must re-encode to
//! the same bytes. Run: `cargo fuzz run raft_message --sanitizer none` (from `fuzz/`).
#![no_main]

use hashgrad::raft::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        assert_eq!(msg.encode(), data);
    }
});
