//! The float arithmetic of the LX7 kernels (crates/engine/src/kernels/lx7/) that the emulator
//! cannot prove on every input, checked here on the host over every input it can meet: the
//! divisions of exp.S and the rounding of quant.S's fast path.
//!
//! The ESP32-S3's FPU has no divide instruction. exp.S divides with fused multiply-adds
//! (MADD.S / MSUB.S, one rounding each, as `f32::mul_add` here): a seed, Newton steps for the
//! reciprocal, and for a quotient two Markstein corrections. Whether such a sequence gives the
//! correctly rounded quotient is a property of the inputs it meets, so it is proven by trying
//! them all. The functions below are the twins of exp.S's macros, operation for operation; the
//! emulator's kernel checks (bench/lx7) then prove the assembly equal to the scalar kernels on
//! random shapes, and these tests prove the method exact on every input.
//!
//! The full sweeps take a few seconds in a release build and minutes in a debug one, so the
//! default tests take a fixed stride through the inputs and the full sweeps are `#[ignore]`d:
//!
//!     cargo test --release -p esp-llm-engine --test lx7_float -- --ignored

use esp_llm_engine::math::expf;

/// expf's polynomial constants (math.rs `expf`, FreeBSD's e_expf.c).
const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
const P1: f32 = f32::from_bits(0x3e2a_aa8f);
const P2: f32 = f32::from_bits(0xbb35_5215);

/// exp.S's seed of `1 / (2 - c)` as a line in `c`: `D0 + D1 * c` (one MADD.S). It is the
/// minimax line in `b = 2 - c` over b in [1.6734, 2.3666] (the range `b` takes over every
/// fast-path input, measured by `exp_division_inputs_stay_in_the_seed_range`), rewritten in
/// c: relative error below 1.5%.
const D0: f32 = f32::from_bits(0x3f01_e642);
const D1: f32 = f32::from_bits(0x3e7e_b5c3);

/// The range of `b` the seed was fitted to.
const B_MIN: f32 = 1.673_403_5;
const B_MAX: f32 = 2.366_554_7;

/// exp.S's `reciprocal` magic: `bits(y0) = MAGIC - bits(b)` halves the exponent's sign and
/// approximates 1/b within 5.1% for every positive normal b whose reciprocal is normal.
const MAGIC: u32 = 0x7ef3_11c3;

/// expf's range reduction (math.rs) on its fast path: `(k, hi, lo)` with the reduced
/// argument `hi - lo`. None outside the fast path (|x| >= 87.34, tiny x, inf, NaN).
fn expf_reduction(x: f32) -> Option<(i32, f32, f32)> {
    let bits = x.to_bits();
    let hx = bits & 0x7fff_ffff;
    if hx >= 0x42ae_ac50 || hx <= 0x3900_0000 {
        return None;
    }
    let sign = (bits >> 31) as i32;
    Some(if hx > 0x3eb1_7218 {
        let k = if hx > 0x3f85_1592 {
            (INV_LN2 * x + [0.5f32, -0.5][sign as usize]) as i32
        } else {
            1 - sign - sign
        };
        (k, x - k as f32 * LN2_HI, k as f32 * LN2_LO)
    } else {
        (0, x, 0.0)
    })
}

/// The fast path of expf (math.rs), up to the division: `(a, b) = (x * c, 2 - c)` and `c`.
/// None outside the fast path.
fn expf_division_operands(x: f32) -> Option<(f32, f32, f32)> {
    let (_, hi, lo) = expf_reduction(x)?;
    // k = 0 gives hi = x, lo = +0: hi - lo = x exactly (math.rs's third case).
    let x = hi - lo;
    let xx = x * x;
    let c = x - xx * (P1 + xx * P2);
    Some((x * c, 2.0 - c, c))
}

/// One Newton step for `y ~ 1/b`: `e = 1 - b*y` (CONST.S, MSUB.S), `y = y + e*y` (MADD.S).
fn newton(y: f32, b: f32) -> f32 {
    let e = (-b).mul_add(y, 1.0);
    e.mul_add(y, y)
}

/// exp.S's `exp_quotient`: `a / b` for the operands of expf's fast path. Seed from c, two
/// Newton steps, `q = a*y` (MUL.S), `corr` Markstein corrections `r = a - q*b` (MSUB.S:
/// exact), `q = q + r*y` (MADD.S): two in SwiGLU, one in softmax (negative arguments only).
fn div_exp(a: f32, b: f32, c: f32, corr: usize) -> f32 {
    let y = newton(newton(c.mul_add(D1, D0), b), b);
    let mut q = a * y;
    for _ in 0..corr {
        let r = (-q).mul_add(b, a);
        q = r.mul_add(y, q);
    }
    q
}

/// exp.S's `reciprocal`: `1 / b` for 1 <= b < 2^120: the magic seed, four Newton steps. None
/// when b's mantissa is all ones (the one case where the last Newton step rounds the wrong
/// way: exp.S sends it to the FPU's full division sequence).
fn reciprocal(b: f32) -> Option<f32> {
    if b.to_bits().wrapping_add(1) << 9 == 0 {
        return None;
    }
    let mut y = f32::from_bits(MAGIC.wrapping_sub(b.to_bits()));
    for _ in 0..4 {
        y = newton(y, b);
    }
    Some(y)
}

/// Every f32 whose magnitude's bits lie in `lo..hi`, both signs, taking every `stride`-th.
fn sweep(lo: u32, hi: u32, stride: usize, f: impl FnMut(f32)) {
    sweep_signs(&[0, 0x8000_0000], lo, hi, stride, f)
}

/// As [`sweep`], with the given sign bits only.
fn sweep_signs(signs: &[u32], lo: u32, hi: u32, stride: usize, mut f: impl FnMut(f32)) {
    for &sign in signs {
        for hx in (lo..hi).step_by(stride) {
            f(f32::from_bits(sign | hx));
        }
    }
}

/// The expf fast path's inputs: hx in 0x39000001..0x42aeac50.
const EXP_LO: u32 = 0x3900_0001;
const EXP_HI: u32 = 0x42ae_ac50;

/// `div_exp` with `corr` corrections against `a / b` for every `stride`-th fast-path x with
/// the given signs.
fn check_exp_division(signs: &[u32], corr: usize, stride: usize) {
    let (mut n, mut bad) = (0u64, Vec::new());
    sweep_signs(signs, EXP_LO, EXP_HI, stride, |x| {
        let (a, b, c) = expf_division_operands(x).unwrap();
        n += 1;
        if div_exp(a, b, c, corr).to_bits() != (a / b).to_bits() && bad.len() < 8 {
            bad.push(x.to_bits());
        }
    });
    assert!(n > 1000, "only {n} inputs");
    assert!(bad.is_empty(), "div_exp differs from a / b for x bits {bad:08x?} (of {n} inputs)");
}

const BOTH: &[u32] = &[0, 0x8000_0000];
const NEGATIVE: &[u32] = &[0x8000_0000];

#[test]
fn exp_division_is_ieee_division_sampled() {
    check_exp_division(BOTH, 2, 61);
    check_exp_division(NEGATIVE, 1, 61);
}

#[test]
#[ignore = "every expf fast-path input: run with --release -- --ignored"]
fn exp_division_is_ieee_division_everywhere() {
    check_exp_division(BOTH, 2, 1);
}

/// Softmax's exponentials take x - max < 0 on the fast path (a NaN, an infinity or a zero
/// leaves it): one correction is enough there. (With positive arguments it is not: x bits
/// 0x3a729c92 needs the second.)
#[test]
#[ignore = "every negative expf fast-path input: run with --release -- --ignored"]
fn exp_division_with_one_correction_is_ieee_for_negative_arguments() {
    check_exp_division(NEGATIVE, 1, 1);
}

#[test]
fn one_correction_is_not_enough_for_positive_arguments() {
    let (a, b, c) = expf_division_operands(f32::from_bits(0x3a72_9c92)).unwrap();
    assert_ne!(div_exp(a, b, c, 1).to_bits(), (a / b).to_bits());
    assert_eq!(div_exp(a, b, c, 2).to_bits(), (a / b).to_bits());
}

/// The twin of the operands is math.rs's expf: finishing it with IEEE division gives expf.
#[test]
fn the_operands_are_those_of_math_expf() {
    sweep(EXP_LO, EXP_HI, 997, |x| {
        let bits = x.to_bits();
        let (k, hi, lo) = expf_reduction(x).unwrap();
        let (a, b, c) = expf_division_operands(x).unwrap();
        let y = 1.0 + (div_exp(a, b, c, 2) - lo + hi);
        let e = y * f32::from_bits(((127 + k) as u32) << 23);
        assert_eq!(e.to_bits(), expf(x).to_bits(), "x bits {bits:08x}");
    });
}

#[test]
fn exp_division_inputs_stay_in_the_seed_range() {
    sweep(EXP_LO, EXP_HI, 31, |x| {
        let (a, b, _) = expf_division_operands(x).unwrap();
        assert!((B_MIN..=B_MAX).contains(&b), "b = {b} for x bits {:08x}", x.to_bits());
        assert!((0.0..0.13).contains(&a), "a = {a}");
    });
}

#[test]
fn the_seed_constants_are_the_minimax_line() {
    // y0 = C0 + C1 * b with equal relative error at both ends and at the middle:
    // C1 = -2 / (M^2 + L*H), C0 = -2 * C1 * M (M the midpoint); in c = 2 - b:
    // D0 = C0 + 2*C1, D1 = -C1.
    let (l, h) = (B_MIN as f64, B_MAX as f64);
    let m = (l + h) / 2.0;
    let c1 = -2.0 / (m * m + l * h);
    let c0 = -2.0 * c1 * m;
    assert_eq!(D1, (-c1) as f32);
    assert_eq!(D0, (c0 + 2.0 * c1) as f32);
}

/// Every mantissa, in a few binades: the reciprocal is 1/b, or None exactly for the all-ones
/// mantissa.
#[test]
fn reciprocal_is_ieee_for_every_mantissa() {
    for exp in [0u32, 1, 7, 60, 119] {
        let base = (127 + exp) << 23;
        let step = if exp == 0 { 1 } else { 13 };
        for m in (0..1u32 << 23).step_by(step).chain([0x7f_ffff]) {
            let b = f32::from_bits(base | m);
            match reciprocal(b) {
                Some(y) => {
                    assert_eq!(y.to_bits(), (1.0 / b).to_bits(), "b bits {:08x}", b.to_bits())
                }
                None => assert_eq!(m, 0x7f_ffff, "b bits {:08x}", b.to_bits()),
            }
        }
    }
}

/// SwiGLU's `1 / (1 + expf(-val))` for the val exp.S's fast path takes (|val| < 80).
fn check_swiglu_reciprocal(stride: usize) {
    let (mut n, mut bad) = (0u64, Vec::new());
    sweep(0, 0x42a0_0000, stride, |val| {
        let b = 1.0 + expf(-val);
        n += 1;
        if let Some(y) = reciprocal(b) {
            if y.to_bits() != (1.0 / b).to_bits() && bad.len() < 8 {
                bad.push(val.to_bits());
            }
        }
    });
    assert!(n > 1000);
    assert!(bad.is_empty(), "reciprocal differs from 1 / b for val bits {bad:08x?} (of {n})");
}

#[test]
fn swiglu_reciprocal_is_ieee_sampled() {
    check_swiglu_reciprocal(1009);
}

#[test]
#[ignore = "every SwiGLU fast-path input: run with --release -- --ignored"]
fn swiglu_reciprocal_is_ieee_everywhere() {
    check_swiglu_reciprocal(1);
}

/// quant.S's `round_store_fast`: `roundf(d) as i8` as TRUNC.S(2d) - TRUNC.S(d) (TRUNC.S with
/// scale 1 truncates 2d, exactly), on every float with |d| < 127.5 (the fast path has |d| <= 127.00001) and on NaN.
fn check_quant_rounding(stride: usize) {
    let trunc = |d: f32| d as i32; // toward zero, saturating; NaN -> 0 (TRUNC.S: the same value twice)
    let mut n = 0u64;
    for sign in [0u32, 0x8000_0000] {
        for bits in
            (0..0x42ff_0000u32).step_by(stride).chain([0x3eff_ffff, 0x3f00_0000, 0x42fe_ffff])
        {
            let d = f32::from_bits(sign | bits);
            let fast = (trunc(2.0 * d) - trunc(d)) as i8;
            assert_eq!(fast, libm_roundf_as_i8(d), "d bits {:08x}", d.to_bits());
            n += 1;
        }
    }
    assert!(n > 1000);
    assert_eq!((trunc(2.0 * f32::NAN) - trunc(f32::NAN)) as i8, libm_roundf_as_i8(f32::NAN));
}

#[test]
fn quant_rounding_is_roundf_sampled() {
    check_quant_rounding(257);
}

#[test]
#[ignore = "every float below 127.5: run with --release -- --ignored"]
fn quant_rounding_is_roundf_everywhere() {
    check_quant_rounding(1);
}

/// The scalar twin's rounding (math.rs `quantize`).
fn libm_roundf_as_i8(d: f32) -> i8 {
    libm::roundf(d) as i8
}
