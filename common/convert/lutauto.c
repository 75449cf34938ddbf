/* lutauto.c: widths per tensor within a byte budget (see lutauto.h). */
#include "convert/lutauto.h"
#include "base/util.h"

#include <math.h>
#include <stdlib.h>

const int LUTAUTO_WIDTHS[LUTAUTO_NWIDTHS] = {2, 3, 4, 6, 8};

/* The DP's resolution: at most this many byte units. */
#define MAX_UNITS 65536

int lutauto_choose(lutauto_tensor *t, size_t n, uint64_t budget)
{
	uint64_t least = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t m = UINT64_MAX;
		for (int b = 0; b < t[i].nopt; b++)
			m = t[i].opt[b].bytes < m ? t[i].opt[b].bytes : m;
		least += m;
	}
	if (least > budget)
		return errf("a budget of %llu bytes is below the least any choice writes (%llu bytes)",
			    (unsigned long long)budget, (unsigned long long)least);
	uint64_t unit = budget / MAX_UNITS + 1;
	size_t cap = (size_t)(budget / unit);
	/* best[j]: least error of the tensors so far within j units */
	double *best = xcalloc(cap + 1, sizeof *best), *next = xmalloc((cap + 1) * sizeof *next);
	uint8_t *pick = xmalloc(xmul(n ? n : 1, cap + 1));
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = pick + i * (cap + 1);
		for (size_t j = 0; j <= cap; j++) {
			next[j] = INFINITY;
			p[j] = 0;
			for (int b = 0; b < t[i].nopt; b++) {
				uint64_t c = (t[i].opt[b].bytes + unit - 1) / unit;
				if (c > j)
					continue;
				double e = best[j - c] + t[i].opt[b].err;
				if (e < next[j]) {
					next[j] = e;
					p[j] = (uint8_t)b;
				}
			}
		}
		double *tmp = best;
		best = next;
		next = tmp;
	}
	int rc = 0;
	if (n && !isfinite(best[cap])) /* rounding the costs up cost the narrowest fit */
		rc = errf("a budget of %llu bytes is too tight for the cheapest choices at this resolution",
			  (unsigned long long)budget);
	for (size_t i = n, j = cap; rc == 0 && i-- > 0;) {
		int b = pick[i * (cap + 1) + j];
		t[i].choice = b;
		j -= (size_t)((t[i].opt[b].bytes + unit - 1) / unit);
	}
	free(best);
	free(next);
	free(pick);
	return rc;
}
