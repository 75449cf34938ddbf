/* hfconfig.c: parse and check a HuggingFace config.json (see hfconfig.h).
 *
 * The file is small (a few KB) but untrusted: every field is type-checked
 * and range-checked, duplicate keys are refused (Python keeps the last one,
 * cJSON the first: rather than guess, ask for a clean file), and every error
 * is one line "<file>: <field> <what is wrong>". Defaults come from the
 * architecture's row in arch.c, never from model_type tests here.
 */
#include "checkpoint/hfconfig.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <math.h>     /* isfinite, floor */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SIZE (1 << 24)   /* any width, count or vocabulary: far above real models */
#define MAX_LAYERS 4096
#define MAX_EOS 64
/* Qwen2Config / Qwen3Config: layers from this index on use the sliding window */
#define QWEN_MAX_WINDOW_LAYERS 28

/* ------------------------------------------------------------------ */
/* Typed field access                                                  */

/* Strings from the file are printed cut short and with control characters
 * masked, so messages stay on one line. */
static const char *shown(const char *s, char buf[80])
{
	size_t n = 0;
	for (; s[n] && n < 72; n++)
		buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
	if (s[n])
		memcpy(buf + n, "...", 3), n += 3;
	buf[n] = 0;
	return buf;
}

/* The item, or NULL when absent or JSON null (HF writes null for "unset"). */
static const cJSON *field(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNull(j) ? NULL : j;
}

/* 1 and *out set when present, 0 when absent, -1 (error recorded) when not
 * an integer in [min, max]. */
static int get_int(const cJSON *o, const char *lbl, const char *key, long min, long max, int *out)
{
	const cJSON *j = field(o, key);
	if (!j)
		return 0;
	double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
	if (!(d >= (double)min && d <= (double)max) || d != floor(d))
		return errf("%s: %s must be an integer in [%ld, %ld]", lbl, key, min, max);
	*out = (int)d;
	return 1;
}

/* A finite number > 0 (for eps, RoPE bases, factors, scales). */
static int get_pos(const cJSON *o, const char *lbl, const char *key, double *out)
{
	const cJSON *j = field(o, key);
	if (!j)
		return 0;
	if (cJSON_IsNumber(j) && !isfinite(j->valuedouble))
		return errf("%s: %s is out of range (not a finite double)", lbl, key);
	if (!cJSON_IsNumber(j) || j->valuedouble <= 0)
		return errf("%s: %s must be a positive number", lbl, key);
	*out = j->valuedouble;
	return 1;
}

static int get_bool(const cJSON *o, const char *lbl, const char *key, int *out)
{
	const cJSON *j = field(o, key);
	if (!j)
		return 0;
	if (!cJSON_IsBool(j))
		return errf("%s: %s must be true or false", lbl, key);
	*out = cJSON_IsTrue(j);
	return 1;
}

static int get_str(const cJSON *o, const char *lbl, const char *key, const char **out)
{
	const cJSON *j = field(o, key);
	if (!j)
		return 0;
	if (!cJSON_IsString(j))
		return errf("%s: %s must be a string", lbl, key);
	*out = j->valuestring;
	return 1;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_unique_keys(const cJSON *o, const char *lbl)
{
	size_t n = 0, cap = 0;
	const char **keys = NULL;
	const cJSON *j;
	cJSON_ArrayForEach(j, o) {
		GROW(keys, cap, n + 1);
		keys[n++] = j->string;
	}
	if (n > 1)
		qsort(keys, n, sizeof *keys, cmp_cstr);
	int rc = 0;
	for (size_t i = 1; i < n && rc == 0; i++)
		if (strcmp(keys[i - 1], keys[i]) == 0) {
			char b[80];
			rc = errf("%s: key '%s' appears more than once", lbl, shown(keys[i], b));
		}
	free(keys);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Refusals: pre-quantized checkpoints                                 */

static int refuse_quantized(const cJSON *o, const char *lbl)
{
	const cJSON *q = field(o, "quantization_config");
	if (q) {
		const char *method = "unknown";
		get_str(q, lbl, "quant_method", &method);
		char b[80];
		return errf("%s: quantization_config present (quant_method '%s'): the checkpoint is "
		            "pre-quantized; anemake needs the original fp16/bf16/fp32 weights", lbl,
		            shown(method, b));
	}
	static const char *const keys[] = {"torch_dtype", "dtype"};
	for (int i = 0; i < 2; i++) {
		const char *t = NULL;
		if (get_str(o, lbl, keys[i], &t) < 0)
			return -1;
		if (t && (strncmp(t, "float8", 6) == 0 || strncmp(t, "int", 3) == 0 ||
		          strncmp(t, "uint", 4) == 0 || strstr(t, "fp8") || strstr(t, "float4"))) {
			char b[80];
			return errf("%s: %s '%s': the checkpoint is pre-quantized; anemake needs the "
			            "original fp16/bf16/fp32 weights", lbl, keys[i], shown(t, b));
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Nested text_config                                                  */

/* The object to read fields from: root itself, or a copy of text_config
 * with a few top-level fields copied down where it lacks them. */
static int text_view(cJSON *root, const char *lbl, cJSON **view, int *nested)
{
	const cJSON *tc = field(root, "text_config");
	*nested = tc != NULL;
	*view = root;
	if (!tc)
		return 0;
	if (!cJSON_IsObject(tc))
		return errf("%s: text_config must be an object", lbl);
	if (check_unique_keys(tc, lbl) || refuse_quantized(tc, lbl))
		return -1;
	static const char *const down[] = {
		"model_type", "architectures", "tie_word_embeddings", "torch_dtype", "dtype",
		"bos_token_id", "eos_token_id",
	};
	cJSON *v = cJSON_Duplicate(tc, 1);
	if (!v)
		die("out of memory copying text_config");
	for (size_t i = 0; i < sizeof down / sizeof down[0]; i++) {
		const cJSON *top = cJSON_GetObjectItemCaseSensitive(root, down[i]);
		if (top && !cJSON_GetObjectItemCaseSensitive(v, down[i]))
			cJSON_AddItemToObject(v, down[i], cJSON_Duplicate(top, 1));
	}
	*view = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Architecture and sizes                                              */

static int parse_arch(const cJSON *o, const char *lbl, hf_config *c)
{
	const char *mt = NULL, *cls = NULL;
	if (get_str(o, lbl, "model_type", &mt) < 0)
		return -1;
	const cJSON *archs = field(o, "architectures");
	if (archs && (!cJSON_IsArray(archs) || (archs->child && !cJSON_IsString(archs->child))))
		return errf("%s: architectures must be a list of strings", lbl);
	if (archs && archs->child)
		cls = archs->child->valuestring;
	if (!(c->arch = arch_detect(mt, cls, lbl)))
		return -1;
	c->model_type = xstrdup(mt ? mt : cls);
	return 0;
}

/* intermediate_size: one int, or a per-layer list whose entries all agree. */
static int parse_intermediate(const cJSON *o, const char *lbl, int def, int *out)
{
	const cJSON *j = field(o, "intermediate_size");
	if (!cJSON_IsArray(j)) {
		int r = get_int(o, lbl, "intermediate_size", 1, MAX_SIZE, out);
		if (r == 0 && !(*out = def))
			return errf("%s: required field 'intermediate_size' is missing", lbl);
		return r < 0 ? -1 : 0;
	}
	int first = 0, i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, j) {
		double d = cJSON_IsNumber(e) ? e->valuedouble : 0;
		if (!(d >= 1 && d <= MAX_SIZE) || d != floor(d))
			return errf("%s: intermediate_size[%d] must be a positive integer", lbl, i);
		if (i++ == 0)
			first = (int)d;
		else if ((int)d != first)
			return errf("%s: intermediate_size differs between layers (%d and %d): "
			            "anemake needs one MLP width", lbl, first, (int)d);
	}
	if (!i)
		return errf("%s: intermediate_size is an empty list", lbl);
	*out = first;
	return 0;
}

/* A required size, or (nested configs only) the architecture default. */
static int size_field(const cJSON *o, const char *lbl, const char *key, int def, int *out)
{
	int r = get_int(o, lbl, key, 1, MAX_SIZE, out);
	if (r < 0)
		return -1;
	if (r == 0 && !(*out = def))
		return errf("%s: required field '%s' is missing", lbl, key);
	return 0;
}

static int parse_sizes(const cJSON *o, const char *lbl, int nested, hf_config *c)
{
	const arch_defaults *d = &c->arch->def;
#define DEF(x) (nested ? d->x : 0)
	if (size_field(o, lbl, "hidden_size", DEF(hidden_size), &c->hidden_size) ||
	    parse_intermediate(o, lbl, DEF(intermediate_size), &c->intermediate_size) ||
	    size_field(o, lbl, "num_hidden_layers", DEF(num_hidden_layers), &c->num_hidden_layers) ||
	    size_field(o, lbl, "num_attention_heads", DEF(num_attention_heads),
	               &c->num_attention_heads) ||
	    size_field(o, lbl, "vocab_size", DEF(vocab_size), &c->vocab_size))
		return -1;
	c->num_key_value_heads = nested && d->num_key_value_heads ? d->num_key_value_heads
	                                                          : c->num_attention_heads;
	c->head_dim = DEF(head_dim);
#undef DEF
	if (get_int(o, lbl, "num_key_value_heads", 1, MAX_SIZE, &c->num_key_value_heads) < 0 ||
	    get_int(o, lbl, "head_dim", 1, MAX_SIZE, &c->head_dim) < 0)
		return -1;
	if (c->head_dim == 0) {
		if (c->hidden_size % c->num_attention_heads)
			return errf("%s: hidden_size %d is not a multiple of num_attention_heads %d "
			            "and head_dim is not given", lbl, c->hidden_size,
			            c->num_attention_heads);
		c->head_dim = c->hidden_size / c->num_attention_heads;
	}
	c->max_position_embeddings = d->max_position_embeddings;
	return get_int(o, lbl, "max_position_embeddings", 1, INT32_MAX,
	               &c->max_position_embeddings) < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* RoPE                                                                */

static int rope_llama3(const cJSON *rs, const char *lbl, hf_rope_scaling *r)
{
	static const char *const keys[] = {"factor", "low_freq_factor", "high_freq_factor"};
	double *dst[] = {&r->factor, &r->low_freq_factor, &r->high_freq_factor};
	for (int i = 0; i < 3; i++) {
		int k = get_pos(rs, lbl, keys[i], dst[i]);
		if (k == 0)
			return errf("%s: rope_scaling of type llama3 needs %s", lbl, keys[i]);
		if (k < 0)
			return -1;
	}
	int k = get_int(rs, lbl, "original_max_position_embeddings", 1, INT32_MAX,
	                &r->original_max_position_embeddings);
	if (k == 0)
		return errf("%s: rope_scaling of type llama3 needs original_max_position_embeddings", lbl);
	if (k < 0)
		return -1;
	if (r->high_freq_factor <= r->low_freq_factor)
		return errf("%s: rope_scaling high_freq_factor %g must exceed low_freq_factor %g", lbl,
		            r->high_freq_factor, r->low_freq_factor);
	return 0;
}

/* A longrope factor list: n positive numbers. */
static int factor_list(const cJSON *rs, const char *lbl, const char *key, int n, double **out)
{
	const cJSON *j = field(rs, key), *e;
	if (!j)
		return errf("%s: rope_scaling of type longrope needs %s", lbl, key);
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != n)
		return errf("%s: rope_scaling %s must list %d numbers (rotary dimensions / 2)", lbl, key, n);
	*out = xcalloc((size_t)n, sizeof **out);
	int i = 0;
	cJSON_ArrayForEach(e, j) {
		if (!cJSON_IsNumber(e) || !(e->valuedouble > 0) || !isfinite(e->valuedouble))
			return errf("%s: rope_scaling %s[%d] must be a positive number", lbl, key, i);
		(*out)[i++] = e->valuedouble;
	}
	return 0;
}

/* Phi3's longrope (HF _compute_longrope_parameters): factor lists of
 * rotary_dim / 2, the pretrained context (in rope_scaling, else the
 * config's top level, else the class default), and the cos/sin factor
 * sqrt(1 + ln(s) / ln(original)) for s = factor, or else
 * max_position_embeddings / original, when s > 1. */
static int rope_longrope(const cJSON *rs, const cJSON *o, const char *lbl, const hf_config *c, hf_rope_scaling *r)
{
	r->kind = ROPE_LONGROPE;
	r->n_factors = c->rotary_dim / 2;
	if (factor_list(rs, lbl, "short_factor", r->n_factors, &r->short_factor) ||
	    factor_list(rs, lbl, "long_factor", r->n_factors, &r->long_factor))
		return -1;
	int orig = c->arch->def.original_max_position_embeddings;
	int k = get_int(rs, lbl, "original_max_position_embeddings", 1, INT32_MAX, &orig);
	if (k == 0)
		k = get_int(o, lbl, "original_max_position_embeddings", 1, INT32_MAX, &orig);
	if (k < 0)
		return -1;
	r->original_max_position_embeddings = orig ? orig : c->max_position_embeddings;
	double factor = (double)c->max_position_embeddings / r->original_max_position_embeddings;
	if (get_pos(rs, lbl, "factor", &factor) < 0)
		return -1;
	r->factor = factor;
	r->attention_factor = factor <= 1 ? 1.0 : sqrt(1 + log(factor) / log((double)r->original_max_position_embeddings));
	return get_pos(rs, lbl, "attention_factor", &r->attention_factor) < 0 ? -1 : 0;
}

/* rope_scaling (or a v5 rope_parameters object): `what` names it. */
static int parse_rope_scaling(const cJSON *rs, const cJSON *o, const char *lbl, const char *what,
                              const hf_config *c, hf_rope_scaling *r)
{
	memset(r, 0, sizeof *r);
	if (!rs)
		return 0;
	if (!cJSON_IsObject(rs))
		return errf("%s: %s must be an object or null", lbl, what);
	const char *type = NULL;
	if (get_str(rs, lbl, "rope_type", &type) < 0 || (!type && get_str(rs, lbl, "type", &type) < 0))
		return -1;
	if (!type)
		return errf("%s: %s has no rope_type", lbl, what);
	if (strcmp(type, "default") == 0)
		return 0;
	r->type = xstrdup(type);
	if (strcmp(type, "linear") == 0) {
		r->kind = ROPE_LINEAR;
		int k = get_pos(rs, lbl, "factor", &r->factor);
		return k == 0 ? errf("%s: %s of type linear needs factor", lbl, what) : k < 0 ? -1 : 0;
	}
	if (strcmp(type, "llama3") == 0) {
		r->kind = ROPE_LLAMA3;
		return rope_llama3(rs, lbl, r);
	}
	if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0) /* "su": Phi-3's first name for it */
		return rope_longrope(rs, o, lbl, c, r);
	r->kind = ROPE_OTHER; /* yarn, dynamic, longrope...: the stage decides */
	return get_pos(rs, lbl, "factor", &r->factor) < 0 ? -1 : 0;
}

/* rope_theta and rope_scaling, or transformers v5's rope_parameters (flat,
 * or per layer type for Gemma3: {"full_attention": {...}, "sliding_attention": {...}}). */
static int parse_rope(const cJSON *o, const char *lbl, hf_config *c)
{
	const cJSON *rp = field(o, "rope_parameters"), *full = rp, *local = NULL;
	if (rp && !cJSON_IsObject(rp))
		return errf("%s: rope_parameters must be an object", lbl);
	if (rp && field(rp, "full_attention")) {
		full = field(rp, "full_attention");
		local = field(rp, "sliding_attention");
		if (!cJSON_IsObject(full) || (local && !cJSON_IsObject(local)))
			return errf("%s: rope_parameters entries must be objects", lbl);
	}
	const arch_defaults *d = &c->arch->def;
	c->rope_theta = d->rope_theta;
	int k = get_pos(o, lbl, "rope_theta", &c->rope_theta);
	if (k == 0 && full)
		k = get_pos(full, lbl, "rope_theta", &c->rope_theta);
	if (k < 0)
		return -1;
	/* Phi3 rotates the first head_dim * partial_rotary_factor dims of each head */
	double prf = 1.0;
	k = get_pos(o, lbl, "partial_rotary_factor", &prf);
	if (k == 0 && full)
		k = get_pos(full, lbl, "partial_rotary_factor", &prf);
	if (k < 0)
		return -1;
	if (prf > 1)
		return errf("%s: partial_rotary_factor %g must be in (0, 1]", lbl, prf);
	c->rotary_dim = (int)(c->head_dim * prf);
	if (prf != 1.0 && (c->rotary_dim < 2 || c->rotary_dim % 2))
		return errf("%s: partial_rotary_factor %g gives %d rotary dimensions: RoPE needs an even number",
		            lbl, prf, c->rotary_dim);
	const cJSON *rs = field(o, "rope_scaling");
	if (parse_rope_scaling(rs ? rs : full, o, lbl, rs ? "rope_scaling" : "rope_parameters", c,
	                       &c->rope_scaling) != 0)
		return -1;
	/* architectures without local RoPE: the same base everywhere */
	c->rope_local_base_freq = d->rope_local_base_freq ? d->rope_local_base_freq : c->rope_theta;
	k = get_pos(o, lbl, "rope_local_base_freq", &c->rope_local_base_freq);
	if (k == 0 && local)
		k = get_pos(local, lbl, "rope_theta", &c->rope_local_base_freq);
	return k < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Flags, activation, tokens                                           */

static int parse_flags(const cJSON *o, const char *lbl, hf_config *c)
{
	const arch_defaults *d = &c->arch->def;
	c->tie_word_embeddings = d->tie_word_embeddings;
	c->attention_bias = d->attention_bias;
	c->mlp_bias = 0;
	c->rms_norm_eps = d->rms_norm_eps;
	if (get_bool(o, lbl, "tie_word_embeddings", &c->tie_word_embeddings) < 0 ||
	    get_bool(o, lbl, "attention_bias", &c->attention_bias) < 0 ||
	    get_bool(o, lbl, "mlp_bias", &c->mlp_bias) < 0 ||
	    get_pos(o, lbl, "rms_norm_eps", &c->rms_norm_eps) < 0)
		return -1;
	const char *dt = NULL;
	if (get_str(o, lbl, "torch_dtype", &dt) < 0 || (!dt && get_str(o, lbl, "dtype", &dt) < 0))
		return -1;
	c->torch_dtype = dt ? xstrdup(dt) : NULL;
	return 0;
}

static int parse_act(const cJSON *o, const char *lbl, hf_config *c)
{
	const char *s = NULL, *key = "hidden_activation";
	if (get_str(o, lbl, key, &s) < 0)
		return -1;
	if (!s && get_str(o, lbl, key = "hidden_act", &s) < 0)
		return -1;
	if (!s)
		s = c->arch->def.hidden_act;
	c->hidden_act = xstrdup(s);
	char b[80];
	if (arch_parse_act(s, &c->act) != 0)
		return errf("%s: %s '%s' is not an activation anemake knows (silu, gelu_pytorch_tanh)",
		            lbl, key, shown(s, b));
	if (c->act != c->arch->act)
		return errf("%s: %s '%s' does not match %s, which uses %s", lbl, key, shown(s, b),
		            c->arch->name, arch_act_name(c->arch->act));
	return 0;
}

static int parse_tokens(const cJSON *o, const char *lbl, hf_config *c)
{
	c->bos_token_id = -1;
	if (get_int(o, lbl, "bos_token_id", 0, INT32_MAX, &c->bos_token_id) < 0)
		return -1;
	const cJSON *eos = field(o, "eos_token_id");
	if (!eos)
		return 0;
	if (!cJSON_IsArray(eos)) {
		c->eos_token_ids = xmalloc(sizeof *c->eos_token_ids);
		c->n_eos = 1;
		return get_int(o, lbl, "eos_token_id", 0, INT32_MAX, c->eos_token_ids) < 0 ? -1 : 0;
	}
	int n = cJSON_GetArraySize(eos);
	if (n > MAX_EOS)
		return errf("%s: eos_token_id lists more than %d ids", lbl, MAX_EOS);
	c->eos_token_ids = xcalloc((size_t)n, sizeof *c->eos_token_ids);
	const cJSON *e;
	cJSON_ArrayForEach(e, eos) {
		double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
		if (!(d >= 0 && d <= INT32_MAX) || d != floor(d))
			return errf("%s: eos_token_id[%d] must be a non-negative integer", lbl, c->n_eos);
		c->eos_token_ids[c->n_eos++] = (int)d;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sliding window and layer types                                      */

static int parse_window(const cJSON *o, const char *lbl, int nested, hf_config *c)
{
	const arch_defaults *d = &c->arch->def;
	int use = 0;
	if (get_bool(o, lbl, "use_sliding_window", &use) < 0)
		return -1;
	int w = 0, k = get_int(o, lbl, "sliding_window", 1, INT32_MAX, &w);
	if (k < 0)
		return -1;
	if (c->arch->window_when_set) {
		/* Mistral, Phi3: a window whenever one is set (an absent key is the
		 * class default, JSON null is none) */
		if (!k && !cJSON_GetObjectItemCaseSensitive(o, "sliding_window"))
			w = d->sliding_window;
		c->use_sliding_window = w > 0;
		c->sliding_window = w;
		return 0;
	}
	c->use_sliding_window = c->arch->always_sliding_window || use;
	if (!c->use_sliding_window)
		c->sliding_window = 0;
	else if (k)
		c->sliding_window = w;
	else if (c->arch->always_sliding_window)
		c->sliding_window = nested ? d->nested_sliding_window : d->sliding_window;
	else
		return errf("%s: use_sliding_window is true but sliding_window is not given", lbl);
	return 0;
}

/* Without layer_types: Gemma3 makes every Nth layer global, Qwen slides
 * from max_window_layers on. */
static int default_layer_types(const cJSON *o, const char *lbl, hf_config *c)
{
	int n = c->num_hidden_layers;
	if (c->arch->always_sliding_window) {
		int pattern = c->arch->def.sliding_window_pattern;
		if (get_int(o, lbl, "sliding_window_pattern", 1, MAX_LAYERS, &pattern) < 0)
			return -1;
		for (int i = 0; i < n; i++)
			c->layer_sliding[i] = (i + 1) % pattern != 0;
		return 0;
	}
	if (c->arch->window_when_set) {
		memset(c->layer_sliding, c->use_sliding_window, (size_t)n);
		return 0;
	}
	int from = QWEN_MAX_WINDOW_LAYERS;
	if (get_int(o, lbl, "max_window_layers", 0, MAX_LAYERS, &from) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		c->layer_sliding[i] = c->use_sliding_window && i >= from;
	return 0;
}

static int parse_layer_types(const cJSON *o, const char *lbl, hf_config *c)
{
	int n = c->num_hidden_layers;
	c->layer_sliding = xcalloc((size_t)n, 1);
	const cJSON *lt = field(o, "layer_types");
	if (!lt)
		return default_layer_types(o, lbl, c);
	if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != n)
		return errf("%s: layer_types must list one type per layer (%d)", lbl, n);
	int i = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, lt) {
		const char *s = cJSON_IsString(e) ? e->valuestring : "";
		char b[80];
		if (strcmp(s, "sliding_attention") != 0 && strcmp(s, "full_attention") != 0)
			return errf("%s: layer_types[%d] '%s' is neither sliding_attention nor "
			            "full_attention", lbl, i, shown(s, b));
		/* a listed sliding layer slides only when the model uses a window */
		c->layer_sliding[i++] = c->use_sliding_window && s[0] == 's';
	}
	return 0;
}

static int parse_gemma(const cJSON *o, const char *lbl, hf_config *c)
{
	double q = c->arch->def.query_pre_attn_scalar;
	c->query_pre_attn_scalar = q ? q : c->head_dim; /* everyone else scales by 1/sqrt(head_dim) */
	if (get_pos(o, lbl, "query_pre_attn_scalar", &c->query_pre_attn_scalar) < 0)
		return -1;
	int k = get_pos(o, lbl, "final_logit_softcapping", &c->final_logit_softcapping);
	if (k < 0)
		return -1;
	c->has_final_logit_softcapping = k;
	k = get_pos(o, lbl, "attn_logit_softcapping", &c->attn_logit_softcapping);
	c->has_attn_logit_softcapping = k > 0;
	c->attn_scale = pow(c->query_pre_attn_scalar, -0.5);
	return k < 0 ? -1 : 0;
}

/* Granite's muP multipliers (GraniteConfig defaults: all 1.0). */
static int parse_granite(const cJSON *o, const char *lbl, hf_config *c)
{
	c->embedding_multiplier = c->residual_multiplier = c->logits_scaling = 1.0;
	if (!c->arch->mup_multipliers)
		return 0;
	c->attn_scale = 1.0;
	return get_pos(o, lbl, "embedding_multiplier", &c->embedding_multiplier) < 0 ||
	       get_pos(o, lbl, "residual_multiplier", &c->residual_multiplier) < 0 ||
	       get_pos(o, lbl, "attention_multiplier", &c->attn_scale) < 0 ||
	       get_pos(o, lbl, "logits_scaling", &c->logits_scaling) < 0 ? -1 : 0;
}

/* SmolLM3's NoPE layers: no_rope_layers (1 = RoPE, 0 = none, at least one
 * entry per layer), else every no_rope_layer_interval-th layer (default 4). */
static int parse_nope(const cJSON *o, const char *lbl, hf_config *c)
{
	int n = c->num_hidden_layers;
	c->layer_nope = xcalloc((size_t)n, 1);
	if (!c->arch->nope_layers)
		return 0;
	const cJSON *list = field(o, "no_rope_layers"), *e;
	if (list) {
		if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < n)
			return errf("%s: no_rope_layers must list 0 or 1 for each of the %d layers", lbl, n);
		int i = 0;
		cJSON_ArrayForEach(e, list) {
			if (!cJSON_IsNumber(e) || (e->valuedouble != 0 && e->valuedouble != 1))
				return errf("%s: no_rope_layers[%d] must be 0 or 1", lbl, i);
			if (i < n)
				c->layer_nope[i] = e->valuedouble == 0;
			i++;
		}
		return 0;
	}
	int every = 4;
	if (get_int(o, lbl, "no_rope_layer_interval", 1, MAX_LAYERS, &every) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		c->layer_nope[i] = (i + 1) % every == 0;
	return 0;
}

static int sanity(const char *lbl, const hf_config *c)
{
	if (c->num_hidden_layers > MAX_LAYERS)
		return errf("%s: num_hidden_layers %d exceeds %d", lbl, c->num_hidden_layers, MAX_LAYERS);
	if (c->num_attention_heads % c->num_key_value_heads)
		return errf("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
		            lbl, c->num_attention_heads, c->num_key_value_heads);
	if (c->head_dim % 2)
		return errf("%s: head_dim %d is odd: rotary embeddings need pairs", lbl, c->head_dim);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Public                                                              */

static int parse_object(hf_config *c, cJSON *root, const char *lbl)
{
	if (!cJSON_IsObject(root))
		return errf("%s: not a JSON object", lbl);
	if (check_unique_keys(root, lbl) || refuse_quantized(root, lbl))
		return -1;
	cJSON *o;
	int nested;
	if (text_view(root, lbl, &o, &nested) != 0)
		return -1;
	c->tensor_scope = nested ? "language_model." : "";
	int rc = parse_arch(o, lbl, c) || parse_sizes(o, lbl, nested, c) || parse_rope(o, lbl, c) ||
	         parse_flags(o, lbl, c) || parse_act(o, lbl, c) || parse_tokens(o, lbl, c) ||
	         parse_window(o, lbl, nested, c) || sanity(lbl, c) ||
	         parse_layer_types(o, lbl, c) || parse_gemma(o, lbl, c) || parse_granite(o, lbl, c) ||
	         parse_nope(o, lbl, c);
	if (o != root)
		cJSON_Delete(o);
	return rc ? -1 : 0;
}

int hf_config_parse(hf_config *c, const char *text, size_t len, const char *label)
{
	memset(c, 0, sizeof *c);
	c->path = xstrdup(label);
	/* cJSON may read one byte past the given length: parse a terminated copy */
	char *copy = xstrndup(text, len);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
	int rc;
	if (!root)
		rc = errf("%s: not valid JSON (error near byte %zu)", label,
		          end ? (size_t)(end - copy) : (size_t)0);
	else
		rc = parse_object(c, root, label);
	for (size_t i = end ? (size_t)(end - copy) : len; rc == 0 && i < len; i++)
		if (!copy[i] || !strchr(" \t\r\n", copy[i]))
			rc = errf("%s: trailing bytes after the JSON object (byte %zu)", label, i);
	cJSON_Delete(root);
	free(copy);
	if (rc)
		hf_config_release(c);
	return rc;
}

int hf_config_load(hf_config *c, const char *path)
{
	memset(c, 0, sizeof *c);
	char *text;
	size_t n;
	if (read_file(path, FS_MAX_TEXT, &text, &n) != 0)
		return -1;
	int rc = hf_config_parse(c, text, n, path);
	free(text);
	return rc;
}

void hf_config_release(hf_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->model_type);
	free(c->rope_scaling.type);
	free(c->rope_scaling.short_factor);
	free(c->rope_scaling.long_factor);
	free(c->layer_nope);
	free(c->hidden_act);
	free(c->eos_token_ids);
	free(c->torch_dtype);
	free(c->layer_sliding);
	memset(c, 0, sizeof *c);
}

int hf_config_layer_sliding(const hf_config *c, int layer)
{
	ASSERT(layer >= 0 && layer < c->num_hidden_layers);
	return c->layer_sliding[layer];
}

int hf_config_rotary_dim(const hf_config *c)
{
	return c->rotary_dim ? c->rotary_dim : c->head_dim;
}

int hf_config_layer_rope(const hf_config *c, int layer)
{
	ASSERT(layer >= 0 && layer < c->num_hidden_layers);
	return !c->layer_nope || !c->layer_nope[layer];
}
