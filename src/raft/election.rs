//! Elections: term handling for every incoming message, pre-vote, votes, check-quorum, the
//! leader lease that makes followers ignore disruptive candidates, and leadership transfer.

use super::ProposeError;
use super::core::{Raft, Role};
use super::message::{Message, MessageBody};
use super::replication::Progress;
use super::types::{EntryKind, RaftId};

impl Raft {
    /// Applies the term rules to an incoming message; false when it must be dropped.
    pub(crate) fn step_term(&mut self, msg: &Message) -> bool {
        use MessageBody::*;
        if msg.term > self.term {
            match msg.body {
                PreVote { .. }
                | Vote {
                    transfer: false, ..
                } if self.in_lease() => {
                    // A leader was heard from within the election timeout: a candidate that
                    // cannot hear it must not depose it (check-quorum lease).
                    return false;
                }
                // A pre-vote does not change our term; a granted pre-vote response carries the
                // term we would campaign in.
                PreVote { .. } => {}
                PreVoteResponse { reject: false } => {}
                Append { .. } | InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(msg.from))
                }
                _ => self.become_follower(msg.term, None),
            }
            true
        } else if msg.term < self.term {
            match msg.body {
                // Tell a stale leader the newer term so it steps down; without this, pre-vote
                // plus check-quorum can leave a cluster without a leader.
                Append { .. } | InstallSnapshot { .. }
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    self.send(
                        msg.from,
                        AppendResponse {
                            reject: true,
                            index: 0,
                            read_round: 0,
                        },
                    );
                }
                PreVote { .. } => self.send(msg.from, PreVoteResponse { reject: true }),
                _ => {}
            }
            false
        } else {
            true
        }
    }

    /// Whether votes for others are refused: a leader was heard from (or, right after a
    /// restart, might have been) within the election timeout. Leader leases rely on this.
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && (self.leader.is_some() || self.boot_guard)
            && self.election_elapsed < self.cfg.election_ticks
    }

    pub(crate) fn handle_vote_request(&mut self, msg: Message) {
        let (last_index, last_term, pre) = match msg.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => (last_index, last_term, true),
            MessageBody::Vote {
                last_index,
                last_term,
                ..
            } => (last_index, last_term, false),
            _ => return,
        };
        let up_to_date = self.log.is_up_to_date(last_index, last_term);
        let grant = if pre {
            // Granting a pre-vote changes nothing here: no vote recorded, no timer reset.
            up_to_date
                && (msg.term > self.term
                    || ((self.vote == 0 || self.vote == msg.from) && self.leader.is_none()))
        } else {
            let free = self.vote == 0 || self.vote == msg.from;
            free && up_to_date && self.leader.is_none_or(|l| l == msg.from)
        };
        if grant && !pre {
            self.vote = msg.from;
            self.reset_election_timer();
        }
        let body = if pre {
            MessageBody::PreVoteResponse { reject: !grant }
        } else {
            MessageBody::VoteResponse { reject: !grant }
        };
        // A granted pre-vote answers in the candidate's future term; everything else in ours.
        let term = if pre && grant { msg.term } else { self.term };
        self.msgs.push(Message {
            from: self.id,
            to: msg.from,
            term,
            body,
        });
    }

    /// Starts a pre-vote (or, with `skip_pre_vote` or pre-vote off, a real election).
    pub(crate) fn start_election(&mut self, skip_pre_vote: bool) {
        if self.role == Role::Leader && !skip_pre_vote {
            return;
        }
        self.votes.clear();
        self.leader = None;
        self.reset_election_timer();
        if self.cfg.pre_vote && !skip_pre_vote {
            self.role = Role::PreCandidate;
            self.tally(self.id, true);
            if self.role == Role::PreCandidate {
                let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
                for peer in self.peers() {
                    self.msgs.push(Message {
                        from: self.id,
                        to: peer,
                        term: self.term.saturating_add(1),
                        body: MessageBody::PreVote {
                            last_index,
                            last_term,
                        },
                    });
                }
            }
        } else {
            self.campaign(skip_pre_vote);
        }
    }

    fn campaign(&mut self, transfer: bool) {
        self.term = self.term.saturating_add(1);
        self.vote = self.id;
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.transfer_target = None;
        self.reset_election_timer();
        self.tally(self.id, true);
        if self.role == Role::Candidate {
            let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
            for peer in self.peers() {
                self.send(
                    peer,
                    MessageBody::Vote {
                        last_index,
                        last_term,
                        transfer,
                    },
                );
            }
        }
    }

    /// The other voters.
    pub(crate) fn peers(&self) -> Vec<RaftId> {
        self.voters
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect()
    }

    /// Records one (pre-)vote; each voter counts once however often it answers.
    pub(crate) fn tally(&mut self, from: RaftId, granted: bool) {
        if !self.voters.contains(&from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        let yes = self.votes.values().filter(|&&g| g).count();
        let no = self.votes.len() - yes;
        if yes >= self.quorum() {
            match self.role {
                Role::PreCandidate => self.campaign(false),
                Role::Candidate => self.become_leader(),
                _ => {}
            }
        } else if no >= self.quorum() {
            self.become_follower(self.term, None);
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.transfer_target = None;
        let next = self.log.last_index() + 1;
        self.progress = self
            .voters
            .iter()
            .map(|&v| (v, Progress::new(next)))
            .collect();
        // Membership changes wait until an entry of this term commits.
        self.pending_conf_index = self.log.last_index();
        let _ = self.append_as_leader(EntryKind::Noop, Vec::new());
    }

    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                self.become_follower(self.term, None);
                return;
            }
            for (&id, p) in self.progress.iter_mut() {
                if id != self.id {
                    p.recent_active = false;
                }
            }
        }
        if let Some(target) = self.transfer_target {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.cfg.election_ticks {
                self.transfer_target = None;
            } else {
                self.maybe_send_timeout_now(target);
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.reads
                .next_round(self.ticks, u64::from(self.cfg.election_ticks));
            self.broadcast_heartbeat();
        }
    }

    fn quorum_active(&self) -> bool {
        let active = self
            .voters
            .iter()
            .filter(|&&v| v == self.id || self.progress.get(&v).is_some_and(|p| p.recent_active))
            .count();
        active >= self.quorum()
    }

    /// Hands leadership to `target` once it has caught up; proposals are refused until the
    /// transfer completes or times out (one election timeout).
    pub fn transfer_leadership(&mut self, target: RaftId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if target == self.id || !self.voters.contains(&target) {
            return Err(ProposeError::BadConfChange(format!(
                "node {target} is not another voter"
            )));
        }
        self.transfer_target = Some(target);
        self.transfer_elapsed = 0;
        self.maybe_send_timeout_now(target);
        Ok(())
    }

    pub(crate) fn maybe_send_timeout_now(&mut self, target: RaftId) {
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|p| p.match_index == self.log.last_index());
        if caught_up {
            self.send(target, MessageBody::TimeoutNow);
        } else {
            self.send_append(target);
        }
    }
}
