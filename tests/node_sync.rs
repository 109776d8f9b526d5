//! Sync over real loopback QUIC. It survives `kill -9`: a fresh `hashgrad node` process
//! syncing a 12,000-block chain from a peer is killed with SIGKILL in the middle of the sync;
//! its store reopens consistent (every stored best-chain block is the peer's, nothing
//! half-written) and a restarted process continues to the peer's tip. And blocks learned by
//! sync are relayed on to peers that never met their source.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hashgrad::api::NodeStatus;
use hashgrad::config::{MiningSection, NetSection, NodeConfig};
use hashgrad::hash::{NonceRange, StopFlag, reference};
use hashgrad::node::{Node, STORE_FILE};
use hashgrad::pow::{Accepted, Block, Chain, ChainStore, NetworkParams, NodeId};

const BLOCKS: usize = 12_000;

/// A node process, killed on drop.
struct Proc {
    child: Child,
    http: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, peer: SocketAddr) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .arg("node")
        .arg("--data-dir")
        .arg(dir)
        .args(["--network", "regtest", "--no-mine"])
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--peer")
        .arg(peer.to_string())
        .env("RUST_LOG", "hashgrad=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hashgrad node");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("listening line");
    // "listening quic=ADDR http=ADDR id=HEX"
    let http = line
        .split_whitespace()
        .find_map(|part| part.strip_prefix("http="))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no http address in {line:?}"));
    Proc { child, http }
}

fn status(proc: &Proc) -> NodeStatus {
    let mut stream = TcpStream::connect(proc.http).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET /status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proc.http
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

fn wait_for(proc: &Proc, secs: u64, what: &str, check: impl Fn(&NodeStatus) -> bool) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = status(proc);
        if check(&now) {
            return now.height;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `count` regtest blocks on the genesis, mined with the reference search.
fn mine_chain(params: &NetworkParams, count: usize) -> Vec<Block> {
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut chain = Chain::new(params.clone());
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let template = chain.template(NodeId([7; 32]), Vec::new(), start + i as u64 / 8);
        let job = template.job();
        let mut first = 0u32;
        let block = loop {
            let outcome = reference::search(&job, NonceRange::new(first, 64), &StopFlag::new());
            if let Some(hit) = outcome.found.first() {
                break template.with_nonce(hit.nonce);
            }
            first = first.wrapping_add(64);
        };
        chain.accept_block(block.clone(), u64::MAX).expect("valid");
        blocks.push(block);
    }
    blocks
}

/// A store at `dir` holding `blocks`, written in batches.
fn write_store(dir: &Path, params: &NetworkParams, blocks: &[Block]) {
    let mut store = ChainStore::open(dir.join(STORE_FILE), params).expect("store");
    let mut chain = Chain::new(params.clone());
    for batch in blocks.chunks(500) {
        let accepted: Vec<Accepted> = batch
            .iter()
            .map(|b| chain.accept_block(b.clone(), u64::MAX).expect("valid"))
            .collect();
        let pairs: Vec<(&Block, &Accepted)> = batch.iter().zip(&accepted).collect();
        store.store_blocks_and_tip(&pairs, &chain).expect("stored");
    }
}

#[test]
fn a_node_killed_mid_sync_reopens_consistent_and_finishes_the_sync() {
    let params = NetworkParams::regtest();
    let blocks = mine_chain(&params, BLOCKS);
    let source_dir = tempfile::tempdir().expect("tempdir");
    write_store(source_dir.path(), &params, &blocks);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let source = runtime
        .block_on(Node::start(NodeConfig {
            data_dir: source_dir.path().to_path_buf(),
            network: "regtest".into(),
            net: NetSection {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                ..NetSection::default()
            },
            mining: MiningSection {
                enabled: false,
                ..MiningSection::default()
            },
            ..NodeConfig::default()
        }))
        .expect("source node");
    assert_eq!(source.status().height, BLOCKS as u64);

    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let fresh = spawn(fresh_dir.path(), source.listen_addr());
    // Kill it with SIGKILL once an eighth of the chain is in: the sync is still running.
    let seen = wait_for(&fresh, 60, "the first eighth of the sync", |s| {
        s.height >= BLOCKS as u64 / 8
    });
    let mut fresh = fresh;
    fresh.child.kill().expect("SIGKILL");
    fresh.child.wait().expect("reaped");
    drop(fresh);

    let store = ChainStore::open(fresh_dir.path().join(STORE_FILE), &params)
        .expect("the killed node's store opens");
    let chain = store.load_chain().expect("and replays");
    let kept = chain.height();
    assert!(
        kept >= seen && kept < BLOCKS as u64,
        "killed mid-sync: kept {kept}, saw {seen} before the kill, chain of {BLOCKS}"
    );
    for (height, block) in (1..=kept).zip(&blocks) {
        assert_eq!(chain.hash_at_height(height), Some(block.hash()), "{height}");
    }
    drop(store);

    let restarted = spawn(fresh_dir.path(), source.listen_addr());
    let tip = source.status().tip;
    wait_for(&restarted, 120, "the rest of the sync", |s| {
        s.height == BLOCKS as u64 && s.tip == tip
    });
    drop(restarted);
    runtime.block_on(source.shutdown()).expect("shutdown");
}

fn in_process(dir: &Path, peers: &[SocketAddr]) -> NodeConfig {
    let mut config = NodeConfig::loopback(dir, peers);
    config.net.redial_secs = 0.2;
    config
}

#[test]
fn blocks_learned_by_sync_are_relayed_when_they_extend_the_tip() {
    // B and C are linked and level at the genesis; A, holding 600 blocks, then dials B only.
    // C never meets A and has no new connection: it can only learn the chain because B
    // relays the tips its sync with A brings, and C then syncs the rest from B.
    let params = NetworkParams::regtest();
    let blocks = mine_chain(&params, 600);
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    write_store(dirs[0].path(), &params, &blocks);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let b = Node::start(in_process(dirs[1].path(), &[]))
            .await
            .expect("b");
        let c = Node::start(in_process(dirs[2].path(), &[b.listen_addr()]))
            .await
            .expect("c");
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.status().peers.len() != 1 || c.status().peers.len() != 1 {
            assert!(Instant::now() < deadline, "B and C did not connect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let a = Node::start(in_process(dirs[0].path(), &[b.listen_addr()]))
            .await
            .expect("a");
        let tip = a.status().tip;
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.status().tip != tip {
            assert!(
                Instant::now() < deadline,
                "C did not learn A's chain through B: B at {}, C at {}",
                b.status().height,
                c.status().height
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(c.status().height, 600);
        assert!(
            c.status().peers.iter().all(|p| p.id != a.id().to_string()),
            "C must not have met A"
        );
        for node in [a, b, c] {
            node.shutdown().await.expect("shutdown");
        }
    });
}
