//! Tests of the happened-before check (`check`), with proptests of valid and broken logs.

use proptest::prelude::*;

use super::*;
use crate::events::clock::VectorClock;
use crate::events::record::message_id;

/// An in-memory simulation of nodes exchanging messages, stamping events like `EventLog`.
struct Sim {
    clocks: Vec<VectorClock>,
    logs: Vec<Vec<EventAt>>,
}

impl Sim {
    fn new(nodes: usize) -> Self {
        Self {
            clocks: vec![VectorClock::new(); nodes],
            logs: vec![Vec::new(); nodes],
        }
    }
    fn name(i: usize) -> String {
        format!("n{i}")
    }
    fn push(&mut self, i: usize, kind: EventKind) {
        let origin = format!("n{i}:{}", self.logs[i].len() + 1);
        let event = Event {
            node: Self::name(i),
            time_ms: 0,
            time_us: 0,
            clock: self.clocks[i].clone(),
            kind,
        };
        self.logs[i].push(EventAt { event, origin });
    }
    fn local(&mut self, i: usize) {
        self.clocks[i].tick(&Self::name(i));
        self.push(i, EventKind::NodeStarted);
    }
    /// Sends from `a` to `b`; returns (id, sender's clock).
    fn send(&mut self, a: usize, b: usize) -> (String, VectorClock) {
        let own = self.clocks[a].tick(&Self::name(a));
        let id = message_id(&Self::name(a), own);
        let kind = EventKind::Sent {
            to: Self::name(b),
            msg: "block".into(),
            bytes: 10,
            id: id.clone(),
        };
        self.push(a, kind);
        (id, self.clocks[a].clone())
    }
    fn receive(&mut self, b: usize, from: usize, id: &str, clock: &VectorClock) {
        self.clocks[b].merge(clock);
        self.clocks[b].tick(&Self::name(b));
        let kind = EventKind::Received {
            from: Self::name(from),
            msg: "block".into(),
            bytes: 10,
            id: id.into(),
        };
        self.push(b, kind);
    }
}

fn exchange() -> Sim {
    let mut sim = Sim::new(3);
    sim.local(0);
    let (id, clock) = sim.send(0, 1);
    sim.local(2);
    sim.receive(1, 0, &id, &clock);
    let (id2, clock2) = sim.send(1, 2);
    sim.receive(2, 1, &id2, &clock2);
    sim
}

#[test]
fn a_valid_exchange_holds() {
    assert_eq!(check(&exchange().logs), vec![]);
}

#[test]
fn a_receive_without_its_send_is_named() {
    let mut sim = exchange();
    sim.logs[0].remove(1); // n0's send of n0:2
    let violations = check(&sim.logs);
    assert!(
        violations.iter().any(|v| matches!(v, Violation::ReceiveWithoutSend { node, id, .. } if node == "n1" && id == "n0:2")),
        "{violations:?}"
    );
}

#[test]
fn a_receive_not_after_its_send_is_named() {
    let mut sim = exchange();
    // n1's receive forgets to merge n0's clock.
    sim.logs[1][0].event.clock = {
        let mut c = VectorClock::new();
        c.set("n1", 1);
        c
    };
    let violations = check(&sim.logs);
    let found = violations
        .iter()
        .find(|v| matches!(v, Violation::ReceiveNotAfterSend { .. }));
    let text = found.map(ToString::to_string).unwrap_or_default();
    assert!(
        text.contains("n1 receives message n0:2") && text.contains("n0:2"),
        "{violations:?}"
    );
}

#[test]
fn an_own_clock_gap_is_named() {
    let mut sim = exchange();
    sim.logs[2][1].event.clock.set("n2", 5);
    let violations = check(&sim.logs);
    assert!(violations.iter().any(|v| matches!(v, Violation::OwnClockNotNext { node, found: 5, expected: 2, .. } if node == "n2")), "{violations:?}");
}

#[test]
fn a_clock_that_goes_back_is_named() {
    let mut sim = exchange();
    // n1's second event (the send) loses what the receive learnt from n0.
    sim.logs[1][1].event.clock.set("n0", 0);
    let violations = check(&sim.logs);
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::ClockWentBack { node, .. } if node == "n1")),
        "{violations:?}"
    );
}

#[test]
fn a_missing_own_entry_and_a_duplicate_send_are_named() {
    let mut sim = exchange();
    let copy = sim.logs[0][1].clone();
    sim.logs[0].push(EventAt {
        origin: "n0:3".into(),
        ..copy
    });
    sim.logs[0][0].event.clock = VectorClock::new();
    let violations = check(&sim.logs);
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::NoOwnEntry { node, .. } if node == "n0")),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| matches!(v, Violation::DuplicateSend { id, .. } if id == "n0:2")),
        "{violations:?}"
    );
}

/// A random exchange: each step is (sender, receiver, deliver-now?); undelivered messages are
/// delivered at the end in random order.
fn random_sim(nodes: usize, steps: &[(usize, usize, bool)], order: &[usize]) -> Sim {
    let mut sim = Sim::new(nodes);
    let mut in_flight = Vec::new();
    for &(a, b, now) in steps {
        let (a, b) = (a % nodes, b % nodes);
        if a == b {
            sim.local(a);
            continue;
        }
        let (id, clock) = sim.send(a, b);
        if now {
            sim.receive(b, a, &id, &clock);
        } else {
            in_flight.push((a, b, id, clock));
        }
    }
    for &pick in order {
        if in_flight.is_empty() {
            break;
        }
        let (a, b, id, clock) = in_flight.swap_remove(pick % in_flight.len());
        sim.receive(b, a, &id, &clock);
    }
    for (a, b, id, clock) in in_flight {
        sim.receive(b, a, &id, &clock);
    }
    sim
}

proptest! {
    #[test]
    fn random_valid_exchanges_hold_and_a_removed_or_swapped_send_fails(
        nodes in 2usize..5,
        steps in prop::collection::vec((0usize..5, 0usize..5, any::<bool>()), 1..40),
        order in prop::collection::vec(0usize..64, 0..40),
        victim in 0usize..1000,
    ) {
        let sim = random_sim(nodes, &steps, &order);
        prop_assert_eq!(check(&sim.logs), vec![]);
        // Every send in the logs, as (node, position).
        let sends: Vec<(usize, usize)> = sim.logs.iter().enumerate().flat_map(|(n, log)| {
            log.iter().enumerate().filter(|(_, at)| matches!(at.event.kind, EventKind::Sent { .. })).map(move |(i, _)| (n, i))
        }).collect();
        prop_assume!(!sends.is_empty());
        let (n, i) = sends[victim % sends.len()];
        // Removed: its receive has no send (and the sender's clock skips).
        let mut removed = sim.logs.clone();
        removed[n].remove(i);
        let caught = check(&removed).iter().any(|v| matches!(v, Violation::ReceiveWithoutSend { .. }));
        prop_assert!(caught, "removing a send was not caught");
        // Swapped with the event before it: the sender's clocks run backwards.
        if i > 0 {
            let mut swapped = sim.logs.clone();
            swapped[n].swap(i - 1, i);
            prop_assert!(!check(&swapped).is_empty());
        }
    }
}
