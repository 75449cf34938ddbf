/* reference.h: the fp32 reference forward pass (HuggingFace semantics).
 *
 * Every conversion is proven by running it side by side with this: a plain
 * CPU forward pass computed straight from the safetensors, one token at a
 * time, with the numerics of transformers' LlamaForCausalLM,
 * Qwen2ForCausalLM, Qwen3ForCausalLM and Gemma3ForCausalLM loaded in
 * float32 (RMSNorm in fp32, rotate-half RoPE with HF's inverse frequencies
 * including the linear and llama3 rope_scaling, grouped-query attention,
 * SiLU or tanh-GELU MLP, tied or separate LM head). One code path, driven
 * by the arch traits; for Gemma 3: embeddings times sqrt(hidden), (1 + w)
 * gains on every norm, four norms per layer
 *   h = h + post_attention_norm(attn(input_norm(h)))
 *   h = h + post_feedforward_norm(mlp(pre_feedforward_norm(h)))
 * per-head q/k norms before RoPE, attention scale 1/sqrt(query_pre_attn_
 * scalar), sliding layers attend to keys with pos - t < sliding_window and
 * rotate with base rope_local_base_freq and default (unscaled) RoPE, full
 * layers with rope_theta and rope_scaling (HF scales only the global
 * rotary embedding). Logit soft-capping is refused.
 * Where ANEMLL deviates from HF (anemll-interface.md section 2), this
 * follows HF; ref_options.rope_anemll_compat reproduces ANEMLL's RoPE so its
 * packages can be compared too.
 *
 * Weights are never copied: matrix-vector products read the mmapped bf16,
 * f16 or f32 rows of the hf_model directly, so memory is the KV cache
 * (2 * layers * kv_heads * context * head_dim floats) plus a few
 * activation vectors and the (1-D) norm gains and biases in fp32.
 * Speed is bounded by memory bandwidth: one token reads every weight once
 * (a 0.6B bf16 model: ~1.2 GB per token). The dot products use AVX2 when
 * the CPU has it, with the plain loop's bits (ANEMAKE_REF_PLAIN=1 forces
 * the plain loop, for the test that compares them).
 *
 * FP16 emulation (for the FP16 preflight, anemll-interface.md 9): with
 * ref_options.fp16_activations every activation the Neural Engine stores in
 * fp16 is rounded to fp16 (nearest even, overflow to +-inf), so a model
 * whose residual stream exceeds 65504 gives inf/NaN logits here as on the
 * device; clamp and fp16_scale reproduce ANEMLL's two remedies (--clamp,
 * --fp16-scale) so their effect can be measured before converting.
 */
#ifndef ANEMAKE_REFERENCE_H
#define ANEMAKE_REFERENCE_H

#include "checkpoint/hfmodel.h"

#include <stdint.h>

/* Where ref_options.tap observes a linear layer's input. */
typedef enum ref_tap_site {
	REF_TAP_QKV,     /* q/k/v_proj's input: the normed hidden state [hidden] */
	REF_TAP_O,       /* o_proj's input: the attention output [heads * head_dim] */
	REF_TAP_GATE_UP, /* gate/up_proj's input: the normed hidden state [hidden] */
	REF_TAP_DOWN,    /* down_proj's input: act(gate) * up [intermediate] */
} ref_tap_site;

typedef struct ref_options {
	int context;            /* KV-cache length: positions 0..context-1;
	                         * 0: min(max_position_embeddings, 2048) */
	int threads;            /* mat-vec threads: 0 one per online CPU (at most 8),
	                         * 1 none; results are identical for any count */
	int rope_anemll_compat; /* RoPE as ANEMLL 0.3.5 computes it (ref_rope_inv_freq) */

	/* FP16 emulation; all zero: plain fp32. */
	int fp16_activations;   /* round to fp16 (overflow to +-inf): the embeddings,
	                         * every norm output (q/k norms too), q, k, v (so the
	                         * KV cache), attention scores (unless the arch keeps
	                         * them in fp32) and output, o_proj output, the MLP
	                         * gate, up and product, its output, the residual
	                         * after each add, and the logits */
	double clamp;           /* > 0: clamp the residual stream to [-clamp, clamp]
	                         * after each residual add (ANEMLL's --clamp);
	                         * applied before the fp16 rounding */
	double fp16_scale;      /* alpha in (0, 1]: ANEMLL's weight-only
	                         * --fp16-scale: embeddings times alpha, and the
	                         * post_attention / post_feedforward norm gains
	                         * alpha * (1 + w), so the residual stream is
	                         * alpha times the original and the final norm
	                         * cancels it. Needs four norms per layer (Gemma 3);
	                         * 0: off */
	/* Observation (calibration statistics, verify/calib.h): called with each
	 * linear layer's input of decoder layer `layer` as it is multiplied; NULL: none. */
	void (*tap)(void *ctx, int layer, ref_tap_site site, const float *x, int n);
	void *tap_ctx;
	/* One decoder-layer weight matrix taken from memory instead of the
	 * checkpoint (fp32, row-major, the tensor's shape; it must outlive the
	 * model): what one palettized tensor does to the output. NULL: none. */
	const char *replace_name;
	const float *replace_data;
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

/* ref_forward over positions pos0 .. pos0+n-1 with tokens[0..n) (teacher
 * forcing), each weight read once per up to 64 positions: the same bits as
 * n ref_forward calls in order. Outputs for positions from pos0 + first_out
 * on: logits [n - first_out][vocab], hidden [n - first_out][hidden_size]
 * (either may be NULL). */
int ref_forward_n(ref_model *m, const int32_t *tokens, int pos0, int n, int first_out, float *logits, float *hidden);

/* Forget the cached positions (the next call starts at pos 0). Peaks stay. */
void ref_reset(ref_model *m);

/* KV-cache length in tokens. */
int ref_context(const ref_model *m);

/* Residual-stream peaks for the FP16 preflight: [num_hidden_layers] values,
 * peak[l] = max |h| of the output of decoder layer l over every element and
 * every ref_forward call since ref_open or ref_clear_peaks (NaN ignored). */
const float *ref_layer_peaks(const ref_model *m);
void ref_clear_peaks(ref_model *m);

/* The first decoder layer (0-based) whose output contained inf or NaN in
 * any ref_forward call since ref_open or ref_clear_peaks; -1 if none. With
 * fp16_activations this is where an fp16 overflow first reaches the
 * residual stream. */
int ref_first_nonfinite_layer(const ref_model *m);

/* RoPE inverse frequencies [head_dim / 2] of config `c`, as HF computes them
 * in float32: 1 / theta^(2i/d), then rope_scaling (linear: / factor;
 * llama3: HF's frequency-band formula). With anemll_compat, ANEMLL's
 * version instead: Llama and Qwen2 use base theta * factor whenever
 * rope_scaling has a factor (no band formula), Qwen3 and Gemma3 ignore
 * rope_scaling. These are the frequencies of full-attention layers; Gemma 3's
 * sliding layers use 1 / rope_local_base_freq^(2i/d) unscaled.
 * 0, or -1 with an error naming an unsupported rope_scaling type. */
int ref_rope_inv_freq(const hf_config *c, int anemll_compat, float *inv_freq);

#endif
