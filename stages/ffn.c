/* ffn: write the decode chunks of a model's transformer layers, ANEMLL's part 2.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache; Llama, Qwen 2.5 or Qwen 3). Output, for each chunk i of N (or only
 * --chunk-no): <output>/<prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage with
 * one function, main, that runs one token through the chunk's layers:
 *   input  hidden_states        fp16  [1,1,H]
 *   input  position_ids         int32 [1]        (declared, unused, as ANEMLL)
 *   input  causal_mask          fp16  [1,1,1,C]
 *   input  current_pos          int32 [1]
 *   output output_hidden_states fp16  [1,1,H]    (final-normed in the last chunk)
 *   state  model_model_kv_cache_0 fp16 [2L,kv_heads,C,head_dim]
 * A chunk's weight.bin holds its layers' weights: ~2 bytes per parameter,
 * bits/16 of that with --lut (e.g. ~110 MB per layer of an 8B model at 4
 * bits). Package paths are printed on stdout, one per line.
 */
#include "anemll.h"
#include "cli.h"
#include "fsutil.h"
#include "graph.h"
#include "hfmodel.h"
#include "lut.h"
#include "plan.h"
#include "util.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct options {
	const char *model, *output, *prefix, *lut, *lut_cache, *chunk_arg, *max_chunk_mb_s;
	int context, batch, chunks, chunk_no, threads, plan;
	double max_chunk_mb;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.context = 512, .batch = 64, .chunks = 1, .chunk_arg = "1", .max_chunk_mb = 950};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 1, 0, 0, "HuggingFace model directory, or an id in the local HF cache"},
		{"output", "DIR", CLI_STRING, &o->output, 0, 0, 0, "directory to write the packages into (created if missing; required unless --plan)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix (default by architecture: llama, qwen, qwen25)"},
		{"context-length", "N", CLI_INT, &o->context, 0, 1, 1 << 20, "context length C: KV cache length and causal_mask width (default 512)"},
		{"batch-size", "N", CLI_INT, &o->batch, 0, 1, 4096, "prefill batch; accepted so ffn and prefill take the same flags (default 64)"},
		{"chunk", "N|auto", CLI_STRING, &o->chunk_arg, 0, 0, 0, "split the layers into N chunks, the first L mod N one layer longer (default 1); auto: ANEMLL's calc_chunk_split rule"},
		{"max-chunk-mb", "MB", CLI_STRING, &o->max_chunk_mb_s, 0, 0, 0, "largest chunk --chunk auto allows, in MiB with 10% overhead (default 950)"},
		{"plan", NULL, CLI_FLAG, &o->plan, 0, 0, 0, "write nothing: print the chunk plan (model_dir=, prefix=, layers=, chunks= on stdout, the size table on stderr)"},
		{"chunk-no", "K", CLI_INT, &o->chunk_no, 0, 1, 1024, "write only chunk K (1-based; default: every chunk)"},
		{"lut", "SPEC", CLI_STRING, &o->lut, 0, 0, 0, "palettize the weights: BITS[,GROUP] (GROUP 0|t|tensor: per tensor; default group 8), or none"},
		{"lut-cache", "DIR", CLI_STRING, &o->lut_cache, 0, 0, 0, "LUT cache directory (default OUTPUT/" WEIGHTS_CACHE_SUBDIR "; none: off)"},
		{"threads", "N", CLI_INT, &o->threads, 0, 0, 1024, "quantizer threads (default 0: all cores); output does not depend on it"},
	};
	const cli_spec spec = {
		.usage = "ffn --model DIR --output DIR [options]",
		.summary = "Write <prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage: one decode step through a chunk of "
			   "the transformer layers, with the KV cache as state, as ANEMLL's part 2.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (!o->plan && !o->output)
		die_usage("--output is required");
	if (o->max_chunk_mb_s) {
		char *end;
		o->max_chunk_mb = strtod(o->max_chunk_mb_s, &end);
		if (end == o->max_chunk_mb_s || *end || !(o->max_chunk_mb > 0))
			die_usage("--max-chunk-mb: '%s' is not a positive number", o->max_chunk_mb_s);
	}
	if (!streq(o->chunk_arg, "auto")) {
		char *end;
		long n = strtol(o->chunk_arg, &end, 10);
		if (end == o->chunk_arg || *end || n < 1 || n > 1024)
			die_usage("--chunk: '%s' is not a chunk count (1-1024) or auto", o->chunk_arg);
		o->chunks = (int)n;
		if (o->chunk_no > o->chunks)
			die_usage("--chunk-no %d is beyond --chunk %d", o->chunk_no, o->chunks);
	}
}

/* --chunk auto: the smallest count whose largest chunk fits --max-chunk-mb. */
static void decide_chunks(options *o, const hf_config *c, const lut_spec *lut)
{
	if (streq(o->chunk_arg, "auto"))
		o->chunks = plan_recommend(c, lut->bits, o->max_chunk_mb, 1.10);
	if (o->chunk_no > o->chunks)
		die_usage("--chunk-no %d is beyond the %d chunks planned", o->chunk_no, o->chunks);
}

static void print_plan(const options *o, const hf_model *hf, const char *dir, const char *prefix, const lut_spec *lut)
{
	plan_print(stderr, &hf->cfg, lut->bits, o->max_chunk_mb, 1.10);
	fprintf(stderr, "plan: %d chunk(s) of %d layers (%s)\n", o->chunks, hf->cfg.num_hidden_layers,
		streq(o->chunk_arg, "auto") ? "auto" : "as given");
	printf("model_dir=%s\nprefix=%s\nlayers=%d\nchunks=%d\n", dir, prefix, hf->cfg.num_hidden_layers, o->chunks);
}

/* Write chunk k of N; returns the package path (caller frees). */
static char *write_chunk(const options *o, const hf_model *hf, const lut_spec *lut, const char *prefix, int k)
{
	char *base = anemll_part_name(prefix, "FFN", lut->bits, k, o->chunks);
	char *file = xasprintf("%s.mlpackage", base), *qfile = xasprintf("%s.quality.json", base);
	char *path = path_join(o->output, file), *quality = path_join(o->output, qfile);
	char *cache = weights_cache_dir(o->output, o->lut_cache);
	graph_chunk_opts co = {.mode = GRAPH_DECODE, .context = o->context, .batch = o->batch, .chunk = k, .nchunks = o->chunks};
	graph_write_opts wo = {.lut = *lut, .threads = o->threads, .cache_dir = cache, .quality_path = quality};
	if (graph_write_chunk(path, hf, &co, &wo) != 0)
		die_err();
	info(1, "%s: %s", path, wo.summary);
	free(cache), free(quality), free(qfile), free(file), free(base);
	return path;
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
	if (graph_check_model(&hf.cfg, o.context) != 0)
		die_err();
	decide_chunks(&o, &hf.cfg, &lut);
	if (o.chunks > hf.cfg.num_hidden_layers)
		die("--chunk %d: the model has only %d layers", o.chunks, hf.cfg.num_hidden_layers);
	const char *prefix = o.prefix ? o.prefix : hf.cfg.arch->prefix;
	if (o.plan) {
		print_plan(&o, &hf, dir, prefix, &lut);
		o.chunks = 0; /* nothing to write */
	} else if (mkdir_p(o.output) != 0) {
		die_err();
	}
	for (int k = 1; k <= o.chunks; k++) {
		if (o.chunk_no && k != o.chunk_no)
			continue;
		char *path = write_chunk(&o, &hf, &lut, prefix, k);
		printf("%s\n", path);
		free(path);
	}
	if (stdout_close_checked() != 0)
		die_err();
	free(dir);
	hf_model_close(&hf);
	return 0;
}
