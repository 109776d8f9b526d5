//! Runs the real `hashgrad raft-sim` binary: a short soak succeeds with a summary, a bad
//! argument exits with code 2, and the model-check mode reports states explored.

use std::process::Command;

fn hashgrad(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(args)
        .output()
        .expect("run hashgrad")
}

#[test]
fn raft_sim_soak_prints_a_summary() {
    let out = hashgrad(&[
        "raft-sim", "--seeds", "20", "--seed", "500", "--nodes", "5", "--steps", "100",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("20 seeds (5 nodes, 100 steps each) ok"),
        "{stdout}"
    );
}

#[test]
fn raft_sim_rejects_bad_usage_with_exit_code_2() {
    let out = hashgrad(&["raft-sim", "--nodes", "4"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nodes must be 3 or 5"));
}

#[test]
fn raft_sim_model_check_reports_states() {
    let out = hashgrad(&["raft-sim", "--model-depth", "6"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("states") && stdout.contains("no violation"),
        "{stdout}"
    );
}
