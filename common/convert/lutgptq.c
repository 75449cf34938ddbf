/* lutgptq.c: GPTQ assignment and least-squares tables (see lutgptq.h). */
#include "convert/lutgptq.h"
#include "base/fp16.h"
#include "base/util.h"
#include "base/workpool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DAMP_TRIES 8

/* The problem in column order of decreasing H_kk (perm[j]: the column at j). */
typedef struct gptq {
	int64_t K;
	int64_t *perm;
	double *H; /* [K][K] damped, permuted */
	double *U; /* [K][K] upper: H^-1 = U^T U */
} gptq;

/* In-place lower Cholesky A = L L^T (upper part left alone); -1 if A is not
 * positive definite. */
static int cholesky(double *A, int64_t n)
{
	for (int64_t j = 0; j < n; j++) {
		double d = A[j * n + j];
		for (int64_t k = 0; k < j; k++)
			d -= A[j * n + k] * A[j * n + k];
		if (!(d > 0))
			return -1;
		d = sqrt(d);
		A[j * n + j] = d;
		for (int64_t i = j + 1; i < n; i++) {
			double s = A[i * n + j];
			for (int64_t k = 0; k < j; k++)
				s -= A[i * n + k] * A[j * n + k];
			A[i * n + j] = s / d;
		}
	}
	return 0;
}

/* U with H^-1 = U^T U from L (H = L L^T): H^-1 = L^-T L^-1, factored again.
 * U may be L's buffer: L is read whole before U is written. */
static int inverse_factor(const double *L, int64_t n, double *U)
{
	double *Li = xcalloc(xmul((size_t)(n * n), 1), sizeof *Li);
	for (int64_t c = 0; c < n; c++) /* column c of L^-1, forward substitution */
		for (int64_t i = c; i < n; i++) {
			double s = i == c ? 1 : 0;
			for (int64_t k = c; k < i; k++)
				s -= L[i * n + k] * Li[k * n + c];
			Li[i * n + c] = s / L[i * n + i];
		}
	double *A = U; /* H^-1 = Li^T Li, lower part, then factored in place */
	for (int64_t i = 0; i < n; i++)
		for (int64_t j = 0; j <= i; j++) {
			double s = 0;
			for (int64_t k = i; k < n; k++)
				s += Li[k * n + i] * Li[k * n + j];
			A[i * n + j] = s;
		}
	free(Li);
	if (cholesky(A, n) != 0)
		return -1;
	for (int64_t i = 0; i < n; i++) /* transpose: U = L2^T, zero below */
		for (int64_t j = 0; j < n; j++)
			if (j > i) {
				A[i * n + j] = A[j * n + i];
				A[j * n + i] = 0;
			}
	return 0;
}

static int gptq_init(gptq *g, const double *xtx, int64_t K)
{
	g->K = K;
	g->perm = xmalloc(xmul((size_t)K, sizeof *g->perm));
	g->H = xmalloc(xmul((size_t)(K * K), sizeof *g->H));
	g->U = xmalloc(xmul((size_t)(K * K), sizeof *g->U));
	/* decreasing H_kk, ties by column: insertion sort keeps it stable */
	for (int64_t j = 0; j < K; j++) {
		int64_t i = j;
		for (; i > 0 && xtx[g->perm[i - 1] * K + g->perm[i - 1]] < xtx[j * K + j]; i--)
			g->perm[i] = g->perm[i - 1];
		g->perm[i] = j;
	}
	double mean = 0;
	for (int64_t j = 0; j < K; j++)
		mean += xtx[j * K + j] / (double)K;
	double damp = LUT_GPTQ_DAMP * (mean > 0 ? mean : 1);
	for (int t = 0; t < MAX_DAMP_TRIES; t++, damp *= 10) {
		for (int64_t i = 0; i < K; i++)
			for (int64_t j = 0; j < K; j++)
				g->H[i * K + j] = xtx[g->perm[i] * K + g->perm[j]] + (i == j ? damp : 0);
		memcpy(g->U, g->H, (size_t)(K * K) * sizeof *g->U);
		if (cholesky(g->U, K) == 0 && inverse_factor(g->U, K, g->U) == 0)
			return 0;
	}
	return -1;
}

static void gptq_free(gptq *g)
{
	free(g->perm);
	free(g->H);
	free(g->U);
}

/* A table's entries in ascending order (ties: lower index first), to find
 * the nearest one by bisection. */
typedef struct sorted_table {
	int n;
	double v[256];
	uint8_t idx[256];
} sorted_table;

static void sort_table(const uint16_t *lut, int n, sorted_table *s)
{
	s->n = n;
	for (int e = 0; e < n; e++) {
		double v = fp16_to_f32(lut[e]);
		int i = e;
		for (; i > 0 && s->v[i - 1] > v; i--) {
			s->v[i] = s->v[i - 1];
			s->idx[i] = s->idx[i - 1];
		}
		s->v[i] = v;
		s->idx[i] = (uint8_t)e;
	}
}

/* The nearest entry to x; on a tie the lower value, then the lower index. */
static int nearest(const sorted_table *s, double x)
{
	int lo = 0, hi = s->n - 1;
	while (lo < hi) { /* first entry >= x */
		int mid = (lo + hi) / 2;
		if (s->v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	int best = lo;
	if (lo > 0 && fabs(x - s->v[lo - 1]) <= fabs(x - s->v[lo]))
		best = lo - 1;
	while (best > 0 && s->v[best - 1] == s->v[best])
		best--;
	return s->idx[best];
}

/* One row, permuted order: x = its weights (overwritten), idx its indices. */
static void assign_row(const gptq *g, const sorted_table *t, const double *lutv, double *x, uint8_t *idx)
{
	int64_t K = g->K;
	for (int64_t j = 0; j < K; j++) {
		int q = nearest(t, x[j]);
		idx[j] = (uint8_t)q;
		const double *u = g->U + j * K;
		double d = (x[j] - lutv[q]) / u[j];
		for (int64_t i = j + 1; i < K; i++)
			x[i] -= d * u[i];
	}
}

/* Coordinate descent on (w - q)^T H (w - q): each weight in turn moves to
 * the entry that lowers the row's error most (if any does), until a pass
 * moves none or after `passes` passes. e, h: scratch [K]. */
static void descend_row(const gptq *g, const double *w, const double *lutv, int n, uint8_t *idx, int passes, double *e,
			double *h)
{
	int64_t K = g->K;
	const double *H = g->H;
	for (int64_t j = 0; j < K; j++)
		e[j] = w[j] - lutv[idx[j]];
	for (int64_t i = 0; i < K; i++) { /* h = H e */
		double s = 0;
		for (int64_t j = 0; j < K; j++)
			s += H[i * K + j] * e[j];
		h[i] = s;
	}
	for (int p = 0; p < passes; p++) {
		int moved = 0;
		for (int64_t j = 0; j < K; j++) {
			double cur = lutv[idx[j]], hjj = H[j * K + j], best = 0;
			int to = -1;
			for (int a = 0; a < n; a++) { /* error change when e_j becomes e_j - d */
				double d = lutv[a] - cur, delta = d * (d * hjj - 2 * h[j]);
				if (delta < best) {
					best = delta;
					to = a;
				}
			}
			if (to < 0)
				continue;
			double d = lutv[to] - cur;
			idx[j] = (uint8_t)to;
			e[j] -= d;
			for (int64_t i = 0; i < K; i++)
				h[i] -= d * H[i * K + j];
			moved = 1;
		}
		if (!moved)
			break;
	}
}

/* (w - q)^T H (w - q) of one row, permuted order; e is scratch [K]. */
static double row_error(const double *H, int64_t K, const double *w, const uint8_t *idx, const double *lutv, double *e)
{
	for (int64_t j = 0; j < K; j++)
		e[j] = w[j] - lutv[idx[j]];
	double s = 0;
	for (int64_t i = 0; i < K; i++) {
		double r = 0;
		for (int64_t j = 0; j < K; j++)
			r += H[i * K + j] * e[j];
		s += e[i] * r;
	}
	return s;
}

/* Least-squares entries for the assignment idx [rows][K] of w [rows][K]:
 * solve M c = b with M[a][b] = sum H_jk over j taking a, k taking b, and
 * b[a] = sum over j taking a of (H w)_j. An entry no weight takes keeps its
 * value. 0, or -1 when the system is singular or an entry leaves fp16. */
static int refit(const gptq *g, int rows, const double *w, const uint8_t *idx, int n, uint16_t *lut)
{
	int64_t K = g->K;
	double *M = xcalloc((size_t)n * (size_t)n, sizeof *M), *b = xcalloc((size_t)n, sizeof *b);
	double *S = xmalloc(xmul((size_t)n, xmul((size_t)K, sizeof *S)));
	for (int r = 0; r < rows; r++) {
		const uint8_t *ix = idx + (size_t)r * (size_t)K;
		const double *wr = w + (size_t)r * (size_t)K;
		memset(S, 0, (size_t)n * (size_t)K * sizeof *S);
		for (int64_t j = 0; j < K; j++) /* S[a][k] = sum over j taking a of H_jk */
			for (int64_t k = 0; k < K; k++)
				S[(size_t)ix[j] * (size_t)K + (size_t)k] += g->H[j * K + k];
		for (int a = 0; a < n; a++)
			for (int64_t k = 0; k < K; k++) {
				double s = S[(size_t)a * (size_t)K + (size_t)k];
				M[a * n + ix[k]] += s;
				b[a] += s * wr[k];
			}
	}
	free(S);
	for (int a = 0; a < n; a++)
		if (M[a * n + a] == 0) { /* unused: keep it */
			for (int c = 0; c < n; c++)
				M[a * n + c] = M[c * n + a] = 0;
			M[a * n + a] = 1;
			b[a] = fp16_to_f32(lut[a]);
		}
	int rc = cholesky(M, n);
	if (rc == 0) {
		for (int i = 0; i < n; i++) { /* L y = b, then L^T c = y */
			for (int k = 0; k < i; k++)
				b[i] -= M[i * n + k] * b[k];
			b[i] /= M[i * n + i];
		}
		for (int i = n - 1; i >= 0; i--) {
			for (int k = i + 1; k < n; k++)
				b[i] -= M[k * n + i] * b[k];
			b[i] /= M[i * n + i];
		}
		for (int a = 0; a < n && rc == 0; a++)
			rc = isfinite(b[a]) && fabs(b[a]) <= 65504 ? 0 : -1;
		for (int a = 0; a < n && rc == 0; a++)
			lut[a] = lut_round_fp16(b[a]);
	}
	free(M);
	free(b);
	return rc;
}

typedef struct gptq_job {
	const gptq *g;
	const uint16_t *w;
	lut_result *r;
	int refits;
	double *sse, *energy; /* [groups] */
} gptq_job;

/* The used entries of a k-means table: its strictly ascending prefix. */
static int used_entries(const uint16_t *lut, int n)
{
	int k = 1;
	while (k < n && fp16_to_f32(lut[k]) > fp16_to_f32(lut[k - 1]))
		k++;
	return k;
}

/* Assign every row of the group with table lut; returns the summed error. */
static double assign_group(const gptq *g, int rows, const double *w, const uint16_t *lut, int n, uint8_t *idx,
			   double *x, double *e)
{
	int64_t K = g->K;
	sorted_table t;
	double lutv[256];
	sort_table(lut, n, &t);
	for (int a = 0; a < n; a++)
		lutv[a] = fp16_to_f32(lut[a]);
	double err = 0;
	for (int r = 0; r < rows; r++) {
		memcpy(x, w + (size_t)r * (size_t)K, (size_t)K * sizeof *x);
		assign_row(g, &t, lutv, x, idx + (size_t)r * (size_t)K);
		descend_row(g, w + (size_t)r * (size_t)K, lutv, n, idx + (size_t)r * (size_t)K, LUT_GPTQ_DESCENT, e, x);
		err += row_error(g->H, K, w + (size_t)r * (size_t)K, idx + (size_t)r * (size_t)K, lutv, e);
	}
	return err;
}

static void one_group(const gptq_job *j, int64_t grp, double *w, uint8_t *best, uint8_t *cur, double *x, double *e)
{
	const gptq *g = j->g;
	lut_result *r = j->r;
	int64_t K = g->K, rows = r->group;
	int n = 1 << r->bits;
	uint16_t *lut = r->lut + (size_t)grp * (size_t)n;
	uint8_t *out = r->indices + (size_t)(grp * rows * K);
	const uint16_t *src = j->w + (size_t)(grp * rows * K);
	double lutv[256];
	for (int a = 0; a < n; a++)
		lutv[a] = fp16_to_f32(lut[a]);
	for (int64_t i = 0; i < rows; i++) /* permuted copies of the rows and of k-means' indices */
		for (int64_t k = 0; k < K; k++) {
			w[i * K + k] = fp16_to_f32(src[i * K + g->perm[k]]);
			best[i * K + k] = out[i * K + g->perm[k]];
		}
	uint16_t best_lut[256], cur_lut[256];
	memcpy(best_lut, lut, (size_t)n * sizeof *lut);
	if (used_entries(lut, n) == n) {
		double best_err = 0;
		for (int64_t i = 0; i < rows; i++)
			best_err += row_error(g->H, K, w + i * K, best + i * K, lutv, e);
		memcpy(cur_lut, lut, (size_t)n * sizeof *lut);
		for (int pass = 0; pass <= j->refits; pass++) {
			if (pass > 0 && refit(g, (int)rows, w, cur, n, cur_lut) != 0)
				break;
			double err = assign_group(g, (int)rows, w, cur_lut, n, cur, x, e);
			if (err < best_err) {
				best_err = err;
				memcpy(best, cur, (size_t)(rows * K));
				memcpy(best_lut, cur_lut, (size_t)n * sizeof *lut);
			}
		}
	}
	memcpy(lut, best_lut, (size_t)n * sizeof *lut);
	double sse = 0, en = 0;
	for (int64_t i = 0; i < rows; i++)
		for (int64_t k = 0; k < K; k++) {
			uint8_t q = best[i * K + k];
			out[i * K + g->perm[k]] = q;
			double v = w[i * K + k], d = v - fp16_to_f32(lut[q]);
			sse += d * d;
			en += v * v;
		}
	j->sse[grp] = sse;
	j->energy[grp] = en;
}

static void gptq_part(void *ctx, int part, int parts)
{
	const gptq_job *j = ctx;
	int64_t G = j->r->groups, K = j->g->K, rows = j->r->group;
	size_t n = (size_t)(rows * K);
	double *w = xmalloc(xmul(n, sizeof *w)), *x = xmalloc(xmul((size_t)K, sizeof *x)),
	       *e = xmalloc(xmul((size_t)K, sizeof *e));
	uint8_t *best = xmalloc(n), *cur = xmalloc(n);
	for (int64_t grp = G * part / parts; grp < G * (part + 1) / parts; grp++)
		one_group(j, grp, w, best, cur, x, e);
	free(w);
	free(x);
	free(e);
	free(best);
	free(cur);
}

static int thread_count(int threads)
{
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)(n < 64 ? n : 64) : 1;
	}
	return threads;
}

int lut_gptq(const char *name, const uint16_t *w, const double *xtx, int refits, int threads, lut_result *r)
{
	int64_t K = r->per_channel;
	for (size_t i = 0; i < (size_t)(K * K); i++)
		if (!isfinite(xtx[i]))
			return errf("tensor '%s': its input's second moments are not finite", name);
	gptq g;
	if (gptq_init(&g, xtx, K) != 0) {
		gptq_free(&g);
		return errf("tensor '%s': its input's second moments do not factor even damped", name);
	}
	/* each group's figures replace k-means' where the result keeps them, so
	 * a tensor palettized a block at a time sums to the same figures */
	if (!r->group_sse)
		r->group_sse = xcalloc((size_t)r->groups, sizeof *r->group_sse);
	if (!r->group_energy)
		r->group_energy = xcalloc((size_t)r->groups, sizeof *r->group_energy);
	gptq_job job = {.g = &g, .w = w, .r = r, .refits = refits, .sse = r->group_sse, .energy = r->group_energy};
	int nt = thread_count(threads);
	nt = r->groups < nt ? (int)r->groups : nt;
	workpool *pool = workpool_new(nt - 1);
	workpool_run(pool, workpool_size(pool) + 1, gptq_part, &job);
	workpool_free(pool);
	lut_error e = {0, 0}; /* in group order */
	lut_error_add(&e, r);
	lut_error_finish(&e, &r->rel_rms, &r->snr_db);
	gptq_free(&g);
	return 0;
}

double lut_output_error(const uint16_t *w, const double *xtx, const lut_result *r)
{
	int64_t K = r->per_channel;
	int n = 1 << r->bits;
	double *e = xmalloc(xmul((size_t)K, sizeof *e)), s = 0;
	for (int64_t c = 0; c < r->channels; c++) {
		const uint16_t *lut = r->lut + (size_t)(c / r->group) * (size_t)n;
		for (int64_t k = 0; k < K; k++)
			e[k] = (double)fp16_to_f32(w[c * K + k]) - fp16_to_f32(lut[r->indices[c * K + k]]);
		for (int64_t i = 0; i < K; i++) {
			double t = 0;
			for (int64_t j = 0; j < K; j++)
				t += xtx[i * K + j] * e[j];
			s += e[i] * t;
		}
	}
	free(e);
	return s;
}
