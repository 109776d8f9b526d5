//! Membership change, one server at a time. A change takes effect on every node when its
//! entry commits; a leader proposes one only after an entry of its own term has committed and
//! no other change is pending (the fix for the single-server change bug in Ongaro's thesis).
//!
//! A node joining an existing cluster starts with the cluster's *initial* voters (the same
//! `Config::initial_voters` as everyone, without itself) and empty storage, or with nothing and
//! then receives the leader's snapshot; it votes and campaigns only once `AddVoter` of itself
//! has committed.

use super::ProposeError;
use super::core::{Raft, Role};
use super::replication::Progress;
use super::types::{ConfChange, EntryKind, RaftId};

impl Raft {
    /// Proposes adding or removing one voter; returns the entry's index.
    pub fn propose_conf_change(&mut self, change: ConfChange) -> Result<u64, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.pending_conf_index > self.log.committed
            || self.log.term(self.log.committed) != Some(self.term)
        {
            return Err(ProposeError::ConfChangePending);
        }
        match change {
            ConfChange::AddVoter(id) if id == 0 || self.voters.contains(&id) => {
                return Err(ProposeError::BadConfChange(format!(
                    "node {id} is already a voter or invalid"
                )));
            }
            ConfChange::RemoveVoter(id) if !self.voters.contains(&id) => {
                return Err(ProposeError::BadConfChange(format!(
                    "node {id} is not a voter"
                )));
            }
            ConfChange::RemoveVoter(_) if self.voters.len() == 1 => {
                return Err(ProposeError::BadConfChange(
                    "cannot remove the last voter".into(),
                ));
            }
            _ => {}
        }
        let index = self.append_as_leader(EntryKind::ConfChange, change.encode())?;
        self.pending_conf_index = index;
        Ok(index)
    }

    /// Acts on membership changes committed in `from ..= to`.
    pub(crate) fn apply_conf_changes(&mut self, from: u64, to: u64) {
        for index in from.max(self.log.first_index())..=to {
            let Some(entry) = self.log.entry(index) else {
                continue;
            };
            if entry.kind != EntryKind::ConfChange {
                continue;
            }
            let Some(change) = ConfChange::decode(&entry.data) else {
                continue;
            };
            self.apply_conf_change(change);
        }
    }

    fn apply_conf_change(&mut self, change: ConfChange) {
        let last = self.log.last_index();
        match change {
            ConfChange::AddVoter(id) => {
                self.voters.insert(id);
                if self.role == Role::Leader {
                    self.progress
                        .entry(id)
                        .or_insert_with(|| Progress::new(last + 1));
                    self.send_append(id);
                }
            }
            ConfChange::RemoveVoter(id) => {
                self.voters.remove(&id);
                if self.role == Role::Leader {
                    self.progress.remove(&id);
                    if id == self.id {
                        self.become_follower(self.term, None);
                        return;
                    }
                    self.maybe_commit();
                }
            }
        }
    }

    /// Rebuilds the voter set after a restart from the snapshot's voters and the committed log.
    pub(crate) fn replay_conf_changes(&mut self) {
        let (from, to) = (self.log.first_index(), self.log.committed);
        self.apply_conf_changes(from, to);
        self.pending_conf_index = self.last_conf_index(self.log.last_index());
    }

    /// After a truncation at `index`, forgets a pending change that was cut off.
    pub(crate) fn truncated_conf(&mut self, index: u64) {
        if self.pending_conf_index >= index {
            self.pending_conf_index = self.last_conf_index(index - 1);
        }
    }

    pub(crate) fn last_conf_index(&self, upto: u64) -> u64 {
        (self.log.first_index()..=upto)
            .rev()
            .find(|&i| {
                self.log
                    .entry(i)
                    .is_some_and(|e| e.kind == EntryKind::ConfChange)
            })
            .unwrap_or(0)
    }

    /// The voters in effect once `index` is committed (for a snapshot taken there).
    pub(crate) fn voters_at(&self, index: u64) -> Vec<RaftId> {
        let mut voters: std::collections::BTreeSet<RaftId> =
            if self.log.snapshot_index() > 0 || !self.log.snapshot.meta.voters.is_empty() {
                self.log.snapshot.meta.voters.iter().copied().collect()
            } else {
                self.cfg.initial_voters.iter().copied().collect()
            };
        for i in self.log.first_index()..=index {
            let Some(entry) = self.log.entry(i) else {
                continue;
            };
            if entry.kind != EntryKind::ConfChange {
                continue;
            }
            match ConfChange::decode(&entry.data) {
                Some(ConfChange::AddVoter(id)) => {
                    voters.insert(id);
                }
                Some(ConfChange::RemoveVoter(id)) => {
                    voters.remove(&id);
                }
                None => {}
            }
        }
        voters.into_iter().collect()
    }
}
