//! The transformer step: `forward(token, pos) -> logits`.
//!
//! One llama-2 block per layer: `x += wo · attention(rope(wq·n(x)), rope(wk·n(x)), wv·n(x))`,
//! then `x += w2 · (silu(w1·n(x)) * (w3·n(x)))`, with `n` = RMSNorm (epsilon 1e-5). The math and
//! its order follow llama2.c's `run.c`: RoPE frequencies `1 / 10000^(head_dim / head_size)`,
//! attention scores divided by `sqrt(head_size)`, softmax with the maximum subtracted. For int8
//! matrices the input vector is first quantized per group like `runq.c` (scale = max|x| / 127,
//! `round` half away from zero), and the same code path runs: only the matmul differs.

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::kernels::{self, Kernels};
use crate::model::{Config, Matrix, Weights};
use crate::parallel::{for_rows, Serial, Workers};
use crate::state::{RunState, StateSize};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Below this many multiply-adds per worker a matmul is not split (the sync would cost more).
const MIN_MACS_PER_WORKER: usize = 16 * 1024;

/// A model ready to run: weights, run state, kernels and workers.
pub struct Transformer<'a> {
    /// The model's shape (with `seq_len` possibly capped).
    pub config: Config,
    /// The weights.
    pub weights: Weights<'a>,
    state: RunState,
    kernels: &'a dyn Kernels,
    workers: Box<dyn Workers + 'a>,
    /// (head_size / 2) RoPE inverse frequencies.
    rope_freq: Vec<f32>,
}

impl<'a> Transformer<'a> {
    /// Builds a transformer over a parsed checkpoint with the best kernels, one worker and the
    /// model's full context.
    pub fn new(checkpoint: Checkpoint<'a>) -> Result<Self> {
        Self::with_options(checkpoint, None, kernels::best(), Box::new(Serial))
    }

    /// Builds a transformer with a context capped to `seq_len` (if given and smaller than the
    /// model's), the given kernels and workers.
    pub fn with_options(
        checkpoint: Checkpoint<'a>,
        seq_len: Option<usize>,
        kernels: &'a dyn Kernels,
        workers: Box<dyn Workers + 'a>,
    ) -> Result<Self> {
        let mut config = checkpoint.config;
        if let Some(cap) = seq_len {
            if cap == 0 {
                return Err(Error::BadConfig {
                    field: "seq_len",
                    value: 0,
                    reason: "must be positive",
                });
            }
            config.seq_len = config.seq_len.min(cap);
        }
        let weights = checkpoint.weights;
        let state = RunState::new(&config, &weights, config.seq_len)?;
        let hs = config.head_size();
        let rope_freq = (0..hs)
            .step_by(2)
            .map(|head_dim| 1.0f32 / libm::powf(10000.0f32, head_dim as f32 / hs as f32))
            .collect();
        Ok(Transformer { config, weights, state, kernels, workers, rope_freq })
    }

    /// The bytes of run state this transformer holds.
    pub fn state_size(&self) -> StateSize {
        // Cannot fail: the same computation succeeded in `with_options`.
        RunState::size(&self.config, &self.weights, self.config.seq_len)
            .unwrap_or(StateSize { kv_cache: 0, activations: 0 })
    }

    /// The kernels in use.
    pub fn kernels(&self) -> &'a dyn Kernels {
        self.kernels
    }

    /// Number of workers matmuls are split over.
    pub fn worker_count(&self) -> usize {
        self.workers.count()
    }

    /// Runs the model on `token` at position `pos` and returns the logits over the vocabulary.
    /// Positions must be fed in order from 0 (the KV cache holds the earlier ones).
    pub fn forward(&mut self, token: u32, pos: usize) -> Result<&mut [f32]> {
        let c = self.config;
        if token as usize >= c.vocab_size {
            return Err(Error::TokenOutOfRange { token, vocab_size: c.vocab_size });
        }
        if pos >= c.seq_len {
            return Err(Error::PositionOutOfRange { pos, seq_len: c.seq_len });
        }
        let (dim, hidden_dim, head_size) = (c.dim, c.hidden_dim, c.head_size());
        let (kv_dim, kv_mul, seq_len) = (c.kv_dim(), c.kv_mul(), c.seq_len);
        let w = &self.weights;
        let mm = MatMul { kernels: self.kernels, workers: &*self.workers };
        let RunState {
            x,
            xb,
            xb2,
            hb,
            hb2,
            q,
            att,
            logits,
            key_cache,
            value_cache,
            xq,
            xs,
            rope_cos,
            rope_sin,
        } = &mut self.state;

        w.token_embedding.row_into(token as usize, x);

        // RoPE angles depend only on the position and the index within a head.
        for ((f, co), si) in self.rope_freq.iter().zip(rope_cos.iter_mut()).zip(rope_sin.iter_mut())
        {
            let val = pos as f32 * f;
            *co = libm::cosf(val);
            *si = libm::sinf(val);
        }

        for (l, layer) in w.layers.iter().enumerate() {
            rmsnorm(xb, x, &layer.rms_att_weight);

            let kv_at = (l * seq_len + pos) * kv_dim;
            let k = &mut key_cache[kv_at..kv_at + kv_dim];
            let v = &mut value_cache[kv_at..kv_at + kv_dim];
            let mut qx = QuantInput::new(xq, xs, xb);
            mm.run(q, &layer.wq, &mut qx);
            mm.run(k, &layer.wk, &mut qx);
            mm.run(v, &layer.wv, &mut qx);

            rope(q, rope_cos, rope_sin, head_size);
            rope(k, rope_cos, rope_sin, head_size);

            let inv = libm::sqrtf(head_size as f32);
            for h in 0..c.n_heads {
                let qh = &q[h * head_size..(h + 1) * head_size];
                let att = &mut att[h * seq_len..h * seq_len + pos + 1];
                let kv_off = l * seq_len * kv_dim + (h / kv_mul) * head_size;
                for (t, a) in att.iter_mut().enumerate() {
                    let kt = &key_cache[kv_off + t * kv_dim..kv_off + t * kv_dim + head_size];
                    let mut score = 0.0f32;
                    for (qi, ki) in qh.iter().zip(kt) {
                        score += qi * ki;
                    }
                    *a = score / inv;
                }
                softmax(att);
                let out = &mut xb[h * head_size..(h + 1) * head_size];
                out.fill(0.0);
                for (t, &a) in att.iter().enumerate() {
                    let vt = &value_cache[kv_off + t * kv_dim..kv_off + t * kv_dim + head_size];
                    for (o, vi) in out.iter_mut().zip(vt) {
                        *o += a * vi;
                    }
                }
            }

            mm.run(xb2, &layer.wo, &mut QuantInput::new(xq, xs, xb));
            for (a, b) in x.iter_mut().zip(xb2.iter()) {
                *a += b;
            }

            rmsnorm(xb, x, &layer.rms_ffn_weight);
            let mut qx = QuantInput::new(xq, xs, xb);
            mm.run(hb, &layer.w1, &mut qx);
            mm.run(hb2, &layer.w3, &mut qx);
            for (h1, h3) in hb.iter_mut().zip(hb2.iter()) {
                let mut val = *h1;
                val *= 1.0f32 / (1.0f32 + libm::expf(-val));
                val *= h3;
                *h1 = val;
            }
            mm.run(xb, &layer.w2, &mut QuantInput::new(xq, xs, hb));
            for (a, b) in x.iter_mut().zip(xb.iter()) {
                *a += b;
            }
        }

        rmsnorm_in_place(x, &w.rms_final_weight);
        mm.run(logits, w.classifier(), &mut QuantInput::new(xq, xs, x));
        debug_assert_eq!(hidden_dim, hb.len());
        debug_assert_eq!(dim, x.len());
        Ok(logits)
    }
}

/// RMSNorm as run.c: `o = weight * (x / sqrt(mean(x^2) + 1e-5))`.
pub fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[f32]) {
    let ss = inv_rms(x);
    for ((o, w), x) in o.iter_mut().zip(weight).zip(x) {
        *o = w * (ss * x);
    }
}

fn rmsnorm_in_place(x: &mut [f32], weight: &[f32]) {
    let ss = inv_rms(x);
    for (x, w) in x.iter_mut().zip(weight) {
        *x = w * (ss * *x);
    }
}

fn inv_rms(x: &[f32]) -> f32 {
    let mut ss = 0.0f32;
    for v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += 1e-5f32;
    1.0f32 / libm::sqrtf(ss)
}

/// Softmax in place, subtracting the maximum first (run.c's order of operations).
pub fn softmax(x: &mut [f32]) {
    let Some(&first) = x.first() else { return };
    let max_val = x.iter().fold(first, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max_val);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Rotates consecutive pairs of each head of `vec` by the current position's angles.
fn rope(vec: &mut [f32], cos: &[f32], sin: &[f32], head_size: usize) {
    for head in vec.chunks_exact_mut(head_size) {
        for ((pair, fcr), fci) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (v0, v1) = (pair[0], pair[1]);
            pair[0] = v0 * fcr - v1 * fci;
            pair[1] = v0 * fci + v1 * fcr;
        }
    }
}

/// An activation vector and its int8 form, quantized lazily for the first int8 matrix that
/// reads it and reused by the next ones with the same layout (wq/wk/wv, w1/w3).
pub struct QuantInput<'s> {
    xq: &'s mut [i8],
    xs: &'s mut [f32],
    x: &'s [f32],
    layout: Option<(usize, usize)>,
}

impl<'s> QuantInput<'s> {
    /// Wraps `x` with scratch space for its quantized form.
    pub fn new(xq: &'s mut [i8], xs: &'s mut [f32], x: &'s [f32]) -> Self {
        QuantInput { xq, xs, x, layout: None }
    }

    /// The quantized input for rows of `stride` values in groups of `group`.
    fn quantized(&mut self, stride: usize, group: usize) -> (&[i8], &[f32]) {
        let groups = stride / group;
        if self.layout != Some((stride, group)) {
            quantize(&mut self.xq[..stride], &mut self.xs[..groups], self.x, group);
            self.layout = Some((stride, group));
        }
        (&self.xq[..stride], &self.xs[..groups])
    }
}

/// runq.c's `quantize`: per group, `scale = max|x| / 127`, `q = round(x / scale)` (half away
/// from zero). `x` may be shorter than `q` (padded rows): the rest quantizes as zeros.
pub fn quantize(q: &mut [i8], s: &mut [f32], x: &[f32], group: usize) {
    for (g, (qg, sg)) in q.chunks_exact_mut(group).zip(s.iter_mut()).enumerate() {
        let xg = x.get(g * group..).unwrap_or(&[]);
        let xg = &xg[..xg.len().min(group)];
        let wmax =
            xg.iter().fold(0.0f32, |m, v| if libm::fabsf(*v) > m { libm::fabsf(*v) } else { m });
        let scale = wmax / 127.0f32;
        *sg = scale;
        for (i, qv) in qg.iter_mut().enumerate() {
            let v = xg.get(i).copied().unwrap_or(0.0);
            // `as` saturates and maps NaN (0/0 for an all-zero group) to 0, like the C cast does
            // on the targets llama2.c runs on.
            *qv = libm::roundf(v / scale) as i8;
        }
    }
}

/// Runs one matmul with the transformer's kernels, split over its workers.
struct MatMul<'k> {
    kernels: &'k dyn Kernels,
    workers: &'k dyn Workers,
}

impl MatMul<'_> {
    fn run(&self, out: &mut [f32], m: &Matrix<'_>, input: &mut QuantInput<'_>) {
        let k = self.kernels;
        match m {
            Matrix::F32 { w, cols, .. } => {
                let (x, n) = (input.x, *cols);
                let min_rows = MIN_MACS_PER_WORKER.div_ceil(n);
                for_rows(self.workers, out, min_rows, &|r0, chunk| {
                    k.matmul_f32(chunk, &w[r0 * n..(r0 + chunk.len()) * n], x)
                });
            }
            Matrix::Q8(m) => {
                let (stride, group) = (m.stride, m.group);
                let (xq, xs) = input.quantized(stride, group);
                let groups = stride / group;
                let min_rows = MIN_MACS_PER_WORKER.div_ceil(stride);
                for_rows(self.workers, out, min_rows, &|r0, chunk| {
                    let rows = r0..r0 + chunk.len();
                    k.matmul_q8(
                        chunk,
                        &m.q[rows.start * stride..rows.end * stride],
                        &m.s[rows.start * groups..rows.end * groups],
                        xq,
                        xs,
                        group,
                    )
                });
            }
        }
    }
}
