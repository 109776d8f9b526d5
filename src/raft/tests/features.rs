//! Snapshots with InstallSnapshot, leadership transfer, membership change and follower reads,
//! on a simulated cluster.

use crate::raft::core::{Config, Role};
use crate::raft::message::MessageBody;
use crate::raft::sim::{Cluster, DigestMachine, SimNode};
use crate::raft::storage::MemStorage;
use crate::raft::types::{ConfChange, RaftId};
use crate::raft::{ProposeError, Raft};

fn config(id: RaftId, voters: Vec<RaftId>) -> Config {
    let mut c = Config::new(id, voters);
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c
}

fn ticks(c: &mut Cluster, n: usize) {
    for _ in 0..n {
        c.tick().unwrap_or_else(|v| panic!("{v}"));
    }
}

fn leader(c: &mut Cluster) -> RaftId {
    c.elect(300)
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("a leader")
}

#[test]
fn lagging_follower_catches_up_through_install_snapshot() {
    let mut c = Cluster::new(3, 11, config);
    let l = leader(&mut c);
    let lagging = c.ids().into_iter().find(|&id| id != l).expect("follower");
    c.net.isolate(lagging, &c.ids());
    for i in 0..30u8 {
        c.propose(l, vec![i]).unwrap_or_else(|v| panic!("{v}"));
    }
    ticks(&mut c, 5);
    c.compact(l).unwrap_or_else(|v| panic!("{v}"));
    let snap = c.raft(l).map(|r| r.snapshot_index()).unwrap_or(0);
    assert!(snap >= 30, "leader compacted through {snap}");
    c.net.heal();
    ticks(&mut c, 20);
    let f = c.raft(lagging).expect("up");
    assert_eq!(
        f.snapshot_index(),
        snap,
        "the follower installed the leader's snapshot"
    );
    assert_eq!(
        f.commit_index(),
        c.raft(l).map(|r| r.commit_index()).unwrap_or(0)
    );
    let machine = |c: &Cluster, id: RaftId| c.nodes.get(&id).map(|n| n.machine);
    assert_eq!(machine(&c, lagging), machine(&c, l), "same state machine");
    // And it survives a restart from storage (snapshot + log).
    c.crash(lagging);
    c.restart(lagging).unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(machine(&c, lagging), machine(&c, l));
}

#[test]
fn leadership_transfer_target_skips_pre_vote_and_wins() {
    let mut c = Cluster::new(3, 12, config);
    let l = leader(&mut c);
    ticks(&mut c, 3);
    let target = c.ids().into_iter().find(|&id| id != l).expect("follower");
    let term = c.raft(l).map(|r| r.term()).unwrap_or(0);
    c.with_node(l, |r| r.transfer_leadership(target))
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("up")
        .expect("ok");
    assert_eq!(
        c.with_node(l, |r| r.propose(b"x".to_vec()))
            .unwrap_or_else(|v| panic!("{v}")),
        Some(Err(ProposeError::TransferInProgress(target)))
    );
    let mut pre_votes = 0;
    for _ in 0..5 {
        c.settle_with(|m| {
            pre_votes += usize::from(matches!(m.body, MessageBody::PreVote { .. }));
            true
        })
        .unwrap_or_else(|v| panic!("{v}"));
        c.tick().unwrap_or_else(|v| panic!("{v}"));
    }
    assert_eq!(c.leader(), Some(target));
    assert_eq!(
        c.raft(target).map(|r| r.term()),
        Some(term + 1),
        "one direct election, no pre-vote round"
    );
    assert_eq!(pre_votes, 0);
}

#[test]
fn membership_change_one_voter_at_a_time() {
    let mut c = Cluster::new(3, 13, config);
    let l = leader(&mut c);
    c.settle().unwrap_or_else(|v| panic!("{v}"));
    // The new node knows the initial voters; it is not one of them yet.
    let cfg = config(4, vec![1, 2, 3]);
    let raft = Raft::new(cfg.clone(), Default::default()).expect("valid");
    c.nodes.insert(
        4,
        SimNode {
            raft: Some(raft),
            storage: MemStorage::new(),
            machine: DigestMachine::default(),
            config: cfg,
        },
    );
    let add = c
        .with_node(l, |r| r.propose_conf_change(ConfChange::AddVoter(4)))
        .unwrap_or_else(|v| panic!("{v}"));
    assert!(matches!(add, Some(Ok(_))), "{add:?}");
    let second = c
        .with_node(l, |r| r.propose_conf_change(ConfChange::RemoveVoter(2)))
        .unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(
        second,
        Some(Err(ProposeError::ConfChangePending)),
        "one change at a time"
    );
    ticks(&mut c, 10);
    for id in 1..=4 {
        assert_eq!(
            c.raft(id).map(|r| r.voters()),
            Some(vec![1, 2, 3, 4]),
            "node {id}"
        );
    }
    assert_eq!(
        c.raft(4).map(|r| r.commit_index()),
        c.raft(l).map(|r| r.commit_index())
    );
    // Remove the leader itself: it steps down once the change commits; the rest elect anew.
    let remove = c
        .with_node(l, |r| r.propose_conf_change(ConfChange::RemoveVoter(l)))
        .unwrap_or_else(|v| panic!("{v}"));
    assert!(matches!(remove, Some(Ok(_))), "{remove:?}");
    ticks(&mut c, 5);
    assert_ne!(c.raft(l).map(|r| r.role()), Some(Role::Leader));
    c.crash(l);
    let new = leader(&mut c);
    assert_ne!(new, l);
    assert_eq!(c.raft(new).map(|r| r.voters().len()), Some(3));
    let index = c
        .propose(new, b"after".to_vec())
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("accepted");
    ticks(&mut c, 5);
    assert!(c.raft(new).is_some_and(|r| r.commit_index() >= index));
}

#[test]
fn conf_change_waits_for_a_committed_entry_of_the_leaders_term() {
    let mut c = Cluster::new(3, 14, config);
    c.with_node(1, |r| r.campaign_now())
        .unwrap_or_else(|v| panic!("{v}"));
    // Deliver votes only: node 1 leads but its no-op is not committed.
    c.settle_with(|m| !matches!(m.body, MessageBody::Append { .. }))
        .unwrap_or_else(|v| panic!("{v}"));
    c.with_node(1, |r| r.campaign_now())
        .unwrap_or_else(|v| panic!("{v}"));
    c.settle_with(|m| !matches!(m.body, MessageBody::Append { .. }))
        .unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(c.raft(1).map(|r| r.role()), Some(Role::Leader));
    let early = c
        .with_node(1, |r| r.propose_conf_change(ConfChange::AddVoter(9)))
        .unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(early, Some(Err(ProposeError::ConfChangePending)));
    ticks(&mut c, 4);
    let later = c
        .with_node(1, |r| r.propose_conf_change(ConfChange::AddVoter(9)))
        .unwrap_or_else(|v| panic!("{v}"));
    assert!(matches!(later, Some(Ok(_))));
}

#[test]
fn follower_read_index_is_forwarded_and_linearizable() {
    let mut c = Cluster::new(3, 15, config);
    let l = leader(&mut c);
    let index = c
        .propose(l, b"k=v".to_vec())
        .unwrap_or_else(|v| panic!("{v}"))
        .expect("accepted");
    ticks(&mut c, 3);
    let follower = c.ids().into_iter().find(|&id| id != l).expect("follower");
    let request = c.read(follower).unwrap_or_else(|v| panic!("{v}"));
    ticks(&mut c, 4);
    let served = c
        .read_results
        .iter()
        .find(|(id, rs)| *id == follower && rs.request == request);
    assert!(
        served.is_some_and(|(_, rs)| rs.index >= index),
        "{:?}",
        c.read_results
    );
}

#[test]
fn install_snapshot_keeps_a_matching_suffix() {
    use crate::raft::message::Message;
    use crate::raft::storage::RecoveredState;
    use crate::raft::types::{Entry, EntryKind, HardState, Snapshot, SnapshotMeta};
    // Found by the soak (seed 7000894): a follower that acknowledged entries past the leader's
    // snapshot must keep them when the snapshot arrives, or a committed entry disappears.
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
            commit: 2,
        },
        snapshot: Default::default(),
        entries: entries.clone(),
    };
    let mut r = Raft::new(config(2, vec![1, 2, 3]), state).expect("valid");
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: 3,
            term: 1,
            voters: vec![1, 2, 3],
        },
        data: b"sm@3".to_vec(),
    };
    r.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::InstallSnapshot {
            snapshot: snapshot.clone(),
        },
    })
    .expect("ok");
    assert_eq!(
        (r.snapshot_index(), r.commit_index(), r.last_index()),
        (3, 3, 5)
    );
    assert_eq!(r.entry(5), Some(&entries[4]));
    let ready = r.ready().expect("work");
    assert_eq!(
        ready.snapshot,
        Some(snapshot.clone()),
        "the state machine restores from it"
    );
    assert!(!ready.persist.discard_log, "stored entries 4 and 5 stay");
    // A snapshot that does not match our log replaces it.
    r.advance();
    let other = Snapshot {
        meta: SnapshotMeta {
            index: 7,
            term: 2,
            voters: vec![1, 2, 3],
        },
        data: vec![],
    };
    r.step(Message {
        from: 1,
        to: 2,
        term: 2,
        body: MessageBody::InstallSnapshot { snapshot: other },
    })
    .expect("ok");
    assert_eq!((r.snapshot_index(), r.last_index()), (7, 7));
    assert!(r.ready().expect("work").persist.discard_log);
}
