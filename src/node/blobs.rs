//! Content-addressed blobs on disk (`DATA_DIR/blobs/<sha256 hex>`): the reduced gradient of
//! every committed round, which every node needs to step its params and any node serves to a
//! peer that lacks it. A blob is written to a temporary file and renamed into place, so a crash
//! leaves either the whole blob or none; a read checks the bytes against the name and treats
//! a damaged file as missing (and removes it, so it is fetched again). Besides reduced
//! gradients it holds the training state (params and optimizer) named by each Raft snapshot;
//! blobs of rounds older than the previous snapshot are removed when the log is compacted.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::cluster::BlobHash;

/// Folder of the blobs inside the data dir.
pub const BLOB_DIR: &str = "blobs";

/// The node's blob folder.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Opens (creating) `data_dir/blobs`.
    pub fn open(data_dir: &Path) -> std::io::Result<BlobStore> {
        let dir = data_dir.join(BLOB_DIR);
        std::fs::create_dir_all(&dir)?;
        Ok(BlobStore { dir })
    }

    fn path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.to_string())
    }

    /// Stores `bytes` under their hash (a no-op when already there) and returns the hash.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<BlobHash> {
        let hash = BlobHash::of(bytes);
        let path = self.path(&hash);
        if path.exists() {
            return Ok(hash);
        }
        let temporary = self.dir.join(format!("{hash}.partial"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&temporary, &path)?;
        Ok(hash)
    }

    /// Whether a blob named `hash` is on disk (not read back: `get` checks the bytes).
    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path(hash).is_file()
    }

    /// Deletes the blob named `hash` (garbage collection of rounds a snapshot covers); a blob
    /// that is not there is no error.
    pub fn remove(&self, hash: &BlobHash) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(hash)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    /// The blob named `hash`, if this node holds an intact copy.
    pub fn get(&self, hash: &BlobHash) -> Option<Vec<u8>> {
        let path = self.path(hash);
        let bytes = std::fs::read(&path).ok()?;
        if BlobHash::of(&bytes) == *hash {
            return Some(bytes);
        }
        warn!(blob = %hash, "damaged blob removed; it will be fetched again");
        let _ = std::fs::remove_file(&path);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_round_trips_and_a_damaged_one_reads_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let hash = store.put(b"reduced gradient").unwrap();
        assert_eq!(hash, BlobHash::of(b"reduced gradient"));
        assert_eq!(store.get(&hash).as_deref(), Some(&b"reduced gradient"[..]));
        // Storing it again changes nothing.
        assert_eq!(store.put(b"reduced gradient").unwrap(), hash);
        std::fs::write(dir.path().join(BLOB_DIR).join(hash.to_string()), b"flipped").unwrap();
        assert_eq!(store.get(&hash), None);
        assert!(!dir.path().join(BLOB_DIR).join(hash.to_string()).exists());
        assert_eq!(store.get(&BlobHash::of(b"never stored")), None);
        let kept = store.put(b"params").unwrap();
        assert!(store.contains(&kept));
        store.remove(&kept).unwrap();
        assert!(!store.contains(&kept));
        store.remove(&kept).unwrap();
    }
}
