//! x86_64 SIMD kernels: AVX2+FMA and AVX-512, bit-identical to [`Scalar`].
//!
//! Exactness comes first: the golden stories have positions whose top-2 logit margin is 8e-5,
//! so these kernels must produce the very same floats as the scalar twin. They therefore
//! vectorize *across output rows*: each SIMD lane owns one row and adds that row's products in
//! the scalar order (left to right, multiply then add, no FMA for f32). A block of 8 (AVX2) or
//! 16 (AVX-512) rows is loaded 8 columns at a time and transposed in registers, so that one
//! vector holds column `j` of every row of the block.
//!
//! The int8 kernel computes each group's integer dot product with `vpmaddwd` (exact in any
//! order), and accumulates the groups per row in order with `fma(ival * w_scale, x_scale, val)`
//! across 8 rows at once, exactly as the scalar twin (and the reference runq.c build) does.
//!
//! The int4 kernel is the int8 one with each 8-byte step unpacked into 16 signed int8 values
//! first (mask and shift the nibbles, interleave low/high, sign-extend with `(v ^ 8) - 8`).
//!
//! Measured with criterion on the 2-vCPU AMD EPYC (AVX-512) host, one thread (see
//! docs/performance.md): f32 288x288 scalar 0.75, avx2 6.1, avx512 6.4-6.8 G multiply-adds/s;
//! the 37 MB stories15M classifier streams at 2.6 GiB/s scalar, 9.0 GiB/s avx2; int8 768x288
//! (groups of 32) scalar 2.0, avx2 13.9-17.8 G/s.

use super::{
    f32_shapes_ok, interleaved, interleaved_x86, q4_shapes_ok, q8_shapes_ok, Kernels, Scalar,
};
use core::arch::x86_64::*;

/// AVX2 + FMA kernels (8 rows per vector).
#[derive(Debug, Default, Clone, Copy)]
pub struct Avx2 {
    _private: (),
}

/// AVX-512F kernels (16 rows per vector for f32; int8 as [`Avx2`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Avx512 {
    _private: (),
}

static AVX2: Avx2 = Avx2 { _private: () };
static AVX512: Avx512 = Avx512 { _private: () };

impl Avx2 {
    /// The kernels, if this CPU has AVX2 and FMA.
    #[cfg(any(test, feature = "std"))]
    pub fn detect() -> Option<&'static Self> {
        (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
            .then_some(&AVX2)
    }

    /// The kernels, if the build targets AVX2 and FMA (no run-time detection without `std`).
    #[cfg(not(any(test, feature = "std")))]
    pub fn detect() -> Option<&'static Self> {
        (cfg!(target_feature = "avx2") && cfg!(target_feature = "fma")).then_some(&AVX2)
    }
}

impl Avx512 {
    /// The kernels, if this CPU has AVX-512F, AVX2 and FMA.
    #[cfg(any(test, feature = "std"))]
    pub fn detect() -> Option<&'static Self> {
        (Avx2::detect().is_some() && std::is_x86_feature_detected!("avx512f")).then_some(&AVX512)
    }

    /// The kernels, if the build targets AVX-512F, AVX2 and FMA.
    #[cfg(not(any(test, feature = "std")))]
    pub fn detect() -> Option<&'static Self> {
        (Avx2::detect().is_some() && cfg!(target_feature = "avx512f")).then_some(&AVX512)
    }
}

impl Kernels for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        if !f32_shapes_ok(out, w, x) {
            return Scalar.matmul_f32(out, w, x);
        }
        // SAFETY: `Avx2` is only constructed when the CPU has AVX2 and FMA; lengths checked.
        let done = unsafe { f32_rows_avx2(out, w, x, 0) };
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
        if !q8_shapes_ok(out, wq, ws, xq, xs, group) || !group.is_multiple_of(16) {
            return Scalar.matmul_q8(out, wq, ws, xq, xs, group);
        }
        // SAFETY: `Avx2` is only constructed when the CPU has AVX2 and FMA; lengths checked.
        let done = unsafe { q8_rows_avx2(out, wq, ws, xq, xs, group) };
        let (stride, groups) = (xq.len(), xq.len() / group);
        Scalar.matmul_q8(
            &mut out[done..],
            &wq[done * stride..],
            &ws[done * groups..],
            xq,
            xs,
            group,
        );
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
        // SAFETY: `Avx2` is only constructed when the CPU has AVX2 and FMA; lengths checked.
        let done = unsafe { q4_rows_avx2(out, wq, ws, xq, xs, group) };
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

    fn prefers_interleaved(&self) -> bool {
        true
    }

    fn matmul_f32_interleaved(&self, out: &mut [f32], w: &[f32], x: &[f32], first: usize) {
        if !interleaved::shapes_ok(out, w, x, first) {
            return interleaved::matmul(out, w, x, first);
        }
        // SAFETY: `Avx2` is only constructed when the CPU has AVX2; lengths checked.
        unsafe { interleaved_x86::matmul_avx2(out, w, x, first) }
    }
}

/// Largest f32 matmul call (in weights) the AVX-512 loop takes; larger ones use AVX2's.
const AVX512_MAX_FLOATS: usize = 32 * 1024;

impl Kernels for Avx512 {
    fn name(&self) -> &'static str {
        "avx512"
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        if !f32_shapes_ok(out, w, x) {
            return Scalar.matmul_f32(out, w, x);
        }
        // The 16-row AVX-512 loop is ~10% faster than the AVX2 one on cache-resident
        // matrices but ~20% slower when streaming from memory (measured on this host's AMD
        // EPYC, which splits 512-bit shuffles), so it only takes small calls.
        let done = if out.len() * x.len() <= AVX512_MAX_FLOATS {
            // SAFETY: `Avx512` is only constructed when the CPU has AVX-512F, AVX2 and FMA.
            unsafe { f32_rows_avx512(out, w, x) }
        } else {
            0
        };
        // SAFETY: as above (AVX-512 implies the AVX2 path's features were detected too).
        let done = unsafe { f32_rows_avx2(out, w, x, done) };
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
        AVX2.matmul_q8(out, wq, ws, xq, xs, group)
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
        AVX2.matmul_q4(out, wq, ws, xq, xs, group)
    }

    fn prefers_interleaved(&self) -> bool {
        true
    }

    fn matmul_f32_interleaved(&self, out: &mut [f32], w: &[f32], x: &[f32], first: usize) {
        if !interleaved::shapes_ok(out, w, x, first) {
            return interleaved::matmul(out, w, x, first);
        }
        // SAFETY: `Avx512` is only constructed when the CPU has AVX-512F; lengths checked.
        unsafe { interleaved_x86::matmul_avx512(out, w, x, first) }
    }
}

/// How many row blocks ahead the f32 kernels prefetch.
const PF_BLOCKS: usize = 1;

/// Prefetches `bytes` bytes from `p` into the caches, one request per 64-byte line.
///
/// The kernels walk a block of rows a few cache lines per row at a time: too many short
/// streams for the hardware prefetchers, so each step asks for the same number of bytes of the
/// *next* block, read linearly (measured: +60% single-thread tokens/s on the 15M shape).
/// Prefetching is only a hint: addresses past the weights are harmless (wrapping arithmetic,
/// never dereferenced).
///
/// # Safety
/// The CPU must have SSE (every x86_64 does); `p` is never dereferenced.
#[inline(always)]
unsafe fn prefetch_span(p: *const u8, bytes: usize) {
    let mut off = 0;
    while off < bytes {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8);
        off += 64;
    }
}

/// Transposes the 8x8 block whose rows are `r` in place: afterwards `r[k]` holds column `k`.
///
/// # Safety
/// The CPU must have AVX (callers run inside `#[target_feature(enable = "avx2")]` or later).
#[inline(always)]
unsafe fn transpose8(r: &mut [__m256; 8]) {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    r[0] = _mm256_permute2f128_ps::<0x20>(s0, s4);
    r[1] = _mm256_permute2f128_ps::<0x20>(s1, s5);
    r[2] = _mm256_permute2f128_ps::<0x20>(s2, s6);
    r[3] = _mm256_permute2f128_ps::<0x20>(s3, s7);
    r[4] = _mm256_permute2f128_ps::<0x31>(s0, s4);
    r[5] = _mm256_permute2f128_ps::<0x31>(s1, s5);
    r[6] = _mm256_permute2f128_ps::<0x31>(s2, s6);
    r[7] = _mm256_permute2f128_ps::<0x31>(s3, s7);
}

/// Rows `first..` of `out` in blocks of 16 then 8 rows; returns the first row not computed
/// (the caller finishes the tail with the scalar twin).
///
/// # Safety
/// AVX2 must be available, `x` non-empty and `w.len() >= out.len() * x.len()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_rows_avx2(out: &mut [f32], w: &[f32], x: &[f32], first: usize) -> usize {
    let n = x.len();
    let rows = out.len();
    let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    let mut r = first;
    // Two blocks of 8 rows at once: two independent add chains hide the add latency.
    while r + 16 <= rows {
        let a = wp.add(r * n);
        let b = wp.add((r + 8) * n);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let next = a.wrapping_add(PF_BLOCKS * 16 * n) as *const u8;
        let mut j = 0;
        while j + 8 <= n {
            prefetch_span(next.wrapping_add(16 * 4 * j), 16 * 4 * 8);
            let mut ra = [_mm256_setzero_ps(); 8];
            let mut rb = [_mm256_setzero_ps(); 8];
            for i in 0..8 {
                ra[i] = _mm256_loadu_ps(a.add(i * n + j));
                rb[i] = _mm256_loadu_ps(b.add(i * n + j));
            }
            transpose8(&mut ra);
            transpose8(&mut rb);
            for k in 0..8 {
                let xv = _mm256_set1_ps(*xp.add(j + k));
                acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(ra[k], xv));
                acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(rb[k], xv));
            }
            j += 8;
        }
        while j < n {
            let xv = _mm256_set1_ps(*xp.add(j));
            acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(column8(a, n, j), xv));
            acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(column8(b, n, j), xv));
            j += 1;
        }
        _mm256_storeu_ps(op.add(r), acc0);
        _mm256_storeu_ps(op.add(r + 8), acc1);
        r += 16;
    }
    while r + 8 <= rows {
        let a = wp.add(r * n);
        let mut acc = _mm256_setzero_ps();
        let next = a.wrapping_add(8 * n) as *const u8;
        let mut j = 0;
        while j + 8 <= n {
            prefetch_span(next.wrapping_add(8 * 4 * j), 8 * 4 * 8);
            let mut ra = [_mm256_setzero_ps(); 8];
            for (i, v) in ra.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(a.add(i * n + j));
            }
            transpose8(&mut ra);
            for (k, col) in ra.iter().enumerate() {
                acc = _mm256_add_ps(acc, _mm256_mul_ps(*col, _mm256_set1_ps(*xp.add(j + k))));
            }
            j += 8;
        }
        while j < n {
            let xv = _mm256_set1_ps(*xp.add(j));
            acc = _mm256_add_ps(acc, _mm256_mul_ps(column8(a, n, j), xv));
            j += 1;
        }
        _mm256_storeu_ps(op.add(r), acc);
        r += 8;
    }
    r
}

/// Column `j` of the 8 rows (stride `n`) starting at `a`.
///
/// # Safety
/// `a.add(7 * n + j)` and the seven column reads before it must be in one allocation of
/// initialized `f32`; the CPU must have AVX.
#[inline(always)]
unsafe fn column8(a: *const f32, n: usize, j: usize) -> __m256 {
    _mm256_set_ps(
        *a.add(7 * n + j),
        *a.add(6 * n + j),
        *a.add(5 * n + j),
        *a.add(4 * n + j),
        *a.add(3 * n + j),
        *a.add(2 * n + j),
        *a.add(n + j),
        *a.add(j),
    )
}

/// `[lo | hi]` with AVX-512F only (`_mm512_insertf32x8` would need AVX-512DQ, and a call to
/// an intrinsic whose feature is not enabled here is not inlined: it ran 3x slower).
///
/// # Safety
/// The CPU must have AVX-512F.
#[inline(always)]
unsafe fn join256(lo: __m256, hi: __m256) -> __m512 {
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
        _mm256_castps_pd(hi),
    ))
}

/// Rows in blocks of 16, one row per AVX-512 lane; returns the first row not computed.
///
/// Each step loads 8 columns of 16 rows as 8 vectors `[row i | row i+8]`, transposes both
/// halves at once with in-lane shuffles, and ends with lanes ordered rows
/// `0-3, 8-11, 4-7, 12-15`; the accumulator is put back in row order before the store.
///
/// # Safety
/// AVX-512F must be available, `x` non-empty and `w.len() >= out.len() * x.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn f32_rows_avx512(out: &mut [f32], w: &[f32], x: &[f32]) -> usize {
    let n = x.len();
    let rows = out.len();
    let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    let mut r = 0;
    while r + 16 <= rows {
        let a = wp.add(r * n);
        let mut acc = _mm512_setzero_ps();
        let next = a.wrapping_add(PF_BLOCKS * 16 * n) as *const u8;
        let mut j = 0;
        while j + 8 <= n {
            prefetch_span(next.wrapping_add(16 * 4 * j), 16 * 4 * 8);
            let mut z = [_mm512_setzero_ps(); 8];
            for (i, v) in z.iter_mut().enumerate() {
                let lo = _mm256_loadu_ps(a.add(i * n + j));
                let hi = _mm256_loadu_ps(a.add((i + 8) * n + j));
                *v = join256(lo, hi);
            }
            let t0 = _mm512_unpacklo_ps(z[0], z[1]);
            let t1 = _mm512_unpackhi_ps(z[0], z[1]);
            let t2 = _mm512_unpacklo_ps(z[2], z[3]);
            let t3 = _mm512_unpackhi_ps(z[2], z[3]);
            let t4 = _mm512_unpacklo_ps(z[4], z[5]);
            let t5 = _mm512_unpackhi_ps(z[4], z[5]);
            let t6 = _mm512_unpacklo_ps(z[6], z[7]);
            let t7 = _mm512_unpackhi_ps(z[6], z[7]);
            // s0 = [rows 0-3 col 0 | rows 0-3 col 4 | rows 8-11 col 0 | rows 8-11 col 4], ...
            let s0 = _mm512_shuffle_ps::<0x44>(t0, t2);
            let s1 = _mm512_shuffle_ps::<0xEE>(t0, t2);
            let s2 = _mm512_shuffle_ps::<0x44>(t1, t3);
            let s3 = _mm512_shuffle_ps::<0xEE>(t1, t3);
            let s4 = _mm512_shuffle_ps::<0x44>(t4, t6);
            let s5 = _mm512_shuffle_ps::<0xEE>(t4, t6);
            let s6 = _mm512_shuffle_ps::<0x44>(t5, t7);
            let s7 = _mm512_shuffle_ps::<0xEE>(t5, t7);
            // [a.L0, a.L2, b.L0, b.L2] = column k (0x88) or k+4 (0xDD), lanes 0-3,8-11,4-7,12-15.
            let cols = [
                _mm512_shuffle_f32x4::<0x88>(s0, s4),
                _mm512_shuffle_f32x4::<0x88>(s1, s5),
                _mm512_shuffle_f32x4::<0x88>(s2, s6),
                _mm512_shuffle_f32x4::<0x88>(s3, s7),
                _mm512_shuffle_f32x4::<0xDD>(s0, s4),
                _mm512_shuffle_f32x4::<0xDD>(s1, s5),
                _mm512_shuffle_f32x4::<0xDD>(s2, s6),
                _mm512_shuffle_f32x4::<0xDD>(s3, s7),
            ];
            for (k, col) in cols.iter().enumerate() {
                acc = _mm512_add_ps(acc, _mm512_mul_ps(*col, _mm512_set1_ps(*xp.add(j + k))));
            }
            j += 8;
        }
        // Back to row order: [L0, L2, L1, L3].
        acc = _mm512_shuffle_f32x4::<0xD8>(acc, acc);
        while j < n {
            let col = join256(column8(a, n, j), column8(a.add(8 * n), n, j));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(col, _mm512_set1_ps(*xp.add(j))));
            j += 1;
        }
        _mm512_storeu_ps(op.add(r), acc);
        r += 16;
    }
    r
}

/// Sums each of the 8 vectors of 8 i32: lane `i` of the result is the sum of `s[i]`.
///
/// # Safety
/// The CPU must have AVX2.
#[inline(always)]
unsafe fn hsum8x8(s: &[__m256i; 8]) -> __m256i {
    let a01 = _mm256_hadd_epi32(s[0], s[1]);
    let a23 = _mm256_hadd_epi32(s[2], s[3]);
    let a45 = _mm256_hadd_epi32(s[4], s[5]);
    let a67 = _mm256_hadd_epi32(s[6], s[7]);
    let b0 = _mm256_hadd_epi32(a01, a23);
    let b1 = _mm256_hadd_epi32(a45, a67);
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(b0, b1),
        _mm256_permute2x128_si256::<0x31>(b0, b1),
    )
}

/// Int8 rows in blocks of 8 (groups a multiple of 16); returns the first row not computed.
///
/// # Safety
/// AVX2 and FMA must be available; the lengths must satisfy `q8_shapes_ok` and
/// `group % 16 == 0`.
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_rows_avx2(
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
    let mut r = 0;
    while r + 8 <= rows {
        let a = wp.add(r * stride);
        let sa = sp.add(r * groups);
        let mut val = _mm256_setzero_ps();
        for g in 0..groups {
            let z = _mm256_setzero_si256();
            let (mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7) =
                (z, z, z, z, z, z, z, z);
            let mut k = g * group;
            let next = a.wrapping_add(8 * stride) as *const u8;
            while k < (g + 1) * group {
                prefetch_span(next.wrapping_add(8 * k), 8 * 16);
                let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.add(k) as *const __m128i));
                // Row i's 16 int8 values widened to i16, multiplied and pair-summed to i32.
                let dot = |i: usize| {
                    let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(
                        a.add(i * stride + k) as *const __m128i
                    ));
                    _mm256_madd_epi16(wv, xv)
                };
                s0 = _mm256_add_epi32(s0, dot(0));
                s1 = _mm256_add_epi32(s1, dot(1));
                s2 = _mm256_add_epi32(s2, dot(2));
                s3 = _mm256_add_epi32(s3, dot(3));
                s4 = _mm256_add_epi32(s4, dot(4));
                s5 = _mm256_add_epi32(s5, dot(5));
                s6 = _mm256_add_epi32(s6, dot(6));
                s7 = _mm256_add_epi32(s7, dot(7));
                k += 16;
            }
            let s = [s0, s1, s2, s3, s4, s5, s6, s7];
            let ival = _mm256_cvtepi32_ps(hsum8x8(&s));
            let scales = _mm256_set_ps(
                *sa.add(7 * groups + g),
                *sa.add(6 * groups + g),
                *sa.add(5 * groups + g),
                *sa.add(4 * groups + g),
                *sa.add(3 * groups + g),
                *sa.add(2 * groups + g),
                *sa.add(groups + g),
                *sa.add(g),
            );
            val = _mm256_fmadd_ps(
                _mm256_mul_ps(ival, scales),
                _mm256_set1_ps(*xs.get_unchecked(g)),
                val,
            );
        }
        _mm256_storeu_ps(op.add(r), val);
        r += 8;
    }
    r
}

/// Sixteen signed int4 values (8 bytes at `p`, low nibble first) as sixteen int8.
///
/// # Safety
/// `p` must point at 8 readable bytes; the CPU must have SSE2 (every x86_64 does).
#[inline(always)]
unsafe fn unpack16(p: *const u8) -> __m128i {
    let b = _mm_loadl_epi64(p as *const __m128i);
    let m = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(b, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
    let v = _mm_unpacklo_epi8(lo, hi);
    let eight = _mm_set1_epi8(8);
    _mm_sub_epi8(_mm_xor_si128(v, eight), eight)
}

/// Int4 rows in blocks of 8 (groups a multiple of 16); returns the first row not computed.
///
/// # Safety
/// AVX2 and FMA must be available; the lengths must satisfy `q4_shapes_ok`.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4_rows_avx2(
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
    while r + 8 <= rows {
        let a = wp.add(r * row_bytes);
        let sa = sp.add(r * groups);
        let mut val = _mm256_setzero_ps();
        let next = a.wrapping_add(8 * row_bytes);
        for g in 0..groups {
            let mut s = [_mm256_setzero_si256(); 8];
            let mut k = g * group;
            while k < (g + 1) * group {
                prefetch_span(next.wrapping_add(4 * k), 8 * 8);
                let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.add(k) as *const __m128i));
                for (i, s) in s.iter_mut().enumerate() {
                    let wv = _mm256_cvtepi8_epi16(unpack16(a.add(i * row_bytes + k / 2)));
                    *s = _mm256_add_epi32(*s, _mm256_madd_epi16(wv, xv));
                }
                k += 16;
            }
            let ival = _mm256_cvtepi32_ps(hsum8x8(&s));
            let scales = _mm256_set_ps(
                *sa.add(7 * groups + g),
                *sa.add(6 * groups + g),
                *sa.add(5 * groups + g),
                *sa.add(4 * groups + g),
                *sa.add(3 * groups + g),
                *sa.add(2 * groups + g),
                *sa.add(groups + g),
                *sa.add(g),
            );
            val = _mm256_fmadd_ps(
                _mm256_mul_ps(ival, scales),
                _mm256_set1_ps(*xs.get_unchecked(g)),
                val,
            );
        }
        _mm256_storeu_ps(op.add(r), val);
        r += 8;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn all() -> Vec<&'static dyn Kernels> {
        let mut v: Vec<&'static dyn Kernels> = Vec::new();
        if let Some(k) = Avx2::detect() {
            v.push(k);
        }
        if let Some(k) = Avx512::detect() {
            v.push(k);
        }
        assert!(!v.is_empty() || !std::is_x86_feature_detected!("avx2"), "AVX2 not picked");
        v
    }

    fn floats(len: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(-2.0f32..2.0, len)
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
                let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(gb, wb, "kernel {}", k.name());
            }
        }

        #[test]
        fn q8_matches_scalar_bit_for_bit(
            (rows, group, groups, wq, ws, xq, xs) in
                (1usize..40, prop::sample::select(alloc::vec![4usize, 8, 16, 32, 48, 64]), 1usize..6)
                .prop_flat_map(|(rows, group, groups)| {
                    let stride = group * groups;
                    (
                        Just(rows), Just(group), Just(groups),
                        proptest::collection::vec(any::<i8>(), rows * stride),
                        proptest::collection::vec(0.0f32..0.05, rows * groups),
                        proptest::collection::vec(-127i8..=127, stride),
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
                let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(gb, wb, "kernel {}", k.name());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every group size int4 allows (multiples of 16), odd row counts (tails of 1-7 rows),
        /// any nibble pattern (-8 included) and any input.
        #[test]
        fn q4_matches_scalar_bit_for_bit(
            (rows, group, wq, ws, xq, xs) in
                (1usize..40, (1usize..6).prop_map(|m| 16 * m), 1usize..5)
                .prop_flat_map(|(rows, group, groups)| {
                    let stride = group * groups;
                    (
                        Just(rows), Just(group),
                        proptest::collection::vec(any::<u8>(), rows * stride / 2),
                        proptest::collection::vec(0.0f32..0.05, rows * groups),
                        proptest::collection::vec(any::<i8>(), stride),
                        proptest::collection::vec(0.0f32..0.05, groups),
                    )
                })
        ) {
            let mut want = alloc::vec![0.0f32; rows];
            Scalar.matmul_q4(&mut want, &wq, &ws, &xq, &xs, group);
            for k in all() {
                let mut got = alloc::vec![f32::NAN; rows];
                k.matmul_q4(&mut got, &wq, &ws, &xq, &xs, group);
                let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(gb, wb, "kernel {}", k.name());
            }
        }
    }

    #[test]
    fn extreme_int8_values_are_exact() {
        // -128 weights and inputs, the cases where sign tricks (maddubs) would overflow.
        let (rows, group) = (9, 32);
        let wq = alloc::vec![-128i8; rows * 64];
        let ws = alloc::vec![0.5f32; rows * 2];
        let xq = alloc::vec![-128i8; 64];
        let xs = alloc::vec![0.25f32; 2];
        let mut want = alloc::vec![0.0f32; rows];
        Scalar.matmul_q8(&mut want, &wq, &ws, &xq, &xs, group);
        for k in all() {
            let mut got = alloc::vec![0.0f32; rows];
            k.matmul_q8(&mut got, &wq, &ws, &xq, &xs, group);
            assert_eq!(got, want, "{}", k.name());
        }
    }
}
