//! The miner's side of Stratum v1 as a state machine: `start` gives the subscribe and
//! authorize lines, `on_line` turns the pool's lines into `ClientEvent`s (new work, share
//! verdicts, reconnect requests, lines to answer with), `submit` writes a found share. A
//! difficulty or extranonce change applies from the next job, as pools expect.
//!
//! Must not do I/O, mine or read a clock (`cli::mine` does).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::StratumError;
use super::difficulty::share_target;
use super::message::{self, ErrorCode, Incoming};
use super::work::JobParts;
use crate::target::Target;

const SUBSCRIBE_ID: u64 = 1;
const AUTHORIZE_ID: u64 = 2;
/// Largest extranonce2 size a client accepts from a pool (bytes).
pub const MAX_EXTRANONCE2: usize = 8;
/// Submits awaiting an answer that are remembered (older answers count as unknown).
const MAX_PENDING: usize = 4096;

/// Work to mine: a job's parts with this connection's extranonce1 and share target.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    /// The pool's job id (echoed in the submit).
    pub job_id: String,
    /// The job's header parts.
    pub parts: JobParts,
    /// This connection's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Bytes of extranonce2 the miner rolls.
    pub extranonce2_size: usize,
    /// The share difficulty in force for this job.
    pub difficulty: f64,
    /// The share target of `difficulty`.
    pub target: Target,
    /// True when the pool said older jobs are void (a new tip).
    pub clean: bool,
}

impl Work {
    /// The extranonce2 bytes of roll number `counter` (little-endian, `extranonce2_size`
    /// bytes; a counter past that size wraps).
    pub fn extranonce2(&self, counter: u64) -> Vec<u8> {
        let bytes = counter.to_le_bytes();
        let mut out = vec![0u8; self.extranonce2_size];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = bytes.get(i).copied().unwrap_or(0);
        }
        out
    }

    /// The 80 header bytes for extranonce2 `counter`, `ntime` and `nonce`.
    pub fn header(&self, counter: u64, ntime: u32, nonce: u32) -> [u8; 80] {
        self.parts
            .header(&self.extranonce1, &self.extranonce2(counter), ntime, nonce)
    }

    /// How many distinct extranonce2 values there are (saturating at u64::MAX).
    pub fn extranonce2_space(&self) -> u64 {
        1u64.checked_shl(8 * self.extranonce2_size as u32)
            .unwrap_or(u64::MAX)
    }
}

/// A share the miner found for `Work`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The worker name to submit under.
    pub worker: String,
    /// The job it is for.
    pub job_id: String,
    /// The extranonce2 bytes used.
    pub extranonce2: Vec<u8>,
    /// The header time used.
    pub ntime: u32,
    /// The nonce.
    pub nonce: u32,
}

/// What a pool's line means for the miner.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Mine this from now on (drop older work at once when `clean`).
    Work(Work),
    /// The pool took the share (at the difficulty it was mined at).
    Accepted {
        /// The difficulty of the job the share was for.
        difficulty: f64,
    },
    /// The pool refused a share.
    Rejected {
        /// The pool's error code.
        code: ErrorCode,
        /// The pool's message.
        message: String,
    },
    /// The pool asks to reconnect (`client.reconnect`), perhaps elsewhere, after a wait.
    Reconnect {
        /// Another host, when given.
        host: Option<String>,
        /// Another port, when given.
        port: Option<u16>,
        /// Seconds to wait first.
        wait_secs: u64,
    },
    /// Write this line back (an answer to the pool's own call).
    Send(String),
    /// The pool subscribed and authorized us.
    Ready,
}

/// The miner's protocol state.
#[derive(Debug)]
pub struct ClientSession {
    user: String,
    password: String,
    agent: String,
    extranonce1: Option<Vec<u8>>,
    extranonce2_size: usize,
    authorized: bool,
    difficulty: f64,
    next_id: u64,
    pending: HashMap<u64, f64>,
    latest: Option<(String, JobParts)>,
}

impl ClientSession {
    /// A session for worker `user` with `password`, announcing `agent`.
    pub fn new(user: &str, password: &str, agent: &str) -> ClientSession {
        ClientSession {
            user: user.to_string(),
            password: password.to_string(),
            agent: agent.to_string(),
            extranonce1: None,
            extranonce2_size: 4,
            authorized: false,
            difficulty: 1.0,
            next_id: AUTHORIZE_ID + 1,
            pending: HashMap::new(),
            latest: None,
        }
    }

    /// The first lines to send on a fresh connection: subscribe, then authorize.
    pub fn start(&mut self) -> Vec<String> {
        self.extranonce1 = None;
        self.authorized = false;
        self.pending.clear();
        self.latest = None;
        vec![
            message::request(SUBSCRIBE_ID, "mining.subscribe", json!([self.agent])),
            message::request(
                AUTHORIZE_ID,
                "mining.authorize",
                json!([self.user, self.password]),
            ),
        ]
    }

    /// The worker name shares are submitted under.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The line for a found share.
    pub fn submit(&mut self, share: &Share, difficulty: f64) -> String {
        let id = self.next_id;
        self.next_id += 1;
        if self.pending.len() >= MAX_PENDING {
            self.pending.clear();
        }
        self.pending.insert(id, difficulty);
        message::request(
            id,
            "mining.submit",
            json!([
                share.worker,
                share.job_id,
                hex::encode(&share.extranonce2),
                format!("{:08x}", share.ntime),
                format!("{:08x}", share.nonce),
            ]),
        )
    }

    /// One line from the pool. An error is fatal for the connection (bad subscribe answer,
    /// refused authorize, a line past the limit); a malformed notify is an error too.
    pub fn on_line(&mut self, line: &[u8]) -> Result<Vec<ClientEvent>, StratumError> {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            return Ok(Vec::new());
        }
        match message::decode(trimmed)? {
            Incoming::Response { id, result, error } => self.on_response(&id, &result, error),
            Incoming::Call { id, method, params } => self.on_call(&id, &method, &params),
        }
    }

    fn on_response(
        &mut self,
        id: &Value,
        result: &Value,
        error: Option<(i64, String)>,
    ) -> Result<Vec<ClientEvent>, StratumError> {
        let Some(id) = id.as_u64() else {
            return Ok(Vec::new());
        };
        let refused = |what: &'static str, error: Option<(i64, String)>| {
            let (code, message) = error.unwrap_or((20, "refused".into()));
            StratumError::Refused {
                what,
                code,
                message,
            }
        };
        match id {
            SUBSCRIBE_ID => {
                if error.is_some() {
                    return Err(refused("mining.subscribe", error));
                }
                let parts = result
                    .as_array()
                    .ok_or(StratumError::BadParam("subscribe result"))?;
                let extranonce1 = parts
                    .get(1)
                    .and_then(Value::as_str)
                    .and_then(|text| hex::decode(text).ok())
                    .filter(|bytes| bytes.len() <= 32)
                    .ok_or(StratumError::BadParam("subscribe extranonce1"))?;
                let size = parts
                    .get(2)
                    .and_then(Value::as_u64)
                    .filter(|size| (1..=MAX_EXTRANONCE2 as u64).contains(size))
                    .ok_or(StratumError::BadParam("subscribe extranonce2_size"))?;
                self.extranonce1 = Some(extranonce1);
                self.extranonce2_size = size as usize;
                Ok(self.ready())
            }
            AUTHORIZE_ID => {
                if error.is_some() || result != &Value::Bool(true) {
                    return Err(refused("mining.authorize", error));
                }
                self.authorized = true;
                Ok(self.ready())
            }
            _ => {
                let difficulty = self.pending.remove(&id).unwrap_or(self.difficulty);
                Ok(vec![match error {
                    None if result == &Value::Bool(true) => ClientEvent::Accepted { difficulty },
                    None => ClientEvent::Rejected {
                        code: ErrorCode::Other,
                        message: "the pool answered false".into(),
                    },
                    Some((code, message)) => ClientEvent::Rejected {
                        code: ErrorCode::from_code(code),
                        message,
                    },
                }])
            }
        }
    }

    fn ready(&mut self) -> Vec<ClientEvent> {
        let mut out = Vec::new();
        if self.authorized && self.extranonce1.is_some() {
            out.push(ClientEvent::Ready);
            // A notify that came before the subscribe answer can be mined now.
            if let Some((job_id, parts)) = self.latest.clone() {
                out.extend(self.work(job_id, parts, true));
            }
        }
        out
    }

    fn work(&self, job_id: String, parts: JobParts, clean: bool) -> Option<ClientEvent> {
        let extranonce1 = self.extranonce1.clone()?;
        Some(ClientEvent::Work(Work {
            job_id,
            parts,
            extranonce1,
            extranonce2_size: self.extranonce2_size,
            difficulty: self.difficulty,
            target: share_target(self.difficulty),
            clean,
        }))
    }

    fn on_call(
        &mut self,
        id: &Value,
        method: &str,
        params: &[Value],
    ) -> Result<Vec<ClientEvent>, StratumError> {
        match method {
            "mining.notify" => {
                let (job_id, parts, clean) = JobParts::from_notify(params)?;
                self.latest = Some((job_id.clone(), parts.clone()));
                if !self.authorized {
                    return Ok(Vec::new());
                }
                Ok(self.work(job_id, parts, clean).into_iter().collect())
            }
            "mining.set_difficulty" => {
                let difficulty = params
                    .first()
                    .and_then(Value::as_f64)
                    .filter(|d| d.is_finite() && *d > 0.0)
                    .ok_or(StratumError::BadParam("set_difficulty value"))?;
                self.difficulty = difficulty;
                Ok(Vec::new())
            }
            "mining.set_extranonce" => {
                let extranonce1 = message::string_param(params, 0, "set_extranonce extranonce1")?;
                let bytes = hex::decode(extranonce1)
                    .ok()
                    .filter(|b| b.len() <= 32)
                    .ok_or(StratumError::BadParam("set_extranonce extranonce1"))?;
                let size = params
                    .get(1)
                    .and_then(Value::as_u64)
                    .filter(|size| (1..=MAX_EXTRANONCE2 as u64).contains(size))
                    .ok_or(StratumError::BadParam("set_extranonce extranonce2_size"))?;
                self.extranonce1 = Some(bytes);
                self.extranonce2_size = size as usize;
                Ok(Vec::new())
            }
            "client.reconnect" => {
                let host = params
                    .first()
                    .and_then(Value::as_str)
                    .filter(|h| !h.is_empty() && h.len() <= 255)
                    .map(str::to_string);
                let port = params.get(1).and_then(|p| match p {
                    Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                });
                let wait_secs = params.get(2).and_then(Value::as_u64).unwrap_or(0).min(600);
                Ok(vec![ClientEvent::Reconnect {
                    host,
                    port,
                    wait_secs,
                }])
            }
            "client.get_version" if !id.is_null() => Ok(vec![ClientEvent::Send(message::result(
                id,
                json!(self.agent),
            ))]),
            _ if !id.is_null() => Ok(vec![ClientEvent::Send(message::error(
                id,
                ErrorCode::Other,
                "method not supported",
            ))]),
            _ => Ok(Vec::new()),
        }
    }
}

/// `stratum+tcp://HOST:PORT` as host and port.
pub fn parse_pool_url(url: &str) -> Result<(String, u16), StratumError> {
    let rest = url.trim().strip_prefix("stratum+tcp://").ok_or_else(|| {
        StratumError::BadUrl(format!("{url:?} does not start with stratum+tcp://"))
    })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| StratumError::BadUrl(format!("{url:?} has no :PORT")))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| StratumError::BadUrl(format!("{url:?}: port must be 1 to 65535")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(StratumError::BadUrl(format!("{url:?} has no host")));
    }
    Ok((host.to_string(), port))
}
