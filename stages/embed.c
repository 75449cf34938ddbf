/* embed: write the embeddings part of a model, ANEMLL's part 1.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache). Output: <output>/<prefix>_embeddings[_lut<b>].mlpackage with one
 * function, main:
 *   input  input_ids      int32 [1,1], enumerated shapes {[1,1], [1,BATCH]}
 *   output hidden_states  fp16 [1,S,H]  (= embed_tokens[input_ids]; Gemma 3
 *                                        multiplies by sqrt(H))
 * The table is vocab x hidden fp16 (up to ~1.3 GB for a 262K-token Gemma),
 * palettized with --lut. The package path is printed on stdout.
 */
#include "anemll.h"
#include "cli.h"
#include "fp16.h"
#include "fsutil.h"
#include "hfmodel.h"
#include "lut.h"
#include "mlmodel.h"
#include "mlpackage.h"
#include "util.h"
#include "weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct options {
	const char *model, *output, *prefix, *lut, *lut_cache;
	int batch, context, threads;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.batch = 64, .context = 512};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 1, 0, 0, "HuggingFace model directory, or an id in the local HF cache"},
		{"output", "DIR", CLI_STRING, &o->output, 1, 0, 0, "directory to write the package into (created if missing)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix (default by architecture: llama, qwen, qwen25, gemma3)"},
		{"batch-size", "N", CLI_INT, &o->batch, 0, 1, 4096, "prefill batch: input_ids also accepts [1,N] (default 64)"},
		{"context-length", "N", CLI_INT, &o->context, 0, 1, 1 << 20, "context length recorded in the metadata (default 512)"},
		{"lut", "SPEC", CLI_STRING, &o->lut, 0, 0, 0, "palettize the table: BITS[,GROUP] (GROUP 0|t|tensor: per tensor; default group 8), or none"},
		{"threads", "N", CLI_INT, &o->threads, 0, 0, 1024, "quantizer threads (default 0: all cores)"},
		{"lut-cache", "DIR", CLI_STRING, &o->lut_cache, 0, 0, 0, "LUT cache directory (default OUTPUT/" WEIGHTS_CACHE_SUBDIR "; none: off)"},
	};
	const cli_spec spec = {
		.usage = "embed --model DIR --output DIR [options]",
		.summary = "Write <prefix>_embeddings[_lut<b>].mlpackage: token ids -> hidden states, as ANEMLL's part 1.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
}

static uint16_t *read_table(const hf_model *hf)
{
	const st_tensor *t = hf->embed;
	uint16_t *table = xmalloc(xmul((size_t)t->numel, 2));
	size_t clamped = 0;
	if (st_read_fp16(t, table, &clamped) != 0)
		die_err();
	if (clamped)
		warn("tensor '%s': %zu values beyond fp16 range clamped to +-65504", t->name, clamped);
	return table;
}

/* Description: what ANEMLL's runtimes see of the model. */
static void describe(ml_model *m, const options *o, const hf_model *hf, int lut_bits)
{
	int64_t one[2] = {1, 1}, batch[2] = {1, o->batch};
	ml_feature *in = ml_model_add_input(m, NULL, "input_ids", ARRAY_INT32, 2, one);
	ml_feature_add_enumerated_shape(m, in, 2, one);
	ml_feature_add_enumerated_shape(m, in, 2, batch);
	ml_model_add_output(m, NULL, "hidden_states", ARRAY_FLOAT16, 0, NULL);
	anemll_meta meta = {.part_title = "Embeddings", .context_length = o->context, .lut_bits = lut_bits};
	anemll_set_metadata(m, &meta);
	(void)hf;
}

/* Program: hidden_states = gather(table, input_ids) [* sqrt(H)]. */
static int build_program(ml_model *m, weights_ctx *w, const hf_model *hf, const uint16_t *table)
{
	mil_arena *a = m->arena;
	mil_function *fn = mil_program_add_function(ml_model_program(m), "main", MIL_OPSET_IOS18);
	int64_t ids_dims[2] = {1, -1}, out_dims[3] = {1, -1, hf->cfg.hidden_size};
	mil_function_add_input(fn, "input_ids", mil_type_tensor(a, MIL_INT32, 2, ids_dims));
	mil_block *b = mil_function_block(fn);
	int64_t shape[2] = {(int64_t)hf->embed->shape[0], (int64_t)hf->embed->shape[1]};
	const char *tv = weights_emit(w, b, "embed_tokens_weight", table, 2, shape);
	if (!tv)
		return -1;
	mil_block_add_const(b, "gather_axis_0", mil_value_i32(a, 0));
	mil_block_add_const(b, "gather_batch_dims_0", mil_value_i32(a, 0));
	mil_block_add_const(b, "gather_validate_indices_0", mil_value_bool(a, 0));
	int scaled = hf->cfg.arch->embed_scale_sqrt_hidden;
	const char *gathered = scaled ? "embeddings" : "hidden_states";
	mil_op *g = mil_block_add_op(b, "gather", gathered);
	mil_op_bind(g, "x", tv);
	mil_op_bind(g, "indices", "input_ids");
	mil_op_bind(g, "axis", "gather_axis_0");
	mil_op_bind(g, "batch_dims", "gather_batch_dims_0");
	mil_op_bind(g, "validate_indices", "gather_validate_indices_0");
	mil_op_add_output(g, gathered, mil_type_tensor(a, MIL_FP16, 3, out_dims));
	if (scaled) {
		uint16_t s = f32_to_fp16((float)sqrt((double)hf->cfg.hidden_size), NULL);
		mil_block_add_const(b, "embed_scale", mil_value_fp16(a, s));
		mil_op *mul = mil_block_add_op(b, "mul", "hidden_states");
		mil_op_bind(mul, "x", gathered);
		mil_op_bind(mul, "y", "embed_scale");
		mil_op_add_output(mul, "hidden_states", mil_type_tensor(a, MIL_FP16, 3, out_dims));
	}
	mil_block_add_output(b, "hidden_states");
	return 0;
}

static void write_package(const char *path, const char *base, const options *o, const hf_model *hf,
			  const lut_spec *lut)
{
	uint16_t *table = read_table(hf);
	mlpackage_writer pw;
	if (mlpackage_begin(&pw, path) != 0)
		die_err();
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	weights_ctx w;
	weights_init(&w, pw.weights, lut, o->threads);
	char *cache = weights_cache_dir(o->output, o->lut_cache);
	w.cache_dir = cache;
	describe(m, o, hf, lut->bits);
	if (build_program(m, &w, hf, table) != 0) {
		mlpackage_abort(&pw);
		die("--lut %s: %s", o->lut ? o->lut : "none", errmsg());
	}
	free(table);
	pb_buf bytes;
	pb_init(&bytes);
	ml_model_encode(m, &bytes);
	if (mlpackage_commit(&pw, bytes.data, bytes.len) != 0)
		die_err();
	char *quality = xasprintf("%s/%s.quality.json", o->output, base);
	if (weights_write_quality(&w, quality) != 0)
		die_err();
	char summary[256];
	weights_summary(&w, summary, sizeof summary);
	info(1, "%s: %s", path, summary);
	free(quality);
	free(cache);
	pb_release(&bytes);
	weights_release(&w);
	ml_model_free(m);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	lut_spec lut = {0};
	if (o.lut && lut_spec_parse(o.lut, &lut) != 0)
		die("--lut: %s", errmsg());
	char *dir;
	hf_model hf;
	if (hf_model_resolve(o.model, &dir) != 0 || hf_model_open(&hf, dir) != 0)
		die_err();
	const char *prefix = o.prefix ? o.prefix : hf.cfg.arch->prefix;
	char *base = anemll_part_name(prefix, "embeddings", lut.bits, 0, 0);
	char *file = xasprintf("%s.mlpackage", base);
	char *path = path_join(o.output, file);
	if (mkdir_p(o.output) != 0)
		die_err();
	write_package(path, base, &o, &hf, &lut);
	printf("%s\n", path);
	if (stdout_close_checked() != 0)
		die_err();
	free(path), free(file), free(base), free(dir);
	hf_model_close(&hf);
	return 0;
}
