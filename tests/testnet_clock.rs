//! `hashgrad testnet --clock`: a node's clock slowed with libfaketime. The classic finding
//! (etcd, Consul, YugaByte): the leader's clock runs slow and the leader is cut off from the
//! majority; the majority elects a new leader and takes writes while the old leader still
//! believes its lease. Lease reads from it must be refuted by the checker; writes and
//! linearizable reads must still be linearizable, and `hashgrad check` must read the written
//! history to the same verdict.
//!
//! Needs libfaketime (`apt-get install faketime`): without it the test says so and passes,
//! unless `HASHGRAD_REQUIRE_FAKETIME` is set (as `.ci/run` sets it), when it fails.

mod testnet_support;

use std::process::Command;

use testnet_support::testnet;

fn faketime_present() -> bool {
    let found = hashgrad::testnet::faketime::library().is_ok();
    if !found {
        assert!(
            std::env::var_os("HASHGRAD_REQUIRE_FAKETIME").is_none(),
            "HASHGRAD_REQUIRE_FAKETIME is set but libfaketime is missing"
        );
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install faketime)");
    }
    found
}

#[test]
fn a_slow_leader_cut_off_from_the_majority_serves_stale_lease_reads() {
    if !faketime_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    // x0.2, not x0.5: the old leader's lease outlives the election by (9 leader ticks / rate)
    // − (the new leader's election and first commit, 1-2 s); at x0.5 that window is often
    // empty (see README's consistency section).
    let (output, summary) = testnet(
        dir.path(),
        &[
            "--rounds",
            "150",
            "--jepsen",
            "25",
            "--clock",
            "leader:0.2@4+21",
            "--partition",
            "7+12:leader",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{summary:#}\n{stderr}");
    let events = std::fs::read_to_string(dir.path().join("events.log")).expect("events");
    assert!(events.contains("(training leader) at x0.2"), "{events}");
    assert!(events.contains("partition cuts off"), "{events}");

    let jepsen = &summary["jepsen"];
    assert_eq!(
        jepsen["lease_linearizable"]["verdict"], "not linearizable",
        "{jepsen:#}"
    );
    assert_eq!(
        jepsen["linearizable"]["verdict"], "linearizable",
        "{jepsen:#}"
    );
    assert_eq!(
        jepsen["local_causal"]["verdict"], "causally consistent",
        "{jepsen:#}"
    );
    assert!(summary["leader_changes"].as_u64() >= Some(1), "{summary:#}");

    let lease = dir.path().join("jepsen").join("lease-history.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(["check", &lease.display().to_string(), "--model", "register"])
        .output()
        .expect("check");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn clock_faults_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(["testnet", "--dir"])
        .arg(dir.path())
        .args(["--clock", "leader:0.5"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("@AT+SECS"), "{stderr}");
}
