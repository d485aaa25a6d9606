//! The fixed-point forward pass, for cores without an FPU (ESP32-C3/C6, `rv32imac`).
//!
//! On such a core every f32 operation is a software routine of 50 to 1,200 instructions, and
//! llama2.c's arithmetic does several per multiply-add of int8 weights (runq.c's per-group
//! `ival * w_scale * x_scale`), per attention multiply-add and per `expf`. This path keeps the
//! same model and the same int8 weights but computes in integers:
//!
//! - the residual stream, q/k/v, the KV cache and every activation are `i32` in Q16 (value
//!   `v / 65536`, range +-32768), stored in the run state's f32 buffers (same size, reinterpreted);
//! - an int8 matmul quantizes its input vector with **one** scale (`max|x| / 127`), sums each
//!   group's int8 products in `i32`, weights the group sums with the matrix's group scales
//!   converted once at load to `i16` multiples of one per-tensor unit, and rescales each row
//!   with one integer multiply and shift ([`Rescale`]);
//! - RMSNorm's weights are Q16 integers, its `1/sqrt` is one f32 computation per vector folded
//!   into the next matmul's rescale;
//! - RoPE's cosines and sines are Q30, computed once per position;
//! - softmax and SiLU use [`exp_q16`], `2^-t` from a 257-entry table with linear interpolation,
//!   and one 32-bit integer division per value;
//! - f32 appears only per vector or per matrix call (a few dozen operations per token) and for
//!   the logits handed to the sampler.
//!
//! The result is not runq.c's: the activation scale is per vector rather than per group and
//! every rounding differs, so tokens can part from the float path at near-ties (measured
//! agreement with the fp32 model: `esp-llm eval --numerics fixed`, see docs/performance.md).
//! Integer arithmetic is the same on every target, so the host, the RV32 benchmark and the
//! ESP chips give the same tokens bit for bit; [`crate::kernels::Kernels::matmul_q8_fixed`]
//! is exact in any summation order.
//!
//! All arithmetic saturates or wraps explicitly: corrupt weights give garbage tokens, never a
//! panic. The pass runs one position at a time on one core.

use crate::error::{Error, Result};
use crate::forward::{Block, Branch, Ctx, Norm, ROW_ALIGN};
use crate::model::{Config, Floats, Matrix, Q8Matrix, Weights};
use crate::parallel::{split_concat, split_job, Shared};
use crate::rope::RopeTable;
use crate::state::Buffers;
use alloc::vec::Vec;
use core::num::NonZeroU32;

pub use crate::kernels::Rescale;

/// Fraction bits of the Q16 activations.
pub const FRAC: u32 = 16;
/// 1.0 in Q16.
pub const ONE: i32 = 1 << FRAC;
/// Bits dropped from Q16 to store keys and values in the KV cache as Q8 `i16`.
const KV_SHIFT: u32 = 8;
/// Fraction bits of the RoPE cosines and sines.
const ROPE_FRAC: u32 = 30;

/// `round(2^30 * 2^(-i/256))` for `i` in `0..=256`, computed at compile time.
const EXP2_TABLE: [u32; 257] = exp2_table();

const fn exp2_table() -> [u32; 257] {
    let mut t = [0u32; 257];
    let mut i = 0;
    while i < 257 {
        // e^-x by its Taylor series in f64 (x <= ln 2: 25 terms are far past f64 precision).
        let x = i as f64 * core::f64::consts::LN_2 / 256.0;
        let mut term = 1.0f64;
        let mut sum = 1.0f64;
        let mut k = 1;
        while k < 25 {
            term = -term * x / k as f64;
            sum += term;
            k += 1;
        }
        t[i] = (sum * (1u64 << 30) as f64 + 0.5) as u32;
        i += 1;
    }
    t
}

/// `log2(e)` in Q31 (`round(1.4426950408889634 * 2^31)`).
const LOG2E_Q31: u64 = 3_098_164_010;

/// `e^d` in Q16 for `d <= 0` in Q16 (positive `d` is treated as 0); 0 below `e^-12`.
/// Absolute error at most 1 unit of Q16 (tested against f64).
#[inline]
pub fn exp_q16(d: i32) -> u32 {
    if d >= 0 {
        return ONE as u32;
    }
    if d < -(12 << FRAC) {
        return 0;
    }
    // t = -d * log2(e) in Q16; e^d = 2^-t. (-d < 2^20, so -2d fits in u32.)
    let t = (((((-d) as u32 as u64) << 1) * LOG2E_Q31) >> 32) as u32;
    let n = t >> 16;
    let f = t & 0xffff;
    let (i, frac) = ((f >> 8) as usize, f & 0xff);
    let (a, b) = (EXP2_TABLE[i], EXP2_TABLE[i + 1]);
    let v = a - (((a - b) * frac + 128) >> 8);
    let sh = 14 + n;
    if sh >= 32 {
        return 0;
    }
    (v + (1 << (sh - 1))) >> sh
}

/// `silu(h) = h * sigmoid(h)` in Q16.
#[inline]
pub fn silu_q16(h: i32) -> i32 {
    let a = h.unsigned_abs().min(12 << FRAC) as i32;
    let e = exp_q16(-a);
    // sigmoid(|h|) = 1 / (1 + e^-|h|) in Q16, one unsigned division.
    let sig = u32::MAX / (ONE as u32 + e);
    let sig = if h >= 0 { sig } else { ONE as u32 - sig };
    sat(mul_q(h, sig as i32, FRAC))
}

/// `(a * b) >> frac`, rounded, in `i64`.
#[inline(always)]
fn mul_q(a: i32, b: i32, frac: u32) -> i64 {
    (a as i64 * b as i64 + (1i64 << (frac - 1))) >> frac
}

/// Saturates to `i32`.
#[inline(always)]
fn sat(v: i64) -> i32 {
    v.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// An f32 as Q16, saturated (NaN gives 0). Float work, used per vector or at load only.
fn to_q16(v: f32) -> i32 {
    (v * ONE as f32) as i32
}

/// An f32 in `[-1, 1]` as Q30.
fn to_q30(v: f32) -> i32 {
    (v * (1u32 << ROPE_FRAC) as f32) as i32
}

/// A Q16 value as f32: `v as f32 * 2^-16`, bit for bit. Below 2^24 in magnitude (logits below
/// 256) the conversion is exact and done on the bits (a 5-step normalization instead of the
/// software `i32 -> f32` routine of cores without an FPU); larger values take the conversion.
#[inline]
pub fn q16_to_f32(v: i32) -> f32 {
    let mut a = v.unsigned_abs();
    if a == 0 {
        return 0.0;
    }
    // With an FPU (hosts, rv32imafc) the conversion instruction is cheaper.
    let fpu =
        !cfg!(any(target_arch = "riscv32", target_arch = "riscv64")) || cfg!(target_feature = "f");
    if fpu || a >= 1 << 24 {
        let f = v as f32; // |f| >= 1, so the exponent stays normal after -16
        return f32::from_bits(f.to_bits() - (FRAC << 23));
    }
    let mut n = 0; // leading zeros of a
    for sh in [16u32, 8, 4, 2, 1] {
        if a < 1 << (32 - sh) {
            n += sh;
            a <<= sh;
        }
    }
    // a has bit 31 set and (being below 2^24 before) its low 8 bits clear: exact.
    let exp = 127 + 31 - n - FRAC;
    let sign = (v as u32) & 0x8000_0000;
    f32::from_bits(sign | (exp << 23) | ((a >> 8) & 0x7f_ffff))
}

/// Quantizes a Q16 vector into int8 with one scale: `q[i] = round(x[i] * 127 / max|x|)`
/// (half away from zero), the rest of `q` zero. Returns the value of one int8 step in Q16
/// units (`max|x| / 127`, as f32). Integer work per value: a shift, a multiply, a division.
pub fn quantize_q16(q: &mut [i8], x: &[i32]) -> f32 {
    let max = x.iter().fold(0u32, |m, v| m.max(v.unsigned_abs()));
    if max == 0 {
        q.fill(0);
        return 0.0;
    }
    // Bring max below 2^23 so that v * 127 fits in i32.
    // (A shift loop, not `leading_zeros`: RV32 without Zbb counts zeros in software.)
    let mut k = 0;
    while max >> k >= 1 << 23 {
        k += 1;
    }
    let Some(mx) = NonZeroU32::new(max >> k) else {
        q.fill(0);
        return 0.0;
    };
    let half = mx.get() / 2;
    let (head, tail) = q.split_at_mut(x.len().min(q.len()));
    for (qi, &v) in head.iter_mut().zip(x) {
        // |v >> k| <= mx (+1 when k > 0, where mx >= 2^22), so the quotient is at most 127.
        let n = (v >> k).unsigned_abs() * 127;
        let r = ((n + half) / mx) as i32;
        *qi = if v < 0 { -r } else { r } as i8;
    }
    tail.fill(0);
    (mx.get() << k) as f32 * (1.0 / 127.0)
}

/// RMSNorm's weighted product without the normalization: `y[i] = x[i] * w[i]` (Q16); returns
/// `1 / sqrt(mean(x^2) + 1e-5)` (f32, one computation per vector) for the caller to fold into
/// the next rescale.
pub fn rmsnorm_q16(y: &mut [i32], x: &[i32], w: &[i32]) -> f32 {
    let mut ss = 0i64;
    for &v in x {
        ss = ss.saturating_add((v as i64 * v as i64) >> FRAC);
    }
    // One f32 multiply by 2^-16 / n (n = dim: an exact power of two for llama2.c's shapes).
    let mean = ss as f32 * (1.0 / (ONE as f32 * x.len().max(1) as f32)) + 1e-5;
    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
        *y = sat(mul_q(x, w, FRAC));
    }
    1.0 / libm::sqrtf(mean)
}

/// Softmax of Q16 scores in place, giving Q15 weights that sum to about `2^15`.
pub fn softmax_q15(att: &mut [i32]) {
    let Some(&max) = att.iter().max() else { return };
    let mut sum = 0u64;
    for a in att.iter_mut() {
        let e = exp_q16(a.saturating_sub(max));
        *a = e as i32;
        sum += e as u64;
    }
    // The maximum contributes e^0 = 2^16, so sum >= 2^16; keep it below 2^32.
    let mut sh = 0;
    while sum >> sh > u32::MAX as u64 {
        sh += 1;
    }
    let s32 = NonZeroU32::new((sum >> sh) as u32).unwrap_or(NonZeroU32::MIN);
    for a in att.iter_mut() {
        *a = ((((*a as u32) >> sh) << 15) / s32) as i32;
    }
}

/// An int8 matrix's group scales as `i16` multiples of one per-tensor unit.
#[derive(Debug, Clone)]
pub struct IntScales {
    /// `round(scale / unit)` per group, in `-32767..=32767`.
    pub s: Vec<i16>,
    /// The real value of one step of `s` (`max|scale| / 32767`).
    pub unit: f32,
}

impl IntScales {
    fn new(m: &Q8Matrix<'_>) -> Result<Self> {
        let max = m.s.iter().fold(0.0f32, |a, &v| if v.abs() > a { v.abs() } else { a });
        let mut s = Vec::new();
        s.try_reserve_exact(m.s.len())
            .map_err(|_| Error::OutOfMemory { what: "integer scales", bytes: 2 * m.s.len() })?;
        if !(max > 0.0 && max.is_finite()) {
            s.resize(m.s.len(), 0);
            return Ok(IntScales { s, unit: 0.0 });
        }
        let unit = max / 32767.0;
        s.extend(m.s.iter().map(|&v| libm::roundf(v / unit) as i16));
        Ok(IntScales { s, unit })
    }
}

/// One layer's integer parameters.
#[derive(Debug, Clone)]
struct FixedLayer {
    rms_att: Vec<i32>,
    rms_ffn: Vec<i32>,
    wq: IntScales,
    wk: IntScales,
    wv: IntScales,
    wo: IntScales,
    w1: IntScales,
    w2: IntScales,
    w3: IntScales,
}

/// What the fixed-point pass derives from the weights at load: integer RMSNorm weights and
/// group scales, and `1/sqrt(head_size)`. The int8 values themselves are used in place.
#[derive(Debug, Clone)]
pub struct FixedWeights {
    layers: Vec<FixedLayer>,
    rms_final: Vec<i32>,
    cls: IntScales,
    /// `1/sqrt(head_size)` in Q16.
    inv_sqrt_hs: i32,
}

fn q8<'m, 'w>(m: &'m Matrix<'w>, name: &'static str) -> Result<&'m Q8Matrix<'w>> {
    match m {
        Matrix::Q8(q) => Ok(q),
        Matrix::F32 { .. } | Matrix::Q4(_) => Err(Error::Unsupported {
            what: name,
            reason: "fixed-point numerics need int8 weights (a v2 checkpoint or a q8 bundle)",
        }),
    }
}

fn q16_vec(w: &Floats<'_>) -> Result<Vec<i32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(w.len())
        .map_err(|_| Error::OutOfMemory { what: "integer norm weights", bytes: 4 * w.len() })?;
    v.extend(w.iter().map(|&x| to_q16(x)));
    Ok(v)
}

/// Whether the fixed-point numerics can run these weights: every layer matrix and the
/// classifier int8 (the token embedding may be f32 when the classifier is separate).
pub fn supports(weights: &Weights<'_>) -> bool {
    let q8 = |m: &Matrix<'_>| matches!(m, Matrix::Q8(_));
    q8(weights.classifier())
        && weights
            .layers
            .iter()
            .all(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3].into_iter().all(q8))
}

impl FixedWeights {
    /// Bytes [`FixedWeights::new`] allocates for these weights, exactly.
    pub fn size(config: &Config, weights: &Weights<'_>) -> usize {
        let scales: usize = weights
            .matrices()
            .filter(|(name, _, _)| *name != "token_embedding" || config.shared_classifier)
            .map(|(_, _, m)| match m {
                Matrix::Q8(q) => q.s.len().saturating_mul(2),
                Matrix::F32 { .. } | Matrix::Q4(_) => 0,
            })
            .fold(0usize, usize::saturating_add);
        let norms = config.n_layers.saturating_mul(2).saturating_add(1).saturating_mul(config.dim);
        let layers = weights.layers.len().saturating_mul(core::mem::size_of::<FixedLayer>());
        scales.saturating_add(norms.saturating_mul(4)).saturating_add(layers)
    }

    /// Derives the integer parameters; every matrix but the token embedding must be int8.
    pub fn new(config: &Config, weights: &Weights<'_>) -> Result<Self> {
        let mut layers = Vec::new();
        layers.try_reserve_exact(weights.layers.len()).map_err(|_| Error::OutOfMemory {
            what: "integer scales",
            bytes: FixedWeights::size(config, weights),
        })?;
        for l in &weights.layers {
            layers.push(FixedLayer {
                rms_att: q16_vec(&l.rms_att_weight)?,
                rms_ffn: q16_vec(&l.rms_ffn_weight)?,
                wq: IntScales::new(q8(&l.wq, "wq")?)?,
                wk: IntScales::new(q8(&l.wk, "wk")?)?,
                wv: IntScales::new(q8(&l.wv, "wv")?)?,
                wo: IntScales::new(q8(&l.wo, "wo")?)?,
                w1: IntScales::new(q8(&l.w1, "w1")?)?,
                w2: IntScales::new(q8(&l.w2, "w2")?)?,
                w3: IntScales::new(q8(&l.w3, "w3")?)?,
            });
        }
        Ok(FixedWeights {
            layers,
            rms_final: q16_vec(&weights.rms_final_weight)?,
            cls: IntScales::new(q8(weights.classifier(), "classifier")?)?,
            inv_sqrt_hs: to_q16(1.0 / libm::sqrtf(config.head_size() as f32)),
        })
    }
}

/// Rotates each head's pairs by Q30 angles.
fn rope(v: &mut [i32], cos: &[i32], sin: &[i32], head_size: usize) {
    for head in v.chunks_exact_mut(head_size) {
        for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (v0, v1) = (pair[0] as i64, pair[1] as i64);
            let r = 1i64 << (ROPE_FRAC - 1);
            pair[0] = sat((v0 * c as i64 - v1 * s as i64 + r) >> ROPE_FRAC);
            pair[1] = sat((v0 * s as i64 + v1 * c as i64 + r) >> ROPE_FRAC);
        }
    }
}

/// A Q16 value as a Q8 `i16` for the KV cache (rounded, saturated to +-128).
#[inline]
fn to_kv(v: i32) -> i16 {
    ((v >> KV_SHIFT) + ((v >> (KV_SHIFT - 1)) & 1)).clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// One head's attention over positions `0..att.len()` with a compile-time head size (the
/// query and the output stay in registers): scores `q·k` (Q8 x Q8 = Q16, `i32`), softmax to
/// Q15 weights, `out = sum_t w_t * v_t` (Q23 in `i32`: weights summing to <= 2^15 times Q8
/// values below 2^15 stay below 2^30), left in Q23 for the caller to bring to Q16.
#[inline(always)]
fn attend<const HS: usize>(
    q: &[i32],
    k: &[i16],
    v: &[i16],
    kv_dim: usize,
    att: &mut [i32],
    out: &mut [i32],
) {
    if q.len() != HS || out.len() != HS {
        return attend_any(q, k, v, kv_dim, att, out);
    }
    let mut qa = [0i32; HS];
    qa.copy_from_slice(q);
    let q = qa;
    for (a, kt) in att.iter_mut().zip(k.chunks(kv_dim)) {
        let Ok(kt) = <&[i16; HS]>::try_from(&kt[..HS.min(kt.len())]) else { break };
        let mut s = 0i32;
        for i in 0..HS {
            s = s.wrapping_add(q[i].wrapping_mul(kt[i] as i32));
        }
        *a = s;
    }
    softmax_q15(att);
    let mut acc = [0i32; HS];
    for (&a, vt) in att.iter().zip(v.chunks(kv_dim)) {
        let Ok(vt) = <&[i16; HS]>::try_from(&vt[..HS.min(vt.len())]) else { break };
        for i in 0..HS {
            acc[i] = acc[i].wrapping_add(a.wrapping_mul(vt[i] as i32));
        }
    }
    out.copy_from_slice(&acc);
}

/// [`attend`] for any head size.
fn attend_any(q: &[i32], k: &[i16], v: &[i16], kv_dim: usize, att: &mut [i32], out: &mut [i32]) {
    let hs = q.len();
    for (t, a) in att.iter_mut().enumerate() {
        let kt = &k[t * kv_dim..][..hs];
        let mut s = 0i32;
        for (&qi, &ki) in q.iter().zip(kt) {
            s = s.wrapping_add(qi.wrapping_mul(ki as i32));
        }
        *a = s;
    }
    softmax_q15(att);
    out.fill(0);
    for (t, &a) in att.iter().enumerate() {
        let vt = &v[t * kv_dim..][..hs];
        for (o, &vi) in out.iter_mut().zip(vt) {
            *o = o.wrapping_add(a.wrapping_mul(vi as i32));
        }
    }
}

/// The fixed-point numerics ([`Numerics::Fixed`](crate::Numerics::Fixed)), one position at a
/// time (a batch of 1).
pub(crate) struct Fixed<'s, 'w> {
    pub c: Config,
    pub w: &'s Weights<'w>,
    pub fw: &'s FixedWeights,
    pub ctx: Ctx<'s>,
    pub rope: &'s RopeTable,
    pub s: &'s mut Buffers<i32, i16>,
    pub xq: &'s mut [i8],
    pub logits: &'s mut [f32],
    /// The value of one int8 step of `xq` (Q16 units, the RMSNorm folded in).
    pub step: f32,
}

/// An int8 matrix, its integer scales and where its rows go.
struct Out<'m, 'w, 'o> {
    m: &'m Matrix<'w>,
    s: &'m IntScales,
    out: Shared<'o, i32>,
}

/// The input of a group of int8 matmuls: `xq`, quantized with one step of `step`.
#[derive(Clone, Copy)]
struct Input<'a> {
    ctx: Ctx<'a>,
    xq: &'a [i8],
    step: f32,
}

impl Input<'_> {
    /// Matmuls of `cols` inputs sharing this input, their rows in one job.
    fn matmuls(&self, outs: &[Out<'_, '_, '_>], cols: usize) {
        let mut rows = [0usize; 3];
        for (r, o) in rows.iter_mut().zip(outs) {
            *r = o.m.rows();
        }
        let rows = &rows[..outs.len().min(3)];
        let macs = rows.iter().sum::<usize>() * cols;
        split_concat(self.ctx.workers, rows, ROW_ALIGN, macs, &|t, r| {
            // SAFETY: workers get disjoint row ranges of each output.
            let out = unsafe { outs[t].out.part(r.start, r.len()) };
            self.matmul(out, outs[t].m, outs[t].s, r.start);
        });
    }

    /// Rows `first..first + out.len()` of `m · xq`. (An f32 matrix, which
    /// [`FixedWeights::new`] refuses, gives zeros.)
    fn matmul(&self, out: &mut [i32], m: &Matrix<'_>, s: &IntScales, first: usize) {
        let Matrix::Q8(m) = m else { return out.fill(0) };
        let groups = m.stride / m.group;
        let (r0, r1) = (first, first + out.len());
        let scale = Rescale::from_f32(s.unit * self.step);
        let (wq, ws) = (&m.q[r0 * m.stride..r1 * m.stride], &s.s[r0 * groups..r1 * groups]);
        self.ctx.kernels.matmul_q8_fixed(out, wq, ws, &self.xq[..m.stride], m.group, scale);
    }
}

impl Block for Fixed<'_, '_> {
    fn embed(&mut self, b: usize, token: u32, pos: usize) {
        debug_assert_eq!(b, 0, "the fixed-point path runs one position at a time");
        let (dim, half) = (self.c.dim, self.c.head_size() / 2);
        // One conversion per value of the (dequantized) embedding.
        self.w.token_embedding.row_map(token as usize, &mut self.s.x[..dim], to_q16);
        // RoPE angles of this position (crate::rope, with Math::Portable), Q30.
        let (cos, sin) = (&self.rope.cos(pos)[..half], &self.rope.sin(pos)[..half]);
        for (q, c) in self.s.rope_cos.iter_mut().zip(cos) {
            *q = to_q30(*c);
        }
        for (q, s) in self.s.rope_sin.iter_mut().zip(sin) {
            *q = to_q30(*s);
        }
    }

    fn norm(&mut self, norm: Norm, _nb: usize) {
        let weight = match norm {
            Norm::Attention(l) => &self.fw.layers[l].rms_att,
            Norm::Ffn(l) => &self.fw.layers[l].rms_ffn,
        };
        let dim = self.c.dim;
        let inv = rmsnorm_q16(&mut self.s.xb[..dim], &self.s.x[..dim], weight);
        self.step = quantize_q16(self.xq, &self.s.xb[..dim]) * inv;
    }

    fn qkv(&mut self, l: usize, pos0: usize, _nb: usize) {
        let (dim, kv_dim) = (self.c.dim, self.c.kv_dim());
        let (layer, fl) = (&self.w.layers[l], &self.fw.layers[l]);
        let s = &mut *self.s;
        // k and v through xb and xb2 (free once xq holds the input), then into the caches.
        let (kt, vt) = (&mut s.xb[..kv_dim], &mut s.xb2[..kv_dim]);
        let input = Input { ctx: self.ctx, xq: self.xq, step: self.step };
        input.matmuls(
            &[
                Out { m: &layer.wq, s: &fl.wq, out: Shared::new(&mut s.q[..dim]) },
                Out { m: &layer.wk, s: &fl.wk, out: Shared::new(kt) },
                Out { m: &layer.wv, s: &fl.wv, out: Shared::new(vt) },
            ],
            dim,
        );
        let kv_at = (l * self.c.seq_len + pos0) * kv_dim;
        for (d, &v) in s.value_cache[kv_at..kv_at + kv_dim].iter_mut().zip(&s.xb2[..kv_dim]) {
            *d = to_kv(v);
        }
    }

    fn rope(&mut self, l: usize, pos0: usize, _nb: usize) {
        let (dim, kv_dim, hs) = (self.c.dim, self.c.kv_dim(), self.c.head_size());
        let s = &mut *self.s;
        let (cos, sin) = (&s.rope_cos[..hs / 2], &s.rope_sin[..hs / 2]);
        rope(&mut s.q[..dim], cos, sin, hs);
        rope(&mut s.xb[..kv_dim], cos, sin, hs);
        let kv_at = (l * self.c.seq_len + pos0) * kv_dim;
        for (d, &v) in s.key_cache[kv_at..kv_at + kv_dim].iter_mut().zip(&s.xb[..kv_dim]) {
            *d = to_kv(v);
        }
    }

    fn attend(&mut self, l: usize, pos: usize, _nb: usize) {
        let c = &self.c;
        let (hs, kv_dim, kv_mul, seq_len) = (c.head_size(), c.kv_dim(), c.kv_mul(), c.seq_len);
        let s = &mut *self.s;
        // q in Q8, scaled by 1/sqrt(head_size) once: q·k (Q8 x Q8) is the score in Q16, summed
        // in i32.
        for v in s.q[..c.dim].iter_mut() {
            *v = sat(mul_q(*v, self.fw.inv_sqrt_hs, FRAC + KV_SHIFT));
        }
        let (q, key_cache, value_cache) = (&s.q, &s.key_cache, &s.value_cache);
        let (att, xb) = (Shared::new(&mut s.att), Shared::new(&mut s.xb));
        let kv_base = l * seq_len * kv_dim;
        let macs = c.n_heads * (pos + 1) * hs * 2;
        split_job(self.ctx.workers, c.n_heads, 1, macs, &|heads| {
            for h in heads {
                // SAFETY: head h's score row and its slice of xb belong to this worker only
                // (heads are split disjointly).
                let (att, out) = unsafe { (att.part(h * seq_len, pos + 1), xb.part(h * hs, hs)) };
                let kv_off = kv_base + (h / kv_mul) * hs;
                let (qh, k, v) =
                    (&q[h * hs..(h + 1) * hs], &key_cache[kv_off..], &value_cache[kv_off..]);
                match hs {
                    8 => attend::<8>(qh, k, v, kv_dim, att, out),
                    16 => attend::<16>(qh, k, v, kv_dim, att, out),
                    32 => attend::<32>(qh, k, v, kv_dim, att, out),
                    48 => attend::<48>(qh, k, v, kv_dim, att, out),
                    64 => attend::<64>(qh, k, v, kv_dim, att, out),
                    _ => attend_any(qh, k, v, kv_dim, att, out),
                }
                for o in out.iter_mut() {
                    *o = (*o >> (15 - KV_SHIFT)) + ((*o >> (14 - KV_SHIFT)) & 1);
                }
            }
        });
    }

    fn output(&mut self, l: usize, _nb: usize) {
        let dim = self.c.dim;
        let s = &mut *self.s;
        let step = quantize_q16(self.xq, &s.xb[..dim]);
        let input = Input { ctx: self.ctx, xq: self.xq, step };
        let (m, sc) = (&self.w.layers[l].wo, &self.fw.layers[l].wo);
        input.matmuls(&[Out { m, s: sc, out: Shared::new(&mut s.xb2[..dim]) }], dim);
    }

    fn ffn(&mut self, l: usize, _nb: usize) {
        let (dim, hidden_dim) = (self.c.dim, self.c.hidden_dim);
        let (layer, fl) = (&self.w.layers[l], &self.fw.layers[l]);
        let s = &mut *self.s;
        // hb = silu(w1 · n(x)) * (w3 · n(x)), both matrices and the gate split by the same rows.
        let (hb, hb2) =
            (Shared::new(&mut s.hb[..hidden_dim]), Shared::new(&mut s.hb2[..hidden_dim]));
        let macs = 2 * hidden_dim * dim;
        let input = Input { ctx: self.ctx, xq: self.xq, step: self.step };
        split_job(self.ctx.workers, hidden_dim, ROW_ALIGN, macs, &|r| {
            // SAFETY: workers get disjoint row ranges of hb and hb2.
            let (h1, h3) = unsafe { (hb.part(r.start, r.len()), hb2.part(r.start, r.len())) };
            input.matmul(h1, &layer.w1, &fl.w1, r.start);
            input.matmul(h3, &layer.w3, &fl.w3, r.start);
            for (a, &b) in h1.iter_mut().zip(h3.iter()) {
                *a = sat(mul_q(silu_q16(*a), b, FRAC));
            }
        });
        let step = quantize_q16(self.xq, &s.hb[..hidden_dim]);
        let input = Input { ctx: self.ctx, xq: self.xq, step };
        let w2 = Out { m: &layer.w2, s: &fl.w2, out: Shared::new(&mut s.xb[..dim]) };
        input.matmuls(&[w2], hidden_dim);
    }

    fn residual(&mut self, branch: Branch, _nb: usize) {
        let s = &mut *self.s;
        let y = match branch {
            Branch::Attention => &s.xb2,
            Branch::Ffn => &s.xb,
        };
        for (a, &b) in s.x[..self.c.dim].iter_mut().zip(y.iter()) {
            *a = a.saturating_add(b);
        }
    }

    fn classify(&mut self, _b: usize) {
        let dim = self.c.dim;
        let inv = rmsnorm_q16(&mut self.s.xb[..dim], &self.s.x[..dim], &self.fw.rms_final);
        let step = quantize_q16(self.xq, &self.s.xb[..dim]) * inv;
        let input = Input { ctx: self.ctx, xq: self.xq, step };
        // The logits are f32 for the sampler: each block of rows goes through a small integer
        // buffer on the stack.
        let (m, sc) = (self.w.classifier(), &self.fw.cls);
        let logits = Shared::new(self.logits);
        let macs = logits.len() * dim;
        split_job(self.ctx.workers, logits.len(), ROW_ALIGN, macs, &|r| {
            let mut tmp = [0i32; ROW_ALIGN * 4];
            let mut r0 = r.start;
            while r0 < r.end {
                let n = (r.end - r0).min(tmp.len());
                input.matmul(&mut tmp[..n], m, sc, r0);
                // SAFETY: workers get disjoint row ranges of the logits.
                let out = unsafe { logits.part(r0, n) };
                for (o, &v) in out.iter_mut().zip(&tmp[..n]) {
                    *o = q16_to_f32(v);
                }
                r0 += n;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exp_is_within_one_unit() {
        let mut worst = 0i64;
        for d in (-(13 << FRAC)..=0).step_by(7) {
            let want = (f64::from(d) / 65536.0).exp() * 65536.0;
            let err = (exp_q16(d) as i64 - want.round() as i64).abs();
            worst = worst.max(err);
        }
        assert!(worst <= 1, "worst error {worst} units of 2^-16");
        assert_eq!(exp_q16(0), 1 << 16);
        assert_eq!(exp_q16(5), 1 << 16);
        assert_eq!(exp_q16(i32::MIN), 0);
    }

    #[test]
    fn silu_is_close() {
        for h in (-(20 << FRAC)..(20 << FRAC)).step_by(101) {
            let x = f64::from(h) / 65536.0;
            let want = x / (1.0 + (-x).exp()) * 65536.0;
            let err = (silu_q16(h) as f64 - want).abs();
            // The sigmoid has 16 fraction bits: up to two units of it, times |x|, plus rounding.
            assert!(err <= 2.0 + 2.0 * x.abs() + want.abs() * 2e-5, "silu({x}) off by {err}");
        }
        assert!(silu_q16(i32::MAX) > i32::MAX - (1 << 16));
        assert!(silu_q16(i32::MIN) <= 0);
    }

    proptest! {
        #[test]
        fn quantize_reconstructs_within_half_a_step(x in proptest::collection::vec(any::<i32>(), 1..80)) {
            let mut q = vec![0i8; 96];
            let step = quantize_q16(&mut q, &x);
            for (i, &v) in x.iter().enumerate() {
                let back = q[i] as f64 * step as f64;
                prop_assert!((back - v as f64).abs() <= step as f64 * 0.5 + step as f64 * 1e-3 + 1.0,
                    "{v} -> {} * {step}", q[i]);
            }
            prop_assert!(q[x.len()..].iter().all(|&v| v == 0));
        }

        #[test]
        fn softmax_matches_f64(s in proptest::collection::vec(-(20i32 << 16)..(20i32 << 16), 1..300)) {
            let mut att = s.clone();
            softmax_q15(&mut att);
            let max = s.iter().copied().max().unwrap() as f64 / 65536.0;
            let e: Vec<f64> = s.iter().map(|&v| (v as f64 / 65536.0 - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let total: i64 = att.iter().map(|&a| a as i64).sum();
            prop_assert!(total <= 1 << 15 && total >= (1 << 15) - att.len() as i64 - 2);
            for (a, e) in att.iter().zip(&e) {
                prop_assert!((*a as f64 - e / sum * 32768.0).abs() <= 2.0);
            }
        }
    }

    #[test]
    fn q16_to_f32_is_the_conversion() {
        for v in [-65536 * 3, -1, 0, 1, 65536, 123_456_789, i32::MIN, i32::MAX, 1 << 24, -(1 << 24)]
        {
            assert_eq!(q16_to_f32(v).to_bits(), (v as f32 / 65536.0).to_bits(), "{v}");
        }
        let mut x = 0x2545_f491u32;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = (x as i32) >> (x % 20);
            assert_eq!(q16_to_f32(v).to_bits(), (v as f32 / 65536.0).to_bits(), "{v}");
        }
    }
}
