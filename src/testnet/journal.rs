//! Where the run's story goes: each event (nodes up, a kill, a restart, a partition, a heal)
//! as a line of `events.log`, times counted from every node up, and to the caller's
//! `Observer`, which also gets the table at every poll. Owns the file; decides nothing.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::TestnetError;
use super::report::Row;
use super::run::Observer;

/// `events.log` and the caller's observer.
pub(super) struct Journal<'a> {
    file: std::fs::File,
    observer: &'a mut dyn Observer,
}

impl<'a> Journal<'a> {
    /// Creates (truncates) `path`.
    pub(super) fn create(
        path: &Path,
        observer: &'a mut dyn Observer,
    ) -> Result<Journal<'a>, TestnetError> {
        let file =
            std::fs::File::create(path).map_err(|e| TestnetError::Io(path.to_path_buf(), e))?;
        Ok(Journal { file, observer })
    }

    /// One event, `elapsed` after every node was up.
    pub(super) fn event(&mut self, elapsed: Duration, text: &str) {
        let _ = writeln!(self.file, "{:8.3}s {text}", elapsed.as_secs_f64());
        self.observer.event(elapsed, text);
    }

    /// The table after a poll.
    pub(super) fn tick(&mut self, elapsed: Duration, rows: &[Row]) {
        self.observer.tick(elapsed, rows);
    }
}
