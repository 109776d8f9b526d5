//! Which backend runs a search: `--backend cpu|gpu|auto` (a `gpu::DeviceChoice`) becomes a
//! `Box<dyn Backend>`.
//! `auto` takes a hardware GPU when one opens and the CPU otherwise (a software adapter such
//! as lavapipe is slower than the native CPU paths), saying why in the log; a GPU that is lost
//! mid-search hands over to the CPU (`CpuFallback`).
//!
//! Must not contain hashing code.

use super::cpu::{CpuBackend, CpuPath};
use super::gpu::GpuBackend;
use super::{Backend, BackendInfo, HashError, Job, NonceRange, SearchOutcome, StopFlag};
use crate::gpu::{AdapterChoice, DeviceChoice, GpuError};

/// What `--backend auto` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoPick {
    /// The GPU that opened.
    Gpu,
    /// The CPU on this path (`CpuPath::best`).
    Cpu(CpuPath),
}

/// `auto`'s pick and why, in words: `gpu` is `None` when no GPU opened, else whether the one
/// that opened is a software adapter. `open_backend` logs this; `hashgrad bench` prints it on
/// the row of the pick.
pub fn auto_pick(gpu: Option<bool>) -> (AutoPick, String) {
    let cpu = CpuPath::best();
    let cpu_reason = |gpu_note: &str| {
        (
            AutoPick::Cpu(cpu),
            format!("auto: {cpu} ({gpu_note}) — {}", cpu.why_preferred()),
        )
    };
    match gpu {
        Some(false) => (
            AutoPick::Gpu,
            "auto: GPU — a hardware GPU opened, and auto prefers one to the CPU".to_string(),
        ),
        Some(true) => cpu_reason("the GPU is a software adapter, slower than the CPU"),
        None => cpu_reason("no GPU opened"),
    }
}

/// Opens the backend `choice` names. `Gpu` fails with `HashError::NoAdapter` (or the GPU's
/// error) when no adapter opens; `Auto` never fails. `threads` sets the CPU's worker count
/// (default: one per core), also for the CPU that takes over from a lost GPU.
pub fn open_backend(
    choice: DeviceChoice,
    adapter: &AdapterChoice,
    threads: Option<usize>,
) -> Result<Box<dyn Backend>, HashError> {
    match choice {
        DeviceChoice::Cpu => Ok(Box::new(CpuBackend::new(threads))),
        DeviceChoice::Gpu => {
            let gpu = GpuBackend::open(adapter)?;
            Ok(Box::new(CpuFallback::new(gpu, threads)))
        }
        DeviceChoice::Auto => {
            let cpu = CpuBackend::new(threads);
            match GpuBackend::open(adapter) {
                Ok(gpu) if gpu.is_software() => {
                    tracing::info!(
                        "auto backend: {} is a software GPU; {}, {} threads",
                        gpu.info().device,
                        auto_pick(Some(true)).1,
                        cpu.threads()
                    );
                    Ok(Box::new(cpu))
                }
                Ok(gpu) => {
                    tracing::info!("auto backend: using the GPU {}", gpu.info().device);
                    Ok(Box::new(CpuFallback::new(gpu, threads)))
                }
                Err(error) => {
                    tracing::info!(
                        "auto backend: no GPU ({error}); {}, {} threads",
                        auto_pick(None).1,
                        cpu.threads()
                    );
                    Ok(Box::new(cpu))
                }
            }
        }
    }
}

/// True for the errors after which a GPU cannot be used again.
fn is_device_lost(error: &HashError) -> bool {
    matches!(
        error,
        HashError::DeviceLost(_) | HashError::Gpu(GpuError::DeviceLost(_))
    )
}

/// A GPU backend that hands over to the CPU for good when its device is lost; the search
/// that saw the loss is rerun on the CPU, so no range is skipped.
pub struct CpuFallback<B: Backend> {
    gpu: Option<B>,
    threads: Option<usize>,
    cpu: Option<CpuBackend>,
}

impl<B: Backend> std::fmt::Debug for CpuFallback<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuFallback")
            .field("on_gpu", &self.gpu.is_some())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> CpuFallback<B> {
    /// Wraps `gpu`; `threads` is for the CPU backend if it takes over.
    pub fn new(gpu: B, threads: Option<usize>) -> CpuFallback<B> {
        CpuFallback {
            gpu: Some(gpu),
            threads,
            cpu: None,
        }
    }

    /// True once the GPU was lost and the CPU runs the searches.
    pub fn fell_back(&self) -> bool {
        self.gpu.is_none()
    }

    fn cpu(&mut self) -> &mut CpuBackend {
        let threads = self.threads;
        self.cpu.get_or_insert_with(|| CpuBackend::new(threads))
    }
}

impl<B: Backend> Backend for CpuFallback<B> {
    fn info(&self) -> BackendInfo {
        match (&self.gpu, &self.cpu) {
            (Some(gpu), _) => gpu.info(),
            (None, Some(cpu)) => cpu.info(),
            (None, None) => CpuBackend::new(self.threads).info(),
        }
    }

    fn search(
        &mut self,
        job: &Job,
        range: NonceRange,
        stop: &StopFlag,
    ) -> Result<SearchOutcome, HashError> {
        if let Some(gpu) = self.gpu.as_mut() {
            match gpu.search(job, range, stop) {
                Err(error) if is_device_lost(&error) => {
                    let device = gpu.info().device;
                    self.gpu = None;
                    let cpu = self.cpu();
                    tracing::warn!(
                        "GPU {device} was lost ({error}); falling back to the CPU ({}, {} \
                         threads) for this and later searches",
                        cpu.path(),
                        cpu.threads()
                    );
                }
                other => return other,
            }
        }
        self.cpu().search(job, range, stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{BackendKind, reference};
    use crate::target::Target;

    /// A GPU stand-in whose device is lost on the first search (a real device cannot be
    /// made to disappear in a test).
    struct LostGpu;

    impl Backend for LostGpu {
        fn info(&self) -> BackendInfo {
            BackendInfo {
                kind: BackendKind::Gpu,
                device: "test GPU".into(),
                path: "wgsl".into(),
                threads: 1,
            }
        }
        fn search(
            &mut self,
            _: &Job,
            _: NonceRange,
            _: &StopFlag,
        ) -> Result<SearchOutcome, HashError> {
            Err(HashError::Gpu(GpuError::DeviceLost("test".into())))
        }
    }

    #[test]
    fn a_lost_gpu_hands_the_same_search_to_the_cpu() {
        let job = Job {
            header: [7; 80],
            target: Target(crate::target::U256::MAX >> 3),
        };
        let range = NonceRange::new(u32::MAX - 20, 64);
        let mut backend = CpuFallback::new(LostGpu, Some(1));
        assert_eq!(backend.info().kind, BackendKind::Gpu);
        let outcome = backend
            .search(&job, range, &StopFlag::new())
            .expect("cpu takes over");
        assert!(backend.fell_back());
        assert_eq!(backend.info().kind, BackendKind::Cpu);
        assert_eq!(outcome, reference::search(&job, range, &StopFlag::new()));
    }

    #[test]
    fn auto_pick_names_the_path_cpu_backends_run_and_says_why() {
        let (pick, why) = auto_pick(None);
        assert_eq!(pick, AutoPick::Cpu(CpuBackend::new(Some(1)).path()));
        assert!(why.starts_with(&format!("auto: {} (no GPU opened) — ", CpuPath::best())));
        assert!(why.ends_with(CpuPath::best().why_preferred()));
        let (pick, why) = auto_pick(Some(true));
        assert_eq!(pick, AutoPick::Cpu(CpuPath::best()));
        assert!(why.contains("software adapter"));
        assert_eq!(auto_pick(Some(false)).0, AutoPick::Gpu);
    }

    #[test]
    fn cpu_choice_opens_the_cpu_and_auto_always_opens_something() {
        let cpu = open_backend(DeviceChoice::Cpu, &AdapterChoice::Auto, Some(1)).expect("cpu");
        assert_eq!(cpu.info().kind, BackendKind::Cpu);
        assert_eq!(cpu.info().threads, 1);
        let auto = open_backend(DeviceChoice::Auto, &AdapterChoice::Auto, Some(1)).expect("auto");
        assert!(!auto.info().device.is_empty() || auto.info().kind == BackendKind::Gpu);
    }
}
