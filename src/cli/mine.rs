//! `hashgrad mine --pool stratum+tcp://HOST:PORT --user U`: mines for a Stratum v1 pool (a
//! hashgrad node's `[stratum]` server or any pool) with the `bench` backends. A thread runs
//! the backend on the pool's work, rolling extranonce2 (then ntime) and searching in chunks of
//! about half a second; the connection loop (tokio) feeds `stratum::client::ClientSession`
//! the pool's lines, hands new work to the thread (raising its stop flag, so a stale job is
//! dropped at once), submits every share that meets the pool's difficulty, reconnects with
//! backoff and honours `client.reconnect`. Prints the rate and accepted/rejected every five
//! seconds on a terminal, and a summary (`--json`: one JSON document) at the end.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::gpu::{AdapterChoice, DeviceChoice};
use crate::hash::select::open_backend;
use crate::hash::{Backend, Job, NonceRange, StopFlag};
use crate::stratum::StratumError;
use crate::stratum::client::{ClientEvent, ClientSession, Share, Work, parse_pool_url};
use crate::stratum::message::MAX_LINE_BYTES;

/// Arguments of `hashgrad mine`.
#[derive(Debug, Args)]
pub struct MineArgs {
    /// The pool, `stratum+tcp://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub pool: String,
    /// Worker name (for a hashgrad node: a 64-hex fingerprint pays that id).
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// Worker password.
    #[arg(long, value_name = "PASS", default_value = "x")]
    pub pass: String,
    /// Mining backend: cpu, gpu or auto.
    #[arg(long, value_name = "NAME", default_value = "cpu")]
    pub backend: DeviceChoice,
    /// CPU threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// GPU adapter by index (see `hashgrad adapters`) or name substring.
    #[arg(long, default_value = "auto")]
    pub adapter: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Stop once this many shares were accepted.
    #[arg(long, value_name = "N")]
    pub shares: Option<u64>,
    /// Print one JSON summary at the end instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(Debug, Default, Serialize)]
pub struct MineSummary {
    /// The backend that mined (`cpu: sha-ni-2x, 2 threads`…).
    pub backend: String,
    /// Nonces hashed.
    pub hashes: u64,
    /// Seconds from the first work to the end.
    pub seconds: f64,
    /// Millions of hashes per second over `seconds`.
    pub mhs: f64,
    /// Shares submitted.
    pub submitted: u64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool refused.
    pub rejected: u64,
    /// Shares found for a job the pool had already replaced (dropped, not submitted).
    pub stale_dropped: u64,
    /// Connections made (1 without reconnects).
    pub connections: u64,
}

/// The work the mining thread runs, and how it is told of new work.
struct Shared {
    work: Mutex<(u64, Option<Arc<Work>>)>,
    wake: Condvar,
    stop: StopFlag,
    quit: AtomicBool,
    hashes: AtomicU64,
}

impl Shared {
    /// Replaces the work (None: nothing to mine) and stops the search on the old one.
    fn set(&self, work: Option<Work>) -> u64 {
        let mut slot = self.work.lock().unwrap_or_else(|e| e.into_inner());
        slot.0 += 1;
        slot.1 = work.map(Arc::new);
        self.stop.stop();
        self.wake.notify_all();
        slot.0
    }
}

/// A share the thread found, with the generation of the work it was for.
struct Found {
    generation: u64,
    share: Share,
    difficulty: f64,
}

/// Runs the backend on whatever work `shared` holds until `quit`.
fn mine(mut backend: Box<dyn Backend>, shared: &Shared, found: &mpsc::UnboundedSender<Found>) {
    let mut chunk: u64 = 1 << 22;
    loop {
        let (generation, work) = {
            let mut slot = shared.work.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if shared.quit.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(work) = slot.1.clone() {
                    shared.stop.reset();
                    break (slot.0, work);
                }
                slot = shared.wake.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let space = work.extranonce2_space();
        let mut counter = 0u64;
        let mut ntime = work.parts.ntime;
        'job: loop {
            let job = Job {
                header: work.header(counter, ntime, 0),
                target: work.target,
            };
            let mut start = 0u64;
            while start < 1 << 32 {
                let count = chunk.min((1 << 32) - start);
                let began = Instant::now();
                let range = NonceRange::new(start as u32, count);
                let outcome = match backend.search(&job, range, &shared.stop) {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        eprintln!("error: the backend failed: {error}");
                        shared.quit.store(true, Ordering::Relaxed);
                        return;
                    }
                };
                shared.hashes.fetch_add(outcome.hashes, Ordering::Relaxed);
                for hit in outcome.found {
                    let _ = found.send(Found {
                        generation,
                        share: Share {
                            worker: String::new(),
                            job_id: work.job_id.clone(),
                            extranonce2: work.extranonce2(counter),
                            ntime,
                            nonce: hit.nonce,
                        },
                        difficulty: work.difficulty,
                    });
                }
                if outcome.stopped {
                    break 'job;
                }
                // About half a second a chunk, so shares go out promptly and new work is seen.
                let took = began.elapsed().as_secs_f64().max(1e-6);
                let rate = outcome.hashes as f64 / took;
                chunk = ((rate * 0.5) as u64).clamp(1 << 16, 1 << 32);
                start += count;
            }
            counter += 1;
            if counter >= space {
                // Every extranonce2 used: the next second of header time.
                counter = 0;
                ntime = ntime.wrapping_add(1);
            }
        }
    }
}

/// Why a connection ended.
enum Ended {
    /// Reconnect now or after `wait` (to `to` when the pool named another address).
    Reconnect {
        to: Option<(String, u16)>,
        wait: Duration,
    },
    /// The run is over (time, share count or Ctrl-C).
    Done,
}

/// Runs `hashgrad mine`.
pub fn run(args: MineArgs) -> anyhow::Result<()> {
    let (host, port) = parse_pool_url(&args.pool).map_err(|e| super::usage(e.to_string()))?;
    if args.threads == Some(0) {
        return Err(super::usage("--threads must be at least 1"));
    }
    if let Some(seconds) = args.seconds
        && !(seconds > 0.0 && seconds <= 1e7)
    {
        return Err(super::usage("--seconds must be more than 0"));
    }
    crate::stratum::Worker::parse(&args.user).map_err(|e| super::usage(format!("--user: {e}")))?;
    let adapter: AdapterChoice = args.adapter.parse().unwrap_or_default();
    let backend = open_backend(args.backend, &adapter, args.threads)
        .map_err(|e| super::usage(format!("cannot open the {} backend: {e}", args.backend)))?;
    let info = backend.info();
    let backend_name =
        format!("{:?}: {} ({} threads)", info.kind, info.path, info.threads).to_lowercase();
    let shared = Arc::new(Shared {
        work: Mutex::new((0, None)),
        wake: Condvar::new(),
        stop: StopFlag::new(),
        quit: AtomicBool::new(false),
        hashes: AtomicU64::new(0),
    });
    let (found_tx, found_rx) = mpsc::unbounded_channel();
    let miner = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("stratum-miner".into())
            .spawn(move || mine(backend, &shared, &found_tx))?
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut summary = MineSummary {
        backend: backend_name,
        ..MineSummary::default()
    };
    let result = runtime.block_on(drive(&args, (host, port), &shared, found_rx, &mut summary));
    shared.quit.store(true, Ordering::Relaxed);
    shared.set(None);
    let _ = miner.join();
    summary.hashes = shared.hashes.load(Ordering::Relaxed);
    summary.mhs = summary.hashes as f64 / summary.seconds.max(1e-9) / 1e6;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "mined {:.2} MH/s for {:.1} s ({}): {} accepted, {} rejected, {} stale dropped",
            summary.mhs,
            summary.seconds,
            summary.backend,
            summary.accepted,
            summary.rejected,
            summary.stale_dropped
        );
    }
    result
}

/// Connects, mines and reconnects until the run is over.
async fn drive(
    args: &MineArgs,
    pool: (String, u16),
    shared: &Shared,
    mut found: mpsc::UnboundedReceiver<Found>,
    summary: &mut MineSummary,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let deadline = args
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let mut session = ClientSession::new(
        &args.user,
        &args.pass,
        concat!("hashgrad/", env!("CARGO_PKG_VERSION")),
    );
    let mut address = pool;
    let mut backoff = Duration::from_secs(1);
    let mut first_work: Option<Instant> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((address.0.as_str(), address.1)),
        );
        let stream = tokio::select! {
            stream = connect => stream.ok().and_then(Result::ok),
            _ = &mut ctrl_c => break Ok(()),
            _ = sleep_until(deadline) => break Ok(()),
        };
        let ended = match stream {
            Some(stream) => {
                summary.connections += 1;
                backoff = Duration::from_secs(1);
                let connection = Connection {
                    session: &mut session,
                    shared,
                    found: &mut found,
                    summary,
                    first_work: &mut first_work,
                    args,
                };
                tokio::select! {
                    ended = connection.run(stream) => ended,
                    _ = &mut ctrl_c => Ok(Ended::Done),
                    _ = sleep_until(deadline) => Ok(Ended::Done),
                }
            }
            None => Ok(Ended::Reconnect {
                to: None,
                wait: backoff,
            }),
        };
        // Whatever happened, the old work is void (a new connection has a new extranonce1).
        shared.set(None);
        match ended {
            Ok(Ended::Done) => break Ok(()),
            Err(error) => break Err(error),
            Ok(Ended::Reconnect { to, wait }) => {
                if let Some(to) = to {
                    address = to;
                }
                eprintln!(
                    "pool {}:{} unreachable or gone; reconnecting in {} s",
                    address.0,
                    address.1,
                    wait.as_secs()
                );
                backoff = (backoff * 2).min(Duration::from_secs(30));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = &mut ctrl_c => break Ok(()),
                    _ = sleep_until(deadline) => break Ok(()),
                }
            }
        }
    };
    summary.seconds = first_work.map_or(started, |at| at).elapsed().as_secs_f64();
    result
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One connection to the pool.
struct Connection<'a> {
    session: &'a mut ClientSession,
    shared: &'a Shared,
    found: &'a mut mpsc::UnboundedReceiver<Found>,
    summary: &'a mut MineSummary,
    first_work: &'a mut Option<Instant>,
    args: &'a MineArgs,
}

impl Connection<'_> {
    async fn run(self, stream: TcpStream) -> anyhow::Result<Ended> {
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        for line in self.session.start() {
            write.write_all(line.as_bytes()).await?;
        }
        // Shares of work older than the last clean job are stale: dropped, not submitted.
        let mut valid_from = u64::MAX;
        let mut report = tokio::time::interval(Duration::from_secs(5));
        let terminal = !self.args.json && std::io::stderr().is_terminal();
        let mut buffer = Vec::new();
        loop {
            // Bytes a line may still grow by (a line past the limit ends the connection).
            let room = (MAX_LINE_BYTES + 1).saturating_sub(buffer.len()) as u64;
            let mut limited = tokio::io::AsyncReadExt::take(&mut lines, room);
            tokio::select! {
                read = limited.read_until(b'\n', &mut buffer) => {
                    match read {
                        Ok(0) | Err(_) => return Ok(Ended::Reconnect { to: None, wait: Duration::from_secs(1) }),
                        Ok(_) => {}
                    }
                    if !buffer.ends_with(b"\n") && buffer.len() > MAX_LINE_BYTES {
                        return Ok(Ended::Reconnect { to: None, wait: Duration::from_secs(1) });
                    }
                    let events = match self.session.on_line(&buffer) {
                        Ok(events) => events,
                        Err(error @ StratumError::Refused { .. }) => {
                            return Err(super::usage(format!("{error} (check --user and --pass)")));
                        }
                        Err(error) => {
                            eprintln!("pool sent a bad line ({error}); reconnecting");
                            return Ok(Ended::Reconnect { to: None, wait: Duration::from_secs(1) });
                        }
                    };
                    buffer.clear();
                    for event in events {
                        match event {
                            ClientEvent::Work(work) => {
                                self.first_work.get_or_insert_with(Instant::now);
                                let clean = work.clean;
                                let generation = self.shared.set(Some(work));
                                if clean || valid_from == u64::MAX {
                                    valid_from = generation;
                                }
                            }
                            ClientEvent::Accepted { .. } => self.summary.accepted += 1,
                            ClientEvent::Rejected { code, message } => {
                                self.summary.rejected += 1;
                                if terminal {
                                    eprintln!("share rejected: {} {message}", code.code());
                                }
                            }
                            ClientEvent::Reconnect { host, port, wait_secs } => {
                                let to = match (host, port) {
                                    (Some(host), Some(port)) => Some((host, port)),
                                    _ => None,
                                };
                                return Ok(Ended::Reconnect { to, wait: Duration::from_secs(wait_secs) });
                            }
                            ClientEvent::Send(line) => write.write_all(line.as_bytes()).await?,
                            _ => {}
                        }
                    }
                    if self.args.shares.is_some_and(|n| self.summary.accepted >= n) {
                        return Ok(Ended::Done);
                    }
                }
                Some(found) = self.found.recv() => {
                    if found.generation < valid_from || valid_from == u64::MAX {
                        self.summary.stale_dropped += 1;
                        continue;
                    }
                    let share = Share { worker: self.session.user().to_string(), ..found.share };
                    let line = self.session.submit(&share, found.difficulty);
                    write.write_all(line.as_bytes()).await?;
                    self.summary.submitted += 1;
                }
                _ = report.tick() => {
                    if terminal && let Some(first) = self.first_work {
                        let seconds = first.elapsed().as_secs_f64().max(1e-9);
                        let hashes = self.shared.hashes.load(Ordering::Relaxed);
                        eprintln!(
                            "{:.2} MH/s  accepted {}  rejected {}",
                            hashes as f64 / seconds / 1e6,
                            self.summary.accepted,
                            self.summary.rejected
                        );
                    }
                }
            }
        }
    }
}
