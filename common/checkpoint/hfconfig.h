/* hfconfig.h: a HuggingFace config.json as one struct.
 *
 * hf_config_load reads config.json, picks the architecture (arch.h), fills
 * every field the converter needs, applying the HF config-class default of
 * the architecture when a field is absent, and refuses what anemake cannot
 * convert: unknown architectures, pre-quantized checkpoints
 * (quantization_config, float8/int8 torch_dtype), inconsistent sizes.
 *
 * Multimodal configs (Gemma3ForConditionalGeneration, model_type "gemma3")
 * keep the text model in "text_config": it is read instead, with
 * model_type/architectures and a few top-level fields copied down where it
 * lacks them, and tensor_scope is set to "language_model." (the text
 * weights' names carry that prefix; vision tensors are ignored). Such nested
 * configs are written by transformers as a diff against the class defaults,
 * so absent sizes take the defaults in the arch table.
 *
 * hidden_size == num_attention_heads * head_dim is NOT required: Qwen3 and
 * Gemma3 project to a different width (e.g. Qwen3-0.6B: 1024 vs 16 * 128).
 */
#ifndef ANEMAKE_HFCONFIG_H
#define ANEMAKE_HFCONFIG_H

#include "checkpoint/arch.h"

#include <stddef.h>

typedef enum hf_rope_kind {
	ROPE_NONE,   /* null, absent or "default" */
	ROPE_LINEAR, /* positions divided by factor */
	ROPE_LLAMA3, /* Llama 3.1 frequency bands */
	ROPE_LONGROPE, /* Phi3 longrope ("su"): per-frequency short/long factors */
	ROPE_OTHER,  /* anything else: type kept in .type for the stage to refuse */
} hf_rope_kind;

typedef struct hf_rope_scaling {
	hf_rope_kind kind;
	char *type;                        /* rope_type (or legacy "type"); NULL for none */
	double factor;                     /* linear, llama3 (0 if absent for other kinds) */
	double low_freq_factor;            /* llama3 */
	double high_freq_factor;           /* llama3 */
	int original_max_position_embeddings; /* llama3, longrope */
	/* longrope: inv_freq[i] / short_factor[i] at positions below
	 * original_max_position_embeddings, / long_factor[i] from there on (as
	 * HF computes it token by token), cos and sin times attention_factor */
	double *short_factor, *long_factor; /* [n_factors] = rotary_dim / 2 */
	int n_factors;
	double attention_factor;
} hf_rope_scaling;

typedef struct hf_config {
	char *path;                  /* config file, for messages */
	char *model_type;            /* as written (text_config's, when nested) */
	const arch_info *arch;
	const char *tensor_scope;    /* "" or "language_model." (nested text_config) */

	int hidden_size;
	int intermediate_size;
	int num_hidden_layers;
	int num_attention_heads;
	int num_key_value_heads;     /* default: num_attention_heads */
	int head_dim;                /* config value, else hidden_size / heads */
	int vocab_size;
	int max_position_embeddings;
	double rms_norm_eps;
	double rope_theta;
	hf_rope_scaling rope_scaling;
	int rotary_dim;              /* rotated dims per head: head_dim * partial_rotary_factor */
	double attn_scale;           /* attention logits scale: query_pre_attn_scalar ** -0.5
	                                (head_dim for most), Granite's attention_multiplier */
	int tie_word_embeddings;
	int attention_bias;          /* q/k/v (and, per arch, o) projections have biases */
	int mlp_bias;
	char *hidden_act;            /* hidden_act or hidden_activation, as written */
	arch_act act;

	int bos_token_id;            /* -1 when absent */
	int *eos_token_ids;          /* eos_token_id: one int or a list */
	int n_eos;
	char *torch_dtype;           /* torch_dtype or dtype; NULL when absent */

	/* sliding-window attention */
	int use_sliding_window;      /* effective: Gemma3 always, others if use_sliding_window */
	int sliding_window;          /* window in tokens, 0 when no sliding window */
	unsigned char *layer_sliding;/* [num_hidden_layers]: 1 sliding, 0 full attention */

	/* Granite (arch mup_multipliers; 1 for everyone else) */
	double embedding_multiplier; /* embeddings times this */
	double residual_multiplier;  /* each sublayer's output times this before the residual add */
	double logits_scaling;       /* logits divided by this */

	/* SmolLM3 (arch nope_layers) */
	unsigned char *layer_nope;   /* [num_hidden_layers]: 1 for a layer without RoPE */

	/* Gemma3 */
	double query_pre_attn_scalar;/* attention scale is 1/sqrt(this) */
	double rope_local_base_freq; /* RoPE base of sliding layers */
	int has_final_logit_softcapping;
	double final_logit_softcapping;
	int has_attn_logit_softcapping;
	double attn_logit_softcapping;
} hf_config;

/* Read and check `path` (a config.json). 0, or -1 with one error line that
 * names the file and the field. On failure *c is released. */
int hf_config_load(hf_config *c, const char *path);

/* The same from text in memory; `label` names it in messages. */
int hf_config_parse(hf_config *c, const char *text, size_t len, const char *label);

/* Free what *c owns; NULL-tolerant, idempotent. */
void hf_config_release(hf_config *c);

/* 1 when layer i uses sliding-window attention. */
int hf_config_layer_sliding(const hf_config *c, int layer);

/* Dims of each head RoPE rotates: rotary_dim, or head_dim when unset. */
int hf_config_rotary_dim(const hf_config *c);

/* 1 when layer i rotates q and k (every layer but SmolLM3's NoPE ones). */
int hf_config_layer_rope(const hf_config *c, int layer);

#endif
