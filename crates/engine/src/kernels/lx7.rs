//! ESP32-S3 (Xtensa LX7) kernels in assembly: the int8 and int4 matmuls on the PIE vector unit
//! and the f32 matmul on the FPU (`lx7/*.S`), bit-identical to [`Scalar`](super::Scalar).
//!
//! The assembly keeps the scalar kernels' arithmetic exactly: the int8 group sums are exact
//! integers (any order gives the same i32), each group's update is `mul.s` then one fused
//! `madd.s` (runq.c's `val += ival * ws * xs`, contracted as the reference build does), and the
//! f32 rows are summed left to right with separate `mul.s` and `add.s`. The PIE fast path needs
//! the device bundle's layout (16-byte aligned rows padded to a multiple of 16, groups of 16 or
//! more); other layouts (llama2.c's group-4 files) take the kernels' general path, still exact.
//! The int4 kernel (`q4.S`) takes the bundle's layout only (rows of whole aligned 16-byte blocks,
//! groups a multiple of 16); other shapes go to [`Scalar`](super::Scalar).
//! The kernel checks in `bench/lx7` compare them with [`Scalar`](super::Scalar) on 1800 matmul
//! shapes in the emulator; instruction counts are in docs/performance.md (LX7 section).
//!
//! Linking: `build.rs` assembles the `.S` files for Xtensa targets when this feature is on
//! (Espressif's `xtensa-esp32s3-elf-gcc` through the `cc` crate), unless
//! `ESP_LLM_LX7_ASM=external` (bench/lx7 assembles them with GNU `as` itself).

use super::{f32_shapes_ok, q4_shapes_ok, q8_shapes_ok, AttnScale, Kernels, Math, Scalar};

extern "C" {
    fn esp_llm_lx7_scores8(att: *mut f32, q: *const f32, keys: *const f32, n: u32, kv_dim: u32);
    fn esp_llm_lx7_scores8_div(
        att: *mut f32,
        q: *const f32,
        keys: *const f32,
        n: u32,
        kv_dim: u32,
        d: *const [f32; 2],
    ) -> u32;
    fn esp_llm_lx7_scores8n(
        att: *mut f32,
        q: *const f32,
        keys: *const f32,
        n: u32,
        kv_dim: u32,
        chunks: u32,
    );
    fn esp_llm_lx7_values8n(
        out: *mut f32,
        att: *const f32,
        values: *const f32,
        n: u32,
        kv_dim: u32,
        chunks: u32,
    );
    fn esp_llm_lx7_values8(out: *mut f32, att: *const f32, values: *const f32, n: u32, kv_dim: u32);
    fn esp_llm_lx7_div_scalar(out: *mut f32, x: *const f32, n: u32, d: f32);
    fn esp_llm_lx7_softmax(x: *mut f32, n: u32);
    fn esp_llm_lx7_swiglu(h1: *mut f32, h3: *const f32, n: u32);
    fn esp_llm_lx7_sumsq(x: *const f32, n: u32) -> u32;
    fn esp_llm_lx7_rmsscale(o: *mut f32, x: *const f32, w: *const f32, n: u32, ss: f32);
    fn esp_llm_lx7_matmul_f32(out: *mut f32, w: *const f32, x: *const f32, rows: u32, n: u32);
    fn esp_llm_lx7_quantize(q: *mut i8, s: *mut f32, x: *const f32, n_x: u32, n_q: u32, group: u32);
    #[allow(clippy::too_many_arguments)]
    fn esp_llm_lx7_matmul_q8(
        out: *mut f32,
        wq: *const i8,
        ws: *const f32,
        xq: *const i8,
        xs: *const f32,
        rows: u32,
        stride: u32,
        group: u32,
    );
    #[allow(clippy::too_many_arguments)]
    fn esp_llm_lx7_matmul_q4(
        out: *mut f32,
        wq: *const u8,
        ws: *const f32,
        xq: *const i8,
        xs: *const f32,
        rows: u32,
        stride: u32,
        group: u32,
    );
}

/// `expf` for the arguments exp.S leaves to Rust (|x| >= 87.34, infinities, NaN): the portable
/// [`crate::math::expf`], bit for bit what the assembly computes for the others.
#[no_mangle]
pub extern "C" fn esp_llm_lx7_expf_slow(bits: u32) -> u32 {
    crate::math::expf(f32::from_bits(bits)).to_bits()
}

/// The longest int8 input row copied to an aligned buffer (stories110M's hidden_dim).
const ALIGNED_ROW: usize = 2048;

/// The longest int4 row q4.S takes: it copies x to its stack (stride + 32..47 bytes), about as
/// much as the int8 path's aligned copy ([`ALIGNED_ROW`]).
const Q4_STACK_ROW: usize = 2048;

/// A 16-byte aligned row of int8 inputs.
#[repr(C, align(16))]
struct AlignedRow([i8; ALIGNED_ROW]);

/// The LX7 assembly kernels (PIE int8, FPU f32).
#[derive(Debug, Default, Clone, Copy)]
pub struct Lx7;

impl Kernels for Lx7 {
    fn name(&self) -> &'static str {
        "lx7"
    }

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
        let (n, hs, inv) = (att.len(), q.len(), scale.inv());
        // The rows the kernels read: n of kv_dim floats apart, hs long.
        let need =
            n.checked_sub(1).and_then(|m| m.checked_mul(kv_dim)).and_then(|m| m.checked_add(hs));
        let fits = need.is_some_and(|need| need <= keys.len() && need <= values.len());
        if math != Math::Portable
            || hs == 0
            || !hs.is_multiple_of(8)
            || out.len() != hs
            || !fits
            || n > u32::MAX as usize
            || kv_dim > (u32::MAX / 4) as usize
        {
            return super::scalar::attend(out, att, q, keys, values, kv_dim, scale, math);
        }
        if hs > 8 {
            // Heads of 8 * chunks values, a chunk of the query (or of the output) in registers
            // per pass over the positions; the division and the softmax as for 8.
            let chunks = (hs / 8) as u32;
            // SAFETY: `keys` and `values` hold rows t * kv_dim .. + hs for every t < n
            // (checked above), `att` has n floats and `q`/`out` hs; the kernels read and write
            // only those.
            unsafe {
                esp_llm_lx7_scores8n(
                    att.as_mut_ptr(),
                    q.as_ptr(),
                    keys.as_ptr(),
                    n as u32,
                    kv_dim as u32,
                    chunks,
                );
                esp_llm_lx7_div_scalar(att.as_mut_ptr(), att.as_ptr(), n as u32, inv);
                esp_llm_lx7_softmax(att.as_mut_ptr(), n as u32);
                esp_llm_lx7_values8n(
                    out.as_mut_ptr(),
                    att.as_ptr(),
                    values.as_ptr(),
                    n as u32,
                    kv_dim as u32,
                    chunks,
                );
            }
            return;
        }
        // The division by sqrt(head_size) fused into the scores when 1 <= inv < 2^16 (div.S's
        // fast path; RN(1/inv) computed once per model, AttnScale), else, or when a score was zero,
        // subnormal or huge, the scores and the division in two passes.
        let d = [inv, scale.recip()];
        let fused = (1.0..65536.0).contains(&inv);
        // SAFETY: `keys` and `values` hold rows t * kv_dim .. + 8 for every t < n (checked
        // above), `att` has n floats, `q`/`out` 8 and `d` 2; the kernels touch nothing else.
        let done = fused
            && unsafe {
                esp_llm_lx7_scores8_div(
                    att.as_mut_ptr(),
                    q.as_ptr(),
                    keys.as_ptr(),
                    n as u32,
                    kv_dim as u32,
                    &d,
                )
            } == 1;
        if !done {
            // SAFETY: as above.
            unsafe {
                esp_llm_lx7_scores8(
                    att.as_mut_ptr(),
                    q.as_ptr(),
                    keys.as_ptr(),
                    n as u32,
                    kv_dim as u32,
                );
                esp_llm_lx7_div_scalar(att.as_mut_ptr(), att.as_ptr(), n as u32, inv);
            }
        }
        // SAFETY: as above; the softmax runs in place over the n scores (Math::softmax with
        // the portable expf, exp.S).
        unsafe {
            esp_llm_lx7_softmax(att.as_mut_ptr(), n as u32);
            esp_llm_lx7_values8(
                out.as_mut_ptr(),
                att.as_ptr(),
                values.as_ptr(),
                n as u32,
                kv_dim as u32,
            );
        }
    }

    fn rmsnorm(&self, o: &mut [f32], x: &[f32], weight: &[f32]) {
        let n = x.len();
        if o.len() != n || weight.len() < n || n > u32::MAX as usize {
            return crate::math::rmsnorm(o, x, weight);
        }
        // SAFETY: `x` has n floats; the kernel reads only those.
        let ss = f32::from_bits(unsafe { esp_llm_lx7_sumsq(x.as_ptr(), n as u32) });
        let ss = crate::math::inv_rms_from(ss, n);
        // SAFETY: `o`, `x` and `weight` hold at least n floats (checked above); the kernel
        // reads n of `x` and `weight` and writes n of `o`, which does not overlap `x` (`&mut`).
        unsafe { esp_llm_lx7_rmsscale(o.as_mut_ptr(), x.as_ptr(), weight.as_ptr(), n as u32, ss) }
    }

    fn rmsnorm_in_place(&self, x: &mut [f32], weight: &[f32]) {
        let n = x.len();
        if weight.len() < n || n > u32::MAX as usize {
            return crate::math::rmsnorm_in_place(x, weight);
        }
        // SAFETY: as in `rmsnorm`; the kernel reads each x[i] before writing o[i] = x[i].
        let ss = f32::from_bits(unsafe { esp_llm_lx7_sumsq(x.as_ptr(), n as u32) });
        let ss = crate::math::inv_rms_from(ss, n);
        let p = x.as_mut_ptr();
        // SAFETY: n floats of `x` and `weight` (checked above); in place, value by value.
        unsafe { esp_llm_lx7_rmsscale(p, p, weight.as_ptr(), n as u32, ss) }
    }

    fn swiglu(&self, h1: &mut [f32], h3: &[f32], math: Math) {
        if math != Math::Portable || h1.len() > h3.len() || h1.len() > u32::MAX as usize {
            return math.swiglu(h1, h3);
        }
        // SAFETY: the kernel reads h1.len() floats of `h3` (h3 is at least as long, checked
        // above) and rewrites the h1.len() floats of `h1` in place.
        unsafe { esp_llm_lx7_swiglu(h1.as_mut_ptr(), h3.as_ptr(), h1.len() as u32) }
    }

    fn quantize(&self, q: &mut [i8], s: &mut [f32], x: &[f32], group: usize) {
        if group == 0
            || s.len() < q.len() / group
            || q.len() > u32::MAX as usize
            || x.len() > u32::MAX as usize
        {
            return crate::math::quantize(q, s, x, group);
        }
        // SAFETY: the kernel writes q.len() / group whole groups of `q` (room checked: q.len()
        // bytes) and as many scales (s.len() >= q.len() / group), and reads x.len() floats.
        unsafe {
            esp_llm_lx7_quantize(
                q.as_mut_ptr(),
                s.as_mut_ptr(),
                x.as_ptr(),
                x.len() as u32,
                q.len() as u32,
                group as u32,
            )
        }
    }

    fn matmul_f32(&self, out: &mut [f32], w: &[f32], x: &[f32]) {
        if !f32_shapes_ok(out, w, x) || out.len() > u32::MAX as usize || x.len() > u32::MAX as usize
        {
            return Scalar.matmul_f32(out, w, x);
        }
        // SAFETY: `w` holds at least out.len() rows of x.len() floats (checked above); the
        // kernel reads exactly those and writes out.len() floats to `out`.
        unsafe {
            esp_llm_lx7_matmul_f32(
                out.as_mut_ptr(),
                w.as_ptr(),
                x.as_ptr(),
                out.len() as u32,
                x.len() as u32,
            )
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
        if !q8_shapes_ok(out, wq, ws, xq, xs, group)
            || out.len() > u32::MAX as usize
            || xq.len() > u32::MAX as usize
        {
            return Scalar.matmul_q8(out, wq, ws, xq, xs, group);
        }
        // The PIE path loads the inputs 16 bytes at a time from 16-byte boundaries. A run
        // state's int8 buffer need not start on one: copy a misaligned input (one row's
        // worth, a few dozen instructions) to an aligned buffer on the stack.
        let mut aligned = core::mem::MaybeUninit::<AlignedRow>::uninit();
        let xq = if (xq.as_ptr() as usize) % 16 != 0
            && (wq.as_ptr() as usize) % 16 == 0
            && xq.len() % 16 == 0
            && xq.len() <= ALIGNED_ROW
        {
            let dst = aligned.as_mut_ptr() as *mut i8;
            // SAFETY: `dst` has room for ALIGNED_ROW >= xq.len() bytes and does not overlap
            // `xq`; the first xq.len() bytes are initialized by the copy before being read.
            unsafe {
                core::ptr::copy_nonoverlapping(xq.as_ptr(), dst, xq.len());
                core::slice::from_raw_parts(dst, xq.len())
            }
        } else {
            xq
        };
        // SAFETY: the lengths were checked by `q8_shapes_ok`: out.len() rows of `xq.len()`
        // int8 weights and `xq.len() / group` scales each, one input scale per group; the
        // kernel reads only those (16 bytes at a time only when 16-byte aligned and a multiple
        // of 16 long) and writes out.len() floats.
        unsafe {
            esp_llm_lx7_matmul_q8(
                out.as_mut_ptr(),
                wq.as_ptr(),
                ws.as_ptr(),
                xq.as_ptr(),
                xs.as_ptr(),
                out.len() as u32,
                xq.len() as u32,
                group as u32,
            )
        }
    }

    fn matmul_q4(
        &self,
        out: &mut [f32],
        wq: &[u8],
        ws: &[f32],
        xq: &[i8],
        xs: &[f32],
        group: usize,
    ) {
        let stride = xq.len();
        if !q4_shapes_ok(out, wq, ws, xq, xs, group)
            || !stride.is_multiple_of(32)
            || stride > Q4_STACK_ROW
            || !(wq.as_ptr() as usize).is_multiple_of(16)
            || out.len() > u32::MAX as usize
        {
            return Scalar.matmul_q4(out, wq, ws, xq, xs, group);
        }
        // SAFETY: `q4_shapes_ok` checked the lengths: out.len() rows of stride / 2 packed bytes
        // and stride / group scales each, one input scale per group, a group that is a
        // multiple of 16 dividing the stride. With stride a multiple of 32 and `wq` 16-byte
        // aligned (checked above) every row is whole aligned 16-byte blocks, which is all the
        // kernel loads of `wq`; `xq` is read in aligned blocks holding its bytes only, and
        // copied to the kernel's own stack (stride + 32..47 bytes, stride <= Q4_STACK_ROW
        // checked above). It writes out.len() floats.
        unsafe {
            esp_llm_lx7_matmul_q4(
                out.as_mut_ptr(),
                wq.as_ptr(),
                ws.as_ptr(),
                xq.as_ptr(),
                xs.as_ptr(),
                out.len() as u32,
                stride as u32,
                group as u32,
            )
        }
    }
}
