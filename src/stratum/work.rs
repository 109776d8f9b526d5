//! A Stratum job's parts and the header they rebuild: `JobParts` (prevhash, coinb1, coinb2,
//! merkle branch, version, nbits, ntime) in Stratum's byte orders, built from a hashgrad
//! `BlockTemplate`, and the 80 header bytes a miner's extranonces, ntime and nonce make of
//! them. Both sides use the same rebuild: the server to check a share, the client to mine.
//!
//! Byte orders, as every Stratum v1 pool and miner has them: version, nbits and ntime are the
//! big-endian hex of the number (the header holds them little-endian); prevhash is the
//! header's 32 bytes with each 4-byte word reversed; coinbase parts and branch hashes are in
//! internal (header) order; a submitted nonce and ntime are big-endian hex of the number.
//!
//! hashgrad's coinbase needs no new layout: coinb1 = miner id ‖ height (u64 LE), then
//! extranonce1 (4) ‖ extranonce2 (4) are the coinbase's 8-byte little-endian extra-nonce, and
//! coinb2 is empty. Must not judge a share against a target (the session does).

use serde_json::{Value, json};

use super::StratumError;
use crate::hash::reference::sha256d;
use crate::pow::{Block, BlockHeader, BlockTemplate, NodeId};

/// Bytes of the server's per-connection extranonce1.
pub const EXTRANONCE1_BYTES: usize = 4;
/// Bytes of the miner's extranonce2 (`extranonce2_size` in the subscribe answer).
pub const EXTRANONCE2_BYTES: usize = 4;
/// Deepest merkle branch accepted from a pool (2^32 transactions).
pub const MAX_BRANCH: usize = 32;
/// Largest coinb1 or coinb2 accepted from a pool.
pub const MAX_COINBASE_PART: usize = 4096;

/// What a `mining.notify` carries, decoded into the bytes the header is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobParts {
    /// The parent block's hash in header (internal) order.
    pub prev: [u8; 32],
    /// Coinbase bytes before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase bytes after the extranonces.
    pub coinb2: Vec<u8>,
    /// The coinbase's path to the merkle root: sibling hashes, internal order, leaf upward.
    pub branch: Vec<[u8; 32]>,
    /// Header version.
    pub version: u32,
    /// Header compact target.
    pub nbits: u32,
    /// Header time the job starts from.
    pub ntime: u32,
}

/// The merkle path of leaf 0 through `leaves` (leaf 0 itself may be any value: the siblings
/// of the first leaf never depend on it). Bitcoin's rule: an odd level repeats its last node.
pub fn coinbase_branch(leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        branch.push(level[1]);
        level = level
            .chunks(2)
            .map(|pair| join(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    branch
}

fn join(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut both = [0u8; 64];
    both[..32].copy_from_slice(left);
    both[32..].copy_from_slice(right);
    sha256d(&both)
}

/// The merkle root a coinbase leaf reaches through `branch`.
pub fn root_from_branch(leaf: [u8; 32], branch: &[[u8; 32]]) -> [u8; 32] {
    branch
        .iter()
        .fold(leaf, |node, sibling| join(&node, sibling))
}

/// The 32 header bytes of a hash as Stratum's prevhash: each 4-byte word reversed.
pub fn swap_words(bytes: &[u8; 32]) -> [u8; 32] {
    let mut out = *bytes;
    for word in out.chunks_mut(4) {
        word.reverse();
    }
    out
}

impl JobParts {
    /// The parts of `template` mined for `miner`: coinb1 = miner ‖ height, coinb2 empty, the
    /// branch through the template's receipts.
    pub fn from_template(template: &BlockTemplate, miner: NodeId) -> JobParts {
        let header = template.header();
        let body = template.body();
        let mut coinb1 = Vec::with_capacity(40);
        coinb1.extend_from_slice(&miner.0);
        coinb1.extend_from_slice(&body.coinbase.height.to_le_bytes());
        let leaves: Vec<[u8; 32]> = std::iter::once([0u8; 32])
            .chain(body.receipts.iter().map(|r| r.id().0))
            .collect();
        JobParts {
            prev: header.prev.0,
            coinb1,
            coinb2: Vec::new(),
            branch: coinbase_branch(&leaves),
            version: header.version as u32,
            nbits: header.bits.0,
            ntime: header.time,
        }
    }

    /// The 80 header bytes for one share: coinbase = coinb1 ‖ en1 ‖ en2 ‖ coinb2, its sha256d
    /// up the branch to the merkle root, then version, prev, root, ntime, nbits, nonce.
    pub fn header(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
    ) -> [u8; 80] {
        let mut coinbase = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + extranonce2.len() + self.coinb2.len(),
        );
        coinbase.extend_from_slice(&self.coinb1);
        coinbase.extend_from_slice(extranonce1);
        coinbase.extend_from_slice(extranonce2);
        coinbase.extend_from_slice(&self.coinb2);
        let root = root_from_branch(sha256d(&coinbase), &self.branch);
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&self.version.to_le_bytes());
        header[4..36].copy_from_slice(&self.prev);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        header
    }

    /// The `mining.notify` params: `[job_id, prevhash, coinb1, coinb2, branch, version,
    /// nbits, ntime, clean_jobs]`.
    pub fn notify_params(&self, job_id: &str, clean_jobs: bool) -> Value {
        json!([
            job_id,
            hex::encode(swap_words(&self.prev)),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            self.branch.iter().map(hex::encode).collect::<Vec<_>>(),
            format!("{:08x}", self.version),
            format!("{:08x}", self.nbits),
            format!("{:08x}", self.ntime),
            clean_jobs,
        ])
    }

    /// Reads `mining.notify` params back: the job id, the parts and `clean_jobs`; every
    /// field's size is bounded and a bad one is named.
    pub fn from_notify(params: &[Value]) -> Result<(String, JobParts, bool), StratumError> {
        let text = |at: usize, what: &'static str| {
            params
                .get(at)
                .and_then(Value::as_str)
                .ok_or(StratumError::BadParam(what))
        };
        let job_id = text(0, "notify job id")?;
        if job_id.is_empty() || job_id.len() > 64 {
            return Err(StratumError::BadParam("notify job id"));
        }
        let prev = swap_words(&hex32(text(1, "notify prevhash")?, "notify prevhash")?);
        let coinb1 = bounded_hex(text(2, "notify coinb1")?, "notify coinb1")?;
        let coinb2 = bounded_hex(text(3, "notify coinb2")?, "notify coinb2")?;
        let branch = match params.get(4) {
            Some(Value::Array(items)) if items.len() <= MAX_BRANCH => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or(StratumError::BadParam("notify merkle branch"))
                        .and_then(|text| hex32(text, "notify merkle branch"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(StratumError::BadParam("notify merkle branch")),
        };
        let version = hex_u32(text(5, "notify version")?, "notify version")?;
        let nbits = hex_u32(text(6, "notify nbits")?, "notify nbits")?;
        let ntime = hex_u32(text(7, "notify ntime")?, "notify ntime")?;
        let clean = params.get(8).and_then(Value::as_bool).unwrap_or(false);
        Ok((
            job_id.to_string(),
            JobParts {
                prev,
                coinb1,
                coinb2,
                branch,
                version,
                nbits,
                ntime,
            },
            clean,
        ))
    }
}

/// A big-endian hex u32 (`ntime`, `nonce`, `version`, `nbits`): exactly 8 hex digits.
pub fn hex_u32(text: &str, what: &'static str) -> Result<u32, StratumError> {
    if text.len() != 8 {
        return Err(StratumError::BadParam(what));
    }
    u32::from_str_radix(text, 16).map_err(|_| StratumError::BadParam(what))
}

fn hex32(text: &str, what: &'static str) -> Result<[u8; 32], StratumError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| StratumError::BadParam(what))?;
    Ok(out)
}

fn bounded_hex(text: &str, what: &'static str) -> Result<Vec<u8>, StratumError> {
    if text.len() > 2 * MAX_COINBASE_PART {
        return Err(StratumError::BadParam(what));
    }
    hex::decode(text).map_err(|_| StratumError::BadParam(what))
}

/// The hashgrad block a share makes of `template`: the coinbase pays `miner` with extra-nonce
/// en1 ‖ en2 (little-endian u64), the header takes the share's ntime and nonce. Its header
/// equals `JobParts::from_template(template, miner).header(en1, en2, ntime, nonce)`.
pub fn block_from_share(
    template: &BlockTemplate,
    miner: NodeId,
    extranonce: [u8; EXTRANONCE1_BYTES + EXTRANONCE2_BYTES],
    ntime: u32,
    nonce: u32,
) -> Block {
    let mut body = template.body().clone();
    body.coinbase.miner = miner;
    body.coinbase.extra_nonce = u64::from_le_bytes(extranonce);
    let header = BlockHeader {
        merkle_root: body.merkle_root(),
        time: ntime,
        nonce,
        ..*template.header()
    };
    Block { header, body }
}
