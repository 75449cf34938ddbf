/* test_lutgptq.c: GPTQ reassignment of LUT palettizations (lutgptq.h)
 * against an independent optimal-brain-quantizer loop, a brute-force
 * optimum, k-means' own error, and across thread counts. */
#include "base/fp16.h"
#include "base/util.h"
#include "convert/lut.h"
#include "convert/lutgptq.h"
#include "test.h"
#include "verify/calib.h"

#include <stdint.h>

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static double rng_unit(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

static double rng_gauss(void)
{
	double u1 = rng_unit(), u2 = rng_unit();
	return sqrt(-2 * log(u1 > 1e-300 ? u1 : 1e-300)) * cos(6.283185307179586 * u2);
}

static void random_weights(uint16_t *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		w[i] = f32_to_fp16((float)(0.1 * rng_gauss()), NULL);
}

/* E[x x^T] of T samples of strongly correlated inputs: x = A z. */
static double *random_xtx(int K, int T)
{
	double *A = xmalloc((size_t)K * K * sizeof *A), *H = xcalloc((size_t)K * K, sizeof *H);
	double *x = xmalloc((size_t)K * sizeof *x), *z = xmalloc((size_t)K * sizeof *z);
	for (int i = 0; i < K * K; i++)
		A[i] = rng_gauss() + (i % K == 0 ? 2 : 0); /* a shared component */
	for (int t = 0; t < T; t++) {
		for (int k = 0; k < K; k++)
			z[k] = rng_gauss();
		for (int i = 0; i < K; i++) {
			x[i] = 0;
			for (int k = 0; k < K; k++)
				x[i] += A[i * K + k] * z[k];
		}
		for (int i = 0; i < K; i++)
			for (int j = 0; j < K; j++)
				H[i * K + j] += x[i] * x[j] / T;
	}
	free(A);
	free(x);
	free(z);
	return H;
}

/* (w - q)^T H (w - q) of one row. */
static double row_err(const double *H, int K, const double *w, const double *lut, const uint8_t *idx)
{
	double s = 0;
	for (int i = 0; i < K; i++)
		for (int j = 0; j < K; j++)
			s += (w[i] - lut[idx[i]]) * H[i * K + j] * (w[j] - lut[idx[j]]);
	return s;
}

/* The original optimal brain quantizer loop, written independently of
 * lutgptq.c: keep the inverse of H restricted to the columns not yet
 * quantized; quantize the next column (decreasing H_kk) to the nearest
 * entry, move the others by -(w_q - v) / Hinv_qq * Hinv[:, q] and remove q
 * from the inverse. Same damping as lutgptq.h; then its coordinate descent,
 * each move found by recomputing the whole error. */
static void obq_row(const double *xtx, int K, const double *w0, const double *lut, int n, uint8_t *idx)
{
	double *H = xmalloc((size_t)K * K * sizeof *H), *Hi = xcalloc((size_t)K * K, sizeof *Hi), w[64];
	int order[64], done[64] = {0};
	memcpy(w, w0, (size_t)K * sizeof *w);
	double mean = 0;
	for (int k = 0; k < K; k++)
		mean += xtx[k * K + k] / K;
	memcpy(H, xtx, (size_t)K * K * sizeof *H);
	for (int k = 0; k < K; k++)
		H[k * K + k] += LUT_GPTQ_DAMP * mean;
	for (int i = 0; i < K; i++) /* Gauss-Jordan inverse */
		Hi[i * K + i] = 1;
	for (int c = 0; c < K; c++) {
		double p = H[c * K + c];
		for (int j = 0; j < K; j++) {
			H[c * K + j] /= p;
			Hi[c * K + j] /= p;
		}
		for (int r = 0; r < K; r++)
			if (r != c) {
				double f = H[r * K + c];
				for (int j = 0; j < K; j++) {
					H[r * K + j] -= f * H[c * K + j];
					Hi[r * K + j] -= f * Hi[c * K + j];
				}
			}
	}
	for (int j = 0; j < K; j++) { /* decreasing H_kk, ties by column */
		int i = j;
		for (; i > 0 && xtx[order[i - 1] * K + order[i - 1]] < xtx[j * K + j]; i--)
			order[i] = order[i - 1];
		order[i] = j;
	}
	for (int s = 0; s < K; s++) {
		int q = order[s], best = 0;
		for (int a = 1; a < n; a++)
			if (fabs(w[q] - lut[a]) < fabs(w[q] - lut[best]))
				best = a;
		idx[q] = (uint8_t)best;
		double d = (w[q] - lut[best]) / Hi[q * K + q];
		done[q] = 1;
		for (int i = 0; i < K; i++)
			if (!done[i])
				w[i] -= d * Hi[i * K + q];
		double hq = Hi[q * K + q];
		for (int i = 0; i < K; i++)
			for (int j = 0; j < K; j++)
				if (i != q && j != q)
					Hi[i * K + j] -= Hi[i * K + q] * Hi[q * K + j] / hq;
	}
	memcpy(H, xtx, (size_t)K * K * sizeof *H);
	for (int k = 0; k < K; k++)
		H[k * K + k] += LUT_GPTQ_DAMP * mean;
	for (int p = 0, moved = 1; p < LUT_GPTQ_DESCENT && moved; p++) {
		moved = 0;
		for (int s = 0; s < K; s++) {
			int q = order[s], was = idx[q], best = was;
			double best_err = row_err(H, K, w0, lut, idx);
			for (int a = 0; a < n; a++) {
				idx[q] = (uint8_t)a;
				double e = row_err(H, K, w0, lut, idx);
				if (e < best_err - 1e-12 * fabs(best_err)) {
					best_err = e;
					best = a;
				}
			}
			idx[q] = (uint8_t)best;
			moved |= best != was;
		}
	}
	free(H);
	free(Hi);
}

/* With no refit, every group is what the OBQ loop assigns it, or k-means'
 * assignment when that one's output error is lower. */
static void test_gptq_matches_obq(void)
{
	enum { C = 16, K = 12, G = 4, BITS = 2 };
	uint16_t w[C * K];
	uint8_t km[C * K], obq[C * K];
	random_weights(w, C * K);
	double *xtx = random_xtx(K, 200);
	lut_result r;
	CHECK(lut_quantize("t", w, C, K, BITS, G, 1, &r) == 0);
	memcpy(km, r.indices, sizeof km);
	CHECK(lut_gptq("t", w, xtx, 0, 1, &r) == 0);
	for (int c = 0; c < C; c++) {
		double lut[1 << BITS], w0[K];
		for (int a = 0; a < 1 << BITS; a++)
			lut[a] = fp16_to_f32(r.lut[(c / G) * (1 << BITS) + a]);
		for (int k = 0; k < K; k++)
			w0[k] = fp16_to_f32(w[c * K + k]);
		obq_row(xtx, K, w0, lut, 1 << BITS, obq + c * K);
	}
	int as_obq = 0;
	for (int g = 0; g < C / G; g++) {
		const uint8_t *got = r.indices + g * G * K;
		int o = memcmp(got, obq + g * G * K, G * K) == 0, k = memcmp(got, km + g * G * K, G * K) == 0;
		CHECKF(o || k, "group %d is neither the OBQ loop's assignment nor k-means'", g);
		as_obq += o;
	}
	CHECKF(as_obq >= C / G / 2, "only %d of %d groups took the OBQ assignment", as_obq, C / G);
	lut_result_release(&r);
	free(xtx);
}

/* Random w [C][K] and its input's second moments (returned), palettized
 * twice by k-means, then by lut_gptq with ra and rb refits (-1: not at all). */
static double *palettize_pair(uint16_t *w, int C, int K, int bits, int G, int ra, int rb, lut_result *a,
			      lut_result *b)
{
	random_weights(w, (size_t)(C * K));
	double *xtx = random_xtx(K, 300);
	CHECK(lut_quantize("t", w, C, K, bits, G, 1, a) == 0);
	CHECK(lut_quantize("t", w, C, K, bits, G, 1, b) == 0);
	CHECK(ra < 0 || lut_gptq("t", w, xtx, ra, 1, a) == 0);
	CHECK(rb < 0 || lut_gptq("t", w, xtx, rb, 1, b) == 0);
	return xtx;
}

/* Never worse than k-means in output error; much better on correlated inputs;
 * and never better than the brute-force optimum for its tables. */
static void test_gptq_error_bounds(void)
{
	enum { C = 8, K = 8, G = 4, BITS = 2 };
	uint16_t w[C * K];
	lut_result km, gq;
	double *xtx = palettize_pair(w, C, K, BITS, G, -1, 0, &km, &gq);
	double e_km = lut_output_error(w, xtx, &km), e_gq = lut_output_error(w, xtx, &gq);
	CHECKF(e_gq < 0.8 * e_km, "GPTQ %g, k-means %g", e_gq, e_km);
	/* brute force over every assignment of each row to its (unchanged) table */
	double best_total = 0;
	for (int c = 0; c < C; c++) {
		double best = INFINITY, e[K];
		for (unsigned m = 0; m < 1u << (BITS * K); m++) {
			for (int k = 0; k < K; k++)
				e[k] = (double)fp16_to_f32(w[c * K + k]) -
				       fp16_to_f32(km.lut[(c / G << BITS) + ((m >> (BITS * k)) & ((1 << BITS) - 1))]);
			double s = 0;
			for (int i = 0; i < K; i++)
				for (int j = 0; j < K; j++)
					s += e[i] * xtx[i * K + j] * e[j];
			best = s < best ? s : best;
		}
		best_total += best;
	}
	CHECKF(e_gq >= best_total * (1 - 1e-12), "GPTQ %g below the optimum %g", e_gq, best_total);
	lut_result_release(&km);
	lut_result_release(&gq);
	free(xtx);
}

/* Refitting the tables lowers the error further, or keeps it. */
static void test_gptq_refit(void)
{
	enum { C = 16, K = 24, G = 4, BITS = 2 };
	uint16_t w[C * K];
	lut_result a, b;
	double *xtx = palettize_pair(w, C, K, BITS, G, 0, 2, &a, &b);
	double ea = lut_output_error(w, xtx, &a), eb = lut_output_error(w, xtx, &b);
	CHECKF(eb <= ea, "refitted %g, not refitted %g", eb, ea);
	CHECKF(memcmp(a.lut, b.lut, sizeof(uint16_t) * (C / G << BITS)) != 0, "no table changed");
	lut_result_release(&a);
	lut_result_release(&b);
	free(xtx);
}

static void test_gptq_threads(void)
{
	enum { C = 64, K = 40, G = 4, BITS = 4 };
	uint16_t *w = xmalloc(C * K * sizeof *w);
	random_weights(w, C * K);
	double *xtx = random_xtx(K, 100);
	lut_result r[3];
	int threads[3] = {1, 3, 16};
	for (int i = 0; i < 3; i++) {
		CHECK(lut_quantize("t", w, C, K, BITS, G, threads[i], &r[i]) == 0);
		CHECK(lut_gptq("t", w, xtx, LUT_GPTQ_REFITS, threads[i], &r[i]) == 0);
	}
	for (int i = 1; i < 3; i++) {
		CHECK(memcmp(r[0].lut, r[i].lut, sizeof(uint16_t) * (C / G << BITS)) == 0);
		CHECK(memcmp(r[0].indices, r[i].indices, C * K) == 0);
		CHECK(r[0].rel_rms == r[i].rel_rms);
	}
	for (int i = 0; i < 3; i++)
		lut_result_release(&r[i]);
	free(w);
	free(xtx);
}

/* A lossless group stays as it is; bad statistics are refused by name. */
static void test_gptq_lossless_and_errors(void)
{
	enum { C = 2, K = 6 };
	uint16_t w[C * K];
	for (int i = 0; i < C * K; i++)
		w[i] = f32_to_fp16((float)(i % 3) * 0.25f, NULL);
	double *xtx = random_xtx(K, 50);
	lut_result r;
	CHECK(lut_quantize("t", w, C, K, 2, 1, 1, &r) == 0);
	CHECK(lut_gptq("t", w, xtx, 2, 1, &r) == 0);
	CHECK(lut_output_error(w, xtx, &r) == 0);
	CHECK(r.rel_rms == 0);
	xtx[3] = NAN;
	CHECK(lut_gptq("layer.x", w, xtx, 2, 1, &r) == -1);
	CHECK(strstr(errmsg(), "tensor 'layer.x'") != NULL);
	lut_result_release(&r);
	free(xtx);
}

/* Second moments are refused, before anything runs, for a model whose
 * inputs would need more than CALIB_XTX_MAX_BYTES of them. */
static void test_calib_xtx_bound(void)
{
	hf_model hf;
	memset(&hf, 0, sizeof hf);
	hf.cfg.hidden_size = 2048;
	hf.cfg.intermediate_size = 8192;
	hf.cfg.num_hidden_layers = 16;
	hf.cfg.num_attention_heads = 32;
	hf.cfg.head_dim = 64;
	int32_t ids[2] = {1, 2};
	calstats cs = {0};
	CHECK(calib_collect(&hf, ids, 2, 256, 1, 1, &cs) == -1);
	CHECKF(strstr(errmsg(), "would take 10.2 GB (at most 1.1)") != NULL, "%s", errmsg());
	CHECK(cs.n == 0);
}

int main(void)
{
	RUN(test_gptq_matches_obq);
	RUN(test_gptq_error_bounds);
	RUN(test_gptq_refit);
	RUN(test_gptq_threads);
	RUN(test_gptq_lossless_and_errors);
	RUN(test_calib_xtx_bound);
	return test_finish();
}
