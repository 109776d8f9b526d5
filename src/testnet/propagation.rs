//! Block propagation, timed from the nodes' own event logs: for each block, from the moment
//! its miner stored it (`block_found`) to the moment the last other node stored it
//! (`block_received`), in microseconds of the one wall clock every node of a local testnet
//! shares. Only blocks whose whole journey falls inside a clean stretch (every node up, no
//! partition, as the polls saw it) count; a block that waited out a kill or a cut would time
//! the fault. Pure: takes the events the orchestrator read and the stretches it saw.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::events::{Event, EventKind};

/// Block propagation times, miner to every node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median time, in µs, from the miner storing a block to the last node storing it.
    pub p50_us: f64,
    /// 99th-percentile time, in µs (nearest rank).
    pub p99_us: f64,
    /// Blocks timed.
    pub samples: usize,
}

/// When each block was stored, per node, as the event logs say.
#[derive(Debug, Default)]
pub struct BlockTimes {
    /// Block hash → the node that mined it and when (µs since the Unix epoch).
    found: BTreeMap<String, (usize, u64)>,
    /// Block hash → node → when it first stored the block from a peer.
    received: BTreeMap<String, BTreeMap<usize, u64>>,
}

impl BlockTimes {
    /// Records one event of node `node`'s log; events other than blocks are ignored.
    pub fn record(&mut self, node: usize, event: &Event) {
        // Logs written before `time_us` existed carry milliseconds only.
        let at = if event.time_us > 0 {
            event.time_us
        } else {
            event.time_ms.saturating_mul(1000)
        };
        match &event.kind {
            EventKind::BlockFound { hash, .. } => {
                self.found.entry(hash.clone()).or_insert((node, at));
            }
            EventKind::BlockReceived { hash, .. } => {
                self.received
                    .entry(hash.clone())
                    .or_default()
                    .entry(node)
                    .or_insert(at);
            }
            _ => {}
        }
    }

    /// The percentiles over every block that reached all `nodes` inside one of the `clean`
    /// stretches (µs since the Unix epoch, first and last clean poll), or why there are none.
    pub fn percentiles(
        &self,
        nodes: usize,
        clean: &[(u64, u64)],
    ) -> Result<Percentiles, NoPropagation> {
        if nodes < 2 {
            return Err(NoPropagation::OneNode);
        }
        if self.found.is_empty() {
            return Err(NoPropagation::NothingMined);
        }
        let mut samples: Vec<f64> = Vec::new();
        for (hash, &(miner, found)) in &self.found {
            let Some(received) = self.received.get(hash) else {
                continue;
            };
            let others: BTreeSet<usize> =
                received.keys().copied().filter(|&n| n != miner).collect();
            if others.len() + 1 < nodes {
                continue;
            }
            let last = received
                .iter()
                .filter(|(n, _)| **n != miner)
                .map(|(_, &at)| at)
                .max()
                .unwrap_or(found);
            if clean.iter().any(|&(from, to)| from <= found && last <= to) {
                samples.push(last.saturating_sub(found) as f64);
            }
        }
        if samples.is_empty() {
            return Err(NoPropagation::NoCleanTrip);
        }
        samples.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least a share q of samples at or below it.
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Ok(Percentiles {
            p50_us: at(0.5),
            p99_us: at(0.99),
            samples: samples.len(),
        })
    }
}

/// Why a run has no propagation figure; the summary prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoPropagation {
    /// A one-node testnet.
    #[error("one node: no block has anywhere to go")]
    OneNode,
    /// No node's event log holds a block it mined.
    #[error("no node logged a block it mined")]
    NothingMined,
    /// Every mined block missed a node, or travelled while a node was down or a link cut.
    #[error("no block reached every node while all were up and no partition cut a link")]
    NoCleanTrip,
    /// The event logs could not be read; holds why.
    #[error("the nodes' event logs cannot be read: {0}")]
    Unreadable(String),
}

/// A duration in µs as people read it: `640 µs`, `2.15 ms`, `31.2 ms`.
pub fn show_micros(us: f64) -> String {
    if us < 1e3 {
        format!("{us:.0} µs")
    } else if us < 1e4 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.1} ms", us / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::VectorClock;

    fn event(time_us: u64, kind: EventKind) -> Event {
        Event {
            node: "n".into(),
            time_ms: time_us / 1000,
            time_us,
            clock: VectorClock::new(),
            kind,
        }
    }

    fn found(hash: &str, at: u64) -> Event {
        event(
            at,
            EventKind::BlockFound {
                hash: hash.into(),
                height: 1,
                parent: String::new(),
            },
        )
    }

    fn received(hash: &str, at: u64) -> Event {
        event(
            at,
            EventKind::BlockReceived {
                hash: hash.into(),
                height: 1,
                from: "n0".into(),
                parent: String::new(),
            },
        )
    }

    #[test]
    fn a_block_is_timed_from_its_miner_to_the_last_node_in_microseconds() {
        let mut times = BlockTimes::default();
        let clean = [(1_000, 90_000)];
        // Block a: mined by n0 at 10 ms, stored by n1 420 µs later and by n2 910 µs later.
        times.record(0, &found("a", 10_000));
        times.record(1, &received("a", 10_420));
        times.record(2, &received("a", 10_910));
        // Block b: mined by n2, reached n0 only: not timed.
        times.record(2, &found("b", 20_000));
        times.record(0, &received("b", 20_300));
        // Block c: mined by n1, took 2.5 ms to reach the last node.
        times.record(1, &found("c", 30_000));
        times.record(0, &received("c", 30_200));
        times.record(2, &received("c", 32_500));
        // A second copy of c later (a resync) does not move its time.
        times.record(2, &received("c", 60_000));
        let p = times.percentiles(3, &clean).expect("timed");
        assert_eq!(p.samples, 2);
        assert_eq!(p.p50_us, 910.0);
        assert_eq!(p.p99_us, 2_500.0);
        assert_eq!(show_micros(p.p50_us), "910 µs");
        assert_eq!(show_micros(p.p99_us), "2.50 ms");
    }

    #[test]
    fn blocks_outside_the_clean_stretches_are_not_timed_and_say_why() {
        let mut times = BlockTimes::default();
        times.record(0, &found("a", 10_000));
        times.record(1, &received("a", 50_000));
        // The block left before the stretch began, or arrived after it ended.
        let why = times
            .percentiles(2, &[(20_000, 90_000)])
            .expect_err("before");
        assert_eq!(why, NoPropagation::NoCleanTrip);
        assert!(times.percentiles(2, &[(0, 40_000)]).is_err());
        assert_eq!(
            times.percentiles(2, &[(0, 50_000)]).expect("inside").p50_us,
            40_000.0
        );
        let why = times.percentiles(1, &[(0, 50_000)]).expect_err("alone");
        assert_eq!(why, NoPropagation::OneNode);
        let why = BlockTimes::default()
            .percentiles(3, &[(0, 50_000)])
            .expect_err("none mined");
        assert_eq!(why, NoPropagation::NothingMined);
        assert!(why.to_string().contains("mined"), "{why}");
    }

    #[test]
    fn logs_without_microseconds_fall_back_to_milliseconds() {
        let mut times = BlockTimes::default();
        let mut old = found("a", 0);
        old.time_ms = 7;
        times.record(0, &old);
        let mut late = received("a", 0);
        late.time_ms = 9;
        times.record(1, &late);
        let p = times.percentiles(2, &[(0, u64::MAX)]).expect("timed");
        assert_eq!(p.p50_us, 2_000.0);
    }
}
