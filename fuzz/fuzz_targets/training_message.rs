//! Fuzzes the training message decoder (round announcements, gradients, blobs) and the cluster
//! command decoder: any bytes must decode or fail cleanly, never panic, and a decoded value
//! must re-encode to the bytes it came from.
//! Run: `cargo fuzz run training_message --sanitizer none` (from `fuzz/`).
#![no_main]

use hashgrad::cluster::command::Command;
use hashgrad::cluster::wire::{TrainingMessage, WireLimits};
use hashgrad::codec::{Decode, Encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&frame_type, payload)) = data.split_first() else {
        return;
    };
    for limits in [WireLimits::for_params(1024), WireLimits::max()] {
        if let Ok(message) = TrainingMessage::decode(frame_type, payload, &limits) {
            assert_eq!(message.frame_type(), frame_type);
            assert_eq!(message.encode(), payload);
        }
    }
    if let Ok(command) = Command::from_bytes(data) {
        assert_eq!(command.to_bytes(), data);
    }
});
