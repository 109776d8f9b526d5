//! A generated testnet dir for the report's tests: per node `nI/data/events/events.jsonl`
//! (written through serde, with vector clocks kept the way `EventLog` keeps them and spread
//! over simulated time), `events.log`, `summary.json` and a `jepsen/` history with its verdict.
//! Every kind of event the report draws is in it: Raft, block and training messages, role
//! changes and votes, a fork and its reorg, rounds with loss, accuracy and leader timings,
//! hash rate, a kill, a restart, a partition and its heal.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use hashgrad::events::{Event, EventKind, RoundTimings, VectorClock, message_id};

/// Wall-clock ms of the testnet's time 0 in the generated dir.
pub const EPOCH_MS: u64 = 1_764_400_000_000;

pub struct Sim {
    names: Vec<String>,
    clocks: Vec<VectorClock>,
    logs: Vec<Vec<Event>>,
}

impl Sim {
    pub fn new(names: &[&str]) -> Self {
        Self {
            names: names.iter().map(|n| n.to_string()).collect(),
            clocks: vec![VectorClock::new(); names.len()],
            logs: vec![Vec::new(); names.len()],
        }
    }

    pub fn record(&mut self, node: usize, at: u64, kind: EventKind) {
        let name = self.names[node].clone();
        self.clocks[node].tick(&name);
        self.logs[node].push(Event {
            node: name,
            time_ms: EPOCH_MS + at,
            time_us: 0,
            clock: self.clocks[node].clone(),
            kind,
        });
    }

    /// A message `from → to` sent at `at`, received `delay` ms later.
    pub fn message(&mut self, from: usize, to: usize, at: u64, delay: u64, msg: &str) {
        let (sender, receiver) = (self.names[from].clone(), self.names[to].clone());
        self.clocks[from].tick(&sender);
        let id = message_id(&sender, self.clocks[from].get(&sender));
        let stamp = self.clocks[from].clone();
        self.logs[from].push(Event {
            node: sender.clone(),
            time_ms: EPOCH_MS + at,
            time_us: 0,
            clock: stamp.clone(),
            kind: EventKind::Sent {
                to: receiver.clone(),
                msg: msg.into(),
                bytes: 200,
                id: id.clone(),
            },
        });
        self.clocks[to].merge(&stamp);
        self.clocks[to].tick(&receiver);
        self.logs[to].push(Event {
            node: receiver,
            time_ms: EPOCH_MS + at + delay,
            time_us: 0,
            clock: self.clocks[to].clone(),
            kind: EventKind::Received {
                from: sender,
                msg: msg.into(),
                bytes: 200,
                id,
            },
        });
    }

    /// Writes each node's log into `dir/n<i>/data/events/` (events in time order).
    pub fn write(mut self, dir: &Path) {
        for (i, log) in self.logs.iter_mut().enumerate() {
            log.sort_by_key(|e| e.clock.get(&e.node));
            let events = dir.join(format!("n{i}")).join("data").join("events");
            std::fs::create_dir_all(&events).unwrap();
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(events.join("events.jsonl")).unwrap(),
            );
            for event in log.iter() {
                writeln!(file, "{}", serde_json::to_string(event).unwrap()).unwrap();
            }
        }
    }
}

fn hash(n: u64) -> String {
    format!("{:016x}{n:048x}", 0u64)
}

/// Writes a testnet dir of `nodes` nodes running `secs` simulated seconds. `hostile` names
/// the last node `<img/src=x/onerror=alert(1)>`. `jepsen` adds a client history (with a
/// stale read, so the verdict is `not linearizable`).
pub fn generate(dir: &Path, nodes: usize, secs: u64, hostile: bool, jepsen: bool) {
    let mut names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
    if hostile {
        names[nodes - 1] = "<img/src=x/onerror=alert(1)></script>".into();
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut sim = Sim::new(&refs);
    for i in 0..nodes {
        sim.record(i, i as u64 * 7, EventKind::NodeStarted);
        sim.record(
            i,
            50,
            EventKind::RaftRole {
                role: "follower".into(),
                term: 1,
            },
        );
    }
    let end = secs * 1000;
    // Leaders: n0 in term 2, then (killed at 40% of the run) n1 in term 3.
    let kill_at = end * 4 / 10;
    let elect = |sim: &mut Sim, leader: usize, term: u64, at: u64| {
        sim.record(
            leader,
            at,
            EventKind::RaftRole {
                role: "candidate".into(),
                term,
            },
        );
        for peer in (0..nodes).filter(|&p| p != leader) {
            sim.message(leader, peer, at + 1, 2, "raft_request_vote");
            sim.record(
                peer,
                at + 3,
                EventKind::RaftVote {
                    candidate: names[leader].clone(),
                    term,
                    granted: true,
                },
            );
            sim.record(
                peer,
                at + 3,
                EventKind::RaftRole {
                    role: "follower".into(),
                    term,
                },
            );
            sim.message(peer, leader, at + 4, 2, "raft_vote_response");
        }
        sim.record(
            leader,
            at + 8,
            EventKind::RaftRole {
                role: "leader".into(),
                term,
            },
        );
    };
    elect(&mut sim, 0, 2, 300);
    let mut leader = 0;
    let mut round = 0;
    let mut height = 0;
    let mut tip = hash(0);
    let mut t = 400;
    let mut fork_done = false;
    let mut recovered = false;
    while t < end {
        if !recovered && t >= kill_at + 2000 {
            // The killed node's log reopened after its restart.
            sim.record(0, t, EventKind::NodeRecovered { lost_at_most: 4160 });
            recovered = true;
        }
        if leader == 0 && t >= kill_at + 600 {
            elect(&mut sim, 1, 3, t);
            leader = 1;
            t += 20;
        }
        let down = |node: usize, at: u64| node == 0 && at >= kill_at && at < kill_at + 2000;
        // Heartbeats.
        for peer in (0..nodes).filter(|&p| p != leader && !down(p, t)) {
            if !down(leader, t) {
                sim.message(leader, peer, t, 1, "raft_append");
                sim.message(peer, leader, t + 2, 1, "raft_append_response");
            }
        }
        // A training round every 100 ms.
        if t % 100 < 50 && !down(leader, t) {
            round += 1;
            sim.record(leader, t, EventKind::RoundAnnounced { round });
            let workers: Vec<usize> = (0..nodes).filter(|&w| !down(w, t)).collect();
            for &w in workers.iter().filter(|&&w| w != leader) {
                sim.message(leader, w, t + 1, 1, "round_announce");
                sim.message(w, leader, t + 8, 2, "gradient");
            }
            let loss = 2.3 * (-(round as f64) / 60.0).exp() + 0.1;
            for &w in &workers {
                sim.record(
                    w,
                    t + 20,
                    EventKind::RoundCommitted {
                        round,
                        loss: Some(loss),
                        contributors: workers.len() as u32,
                        timings: (w == leader).then_some(RoundTimings {
                            gradient_wait_ms: 10.0 + (round % 7) as f64,
                            reduce_ms: 2.0 + (round % 3) as f64 * 0.5,
                            commit_ms: 5.0 + (round % 5) as f64,
                        }),
                    },
                );
                sim.record(
                    w,
                    t + 22,
                    EventKind::RoundEvaluated {
                        round,
                        accuracy: 0.97 - 0.85 * (-(round as f64) / 50.0).exp(),
                    },
                );
            }
            if round % 40 == 0 {
                sim.record(
                    leader,
                    t + 30,
                    EventKind::RoundAbandoned {
                        round: round + 1,
                        reason: "deadline passed with 1 of 3 gradients".into(),
                    },
                );
            }
        }
        // A block every second, from a rotating miner; one fork half way.
        if t % 1000 < 50 {
            let miner = (t / 1000) as usize % nodes;
            if !down(miner, t) {
                height += 1;
                let block = hash(height * 10);
                sim.record(
                    miner,
                    t,
                    EventKind::BlockFound {
                        hash: block.clone(),
                        height,
                        parent: tip.clone(),
                    },
                );
                for peer in (0..nodes).filter(|&p| p != miner && !down(p, t)) {
                    sim.message(miner, peer, t + 1, 3, "block");
                    sim.record(
                        peer,
                        t + 5,
                        EventKind::BlockReceived {
                            hash: block.clone(),
                            height,
                            from: names[miner].clone(),
                            parent: tip.clone(),
                        },
                    );
                }
                if !fork_done && t >= end / 2 {
                    // A competing block at the same height, mined by the next node, loses.
                    fork_done = true;
                    let other = (miner + 1) % nodes;
                    let stale = hash(height * 10 + 1);
                    sim.record(
                        other,
                        t + 2,
                        EventKind::BlockFound {
                            hash: stale.clone(),
                            height,
                            parent: tip.clone(),
                        },
                    );
                    let next = hash((height + 1) * 10);
                    sim.record(
                        other,
                        t + 6,
                        EventKind::BlockReorged {
                            old_tip: stale,
                            new_tip: block.clone(),
                            depth: 1,
                        },
                    );
                    let _ = next;
                }
                tip = block;
            }
            for node in (0..nodes).filter(|&n| !down(n, t)) {
                sim.record(
                    node,
                    t,
                    EventKind::HashRate {
                        hashes_per_sec: 2.0e6 + 1.5e5 * node as f64 + (t % 3000) as f64 * 50.0,
                    },
                );
            }
        }
        t += 50;
    }
    for i in 0..nodes {
        sim.record(i, end, EventKind::NodeStopped);
    }
    sim.write(dir);
    let kill = kill_at as f64 / 1000.0;
    let part = end as f64 * 0.7 / 1000.0;
    std::fs::write(
        dir.join("events.log"),
        format!(
            "   0.000s nodes up: n0 pid 1, n1 pid 2\n{kill:8.3}s kill -9 n0 (pid 1, leader)\n{:8.3}s restart n0 from its data dir (pid 7)\n{part:8.3}s partition: groups [[0, 1], [2]] (heights [3, 3, 3])\n{:8.3}s partition healed (before healing: heights [5, 5, 3], rounds [9, 9, 7])\n",
            kill + 2.0,
            part + 3.0
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "dir": dir.display().to_string(),
            "nodes": nodes,
            "blocks": height,
            "rounds_committed": round,
            "kills": 1,
            "partitions": 1,
            "goals_met": true,
            "reason": null,
            "events_epoch_ms": EPOCH_MS,
        }))
        .unwrap(),
    )
    .unwrap();
    if jepsen {
        let jepsen = dir.join("jepsen");
        std::fs::create_dir_all(&jepsen).unwrap();
        // Client 1 writes 1, then 2; client 2 then reads 1: a stale read.
        let lines = [
            r#"{"client":1,"type":"invoke","f":"write","key":"x","value":1,"index":1}"#,
            r#"{"client":1,"type":"ok","f":"write","key":"x","value":1,"index":2}"#,
            r#"{"client":1,"type":"invoke","f":"write","key":"x","value":2,"index":3}"#,
            r#"{"client":1,"type":"ok","f":"write","key":"x","value":2,"index":4}"#,
            r#"{"client":2,"type":"invoke","f":"read","key":"x","index":5}"#,
            r#"{"client":2,"type":"ok","f":"read","key":"x","value":1,"index":6}"#,
            r#"{"client":3,"type":"invoke","f":"cas","key":"y","value":[null,5],"index":7}"#,
            r#"{"client":3,"type":"info","f":"cas","key":"y","index":8}"#,
        ];
        std::fs::write(jepsen.join("history.jsonl"), lines.join("\n") + "\n").unwrap();
        std::fs::write(
            jepsen.join("verdict.json"),
            r#"{"consistency":"local","verdict":"not linearizable","operations":4,"note":"<b>bold?</b>"}"#,
        )
        .unwrap();
    }
}
