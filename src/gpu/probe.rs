//! Probing adapters without letting Vulkan drivers talk to the user's terminal. Mesa's lavapipe
//! prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on stderr when it
//! is loaded in a shell without a runtime dir (any server or CI shell): its window-system code
//! looks for a display that a compute program never uses, and a user reads the line as
//! hashgrad failing. While adapters are enumerated and a device is opened, file descriptor 2
//! points at an unlinked temporary file; afterwards every captured line is written back to
//! stderr except that known noise, which becomes one debug log line.
//!
//! Owns the redirection only; must not choose or open adapters itself.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Text a driver prints that is not about anything hashgrad does.
const DRIVER_NOISE: &[&str] = &["XDG_RUNTIME_DIR"];

/// Whether the noise was explained in a debug line already (once per process is enough).
static EXPLAINED: AtomicBool = AtomicBool::new(false);

/// One probe at a time: the redirection is process-wide.
static PROBING: Mutex<()> = Mutex::new(());

/// Runs `probe` (adapter enumeration, device creation) with driver noise kept off stderr.
pub(super) fn quietly<T>(probe: impl FnOnce() -> T) -> T {
    let _one_at_a_time = PROBING.lock().unwrap_or_else(|p| p.into_inner());
    let Some(capture) = Capture::start() else {
        return probe();
    };
    // A panic's message is written while stderr is captured: replay it before unwinding on.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(probe));
    let captured = capture.finish();
    replay(&captured);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Writes captured lines back to stderr, turning driver noise into a debug log line.
fn replay(captured: &str) {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    for line in captured.lines() {
        if DRIVER_NOISE.iter().any(|noise| line.contains(noise)) {
            if EXPLAINED.swap(true, Ordering::Relaxed) {
                continue;
            }
            tracing::debug!(
                "the Vulkan driver printed `{line}` while probing adapters; harmless (it looks \
                 for a desktop session, which compute does not need)"
            );
        } else {
            let _ = writeln!(stderr, "{line}");
        }
    }
}

#[cfg(unix)]
use unix::Capture;

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::io::{Read as _, Seek as _, SeekFrom};
    use std::os::fd::{AsRawFd as _, RawFd};
    use std::sync::atomic::{AtomicU64, Ordering};

    const STDERR: RawFd = 2;

    /// Stderr redirected to an unlinked file until `finish` (or drop) puts it back.
    pub(super) struct Capture {
        file: File,
        saved: RawFd,
        restored: bool,
    }

    impl Capture {
        /// `None` when the redirection cannot be set up (then nothing is captured).
        pub(super) fn start() -> Option<Capture> {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "hashgrad-probe-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .ok()?;
            let _ = std::fs::remove_file(&path);
            // SAFETY: `dup` and `dup2` only touch the process's descriptor table; fd 2 is
            // restored from `saved` by `restore`, which also runs on drop.
            let saved = unsafe { libc::dup(STDERR) };
            if saved < 0 {
                return None;
            }
            // SAFETY: as above; `file` stays open for the lifetime of the capture.
            if unsafe { libc::dup2(file.as_raw_fd(), STDERR) } < 0 {
                // SAFETY: `saved` is a descriptor this function just created.
                unsafe { libc::close(saved) };
                return None;
            }
            Some(Capture {
                file,
                saved,
                restored: false,
            })
        }

        fn restore(&mut self) {
            if !self.restored {
                self.restored = true;
                // SAFETY: `saved` is the original stderr duplicated in `start`.
                unsafe {
                    libc::dup2(self.saved, STDERR);
                    libc::close(self.saved);
                }
            }
        }

        /// Puts stderr back and returns what was written to it meanwhile.
        pub(super) fn finish(mut self) -> String {
            self.restore();
            let mut bytes = Vec::new();
            if self.file.seek(SeekFrom::Start(0)).is_ok() {
                let _ = self.file.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            self.restore();
        }
    }
}

#[cfg(not(unix))]
struct Capture;

#[cfg(not(unix))]
impl Capture {
    fn start() -> Option<Capture> {
        None
    }

    fn finish(self) -> String {
        String::new()
    }
}
