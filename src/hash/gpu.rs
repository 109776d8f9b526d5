//! PLACEHOLDER for the GPU backend (the real file comes from the GPU engineer's branch):
//! the signature `select` builds against, with no adapter ever found.

use super::{
    Backend, BackendInfo, BackendKind, HashError, Job, NonceRange, SearchOutcome, StopFlag,
};

/// The wgpu sha256d backend (placeholder: never opens).
pub struct GpuBackend {
    _private: (),
}

impl GpuBackend {
    /// Opens the chosen adapter (placeholder: always `NoAdapter`).
    pub fn open(choice: &crate::gpu::AdapterChoice) -> Result<GpuBackend, HashError> {
        Err(HashError::NoAdapter(format!(
            " (placeholder GPU backend; asked for {choice:?})"
        )))
    }

    /// True for a software adapter such as lavapipe.
    pub fn is_software(&self) -> bool {
        false
    }
}

impl Backend for GpuBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Gpu,
            device: String::new(),
            path: "wgsl".to_string(),
            threads: 1,
        }
    }

    fn search(
        &mut self,
        _job: &Job,
        _range: NonceRange,
        _stop: &StopFlag,
    ) -> Result<SearchOutcome, HashError> {
        Err(HashError::NoAdapter(
            " (placeholder GPU backend)".to_string(),
        ))
    }
}
