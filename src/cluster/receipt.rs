//! Training receipts on the chain: a committed round as a `pow::Receipt` item and back. The
//! bytes are a pure function of the committed command, so every node that applies the round
//! makes the same receipt and the receipt pool dedupes them by id. No I/O.
//!
//! Layout: `"HGRR" | version u8 | RoundCommitted (see command)`.

use crate::codec::{Decode, DecodeError, Reader, Writer};
use crate::pow::{MAX_RECEIPT_BYTES, Receipt};

use super::command::RoundCommitted;

const MAGIC: &[u8; 4] = b"HGRR";
/// The receipt format version `to_receipt` writes and `from_receipt` accepts.
pub const RECEIPT_VERSION: u8 = 1;

/// The receipt of a committed round.
pub fn to_receipt(round: &RoundCommitted) -> Receipt {
    let mut out = Writer::new();
    out.raw(MAGIC).u8(RECEIPT_VERSION).put(round);
    let bytes = out.into_bytes();
    debug_assert!(bytes.len() <= MAX_RECEIPT_BYTES, "contributors are bounded");
    Receipt(bytes)
}

/// Whether a block's receipt item is a training receipt (of any version).
pub fn is_round_receipt(receipt: &Receipt) -> bool {
    receipt.0.starts_with(MAGIC)
}

/// The committed round a training receipt names; other items and other versions are errors.
pub fn from_receipt(receipt: &Receipt) -> Result<RoundCommitted, DecodeError> {
    let mut r = Reader::new(&receipt.0);
    if r.take(4, "receipt magic")? != MAGIC {
        return Err(DecodeError::Invalid {
            what: "receipt",
            reason: "not a training receipt",
            offset: 0,
        });
    }
    let offset = r.offset();
    let version = r.u8("receipt version")?;
    if version != RECEIPT_VERSION {
        return Err(DecodeError::BadTag {
            what: "receipt version",
            tag: version,
            offset,
        });
    }
    let round = RoundCommitted::decode_from(&mut r)?;
    r.finish()?;
    Ok(round)
}

/// A training receipt found on the best chain.
#[derive(Debug, Clone, PartialEq)]
pub struct OnChain {
    /// Height of the block on the best chain (genesis = 0).
    pub height: u64,
    /// The block whose coinbase carries the receipt.
    pub block: crate::pow::BlockHash,
    /// The committed round the receipt records.
    pub round: RoundCommitted,
}

/// The training receipts in the best chain's last `max_blocks` blocks, by round (a round
/// mined twice on the best chain is listed at its first block).
pub fn on_best_chain(chain: &crate::pow::Chain, max_blocks: u64) -> Vec<OnChain> {
    let top = chain.height();
    let mut found: Vec<OnChain> = Vec::new();
    for height in top.saturating_sub(max_blocks)..=top {
        let Some(hash) = chain.hash_at_height(height) else {
            continue;
        };
        let Some(block) = chain.block(&hash) else {
            continue;
        };
        for receipt in block.body.receipts.iter().filter(|r| is_round_receipt(r)) {
            if let Ok(round) = from_receipt(receipt) {
                found.push(OnChain {
                    height,
                    block: hash,
                    round,
                });
            }
        }
    }
    found.sort_by_key(|f| (f.round.round, f.height));
    found.dedup_by_key(|f| f.round.round);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::command::tests::round;
    use crate::node_id::NodeId;
    use proptest::prelude::*;

    #[test]
    fn a_round_makes_the_same_receipt_everywhere_and_decodes_back() {
        let committed = round(12);
        let a = to_receipt(&committed);
        let b = to_receipt(&committed.clone());
        assert_eq!(a.id(), b.id());
        assert!(is_round_receipt(&a));
        assert_eq!(from_receipt(&a), Ok(committed.clone()));
        let other = to_receipt(&RoundCommitted {
            loss: 0.5,
            ..committed
        });
        assert_ne!(other.id(), a.id());
    }

    #[test]
    fn the_largest_round_fits_a_receipt() {
        let big = RoundCommitted {
            contributors: vec![NodeId([0xff; 32]); crate::cluster::command::MAX_CONTRIBUTORS],
            ..round(1)
        };
        assert!(to_receipt(&big).0.len() <= MAX_RECEIPT_BYTES);
    }

    #[test]
    fn other_items_are_not_rounds() {
        let coinbase_like = Receipt(b"round 1".to_vec());
        assert!(!is_round_receipt(&coinbase_like));
        assert!(from_receipt(&coinbase_like).is_err());
        let mut newer = to_receipt(&round(1));
        newer.0[4] = 2;
        assert!(is_round_receipt(&newer));
        assert!(matches!(
            from_receipt(&newer),
            Err(DecodeError::BadTag {
                what: "receipt version",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_receipts_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = from_receipt(&Receipt(bytes.clone()));
            let mut tagged = b"HGRR\x01".to_vec();
            tagged.extend_from_slice(&bytes);
            if let Ok(committed) = from_receipt(&Receipt(tagged.clone())) {
                prop_assert_eq!(to_receipt(&committed).0, tagged);
            }
        }
    }
}
