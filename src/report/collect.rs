//! Folding the nodes' events into what the report draws, one event at a time (a long run's
//! logs never sit in memory whole): lanes per node, the message sample, Raft roles and votes,
//! the block tree, rounds (loss, accuracy, leader timings), hash rate. Every list is bounded
//! by `Limits` and says how much it left out. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::chain::{BlockTree, ChainView};
use super::messages::{MessageClass, MessageSample};
use super::series::bucket_means;
use crate::events::{Event, EventKind};

/// How much of each kind the page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages drawn in the space-time diagram (a quarter per class).
    pub messages: usize,
    /// Blocks in the tree (the highest ones).
    pub blocks: usize,
    /// Points in the per-round charts (consecutive rounds are averaged beyond it).
    pub rounds: usize,
    /// Hash-rate points per node.
    pub points: usize,
    /// Raft role changes and votes each; node starts and stops.
    pub raft_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            messages: 20_000,
            blocks: 3_000,
            rounds: 2_000,
            points: 1_000,
            raft_events: 20_000,
        }
    }
}

/// Distinct rounds remembered (a log naming more is cut there and says so).
const MAX_ROUNDS_HELD: usize = 2_000_000;
/// Longest string kept from a log (role names, reasons, candidate names).
const MAX_TEXT: usize = 200;

fn clip(text: &str) -> String {
    text.chars().take(MAX_TEXT).collect()
}

/// A node's lane: its dir label, the name its events carry, how many it logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lane {
    pub label: String,
    pub name: Option<String>,
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleChange {
    pub lane: usize,
    pub at_ms: u64,
    pub role: String,
    pub term: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Vote {
    pub lane: usize,
    pub at_ms: u64,
    pub candidate: String,
    pub term: u64,
    pub granted: bool,
}

/// A node started (`true`) or stopped; a start after a crash carries how many events the
/// crash may have lost (`node_recovered`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lifecycle {
    pub lane: usize,
    pub at_ms: u64,
    pub started: bool,
    pub lost_at_most: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Abandoned {
    pub lane: usize,
    pub at_ms: u64,
    pub round: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
struct RoundSeen {
    loss: Option<f64>,
    accuracy: Option<f64>,
    contributors: Option<u32>,
    /// gradient wait, reduce, commit (ms), from the leader that reduced it.
    timings: Option<[f64; 3]>,
}

/// Accumulates events; `finish` turns them into the page's data.
#[derive(Debug)]
pub struct Collector {
    limits: Limits,
    lanes: Vec<Lane>,
    first_ms: Option<u64>,
    last_ms: u64,
    /// Per lane, when its first event was logged.
    lane_first_ms: Vec<Option<u64>>,
    messages: MessageSample,
    chain: BlockTree,
    roles: Vec<RoleChange>,
    roles_total: u64,
    votes: Vec<Vote>,
    votes_total: u64,
    lifecycle: Vec<Lifecycle>,
    rounds: BTreeMap<u64, RoundSeen>,
    rounds_dropped: u64,
    abandoned: Vec<Abandoned>,
    abandoned_total: u64,
    hash_rate: Vec<Vec<(u64, f64)>>,
}

impl Collector {
    /// An empty collector that keeps at most `limits` of each kind.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            lanes: Vec::new(),
            first_ms: None,
            last_ms: 0,
            lane_first_ms: Vec::new(),
            messages: MessageSample::new(limits.messages),
            chain: BlockTree::default(),
            roles: Vec::new(),
            roles_total: 0,
            votes: Vec::new(),
            votes_total: 0,
            lifecycle: Vec::new(),
            rounds: BTreeMap::new(),
            rounds_dropped: 0,
            abandoned: Vec::new(),
            abandoned_total: 0,
            hash_rate: Vec::new(),
        }
    }

    /// Adds a lane for a node's logs (its dir label, `n0`) and returns it.
    pub fn node(&mut self, label: &str) -> usize {
        self.lanes.push(Lane {
            label: clip(label),
            name: None,
            events: 0,
        });
        self.lane_first_ms.push(None);
        self.hash_rate.push(Vec::new());
        self.lanes.len() - 1
    }

    /// Folds in one event the node on `lane` logged (events of a lane in log order).
    pub fn add(&mut self, lane: usize, event: &Event) {
        let Some(entry) = self.lanes.get_mut(lane) else {
            return;
        };
        entry.events += 1;
        if entry.name.is_none() {
            entry.name = Some(clip(&event.node));
        }
        let at = event.time_ms;
        self.first_ms = Some(self.first_ms.map_or(at, |f| f.min(at)));
        self.last_ms = self.last_ms.max(at);
        self.lane_first_ms[lane].get_or_insert(at);
        let raft_room = self.limits.raft_events;
        match &event.kind {
            EventKind::NodeStarted | EventKind::NodeStopped if self.lifecycle.len() < raft_room => {
                self.lifecycle.push(Lifecycle {
                    lane,
                    at_ms: at,
                    started: matches!(event.kind, EventKind::NodeStarted),
                    lost_at_most: None,
                });
            }
            EventKind::NodeRecovered { lost_at_most } if self.lifecycle.len() < raft_room => {
                self.lifecycle.push(Lifecycle {
                    lane,
                    at_ms: at,
                    started: true,
                    lost_at_most: Some(*lost_at_most),
                });
            }
            EventKind::Sent { msg, id, .. } => self.messages.sent(lane, at, msg, id),
            EventKind::Received { msg, id, .. } => self.messages.received(lane, at, msg, id),
            EventKind::RaftRole { role, term } => {
                self.roles_total += 1;
                if self.roles.len() < raft_room {
                    self.roles.push(RoleChange {
                        lane,
                        at_ms: at,
                        role: clip(role),
                        term: *term,
                    });
                }
            }
            EventKind::RaftVote {
                candidate,
                term,
                granted,
            } => {
                self.votes_total += 1;
                if self.votes.len() < raft_room {
                    self.votes.push(Vote {
                        lane,
                        at_ms: at,
                        candidate: clip(candidate),
                        term: *term,
                        granted: *granted,
                    });
                }
            }
            EventKind::BlockFound {
                hash,
                height,
                parent,
            } => self.chain.block(lane, at, hash, *height, parent, true),
            EventKind::BlockReceived {
                hash,
                height,
                parent,
                ..
            } => self.chain.block(lane, at, hash, *height, parent, false),
            EventKind::BlockReorged {
                old_tip,
                new_tip,
                depth,
            } => self.chain.reorg(lane, at, old_tip, new_tip, *depth),
            EventKind::RoundCommitted {
                round,
                loss,
                contributors,
                timings,
            } => {
                if let Some(seen) = self.round(*round) {
                    if seen.loss.is_none() {
                        seen.loss = loss.filter(|l| l.is_finite());
                    }
                    seen.contributors.get_or_insert(*contributors);
                    if let Some(t) = timings {
                        let values = [t.gradient_wait_ms, t.reduce_ms, t.commit_ms];
                        if values.iter().all(|v| v.is_finite() && *v >= 0.0) {
                            seen.timings = Some(values);
                        }
                    }
                }
            }
            EventKind::RoundEvaluated { round, accuracy } => {
                if let Some(seen) = self.round(*round)
                    && seen.accuracy.is_none()
                    && accuracy.is_finite()
                {
                    seen.accuracy = Some(*accuracy);
                }
            }
            EventKind::RoundAbandoned { round, reason } => {
                self.abandoned_total += 1;
                if self.abandoned.len() < raft_room {
                    self.abandoned.push(Abandoned {
                        lane,
                        at_ms: at,
                        round: *round,
                        reason: clip(reason),
                    });
                }
            }
            EventKind::HashRate { hashes_per_sec } if hashes_per_sec.is_finite() => {
                let series = &mut self.hash_rate[lane];
                series.push((at, *hashes_per_sec));
                if series.len() >= self.limits.points.max(1) * 4 {
                    *series = series
                        .chunks(2)
                        .map(|p| {
                            let n = p.len() as f64;
                            (p[0].0, p.iter().map(|q| q.1).sum::<f64>() / n)
                        })
                        .collect();
                }
            }
            _ => {}
        }
    }

    fn round(&mut self, round: u64) -> Option<&mut RoundSeen> {
        if self.rounds.len() >= MAX_ROUNDS_HELD && !self.rounds.contains_key(&round) {
            self.rounds_dropped += 1;
            return None;
        }
        Some(self.rounds.entry(round).or_default())
    }

    /// Whether any event was added.
    pub fn is_empty(&self) -> bool {
        self.first_ms.is_none()
    }

    /// When every node had logged its first event: the estimate of the testnet's time 0 when
    /// the summary does not record it.
    pub(super) fn all_started_ms(&self) -> Option<u64> {
        self.lane_first_ms.iter().flatten().copied().max()
    }

    pub(super) fn first_ms(&self) -> Option<u64> {
        self.first_ms
    }

    /// The page's data, with times in ms since `origin_ms`.
    pub(super) fn finish(self, origin_ms: u64) -> Collected {
        let rel = |t: u64| t.saturating_sub(origin_ms);
        let sampled = self.messages.finish(origin_ms);
        let classes: Vec<MessageClass> = MessageClass::ALL.to_vec();
        let list = sampled
            .drawn
            .iter()
            .map(|d| {
                let class = classes.iter().position(|&c| c == d.class).unwrap_or(0);
                [
                    d.from as u64,
                    d.sent_ms,
                    d.to as u64,
                    d.received_ms,
                    class as u64,
                    d.kind as u64,
                ]
            })
            .collect();
        let messages = MessagesView {
            list,
            classes,
            types: sampled.types,
            counts: sampled
                .counts
                .iter()
                .map(|&(class, sent, received, drawn)| ClassCount {
                    class,
                    sent,
                    received,
                    drawn,
                })
                .collect(),
            budget: self.limits.messages,
        };
        let rounds_total = self.rounds.len();
        let points: Vec<(f64, [Option<f64>; 3])> = self
            .rounds
            .iter()
            .map(|(&r, s)| {
                (
                    r as f64,
                    [s.loss, s.accuracy, s.contributors.map(f64::from)],
                )
            })
            .collect();
        let (points, per_point) = bucket_means(&points, self.limits.rounds);
        let timed: Vec<(f64, [Option<f64>; 3])> = self
            .rounds
            .iter()
            .filter_map(|(&r, s)| {
                let t = s.timings?;
                Some((r as f64, [Some(t[0]), Some(t[1]), Some(t[2])]))
            })
            .collect();
        let timed_total = timed.len();
        let (timings, timings_per_point) = bucket_means(&timed, self.limits.rounds);
        let rounds = RoundsView {
            points: points
                .into_iter()
                .map(|(r, v)| [Some(r), v[0], v[1], v[2]])
                .collect(),
            per_point,
            total: rounds_total,
            dropped: self.rounds_dropped,
            timings: timings
                .into_iter()
                .map(|(r, v)| {
                    [
                        r,
                        v[0].unwrap_or(0.0),
                        v[1].unwrap_or(0.0),
                        v[2].unwrap_or(0.0),
                    ]
                })
                .collect(),
            timed_total,
            timings_per_point,
            abandoned: self
                .abandoned
                .into_iter()
                .map(|a| Abandoned {
                    at_ms: rel(a.at_ms),
                    ..a
                })
                .collect(),
            abandoned_total: self.abandoned_total,
        };
        let hash_rate = self
            .hash_rate
            .iter()
            .enumerate()
            .map(|(lane, series)| {
                let points: Vec<(f64, [Option<f64>; 1])> = series
                    .iter()
                    .map(|&(t, h)| (rel(t) as f64, [Some(h)]))
                    .collect();
                let (points, _) = bucket_means(&points, self.limits.points);
                HashSeries {
                    lane,
                    points: points
                        .into_iter()
                        .map(|(t, v)| [t.round(), v[0].unwrap_or(0.0)])
                        .collect(),
                }
            })
            .collect();
        Collected {
            span_ms: rel(self.last_ms),
            lanes: self.lanes,
            messages,
            raft: RaftView {
                roles: self
                    .roles
                    .into_iter()
                    .map(|r| RoleChange {
                        at_ms: rel(r.at_ms),
                        ..r
                    })
                    .collect(),
                roles_total: self.roles_total,
                votes: self
                    .votes
                    .into_iter()
                    .map(|v| Vote {
                        at_ms: rel(v.at_ms),
                        ..v
                    })
                    .collect(),
                votes_total: self.votes_total,
                lifecycle: self
                    .lifecycle
                    .into_iter()
                    .map(|l| Lifecycle {
                        at_ms: rel(l.at_ms),
                        ..l
                    })
                    .collect(),
            },
            chain: self.chain.finish(origin_ms, self.limits.blocks),
            rounds,
            hash_rate,
        }
    }
}

/// What the events give the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Collected {
    /// One lane per node, in the order `node` added them.
    pub lanes: Vec<Lane>,
    /// Milliseconds from the time origin to the last event.
    pub span_ms: u64,
    /// The sampled messages and every class's counts.
    pub messages: MessagesView,
    /// Raft role changes, votes and node starts and stops.
    pub raft: RaftView,
    /// The block tree laid out for drawing.
    pub chain: ChainView,
    /// Loss, accuracy, contributors and leader timings per round.
    pub rounds: RoundsView,
    /// Hash-rate points per lane, in lane order.
    pub hash_rate: Vec<HashSeries>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCount {
    pub class: MessageClass,
    pub sent: u64,
    pub received: u64,
    pub drawn: usize,
}

/// The drawn messages as `[from lane, sent ms, to lane, received ms, class, type]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagesView {
    pub list: Vec<[u64; 6]>,
    pub classes: Vec<MessageClass>,
    pub types: Vec<String>,
    pub counts: Vec<ClassCount>,
    pub budget: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaftView {
    pub roles: Vec<RoleChange>,
    pub roles_total: u64,
    pub votes: Vec<Vote>,
    pub votes_total: u64,
    pub lifecycle: Vec<Lifecycle>,
}

/// Per-round points `[round, loss, accuracy, contributors]` (means over `per_point` rounds)
/// and leader timings `[round, gradient wait, reduce, commit]` in ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundsView {
    pub points: Vec<[Option<f64>; 4]>,
    pub per_point: usize,
    pub total: usize,
    pub dropped: u64,
    pub timings: Vec<[f64; 4]>,
    pub timed_total: usize,
    pub timings_per_point: usize,
    pub abandoned: Vec<Abandoned>,
    pub abandoned_total: u64,
}

/// `[ms, hashes per second]` points of one lane.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HashSeries {
    pub lane: usize,
    pub points: Vec<[f64; 2]>,
}

#[cfg(test)]
#[path = "collect_tests.rs"]
pub(super) mod tests;
