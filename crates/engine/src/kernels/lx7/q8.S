/* The int8 matrix-vector product of the float numerics on the ESP32-S3 (Xtensa LX7 + PIE).
 *
 *   void esp_llm_lx7_matmul_q8(float *out, const int8_t *wq, const float *ws,
 *                              const int8_t *xq, const float *xs,
 *                              uint32_t rows, uint32_t stride, uint32_t group);
 *
 * Twin of `kernels/scalar.rs` `matmul_q8`, bit for bit: for each row,
 *   val = 0.0f; for g < stride/group:
 *     ival = sum_k wq[r*stride + g*group + k] * xq[g*group + k]      (exact int32)
 *     val  = fmaf((float)ival * ws[r*(stride/group) + g], xs[g], val)
 *   out[r] = val
 * The int32 sum is exact on every path (PIE ACCX or MAC16 ACC are 40 bits wide and
 * |ival| < 2^31 for any group below 131072), so only the float steps could differ, and
 * they are the same instructions as the scalar code: float.s (int -> f32, round to
 * nearest even, like `as f32`), mul.s (one rounding), madd.s (fused, one rounding, like
 * libm::fmaf). The zero start is a real +0.0 (const.s) so the signs of zero agree too.
 * Groups past stride/group*group (stride % group) are ignored, like `chunks_exact`.
 *
 * Windowed ABI (entry/retw): out a2, wq a3, ws a4, xq a5, xs a6, rows a7; stride and
 * group are the 7th/8th words, at the caller's sp, i.e. a1+32 and a1+36 after `entry a1, 32`.
 * Clobbers ACCX, q0..q7, SAR_BYTE (Q4), MAC16 ACC (S4/SN), f0..f9, the FPU and PIE being
 * caller-saved state. Stack: 32 bytes, plus ceil(stride/16)*16 + 32 on the Q4 path.
 * rows == 0 writes nothing; group == 0 or stride < group writes 0.0.
 *
 * Paths (chosen once per call):
 *   PIE fast paths, when wq and xq are 16-byte aligned and stride % 16 == group % 16 == 0
 *   (the device bundle: zero-padded rows, 16-byte aligned, groups of 16/32/64...):
 *     stride 64, group 32 ("R64G32"): x stays in q4..q7, xs in f8/f9; one pass per row,
 *       18 instructions per 64 MACs = 0.28 per MAC (8 PIE: 4 fused MAC+load, 2 zero,
 *       2 srs; 10 float: 2 float.s, 2 lsip, 2 mul.s, const.s, 2 madd.s, ssip), no loop
 *       overhead (zero-overhead `loop` over the rows).
 *     group 32 ("G32"): x streamed, 11 instructions per group of 32 = 0.34 per MAC
 *       (+9 per row).
 *     group 16 ("G16"): 10 instructions per group of 16 = 0.63 per MAC (+8 per row).
 *     other multiples of 16 ("G16N"): 10 + 3*group/16 per group, e.g. 22 per 64 = 0.34.
 *   Portable path, any alignment and any group >= 1 (llama2.c's q80 files: group 4,
 *   strides like 172), with MAC16 (mul.aa.ll / mula.aa.ll: 16x16 signed into the 40-bit
 *   ACC, exact for sign-extended bytes):
 *     group 4, stride <= 1024 ("Q4", PIE at any alignment): 9.5 instructions per group of
 *       4 = 2.4 per MAC (see the path's comment); x is copied to a stack buffer once per call.
 *     group 4 otherwise ("S4"): 28 instructions per group = 7 per MAC (8 l8ui, 8 sext, 4 MAC16,
 *       2 addi, rsr.acclo, 5 float), zero-overhead loop over the groups.
 *     any group ("SN"): 7 per MAC + 14 per group.
 *
 * PIE semantics relied on (Espressif QEMU, target/xtensa/translate_tie_esp32s3.c):
 *   ee.vld.128.ip qu, as, imm: loads the 16 bytes at as & ~15 (translate_vld_128_s3), then
 *     as += imm. We only use it on 16-byte aligned addresses.
 *   ee.vmulas.s8.accx[.ld.ip] qx, qy: ACCX += sum_i s8(qx[i]) * s8(qy[i]), i < 16, 40-bit
 *     ACCX saturating at +-(2^39-1) (helper vmulas_accx_s3), never reached here. The fused
 *     form multiplies the OLD qx/qy and then loads qu (translate_vmulas_accx_s3); we never
 *     let qu alias qx or qy, so the order within the instruction does not matter (the
 *     emulator is said to differ from silicon in register aliasing cases).
 *   ee.srs.accx au, as, 0 with as = 0: au = low 32 bits of ACCX >> 0 (srs_accx_s3). With a
 *     zero shift there is no rounding, and |ACCX| < 2^31 so no saturation on silicon either.
 *   ee.zero.accx: ACCX = 0.
 */

	.text

	.align	4
	.global	esp_llm_lx7_matmul_q8
	.type	esp_llm_lx7_matmul_q8, @function
esp_llm_lx7_matmul_q8:
	entry	a1, 32
	l32i	a8, a1, 32		/* stride */
	l32i	a9, a1, 36		/* group */
	beqz	a7, .Lq8_ret
	beqz	a9, .Lq8_zero
	quou	a10, a8, a9		/* G = groups per row */
	beqz	a10, .Lq8_zero
	/* fast path: wq, xq 16-byte aligned, stride and group multiples of 16 */
	or	a12, a3, a5
	or	a12, a12, a8
	or	a12, a12, a9
	extui	a12, a12, 0, 4
	bnez	a12, .Lq8_portable
	movi	a11, 0			/* shift amount for ee.srs.accx */
	movi	a12, 32
	bne	a9, a12, .Lq8_not32
	movi	a12, 64
	beq	a8, a12, .Lq8_r64g32
	j	.Lq8_g32
.Lq8_not32:
	movi	a12, 16
	beq	a9, a12, .Lq8_g16
	j	.Lq8_g16n

/* ---- rows * 0.0 (no complete group) ---- */
.Lq8_zero:
	const.s	f0, 0
	loopnez	a7, .Lq8_zero_end
	ssip	f0, a2, 4
.Lq8_zero_end:
.Lq8_ret:
	retw

/* ---- R64G32: stride 64, group 32; x in q4..q7, xs[0], xs[1] in f8, f9 ----
 * Each row's first chunk is loaded by the previous row's last fused MAC (into q0), so a
 * row costs 4 PIE loads folded into its 4 MACs. The last row runs outside the loop with a
 * plain MAC, so nothing past the end of wq is read. */
.Lq8_r64g32:
	mov	a12, a5
	ee.vld.128.ip	q4, a12, 16
	ee.vld.128.ip	q5, a12, 16
	ee.vld.128.ip	q6, a12, 16
	ee.vld.128.ip	q7, a12, 0
	lsi	f8, a6, 0
	lsi	f9, a6, 4
	ee.vld.128.ip	q0, a3, 16	/* row 0, bytes 0..15 */
	addi	a13, a7, -1
	loopnez	a13, .Lr64_end
	ee.zero.accx
	ee.vmulas.s8.accx.ld.ip	q1, a3, 16, q0, q4
	ee.vmulas.s8.accx.ld.ip	q2, a3, 16, q1, q5
	ee.srs.accx	a8, a11, 0		/* ival of group 0 */
	ee.zero.accx
	ee.vmulas.s8.accx.ld.ip	q3, a3, 16, q2, q6
	ee.vmulas.s8.accx.ld.ip	q0, a3, 16, q3, q7	/* loads the next row's bytes 0..15 */
	ee.srs.accx	a9, a11, 0		/* ival of group 1 */
	float.s	f0, a8, 0
	float.s	f1, a9, 0
	lsip	f2, a4, 4
	lsip	f3, a4, 4
	mul.s	f0, f0, f2
	mul.s	f1, f1, f3
	const.s	f4, 0
	madd.s	f4, f0, f8
	madd.s	f4, f1, f9
	ssip	f4, a2, 4
.Lr64_end:
	ee.zero.accx
	ee.vmulas.s8.accx.ld.ip	q1, a3, 16, q0, q4
	ee.vmulas.s8.accx.ld.ip	q2, a3, 16, q1, q5
	ee.srs.accx	a8, a11, 0
	ee.zero.accx
	ee.vmulas.s8.accx.ld.ip	q3, a3, 16, q2, q6
	ee.vmulas.s8.accx	q3, q7
	ee.srs.accx	a9, a11, 0
	float.s	f0, a8, 0
	float.s	f1, a9, 0
	lsip	f2, a4, 4
	lsip	f3, a4, 4
	mul.s	f0, f0, f2
	mul.s	f1, f1, f3
	const.s	f4, 0
	madd.s	f4, f0, f8
	madd.s	f4, f1, f9
	ssip	f4, a2, 4
	retw

/* ---- G32: group 32, any stride % 16 == 0; x streamed ----
 * Within a row, each group's last fused MAC loads the next group's first weight chunk
 * (q0); the row's last group runs after the loop with a plain MAC. */
.Lq8_g32:
	slli	a13, a10, 5
	sub	a13, a8, a13		/* bytes of a row past its last group (stride % 32) */
	addi	a14, a10, -1
.Lg32_row:
	const.s	f4, 0
	mov	a12, a5
	mov	a15, a6
	ee.vld.128.ip	q0, a3, 16
	loopnez	a14, .Lg32_gend
	ee.zero.accx
	ee.vld.128.ip	q1, a12, 16
	ee.vmulas.s8.accx.ld.ip	q2, a3, 16, q0, q1
	ee.vld.128.ip	q3, a12, 16
	ee.vmulas.s8.accx.ld.ip	q0, a3, 16, q2, q3
	ee.srs.accx	a9, a11, 0
	float.s	f0, a9, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
.Lg32_gend:
	ee.zero.accx
	ee.vld.128.ip	q1, a12, 16
	ee.vmulas.s8.accx.ld.ip	q2, a3, 16, q0, q1
	ee.vld.128.ip	q3, a12, 16
	ee.vmulas.s8.accx	q2, q3
	ee.srs.accx	a9, a11, 0
	float.s	f0, a9, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
	add	a3, a3, a13
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lg32_row
	retw

/* ---- G16: group 16, any stride % 16 == 0 ---- */
.Lq8_g16:
	slli	a13, a10, 4
	sub	a13, a8, a13		/* 0 when stride % 16 == 0; kept for clarity of the layout */
.Lg16_row:
	const.s	f4, 0
	mov	a12, a5
	mov	a15, a6
	loop	a10, .Lg16_gend
	ee.zero.accx
	ee.vld.128.ip	q0, a3, 16
	ee.vld.128.ip	q1, a12, 16
	ee.vmulas.s8.accx	q0, q1
	ee.srs.accx	a9, a11, 0
	float.s	f0, a9, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
.Lg16_gend:
	add	a3, a3, a13
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lg16_row
	retw

/* ---- G16N: group = 16*c (48, 64, 128...), any stride % 16 == 0 ----
 * Zero-overhead loop over the c chunks of a group; groups and rows by branches. */
.Lq8_g16n:
	srli	a14, a9, 4		/* chunks per group */
	mull	a13, a10, a9
	sub	a13, a8, a13		/* stride % group */
.Lg16n_row:
	const.s	f4, 0
	mov	a12, a5
	mov	a15, a6
	mov	a8, a10
.Lg16n_grp:
	ee.zero.accx
	loop	a14, .Lg16n_cend
	ee.vld.128.ip	q0, a3, 16
	ee.vld.128.ip	q1, a12, 16
	ee.vmulas.s8.accx	q0, q1
.Lg16n_cend:
	ee.srs.accx	a9, a11, 0
	float.s	f0, a9, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
	addi	a8, a8, -1
	bnez	a8, .Lg16n_grp
	add	a3, a3, a13
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lg16n_row
	retw

/* ---- portable paths: any alignment, any group >= 1 ----
 * Xtensa has no sign-extending byte load: l8ui + sext. MAC16's mul.aa.ll sets the 40-bit
 * ACC to the product of the low signed halves and mula.aa.ll adds to it; the sign-extended
 * bytes are exact 16-bit values, and rsr.acclo reads the low 32 bits = ival. */
.Lq8_portable:
	mull	a13, a10, a9
	sub	a14, a8, a13		/* stride % group: skipped at each row's end */
	movi	a12, 4
	bne	a9, a12, .Lq8_sn
	movi	a12, 1024
	bgeu	a12, a8, .Lq8_q4	/* the PIE group-4 path copies x to the stack */
	j	.Lq8_s4
.Lq8_sn:
	addi	a9, a9, -1		/* elements after each group's first */
.Lsn_row:
	const.s	f4, 0
	mov	a12, a5
	mov	a15, a6
	mov	a13, a10
.Lsn_grp:
	l8ui	a8, a3, 0
	l8ui	a11, a12, 0
	addi	a3, a3, 1
	addi	a12, a12, 1
	sext	a8, a8, 7
	sext	a11, a11, 7
	mul.aa.ll	a8, a11
	loopnez	a9, .Lsn_eend
	l8ui	a8, a3, 0
	l8ui	a11, a12, 0
	addi	a3, a3, 1
	addi	a12, a12, 1
	sext	a8, a8, 7
	sext	a11, a11, 7
	mula.aa.ll	a8, a11
.Lsn_eend:
	rsr.acclo	a8
	float.s	f0, a8, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
	addi	a13, a13, -1
	bnez	a13, .Lsn_grp
	add	a3, a3, a14
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Lsn_row
	retw

/* S4: group 4 (llama2.c q80), the four products unrolled with load offsets */
.Lq8_s4:
.Ls4_row:
	const.s	f4, 0
	mov	a12, a5
	mov	a15, a6
	loop	a10, .Ls4_gend
	l8ui	a8, a3, 0
	l8ui	a9, a12, 0
	l8ui	a11, a3, 1
	l8ui	a13, a12, 1
	sext	a8, a8, 7
	sext	a9, a9, 7
	sext	a11, a11, 7
	sext	a13, a13, 7
	mul.aa.ll	a8, a9
	mula.aa.ll	a11, a13
	l8ui	a8, a3, 2
	l8ui	a9, a12, 2
	l8ui	a11, a3, 3
	l8ui	a13, a12, 3
	sext	a8, a8, 7
	sext	a9, a9, 7
	sext	a11, a11, 7
	sext	a13, a13, 7
	mula.aa.ll	a8, a9
	mula.aa.ll	a11, a13
	addi	a3, a3, 4
	addi	a12, a12, 4
	rsr.acclo	a8
	float.s	f0, a8, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
.Ls4_gend:
	add	a3, a3, a14
	ssip	f4, a2, 4
	addi	a7, a7, -1
	bnez	a7, .Ls4_row
	retw

/* Q4: group 4 at any alignment (llama2.c q80: strides 64 and 172, rows not 16-aligned),
 * with the PIE. x is copied once per call into a 16-byte aligned stack buffer (alloca with
 * movsp, ceil(stride/16)*16 + 32 bytes, stride <= 1024). A row is read as 16-byte chunks of
 * four groups, realigned on the fly: ee.ld.128.usar.ip loads the aligned block holding the
 * address and sets SAR_BYTE = address & 15 (translate_ld_usar_128_s3), ee.src.q.qup
 * q2, q0, q1 makes q2 = the 16 bytes starting SAR_BYTE into q0:q1 and then q0 = q1
 * (helper src_q_s3). Group k of a chunk is ACCX = sum(w * (x AND mask_k)) where mask_k
 * (q4..q7) keeps bytes 4k..4k+3: the other lanes contribute exact zeros.
 * Cost: 38 instructions per chunk of four groups = 9.5 per group of 4 = 2.4 per MAC
 * (2 realigning loads, 1 x load, per group: andq, zero, vmulas, srs + 5 float), +~12 per row,
 * + 4 per x byte per call for the copy. Loads never touch an aligned block past the last
 * byte of wq: rows whose last block would are left to S4 (only the last one or two). */
	.macro	q4group mask
	ee.andq	q1, q3, \mask
	ee.zero.accx
	ee.vmulas.s8.accx	q2, q1
	ee.srs.accx	a8, a11, 0
	float.s	f0, a8, 0
	lsip	f1, a4, 4
	lsip	f2, a15, 4
	mul.s	f0, f0, f1
	madd.s	f4, f0, f2
	.endm

.Lq8_q4:
	mov	a14, a8			/* stride */
	addi	a12, a8, 15
	srli	a12, a12, 4
	slli	a12, a12, 4		/* x buffer bytes, whole chunks */
	addi	a13, a12, 32
	sub	a13, a1, a13
	movi	a9, -16
	and	a13, a13, a9
	movsp	a1, a13			/* windowed-ABI alloca */
	add	a13, a1, a12
	s32i	a5, a13, 0		/* xq, for the S4 rows at the end */
	mov	a13, a1
	mov	a9, a5
	loopnez	a8, .Lq4_copy_end
	l8ui	a15, a9, 0
	addi	a9, a9, 1
	s8i	a15, a13, 0
	addi	a13, a13, 1
.Lq4_copy_end:
	movi	a9, -1
	ee.zero.q	q4
	ee.zero.q	q5
	ee.zero.q	q6
	ee.zero.q	q7
	ee.movi.32.q	q4, a9, 0
	ee.movi.32.q	q5, a9, 1
	ee.movi.32.q	q6, a9, 2
	ee.movi.32.q	q7, a9, 3
	/* limit: a row may use the PIE while its last block (16*ceil(G/4) past its first)
	 * starts before the end of wq */
	mull	a13, a7, a14
	add	a13, a13, a3
	addi	a12, a10, 3
	srli	a12, a12, 2
	slli	a12, a12, 4
	sub	a13, a13, a12
	addi	a13, a13, -1
	srli	a9, a10, 2		/* full chunks per row */
	movi	a11, 0
	mov	a5, a3			/* row start */
.Lq4_row:
	blt	a13, a5, .Lq4_rest
	mov	a3, a5
	const.s	f4, 0
	mov	a12, a1
	mov	a15, a6
	ee.ld.128.usar.ip	q0, a3, 16
	loopnez	a9, .Lq4_cend
	ee.ld.128.usar.ip	q1, a3, 16
	ee.src.q.qup	q2, q0, q1
	ee.vld.128.ip	q3, a12, 16
	q4group	q4
	q4group	q5
	q4group	q6
	q4group	q7
.Lq4_cend:
	extui	a8, a10, 0, 2		/* groups in the last, partial chunk */
	beqz	a8, .Lq4_rowend
	ee.ld.128.usar.ip	q1, a3, 16
	ee.src.q.qup	q2, q0, q1
	ee.vld.128.ip	q3, a12, 16
	beqi	a8, 1, .Lq4_t1
	beqi	a8, 2, .Lq4_t2
	q4group	q4
	q4group	q5
	q4group	q6
	j	.Lq4_rowend
.Lq4_t2:
	q4group	q4
	q4group	q5
	j	.Lq4_rowend
.Lq4_t1:
	q4group	q4
.Lq4_rowend:
	ssip	f4, a2, 4
	add	a5, a5, a14
	addi	a7, a7, -1
	bnez	a7, .Lq4_row
	retw
.Lq4_rest:
	mov	a3, a5
	addi	a12, a14, 15
	srli	a12, a12, 4
	slli	a12, a12, 4
	add	a12, a12, a1
	l32i	a5, a12, 0		/* xq */
	slli	a12, a10, 2
	sub	a14, a14, a12		/* stride % 4 */
	j	.Lq8_s4
	.size	esp_llm_lx7_matmul_q8, . - esp_llm_lx7_matmul_q8
