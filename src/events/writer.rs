//! The per-node event log: a cheap cloneable `EventLog` handle that stamps events with the
//! node's vector clock and hands them over a bounded channel to a writer thread, which appends
//! JSONL to `<dir>/events.jsonl`, rotates it at a size cap and keeps N files. With `files.rs`
//! (which reads logs back) the only I/O in `events/`. The caller never blocks on the disk and never panics: a full channel or a failed
//! write counts a drop.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::clock::VectorClock;
use super::record::{Event, EventKind, message_id};

/// The live log file's name inside the log directory; rotated files add `.1`, `.2`… (`.1` is
/// the newest).
pub const LOG_FILE: &str = "events.jsonl";

/// How much an event log may hold on disk and in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Rotate the live file once it holds this many bytes.
    pub file_bytes: u64,
    /// Files kept, the live one included (at least 1).
    pub files: usize,
    /// Events queued for the writer before new ones are dropped.
    pub queue: usize,
    /// How often the writer flushes its buffer while events keep coming.
    pub flush_every: Duration,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            file_bytes: 16 << 20,
            files: 4,
            queue: 65_536,
            flush_every: Duration::from_millis(200),
        }
    }
}

/// Why an event log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The node name would break the log's line format.
    #[error("node name {0:?} must be non-empty and without whitespace (ShiViz reads it as \\S*)")]
    BadNodeName(String),
    /// The directory or file could not be created.
    #[error("cannot open the event log in {dir}: {source}; check that the data dir is writable")]
    Open {
        /// The event log dir.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the event log writer thread: {0}")]
    Thread(std::io::Error),
}

/// Counts of what the log did with the events it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventLogStats {
    /// Events written to the file (buffered writes count once flushed successfully).
    pub written: u64,
    /// Events lost: queue full, or the disk refused them.
    pub dropped: u64,
}

/// What a send hands to the receiver (the frame carries it): the message id and the sender's
/// clock at the send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// `"<sender>:<n>"`, unique per sender.
    pub id: String,
    /// The sender's clock after the send.
    pub clock: VectorClock,
}

enum Item {
    Event(Event),
    Flush(SyncSender<()>),
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
}

struct Inner {
    node: String,
    clock: Mutex<VectorClock>,
    queue: Option<SyncSender<Item>>,
    counters: Arc<Counters>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.take(); // closes the channel: the writer flushes and ends
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A node's event log. Cloning is cheap (an `Arc`); `EventLog::disabled()` does nothing at
/// every call, so event sites need no `if`. The last clone to drop flushes and ends the writer.
#[derive(Clone, Default)]
pub struct EventLog {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(inner) => write!(f, "EventLog({})", inner.node),
            None => f.write_str("EventLog(disabled)"),
        }
    }
}

impl EventLog {
    /// A handle that records nothing.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Opens (appending to) the log in `dir` for `node` and starts its writer thread.
    pub fn open(dir: &Path, node: &str, limits: LogLimits) -> Result<Self, EventLogError> {
        if node.is_empty() || node.chars().any(char::is_whitespace) {
            return Err(EventLogError::BadNodeName(node.to_owned()));
        }
        let open_error = |source| EventLogError::Open {
            dir: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(open_error)?;
        let (mut clock, clean) = recover(dir).map_err(open_error)?;
        let file = LogFile::open(dir, limits).map_err(open_error)?;
        // Events the crash may have lost: the queue, and the writer's buffer.
        let lost_at_most = (limits.queue as u64).saturating_add(BUFFERED_LINES_AT_MOST);
        let recovered = !clean;
        if recovered {
            let own = clock.get(node);
            clock.set(node, own.saturating_add(lost_at_most));
        }
        let (queue, items) = mpsc::sync_channel(limits.queue.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let writer = std::thread::Builder::new()
            .name(format!("event-log-{node}"))
            .spawn(move || write_loop(items, file, limits.flush_every, &thread_counters))
            .map_err(EventLogError::Thread)?;
        let log = Self {
            inner: Some(Arc::new(Inner {
                node: node.to_owned(),
                clock: Mutex::new(clock),
                queue: Some(queue),
                counters,
                writer: Some(writer),
            })),
        };
        if recovered {
            log.record(EventKind::NodeRecovered { lost_at_most });
        }
        Ok(log)
    }

    /// Whether this handle records anything.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Records a local event (anything but a send or receive).
    pub fn record(&self, kind: EventKind) {
        let Some(inner) = &self.inner else { return };
        // Queued under the clock's lock, so the file holds events in clock order.
        let mut clock = lock(&inner.clock);
        clock.tick(&inner.node);
        inner.push(clock.clone(), kind);
    }

    /// Records a message of type `msg` and `bytes` bytes leaving for `to`; returns the stamp the
    /// message should carry to its receiver (`None` when disabled).
    pub fn sent(&self, to: &str, msg: &str, bytes: u64) -> Option<Stamp> {
        let inner = self.inner.as_ref()?;
        let mut clock = lock(&inner.clock);
        clock.tick(&inner.node);
        let id = message_id(&inner.node, clock.get(&inner.node));
        let kind = EventKind::Sent {
            to: to.to_owned(),
            msg: msg.to_owned(),
            bytes,
            id: id.clone(),
        };
        inner.push(clock.clone(), kind);
        Some(Stamp {
            id,
            clock: clock.clone(),
        })
    }

    /// Records a message from `from` whose send stamped it with `stamp`: merges the sender's
    /// clock into this node's, then counts the receive.
    pub fn received(&self, from: &str, msg: &str, bytes: u64, stamp: &Stamp) {
        let Some(inner) = &self.inner else { return };
        let mut clock = lock(&inner.clock);
        clock.merge(&stamp.clock);
        clock.tick(&inner.node);
        let kind = EventKind::Received {
            from: from.to_owned(),
            msg: msg.to_owned(),
            bytes,
            id: stamp.id.clone(),
        };
        inner.push(clock.clone(), kind);
    }

    /// What the log has written and dropped so far.
    pub fn stats(&self) -> EventLogStats {
        self.inner
            .as_ref()
            .map_or_else(EventLogStats::default, |inner| EventLogStats {
                written: inner.counters.written.load(Ordering::Relaxed),
                dropped: inner.counters.dropped.load(Ordering::Relaxed),
            })
    }

    /// Waits until every event handed over so far is written and flushed (for shutdown and
    /// tests; it blocks, so not for event sites).
    pub fn flush(&self) {
        let Some(queue) = self.inner.as_ref().and_then(|inner| inner.queue.as_ref()) else {
            return;
        };
        let (done, wait) = mpsc::sync_channel(1);
        if queue.send(Item::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

impl Inner {
    fn push(&self, clock: VectorClock, kind: EventKind) {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let event = Event {
            node: self.node.clone(),
            time_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
            time_us: u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX),
            clock,
            kind,
        };
        let Some(queue) = &self.queue else { return };
        match queue.try_send(Item::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn lock(clock: &Mutex<VectorClock>) -> std::sync::MutexGuard<'_, VectorClock> {
    // A panic elsewhere while holding the lock leaves a valid clock behind; keep using it.
    clock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes an existing log ready for appending after a restart or a crash: cuts a torn last
/// line (a crash mid-write) off the live file, and returns the clock of the last event logged
/// (live file, else the newest rotated one), so a restarted node's clock goes on rising.
/// Log lines the writer's 64 KiB buffer can hold (each line is well over 32 bytes).
const BUFFERED_LINES_AT_MOST: u64 = 2048;

/// Also says whether the log ended cleanly (`node_stopped`, or no event at all).
fn recover(dir: &Path) -> std::io::Result<(VectorClock, bool)> {
    let live = dir.join(LOG_FILE);
    let (tail, tail_start) = read_tail(&live)?;
    let whole = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < tail.len() && (whole > 0 || tail_start == 0) {
        OpenOptions::new()
            .write(true)
            .open(&live)?
            .set_len(tail_start + whole as u64)?;
    }
    let last_event = |bytes: &[u8]| {
        bytes
            .split(|&b| b == b'\n')
            .rev()
            .filter(|line| !line.is_empty())
            .find_map(|line| serde_json::from_slice::<super::record::Event>(line).ok())
    };
    let last = match last_event(&tail[..whole]) {
        Some(event) => Some(event),
        None => {
            let (rotated, _) = read_tail(&dir.join(format!("{LOG_FILE}.1"))).unwrap_or_default();
            last_event(&rotated)
        }
    };
    Ok(match last {
        Some(event) => {
            let clean = matches!(event.kind, EventKind::NodeStopped) && whole == tail.len();
            (event.clock, clean)
        }
        None => (VectorClock::new(), true),
    })
}

/// The last `RECOVER_TAIL` bytes of a regular file and where they start; nothing for a missing
/// file or anything that is not a regular file (a device never gets read).
fn read_tail(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    const RECOVER_TAIL: u64 = 1 << 20;
    let metadata = match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => return Ok((Vec::new(), 0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let start = metadata.len().saturating_sub(RECOVER_TAIL);
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.take(RECOVER_TAIL).read_to_end(&mut tail)?;
    Ok((tail, start))
}

/// The live file with its rotation state.
struct LogFile {
    dir: PathBuf,
    limits: LogLimits,
    out: Option<BufWriter<File>>,
    bytes: u64,
    /// Events in the buffer not yet known to be on disk.
    pending: u64,
}

impl LogFile {
    fn open(dir: &Path, limits: LogLimits) -> std::io::Result<Self> {
        let mut file = Self {
            dir: dir.to_path_buf(),
            limits,
            out: None,
            bytes: 0,
            pending: 0,
        };
        file.reopen()?;
        Ok(file)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        let path = self.dir.join(LOG_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.bytes = file.metadata()?.len();
        self.out = Some(BufWriter::with_capacity(64 << 10, file));
        Ok(())
    }

    fn append(&mut self, line: &[u8], counters: &Counters) {
        if self.out.is_none() && self.reopen().is_err() {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.bytes > 0 && self.bytes + line.len() as u64 > self.limits.file_bytes {
            self.rotate(counters);
        }
        let Some(out) = self.out.as_mut() else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match out.write_all(line) {
            Ok(()) => {
                self.bytes += line.len() as u64;
                self.pending += 1;
            }
            Err(_) => self.fail(counters, 1),
        }
    }

    fn flush(&mut self, counters: &Counters) {
        let Some(out) = self.out.as_mut() else { return };
        match out.flush() {
            Ok(()) => {
                counters.written.fetch_add(self.pending, Ordering::Relaxed);
                self.pending = 0;
            }
            Err(_) => self.fail(counters, 0),
        }
    }

    /// The disk refused a write: everything buffered is lost; reopen on the next event.
    fn fail(&mut self, counters: &Counters, extra: u64) {
        counters
            .dropped
            .fetch_add(self.pending + extra, Ordering::Relaxed);
        self.pending = 0;
        if let Some(out) = self.out.take() {
            // Dropping a BufWriter retries the flush; discard its buffer instead.
            let _ = out.into_parts();
        }
    }

    fn rotate(&mut self, counters: &Counters) {
        self.flush(counters);
        self.out = None;
        let keep = self.limits.files.max(1);
        let name = |k: usize| self.dir.join(format!("{LOG_FILE}.{k}"));
        let _ = fs::remove_file(name(keep - 1));
        if keep == 1 {
            let _ = fs::remove_file(self.dir.join(LOG_FILE));
        } else {
            for k in (1..keep - 1).rev() {
                let _ = fs::rename(name(k), name(k + 1));
            }
            let _ = fs::rename(self.dir.join(LOG_FILE), name(1));
        }
        if self.reopen().is_err() {
            self.out = None;
        }
    }
}

/// How often the writer wakes to drain the queue. Polling instead of blocking on the channel
/// keeps event sites from waking the writer thread once per event (a futex wake and a context
/// switch each, which on a busy node cost more than the event itself).
const DRAIN_EVERY: Duration = Duration::from_millis(20);

fn write_loop(
    items: Receiver<Item>,
    mut file: LogFile,
    flush_every: Duration,
    counters: &Counters,
) {
    let mut line = Vec::with_capacity(512);
    let mut last_flush = std::time::Instant::now();
    loop {
        loop {
            match items.try_recv() {
                Ok(Item::Event(event)) => {
                    line.clear();
                    if serde_json::to_writer(&mut line, &event).is_err() {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    line.push(b'\n');
                    file.append(&line, counters);
                    if file.pending >= 4096 {
                        file.flush(counters);
                    }
                }
                Ok(Item::Flush(done)) => {
                    file.flush(counters);
                    let _ = done.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    file.flush(counters);
                    return;
                }
            }
        }
        if last_flush.elapsed() >= flush_every {
            file.flush(counters);
            last_flush = std::time::Instant::now();
        }
        std::thread::sleep(DRAIN_EVERY.min(flush_every));
    }
}
