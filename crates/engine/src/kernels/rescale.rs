//! [`Rescale`]: the fixed-point numerics' real multiplier as an integer multiply and shift, the
//! last step of [`super::Kernels::matmul_q8_fixed`] (see [`crate::fixed`]).

/// A non-negative real multiplier `m * 2^-shift` with a 15-bit mantissa `m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rescale {
    /// Mantissa, `2^14 <= m < 2^15` (or 0).
    pub m: i32,
    /// Right shift, at most 62.
    pub shift: u32,
}

impl Rescale {
    /// Multiplies by zero.
    pub const ZERO: Rescale = Rescale { m: 0, shift: 0 };
    /// The largest multiplier (`2^15`); larger ones saturate to it.
    pub const MAX: Rescale = Rescale { m: 1 << 15, shift: 0 };

    /// The multiplier nearest below `f` (truncated to 15 significant bits), from the bits of
    /// `f` alone (no float arithmetic). Negative, NaN and subnormal values give zero, values of
    /// `2^15` and more (and infinity) saturate.
    pub fn from_f32(f: f32) -> Rescale {
        let bits = f.to_bits();
        let exp = ((bits >> 23) & 0xff) as i32;
        if bits >> 31 != 0 || exp == 0 || (exp == 0xff && bits & 0x7f_ffff != 0) {
            return Rescale::ZERO;
        }
        // f = mant24 * 2^(exp - 150) = (mant24 >> 9) * 2^(exp - 141), up to the dropped bits.
        let m = (((bits & 0x7f_ffff) | 0x80_0000) >> 9) as i32;
        let shift = 141 - exp;
        if shift < 0 {
            Rescale::MAX
        } else if shift > 62 {
            Rescale::ZERO
        } else {
            Rescale { m, shift: shift as u32 }
        }
    }

    /// `round(s * m / 2^shift)` (half up), saturated to `i32`, with `m` taken in
    /// `0..=2^15` (the range [`Rescale::from_f32`] gives; other values are clamped, the same
    /// way as in [`Rescale::apply_group`]). The product wraps for `|s| >= 2^48`, which int8
    /// rows cannot reach (a group sum is below 2^21 for groups up to 64, times an `i16` scale,
    /// times at most 2^11 groups).
    #[inline]
    pub fn apply(self, s: i64) -> i32 {
        self.round_shift(s.wrapping_mul(self.mantissa() as i64))
    }

    /// `apply(iv * ws)`, the same value for a row of one group, with 32-bit multiplies only
    /// (`ws * m` fits in `i32`): cheaper on RV32.
    #[inline]
    pub fn apply_group(self, iv: i32, ws: i16) -> i32 {
        let c = ws as i32 * self.mantissa();
        self.round_shift(iv as i64 * c as i64)
    }

    /// `m` clamped to `0..=2^15`: non-negative (one multiply fewer on 32-bit cores) and small
    /// enough for `ws * m` to fit in `i32`.
    #[inline(always)]
    fn mantissa(self) -> i32 {
        self.m.clamp(0, 1 << 15)
    }

    #[inline(always)]
    fn round_shift(self, p: i64) -> i32 {
        let r = if self.shift == 0 {
            p
        } else {
            p.wrapping_add(1i64 << (self.shift - 1)) >> self.shift
        };
        if r as i32 as i64 == r {
            r as i32
        } else if r < 0 {
            i32::MIN
        } else {
            i32::MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rescale_is_within_its_precision(f in 1e-9f32..30000.0, s in -(1i64 << 40)..(1i64 << 40)) {
            let r = Rescale::from_f32(f);
            let want = s as f64 * f as f64;
            let got = r.apply(s) as f64;
            let clamped = want.clamp(i32::MIN as f64, i32::MAX as f64);
            // 15 significant bits of the multiplier, and rounding.
            prop_assert!((got - clamped).abs() <= clamped.abs() * 6.2e-5 + 1.0,
                "{s} * {f}: {got} vs {want}");
        }

        #[test]
        fn apply_group_is_apply(iv in any::<i32>(), ws in any::<i16>(), m in any::<i32>(), shift in 0u32..63) {
            let r = Rescale { m, shift };
            prop_assert_eq!(r.apply_group(iv, ws), r.apply(iv as i64 * ws as i64));
        }

    }

    #[test]
    fn rescale_edges() {
        assert_eq!(Rescale::from_f32(0.0), Rescale::ZERO);
        assert_eq!(Rescale::from_f32(-1.0), Rescale::ZERO);
        assert_eq!(Rescale::from_f32(f32::NAN), Rescale::ZERO);
        assert_eq!(Rescale::from_f32(f32::INFINITY), Rescale::MAX);
        assert_eq!(Rescale::from_f32(1e30), Rescale::MAX);
        assert_eq!(Rescale::from_f32(1.0).apply(12345), 12345);
        assert_eq!(Rescale::from_f32(0.5).apply(-3), -1); // -1.5 rounds half up
        assert_eq!(Rescale::MAX.apply(1 << 40), i32::MAX);
        assert_eq!(Rescale::MAX.apply(-(1 << 40)), i32::MIN);
    }
}
