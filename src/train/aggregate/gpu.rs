//! The GPU side of the aggregation rules: the host code of `shaders/reduce_*.wgsl`. It splits
//! N coordinates into chunks whose K·chunk floats fit one storage binding (and the grid
//! limits), uploads each input row of a chunk (rows padded to whole vec4s), dispatches one
//! invocation per coordinate (per 4 for the mean) and reads the result back. Inputs are validated on the host first; Krum's pairwise distances
//! run on the CPU and only its final average on the GPU.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use super::{AggregateError, GPU_MAX_SORTED_INPUTS, Rule, cpu, validate};
use crate::gpu::buffers::{checked, compute_pipelines, create_buffer, grid};
use crate::gpu::{GpuContext, GpuError};

const MEAN_SHADER: &str = include_str!("../../../shaders/reduce_mean.wgsl");
const SORTED_SHADER: &str = include_str!("../../../shaders/reduce_sorted.wgsl");
const COPY_SHADER: &str = include_str!("../../../shaders/reduce_copy.wgsl");
/// The line of `reduce_sorted.wgsl` the host rewrites with the padded sort size.
const SORT_SIZE_LINE: &str = "const SORT_SIZE: u32 = 64u;";
/// Invocations per workgroup in every reduce kernel (`@workgroup_size(256)`).
const WORKGROUP: u64 = 256;
const F32: u64 = 4;

/// The uniform block every reduce kernel reads (`struct Params` in the shaders).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    k: u32,
    trim: u32,
    scale: f32,
    groups_x: u32,
    stride: u32,
    pad: [u32; 2],
}

/// One chunk of coordinates resident on the device: its K input rows, output and grid.
#[derive(Debug)]
struct Chunk {
    first: usize,
    len: usize,
    /// Row stride of `inputs` in floats: `len` rounded up to whole vec4s.
    stride: usize,
    inputs: wgpu::Buffer,
    output: wgpu::Buffer,
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// K inputs of N floats uploaded to the device in chunks, ready to be reduced in place
/// (`GpuReducer::reduce_on_device`), which is what the throughput benchmark times.
#[derive(Debug)]
pub struct DeviceBatch {
    k: usize,
    n: usize,
    chunk_len: usize,
    chunks: Vec<Chunk>,
    readback: wgpu::Buffer,
    copy_target: Option<(wgpu::Buffer, Vec<wgpu::BindGroup>)>,
}

impl DeviceBatch {
    /// Number of inputs K.
    pub fn inputs(&self) -> usize {
        self.k
    }
    /// Coordinates per input N.
    pub fn len(&self) -> usize {
        self.n
    }
    /// True when N is 0.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// How many chunks the coordinates were split into.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
    /// Bytes a reduction reads and writes: (K + 1)·N·4.
    pub fn bytes_moved(&self) -> u64 {
        (self.k as u64 + 1) * self.n as u64 * F32
    }
}

/// Reduces gradients with the WGSL kernels on one device.
pub struct GpuReducer {
    context: GpuContext,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    mean: wgpu::ComputePipeline,
    copy: wgpu::ComputePipeline,
    /// (median, trimmed mean) pipelines per padded sort size.
    sorted: HashMap<usize, (wgpu::ComputePipeline, wgpu::ComputePipeline)>,
    chunk_limit: Option<usize>,
    staged: Option<DeviceBatch>,
}

impl std::fmt::Debug for GpuReducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuReducer")
            .field("adapter", &self.context.adapter_name())
            .field("chunk_limit", &self.chunk_limit)
            .finish()
    }
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn as_bytes(values: &[f32]) -> &[u8] {
    bytemuck::cast_slice(values)
}

impl GpuReducer {
    /// Compiles the mean and copy kernels on `context` (sort kernels compile on first use).
    pub fn new(context: GpuContext) -> Result<GpuReducer, AggregateError> {
        let layout = checked(&context, || {
            context
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("reduce"),
                    entries: &[
                        layout_entry(0, wgpu::BufferBindingType::Uniform),
                        layout_entry(1, wgpu::BufferBindingType::Storage { read_only: true }),
                        layout_entry(2, wgpu::BufferBindingType::Storage { read_only: false }),
                    ],
                })
        })?;
        let pipeline_layout = checked(&context, || {
            context
                .device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some("reduce"),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                })
        })?;
        let mean = single(compute_pipelines(
            &context,
            "reduce_mean.wgsl",
            MEAN_SHADER,
            &pipeline_layout,
            &["mean"],
        )?)?;
        let copy = single(compute_pipelines(
            &context,
            "reduce_copy.wgsl",
            COPY_SHADER,
            &pipeline_layout,
            &["copy"],
        )?)?;
        Ok(GpuReducer {
            context,
            layout,
            pipeline_layout,
            mean,
            copy,
            sorted: HashMap::new(),
            chunk_limit: None,
            staged: None,
        })
    }

    /// Caps a chunk at `coordinates` per dispatch (tests force chunking with a small value).
    pub fn with_chunk_limit(mut self, coordinates: usize) -> GpuReducer {
        self.chunk_limit = Some(coordinates.max(1));
        self.staged = None;
        self
    }

    /// The adapter's name.
    pub fn adapter_name(&self) -> &str {
        self.context.adapter_name()
    }

    /// The device context this reducer runs on.
    pub fn context(&self) -> &GpuContext {
        &self.context
    }

    /// Coordinates per chunk for K inputs: K·chunk floats must fit one storage binding and one
    /// buffer, and the chunk's workgroups the device's 2-D grid.
    pub fn chunk_len(&self, k: usize) -> Result<usize, GpuError> {
        let limits = &self.context.limits;
        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let by_memory = binding / F32 / (k.max(1) as u64);
        let max_groups = u64::from(limits.max_compute_workgroups_per_dimension);
        let by_grid = max_groups * max_groups * WORKGROUP;
        // Index arithmetic in the shaders is u32: keep k·chunk + i below 2³².
        let by_index = u64::from(u32::MAX) / (k.max(1) as u64 + 1);
        let mut chunk = by_memory.min(by_grid).min(by_index);
        if let Some(limit) = self.chunk_limit {
            chunk = chunk.min(limit as u64);
        }
        // Rows are padded to whole vec4s: keep full chunks a multiple of 4.
        if chunk >= 4 {
            chunk -= chunk % 4;
        }
        if chunk == 0 {
            return Err(GpuError::Validation(format!(
                "{k} inputs of even one float exceed the device's storage binding of {binding} bytes"
            )));
        }
        Ok(usize::try_from(chunk).unwrap_or(usize::MAX))
    }

    /// Uploads K inputs (validated for shape only: callers of `reduce` get the full check).
    pub fn upload(&self, inputs: &[&[f32]]) -> Result<DeviceBatch, AggregateError> {
        let n = validate(&Rule::Mean, inputs)?;
        let batch = self.allocate(inputs.len(), n)?;
        self.write_inputs(&batch, inputs);
        Ok(batch)
    }

    fn allocate(&self, k: usize, n: usize) -> Result<DeviceBatch, AggregateError> {
        let chunk_len = self.chunk_len(k)?;
        let mut chunks = Vec::new();
        let mut first = 0;
        while first < n || (n == 0 && chunks.is_empty()) {
            let len = chunk_len.min(n - first);
            let stride = len.max(1).next_multiple_of(4);
            let stored = stride as u64;
            let inputs = create_buffer(
                &self.context,
                "reduce inputs",
                k as u64 * stored * F32,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            )?;
            let output = create_buffer(
                &self.context,
                "reduce output",
                stored * F32,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            )?;
            let params = create_buffer(
                &self.context,
                "reduce params",
                std::mem::size_of::<Params>() as u64,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            )?;
            let bind_group = self.bind_group(&params, &inputs, &output)?;
            chunks.push(Chunk {
                first,
                len,
                stride,
                inputs,
                output,
                params,
                bind_group,
            });
            first += len;
            if n == 0 {
                break;
            }
        }
        let readback = create_buffer(
            &self.context,
            "reduce readback",
            chunk_len.min(n).max(1) as u64 * F32,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        Ok(DeviceBatch {
            k,
            n,
            chunk_len,
            chunks,
            readback,
            copy_target: None,
        })
    }

    fn bind_group(
        &self,
        params: &wgpu::Buffer,
        inputs: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<wgpu::BindGroup, GpuError> {
        checked(&self.context, || {
            self.context
                .device
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("reduce"),
                    layout: &self.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: params.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: inputs.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: output.as_entire_binding(),
                        },
                    ],
                })
        })
    }

    fn write_inputs(&self, batch: &DeviceBatch, inputs: &[&[f32]]) {
        for chunk in &batch.chunks {
            let range = chunk.first..chunk.first + chunk.len;
            for (row, input) in inputs.iter().enumerate() {
                if let Some(values) = input.get(range.clone()) {
                    let offset = row as u64 * chunk.stride as u64 * F32;
                    self.context
                        .queue
                        .write_buffer(&chunk.inputs, offset, as_bytes(values));
                }
            }
        }
    }

    /// The (median, trimmed mean) pipelines sorting `k` values, compiled on first use.
    fn sorted_pipelines(
        &mut self,
        k: usize,
        rule: &Rule,
    ) -> Result<&(wgpu::ComputePipeline, wgpu::ComputePipeline), AggregateError> {
        if k > GPU_MAX_SORTED_INPUTS {
            return Err(AggregateError::TooManyInputsForGpu {
                rule: rule.name().to_string(),
                max: GPU_MAX_SORTED_INPUTS,
                got: k,
            });
        }
        let size = k.next_power_of_two().max(2);
        if !self.sorted.contains_key(&size) {
            if !SORTED_SHADER.contains(SORT_SIZE_LINE) {
                return Err(GpuError::Validation(
                    "reduce_sorted.wgsl lost its SORT_SIZE line".to_string(),
                )
                .into());
            }
            let source =
                SORTED_SHADER.replace(SORT_SIZE_LINE, &format!("const SORT_SIZE: u32 = {size}u;"));
            let mut pipelines = compute_pipelines(
                &self.context,
                "reduce_sorted.wgsl",
                &source,
                &self.pipeline_layout,
                &["median", "trimmed_mean"],
            )?;
            let trimmed = pipelines.pop();
            let median = pipelines.pop();
            let (Some(median), Some(trimmed)) = (median, trimmed) else {
                return Err(GpuError::Validation("missing sort pipelines".to_string()).into());
            };
            self.sorted.insert(size, (median, trimmed));
        }
        self.sorted
            .get(&size)
            .ok_or_else(|| GpuError::Validation("missing sort pipelines".to_string()).into())
    }

    /// Queues the rule's kernel over every chunk of `batch` (results stay on the device).
    fn encode(&mut self, rule: &Rule, batch: &DeviceBatch) -> Result<(), AggregateError> {
        let k = batch.k;
        let (trim, summed) = match *rule {
            Rule::Mean => (0, k),
            Rule::Median => (0, 1),
            Rule::TrimmedMean { trim } => (trim, k.saturating_sub(2 * trim)),
            Rule::Krum { .. } => {
                return Err(GpuError::Validation(
                    "Krum has no device kernel; reduce() averages its selection".to_string(),
                )
                .into());
            }
        };
        let pipeline = match rule {
            Rule::Mean => self.mean.clone(),
            Rule::Median => self.sorted_pipelines(k, rule)?.0.clone(),
            _ => self.sorted_pipelines(k, rule)?.1.clone(),
        };
        let mut encoder =
            self.context
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("reduce"),
                });
        for chunk in batch.chunks.iter().filter(|c| c.len > 0) {
            // The mean reads and writes whole vec4s; the sorting kernels one float each.
            let invocations = if *rule == Rule::Mean {
                chunk.stride / 4
            } else {
                chunk.len
            };
            let groups = grid(
                (invocations as u64).div_ceil(WORKGROUP),
                self.context.limits.max_compute_workgroups_per_dimension,
            )?;
            let params = Params {
                n: chunk.len as u32,
                k: k as u32,
                trim: trim as u32,
                scale: cpu::reciprocal(summed.max(1)),
                groups_x: groups.0,
                stride: chunk.stride as u32,
                pad: [0; 2],
            };
            self.context
                .queue
                .write_buffer(&chunk.params, 0, bytemuck::bytes_of(&params));
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("reduce"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &chunk.bind_group, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, 1);
        }
        self.context.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Reduces an uploaded batch in place and waits for the device (the benchmark's unit).
    pub fn reduce_on_device(
        &mut self,
        rule: &Rule,
        batch: &DeviceBatch,
    ) -> Result<(), AggregateError> {
        if batch.k < rule.min_inputs() {
            return Err(AggregateError::TooFewInputs {
                rule: rule.to_string(),
                needed: rule.min_inputs(),
                got: batch.k,
            });
        }
        self.encode(rule, batch)?;
        Ok(self.context.wait_idle()?)
    }

    /// Copies (K + 1)·N·4 / 2 bytes (rounded up to whole vec4s) of the batch's inputs with
    /// the WGSL copy kernel, so the copy moves (reads + writes) the same bytes as a
    /// reduction; waits for the device.
    pub fn copy_on_device(&self, batch: &mut DeviceBatch) -> Result<(), AggregateError> {
        // Whole vec4s; never more than the K·stride floats of a chunk's inputs.
        let per_chunk = |len: usize| ((batch.k + 1) * len).div_ceil(2).next_multiple_of(4);
        if batch.copy_target.is_none() {
            let size = per_chunk(batch.chunk_len.min(batch.n)).max(1) as u64 * F32;
            let target = create_buffer(
                &self.context,
                "copy target",
                size,
                wgpu::BufferUsages::STORAGE,
            )?;
            let groups = batch
                .chunks
                .iter()
                .map(|c| self.bind_group(&c.params, &c.inputs, &target))
                .collect::<Result<Vec<_>, _>>()?;
            batch.copy_target = Some((target, groups));
        }
        let Some((_, groups)) = &batch.copy_target else {
            return Ok(());
        };
        let mut encoder =
            self.context
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("copy"),
                });
        for (chunk, bind_group) in batch.chunks.iter().zip(groups) {
            let count = per_chunk(chunk.len) as u64;
            let (x, y) = grid(
                (count / 4).div_ceil(WORKGROUP),
                self.context.limits.max_compute_workgroups_per_dimension,
            )?;
            let params = Params {
                n: count as u32,
                k: 1,
                trim: 0,
                scale: 1.0,
                groups_x: x,
                stride: count as u32,
                pad: [0; 2],
            };
            self.context
                .queue
                .write_buffer(&chunk.params, 0, bytemuck::bytes_of(&params));
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("copy"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.copy);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        self.context.queue.submit([encoder.finish()]);
        Ok(self.context.wait_idle()?)
    }

    /// Reads the batch's reduced coordinates back to the host.
    pub fn download(&self, batch: &DeviceBatch) -> Result<Vec<f32>, AggregateError> {
        let mut out = Vec::with_capacity(batch.n);
        for chunk in batch.chunks.iter().filter(|c| c.len > 0) {
            let bytes = chunk.len as u64 * F32;
            let mut encoder =
                self.context
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("reduce readback"),
                    });
            encoder.copy_buffer_to_buffer(&chunk.output, 0, &batch.readback, 0, bytes);
            self.context.queue.submit([encoder.finish()]);
            let data = self.context.read_mapped(&batch.readback, bytes)?;
            out.extend(
                data.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        Ok(out)
    }

    /// Validates `inputs`, reduces them with `rule` on the device and returns the result.
    pub fn reduce(&mut self, rule: &Rule, inputs: &[&[f32]]) -> Result<Vec<f32>, AggregateError> {
        let n = validate(rule, inputs)?;
        if let Rule::Krum { byzantine, select } = *rule {
            let chosen: Vec<&[f32]> = cpu::krum_selection(inputs, byzantine, select)
                .into_iter()
                .filter_map(|i| inputs.get(i).copied())
                .collect();
            return self.reduce(&Rule::Mean, &chosen);
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let k = inputs.len();
        let reusable = self
            .staged
            .as_ref()
            .is_some_and(|b| b.k == k && b.n == n && Some(b.chunk_len) == self.chunk_len(k).ok());
        let batch = match self.staged.take() {
            Some(batch) if reusable => batch,
            _ => self.allocate(k, n)?,
        };
        self.write_inputs(&batch, inputs);
        let result = self
            .encode(rule, &batch)
            .and_then(|()| self.download(&batch));
        self.staged = Some(batch);
        let out = result?;
        // Finite inputs can still sum past f32::MAX; report it as the CPU twin does.
        if let Some(coordinate) = out.iter().position(|v| !v.is_finite()) {
            return Err(AggregateError::Overflow { coordinate });
        }
        Ok(out)
    }
}

fn single(mut pipelines: Vec<wgpu::ComputePipeline>) -> Result<wgpu::ComputePipeline, GpuError> {
    pipelines
        .pop()
        .ok_or_else(|| GpuError::Validation("no pipeline was created".to_string()))
}
