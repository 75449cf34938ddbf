/* lmhead: write the LM head of a model, ANEMLL's part 3.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache). Output: <output>/<prefix>_lm_head[_lut<b>].mlpackage with one
 * function, main:
 *   input  hidden_states      fp16 [1,1,H]   (the last FFN chunk's output)
 *   output logits1..logitsK   fp16 [1,1,size_k], K = 8 (Llama) or 16 (Qwen),
 *          size_k = V/K, plus one for the first V mod K heads (no row dropped)
 *   or, with --argmax:
 *   output argmax_idx int32 [K] (index inside head k), argmax_val fp16 [K]
 * The head is lm_head.weight, or the embedding matrix when tied. weight.bin
 * is vocab x hidden fp16 (~1.2 GB for a 151K x 4096 head; bits/16 of that
 * with --lut). The package path is printed on stdout.
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
	int context, argmax, threads;
} options;

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.context = 512};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 1, 0, 0, "HuggingFace model directory, or an id in the local HF cache"},
		{"output", "DIR", CLI_STRING, &o->output, 1, 0, 0, "directory to write the package into (created if missing)"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix (default by architecture: llama, qwen, qwen25)"},
		{"context-length", "N", CLI_INT, &o->context, 0, 1, 1 << 20, "context length recorded in the metadata (default 512)"},
		{"argmax", NULL, CLI_FLAG, &o->argmax, 0, 0, 0, "output argmax_idx/argmax_val per head instead of the logits"},
		{"lut", "SPEC", CLI_STRING, &o->lut, 0, 0, 0, "palettize the head: BITS[,GROUP] (GROUP 0|t|tensor: per tensor; default group 8), or none"},
		{"lut-cache", "DIR", CLI_STRING, &o->lut_cache, 0, 0, 0, "LUT cache directory (default OUTPUT/" WEIGHTS_CACHE_SUBDIR "; none: off)"},
		{"threads", "N", CLI_INT, &o->threads, 0, 0, 1024, "quantizer threads (default 0: all cores); output does not depend on it"},
	};
	const cli_spec spec = {
		.usage = "lmhead --model DIR --output DIR [options]",
		.summary = "Write <prefix>_lm_head[_lut<b>].mlpackage: hidden states -> logits split into 8 (Llama) or 16 "
			   "(Qwen) heads, or per-head argmax, as ANEMLL's part 3.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
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
	if (mkdir_p(o.output) != 0)
		die_err();
	const char *prefix = o.prefix ? o.prefix : hf.cfg.arch->prefix;
	char *base = anemll_part_name(prefix, "lm_head", lut.bits, 0, 0);
	char *file = xasprintf("%s.mlpackage", base), *qfile = xasprintf("%s.quality.json", base);
	char *path = path_join(o.output, file), *quality = path_join(o.output, qfile);
	char *cache = weights_cache_dir(o.output, o.lut_cache);
	graph_write_opts wo = {.lut = lut, .threads = o.threads, .cache_dir = cache, .quality_path = quality};
	if (graph_write_lm_head(path, &hf, o.context, o.argmax, &wo) != 0)
		die_err();
	info(1, "%s: %s", path, wo.summary);
	printf("%s\n", path);
	if (stdout_close_checked() != 0)
		die_err();
	free(cache), free(quality), free(path), free(qfile), free(file), free(base), free(dir);
	hf_model_close(&hf);
	return 0;
}
