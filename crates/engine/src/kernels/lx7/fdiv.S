/* f32 division on the ESP32-S3's FPU, as the compiler's runtime call.
 *
 *   float __divsf3(float a, float b);      a / b, IEEE round to nearest even
 *
 * Upstream LLVM has no Xtensa lowering for an f32 divide: every `a / b` in the engine (softmax,
 * attention scores, SiLU, expf, rmsnorm, quantize) becomes a call to compiler-builtins'
 * software `__divsf3`. That one is a weak symbol (see its `.weak __divsf3` in rustc's assembly
 * output), so this strong definition replaces it at link time. IEEE division is correctly
 * rounded, so the quotient bits are the same as the software routine's for every input except
 * NaN payloads (the FPU returns its default NaN); no engine result depends on a NaN's payload.
 *
 * Xtensa ABI: float arguments and results travel in address registers (a2, a3 -> a2); the
 * FPU registers are caller-saved (rustc spills live ones around calls). Clobbers f0..f9.
 *
 * The sequence is the LX7 FP option's divide: DIV0.S reciprocal seed, NEXP01.S normalized
 * operands, MADDN.S Newton steps, MKDADJ.S/ADDEXP.S/ADDEXPM.S exponent adjustment, DIVN.S
 * final correctly rounded step (the same instructions, in the same data flow, as the divide
 * test of QEMU's tests/tcg/xtensa, and the divide that Xtensa compilers emit inline). The
 * emulator treats most of these as no-ops and computes the IEEE quotient in MKDADJ.S
 * (target/xtensa/fpu_helper.c HELPER(mkdadj_s)), so it checks the data flow, and real silicon
 * the arithmetic. 26 instructions plus entry/retw, instead of the software routine's
 * integer mantissa division.
 *
 *   void esp_llm_lx7_div_scalar(float *out, const float *x, uint32_t n, float d);
 *
 * out[i] = x[i] / d for i < n (out may be x: in place), each quotient the same IEEE division
 * as above. The part of the sequence that depends only on the divisor (DIV0.S, NEXP01.S and
 * the reciprocal's Newton steps) runs once; each element pays the dividend's 14 instructions
 * + load and store = 16 per element (vs ~32 for a call to __divsf3): softmax's `v /= sum`,
 * the attention scores' `score / sqrt(head_size)`. Args: out a2, x a3, n a4, d's bits a5.
 */

	.text
	.align	4
	.global	__divsf3
	.type	__divsf3, @function
__divsf3:
	entry	a1, 32
	wfr	f1, a2			/* a */
	wfr	f2, a3			/* b */
	div0.s	f3, f2			/* y0 ~ 1/b */
	nexp01.s	f4, f2		/* bn */
	const.s	f5, 1			/* e */
	maddn.s	f5, f4, f3		/* e = 1 - b*y0 */
	mov.s	f6, f3			/* y */
	mov.s	f7, f2			/* ex = b */
	nexp01.s	f8, f1		/* an */
	maddn.s	f6, f5, f3		/* y1 */
	const.s	f5, 1
	const.s	f0, 0			/* q */
	neg.s	f9, f8			/* r = a */
	maddn.s	f5, f4, f6
	maddn.s	f0, f9, f3		/* q0 = a*y0 */
	mkdadj.s	f7, f1
	maddn.s	f6, f5, f6		/* y2 */
	maddn.s	f9, f4, f0		/* r = a - b*q0 */
	const.s	f5, 1
	maddn.s	f5, f4, f6
	maddn.s	f0, f9, f6		/* q1 */
	neg.s	f9, f8
	maddn.s	f6, f5, f6		/* y3 */
	maddn.s	f9, f4, f0		/* r = a - b*q1 */
	addexpm.s	f0, f7
	addexp.s	f6, f7
	divn.s	f0, f9, f6		/* q = q1 + r*y3, rounded, exponent restored */
	rfr	a2, f0
	retw
	.size	__divsf3, . - __divsf3

	.align	4
	.global	esp_llm_lx7_div_scalar
	.type	esp_llm_lx7_div_scalar, @function
esp_llm_lx7_div_scalar:
	entry	a1, 32
	wfr	f2, a5			/* b = d */
	/* divisor part: y0, bn, y2 (after two Newton steps), y3 (after three) */
	div0.s	f3, f2
	nexp01.s	f4, f2
	const.s	f5, 1
	maddn.s	f5, f4, f3
	mov.s	f6, f3
	maddn.s	f6, f5, f3		/* y1 */
	const.s	f5, 1
	maddn.s	f5, f4, f6
	maddn.s	f6, f5, f6		/* y2 */
	mov.s	f10, f6
	const.s	f5, 1
	maddn.s	f5, f4, f10
	maddn.s	f10, f5, f10		/* y3 */
	loopnez	a4, .Ldiv_end
	lsip	f1, a3, 4		/* a */
	nexp01.s	f8, f1		/* an */
	const.s	f0, 0			/* q */
	neg.s	f9, f8			/* r */
	maddn.s	f0, f9, f3		/* q0 = a*y0 */
	mov.s	f7, f2			/* ex = b */
	mkdadj.s	f7, f1
	maddn.s	f9, f4, f0
	maddn.s	f0, f9, f6		/* q1, with y2 */
	neg.s	f9, f8
	maddn.s	f9, f4, f0
	addexpm.s	f0, f7
	mov.s	f11, f10
	addexp.s	f11, f7
	divn.s	f0, f9, f11
	ssip	f0, a2, 4
.Ldiv_end:
	retw
	.size	esp_llm_lx7_div_scalar, . - esp_llm_lx7_div_scalar
