//! Portable matmuls that compute four output rows per pass, for in-order cores without SIMD
//! (the RISC-V ESP32-C3/C6/P4, and the rv32 benchmark in `bench/rv32`).
//!
//! Every row still adds its products left to right into its own f32, exactly as [`Scalar`]
//! does, so the results are bit-identical; only the loop shape changes. Loading each input
//! value once for four rows, and unrolling the columns by four so that LLVM can address them
//! with immediate offsets, cuts the instructions per multiply-add. Measured on
//! `qemu-system-riscv32 -cpu rv32,d=false` (rv32imafc) with `bench/rv32`: the stories260K fp32
//! matmuls fell from 7.1 instructions per multiply-add (Scalar: `flw, flw, fmul, fadd, addi,
//! addi, bne`) to the figure recorded in `bench/rv32/README.md`.

use super::{Kernels, Scalar};

/// Four rows per pass, columns unrolled by four; bit-identical to [`Scalar`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Unrolled;

/// Rows computed together.
const ROWS: usize = 4;

impl Kernels for Unrolled {
    fn name(&self) -> &'static str {
        "unrolled"
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        let n = x.len();
        if n == 0 {
            // Empty rows sum to zero (Scalar's `chunks_exact(0)` would panic).
            out.fill(0.0);
            return;
        }
        let mut outs = out.chunks_exact_mut(ROWS);
        let mut rows = w.chunks_exact(ROWS * n);
        let mut done = 0;
        for (o, wr) in (&mut outs).zip(&mut rows) {
            let (w0, wr) = wr.split_at(n);
            let (w1, wr) = wr.split_at(n);
            let (w2, w3) = wr.split_at(n);
            let mut acc = [0.0f32; ROWS];
            let cols = x
                .chunks_exact(4)
                .zip(w0.chunks_exact(4))
                .zip(w1.chunks_exact(4))
                .zip(w2.chunks_exact(4))
                .zip(w3.chunks_exact(4));
            for ((((xc, c0), c1), c2), c3) in cols {
                for k in 0..4 {
                    let xk = xc[k];
                    acc[0] += c0[k] * xk;
                    acc[1] += c1[k] * xk;
                    acc[2] += c2[k] * xk;
                    acc[3] += c3[k] * xk;
                }
            }
            for j in n / 4 * 4..n {
                let xj = x[j];
                acc[0] += w0[j] * xj;
                acc[1] += w1[j] * xj;
                acc[2] += w2[j] * xj;
                acc[3] += w3[j] * xj;
            }
            o.copy_from_slice(&acc);
            done += ROWS;
        }
        let rest = outs.into_remainder();
        Scalar.matmul_f32(rest, w.get(done * n..).unwrap_or(&[]), x);
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
        match group {
            4 => q8_rows::<4>(out, wq, ws, xq, xs),
            8 => q8_rows::<8>(out, wq, ws, xq, xs),
            16 => q8_rows::<16>(out, wq, ws, xq, xs),
            32 => q8_rows::<32>(out, wq, ws, xq, xs),
            64 => q8_rows::<64>(out, wq, ws, xq, xs),
            _ => Scalar.matmul_q8(out, wq, ws, xq, xs, group),
        }
    }
}

/// `a * b + c` rounded once, as [`Scalar::matmul_q8`] does per group. `libm::fmaf` emulates
/// it with f64 arithmetic, which is software on cores without a double-precision FPU; where the
/// single-precision FPU exists (rv32imafc, the ESP32-P4) its `fmadd.s` gives the same result in
/// one instruction.
#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(all(any(target_arch = "riscv32", target_arch = "riscv64"), target_feature = "f"))]
    {
        let r: f32;
        // SAFETY: `fmadd.s` reads three FP registers and writes one; no memory, no traps
        // (exception flags only accumulate in fcsr), rounding mode from fcsr (reset:
        // round-to-nearest-even, which the engine never changes).
        unsafe {
            core::arch::asm!(
                "fmadd.s {r}, {a}, {b}, {c}",
                r = lateout(freg) r,
                a = in(freg) a,
                b = in(freg) b,
                c = in(freg) c,
                options(pure, nomem, nostack),
            );
        }
        r
    }
    #[cfg(not(all(any(target_arch = "riscv32", target_arch = "riscv64"), target_feature = "f")))]
    libm::fmaf(a, b, c)
}

/// Integer dot product of one group.
#[inline(always)]
fn idot<const G: usize>(w: &[i8], x: &[i8]) -> i32 {
    let mut ival = 0i32;
    for k in 0..G {
        ival += w[k] as i32 * x[k] as i32;
    }
    ival
}

/// [`Scalar::matmul_q8`] with a compile-time group size, four rows per pass.
fn q8_rows<const G: usize>(out: &mut [f32], wq: &[i8], ws: &[f32], xq: &[i8], xs: &[f32]) {
    let stride = xq.len();
    let groups = stride / G;
    if stride % G != 0 || groups == 0 {
        return Scalar.matmul_q8(out, wq, ws, xq, xs, G);
    }
    let mut outs = out.chunks_exact_mut(ROWS);
    let mut done = 0;
    for (o, (wr, sr)) in
        (&mut outs).zip(wq.chunks_exact(ROWS * stride).zip(ws.chunks_exact(ROWS * groups)))
    {
        let (w0, wr) = wr.split_at(stride);
        let (w1, wr) = wr.split_at(stride);
        let (w2, w3) = wr.split_at(stride);
        let (s0, sr) = sr.split_at(groups);
        let (s1, sr) = sr.split_at(groups);
        let (s2, s3) = sr.split_at(groups);
        let mut acc = [0.0f32; ROWS];
        let it = xq
            .chunks_exact(G)
            .zip(xs)
            .zip(w0.chunks_exact(G).zip(w1.chunks_exact(G)))
            .zip(w2.chunks_exact(G).zip(w3.chunks_exact(G)))
            .zip(s0.iter().zip(s1).zip(s2.iter().zip(s3)));
        for ((((xg, &xsg), (g0, g1)), (g2, g3)), ((&a0, &a1), (&a2, &a3))) in it {
            acc[0] = fma(idot::<G>(g0, xg) as f32 * a0, xsg, acc[0]);
            acc[1] = fma(idot::<G>(g1, xg) as f32 * a1, xsg, acc[1]);
            acc[2] = fma(idot::<G>(g2, xg) as f32 * a2, xsg, acc[2]);
            acc[3] = fma(idot::<G>(g3, xg) as f32 * a3, xsg, acc[3]);
        }
        o.copy_from_slice(&acc);
        done += ROWS;
    }
    let rest = outs.into_remainder();
    let wq_rest = wq.get(done * stride..).unwrap_or(&[]);
    let ws_rest = ws.get(done * groups..).unwrap_or(&[]);
    Scalar.matmul_q8(rest, wq_rest, ws_rest, xq, xs, G);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn floats(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
            })
            .collect()
    }

    fn bytes(n: usize, seed: u64) -> Vec<i8> {
        // `as` saturates: the values span the whole i8 range, -128 included.
        floats(n, seed).iter().map(|v| (v * 64.0) as i8).collect()
    }

    proptest! {
        #[test]
        fn f32_matches_scalar_bit_for_bit(rows in 0usize..11, n in 1usize..23, seed in any::<u64>()) {
            let w = floats(rows * n, seed);
            let x = floats(n, seed ^ 1);
            let mut a = vec![f32::NAN; rows];
            let mut b = vec![f32::NAN; rows];
            Scalar.matmul_f32(&mut a, &w, &x);
            Unrolled.matmul_f32(&mut b, &w, &x);
            let (a, b): (Vec<u32>, Vec<u32>) =
                (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
            prop_assert_eq!(a, b);
        }

        #[test]
        fn q8_matches_scalar_bit_for_bit(
            rows in 0usize..11,
            groups in 1usize..7,
            group in prop::sample::select(vec![1usize, 2, 3, 4, 8, 16, 32, 64]),
            seed in any::<u64>(),
        ) {
            let stride = groups * group;
            let wq = bytes(rows * stride, seed);
            let ws: Vec<f32> = floats(rows * groups, seed ^ 2).iter().map(|v| v.abs() / 127.0).collect();
            let xq = bytes(stride, seed ^ 3);
            let xs: Vec<f32> = floats(groups, seed ^ 4).iter().map(|v| v.abs() / 127.0).collect();
            let mut a = vec![f32::NAN; rows];
            let mut b = vec![f32::NAN; rows];
            Scalar.matmul_q8(&mut a, &wq, &ws, &xq, &xs, group);
            Unrolled.matmul_q8(&mut b, &wq, &ws, &xq, &xs, group);
            let (a, b): (Vec<u32>, Vec<u32>) =
                (a.iter().map(|v| v.to_bits()).collect(), b.iter().map(|v| v.to_bits()).collect());
            prop_assert_eq!(a, b);
        }
    }
}
