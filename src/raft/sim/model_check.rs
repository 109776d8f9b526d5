//! Bounded exhaustive model check of a 3-node cluster: breadth-first search over every
//! interleaving of ticks, message deliveries, message losses and proposals, deduplicating
//! states by a hash of their protocol state, checking the safety properties in every state.
//! Election timeouts are fixed (no randomness) so ticks are ordinary choices.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use super::checker::{Property, Violation};
use crate::raft::core::{Config, Raft, Role};
use crate::raft::message::Message;
use crate::raft::types::RaftId;

/// Bounds of the search.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Longest path explored (actions from the initial state).
    pub depth: usize,
    /// States with a node past this term are not expanded.
    pub max_term: u64,
    /// Client proposals allowed per path.
    pub max_proposals: u8,
    /// States with more messages in flight are not expanded.
    pub max_in_flight: usize,
    /// Use pre-vote.
    pub pre_vote: bool,
    /// Mutation switch (unit tests only): commit older-term entries by counting.
    #[cfg(test)]
    pub unsafe_disable_figure8_rule: bool,
}

impl ModelConfig {
    /// The bound used in the normal test suite (two elections with loss fit in it).
    pub fn ci() -> Self {
        ModelConfig {
            depth: 11,
            max_term: 3,
            max_proposals: 1,
            max_in_flight: 4,
            pre_vote: false,
            #[cfg(test)]
            unsafe_disable_figure8_rule: false,
        }
    }
}

/// What the search covered.
#[derive(Debug, Clone, Default)]
pub struct ModelReport {
    /// Distinct states explored.
    pub states: u64,
    /// Transitions taken (including into already-seen states).
    pub transitions: u64,
    /// Depth completed.
    pub depth: usize,
    /// Most elections on one path.
    pub max_elections: usize,
    /// Most messages lost on one path that also saw `max_elections` elections.
    pub losses_on_deepest: u8,
}

#[derive(Clone)]
struct State {
    nodes: Vec<Raft>,
    net: Vec<Message>,
    leaders: BTreeSet<(u64, RaftId)>,
    /// index → (entry term, term when first seen committed).
    committed: BTreeMap<u64, (u64, u64)>,
    proposals: u8,
    losses: u8,
}

impl State {
    fn key(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for n in &self.nodes {
            n.fingerprint(&mut h);
        }
        self.net.hash(&mut h);
        self.leaders.hash(&mut h);
        self.committed.hash(&mut h);
        self.proposals.hash(&mut h);
        h.finish()
    }

    fn drain(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        while let Some(ready) = node.ready() {
            self.net.extend(ready.messages);
            node.advance();
        }
        self.net.sort_by_cached_key(Message::encode);
    }
}

fn violation(property: Property, depth: usize, detail: String) -> Violation {
    Violation {
        property,
        tick: depth as u64,
        detail,
    }
}

/// Checks one state (and its history variables), given its parent's commit indexes.
fn check(state: &mut State, parent_commits: &[u64], depth: usize) -> Result<(), Violation> {
    for (n, &old) in state.nodes.iter().zip(parent_commits) {
        if n.commit_index() < old {
            return Err(violation(
                Property::MonotoneCommit,
                depth,
                format!("node {} commit {old}→{}", n.id(), n.commit_index()),
            ));
        }
        if n.role() == Role::Leader {
            state.leaders.insert((n.term(), n.id()));
        }
    }
    let mut terms = BTreeSet::new();
    for &(term, _) in &state.leaders {
        if !terms.insert(term) {
            return Err(violation(
                Property::ElectionSafety,
                depth,
                format!("two leaders in term {term}: {:?}", state.leaders),
            ));
        }
    }
    for a in &state.nodes {
        for b in &state.nodes {
            if a.id() >= b.id() {
                continue;
            }
            let last = a.last_index().min(b.last_index());
            let agree = (1..=last)
                .rev()
                .find(|&i| a.entry_term(i).is_some() && a.entry_term(i) == b.entry_term(i));
            if let Some(top) = agree
                && (1..=top).any(|i| a.entry(i) != b.entry(i))
            {
                return Err(violation(
                    Property::LogMatching,
                    depth,
                    format!(
                        "nodes {} and {} agree at {top} but differ before",
                        a.id(),
                        b.id()
                    ),
                ));
            }
        }
        for i in 1..=a.commit_index() {
            let Some(term) = a.entry_term(i) else {
                continue;
            };
            match state.committed.get(&i) {
                Some(&(t, _)) if t != term => {
                    return Err(violation(
                        Property::StateMachineSafety,
                        depth,
                        format!("index {i} committed with terms {t} and {term}"),
                    ));
                }
                Some(_) => {}
                None => {
                    state.committed.insert(i, (term, a.term()));
                }
            }
        }
    }
    for l in state.nodes.iter().filter(|n| n.role() == Role::Leader) {
        for (&i, &(term, at)) in &state.committed {
            if l.term() > at && l.entry_term(i) != Some(term) {
                return Err(violation(
                    Property::LeaderCompleteness,
                    depth,
                    format!("leader {} (term {}) lacks committed {i}", l.id(), l.term()),
                ));
            }
        }
    }
    Ok(())
}

/// Explores every interleaving up to `cfg.depth`; returns what was covered or the first
/// violation (with the path length as its "tick").
pub fn run(cfg: &ModelConfig) -> Result<ModelReport, Violation> {
    let voters = vec![1, 2, 3];
    let nodes = voters
        .iter()
        .map(|&id| {
            let mut c = Config::new(id, voters.clone());
            c.election_ticks = 2;
            c.heartbeat_ticks = 1;
            c.pre_vote = cfg.pre_vote;
            c.check_quorum = false;
            c.fixed_election_timeout = true;
            #[cfg(test)]
            {
                c.unsafe_disable_figure8_rule = cfg.unsafe_disable_figure8_rule;
            }
            Raft::new(c, Default::default())
                .map_err(|e| violation(Property::CoreError, 0, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut initial = State {
        nodes,
        net: Vec::new(),
        leaders: BTreeSet::new(),
        committed: BTreeMap::new(),
        proposals: 0,
        losses: 0,
    };
    for i in 0..3 {
        initial.drain(i);
    }
    let mut report = ModelReport::default();
    let mut seen = HashSet::from([initial.key()]);
    let mut frontier = vec![initial];
    for depth in 1..=cfg.depth {
        let mut next = Vec::new();
        for state in &frontier {
            if state.net.len() > cfg.max_in_flight
                || state.nodes.iter().any(|n| n.term() > cfg.max_term)
            {
                continue;
            }
            let commits: Vec<u64> = state.nodes.iter().map(Raft::commit_index).collect();
            let mut successors = Vec::new();
            for i in 0..state.nodes.len() {
                let mut s = state.clone();
                s.nodes[i].tick();
                s.drain(i);
                successors.push(s);
                if state.nodes[i].role() == Role::Leader && state.proposals < cfg.max_proposals {
                    let mut s = state.clone();
                    s.proposals += 1;
                    let _ = s.nodes[i].propose(vec![s.proposals]);
                    s.drain(i);
                    successors.push(s);
                }
            }
            for (k, msg) in state.net.iter().enumerate() {
                if k > 0 && state.net.get(k - 1) == Some(msg) {
                    continue; // identical copies lead to identical states
                }
                let mut lost = state.clone();
                lost.net.remove(k);
                lost.losses += 1;
                successors.push(lost);
                let mut s = state.clone();
                let m = s.net.remove(k);
                let to = (m.to - 1) as usize;
                if let Some(node) = s.nodes.get_mut(to) {
                    node.step(m)
                        .map_err(|e| violation(Property::CoreError, depth, e.to_string()))?;
                }
                s.drain(to);
                successors.push(s);
            }
            for mut s in successors {
                report.transitions += 1;
                check(&mut s, &commits, depth)?;
                if seen.insert(s.key()) {
                    let elections = s.leaders.len();
                    if elections > report.max_elections
                        || (elections == report.max_elections
                            && s.losses > report.losses_on_deepest)
                    {
                        report.max_elections = elections;
                        report.losses_on_deepest = s.losses;
                    }
                    next.push(s);
                }
            }
        }
        report.depth = depth;
        report.states = seen.len() as u64;
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    Ok(report)
}
