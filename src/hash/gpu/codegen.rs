//! Generates `shaders/sha256d.wgsl`: sha256d of an 80-byte header as straight-line WGSL, built
//! in `graph` so that everything not depending on the nonce is folded away (literals) or moved
//! to the host (job values in the uniform): the midstate of the first 64 bytes, rounds 0–2 of
//! the second block, the nonce-independent message words, the second hash's padding. Only the
//! rounds that feed the last state word of the final hash are kept, for the early reject.
//!
//! The checked-in shader must equal `wgsl()`; a test asserts it (`HASHGRAD_BLESS=1` rewrites
//! it). The host computes the job values with the same graph (`Kernel::job_words`).

use std::fmt::Write as _;

use super::graph::{Class, Graph, Node, Op};
use super::variant::{JobLoads, KernelVariant, MajForm};
pub(crate) use crate::hash::sha256::IV;
use crate::hash::sha256::K;

/// Invocations per workgroup (the kernel's `@workgroup_size`).
pub const WORKGROUP_SIZE: u32 = 256;
/// Default for the kernel's pipeline-overridable `NONCES_PER_INVOCATION`.
pub const DEFAULT_NONCES_PER_INVOCATION: u32 = 64;
/// Words of the uniform before the job values: nonce base, nonce count, threshold, padding.
pub const UNIFORM_HEADER_WORDS: usize = 4;

/// Path of the generated shader, relative to the crate root.
pub const SHADER_PATH: &str = "shaders/sha256d.wgsl";

/// Job inputs: 0..8 the midstate after the header's first 64 bytes, 8..11 the big-endian
/// message words 0..3 of the second block (merkle-root tail, time, bits).
pub const JOB_INPUTS: usize = 11;

/// What the host computes before the kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precompute {
    /// Every nonce-independent value (what the shipped kernel does).
    Host,
    /// Only the midstate and message words are given; the kernel computes the rest (the
    /// baseline the test measures the savings against).
    #[cfg_attr(not(test), allow(dead_code))]
    MidstateOnly,
}

/// sha256d of a header as a graph, and which of its job values the kernel reads.
#[derive(Debug)]
pub(crate) struct Kernel {
    graph: Graph,
    /// The final hash's state words (for tests: the whole digest, big-endian words).
    #[cfg_attr(not(test), allow(dead_code))]
    digest: [Node; 8],
    /// The early-reject value: the hash's top 32 bits read as a little-endian number.
    top_word: Node,
    /// Job values the kernel reads, in uniform order.
    fields: Vec<Node>,
    variant: KernelVariant,
}

fn big_sigma0(g: &mut Graph, x: Node) -> Node {
    let (a, b, c) = (g.rotr(x, 2), g.rotr(x, 13), g.rotr(x, 22));
    let ab = g.xor(a, b);
    g.xor(ab, c)
}

fn big_sigma1(g: &mut Graph, x: Node) -> Node {
    let (a, b, c) = (g.rotr(x, 6), g.rotr(x, 11), g.rotr(x, 25));
    let ab = g.xor(a, b);
    g.xor(ab, c)
}

fn small_sigma0(g: &mut Graph, x: Node) -> Node {
    let (a, b, c) = (g.rotr(x, 7), g.rotr(x, 18), g.shr(x, 3));
    let ab = g.xor(a, b);
    g.xor(ab, c)
}

fn small_sigma1(g: &mut Graph, x: Node) -> Node {
    let (a, b, c) = (g.rotr(x, 17), g.rotr(x, 19), g.shr(x, 10));
    let ab = g.xor(a, b);
    g.xor(ab, c)
}

/// One SHA-256 round, `Ch` as `g ^ (e & (f ^ g))` and `Maj` as `maj` says.
fn round(g: &mut Graph, s: [Node; 8], k: u32, w: Node, maj_form: MajForm) -> [Node; 8] {
    let [a, b, c, d, e, f, gg, h] = s;
    let s1 = big_sigma1(g, e);
    let fg = g.xor(f, gg);
    let efg = g.and(e, fg);
    let ch = g.xor(gg, efg);
    let k = g.lit(k);
    let t1 = g.add(&[h, s1, ch, k, w]);
    let s0 = big_sigma0(g, a);
    let maj = match maj_form {
        MajForm::Select => {
            let ab = g.and(a, b);
            let a_or_b = g.or(a, b);
            let c_ab = g.and(c, a_or_b);
            g.or(ab, c_ab)
        }
        MajForm::SharedXor => {
            let ab = g.xor(a, b);
            let bc = g.xor(b, c);
            let abc = g.and(ab, bc);
            g.xor(b, abc)
        }
    };
    let t2 = g.add(&[s0, maj]);
    let new_a = g.add(&[t1, t2]);
    let new_e = g.add(&[d, t1]);
    [new_a, a, b, c, new_e, e, f, gg]
}

/// One compression: `state` plus the 16 message words → the new state. Each message word is
/// made just before its round, so the emitted WGSL keeps a rolling window of 16 words live
/// rather than all 64.
fn compress(g: &mut Graph, state: [Node; 8], block: [Node; 16], maj: MajForm) -> [Node; 8] {
    let mut w = block.to_vec();
    let mut s = state;
    for (t, k) in K.iter().enumerate() {
        if t >= 16 {
            let s0 = small_sigma0(g, w[t - 15]);
            let s1 = small_sigma1(g, w[t - 2]);
            let word = g.add(&[s1, w[t - 7], s0, w[t - 16]]);
            w.push(word);
        }
        s = round(g, s, *k, w[t], maj);
    }
    std::array::from_fn(|i| g.add(&[state[i], s[i]]))
}

impl Kernel {
    /// Builds sha256d of the header with the nonce as the only per-invocation input.
    pub(crate) fn build(variant: KernelVariant) -> Kernel {
        Kernel::build_with(Precompute::Host, variant)
    }

    fn build_with(precompute: Precompute, variant: KernelVariant) -> Kernel {
        let maj = variant.maj;
        let mut g = Graph::default();
        let input = |g: &mut Graph, i: u8| match precompute {
            Precompute::Host => g.input(i),
            Precompute::MidstateOnly => g.opaque(i),
        };
        let midstate: [Node; 8] = std::array::from_fn(|i| input(&mut g, i as u8));
        let nonce = g.nonce();
        let nonce_word = g.bswap(nonce);
        let zero = g.lit(0);
        let mut block = [zero; 16];
        for (i, word) in block.iter_mut().take(3).enumerate() {
            *word = input(&mut g, 8 + i as u8);
        }
        block[3] = nonce_word;
        block[4] = g.lit(0x8000_0000);
        block[15] = g.lit(80 * 8);
        let first = compress(&mut g, midstate, block, maj);

        let iv = IV.map(|v| g.lit(v));
        let mut block = [zero; 16];
        block[..8].copy_from_slice(&first);
        block[8] = g.lit(0x8000_0000);
        block[15] = g.lit(32 * 8);
        let digest = compress(&mut g, iv, block, maj);
        let top_word = g.bswap(digest[7]);

        let reachable = g.reachable(top_word);
        let mut fields = Vec::new();
        let mut is_field = vec![false; g.len()];
        for (id, reached) in reachable.iter().enumerate() {
            let node = Node(id as u32);
            if !reached || g.class(node) != Class::Var {
                continue;
            }
            for operand in operands(g.op(node)) {
                if g.class(operand) == Class::Job
                    && !std::mem::replace(&mut is_field[operand.0 as usize], true)
                {
                    fields.push(operand);
                }
            }
        }
        Kernel {
            graph: g,
            digest,
            top_word,
            fields,
            variant,
        }
    }

    /// Number of job values in the uniform.
    pub(crate) fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// The job values the kernel reads, computed on the host from the job inputs.
    pub(crate) fn job_words(&self, inputs: &[u32; JOB_INPUTS]) -> Vec<u32> {
        let Some(last) = self.fields.iter().max() else {
            return Vec::new();
        };
        let values = self.graph.evaluate(inputs, None, *last);
        self.fields.iter().map(|f| values[f.0 as usize]).collect()
    }

    /// The whole sha256d digest for one nonce, evaluated on the CPU through the same graph
    /// (big-endian state words); tests compare it with the `sha2` reference.
    #[cfg(test)]
    pub(crate) fn evaluate_digest(&self, inputs: &[u32; JOB_INPUTS], nonce: u32) -> [u32; 8] {
        let last = self.digest.iter().chain([&self.top_word]).max().copied();
        let values = self
            .graph
            .evaluate(inputs, Some(nonce), last.unwrap_or(Node(0)));
        self.digest.map(|d| values[d.0 as usize])
    }

    /// 32-bit ALU operations per nonce in the kernel's loop body (a rotation counts 3).
    pub(crate) fn ops_per_nonce(&self) -> usize {
        let reachable = self.graph.reachable(self.top_word);
        (0..self.graph.len())
            .map(|id| Node(id as u32))
            .filter(|&node| reachable[node.0 as usize] && self.graph.class(node) == Class::Var)
            .map(|node| match self.graph.op(node) {
                Op::Add(xs) => xs.len() - 1,
                Op::Xor(..) | Op::And(..) | Op::Or(..) | Op::Shr(..) => 1,
                Op::Rotr(..) => 3,
                Op::Bswap(_) => 7,
                Op::Lit(_) | Op::Input(_) | Op::Nonce | Op::Opaque(_) => 0,
            })
            .sum()
    }

    fn operand(&self, node: Node) -> String {
        match self.graph.class(node) {
            Class::Lit => match self.graph.op(node) {
                Op::Lit(v) => format!("0x{v:08x}u"),
                other => unreachable!("literal class on {other:?}"),
            },
            Class::Job => match self.fields.iter().position(|f| *f == node) {
                Some(i) if self.variant.job_loads == JobLoads::Inline => format!("job.j{i}"),
                Some(i) => format!("j{i}"),
                None => unreachable!("job value {node:?} is not a uniform field"),
            },
            Class::Var => match self.graph.op(node) {
                Op::Nonce => "nonce".to_string(),
                _ => format!("v{}", node.0),
            },
        }
    }

    fn expression(&self, op: &Op) -> String {
        let o = |n: &Node| self.operand(*n);
        match op {
            Op::Add(xs) => xs.iter().map(o).collect::<Vec<_>>().join(" + "),
            Op::Xor(a, b) => format!("{} ^ {}", o(a), o(b)),
            Op::And(a, b) => format!("{} & {}", o(a), o(b)),
            Op::Or(a, b) => format!("{} | {}", o(a), o(b)),
            Op::Rotr(a, k) => format!("({} >> {k}u) | ({} << {}u)", o(a), o(a), 32 - k),
            Op::Shr(a, k) => format!("{} >> {k}u", o(a)),
            Op::Bswap(a) => {
                let x = o(a);
                format!(
                    "({x} << 24u) | (({x} << 8u) & 0x00ff0000u) | (({x} >> 8u) & 0x0000ff00u) | ({x} >> 24u)"
                )
            }
            Op::Lit(_) | Op::Input(_) | Op::Nonce | Op::Opaque(_) => {
                unreachable!("leaf {op:?} has no expression")
            }
        }
    }

    /// The WGSL source of the kernel.
    pub(crate) fn wgsl(&self) -> String {
        let mut s = String::new();
        let fields = self.fields.len();
        let _ = write!(
            s,
            "\
// GENERATED by src/hash/gpu/codegen.rs: do not edit. Regenerate with
//   HASHGRAD_BLESS=1 cargo test --lib hash::gpu::codegen
//
// sha256d nonce search over an 80-byte header. The host fills `Job`: the nonce range of this
// dispatch, the early-reject threshold (the target's top 32 bits) and {fields} job values
// (midstate, rounds 0-2 of block 2, nonce-independent message words, folded with their round
// constants). Each invocation hashes NONCES_PER_INVOCATION consecutive nonces; a nonce whose
// hash's top 32 bits (little-endian number) are <= threshold is appended to `candidates`; the
// host checks each candidate against the full target. {ops} operations per nonce; variant:
// {variant} (Maj form, job-value loading).

override NONCES_PER_INVOCATION: u32 = {npi}u;

struct Job {{
    nonce_base: u32,
    nonce_count: u32,
    threshold: u32,
    reserved: u32,
",
            ops = self.ops_per_nonce(),
            variant = self.variant,
            npi = DEFAULT_NONCES_PER_INVOCATION,
        );
        for i in 0..fields {
            let _ = writeln!(s, "    j{i}: u32,");
        }
        let _ = write!(
            s,
            "\
}}

struct Candidates {{
    count: atomic<u32>,
    nonces: array<u32>,
}}

@group(0) @binding(0) var<uniform> job: Job;
@group(0) @binding(1) var<storage, read_write> candidates: Candidates;

@compute @workgroup_size({WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {{
    let invocation = id.y * (groups.x * {WORKGROUP_SIZE}u) + id.x;
    let count = job.nonce_count;
    let first = invocation * NONCES_PER_INVOCATION;
    if (first >= count) {{
        return;
    }}
    let end = min(first + NONCES_PER_INVOCATION, count);
    let base = job.nonce_base;
    let threshold = job.threshold;
    let capacity = arrayLength(&candidates.nonces);
"
        );
        if self.variant.job_loads == JobLoads::Locals {
            for i in 0..fields {
                let _ = writeln!(s, "    let j{i} = job.j{i};");
            }
        }
        let _ = writeln!(
            s,
            "    for (var i = first; i < end; i = i + 1u) {{\n        let nonce = base + i;"
        );
        let reachable = self.graph.reachable(self.top_word);
        for (id, reached) in reachable.iter().enumerate() {
            let node = Node(id as u32);
            let op = self.graph.op(node);
            if !reached || self.graph.class(node) != Class::Var || *op == Op::Nonce {
                continue;
            }
            let _ = writeln!(s, "        let v{id} = {};", self.expression(op));
        }
        let _ = write!(
            s,
            "        if ({top} <= threshold) {{
            let slot = atomicAdd(&candidates.count, 1u);
            if (slot < capacity) {{
                candidates.nonces[slot] = nonce;
            }}
        }}
    }}
}}
",
            top = self.operand(self.top_word)
        );
        s
    }
}

fn operands(op: &Op) -> Vec<Node> {
    match op {
        Op::Lit(_) | Op::Input(_) | Op::Nonce | Op::Opaque(_) => Vec::new(),
        Op::Add(xs) => xs.clone(),
        Op::Xor(a, b) | Op::And(a, b) | Op::Or(a, b) => vec![*a, *b],
        Op::Rotr(a, _) | Op::Shr(a, _) | Op::Bswap(a) => vec![*a],
    }
}

/// The job inputs of a header: the midstate of its first 64 bytes and the big-endian message
/// words 0..3 of its second block.
pub(crate) fn job_inputs(header: &[u8; crate::hash::HEADER_LEN]) -> [u32; JOB_INPUTS] {
    let mut state = IV;
    let mut block = sha2::digest::generic_array::GenericArray::default();
    block.copy_from_slice(&header[..64]);
    sha2::compress256(&mut state, std::slice::from_ref(&block));
    let mut inputs = [0u32; JOB_INPUTS];
    inputs[..8].copy_from_slice(&state);
    for (i, chunk) in header[64..76].chunks_exact(4).enumerate() {
        inputs[8 + i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    inputs
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::hash::reference::sha256d;

    #[test]
    fn graph_digest_equals_the_sha2_reference() {
        let kernels = [MajForm::Select, MajForm::SharedXor].map(|maj| {
            Kernel::build(KernelVariant {
                maj,
                ..KernelVariant::default()
            })
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for kernel in kernels.iter().cycle().take(20) {
            let mut header = [0u8; 80];
            rng.fill(&mut header[..]);
            let nonce: u32 = rng.random();
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            let expected = sha256d(&header);
            let words = kernel.evaluate_digest(&job_inputs(&header), nonce);
            let mut bytes = [0u8; 32];
            for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
                chunk.copy_from_slice(&word.to_be_bytes());
            }
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn nonce_independent_work_leaves_the_kernel() {
        let kernel = Kernel::build(KernelVariant::default());
        // Two full compressions are 2 × 64 rounds of ~20 operations plus 2 × 48 schedule
        // words of ~8; midstate, the folded rounds and the early exit must cut that well down.
        // Against a kernel that is handed the midstate and message words but folds nothing.
        let ops = kernel.ops_per_nonce();
        let baseline =
            Kernel::build_with(Precompute::MidstateOnly, KernelVariant::default()).ops_per_nonce();
        eprintln!("{ops} ALU ops per nonce, {baseline} without host precomputation");
        assert!(
            ops * 100 < baseline * 97,
            "{ops} vs {baseline} ops per nonce"
        );
        assert!(kernel.field_count() > 8, "{} fields", kernel.field_count());
    }

    #[test]
    fn checked_in_shader_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SHADER_PATH);
        let generated = Kernel::build(KernelVariant::default()).wgsl();
        if std::env::var("HASHGRAD_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &generated).expect("write the generated shader");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{SHADER_PATH} is stale or hand-edited: regenerate it with \
             `HASHGRAD_BLESS=1 cargo test --lib hash::gpu::codegen`"
        );
    }
}
