//! The wgpu side shared by every GPU kernel: adapter choice, device creation with the
//! adapter's full limits, device-lost tracking, and small buffer helpers. Kernels' host code
//! lives with their subsystem (`hash::gpu`, `train::aggregate::gpu`); WGSL lives in `shaders/`.

pub mod buffers;
mod choice;
mod context;
mod probe;

pub use choice::{DeviceChoice, UnknownDevice};
pub use context::{AdapterChoice, AdapterSummary, GpuContext, list_adapters};

/// Set to `1` to make GPU tests fail instead of skip when no adapter exists (CI sets it).
pub const REQUIRE_GPU_ENV: &str = "HASHGRAD_REQUIRE_GPU";

/// Errors of the GPU layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// wgpu enumerates no adapter at all (no Vulkan, Metal or DX12 driver).
    #[error("no GPU adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)")]
    NoAdapter,
    /// Adapters exist but none has the requested index or a name containing the requested text.
    #[error("no GPU adapter matches {choice:?}; available: {available}")]
    NoMatchingAdapter {
        /// The requested adapter, as `AdapterChoice`'s debug form.
        choice: String,
        /// Every adapter found, one summary each, joined by `; `.
        available: String,
    },
    /// The chosen adapter refused to open a device with its own limits.
    #[error("could not open a device on adapter {adapter}: {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// The driver reported the device lost (reset, removed, out of memory); holds its reason.
    /// Callers fall back to the CPU.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Mapping a buffer for reading back to the host failed; holds wgpu's message.
    #[error("GPU buffer mapping failed: {0}")]
    Map(String),
    /// Waiting for submitted work to finish failed; holds wgpu's message.
    #[error("GPU poll failed: {0}")]
    Poll(String),
    /// wgpu rejected a resource, pipeline or dispatch (an error scope or an uncaptured error),
    /// a size exceeds the device's limits, or a kernel's settings are out of range; holds the
    /// message.
    #[error("GPU validation error: {0}")]
    Validation(String),
}

/// For tests: a GPU context, or `None` after printing why the test is skipped. With
/// `HASHGRAD_REQUIRE_GPU=1` a missing adapter is a test failure (a panic) instead. Built only
/// for unit tests and with the `testing` feature, which the crate's own test targets enable
/// (a dev-dependency of the crate on itself); never part of the library a program links.
#[cfg(any(test, feature = "testing"))]
pub fn context_for_tests() -> Option<GpuContext> {
    use std::io::Write as _;

    match GpuContext::open(&AdapterChoice::Auto) {
        Ok(context) => Some(context),
        Err(error) => {
            let required = std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{REQUIRE_GPU_ENV}=1 but no GPU context could be opened: {error}"
            );
            // Written to the stderr handle, not through `eprintln!`, so the test harness's
            // output capture does not hide it: a skip must be visible in a normal run.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no GPU adapter ({error}); set {REQUIRE_GPU_ENV}=1 to fail instead"
            );
            None
        }
    }
}
