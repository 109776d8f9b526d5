//! Fuzzes the body of `PUT /config/{key}`: the input is `KEY` and the body after the first
//! newline. The HTTP layer trims the body, validates it against the config store, and the
//! write travels the Raft log as a `Command::ConfigPut` that every node applies. A key or
//! value must be accepted or refused with a `ClusterError`, never panic; an accepted value
//! must read back in its canonical spelling, which a second write accepts unchanged; and the
//! store and the command must survive their encodings.
//! Run: `cargo fuzz run config_value --sanitizer none` (from `fuzz/`).
#![no_main]

use hashgrad::cluster::command::Command;
use hashgrad::cluster::{ConfigStore, RequestId};
use hashgrad::codec::{Decode, Encode, Reader, Writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key, body) = text.split_once('\n').unwrap_or((text, ""));
    let value = body.trim();
    let mut store = ConfigStore::default();
    if store.validate(key, value).is_err() {
        assert!(store.put(key, value).is_err(), "validate and put disagree");
        return;
    }
    store.put(key, value).expect("a validated write applies");
    let canonical = store
        .get(key)
        .expect("a written key reads")
        .expect("a written key is set");
    let mut again = store.clone();
    again
        .put(key, &canonical)
        .expect("the canonical spelling is accepted");
    assert_eq!(
        again.get(key).ok().flatten().as_deref(),
        Some(canonical.as_str())
    );

    let mut out = Writer::default();
    store.encode_to(&mut out);
    let bytes = out.into_bytes();
    let decoded = ConfigStore::decode_from(&mut Reader::new(&bytes)).expect("the store decodes");
    assert_eq!(decoded.entries(), store.entries());

    let command = Command::ConfigPut {
        request: RequestId::default(),
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let encoded = command.to_bytes();
    assert_eq!(
        Command::from_bytes(&encoded).expect("the command decodes"),
        command
    );
});
