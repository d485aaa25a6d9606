/* The int4 matrix-vector product of the float numerics on the ESP32-S3 (Xtensa LX7 + PIE).
 *
 *   void esp_llm_lx7_matmul_q4(float *out, const uint8_t *wq, const float *ws,
 *                              const int8_t *xq, const float *xs,
 *                              uint32_t rows, uint32_t stride, uint32_t group);
 *
 * Twin of `kernels/scalar.rs` `matmul_q4`, bit for bit: row r's value k is the nibble of byte
 * wq[r*stride/2 + k/2], the low one for even k, signed (two's complement, -8..7); for each row
 *   val = 0.0f; for g < stride/group:
 *     ival = sum_k w[r][g*group + k] * xq[g*group + k]                (exact int32)
 *     val  = fmaf((float)ival * ws[r*(stride/group) + g], xs[g], val)
 *   out[r] = val
 * The float steps are the int8 kernel's (q8.S): float.s, mul.s, then one fused madd.s, from a
 * real +0.0 (const.s).
 *
 * Preconditions (checked by the Rust glue, kernels/lx7.rs): rows >= 0; stride > 0 a multiple
 * of 32 (so every row's stride/2 bytes are whole 16-byte blocks); group a multiple of 16
 * dividing stride; wq 16-byte aligned. xq may have any alignment. The stack holds a copy of x
 * (the frame grows by stride + 32..47 bytes, 16-aligned), so the glue bounds stride.
 *
 * Windowed ABI (entry/retw): out a2, wq a3, ws a4, xq a5, xs a6, rows a7; stride and group
 * are the 7th/8th words at a1+32 and a1+36 after `entry a1, 32`. Registers: a5 stride (after
 * the copy of x), a8 ival, a9 group or pair counter, a10 groups (pairs) per row, a11 = 4
 * (ee.srs.accx shift), a12 x buffer pointer, a13 x buffer, a14 chunks, a15 xs pointer; f4 the
 * row's sum, f0..f3 temporaries, f8/f9 xs on the R64 path. q0 weights, q1/q2 their high/low
 * nibbles, q3/q4 xe/xo, q5..q7 masks (R64: q3..q6 hold all of x).
 * Clobbers ACCX, q0..q7, SAR (4), SAR_BYTE, f0..f4, f8, f9 (caller-saved state).
 *
 * Unpacking. A 16-byte block of a row (a "chunk": values 0..31, byte j holding values 2j and
 * 2j+1) gives two int8 vectors with no sign extension: H = w AND 0xF0 (lane j = 16 * value
 * 2j+1) and L = (w << 4 per 32-bit lane, ee.vsl.32 with SAR = 4) AND 0xF0 (lane j = 16 * value
 * 2j; the bits shifted in from the byte below are masked off). x is copied once per call into
 * an aligned stack buffer with the same pairing, per chunk 16 even-index values (xe) then 16
 * odd-index ones (xo) (ee.vunzip.8), so ACCX = sum L*xe + sum H*xo = 16 * ival exactly, and
 * ee.srs.accx by 4 returns ival (an exact multiple of 16: no rounding; |16 * ival| <= 2^14 *
 * group, far inside ACCX's 40 bits and, shifted, inside 32 bits).
 * A group of 16 is half a chunk: masks MA/MB (0xF0 in bytes 0..7 / 8..15) split H and L.
 *
 * Cost (instructions; a chunk is 6: 1 load, vsl, 2 andq, 2 fused MAC+load; a group's end is
 * 7: zero, srs, float.s, 2 lsip, mul.s, madd.s):
 *   stride 64 ("R64", stories260K's dim): x stays in registers, each row's weights come in by
 *     fused loads: 24 per row of two groups of 32 = 0.38 per MAC, 19 per row of one group of
 *     64 = 0.30 per MAC.
 *   group 32 ("G32"): 13 per group of 32 = 0.41 per MAC (+7 per row).
 *   group 64 ("G64"): 19 per group of 64 = 0.30 per MAC (+7 per row).
 *   other even multiples of 32 ("GE"): 10 + 6*group/32 per group, e.g. 34 per 128 = 0.27.
 *   group 16 ("G16"): 24 per two groups of 16 = 0.75 per MAC (+7 per row).
 *   odd multiples of 16 ("GO": 48, 80...): per pair of groups 6*(group/16 - 1) + 33.
 *   Plus, once per call: ~25 + 5 per 32 values of x (aligned; 7 misaligned) for the copy.
 *
 * PIE semantics relied on (as q8.S, plus): ee.vsl.32 qa, qs shifts each 32-bit lane left by
 * SAR[4:0] (TRM; set with ssai, so the emulator reads SAR itself); ee.andq is a bitwise AND;
 * ee.vunzip.8 qa, qb leaves the even-index bytes of qa:qb in qa and the odd ones in qb
 * (helper vunzip_s3); ee.ld.128.usar.ip / ee.src.q.qup realign a misaligned x as in q8.S's
 * Q4 path. Fused loads never alias the MAC's operands.
 */

	.text

/* One chunk: ACCX += 16 * (dot of 32 values). Expects xe in q3 and a12 at the chunk's xo;
 * leaves the next chunk's xe in q3 and a12 at its xo. q7 = 0xF0 in every byte. */
	.macro	q4chunk
	ee.vld.128.ip	q0, a3, 16
	ee.vsl.32	q2, q0
	ee.andq	q1, q0, q7
	ee.andq	q2, q2, q7
	ee.vmulas.s8.accx.ld.ip	q4, a12, 16, q2, q3
	ee.vmulas.s8.accx.ld.ip	q3, a12, 16, q1, q4
	.endm

/* A group's end: ival = ACCX >> 4, val = fmaf(ival * ws, xs, val). */
	.macro	q4finish
	ee.srs.accx	a8, a11, 0
	float.s	f0, a8, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
	.endm

/* A row's start: val = +0.0, x and xs from their first elements, q3 = chunk 0's xe. */
	.macro	q4row
	const.s	f4, 0
	mov	a12, a13
	mov	a15, a6
	ee.vld.128.ip	q3, a12, 16
	.endm

	.align	4
	.global	esp_llm_lx7_matmul_q4
	.type	esp_llm_lx7_matmul_q4, @function
esp_llm_lx7_matmul_q4:
	entry	a1, 32
	l32i	a8, a1, 32		/* stride */
	l32i	a9, a1, 36		/* group */
	beqz	a7, .Lq4_ret
	quou	a10, a8, a9		/* groups per row */
	/* x buffer: stride bytes + 16 read past the end by each row's last fused load */
	addi	a12, a8, 32
	sub	a12, a1, a12
	movi	a13, -16
	and	a12, a12, a13
	movsp	a1, a12			/* windowed-ABI alloca */
	mov	a13, a1
	mov	a12, a1
	srli	a14, a8, 5		/* chunks per row */
	extui	a15, a5, 0, 4
	bnez	a15, .Lq4_copy_u
	loop	a14, .Lq4_copy_a_end
	ee.vld.128.ip	q0, a5, 16
	ee.vld.128.ip	q1, a5, 16
	ee.vunzip.8	q0, q1
	ee.vst.128.ip	q0, a12, 16
	ee.vst.128.ip	q1, a12, 16
.Lq4_copy_a_end:
	j	.Lq4_copied
.Lq4_copy_u:
	/* 2 * chunks + 1 aligned blocks: the last holds xq's last byte (xq is misaligned) */
	ee.ld.128.usar.ip	q2, a5, 16
	loop	a14, .Lq4_copy_u_end
	ee.ld.128.usar.ip	q3, a5, 16
	ee.src.q.qup	q0, q2, q3
	ee.ld.128.usar.ip	q3, a5, 16
	ee.src.q.qup	q1, q2, q3
	ee.vunzip.8	q0, q1
	ee.vst.128.ip	q0, a12, 16
	ee.vst.128.ip	q1, a12, 16
.Lq4_copy_u_end:
.Lq4_copied:
	slli	a5, a14, 5		/* stride (a8 is ival from here on) */
	/* masks: q5 = 0xF0 in bytes 0..7, q6 in bytes 8..15, q7 in all */
	movi	a15, 0xf0
	slli	a8, a15, 8
	or	a15, a15, a8
	slli	a8, a15, 16
	or	a15, a15, a8		/* 0xf0f0f0f0 */
	ee.zero.q	q5
	ee.zero.q	q6
	ee.movi.32.q	q5, a15, 0
	ee.movi.32.q	q5, a15, 1
	ee.movi.32.q	q6, a15, 2
	ee.movi.32.q	q6, a15, 3
	ee.orq	q7, q5, q6
	ssai	4
	movi	a11, 4
	srli	a14, a9, 4		/* c = group / 16 */
	bbsi	a14, 0, .Lq4_odd
	movi	a8, 64
	beq	a5, a8, .Lq4_r64
	movi	a8, 2
	beq	a14, a8, .Lq4_g32
	movi	a8, 4
	beq	a14, a8, .Lq4_g64
	j	.Lq4_ge

/* ---- R64: stride 64 (groups of 32 or 64), x kept in q3..q6, xs in f8/f9 ----
 * Each row's last fused MAC loads the next row's first chunk into q0; the last row runs after
 * the loop with a plain MAC, so nothing past the end of wq is read. */
	.macro	r64chunk xe, xo, last
	ee.vsl.32	q2, q0
	ee.andq	q1, q0, q7
	ee.andq	q2, q2, q7
	.ifeq	\last
	ee.vmulas.s8.accx.ld.ip	q0, a3, 16, q2, \xe
	.else
	ee.vmulas.s8.accx	q2, \xe
	.endif
	ee.vmulas.s8.accx	q1, \xo
	.endm

	.macro	r64g32row last
	ee.zero.accx
	r64chunk	q3, q4, 0
	ee.srs.accx	a8, a11, 0
	ee.zero.accx
	r64chunk	q5, q6, \last
	ee.srs.accx	a10, a11, 0
	float.s	f0, a8, 0
	float.s	f1, a10, 0
	lsip	f2, a4, 4
	lsip	f3, a4, 4
	mul.s	f0, f0, f2
	mul.s	f1, f1, f3
	const.s	f4, 0
	madd.s	f4, f0, f8
	madd.s	f4, f1, f9
	ssip	f4, a2, 4
	.endm

	.macro	r64g64row last
	ee.zero.accx
	r64chunk	q3, q4, 0
	r64chunk	q5, q6, \last
	ee.srs.accx	a8, a11, 0
	float.s	f0, a8, 0
	lsip	f2, a4, 4
	mul.s	f0, f0, f2
	const.s	f4, 0
	madd.s	f4, f0, f8
	ssip	f4, a2, 4
	.endm

.Lq4_r64:
	mov	a12, a13
	ee.vld.128.ip	q3, a12, 16	/* xe of values 0..31 */
	ee.vld.128.ip	q4, a12, 16	/* xo */
	ee.vld.128.ip	q5, a12, 16	/* xe of values 32..63 */
	ee.vld.128.ip	q6, a12, 0	/* xo */
	ee.vld.128.ip	q0, a3, 16	/* row 0, values 0..31 */
	lsi	f8, a6, 0
	addi	a9, a7, -1
	bnei	a14, 2, .Lq4_r64g64
	lsi	f9, a6, 4
	loopnez	a9, .Lq4_r64g32_end
	r64g32row	0
.Lq4_r64g32_end:
	r64g32row	1
	retw
.Lq4_r64g64:
	loopnez	a9, .Lq4_r64g64_end
	r64g64row	0
.Lq4_r64g64_end:
	r64g64row	1
	retw

/* ---- G32: one chunk per group, zero-overhead loop over the groups ---- */
.Lq4_g32:
	q4row
	loop	a10, .Lq4_g32_end
	ee.zero.accx
	q4chunk
	q4finish
.Lq4_g32_end:
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lq4_g32
.Lq4_ret:
	retw

/* ---- G64: two chunks per group ---- */
.Lq4_g64:
	q4row
	loop	a10, .Lq4_g64_end
	ee.zero.accx
	q4chunk
	q4chunk
	q4finish
.Lq4_g64_end:
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lq4_g64
	retw

/* ---- GE: group = 32 * n, zero-overhead loop over a group's n chunks ---- */
.Lq4_ge:
	srli	a14, a14, 1		/* chunks per group */
.Lq4_ge_row:
	q4row
	mov	a9, a10
.Lq4_ge_grp:
	ee.zero.accx
	loop	a14, .Lq4_ge_cend
	q4chunk
.Lq4_ge_cend:
	q4finish
	addi	a9, a9, -1
	bnez	a9, .Lq4_ge_grp
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lq4_ge_row
	retw

/* ---- odd multiples of 16: groups come in pairs (stride is a multiple of 32), A ending in
 * the first half of a chunk and B starting in its second half ---- */
.Lq4_odd:
	srli	a10, a10, 1		/* pairs per row */
	srli	a14, a14, 1		/* whole chunks in A before the shared one, and in B after */
	bnez	a14, .Lq4_go

/* G16: a pair is one chunk, split by the masks (q7 is free for La) */
.Lq4_g16:
	q4row
	loop	a10, .Lq4_g16_end
	ee.zero.accx
	ee.vld.128.ip	q0, a3, 16
	ee.vsl.32	q2, q0
	ee.andq	q1, q0, q5		/* Ha */
	ee.andq	q0, q0, q6		/* Hb */
	ee.andq	q7, q2, q5		/* La */
	ee.andq	q2, q2, q6		/* Lb */
	ee.vmulas.s8.accx.ld.ip	q4, a12, 16, q7, q3	/* La * xe; xo */
	ee.vmulas.s8.accx	q1, q4			/* Ha * xo */
	q4finish
	ee.zero.accx
	ee.vmulas.s8.accx	q2, q3			/* Lb * xe */
	ee.vmulas.s8.accx.ld.ip	q3, a12, 16, q0, q4	/* Hb * xo; next xe */
	q4finish
.Lq4_g16_end:
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lq4_g16
	retw

/* GO: group 48, 80, ...: A's whole chunks, the shared chunk (q7 stays 0xF0 for the
 * whole chunks, so La goes through q4 before xo is loaded), B's whole chunks */
.Lq4_go:
	q4row
	mov	a9, a10
.Lq4_go_pair:
	ee.zero.accx
	loop	a14, .Lq4_go_a_end
	q4chunk
.Lq4_go_a_end:
	ee.vld.128.ip	q0, a3, 16
	ee.vsl.32	q2, q0
	ee.andq	q1, q0, q5		/* Ha */
	ee.andq	q0, q0, q6		/* Hb */
	ee.andq	q4, q2, q5		/* La */
	ee.andq	q2, q2, q6		/* Lb */
	ee.vmulas.s8.accx	q4, q3		/* La * xe */
	ee.vld.128.ip	q4, a12, 16	/* xo */
	ee.vmulas.s8.accx	q1, q4		/* Ha * xo */
	q4finish
	ee.zero.accx
	ee.vmulas.s8.accx	q2, q3		/* Lb * xe */
	ee.vmulas.s8.accx.ld.ip	q3, a12, 16, q0, q4	/* Hb * xo; next xe */
	loop	a14, .Lq4_go_b_end
	q4chunk
.Lq4_go_b_end:
	q4finish
	addi	a9, a9, -1
	bnez	a9, .Lq4_go_pair
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lq4_go
	retw
	.size	esp_llm_lx7_matmul_q4, . - esp_llm_lx7_matmul_q4
