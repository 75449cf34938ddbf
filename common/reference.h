/* reference.h: the fp32 reference forward pass (HuggingFace semantics).
 *
 * Every conversion is proven by running it side by side with this: a plain
 * CPU forward pass computed straight from the safetensors, one token at a
 * time, with the numerics of transformers' LlamaForCausalLM,
 * Qwen2ForCausalLM and Qwen3ForCausalLM loaded in float32 (RMSNorm in fp32,
 * rotate-half RoPE with HF's inverse frequencies including the linear and
 * llama3 rope_scaling, grouped-query attention, SiLU MLP, tied or separate
 * LM head). Where ANEMLL deviates from HF (anemll-interface.md section 2),
 * this follows HF; ref_options.rope_anemll_compat reproduces ANEMLL's RoPE
 * so its packages can be compared too.
 *
 * Weights are never copied: matrix-vector products read the mmapped bf16,
 * f16 or f32 rows of the hf_model directly, so memory is the KV cache
 * (2 * layers * kv_heads * context * head_dim floats) plus a few
 * activation vectors and the (1-D) norm gains and biases in fp32.
 * Speed is bounded by memory bandwidth: one token reads every weight once
 * (a 0.6B bf16 model: ~1.2 GB per token).
 *
 * Gemma3 is not implemented yet: ref_open refuses it with one clear line.
 */
#ifndef ANEMAKE_REFERENCE_H
#define ANEMAKE_REFERENCE_H

#include "hfmodel.h"

#include <stdint.h>

typedef struct ref_options {
	int context;            /* KV-cache length: positions 0..context-1;
	                         * 0: min(max_position_embeddings, 2048) */
	int threads;            /* mat-vec threads: 0 one per online CPU (at most 8),
	                         * 1 none; results are identical for any count */
	int rope_anemll_compat; /* RoPE as ANEMLL 0.3.5 computes it (ref_rope_inv_freq) */
} ref_options;

typedef struct ref_model ref_model;

/* Prepare a forward pass over `hf`, which must stay open until ref_close.
 * `opt` may be NULL (all defaults). NULL with one error line on an
 * unsupported architecture, rope_scaling type or tensor shape. */
ref_model *ref_open(const hf_model *hf, const ref_options *opt);

/* Free everything; NULL-tolerant. */
void ref_close(ref_model *m);

/* Run `token` at position `pos` (0 <= pos <= number of positions already
 * cached, pos < context): writes its keys/values at pos, attends over
 * 0..pos, and forgets anything cached after pos. Fills logits_out
 * [vocab_size] (NULL skips the LM head, e.g. while feeding a prompt) and
 * hidden_out [hidden_size] (optional) with the final hidden state after the
 * final norm, i.e. the LM head's input. 0, or -1 with an error line (token
 * or position out of range). */
int ref_forward(ref_model *m, int32_t token, int pos, float *logits_out, float *hidden_out);

/* Forget the cached positions (the next call starts at pos 0). Peaks stay. */
void ref_reset(ref_model *m);

/* KV-cache length in tokens. */
int ref_context(const ref_model *m);

/* Residual-stream peaks for the FP16 preflight: [num_hidden_layers] values,
 * peak[l] = max |h| of the output of decoder layer l over every element and
 * every ref_forward call since ref_open or ref_clear_peaks (NaN ignored). */
const float *ref_layer_peaks(const ref_model *m);
void ref_clear_peaks(ref_model *m);

/* RoPE inverse frequencies [head_dim / 2] of config `c`, as HF computes them
 * in float32: 1 / theta^(2i/d), then rope_scaling (linear: / factor;
 * llama3: HF's frequency-band formula). With anemll_compat, ANEMLL's
 * version instead: Llama and Qwen2 use base theta * factor whenever
 * rope_scaling has a factor (no band formula), Qwen3 ignores rope_scaling.
 * 0, or -1 with an error naming an unsupported rope_scaling type. */
int ref_rope_inv_freq(const hf_config *c, int anemll_compat, float *inv_freq);

#endif
