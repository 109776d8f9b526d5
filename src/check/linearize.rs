//! Linearizability of a whole history: partition it by key (P-compositionality), run the
//! partitions' searches interleaved on worker threads in slices of steps, stop every search at
//! the first partition proven non-linearizable or when the caller's stop flag is set (its time
//! budget; this module reads no clock), and explain a violation: the longest linearizable
//! prefix and the operations that cannot come next.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::CheckError;
use super::history::History;
use super::model::Model;
use super::search::{Progress, Search};

/// Steps a worker runs on one partition before giving the next one a turn.
const SLICE: u64 = 1 << 15;

/// How to run a check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions<'a> {
    /// Worker threads (partitions run in parallel; one partition uses one thread).
    pub threads: usize,
    /// Set by the caller to stop early (a time budget); the verdict is then `Unknown`.
    pub stop: Option<&'a AtomicBool>,
}

impl Default for CheckOptions<'_> {
    fn default() -> Self {
        CheckOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stop: None,
        }
    }
}

/// The answer for a history or a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations, each taking effect between its invocation and completion,
    /// satisfies the model.
    Linearizable,
    /// The search proved that no such order exists.
    NotLinearizable,
    /// Stopped (time budget, or another partition was refuted first) before an answer.
    Unknown,
}

impl Verdict {
    /// `linearizable`, `not linearizable` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// An operation that could come next after the longest prefix, and why it cannot.
#[derive(Debug, Clone)]
pub struct Stuck {
    /// Index into `History::operations`.
    pub operation: usize,
    /// True when the model refuses it in the prefix's state; false when it is legal there but
    /// every continuation after it fails.
    pub refused: bool,
}

/// Why a partition is not linearizable.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Length of the longest linearizable prefix (`PartitionReport::linearization`).
    pub prefix: usize,
    /// The model state after that prefix.
    pub state: String,
    /// The operations that could be placed next (no pending return precedes them).
    pub stuck: Vec<Stuck>,
}

/// One key's result.
#[derive(Debug, Clone)]
pub struct PartitionReport {
    /// The key the partition holds; `None` for a single register.
    pub key: Option<String>,
    /// Indices into `History::operations`, in invocation order.
    pub operations: Vec<usize>,
    /// Whether the partition's operations are linearizable.
    pub verdict: Verdict,
    /// A full linearization when linearizable, else the longest partial one found.
    pub linearization: Vec<usize>,
    /// The model state after each operation of `linearization`.
    pub states: Vec<String>,
    /// Why the partition is not linearizable; `None` unless the verdict is `NotLinearizable`.
    pub explanation: Option<Explanation>,
    /// Search effort: (linearized set, state) pairs explored.
    pub explored: usize,
}

/// A history's result.
#[derive(Debug, Clone)]
pub struct LinearizabilityReport {
    /// `NotLinearizable` if any partition is, else `Unknown` if any partition stopped, else
    /// `Linearizable`.
    pub verdict: Verdict,
    /// One result per key, in key order (the keyless register, if any, first).
    pub partitions: Vec<PartitionReport>,
}

impl LinearizabilityReport {
    /// One sentence per refuted key: how far a linearization got and which operations could
    /// not come next (for summaries; `hashgrad check` prints the long form).
    pub fn explain(&self, history: &History) -> Vec<String> {
        self.partitions
            .iter()
            .filter(|p| p.verdict == Verdict::NotLinearizable)
            .filter_map(|p| {
                let e = p.explanation.as_ref()?;
                let key = p
                    .key
                    .as_ref()
                    .map_or_else(|| "the object".to_string(), |k| format!("key {k:?}"));
                let stuck: Vec<String> = e
                    .stuck
                    .iter()
                    .map(|s| {
                        let op = &history.operations[s.operation];
                        format!("{} by client {}", op.describe(), op.client)
                    })
                    .collect();
                Some(format!(
                    "{key}: {} of {} operations linearize (state {}), then none of [{}] can come next",
                    e.prefix,
                    p.operations.len(),
                    e.state,
                    stuck.join("; ")
                ))
            })
            .collect()
    }
}

/// Checks `history` against `model`.
pub fn check<M: Model>(
    history: &History,
    model: &M,
    options: &CheckOptions<'_>,
) -> Result<LinearizabilityReport, CheckError> {
    if let Some(op) = history
        .operations
        .iter()
        .find(|op| !model.supports(&op.call))
    {
        return Err(CheckError::UnsupportedCall {
            line: op.line,
            model: model.name(),
            call: op.call.name(),
        });
    }
    let mut by_key: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.operations.iter().enumerate() {
        by_key.entry(op.key.as_deref()).or_default().push(i);
    }
    let partitions: Vec<(Option<String>, Vec<usize>)> = by_key
        .into_iter()
        .map(|(k, v)| (k.map(str::to_string), v))
        .collect();
    let searches: Vec<Mutex<Search<'_, M>>> = partitions
        .iter()
        .map(|(_, ids)| {
            Mutex::new(Search::new(
                model,
                ids.iter().map(|&i| &history.operations[i]).collect(),
            ))
        })
        .collect();
    let mut order: Vec<usize> = (0..searches.len()).collect();
    order.sort_by_key(|&i| partitions[i].1.len());
    let queue = Mutex::new(VecDeque::from(order));
    let refuted = AtomicBool::new(false);
    let stopped = || {
        refuted.load(Ordering::Relaxed) || options.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    };
    let work = || {
        loop {
            if stopped() {
                break;
            }
            let Some(i) = lock(&queue).pop_front() else {
                break;
            };
            match lock(&searches[i]).run(SLICE) {
                Progress::Running => lock(&queue).push_back(i),
                Progress::Refuted => refuted.store(true, Ordering::Relaxed),
                Progress::Linearizable => {}
            }
        }
    };
    let threads = options.threads.clamp(1, searches.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }
    let mut reports = Vec::with_capacity(partitions.len());
    for ((key, ids), search) in partitions.into_iter().zip(searches) {
        let mut search = search.into_inner().unwrap_or_else(|e| e.into_inner());
        reports.push(report(key, ids, &mut search));
    }
    let verdict = if reports
        .iter()
        .any(|p| p.verdict == Verdict::NotLinearizable)
    {
        Verdict::NotLinearizable
    } else if reports.iter().any(|p| p.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Ok(LinearizabilityReport {
        verdict,
        partitions: reports,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn report<M: Model>(
    key: Option<String>,
    ids: Vec<usize>,
    search: &mut Search<'_, M>,
) -> PartitionReport {
    let verdict = match search.run(0) {
        Progress::Linearizable => Verdict::Linearizable,
        Progress::Refuted => Verdict::NotLinearizable,
        Progress::Running => Verdict::Unknown,
    };
    let longest = search.longest();
    let after = search.replay(&longest);
    let states: Vec<String> = after
        .iter()
        .map(|s| s.map_or_else(|| "?".to_string(), |s| search.describe_state(s)))
        .collect();
    let explanation = (verdict == Verdict::NotLinearizable).then(|| {
        let state = after.last().copied().flatten().unwrap_or(0);
        let mut placed = vec![false; ids.len()];
        for &op in &longest {
            placed[op as usize] = true;
        }
        let rest: Vec<u32> = (0..ids.len() as u32)
            .filter(|&op| !placed[op as usize])
            .collect();
        let first_return = rest
            .iter()
            .map(|&op| search.ops[op as usize].completed)
            .min()
            .unwrap_or(u64::MAX);
        let candidates: Vec<u32> = rest
            .iter()
            .copied()
            .filter(|&op| search.ops[op as usize].invoked <= first_return)
            .collect();
        let stuck = candidates
            .into_iter()
            .map(|op| Stuck {
                operation: ids[op as usize],
                refused: search.try_step(state, op).is_none(),
            })
            .collect();
        Explanation {
            prefix: longest.len(),
            state: search.describe_state(state),
            stuck,
        }
    });
    PartitionReport {
        key,
        linearization: longest.iter().map(|&op| ids[op as usize]).collect(),
        operations: ids,
        verdict,
        states,
        explanation,
        explored: search.explored(),
    }
}
