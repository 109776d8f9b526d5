//! `Replicated`: the training cluster's state machine as the consensus service runs it — the
//! sans-IO `ClusterState` plus a channel that hands every `Applied` event, in log order, to the
//! training service (which steps its trainer, answers config writers and files receipts).
//!
//! It also makes the cluster's snapshots restorable: a snapshot names the training state after
//! its last round (a blob named by the params hash, never in the snapshot), so preparing one
//! asks the trainer to store that blob (`Checkpoint`), and the log is compacted only once the
//! blob is on disk. After a compaction, blobs only older snapshots needed are handed back for
//! collection (`Collect`): the reduced gradients of rounds up to the previous snapshot and the
//! params of snapshots before it. The current and the previous snapshot's params and every
//! later round's reduced gradient stay.

use std::collections::{HashSet, VecDeque};

use tokio::sync::mpsc;

use crate::cluster::{Applied, BlobHash, ClusterState};
use crate::raft::{Snapshot, StateMachine};
use crate::train::StateHash;

use super::blobs::BlobStore;
use super::consensus::Compactable;

/// Snapshots whose params blobs are kept (the current one and the one before).
const KEPT_SNAPSHOTS: usize = 2;

/// What the state machine hands the training service, in log order.
#[derive(Debug)]
pub enum StateEvent {
    /// The cluster state applied or restored something.
    Applied(Applied),
    /// A snapshot names the training state after `round`: store it as a blob once the
    /// trainer holds it.
    Checkpoint {
        /// The last round the snapshot covers.
        round: u64,
        /// Hash of the training state (params) after that round; the blob's name.
        params_hash: StateHash,
    },
    /// Blobs no kept snapshot or later round needs, each with its round: remove those of
    /// rounds the trainer has applied.
    Collect(Vec<(u64, BlobHash)>),
}

/// A snapshot's round and the params hash it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Named {
    round: u64,
    params_hash: StateHash,
}

/// `ClusterState` that forwards what it applied.
#[derive(Debug)]
pub struct Replicated {
    state: ClusterState,
    events: mpsc::UnboundedSender<StateEvent>,
    blobs: BlobStore,
    /// The snapshot prepared last, waiting for its params blob.
    staged: Option<Named>,
    /// Snapshots the log was compacted to (or restored from), oldest first.
    kept: VecDeque<Named>,
    /// Reduced gradients of rounds up to here were handed for collection.
    collected_through: u64,
}

impl Replicated {
    /// Wraps `state`; its events go to `events`; `blobs` is where the trainer stores the
    /// params a snapshot names.
    pub fn new(
        state: ClusterState,
        events: mpsc::UnboundedSender<StateEvent>,
        blobs: BlobStore,
    ) -> Replicated {
        Replicated {
            state,
            events,
            blobs,
            staged: None,
            kept: VecDeque::new(),
            collected_through: 0,
        }
    }

    /// The replicated state (round log, config store).
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    fn send(&self, event: StateEvent) {
        // The training service stopped: the node is stopping too.
        let _ = self.events.send(event);
    }

    fn forward(&mut self) {
        for event in self.state.take_applied() {
            self.send(StateEvent::Applied(event));
        }
    }

    fn keep(&mut self, named: Named) {
        self.kept.push_back(named);
        let mut collect = Vec::new();
        while self.kept.len() > KEPT_SNAPSHOTS {
            if let Some(old) = self.kept.pop_front() {
                collect.push((old.round, BlobHash::from(old.params_hash)));
            }
        }
        if self.kept.len() == KEPT_SNAPSHOTS
            && let Some(previous) = self.kept.front().copied()
        {
            // Reduced gradients of rounds the previous snapshot covers; a hash a later round
            // or a kept snapshot shares stays.
            let mut needed: HashSet<BlobHash> = self
                .state
                .rounds()
                .filter(|r| r.round > previous.round)
                .map(|r| r.reduced_hash)
                .collect();
            needed.extend(self.kept.iter().map(|k| BlobHash::from(k.params_hash)));
            collect.retain(|(_, hash)| !needed.contains(hash));
            for round in self.state.rounds() {
                if round.round > self.collected_through
                    && round.round <= previous.round
                    && !needed.contains(&round.reduced_hash)
                {
                    collect.push((round.round, round.reduced_hash));
                }
            }
            self.collected_through = self.collected_through.max(previous.round);
        }
        if !collect.is_empty() {
            self.send(StateEvent::Collect(collect));
        }
    }
}

impl StateMachine for Replicated {
    type RestoreError = crate::cluster::ClusterError;
    fn apply(&mut self, index: u64, command: &[u8]) {
        self.state.apply(index, command);
        self.forward();
    }

    fn snapshot(&self) -> Vec<u8> {
        self.state.snapshot()
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), crate::cluster::ClusterError> {
        self.state.restore(snapshot)?;
        self.forward();
        self.staged = None;
        self.kept.clear();
        let named = Named {
            round: self.state.round(),
            params_hash: self.state.params_hash(),
        };
        self.kept.push_back(named);
        Ok(())
    }
}

impl Compactable for Replicated {
    fn prepare_snapshot(&mut self) -> Vec<u8> {
        let named = Named {
            round: self.state.round(),
            params_hash: self.state.params_hash(),
        };
        self.staged = Some(named);
        self.send(StateEvent::Checkpoint {
            round: named.round,
            params_hash: named.params_hash,
        });
        self.state.snapshot()
    }

    fn snapshot_durable(&self) -> bool {
        self.staged.is_some_and(|named| {
            named.round == 0 || self.blobs.contains(&BlobHash::from(named.params_hash))
        })
    }

    fn compacted(&mut self) {
        if let Some(named) = self.staged.take() {
            self.keep(named);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::command::tests::round as sample_round;
    use crate::cluster::{Command, RoundCommitted, TrainingConfig};
    use crate::codec::Encode;

    const GENESIS: StateHash = StateHash([1; 32]);

    /// Round `r` chained onto the rounds before it, with a reduced gradient of its own.
    fn chained(r: u64) -> Vec<u8> {
        let hash = |r: u64| StateHash([r as u8 + 1; 32]);
        Command::RoundCommitted(RoundCommitted {
            parent_hash: if r == 1 { GENESIS } else { hash(r - 1) },
            params_hash: hash(r),
            reduced_hash: BlobHash([r as u8 + 100; 32]),
            ..sample_round(r)
        })
        .to_bytes()
    }

    fn drain(events: &mut mpsc::UnboundedReceiver<StateEvent>) -> Vec<StateEvent> {
        std::iter::from_fn(|| events.try_recv().ok()).collect()
    }

    #[test]
    fn a_snapshot_is_durable_once_its_params_are_stored_and_old_blobs_are_offered() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let state = ClusterState::new(GENESIS, TrainingConfig::default());
        let mut machine = Replicated::new(state, tx, blobs.clone());
        assert!(!machine.snapshot_durable(), "nothing prepared yet");

        let mut index = 0;
        let mut snapshot_at = |machine: &mut Replicated, rounds: std::ops::RangeInclusive<u64>| {
            for r in rounds {
                index += 1;
                machine.apply(index, &chained(r));
            }
            machine.prepare_snapshot()
        };
        let data = snapshot_at(&mut machine, 1..=5);
        assert!(!data.is_empty());
        let events = drain(&mut rx);
        assert_eq!(events.len(), 6, "{events:?}");
        let params = match &events[5] {
            StateEvent::Checkpoint { round, params_hash } => {
                assert_eq!(*round, 5);
                *params_hash
            }
            other => panic!("{other:?}"),
        };
        // Not durable until the trainer stored the params the snapshot names.
        assert!(!machine.snapshot_durable());
        std::fs::write(dir.path().join("blobs").join(params.to_string()), b"x").unwrap();
        assert!(machine.snapshot_durable());
        machine.compacted();
        assert!(!machine.snapshot_durable(), "the staged snapshot was used");
        assert!(
            drain(&mut rx).is_empty(),
            "one snapshot kept: nothing to collect"
        );

        // The second snapshot keeps the first: the reduced gradients of rounds up to the
        // first (5) go, the first snapshot's params stay.
        let collected_after = |machine: &mut Replicated,
                               rx: &mut mpsc::UnboundedReceiver<StateEvent>|
         -> Vec<(u64, BlobHash)> {
            machine.compacted();
            drain(rx)
                .into_iter()
                .find_map(|e| match e {
                    StateEvent::Collect(list) => Some(list),
                    _ => None,
                })
                .expect("a collection")
        };
        snapshot_at(&mut machine, 6..=9);
        let collected = collected_after(&mut machine, &mut rx);
        assert_eq!(
            collected,
            (1..=5)
                .map(|r| (r, BlobHash([r as u8 + 100; 32])))
                .collect::<Vec<_>>()
        );
        // The third: the first snapshot's params go, and the reduced gradients up to the
        // second (9).
        snapshot_at(&mut machine, 10..=12);
        let collected = collected_after(&mut machine, &mut rx);
        assert_eq!(collected[0], (5, BlobHash::from(params)));
        let rounds: Vec<u64> = collected[1..].iter().map(|(r, _)| *r).collect();
        assert_eq!(rounds, vec![6, 7, 8, 9]);
        // The next collection offers only what is new.
        snapshot_at(&mut machine, 13..=14);
        let collected = collected_after(&mut machine, &mut rx);
        let rounds: Vec<u64> = collected.iter().map(|(r, _)| *r).collect();
        assert_eq!(rounds, vec![9, 10, 11, 12]);
    }
}
