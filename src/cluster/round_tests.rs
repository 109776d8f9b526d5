//! Tests of the round protocol's leader core (`round`): reduction at each consistency level,
//! refused gradients, deadlines, the rules' minimum inputs, following the log and leadership;
//! a proptest of arbitrary gradient streams.

use super::*;
use crate::cluster::command::tests::round as sample_round;
use proptest::prelude::*;

fn id(n: u8) -> NodeId {
    NodeId([n; 32])
}

fn workers() -> Vec<NodeId> {
    vec![id(1), id(2), id(3)]
}

fn settings(consistency: ConsistencyLevel) -> RoundSettings {
    RoundSettings {
        consistency,
        rule: RuleSpec::Mean,
        deadline_ms: 100,
        batch_size: 8,
        learning_rate: 0.01,
        lr_schedule: Default::default(),
        optimizer: Default::default(),
        gradient_len: 2,
    }
}

const P: StateHash = StateHash([7; 32]);

fn gradient(round: u64, values: Vec<f32>) -> Gradient {
    Gradient {
        round,
        params_hash: P,
        loss: 1.0,
        values,
    }
}

fn drain(c: &mut Coordinator) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn collecting(level: ConsistencyLevel) -> Coordinator {
    let mut c = Coordinator::new(42);
    c.announce(0, 5, P, workers(), settings(level));
    let actions = drain(&mut c);
    assert!(
        matches!(&actions[..], [Action::Announce(a)] if a.round == 5 && a.attempt == 0 && a.workers == workers())
    );
    c
}

#[test]
fn level_all_reduces_in_worker_order_once_everyone_sent() {
    let mut c = collecting(ConsistencyLevel::All);
    c.on_gradient(1, id(3), gradient(5, vec![3.0, 3.0]))
        .unwrap();
    c.on_gradient(2, id(1), gradient(5, vec![1.0, 1.0]))
        .unwrap();
    c.tick(50);
    assert!(drain(&mut c).is_empty(), "two of three is not `all`");
    c.on_gradient(3, id(2), gradient(5, vec![2.0, 2.0]))
        .unwrap();
    let actions = drain(&mut c);
    let [Action::Reduce(reduction)] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(reduction.round, 5);
    assert_eq!(reduction.rule, Rule::Mean);
    assert_eq!(
        reduction.gradients(),
        vec![&[1.0f32, 1.0][..], &[2.0, 2.0], &[3.0, 3.0]]
    );
    c.on_stepped(5, StateHash([8; 32]), BlobHash([9; 32]));
    let actions = drain(&mut c);
    let [Action::Propose(Command::RoundCommitted(committed))] = &actions[..] else {
        panic!("{actions:?}");
    };
    assert_eq!(committed.contributors, workers());
    assert_eq!(
        (
            committed.round,
            committed.parent_hash,
            committed.params_hash
        ),
        (5, P, StateHash([8; 32]))
    );
    assert_eq!(committed.request, RequestId { client: 42, seq: 5 });
    assert_eq!(committed.loss, 1.0);
    assert_eq!(committed.consistency, ConsistencyLevel::All);
    assert!(!c.is_idle());
    c.on_applied(&Applied::Round {
        index: 9,
        round: committed.clone(),
    });
    assert!(c.is_idle());
    assert_eq!(c.counters().rounds_reduced, 1);
}

#[test]
fn level_one_and_quorum_reduce_early() {
    let mut c = collecting(ConsistencyLevel::One);
    c.on_gradient(1, id(2), gradient(5, vec![2.0, 2.0]))
        .unwrap();
    assert!(matches!(&drain(&mut c)[..], [Action::Reduce(r)] if r.contributions.len() == 1));
    let mut c = collecting(ConsistencyLevel::Quorum);
    c.on_gradient(1, id(2), gradient(5, vec![2.0, 2.0]))
        .unwrap();
    assert!(drain(&mut c).is_empty());
    c.on_gradient(1, id(1), gradient(5, vec![1.0, 1.0]))
        .unwrap();
    assert!(
        matches!(&drain(&mut c)[..], [Action::Reduce(r)] if r.contributions[0].worker == id(1))
    );
    // A late gradient of the reduced round is stale.
    assert_eq!(
        c.on_gradient(2, id(3), gradient(5, vec![3.0, 3.0])),
        Err(Refusal::StaleRound {
            round: 5,
            current: 5
        })
    );
}

#[test]
fn bad_gradients_are_refused_with_a_reason_and_counted() {
    let mut c = collecting(ConsistencyLevel::All);
    let cases = [
        (
            id(1),
            gradient(4, vec![0.0; 2]),
            Refusal::StaleRound {
                round: 4,
                current: 5,
            },
        ),
        (
            id(1),
            gradient(6, vec![0.0; 2]),
            Refusal::FutureRound {
                round: 6,
                current: 5,
            },
        ),
        (id(9), gradient(5, vec![0.0; 2]), Refusal::NotAWorker),
        (
            id(1),
            gradient(5, vec![0.0; 3]),
            Refusal::WrongLength {
                expected: 2,
                found: 3,
            },
        ),
        (
            id(1),
            gradient(5, vec![0.0, f32::NAN]),
            Refusal::NonFinite { coordinate: 1 },
        ),
        (
            id(1),
            gradient(5, vec![f32::INFINITY, 0.0]),
            Refusal::NonFinite { coordinate: 0 },
        ),
        (
            id(1),
            Gradient {
                params_hash: StateHash([0; 32]),
                ..gradient(5, vec![0.0; 2])
            },
            Refusal::WrongParams,
        ),
        (
            id(1),
            Gradient {
                loss: f32::NAN,
                ..gradient(5, vec![0.0; 2])
            },
            Refusal::NonFiniteLoss,
        ),
    ];
    for (from, g, expected) in cases {
        assert_eq!(c.on_gradient(1, from, g), Err(expected));
    }
    c.on_gradient(1, id(1), gradient(5, vec![0.0; 2])).unwrap();
    assert_eq!(
        c.on_gradient(1, id(1), gradient(5, vec![1.0; 2])),
        Err(Refusal::Duplicate)
    );
    let counts = c.counters();
    assert_eq!(counts.refused(), 9);
    assert_eq!(counts.refused_non_finite, 3);
    assert_eq!((counts.gradients_accepted, counts.bytes_received), (1, 8));
    assert!(
        drain(&mut c).is_empty(),
        "refused gradients are never reduced"
    );
    assert_eq!(
        Coordinator::new(1).on_gradient(0, id(1), gradient(5, vec![0.0; 2])),
        Err(Refusal::NotCollecting)
    );
}

#[test]
fn a_round_without_workers_never_reduces_nothing() {
    let mut c = Coordinator::new(1);
    c.announce(0, 1, P, Vec::new(), settings(ConsistencyLevel::All));
    c.tick(1);
    assert!(matches!(&drain(&mut c)[..], [Action::Announce(_)]));
    c.tick(100);
    assert!(matches!(
        &drain(&mut c)[..],
        [Action::Abandoned { required: 0, .. }, Action::Announce(_)]
    ));
}

#[test]
fn a_missed_deadline_abandons_and_announces_again() {
    let mut c = collecting(ConsistencyLevel::All);
    c.on_gradient(10, id(1), gradient(5, vec![1.0; 2])).unwrap();
    assert_eq!(c.poll_timeout(), Some(100));
    c.tick(99);
    assert!(drain(&mut c).is_empty());
    c.tick(100);
    let actions = drain(&mut c);
    assert_eq!(
        actions[0],
        Action::Abandoned {
            round: 5,
            attempt: 0,
            received: 1,
            required: 3
        }
    );
    assert!(matches!(&actions[1], Action::Announce(a) if a.round == 5 && a.attempt == 1));
    assert_eq!(c.counters().rounds_abandoned, 1);
    assert_eq!(c.poll_timeout(), Some(200));
    // The retry starts empty: the same worker may send again.
    for w in 1..=3 {
        c.on_gradient(150, id(w), gradient(5, vec![1.0; 2]))
            .unwrap();
    }
    assert!(matches!(&drain(&mut c)[..], [Action::Reduce(_)]));
}

#[test]
fn rules_raise_the_required_count_and_krum_selects_from_the_contributors() {
    let mut c = Coordinator::new(1);
    let five: Vec<NodeId> = (1..=5).map(id).collect();
    let s = RoundSettings {
        rule: RuleSpec::TrimmedMean { trim: 1 },
        ..settings(ConsistencyLevel::One)
    };
    c.announce(0, 1, P, five.clone(), s);
    drain(&mut c);
    for w in 1..=2 {
        c.on_gradient(1, id(w), gradient(1, vec![0.0; 2])).unwrap();
    }
    assert!(drain(&mut c).is_empty(), "trimmed-mean:1 needs 3 inputs");
    c.on_gradient(1, id(5), gradient(1, vec![0.0; 2])).unwrap();
    assert!(
        matches!(&drain(&mut c)[..], [Action::Reduce(r)] if r.rule == Rule::TrimmedMean { trim: 1 })
    );
    let s = RoundSettings {
        rule: RuleSpec::Krum { byzantine: 1 },
        ..settings(ConsistencyLevel::All)
    };
    c.announce(0, 1, P, five, s);
    drain(&mut c);
    for w in 1..=5 {
        c.on_gradient(1, id(w), gradient(1, vec![0.0; 2])).unwrap();
    }
    assert!(
        matches!(&drain(&mut c)[..], [Action::Reduce(r)] if r.rule == Rule::Krum { byzantine: 1, select: 4 })
    );
}

#[test]
fn the_coordinator_follows_the_log_and_leadership() {
    let mut c = collecting(ConsistencyLevel::All);
    // Another leader's round 5 committed first.
    c.on_applied(&Applied::Round {
        index: 3,
        round: sample_round(5),
    });
    assert!(c.is_idle());
    let mut c = collecting(ConsistencyLevel::One);
    c.on_gradient(0, id(1), gradient(5, vec![0.0; 2])).unwrap();
    drain(&mut c);
    c.on_stepped(4, P, BlobHash([0; 32]));
    assert!(
        drain(&mut c).is_empty(),
        "a step of another round proposes nothing"
    );
    let mut c = collecting(ConsistencyLevel::One);
    c.on_gradient(0, id(1), gradient(5, vec![0.0; 2])).unwrap();
    drain(&mut c);
    c.on_reduce_failed(5);
    assert!(c.is_idle());
    assert_eq!(c.counters().rounds_abandoned, 1);
    let mut c = collecting(ConsistencyLevel::All);
    c.announce(0, 6, P, workers(), settings(ConsistencyLevel::All));
    c.step_down();
    assert!(c.is_idle());
    assert!(c.poll_action().is_none());
}

proptest! {
    /// Whatever peers send, only finite gradients of the open round, of the right length, at
    /// the round's params, one per announced worker, are reduced, in worker order; every
    /// gradient is either accepted or refused and counted.
    #[test]
    fn only_valid_gradients_are_reduced_in_worker_order(
        sends in proptest::collection::vec((0u8..5, 4u64..7, 1usize..4, any::<bool>(), any::<bool>()), 0..40),
        level in prop_oneof![Just(ConsistencyLevel::One), Just(ConsistencyLevel::Quorum), Just(ConsistencyLevel::All)],
    ) {
        let mut c = collecting(level);
        let mut reductions = Vec::new();
        for (i, (from, round, len, nan, wrong_params)) in sends.iter().enumerate() {
            let mut g = gradient(*round, vec![i as f32; *len]);
            if *nan {
                g.values[0] = f32::NAN;
            }
            if *wrong_params {
                g.params_hash = StateHash([0; 32]);
            }
            let _ = c.on_gradient(i as u64, id(*from), g);
            c.tick(i as u64);
            reductions.extend(drain(&mut c).into_iter().filter_map(|a| match a {
                Action::Reduce(r) => Some(r),
                _ => None,
            }));
        }
        let counters = c.counters();
        prop_assert_eq!(counters.gradients_accepted + counters.refused(), sends.len() as u64);
        prop_assert!(reductions.len() <= 1);
        for r in reductions {
            prop_assert!(r.contributions.len() >= level.required(3));
            let order: Vec<usize> = r.contributions.iter()
                .map(|k| workers().iter().position(|w| *w == k.worker).unwrap())
                .collect();
            prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{:?}", order);
            for k in &r.contributions {
                prop_assert_eq!(k.values.len(), 2);
                prop_assert!(k.values.iter().all(|v| v.is_finite()));
            }
        }
    }
}
