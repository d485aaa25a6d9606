//! The math of a transformer step that is not a matmul: RMSNorm, softmax, RoPE, SwiGLU, runq.c's
//! activation quantization, and the transcendental functions they call.
//!
//! The transcendental functions (`expf`, `cosf`, `sinf`, `powf`) come from one place, [`Math`],
//! with two sources. llama2.c calls the C library's; glibc's and the portable `libm` crate's
//! (FreeBSD's msun) disagree in the last bit on about 1% of inputs, which is enough to flip a
//! top-p draw on a flat distribution or an int8 near-tie. So a host with `std` uses the system's
//! functions by default ([`Math::System`]: llama2.c's tokens on the same C library), and the
//! boards use the portable ones ([`Math::Portable`]: the same bits on every target), which the
//! host selects wherever its output is compared with a board's. `sqrtf` is correctly rounded in
//! both and needs no choice.

/// Where `expf`, `cosf`, `sinf` and `powf` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Math {
    /// The `libm` crate's functions, compiled in: the same results on every target, what the
    /// boards run (and the host when it is compared with them: bench/rv32, the emulator tests).
    Portable,
    /// The C library's functions (through `std`): on a glibc system, what llama2.c compiled with
    /// gcc computes, token for token.
    #[cfg(feature = "std")]
    System,
}

impl Default for Math {
    /// [`Math::System`] with `std`, else [`Math::Portable`].
    fn default() -> Self {
        #[cfg(feature = "std")]
        return Math::System;
        #[cfg(not(feature = "std"))]
        Math::Portable
    }
}

impl Math {
    /// The name used on command lines and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Math::Portable => "portable",
            #[cfg(feature = "std")]
            Math::System => "system",
        }
    }

    /// `e^x`.
    #[inline]
    pub fn expf(self, x: f32) -> f32 {
        match self {
            Math::Portable => expf(x),
            #[cfg(feature = "std")]
            Math::System => x.exp(),
        }
    }

    /// `cos(x)`.
    pub fn cosf(self, x: f32) -> f32 {
        match self {
            Math::Portable => libm::cosf(x),
            #[cfg(feature = "std")]
            Math::System => x.cos(),
        }
    }

    /// `sin(x)`.
    pub fn sinf(self, x: f32) -> f32 {
        match self {
            Math::Portable => libm::sinf(x),
            #[cfg(feature = "std")]
            Math::System => x.sin(),
        }
    }

    /// `x^y`.
    pub fn powf(self, x: f32, y: f32) -> f32 {
        match self {
            Math::Portable => libm::powf(x, y),
            #[cfg(feature = "std")]
            Math::System => x.powf(y),
        }
    }

    /// Softmax in place, subtracting the maximum first (run.c's order of operations).
    pub fn softmax(self, x: &mut [f32]) {
        let Some(&first) = x.first() else { return };
        let max_val = x.iter().fold(first, |m, &v| if v > m { v } else { m });
        let mut sum = 0.0f32;
        for v in x.iter_mut() {
            *v = self.expf(*v - max_val);
            sum += *v;
        }
        for v in x.iter_mut() {
            *v /= sum;
        }
    }

    /// SwiGLU: `h1 = silu(h1) * h3` (run.c's order).
    pub fn swiglu(self, h1: &mut [f32], h3: &[f32]) {
        for (h1, h3) in h1.iter_mut().zip(h3) {
            let mut val = *h1;
            val *= 1.0f32 / (1.0f32 + self.expf(-val));
            val *= h3;
            *h1 = val;
        }
    }

    /// RoPE inverse frequencies of a head of `head_size`: `1 / 10000^(head_dim / head_size)`
    /// for every even `head_dim` (run.c's expression).
    pub fn rope_freq(self, head_size: usize) -> impl Iterator<Item = f32> {
        (0..head_size)
            .step_by(2)
            .map(move |head_dim| 1.0f32 / self.powf(10000.0f32, head_dim as f32 / head_size as f32))
    }
}

/// Softmax with the default [`Math`] (see [`Math::softmax`]).
pub fn softmax(x: &mut [f32]) {
    Math::default().softmax(x)
}

/// RMSNorm as run.c: `o = weight * (x / sqrt(mean(x^2) + 1e-5))`.
pub fn rmsnorm(o: &mut [f32], x: &[f32], weight: &[f32]) {
    let ss = inv_rms(x);
    for ((o, w), x) in o.iter_mut().zip(weight).zip(x) {
        *o = w * (ss * x);
    }
}

/// [`rmsnorm`] with the output over its input.
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[f32]) {
    let ss = inv_rms(x);
    for (x, w) in x.iter_mut().zip(weight) {
        *x = w * (ss * *x);
    }
}

fn inv_rms(x: &[f32]) -> f32 {
    let mut ss = 0.0f32;
    for v in x {
        ss += v * v;
    }
    inv_rms_from(ss, x.len())
}

/// RMSNorm's factor from the sum of squares `ss` of `n` values: `1 / sqrt(ss / n + 1e-5)`.
pub fn inv_rms_from(ss: f32, n: usize) -> f32 {
    let mut ss = ss;
    ss /= n as f32;
    ss += 1e-5f32;
    1.0f32 / libm::sqrtf(ss)
}

/// `libm::expf` (FreeBSD's algorithm), bit for bit, about 4x faster: the common range is
/// inlined and scales by `2^k` with one multiply instead of calling `scalbnf`; the rare
/// arguments (tiny, or near overflow/underflow) go to `libm::expf` itself. The libm version was
/// 53% of a stories260K token's time. (glibc's algorithm, which run.c calls, was tried too: it
/// matches the C library on all but 2 of 2.2e9 inputs but parts from the int8 goldens at the
/// known near-tie of position 186, where the libm version happens to agree with runq.c.)
#[inline]
pub fn expf(x: f32) -> f32 {
    const HALF: [f32; 2] = [0.5, -0.5];
    const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
    const LN2_LO: f32 = f32::from_bits(0x35bf_be8e);
    const INV_LN2: f32 = f32::from_bits(0x3fb8_aa3b);
    const P1: f32 = f32::from_bits(0x3e2a_aa8f);
    const P2: f32 = f32::from_bits(0xbb35_5215);
    let bits = x.to_bits();
    let hx = bits & 0x7fff_ffff;
    if hx >= 0x42ae_ac50 || hx <= 0x3900_0000 {
        return libm::expf(x);
    }
    let sign = (bits >> 31) as i32;
    let (k, hi, lo, x) = if hx > 0x3eb1_7218 {
        let k = if hx > 0x3f85_1592 {
            (INV_LN2 * x + HALF[sign as usize]) as i32
        } else {
            1 - sign - sign
        };
        let kf = k as f32;
        let hi = x - kf * LN2_HI;
        let lo = kf * LN2_LO;
        (k, hi, lo, hi - lo)
    } else {
        (0, x, 0.0, x)
    };
    let xx = x * x;
    let c = x - xx * (P1 + xx * P2);
    let y = 1.0 + (x * c / (2.0 - c) - lo + hi);
    // |x| < 87.34 keeps k in -126..=126, where 2^k is a normal f32.
    y * f32::from_bits(((127 + k) as u32) << 23)
}

/// Rotates consecutive pairs of each head of `vec` by the current position's angles.
pub fn rope(vec: &mut [f32], cos: &[f32], sin: &[f32], head_size: usize) {
    for head in vec.chunks_exact_mut(head_size) {
        for ((pair, fcr), fci) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (v0, v1) = (pair[0], pair[1]);
            pair[0] = v0 * fcr - v1 * fci;
            pair[1] = v0 * fci + v1 * fcr;
        }
    }
}

/// runq.c's `quantize`: per group, `scale = max|x| / 127`, `q = round(x / scale)` (half away
/// from zero). `x` may be shorter than `q` (padded rows): the rest quantizes as zeros.
pub fn quantize(q: &mut [i8], s: &mut [f32], x: &[f32], group: usize) {
    for (g, (qg, sg)) in q.chunks_exact_mut(group).zip(s.iter_mut()).enumerate() {
        let xg = x.get(g * group..).unwrap_or(&[]);
        let xg = &xg[..xg.len().min(group)];
        let wmax =
            xg.iter().fold(0.0f32, |m, v| if libm::fabsf(*v) > m { libm::fabsf(*v) } else { m });
        let scale = wmax / 127.0f32;
        *sg = scale;
        for (i, qv) in qg.iter_mut().enumerate() {
            let v = xg.get(i).copied().unwrap_or(0.0);
            // `as` saturates and maps NaN (0/0 for an all-zero group) to 0, like the C cast does
            // on the targets llama2.c runs on.
            *qv = libm::roundf(v / scale) as i8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `libm::expf` against ours, on every 97th f32 (set STEP to 1 for all of them: checked
    /// once, 0 differences), plus the edges.
    #[test]
    fn expf_matches_libm() {
        const STEP: u32 = 97;
        let mut checked = 0u32;
        let mut differ = 0u32;
        let mut worst_ulps = 0i64;
        let mut bits = 0u32;
        while bits < u32::MAX - STEP {
            let x = f32::from_bits(bits);
            bits += STEP;
            if x.is_nan() {
                continue;
            }
            let (a, b) = (expf(x), libm::expf(x));
            checked += 1;
            if a.to_bits() != b.to_bits() {
                differ += 1;
                worst_ulps = worst_ulps.max((a.to_bits() as i64 - b.to_bits() as i64).abs());
            }
        }
        for x in [0.0f32, -0.0, 88.7, 88.8, -103.9, -104.0, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(expf(x).to_bits(), libm::expf(x).to_bits(), "{x}");
        }
        assert!(expf(f32::NAN).is_nan());
        eprintln!("expf: {differ} of {checked} differ from libm, worst {worst_ulps} ulp");
        assert!(checked > 40_000_000);
        assert_eq!(differ, 0, "worst {worst_ulps} ulp");
    }
}
