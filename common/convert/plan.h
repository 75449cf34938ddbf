/* plan.h: how many FFN chunks a model needs, ANEMLL's calc_chunk_split rule.
 *
 * A chunk's weight file must stay under the Neural Engine's practical limit
 * (about 1 GB on iOS). ANEMLL sizes each layer from the config alone
 * (anemll-interface.md section 8): fp16 bytes of q, k, v, o (+ biases), the
 * q/k norms of Qwen 3 / Gemma 3, gate, up, down (+ biases) and the layer's
 * norms; chunks split the layers as the converters do (the first L mod N
 * chunks one layer longer); a LUT of b bits scales bytes by b/16; and the
 * recommendation is the smallest N whose largest chunk, times an overhead
 * factor (1.10), fits max_chunk_mb. Embeddings and the LM head do not enter.
 */
#ifndef ANEMAKE_PLAN_H
#define ANEMAKE_PLAN_H

#include "checkpoint/hfconfig.h"

#include <stdint.h>
#include <stdio.h>

/* fp16 bytes of one decoder layer's weights. */
uint64_t plan_layer_bytes(const hf_config *c);
/* Bytes of the largest chunk of n at lut_bits (0 or 16: fp16), before overhead. */
uint64_t plan_max_chunk_bytes(const hf_config *c, int n, int lut_bits);
/* Smallest chunk count whose largest chunk * overhead fits max_chunk_mb
 * (MiB), else the layer count. */
int plan_recommend(const hf_config *c, int lut_bits, double max_chunk_mb, double overhead);
/* A human-readable report: per-layer size, chunk sizes for 1..12 chunks at
 * fp16/LUT8/6/4, and the recommendation. */
void plan_print(FILE *out, const hf_config *c, int lut_bits, double max_chunk_mb, double overhead);

#endif
