/* f32 division on the ESP32-S3's FPU for code compiled by upstream LLVM.
 *
 * Upstream LLVM's Xtensa backend has no f32 division: it calls __divsf3, which Rust's
 * compiler_builtins provides in software (a weak symbol; this strong one replaces it).
 * Espressif's compilers emit the FPU's division sequence inline instead, so this is what the
 * firmware's code does, plus a call. The sequence is the one the Xtensa ISA defines for the
 * DIV0.S/NEXP01.S/MADDN.S/DIVN.S instructions (QEMU implements them in
 * target/xtensa/translate.c): a reciprocal seed refined by Newton steps on the normalized
 * operands, then DIVN.S rounds the quotient once, so the result is the correctly rounded IEEE
 * quotient (round to nearest even, FCR's reset mode) that the software routine returns. The
 * kernel checks compare engine results bit for bit with the host's.
 *
 * float __divsf3(float a, float b): a in a2, b in a3, quotient in a2.
 */
    .section .text.__divsf3, "ax"
    .global __divsf3
    .type __divsf3, @function
    .align 4
__divsf3:
    entry     a1, 16
    wfr       f1, a2            /* a */
    wfr       f2, a3            /* b */
    div0.s    f3, f2            /* y0: seed of 1/b */
    nexp01.s  f4, f2            /* bn: -b normalized to [1, 2) */
    const.s   f5, 1             /* e = 1 + bn*y0: the seed's error */
    maddn.s   f5, f4, f3
    mov.s     f6, f3            /* y: refined reciprocal */
    mov.s     f7, f2            /* ex: exponent adjustment, from b and then a */
    nexp01.s  f8, f1            /* an: -a normalized */
    maddn.s   f6, f5, f3
    const.s   f5, 1
    const.s   f0, 0             /* q: quotient */
    neg.s     f9, f8            /* r: remainder */
    maddn.s   f5, f4, f6
    maddn.s   f0, f9, f3
    mkdadj.s  f7, f1
    maddn.s   f6, f5, f6
    maddn.s   f9, f4, f0
    const.s   f5, 1
    maddn.s   f5, f4, f6
    maddn.s   f0, f9, f6
    neg.s     f9, f8
    maddn.s   f6, f5, f6
    maddn.s   f9, f4, f0
    addexpm.s f0, f7
    addexp.s  f6, f7
    divn.s    f0, f9, f6        /* the one rounding */
    rfr       a2, f0
    retw
    .size __divsf3, . - __divsf3
