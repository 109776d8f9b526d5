//! Tests of `ClusterState`: applying rounds and config commands, client sessions, snapshots
//! and restores, with proptests of the snapshot codec.

use super::*;
use crate::cluster::command::tests::round as sample_round;
use crate::codec::Encode;
use crate::raft::SnapshotMeta;
use proptest::prelude::*;

fn genesis() -> StateHash {
    StateHash([1; 32])
}

/// Round `r` chained onto the rounds before it (round 1 starts at `genesis`).
fn chained(r: u64) -> RoundCommitted {
    RoundCommitted {
        parent_hash: if r == 1 {
            genesis()
        } else {
            StateHash([r as u8; 32])
        },
        params_hash: StateHash([r as u8 + 1; 32]),
        ..sample_round(r)
    }
}

fn bytes(round: RoundCommitted) -> Vec<u8> {
    Command::RoundCommitted(round).to_bytes()
}

fn put(client: u64, seq: u64, key: &str, value: &str) -> Vec<u8> {
    Command::ConfigPut {
        request: RequestId { client, seq },
        key: key.into(),
        value: value.into(),
    }
    .to_bytes()
}

fn state() -> ClusterState {
    ClusterState::new(genesis(), TrainingConfig::default())
}

#[test]
fn rounds_apply_in_order_and_duplicates_gaps_and_forks_are_refused() {
    let mut s = state();
    s.apply(1, &bytes(chained(1)));
    s.apply(2, &bytes(chained(1)));
    s.apply(3, &bytes(chained(3)));
    let fork = RoundCommitted {
        parent_hash: StateHash([9; 32]),
        ..chained(2)
    };
    s.apply(4, &bytes(fork));
    s.apply(5, &bytes(chained(2)));
    let events = s.take_applied();
    assert!(matches!(&events[0], Applied::Round { index: 1, round } if round.round == 1));
    assert_eq!(
        events[1..4]
            .iter()
            .map(|e| match e {
                Applied::RoundRefused { reason, .. } => *reason,
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>(),
        vec![
            RoundRefusal::AlreadyApplied,
            RoundRefusal::Gap { expected: 2 },
            RoundRefusal::ParentMismatch
        ]
    );
    assert!(matches!(&events[4], Applied::Round { index: 5, .. }));
    assert_eq!(s.round(), 2);
    assert_eq!(s.params_hash(), chained(2).params_hash);
    assert_eq!(s.committed(1), Some(&chained(1)));
    assert_eq!(s.committed(3), None);
    let c = s.counters();
    assert_eq!(
        (
            c.rounds_already_applied,
            c.rounds_with_gap,
            c.rounds_parent_mismatch
        ),
        (1, 1, 1)
    );
    let status = s.status();
    assert_eq!(
        (status.round, status.last_loss, status.last_applied),
        (2, Some(0.25), 5)
    );
    assert_eq!(status.contributors.len(), 3);
}

#[test]
fn old_indexes_and_garbage_entries_are_skipped_and_counted() {
    let mut s = state();
    s.apply(3, &bytes(chained(1)));
    s.apply(3, &bytes(chained(2)));
    s.apply(2, &bytes(chained(2)));
    s.apply(4, b"not a command");
    assert_eq!(s.round(), 1);
    assert_eq!(s.counters().stale_entries, 2);
    assert_eq!(s.counters().undecodable_entries, 1);
    assert!(matches!(
        s.take_applied().last(),
        Some(Applied::Undecodable { index: 4, .. })
    ));
}

#[test]
fn a_retried_request_applies_once_and_gets_the_first_answer() {
    let mut s = state();
    s.apply(1, &put(7, 1, "user.x", "a"));
    s.apply(2, &put(8, 1, "user.x", "b"));
    s.apply(3, &put(7, 1, "user.x", "a"));
    s.apply(4, &put(7, 0, "user.x", "old"));
    s.apply(5, &put(7, 2, "learning_rate", "zero"));
    assert_eq!(s.config().get("user.x").unwrap().as_deref(), Some("b"));
    let events = s.take_applied();
    let outcomes: Vec<(ConfigOutcome, bool)> = events
        .into_iter()
        .map(|e| match e {
            Applied::Config { outcome, retry, .. } => (outcome, retry),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(outcomes[0], (ConfigOutcome::Written, false));
    assert_eq!(outcomes[2], (ConfigOutcome::Written, true));
    assert_eq!(outcomes[3], (ConfigOutcome::Superseded, true));
    assert!(
        matches!(&outcomes[4].0, ConfigOutcome::Refused { reason } if reason.contains("'learning_rate'")),
        "{outcomes:?}"
    );
    assert_eq!(s.counters().retried_requests, 2);
}

#[test]
fn compare_and_set_reports_the_current_value() {
    let mut s = state();
    let cas = |seq, expected: Option<&str>, value: &str| {
        Command::ConfigCas {
            request: RequestId { client: 1, seq },
            key: "user.k".into(),
            expected: expected.map(str::to_owned),
            value: value.into(),
        }
        .to_bytes()
    };
    s.apply(1, &cas(1, None, "1"));
    s.apply(2, &cas(2, Some("2"), "3"));
    s.apply(3, &cas(3, Some("1"), "2"));
    let outcomes: Vec<ConfigOutcome> = s
        .take_applied()
        .into_iter()
        .map(|e| match e {
            Applied::Config { outcome, .. } => outcome,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ConfigOutcome::Written,
            ConfigOutcome::CasFailed {
                current: Some("1".into())
            },
            ConfigOutcome::Written
        ]
    );
}

fn busy_state() -> ClusterState {
    let mut s = state();
    for r in 1..=5 {
        s.apply(r, &bytes(chained(r)));
    }
    s.apply(6, &put(3, 1, "rule", "krum:1"));
    s.apply(7, &put(4, 9, "user.y", "z"));
    s.apply(8, &bytes(chained(2)));
    let _setup_events = s.take_applied();
    s
}

fn snapshot_of(s: &ClusterState) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: s.last_applied(),
            term: 2,
            voters: vec![1, 2, 3],
        },
        data: s.snapshot(),
    }
}

#[test]
fn a_snapshot_restores_the_same_state_and_says_so() {
    let s = busy_state();
    let mut other = state();
    other.restore(&snapshot_of(&s)).unwrap();
    assert_eq!(other.snapshot(), s.snapshot());
    assert_eq!(other.status(), s.status());
    assert_eq!(other.config(), s.config());
    assert_eq!(other.counters(), s.counters());
    assert_eq!(
        other.take_applied(),
        vec![Applied::Restored {
            index: 8,
            round: 5,
            params_hash: chained(5).params_hash
        }]
    );
    // Sessions survive: a retry after the restore is still recognised.
    other.apply(9, &put(4, 9, "user.y", "again"));
    assert_eq!(other.config().get("user.y").unwrap().as_deref(), Some("z"));
    // Entries the snapshot covers are skipped.
    other.apply(8, &bytes(chained(6)));
    assert_eq!(other.round(), 5);
}

#[test]
fn bad_snapshots_are_refused_and_change_nothing() {
    let s = busy_state();
    let good = snapshot_of(&s);
    let mut target = state();
    for cut in [0, 4, 10, good.data.len() - 1] {
        let bad = Snapshot {
            data: good.data[..cut].to_vec(),
            ..good.clone()
        };
        assert!(matches!(
            target.restore(&bad),
            Err(ClusterError::SnapshotUndecodable(_))
        ));
    }
    let early = Snapshot {
        meta: SnapshotMeta {
            index: 3,
            ..good.meta.clone()
        },
        ..good
    };
    assert_eq!(
        target.restore(&early),
        Err(ClusterError::SnapshotAhead {
            covers: 8,
            filed: 3
        })
    );
    assert_eq!(target.snapshot(), state().snapshot());
}

#[test]
fn an_external_model_registers_once_and_survives_a_snapshot() {
    let mut s = ClusterState::awaiting_model(TrainingConfig::default());
    assert!(!s.model_ready());
    // No round applies before round 0 is known.
    s.apply(1, &bytes(chained(1)));
    assert_eq!(s.round(), 0);
    let model = |hash: u8| ModelRegistered {
        request: RequestId { client: 9, seq: 1 },
        params_hash: StateHash([hash; 32]),
        layout_hash: [hash + 1; 32],
        params: 10,
    };
    s.apply(2, &Command::ModelRegistered(model(1)).to_bytes());
    s.apply(3, &Command::ModelRegistered(model(5)).to_bytes());
    let events = s.take_applied();
    assert!(matches!(events[0], Applied::RoundRefused { round: 1, .. }));
    assert_eq!(
        events[1],
        Applied::ModelRegistered {
            index: 2,
            model: model(1)
        }
    );
    assert_eq!(
        events[2],
        Applied::ModelRefused {
            index: 3,
            model: model(5)
        }
    );
    assert_eq!(
        s.params_hash(),
        genesis(),
        "the first registration is round 0"
    );
    assert_eq!(
        s.model(),
        ModelSlot::Registered {
            layout_hash: [2; 32],
            params: 10
        }
    );
    s.apply(4, &bytes(chained(1)));
    assert_eq!(s.round(), 1);
    let restored = ClusterState::decode_snapshot(&s.snapshot()).unwrap();
    assert_eq!(restored.model(), s.model());
    assert_eq!(restored.snapshot(), s.snapshot());
    // A built-in model takes no registration.
    let mut builtin = state();
    builtin.apply(1, &Command::ModelRegistered(model(7)).to_bytes());
    assert!(matches!(
        builtin.take_applied()[0],
        Applied::ModelRefused { .. }
    ));
}

proptest! {
    #[test]
    fn decoding_arbitrary_snapshots_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ClusterState::decode_snapshot(&bytes);
        let mut with_magic = b"HGCS\x02\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = ClusterState::decode_snapshot(&with_magic);
    }

    #[test]
    fn mutated_snapshots_never_panic(flip in any::<(usize, u8)>()) {
        let mut bytes = busy_state().snapshot();
        let at = flip.0 % bytes.len();
        bytes[at] ^= flip.1;
        let _ = ClusterState::decode_snapshot(&bytes);
    }
}
