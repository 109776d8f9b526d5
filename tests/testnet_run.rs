//! `hashgrad testnet` end to end: real node processes behind real UDP relays, read over real
//! HTTP. A plain run reaches its block goal on one tip; loss and latency on every link still
//! converge; a partition cuts one node off (it mines on alone, its tip diverges, proving no
//! traffic bypasses the relays) and after healing all agree; goals that need training are
//! refused with the reason. Every node process is gone afterwards.

mod testnet_support;

use std::time::Duration;

use testnet_support::{describe, heights, logged_pids, survivors, testnet};

fn assert_all_gone(dir: &std::path::Path) {
    let pids = logged_pids(dir);
    assert!(!pids.is_empty(), "no pids in events.log");
    let left = survivors(&pids, Duration::from_secs(1));
    assert!(left.is_empty(), "node processes left behind: {left:?}");
}

#[test]
fn three_nodes_reach_the_block_goal_on_one_tip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &["--nodes", "3", "--blocks", "5", "--pace-ms", "150"],
    );
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["goals_met"], true, "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    let heights = heights(&summary);
    assert_eq!(heights.len(), 3, "{why}");
    assert!(heights.iter().all(|&h| h >= 5 && h == heights[0]), "{why}");
    assert!(summary["relay"]["forwarded"].as_u64() > Some(0), "{why}");
    assert_all_gone(dir.path());
    // Data dirs are removed without --keep; logs and configs stay.
    assert!(!dir.path().join("n0/data").exists());
    assert!(dir.path().join("n0/node.log").exists());
}

#[test]
fn loss_and_latency_on_every_link_still_converge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            "--blocks",
            "5",
            "--pace-ms",
            "150",
            "--loss",
            "5",
            "--latency",
            "20,5",
        ],
    );
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    assert!(summary["relay"]["lost"].as_u64() > Some(0), "{why}");
    assert_all_gone(dir.path());
}

#[test]
fn an_isolated_node_mines_alone_then_all_agree_after_healing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            "--blocks",
            "3",
            "--pace-ms",
            "150",
            "--partition",
            "1+3:0,1|2",
        ],
    );
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    assert_eq!(summary["partitions"], 1, "{why}");
    let report = &summary["partition_reports"][0];
    let at = |key: &str, node: usize| report[key][node].as_u64().expect("height");
    // The cut node kept mining on its own...
    assert!(
        at("heights_at_heal", 2) > at("heights_at_start", 2),
        "{why}"
    );
    // ...on a branch the majority never saw: no datagram got around the relays.
    let tips = &report["tips_at_heal"];
    assert_ne!(tips[2], tips[0], "{why}");
    assert_ne!(tips[2], tips[1], "{why}");
    assert!(summary["relay"]["cut"].as_u64() > Some(0), "{why}");
    assert_all_gone(dir.path());
}

#[test]
fn training_goals_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(dir.path(), &["--nodes", "2", "--rounds", "10"]);
    let why = describe(&output, &summary);
    assert_eq!(output.status.code(), Some(1), "{why}");
    let reason = summary["reason"].as_str().expect("reason");
    assert!(reason.contains("does not train yet"), "{why}");
    assert_all_gone(dir.path());
}

#[test]
fn killed_nodes_restart_from_their_data_dirs_and_catch_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            "--blocks",
            "6",
            "--pace-ms",
            "150",
            "--kill-leader-every",
            "1.5",
            "--restart-after",
            "0.5",
        ],
    );
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    assert!(summary["kills"].as_u64() >= Some(1), "{why}");
    assert_eq!(summary["kills"], summary["restarts"], "{why}");
    let events = std::fs::read_to_string(dir.path().join("events.log")).expect("events");
    // No node trains in this build, so "leader" falls back to a random node and says so.
    assert!(events.contains("no node reports a leader"), "{events}");
    // Every pid, the killed ones' and the restarted ones', is gone.
    assert_all_gone(dir.path());
}
