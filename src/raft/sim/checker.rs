//! Safety invariants checked after every simulated step: Election Safety, Log Matching,
//! Leader Completeness, State Machine Safety, a monotone commit index and fresh reads. Reads
//! node state only; never drives the cluster.

use std::collections::HashMap;
use std::fmt;

use crate::raft::core::{Raft, Role};
use crate::raft::types::RaftId;

/// Which property broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// Two leaders in one term.
    ElectionSafety,
    /// Two logs agree on (index, term) but differ before or at it.
    LogMatching,
    /// A leader lacks an entry committed before its term.
    LeaderCompleteness,
    /// Two nodes applied different entries at one index, or a committed entry changed.
    StateMachineSafety,
    /// A node's commit or applied index went backwards.
    MonotoneCommit,
    /// A read was confirmed at an index older than a commit that preceded its request.
    StaleRead,
    /// The cluster did not elect a leader and commit a proposal after faults healed.
    Liveness,
    /// The core returned an error the protocol should never produce.
    CoreError,
}

/// A broken invariant with enough context to debug it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// What broke.
    pub property: Property,
    /// Simulated tick.
    pub tick: u64,
    /// Details.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} violated at tick {}: {}",
            self.property, self.tick, self.detail
        )
    }
}

/// Global knowledge accumulated over a run, against which each node is checked.
#[derive(Debug, Default)]
pub struct Checker {
    leaders: HashMap<u64, RaftId>,
    /// (index, term) → (term of index − 1, hash of the entry's payload).
    entries: HashMap<(u64, u64), (Option<u64>, u64)>,
    /// index → (term, payload hash) of committed entries.
    committed: HashMap<u64, (u64, u64)>,
    /// index → the term in which its commitment was first observed (the committing leader's
    /// term, or later if a follower reported it first).
    committed_in: HashMap<u64, u64>,
    /// The highest committed index seen anywhere.
    pub max_commit: u64,
    /// index → state machine digest after applying it.
    applied: HashMap<u64, u64>,
    /// node → (commit, applied) last seen.
    cursors: HashMap<RaftId, (u64, u64)>,
    /// leader → size of `committed` when its completeness was last checked.
    leader_checked: HashMap<RaftId, usize>,
    /// Leaders seen (for reports).
    pub elections: u64,
    tick: u64,
}

pub(crate) fn payload_hash(kind: u8, data: &[u8]) -> u64 {
    // FNV-1a: deterministic and cheap.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Checker {
    fn fail(&self, property: Property, detail: String) -> Violation {
        Violation {
            property,
            tick: self.tick,
            detail,
        }
    }

    /// Sets the tick reported with violations.
    pub fn at_tick(&mut self, tick: u64) {
        self.tick = tick;
    }

    /// A node restarted: its commit may fall back to what it had persisted.
    pub fn restarted(&mut self, raft: &Raft) {
        self.cursors
            .insert(raft.id(), (raft.commit_index(), raft.applied_index()));
    }

    /// Records that the node applied `index`, reaching state machine `digest`.
    pub fn applied(&mut self, node: RaftId, index: u64, digest: u64) -> Result<(), Violation> {
        match self.applied.get(&index) {
            Some(&d) if d != digest => Err(self.fail(
                Property::StateMachineSafety,
                format!("node {node} state after applying {index} differs from another node's"),
            )),
            Some(_) => Ok(()),
            None => {
                self.applied.insert(index, digest);
                Ok(())
            }
        }
    }

    /// A read confirmed at `index` whose request was made when `commit_at_request` was the
    /// highest committed index anywhere.
    pub fn read_confirmed(
        &self,
        node: RaftId,
        index: u64,
        commit_at_request: u64,
    ) -> Result<(), Violation> {
        if index < commit_at_request {
            return Err(self.fail(
                Property::StaleRead,
                format!("node {node} confirmed a read at {index} but {commit_at_request} was committed before the request"),
            ));
        }
        Ok(())
    }

    /// Checks one node after it handled an event.
    pub fn check_node(&mut self, raft: &mut Raft) -> Result<(), Violation> {
        let id = raft.id();
        // Election Safety.
        if raft.role() == Role::Leader {
            match self.leaders.get(&raft.term()) {
                Some(&other) if other != id => {
                    return Err(self.fail(
                        Property::ElectionSafety,
                        format!("nodes {other} and {id} both lead term {}", raft.term()),
                    ));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(raft.term(), id);
                    self.elections += 1;
                    self.check_leader_complete(raft)?;
                }
            }
        }
        // Log Matching, incrementally over the changed suffix.
        if let Some(from) = raft.take_log_changed_from() {
            let from = from.max(raft.snapshot_index() + 1);
            for index in from..=raft.last_index() {
                let Some(e) = raft.entry(index) else { break };
                let prev = raft.entry_term(index - 1);
                let value = (prev, payload_hash(e.kind.code(), &e.data));
                match self.entries.get(&(index, e.term)) {
                    None => {
                        self.entries.insert((index, e.term), value);
                    }
                    Some(&(p, h)) => {
                        let prev_differs = matches!((p, prev), (Some(a), Some(b)) if a != b);
                        if prev_differs || h != value.1 {
                            return Err(self.fail(
                                Property::LogMatching,
                                format!("node {id} holds a different entry ({index}, term {}) or predecessor", e.term),
                            ));
                        }
                        if p.is_none() {
                            self.entries.insert((index, e.term), value);
                        }
                    }
                }
            }
        }
        // Monotone commit and applied.
        let (commit, applied) = (raft.commit_index(), raft.applied_index());
        let (old_commit, old_applied) = self.cursors.get(&id).copied().unwrap_or((0, 0));
        if commit < old_commit || applied < old_applied {
            return Err(self.fail(
                Property::MonotoneCommit,
                format!("node {id} commit {old_commit}→{commit}, applied {old_applied}→{applied}"),
            ));
        }
        self.cursors.insert(id, (commit, applied));
        // Committed entries never change.
        for index in (old_commit + 1).max(raft.snapshot_index() + 1)..=commit {
            let Some(e) = raft.entry(index) else { continue };
            let value = (e.term, payload_hash(e.kind.code(), &e.data));
            match self.committed.get(&index) {
                Some(&v) if v != value => {
                    return Err(self.fail(
                        Property::StateMachineSafety,
                        format!(
                            "node {id} committed a different entry at {index} (term {} vs {})",
                            value.0, v.0
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(index, value);
                    self.committed_in.insert(index, raft.term());
                }
            }
        }
        self.max_commit = self.max_commit.max(commit);
        if raft.role() == Role::Leader
            && self.leader_checked.get(&id) != Some(&self.committed.len())
        {
            self.check_leader_complete(raft)?;
            self.leader_checked.insert(id, self.committed.len());
        }
        Ok(())
    }

    /// Leader Completeness: every entry committed in an earlier term is in the leader's log
    /// (or its snapshot). A stale leader of an older term need not hold later commits.
    fn check_leader_complete(&self, raft: &Raft) -> Result<(), Violation> {
        for (&index, &(term, _)) in &self.committed {
            let committed_in = self.committed_in.get(&index).copied().unwrap_or(term);
            if committed_in >= raft.term() || index <= raft.snapshot_index() {
                continue;
            }
            if raft.entry_term(index) != Some(term) {
                return Err(self.fail(
                    Property::LeaderCompleteness,
                    format!(
                        "leader {} of term {} lacks committed entry {index} of term {term}",
                        raft.id(),
                        raft.term()
                    ),
                ));
            }
        }
        Ok(())
    }
}
