//! Shared by the `testnet_*` tests: runs the real `hashgrad testnet`, reads its summary and
//! the node process ids from its events log, and checks that those processes are gone.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `hashgrad testnet --json --dir DIR ARGS…` to the end.
pub fn testnet(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("testnet")
        .arg("--json")
        .arg("--dir")
        .arg(dir)
        .args(["--poll-ms", "100", "--timeout", "60"])
        .args(args)
        .output()
        .expect("run hashgrad testnet");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, summary)
}

/// Every process id the testnet logged (`pid N`) in DIR/events.log.
pub fn logged_pids(dir: &Path) -> Vec<u32> {
    let events = std::fs::read_to_string(dir.join("events.log")).unwrap_or_default();
    let words: Vec<&str> = events
        .split(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == '(')
        .collect();
    words
        .windows(2)
        .filter(|w| w[0] == "pid")
        .filter_map(|w| w[1].parse().ok())
        .collect()
}

/// Whether `pid` is a live process (a zombie awaiting its reaper counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
        }
        Err(_) => false,
    }
}

/// Waits up to `within` for every pid to be gone; returns the ones still alive.
pub fn survivors(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The summary's per-node heights.
pub fn heights(summary: &serde_json::Value) -> Vec<u64> {
    summary["heights"]
        .as_array()
        .expect("heights")
        .iter()
        .map(|h| h.as_u64().expect("height"))
        .collect()
}

pub fn describe(output: &Output, summary: &serde_json::Value) -> String {
    format!(
        "status {:?}\nsummary {summary:#}\nstderr {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The summary's per-node last committed training round (`None` for a node without one).
pub fn rounds(summary: &serde_json::Value) -> Vec<Option<u64>> {
    summary["rounds"]
        .as_array()
        .expect("rounds")
        .iter()
        .map(serde_json::Value::as_u64)
        .collect()
}

/// Asserts that every node ended at round `round` on one params hash, that no committed
/// round was lost, and that every round's receipt is on every node's chain exactly once,
/// gap-free, with the params hash the nodes reported, the same list on every node.
pub fn assert_round_log(summary: &serde_json::Value, round: u64, why: &str) {
    assert!(rounds(summary).iter().all(|&r| r == Some(round)), "{why}");
    assert_eq!(summary["training_agreed"], true, "{why}");
    assert!(summary["params_hash"].is_string(), "{why}");
    assert_eq!(summary["rounds_committed"], round, "{why}");
    assert_eq!(summary["rounds_lost"], 0, "{why}");
    let receipts = &summary["receipts"];
    assert_eq!(receipts["rounds"], round, "{why}");
    assert_eq!(receipts["on_chain"], round, "{why}");
    assert_eq!(receipts["gap_free"], true, "{why}");
    assert_eq!(receipts["identical"], true, "{why}");
    assert_eq!(receipts["duplicates"], 0, "{why}");
    assert_eq!(receipts["mismatched"], 0, "{why}");
}
