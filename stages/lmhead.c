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
 * with --lut; Gemma 3 palettizes only splits above 8192 elements, as ANEMLL).
 * --fp16-scale and --clamp are accepted (ANEMLL passes them) and change
 * nothing: the final norm cancels the scale. The package path is printed on
 * stdout.
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/stage.h"

#include <stdio.h>

static void parse_args(int argc, char **argv, stage_opts *o, int *argmax)
{
	const char *fp16_scale = NULL, *clamp = NULL;
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(o),
		STAGE_OPT_OUTPUT(o, 1),
		STAGE_OPT_QUALITY_DIR(o),
		STAGE_OPT_PREFIX(o),
		STAGE_OPT_CONTEXT(o, "context length recorded in the metadata"),
		{"argmax", NULL, CLI_FLAG, argmax, 0, 0, 0, "output argmax_idx/argmax_val per head instead of the logits"},
		{"fp16-scale", "ALPHA|auto", CLI_STRING, &fp16_scale, 0, 0, 0, "accepted for ANEMLL's command lines and checked; the head is unchanged (the final norm cancels the scale)"},
		{"clamp", "V", CLI_STRING, &clamp, 0, 0, 0, "accepted for ANEMLL's command lines; applies to ffn/prefill only"},
		STAGE_OPT_LUT(o, "the head"),
		STAGE_OPT_LUT_OVERRIDE(o),
		STAGE_OPT_CALIB_STATS(o),
		STAGE_OPT_LUT_CACHE(o),
		STAGE_OPT_THREADS(o),
	};
	const cli_spec spec = {
		.usage = "lmhead --model DIR --output DIR [options]",
		.summary = "Write <prefix>_lm_head[_lut<b>].mlpackage: hidden states -> logits split into 8 (Llama) or 16 "
			   "(Qwen) heads, or per-head argmax, as ANEMLL's part 3.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	double alpha;
	if (fp16_scale && stage_fp16_scale(o->model, fp16_scale, &alpha) != 0)
		die_usage("%s", errmsg());
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	stage_opts o;
	int argmax = 0;
	stage_opts_init(&o);
	parse_args(argc, argv, &o, &argmax);
	stage_open(&o);
	stage_resolve_lut(&o, STAGE_LUT_HEAD);
	stage_part p;
	stage_part_paths(&o, "lm_head", 0, 0, &p);
	graph_write_opts wo = stage_write_opts(&o, &p);
	if (graph_write_lm_head(p.package, &o.hf, o.context, argmax, &wo) != 0)
		die_err();
	info(1, "%s: %s", p.package, wo.summary);
	printf("%s\n", p.package);
	if (stdout_close_checked() != 0)
		die_err();
	stage_part_release(&p);
	stage_close(&o);
	return 0;
}
