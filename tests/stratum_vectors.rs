//! Known-answer vectors for Stratum's job parts: the header rebuilt from notify fields and
//! extranonces equals the header built the ordinary way — for a real Bitcoin block (block
//! 100000, `tests/data/stratum_bitcoin_100000.json`, source noted there) and for hashgrad
//! templates with 0 to 9 receipts, whose rebuilt blocks a chain then accepts.

use hashgrad::hash::reference::sha256d;
use hashgrad::hash::{NonceRange, StopFlag, reference};
use hashgrad::pow::{BlockHeader, Chain, NetworkParams, NodeId, Receipt};
use hashgrad::stratum::work::{JobParts, block_from_share, coinbase_branch, swap_words};
use serde_json::Value;

fn vector() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/stratum_bitcoin_100000.json"
    ))
    .expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in the vector"))
}

fn internal(display_hex: &str) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(display_hex, &mut bytes).expect("hex");
    bytes.reverse();
    bytes
}

#[test]
fn bitcoin_block_100000_header_is_rebuilt_from_its_stratum_job() {
    let v = vector();
    let header = hex::decode(text(&v, "header")).expect("header hex");
    let coinbase = hex::decode(text(&v, "coinbase")).expect("coinbase hex");
    let txids: Vec<[u8; 32]> = v["txids"]
        .as_array()
        .expect("txids")
        .iter()
        .map(|t| internal(t.as_str().expect("txid")))
        .collect();
    // The vector checks itself: coinbase → first txid, txids → merkle root, header → hash.
    assert_eq!(sha256d(&coinbase), txids[0]);
    assert_eq!(
        hashgrad::pow::merkle::merkle_root(&txids)[..],
        header[36..68]
    );
    assert_eq!(
        hashgrad::hash::display_hash(&sha256d(&header)),
        text(&v, "block_hash")
    );

    // The branch of leaf 0 and the prevhash word order, against the file's own values.
    let notify = &v["notify"];
    let branch: Vec<String> = coinbase_branch(&txids).iter().map(hex::encode).collect();
    let expected: Vec<&str> = notify["merkle_branch"]
        .as_array()
        .expect("branch")
        .iter()
        .map(|b| b.as_str().expect("branch hash"))
        .collect();
    assert_eq!(branch, expected);
    let mut prev = [0u8; 32];
    prev.copy_from_slice(&header[4..36]);
    assert_eq!(hex::encode(swap_words(&prev)), text(notify, "prevhash"));

    // A mining.notify as a pool would send it, read back, rebuilds the header byte for byte.
    let split = v["coinb1_len"].as_u64().expect("coinb1_len") as usize;
    let en1 = hex::decode(text(&v, "extranonce1")).expect("en1");
    let en2 = hex::decode(text(&v, "extranonce2")).expect("en2");
    let coinb2 = &coinbase[split + en1.len() + en2.len()..];
    assert_eq!(
        [&coinbase[..split], &en1[..], &en2[..], coinb2].concat(),
        coinbase,
        "the split covers the coinbase"
    );
    let params = serde_json::json!([
        "b100000",
        text(notify, "prevhash"),
        hex::encode(&coinbase[..split]),
        hex::encode(coinb2),
        expected,
        text(notify, "version"),
        text(notify, "nbits"),
        text(notify, "ntime"),
        true
    ]);
    let params = params.as_array().expect("params").clone();
    let (job_id, parts, clean) = JobParts::from_notify(&params).expect("notify decodes");
    assert_eq!((job_id.as_str(), clean), ("b100000", true));
    let nonce = u32::from_str_radix(text(notify, "nonce"), 16).expect("nonce");
    let rebuilt = parts.header(&en1, &en2, parts.ntime, nonce);
    assert_eq!(rebuilt[..], header[..]);
    // And what we write as notify params reads back to the same parts.
    let written = parts.notify_params("b100000", true);
    let (_, again, _) =
        JobParts::from_notify(written.as_array().expect("array")).expect("round trip");
    assert_eq!(again, parts);
}

#[test]
fn hashgrad_templates_rebuild_to_the_ordinary_header_and_the_chain_accepts_them() {
    let params = NetworkParams::regtest();
    let now = u64::from(params.genesis.header.time) + 600;
    let miner = NodeId([0x5a; 32]);
    for receipts in 0..10usize {
        let chain = Chain::new(params.clone());
        let pool: Vec<Receipt> = (0..receipts)
            .map(|i| Receipt(format!("round {i}").into_bytes()))
            .collect();
        let template = chain.template(NodeId([1; 32]), pool, now);
        let parts = JobParts::from_template(&template, miner);
        assert_eq!(parts.coinb1.len(), 40, "miner id ‖ height");
        assert!(parts.coinb2.is_empty());
        let en1 = [0xde, 0xad, 0xbe, 0xef];
        let en2 = [1, 2, 3, u8::try_from(receipts).expect("small")];
        let ntime = template.header().time + 3;
        // Mine the Stratum header with the reference hasher, as a Stratum miner would.
        let mut job = template.job();
        job.header = parts.header(&en1, &en2, ntime, 0);
        let found = reference::search(&job, NonceRange::new(0, 4096), &StopFlag::new());
        let nonce = found
            .found
            .first()
            .expect("regtest: half of all nonces qualify")
            .nonce;
        let block = block_from_share(
            &template,
            miner,
            [en1, en2].concat().try_into().expect("8"),
            ntime,
            nonce,
        );
        // The ordinary way: the body's merkle root over coinbase and receipts.
        assert_eq!(block.header.merkle_root, block.body.merkle_root());
        assert_eq!(
            block.header.to_bytes(),
            parts.header(&en1, &en2, ntime, nonce),
            "{receipts} receipts"
        );
        assert_eq!(
            BlockHeader::from_bytes(&parts.header(&en1, &en2, ntime, nonce)),
            block.header
        );
        assert_eq!(block.body.coinbase.miner, miner);
        assert_eq!(
            block.body.coinbase.extra_nonce.to_le_bytes(),
            [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, receipts as u8]
        );
        let mut chain = chain;
        chain
            .accept_block(block, now + 10)
            .unwrap_or_else(|e| panic!("{receipts} receipts: {e}"));
        assert_eq!(chain.height(), 1);
    }
}
