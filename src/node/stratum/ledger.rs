//! The Stratum server's per-worker tally: accepted, rejected by reason, stale, blocks found
//! and an estimated hash rate from the difficulty of recent credited shares. Feeds the
//! Prometheus metrics as shares come and builds the `StratumView` for `/status`.
//!
//! Bounded: at most `MAX_WORKERS` names are kept (later names are tallied under `OTHERS`),
//! and each keeps only the shares of the last `RATE_WINDOW`. Must not judge a share.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::api::Metrics;
use crate::stratum::difficulty::HASHES_PER_DIFF1;
use crate::stratum::session::{RejectReason, ShareVerdict};
use crate::views::WorkerView;

/// Worker names tallied one by one.
pub(super) const MAX_WORKERS: usize = 1024;
/// The name later workers are tallied under.
pub(super) const OTHERS: &str = "(others)";
/// The span of credited shares the hash rate is estimated from.
const RATE_WINDOW: Duration = Duration::from_secs(300);
/// Credited shares kept per worker for the estimate.
const RATE_SHARES: usize = 4096;

#[derive(Debug)]
struct Tally {
    first_seen: Instant,
    accepted: u64,
    rejected: BTreeMap<RejectReason, u64>,
    stale: u64,
    blocks_found: u64,
    recent: VecDeque<(Instant, f64)>,
}

impl Tally {
    fn new(now: Instant) -> Tally {
        Tally {
            first_seen: now,
            accepted: 0,
            rejected: BTreeMap::new(),
            stale: 0,
            blocks_found: 0,
            recent: VecDeque::new(),
        }
    }

    /// Hashes per second the credited shares of the window stand for.
    fn hash_rate(&mut self, now: Instant) -> f64 {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
        let span = now
            .saturating_duration_since(self.first_seen)
            .min(RATE_WINDOW)
            .as_secs_f64()
            .max(1.0);
        let work: f64 = self.recent.iter().map(|(_, difficulty)| difficulty).sum();
        work * HASHES_PER_DIFF1 / span
    }
}

/// Every worker's tally.
#[derive(Debug)]
pub(super) struct Ledger {
    metrics: Metrics,
    workers: BTreeMap<String, Tally>,
}

fn labels(worker: &str) -> Vec<(String, String)> {
    vec![("worker".into(), worker.to_string())]
}

impl Ledger {
    pub(super) fn new(metrics: Metrics) -> Ledger {
        Ledger {
            metrics,
            workers: BTreeMap::new(),
        }
    }

    fn tally(&mut self, worker: &str, now: Instant) -> (&mut Tally, String) {
        let name = if self.workers.contains_key(worker) || self.workers.len() < MAX_WORKERS {
            worker.to_string()
        } else {
            OTHERS.to_string()
        };
        let tally = self
            .workers
            .entry(name.clone())
            .or_insert_with(|| Tally::new(now));
        (tally, name)
    }

    /// Counts one share's verdict.
    pub(super) fn share(
        &mut self,
        worker: &str,
        verdict: ShareVerdict,
        difficulty: f64,
        now: Instant,
    ) {
        let (tally, name) = self.tally(worker, now);
        let label = match verdict {
            ShareVerdict::Accepted => {
                tally.accepted += 1;
                if tally.recent.len() >= RATE_SHARES {
                    tally.recent.pop_front();
                }
                tally.recent.push_back((now, difficulty));
                "accepted"
            }
            ShareVerdict::Stale => {
                tally.stale += 1;
                "stale"
            }
            ShareVerdict::Rejected(reason) => {
                *tally.rejected.entry(reason).or_default() += 1;
                reason.name()
            }
        };
        let mut labels = labels(&name);
        labels.push(("verdict".into(), label.into()));
        self.metrics.stratum_shares.get_or_create(&labels).inc();
    }

    /// Counts a block the chain accepted from this worker's share.
    pub(super) fn block_found(&mut self, worker: &str, now: Instant) {
        let (tally, name) = self.tally(worker, now);
        tally.blocks_found += 1;
        self.metrics
            .stratum_blocks_found
            .get_or_create(&labels(&name))
            .inc();
    }

    /// Every worker's view, refreshing the hash-rate gauges.
    pub(super) fn views(&mut self, now: Instant) -> Vec<WorkerView> {
        let mut out = Vec::with_capacity(self.workers.len());
        for (name, tally) in &mut self.workers {
            let hash_rate = tally.hash_rate(now);
            self.metrics
                .stratum_hash_rate
                .get_or_create(&labels(name))
                .set(hash_rate);
            out.push(WorkerView {
                name: name.clone(),
                accepted: tally.accepted,
                rejected: tally.rejected.iter().map(|(r, n)| (*r, *n)).collect(),
                stale: tally.stale,
                hash_rate,
                blocks_found: tally.blocks_found,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_tallied_per_worker_and_bounded_in_names() {
        let start = Instant::now();
        let mut ledger = Ledger::new(Metrics::new());
        for _ in 0..30 {
            ledger.share("a", ShareVerdict::Accepted, 2.0, start);
        }
        ledger.share("a", ShareVerdict::Stale, 2.0, start);
        ledger.share(
            "a",
            ShareVerdict::Rejected(RejectReason::Duplicate),
            0.0,
            start,
        );
        ledger.block_found("a", start);
        for i in 0..MAX_WORKERS + 5 {
            ledger.share(&format!("w{i}"), ShareVerdict::Stale, 1.0, start);
        }
        let views = ledger.views(start + Duration::from_secs(60));
        assert_eq!(views.len(), MAX_WORKERS + 1, "the rest under {OTHERS}");
        let a = views.iter().find(|v| v.name == "a").expect("a");
        assert_eq!((a.accepted, a.stale, a.blocks_found), (30, 1, 1));
        assert_eq!(a.rejected, vec![(RejectReason::Duplicate, 1)]);
        // 30 shares of difficulty 2 in 60 s: 60 · 2^32 / 60 hashes per second.
        assert!(
            (a.hash_rate / HASHES_PER_DIFF1 - 1.0).abs() < 1e-9,
            "{}",
            a.hash_rate
        );
        let text = ledger.metrics.encode();
        assert!(
            text.contains("hashgrad_stratum_shares_total{worker=\"a\",verdict=\"accepted\"} 30"),
            "{text}"
        );
        assert!(text.contains("hashgrad_stratum_blocks_found_total{worker=\"a\"} 1"));
    }
}
