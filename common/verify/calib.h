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

/* The calibration text at `path` tokenized with the model's tokenizer.json
 * (HF's defaults: BOS added), at most max tokens (0: all). *ids: caller
 * frees. 0, or -1 with errf() (fewer than two tokens is an error). */
int calib_tokens(const char *path, const hf_model *hf, size_t max, int32_t **ids, size_t *n);

/* Fill *out (empty on entry). With xtx, also E[x x^T] of every one of
 * those inputs (entries "<name>#xtx", [n][n] row-major: GPTQ, lutgptq.h),
 * refused when they would take more than CALIB_XTX_MAX_BYTES (models
 * with layers wider than a few thousand channels). 0, or -1 with one errf() line. */
#define CALIB_XTX_MAX_BYTES (1024.0 * 1024 * 1024)
int calib_collect(const hf_model *hf, const int32_t *ids, size_t n, int context, int threads, int xtx,
		  calstats *out);
/* 0 when the second moments of this model's layer inputs fit in
 * CALIB_XTX_MAX_BYTES, else -1 with that errf() line (make's plan asks
 * first, so GPTQ=1 is refused before any step runs). */
int calib_xtx_fits(const hf_config *c);

/* Sensitivity of the output to one weight (lutauto): the reference's
 * next-token distributions over ids[0..n) (one window, n <= the context)
 * are kept (n x vocab floats), then calib_kl_measure runs the tokens again
 * with decoder-layer weight `name` replaced by w (fp32, its shape) and
 * gives the mean over the tokens of KL(reference || replaced), in nats. */
typedef struct calib_kl calib_kl;
calib_kl *calib_kl_open(const hf_model *hf, const int32_t *ids, size_t n, int threads);
int calib_kl_measure(calib_kl *k, const char *name, const float *w, double *kl);
void calib_kl_close(calib_kl *k);

#endif
