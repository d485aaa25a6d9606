//! The scalar reference kernels, in llama2.c's operation order.

use super::{Kernels, Rescale};

/// Plain loops; the twin every fast kernel is tested against.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scalar;

impl Kernels for Scalar {
    fn name(&self) -> &'static str {
        "scalar"
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        let n = x.len();
        for (o, row) in out.iter_mut().zip(w.chunks_exact(n)) {
            let mut val = 0.0f32;
            for (a, b) in row.iter().zip(x) {
                val += a * b;
            }
            *o = val;
        }
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
        let stride = xq.len();
        let groups = stride / group;
        for (r, o) in out.iter_mut().enumerate() {
            let row = &wq[r * stride..(r + 1) * stride];
            let scales = &ws[r * groups..(r + 1) * groups];
            let mut val = 0.0f32;
            for (g, (wg, xg)) in row.chunks_exact(group).zip(xq.chunks_exact(group)).enumerate() {
                let mut ival = 0i32;
                for (a, b) in wg.iter().zip(xg) {
                    ival += *a as i32 * *b as i32;
                }
                // runq.c's `val += ((float) ival) * w->s[..] * x->s[..]`, which the reference
                // build (gcc -O3 -march=native) contracts into one fused multiply-add. With a
                // separate multiply and add, int8 greedy runs part at near-ties (positions 24,
                // 62 and 186 of the golden cases); fused, they match token for token.
                val = libm::fmaf(ival as f32 * scales[g], xs[g], val);
            }
            *o = val;
        }
    }
}

/// [`Kernels::matmul_q4`] in plain loops (the default of every kernel set): the int8 kernel's
/// order, with each weight unpacked from its nibble ([`crate::model::nibbles`]).
pub fn matmul_q4(out: &mut [f32], wq: &[u8], ws: &[f32], xq: &[i8], xs: &[f32], group: usize) {
    let stride = xq.len();
    if group == 0 || !group.is_multiple_of(2) || stride == 0 || !stride.is_multiple_of(group) {
        out.fill(0.0);
        return;
    }
    let groups = stride / group;
    for (r, o) in out.iter_mut().enumerate() {
        let row = &wq[r * stride / 2..(r + 1) * stride / 2];
        let scales = &ws[r * groups..(r + 1) * groups];
        let mut val = 0.0f32;
        for (g, (wg, xg)) in row.chunks_exact(group / 2).zip(xq.chunks_exact(group)).enumerate() {
            let mut ival = 0i32;
            for (b, x) in wg.iter().zip(xg.chunks_exact(2)) {
                let (lo, hi) = crate::model::nibbles(*b);
                ival += lo as i32 * x[0] as i32;
                ival += hi as i32 * x[1] as i32;
            }
            // As in `matmul_q8`: one fused multiply-add per group, as runq.c's reference build.
            val = libm::fmaf(ival as f32 * scales[g], xs[g], val);
        }
        *o = val;
    }
}

/// [`Kernels::matmul_q8_fixed`] in plain loops (the default of every kernel set).
pub fn matmul_q8_fixed(
    out: &mut [i32],
    wq: &[i8],
    ws: &[i16],
    xq: &[i8],
    group: usize,
    scale: Rescale,
) {
    let stride = xq.len();
    if group == 0 || stride == 0 || !stride.is_multiple_of(group) {
        out.fill(0);
        return;
    }
    let groups = stride / group;
    for (o, (row, scales)) in out.iter_mut().zip(wq.chunks_exact(stride).zip(ws.chunks(groups))) {
        let mut s = 0i64;
        for ((wg, xg), &sc) in row.chunks_exact(group).zip(xq.chunks_exact(group)).zip(scales) {
            let mut ival = 0i32;
            for (a, b) in wg.iter().zip(xg) {
                ival = ival.wrapping_add(*a as i32 * *b as i32);
            }
            s = s.wrapping_add(ival as i64 * sc as i64);
        }
        *o = scale.apply(s);
    }
}

/// [`Kernels::attend`] in plain loops (the default of every kernel set).
#[allow(clippy::too_many_arguments)]
pub fn attend(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_dim: usize,
    scale: super::AttnScale,
    math: super::Math,
) {
    let head_size = q.len();
    for (t, a) in att.iter_mut().enumerate() {
        let kt = &keys[t * kv_dim..][..head_size];
        let mut score = 0.0f32;
        for (qi, ki) in q.iter().zip(kt) {
            score += qi * ki;
        }
        *a = score / scale.inv();
    }
    math.softmax(att);
    out.fill(0.0);
    for (t, &a) in att.iter().enumerate() {
        let vt = &values[t * kv_dim..][..head_size];
        for (o, vi) in out.iter_mut().zip(vt) {
            *o += a * vi;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    proptest! {
        /// The int4 kernel is the int8 kernel on the unpacked values, bit for bit.
        #[test]
        fn q4_is_q8_on_unpacked_values(
            (rows, group, wq, ws, xq, xs) in
                (1usize..12, (1usize..9).prop_map(|h| 2 * h), 1usize..5)
                .prop_flat_map(|(rows, group, groups)| {
                    let stride = group * groups;
                    (
                        Just(rows), Just(group),
                        proptest::collection::vec(any::<u8>(), rows * stride / 2),
                        proptest::collection::vec(0.0f32..0.05, rows * groups),
                        proptest::collection::vec(-127i8..=127, stride),
                        proptest::collection::vec(0.0f32..0.05, groups),
                    )
                })
        ) {
            let unpacked: Vec<i8> = wq
                .iter()
                .flat_map(|&b| { let (lo, hi) = crate::model::nibbles(b); [lo, hi] })
                .collect();
            let mut want = alloc::vec![0.0f32; rows];
            Scalar.matmul_q8(&mut want, &unpacked, &ws, &xq, &xs, group);
            let mut got = alloc::vec![f32::NAN; rows];
            Scalar.matmul_q4(&mut got, &wq, &ws, &xq, &xs, group);
            let gb: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            let wb: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(gb, wb);
        }
    }

    #[test]
    fn q4_bad_groups_give_zeros() {
        let mut out = [1.0f32; 2];
        matmul_q4(&mut out, &[0x11; 16], &[1.0; 4], &[1; 16], &[1.0; 4], 3);
        assert_eq!(out, [0.0; 2]);
    }
}
