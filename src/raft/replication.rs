//! Log replication: per-follower progress, append and snapshot sending, the follower's
//! consistency check (truncating only from the first conflicting entry) and the commit rule
//! (a leader commits only through an entry of its own term: Raft's Figure 8).

use super::RaftError;
use super::core::{Raft, Role};
use super::message::{Message, MessageBody};
use super::types::{EntryKind, RaftId};

/// What the leader knows about one follower.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Progress {
    /// Highest index known replicated there.
    pub match_index: u64,
    /// Next index to send.
    pub next_index: u64,
    /// After a rejection: send one probe at a time until an answer arrives.
    pub probing: bool,
    /// Heard from since the last check-quorum.
    pub recent_active: bool,
    /// Highest heartbeat round acknowledged (for ReadIndex).
    pub read_round: u64,
}

impl Progress {
    pub(crate) fn new(next_index: u64) -> Self {
        Progress {
            match_index: 0,
            next_index,
            probing: true,
            recent_active: true,
            read_round: 0,
        }
    }
}

impl Raft {
    pub(crate) fn broadcast_append(&mut self) {
        for peer in self.replication_targets() {
            self.send_append(peer);
        }
    }

    pub(crate) fn broadcast_heartbeat(&mut self) {
        for peer in self.replication_targets() {
            let probing = self.progress.get(&peer).is_some_and(|p| p.probing);
            if probing {
                self.send_append(peer);
            } else {
                self.send_empty_append(peer);
            }
        }
    }

    fn replication_targets(&self) -> Vec<RaftId> {
        self.progress
            .keys()
            .copied()
            .filter(|&p| p != self.id)
            .collect()
    }

    fn send_empty_append(&mut self, to: RaftId) {
        let Some(p) = self.progress.get(&to) else {
            return;
        };
        let prev_index = p.next_index - 1;
        match self.log.term(prev_index) {
            Some(prev_term) => {
                let commit = self.log.committed;
                let read_round = self.reads.round();
                self.send(
                    to,
                    MessageBody::Append {
                        prev_index,
                        prev_term,
                        entries: Vec::new(),
                        commit,
                        read_round,
                    },
                );
            }
            None => self.send_append(to),
        }
    }

    /// Sends entries from the follower's next index (or the snapshot if they were compacted).
    pub(crate) fn send_append(&mut self, to: RaftId) {
        let Some(p) = self.progress.get(&to).cloned() else {
            return;
        };
        let prev_index = p.next_index.saturating_sub(1);
        let read_round = self.reads.round();
        let Some(prev_term) = self.log.term(prev_index) else {
            let snapshot = self.log.snapshot.clone();
            if let Some(p) = self.progress.get_mut(&to) {
                p.probing = true;
            }
            self.send(to, MessageBody::InstallSnapshot { snapshot });
            return;
        };
        let entries = self.log.slice(
            p.next_index,
            self.log.last_index(),
            self.cfg.max_entries_per_message,
        );
        let last = entries.last().map(|e| e.index);
        let commit = self.log.committed;
        self.send(
            to,
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_round,
            },
        );
        if let (Some(last), Some(p)) = (last, self.progress.get_mut(&to))
            && !p.probing
        {
            // Optimistic pipelining: the next append continues after these.
            p.next_index = last + 1;
        }
    }

    /// Follower side of Append and InstallSnapshot.
    pub(crate) fn handle_append(&mut self, msg: Message) -> Result<(), RaftError> {
        match msg.body {
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_round,
            } => {
                if prev_index < self.log.committed {
                    // Everything up to our commit index matches the leader's log already.
                    let index = self.log.committed;
                    let skip = (index - prev_index) as usize;
                    if entries.len() <= skip {
                        self.respond_append(msg.from, false, index, read_round);
                        return Ok(());
                    }
                    let tail_prev = index;
                    let tail_term = self.log.term(index).unwrap_or_default();
                    let rest = entries.get(skip..).map(<[_]>::to_vec).unwrap_or_default();
                    let fwd = MessageBody::Append {
                        prev_index: tail_prev,
                        prev_term: tail_term,
                        entries: rest,
                        commit,
                        read_round,
                    };
                    return self.handle_append(Message { body: fwd, ..msg });
                }
                if self.log.term(prev_index) != Some(prev_term) {
                    let hint = self
                        .log
                        .last_index()
                        .min(prev_index.saturating_sub(1))
                        .max(self.log.committed);
                    self.respond_append(msg.from, true, hint, read_round);
                    return Ok(());
                }
                let last_new = prev_index + entries.len() as u64;
                // Skip entries we already hold; truncate only at the first real conflict.
                let mut first_new = None;
                for (i, e) in entries.iter().enumerate() {
                    match self.log.term(e.index) {
                        Some(t) if t == e.term => continue,
                        Some(_) => {
                            if e.index <= self.log.committed {
                                return Err(RaftError::CommittedConflict {
                                    from: msg.from,
                                    index: e.index,
                                    commit: self.log.committed,
                                });
                            }
                            self.log.truncate_from(e.index);
                            self.truncated_conf(e.index);
                            first_new = Some(i);
                        }
                        None => first_new = Some(i),
                    }
                    break;
                }
                if let Some(start) = first_new {
                    for e in entries.into_iter().skip(start) {
                        self.log.mark_changed(e.index);
                        let is_conf = e.kind == EntryKind::ConfChange;
                        let index = e.index;
                        self.log.push(e);
                        if is_conf {
                            self.pending_conf_index = index;
                        }
                    }
                }
                self.commit_to(commit.min(last_new));
                self.respond_append(msg.from, false, last_new, read_round);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                let index = snapshot.meta.index;
                if index <= self.log.committed {
                    let committed = self.log.committed;
                    self.respond_append(msg.from, false, committed, 0);
                    return Ok(());
                }
                self.voters = snapshot.meta.voters.iter().copied().collect();
                // If we hold the snapshot's last entry, the entries after it match the leader
                // and may already be acknowledged: keep them (Raft §7). Otherwise the snapshot
                // replaces the whole log.
                let keep_suffix = self.log.term(index) == Some(snapshot.meta.term);
                if keep_suffix {
                    self.log.compact(snapshot.clone());
                    self.log.committed = index;
                    self.log.applied = index;
                } else {
                    self.log.restore(snapshot.clone());
                }
                self.pending_conf_index = self.last_conf_index(self.log.last_index());
                self.pending_snapshot = Some(snapshot.clone());
                self.persist_snapshot = Some((snapshot, !keep_suffix));
                self.respond_append(msg.from, false, index, 0);
            }
            _ => {}
        }
        Ok(())
    }

    fn respond_append(&mut self, to: RaftId, reject: bool, index: u64, read_round: u64) {
        self.send(
            to,
            MessageBody::AppendResponse {
                reject,
                index,
                read_round,
            },
        );
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: RaftId,
        reject: bool,
        index: u64,
        read_round: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        if !reject && index > last_index {
            return; // acknowledges entries we never sent: a confused or malicious peer
        }
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.recent_active = true;
        p.read_round = p.read_round.max(read_round);
        if reject {
            if index < p.match_index {
                // The follower lost entries it had acknowledged (e.g. its disk was wiped):
                // replicate again from what it now holds. Our commit index does not move back.
                p.match_index = index;
            }
            p.next_index = index
                .saturating_add(1)
                .max(p.match_index + 1)
                .min(last_index + 1);
            p.probing = true;
            self.send_append(from);
        } else {
            let advanced = index > p.match_index;
            if advanced {
                p.match_index = index;
            }
            p.next_index = p.next_index.max(index.saturating_add(1));
            let was_probing = std::mem::replace(&mut p.probing, false);
            let behind = p.next_index <= last_index;
            if advanced {
                self.maybe_commit();
            }
            let _ = was_probing;
            if behind {
                // Entries past the optimistic `next_index` were never sent: send them now.
                self.send_append(from);
            }
            if self.transfer_target == Some(from) {
                self.maybe_send_timeout_now(from);
            }
        }
        self.confirm_reads();
    }

    /// Advances the commit index to the highest index a quorum holds, but only through an entry
    /// of the current term (Figure 8: counting replicas of an older term's entry is unsafe).
    pub(crate) fn maybe_commit(&mut self) {
        let mut matches: Vec<u64> = self
            .voters
            .iter()
            .map(|v| self.progress.get(v).map_or(0, |p| p.match_index))
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = matches.get(self.quorum() - 1) else {
            return;
        };
        if candidate <= self.log.committed {
            return;
        }
        let own_term = self.log.term(candidate) == Some(self.term);
        if own_term || self.cfg.figure8_rule_disabled() {
            let old = self.log.committed;
            self.commit_to(candidate);
            if self.log.committed > old {
                self.broadcast_append_commit();
                self.confirm_reads();
            }
        }
    }

    /// Lets followers learn a new commit index promptly.
    fn broadcast_append_commit(&mut self) {
        for peer in self.replication_targets() {
            self.send_empty_append(peer);
        }
    }

    /// Moves the commit index forward (never back) and applies committed membership changes.
    pub(crate) fn commit_to(&mut self, index: u64) {
        let index = index.min(self.log.last_index());
        if index <= self.log.committed {
            return;
        }
        let old = self.log.committed;
        self.log.committed = index;
        self.apply_conf_changes(old + 1, index);
    }
}
