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
use crate::fixed::FixedWeights;
use crate::kernels::{self, Kernels};
use crate::model::{Config, Matrix, Weights};
use crate::parallel::{split_aligned, Serial, Workers};
use crate::state::{RunState, StateSize};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ops::Range;

/// Row ranges handed to workers start at multiples of this, so SIMD row blocks stay whole.
const ROW_ALIGN: usize = 16;
/// In a batch, weights are walked in tiles of about this many bytes, each tile applied to
/// every position of the batch while it is in the L1/L2 cache.
const TILE_BYTES: usize = 32 * 1024;
/// Chunks per worker a parallel job is cut into (claimed dynamically).
#[cfg_attr(not(target_has_atomic = "ptr"), allow(dead_code))]
const CHUNKS_PER_WORKER: usize = 4;
/// Positions per prefill batch when enabled with [`Transformer::with_prefill`] by default.
pub const DEFAULT_PREFILL: usize = 16;

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
    /// Integer parameters when running in fixed point ([`Numerics::Fixed`]).
    fixed: Option<FixedWeights>,
}

/// How a [`Transformer`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// f32 arithmetic in llama2.c's order: run.c's and runq.c's tokens exactly (the default).
    #[default]
    Float,
    /// Integer arithmetic for cores without an FPU ([`crate::fixed`]); int8 models only.
    /// Same tokens on every target, but not llama2.c's.
    Fixed,
}

impl Numerics {
    /// The name used on command lines and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Numerics::Float => "float",
            Numerics::Fixed => "fixed",
        }
    }
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
        Self::with_numerics_options(checkpoint, seq_len, kernels, workers, Numerics::Float)
    }

    /// [`Transformer::with_options`] with the given numerics from the start, so that the run
    /// state is allocated once at its size for them ([`RunState::size_for`]; the fixed-point
    /// KV cache takes half the float one).
    pub fn with_numerics_options(
        checkpoint: Checkpoint<'a>,
        seq_len: Option<usize>,
        kernels: &'a dyn Kernels,
        workers: Box<dyn Workers + 'a>,
        numerics: Numerics,
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
        // The run state's big blocks first, the integer scales' small ones after: on a chip
        // whose heap is split into regions, small blocks allocated first could take the room
        // a KV cache needs in one piece.
        let state = RunState::new_for(&config, &weights, config.seq_len, 1, numerics)?;
        let fixed = match numerics {
            Numerics::Float => None,
            Numerics::Fixed => Some(FixedWeights::new(&config, &weights)?),
        };
        let hs = config.head_size();
        let rope_freq = (0..hs)
            .step_by(2)
            .map(|head_dim| 1.0f32 / libm::powf(10000.0f32, head_dim as f32 / hs as f32))
            .collect();
        Ok(Transformer { config, weights, state, kernels, workers, rope_freq, fixed })
    }

    /// Lets [`Transformer::prefill`] run up to `batch` prompt positions through each layer at
    /// once (matrix-matrix: each weight tile is read once per batch). Reallocates the run
    /// state (fallibly), which then takes `batch` times the per-position activations; the KV
    /// cache is cleared. `batch` 1 is the default (no extra memory).
    pub fn with_prefill(mut self, batch: usize) -> Result<Self> {
        // The fixed-point path runs one position at a time: nothing to batch.
        let batch = if self.fixed.is_some() { 1 } else { batch.max(1) };
        if batch != self.state.batch {
            self.state =
                RunState::new_batched(&self.config, &self.weights, self.config.seq_len, batch)?;
        }
        Ok(self)
    }

    /// Switches to the given numerics. [`Numerics::Fixed`] derives the integer parameters
    /// ([`FixedWeights::size`] bytes) and needs int8 matrices. The run state is reallocated
    /// for the new numerics (the old one freed first; a batched prefill state becomes one
    /// position): start again from position 0. To allocate only once, build with
    /// [`Transformer::with_numerics_options`].
    pub fn with_numerics(mut self, numerics: Numerics) -> Result<Self> {
        if numerics == self.numerics() {
            return Ok(self);
        }
        self.fixed = match numerics {
            Numerics::Float => None,
            Numerics::Fixed => Some(FixedWeights::new(&self.config, &self.weights)?),
        };
        self.state = RunState::default();
        self.state =
            RunState::new_for(&self.config, &self.weights, self.config.seq_len, 1, numerics)?;
        Ok(self)
    }

    /// The numerics in use.
    pub fn numerics(&self) -> Numerics {
        if self.fixed.is_some() {
            Numerics::Fixed
        } else {
            Numerics::Float
        }
    }

    /// Positions [`Transformer::prefill`] runs at once.
    pub fn prefill_batch(&self) -> usize {
        self.state.batch
    }

    /// The bytes of run state this transformer holds.
    pub fn state_size(&self) -> StateSize {
        // Cannot fail: the same computation succeeded when the state was allocated.
        let (c, w, n) = (&self.config, &self.weights, self.numerics());
        RunState::size_for(c, w, c.seq_len, self.state.batch, n)
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
        self.check(core::slice::from_ref(&token), pos)?;
        self.step(core::slice::from_ref(&token), pos, true);
        Ok(&mut self.state.logits)
    }

    /// Runs `tokens` at positions `pos..pos + tokens.len()` to fill the KV cache, without
    /// computing logits; afterwards `forward(next, pos + tokens.len())` continues exactly as if
    /// every token had gone through `forward` (the same floats, bit for bit). Runs up to
    /// [`Transformer::prefill_batch`] positions through each layer at once.
    pub fn prefill(&mut self, tokens: &[u32], pos: usize) -> Result<()> {
        self.check(tokens, pos)?;
        let batch = self.state.batch;
        for (i, chunk) in tokens.chunks(batch).enumerate() {
            self.step(chunk, pos + i * batch, false);
        }
        Ok(())
    }

    fn check(&self, tokens: &[u32], pos: usize) -> Result<()> {
        let c = &self.config;
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::TokenOutOfRange { token, vocab_size: c.vocab_size });
        }
        let last = pos.saturating_add(tokens.len().saturating_sub(1));
        if last >= c.seq_len {
            return Err(Error::PositionOutOfRange { pos: last, seq_len: c.seq_len });
        }
        Ok(())
    }

    /// One pass of `tokens` (at most `state.batch`, checked) at positions `pos0..`; logits of
    /// the last one when `logits`.
    fn step(&mut self, tokens: &[u32], pos0: usize, logits: bool) {
        let c = self.config;
        let nb = tokens.len();
        debug_assert!(nb >= 1 && nb <= self.state.batch);
        if let Some(fw) = &self.fixed {
            for (b, &token) in tokens.iter().enumerate() {
                let last = logits && b + 1 == nb;
                let (w, k, rf) = (&self.weights, self.kernels, &self.rope_freq);
                crate::fixed::step(fw, &c, w, rf, &mut self.state, k, token, pos0 + b, last);
            }
            return;
        }
        let (dim, hidden_dim, head_size) = (c.dim, c.hidden_dim, c.head_size());
        let (kv_dim, seq_len) = (c.kv_dim(), c.seq_len);
        let half = head_size / 2;
        let w = &self.weights;
        let ctx = Ctx { kernels: self.kernels, workers: &*self.workers };
        let (q_stride, s_stride) = RunState::q8_layout(w);
        let RunState {
            x,
            xb,
            xb2,
            hb,
            hb2,
            q,
            att,
            logits: logits_buf,
            key_cache,
            value_cache,
            xq,
            xs,
            rope_cos,
            rope_sin,
            ..
        } = &mut self.state;

        for (b, &token) in tokens.iter().enumerate() {
            w.token_embedding.row_into(token as usize, &mut x[b * dim..(b + 1) * dim]);
            // RoPE angles depend only on the position and the index within a head.
            let pos = (pos0 + b) as f32;
            for (i, f) in self.rope_freq.iter().enumerate() {
                let val = pos * f;
                rope_cos[b * half + i] = libm::cosf(val);
                rope_sin[b * half + i] = libm::sinf(val);
            }
        }

        for (l, layer) in w.layers.iter().enumerate() {
            for b in 0..nb {
                let r = b * dim..(b + 1) * dim;
                rmsnorm(&mut xb[r.clone()], &x[r], &layer.rms_att_weight);
            }

            // q, k and v in one job; k and v land in the cache rows of their positions.
            let kv_at = (l * seq_len + pos0) * kv_dim;
            {
                let mut input = BatchInput::new(xb, dim, xq, q_stride, xs, s_stride, nb);
                let targets = [
                    Target::new(&layer.wq, q, dim, nb),
                    Target::new(&layer.wk, &mut key_cache[kv_at..], kv_dim, nb),
                    Target::new(&layer.wv, &mut value_cache[kv_at..], kv_dim, nb),
                ];
                ctx.concat(&targets, &mut input);
            }

            for b in 0..nb {
                let (co, si) = (&rope_cos[b * half..][..half], &rope_sin[b * half..][..half]);
                rope(&mut q[b * dim..(b + 1) * dim], co, si, head_size);
                let k = &mut key_cache[kv_at + b * kv_dim..][..kv_dim];
                rope(k, co, si, head_size);
            }

            ctx.attention(&c, l, pos0, nb, q, key_cache, value_cache, att, xb);

            {
                let mut input = BatchInput::new(xb, dim, xq, q_stride, xs, s_stride, nb);
                ctx.concat(&[Target::new(&layer.wo, xb2, dim, nb)], &mut input);
            }
            for (a, b) in x[..nb * dim].iter_mut().zip(xb2.iter()) {
                *a += b;
            }

            for b in 0..nb {
                let r = b * dim..(b + 1) * dim;
                rmsnorm(&mut xb[r.clone()], &x[r], &layer.rms_ffn_weight);
            }
            {
                let mut input = BatchInput::new(xb, dim, xq, q_stride, xs, s_stride, nb);
                ctx.ffn_up(&layer.w1, &layer.w3, hb, hb2, hidden_dim, nb, &mut input);
            }
            {
                let mut input = BatchInput::new(hb, hidden_dim, xq, q_stride, xs, s_stride, nb);
                ctx.concat(&[Target::new(&layer.w2, xb, dim, nb)], &mut input);
            }
            for (a, b) in x[..nb * dim].iter_mut().zip(xb.iter()) {
                *a += b;
            }
        }

        if logits {
            let last = &mut x[(nb - 1) * dim..nb * dim];
            rmsnorm_in_place(last, &w.rms_final_weight);
            let mut input = BatchInput::new(last, dim, xq, q_stride, xs, s_stride, 1);
            let vocab = logits_buf.len();
            ctx.concat(&[Target::new(w.classifier(), logits_buf, vocab, 1)], &mut input);
        }
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

/// `libm::expf` (FreeBSD's algorithm), bit for bit, about 4x faster: the common range is
/// inlined and scales by `2^k` with one multiply instead of calling `scalbnf`; the rare
/// arguments (tiny, or near overflow/underflow) go to `libm::expf` itself. The libm version was
/// 53% of a stories260K token's time. (glibc's algorithm, which run.c calls, was tried too: it
/// matches the C library on all but 2 of 2.2e9 inputs but parts from the int8 goldens at the
/// known near-tie of position 186, where the libm version happens to agree with runq.c.)
#[inline]
pub fn expf(x: f32) -> f32 {
    const HALF: [f32; 2] = [0.5, -0.5];
    const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
    const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
    const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
    const P1: f32 = f32::from_bits(0x3e2a_aa8f);
    const P2: f32 = f32::from_bits(0xbb35_5215);
    let bits = x.to_bits();
    let hx = bits & 0x7fff_ffff;
    if hx >= 0x42ae_ac50 || hx <= 0x3900_0000 {
        return libm::expf(x);
    }
    let sign = (bits >> 31) as i32;
    let (k, hi, lo, x) = if hx > 0x3eb1_7218 {
        let k = if hx > 0x3f85_1592 {
            (INV_LN2 * x + HALF[sign as usize]) as i32
        } else {
            1 - sign - sign
        };
        let kf = k as f32;
        let hi = x - kf * LN2_HI;
        let lo = kf * LN2_LO;
        (k, hi, lo, hi - lo)
    } else {
        (0, x, 0.0, x)
    };
    let xx = x * x;
    let c = x - xx * (P1 + xx * P2);
    let y = 1.0 + (x * c / (2.0 - c) - lo + hi);
    // |x| < 87.34 keeps k in -126..=126, where 2^k is a normal f32.
    y * f32::from_bits(((127 + k) as u32) << 23)
}

/// Softmax in place, subtracting the maximum first (run.c's order of operations).
pub fn softmax(x: &mut [f32]) {
    let Some(&first) = x.first() else { return };
    let max_val = x.iter().fold(first, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = expf(*v - max_val);
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

impl<'s> BatchInput<'s> {
    fn new(
        x: &'s [f32],
        x_stride: usize,
        xq: &'s mut [i8],
        q_stride: usize,
        xs: &'s mut [f32],
        s_stride: usize,
        batch: usize,
    ) -> Self {
        BatchInput { x, x_stride, xq, q_stride, xs, s_stride, batch, layout: None }
    }

    /// Quantizes the inputs for int8 rows of `stride` values in groups of `group` (once).
    fn prepare(&mut self, m: &Matrix<'_>) {
        let Matrix::Q8(m) = m else { return };
        if self.layout == Some((m.stride, m.group)) {
            return;
        }
        let groups = m.stride / m.group;
        for b in 0..self.batch {
            let x = &self.x[b * self.x_stride..][..m.cols];
            quantize(
                &mut self.xq[b * self.q_stride..][..m.stride],
                &mut self.xs[b * self.s_stride..][..groups],
                x,
                m.group,
            );
        }
        self.layout = Some((m.stride, m.group));
    }

    /// Multiply-adds of one output row.
    fn macs(m: &Matrix<'_>) -> usize {
        match m {
            Matrix::F32 { cols, .. } => *cols,
            Matrix::Q8(q) => q.stride,
        }
    }
}

/// A raw pointer that may be shared with the workers of one job.
#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
impl<T> Ptr<T> {
    /// The pointer (a method, so closures capture the whole `Ptr`, which is `Sync`).
    fn get(self) -> *mut T {
        self.0
    }
}

// SAFETY: every job hands each worker disjoint parts of the pointee (see each use).
unsafe impl<T> Sync for Ptr<T> {}
// SAFETY: as above.
unsafe impl<T> Send for Ptr<T> {}

/// Where a matrix's output rows go: position `b`, row `r` at `out[b * stride + r]`.
struct Target<'m, 'w> {
    m: &'m Matrix<'w>,
    out: Ptr<f32>,
    stride: usize,
}

impl<'m, 'w> Target<'m, 'w> {
    /// Checks that `out` holds `batch` outputs of the matrix's rows, `stride` apart.
    fn new(m: &'m Matrix<'w>, out: &mut [f32], stride: usize, batch: usize) -> Self {
        let need = (batch - 1) * stride + m.rows();
        assert!(stride >= m.rows() && out.len() >= need, "output buffer too small");
        Target { m, out: Ptr(out.as_mut_ptr()), stride }
    }
}

/// The kernels and workers of one forward pass.
struct Ctx<'k> {
    kernels: &'k dyn Kernels,
    workers: &'k dyn Workers,
}

impl Ctx<'_> {
    /// Workers worth using for `macs` multiply-adds.
    fn parts(&self, macs: usize, max: usize) -> usize {
        self.workers.count().min(macs / self.workers.min_work_per_worker().max(1)).min(max).max(1)
    }

    /// Runs `job(i, chunks)` for every chunk `i`, on `parts` workers (inline when 1).
    ///
    /// With atomics, the work is cut into up to `CHUNKS_PER_WORKER` chunks per worker (at most
    /// `max`) that the workers claim one by one, so that a worker whose core is taken by
    /// another process (a shared host) holds up only its current chunk, not a fixed share.
    fn split(&self, parts: usize, max: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        if parts <= 1 {
            return job(0, 1);
        }
        #[cfg(target_has_atomic = "ptr")]
        {
            use core::sync::atomic::{AtomicUsize, Ordering};
            let chunks = (parts * CHUNKS_PER_WORKER).min(max).max(parts);
            let next = AtomicUsize::new(0);
            self.workers.run(&|i| {
                if i >= parts {
                    return;
                }
                loop {
                    let c = next.fetch_add(1, Ordering::Relaxed);
                    if c >= chunks {
                        break;
                    }
                    job(c, chunks);
                }
            });
        }
        #[cfg(not(target_has_atomic = "ptr"))]
        {
            let _ = max;
            self.workers.run(&|i| {
                if i < parts {
                    job(i, parts)
                }
            });
        }
    }

    /// Rows `rows` of `t` for every position of `input`, tile by tile.
    ///
    /// # Safety
    /// No other thread may touch rows `rows` of `t`'s output while this runs.
    unsafe fn rows(&self, t: &Target<'_, '_>, rows: Range<usize>, input: &BatchInput<'_>) {
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
                // SAFETY: rows r0..r1 of position b are inside the buffer (checked in
                // `Target::new`) and owned by this call (see the contract above).
                let out =
                    core::slice::from_raw_parts_mut(t.out.get().add(b * t.stride + r0), r1 - r0);
                match t.m {
                    Matrix::F32 { w, cols, .. } => {
                        let x = &input.x[b * input.x_stride..][..*cols];
                        k.matmul_f32(out, &w[r0 * cols..r1 * cols], x);
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
                }
            }
            r0 = r1;
        }
    }

    /// Matmuls sharing one input, their rows concatenated and split over the workers in one
    /// job. Matrices with another int8 layout than the first get a job of their own.
    fn concat(&self, targets: &[Target<'_, '_>], input: &mut BatchInput<'_>) {
        let Some(first) = targets.first() else { return };
        let same = |t: &Target<'_, '_>| match (first.m, t.m) {
            (Matrix::F32 { .. }, Matrix::F32 { .. }) => true,
            (Matrix::Q8(a), Matrix::Q8(b)) => (a.stride, a.group) == (b.stride, b.group),
            _ => false,
        };
        if !targets.iter().all(same) {
            for t in targets {
                self.concat(core::slice::from_ref(t), input);
            }
            return;
        }
        input.prepare(first.m);
        let input = &*input;
        let total: usize = targets.iter().map(|t| t.m.rows()).sum();
        let macs = total * BatchInput::macs(first.m) * input.batch;
        let max = total.div_ceil(ROW_ALIGN);
        let parts = self.parts(macs, max);
        self.split(parts, max, &|i, parts| {
            let range = split_aligned(total, parts, i, ROW_ALIGN);
            let mut off = 0;
            for t in targets {
                let rows = t.m.rows();
                let s = range.start.max(off);
                let e = range.end.min(off + rows);
                if s < e {
                    // SAFETY: workers get disjoint row ranges of the concatenation, hence of
                    // each target.
                    unsafe { self.rows(t, s - off..e - off, input) };
                }
                off += rows;
            }
        });
    }

    /// `hb = silu(w1 · x) * (w3 · x)`, both matrices and the gate split by the same rows.
    #[allow(clippy::too_many_arguments)]
    fn ffn_up(
        &self,
        w1: &Matrix<'_>,
        w3: &Matrix<'_>,
        hb: &mut [f32],
        hb2: &mut [f32],
        hidden_dim: usize,
        nb: usize,
        input: &mut BatchInput<'_>,
    ) {
        let t1 = Target::new(w1, hb, hidden_dim, nb);
        let t3 = Target::new(w3, hb2, hidden_dim, nb);
        let fused = match (w1, w3) {
            (Matrix::F32 { .. }, Matrix::F32 { .. }) => true,
            (Matrix::Q8(a), Matrix::Q8(b)) => (a.stride, a.group) == (b.stride, b.group),
            _ => false,
        };
        if !fused {
            self.concat(core::slice::from_ref(&t1), input);
            self.concat(core::slice::from_ref(&t3), input);
            // SAFETY: all workers are done; the buffers are no longer shared.
            unsafe { swiglu(t1.out, t3.out, 0..hidden_dim, hidden_dim, nb) };
            return;
        }
        input.prepare(w1);
        let input = &*input;
        let macs = 2 * hidden_dim * BatchInput::macs(w1) * nb;
        let max = hidden_dim.div_ceil(ROW_ALIGN);
        let parts = self.parts(macs, max);
        self.split(parts, max, &|i, parts| {
            let rows = split_aligned(hidden_dim, parts, i, ROW_ALIGN);
            // SAFETY: workers get disjoint row ranges of hb and hb2.
            unsafe {
                self.rows(&t1, rows.clone(), input);
                self.rows(&t3, rows.clone(), input);
                swiglu(t1.out, t3.out, rows, hidden_dim, nb);
            }
        });
    }

    /// Multi-head attention of positions `pos0..pos0 + nb` of layer `l`, heads split over the
    /// workers; writes each head's output into `xb`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        c: &Config,
        l: usize,
        pos0: usize,
        nb: usize,
        q: &[f32],
        key_cache: &[f32],
        value_cache: &[f32],
        att: &mut [f32],
        xb: &mut [f32],
    ) {
        let (dim, head_size, kv_dim, kv_mul, seq_len) =
            (c.dim, c.head_size(), c.kv_dim(), c.kv_mul(), c.seq_len);
        assert!(att.len() >= c.n_heads * seq_len && xb.len() >= nb * dim);
        let (att_p, xb_p) = (Ptr(att.as_mut_ptr()), Ptr(xb.as_mut_ptr()));
        let macs = nb * c.n_heads * (pos0 + nb) * head_size * 2;
        let parts = self.parts(macs, c.n_heads);
        let max = c.n_heads;
        let inv = libm::sqrtf(head_size as f32);
        self.split(parts, max, &|i, parts| {
            for h in crate::parallel::split(c.n_heads, parts, i) {
                // SAFETY: head h's score row and its slices of xb belong to this worker only
                // (heads are split disjointly); bounds asserted above.
                let att_h = unsafe {
                    core::slice::from_raw_parts_mut(att_p.get().add(h * seq_len), seq_len)
                };
                let kv_off = l * seq_len * kv_dim + (h / kv_mul) * head_size;
                for b in 0..nb {
                    let pos = pos0 + b;
                    let qh = &q[b * dim + h * head_size..][..head_size];
                    let att = &mut att_h[..pos + 1];
                    for (t, a) in att.iter_mut().enumerate() {
                        let kt = &key_cache[kv_off + t * kv_dim..][..head_size];
                        let mut score = 0.0f32;
                        for (qi, ki) in qh.iter().zip(kt) {
                            score += qi * ki;
                        }
                        *a = score / inv;
                    }
                    softmax(att);
                    // SAFETY: as above.
                    let out = unsafe {
                        core::slice::from_raw_parts_mut(
                            xb_p.get().add(b * dim + h * head_size),
                            head_size,
                        )
                    };
                    out.fill(0.0);
                    for (t, &a) in att.iter().enumerate() {
                        let vt = &value_cache[kv_off + t * kv_dim..][..head_size];
                        for (o, vi) in out.iter_mut().zip(vt) {
                            *o += a * vi;
                        }
                    }
                }
            }
        });
    }
}

/// SwiGLU on rows `rows` of each position: `hb = silu(hb) * hb2` (run.c's order).
///
/// # Safety
/// The caller owns rows `rows` of both buffers for every one of the `nb` positions.
unsafe fn swiglu(hb: Ptr<f32>, hb2: Ptr<f32>, rows: Range<usize>, stride: usize, nb: usize) {
    for b in 0..nb {
        let h1 = core::slice::from_raw_parts_mut(hb.get().add(b * stride + rows.start), rows.len());
        let h3 = core::slice::from_raw_parts(hb2.get().add(b * stride + rows.start), rows.len());
        for (h1, h3) in h1.iter_mut().zip(h3) {
            let mut val = *h1;
            val *= 1.0f32 / (1.0f32 + expf(-val));
            val *= h3;
            *h1 = val;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `libm::expf` against ours, on every 97th f32 (set STEP to 1 for all of them: checked
    /// once, 0 differences), plus the edges.
    #[test]
    fn expf_matches_libm() {
        const STEP: u32 = 97;
        let mut checked = 0u32;
        let mut differ = 0u32;
        let mut worst_ulps = 0i64;
        let mut bits = 0u32;
        while bits < u32::MAX - STEP {
            let x = f32::from_bits(bits);
            bits += STEP;
            if x.is_nan() {
                continue;
            }
            let (a, b) = (expf(x), libm::expf(x));
            checked += 1;
            if a.to_bits() != b.to_bits() {
                differ += 1;
                worst_ulps = worst_ulps.max((a.to_bits() as i64 - b.to_bits() as i64).abs());
            }
        }
        for x in [0.0f32, -0.0, 88.7, 88.8, -103.9, -104.0, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(expf(x).to_bits(), libm::expf(x).to_bits(), "{x}");
        }
        assert!(expf(f32::NAN).is_nan());
        eprintln!("expf: {differ} of {checked} differ from libm, worst {worst_ulps} ulp");
        assert!(checked > 40_000_000);
        assert_eq!(differ, 0, "worst {worst_ulps} ulp");
    }
}
