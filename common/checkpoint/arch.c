/* arch.c: the table of supported architectures (see arch.h).
 *
 * Adding an architecture means adding one row here; everything that differs
 * between models is a field of that row (README, "Adding an architecture"). Detection is by config model_type
 * (or architectures[0]), with ANEMLL's loose rules kept for compatibility:
 * "qwen2" or anything containing "qwen2forcausallm" is Qwen2, any other
 * "qwen*" is the Qwen3 family, "gemma3*" is Gemma3.
 */
#include "checkpoint/arch.h"
#include "base/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The table                                                           */

static const char *const llama_types[] = {"llama", NULL};
static const char *const llama_classes[] = {"llamaforcausallm", NULL};
static const char *const qwen2_types[] = {"qwen2", NULL};
static const char *const qwen2_classes[] = {"qwen2forcausallm", NULL};
static const char *const qwen3_types[] = {"qwen3", NULL};
static const char *const qwen3_classes[] = {"qwen3forcausallm", NULL};
static const char *const gemma3_types[] = {"gemma3_text", "gemma3", NULL};
static const char *const gemma3_classes[] = {"gemma3forcausallm", "gemma3forconditionalgeneration", NULL};
static const char *const mistral_types[] = {"mistral", NULL};
static const char *const mistral_classes[] = {"mistralforcausallm", NULL};
static const char *const granite_types[] = {"granite", NULL};
static const char *const granite_classes[] = {"graniteforcausallm", NULL};
static const char *const olmo2_types[] = {"olmo2", NULL};
static const char *const olmo2_classes[] = {"olmo2forcausallm", NULL};
static const char *const smollm3_types[] = {"smollm3", NULL};
static const char *const smollm3_classes[] = {"smollm3forcausallm", NULL};
static const char *const phi3_types[] = {"phi3", NULL};
static const char *const phi3_classes[] = {"phi3forcausallm", NULL};

/* Defaults are those of transformers' LlamaConfig, Qwen2Config, Qwen3Config,
 * Gemma3TextConfig, MistralConfig, GraniteConfig, Olmo2Config, SmolLM3Config
 * and Phi3Config, except Gemma3's flat-config sliding window, which is
 * ANEMLL's 512 (HF writes the field in every flat config anyway).
 * The families ANEMLL does not have are named by their model_type; their
 * LM heads split like ANEMLL's: 16 for large vocabularies (Granite 49155,
 * OLMo 2 100352, SmolLM3 128256); Mistral and Phi3, whose models span both,
 * by size: 8 for Mistral 7B's 32768 and Phi-3's 32064, 16 for
 * Mistral-Nemo's 131072 and Phi-4-mini's 200064. They project with 1x1 convs throughout (o_proj_linear
 * is an ANEMLL Llama quirk kept for byte compatibility only). */
static const arch_info g_arch[ARCH_COUNT] = {
	[ARCH_LLAMA] = {
		.id = ARCH_LLAMA, .name = "llama", .prefix = "llama",
		.model_types = llama_types, .classes = llama_classes,
		.lm_head_splits = 8, .o_bias_with_attention_bias = 1,
		.act = ACT_SILU, .o_proj_linear = 1, .anemll = 1, .tokenizer_class = "LlamaTokenizer", .tensor_prefix = "model.",
		.def = {.rope_theta = 10000.0, .rms_norm_eps = 1e-6,
			.max_position_embeddings = 2048, .hidden_act = "silu"},
	},
	[ARCH_QWEN2] = {
		.id = ARCH_QWEN2, .name = "qwen2", .prefix = "qwen25",
		.model_types = qwen2_types, .classes = qwen2_classes,
		.lm_head_splits = 16, .act = ACT_SILU, .attn_fp32 = 1,
		.anemll = 1, .tokenizer_class = "Qwen2Tokenizer", .tensor_prefix = "model.",
		.def = {.attention_bias = 1, .rope_theta = 10000.0, .rms_norm_eps = 1e-6,
			.max_position_embeddings = 32768, .hidden_act = "silu"},
	},
	[ARCH_QWEN3] = {
		.id = ARCH_QWEN3, .name = "qwen3", .prefix = "qwen",
		.model_types = qwen3_types, .classes = qwen3_classes,
		.lm_head_splits = 16, .qk_norm = 1, .o_bias_with_attention_bias = 1,
		.act = ACT_SILU, .anemll = 1, .tokenizer_class = "Qwen2Tokenizer", .tensor_prefix = "model.",
		.def = {.rope_theta = 10000.0, .rms_norm_eps = 1e-6,
			.max_position_embeddings = 32768, .hidden_act = "silu"},
	},
	[ARCH_GEMMA3] = {
		.id = ARCH_GEMMA3, .name = "gemma3", .prefix = "gemma3",
		.model_types = gemma3_types, .classes = gemma3_classes,
		.lm_head_splits = 16, .qk_norm = 1, .o_bias_with_attention_bias = 1,
		.norm_plus_one = 1, .act = ACT_GELU_TANH, .embed_scale_sqrt_hidden = 1,
		.four_norms = 1, .always_sliding_window = 1, .anemll = 1, .tokenizer_class = "LlamaTokenizer", .tensor_prefix = "model.",
		.split_kv_cache = 1, .ring_cache = 1, .lut_min_elements = 8192, .softmax_op = 1,
		.def = {.tie_word_embeddings = 1, .rope_theta = 1e6, .rms_norm_eps = 1e-6,
			.max_position_embeddings = 131072, .sliding_window = 512,
			.rope_local_base_freq = 10000.0, .sliding_window_pattern = 6,
			.query_pre_attn_scalar = 256, .hidden_act = "gelu_pytorch_tanh",
			.vocab_size = 262208, .hidden_size = 2304, .intermediate_size = 9216,
			.num_hidden_layers = 26, .num_attention_heads = 8,
			.num_key_value_heads = 4, .head_dim = 256,
			.nested_sliding_window = 4096},
	},
	[ARCH_MISTRAL] = {
		.id = ARCH_MISTRAL, .name = "mistral", .prefix = "mistral",
		.model_types = mistral_types, .classes = mistral_classes,
		.lm_head_splits = 0, .o_bias_with_attention_bias = 1, .act = ACT_SILU,
		.tokenizer_class = "PreTrainedTokenizerFast", .tensor_prefix = "model.", .window_when_set = 1, .ring_cache = 1,
		.def = {.rope_theta = 10000.0, .rms_norm_eps = 1e-6, .max_position_embeddings = 131072,
			.sliding_window = 4096, .hidden_act = "silu"},
	},
	[ARCH_GRANITE] = {
		.id = ARCH_GRANITE, .name = "granite", .prefix = "granite",
		.model_types = granite_types, .classes = granite_classes,
		.lm_head_splits = 16, .o_bias_with_attention_bias = 1, .act = ACT_SILU,
		.tokenizer_class = "PreTrainedTokenizerFast", .tensor_prefix = "model.", .mup_multipliers = 1,
		.def = {.rope_theta = 10000.0, .rms_norm_eps = 1e-6, .max_position_embeddings = 2048,
			.hidden_act = "silu"},
	},
	[ARCH_OLMO2] = {
		.id = ARCH_OLMO2, .name = "olmo2", .prefix = "olmo2",
		.model_types = olmo2_types, .classes = olmo2_classes,
		.lm_head_splits = 16, .o_bias_with_attention_bias = 1, .act = ACT_SILU,
		.tokenizer_class = "PreTrainedTokenizerFast", .tensor_prefix = "model.", .post_norms = 1, .qk_norm_full = 1,
		.def = {.rope_theta = 10000.0, .rms_norm_eps = 1e-5, .max_position_embeddings = 2048,
			.hidden_act = "silu"},
	},
	[ARCH_SMOLLM3] = {
		.id = ARCH_SMOLLM3, .name = "smollm3", .prefix = "smollm3",
		.model_types = smollm3_types, .classes = smollm3_classes,
		.lm_head_splits = 16, .o_bias_with_attention_bias = 1, .act = ACT_SILU,
		.tokenizer_class = "PreTrainedTokenizerFast", .tensor_prefix = "model.", .nope_layers = 1,
		.def = {.tie_word_embeddings = 1, .rope_theta = 2000000.0, .rms_norm_eps = 1e-6,
			.max_position_embeddings = 32768, .hidden_act = "silu"},
	},
	[ARCH_PHI3] = {
		.id = ARCH_PHI3, .name = "phi3", .prefix = "phi3",
		.model_types = phi3_types, .classes = phi3_classes,
		.lm_head_splits = 0, .o_bias_with_attention_bias = 1, .act = ACT_SILU,
		.tokenizer_class = "PreTrainedTokenizerFast", .tensor_prefix = "model.", .window_when_set = 1, .fused_proj = 1,
		.ring_cache = 1,
		.def = {.rope_theta = 10000.0, .rms_norm_eps = 1e-5, .max_position_embeddings = 4096,
			.original_max_position_embeddings = 4096, .hidden_act = "silu"},
	},
};

const arch_info *arch_get(arch_id id)
{
	ASSERT(id >= 0 && id < ARCH_COUNT);
	return &g_arch[id];
}

const arch_info *arch_by_name(const char *name)
{
	for (int i = 0; i < ARCH_COUNT; i++)
		if (streq(g_arch[i].name, name))
			return &g_arch[i];
	return NULL;
}

const char *arch_supported_list(void)
{
	return "llama, qwen2, qwen3, gemma3, gemma3_text, mistral, granite, olmo2, smollm3, phi3";
}

const char *arch_ring_list(void)
{
	static char list[128];
	if (!list[0])
		for (int i = 0; i < ARCH_COUNT; i++)
			if (g_arch[i].ring_cache)
				snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "",
					 g_arch[i].name);
	return list;
}

/* ------------------------------------------------------------------ */
/* Detection                                                           */

static int in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

static const arch_info *match_exact(const char *lower, int is_model_type)
{
	for (int i = 0; i < ARCH_COUNT; i++)
		if (in_list(is_model_type ? g_arch[i].model_types : g_arch[i].classes, lower))
			return &g_arch[i];
	return NULL;
}

/* ANEMLL's prefix rules (convert_model.sh), for names the table does not
 * spell out, e.g. "Qwen2ForCausalLM"-like classes or future qwen revisions
 * with the same layout. */
static const arch_info *match_loose(const char *lower)
{
	if (strcmp(lower, "qwen2") == 0 || strstr(lower, "qwen2forcausallm"))
		return &g_arch[ARCH_QWEN2];
	if (strncmp(lower, "qwen", 4) == 0)
		return &g_arch[ARCH_QWEN3];
	if (strncmp(lower, "gemma3", 6) == 0)
		return &g_arch[ARCH_GEMMA3];
	return NULL;
}

/* Families whose names the loose rules would accept but whose layers are
 * not the dense decoder anemake builds. */
static const char *unsupported_variant(const char *lower)
{
	if (strstr(lower, "moe"))
		return "mixture-of-experts models are not supported";
	if (strncmp(lower, "gemma3n", 7) == 0)
		return "Gemma 3n has a different layer structure and is not supported";
	if (strstr(lower, "_vl") || strstr(lower, "vlforconditional"))
		return "vision-language variants are not supported";
	return NULL;
}

/* 1 (with errf) when architectures[0] is a class of another architecture
 * than model_type's: the tensors would not be what the builder expects. */
static int conflicting_class(const arch_info *a, const char *architecture, const char *label)
{
	if (!architecture || !*architecture)
		return 0;
	char *lower = xstrdup(architecture);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const arch_info *c = match_exact(lower, 0);
	free(lower);
	if (!c || c == a)
		return 0;
	errf("%s: model_type says %s but architectures[0] '%s' is %s: they conflict", label, a->name, architecture,
	     c->name);
	return 1;
}

const arch_info *arch_detect(const char *model_type, const char *architecture, const char *label)
{
	int from_type = model_type && *model_type;
	const char *src = from_type ? model_type : architecture;
	if (!src || !*src) {
		errf("%s: no model_type or architectures: cannot tell the architecture (supported: %s)",
		     label, arch_supported_list());
		return NULL;
	}
	char *lower = xstrdup(src);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *why = unsupported_variant(lower);
	const arch_info *a = why ? NULL : match_exact(lower, from_type);
	if (!a && !why)
		a = match_loose(lower);
	free(lower);
	if (!a) {
		/* the name comes from the file: keep the message on one line */
		char shown[101];
		snprintf(shown, sizeof shown, "%s", src);
		for (char *p = shown; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		errf("%s: %s '%s': %s (supported: %s)", label,
		     from_type ? "model_type" : "architectures[0]", shown,
		     why ? why : "unsupported architecture", arch_supported_list());
	}
	return a && from_type && conflicting_class(a, architecture, label) ? NULL : a;
}

int arch_lm_head_splits(const arch_info *a, int vocab)
{
	if (a->lm_head_splits)
		return a->lm_head_splits;
	return vocab > 65536 ? 16 : 8;
}

char *arch_tokenizer_config(const arch_info *a)
{
	const char *type = strcmp(a->tokenizer_class, "LlamaTokenizer") == 0 ? "llama" : a->name;
	return xasprintf("{\n  \"tokenizer_class\": \"%s\",\n  \"model_type\": \"%s\"\n}\n", a->tokenizer_class, type);
}

/* ------------------------------------------------------------------ */
/* Activations                                                         */

int arch_parse_act(const char *s, arch_act *out)
{
	static const struct { const char *name; arch_act act; } acts[] = {
		{"silu", ACT_SILU}, {"swish", ACT_SILU},
		{"gelu_pytorch_tanh", ACT_GELU_TANH}, {"gelu_tanh", ACT_GELU_TANH},
		{"gelu_new", ACT_GELU_TANH}, {"gelu_fast", ACT_GELU_TANH},
	};
	for (size_t i = 0; s && i < sizeof acts / sizeof acts[0]; i++)
		if (strcmp(s, acts[i].name) == 0) {
			*out = acts[i].act;
			return 0;
		}
	return -1;
}

const char *arch_act_name(arch_act act)
{
	return act == ACT_SILU ? "silu" : "gelu_tanh";
}
