//! Which messages the space-time diagram draws: every send and receive is counted, and a
//! deterministic sample of message ids (by a hash of the id, halving the kept share whenever
//! the budget overflows) is kept per message class, so a long run stays bounded in memory and
//! in the page while rare classes (blocks) are not crowded out by frequent ones (heartbeats).

use std::collections::HashMap;

use serde::Serialize;

/// What a message is about, by its type name; each class has its own colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    /// Raft traffic: votes, appends, heartbeats, snapshots, read-index and forwarded proposals.
    Raft,
    /// Chain traffic: blocks, headers, tips, inventories, locators and sync.
    Chain,
    /// Training traffic: gradients, rounds, announcements, blobs and parameters.
    Training,
    /// Any message type no other class matches.
    Other,
}

impl MessageClass {
    /// Every class, in the order the page lists them.
    pub const ALL: [MessageClass; 4] = [
        MessageClass::Raft,
        MessageClass::Chain,
        MessageClass::Training,
        MessageClass::Other,
    ];

    /// The class of a message type name as nodes log it (`raft_append`, `block`, `gradient`…).
    pub fn of(msg: &str) -> MessageClass {
        let msg = msg.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| msg.contains(w));
        if has(&[
            "raft",
            "vote",
            "append",
            "heartbeat",
            "snapshot",
            "read_index",
            "readindex",
            "forward",
        ]) {
            MessageClass::Raft
        } else if has(&[
            "block",
            "header",
            "chain",
            "tip",
            "inv",
            "locator",
            "sync",
            "not_found",
        ]) {
            MessageClass::Chain
        } else if has(&[
            "grad", "round", "announce", "blob", "param", "train", "reduce",
        ]) {
            MessageClass::Training
        } else {
            MessageClass::Other
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Distinct message type names kept; later ones are shown as `other`.
const MAX_TYPES: usize = 64;

/// One drawn message: sender lane and send time, receiver lane and receive time (ms since
/// the report's origin), class and type name index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Drawn {
    pub from: usize,
    pub sent_ms: u64,
    pub to: usize,
    pub received_ms: u64,
    pub class: MessageClass,
    pub kind: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Halves {
    send: Option<(usize, u64, usize)>,
    receive: Option<(usize, u64)>,
}

#[derive(Debug, Default)]
struct ClassSample {
    /// Ids kept: those whose hash has its low `level` bits zero.
    level: u32,
    entries: HashMap<String, Halves>,
    sends: u64,
    receives: u64,
}

impl ClassSample {
    fn keeps(&self, id: &str) -> bool {
        let mask = (1u64 << self.level.min(63)) - 1;
        fnv1a(id) & mask == 0
    }

    fn halve_until(&mut self, most: usize, count: impl Fn(&HashMap<String, Halves>) -> usize) {
        while count(&self.entries) > most && self.level < 63 {
            self.level += 1;
            let mask = (1u64 << self.level) - 1;
            self.entries.retain(|id, _| fnv1a(id) & mask == 0);
        }
    }
}

/// Counts every message and keeps a bounded sample to draw.
#[derive(Debug)]
pub(super) struct MessageSample {
    budget: usize,
    classes: [ClassSample; 4],
    types: Vec<String>,
}

/// What the diagram draws and what it left out.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SampledMessages {
    pub drawn: Vec<Drawn>,
    pub types: Vec<String>,
    /// Per class: (sends logged, receives logged, drawn).
    pub counts: Vec<(MessageClass, u64, u64, usize)>,
}

impl MessageSample {
    /// Keeps at most `budget` messages in all (a quarter per class).
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget: budget.max(4),
            classes: Default::default(),
            types: Vec::new(),
        }
    }

    fn per_class(&self) -> usize {
        self.budget / MessageClass::ALL.len()
    }

    fn kind(&mut self, msg: &str) -> usize {
        if let Some(k) = self.types.iter().position(|t| t == msg) {
            return k;
        }
        if self.types.len() < MAX_TYPES {
            self.types.push(msg.to_owned());
            self.types.len() - 1
        } else {
            if let Some(k) = self.types.iter().position(|t| t == "other") {
                return k;
            }
            // The last slot becomes `other` for every further name.
            let last = self.types.len() - 1;
            self.types[last] = "other".into();
            last
        }
    }

    /// A send of message `id` of type `msg` by the node on `lane` at `at_ms`.
    pub(super) fn sent(&mut self, lane: usize, at_ms: u64, msg: &str, id: &str) {
        let class = MessageClass::of(msg);
        let kind = self.kind(msg);
        let most = self.per_class() * 2;
        let sample = &mut self.classes[class.index()];
        sample.sends += 1;
        if sample.keeps(id) {
            sample.entries.entry(id.to_owned()).or_default().send = Some((lane, at_ms, kind));
            sample.halve_until(most, HashMap::len);
        }
    }

    /// A receive of message `id` of type `msg` by the node on `lane` at `at_ms`.
    pub(super) fn received(&mut self, lane: usize, at_ms: u64, msg: &str, id: &str) {
        let class = MessageClass::of(msg);
        let most = self.per_class() * 2;
        let sample = &mut self.classes[class.index()];
        sample.receives += 1;
        if sample.keeps(id) {
            let halves = sample.entries.entry(id.to_owned()).or_default();
            halves.receive.get_or_insert((lane, at_ms));
            sample.halve_until(most, HashMap::len);
        }
    }

    /// The matched messages of the sample (at most the budget), in send order; times become
    /// milliseconds since `origin_ms` (earlier times count as 0).
    pub(super) fn finish(mut self, origin_ms: u64) -> SampledMessages {
        let most = self.per_class();
        let mut drawn = Vec::new();
        let mut counts = Vec::new();
        for class in MessageClass::ALL {
            let sample = &mut self.classes[class.index()];
            let matched = |entries: &HashMap<String, Halves>| {
                entries
                    .values()
                    .filter(|h| h.send.is_some() && h.receive.is_some())
                    .count()
            };
            sample.halve_until(most, matched);
            let before = drawn.len();
            for halves in sample.entries.values() {
                if let (Some((from, sent, kind)), Some((to, received))) =
                    (halves.send, halves.receive)
                {
                    drawn.push(Drawn {
                        from,
                        sent_ms: sent.saturating_sub(origin_ms),
                        to,
                        received_ms: received.saturating_sub(origin_ms),
                        class,
                        kind,
                    });
                }
            }
            counts.push((class, sample.sends, sample.receives, drawn.len() - before));
        }
        drawn.sort_by_key(|d| (d.sent_ms, d.from, d.to, d.received_ms));
        SampledMessages {
            drawn,
            types: self.types,
            counts,
        }
    }
}

/// FNV-1a, 64-bit: a stable hash of message ids, so the sample is the same on every run.
fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_fall_into_classes() {
        assert_eq!(MessageClass::of("raft_append"), MessageClass::Raft);
        assert_eq!(MessageClass::of("RequestVote"), MessageClass::Raft);
        assert_eq!(MessageClass::of("block"), MessageClass::Chain);
        assert_eq!(MessageClass::of("headers"), MessageClass::Chain);
        assert_eq!(MessageClass::of("gradient"), MessageClass::Training);
        assert_eq!(MessageClass::of("round_announce"), MessageClass::Training);
        assert_eq!(MessageClass::of("hello"), MessageClass::Other);
    }

    #[test]
    fn a_small_log_is_drawn_whole_and_matched_by_id() {
        let mut sample = MessageSample::new(100);
        sample.sent(0, 1_010, "block", "n0:1");
        sample.received(1, 1_015, "block", "n0:1");
        sample.sent(1, 1_020, "raft_append", "n1:2");
        sample.received(0, 1_022, "raft_append", "n1:2");
        sample.sent(1, 1_030, "raft_append", "n1:3"); // lost
        let out = sample.finish(1_000);
        assert_eq!(out.drawn.len(), 2);
        assert_eq!(
            out.drawn[0],
            Drawn {
                from: 0,
                sent_ms: 10,
                to: 1,
                received_ms: 15,
                class: MessageClass::Chain,
                kind: 0
            }
        );
        assert_eq!(out.drawn[1].class, MessageClass::Raft);
        let raft = out.counts.iter().find(|c| c.0 == MessageClass::Raft);
        assert_eq!(raft, Some(&(MessageClass::Raft, 2, 1, 1)));
    }

    #[test]
    fn a_big_log_stays_within_budget_per_class_and_keeps_rare_classes() {
        let mut sample = MessageSample::new(400);
        for i in 0..50_000u64 {
            let id = format!("n0:{i}");
            sample.sent(0, i, "raft_heartbeat", &id);
            sample.received(1, i + 1, "raft_heartbeat", &id);
        }
        for i in 0..30u64 {
            let id = format!("n2:{i}");
            sample.sent(2, i * 100, "block", &id);
            sample.received(0, i * 100 + 3, "block", &id);
        }
        let out = sample.finish(0);
        let raft = out
            .drawn
            .iter()
            .filter(|d| d.class == MessageClass::Raft)
            .count();
        let chain = out
            .drawn
            .iter()
            .filter(|d| d.class == MessageClass::Chain)
            .count();
        assert!((25..=100).contains(&raft), "{raft} heartbeats drawn");
        assert_eq!(chain, 30, "every block message stays");
        assert!(out.drawn.windows(2).all(|w| w[0].sent_ms <= w[1].sent_ms));
    }

    #[test]
    fn type_names_are_bounded() {
        let mut sample = MessageSample::new(1_000);
        for i in 0..500 {
            let name = format!("type{i}");
            sample.sent(0, i, &name, &format!("n0:{i}"));
            sample.received(1, i, &name, &format!("n0:{i}"));
        }
        let out = sample.finish(0);
        assert_eq!(out.types.len(), MAX_TYPES);
        assert_eq!(out.types.last().map(String::as_str), Some("other"));
        assert!(out.drawn.iter().all(|d| d.kind < MAX_TYPES));
    }
}
