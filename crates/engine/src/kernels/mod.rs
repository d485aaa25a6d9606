//! The hot loops behind one trait, so that a chip or CPU can bring its own fast versions.
//!
//! [`Scalar`] is the reference: it sums in the same order as llama2.c (`run.c`'s `matmul` adds
//! products left to right in f32; `runq.c` accumulates int8 products per group in i32 and adds
//! `ival * w_scale * x_scale` to an f32 per group). Every fast kernel is tested against it.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod interleaved;
#[cfg(target_arch = "x86_64")]
mod interleaved_x86;
#[cfg(all(target_arch = "xtensa", feature = "lx7"))]
pub mod lx7;
pub mod scalar;
pub mod unrolled;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub mod rescale;
pub use crate::math::Math;
pub use rescale::Rescale;
pub use scalar::Scalar;
pub use unrolled::Unrolled;

/// Matrix-vector products over row ranges. `out.len()` is the number of rows computed; the
/// weight slices start at the first of those rows.
pub trait Kernels: Sync {
    /// A short name for logs (`esp-llm run -v`).
    fn name(&self) -> &'static str;

    /// `out[r] = sum_j w[r * n + j] * x[j]` with `n = x.len()`.
    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]);

    /// Int8 rows of `stride = xq.len()` values with one scale per `group` values:
    /// `out[r] = sum_g (sum_k xq[g*G+k] * wq[r*stride+g*G+k]) as f32 * ws[r*G'+g] * xs[g]`
    /// where `G' = stride / group`, adding groups left to right in f32.
    fn matmul_q8(
        &self,
        out: &mut [f32],
        wq: &[i8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    );

    /// Int4 rows: as [`Kernels::matmul_q8`] with the weights packed two per byte, row `r`'s
    /// value `k` in byte `r * stride / 2 + k / 2`, low nibble first, signed (two's complement
    /// `-8..=7`). The input is the same int8-quantized activation vector; each group's integer
    /// dot product is exact, and the groups are added left to right with the same
    /// `fma(ival * w_scale, x_scale, val)` as the int8 kernel, so an int4 matrix gives bit for
    /// bit what the int8 kernel gives on its unpacked values. The group size must be even and
    /// divide the stride; other shapes give zeros (the loaders never build them).
    fn matmul_q4(
        &self,
        out: &mut [f32],
        wq: &[u8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        scalar::matmul_q4(out, wq, ws, xq, xs, group)
    }

    /// runq.c's activation quantization of `x` into `q`/`s` ([`crate::math::quantize`]): the
    /// input of the int8 matmuls, once per vector.
    fn quantize(&self, q: &mut [i8], s: &mut [f32], x: &[f32], group: usize) {
        crate::math::quantize(q, s, x, group)
    }

    /// RMSNorm `o = weight * (x / sqrt(mean(x^2) + 1e-5))` ([`crate::math::rmsnorm`]).
    fn rmsnorm(&self, o: &mut [f32], x: &[f32], weight: &[f32]) {
        crate::math::rmsnorm(o, x, weight)
    }

    /// [`Kernels::rmsnorm`] with the output over its input ([`crate::math::rmsnorm_in_place`]).
    fn rmsnorm_in_place(&self, x: &mut [f32], weight: &[f32]) {
        crate::math::rmsnorm_in_place(x, weight)
    }

    /// SwiGLU `h1 = silu(h1) * h3` with `math`'s `exp` ([`Math::swiglu`]).
    fn swiglu(&self, h1: &mut [f32], h3: &[f32], math: Math) {
        math.swiglu(h1, h3)
    }

    /// One head's attention at one position, run.c's inner loop: for every cached position
    /// `t < att.len()`, `att[t] = (q · keys[t * kv_dim..][..q.len()]) / scale.inv()`, then the softmax
    /// of `att` ([`Math::softmax`]), then `out = sum_t att[t] * values[t * kv_dim..]`, each
    /// sum left to right. `out.len() == q.len()` is the head size.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        out: &mut [f32],
        att: &mut [f32],
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        kv_dim: usize,
        scale: AttnScale,
        math: Math,
    ) {
        scalar::attend(out, att, q, keys, values, kv_dim, scale, math)
    }

    /// The fixed-point int8 matmul ([`crate::fixed`]): per row
    /// `out[r] = scale.apply(sum_g (sum_k xq[g*G+k] * wq[r*stride+g*G+k]) * ws[r*G'+g])`, the
    /// group sums in `i32` and their weighted sum in `i64` (both wrapping), so any summation
    /// order gives the same result. Shapes as [`Kernels::matmul_q8`]; a group size that does
    /// not divide the stride gives zeros.
    fn matmul_q8_fixed(
        &self,
        out: &mut [i32],
        wq: &[i8],
        ws: &[i16],
        xq: &[i8],
        group: usize,
        scale: Rescale,
    ) {
        scalar::matmul_q8_fixed(out, wq, ws, xq, group, scale)
    }

    /// Whether these kernels run f32 matmuls faster over matrices repacked at load time into
    /// the row-interleaved layout ([`interleaved`], [`crate::Layout::Auto`]) than over the
    /// checkpoint's rows in place.
    fn prefers_interleaved(&self) -> bool {
        false
    }

    /// Rows `first..first + out.len()` of the whole f32 matrix `w` of `x.len()` columns,
    /// repacked into the row-interleaved layout ([`interleaved::pack`]), times `x`: the same
    /// floats as [`Kernels::matmul_f32`] over those rows in row-major order.
    fn matmul_f32_interleaved(&self, out: &mut [f32], w: &[f32], x: &[f32], first: usize) {
        interleaved::matmul(out, w, x, first)
    }
}

/// The attention scores' divisor, run.c's `sqrtf(head_size)`, with its reciprocal rounded to
/// nearest: both computed once per model rather than once per head and position (on the
/// S3 each is a soft-float call). A kernel may use `recip` only where it proves the
/// quotient equal to `score / inv` (lx7's fused division); the scalar twin divides by `inv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnScale {
    inv: f32,
    recip: f32,
}

impl AttnScale {
    /// run.c's divisor for heads of `head_size` values.
    pub fn of_head(head_size: usize) -> Self {
        Self::dividing_by(libm::sqrtf(head_size as f32))
    }

    /// Scores divided by `inv` (any value: the kernels check the range they can fuse).
    pub fn dividing_by(inv: f32) -> Self {
        AttnScale { inv, recip: 1.0 / inv }
    }

    /// The divisor, `sqrtf(head_size)` for [`AttnScale::of_head`].
    pub fn inv(self) -> f32 {
        self.inv
    }

    /// `1.0 / inv`, rounded to nearest (the fields are private so that it always is).
    pub fn recip(self) -> f32 {
        self.recip
    }
}

/// Checks the slice lengths the unsafe kernels rely on; on a mismatch the caller falls back
/// to the scalar twin (which panics or truncates exactly as it always did).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "xtensa")),
    allow(dead_code)
)]
fn f32_shapes_ok(out: &[f32], w: &[f32], x: &[f32]) -> bool {
    !x.is_empty() && out.len().checked_mul(x.len()).is_some_and(|n| n <= w.len())
}

/// The lengths the int8 SIMD kernels rely on: a group dividing a non-empty row, enough weights,
/// scales and input scales for `out.len()` rows.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "xtensa")),
    allow(dead_code)
)]
fn q8_shapes_ok(out: &[f32], wq: &[i8], ws: &[f32], xq: &[i8], xs: &[f32], group: usize) -> bool {
    let stride = xq.len();
    if group == 0 || stride == 0 || !stride.is_multiple_of(group) {
        return false;
    }
    let groups = stride / group;
    xs.len() >= groups
        && out.len().checked_mul(stride).is_some_and(|n| n <= wq.len())
        && out.len().checked_mul(groups).is_some_and(|n| n <= ws.len())
}

/// The lengths the int4 SIMD kernels rely on: a group that is a multiple of 16 dividing a
/// non-empty row, enough packed weights (`stride / 2` bytes per row), scales and input scales.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "xtensa")),
    allow(dead_code)
)]
fn q4_shapes_ok(out: &[f32], wq: &[u8], ws: &[f32], xq: &[i8], xs: &[f32], group: usize) -> bool {
    let stride = xq.len();
    if group == 0 || !group.is_multiple_of(16) || stride == 0 || !stride.is_multiple_of(group) {
        return false;
    }
    let groups = stride / group;
    xs.len() >= groups
        && out.len().checked_mul(stride / 2).is_some_and(|n| n <= wq.len())
        && out.len().checked_mul(groups).is_some_and(|n| n <= ws.len())
}

/// Every kernel set this machine can run, fastest first (the scalar twin last).
///
/// With the `std` feature the CPU is asked at run time; without it only the features the
/// build targets (`-C target-feature`) count.
pub fn available() -> alloc::vec::Vec<&'static dyn Kernels> {
    let mut v: alloc::vec::Vec<&'static dyn Kernels> = alloc::vec::Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = x86_64::Avx512::detect() {
            v.push(k);
        }
        if let Some(k) = x86_64::Avx2::detect() {
            v.push(k);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if let Some(k) = aarch64::NeonDot::detect() {
            v.push(k);
        }
        if let Some(k) = aarch64::Neon::detect() {
            v.push(k);
        }
    }
    #[cfg(all(target_arch = "xtensa", feature = "lx7"))]
    v.push(&lx7::Lx7);
    v.push(&Unrolled);
    v.push(&Scalar);
    v
}

/// The best kernels for the machine this runs on.
pub fn best() -> &'static dyn Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(k) = x86_64::Avx512::detect() {
            return k;
        }
        if let Some(k) = x86_64::Avx2::detect() {
            return k;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if let Some(k) = aarch64::NeonDot::detect() {
            return k;
        }
        if let Some(k) = aarch64::Neon::detect() {
            return k;
        }
    }
    #[cfg(all(target_arch = "xtensa", feature = "lx7"))]
    return &lx7::Lx7;
    // In-order cores without SIMD (RISC-V ESP chips) gain from four rows per pass; bit-identical.
    #[cfg(any(
        target_arch = "riscv32",
        target_arch = "riscv64",
        all(target_arch = "xtensa", not(feature = "lx7"))
    ))]
    return &Unrolled;
    #[cfg(not(any(target_arch = "riscv32", target_arch = "riscv64", target_arch = "xtensa")))]
    &Scalar
}

/// The kernels selected by `name` (as printed by [`Kernels::name`]), if this machine runs them.
pub fn by_name(name: &str) -> Option<&'static dyn Kernels> {
    available().into_iter().find(|k| k.name() == name)
}
