/* test_hfconfig.c: config.json parsing, architecture detection, model
 * resolution in a fake HuggingFace cache, and opening whole models.
 *
 * Real configs come from the repository (tests/models/stories260K) and from
 * ../shared (reference Llama and Gemma3 checkpoints); Qwen and multimodal
 * Gemma3 configs are written inline as their HF exports look. The cache
 * tests build a models--org--name tree in a temporary directory and point
 * HF_HUB_CACHE / HF_HOME at it.
 */
#include "base/fsutil.h"
#include "checkpoint/arch.h"
#include "checkpoint/hfconfig.h"
#include "checkpoint/hfmodel.h"
#include "test.h"
#include "base/util.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

static char g_tmp[256];

static int parse(hf_config *c, const char *json)
{
	return hf_config_parse(c, json, strlen(json), "test/config.json");
}

/* Parsing `json` must fail with a message containing `want`. */
static void expect_fail(const char *json, const char *want)
{
	hf_config c;
	int rc = parse(&c, json);
	CHECKF(rc != 0, "parsed, expected failure \"%s\"", want);
	if (rc == 0) {
		hf_config_release(&c);
		return;
	}
	CHECKF(strstr(errmsg(), want) != NULL, "message \"%s\" lacks \"%s\"", errmsg(), want);
	CHECKF(strchr(errmsg(), '\n') == NULL, "message spans lines: %s", errmsg());
	CHECK(c.model_type == NULL && c.layer_sliding == NULL); /* released */
}

#define LLAMA_SIZES "\"hidden_size\":64,\"intermediate_size\":128,\"num_hidden_layers\":2," \
	"\"num_attention_heads\":4,\"vocab_size\":256"

/* ------------------------------------------------------------------ */
/* Real configs                                                        */

static void test_stories260k(void)
{
	hf_config c;
	CHECKF(hf_config_load(&c, "tests/models/stories260K/config.json") == 0, "%s", errmsg());
	if (!c.arch)
		return;
	CHECK(c.arch->id == ARCH_LLAMA);
	CHECK_STR(c.model_type, "llama");
	CHECK_STR(c.arch->prefix, "llama");
	CHECK_EQ_INT(c.arch->lm_head_splits, 8);
	CHECK(c.arch->o_proj_linear && !c.arch->qk_norm && !c.arch->norm_plus_one);
	CHECK_EQ_INT(c.hidden_size, 64);
	CHECK_EQ_INT(c.intermediate_size, 172);
	CHECK_EQ_INT(c.num_hidden_layers, 5);
	CHECK_EQ_INT(c.num_attention_heads, 8);
	CHECK_EQ_INT(c.num_key_value_heads, 4);
	CHECK_EQ_INT(c.head_dim, 8);
	CHECK_EQ_INT(c.vocab_size, 512);
	CHECK_EQ_INT(c.max_position_embeddings, 512);
	CHECK(c.rope_theta == 10000.0 && c.rms_norm_eps == 1e-5);
	CHECK(c.rope_scaling.kind == ROPE_NONE && c.rope_scaling.type == NULL);
	CHECK(c.tie_word_embeddings && !c.attention_bias && !c.mlp_bias);
	CHECK(c.act == ACT_SILU);
	CHECK_EQ_INT(c.bos_token_id, 1);
	CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 2);
	CHECK(!c.use_sliding_window && c.sliding_window == 0 && !hf_config_layer_sliding(&c, 4));
	CHECK(c.query_pre_attn_scalar == 8); /* scale 1/sqrt(head_dim) */
	CHECK_STR(c.tensor_scope, "");
	CHECK(c.torch_dtype != NULL);
	hf_config_release(&c);
	hf_config_release(&c); /* idempotent */
	hf_config_release(NULL);
}

static void test_llama_tiny_llama3_rope(void)
{
	const char *sh = test_shared();
	if (!sh)
		SKIP("../shared not found");
	char *p = xasprintf("%s/reference/anemll-llama-tiny/model/config.json", sh);
	hf_config c;
	CHECKF(hf_config_load(&c, p) == 0, "%s", errmsg());
	if (c.arch) {
		CHECK(c.arch->id == ARCH_LLAMA);
		CHECK_EQ_INT(c.head_dim, 16);
		CHECK(c.rope_theta == 500000.0);
		CHECK(c.rope_scaling.kind == ROPE_LLAMA3);
		CHECK_STR(c.rope_scaling.type, "llama3");
		CHECK(c.rope_scaling.factor == 32 && c.rope_scaling.low_freq_factor == 1 &&
		      c.rope_scaling.high_freq_factor == 4);
		CHECK_EQ_INT(c.rope_scaling.original_max_position_embeddings, 8192);
		CHECK_EQ_INT(c.max_position_embeddings, 131072);
	}
	hf_config_release(&c);
	free(p);
}

static void test_gemma3_tiny(void)
{
	const char *sh = test_shared();
	if (!sh)
		SKIP("../shared not found");
	char *p = xasprintf("%s/reference/anemll-gemma3-tiny/model/config.json", sh);
	hf_config c;
	CHECKF(hf_config_load(&c, p) == 0, "%s", errmsg());
	if (c.arch) {
		const arch_info *a = c.arch;
		CHECK(a->id == ARCH_GEMMA3);
		CHECK_STR(c.model_type, "gemma3_text");
		CHECK_STR(a->prefix, "gemma3");
		CHECK_EQ_INT(a->lm_head_splits, 16);
		CHECK(a->qk_norm && a->norm_plus_one && a->four_norms && a->embed_scale_sqrt_hidden);
		CHECK(a->act == ACT_GELU_TANH && c.act == ACT_GELU_TANH);
		CHECK_STR(c.hidden_act, "gelu_pytorch_tanh");
		CHECK_EQ_INT(c.head_dim, 32); /* not hidden / heads = 16 */
		CHECK_EQ_INT(c.num_attention_heads, 4);
		CHECK_EQ_INT(c.num_key_value_heads, 1);
		CHECK_EQ_INT(c.vocab_size, 2176);
		CHECK(c.use_sliding_window && c.sliding_window == 64);
		for (int i = 0; i < 6; i++)
			CHECKF(hf_config_layer_sliding(&c, i) == (i != 5), "layer %d", i);
		CHECK(c.query_pre_attn_scalar == 24);
		CHECK(c.rope_theta == 1e6 && c.rope_local_base_freq == 10000);
		CHECK(c.rms_norm_eps == 1e-6);
		CHECK(c.tie_word_embeddings);
		CHECK(!c.has_final_logit_softcapping && !c.has_attn_logit_softcapping);
		CHECK(c.bos_token_id == 2 && c.n_eos == 1 && c.eos_token_ids[0] == 1);
	}
	hf_config_release(&c);
	free(p);
}

/* ------------------------------------------------------------------ */
/* Inline configs                                                      */

/* As google/gemma-3-4b-it ships it: text_config holds only non-defaults. */
static const char *g_gemma3_mm =
	"{\"architectures\":[\"Gemma3ForConditionalGeneration\"],\"boi_token_index\":255999,"
	"\"eos_token_id\":[1,106],\"model_type\":\"gemma3\",\"torch_dtype\":\"bfloat16\","
	"\"text_config\":{\"hidden_size\":2560,\"intermediate_size\":10240,"
	"\"model_type\":\"gemma3_text\",\"num_hidden_layers\":34,"
	"\"rope_scaling\":{\"factor\":8.0,\"rope_type\":\"linear\"},\"sliding_window\":1024},"
	"\"vision_config\":{\"hidden_size\":1152,\"model_type\":\"siglip_vision_model\"}}";

static void test_gemma3_nested(void)
{
	hf_config c;
	CHECKF(parse(&c, g_gemma3_mm) == 0, "%s", errmsg());
	if (!c.arch)
		return;
	CHECK(c.arch->id == ARCH_GEMMA3);
	CHECK_STR(c.model_type, "gemma3_text");
	CHECK_STR(c.tensor_scope, "language_model.");
	CHECK_EQ_INT(c.hidden_size, 2560);
	CHECK_EQ_INT(c.num_hidden_layers, 34);
	CHECK_EQ_INT(c.num_attention_heads, 8); /* Gemma3TextConfig defaults */
	CHECK_EQ_INT(c.num_key_value_heads, 4);
	CHECK_EQ_INT(c.head_dim, 256);
	CHECK_EQ_INT(c.vocab_size, 262208);
	CHECK(c.rope_scaling.kind == ROPE_LINEAR && c.rope_scaling.factor == 8);
	CHECK(c.sliding_window == 1024);
	CHECK(hf_config_layer_sliding(&c, 4) && !hf_config_layer_sliding(&c, 5) &&
	      !hf_config_layer_sliding(&c, 11) && hf_config_layer_sliding(&c, 33));
	CHECK(c.n_eos == 2 && c.eos_token_ids[1] == 106); /* copied down */
	CHECK_STR(c.torch_dtype, "bfloat16");
	CHECK(c.tie_word_embeddings && c.query_pre_attn_scalar == 256);
	hf_config_release(&c);
}

/* Shaped like Qwen2.5-0.5B's config: no attention_bias key. */
static void test_qwen2(void)
{
	hf_config c;
	CHECKF(parse(&c, "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\","
	                 "\"hidden_size\":896,\"intermediate_size\":4864,\"num_hidden_layers\":24,"
	                 "\"num_attention_heads\":14,\"num_key_value_heads\":2,"
	                 "\"vocab_size\":151936,\"rope_theta\":1000000.0,\"rms_norm_eps\":1e-06,"
	                 "\"tie_word_embeddings\":true,\"use_sliding_window\":false,"
	                 "\"sliding_window\":32768,\"max_window_layers\":21,\"hidden_act\":\"silu\","
	                 "\"rope_scaling\":null,\"bos_token_id\":151643,\"eos_token_id\":151643}") == 0,
	       "%s", errmsg());
	if (!c.arch)
		return;
	CHECK(c.arch->id == ARCH_QWEN2);
	CHECK_STR(c.arch->prefix, "qwen25");
	CHECK_EQ_INT(c.arch->lm_head_splits, 16);
	CHECK(c.attention_bias && !c.arch->o_bias_with_attention_bias && c.arch->attn_fp32);
	CHECK_EQ_INT(c.head_dim, 64);
	CHECK(!c.use_sliding_window && c.sliding_window == 0 && !hf_config_layer_sliding(&c, 23));
	CHECK_EQ_INT(c.max_position_embeddings, 32768); /* Qwen2Config default */
	hf_config_release(&c);
}

/* Shaped like Qwen3-0.6B: head_dim 128 although hidden / heads is 64. */
static void test_qwen3(void)
{
	hf_config c;
	CHECKF(parse(&c, "{\"architectures\":[\"Qwen3ForCausalLM\"],\"model_type\":\"qwen3\","
	                 "\"hidden_size\":1024,\"intermediate_size\":3072,\"num_hidden_layers\":28,"
	                 "\"num_attention_heads\":16,\"num_key_value_heads\":8,\"head_dim\":128,"
	                 "\"vocab_size\":151936,\"rope_theta\":1000000,\"attention_bias\":false,"
	                 "\"tie_word_embeddings\":true,\"max_window_layers\":28,"
	                 "\"use_sliding_window\":false,\"sliding_window\":null,"
	                 "\"eos_token_id\":151645,\"torch_dtype\":\"bfloat16\"}") == 0,
	       "%s", errmsg());
	if (!c.arch)
		return;
	CHECK(c.arch->id == ARCH_QWEN3);
	CHECK_STR(c.arch->prefix, "qwen");
	CHECK(c.arch->qk_norm && !c.attention_bias && !c.arch->attn_fp32);
	CHECK_EQ_INT(c.head_dim, 128);
	CHECK(c.query_pre_attn_scalar == 128);
	CHECK_EQ_INT(c.bos_token_id, -1);
	hf_config_release(&c);
}

static void test_detection(void)
{
	static const struct { const char *json; arch_id id; } ok[] = {
		{"{\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_SIZES "}", ARCH_LLAMA},
		{"{\"architectures\":[\"Qwen2ForCausalLM\"]," LLAMA_SIZES "}", ARCH_QWEN2},
		{"{\"model_type\":\"Qwen2\"," LLAMA_SIZES "}", ARCH_QWEN2},
		{"{\"model_type\":\"qwen3\",\"architectures\":[\"Qwen3ForCausalLM\"]," LLAMA_SIZES "}",
		 ARCH_QWEN3},
		{"{\"model_type\":\"llama\",\"architectures\":[\"MistralLikeForCausalLM\"]," LLAMA_SIZES "}", ARCH_LLAMA},
		{"{\"architectures\":[\"MistralForCausalLM\"]," LLAMA_SIZES "}", ARCH_MISTRAL},
		{"{\"model_type\":\"granite\"," LLAMA_SIZES "}", ARCH_GRANITE},
		{"{\"architectures\":[\"Olmo2ForCausalLM\"]," LLAMA_SIZES "}", ARCH_OLMO2},
		{"{\"model_type\":\"smollm3\"," LLAMA_SIZES "}", ARCH_SMOLLM3},
		{"{\"model_type\":\"phi3\",\"architectures\":[\"Phi3ForCausalLM\"]," LLAMA_SIZES "}", ARCH_PHI3},
		{"{\"model_type\":\"gemma3\",\"architectures\":[\"Gemma3ForCausalLM\"],\"head_dim\":16," LLAMA_SIZES "}",
		 ARCH_GEMMA3},
		{"{\"model_type\":\"gemma3_text\",\"head_dim\":16," LLAMA_SIZES "}", ARCH_GEMMA3},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		hf_config c;
		CHECKF(parse(&c, ok[i].json) == 0, "case %zu: %s", i, errmsg());
		CHECKF(c.arch && c.arch->id == ok[i].id, "case %zu", i);
		hf_config_release(&c);
	}
	CHECK(arch_by_name("qwen3") == arch_get(ARCH_QWEN3) && arch_by_name("mistral") == arch_get(ARCH_MISTRAL) &&
	      arch_by_name("olmo") == NULL);
	expect_fail("{\"model_type\":\"olmo\"," LLAMA_SIZES "}",
	            "test/config.json: model_type 'olmo': unsupported architecture (supported: "
	            "llama, qwen2, qwen3, gemma3, gemma3_text, mistral, granite, olmo2, smollm3, phi3)");
	expect_fail("{\"model_type\":\"qwen3_moe\"," LLAMA_SIZES "}", "mixture-of-experts");
	expect_fail("{\"architectures\":[\"MixtralForCausalLM\"]," LLAMA_SIZES "}",
	            "architectures[0] 'MixtralForCausalLM': unsupported");
	expect_fail("{" LLAMA_SIZES "}", "no model_type or architectures");
	/* Both name a known architecture, not the same one: say so (the tensors would not match). */
	expect_fail("{\"model_type\":\"qwen3\",\"architectures\":[\"LlamaForCausalLM\"]," LLAMA_SIZES "}",
	            "test/config.json: model_type says qwen3 but architectures[0] 'LlamaForCausalLM' is llama: they conflict");
}

/* The families ANEMLL lacks: their traits and the config fields they read. */
static void test_new_families(void)
{
	hf_config c;
	/* Mistral: a set window slides every layer; null is none; absent is 4096 */
	CHECKF(parse(&c, "{\"model_type\":\"mistral\",\"sliding_window\":16,\"head_dim\":32," LLAMA_SIZES "}") == 0, "%s",
	       errmsg());
	CHECK(c.use_sliding_window && c.sliding_window == 16 && hf_config_layer_sliding(&c, 0) &&
	      hf_config_layer_sliding(&c, 1) && c.head_dim == 32 && strcmp(c.arch->prefix, "mistral") == 0 &&
	      fabs(c.attn_scale - pow(32, -0.5)) < 1e-15);
	/* Mistral 7B's vocabulary splits 8 ways, Mistral-Nemo's 16; the fixed rows keep theirs */
	CHECK(arch_lm_head_splits(c.arch, 32768) == 8 && arch_lm_head_splits(c.arch, 131072) == 16 &&
	      arch_lm_head_splits(arch_get(ARCH_PHI3), 200064) == 16 && arch_lm_head_splits(arch_get(ARCH_LLAMA), 128256) == 8 &&
	      arch_lm_head_splits(arch_get(ARCH_GRANITE), 49155) == 16);
	hf_config_release(&c);
	CHECK(parse(&c, "{\"model_type\":\"mistral\",\"sliding_window\":null," LLAMA_SIZES "}") == 0);
	CHECK(!c.use_sliding_window && !hf_config_layer_sliding(&c, 1));
	hf_config_release(&c);
	CHECK(parse(&c, "{\"model_type\":\"mistral\"," LLAMA_SIZES "}") == 0);
	CHECK(c.sliding_window == 4096);
	hf_config_release(&c);
	/* Granite: the four multipliers; attention_multiplier replaces 1/sqrt(d) */
	CHECKF(parse(&c, "{\"model_type\":\"granite\",\"embedding_multiplier\":12,\"residual_multiplier\":0.22,"
			 "\"attention_multiplier\":0.015625,\"logits_scaling\":8," LLAMA_SIZES "}") == 0, "%s", errmsg());
	CHECK(c.embedding_multiplier == 12 && c.residual_multiplier == 0.22 && c.attn_scale == 0.015625 &&
	      c.logits_scaling == 8 && c.arch->lm_head_splits == 16);
	hf_config_release(&c);
	CHECK(parse(&c, "{\"model_type\":\"granite\"," LLAMA_SIZES "}") == 0);
	CHECK(c.attn_scale == 1.0 && c.embedding_multiplier == 1.0); /* GraniteConfig's defaults */
	hf_config_release(&c);
	/* other families ignore the multipliers: Llama's scale stays 1/sqrt(d) */
	CHECK(parse(&c, "{\"model_type\":\"llama\",\"attention_multiplier\":3," LLAMA_SIZES "}") == 0);
	CHECK(c.attn_scale == 0.25 && c.residual_multiplier == 1.0);
	hf_config_release(&c);
	/* OLMo 2 */
	CHECK(parse(&c, "{\"model_type\":\"olmo2\"," LLAMA_SIZES "}") == 0);
	CHECK(c.arch->post_norms && c.arch->qk_norm_full && !c.arch->qk_norm && c.rms_norm_eps == 1e-5);
	hf_config_release(&c);
	/* SmolLM3: the list (1 = RoPE), else every interval-th layer */
	CHECK(parse(&c, "{\"model_type\":\"smollm3\",\"no_rope_layers\":[0,1]," LLAMA_SIZES "}") == 0);
	CHECK(!hf_config_layer_rope(&c, 0) && hf_config_layer_rope(&c, 1));
	hf_config_release(&c);
	CHECK(parse(&c, "{\"model_type\":\"smollm3\",\"no_rope_layer_interval\":2," LLAMA_SIZES "}") == 0);
	CHECK(hf_config_layer_rope(&c, 0) && !hf_config_layer_rope(&c, 1));
	hf_config_release(&c);
	CHECK(parse(&c, "{\"model_type\":\"llama\",\"no_rope_layers\":[0,0]," LLAMA_SIZES "}") == 0);
	CHECK(hf_config_layer_rope(&c, 0)); /* not Llama's field */
	hf_config_release(&c);
	expect_fail("{\"model_type\":\"smollm3\",\"no_rope_layers\":[1]," LLAMA_SIZES "}",
		    "no_rope_layers must list 0 or 1 for each of the 2 layers");
	expect_fail("{\"model_type\":\"smollm3\",\"no_rope_layers\":[1,2]," LLAMA_SIZES "}", "no_rope_layers[1] must be 0 or 1");
	/* Phi3: partial rotary, longrope (original context from the top level) */
	const char *phi = "{\"model_type\":\"phi3\",\"partial_rotary_factor\":0.75,\"max_position_embeddings\":131072,"
			  "\"original_max_position_embeddings\":4096,\"rope_scaling\":{\"type\":\"longrope\","
			  "\"short_factor\":[1,1,1,1,1,1],\"long_factor\":[2,3,4,5,6,7]}," LLAMA_SIZES "}";
	CHECKF(parse(&c, phi) == 0, "%s", errmsg());
	CHECK(c.rotary_dim == 12 && c.rope_scaling.kind == ROPE_LONGROPE && c.rope_scaling.n_factors == 6 &&
	      c.rope_scaling.long_factor[2] == 4 && c.rope_scaling.original_max_position_embeddings == 4096 &&
	      fabs(c.rope_scaling.attention_factor - sqrt(1 + log(32.0) / log(4096.0))) < 1e-12 && !c.use_sliding_window);
	hf_config_release(&c);
	expect_fail("{\"model_type\":\"phi3\",\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1],"
		    "\"long_factor\":[2]}," LLAMA_SIZES "}", "rope_scaling short_factor must list 8 numbers");
	expect_fail("{\"model_type\":\"phi3\",\"partial_rotary_factor\":0.2," LLAMA_SIZES "}",
		    "partial_rotary_factor 0.2 gives 3 rotary dimensions");
}

/* config.json beside the tokenizer files: ANEMLL's exact bytes for its
 * families; the others name a class that loads their tokenizer.json
 * (LlamaTokenizer's slow path needs a tokenizer.model byte-level ones lack). */
static void test_tokenizer_config_json(void)
{
	static const struct { arch_id id; const char *want; } rows[] = {
		{ARCH_LLAMA, "{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"model_type\": \"llama\"\n}\n"},
		{ARCH_GEMMA3, "{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"model_type\": \"llama\"\n}\n"},
		{ARCH_QWEN2, "{\n  \"tokenizer_class\": \"Qwen2Tokenizer\",\n  \"model_type\": \"qwen2\"\n}\n"},
		{ARCH_QWEN3, "{\n  \"tokenizer_class\": \"Qwen2Tokenizer\",\n  \"model_type\": \"qwen3\"\n}\n"},
		{ARCH_MISTRAL, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"model_type\": \"mistral\"\n}\n"},
		{ARCH_GRANITE, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"model_type\": \"granite\"\n}\n"},
		{ARCH_OLMO2, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"model_type\": \"olmo2\"\n}\n"},
		{ARCH_SMOLLM3, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"model_type\": \"smollm3\"\n}\n"},
		{ARCH_PHI3, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"model_type\": \"phi3\"\n}\n"},
	};
	CHECK_EQ_INT(sizeof rows / sizeof rows[0], ARCH_COUNT);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char *text = arch_tokenizer_config(arch_get(rows[i].id));
		CHECK_STR(text, rows[i].want);
		free(text);
	}
}

static void test_rope_variants(void)
{
	hf_config c;
	CHECKF(parse(&c, "{\"model_type\":\"llama\"," LLAMA_SIZES
	                 ",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}") == 0, "%s", errmsg());
	CHECK(c.rope_scaling.kind == ROPE_LINEAR && c.rope_scaling.factor == 2);
	hf_config_release(&c);
	CHECKF(parse(&c, "{\"model_type\":\"llama\"," LLAMA_SIZES
	                 ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}") == 0, "%s", errmsg());
	CHECK(c.rope_scaling.kind == ROPE_OTHER && streq(c.rope_scaling.type, "yarn"));
	hf_config_release(&c);
	CHECKF(parse(&c, "{\"model_type\":\"llama\"," LLAMA_SIZES
	                 ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5e5}}") == 0,
	       "%s", errmsg());
	CHECK(c.rope_scaling.kind == ROPE_NONE && c.rope_theta == 5e5);
	hf_config_release(&c);
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES
	            ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
	            "rope_scaling of type llama3 needs low_freq_factor");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"rope_scaling\":{\"factor\":8}}",
	            "rope_scaling has no rope_type");
}

static void test_refusals(void)
{
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES
	            ",\"quantization_config\":{\"quant_method\":\"fp8\"}}",
	            "quantization_config present (quant_method 'fp8'): the checkpoint is "
	            "pre-quantized; anemake needs the original fp16/bf16/fp32 weights");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"torch_dtype\":\"float8_e4m3fn\"}",
	            "torch_dtype 'float8_e4m3fn': the checkpoint is pre-quantized");
	expect_fail("{\"model_type\":\"gemma3\",\"text_config\":{\"quantization_config\":{}}}",
	            "pre-quantized");
	expect_fail("{\"model_type\":\"llama\",\"hidden_size\":64,\"intermediate_size\":128,"
	            "\"num_attention_heads\":4,\"vocab_size\":256}",
	            "test/config.json: required field 'num_hidden_layers' is missing");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"num_key_value_heads\":3}",
	            "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
	expect_fail("{\"model_type\":\"llama\",\"hidden_size\":\"64\",\"intermediate_size\":128,"
	            "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":256}",
	            "hidden_size must be an integer");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"hidden_size\":64}",
	            "key 'hidden_size' appears more than once");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"hidden_act\":\"gelu_pytorch_tanh\"}",
	            "does not match llama, which uses silu");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"head_dim\":15}", "head_dim 15 is odd");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"rms_norm_eps\":1e400}",
	            "test/config.json: rms_norm_eps is out of range (not a finite double)");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"rope_theta\":-1e400}", "rope_theta is out of range");
	expect_fail("{\"model_type\":\"llama\"," LLAMA_SIZES ",\"rms_norm_eps\":-1}", "rms_norm_eps must be a positive number");
	expect_fail("[1]", "not a JSON object");
	expect_fail("{\"model_type\":", "not valid JSON");
	expect_fail("{\"model_type\":\"gemma3_text\"," LLAMA_SIZES ",\"layer_types\":[\"full_attention\"]}",
	            "layer_types must list one type per layer (2)");
}

static void test_intermediate_list(void)
{
	hf_config c;
	CHECKF(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
	                 "\"intermediate_size\":[96,96],\"num_attention_heads\":4,"
	                 "\"vocab_size\":256}") == 0, "%s", errmsg());
	CHECK_EQ_INT(c.intermediate_size, 96);
	hf_config_release(&c);
	expect_fail("{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,"
	            "\"intermediate_size\":[96,128],\"num_attention_heads\":4,\"vocab_size\":256}",
	            "intermediate_size differs between layers (96 and 128)");
}

/* ------------------------------------------------------------------ */
/* HuggingFace cache resolution                                        */

static void mkfile(const char *path, const char *text)
{
	char *dir = xstrdup(path);
	*strrchr(dir, '/') = 0;
	ASSERT(mkdir_p(dir) == 0);
	free(dir);
	ASSERT(write_file_atomic(path, text, strlen(text)) == 0);
}

static void test_hf_cache(void)
{
	char *hub = path_join(g_tmp, "hub");
	char *p;
	/* refs/main chooses among two snapshots */
	p = xasprintf("%s/models--org--name/snapshots/abc123/config.json", hub), mkfile(p, "{}"), free(p);
	p = xasprintf("%s/models--org--name/snapshots/def456/config.json", hub), mkfile(p, "{}"), free(p);
	p = xasprintf("%s/models--org--name/refs/main", hub), mkfile(p, "abc123\n"), free(p);
	/* one snapshot, no refs */
	p = xasprintf("%s/models--org--single/snapshots/only/config.json", hub), mkfile(p, "{}"), free(p);
	/* two snapshots, no refs */
	p = xasprintf("%s/models--org--multi/snapshots/a/x", hub), mkfile(p, ""), free(p);
	p = xasprintf("%s/models--org--multi/snapshots/b/x", hub), mkfile(p, ""), free(p);

	setenv("HF_HUB_CACHE", hub, 1);
	char *dir = NULL, *want;
	CHECKF(hf_model_resolve("org/name", &dir) == 0, "%s", errmsg());
	want = xasprintf("%s/models--org--name/snapshots/abc123", hub);
	CHECK(dir && strcmp(dir, want) == 0);
	free(dir), free(want);

	CHECKF(hf_model_resolve("org/single", &dir) == 0, "%s", errmsg());
	CHECK(dir && has_suffix(dir, "models--org--single/snapshots/only"));
	free(dir);

	CHECK(hf_model_resolve("org/multi", &dir) != 0 && dir == NULL);
	CHECKF(strstr(errmsg(), "2 snapshots in") && strstr(errmsg(), "(a, b)"), "%s", errmsg());

	CHECK(hf_model_resolve("org/missing", &dir) != 0);
	want = xasprintf("model 'org/missing' not found: no such directory, and not in the "
	                 "HuggingFace cache (looked for '%s/models--org--missing/snapshots'); anemake "
	                 "never downloads: fetch it with `huggingface-cli download org/missing`", hub);
	CHECK_STR(errmsg(), want);
	free(want);

	/* HF_HOME/hub when HF_HUB_CACHE is unset */
	unsetenv("HF_HUB_CACHE");
	char *home = path_join(g_tmp, "home");
	p = xasprintf("%s/hub/models--org--name/snapshots/r1/config.json", home), mkfile(p, "{}"), free(p);
	setenv("HF_HOME", home, 1);
	CHECKF(hf_model_resolve("org/name", &dir) == 0, "%s", errmsg());
	CHECK(dir && has_suffix(dir, "home/hub/models--org--name/snapshots/r1"));
	free(dir);
	unsetenv("HF_HOME");

	/* a directory is used as is; paths are never taken for ids */
	CHECK(hf_model_resolve(g_tmp, &dir) == 0 && dir && strcmp(dir, g_tmp) == 0);
	free(dir);
	CHECK(hf_model_resolve("./org/name", &dir) != 0);
	CHECKF(strstr(errmsg(), "model directory './org/name' does not exist"), "%s", errmsg());
	free(home);
	free(hub);
}

/* ------------------------------------------------------------------ */
/* Whole models                                                        */

static void open_ok(const char *dir, int layers)
{
	hf_model m;
	CHECKF(hf_model_open(&m, dir) == 0, "%s: %s", dir, errmsg());
	if (!m.dir)
		return;
	CHECK_EQ_INT(m.cfg.num_hidden_layers, layers);
	CHECK_STR(m.prefix, "model.");
	CHECK(m.lm_head_tied && m.lm_head == m.embed && m.norm);
	CHECK(m.embed->shape[0] == (uint64_t)m.cfg.vocab_size);
	const st_tensor *q = hf_layer_tensor(&m, layers - 1, "self_attn.q_proj.weight");
	CHECK(q && q->shape[0] == (uint64_t)(m.cfg.num_attention_heads * m.cfg.head_dim));
	CHECK(hf_layer_tensor(&m, layers, "self_attn.q_proj.weight") == NULL);
	CHECKF(strstr(errmsg(), "not found in"), "%s", errmsg());
	hf_model_close(&m);
	hf_model_close(&m);
}

static void test_open_models(void)
{
	open_ok("tests/models/stories260K", 5);
	const char *sh = test_shared();
	if (!sh)
		SKIP("../shared not found");
	static const struct { const char *dir; int layers; } models[] = {
		{"models/stories260K/fp32", 5}, {"models/stories260K/bf16", 5},
		{"reference/anemll-llama-tiny/model", 2}, {"reference/anemll-gemma3-tiny/model", 6},
	};
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
		char *d = xasprintf("%s/%s", sh, models[i].dir);
		open_ok(d, models[i].layers);
		free(d);
	}
}

/* A tiny synthetic checkpoint: every tensor F32 zeros. */
typedef struct tspec {
	const char *name;
	int rank;
	uint64_t d0, d1;
} tspec;

static void write_checkpoint(const char *path, const tspec *t, int n)
{
	char *hdr = xmalloc(16384);
	size_t h = (size_t)sprintf(hdr, "{"), off = 0;
	for (int i = 0; i < n; i++) {
		uint64_t bytes = 4 * t[i].d0 * (t[i].rank == 2 ? t[i].d1 : 1);
		char shape[64];
		if (t[i].rank == 2)
			sprintf(shape, "[%llu,%llu]", (unsigned long long)t[i].d0, (unsigned long long)t[i].d1);
		else
			sprintf(shape, "[%llu]", (unsigned long long)t[i].d0);
		h += (size_t)sprintf(hdr + h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":%s,"
		                     "\"data_offsets\":[%zu,%zu]}", i ? "," : "", t[i].name, shape, off,
		                     off + (size_t)bytes);
		off += (size_t)bytes;
	}
	h += (size_t)sprintf(hdr + h, "}");
	FILE *f = fopen(path, "wb");
	ASSERT(f);
	for (int i = 0; i < 8; i++)
		fputc((int)((uint64_t)h >> (8 * i) & 0xff), f);
	fwrite(hdr, 1, h, f);
	for (size_t i = 0; i < off; i++)
		fputc(0, f);
	fclose(f);
	free(hdr);
}

#define TINY_CONFIG "{\"model_type\":\"llama\",\"hidden_size\":4,\"intermediate_size\":8," \
	"\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1," \
	"\"vocab_size\":8,\"tie_word_embeddings\":false}"

static const tspec g_tiny[] = {
	{"lm_head.weight", 2, 8, 4},
	{"model.embed_tokens.weight", 2, 8, 4},
	{"model.norm.weight", 1, 4, 0},
	{"model.layers.0.input_layernorm.weight", 1, 4, 0},
	{"model.layers.0.post_attention_layernorm.weight", 1, 4, 0},
	{"model.layers.0.self_attn.q_proj.weight", 2, 4, 4},
	{"model.layers.0.self_attn.k_proj.weight", 2, 2, 4},
	{"model.layers.0.self_attn.v_proj.weight", 2, 2, 4},
	{"model.layers.0.self_attn.o_proj.weight", 2, 4, 4},
	{"model.layers.0.mlp.gate_proj.weight", 2, 8, 4},
	{"model.layers.0.mlp.down_proj.weight", 2, 4, 8},
	{"model.layers.0.mlp.up_proj.weight", 2, 8, 4},
};
#define NTINY ((int)(sizeof g_tiny / sizeof g_tiny[0]))

static char *tiny_model(const char *name, const char *config, const tspec *t, int n)
{
	char *d = path_join(g_tmp, name);
	char *p = path_join(d, "config.json");
	mkfile(p, config);
	free(p);
	p = path_join(d, "model.safetensors");
	write_checkpoint(p, t, n);
	free(p);
	return d;
}

static void test_open_synthetic(void)
{
	hf_model m;
	char *d = tiny_model("tiny-ok", TINY_CONFIG, g_tiny, NTINY);
	CHECKF(hf_model_open(&m, d) == 0, "%s", errmsg());
	CHECK(m.lm_head && !m.lm_head_tied && m.lm_head != m.embed);
	hf_model_close(&m);
	free(d);

	/* without its last tensor (up_proj) */
	d = tiny_model("tiny-missing", TINY_CONFIG, g_tiny, NTINY - 1);
	CHECK(hf_model_open(&m, d) != 0);
	char *want = xasprintf("tensor 'model.layers.0.mlp.up_proj.weight' not found in '%s'", d);
	CHECK_STR(errmsg(), want);
	CHECK(m.dir == NULL);
	free(want);
	free(d);

	/* without lm_head.weight: untied but absent means tied, as ANEMLL does */
	d = tiny_model("tiny-nohead", TINY_CONFIG, g_tiny + 1, NTINY - 1);
	CHECKF(hf_model_open(&m, d) == 0, "%s", errmsg());
	CHECK(m.lm_head_tied && m.lm_head == m.embed);
	hf_model_close(&m);
	free(d);

	/* a projection whose shape disagrees with the config */
	tspec bad[NTINY];
	memcpy(bad, g_tiny, sizeof bad);
	bad[5].d0 = 6;
	d = tiny_model("tiny-shape", TINY_CONFIG, bad, NTINY);
	CHECK(hf_model_open(&m, d) != 0);
	CHECKF(strstr(errmsg(), "tensor 'model.layers.0.self_attn.q_proj.weight' has shape [6,4], "
	                        "but ") && strstr(errmsg(), "config.json implies [4,4]"), "%s", errmsg());
	free(d);

	/* Qwen2: q/k/v biases are required by default */
	char *qcfg = xstrdup(TINY_CONFIG);
	memcpy(strstr(qcfg, "llama"), "qwen2", 5);
	d = tiny_model("tiny-qwen2", qcfg, g_tiny, NTINY);
	CHECK(hf_model_open(&m, d) != 0);
	CHECKF(strstr(errmsg(), "tensor 'model.layers.0.self_attn.k_proj.bias' not found") ||
	       strstr(errmsg(), "tensor 'model.layers.0.self_attn.q_proj.bias' not found"), "%s",
	       errmsg());
	free(qcfg);
	free(d);
}

/* A multimodal Gemma3 checkpoint: text weights under language_model.model. */
static void test_open_gemma3_nested(void)
{
	static const char *cfg =
		"{\"model_type\":\"gemma3\",\"architectures\":[\"Gemma3ForConditionalGeneration\"],"
		"\"text_config\":{\"model_type\":\"gemma3_text\",\"hidden_size\":4,"
		"\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
		"\"num_key_value_heads\":1,\"head_dim\":2,\"vocab_size\":8}}";
	static const char *const names[] = {
		"embed_tokens.weight", "norm.weight", "layers.0.input_layernorm.weight",
		"layers.0.post_attention_layernorm.weight", "layers.0.pre_feedforward_layernorm.weight",
		"layers.0.post_feedforward_layernorm.weight", "layers.0.self_attn.q_proj.weight",
		"layers.0.self_attn.k_proj.weight", "layers.0.self_attn.v_proj.weight",
		"layers.0.self_attn.o_proj.weight", "layers.0.self_attn.q_norm.weight",
		"layers.0.self_attn.k_norm.weight", "layers.0.mlp.gate_proj.weight",
		"layers.0.mlp.up_proj.weight", "layers.0.mlp.down_proj.weight",
	};
	static const int shp[][3] = {{2, 8, 4}, {1, 4, 0}, {1, 4, 0}, {1, 4, 0}, {1, 4, 0},
	                             {1, 4, 0}, {2, 4, 4}, {2, 2, 4}, {2, 2, 4}, {2, 4, 4},
	                             {1, 2, 0}, {1, 2, 0}, {2, 8, 4}, {2, 8, 4}, {2, 4, 8}};
	tspec t[16];
	char full[15][96];
	for (int i = 0; i < 15; i++) {
		snprintf(full[i], sizeof full[i], "language_model.model.%s", names[i]);
		t[i] = (tspec){full[i], shp[i][0], (uint64_t)shp[i][1], (uint64_t)shp[i][2]};
	}
	t[15] = (tspec){"vision_tower.patch.weight", 1, 3, 0}; /* ignored */
	char *d = tiny_model("tiny-gemma3mm", cfg, t, 16);
	hf_model m;
	CHECKF(hf_model_open(&m, d) == 0, "%s", errmsg());
	if (m.dir) {
		CHECK_STR(m.prefix, "language_model.model.");
		CHECK(m.lm_head_tied && m.cfg.arch->id == ARCH_GEMMA3);
		CHECK(hf_layer_tensor(&m, 0, "self_attn.k_norm.weight") != NULL);
	}
	hf_model_close(&m);
	free(d);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(g_tmp, sizeof g_tmp, "%s/anemake-cfg-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(g_tmp)) {
		printf("FAIL setup: cannot create %s\n", g_tmp);
		return 1;
	}
	RUN(test_stories260k);
	RUN(test_llama_tiny_llama3_rope);
	RUN(test_gemma3_tiny);
	RUN(test_gemma3_nested);
	RUN(test_qwen2);
	RUN(test_qwen3);
	RUN(test_detection);
	RUN(test_new_families);
	RUN(test_tokenizer_config_json);
	RUN(test_rope_variants);
	RUN(test_refusals);
	RUN(test_intermediate_list);
	RUN(test_hf_cache);
	RUN(test_open_models);
	RUN(test_open_synthetic);
	RUN(test_open_gemma3_nested);
	rm_rf(g_tmp);
	return test_finish();
}
