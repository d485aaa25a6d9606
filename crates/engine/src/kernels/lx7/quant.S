/* Activation quantization of the float numerics on the ESP32-S3 (Xtensa LX7 FPU).
 *
 *   void esp_llm_lx7_quantize(int8_t *q, float *s, const float *x,
 *                             uint32_t n_x, uint32_t n_q, uint32_t group);
 *
 * Twin of `forward.rs` `quantize` (runq.c's quantize), bit for bit: for each of the
 * n_q/group groups g (a trailing partial group of q is left untouched, like chunks_exact):
 *   wmax = max |x[i]| over the group's part of x (start +0.0, strict `>`, so NaN is skipped)
 *   s[g] = scale = wmax / 127.0f                       (IEEE division, round to nearest)
 *   q[i] = (int8_t) roundf(x[i] / scale)  with Rust's `as i8`: saturating to -128..127,
 *          NaN (0/0 for an all-zero group, or a NaN input) -> 0
 *   q[i] = 0 where i is past n_x (x shorter than q quantizes as zeros; 0/scale is 0 or NaN).
 * Windowed ABI: q a2, s a3, x a4, n_x a5, n_q a6, group a7. group == 0 writes nothing.
 * Clobbers f0..f15, b0..b3, q0, q1, q7.
 *
 * Division. The LX7 FPU has no single divide instruction: a quotient is DIV0.S (reciprocal
 * seed), NEXP01.S (mantissa of the operands with exponent 0/1, negated), Newton steps with
 * MADDN.S, and ADDEXP.S/ADDEXPM.S/MKDADJ.S/DIVN.S to fix the exponent and do the final
 * correctly rounded step (Xtensa ISA, FP option). The reciprocal refinement depends only on
 * the divisor, so it runs once per group ("divisor" macro: y0, bn, y2, y3) and each element
 * pays only the dividend part ("quotient" macro, 14 instructions). Only the instructions'
 * data flow is taken from the ISA; the emulator (QEMU target/xtensa/translate.c, fpu_ops)
 * treats DIV0.S, NEXP01.S, MADDN.S, ADDEXP.S and DIVN.S as no-ops, computes the whole IEEE
 * quotient in MKDADJ.S (fpu_helper.c HELPER(mkdadj_s): ex = a / ex) and moves it into q with
 * ADDEXPM.S (a move there), so the emulator checks our data flow (ex must hold the divisor
 * when MKDADJ.S runs, q must come from ADDEXPM.S) but not the Newton steps: those are for
 * real silicon to confirm.
 *
 * In the usual case (a normal scale) the per-element quotient is not this sequence but two
 * Markstein corrections from y = 1/scale (see the fast path below), which the emulator does
 * check exactly; the DIV0.S sequence computes the scale and y once per group.
 *
 * roundf without a half-away-from-zero instruction: see round_store.
 *
 * Cost per element: for the max 3/4 (one EE.VLD.128, EE.ANDQ, EE.VMAX.S32 per 4) in a
 * group of 16 or more, else 4 (lsip, abs.s, olt.s, movt.s), + 13 on the fast path (lsip,
 * mul.s, 2 x (mov.s, msub.s, madd.s), 5 rounding and store); 33 on the slow path. Per group
 * about 80 (three reciprocal/division sequences, the range check, loop set-up), and about 25
 * for the PIE max's set-up, head, lane reduction and tail. Elements past n_x cost 2.
 */

	.text

/* Divisor-only part of b's reciprocal: y0 (seed), bn (normalized -b), y2, y3 (refined). */
	.macro	divisor b, y0, bn, y2, y3, e
	div0.s	\y0, \b
	nexp01.s	\bn, \b
	const.s	\e, 1
	maddn.s	\e, \bn, \y0
	mov.s	\y2, \y0
	maddn.s	\y2, \e, \y0		/* y1 */
	const.s	\e, 1
	maddn.s	\e, \bn, \y2
	maddn.s	\y2, \e, \y2		/* y2 */
	mov.s	\y3, \y2
	const.s	\e, 1
	maddn.s	\e, \bn, \y3
	maddn.s	\y3, \e, \y3		/* y3 */
	.endm

/* q = a / b with the divisor part above; an, r, ex, yt are scratch. */
	.macro	quotient q, a, b, y0, bn, y2, y3, an, r, ex, yt
	nexp01.s	\an, \a
	const.s	\q, 0
	neg.s	\r, \an
	maddn.s	\q, \r, \y0
	mov.s	\ex, \b
	mkdadj.s	\ex, \a
	maddn.s	\r, \bn, \q
	maddn.s	\q, \r, \y2
	neg.s	\r, \an
	maddn.s	\r, \bn, \q
	addexpm.s	\q, \ex
	mov.s	\yt, \y3
	addexp.s	\yt, \ex
	divn.s	\q, \r, \yt
	.endm

/* q = (int8_t) roundf(d) with Rust's saturating `as i8` (NaN -> 0), d in f2, result stored
 * at [a2++]: i = TRUNC.S(|d| + 0.5); negated when d < 0; 0 when |d| < 0.5 or unordered
 * (ULT.S); CLAMPS to -128..127. |d| + 0.5 is exact for 0.5 <= |d| < 2^23 (0.5 is a multiple
 * of ulp(|d|) and a carry into the next binade lands on a power of two), so the truncation is
 * roundf's half-away-from-zero result there; |d| < 0.5 is 0, and above 127.5 only the clamp
 * matters (TRUNC.S saturates, QEMU float32_to_int32). Checked against `(d.round()) as i8` on
 * all 2^32 floats with a host model. 11 instructions. */
	.macro	round_store
	abs.s	f1, f2
	add.s	f4, f1, f12
	trunc.s	a12, f4, 0
	neg	a13, a12
	olt.s	b1, f2, f13
	movt	a12, a13, b1
	ult.s	b2, f1, f12
	movt	a12, a15, b2
	clamps	a12, a12, 7
	s8i	a12, a2, 0
	addi	a2, a2, 1
	.endm

/* round_store for the fast path, where |d| <= 127 * (1 + 2^-24) (d = v / scale with
 * |v| <= wmax and scale = RN(wmax / 127)) or d is NaN: roundf(d) = TRUNC.S(2d) - TRUNC.S(d).
 * With |d| = n + f (n an integer, 0 <= f < 1) the first is 2n + [f >= 0.5] and the second
 * n, both with d's sign: their difference is n + [f >= 0.5], roundf's half-away-from-zero
 * result, with no clamp needed (|result| <= 127). A NaN d truncates to the same integer twice:
 * 0, as Rust's `as i8`. tests/lx7_float.rs checks the identity on every float with |d| < 127.5.
 * 5 instructions. */
	.macro	round_store_fast
	trunc.s	a12, f2, 1
	trunc.s	a13, f2, 0
	sub	a12, a12, a13
	s8i	a12, a2, 0
	addi	a2, a2, 1
	.endm

	.align	4
	.global	esp_llm_lx7_quantize
	.type	esp_llm_lx7_quantize, @function
esp_llm_lx7_quantize:
	entry	a1, 32
	beqz	a7, .Lqz_ret
	quou	a8, a6, a7		/* groups */
	beqz	a8, .Lqz_ret
	movi	a9, 127
	float.s	f14, a9, 0		/* 127.0 exactly */
	const.s	f12, 3			/* 0.5 */
	const.s	f13, 0
	movi	a15, 0
	movi	a9, 181
	bltui	a7, 16, .Lqz_group
	movi	a13, -1
	srli	a13, a13, 1		/* 0x7fffffff in q7's four lanes, the PIE max's mask */
	ee.movi.32.q	q7, a13, 0
	ee.movi.32.q	q7, a13, 1
	ee.movi.32.q	q7, a13, 2
	ee.movi.32.q	q7, a13, 3
.Lqz_group:
	minu	a10, a5, a7		/* this group's elements present in x */
	sub	a5, a5, a10
	sub	a11, a7, a10		/* zeros after them */
	/* wmax: m = (|v| > m) ? |v| : m, from +0.0 */
	mov	a12, a4
	const.s	f6, 0
	bltui	a10, 16, .Lqz_max_scalar
	/* PIE max for groups of 16 or more. For a float that is not NaN, |v| is its bits with
	 * the sign cleared, and those bits as integers order like the floats (IEEE 754 is
	 * sign-magnitude; -0.0 and +0.0 both become 0): so the largest |v| is the largest
	 * integer (bits & 0x7fffffff), four lanes at a time with EE.ANDQ and EE.VMAX.S32, the
	 * same float the scalar loop finds (equal floats have equal bits here). A NaN's bits are
	 * above 0x7f800000 (+inf): the scalar loop skips NaNs, the integer max would not, so a
	 * group whose integer max says NaN is redone by the scalar loop. Scalar head up to
	 * 16-byte alignment (EE.VLD.128 ignores the low 4 address bits), then blocks of 4, then
	 * a scalar tail; the head and tail keep the float max in f6, merged as bits. */
	neg	a13, a4
	extui	a13, a13, 2, 2		/* head: floats up to the next 16-byte boundary */
	sub	a14, a10, a13		/* after the head (>= 13) */
	loopnez	a13, .Lqz_head_end
	lsip	f0, a12, 4
	abs.s	f0, f0
	olt.s	b0, f6, f0
	movt.s	f6, f0, b0
.Lqz_head_end:
	ee.zero.q	q0
	srli	a13, a14, 2		/* blocks of 4 */
	loopnez	a13, .Lqz_vmax_end
	ee.vld.128.ip	q1, a12, 16
	ee.andq	q1, q1, q7
	ee.vmax.s32	q0, q0, q1
.Lqz_vmax_end:
	ee.movi.32.a	q0, a13, 0
	ee.movi.32.a	q0, a6, 1
	max	a13, a13, a6
	ee.movi.32.a	q0, a6, 2
	max	a13, a13, a6
	ee.movi.32.a	q0, a6, 3
	max	a13, a13, a6
	movi	a6, 0x7f8
	slli	a6, a6, 20		/* +inf: 0x7f800000 */
	bltu	a6, a13, .Lqz_max_nan
	rfr	a6, f6
	max	a13, a13, a6
	wfr	f6, a13
	extui	a13, a14, 0, 2		/* tail */
	loopnez	a13, .Lqz_tail_end
	lsip	f0, a12, 4
	abs.s	f0, f0
	olt.s	b0, f6, f0
	movt.s	f6, f0, b0
.Lqz_tail_end:
	j	.Lqz_max_end
.Lqz_max_nan:
	mov	a12, a4
	const.s	f6, 0
.Lqz_max_scalar:
	loopnez	a10, .Lqz_max_end
	lsip	f0, a12, 4
	abs.s	f0, f0
	olt.s	b0, f6, f0
	movt.s	f6, f0, b0
.Lqz_max_end:
	/* scale = wmax / 127 */
	divisor	f14, f8, f9, f10, f11, f15
	quotient	f7, f6, f14, f8, f9, f10, f11, f1, f3, f4, f5
	ssip	f7, a3, 4
	divisor	f7, f8, f9, f10, f11, f15
	/* Fast path for 2^-90 <= scale < 2^91 (biased exponent 37..217): y = RN(1/scale) once,
	 * then per element q0 = v*y and two Markstein corrections r = v - q*scale (msub.s, exact
	 * remainder), q += r*y (madd.s): the second one gives the correctly rounded v/scale.
	 * Both are fused in hardware and in the emulator (fpu_helper.c float32_muladd), so this
	 * path is checked exactly there; a host model agreed with IEEE division on 4e8 random
	 * pairs in this range (|v| <= 128*scale, ties and near-ties included). Other scales
	 * (0 for an all-zero group, subnormal, huge, inf) take the full division per element. */
	rfr	a12, f7
	extui	a12, a12, 23, 8
	addi	a12, a12, -37
	bgeu	a12, a9, .Lqz_slow
	const.s	f0, 1
	quotient	f6, f0, f7, f8, f9, f10, f11, f1, f3, f4, f5
	loopnez	a10, .Lqz_fast_end
	lsip	f0, a4, 4
	mul.s	f2, f0, f6
	mov.s	f3, f0
	msub.s	f3, f2, f7
	madd.s	f2, f3, f6
	mov.s	f3, f0
	msub.s	f3, f2, f7
	madd.s	f2, f3, f6
	round_store_fast
.Lqz_fast_end:
	j	.Lqz_tail
.Lqz_slow:
	loopnez	a10, .Lqz_q_end
	lsip	f0, a4, 4
	quotient	f2, f0, f7, f8, f9, f10, f11, f1, f3, f4, f5
	round_store
.Lqz_q_end:
.Lqz_tail:
	loopnez	a11, .Lqz_zero_end
	s8i	a15, a2, 0
	addi	a2, a2, 1
.Lqz_zero_end:
	addi	a8, a8, -1
	bnez	a8, .Lqz_group
.Lqz_ret:
	retw
	.size	esp_llm_lx7_quantize, . - esp_llm_lx7_quantize
