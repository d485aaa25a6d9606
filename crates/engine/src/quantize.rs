//! Int8 "Q8_0" quantization of weights, as llama2.c's `export.py` does it, and int4.
//!
//! Each group of `group` consecutive values in a row gets one f32 scale `max|w| / 127`, and
//! every value becomes `round_half_even(w / scale)` (torch.round), so the largest magnitude in a
//! group maps to ±127 and the dequantized value `q * scale` is within `scale / 2` of `w`.
//! Rows can be stored with a `stride` longer than their length: the padding quantizes to zeros.
//! Unlike export.py, which only checks that the group size divides `dim`, every row length must
//! be a multiple of the group (or be padded to one): a group straddling two rows silently
//! corrupts the matmul.
//!
//! Int4 ([`quantize_rows_q4`]) keeps one f32 scale per group with values in `-8..=7`, but 16
//! levels are coarse enough that the scale matters: each group tries the scales `max|w| / d`
//! for `d = 6, 6.25, .., 10` (a larger `d` clips the few largest values and resolves the many
//! small ones better), refits each trial's scale to its values by least squares, and keeps the
//! pair with the least squared error, never worse than the plain `max|w| / 7`. Deterministic,
//! and in f32 like the rest.

use crate::error::{Error, Result};

/// The error a quantization caused, accumulated over values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuantError {
    /// Largest `|w - q * scale|`.
    pub max_abs: f32,
    /// Sum of squared errors.
    pub sum_sq: f64,
    /// Number of values.
    pub count: usize,
}

impl QuantError {
    /// Root mean square error.
    pub fn rms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            libm::sqrt(self.sum_sq / self.count as f64)
        }
    }

    /// Combines two accumulations.
    pub fn merge(&mut self, o: &QuantError) {
        self.max_abs = self.max_abs.max(o.max_abs);
        self.sum_sq += o.sum_sq;
        self.count += o.count;
    }
}

/// The largest power of two `<= max` that divides every length (at least 1).
pub fn default_group_size(row_lens: &[usize], max: usize) -> usize {
    let mut g = 1usize;
    while g * 2 <= max && row_lens.iter().all(|&n| n % (g * 2) == 0) {
        g *= 2;
    }
    g
}

/// Checks that `group` divides each row length, naming the first tensor where it does not.
pub fn check_group_size(group: usize, rows: &[(&'static str, usize)]) -> Result<()> {
    for &(tensor, len) in rows {
        if group == 0 || len % group != 0 {
            return Err(Error::BadGroupSize { tensor, group_size: group, row_len: len });
        }
    }
    Ok(())
}

/// Quantizes `rows` rows of `cols` values from `w` into `q` (`rows * stride` values) and `s`
/// (`rows * stride / group` scales). `stride` must be a multiple of `group` and `>= cols`.
pub fn quantize_rows(
    w: &[f32],
    cols: usize,
    stride: usize,
    group: usize,
    q: &mut [i8],
    s: &mut [f32],
) -> QuantError {
    let mut err = QuantError::default();
    for ((row, qrow), srow) in
        w.chunks_exact(cols).zip(q.chunks_exact_mut(stride)).zip(s.chunks_exact_mut(stride / group))
    {
        for (g, (qg, sg)) in qrow.chunks_exact_mut(group).zip(srow.iter_mut()).enumerate() {
            let start = (g * group).min(cols);
            let wg = &row[start..(start + group).min(cols)];
            let wmax = wg.iter().fold(0.0f32, |m, v| m.max(libm::fabsf(*v)));
            let scale = wmax / 127.0f32;
            *sg = scale;
            for (i, qv) in qg.iter_mut().enumerate() {
                let Some(&v) = wg.get(i) else {
                    *qv = 0;
                    continue;
                };
                // All-zero group: scale 0, every value 0 (0/0 would be NaN).
                let qi = if scale == 0.0 { 0 } else { libm::rintf(v / scale) as i8 };
                *qv = qi;
                let e = libm::fabsf(v - qi as f32 * scale);
                err.max_abs = err.max_abs.max(e);
                err.sum_sq += (e as f64) * (e as f64);
                err.count += 1;
            }
        }
    }
    err
}

/// The int4 value of `v` at `scale` (0 for a zero scale), clipped to `-8..=7`.
fn q4_value(v: f32, scale: f32) -> i8 {
    if scale == 0.0 {
        0
    } else {
        libm::rintf(v / scale).clamp(-8.0, 7.0) as i8
    }
}

/// The divisors `d` an int4 group tries (`max|w| / d`): 6 to 10 in steps of 1/4, 7 (the plain
/// scale) among them.
const Q4_DIVISORS: usize = 17;

/// One group's int4 scale: for each trial scale `max|w| / d`, the values `q` it rounds to and
/// then the scale that fits those values best (least squares, `sum(w q) / sum(q q)`); the pair
/// with the least squared error wins. Returns (trial scale that rounds, stored scale).
fn q4_group_scale(wg: &[f32]) -> (f32, f32) {
    let wmax = wg.iter().fold(0.0f32, |m, v| m.max(libm::fabsf(*v)));
    if wmax == 0.0 {
        return (0.0, 0.0);
    }
    let sse = |scale: f32, trial: f32| -> f64 {
        wg.iter()
            .map(|&v| {
                let e = (v - q4_value(v, trial) as f32 * scale) as f64;
                e * e
            })
            .sum()
    };
    let plain = wmax / 7.0;
    let mut best = (plain, plain, sse(plain, plain));
    for i in 0..Q4_DIVISORS {
        let trial = wmax / (6.0 + 0.25 * i as f32);
        let (mut wq, mut qq) = (0.0f32, 0.0f32);
        for &v in wg {
            let q = q4_value(v, trial) as f32;
            wq += v * q;
            qq += q * q;
        }
        if qq == 0.0 {
            continue;
        }
        let fit = wq / qq;
        // The values stay those of `trial`: decoding is `q(trial) * fit`.
        let e = sse(fit, trial);
        if e < best.2 {
            best = (trial, fit, e);
        }
    }
    (best.0, best.1)
}

/// Quantizes `rows` rows of `cols` values from `w` into int4: `q` gets `rows * stride / 2`
/// bytes (value `c` of a row in byte `c / 2`, low nibble first, two's complement `-8..=7`), `s`
/// gets `rows * stride / group` scales. `stride` must be a multiple of `group` and of 2,
/// `>= cols`, and `group` even; the padding is zeros.
pub fn quantize_rows_q4(
    w: &[f32],
    cols: usize,
    stride: usize,
    group: usize,
    q: &mut [u8],
    s: &mut [f32],
) -> QuantError {
    let mut err = QuantError::default();
    for ((row, qrow), srow) in w
        .chunks_exact(cols)
        .zip(q.chunks_exact_mut(stride / 2))
        .zip(s.chunks_exact_mut(stride / group))
    {
        for (g, (qg, sg)) in qrow.chunks_exact_mut(group / 2).zip(srow.iter_mut()).enumerate() {
            let start = (g * group).min(cols);
            let wg = &row[start..(start + group).min(cols)];
            let (trial, scale) = q4_group_scale(wg);
            *sg = scale;
            for (i, byte) in qg.iter_mut().enumerate() {
                let mut nib = [0u8; 2];
                for (h, n) in nib.iter_mut().enumerate() {
                    let Some(&v) = wg.get(2 * i + h) else { continue };
                    let qi = q4_value(v, trial);
                    *n = (qi as u8) & 0x0F;
                    let e = libm::fabsf(v - qi as f32 * scale);
                    err.max_abs = err.max_abs.max(e);
                    err.sum_sq += (e as f64) * (e as f64);
                    err.count += 1;
                }
                *byte = nib[0] | (nib[1] << 4);
            }
        }
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn group_size_choice() {
        assert_eq!(default_group_size(&[64, 172], 64), 4);
        assert_eq!(default_group_size(&[288, 768], 64), 32);
        assert_eq!(default_group_size(&[512, 1376], 64), 32);
        assert_eq!(default_group_size(&[4096, 11008], 64), 64);
        assert_eq!(default_group_size(&[7], 64), 1);
    }

    #[test]
    fn bad_group_is_named() {
        let e = check_group_size(64, &[("wq", 64), ("w2", 172)]).unwrap_err();
        assert_eq!(e, Error::BadGroupSize { tensor: "w2", group_size: 64, row_len: 172 });
    }

    proptest! {
        #[test]
        fn error_is_within_half_a_step(
            w in proptest::collection::vec(-2.0f32..2.0, 1..200),
            group in 1usize..20,
            pad in 0usize..3,
        ) {
            let cols = w.len();
            let stride = (cols.div_ceil(group) + pad) * group;
            let mut q = vec![0i8; stride];
            let mut s = vec![0f32; stride / group];
            let err = quantize_rows(&w, cols, stride, group, &mut q, &mut s);
            for (i, &v) in w.iter().enumerate() {
                let scale = s[i / group];
                let back = q[i] as f32 * scale;
                prop_assert!((back - v).abs() <= scale / 2.0 + 1e-6);
                prop_assert!(q[i] >= -127);
            }
            prop_assert!(q[cols..].iter().all(|&x| x == 0));
            prop_assert!(err.max_abs <= 2.0 / 127.0);
            prop_assert_eq!(err.count, cols);
        }

        /// Int4 round trip: every value decodes to within its group's error, the error is never
        /// worse than the plain `max / 7` scale's, values stay in -8..=7, padding is zero.
        #[test]
        fn q4_error_is_at_most_the_plain_scales(
            w in proptest::collection::vec(-2.0f32..2.0, 1..200),
            group in (1usize..5).prop_map(|m| 16 * m),
            pad in 0usize..3,
        ) {
            let cols = w.len();
            let stride = (cols.div_ceil(group) + pad) * group;
            let mut q = vec![0u8; stride / 2];
            let mut s = vec![0f32; stride / group];
            let err = quantize_rows_q4(&w, cols, stride, group, &mut q, &mut s);
            prop_assert_eq!(err.count, cols);
            let mut plain = 0.0f64;
            let mut got = 0.0f64;
            for (i, &v) in w.iter().enumerate() {
                let (lo, hi) = crate::model::nibbles(q[i / 2]);
                let qi = if i % 2 == 0 { lo } else { hi };
                prop_assert!((-8..=7).contains(&qi));
                let back = qi as f32 * s[i / group];
                got += ((back - v) as f64).powi(2);
                let g0 = i / group * group;
                let wmax = w[g0..(g0 + group).min(cols)].iter().fold(0f32, |m, x| m.max(x.abs()));
                let ps = wmax / 7.0;
                let pq = if ps == 0.0 { 0.0 } else { (v / ps).round_ties_even().clamp(-7.0, 7.0) };
                plain += ((pq * ps - v) as f64).powi(2);
            }
            prop_assert!(got <= plain * (1.0 + 1e-9) + 1e-12, "{got} > {plain}");
            prop_assert!((got - err.sum_sq).abs() <= 1e-6 * (1.0 + got));
            for i in cols..stride {
                let (lo, hi) = crate::model::nibbles(q[i / 2]);
                prop_assert_eq!(if i % 2 == 0 { lo } else { hi }, 0);
            }
        }
    }
}

/// One tensor's quantization error, summed over layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorError {
    pub name: &'static str,
    pub err: QuantError,
}

/// llama2.c's version-2 (Q8_0) file of fp32 weights, as `export.py --version 2` writes it:
/// 256-byte header (magic, version 2, the seven config ints, shared-classifier byte, group
/// size), the f32 norms (`rms_att` of all layers, `rms_ffn` of all layers, `rms_final`), then
/// per tensor in the order token_embedding, wq.., wk.., wv.., wo.., w1.., w2.., w3.. (all
/// layers each), wcls when not shared: int8 values row-major, then one f32 scale per group.
/// `on_tensor` is called with each tensor's name before it is quantized (progress).
/// The caller checks `group` with [`check_group_size`]; an int8 input is refused.
pub fn to_v2(
    w: &crate::model::Weights<'_>,
    c: &crate::Config,
    group: usize,
    on_tensor: &mut dyn FnMut(&'static str),
) -> Result<(alloc::vec::Vec<u8>, alloc::vec::Vec<TensorError>)> {
    use crate::checkpoint::{LLAMA2C_MAGIC, VERSIONED_HEADER};
    use crate::model::Matrix;
    use alloc::vec::Vec;
    check_group_size(
        group,
        &[("rows of length dim", c.dim), ("w2 (rows of length hidden_dim)", c.hidden_dim)],
    )?;
    let mut out = Vec::with_capacity(VERSIONED_HEADER);
    out.extend_from_slice(&LLAMA2C_MAGIC.to_le_bytes());
    out.extend_from_slice(&2i32.to_le_bytes());
    for v in [c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len] {
        out.extend_from_slice(&(v as i32).to_le_bytes());
    }
    out.push(u8::from(c.shared_classifier));
    out.extend_from_slice(&(group as i32).to_le_bytes());
    out.resize(VERSIONED_HEADER, 0);
    let floats = |out: &mut Vec<u8>, v: &[f32]| out.extend(v.iter().flat_map(|f| f.to_le_bytes()));
    for l in &w.layers {
        floats(&mut out, &l.rms_att_weight);
    }
    for l in &w.layers {
        floats(&mut out, &l.rms_ffn_weight);
    }
    floats(&mut out, &w.rms_final_weight);
    // v2 order: embedding, then each tensor kind over all layers, then wcls.
    let mut order: Vec<(&'static str, &Matrix<'_>)> =
        alloc::vec![("token_embedding", &w.token_embedding)];
    for kind in 0..7 {
        for l in &w.layers {
            let m = [&l.wq, &l.wk, &l.wv, &l.wo, &l.w1, &l.w2, &l.w3][kind];
            order.push((["wq", "wk", "wv", "wo", "w1", "w2", "w3"][kind], m));
        }
    }
    if let Some(cls) = &w.wcls {
        order.push(("wcls", cls));
    }
    let mut errors: Vec<TensorError> = Vec::new();
    for (name, m) in order {
        on_tensor(name);
        let Matrix::F32 { w: vals, .. } = m else {
            return Err(Error::Unsupported {
                what: name,
                reason: "already int8; quantize reads fp32 checkpoints (v0 or v1)",
            });
        };
        let (rows, cols) = (m.rows(), m.cols());
        let mut q = alloc::vec![0i8; rows * cols];
        let mut s = alloc::vec![0f32; rows * cols / group];
        let err = quantize_rows(vals, cols, cols, group, &mut q, &mut s);
        out.extend_from_slice(bytemuck::cast_slice(&q));
        floats(&mut out, &s);
        match errors.iter_mut().find(|t| t.name == name) {
            Some(t) => t.err.merge(&err),
            None => errors.push(TensorError { name, err }),
        }
    }
    Ok((out, errors))
}
