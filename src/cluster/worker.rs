//! The worker's side of the round protocol: one gradient per announced round, computed once
//! and sent to whoever leads; resent (not recomputed, so no batch is drawn twice) to a new
//! leader or a new attempt of the same round. Sans-IO: the glue computes and sends.
//!
//! # Call order (the glue in `node/`, on every node that is a worker)
//! 1. For each `RoundAnnounce` from peer `from`: `Worker::on_announce(from, &announce)`.
//! 2. Drain `poll_action()` until `None`:
//!    - `ComputeGradient` → once the node's trainer holds the params named `params_hash`
//!      (after applying the previous round, or a blob fetched by hash), run
//!      `ShardWorker::compute` for shard `worker_index` with `batch_size` rows on a blocking
//!      thread, then `on_computed(round, params_hash, loss, gradient)` and drain again;
//!    - `SendGradient` → send `TrainingMessage::Gradient` to `to` on a stream of its own (to
//!      the local coordinator directly when `to` is this node).

use std::collections::VecDeque;

use crate::node_id::NodeId;
use crate::train::StateHash;

use super::round::Action;
use super::wire::{Gradient, RoundAnnounce};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Task {
    round: u64,
    params_hash: StateHash,
}

/// A worker's side of the round protocol.
#[derive(Debug)]
pub struct Worker {
    me: NodeId,
    leader: Option<NodeId>,
    computing: Option<Task>,
    done: Option<Gradient>,
    actions: VecDeque<Action>,
}

impl Worker {
    /// A worker named `me` on the network.
    pub fn new(me: NodeId) -> Worker {
        Worker {
            me,
            leader: None,
            computing: None,
            done: None,
            actions: VecDeque::new(),
        }
    }

    /// The leader the next gradient goes to.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// A leader announced a round: compute its gradient, or resend one already computed (a
    /// new leader, a new attempt). Returns `false` when this node is not among the workers
    /// or the announcement is older than the last computed round.
    pub fn on_announce(&mut self, from: NodeId, announce: &RoundAnnounce) -> bool {
        let Some(worker_index) = announce.workers.iter().position(|w| *w == self.me) else {
            return false;
        };
        let task = Task {
            round: announce.round,
            params_hash: announce.params_hash,
        };
        let newest = self
            .computing
            .map(|t| t.round)
            .max(self.done.as_ref().map(|g| g.round));
        if newest.is_some_and(|r| r > task.round) {
            return false;
        }
        self.leader = Some(from);
        if let Some(done) = &self.done
            && done.round == task.round
            && done.params_hash == task.params_hash
        {
            self.actions.push_back(Action::SendGradient {
                to: from,
                gradient: done.clone(),
            });
            return true;
        }
        if self.computing == Some(task) {
            return true;
        }
        self.computing = Some(task);
        self.actions.push_back(Action::ComputeGradient {
            round: task.round,
            params_hash: task.params_hash,
            worker_index,
            batch_size: announce.batch_size as usize,
        });
        true
    }

    /// The gradient of an earlier `ComputeGradient` is ready: send it to the current leader
    /// and keep it for resending.
    pub fn on_computed(&mut self, round: u64, params_hash: StateHash, loss: f32, values: Vec<f32>) {
        let task = Task { round, params_hash };
        if self.computing != Some(task) {
            return;
        }
        self.computing = None;
        let gradient = Gradient {
            round,
            params_hash,
            loss,
            values,
        };
        if let Some(to) = self.leader {
            self.actions.push_back(Action::SendGradient {
                to,
                gradient: gradient.clone(),
            });
        }
        self.done = Some(gradient);
    }

    /// The next action, in order.
    #[must_use = "an action polled is removed; the driver must perform it"]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    const P: StateHash = StateHash([7; 32]);

    #[test]
    fn a_worker_computes_once_and_resends_to_a_new_leader() {
        let mut w = Worker::new(id(2));
        let announce = RoundAnnounce {
            round: 5,
            attempt: 0,
            params_hash: P,
            workers: vec![id(1), id(2), id(3)],
            gradient_len: 2,
            batch_size: 8,
        };
        assert!(w.on_announce(id(1), &announce));
        assert_eq!(
            w.poll_action(),
            Some(Action::ComputeGradient {
                round: 5,
                params_hash: P,
                worker_index: 1,
                batch_size: 8
            })
        );
        // A new leader announces the same round while the gradient is computed: no second job.
        assert!(w.on_announce(id(3), &announce));
        assert_eq!(w.poll_action(), None);
        w.on_computed(5, P, 0.5, vec![1.0, 2.0]);
        let expected = Gradient {
            round: 5,
            params_hash: P,
            loss: 0.5,
            values: vec![1.0, 2.0],
        };
        assert_eq!(
            w.poll_action(),
            Some(Action::SendGradient {
                to: id(3),
                gradient: expected.clone()
            })
        );
        // A re-announcement (new attempt or leader) gets the same gradient again.
        let retry = RoundAnnounce {
            attempt: 1,
            ..announce.clone()
        };
        assert!(w.on_announce(id(1), &retry));
        assert_eq!(
            w.poll_action(),
            Some(Action::SendGradient {
                to: id(1),
                gradient: expected
            })
        );
        // Older rounds and rounds without this node are ignored.
        assert!(!w.on_announce(
            id(1),
            &RoundAnnounce {
                round: 4,
                ..announce.clone()
            }
        ));
        assert!(!w.on_announce(
            id(1),
            &RoundAnnounce {
                workers: vec![id(1)],
                round: 6,
                ..announce
            }
        ));
        assert_eq!(w.poll_action(), None);
        // A result nobody asked for is dropped.
        w.on_computed(9, P, 0.0, vec![0.0; 2]);
        assert_eq!(w.poll_action(), None);
    }
}
