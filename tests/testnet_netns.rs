//! The multi-machine configuration across Linux network namespaces: scripts/netns-testnet.sh
//! gives each of 3 nodes its own network stack and private IP (nothing on loopback) and
//! checks that they connect, mine and agree on one tip. Skips, saying why, where namespaces
//! cannot be made (not root, no CAP_NET_ADMIN).

use std::process::Command;

#[test]
fn nodes_in_separate_network_namespaces_agree() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns-testnet.sh");
    let output = Command::new("bash")
        .args([script, "3", "4", "60"])
        .env("HASHGRAD", env!("CARGO_BIN_EXE_hashgrad"))
        .output()
        .expect("run scripts/netns-testnet.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(77) {
        // Printed past the harness's capture so the skip is visible in CI logs.
        let mut tty = std::io::stderr().lock();
        let _ = std::io::Write::write_all(
            &mut tty,
            format!("SKIP nodes_in_separate_network_namespaces_agree: {stderr}").as_bytes(),
        );
        return;
    }
    assert!(
        output.status.success(),
        "netns testnet failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all 3 nodes agree"), "{stdout}");
}
