//! What a testnet run should do: node count, goals and the chaos schedule, parsed from the
//! flag syntax (`20,5` latency, `20+10:0,1|2` partitions) and checked. Pure: no processes,
//! no sockets, no clock.

use std::time::Duration;

use super::TestnetError;

/// Most nodes one testnet starts (each has a relay to every other: N·(N−1) links).
pub const MAX_NODES: usize = 16;

/// Delay added to every datagram on every link: `ms` plus a uniform ±`jitter_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// Mean delay in milliseconds, at most 10000; 0 adds none.
    pub ms: u64,
    /// Half-width of the uniform jitter in milliseconds; at most ten times `ms` (or 10 when `ms` is
    /// 0).
    pub jitter_ms: u64,
}

impl Latency {
    /// Parses `MS` or `MS,JITTER`.
    pub fn parse(text: &str) -> Result<Latency, TestnetError> {
        let bad = || TestnetError::Spec {
            what: "latency",
            text: text.to_string(),
            expected: "MS or MS,JITTER in milliseconds, e.g. 20 or 20,5",
        };
        let (ms, jitter) = match text.split_once(',') {
            Some((ms, jitter)) => (ms, Some(jitter)),
            None => (text, None),
        };
        let ms = ms.trim().parse::<u64>().map_err(|_| bad())?;
        let jitter_ms = match jitter {
            Some(j) => j.trim().parse::<u64>().map_err(|_| bad())?,
            None => 0,
        };
        if ms > 10_000 || jitter_ms > ms.max(1) * 10 {
            return Err(bad());
        }
        Ok(Latency { ms, jitter_ms })
    }
}

/// A partition: from `at` after the start, for `lasting`, datagrams between nodes of
/// different groups are dropped; then the network heals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Time from the start of the run until the partition begins.
    pub at: Duration,
    /// How long the partition lasts before it heals.
    pub lasting: Duration,
    /// Node indexes per group; a node in no group forms a group of its own. Empty for a
    /// partition that cuts off the leader until it begins.
    pub groups: Vec<Vec<usize>>,
    /// `AT+SECS:leader`: the training leader at `at` is cut off from every other node (the
    /// groups are filled in then).
    pub isolates_leader: bool,
}

impl Partition {
    /// Parses `AT+SECS[:GROUPS]`, GROUPS like `0,1|2` or `leader`. Without groups, the last
    /// node is cut off from the others.
    pub fn parse(text: &str, nodes: usize) -> Result<Partition, TestnetError> {
        let bad = || TestnetError::Spec {
            what: "partition",
            text: text.to_string(),
            expected: "AT+SECS[:GROUPS] with node indexes, e.g. 20+10, 20+10:0,1|2 or 20+10:leader",
        };
        let (times, groups) = match text.split_once(':') {
            Some((times, groups)) => (times, Some(groups)),
            None => (text, None),
        };
        let (at, lasting) = times.split_once('+').ok_or_else(bad)?;
        let secs = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e6)
                .map(Duration::from_secs_f64)
                .ok_or_else(bad)
        };
        let (at, lasting) = (secs(at)?, secs(lasting)?);
        if groups.is_some_and(|g| g.trim() == "leader") {
            return Ok(Partition {
                at,
                lasting,
                groups: Vec::new(),
                isolates_leader: true,
            });
        }
        let groups = match groups {
            Some(groups) => groups
                .split('|')
                .map(|group| {
                    group
                        .split(',')
                        .map(|n| n.trim().parse::<usize>().map_err(|_| bad()))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![(0..nodes.saturating_sub(1)).collect(), vec![nodes - 1]],
        };
        let mut seen = vec![false; nodes];
        for &node in groups.iter().flatten() {
            if node >= nodes || std::mem::replace(&mut seen[node], true) {
                return Err(TestnetError::Spec {
                    what: "partition",
                    text: text.to_string(),
                    expected: "each node index once, below --nodes",
                });
            }
        }
        Ok(Partition {
            at,
            lasting,
            groups,
            isolates_leader: false,
        })
    }

    /// Whether this partition separates nodes `a` and `b` (a node in no group is alone).
    pub fn separates(&self, a: usize, b: usize) -> bool {
        let group_of = |n: usize| self.groups.iter().position(|g| g.contains(&n));
        match (group_of(a), group_of(b)) {
            (Some(x), Some(y)) => x != y,
            _ => a != b,
        }
    }
}

/// Which node a periodic kill picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// The training leader; a random node while no node reports a role.
    Leader,
    /// A node chosen at random from those running.
    Random,
}

/// `kill -9` one node every `every`, restart it from its data dir after `pause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kills {
    /// Which node each kill picks.
    pub target: KillTarget,
    /// Time between kills; must be longer than `pause`.
    pub every: Duration,
    /// How long a killed node stays down before it is restarted.
    pub pause: Duration,
}

/// The last `nodes` nodes of the testnet corrupt their gradients with `attack` (their
/// `train.attack`), to watch a robust rule at work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Byzantine {
    /// How many nodes attack, counted from the last node back.
    pub nodes: usize,
    /// `sign-flip`, `scale` or `noise`.
    pub attack: crate::train::attack::Attack,
}

impl Byzantine {
    /// Whether node `index` of `nodes` attacks.
    pub fn attacks(&self, index: usize, nodes: usize) -> bool {
        index >= nodes.saturating_sub(self.nodes)
    }
}

/// Which node a clock fault slows or speeds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockTarget {
    /// Node `n` (`n0` is 0).
    Node(usize),
    /// The training leader when the fault begins.
    Leader,
    /// A node other than the training leader when the fault begins.
    Follower,
}

/// A node's clock runs at `rate` times real time (libfaketime), for the whole run or from
/// `at` for `lasting`: timers, timeouts and `Instant`s of that process all scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockFault {
    /// Whose clock.
    pub target: ClockTarget,
    /// Fake seconds per real second, 0.05 to 20.
    pub rate: f64,
    /// `(at, lasting)` after every node is up; `None`: from the node's start to the end.
    pub window: Option<(Duration, Duration)>,
}

impl ClockFault {
    /// Parses `NODE:RATE[@AT+SECS]`, NODE an index, `leader` or `follower` (those two need a
    /// window: no node leads before the run starts).
    pub fn parse(text: &str, nodes: usize) -> Result<ClockFault, TestnetError> {
        let bad = |expected| TestnetError::Spec {
            what: "clock",
            text: text.to_string(),
            expected,
        };
        let syntax = "NODE:RATE[@AT+SECS], NODE an index, leader or follower, e.g. 1:2 or \
                      leader:0.5@10+20";
        let (node, rest) = text.split_once(':').ok_or_else(|| bad(syntax))?;
        let (rate, window) = match rest.split_once('@') {
            Some((rate, window)) => (rate, Some(window)),
            None => (rest, None),
        };
        let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let rate = number(rate.trim_start_matches('x'))
            .filter(|r| (0.05..=20.0).contains(r))
            .ok_or_else(|| bad("a RATE from 0.05 to 20 (fake seconds per real second)"))?;
        let window = match window {
            None => None,
            Some(window) => {
                let (at, lasting) = window.split_once('+').ok_or_else(|| bad(syntax))?;
                let secs = |s: &str| {
                    number(s)
                        .filter(|v| (0.0..1e6).contains(v))
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| bad(syntax))
                };
                Some((secs(at)?, secs(lasting)?))
            }
        };
        let target = match node.trim() {
            "leader" => ClockTarget::Leader,
            "follower" => ClockTarget::Follower,
            index => match index.parse::<usize>() {
                Ok(index) if index < nodes => ClockTarget::Node(index),
                _ => return Err(bad("a node index below --nodes, leader or follower")),
            },
        };
        if window.is_none() && !matches!(target, ClockTarget::Node(_)) {
            return Err(bad(
                "@AT+SECS with leader or follower: the roles exist once the cluster runs",
            ));
        }
        Ok(ClockFault {
            target,
            rate,
            window,
        })
    }
}

/// When the run ends successfully. Unset goals are not checked; with no goal at all the run
/// stops after `duration` (or a default) and succeeds when the nodes agree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Goals {
    /// Every node at or above this height, on one tip.
    pub blocks: Option<u64>,
    /// Every node has committed and applied this many training rounds and holds the same
    /// params (the leader stops announcing there).
    pub rounds: Option<u64>,
    /// Test accuracy (0..1) reported by every node.
    pub target_accuracy: Option<f64>,
    /// Run this long, then check the goals (a deadline when other goals are set).
    pub duration: Option<Duration>,
}

impl Goals {
    /// True when a goal needs the nodes to report training.
    pub fn need_training(&self) -> bool {
        self.rounds.is_some() || self.target_accuracy.is_some()
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Number of nodes started, 1 to `MAX_NODES`.
    pub nodes: usize,
    /// What counts as success.
    pub goals: Goals,
    /// Give up (failure) after this long when goals are not met.
    pub timeout: Duration,
    /// Delay added on every link.
    pub latency: Latency,
    /// Datagram loss per link, 0..100 percent.
    pub loss_pct: f64,
    /// Network partitions to apply, each with its start, length and groups.
    pub partitions: Vec<Partition>,
    /// Periodic `kill -9` of one node, with its restart; `None` kills nothing.
    pub kills: Option<Kills>,
    /// Nodes whose clocks run fast or slow.
    pub clocks: Vec<ClockFault>,
    /// Nodes that corrupt their gradients; `None` when every node is honest.
    pub byzantine: Option<Byzantine>,
    /// First QUIC port; node i listens on `base_port + i`. `None`: free ports are picked.
    pub base_port: Option<u16>,
    /// Time between status polls.
    pub poll: Duration,
    /// Seed of the run's randomness: relay jitter and loss per link, random kill targets and the
    /// Jepsen workload.
    pub seed: u64,
    /// Run the Jepsen-style config-store workload (`jepsen.rs`) this long.
    pub jepsen: Option<Duration>,
}

impl Plan {
    /// Checks values that parse but cannot run.
    pub fn validate(&self) -> Result<(), TestnetError> {
        let invalid = |what: &'static str, reason: String| TestnetError::Invalid { what, reason };
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return Err(invalid(
                "node count",
                format!("{} is not between 1 and {MAX_NODES}", self.nodes),
            ));
        }
        if !(0.0..100.0).contains(&self.loss_pct) {
            return Err(invalid(
                "loss",
                format!("{}% is not in 0..100", self.loss_pct),
            ));
        }
        if let Some(port) = self.base_port
            && (port as usize + self.nodes > u16::MAX as usize || port < 1024)
        {
            return Err(invalid(
                "base port",
                format!("{port} + {} nodes is outside 1024..65535", self.nodes),
            ));
        }
        if let Some(accuracy) = self.goals.target_accuracy
            && !(0.0..=1.0).contains(&accuracy)
        {
            return Err(invalid(
                "target accuracy",
                format!("{accuracy} is not a fraction between 0 and 1"),
            ));
        }
        if let Some(byzantine) = &self.byzantine
            && byzantine.nodes > self.nodes
        {
            return Err(invalid(
                "byzantine node count",
                format!("{} is more than the {} nodes", byzantine.nodes, self.nodes),
            ));
        }
        if let Some(kills) = &self.kills
            && kills.every <= kills.pause
        {
            return Err(invalid(
                "kill period",
                format!(
                    "{:.1} s is not longer than the {:.1} s a killed node stays down \
                     (--restart-after): some node would always be down and the run would never \
                     settle",
                    kills.every.as_secs_f64(),
                    kills.pause.as_secs_f64()
                ),
            ));
        }
        if self.jepsen.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(invalid("jepsen workload", "must run at least 1 s".into()));
        }
        Ok(())
    }

    /// The clock rate node `index` runs at outside any fault window: its whole-run fault's, or
    /// real time.
    pub fn base_clock_rate(&self, index: usize) -> f64 {
        self.clocks
            .iter()
            .find(|f| f.window.is_none() && f.target == ClockTarget::Node(index))
            .map_or(1.0, |f| f.rate)
    }

    /// With `--jepsen` and no fault given, the nemesis a Jepsen test needs: the last node cut
    /// off from 20% to 50% of the workload, the training leader killed at 60% (restarted after
    /// `pause`; never more often than a second past `pause`) and, when `clocks` (libfaketime is
    /// there), a follower's clock at x2 from 10% to 90%. Returns what was added, for the user;
    /// `None` when faults were given.
    pub fn add_jepsen_nemesis(&mut self, pause: Duration, clocks: bool) -> Option<String> {
        let secs = self.jepsen?;
        if !self.partitions.is_empty() || self.kills.is_some() || !self.clocks.is_empty() {
            return None;
        }
        let mut added = Vec::new();
        if self.nodes >= 2 {
            let partition = Partition {
                at: secs.mul_f64(0.2),
                lasting: secs.mul_f64(0.3),
                groups: vec![(0..self.nodes - 1).collect(), vec![self.nodes - 1]],
                isolates_leader: false,
            };
            added.push(format!(
                "node n{} cut off at {:.1} s for {:.1} s",
                self.nodes - 1,
                partition.at.as_secs_f64(),
                partition.lasting.as_secs_f64()
            ));
            self.partitions.push(partition);
            if clocks {
                let fault = ClockFault {
                    target: ClockTarget::Follower,
                    rate: 2.0,
                    window: Some((secs.mul_f64(0.1), secs.mul_f64(0.8))),
                };
                added.push(format!(
                    "a follower's clock at x2 from {:.1} s for {:.1} s",
                    secs.mul_f64(0.1).as_secs_f64(),
                    secs.mul_f64(0.8).as_secs_f64()
                ));
                self.clocks.push(fault);
            }
        }
        let every = secs.mul_f64(0.6).max(pause + Duration::from_secs(1));
        self.kills = Some(Kills {
            target: KillTarget::Leader,
            every,
            pause,
        });
        added.push(format!(
            "the training leader killed every {:.1} s",
            every.as_secs_f64()
        ));
        Some(added.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_takes_an_optional_jitter() {
        assert_eq!(
            Latency::parse("20").expect("ms"),
            Latency {
                ms: 20,
                jitter_ms: 0
            }
        );
        assert_eq!(Latency::parse("20,5").expect("jitter").jitter_ms, 5);
        assert!(Latency::parse("fast").is_err());
        assert!(Latency::parse("20,").is_err());
    }

    #[test]
    fn partitions_parse_groups_and_default_to_cutting_the_last_node() {
        let p = Partition::parse("20+10:0,1|2", 3).expect("groups");
        assert_eq!(p.at, Duration::from_secs(20));
        assert_eq!(p.lasting, Duration::from_secs(10));
        assert!(p.separates(0, 2) && p.separates(2, 1));
        assert!(!p.separates(0, 1));
        let p = Partition::parse("1.5+2", 4).expect("default");
        assert_eq!(p.groups, vec![vec![0, 1, 2], vec![3]]);
        assert_eq!(p.at, Duration::from_millis(1500));
        // A node named in no group is alone.
        let p = Partition::parse("0+1:0,1", 3).expect("partial");
        assert!(p.separates(0, 2) && !p.separates(1, 0));
    }

    #[test]
    fn byzantine_nodes_are_the_last_ones() {
        let byzantine = Byzantine {
            nodes: 1,
            attack: crate::train::attack::Attack::Scale,
        };
        let attackers: Vec<usize> = (0..3).filter(|&i| byzantine.attacks(i, 3)).collect();
        assert_eq!(attackers, vec![2]);
        let none = Byzantine {
            nodes: 0,
            ..byzantine
        };
        assert!((0..3).all(|i| !none.attacks(i, 3)));
    }

    #[test]
    fn a_kill_period_within_the_restart_pause_is_refused() {
        let plan = |every: u64, pause: u64| Plan {
            nodes: 3,
            goals: Goals::default(),
            timeout: Duration::from_secs(60),
            latency: Latency::default(),
            loss_pct: 0.0,
            partitions: Vec::new(),
            kills: Some(Kills {
                target: KillTarget::Leader,
                every: Duration::from_millis(every),
                pause: Duration::from_millis(pause),
            }),
            clocks: Vec::new(),
            byzantine: None,
            base_port: None,
            poll: Duration::from_millis(100),
            seed: 1,
            jepsen: None,
        };
        let error = plan(1500, 2000).validate().expect_err("never settles");
        assert!(error.to_string().contains("restart-after"), "{error}");
        assert!(plan(1500, 2000 - 1500).validate().is_ok());
        // The Jepsen nemesis never picks a period it would refuse.
        let mut short = plan(1, 0);
        short.kills = None;
        short.jepsen = Some(Duration::from_secs(2));
        short
            .add_jepsen_nemesis(Duration::from_secs(2), true)
            .expect("added");
        assert_eq!(short.clocks.len(), 1);
        assert!(short.validate().is_ok());
    }

    #[test]
    fn clock_faults_name_a_node_or_a_role_and_a_rate() {
        let fault = ClockFault::parse("1:2", 3).expect("whole run");
        assert_eq!(fault.target, ClockTarget::Node(1));
        assert_eq!((fault.rate, fault.window), (2.0, None));
        let fault = ClockFault::parse("leader:x0.5@10+20.5", 3).expect("window");
        assert_eq!(fault.target, ClockTarget::Leader);
        assert_eq!(fault.rate, 0.5);
        assert_eq!(
            fault.window,
            Some((Duration::from_secs(10), Duration::from_millis(20_500)))
        );
        for bad in [
            "3:2",
            "leader:0.5",
            "follower:2",
            "0:0",
            "0:50",
            "0:fast",
            "0:1@5",
            "2",
        ] {
            assert!(ClockFault::parse(bad, 3).is_err(), "{bad}");
        }
        let leader = Partition::parse("5+10:leader", 3).expect("leader");
        assert!(leader.isolates_leader && leader.groups.is_empty());
    }

    #[test]
    fn partitions_refuse_unknown_or_repeated_nodes() {
        assert!(Partition::parse("0+1:0,3", 3).is_err());
        assert!(Partition::parse("0+1:0,1|1", 3).is_err());
        assert!(Partition::parse("0:0|1", 3).is_err());
        assert!(Partition::parse("x+1", 3).is_err());
    }
}
