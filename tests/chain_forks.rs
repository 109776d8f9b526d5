//! Fork choice by cumulative work: side branches, reorgs of any depth that return the losing
//! branch's receipts (and only those the new best chain lacks), ties, locators and
//! headers-first sync, and the receipt pool following along.

mod chain_support;

use std::collections::HashSet;

use chain_support::{NOW, extend, mine_on, miner, receipt};
use hashgrad::pow::{Accepted, BlockHash, Chain, NetworkParams, Receipt, ReceiptPool, Reorg};

fn regtest() -> Chain {
    Chain::new(NetworkParams::regtest())
}

fn tagged(prefix: &'static str) -> impl FnMut(usize) -> Vec<Receipt> {
    move |i| vec![receipt(&format!("{prefix}-{i}"))]
}

#[test]
fn equal_work_keeps_the_first_seen_branch() {
    let mut chain = regtest();
    let genesis = chain.tip();
    let a = mine_on(&chain, &genesis, miner(1), Vec::new());
    let b = mine_on(&chain, &genesis, miner(2), Vec::new());
    let (a_hash, b_hash) = (a.hash(), b.hash());
    assert_eq!(
        chain.accept_block(a, NOW),
        Ok(Accepted::NewTip { reorg: None })
    );
    assert_eq!(chain.accept_block(b, NOW), Ok(Accepted::SideBranch));
    assert_eq!(chain.tip(), a_hash);
    assert!(chain.contains(&b_hash));
    assert!(!chain.is_best(&b_hash));
    assert_eq!(chain.block_count(), 3);
}

#[test]
fn a_longer_side_branch_takes_over_with_one_more_block() {
    let mut chain = regtest();
    let genesis = chain.tip();
    let main = extend(&mut chain, genesis, 3, miner(1), tagged("main"));
    let side = extend(&mut chain, genesis, 3, miner(2), tagged("side"));
    assert_eq!(chain.tip(), main[2], "equal work: no switch");
    let next = mine_on(&chain, &side[2], miner(2), vec![receipt("side-3")]);
    let next_hash = next.hash();
    let Ok(Accepted::NewTip { reorg: Some(reorg) }) = chain.accept_block(next, NOW) else {
        panic!("expected a reorg");
    };
    let mut connected = side.clone();
    connected.push(next_hash);
    assert_eq!(reorg.connected, connected);
    assert_eq!(reorg.disconnected, vec![main[2], main[1], main[0]]);
    assert_eq!(
        reorg.returned_receipts,
        vec![receipt("main-0"), receipt("main-1"), receipt("main-2")]
    );
    assert_eq!(chain.tip(), next_hash);
    assert_eq!(chain.height(), 4);
    for (i, hash) in connected.iter().enumerate() {
        assert_eq!(chain.hash_at_height(i as u64 + 1), Some(*hash));
    }
}

#[test]
fn a_fifty_block_reorg_returns_every_receipt_the_new_chain_lacks() {
    let mut chain = regtest();
    let genesis = chain.tip();
    let common = extend(&mut chain, genesis, 5, miner(1), tagged("common"));
    let fork = *common.last().expect("five blocks");
    // The losing branch: 50 blocks, each with a unique receipt and one shared receipt that the
    // winning branch also mines (it must not come back).
    let losing = extend(&mut chain, fork, 50, miner(1), |i| {
        vec![
            receipt(&format!("lost-{i}")),
            receipt(&format!("shared-{i}")),
        ]
    });
    assert_eq!(chain.tip(), losing[49]);
    let mut winning = Vec::new();
    let mut parent = fork;
    let mut last = None;
    for i in 0..51 {
        let receipts = if i < 50 {
            vec![
                receipt(&format!("shared-{i}")),
                receipt(&format!("won-{i}")),
            ]
        } else {
            vec![receipt("won-last")]
        };
        let block = mine_on(&chain, &parent, miner(2), receipts);
        parent = block.hash();
        winning.push(parent);
        last = Some(chain.accept_block(block, NOW).expect("valid"));
        if i < 50 {
            assert_eq!(
                last,
                Some(Accepted::SideBranch),
                "block {i} of the side branch"
            );
        }
    }
    let Some(Accepted::NewTip { reorg: Some(reorg) }) = last else {
        panic!("the 51st block must reorg, got {last:?}");
    };
    assert_eq!(reorg.disconnected.len(), 50);
    assert_eq!(reorg.connected, winning);
    let expected: Vec<Receipt> = (0..50).map(|i| receipt(&format!("lost-{i}"))).collect();
    assert_eq!(reorg.returned_receipts, expected);
    assert_eq!(chain.height(), 56);
    assert!(chain.has_receipt(&receipt("shared-7").id()));
    assert!(!chain.has_receipt(&receipt("lost-7").id()));
    assert!(chain.has_receipt(&receipt("common-2").id()));
}

#[test]
fn reorg_back_and_forth_keeps_heights_and_receipts_consistent() {
    let mut chain = regtest();
    let genesis = chain.tip();
    let a = extend(&mut chain, genesis, 4, miner(1), tagged("a"));
    let b = extend(&mut chain, a[0], 4, miner(2), tagged("b")); // 5 blocks: wins
    assert_eq!(chain.tip(), b[3]);
    let a_more = extend(&mut chain, a[3], 2, miner(1), tagged("a-more")); // 6 blocks: wins
    assert_eq!(chain.tip(), a_more[1]);
    assert_eq!(chain.height(), 6);
    for h in 0..=chain.height() {
        let hash = chain.hash_at_height(h).expect("height on best chain");
        assert_eq!(chain.height_of(&hash), Some(h));
        assert!(chain.is_best(&hash));
    }
    for tag in ["a-0", "a-3", "a-more-1"] {
        assert!(chain.has_receipt(&receipt(tag).id()), "{tag}");
    }
    assert!(!chain.has_receipt(&receipt("b-0").id()));
}

#[test]
fn more_work_not_more_blocks_decides() {
    // Work per regtest block is equal, so compare cumulative work directly.
    let mut chain = regtest();
    let genesis = chain.tip();
    let long = extend(&mut chain, genesis, 3, miner(1), |_| Vec::new());
    let work = chain.total_work();
    assert_eq!(chain.chain_work(&long[2]), Some(work));
    assert!(chain.chain_work(&long[1]) < Some(work));
    assert_eq!(chain.chain_work(&BlockHash([9; 32])), None);
}

#[test]
fn locator_is_dense_then_exponential_and_ends_at_genesis() {
    let mut chain = regtest();
    let genesis = chain.tip();
    extend(&mut chain, genesis, 100, miner(1), |_| Vec::new());
    let locator = chain.locator();
    let heights: Vec<u64> = locator
        .iter()
        .map(|h| chain.height_of(h).expect("known"))
        .collect();
    assert_eq!(&heights[..10], &[100, 99, 98, 97, 96, 95, 94, 93, 92, 91]);
    assert_eq!(heights[10], 89);
    assert_eq!(heights[11], 85);
    assert_eq!(*heights.last().expect("non-empty"), 0);
    assert!(heights.windows(2).all(|w| w[0] > w[1]));
    assert!(locator.len() < 20);
}

#[test]
fn headers_after_a_locator_sync_a_lagging_chain() {
    let mut ahead = regtest();
    let genesis = ahead.tip();
    let hashes = extend(&mut ahead, genesis, 30, miner(1), |_| Vec::new());
    let mut behind = regtest();
    for hash in &hashes[..10] {
        let block = ahead.block(hash).expect("known").clone();
        behind.accept_block(block, NOW).expect("valid");
    }
    let headers = ahead.headers_after(&behind.locator(), 15);
    assert_eq!(headers.len(), 15);
    assert_eq!(headers[0].prev, hashes[9]);
    assert_eq!(headers[14].hash(), hashes[24]);
    let rest = ahead.headers_after(&[headers[14].hash()], 100);
    assert_eq!(rest.len(), 5);
    assert_eq!(
        ahead.headers_after(&[BlockHash([7; 32])], 3)[0].prev,
        genesis
    );
    for header in headers.iter().chain(&rest) {
        let block = ahead.block(&header.hash()).expect("known").clone();
        assert_eq!(
            behind.accept_block(block, NOW),
            Ok(Accepted::NewTip { reorg: None })
        );
    }
    assert_eq!(behind.tip(), ahead.tip());
    assert_eq!(behind.total_work(), ahead.total_work());
}

#[test]
fn a_side_branch_locator_finds_the_fork_point() {
    let mut chain = regtest();
    let genesis = chain.tip();
    let main = extend(&mut chain, genesis, 12, miner(1), |_| Vec::new());
    let mut other = chain.clone();
    extend(&mut other, main[5], 8, miner(2), |_| Vec::new());
    assert_ne!(other.tip(), chain.tip());
    let headers = chain.headers_after(&other.locator(), 100);
    assert_eq!(headers[0].prev, main[5]);
    assert_eq!(headers.len(), 6);
}

#[test]
fn the_pool_drops_mined_receipts_and_takes_back_returned_ones() {
    let mut chain = regtest();
    let mut pool = ReceiptPool::new(1 << 20);
    for tag in ["r1", "r2", "r3"] {
        assert!(pool.insert(receipt(tag)));
    }
    assert!(!pool.insert(receipt("r1")), "deduplicated by id");
    let genesis = chain.tip();

    // Our branch mines r1 and r2.
    let template = chain.template(miner(1), pool.select(1 << 20), NOW);
    assert_eq!(template.body().receipts.len(), 3);
    let ours = mine_on(
        &chain,
        &genesis,
        miner(1),
        vec![receipt("r1"), receipt("r2")],
    );
    let ours_hash = ours.hash();
    let accepted = chain.accept_block(ours, NOW).expect("valid");
    pool.update(&accepted, &chain);
    assert_eq!(pool.len(), 1);
    assert!(pool.contains(&receipt("r3").id()));

    // A heavier branch that holds r2 only wins: r1 comes back, r2 does not.
    let theirs = extend(&mut chain, genesis, 1, miner(2), |_| vec![receipt("r2")]);
    let next = mine_on(&chain, &theirs[0], miner(2), Vec::new());
    let accepted = chain.accept_block(next, NOW).expect("valid");
    let Accepted::NewTip {
        reorg:
            Some(Reorg {
                ref disconnected,
                ref returned_receipts,
                ..
            }),
    } = accepted
    else {
        panic!("expected a reorg, got {accepted:?}");
    };
    assert_eq!(disconnected, &vec![ours_hash]);
    assert_eq!(returned_receipts, &vec![receipt("r1")]);
    pool.update(&accepted, &chain);
    let pooled: HashSet<_> = pool.select(usize::MAX).iter().map(Receipt::id).collect();
    let expected: HashSet<_> = [receipt("r1").id(), receipt("r3").id()].into();
    assert_eq!(pooled, expected);
    assert_eq!(
        pool.select(usize::MAX)[0],
        receipt("r1"),
        "returned receipts go first"
    );
    assert_eq!(
        pool.select(receipt("r1").encoded_len()).len(),
        1,
        "byte budget"
    );
}
