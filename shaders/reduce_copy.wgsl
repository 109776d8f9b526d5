// A plain copy of `stride` floats as vec4s, the baseline the reduction kernels are measured
// against (benches/reduce.rs): same bindings, same grid shape, one 16-byte load and store per
// invocation, like the mean kernel.

struct Params {
    n: u32,
    k: u32,
    trim: u32,
    scale: f32,
    groups_x: u32,
    stride: u32,   // floats to copy (a multiple of 4)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> inputs: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<vec4<f32>>;

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = (group.y * params.groups_x + group.x) * 256u + lane;
    if (i >= params.stride / 4u) {
        return;
    }
    output[i] = inputs[i];
}
