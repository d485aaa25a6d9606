//! Kernel checks in the emulator: every kernel of the set under test against the scalar twin,
//! bit for bit, on pseudo-random shapes (odd lengths, tails, every group size an int8 matrix
//! or int4 matrix can have, aligned and unaligned rows) and values (including the int8 and
//! int4 extremes).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use esp_llm_engine::kernels::{AttnScale, Kernels, Math, Scalar};

/// xorshift32, deterministic.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
    fn f32(&mut self) -> f32 {
        // A few units, with exact zeros and negative zeros now and then.
        match self.below(32) {
            0 => 0.0,
            1 => -0.0,
            _ => (self.next() >> 8) as f32 / (1u32 << 22) as f32 - 2.0,
        }
    }
    fn i8(&mut self) -> i8 {
        match self.below(16) {
            0 => -128,
            1 => 127,
            _ => (self.next() >> 8) as i8,
        }
    }
}

/// A buffer of `n` values starting `skew` elements after a 16-byte boundary.
struct Buf<T> {
    v: Vec<T>,
    skew: usize,
}

impl<T: Copy + Default> Buf<T> {
    fn new(n: usize, skew: usize, mut f: impl FnMut() -> T) -> Self {
        // Vec<T> of f32/i8 from the bump allocator is aligned to T only: pad to reach the
        // requested offset from a 16-byte boundary.
        let mut v = vec![T::default(); n + 16 + skew];
        let base = v.as_ptr() as usize;
        let size = core::mem::size_of::<T>();
        let pad = ((16 - base % 16) % 16) / size + skew;
        for x in v[pad..pad + n].iter_mut() {
            *x = f();
        }
        Buf { v, skew: pad }
    }
    fn get(&self, n: usize) -> &[T] {
        &self.v[self.skew..self.skew + n]
    }
}

/// Shapes checked and passed; the first difference is printed.
#[derive(Default)]
struct Tally {
    total: u32,
    passed: u32,
}

impl Tally {
    /// Counts one shape; `what` names it if it is the first to differ.
    fn record(&mut self, c: &mut dyn Write, ok: bool, what: core::fmt::Arguments<'_>) {
        self.total += 1;
        if ok {
            self.passed += 1;
        } else if self.total - self.passed == 1 {
            let _ = writeln!(c, "kernel_check: {what}: differs");
        }
    }
}

fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Runs the checks; prints `kernel_check: N/N shapes bit-exact (kernels NAME)` or the first
/// difference. Returns whether all passed.
pub fn run(c: &mut dyn Write, k: &dyn Kernels) -> bool {
    let mut rng = Rng(0x2545_F491);
    let mut tally = Tally::default();
    // f32: 700 shapes. The first 500 have any n; the last 200 have n % 4 == 0 (4, 8, ...),
    // where the LX7 kernel loads four weights at once from the 16-byte boundary on: rows
    // starting at every offset from it (w skew), x at every other offset, row counts that
    // leave blocks of 4 and single rows.
    for i in 0..700 {
        let (ok, rows, n, skew) = crate::with_scratch(|| {
            let rows = 1 + rng.below(if i % 5 == 0 { 40 } else { 12 }) as usize;
            let n = if i < 500 {
                1 + rng.below(if i % 3 == 0 { 300 } else { 70 }) as usize
            } else {
                4 * (1 + rng.below(if i % 3 == 0 { 75 } else { 5 }) as usize)
            };
            let skew = rng.below(4) as usize;
            let w = Buf::new(rows * n, skew, || rng.f32());
            let x = Buf::new(n, rng.below(4) as usize, || rng.f32());
            let (mut a, mut b) = (vec![0f32; rows], vec![1f32; rows]);
            Scalar.matmul_f32(&mut a, w.get(rows * n), x.get(n));
            k.matmul_f32(&mut b, w.get(rows * n), x.get(n));
            (same_f32(&a, &b), rows, n, skew)
        });
        tally.record(c, ok, format_args!("matmul_f32 rows {rows} n {n} skew {skew}"));
    }
    // int8: 700 shapes over the group sizes a matrix can have (llama2.c's power-of-two groups,
    // the bundle's per-tensor ones, and odd ones), aligned padded rows and unaligned ones.
    let groups = [1usize, 2, 4, 8, 16, 32, 64, 128, 12, 43, 48, 96];
    for i in 0..700 {
        let (ok, rows, stride, group, skew) = crate::with_scratch(|| {
            let group = groups[i % groups.len()];
            let ngroups = 1 + rng.below(if group >= 64 { 4 } else { 8 }) as usize;
            let stride = group * ngroups;
            let rows = 1 + rng.below(if i % 7 == 0 { 33 } else { 9 }) as usize;
            let skew = if rng.below(3) == 0 { rng.below(16) as usize } else { 0 };
            let wq = Buf::new(rows * stride, skew, || rng.i8());
            let xq =
                Buf::new(stride, if skew == 0 { 0 } else { rng.below(16) as usize }, || rng.i8());
            let ws = Buf::new(rows * ngroups, 0, || rng.f32() * 0.01);
            let xs = Buf::new(ngroups, 0, || rng.f32() * 0.01);
            let (mut a, mut b) = (vec![0f32; rows], vec![1f32; rows]);
            let args =
                (wq.get(rows * stride), ws.get(rows * ngroups), xq.get(stride), xs.get(ngroups));
            Scalar.matmul_q8(&mut a, args.0, args.1, args.2, args.3, group);
            k.matmul_q8(&mut b, args.0, args.1, args.2, args.3, group);
            (same_f32(&a, &b), rows, stride, group, skew)
        });
        tally.record(
            c,
            ok,
            format_args!("matmul_q8 rows {rows} stride {stride} group {group} skew {skew}"),
        );
    }
    // int4: 400 shapes. The group sizes an int4 matrix can have (multiples of 16, q4.S's
    // paths: 16, 32, 64, other even and odd multiples) and even ones below 16 (the scalar
    // fallback); strides mostly a multiple of 32 (rows of whole 16-byte blocks), some not;
    // x at every offset from a 16-byte boundary, weights now and then misaligned (fallback);
    // nibbles and bytes at their extremes (-8, 7; -128, 127).
    let groups4 = [16usize, 32, 64, 48, 96, 128, 80, 16, 32, 64, 2, 4, 8, 12];
    for i in 0..400 {
        let (ok, rows, stride, group, skew) = crate::with_scratch(|| {
            let group = groups4[i % groups4.len()];
            let mut ngroups = 1 + rng.below(if group >= 64 { 4 } else { 8 }) as usize;
            // Whole 16-byte rows need stride % 32 == 0: an even count of odd multiples of 16.
            if (group / 16) % 2 == 1 && i % 5 != 0 {
                ngroups += ngroups % 2;
            }
            if i % 9 == 4 && 64 % group == 0 {
                ngroups = 64 / group; // rows of 64 (q4.S keeps x in registers)
            }
            if i % 50 == 7 {
                ngroups = 2048 / group; // the longest row q4.S takes
            }
            let stride = group * ngroups;
            let rows = 1 + rng.below(if i % 7 == 0 { 33 } else { 9 }) as usize;
            let skew = if rng.below(6) == 0 { 1 + rng.below(15) as usize } else { 0 };
            let wq = Buf::new(rows * stride / 2, skew, || match rng.below(8) {
                0 => [0x88u8, 0x77, 0x87, 0x78][rng.below(4) as usize],
                _ => (rng.next() >> 8) as u8,
            });
            let xq =
                Buf::new(stride, if i % 2 == 0 { 0 } else { rng.below(16) as usize }, || rng.i8());
            let ws = Buf::new(rows * ngroups, 0, || rng.f32() * 0.01);
            let xs = Buf::new(ngroups, 0, || rng.f32() * 0.01);
            let (mut a, mut b) = (vec![0f32; rows], vec![1f32; rows]);
            let args = (
                wq.get(rows * stride / 2),
                ws.get(rows * ngroups),
                xq.get(stride),
                xs.get(ngroups),
            );
            Scalar.matmul_q4(&mut a, args.0, args.1, args.2, args.3, group);
            k.matmul_q4(&mut b, args.0, args.1, args.2, args.3, group);
            (same_f32(&a, &b), rows, stride, group, skew)
        });
        tally.record(
            c,
            ok,
            format_args!("matmul_q4 rows {rows} stride {stride} group {group} skew {skew}"),
        );
    }
    // Activation quantization: vectors of 1..300 values (some shorter than the padded row),
    // groups as above and odd ones of 16 or more (quant.S's PIE max with a head and a tail),
    // x 0..3 floats past a 16-byte boundary, with zeros, tiny and huge values, whole zero
    // groups, and in every fourth vector NaN, +-inf and -0.0 (the max skips NaN).
    for i in 0..240 {
        let (ok, n, group, skew) = crate::with_scratch(|| {
            let group = [4usize, 8, 16, 32, 64, 12, 43, 17, 22, 128][i % 10];
            let groups = 1 + rng.below(8) as usize;
            let nq = group * groups;
            let nx = if i % 3 == 0 { nq - rng.below(group as u32) as usize } else { nq };
            let zero_group = rng.below(5) == 0;
            let specials = i % 4 == 3;
            let skew = (i / 10) % 4;
            let mut j = 0;
            let x = Buf::new(nx, skew, || {
                j += 1;
                match rng.below(40) {
                    _ if zero_group && j <= group => 0.0,
                    0 => 1.0e-30,
                    1 => -3.0e7,
                    2 => 0.5,
                    3 if specials => f32::NAN,
                    4 if specials => f32::INFINITY,
                    5 if specials => f32::NEG_INFINITY,
                    6 if specials => -0.0,
                    _ => rng.f32() * 3.0,
                }
            });
            let x = x.get(nx);
            let (mut qa, mut sa) = (vec![0i8; nq], vec![0f32; groups]);
            let (mut qb, mut sb) = (vec![1i8; nq], vec![1f32; groups]);
            Scalar.quantize(&mut qa, &mut sa, x, group);
            k.quantize(&mut qb, &mut sb, x, group);
            (qa == qb && same_f32(&sa, &sb), nx, group, skew)
        });
        tally.record(c, ok, format_args!("quantize n {n} group {group} skew {skew}"));
    }
    // One head's attention (scores, softmax, weighted values): 1..80 positions, head sizes 8
    // (attn.S's one-chunk path), 16, 24, 48, 64 (its chunked path) and 4, 6 (the scalar
    // fallback), cache rows kv_dim apart.
    for i in 0..260 {
        let (ok, n, hs, kv_dim) = crate::with_scratch(|| {
            let hs = if i % 4 == 3 { [4usize, 16, 6, 48, 64, 24][(i / 4) % 6] } else { 8 };
            let kv_dim = hs * (1 + rng.below(5) as usize);
            let n = 1 + rng.below(80) as usize;
            // Every fifth head has scores spread by hundreds, so softmax's exponential meets
            // arguments below -87.34 (exp.S's Rust fallback) and below -103.97 (zero).
            // (Converted from an opaque integer: upstream LLVM's Xtensa backend cannot select a
            // float constant-pool load, which a choice between two float constants compiles to.)
            let spread = core::hint::black_box(1 + 59 * u32::from(i % 5 == 4)) as f32;
            let q: Vec<f32> = (0..hs).map(|_| rng.f32() * spread).collect();
            // Every seventh head has cache rows of zeros, 1e-30 and 1e31 now and then: scores
            // outside [2^-90, 2^100), where the fused scores-and-division kernel hands the head
            // to the two-pass path (attn.S `scores8_div`). (Its Markstein quotients would be
            // right for these too: with the range check removed the checks still pass.)
            let odd_rows = i % 7 == 5;
            let mut keys: Vec<f32> = (0..n * kv_dim).map(|_| rng.f32()).collect();
            if odd_rows {
                for row in keys.chunks_mut(kv_dim) {
                    let bits = [0x3f80_0000u32, 0, 0x0da2_4260, 0x72fc_6f7c][rng.below(4) as usize];
                    let f = f32::from_bits(core::hint::black_box(bits));
                    row.iter_mut().for_each(|v| *v *= f);
                }
            }
            let values: Vec<f32> = (0..n * kv_dim).map(|_| rng.f32()).collect();
            // run.c's divisor sqrt(head_size), and now and then one outside the range the
            // fused division takes (0.75 below 1, 70000 above 2^16): the two-pass path.
            let scale = match i % 11 {
                9 => AttnScale::dividing_by(f32::from_bits(core::hint::black_box(0x3f40_0000))),
                10 => AttnScale::dividing_by(f32::from_bits(core::hint::black_box(0x4788_b800))),
                _ => AttnScale::of_head(hs),
            };
            let (mut oa, mut aa) = (vec![0f32; hs], vec![0f32; n]);
            let (mut ob, mut ab) = (vec![1f32; hs], vec![1f32; n]);
            Scalar.attend(&mut oa, &mut aa, &q, &keys, &values, kv_dim, scale, Math::Portable);
            k.attend(&mut ob, &mut ab, &q, &keys, &values, kv_dim, scale, Math::Portable);
            (same_f32(&oa, &ob) && same_f32(&aa, &ab), n, hs, kv_dim)
        });
        tally.record(c, ok, format_args!("attend n {n} head {hs} kv_dim {kv_dim}"));
    }
    // SwiGLU: 200 vectors of 1..300 values over the whole range of the exponential's argument
    // (its branch edges at |x| = 2^-14, 0.3466, 1.0397, 87.34, 88.72 and 103.97 to within a few
    // ulps, both signs, zeros, infinities, NaN, huge and random magnitudes), so that every path
    // of exp.S's expf, the Rust fallback included, meets the scalar twin; also SwiGLU's own
    // slow-path edge (|val| = 80) and the three vals whose 1 + expf(-val) has an all-ones
    // mantissa (the reciprocal's fallback; found by a sweep of every f32 with |val| < 80).
    let edges: [u32; 8] = [
        0x3900_0000,
        0x3eb1_7218,
        0x3f85_1592,
        0x42a0_0000,
        0x42ae_ac50,
        0x42b1_7218,
        0x42cf_f1b5,
        0x7f80_0000,
    ];
    let all_ones: [u32; 3] = [0xbf8c_9f53, 0xbff9_1395, 0xc05b_c672];
    for i in 0..200 {
        let (ok, n) = crate::with_scratch(|| {
            let n = 1 + rng.below(if i % 4 == 0 { 300 } else { 40 }) as usize;
            let mut val = |rng: &mut Rng| -> f32 {
                let sign = rng.next() & 0x8000_0000;
                match rng.below(9) {
                    0 => f32::from_bits(
                        sign | edges[rng.below(8) as usize]
                            .wrapping_add(rng.below(9))
                            .wrapping_sub(4),
                    ),
                    3 => f32::from_bits(all_ones[rng.below(3) as usize]),
                    1 => f32::from_bits(sign | (rng.next() >> 1)),
                    // 0.0, -0.0, NaN, inf, -inf, 1e-30 (as bits: see `spread` above).
                    2 => f32::from_bits(
                        [0, 0x8000_0000, 0x7fc0_0000, 0x7f80_0000, 0xff80_0000, 0x0da2_4260u32]
                            [rng.below(6) as usize],
                    ),
                    _ => {
                        rng.f32()
                            * core::hint::black_box([1u32, 4, 30, 120][rng.below(4) as usize])
                                as f32
                    }
                }
            };
            let h1: Vec<f32> = (0..n).map(|_| val(&mut rng)).collect();
            let h3: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let (mut a, mut b) = (h1.clone(), h1);
            Scalar.swiglu(&mut a, &h3, Math::Portable);
            k.swiglu(&mut b, &h3, Math::Portable);
            // NaN payloads are not compared (the FPU returns its default NaN).
            let same = a
                .iter()
                .zip(&b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
            (same, n)
        });
        tally.record(c, ok, format_args!("swiglu n {n}"));
    }
    // RMSNorm: 150 vectors of 1..300 values (a few units, with zeros, huge and tiny
    // magnitudes now and then), into another buffer and in place.
    for i in 0..150 {
        let (ok, n) = crate::with_scratch(|| {
            let n = 1 + rng.below(if i % 3 == 0 { 300 } else { 70 }) as usize;
            let scale = [1.0f32, 1e-20, 1e15, 3.0][rng.below(4) as usize];
            let x: Vec<f32> = (0..n).map(|_| rng.f32() * core::hint::black_box(scale)).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let (mut oa, mut ob) = (vec![0.0f32; n], vec![0.0f32; n]);
            Scalar.rmsnorm(&mut oa, &x, &w);
            k.rmsnorm(&mut ob, &x, &w);
            let (mut ia, mut ib) = (x.clone(), x);
            Scalar.rmsnorm_in_place(&mut ia, &w);
            k.rmsnorm_in_place(&mut ib, &w);
            (same_f32(&oa, &ob) && same_f32(&ia, &ib) && same_f32(&oa, &ia), n)
        });
        tally.record(c, ok, format_args!("rmsnorm n {n}"));
    }
    // Instruction counts of the int4 matmul (64 rows of 256 values, aligned): the whole call
    // (x copy included) per group and per multiply-accumulate.
    for (group, stride) in
        [(16usize, 256usize), (32, 256), (64, 256), (128, 256), (48, 384), (32, 64), (64, 64)]
    {
        let rows = 64;
        let ngroups = stride / group;
        let n = crate::with_scratch(|| {
            let wq = Buf::new(rows * stride / 2, 0, || (rng.next() >> 8) as u8);
            let xq = Buf::new(stride, 0, || rng.i8());
            let ws = Buf::new(rows * ngroups, 0, || rng.f32());
            let xs = Buf::new(ngroups, 0, || rng.f32());
            let mut out = vec![0f32; rows];
            let args = (
                wq.get(rows * stride / 2),
                ws.get(rows * ngroups),
                xq.get(stride),
                xs.get(ngroups),
            );
            let t = crate::icount();
            k.matmul_q4(&mut out, args.0, args.1, args.2, args.3, group);
            crate::icount().wrapping_sub(t)
        });
        let macs = (rows * stride) as u32;
        let _ = writeln!(
            c,
            "kernel_count: matmul_q4 rows {rows} stride {stride} group {group}: {n} instructions, {}.{:02} per group, {}.{:03} per MAC",
            n / (rows * ngroups) as u32,
            n % (rows * ngroups) as u32 * 100 / (rows * ngroups) as u32,
            n / macs,
            n % macs * 1000 / macs,
        );
    }
    let Tally { total, passed } = tally;
    let _ = writeln!(c, "kernel_check: {passed}/{total} shapes bit-exact (kernels {})", k.name());
    passed == total
}
