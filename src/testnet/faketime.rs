//! One node's fake clock: the process runs under libfaketime (`LD_PRELOAD` of
//! `libfaketimeMT.so.1`), which reads its spec (`+OFFSET xRATE`) from a file in the node's
//! testnet dir and re-reads it every second, so the rate can change while the node runs. Owns
//! that file and the bookkeeping that keeps the fake clock continuous across a change; knows
//! nothing of the schedule (`chaos.rs` decides when and whose clock changes).
//!
//! libfaketime computes `fake = start + elapsed · rate + offset`, `elapsed` counted from the
//! process's start, for `CLOCK_MONOTONIC` and `CLOCK_REALTIME` alike (so `Instant`, tokio's
//! timers and `epoll_wait` timeouts scale). A new rate alone would make the clock jump (ten
//! seconds at x1 then x0.5 reads as five), so each change writes the offset that keeps the
//! fake time where it is. The file is re-read up to a second after it is written; the offset
//! is chosen so that any jump in that second is forward, never back.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use super::TestnetError;

/// The preload library's file name (the thread-safe build).
const LIBRARY: &str = "libfaketimeMT.so.1";
/// Where distributions install it.
const LIBRARY_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu/faketime",
    "/usr/lib/aarch64-linux-gnu/faketime",
    "/usr/lib64/faketime",
    "/usr/lib/faketime",
    "/usr/local/lib/faketime",
];
/// Environment variable naming the library when it is elsewhere.
pub const LIBRARY_ENV: &str = "HASHGRAD_FAKETIME_LIB";
/// How long libfaketime keeps a spec before it reads the file again (`FAKETIME_CACHE_DURATION`).
const RELOAD: Duration = Duration::from_secs(1);

/// Finds libfaketime, or says how to get it.
pub fn library() -> Result<PathBuf, TestnetError> {
    if let Some(path) = std::env::var_os(LIBRARY_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(format!(
                "{LIBRARY_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    LIBRARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(LIBRARY))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            missing(format!(
                "{LIBRARY} is in none of {} (or set {LIBRARY_ENV})",
                LIBRARY_DIRS.join(", ")
            ))
        })
}

fn missing(reason: String) -> TestnetError {
    TestnetError::Invalid {
        what: "--clock",
        reason: format!("clock faults need libfaketime (apt-get install faketime): {reason}"),
    }
}

/// The offset (seconds) that keeps the fake clock continuous when the rate changes from
/// `rate` (with `offset`) to `new_rate`, `elapsed` real seconds after the process started,
/// given that libfaketime may read the change up to `reload` seconds late. Slowing down, the
/// change is computed for the latest read (an earlier read jumps forward by at most
/// `reload · (rate − new_rate)`); speeding up, for the earliest.
pub fn continuous_offset(elapsed: f64, rate: f64, offset: f64, new_rate: f64, reload: f64) -> f64 {
    let read_at = if new_rate < rate {
        elapsed + reload
    } else {
        elapsed
    };
    offset + read_at * (rate - new_rate)
}

/// One node's clock: its spec file and what it says.
#[derive(Debug)]
pub struct FakeClock {
    library: PathBuf,
    spec: PathBuf,
    /// When the process (and so libfaketime's count) started; `None` while it is down.
    started: Option<Instant>,
    rate: f64,
    offset: f64,
}

impl FakeClock {
    /// A clock at x`rate` whose spec lives at `spec` (in the node's testnet dir).
    pub fn new(library: PathBuf, spec: PathBuf, rate: f64) -> FakeClock {
        FakeClock {
            library,
            spec,
            started: None,
            rate,
            offset: 0.0,
        }
    }

    /// The current rate (fake seconds per real second).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Writes the spec for a process about to start at the current rate and returns the
    /// environment it starts with.
    pub fn before_start(&mut self) -> Result<Vec<(&'static str, OsString)>, TestnetError> {
        self.offset = 0.0;
        self.write()?;
        self.started = Some(Instant::now());
        Ok(vec![
            ("LD_PRELOAD", self.library.clone().into_os_string()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.spec.clone().into_os_string(),
            ),
            (
                "FAKETIME_CACHE_DURATION",
                RELOAD.as_secs().to_string().into(),
            ),
        ])
    }

    /// Changes the rate of the running process (or of its next start), keeping its clock
    /// continuous.
    pub fn set_rate(&mut self, rate: f64) -> Result<(), TestnetError> {
        if let Some(started) = self.started {
            let elapsed = started.elapsed().as_secs_f64();
            self.offset =
                continuous_offset(elapsed, self.rate, self.offset, rate, RELOAD.as_secs_f64());
        }
        self.rate = rate;
        self.write()
    }

    /// Written whole to a sibling and renamed: libfaketime never reads half a spec.
    fn write(&self) -> Result<(), TestnetError> {
        let text = format!("{:+.6} x{}\n", self.offset, self.rate);
        let partial = self.spec.with_extension("partial");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &self.spec))
            .map_err(|e| TestnetError::Io(self.spec.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libfaketime's fake elapsed time for a spec.
    fn fake(elapsed: f64, rate: f64, offset: f64) -> f64 {
        elapsed * rate + offset
    }

    #[test]
    fn a_rate_change_keeps_the_clock_continuous_and_only_ever_jumps_forward() {
        let reload = 1.0;
        for (rate, new_rate) in [(1.0, 0.5), (1.0, 0.25), (0.5, 1.0), (1.0, 2.0), (2.0, 0.05)] {
            let (changed_at, offset) = (10.0, 0.3);
            let new_offset = continuous_offset(changed_at, rate, offset, new_rate, reload);
            // Wherever in the reload window libfaketime reads the new spec, the clock it
            // reports moves forward by less than a reload's worth of the rate difference.
            for step in 0..=10 {
                let read = changed_at + reload * f64::from(step) / 10.0;
                let jump = fake(read, new_rate, new_offset) - fake(read, rate, offset);
                assert!(jump >= -1e-9, "{rate}->{new_rate} at +{step}: {jump}");
                assert!(jump <= reload * (rate - new_rate).abs() + 1e-9, "{jump}");
            }
            // After the change the clock runs at the new rate.
            let later = fake(20.0, new_rate, new_offset) - fake(19.0, new_rate, new_offset);
            assert!((later - new_rate).abs() < 1e-9);
        }
    }

    #[test]
    fn the_spec_file_holds_the_offset_and_rate() {
        let dir = tempfile::tempdir().expect("dir");
        let spec = dir.path().join("faketime.rc");
        let mut clock = FakeClock::new(PathBuf::from("/lib/x.so"), spec.clone(), 1.0);
        let env = clock.before_start().expect("start");
        assert!(
            env.iter()
                .any(|(k, v)| *k == "FAKETIME_TIMESTAMP_FILE" && v == &spec)
        );
        assert_eq!(
            std::fs::read_to_string(&spec).expect("spec"),
            "+0.000000 x1\n"
        );
        clock.set_rate(0.5).expect("slow");
        let text = std::fs::read_to_string(&spec).expect("spec");
        assert!(text.starts_with('+') && text.ends_with(" x0.5\n"), "{text}");
        assert_eq!(clock.rate(), 0.5);
    }
}
