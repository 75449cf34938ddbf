/* arch.h: the supported model architectures and how they differ.
 *
 * ONE table (arch.c) lists every architecture anemake converts and every
 * trait in which they differ: which config model_type strings select it,
 * ANEMLL's file-name prefix, the LM-head split count, norms, biases,
 * activation, embedding scale, and the HuggingFace config defaults that
 * apply when a field is absent. Code elsewhere reads these traits; it never
 * branches on a model_type string.
 *
 * Detection follows ANEMLL (anemll-interface.md 1.3) with one deliberate
 * difference: an unknown model is an error listing what is supported, never
 * silently treated as Llama.
 */
#ifndef ANEMAKE_ARCH_H
#define ANEMAKE_ARCH_H

typedef enum arch_id {
	ARCH_LLAMA,
	ARCH_QWEN2,  /* Qwen2 / Qwen2.5: ANEMLL's "qwen25" */
	ARCH_QWEN3,  /* Qwen3: ANEMLL's "qwen" */
	ARCH_GEMMA3, /* Gemma 3 text model (gemma3_text, or gemma3 with text_config) */
	ARCH_MISTRAL,/* Mistral, Mistral-Nemo, Ministral */
	ARCH_GRANITE,/* IBM Granite 3.x dense */
	ARCH_OLMO2,  /* AI2 OLMo 2 */
	ARCH_SMOLLM3,/* HF SmolLM3 */
	ARCH_PHI3,   /* Phi-3, Phi-3.5-mini, Phi-4-mini */
	ARCH_COUNT
} arch_id;

typedef enum arch_act {
	ACT_SILU,      /* x * sigmoid(x) */
	ACT_GELU_TANH, /* GELU, tanh approximation ("gelu_pytorch_tanh") */
} arch_act;

/* HuggingFace config-class defaults: what a field means when config.json
 * omits it. The "nested" sizes apply only to configs nested in text_config,
 * which transformers writes as a diff against the class defaults (flat
 * configs always carry their sizes); 0 means "no default: required". */
typedef struct arch_defaults {
	int tie_word_embeddings;
	int attention_bias;          /* Qwen2 has q/k/v biases unless told otherwise */
	double rope_theta;
	double rms_norm_eps;
	int max_position_embeddings;
	int sliding_window;          /* when the architecture always uses one */
	double rope_local_base_freq; /* Gemma3 local-layer RoPE base */
	int sliding_window_pattern;  /* every Nth layer is global (Gemma3) */
	double query_pre_attn_scalar;/* Gemma3 attention scale is 1/sqrt(this) */
	const char *hidden_act;
	/* nested text_config only */
	int vocab_size, hidden_size, intermediate_size, num_hidden_layers;
	int num_attention_heads, num_key_value_heads, head_dim;
	int nested_sliding_window;
	int original_max_position_embeddings; /* longrope's pretrained context (Phi3) */
} arch_defaults;

typedef struct arch_info {
	arch_id id;
	const char *name;               /* "llama", "qwen2", "qwen3", "gemma3", "mistral", ... */
	const char *prefix;             /* ANEMLL file-name prefix: llama, qwen25, qwen, gemma3, and
	                                   the family name for the others */
	const char *const *model_types; /* accepted model_type values, NULL-terminated */
	const char *const *classes;     /* accepted architectures[0], lower-cased, NULL-terminated */
	int lm_head_splits;             /* 8 Llama, 16 Qwen/Gemma; 0: by vocabulary
	                                   (arch_lm_head_splits) */
	int qk_norm;                    /* per-head RMSNorm on q and k before RoPE */
	int o_bias_with_attention_bias; /* attention_bias also gives o_proj a bias (not Qwen2) */
	int norm_plus_one;              /* RMSNorm gain is (1 + w), not w */
	arch_act act;                   /* MLP activation */
	int embed_scale_sqrt_hidden;    /* embeddings multiplied by sqrt(hidden_size) */
	int four_norms;                 /* pre/post feed-forward norms besides input/post-attention */
	int o_proj_linear;              /* ANEMLL keeps o_proj a 2-D linear (MIL linear), not a conv */
	int attn_fp32;                  /* ANEMLL computes attention logits/softmax in fp32 */
	int always_sliding_window;      /* sliding-window layers regardless of use_sliding_window */
	int split_kv_cache;             /* ANEMLL's Gemma 3 layout: both caches, local and global, in
	                                   every chunk even within the window (needs both layer types) */
	int ring_cache;                 /* sliding-window layers keep a local ring cache of window
	                                   slots (kv_cache_local) with rotate functions once the
	                                   context exceeds the window (graph_ring) */
	int lut_min_elements;           /* palettize only tensors with MORE elements than this
	                                   (0: coremltools' 2048; ANEMLL's Gemma 3 converter: 8192) */
	int softmax_op;                 /* attention uses the MIL softmax op, not its expansion */
	const char *tensor_prefix;      /* decoder tensors live under this name ("model.") */
	int window_when_set;            /* a set sliding_window applies to every layer, without
	                                   use_sliding_window (Mistral, Phi3) */
	int mup_multipliers;            /* Granite: embedding_multiplier, residual_multiplier,
	                                   attention_multiplier (the attention scale) and
	                                   logits_scaling from the config */
	int post_norms;                 /* OLMo 2: no pre-norms; post_attention_layernorm and
	                                   post_feedforward_layernorm normalise the sublayer outputs */
	int qk_norm_full;               /* OLMo 2: RMSNorm over the whole q / k projection,
	                                   before the split into heads */
	int nope_layers;                /* SmolLM3: no_rope_layers / no_rope_layer_interval name
	                                   layers without RoPE */
	int fused_proj;                 /* Phi3: self_attn.qkv_proj and mlp.gate_up_proj hold
	                                   q,k,v and gate,up stacked by rows (split at conversion) */
	int anemll;                     /* ANEMLL 0.3.5 converts it, so its rules for the
	                                   files beside the parts apply (prepare_hf's config.json) */
	const char *tokenizer_class;    /* config.json's tokenizer_class in a conversion's folder
	                                   (arch_tokenizer_config): ANEMLL's LlamaTokenizer /
	                                   Qwen2Tokenizer for its families; PreTrainedTokenizerFast,
	                                   which loads any tokenizer.json, for the others */
	arch_defaults def;
} arch_info;

/* Every supported architecture, in table order. */
const arch_info *arch_get(arch_id id);

/* Look up by arch name ("llama", "qwen2", ...); NULL when unknown. */
const arch_info *arch_by_name(const char *name);

/* Pick the architecture for a config: model_type when given (else the first
 * entry of architectures), lower-cased, matched as ANEMLL does. Either
 * argument may be NULL. On failure records an error naming `label` (the
 * config file) and the supported list, and returns NULL. */
const arch_info *arch_detect(const char *model_type, const char *architecture, const char *label);

/* "llama, qwen2, qwen3, gemma3, gemma3_text, mistral, ...": for messages. */
const char *arch_supported_list(void);

/* "gemma3, mistral, phi3": the families with ring_cache, for messages. */
const char *arch_ring_list(void);

/* The LM-head split count of a model of vocab rows: the row's
 * lm_head_splits, or for families whose models span both sizes (0 in the
 * table) ANEMLL's convention by size: 8 up to 65536 rows, 16 above. */
int arch_lm_head_splits(const arch_info *a, int vocab);

/* The config.json a conversion's folder gets beside the copied tokenizer
 * files, for AutoTokenizer (tokenizer_class when tokenizer_config.json has
 * none; model_type for AutoConfig): ANEMLL's create_config_json text, with
 * LlamaTokenizer paired with model_type llama as ANEMLL does, else the
 * family's own model_type. JSON text ending in a newline; caller frees. */
char *arch_tokenizer_config(const arch_info *a);

/* Activation from a config's hidden_act / hidden_activation string:
 * 0 and *out set, or -1 (no error recorded) when the string is unknown. */
int arch_parse_act(const char *s, arch_act *out);
const char *arch_act_name(arch_act act);

#endif
