//! Joining a running cluster (single-server membership change): a node started with
//! `train.join` asks its peers, every `JOIN_RETRY`, to add it as a Raft voter until its own
//! Raft status lists it; the leader (with `train.accept_joins`) proposes `AddVoter` for the
//! asking connection's key and answers with the change's log index once applied. Every
//! answer carries the answering node's connected peers (`Peers`), which the newcomer dials:
//! it must reach the leader to be added and every voter to take part in elections.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::cluster::TrainingMessage;
use crate::cluster::wire::{FRAME_FORWARD_RESULT, FRAME_PEERS};
use crate::net::{Message, Network, NodeId, Responder};

use super::{Service, to_frame};

/// How often a joining node asks again while it is not a voter.
const JOIN_RETRY: Duration = Duration::from_secs(1);

/// Where a joining node stands.
#[derive(Debug, Default)]
pub(super) struct Joining {
    /// This node asks to be added (`train.join`).
    pub wanted: bool,
    /// Its own Raft status lists it as a voter.
    pub done: bool,
    pub last_ask: Option<Instant>,
}

impl Service {
    /// Joining node: asks every connected peer to add it until Raft lists it as a voter.
    pub(super) fn join_if_due(&mut self) {
        if !self.joining.wanted || self.joining.done {
            return;
        }
        if self.raft.borrow().voters.contains(&self.own) {
            info!("this node is a voter of the training cluster");
            self.joining.done = true;
            return;
        }
        if self
            .joining
            .last_ask
            .is_some_and(|at| at.elapsed() < JOIN_RETRY)
        {
            return;
        }
        self.joining.last_ask = Some(Instant::now());
        let request = to_frame(&TrainingMessage::Join);
        for peer in self.net.peers() {
            let (net, request) = (self.net.clone(), request.clone());
            self.tasks.spawn(async move {
                match net.request(peer.id, request).await {
                    Ok(answer) => match join_answer(&answer, &net).await {
                        Some(Ok(index)) => {
                            info!(peer = %peer.id.short(), index, "the leader added this node as a voter")
                        }
                        Some(Err(reason)) => {
                            debug!(peer = %peer.id.short(), %reason, "join refused")
                        }
                        None => debug!(peer = %peer.id.short(), "no answer to the join request"),
                    },
                    Err(error) => debug!(peer = %peer.id.short(), %error, "join request failed"),
                }
            });
        }
    }

    /// Leader side: adds the asking peer as a voter when joins are accepted.
    pub(super) fn on_join(&mut self, peer: NodeId, reply: Responder) {
        let peers = self
            .net
            .peers()
            .into_iter()
            .filter(|p| p.id != peer)
            .filter_map(|p| Some((p.id, p.listen_addr?)))
            .collect();
        let peers = to_frame(&TrainingMessage::Peers { peers });
        let answer = move |result: Result<u64, String>| {
            vec![to_frame(&TrainingMessage::ForwardResult { result }), peers]
        };
        if !self.accept_joins {
            warn!(peer = %peer.short(), "join request refused: train.accept_joins is off");
            let _ = reply.send(answer(Err(
                "this cluster does not accept joins (its nodes' train.accept_joins is off)".into(),
            )));
            return;
        }
        if !self.lead.leading {
            let leader = self
                .leader()
                .map_or_else(|| "unknown".to_string(), |id| id.to_string());
            let _ = reply.send(answer(Err(format!(
                "this node is not the leader (leader: {leader}); ask the leader"
            ))));
            return;
        }
        let consensus = self.consensus.clone();
        self.tasks.spawn(async move {
            let result = consensus.add_voter(peer).await.map_err(|e| e.to_string());
            let _ = reply.send(answer(result));
        });
    }
}

/// The `ForwardResult` in a join answer; dials the peers it names that `net` lacks.
async fn join_answer(answer: &[Message], net: &Network) -> Option<Result<u64, String>> {
    let limits = crate::cluster::WireLimits::for_params(0);
    let mut result = None;
    for message in answer {
        let Message::Service(frame) = message else {
            continue;
        };
        if frame.code != FRAME_FORWARD_RESULT && frame.code != FRAME_PEERS {
            continue;
        }
        match TrainingMessage::decode(frame.code, &frame.payload, &limits) {
            Ok(TrainingMessage::ForwardResult { result: r }) => result = Some(r),
            Ok(TrainingMessage::Peers { peers }) => {
                let known: Vec<NodeId> = net.peers().into_iter().map(|p| p.id).collect();
                for (id, addr) in peers {
                    if id != net.id() && !known.contains(&id) {
                        match net.dial(addr, Some(id)).await {
                            Ok(_) => info!(peer = %id.short(), %addr, "dialled a cluster member"),
                            Err(error) => {
                                debug!(peer = %id.short(), %addr, %error, "cannot dial a cluster member")
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    result
}
