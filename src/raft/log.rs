//! The in-memory Raft log: a snapshot point followed by entries, the commit and apply cursors,
//! and which suffix has not been handed to storage yet. No I/O, no protocol decisions.

use super::types::{Entry, Snapshot};

/// Log entries after a snapshot, with commit/apply cursors.
#[derive(Debug, Clone)]
pub(crate) struct RaftLog {
    /// The latest snapshot (its data is kept to send to lagging followers).
    pub snapshot: Snapshot,
    /// Entries `snapshot.meta.index + 1 ..= last_index()`.
    pub entries: Vec<Entry>,
    /// Highest index known committed.
    pub committed: u64,
    /// Highest index handed to the application.
    pub applied: u64,
    /// Lowest index not yet handed to storage (`last_index() + 1` when all are).
    pub unstable_from: u64,
    /// Lowest index changed since the simulator last looked (test instrumentation).
    pub changed_from: Option<u64>,
}

impl RaftLog {
    pub(crate) fn new(snapshot: Snapshot, entries: Vec<Entry>, committed: u64) -> Self {
        let applied = snapshot.meta.index;
        let mut log = RaftLog {
            snapshot,
            entries,
            committed,
            applied,
            unstable_from: 0,
            changed_from: None,
        };
        log.unstable_from = log.last_index() + 1;
        log.changed_from = Some(log.first_index());
        log
    }

    pub(crate) fn snapshot_index(&self) -> u64 {
        self.snapshot.meta.index
    }

    /// Index of the first entry held in memory.
    pub(crate) fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot.meta.term, |e| e.term)
    }

    /// Term of the entry at `index`: `None` if compacted away (other than the snapshot point) or
    /// beyond the end.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot_index() {
            return Some(self.snapshot.meta.term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub(crate) fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.first_index())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Entries `from ..= to`, at most `max` of them (clamped to what is held).
    pub(crate) fn slice(&self, from: u64, to: u64, max: usize) -> Vec<Entry> {
        let start = from.max(self.first_index());
        if start > to {
            return Vec::new();
        }
        let lo = (start - self.first_index()) as usize;
        let hi = ((to.min(self.last_index()) + 1 - self.first_index()) as usize)
            .min(lo.saturating_add(max));
        self.entries
            .get(lo..hi)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default()
    }

    /// True when a log ending at `(index, term)` is at least as up to date as this one (§5.4.1).
    pub(crate) fn is_up_to_date(&self, index: u64, term: u64) -> bool {
        term > self.last_term() || (term == self.last_term() && index >= self.last_index())
    }

    /// Appends one entry at the end (leader path).
    pub(crate) fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Removes every entry from `index` on (follower path, only from the first conflict).
    pub(crate) fn truncate_from(&mut self, index: u64) {
        if index < self.first_index() {
            return;
        }
        let keep = (index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.unstable_from = self.unstable_from.min(index);
        self.mark_changed(index);
    }

    pub(crate) fn mark_changed(&mut self, index: u64) {
        self.changed_from = Some(self.changed_from.map_or(index, |c| c.min(index)));
    }

    /// Replaces everything with a snapshot received from the leader.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        self.entries.clear();
        self.snapshot = snapshot;
        self.committed = self.committed.max(index);
        self.applied = index;
        self.unstable_from = index + 1;
        self.mark_changed(index + 1);
    }

    /// Drops entries up to `snapshot`'s index (local compaction after the state machine took a
    /// snapshot).
    pub(crate) fn compact(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        let drop = (index.saturating_sub(self.snapshot_index()) as usize).min(self.entries.len());
        self.entries.drain(..drop);
        self.snapshot = snapshot;
    }

    /// Entries not yet handed to storage; marks them handed.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from;
        let out = self.slice(from, self.last_index(), usize::MAX);
        self.unstable_from = self.last_index() + 1;
        out
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }
}
