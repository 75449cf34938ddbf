/* test_lut.c: LUT palettization: spec syntax, eligibility, optimality of the
 * clustering against brute force and a plain O(k n^2) DP, the fp16 table
 * rules, determinism across thread counts, and error reporting.
 *
 * Sizes are kept small (at most a 512 x 512 tensor) so the file runs in well
 * under a second with ASan; speed is measured by tests/tools/bench_lut.c.
 */
#include "base/fp16.h"
#include "convert/lut.h"
#include "test.h"
#include "base/util.h"

#include <stdint.h>

/* ----------------------------------------------------------------------------
 * Helpers */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_next() >> 11) * 0x1p-53; }

static int rng_int(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

static double rng_gauss(void)
{
	double u1 = rng_unit(), u2 = rng_unit();
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint16_t gauss_fp16(double sigma) { return f32_to_fp16((float)(sigma * rng_gauss()), NULL); }

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* n distinct fp16 values (as doubles), ascending, with weights 1..maxw. */
static void random_uniques(int n, double sigma, int maxw, double *x, double *w)
{
	for (int i = 0; i < n;) {
		x[i] = fp16_to_f32(gauss_fp16(sigma));
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= x[j] == x[i];
		if (!dup && x[i] != 0.0) /* keep -0 out: it equals +0 */
			i++;
	}
	qsort(x, (size_t)n, sizeof *x, cmp_double);
	for (int i = 0; i < n; i++)
		w[i] = rng_int(1, maxw);
}

/* Squared error of a partition around each cluster's weighted mean. Both
 * sides of every optimality check use this one function, so equal
 * partitions give identical doubles. */
static double partition_cost(const double *x, const double *w, const int *b, int m)
{
	double total = 0;
	for (int c = 0; c < m; c++) {
		double s0 = 0, s1 = 0, e = 0;
		for (int i = b[c]; i < b[c + 1]; i++) {
			s0 += w[i];
			s1 += w[i] * x[i];
		}
		double mean = s1 / s0;
		for (int i = b[c]; i < b[c + 1]; i++)
			e += w[i] * (x[i] - mean) * (x[i] - mean);
		total += e;
	}
	return total;
}

/* Least partition_cost over all splits into at most k contiguous clusters. */
static double brute_force(const double *x, const double *w, int n, int k)
{
	double best = INFINITY;
	int b[16];
	for (uint32_t mask = 0; mask < (1u << (n - 1)); mask++) {
		if (__builtin_popcount(mask) > k - 1)
			continue;
		int m = 0;
		b[m++] = 0;
		for (int i = 1; i < n; i++)
			if (mask & (1u << (i - 1)))
				b[m++] = i;
		b[m] = n;
		double c = partition_cost(x, w, b, m);
		if (c < best)
			best = c;
	}
	return best;
}

/* Textbook O(k n^2) DP with exactly k clusters; fills b[0..k]. */
static void naive_dp(const double *x, const double *w, int n, int k, int *b)
{
	double *p0 = xcalloc((size_t)n + 1, sizeof *p0), *p1 = xcalloc((size_t)n + 1, sizeof *p1);
	double *p2 = xcalloc((size_t)n + 1, sizeof *p2);
	double *d = xmalloc(sizeof *d * (size_t)(k + 1) * (size_t)(n + 1));
	int *arg = xmalloc(sizeof *arg * (size_t)(k + 1) * (size_t)(n + 1));
	for (int i = 0; i < n; i++) {
		p0[i + 1] = p0[i] + w[i];
		p1[i + 1] = p1[i] + w[i] * x[i];
		p2[i + 1] = p2[i] + w[i] * x[i] * x[i];
	}
#define D(j, i) d[(size_t)(j) * (size_t)(n + 1) + (size_t)(i)]
#define A(j, i) arg[(size_t)(j) * (size_t)(n + 1) + (size_t)(i)]
	for (int i = 1; i <= n; i++)
		D(1, i) = p2[i] - p1[i] * p1[i] / p0[i];
	for (int j = 2; j <= k; j++)
		for (int i = j; i <= n; i++) {
			D(j, i) = INFINITY;
			for (int t = j - 1; t < i; t++) {
				double s0 = p0[i] - p0[t], s1 = p1[i] - p1[t];
				double v = D(j - 1, t) + (p2[i] - p2[t]) - s1 * s1 / s0;
				if (v < D(j, i)) {
					D(j, i) = v;
					A(j, i) = t;
				}
			}
		}
	b[k] = n;
	for (int j = k; j >= 2; j--)
		b[j - 1] = A(j, b[j]);
	b[0] = 0;
#undef D
#undef A
	free(p0);
	free(p1);
	free(p2);
	free(d);
	free(arg);
}

static const int all_bits[] = {1, 2, 3, 4, 6, 8};

/* A [c, k] tensor of N(0, sigma) fp16 values. */
static uint16_t *gauss_tensor(int64_t c, int64_t k, double sigma)
{
	uint16_t *w = xmalloc((size_t)(c * k) * sizeof *w);
	for (int64_t i = 0; i < c * k; i++)
		w[i] = gauss_fp16(sigma);
	return w;
}

/* Squared error and energy recomputed from the dequantized tensor. */
static void measured_error(const uint16_t *w, const lut_result *r, double *sse, double *energy)
{
	size_t n = (size_t)(r->channels * r->per_channel);
	uint16_t *d = xmalloc(n * sizeof *d);
	int rc = lut_dequantize(r->lut, r->indices, r->bits, r->channels, r->per_channel, r->group, d);
	CHECK_EQ_INT(rc, 0);
	*sse = *energy = 0;
	for (size_t i = 0; i < n; i++) {
		double a = fp16_to_f32(w[i]), q = fp16_to_f32(d[i]);
		*sse += (a - q) * (a - q);
		*energy += a * a;
	}
	free(d);
}

/* ----------------------------------------------------------------------------
 * Spec and eligibility */

static void test_spec_parse_ok(void)
{
	static const struct {
		const char *s;
		int bits, group, group_default;
	} ok[] = {
		{"4", 4, 8, 1}, {"6,4", 6, 4, 0}, {"6,0", 6, 0, 0}, {"6,tensor", 6, 0, 0}, {"6,t", 6, 0, 0},
		{"6,T", 6, 0, 0}, {"none", 0, 0, 0}, {"None", 0, 0, 0}, {"", 0, 0, 0}, {"no", 0, 0, 0},
		{"false", 0, 0, 0}, {"FALSE", 0, 0, 0}, {" 8 , 16 ", 8, 16, 0}, {"1", 1, 8, 1}, {"2,32", 2, 32, 0},
		{"3,1", 3, 1, 0}, {"6,3", 6, 3, 0}, {"4,8", 4, 8, 0},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		lut_spec sp = {-1, -1, -1};
		int rc = lut_spec_parse(ok[i].s, &sp);
		CHECKF(rc == 0 && sp.bits == ok[i].bits && sp.group == ok[i].group && sp.group_default == ok[i].group_default,
		       "'%s' -> rc %d bits %d group %d default %d", ok[i].s, rc, sp.bits, sp.group, sp.group_default);
	}
	lut_spec sp = {-1, -1, -1};
	CHECK(lut_spec_parse(NULL, &sp) == 0 && sp.bits == 0);
}

static void test_spec_parse_errors(void)
{
	static const char *bad[] = {"7", "5", "0", "16", "abc", "4,-1", "4,", ",4", "4,x", "4,8,1", "4.0", "-4", "t", "4,tens"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		lut_spec sp;
		int rc = lut_spec_parse(bad[i], &sp);
		CHECKF(rc == -1, "'%s' was accepted", bad[i]);
		char quoted[64];
		snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
		CHECKF(strstr(errmsg(), quoted) && strstr(errmsg(), "1,2,3,4,6,8") && !strchr(errmsg(), '\n'),
		       "message for '%s': %s", bad[i], errmsg());
	}
	printf("# example: %s\n", (lut_spec_parse("7", &(lut_spec){0}), errmsg()));
}

/* The group a spec without one takes, and the divisors a refusal lists. */
static void test_group_fit(void)
{
	CHECK(lut_group_fit(172, 8) == 4);
	CHECK(lut_group_fit(64, 8) == 8);
	CHECK(lut_group_fit(1, 8) == 1);
	CHECK(lut_group_fit(37, 8) == 1);
	CHECK(lut_group_fit(6, 8) == 6);
	CHECK(lut_group_fit(64, 7) == 4);
	char buf[128];
	CHECK_STR(lut_divisors_text(172, 8, buf, sizeof buf), "1, 2, 4");
	CHECK_STR(lut_divisors_text(64, 3, buf, sizeof buf), "1, 2");
	CHECK_STR(lut_divisors_text(172, 1000, buf, sizeof buf), "1, 2, 4, 43, 86, 172");
	char tiny[8];
	CHECK(strlen(lut_divisors_text(720720, 720720, tiny, sizeof tiny)) < sizeof tiny);
}

static void test_spec_format_roundtrip(void)
{
	lut_spec specs[] = {{0, 0, 0}, {4, 8, 0}, {6, 0, 0}, {8, 32, 0}, {1, 1, 0}};
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		char buf[LUT_SPEC_BUFSIZE];
		lut_spec back = {-1, -1, -1};
		const char *s = lut_spec_format(&specs[i], buf, sizeof buf);
		CHECKF(lut_spec_parse(s, &back) == 0 && back.bits == specs[i].bits && back.group == specs[i].group,
		       "'%s' does not read back", s);
	}
	char buf[LUT_SPEC_BUFSIZE];
	CHECK_STR(lut_spec_format(&(lut_spec){.bits = 6}, buf, sizeof buf), "6,tensor");
	CHECK_STR(lut_spec_format(&(lut_spec){.bits = 4, .group = 8}, buf, sizeof buf), "4,8");
	CHECK_STR(lut_spec_format(&(lut_spec){0}, buf, sizeof buf), "none");
}

static void test_eligible(void)
{
	CHECK(!lut_eligible(1, (int64_t[]){100000}));
	CHECK(!lut_eligible(2, (int64_t[]){32, 64}));  /* 2048: not more than the threshold */
	CHECK(lut_eligible(2, (int64_t[]){33, 64}));   /* 2112 */
	CHECK(lut_eligible(4, (int64_t[]){2048, 2048, 1, 1}));
	CHECK(!lut_eligible(3, (int64_t[]){1, 1, 2048}));
	CHECK(lut_eligible(3, (int64_t[]){1, 1, 2049}));
	CHECK(!lut_eligible(2, (int64_t[]){0, 100000}));
	CHECK(!lut_eligible(0, NULL));
	CHECK(lut_eligible(2, (int64_t[]){INT64_MAX / 2, INT64_MAX / 2})); /* no overflow */
}

/* ----------------------------------------------------------------------------
 * Optimality of the clustering */

static void test_kmeans_brute_force(void)
{
	double x[16], w[16];
	int b[260];
	int checked = 0;
	for (int trial = 0; trial < 150; trial++) {
		int n = rng_int(6, 12);
		random_uniques(n, trial % 3 ? 0.05 : 2.0, trial % 2 ? 20 : 3, x, w);
		if (trial % 5 == 4) /* non-integer weights take divisions, not the table of
				     * reciprocals; halves keep w * x / w == x exact */
			for (int i = 0; i < n; i++)
				w[i] += 0.5;
		for (size_t bi = 0; bi < sizeof all_bits / sizeof all_bits[0]; bi++) {
			int k = 1 << all_bits[bi];
			int m = lut_kmeans1d(x, w, n, k, b);
			CHECK_EQ_INT(m, k < n ? k : n);
			CHECK(b[0] == 0 && b[m] == n);
			for (int c = 0; c < m; c++)
				CHECK(b[c] < b[c + 1]);
			double dp = partition_cost(x, w, b, m), best = brute_force(x, w, n, k);
			CHECKF(dp == best, "n=%d k=%d: dp %.17g, brute force %.17g", n, k, dp, best);
			if (k >= n)
				CHECK(dp == 0);
			checked++;
		}
	}
	CHECK_EQ_INT(checked, 150 * 6);
}

/* Exact ties resolve to the longest last cluster. */
static void test_kmeans_ties(void)
{
	double x[] = {-1, 0, 1}, w[] = {1, 1, 1};
	int b[4];
	CHECK_EQ_INT(lut_kmeans1d(x, w, 3, 2, b), 2);
	CHECK(b[0] == 0 && b[1] == 1 && b[2] == 3);
	CHECK(partition_cost(x, w, b, 2) == brute_force(x, w, 3, 2));
	double x5[] = {0, 1, 2, 3, 4}, w5[] = {1, 1, 1, 1, 1};
	int b5[4];
	CHECK_EQ_INT(lut_kmeans1d(x5, w5, 5, 2, b5), 2);
	CHECK(partition_cost(x5, w5, b5, 2) == brute_force(x5, w5, 5, 2));
	CHECK(b5[1] == 2); /* {0,1} {2,3,4} ties {0,1,2} {3,4} */
}

/* n distinct increasing values, random fp16 steps apart, weights 1..maxw;
 * with outliers, one step in 50 is 300 times as long (outliers get clusters
 * of their own, which is what pruning must handle). */
static void grid_values(int n, int maxw, int outliers, double *x, double *w)
{
	x[0] = -1.0;
	for (int i = 1; i < n; i++) {
		float step = fp16_to_f32((uint16_t)(0x1000 + rng_int(0, 0x0fff)));
		x[i] = x[i - 1] + (outliers && rng_int(0, 49) == 0 ? step * 300 : step);
	}
	for (int i = 0; i < n; i++)
		w[i] = rng_int(1, maxw);
}

static void test_kmeans_vs_naive_dp(void)
{
	static const int cases[][2] = {{300, 2}, {300, 3}, {300, 5}, {300, 16}, {300, 64}, {300, 256}, {1000, 16}, {700, 64}};
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
		int n = cases[ci][0], k = cases[ci][1];
		double *x = xmalloc((size_t)n * sizeof *x), *w = xmalloc((size_t)n * sizeof *w);
		int *b = xmalloc((size_t)(k + 1) * sizeof *b), *nb = xmalloc((size_t)(k + 1) * sizeof *nb);
		grid_values(n, 50, 0, x, w);
		CHECK_EQ_INT(lut_kmeans1d(x, w, n, k, b), k);
		naive_dp(x, w, n, k, nb);
		double fast = partition_cost(x, w, b, k), slow = partition_cost(x, w, nb, k);
		CHECKF(fast <= slow * (1 + 1e-12), "n=%d k=%d: fast %.17g naive %.17g", n, k, fast, slow);
		free(x);
		free(w);
		free(b);
		free(nb);
	}
}

/* Integer weights take the table of reciprocals, others divide; scaling the
 * weights by a power of two scales every cost exactly, so all three runs
 * must agree to the bit: table, non-integer weights, and integer weights
 * too heavy for the table. Also checks against the plain DP, outliers
 * included (they are what the pruning bound has to cover). */
static void test_kmeans_reciprocal_paths(void)
{
	static const int ks[] = {3, 4, 16, 64, 256};
	int n = 600;
	double *x = xmalloc((size_t)n * sizeof *x), *w = xmalloc((size_t)n * sizeof *w);
	double *ws = xmalloc((size_t)n * sizeof *ws), *wl = xmalloc((size_t)n * sizeof *wl);
	int b[257], bs[257], bl[257], nb[257];
	for (int round = 0; round < 2; round++) {
		if (round)
			grid_values(n, 40, 1, x, w);
		else
			random_uniques(n, 0.5, 40, x, w);
		for (int i = 0; i < n; i++) {
			ws[i] = ldexp(w[i], -12);
			wl[i] = ldexp(w[i], 20);
		}
		for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
			int k = ks[ki];
			CHECK_EQ_INT(lut_kmeans1d(x, w, n, k, b), k);
			CHECK_EQ_INT(lut_kmeans1d(x, ws, n, k, bs), k);
			CHECK_EQ_INT(lut_kmeans1d(x, wl, n, k, bl), k);
			CHECKF(memcmp(b, bs, (size_t)(k + 1) * sizeof *b) == 0 && memcmp(b, bl, (size_t)(k + 1) * sizeof *b) == 0,
			       "round %d k=%d: table and division disagree", round, k);
			if (k <= 16) {
				naive_dp(x, w, n, k, nb);
				double fast = partition_cost(x, w, b, k), slow = partition_cost(x, w, nb, k);
				CHECKF(fast <= slow * (1 + 1e-12), "round %d k=%d: fast %.17g naive %.17g", round, k, fast, slow);
			}
		}
	}
	free(x);
	free(w);
	free(ws);
	free(wl);
}

static void test_kmeans_bad_args(void)
{
	double x[] = {1, 2, 2}, w[] = {1, 1, 1}, wz[] = {1, 0, 1};
	int b[4];
	CHECK_EQ_INT(lut_kmeans1d(x, w, 3, 2, b), -1);  /* not strictly ascending */
	CHECK_EQ_INT(lut_kmeans1d(x, wz, 2, 2, b), -1); /* zero weight */
	CHECK_EQ_INT(lut_kmeans1d(x, w, 0, 2, b), -1);
	CHECK_EQ_INT(lut_kmeans1d(x, w, 2, 0, b), -1);
}

/* ----------------------------------------------------------------------------
 * Tables, indices and rounding */

/* Build a [1, total] tensor holding value x[i] w[i] times, shuffled. */
static uint16_t *multiset_tensor(const double *x, const double *w, int n, int64_t *total)
{
	int64_t t = 0;
	for (int i = 0; i < n; i++)
		t += (int64_t)w[i];
	uint16_t *v = xmalloc((size_t)t * sizeof *v);
	int64_t p = 0;
	for (int i = 0; i < n; i++)
		for (int r = 0; r < (int)w[i]; r++)
			v[p++] = f32_to_fp16((float)x[i], NULL);
	for (int64_t i = t - 1; i > 0; i--) {
		int64_t j = (int64_t)(rng_next() % (uint64_t)(i + 1));
		uint16_t tmp = v[i];
		v[i] = v[j];
		v[j] = tmp;
	}
	*total = t;
	return v;
}

/* Entries are the rounded means of the DP clusters, and nearest assignment
 * is never worse than the clusters with those rounded entries. */
static void test_table_rounding_and_assignment(void)
{
	static const int sizes[] = {20, 60, 200, 500};
	static const int bits[] = {1, 2, 3, 4, 6};
	for (size_t si = 0; si < 4; si++)
		for (size_t bi = 0; bi < 5; bi++) {
			int n = sizes[si], k = 1 << bits[bi];
			double *x = xmalloc((size_t)n * sizeof *x), *w = xmalloc((size_t)n * sizeof *w);
			int *b = xmalloc((size_t)(n + 1) * sizeof *b);
			random_uniques(n, 0.5, 9, x, w);
			int64_t total;
			uint16_t *t = multiset_tensor(x, w, n, &total);
			lut_result r;
			CHECK_EQ_INT(lut_quantize("t", t, 1, total, bits[bi], 0, 1, &r), 0);
			int m = lut_kmeans1d(x, w, n, k, b);
			double part_sse = 0;
			for (int c = 0; c < m; c++) {
				double s0 = 0, s1 = 0;
				for (int i = b[c]; i < b[c + 1]; i++)
					s0 += w[i], s1 += w[i] * x[i];
				double mean = s1 / s0, e = fp16_to_f32(r.lut[c]);
				/* nearest fp16: the neighbours on either side are not closer */
				float up = fp16_to_f32((uint16_t)(r.lut[c] + (e >= 0 ? 1 : -1)));
				float dn = fp16_to_f32((uint16_t)(r.lut[c] + (e > 0 ? -1 : 1)));
				if (e == 0)
					dn = -fp16_to_f32(1);
				CHECKF(fabs(e - mean) <= fabs(up - mean) && fabs(e - mean) <= fabs(dn - mean),
				       "entry %d = %g for mean %.10g", c, e, mean);
				if (c > 0)
					CHECK(fp16_to_f32(r.lut[c]) > fp16_to_f32(r.lut[c - 1]));
				for (int i = b[c]; i < b[c + 1]; i++)
					part_sse += w[i] * (x[i] - e) * (x[i] - e);
			}
			for (int c = m; c < k; c++)
				CHECK_EQ_INT(r.lut[c], 0);
			double sse, energy;
			measured_error(t, &r, &sse, &energy);
			CHECKF(sse <= part_sse, "n=%d bits=%d: nearest %.17g > clusters %.17g", n, bits[bi], sse, part_sse);
			CHECKF(fabs(sqrt(sse / energy) - r.rel_rms) <= 1e-9 * (r.rel_rms + 1e-300), "rel_rms %.17g vs %.17g",
			       r.rel_rms, sqrt(sse / energy));
			lut_result_release(&r);
			free(t);
			free(x);
			free(w);
			free(b);
		}
}

/* Means are rounded once, from double: a mean 2^-25 above the midpoint
 * between 1 and 1+2^-10 must round up (via float it would land on the
 * midpoint and round to even, down). A mean that rounds to -0 is stored +0. */
static void test_table_rounding_edges(void)
{
	int64_t n = 32768 + 1;
	uint16_t *w = xmalloc((size_t)n * sizeof *w);
	for (int64_t i = 0; i < n; i++)
		w[i] = i < 16383 ? 0x3c00 : i < 32768 ? 0x3c01 : 0x5640; /* 1, 1+2^-10, 100 */
	lut_result r;
	CHECK_EQ_INT(lut_quantize("round", w, 1, n, 1, 0, 1, &r), 0);
	CHECK_EQ_INT(r.lut[0], 0x3c01);
	CHECK_EQ_INT(r.lut[1], 0x5640);
	lut_result_release(&r);
	/* {-2^-24 x1, 0 x2} has mean -2^-24/3, which rounds to -0 */
	for (int64_t i = 0; i < 100; i++)
		w[i] = i == 0 ? 0x8001 : i < 3 ? 0x0000 : 0x3c00;
	CHECK_EQ_INT(lut_quantize("negzero", w, 1, 100, 1, 0, 1, &r), 0);
	CHECK_EQ_INT(r.lut[0], 0x0000);
	CHECK_EQ_INT(r.lut[1], 0x3c00);
	lut_result_release(&r);
	free(w);
}

/* Indices are the nearest used entry, the lower one on a tie. Used entries
 * ascend strictly; the zeros after them are unused. */
static void check_nearest(const uint16_t *w, const lut_result *r)
{
	size_t gn = (size_t)(r->group * r->per_channel), nl = (size_t)1 << r->bits;
	for (int64_t g = 0; g < r->groups; g++) {
		const uint16_t *L = r->lut + (size_t)g * nl;
		size_t k = 1;
		while (k < nl && fp16_to_f32(L[k]) > fp16_to_f32(L[k - 1]))
			k++;
		for (size_t e = (size_t)g * gn; e < (size_t)(g + 1) * gn; e++) {
			size_t idx = r->indices[e];
			double x = fp16_to_f32(w[e]), d = fabs(x - fp16_to_f32(L[idx]));
			int bad = idx >= k;
			for (size_t c = 0; c < k && !bad; c++) {
				double dc = fabs(x - fp16_to_f32(L[c]));
				bad = c < idx ? dc <= d : dc < d;
			}
			if (bad) {
				CHECKF(0, "weight %zu = %g: index %zu is not the nearest of %zu entries", e, x, idx, k);
				return;
			}
		}
	}
}

static void test_determinism_threads(void)
{
	uint16_t *w = gauss_tensor(96, 300, 0.02);
	static const int bits[] = {2, 4, 6};
	for (int bi = 0; bi < 3; bi++)
		for (int64_t g = 0; g <= 8; g += 8) {
			lut_result r1, r2, r7;
			CHECK_EQ_INT(lut_quantize("w", w, 96, 300, bits[bi], g, 1, &r1), 0);
			CHECK_EQ_INT(lut_quantize("w", w, 96, 300, bits[bi], g, 2, &r2), 0);
			CHECK_EQ_INT(lut_quantize("w", w, 96, 300, bits[bi], g, 7, &r7), 0);
			size_t nl = (size_t)r1.groups << bits[bi] << 1;
			CHECK(memcmp(r1.lut, r2.lut, nl) == 0 && memcmp(r1.lut, r7.lut, nl) == 0);
			CHECK(memcmp(r1.indices, r2.indices, 96 * 300) == 0 && memcmp(r1.indices, r7.indices, 96 * 300) == 0);
			CHECK(r1.rel_rms == r2.rel_rms && r1.rel_rms == r7.rel_rms);
			check_nearest(w, &r1);
			lut_result_release(&r1);
			lut_result_release(&r2);
			lut_result_release(&r7);
		}
	free(w);
}

/* Groups are contiguous channel blocks: give each block its own offset and
 * check every table spans only its block's values. */
static void test_dequantize_groups(void)
{
	int64_t C = 32, K = 100, G = 4;
	uint16_t *w = xmalloc((size_t)(C * K) * sizeof *w), *d = xmalloc((size_t)(C * K) * sizeof *d);
	for (int64_t c = 0; c < C; c++)
		for (int64_t k = 0; k < K; k++)
			w[c * K + k] = f32_to_fp16((float)(100 * (c / G) + rng_gauss()), NULL);
	lut_result r;
	CHECK_EQ_INT(lut_quantize("blocks", w, C, K, 3, G, 3, &r), 0);
	CHECK_EQ_INT(r.groups, 8);
	CHECK_EQ_INT(r.group, 4);
	CHECK_EQ_INT(lut_dequantize(r.lut, r.indices, 3, C, K, G, d), 0);
	for (int64_t c = 0; c < C; c++)
		for (int64_t k = 0; k < K; k++) {
			uint16_t want = r.lut[(c / G) * 8 + r.indices[c * K + k]];
			CHECK(d[c * K + k] == want);
			if (d[c * K + k] != want)
				goto out;
		}
	for (int64_t g = 0; g < 8; g++)
		for (int e = 0; e < 8; e++)
			CHECKF(fabs(fp16_to_f32(r.lut[g * 8 + e]) - 100.0 * (double)g) < 10, "group %lld entry %d = %g",
			       (long long)g, e, fp16_to_f32(r.lut[g * 8 + e]));
	r.indices[5] = 8; /* out of range for 3 bits */
	CHECK_EQ_INT(lut_dequantize(r.lut, r.indices, 3, C, K, G, d), -1);
out:
	lut_result_release(&r);
	free(w);
	free(d);
}

static void test_per_tensor(void)
{
	uint16_t *w = gauss_tensor(24, 200, 1.0);
	lut_result r;
	CHECK_EQ_INT(lut_quantize("pt", w, 24, 200, 4, 0, 2, &r), 0);
	CHECK_EQ_INT(r.groups, 1);
	CHECK_EQ_INT(r.group, 24);
	double sse, energy;
	measured_error(w, &r, &sse, &energy);
	CHECK(fabs(sqrt(sse / energy) - r.rel_rms) < 1e-9);
	CHECK(fabs(10 * log10(energy / sse) - r.snr_db) < 1e-6);
	check_nearest(w, &r);
	lut_result_release(&r);
	free(w);
}

static void test_errors(void)
{
	uint16_t *w = gauss_tensor(12, 64, 1.0);
	lut_result r;
	CHECK_EQ_INT(lut_quantize("model.layers.3.mlp.up_proj.weight", w, 12, 64, 4, 8, 1, &r), -1);
	CHECKF(strstr(errmsg(), "model.layers.3.mlp.up_proj.weight") && strstr(errmsg(), "divisible"), "%s", errmsg());
	CHECK(r.lut == NULL && r.indices == NULL);
	CHECK_EQ_INT(lut_quantize("x", w, 12, 64, 5, 4, 1, &r), -1);
	CHECK(strstr(errmsg(), "5-bit") != NULL);
	CHECK_EQ_INT(lut_quantize("x", w, 12, 64, 4, -1, 1, &r), -1);
	static const uint16_t bad[] = {0x7e00, 0x7c00, 0xfc00, 0xfe01};
	for (int i = 0; i < 4; i++) {
		uint16_t keep = w[3 * 64 + 5];
		w[3 * 64 + 5] = bad[i];
		CHECK_EQ_INT(lut_quantize("nan.weight", w, 12, 64, 4, 4, 2, &r), -1);
		CHECKF(strstr(errmsg(), "nan.weight") && strstr(errmsg(), "[3, 5]") && strstr(errmsg(), "NaN"), "%s",
		       errmsg());
		CHECK(r.lut == NULL);
		w[3 * 64 + 5] = keep;
	}
	/* the scratch is clean after a failure: the same call now succeeds */
	CHECK_EQ_INT(lut_quantize("x", w, 12, 64, 4, 4, 1, &r), 0);
	lut_result_release(&r);
	lut_result_release(NULL);
	free(w);
}

static void test_constant_tensor(void)
{
	uint16_t w[4096];
	for (int i = 0; i < 4096; i++)
		w[i] = 0x3800; /* 0.5 */
	lut_result r;
	CHECK_EQ_INT(lut_quantize("c", w, 64, 64, 4, 8, 2, &r), 0);
	for (int64_t g = 0; g < r.groups; g++) {
		CHECK_EQ_INT(r.lut[g * 16], 0x3800);
		for (int e = 1; e < 16; e++)
			CHECK_EQ_INT(r.lut[g * 16 + e], 0);
	}
	for (int i = 0; i < 4096; i++)
		CHECK(r.indices[i] == 0);
	CHECK(r.rel_rms == 0 && isinf(r.snr_db));
	lut_result_release(&r);
	/* +0 and -0 are one value and map to the same +0 entry */
	for (int i = 0; i < 4096; i++)
		w[i] = i % 3 == 0 ? 0x8000 : i % 3 == 1 ? 0x0000 : 0x3c00;
	CHECK_EQ_INT(lut_quantize("z", w, 64, 64, 1, 0, 1, &r), 0);
	CHECK(r.lut[0] == 0 && r.lut[1] == 0x3c00);
	CHECK(r.indices[0] == 0 && r.indices[1] == 0 && r.indices[2] == 1);
	CHECK(r.rel_rms == 0);
	lut_result_release(&r);
	/* all zeros: energy 0 */
	memset(w, 0, sizeof w);
	CHECK_EQ_INT(lut_quantize("zeros", w, 64, 64, 2, 8, 1, &r), 0);
	CHECK(r.rel_rms == 0 && isinf(r.snr_db) && r.lut[0] == 0);
	lut_result_release(&r);
}

/* Fewer distinct values than entries: the table is those values, ascending. */
static void test_lossless(void)
{
	static const float vals[] = {-3.5f, -1.0f, -0.25f, 0.0f, 0.125f, 0.5f, 1.0f, 2.0f, 7.0f, 1000.0f};
	uint16_t *w = xmalloc(40 * 256 * sizeof *w), *d = xmalloc(40 * 256 * sizeof *d);
	for (int i = 0; i < 40 * 256; i++)
		w[i] = f32_to_fp16(vals[rng_int(0, 9)], NULL);
	for (size_t bi = 3; bi < 6; bi++) { /* 4, 6, 8 bits */
		int bits = all_bits[bi];
		lut_result r;
		CHECK_EQ_INT(lut_quantize("l", w, 40, 256, bits, 0, 1, &r), 0);
		for (int e = 0; e < 10; e++)
			CHECK(fp16_to_f32(r.lut[e]) == vals[e]);
		for (int e = 10; e < 1 << bits; e++)
			CHECK(r.lut[e] == 0);
		CHECK_EQ_INT(lut_dequantize(r.lut, r.indices, bits, 40, 256, 0, d), 0);
		CHECK(memcmp(w, d, 40 * 256 * sizeof *w) == 0);
		CHECK(r.rel_rms == 0 && isinf(r.snr_db));
		lut_result_release(&r);
	}
	free(w);
	free(d);
}

static void test_bits8_many_uniques(void)
{
	uint16_t *w = gauss_tensor(128, 256, 0.02);
	lut_result r;
	CHECK_EQ_INT(lut_quantize("wide", w, 128, 256, 8, 0, 2, &r), 0);
	for (int e = 1; e < 256; e++)
		CHECK(fp16_to_f32(r.lut[e]) > fp16_to_f32(r.lut[e - 1]));
	check_nearest(w, &r);
	printf("# 8-bit per tensor, 128x256 N(0,0.02): rel RMS %.5f, SNR %.2f dB\n", r.rel_rms, r.snr_db);
	CHECK(r.rel_rms > 0 && r.rel_rms < 0.01);
	lut_result_release(&r);
	free(w);
}

static void test_quality_gaussian(void)
{
	uint16_t *w = gauss_tensor(512, 512, 1.0);
	lut_result r;
	CHECK_EQ_INT(lut_quantize("gauss", w, 512, 512, 4, 8, 0, &r), 0);
	/* Lloyd-Max 16 levels on N(0,1): MSE 0.009497, rel RMS 0.0975 */
	printf("# 4-bit group 8, 512x512 N(0,1): rel RMS %.5f, SNR %.2f dB\n", r.rel_rms, r.snr_db);
	CHECKF(r.rel_rms > 0.08 && r.rel_rms < 0.105, "rel RMS %g", r.rel_rms);
	double sse, energy;
	measured_error(w, &r, &sse, &energy);
	CHECK(fabs(sqrt(sse / energy) - r.rel_rms) < 1e-9);
	lut_result_release(&r);
	free(w);
}

/* ----------------------------------------------------------------------------
 * Golden output: the exact bytes for fixed inputs must never change. Any
 * faster clustering has to keep the tie rule, so it must reproduce these
 * hashes, recorded from the straightforward divide-and-conquer quantizer. */

/* FNV-1a, 64 bits. */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* Hash of tables (little-endian), indices and the rel RMS bits. */
static uint64_t result_hash(const lut_result *r)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t nl = (size_t)r->groups << r->bits;
	for (size_t i = 0; i < nl; i++) {
		unsigned char le[2] = {(unsigned char)(r->lut[i] & 0xff), (unsigned char)(r->lut[i] >> 8)};
		h = fnv_bytes(h, le, 2);
	}
	h = fnv_bytes(h, r->indices, (size_t)(r->channels * r->per_channel));
	uint64_t bits;
	memcpy(&bits, &r->rel_rms, sizeof bits);
	for (int i = 0; i < 8; i++) {
		unsigned char b = (unsigned char)(bits >> (8 * i));
		h = fnv_bytes(h, &b, 1);
	}
	return h;
}

/* Like bench_lut: bf16 N(0, 0.02) with 0.1% heavy-tailed outliers, then
 * fp16; its own generator, so the order of the tests does not matter. */
static uint16_t *golden_tensor(size_t n, uint64_t seed)
{
	uint64_t saved = rng_state;
	rng_state = seed;
	uint16_t *w = xmalloc(n * sizeof *w);
	for (size_t i = 0; i < n; i++) {
		double v = 0.02 * rng_gauss();
		if (rng_unit() < 0.001)
			v = 0.02 * rng_gauss() / (rng_unit() + 0.033);
		w[i] = f32_to_fp16(bf16_to_f32(f32_to_bf16((float)v)), NULL);
	}
	rng_state = saved;
	return w;
}

static void test_golden_output(void)
{
	static const struct {
		int64_t c, k, group;
		uint64_t seed;
		uint64_t hash[6]; /* bits 1, 2, 3, 4, 6, 8 */
	} cases[] = {
		{64, 2048, 8, 1,
		 {0x6c9a24e677176fe8ull, 0xc2a7cb261763d442ull, 0xe7b0c64a494de981ull,
		  0x5bfbc67dc109b410ull, 0x3dc58c155bd65bd5ull, 0x2e9163985250e36eull}},
		{48, 512, 16, 2,
		 {0x0b5b3de29495ed2eull, 0xfdd60c562448327bull, 0x32535cf65f771aceull,
		  0xf4936e600f11745bull, 0x9122e2b6da8fa147ull, 0x434fa9d8761c6a11ull}},
		{256, 96, 0, 3,
		 {0x1a05c5084372314bull, 0xf40568dcd0085380ull, 0x9ef5e6f5311a699cull,
		  0xf992eef6f0c6f79eull, 0x5891debfd2cf6a88ull, 0x4f05be681c2c7a45ull}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		size_t n = (size_t)(cases[c].c * cases[c].k);
		uint16_t *w = golden_tensor(n, cases[c].seed);
		for (int bi = 0; bi < 6; bi++) {
			lut_result r;
			CHECK_EQ_INT(lut_quantize("golden", w, cases[c].c, cases[c].k, all_bits[bi], cases[c].group, 2, &r), 0);
			uint64_t h = result_hash(&r);
			CHECKF(h == cases[c].hash[bi], "case %zu, %d bits: hash 0x%016llx, expected 0x%016llx", c,
			       all_bits[bi], (unsigned long long)h, (unsigned long long)cases[c].hash[bi]);
			lut_result_release(&r);
		}
		free(w);
	}
}

/* Activation-aware palettization: column weights. */

static double weighted_sse(const uint16_t *w, const lut_result *r, const double *colw)
{
	size_t n = (size_t)(r->channels * r->per_channel);
	uint16_t *d = xmalloc(n * sizeof *d);
	double e = 0;
	if (lut_dequantize(r->lut, r->indices, r->bits, r->channels, r->per_channel, r->group, d) == 0)
		for (size_t i = 0; i < n; i++) {
			double x = fp16_to_f32(w[i]) - fp16_to_f32(d[i]);
			e += colw[i % (size_t)r->per_channel] * x * x;
		}
	free(d);
	return e;
}

static void test_weighted_threads(void)
{
	uint16_t *w = gauss_tensor(96, 300, 0.02);
	double *colw = xmalloc(300 * sizeof *colw);
	for (int k = 0; k < 300; k++)
		colw[k] = 0.01 + rng_unit() * (k % 7 == 0 ? 50 : 1);
	static const int bits[] = {2, 4, 6};
	for (int bi = 0; bi < 3; bi++) {
		lut_result r1, r2, r7;
		CHECK_EQ_INT(lut_quantize_weighted("w", w, 96, 300, bits[bi], 8, colw, 1, &r1), 0);
		CHECK_EQ_INT(lut_quantize_weighted("w", w, 96, 300, bits[bi], 8, colw, 2, &r2), 0);
		CHECK_EQ_INT(lut_quantize_weighted("w", w, 96, 300, bits[bi], 8, colw, 7, &r7), 0);
		size_t nl = (size_t)r1.groups << bits[bi] << 1;
		CHECK(memcmp(r1.lut, r2.lut, nl) == 0 && memcmp(r1.lut, r7.lut, nl) == 0);
		CHECK(memcmp(r1.indices, r2.indices, 96 * 300) == 0 && memcmp(r1.indices, r7.indices, 96 * 300) == 0);
		check_nearest(w, &r1);
		lut_result_release(&r1);
		lut_result_release(&r2);
		lut_result_release(&r7);
	}
	free(colw);
	free(w);
}

/* Equal weights give exactly the unweighted result (the DP divides instead
 * of using the reciprocal table: the same doubles). */
static void test_weighted_uniform(void)
{
	uint16_t *w = gauss_tensor(64, 200, 0.05);
	double *colw = xmalloc(200 * sizeof *colw);
	for (int k = 0; k < 200; k++)
		colw[k] = 1;
	for (int bits = 2; bits <= 6; bits += 2) {
		lut_result a, b;
		CHECK_EQ_INT(lut_quantize("u", w, 64, 200, bits, 4, 1, &a), 0);
		CHECK_EQ_INT(lut_quantize_weighted("u", w, 64, 200, bits, 4, colw, 1, &b), 0);
		CHECK(memcmp(a.lut, b.lut, (size_t)a.groups << bits << 1) == 0);
		CHECK(memcmp(a.indices, b.indices, 64 * 200) == 0);
		CHECK(a.rel_rms == b.rel_rms);
		lut_result_release(&a);
		lut_result_release(&b);
	}
	free(colw);
	free(w);
}

/* Skewed weights: the weighted error falls below what unweighted k-means
 * gets, and the reported rel_rms stays the plain (unweighted) figure. */
static void test_weighted_helps(void)
{
	uint16_t *w = gauss_tensor(32, 128, 0.05);
	double *colw = xmalloc(128 * sizeof *colw);
	for (int k = 0; k < 128; k++)
		colw[k] = k < 8 ? 100 : 0.1;
	lut_result a, b;
	CHECK_EQ_INT(lut_quantize("s", w, 32, 128, 3, 8, 1, &a), 0);
	CHECK_EQ_INT(lut_quantize_weighted("s", w, 32, 128, 3, 8, colw, 1, &b), 0);
	double ea = weighted_sse(w, &a, colw), eb = weighted_sse(w, &b, colw);
	CHECKF(eb < 0.8 * ea, "weighted error %g, unweighted k-means %g", eb, ea);
	CHECKF(b.rel_rms >= a.rel_rms, "rel_rms %g below the unweighted optimum %g", b.rel_rms, a.rel_rms);
	lut_result_release(&a);
	lut_result_release(&b);
	colw[5] = 0;
	CHECK_EQ_INT(lut_quantize_weighted("model.x.weight", w, 32, 128, 3, 8, colw, 1, &b), -1);
	CHECK(strstr(errmsg(), "model.x.weight") && strstr(errmsg(), "column weight 5"));
	free(colw);
	free(w);
}

int main(void)
{
	RUN(test_spec_parse_ok);
	RUN(test_spec_parse_errors);
	RUN(test_spec_format_roundtrip);
	RUN(test_group_fit);
	RUN(test_eligible);
	RUN(test_kmeans_brute_force);
	RUN(test_kmeans_ties);
	RUN(test_kmeans_vs_naive_dp);
	RUN(test_kmeans_reciprocal_paths);
	RUN(test_kmeans_bad_args);
	RUN(test_table_rounding_and_assignment);
	RUN(test_table_rounding_edges);
	RUN(test_determinism_threads);
	RUN(test_dequantize_groups);
	RUN(test_per_tensor);
	RUN(test_errors);
	RUN(test_constant_tensor);
	RUN(test_lossless);
	RUN(test_bits8_many_uniques);
	RUN(test_quality_gaussian);
	RUN(test_golden_output);
	RUN(test_weighted_threads);
	RUN(test_weighted_uniform);
	RUN(test_weighted_helps);
	return test_finish();
}
