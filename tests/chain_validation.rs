//! Every block validity rule, broken one at a time: each failure is its own `ChainError`
//! variant, and a refused block leaves the chain unchanged.

mod chain_support;

use chain_support::{NOW, mine_on, miner, receipt};
use hashgrad::hash::NonceRange;
use hashgrad::hash::reference::sha256d;
use hashgrad::pow::block::COINBASE_BYTES;
use hashgrad::pow::{
    Accepted, Block, Chain, ChainError, CompactBits, MAX_BLOCK_BYTES, MAX_RECEIPT_BYTES,
    MAX_RECEIPTS, NetworkParams, Receipt, Target,
};

fn regtest() -> Chain {
    Chain::new(NetworkParams::regtest())
}

/// Re-mines `block` after a header or body change (merkle root recomputed unless
/// `keep_root`), so only the rule under test is broken.
fn remine(mut block: Block, keep_root: bool) -> Block {
    if !keep_root {
        block.header.merkle_root = block.merkle_root();
    }
    let target = Target::from_compact(block.header.bits).expect("decodable bits");
    for nonce in 0..u32::MAX {
        block.header.nonce = nonce;
        if target.is_met_by(&sha256d(&block.header.to_bytes())) {
            return block;
        }
    }
    panic!("no nonce meets the target");
}

/// Accepts `block` and checks that it is refused without changing the chain.
fn refuse(chain: &mut Chain, block: Block) -> ChainError {
    let (tip, count) = (chain.tip(), chain.block_count());
    let hash = block.hash();
    let err = chain
        .accept_block(block, NOW)
        .expect_err("block must be refused");
    assert_eq!(chain.tip(), tip);
    assert_eq!(chain.block_count(), count);
    assert!(!chain.contains(&hash));
    err
}

fn good_child(chain: &Chain) -> Block {
    mine_on(
        chain,
        &chain.tip(),
        miner(1),
        vec![receipt("a"), receipt("b")],
    )
}

#[test]
fn a_valid_child_is_accepted_then_duplicate() {
    let mut chain = regtest();
    let block = good_child(&chain);
    let hash = block.hash();
    assert_eq!(
        chain.accept_block(block.clone(), NOW),
        Ok(Accepted::NewTip { reorg: None })
    );
    assert_eq!(chain.tip(), hash);
    assert_eq!(chain.height(), 1);
    assert_eq!(chain.accept_block(block, NOW), Ok(Accepted::Duplicate));
}

#[test]
fn unknown_parent_is_an_orphan_and_not_kept() {
    let mut chain = regtest();
    let mut other = regtest();
    let first = good_child(&other);
    let first_hash = first.hash();
    other.accept_block(first, NOW).expect("valid");
    let second = good_child(&other);
    let second_hash = second.hash();
    assert_eq!(
        chain.accept_block(second, NOW),
        Ok(Accepted::Orphan {
            missing_parent: first_hash
        })
    );
    assert!(!chain.contains(&second_hash));
}

#[test]
fn proof_of_work_must_meet_the_bits() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    let target = Target::from_compact(block.header.bits).expect("bits");
    while target.is_met_by(&block.hash().0) {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    let err = refuse(&mut chain, block);
    assert!(
        matches!(err, ChainError::InsufficientProofOfWork { .. }),
        "{err}"
    );
}

#[test]
fn undecodable_bits_are_refused() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.header.bits = CompactBits(0x0100_0000); // a zero target
    let err = refuse(&mut chain, block);
    assert!(matches!(err, ChainError::InvalidBits { .. }), "{err}");
}

#[test]
fn bits_must_be_what_the_retarget_demands() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.header.bits = CompactBits(0x2000_ffff); // harder than regtest's fixed target
    let block = remine(block, true);
    let err = refuse(&mut chain, block);
    assert!(
        matches!(
            err,
            ChainError::WrongBits {
                got: CompactBits(0x2000_ffff),
                expected: CompactBits(0x207f_ffff),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn time_must_pass_the_median_of_the_last_eleven() {
    let mut chain = regtest();
    let genesis_time = chain.tip_header().time;
    let mut block = good_child(&chain);
    block.header.time = genesis_time; // the median of one block is its time
    let err = refuse(&mut chain, remine(block, true));
    assert!(
        matches!(err, ChainError::TimeTooOld { median, .. } if median == genesis_time),
        "{err}"
    );
}

#[test]
fn time_must_not_run_two_hours_ahead() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.header.time = (NOW + 2 * 3600 + 1) as u32;
    let err = refuse(&mut chain, remine(block.clone(), true));
    assert!(matches!(err, ChainError::TimeTooNew { .. }), "{err}");
    block.header.time = (NOW + 2 * 3600) as u32;
    let block = remine(block, true);
    assert!(
        chain.accept_block(block, NOW).is_ok(),
        "exactly 2 h ahead is fine"
    );
}

#[test]
fn merkle_root_must_match_the_body() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.body.receipts[1] = receipt("swapped after mining");
    let err = refuse(&mut chain, block);
    assert!(matches!(err, ChainError::BadMerkleRoot { .. }), "{err}");
}

#[test]
fn a_repeated_receipt_is_refused_even_with_a_matching_root() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.body.receipts = vec![receipt("x"), receipt("y"), receipt("y")];
    let err = refuse(&mut chain, remine(block, false));
    assert!(matches!(err, ChainError::DuplicateReceipt { .. }), "{err}");
}

#[test]
fn coinbase_height_must_follow_the_parent() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.body.coinbase.height = 7;
    let err = refuse(&mut chain, remine(block, false));
    assert!(
        matches!(
            err,
            ChainError::BadCoinbaseHeight {
                got: 7,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn version_zero_is_refused() {
    let mut chain = regtest();
    let mut block = good_child(&chain);
    block.header.version = 0;
    let err = refuse(&mut chain, remine(block, true));
    assert!(
        matches!(err, ChainError::BadVersion { version: 0, .. }),
        "{err}"
    );
}

#[test]
fn size_limits_are_enforced() {
    let mut chain = regtest();
    let base = good_child(&chain);

    let mut too_many = base.clone();
    too_many.body.receipts = (0..=MAX_RECEIPTS as u32)
        .map(|i| Receipt(i.to_le_bytes().to_vec()))
        .collect();
    let err = refuse(&mut chain, too_many);
    assert!(matches!(err, ChainError::TooManyReceipts { .. }), "{err}");

    let mut big_item = base.clone();
    big_item.body.receipts = vec![Receipt(vec![1; MAX_RECEIPT_BYTES + 1])];
    let err = refuse(&mut chain, big_item);
    assert!(
        matches!(err, ChainError::ReceiptTooLarge { index: 0, .. }),
        "{err}"
    );

    let mut big_block = base;
    let items = MAX_BLOCK_BYTES / MAX_RECEIPT_BYTES + 1;
    big_block.body.receipts = (0..items)
        .map(|i| Receipt(vec![i as u8; MAX_RECEIPT_BYTES]))
        .collect();
    assert!(big_block.encoded_len() > MAX_BLOCK_BYTES);
    let err = refuse(&mut chain, big_block);
    assert!(matches!(err, ChainError::BlockTooLarge { .. }), "{err}");
}

#[test]
fn another_networks_genesis_is_refused() {
    let mut chain = regtest();
    let devnet = NetworkParams::by_name("devnet").expect("devnet");
    let err = refuse(&mut chain, devnet.genesis.clone());
    assert!(matches!(err, ChainError::ForeignGenesis { .. }), "{err}");
    assert_eq!(
        chain.accept_block(NetworkParams::regtest().genesis, NOW),
        Ok(Accepted::Duplicate)
    );
}

#[test]
fn templates_roll_into_fresh_valid_blocks() {
    let mut chain = regtest();
    let mut template = chain.template(miner(3), vec![receipt("r")], NOW);
    let job = template.job();
    assert_eq!(
        job.target,
        Target::from_compact(template.header().bits).expect("bits")
    );
    assert_eq!(&job.header[..76], &template.header().to_bytes()[..76]);
    let root = template.header().merkle_root;
    template.roll_extra_nonce();
    assert_ne!(
        template.header().merkle_root,
        root,
        "extra-nonce changes the root"
    );
    assert!(
        template.roll_time(NOW + 5),
        "a later clock is a fresh nonce space"
    );
    assert_eq!(template.header().time, (NOW + 5) as u32);
    let block = template
        .mine_with_reference(NonceRange::FULL)
        .expect("regtest");
    assert_eq!(block.body.coinbase.extra_nonce, 1);
    assert_eq!(block.encode().len(), block.encoded_len());
    assert!(block.encoded_len() > COINBASE_BYTES);
    assert_eq!(
        chain.accept_block(block, NOW),
        Ok(Accepted::NewTip { reorg: None })
    );
}

#[test]
fn template_clock_behind_the_median_is_raised_past_it() {
    let mut chain = regtest();
    let tip = chain.tip();
    chain_support::extend(&mut chain, tip, 3, miner(1), |_| Vec::new());
    let mtp = chain.median_time_past(&chain.tip()).expect("tip known");
    let template = chain.template(miner(2), Vec::new(), 0);
    assert_eq!(template.header().time, mtp + 1);
    let block = template
        .mine_with_reference(NonceRange::FULL)
        .expect("regtest");
    assert!(chain.accept_block(block, NOW).is_ok());
}

/// Re-mines a lone header after a change, so only the rule under test is broken.
fn remine_header(mut header: hashgrad::pow::BlockHeader) -> hashgrad::pow::BlockHeader {
    let target = Target::from_compact(header.bits).expect("decodable bits");
    for nonce in 0..u32::MAX {
        header.nonce = nonce;
        if target.is_met_by(&sha256d(&header.to_bytes())) {
            return header;
        }
    }
    panic!("no nonce meets the target");
}

#[test]
fn headers_are_checked_before_any_body_without_changing_the_chain() {
    let mut peer = regtest();
    let genesis = peer.tip();
    chain_support::extend(&mut peer, genesis, 30, miner(2), |_| Vec::new());
    let headers: Vec<_> = (1..=30)
        .map(|h| peer.header_at_height(h).expect("best chain"))
        .collect();
    let mut fresh = regtest();
    assert_eq!(fresh.check_headers(&headers, NOW), Ok(()));
    assert_eq!(fresh.check_headers(&[], NOW), Ok(()));
    assert_eq!(fresh.block_count(), 1, "checking headers stores nothing");

    // Not connected: the first header's parent is unknown here, or one is missing between.
    let unconnected = fresh.check_headers(&headers[14..], NOW);
    assert!(
        matches!(unconnected, Err(ChainError::UnconnectedHeader { parent, .. }) if parent == headers[13].hash()),
        "{unconnected:?}"
    );
    let gap: Vec<_> = headers[..5].iter().chain(&headers[6..]).copied().collect();
    assert!(matches!(
        fresh.check_headers(&gap, NOW),
        Err(ChainError::UnconnectedHeader { .. })
    ));

    // Each header rule, broken in the last header (so the context comes from its
    // predecessors, not from the chain).
    let mut last = headers[29];
    let target = Target::from_compact(last.bits).expect("bits");
    last.nonce = (0..u32::MAX)
        .find(|&n| {
            last.nonce = n;
            !target.is_met_by(&sha256d(&last.to_bytes()))
        })
        .expect("a nonce that misses");
    let broken = |header| {
        headers[..29]
            .iter()
            .copied()
            .chain([header])
            .collect::<Vec<_>>()
    };
    assert!(matches!(
        fresh.check_headers(&broken(last), NOW),
        Err(ChainError::InsufficientProofOfWork { .. })
    ));
    let mut old = headers[29];
    old.time = 1;
    assert!(matches!(
        fresh.check_headers(&broken(remine_header(old)), NOW),
        Err(ChainError::TimeTooOld { .. })
    ));
    let mut future = headers[29];
    future.time = (NOW + 3 * 60 * 60) as u32;
    assert!(matches!(
        fresh.check_headers(&broken(remine_header(future)), NOW),
        Err(ChainError::TimeTooNew { .. })
    ));
    let mut harder = headers[29];
    harder.bits = CompactBits(0x2000_ffff);
    assert!(matches!(
        fresh.check_headers(&broken(remine_header(harder)), NOW),
        Err(ChainError::WrongBits { .. })
    ));
    let mut version = headers[29];
    version.version = 0;
    assert!(matches!(
        fresh.check_headers(&broken(remine_header(version)), NOW),
        Err(ChainError::BadVersion { .. })
    ));

    // With half the bodies in, the rest still checks from the chain's own context.
    for h in 1..=15 {
        let block = peer.block(&headers[h - 1].hash()).expect("known").clone();
        fresh.accept_block(block, NOW).expect("valid");
    }
    assert_eq!(fresh.check_headers(&headers[15..], NOW), Ok(()));
}
