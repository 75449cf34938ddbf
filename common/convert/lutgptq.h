/* lutgptq.h: GPTQ-style error compensation for LUT palettization.
 *
 * k-means (lut.h) gives each group its table and each weight the nearest
 * entry, which minimises the weight error. What matters is the layer's
 * output error over the calibration text: for a row w of W and its
 * palettized row q, E[((w - q) . x)^2] = (w - q)^T H (w - q) with
 * H = E[x x^T], the input's second moments (calstats.h, the "#xtx"
 * entries). Rounding one weight shifts that error in a way the weights not
 * yet rounded can partly cancel: GPTQ (Frantar et al. 2022, the optimal
 * brain surgeon update) rounds the columns one at a time, here in order of
 * decreasing H_kk, each to its group's nearest table entry, and spreads
 * its error over the remaining columns of the row through the upper
 * Cholesky factor U of H^-1:
 *     w_i -= (w_j - q_j) / U_jj * U_ji   for the columns i after j.
 * H is damped first, H + LUT_GPTQ_DAMP mean(diag H) I (times 10 until it
 * factors); the error below is measured with the damped H. GPTQ is
 * greedy, so coordinate descent follows: each weight in turn (same order)
 * moves to the table entry that lowers its row's error most, if one does
 * (the lowest such index on a tie), until a pass moves nothing or after
 * LUT_GPTQ_DESCENT passes. Then, `refits` times: every table entry is refitted by least squares to
 * its group's assignment (the entries minimising sum over the group's rows
 * of (w - q)^T H (w - q), rounded to fp16; an entry no weight takes keeps
 * its value) and the rows are assigned again with the new table.
 * Of the assignments met (k-means' nearest one included) each group keeps
 * the one with the least summed output error, so the result is never worse
 * than k-means by that measure. Groups with fewer distinct values than
 * entries (lossless) are left as they are.
 *
 * Tables may then not ascend (Core ML does not ask them to). Everything is
 * computed in double, one group at a time in a fixed order, so the result
 * does not depend on the thread count. Cost: O(K^3) once for U, O(K^2)
 * per row and pass, K^2 doubles of memory: meant for small K (the
 * calibration step refuses models whose statistics would be too large).
 */
#ifndef ANEMAKE_LUTGPTQ_H
#define ANEMAKE_LUTGPTQ_H

#include "convert/lut.h"

#include <stdint.h>

/* Least-squares table refits (and reassignments) lut_gptq's callers use. */
#define LUT_GPTQ_REFITS 2
/* The damping, times mean(diag H), and the most coordinate-descent passes. */
#define LUT_GPTQ_DAMP 0.001
#define LUT_GPTQ_DESCENT 8

/* Reassign (and refit) r, the palettization of the fp16 weight w
 * [r->channels, r->per_channel] that lut_quantize made, with xtx the
 * [per_channel, per_channel] second moments of its input (row-major,
 * symmetric). threads 0: every online core. rel_rms and snr_db are
 * recomputed. 0, or -1 with errf() naming the tensor (xtx not finite, or
 * not positive semi-definite enough to factor after damping). */
int lut_gptq(const char *name, const uint16_t *w, const double *xtx, int refits, int threads, lut_result *r);

/* sum over rows of (w - q)^T xtx (w - q): the output error of r, for tests
 * and reports (undamped). */
double lut_output_error(const uint16_t *w, const double *xtx, const lut_result *r);

#endif
