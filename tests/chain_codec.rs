//! Property tests of the block decoder: it never panics on arbitrary bytes (or on mutations
//! of valid blocks), and encode/decode round-trips every block within the limits.

use hashgrad::pow::{
    Block, BlockBody, BlockHash, BlockHeader, Coinbase, CompactBits, MAX_BLOCK_BYTES, NodeId,
    Receipt,
};
use proptest::prelude::*;

fn arb_block() -> impl Strategy<Value = Block> {
    (
        any::<i32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<(u32, u32, u32)>(),
        any::<[u8; 32]>(),
        any::<(u64, u64)>(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
    )
        .prop_map(
            |(version, prev, merkle_root, (time, bits, nonce), miner, (height, extra), items)| {
                Block {
                    header: BlockHeader {
                        version,
                        prev: BlockHash(prev),
                        merkle_root,
                        time,
                        bits: CompactBits(bits),
                        nonce,
                    },
                    body: BlockBody {
                        coinbase: Coinbase {
                            miner: NodeId(miner),
                            height,
                            extra_nonce: extra,
                        },
                        receipts: items.into_iter().map(Receipt).collect(),
                    },
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Block::decode(&bytes);
    }

    #[test]
    fn round_trip(block in arb_block()) {
        let bytes = block.encode();
        prop_assert_eq!(bytes.len(), block.encoded_len());
        prop_assert!(bytes.len() <= MAX_BLOCK_BYTES);
        prop_assert_eq!(Block::decode(&bytes), Ok(block));
    }

    #[test]
    fn mutated_blocks_never_panic_and_reencode_exactly(
        block in arb_block(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = block.encode();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = cut.index(bytes.len());
        let prefix = Block::decode(&bytes[..len]);
        if let Ok(decoded) = Block::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes.clone());
            // A block occupies all its bytes: no strict prefix of it is a block.
            prop_assert!(prefix.is_err(), "prefix decoded: {:?}", prefix);
        }
    }
}
