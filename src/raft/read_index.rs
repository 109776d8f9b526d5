//! Linearizable reads: ReadIndex (a heartbeat round acknowledged by a quorum of the current
//! term) and lease reads (only with check-quorum). Followers forward requests to the leader.

use super::ProposeError;
use super::core::{Raft, ReadOnlyMode, ReadState, Role};
use super::message::MessageBody;
use super::types::RaftId;

/// A read waiting for its heartbeat round to be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PendingRead {
    request: u64,
    /// `None` for a read asked on this node; otherwise the follower to answer.
    from: Option<RaftId>,
    index: u64,
    round: u64,
}

/// The leader's heartbeat round counter and its waiting reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct ReadQueue {
    round: u64,
    pending: Vec<PendingRead>,
    /// (round, leader tick it was sent at) for recent rounds, oldest first (for leases).
    sent_at: std::collections::VecDeque<(u64, u64)>,
}

impl ReadQueue {
    pub(crate) fn round(&self) -> u64 {
        self.round
    }
    /// Starts a heartbeat round sent at leader tick `now`; forgets rounds too old to matter.
    pub(crate) fn next_round(&mut self, now: u64, horizon: u64) -> u64 {
        self.round += 1;
        self.sent_at.push_back((self.round, now));
        while self
            .sent_at
            .front()
            .is_some_and(|&(_, t)| t + horizon < now)
        {
            self.sent_at.pop_front();
        }
        self.round
    }
    /// The tick at which `round` was sent, if recent.
    fn sent_tick(&self, round: u64) -> Option<u64> {
        self.sent_at
            .iter()
            .find(|&&(r, _)| r == round)
            .map(|&(_, t)| t)
    }
    /// Drops waiting reads (on losing leadership); their callers time out and retry.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

impl Raft {
    /// Asks for a linearizable read. When confirmed, a [`ReadState`] with this `request` id
    /// appears in a later [`super::Ready`]; serve it once `index` is applied. A request can be
    /// silently dropped if leadership changes: callers retry after a timeout.
    pub fn read_index(&mut self, request: u64) -> Result<(), ProposeError> {
        self.read_index_with(request, self.cfg.read_only)
    }

    /// `read_index` with the confirmation chosen per request: `LeaseBased` is honoured only
    /// with `check_quorum` on (else it is a ReadIndex round), and a follower forwards either
    /// kind to the leader, which confirms it its own configured way.
    pub fn read_index_with(
        &mut self,
        request: u64,
        mode: ReadOnlyMode,
    ) -> Result<(), ProposeError> {
        let mode = if self.cfg.check_quorum {
            mode
        } else {
            ReadOnlyMode::Safe
        };
        match self.role {
            Role::Leader => {
                self.leader_read(request, None, mode);
                Ok(())
            }
            _ => match self.leader {
                Some(leader) => {
                    self.send(leader, MessageBody::ReadIndex { request });
                    Ok(())
                }
                None => Err(ProposeError::NotLeader { leader: None }),
            },
        }
    }

    pub(crate) fn handle_forwarded_read(&mut self, from: RaftId, request: u64) {
        if self.role == Role::Leader {
            self.leader_read(request, Some(from), self.cfg.read_only);
        }
    }

    fn leader_read(&mut self, request: u64, from: Option<RaftId>, mode: ReadOnlyMode) {
        let own_term_committed = self.log.term(self.log.committed) == Some(self.term);
        if own_term_committed && mode == ReadOnlyMode::LeaseBased && self.lease_valid() {
            let index = self.log.committed;
            self.deliver_read(request, from, index);
            return;
        }
        let round = self
            .reads
            .next_round(self.ticks, u64::from(self.cfg.election_ticks));
        let index = self.log.committed;
        self.reads.pending.push(PendingRead {
            request,
            from,
            index,
            round,
        });
        self.broadcast_heartbeat();
        self.confirm_reads();
    }

    /// True while a quorum acknowledged a heartbeat sent less than an election timeout ago:
    /// each of those followers refuses votes until at least that long after receiving it, so
    /// no other leader can exist yet (assuming equal tick rates).
    fn lease_valid(&self) -> bool {
        let horizon = u64::from(self.cfg.election_ticks);
        let fresh = |round: u64| {
            self.reads
                .sent_tick(round)
                .is_some_and(|sent| self.ticks + 1 < sent + horizon)
        };
        let active = self
            .voters
            .iter()
            .filter(|&&v| {
                v == self.id || self.progress.get(&v).is_some_and(|p| fresh(p.read_round))
            })
            .count();
        active >= self.quorum()
    }

    fn deliver_read(&mut self, request: u64, from: Option<RaftId>, index: u64) {
        match from {
            None => self.read_states.push(ReadState { request, index }),
            Some(to) => self.send(to, MessageBody::ReadIndexResponse { request, index }),
        }
    }

    /// Releases reads whose round a quorum acknowledged, once this term has a committed entry
    /// (before that the leader's commit index may lag the cluster's).
    pub(crate) fn confirm_reads(&mut self) {
        if self.role != Role::Leader || self.reads.pending.is_empty() {
            return;
        }
        if self.log.term(self.log.committed) != Some(self.term) {
            return;
        }
        let mut rounds: Vec<u64> = self
            .voters
            .iter()
            .map(|v| {
                if *v == self.id {
                    self.reads.round
                } else {
                    self.progress.get(v).map_or(0, |p| p.read_round)
                }
            })
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&confirmed) = rounds.get(self.quorum() - 1) else {
            return;
        };
        let committed = self.log.committed;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads.pending)
            .into_iter()
            .partition(|r| r.round <= confirmed);
        self.reads.pending = waiting;
        for read in ready {
            self.deliver_read(read.request, read.from, read.index.max(committed));
        }
    }
}
