/* prefill: write the prefill chunks of a model's transformer layers, ANEMLL's part 2_prefill.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache; Llama, Qwen 2.5 or Qwen 3). Output, for each chunk i of N (or only
 * --chunk-no): <output>/<prefix>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage
 * with one function, main, that runs B = --batch-size prompt tokens through
 * the chunk's layers and fills their KV-cache slots:
 *   input  hidden_states        fp16  [1,B,H]
 *   input  position_ids         int32 [B]        (RoPE positions)
 *   input  causal_mask          fp16  [1,1,B,C]
 *   input  current_pos          int32 [1]        (first KV slot written)
 *   output output_hidden_states fp16  [1,B,H]; [1,1,H] in the last chunk,
 *                                                whose output runtimes ignore
 *   state  model_model_kv_cache_0 fp16 [2L,kv_heads,C,head_dim]
 * Weights are those of the ffn chunk (the model's last MLP is left out: its
 * output is never used), so sizes match ffn's. Package paths are printed on
 * stdout, one per line.
 */
#include "anemll.h"
#include "cli.h"
#include "fsutil.h"
#include "graph.h"
#include "hfmodel.h"
#include "lut.h"
#include "util.h"
#include "weights.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct options {
	const char *model, *output, *prefix, *lut, *lut_cache;
	int context, batch, chunks, chunk_no, threads;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.context = 512, .batch = 64, .chunks = 1};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 1, 0, 0, "HuggingFace model directory, or an id in the local HF cache"},
		{"output", "DIR", CLI_STRING, &o->output, 1, 0, 0, "directory to write the packages into (created if missing)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix (default by architecture: llama, qwen, qwen25)"},
		{"context-length", "N", CLI_INT, &o->context, 0, 1, 1 << 20, "context length C: KV cache length and causal_mask width (default 512)"},
		{"batch-size", "N", CLI_INT, &o->batch, 0, 1, 4096, "tokens per prefill call B, at most the context length (default 64)"},
		{"chunk", "N", CLI_INT, &o->chunks, 0, 1, 1024, "split the layers into N chunks, the first L mod N one layer longer (default 1)"},
		{"chunk-no", "K", CLI_INT, &o->chunk_no, 0, 1, 1024, "write only chunk K (1-based; default: every chunk)"},
		{"lut", "SPEC", CLI_STRING, &o->lut, 0, 0, 0, "palettize the weights: BITS[,GROUP] (GROUP 0|t|tensor: per tensor; default group 8), or none"},
		{"lut-cache", "DIR", CLI_STRING, &o->lut_cache, 0, 0, 0, "LUT cache directory (default OUTPUT/" WEIGHTS_CACHE_SUBDIR "; none: off)"},
		{"threads", "N", CLI_INT, &o->threads, 0, 0, 1024, "quantizer threads (default 0: all cores); output does not depend on it"},
	};
	const cli_spec spec = {
		.usage = "prefill --model DIR --output DIR [options]",
		.summary = "Write <prefix>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage: a batch of prompt tokens through a "
			   "chunk of the transformer layers, filling the KV cache state, as ANEMLL's part 2_prefill.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (o->chunk_no > o->chunks)
		die_usage("--chunk-no %d is beyond --chunk %d", o->chunk_no, o->chunks);
	if (o->batch > o->context)
		die_usage("--batch-size %d exceeds --context-length %d", o->batch, o->context);
}

/* Write chunk k of N; returns the package path (caller frees). */
static char *write_chunk(const options *o, const hf_model *hf, const lut_spec *lut, const char *prefix, int k)
{
	char *base = anemll_part_name(prefix, "prefill", lut->bits, k, o->chunks);
	char *file = xasprintf("%s.mlpackage", base), *qfile = xasprintf("%s.quality.json", base);
	char *path = path_join(o->output, file), *quality = path_join(o->output, qfile);
	char *cache = weights_cache_dir(o->output, o->lut_cache);
	graph_chunk_opts co = {.mode = GRAPH_PREFILL, .context = o->context, .batch = o->batch, .chunk = k, .nchunks = o->chunks};
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
	if (o.chunks > hf.cfg.num_hidden_layers)
		die("--chunk %d: the model has only %d layers", o.chunks, hf.cfg.num_hidden_layers);
	if (mkdir_p(o.output) != 0)
		die_err();
	const char *prefix = o.prefix ? o.prefix : hf.cfg.arch->prefix;
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
