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
use crate::kernels::Kernels;
use crate::model::{Config, Floats, Matrix, Q8Matrix, Weights};
use crate::state::RunState;
use alloc::vec::Vec;
use core::num::NonZeroU32;

/// Fraction bits of the Q16 activations.
pub const FRAC: u32 = 16;
/// 1.0 in Q16.
pub const ONE: i32 = 1 << FRAC;
/// Bits dropped from Q16 to store keys and values in the KV cache as Q8 `i16`.
const KV_SHIFT: u32 = 8;
/// Fraction bits of the RoPE cosines and sines.
const ROPE_FRAC: u32 = 30;

/// A non-negative real multiplier `m * 2^-shift` with a 15-bit mantissa `m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescale {
    /// Mantissa, `2^14 <= m < 2^15` (or 0).
    pub m: i32,
    /// Right shift, at most 62.
    pub shift: u32,
}

impl Rescale {
    /// Multiplies by zero.
    pub const ZERO: Rescale = Rescale { m: 0, shift: 0 };
    /// The largest multiplier (`2^15`); larger ones saturate to it.
    pub const MAX: Rescale = Rescale { m: 1 << 15, shift: 0 };

    /// The multiplier nearest below `f` (truncated to 15 significant bits), from the bits of
    /// `f` alone (no float arithmetic). Negative, NaN and subnormal values give zero, values of
    /// `2^15` and more (and infinity) saturate.
    pub fn from_f32(f: f32) -> Rescale {
        let bits = f.to_bits();
        let exp = ((bits >> 23) & 0xff) as i32;
        if bits >> 31 != 0 || exp == 0 || (exp == 0xff && bits & 0x7f_ffff != 0) {
            return Rescale::ZERO;
        }
        // f = mant24 * 2^(exp - 150) = (mant24 >> 9) * 2^(exp - 141), up to the dropped bits.
        let m = (((bits & 0x7f_ffff) | 0x80_0000) >> 9) as i32;
        let shift = 141 - exp;
        if shift < 0 {
            Rescale::MAX
        } else if shift > 62 {
            Rescale::ZERO
        } else {
            Rescale { m, shift: shift as u32 }
        }
    }

    /// `round(s * m / 2^shift)` (half up), saturated to `i32`, with `m` taken in
    /// `0..=2^15` (the range [`Rescale::from_f32`] gives; other values are clamped, the same
    /// way as in [`Rescale::apply_group`]). The product wraps for `|s| >= 2^48`, which int8
    /// rows cannot reach (a group sum is below 2^21 for groups up to 64, times an `i16` scale,
    /// times at most 2^11 groups).
    #[inline]
    pub fn apply(self, s: i64) -> i32 {
        self.round_shift(s.wrapping_mul(self.mantissa() as i64))
    }

    /// `apply(iv * ws)`, the same value for a row of one group, with 32-bit multiplies only
    /// (`ws * m` fits in `i32`): cheaper on RV32.
    #[inline]
    pub fn apply_group(self, iv: i32, ws: i16) -> i32 {
        let c = ws as i32 * self.mantissa();
        self.round_shift(iv as i64 * c as i64)
    }

    /// `m` clamped to `0..=2^15`: non-negative (one multiply fewer on 32-bit cores) and small
    /// enough for `ws * m` to fit in `i32`.
    #[inline(always)]
    fn mantissa(self) -> i32 {
        self.m.clamp(0, 1 << 15)
    }

    #[inline(always)]
    fn round_shift(self, p: i64) -> i32 {
        let r = if self.shift == 0 {
            p
        } else {
            p.wrapping_add(1i64 << (self.shift - 1)) >> self.shift
        };
        if r as i32 as i64 == r {
            r as i32
        } else if r < 0 {
            i32::MIN
        } else {
            i32::MAX
        }
    }
}

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
        Matrix::F32 { .. } => Err(Error::Unsupported {
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
    /// Bytes [`FixedWeights::new`] allocates for these weights.
    pub fn size(config: &Config, weights: &Weights<'_>) -> usize {
        let scales: usize = weights
            .matrices()
            .filter(|(name, _, _)| *name != "token_embedding" || config.shared_classifier)
            .map(|(_, _, m)| match m {
                Matrix::Q8(q) => q.s.len().saturating_mul(2),
                Matrix::F32 { .. } => 0,
            })
            .fold(0usize, usize::saturating_add);
        let norms = config.n_layers.saturating_mul(2).saturating_add(1).saturating_mul(config.dim);
        scales.saturating_add(norms.saturating_mul(4))
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

/// `out = m · x` for the int8 matrix `m` whose input `xq` was quantized with step `step`
/// (Q16 units, times any folded normalization).
/// (An f32 matrix, which [`FixedWeights::new`] refuses, gives zeros.)
fn matmul(k: &dyn Kernels, out: &mut [i32], m: &Matrix<'_>, s: &IntScales, xq: &[i8], step: f32) {
    match m {
        Matrix::Q8(m) => {
            let scale = Rescale::from_f32(s.unit * step);
            k.matmul_q8_fixed(&mut out[..m.rows], m.q, &s.s, &xq[..m.stride], m.group, scale);
        }
        Matrix::F32 { rows, .. } => out[..*rows].fill(0),
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

/// Views an f32 run-state buffer as `i32` (same size and alignment).
fn ints(v: &mut [f32]) -> &mut [i32] {
    bytemuck::cast_slice_mut(v)
}

/// Views an f32 run-state buffer as twice as many `i16` (the KV cache: Q8 values use the
/// first half).
fn halves(v: &mut [f32]) -> &mut [i16] {
    bytemuck::cast_slice_mut(v)
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

/// One position through the model in fixed point; writes the logits (f32) when `logits`.
/// `rope_freq` are the transformer's RoPE inverse frequencies (`head_size / 2`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    fw: &FixedWeights,
    c: &Config,
    w: &Weights<'_>,
    rope_freq: &[f32],
    state: &mut RunState,
    kernels: &dyn Kernels,
    token: u32,
    pos: usize,
    logits: bool,
) {
    let (dim, hidden_dim, hs) = (c.dim, c.hidden_dim, c.head_size());
    let (kv_dim, kv_mul, seq_len) = (c.kv_dim(), c.kv_mul(), c.seq_len);
    let half = hs / 2;
    // The token's embedding (dequantized as f32 into xb2, then one conversion per value).
    w.token_embedding.row_into(token as usize, &mut state.xb2[..dim]);
    for (v, &e) in state.x[..dim].iter_mut().zip(&state.xb2[..dim]) {
        *v = f32::from_bits(to_q16(e) as u32);
    }
    // RoPE angles of this position, Q30.
    for (i, f) in rope_freq.iter().enumerate().take(half) {
        let val = pos as f32 * f;
        state.rope_cos[i] = f32::from_bits(to_q30(libm::cosf(val)) as u32);
        state.rope_sin[i] = f32::from_bits(to_q30(libm::sinf(val)) as u32);
    }

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
        ..
    } = state;
    let (x, xb, xb2) = (&mut ints(x)[..dim], &mut ints(xb)[..dim], &mut ints(xb2)[..dim]);
    let (hb, hb2, q) = (&mut ints(hb)[..hidden_dim], &mut ints(hb2)[..hidden_dim], ints(q));
    let att = ints(att);
    let (key_cache, value_cache) = (halves(key_cache), halves(value_cache));
    let cos: &[i32] = bytemuck::cast_slice(&state.rope_cos[..half]);
    let sin: &[i32] = bytemuck::cast_slice(&state.rope_sin[..half]);

    for (l, (layer, fl)) in w.layers.iter().zip(&fw.layers).enumerate() {
        // Attention: q, k, v from one quantized input.
        let inv = rmsnorm_q16(xb, x, &fl.rms_att);
        let step = quantize_q16(xq, xb) * inv;
        let kv_at = (l * seq_len + pos) * kv_dim;
        matmul(kernels, &mut q[..dim], &layer.wq, &fl.wq, xq, step);
        // k and v through xb and xb2 (free once xq holds the input), then into the caches.
        let (kt, vt) = (&mut xb[..kv_dim], &mut xb2[..kv_dim]);
        matmul(kernels, kt, &layer.wk, &fl.wk, xq, step);
        matmul(kernels, vt, &layer.wv, &fl.wv, xq, step);
        rope(&mut q[..dim], cos, sin, hs);
        rope(kt, cos, sin, hs);
        for (d, &v) in key_cache[kv_at..kv_at + kv_dim].iter_mut().zip(kt.iter()) {
            *d = to_kv(v);
        }
        for (d, &v) in value_cache[kv_at..kv_at + kv_dim].iter_mut().zip(vt.iter()) {
            *d = to_kv(v);
        }

        let kv_base = l * seq_len * kv_dim;
        for h in 0..c.n_heads {
            // q in Q8, scaled by 1/sqrt(head_size) once: q·k (Q8 x Q8) is the score in Q16,
            // summed in i32.
            let qh = &mut q[h * hs..(h + 1) * hs];
            for v in qh.iter_mut() {
                *v = sat(mul_q(*v, fw.inv_sqrt_hs, FRAC + KV_SHIFT));
            }
            let kv_off = kv_base + (h / kv_mul) * hs;
            let att = &mut att[..pos + 1];
            let out = &mut xb[h * hs..(h + 1) * hs];
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
        let step = quantize_q16(xq, xb);
        matmul(kernels, xb2, &layer.wo, &fl.wo, xq, step);
        for (a, &b) in x.iter_mut().zip(xb2.iter()) {
            *a = a.saturating_add(b);
        }

        // Feed-forward: hb = silu(w1 · n(x)) * (w3 · n(x)); x += w2 · hb.
        let inv = rmsnorm_q16(xb, x, &fl.rms_ffn);
        let step = quantize_q16(xq, xb) * inv;
        matmul(kernels, hb, &layer.w1, &fl.w1, xq, step);
        matmul(kernels, hb2, &layer.w3, &fl.w3, xq, step);
        for (a, &b) in hb.iter_mut().zip(hb2.iter()) {
            *a = sat(mul_q(silu_q16(*a), b, FRAC));
        }
        let step = quantize_q16(xq, hb);
        matmul(kernels, xb, &layer.w2, &fl.w2, xq, step);
        for (a, &b) in x.iter_mut().zip(xb.iter()) {
            *a = a.saturating_add(b);
        }
    }

    if logits {
        let inv = rmsnorm_q16(xb, x, &fw.rms_final);
        let step = quantize_q16(xq, xb) * inv;
        let out = ints(logits_buf);
        matmul(kernels, out, w.classifier(), &fw.cls, xq, step);
        for v in logits_buf.iter_mut() {
            *v = q16_to_f32(v.to_bits() as i32);
        }
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
        fn rescale_is_within_its_precision(f in 1e-9f32..30000.0, s in -(1i64 << 40)..(1i64 << 40)) {
            let r = Rescale::from_f32(f);
            let want = s as f64 * f as f64;
            let got = r.apply(s) as f64;
            let clamped = want.clamp(i32::MIN as f64, i32::MAX as f64);
            // 15 significant bits of the multiplier, and rounding.
            prop_assert!((got - clamped).abs() <= clamped.abs() * 6.2e-5 + 1.0,
                "{s} * {f}: {got} vs {want}");
        }

        #[test]
        fn apply_group_is_apply(iv in any::<i32>(), ws in any::<i16>(), m in any::<i32>(), shift in 0u32..63) {
            let r = Rescale { m, shift };
            prop_assert_eq!(r.apply_group(iv, ws), r.apply(iv as i64 * ws as i64));
        }

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
    fn rescale_edges() {
        assert_eq!(Rescale::from_f32(0.0), Rescale::ZERO);
        assert_eq!(Rescale::from_f32(-1.0), Rescale::ZERO);
        assert_eq!(Rescale::from_f32(f32::NAN), Rescale::ZERO);
        assert_eq!(Rescale::from_f32(f32::INFINITY), Rescale::MAX);
        assert_eq!(Rescale::from_f32(1e30), Rescale::MAX);
        assert_eq!(Rescale::from_f32(1.0).apply(12345), 12345);
        assert_eq!(Rescale::from_f32(0.5).apply(-3), -1); // -1.5 rounds half up
        assert_eq!(Rescale::MAX.apply(1 << 40), i32::MAX);
        assert_eq!(Rescale::MAX.apply(-(1 << 40)), i32::MIN);
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
