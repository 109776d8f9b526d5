//! The redb chain store with real files: restart restores the chain (side branches and reorgs
//! included), corrupt and foreign files and other networks' stores give clear errors, and a
//! writer process killed with SIGKILL at random moments always leaves a consistent store.

mod chain_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chain_support::{NOW, mine_on, miner, receipt};
use hashgrad::pow::{Accepted, Block, Chain, ChainStore, NetworkParams, StoreError};
use rand::{Rng, SeedableRng};

fn accept_and_store(chain: &mut Chain, store: &mut ChainStore, block: Block) -> Accepted {
    let accepted = chain.accept_block(block.clone(), NOW).expect("valid block");
    store
        .store_block_and_tip(&block, &accepted, chain)
        .expect("stored");
    accepted
}

fn assert_same_chain(a: &Chain, b: &Chain) {
    assert_eq!(a.tip(), b.tip());
    assert_eq!(a.height(), b.height());
    assert_eq!(a.total_work(), b.total_work());
    assert_eq!(a.block_count(), b.block_count());
    for h in 0..=a.height() {
        assert_eq!(a.hash_at_height(h), b.hash_at_height(h), "height {h}");
    }
}

#[test]
fn a_reopened_store_restores_the_chain_with_side_branches_and_reorgs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let params = NetworkParams::regtest();
    let mut chain = Chain::new(params.clone());
    {
        let mut store = ChainStore::open(&path, &params).expect("new store");
        for i in 0..10 {
            let block = mine_on(
                &chain,
                &chain.tip(),
                miner(1),
                vec![receipt(&format!("m{i}"))],
            );
            accept_and_store(&mut chain, &mut store, block);
        }
        // A side branch from height 4 overtakes: a reorg of 6 blocks.
        let mut parent = chain.hash_at_height(4).expect("height 4");
        let mut last = None;
        for i in 0..7 {
            let block = mine_on(&chain, &parent, miner(2), vec![receipt(&format!("s{i}"))]);
            parent = block.hash();
            last = Some(accept_and_store(&mut chain, &mut store, block));
        }
        assert!(matches!(last, Some(Accepted::NewTip { reorg: Some(_) })));
        assert_eq!(chain.height(), 11);
        // Duplicates and orphans write nothing.
        let dup = chain.block(&chain.tip()).expect("tip").clone();
        accept_and_store(&mut chain, &mut store, dup);
        store.put_peer("127.0.0.1:9000", 1234).expect("peer");
        store.put_peer("127.0.0.1:9001", 99).expect("peer");
        store.put_peer("127.0.0.1:9000", 5678).expect("peer update");
        store.remove_peer("127.0.0.1:9001").expect("peer removed");
        assert_eq!(store.tip().expect("tip"), chain.tip());
    }
    let store = ChainStore::open(&path, &params).expect("reopen");
    let restored = store.load_chain().expect("load");
    assert_same_chain(&chain, &restored);
    assert_eq!(
        store.peers().expect("peers"),
        vec![("127.0.0.1:9000".to_string(), 5678)]
    );
    for h in 0..=chain.height() {
        assert_eq!(
            store.hash_at_height(h).expect("read"),
            chain.hash_at_height(h)
        );
    }
    assert_eq!(
        store.hash_at_height(chain.height() + 1).expect("read"),
        None
    );
    let stale = chain.hash_at_height(11).expect("tip");
    assert_eq!(
        store.block(&stale).expect("read").map(|b| b.hash()),
        Some(stale)
    );
}

#[test]
fn random_bytes_are_a_corrupt_store_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let bytes: Vec<u8> = (0..64 * 1024).map(|_| rng.random()).collect();
    std::fs::write(&path, bytes).expect("write");
    let err = ChainStore::open(&path, &NetworkParams::regtest()).expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("move it away"), "{err}");
}

#[test]
fn a_truncated_store_is_an_error_or_a_consistent_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let params = NetworkParams::regtest();
    {
        let mut chain = Chain::new(params.clone());
        let mut store = ChainStore::open(&path, &params).expect("new store");
        for _ in 0..20 {
            let block = mine_on(&chain, &chain.tip(), miner(1), vec![receipt("x")]);
            let _ = chain.accept_block(block.clone(), NOW);
            let accepted = Accepted::NewTip { reorg: None };
            store
                .store_block_and_tip(&block, &accepted, &chain)
                .expect("stored");
        }
    }
    let len = std::fs::metadata(&path).expect("file").len();
    for keep in [len / 2, len / 4, 512] {
        let copy = dir.path().join(format!("cut-{keep}.redb"));
        std::fs::copy(&path, &copy).expect("copy");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .and_then(|f| f.set_len(keep))
            .expect("truncate");
        match ChainStore::open(&copy, &params).and_then(|s| s.load_chain()) {
            Ok(chain) => assert!(chain.height() <= 20),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn a_redb_file_of_another_schema_is_foreign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = NetworkParams::regtest();

    let other = dir.path().join("other.redb");
    write_u64_table(&other, "accounts");
    let err = ChainStore::open(&other, &params).expect_err("foreign");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");

    // Same table name, other types.
    let clash = dir.path().join("clash.redb");
    write_u64_table(&clash, "hashgrad_meta");
    let err = ChainStore::open(&clash, &params).expect_err("foreign");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[test]
fn a_store_of_another_network_is_refused_and_a_second_opener_is_locked_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let regtest = NetworkParams::regtest();
    let store = ChainStore::open(&path, &regtest).expect("new store");
    let err = ChainStore::open(&path, &regtest).expect_err("already open");
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    drop(store);
    let devnet = NetworkParams::by_name("devnet").expect("devnet");
    let err = ChainStore::open(&path, &devnet).expect_err("wrong network");
    assert!(matches!(err, StoreError::WrongNetwork { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("regtest") && text.contains("devnet"),
        "{text}"
    );
    let chain = ChainStore::open(&path, &regtest)
        .expect("right network")
        .load_chain()
        .expect("genesis only");
    assert_eq!(chain.height(), 0);
    assert_eq!(chain.tip(), regtest.genesis_hash());
}

const CHILD_ENV: &str = "HASHGRAD_CHAIN_STORE_CRASH_CHILD";

/// The crash test's writer: when started by `a_store_killed_at_random_moments_stays_consistent`
/// it appends blocks (with a 1-block reorg every fifth block) until it is killed; otherwise it
/// does nothing.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let params = NetworkParams::regtest();
    let mut store = ChainStore::open(&path, &params).expect("child opens the store");
    let mut chain = store.load_chain().expect("child loads the chain");
    let mut store_one = |chain: &mut Chain, block: Block| {
        let accepted = chain.accept_block(block.clone(), NOW).expect("valid");
        store
            .store_block_and_tip(&block, &accepted, chain)
            .expect("stored");
    };
    for i in 0u64.. {
        let tag = format!("crash-{}-{i}", std::process::id());
        if i % 5 == 4 && chain.height() > 0 {
            // A sibling of the tip, then its child: a one-block reorg.
            let fork = chain
                .hash_at_height(chain.height() - 1)
                .expect("parent of tip");
            let sibling = mine_on(&chain, &fork, miner(9), vec![receipt(&tag)]);
            let child = mine_on(
                &chain_with(&chain, &sibling),
                &sibling.hash(),
                miner(9),
                vec![],
            );
            store_one(&mut chain, sibling);
            store_one(&mut chain, child);
        } else {
            let block = mine_on(
                &chain,
                &chain.tip(),
                miner((i % 7) as u8),
                vec![receipt(&tag)],
            );
            store_one(&mut chain, block);
        }
    }
}

/// `chain` with `block` added (to mine a child of a block not yet accepted).
fn chain_with(chain: &Chain, block: &Block) -> Chain {
    let mut copy = chain.clone();
    copy.accept_block(block.clone(), NOW).expect("valid");
    copy
}

fn check_consistent(path: &Path, params: &NetworkParams) -> Chain {
    let store = ChainStore::open(path, params).expect("reopen after kill");
    let chain = store.load_chain().expect("consistent chain after kill");
    assert_eq!(store.tip().expect("tip"), chain.tip());
    for h in 0..=chain.height() {
        let hash = store
            .hash_at_height(h)
            .expect("read")
            .expect("every height present");
        assert!(store.block(&hash).expect("read").is_some(), "block at {h}");
        assert_eq!(chain.height_of(&hash), Some(h));
    }
    assert_eq!(
        store.hash_at_height(chain.height() + 1).expect("read"),
        None
    );
    chain
}

#[test]
fn a_store_killed_at_random_moments_stays_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let params = NetworkParams::regtest();
    drop(ChainStore::open(&path, &params).expect("new store"));
    let seed: u64 = rand::rng().random();
    println!("crash test seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let exe = std::env::current_exe().expect("test binary");
    let mut heights = Vec::new();
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        std::thread::sleep(Duration::from_millis(rng.random_range(150..600)));
        assert!(
            child.try_wait().expect("poll").is_none(),
            "writer exited early in round {round}"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        heights.push(check_consistent(&path, &params).height());
    }
    println!("heights after each kill: {heights:?}");
    assert!(heights[0] > 0, "the writer made progress");
    assert!(
        heights.windows(2).all(|w| w[0] <= w[1]),
        "a kill never loses a committed block: {heights:?}"
    );
}

#[test]
fn a_batch_of_blocks_with_a_reorg_is_stored_in_one_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain.redb");
    let params = NetworkParams::regtest();
    let mut chain = Chain::new(params.clone());
    let mut store = ChainStore::open(&path, &params).expect("new store");
    let genesis = chain.tip();
    let mut batch = Vec::new();
    // Five blocks on one branch, then six from the genesis on another: a 5-block reorg.
    for (count, who) in [(5, 1u8), (6, 2u8)] {
        let mut parent = genesis;
        for i in 0..count {
            let block = mine_on(
                &chain,
                &parent,
                miner(who),
                vec![receipt(&format!("{who}-{i}"))],
            );
            parent = block.hash();
            let accepted = chain.accept_block(block.clone(), NOW).expect("valid");
            batch.push((block, accepted));
        }
    }
    let pairs: Vec<(&Block, &Accepted)> = batch.iter().map(|(b, a)| (b, a)).collect();
    store.store_blocks_and_tip(&pairs, &chain).expect("stored");
    drop(store);
    let restored = ChainStore::open(&path, &params)
        .expect("reopen")
        .load_chain()
        .expect("load");
    assert_same_chain(&chain, &restored);
    assert_eq!(restored.block_count(), 12);
}

/// Creates a valid redb file holding one `u64 -> u64` table named `name` (not our schema).
fn write_u64_table(path: &std::path::Path, name: &str) {
    let db = redb::Database::create(path).expect("db");
    let write = db.begin_write().expect("txn");
    {
        let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new(name);
        write
            .open_table(table)
            .expect("table")
            .insert(1, 2)
            .expect("insert");
    }
    write.commit().expect("commit");
}
