//! Moving reduced gradients between the training nodes: the leader's push of each round's
//! blob to the cluster (a round is proposed only once a majority of the voters stored it), a
//! follower's answer to that push, and fetching a blob a committed round needs from peers.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::cluster::{BlobHash, TrainingMessage, WireLimits};
use crate::net::{Message, NodeId, Responder};
use crate::train::StateHash;

use super::{Inbox, Service, to_frame};

/// How long a leader waits for a majority of voters to store a round's reduced gradient.
const BLOB_PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries (half a second apart) to fetch a missing blob from peers before giving up.
const BLOB_FETCH_TRIES: u32 = 240;

impl Service {
    /// A follower's side of the push: store a blob from the leader and acknowledge it.
    pub(super) fn on_blob_push(
        &mut self,
        peer: NodeId,
        hash: BlobHash,
        data: &[u8],
        reply: Responder,
    ) {
        if self.leader() != Some(peer) && !self.takes_model_push(peer) {
            debug!(peer = %peer.short(), "blob push from a node that does not lead dropped");
            return;
        }
        match self.blobs.put(data) {
            Ok(_) => {
                let _ = reply.send(vec![to_frame(&TrainingMessage::BlobStored { hash })]);
            }
            Err(error) => warn!(blob = %hash, %error, "cannot store a pushed blob"),
        }
    }

    /// Leader: pushes the round's reduced gradient to every other cluster node and reports
    /// `Replicated` once a majority of the voters (this node included) hold it. Only then is
    /// the round proposed: a committed round's blob survives the leader, since any majority
    /// that can elect a new leader includes a node that stored it.
    pub(super) fn replicate_blob(
        &mut self,
        round: u64,
        params_hash: StateHash,
        reduced_hash: BlobHash,
        data: Vec<u8>,
    ) {
        let voters: Vec<NodeId> = self.raft.borrow().voters.clone();
        let needed = voters.len() / 2;
        let mut targets: Vec<NodeId> = self
            .workers
            .iter()
            .copied()
            .filter(|w| *w != self.own)
            .collect();
        for &voter in &voters {
            if voter != self.own && !targets.contains(&voter) {
                targets.push(voter);
            }
        }
        let push = to_frame(&TrainingMessage::BlobResponse {
            hash: reduced_hash,
            data: Some(data),
        });
        let (acks, mut acked) = mpsc::unbounded_channel();
        for peer in targets {
            let (net, push, acks) = (self.net.clone(), push.clone(), acks.clone());
            let votes = voters.contains(&peer) && peer != self.own;
            self.tasks.spawn(async move {
                let stored = match net.request(peer, push).await {
                    Ok(answer) => answer.iter().any(|m| stored_ack(m, reduced_hash)),
                    Err(error) => {
                        debug!(peer = %peer.short(), %error, "blob push failed");
                        false
                    }
                };
                let _ = acks.send(stored && votes);
            });
        }
        drop(acks);
        let inbox = self.inbox.clone();
        self.tasks.spawn(async move {
            let mut stored = 0;
            let wait = async {
                while stored < needed {
                    match acked.recv().await {
                        Some(true) => stored += 1,
                        Some(false) => {}
                        None => break,
                    }
                }
            };
            let _ = tokio::time::timeout(BLOB_PUSH_TIMEOUT, wait).await;
            let message = if stored >= needed {
                Inbox::Replicated {
                    round,
                    params_hash,
                    reduced_hash,
                }
            } else {
                Inbox::ReplicationFailed {
                    round,
                    stored,
                    needed,
                }
            };
            let _ = inbox.send(message);
        });
    }

    pub(super) fn fetch_blob(&mut self, hash: BlobHash) {
        let net = self.net.clone();
        let inbox = self.inbox.clone();
        let leader = self.leader();
        self.tasks.spawn(async move {
            let request = to_frame(&TrainingMessage::BlobRequest { hash });
            for _ in 0..BLOB_FETCH_TRIES {
                let mut peers: Vec<NodeId> = net.peers().into_iter().map(|p| p.id).collect();
                // Ask the leader first: it reduced the round and surely holds the blob.
                peers.sort_by_key(|p| Some(*p) != leader);
                for peer in peers {
                    let Ok(answer) = net.request(peer, request.clone()).await else {
                        continue;
                    };
                    for message in answer {
                        let Message::Service(frame) = message else {
                            continue;
                        };
                        let limits = WireLimits::max();
                        if let Ok(TrainingMessage::BlobResponse {
                            data: Some(data), ..
                        }) = TrainingMessage::decode(frame.code, &frame.payload, &limits)
                        {
                            let _ = inbox.send(Inbox::Blob(data));
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let _ = inbox.send(Inbox::BlobMissing(hash));
        });
    }
}

/// Whether `message` acknowledges storing the blob `hash`.
fn stored_ack(message: &Message, hash: BlobHash) -> bool {
    let Message::Service(frame) = message else {
        return false;
    };
    matches!(
        TrainingMessage::decode(frame.code, &frame.payload, &WireLimits::for_params(0)),
        Ok(TrainingMessage::BlobStored { hash: stored }) if stored == hash
    )
}
