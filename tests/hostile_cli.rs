//! A hostile sweep against the real `hashgrad` binary: every bad input ends with exit code 2
//! and a one-line `error:` naming the problem (never a panic or a hang); a node that cannot
//! start says why and exits 2; a running node that is fed random UDP datagrams, 2,000
//! concurrent `/status` requests and malformed HTTP keeps working.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hashgrad::api::NodeStatus;
use hashgrad::hash::NonceRange;
use hashgrad::pow::{Chain, ChainStore, NetworkParams, NodeId};
use rand::{Rng, SeedableRng};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

/// Runs the binary to completion, or fails the test if it is still running after `secs`.
fn run(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("RUST_LOG", "hashgrad=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hashgrad");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "hashgrad {args:?} hung for {secs} s; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts exit code 2, no panic, and a last stderr line `error: …` holding `needle`.
fn assert_refused(args: &[&str], output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "{args:?}: the error is not one last line: {stderr}"
    );
    assert!(
        last.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: `{needle}` not named in: {last}"
    );
}

fn refused(args: &[&str], needle: &str) {
    let output = run(args, 60);
    assert_refused(args, &output, needle);
}

#[test]
fn hash_and_mine_header_refuse_bad_headers_and_counts() {
    let short = &GENESIS[..158];
    let non_hex = "zz".repeat(80);
    for command in ["hash", "mine-header"] {
        refused(&[command, short], "80");
        refused(&[command, &non_hex], "hex");
        refused(&[command, ""], "80");
    }
    refused(&["mine-header", GENESIS, "--threads", "0"], "--threads");
    refused(
        &["mine-header", GENESIS, "--count", "99999999999999"],
        "--count",
    );
    refused(&["mine-header", GENESIS, "--count", "0"], "--count");
    refused(&["mine-header", GENESIS, "--backend", "quantum"], "quantum");
}

#[test]
fn train_refuses_bad_settings() {
    let cpu = ["train", "--backend", "cpu", "--rounds", "1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        cpu.iter().chain(extra).copied().collect::<Vec<_>>()
    };
    refused(&with(&["--workers", "0"]), "workers");
    refused(&with(&["--workers", "4", "--byzantine", "4"]), "byzantine");
    refused(&with(&["--workers", "4", "--byzantine", "9"]), "byzantine");
    refused(
        &with(&["--workers", "4", "--rule", "trimmed-mean", "--trim", "2"]),
        "trim",
    );
    refused(
        &with(&["--workers", "4", "--rule", "krum", "--trim", "3"]),
        "trim",
    );
    refused(&["train", "--rounds", "0"], "--rounds");
    refused(&with(&["--hidden", "0"]), "hidden");
    refused(&with(&["--hidden", "abc"]), "hidden");
    refused(&with(&["--batch", "0"]), "batch");
    refused(&with(&["--lr=-1"]), "lr");
    refused(&with(&["--lr", "NaN"]), "lr");
}

#[test]
fn train_refuses_bad_data_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, text: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write csv");
        path.display().to_string()
    };
    let rows = |f: &dyn Fn(usize) -> String| -> String { (0..40).map(f).collect() };
    let cases = [
        (
            dir.path().join("missing.csv").display().to_string(),
            "missing.csv",
        ),
        (dir.path().display().to_string(), "directory"),
        (file("empty.csv", ""), "empty.csv"),
        (file("header.csv", "a,b,label\n"), "header.csv"),
        (
            file("nan.csv", &rows(&|i| format!("{i},NaN,{}\n", i % 2))),
            "NaN",
        ),
        (
            file("inf.csv", &rows(&|i| format!("{i},inf,{}\n", i % 2))),
            "inf",
        ),
        (file("one.csv", &rows(&|i| format!("{i},{i},0\n"))), "class"),
        (file("ragged.csv", "1,2,0\n1,0\n"), "ragged.csv"),
    ];
    for (path, needle) in cases {
        refused(
            &[
                "train",
                "--backend",
                "cpu",
                "--rounds",
                "1",
                "--data",
                &path,
            ],
            needle,
        );
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A regtest `chain.redb` with `blocks` blocks on top of genesis, written by the library.
fn write_store(path: &Path, blocks: usize) {
    let params = NetworkParams::regtest();
    let mut store = ChainStore::open(path, &params).expect("new store");
    let mut chain = Chain::new(params);
    let now = unix_now();
    for _ in 0..blocks {
        let block = chain
            .template(NodeId([3; 32]), Vec::new(), now)
            .mine_with_reference(NonceRange::FULL)
            .expect("regtest block");
        let accepted = chain.accept_block(block.clone(), now).expect("valid");
        store
            .store_block_and_tip(&block, &accepted, &chain)
            .expect("stored");
    }
}

/// `hashgrad node` that should not start: its last words and exit code.
fn node_refused(data_dir: &Path, extra: &[&str], needle: &str) {
    let dir = data_dir.display().to_string();
    let mut args = vec!["node", "--no-mine", "--data-dir", &dir];
    if !extra.contains(&"--listen") {
        args.extend_from_slice(&["--listen", "127.0.0.1:0"]);
    }
    if !extra.contains(&"--network") {
        args.extend_from_slice(&["--network", "regtest"]);
    }
    args.extend_from_slice(extra);
    refused(&args, needle);
}

#[test]
fn a_node_that_cannot_start_says_why_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");

    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    node_refused(&dir.path().join("a"), &["--listen", &addr], &addr);

    let http_taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let http = http_taken.local_addr().expect("addr").to_string();
    node_refused(&dir.path().join("b"), &["--http", &http], &http);

    // A data dir below a regular file cannot be created (holds for root too).
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("file");
    node_refused(&file.join("data"), &[], "data dir");

    node_refused(&dir.path().join("c"), &["--network", "mainnet"], "mainnet");

    // Another program's file where the store goes.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).expect("dir");
    std::fs::write(foreign.join("chain.redb"), vec![0x5a; 8192]).expect("junk");
    node_refused(&foreign, &[], "chain.redb");
}

#[test]
fn a_truncated_or_bit_flipped_store_is_refused_or_read_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good");
    std::fs::create_dir_all(&good).expect("dir");
    write_store(&good.join("chain.redb"), 30);
    let bytes = std::fs::read(good.join("chain.redb")).expect("store bytes");

    let truncated = dir.path().join("truncated");
    std::fs::create_dir_all(&truncated).expect("dir");
    std::fs::write(truncated.join("chain.redb"), &bytes[..bytes.len() / 3]).expect("write");
    node_refused(&truncated, &[], "chain.redb");

    // Flipped bytes: refused with a one-line error, or read (the damage missed what the node
    // reads, or redb repaired it); either way no panic and no hang.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    for round in 0..6 {
        let flipped = dir.path().join(format!("flipped-{round}"));
        std::fs::create_dir_all(&flipped).expect("dir");
        let mut damaged = bytes.clone();
        for _ in 0..4 {
            let at = rng.random_range(0..damaged.len());
            damaged[at] ^= 1 << rng.random_range(0..8);
        }
        std::fs::write(flipped.join("chain.redb"), &damaged).expect("write");
        let node = spawn_node(&flipped, &["--no-mine"]);
        match node {
            Started::Running(node) => {
                let status = status(node.http);
                assert!(status.height <= 30, "{status:?}");
            }
            Started::Exited(output) => {
                assert_refused(&["node", "(flipped store)"], &output, "error");
            }
        }
    }
}

/// A tmpfs mount that is unmounted on drop.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(options: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Mount(dir))
        } else {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            None
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn a_node_on_a_full_or_read_only_file_system_says_why() {
    if let Some(full) = Mount::tmpfs("size=64k") {
        let data = full.0.path().join("data");
        std::fs::create_dir_all(&data).expect("dir");
        // Fill it: the key and the store cannot be written.
        let filler = vec![0u8; 4096];
        let mut file = std::fs::File::create(full.0.path().join("filler")).expect("filler");
        while file.write_all(&filler).is_ok() {}
        drop(file);
        node_refused(&data, &[], "space");
    }
    if let Some(read_only) = Mount::tmpfs("size=64k,ro") {
        node_refused(&read_only.0.path().join("data"), &[], "read-only");
    }
}

/// A running node process, killed on drop.
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

enum Started {
    Running(Proc),
    Exited(Output),
}

fn spawn_node(dir: &Path, args: &[&str]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("node")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "hashgrad=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hashgrad node");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().expect("log").push(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    if line.is_empty() {
        // It exited before listening: collect its last words.
        let status = child.wait().expect("wait");
        let _ = reader.join();
        let text = log.lock().expect("log").join("\n");
        return Started::Exited(Output {
            status,
            stdout: Vec::new(),
            stderr: text.into_bytes(),
        });
    }
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    let (quic, http) = (field("quic="), field("http="));
    Started::Running(Proc {
        child,
        quic,
        http,
        log,
    })
}

fn running(dir: &Path, args: &[&str]) -> Proc {
    match spawn_node(dir, args) {
        Started::Running(proc) => proc,
        Started::Exited(output) => panic!(
            "node did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
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

fn status(http: SocketAddr) -> NodeStatus {
    serde_json::from_str(&get(http, "/status")).expect("status JSON")
}

fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn random_datagrams_at_a_mining_node_change_nothing() {
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let a = running(dirs[0].path(), &["--mine", "--pace-ms", "200"]);
    let quic = a.quic.to_string();
    let b = running(
        dirs[1].path(),
        &["--mine", "--pace-ms", "200", "--peer", &quic],
    );
    eventually(30, "a connection and a few blocks", || {
        let s = status(b.http);
        s.peers.len() == 1 && s.height >= 2
    });
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut datagram = vec![0u8; 1500];
    for i in 0..5_000 {
        let len = rng.random_range(1..=datagram.len());
        rng.fill(&mut datagram[..len]);
        if i % 2 == 0 {
            // Looks like a QUIC long header (Initial) more often than chance would.
            datagram[0] = 0xc0 | (datagram[0] & 0x0f);
        }
        let _ = socket.send_to(&datagram[..len], a.quic);
    }
    let before = status(a.http).height;
    eventually(30, "mining to go on and the tips to agree", || {
        let (sa, sb) = (status(a.http), status(b.http));
        sa.height > before && sa.tip == sb.tip && sa.peers.len() == 1
    });
    let log = a.log.lock().expect("log").join("\n");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn many_concurrent_and_malformed_http_requests_leave_the_node_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = running(dir.path(), &["--no-mine"]);
    let http = node.http;

    // 2,000 concurrent GET /status, each on its own connection.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = runtime.block_on(async move {
        let tasks: Vec<_> = (0..2_000)
            .map(|_| {
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut stream = tokio::net::TcpStream::connect(http).await.ok()?;
                    let request = format!(
                        "GET /status HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
                    );
                    stream.write_all(request.as_bytes()).await.ok()?;
                    let mut response = Vec::new();
                    tokio::time::timeout(
                        Duration::from_secs(30),
                        stream.read_to_end(&mut response),
                    )
                    .await
                    .ok()?
                    .ok()?;
                    Some(response.starts_with(b"HTTP/1.1 200"))
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            if let Ok(Some(true)) = task.await {
                ok += 1;
            }
        }
        ok
    });
    assert_eq!(ok, 2_000, "every concurrent /status answered 200");

    // Malformed and hostile requests: each gets an error status or a closed connection
    // (the first five); the rest are odd but parseable, and must merely not hang or hurt.
    let huge_header = format!(
        "GET /status HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let hostile: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03 garbage\r\n\r\n".to_vec(),
        b"GET /status HTTP/9.9\r\n\r\n".to_vec(),
        huge_header.into_bytes(),
        b"GET /status HTTP/1.1\r\nHost".to_vec(), // cut off mid-header, then closed
        b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nabc".to_vec(),
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
    ];
    for (index, request) in hostile.iter().enumerate() {
        let mut stream = TcpStream::connect(http).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = stream.write_all(request);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        if index < 5 {
            assert!(
                response.is_empty() || !text.starts_with("HTTP/1.1 200"),
                "malformed request {index} was served: {text}"
            );
        }
    }
    let after = status(http);
    assert_eq!(after.network, "regtest");
    let log = node.log.lock().expect("log").join("\n");
    assert!(!log.contains("panicked"), "{log}");
}
