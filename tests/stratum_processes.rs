//! End to end with real processes: three regtest `hashgrad node`s, none mining with its own
//! miner; n0 serves Stratum and a `hashgrad mine --pool` process mines for it under a
//! fingerprint. Its shares become blocks that reach every node, and n0's `/status` credits
//! them to the worker.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_hashgrad");

struct Proc {
    child: Child,
    quic: SocketAddr,
    http: SocketAddr,
    stratum: Option<SocketAddr>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(dir: &std::path::Path, peers: &[SocketAddr], stratum: bool) -> Proc {
    let mut config = format!(
        "data_dir = {:?}\nnetwork = \"regtest\"\n[net]\nlisten = \"127.0.0.1:0\"\npeers = [{}]\n\
         redial_secs = 0.2\n[http]\nlisten = \"127.0.0.1:0\"\n[mining]\nenabled = false\n\
         [events]\nenabled = false\n",
        dir.join("data"),
        peers
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if stratum {
        config.push_str(
            "[stratum]\nlisten = \"127.0.0.1:0\"\ndifficulty = 0.001\nshares_per_minute = 0\n",
        );
    }
    let path = dir.join("node.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(config.as_bytes()))
        .expect("config");
    let mut child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&path)
        .arg("--stop-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let field = |name: &str| -> Option<SocketAddr> {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(name))
            .and_then(|addr| addr.parse().ok())
    };
    Proc {
        quic: field("quic=").unwrap_or_else(|| panic!("no quic in {line:?}")),
        http: field("http=").unwrap_or_else(|| panic!("no http in {line:?}")),
        stratum: field("stratum="),
        child,
    }
}

fn status(http: SocketAddr) -> Option<serde_json::Value> {
    let (_, body) = common::http(http, "GET", "/status", "")?;
    serde_json::from_str(&body).ok()
}

#[test]
fn a_stratum_miner_process_mines_for_a_node_and_its_blocks_reach_every_node() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let n0 = node(dirs[0].path(), &[], true);
    let n1 = node(dirs[1].path(), &[n0.quic], false);
    let n2 = node(dirs[2].path(), &[n0.quic, n1.quic], false);
    let pool = n0.stratum.expect("n0 prints its stratum address");
    let fingerprint = "cd".repeat(32);
    let output = Command::new(BIN)
        .args(["mine", "--pool", &format!("stratum+tcp://{pool}"), "--user"])
        .arg(format!("{fingerprint}.rig"))
        .args([
            "--threads",
            "1",
            "--shares",
            "20",
            "--seconds",
            "60",
            "--json",
        ])
        .output()
        .expect("run mine");
    assert!(output.status.success(), "{output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
    assert!(
        summary["accepted"].as_u64().is_some_and(|n| n >= 20),
        "{summary}"
    );
    assert!(
        summary["mhs"].as_f64().is_some_and(|r| r > 0.0),
        "{summary}"
    );

    // The views refresh every second; the worker's blocks show within a few.
    let deadline = Instant::now() + Duration::from_secs(10);
    let n0_status = loop {
        let now = status(n0.http).expect("n0 status");
        let found = now["stratum"]["workers"][0]["blocks_found"].as_u64();
        // The server may credit shares whose answers the miner, done, did not wait for.
        let credited =
            now["stratum"]["workers"][0]["accepted"].as_u64() >= summary["accepted"].as_u64();
        if credited
            && found.is_some_and(|n| n >= 3)
            && now["height"].as_u64().is_some_and(|h| h >= 3)
        {
            break now;
        }
        assert!(Instant::now() < deadline, "{now}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let height = n0_status["height"].as_u64().expect("height");
    let worker = &n0_status["stratum"]["workers"][0];
    assert_eq!(
        worker["name"],
        serde_json::json!(format!("{fingerprint}.rig"))
    );
    // Nobody else mines, so every node's chain is the Stratum miner's blocks.
    let deadline = Instant::now() + Duration::from_secs(30);
    for proc in [&n1, &n2] {
        loop {
            let tip = status(proc.http).and_then(|s| s["height"].as_u64());
            if tip.is_some_and(|h| h >= height) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the blocks did not reach every node"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let tip = n0_status["tip"].clone();
    let same = |p: &Proc| {
        status(p.http).is_some_and(|s| s["height"].as_u64() == Some(height) && s["tip"] == tip)
    };
    assert!(same(&n1) || status(n1.http).and_then(|s| s["height"].as_u64()) > Some(height));
    assert!(same(&n2) || status(n2.http).and_then(|s| s["height"].as_u64()) > Some(height));

    // The chain n1 stored records who found each block: the worker's fingerprint.
    drop(n2);
    drop(n1);
    let params = hashgrad::pow::NetworkParams::regtest();
    let store = hashgrad::pow::ChainStore::open(
        dirs[1].path().join("data").join(hashgrad::node::STORE_FILE),
        &params,
    )
    .expect("n1's store");
    let chain = store.load_chain().expect("n1's chain");
    assert!(chain.height() >= height);
    let tip_block = chain.block(&chain.tip()).expect("tip block");
    assert_eq!(
        tip_block.body.coinbase.miner,
        hashgrad::pow::NodeId([0xcd; 32])
    );
}
