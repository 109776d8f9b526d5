//! One peer's gossip outbox: the frames `broadcast` and `send_to` queued for that peer and not
//! yet written to its gossip stream, with the bound that keeps a peer that stops reading from
//! growing this node's memory. Owns the bound's rule and the byte accounting; must not block
//! a sender, and must not decide what happens to a peer past the bound (the transport closes
//! its connection).
//!
//! The bound is in bytes, not frames: memory is what a silent peer costs, and gossip frames
//! range from a 60-byte heartbeat to a megabyte block, so a frame count either lets hundreds
//! of megabytes through or cuts off a healthy peer in a burst of small frames. Each queued item
//! is charged `ITEM_OVERHEAD` bytes on top of its frames, so a flood of tiny frames counts too.
//!
//! An item stays charged until the writer has handed all of it to QUIC, so the bound covers the
//! item being written as well as those waiting. QUIC itself buffers at most the peer's stream
//! flow-control window (quinn's default, 1.25 MB) beyond that.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// What an outbox may hold by default: 8 MiB, room for 8 of the largest blocks (1 MiB) on top
/// of what QUIC already buffers while a healthy peer's stream drains; with many peers that is
/// still a small share of a node's memory.
pub const DEFAULT_OUTBOX_BYTES: usize = 8 << 20;

/// Bytes charged per queued item besides its frames: the `Vec` of pieces, the `Arc` headers of
/// each piece and the channel's slot.
pub(crate) const ITEM_OVERHEAD: usize = 64;

/// The rule for one outbox: how many bytes it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboxBound {
    /// Most bytes (frames plus `ITEM_OVERHEAD` per item) queued at once.
    pub(crate) bytes: usize,
}

impl OutboxBound {
    /// Whether an outbox holding `queued` bytes takes an item charged `item` bytes. An empty
    /// outbox takes any item, so a frame larger than the bound still reaches a peer that reads.
    pub(crate) fn admits(self, queued: usize, item: usize) -> bool {
        queued == 0 || queued.saturating_add(item) <= self.bytes
    }
}

/// The bytes an item of `pieces` is charged.
pub(crate) fn charge(pieces: &[Arc<[u8]>]) -> usize {
    pieces
        .iter()
        .map(|piece| piece.len())
        .sum::<usize>()
        .saturating_add(ITEM_OVERHEAD)
}

/// The accounting both ends of one outbox share.
#[derive(Debug)]
struct Shared {
    bound: OutboxBound,
    queued: AtomicUsize,
    /// Set by the first push the bound refused; every later push is refused too.
    overflowed: AtomicBool,
}

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// The item is queued for the writer.
    Queued,
    /// The bound refused the item (or an earlier one); `queued` bytes were waiting. `first` is
    /// true for the push that found the outbox full, so the caller closes and logs once.
    Full {
        /// Bytes waiting when the push was refused.
        queued: usize,
        /// True for the first refused push of this outbox.
        first: bool,
    },
    /// The writer has gone (the connection ended).
    Closed,
}

/// The sending end, held in the peer table; pushing never waits.
#[derive(Debug)]
pub(crate) struct OutboxSender {
    items: mpsc::UnboundedSender<Vec<Arc<[u8]>>>,
    shared: Arc<Shared>,
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    items: mpsc::UnboundedReceiver<Vec<Arc<[u8]>>>,
    shared: Arc<Shared>,
}

/// A view of the outbox for the connection's reader, which names the reason it ended.
#[derive(Debug, Clone)]
pub(crate) struct OutboxState {
    shared: Arc<Shared>,
}

/// One dequeued item; its bytes stay charged until it is dropped (after it is written).
#[derive(Debug)]
pub(crate) struct OutboxItem {
    pieces: Vec<Arc<[u8]>>,
    charge: usize,
    shared: Arc<Shared>,
}

/// An outbox bounded by `bound`: the sender, the writer's receiver and the reader's view.
pub(crate) fn outbox(bound: OutboxBound) -> (OutboxSender, OutboxReceiver, OutboxState) {
    // The channel is unbounded so a push never waits; the byte count above it is the bound.
    let (items_tx, items_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        bound,
        queued: AtomicUsize::new(0),
        overflowed: AtomicBool::new(false),
    });
    (
        OutboxSender {
            items: items_tx,
            shared: shared.clone(),
        },
        OutboxReceiver {
            items: items_rx,
            shared: shared.clone(),
        },
        OutboxState { shared },
    )
}

impl OutboxSender {
    /// Queues `pieces` (a frame, after its stamp when it has one) if the bound admits them.
    pub(crate) fn push(&self, pieces: Vec<Arc<[u8]>>) -> Push {
        let shared = &self.shared;
        let cost = charge(&pieces);
        let mut queued = shared.queued.load(Ordering::Acquire);
        loop {
            if shared.overflowed.load(Ordering::Acquire) {
                return Push::Full {
                    queued,
                    first: false,
                };
            }
            if !shared.bound.admits(queued, cost) {
                let first = !shared.overflowed.swap(true, Ordering::AcqRel);
                return Push::Full { queued, first };
            }
            match shared.queued.compare_exchange_weak(
                queued,
                queued + cost,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => queued = now,
            }
        }
        if self.items.send(pieces).is_err() {
            shared.queued.fetch_sub(cost, Ordering::AcqRel);
            return Push::Closed;
        }
        Push::Queued
    }
}

impl OutboxReceiver {
    /// The next item, in push order; `None` once every sender is gone and the queue is empty.
    pub(crate) async fn recv(&mut self) -> Option<OutboxItem> {
        let pieces = self.items.recv().await?;
        Some(OutboxItem {
            charge: charge(&pieces),
            pieces,
            shared: self.shared.clone(),
        })
    }
}

impl OutboxState {
    /// True once a push found the outbox past its bound.
    pub(crate) fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Acquire)
    }

    /// The bytes charged now (waiting items and the one being written).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// The bound this outbox was made with.
    pub(crate) fn bound(&self) -> OutboxBound {
        self.shared.bound
    }
}

impl OutboxItem {
    /// The item's pieces, to write in order.
    pub(crate) fn pieces(&self) -> &[Arc<[u8]>] {
        &self.pieces
    }
}

impl Drop for OutboxItem {
    fn drop(&mut self) {
        self.shared.queued.fetch_sub(self.charge, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(len: usize) -> Vec<Arc<[u8]>> {
        vec![vec![0u8; len].into()]
    }

    #[test]
    fn the_bound_admits_up_to_its_bytes_and_anything_into_an_empty_outbox() {
        let bound = OutboxBound { bytes: 1000 };
        assert!(bound.admits(0, 10));
        assert!(
            bound.admits(0, 1_000_000),
            "an empty outbox takes a large frame"
        );
        assert!(bound.admits(990, 10), "exactly at the bound");
        assert!(!bound.admits(991, 10), "one byte past it");
        assert!(!bound.admits(1000, 1));
        assert!(!bound.admits(usize::MAX, 1), "no overflow in the sum");
    }

    #[test]
    fn an_item_is_charged_its_bytes_and_the_overhead() {
        assert_eq!(charge(&[]), ITEM_OVERHEAD);
        let stamp_and_frame: Vec<Arc<[u8]>> = vec![vec![0u8; 30].into(), vec![0u8; 70].into()];
        assert_eq!(charge(&stamp_and_frame), 100 + ITEM_OVERHEAD);
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_every_later_push_and_says_which_was_first() {
        let item = 100 + ITEM_OVERHEAD;
        let (sender, mut receiver, state) = outbox(OutboxBound { bytes: 3 * item });
        for _ in 0..3 {
            assert_eq!(sender.push(piece(100)), Push::Queued);
        }
        assert_eq!(state.queued(), 3 * item);
        assert_eq!(
            sender.push(piece(100)),
            Push::Full {
                queued: 3 * item,
                first: true
            }
        );
        assert!(state.overflowed());
        // Draining does not reopen it: the peer is past the bound and gets disconnected.
        drop(receiver.recv().await.expect("queued item"));
        assert_eq!(state.queued(), 2 * item);
        assert_eq!(
            sender.push(piece(1)),
            Push::Full {
                queued: 2 * item,
                first: false
            }
        );
    }

    #[tokio::test]
    async fn an_item_stays_charged_until_the_writer_drops_it() {
        let (sender, mut receiver, state) = outbox(OutboxBound { bytes: 1 << 20 });
        assert_eq!(sender.push(piece(500)), Push::Queued);
        let item = receiver.recv().await.expect("item");
        assert_eq!(item.pieces().len(), 1);
        assert_eq!(state.queued(), 500 + ITEM_OVERHEAD, "still being written");
        drop(item);
        assert_eq!(state.queued(), 0);
        assert!(!state.overflowed());
    }

    #[tokio::test]
    async fn a_push_after_the_writer_left_is_closed_and_not_charged() {
        let (sender, receiver, state) = outbox(OutboxBound { bytes: 1 << 20 });
        drop(receiver);
        assert_eq!(sender.push(piece(10)), Push::Closed);
        assert_eq!(state.queued(), 0);
    }

    #[test]
    fn with_nobody_reading_pushes_stop_at_the_bound() {
        let (sender, _receiver, state) = outbox(OutboxBound { bytes: 10_000 });
        let mut outcomes = Vec::new();
        for _ in 0..1000 {
            outcomes.push(sender.push(piece(100)));
        }
        let queued = outcomes.iter().filter(|o| **o == Push::Queued).count();
        assert_eq!(queued, 10_000 / (100 + ITEM_OVERHEAD));
        assert!(state.queued() <= 10_000);
        assert!(matches!(outcomes[queued], Push::Full { first: true, .. }));
    }
}
