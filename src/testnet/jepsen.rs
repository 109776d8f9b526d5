//! `hashgrad testnet --jepsen SECS`: a Jepsen-style workload on the testnet's replicated config
//! store while the plan's nemesis kills leaders and partitions nodes, and the verdict of
//! `crate::check` on what the clients saw.
//!
//! Two histories, on separate `user.*` keys, recorded with every operation's invoke and
//! completion. A write the node says it did not make (503: no leader, leader unreachable) or
//! that never reached a node fails; one whose outcome is unknown (504, a timeout, a dropped
//! connection) is `info` and stays open to the end; a read without an answer fails (no
//! effect). As in Jepsen's independent keys, the keys change every `KEY_EPOCH`, so each key's
//! history stays short and the few open writes in it keep the search tractable.
//! - **linearizable** (`history.jsonl`, keys `a<epoch>` and `b<epoch>`): clients write,
//!   compare-and-set and
//!   read at `consistency=linearizable` on random nodes. The design guarantees linearizability
//!   (writes through the Raft log, ReadIndex reads); the run fails if the checker refutes it.
//! - **local** (`local-history.jsonl`, key `x<epoch>`): one client writes distinct values on
//!   random nodes, and one reader per node reads at `consistency=local` on that node only.
//!   Local reads see a node's applied prefix of the log: they may be stale, so the history need
//!   not be linearizable (reported, and expected to fail when a partition leaves a reader
//!   behind), but each reader's reads follow the log order, so it must stay causally
//!   consistent; the run fails if the causal check refutes it.
//! - **lease** (`lease-history.jsonl`, key `l<epoch>`): the same shape with reads at
//!   `consistency=lease`. A lease read is linearizable only while the leader's clock runs no
//!   slower than its followers' (and its ticks come on time); the verdict is reported, and a
//!   slow-clocked leader cut off from the majority is expected to refute it.
//!
//! Owns the clients (tokio tasks, HTTP/1.1 over TCP), the recorders and the verdict files in
//! `DIR/jepsen/`; the checking is `crate::check`'s.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::TestnetError;
use super::status::{self, ApiEndpoint};
use crate::check::linearize::{self, Verdict};
use crate::check::{CheckOptions, History, causal, format, model};

/// Clients on the linearizable keys.
const LINEARIZABLE_CLIENTS: u64 = 4;
/// Client ids of the local workload: its writer, then one reader per node.
const LOCAL_WRITER: u64 = 100;
const LOCAL_READERS: u64 = 200;
/// Client ids of the lease workload: its writers, then one reader per node.
const LEASE_WRITER: u64 = 300;
const LEASE_READERS: u64 = 400;
/// How long one operation may wait for its answer before it counts as unknown.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest reply a client reads.
const MAX_REPLY_BYTES: usize = 64 << 10;
/// Time budget of each check.
const CHECK_BUDGET: Duration = Duration::from_secs(60);
/// How long the clients use one set of keys.
const KEY_EPOCH: Duration = Duration::from_millis(1000);

/// Each node's API while it is up (a restarted node has a new token), kept current by the
/// testnet's poll loop through `Workload::retarget`.
#[derive(Debug, Clone, Default)]
struct Targets(Arc<Mutex<Vec<Option<ApiEndpoint>>>>);

impl Targets {
    /// Sets every node's API (`None` while it is down).
    fn update(&self, apis: Vec<Option<ApiEndpoint>>) {
        *self.lock() = apis;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<ApiEndpoint>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn node(&self, index: usize) -> Option<ApiEndpoint> {
        self.lock().get(index).cloned().flatten()
    }

    fn any(&self, rng: &mut ChaCha8Rng) -> Option<ApiEndpoint> {
        let up: Vec<ApiEndpoint> = self.lock().iter().flatten().cloned().collect();
        (!up.is_empty()).then(|| up[rng.random_range(0..up.len())].clone())
    }
}

/// A history being recorded: JSONL lines in `crate::check::format::jsonl`'s format, times in
/// nanoseconds since the workload began.
struct Recorder {
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            lines: Mutex::new(Vec::new()),
        }
    }

    fn record(&self, client: u64, kind: &str, f: &str, key: &str, value: Value) {
        let time = self.start.elapsed().as_nanos() as u64;
        let line = json!({
            "client": client, "type": kind, "f": f, "key": key, "value": value, "time": time,
        });
        self.lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line.to_string());
    }

    fn text(&self) -> String {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// The running workload.
pub struct Workload {
    targets: Targets,
    stop: Arc<AtomicBool>,
    clients: tokio::task::JoinSet<()>,
    linearizable: Arc<Recorder>,
    local: Arc<Recorder>,
    lease: Arc<Recorder>,
    ends: Instant,
}

impl std::fmt::Debug for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workload")
            .field("stop", &self.stop)
            .field("clients", &self.clients.len())
            .field("ends", &self.ends)
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// Starts the clients against the nodes at `addrs` (`None` for a node that is down) for
    /// `duration`.
    pub fn start(apis: Vec<Option<ApiEndpoint>>, duration: Duration, seed: u64) -> Workload {
        let nodes = apis.len();
        let targets = Targets::default();
        targets.update(apis);
        let targets = &targets;
        let now = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let linearizable = Arc::new(Recorder::new(now));
        let local = Arc::new(Recorder::new(now));
        let lease = Arc::new(Recorder::new(now));
        let ends = now + duration;
        let mut clients = tokio::task::JoinSet::new();
        let running =
            move |stop: &AtomicBool| !stop.load(Ordering::Relaxed) && Instant::now() < ends;
        let epoch = move || (now.elapsed().as_millis() / KEY_EPOCH.as_millis()) as u64;
        for client in 0..LINEARIZABLE_CLIENTS {
            let (targets, stop, history) = (targets.clone(), stop.clone(), linearizable.clone());
            clients.spawn(async move {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ client);
                // The last value this client wrote or read, per key.
                let mut seen: HashMap<String, String> = HashMap::new();
                let mut seq = 0;
                while running(&stop) {
                    let Some(node) = targets.any(&mut rng) else {
                        pause(&mut rng).await;
                        continue;
                    };
                    let key = format!("{}{}", ["a", "b"][rng.random_range(0..2)], epoch());
                    seq += 1;
                    let value = format!("c{client}s{seq}");
                    match (rng.random_range(0..3), seen.get(&key)) {
                        (0, _) => {
                            if let Some(Value::String(read)) =
                                read(&history, client, &node, &key, "linearizable").await
                            {
                                seen.insert(key, read);
                            }
                        }
                        (1, Some(old)) => {
                            let old = old.clone();
                            write(&history, client, &node, &key, &value, Some(&old)).await;
                            seen.insert(key, value);
                        }
                        _ => {
                            write(&history, client, &node, &key, &value, None).await;
                            seen.insert(key, value);
                        }
                    }
                    pause(&mut rng).await;
                }
            });
        }
        for (recorder, reads) in [(&local, &LOCAL_READS), (&lease, &LEASE_READS)] {
            spawn_reader_workload(
                &mut clients,
                ReaderClients {
                    reads,
                    targets,
                    stop: &stop,
                    history: recorder,
                    running,
                    epoch,
                    seed,
                    nodes,
                },
            );
        }
        Workload {
            targets: targets.clone(),
            stop,
            clients,
            linearizable,
            local,
            lease,
            ends,
        }
    }

    /// Points the clients at the nodes' current APIs (`None` while a node is down).
    pub fn retarget(&self, apis: Vec<Option<ApiEndpoint>>) {
        self.targets.update(apis);
    }

    /// Whether the workload's time is up.
    pub fn is_due(&self) -> bool {
        Instant::now() >= self.ends
    }

    /// Stops the clients (each finishes or times out its operation) and returns the histories.
    pub async fn finish(mut self) -> Histories {
        self.stop.store(true, Ordering::Relaxed);
        while self.clients.join_next().await.is_some() {}
        Histories {
            linearizable: self.linearizable.text(),
            local: self.local.text(),
            lease: self.lease.text(),
        }
    }
}

/// The two recorded histories, as JSONL text.
#[derive(Debug)]
pub struct Histories {
    /// The linearizable workload's history (writes, CAS and linearizable reads), written to
    /// `jepsen/history.jsonl`.
    pub linearizable: String,
    /// The local-read workload's history (one writer, one local reader per node), written to
    /// `jepsen/local-history.jsonl`.
    pub local: String,
    /// The lease-read workload's history (three writers, one lease reader per node), written to
    /// `jepsen/lease-history.jsonl`.
    pub lease: String,
}

/// One reader workload: writers of distinct values on random nodes and one reader per node at
/// `consistency` on its own node, on the key `<prefix><epoch>`.
struct ReaderWorkload {
    prefix: &'static str,
    consistency: &'static str,
    /// Writer w is client `writer + w`.
    writer: u64,
    /// Concurrent writers: the local workload's causal check wants one; the lease workload
    /// wants a write to complete on the majority while one writer waits on a cut-off node.
    writers: u64,
    /// Reader of node i is client `readers + i`.
    readers: u64,
}

const LOCAL_READS: ReaderWorkload = ReaderWorkload {
    prefix: "x",
    consistency: "local",
    writer: LOCAL_WRITER,
    writers: 1,
    readers: LOCAL_READERS,
};
const LEASE_READS: ReaderWorkload = ReaderWorkload {
    prefix: "l",
    consistency: "lease",
    writer: LEASE_WRITER,
    writers: 3,
    readers: LEASE_READERS,
};

/// What a reader workload's clients share.
struct ReaderClients<'a, R, E> {
    reads: &'static ReaderWorkload,
    targets: &'a Targets,
    stop: &'a Arc<AtomicBool>,
    history: &'a Arc<Recorder>,
    running: R,
    epoch: E,
    seed: u64,
    nodes: usize,
}

fn spawn_reader_workload<R, E>(clients: &mut tokio::task::JoinSet<()>, c: ReaderClients<'_, R, E>)
where
    R: Fn(&AtomicBool) -> bool + Copy + Send + 'static,
    E: Fn() -> u64 + Copy + Send + 'static,
{
    let ReaderClients {
        reads,
        targets,
        stop,
        history,
        running,
        epoch,
        seed,
        nodes,
    } = c;
    for writer in (0..reads.writers).map(|w| reads.writer + w) {
        let (targets, stop, history) = (targets.clone(), stop.clone(), history.clone());
        clients.spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ writer);
            let mut seq = 0;
            while running(&stop) {
                if let Some(node) = targets.any(&mut rng) {
                    seq += 1;
                    let value = format!("v{}.{seq}", writer - reads.writer);
                    let key = format!("{}{}", reads.prefix, epoch());
                    write(&history, writer, &node, &key, &value, None).await;
                }
                pause(&mut rng).await;
            }
        });
    }
    for index in 0..nodes {
        let (targets, stop, history) = (targets.clone(), stop.clone(), history.clone());
        let client = reads.readers + index as u64;
        clients.spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ client);
            while running(&stop) {
                if let Some(node) = targets.node(index) {
                    let key = format!("{}{}", reads.prefix, epoch());
                    read(&history, client, &node, &key, reads.consistency).await;
                }
                pause(&mut rng).await;
            }
        });
    }
}

async fn pause(rng: &mut ChaCha8Rng) {
    tokio::time::sleep(Duration::from_millis(rng.random_range(5..40))).await;
}

/// What became of one request.
enum Answer {
    Reply(u16, String),
    /// The connection failed: the node never saw the request.
    NotSent,
    /// No reply in time, or the connection broke after the request left.
    Lost,
}

async fn call(node: &ApiEndpoint, method: &str, path: &str, body: &str) -> Answer {
    let answer = status::request(
        node.addr,
        node.token.as_deref(),
        method,
        path,
        body,
        MAX_REPLY_BYTES,
    );
    match tokio::time::timeout(OPERATION_TIMEOUT, answer).await {
        Ok(Ok((code, body))) => Answer::Reply(code, body),
        Ok(Err(error)) if !error.sent => Answer::NotSent,
        _ => Answer::Lost,
    }
}

/// A read at `consistency`: ok with the value (null when unset), else fail (no effect).
/// Returns the value read.
async fn read(
    history: &Recorder,
    client: u64,
    node: &ApiEndpoint,
    key: &str,
    consistency: &str,
) -> Option<Value> {
    history.record(client, "invoke", "read", key, Value::Null);
    let path = format!("/config/user.{key}?consistency={consistency}");
    let value = match call(node, "GET", &path, "").await {
        Answer::Reply(200 | 404, body) => serde_json::from_str::<Value>(&body)
            .ok()
            .map(|answer| answer["value"].clone()),
        _ => None,
    };
    match &value {
        Some(value) => history.record(client, "ok", "read", key, value.clone()),
        None => history.record(client, "fail", "read", key, Value::Null),
    }
    value
}

/// A write, or with `expect` a compare-and-set: ok, fail (refused: no effect) or info (no
/// answer: it may or may not have happened).
async fn write(
    history: &Recorder,
    client: u64,
    node: &ApiEndpoint,
    key: &str,
    value: &str,
    expect: Option<&str>,
) {
    let (f, invoke, path) = match expect {
        None => ("write", json!(value), format!("/config/user.{key}")),
        Some(old) => (
            "cas",
            json!([old, value]),
            format!("/config/user.{key}?expect={old}"),
        ),
    };
    history.record(client, "invoke", f, key, invoke);
    let kind = match call(node, "PUT", &path, value).await {
        Answer::Reply(200, _) => "ok",
        // 401/403: a token from before the node restarted; refused, so no effect.
        Answer::Reply(400 | 401 | 403 | 409 | 503, _) | Answer::NotSent => "fail",
        Answer::Reply(..) | Answer::Lost => "info",
    };
    history.record(client, kind, f, key, Value::Null);
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// `linearizable`, `not linearizable`, `causally consistent`, `not causally consistent`
    /// or `unknown` (the time budget ran out).
    pub verdict: String,
    /// Why it fails, one sentence per violation.
    pub explanation: Vec<String>,
}

/// The verdict of a `--jepsen` run (also `DIR/jepsen/verdict.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JepsenReport {
    /// Operations recorded on the linearizable keys.
    pub operations: usize,
    /// Operations recorded on the local key.
    pub local_operations: usize,
    /// Writes, CAS and linearizable reads: must be linearizable.
    pub linearizable: CheckOutcome,
    /// Local reads with their writes: may be stale (not linearizable) ...
    pub local_linearizable: CheckOutcome,
    /// ... but must be causally consistent.
    pub local_causal: CheckOutcome,
    /// Operations recorded on the lease key.
    #[serde(default)]
    pub lease_operations: usize,
    /// Lease reads with their writes: linearizable while clocks run at one rate and ticks
    /// come on time, refuted by a leader whose clock runs slow (reported; the run does not
    /// fail on it).
    #[serde(default)]
    pub lease_linearizable: Option<CheckOutcome>,
}

impl JepsenReport {
    /// Whether the design's guarantees held.
    pub fn holds(&self) -> bool {
        self.linearizable.verdict == Verdict::Linearizable.name()
            && self.local_causal.verdict == "causally consistent"
    }

    /// The summary's line.
    pub fn text(&self) -> String {
        let lease = self
            .lease_linearizable
            .as_ref()
            .map_or("not recorded", |o| o.verdict.as_str());
        format!(
            "jepsen: {} operations at consistency=linearizable: {}; {} with local reads: {} \
             (stale reads are allowed), {}; {} with lease reads: {} (leases assume clocks at \
             one rate)",
            self.operations,
            self.linearizable.verdict,
            self.local_operations,
            self.local_linearizable.verdict,
            self.local_causal.verdict,
            self.lease_operations,
            lease,
        )
    }
}

/// Writes the histories into `dir/jepsen/`, checks them and writes `verdict.json` there.
pub fn judge(dir: &Path, histories: &Histories) -> Result<JepsenReport, TestnetError> {
    let out = dir.join("jepsen");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| TestnetError::Io(path, e)
    };
    std::fs::create_dir_all(&out).map_err(io(&out))?;
    for (name, text) in [
        ("history.jsonl", &histories.linearizable),
        ("local-history.jsonl", &histories.local),
        ("lease-history.jsonl", &histories.lease),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let parse = |text: &str| {
        format::parse(text, Some(format::Format::Jsonl))
            .map(|(_, history)| history)
            .map_err(|e| TestnetError::Invalid {
                what: "recorded history",
                reason: e.to_string(),
            })
    };
    let linear = parse(&histories.linearizable)?;
    let local = parse(&histories.local)?;
    let lease = parse(&histories.lease)?;
    let report = JepsenReport {
        operations: linear.operations.len(),
        local_operations: local.operations.len(),
        linearizable: linearizability(&linear, true),
        local_linearizable: linearizability(&local, false),
        local_causal: causality(&local),
        lease_operations: lease.operations.len(),
        lease_linearizable: Some(linearizability(&lease, false)),
    };
    let path = out.join("verdict.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(&path, json + "\n").map_err(io(&path))?;
    Ok(report)
}

fn linearizability(history: &History, with_cas: bool) -> CheckOutcome {
    let stop = AtomicBool::new(false);
    let options = CheckOptions {
        stop: Some(&stop),
        ..CheckOptions::default()
    };
    let result = std::thread::scope(|scope| {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let stop = &stop;
        scope.spawn(move || {
            if wait.recv_timeout(CHECK_BUDGET).is_err() {
                stop.store(true, Ordering::Relaxed);
            }
        });
        let result = if with_cas {
            linearize::check(history, &model::CasRegister, &options)
        } else {
            linearize::check(history, &model::Register, &options)
        };
        let _ = done.send(());
        result
    });
    match result {
        Ok(report) => CheckOutcome {
            verdict: report.verdict.name().to_string(),
            explanation: report.explain(history),
        },
        Err(error) => CheckOutcome {
            verdict: "unknown".into(),
            explanation: vec![error.to_string()],
        },
    }
}

fn causality(history: &History) -> CheckOutcome {
    match causal::check(history) {
        Ok(report) => match report.violation {
            None => CheckOutcome {
                verdict: "causally consistent".into(),
                explanation: Vec::new(),
            },
            Some(violation) => CheckOutcome {
                verdict: "not causally consistent".into(),
                explanation: vec![violation.explanation],
            },
        },
        Err(error) => CheckOutcome {
            verdict: "unknown".into(),
            explanation: vec![error.to_string()],
        },
    }
}
