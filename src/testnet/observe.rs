//! What the polls saw: every node's last `/status` view, the table's rows, the leader and its
//! changes, when every node was first up, and the stretches of wall-clock time during which
//! every node was up and no partition cut a link (block propagation is timed only inside
//! them, `propagation.rs`). Pure: takes the views the cluster fetched, with their times.

use std::time::Duration;

use super::report::{NodeState, Row};
use super::status::NodeView;

/// How long after every node is up a training node has surely reported `training`.
const TRAINING_REPORTED_WITHIN: Duration = Duration::from_secs(2);

/// The polled views and what follows from them.
pub(super) struct Observations {
    views: Vec<Option<NodeView>>,
    /// The highest-term leader last seen, and how often it changed.
    leader: Option<String>,
    leader_changes: u64,
    /// Since `t0`, when every node was first up: a node reports `training` a tick after it
    /// starts.
    all_up_since: Option<Duration>,
    checked_training: bool,
    /// Wall-clock stretches (µs since the Unix epoch, first and last clean poll) with every
    /// node up and no partition; the last may still be growing.
    clean: Vec<(u64, u64)>,
    /// Whether the last poll saw every node up with no partition.
    last_clean: bool,
}

impl Observations {
    /// No views yet for `nodes` nodes.
    pub(super) fn new(nodes: usize) -> Observations {
        Observations {
            views: vec![None; nodes],
            leader: None,
            leader_changes: 0,
            all_up_since: None,
            checked_training: false,
            clean: Vec::new(),
            last_clean: false,
        }
    }

    /// Every node's last view (`None`: down, starting or silent at the last poll).
    pub(super) fn views(&self) -> &[Option<NodeView>] {
        &self.views
    }

    /// The views of the nodes that answered the last poll.
    pub(super) fn answered(&self) -> Vec<&NodeView> {
        self.views.iter().flatten().collect()
    }

    /// Replaces every view (the summary keeps the views that met the goals when a later poll
    /// caught the nodes between tips).
    pub(super) fn restore(&mut self, views: Vec<Option<NodeView>>) {
        self.views = views;
    }

    /// Takes one poll's answers; a node asked that did not answer loses its view.
    pub(super) fn record(&mut self, answers: Vec<(usize, Option<NodeView>)>) {
        for (index, view) in answers {
            self.views[index] = view;
        }
    }

    /// Forgets a killed node's view.
    pub(super) fn forget(&mut self, index: usize) {
        self.views[index] = None;
    }

    /// One row per node for the table; `paced` when the nodes' miners are paced.
    pub(super) fn rows(&self, states: &[NodeState], paced: bool) -> Vec<Row> {
        states
            .iter()
            .enumerate()
            .map(|(index, &state)| Row {
                index,
                state,
                view: self.views[index].clone(),
                paced,
            })
            .collect()
    }

    /// After a poll: whether every node is up and answered.
    pub(super) fn all_up(&self, states: &[NodeState]) -> bool {
        states.iter().all(|&s| s == NodeState::Up) && self.views.iter().all(Option::is_some)
    }

    /// Notes a poll at `elapsed` (`unix_us` on the wall clock): extends or closes the clean
    /// stretch, remembers when every node was first up, and tracks the leader.
    pub(super) fn note_poll(
        &mut self,
        elapsed: Duration,
        unix_us: u64,
        all_up: bool,
        partitioned: bool,
    ) {
        let clean = all_up && !partitioned;
        match (clean, self.last_clean, self.clean.last_mut()) {
            (true, true, Some(stretch)) => stretch.1 = unix_us,
            (true, _, _) => self.clean.push((unix_us, unix_us)),
            (false, _, _) => {}
        }
        self.last_clean = clean;
        if all_up {
            self.all_up_since.get_or_insert(elapsed);
        }
        self.track_leader();
    }

    /// Once, `TRAINING_REPORTED_WITHIN` after every node was first up: whether no node
    /// reports training (`Some(true)`), or some does (`Some(false)`); `None` before then and
    /// after that one answer.
    pub(super) fn training_absent(&mut self, elapsed: Duration, all_up: bool) -> Option<bool> {
        let due = all_up
            && !self.checked_training
            && self
                .all_up_since
                .is_some_and(|since| elapsed >= since + TRAINING_REPORTED_WITHIN);
        if !due {
            return None;
        }
        self.checked_training = true;
        Some(self.views.iter().flatten().all(|v| v.training.is_none()))
    }

    /// Whether any node reports training.
    pub(super) fn any_training(&self) -> bool {
        self.views.iter().flatten().any(|v| v.training.is_some())
    }

    /// Whether every node answered and all report the same tip.
    pub(super) fn one_tip(&self) -> bool {
        let views = self.answered();
        views.len() == self.views.len() && views.windows(2).all(|w| w[0].tip == w[1].tip)
    }

    /// The clean stretches (µs since the Unix epoch, first and last clean poll).
    pub(super) fn clean_stretches(&self) -> &[(u64, u64)] {
        &self.clean
    }

    /// Times the leader of the highest term changed, as seen in the polls.
    pub(super) fn leader_changes(&self) -> u64 {
        self.leader_changes
    }

    /// Among `candidates`, the node that reports itself leader of the highest term: a deposed
    /// leader cut off from the others may still call itself leader of an older one.
    pub(super) fn leader_among(&self, candidates: &[usize]) -> Option<usize> {
        candidates
            .iter()
            .copied()
            .filter_map(|i| {
                let training = self.views[i].as_ref()?.training.as_ref()?;
                (training.role.as_deref() == Some("leader"))
                    .then_some((training.term.unwrap_or(0), i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// Every node's last committed round (`None`: down or not training).
    pub(super) fn committed_rounds_reported(&self) -> Vec<Option<u64>> {
        self.views
            .iter()
            .map(|v| v.as_ref()?.training.as_ref()?.round)
            .collect()
    }

    /// Every node's last committed round, 0 when unknown.
    pub(super) fn committed_rounds(&self) -> Vec<u64> {
        self.committed_rounds_reported()
            .into_iter()
            .map(|r| r.unwrap_or(0))
            .collect()
    }

    /// Every node's last height and tip (0 and empty when unknown).
    pub(super) fn heights_and_tips(&self) -> (Vec<u64>, Vec<String>) {
        self.views
            .iter()
            .map(|v| {
                v.as_ref()
                    .map_or((0, String::new()), |v| (v.height, v.tip.clone()))
            })
            .unzip()
    }

    /// Counts changes of the leader of the highest term any node reports.
    fn track_leader(&mut self) {
        let leader = self
            .views
            .iter()
            .flatten()
            .filter_map(|v| {
                let t = v.training.as_ref()?;
                (t.role.as_deref() == Some("leader"))
                    .then(|| (t.term.unwrap_or(0), t.leader.clone().unwrap_or_default()))
            })
            .max()
            .map(|(_, leader)| leader);
        if let Some(leader) = leader {
            if self.leader.as_ref().is_some_and(|old| *old != leader) {
                self.leader_changes += 1;
            }
            self.leader = Some(leader);
        }
    }
}
