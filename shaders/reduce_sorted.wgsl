// Coordinate-wise median and trimmed mean of K gradients (one chunk of N coordinates; row k
// of `inputs` starts at k·stride).
// Each invocation loads its column into a function-scope array (dynamically indexable in
// WGSL), pads it to SORT_SIZE (a power of two ≥ K, substituted by the host) with f32::MAX,
// and sorts it with a bitonic network: branch-free compare-exchanges, no atomics. Padding
// sorts after every real value (inputs are finite; NaN/Inf are rejected on the host), so the
// first K slots hold the sorted column.
//   median: the middle value, or a·0.5 + b·0.5 of the two middle values for even K;
//   trimmed_mean: the kept values trim..K−trim summed in ascending order, times `scale`.
// Both are the exact operation sequences of the CPU twin (src/train/aggregate/cpu.rs).

const SORT_SIZE: u32 = 64u;
const PAD: f32 = 3.40282347e+38f;

struct Params {
    n: u32,
    k: u32,
    trim: u32,
    scale: f32,
    groups_x: u32,
    stride: u32,   // row stride of `inputs` in floats (n rounded up to whole vec4s)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> inputs: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

var<private> column: array<f32, SORT_SIZE>;

fn load_and_sort(i: u32) {
    let stride = params.stride;
    for (var k = 0u; k < SORT_SIZE; k = k + 1u) {
        if (k < params.k) {
            column[k] = inputs[k * stride + i];
        } else {
            column[k] = PAD;
        }
    }
    for (var size = 2u; size <= SORT_SIZE; size = size << 1u) {
        for (var span = size >> 1u; span > 0u; span = span >> 1u) {
            for (var a = 0u; a < SORT_SIZE; a = a + 1u) {
                let b = a ^ span;
                if (b > a) {
                    let x = column[a];
                    let y = column[b];
                    let ascending = (a & size) == 0u;
                    let swap = select((y > x), (x > y), ascending);
                    column[a] = select(x, y, swap);
                    column[b] = select(y, x, swap);
                }
            }
        }
    }
}

@compute @workgroup_size(256)
fn median(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = (group.y * params.groups_x + group.x) * 256u + lane;
    if (i >= params.n) {
        return;
    }
    load_and_sort(i);
    let mid = params.k / 2u;
    if ((params.k & 1u) == 1u) {
        output[i] = column[mid];
    } else {
        output[i] = column[mid - 1u] * 0.5 + column[mid] * 0.5;
    }
}

@compute @workgroup_size(256)
fn trimmed_mean(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = (group.y * params.groups_x + group.x) * 256u + lane;
    if (i >= params.n) {
        return;
    }
    load_and_sort(i);
    let end = params.k - params.trim;
    var acc = column[params.trim];
    for (var j = params.trim + 1u; j < end; j = j + 1u) {
        acc = acc + column[j];
    }
    output[i] = acc * params.scale;
}
