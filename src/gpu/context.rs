//! Opening a wgpu device: which adapter (`--adapter NAME|INDEX`, or the best one), with the
//! adapter's own limits (the defaults cap storage bindings at 128 MiB), and a flag that turns
//! true when the device is lost so callers can fall back to the CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::GpuError;

/// Which adapter to open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// The best available: discrete, then integrated, virtual, software.
    #[default]
    Auto,
    /// Position in `hashgrad bench --list-adapters` order.
    Index(usize),
    /// Case-insensitive substring of the adapter name.
    Name(String),
}

impl std::str::FromStr for AdapterChoice {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.trim() {
            "" | "auto" => AdapterChoice::Auto,
            t => match t.parse::<usize>() {
                Ok(index) => AdapterChoice::Index(index),
                Err(_) => AdapterChoice::Name(t.to_string()),
            },
        })
    }
}

/// One adapter as a user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Position in the sorted adapter list (what `AdapterChoice::Index` selects).
    pub index: usize,
    /// The adapter's name as the driver reports it.
    pub name: String,
    /// The wgpu backend, e.g. `Vulkan`.
    pub backend: String,
    /// The device kind, e.g. `DiscreteGpu` or `Cpu`.
    pub device_type: String,
    /// The driver's name and version info, space-joined.
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] {} ({}, {}, {})",
            self.index, self.name, self.backend, self.device_type, self.driver
        )
    }
}

/// An open device and queue, shared by every kernel of the process.
#[derive(Clone)]
pub struct GpuContext {
    /// The logical device kernels create buffers and pipelines on.
    pub device: wgpu::Device,
    /// The device's queue, for submissions and buffer writes.
    pub queue: wgpu::Queue,
    /// Name, backend, device type and driver of the opened adapter.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was opened with: the adapter's own, not wgpu's defaults.
    pub limits: wgpu::Limits,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<Option<String>>>,
    /// The first error wgpu raised outside an error scope (instead of its default panic).
    uncaptured: Arc<Mutex<Option<String>>>,
}

fn instance() -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // Compute needs Vulkan, Metal or DX12; GL is left out unless WGPU_BACKEND asks for it.
    if std::env::var_os("WGPU_BACKEND").is_none() {
        descriptor.backends = wgpu::Backends::PRIMARY;
    }
    wgpu::Instance::new(descriptor)
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn summary(index: usize, info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        index,
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // Stable order: best kind first, then by name, so an index means the same thing each run.
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (
            rank(info.device_type),
            info.name,
            format!("{:?}", info.backend),
        )
    });
    adapters
}

/// Every adapter this machine offers, in the order `AdapterChoice::Index` counts them.
pub fn list_adapters() -> Vec<AdapterSummary> {
    super::probe::quietly(|| {
        adapters(&instance())
            .iter()
            .enumerate()
            .map(|(i, a)| summary(i, &a.get_info()))
            .collect()
    })
}

impl GpuContext {
    /// Opens a device on the chosen adapter with that adapter's limits.
    pub fn open(choice: &AdapterChoice) -> Result<GpuContext, GpuError> {
        super::probe::quietly(|| GpuContext::open_loud(choice))
    }

    /// `open` without keeping driver noise off stderr.
    fn open_loud(choice: &AdapterChoice) -> Result<GpuContext, GpuError> {
        let instance = instance();
        let all = adapters(&instance);
        if all.is_empty() {
            return Err(GpuError::NoAdapter);
        }
        let chosen = match choice {
            AdapterChoice::Auto => all.first(),
            AdapterChoice::Index(i) => all.get(*i),
            AdapterChoice::Name(name) => {
                let needle = name.to_lowercase();
                all.iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&needle))
            }
        };
        let Some(adapter) = chosen else {
            let available = all
                .iter()
                .enumerate()
                .map(|(i, a)| summary(i, &a.get_info()).to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(GpuError::NoMatchingAdapter {
                choice: format!("{choice:?}"),
                available,
            });
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("hashgrad"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuError::RequestDevice {
                    adapter: info.name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(None));
        {
            let lost = lost.clone();
            let lost_reason = lost_reason.clone();
            device.set_device_lost_callback(move |reason, message| {
                lost.store(true, Ordering::SeqCst);
                if let Ok(mut slot) = lost_reason.lock() {
                    *slot = Some(format!("{reason:?}: {message}"));
                }
            });
        }
        let uncaptured = Arc::new(Mutex::new(None));
        {
            let uncaptured = uncaptured.clone();
            device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
                tracing::error!(%error, "GPU error outside an error scope");
                if let Ok(mut slot) = uncaptured.lock() {
                    slot.get_or_insert_with(|| error.to_string());
                }
            }));
        }
        tracing::debug!(adapter = %info.name, backend = ?info.backend, "opened GPU device");
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            lost,
            lost_reason,
            uncaptured,
        })
    }

    /// The adapter's name, e.g. `NVIDIA H200` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.info.name
    }

    /// `Err(DeviceLost)` once the driver has reported the device lost.
    pub fn check_alive(&self) -> Result<(), GpuError> {
        if self.lost.load(Ordering::SeqCst) {
            let reason = self
                .lost_reason
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| "unknown reason".to_string());
            return Err(GpuError::DeviceLost(reason));
        }
        Ok(())
    }

    /// `Err(Validation)` with the first error wgpu raised outside an error scope since the last
    /// call (wgpu's default would be a panic), `Err(DeviceLost)` once the device is lost.
    pub fn check_errors(&self) -> Result<(), GpuError> {
        self.check_alive()?;
        let taken = self.uncaptured.lock().ok().and_then(|mut slot| slot.take());
        match taken {
            Some(message) => Err(GpuError::Validation(message)),
            None => Ok(()),
        }
    }

    /// True for a software adapter (device type `Cpu`, e.g. Mesa's llvmpipe).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Blocks until all submitted work has finished.
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Poll(e.to_string()))?;
        self.check_alive()
    }

    /// Copies `size` bytes of a `MAP_READ` buffer to host memory (blocking).
    pub fn read_mapped(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let slice = buffer.slice(..size);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        self.wait_idle()?;
        receiver
            .recv()
            .map_err(|e| GpuError::Map(e.to_string()))?
            .map_err(|e| GpuError::Map(e.to_string()))?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Map(e.to_string()))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_choice_parses_index_name_and_auto() {
        assert_eq!("auto".parse::<AdapterChoice>(), Ok(AdapterChoice::Auto));
        assert_eq!("1".parse::<AdapterChoice>(), Ok(AdapterChoice::Index(1)));
        assert_eq!(
            "llvmpipe".parse::<AdapterChoice>(),
            Ok(AdapterChoice::Name("llvmpipe".into()))
        );
    }
}
