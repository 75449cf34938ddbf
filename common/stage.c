/* stage.c: flags, model opening and part files shared by the stages (see stage.h). */
#include "stage.h"
#include "anemll.h"
#include "fsutil.h"
#include "plan.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stage_opts_init(stage_opts *o)
{
	memset(o, 0, sizeof *o);
	o->context = 512;
	o->batch = 64;
}

void stage_open(stage_opts *o)
{
	if (o->lut_arg && lut_spec_parse(o->lut_arg, &o->lut) != 0)
		die("--lut: %s", errmsg());
	if (hf_model_resolve(o->model, &o->model_dir) != 0 || hf_model_open(&o->hf, o->model_dir) != 0)
		die_err();
	o->prefix_eff = o->prefix ? o->prefix : o->hf.cfg.arch->prefix;
	if (o->output && mkdir_p(o->output) != 0)
		die_err();
}

void stage_close(stage_opts *o)
{
	hf_model_close(&o->hf);
	free(o->model_dir);
	o->model_dir = NULL;
}

void stage_part_paths(const stage_opts *o, const char *part, int chunk, int nchunks, stage_part *p)
{
	char *base = anemll_part_name(o->prefix_eff, part, o->lut.bits, chunk, nchunks);
	char *pkg = xasprintf("%s.mlpackage", base), *quality = xasprintf("%s.quality.json", base);
	p->package = path_join(o->output, pkg);
	p->quality = path_join(o->output, quality);
	p->cache_dir = weights_cache_dir(o->output, o->lut_cache);
	free(base), free(pkg), free(quality);
}

void stage_part_release(stage_part *p)
{
	free(p->package), free(p->quality), free(p->cache_dir);
	memset(p, 0, sizeof *p);
}

graph_write_opts stage_write_opts(const stage_opts *o, const stage_part *p)
{
	graph_write_opts wo = {.lut = o->lut, .threads = o->threads, .cache_dir = p->cache_dir, .quality_path = p->quality};
	return wo;
}

/* ------------------------------------------------------------------ */
/* ffn and prefill                                                     */

typedef struct chunk_opts {
	stage_opts s;
	graph_mode mode;
	const char *chunk_arg, *max_chunk_mb_arg;
	int chunks, chunk_no, plan;
	double max_chunk_mb;
} chunk_opts;

static const char *const PART[] = {[GRAPH_DECODE] = "FFN", [GRAPH_PREFILL] = "prefill"};

static void check_chunk_args(chunk_opts *o)
{
	if (!o->plan && !o->s.output)
		die_usage("--output is required");
	if (o->max_chunk_mb_arg) {
		char *end;
		o->max_chunk_mb = strtod(o->max_chunk_mb_arg, &end);
		if (end == o->max_chunk_mb_arg || *end || !(o->max_chunk_mb > 0))
			die_usage("--max-chunk-mb: '%s' is not a positive number", o->max_chunk_mb_arg);
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
	if (o->mode == GRAPH_PREFILL && o->s.batch > o->s.context)
		die_usage("--batch-size %d exceeds --context-length %d", o->s.batch, o->s.context);
}

static void parse_chunk_args(int argc, char **argv, chunk_opts *o)
{
	int decode = o->mode == GRAPH_DECODE;
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(&o->s),
		STAGE_OPT_OUTPUT(&o->s, 0),
		STAGE_OPT_PREFIX(&o->s),
		STAGE_OPT_CONTEXT(&o->s, "context length C: KV cache length and causal_mask width"),
		STAGE_OPT_BATCH(&o->s, "prefill batch B (tokens per prefill call; ffn accepts it for symmetry)"),
		{"chunk", "N|auto", CLI_STRING, &o->chunk_arg, 0, 0, 0, "split the layers into N chunks, the first L mod N one layer longer (default 1); auto: ANEMLL's calc_chunk_split rule"},
		{"chunk-no", "K", CLI_INT, &o->chunk_no, 0, 1, 1024, "write only chunk K (1-based; default: every chunk)"},
		{"max-chunk-mb", "MB", CLI_STRING, &o->max_chunk_mb_arg, 0, 0, 0, "largest chunk --chunk auto allows, in MiB with 10% overhead (default 950)"},
		{"plan", NULL, CLI_FLAG, &o->plan, 0, 0, 0, "write nothing: print the chunk plan (model_dir=, prefix=, layers=, chunks= on stdout, sizes on stderr)"},
		STAGE_OPT_LUT(&o->s, "the weights"),
		STAGE_OPT_LUT_CACHE(&o->s),
		STAGE_OPT_THREADS(&o->s),
	};
	const cli_spec spec = {
		.usage = decode ? "ffn --model DIR --output DIR [options]" : "prefill --model DIR --output DIR [options]",
		.summary = decode ? "Write <prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage: one decode step through a chunk of "
				    "the transformer layers, with the KV cache as state, as ANEMLL's part 2."
				  : "Write <prefix>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage: a batch of prompt tokens through a "
				    "chunk of the transformer layers, filling the KV cache state, as ANEMLL's part 2_prefill.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	check_chunk_args(o);
}

/* --chunk auto: the smallest count whose largest chunk fits --max-chunk-mb. */
static void decide_chunks(chunk_opts *o)
{
	const hf_config *c = &o->s.hf.cfg;
	if (streq(o->chunk_arg, "auto"))
		o->chunks = plan_recommend(c, o->s.lut.bits, o->max_chunk_mb, 1.10);
	if (o->chunks > c->num_hidden_layers)
		die("--chunk %d: the model has only %d layers", o->chunks, c->num_hidden_layers);
	if (o->chunk_no > o->chunks)
		die_usage("--chunk-no %d is beyond the %d chunks planned", o->chunk_no, o->chunks);
}

static void print_plan(const chunk_opts *o)
{
	const hf_config *c = &o->s.hf.cfg;
	plan_print(stderr, c, o->s.lut.bits, o->max_chunk_mb, 1.10);
	fprintf(stderr, "plan: %d chunk(s) of %d layers (%s)\n", o->chunks, c->num_hidden_layers,
		streq(o->chunk_arg, "auto") ? "auto" : "as given");
	printf("model_dir=%s\nprefix=%s\nlayers=%d\nchunks=%d\n", o->s.model_dir, o->s.prefix_eff, c->num_hidden_layers,
	       o->chunks);
}

static void write_chunk(const chunk_opts *o, int k)
{
	stage_part p;
	stage_part_paths(&o->s, PART[o->mode], k, o->chunks, &p);
	graph_chunk_opts co = {.mode = o->mode, .context = o->s.context, .batch = o->s.batch, .chunk = k, .nchunks = o->chunks};
	graph_write_opts wo = stage_write_opts(&o->s, &p);
	if (graph_write_chunk(p.package, &o->s.hf, &co, &wo) != 0)
		die_err();
	info(1, "%s: %s", p.package, wo.summary);
	printf("%s\n", p.package);
	stage_part_release(&p);
}

int chunk_stage_main(int argc, char **argv, graph_mode mode)
{
	set_progname(argv[0]);
	chunk_opts o = {.mode = mode, .chunk_arg = "1", .max_chunk_mb = 950};
	stage_opts_init(&o.s);
	parse_chunk_args(argc, argv, &o);
	stage_open(&o.s);
	if (graph_check_model(&o.s.hf.cfg, o.s.context) != 0)
		die_err();
	decide_chunks(&o);
	if (o.plan)
		print_plan(&o);
	for (int k = 1; k <= o.chunks && !o.plan; k++)
		if (!o.chunk_no || k == o.chunk_no)
			write_chunk(&o, k);
	if (stdout_close_checked() != 0)
		die_err();
	stage_close(&o.s);
	return 0;
}
