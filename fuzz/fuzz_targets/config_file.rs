//! Fuzzes the node's config file: any text must parse into a checked `NodeConfig` or fail with
//! a `ConfigError`, never panic; every value a node derives from an accepted config (peers,
//! pins, key exchange, timers, the event log's limits, the training section's parsed keys)
//! must come out without panicking too, since a node reads them all at start.
//! Run: `cargo fuzz run config_file --sanitizer none` (from `fuzz/`).
#![no_main]

use std::path::Path;

use hashgrad::config::NodeConfig;
use hashgrad::net::NodeId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = NodeConfig::from_toml(text, Path::new("fuzz.toml")) else {
        return;
    };
    config.peers().expect("validate checked the peers");
    config.pins().expect("validate checked the pins");
    config
        .key_exchange()
        .expect("validate checked the key exchange");
    let _ = (config.ban(), config.redial(), config.events.limits());
    if let Some(train) = &config.train {
        let _ = train.voters();
        let _ = train.workers(NodeId([1; 32]));
        let _ = train.training_defaults();
        let _ = train.optimizer();
        let _ = train.device();
        let _ = train.attack();
    }
});
