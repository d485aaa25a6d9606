/* Attention inner loops of the float numerics on the ESP32-S3's FPU, for heads of 8 values
 * (stories260K's head_size): the query (or the output) stays in f8..f15 for the whole head.
 *
 *   void esp_llm_lx7_scores8(float *att, const float *q, const float *keys,
 *                            uint32_t n, uint32_t kv_dim);
 *     att[t] = q . keys[t*kv_dim .. +8] for t < n, summed left to right from +0.0 with a
 *     separate mul.s and add.s per term: `score = 0.0; score += q[i] * k[i]` of the scalar
 *     twin (kernels/scalar.rs `attend`), bit for bit. 27 instructions per position (8 MACs):
 *     8 lsi, 8 mul.s, 8 add.s, const.s, ssip, add; no loop overhead (zero-overhead `loop`).
 *
 *   void esp_llm_lx7_values8(float *out, const float *att, const float *values,
 *                            uint32_t n, uint32_t kv_dim);
 *     out[i] = +0.0, then for t < n: out[i] += att[t] * values[t*kv_dim + i]: the scalar
 *     twin's `out.fill(0.0); *o += a * vi`, each out[i] summed over t in the same order.
 *     26 instructions per position: lsip, 8 lsi, 8 mul.s, 8 add.s, add.
 *
 *   uint32_t esp_llm_lx7_scores8_div(float *att, const float *q, const float *keys,
 *                                    uint32_t n, uint32_t kv_dim, const float d[2]);
 *     scores8 and the division by d[0] (sqrt(head_size)) of div.S in one pass:
 *     att[t] = (q . keys[t]) / d[0] with d[1] = RN(1 / d[0]) (1 <= d[0] < 2^16, the caller
 *     checks), as q0 = a*y and two Markstein corrections (div.S's fast path, exact for
 *     2^-90 <= |a| < 2^100). Returns 1 when every score was in that range; 0 otherwise, and
 *     then att is not defined: the caller runs scores8 and div.S instead (zero or subnormal
 *     scores: rare). The range is tracked with MINU/MAXU on the scores' bits, no branch.
 *     38 instructions per position (scores8's 27 + 11), against 27 + 13 and a second call.
 *
 *   void esp_llm_lx7_scores8n(float *att, const float *q, const float *keys,
 *                             uint32_t n, uint32_t kv_dim, uint32_t chunks);
 *     scores8 for heads of 8 * chunks values (stories15M's 48, 42M/110M's 64): the query is
 *     taken 8 values at a time, each chunk in f8..f15 for a pass over all n positions that
 *     continues every position's left-to-right sum in att[t] (started at +0.0 by the first
 *     chunk): the scalar twin's order. 28 instructions per position per chunk (scores8's 27
 *     and the load of the partial sum; the first chunk stores without it).
 *
 *   void esp_llm_lx7_values8n(float *out, const float *att, const float *values,
 *                             uint32_t n, uint32_t kv_dim, uint32_t chunks);
 *     values8 for heads of 8 * chunks values: one pass over the positions per chunk of the
 *     output, each out[i] summed over t in order. 26 instructions per position per chunk.
 *
 * Windowed ABI: a2..a7 as listed. n may be 0; chunks >= 1. Clobbers f0..f15 (caller-saved).
 */
	.text

/* One position's 8-term chain from f0 (+0.0, or a partial sum): f0 += q[i] * k[i], i < 8, for
 * the query chunk in f8..f15 and the keys at a4, each product and sum rounded once, in order;
 * loads run ahead of the products. Scratch f1..f4. 24 instructions. */
	.macro	chain8
	lsi	f1, a4, 0
	lsi	f2, a4, 4
	mul.s	f1, f8, f1
	add.s	f0, f0, f1
	lsi	f3, a4, 8
	mul.s	f2, f9, f2
	add.s	f0, f0, f2
	lsi	f4, a4, 12
	mul.s	f3, f10, f3
	add.s	f0, f0, f3
	lsi	f1, a4, 16
	mul.s	f4, f11, f4
	add.s	f0, f0, f4
	lsi	f2, a4, 20
	mul.s	f1, f12, f1
	add.s	f0, f0, f1
	lsi	f3, a4, 24
	mul.s	f2, f13, f2
	add.s	f0, f0, f2
	lsi	f4, a4, 28
	mul.s	f3, f14, f3
	add.s	f0, f0, f3
	mul.s	f4, f15, f4
	add.s	f0, f0, f4
	.endm

/* One position of the weighted values: f8..f15 += a * v[i], i < 8, with a in f0 and the
 * values at a4, each product and sum rounded once. Scratch f1..f4. 24 instructions. */
	.macro	accum8
	lsi	f1, a4, 0
	lsi	f2, a4, 4
	mul.s	f1, f0, f1
	add.s	f8, f8, f1
	lsi	f3, a4, 8
	mul.s	f2, f0, f2
	add.s	f9, f9, f2
	lsi	f4, a4, 12
	mul.s	f3, f0, f3
	add.s	f10, f10, f3
	lsi	f1, a4, 16
	mul.s	f4, f0, f4
	add.s	f11, f11, f4
	lsi	f2, a4, 20
	mul.s	f1, f0, f1
	add.s	f12, f12, f1
	lsi	f3, a4, 24
	mul.s	f2, f0, f2
	add.s	f13, f13, f2
	lsi	f4, a4, 28
	mul.s	f3, f0, f3
	add.s	f14, f14, f3
	mul.s	f4, f0, f4
	add.s	f15, f15, f4
	.endm

/* f8..f15 = the 8 floats at \p. */
	.macro	load8 p
	lsi	f8, \p, 0
	lsi	f9, \p, 4
	lsi	f10, \p, 8
	lsi	f11, \p, 12
	lsi	f12, \p, 16
	lsi	f13, \p, 20
	lsi	f14, \p, 24
	lsi	f15, \p, 28
	.endm

/* f8..f15 = +0.0. */
	.macro	zero8
	const.s	f8, 0
	const.s	f9, 0
	const.s	f10, 0
	const.s	f11, 0
	const.s	f12, 0
	const.s	f13, 0
	const.s	f14, 0
	const.s	f15, 0
	.endm

/* The 8 accumulators f8..f15 to \p. */
	.macro	store8 p
	ssi	f8, \p, 0
	ssi	f9, \p, 4
	ssi	f10, \p, 8
	ssi	f11, \p, 12
	ssi	f12, \p, 16
	ssi	f13, \p, 20
	ssi	f14, \p, 24
	ssi	f15, \p, 28
	.endm

	.align	4
	.global	esp_llm_lx7_scores8
	.type	esp_llm_lx7_scores8, @function
esp_llm_lx7_scores8:
	entry	a1, 32
	load8	a3
	slli	a6, a6, 2		/* row stride in bytes */
	loopnez	a5, .Lsc_end
	const.s	f0, 0
	chain8
	add	a4, a4, a6
	ssip	f0, a2, 4
.Lsc_end:
	retw
	.size	esp_llm_lx7_scores8, . - esp_llm_lx7_scores8

	.align	4
	.global	esp_llm_lx7_values8
	.type	esp_llm_lx7_values8, @function
esp_llm_lx7_values8:
	entry	a1, 32
	zero8
	slli	a6, a6, 2
	loopnez	a5, .Lva_end
	lsip	f0, a3, 4		/* a = att[t] */
	accum8
	add	a4, a4, a6
.Lva_end:
	store8	a2
	retw
	.size	esp_llm_lx7_values8, . - esp_llm_lx7_values8

	.align	4
	.global	esp_llm_lx7_scores8_div
	.type	esp_llm_lx7_scores8_div, @function
esp_llm_lx7_scores8_div:
	entry	a1, 32
	load8	a3
	lsi	f6, a7, 0		/* d */
	lsi	f5, a7, 4		/* y = RN(1/d) */
	slli	a6, a6, 2		/* row stride in bytes */
	movi	a10, -1			/* min of |score| bits << 1 */
	movi	a11, 0			/* max */
	loopnez	a5, .Lsd_end
	const.s	f0, 0
	chain8				/* a = q . k */
	add	a4, a4, a6
	rfr	a8, f0
	slli	a8, a8, 1
	minu	a10, a10, a8
	maxu	a11, a11, a8
	mul.s	f1, f0, f5		/* q = a*y */
	mov.s	f7, f0
	msub.s	f7, f1, f6		/* r = a - q*d, exact */
	madd.s	f1, f7, f5		/* q += r*y */
	mov.s	f7, f0
	msub.s	f7, f1, f6
	madd.s	f1, f7, f5
	ssip	f1, a2, 4
.Lsd_end:
	/* 1 when every |a| was in [2^-90, 2^100) (or n == 0) */
	movi	a2, 0
	movi	a8, 0x25000000		/* 2^-90 << 1 */
	bltu	a10, a8, .Lsd_ret
	movi	a8, 0xe3000000		/* 2^100 << 1 */
	bgeu	a11, a8, .Lsd_ret
	movi	a2, 1
.Lsd_ret:
	retw
	.size	esp_llm_lx7_scores8_div, . - esp_llm_lx7_scores8_div

	.align	4
	.global	esp_llm_lx7_scores8n
	.type	esp_llm_lx7_scores8n, @function
esp_llm_lx7_scores8n:
	entry	a1, 32
	slli	a6, a6, 2		/* row stride in bytes */
	mov	a9, a4			/* keys of this chunk, position 0 */
	/* chunk 0: att[t] = +0.0 + ... */
	load8	a3
	mov	a8, a2
	loopnez	a5, .Ls8n_first_end
	const.s	f0, 0
	chain8
	add	a4, a4, a6
	ssip	f0, a8, 4
.Ls8n_first_end:
	addi	a7, a7, -1
	beqz	a7, .Ls8n_ret
.Ls8n_chunk:
	/* the next 8 query values and keys: att[t] += ... */
	addi	a3, a3, 32
	load8	a3
	addi	a9, a9, 32
	mov	a4, a9
	mov	a8, a2
	loopnez	a5, .Ls8n_end
	lsi	f0, a8, 0
	chain8
	add	a4, a4, a6
	ssip	f0, a8, 4
.Ls8n_end:
	addi	a7, a7, -1
	bnez	a7, .Ls8n_chunk
.Ls8n_ret:
	retw
	.size	esp_llm_lx7_scores8n, . - esp_llm_lx7_scores8n

	.align	4
	.global	esp_llm_lx7_values8n
	.type	esp_llm_lx7_values8n, @function
esp_llm_lx7_values8n:
	entry	a1, 32
	slli	a6, a6, 2
	mov	a9, a4			/* values of this chunk, position 0 */
.Lv8n_chunk:
	zero8
	mov	a8, a3			/* att */
	mov	a4, a9
	loopnez	a5, .Lv8n_end
	lsip	f0, a8, 4		/* a = att[t] */
	accum8
	add	a4, a4, a6
.Lv8n_end:
	store8	a2
	addi	a2, a2, 32
	addi	a9, a9, 32
	addi	a7, a7, -1
	bnez	a7, .Lv8n_chunk
	retw
	.size	esp_llm_lx7_values8n, . - esp_llm_lx7_values8n
