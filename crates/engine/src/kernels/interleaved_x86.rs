//! AVX-512 and AVX2 f32 matmuls over the row-interleaved layout ([`super::interleaved`]).
//!
//! One block of 16 rows is one linear stream: step `j` loads column `j` of the 16 rows (64
//! contiguous bytes) and adds `w * x[j]` to the block's accumulator, lane by lane, multiply
//! then add, no FMA: each lane is its row's left-to-right chain, as in the scalar twin, with
//! no shuffles at all. Two blocks run at once for two independent add chains.

use super::interleaved::{self, LANES};
use core::arch::x86_64::*;

/// The block-aligned middle of rows `first..first + len` of a `(rows, n)` packed matrix: the
/// full blocks `b0..b1` inside it (`b0 >= b1` when there is none).
fn blocks(first: usize, len: usize, rows: usize) -> (usize, usize) {
    (first.div_ceil(LANES), ((first + len) / LANES).min(rows / LANES))
}

/// Runs `simd` on the full blocks of the rows `first..first + out.len()` and the scalar twin
/// on the rows before and after them.
fn split(
    out: &mut [f32],
    w: &[f32],
    x: &[f32],
    first: usize,
    simd: impl FnOnce(&mut [f32], usize, usize),
) {
    let rows = w.len() / x.len();
    let (b0, b1) = blocks(first, out.len(), rows);
    if b0 >= b1 {
        return interleaved::matmul(out, w, x, first);
    }
    let (start, end) = (b0 * LANES, b1 * LANES);
    let (head, rest) = out.split_at_mut(start - first);
    let (mid, tail) = rest.split_at_mut(end - start);
    interleaved::matmul(head, w, x, first);
    simd(mid, b0, b1);
    interleaved::matmul(tail, w, x, end);
}

/// Step `j` of a pair of blocks asks for the same two lines of the next pair (`next`): the
/// pair is read once over its `n` steps. Only a hint: `next` may point past the weights
/// (wrapping arithmetic, never dereferenced).
#[inline(always)]
fn prefetch_next(next: *const f32, j: usize) {
    let p = next.wrapping_add(2 * LANES * j) as *const i8;
    // SAFETY: prefetching is a hint that never faults; every x86_64 has SSE.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(p);
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
    }
}

/// [`super::Kernels::matmul_f32_interleaved`] with AVX-512F.
///
/// # Safety
/// The CPU must have AVX-512F; the lengths must satisfy [`interleaved::shapes_ok`].
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn matmul_avx512(out: &mut [f32], w: &[f32], x: &[f32], first: usize) {
    split(out, w, x, first, |mid, b0, b1| {
        // SAFETY: the caller's contract; `mid` holds the rows of blocks b0..b1.
        unsafe { blocks_avx512(mid, w, x, b0, b1) }
    })
}

/// Blocks `b0..b1` (all full, inside `w`) into `out` (`(b1 - b0) * 16` rows).
///
/// # Safety
/// AVX-512F; `w` holds whole `x.len()`-long rows including those of block `b1 - 1`;
/// `out.len() == (b1 - b0) * 16`.
#[target_feature(enable = "avx512f")]
unsafe fn blocks_avx512(out: &mut [f32], w: &[f32], x: &[f32], b0: usize, b1: usize) {
    let n = x.len();
    let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    let mut b = b0;
    while b + 2 <= b1 {
        let p0 = wp.add(b * LANES * n);
        let p1 = p0.add(LANES * n);
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let next = p0.wrapping_add(2 * LANES * n);
        for j in 0..n {
            prefetch_next(next, j);
            let xv = _mm512_set1_ps(*xp.add(j));
            acc0 = _mm512_add_ps(acc0, _mm512_mul_ps(_mm512_loadu_ps(p0.add(j * LANES)), xv));
            acc1 = _mm512_add_ps(acc1, _mm512_mul_ps(_mm512_loadu_ps(p1.add(j * LANES)), xv));
        }
        _mm512_storeu_ps(op.add((b - b0) * LANES), acc0);
        _mm512_storeu_ps(op.add((b + 1 - b0) * LANES), acc1);
        b += 2;
    }
    if b < b1 {
        let p0 = wp.add(b * LANES * n);
        let mut acc = _mm512_setzero_ps();
        for j in 0..n {
            let xv = _mm512_set1_ps(*xp.add(j));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(p0.add(j * LANES)), xv));
        }
        _mm512_storeu_ps(op.add((b - b0) * LANES), acc);
    }
}

/// [`super::Kernels::matmul_f32_interleaved`] with AVX2 (a block is two vectors of 8 rows).
///
/// # Safety
/// The CPU must have AVX2; the lengths must satisfy [`interleaved::shapes_ok`].
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn matmul_avx2(out: &mut [f32], w: &[f32], x: &[f32], first: usize) {
    split(out, w, x, first, |mid, b0, b1| {
        // SAFETY: the caller's contract; `mid` holds the rows of blocks b0..b1.
        unsafe { blocks_avx2(mid, w, x, b0, b1) }
    })
}

/// Blocks `b0..b1` into `out`, as [`blocks_avx512`] with two 8-lane halves per block.
///
/// # Safety
/// As [`blocks_avx512`], with AVX2 instead of AVX-512F.
#[target_feature(enable = "avx2")]
unsafe fn blocks_avx2(out: &mut [f32], w: &[f32], x: &[f32], b0: usize, b1: usize) {
    let n = x.len();
    let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    let mut b = b0;
    while b + 2 <= b1 {
        let p0 = wp.add(b * LANES * n);
        let p1 = p0.add(LANES * n);
        let z = _mm256_setzero_ps();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let next = p0.wrapping_add(2 * LANES * n);
        for j in 0..n {
            prefetch_next(next, j);
            let xv = _mm256_set1_ps(*xp.add(j));
            let (q0, q1) = (p0.add(j * LANES), p1.add(j * LANES));
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(q0), xv));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(q0.add(8)), xv));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_loadu_ps(q1), xv));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(_mm256_loadu_ps(q1.add(8)), xv));
        }
        let o = op.add((b - b0) * LANES);
        _mm256_storeu_ps(o, a0);
        _mm256_storeu_ps(o.add(8), a1);
        _mm256_storeu_ps(o.add(16), a2);
        _mm256_storeu_ps(o.add(24), a3);
        b += 2;
    }
    if b < b1 {
        let p0 = wp.add(b * LANES * n);
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for j in 0..n {
            let xv = _mm256_set1_ps(*xp.add(j));
            let q0 = p0.add(j * LANES);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(q0), xv));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(q0.add(8)), xv));
        }
        let o = op.add((b - b0) * LANES);
        _mm256_storeu_ps(o, a0);
        _mm256_storeu_ps(o.add(8), a1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Kernels, Scalar};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn floats(len: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(-2.0f32..2.0, len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Both SIMD kernels over the packed layout give the row-major scalar kernel's floats
        /// for any row range: block-aligned or not, one block, several, odd tails.
        #[test]
        fn simd_matches_row_major_scalar_bit_for_bit(
            (_rows, n, w, x, first, len) in (1usize..90, 1usize..45).prop_flat_map(|(rows, n)| {
                (Just(rows), Just(n), floats(rows * n), floats(n), 0..rows)
                    .prop_flat_map(move |(rows, n, w, x, first)| {
                        (Just(rows), Just(n), Just(w), Just(x), Just(first), 0..=rows - first)
                    })
            })
        ) {
            let mut want = vec![0.0f32; len];
            Scalar.matmul_f32(&mut want, &w[first * n..(first + len) * n], &x);
            let mut packed = vec![0.0f32; w.len()];
            interleaved::pack(&mut packed, &w, n);
            let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            for k in crate::kernels::available() {
                let mut got = vec![f32::NAN; len];
                k.matmul_f32_interleaved(&mut got, &packed, &x, first);
                let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                prop_assert_eq!(&gb, &wb, "kernel {}", k.name());
            }
        }
    }
}
