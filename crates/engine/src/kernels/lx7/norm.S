/* RMSNorm's two loops on the ESP32-S3's FPU (math.rs `rmsnorm`, `rmsnorm_in_place`; the
 * division and square root between them stay in Rust, `math::inv_rms_from`).
 *
 *   uint32_t esp_llm_lx7_sumsq(const float *x, uint32_t n);
 *     ss = +0.0; ss += x[i] * x[i] for i < n in order, each product and sum rounded once
 *     (mul.s, add.s: Rust does not fuse); returns the bits of ss. 3 instructions per value.
 *
 *   void esp_llm_lx7_rmsscale(float *o, const float *x, const float *w, uint32_t n, float ss);
 *     o[i] = w[i] * (ss * x[i]) for i < n; o may be x (each value is read before it is
 *     written). 5 instructions per value.
 *
 * Windowed ABI; floats travel in address registers (ss in a6). n may be 0. Clobbers f0..f2.
 */
	.text
	.align	4
	.global	esp_llm_lx7_sumsq
	.type	esp_llm_lx7_sumsq, @function
esp_llm_lx7_sumsq:
	entry	a1, 32
	const.s	f0, 0
	loopnez	a3, .Lss_end
	lsip	f1, a2, 4
	mul.s	f1, f1, f1
	add.s	f0, f0, f1
.Lss_end:
	rfr	a2, f0
	retw
	.size	esp_llm_lx7_sumsq, . - esp_llm_lx7_sumsq

	.align	4
	.global	esp_llm_lx7_rmsscale
	.type	esp_llm_lx7_rmsscale, @function
esp_llm_lx7_rmsscale:
	entry	a1, 32
	wfr	f2, a6			/* ss */
	loopnez	a5, .Lrs_end
	lsip	f0, a3, 4		/* x[i] */
	lsip	f1, a4, 4		/* w[i] */
	mul.s	f0, f2, f0		/* ss * x[i] */
	mul.s	f0, f1, f0		/* w[i] * (...) */
	ssip	f0, a2, 4
.Lrs_end:
	retw
	.size	esp_llm_lx7_rmsscale, . - esp_llm_lx7_rmsscale
