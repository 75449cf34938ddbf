/* stage.c: flags, model opening and part files shared by the stages (see stage.h). */
#include "convert/stage.h"
#include "anemll/anemll.h"
#include "base/calstats.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/lutcheck.h"
#include "convert/plan.h"

#include <ctype.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallopt */
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ANEMLL's --fp16-scale auto table, most specific name first. */
static const struct {
	const char *name;
	double alpha;
} FP16_SCALE_TABLE[] = {
	{"gemma-3-270m", 0.48}, {"gemma-3-1b", 0.82}, {"gemma-3-4b-it-qat", 0.1875},
	{"gemma-3-4b", 0.5}, {"gemma-3n-E2B", 0.5}, {"gemma-3n-E4B", 0.5},
};

static int contains_nocase(const char *s, const char *sub)
{
	size_t n = strlen(sub);
	for (; *s; s++)
		if (strncasecmp(s, sub, n) == 0)
			return 1;
	return 0;
}

int stage_fp16_scale(const char *model, const char *arg, double *alpha)
{
	*alpha = 0;
	if (streq(arg, "auto")) {
		for (size_t i = 0; i < sizeof FP16_SCALE_TABLE / sizeof FP16_SCALE_TABLE[0]; i++)
			if (model && contains_nocase(model, FP16_SCALE_TABLE[i].name)) {
				*alpha = FP16_SCALE_TABLE[i].alpha;
				return 0;
			}
		return errf("--fp16-scale auto: no entry for model '%s' (known: gemma-3-270m, gemma-3-1b, "
			    "gemma-3-4b-it-qat, gemma-3-4b, gemma-3n-E2B, gemma-3n-E4B): give a number in (0,1]",
			    model ? model : "?");
	}
	char *end;
	double a = strtod(arg, &end);
	if (end == arg || *end || !(a > 0 && a <= 1))
		return errf("--fp16-scale: '%s' is not auto or a number in (0,1]", arg);
	*alpha = a;
	return 0;
}

int stage_clamp(const char *arg, double *v)
{
	char *end;
	double c = strtod(arg, &end);
	if (end == arg || *end || !(c > 0 && c <= 65504))
		return errf("--clamp: '%s' is not a number in (0, 65504]", arg);
	*v = c;
	return 0;
}

/* --fp16-scale and --clamp values (usage errors); the model check comes later. */
static void parse_fp16_flags(stage_opts *o)
{
	if (o->fp16_scale_arg && stage_fp16_scale(o->model, o->fp16_scale_arg, &o->fp16_scale) != 0)
		die_usage("%s", errmsg());
	if (o->clamp_arg && stage_clamp(o->clamp_arg, &o->clamp) != 0)
		die_usage("%s", errmsg());
}

void stage_opts_init(stage_opts *o)
{
	memset(o, 0, sizeof *o);
	o->context = 512;
	o->batch = 64;
}

/* A stage allocates and frees a tensor-sized buffer or three per tensor (the
 * fp16 values, the indices, the packed blob), most above glibc's largest
 * mmap threshold (32 MB): each would be mapped afresh and every page faulted
 * in and zeroed again, a quarter of the FFN stage's CPU time in a virtual
 * machine. Kept in the heap instead, they are reused from one tensor to the
 * next; the peak stays what is in use at once. */
static void keep_freed_memory(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 1 << 30);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

/* A prefix names files beside each other in OUT and in meta.yaml: no '/',
 * no spaces or quotes that the runtimes' paths and plan.mk would split. */
static int is_file_prefix(const char *p)
{
	if (!isalnum((unsigned char)*p))
		return 0;
	for (; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return 0;
	return 1;
}

void stage_open(stage_opts *o)
{
	keep_freed_memory();
	if (o->lut_arg && lut_spec_parse(o->lut_arg, &o->lut) != 0)
		die("--lut: %s", errmsg());
	if (o->lut_override_arg) {
		o->ov = xcalloc(1, sizeof *o->ov);
		if (lut_overrides_parse(o->lut_override_arg, o->lut_override_name ? o->lut_override_name : "--lut-override",
					o->ov) != 0)
			die_err();
	}
	if (o->calib_stats_arg) {
		o->stats = xcalloc(1, sizeof *o->stats);
		if (calstats_read(o->calib_stats_arg, o->stats) != 0)
			die_err();
	}
	parse_fp16_flags(o);
	if (hf_model_resolve(o->model, &o->model_dir) != 0 || hf_model_open(&o->hf, o->model_dir) != 0)
		die_err();
	const hf_config *c = &o->hf.cfg;
	if (o->fp16_scale > 0 && !c->arch->four_norms)
		die("--fp16-scale: %s is %s, which has no post-attention/post-feedforward norms to carry the scale "
		    "(Gemma 3 only)",
		    c->path ? c->path : o->model_dir, c->arch->name);
	if (o->prefix && !is_file_prefix(o->prefix))
		die_usage("--prefix: '%s' is not a file-name prefix (a letter or digit, then letters, digits, '.', '_', "
			  "'-')",
			  o->prefix);
	o->prefix_eff = o->prefix ? o->prefix : c->arch->prefix;
	/* undoable: a stage that dies (here, on --quality-dir, or later) leaves no empty --output */
	if ((o->output && mkdir_p_undoable(o->output) != 0) || (o->quality_dir && mkdir_p_undoable(o->quality_dir) != 0))
		die_err();
}

void stage_resolve_lut(stage_opts *o, stage_lut_part part)
{
	lutcheck_part p = {&o->lut, "--lut", o->lut_arg};
	lutcheck lc = {.context = o->context, .note_level = 2, .ov = o->ov};
	if (part == STAGE_LUT_EMBED)
		lc.embed = p;
	else
		lc.head = p;
	if (lutcheck_run(&o->hf, &lc) != 0)
		die_err();
}

void stage_close(stage_opts *o)
{
	mkdir_keep(); /* the stage succeeded: its directories stay, even an empty --quality-dir */
	hf_model_close(&o->hf);
	lut_overrides_release(o->ov);
	free(o->ov);
	calstats_release(o->stats);
	free(o->stats);
	o->ov = NULL;
	o->stats = NULL;
	free(o->model_dir);
	o->model_dir = NULL;
}

void stage_part_paths(const stage_opts *o, const char *part, int chunk, int nchunks, stage_part *p)
{
	char *base = anemll_part_name(o->prefix_eff, part, o->lut.bits, chunk, nchunks);
	char *pkg = xasprintf("%s.mlpackage", base), *quality = xasprintf("%s.quality.json", base);
	p->package = path_join(o->output, pkg);
	p->quality = path_join(o->quality_dir ? o->quality_dir : o->output, quality);
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
	graph_write_opts wo = {.lut = o->lut, .threads = o->threads, .cache_dir = p->cache_dir, .quality_path = p->quality,
			       .ov = o->ov, .stats = o->stats};
	return wo;
}

/* ------------------------------------------------------------------ */
/* ffn and prefill                                                     */

typedef struct chunk_opts {
	stage_opts s;
	graph_mode mode;
	const char *chunk_arg, *max_chunk_mb_arg;
	int chunks, chunk_no, plan, rotate;
	int monolithic, argmax, make_names;
	const char *lut_embed_arg, *lut_head_arg;
	lut_spec lut_embed, lut_head;
	double max_chunk_mb;
} chunk_opts;

static const char *const PART[] = {[GRAPH_DECODE] = "FFN", [GRAPH_PREFILL] = "prefill"};
static const char *const PART_ROTATE[] = {[GRAPH_DECODE] = "FFN_rotate", [GRAPH_PREFILL] = "prefill_rotate"};

/* How messages name a value: make's variable under --make-names, else the flag. */
static const char *name_of(const chunk_opts *o, const char *flag)
{
	static const struct {
		const char *flag, *chunked, *mono;
	} NAMES[] = {
		{"--lut", "LUT2", "LUT"}, {"--lut-embeddings", "LUT1", "LUT_EMBED"}, {"--lut-lmhead", "LUT3", "LUT_LMHEAD"},
		{"--context-length", "CONTEXT", "CONTEXT"}, {"--lut-override", "LUT_OVERRIDE", "LUT_OVERRIDE"}, {"--batch-size", "BATCH", "BATCH"}, {"--chunk", "CHUNK", "CHUNK"},
	};
	for (size_t i = 0; o->make_names && i < sizeof NAMES / sizeof NAMES[0]; i++)
		if (streq(flag, NAMES[i].flag))
			return o->monolithic ? NAMES[i].mono : NAMES[i].chunked;
	return flag;
}

/* --monolithic's own flags; the others refuse them. */
static void check_mono_args(chunk_opts *o)
{
	if (!o->monolithic) {
		/* The plan checks the embeddings' and the head's specs too (LUT1, LUT3). */
		const char *f = o->argmax ? "--argmax" : o->plan ? NULL : o->lut_embed_arg ? "--lut-embeddings"
						      : o->lut_head_arg ? "--lut-lmhead" : NULL;
		if (f)
			die_usage("%s applies to --monolithic%s only", f, o->argmax ? "" : " or --plan");
	} else if (!streq(o->chunk_arg, "1") || o->chunk_no) {
		die_usage("--monolithic writes the whole model as one part: --chunk and --chunk-no do not apply");
	}
	if (o->argmax && o->mode == GRAPH_PREFILL)
		die_usage("--argmax: only the monolithic infer part (ffn --monolithic) computes the argmax");
	if (o->lut_embed_arg && lut_spec_parse(o->lut_embed_arg, &o->lut_embed) != 0)
		die("%s: %s", name_of(o, "--lut-embeddings"), errmsg());
	if (o->lut_head_arg && lut_spec_parse(o->lut_head_arg, &o->lut_head) != 0)
		die("%s: %s", name_of(o, "--lut-lmhead"), errmsg());
	if (o->s.lut_arg && lut_spec_parse(o->s.lut_arg, &o->s.lut) != 0)
		die("%s: %s", name_of(o, "--lut"), errmsg());
}

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
	check_mono_args(o);
}

static void parse_chunk_args(int argc, char **argv, chunk_opts *o)
{
	int decode = o->mode == GRAPH_DECODE;
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(&o->s),
		STAGE_OPT_OUTPUT(&o->s, 0),
		STAGE_OPT_QUALITY_DIR(&o->s),
		STAGE_OPT_PREFIX(&o->s),
		STAGE_OPT_CONTEXT(&o->s, "context length C: KV cache length and causal_mask width"),
		STAGE_OPT_BATCH(&o->s, "prefill batch B (tokens per prefill call; ffn accepts it for symmetry)"),
		{"chunk", "N|auto", CLI_STRING, &o->chunk_arg, 0, 0, 0, "split the layers into N chunks, the first L mod N one layer longer (default 1); auto: ANEMLL's calc_chunk_split rule"},
		{"chunk-no", "K", CLI_INT, &o->chunk_no, 0, 1, 1024, "write only chunk K (1-based; default: every chunk)"},
		{"max-chunk-mb", "MB", CLI_STRING, &o->max_chunk_mb_arg, 0, 0, 0, "largest chunk --chunk auto allows, in MiB with 10% overhead (default 950)"},
		{"plan", NULL, CLI_FLAG, &o->plan, 0, 0, 0, "write nothing: check every value against the model (batch, context, chunks, every tensor each LUT spec applies to, with --lut-embeddings/--lut-lmhead those of the embeddings and the head; the tokenizer) and print the chunk plan (model_dir=, prefix=, layers=, chunks= on stdout, sizes on stderr)"},
		{"make-names", NULL, CLI_FLAG, &o->make_names, 0, 0, 0, "messages name make's variables (LUT2/LUT1/LUT3, with --monolithic LUT/LUT_EMBED/LUT_LMHEAD; CONTEXT, BATCH, CHUNK) instead of the flags: for mk/plan.sh"},
		{"rotate", NULL, CLI_FLAG, &o->rotate, 0, 0, 0, decode
			? "Gemma 3, Mistral, Phi3, context > sliding window: write <prefix>_FFN_rotate[_lut<b>]_chunk_*: the local cache is a ring, the token goes to slot pos mod window (ANEMLL's infer_rotate shifts it)"
			: "Gemma 3, Mistral, Phi3, context > sliding window: write <prefix>_prefill_rotate[_lut<b>]_chunk_*: the batch goes to ring slots of the local cache, with an exact window mask (ANEMLL's prefill_rotate shifts it); the batch must divide the window"},
		{"monolithic", NULL, CLI_FLAG, &o->monolithic, 0, 0, 0, decode
			? "write <prefix>_monolithic[_rotate][_lut<b>]: token ids -> embeddings -> every layer -> LM head logits in one package (ANEMLL's part monolithic)"
			: "write <prefix>_monolithic_prefill[_rotate][_lut<b>]: a batch of token ids through the whole model (ANEMLL's part monolithic_prefill)"},
		{"argmax", NULL, CLI_FLAG, &o->argmax, 0, 0, 0, "with ffn --monolithic: output argmax_idx/argmax_val per LM-head split instead of the logits"},
		{"lut-embeddings", "SPEC", CLI_STRING, &o->lut_embed_arg, 0, 0, 0, "with --monolithic: the embedding table's LUT (default: --lut's), palettized along vocab rows"},
		{"lut-lmhead", "SPEC", CLI_STRING, &o->lut_head_arg, 0, 0, 0, "with --monolithic: the LM head's LUT (default: --lut's)"},
		STAGE_OPT_FP16_SCALE(&o->s, "post-attention/post-feedforward norm gains x alpha (with --monolithic also the embeddings; the final norm cancels it)"),
		STAGE_OPT_CLAMP(&o->s, "clip the hidden states to [-V, V] after every residual add"),
		STAGE_OPT_LUT(&o->s, "the weights"),
		STAGE_OPT_LUT_OVERRIDE(&o->s),
		STAGE_OPT_CALIB_STATS(&o->s),
		STAGE_OPT_LUT_CACHE(&o->s),
		STAGE_OPT_THREADS(&o->s),
	};
	const cli_spec spec = {
		.usage = decode ? "ffn --model DIR --output DIR [options]" : "prefill --model DIR --output DIR [options]",
		.summary = decode ? "Write <prefix>_FFN[_lut<b>]_chunk_<ii>of<NN>.mlpackage: one decode step through a chunk of "
				    "the transformer layers, with the KV cache as state, as ANEMLL's part 2. --rotate: the "
				    "infer_rotate variant (a ring cache beyond its window); --monolithic: the whole model in one "
				    "package."
				  : "Write <prefix>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage: a batch of prompt tokens through a "
				    "chunk of the transformer layers, filling the KV cache state, as ANEMLL's part 2_prefill. --rotate: "
				    "the prefill_rotate variant (a ring cache beyond its window); --monolithic: the whole model in "
				    "one package.",
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
		die("%s%s%d: %s has only %d layers (num_hidden_layers)", name_of(o, "--chunk"), o->make_names ? "=" : " ",
		    o->chunks, c->path ? c->path : o->s.model_dir, c->num_hidden_layers);
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
	       o->chunks);	/* make's rotate steps: a ring cache's window, and whether CONTEXT exceeds it */
	if (c->arch->ring_cache && c->use_sliding_window && c->sliding_window > 0)
		printf("sliding_window=%d\nrotate=%d\n", c->sliding_window, graph_rotates(c, o->s.context));
}

static const char *mono_part(const chunk_opts *o)
{
	if (o->mode == GRAPH_DECODE)
		return o->rotate ? "monolithic_rotate" : "monolithic";
	return o->rotate ? "monolithic_prefill_rotate" : "monolithic_prefill";
}

/* --monolithic: one package; --lut names it, each part takes its own spec. */
static void write_monolithic(const chunk_opts *o)
{
	stage_part p;
	stage_part_paths(&o->s, mono_part(o), 0, 0, &p);
	graph_mono_opts mo = {.mode = o->mode, .context = o->s.context, .batch = o->s.batch, .rotate = o->rotate,
			      .argmax = o->argmax, .fp16_scale = o->s.fp16_scale, .clamp = o->s.clamp,
			      .lut_embed = o->lut_embed, .lut_ffn = o->s.lut, .lut_head = o->lut_head,
			      .lut_embed_flag = o->lut_embed_arg ? "--lut-embeddings" : NULL,
			      .lut_head_flag = o->lut_head_arg ? "--lut-lmhead" : NULL};
	if (o->s.fp16_scale > 0 && mo.lut_embed.bits) {
		warn("the embedding table is not palettized because --fp16-scale scales it (as ANEMLL)");
		mo.lut_embed.bits = 0;
	}
	graph_write_opts wo = stage_write_opts(&o->s, &p);
	if (graph_write_monolithic(p.package, &o->s.hf, &mo, &wo) != 0)
		die_err();
	info(1, "%s: %s", p.package, wo.summary);
	printf("%s\n", p.package);
	stage_part_release(&p);
}

static void write_chunk(const chunk_opts *o, int k)
{
	stage_part p;
	stage_part_paths(&o->s, o->rotate ? PART_ROTATE[o->mode] : PART[o->mode], k, o->chunks, &p);
	graph_chunk_opts co = {.mode = o->mode, .context = o->s.context, .batch = o->s.batch, .chunk = k, .nchunks = o->chunks,
			       .rotate = o->rotate, .fp16_scale = o->s.fp16_scale, .clamp = o->s.clamp};
	graph_write_opts wo = stage_write_opts(&o->s, &p);
	if (graph_write_chunk(p.package, &o->s.hf, &co, &wo) != 0)
		die_err();
	info(1, "%s: %s", p.package, wo.summary);
	printf("%s\n", p.package);
	stage_part_release(&p);
}

/* What the model allows: the architecture, rotate variants, Gemma's small states. */
static void check_model_flags(const chunk_opts *o)
{
	const hf_config *c = &o->s.hf.cfg;
	if (graph_check_model(c, o->s.context) != 0)
		die_err();
	if (o->rotate && graph_check_rotate(c, o->s.context, o->s.batch, o->mode) != 0)
		die_err();
	/* chat.py's fill-mode prefill batches [kB, kB+B) must not straddle the window. */
	if (graph_local_cache(c, o->s.context) && o->mode == GRAPH_PREFILL && o->s.context > c->sliding_window &&
	    c->sliding_window % o->s.batch)
		die("--batch-size %d does not divide the sliding window %d of %s while --context-length %d exceeds it: "
		    "chat.py's prefill batch would straddle the window",
		    o->s.batch, c->sliding_window, c->path ? c->path : o->s.model_dir, o->s.context);
	if (c->arch->split_kv_cache && o->s.context < 256)
		warn("--context-length %d: the Neural Engine's smallest state is 256 positions (ANEMLL requires --force "
		     "below that); the package is written anyway",
		     o->s.context);
}

/* --plan: every value against the model, in the user's names, before any stage runs. */
static void check_plan(chunk_opts *o)
{
	plan_request r = {.context = o->s.context, .batch = o->s.batch, .context_name = name_of(o, "--context-length"),
			  .batch_name = name_of(o, "--batch-size")};
	if (plan_check(&o->s.hf, &r) != 0)
		die_err();
}

/* Every tensor each spec applies to, over the whole model (lutcheck.h): a
 * spec without a group takes the largest <= 8 that fits, so every chunk and
 * the plan agree on it; a group that does not fit is refused here. The
 * monolithic embeddings and head take --lut's spec unless given their own;
 * the plan checks --lut-embeddings/--lut-lmhead (LUT1, LUT3) as the embed
 * and lmhead stages will apply them. */
static void resolve_luts(chunk_opts *o)
{
	if (o->monolithic && !o->lut_embed_arg)
		o->lut_embed = o->s.lut;
	if (o->monolithic && !o->lut_head_arg)
		o->lut_head = o->s.lut;
	int own_embed = o->lut_embed_arg != NULL, own_head = o->lut_head_arg != NULL;
	int whole = o->monolithic || o->plan; /* the parts besides the layers */
	const char *lut = name_of(o, "--lut");
	lutcheck lc = {
		.embed = {whole && o->s.fp16_scale == 0 ? &o->lut_embed : NULL,
			  own_embed ? name_of(o, "--lut-embeddings") : lut, own_embed ? o->lut_embed_arg : o->s.lut_arg},
		.layers = {&o->s.lut, lut, o->s.lut_arg},
		.head = {whole ? &o->lut_head : NULL, own_head ? name_of(o, "--lut-lmhead") : lut,
			 own_head ? o->lut_head_arg : o->s.lut_arg},
		.context = o->s.context,
		.note_level = o->plan ? 1 : 2, /* the plan says it once for every stage */
		.ov = o->s.ov,
	};
	if (lutcheck_run(&o->s.hf, &lc) != 0)
		die_err();
}

int chunk_stage_main(int argc, char **argv, graph_mode mode)
{
	set_progname(argv[0]);
	chunk_opts o = {.mode = mode, .chunk_arg = "1", .max_chunk_mb = 950};
	stage_opts_init(&o.s);
	parse_chunk_args(argc, argv, &o);
	o.s.lut_override_name = name_of(&o, "--lut-override");
	stage_open(&o.s);
	decide_chunks(&o);
	if (o.plan)
		check_plan(&o);
	check_model_flags(&o);
	resolve_luts(&o);
	if (o.plan)
		print_plan(&o);
	else if (o.monolithic)
		write_monolithic(&o);
	for (int k = 1; k <= o.chunks && !o.plan && !o.monolithic; k++)
		if (!o.chunk_no || k == o.chunk_no)
			write_chunk(&o, k);
	if (stdout_close_checked() != 0)
		die_err();
	stage_close(&o.s);
	return 0;
}
