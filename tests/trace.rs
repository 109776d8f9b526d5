//! `hashgrad trace` end to end: three nodes log an exchange through the real `EventLog`
//! writer (with rotation), then the real binary checks and exports the logs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hashgrad::events::{EVENTS_DIR, EventKind, EventLog, LOG_FILE, LogLimits};
use serde_json::Value;

fn trace(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("trace")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn events_dir(testnet: &Path, node: usize) -> PathBuf {
    testnet
        .join(format!("n{node}"))
        .join("data")
        .join(EVENTS_DIR)
}

/// Small files so the exchange rotates, enough of them that nothing is deleted.
fn limits() -> LogLimits {
    LogLimits {
        file_bytes: 2048,
        files: 50,
        queue: 10_000,
        flush_every: Duration::from_millis(20),
    }
}

/// Three nodes gossip blocks round-robin through the real writer; returns events logged.
fn write_exchange(testnet: &Path) -> usize {
    let logs: Vec<EventLog> = (0..3)
        .map(|i| EventLog::open(&events_dir(testnet, i), &format!("n{i}"), limits()).unwrap())
        .collect();
    for log in &logs {
        log.record(EventKind::NodeStarted);
    }
    for round in 0..40u64 {
        let from = (round % 3) as usize;
        let hash = format!("{round:064x}");
        logs[from].record(EventKind::BlockFound {
            hash: hash.clone(),
            height: round,
            parent: String::new(),
        });
        for to in (0..3).filter(|&to| to != from) {
            let stamp = logs[from].sent(&format!("n{to}"), "block", 300).unwrap();
            logs[to].received(&format!("n{from}"), "block", 300, &stamp);
            logs[to].record(EventKind::BlockReceived {
                hash: hash.clone(),
                height: round,
                from: format!("n{from}"),
                parent: String::new(),
            });
        }
    }
    for log in &logs {
        log.record(EventKind::NodeStopped);
        log.flush();
        let stats = log.stats();
        assert_eq!(stats.dropped, 0);
    }
    logs.iter().map(|log| log.stats().written as usize).sum()
}

/// Parses a ShiViz log the way ShiViz does with its default regex
/// `(?<event>.*)\n(?<host>\S*) (?<clock>{.*})` after the header (regex line, delimiter line).
fn parse_shiviz(text: &str) -> Vec<(String, String, serde_json::Map<String, Value>)> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(hashgrad::events::SHIVIZ_REGEX));
    assert_eq!(
        lines.next(),
        Some(""),
        "the delimiter line is empty: one execution"
    );
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len() % 2, 0, "events come in pairs of lines");
    body.chunks(2)
        .map(|pair| {
            let (event, rest) = (pair[0], pair[1]);
            let (host, clock) = rest.split_once(' ').expect("host, a space, the clock");
            assert!(!host.is_empty() && !host.chars().any(char::is_whitespace));
            assert!(clock.starts_with('{') && clock.ends_with('}'));
            let clock: serde_json::Map<String, Value> = serde_json::from_str(clock).unwrap();
            assert!(
                clock
                    .get(host)
                    .and_then(Value::as_u64)
                    .is_some_and(|v| v >= 1),
                "own entry"
            );
            assert!(
                clock.values().all(|v| v.as_u64().is_some()),
                "integer entries"
            );
            (event.to_owned(), host.to_owned(), clock)
        })
        .collect()
}

#[test]
fn trace_checks_and_exports_a_rotated_three_node_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_exchange(dir.path());
    assert!(
        events_dir(dir.path(), 0)
            .join(format!("{LOG_FILE}.1"))
            .is_file(),
        "the log rotated"
    );

    let (code, stdout, stderr) = trace(&[dir.path().to_str().unwrap(), "--check"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "happened-before holds: {written} events of 3 nodes"
        )),
        "{stdout}"
    );

    let out = dir.path().join("shiviz.log");
    let (code, stdout, stderr) = trace(&[
        dir.path().to_str().unwrap(),
        "--shiviz",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let events = parse_shiviz(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(events.len(), written);
    // Per host, the own entry counts 1, 2, 3… in file order.
    for host in ["n0", "n1", "n2"] {
        let own: Vec<u64> = events
            .iter()
            .filter(|e| e.1 == host)
            .map(|e| e.2[host].as_u64().unwrap())
            .collect();
        assert_eq!(own, (1..=own.len() as u64).collect::<Vec<_>>());
    }
    assert!(
        events
            .iter()
            .any(|e| e.0.starts_with("send block to n1 (300 B) id=n0:"))
    );
}

#[test]
fn trace_names_a_receive_without_a_send_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_exchange(dir.path());
    // n2 claims a message n0 never logged (n0's clock never reached 999).
    let live = events_dir(dir.path(), 2).join(LOG_FILE);
    let text = std::fs::read_to_string(&live).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let own = last["clock"]["n2"].as_u64().unwrap() + 1;
    let forged = format!(
        "{{\"node\":\"n2\",\"time_ms\":0,\"clock\":{{\"n0\":999,\"n2\":{own}}},\"type\":\"received\",\"from\":\"n0\",\"msg\":\"block\",\"bytes\":1,\"id\":\"n0:999\"}}\n"
    );
    std::fs::write(&live, text + &forged).unwrap();
    let (code, stdout, _) = trace(&[dir.path().to_str().unwrap(), "--check"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("n2 receives message n0:999 from n0, but no node logged its send"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:", live.display())),
        "names the file and line: {stdout}"
    );
}

#[test]
fn trace_rejects_bad_input_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = trace(&[dir.path().to_str().unwrap(), "--check"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no event logs found"), "{stderr}");

    let events = events_dir(dir.path(), 0);
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(events.join(LOG_FILE), "{\"node\":\"n0\"}\nnot json\n").unwrap();
    let (code, _, stderr) = trace(&[dir.path().to_str().unwrap(), "--check"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!(
            "{}:1: expected one JSON event object",
            events.join(LOG_FILE).display()
        )),
        "{stderr}"
    );
}

#[test]
fn the_writer_keeps_only_the_configured_number_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogLimits {
        file_bytes: 1024,
        files: 3,
        ..limits()
    };
    let log = EventLog::open(dir.path(), "n0", small).unwrap();
    for round in 0..500 {
        log.record(EventKind::RoundCommitted {
            round,
            loss: None,
            contributors: 0,
            timings: None,
        });
    }
    log.flush();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            LOG_FILE.to_owned(),
            format!("{LOG_FILE}.1"),
            format!("{LOG_FILE}.2")
        ]
    );
    for name in &names {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(size <= 1024, "{name} is {size} bytes");
    }
    assert_eq!(
        log.stats(),
        hashgrad::events::EventLogStats {
            written: 500,
            dropped: 0
        }
    );
    // The newest event is the last line of the live file.
    let live = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
    assert!(live.lines().last().unwrap().contains("\"round\":499"));
}

#[test]
fn a_failing_disk_counts_drops_and_never_blocks_the_caller() {
    // /dev/full accepts opens and fails every write with ENOSPC.
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(full, dir.path().join(LOG_FILE)).unwrap();
    // No rotation (it would rename the link away and write to a fresh file).
    let big = LogLimits {
        file_bytes: 1 << 20,
        ..limits()
    };
    let log = EventLog::open(dir.path(), "n0", big).unwrap();
    for round in 0..100 {
        log.record(EventKind::RoundAnnounced { round });
    }
    log.flush();
    let stats = log.stats();
    assert_eq!(stats.written, 0);
    assert_eq!(stats.dropped, 100);
    assert!(EventLog::open(dir.path(), "has space", limits()).is_err());
}

#[test]
fn a_reopened_log_cuts_a_torn_line_and_its_clock_goes_on_rising() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join(EVENTS_DIR);
    {
        let log = EventLog::open(&events, "n0", limits()).unwrap();
        for _ in 0..3 {
            log.record(EventKind::NodeStarted);
        }
        log.flush();
    }
    // A crash in the middle of a line.
    let live = events.join(LOG_FILE);
    let mut text = std::fs::read_to_string(&live).unwrap();
    text.push_str(r#"{"node":"n0","time_ms":1,"clo"#);
    std::fs::write(&live, text).unwrap();

    let log = EventLog::open(&events, "n0", limits()).unwrap();
    log.record(EventKind::NodeStopped);
    log.flush();
    let text = std::fs::read_to_string(&live).unwrap();
    let parsed = hashgrad::events::parse_log(&text, "events.jsonl").expect("no torn line left");
    let own: Vec<u64> = parsed.iter().map(|at| at.event.clock.get("n0")).collect();
    // The log did not end with node_stopped: the reopened log marks the crash and its own
    // component jumps past every event the crash may have lost.
    let EventKind::NodeRecovered { lost_at_most } = parsed[3].event.kind else {
        panic!("expected node_recovered, found {:?}", parsed[3].event.kind);
    };
    assert_eq!(own, [1, 2, 3, 4 + lost_at_most, 5 + lost_at_most]);
    assert!(hashgrad::events::check(&[parsed]).is_empty());
}
