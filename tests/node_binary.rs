//! The real `hashgrad node` binary: processes on loopback ports, read over real HTTP. A miner,
//! a non-mining follower that syncs from it, and a node of another network whose handshake is
//! refused with the reason in both processes' logs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashgrad::api::NodeStatus;

/// A running node process, killed on drop, with its stderr collected.
struct Proc {
    child: Child,
    quic: SocketAddr,
    http: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &std::path::Path, args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("node")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--pace-ms",
            "100",
        ])
        .args(args)
        .env("RUST_LOG", "hashgrad=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hashgrad node");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().expect("log").push(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("listening line");
    // "listening quic=ADDR http=ADDR id=HEX"
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}; log: {:?}", log.lock()))
    };
    let (quic, http) = (field("quic="), field("http="));
    Proc {
        child,
        quic,
        http,
        log,
    }
}

/// A plain HTTP/1.1 GET; returns the body.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn status(proc: &Proc) -> NodeStatus {
    serde_json::from_str(&get(proc.http, "/status")).expect("status JSON")
}

fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn node_processes_mine_sync_and_refuse_another_network() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let miner = spawn(dirs[0].path(), &["--network", "regtest", "--mine"]);
    eventually(30, "the miner's blocks", || status(&miner).height >= 3);
    let first = status(&miner);
    assert_eq!(first.network, "regtest");
    assert!(first.mining && first.backend.contains("cpu"), "{first:?}");
    assert!(first.hash_rate >= 0.0);
    let metrics = get(miner.http, "/metrics");
    assert!(metrics.contains("hashgrad_chain_height"), "{metrics}");
    assert!(metrics.contains("hashgrad_blocks_mined_total"), "{metrics}");

    let quic = miner.quic.to_string();
    let follower = spawn(
        dirs[1].path(),
        &["--network", "regtest", "--no-mine", "--peer", &quic],
    );
    let target = status(&miner).height;
    eventually(30, "the follower to sync", || {
        status(&follower).height >= target
    });
    let following = status(&follower);
    assert!(!following.mining);
    assert_eq!(following.peers.len(), 1);
    assert_eq!(following.peers[0].id, first.node_id);

    let stranger = spawn(
        dirs[2].path(),
        &["--network", "devnet", "--no-mine", "--peer", &quic],
    );
    let refused = |proc: &Proc| {
        proc.log.lock().expect("log").iter().any(|l| {
            l.contains("handshake refused") && l.contains("devnet") && l.contains("regtest")
        })
    };
    eventually(30, "the refusal in both logs", || {
        refused(&miner) && refused(&stranger)
    });
    assert!(status(&stranger).peers.is_empty());
}
