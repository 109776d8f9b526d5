//! `RedbStorage`: the Raft log, hard state and snapshot in one redb file, one fsync'd write
//! transaction per batch. The only file in `raft/` that does I/O. A damaged or foreign file is
//! reported as an error, never a panic.

use std::path::{Path, PathBuf};

use ::redb::{Database, ReadableDatabase, TableDefinition, TableHandle};

use super::{PersistBatch, RecoveredState, Storage, StorageError};
use crate::raft::types::{Entry, EntryKind, HardState, Snapshot, SnapshotMeta};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries");
const MAGIC: &[u8] = b"hashgrad-raft-v1";

/// A redb-backed [`Storage`]; each [`Storage::persist`] is one durable transaction.
pub struct RedbStorage {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStorage")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbStorage {
    /// Opens the store at `path`, creating it if absent. A file that is not a redb database,
    /// or a redb database that is not a hashgrad Raft store, is refused with an error.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStorage, StorageError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|e| redb_error(&path, e))?;
        let storage = RedbStorage { db, path };
        storage.check_or_init()?;
        Ok(storage)
    }

    fn err(&self, e: impl Into<::redb::Error>) -> StorageError {
        redb_error(&self.path, e)
    }

    fn corrupt(&self, what: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: self.path.display().to_string(),
            what: what.into(),
        }
    }

    fn check_or_init(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let tables: Vec<String> = txn
            .list_tables()
            .map_err(|e| self.err(e))?
            .map(|t| t.name().to_string())
            .collect();
        let has_meta = tables.iter().any(|t| t == META.name());
        if has_meta {
            let meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let magic = meta.get("magic").map_err(|e| self.err(e))?;
            return match magic {
                Some(m) if m.value() == MAGIC => Ok(()),
                _ => Err(self.foreign("its raft_meta table has no hashgrad magic")),
            };
        }
        if !tables.is_empty() {
            return Err(self.foreign(&format!("it holds other tables: {}", tables.join(", "))));
        }
        drop(txn);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("magic", MAGIC).map_err(|e| self.err(e))?;
            txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn foreign(&self, reason: &str) -> StorageError {
        StorageError::Foreign {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

fn redb_error(path: &Path, e: impl Into<::redb::Error>) -> StorageError {
    StorageError::Redb {
        path: path.display().to_string(),
        source: Box::new(e.into()),
    }
}

fn encode_hard_state(hs: &HardState) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&hs.term.to_le_bytes());
    out[8..16].copy_from_slice(&hs.vote.to_le_bytes());
    out[16..].copy_from_slice(&hs.commit.to_le_bytes());
    out
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn encode_snapshot_meta(meta: &SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + 8 * meta.voters.len());
    out.extend_from_slice(&meta.index.to_le_bytes());
    out.extend_from_slice(&meta.term.to_le_bytes());
    out.extend_from_slice(&(meta.voters.len() as u64).to_le_bytes());
    for v in &meta.voters {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_snapshot_meta(bytes: &[u8]) -> Option<SnapshotMeta> {
    let index = u64_at(bytes, 0)?;
    let term = u64_at(bytes, 8)?;
    let count = usize::try_from(u64_at(bytes, 16)?).ok()?;
    if bytes.len() != 24 + count.checked_mul(8)? {
        return None;
    }
    let voters = (0..count)
        .map(|i| u64_at(bytes, 24 + 8 * i))
        .collect::<Option<Vec<_>>>()?;
    Some(SnapshotMeta {
        index,
        term,
        voters,
    })
}

fn encode_entry(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + e.data.len());
    out.extend_from_slice(&e.term.to_le_bytes());
    out.push(e.kind.code());
    out.extend_from_slice(&e.data);
    out
}

fn decode_entry(index: u64, bytes: &[u8]) -> Option<Entry> {
    let term = u64_at(bytes, 0)?;
    let kind = EntryKind::from_code(*bytes.get(8)?)?;
    Some(Entry {
        index,
        term,
        kind,
        data: bytes.get(9..)?.to_vec(),
    })
}

impl Storage for RedbStorage {
    fn recover(&self) -> Result<RecoveredState, StorageError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let mut state = RecoveredState::default();
        if let Some(hs) = meta.get("hard_state").map_err(|e| self.err(e))? {
            let b = hs.value();
            state.hard_state = match (b.len(), u64_at(b, 0), u64_at(b, 8), u64_at(b, 16)) {
                (24, Some(term), Some(vote), Some(commit)) => HardState { term, vote, commit },
                _ => return Err(self.corrupt("hard_state record has the wrong length")),
            };
        }
        if let Some(m) = meta.get("snapshot_meta").map_err(|e| self.err(e))? {
            let meta_value = decode_snapshot_meta(m.value())
                .ok_or_else(|| self.corrupt("snapshot_meta does not decode"))?;
            let data = meta
                .get("snapshot_data")
                .map_err(|e| self.err(e))?
                .map(|d| d.value().to_vec())
                .unwrap_or_default();
            state.snapshot = Snapshot {
                meta: meta_value,
                data,
            };
        }
        let entries = txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
        for item in entries
            .range(state.snapshot.meta.index + 1..)
            .map_err(|e| self.err(e))?
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let entry = decode_entry(k.value(), v.value())
                .ok_or_else(|| self.corrupt(format!("entry {} does not decode", k.value())))?;
            state.entries.push(entry);
        }
        Ok(state)
    }

    fn persist(&mut self, batch: &PersistBatch) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Default durability is Immediate: commit() returns after fsync.
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut entries = txn.open_table(ENTRIES).map_err(|e| self.err(e))?;
            if let Some(snapshot) = &batch.snapshot {
                let cut = if batch.discard_log {
                    u64::MAX
                } else {
                    snapshot.meta.index
                };
                entries
                    .retain_in(..=cut, |_, _| false)
                    .map_err(|e| self.err(e))?;
                meta.insert(
                    "snapshot_meta",
                    encode_snapshot_meta(&snapshot.meta).as_slice(),
                )
                .map_err(|e| self.err(e))?;
                meta.insert("snapshot_data", snapshot.data.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            if let Some(first) = batch.entries.first() {
                entries
                    .retain_in(first.index.., |_, _| false)
                    .map_err(|e| self.err(e))?;
                for e in &batch.entries {
                    entries
                        .insert(e.index, encode_entry(e).as_slice())
                        .map_err(|e| self.err(e))?;
                }
            }
            if let Some(hs) = &batch.hard_state {
                meta.insert("hard_state", encode_hard_state(hs).as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }
}
