//! aarch64 NEON kernels, bit-identical to [`Scalar`].
//!
//! The same scheme as the x86_64 kernels (see `kernels/x86_64.rs`): the golden stories have
//! positions whose top-2 logit margin is 8e-5, so these kernels must give the very same floats
//! as the scalar twin, and they vectorize *across output rows*. Each of the four lanes of a
//! NEON vector owns one row and adds that row's products in the scalar order (left to right,
//! `fmul` then `fadd`, never `fmla`, for f32). A block of 4 rows is loaded 4 columns at a time
//! and transposed in registers (`trn1`/`trn2` on 32- then 64-bit lanes), so that one vector
//! holds column `j` of the 4 rows; the f32 loop takes 16 rows (four independent add chains) per
//! pass, then blocks of 4, and leaves the last `rows % 4` rows to the scalar twin.
//!
//! The int8 kernels compute each group's integer dot product exactly (the order of integer
//! adds does not matter): [`Neon`] with widening multiplies (`smull`/`smull2` to i16, then
//! `sadalp` pair-adds into i32), [`NeonDot`] with the `sdot` instruction of the `dotprod`
//! extension (Armv8.2+, detected at run time). Then the groups of 4 rows are added in order,
//! `val = fma(ival as f32 * w_scale, x_scale, val)` with `fmla` (`vfmaq_f32(val, ival * ws, xs)`
//! is `val + (ival * ws) * xs` rounded once), exactly as the scalar twin and runq.c's reference
//! build do. Groups of any size are taken: 16 values per step, then 8, then a scalar integer
//! tail; groups of 4 (stories260K_q80's) four at a time, one row's four group sums per vector,
//! transposed back to one row per lane.
//!
//! The int4 kernel unpacks 8 bytes into 16 signed int8 values per step (`shl`/`sshr` by 4
//! sign-extends each nibble, `zip1` puts low before high) and then runs the int8 step.
//!
//! Speed is unmeasured: the only aarch64 here is `qemu-aarch64` (user-mode emulation, not a
//! timing model). The tests check every result bit for bit against [`Scalar`] under it.

use super::{f32_shapes_ok, q4_shapes_ok, q8_shapes_ok, Kernels, Scalar};
use core::arch::aarch64::*;

/// NEON (Advanced SIMD) kernels: 4 rows per vector.
#[derive(Debug, Default, Clone, Copy)]
pub struct Neon {
    _private: (),
}

/// NEON kernels with the `sdot` int8 dot product (the `dotprod` extension); f32 as [`Neon`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NeonDot {
    _private: (),
}

static NEON: Neon = Neon { _private: () };
static NEON_DOT: NeonDot = NeonDot { _private: () };

impl Neon {
    /// The kernels, if this CPU has NEON (every Linux aarch64 CPU does).
    #[cfg(any(test, feature = "std"))]
    pub fn detect() -> Option<&'static Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(&NEON)
    }

    /// The kernels, if the build targets NEON (no run-time detection without `std`).
    #[cfg(not(any(test, feature = "std")))]
    pub fn detect() -> Option<&'static Self> {
        cfg!(target_feature = "neon").then_some(&NEON)
    }
}

impl NeonDot {
    /// The kernels, if this CPU has NEON and the `dotprod` extension.
    #[cfg(any(test, feature = "std"))]
    pub fn detect() -> Option<&'static Self> {
        (Neon::detect().is_some() && std::arch::is_aarch64_feature_detected!("dotprod"))
            .then_some(&NEON_DOT)
    }

    /// The kernels, if the build targets NEON and `dotprod`.
    #[cfg(not(any(test, feature = "std")))]
    pub fn detect() -> Option<&'static Self> {
        (Neon::detect().is_some() && cfg!(target_feature = "dotprod")).then_some(&NEON_DOT)
    }
}

impl Kernels for Neon {
    fn name(&self) -> &'static str {
        "neon"
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        if !f32_shapes_ok(out, w, x) {
            return Scalar.matmul_f32(out, w, x);
        }
        // SAFETY: `Neon` is only constructed when the CPU has NEON; lengths checked.
        let done = unsafe { f32_rows_neon(out, w, x) };
        Scalar.matmul_f32(&mut out[done..], &w[done * x.len()..], x);
    }

    fn matmul_q8(
        &self,
        out: &mut [f32],
        wq: &[i8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        if !q8_shapes_ok(out, wq, ws, xq, xs, group) {
            return Scalar.matmul_q8(out, wq, ws, xq, xs, group);
        }
        // SAFETY: `Neon` is only constructed when the CPU has NEON; lengths checked.
        let done = unsafe { q8_rows_neon(out, wq, ws, xq, xs, group) };
        q8_tail(done, out, wq, ws, xq, xs, group);
    }

    fn matmul_q4(
        &self,
        out: &mut [f32],
        wq: &[u8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        if !q4_shapes_ok(out, wq, ws, xq, xs, group) {
            return Scalar.matmul_q4(out, wq, ws, xq, xs, group);
        }
        // SAFETY: `Neon` is only constructed when the CPU has its features; lengths checked.
        let done = unsafe { q4_rows_neon(out, wq, ws, xq, xs, group) };
        let (stride, groups) = (xq.len(), xq.len() / group);
        Scalar.matmul_q4(
            &mut out[done..],
            &wq[done * stride / 2..],
            &ws[done * groups..],
            xq,
            xs,
            group,
        );
    }
}

impl Kernels for NeonDot {
    fn name(&self) -> &'static str {
        "neon-dotprod"
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        NEON.matmul_f32(out, w, x)
    }

    fn matmul_q8(
        &self,
        out: &mut [f32],
        wq: &[i8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        if !q8_shapes_ok(out, wq, ws, xq, xs, group) {
            return Scalar.matmul_q8(out, wq, ws, xq, xs, group);
        }
        // SAFETY: `NeonDot` is only constructed when the CPU has NEON and dotprod; lengths
        // checked.
        let done = unsafe { q8_rows_dotprod(out, wq, ws, xq, xs, group) };
        q8_tail(done, out, wq, ws, xq, xs, group);
    }

    fn matmul_q4(
        &self,
        out: &mut [f32],
        wq: &[u8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        if !q4_shapes_ok(out, wq, ws, xq, xs, group) {
            return Scalar.matmul_q4(out, wq, ws, xq, xs, group);
        }
        // SAFETY: `NeonDot` is only constructed when the CPU has its features; lengths checked.
        let done = unsafe { q4_rows_dotprod(out, wq, ws, xq, xs, group) };
        let (stride, groups) = (xq.len(), xq.len() / group);
        Scalar.matmul_q4(
            &mut out[done..],
            &wq[done * stride / 2..],
            &ws[done * groups..],
            xq,
            xs,
            group,
        );
    }
}

/// The int8 rows from `done` on, with the scalar twin.
fn q8_tail(
    done: usize,
    out: &mut [f32],
    wq: &[i8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) {
    let (stride, groups) = (xq.len(), xq.len() / group);
    Scalar.matmul_q8(&mut out[done..], &wq[done * stride..], &ws[done * groups..], xq, xs, group);
}

/// Transposes the 4x4 block whose rows are `r` in place: afterwards `r[k]` holds column `k`.
///
/// # Safety
/// The CPU must have NEON (callers run inside `#[target_feature(enable = "neon")]`).
#[inline(always)]
unsafe fn transpose4(r: &mut [float32x4_t; 4]) {
    // t0 = [r0.0 r1.0 r0.2 r1.2], t1 = [r0.1 r1.1 r0.3 r1.3], t2/t3 the same for rows 2, 3.
    let t0 = vreinterpretq_f64_f32(vtrn1q_f32(r[0], r[1]));
    let t1 = vreinterpretq_f64_f32(vtrn2q_f32(r[0], r[1]));
    let t2 = vreinterpretq_f64_f32(vtrn1q_f32(r[2], r[3]));
    let t3 = vreinterpretq_f64_f32(vtrn2q_f32(r[2], r[3]));
    r[0] = vreinterpretq_f32_f64(vtrn1q_f64(t0, t2));
    r[1] = vreinterpretq_f32_f64(vtrn1q_f64(t1, t3));
    r[2] = vreinterpretq_f32_f64(vtrn2q_f64(t0, t2));
    r[3] = vreinterpretq_f32_f64(vtrn2q_f64(t1, t3));
}

/// Column `j` of the 4 rows (stride `n`) starting at `a`.
///
/// # Safety
/// `a.add(3 * n + j)` and the three column reads before it must be in one allocation of
/// initialized `f32`; the CPU must have NEON.
#[inline(always)]
unsafe fn column4(a: *const f32, n: usize, j: usize) -> float32x4_t {
    let c = [*a.add(j), *a.add(n + j), *a.add(2 * n + j), *a.add(3 * n + j)];
    vld1q_f32(c.as_ptr())
}

/// The dot products of `4 * B` rows (stride `n`) starting at `a` with `x[..n]`, lane `i` of
/// vector `b` for row `4 * b + i`, each row summed left to right with a multiply then an add.
///
/// # Safety
/// `a` must point at `4 * B` rows of `n` readable `f32` (stride `n`) and `xp` at `n`; the CPU
/// must have NEON.
#[inline(always)]
unsafe fn f32_block<const B: usize>(a: *const f32, n: usize, xp: *const f32) -> [float32x4_t; B] {
    let mut acc = [vdupq_n_f32(0.0); B];
    let mut j = 0;
    while j + 4 <= n {
        let xv = vld1q_f32(xp.add(j));
        for (b, acc) in acc.iter_mut().enumerate() {
            let p = a.add(4 * b * n + j);
            let mut c = [
                vld1q_f32(p),
                vld1q_f32(p.add(n)),
                vld1q_f32(p.add(2 * n)),
                vld1q_f32(p.add(3 * n)),
            ];
            transpose4(&mut c);
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<0>(c[0], xv));
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<1>(c[1], xv));
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<2>(c[2], xv));
            *acc = vaddq_f32(*acc, vmulq_laneq_f32::<3>(c[3], xv));
        }
        j += 4;
    }
    while j < n {
        let xv = vdupq_n_f32(*xp.add(j));
        for (b, acc) in acc.iter_mut().enumerate() {
            *acc = vaddq_f32(*acc, vmulq_f32(column4(a.add(4 * b * n), n, j), xv));
        }
        j += 1;
    }
    acc
}

/// Rows in blocks of 16 then 4; returns the first row not computed (the caller finishes the
/// tail with the scalar twin).
///
/// # Safety
/// NEON must be available, `x` non-empty and `w.len() >= out.len() * x.len()`.
#[target_feature(enable = "neon")]
unsafe fn f32_rows_neon(out: &mut [f32], w: &[f32], x: &[f32]) -> usize {
    let n = x.len();
    let rows = out.len();
    let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    let mut r = 0;
    while r + 16 <= rows {
        let acc = f32_block::<4>(wp.add(r * n), n, xp);
        for (b, v) in acc.iter().enumerate() {
            vst1q_f32(op.add(r + 4 * b), *v);
        }
        r += 16;
    }
    while r + 4 <= rows {
        let [acc] = f32_block::<1>(wp.add(r * n), n, xp);
        vst1q_f32(op.add(r), acc);
        r += 4;
    }
    r
}

/// `acc + sdot(a, b)`: lane `i` gains the sum of the products of bytes `4i..4i+4` of `a`, `b`.
///
/// Inline assembly because the `vdotq_s32` intrinsic is not stable yet (rust-lang/rust#117224).
///
/// # Safety
/// The CPU must have the `dotprod` extension; only inlined into `dotprod` functions.
#[inline(always)]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    core::arch::asm!(
        "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
        acc = inout(vreg) acc,
        a = in(vreg) a,
        b = in(vreg) b,
        options(pure, nomem, nostack, preserves_flags),
    );
    acc
}

/// The int8 dot products of `4 * B` rows with `x`, group by group, and the per-group
/// `fma(ival * w_scale, x_scale, val)` in group order; lane `i` of vector `b` is row `4b + i`.
/// With `DOT`, 16-value steps use `sdot`, else `smull`/`sadalp`.
///
/// `a` and `sa` point at the block's first row of weights and of scales.
///
/// # Safety
/// `a` must point at `4 * B` rows of `stride` readable `i8` weights, `sa` at their `groups`
/// scales per row, `xp` at `stride` input values and `xs` at `groups` input scales, with
/// `stride == groups * group`; the CPU must have NEON (and the dot-product extension when
/// `DOT`).
#[inline(always)]
unsafe fn q8_block<const B: usize, const DOT: bool>(
    a: *const i8,
    sa: *const f32,
    stride: usize,
    groups: usize,
    xp: *const i8,
    xs: *const f32,
    group: usize,
) -> [float32x4_t; B] {
    let mut val = [vdupq_n_f32(0.0); B];
    let mut first = 0;
    if group == 4 {
        first = q8_groups_of_4::<B, DOT>(&mut val, a, sa, stride, groups, xp, xs);
    }
    for g in first..groups {
        // acc[b][i]: four i32 partial sums of row 4b + i; the integers are exact, any order.
        let mut acc = [[vdupq_n_s32(0); 4]; B];
        let end = (g + 1) * group;
        let mut k = g * group;
        while k + 16 <= end {
            let xv = vld1q_s8(xp.add(k));
            for (b, acc) in acc.iter_mut().enumerate() {
                for (i, acc) in acc.iter_mut().enumerate() {
                    let wv = vld1q_s8(a.add((4 * b + i) * stride + k));
                    if DOT {
                        *acc = sdot(*acc, wv, xv);
                    } else {
                        // Products of int8 fit i16 (-128 * -128 = 16384); pair-add into i32.
                        let lo = vmull_s8(vget_low_s8(wv), vget_low_s8(xv));
                        *acc = vpadalq_s16(*acc, lo);
                        *acc = vpadalq_s16(*acc, vmull_high_s8(wv, xv));
                    }
                }
            }
            k += 16;
        }
        if k + 8 <= end {
            let xv = vld1_s8(xp.add(k));
            for (b, acc) in acc.iter_mut().enumerate() {
                for (i, acc) in acc.iter_mut().enumerate() {
                    let wv = vld1_s8(a.add((4 * b + i) * stride + k));
                    *acc = vpadalq_s16(*acc, vmull_s8(wv, xv));
                }
            }
            k += 8;
        }
        // The last `group % 8` values, if any, in plain integer arithmetic.
        let mut tail = [[0i32; 4]; B];
        while k < end {
            let xk = *xp.add(k) as i32;
            for (b, tail) in tail.iter_mut().enumerate() {
                for (i, t) in tail.iter_mut().enumerate() {
                    *t += *a.add((4 * b + i) * stride + k) as i32 * xk;
                }
            }
            k += 1;
        }
        let xscale = vdupq_n_f32(*xs.add(g));
        for b in 0..B {
            let [s0, s1, s2, s3] = acc[b];
            // Lane i: the sum of the four partial sums of row 4b + i.
            let ival = vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
            let ival = vcvtq_f32_s32(vaddq_s32(ival, vld1q_s32(tail[b].as_ptr())));
            let r = sa.add(4 * b * groups + g);
            let scales = [*r, *r.add(groups), *r.add(2 * groups), *r.add(3 * groups)];
            let ws = vld1q_f32(scales.as_ptr());
            // val + (ival * ws) * xs, rounded once: the scalar `fmaf(ival * ws, xs, val)`.
            val[b] = vfmaq_f32(val[b], vmulq_f32(ival, ws), xscale);
        }
    }
    val
}

/// The groups of 4 values (stories260K_q80's size: dim 64, hidden_dim 172), four groups per
/// 16-byte step: the integer sums of one row's four groups come out as the four lanes of one
/// vector, and a 4x4 transpose turns the block's rows into lanes again (the scales likewise),
/// then the groups are added in order as in [`q8_block`]. Returns the first group not added
/// (the last `groups % 4` are left to the caller).
///
/// # Safety
/// As [`q8_block`], for a group size of 4.
#[inline(always)]
unsafe fn q8_groups_of_4<const B: usize, const DOT: bool>(
    val: &mut [float32x4_t; B],
    a: *const i8,
    sa: *const f32,
    stride: usize,
    groups: usize,
    xp: *const i8,
    xs: *const f32,
) -> usize {
    let mut g = 0;
    while g + 4 <= groups {
        let k = 4 * g;
        let xv = vld1q_s8(xp.add(k));
        for (b, val) in val.iter_mut().enumerate() {
            let mut sums = [vdupq_n_f32(0.0); 4];
            let mut scales = [vdupq_n_f32(0.0); 4];
            for (i, (sum, scale)) in sums.iter_mut().zip(&mut scales).enumerate() {
                let row = 4 * b + i;
                let wv = vld1q_s8(a.add(row * stride + k));
                // Lane j: the integer sum of group g + j of this row.
                let s = if DOT {
                    sdot(vdupq_n_s32(0), wv, xv)
                } else {
                    let lo = vpaddlq_s16(vmull_s8(vget_low_s8(wv), vget_low_s8(xv)));
                    vpaddq_s32(lo, vpaddlq_s16(vmull_high_s8(wv, xv)))
                };
                // Bits moved as f32 lanes by the transpose, no arithmetic on them.
                *sum = vreinterpretq_f32_s32(s);
                *scale = vld1q_f32(sa.add(row * groups + g));
            }
            // Now lane i of sums[j] / scales[j] is group g + j of row 4b + i.
            transpose4(&mut sums);
            transpose4(&mut scales);
            for j in 0..4 {
                let ival = vcvtq_f32_s32(vreinterpretq_s32_f32(sums[j]));
                let xscale = vdupq_n_f32(*xs.add(g + j));
                *val = vfmaq_f32(*val, vmulq_f32(ival, scales[j]), xscale);
            }
        }
        g += 4;
    }
    g
}

/// Int8 rows in blocks of 8 then 4; returns the first row not computed.
///
/// # Safety
/// The CPU must have NEON, and with `DOT` the `dotprod` extension; the lengths must satisfy
/// `q8_shapes_ok`.
#[inline(always)]
unsafe fn q8_rows<const DOT: bool>(
    out: &mut [f32],
    wq: &[i8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> usize {
    let stride = xq.len();
    let groups = stride / group;
    let rows = out.len();
    let (wp, sp, xp, op) = (wq.as_ptr(), ws.as_ptr(), xq.as_ptr(), out.as_mut_ptr());
    let xsp = xs.as_ptr();
    let mut r = 0;
    while r + 8 <= rows {
        let (a, sa) = (wp.add(r * stride), sp.add(r * groups));
        let val = q8_block::<2, DOT>(a, sa, stride, groups, xp, xsp, group);
        vst1q_f32(op.add(r), val[0]);
        vst1q_f32(op.add(r + 4), val[1]);
        r += 8;
    }
    while r + 4 <= rows {
        let (a, sa) = (wp.add(r * stride), sp.add(r * groups));
        let [val] = q8_block::<1, DOT>(a, sa, stride, groups, xp, xsp, group);
        vst1q_f32(op.add(r), val);
        r += 4;
    }
    r
}

/// [`q8_rows`] with widening multiplies.
///
/// # Safety
/// NEON must be available; the lengths must satisfy `q8_shapes_ok`.
#[target_feature(enable = "neon")]
unsafe fn q8_rows_neon(
    out: &mut [f32],
    wq: &[i8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> usize {
    q8_rows::<false>(out, wq, ws, xq, xs, group)
}

/// [`q8_rows`] with `sdot`.
///
/// # Safety
/// NEON and `dotprod` must be available; the lengths must satisfy `q8_shapes_ok`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn q8_rows_dotprod(
    out: &mut [f32],
    wq: &[i8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> usize {
    q8_rows::<true>(out, wq, ws, xq, xs, group)
}

/// Sixteen signed int4 values (8 bytes at `p`, low nibble first) as sixteen int8.
///
/// # Safety
/// `p` must point at 8 readable bytes; the CPU must have NEON.
#[inline(always)]
unsafe fn unpack16(p: *const u8) -> int8x16_t {
    let b = vreinterpret_s8_u8(vld1_u8(p));
    let lo = vshr_n_s8::<4>(vshl_n_s8::<4>(b));
    let hi = vshr_n_s8::<4>(b);
    vcombine_s8(vzip1_s8(lo, hi), vzip2_s8(lo, hi))
}

/// Int4 rows in blocks of 4 (groups a multiple of 16); returns the first row not computed.
/// Per group: the exact integer dot product of 16 values per step (`sdot` with `DOT`, else
/// widening multiplies), then `fma(ival * w_scale, x_scale, val)` in group order.
///
/// # Safety
/// The CPU must have NEON (and `dotprod` with `DOT`); the lengths must satisfy `q4_shapes_ok`.
#[inline(always)]
unsafe fn q4_rows<const DOT: bool>(
    out: &mut [f32],
    wq: &[u8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> usize {
    let stride = xq.len();
    let row_bytes = stride / 2;
    let groups = stride / group;
    let rows = out.len();
    let (wp, sp, xp, op) = (wq.as_ptr(), ws.as_ptr(), xq.as_ptr(), out.as_mut_ptr());
    let mut r = 0;
    while r + 4 <= rows {
        let (a, sa) = (wp.add(r * row_bytes), sp.add(r * groups));
        let mut val = vdupq_n_f32(0.0);
        for g in 0..groups {
            let mut acc = [vdupq_n_s32(0); 4];
            let mut k = g * group;
            while k < (g + 1) * group {
                let xv = vld1q_s8(xp.add(k));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let wv = unpack16(a.add(i * row_bytes + k / 2));
                    if DOT {
                        *acc = sdot(*acc, wv, xv);
                    } else {
                        *acc = vpadalq_s16(*acc, vmull_s8(vget_low_s8(wv), vget_low_s8(xv)));
                        *acc = vpadalq_s16(*acc, vmull_high_s8(wv, xv));
                    }
                }
                k += 16;
            }
            let [s0, s1, s2, s3] = acc;
            let ival = vcvtq_f32_s32(vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3)));
            let rs = sa.add(g);
            let scales = [*rs, *rs.add(groups), *rs.add(2 * groups), *rs.add(3 * groups)];
            let wsv = vld1q_f32(scales.as_ptr());
            val = vfmaq_f32(val, vmulq_f32(ival, wsv), vdupq_n_f32(*xs.as_ptr().add(g)));
        }
        vst1q_f32(op.add(r), val);
        r += 4;
    }
    r
}

/// [`q4_rows`] with widening multiplies.
///
/// # Safety
/// NEON must be available; the lengths must satisfy `q4_shapes_ok`.
#[target_feature(enable = "neon")]
unsafe fn q4_rows_neon(
    out: &mut [f32],
    wq: &[u8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> usize {
    q4_rows::<false>(out, wq, ws, xq, xs, group)
}

/// [`q4_rows`] with `sdot`.
///
/// # Safety
/// NEON and `dotprod` must be available; the lengths must satisfy `q4_shapes_ok`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn q4_rows_dotprod(
    out: &mut [f32],
    wq: &[u8],
    ws: &[f32],
    xq: &[i8],
    xs: &[f32],
    group: usize,
) -> usize {
    q4_rows::<true>(out, wq, ws, xq, xs, group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// The NEON kernels this CPU runs. `ESP_LLM_EXPECT_DOTPROD` set (the CI script does, under
    /// qemu's default `max` CPU) makes a missing `dotprod` variant an error, not a skip.
    fn all() -> Vec<&'static dyn Kernels> {
        let mut v: Vec<&'static dyn Kernels> = Vec::new();
        v.push(Neon::detect().expect("every aarch64 Linux CPU has NEON"));
        match NeonDot::detect() {
            Some(k) => v.push(k),
            None => assert!(
                std::env::var_os("ESP_LLM_EXPECT_DOTPROD").is_none(),
                "ESP_LLM_EXPECT_DOTPROD is set but the CPU has no dotprod"
            ),
        }
        v
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    fn floats(len: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(-2.0f32..2.0, len)
    }

    /// Int8 values with the extremes -128 and 127 frequent.
    fn int8s(len: usize) -> impl Strategy<Value = Vec<i8>> {
        proptest::collection::vec(prop_oneof![Just(-128i8), Just(127i8), any::<i8>()], len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn f32_matches_scalar_bit_for_bit(
            (rows, _n, w, x) in (1usize..70, 1usize..45).prop_flat_map(|(rows, n)| {
                (Just(rows), Just(n), floats(rows * n), floats(n))
            })
        ) {
            let mut want = alloc::vec![0.0f32; rows];
            Scalar.matmul_f32(&mut want, &w, &x);
            for k in all() {
                let mut got = alloc::vec![f32::NAN; rows];
                k.matmul_f32(&mut got, &w, &x);
                prop_assert_eq!(bits(&got), bits(&want), "kernel {}", k.name());
            }
        }

        #[test]
        fn q8_matches_scalar_bit_for_bit(
            (rows, group, groups, wq, ws, xq, xs) in
                (1usize..40, prop_oneof![Just(4usize), 1usize..=64], 1usize..10)
                .prop_flat_map(|(rows, group, groups)| {
                    let stride = group * groups;
                    (
                        Just(rows), Just(group), Just(groups),
                        int8s(rows * stride),
                        proptest::collection::vec(0.0f32..0.05, rows * groups),
                        int8s(stride),
                        proptest::collection::vec(0.0f32..0.05, groups),
                    )
                })
        ) {
            let _ = groups;
            let mut want = alloc::vec![0.0f32; rows];
            Scalar.matmul_q8(&mut want, &wq, &ws, &xq, &xs, group);
            for k in all() {
                let mut got = alloc::vec![f32::NAN; rows];
                k.matmul_q8(&mut got, &wq, &ws, &xq, &xs, group);
                prop_assert_eq!(bits(&got), bits(&want), "kernel {}", k.name());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every int4 group size (multiples of 16), row tails of 1-3, any nibbles (-8 too).
        #[test]
        fn q4_matches_scalar_bit_for_bit(
            (rows, group, wq, ws, xq, xs) in
                (1usize..30, (1usize..6).prop_map(|m| 16 * m), 1usize..5)
                .prop_flat_map(|(rows, group, groups)| {
                    let stride = group * groups;
                    (
                        Just(rows), Just(group),
                        proptest::collection::vec(any::<u8>(), rows * stride / 2),
                        proptest::collection::vec(0.0f32..0.05, rows * groups),
                        int8s(stride),
                        proptest::collection::vec(0.0f32..0.05, groups),
                    )
                })
        ) {
            let mut want = alloc::vec![0.0f32; rows];
            Scalar.matmul_q4(&mut want, &wq, &ws, &xq, &xs, group);
            for k in all() {
                let mut got = alloc::vec![f32::NAN; rows];
                k.matmul_q4(&mut got, &wq, &ws, &xq, &xs, group);
                prop_assert_eq!(bits(&got), bits(&want), "kernel {}", k.name());
            }
        }
    }

    #[test]
    fn f32_large_block_matches_scalar() {
        // 16-row blocks plus 4-row blocks plus a scalar tail, with a column tail.
        let (rows, n) = (16 * 3 + 4 + 3, 4 * 9 + 3);
        let w: Vec<f32> = (0..rows * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let x: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32 - 14.0) / 3.0).collect();
        let mut want = alloc::vec![0.0f32; rows];
        Scalar.matmul_f32(&mut want, &w, &x);
        for k in all() {
            let mut got = alloc::vec![f32::NAN; rows];
            k.matmul_f32(&mut got, &w, &x);
            assert_eq!(bits(&got), bits(&want), "{}", k.name());
        }
    }

    #[test]
    fn extreme_int8_values_are_exact() {
        // All -128 (the largest i16 product, 16384) and all 127 against -128, over groups that
        // take every step size: 16, 8 and the scalar tail (16 + 8 + 5 = 29), and groups of 4
        // (four at a time, then one).
        for (wv, xv) in [(-128i8, -128i8), (127, -128), (-128, 127)] {
            for group in [4, 16, 29, 32, 64] {
                let (rows, groups) = (13, 5);
                let stride = group * groups;
                let wq = alloc::vec![wv; rows * stride];
                let ws = alloc::vec![0.5f32; rows * groups];
                let xq = alloc::vec![xv; stride];
                let xs = alloc::vec![0.25f32; groups];
                let mut want = alloc::vec![0.0f32; rows];
                Scalar.matmul_q8(&mut want, &wq, &ws, &xq, &xs, group);
                let exact = (wv as i32 * xv as i32 * stride as i32) as f32 * 0.5 * 0.25;
                assert_eq!(want[0], exact, "scalar twin, group {group}");
                for k in all() {
                    let mut got = alloc::vec![0.0f32; rows];
                    k.matmul_q8(&mut got, &wq, &ws, &xq, &xs, group);
                    assert_eq!(bits(&got), bits(&want), "{} group {group}", k.name());
                }
            }
        }
    }

    #[test]
    fn best_and_available_put_the_neon_kernels_first() {
        let want = if NeonDot::detect().is_some() { "neon-dotprod" } else { "neon" };
        assert_eq!(super::super::best().name(), want);
        let names: Vec<&str> = super::super::available().iter().map(|k| k.name()).collect();
        assert_eq!(names[0], want);
        assert!(names.contains(&"neon") && names.ends_with(&["unrolled", "scalar"]), "{names:?}");
    }

    #[test]
    fn bad_shapes_fall_back_to_scalar() {
        // A group that does not divide the row: the scalar twin's behaviour, not a NEON read
        // past the end.
        let (wq, ws, xq, xs) = (
            alloc::vec![1i8; 8 * 10],
            alloc::vec![1.0f32; 8 * 3],
            alloc::vec![1i8; 10],
            alloc::vec![1.0f32; 3],
        );
        let mut want = alloc::vec![0.0f32; 8];
        Scalar.matmul_q8(&mut want, &wq, &ws, &xq, &xs, 3);
        for k in all() {
            let mut got = alloc::vec![0.0f32; 8];
            k.matmul_q8(&mut got, &wq, &ws, &xq, &xs, 3);
            assert_eq!(bits(&got), bits(&want), "{}", k.name());
        }
    }
}
