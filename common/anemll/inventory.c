/* inventory.c: the parts in a conversion's output folder and the facts
 * their packages state (see inventory.h). */
#include "anemll/inventory.h"
#include "anemll/anemll.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/mil.h"
#include "coreml/mlpackage.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h> /* INT_MAX */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Finding the parts                                                   */

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
static int parse_part(const char *rest, inv_file *pf)
{
	static const char *const KINDS[] = {"FFN_PF",  "FFN_rotate", "FFN",     "prefill_rotate",
					    "prefill", "embeddings", "lm_head", "monolithic_full"};
	for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
		size_t n = strlen(KINDS[k]);
		const char *p = rest + n;
		inv_file f = {.kind = KINDS[k]};
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
		int chunked = k < 5;
		if (*p || chunked != (f.nchunks > 0))
			continue;
		*pf = f;
		return 1;
	}
	return 0;
}

/* base = "<prefix>_<part>"; prefix NULL: the shortest that leaves a part. */
static int parse_base(const char *base, const char *prefix, inv_file *pf)
{
	if (prefix) {
		size_t plen = strlen(prefix);
		if (strncmp(base, prefix, plen) != 0 || base[plen] != '_' || !parse_part(base + plen + 1, pf))
			return 0;
		pf->prefix = xstrdup(prefix);
		return 1;
	}
	for (const char *u = strchr(base + 1, '_'); u; u = strchr(u + 1, '_'))
		if (parse_part(u + 1, pf)) {
			pf->prefix = xstrndup(base, (size_t)(u - base));
			return 1;
		}
	return 0;
}

static void add_file(inventory *inv, const char *file, const char *prefix, int exts)
{
	int ext = has_suffix(file, ".mlpackage") ? INV_PKG : has_suffix(file, ".mlmodelc") ? INV_MODELC : 0;
	if (!(ext & exts))
		return;
	char *base = xstrndup(file, strlen(file) - (ext == INV_PKG ? 10 : 9));
	for (size_t i = 0; i < inv->n; i++)
		if (strcmp(inv->v[i].base, base) == 0) {
			inv->v[i].exts |= ext;
			free(base);
			return;
		}
	inv_file pf;
	if (!parse_base(base, prefix, &pf)) {
		free(base);
		return;
	}
	pf.base = base, pf.exts = ext;
	GROW(inv->v, inv->cap, inv->n + 1);
	inv->v[inv->n++] = pf;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const inv_file *)a)->base, ((const inv_file *)b)->base);
}

int inventory_list(inventory *inv, const char *dir, const char *prefix, int exts)
{
	*inv = (inventory){0};
	DIR *d = opendir(dir);
	if (!d)
		return errf("cannot open directory '%s':", dir);
	inv->dir = xstrdup(dir);
	for (struct dirent *e; (e = readdir(d));)
		add_file(inv, e->d_name, prefix, exts);
	closedir(d);
	if (inv->n)
		qsort(inv->v, inv->n, sizeof *inv->v, cmp_file);
	return 0;
}

void inventory_release(inventory *inv)
{
	for (size_t i = 0; i < inv->n; i++)
		free(inv->v[i].base), free(inv->v[i].prefix);
	free(inv->v), free(inv->dir);
	*inv = (inventory){0};
}

const inv_file *inventory_find(const inventory *inv, const char *kind, int lut, int chunk, int nchunks, int rot)
{
	for (size_t i = 0; i < inv->n; i++) {
		const inv_file *pf = &inv->v[i];
		if (strcmp(pf->kind, kind) == 0 && pf->lut == lut && pf->chunk == chunk && pf->nchunks == nchunks &&
		    pf->rot == rot)
			return pf;
	}
	return NULL;
}

const char *inventory_lut_word(int bits)
{
	static char buf[8][16];
	static int k;
	k = (k + 1) % 8;
	if (bits <= 0)
		return "no LUT";
	snprintf(buf[k], sizeof buf[k], "LUT %d", bits);
	return buf[k];
}

/* ------------------------------------------------------------------ */
/* Reading a part                                                      */

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
 * = indices rows / LUT rows (0 when one LUT serves the whole tensor). A part
 * written with LUT overrides (com.anemake.lut_override) mixes widths and
 * groups on purpose: its class keeps the first (or preset) width and the
 * group of the weights that have it. */
static void scan_lut_op(const inv_part *p, const mil_block *b, const mil_op *op, int *bits, int *group)
{
	const char *path = p->pkg_path;
	int mixed = ml_model_user_meta(p->model, "com.anemake.lut_override") != NULL;
	const mil_type *idx = arg_type(b, op, "indices"), *lut = arg_type(b, op, "lut");
	uint64_t rows, groups;
	if (dim0(idx, &rows) != 0 || dim0(lut, &groups) != 0 || rows % groups != 0)
		die("'%s': a constexpr_lut_to_dense op has indices and lut shapes metagen cannot read", path);
	int b_op = mil_dtype_bits(idx->dtype), g_op = groups == 1 ? 0 : (int)(rows / groups);
	if (mixed && *bits >= 0 && (*bits != b_op || (g_op && *group > 0 && *group != g_op)))
		return;
	if (*bits >= 0 && *bits != b_op)
		die("'%s': its palettized weights use both %d and %d bits", path, *bits, b_op);
	if (g_op && *group > 0 && *group != g_op)
		die("'%s': its palettized weights use LUT groups of %d and %d rows", path, *group, g_op);
	*bits = b_op;
	if (g_op || *group < 0)
		*group = g_op;
}

/* The palettized weights of every function: each op's output name and LUT
 * facts go to `scan` with the state `arg`. */
static void each_lut_op(const inv_part *p, void (*scan)(const inv_part *p, const mil_block *b, const mil_op *op, void *arg),
			void *arg)
{
	const ml_model *m = p->model;
	for (size_t f = 0; m->program && f < m->program->nfunctions; f++) {
		const mil_block *b = mil_function_block(m->program->functions[f]);
		for (size_t i = 0; b && i < b->nops; i++)
			if (strcmp(b->ops[i]->type, "constexpr_lut_to_dense") == 0)
				scan(p, b, b->ops[i], arg);
	}
}

static void scan_one_class(const inv_part *p, const mil_block *b, const mil_op *op, void *arg)
{
	inv_lut *c = arg;
	scan_lut_op(p, b, op, &c->bits, &c->group);
}

int inv_meta_int(const inv_part *p, const char *key, int absent)
{
	const char *s = ml_model_user_meta(p->model, key);
	if (!s)
		return absent;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || *end || errno || v < 0 || v > INT_MAX)
		die("'%s': metadata %s = '%s' is not a number", p->pkg_path, key, s);
	return (int)v;
}

/* The name, the metadata and the weights must agree about the LUT. */
static void check_lut(inv_part *p)
{
	int meta = inv_meta_int(p, "com.anemll.lut_bits", 0);
	if (meta != p->lut)
		die("'%s': the name says %s but its com.anemll.lut_bits metadata says %s", p->pkg_path,
		    inventory_lut_word(p->lut), inventory_lut_word(meta));
	inv_lut all = {-1, -1};
	if (ml_model_user_meta(p->model, "com.anemake.lut_override") && p->lut)
		all.bits = p->lut; /* overrides: the part's main width is the name's */
	each_lut_op(p, scan_one_class, &all);
	p->group = all.group;
	if (all.bits >= 0 && all.bits != p->lut)
		die("'%s': the name says %s but its weights are palettized with %d bits", p->pkg_path,
		    inventory_lut_word(p->lut), all.bits);
}

void inv_part_open(inv_part *p, const inventory *inv, const inv_file *f, int allow_uncompiled, int *uncompiled)
{
	char *pkg = xasprintf("%s.mlpackage", f->base);
	p->pkg_path = path_join(inv->dir, pkg);
	if (!(f->exts & INV_PKG))
		die("'%s' is missing: metagen reads the facts it writes from the package", p->pkg_path);
	if (f->exts & INV_MODELC)
		p->file = xasprintf("%s.mlmodelc", f->base);
	else if (allow_uncompiled)
		p->file = pkg, pkg = NULL, *uncompiled = 1;
	else
		die("'%s/%s.mlmodelc' is missing: compile the parts first (or give --allow-uncompiled)", inv->dir, f->base);
	free(pkg);
	p->model = read_model(p->pkg_path);
	p->lut = f->lut;
	p->group = -1;
	if (strcmp(f->kind, "monolithic_full") != 0)
		check_lut(p);
}

void inv_part_close(inv_part *p)
{
	free(p->pkg_path), free(p->file);
	ml_model_free(p->model);
}

const ml_shape *inv_feature_shape(const ml_model *m, const char *fn, int which, const char *name)
{
	const ml_function_desc *fd = fn ? ml_model_find_function(m, fn) : &m->desc->top;
	const ml_features *fs = !fd ? NULL : which == 0 ? &fd->input : which == 1 ? &fd->output : &fd->state;
	const ml_feature *f = fs ? ml_features_find(fs, name) : NULL;
	const ml_array_type *a = f ? ml_feature_array(f) : NULL;
	return a ? &a->shape : NULL;
}

void inv_check_context(const inv_part *p, int context)
{
	int ctx = inv_meta_int(p, "com.anemll.context_length", context);
	if (ctx != context)
		die("'%s': its metadata says context length %d, the chunks take %d", p->pkg_path, ctx, context);
}

/* ------------------------------------------------------------------ */
/* The FFN chunks                                                      */

/* The infer and prefill functions of one chunk (combined: in one package). */
static void chunk_io(const inv_part *inf, const inv_part *pre, int combined, int *ctx, int *batch, int *hidden,
		     int *upd)
{
	const char *fi = combined ? "infer" : NULL, *fp = combined ? "prefill" : NULL;
	if (combined && (!ml_model_find_function(inf->model, "infer") || !ml_model_find_function(inf->model, "prefill")))
		die("'%s' lacks an infer or prefill function: it is not a combined FFN_PF chunk", inf->pkg_path);
	const ml_shape *mask = inv_feature_shape(inf->model, fi, 0, "causal_mask");
	const ml_shape *hid = inv_feature_shape(inf->model, fi, 0, "hidden_states");
	const ml_shape *phid = inv_feature_shape(pre->model, fp, 0, "hidden_states");
	if (!mask || mask->n != 4 || mask->dims[0] != 1 || mask->dims[2] != 1 || mask->dims[3] < 1)
		die("'%s': the infer causal_mask input is not [1,1,1,C]", inf->pkg_path);
	if (!hid || hid->n != 3 || hid->dims[1] != 1 || hid->dims[2] < 1)
		die("'%s': the infer hidden_states input is not [1,1,H]", inf->pkg_path);
	if (!phid || phid->n != 3 || phid->dims[1] < 1 || phid->dims[2] != hid->dims[2])
		die("'%s': the prefill hidden_states input is not [1,B,%lld]", pre->pkg_path, (long long)hid->dims[2]);
	*ctx = (int)mask->dims[3], *batch = (int)phid->dims[1], *hidden = (int)hid->dims[2];
	*upd = inv_feature_shape(pre->model, fp, 0, "update_mask") != NULL;
}

/* Every chunk states the same context, batch, hidden size and LUT group
 * size, and (in metadata, when present) its own position among the same
 * number of chunks. The group is taken from the first chunk that has
 * palettized weights. Chunks written with LUT overrides may differ (one
 * whose main-width weights all have one table per tensor says 0): the
 * first group of rows any of them has is kept. */
static void check_chunk(inv_chunks *c, int i)
{
	int ctx, batch, hidden, upd;
	const inv_part *inf = &c->infer[i], *pre = &c->prefill[i];
	chunk_io(inf, pre, c->combined, &ctx, &batch, &hidden, &upd);
	if (ctx != c->context || batch != c->batch || hidden != c->hidden || upd != c->update_mask)
		die("'%s' does not match chunk 1 (context %d, batch %d, hidden %d vs %d, %d, %d)", inf->pkg_path, ctx, batch,
		    hidden, c->context, c->batch, c->hidden);
	const inv_part *ps[2] = {inf, pre};
	for (int k = 0; k < 2; k++) {
		int n = inv_meta_int(ps[k], "com.anemll.num_chunks", c->n);
		int no = inv_meta_int(ps[k], "com.anemll.chunk_no", i + 1);
		if (n != c->n || no != i + 1)
			die("'%s': its metadata says chunk %d of %d", ps[k]->pkg_path, no, n);
		int mixed = ml_model_user_meta(ps[k]->model, "com.anemake.lut_override") != NULL;
		if (!mixed && ps[k]->group >= 0 && c->group >= 0 && ps[k]->group != c->group)
			die("'%s': LUT groups of %d rows, an earlier chunk has %d", ps[k]->pkg_path, ps[k]->group, c->group);
		if (ps[k]->group >= 0 && (!mixed || c->group <= 0))
			c->group = ps[k]->group;
	}
}

int inv_single_cache(const ml_model *m, const char *fn)
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
static char *chunk_set_name(const inv_part *ps, int n, const char *dir)
{
	int compiled = 1;
	for (int i = 0; i < n; i++)
		compiled &= has_suffix(ps[i].file, ".mlmodelc");
	for (int i = 0; i < n && !compiled; i++)
		if (has_suffix(ps[i].file, ".mlmodelc"))
			die("'%s/%s' is compiled but not every chunk is: compile them all", dir, ps[i].file);
	return xstrdup(ps[0].file);
}

static void open_chunk_set(inv_part *ps, const inventory *inv, const char *kind, const inv_file *c1, int rot,
			   int allow_uncompiled, int *uncompiled)
{
	for (int i = 0; i < c1->nchunks; i++) {
		const inv_file *pf = inventory_find(inv, kind, c1->lut, i + 1, c1->nchunks, rot);
		if (!pf) {
			char *name = anemll_part_name(c1->prefix, kind, c1->lut, i + 1, c1->nchunks);
			die("'%s/%s%s.mlpackage' is missing: chunk %d of %d", inv->dir, name, rot ? "_rot" : "", i + 1,
			    c1->nchunks);
		}
		inv_part_open(&ps[i], inv, pf, allow_uncompiled, uncompiled);
	}
}

void inv_chunks_open(inv_chunks *c, const inventory *inv, const inv_file *c1, int allow_uncompiled, int *uncompiled)
{
	*c = (inv_chunks){.combined = strcmp(c1->kind, "FFN_PF") == 0};
	c->n = c1->nchunks, c->lut = c1->lut;
	c->infer = xcalloc((size_t)c->n, sizeof *c->infer);
	open_chunk_set(c->infer, inv, c1->kind, c1, 0, allow_uncompiled, uncompiled);
	if (c->combined)
		c->prefill = c->infer;
	else {
		const inv_file *p1 = inventory_find(inv, "prefill", c1->lut, 1, c1->nchunks, 0);
		if (!p1)
			die("'%s' has %s but no %s_prefill chunks", inv->dir, c1->base, c1->prefix);
		c->prefill = xcalloc((size_t)c->n, sizeof *c->prefill);
		open_chunk_set(c->prefill, inv, "prefill", p1, 0, allow_uncompiled, uncompiled);
	}
	c->group = -1;
	chunk_io(&c->infer[0], &c->prefill[0], c->combined, &c->context, &c->batch, &c->hidden, &c->update_mask);
	for (int i = 0; i < c->n; i++)
		check_chunk(c, i);
	c->single_cache = inv_single_cache(c->infer[0].model, c->combined ? "infer" : NULL);
	c->ffn_name = chunk_set_name(c->infer, c->n, inv->dir);
}

void inv_chunks_open_rot(inv_chunks *c, const inventory *inv, const inv_file *r1, int allow_uncompiled,
			 int *uncompiled)
{
	inv_part *rot = xcalloc((size_t)c->n, sizeof *rot);
	open_chunk_set(rot, inv, "FFN_PF", r1, 1, allow_uncompiled, uncompiled);
	c->pf_name = chunk_set_name(rot, c->n, inv->dir);
	for (int i = 0; i < c->n; i++)
		inv_part_close(&rot[i]);
	free(rot);
}

void inv_chunks_close(inv_chunks *c)
{
	for (int i = 0; i < c->n; i++) {
		inv_part_close(&c->infer[i]);
		if (!c->combined)
			inv_part_close(&c->prefill[i]);
	}
	free(c->infer);
	if (!c->combined)
		free(c->prefill);
	free(c->ffn_name), free(c->pf_name);
}

/* ------------------------------------------------------------------ */
/* Embeddings and LM head                                              */

void inv_check_embeddings(const inv_part *e, const inv_chunks *c)
{
	inv_check_context(e, c->context);
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

static void read_argmax_head(inv_head *h, const inv_part *p, const char *fn, const ml_shape *idx, int config_vocab)
{
	h->argmax = 1;
	if (idx->n != 1 || idx->dims[0] < 1 || !inv_feature_shape(p->model, fn, 1, "argmax_val"))
		die("'%s': argmax_idx is not [K] beside argmax_val", p->pkg_path);
	h->splits = (int)idx->dims[0];
	h->vocab = inv_meta_int(p, "com.anemll.vocab_size", config_vocab);
	const char *s = ml_model_user_meta(p->model, "com.anemll.lm_head_chunk_sizes");
	h->sizes = s ? parse_sizes(p->pkg_path, s, h->splits) : even_sizes(h->vocab, h->splits);
	long long sum = 0;
	for (int i = 0; i < h->splits; i++)
		sum += h->sizes[i];
	if (sum != h->vocab)
		die("'%s': LM-head splits add up to %lld, the vocabulary has %d tokens", p->pkg_path, sum, h->vocab);
}

void inv_head_read(inv_head *h, const inv_part *p, const char *fn, int config_vocab, const char *config_path)
{
	*h = (inv_head){0};
	const ml_shape *idx = inv_feature_shape(p->model, fn, 1, "argmax_idx");
	if (idx) {
		read_argmax_head(h, p, fn, idx, config_vocab);
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
		const ml_shape *s = inv_feature_shape(p->model, fn, 1, name);
		if (!s || s->n < 1 || s->dims[s->n - 1] < 1)
			die("'%s': outputs are not logits1..logits%d with a vocabulary slice each", p->pkg_path, h->splits);
		h->sizes[i] = (int)s->dims[s->n - 1], vocab += h->sizes[i];
	}
	if (h->splits == 0 || vocab > INT_MAX)
		die("'%s' has no logits outputs", p->pkg_path);
	h->vocab = (int)vocab;
	if (h->vocab != config_vocab)
		warn("'%s' gives %d logits, but %s says vocab_size %d", p->pkg_path, h->vocab, config_path, config_vocab);
}

void inv_head_read_chunked(inv_head *h, const inv_part *p, const inv_chunks *c, int config_vocab,
			   const char *config_path)
{
	inv_check_context(p, c->context);
	const ml_shape *in = inv_feature_shape(p->model, NULL, 0, "hidden_states");
	if (!in || in->n != 3 || in->dims[2] != c->hidden)
		die("'%s': the hidden_states input is not [1,1,%d] as the chunks' output", p->pkg_path, c->hidden);
	inv_head_read(h, p, NULL, config_vocab, config_path);
}

/* ------------------------------------------------------------------ */
/* The monolithic model                                                */

/* Context from infer's causal_mask [1,1,1,C], batch from prefill's input_ids [1,B]. */
void inv_mono_read_io(const inv_part *p, inv_mono_io *io)
{
	if (!ml_model_find_function(p->model, "infer") || !ml_model_find_function(p->model, "prefill"))
		die("'%s' lacks an infer or prefill function: it is not a combined monolithic model", p->pkg_path);
	const ml_shape *mask = inv_feature_shape(p->model, "infer", 0, "causal_mask");
	const ml_shape *ids = inv_feature_shape(p->model, "prefill", 0, "input_ids");
	if (!mask || mask->n != 4 || mask->dims[0] != 1 || mask->dims[2] != 1 || mask->dims[3] < 1)
		die("'%s': the infer causal_mask input is not [1,1,1,C]", p->pkg_path);
	if (!ids || ids->n != 2 || ids->dims[0] != 1 || ids->dims[1] < 1)
		die("'%s': the prefill input_ids input is not [1,B]", p->pkg_path);
	io->context = (int)mask->dims[3], io->batch = (int)ids->dims[1];
	inv_check_context(p, io->context);
	io->update_mask = inv_feature_shape(p->model, "prefill", 0, "update_mask") != NULL;
	io->single_cache = inv_single_cache(p->model, "infer");
}

static void scan_by_class(const inv_part *p, const mil_block *b, const mil_op *op, void *arg)
{
	inv_lut *c = arg; /* main, embed, head */
	if (op->noutputs < 1)
		return;
	const char *name = op->outputs[0].name;
	inv_lut *to = strstr(name, "embed_tokens") ? &c[1] : strstr(name, "lm_head") ? &c[2] : &c[0];
	scan_lut_op(p, b, op, &to->bits, &to->group);
}

void inv_mono_luts(const inv_part *p, inv_lut *main, inv_lut *embed, inv_lut *head)
{
	inv_lut c[3] = {{-1, -1}, {-1, -1}, {-1, -1}};
	each_lut_op(p, scan_by_class, c);
	*main = c[0], *embed = c[1], *head = c[2];
}
