//! Bitcoin-style merkle roots: sha256d of concatenated pairs, the last node duplicated when a
//! level has an odd count.
//!
//! Knows only leaves (32-byte hashes); which items become leaves is `block`'s business. The
//! duplication makes `[a, b, c]` and `[a, b, c, c]` share a root (CVE-2012-2459), which is why
//! validation rejects blocks that repeat a receipt.

use crate::hash::reference::sha256d;

/// The merkle root of `leaves`; a single leaf is its own root, no leaves give all zeros.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return [0; 32];
    }
    let mut level: Vec<[u8; 32]> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let left = pair[0];
                let right = pair.get(1).copied().unwrap_or(left);
                let mut joined = [0u8; 64];
                joined[..32].copy_from_slice(&left);
                joined[32..].copy_from_slice(&right);
                sha256d(&joined)
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_display(hex_text: &str) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).expect("hex");
        bytes.reverse();
        bytes
    }

    #[test]
    fn bitcoin_block_100000_merkle_root() {
        // Bitcoin block 100000: four transactions and the root in its header.
        let txids = [
            "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
            "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
            "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
            "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
        ]
        .map(from_display);
        assert_eq!(
            merkle_root(&txids),
            from_display("f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766")
        );
    }

    #[test]
    fn odd_levels_duplicate_the_last_node() {
        let leaves = [[1u8; 32], [2; 32], [3; 32]];
        let padded = [[1u8; 32], [2; 32], [3; 32], [3; 32]];
        assert_eq!(merkle_root(&leaves), merkle_root(&padded));
        assert_ne!(merkle_root(&leaves), merkle_root(&leaves[..2]));
        assert_eq!(merkle_root(&leaves[..1]), leaves[0]);
    }
}
