//! `hashgrad testnet` end to end: real node processes behind real UDP relays, read over real
//! HTTP. Three nodes mine and train to a round goal on one tip and one params hash, every
//! round's receipt on chain; with loss and latency on every link training still finishes; a
//! partition cuts one node off (it mines on alone on a tip the others never see, proving no
//! traffic bypasses the relays, and commits no round while the majority does) and after
//! healing all agree; killing the training leader again and again loses no committed round;
//! a Byzantine node's corrupted gradients are outvoted by the median; a mining-only testnet
//! refuses training goals with the reason. Every node process is gone afterwards.

mod testnet_support;

use std::time::Duration;

use testnet_support::{assert_round_log, describe, heights, logged_pids, survivors, testnet};

fn assert_all_gone(dir: &std::path::Path) {
    let pids = logged_pids(dir);
    assert!(!pids.is_empty(), "no pids in events.log");
    let left = survivors(&pids, Duration::from_secs(1));
    assert!(left.is_empty(), "node processes left behind: {left:?}");
}

#[test]
fn three_nodes_mine_and_train_to_the_round_goal_on_one_tip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            "--rounds",
            "30",
            "--blocks",
            "3",
            "--pace-ms",
            "150",
        ],
    );
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["goals_met"], true, "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    let heights = heights(&summary);
    assert_eq!(heights.len(), 3, "{why}");
    assert!(heights.iter().all(|&h| h >= 3 && h == heights[0]), "{why}");
    assert_round_log(&summary, 30, &why);
    assert!(summary["accuracy"].as_f64() > Some(0.5), "{why}");
    assert!(summary["relay"]["forwarded"].as_u64() > Some(0), "{why}");
    // Every node votes and works: the layout wrote all three fingerprints as voters.
    let config = std::fs::read_to_string(dir.path().join("n1/node.toml")).expect("config");
    let voters = config
        .lines()
        .find(|l| l.starts_with("voters = "))
        .expect("voters");
    assert_eq!(voters.matches(',').count(), 2, "{config}");
    assert_all_gone(dir.path());
    // Data dirs are removed without --keep, but for the event logs; logs and configs stay.
    assert!(!dir.path().join("n0/data/chain.redb").exists());
    assert!(dir.path().join("n0/data/events/events.jsonl").exists());
    assert!(dir.path().join("n0/node.log").exists());
}

#[test]
fn loss_and_latency_on_every_link_still_finish_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            "--rounds",
            "15",
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
    assert_round_log(&summary, 15, &why);
    assert!(summary["relay"]["lost"].as_u64() > Some(0), "{why}");
    assert_all_gone(dir.path());
}

#[test]
fn an_isolated_node_mines_alone_commits_nothing_then_all_agree_after_healing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            // Enough rounds (~100 rounds/s without faults) to still be training during the cut.
            "--rounds",
            "500",
            "--pace-ms",
            "150",
            "--partition",
            "1.5+3:0,1|2",
        ],
    );
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    assert_eq!(summary["partitions"], 1, "{why}");
    let report = &summary["partition_reports"][0];
    let at = |key: &str, node: usize| report[key][node].as_u64().expect("number");
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
    // The majority kept committing rounds; the cut node committed none.
    for node in [0, 1] {
        assert!(
            at("rounds_at_heal", node) > at("rounds_at_start", node),
            "{why}"
        );
    }
    assert_eq!(at("rounds_at_heal", 2), at("rounds_at_start", 2), "{why}");
    // After healing it caught up: one round log, one params hash.
    assert_round_log(&summary, 500, &why);
    assert_all_gone(dir.path());
}

#[test]
fn killing_the_training_leader_loses_no_committed_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--nodes",
            "3",
            // Enough rounds (~100 rounds/s without faults) for at least two kills.
            "--rounds",
            "400",
            "--pace-ms",
            "150",
            "--kill-leader-every",
            "1.5",
            "--restart-after",
            "0.5",
            "--report",
        ],
    );
    let why = describe(&output, &summary);
    // `--report` wrote the page and said where (on stderr: stdout is the JSON summary).
    let page = dir.path().join("report.html");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("wrote {}", page.display())),
        "{stderr}"
    );
    let html = std::fs::read_to_string(&page).expect("report.html");
    assert!(
        html.contains("<section id=\"raft\">") && html.contains("kill -9 n"),
        "{why}"
    );
    assert!(
        summary["events_epoch_ms"].as_u64() > Some(1_700_000_000_000),
        "{why}"
    );
    assert!(output.status.success(), "{why}");
    assert_eq!(summary["agreed"], true, "{why}");
    assert!(summary["kills"].as_u64() >= Some(2), "{why}");
    assert_eq!(summary["kills"], summary["restarts"], "{why}");
    let events = std::fs::read_to_string(dir.path().join("events.log")).expect("events");
    // The victims are the nodes that reported themselves training leader.
    assert!(events.contains(", training leader)"), "{events}");
    // Each restarted node replayed the round log to the same params hashes (a replayed round
    // with another hash would count as lost), and the chains hold every round once.
    assert_round_log(&summary, 400, &why);
    // Every pid, the killed ones' and the restarted ones', is gone.
    assert_all_gone(dir.path());
}

/// A 3-node run where n2 sends its gradients ×−10, reduced by `rule`.
fn byzantine_run(dir: &std::path::Path, rule: &str) -> (std::process::Output, serde_json::Value) {
    testnet(
        dir,
        &[
            "--nodes",
            "3",
            "--rounds",
            "60",
            "--target-accuracy",
            "80",
            "--pace-ms",
            "300",
            "--byzantine",
            "1",
            "--attack",
            "sign-flip",
            "--rule",
            rule,
            "--consistency",
            "all",
        ],
    )
}

#[test]
fn a_byzantine_node_is_outvoted_by_the_median_not_the_mean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = byzantine_run(dir.path(), "median");
    let why = describe(&output, &summary);
    assert!(output.status.success(), "{why}");
    assert_round_log(&summary, 60, &why);
    let config = |node: usize| {
        std::fs::read_to_string(dir.path().join(format!("n{node}/node.toml"))).expect("config")
    };
    assert!(
        config(2).contains("attack = \"sign-flip\""),
        "{}",
        config(2)
    );
    assert!(!config(1).contains("attack"), "{}", config(1));
    assert!(config(0).contains("rule = \"median\""), "{}", config(0));
    assert_all_gone(dir.path());

    // The same attack averaged in: the leader stops at round 60 far below the target.
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = byzantine_run(dir.path(), "mean");
    let why = describe(&output, &summary);
    assert_eq!(output.status.code(), Some(1), "{why}");
    let reason = summary["reason"].as_str().expect("reason");
    assert!(reason.contains("below the target accuracy"), "{why}");
    assert!(summary["accuracy"].as_f64() < Some(0.5), "{why}");
    assert_all_gone(dir.path());
}

#[test]
fn a_mining_only_testnet_refuses_training_goals_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (output, summary) = testnet(
        dir.path(),
        &["--nodes", "2", "--no-train", "--rounds", "10"],
    );
    let why = describe(&output, &summary);
    assert_eq!(output.status.code(), Some(1), "{why}");
    let reason = summary["reason"].as_str().expect("reason");
    assert!(reason.contains("do not train"), "{why}");
    assert_all_gone(dir.path());
}
