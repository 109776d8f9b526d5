//! The happened-before check of merged event logs: clocks monotone per node, every receive
//! matched to a send and ordered after it. Pure: takes parsed events, no I/O.

use std::collections::HashMap;

use super::clock::ClockOrder;
use super::record::{Event, EventKind};

/// Where an event came from: its node, its position in that node's log, and its source line.
#[derive(Debug, Clone, PartialEq)]
pub struct EventAt {
    /// The event.
    pub event: Event,
    /// Where it was read (`file:line`), for messages.
    pub origin: String,
}

/// A way the logs break happened-before; each names the event that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A node's event does not carry its own clock component one above the previous event's.
    #[error(
        "{origin}: {node}'s own clock goes from {previous} to {found} (expected {expected}); events are missing, reordered or from another run"
    )]
    OwnClockNotNext {
        /// The node whose log holds the event.
        node: String,
        /// Where the event was read (`file:line`).
        origin: String,
        /// The node's own component at its previous event.
        previous: u64,
        /// The node's own component at this event.
        found: u64,
        /// The component this event should carry (`previous` + 1).
        expected: u64,
    },
    /// A node's event has a clock not after its previous event's.
    #[error("{origin}: {node}'s clock {found} is not after its previous event's {previous}")]
    ClockWentBack {
        /// The node whose log holds the event.
        node: String,
        /// Where the event was read (`file:line`).
        origin: String,
        /// The previous event's vector clock, as JSON.
        previous: String,
        /// This event's vector clock, as JSON.
        found: String,
    },
    /// An event logged under one node's name carries no entry for that node.
    #[error("{origin}: {node}'s event has no clock entry for {node}")]
    NoOwnEntry {
        /// The node whose log holds the event.
        node: String,
        /// Where the event was read (`file:line`).
        origin: String,
    },
    /// A receive names a message id no send in the logs has.
    #[error("{origin}: {node} receives message {id} from {from}, but no node logged its send")]
    ReceiveWithoutSend {
        /// The receiving node.
        node: String,
        /// Where the receive was read (`file:line`).
        origin: String,
        /// The message id the receive names.
        id: String,
        /// The sender the receive names.
        from: String,
    },
    /// A receive's clock is not after its send's.
    #[error(
        "{origin}: {node} receives message {id} with clock {receive}, not after its send's {send} ({send_origin})"
    )]
    ReceiveNotAfterSend {
        /// The receiving node.
        node: String,
        /// Where the receive was read (`file:line`).
        origin: String,
        /// The message id.
        id: String,
        /// The receive's vector clock, as JSON.
        receive: String,
        /// The send's vector clock, as JSON.
        send: String,
        /// Where the send was read (`file:line`).
        send_origin: String,
    },
    /// Two sends share one message id.
    #[error("{origin}: message id {id} was already sent at {first}")]
    DuplicateSend {
        /// Where the second send was read (`file:line`).
        origin: String,
        /// The shared message id.
        id: String,
        /// Where the first send with that id was read (`file:line`).
        first: String,
    },
}

/// Checks the logs of all nodes, each node's events in log order. Returns every violation in
/// the order found (per node first, then messages); an empty list means the logs hold.
///
/// A crash is not a violation: at a `node_recovered` event the node's own component may jump
/// (events queued or buffered at the crash are lost), and a receive of a message whose send
/// fell into such a gap has no send to match.
pub fn check(nodes: &[Vec<EventAt>]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut sends: HashMap<&str, &EventAt> = HashMap::new();
    // Per node: own-component ranges lost in crashes (exclusive bounds).
    let mut lost: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for events in nodes {
        let mut previous: Option<&EventAt> = None;
        for at in events {
            let node = at.event.node.as_str();
            let own = at.event.clock.get(node);
            if own == 0 {
                violations.push(Violation::NoOwnEntry {
                    node: node.into(),
                    origin: at.origin.clone(),
                });
            }
            if let Some(prev) = previous {
                let prev_own = prev.event.clock.get(node);
                let recovered = matches!(at.event.kind, EventKind::NodeRecovered { .. });
                if recovered && own > prev_own {
                    lost.entry(node).or_default().push((prev_own, own));
                } else if own != prev_own + 1 {
                    violations.push(Violation::OwnClockNotNext {
                        node: node.into(),
                        origin: at.origin.clone(),
                        previous: prev_own,
                        found: own,
                        expected: prev_own + 1,
                    });
                } else if prev.event.clock.compare(&at.event.clock) != ClockOrder::Before {
                    violations.push(Violation::ClockWentBack {
                        node: node.into(),
                        origin: at.origin.clone(),
                        previous: json(&prev.event),
                        found: json(&at.event),
                    });
                }
            }
            previous = Some(at);
            if let EventKind::Sent { id, .. } = &at.event.kind
                && let Some(first) = sends.insert(id.as_str(), at)
            {
                violations.push(Violation::DuplicateSend {
                    origin: at.origin.clone(),
                    id: id.clone(),
                    first: first.origin.clone(),
                });
            }
        }
    }
    for at in nodes.iter().flatten() {
        let EventKind::Received { id, from, .. } = &at.event.kind else {
            continue;
        };
        let node = at.event.node.clone();
        let in_crash_gap = id.rsplit_once(':').is_some_and(|(sender, n)| {
            n.parse::<u64>().is_ok_and(|n| {
                lost.get(sender)
                    .is_some_and(|gaps| gaps.iter().any(|&(from, to)| from < n && n < to))
            })
        });
        match sends.get(id.as_str()) {
            None if in_crash_gap => {}
            None => violations.push(Violation::ReceiveWithoutSend {
                node,
                origin: at.origin.clone(),
                id: id.clone(),
                from: from.clone(),
            }),
            Some(send) if !send.event.clock.happened_before(&at.event.clock) => {
                violations.push(Violation::ReceiveNotAfterSend {
                    node,
                    origin: at.origin.clone(),
                    id: id.clone(),
                    receive: json(&at.event),
                    send: json(&send.event),
                    send_origin: send.origin.clone(),
                })
            }
            Some(_) => {}
        }
    }
    violations
}

fn json(event: &Event) -> String {
    serde_json::to_string(&event.clock).unwrap_or_default()
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
