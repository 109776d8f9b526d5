//! A simulated cluster: nodes (a `Raft`, its `MemStorage` and a digest state machine) wired
//! to the simulated network, driven exactly like a real driver (persist, send, apply, advance)
//! and checked after every step. Scenario tests, the seeded simulator and `hashgrad raft-sim`
//! drive clusters through this (the `raft` bench drives `Raft` directly).

use std::collections::{BTreeMap, HashMap};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checker::{Checker, Property, Violation, payload_hash};
use super::network::{Faults, Network};
use crate::raft::core::{Config, Raft, ReadState, Role};
use crate::raft::message::Message;
use crate::raft::storage::{MemStorage, Storage};
use crate::raft::types::{Entry, RaftId, Snapshot};

/// The simulated application: a running digest over every applied entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestMachine {
    /// Last applied index.
    pub applied: u64,
    /// Digest after it.
    pub digest: u64,
}

impl DigestMachine {
    fn apply(&mut self, e: &Entry) {
        self.applied = e.index;
        self.digest = (self.digest ^ payload_hash(e.kind.code(), &e.data))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(e.index ^ e.term.rotate_left(17));
    }
    /// Snapshot bytes: applied index and digest.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = self.applied.to_le_bytes().to_vec();
        out.extend_from_slice(&self.digest.to_le_bytes());
        out
    }
    fn restore(snapshot: &Snapshot) -> Option<Self> {
        let d = &snapshot.data;
        let applied = u64::from_le_bytes(d.get(..8)?.try_into().ok()?);
        let digest = u64::from_le_bytes(d.get(8..16)?.try_into().ok()?);
        (applied == snapshot.meta.index).then_some(DigestMachine { applied, digest })
    }
}

/// One simulated node.
#[derive(Debug, Clone)]
pub struct SimNode {
    /// The running core; `None` while crashed.
    pub raft: Option<Raft>,
    /// What survives a crash.
    pub storage: MemStorage,
    /// The state machine (lost on a crash, rebuilt from snapshot + log).
    pub machine: DigestMachine,
    /// The node's configuration.
    pub config: Config,
}

/// N nodes on a simulated network with an invariant checker.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes by id (1..=n).
    pub nodes: BTreeMap<RaftId, SimNode>,
    /// The network.
    pub net: Network,
    /// The invariant checker.
    pub checker: Checker,
    /// The run's RNG.
    pub rng: ChaCha8Rng,
    /// Current fault rates.
    pub faults: Faults,
    /// Current tick.
    pub now: u64,
    /// Probability that a crash hits between `ready()` and persisting it (set by the simulator).
    pub crash_in_ready: f64,
    reads: HashMap<u64, u64>,
    next_request: u64,
    /// Every confirmed read: (node, state).
    pub read_results: Vec<(RaftId, ReadState)>,
    /// Crashes so far.
    pub crashes: u64,
    /// Print every event to stderr (`HASHGRAD_RAFT_TRACE=1`), for debugging a failing seed.
    pub trace: bool,
}

impl Cluster {
    /// Nodes `1..=n`, each configured by `config(id, voters)`.
    pub fn new(n: usize, seed: u64, config: impl Fn(RaftId, Vec<RaftId>) -> Config) -> Cluster {
        let voters: Vec<RaftId> = (1..=n as u64).collect();
        let mut nodes = BTreeMap::new();
        for &id in &voters {
            let mut cfg = config(id, voters.clone());
            cfg.seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id;
            let raft = Raft::new(cfg.clone(), Default::default()).ok();
            nodes.insert(
                id,
                SimNode {
                    raft,
                    storage: MemStorage::new(),
                    machine: DigestMachine::default(),
                    config: cfg,
                },
            );
        }
        Cluster {
            nodes,
            net: Network::default(),
            checker: Checker::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: Faults::CALM,
            now: 0,
            crash_in_ready: 0.0,
            reads: HashMap::new(),
            next_request: 1,
            read_results: Vec::new(),
            crashes: 0,
            trace: std::env::var_os("HASHGRAD_RAFT_TRACE").is_some(),
        }
    }

    /// All node ids.
    pub fn ids(&self) -> Vec<RaftId> {
        self.nodes.keys().copied().collect()
    }

    /// The running core of `id` (panics in tests if crashed).
    pub fn raft(&self, id: RaftId) -> Option<&Raft> {
        self.nodes.get(&id)?.raft.as_ref()
    }

    /// The leader with the highest term, if any node leads.
    pub fn leader(&self) -> Option<RaftId> {
        self.nodes
            .values()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.role() == Role::Leader)
            .max_by_key(|r| r.term())
            .map(Raft::id)
    }

    /// Runs `f` on node `id`'s core (if up), then handles its `Ready` and checks invariants.
    pub fn with_node<T>(
        &mut self,
        id: RaftId,
        f: impl FnOnce(&mut Raft) -> T,
    ) -> Result<Option<T>, Violation> {
        let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
            return Ok(None);
        };
        let out = f(raft);
        self.process_ready(id)?;
        Ok(Some(out))
    }

    /// Delivers one message now (dropped if the destination is down).
    pub fn deliver(&mut self, msg: Message) -> Result<(), Violation> {
        let to = msg.to;
        if self.trace {
            eprintln!("t{} deliver {msg:?}", self.now);
        }
        // Round-trip through the wire format so the codec is exercised on real traffic.
        let msg = Message::decode(&msg.encode()).map_err(|e| self.core_error(to, e.to_string()))?;
        let result = self.with_node(to, |r| r.step(msg))?;
        if let Some(Err(e)) = result {
            return Err(self.core_error(to, e.to_string()));
        }
        Ok(())
    }

    fn core_error(&self, node: RaftId, detail: String) -> Violation {
        Violation {
            property: Property::CoreError,
            tick: self.now,
            detail: format!("node {node}: {detail}"),
        }
    }

    /// One tick: deliver what is due, then tick every running node (in random order).
    pub fn tick(&mut self) -> Result<(), Violation> {
        self.checker.at_tick(self.now);
        for msg in self.net.take_due(self.now, &mut self.rng) {
            self.deliver(msg)?;
        }
        let mut ids = self.ids();
        use rand::seq::SliceRandom;
        ids.shuffle(&mut self.rng);
        for id in ids {
            self.with_node(id, Raft::tick)?;
        }
        self.now += 1;
        Ok(())
    }

    /// Delivers messages (with the current cuts, no new loss) until none are in flight.
    pub fn settle(&mut self) -> Result<(), Violation> {
        for _ in 0..1000 {
            if self.net.in_flight() == 0 {
                return Ok(());
            }
            for msg in self.net.take_due(u64::MAX, &mut self.rng) {
                self.deliver(msg)?;
            }
        }
        Ok(())
    }

    /// Like [`Cluster::settle`], but drops every message for which `keep` is false.
    pub fn settle_with(&mut self, mut keep: impl FnMut(&Message) -> bool) -> Result<(), Violation> {
        for _ in 0..1000 {
            if self.net.in_flight() == 0 {
                return Ok(());
            }
            for msg in self.net.take_due(u64::MAX, &mut self.rng) {
                if keep(&msg) {
                    self.deliver(msg)?;
                }
            }
        }
        Ok(())
    }

    /// Ticks until some node leads (at most `max` ticks); returns it.
    pub fn elect(&mut self, max: u64) -> Result<Option<RaftId>, Violation> {
        for _ in 0..max {
            if let Some(l) = self.leader() {
                return Ok(Some(l));
            }
            self.tick()?;
        }
        Ok(self.leader())
    }

    /// Proposes at `id`.
    pub fn propose(&mut self, id: RaftId, data: Vec<u8>) -> Result<Option<u64>, Violation> {
        Ok(self.with_node(id, |r| r.propose(data).ok())?.flatten())
    }

    /// Asks node `id` for a linearizable read; returns the request id.
    pub fn read(&mut self, id: RaftId) -> Result<u64, Violation> {
        let request = self.next_request;
        self.next_request += 1;
        self.reads.insert(request, self.checker.max_commit);
        self.with_node(id, |r| r.read_index(request))?;
        Ok(request)
    }

    /// Crashes `id`: its core and state machine are lost; storage survives.
    pub fn crash(&mut self, id: RaftId) {
        if self.trace {
            eprintln!("t{} crash {id}", self.now);
        }
        if let Some(node) = self.nodes.get_mut(&id) {
            if node.raft.take().is_some() {
                self.crashes += 1;
            }
            node.machine = DigestMachine::default();
        }
        self.net.drop_node(id);
    }

    /// Restarts a crashed node from its storage.
    pub fn restart(&mut self, id: RaftId) -> Result<(), Violation> {
        let Some(node) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        if node.raft.is_some() {
            return Ok(());
        }
        let state = node.storage.recover().map_err(|e| Violation {
            property: Property::CoreError,
            tick: self.now,
            detail: e.to_string(),
        })?;
        match Raft::new(node.config.clone(), state) {
            Ok(raft) => {
                self.checker.restarted(&raft);
                node.raft = Some(raft);
            }
            Err(e) => return Err(self.core_error(id, e.to_string())),
        }
        self.process_ready(id)
    }

    /// Wipes `id`'s storage (a lost disk) and restarts it empty.
    pub fn wipe(&mut self, id: RaftId) -> Result<(), Violation> {
        self.crash(id);
        if let Some(node) = self.nodes.get_mut(&id) {
            node.storage = MemStorage::new();
        }
        self.restart(id)
    }

    /// The driver loop: persist, send, apply, advance; then check.
    fn process_ready(&mut self, id: RaftId) -> Result<(), Violation> {
        loop {
            let crash_now = self.crash_in_ready > 0.0 && self.rng.random_bool(self.crash_in_ready);
            let Some(node) = self.nodes.get_mut(&id) else {
                return Ok(());
            };
            let Some(raft) = node.raft.as_mut() else {
                return Ok(());
            };
            let Some(ready) = raft.ready() else { break };
            if crash_now && self.rng.random_bool(0.5) {
                // Crash before the batch reached the disk: all of it is lost.
                self.crash(id);
                return Ok(());
            }
            let _ = node.storage.persist(&ready.persist);
            if crash_now {
                // Crash after persisting, before sending or applying.
                self.crash(id);
                return Ok(());
            }
            for msg in ready.messages {
                self.net.send(msg, self.now, &self.faults, &mut self.rng);
            }
            let Some(node) = self.nodes.get_mut(&id) else {
                return Ok(());
            };
            if let Some(snapshot) = &ready.snapshot {
                match DigestMachine::restore(snapshot) {
                    Some(m) => node.machine = m,
                    None => return Err(self.core_error(id, "snapshot does not decode".into())),
                }
            }
            for e in &ready.committed_entries {
                if e.index != node.machine.applied + 1 {
                    let detail = format!("applied {} after {}", e.index, node.machine.applied);
                    return Err(self.core_error(id, detail));
                }
                node.machine.apply(e);
                let (index, digest) = (node.machine.applied, node.machine.digest);
                self.checker.applied(id, index, digest)?;
            }
            for rs in ready.read_states {
                if let Some(&at_request) = self.reads.get(&rs.request) {
                    self.checker.read_confirmed(id, rs.index, at_request)?;
                }
                self.read_results.push((id, rs));
            }
            let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
                return Ok(());
            };
            raft.advance();
        }
        let Some(raft) = self.nodes.get_mut(&id).and_then(|n| n.raft.as_mut()) else {
            return Ok(());
        };
        if self.trace {
            let h = raft.hard_state();
            eprintln!(
                "t{} node {id}: {:?} term {} vote {} commit {} last {}/{} snap {}",
                self.now,
                raft.role(),
                h.term,
                h.vote,
                h.commit,
                raft.last_index(),
                raft.entry_term(raft.last_index()).unwrap_or(0),
                raft.snapshot_index()
            );
        }
        self.checker.check_node(raft)
    }

    /// Compacts `id`'s log at its applied index.
    pub fn compact(&mut self, id: RaftId) -> Result<(), Violation> {
        let Some(node) = self.nodes.get_mut(&id) else {
            return Ok(());
        };
        let (applied, data) = (node.machine.applied, node.machine.snapshot());
        let result = self.with_node(id, |r| r.compact(applied, data))?;
        if let Some(Err(e)) = result {
            return Err(self.core_error(id, e.to_string()));
        }
        Ok(())
    }

    /// A random running node, if any.
    pub fn random_up(&mut self) -> Option<RaftId> {
        let up: Vec<RaftId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.raft.is_some())
            .map(|(&id, _)| id)
            .collect();
        up.choose(&mut self.rng).copied()
    }
}
