//! One handshaken connection's life, in named phases: its admission into the peer table (with
//! the duplicate rule), its gossip writer, its request server, its gossip reader, and its
//! removal when the gossip stream ends. Owns the connection's tasks, spawned into the
//! network's task set; must not interpret frames beyond routing them to their service.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::events::EventLog;

use super::super::frame::{FrameType, Message};
use super::super::identity::NodeId;
use super::super::wire::{ReadFailure, write_message};
use super::super::{close_code, stamp};
use super::duplicate::{self, Existing, Survivor};
use super::outbox::{OutboxReceiver, OutboxState, outbox};
use super::{Inner, NetEvent, Peer, ban, write_stamp};

/// A connection whose handshake succeeded, with its gossip stream (opened by the dialer).
pub(super) struct Handshaken {
    pub(super) connection: quinn::Connection,
    pub(super) send: quinn::SendStream,
    pub(super) recv: quinn::RecvStream,
    pub(super) peer: NodeId,
    pub(super) dialed_by: NodeId,
    pub(super) listen_addr: Option<SocketAddr>,
}

/// Adds a handshaken connection to the peer table (or drops it when the duplicate rule keeps
/// the one already there), tells the services, and starts its gossip writer, request server
/// and gossip reader.
pub(super) async fn register(inner: &Arc<Inner>, handshaken: Handshaken) {
    let Handshaken {
        connection,
        send,
        recv,
        peer,
        dialed_by,
        listen_addr,
    } = handshaken;
    let Some((outbox, outbox_state)) = admit(inner, &connection, peer, dialed_by, listen_addr)
    else {
        return;
    };
    let remote = connection.remote_address();
    info!(
        peer = %peer.short(), %remote, key_exchange = inner.config.key_exchange.name(),
        "peer connected"
    );
    inner
        .announce(|| NetEvent::Connected {
            peer,
            remote,
            listen_addr,
        })
        .await;
    inner.spawn(write_gossip(send, outbox));
    inner.spawn(serve_requests(
        Arc::downgrade(inner),
        connection.clone(),
        peer,
    ));
    inner.spawn(read_gossip_then_forget(
        Arc::downgrade(inner),
        connection,
        recv,
        peer,
        outbox_state,
    ));
}

/// The peer-table phase: applies the duplicate rule against a connection already there and,
/// when the newcomer survives, enters it with a fresh outbox. `None`: the newcomer was closed.
fn admit(
    inner: &Inner,
    connection: &quinn::Connection,
    peer: NodeId,
    dialed_by: NodeId,
    listen_addr: Option<SocketAddr>,
) -> Option<(OutboxReceiver, OutboxState)> {
    let mut state = inner.lock();
    if let Some(existing) = state.peers.get(&peer) {
        let facts = Existing {
            dialed_by: existing.dialed_by,
            open: existing.connection.close_reason().is_none(),
        };
        match duplicate::survivor(inner.identity.id(), peer, facts, dialed_by) {
            Survivor::Existing => {
                connection.close(close_code::DUPLICATE.into(), b"duplicate connection");
                return None;
            }
            Survivor::Newcomer => existing
                .connection
                .close(close_code::DUPLICATE.into(), b"duplicate connection"),
        }
    }
    let (gossip, receiver, outbox_state) = outbox(inner.outbox_bound());
    state.peers.insert(
        peer,
        Peer {
            connection: connection.clone(),
            gossip,
            remote: connection.remote_address(),
            listen_addr,
            dialed_by,
        },
    );
    Some((receiver, outbox_state))
}

/// The gossip writer: frames queued by `broadcast` and `send_to`, in order, until the outbox
/// closes (the peer left the table) or a write fails (the connection ended).
async fn write_gossip(mut send: quinn::SendStream, mut outbox: OutboxReceiver) {
    while let Some(item) = outbox.recv().await {
        for piece in item.pieces() {
            if send.write_all(piece).await.is_err() {
                return;
            }
        }
    }
}

/// The request server: one task per incoming bidirectional stream, owned here so they end
/// with the connection (or the network).
async fn serve_requests(inner: Weak<Inner>, connection: quinn::Connection, peer: NodeId) {
    let mut requests = JoinSet::new();
    loop {
        tokio::select! {
            accepted = connection.accept_bi() => {
                let Ok((send, recv)) = accepted else {
                    break;
                };
                let Some(inner) = inner.upgrade() else {
                    break;
                };
                requests.spawn(serve_request(inner, peer, send, recv));
            }
            Some(_) = requests.join_next() => {}
        }
    }
}

/// Reads one request, lets the node answer it, writes the answer and ends the stream.
async fn serve_request(
    inner: Arc<Inner>,
    peer: NodeId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let timeout = inner.config.request_timeout;
    let events = &inner.config.events;
    let request = match tokio::time::timeout(timeout, stamp::read_logged(&mut recv, events, &peer))
        .await
    {
        Ok(Ok(Some(
            request @ (Message::GetHeaders { .. } | Message::GetBlocks(_) | Message::Service(_)),
        ))) => request,
        Ok(Ok(Some(other))) => {
            let kind: FrameType = other.frame_type();
            debug!(peer = %peer.short(), %kind, "frame that is not a request ignored");
            let _ = send.finish();
            return;
        }
        Ok(Err(ReadFailure::Frame(error))) => {
            ban(&inner, peer, &format!("sent a bad request frame: {error}"));
            return;
        }
        _ => return,
    };
    if inner.lock().is_cut(&peer) {
        return;
    }
    let (reply, answer) = oneshot::channel();
    let service = request.frame_type().service();
    let event = NetEvent::Request {
        peer,
        request,
        reply,
    };
    if !inner.deliver(service, event).await {
        let _ = send.finish();
        return;
    }
    let Ok(Ok(frames)) = tokio::time::timeout(timeout, answer).await else {
        let _ = send.finish();
        return;
    };
    for frame in &frames {
        if write_stamp(&mut send, events, &peer, frame).await.is_err()
            || write_message(&mut send, frame).await.is_err()
        {
            return;
        }
    }
    let _ = send.finish();
}

/// The gossip reader, then the cleanup: lives as long as the connection.
async fn read_gossip_then_forget(
    inner: Weak<Inner>,
    connection: quinn::Connection,
    mut recv: quinn::RecvStream,
    peer: NodeId,
    outbox: OutboxState,
) {
    let events = match inner.upgrade() {
        Some(inner) => inner.config.events.clone(),
        None => return,
    };
    let Some(reason) = read_gossip(&inner, &connection, &mut recv, peer, &events).await else {
        return;
    };
    let reason = if outbox.overflowed() {
        format!(
            "its gossip outbox passed {} bytes (the peer stopped reading)",
            outbox.bound().bytes
        )
    } else {
        reason
    };
    if let Some(inner) = inner.upgrade() {
        forget(&inner, &connection, peer, reason).await;
    }
}

/// Routes each gossip frame to its service until the stream ends; returns why it ended
/// (`None` when the network itself has gone).
async fn read_gossip(
    inner: &Weak<Inner>,
    connection: &quinn::Connection,
    recv: &mut quinn::RecvStream,
    peer: NodeId,
    events: &EventLog,
) -> Option<String> {
    loop {
        let frame = stamp::read_logged(recv, events, &peer).await;
        let inner = inner.upgrade()?;
        match frame {
            Ok(Some(message)) => {
                if inner.lock().is_cut(&peer) {
                    continue;
                }
                let kind = message.frame_type();
                let event = match message {
                    Message::Block(bytes) => NetEvent::Block { peer, bytes },
                    Message::Service(frame) => NetEvent::Frame { peer, frame },
                    other => {
                        // A known frame in the wrong place: the peer's mistake, not malice
                        // worth a ban.
                        debug!(peer = %peer.short(), kind = %other.frame_type(), "frame ignored on the gossip stream");
                        continue;
                    }
                };
                if !inner.deliver(kind.service(), event).await {
                    debug!(peer = %peer.short(), %kind, "no subscriber; frame dropped");
                }
            }
            Ok(None) => return Some("gossip stream closed".to_string()),
            Err(ReadFailure::Frame(error)) => {
                let reason = format!("sent a bad frame: {error}");
                ban(&inner, peer, &reason);
                return Some(reason);
            }
            Err(ReadFailure::Stream(reason)) => {
                return Some(match connection.close_reason() {
                    Some(quinn::ConnectionError::ApplicationClosed(close)) => format!(
                        "closed by the peer: {}",
                        String::from_utf8_lossy(&close.reason)
                    ),
                    _ => reason.to_string(),
                });
            }
        }
    }
}

/// Removes the peer from the table if this connection is still its entry, closes the
/// connection and tells the services.
async fn forget(inner: &Inner, connection: &quinn::Connection, peer: NodeId, reason: String) {
    let removed = {
        let mut state = inner.lock();
        let ours = state
            .peers
            .get(&peer)
            .is_some_and(|p| p.connection.stable_id() == connection.stable_id());
        ours && state.peers.remove(&peer).is_some()
    };
    connection.close(close_code::SHUTDOWN.into(), b"gossip stream ended");
    if removed {
        info!(peer = %peer.short(), %reason, "peer disconnected");
        inner
            .announce(|| NetEvent::Disconnected {
                peer,
                reason: reason.clone(),
            })
            .await;
    }
}

/// Closes the connection of a peer whose outbox refused a push (it stopped reading): it is
/// disconnected, not banned, and may dial back or be redialled.
pub(super) fn close_slow_peer(peer: NodeId, entry: &Peer, queued: usize) {
    warn!(
        peer = %peer.short(), remote = %entry.remote, queued,
        "gossip outbox full; disconnecting the peer (it stopped reading)"
    );
    entry.connection.close(
        close_code::OUTBOX_FULL.into(),
        b"gossip outbox full: you stopped reading gossip",
    );
}
