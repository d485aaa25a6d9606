/* Division by one divisor on the ESP32-S3's FPU.
 *
 *   void esp_llm_lx7_div_scalar(float *out, const float *x, uint32_t n, float d);
 *
 * out[i] = x[i] / d for i < n (out may be x: in place), IEEE round to nearest even: the same
 * quotient bits as `x[i] / d` in Rust for every input except NaN payloads (the FPU returns its
 * default NaN; no engine result depends on a NaN's payload). Use: softmax's `v /= sum`, the
 * attention scores' `score / sqrt(head_size)`.
 *
 * The LX7 FP option has no divide instruction; a quotient is DIV0.S (reciprocal seed),
 * NEXP01.S (normalized operands), MADDN.S Newton steps, MKDADJ.S/ADDEXP.S/ADDEXPM.S exponent
 * adjustment and DIVN.S (the final correctly rounded step): the same instructions in the same
 * data flow as libgcc's and bench/lx7's `__divsf3` and QEMU's tests/tcg/xtensa divide test.
 * The part that depends only on the divisor (DIV0.S, NEXP01.S of b, the reciprocal's three
 * Newton steps) runs once here; each element pays the dividend's 14 instructions + load and
 * store = 16 per element, against ~32 for a call to `__divsf3`; the usual case takes the faster
 * Markstein path below (13). The emulator treats most of
 * these instructions as no-ops and computes the IEEE quotient in MKDADJ.S
 * (target/xtensa/fpu_helper.c HELPER(mkdadj_s)), so it checks the data flow (the divisor in
 * `ex` when MKDADJ.S runs, the quotient taken by ADDEXPM.S), and real silicon the arithmetic.
 *
 * Windowed ABI: out a2, x a3, n a4, d's bits a5 (floats travel in address registers).
 * Clobbers f0..f12 (caller-saved).
 */

/* f0 = f1 / f2 (the dividend's part of the FPU division) with the divisor part of the entry:
 * y0 f3, bn f4, y2 f6, y3 f10. Scratch: f7 (ex), f8 (an), f9 (r), f11. 14 instructions. */
	.macro	quotient
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
	.endm

	.text
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
	/* Fast path for 1 <= d < 2^16 (the scores' sqrt(head_size)): y = RN(1/d) once, then per
	 * element q = a*y and two Markstein corrections r = a - q*d (msub.s, exact remainder),
	 * q += r*y (madd.s), the second giving the correctly rounded a/d, as softmax's `/ sum`
	 * in exp.S and quant.S do. Elements with |a| outside [2^-90, 2^100) (zeros, subnormals,
	 * huge values, infinities, NaN) take the full division: with them the quotient could
	 * leave the normal range and the remainder would not be exact. 13 instructions per
	 * element instead of 16. */
	rfr	a8, f2
	movi	a9, 0x3f800000		/* 1.0 */
	bltu	a8, a9, .Ldiv_loop
	movi	a9, 0x47800000		/* 2^16 */
	bgeu	a8, a9, .Ldiv_loop
	const.s	f1, 1
	quotient
	mov.s	f12, f0			/* y = RN(1 / d) */
	movi	a10, 0x25000000		/* 2^-90 with the sign shifted out */
	movi	a11, 0xe3000000		/* 2^100, likewise */
	loopnez	a4, .Ldiv_fast_end
	lsip	f1, a3, 4		/* a */
	rfr	a8, f1
	slli	a8, a8, 1
	bltu	a8, a10, .Ldiv_one
	bgeu	a8, a11, .Ldiv_one
	mul.s	f0, f1, f12
	mov.s	f5, f1
	msub.s	f5, f0, f2
	madd.s	f0, f5, f12
	mov.s	f5, f1
	msub.s	f5, f0, f2
	madd.s	f0, f5, f12
.Ldiv_fast_store:
	ssip	f0, a2, 4
.Ldiv_fast_end:
	retw
/* One element of the fast loop by the full division (a in f1), then back into the loop. */
.Ldiv_one:
	quotient
	j	.Ldiv_fast_store
.Ldiv_loop:
	loopnez	a4, .Ldiv_end
	lsip	f1, a3, 4		/* a */
	quotient
	ssip	f0, a2, 4
.Ldiv_end:
	retw
	.size	esp_llm_lx7_div_scalar, . - esp_llm_lx7_div_scalar
