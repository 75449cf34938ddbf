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
 * ANEMLL's exact chunked layout (common/metayaml.h), written atomically and
 * only when every check passed; the tokenizer files ANEMLL's step 7 copies;
 * config.json when DIR has none. The path of meta.yaml goes to stdout.
 *
 * Every fact meta.yaml states is read from the packages, never from flags
 * that could disagree with them: LUT bits from each part's name, checked
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
#include "anemll/metayaml.h"
#include "base/cli.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "checkpoint/hfconfig.h"
#include "checkpoint/hfmodel.h"
#include "convert/lut.h"
#include "coreml/mlmodel.h"
#include "coreml/mlpackage.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
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
		{"prefix", "NAME", CLI_STRING, &o->prefix, 0, 0, 0, "file-name prefix of the parts (default by architecture: llama, qwen, qwen25, gemma3)"},
		{"model-name", "NAME", CLI_STRING, &o->model_name, 0, 0, 0, "name in model_info (default: org-name for an HF cache snapshot, else the directory name)"},
		{"command-line", "TEXT", CLI_STRING, &o->command_line, 0, 0, 0, "the conversion command, recorded in the troubleshooting comments"},
		{"lut-embeddings", "SPEC", CLI_STRING, &o->lut_embed.arg, 0, 0, 0, "use the embeddings with this LUT (BITS[,GROUP] or none) when several are present"},
		{"lut-ffn", "SPEC", CLI_STRING, &o->lut_ffn.arg, 0, 0, 0, "use the FFN chunks with this LUT when several are present"},
		{"lut-lmhead", "SPEC", CLI_STRING, &o->lut_lmhead.arg, 0, 0, 0, "use the LM head with this LUT when several are present"},
		{"chunks", "N", CLI_INT, &o->chunks, 0, 1, 99, "use the N-chunk FFN files when several chunkings are present"},
		{"split-rotate", NULL, CLI_FLAG, &o->split_rotate, 0, 0, 0, "name the _rot chunk files as pf (split rotate; they must exist)"},
		{"monolithic", NULL, CLI_FLAG, &o->monolithic, 0, 0, 0, "ANEMLL's monolithic schema for <prefix>_monolithic_full[_lut<b>] (--lut-ffn: its main LUT)"},
		{"fp16-scale", "ALPHA|auto", CLI_STRING, &o->fp16_scale, 0, 0, 0, "the conversion's --fp16-scale, recorded in the troubleshooting comments"},
		{"clamp", "V", CLI_STRING, &o->clamp, 0, 0, 0, "the conversion's --clamp, recorded in the troubleshooting comments"},
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

/* ANEMLL: org-name for .../models--org--name/snapshots/<rev>, else the basename. */
static char *model_name(const char *dir)
{
	char *id = hf_model_hub_id(dir), real[PATH_MAX];
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
	if (read_file(path, &text, &n) != 0)
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
/* Finding the parts                                                   */

enum { EXT_PKG = 1, EXT_MODELC = 2 };

typedef struct part_file {
	char *base;        /* file name without extension */
	const char *kind;  /* embeddings, lm_head, FFN_PF, FFN, prefill */
	int lut, chunk, nchunks, rot;
	int exts;          /* EXT_* present */
} part_file;

typedef struct part_list {
	part_file *v;
	size_t n, cap;
	const char *dir, *prefix;
} part_list;

/* Digits at *p (at least one, at most 4) -> value; advances *p. */
static int take_number(const char **p, int *out)
{
	int v = 0, k = 0;
	for (; isdigit((unsigned char)(*p)[k]) && k < 5; k++)
		v = v * 10 + ((*p)[k] - '0');
	if (k == 0 || k == 5)
		return -1;
	*p += k, *out = v;
	return 0;
}

/* "<kind>[_lut<b>][_chunk_<i>of<n>][_rot]" after "<prefix>_"; 0 when not a part. */
static int parse_part(const char *rest, part_file *pf)
{
	static const char *const KINDS[] = {"FFN_PF", "FFN", "prefill", "embeddings", "lm_head", "monolithic_full"};
	for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
		size_t n = strlen(KINDS[k]);
		const char *p = rest + n;
		part_file f = {.kind = KINDS[k]};
		if (strncmp(rest, KINDS[k], n) != 0)
			continue;
		if (strncmp(p, "_lut", 4) == 0) {
			p += 4;
			if (take_number(&p, &f.lut) != 0 || f.lut < 1 || f.lut > 8)
				continue;
		}
		if (strncmp(p, "_chunk_", 7) == 0) {
			p += 7;
			if (take_number(&p, &f.chunk) != 0 || strncmp(p, "of", 2) != 0)
				continue;
			p += 2;
			if (take_number(&p, &f.nchunks) != 0 || f.chunk < 1 || f.chunk > f.nchunks)
				continue;
		}
		if (strcmp(p, "_rot") == 0 && strcmp(KINDS[k], "FFN_PF") == 0 && f.nchunks)
			f.rot = 1, p += 4;
		int chunked = k < 3;
		if (*p || chunked != (f.nchunks > 0))
			continue;
		*pf = f;
		return 1;
	}
	return 0;
}

static void add_file(part_list *l, const char *file)
{
	int ext = has_suffix(file, ".mlpackage") ? EXT_PKG : has_suffix(file, ".mlmodelc") ? EXT_MODELC : 0;
	size_t plen = strlen(l->prefix);
	if (!ext || strncmp(file, l->prefix, plen) != 0 || file[plen] != '_')
		return;
	char *base = xstrndup(file, strlen(file) - (ext == EXT_PKG ? 10 : 9));
	part_file pf;
	if (!parse_part(base + plen + 1, &pf)) {
		free(base);
		return;
	}
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].base, base) == 0) {
			l->v[i].exts |= ext;
			free(base);
			return;
		}
	pf.base = base, pf.exts = ext;
	GROW(l->v, l->cap, l->n + 1);
	l->v[l->n++] = pf;
}

/* Sorted, so choices and messages do not depend on readdir order. */
static int cmp_part(const void *a, const void *b)
{
	return strcmp(((const part_file *)a)->base, ((const part_file *)b)->base);
}

static void list_parts(part_list *l, const char *dir, const char *prefix)
{
	*l = (part_list){.dir = dir, .prefix = prefix};
	DIR *d = opendir(dir);
	if (!d)
		die("cannot open the output directory '%s':", dir);
	for (struct dirent *e; (e = readdir(d));)
		add_file(l, e->d_name);
	closedir(d);
	if (l->n == 0)
		die("'%s' holds no %s_* parts (embeddings, FFN chunks, LM head, monolithic): convert the model first", dir,
		    prefix);
	qsort(l->v, l->n, sizeof *l->v, cmp_part);
}

static void free_parts(part_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].base);
	free(l->v);
}

static const char *lut_word(int bits)
{
	static char buf[8][16];
	static int k;
	k = (k + 1) % 8;
	if (bits <= 0)
		return "no LUT";
	snprintf(buf[k], sizeof buf[k], "LUT %d", bits);
	return buf[k];
}

/* The one unchunked part of `kind` (choosing by LUT when asked). */
static const part_file *pick_single(const part_list *l, const char *kind, const selector *sel)
{
	const part_file *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const part_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) != 0 || (sel->bits >= 0 && pf->lut != sel->bits))
			continue;
		if (found)
			die("'%s' holds both %s and %s: give --%s BITS|none to choose", l->dir, found->base, pf->base, sel->flag);
		found = pf;
	}
	if (!found && sel->bits >= 0)
		die("'%s' has no %s_%s part with %s (--%s)", l->dir, l->prefix, kind, lut_word(sel->bits), sel->flag);
	if (!found)
		die("'%s' has no %s_%s[_lut<b>] part", l->dir, l->prefix, kind);
	return found;
}

static const part_file *find_part(const part_list *l, const char *kind, int lut, int chunk, int nchunks, int rot)
{
	for (size_t i = 0; i < l->n; i++) {
		const part_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) == 0 && pf->lut == lut && pf->chunk == chunk && pf->nchunks == nchunks &&
		    pf->rot == rot)
			return pf;
	}
	return NULL;
}

/* Chunk 1 of the FFN files of `kind` to use (one LUT variant, one chunk count). */
static const part_file *pick_chunk1(const part_list *l, const char *kind, const options *o)
{
	const part_file *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const part_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) != 0 || pf->chunk != 1 || pf->rot || (o->lut_ffn.bits >= 0 && pf->lut != o->lut_ffn.bits) ||
		    (o->chunks && pf->nchunks != o->chunks))
			continue;
		if (found)
			die("'%s' holds both %s and %s: give --lut-ffn or --chunks to choose", l->dir, found->base, pf->base);
		found = pf;
	}
	return found;
}

/* ------------------------------------------------------------------ */
/* Reading a part                                                      */

typedef struct part {
	char *pkg_path;     /* <dir>/<base>.mlpackage: where the facts come from */
	char *file;         /* the name meta.yaml gives it */
	ml_model *model;
	int lut;            /* from the name */
	int group;          /* LUT group size from the weights; -1 unknown */
} part;

static ml_model *read_model(const char *path)
{
	mlpackage pkg;
	ml_model *m;
	if (mlpackage_open(path, &pkg) != 0 || ml_model_decode(pkg.model, pkg.model_size, &m) != 0)
		die_err();
	mlpackage_close(&pkg);
	if (!m->desc)
		die("'%s' has no model description", path);
	return m;
}

/* The type bound to an op parameter: a literal's type, or the producing op's output type. */
static const mil_type *arg_type(const mil_block *b, const mil_op *op, const char *param)
{
	const mil_arg *a = mil_op_input(op, param);
	if (!a || a->n != 1)
		return NULL;
	if (a->v[0].kind == MIL_BIND_VALUE)
		return a->v[0].value ? a->v[0].value->type : NULL;
	const mil_op *prod = mil_block_find_producer(b, a->v[0].name, NULL);
	for (size_t i = 0; prod && i < prod->noutputs; i++)
		if (strcmp(prod->outputs[i].name, a->v[0].name) == 0)
			return prod->outputs[i].type;
	return NULL;
}

static int dim0(const mil_type *t, uint64_t *out)
{
	if (!t || t->kind != MIL_TYPE_TENSOR || t->ndims < 2 || t->dims[0].kind != MIL_DIM_CONST || !t->dims[0].size)
		return -1;
	*out = t->dims[0].size;
	return 0;
}

/* LUT facts of one palettized weight: bits from the indices type, group size
 * = indices rows / LUT rows (0 when one LUT serves the whole tensor). */
static void scan_lut_op(const char *path, const mil_block *b, const mil_op *op, int *bits, int *group)
{
	const mil_type *idx = arg_type(b, op, "indices"), *lut = arg_type(b, op, "lut");
	uint64_t rows, groups;
	if (dim0(idx, &rows) != 0 || dim0(lut, &groups) != 0 || rows % groups != 0)
		die("'%s': a constexpr_lut_to_dense op has indices and lut shapes metagen cannot read", path);
	int b_op = mil_dtype_bits(idx->dtype), g_op = groups == 1 ? 0 : (int)(rows / groups);
	if (*bits >= 0 && *bits != b_op)
		die("'%s': its palettized weights use both %d and %d bits", path, *bits, b_op);
	if (g_op && *group > 0 && *group != g_op)
		die("'%s': its palettized weights use LUT groups of %d and %d rows", path, *group, g_op);
	*bits = b_op;
	if (g_op || *group < 0)
		*group = g_op;
}

/* Bits and group size over every palettized weight of every function; -1 when none. */
static void scan_luts(const char *path, const ml_model *m, int *bits, int *group)
{
	*bits = *group = -1;
	for (size_t f = 0; m->program && f < m->program->nfunctions; f++) {
		const mil_block *b = mil_function_block(m->program->functions[f]);
		for (size_t i = 0; b && i < b->nops; i++)
			if (strcmp(b->ops[i]->type, "constexpr_lut_to_dense") == 0)
				scan_lut_op(path, b, b->ops[i], bits, group);
	}
}

/* A com.anemll.* integer, or `absent`. */
static int meta_int(const char *path, const ml_model *m, const char *key, int absent)
{
	const char *s = ml_model_user_meta(m, key);
	if (!s)
		return absent;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < 0 || v > INT_MAX)
		die("'%s': metadata %s = '%s' is not a number", path, key, s);
	return (int)v;
}

/* The name, the metadata and the weights must agree about the LUT. */
static void check_lut(part *p)
{
	int meta = meta_int(p->pkg_path, p->model, "com.anemll.lut_bits", 0), bits;
	if (meta != p->lut)
		die("'%s': the name says %s but its com.anemll.lut_bits metadata says %s", p->pkg_path, lut_word(p->lut),
		    lut_word(meta));
	scan_luts(p->pkg_path, p->model, &bits, &p->group);
	if (bits >= 0 && bits != p->lut)
		die("'%s': the name says %s but its weights are palettized with %d bits", p->pkg_path, lut_word(p->lut), bits);
}

/* Open <base>.mlpackage and choose the name meta.yaml gives the part. */
static void open_part(part *p, const part_list *l, const part_file *pf, const options *o, int *uncompiled)
{
	char *pkg = xasprintf("%s.mlpackage", pf->base);
	p->pkg_path = path_join(l->dir, pkg);
	if (!(pf->exts & EXT_PKG))
		die("'%s' is missing: metagen reads the facts it writes from the package", p->pkg_path);
	if (pf->exts & EXT_MODELC)
		p->file = xasprintf("%s.mlmodelc", pf->base);
	else if (o->allow_uncompiled)
		p->file = pkg, pkg = NULL, *uncompiled = 1;
	else
		die("'%s/%s.mlmodelc' is missing: compile the parts first (or give --allow-uncompiled)", l->dir, pf->base);
	free(pkg);
	p->model = read_model(p->pkg_path);
	p->lut = pf->lut;
	if (strcmp(pf->kind, "monolithic_full") != 0) /* mixes LUTs by design: read_mono_luts */
		check_lut(p);
}

static void close_part(part *p)
{
	free(p->pkg_path), free(p->file);
	ml_model_free(p->model);
}

/* dims of input/output/state `name` of function fn (NULL: top level); NULL when absent. */
static const ml_shape *feature_shape(const ml_model *m, const char *fn, int which, const char *name)
{
	const ml_function_desc *fd = fn ? ml_model_find_function(m, fn) : &m->desc->top;
	const ml_features *fs = !fd ? NULL : which == 0 ? &fd->input : which == 1 ? &fd->output : &fd->state;
	const ml_feature *f = fs ? ml_features_find(fs, name) : NULL;
	const ml_array_type *a = f ? ml_feature_array(f) : NULL;
	return a ? &a->shape : NULL;
}

/* ------------------------------------------------------------------ */
/* The FFN chunks                                                      */

typedef struct chunks {
	int n, lut, combined, group;
	part *infer, *prefill;          /* per chunk; prefill == infer when combined */
	char *ffn_name, *pf_name;       /* as meta.yaml names chunk 1 */
	int context, batch, hidden, update_mask, single_cache;
} chunks;

/* The infer and prefill functions of one chunk (combined: in one package). */
static void chunk_io(const part *inf, const part *pre, int combined, int *ctx, int *batch, int *hidden, int *upd)
{
	const char *fi = combined ? "infer" : NULL, *fp = combined ? "prefill" : NULL;
	if (combined && (!ml_model_find_function(inf->model, "infer") || !ml_model_find_function(inf->model, "prefill")))
		die("'%s' lacks an infer or prefill function: it is not a combined FFN_PF chunk", inf->pkg_path);
	const ml_shape *mask = feature_shape(inf->model, fi, 0, "causal_mask");
	const ml_shape *hid = feature_shape(inf->model, fi, 0, "hidden_states");
	const ml_shape *phid = feature_shape(pre->model, fp, 0, "hidden_states");
	if (!mask || mask->n != 4 || mask->dims[0] != 1 || mask->dims[2] != 1 || mask->dims[3] < 1)
		die("'%s': the infer causal_mask input is not [1,1,1,C]", inf->pkg_path);
	if (!hid || hid->n != 3 || hid->dims[1] != 1 || hid->dims[2] < 1)
		die("'%s': the infer hidden_states input is not [1,1,H]", inf->pkg_path);
	if (!phid || phid->n != 3 || phid->dims[1] < 1 || phid->dims[2] != hid->dims[2])
		die("'%s': the prefill hidden_states input is not [1,B,%lld]", pre->pkg_path, (long long)hid->dims[2]);
	*ctx = (int)mask->dims[3], *batch = (int)phid->dims[1], *hidden = (int)hid->dims[2];
	*upd = feature_shape(pre->model, fp, 0, "update_mask") != NULL;
}

/* Every chunk states the same context, batch, hidden size and LUT group
 * size, and (in metadata, when present) its own position among the same
 * number of chunks. The group is taken from the first chunk that has
 * palettized weights. */
static void check_chunk(chunks *c, int i)
{
	int ctx, batch, hidden, upd;
	const part *inf = &c->infer[i], *pre = &c->prefill[i];
	chunk_io(inf, pre, c->combined, &ctx, &batch, &hidden, &upd);
	if (ctx != c->context || batch != c->batch || hidden != c->hidden || upd != c->update_mask)
		die("'%s' does not match chunk 1 (context %d, batch %d, hidden %d vs %d, %d, %d)", inf->pkg_path, ctx, batch,
		    hidden, c->context, c->batch, c->hidden);
	const part *ps[2] = {inf, pre};
	for (int k = 0; k < 2; k++) {
		int n = meta_int(ps[k]->pkg_path, ps[k]->model, "com.anemll.num_chunks", c->n);
		int no = meta_int(ps[k]->pkg_path, ps[k]->model, "com.anemll.chunk_no", i + 1);
		if (n != c->n || no != i + 1)
			die("'%s': its metadata says chunk %d of %d", ps[k]->pkg_path, no, n);
		if (ps[k]->group >= 0 && c->group >= 0 && ps[k]->group != c->group)
			die("'%s': LUT groups of %d rows, an earlier chunk has %d", ps[k]->pkg_path, ps[k]->group, c->group);
		if (ps[k]->group >= 0)
			c->group = ps[k]->group;
	}
}

/* One state for all layers (kv_cache_0) where the architecture could have a local/global pair. */
static int has_single_cache(const ml_model *m, const char *fn)
{
	const ml_function_desc *fd = fn ? ml_model_find_function(m, fn) : &m->desc->top;
	int single = 0, split = 0;
	for (size_t i = 0; fd && i < fd->state.n; i++) {
		single |= strstr(fd->state.v[i]->name, "kv_cache_0") != NULL;
		split |= strstr(fd->state.v[i]->name, "kv_cache_local") != NULL;
	}
	return single && !split;
}

/* The name meta.yaml gives a chunk set: chunk 1's, if every chunk has that extension. */
static char *chunk_set_name(const part *ps, int n, const char *dir)
{
	int compiled = 1;
	for (int i = 0; i < n; i++)
		compiled &= has_suffix(ps[i].file, ".mlmodelc");
	for (int i = 0; i < n && !compiled; i++)
		if (has_suffix(ps[i].file, ".mlmodelc"))
			die("'%s/%s' is compiled but not every chunk is: compile them all", dir, ps[i].file);
	return xstrdup(ps[0].file);
}

static void open_chunk_set(part *ps, const part_list *l, const char *kind, const part_file *c1, int rot,
			   const options *o, int *uncompiled)
{
	for (int i = 0; i < c1->nchunks; i++) {
		const part_file *pf = find_part(l, kind, c1->lut, i + 1, c1->nchunks, rot);
		if (!pf) {
			char *name = anemll_part_name(l->prefix, kind, c1->lut, i + 1, c1->nchunks);
			die("'%s/%s%s.mlpackage' is missing: chunk %d of %d", l->dir, name, rot ? "_rot" : "", i + 1,
			    c1->nchunks);
		}
		open_part(&ps[i], l, pf, o, uncompiled);
	}
}

static void open_chunks(chunks *c, const part_list *l, const options *o, int *uncompiled)
{
	const part_file *c1 = pick_chunk1(l, "FFN_PF", o);
	c->combined = c1 != NULL;
	if (!c1 && (c1 = pick_chunk1(l, "FFN", o)) && !o->allow_uncompiled)
		die("'%s' has %s but no combined %s_FFN_PF chunks, which ANEMLL's runtimes need: run combine and compile "
		    "(or give --allow-uncompiled)", l->dir, c1->base, l->prefix);
	if (!c1)
		die("'%s' has no %s_FFN_PF[_lut<b>]_chunk_01of<NN> part%s", l->dir, l->prefix,
		    o->lut_ffn.bits >= 0 || o->chunks ? " matching --lut-ffn/--chunks" : "");
	c->n = c1->nchunks, c->lut = c1->lut;
	c->infer = xcalloc((size_t)c->n, sizeof *c->infer);
	open_chunk_set(c->infer, l, c1->kind, c1, 0, o, uncompiled);
	if (c->combined)
		c->prefill = c->infer;
	else {
		const part_file *p1 = find_part(l, "prefill", c1->lut, 1, c1->nchunks, 0);
		if (!p1)
			die("'%s' has %s but no %s_prefill chunks", l->dir, c1->base, l->prefix);
		c->prefill = xcalloc((size_t)c->n, sizeof *c->prefill);
		open_chunk_set(c->prefill, l, "prefill", p1, 0, o, uncompiled);
	}
	c->group = -1;
	chunk_io(&c->infer[0], &c->prefill[0], c->combined, &c->context, &c->batch, &c->hidden, &c->update_mask);
	for (int i = 0; i < c->n; i++)
		check_chunk(c, i);
	c->single_cache = has_single_cache(c->infer[0].model, c->combined ? "infer" : NULL);
	c->ffn_name = chunk_set_name(c->infer, c->n, l->dir);
}

/* Split rotate: the _rot files of every chunk, named as pf. */
static void open_rot(chunks *c, const part_list *l, const options *o, int *uncompiled)
{
	const part_file *r1 = find_part(l, "FFN_PF", c->lut, 1, c->n, 1);
	if (!o->split_rotate) {
		if (r1)
			warn("ignoring %s and the other _rot chunks: give --split-rotate to name them", r1->base);
		return;
	}
	if (!c->combined)
		die("--split-rotate: '%s' has no combined chunks to pair the _rot files with", l->dir);
	if (!r1) {
		char *base = anemll_part_name(l->prefix, "FFN_PF", c->lut, 1, c->n);
		die("--split-rotate: '%s' has no %s_rot chunk files", l->dir, base);
	}
	part *rot = xcalloc((size_t)c->n, sizeof *rot);
	open_chunk_set(rot, l, "FFN_PF", r1, 1, o, uncompiled);
	c->pf_name = chunk_set_name(rot, c->n, l->dir);
	for (int i = 0; i < c->n; i++)
		close_part(&rot[i]);
	free(rot);
}

static void close_chunks(chunks *c)
{
	for (int i = 0; i < c->n; i++) {
		close_part(&c->infer[i]);
		if (!c->combined)
			close_part(&c->prefill[i]);
	}
	free(c->infer);
	if (!c->combined)
		free(c->prefill);
	free(c->ffn_name), free(c->pf_name);
}

/* ------------------------------------------------------------------ */
/* Embeddings and LM head                                              */

/* A group given with --lut-* is a claim about the weights: it must hold. */
static void check_group(const selector *sel, const char *path, int group)
{
	if (sel->group >= 0 && group >= 0 && sel->group != group)
		die("'%s': its LUT groups have %d rows (0: one per tensor), --%s %s says %d", path, group, sel->flag,
		    sel->arg, sel->group);
}

static void check_context(const part *p, int context)
{
	int ctx = meta_int(p->pkg_path, p->model, "com.anemll.context_length", context);
	if (ctx != context)
		die("'%s': its metadata says context length %d, the chunks take %d", p->pkg_path, ctx, context);
}

/* The embeddings must accept the prefill batch [1,B] (enumerated shapes). */
static void check_embeddings(const part *e, const chunks *c)
{
	check_context(e, c->context);
	const ml_feature *f = ml_features_find(&e->model->desc->top.input, "input_ids");
	const ml_array_type *a = f ? ml_feature_array(f) : NULL;
	if (!a)
		die("'%s' has no input_ids input", e->pkg_path);
	if (a->flex != ML_FLEX_ENUMERATED)
		return;
	for (size_t i = 0; i < a->nshapes; i++)
		if (a->shapes[i].n == 2 && a->shapes[i].dims[1] == c->batch)
			return;
	die("'%s': input_ids takes no [1,%d] shape, the prefill batch of the chunks", e->pkg_path, c->batch);
}

typedef struct head {
	int splits, vocab, argmax;
	int *sizes;
} head;

/* "a,b,c" from metadata, checked against the split count. */
static int *parse_sizes(const char *path, const char *s, int n)
{
	int *sizes = xcalloc((size_t)n, sizeof *sizes), k = 0;
	for (const char *p = s; *p && k < n; k++) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v <= 0 || v > INT_MAX || (*end && *end != ','))
			break;
		sizes[k] = (int)v;
		p = *end ? end + 1 : end;
	}
	if (k != n)
		die("'%s': metadata com.anemll.lm_head_chunk_sizes = '%s' is not %d sizes", path, s, n);
	return sizes;
}

/* ANEMLL's split of a vocabulary: vocab/n each, one more for the first vocab%n. */
static int *even_sizes(int vocab, int n)
{
	int *sizes = xcalloc((size_t)n, sizeof *sizes);
	for (int i = 0; i < n; i++)
		sizes[i] = vocab / n + (i < vocab % n);
	return sizes;
}

static void read_argmax_head(head *h, const part *p, const char *fn, const ml_shape *idx, const hf_config *cfg)
{
	h->argmax = 1;
	if (idx->n != 1 || idx->dims[0] < 1 || !feature_shape(p->model, fn, 1, "argmax_val"))
		die("'%s': argmax_idx is not [K] beside argmax_val", p->pkg_path);
	h->splits = (int)idx->dims[0];
	h->vocab = meta_int(p->pkg_path, p->model, "com.anemll.vocab_size", cfg->vocab_size);
	const char *s = ml_model_user_meta(p->model, "com.anemll.lm_head_chunk_sizes");
	h->sizes = s ? parse_sizes(p->pkg_path, s, h->splits) : even_sizes(h->vocab, h->splits);
	long long sum = 0;
	for (int i = 0; i < h->splits; i++)
		sum += h->sizes[i];
	if (sum != h->vocab)
		die("'%s': LM-head splits add up to %lld, the vocabulary has %d tokens", p->pkg_path, sum, h->vocab);
}

/* The outputs of function fn (NULL: the only one): logits1..logitsK
 * [1,1,n_k], or argmax_idx/argmax_val. */
static void read_head_outputs(head *h, const part *p, const char *fn, const hf_config *cfg)
{
	const ml_shape *idx = feature_shape(p->model, fn, 1, "argmax_idx");
	if (idx) {
		read_argmax_head(h, p, fn, idx, cfg);
		return;
	}
	const ml_function_desc *fd = fn ? ml_model_find_function(p->model, fn) : &p->model->desc->top;
	const ml_features *outs = &fd->output;
	h->splits = (int)outs->n;
	h->sizes = xcalloc(outs->n ? outs->n : 1, sizeof *h->sizes);
	long long vocab = 0;
	for (int i = 0; i < h->splits; i++) {
		char name[32];
		snprintf(name, sizeof name, "logits%d", i + 1);
		const ml_shape *s = feature_shape(p->model, fn, 1, name);
		if (!s || s->n < 1 || s->dims[s->n - 1] < 1)
			die("'%s': outputs are not logits1..logits%d with a vocabulary slice each", p->pkg_path, h->splits);
		h->sizes[i] = (int)s->dims[s->n - 1], vocab += h->sizes[i];
	}
	if (h->splits == 0 || vocab > INT_MAX)
		die("'%s' has no logits outputs", p->pkg_path);
	h->vocab = (int)vocab;
	if (h->vocab != cfg->vocab_size)
		warn("'%s' gives %d logits, but %s says vocab_size %d", p->pkg_path, h->vocab, cfg->path, cfg->vocab_size);
}

/* The LM head of the chunked layout: it must take the chunks' hidden state. */
static void read_head(head *h, const part *p, const chunks *c, const hf_config *cfg)
{
	check_context(p, c->context);
	const ml_shape *in = feature_shape(p->model, NULL, 0, "hidden_states");
	if (!in || in->n != 3 || in->dims[2] != c->hidden)
		die("'%s': the hidden_states input is not [1,1,%d] as the chunks' output", p->pkg_path, c->hidden);
	read_head_outputs(h, p, NULL, cfg);
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

static char *sizes_text(const head *h)
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
static void add_head_comments(metayaml *m, const head *hd);

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
static void add_comments(metayaml *m, const options *o, const source *src, const part *e, const chunks *c,
			 const part *h, const head *hd)
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
	metayaml_add_comment_literal(m, "single_cache", m->single_cache == 1 ? "true" : "false");
	metayaml_add_comment_literal(m, "dynamic_prefill_slice", m->prefill_dynamic_slice == 1 ? "true" : "false");
	metayaml_add_comment(m, "converter", "anemake " ANEMAKE_VERSION);
	metayaml_add_comment_literal(m, "monolithic", monolithic ? "true" : "false");
	metayaml_add_comment(m, "anemll_version", ANEMLL_VERSION);
}

static void add_head_comments(metayaml *m, const head *hd)
{
	add_int_comment(m, "vocab_size", hd->vocab);
	char *sizes = sizes_text(hd);
	metayaml_add_comment(m, "lm_head_chunk_sizes", sizes);
	free(sizes);
}

static void fill_meta(metayaml *m, const options *o, const source *src, const char *prefix, const part *e,
		      const chunks *c, const part *h, const head *hd)
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

/* LUT of one class of weights; bits -1: none of them is palettized. */
typedef struct lut_class {
	int bits, group;
} lut_class;

typedef struct mono {
	part p;
	int context, batch, update_mask, single_cache;
	lut_class main, embed, head;
} mono;

/* ANEMLL's --lut-embeddings/--lut-lmhead apply to the ops whose names hold
 * embed_tokens / lm_head; everything else has the main LUT. */
static lut_class *lut_class_of(mono *mo, const char *name)
{
	if (strstr(name, "embed_tokens"))
		return &mo->embed;
	if (strstr(name, "lm_head"))
		return &mo->head;
	return &mo->main;
}

static void scan_mono_luts(mono *mo)
{
	const ml_model *m = mo->p.model;
	mo->main = mo->embed = mo->head = (lut_class){-1, -1};
	for (size_t f = 0; m->program && f < m->program->nfunctions; f++) {
		const mil_block *b = mil_function_block(m->program->functions[f]);
		for (size_t i = 0; b && i < b->nops; i++) {
			const mil_op *op = b->ops[i];
			if (strcmp(op->type, "constexpr_lut_to_dense") != 0 || op->noutputs < 1)
				continue;
			lut_class *c = lut_class_of(mo, op->outputs[0].name);
			scan_lut_op(mo->p.pkg_path, b, op, &c->bits, &c->group);
		}
	}
}

/* A class the weights say nothing about (too small to palettize) takes the
 * selector's LUT, else the main one; a selector must agree with the weights. */
static void resolve_class(lut_class *c, const lut_class *base, const selector *sel, const char *path, const char *what)
{
	if (c->bits >= 0 && sel->bits >= 0 && sel->bits != c->bits)
		die("'%s': its %s weights are palettized with %s, --%s says %s", path, what, lut_word(c->bits), sel->flag,
		    lut_word(sel->bits));
	if (c->bits >= 0)
		check_group(sel, path, c->group);
	else
		*c = sel->bits >= 0 ? (lut_class){sel->bits, sel->group} : *base;
}

static void read_mono_luts(mono *mo, const options *o)
{
	const char *path = mo->p.pkg_path;
	scan_mono_luts(mo);
	int meta = meta_int(path, mo->p.model, "com.anemll.lut_bits", mo->p.lut);
	if (meta != mo->p.lut)
		die("'%s': the name says %s but its com.anemll.lut_bits metadata says %s", path, lut_word(mo->p.lut),
		    lut_word(meta));
	if (mo->main.bits >= 0 && mo->main.bits != mo->p.lut)
		die("'%s': the name says %s but its weights are palettized with %d bits", path, lut_word(mo->p.lut),
		    mo->main.bits);
	if (mo->main.bits < 0)
		mo->main = (lut_class){mo->p.lut, o->lut_ffn.group};
	check_group(&o->lut_ffn, path, mo->main.group);
	resolve_class(&mo->embed, &mo->main, &o->lut_embed, path, "embedding");
	resolve_class(&mo->head, &mo->main, &o->lut_lmhead, path, "LM-head");
}

/* Context from infer's causal_mask [1,1,1,C], batch from prefill's input_ids [1,B]. */
static void read_mono_io(mono *mo)
{
	const part *p = &mo->p;
	if (!ml_model_find_function(p->model, "infer") || !ml_model_find_function(p->model, "prefill"))
		die("'%s' lacks an infer or prefill function: it is not a combined monolithic model", p->pkg_path);
	const ml_shape *mask = feature_shape(p->model, "infer", 0, "causal_mask");
	const ml_shape *ids = feature_shape(p->model, "prefill", 0, "input_ids");
	if (!mask || mask->n != 4 || mask->dims[0] != 1 || mask->dims[2] != 1 || mask->dims[3] < 1)
		die("'%s': the infer causal_mask input is not [1,1,1,C]", p->pkg_path);
	if (!ids || ids->n != 2 || ids->dims[0] != 1 || ids->dims[1] < 1)
		die("'%s': the prefill input_ids input is not [1,B]", p->pkg_path);
	mo->context = (int)mask->dims[3], mo->batch = (int)ids->dims[1];
	check_context(p, mo->context);
	mo->update_mask = feature_shape(p->model, "prefill", 0, "update_mask") != NULL;
	mo->single_cache = has_single_cache(p->model, "infer");
}

/* The one <prefix>_monolithic_full[_lut<b>] part (--lut-ffn chooses by its main LUT). */
static void open_mono(mono *mo, const part_list *l, const options *o, int *uncompiled)
{
	const selector any = {.flag = "lut-ffn", .bits = o->lut_ffn.bits, .group = -1};
	open_part(&mo->p, l, pick_single(l, "monolithic_full", &any), o, uncompiled);
	read_mono_io(mo);
	read_mono_luts(mo, o);
}

/* A LUT override as ANEMLL writes it: only when it differs from the main LUT. */
static void set_override(int *bits, int *pc, const lut_class *c, const lut_class *base)
{
	int c_pc = per_channel(c->bits, c->group), m_pc = per_channel(base->bits, base->group);
	if (c->bits == base->bits && c_pc == m_pc)
		return;
	*bits = c->bits, *pc = c_pc;
}

static void add_mono_comments(metayaml *m, const options *o, const source *src, const mono *mo, const head *hd)
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
			   const head *hd)
{
	metayaml_init(m);
	metayaml_set_str(&m->model_type, "monolithic");
	m->context_length = mo->context, m->batch_size = mo->batch;
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
	m->update_mask_prefill = mo->update_mask ? 1 : META_ABSENT;
	m->prefill_dynamic_slice = mo->update_mask || o->static_slice ? META_ABSENT : 1;
	m->single_cache = src->cfg.arch->always_sliding_window && mo->single_cache ? 1 : META_ABSENT;
	const ml_description *d = mo->p.model->desc;
	for (size_t i = 0; i < d->nfunctions; i++)
		metayaml_add_function(m, d->functions[i]->name);
	add_mono_comments(m, o, src, mo, hd);
}

static void mono_meta(metayaml *meta, const options *o, const source *src, const char *prefix, const part_list *l)
{
	int uncompiled = 0;
	mono mo = {0};
	head hd = {0};
	open_mono(&mo, l, o, &uncompiled);
	read_head_outputs(&hd, &mo.p, "infer", &src->cfg);
	if (uncompiled)
		warn("the model is not compiled: meta.yaml names its .mlpackage, which the Swift runtime cannot load");
	fill_mono_meta(meta, o, src, prefix, &mo, &hd);
	free(hd.sizes);
	close_part(&mo.p);
}

/* ------------------------------------------------------------------ */
/* The chunked layout                                                  */

static void chunked_meta(metayaml *meta, const options *o, const source *src, const char *prefix, const part_list *l)
{
	int uncompiled = 0;
	part embed = {0}, lmhead = {0};
	chunks ch = {0};
	head hd = {0};
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].kind, "monolithic_full") == 0 && !pick_chunk1(l, "FFN_PF", o) && !pick_chunk1(l, "FFN", o))
			die("'%s' holds the monolithic model %s and no FFN chunks: give --monolithic", l->dir, l->v[i].base);
	open_chunks(&ch, l, o, &uncompiled);
	open_rot(&ch, l, o, &uncompiled);
	open_part(&embed, l, pick_single(l, "embeddings", &o->lut_embed), o, &uncompiled);
	open_part(&lmhead, l, pick_single(l, "lm_head", &o->lut_lmhead), o, &uncompiled);
	check_group(&o->lut_embed, embed.pkg_path, embed.group);
	check_group(&o->lut_ffn, ch.infer[0].pkg_path, ch.group);
	check_group(&o->lut_lmhead, lmhead.pkg_path, lmhead.group);
	check_embeddings(&embed, &ch);
	read_head(&hd, &lmhead, &ch, &src->cfg);
	if (!ch.combined)
		warn("no combined chunks: meta.yaml names %s, which only anemake's smoketest can load", ch.ffn_name);
	else if (uncompiled)
		warn("some parts are not compiled: meta.yaml names their .mlpackage, which the Swift runtime cannot load");
	fill_meta(meta, o, src, prefix, &embed, &ch, &lmhead, &hd);
	free(hd.sizes);
	close_part(&embed), close_part(&lmhead);
	close_chunks(&ch);
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
	if (read_file(from, &data, &n) != 0 || write_file_atomic(to, data, n) != 0)
		die_err();
	free(data);
}

/* ANEMLL writes this for the iOS tokenizer loader; Qwen gets its own class. */
static const char *config_json(const arch_info *arch)
{
	if (arch->id == ARCH_QWEN2)
		return "{\n  \"tokenizer_class\": \"Qwen2Tokenizer\",\n  \"model_type\": \"qwen2\"\n}\n";
	if (arch->id == ARCH_QWEN3)
		return "{\n  \"tokenizer_class\": \"Qwen2Tokenizer\",\n  \"model_type\": \"qwen3\"\n}\n";
	return "{\n  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"model_type\": \"llama\"\n}\n";
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
	char *config = path_join(out, "config.json");
	const char *text = config_json(src->cfg.arch);
	if (!path_exists(config) && write_file_atomic(config, text, strlen(text)) != 0)
		die_err();
	free(config);
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
	part_list parts;
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
	free_parts(&parts);
	hf_config_release(&src.cfg);
	free(src.dir), free(src.name), free(src.architecture);
	return 0;
}
