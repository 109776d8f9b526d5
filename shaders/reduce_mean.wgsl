// Coordinate-wise mean of K gradients (one chunk of N coordinates).
// `inputs` holds K rows padded to `stride` floats (a multiple of 4; row k starts at k·stride),
// read as vec4s: one invocation per 4 output coordinates sums its column in input order
// 0, 1, …, K−1 and scales by `scale` = 1/K computed on the host — per lane the exact sequence
// of operations of the CPU twin (src/train/aggregate/cpu.rs). No atomics. Padding lanes are
// computed and never read back.

struct Params {
    n: u32,        // coordinates in this chunk
    k: u32,        // number of inputs
    trim: u32,     // values dropped at each end (trimmed mean only)
    scale: f32,    // 1 / (number of summed values), computed on the host in f32
    groups_x: u32, // workgroups along x; the grid is 2-D when N needs more than the x limit
    stride: u32,   // row stride of `inputs` in floats (n rounded up to whole vec4s)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> inputs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<vec4<f32>>;

@compute @workgroup_size(256)
fn mean(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = (group.y * params.groups_x + group.x) * 256u + lane;
    let row = params.stride / 4u;
    if (i >= row) {
        return;
    }
    var acc = inputs[i];
    for (var k = 1u; k < params.k; k = k + 1u) {
        acc = acc + inputs[k * row + i];
    }
    output[i] = acc * params.scale;
}
