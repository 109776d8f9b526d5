//! `ChainStore`: the chain on disk, one redb file in the node's data dir. The only file in
//! `pow/` that does I/O.
//!
//! Tables: `meta` (format version, network name, genesis hash, tip), `blocks` (hash → height
//! and encoded block), `best_heights` (height → hash of the best chain) and `peers` (address →
//! last seen). A block, the best-chain heights it changes and the tip are written in ONE
//! durable write transaction, so a process killed at any moment leaves either the state before
//! or the state after that block. Opening a corrupt file, a redb file of another schema or a
//! store of another network is a `StoreError`, never a panic.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};

use super::block::Block;
use super::chain::{Accepted, Chain};
use super::error::ChainError;
use super::header::BlockHash;
use super::network::NetworkParams;

/// The store's file name inside a node's data dir.
pub const STORE_FILE: &str = "chain.redb";

/// Version of the table layout; bump it when the schema changes.
pub const STORE_FORMAT: u32 = 1;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("hashgrad_meta");
const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
const HEIGHTS: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("best_heights");
const PEERS: TableDefinition<&str, u64> = TableDefinition::new("peers");

const KEY_FORMAT: &str = "format";
const KEY_NETWORK: &str = "network";
const KEY_GENESIS: &str = "genesis";
const KEY_TIP: &str = "tip";

/// Why the store cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb could not open the file (not a redb database, or it failed its integrity check).
    #[error(
        "{path} is not a readable hashgrad store ({reason}); move it away to start a fresh chain"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// redb's message.
        reason: String,
    },
    /// The file is a redb database but its tables are not this store's (missing meta table,
    /// wrong table types, malformed meta values).
    #[error(
        "{path} is a database of another program or schema ({reason}); keep the chain in another data dir"
    )]
    Foreign {
        /// The store file.
        path: PathBuf,
        /// Which table or value does not fit.
        reason: String,
    },
    /// Another process (or another handle in this one) holds the database open.
    #[error("{path} is in use by another process; stop the other node or use another data dir")]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// The store was written with a different table layout version than `STORE_FORMAT`.
    #[error("{path} has store format {found}; this build reads format {supported}")]
    Format {
        /// The store file.
        path: PathBuf,
        /// The format version recorded in the file.
        found: u32,
        /// The format this build reads (`STORE_FORMAT`).
        supported: u32,
    },
    /// The store holds another network's chain (name or genesis hash differ).
    #[error("{path} holds network {stored}, not {ours}; use one data dir per network")]
    WrongNetwork {
        /// The store file.
        path: PathBuf,
        /// The stored network's name and genesis hash.
        stored: String,
        /// This node's network name and genesis hash.
        ours: String,
    },
    /// A block read back from the store does not decode or fails the chain rules.
    #[error("stored block {hash} is invalid: {source}")]
    InvalidBlock {
        /// The hash the block is stored under (or its own hash, when it was replayed).
        hash: BlockHash,
        /// Which rule it breaks.
        source: Box<ChainError>,
    },
    /// The tables disagree with each other (a best-chain height names a missing block, no tip
    /// is recorded, ...).
    #[error("store {path} is inconsistent: {reason}")]
    Inconsistent {
        /// The store file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// redb failed a transaction, table open, read or write (I/O error, disk full, ...).
    #[error("store {path}: database error: {reason}")]
    Database {
        /// The store file.
        path: PathBuf,
        /// redb's message.
        reason: String,
    },
}

/// The open store of one network's chain.
pub struct ChainStore {
    db: Database,
    path: PathBuf,
    params: NetworkParams,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore")
            .field("path", &self.path)
            .field("network", &self.params.name)
            .finish()
    }
}

impl ChainStore {
    /// Opens (or creates, holding only the genesis) the store at `path` for `params`' network.
    pub fn open(path: impl AsRef<Path>, params: &NetworkParams) -> Result<ChainStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Locked { path: path.clone() }
                }
                other => StoreError::Corrupt {
                    path: path.clone(),
                    reason: other.to_string(),
                },
            })?;
        let store = ChainStore {
            db,
            path,
            params: params.clone(),
        };
        store.check_or_init()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn foreign(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Foreign {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// A table error as a store error: a table of the wrong shape means a foreign schema.
    fn table_err(&self, e: TableError) -> StoreError {
        match e {
            TableError::TableTypeMismatch { .. }
            | TableError::TableIsMultimap(_)
            | TableError::TableIsNotMultimap(_)
            | TableError::TypeDefinitionChanged { .. } => self.foreign(e),
            other => self.db_err(other),
        }
    }

    /// Checks the meta table of an existing store, or writes it (and the genesis) to a new one.
    fn check_or_init(&self) -> Result<(), StoreError> {
        let read = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let tables = read.list_tables().map_err(|e| self.db_err(e))?.count();
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(TableError::TableDoesNotExist(_)) if tables == 0 => {
                drop(read);
                return self.init();
            }
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(self.foreign(format!("{tables} tables but no hashgrad meta table")));
            }
            Err(e) => return Err(self.table_err(e)),
        };
        let get = |key: &str| -> Result<Vec<u8>, StoreError> {
            meta.get(key)
                .map_err(|e| self.db_err(e))?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| self.foreign(format!("meta table lacks `{key}`")))
        };
        let format = <[u8; 4]>::try_from(get(KEY_FORMAT)?.as_slice())
            .map(u32::from_le_bytes)
            .map_err(|_| self.foreign("meta `format` is not 4 bytes"))?;
        if format != STORE_FORMAT {
            return Err(StoreError::Format {
                path: self.path.clone(),
                found: format,
                supported: STORE_FORMAT,
            });
        }
        let network = String::from_utf8_lossy(&get(KEY_NETWORK)?).into_owned();
        let genesis = get(KEY_GENESIS)?;
        let our_genesis = self.params.genesis_hash();
        if network != self.params.name || genesis != our_genesis.0 {
            let stored_genesis = <[u8; 32]>::try_from(genesis.as_slice())
                .map(|g| BlockHash(g).to_string())
                .unwrap_or_else(|_| hex::encode(&genesis));
            return Err(StoreError::WrongNetwork {
                path: self.path.clone(),
                stored: format!("`{network}` (genesis {stored_genesis})"),
                ours: format!("`{}` (genesis {our_genesis})", self.params.name),
            });
        }
        Ok(())
    }

    fn init(&self) -> Result<(), StoreError> {
        let genesis = &self.params.genesis;
        let hash = genesis.hash();
        let write = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut meta = write.open_table(META).map_err(|e| self.table_err(e))?;
            let put = |meta: &mut redb::Table<&str, &[u8]>, k: &str, v: &[u8]| {
                meta.insert(k, v).map(|_| ()).map_err(|e| self.db_err(e))
            };
            put(&mut meta, KEY_FORMAT, &STORE_FORMAT.to_le_bytes())?;
            put(&mut meta, KEY_NETWORK, self.params.name.as_bytes())?;
            put(&mut meta, KEY_GENESIS, &hash.0)?;
            put(&mut meta, KEY_TIP, &hash.0)?;
            let mut blocks = write.open_table(BLOCKS).map_err(|e| self.table_err(e))?;
            blocks
                .insert(&hash.0, block_record(0, genesis).as_slice())
                .map_err(|e| self.db_err(e))?;
            let mut heights = write.open_table(HEIGHTS).map_err(|e| self.table_err(e))?;
            heights.insert(0, &hash.0).map_err(|e| self.db_err(e))?;
            write.open_table(PEERS).map_err(|e| self.table_err(e))?;
        }
        write.commit().map_err(|e| self.db_err(e))
    }

    /// Persists a block `chain` has just accepted together with the best-chain heights and
    /// tip it now has, in one durable transaction. Call it after `Chain::accept_block`
    /// returned `NewTip` or `SideBranch` for `block`; a `Duplicate` or `Orphan` writes nothing.
    pub fn store_block_and_tip(
        &mut self,
        block: &Block,
        accepted: &Accepted,
        chain: &Chain,
    ) -> Result<(), StoreError> {
        self.store_blocks_and_tip(&[(block, accepted)], chain)
    }

    /// Like `store_block_and_tip` for several blocks `chain` has accepted in this order, in
    /// one durable transaction (one fsync): what a syncing node uses for a batch of blocks.
    pub fn store_blocks_and_tip(
        &mut self,
        accepted_blocks: &[(&Block, &Accepted)],
        chain: &Chain,
    ) -> Result<(), StoreError> {
        let stored: Vec<&(&Block, &Accepted)> = accepted_blocks
            .iter()
            .filter(|(_, a)| !matches!(a, Accepted::Duplicate | Accepted::Orphan { .. }))
            .collect();
        if stored.is_empty() {
            return Ok(());
        }
        let new_tip = stored
            .iter()
            .any(|(_, a)| matches!(a, Accepted::NewTip { .. }));
        let write = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut blocks = write.open_table(BLOCKS).map_err(|e| self.table_err(e))?;
            for (block, _) in &stored {
                let hash = block.hash();
                let height = chain
                    .height_of(&hash)
                    .ok_or_else(|| StoreError::Inconsistent {
                        path: self.path.clone(),
                        reason: format!("block {hash} is not in the chain it was stored from"),
                    })?;
                blocks
                    .insert(&hash.0, block_record(height, block).as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
            if new_tip {
                let mut heights = write.open_table(HEIGHTS).map_err(|e| self.table_err(e))?;
                // Rewrite heights from the tip down to the fork point (one entry when a
                // block extends the old tip), then drop heights above the new tip.
                let mut h = chain.height();
                while let Some(best) = chain.hash_at_height(h) {
                    let stored = heights
                        .get(h)
                        .map_err(|e| self.db_err(e))?
                        .map(|v| *v.value());
                    if stored == Some(best.0) {
                        break;
                    }
                    heights.insert(h, &best.0).map_err(|e| self.db_err(e))?;
                    if h == 0 {
                        break;
                    }
                    h -= 1;
                }
                let stale: Vec<u64> = heights
                    .range((chain.height() + 1)..)
                    .map_err(|e| self.db_err(e))?
                    .filter_map(|entry| entry.ok().map(|(k, _)| k.value()))
                    .collect();
                for h in stale {
                    heights.remove(h).map_err(|e| self.db_err(e))?;
                }
                let mut meta = write.open_table(META).map_err(|e| self.table_err(e))?;
                meta.insert(KEY_TIP, chain.tip().0.as_slice())
                    .map_err(|e| self.db_err(e))?;
            }
        }
        write.commit().map_err(|e| self.db_err(e))
    }

    /// Rebuilds the chain: replays the stored best chain from the genesis, then the side
    /// branches, through `Chain::accept_block` (so every stored block is validated again),
    /// and checks the result against the stored tip.
    pub fn load_chain(&self) -> Result<Chain, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let meta = read.open_table(META).map_err(|e| self.table_err(e))?;
        let blocks = read.open_table(BLOCKS).map_err(|e| self.table_err(e))?;
        let heights = read.open_table(HEIGHTS).map_err(|e| self.table_err(e))?;
        let inconsistent = |reason: String| StoreError::Inconsistent {
            path: self.path.clone(),
            reason,
        };
        let tip = meta
            .get(KEY_TIP)
            .map_err(|e| self.db_err(e))?
            .and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
            .map(BlockHash)
            .ok_or_else(|| inconsistent("no tip recorded".into()))?;

        let mut chain = Chain::new(self.params.clone());
        // Stored blocks were valid when accepted; their timestamps are not checked against
        // today's clock again.
        let now = u64::MAX;
        let read_block = |hash: &[u8; 32]| -> Result<(u64, Block), StoreError> {
            let record = blocks
                .get(hash)
                .map_err(|e| self.db_err(e))?
                .ok_or_else(|| inconsistent(format!("block {} missing", BlockHash(*hash))))?;
            parse_record(record.value()).map_err(|source| StoreError::InvalidBlock {
                hash: BlockHash(*hash),
                source: Box::new(source),
            })
        };
        for (expected_height, entry) in
            (0u64..).zip(heights.range(0u64..).map_err(|e| self.db_err(e))?)
        {
            let (height, hash) = entry.map_err(|e| self.db_err(e))?;
            let (height, hash) = (height.value(), *hash.value());
            if height != expected_height {
                return Err(inconsistent(format!(
                    "best chain skips height {expected_height}"
                )));
            }
            if height == 0 {
                if hash != self.params.genesis_hash().0 {
                    return Err(inconsistent("height 0 is not the genesis".into()));
                }
                continue;
            }
            let (_, block) = read_block(&hash)?;
            match chain.accept_block(block, now) {
                Ok(Accepted::NewTip { reorg: None }) => {}
                Ok(other) => {
                    return Err(inconsistent(format!(
                        "best-chain block {} at height {height} replays as {other:?}",
                        BlockHash(hash)
                    )));
                }
                Err(source) => {
                    return Err(StoreError::InvalidBlock {
                        hash: BlockHash(hash),
                        source: Box::new(source),
                    });
                }
            }
        }
        // Side branches, parents before children (by height).
        let mut side = Vec::new();
        for entry in blocks.range::<&[u8; 32]>(..).map_err(|e| self.db_err(e))? {
            let (hash, record) = entry.map_err(|e| self.db_err(e))?;
            let hash = BlockHash(*hash.value());
            if !chain.contains(&hash) {
                let (height, block) =
                    parse_record(record.value()).map_err(|source| StoreError::InvalidBlock {
                        hash,
                        source: Box::new(source),
                    })?;
                side.push((height, block));
            }
        }
        side.sort_by_key(|(height, _)| *height);
        for (_, block) in side {
            let hash = block.hash();
            chain
                .accept_block(block, now)
                .map_err(|source| StoreError::InvalidBlock {
                    hash,
                    source: Box::new(source),
                })?;
        }
        if chain.tip() != tip {
            return Err(inconsistent(format!(
                "stored tip {tip} but the stored best chain ends at {}",
                chain.tip()
            )));
        }
        Ok(chain)
    }

    /// Records a peer address and when it was last seen (unix seconds).
    pub fn put_peer(&mut self, addr: &str, last_seen_unix_secs: u64) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut peers = write.open_table(PEERS).map_err(|e| self.table_err(e))?;
            peers
                .insert(addr, last_seen_unix_secs)
                .map_err(|e| self.db_err(e))?;
        }
        write.commit().map_err(|e| self.db_err(e))
    }

    /// Forgets a peer address.
    pub fn remove_peer(&mut self, addr: &str) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut peers = write.open_table(PEERS).map_err(|e| self.table_err(e))?;
            peers.remove(addr).map_err(|e| self.db_err(e))?;
        }
        write.commit().map_err(|e| self.db_err(e))
    }

    /// Known peer addresses with their last-seen times, by address.
    pub fn peers(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let peers = read.open_table(PEERS).map_err(|e| self.table_err(e))?;
        let mut out = Vec::new();
        for entry in peers.range::<&str>(..).map_err(|e| self.db_err(e))? {
            let (addr, seen) = entry.map_err(|e| self.db_err(e))?;
            out.push((addr.value().to_string(), seen.value()));
        }
        Ok(out)
    }

    /// A stored block (on any branch).
    pub fn block(&self, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let blocks = read.open_table(BLOCKS).map_err(|e| self.table_err(e))?;
        let Some(record) = blocks.get(&hash.0).map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        parse_record(record.value())
            .map(|(_, block)| Some(block))
            .map_err(|source| StoreError::InvalidBlock {
                hash: *hash,
                source: Box::new(source),
            })
    }

    /// Hash of the stored best chain's block at `height`.
    pub fn hash_at_height(&self, height: u64) -> Result<Option<BlockHash>, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let heights = read.open_table(HEIGHTS).map_err(|e| self.table_err(e))?;
        Ok(heights
            .get(height)
            .map_err(|e| self.db_err(e))?
            .map(|v| BlockHash(*v.value())))
    }

    /// The stored tip (without replaying the chain).
    pub fn tip(&self) -> Result<BlockHash, StoreError> {
        let read = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let meta = read.open_table(META).map_err(|e| self.table_err(e))?;
        meta.get(KEY_TIP)
            .map_err(|e| self.db_err(e))?
            .and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
            .map(BlockHash)
            .ok_or_else(|| StoreError::Inconsistent {
                path: self.path.clone(),
                reason: "no tip recorded".into(),
            })
    }
}

/// A `blocks` value: height (u64 LE) then the encoded block.
fn block_record(height: u64, block: &Block) -> Vec<u8> {
    let mut out = height.to_le_bytes().to_vec();
    out.extend_from_slice(&block.encode());
    out
}

fn parse_record(record: &[u8]) -> Result<(u64, Block), ChainError> {
    let mut reader = crate::codec::Reader::new(record);
    let height = reader
        .u64("stored block height")
        .map_err(|e| ChainError::Decode(e.into()))?;
    let bytes = reader
        .take(reader.remaining(), "stored block")
        .map_err(|e| ChainError::Decode(e.into()))?;
    Ok((height, Block::decode(bytes)?))
}
