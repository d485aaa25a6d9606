//! The row-interleaved f32 layout: matrices repacked once at load time so that SIMD lanes can
//! keep llama2.c's in-order sum per row while reading memory linearly.
//!
//! A `(rows, n)` matrix is cut into blocks of [`LANES`] consecutive rows; within a full block,
//! column `j` of its 16 rows is stored contiguously (`block * 16 * n + j * 16 + lane`), so one
//! 64-byte load holds the same column of 16 rows and each lane adds its own row's products
//! left to right, with no transposes and one linear stream per block. The last
//! `rows % LANES` rows (a partial block) stay row-major. The packed matrix has the same
//! length as the original, and every row range starting at a multiple of `LANES` covers the
//! same span of it in both layouts.
//!
//! [`matmul`] is the scalar twin of the SIMD kernels over this layout: the same products added
//! in the same order as [`Scalar`](super::Scalar)'s [`matmul_f32`](super::Kernels::matmul_f32) on the row-major matrix, so all of them
//! give the very same floats.

/// Rows per interleaved block: one AVX-512 vector, two AVX2 vectors, four NEON vectors.
pub const LANES: usize = 16;

/// Index of element `(r, j)` of a packed `(rows, n)` matrix.
#[inline(always)]
pub fn index(r: usize, j: usize, rows: usize, n: usize) -> usize {
    if r < rows / LANES * LANES {
        (r / LANES) * LANES * n + j * LANES + r % LANES
    } else {
        r * n + j
    }
}

/// Writes the packed form of the row-major `(rows, n)` matrix `src` into `dst` (both
/// `rows * n` values; extra values of `dst` are left alone).
pub fn pack(dst: &mut [f32], src: &[f32], n: usize) {
    if n == 0 {
        return;
    }
    let rows = src.len() / n;
    let full = rows / LANES * LANES;
    for (d, s) in dst[..full * n].chunks_exact_mut(LANES * n).zip(src.chunks_exact(LANES * n)) {
        for (lane, row) in s.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                d[j * LANES + lane] = v;
            }
        }
    }
    dst[full * n..rows * n].copy_from_slice(&src[full * n..rows * n]);
}

/// Rows `first..first + out.len()` of the packed `(rows, n)` matrix `w` (all of it, `rows =
/// w.len() / n` with `n = x.len()`) times `x`, each row summed left to right, multiply then
/// add, as [`Scalar`](super::Scalar)'s [`matmul_f32`](super::Kernels::matmul_f32). Rows past the matrix are left alone.
pub fn matmul(out: &mut [f32], w: &[f32], x: &[f32], first: usize) {
    let n = x.len();
    if n == 0 {
        return out.fill(0.0);
    }
    let rows = w.len() / n;
    for (i, o) in out.iter_mut().enumerate() {
        let r = first + i;
        if r >= rows {
            break;
        }
        let mut val = 0.0f32;
        for (j, b) in x.iter().enumerate() {
            val += w[index(r, j, rows, n)] * b;
        }
        *o = val;
    }
}

/// Whether the slices fit what the SIMD kernels over this layout assume: a non-empty `x`,
/// `w` holding whole rows of `x.len()`, and rows `first..first + out.len()` inside it.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn shapes_ok(out: &[f32], w: &[f32], x: &[f32], first: usize) -> bool {
    let n = x.len();
    n != 0
        && w.len().is_multiple_of(n)
        && first.checked_add(out.len()).is_some_and(|end| end <= w.len() / n)
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

    #[test]
    fn pack_places_every_value_once() {
        for (rows, n) in [(1, 1), (15, 3), (16, 5), (17, 2), (40, 7), (64, 64)] {
            let src: Vec<f32> = (0..rows * n).map(|v| v as f32).collect();
            let mut dst = vec![f32::NAN; rows * n];
            pack(&mut dst, &src, n);
            for r in 0..rows {
                for j in 0..n {
                    assert_eq!(
                        dst[index(r, j, rows, n)],
                        src[r * n + j],
                        "({r}, {j}) of {rows}x{n}"
                    );
                }
            }
            let mut sorted = dst.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, src, "{rows}x{n} is a permutation");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The scalar twin over the packed layout gives the row-major scalar kernel's floats,
        /// for any row range (aligned to a block or not, reaching the tail or not).
        #[test]
        fn twin_matches_row_major_scalar_bit_for_bit(
            (_rows, n, w, x, first, len) in (1usize..70, 1usize..45).prop_flat_map(|(rows, n)| {
                (Just(rows), Just(n), floats(rows * n), floats(n), 0..rows)
                    .prop_flat_map(move |(rows, n, w, x, first)| {
                        (Just(rows), Just(n), Just(w), Just(x), Just(first), 0..=rows - first)
                    })
            })
        ) {
            let mut want = vec![0.0f32; len];
            Scalar.matmul_f32(&mut want, &w[first * n..(first + len) * n], &x);
            let mut packed = vec![0.0f32; w.len()];
            pack(&mut packed, &w, n);
            let mut got = vec![f32::NAN; len];
            matmul(&mut got, &packed, &x, first);
            let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(gb, wb);
        }
    }
}
