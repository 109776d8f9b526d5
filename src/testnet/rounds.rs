//! What the testnet checks of training: every (round, params hash) a node reported as
//! committed, so a committed round that changed or vanished shows as lost; the rate rounds
//! committed at; and each node's `GET /receipts`, checked against that record (every round
//! once, gap-free, the same params hash). Pure: takes the views and receipt lists the
//! orchestrator fetched, with their times.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use super::status::{ReceiptEntry, TrainingView};

/// Every committed round any node reported, with its params hash.
#[derive(Debug, Default)]
pub struct RoundLog {
    hashes: BTreeMap<u64, String>,
    /// Rounds reported with two different params hashes.
    conflicts: BTreeSet<u64>,
    /// The first poll that saw a committed round, and the latest that saw a new one.
    first: Option<(Duration, u64)>,
    last: Option<(Duration, u64)>,
}

impl RoundLog {
    /// Records one node's training view polled at `at`.
    pub fn observe(&mut self, at: Duration, view: &TrainingView) {
        let (Some(round), Some(hash)) = (view.round, view.params_hash.as_ref()) else {
            return;
        };
        if round == 0 || hash.is_empty() {
            return;
        }
        match self.hashes.get(&round) {
            Some(known) if known != hash => {
                self.conflicts.insert(round);
            }
            Some(_) => {}
            None => {
                self.hashes.insert(round, hash.clone());
            }
        }
        if self.first.is_none() {
            self.first = Some((at, round));
        }
        if self.last.is_none_or(|(_, last)| round > last) {
            self.last = Some((at, round));
        }
    }

    /// The highest round any node reported committed.
    pub fn max_round(&self) -> u64 {
        self.last.map_or(0, |(_, round)| round)
    }

    /// The params hash reported for `round`.
    pub fn hash(&self, round: u64) -> Option<&str> {
        self.hashes.get(&round).map(String::as_str)
    }

    /// Rounds reported with two different params hashes.
    pub fn conflicts(&self) -> usize {
        self.conflicts.len()
    }

    /// Rounds committed per second between the first poll that saw a round and the last that
    /// saw a new one (`None` before two distinct rounds were seen).
    pub fn rate(&self) -> Option<f64> {
        let ((t0, r0), (t1, r1)) = (self.first?, self.last?);
        let secs = t1.checked_sub(t0)?.as_secs_f64();
        (r1 > r0 && secs > 0.0).then(|| (r1 - r0) as f64 / secs)
    }
}

/// What the nodes' chains hold of the committed rounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReceiptReport {
    /// Rounds 1..=`rounds` whose receipt is on every node's best chain.
    pub on_chain: u64,
    /// The rounds looked for: every round committed when the run met its goals.
    pub rounds: u64,
    /// Receipts listed twice on one chain, summed over nodes.
    pub duplicates: u64,
    /// Receipts whose params hash differs from the one the nodes reported, summed over nodes.
    pub mismatched: u64,
    /// Whether every node's receipts are rounds 1..=k with no gap.
    pub gap_free: bool,
    /// Whether every node lists the same receipts (round, params hash, block).
    pub identical: bool,
}

/// Checks each node's receipt list against `log` for rounds 1..=`rounds`.
pub fn check_receipts(lists: &[Vec<ReceiptEntry>], rounds: u64, log: &RoundLog) -> ReceiptReport {
    let mut report = ReceiptReport {
        rounds,
        on_chain: rounds,
        gap_free: true,
        identical: lists.windows(2).all(|w| w[0] == w[1]),
        ..ReceiptReport::default()
    };
    if lists.is_empty() {
        report.on_chain = 0;
        return report;
    }
    for list in lists {
        let mut seen = BTreeSet::new();
        for receipt in list {
            if !seen.insert(receipt.round) {
                report.duplicates += 1;
            }
            if log
                .hash(receipt.round)
                .is_some_and(|hash| hash != receipt.params_hash)
            {
                report.mismatched += 1;
            }
        }
        let max = seen.last().copied().unwrap_or(0);
        report.gap_free &= seen.len() as u64 == max && seen.first().is_none_or(|&r| r == 1);
        let present = (1..=rounds).filter(|r| seen.contains(r)).count() as u64;
        report.on_chain = report.on_chain.min(present);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(round: u64, hash: &str) -> TrainingView {
        TrainingView {
            round: Some(round),
            params_hash: Some(hash.into()),
            ..TrainingView::default()
        }
    }

    fn receipt(round: u64, hash: &str) -> ReceiptEntry {
        ReceiptEntry {
            round,
            block: format!("b{round}"),
            height: round,
            params_hash: hash.into(),
            contributors: Vec::new(),
        }
    }

    #[test]
    fn a_round_reported_with_two_hashes_is_a_conflict() {
        let mut log = RoundLog::default();
        let s = Duration::from_secs;
        log.observe(s(1), &view(0, "genesis"));
        log.observe(s(1), &view(2, "aa"));
        log.observe(s(2), &view(2, "aa"));
        log.observe(s(3), &view(12, "bb"));
        assert_eq!(log.conflicts(), 0);
        assert_eq!(log.max_round(), 12);
        assert_eq!(log.rate(), Some(5.0));
        log.observe(s(4), &view(2, "cc"));
        assert_eq!(log.conflicts(), 1);
        assert_eq!(log.max_round(), 12);
    }

    #[test]
    fn receipts_are_checked_for_gaps_duplicates_and_hashes() {
        let mut log = RoundLog::default();
        for (round, hash) in [(1, "a"), (2, "b"), (3, "c")] {
            log.observe(Duration::ZERO, &view(round, hash));
        }
        let full = vec![receipt(1, "a"), receipt(2, "b"), receipt(3, "c")];
        let report = check_receipts(&[full.clone(), full.clone()], 3, &log);
        assert_eq!((report.on_chain, report.rounds), (3, 3));
        assert!(report.gap_free && report.identical);
        assert_eq!((report.duplicates, report.mismatched), (0, 0));

        // One chain lacks round 2 (a gap) and lists round 3 twice with a wrong hash.
        let bad = vec![receipt(1, "a"), receipt(3, "c"), receipt(3, "x")];
        let report = check_receipts(&[full.clone(), bad], 3, &log);
        assert_eq!(report.on_chain, 2);
        assert!(!report.gap_free && !report.identical);
        assert_eq!((report.duplicates, report.mismatched), (1, 1));

        // Receipts lag the rounds: gap-free, but not all on chain yet.
        let report = check_receipts(&[full[..2].to_vec()], 3, &log);
        assert_eq!(report.on_chain, 2);
        assert!(report.gap_free);
    }
}
