//! Portable matmuls that compute four output rows per pass, for in-order cores without SIMD
//! (the RISC-V ESP32-C3/C6/P4, and the rv32 benchmark in `bench/rv32`).
//!
//! Every row still adds its products left to right into its own f32, exactly as [`Scalar`]
//! does, so the results are bit-identical; only the loop shape changes. Loading each input
//! value once for four rows, and unrolling the columns by four so that LLVM can address them
//! with immediate offsets, cuts the instructions per multiply-add. Measured on
//! `qemu-system-riscv32 -cpu rv32,d=false` (rv32imafc) with `bench/rv32`: the stories260K fp32
//! matmuls fell from 7.1 instructions per multiply-add (Scalar: `flw, flw, fmul, fadd, addi,
//! addi, bne`) to 3.8, the whole token from 2.30 M to 1.43 M instructions.
//!
//! The int8 kernel adds each group as `Scalar` does, `fma(ival as f32 * w_scale, x_scale,
//! acc)`, but not through `libm::fmaf`, which computes in f64 and is software on every ESP32
//! (355-360 instructions per call): `fmadd.s` where the F extension exists (int8 token on
//! rv32imafc 24.4 M -> 1.85 M instructions), else the exact integer [`fmaf_soft`].

use super::{scalar, Kernels, Rescale, Scalar};

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
        // Group sizes that are multiples of 4 (the int8 files and bundles use 4 to 64).
        match group {
            4 => q8_rows::<4>(out, wq, ws, xq, xs),
            8 => q8_rows::<8>(out, wq, ws, xq, xs),
            16 => q8_rows::<16>(out, wq, ws, xq, xs),
            32 => q8_rows::<32>(out, wq, ws, xq, xs),
            64 => q8_rows::<64>(out, wq, ws, xq, xs),
            _ => Scalar.matmul_q8(out, wq, ws, xq, xs, group),
        }
    }

    fn matmul_q8_fixed(
        &self,
        out: &mut [i32],
        wq: &[i8],
        ws: &[i16],
        xq: &[i8],
        group: usize,
        scale: Rescale,
    ) {
        #[cfg(target_arch = "riscv32")]
        if q8_fixed_rows_rv32(out, wq, ws, xq, group, scale) {
            return;
        }
        q8_fixed_rows(out, wq, ws, xq, group, scale)
    }
}

/// `a * b + c` rounded once, as [`Scalar::matmul_q8`] does per group. `libm::fmaf` emulates
/// it with f64 arithmetic, which is software on cores without a double-precision FPU; where the
/// single-precision FPU exists (rv32imafc, the ESP32-P4) its `fmadd.s` gives the same result in
/// one instruction, and elsewhere [`fmaf_soft`] does it in integer arithmetic.
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
    fmaf_soft(a, b, c)
}

/// `libm::fmaf` (fused multiply-add, round to nearest even), bit for bit, in 32- and 64-bit
/// integer arithmetic for normal inputs and results; anything else (zeros in `a` or `b`,
/// subnormals, infinities, NaN, results outside the normal range) goes to `libm::fmaf`.
///
/// Measured on rv32imac (no FPU) in `bench/rv32`: `libm::fmaf` costs about 355 instructions
/// per call there (soft f64), this about a fifth of that.
///
/// Method: the 48-bit product of the significands and `c`'s significand are both placed with
/// their top bit at bit 61 of a u64 (their low bits are then zero), the smaller one is shifted
/// right by the exponent difference with the bits shifted out ORed into bit 0 (sticky), they
/// are added or subtracted, and the sum is rounded once to 24 bits. Bits are lost only when the
/// shift exceeds 14, and then the sum keeps at least 61 bits, so the rounding point (bit 37 or
/// higher) is far above the sticky bit, and an odd sticky sum lies on the same side of every
/// rounding boundary as the exact sum.
pub fn fmaf_soft(a: f32, b: f32, c: f32) -> f32 {
    fmaf_normal(a, b, c).unwrap_or_else(|| libm::fmaf(a, b, c))
}

#[inline(always)]
fn fmaf_normal(a: f32, b: f32, c: f32) -> Option<f32> {
    let (ua, ub, uc) = (a.to_bits(), b.to_bits(), c.to_bits());
    let (ea, eb, ec) = ((ua >> 23) & 0xff, (ub >> 23) & 0xff, (uc >> 23) & 0xff);
    // Biased exponents 1..=254 are the normal numbers.
    if ea.wrapping_sub(1) >= 254 || eb.wrapping_sub(1) >= 254 {
        return None;
    }
    let ma = (ua & 0x7f_ffff) | 0x80_0000;
    let mb = (ub & 0x7f_ffff) | 0x80_0000;
    let p = ma as u64 * mb as u64; // in [2^46, 2^48)
    let sp = (ua ^ ub) >> 31;
    // Value = x * 2^ex with x's top bit at 61.
    let e_prod = ea as i32 + eb as i32 - 300;
    let (x, ex) = if p >> 47 != 0 { (p << 14, e_prod - 14) } else { (p << 15, e_prod - 15) };
    if ec.wrapping_sub(1) >= 254 {
        // a * b + (+-0) = a * b, nonzero here. (Tested on the significand bits with ec known
        // to be 0 or 255: a test of all of `c`'s bits compiles to a soft-float compare.)
        if ec == 0 && uc & 0x7f_ffff == 0 {
            return round_pack(sp, x, ex);
        }
        return None;
    }
    let y = (((uc & 0x7f_ffff) | 0x80_0000) as u64) << 38;
    let ey = ec as i32 - 150 - 38;
    let sc = uc >> 31;
    let (hi, ehi, shi, lo, elo, slo) = if ex > ey || (ex == ey && x >= y) {
        (x, ex, sp, y, ey, sc)
    } else {
        (y, ey, sc, x, ex, sp)
    };
    let d = (ehi - elo) as u32;
    let lo = if d == 0 {
        lo
    } else if d < 64 {
        (lo >> d) | u64::from(lo << (64 - d) != 0)
    } else {
        1
    };
    let z = if shi == slo { hi + lo } else { hi - lo };
    if z == 0 {
        // Exact cancellation is +0 when rounding to nearest.
        return Some(0.0);
    }
    round_pack(shi, z, ehi)
}

/// `(-1)^s * z * 2^e` rounded to nearest even, if it is a normal f32; `0 < z < 2^63`.
#[inline(always)]
fn round_pack(s: u32, z: u64, e: i32) -> Option<f32> {
    // Bit length; the common cases (no cancellation) are tested first, since `leading_zeros`
    // is a long sequence on cores without a count-leading-zeros instruction.
    let len = if z >> 62 != 0 {
        63
    } else if z >> 61 != 0 {
        62
    } else {
        64 - z.leading_zeros()
    };
    let (mant, exp) = if len <= 24 {
        (z << (24 - len), e - (24 - len) as i32)
    } else {
        let shift = len - 24;
        let mut mant = z >> shift;
        let rem = z & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        let mut exp = e + shift as i32;
        if rem > half || (rem == half && mant & 1 == 1) {
            mant += 1;
            if mant == 1 << 24 {
                mant >>= 1;
                exp += 1;
            }
        }
        (mant, exp)
    };
    let biased = exp + 150;
    if !(1..=254).contains(&biased) {
        return None;
    }
    Some(f32::from_bits((s << 31) | ((biased as u32) << 23) | (mant as u32 & 0x7f_ffff)))
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

/// Integer dot products of four rows' groups with one input group, four columns at a time
/// (wrapping, like the scalar twin, for groups long enough to overflow `i32`).
#[inline(always)]
fn idot4(x: &[i8], w: [&[i8]; ROWS]) -> [i32; ROWS] {
    let mut iv = [0i32; ROWS];
    let cols = x
        .chunks_exact(4)
        .zip(w[0].chunks_exact(4))
        .zip(w[1].chunks_exact(4))
        .zip(w[2].chunks_exact(4))
        .zip(w[3].chunks_exact(4));
    for ((((xc, c0), c1), c2), c3) in cols {
        for k in 0..4 {
            let xk = xc[k] as i32;
            iv[0] = iv[0].wrapping_add(c0[k] as i32 * xk);
            iv[1] = iv[1].wrapping_add(c1[k] as i32 * xk);
            iv[2] = iv[2].wrapping_add(c2[k] as i32 * xk);
            iv[3] = iv[3].wrapping_add(c3[k] as i32 * xk);
        }
    }
    iv
}

/// The four rows of a block of `ROWS * len` values.
#[inline(always)]
fn quad<T>(block: &[T], len: usize) -> [&[T]; ROWS] {
    let (a, rest) = block.split_at(len);
    let (b, rest) = rest.split_at(len);
    let (c, d) = rest.split_at(len);
    [a, b, c, d]
}

/// [`Scalar::matmul_q8`] with a compile-time group size, four rows per pass.
fn q8_rows<const G: usize>(out: &mut [f32], wq: &[i8], ws: &[f32], xq: &[i8], xs: &[f32]) {
    let stride = xq.len();
    let groups = stride / G;
    if groups * G != stride || groups == 0 {
        return Scalar.matmul_q8(out, wq, ws, xq, xs, G);
    }
    let mut outs = out.chunks_exact_mut(ROWS);
    let mut done = 0;
    for (o, (wr, sr)) in
        (&mut outs).zip(wq.chunks_exact(ROWS * stride).zip(ws.chunks_exact(ROWS * groups)))
    {
        let [w0, w1, w2, w3] = quad(wr, stride);
        let [s0, s1, s2, s3] = quad(sr, groups);
        let mut acc = [0.0f32; ROWS];
        let it = xq
            .chunks_exact(G)
            .zip(xs)
            .zip(w0.chunks_exact(G).zip(w1.chunks_exact(G)))
            .zip(w2.chunks_exact(G).zip(w3.chunks_exact(G)))
            .zip(s0.iter().zip(s1).zip(s2.iter().zip(s3)));
        for ((((xg, &xsg), (g0, g1)), (g2, g3)), ((&a0, &a1), (&a2, &a3))) in it {
            // Integer sums are exact, so any order gives Scalar's `ival`. `idot4` loads four
            // input values once for the four rows; at G = 4 LLVM does that itself from four
            // whole-group dot products, which measured faster there (bench/rv32, stories260K
            // on rv32imafc: 1.85 M instructions per token against 1.99 M), while `idot4` wins
            // for bigger groups (group-32 bundle: 1.76 M against 2.20 M).
            let iv = if G == 4 {
                [idot::<G>(g0, xg), idot::<G>(g1, xg), idot::<G>(g2, xg), idot::<G>(g3, xg)]
            } else {
                idot4(xg, [g0, g1, g2, g3])
            };
            acc[0] = fma(iv[0] as f32 * a0, xsg, acc[0]);
            acc[1] = fma(iv[1] as f32 * a1, xsg, acc[1]);
            acc[2] = fma(iv[2] as f32 * a2, xsg, acc[2]);
            acc[3] = fma(iv[3] as f32 * a3, xsg, acc[3]);
        }
        o.copy_from_slice(&acc);
        done += ROWS;
    }
    let rest = outs.into_remainder();
    let wq_rest = wq.get(done * stride..).unwrap_or(&[]);
    let ws_rest = ws.get(done * groups..).unwrap_or(&[]);
    Scalar.matmul_q8(rest, wq_rest, ws_rest, xq, xs, G);
}

/// One column of [`idot4_rv32`]'s loop at byte offset `$o`: the input byte once, then
/// `lb`, `mul`, `add` for each of the four rows (two temporaries, alternating).
#[cfg(target_arch = "riscv32")]
macro_rules! rv32_col {
    ($o:literal) => {
        concat!(
            "lb {xv}, ",
            $o,
            "({x})\n",
            "lb {t1}, ",
            $o,
            "({w0})\n",
            "lb {t2}, ",
            $o,
            "({w1})\n",
            "mul {t1}, {t1}, {xv}\n",
            "mul {t2}, {t2}, {xv}\n",
            "add {a0}, {a0}, {t1}\n",
            "add {a1}, {a1}, {t2}\n",
            "lb {t1}, ",
            $o,
            "({w2})\n",
            "lb {t2}, ",
            $o,
            "({w3})\n",
            "mul {t1}, {t1}, {xv}\n",
            "mul {t2}, {t2}, {xv}\n",
            "add {a2}, {a2}, {t1}\n",
            "add {a3}, {a3}, {t2}\n",
        )
    };
}

/// [`idot4`] for RV32 as one assembly loop of 8 columns: 13 instructions per column and 6 per
/// pass (3.44 per multiply-add) in 13 registers, where LLVM's schedule of the same loop needs
/// 4.06 with spills (bench/rv32, rv32imac). Integer sums, so the result is `idot4`'s exactly.
/// Lengths not a multiple of 8 (or rows shorter than `x`) take the portable loop.
#[cfg(target_arch = "riscv32")]
#[inline(always)]
fn idot4_rv32(x: &[i8], w: [&[i8]; ROWS]) -> [i32; ROWS] {
    let n = x.len();
    if n == 0 || !n.is_multiple_of(8) || w.iter().any(|r| r.len() < n) {
        return idot4_out_of_line(x, w);
    }
    let p = w.map(|r| r.as_ptr());
    // SAFETY: `x` and every row hold at least `n` bytes, `n` a positive multiple of 8.
    unsafe { idot4_rv32_raw(x.as_ptr(), p, n) }
}

/// The assembly loop of [`idot4_rv32`].
///
/// # Safety
/// `x` and each `w[r]` must be readable for `n` bytes; `n` must be a positive multiple of 8.
#[cfg(target_arch = "riscv32")]
#[inline(always)]
unsafe fn idot4_rv32_raw(x: *const i8, w: [*const i8; ROWS], n: usize) -> [i32; ROWS] {
    let [mut a0, mut a1, mut a2, mut a3] = [0i32; ROWS];
    // SAFETY: the loop reads bytes `0..n` of `x` and of each `w[r]` (the caller's contract;
    // `n` is a positive multiple of the loop's step, 8) and writes only the registers named
    // here; no stack, no stores.
    unsafe {
        core::arch::asm!(
            "2:",
            rv32_col!("0"),
            rv32_col!("1"),
            rv32_col!("2"),
            rv32_col!("3"),
            rv32_col!("4"),
            rv32_col!("5"),
            rv32_col!("6"),
            rv32_col!("7"),
            "addi {x}, {x}, 8",
            "addi {w0}, {w0}, 8",
            "addi {w1}, {w1}, 8",
            "addi {w2}, {w2}, 8",
            "addi {w3}, {w3}, 8",
            "bne {x}, {end}, 2b",
            x = inout(reg) x => _,
            end = in(reg) x.add(n),
            w0 = inout(reg) w[0] => _,
            w1 = inout(reg) w[1] => _,
            w2 = inout(reg) w[2] => _,
            w3 = inout(reg) w[3] => _,
            a0 = inout(reg) a0,
            a1 = inout(reg) a1,
            a2 = inout(reg) a2,
            a3 = inout(reg) a3,
            xv = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            options(nostack, readonly),
        );
    }
    [a0, a1, a2, a3]
}

/// [`idot4`], not inlined (the rare fallback of [`idot4_rv32`], kept out of its callers'
/// register allocation).
#[cfg(target_arch = "riscv32")]
#[inline(never)]
fn idot4_out_of_line(x: &[i8], w: [&[i8]; ROWS]) -> [i32; ROWS] {
    idot4(x, w)
}

/// [`Kernels::matmul_q8_fixed`] on RV32 for groups that are multiples of 8: one function for
/// all the rows (no per-quad call), the column loop in assembly ([`idot4_rv32`]). Returns
/// `false` (nothing written) for other shapes.
#[cfg(target_arch = "riscv32")]
fn q8_fixed_rows_rv32(
    out: &mut [i32],
    wq: &[i8],
    ws: &[i16],
    xq: &[i8],
    group: usize,
    scale: Rescale,
) -> bool {
    let stride = xq.len();
    if group == 0 || !group.is_multiple_of(8) || stride == 0 || !stride.is_multiple_of(group) {
        return false;
    }
    let groups = stride / group;
    let quads = out.len() / ROWS;
    let (Some(nw), Some(ns)) =
        ((quads * ROWS).checked_mul(stride), (quads * ROWS).checked_mul(groups))
    else {
        return false;
    };
    if wq.len() < nw || ws.len() < ns {
        return false;
    }
    let (xp, wp) = (xq.as_ptr(), wq.as_ptr());
    let mut outs = out.chunks_exact_mut(ROWS);
    for (qd, (o, sr)) in (&mut outs).zip(ws.chunks_exact(ROWS * groups)).enumerate() {
        if groups == 1 {
            // SAFETY: as below, for the one group at 0..group (= stride).
            let iv = unsafe {
                let w0 = wp.add(qd * ROWS * stride);
                idot4_rv32_raw(
                    xp,
                    [w0, w0.add(stride), w0.add(2 * stride), w0.add(3 * stride)],
                    group,
                )
            };
            for r in 0..ROWS {
                o[r] = scale.apply_group(iv[r], sr[r]);
            }
            continue;
        }
        let mut acc = [0i64; ROWS];
        for g in 0..groups {
            let a = g * group;
            // SAFETY: rows 4qd..4qd+4 lie in `wq[..nw]` (checked above) and their group `g`
            // at `a..a + group` inside each row (`a + group <= stride`); `x[a..a + group]` is
            // inside `xq`; `group` is a positive multiple of 8.
            let iv = unsafe {
                let w0 = wp.add(qd * ROWS * stride + a);
                let w = [w0, w0.add(stride), w0.add(2 * stride), w0.add(3 * stride)];
                idot4_rv32_raw(xp.add(a), w, group)
            };
            for r in 0..ROWS {
                acc[r] = acc[r].wrapping_add(iv[r] as i64 * sr[r * groups + g] as i64);
            }
        }
        for (o, a) in o.iter_mut().zip(acc) {
            *o = scale.apply(a);
        }
    }
    scalar::matmul_q8_fixed(outs.into_remainder(), &wq[nw..], &ws[ns..], xq, group, scale);
    true
}

/// The weighted group sums of four rows, `sum_g idot(x_g, w_r,g) * s_r[g]` (wrapping), for a
/// run-time group size. Not inlined and not specialized on the group size, so that the column
/// loop stays a loop: with 4 accumulators, 4 inputs and 4 row pointers it fits the 31
/// registers of RV32, where a fully unrolled group spilled (bench/rv32).
#[inline(never)]
fn fixed_quad(x: &[i8], w: [&[i8]; ROWS], s: [&[i16]; ROWS], group: usize) -> [i64; ROWS] {
    let mut acc = [0i64; ROWS];
    let it = x
        .chunks_exact(group)
        .zip(w[0].chunks_exact(group).zip(w[1].chunks_exact(group)))
        .zip(w[2].chunks_exact(group).zip(w[3].chunks_exact(group)))
        .zip(s[0].iter().zip(s[1]).zip(s[2].iter().zip(s[3])));
    for (((xg, (g0, g1)), (g2, g3)), ((&a0, &a1), (&a2, &a3))) in it {
        #[cfg(target_arch = "riscv32")]
        let iv = idot4_rv32(xg, [g0, g1, g2, g3]);
        #[cfg(not(target_arch = "riscv32"))]
        let iv = idot4(xg, [g0, g1, g2, g3]);
        acc[0] = acc[0].wrapping_add(iv[0] as i64 * a0 as i64);
        acc[1] = acc[1].wrapping_add(iv[1] as i64 * a1 as i64);
        acc[2] = acc[2].wrapping_add(iv[2] as i64 * a2 as i64);
        acc[3] = acc[3].wrapping_add(iv[3] as i64 * a3 as i64);
    }
    acc
}

/// [`Kernels::matmul_q8_fixed`], four rows per pass (integer sums: the same result as the
/// scalar loop in any order). Groups must be a multiple of 4 (else the scalar loop runs).
fn q8_fixed_rows(out: &mut [i32], wq: &[i8], ws: &[i16], xq: &[i8], group: usize, scale: Rescale) {
    let stride = xq.len();
    if group == 0 || !group.is_multiple_of(4) || stride == 0 || !stride.is_multiple_of(group) {
        return scalar::matmul_q8_fixed(out, wq, ws, xq, group, scale);
    }
    let groups = stride / group;
    let mut outs = out.chunks_exact_mut(ROWS);
    let mut done = 0;
    for (o, (wr, sr)) in
        (&mut outs).zip(wq.chunks_exact(ROWS * stride).zip(ws.chunks_exact(ROWS * groups)))
    {
        let [w0, w1, w2, w3] = quad(wr, stride);
        let [s0, s1, s2, s3] = quad(sr, groups);
        let acc = fixed_quad(xq, [w0, w1, w2, w3], [s0, s1, s2, s3], group);
        for (o, a) in o.iter_mut().zip(acc) {
            *o = scale.apply(a);
        }
        done += ROWS;
    }
    let rest = outs.into_remainder();
    let wq_rest = wq.get(done * stride..).unwrap_or(&[]);
    let ws_rest = ws.get(done * groups..).unwrap_or(&[]);
    scalar::matmul_q8_fixed(rest, wq_rest, ws_rest, xq, group, scale);
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

    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn fmaf_soft_matches_libm_on_many_values() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..2_000_000u32 {
            let r = next();
            let (a, b) = (f32::from_bits(r as u32), f32::from_bits((r >> 32) as u32));
            let c = match i % 4 {
                // Any bits.
                0 => f32::from_bits(next() as u32),
                // Near -a*b: cancellation, ties and sticky bits.
                1 => -(a * b) * (1.0 + (next() % 64) as f32 * f32::EPSILON / 8.0),
                2 => -(a * b) + f32::from_bits(next() as u32 & 0x807f_ffff | 0x3000_0000) * a * b,
                // The engine's range: scales around 1e-3, sums of a few units.
                _ => ((next() % 2001) as f32 - 1000.0) / 256.0,
            };
            let (a, b) = if i % 4 == 3 {
                (((r % 131_071) as i32 - 65_535) as f32 * 1e-3, (r >> 40) as f32 * 1e-9)
            } else {
                (a, b)
            };
            let (want, got) = (libm::fmaf(a, b, c), fmaf_soft(a, b, c));
            assert!(same(want, got), "fmaf({a:e}, {b:e}, {c:e}): libm {want:e}, soft {got:e}");
        }
    }

    /// Cases where only the sticky bit decides the rounding: the low bits of a's and b's
    /// significand product together with c's kept bits sit exactly on a rounding tie (plus or
    /// minus c's shifted-out last bit).
    #[test]
    fn fmaf_soft_sticky_ties() {
        let mut checked = 0;
        for ma in (0x80_0001u64..0x80_0001 + 2 * 3000).step_by(2) {
            // ma^-1 mod 2^23 by Newton's iteration (ma is odd).
            let mut inv = ma;
            for _ in 0..5 {
                inv = inv.wrapping_mul(2u64.wrapping_sub(ma.wrapping_mul(inv)));
            }
            // c = (1 + 2^-23) * 2^-39 shifts right by 39 in fmaf_normal's frame: it keeps 2^22
            // and drops a last 1. Residues put the product's low bits at 2^37 -+ 2^22, so the
            // sum lands on the tie 2^37 but for the dropped bit.
            for (residue, sign) in [(0x3f_ff80u64, 1.0f32), (0x40_0080, -1.0)] {
                let mb = (residue.wrapping_mul(inv) & 0x7f_ffff) | 0x80_0000;
                if ma * mb >= 1 << 47 {
                    continue;
                }
                let a = f32::from_bits(127 << 23 | (ma as u32 & 0x7f_ffff));
                let b = f32::from_bits(127 << 23 | (mb as u32 & 0x7f_ffff));
                let c = sign * f32::from_bits(88 << 23 | 1);
                let (want, got) = (libm::fmaf(a, b, c), fmaf_soft(a, b, c));
                assert!(same(want, got), "fmaf({a:e}, {b:e}, {c:e}): libm {want:e}, soft {got:e}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} cases");
    }

    proptest! {
        #[test]
        fn fmaf_soft_matches_libm(a in any::<u32>(), b in any::<u32>(), c in any::<u32>()) {
            let (a, b, c) = (f32::from_bits(a), f32::from_bits(b), f32::from_bits(c));
            prop_assert!(same(libm::fmaf(a, b, c), fmaf_soft(a, b, c)));
        }

        #[test]
        fn fmaf_soft_matches_libm_near_cancellation(a in any::<f32>(), b in any::<f32>(), ulps in -40i32..40) {
            let c = f32::from_bits((-(a * b)).to_bits().wrapping_add(ulps as u32));
            prop_assert!(same(libm::fmaf(a, b, c), fmaf_soft(a, b, c)));
        }

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

    proptest! {
        #[test]
        fn q8_fixed_matches_scalar(
            rows in 1usize..11,
            group in prop::sample::select(vec![1usize, 3, 4, 8, 12, 16, 32, 64]),
            groups in 1usize..4,
            seed in any::<u64>(),
            m in 0i32..(1 << 15),
            shift in 0u32..40,
        ) {
            let stride = group * groups;
            let wq = bytes(rows * stride, seed);
            let xq = bytes(stride, seed ^ 1);
            let ws: Vec<i16> =
                bytes(rows * groups * 2, seed ^ 2).chunks(2).map(|c| i16::from_le_bytes([c[0] as u8, c[1] as u8])).collect();
            let scale = Rescale { m, shift };
            let mut a = vec![0i32; rows];
            let mut b = vec![1i32; rows];
            scalar::matmul_q8_fixed(&mut a, &wq, &ws, &xq, group, scale);
            Unrolled.matmul_q8_fixed(&mut b, &wq, &ws, &xq, group, scale);
            prop_assert_eq!(a, b);
        }
    }
}
