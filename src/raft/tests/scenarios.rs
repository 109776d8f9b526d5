//! Scenario tests, each named after a case in the issue, on a simulated cluster with manual
//! control over which messages arrive.

use crate::raft::core::{Config, Raft, ReadOnlyMode, Role};
use crate::raft::message::{Message, MessageBody};
use crate::raft::sim::{Cluster, Property, Violation};
use crate::raft::storage::RecoveredState;
use crate::raft::types::{Entry, EntryKind, HardState, RaftId};

fn config(pre_vote: bool, check_quorum: bool) -> impl Fn(RaftId, Vec<RaftId>) -> Config {
    move |id, voters| {
        let mut c = Config::new(id, voters);
        c.election_ticks = 10;
        c.heartbeat_ticks = 2;
        c.pre_vote = pre_vote;
        c.check_quorum = check_quorum;
        c.max_entries_per_message = 1;
        c
    }
}

fn is_vote_traffic(m: &Message) -> bool {
    matches!(
        m.body,
        MessageBody::Vote { .. }
            | MessageBody::VoteResponse { .. }
            | MessageBody::PreVote { .. }
            | MessageBody::PreVoteResponse { .. }
    )
}

fn carries_index_at_least(m: &Message, index: u64) -> bool {
    matches!(&m.body, MessageBody::Append { entries, .. } if entries.iter().any(|e| e.index >= index))
}

/// Campaigns at `id` (repeatedly: a term may be taken) with messages filtered by `keep`.
fn elect(
    c: &mut Cluster,
    id: RaftId,
    mut keep: impl FnMut(&Message) -> bool,
) -> Result<(), Violation> {
    for _ in 0..5 {
        c.with_node(id, |r| r.campaign_now())?;
        c.settle_with(&mut keep)?;
        if c.raft(id).is_some_and(|r| r.role() == Role::Leader) {
            return Ok(());
        }
    }
    panic!("node {id} could not be elected");
}

/// Raft paper Figure 8 with the rule on or off; returns the cluster or the violation found.
fn figure8(disable_rule: bool) -> Result<Cluster, Violation> {
    let mut c = Cluster::new(5, 8, |id, voters| {
        let mut cfg = config(false, false)(id, voters);
        cfg.unsafe_disable_figure8_rule = disable_rule;
        cfg
    });
    // (a) S1 leads term 1 and commits its no-op everywhere, then writes index 2 to S2 only.
    elect(&mut c, 1, |_| true)?;
    c.settle()?;
    c.net.partition(&[1, 2], &c.ids());
    c.propose(1, b"a".to_vec())?;
    c.settle()?;
    assert_eq!(c.raft(2).and_then(|r| r.entry_term(2)), Some(1));
    // (b) S1 crashes; S5 wins term 2 with S3 and S4 but its no-op (index 2) goes nowhere.
    c.crash(1);
    c.net.heal();
    elect(&mut c, 5, is_vote_traffic)?;
    let s5_term = c.raft(5).map(|r| r.term());
    c.crash(5);
    // (c) S1 restarts, wins a later term and replicates index 2 (term 1) to S3, but not its
    // own no-op at index 3: index 2 is on a majority (S1, S2, S3).
    c.restart(1)?;
    elect(&mut c, 1, |m| is_vote_traffic(m) && m.to != 5)?;
    // S1's append of index 2 reaches S2 and S3 (the ones with index 3 do not).
    let s1 = c.raft(1).expect("up");
    let entry2 = s1.entry(2).cloned().expect("S1 holds index 2");
    let append = MessageBody::Append {
        prev_index: 1,
        prev_term: 1,
        entries: vec![entry2],
        commit: s1.commit_index(),
        read_round: 0,
    };
    let term = s1.term();
    for to in [2, 3] {
        c.deliver(Message {
            from: 1,
            to,
            term,
            body: append.clone(),
        })?;
    }
    c.settle_with(|m| m.to == 1 || (m.to != 5 && !carries_index_at_least(m, 3)))?;
    assert_eq!(
        c.raft(3).and_then(|r| r.entry_term(2)),
        Some(1),
        "S3 holds index 2 of term 1"
    );
    if !disable_rule {
        assert_eq!(
            c.raft(1).map(|r| r.commit_index()),
            Some(1),
            "index 2 of an older term must not commit by counting"
        );
    }
    // (d) S1 crashes; S5 (last term 2) wins and overwrites index 2 everywhere.
    c.crash(1);
    c.restart(5)?;
    elect(&mut c, 5, |m| m.to != 1)?;
    c.settle_with(|m| m.to != 1)?;
    assert!(c.raft(5).is_some_and(|r| r.term() > s5_term.unwrap_or(0)));
    Ok(c)
}

#[test]
fn figure8_older_term_entry_is_not_committed_by_counting_replicas() {
    let c = figure8(false).unwrap_or_else(|v| panic!("{v}"));
    // Index 2 was never committed, so overwriting it is safe and everyone agrees on S5's entry.
    for id in [2, 3, 4] {
        assert_eq!(
            c.raft(id).and_then(|r| r.entry(2)).map(|e| e.kind),
            Some(EntryKind::Noop)
        );
    }
}

#[test]
fn figure8_with_rule_disabled_violates_safety() {
    let v = figure8(true).expect_err("without the Figure 8 rule a committed entry is overwritten");
    assert!(
        matches!(
            v.property,
            Property::LeaderCompleteness | Property::StateMachineSafety
        ),
        "{v}"
    );
}

/// Five nodes; 1, 2, 3 fully connected; 4 linked only to 1, 5 only to 2.
fn partial_partition_livelock(pre_vote_and_check_quorum: bool) -> (u64, usize, usize) {
    let on = pre_vote_and_check_quorum;
    let mut c = Cluster::new(5, 17, config(on, on));
    let leader = c
        .elect(200)
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("a leader");
    c.settle().unwrap_or_else(|v| panic!("{v}"));
    let ids = c.ids();
    for a in ids.clone() {
        for b in ids.clone() {
            let linked =
                a == b || (a <= 3 && b <= 3) || matches!((a.min(b), a.max(b)), (1, 4) | (2, 5));
            if !linked {
                c.net.cut(a, b);
            }
        }
    }
    let _ = leader;
    let start_term = c.raft(1).map(|r| r.term()).unwrap_or(0);
    let (mut proposed, mut committed) = (0, 0);
    for round in 0..60 {
        let mut marker = None;
        if let Some(l) = c.leader() {
            let data = format!("p{round}").into_bytes();
            if let Some(index) = c.propose(l, data.clone()).unwrap_or_else(|v| panic!("{v}")) {
                proposed += 1;
                marker = Some((l, index, data));
            }
        }
        for _ in 0..10 {
            c.tick().unwrap_or_else(|v| panic!("{v}"));
        }
        if let Some((l, index, data)) = marker {
            let r = c.raft(l).expect("up");
            if r.commit_index() >= index && r.entry(index).is_some_and(|e| e.data == data) {
                committed += 1;
            }
        }
    }
    let end_term = c.raft(1).map(|r| r.term()).unwrap_or(0);
    (end_term - start_term, proposed, committed)
}

#[test]
fn partial_partition_livelock_is_resolved_by_pre_vote_and_check_quorum() {
    let (term_churn, proposed, committed) = partial_partition_livelock(true);
    assert_eq!(
        term_churn, 0,
        "terms must stay put: the cut-off nodes cannot win pre-votes"
    );
    assert_eq!(proposed, 60);
    assert!(committed >= 58, "only {committed}/60 proposals committed");
    // Without the two mechanisms the cut-off nodes keep deposing the leader.
    let (term_churn, _, committed_off) = partial_partition_livelock(false);
    assert!(
        term_churn >= 10,
        "expected leader churn without pre-vote/check-quorum, saw {term_churn} terms"
    );
    assert!(committed_off < committed, "{committed_off} vs {committed}");
}

#[test]
fn granted_pre_vote_does_not_reset_election_timer() {
    let mut c = Cluster::new(3, 3, config(true, true));
    let node = c
        .nodes
        .get_mut(&2)
        .and_then(|n| n.raft.as_mut())
        .expect("up");
    for _ in 0..5 {
        node.tick();
    }
    let elapsed = node.election_elapsed;
    assert_eq!(elapsed, 5);
    let msg = Message {
        from: 3,
        to: 2,
        term: 1,
        body: MessageBody::PreVote {
            last_index: 0,
            last_term: 0,
        },
    };
    node.step(msg).expect("valid");
    let granted = node
        .msgs
        .iter()
        .any(|m| matches!(m.body, MessageBody::PreVoteResponse { reject: false }));
    assert!(granted, "the pre-vote is granted: {:?}", node.msgs);
    assert_eq!(
        node.election_elapsed, elapsed,
        "granting a pre-vote must not reset the timer"
    );
    assert_eq!((node.term(), node.vote), (0, 0), "nor change term or vote");
}

#[test]
fn duplicate_votes_from_one_voter_are_counted_once() {
    let mut c = Cluster::new(5, 4, config(false, false));
    let r = c
        .nodes
        .get_mut(&1)
        .and_then(|n| n.raft.as_mut())
        .expect("up");
    r.campaign_now();
    assert_eq!(r.role(), Role::Candidate);
    let term = r.term();
    for _ in 0..3 {
        r.step(Message {
            from: 2,
            to: 1,
            term,
            body: MessageBody::VoteResponse { reject: false },
        })
        .expect("ok");
    }
    assert_eq!(
        r.role(),
        Role::Candidate,
        "self + node 2 (three times) is two votes of five"
    );
    r.step(Message {
        from: 3,
        to: 1,
        term,
        body: MessageBody::VoteResponse { reject: false },
    })
    .expect("ok");
    assert_eq!(r.role(), Role::Leader);
}

#[test]
fn follower_with_matching_suffix_does_not_truncate() {
    // A follower holding 1..=5 of term 1, with only 1 committed.
    let entries: Vec<Entry> = (1..=5)
        .map(|index| Entry {
            index,
            term: 1,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        })
        .collect();
    let state = RecoveredState {
        hard_state: HardState {
            term: 1,
            vote: 1,
            commit: 1,
        },
        snapshot: Default::default(),
        entries: entries.clone(),
    };
    let mut r = Raft::new(config(false, false)(2, vec![1, 2, 3]), state).expect("valid");
    let _ = r.ready();
    r.advance();
    // A delayed duplicate append of entries 2..=3 arrives after 4 and 5 were stored.
    let append = MessageBody::Append {
        prev_index: 1,
        prev_term: 1,
        entries: entries[1..3].to_vec(),
        commit: 1,
        read_round: 0,
    };
    r.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: append,
    })
    .expect("ok");
    assert_eq!(r.last_index(), 5, "entries 4 and 5 must survive");
    assert_eq!(r.entry(5), Some(&entries[4]));
    let ready = r.ready().expect("a response to send");
    assert!(
        ready.persist.entries.is_empty(),
        "nothing to rewrite: {:?}",
        ready.persist.entries
    );
    assert!(
        matches!(
            ready.messages[..],
            [Message {
                body: MessageBody::AppendResponse {
                    reject: false,
                    index: 3,
                    ..
                },
                ..
            }]
        ),
        "{:?}",
        ready.messages
    );
    // A conflicting entry at 4 truncates from 4 only.
    r.advance();
    let conflicting = Entry {
        index: 4,
        term: 2,
        kind: EntryKind::Normal,
        data: b"new".to_vec(),
    };
    let append = MessageBody::Append {
        prev_index: 3,
        prev_term: 1,
        entries: vec![conflicting.clone()],
        commit: 1,
        read_round: 0,
    };
    r.step(Message {
        from: 1,
        to: 2,
        term: 2,
        body: append,
    })
    .expect("ok");
    assert_eq!(r.last_index(), 4);
    assert_eq!(r.entry(3), Some(&entries[2]));
    let ready = r.ready().expect("persist");
    assert_eq!(ready.persist.entries, vec![conflicting]);
}

#[test]
fn follower_whose_log_was_lost_does_not_regress_commit_or_panic() {
    let mut c = Cluster::new(3, 6, config(true, true));
    let leader = c
        .elect(200)
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("leader");
    for i in 0..10 {
        c.propose(leader, vec![i]).unwrap_or_else(|v| panic!("{v}"));
    }
    c.settle().unwrap_or_else(|v| panic!("{v}"));
    let commit = c.raft(leader).map(|r| r.commit_index()).unwrap_or(0);
    assert_eq!(commit, 11);
    let follower = c
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("follower");
    c.wipe(follower).unwrap_or_else(|v| panic!("{v}"));
    // The leader hears rejections from a follower it believed matched up to 11.
    for _ in 0..50 {
        c.tick().unwrap_or_else(|v| panic!("{v}"));
        assert!(
            c.raft(leader).map(|r| r.commit_index()).unwrap_or(0) >= commit,
            "leader commit regressed"
        );
    }
    assert_eq!(c.leader(), Some(leader));
    let f = c.raft(follower).expect("up");
    assert_eq!(f.last_index(), 11, "the wiped follower is re-replicated");
    assert_eq!(f.commit_index(), 11);
    assert!(
        c.propose(leader, b"after".to_vec())
            .unwrap_or_else(|v| panic!("{v}"))
            .is_some()
    );
}

fn deposed_leader_read(mode: ReadOnlyMode) {
    let mut c = Cluster::new(5, 7, move |id, voters| {
        let mut cfg = config(true, true)(id, voters);
        cfg.read_only = mode;
        cfg
    });
    let old = c
        .elect(200)
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("leader");
    c.propose(old, b"x=1".to_vec())
        .unwrap_or_else(|v| panic!("{v}"));
    c.settle().unwrap_or_else(|v| panic!("{v}"));
    c.net.isolate(old, &c.ids());
    // The majority elects a new leader and commits a write the old leader never sees.
    let mut new = None;
    for _ in 0..300 {
        c.tick().unwrap_or_else(|v| panic!("{v}"));
        new = c
            .ids()
            .into_iter()
            .find(|&id| id != old && c.raft(id).is_some_and(|r| r.role() == Role::Leader));
        if new.is_some() {
            break;
        }
    }
    let new = new.expect("the majority elects a leader");
    let index = c
        .propose(new, b"x=2".to_vec())
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("accepted");
    for _ in 0..5 {
        c.tick().unwrap_or_else(|v| panic!("{v}"));
    }
    assert!(c.raft(new).is_some_and(|r| r.commit_index() >= index));
    // The isolated old leader is asked for a read (if it still thinks it leads).
    let before = c.read_results.len();
    let request = c.read(old).unwrap_or_else(|v| panic!("{v}"));
    for _ in 0..50 {
        c.tick().unwrap_or_else(|v| panic!("{v}"));
    }
    let stale = c.read_results[before..]
        .iter()
        .any(|(id, rs)| *id == old && rs.request == request && rs.index < index);
    assert!(
        !stale,
        "the deposed leader served a stale read: {:?}",
        &c.read_results[before..]
    );
    // A read at the real leader is served at or after the new write.
    let request = c.read(new).unwrap_or_else(|v| panic!("{v}"));
    for _ in 0..5 {
        c.tick().unwrap_or_else(|v| panic!("{v}"));
    }
    assert!(
        c.read_results
            .iter()
            .any(|(id, rs)| *id == new && rs.request == request && rs.index >= index)
    );
}

#[test]
fn deposed_leader_does_not_serve_stale_read() {
    deposed_leader_read(ReadOnlyMode::Safe);
}

#[test]
fn deposed_leader_does_not_serve_stale_lease_read() {
    deposed_leader_read(ReadOnlyMode::LeaseBased);
}
