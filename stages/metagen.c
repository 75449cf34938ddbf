/* metagen: write meta.yaml, the file ANEMLL's runtimes open a model by.
 *
 * Input: the converted parts in --output DIR (anemll-interface.md 0):
 *   <p>_embeddings[_lut<b>]                     .mlmodelc (+ its .mlpackage)
 *   <p>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>[_rot]  combined chunks, every ii in 1..NN
 *   <p>_lm_head[_lut<b>]
 * or, with --monolithic, <p>_monolithic_full[_lut<b>] (ANEMLL's monolithic
 * schema: lut_bits from the name and the weights, lut_embeddings/lut_lmhead
 * only where the embed_tokens/lm_head weights differ, the functions list as
 * the package has it, context/batch from infer/prefill, the head's outputs)
 * and the source checkpoint (--model) for the model name, its model_type,
 * its sliding window and its tokenizer files. Output, in DIR: meta.yaml in
 * ANEMLL's exact chunked layout (anemll/metayaml.h), written atomically and
 * only when every check passed; the tokenizer files ANEMLL's step 7 copies;
 * config.json when DIR has none. The path of meta.yaml goes to stdout.
 *
 * Every fact meta.yaml states is read from the packages (anemll/inventory.h
 * finds and reads them; this program chooses), never from flags that could
 * disagree with them: LUT bits from each part's name, checked
 * against its com.anemll.lut_bits metadata and its palettized weights; the
 * LUT group size from the shapes of those weights (indices rows / LUT rows);
 * the chunk count from the files (all of 1..N must be there); context length
 * from the infer causal_mask [1,1,1,C]; batch size from the prefill
 * hidden_states [1,B,H]; split count, vocabulary and split sizes from the LM
 * head's outputs (argmax heads: from its metadata); static prefill slicing
 * from an update_mask input. Names point at the compiled .mlmodelc, which
 * the Swift runtime needs; --allow-uncompiled falls back to .mlpackage names
 * (and to the separate FFN packages before combining), which only chat.py and
 * anemake's smoketest can load. Facts are read from the .mlpackage, so it
 * must be there too. A conversion is a few packages: this takes milliseconds.
 */
#include "anemll/anemll.h"
#include "anemll/inventory.h"
#include "anemll/metayaml.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "checkpoint/hfconfig.h"
#include "checkpoint/hfmodel.h"
#include "convert/lut.h"
#include "convert/lutover.h"
#include "coreml/mlmodel.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h> /* PATH_MAX */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ANEMLL_LUT_GROUP 8 /* ANEMLL's default group size: not recorded when used */

/* --lut-*: which variant to use when several are present. */
typedef struct selector {
	const char *flag, *arg;
	int bits;   /* -1: any; 0: none */
	int group;  /* -1: not given; else checked against the weights */
} selector;

typedef struct options {
	const char *model, *output, *prefix, *model_name, *command_line, *fp16_scale, *clamp;
	const char *lut_override, *calib;
	selector lut_embed, lut_ffn, lut_lmhead;
	int chunks, split_rotate, static_slice, allow_uncompiled, monolithic;
} options;

/* ANEMLL's LUT spec, BITS[,GROUP] or none; the group counts only when given. */
static void parse_selector(selector *sel)
{
	lut_spec spec;
	sel->bits = sel->group = -1;
	if (!sel->arg)
		return;
	if (lut_spec_parse(sel->arg, &spec) != 0)
		die_usage("--%s: %s", sel->flag, errmsg());
	sel->bits = spec.bits;
	if (spec.bits && strchr(sel->arg, ','))
		sel->group = spec.group;
}

static void parse_args(int argc, char **argv, options *o)
{
	*o = (options){.lut_embed.flag = "lut-embeddings", .lut_ffn.flag = "lut-ffn", .lut_lmhead.flag = "lut-lmhead"};
	const cli_opt opts[] = {
		{"model", "DIR|ORG/NAME", CLI_STRING, &o->model, 1, 0, 0, "the source checkpoint (model name, model_type, sliding window, tokenizer files)"},
		{"output", "DIR", CLI_STRING, &o->output, 1, 0, 0, "directory holding the converted parts; meta.yaml is written there"},
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix of the parts (default by architecture: llama, qwen, qwen25, gemma3; the model_type for mistral, granite, olmo2, smollm3, phi3)"},
		{"model-name", "NAME", CLI_STRING, &o->model_name, 0, 0, 0, "name in model_info (default: org-name of the HF cache snapshot or of config.json's _name_or_path, else the directory name)"},
		{"command-line", "TEXT", CLI_STRING, &o->command_line, 0, 0, 0, "the conversion command, recorded in the troubleshooting comments"},
		{"lut-embeddings", "SPEC", CLI_STRING, &o->lut_embed.arg, 0, 0, 0, "use the embeddings with this LUT (BITS[,GROUP] or none) when several are present"},
		{"lut-ffn", "SPEC", CLI_STRING, &o->lut_ffn.arg, 0, 0, 0, "use the FFN chunks with this LUT when several are present"},
		{"lut-lmhead", "SPEC", CLI_STRING, &o->lut_lmhead.arg, 0, 0, 0, "use the LM head with this LUT when several are present"},
		{"chunks", "N", CLI_INT, &o->chunks, 0, 1, 99, "use the N-chunk FFN files when several chunkings are present"},
		{"split-rotate", NULL, CLI_FLAG, &o->split_rotate, 0, 0, 0, "name the _rot chunk files as pf (split rotate; they must exist)"},
		{"monolithic", NULL, CLI_FLAG, &o->monolithic, 0, 0, 0, "ANEMLL's monolithic schema for <prefix>_monolithic_full[_lut<b>] (--lut-ffn: its main LUT)"},
		{"fp16-scale", "ALPHA|auto", CLI_STRING, &o->fp16_scale, 0, 0, 0, "the conversion's --fp16-scale, recorded in the troubleshooting comments"},
		{"clamp", "V", CLI_STRING, &o->clamp, 0, 0, 0, "the conversion's --clamp, recorded in the troubleshooting comments"},
		{"lut-override", "PAT=SPEC;...", CLI_STRING, &o->lut_override, 0, 0, 0, "the conversion's LUT overrides (@FILE entries read), recorded in the comments: ANEMLL's schema has one LUT per part"},
		{"calib", "FILE", CLI_STRING, &o->calib, 0, 0, 0, "the conversion's calibration text (activation-aware palettization), recorded in the comments"},
		{"static-prefill-slice", NULL, CLI_FLAG, &o->static_slice, 0, 0, 0, "leave out prefill_dynamic_slice: chat.py then prefills one token at a time"},
		{"allow-uncompiled", NULL, CLI_FLAG, &o->allow_uncompiled, 0, 0, 0, "name .mlpackage files where no .mlmodelc exists (chat.py and smoketest only)"},
	};
	const cli_spec spec = {
		.usage = "metagen --model DIR --output DIR [options]",
		.summary = "Write <output>/meta.yaml for ANEMLL's runtimes from the parts in <output>, with the\n"
			   "tokenizer files and config.json they load, as ANEMLL's convert_model.sh step 7.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
		.epilog = "A GROUP given to --lut-* must match the palettized weights. With --monolithic, --lut-embeddings\n"
			  "and --lut-lmhead name the LUT of weights too small to be palettized (else: the weights say).\n"
			  "Set SOURCE_DATE_EPOCH to record a time in the comments; otherwise none is written, so the same\n"
			  "parts always give the same bytes.",
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (o->monolithic && (o->split_rotate || o->chunks))
		die_usage("--monolithic: a monolithic model has no chunks (--split-rotate, --chunks)");
	parse_selector(&o->lut_embed);
	parse_selector(&o->lut_ffn);
	parse_selector(&o->lut_lmhead);
}

/* ------------------------------------------------------------------ */
/* The source model                                                    */

typedef struct source {
	char *dir;
	hf_config cfg;
	char *name;          /* MODEL_NAME */
	char *architecture;  /* config.json model_type (or architectures[0]), lower case */
} source;

/* org-name for a model with an identity (an HF cache snapshot, as ANEMLL
 * names it, or config.json's _name_or_path), else the directory's name. */
static char *model_name(const char *dir)
{
	char *id = hf_model_identity(dir), real[PATH_MAX];
	if (!id)
		return path_basename(realpath(dir, real) ? real : dir);
	*strchr(id, '/') = '-';
	return id;
}

/* What convert_model.sh calls ARCH: jq '.model_type // .architectures[0]', lower-cased. */
static char *architecture(const char *dir)
{
	char *path = path_join(dir, "config.json"), *text;
	size_t n;
	if (read_file(path, FS_MAX_TEXT, &text, &n) != 0)
		die_err();
	cJSON *root = cJSON_ParseWithLength(text, n);
	const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
	const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
	const char *s = cJSON_IsString(mt) ? mt->valuestring : NULL;
	if (!s && cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
		s = cJSON_GetArrayItem(archs, 0)->valuestring;
	if (!s)
		die("'%s': neither model_type nor architectures names the architecture", path);
	char *arch = xstrdup(s);
	for (char *p = arch; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	cJSON_Delete(root);
	free(text), free(path);
	return arch;
}

static void open_source(source *src, const options *o)
{
	if (hf_model_resolve(o->model, &src->dir) != 0)
		die_err();
	char *config = path_join(src->dir, "config.json");
	if (hf_config_load(&src->cfg, config) != 0)
		die_err();
	free(config);
	src->name = o->model_name ? xstrdup(o->model_name) : model_name(src->dir);
	src->architecture = architecture(src->dir);
}

/* ------------------------------------------------------------------ */
/* Choosing the parts (common/anemll/inventory.h finds and reads them) */

static void list_parts(inventory *inv, const char *dir, const char *prefix)
{
	if (inventory_list(inv, dir, prefix, INV_PKG | INV_MODELC) != 0)
		die_err();
	if (inv->n == 0)
		die("'%s' holds no %s_* parts (embeddings, FFN chunks, LM head, monolithic): convert the model first", dir,
		    prefix);
}

/* The one unchunked part of `kind` (choosing by LUT when asked). */
static const inv_file *pick_single(const inventory *l, const char *prefix, const char *kind, const selector *sel)
{
	const inv_file *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const inv_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) != 0 || (sel->bits >= 0 && pf->lut != sel->bits))
			continue;
		if (found)
			die("'%s' holds both %s and %s: give --%s BITS|none to choose", l->dir, found->base, pf->base, sel->flag);
		found = pf;
	}
	if (!found && sel->bits >= 0)
		die("'%s' has no %s_%s part with %s (--%s)", l->dir, prefix, kind, inventory_lut_word(sel->bits), sel->flag);
	if (!found)
		die("'%s' has no %s_%s[_lut<b>] part", l->dir, prefix, kind);
	return found;
}

/* Chunk 1 of the FFN files of `kind` to use (one LUT variant, one chunk count). */
static const inv_file *pick_chunk1(const inventory *l, const char *kind, const options *o)
{
	const inv_file *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const inv_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) != 0 || pf->chunk != 1 || pf->rot || (o->lut_ffn.bits >= 0 && pf->lut != o->lut_ffn.bits) ||
		    (o->chunks && pf->nchunks != o->chunks))
			continue;
		if (found)
			die("'%s' holds both %s and %s: give --lut-ffn or --chunks to choose", l->dir, found->base, pf->base);
		found = pf;
	}
	return found;
}

/* The combined chunks (FFN_PF); with --allow-uncompiled, else the separate FFN/prefill ones. */
static void open_chunks(inv_chunks *c, const inventory *l, const char *prefix, const options *o, int *uncompiled)
{
	const inv_file *c1 = pick_chunk1(l, "FFN_PF", o);
	if (!c1 && (c1 = pick_chunk1(l, "FFN", o)) && !o->allow_uncompiled)
		die("'%s' has %s but no combined %s_FFN_PF chunks, which ANEMLL's runtimes need: run combine and compile "
		    "(or give --allow-uncompiled)", l->dir, c1->base, prefix);
	if (!c1)
		die("'%s' has no %s_FFN_PF[_lut<b>]_chunk_01of<NN> part%s", l->dir, prefix,
		    o->lut_ffn.bits >= 0 || o->chunks ? " matching --lut-ffn/--chunks" : "");
	inv_chunks_open(c, l, c1, o->allow_uncompiled, uncompiled);
}

/* Split rotate: the _rot files of every chunk, named as pf. */
static void open_rot(inv_chunks *c, const inventory *l, const char *prefix, const options *o, int *uncompiled)
{
	const inv_file *r1 = inventory_find(l, "FFN_PF", c->lut, 1, c->n, 1);
	if (!o->split_rotate) {
		if (r1)
			warn("ignoring %s and the other _rot chunks: give --split-rotate to name them", r1->base);
		return;
	}
	if (!c->combined)
		die("--split-rotate: '%s' has no combined chunks to pair the _rot files with", l->dir);
	if (!r1) {
		char *base = anemll_part_name(prefix, "FFN_PF", c->lut, 1, c->n);
		die("--split-rotate: '%s' has no %s_rot chunk files", l->dir, base);
	}
	inv_chunks_open_rot(c, l, r1, o->allow_uncompiled, uncompiled);
}

/* A group given with --lut-* is a claim about the weights: it must hold. */
static void check_group(const selector *sel, const char *path, int group)
{
	if (sel->group >= 0 && group >= 0 && sel->group != group)
		die("'%s': its LUT groups have %d rows (0: one per tensor), --%s %s says %d", path, group, sel->flag,
		    sel->arg, sel->group);
}

/* ------------------------------------------------------------------ */
/* meta.yaml                                                           */

/* LUT as ANEMLL records its spec: "none", "b", or "b,g" for a non-default group. */
static int per_channel(int lut, int group)
{
	return lut > 0 && group >= 0 && group != ANEMLL_LUT_GROUP ? group : META_ABSENT;
}

static void lut_spec_text(char *buf, size_t n, int bits, int group)
{
	if (bits <= 0)
		snprintf(buf, n, "none");
	else if (group != META_ABSENT)
		snprintf(buf, n, "%d,%d", bits, group);
	else
		snprintf(buf, n, "%d", bits);
}

static void add_int_comment(metayaml *m, const char *key, int v)
{
	char buf[16];
	snprintf(buf, sizeof buf, "%d", v);
	metayaml_add_comment_literal(m, key, buf);
}

static char *sizes_text(const inv_head *h)
{
	size_t cap = (size_t)h->splits * 13 + 3, len = 1;
	char *s = xmalloc(cap);
	s[0] = '[';
	for (int i = 0; i < h->splits; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s%d", i ? ", " : "", h->sizes[i]);
	snprintf(s + len, cap - len, "]");
	return s;
}

/* SOURCE_DATE_EPOCH as ANEMLL's "%Y-%m-%d %H:%M:%S" (UTC), or NULL. */
static char *generated_time(void)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	if (!s || !*s)
		return NULL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	time_t t = (time_t)v;
	struct tm tm;
	if (*end || errno || v < 0 || !gmtime_r(&t, &tm))
		die("SOURCE_DATE_EPOCH: '%s' is not a number of seconds since 1970", s);
	char buf[32];
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
	return xstrdup(buf);
}

static void add_common_comments(metayaml *m, const options *o, int monolithic);
static void add_head_comments(metayaml *m, const inv_head *hd);

/* The comment block's opening entries: where and how this run was made. */
static void add_run_comments(metayaml *m, const options *o)
{
	m->generated = generated_time();
	metayaml_add_comment(m, "model_path", o->model);
	metayaml_add_comment(m, "output_dir", o->output);
	if (o->command_line)
		metayaml_add_comment(m, "command_line", o->command_line);
	add_int_comment(m, "context_length", m->context_length);
	add_int_comment(m, "batch_size", m->batch_size);
}

/* The troubleshooting block, in ANEMLL's key order (generate_meta_yaml.py). */
static void add_comments(metayaml *m, const options *o, const source *src, const inv_part *e, const inv_chunks *c,
			 const inv_part *h, const inv_head *hd)
{
	char buf[32];
	add_run_comments(m, o);
	add_int_comment(m, "num_chunks", m->num_chunks);
	lut_spec_text(buf, sizeof buf, e->lut, m->lut_embeddings_per_channel);
	metayaml_add_comment(m, "lut_part1", buf);
	lut_spec_text(buf, sizeof buf, c->lut, m->lut_ffn_per_channel);
	metayaml_add_comment(m, "lut_part2", buf);
	lut_spec_text(buf, sizeof buf, h->lut, m->lut_lmhead_per_channel);
	metayaml_add_comment(m, "lut_part3", buf);
	metayaml_add_comment(m, "prefix", m->model_prefix);
	metayaml_add_comment(m, "architecture", src->architecture);
	metayaml_add_comment_literal(m, "argmax_in_model", hd->argmax ? "true" : "false");
	metayaml_add_comment_literal(m, "split_rotate", c->pf_name ? "true" : "false");
	add_common_comments(m, o, 0);
	add_head_comments(m, hd);
}

/* The keys after argmax_in_model/split_rotate, in generate_meta_yaml.py's
 * order: each is written only when ANEMLL's conversion info has a value. */
static void add_common_comments(metayaml *m, const options *o, int monolithic)
{
	if (m->sliding_window != META_ABSENT)
		add_int_comment(m, "sliding_window", m->sliding_window);
	if (o->fp16_scale)
		metayaml_add_comment(m, "fp16_scale", o->fp16_scale);
	if (o->clamp)
		metayaml_add_comment(m, "clamp", o->clamp);
	if (o->lut_override) { /* per-tensor LUTs: the parts' lut_* keys name only their main one */
		lut_overrides ov = {0};
		if (lut_overrides_parse(o->lut_override, "--lut-override", &ov) != 0)
			die_err();
		char *text = lut_overrides_format(&ov);
		metayaml_add_comment(m, "lut_override", text);
		free(text);
		lut_overrides_release(&ov);
	}
	if (o->calib) {
		char *base = path_basename(o->calib);
		metayaml_add_comment(m, "calibration_text", base);
		free(base);
	}
	metayaml_add_comment_literal(m, "single_cache", m->single_cache == 1 ? "true" : "false");
	metayaml_add_comment_literal(m, "dynamic_prefill_slice", m->prefill_dynamic_slice == 1 ? "true" : "false");
	metayaml_add_comment(m, "converter", "anemake " ANEMAKE_VERSION);
	metayaml_add_comment_literal(m, "monolithic", monolithic ? "true" : "false");
	metayaml_add_comment(m, "anemll_version", ANEMLL_VERSION);
}

static void add_head_comments(metayaml *m, const inv_head *hd)
{
	add_int_comment(m, "vocab_size", hd->vocab);
	char *sizes = sizes_text(hd);
	metayaml_add_comment(m, "lm_head_chunk_sizes", sizes);
	free(sizes);
}

static void fill_meta(metayaml *m, const options *o, const source *src, const char *prefix, const inv_part *e,
		      const inv_chunks *c, const inv_part *h, const inv_head *hd)
{
	metayaml_init(m);
	m->context_length = c->context, m->batch_size = c->batch, m->num_chunks = c->n;
	metayaml_set_info(m, src->name);
	metayaml_set_str(&m->architecture, src->architecture);
	m->lut_embeddings = e->lut, m->lut_embeddings_per_channel = per_channel(e->lut, e->group);
	m->lut_ffn = c->lut, m->lut_ffn_per_channel = per_channel(c->lut, c->group);
	m->lut_lmhead = h->lut, m->lut_lmhead_per_channel = per_channel(h->lut, h->group);
	metayaml_set_str(&m->model_prefix, prefix);
	metayaml_set_str(&m->embeddings, e->file);
	metayaml_set_str(&m->lm_head, h->file);
	metayaml_set_str(&m->ffn, c->ffn_name);
	metayaml_set_str(&m->pf, c->pf_name);
	m->split_lm_head = hd->splits;
	m->argmax_in_model = hd->argmax ? 1 : META_ABSENT;
	m->vocab_size = hd->vocab;
	metayaml_set_chunk_sizes(m, hd->sizes, (size_t)hd->splits);
	m->split_rotate = c->pf_name ? 1 : META_ABSENT;
	if (src->cfg.use_sliding_window && src->cfg.sliding_window > 0)
		m->sliding_window = src->cfg.sliding_window;
	m->update_mask_prefill = c->update_mask ? 1 : META_ABSENT;
	m->prefill_dynamic_slice = c->update_mask || o->static_slice ? META_ABSENT : 1;
	m->single_cache = src->cfg.arch->always_sliding_window && c->single_cache ? 1 : META_ABSENT;
	add_comments(m, o, src, e, c, h, hd);
}

/* ------------------------------------------------------------------ */
/* The monolithic model (--monolithic)                                 */

typedef struct mono {
	inv_part p;
	inv_mono_io io;
	inv_lut main, embed, head;
} mono;

/* A class the weights say nothing about (too small to palettize) takes the
 * selector's LUT, else the main one; a selector must agree with the weights. */
static void resolve_class(inv_lut *c, const inv_lut *base, const selector *sel, const char *path, const char *what)
{
	if (c->bits >= 0 && sel->bits >= 0 && sel->bits != c->bits)
		die("'%s': its %s weights are palettized with %s, --%s says %s", path, what, inventory_lut_word(c->bits), sel->flag,
		    inventory_lut_word(sel->bits));
	if (c->bits >= 0)
		check_group(sel, path, c->group);
	else
		*c = sel->bits >= 0 ? (inv_lut){sel->bits, sel->group} : *base;
}

static void read_mono_luts(mono *mo, const options *o)
{
	const char *path = mo->p.pkg_path;
	inv_mono_luts(&mo->p, &mo->main, &mo->embed, &mo->head);
	int meta = inv_meta_int(&mo->p, "com.anemll.lut_bits", mo->p.lut);
	if (meta != mo->p.lut)
		die("'%s': the name says %s but its com.anemll.lut_bits metadata says %s", path,
		    inventory_lut_word(mo->p.lut), inventory_lut_word(meta));
	if (mo->main.bits >= 0 && mo->main.bits != mo->p.lut)
		die("'%s': the name says %s but its weights are palettized with %d bits", path,
		    inventory_lut_word(mo->p.lut), mo->main.bits);
	if (mo->main.bits < 0)
		mo->main = (inv_lut){mo->p.lut, o->lut_ffn.group};
	check_group(&o->lut_ffn, path, mo->main.group);
	resolve_class(&mo->embed, &mo->main, &o->lut_embed, path, "embedding");
	resolve_class(&mo->head, &mo->main, &o->lut_lmhead, path, "LM-head");
}

/* The one <prefix>_monolithic_full[_lut<b>] part (--lut-ffn chooses by its main LUT). */
static void open_mono(mono *mo, const inventory *l, const char *prefix, const options *o, int *uncompiled)
{
	const selector any = {.flag = "lut-ffn", .bits = o->lut_ffn.bits, .group = -1};
	inv_part_open(&mo->p, l, pick_single(l, prefix, "monolithic_full", &any), o->allow_uncompiled, uncompiled);
	inv_mono_read_io(&mo->p, &mo->io);
	read_mono_luts(mo, o);
}

/* A LUT override as ANEMLL writes it: only when it differs from the main LUT. */
static void set_override(int *bits, int *pc, const inv_lut *c, const inv_lut *base)
{
	int c_pc = per_channel(c->bits, c->group), m_pc = per_channel(base->bits, base->group);
	if (c->bits == base->bits && c_pc == m_pc)
		return;
	*bits = c->bits, *pc = c_pc;
}

static void add_mono_comments(metayaml *m, const options *o, const source *src, const mono *mo, const inv_head *hd)
{
	char buf[32];
	add_run_comments(m, o);
	metayaml_add_comment(m, "prefix", m->model_prefix);
	metayaml_add_comment(m, "architecture", src->architecture);
	metayaml_add_comment_literal(m, "argmax_in_model", hd->argmax ? "true" : "false");
	add_common_comments(m, o, 1);
	lut_spec_text(buf, sizeof buf, mo->main.bits, m->lut_per_channel);
	metayaml_add_comment(m, "lut_bits", buf);
	if (m->lut_embeddings != META_ABSENT) {
		lut_spec_text(buf, sizeof buf, m->lut_embeddings, m->lut_embeddings_per_channel);
		metayaml_add_comment(m, "lut_embeddings", buf);
	}
	if (m->lut_lmhead != META_ABSENT) {
		lut_spec_text(buf, sizeof buf, m->lut_lmhead, m->lut_lmhead_per_channel);
		metayaml_add_comment(m, "lut_lmhead", buf);
	}
	metayaml_add_comment_literal(m, "rotate", ml_model_find_function(mo->p.model, "infer_rotate") ? "true" : "false");
	add_head_comments(m, hd);
}

static void fill_mono_meta(metayaml *m, const options *o, const source *src, const char *prefix, const mono *mo,
			   const inv_head *hd)
{
	metayaml_init(m);
	metayaml_set_str(&m->model_type, "monolithic");
	m->context_length = mo->io.context, m->batch_size = mo->io.batch;
	metayaml_set_info(m, src->name);
	metayaml_set_str(&m->architecture, src->architecture);
	m->lut_bits = mo->main.bits, m->lut_per_channel = per_channel(mo->main.bits, mo->main.group);
	set_override(&m->lut_embeddings, &m->lut_embeddings_per_channel, &mo->embed, &mo->main);
	set_override(&m->lut_lmhead, &m->lut_lmhead_per_channel, &mo->head, &mo->main);
	metayaml_set_str(&m->model_prefix, prefix);
	metayaml_set_str(&m->monolithic_model, mo->p.file);
	m->split_lm_head = hd->splits;
	m->argmax_in_model = hd->argmax ? 1 : META_ABSENT;
	m->vocab_size = hd->vocab;
	metayaml_set_chunk_sizes(m, hd->sizes, (size_t)hd->splits);
	if (src->cfg.use_sliding_window && src->cfg.sliding_window > 0)
		m->sliding_window = src->cfg.sliding_window;
	m->update_mask_prefill = mo->io.update_mask ? 1 : META_ABSENT;
	m->prefill_dynamic_slice = mo->io.update_mask || o->static_slice ? META_ABSENT : 1;
	m->single_cache = src->cfg.arch->always_sliding_window && mo->io.single_cache ? 1 : META_ABSENT;
	const ml_description *d = mo->p.model->desc;
	for (size_t i = 0; i < d->nfunctions; i++)
		metayaml_add_function(m, d->functions[i]->name);
	add_mono_comments(m, o, src, mo, hd);
}

static void mono_meta(metayaml *meta, const options *o, const source *src, const char *prefix, const inventory *l)
{
	int uncompiled = 0;
	mono mo = {0};
	inv_head hd;
	open_mono(&mo, l, prefix, o, &uncompiled);
	inv_head_read(&hd, &mo.p, "infer", src->cfg.vocab_size, src->cfg.path);
	if (uncompiled)
		warn("the model is not compiled: meta.yaml names its .mlpackage, which the Swift runtime cannot load");
	fill_mono_meta(meta, o, src, prefix, &mo, &hd);
	free(hd.sizes);
	inv_part_close(&mo.p);
}

/* ------------------------------------------------------------------ */
/* The chunked layout                                                  */

static void chunked_meta(metayaml *meta, const options *o, const source *src, const char *prefix, const inventory *l)
{
	int uncompiled = 0;
	inv_part embed = {0}, lmhead = {0};
	inv_chunks ch;
	inv_head hd;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].kind, "monolithic_full") == 0 && !pick_chunk1(l, "FFN_PF", o) && !pick_chunk1(l, "FFN", o))
			die("'%s' holds the monolithic model %s and no FFN chunks: give --monolithic", l->dir, l->v[i].base);
	open_chunks(&ch, l, prefix, o, &uncompiled);
	open_rot(&ch, l, prefix, o, &uncompiled);
	inv_part_open(&embed, l, pick_single(l, prefix, "embeddings", &o->lut_embed), o->allow_uncompiled, &uncompiled);
	inv_part_open(&lmhead, l, pick_single(l, prefix, "lm_head", &o->lut_lmhead), o->allow_uncompiled, &uncompiled);
	check_group(&o->lut_embed, embed.pkg_path, embed.group);
	check_group(&o->lut_ffn, ch.infer[0].pkg_path, ch.group);
	check_group(&o->lut_lmhead, lmhead.pkg_path, lmhead.group);
	inv_check_embeddings(&embed, &ch);
	inv_head_read_chunked(&hd, &lmhead, &ch, src->cfg.vocab_size, src->cfg.path);
	if (!ch.combined)
		warn("no combined chunks: meta.yaml names %s, which only anemake's smoketest can load", ch.ffn_name);
	else if (uncompiled)
		warn("some parts are not compiled: meta.yaml names their .mlpackage, which the Swift runtime cannot load");
	fill_meta(meta, o, src, prefix, &embed, &ch, &lmhead, &hd);
	free(hd.sizes);
	inv_part_close(&embed), inv_part_close(&lmhead);
	inv_chunks_close(&ch);
}

/* ------------------------------------------------------------------ */
/* Tokenizer files and config.json (convert_model.sh step 7)           */

static const char *const TOKENIZER_FILES[] = {
	"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
	"chat_template.jinja", "added_tokens.json", "special_tokens_map.json", "tokenizer_config_search.json",
	"generation_config.json", "preprocessor_config.json",
};

static int same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static void copy_file(const char *from, const char *to)
{
	char *data;
	size_t n;
	if (read_file(from, FS_MAX_TOKENIZER, &data, &n) != 0 || write_file_atomic(to, data, n) != 0)
		die_err();
	free(data);
}

static void copy_tokenizer(const source *src, const char *out)
{
	if (same_dir(src->dir, out))
		return; /* as ANEMLL: nothing to copy into the model's own directory */
	for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof TOKENIZER_FILES[0]; i++) {
		char *from = path_join(src->dir, TOKENIZER_FILES[i]), *to = path_join(out, TOKENIZER_FILES[i]);
		if (path_exists(from))
			copy_file(from, to);
		free(from), free(to);
	}
	char *config = path_join(out, "config.json"), *text = arch_tokenizer_config(src->cfg.arch);
	if (!path_exists(config) && write_file_atomic(config, text, strlen(text)) != 0)
		die_err();
	free(config), free(text);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o;
	parse_args(argc, argv, &o);
	source src = {0};
	open_source(&src, &o);
	if (!is_dir(o.output))
		die("output directory '%s' does not exist: convert the model into it first", o.output);
	const char *prefix = o.prefix ? o.prefix : src.cfg.arch->prefix;
	inventory parts;
	list_parts(&parts, o.output, prefix);

	metayaml meta;
	if (o.monolithic)
		mono_meta(&meta, &o, &src, prefix, &parts);
	else
		chunked_meta(&meta, &o, &src, prefix, &parts);
	char *path = path_join(o.output, "meta.yaml");
	copy_tokenizer(&src, o.output);
	if (metayaml_write(path, &meta) != 0)
		die_err();
	printf("%s\n", path);
	if (stdout_close_checked() != 0)
		die_err();

	free(path);
	metayaml_release(&meta);
	inventory_release(&parts);
	hf_config_release(&src.cfg);
	free(src.dir), free(src.name), free(src.architecture);
	return 0;
}
