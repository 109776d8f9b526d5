//! Headers-first sync with one peer: send our block locator, receive the headers of the peer's
//! best chain after the fork point, have the chain service check them (links, proof of work,
//! retarget bits, times) before any body is fetched, then fetch the bodies in batches of 250,
//! each checked against its header, and hand them to the service in order. The next
//! `GetBlocks` is on the wire while the service stores the previous batch (one transaction per
//! batch); at most one batch waits in memory. Runs as a task; the service owns the chain.
//!
//! Also answers peers' sync requests from the chain (`answer`).

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::NodeError;
use crate::net::frame::{HashBytes, MAX_GET_BLOCKS, MAX_HEADERS};
use crate::net::{FrameType, Message, NetError, Network, NodeId};
use crate::pow::{Block, BlockHash, BlockHeader, Chain, ChainError};

/// Blocks asked for in one `GetBlocks` request (and stored in one transaction).
pub const BATCH: usize = MAX_GET_BLOCKS / 2;

/// What a sync task reports to the chain service.
#[derive(Debug)]
pub enum SyncReport {
    /// The peer's headers, to be checked by the chain before any body is fetched; the service
    /// answers the verdict (and bans the peer for invalid headers).
    Headers {
        /// The peer being synced from.
        peer: NodeId,
        /// Its best chain after the fork point, oldest first, at most `MAX_HEADERS`.
        headers: Vec<BlockHeader>,
        /// Where the service answers: `Ok` to fetch the bodies, else the rule broken.
        verdict: oneshot::Sender<Result<(), ChainError>>,
    },
    /// Blocks in chain order, each matching its checked header; the service accepts and
    /// stores them in one transaction and answers whether the round may go on.
    Blocks {
        /// The peer they came from.
        peer: NodeId,
        /// One batch (at most `BATCH`), oldest first.
        blocks: Vec<Block>,
        /// Where the service answers `true` when all were accepted and the round may go on.
        stored: oneshot::Sender<bool>,
    },
    /// The round ended; `more` when the peer may have further headers (a full answer).
    Done {
        /// The peer the round was with.
        peer: NodeId,
        /// How many headers the peer sent, or why the round failed.
        result: Result<usize, NodeError>,
        /// True when the peer sent a full `MAX_HEADERS` answer, so another round should follow.
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
) -> Result<usize, NodeError> {
    let request = Message::GetHeaders {
        locator,
        max: MAX_HEADERS as u32,
    };
    let answer = network.request(peer, request).await?;
    let headers: Vec<BlockHeader> = match answer.as_slice() {
        [Message::Headers(headers)] => headers.iter().map(BlockHeader::from_bytes).collect(),
        [] => return Ok(0),
        [other, ..] => return Err(NetError::Unexpected(peer, other.frame_type()).into()),
    };
    if headers.is_empty() {
        return Ok(0);
    }
    let hashes: Vec<HashBytes> = headers.iter().map(|h| h.hash().0).collect();
    let (verdict, checked) = oneshot::channel();
    let count = headers.len();
    send(
        reports,
        SyncReport::Headers {
            peer,
            headers,
            verdict,
        },
    )
    .await?;
    checked.await.map_err(|_| NodeError::Stopped)??;

    let mut batches = hashes.chunks(BATCH).map(<[HashBytes]>::to_vec);
    let mut in_flight = batches.next().map(|batch| fetch(network, peer, batch));
    let mut storing: Option<oneshot::Receiver<bool>> = None;
    let outcome = async {
        while let Some(fetching) = in_flight.take() {
            let (batch, answer) = fetching.await.map_err(|_| NodeError::Stopped)?;
            let answer = answer?;
            // The next request travels while this batch is decoded and stored.
            in_flight = batches.next().map(|batch| fetch(network, peer, batch));
            let blocks = bodies(network, peer, &batch, answer)?;
            let complete = blocks.len() == batch.len();
            if let Some(previous) = storing.take()
                && !previous.await.unwrap_or(false)
            {
                return Ok(());
            }
            let (stored, done) = oneshot::channel();
            send(
                reports,
                SyncReport::Blocks {
                    peer,
                    blocks,
                    stored,
                },
            )
            .await?;
            storing = Some(done);
            if !complete {
                // The peer reorganised meanwhile; the next round sorts it out.
                break;
            }
        }
        Ok::<(), NodeError>(())
    }
    .await;
    if let Some(fetching) = in_flight {
        fetching.abort();
    }
    outcome?;
    // The round ends once its last batch is stored, so the next locator includes it.
    if let Some(last) = storing {
        let _ = last.await;
    }
    Ok(count)
}

async fn send(reports: &mpsc::Sender<SyncReport>, report: SyncReport) -> Result<(), NodeError> {
    reports.send(report).await.map_err(|_| NodeError::Stopped)
}

/// A batch of hashes and the peer's answer to `GetBlocks` for them.
type Fetched = (Vec<HashBytes>, Result<Vec<Message>, NetError>);

/// Asks `peer` for the blocks of `batch` on a task of its own, so it runs while the caller
/// works on the previous batch.
fn fetch(network: &Network, peer: NodeId, batch: Vec<HashBytes>) -> JoinHandle<Fetched> {
    let network = network.clone();
    tokio::spawn(async move {
        let answer = network
            .request(peer, Message::GetBlocks(batch.clone()))
            .await;
        (batch, answer)
    })
}

/// Decodes the answer to one `GetBlocks`: the blocks of `batch` in order, up to the first the
/// peer no longer has. A body that does not decode or does not match the header it was asked
/// for gets the peer banned.
fn bodies(
    network: &Network,
    peer: NodeId,
    batch: &[HashBytes],
    answer: Vec<Message>,
) -> Result<Vec<Block>, NodeError> {
    if answer.len() > batch.len() {
        network.ban(peer, "answered GetBlocks with more blocks than asked");
        return Err(NetError::Unexpected(peer, FrameType::Block).into());
    }
    let mut blocks = Vec::with_capacity(answer.len());
    for (message, wanted) in answer.into_iter().zip(batch) {
        match message {
            Message::Block(bytes) => {
                let block = match Block::decode(&bytes) {
                    Ok(block) => block,
                    Err(error) => {
                        network.ban(peer, &format!("sent a malformed block: {error}"));
                        return Err(ChainError::Decode(error).into());
                    }
                };
                if block.hash().0 != *wanted {
                    network.ban(peer, "answered GetBlocks with a block it was not asked for");
                    return Err(NetError::Unexpected(peer, FrameType::Block).into());
                }
                blocks.push(block);
            }
            Message::NotFound(_) => break,
            other => return Err(NetError::Unexpected(peer, other.frame_type()).into()),
        }
    }
    Ok(blocks)
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
