//! The GPU search backend: runs the generated `shaders/sha256d.wgsl` through wgpu, two sets of
//! buffers in flight so the GPU never waits on the host, dispatch sizes grown from the measured
//! rate up to the adapter's limits, and a full check of every candidate on the host.
//!
//! Owns the kernel's host side only; opening the device is `crate::gpu`'s job, choosing between
//! GPU and CPU is `hash::select`'s.

pub mod codegen;
mod graph;
mod variant;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::gpu::{AdapterChoice, GpuContext, GpuError};
use crate::target::Target;

use self::codegen::{Kernel, UNIFORM_HEADER_WORDS, WORKGROUP_SIZE, job_inputs};
pub use self::variant::{JobLoads, KernelVariant, MajForm};
use super::reference::sha256d;
use super::{
    Backend, BackendInfo, BackendKind, Found, HashError, Job, NonceRange, SearchOutcome, StopFlag,
};

/// The generated kernel, checked in (a test keeps it equal to `codegen`'s output).
pub const SHADER: &str = include_str!("../../../shaders/sha256d.wgsl");

/// Largest dispatch, in nonces: keeps every kernel index inside `u32`.
const MAX_DISPATCH: u64 = 1 << 30;

/// How the GPU search sizes its work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSearchConfig {
    /// Nonces each invocation hashes in its loop (the kernel's `NONCES_PER_INVOCATION`).
    pub nonces_per_invocation: u32,
    /// Candidate slots per dispatch. A dispatch that finds more is re-run in slices of at most
    /// this many nonces, so no result is ever lost.
    pub candidate_capacity: u32,
    /// Dispatches grow (from `min_dispatch`) until one takes about this long.
    pub dispatch_target: Duration,
    /// Smallest dispatch, in nonces.
    pub min_dispatch: u64,
    /// Largest dispatch, in nonces (further capped by the adapter's limits).
    pub max_dispatch: u64,
    /// Caps the workgroups per grid dimension below the adapter's
    /// `max_compute_workgroups_per_dimension` (`None`: the adapter's limit). Tests use it to
    /// exercise the 2-D grid with small dispatches.
    pub max_workgroups_per_dimension: Option<u32>,
    /// How the kernel is spelled: the default is the checked-in shader, the others are
    /// generated at run time (for `scripts/gpu-check.sh`'s comparison on real GPUs).
    pub variant: KernelVariant,
}

impl Default for GpuSearchConfig {
    fn default() -> Self {
        GpuSearchConfig {
            nonces_per_invocation: codegen::DEFAULT_NONCES_PER_INVOCATION,
            candidate_capacity: 1 << 16,
            dispatch_target: Duration::from_millis(40),
            min_dispatch: 1 << 18,
            max_dispatch: MAX_DISPATCH,
            max_workgroups_per_dimension: None,
            variant: KernelVariant::default(),
        }
    }
}

/// One of the two sets of buffers a dispatch uses.
struct BufferSet {
    uniform: wgpu::Buffer,
    candidates: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// A dispatch submitted and not yet read back.
struct Flight {
    set: usize,
    /// Offset of its first nonce within the searched range.
    offset: u64,
    count: u64,
    submission: wgpu::SubmissionIndex,
}

/// What one dispatch's read-back said.
enum Readback {
    Candidates(Vec<u32>),
    /// More candidates than slots: the dispatch must be re-run in smaller slices.
    Overflow(u32),
}

/// sha256d nonce search on a GPU through wgpu.
pub struct GpuBackend {
    context: GpuContext,
    config: GpuSearchConfig,
    kernel: Kernel,
    pipeline: wgpu::ComputePipeline,
    sets: [BufferSet; 2],
    uniform_words: usize,
    /// Current dispatch size, in nonces; adapts to the measured rate.
    dispatch_nonces: u64,
    max_dispatch: u64,
    /// Workgroups per grid dimension (the adapter's limit unless the config caps it).
    per_dimension: u32,
}

impl std::fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBackend")
            .field("adapter", &self.context.adapter_name())
            .field("config", &self.config)
            .field("dispatch_nonces", &self.dispatch_nonces)
            .finish()
    }
}

fn gpu_error(error: GpuError) -> HashError {
    match error {
        GpuError::DeviceLost(reason) => HashError::DeviceLost(reason),
        GpuError::NoAdapter => HashError::NoAdapter(
            " (install a Vulkan driver, e.g. mesa-vulkan-drivers, or mine on the CPU)".into(),
        ),
        GpuError::NoMatchingAdapter { choice, available } => HashError::NoAdapter(format!(
            " matching {choice}; available: {available} (see `hashgrad adapters`)"
        )),
        other => HashError::Gpu(other),
    }
}

/// The early-reject threshold: a hash can meet `target` only if its top 32 bits (as a
/// little-endian number) are ≤ the target's top 32 bits.
pub fn reject_threshold(target: &Target) -> u32 {
    (target.0.as_limbs()[3] >> 32) as u32
}

impl GpuBackend {
    /// Opens the chosen adapter and builds the kernel with the default configuration.
    pub fn open(choice: &AdapterChoice) -> Result<GpuBackend, HashError> {
        let context = GpuContext::open(choice).map_err(gpu_error)?;
        GpuBackend::with_context(context, GpuSearchConfig::default())
    }

    /// Builds the kernel on an open device.
    pub fn with_context(
        context: GpuContext,
        config: GpuSearchConfig,
    ) -> Result<GpuBackend, HashError> {
        if !(1..=4096).contains(&config.nonces_per_invocation) || config.candidate_capacity == 0 {
            return Err(HashError::Gpu(GpuError::Validation(format!(
                "nonces per invocation must be 1..=4096 and candidate capacity > 0, got {} and {}",
                config.nonces_per_invocation, config.candidate_capacity
            ))));
        }
        let kernel = Kernel::build(config.variant);
        let generated = kernel.wgsl();
        if config.variant == KernelVariant::default() && generated != SHADER {
            return Err(HashError::Gpu(GpuError::Validation(format!(
                "{} does not match its generator; regenerate it with \
                 `HASHGRAD_BLESS=1 cargo test --lib hash::gpu::codegen`",
                codegen::SHADER_PATH
            ))));
        }
        let device = &context.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sha256d"),
            source: wgpu::ShaderSource::Wgsl(generated.into()),
        });
        let constants = [(
            "NONCES_PER_INVOCATION",
            f64::from(config.nonces_per_invocation),
        )];
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("sha256d"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let uniform_words = (UNIFORM_HEADER_WORDS + kernel.field_count()).next_multiple_of(4);
        let layout = pipeline.get_bind_group_layout(0);
        let sets = [0, 1].map(|i| {
            buffer_set(
                &context,
                &layout,
                i,
                uniform_words,
                config.candidate_capacity,
            )
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(HashError::Gpu(GpuError::Validation(error.to_string())));
        }
        context.check_errors().map_err(gpu_error)?;

        let per_group = u64::from(WORKGROUP_SIZE) * u64::from(config.nonces_per_invocation);
        let adapter_limit = context.limits.max_compute_workgroups_per_dimension;
        let per_dimension = config
            .max_workgroups_per_dimension
            .map_or(adapter_limit, |cap| cap.min(adapter_limit))
            .max(1);
        let per_dim = u64::from(per_dimension);
        let max_dispatch = config
            .max_dispatch
            .min(MAX_DISPATCH)
            .min(per_dim * per_dim * per_group)
            .max(1);
        let dispatch_nonces = config.min_dispatch.clamp(1, max_dispatch);
        tracing::debug!(
            adapter = %context.adapter_name(),
            fields = kernel.field_count(),
            ops_per_nonce = kernel.ops_per_nonce(),
            max_dispatch,
            "sha256d kernel ready"
        );
        Ok(GpuBackend {
            context,
            config,
            kernel,
            pipeline,
            sets,
            uniform_words,
            dispatch_nonces,
            max_dispatch,
            per_dimension,
        })
    }

    /// True when the adapter is a software rasteriser (device type `Cpu`, e.g. llvmpipe).
    pub fn is_software(&self) -> bool {
        self.context.is_software()
    }

    /// The device this backend runs on.
    pub fn context(&self) -> &GpuContext {
        &self.context
    }

    /// Workgroups for a dispatch of `count` nonces, as a 2-D grid within the per-dimension
    /// limit (`max_dispatch` keeps `y` within it too).
    fn grid(&self, count: u64) -> (u32, u32) {
        let invocations = count.div_ceil(u64::from(self.config.nonces_per_invocation));
        let groups = invocations.div_ceil(u64::from(WORKGROUP_SIZE)).max(1);
        let x = groups.min(u64::from(self.per_dimension));
        let y = groups.div_ceil(x);
        (x as u32, y as u32)
    }

    /// Records and submits one dispatch of `count` nonces from `first` on buffer set `set`.
    fn submit(
        &self,
        set: usize,
        job: &[u32],
        threshold: u32,
        first: u32,
        count: u64,
    ) -> wgpu::SubmissionIndex {
        let buffers = &self.sets[set];
        let mut words = vec![0u32; self.uniform_words];
        words[0] = first;
        words[1] = count as u32;
        words[2] = threshold;
        words[UNIFORM_HEADER_WORDS..UNIFORM_HEADER_WORDS + job.len()].copy_from_slice(job);
        self.context
            .queue
            .write_buffer(&buffers.uniform, 0, bytemuck::cast_slice(&words));
        let mut encoder =
            self.context
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("sha256d dispatch"),
                });
        encoder.clear_buffer(&buffers.candidates, 0, Some(4));
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("sha256d"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &buffers.bind_group, &[]);
            let (x, y) = self.grid(count);
            pass.dispatch_workgroups(x, y, 1);
        }
        encoder.copy_buffer_to_buffer(&buffers.candidates, 0, &buffers.readback, 0, None);
        self.context.queue.submit([encoder.finish()])
    }

    /// Waits for a dispatch and reads its candidates.
    fn read(&self, set: usize, submission: wgpu::SubmissionIndex) -> Result<Readback, HashError> {
        let readback = &self.sets[set].readback;
        let (sender, receiver) = std::sync::mpsc::channel();
        readback.map_async(wgpu::MapMode::Read, .., move |result| {
            let _ = sender.send(result);
        });
        let waited = self.context.device.poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        });
        if let Err(error) = waited {
            return Err(self.failure(GpuError::Poll(error.to_string())));
        }
        self.context.check_errors().map_err(|e| self.failure(e))?;
        let mapped = match receiver.try_recv() {
            Ok(result) => result,
            // The callback can trail the wait: poll until every callback has run.
            Err(_) => {
                self.context.wait_idle().map_err(|e| self.failure(e))?;
                receiver
                    .recv()
                    .map_err(|e| self.failure(GpuError::Map(e.to_string())))?
            }
        };
        mapped.map_err(|e| self.failure(GpuError::Map(e.to_string())))?;
        let result = {
            let view = readback
                .get_mapped_range(..)
                .map_err(|e| self.failure(GpuError::Map(e.to_string())))?;
            let words: &[u32] = bytemuck::cast_slice(&view);
            let count = words.first().copied().unwrap_or(0);
            if count > self.config.candidate_capacity {
                Readback::Overflow(count)
            } else {
                let end = 1 + count as usize;
                Readback::Candidates(words.get(1..end).unwrap_or_default().to_vec())
            }
        };
        readback.unmap();
        Ok(result)
    }

    /// The error to report for a failed GPU operation: `DeviceLost` if the device is gone
    /// (a destroyed device reports it only once wgpu has polled it), else `error`.
    fn failure(&self, error: GpuError) -> HashError {
        let _ = self.context.device.poll(wgpu::PollType::Poll);
        match self.context.check_alive() {
            Err(lost) => gpu_error(lost),
            Ok(()) => gpu_error(error),
        }
    }

    /// Re-runs a dispatch that overflowed in slices too small to overflow, on set `set`.
    fn rerun(
        &self,
        set: usize,
        job: &[u32],
        threshold: u32,
        range: NonceRange,
        flight: &Flight,
    ) -> Result<Vec<u32>, HashError> {
        let slice = u64::from(self.config.candidate_capacity);
        let mut candidates = Vec::new();
        let mut done = 0;
        while done < flight.count {
            let count = (flight.count - done).min(slice);
            let first = range.nonce(flight.offset + done);
            let submission = self.submit(set, job, threshold, first, count);
            match self.read(set, submission)? {
                Readback::Candidates(found) => candidates.extend(found),
                Readback::Overflow(n) => {
                    return Err(HashError::Gpu(GpuError::Validation(format!(
                        "a slice of {count} nonces reported {n} candidates"
                    ))));
                }
            }
            done += count;
        }
        Ok(candidates)
    }

    /// Grows or shrinks the dispatch size toward `dispatch_target` at the measured rate.
    fn adapt(&mut self, hashes: u64, elapsed: Duration) {
        if hashes == 0 || elapsed.is_zero() {
            return;
        }
        let rate = hashes as f64 / elapsed.as_secs_f64();
        let wanted = (rate * self.config.dispatch_target.as_secs_f64()) as u64;
        let lower = (self.dispatch_nonces / 4).max(self.config.min_dispatch);
        let upper = self.dispatch_nonces.saturating_mul(4);
        self.dispatch_nonces = wanted
            .clamp(lower, upper.max(lower))
            .clamp(1, self.max_dispatch);
    }
}

fn buffer_set(
    context: &GpuContext,
    layout: &wgpu::BindGroupLayout,
    index: usize,
    uniform_words: usize,
    capacity: u32,
) -> BufferSet {
    let device = &context.device;
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&format!("sha256d job {index}")),
        size: (uniform_words * 4) as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let size = 4 * (1 + u64::from(capacity));
    let candidates = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&format!("sha256d candidates {index}")),
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(&format!("sha256d readback {index}")),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&format!("sha256d bindings {index}")),
        layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: candidates.as_entire_binding(),
            },
        ],
    });
    BufferSet {
        uniform,
        candidates,
        readback,
        bind_group,
    }
}

impl Backend for GpuBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            kind: BackendKind::Gpu,
            device: self.context.adapter_name().to_string(),
            path: format!(
                "wgsl-{WORKGROUP_SIZE}x{}-{}",
                self.config.nonces_per_invocation, self.config.variant
            ),
            threads: 1,
        }
    }

    fn search(
        &mut self,
        job: &Job,
        range: NonceRange,
        stop: &StopFlag,
    ) -> Result<SearchOutcome, HashError> {
        self.context.check_errors().map_err(gpu_error)?;
        let words = self.kernel.job_words(&job_inputs(&job.header));
        let threshold = reject_threshold(&job.target);
        let mut outcome = SearchOutcome::default();
        let mut in_flight: VecDeque<Flight> = VecDeque::with_capacity(2);
        let mut next = 0u64;
        let started = Instant::now();
        loop {
            // Keep two dispatches queued: the GPU runs one while the host reads the other.
            while in_flight.len() < 2 && next < range.count && !stop.is_stopped() {
                let count = (range.count - next).min(self.dispatch_nonces);
                let set = match in_flight.front() {
                    Some(busy) => 1 - busy.set,
                    None => 0,
                };
                let submission = self.submit(set, &words, threshold, range.nonce(next), count);
                in_flight.push_back(Flight {
                    set,
                    offset: next,
                    count,
                    submission,
                });
                next += count;
            }
            let Some(flight) = in_flight.pop_front() else {
                break;
            };
            let candidates = match self.read(flight.set, flight.submission.clone())? {
                Readback::Candidates(found) => found,
                Readback::Overflow(n) => {
                    tracing::debug!(candidates = n, "candidate buffer overflowed; re-running");
                    self.rerun(flight.set, &words, threshold, range, &flight)?
                }
            };
            let first = range.nonce(flight.offset);
            let mut found: Vec<Found> = candidates
                .into_iter()
                .filter_map(|nonce| {
                    let hash = sha256d(&job.header_with_nonce(nonce));
                    job.target.is_met_by(&hash).then_some(Found { nonce, hash })
                })
                .collect();
            found.sort_by_key(|f| f.nonce.wrapping_sub(first));
            outcome.found.extend(found);
            outcome.hashes += flight.count;
            self.adapt(outcome.hashes, started.elapsed());
        }
        outcome.stopped = next < range.count;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::U256;

    #[test]
    fn reject_threshold_is_the_targets_top_word() {
        assert_eq!(reject_threshold(&Target::MAX), u32::MAX);
        let genesis = Target(U256::from(0xffffu64) << 208);
        assert_eq!(reject_threshold(&genesis), 0);
        let easy = Target(U256::from(0x1234_5678u64) << 224 | U256::from(7u8));
        assert_eq!(reject_threshold(&easy), 0x1234_5678);
    }
}
