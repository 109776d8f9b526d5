//! A tiny expression graph of 32-bit word operations with constant folding, common
//! sub-expression sharing and a three-way split of every value: a literal known when the shader
//! is generated, a job value the host computes once per job, or a value that depends on the
//! nonce and so runs in the kernel. `codegen` builds sha256d in it; the host evaluates the job
//! values with `JobEvaluator`, so kernel and host can never disagree on what was precomputed.
//!
//! Knows nothing of SHA-256 or WGSL.

use std::collections::HashMap;

/// A node of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Node(pub(crate) u32);

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    Lit(u32),
    /// Job input `i` (set by the host for each job).
    Input(u8),
    /// The nonce, the only per-invocation input.
    Nonce,
    /// Input `i` treated as unknown until the kernel runs: only for measuring what the
    /// host-side precomputation saves.
    Opaque(u8),
    /// Wrapping sum of two or more operands.
    Add(Vec<Node>),
    Xor(Node, Node),
    And(Node, Node),
    Or(Node, Node),
    Rotr(Node, u32),
    Shr(Node, u32),
    /// Byte swap (big-endian ↔ little-endian word).
    Bswap(Node),
}

/// When a node's value is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// At generation time: a WGSL literal.
    Lit,
    /// Once per job, on the host: a uniform field.
    Job,
    /// Per nonce, in the kernel.
    Var,
}

/// The graph; node ids are in creation order, which is a topological order.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    ops: Vec<Op>,
    classes: Vec<Class>,
    index: HashMap<Op, Node>,
}

impl Graph {
    pub(crate) fn op(&self, node: Node) -> &Op {
        &self.ops[node.0 as usize]
    }

    pub(crate) fn class(&self, node: Node) -> Class {
        self.classes[node.0 as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    fn literal(&self, node: Node) -> Option<u32> {
        match self.op(node) {
            Op::Lit(v) => Some(*v),
            _ => None,
        }
    }

    fn intern(&mut self, op: Op) -> Node {
        if let Some(node) = self.index.get(&op) {
            return *node;
        }
        let class = match &op {
            Op::Lit(_) => Class::Lit,
            Op::Input(_) => Class::Job,
            Op::Nonce | Op::Opaque(_) => Class::Var,
            Op::Add(xs) => xs
                .iter()
                .map(|x| self.class(*x))
                .max()
                .unwrap_or(Class::Lit),
            Op::Xor(a, b) | Op::And(a, b) | Op::Or(a, b) => self.class(*a).max(self.class(*b)),
            Op::Rotr(a, _) | Op::Shr(a, _) | Op::Bswap(a) => self.class(*a),
        };
        let node = Node(self.ops.len() as u32);
        self.ops.push(op.clone());
        self.classes.push(class);
        self.index.insert(op, node);
        node
    }

    pub(crate) fn lit(&mut self, value: u32) -> Node {
        self.intern(Op::Lit(value))
    }

    pub(crate) fn input(&mut self, index: u8) -> Node {
        self.intern(Op::Input(index))
    }

    pub(crate) fn opaque(&mut self, index: u8) -> Node {
        self.intern(Op::Opaque(index))
    }

    pub(crate) fn nonce(&mut self) -> Node {
        self.intern(Op::Nonce)
    }

    pub(crate) fn xor(&mut self, a: Node, b: Node) -> Node {
        match (self.literal(a), self.literal(b)) {
            (Some(x), Some(y)) => self.lit(x ^ y),
            (Some(0), _) => b,
            (_, Some(0)) => a,
            _ if a == b => self.lit(0),
            _ => self.intern(Op::Xor(a.min(b), a.max(b))),
        }
    }

    pub(crate) fn and(&mut self, a: Node, b: Node) -> Node {
        match (self.literal(a), self.literal(b)) {
            (Some(x), Some(y)) => self.lit(x & y),
            (Some(0), _) | (_, Some(0)) => self.lit(0),
            (Some(u32::MAX), _) => b,
            (_, Some(u32::MAX)) => a,
            _ if a == b => a,
            _ => self.intern(Op::And(a.min(b), a.max(b))),
        }
    }

    pub(crate) fn or(&mut self, a: Node, b: Node) -> Node {
        match (self.literal(a), self.literal(b)) {
            (Some(x), Some(y)) => self.lit(x | y),
            (Some(0), _) => b,
            (_, Some(0)) => a,
            (Some(u32::MAX), _) | (_, Some(u32::MAX)) => self.lit(u32::MAX),
            _ if a == b => a,
            _ => self.intern(Op::Or(a.min(b), a.max(b))),
        }
    }

    pub(crate) fn rotr(&mut self, a: Node, bits: u32) -> Node {
        match self.literal(a) {
            Some(x) => self.lit(x.rotate_right(bits)),
            None => self.intern(Op::Rotr(a, bits)),
        }
    }

    pub(crate) fn shr(&mut self, a: Node, bits: u32) -> Node {
        match self.literal(a) {
            Some(x) => self.lit(x >> bits),
            None => self.intern(Op::Shr(a, bits)),
        }
    }

    pub(crate) fn bswap(&mut self, a: Node) -> Node {
        match self.literal(a) {
            Some(x) => self.lit(x.swap_bytes()),
            None => self.intern(Op::Bswap(a)),
        }
    }

    /// A wrapping sum. Literal operands fold into one literal and job operands into one job
    /// value (computed on the host), so the kernel adds each per-nonce operand once plus at most
    /// one precomputed constant. A per-nonce operand that is itself `v + constant` is opened up
    /// so its constant joins this sum's: never more kernel additions, often fewer.
    pub(crate) fn add(&mut self, operands: &[Node]) -> Node {
        let mut constant = 0u32;
        let mut job = Vec::new();
        let mut var = Vec::new();
        let mut pending: Vec<Node> = operands.to_vec();
        while let Some(x) = pending.pop() {
            match (self.class(x), self.op(x).clone()) {
                (Class::Lit, Op::Lit(v)) => constant = constant.wrapping_add(v),
                (Class::Job, Op::Add(children)) => pending.extend(children),
                (Class::Job, _) => job.push(x),
                (Class::Var, Op::Add(children))
                    if children.len() == 2
                        && self.class(children[0]) == Class::Var
                        && self.class(children[1]) != Class::Var =>
                {
                    var.push(children[0]);
                    pending.push(children[1]);
                }
                _ => var.push(x),
            }
        }
        let fixed = if job.is_empty() {
            self.lit(constant)
        } else {
            if constant != 0 {
                job.push(self.lit(constant));
            }
            job.sort();
            if job.len() == 1 {
                job[0]
            } else {
                self.intern(Op::Add(job))
            }
        };
        if var.is_empty() {
            return fixed;
        }
        if self.literal(fixed) != Some(0) {
            var.push(fixed);
        }
        var.sort();
        if var.len() == 1 {
            var[0]
        } else {
            self.intern(Op::Add(var))
        }
    }

    /// Every node `root` depends on, as a mask indexed by node id.
    pub(crate) fn reachable(&self, root: Node) -> Vec<bool> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node.0 as usize], true) {
                continue;
            }
            match self.op(node) {
                Op::Lit(_) | Op::Input(_) | Op::Nonce | Op::Opaque(_) => {}
                Op::Add(xs) => stack.extend(xs.iter().copied()),
                Op::Xor(a, b) | Op::And(a, b) | Op::Or(a, b) => stack.extend([*a, *b]),
                Op::Rotr(a, _) | Op::Shr(a, _) | Op::Bswap(a) => stack.push(*a),
            }
        }
        seen
    }

    /// Evaluates every node up to `last` (inclusive); `nonce` is `None` for the host's job
    /// pass, which then leaves per-nonce nodes at zero.
    pub(crate) fn evaluate(&self, inputs: &[u32], nonce: Option<u32>, last: Node) -> Vec<u32> {
        let mut values = vec![0u32; last.0 as usize + 1];
        for i in 0..values.len() {
            if nonce.is_none() && self.classes[i] == Class::Var {
                continue;
            }
            let v = |n: &Node| values[n.0 as usize];
            let value = match &self.ops[i] {
                Op::Lit(x) => *x,
                Op::Input(k) | Op::Opaque(k) => inputs.get(*k as usize).copied().unwrap_or(0),
                Op::Nonce => nonce.unwrap_or(0),
                Op::Add(xs) => xs.iter().fold(0u32, |s, x| s.wrapping_add(v(x))),
                Op::Xor(a, b) => v(a) ^ v(b),
                Op::And(a, b) => v(a) & v(b),
                Op::Or(a, b) => v(a) | v(b),
                Op::Rotr(a, k) => v(a).rotate_right(*k),
                Op::Shr(a, k) => v(a) >> k,
                Op::Bswap(a) => v(a).swap_bytes(),
            };
            values[i] = value;
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_fold_and_job_terms_merge_into_one_constant() {
        let mut g = Graph::default();
        let (one, two) = (g.lit(1), g.lit(2));
        let three = g.xor(one, two);
        assert_eq!(g.op(three), &Op::Lit(3));
        let (i0, i1, n) = (g.input(0), g.input(1), g.nonce());
        let sum = g.add(&[i0, one, n, i1, two]);
        let Op::Add(parts) = g.op(sum).clone() else {
            panic!("expected a sum, got {:?}", g.op(sum));
        };
        // The nonce plus one job value that holds i0 + i1 + 3.
        assert_eq!(parts.len(), 2);
        assert_eq!(g.class(parts[1]), Class::Job);
        let values = g.evaluate(&[10, 20], Some(100), sum);
        assert_eq!(values[sum.0 as usize], 133);
        // Adding a constant to `nonce + c` gives `nonce + c'`, not a longer chain.
        let more = g.add(&[sum, two]);
        let Op::Add(parts) = g.op(more).clone() else {
            panic!("expected a sum");
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(g.evaluate(&[10, 20], Some(100), more)[more.0 as usize], 135);
    }

    #[test]
    fn identical_expressions_share_one_node() {
        let mut g = Graph::default();
        let (a, b) = (g.nonce(), g.input(3));
        assert_eq!(g.xor(a, b), g.xor(b, a));
        assert_eq!(g.xor(a, a), g.lit(0));
        assert_eq!(g.and(a, a), a);
    }
}
