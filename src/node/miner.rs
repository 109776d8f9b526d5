//! The miner: one blocking thread that runs the `hash::Backend` on the current block template.
//! The node replaces the template on every new tip; the old search's `StopFlag` is raised so
//! stale work stops within milliseconds. When a template's nonce space runs out the miner rolls
//! the timestamp or the coinbase extra-nonce and goes on.
//!
//! Owns the thread and the search loop; must not judge blocks (found blocks go to the node).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::hash::{Backend, NonceRange, StopFlag};
use crate::pow::{Block, BlockTemplate};

/// Nonces searched between checks for a fresher timestamp.
const CHUNK: u64 = 1 << 20;

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

impl Miner {
    /// Starts the thread; found blocks are sent on `found`.
    pub fn start(mut backend: Box<dyn Backend>, found: mpsc::UnboundedSender<Block>) -> Miner {
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
            .spawn(move || mine(&thread_shared, backend.as_mut(), &found))
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
fn mine(shared: &Shared, backend: &mut dyn Backend, found: &mpsc::UnboundedSender<Block>) {
    let mut done_generation = 0;
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
                    Some(_) if work.generation != done_generation && work.not_before <= now => {
                        break;
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
        let mut next = 0u64;
        let outcome = loop {
            if stop.is_stopped() {
                break None;
            }
            if next >= NonceRange::FULL.count {
                template.roll_extra_nonce();
                next = 0;
            } else if template.roll_time(unix_now()) {
                next = 0;
            }
            let job = template.job();
            let range = NonceRange::new(next as u32, CHUNK.min(NonceRange::FULL.count - next));
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
