/* lutauto.h: mixed-precision palettization to a size budget.
 *
 * make's LUT2=auto:BITS[,GROUP] (with CALIB): every layer tensor a LUT
 * applies to is palettized, activation-aware (lut.h; with GPTQ=1 also
 * error-compensated, lutgptq.h), at each width of LUTAUTO_WIDTHS; its
 * error at width b is what the caller measures (stages/lutauto.c: the
 * model's mean KL on the calibration text with that tensor alone so
 * palettized), and its cost the bytes written:
 * packed indices plus the fp16 tables. The widths chosen minimise the
 * total error with total bytes at most BITS x weights / 8: a
 * multiple-choice knapsack solved exactly by dynamic programming over
 * bytes (in units of budget / 65536 when the budget is larger, costs
 * rounded up, so the budget always holds).
 * The plan is LUT overrides (lutover.h), one exact tensor name per line.
 */
#ifndef ANEMAKE_LUTAUTO_H
#define ANEMAKE_LUTAUTO_H

#include <stddef.h>
#include <stdint.h>

#define LUTAUTO_NWIDTHS 5
extern const int LUTAUTO_WIDTHS[LUTAUTO_NWIDTHS]; /* 2, 3, 4, 6, 8 */
#define LUTAUTO_MAXOPT (2 * LUTAUTO_NWIDTHS)

/* One way to palettize a tensor: its width and group, what it costs. */
typedef struct lutauto_option {
	int bits;
	int64_t group;  /* channels per table, 0: one per tensor */
	double err;
	uint64_t bytes;
} lutauto_option;

typedef struct lutauto_tensor {
	char *name;      /* the checkpoint's */
	uint64_t weights;
	int nopt;
	lutauto_option opt[LUTAUTO_MAXOPT];
	int choice;      /* out: index into opt */
} lutauto_tensor;

/* Choose every t[i].choice for a budget of `budget` bytes; among equally
 * good options the first listed. 0, or -1 with errf() when even the
 * cheapest options exceed it. */
int lutauto_choose(lutauto_tensor *t, size_t n, uint64_t budget);

#endif
