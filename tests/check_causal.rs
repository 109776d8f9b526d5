//! Causal consistency (CC) on hand-made histories: one per bad pattern of Bouajjani et al.
//! (POPL 2017), causally consistent ones, and histories where CC holds but linearizability
//! does not (the two checks must disagree there).

use hashgrad::check::causal::{self, BadPattern};
use hashgrad::check::format::{self, Format};
use hashgrad::check::{CheckError, CheckOptions, History, Verdict, check_linearizable};

/// One JSONL event: client, type, f, key, value.
fn line(client: u64, kind: &str, f: &str, key: &str, value: &str) -> String {
    format!(r#"{{"client":{client},"type":"{kind}","f":"{f}","key":"{key}","value":{value}}}"#)
}

/// A completed operation: invoke then ok on consecutive lines.
fn op(client: u64, f: &str, key: &str, value: &str) -> String {
    let arg = if f == "write" { value } else { "null" };
    format!(
        "{}\n{}\n",
        line(client, "invoke", f, key, arg),
        line(client, "ok", f, key, value)
    )
}

fn parse(text: &str) -> History {
    format::parse(text, Some(Format::Jsonl))
        .expect("valid history")
        .1
}

fn pattern(text: &str) -> Option<BadPattern> {
    causal::check(&parse(text))
        .expect("checkable")
        .violation
        .map(|v| v.pattern)
}

fn linearizable(text: &str) -> Verdict {
    check_linearizable(text, Some(Format::Jsonl), None, &CheckOptions::default())
        .expect("checkable")
        .2
        .verdict
}

#[test]
fn thin_air_read() {
    let text = op(1, "write", "x", "1") + &op(2, "read", "x", "7");
    assert_eq!(pattern(&text), Some(BadPattern::ThinAirRead));
}

#[test]
fn cyclic_causal_order() {
    // Each client reads the value the other writes only after its read (in program order).
    let text = [
        line(1, "invoke", "read", "x", "null"),
        line(2, "invoke", "read", "y", "null"),
        line(1, "ok", "read", "x", "1"),
        line(2, "ok", "read", "y", "1"),
        line(1, "invoke", "write", "y", "1"),
        line(2, "invoke", "write", "x", "1"),
        line(1, "ok", "write", "y", "1"),
        line(2, "ok", "write", "x", "1"),
    ]
    .join("\n");
    let report = causal::check(&parse(&text)).expect("checkable");
    let violation = report.violation.expect("a violation");
    assert_eq!(violation.pattern, BadPattern::CyclicCO);
    assert_eq!(
        violation.operations.len(),
        4,
        "the cycle has the two reads and the two writes"
    );
}

#[test]
fn write_causally_before_an_initial_read() {
    // Own write, then a read of the initial value.
    assert_eq!(
        pattern(&(op(1, "write", "x", "1") + &op(1, "read", "x", "null"))),
        Some(BadPattern::WriteCOInitRead)
    );
    // Through another client: x=1 then y=1; whoever sees y=1 must not read x as initial.
    let text = op(1, "write", "x", "1")
        + &op(1, "write", "y", "1")
        + &op(2, "read", "y", "1")
        + &op(2, "read", "x", "null");
    assert_eq!(pattern(&text), Some(BadPattern::WriteCOInitRead));
}

#[test]
fn read_of_a_value_overwritten_in_its_causal_past() {
    let text = op(1, "write", "x", "1")
        + &op(1, "write", "x", "2")
        + &op(2, "read", "x", "2")
        + &op(2, "read", "x", "1");
    assert_eq!(pattern(&text), Some(BadPattern::WriteCORead));
    // Client 1 reads its own x=1 after learning (through z) of client 3's x=2; x=2 is not
    // causally after x=1, so CC allows it.
    let text = op(1, "write", "x", "1")
        + &op(3, "write", "x", "2")
        + &op(3, "write", "z", "9")
        + &op(1, "read", "z", "9")
        + &op(1, "read", "x", "1");
    assert_eq!(pattern(&text), None);
}

#[test]
fn causally_consistent_histories_pass() {
    let text = op(1, "write", "x", "1")
        + &op(2, "read", "x", "1")
        + &op(2, "write", "x", "2")
        + &op(1, "read", "x", "2");
    assert_eq!(pattern(&text), None);
    assert_eq!(linearizable(&text), Verdict::Linearizable);
}

#[test]
fn stale_read_is_causal_but_not_linearizable() {
    // Client 1's write completes before client 2 reads the initial value: no causal link, so
    // CC allows it; real time forbids it.
    let text = op(1, "write", "x", "1") + &op(2, "read", "x", "null");
    assert_eq!(pattern(&text), None);
    assert_eq!(linearizable(&text), Verdict::NotLinearizable);
}

#[test]
fn concurrent_writes_seen_in_different_orders_are_causal_but_not_linearizable() {
    let text = [
        line(1, "invoke", "write", "x", "1"),
        line(2, "invoke", "write", "x", "2"),
        line(1, "ok", "write", "x", "1"),
        line(2, "ok", "write", "x", "2"),
    ]
    .join("\n")
        + "\n"
        + &op(1, "read", "x", "2")
        + &op(2, "read", "x", "1");
    assert_eq!(pattern(&text), None);
    assert_eq!(linearizable(&text), Verdict::NotLinearizable);
}

#[test]
fn repeated_write_values_are_refused() {
    let text = op(1, "write", "x", "1") + &op(2, "write", "x", "1");
    match causal::check(&parse(&text)) {
        Err(CheckError::NotDifferentiated { line, first_line }) => {
            assert_eq!((line, first_line), (3, 1))
        }
        other => panic!("expected NotDifferentiated, got {other:?}"),
    }
}
