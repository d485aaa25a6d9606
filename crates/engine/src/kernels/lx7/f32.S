/* The fp32 matrix-vector product on the ESP32-S3 (Xtensa LX7 FPU).
 *
 *   void esp_llm_lx7_matmul_f32(float *out, const float *w, const float *x,
 *                               uint32_t rows, uint32_t n);
 *
 * Twin of `kernels/scalar.rs` `matmul_f32`, bit for bit: out[r] = ((0.0 + w[r][0]*x[0]) +
 * w[r][1]*x[1]) + ..., each product rounded by mul.s and each sum by add.s, left to right.
 * A fused madd.s would round once per step and differ from the scalar loop, so it is not
 * used. The zero start is a real +0.0 (const.s), so a row whose products are all -0.0
 * gives +0.0 like the scalar code. Only the order in which ROWS advance differs from the
 * scalar loop (a block of rows takes column j together), never the order within a row.
 *
 * Windowed ABI (entry/retw): out a2, w a3, x a4, rows a5, n a6. Floats need only their
 * natural 4-byte alignment. Any rows and n >= 0 (n == 0 gives 0.0 rows). Clobbers f0..f15.
 * Stack: the 32-byte frame; its low 12 bytes hold the three column counts below.
 *
 * Columns: when n % 4 == 0 every row starts at the same offset from a 16-byte boundary
 * (llama2.c v0 files: a 28-byte header, so rows start 12 bytes past one). Each row is then
 *   k = (-w/4) % 4 columns one at a time (to the 16-byte boundary), m = (n-k)/4 groups of
 *   four with ee.ldf.128.ip (four weights in one load), t = (n-k) % 4 columns one at a time,
 * all left to right. When n % 4 != 0 rows start at different offsets: k = n, m = t = 0
 * (every column one at a time, as before ee.ldf). x is read with lsip (any 4-byte
 * alignment), once per column for all the rows of a block.
 *
 * Blocks of eight rows (accumulators f0..f7, x in f8..f11, weights/products f12..f15),
 * then of four, then single rows. Instructions in the zero-overhead loops (no branch):
 *   group of 4 columns, 8 rows: 4 lsip (x) + 8 ee.ldf.128.ip + 32 mul.s + 32 add.s
 *                               = 76 per 32 MACs = 2.375 per MAC
 *                       4 rows: 4 + 4 + 16 + 16 = 40 per 16 = 2.5 per MAC
 *                       1 row:  4 + 1 + 4 + 4 = 13 per 4 = 3.25 per MAC
 *   single column,      8 rows: 1 lsip (x) + 8 lsip + 8 mul.s + 8 add.s = 25 per 8 = 3.125
 *                       4 rows: 13 per 4 = 3.25;  1 row: 4 per MAC
 * Measured (bench/lx7/run.sh --phases, stories260K fp32, 259 328 MACs per token; rows start
 * 12 bytes past a 16-byte boundary, so k = 1 and t = 3 per row of 64): 644 104 instructions
 * per token inside the matmuls = 2.48 per MAC (before ee.ldf: 825 268 = 3.18), 1 382 389
 * per token in all (before: 1 563 553).
 *
 * Semantics relied on (Espressif QEMU target/xtensa): lsip fr, as, 4 loads [as] then
 * as += 4 (translate.c translate_ldsti_s). ee.ldf.128.ip fa, fb, fc, fd, as, 16 loads the
 * four words at as & ~15 into fd, fc, fb, fa (word 0 into the LAST register operand:
 * translate_tie_esp32s3.c translate_ldf_128_ip), then as += 16; we only use it on 16-byte
 * aligned addresses, so the masking never matters. Each row pointer ends its pass at the
 * next row's start, so the last row's pointer is where the next pass begins.
 */

	.text

/* one column for eight rows (pointers a3, a8..a14; x at a15; sums f0..f7) */
	.macro	col8
	lsip	f8, a15, 4
	lsip	f9, a3, 4
	lsip	f10, a8, 4
	lsip	f11, a9, 4
	lsip	f12, a10, 4
	lsip	f13, a11, 4
	lsip	f14, a12, 4
	lsip	f15, a13, 4
	mul.s	f9, f9, f8
	mul.s	f10, f10, f8
	mul.s	f11, f11, f8
	mul.s	f12, f12, f8
	mul.s	f13, f13, f8
	mul.s	f14, f14, f8
	mul.s	f15, f15, f8
	add.s	f0, f0, f9
	lsip	f9, a14, 4		/* row 7 reuses f9, free after row 0's add */
	add.s	f1, f1, f10
	add.s	f2, f2, f11
	mul.s	f9, f9, f8
	add.s	f3, f3, f12
	add.s	f4, f4, f13
	add.s	f5, f5, f14
	add.s	f6, f6, f15
	add.s	f7, f7, f9
	.endm

/* one column for four rows (pointers a3, a8..a10; sums f0..f3) */
	.macro	col4
	lsip	f8, a15, 4
	lsip	f9, a3, 4
	lsip	f10, a8, 4
	lsip	f11, a9, 4
	lsip	f12, a10, 4
	mul.s	f9, f9, f8
	mul.s	f10, f10, f8
	mul.s	f11, f11, f8
	mul.s	f12, f12, f8
	add.s	f0, f0, f9
	add.s	f1, f1, f10
	add.s	f2, f2, f11
	add.s	f3, f3, f12
	.endm

/* the next four x (columns j..j+3) into f8..f11 */
	.macro	x4
	lsip	f8, a15, 4
	lsip	f9, a15, 4
	lsip	f10, a15, 4
	lsip	f11, a15, 4
	.endm

/* columns j..j+3 of the row at \ptr (16-byte aligned) into the sum \acc, in order */
	.macro	quad ptr, acc
	ee.ldf.128.ip	f15, f14, f13, f12, \ptr, 16	/* f12 = w[j] .. f15 = w[j+3] */
	mul.s	f12, f12, f8
	mul.s	f13, f13, f9
	add.s	\acc, \acc, f12
	mul.s	f14, f14, f10
	add.s	\acc, \acc, f13
	mul.s	f15, f15, f11
	add.s	\acc, \acc, f14
	add.s	\acc, \acc, f15
	.endm

	.align	4
	.global	esp_llm_lx7_matmul_f32
	.type	esp_llm_lx7_matmul_f32, @function
esp_llm_lx7_matmul_f32:
	entry	a1, 32
	slli	a7, a6, 2		/* bytes per row */
	/* column counts k (a8), m (a9), t (a10), kept at a1+0, +4, +8 */
	mov	a8, a6
	movi	a9, 0
	movi	a10, 0
	extui	a11, a6, 0, 2
	bnez	a11, .Lf_counts		/* n % 4 != 0: rows at different offsets, k = n */
	beqz	a6, .Lf_counts
	srli	a11, a3, 2
	neg	a11, a11
	extui	a8, a11, 0, 2		/* k = columns to the 16-byte boundary, <= 3 < n */
	sub	a11, a6, a8
	srli	a9, a11, 2		/* m */
	extui	a10, a11, 0, 2		/* t */
.Lf_counts:
	s32i	a8, a1, 0
	s32i	a9, a1, 4
	s32i	a10, a1, 8
	bltui	a5, 8, .Lf4

/* ---- eight rows: a3, a8..a14 the row pointers, a15 walks x, a6 loop counts ---- */
.Lf8_pass:
	add	a8, a3, a7
	add	a9, a8, a7
	add	a10, a9, a7
	add	a11, a10, a7
	add	a12, a11, a7
	add	a13, a12, a7
	add	a14, a13, a7
	mov	a15, a4
	const.s	f0, 0
	const.s	f1, 0
	const.s	f2, 0
	const.s	f3, 0
	const.s	f4, 0
	const.s	f5, 0
	const.s	f6, 0
	const.s	f7, 0
	l32i	a6, a1, 0
	loopnez	a6, .Lf8_k_end
	col8
.Lf8_k_end:
	l32i	a6, a1, 4
	loopnez	a6, .Lf8_m_end
	x4
	quad	a3, f0
	quad	a8, f1
	quad	a9, f2
	quad	a10, f3
	quad	a11, f4
	quad	a12, f5
	quad	a13, f6
	quad	a14, f7
.Lf8_m_end:
	l32i	a6, a1, 8
	loopnez	a6, .Lf8_t_end
	col8
.Lf8_t_end:
	ssi	f0, a2, 0
	ssi	f1, a2, 4
	ssi	f2, a2, 8
	ssi	f3, a2, 12
	ssi	f4, a2, 16
	ssi	f5, a2, 20
	ssi	f6, a2, 24
	ssi	f7, a2, 28
	addi	a2, a2, 32
	mov	a3, a14			/* row 7's pointer ended at row 8 */
	addi	a5, a5, -8
	bgeui	a5, 8, .Lf8_pass

/* ---- four rows ---- */
.Lf4:
	bltui	a5, 4, .Lf1
	add	a8, a3, a7
	add	a9, a8, a7
	add	a10, a9, a7
	mov	a15, a4
	const.s	f0, 0
	const.s	f1, 0
	const.s	f2, 0
	const.s	f3, 0
	l32i	a6, a1, 0
	loopnez	a6, .Lf4_k_end
	col4
.Lf4_k_end:
	l32i	a6, a1, 4
	loopnez	a6, .Lf4_m_end
	x4
	quad	a3, f0
	quad	a8, f1
	quad	a9, f2
	quad	a10, f3
.Lf4_m_end:
	l32i	a6, a1, 8
	loopnez	a6, .Lf4_t_end
	col4
.Lf4_t_end:
	ssi	f0, a2, 0
	ssi	f1, a2, 4
	ssi	f2, a2, 8
	ssi	f3, a2, 12
	addi	a2, a2, 16
	mov	a3, a10
	addi	a5, a5, -4

/* ---- single rows (at most three left) ---- */
.Lf1:
	beqz	a5, .Lf_ret
	l32i	a8, a1, 0
	l32i	a9, a1, 4
	l32i	a10, a1, 8
.Lf1_row:
	mov	a15, a4
	const.s	f0, 0
	loopnez	a8, .Lf1_k_end
	lsip	f8, a15, 4
	lsip	f9, a3, 4
	mul.s	f9, f9, f8
	add.s	f0, f0, f9
.Lf1_k_end:
	loopnez	a9, .Lf1_m_end
	x4
	quad	a3, f0
.Lf1_m_end:
	loopnez	a10, .Lf1_t_end
	lsip	f8, a15, 4
	lsip	f9, a3, 4
	mul.s	f9, f9, f8
	add.s	f0, f0, f9
.Lf1_t_end:
	ssip	f0, a2, 4
	addi	a5, a5, -1
	bnez	a5, .Lf1_row
.Lf_ret:
	retw
	.size	esp_llm_lx7_matmul_f32, . - esp_llm_lx7_matmul_f32
