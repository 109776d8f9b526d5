//! Fuzzes the peer frame decoder: any bytes must decode, ask for more, or fail cleanly; never
//! panic, and a decoded frame must re-encode to the bytes it came from.
//! Run: `cargo fuzz run frame --sanitizer none` (from `fuzz/`).
#![no_main]

use hashgrad::net::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((message, used))) = frame::decode(data) {
        assert!(used <= data.len());
        // Reject reasons decode lossily (invalid UTF-8 becomes U+FFFD), so only compare the rest.
        if !matches!(message, frame::Message::Reject { .. }) {
            let again = frame::encode(&message).expect("a decoded message re-encodes");
            assert_eq!(&again[..], &data[..used]);
        }
    }
});
