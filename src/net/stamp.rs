//! Event-log stamps on the wire: a node that keeps an event log sends a `Stamp` frame (its
//! vector clock after logging the send) just before each gossip frame, request and answer, and
//! the receiver logs the receive with that clock merged into its own. Owns the pairing of a
//! stamp with the frame it precedes; the clocks themselves are `events`' business.
//!
//! A node's event name is its id's short form (`NodeId::short`), so a sender names the receiver
//! without asking it. A frame that arrives without a stamp (its sender logs nothing) is not
//! logged: a receive without its send would break the happened-before check.

use std::sync::Arc;

use crate::events::{EventLog, Stamp, VectorClock, message_id};

use super::frame::{self, FRAME_HEADER_LEN, FrameType, Message};
use super::identity::NodeId;
use super::wire::{ReadFailure, read_sized_frame};

/// Logs a send of a `kind` frame with `len` payload bytes to `peer`; returns the encoded stamp
/// frame to write before it (`None` when the log is disabled).
pub(crate) fn stamp_for(
    events: &EventLog,
    peer: &NodeId,
    kind: FrameType,
    len: usize,
) -> Option<Arc<[u8]>> {
    let stamp = events.sent(&peer.short(), &kind.event_name(), len as u64)?;
    frame::encode(&Message::Stamp(stamp.clock))
        .ok()
        .map(Into::into)
}

/// The payload length of an encoded frame.
pub(crate) fn payload_len(encoded: &[u8]) -> usize {
    encoded.len().saturating_sub(FRAME_HEADER_LEN)
}

/// Logs the receive of a `kind` frame with `len` payload bytes from `peer`, sent with `clock`.
pub(crate) fn log_received(
    events: &EventLog,
    peer: &NodeId,
    kind: FrameType,
    len: usize,
    clock: VectorClock,
) {
    let sender = peer.short();
    let stamp = Stamp {
        id: message_id(&sender, clock.get(&sender)),
        clock,
    };
    events.received(&sender, &kind.event_name(), len as u64, &stamp);
}

/// Reads the next frame that is not a stamp, with the stamp that preceded it (if any) and its
/// payload length. A stamp followed by another stamp is superseded; one followed by the end of
/// the stream is dropped.
pub(crate) async fn read_stamped(
    recv: &mut quinn::RecvStream,
) -> Result<Option<(Message, usize, Option<VectorClock>)>, ReadFailure> {
    let mut stamp = None;
    loop {
        match read_sized_frame(recv).await? {
            None => return Ok(None),
            Some((Message::Stamp(clock), _)) => stamp = Some(clock),
            Some((message, len)) => return Ok(Some((message, len, stamp))),
        }
    }
}

/// Reads the next frame and logs its receive from `peer` when it came stamped.
pub(crate) async fn read_logged(
    recv: &mut quinn::RecvStream,
    events: &EventLog,
    peer: &NodeId,
) -> Result<Option<Message>, ReadFailure> {
    let Some((message, len, stamp)) = read_stamped(recv).await? else {
        return Ok(None);
    };
    if let Some(clock) = stamp {
        log_received(events, peer, message.frame_type(), len, clock);
    }
    Ok(Some(message))
}
