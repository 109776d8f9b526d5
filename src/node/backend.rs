//! Opens the mining backend the config names.
//!
//! Until the CPU engine's `hash::select` is merged this wraps the `sha2` reference search.

use crate::hash::{Backend, BackendInfo, BackendKind, HashError, Job, NonceRange, SearchOutcome, StopFlag};

use super::NodeError;

/// The `sha2` reference search as a `Backend` (one thread).
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Cpu,
            device: "cpu".into(),
            path: "reference".into(),
            threads: 1,
        }
    }

    fn search(
        &mut self,
        job: &Job,
        range: NonceRange,
        stop: &StopFlag,
    ) -> Result<SearchOutcome, HashError> {
        Ok(crate::hash::reference::search(job, range, stop))
    }
}

/// The backend for `mining.backend` with `threads` CPU threads.
pub fn open(name: &str, _threads: usize) -> Result<Box<dyn Backend>, NodeError> {
    match name {
        "cpu" | "auto" => Ok(Box::new(ReferenceBackend)),
        other => Err(NodeError::Backend(format!(
            "backend `{other}` is not available in this build; use `cpu`"
        ))),
    }
}
