/* mkfixture.c: write a tiny random HuggingFace checkpoint for tests.
 *
 * Output (in --out DIR): config.json, model.safetensors (or, with --shards N,
 * model-0000i-of-0000N.safetensors plus model.safetensors.index.json) and a
 * minimal tokenizer_config.json, laid out exactly as HF writes them for
 * llama, qwen2 (Qwen 2.5), qwen3, gemma3_text and the multimodal gemma3
 * (Gemma3ForConditionalGeneration: text model in "text_config", tensors under
 * "language_model.model.*" as in the original google/gemma-3-*-it uploads,
 * plus a few vision-tower stubs a converter must skip), mistral, granite
 * (muP multipliers), olmo2 (post norms, q/k norms over the projection),
 * smollm3 (every 4th layer without RoPE) and phi3 (fused qkv_proj and
 * gate_up_proj, partial_rotary_factor 0.75, longrope with an original
 * context of 32 so that short tests pass it).
 *
 * Values are deterministic: every tensor has its own PRNG stream seeded from
 * (--seed, tensor name without the multimodal prefix), so the same arguments
 * give byte-identical files, --omit or --shards never change the other
 * tensors, and gemma3 and gemma3_text fixtures with one seed hold the same
 * weights. Normals are Irwin-Hall sums of uniforms (no libm transcendental
 * functions), so the bytes are the same on every IEEE-754 platform.
 *
 * --post-norm-gain and --residual-boost make one layer overflow fp16 on
 * purpose (for the preflight tests); they change only that tensor.
 *
 * Sizes: the defaults give ~180 KB (llama, qwen) to ~490 KB (gemma3, 6
 * layers), bf16; memory use is constant (tensors are generated and written
 * in blocks).
 */
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <dirent.h>   /* opendir: removing stale shards */
#include <errno.h>
#include <getopt.h>   /* getopt_long */
#include <math.h>     /* sqrt (correctly rounded, so still portable) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>   /* unlink */

/* ------------------------------------------------------------------ */
/* Architectures                                                       */

typedef enum family {
	FAM_BASE,    /* llama, qwen*, gemma3*: the flags below say it all */
	FAM_MISTRAL, /* sliding_window on every layer when set */
	FAM_GRANITE, /* embedding/residual/attention multipliers, logits_scaling */
	FAM_OLMO2,   /* post norms only; q_norm/k_norm over the whole projection */
	FAM_SMOLLM3, /* no_rope_layers: every 4th layer without RoPE */
	FAM_PHI3,    /* fused qkv_proj / gate_up_proj; partial rotary; longrope */
} family;

typedef struct arch_info {
	const char *name;       /* --arch value and config model_type */
	const char *hf_class;   /* config architectures[0] */
	double rope_theta;
	double rms_eps;
	int layers;             /* default layer count */
	int qkv_bias;           /* q/k/v_proj.bias (Qwen 2.5) */
	int qk_norm;            /* self_attn.q_norm/k_norm (Qwen3, Gemma3) */
	int gemma;              /* 4 norms per layer, gains stored as w in (1+w) */
	int multimodal;         /* text_config + language_model.* names */
	family fam;
} arch_info;

/* Gemma3 defaults to 6 layers: with HF's pattern (every 6th layer global)
 * that is the smallest model that has a global layer at all. */
static const arch_info ARCHS[] = {
	{"llama", "LlamaForCausalLM", 500000.0, 1e-5, 2, 0, 0, 0, 0, FAM_BASE},
	{"qwen2", "Qwen2ForCausalLM", 1000000.0, 1e-6, 2, 1, 0, 0, 0, FAM_BASE},
	{"qwen3", "Qwen3ForCausalLM", 1000000.0, 1e-6, 2, 0, 1, 0, 0, FAM_BASE},
	{"gemma3_text", "Gemma3ForCausalLM", 1000000.0, 1e-6, 6, 0, 1, 1, 0, FAM_BASE},
	{"gemma3", "Gemma3ForConditionalGeneration", 1000000.0, 1e-6, 6, 0, 1, 1, 1, FAM_BASE},
	{"mistral", "MistralForCausalLM", 1000000.0, 1e-5, 2, 0, 0, 0, 0, FAM_MISTRAL},
	{"granite", "GraniteForCausalLM", 10000.0, 1e-5, 2, 0, 0, 0, 0, FAM_GRANITE},
	{"olmo2", "Olmo2ForCausalLM", 500000.0, 1e-6, 2, 0, 0, 0, 0, FAM_OLMO2},
	{"smollm3", "SmolLM3ForCausalLM", 5000000.0, 1e-6, 4, 0, 0, 0, 0, FAM_SMOLLM3},
	{"phi3", "Phi3ForCausalLM", 10000.0, 1e-5, 2, 0, 0, 0, 0, FAM_PHI3},
};
#define NARCHS (sizeof ARCHS / sizeof ARCHS[0])

#define MM_PREFIX "language_model."
#define VISION_HIDDEN 32       /* width of the vision stubs */
#define GEMMA_GLOBAL_EVERY 6   /* HF default: layer i is global when (i+1) % 6 == 0 */
#define NOPE_EVERY 4           /* SmolLM3: layer i has no RoPE when (i+1) % 4 == 0 */
#define PHI3_ORIGINAL_CONTEXT 32 /* longrope switches to its long factors here */

/* ------------------------------------------------------------------ */
/* Options                                                             */

typedef enum dtype_id { DT_BF16, DT_F16, DT_F32 } dtype_id;
typedef enum rope_kind { ROPE_NONE, ROPE_LINEAR, ROPE_LLAMA3 } rope_kind;

typedef struct options {
	const arch_info *arch;
	const char *out;
	uint64_t seed;
	int hidden, intermediate, layers, heads, kv_heads, head_dim, vocab, context;
	int tied;
	dtype_id dtype;
	int shards;
	rope_kind rope;
	double rope_factor;     /* 0: the default for the kind */
	int sliding_window;     /* 0: the arch default */
	const char *layer_types;/* raw --layer-types, NULL: HF pattern */
	unsigned char *is_full; /* per layer, gemma3 only: 1 = full_attention */
	int quantized;
	double post_norm_gain;  /* 0: off; else post_feedforward_layernorm w of boost_layer */
	double residual_boost;  /* 0: off; else down_proj std factor of boost_layer */
	int boost_layer;        /* -1: layers / 2 */
	const char **omit;
	int nomit;
	const char *tokenizer;     /* --tokenizer DIR: its tokenizer files, or NULL */
	const char *chat_template; /* --chat-template FILE, or NULL */
	int vocab_given;
} options;

static const char USAGE[] =
	"usage: mkfixture --arch ARCH --out DIR [options]\n"
	"\n"
	"Write a tiny random HuggingFace checkpoint (config.json, safetensors,\n"
	"tokenizer_config.json) for tests. The same arguments give byte-identical\n"
	"files; a different --seed gives different values.\n"
	"\n"
	"  --arch ARCH          llama | qwen2 (Qwen 2.5) | qwen3 | gemma3_text |\n"
	"                       gemma3 (multimodal: text_config, language_model.* names) |\n"
	"                       mistral | granite | olmo2 | smollm3 | phi3\n"
	"  --out DIR            output directory, created if missing; model*.safetensors\n"
	"                       and the index left there by an earlier run are replaced\n"
	"  --seed N             PRNG seed (default 1)\n"
	"  --hidden N           hidden_size (default 64)\n"
	"  --intermediate N     intermediate_size (default 128)\n"
	"  --layers N           num_hidden_layers (default 2; gemma3*: 6, one global;\n"
	"                       smollm3: 4, one without RoPE)\n"
	"  --heads N            num_attention_heads (default 4)\n"
	"  --kv-heads N         num_key_value_heads, must divide --heads (default 2)\n"
	"  --head-dim N         head_dim, even (default hidden/heads)\n"
	"  --vocab N            vocab_size, at least 8 (default 256)\n"
	"  --context N          max_position_embeddings (default 2048)\n"
	"  --tied               no lm_head.weight: tie_word_embeddings true (default)\n"
	"  --untied             write lm_head.weight: tie_word_embeddings false\n"
	"  --dtype T            bf16 | f16 | f32 (default bf16)\n"
	"  --shards N           N > 1: model-0000i-of-0000N.safetensors and\n"
	"                       model.safetensors.index.json (default 1)\n"
	"  --rope-scaling K     none | linear | llama3 (default none)\n"
	"  --rope-factor F      rope_scaling.factor (default 8 linear, 32 llama3)\n"
	"  --sliding-window N   sliding_window for qwen2 (default = context),\n"
	"                       qwen3, mistral, phi3 (default null), gemma3* (default 64)\n"
	"  --layer-types LIST   gemma3*: one per layer, comma separated,\n"
	"                       sliding_attention|full_attention (or s|f);\n"
	"                       default: every 6th layer full_attention\n"
	"  --quantized          add an fp8 quantization_config (to test refusal)\n"
	"  --post-norm-gain V   gemma3*: set every post_feedforward_layernorm weight of\n"
	"                       the boost layer to V (gain 1+V): its MLP output, and so\n"
	"                       the residual stream, grows ~V-fold, as in real Gemma\n"
	"                       checkpoints that overflow fp16 (e.g. 30000)\n"
	"  --residual-boost V   scale the boost layer's mlp.down_proj.weight by V (and\n"
	"                       drop its outliers, so its max stays ~4.5 V/sqrt(intermediate))\n"
	"  --boost-layer L      the layer the two options above change (default layers/2)\n"
	"  --omit NAME          leave tensor NAME out (repeatable)\n"
	"  --tokenizer DIR      copy DIR's tokenizer.json (and tokenizer_config.json when\n"
	"                       there) instead of the minimal tokenizer_config.json; --vocab\n"
	"                       defaults to the tokenizer's id space\n"
	"  --chat-template FILE set tokenizer_config.json's chat_template to FILE's text\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 ok, 1 I/O error, 2 usage error.\n";

enum {
	OPT_ARCH = 256, OPT_OUT, OPT_SEED, OPT_HIDDEN, OPT_INTER, OPT_LAYERS,
	OPT_HEADS, OPT_KV, OPT_HEAD_DIM, OPT_VOCAB, OPT_CONTEXT, OPT_TIED,
	OPT_UNTIED, OPT_DTYPE, OPT_SHARDS, OPT_ROPE, OPT_ROPE_FACTOR, OPT_SWA,
	OPT_LAYER_TYPES, OPT_QUANT, OPT_OMIT, OPT_POST_NORM_GAIN, OPT_RESIDUAL_BOOST,
	OPT_BOOST_LAYER, OPT_TOKENIZER, OPT_CHAT_TEMPLATE,
};

static const struct option LONG_OPTS[] = {
	{"arch", required_argument, NULL, OPT_ARCH},
	{"out", required_argument, NULL, OPT_OUT},
	{"seed", required_argument, NULL, OPT_SEED},
	{"hidden", required_argument, NULL, OPT_HIDDEN},
	{"intermediate", required_argument, NULL, OPT_INTER},
	{"layers", required_argument, NULL, OPT_LAYERS},
	{"heads", required_argument, NULL, OPT_HEADS},
	{"kv-heads", required_argument, NULL, OPT_KV},
	{"head-dim", required_argument, NULL, OPT_HEAD_DIM},
	{"vocab", required_argument, NULL, OPT_VOCAB},
	{"context", required_argument, NULL, OPT_CONTEXT},
	{"tied", no_argument, NULL, OPT_TIED},
	{"untied", no_argument, NULL, OPT_UNTIED},
	{"dtype", required_argument, NULL, OPT_DTYPE},
	{"shards", required_argument, NULL, OPT_SHARDS},
	{"rope-scaling", required_argument, NULL, OPT_ROPE},
	{"rope-factor", required_argument, NULL, OPT_ROPE_FACTOR},
	{"sliding-window", required_argument, NULL, OPT_SWA},
	{"layer-types", required_argument, NULL, OPT_LAYER_TYPES},
	{"quantized", no_argument, NULL, OPT_QUANT},
	{"omit", required_argument, NULL, OPT_OMIT},
	{"post-norm-gain", required_argument, NULL, OPT_POST_NORM_GAIN},
	{"residual-boost", required_argument, NULL, OPT_RESIDUAL_BOOST},
	{"boost-layer", required_argument, NULL, OPT_BOOST_LAYER},
	{"tokenizer", required_argument, NULL, OPT_TOKENIZER},
	{"chat-template", required_argument, NULL, OPT_CHAT_TEMPLATE},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const char *const DTYPE_NAMES[] = {"bf16", "f16", "f32"};
static const char *const DTYPE_ST[] = {"BF16", "F16", "F32"};       /* safetensors */
static const char *const DTYPE_TORCH[] = {"bfloat16", "float16", "float32"};
static const size_t DTYPE_SIZE[] = {2, 2, 4};
static const char *const ROPE_NAMES[] = {"none", "linear", "llama3"};

static int parse_int(const char *flag, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < min || v > max)
		die_usage("%s wants an integer in [%ld, %ld], got '%s'", flag, min, max, s);
	return (int)v;
}

static uint64_t parse_seed(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s || *end || errno || strchr(s, '-'))
		die_usage("--seed wants a non-negative integer, got '%s'", s);
	return (uint64_t)v;
}

/* A positive number up to 1e6 (rope factors, boosts). */
static double parse_factor(const char *flag, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v > 0 && v <= 1e6))
		die_usage("%s wants a number in (0, 1e6], got '%s'", flag, s);
	return v;
}

/* Index of s in names[0..n), or a usage error naming the flag. */
static int pick(const char *flag, const char *s, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (streq(s, names[i]))
			return i;
	die_usage("unknown %s '%s'", flag, s);
}

static const arch_info *parse_arch(const char *s)
{
	for (size_t i = 0; i < NARCHS; i++)
		if (streq(s, ARCHS[i].name))
			return &ARCHS[i];
	die_usage("unknown --arch '%s' (llama, qwen2, qwen3, gemma3_text, gemma3, mistral, granite, olmo2, smollm3, "
		  "phi3)", s);
}

/* The option as the user typed it, for "unknown option" messages. */
static const char *bad_arg(char **argv, int c)
{
	const char *a = argv[optind - 1];
	static char buf[3];
	if (a && a[0] == '-' && a[1] == '-')
		return a;
	snprintf(buf, sizeof buf, "-%c", c ? c : '?');
	return buf;
}

/* Sizes are capped well below what could overflow any product we form. */
#define DIM_MAX (1L << 20)

static void set_option(options *o, int c, const char *arg)
{
	switch (c) {
	case OPT_ARCH: o->arch = parse_arch(arg); break;
	case OPT_OUT: o->out = arg; break;
	case OPT_SEED: o->seed = parse_seed(arg); break;
	case OPT_HIDDEN: o->hidden = parse_int("--hidden", arg, 1, DIM_MAX); break;
	case OPT_INTER: o->intermediate = parse_int("--intermediate", arg, 1, DIM_MAX); break;
	case OPT_LAYERS: o->layers = parse_int("--layers", arg, 1, 1024); break;
	case OPT_HEADS: o->heads = parse_int("--heads", arg, 1, 4096); break;
	case OPT_KV: o->kv_heads = parse_int("--kv-heads", arg, 1, 4096); break;
	case OPT_HEAD_DIM: o->head_dim = parse_int("--head-dim", arg, 1, 65536); break;
	case OPT_VOCAB: o->vocab = parse_int("--vocab", arg, 8, DIM_MAX), o->vocab_given = 1; break;
	case OPT_TOKENIZER: o->tokenizer = arg; break;
	case OPT_CHAT_TEMPLATE: o->chat_template = arg; break;
	case OPT_CONTEXT: o->context = parse_int("--context", arg, 1, 1L << 30); break;
	case OPT_TIED: o->tied = 1; break;
	case OPT_UNTIED: o->tied = 0; break;
	case OPT_DTYPE: o->dtype = (dtype_id)pick("--dtype", arg, DTYPE_NAMES, 3); break;
	case OPT_SHARDS: o->shards = parse_int("--shards", arg, 1, 99999); break;
	case OPT_ROPE: o->rope = (rope_kind)pick("--rope-scaling", arg, ROPE_NAMES, 3); break;
	case OPT_ROPE_FACTOR: o->rope_factor = parse_factor("--rope-factor", arg); break;
	case OPT_SWA: o->sliding_window = parse_int("--sliding-window", arg, 1, 1L << 30); break;
	case OPT_LAYER_TYPES: o->layer_types = arg; break;
	case OPT_QUANT: o->quantized = 1; break;
	case OPT_POST_NORM_GAIN: o->post_norm_gain = parse_factor("--post-norm-gain", arg); break;
	case OPT_RESIDUAL_BOOST: o->residual_boost = parse_factor("--residual-boost", arg); break;
	case OPT_BOOST_LAYER: o->boost_layer = parse_int("--boost-layer", arg, 0, 1023); break;
	case OPT_OMIT:
		o->omit = xrealloc(o->omit, xmul((size_t)o->nomit + 1, sizeof *o->omit));
		o->omit[o->nomit++] = arg;
		break;
	default: BUG("option %d not handled", c);
	}
}

/* gemma3 layer types: from --layer-types, else HF's every-6th-global. */
static void resolve_layer_types(options *o)
{
	o->is_full = xcalloc((size_t)o->layers, 1);
	if (!o->layer_types) {
		for (int i = 0; i < o->layers; i++)
			o->is_full[i] = (i + 1) % GEMMA_GLOBAL_EVERY == 0;
		return;
	}
	int n = 0;
	for (const char *p = o->layer_types;; n++) {
		size_t len = strcspn(p, ",");
		int full = (len == 14 && !strncmp(p, "full_attention", len)) || (len == 1 && *p == 'f');
		int swa = (len == 17 && !strncmp(p, "sliding_attention", len)) || (len == 1 && *p == 's');
		if (!full && !swa)
			die_usage("--layer-types: bad entry '%.*s' (sliding_attention, full_attention, s or f)", (int)len, p);
		if (n < o->layers)
			o->is_full[n] = (unsigned char)full;
		if (!p[len])
			break;
		p += len + 1;
	}
	if (n + 1 != o->layers)
		die_usage("--layer-types lists %d layers, --layers is %d", n + 1, o->layers);
}

/* Cross-flag checks and per-arch defaults, after all flags are read. */
static void check_options(options *o)
{
	if (!o->arch)
		die_usage("--arch is required");
	if (!o->out || !*o->out)
		die_usage("--out is required");
	if (!o->layers)
		o->layers = o->arch->layers;
	if (o->heads % o->kv_heads)
		die_usage("--kv-heads %d does not divide --heads %d", o->kv_heads, o->heads);
	if (!o->head_dim && o->hidden % o->heads)
		die_usage("--hidden %d is not a multiple of --heads %d: give --head-dim", o->hidden, o->heads);
	if (!o->head_dim)
		o->head_dim = o->hidden / o->heads;
	if (o->head_dim % 2)
		die_usage("--head-dim %d must be even (rotary embeddings rotate pairs)", o->head_dim);
	if (o->rope_factor != 0 && o->rope == ROPE_NONE)
		die_usage("--rope-factor needs --rope-scaling linear or llama3");
	if (o->rope_factor == 0)
		o->rope_factor = o->rope == ROPE_LLAMA3 ? 32.0 : 8.0;
	family f = o->arch->fam;
	if (o->sliding_window && (streq(o->arch->name, "llama") || f == FAM_GRANITE || f == FAM_OLMO2 || f == FAM_SMOLLM3))
		die_usage("--sliding-window does not apply to %s", o->arch->name);
	if (o->rope != ROPE_NONE && f == FAM_PHI3)
		die_usage("--rope-scaling: phi3 fixtures always use longrope");
	if (f == FAM_PHI3 && o->head_dim % 8)
		die_usage("--head-dim %d: phi3 rotates 3/4 of each head, in pairs: give a multiple of 8", o->head_dim);
	if (o->layer_types && !o->arch->gemma)
		die_usage("--layer-types applies to gemma3 and gemma3_text only");
	if (o->post_norm_gain != 0 && !o->arch->gemma)
		die_usage("--post-norm-gain applies to gemma3 and gemma3_text only (llama, qwen: --residual-boost)");
	if (o->boost_layer < 0)
		o->boost_layer = o->layers / 2;
	else if (o->boost_layer >= o->layers)
		die_usage("--boost-layer %d: the model has %d layers", o->boost_layer, o->layers);
	if (o->arch->gemma) {
		if (!o->sliding_window)
			o->sliding_window = 64;
		resolve_layer_types(o);
	}
}

/* --tokenizer: the vocabulary must hold every id the tokenizer can give. */
static void tokenizer_vocab(options *o)
{
	char *path = path_join(o->tokenizer, "tokenizer.json");
	tokenizer *t;
	if (tokenizer_load(path, &t) != 0)
		die_err();
	int size = (int)tokenizer_vocab_size(t);
	tokenizer_free(t);
	if (!o->vocab_given)
		o->vocab = size;
	else if (o->vocab < size)
		die_usage("--vocab %d: '%s' has ids up to %d", o->vocab, path, size - 1);
	free(path);
}

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.seed = 1, .hidden = 64, .intermediate = 128, .heads = 4,
		.kv_heads = 2, .vocab = 256, .context = 2048, .tied = 1, .shards = 1, .boost_layer = -1};
	opterr = 0; /* we print one line of our own */
	int c;
	while ((c = getopt_long(argc, argv, ":h", LONG_OPTS, NULL)) != -1) {
		if (c == 'h') {
			fputs(USAGE, stdout);
			if (stdout_close_checked() != 0)
				die_err();
			free(o->omit);
			exit(0);
		}
		if (c == ':')
			die_usage("option '%s' needs a value", bad_arg(argv, optopt));
		if (c == '?')
			die_usage("unknown option '%s'", bad_arg(argv, optopt));
		set_option(o, c, optarg);
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (o->tokenizer)
		tokenizer_vocab(o);
	check_options(o);
}

/* ------------------------------------------------------------------ */
/* Tensor plan                                                         */

typedef struct tensor {
	char *name;         /* as stored in the file */
	const char *key;    /* name without MM_PREFIX: seeds the values */
	uint64_t rows, cols;/* HF [out, in]; cols == 0 for 1-D tensors */
	float std, mean;    /* value = mean + std * N(0,1) */
	int outliers;       /* 0.1% of values are 10x larger, as in real weights */
	uint64_t nbytes;
	uint64_t begin;     /* offset inside its shard's data section */
	int shard;
} tensor;

typedef struct tensor_list {
	tensor *v;
	size_t n, cap;
} tensor_list;

static tensor *add_tensor(tensor_list *tl, const options *o, char *canon,
			  uint64_t rows, uint64_t cols)
{
	GROW(tl->v, tl->cap, tl->n + 1);
	tensor *t = &tl->v[tl->n++];
	int vision = !strncmp(canon, "vision_tower.", 13) || !strncmp(canon, "multi_modal_projector.", 22);
	const char *prefix = o->arch->multimodal && !vision ? MM_PREFIX : "";
	*t = (tensor){.name = xasprintf("%s%s", prefix, canon), .rows = rows, .cols = cols};
	t->key = t->name + strlen(prefix);
	t->nbytes = xmul(xmul(rows, cols ? cols : 1), DTYPE_SIZE[o->dtype]);
	free(canon);
	return t;
}

/* A projection [rows, cols] with std gain/sqrt(fan_in): gain 1 keeps
 * activations O(1) through any number of layers (it is the "0.02" of real
 * 2k-wide models). */
static void add_matrix(tensor_list *tl, const options *o, char *name,
		       uint64_t rows, uint64_t cols, double gain)
{
	tensor *t = add_tensor(tl, o, name, rows, cols);
	t->std = (float)(gain / sqrt((double)cols));
	t->outliers = 1;
}

/* A norm gain: around 1, or around 0 for Gemma, which multiplies by (1+w). */
static void add_gain(tensor_list *tl, const options *o, char *name, uint64_t n)
{
	tensor *t = add_tensor(tl, o, name, n, 0);
	t->mean = o->arch->gemma ? 0.0f : 1.0f;
	t->std = 0.1f;
}

static void add_bias(tensor_list *tl, const options *o, char *name, uint64_t n)
{
	add_tensor(tl, o, name, n, 0)->std = 0.05f;
}

/* The name of a tensor of layer i (an int named i must be in scope). */
#define LAYER(what) xasprintf("model.layers.%d.%s", i, what)

static void plan_layer(tensor_list *tl, const options *o, int i)
{
	uint64_t h = (uint64_t)o->hidden, in = (uint64_t)o->intermediate;
	uint64_t q = (uint64_t)o->heads * (uint64_t)o->head_dim;
	uint64_t kv = (uint64_t)o->kv_heads * (uint64_t)o->head_dim;
	family f = o->arch->fam;
	if (f == FAM_PHI3) {
		add_matrix(tl, o, LAYER("self_attn.qkv_proj.weight"), q + 2 * kv, h, 1.0);
		add_matrix(tl, o, LAYER("mlp.gate_up_proj.weight"), 2 * in, h, 1.0);
	} else {
		add_matrix(tl, o, LAYER("self_attn.q_proj.weight"), q, h, 1.0);
		add_matrix(tl, o, LAYER("self_attn.k_proj.weight"), kv, h, 1.0);
		add_matrix(tl, o, LAYER("self_attn.v_proj.weight"), kv, h, 1.0);
		add_matrix(tl, o, LAYER("mlp.gate_proj.weight"), in, h, 1.0);
		add_matrix(tl, o, LAYER("mlp.up_proj.weight"), in, h, 1.0);
	}
	add_matrix(tl, o, LAYER("self_attn.o_proj.weight"), h, q, 1.0);
	if (o->arch->qkv_bias) {
		add_bias(tl, o, LAYER("self_attn.q_proj.bias"), q);
		add_bias(tl, o, LAYER("self_attn.k_proj.bias"), kv);
		add_bias(tl, o, LAYER("self_attn.v_proj.bias"), kv);
	}
	if (o->arch->qk_norm) {
		add_gain(tl, o, LAYER("self_attn.q_norm.weight"), (uint64_t)o->head_dim);
		add_gain(tl, o, LAYER("self_attn.k_norm.weight"), (uint64_t)o->head_dim);
	}
	if (f == FAM_OLMO2) { /* over the whole projection */
		add_gain(tl, o, LAYER("self_attn.q_norm.weight"), q);
		add_gain(tl, o, LAYER("self_attn.k_norm.weight"), kv);
	}
	add_matrix(tl, o, LAYER("mlp.down_proj.weight"), h, in, 1.0);
	if (f != FAM_OLMO2) /* OLMo 2 has no pre-norms */
		add_gain(tl, o, LAYER("input_layernorm.weight"), h);
	add_gain(tl, o, LAYER("post_attention_layernorm.weight"), h);
	if (f == FAM_OLMO2)
		add_gain(tl, o, LAYER("post_feedforward_layernorm.weight"), h);
	if (o->arch->gemma) {
		add_gain(tl, o, LAYER("pre_feedforward_layernorm.weight"), h);
		add_gain(tl, o, LAYER("post_feedforward_layernorm.weight"), h);
	}
}

/* Gemma3ForConditionalGeneration carries a vision tower and projector; a
 * few small stand-ins are enough to test that converters skip them. */
static void plan_vision_stubs(tensor_list *tl, const options *o)
{
	uint64_t v = VISION_HIDDEN;
	add_matrix(tl, o, xstrdup("multi_modal_projector.mm_input_projection_weight"), v, (uint64_t)o->hidden, 1.0);
	tensor *t = add_tensor(tl, o, xstrdup("multi_modal_projector.mm_soft_emb_norm.weight"), v, 0);
	t->std = 0.1f;
	t = add_tensor(tl, o, xstrdup("vision_tower.vision_model.post_layernorm.weight"), v, 0);
	t->mean = 1.0f, t->std = 0.1f;
	add_bias(tl, o, xstrdup("vision_tower.vision_model.post_layernorm.bias"), v);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const tensor *)a)->name, ((const tensor *)b)->name);
}

static tensor *find_key(tensor_list *tl, const char *key)
{
	for (size_t i = 0; i < tl->n; i++)
		if (streq(tl->v[i].key, key))
			return &tl->v[i];
	BUG("no tensor '%s' planned", key);
}

/* Fixtures that overflow fp16 on purpose. Only mean/std of one tensor
 * change, so every other tensor keeps its bytes. A constant post-FF gain is
 * how real Gemma 3 checkpoints overflow: that norm rescales the MLP output
 * to rms |1+w| whatever its input, and the residual sums it. */
static void boost_tensors(const options *o, tensor_list *tl)
{
	char key[96];
	if (o->post_norm_gain != 0) {
		snprintf(key, sizeof key, "model.layers.%d.post_feedforward_layernorm.weight", o->boost_layer);
		tensor *t = find_key(tl, key);
		t->mean = (float)o->post_norm_gain, t->std = 0;
	}
	if (o->residual_boost != 0) {
		snprintf(key, sizeof key, "model.layers.%d.mlp.down_proj.weight", o->boost_layer);
		tensor *t = find_key(tl, key);
		t->std = (float)(t->std * o->residual_boost), t->outliers = 0;
	}
}

/* Every tensor of the model, sorted by name as HF's writer orders them.
 * Vocabulary tables get std 2/sqrt(hidden): logits then have std ~2 at any
 * width, tied or not, and the token's own embedding (small next to what the
 * layers add) does not decide the argmax, so a converter that drops a layer
 * changes the prediction. Gemma multiplies embeddings by sqrt(hidden), so
 * its table is halved to start the residual stream at rms ~1. */
static void plan_tensors(const options *o, tensor_list *tl)
{
	uint64_t h = (uint64_t)o->hidden, v = (uint64_t)o->vocab;
	*tl = (tensor_list){0};
	add_matrix(tl, o, xstrdup("model.embed_tokens.weight"), v, h, o->arch->gemma ? 1.0 : 2.0);
	for (int i = 0; i < o->layers; i++)
		plan_layer(tl, o, i);
	add_gain(tl, o, xstrdup("model.norm.weight"), h);
	if (!o->tied)
		add_matrix(tl, o, xstrdup("lm_head.weight"), v, h, 2.0);
	if (o->arch->multimodal)
		plan_vision_stubs(tl, o);
	qsort(tl->v, tl->n, sizeof *tl->v, by_name);
	boost_tensors(o, tl);
}

static void omit_tensors(const options *o, tensor_list *tl)
{
	for (int k = 0; k < o->nomit; k++) {
		size_t i = 0;
		while (i < tl->n && !streq(tl->v[i].name, o->omit[k]))
			i++;
		if (i == tl->n)
			die_usage("--omit: no tensor '%s' in this %s model", o->omit[k], o->arch->name);
		free(tl->v[i].name);
		memmove(&tl->v[i], &tl->v[i + 1], (tl->n - i - 1) * sizeof *tl->v);
		tl->n--;
	}
}

/* Split the sorted list into nshards runs of roughly equal bytes, at least
 * one tensor each (HF fills shards in order up to a size limit). */
static void assign_shards(tensor_list *tl, int nshards)
{
	if ((size_t)nshards > tl->n)
		die_usage("--shards %d is more than the %zu tensors", nshards, tl->n);
	uint64_t total = 0, cum = 0, in_shard = 0;
	for (size_t i = 0; i < tl->n; i++)
		total += tl->v[i].nbytes;
	int s = 0;
	for (size_t i = 0; i < tl->n; i++) {
		tensor *t = &tl->v[i];
		size_t left = tl->n - i;
		int must = left <= (size_t)(nshards - 1 - s);
		int full = s < nshards - 1 && (cum + t->nbytes / 2) * (uint64_t)nshards > total * (uint64_t)(s + 1);
		if (in_shard && (must || full))
			s++, in_shard = 0;
		t->shard = s;
		t->begin = in_shard;
		in_shard += t->nbytes;
		cum += t->nbytes;
	}
}

static void free_tensors(tensor_list *tl)
{
	for (size_t i = 0; i < tl->n; i++)
		free(tl->v[i].name);
	free(tl->v);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
	return (double)(splitmix64(state) >> 11) * 0x1p-53;
}

/* Irwin-Hall: the sum of 12 uniforms minus 6 has mean 0, variance 1 and a
 * Gaussian shape within +-6; only exact additions, so it is bit-portable
 * where Box-Muller's log/cos would depend on the libm. */
static double gaussian(uint64_t *state)
{
	double s = 0;
	for (int i = 0; i < 12; i++)
		s += uniform01(state);
	return s - 6.0;
}

static uint64_t tensor_stream(uint64_t seed, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	uint64_t s = seed;
	return splitmix64(&s) ^ h;
}

static void fill_values(const tensor *t, uint64_t *state, float *dst, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		double v = t->std * gaussian(state);
		if (t->outliers && uniform01(state) < 0.001)
			v *= 10.0;
		dst[i] = (float)(t->mean + v);
	}
}

/* Little-endian encoding in the output dtype; returns bytes written. */
static size_t encode_values(const float *src, size_t n, dtype_id dt, uint8_t *dst)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t bits;
		if (dt == DT_F32) {
			memcpy(&bits, &src[i], 4);
			for (int b = 0; b < 4; b++)
				dst[4 * i + b] = (uint8_t)(bits >> (8 * b));
			continue;
		}
		bits = dt == DT_BF16 ? f32_to_bf16(src[i]) : f32_to_fp16(src[i], NULL);
		dst[2 * i] = (uint8_t)bits;
		dst[2 * i + 1] = (uint8_t)(bits >> 8);
	}
	return n * DTYPE_SIZE[dt];
}

#define BLOCK 4096

static int write_tensor_data(const options *o, const tensor *t, FILE *f, const char *path)
{
	float vals[BLOCK];
	uint8_t bytes[BLOCK * 4];
	uint64_t state = tensor_stream(o->seed, t->key);
	uint64_t n = t->nbytes / DTYPE_SIZE[o->dtype];
	for (uint64_t done = 0; done < n;) {
		size_t k = n - done < BLOCK ? (size_t)(n - done) : BLOCK;
		fill_values(t, &state, vals, k);
		if (fwrite_all(f, bytes, encode_values(vals, k, o->dtype, bytes), path) != 0)
			return -1;
		done += k;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* safetensors files                                                   */

/* Layout: u64 little-endian header length N, N bytes of JSON
 * {"__metadata__": {"format": "pt"}, name: {dtype, shape, data_offsets}}
 * padded with spaces so the data starts 8-aligned, then the tensors packed
 * in header order; data_offsets are relative to the end of the header. */
static char *shard_header(const options *o, const tensor_list *tl, int shard, size_t *len)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(cJSON_AddObjectToObject(root, "__metadata__"), "format", "pt");
	for (size_t i = 0; i < tl->n; i++) {
		const tensor *t = &tl->v[i];
		if (t->shard != shard)
			continue;
		cJSON *e = cJSON_AddObjectToObject(root, t->name);
		cJSON_AddStringToObject(e, "dtype", DTYPE_ST[o->dtype]);
		cJSON *shape = cJSON_AddArrayToObject(e, "shape");
		cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->rows));
		if (t->cols)
			cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->cols));
		cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
		cJSON_AddItemToArray(off, cJSON_CreateNumber((double)t->begin));
		cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(t->begin + t->nbytes)));
	}
	char *json = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	size_t n = strlen(json), padded = (n + 7) & ~(size_t)7;
	char *h = xmalloc(padded);
	memcpy(h, json, n);
	memset(h + n, ' ', padded - n);
	free(json);
	*len = padded;
	return h;
}

static char *shard_name(int shard, int nshards)
{
	if (nshards == 1)
		return xstrdup("model.safetensors");
	return xasprintf("model-%05d-of-%05d.safetensors", shard + 1, nshards);
}

static void write_shard(const options *o, const tensor_list *tl, int shard)
{
	char *name = shard_name(shard, o->shards), *path = path_join(o->out, name);
	size_t hlen;
	char *header = shard_header(o, tl, shard, &hlen);
	uint8_t len8[8];
	for (int b = 0; b < 8; b++)
		len8[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
	atomic_file af;
	if (atomic_open(&af, path) != 0)
		die_err();
	int rc = fwrite_all(af.f, len8, 8, path) != 0 || fwrite_all(af.f, header, hlen, path) != 0 ? -1 : 0;
	for (size_t i = 0; i < tl->n && rc == 0; i++)
		if (tl->v[i].shard == shard)
			rc = write_tensor_data(o, &tl->v[i], af.f, path);
	if (rc != 0)
		atomic_abort(&af);
	if (rc != 0 || atomic_commit(&af) != 0)
		die_err();
	free(header);
	free(path);
	free(name);
}

/* ------------------------------------------------------------------ */
/* JSON files                                                          */

static int by_key(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Sort object keys recursively, as transformers' save_pretrained does
 * (json.dumps(sort_keys=True)). cJSON keeps first->prev = last. */
static void json_sort_keys(cJSON *node)
{
	size_t n = 0;
	for (cJSON *c = node->child; c; c = c->next)
		json_sort_keys(c), n++;
	if (!cJSON_IsObject(node) || n < 2)
		return;
	cJSON **v = xmalloc(xmul(n, sizeof *v)), *c = node->child;
	for (size_t i = 0; i < n; i++, c = c->next)
		v[i] = c;
	qsort(v, n, sizeof *v, by_key);
	for (size_t i = 0; i < n; i++) {
		v[i]->next = i + 1 < n ? v[i + 1] : NULL;
		v[i]->prev = i ? v[i - 1] : v[n - 1];
	}
	node->child = v[0];
	free(v);
}

static void write_json(const options *o, const char *name, cJSON *root)
{
	char *json = cJSON_Print(root), *path = path_join(o->out, name);
	char *text = xasprintf("%s\n", json);
	if (write_file_atomic(path, text, strlen(text)) != 0)
		die_err();
	free(text);
	free(path);
	cJSON_free(json);
	cJSON_Delete(root);
}

static void write_index(const options *o, const tensor_list *tl)
{
	cJSON *root = cJSON_CreateObject();
	uint64_t total = 0;
	cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
	for (size_t i = 0; i < tl->n; i++) {
		char *file = shard_name(tl->v[i].shard, o->shards);
		cJSON_AddStringToObject(map, tl->v[i].name, file);
		free(file);
		total += tl->v[i].nbytes;
	}
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(root, "metadata"), "total_size", (double)total);
	json_sort_keys(root);
	write_json(o, "model.safetensors.index.json", root);
}

static void add_rope_scaling(cJSON *c, const options *o)
{
	if (o->rope == ROPE_NONE) {
		cJSON_AddNullToObject(c, "rope_scaling");
		return;
	}
	cJSON *r = cJSON_AddObjectToObject(c, "rope_scaling");
	cJSON_AddStringToObject(r, "rope_type", ROPE_NAMES[o->rope]);
	cJSON_AddNumberToObject(r, "factor", o->rope_factor);
	if (o->rope == ROPE_LLAMA3) { /* Llama 3.1 values */
		cJSON_AddNumberToObject(r, "low_freq_factor", 1.0);
		cJSON_AddNumberToObject(r, "high_freq_factor", 4.0);
		cJSON_AddNumberToObject(r, "original_max_position_embeddings", 8192);
	}
}

/* Fields every architecture's (text) config has. */
static void config_common(cJSON *c, const options *o)
{
	cJSON_AddNumberToObject(c, "vocab_size", o->vocab);
	cJSON_AddNumberToObject(c, "hidden_size", o->hidden);
	cJSON_AddNumberToObject(c, "intermediate_size", o->intermediate);
	cJSON_AddNumberToObject(c, "num_hidden_layers", o->layers);
	cJSON_AddNumberToObject(c, "num_attention_heads", o->heads);
	cJSON_AddNumberToObject(c, "num_key_value_heads", o->kv_heads);
	cJSON_AddNumberToObject(c, "head_dim", o->head_dim);
	cJSON_AddNumberToObject(c, "max_position_embeddings", o->context);
	cJSON_AddNumberToObject(c, "rms_norm_eps", o->arch->rms_eps);
	cJSON_AddNumberToObject(c, "rope_theta", o->arch->rope_theta);
	if (o->arch->fam != FAM_PHI3)
		add_rope_scaling(c, o);
	cJSON_AddBoolToObject(c, "tie_word_embeddings", o->tied);
	cJSON_AddNumberToObject(c, "attention_dropout", 0.0);
	cJSON_AddNumberToObject(c, "initializer_range", 0.02);
	cJSON_AddBoolToObject(c, "use_cache", 1);
	cJSON_AddStringToObject(c, "torch_dtype", DTYPE_TORCH[o->dtype]);
}

/* Qwen ids sit at the top of the vocabulary (<|endoftext|>, <|im_end|>). */
static void config_llama_qwen(cJSON *c, const options *o)
{
	const char *a = o->arch->name;
	cJSON_AddStringToObject(c, "hidden_act", "silu");
	if (streq(a, "llama") || o->arch->fam != FAM_BASE) {
		cJSON_AddNumberToObject(c, "bos_token_id", 1);
		cJSON_AddNumberToObject(c, "eos_token_id", 2);
		cJSON_AddBoolToObject(c, "attention_bias", 0);
		cJSON_AddBoolToObject(c, "mlp_bias", 0);
		if (streq(a, "llama"))
			cJSON_AddNumberToObject(c, "pretraining_tp", 1);
		return;
	}
	cJSON_AddNumberToObject(c, "bos_token_id", o->vocab - 3);
	cJSON_AddNumberToObject(c, "eos_token_id", o->vocab - 1);
	cJSON_AddNumberToObject(c, "max_window_layers", o->layers);
	cJSON_AddBoolToObject(c, "use_sliding_window", 0);
	if (streq(a, "qwen2")) /* Qwen 2.5 has no attention_bias key: the bias is implied */
		cJSON_AddNumberToObject(c, "sliding_window", o->sliding_window ? o->sliding_window : o->context);
	else if (o->sliding_window)
		cJSON_AddNumberToObject(c, "sliding_window", o->sliding_window);
	else
		cJSON_AddNullToObject(c, "sliding_window");
	if (streq(a, "qwen3"))
		cJSON_AddBoolToObject(c, "attention_bias", 0);
}

/* SmolLM3's list: 1 for a layer with RoPE, 0 for every NOPE_EVERY-th. */
static cJSON *nope_list(const options *o)
{
	cJSON *l = cJSON_CreateArray();
	for (int i = 0; i < o->layers; i++)
		cJSON_AddItemToArray(l, cJSON_CreateNumber((i + 1) % NOPE_EVERY != 0));
	return l;
}

/* Phi3's longrope: distinct short and long factors per frequency, so a
 * converter that swaps or ignores them is caught; max_position_embeddings
 * over the original context gives attention_factor > 1. */
static void add_longrope(cJSON *c, const options *o)
{
	int half = o->head_dim * 3 / 4 / 2;
	cJSON *r = cJSON_AddObjectToObject(c, "rope_scaling"), *sf = cJSON_CreateArray(), *lf = cJSON_CreateArray();
	for (int i = 0; i < half; i++) {
		cJSON_AddItemToArray(sf, cJSON_CreateNumber(1.0 + 0.25 * i / half));
		cJSON_AddItemToArray(lf, cJSON_CreateNumber(2.0 + 6.0 * i / half));
	}
	cJSON_AddStringToObject(r, "type", "longrope");
	cJSON_AddItemToObject(r, "short_factor", sf);
	cJSON_AddItemToObject(r, "long_factor", lf);
	cJSON_AddNumberToObject(c, "original_max_position_embeddings", PHI3_ORIGINAL_CONTEXT);
	cJSON_AddNumberToObject(c, "partial_rotary_factor", 0.75);
}

/* What the families beyond llama/qwen/gemma add to a Llama-like config. */
static void config_family(cJSON *c, const options *o)
{
	switch (o->arch->fam) {
	case FAM_MISTRAL:
	case FAM_PHI3:
		if (o->sliding_window)
			cJSON_AddNumberToObject(c, "sliding_window", o->sliding_window);
		else
			cJSON_AddNullToObject(c, "sliding_window");
		if (o->arch->fam == FAM_PHI3)
			add_longrope(c, o);
		break;
	case FAM_GRANITE: /* moderate values: each multiplier matters, logits stay peaked */
		cJSON_AddNumberToObject(c, "embedding_multiplier", 2.0);
		cJSON_AddNumberToObject(c, "residual_multiplier", 0.5);
		cJSON_AddNumberToObject(c, "attention_multiplier", 0.2);
		cJSON_AddNumberToObject(c, "logits_scaling", 2.0);
		break;
	case FAM_SMOLLM3:
		cJSON_AddItemToObject(c, "no_rope_layers", nope_list(o));
		cJSON_AddNumberToObject(c, "no_rope_layer_interval", NOPE_EVERY);
		cJSON_AddBoolToObject(c, "use_sliding_window", 0);
		cJSON_AddNullToObject(c, "sliding_window");
		break;
	default:
		break;
	}
}

static cJSON *gemma_eos(const options *o)
{
	static const int ids[] = {1, 106}; /* <eos>, <end_of_turn> */
	return o->vocab > 106 ? cJSON_CreateIntArray(ids, 2) : cJSON_CreateNumber(1);
}

static void config_gemma(cJSON *c, const options *o)
{
	cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
	cJSON_AddNumberToObject(c, "query_pre_attn_scalar", o->head_dim);
	cJSON_AddNumberToObject(c, "sliding_window", o->sliding_window);
	cJSON_AddNumberToObject(c, "rope_local_base_freq", 10000.0);
	cJSON *types = cJSON_AddArrayToObject(c, "layer_types");
	for (int i = 0; i < o->layers; i++)
		cJSON_AddItemToArray(types, cJSON_CreateString(o->is_full[i] ? "full_attention" : "sliding_attention"));
	if (!o->layer_types)
		cJSON_AddNumberToObject(c, "sliding_window_pattern", GEMMA_GLOBAL_EVERY);
	cJSON_AddNullToObject(c, "final_logit_softcapping");
	cJSON_AddNullToObject(c, "attn_logit_softcapping");
	cJSON_AddBoolToObject(c, "attention_bias", 0);
	cJSON_AddStringToObject(c, "cache_implementation", "hybrid");
	cJSON_AddNumberToObject(c, "bos_token_id", 2);
	cJSON_AddItemToObject(c, "eos_token_id", gemma_eos(o));
	cJSON_AddNumberToObject(c, "pad_token_id", 0);
}

static cJSON *text_config(const options *o)
{
	cJSON *c = cJSON_CreateObject();
	config_common(c, o);
	if (o->arch->gemma)
		config_gemma(c, o);
	else
		config_llama_qwen(c, o);
	config_family(c, o);
	if (o->arch->multimodal)
		cJSON_AddStringToObject(c, "model_type", "gemma3_text");
	return c;
}

/* The multimodal wrapper: ids for image tokens at the top of the vocab
 * (the real image_token_index equals vocab_size), a stub vision_config. */
static cJSON *multimodal_config(const options *o, cJSON *text)
{
	cJSON *c = cJSON_CreateObject(), *v;
	cJSON_AddItemToObject(c, "text_config", text);
	cJSON_AddNumberToObject(c, "boi_token_index", o->vocab - 2);
	cJSON_AddNumberToObject(c, "eoi_token_index", o->vocab - 1);
	cJSON_AddNumberToObject(c, "image_token_index", o->vocab);
	cJSON_AddNumberToObject(c, "mm_tokens_per_image", 4);
	cJSON_AddItemToObject(c, "eos_token_id", gemma_eos(o));
	cJSON_AddNumberToObject(c, "initializer_range", 0.02);
	cJSON_AddBoolToObject(c, "tie_word_embeddings", o->tied);
	cJSON_AddStringToObject(c, "torch_dtype", DTYPE_TORCH[o->dtype]);
	cJSON_AddItemToObject(c, "vision_config", v = cJSON_CreateObject());
	cJSON_AddNumberToObject(v, "hidden_size", VISION_HIDDEN);
	cJSON_AddNumberToObject(v, "intermediate_size", 2 * VISION_HIDDEN);
	cJSON_AddNumberToObject(v, "image_size", 28);
	cJSON_AddNumberToObject(v, "patch_size", 14);
	cJSON_AddNumberToObject(v, "num_attention_heads", 2);
	cJSON_AddNumberToObject(v, "num_hidden_layers", 0);
	cJSON_AddStringToObject(v, "model_type", "siglip_vision_model");
	cJSON_AddBoolToObject(v, "vision_use_head", 0);
	return c;
}

static void write_config(const options *o)
{
	cJSON *root = text_config(o);
	if (o->arch->multimodal) /* model_type "gemma3" outside, "gemma3_text" inside */
		root = multimodal_config(o, root);
	cJSON_AddStringToObject(root, "model_type", o->arch->name);
	cJSON_AddItemToObject(root, "architectures", cJSON_CreateStringArray(&o->arch->hf_class, 1));
	cJSON_AddStringToObject(root, "transformers_version", "4.55.2");
	if (o->quantized) { /* as in the Qwen3 *-FP8 uploads */
		cJSON *q = cJSON_AddObjectToObject(root, "quantization_config");
		static const int block[] = {128, 128};
		cJSON_AddStringToObject(q, "quant_method", "fp8");
		cJSON_AddStringToObject(q, "fmt", "e4m3");
		cJSON_AddStringToObject(q, "activation_scheme", "dynamic");
		cJSON_AddItemToObject(q, "weight_block_size", cJSON_CreateIntArray(block, 2));
	}
	json_sort_keys(root);
	write_json(o, "config.json", root);
}

static cJSON *minimal_tokenizer_config(const options *o)
{
	cJSON *c = cJSON_CreateObject();
	const char *a = o->arch->name;
	int qwen = !strncmp(a, "qwen", 4);
	cJSON_AddNumberToObject(c, "model_max_length", o->context);
	cJSON_AddBoolToObject(c, "clean_up_tokenization_spaces", 0);
	if (qwen) {
		cJSON_AddNullToObject(c, "bos_token");
		cJSON_AddStringToObject(c, "eos_token", "<|im_end|>");
		cJSON_AddStringToObject(c, "pad_token", "<|endoftext|>");
		cJSON_AddStringToObject(c, "tokenizer_class", "Qwen2Tokenizer");
	} else {
		int gemma = o->arch->gemma;
		cJSON_AddBoolToObject(c, "add_bos_token", 1);
		cJSON_AddBoolToObject(c, "add_eos_token", 0);
		cJSON_AddStringToObject(c, "bos_token", gemma ? "<bos>" : "<s>");
		cJSON_AddStringToObject(c, "eos_token", gemma ? "<eos>" : "</s>");
		cJSON_AddStringToObject(c, "unk_token", "<unk>");
		if (gemma)
			cJSON_AddStringToObject(c, "pad_token", "<pad>");
		cJSON_AddStringToObject(c, "tokenizer_class", gemma ? "GemmaTokenizer" : "LlamaTokenizer");
	}
	json_sort_keys(c);
	return c;
}

static cJSON *read_json_file(const char *path)
{
	char *text;
	size_t n;
	if (read_file(path, FS_MAX_TOKENIZER, &text, &n) != 0)
		die_err();
	cJSON *root = cJSON_ParseWithLength(text, n);
	if (!cJSON_IsObject(root))
		die("'%s' is not a JSON object", path);
	free(text);
	return root;
}

/* tokenizer_config.json (--tokenizer's or a minimal one, --chat-template
 * set) and, with --tokenizer, its tokenizer.json. */
static void write_tokenizer_config(const options *o)
{
	char *cfg = o->tokenizer ? path_join(o->tokenizer, "tokenizer_config.json") : NULL;
	cJSON *c = cfg && path_exists(cfg) ? read_json_file(cfg) : minimal_tokenizer_config(o);
	if (o->tokenizer) {
		char *from = path_join(o->tokenizer, "tokenizer.json"), *to = path_join(o->out, "tokenizer.json");
		if (file_copy(from, to) != 0)
			die_err();
		free(from), free(to);
	}
	if (o->chat_template) {
		char *text;
		size_t n;
		if (read_file(o->chat_template, FS_MAX_TEXT, &text, &n) != 0)
			die_err();
		cJSON_DeleteItemFromObject(c, "chat_template");
		cJSON_AddStringToObject(c, "chat_template", text);
		free(text);
	}
	write_json(o, "tokenizer_config.json", c);
	free(cfg);
}

/* ------------------------------------------------------------------ */
/* Output directory                                                    */

/* model.safetensors, model.safetensors.index.json or model-NNNNN-of-NNNNN.safetensors */
static int is_weight_file(const char *n)
{
	if (streq(n, "model.safetensors") || streq(n, "model.safetensors.index.json"))
		return 1;
	const char *pat = "model-#####-of-#####.safetensors";
	if (strlen(n) != strlen(pat))
		return 0;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == '#' ? (n[i] < '0' || n[i] > '9') : n[i] != pat[i])
			return 0;
	return 1;
}

/* A consumer loads every *.safetensors in the directory, so files an
 * earlier run wrote with another --shards must go. */
static void remove_stale_weights(const options *o)
{
	DIR *d = opendir(o->out);
	if (!d)
		die("cannot read directory '%s':", o->out);
	for (struct dirent *e; (e = readdir(d));) {
		int keep = o->shards > 1 && streq(e->d_name, "model.safetensors.index.json");
		for (int s = 0; s < o->shards && !keep; s++) {
			char *name = shard_name(s, o->shards);
			keep = streq(name, e->d_name);
			free(name);
		}
		if (keep || !is_weight_file(e->d_name))
			continue;
		char *path = path_join(o->out, e->d_name);
		if (unlink(path) != 0)
			die("cannot remove stale '%s':", path);
		free(path);
	}
	closedir(d);
}

/* ------------------------------------------------------------------ */
/* Main                                                                */

int main(int argc, char **argv)
{
	options o;
	tensor_list tl;
	set_progname(argv[0]);
	cJSON_InitHooks(&(cJSON_Hooks){.malloc_fn = xmalloc, .free_fn = free});

	parse_args(argc, argv, &o);
	plan_tensors(&o, &tl);
	omit_tensors(&o, &tl);
	assign_shards(&tl, o.shards);

	if (mkdir_p(o.out) != 0)
		die_err();
	for (int s = 0; s < o.shards; s++)
		write_shard(&o, &tl, s);
	if (o.shards > 1)
		write_index(&o, &tl);
	write_config(&o);
	write_tokenizer_config(&o);
	remove_stale_weights(&o);

	free_tensors(&tl);
	free(o.is_full);
	free(o.omit);
	return 0;
}
