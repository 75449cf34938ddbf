/* lut.c: LUT palettization: spec parsing, eligibility and the optimal
 * 1-D k-means quantizer (see lut.h for the exact rules).
 *
 * Workload: every linear/conv weight of a model goes through here, which is
 * where conversion time goes. A typical call is a Llama FFN weight
 * 8192 x 2048 fp16 at 4 or 6 bits, group 8: 1024 groups of 16K weights with
 * a few thousand distinct fp16 values each. The embedding table (up to
 * ~128K x 4096) may come per tensor: one group, up to 63487 distinct values.
 *
 * Per group:
 *  1. histogram of fp16 bit patterns (O(n), 256 KB of counts plus an 8 KB
 *     presence bitmap), read back in value order = sorted distinct values;
 *  2. dynamic programming over contiguous clusters, one layer per cluster,
 *     each a linear sweep between Knuth's bounds on the split points (the
 *     previous layer's split and the next row's), divide and conquer where
 *     the previous layer gives no bound. Rows that cannot be on a path
 *     cheaper than a known clustering are dropped: the cost so far plus
 *     a Lagrangian lower bound on what the remaining values will cost, which
 *     removes ~90% of the rows; reciprocals come from a table;
 *  3. weighted means rounded to fp16, nearest-entry indices, error sums.
 * Threads take contiguous ranges of groups and own their scratch, so the
 * memory is the result plus a few MB per thread, and the output is the
 * same for any thread count.
 */
#include "convert/lut.h"

#include "base/fp16.h"
#include "base/progress.h"
#include "base/util.h"

#include <math.h>    /* floor, frexp, ldexp, nearbyint, sqrt, log10 */
#include <pthread.h> /* pthread_create, pthread_join */
#include <stdio.h>   /* snprintf */
#include <stdlib.h>  /* free */
#include <string.h>  /* memset, memcpy, memchr, strlen */
#include <unistd.h>  /* sysconf */

/* Identical doubles on every compiler: no fused multiply-add contraction.
 * (GCC already does not contract in ISO C mode and warns on the pragma.) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ============================================================================
 * Spec parsing
 * ========================================================================== */

int lut_bits_valid(int bits)
{
	return bits == 1 || bits == 2 || bits == 3 || bits == 4 || bits == 6 || bits == 8;
}

/* Case-insensitive comparison of s[0..n) with the lower-case keyword kw. */
static int word_is(const char *s, size_t n, const char *kw)
{
	size_t i;
	for (i = 0; i < n && kw[i]; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != kw[i])
			return 0;
	}
	return i == n && kw[i] == 0;
}

/* Trim blanks from s[*b..*e). */
static void trim(const char *s, size_t *b, size_t *e)
{
	while (*b < *e && (s[*b] == ' ' || s[*b] == '\t'))
		(*b)++;
	while (*e > *b && (s[*e - 1] == ' ' || s[*e - 1] == '\t'))
		(*e)--;
}

/* Decimal digits only, at most 1e9; -1 otherwise. */
static long parse_count(const char *s, size_t n)
{
	long v = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > 1000000000L)
			return -1;
	}
	return v;
}

static int spec_error(const char *s, const char *why)
{
	return errf("bad LUT spec '%s': %s (expected none, BITS or BITS,GROUP: BITS one of 1,2,3,4,6,8; "
		    "GROUP output channels per LUT, default 8, or 0/t/tensor for one LUT per tensor)",
		    s, why);
}

int lut_spec_parse(const char *s, lut_spec *out)
{
	out->bits = out->group = out->group_default = 0;
	if (!s)
		return 0;
	size_t b = 0, e = strlen(s);
	trim(s, &b, &e);
	if (b == e || word_is(s + b, e - b, "none") || word_is(s + b, e - b, "no") || word_is(s + b, e - b, "false"))
		return 0;
	const char *comma = memchr(s + b, ',', e - b);
	size_t be = comma ? (size_t)(comma - s) : e, gb = be + 1, ge = e;
	if (comma && memchr(comma + 1, ',', e - gb))
		return spec_error(s, "more than one comma");
	trim(s, &b, &be);
	long bits = parse_count(s + b, be - b);
	if (!lut_bits_valid((int)bits))
		return spec_error(s, "unsupported bit width");
	long group = LUT_SPEC_DEFAULT_GROUP;
	if (comma) {
		trim(s, &gb, &ge);
		if (word_is(s + gb, ge - gb, "t") || word_is(s + gb, ge - gb, "tensor"))
			group = 0;
		else if ((group = parse_count(s + gb, ge - gb)) < 0)
			return spec_error(s, "GROUP is not a channel count");
	}
	out->bits = (int)bits;
	out->group = (int)group;
	out->group_default = !comma;
	return 0;
}

int64_t lut_group_fit(int64_t n, int64_t max)
{
	ASSERT(n >= 1 && max >= 1);
	for (int64_t g = max < n ? max : n; g > 1; g--)
		if (n % g == 0)
			return g;
	return 1;
}

const char *lut_divisors_text(int64_t n, int64_t max, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = 0;
	for (int64_t d = 1; d <= n && d <= max && len < size; d++)
		if (n % d == 0)
			len += (size_t)snprintf(buf + len, size - len, "%s%lld", len ? ", " : "", (long long)d);
	return buf;
}

const char *lut_spec_format(const lut_spec *spec, char *buf, size_t size)
{
	if (spec->bits == 0)
		snprintf(buf, size, "none");
	else if (spec->group == 0)
		snprintf(buf, size, "%d,tensor", spec->bits);
	else
		snprintf(buf, size, "%d,%d", spec->bits, spec->group);
	return buf;
}

/* ============================================================================
 * Eligibility (coremltools: rank > 1 and more than weight_threshold elements)
 * ========================================================================== */

int lut_eligible(int rank, const int64_t *shape)
{
	if (rank <= 1)
		return 0;
	int64_t n = 1;
	for (int i = 0; i < rank; i++) {
		if (shape[i] <= 0)
			return 0;
		/* saturate: only "more than the threshold" matters */
		n = n > LUT_WEIGHT_THRESHOLD ? n : n * shape[i];
		if (n > LUT_WEIGHT_THRESHOLD)
			n = LUT_WEIGHT_THRESHOLD + 1;
	}
	return n > LUT_WEIGHT_THRESHOLD;
}

/* ============================================================================
 * Scratch: one per thread, reused across its groups
 * ========================================================================== */

#define NPAT 65536      /* fp16 bit patterns */
#define MAX_UNIQUE NPAT /* split points are stored as uint16 */

typedef struct lut_scratch {
	uint32_t *count;   /* [NPAT] occurrences per bit pattern; all 0 between groups */
	uint64_t *present; /* [NPAT/64] patterns seen; all 0 between groups */
	uint8_t *index_of; /* [NPAT] table index of each pattern present in the group */
	double *wsum;      /* [NPAT] weighted runs only: summed column weights per pattern; 0 between groups */
	double *cnt;       /* [n] weighted runs only: the counts (s->w holds the weights) */
	size_t cap;        /* distinct values the arrays below can hold */
	uint16_t *pat;     /* [n] distinct patterns in ascending value order (0 stands for +-0) */
	double *x, *w;     /* [n] their values and counts */
	double *p0, *p1;   /* [n+1] prefix sums of w and w*(x - centre) */
	double *p2;        /* [n+1] prefix sums of w*(x - centre)^2 */
	int32_t *c0;       /* [n+1] p0 as integers, for the reciprocal table */
	double *ea, *eb;   /* [n+1] DP rows (see kmeans_dp) */
	double *g;         /* [n+1] Lagrangian suffix costs (see suffix_bound) */
	int32_t *gcnt;     /* [n+1] clusters of the partition behind g[i] */
	uint16_t *bnd[2];  /* [n+1] split bounds of the last two layers (see classify_rows) */
	int32_t *gend;     /* [n+1] candidates of suffix_bound */
	int32_t *gtop;     /* [n+1] their rows */
	size_t dp_cap;     /* values the arrays from g on can hold (scratch_reserve_dp) */
	size_t opt_cap;
	uint16_t *opt;     /* [(k-1) * (n+1)] split points of layers 2..k */
	double *rcp;       /* [rcp_len] 1.0 / m, see kmeans_dp */
	size_t rcp_len;
	int bounds[257];   /* cluster boundaries, k+1 entries */
} lut_scratch;

static void scratch_init(lut_scratch *s)
{
	memset(s, 0, sizeof *s);
	s->count = xcalloc(NPAT, sizeof *s->count);
	s->present = xcalloc(NPAT / 64, sizeof *s->present);
	s->index_of = xcalloc(NPAT, 1);
}

static void scratch_release(lut_scratch *s)
{
	free(s->count);
	free(s->present);
	free(s->index_of);
	free(s->wsum);
	free(s->cnt);
	free(s->pat);
	free(s->x);
	free(s->w);
	free(s->p0);
	free(s->p1);
	free(s->c0);
	free(s->p2);
	free(s->rcp);
	free(s->ea);
	free(s->eb);
	free(s->g);
	free(s->gcnt);
	free(s->bnd[0]);
	free(s->bnd[1]);
	free(s->gend);
	free(s->gtop);
	free(s->opt);
	memset(s, 0, sizeof *s);
}

/* Room for n distinct values. */
static void scratch_reserve(lut_scratch *s, size_t n)
{
	if (n <= s->cap)
		return;
	size_t c = n + 1;
	s->pat = xrealloc(s->pat, c * sizeof *s->pat);
	s->x = xrealloc(s->x, c * sizeof *s->x);
	s->w = xrealloc(s->w, c * sizeof *s->w);
	if (s->wsum)
		s->cnt = xrealloc(s->cnt, c * sizeof *s->cnt);
	s->p0 = xrealloc(s->p0, c * sizeof *s->p0);
	s->p1 = xrealloc(s->p1, c * sizeof *s->p1);
	s->c0 = xrealloc(s->c0, c * sizeof *s->c0);
	s->p2 = xrealloc(s->p2, c * sizeof *s->p2);
	s->ea = xrealloc(s->ea, c * sizeof *s->ea);
	s->eb = xrealloc(s->eb, c * sizeof *s->eb);
	s->cap = n;
}

/* Room for the pruning arrays of a DP over n values. Sized to the group's
 * distinct values rather than to NPAT like the arrays above, which keeps
 * them small (~70 KB for 2K values) unless a group has very many. */
static void scratch_reserve_dp(lut_scratch *s, size_t n)
{
	if (n <= s->dp_cap)
		return;
	size_t c = n + 1;
	s->g = xrealloc(s->g, c * sizeof *s->g);
	s->gcnt = xrealloc(s->gcnt, c * sizeof *s->gcnt);
	s->bnd[0] = xrealloc(s->bnd[0], c * sizeof *s->bnd[0]);
	s->bnd[1] = xrealloc(s->bnd[1], c * sizeof *s->bnd[1]);
	s->gend = xrealloc(s->gend, c * sizeof *s->gend);
	s->gtop = xrealloc(s->gtop, c * sizeof *s->gtop);
	s->dp_cap = n;
}

/* ============================================================================
 * Optimal 1-D k-means by dynamic programming
 *
 * With n sorted values, D_j(i) is the least cost of putting the first i
 * values into j clusters: D_j(i) = min over t of D_(j-1)(t) + cost(t, i),
 * where cost(t, i) is the squared error of x[t..i) around its weighted mean:
 *     cost = S2 - S1^2 / S0   (S0, S1, S2 = sums of w, w*x, w*x^2 over t..i).
 * With prefix sums P0, P1, P2 this is O(1). Writing E_j(i) = D_j(i) - P2(i):
 *     E_j(i) = min over t of E_(j-1)(t) - gain(P1(i) - P1(t), P0(i) - P0(t))
 * so P2 is never needed to choose. Values are centred on x[n/2] before
 * summing to keep the prefix sums small.
 *
 * gain(s1, s0) is computed as s1 * s1 * (1 / s0), the reciprocal correctly
 * rounded. When the weights are integer counts (always, from lut_quantize)
 * s0 is an integer and 1 / s0 comes from a table instead of a division,
 * which was most of the cost of a candidate; the table holds the very same
 * doubles, so both ways give bit-identical results.
 *
 * The best split t (the start of the last cluster) never decreases as i
 * grows (the cost satisfies the quadrangle inequality), so a layer can be
 * solved by divide and conquer: O(n log n). It also never decreases as j
 * grows, which bounds each candidate range from below by the previous
 * layer's split: a sweep over i from right to left inside
 * [opt_(j-1)(i), opt_j(i+1)] costs O(n) per layer and does the rows the
 * previous layer bounds; divide and conquer does the rest (the rows past
 * them, and layer 2). The leftmost minimum is kept everywhere, so ties
 * resolve to the longest last cluster.
 *
 * Pruning. D_j(i) never decreases as i grows, and every state (j, i) on the
 * optimal path has D_j(i) <= D_k(n) <= U for the cost U of any k-clustering.
 * So once a row is found above U, it and every row after it are dead: they
 * are neither computed nor offered as candidates to the next layer. Few
 * clusters cannot cover many values within U, so the early layers, the
 * expensive ones for divide and conquer, shrink to a fraction of n (on
 * bench_lut, 6 bits, 55% of the candidates and 36% of the rows go). U
 * starts from greedy splitting and Lloyd steps (ub_cost), within ~10% of
 * the optimum there, and is lowered as layers complete (tighten_ub); a
 * looser U only prunes less. Dead
 * rows could only be on a path costing more than U, so the result is the
 * same as without pruning; the thresholds carry a margin far above the
 * rounding of E and U. Only rows below U serve as lower bounds for the next
 * layer (dead rows are computed over fewer candidates and their splits may
 * be off); later rows use the last such bound, as split points ascend.
 * Rows beyond those a k-clustering could use (i > n - k + j) are kept, so
 * every row, the last layer's single one included, has that bound.
 *
 * Two-sided pruning. That test ignores what the values after i still
 * cost: most rows it keeps lie left of the optimal path (a prefix cheap to
 * cover with j clusters, leaving too many values for the other k - j). A
 * state (j, i) is useful only if D_j(i) + R_(k-j)(i) <= U, R_m(i) being the
 * least cost of x[i..n) in m clusters. By weak Lagrangian duality, for any
 * lambda >= 0, R_m(i) >= G(i) - lambda m, where G(i) is the least cost plus
 * lambda per cluster of x[i..n) with any number of clusters: one 1-D DP,
 * computed once per group (suffix_bound, O(n log n)). With lambda at the
 * optimum's marginal gain per cluster, the bound is exact all along the
 * optimal path (its suffixes are optimal Lagrangian partitions) and close
 * to it nearby. B_j(i) = max(0, G(i) - lambda (k - j)) is consistent:
 * B_(j-1)(t) <= cost(t, i) + B_j(i) for t < i, since G is a shortest-path
 * distance. Rows with D_j(i) + B_j(i) above the thresholds are dropped
 * from both ends of a layer's live range (classify_rows); the next layer's
 * candidates start at the first live row, and its rows one after. What
 * stays exact, by induction over j with consistency: every row with
 * D_j(i) + B_j(i) <= U, since its best split t has D_(j-1)(t) +
 * B_(j-1)(t) <= D_j(i) + B_j(i) and is therefore kept. A row whose best
 * split was dropped is itself above U and is computed over the remaining
 * candidates only; the Knuth bound from an exact row never cuts into those
 * (it lies left of the dropped split), so the computed D_j stays
 * nondecreasing and the dead-row test above stays valid. Only rows within
 * the `exact` threshold bound the next layer's splits. So the optimal path
 * is the one the full DP finds. One caveat, old as the Knuth bounds: where
 * rounding makes tied splits (evenly spaced values of equal counts) compare
 * out of order, the leftmost one may lie outside the ranges searched, and
 * which ranges those are differs from the earlier divide-and-conquer code:
 * in such rare groups the two can pick different tied splits (this code
 * matches a full scan more often): 1 of bench_lut's 1024 groups at 8 bits,
 * none at 1 to 6 bits there nor in stories260K at any width.
 *
 * U itself falls to the optimum as layers complete (tighten_ub). On
 * bench_lut all this leaves, per group, 8.5K of 77K rows and 33K of 344K
 * candidate terms at 6 bits, 4.5K of 19K rows and 10K of 173K terms at 4.
 * ========================================================================== */

/* Largest total weight (values in a group) served by the reciprocal table:
 * 1 MB of doubles per thread at most; larger groups divide. */
#define RCP_MAX ((size_t)1 << 17)

typedef struct dp_layer {
	const double *p0, *p1, *p2;
	const int32_t *c0;     /* P0 as integers when rcp is set */
	const double *rcp;     /* rcp[m] = 1.0 / m, or NULL: divide */
	const double *prev;    /* E_(j-1), indexed by t */
	double *cur;           /* E_j, indexed by i */
	uint16_t *opt;         /* opt_j, indexed by i */
	const uint16_t *lower; /* lower bounds on opt_j from layer j-1 (see classify_rows), or NULL */
	int lower_lo;          /* rows before lower_lo have no bound from the previous layer */
	int lower_hi;          /* lower[i] is set for lower_lo <= i <= lower_hi; lower[lower_hi] bounds later rows */
	int tmin;              /* first live row of layer j-1 (>= j - 1: every earlier cluster needs a value) */
	int tmax;              /* last live row of layer j-1: no later candidate */
	double dead;           /* rows with D_j above this are dead (+inf: no pruning) */
	int live_hi;           /* rows after this one are dead; shrinks as they are found */
} dp_layer;

/* Leftmost best split for row i among t in [tlo, thi]; stores E_j(i).
 * The selects are branch-free: which candidate wins is data, not flow. */
static inline int best_split(const dp_layer *L, int i, int tlo, int thi)
{
	const double *p1 = L->p1, *prev = L->prev;
	double a1 = p1[i], best = INFINITY;
	int bt = tlo;
	if (L->rcp) {
		const int32_t *c0 = L->c0;
		const double *rcp = L->rcp;
		int32_t a0 = c0[i];
		for (int t = tlo; t <= thi; t++) {
			double s1 = a1 - p1[t];
			double v = prev[t] - s1 * s1 * rcp[a0 - c0[t]];
			bt = v < best ? t : bt;
			best = v < best ? v : best;
		}
	} else {
		const double *p0 = L->p0;
		double a0 = p0[i];
		for (int t = tlo; t <= thi; t++) {
			double s1 = a1 - p1[t];
			double v = prev[t] - s1 * s1 * (1.0 / (a0 - p0[t]));
			bt = v < best ? t : bt;
			best = v < best ? v : best;
		}
	}
	L->cur[i] = best;
	L->opt[i] = (uint16_t)bt;
	return bt;
}

/* Candidate range [*tlo, *thi] for row i, tightened by the previous layer.
 * Rounding can bend the theory by an ulp; the range never becomes empty. */
static inline void clamp_range(const dp_layer *L, int i, int *tlo, int *thi)
{
	if (*thi > i - 1)
		*thi = i - 1;
	if (*thi > L->tmax)
		*thi = L->tmax;
	if (L->lower && i >= L->lower_lo) {
		int lb = L->lower[i < L->lower_hi ? i : L->lower_hi];
		if (lb > *tlo && lb <= *thi)
			*tlo = lb;
	}
	if (*tlo > *thi)
		*tlo = *thi;
}

/* Rows lo..hi whose best splits lie in [optlo, opthi]. A dead row ends the
 * layer there; the rows before it still have their splits below its own. */
static void layer_divide(dp_layer *L, int lo, int hi, int optlo, int opthi)
{
	while (lo <= hi && lo <= L->live_hi) {
		if (hi > L->live_hi)
			hi = L->live_hi;
		int mid = lo + (hi - lo) / 2;
		int tlo = optlo, thi = opthi;
		clamp_range(L, mid, &tlo, &thi);
		int t = best_split(L, mid, tlo, thi);
		if (L->cur[mid] + L->p2[mid] > L->dead) {
			L->live_hi = mid - 1;
			hi = mid - 1;
			opthi = t;
			continue;
		}
		layer_divide(L, lo, mid - 1, optlo, t);
		lo = mid + 1;
		optlo = t;
	}
}

/* Rows hi down to lo, each between the previous layer's split and the split
 * of the row to its right (right: that split, or hi - 1 for none). */
static void layer_sweep(const dp_layer *L, int lo, int hi, int right)
{
	for (int i = hi; i >= lo; i--) {
		int tlo = L->tmin, thi = right;
		clamp_range(L, i, &tlo, &thi);
		right = best_split(L, i, tlo, thi);
	}
}

/* Last row of lo..hi before the first whose D_j exceeds limit, or lo - 1. */
static int below_until(const double *e, const double *p2, int lo, int hi, double limit)
{
	int i = lo;
	while (i <= hi && e[i] + p2[i] <= limit)
		i++;
	return i - 1;
}

/* rcp[m] = 1.0 / m for m <= total, kept across groups. */
static const double *rcp_table(lut_scratch *s, size_t total)
{
	if (total >= s->rcp_len) {
		size_t len = s->rcp_len ? s->rcp_len : 4096;
		while (len <= total)
			len *= 2;
		s->rcp = xrealloc(s->rcp, len * sizeof *s->rcp);
		s->rcp[0] = 0; /* never used: clusters are not empty */
		for (size_t m = s->rcp_len ? s->rcp_len : 1; m < len; m++)
			s->rcp[m] = 1.0 / (double)m;
		s->rcp_len = len;
	}
	return s->rcp;
}

/* Squared error of x[a..b) around its mean, from the (centred) prefix sums. */
static double span_cost(const lut_scratch *s, int a, int b)
{
	double s1 = s->p1[b] - s->p1[a];
	return (s->p2[b] - s->p2[a]) - s1 * s1 / (s->p0[b] - s->p0[a]);
}

/* S1^2 / S0 of x[a..b): what the cluster saves against the centre. */
static inline double span_gain(const lut_scratch *s, const double *rcp, int a, int b)
{
	double s1 = s->p1[b] - s->p1[a];
	return s1 * s1 * (rcp ? rcp[s->c0[b] - s->c0[a]] : 1.0 / (s->p0[b] - s->p0[a]));
}

/* Best cut t of x[a..b) into two (b - a >= 2); returns the gain it adds. */
static double best_cut(const lut_scratch *s, const double *rcp, int a, int b, int *cut)
{
	double whole = span_gain(s, rcp, a, b), best = -INFINITY;
	*cut = a + 1;
	for (int t = a + 1; t < b; t++) {
		double g = span_gain(s, rcp, a, t) + span_gain(s, rcp, t, b);
		if (g > best) {
			best = g;
			*cut = t;
		}
	}
	return best - whole;
}

/* An upper bound on the optimal cost with k clusters: split the cluster
 * whose best cut gains most, k - 1 times (outliers get their own clusters,
 * which equal-weight starts would not give them), then a few Lloyd steps.
 * Any clustering will do; a good one prunes more. Uses s->bounds. */
static double ub_cost(lut_scratch *s, const double *rcp, int n, int k, double centre)
{
	int lo[256], hi[256], cut[256], m = 1;
	double gain[256];
	lo[0] = 0;
	hi[0] = n;
	gain[0] = best_cut(s, rcp, 0, n, &cut[0]);
	while (m < k) {
		int c = 0;
		for (int d = 1; d < m; d++)
			if (gain[d] > gain[c])
				c = d;
		if (!(gain[c] > 0))
			break;
		lo[m] = cut[c];
		hi[m] = hi[c];
		hi[c] = cut[c];
		m++;
		gain[c] = hi[c] - lo[c] >= 2 ? best_cut(s, rcp, lo[c], hi[c], &cut[c]) : -INFINITY;
		gain[m - 1] = hi[m - 1] - lo[m - 1] >= 2 ? best_cut(s, rcp, lo[m - 1], hi[m - 1], &cut[m - 1]) : -INFINITY;
	}
	/* boundaries in order: the starts, sorted */
	int *b = s->bounds;
	for (int c = 0; c < m; c++) {
		int v = lo[c], p = c;
		while (p > 0 && b[p - 1] > v) {
			b[p] = b[p - 1];
			p--;
		}
		b[p] = v;
	}
	b[m] = n;
	double mean[256];
	for (int it = 0; it < 2; it++) {
		for (int c = 0; c < m; c++)
			mean[c] = (s->p1[b[c + 1]] - s->p1[b[c]]) / (s->p0[b[c + 1]] - s->p0[b[c]]);
		int nm = 0;
		for (int c = 0, i = 0; c + 1 < m; c++) {
			double mid = (mean[c] + mean[c + 1]) / 2 + centre;
			while (i < n && s->x[i] <= mid)
				i++;
			if (i > b[nm] && i < n)
				b[++nm] = i;
		}
		b[++nm] = n;
		m = nm;
	}
	double u = 0;
	for (int c = 0; c < m; c++)
		u += span_cost(s, b[c], b[c + 1]);
	return u;
}

/* Term of candidate t (the end of the first cluster) for row i of the
 * suffix bound: cost of x[i..t) plus g[t]. */
static inline double suffix_term(const lut_scratch *s, const double *rcp, const double *g, int i, int t)
{
	double s1 = s->p1[t] - s->p1[i];
	double r = rcp ? rcp[s->c0[t] - s->c0[i]] : 1.0 / (s->p0[t] - s->p0[i]);
	return (s->p2[t] - s->p2[i]) - s1 * s1 * r + g[t];
}

/* Highest row y in lo..hi (lo - 1 if none) where candidate a < b does at
 * least as well as b. Rows where a wins form a prefix (Monge), and the
 * crossover is usually within a cluster of hi: gallop down, then bisect. */
static int suffix_crossover(const lut_scratch *s, const double *rcp, const double *g, int a, int b, int lo, int hi)
{
	int top = hi, d = 1; /* a loses above top */
	while (hi >= lo && suffix_term(s, rcp, g, hi, a) > suffix_term(s, rcp, g, hi, b)) {
		top = hi - 1;
		hi -= d;
		d *= 2;
	}
	if (hi < lo)
		hi = lo - 1;
	/* a wins at hi (or hi = lo - 1), loses above top */
	int y = hi;
	lo = hi + 1;
	while (lo <= top) {
		int mid = lo + (top - lo) / 2;
		if (suffix_term(s, rcp, g, mid, a) <= suffix_term(s, rcp, g, mid, b)) {
			y = mid;
			lo = mid + 1;
		} else {
			top = mid - 1;
		}
	}
	return y;
}

/* Lagrangian lower bound on the cost of the values after a split (see
 * "Two-sided pruning" above): g[i] = least cost + lambda x clusters of
 * x[i..n) with any number of clusters, g[n] = 0. With Monge costs the best
 * first-cluster end moves left with i, so a deque of candidates, each best
 * for a run of rows, finds every g in O(n log n) terms: rows go down from
 * n - 1; a new candidate takes the lowest rows, up to where it stops
 * winning against the candidate at the back. */
static void suffix_bound(lut_scratch *s, const double *rcp, int n, double lambda, double *g, int32_t *cnt)
{
	int32_t *cand = s->gend, *top = s->gtop; /* cand[q] is best for rows top[q + 1] + 1 .. top[q] */
	int head = 0, tail = 1;
	g[n] = 0;
	cnt[n] = 0;
	cand[0] = n;
	top[0] = n - 1;
	for (int i = n - 1; i >= 0; i--) {
		while (head + 1 < tail && top[head + 1] >= i)
			head++;
		g[i] = lambda + suffix_term(s, rcp, g, i, cand[head]);
		cnt[i] = 1 + cnt[cand[head]];
		/* Candidate i, for rows 0..i-1. */
		int mine = -1; /* top of the rows it wins so far */
		while (tail > head && i > 0) {
			int q = tail - 1, qtop = top[q] < i - 1 ? top[q] : i - 1;
			if (suffix_term(s, rcp, g, qtop, i) <= suffix_term(s, rcp, g, qtop, cand[q])) {
				mine = qtop; /* wins all of q's rows */
				tail--;
				continue;
			}
			mine = suffix_crossover(s, rcp, g, i, cand[q], mine + 1, qtop - 1);
			break;
		}
		if (mine >= 0) {
			cand[tail] = i;
			top[tail] = mine;
			tail++;
		}
	}
}

/* The suffix bound of a group: B_j(i) = g[i] - lambda (k - j), or 0.
 * g = NULL: no bound. */
typedef struct suffix_bounds {
	const double *g;
	const int32_t *cnt;
	double lambda;
} suffix_bounds;

/* Pruning thresholds, from the best known cost U of a k-clustering. */
typedef struct dp_limits {
	double ub, margin;
	double exact, dead; /* ub + margin, ub + 2 margin */
} dp_limits;

static void set_ub(dp_limits *lim, double ub)
{
	lim->ub = ub;
	lim->exact = ub + lim->margin;
	lim->dead = ub + 2 * lim->margin;
}

/* Lower U with complete clusterings: D_j(i) (a real partition of x[0..i),
 * rows lo..hi) followed by suffix_bound's partition of x[i..n), when that
 * uses at most the m = k - j clusters left (splitting one more never costs
 * more). Near the optimal path both parts are optimal for their sizes, so
 * U soon comes within a fraction of a percent of the optimum, and a tight
 * U is what makes the pruning bite. */
static void tighten_ub(dp_limits *lim, const double *e, const double *p2, const suffix_bounds *sb, int n, int m,
		       int lo, int hi)
{
	if (!sb->g)
		return;
	double ub = lim->ub;
	for (int i = lo; i <= hi; i++) {
		if (sb->cnt[i] > m || n - i < m)
			continue;
		double u = e[i] + p2[i] + (sb->g[i] - sb->lambda * sb->cnt[i]);
		ub = u < ub ? u : ub;
	}
	if (ub < lim->ub)
		set_ub(lim, ub);
}

/* The rows of a finished layer that stay useful: the candidates for the
 * next layer, and whether any is exact enough to bound its splits. */
typedef struct layer_rows {
	int live_lo, live_hi; /* candidates for the next layer */
	int bounded;          /* bnd[live_lo..live_hi] is set (see classify_rows) */
} layer_rows;

/* Lower bound on the cost of x[i..n) in m clusters: g[i] - lambda m (any
 * lambda, by weak duality), or 0. */
static inline double suffix_lb(const suffix_bounds *sb, int i, int m)
{
	double b = sb->g ? sb->g[i] - sb->lambda * m : 0;
	return b > 0 ? b : 0;
}

/* Classify rows lo..hi (hi: the last row not found dead by the forward
 * test) of layer j, whose D_j + P2 is e + p2, given the bound for the
 * m = k - j clusters still to come. Rows at either end whose D_j plus that
 * bound exceeds `dead` are dropped; rows inside the live range are kept
 * even if they fail (holes cost a little, never correctness). With opt
 * (layer j's splits, NULL for j = 1), bnd[i] becomes the split of the
 * nearest row at or left of i within `exact`, which is exact, or 0: a
 * lower bound on opt_(j+1)(i), as splits ascend with i and with j. */
static layer_rows classify_rows(const double *e, const double *p2, const suffix_bounds *sb, int m, int lo, int hi,
				double exact, double dead, const uint16_t *opt, uint16_t *bnd)
{
	static const suffix_bounds none = {0};
	layer_rows r = {.live_lo = lo, .live_hi = hi};
	while (r.live_lo <= hi && e[r.live_lo] + p2[r.live_lo] + suffix_lb(sb, r.live_lo, m) > dead)
		r.live_lo++;
	while (r.live_hi > r.live_lo && e[r.live_hi] + p2[r.live_hi] + suffix_lb(sb, r.live_hi, m) > dead)
		r.live_hi--;
	if (r.live_lo > hi) { /* rounding at the margin: keep everything */
		r.live_lo = lo;
		r.live_hi = hi;
		sb = &none;
	}
	if (!opt)
		return r;
	uint16_t last = 0;
	for (int i = r.live_lo; i <= r.live_hi; i++) {
		if (e[i] + p2[i] + suffix_lb(sb, i, m) <= exact) {
			last = opt[i];
			r.bounded = 1;
		}
		bnd[i] = last;
	}
	return r;
}

/* One layer j of the DP over rows lo..n given the previous layer's rows;
 * returns the rows of this layer that stay useful. */
static layer_rows dp_one_layer(lut_scratch *s, const double *rcp, int n, int k, int j, const double *prev,
			       double *cur, layer_rows pr, dp_limits *lim, const suffix_bounds *sb)
{
	dp_layer L = {
		.p0 = s->p0, .p1 = s->p1, .p2 = s->p2, .c0 = s->c0, .rcp = rcp, .prev = prev, .cur = cur,
		.opt = s->opt + (size_t)(j - 2) * (n + 1),
		.lower = pr.bounded ? s->bnd[(j - 1) & 1] : NULL, .lower_lo = pr.live_lo, .lower_hi = pr.live_hi,
		.tmin = pr.live_lo > j - 1 ? pr.live_lo : j - 1, .tmax = pr.live_hi, .dead = lim->dead, .live_hi = n,
	};
	int lo = j == k ? n : (L.tmin + 1 > j ? L.tmin + 1 : j), hi = n;
	/* Rows past the previous layer's live ones by divide and conquer,
	 * which also finds where the dead rows start; then a sweep over the
	 * rest. With the pruning above, a layer's rows are those near the
	 * optimal path, where the sweep's ranges are narrow: it scans ~2
	 * candidates per row plus the distance between the two layers' splits,
	 * divide and conquer 5-10 and pays for its recursion (measured on
	 * bench_lut; before the two-sided pruning, wide early layers made
	 * divide and conquer the better choice there). */
	int sweep_hi = pr.live_hi < hi ? pr.live_hi : hi;
	if (L.lower && lo <= sweep_hi) {
		layer_divide(&L, sweep_hi + 1, hi, L.tmin, hi - 1);
		int right = sweep_hi + 1 <= L.live_hi ? L.opt[sweep_hi + 1] : sweep_hi - 1;
		layer_sweep(&L, lo, sweep_hi, right);
	} else {
		layer_divide(&L, lo, hi, L.tmin, hi - 1);
	}
	if (j == k)
		return pr;
	tighten_ub(lim, cur, s->p2, sb, n, k - j, lo, L.live_hi);
	layer_rows r = classify_rows(cur, s->p2, sb, k - j, lo, L.live_hi, lim->exact, lim->dead, L.opt, s->bnd[j & 1]);
	return r;
}

/* Partition s->x[0..n), weights s->w, into k < n clusters; fills s->bounds.
 * counts: every weight is an integer (the table of reciprocals applies). */
static void kmeans_dp(lut_scratch *s, int n, int k, int counts)
{
	ASSERT(k >= 2 && k < n && n <= MAX_UNIQUE);
	scratch_reserve_dp(s, (size_t)n);
	size_t need = xmul((size_t)(k - 1), (size_t)n + 1);
	if (need > s->opt_cap) {
		s->opt = xrealloc(s->opt, need * sizeof *s->opt);
		s->opt_cap = need;
	}
	double c = s->x[n / 2];
	s->p0[0] = s->p1[0] = s->p2[0] = 0;
	for (int i = 0; i < n; i++) {
		double d = s->x[i] - c;
		s->p0[i + 1] = s->p0[i] + s->w[i];
		s->p1[i + 1] = s->p1[i] + s->w[i] * d;
		s->p2[i + 1] = s->p2[i] + s->w[i] * d * d;
	}
	const double *rcp = NULL;
	if (counts && s->p0[n] < (double)RCP_MAX) {
		rcp = rcp_table(s, (size_t)s->p0[n]);
		for (int i = 0; i <= n; i++)
			s->c0[i] = (int32_t)s->p0[i];
	}
	/* Thresholds: rows up to `exact` D are computed exactly (their lower
	 * bounds serve the next layer), rows above `dead` are dropped. The
	 * margin dwarfs the rounding of E and U (~k ulps of P2(n)). */
	dp_limits lim = {.margin = 1e-9 * s->p2[n]};
	double ub = k > 2 ? ub_cost(s, rcp, n, k, c) : INFINITY;
	set_ub(&lim, ub);
	/* The suffix bound. Any lambda is exact; it prunes best at the
	 * optimum's marginal gain per cluster, where the Lagrangian partition
	 * has k clusters and the bound is tight all along the optimal path.
	 * For k-means (error ~ 1/k^2) that is ~2 U / k, which gives k clusters
	 * within 2% on bench_lut; 10% off already costs 20-30% of the speed. */
	suffix_bounds sb = {0};
	double lambda = 2 * ub / k;
	if (k > 2 && isfinite(lambda) && lambda > 0) {
		suffix_bound(s, rcp, n, lambda, s->g, s->gcnt);
		sb = (suffix_bounds){.g = s->g, .cnt = s->gcnt, .lambda = lambda};
	}
	/* Layer 1: one cluster x[0..i). */
	double *prev = s->ea, *cur = s->eb;
	for (int i = 1; i <= n; i++) {
		double r = rcp ? rcp[s->c0[i]] : 1.0 / s->p0[i];
		prev[i] = -(s->p1[i] * s->p1[i] * r);
	}
	int hi1 = below_until(prev, s->p2, 1, n, lim.dead);
	tighten_ub(&lim, prev, s->p2, &sb, n, k - 1, 1, hi1);
	layer_rows rows = classify_rows(prev, s->p2, &sb, k - 1, 1, hi1, lim.exact, lim.dead, NULL, NULL);
	/* Layers 2..k-1: the useful rows; the last layer only needs i = n. */
	for (int j = 2; j <= k; j++) {
		rows = dp_one_layer(s, rcp, n, k, j, prev, cur, rows, &lim, &sb);
		double *tmp = prev;
		prev = cur;
		cur = tmp;
	}
	int *b = s->bounds;
	b[k] = n;
	for (int j = k; j >= 2; j--)
		b[j - 1] = s->opt[(size_t)(j - 2) * (n + 1) + b[j]];
	b[0] = 0;
}

int lut_kmeans1d(const double *x, const double *w, int n, int k, int *bounds)
{
	if (n < 1 || k < 1 || n > MAX_UNIQUE)
		return errf("kmeans1d: need 1 <= n <= %d values and k >= 1 clusters, got n=%d k=%d", MAX_UNIQUE, n, k);
	for (int i = 0; i < n; i++) {
		if (!(w[i] > 0) || !isfinite(x[i]) || !isfinite(w[i]))
			return errf("kmeans1d: value %d has weight %g or is not finite", i, w[i]);
		if (i > 0 && !(x[i] > x[i - 1]))
			return errf("kmeans1d: values must be strictly ascending (x[%d] = %g after %g)", i, x[i], x[i - 1]);
	}
	int m = k < n ? k : n;
	if (m == n) {
		for (int i = 0; i <= n; i++)
			bounds[i] = i;
		return m;
	}
	if (m > 256) /* beyond the 8-bit tables; same algorithm, larger bounds */
		return errf("kmeans1d: at most 256 clusters, got %d", m);
	/* Integer weights take the reciprocal table, as from lut_quantize; the
	 * result is the same either way. */
	int counts = 1;
	for (int i = 0; i < n; i++)
		counts &= w[i] == floor(w[i]);
	lut_scratch s = {0};
	scratch_reserve(&s, (size_t)n);
	memcpy(s.x, x, (size_t)n * sizeof *x);
	memcpy(s.w, w, (size_t)n * sizeof *w);
	kmeans_dp(&s, n, m, counts);
	memcpy(bounds, s.bounds, (size_t)(m + 1) * sizeof *bounds);
	scratch_release(&s);
	return m;
}

/* ============================================================================
 * One group: histogram, clusters, table, indices
 * ========================================================================== */

/* Round a double (|d| <= 65504) to fp16, nearest, ties to even. Going
 * through float would round twice; instead round at the fp16 quantum of d's
 * binade (2^-24 for subnormals), which is exact in double. */
static uint16_t f64_to_fp16(double d)
{
	int e;
	frexp(d, &e); /* |d| in [2^(e-1), 2^e) */
	if (e < -13)
		e = -13;
	double q = ldexp(1.0, e - 11);
	double r = nearbyint(d / q) * q;
	uint16_t h = f32_to_fp16((float)r, NULL);
	return h == 0x8000 ? 0 : h; /* keep the table free of -0 */
}

uint16_t lut_round_fp16(double d)
{
	return f64_to_fp16(d);
}

/* Count bit patterns (and, with column weights colw[e % K], sum them per
 * pattern, in element order); 1 if a NaN or infinity was seen. */
static int histogram(lut_scratch *s, const uint16_t *src, size_t n, const double *colw, size_t K)
{
	uint32_t *count = s->count;
	uint64_t *present = s->present;
	for (size_t e = 0; e < n; e++) {
		uint16_t h = src[e];
		count[h]++;
		present[h >> 6] |= (uint64_t)1 << (h & 63);
	}
	for (size_t e = 0; colw && e < n; e++)
		s->wsum[src[e]] += colw[e % K];
	/* exponent all ones: 0x7c00..0x7fff and 0xfc00..0xffff, words 496..511 and 1008..1023 */
	uint64_t bad = 0;
	for (int i = 0; i < 16; i++)
		bad |= present[496 + i] | present[1008 + i];
	return bad != 0;
}

static void histogram_clear(lut_scratch *s)
{
	memset(s->count, 0, NPAT * sizeof *s->count);
	memset(s->present, 0, NPAT / 64 * sizeof *s->present);
	if (s->wsum)
		memset(s->wsum, 0, NPAT * sizeof *s->wsum);
}

/* One distinct value: its count, and in weighted runs its summed weight
 * (the pattern's, plus -0's for zero). */
static inline void add_unique(lut_scratch *s, int *n, uint16_t pat, uint32_t cnt)
{
	s->pat[*n] = pat;
	s->x[*n] = fp16_to_f32(pat);
	s->w[*n] = cnt;
	if (s->wsum) {
		s->cnt[*n] = cnt;
		s->w[*n] = s->wsum[pat] + (pat == 0 ? s->wsum[0x8000] : 0);
		s->wsum[pat] = 0;
		if (pat == 0)
			s->wsum[0x8000] = 0;
	}
	(*n)++;
}

/* Read the histogram back in ascending value order and clear it. Negative
 * patterns run downwards from 0xfbff, then zero (+0 and -0 together), then
 * positives upwards from 0x0001. Returns the number of distinct values. */
static int unique_values(lut_scratch *s)
{
	uint32_t *count = s->count;
	uint64_t *present = s->present;
	int n = 0;
	uint32_t zeros = count[0] + count[0x8000];
	count[0] = count[0x8000] = 0;
	present[0] &= ~(uint64_t)1;
	present[512] &= ~(uint64_t)1;
	for (int wd = 1007; wd >= 512; wd--) {
		for (uint64_t m = present[wd]; m;) {
			int bit = 63 - __builtin_clzll(m); /* highest pattern first */
			uint16_t pat = (uint16_t)(wd * 64 + bit);
			m &= ~((uint64_t)1 << bit);
			add_unique(s, &n, pat, count[pat]);
			count[pat] = 0;
		}
		present[wd] = 0;
	}
	if (zeros)
		add_unique(s, &n, 0, zeros);
	for (int wd = 0; wd < 496; wd++) {
		for (uint64_t m = present[wd]; m;) {
			int bit = __builtin_ctzll(m); /* lowest pattern first */
			uint16_t pat = (uint16_t)(wd * 64 + bit);
			m &= m - 1;
			add_unique(s, &n, pat, count[pat]);
			count[pat] = 0;
		}
		present[wd] = 0;
	}
	return n;
}

/* Weighted means of the clusters, rounded to fp16; unused entries 0. */
static void fill_table(const lut_scratch *s, int k, int nentries, uint16_t *lut)
{
	for (int c = 0; c < k; c++) {
		double s0 = 0, s1 = 0;
		for (int i = s->bounds[c]; i < s->bounds[c + 1]; i++) {
			s0 += s->w[i];
			s1 += s->w[i] * s->x[i];
		}
		lut[c] = f64_to_fp16(s1 / s0);
	}
	for (int c = k; c < nentries; c++)
		lut[c] = 0;
}

/* Each distinct value takes its nearest entry, the lower one on a tie.
 * Values and entries both ascend, so the nearest index only moves right.
 * Differences of fp16 values are exact in double, so the comparisons are.
 * Stores the group's squared error and energy in *sse and *energy. */
static void assign_nearest(lut_scratch *s, int n, const uint16_t *lut, int k, double *sse, double *energy)
{
	double v[256];
	for (int c = 0; c < k; c++)
		v[c] = fp16_to_f32(lut[c]);
	double err = 0, en = 0;
	int c = 0;
	for (int i = 0; i < n; i++) {
		double x = s->x[i];
		while (c + 1 < k && fabs(x - v[c + 1]) < fabs(x - v[c]))
			c++;
		s->index_of[s->pat[i]] = (uint8_t)c;
		double cnt = s->wsum ? s->cnt[i] : s->w[i]; /* the error figures count weights alike */
		err += cnt * (x - v[c]) * (x - v[c]);
		en += cnt * x * x;
	}
	s->index_of[0x8000] = s->index_of[0];
	*sse = err;
	*energy = en;
}

typedef struct group_out {
	uint16_t *lut;    /* [1 << bits] */
	uint8_t *indices; /* [n] */
	double sse, energy;
} group_out;

/* Palettize one group of n weights. Returns 0, or 1 + the offset of the
 * first NaN/inf weight. */
static size_t quantize_group(lut_scratch *s, const uint16_t *src, size_t n, int bits, const double *colw, size_t K,
			     group_out *out)
{
	if (histogram(s, src, n, colw, K)) {
		histogram_clear(s);
		for (size_t e = 0; e < n; e++)
			if ((src[e] & 0x7c00) == 0x7c00)
				return e + 1;
		BUG("non-finite pattern counted but not found");
	}
	scratch_reserve(s, NPAT); /* at most 63487 distinct finite values */
	int u = unique_values(s);
	int k = u < (1 << bits) ? u : 1 << bits;
	if (k < u) {
		kmeans_dp(s, u, k, !colw);
	} else {
		for (int i = 0; i <= u; i++)
			s->bounds[i] = i;
	}
	fill_table(s, k, 1 << bits, out->lut);
	assign_nearest(s, u, out->lut, k, &out->sse, &out->energy);
	const uint8_t *index_of = s->index_of;
	for (size_t e = 0; e < n; e++)
		out->indices[e] = index_of[src[e]];
	return 0;
}

/* ============================================================================
 * Threads: each worker owns a contiguous range of groups and its scratch
 * ========================================================================== */

typedef struct lut_job {
	const char *name;
	const uint16_t *w;
	int64_t per_channel, group; /* K, channels per group */
	int bits;
	const double *colw;   /* [K] weight of each input column, or NULL */
	lut_result *res;
	double *sse, *energy; /* [groups] */
	int64_t g0, g1;       /* this worker's groups */
	int64_t failed_group; /* first group that failed, or -1 */
	char err[512];        /* its message (errf is per thread) */
} lut_job;

static void *lut_worker(void *arg)
{
	lut_job *j = arg;
	lut_scratch s;
	scratch_init(&s);
	if (j->colw)
		s.wsum = xcalloc(NPAT, sizeof *s.wsum);
	size_t gn = (size_t)(j->group * j->per_channel);
	size_t nlut = (size_t)1 << j->bits;
	for (int64_t g = j->g0; g < j->g1; g++) {
		group_out o = {.lut = j->res->lut + (size_t)g * nlut, .indices = j->res->indices + (size_t)g * gn};
		size_t bad = quantize_group(&s, j->w + (size_t)g * gn, gn, j->bits, j->colw, (size_t)j->per_channel, &o);
		if (bad) {
			int64_t e = g * (int64_t)gn + (int64_t)(bad - 1);
			snprintf(j->err, sizeof j->err,
				 "tensor '%s': weight [%lld, %lld] is NaN or infinite (fp16 0x%04x); cannot palettize it",
				 j->name, (long long)(e / j->per_channel), (long long)(e % j->per_channel),
				 j->w[e]);
			j->failed_group = g;
			break;
		}
		j->sse[g] = o.sse;
		j->energy[g] = o.energy;
		progress_partial(gn * 2); /* a large tensor moves the progress line too */
	}
	scratch_release(&s);
	return NULL;
}

static int thread_count(int threads, int64_t groups)
{
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)(n < 256 ? n : 256) : 1;
	}
	return groups < threads ? (int)groups : threads;
}

/* Run the jobs; a job whose thread cannot be started runs here instead, so
 * the result is the same either way. */
static void run_jobs(lut_job *jobs, int n)
{
	pthread_t *tid = xcalloc((size_t)n, sizeof *tid);
	char *started = xcalloc((size_t)n, 1);
	for (int i = 1; i < n; i++)
		started[i] = pthread_create(&tid[i], NULL, lut_worker, &jobs[i]) == 0;
	lut_worker(&jobs[0]);
	for (int i = 1; i < n; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		else
			lut_worker(&jobs[i]);
	}
	free(tid);
	free(started);
}

/* ============================================================================
 * Public entry points
 * ========================================================================== */

/* Shared argument checks; `who` starts every message ("tensor 'x'"). */
static int check_shape(const char *who, int64_t channels, int64_t per_channel, int bits, int64_t group,
		       int64_t *gsize)
{
	uint64_t total;
	if (!lut_bits_valid(bits))
		return errf("%s: %d-bit LUT is not supported (use 1, 2, 3, 4, 6 or 8)", who, bits);
	if (channels < 1 || per_channel < 1 || mul_u64((uint64_t)channels, (uint64_t)per_channel, &total) ||
	    total > (uint64_t)INT64_MAX / 2)
		return errf("%s: bad shape [%lld, %lld] for palettization", who, (long long)channels,
			    (long long)per_channel);
	if (group < 0)
		return errf("%s: bad LUT group size %lld", who, (long long)group);
	if (group > 0 && channels % group != 0)
		return errf("%s: %lld output channels are not divisible by the LUT group size %lld", who,
			    (long long)channels, (long long)group);
	*gsize = group ? group : channels;
	return 0;
}

/* Error figures are summed in group order, one group after the other, so
 * they depend neither on the thread count nor on how the rows were cut
 * into blocks. */
void lut_error_add(lut_error *e, const lut_result *r)
{
	ASSERT(r->group_sse && r->group_energy);
	for (int64_t g = 0; g < r->groups; g++) {
		e->sse += r->group_sse[g];
		e->energy += r->group_energy[g];
	}
}

void lut_error_finish(const lut_error *e, double *rel_rms, double *snr_db)
{
	*rel_rms = e->energy > 0 ? sqrt(e->sse / e->energy) : 0;
	*snr_db = e->sse > 0 ? 10 * log10(e->energy / e->sse) : INFINITY;
}

static void set_quality(lut_result *r)
{
	lut_error e = {0, 0};
	lut_error_add(&e, r);
	lut_error_finish(&e, &r->rel_rms, &r->snr_db);
}

int lut_quantize(const char *name, const uint16_t *w, int64_t channels, int64_t per_channel, int bits,
		 int64_t group, int threads, lut_result *out)
{
	return lut_quantize_weighted(name, w, channels, per_channel, bits, group, NULL, threads, out);
}

int lut_quantize_weighted(const char *name, const uint16_t *w, int64_t channels, int64_t per_channel, int bits,
			  int64_t group, const double *colw, int threads, lut_result *out)
{
	memset(out, 0, sizeof *out);
	if (!name)
		name = "?";
	int64_t gsize;
	char who[256];
	snprintf(who, sizeof who, "tensor '%s'", name);
	if (check_shape(who, channels, per_channel, bits, group, &gsize) < 0)
		return -1;
	/* the histogram counts in uint32 */
	if ((uint64_t)gsize * (uint64_t)per_channel > UINT32_MAX)
		return errf("%s: a LUT group of %lld x %lld weights is too large (max 2^32-1)", who,
			    (long long)gsize, (long long)per_channel);
	for (int64_t k = 0; colw && k < per_channel; k++)
		if (!(colw[k] > 0) || !isfinite(colw[k]))
			return errf("%s: column weight %lld is %g; weights must be positive and finite", who, (long long)k,
				    colw[k]);
	int64_t groups = channels / gsize;
	size_t nw = (size_t)(channels * per_channel);
	lut_result r = {
		.bits = bits, .channels = channels, .per_channel = per_channel, .group = gsize, .groups = groups,
		.lut = xcalloc((size_t)groups << bits, sizeof *r.lut), .indices = xmalloc(nw),
	};
	double *sse = xcalloc((size_t)groups, sizeof *sse), *energy = xcalloc((size_t)groups, sizeof *energy);
	int nt = thread_count(threads, groups);
	lut_job *jobs = xcalloc((size_t)nt, sizeof *jobs);
	for (int i = 0; i < nt; i++)
		jobs[i] = (lut_job){
			.name = name, .w = w, .per_channel = per_channel, .group = gsize, .bits = bits, .colw = colw,
			.res = &r, .sse = sse, .energy = energy,
			.g0 = groups * i / nt, .g1 = groups * (i + 1) / nt, .failed_group = -1,
		};
	run_jobs(jobs, nt);
	/* The first failing group in tensor order decides the message. */
	int rc = 0;
	for (int i = 0; i < nt && rc == 0; i++)
		if (jobs[i].failed_group >= 0)
			rc = errf("%s", jobs[i].err);
	r.group_sse = sse;
	r.group_energy = energy;
	if (rc == 0)
		set_quality(&r);
	else
		lut_result_release(&r);
	free(jobs);
	if (rc == 0)
		*out = r;
	return rc;
}

void lut_result_release(lut_result *r)
{
	if (!r)
		return;
	free(r->lut);
	free(r->indices);
	free(r->group_sse);
	free(r->group_energy);
	free(r->packed);
	memset(r, 0, sizeof *r);
}

int lut_dequantize(const uint16_t *lut, const uint8_t *indices, int bits, int64_t channels,
		   int64_t per_channel, int64_t group, uint16_t *out)
{
	int64_t gsize;
	if (check_shape("LUT dequantize", channels, per_channel, bits, group, &gsize) < 0)
		return -1;
	size_t gn = (size_t)(gsize * per_channel), nlut = (size_t)1 << bits;
	int64_t groups = channels / gsize;
	for (int64_t g = 0; g < groups; g++) {
		const uint16_t *L = lut + (size_t)g * nlut;
		const uint8_t *idx = indices + (size_t)g * gn;
		uint16_t *o = out + (size_t)g * gn;
		for (size_t e = 0; e < gn; e++) {
			if (idx[e] >= nlut)
				return errf("LUT index %u at weight %zu does not fit in %d bits", idx[e],
					    (size_t)g * gn + e, bits);
			o[e] = L[idx[e]];
		}
	}
	return 0;
}
