//! Micro-measurements behind the report in README.md (not part of the CI gate): instructions
//! per call of the soft-float and libm helpers the forward pass uses, and the matmuls of one
//! stories260K int8 token with (a) the engine's kernels and (b) an integer-only experiment
//! (`int_q8` below: per-group weight scales as 16-bit fixed point, one activation scale per
//! vector, one float multiply per row) that shows what an integer Q8 path would cost. The
//! experiment's numerics differ from runq.c; only its instruction count is reported.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt::Write;
use core::hint::black_box;
use esp_llm_engine::kernels;
use esp_llm_engine::math::{quantize, softmax};
use esp_llm_engine::model::Matrix;
use esp_llm_engine::Checkpoint;
use esp_llm_rv32bench::{exit, instret, Console, Q80_MODEL};

/// Instructions per call of `f` over 256 precomputed inputs, minus the same loop around an
/// identity function.
fn per_call(c: &mut Console, name: &str, reps: u32, f: impl Fn(f32, f32, f32) -> f32) {
    let a: Vec<f32> = (0..256).map(val).collect();
    let b: Vec<f32> = (0..256).map(|i| val(i + 1000)).collect();
    let d: Vec<f32> = (0..256).map(|i| val(i + 2000)).collect();
    let run = |f: &dyn Fn(f32, f32, f32) -> f32| {
        let mut sink = 0.0f32;
        let t0 = instret();
        for _ in 0..reps {
            for i in 0..256 {
                sink = f(black_box(a[i]), black_box(b[i]), black_box(d[i]));
                black_box(sink);
            }
        }
        black_box(sink);
        instret() - t0
    };
    let base = run(&|x, _, _| x);
    let t = run(&f);
    let calls = reps as u64 * 256;
    let _ = writeln!(c, "op {name}: {} instructions/call", t.saturating_sub(base) / calls);
}

/// Values spread like activations (a few units), deterministic.
fn val(i: u32) -> f32 {
    let h = i.wrapping_mul(2_654_435_761) >> 8;
    (h as f32 / (1u32 << 24) as f32 - 0.5) * 6.0
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

/// The integer-only experiment: 4 rows per pass, i32 per group, i64 accumulation of
/// `ival * wsq` (wsq = weight scale / row max scale in Q15), one f32 multiply per row.
fn int_q8<const G: usize>(out: &mut [f32], q: &[i8], wsq: &[i16], rs: &[f32], xq: &[i8], xsc: f32) {
    let stride = xq.len();
    let groups = stride / G;
    let blocks = out
        .chunks_exact_mut(4)
        .zip(q.chunks_exact(4 * stride))
        .zip(wsq.chunks_exact(4 * groups).zip(rs.chunks_exact(4)));
    for ((o, wr), (sr, rsr)) in blocks {
        let (w0, wr) = wr.split_at(stride);
        let (w1, wr) = wr.split_at(stride);
        let (w2, w3) = wr.split_at(stride);
        let (s0, sr) = sr.split_at(groups);
        let (s1, sr) = sr.split_at(groups);
        let (s2, s3) = sr.split_at(groups);
        let mut acc = [0i64; 4];
        let it = xq
            .chunks_exact(G)
            .zip(w0.chunks_exact(G).zip(w1.chunks_exact(G)))
            .zip(w2.chunks_exact(G).zip(w3.chunks_exact(G)))
            .zip(s0.iter().zip(s1).zip(s2.iter().zip(s3)));
        for (((xg, (g0, g1)), (g2, g3)), ((&a0, &a1), (&a2, &a3))) in it {
            acc[0] += idot::<G>(g0, xg) as i64 * a0 as i64;
            acc[1] += idot::<G>(g1, xg) as i64 * a1 as i64;
            acc[2] += idot::<G>(g2, xg) as i64 * a2 as i64;
            acc[3] += idot::<G>(g3, xg) as i64 * a3 as i64;
        }
        for r in 0..4 {
            o[r] = acc[r] as f32 * (rsr[r] * xsc);
        }
    }
}

#[no_mangle]
extern "C" fn rv32bench_main() -> ! {
    let mut c = Console::new();
    per_call(&mut c, "f32 add", 4, |x, y, _| x + y);
    per_call(&mut c, "f32 mul", 4, |x, y, _| x * y);
    per_call(&mut c, "f32 div", 4, |x, y, _| x / y);
    per_call(&mut c, "f32 compare", 4, |x, y, _| if x > y { x } else { y });
    per_call(&mut c, "i32 as f32", 4, |x, _, _| (x.to_bits() as i32 >> 14) as f32);
    per_call(&mut c, "f32 as i8", 4, |x, _, _| (x * 40.0) as i8 as f32);
    per_call(&mut c, "libm::expf", 4, |x, _, _| libm::expf(-libm::fabsf(x)));
    per_call(&mut c, "libm::fmaf", 4, libm::fmaf);
    per_call(
        &mut c,
        "kernels::unrolled::fmaf_soft",
        4,
        esp_llm_engine::kernels::unrolled::fmaf_soft,
    );
    per_call(&mut c, "libm::sinf", 1, |x, _, _| libm::sinf(x * 10.0));
    per_call(&mut c, "libm::roundf", 4, |x, _, _| libm::roundf(x * 20.0));
    per_call(&mut c, "libm::sqrtf", 4, |x, _, _| libm::sqrtf(libm::fabsf(x)));
    let mut att: Vec<f32> = (0..33).map(val).collect();
    let t0 = instret();
    for _ in 0..50 {
        softmax(black_box(&mut att));
    }
    let _ =
        writeln!(c, "op math::softmax (33 values): {} instructions/call", (instret() - t0) / 50);
    let x: Vec<f32> = (0..64).map(val).collect();
    let (mut xq, mut xs) = (alloc::vec![0i8; 64], alloc::vec![0f32; 16]);
    let t0 = instret();
    for _ in 0..50 {
        quantize(black_box(&mut xq), &mut xs, black_box(&x), 4);
    }
    let _ = writeln!(
        c,
        "op math::quantize (64 values, group 4): {} instructions/call",
        (instret() - t0) / 50
    );

    // One int8 token's matmuls (each matrix once), engine kernels vs the integer experiment.
    let ck = match Checkpoint::parse(&Q80_MODEL.0) {
        Ok(ck) => ck,
        Err(e) => {
            let _ = writeln!(c, "ERROR: {e}");
            c.flush();
            exit(1)
        }
    };
    let kern = kernels::best();
    let (mut macs, mut t_engine, mut t_int) = (0u64, 0u64, 0u64);
    for (_name, _, m) in ck.weights.matrices() {
        let Matrix::Q8(m) = m else { continue };
        if m.group != 4 || m.rows % 4 != 0 {
            continue;
        }
        let (stride, rows, groups) = (m.stride, m.rows, m.stride / m.group);
        let xf: Vec<f32> = (0..stride as u32).map(val).collect();
        let mut xq = alloc::vec![0i8; stride];
        let mut xs = alloc::vec![0f32; groups];
        quantize(&mut xq, &mut xs, &xf, m.group);
        let mut out = alloc::vec![0f32; rows];
        let t0 = instret();
        kern.matmul_q8(&mut out, m.q, &m.s, &xq, &xs, m.group);
        t_engine += instret() - t0;
        // Fixed-point scales for the experiment (load-time work, not counted).
        let mut rs = alloc::vec![0f32; rows];
        let mut wsq = alloc::vec![0i16; rows * groups];
        for r in 0..rows {
            let s = &m.s[r * groups..(r + 1) * groups];
            let mx = s.iter().fold(0.0f32, |a, &b| if b > a { b } else { a });
            rs[r] = mx / 32767.0;
            for g in 0..groups {
                wsq[r * groups + g] = if mx > 0.0 { (s[g] / mx * 32767.0) as i16 } else { 0 };
            }
        }
        let t0 = instret();
        int_q8::<4>(&mut out, m.q, &wsq, &rs, &xq, xs[0]);
        t_int += instret() - t0;
        black_box(&out);
        macs += (rows * stride) as u64;
    }
    let _ = writeln!(c, "q8 token matmuls: {macs} multiply-adds");
    let _ = writeln!(c, "q8 engine kernels ({}): {t_engine} instructions", kern.name());
    let _ = writeln!(c, "q8 integer-only experiment: {t_int} instructions");
    c.flush();
    exit(0)
}
