//! The transformer step: `forward(token, pos) -> logits`, one skeleton for both numerics.
//!
//! One llama-2 block per layer: `x += wo · attention(rope(wq·n(x)), rope(wk·n(x)), wv·n(x))`,
//! then `x += w2 · (silu(w1·n(x)) * (w3·n(x)))`, with `n` = RMSNorm (epsilon 1e-5). `step`
//! is that sequence, read top to bottom like llama2.c's `forward`; each numerics supplies the
//! operations (`Block`): `Float` here, llama2.c's arithmetic and order (`run.c`; for int8
//! matrices the input is quantized per group like `runq.c`, and only the matmul differs), and
//! `fixed::Fixed`, integers for cores without an FPU. Both split their matmuls and
//! attention heads over the workers ([`crate::parallel`]).

use crate::kernels::{AttnScale, Kernels};
use crate::math::Math;
use crate::model::{Config, Matrix, Weights};
use crate::parallel::{split_concat, split_job, Shared, Workers};
use crate::repack::{Repacked, Slot};
use crate::rope::RopeTable;
use crate::state::Buffers;
use core::ops::Range;

pub use crate::math::{expf, quantize, rmsnorm, rope, softmax};
pub use crate::transformer::{Numerics, Options, Transformer, DEFAULT_PREFILL};

/// Row ranges handed to workers start at multiples of this, so SIMD row blocks stay whole.
pub(crate) const ROW_ALIGN: usize = 16;
// Ranges then also start on the interleaved layout's blocks (its kernels take any range, but
// a range starting inside a block runs its first rows with the scalar twin).
const _: () = assert!(ROW_ALIGN.is_multiple_of(crate::kernels::interleaved::LANES));
/// In a batch, weights are walked in tiles of about this many bytes, each tile applied to
/// every position of the batch while it is in the L1/L2 cache.
const TILE_BYTES: usize = 32 * 1024;

/// Which RMSNorm weight.
#[derive(Clone, Copy)]
pub(crate) enum Norm {
    /// Before layer `l`'s attention.
    Attention(usize),
    /// Before layer `l`'s feed-forward network.
    Ffn(usize),
}

/// Which residual branch is added back to `x`.
#[derive(Clone, Copy)]
pub(crate) enum Branch {
    /// `wo`'s output (in `xb2`).
    Attention,
    /// `w2`'s output (in `xb`).
    Ffn,
}

/// The operations of a block in one numerics, over positions `0..nb` of a batch starting at
/// position `pos0`.
pub(crate) trait Block {
    /// `x[b]` = the token's embedding; the RoPE factors of position `pos`.
    fn embed(&mut self, b: usize, token: u32, pos: usize);
    /// `xb = rmsnorm(x) * weight`.
    fn norm(&mut self, norm: Norm, nb: usize);
    /// `q = wq · xb`, `k = wk · xb`, `v = wv · xb` in one job, `v` into its cache rows.
    fn qkv(&mut self, l: usize, pos0: usize, nb: usize);
    /// RoPE on `q` and `k`; `k` into its cache rows.
    fn rope(&mut self, l: usize, pos0: usize, nb: usize);
    /// `xb` = each head's attention over the positions so far, heads split over the workers.
    fn attend(&mut self, l: usize, pos0: usize, nb: usize);
    /// `xb2 = wo · xb`.
    fn output(&mut self, l: usize, nb: usize);
    /// `xb = w2 · (silu(w1 · xb) * (w3 · xb))`, `w1` and `w3` in one job.
    fn ffn(&mut self, l: usize, nb: usize);
    /// `x += xb2` or `x += xb`.
    fn residual(&mut self, branch: Branch, nb: usize);
    /// `logits = classifier · rmsnorm(x[b]) * rms_final`.
    fn classify(&mut self, b: usize);
}

/// One pass of `tokens` at positions `pos0..`; logits of the last one when `logits`.
pub(crate) fn step(
    block: &mut impl Block,
    n_layers: usize,
    tokens: &[u32],
    pos0: usize,
    logits: bool,
) {
    let nb = tokens.len();
    for (b, &token) in tokens.iter().enumerate() {
        block.embed(b, token, pos0 + b);
    }
    for l in 0..n_layers {
        // Attention.
        block.norm(Norm::Attention(l), nb);
        block.qkv(l, pos0, nb);
        block.rope(l, pos0, nb);
        block.attend(l, pos0, nb);
        block.output(l, nb);
        block.residual(Branch::Attention, nb);
        // Feed-forward.
        block.norm(Norm::Ffn(l), nb);
        block.ffn(l, nb);
        block.residual(Branch::Ffn, nb);
    }
    if logits {
        block.classify(nb - 1);
    }
}

/// The kernels and workers of one forward pass.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'k> {
    pub kernels: &'k dyn Kernels,
    pub workers: &'k dyn Workers,
    pub math: Math,
}

/// llama2.c's f32 arithmetic ([`Numerics::Float`]) over a batch of positions.
pub(crate) struct Float<'s, 'w> {
    pub c: Config,
    pub w: &'s Weights<'w>,
    pub ctx: Ctx<'s>,
    pub rope: &'s RopeTable,
    pub s: &'s mut Buffers<f32, f32>,
    pub xq: &'s mut [i8],
    pub xs: &'s mut [f32],
    pub logits: &'s mut [f32],
    /// The int8 input layout of the run state ([`crate::state::q8_layout`], computed once).
    pub q8: (usize, usize),
    /// The f32 matrices repacked in the row-interleaved layout, if they are.
    pub packed: Option<&'s Repacked>,
    /// The scores' divisor sqrt(head_size) and its reciprocal, computed once per model.
    pub att_scale: AttnScale,
}

impl Float<'_, '_> {
    /// `batch` vectors of `x` (`stride` apart) as the input of a group of matmuls.
    fn input<'i>(
        xq: &'i mut [i8],
        xs: &'i mut [f32],
        (q_stride, s_stride): (usize, usize),
        x: &'i [f32],
        stride: usize,
        batch: usize,
    ) -> BatchInput<'i> {
        BatchInput { x, x_stride: stride, xq, q_stride, xs, s_stride, batch, layout: None }
    }
}

impl<'s> Float<'s, '_> {
    /// Layer `l`'s `slot` matrix `m` in the row-interleaved layout, if repacked.
    fn packed(&self, l: usize, slot: Slot, m: &Matrix<'_>) -> Option<&'s [f32]> {
        self.packed.and_then(|p| p.layer(l, slot, m))
    }
}

impl Block for Float<'_, '_> {
    fn embed(&mut self, b: usize, token: u32, _pos: usize) {
        let dim = self.c.dim;
        self.w.token_embedding.row_into(token as usize, &mut self.s.x[b * dim..(b + 1) * dim]);
    }

    fn norm(&mut self, norm: Norm, nb: usize) {
        let weight = match norm {
            Norm::Attention(l) => &self.w.layers[l].rms_att_weight,
            Norm::Ffn(l) => &self.w.layers[l].rms_ffn_weight,
        };
        let dim = self.c.dim;
        for b in 0..nb {
            let r = b * dim..(b + 1) * dim;
            self.ctx.kernels.rmsnorm(&mut self.s.xb[r.clone()], &self.s.x[r], weight);
        }
    }

    fn qkv(&mut self, l: usize, pos0: usize, nb: usize) {
        let (dim, kv_dim) = (self.c.dim, self.c.kv_dim());
        let layer = &self.w.layers[l];
        // k and v land in the cache rows of their positions.
        let kv_at = (l * self.c.seq_len + pos0) * kv_dim;
        let (pq, pk, pv) = (
            self.packed(l, Slot::Wq, &layer.wq),
            self.packed(l, Slot::Wk, &layer.wk),
            self.packed(l, Slot::Wv, &layer.wv),
        );
        let s = &mut *self.s;
        let mut input = Self::input(self.xq, self.xs, self.q8, &s.xb, dim, nb);
        let targets = [
            Target::new(&layer.wq, pq, &mut s.q, dim, nb),
            Target::new(&layer.wk, pk, &mut s.key_cache[kv_at..], kv_dim, nb),
            Target::new(&layer.wv, pv, &mut s.value_cache[kv_at..], kv_dim, nb),
        ];
        self.ctx.concat(&targets, &mut input);
    }

    fn rope(&mut self, l: usize, pos0: usize, nb: usize) {
        let (dim, kv_dim, head_size) = (self.c.dim, self.c.kv_dim(), self.c.head_size());
        let half = head_size / 2;
        let kv_at = (l * self.c.seq_len + pos0) * kv_dim;
        let s = &mut *self.s;
        for b in 0..nb {
            // RoPE angles depend only on the position and the index within a head: computed
            // once per transformer (crate::rope).
            let (co, si) = (&self.rope.cos(pos0 + b)[..half], &self.rope.sin(pos0 + b)[..half]);
            rope(&mut s.q[b * dim..(b + 1) * dim], co, si, head_size);
            rope(&mut s.key_cache[kv_at + b * kv_dim..][..kv_dim], co, si, head_size);
        }
    }

    fn attend(&mut self, l: usize, pos0: usize, nb: usize) {
        let c = &self.c;
        let (dim, head_size, kv_dim, kv_mul, seq_len) =
            (c.dim, c.head_size(), c.kv_dim(), c.kv_mul(), c.seq_len);
        let s = &mut *self.s;
        let (q, key_cache, value_cache) = (&s.q, &s.key_cache, &s.value_cache);
        let (att, xb) = (Shared::new(&mut s.att), Shared::new(&mut s.xb));
        let macs = nb * c.n_heads * (pos0 + nb) * head_size * 2;
        let scale = self.att_scale;
        let (math, kernels) = (self.ctx.math, self.ctx.kernels);
        split_job(self.ctx.workers, c.n_heads, 1, macs, &|heads| {
            for h in heads {
                // SAFETY: head h's score row and its slices of xb belong to this worker only
                // (heads are split disjointly).
                let att_h = unsafe { att.part(h * seq_len, seq_len) };
                let kv_off = l * seq_len * kv_dim + (h / kv_mul) * head_size;
                for b in 0..nb {
                    let pos = pos0 + b;
                    let qh = &q[b * dim + h * head_size..][..head_size];
                    let att = &mut att_h[..pos + 1];
                    // SAFETY: as above.
                    let out = unsafe { xb.part(b * dim + h * head_size, head_size) };
                    let (keys, values) = (&key_cache[kv_off..], &value_cache[kv_off..]);
                    kernels.attend(out, att, qh, keys, values, kv_dim, scale, math);
                }
            }
        });
    }

    fn output(&mut self, l: usize, nb: usize) {
        let dim = self.c.dim;
        let wo = &self.w.layers[l].wo;
        let po = self.packed(l, Slot::Wo, wo);
        let s = &mut *self.s;
        let mut input = Self::input(self.xq, self.xs, self.q8, &s.xb, dim, nb);
        self.ctx.concat(&[Target::new(wo, po, &mut s.xb2, dim, nb)], &mut input);
    }

    fn ffn(&mut self, l: usize, nb: usize) {
        let (dim, hidden_dim) = (self.c.dim, self.c.hidden_dim);
        let layer = &self.w.layers[l];
        let (p1, p2, p3) = (
            self.packed(l, Slot::W1, &layer.w1),
            self.packed(l, Slot::W2, &layer.w2),
            self.packed(l, Slot::W3, &layer.w3),
        );
        let s = &mut *self.s;
        let mut input = Self::input(self.xq, self.xs, self.q8, &s.xb, dim, nb);
        let t1 = Target::new(&layer.w1, p1, &mut s.hb, hidden_dim, nb);
        let t3 = Target::new(&layer.w3, p3, &mut s.hb2, hidden_dim, nb);
        self.ctx.ffn_up(t1, t3, nb, &mut input);
        let mut input = Self::input(self.xq, self.xs, self.q8, &s.hb, hidden_dim, nb);
        self.ctx.concat(&[Target::new(&layer.w2, p2, &mut s.xb, dim, nb)], &mut input);
    }

    fn residual(&mut self, branch: Branch, nb: usize) {
        let s = &mut *self.s;
        let y = match branch {
            Branch::Attention => &s.xb2,
            Branch::Ffn => &s.xb,
        };
        for (a, b) in s.x[..nb * self.c.dim].iter_mut().zip(y.iter()) {
            *a += b;
        }
    }

    fn classify(&mut self, b: usize) {
        let dim = self.c.dim;
        let last = &mut self.s.x[b * dim..(b + 1) * dim];
        self.ctx.kernels.rmsnorm_in_place(last, &self.w.rms_final_weight);
        let mut input = Self::input(self.xq, self.xs, self.q8, last, dim, 1);
        let vocab = self.logits.len();
        let cls = self.w.classifier();
        let packed = self.packed.and_then(|p| p.classifier(cls));
        let target = Target::new(cls, packed, self.logits, vocab, 1);
        self.ctx.concat(&[target], &mut input);
    }
}

/// `batch` activation vectors (`x_stride` apart) and room for their int8 forms, quantized
/// lazily for the first int8 matrix that reads them and reused by the next ones with the same
/// layout (wq/wk/wv, w1/w3).
struct BatchInput<'s> {
    x: &'s [f32],
    x_stride: usize,
    xq: &'s mut [i8],
    q_stride: usize,
    xs: &'s mut [f32],
    s_stride: usize,
    batch: usize,
    layout: Option<(usize, usize)>,
}

impl BatchInput<'_> {
    /// Quantizes the inputs for int8 rows of `stride` values in groups of `group` (once).
    /// Int4 matrices take the same int8 input as int8 ones.
    fn prepare(&mut self, m: &Matrix<'_>, kernels: &dyn Kernels) {
        let Some((stride, group)) = m.input_layout() else { return };
        if self.layout == Some((stride, group)) {
            return;
        }
        let groups = stride / group;
        for b in 0..self.batch {
            let x = &self.x[b * self.x_stride..][..m.cols()];
            kernels.quantize(
                &mut self.xq[b * self.q_stride..][..stride],
                &mut self.xs[b * self.s_stride..][..groups],
                x,
                group,
            );
        }
        self.layout = Some((stride, group));
    }

    /// Multiply-adds of one output row.
    fn macs(m: &Matrix<'_>) -> usize {
        match m {
            Matrix::F32 { cols, .. } => *cols,
            Matrix::Q8(q) => q.stride,
            Matrix::Q4(q) => q.stride,
        }
    }
}

/// Whether two matrices take the same input (both f32, or int8/int4 of one row layout), so
/// that their rows can share one job.
fn same_input(a: &Matrix<'_>, b: &Matrix<'_>) -> bool {
    a.input_layout() == b.input_layout()
}

/// Where a matrix's output rows go: position `b`, row `r` at `out[b * stride + r]`.
struct Target<'m, 'w, 'o> {
    m: &'m Matrix<'w>,
    /// The f32 matrix `m` repacked in the row-interleaved layout, read instead of `m`'s rows.
    packed: Option<&'m [f32]>,
    out: Shared<'o, f32>,
    stride: usize,
}

impl<'m, 'w, 'o> Target<'m, 'w, 'o> {
    /// Checks that `out` holds `batch` outputs of the matrix's rows, `stride` apart.
    fn new(
        m: &'m Matrix<'w>,
        packed: Option<&'m [f32]>,
        out: &'o mut [f32],
        stride: usize,
        batch: usize,
    ) -> Self {
        let need = (batch - 1) * stride + m.rows();
        assert!(stride >= m.rows() && out.len() >= need, "output buffer too small");
        Target { m, packed, out: Shared::new(out), stride }
    }

    /// Rows `rows` of position `b`.
    ///
    /// # Safety
    /// No other thread may touch these rows while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, b: usize, rows: Range<usize>) -> &mut [f32] {
        // SAFETY: the caller owns these rows; `part` checks the bounds.
        unsafe { self.out.part(b * self.stride + rows.start, rows.len()) }
    }
}

impl Ctx<'_> {
    /// Rows `rows` of `t` for every position of `input`, tile by tile.
    ///
    /// # Safety
    /// No other thread may touch rows `rows` of `t`'s output while this runs.
    unsafe fn rows(&self, t: &Target<'_, '_, '_>, rows: Range<usize>, input: &BatchInput<'_>) {
        let k = self.kernels;
        let tile = if input.batch == 1 {
            rows.len().max(1)
        } else {
            let row_bytes = (t.m.bytes() / t.m.rows().max(1)).max(1);
            (TILE_BYTES / row_bytes).max(ROW_ALIGN) / ROW_ALIGN * ROW_ALIGN
        };
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = (r0 + tile).min(rows.end);
            for b in 0..input.batch {
                // SAFETY: rows r0..r1 are owned by this call (see the contract above).
                let out = unsafe { t.rows(b, r0..r1) };
                match t.m {
                    Matrix::F32 { w, cols, .. } => {
                        let x = &input.x[b * input.x_stride..][..*cols];
                        match t.packed {
                            Some(p) => k.matmul_f32_interleaved(out, p, x, r0),
                            None => k.matmul_f32(out, &w[r0 * cols..r1 * cols], x),
                        }
                    }
                    Matrix::Q8(m) => {
                        let groups = m.stride / m.group;
                        k.matmul_q8(
                            out,
                            &m.q[r0 * m.stride..r1 * m.stride],
                            &m.s[r0 * groups..r1 * groups],
                            &input.xq[b * input.q_stride..][..m.stride],
                            &input.xs[b * input.s_stride..][..groups],
                            m.group,
                        );
                    }
                    Matrix::Q4(m) => {
                        let groups = m.stride / m.group;
                        k.matmul_q4(
                            out,
                            &m.q[r0 * m.stride / 2..r1 * m.stride / 2],
                            &m.s[r0 * groups..r1 * groups],
                            &input.xq[b * input.q_stride..][..m.stride],
                            &input.xs[b * input.s_stride..][..groups],
                            m.group,
                        );
                    }
                }
            }
            r0 = r1;
        }
    }

    /// Matmuls sharing one input, their rows concatenated and split over the workers in one
    /// job. Matrices with another int8 layout than the first get a job of their own.
    fn concat(&self, targets: &[Target<'_, '_, '_>], input: &mut BatchInput<'_>) {
        let Some(first) = targets.first() else { return };
        if !targets.iter().all(|t| same_input(first.m, t.m)) {
            for t in targets {
                self.concat(core::slice::from_ref(t), input);
            }
            return;
        }
        input.prepare(first.m, self.kernels);
        let input = &*input;
        let mut rows = [0usize; 3];
        for (r, t) in rows.iter_mut().zip(targets) {
            *r = t.m.rows();
        }
        let rows = &rows[..targets.len().min(3)];
        let macs = rows.iter().sum::<usize>() * BatchInput::macs(first.m) * input.batch;
        split_concat(self.workers, rows, ROW_ALIGN, macs, &|t, r| {
            // SAFETY: workers get disjoint row ranges of each target.
            unsafe { self.rows(&targets[t], r, input) };
        });
    }

    /// `hb = silu(w1 · x) * (w3 · x)` (`t1` and `t3`: w1 into hb, w3 into hb2), both
    /// matrices and the gate split by the same rows.
    fn ffn_up(
        &self,
        t1: Target<'_, '_, '_>,
        t3: Target<'_, '_, '_>,
        nb: usize,
        input: &mut BatchInput<'_>,
    ) {
        let (math, kernels) = (self.math, self.kernels);
        let (w1, w3, hidden_dim) = (t1.m, t3.m, t1.m.rows());
        let swiglu = |rows: Range<usize>| {
            for b in 0..nb {
                // SAFETY: the caller owns these rows of both buffers.
                let (h1, h3) = unsafe { (t1.rows(b, rows.clone()), t3.rows(b, rows.clone())) };
                kernels.swiglu(h1, h3, math);
            }
        };
        if !same_input(w1, w3) {
            self.concat(core::slice::from_ref(&t1), input);
            self.concat(core::slice::from_ref(&t3), input);
            // All workers are done: the buffers are no longer shared.
            return swiglu(0..hidden_dim);
        }
        input.prepare(w1, self.kernels);
        let input = &*input;
        let macs = 2 * hidden_dim * BatchInput::macs(w1) * nb;
        split_job(self.workers, hidden_dim, ROW_ALIGN, macs, &|rows| {
            // SAFETY: workers get disjoint row ranges of hb and hb2.
            unsafe {
                self.rows(&t1, rows.clone(), input);
                self.rows(&t3, rows.clone(), input);
            }
            swiglu(rows);
        });
    }
}
