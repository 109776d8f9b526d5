//! Tests of the `Collector`: folding events into bounded views.

use super::*;
use crate::events::{RoundTimings, VectorClock};

/// An event of `node` at `time_ms` with its own clock component at 1 (shared with the page's
/// tests).
pub(in crate::report) fn event(node: &str, time_ms: u64, kind: EventKind) -> Event {
    let mut clock = VectorClock::new();
    clock.set(node, 1);
    Event {
        node: node.into(),
        time_ms,
        time_us: 0,
        clock,
        kind,
    }
}

#[test]
fn rounds_merge_what_every_node_logged() {
    let mut c = Collector::new(Limits::default());
    let (a, b) = (c.node("n0"), c.node("n1"));
    c.add(
        a,
        &event(
            "n0",
            100,
            EventKind::RoundCommitted {
                round: 1,
                loss: Some(2.0),
                contributors: 2,
                timings: Some(RoundTimings {
                    gradient_wait_ms: 5.0,
                    reduce_ms: 1.0,
                    commit_ms: 3.0,
                }),
            },
        ),
    );
    c.add(
        b,
        &event(
            "n1",
            101,
            EventKind::RoundCommitted {
                round: 1,
                loss: None,
                contributors: 2,
                timings: None,
            },
        ),
    );
    c.add(
        b,
        &event(
            "n1",
            102,
            EventKind::RoundEvaluated {
                round: 1,
                accuracy: 0.5,
            },
        ),
    );
    c.add(
        b,
        &event(
            "n1",
            103,
            EventKind::RoundAbandoned {
                round: 2,
                reason: "deadline".into(),
            },
        ),
    );
    let out = c.finish(100);
    assert_eq!(
        out.rounds.total, 1,
        "an abandoned round is not a committed one"
    );
    assert_eq!(
        out.rounds.points[0],
        [Some(1.0), Some(2.0), Some(0.5), Some(2.0)]
    );
    assert_eq!(out.rounds.timings, [[1.0, 5.0, 1.0, 3.0]]);
    assert_eq!(out.rounds.abandoned[0].at_ms, 3);
    assert_eq!(out.span_ms, 3);
    assert_eq!(out.lanes[1].name.as_deref(), Some("n1"));
    assert_eq!(out.lanes[1].events, 3);
}

#[test]
fn long_series_are_bounded() {
    let limits = Limits {
        rounds: 50,
        points: 20,
        raft_events: 10,
        ..Limits::default()
    };
    let mut c = Collector::new(limits);
    let lane = c.node("n0");
    for i in 0..10_000u64 {
        c.add(
            lane,
            &event(
                "n0",
                i,
                EventKind::HashRate {
                    hashes_per_sec: 1e6,
                },
            ),
        );
        c.add(
            lane,
            &event(
                "n0",
                i,
                EventKind::RoundCommitted {
                    round: i + 1,
                    loss: Some(1.0),
                    contributors: 1,
                    timings: None,
                },
            ),
        );
        c.add(
            lane,
            &event(
                "n0",
                i,
                EventKind::RaftRole {
                    role: "follower".into(),
                    term: i,
                },
            ),
        );
    }
    let out = c.finish(0);
    assert!(out.rounds.points.len() <= 50);
    assert_eq!(out.rounds.per_point, 200);
    assert_eq!(out.rounds.total, 10_000);
    assert!(out.hash_rate[0].points.len() <= 20);
    assert!(out.hash_rate[0].points.iter().all(|p| p[1] == 1e6));
    assert_eq!(out.raft.roles.len(), 10);
    assert_eq!(out.raft.roles_total, 10_000);
}

#[test]
fn non_finite_numbers_from_a_log_are_left_out() {
    let mut c = Collector::new(Limits::default());
    let lane = c.node("n0");
    c.add(
        lane,
        &event(
            "n0",
            1,
            EventKind::RoundEvaluated {
                round: 1,
                accuracy: f64::NAN,
            },
        ),
    );
    c.add(
        lane,
        &event(
            "n0",
            1,
            EventKind::HashRate {
                hashes_per_sec: f64::INFINITY,
            },
        ),
    );
    let out = c.finish(0);
    assert_eq!(out.rounds.points[0][2], None);
    assert!(out.hash_rate[0].points.is_empty());
    // The page's JSON must encode (serde_json refuses NaN only as null, never as text).
    assert!(serde_json::to_string(&out).is_ok());
}

#[test]
fn a_crash_recovery_is_a_start_that_names_what_may_be_lost() {
    let mut c = Collector::new(Limits::default());
    let a = c.node("n0");
    c.add(a, &event("n0", 100, EventKind::NodeStarted));
    c.add(
        a,
        &event("n0", 900, EventKind::NodeRecovered { lost_at_most: 4160 }),
    );
    let collected = c.finish(100);
    let marks: Vec<(u64, bool, Option<u64>)> = collected
        .raft
        .lifecycle
        .iter()
        .map(|l| (l.at_ms, l.started, l.lost_at_most))
        .collect();
    assert_eq!(marks, vec![(0, true, None), (800, true, Some(4160))]);
}
