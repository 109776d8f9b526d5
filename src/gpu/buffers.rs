//! Generic helpers for compute kernels: buffers created under an error scope (so a refused
//! allocation is an error, not a panic), compute pipelines from WGSL text, and 1-D grids laid
//! out in 2-D when they exceed `max_compute_workgroups_per_dimension`. Nothing kernel-specific.

use super::{GpuContext, GpuError};

/// Runs `create` under validation and out-of-memory error scopes and turns a captured error
/// into `GpuError::Validation`.
pub fn checked<T>(context: &GpuContext, create: impl FnOnce() -> T) -> Result<T, GpuError> {
    let memory = context
        .device
        .push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = context
        .device
        .push_error_scope(wgpu::ErrorFilter::Validation);
    let value = create();
    let validation_error = pollster::block_on(validation.pop());
    let memory_error = pollster::block_on(memory.pop());
    if let Some(error) = validation_error.or(memory_error) {
        return Err(GpuError::Validation(error.to_string()));
    }
    context.check_alive()?;
    Ok(value)
}

/// A buffer of `size` bytes with `usage`, or an error if the device refuses it.
pub fn create_buffer(
    context: &GpuContext,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer, GpuError> {
    if size > context.limits.max_buffer_size {
        return Err(GpuError::Validation(format!(
            "buffer {label} of {size} bytes exceeds the device's max_buffer_size of {}",
            context.limits.max_buffer_size
        )));
    }
    checked(context, || {
        context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        })
    })
}

/// Compiles `source` and builds one compute pipeline per entry point, all with `layout`.
pub fn compute_pipelines(
    context: &GpuContext,
    label: &str,
    source: &str,
    layout: &wgpu::PipelineLayout,
    entry_points: &[&str],
) -> Result<Vec<wgpu::ComputePipeline>, GpuError> {
    checked(context, || {
        let module = context
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        entry_points
            .iter()
            .map(|entry| {
                context
                    .device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(entry),
                        layout: Some(layout),
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions::default(),
                        cache: None,
                    })
            })
            .collect()
    })
}

/// A grid of at least `groups` workgroups: `(x, y)` with `x ≤ max_per_dimension`; the kernel
/// computes its linear workgroup index as `y · x_count + x` and skips indices past the end.
pub fn grid(groups: u64, max_per_dimension: u32) -> Result<(u32, u32), GpuError> {
    let max = u64::from(max_per_dimension.max(1));
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x).max(1);
    if y > max {
        return Err(GpuError::Validation(format!(
            "{groups} workgroups exceed the device's {max}×{max} grid"
        )));
    }
    Ok((x as u32, y as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_folds_into_two_dimensions() {
        assert_eq!(grid(0, 65535).unwrap(), (1, 1));
        assert_eq!(grid(10, 65535).unwrap(), (10, 1));
        assert_eq!(grid(65536, 65535).unwrap(), (65535, 2));
        assert_eq!(grid(7, 3).unwrap(), (3, 3));
        assert!(grid(10, 3).is_err());
    }
}
