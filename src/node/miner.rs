//! The miner: one blocking thread that runs the `hash::Backend` on the current block template.
//! The node replaces the template on every new tip; the old search's `StopFlag` is raised so
//! stale work stops within milliseconds. When a template's nonce space runs out the miner rolls
//! the timestamp or the coinbase extra-nonce and goes on. A template whose time the
//! median-time rule pushed too far ahead of the clock waits for the clock (see
//! `BlockTemplate::mineable_from`).
//!
//! Owns the thread and the search loop; must not judge blocks (found blocks go to the node).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::hash::{Backend, NonceRange, StopFlag};
use crate::pow::{Block, BlockTemplate};

/// Nonces searched between checks for a fresher timestamp (at most).
const CHUNK: u64 = 1 << 20;
/// The fewest nonces one search call covers.
const MIN_CHUNK: u64 = 1 << 10;

/// Nonces per search call for `template`: about 16 expected blocks' worth, within
/// `MIN_CHUNK..=CHUNK`. A search reports every qualifying nonce of its range, so on an easy
/// target (regtest: one hash in two qualifies) a full `CHUNK` hashed and checked ~500,000
/// winners (~0.15 s of a core) before the first could be announced: every node spent that
/// burst at once, and the competing blocks it delayed made a fork at a quarter of all heights
/// in a 5-node testnet.
fn chunk_for(template: &BlockTemplate) -> u64 {
    let expected: u64 = template.job().target.work().0.saturating_to();
    expected.saturating_mul(16).clamp(MIN_CHUNK, CHUNK)
}
/// How often a miner waiting for the clock (template time too far ahead) looks again.
const CLOCK_POLL: Duration = Duration::from_millis(100);

struct Work {
    template: Option<BlockTemplate>,
    /// Bumped on every replacement, so the thread notices a new job.
    generation: u64,
    /// Do not hash before this instant (pacing on easy-target networks).
    not_before: Instant,
    stop: StopFlag,
    shutdown: bool,
}

struct Shared {
    work: Mutex<Work>,
    changed: Condvar,
    hashes: AtomicU64,
    running: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The node's handle on the mining thread.
pub struct Miner {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Miner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Miner")
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

impl Miner {
    /// Starts the thread; found blocks are sent on `found`.
    pub fn start(backend: Box<dyn Backend>, found: mpsc::UnboundedSender<Block>) -> Miner {
        Miner::start_with_clock(backend, found, unix_now)
    }

    /// `start` with the clock used for timestamp rolling (tests pin it).
    pub(crate) fn start_with_clock(
        mut backend: Box<dyn Backend>,
        found: mpsc::UnboundedSender<Block>,
        clock: fn() -> u64,
    ) -> Miner {
        let shared = Arc::new(Shared {
            work: Mutex::new(Work {
                template: None,
                generation: 0,
                not_before: Instant::now(),
                stop: StopFlag::new(),
                shutdown: false,
            }),
            changed: Condvar::new(),
            hashes: AtomicU64::new(0),
            running: AtomicBool::new(false),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hashgrad-miner".into())
            .spawn(move || mine(&thread_shared, backend.as_mut(), &found, clock))
            .ok();
        Miner { shared, thread }
    }

    /// Replaces the job: the running search stops, the next one starts on `template` no
    /// earlier than `not_before`.
    pub fn replace(&self, template: BlockTemplate, not_before: Instant) {
        let mut work = self.shared.lock();
        work.stop.stop();
        work.stop = StopFlag::new();
        work.template = Some(template);
        work.generation += 1;
        work.not_before = not_before;
        self.shared.changed.notify_all();
    }

    /// Replaces the template but keeps the pacing deadline (e.g. new receipts to include).
    pub fn refresh(&self, template: BlockTemplate) {
        let not_before = self.shared.lock().not_before;
        self.replace(template, not_before);
    }

    /// Stops mining until the next `replace`.
    pub fn pause(&self) {
        let mut work = self.shared.lock();
        work.stop.stop();
        work.template = None;
        work.generation += 1;
        self.shared.changed.notify_all();
    }

    /// Total nonces hashed since start.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// True while a search runs (not paused, not pacing).
    pub fn is_hashing(&self) -> bool {
        self.shared.running.load(Ordering::Relaxed)
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        {
            let mut work = self.shared.lock();
            work.shutdown = true;
            work.stop.stop();
            self.shared.changed.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The thread body: wait for a job, search it chunk by chunk, report the first block found.
fn mine(
    shared: &Shared,
    backend: &mut dyn Backend,
    found: &mpsc::UnboundedSender<Block>,
    clock: fn() -> u64,
) {
    let mut done_generation = 0;
    let mut warned_generation = 0;
    loop {
        // Wait for a job we have not finished, and for its pacing deadline.
        let (mut template, generation, stop) = {
            let mut work = shared.lock();
            loop {
                if work.shutdown {
                    return;
                }
                let now = Instant::now();
                match &work.template {
                    Some(template)
                        if work.generation != done_generation && work.not_before <= now =>
                    {
                        // The median-time rule may push the template's time ahead of the
                        // clock; mining it would make blocks peers refuse. Wait for the clock.
                        let ahead = template.mineable_from().saturating_sub(clock());
                        if ahead == 0 {
                            break;
                        }
                        if warned_generation != work.generation {
                            warned_generation = work.generation;
                            info!(
                                height = template.height(),
                                ahead_secs = ahead,
                                "chain time is ahead of the clock; waiting for the clock \
                                 before mining (peers refuse blocks from too far ahead)"
                            );
                        }
                        work = shared
                            .changed
                            .wait_timeout(work, CLOCK_POLL)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    Some(_) if work.generation != done_generation => {
                        let wait = work.not_before - now;
                        work = shared
                            .changed
                            .wait_timeout(work, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    _ => {
                        work = shared.changed.wait(work).unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
            let Some(template) = work.template.clone() else {
                continue;
            };
            (template, work.generation, work.stop.clone())
        };
        shared.running.store(true, Ordering::Relaxed);
        let chunk = chunk_for(&template);
        let mut next = 0u64;
        let outcome = loop {
            if stop.is_stopped() {
                break None;
            }
            if next >= NonceRange::FULL.count {
                template.roll_extra_nonce();
                next = 0;
            } else if template.roll_time(clock()) {
                next = 0;
            }
            let job = template.job();
            let range = NonceRange::new(next as u32, chunk.min(NonceRange::FULL.count - next));
            match backend.search(&job, range, &stop) {
                Ok(result) => {
                    shared.hashes.fetch_add(result.hashes, Ordering::Relaxed);
                    if let Some(hit) = result.found.first() {
                        break Some(template.with_nonce(hit.nonce));
                    }
                    next += range.count;
                }
                Err(error) => {
                    warn!(%error, "mining backend failed; mining paused until the next tip");
                    break None;
                }
            }
        };
        shared.running.store(false, Ordering::Relaxed);
        done_generation = generation;
        if let Some(block) = outcome {
            debug!(height = template.height(), "block found");
            if found.send(block).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::hash::{BackendInfo, BackendKind, HashError, Job, SearchOutcome};
    use crate::pow::{Chain, NetworkParams, NodeId, Target, U256};

    /// Records every job it is given; `exhaust` pretends to hash whole ranges at once without
    /// finding anything, otherwise it runs the reference search against an impossible target.
    struct Recorder {
        jobs: Arc<Mutex<Vec<(Job, bool)>>>,
        exhaust: bool,
        calls: Arc<AtomicUsize>,
    }

    impl Backend for Recorder {
        fn info(&self) -> BackendInfo {
            BackendInfo {
                kind: BackendKind::Cpu,
                device: "test".into(),
                path: "recorder".into(),
                threads: 1,
            }
        }

        fn search(
            &mut self,
            job: &Job,
            range: NonceRange,
            stop: &StopFlag,
        ) -> Result<SearchOutcome, HashError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let outcome = if self.exhaust {
                SearchOutcome {
                    found: Vec::new(),
                    hashes: range.count,
                    stopped: false,
                }
            } else {
                let impossible = Job {
                    header: job.header,
                    target: Target(U256::ZERO),
                };
                crate::hash::reference::search(&impossible, range, stop)
            };
            let mut jobs = self.jobs.lock().expect("jobs");
            if jobs.len() < 8192 {
                jobs.push((job.clone(), outcome.stopped));
            } else {
                // Enough recorded; stop spinning so the test thread gets the lock.
                drop(jobs);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(outcome)
        }
    }

    fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_new_job_stops_the_stale_search_and_takes_over() {
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let backend = Recorder {
            jobs: jobs.clone(),
            exhaust: false,
            calls: calls.clone(),
        };
        let (found, _blocks) = mpsc::unbounded_channel();
        let miner = Miner::start(Box::new(backend), found);
        // A devnet target: whole chunks per search call, long enough to be interrupted.
        let chain = Chain::new(NetworkParams::by_name("devnet").expect("devnet"));
        // Templates on the real clock: one far ahead of it would wait for the clock.
        let first = chain.template(NodeId([1; 32]), Vec::new(), unix_now());
        let second = chain.template(NodeId([2; 32]), Vec::new(), unix_now());
        miner.replace(first.clone(), Instant::now());
        wait_for("the first search to start", || {
            calls.load(Ordering::Relaxed) >= 1 && miner.is_hashing()
        });
        miner.replace(second.clone(), Instant::now());
        wait_for("the second job to be searched", || {
            jobs.lock()
                .expect("jobs")
                .iter()
                .any(|(job, _)| job.header[36..68] == second.header().merkle_root)
        });
        let jobs = jobs.lock().expect("jobs");
        let (stale, stopped) = &jobs[0];
        // (The miner may roll the timestamp; the merkle root names the template.)
        assert_eq!(stale.header[36..68], first.header().merkle_root);
        assert!(*stopped, "the stale search was interrupted, not finished");
        assert!(miner.hashes() > 0);
    }

    #[test]
    fn an_easy_target_is_announced_after_a_few_hashes_not_a_whole_chunk() {
        let (found, mut blocks) = mpsc::unbounded_channel();
        let miner = Miner::start(Box::new(crate::hash::cpu::CpuBackend::new(Some(1))), found);
        let mut chain = Chain::new(NetworkParams::regtest());
        miner.replace(
            chain.template(NodeId([1; 32]), Vec::new(), unix_now()),
            Instant::now(),
        );
        let block = blocks.blocking_recv().expect("a block");
        let hashed = miner.hashes();
        drop(miner);
        assert!(chain.accept_block(block, unix_now()).is_ok());
        // Before: a whole CHUNK (1,048,576 nonces) was hashed before the first block left.
        assert!(
            hashed <= MIN_CHUNK,
            "{hashed} nonces hashed for a regtest block"
        );
    }

    #[test]
    fn search_calls_cover_about_sixteen_expected_blocks_within_bounds() {
        let regtest = Chain::new(NetworkParams::regtest());
        let easy = regtest.template(NodeId([1; 32]), Vec::new(), unix_now());
        assert_eq!(chunk_for(&easy), MIN_CHUNK);
        // devnet's easiest target: about 65,536 hashes per block.
        let devnet = Chain::new(NetworkParams::by_name("devnet").expect("devnet"));
        let hard = devnet.template(NodeId([1; 32]), Vec::new(), unix_now());
        assert_eq!(chunk_for(&hard), CHUNK);
    }

    static PINNED_CLOCK: AtomicU64 = AtomicU64::new(1_800_000_000);

    #[test]
    fn a_template_ahead_of_the_clock_waits_for_the_clock() {
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let backend = Recorder {
            jobs,
            exhaust: false,
            calls: calls.clone(),
        };
        let (found, _blocks) = mpsc::unbounded_channel();
        let miner = Miner::start_with_clock(Box::new(backend), found, || {
            PINNED_CLOCK.load(Ordering::SeqCst)
        });
        let now = PINNED_CLOCK.load(Ordering::SeqCst);
        let chain = Chain::new(NetworkParams::regtest());
        let mut template = chain.template(NodeId([1; 32]), Vec::new(), now);
        let ahead = crate::pow::template::MAX_AHEAD_OF_CLOCK_SECS + 30;
        template.set_time(u32::try_from(now + ahead).expect("u32"));
        miner.replace(template, Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert_eq!(
            calls.load(Ordering::Relaxed),
            0,
            "no search while the template is {ahead} s ahead of the clock"
        );
        PINNED_CLOCK.store(now + 30, Ordering::SeqCst);
        wait_for("the search once the clock caught up", || {
            calls.load(Ordering::Relaxed) >= 1
        });
    }

    #[test]
    fn an_exhausted_nonce_space_rolls_the_extra_nonce() {
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let backend = Recorder {
            jobs: jobs.clone(),
            exhaust: true,
            calls: Arc::new(AtomicUsize::new(0)),
        };
        let (found, _blocks) = mpsc::unbounded_channel();
        // A clock that stands still, so timestamp rolling cannot refresh the nonce space.
        let miner = Miner::start_with_clock(Box::new(backend), found, || 1_800_000_000);
        // A devnet target: whole chunks per search call, so 4,096 calls exhaust the nonces.
        let chain = Chain::new(NetworkParams::by_name("devnet").expect("devnet"));
        let template = chain.template(NodeId([1; 32]), Vec::new(), 1_800_000_000);
        let merkle = template.header().merkle_root;
        miner.replace(template, Instant::now());
        wait_for("a rolled extra-nonce", || {
            jobs.lock()
                .expect("jobs")
                .iter()
                .any(|(job, _)| job.header[36..68] != merkle)
        });
        // Stop the miner before reading the record: its thread takes the same lock in
        // `search`, so joining it while holding the guard would deadlock.
        drop(miner);
        let jobs = jobs.lock().expect("jobs");
        let first_rolled = jobs
            .iter()
            .position(|(job, _)| job.header[36..68] != merkle)
            .expect("rolled");
        let chunks = (NonceRange::FULL.count / CHUNK) as usize;
        assert_eq!(
            first_rolled, chunks,
            "rolled exactly when all 2^32 nonces were used"
        );
    }
}
