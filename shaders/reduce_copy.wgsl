// A plain copy of `n` floats, the baseline the reduction kernels are measured against
// (benches/reduce.rs): same bindings, same grid, one load and one store per invocation.

struct Params {
    n: u32,
    k: u32,
    trim: u32,
    scale: f32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> inputs: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = (group.y * params.groups_x + group.x) * 256u + lane;
    if (i >= params.n) {
        return;
    }
    output[i] = inputs[i];
}
