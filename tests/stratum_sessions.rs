//! The two Stratum state machines against each other without sockets: a client session mines
//! the server session's jobs with the reference hasher; every share is accepted and a block
//! share becomes a block the chain accepts, paying the worker's fingerprint. Then each wrong
//! submit gets its conventional error code, and a new tip makes old shares stale.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgrad::hash::{Job, NonceRange, StopFlag, reference};
use hashgrad::pow::{Chain, NetworkParams, NodeId};
use hashgrad::stratum::client::{ClientEvent, ClientSession, Share, Work};
use hashgrad::stratum::difficulty::VardiffConfig;
use hashgrad::stratum::message;
use hashgrad::stratum::session::{
    Action, Now, Offer, RejectReason, Session, SessionConfig, ShareVerdict,
};
use serde_json::{Value, json};

const OWN: NodeId = NodeId([0x11; 32]);

fn config() -> SessionConfig {
    SessionConfig {
        vardiff: VardiffConfig {
            start: 0.0001,
            min: 0.00001,
            max: 1e6,
            shares_per_minute: 0.0,
            retarget_every: Duration::from_secs(30),
        },
        submits_per_sec: 100,
        default_miner: OWN,
    }
}

struct Pair {
    chain: Chain,
    server: Session,
    client: ClientSession,
    now: Now,
    work: Option<Work>,
    generation: u64,
}

fn lines(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(line) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

impl Pair {
    fn new(user: &str) -> Pair {
        let params = NetworkParams::regtest();
        let unix = u64::from(params.genesis.header.time) + 1000;
        let now = Now {
            at: Instant::now(),
            unix_secs: unix,
        };
        let mut pair = Pair {
            chain: Chain::new(params),
            server: Session::new(config(), [0, 0, 0, 7], now),
            client: ClientSession::new(user, "x", "test/1"),
            now,
            work: None,
            generation: 0,
        };
        pair.offer(true);
        for line in pair.client.start() {
            pair.send_server(&line);
        }
        pair
    }

    fn offer(&mut self, clean: bool) -> Vec<Action> {
        self.generation += u64::from(clean);
        let template = self.chain.template(OWN, Vec::new(), self.now.unix_secs);
        let actions = self.server.on_template(Offer {
            template: Arc::new(template),
            generation: self.generation,
            clean,
        });
        self.deliver(&actions);
        actions
    }

    /// Feeds a line to the server and the server's lines to the client.
    fn send_server(&mut self, line: &str) -> Vec<Action> {
        let actions = self.server.on_line(line.as_bytes(), self.now);
        self.deliver(&actions);
        actions
    }

    fn deliver(&mut self, actions: &[Action]) -> Vec<ClientEvent> {
        let mut events = Vec::new();
        for line in lines(actions) {
            let got = self
                .client
                .on_line(line.as_bytes())
                .expect("client reads server");
            for event in &got {
                if let ClientEvent::Work(work) = event {
                    self.work = Some(work.clone());
                }
            }
            events.extend(got);
        }
        events
    }

    /// Mines the current work with the reference hasher until a nonce meets the share target.
    fn mine(&self, counter: u64) -> Share {
        let work = self.work.as_ref().expect("work");
        let job = Job {
            header: work.header(counter, work.parts.ntime, 0),
            target: work.target,
        };
        let found = reference::search(&job, NonceRange::new(0, 1 << 22), &StopFlag::new());
        let nonce = found.found.first().expect("an easy share").nonce;
        Share {
            worker: self.client.user().to_string(),
            job_id: work.job_id.clone(),
            extranonce2: work.extranonce2(counter),
            ntime: work.parts.ntime,
            nonce,
        }
    }

    fn submit(&mut self, share: &Share) -> Vec<Action> {
        let difficulty = self.work.as_ref().map_or(1.0, |w| w.difficulty);
        let line = self.client.submit(share, difficulty);
        self.send_server(&line)
    }
}

fn verdict(actions: &[Action]) -> Option<ShareVerdict> {
    actions.iter().find_map(|a| match a {
        Action::Share { verdict, .. } => Some(*verdict),
        _ => None,
    })
}

fn error_code(actions: &[Action]) -> Option<i64> {
    lines(actions).iter().find_map(|line| {
        let value: Value = serde_json::from_str(line).ok()?;
        value["error"][0].as_i64()
    })
}

#[test]
fn a_client_mines_the_servers_jobs_and_its_block_pays_its_fingerprint() {
    let fingerprint = "cd".repeat(32);
    let mut pair = Pair::new(&format!("{fingerprint}.rig1"));
    let work = pair
        .work
        .clone()
        .expect("subscribe + authorize bring a job");
    assert!(work.clean);
    assert_eq!(work.extranonce1, vec![0, 0, 0, 7]);
    assert_eq!(work.extranonce2_size, 4);
    assert_eq!(work.difficulty, 0.0001);
    let share = pair.mine(0);
    let actions = pair.submit(&share);
    assert_eq!(verdict(&actions), Some(ShareVerdict::Accepted));
    let block = actions
        .iter()
        .find_map(|a| match a {
            Action::Block { block, .. } => Some(block.clone()),
            _ => None,
        })
        .expect("on regtest every share meets the block target");
    assert_eq!(block.body.coinbase.miner, NodeId([0xcd; 32]));
    let now = pair.now.unix_secs;
    pair.chain
        .accept_block(*block, now)
        .expect("the chain takes it");
    // The same share again is a duplicate (22).
    let again = pair.submit(&share);
    assert_eq!(
        verdict(&again),
        Some(ShareVerdict::Rejected(RejectReason::Duplicate))
    );
    assert_eq!(error_code(&again), Some(22));
    // The new tip: a clean job; the old job's next share is stale (21), counted not credited.
    let old = pair.mine(1);
    let actions = pair.offer(true);
    assert!(
        lines(&actions)
            .iter()
            .any(|l| l.contains("mining.notify") && l.contains("true]"))
    );
    let stale = pair.submit(&old);
    assert_eq!(verdict(&stale), Some(ShareVerdict::Stale));
    assert_eq!(error_code(&stale), Some(21));
    let fresh = pair.mine(1);
    assert_eq!(verdict(&pair.submit(&fresh)), Some(ShareVerdict::Accepted));
}

#[test]
fn wrong_submits_get_their_conventional_codes() {
    let mut fresh = Session::new(config(), [1, 2, 3, 4], Pair::new("w").now);
    let submit = |worker: &str, job: &str, en2: &str| {
        message::request(
            9,
            "mining.submit",
            json!([worker, job, en2, "00000000", "00000000"]),
        )
    };
    let now = Pair::new("w").now;
    let before = fresh.on_line(submit("w", "1", "00000000").as_bytes(), now);
    assert_eq!(error_code(&before), Some(25), "submit before subscribe");

    let mut pair = Pair::new("alice");
    let work = pair.work.clone().expect("work");
    let unauthorized = pair.send_server(&submit("bob", &work.job_id, "00000000"));
    assert_eq!(error_code(&unauthorized), Some(24));
    let unknown = pair.send_server(&submit("alice", "ffff", "00000000"));
    assert_eq!(error_code(&unknown), Some(21));
    let short = pair.send_server(&submit("alice", &work.job_id, "0000"));
    assert_eq!(
        verdict(&short),
        Some(ShareVerdict::Rejected(RejectReason::BadShare))
    );
    assert_eq!(error_code(&short), Some(20));
    let method = pair.send_server(&message::request(5, "mining.frobnicate", json!([])));
    assert_eq!(error_code(&method), Some(20));
    let malformed = pair.send_server("{not json");
    assert_eq!(error_code(&malformed), Some(20));
    // A hash above the share target: low difficulty (23). Try nonces until one misses.
    let mut share = pair.mine(3);
    let target = work.target;
    share.nonce = (0..)
        .find(|&nonce| {
            let header = work.header(3, work.parts.ntime, nonce);
            !target.is_met_by(&hashgrad::hash::reference::sha256d(&header))
        })
        .expect("a nonce that misses");
    let low = pair.submit(&share);
    assert_eq!(error_code(&low), Some(23));
    // "alice" is not a fingerprint: the block pays the node's own id.
    let good = pair.mine(4);
    let actions = pair.submit(&good);
    let paid = actions.iter().find_map(|a| match a {
        Action::Block { block, .. } => Some(block.body.coinbase.miner),
        _ => None,
    });
    assert_eq!(paid, Some(OWN));
}

#[test]
fn a_submit_flood_is_rate_limited_then_dropped() {
    let mut pair = Pair::new("alice");
    let work = pair.work.clone().expect("work");
    let line = message::request(
        9,
        "mining.submit",
        json!(["alice", work.job_id, "00000000", "00000000", "00000000"]),
    );
    let mut limited = 0;
    let mut closed = false;
    for _ in 0..2000 {
        let actions = pair.server.on_line(line.as_bytes(), pair.now);
        limited += usize::from(
            verdict(&actions) == Some(ShareVerdict::Rejected(RejectReason::RateLimited)),
        );
        if actions.iter().any(|a| matches!(a, Action::Close(_))) {
            closed = true;
            break;
        }
    }
    assert!(limited > 0 && closed, "limited {limited}, closed {closed}");
}
