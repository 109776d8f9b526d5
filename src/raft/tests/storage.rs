//! Storage backends: redb crash recovery from a real file, damaged and foreign files, and the
//! same batch semantics as `MemStorage`.

use crate::raft::core::{Config, Raft};
use crate::raft::storage::{MemStorage, PersistBatch, RedbStorage, Storage, StorageError};
use crate::raft::types::{Entry, EntryKind, HardState, Snapshot, SnapshotMeta};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        kind: EntryKind::Normal,
        data: format!("e{index}t{term}").into_bytes(),
    }
}

fn batches() -> Vec<PersistBatch> {
    vec![
        PersistBatch {
            entries: (1..=6).map(|i| entry(i, 1)).collect(),
            hard_state: Some(HardState {
                term: 1,
                vote: 1,
                commit: 3,
            }),
            ..Default::default()
        },
        // A follower truncates at 5 and appends entries of term 2.
        PersistBatch {
            entries: vec![entry(5, 2), entry(6, 2), entry(7, 2)],
            hard_state: Some(HardState {
                term: 2,
                vote: 0,
                commit: 5,
            }),
            ..Default::default()
        },
        // Local compaction at 4.
        PersistBatch {
            snapshot: Some(Snapshot {
                meta: SnapshotMeta {
                    index: 4,
                    term: 1,
                    voters: vec![1, 2, 3],
                },
                data: b"sm@4".to_vec(),
            }),
            ..Default::default()
        },
    ]
}

#[test]
fn redb_recovers_after_reopen_like_mem_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft.redb");
    let mut mem = MemStorage::new();
    {
        let mut redb = RedbStorage::open(&path).expect("create");
        for b in batches() {
            redb.persist(&b).expect("persist");
            mem.persist(&b).expect("persist");
        }
    } // "crash": the database is dropped; only what was committed is on disk.
    let redb = RedbStorage::open(&path).expect("reopen");
    let recovered = redb.recover().expect("recover");
    assert_eq!(recovered, mem.recover().expect("mem"));
    assert_eq!(
        recovered
            .entries
            .iter()
            .map(|e| (e.index, e.term))
            .collect::<Vec<_>>(),
        vec![(5, 2), (6, 2), (7, 2)]
    );
    assert_eq!(recovered.snapshot.meta.index, 4);
    // A node restarts from it.
    let raft = Raft::new(Config::new(1, vec![1, 2, 3]), recovered).expect("restart");
    assert_eq!(
        (raft.term(), raft.commit_index(), raft.last_index()),
        (2, 5, 7)
    );
}

#[test]
fn redb_install_snapshot_discards_the_whole_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redb = RedbStorage::open(dir.path().join("raft.redb")).expect("create");
    redb.persist(&batches()[0]).expect("persist");
    let snap = Snapshot {
        meta: SnapshotMeta {
            index: 3,
            term: 5,
            voters: vec![1, 2],
        },
        data: vec![1],
    };
    redb.persist(&PersistBatch {
        snapshot: Some(snap.clone()),
        discard_log: true,
        ..Default::default()
    })
    .expect("persist");
    let state = redb.recover().expect("recover");
    assert_eq!(state.snapshot, snap);
    assert!(
        state.entries.is_empty(),
        "entries after a foreign snapshot are dropped"
    );
}

#[test]
fn redb_refuses_a_corrupt_file_with_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xAB; 8192]).expect("write");
    let err = RedbStorage::open(&path).expect_err("garbage is not a store");
    assert!(matches!(err, StorageError::Redb { .. }), "{err}");
    assert!(err.to_string().contains("garbage.redb"), "{err}");
}

#[test]
fn redb_refuses_a_foreign_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.redb");
    {
        let db = ::redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn
                .open_table(::redb::TableDefinition::<u64, u64>::new("blocks"))
                .expect("table");
            t.insert(1, 2).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = RedbStorage::open(&path).expect_err("foreign");
    assert!(matches!(err, StorageError::Foreign { .. }), "{err}");
}

#[test]
fn inconsistent_recovered_state_is_an_error_not_a_panic() {
    let state = crate::raft::storage::RecoveredState {
        hard_state: HardState {
            term: 3,
            vote: 1,
            commit: 9,
        },
        snapshot: Snapshot::default(),
        entries: vec![entry(1, 1)],
    };
    assert!(Raft::new(Config::new(1, vec![1]), state).is_err());
    let gap = crate::raft::storage::RecoveredState {
        hard_state: HardState::default(),
        snapshot: Snapshot::default(),
        entries: vec![entry(1, 1), entry(3, 1)],
    };
    assert!(Raft::new(Config::new(1, vec![1]), gap).is_err());
}
