//! Headers-first sync with one peer: send our block locator, receive the headers of the peer's
//! best chain after the fork point, check that they link up, then fetch the blocks in batches
//! and hand them to the node loop in order. Runs as a task; the loop owns the chain.
//!
//! Also answers peers' sync requests from the chain (`answer`).

use tokio::sync::mpsc;

use crate::hash::reference::sha256d;
use crate::net::frame::{HashBytes, MAX_GET_BLOCKS, MAX_HEADERS};
use crate::net::{Message, NetError, Network, NodeId};
use crate::pow::{BlockHash, Chain};

/// Blocks asked for in one `GetBlocks` request.
const BATCH: usize = MAX_GET_BLOCKS / 2;

/// What a sync task reports to the node loop.
#[derive(Debug)]
pub enum SyncReport {
    /// Encoded blocks in chain order, to be accepted before the next batch arrives.
    Blocks { peer: NodeId, blocks: Vec<Vec<u8>> },
    /// The round ended; `more` when the peer may have further headers (a full answer).
    Done {
        peer: NodeId,
        result: Result<usize, NetError>,
        more: bool,
    },
}

/// One sync round with `peer` from `locator`.
pub async fn run_round(
    network: Network,
    peer: NodeId,
    locator: Vec<HashBytes>,
    reports: mpsc::Sender<SyncReport>,
) {
    let result = round(&network, peer, locator, &reports).await;
    let more = matches!(result, Ok(n) if n >= MAX_HEADERS);
    let _ = reports.send(SyncReport::Done { peer, result, more }).await;
}

async fn round(
    network: &Network,
    peer: NodeId,
    locator: Vec<HashBytes>,
    reports: &mpsc::Sender<SyncReport>,
) -> Result<usize, NetError> {
    let request = Message::GetHeaders {
        locator,
        max: MAX_HEADERS as u32,
    };
    let answer = network.request(peer, request).await?;
    let headers = match answer.as_slice() {
        [Message::Headers(headers)] => headers,
        [] => return Ok(0),
        [other, ..] => {
            return Err(NetError::Unexpected(peer, other.frame_type()));
        }
    };
    // Headers must form one chain; a peer that sends a broken list is misbehaving.
    let hashes: Vec<HashBytes> = headers.iter().map(|h| sha256d(h)).collect();
    for (i, header) in headers.iter().enumerate().skip(1) {
        if header.get(4..36) != hashes.get(i - 1).map(|h| &h[..]) {
            network.ban(peer, "sent headers that do not link up");
            return Err(NetError::Stream(peer, "headers do not link up".into()));
        }
    }
    for batch in hashes.chunks(BATCH) {
        let answer = network
            .request(peer, Message::GetBlocks(batch.to_vec()))
            .await?;
        let mut blocks = Vec::with_capacity(answer.len());
        for message in answer {
            match message {
                Message::Block(bytes) => blocks.push(bytes),
                // The peer reorganised meanwhile; the next round sorts it out.
                Message::NotFound(_) => break,
                other => return Err(NetError::Unexpected(peer, other.frame_type())),
            }
        }
        let complete = blocks.len() == batch.len();
        if reports
            .send(SyncReport::Blocks { peer, blocks })
            .await
            .is_err()
        {
            return Err(NetError::Closed);
        }
        if !complete {
            break;
        }
    }
    Ok(headers.len())
}

/// The frames that answer a peer's request, read from `chain`.
pub fn answer(chain: &Chain, request: &Message) -> Vec<Message> {
    match request {
        Message::GetHeaders { locator, max } => {
            let locator: Vec<BlockHash> = locator.iter().copied().map(BlockHash).collect();
            let max = (*max as usize).min(MAX_HEADERS);
            let headers = chain
                .headers_after(&locator, max)
                .iter()
                .map(|h| h.to_bytes())
                .collect();
            vec![Message::Headers(headers)]
        }
        Message::GetBlocks(hashes) => hashes
            .iter()
            .map(|hash| match chain.block(&BlockHash(*hash)) {
                Some(block) => Message::Block(block.encode()),
                None => Message::NotFound(*hash),
            })
            .collect(),
        _ => Vec::new(),
    }
}
