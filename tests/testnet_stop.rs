//! Stopping `hashgrad testnet`: SIGINT mid-run stops every node within 5 s with no process
//! left behind; an orchestrator killed with -9 cannot stop anything, yet its nodes notice
//! the closed stdin lifeline and exit on their own.

mod testnet_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testnet_support::{logged_pids, survivors};

fn start(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("testnet")
        .arg("--dir")
        .arg(dir)
        .args(["--nodes", "3", "--duration", "120", "--pace-ms", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hashgrad testnet")
}

/// Waits until every node is up (their pids are in events.log).
fn wait_for_nodes(dir: &Path, child: &mut Child) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids = logged_pids(dir);
        if pids.len() == 3 {
            return pids;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("testnet exited early ({status})");
        }
        assert!(Instant::now() < deadline, "nodes not up within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

#[test]
fn sigint_stops_every_node_within_five_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = start(dir.path());
    let pids = wait_for_nodes(dir.path(), &mut child);
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    signal(child.id(), "INT");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("testnet still running 5 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Interrupted before its goal: not a success.
    assert_eq!(status.code(), Some(1));
    let left = survivors(&pids, Duration::ZERO);
    assert!(
        left.is_empty(),
        "nodes alive after the testnet exited: {left:?}"
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.json")).expect("summary");
    assert!(summary.contains("stopped by SIGINT"), "{summary}");
}

#[test]
fn nodes_exit_when_the_orchestrator_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = start(dir.path());
    let pids = wait_for_nodes(dir.path(), &mut child);
    child.kill().expect("kill -9 the testnet");
    child.wait().expect("reap");
    let left = survivors(&pids, Duration::from_secs(5));
    assert!(left.is_empty(), "orphaned nodes still running: {left:?}");
}
