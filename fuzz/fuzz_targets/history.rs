//! Fuzzes the history parsers and the checks behind them: any bytes must parse or fail with a
//! line-numbered error, and a parsed history must check (linearizable or causal) without
//! panicking. A small step budget keeps each input fast.
//! Run: `cargo fuzz run history --sanitizer none` (from `fuzz/`).
#![no_main]

use std::sync::atomic::AtomicBool;

use hashgrad::check::format::{self, Format};
use hashgrad::check::{CheckOptions, causal, check_linearizable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for f in [
        None,
        Some(Format::Etcd),
        Some(Format::JepsenKv),
        Some(Format::Jsonl),
    ] {
        if let Ok((_, history)) = format::parse(text, f) {
            let _ = causal::check(&history);
            if history.operations.len() <= 12 {
                let stop = AtomicBool::new(false);
                let _ = check_linearizable(
                    text,
                    f,
                    None,
                    &CheckOptions {
                        threads: 1,
                        stop: Some(&stop),
                    },
                );
            }
        }
    }
});
