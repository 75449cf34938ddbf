/* calib.h: calibration statistics from the fp32 reference.
 *
 * Runs the reference forward pass (reference.h) over a calibration text's
 * tokens, in windows of `context` positions (each starts the cache
 * afresh), and records for every linear layer the mean square of each
 * channel of its input, E[x_k^2] over the tokens (calstats.h): q/k/v_proj
 * share the attention's normed input, gate/up_proj the MLP's, o_proj sees
 * the attention output, down_proj act(gate) * up, and the LM head
 * (CALSTATS_HEAD) the final normed hidden state. Sums run in double in
 * token order, so the file does not depend on the thread count.
 */
#ifndef ANEMAKE_CALIB_H
#define ANEMAKE_CALIB_H

#include "base/calstats.h"
#include "checkpoint/hfmodel.h"

#include <stddef.h>
#include <stdint.h>

/* Fill *out (empty on entry). 0, or -1 with one errf() line. */
int calib_collect(const hf_model *hf, const int32_t *ids, size_t n, int context, int threads, calstats *out);

#endif
