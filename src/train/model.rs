//! The model: a multi-layer perceptron (ReLU hidden layers, softmax cross-entropy) with
//! forward and backward passes on the CPU through `matrixmultiply`'s sgemm. Parameters are
//! one flat `Vec<f32>` (per layer: weights in×out row-major, then biases), so gradients are
//! flat vectors the aggregation rules reduce and the network ships as blobs.

use rand::Rng;

use super::TrainError;

/// Largest layer width and depth accepted (bounds what a decoded state may ask to allocate).
pub const MAX_LAYER_WIDTH: usize = 1 << 16;
/// Most layers (input and output included).
pub const MAX_LAYERS: usize = 16;
/// Rows per forward pass when evaluating a whole data set.
const EVAL_BATCH: usize = 256;

/// An MLP's shape: `sizes[0]` inputs, hidden widths, `sizes.last()` classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mlp {
    sizes: Vec<usize>,
}

/// Reusable activation buffers for one batch size (avoids allocating every step).
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    activations: Vec<Vec<f32>>,
    delta: Vec<f32>,
    delta_prev: Vec<f32>,
}

/// Loss and accuracy of a model on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Fraction of rows whose arg-max class is the label.
    pub accuracy: f32,
}

impl Mlp {
    /// An MLP with these layer sizes (at least input and output, each 1..=MAX_LAYER_WIDTH).
    pub fn new(sizes: &[usize]) -> Result<Mlp, TrainError> {
        if sizes.len() < 2 || sizes.len() > MAX_LAYERS {
            return Err(TrainError::BadModel(format!(
                "an MLP needs 2 to {MAX_LAYERS} layer sizes, got {}",
                sizes.len()
            )));
        }
        if let Some(bad) = sizes.iter().find(|&&s| s == 0 || s > MAX_LAYER_WIDTH) {
            return Err(TrainError::BadModel(format!(
                "layer width {bad} is outside 1..={MAX_LAYER_WIDTH}"
            )));
        }
        Ok(Mlp {
            sizes: sizes.to_vec(),
        })
    }

    /// Layer sizes, input first.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
    /// Input features.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }
    /// Output classes.
    pub fn classes(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Total number of parameters.
    pub fn param_count(&self) -> usize {
        self.sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Kaiming-uniform weights (limit √(6/fan_in)) and zero biases.
    pub fn init(&self, rng: &mut impl Rng) -> Vec<f32> {
        let mut params = Vec::with_capacity(self.param_count());
        for w in self.sizes.windows(2) {
            let limit = (6.0 / w[0] as f32).sqrt();
            params.extend((0..w[0] * w[1]).map(|_| rng.random_range(-limit..limit)));
            params.extend(std::iter::repeat_n(0.0, w[1]));
        }
        params
    }

    fn check(&self, params: &[f32], x: &[f32], labels: &[u32]) -> Result<(), TrainError> {
        if params.len() != self.param_count() {
            return Err(TrainError::BadModel(format!(
                "{} parameters given, the model has {}",
                params.len(),
                self.param_count()
            )));
        }
        if x.len() != labels.len() * self.inputs() {
            return Err(TrainError::BadModel(format!(
                "{} feature values for {} rows of {} features",
                x.len(),
                labels.len(),
                self.inputs()
            )));
        }
        if let Some(label) = labels.iter().find(|&&l| l as usize >= self.classes()) {
            return Err(TrainError::BadModel(format!(
                "label {label} is not below the model's {} classes",
                self.classes()
            )));
        }
        Ok(())
    }

    /// Forward pass of `rows` rows; leaves logits in the last activation buffer.
    fn forward(&self, params: &[f32], x: &[f32], rows: usize, work: &mut Workspace) {
        let layers = self.sizes.len() - 1;
        work.activations.resize_with(layers, Vec::new);
        let mut offset = 0;
        for l in 0..layers {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            let weights = &params[offset..offset + fan_in * fan_out];
            let bias = &params[offset + fan_in * fan_out..offset + fan_in * fan_out + fan_out];
            offset += fan_in * fan_out + fan_out;
            let (done, rest) = work.activations.split_at_mut(l);
            let input: &[f32] = if l == 0 { x } else { &done[l - 1] };
            let out = &mut rest[0];
            out.clear();
            for _ in 0..rows {
                out.extend_from_slice(bias);
            }
            gemm(
                rows,
                fan_in,
                fan_out,
                input,
                (fan_in, 1),
                weights,
                (fan_out, 1),
                1.0,
                out,
            );
            if l + 1 < layers {
                for v in out.iter_mut() {
                    *v = v.max(0.0);
                }
            }
        }
    }

    /// Mean cross-entropy of a batch; writes d(loss)/d(params) into `grad`.
    pub fn gradient(
        &self,
        params: &[f32],
        x: &[f32],
        labels: &[u32],
        grad: &mut Vec<f32>,
        work: &mut Workspace,
    ) -> Result<f32, TrainError> {
        self.check(params, x, labels)?;
        let rows = labels.len();
        grad.clear();
        grad.resize(self.param_count(), 0.0);
        if rows == 0 {
            return Ok(0.0);
        }
        self.forward(params, x, rows, work);
        let layers = self.sizes.len() - 1;
        let classes = self.classes();
        // delta = (softmax − onehot) / rows, loss = mean −log p[label].
        work.delta.clear();
        work.delta.extend_from_slice(&work.activations[layers - 1]);
        let mut loss = 0.0f64;
        for (row, &label) in work.delta.chunks_exact_mut(classes).zip(labels) {
            let log_p = log_softmax_in_place(row);
            loss -= f64::from(log_p[label as usize]);
            for v in row.iter_mut() {
                *v = v.exp() / rows as f32;
            }
            row[label as usize] -= 1.0 / rows as f32;
        }
        let mut end = self.param_count();
        for l in (0..layers).rev() {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            let w_start = end - fan_out - fan_in * fan_out;
            let input: &[f32] = if l == 0 { x } else { &work.activations[l - 1] };
            let (weights_grad, bias_grad) = grad[w_start..end].split_at_mut(fan_in * fan_out);
            // dW = inputᵀ · delta (fan_in × fan_out).
            gemm(
                fan_in,
                rows,
                fan_out,
                input,
                (1, fan_in),
                &work.delta,
                (fan_out, 1),
                0.0,
                weights_grad,
            );
            for row in work.delta.chunks_exact(fan_out) {
                for (b, d) in bias_grad.iter_mut().zip(row) {
                    *b += d;
                }
            }
            if l > 0 {
                // delta_prev = delta · Wᵀ, masked by the ReLU.
                let weights = &params[w_start..w_start + fan_in * fan_out];
                work.delta_prev.clear();
                work.delta_prev.resize(rows * fan_in, 0.0);
                gemm(
                    rows,
                    fan_out,
                    fan_in,
                    &work.delta,
                    (fan_out, 1),
                    weights,
                    (1, fan_out),
                    0.0,
                    &mut work.delta_prev,
                );
                for (d, a) in work.delta_prev.iter_mut().zip(&work.activations[l - 1]) {
                    if *a <= 0.0 {
                        *d = 0.0;
                    }
                }
                std::mem::swap(&mut work.delta, &mut work.delta_prev);
            }
            end = w_start;
        }
        Ok((loss / rows as f64) as f32)
    }

    /// Loss and accuracy over a whole data set (`x` row-major, one label per row).
    pub fn evaluate(
        &self,
        params: &[f32],
        x: &[f32],
        labels: &[u32],
    ) -> Result<Evaluation, TrainError> {
        self.check(params, x, labels)?;
        let mut work = Workspace::default();
        let classes = self.classes();
        let (mut loss, mut correct) = (0.0f64, 0usize);
        let inputs = self.inputs();
        for (rows_x, rows_labels) in x.chunks(EVAL_BATCH * inputs).zip(labels.chunks(EVAL_BATCH)) {
            self.forward(params, rows_x, rows_labels.len(), &mut work);
            let logits = &mut work.activations[self.sizes.len() - 2];
            for (row, &label) in logits.chunks_exact_mut(classes).zip(rows_labels) {
                let predicted = argmax(row);
                correct += usize::from(predicted == label as usize);
                loss -= f64::from(log_softmax_in_place(row)[label as usize]);
            }
        }
        let rows = labels.len().max(1) as f64;
        Ok(Evaluation {
            loss: (loss / rows) as f32,
            accuracy: (correct as f64 / rows) as f32,
        })
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Replaces logits by their log-softmax (max-shifted for stability) and returns them.
fn log_softmax_in_place(row: &mut [f32]) -> &mut [f32] {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let log_sum = sum.ln() + max;
    for v in row.iter_mut() {
        *v -= log_sum;
    }
    row
}

/// Elements a strided m×k matrix spans.
fn span(rows: usize, cols: usize, (row_stride, col_stride): (usize, usize)) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    }
}

/// c (m×n, row-major) = a (m×k) · b (k×n) + beta·c, strides given as (row, column).
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    beta: f32,
    c: &mut [f32],
) {
    // These are internal invariants (shapes come from `Mlp` and were checked): the asserts
    // keep the unsafe call sound whatever a caller does.
    assert!(a.len() >= span(m, k, a_strides), "gemm: a too short");
    assert!(b.len() >= span(k, n, b_strides), "gemm: b too short");
    assert!(c.len() >= m * n, "gemm: c too short");
    // SAFETY: the asserts above bound every element sgemm reads or writes.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            a_strides.0 as isize,
            a_strides.1 as isize,
            b.as_ptr(),
            b_strides.0 as isize,
            b_strides.1 as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn gradient_matches_finite_differences() {
        let mlp = Mlp::new(&[5, 7, 6, 3]).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let params = mlp.init(&mut rng);
        let rows = 4;
        let x: Vec<f32> = (0..rows * 5).map(|_| rng.random_range(-1.0..1.0)).collect();
        let labels = [0u32, 2, 1, 2];
        let mut grad = Vec::new();
        let mut work = Workspace::default();
        mlp.gradient(&params, &x, &labels, &mut grad, &mut work)
            .unwrap();
        let loss_at = |p: &[f32]| -> f64 {
            let mut g = Vec::new();
            f64::from(
                mlp.gradient(p, &x, &labels, &mut g, &mut Workspace::default())
                    .unwrap(),
            )
        };
        let h = 1e-2f32;
        let mut checked = 0;
        for i in 0..params.len() {
            let mut plus = params.clone();
            plus[i] += h;
            let mut minus = params.clone();
            minus[i] -= h;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            let analytic = f64::from(grad[i]);
            let scale = numeric.abs().max(analytic.abs()).max(1e-2);
            assert!(
                (numeric - analytic).abs() / scale < 2e-2,
                "param {i}: numeric {numeric} vs analytic {analytic}"
            );
            checked += 1;
        }
        assert_eq!(checked, mlp.param_count());
        assert!(grad.iter().any(|g| g.abs() > 1e-3));
    }

    #[test]
    fn shape_errors_are_reported() {
        assert!(Mlp::new(&[4]).is_err());
        assert!(Mlp::new(&[4, 0, 2]).is_err());
        let mlp = Mlp::new(&[2, 3]).unwrap();
        let params = vec![0.0; mlp.param_count()];
        let mut grad = Vec::new();
        let mut work = Workspace::default();
        assert!(
            mlp.gradient(&params, &[1.0; 3], &[0], &mut grad, &mut work)
                .is_err()
        );
        assert!(
            mlp.gradient(&params, &[1.0; 2], &[3], &mut grad, &mut work)
                .is_err()
        );
        assert!(
            mlp.gradient(&params[1..], &[1.0; 2], &[0], &mut grad, &mut work)
                .is_err()
        );
    }
}
