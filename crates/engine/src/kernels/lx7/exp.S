/* Softmax and SwiGLU of the float numerics on the ESP32-S3's FPU, with the portable `expf`
 * (crates/engine/src/math.rs `expf`, FreeBSD's algorithm, equal to the `libm` crate's bit for
 * bit) inline and its division done in registers.
 *
 *   void esp_llm_lx7_softmax(float *x, uint32_t n);
 *     Math::softmax with Math::Portable, in place: m = x[0], m = (v > m) ? v : m over x;
 *     x[i] = expf(x[i] - m), sum += x[i] from +0.0 in order; x[i] = x[i] / sum.
 *
 *   void esp_llm_lx7_swiglu(float *h1, const float *h3, uint32_t n);
 *     Math::swiglu with Math::Portable: val = h1[i]; val = val * (1 / (1 + expf(-val)));
 *     h1[i] = val * h3[i].
 *
 * expf(x), as math.rs computes it (hx = bits(x) & 0x7fffffff, sign = bits(x) >> 31):
 *   hx >= 0x42aeac50 (|x| >= 87.34, inf, NaN): the Rust function esp_llm_lx7_expf_slow
 *     (math::expf -> libm), called with every live register saved; it never runs for the
 *     usual inputs (a softmax spread or a hidden unit beyond 87).
 *   hx <= 0x39000000: 1 + x (libm's tiny-argument result).
 *   otherwise k = (int)(INV_LN2 * x + HALF[sign]) when hx > 0x3f851592, 1 - 2*sign when
 *     hx > 0x3eb17218, else 0; hi = x - k*LN2_HI, lo = k*LN2_LO, x = hi - lo (k = 0 gives
 *     hi = x, lo = +0, x = x exactly, math.rs's third case); xx = x*x;
 *     c = x - xx*(P1 + xx*P2); y = 1 + ((x*c / (2 - c) - lo) + hi); result y * 2^k.
 *   Every operation is a separate mul.s/add.s/sub.s rounded once, as Rust compiles math.rs
 *   (Rust never contracts into fused multiply-adds); `(int)` is TRUNC.S (round toward zero;
 *   |x| < 87.34 keeps k in -126..126 and 2^k a normal float).
 *
 * Division. The LX7 FP option has no divide instruction. The two divisions on the fast paths
 * are done with fused multiply-adds (MADD.S/MSUB.S: one rounding, as the emulator's
 * float32_muladd and `f32::mul_add`), so the emulator checks them exactly:
 *   expf's x*c / (2 - c): seed y = D0 + c*D1 (the minimax line, within 1.5% over the b = 2 - c
 *     of every fast-path input), two Newton steps, q = a*y, two Markstein corrections
 *     (r = a - q*b exact, q += r*y): 15 instructions.
 *   SwiGLU's 1 / (1 + expf(-val)): `reciprocal` (magic-constant seed, four Newton steps):
 *     18 instructions.
 * crates/engine/tests/lx7_division.rs holds their twins and proves both equal to IEEE
 * division on every input the fast paths can give them (all 3.2e8 expf fast-path arguments;
 * every SwiGLU val with |val| < 80; every mantissa of the reciprocal). Elsewhere (softmax's
 * 1/sum once per call, the slow paths, the all-ones mantissa) the division is the FPU's own
 * sequence: DIV0.S (reciprocal seed), NEXP01.S, MADDN.S Newton steps, MKDADJ.S/ADDEXP.S/
 * ADDEXPM.S and DIVN.S (the correctly rounded last step), the data flow of libgcc's
 * `__divsf3` and of div.S/quant.S. The emulator computes the IEEE quotient in MKDADJ.S and
 * treats most of the others as no-ops, so for that sequence it checks the data flow (the
 * divisor in `ex` at MKDADJ.S, the quotient taken by ADDEXPM.S); real silicon checks the
 * Newton steps.
 *
 * Cost (instructions, the usual paths): expf 48, or 34 for |x| <= 0.3466 (k = 0: math.rs's
 * third case, no reduction and no scaling); in softmax, whose arguments x - max are negative
 * (HALF[sign] and k = -1 known, one Markstein correction), 43 and 31. Softmax per element:
 * 3 for the max, the exponential + 5 (load, subtract, sum, store, branch), 11 for the
 * division; SwiGLU per element: the exponential + 27 (18 of them the reciprocal).
 *
 * Windowed ABI; floats travel in address registers. Clobbers f0..f15, b0, and the
 * caller-saved address registers. Stack: 96 bytes (the slow path's saves).
 */

	.section .rodata.esp_llm_lx7_exp, "a"
	.align	4
.Lexp_consts:
	.word	0x3fb8aa3b		/*  0: INV_LN2 */
	.word	0x3f000000		/*  4: HALF[0] = 0.5 */
	.word	0xbf000000		/*  8: HALF[1] = -0.5 */
	.word	0x3f317200		/* 12: LN2_HI */
	.word	0x35bfbe8e		/* 16: LN2_LO */
	.word	0x3e2aaa8f		/* 20: P1 */
	.word	0xbb355215		/* 24: P2 */
	.word	0x3f01e642		/* 28: D0 \ the seed of 1/(2 - c): D0 + c*D1 */
	.word	0x3e7eb5c3		/* 32: D1 /  (tests/lx7_division.rs) */

	.text
	.literal_position

/* The FPU's division a / b, in two parts (the Xtensa FP option's DIV0.S sequence).
 * divisor: what depends on b alone: y0 (seed), bn (normalized b), y2, y3 (Newton steps); e is
 * scratch. */
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

/* quotient: q = a / b from the divisor part. ex must hold b and y3 the divisor's y3; both are
 * consumed (callers that keep them pass copies). an and r are scratch; r may be a's own
 * register (a is read before r is written). */
	.macro	quotient q, a, ex, y0, bn, y2, y3, an, r
	mkdadj.s	\ex, \a
	nexp01.s	\an, \a
	const.s	\q, 0
	neg.s	\r, \an
	maddn.s	\q, \r, \y0		/* q0 */
	maddn.s	\r, \bn, \q
	maddn.s	\q, \r, \y2		/* q1 */
	neg.s	\r, \an
	maddn.s	\r, \bn, \q
	addexpm.s	\q, \ex
	addexp.s	\y3, \ex
	divn.s	\q, \r, \y3
	.endm

/* One Newton step for y ~ 1/b, fused: e = 1 - b*y, y = y + e*y (the relative error squares). */
	.macro	newton y, b, e
	const.s	\e, 1
	msub.s	\e, \b, \y
	madd.s	\y, \e, \y
	.endm

/* One Markstein correction of q ~ a/b with y ~ 1/b: r = a - q*b (exact: one rounding of a
 * value that fits), q = q + r*y. */
	.macro	markstein q, a, b, y, r
	mov.s	\r, \a
	msub.s	\r, \q, \b
	madd.s	\q, \r, \y
	.endm

/* y = 1/b correctly rounded for 1 <= b < 2^120 whose mantissa is not all ones (those branch
 * to \full with b untouched): seed bits(y0) = 0x7ef311c3 - bits(b) (within 5.1%, ma holds
 * the magic), four Newton steps. The last step from a y within an ulp rounds correctly except
 * for the all-ones mantissa (Markstein); tests/lx7_division.rs checks every mantissa. */
	.macro	reciprocal y, b, e, ma, t, u, full
	rfr	\t, \b
	addi	\u, \t, 1
	slli	\u, \u, 9
	beqz	\u, \full
	sub	\u, \ma, \t
	wfr	\y, \u
	newton	\y, \b, \e
	newton	\y, \b, \e
	newton	\y, \b, \e
	newton	\y, \b, \e
	.endm

/* Register plan while an exponential is live (both kernels). The thresholds are on hx << 1
 * (the sign shifted out: one SLLI instead of a 31-bit mask, which EXTUI cannot take):
 *   a5  the constants above         a6  0x42aeac50 << 1 (slow from here up)
 *   a7  0x39000001 << 1 (tiny below)
 *   a13 0x3eb17219 << 1 (k = 0 below)   a14 0x3f851593 << 1 (k = +-1 below)
 *   f9 D1  f10 LN2_HI  f11 LN2_LO  f12 P1  f13 P2
 * scratch a8..a11, f0..f8. */
	.macro	exp_setup
	movi	a5, .Lexp_consts
	movi	a6, 0x855d58a0
	movi	a7, 0x72000002
	movi	a13, 0x7d62e432
	movi	a14, 0x7f0a2b26
	lsi	f10, a5, 12
	lsi	f11, a5, 16
	lsi	f12, a5, 20
	lsi	f13, a5, 24
	lsi	f9, a5, 32
	.endm

/* expf's polynomial and division on the reduced argument x (f0, kept): f8 = q = x*c / (2 - c),
 * correctly rounded (see "Division" above), with \corr Markstein corrections: 2 for any
 * sign, 1 where x < 0 (softmax: proven enough there by tests/lx7_float.rs). Uses f1, f4..f7. */
	.macro	exp_quotient corr
	mul.s	f1, f0, f0		/* xx */
	mul.s	f4, f1, f13
	add.s	f4, f12, f4		/* P1 + xx*P2 */
	mul.s	f4, f1, f4
	sub.s	f4, f0, f4		/* c */
	lsi	f6, a5, 28
	madd.s	f6, f4, f9		/* y = D0 + c*D1 ~ 1 / (2 - c), within 1.5% */
	mul.s	f1, f0, f4		/* a = x*c */
	const.s	f5, 2
	sub.s	f5, f5, f4		/* b = 2 - c */
	newton	f6, f5, f7
	newton	f6, f5, f7
	mul.s	f8, f1, f6		/* q = a*y */
	markstein f8, f1, f5, f6, f7
	.if \corr - 1
	markstein f8, f1, f5, f6, f7
	.endif
	.endm

/* f8 = expf(f0). Branches to \slow (|x| >= 87.34, inf, NaN), \tiny (hx <= 0x39000000) and
 * \lowk (hx <= 0x3f851592), which must end with f8 set and jump to the caller's done label;
 * expf_lowk jumps back to \kdone with k in a10 for k = +-1. \neg = 1 where the argument is
 * known to be negative on these paths (softmax's x - max): HALF[sign] is -0.5 (INV_LN2*x - 0.5,
 * the same IEEE operation as + -0.5) and \corr may be 1. */
	.macro	expf_core slow, tiny, lowk, kdone, neg, corr
	rfr	a8, f0
	slli	a9, a8, 1		/* hx << 1 */
	bgeu	a9, a6, \slow
	bltu	a9, a7, \tiny
	bltu	a9, a14, \lowk
	lsi	f1, a5, 0
	mul.s	f1, f1, f0		/* INV_LN2 * x */
	.if \neg
	const.s	f2, 3			/* 0.5 */
	sub.s	f1, f1, f2		/* + HALF[1] */
	.else
	extui	a11, a8, 31, 1		/* sign */
	addx4	a11, a11, a5
	lsi	f2, a11, 4		/* HALF[sign] */
	add.s	f1, f1, f2
	.endif
	trunc.s	a10, f1, 0		/* k */
\kdone:
	float.s	f1, a10, 0		/* k as f32 */
	mul.s	f2, f1, f10
	sub.s	f2, f0, f2		/* hi = x - k*LN2_HI */
	mul.s	f3, f1, f11		/* lo = k*LN2_LO */
	sub.s	f0, f2, f3		/* x = hi - lo */
	exp_quotient \corr
	sub.s	f8, f8, f3		/* q - lo */
	add.s	f8, f8, f2		/* + hi */
	const.s	f1, 1
	add.s	f8, f1, f8		/* y = 1 + (...) */
	addi	a10, a10, 127
	slli	a10, a10, 23
	wfr	f1, a10
	mul.s	f8, f8, f1		/* y * 2^k */
	.endm

/* The out-of-line part of expf_core for hx <= 0x3f851592: k = 1 - 2*sign for
 * 0.3466 < |x| <= 1.0397 (back to \kdone); for |x| <= 0.3466 math.rs's third case, k = 0
 * (hi = x, lo = +0, no scaling): y = 1 + (q + x) (q - +0 is q exactly, y * 2^0 is y), then
 * to \done. */
	.macro	expf_lowk lowk, kdone, done, neg, corr
\lowk:
	bltu	a9, a13, 1f
	.if \neg
	movi	a10, -1
	.else
	extui	a11, a8, 31, 1
	movi	a10, 1
	sub	a10, a10, a11
	sub	a10, a10, a11
	.endif
	j	\kdone
1:	exp_quotient \corr
	add.s	f8, f8, f0		/* q + x */
	const.s	f1, 1
	add.s	f8, f1, f8		/* y = 1 + (...) */
	j	\done
	.endm

/* The slow path: f8 = expf(f0) by the Rust function, with a2..a7 (the caller's window part
 * that call8 keeps) untouched by the callee and a8..a15, f10..f15 saved here. */
	.macro	expf_slow
	s32i	a8, a1, 0
	s32i	a9, a1, 4
	s32i	a11, a1, 12
	s32i	a12, a1, 16
	s32i	a13, a1, 20
	s32i	a14, a1, 24
	s32i	a15, a1, 28
	ssi	f10, a1, 32
	ssi	f11, a1, 36
	ssi	f12, a1, 40
	ssi	f13, a1, 44
	ssi	f14, a1, 48
	ssi	f15, a1, 52
	rfr	a10, f0
	call8	esp_llm_lx7_expf_slow
	wfr	f8, a10
	l32i	a8, a1, 0
	l32i	a9, a1, 4
	l32i	a11, a1, 12
	l32i	a12, a1, 16
	l32i	a13, a1, 20
	l32i	a14, a1, 24
	l32i	a15, a1, 28
	lsi	f10, a1, 32
	lsi	f11, a1, 36
	lsi	f12, a1, 40
	lsi	f13, a1, 44
	lsi	f14, a1, 48
	lsi	f15, a1, 52
	.endm

/* f0 = f1 / f14 (softmax's pass 3) from the divisor part in f3 (y0), f4 (bn), f6 (y2) and
 * f10 (y3), which stay; scratch f7, f8, f9, f11. */
	.macro	divide_quotient
	mov.s	f7, f14			/* ex = sum */
	mov.s	f11, f10
	quotient f0, f1, f7, f3, f4, f6, f11, f8, f9
	.endm

	.align	4
	.global	esp_llm_lx7_softmax
	.type	esp_llm_lx7_softmax, @function
esp_llm_lx7_softmax:
	entry	a1, 96
	beqz	a3, .Lsm_ret
	/* pass 1: m = x[0]; m = (v > m) ? v : m (ordered: a NaN is skipped, as in Rust) */
	lsi	f15, a2, 0
	mov	a8, a2
	loopnez	a3, .Lsm_max_end
	lsip	f0, a8, 4
	olt.s	b0, f15, f0
	movt.s	f15, f0, b0
.Lsm_max_end:
	/* pass 2: x[i] = expf(x[i] - m), sum += x[i]. A branch loop, not LOOP: the slow path
	 * calls Rust code, which may use the loop registers. */
	exp_setup
	const.s	f14, 0			/* sum */
	mov	a4, a2
	addx4	a12, a3, a2		/* end */
.Lsm_exp:
	lsi	f0, a4, 0
	sub.s	f0, f0, f15
	expf_core .Lsm_slow, .Lsm_tiny, .Lsm_lowk, .Lsm_kdone, 1, 1
.Lsm_store:
	ssip	f8, a4, 4
	add.s	f14, f14, f8
	bne	a4, a12, .Lsm_exp
	/* pass 3: x[i] /= sum: the divisor part once, the dividend part per element */
	divisor	f14, f3, f4, f6, f10, f5
	mov	a4, a2
	/* Fast path when 1 <= sum < 2^100 (always, unless a score was NaN or infinite: the
	 * maximum's own term is expf(0) = 1): y = RN(1/sum) once (the full sequence with a = 1),
	 * then per element q0 = x*y and two Markstein corrections r = x - q*sum (msub.s, exact
	 * remainder), q += r*y (madd.s), the second giving the correctly rounded x/sum; as in
	 * quant.S, and checked exactly by the emulator (fused multiply-adds). Elements below
	 * 2^-100 (zeros, subnormals: the remainder could underflow) take the full division. */
	rfr	a8, f14
	movi	a9, 0x3f800000		/* 1.0 */
	bltu	a8, a9, .Lsm_div_full
	movi	a9, 0x71800000		/* 2^100 */
	bgeu	a8, a9, .Lsm_div_full
	const.s	f1, 1
	divide_quotient
	mov.s	f12, f0			/* y = RN(1 / sum) */
	movi	a10, 0x0d800000		/* 2^-100 */
	loopnez	a3, .Lsm_fast_end
	lsi	f1, a4, 0		/* a */
	rfr	a8, f1
	bltu	a8, a10, .Lsm_fast_small
	mul.s	f0, f1, f12
	mov.s	f2, f1
	msub.s	f2, f0, f14
	madd.s	f0, f2, f12
	mov.s	f2, f1
	msub.s	f2, f0, f14
	madd.s	f0, f2, f12
.Lsm_fast_store:
	ssip	f0, a4, 4
.Lsm_fast_end:
	retw
.Lsm_fast_small:
	divide_quotient
	j	.Lsm_fast_store
.Lsm_div_full:
	loopnez	a3, .Lsm_div_end
	lsi	f1, a4, 0		/* a */
	divide_quotient
	ssip	f0, a4, 4
.Lsm_div_end:
.Lsm_ret:
	retw

	expf_lowk .Lsm_lowk, .Lsm_kdone, .Lsm_store, 1, 1
.Lsm_tiny:
	const.s	f1, 1
	add.s	f8, f1, f0
	j	.Lsm_store
.Lsm_slow:
	expf_slow
	lsi	f9, a5, 32		/* D1 again (the callee may use f9) */
	j	.Lsm_store
	.size	esp_llm_lx7_softmax, . - esp_llm_lx7_softmax

	.align	4
	.global	esp_llm_lx7_swiglu
	.type	esp_llm_lx7_swiglu, @function
esp_llm_lx7_swiglu:
	entry	a1, 96
	beqz	a4, .Lsw_ret
	exp_setup
	/* The slow path from |val| >= 80 on (not 87.34): then 1 + expf(-val) < 2^120 on the fast
	 * path, in the reciprocal's range; the slow path divides with the FPU sequence. */
	movi	a6, 0x85400000		/* 0x42a00000 << 1 (80.0) */
	movi	a15, 0x7ef311c3		/* the reciprocal's magic */
	addx4	a12, a4, a2		/* end of h1 */
.Lsw_loop:
	lsi	f14, a2, 0		/* val */
	neg.s	f0, f14			/* -val */
	expf_core .Lsw_slow, .Lsw_tiny, .Lsw_lowk, .Lsw_kdone, 0, 2
.Lsw_exp_done:
	const.s	f5, 1
	add.s	f5, f5, f8		/* b = 1 + expf(-val) */
	reciprocal f8, f5, f7, a15, a8, a9, .Lsw_full	/* 1 / (1 + expf(-val)) */
.Lsw_recip_done:
	mul.s	f14, f14, f8		/* val *= ... */
	lsip	f1, a3, 4
	mul.s	f14, f14, f1		/* val *= h3[i] */
	ssip	f14, a2, 4
	bne	a2, a12, .Lsw_loop
.Lsw_ret:
	retw

	expf_lowk .Lsw_lowk, .Lsw_kdone, .Lsw_exp_done, 0, 2
.Lsw_tiny:
	const.s	f1, 1
	add.s	f8, f1, f0
	j	.Lsw_exp_done
/* |val| >= 80, inf, NaN: expf by the Rust function, then the FPU's division. */
.Lsw_slow:
	expf_slow
	lsi	f9, a5, 32		/* D1 again (the callee may use f9) */
	const.s	f5, 1
	add.s	f5, f5, f8		/* b = 1 + expf(-val) */
/* f8 = 1 / b by the full FPU sequence (b in f5: an all-ones mantissa, or the slow path). */
.Lsw_full:
	divisor	f5, f0, f4, f7, f2, f6
	const.s	f1, 1
	quotient f8, f1, f5, f0, f4, f7, f2, f6, f1
	j	.Lsw_recip_done
	.size	esp_llm_lx7_swiglu, . - esp_llm_lx7_swiglu
