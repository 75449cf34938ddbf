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
#include "checkpoint/hfmodel.h"

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

/* The values a conversion is asked for, checked against the model before
 * any stage runs (mk/plan.sh, through ffn --plan). Messages name the values
 * as the user gave them: make's variables (CONTEXT=...) or the flags. */
typedef struct plan_request {
	int context, batch;
	const char *context_name, *batch_name;
} plan_request;

/* Each check one errf() line, -1 at the first failure: BATCH above CONTEXT;
 * CONTEXT above max_position_embeddings; Gemma 3's
 * sliding window not a multiple of BATCH while CONTEXT exceeds it (chat.py's
 * prefill batch would straddle it); bos_token_id outside the vocabulary;
 * layers in the checkpoint beyond num_hidden_layers (they would be dropped);
 * tie_word_embeddings false without lm_head.weight; a tokenizer.json or
 * tokenizer_config.json that does not load. */
int plan_check(const hf_model *hf, const plan_request *r);

#endif
