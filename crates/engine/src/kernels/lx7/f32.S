/* The fp32 matrix-vector product on the ESP32-S3 (Xtensa LX7 FPU).
 *
 *   void esp_llm_lx7_matmul_f32(float *out, const float *w, const float *x,
 *                               uint32_t rows, uint32_t n);
 *
 * Twin of `kernels/scalar.rs` `matmul_f32`, bit for bit: out[r] = ((0.0 + w[r][0]*x[0]) +
 * w[r][1]*x[1]) + ..., each product rounded by mul.s and each sum by add.s, left to right.
 * A fused madd.s would round once per step and differ from the scalar loop, so it is not
 * used. The zero start is a real +0.0 (const.s), so a row whose products are all -0.0
 * gives +0.0 like the scalar code.
 *
 * Windowed ABI (entry/retw): out a2, w a3, x a4, rows a5, n a6. Floats need only their
 * natural 4-byte alignment. Any rows and n >= 0 (n == 0 gives 0.0 rows). Clobbers f0..f15.
 *
 * Eight rows per pass, so each x[j] is loaded once for eight multiply-adds; then passes of
 * four rows and of one row for the tail. Inner loops (zero-overhead `loop`, no branch):
 *   8 rows: 25 instructions per 8 MACs = 3.125 per MAC (1 x load, 8 weight lsip, 8 mul.s,
 *           8 add.s)
 *   4 rows: 13 per 4 MACs = 3.25 per MAC
 *   1 row:  4 per MAC
 * lsip fr, as, 4 loads [as] then as += 4 (QEMU target/xtensa/translate.c translate_ldsti_s);
 * each row pointer ends its pass at the next row's start, so the eighth row's pointer is
 * where the next pass begins.
 */

	.text

	.align	4
	.global	esp_llm_lx7_matmul_f32
	.type	esp_llm_lx7_matmul_f32, @function
esp_llm_lx7_matmul_f32:
	entry	a1, 32
	slli	a7, a6, 2		/* bytes per row */
	bltui	a5, 8, .Lf4

/* ---- eight rows: a3, a8..a14 the row pointers, a15 walks x ---- */
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
	loopnez	a6, .Lf8_end
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
.Lf8_end:
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
	loopnez	a6, .Lf4_end
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
.Lf4_end:
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
.Lf1_row:
	mov	a15, a4
	const.s	f0, 0
	loopnez	a6, .Lf1_end
	lsip	f8, a15, 4
	lsip	f9, a3, 4
	mul.s	f9, f9, f8
	add.s	f0, f0, f9
.Lf1_end:
	ssip	f0, a2, 4
	addi	a5, a5, -1
	bnez	a5, .Lf1_row
.Lf_ret:
	retw
	.size	esp_llm_lx7_matmul_f32, . - esp_llm_lx7_matmul_f32
