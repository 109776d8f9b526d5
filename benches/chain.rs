//! `Chain::accept_block` throughput on a 10,000-block regtest chain: in memory (the baseline)
//! and with every block persisted through `ChainStore::store_block_and_tip` (one durable redb
//! transaction per block), plus replaying the stored chain with `ChainStore::load_chain`.
//!
//! Run: `cargo bench --bench chain` (set HASHGRAD_BENCH_BLOCKS to change the chain length).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashgrad::hash::NonceRange;
use hashgrad::pow::{Block, Chain, ChainStore, NetworkParams, NodeId, Receipt};

const NOW: u64 = 1_800_000_000;

fn blocks_to_mine() -> usize {
    std::env::var("HASHGRAD_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A regtest chain of `count` blocks, each with one 64-byte receipt.
fn mine_chain(count: usize) -> Vec<Block> {
    let mut chain = Chain::new(NetworkParams::regtest());
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let receipt = Receipt(format!("{i:064}").into_bytes());
        let block = chain
            .template(NodeId([1; 32]), vec![receipt], NOW)
            .mine_with_reference(NonceRange::FULL)
            .expect("regtest");
        chain.accept_block(block.clone(), NOW).expect("valid");
        blocks.push(block);
    }
    blocks
}

fn accept(c: &mut Criterion) {
    let blocks = mine_chain(blocks_to_mine());
    let params = NetworkParams::regtest();
    let mut group = c.benchmark_group("chain_accept");
    group.throughput(Throughput::Elements(blocks.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("in_memory", |b| {
        b.iter(|| {
            let mut chain = Chain::new(params.clone());
            for block in &blocks {
                chain.accept_block(block.clone(), NOW).expect("valid");
            }
            chain.height()
        })
    });

    group.bench_function("with_redb_store", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut store =
                    ChainStore::open(dir.path().join("chain.redb"), &params).expect("store");
                let mut chain = Chain::new(params.clone());
                let start = Instant::now();
                for block in &blocks {
                    let accepted = chain.accept_block(block.clone(), NOW).expect("valid");
                    store
                        .store_block_and_tip(block, &accepted, &chain)
                        .expect("stored");
                }
                total += start.elapsed();
            }
            total
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    {
        let mut store = ChainStore::open(&path, &params).expect("store");
        let mut chain = Chain::new(params.clone());
        for block in &blocks {
            let accepted = chain.accept_block(block.clone(), NOW).expect("valid");
            store
                .store_block_and_tip(block, &accepted, &chain)
                .expect("stored");
        }
    }
    let store = ChainStore::open(&path, &params).expect("reopen");
    group.bench_function("load_chain_from_store", |b| {
        b.iter(|| store.load_chain().expect("load").height())
    });
    group.finish();
}

criterion_group!(benches, accept);
criterion_main!(benches);
