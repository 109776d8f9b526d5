//! Storage backends: redb crash recovery from a real file, damaged and foreign files, and the
//! same batch semantics as `MemStorage`.

use crate::raft::StateMachine;
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

/// A key/value state machine like the training cluster's config store.
#[derive(Default)]
struct KvStore {
    pairs: std::collections::BTreeMap<String, String>,
    applied: u64,
}

impl StateMachine for KvStore {
    type RestoreError = std::string::FromUtf8Error;
    fn apply(&mut self, index: u64, command: &[u8]) {
        let text = String::from_utf8_lossy(command);
        if let Some((k, v)) = text.split_once('=') {
            self.pairs.insert(k.to_string(), v.to_string());
        }
        self.applied = index;
    }
    fn snapshot(&self) -> Vec<u8> {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>()
            .into_bytes()
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), std::string::FromUtf8Error> {
        let text = String::from_utf8(snapshot.data.clone())?;
        self.pairs = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.applied = snapshot.meta.index;
        Ok(())
    }
}

#[test]
fn three_nodes_on_redb_files_recover_after_a_full_crash() {
    use std::collections::VecDeque;
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |id: u64| RedbStorage::open(dir.path().join(format!("n{id}.redb"))).expect("open");
    let boot = |id: u64, s: &RedbStorage| {
        Raft::new(
            Config::new(id, vec![1, 2, 3]),
            s.recover().expect("recover"),
        )
        .expect("new")
    };
    let run = |nodes: &mut Vec<(Raft, RedbStorage, KvStore)>| {
        let mut queue = VecDeque::new();
        loop {
            for (raft, storage, kv) in nodes.iter_mut() {
                crate::raft::process_ready(raft, storage, kv, |m| queue.push_back(m))
                    .expect("ready");
            }
            let Some(msg) = queue.pop_front() else { break };
            let to = (msg.to - 1) as usize;
            nodes[to].0.step(msg).expect("step");
        }
    };
    let mut nodes: Vec<_> = (1..=3)
        .map(|id| {
            let s = open(id);
            (boot(id, &s), s, KvStore::default())
        })
        .collect();
    nodes[0].0.campaign_now();
    run(&mut nodes);
    for i in 0..5 {
        nodes[0]
            .0
            .propose(format!("lr=0.{i}").into_bytes())
            .expect("leader");
    }
    nodes[0].0.propose(b"rule=median".to_vec()).expect("leader");
    run(&mut nodes);
    // Node 1 snapshots its state machine and compacts.
    let (applied, data) = (nodes[0].0.applied_index(), nodes[0].2.snapshot());
    nodes[0].0.compact(applied, data).expect("compact");
    run(&mut nodes);
    let commit = nodes[0].0.commit_index();
    drop(nodes); // every process dies; only the redb files remain
    let mut nodes: Vec<_> = (1..=3)
        .map(|id| {
            let s = open(id);
            (boot(id, &s), s, KvStore::default())
        })
        .collect();
    run(&mut nodes);
    for (raft, _, kv) in &nodes {
        assert_eq!(
            raft.commit_index(),
            commit,
            "node {} recovered its commit index",
            raft.id()
        );
        assert_eq!(kv.pairs.get("lr").map(String::as_str), Some("0.4"));
        assert_eq!(kv.pairs.get("rule").map(String::as_str), Some("median"));
    }
    assert_eq!(nodes[0].0.snapshot_index(), applied);
    // And the cluster works again: a new election (restarted nodes refuse votes for one
    // election timeout, in case they had just heard a leader), a read, a write.
    for _ in 0..10 {
        for (raft, _, _) in nodes.iter_mut() {
            raft.tick();
        }
        run(&mut nodes);
    }
    if nodes
        .iter()
        .all(|(r, _, _)| r.role() != crate::raft::Role::Leader)
    {
        nodes[1].0.campaign_now();
    }
    run(&mut nodes);
    let leader = nodes
        .iter()
        .position(|(r, _, _)| r.role() == crate::raft::Role::Leader)
        .expect("a leader");
    nodes[leader].0.read_index(1).expect("leader");
    let index = nodes[leader].0.propose(b"lr=0.9".to_vec()).expect("leader");
    run(&mut nodes);
    assert!(
        nodes
            .iter()
            .all(|(r, _, kv)| r.commit_index() >= index && kv.pairs["lr"] == "0.9")
    );
}

#[test]
fn lease_reads_require_check_quorum() {
    let mut cfg = Config::new(1, vec![1, 2, 3]);
    cfg.read_only = crate::raft::ReadOnlyMode::LeaseBased;
    cfg.check_quorum = false;
    let err = Raft::new(cfg, Default::default()).expect_err("refused");
    assert!(err.to_string().contains("check_quorum"), "{err}");
}
