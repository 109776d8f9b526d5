//! The wire codec: round trips, and a proptest that arbitrary bytes never panic the decoder
//! (the fuzz target `fuzz/fuzz_targets/raft_message.rs` does the same at length).

use proptest::prelude::*;

use crate::codec::DecodeError;
use crate::raft::message::{Message, MessageBody, MessageError};
use crate::raft::types::{Entry, EntryKind, Snapshot, SnapshotMeta};

fn samples() -> Vec<Message> {
    let entries = vec![
        Entry {
            index: 8,
            term: 3,
            kind: EntryKind::Normal,
            data: b"round 7".to_vec(),
        },
        Entry {
            index: 9,
            term: 3,
            kind: EntryKind::ConfChange,
            data: vec![0, 4, 0, 0, 0, 0, 0, 0, 0],
        },
        Entry {
            index: 10,
            term: 4,
            kind: EntryKind::Noop,
            data: vec![],
        },
    ];
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: 40,
            term: 6,
            voters: vec![1, 2, 3],
        },
        data: vec![9; 100],
    };
    [
        MessageBody::PreVote {
            last_index: 5,
            last_term: 2,
        },
        MessageBody::PreVoteResponse { reject: true },
        MessageBody::Vote {
            last_index: 5,
            last_term: 2,
            transfer: true,
        },
        MessageBody::VoteResponse { reject: false },
        MessageBody::Append {
            prev_index: 7,
            prev_term: 3,
            entries,
            commit: 6,
            read_round: 11,
        },
        MessageBody::AppendResponse {
            reject: false,
            index: 10,
            read_round: 11,
        },
        MessageBody::InstallSnapshot { snapshot },
        MessageBody::TimeoutNow,
        MessageBody::ReadIndex { request: 77 },
        MessageBody::ReadIndexResponse {
            request: 77,
            index: 12,
        },
    ]
    .into_iter()
    .map(|body| Message {
        from: 1,
        to: 2,
        term: 9,
        body,
    })
    .collect()
}

#[test]
fn every_message_kind_round_trips() {
    for msg in samples() {
        assert_eq!(Message::decode(&msg.encode()), Ok(msg));
    }
}

#[test]
fn decoder_reports_truncation_version_and_trailing_bytes() {
    for msg in samples() {
        let bytes = msg.encode();
        for cut in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..cut]).is_err(),
                "{msg:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Message::decode(&longer),
            Err(MessageError::Codec(DecodeError::Trailing { extra: 1, .. }))
        ));
    }
    assert_eq!(
        Message::decode(&[2]),
        Err(MessageError::Version { found: 2 })
    );
}

#[test]
fn huge_declared_lengths_are_refused_without_allocating() {
    // An append claiming u64::MAX entries, then a data length of 2^60.
    let mut bytes = vec![1];
    bytes.extend_from_slice(&[0; 24]);
    bytes.push(4);
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        Message::decode(&bytes),
        Err(MessageError::Codec(DecodeError::TooLong { .. }))
    ));
    let mut bytes = samples()[4].encode();
    // The first entry's data length field sits after the header (25), tag (1), 4 words (32),
    // count (8), term (8) and kind (1).
    bytes[75..83].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        Message::decode(&bytes),
        Err(MessageError::Codec(DecodeError::TooLong { .. }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_messages(pick in 0usize..10, pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = samples()[pick].encode();
        let at = pos % bytes.len();
        bytes[at] = byte;
        if let Ok(msg) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(msg.encode(), bytes);
        }
    }
}

/// Arbitrary (even nonsensical) messages from peers never panic a node: in every role, with
/// huge or tiny indexes and terms.
#[test]
fn stepping_arbitrary_messages_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut cluster = crate::raft::sim::Cluster::new(3, 99, crate::raft::Config::new);
    let leader = cluster
        .elect(200)
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("leader");
    for _ in 0..5 {
        cluster
            .propose(leader, b"x".to_vec())
            .unwrap_or_else(|v| panic!("{v}"));
    }
    cluster.settle().unwrap_or_else(|v| panic!("{v}"));
    let pick = |rng: &mut rand_chacha::ChaCha8Rng| -> u64 {
        match rng.random_range(0..4) {
            0 => 0,
            1 => rng.random_range(0..10),
            2 => u64::MAX - rng.random_range(0..3),
            _ => rng.random(),
        }
    };
    for i in 0..3000 {
        let to = 1 + (i % 3);
        let Some(raft) = cluster.nodes.get_mut(&to).and_then(|n| n.raft.as_mut()) else {
            continue;
        };
        let mut sample = samples()[rng.random_range(0..10)].clone();
        sample.from = rng.random_range(0..5);
        sample.to = to;
        sample.term = pick(&mut rng);
        match &mut sample.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            }
            | MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => {
                *last_index = pick(&mut rng);
                *last_term = pick(&mut rng);
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                commit,
                entries,
                ..
            } => {
                *prev_index = pick(&mut rng) % 1_000_000;
                *prev_term = pick(&mut rng);
                *commit = pick(&mut rng);
                for (k, e) in entries.iter_mut().enumerate() {
                    e.index = *prev_index + k as u64 + 1;
                    e.term = pick(&mut rng);
                }
            }
            MessageBody::AppendResponse { index, .. }
            | MessageBody::ReadIndexResponse { index, .. } => {
                *index = pick(&mut rng);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                snapshot.meta.index = pick(&mut rng) % 1_000_000;
                snapshot.meta.term = pick(&mut rng);
            }
            _ => {}
        }
        let _ = raft.step(sample);
        while raft.ready().is_some() {
            raft.advance();
        }
        raft.tick();
    }
}
