//! Network benchmarks on loopback with real QUIC and real redb stores (prints figures; run with
//! `cargo bench --bench propagation`; `HASHGRAD_BENCH_BLOCKS` / `HASHGRAD_BENCH_SYNC` change the
//! block counts).
//!
//! 1. Propagation: 5 in-process nodes in a full mesh, mining off; the bench mines each block,
//!    hands it to node 0 ("found") and times until every node has validated and stored it.
//!    Baseline in the same run: the same block bytes gossiped over one raw QUIC hop with no
//!    validation or storage.
//! 2. Sync: a fresh node syncs a 10,000-block chain from one peer, headers first, one store
//!    transaction per batch of 250. Baseline in the same run: the old per-block path, importing
//!    the same blocks straight into a fresh store (validate + one transaction per block) with
//!    no network; ceiling: the same import 250 blocks to a transaction. `HASHGRAD_BENCH_BLOCKS=0`
//!    runs the sync alone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashgrad::config::{EventsSection, MiningSection, NetSection, NodeConfig};
use hashgrad::hash::{NonceRange, StopFlag, reference};
use hashgrad::net::{Identity, Message, NetConfig, NetEvent, Network};
use hashgrad::node::{Node, NodeHandle};
use hashgrad::pow::{Accepted, Block, Chain, ChainStore, NetworkParams, NodeId};

fn config(dir: &std::path::Path, peers: &[SocketAddr], events: bool) -> NodeConfig {
    NodeConfig {
        events: EventsSection {
            enabled: events,
            ..EventsSection::default()
        },
        data_dir: dir.to_path_buf(),
        network: "regtest".into(),
        net: NetSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers: peers.iter().map(|&addr| addr.into()).collect(),
            redial_secs: 0.2,
            ..NetSection::default()
        },
        mining: MiningSection {
            enabled: false,
            ..MiningSection::default()
        },
        ..NodeConfig::default()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mines the next block on `chain`'s tip with the reference search (regtest: a few hashes).
fn mine_next(chain: &Chain, miner: u8, now: u64) -> Block {
    let template = chain.template(NodeId([miner; 32]), Vec::new(), now);
    let job = template.job();
    // Regtest meets its target about every 2 hashes: search small ranges until a hit.
    let mut start = 0u32;
    loop {
        let outcome = reference::search(&job, NonceRange::new(start, 64), &StopFlag::new());
        if let Some(hit) = outcome.found.first() {
            return template.with_nonce(hit.nonce);
        }
        start = start.wrapping_add(64);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Propagation p50 and p99 through a 5-node mesh with event logs `events` (off/on).
async fn propagation(blocks: usize, events: bool) -> (Duration, Duration) {
    let dirs: Vec<_> = (0..5)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for dir in &dirs {
        let peers: Vec<SocketAddr> = nodes.iter().map(NodeHandle::listen_addr).collect();
        let config = config(dir.path(), &peers, events);
        nodes.push(Node::start(config).await.expect("node"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes.iter().all(|n| n.status().peers.len() == 4) {
        assert!(Instant::now() < deadline, "mesh did not form");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut receivers: Vec<_> = nodes.iter().map(NodeHandle::subscribe).collect();
    let mut local = Chain::new(NetworkParams::regtest());
    let mut latencies = Vec::with_capacity(blocks);
    let mut block_bytes = 0;
    for _ in 0..blocks {
        let block = mine_next(&local, 1, unix_now());
        local
            .accept_block(block.clone(), unix_now())
            .expect("valid");
        block_bytes = block.encode().len();
        let hash = block.hash();
        let found = Instant::now();
        nodes[0].submit_block(block).await.expect("accepted");
        let mut last = found;
        for receiver in &mut receivers {
            loop {
                let event = receiver.recv().await.expect("event");
                if event.hash == hash {
                    last = last.max(event.at);
                    break;
                }
            }
        }
        latencies.push(last - found);
    }
    latencies.sort();

    // Baseline: the same bytes over one raw QUIC gossip hop, no validation, no store.
    let params = NetworkParams::regtest();
    let bind = || {
        let config = NetConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            "regtest",
            params.genesis_hash().0,
        );
        Network::bind(Identity::generate().expect("id"), config).expect("bind")
    };
    let (a, _a_events) = bind();
    let (b, mut b_events) = bind();
    a.dial(b.local_addr(), None).await.expect("dial");
    let payload = mine_next(&local, 2, unix_now()).encode();
    let mut raw = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let sent = Instant::now();
        a.broadcast(&Message::Block(payload.clone()), None);
        loop {
            if let Some(NetEvent::Block { .. }) = b_events.recv().await {
                break;
            }
        }
        raw.push(sent.elapsed());
    }
    raw.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let (r50, r99) = (percentile(&raw, 0.5), percentile(&raw, 0.99));
    let logs = if events { "on" } else { "off" };
    println!(
        "propagation, 5 nodes full mesh, event logs {logs}, {blocks} blocks of {block_bytes} \
         bytes: found -> validated+stored by every node p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(p50),
        ms(p99),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "  baseline, one raw QUIC gossip hop (no validation, no store): p50 {:.3} ms, p99 {:.3} ms; \
         ratio p50 {:.1}x, p99 {:.1}x",
        ms(r50),
        ms(r99),
        ms(p50) / ms(r50),
        ms(p99) / ms(r99)
    );
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
    (p50, p99)
}

async fn sync(count: usize) {
    // Build the chain and a store holding it (not timed).
    let source_dir = tempfile::tempdir().expect("tempdir");
    let params = NetworkParams::regtest();
    let mut chain = Chain::new(params.clone());
    let mut blocks = Vec::with_capacity(count);
    let start_time = unix_now();
    for i in 0..count {
        // Spread timestamps so they stay within the 2-hour future limit.
        let block = mine_next(&chain, 3, start_time + (i as u64) / 8);
        chain.accept_block(block.clone(), u64::MAX).expect("valid");
        blocks.push(block);
    }
    // Baseline: the old per-block path, each block validated and stored in its own durable
    // transaction (what sync did before batching, minus the network). This store is the
    // source node's.
    let build = Instant::now();
    {
        let mut store =
            ChainStore::open(source_dir.path().join(hashgrad::node::STORE_FILE), &params)
                .expect("store");
        let mut replay = Chain::new(params.clone());
        for block in &blocks {
            let accepted = replay.accept_block(block.clone(), u64::MAX).expect("valid");
            let stored = replay.block(&block.hash()).expect("stored");
            store
                .store_block_and_tip(stored, &accepted, &replay)
                .expect("store");
        }
    }
    let import = build.elapsed();
    // The ceiling: the same blocks validated and stored 250 to a transaction, no network.
    let batched_dir = tempfile::tempdir().expect("tempdir");
    let build = Instant::now();
    {
        let mut store =
            ChainStore::open(batched_dir.path().join(hashgrad::node::STORE_FILE), &params)
                .expect("store");
        let mut replay = Chain::new(params.clone());
        for batch in blocks.chunks(hashgrad::node::sync::BATCH) {
            let accepted: Vec<Accepted> = batch
                .iter()
                .map(|b| replay.accept_block(b.clone(), u64::MAX).expect("valid"))
                .collect();
            let pairs: Vec<(&Block, &Accepted)> = batch.iter().zip(&accepted).collect();
            store.store_blocks_and_tip(&pairs, &replay).expect("store");
        }
    }
    let batched = build.elapsed();

    let source = Node::start(config(source_dir.path(), &[], false))
        .await
        .expect("source");
    assert_eq!(source.status().height, count as u64);
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let fresh = Node::start(config(fresh_dir.path(), &[source.listen_addr()], false))
        .await
        .expect("fresh");
    while fresh.status().height < count as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let synced = started.elapsed();
    assert_eq!(fresh.status().tip, source.status().tip);
    let rate = count as f64 / synced.as_secs_f64();
    let import_rate = count as f64 / import.as_secs_f64();
    let batched_rate = count as f64 / batched.as_secs_f64();
    println!(
        "sync of {count} blocks by a fresh node over QUIC (headers first, {} blocks per \
         transaction): {:.2} s, {rate:.0} blocks/s",
        hashgrad::node::sync::BATCH,
        synced.as_secs_f64()
    );
    println!(
        "  baseline, the old per-block path: local import into a fresh store (validate + 1 \
         transaction per block), no network: {import_rate:.0} blocks/s; sync / baseline = {:.1}x",
        rate / import_rate
    );
    println!(
        "  ceiling, local import in batches of {} (validate + 1 transaction per batch), no \
         network: {batched_rate:.0} blocks/s; sync / ceiling = {:.2}",
        hashgrad::node::sync::BATCH,
        rate / batched_rate
    );
    fresh.shutdown().await.expect("shutdown");
    source.shutdown().await.expect("shutdown");
}

fn main() {
    // `cargo test --benches` runs this with `--bench`-less args; keep it quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let blocks = env("HASHGRAD_BENCH_BLOCKS", if quick { 10 } else { 200 });
    let sync_blocks = env("HASHGRAD_BENCH_SYNC", if quick { 100 } else { 10_000 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if blocks > 0 {
            let (off50, off99) = propagation(blocks, false).await;
            let (on50, on99) = propagation(blocks, true).await;
            println!(
                "event logs on / off, same run: p50 {:.2}x, p99 {:.2}x",
                ms(on50) / ms(off50),
                ms(on99) / ms(off99)
            );
        }
        sync(sync_blocks).await;
    });
}
