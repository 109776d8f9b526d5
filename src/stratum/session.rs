//! One server-side Stratum connection as a state machine: lines, templates and ticks in (with
//! `now`), lines to send, share verdicts, found blocks and a close out. It answers
//! `mining.subscribe` (its own extranonce1, `extranonce2_size` 4), `mining.authorize` (the
//! user name picks the coinbase's miner id), `mining.extranonce.subscribe` and
//! `mining.submit`, which it rebuilds (coinbase, merkle root, header) and checks against the
//! share target; a share that also meets the block target becomes a `Block` for the chain.
//!
//! Driver order: `on_line` for each line read, `on_template` for each new template (every
//! connection at once on a new tip, `clean = true`), `on_tick` about once a second; send
//! every `Send` in order, act on `Block` and `Close`. Must not do I/O or read a clock.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::difficulty::{Vardiff, VardiffConfig, share_target};
use super::message::{self, ErrorCode, Incoming, RequestId};
use super::work::{EXTRANONCE1_BYTES, EXTRANONCE2_BYTES, JobParts, block_from_share, hex_u32};
use super::{StratumError, Worker};
use crate::hash::reference::sha256d;
use crate::pow::template::MAX_AHEAD_OF_CLOCK_SECS;
use crate::pow::{Block, BlockTemplate, NodeId};
use crate::target::Target;

/// Jobs a connection remembers (older ones answer "job not found").
pub const JOBS_KEPT: usize = 16;
/// Share keys remembered per tip for duplicate detection.
const MAX_SEEN_SHARES: usize = 65_536;
/// Malformed or refused lines after which the connection is dropped.
const MAX_STRIKES: u32 = 16;

/// The settings every connection of a server shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionConfig {
    /// Difficulty and vardiff.
    pub vardiff: VardiffConfig,
    /// Submits per second a connection may make (a burst of twice this is allowed).
    pub submits_per_sec: u32,
    /// Who a worker whose name is not a fingerprint mines for (the node's own id).
    pub default_miner: NodeId,
}

/// The clock readings a session needs: a monotonic instant and the unix time (ntime bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (rates, vardiff).
    pub at: Instant,
    /// Unix seconds (how far ahead a share's ntime may be).
    pub unix_secs: u64,
}

/// A template the server hands every connection; `generation` grows with each tip.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The block template on the current tip.
    pub template: Arc<BlockTemplate>,
    /// Bumped on every new tip; a job of an older generation is stale.
    pub generation: u64,
    /// True on a new tip: miners drop every older job at once.
    pub clean: bool,
}

/// Why a share was not credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectReason {
    /// The job id is not one this connection was sent (or is too old).
    JobNotFound,
    /// The same share was submitted before.
    Duplicate,
    /// The hash does not meet the share target.
    LowDifficulty,
    /// The worker did not authorize.
    Unauthorized,
    /// The connection did not subscribe.
    NotSubscribed,
    /// Wrong extranonce2 size, bad hex, ntime out of range.
    BadShare,
    /// More submits per second than allowed.
    RateLimited,
}

impl RejectReason {
    /// The reason as metrics and `/status` name it.
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::JobNotFound => "job-not-found",
            RejectReason::Duplicate => "duplicate",
            RejectReason::LowDifficulty => "low-difficulty",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::NotSubscribed => "not-subscribed",
            RejectReason::BadShare => "bad-share",
            RejectReason::RateLimited => "rate-limited",
        }
    }

    /// Every reason, for metrics and reports.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::JobNotFound,
        RejectReason::Duplicate,
        RejectReason::LowDifficulty,
        RejectReason::Unauthorized,
        RejectReason::NotSubscribed,
        RejectReason::BadShare,
        RejectReason::RateLimited,
    ];
}

/// What became of one submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareVerdict {
    /// Met the share target: credited.
    Accepted,
    /// For a job of an older tip: counted, not credited.
    Stale,
    /// Refused, and why.
    Rejected(RejectReason),
}

/// Why a session asks to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Too many malformed or refused lines.
    Misbehaving,
    /// Submits far past the rate limit.
    Flood,
}

/// What the driver must do after an event.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write this line (it ends with `\n`).
    Send(String),
    /// Count a share for `worker` at `difficulty`.
    Share {
        /// The worker name the submit named (empty before authorize).
        worker: String,
        /// The verdict.
        verdict: ShareVerdict,
        /// The difficulty the share was judged at.
        difficulty: f64,
    },
    /// A share met the block target: hand this block to the chain, credited to `worker`.
    Block {
        /// The rebuilt block.
        block: Box<Block>,
        /// The worker that found it.
        worker: String,
    },
    /// Drop the connection.
    Close(CloseReason),
}

#[derive(Debug)]
struct SessionJob {
    id: String,
    generation: u64,
    template: Arc<BlockTemplate>,
    parts: JobParts,
    miner: NodeId,
    target: Target,
    difficulty: f64,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    extranonce1: [u8; EXTRANONCE1_BYTES],
    subscribed: bool,
    workers: Vec<Worker>,
    /// Who this connection's coinbases pay: fixed by its first authorized worker.
    miner: Option<NodeId>,
    vardiff: Vardiff,
    sent_difficulty: Option<f64>,
    jobs: VecDeque<SessionJob>,
    next_job: u64,
    offer: Option<Offer>,
    seen: HashSet<(u64, u32, u32, u32)>,
    tokens: f64,
    refilled: Instant,
    flood: u32,
    strikes: u32,
    /// The generation this connection last made a block on: a second block on the same
    /// parent would only compete with its own first, so its shares are credited, not mined.
    block_generation: Option<u64>,
}

impl Session {
    /// A fresh connection with its extranonce1, at `now`.
    pub fn new(config: SessionConfig, extranonce1: [u8; EXTRANONCE1_BYTES], now: Now) -> Session {
        Session {
            vardiff: Vardiff::new(config.vardiff, now.at),
            tokens: f64::from(config.submits_per_sec) * 2.0,
            refilled: now.at,
            config,
            extranonce1,
            subscribed: false,
            workers: Vec::new(),
            miner: None,
            sent_difficulty: None,
            jobs: VecDeque::new(),
            next_job: 1,
            offer: None,
            seen: HashSet::new(),
            flood: 0,
            strikes: 0,
            block_generation: None,
        }
    }

    /// The difficulty now in force.
    pub fn difficulty(&self) -> f64 {
        self.vardiff.difficulty()
    }

    /// The workers authorized on this connection.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Whether the connection subscribed and authorized (it is sent jobs).
    pub fn mining(&self) -> bool {
        self.subscribed && self.miner.is_some()
    }

    /// A new template: remembered, and sent as a job when the connection is mining.
    pub fn on_template(&mut self, offer: Offer) -> Vec<Action> {
        self.offer = Some(offer.clone());
        if offer.clean {
            self.seen.clear();
        }
        let mut out = Vec::new();
        if self.mining() {
            self.push_job(offer.clean, &mut out);
        }
        out
    }

    /// The periodic tick: vardiff retargets a silent miner.
    pub fn on_tick(&mut self, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        if self.mining() && self.vardiff.retarget(now.at).is_some() {
            self.push_job(false, &mut out);
        }
        out
    }

    /// One line from the miner.
    pub fn on_line(&mut self, line: &[u8], now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return out;
        }
        match message::decode(trimmed) {
            Ok(Incoming::Call { id, method, params }) => {
                self.on_call(&id, &method, &params, now, &mut out)
            }
            // Answers to our notifications (a miner acking client.reconnect): nothing to do.
            Ok(Incoming::Response { .. }) => {}
            Err(error) => {
                out.push(Action::Send(message::error(
                    &Value::Null,
                    ErrorCode::Other,
                    &error.to_string(),
                )));
                self.strike(&mut out);
            }
        }
        out
    }

    fn strike(&mut self, out: &mut Vec<Action>) {
        self.strikes += 1;
        if self.strikes >= MAX_STRIKES {
            out.push(Action::Close(CloseReason::Misbehaving));
        }
    }

    fn on_call(
        &mut self,
        id: &RequestId,
        method: &str,
        params: &[Value],
        now: Now,
        out: &mut Vec<Action>,
    ) {
        match method {
            "mining.subscribe" => {
                self.subscribed = true;
                let session_id = hex::encode(self.extranonce1);
                out.push(Action::Send(message::result(
                    id,
                    json!([
                        [
                            ["mining.set_difficulty", session_id],
                            ["mining.notify", session_id]
                        ],
                        hex::encode(self.extranonce1),
                        EXTRANONCE2_BYTES
                    ]),
                )));
                self.start_mining(out);
            }
            "mining.authorize" => {
                match message::string_param(params, 0, "worker name").and_then(Worker::parse) {
                    Ok(worker) => {
                        if !self.workers.contains(&worker) && self.workers.len() < 16 {
                            if self.miner.is_none() {
                                self.miner = Some(worker.miner(self.config.default_miner));
                            }
                            self.workers.push(worker);
                        }
                        out.push(Action::Send(message::result(id, json!(true))));
                        self.start_mining(out);
                    }
                    Err(error) => {
                        out.push(Action::Send(message::error(
                            id,
                            ErrorCode::Unauthorized,
                            &error.to_string(),
                        )));
                        self.strike(out);
                    }
                }
            }
            "mining.extranonce.subscribe" => {
                out.push(Action::Send(message::result(id, json!(true))));
            }
            "mining.submit" => self.on_submit(id, params, now, out),
            other => {
                let text = format!(
                    "unknown method {:?}",
                    other.chars().take(64).collect::<String>()
                );
                out.push(Action::Send(message::error(id, ErrorCode::Other, &text)));
                self.strike(out);
            }
        }
    }

    /// Once subscribed and authorized: the difficulty and the current job.
    fn start_mining(&mut self, out: &mut Vec<Action>) {
        if self.mining() && self.jobs.is_empty() && self.offer.is_some() {
            self.push_job(true, out);
        }
    }

    /// Sends set_difficulty (when changed) and a job on the current offer.
    fn push_job(&mut self, clean: bool, out: &mut Vec<Action>) {
        let (Some(offer), Some(miner)) = (self.offer.clone(), self.miner) else {
            return;
        };
        let difficulty = self.vardiff.difficulty();
        if self.sent_difficulty != Some(difficulty) {
            self.sent_difficulty = Some(difficulty);
            out.push(Action::Send(message::notification(
                "mining.set_difficulty",
                json!([difficulty]),
            )));
        }
        let id = format!("{:x}", self.next_job);
        self.next_job += 1;
        let parts = JobParts::from_template(&offer.template, miner);
        out.push(Action::Send(message::notification(
            "mining.notify",
            parts.notify_params(&id, clean),
        )));
        self.jobs.push_front(SessionJob {
            id,
            generation: offer.generation,
            template: offer.template,
            parts,
            miner,
            target: share_target(difficulty),
            difficulty,
        });
        self.jobs.truncate(JOBS_KEPT);
    }

    fn refill(&mut self, now: Instant) {
        let rate = f64::from(self.config.submits_per_sec);
        let elapsed = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        self.tokens = (self.tokens + rate * elapsed.as_secs_f64()).min(rate * 2.0);
    }

    fn on_submit(&mut self, id: &RequestId, params: &[Value], now: Now, out: &mut Vec<Action>) {
        let worker_name = params
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(super::MAX_WORKER_NAME)
            .collect::<String>();
        let refuse = |out: &mut Vec<Action>, reason: RejectReason, code, text: &str| {
            out.push(Action::Send(message::error(id, code, text)));
            out.push(Action::Share {
                worker: worker_name.clone(),
                verdict: ShareVerdict::Rejected(reason),
                difficulty: 0.0,
            });
        };
        self.refill(now.at);
        if self.tokens < 1.0 {
            self.flood += 1;
            refuse(
                out,
                RejectReason::RateLimited,
                ErrorCode::Other,
                "too many submits; slow down",
            );
            if self.flood > self.config.submits_per_sec.saturating_mul(4).max(32) {
                out.push(Action::Close(CloseReason::Flood));
            }
            return;
        }
        self.tokens -= 1.0;
        self.flood = 0;
        if !self.subscribed {
            return refuse(
                out,
                RejectReason::NotSubscribed,
                ErrorCode::NotSubscribed,
                "not subscribed: send mining.subscribe first",
            );
        }
        if !self.workers.iter().any(|w| w.name() == worker_name) {
            return refuse(
                out,
                RejectReason::Unauthorized,
                ErrorCode::Unauthorized,
                "unauthorized worker: send mining.authorize first",
            );
        }
        let share = match parse_submit(params) {
            Ok(share) => share,
            Err(error) => {
                self.strike(out);
                return refuse(
                    out,
                    RejectReason::BadShare,
                    ErrorCode::Other,
                    &error.to_string(),
                );
            }
        };
        let current = self.offer.as_ref().map_or(0, |offer| offer.generation);
        let Some(job) = self.jobs.iter().find(|job| job.id == share.job_id) else {
            return refuse(
                out,
                RejectReason::JobNotFound,
                ErrorCode::JobNotFound,
                "job not found",
            );
        };
        if job.generation != current {
            out.push(Action::Send(message::error(
                id,
                ErrorCode::JobNotFound,
                "stale share: the chain has a new tip",
            )));
            out.push(Action::Share {
                worker: worker_name,
                verdict: ShareVerdict::Stale,
                difficulty: job.difficulty,
            });
            return;
        }
        let max_ntime = now.unix_secs.saturating_add(MAX_AHEAD_OF_CLOCK_SECS);
        if share.ntime < job.parts.ntime
            || u64::from(share.ntime) > max_ntime.max(u64::from(job.parts.ntime))
        {
            return refuse(
                out,
                RejectReason::BadShare,
                ErrorCode::Other,
                "ntime out of range: not before the job's, at most 10 minutes ahead",
            );
        }
        let job_number = u64::from_str_radix(&job.id, 16).unwrap_or(0);
        let key = (
            job_number,
            u32::from_le_bytes(share.extranonce2),
            share.ntime,
            share.nonce,
        );
        if self.seen.contains(&key) {
            return refuse(
                out,
                RejectReason::Duplicate,
                ErrorCode::Duplicate,
                "duplicate share",
            );
        }
        let header = job.parts.header(
            &self.extranonce1,
            &share.extranonce2,
            share.ntime,
            share.nonce,
        );
        let hash = sha256d(&header);
        // A share for a job sent before a vardiff change counts at the easier of the two.
        let current_target = share_target(self.vardiff.difficulty());
        let (target, difficulty) = if current_target > job.target {
            (current_target, self.vardiff.difficulty())
        } else {
            (job.target, job.difficulty)
        };
        if !target.is_met_by(&hash) {
            return refuse(
                out,
                RejectReason::LowDifficulty,
                ErrorCode::LowDifficulty,
                "low difficulty share",
            );
        }
        if self.seen.len() >= MAX_SEEN_SHARES {
            self.seen.clear();
        }
        self.seen.insert(key);
        if self.block_generation != Some(current) && job.template.job().target.is_met_by(&hash) {
            self.block_generation = Some(current);
            let mut extranonce = [0u8; EXTRANONCE1_BYTES + EXTRANONCE2_BYTES];
            extranonce[..EXTRANONCE1_BYTES].copy_from_slice(&self.extranonce1);
            extranonce[EXTRANONCE1_BYTES..].copy_from_slice(&share.extranonce2);
            let block = block_from_share(
                &job.template,
                job.miner,
                extranonce,
                share.ntime,
                share.nonce,
            );
            out.push(Action::Block {
                block: Box::new(block),
                worker: worker_name.clone(),
            });
        }
        out.push(Action::Send(message::result(id, json!(true))));
        out.push(Action::Share {
            worker: worker_name,
            verdict: ShareVerdict::Accepted,
            difficulty,
        });
        if self.vardiff.on_share(now.at).is_some() {
            self.push_job(false, out);
        }
    }
}

struct Submit {
    job_id: String,
    extranonce2: [u8; EXTRANONCE2_BYTES],
    ntime: u32,
    nonce: u32,
}

/// `[worker, job_id, extranonce2, ntime, nonce]` (a sixth, version bits, is refused).
fn parse_submit(params: &[Value]) -> Result<Submit, StratumError> {
    if params.len() != 5 {
        return Err(StratumError::BadParam(
            "mining.submit takes [worker, job_id, extranonce2, ntime, nonce]",
        ));
    }
    let job_id = message::string_param(params, 1, "job id")?;
    let extranonce2 = message::string_param(params, 2, "extranonce2")?;
    let mut en2 = [0u8; EXTRANONCE2_BYTES];
    hex::decode_to_slice(extranonce2, &mut en2)
        .map_err(|_| StratumError::BadParam("extranonce2 must be 4 bytes (8 hex digits)"))?;
    Ok(Submit {
        job_id: job_id.chars().take(64).collect(),
        extranonce2: en2,
        ntime: hex_u32(
            message::string_param(params, 3, "ntime")?,
            "ntime (8 hex digits)",
        )?,
        nonce: hex_u32(
            message::string_param(params, 4, "nonce")?,
            "nonce (8 hex digits)",
        )?,
    })
}

/// How long a session may wait between ticks before vardiff acts on a silent miner.
pub const TICK: Duration = Duration::from_secs(1);
