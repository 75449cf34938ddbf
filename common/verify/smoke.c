/* smoke.c: ANEMLL's inference contract through the CPU runtime, and the
 * comparison with the fp32 reference (see smoke.h). */
#include "verify/smoke.h"
#include "anemll/anemll.h"
#include "anemll/inventory.h"
#include "anemll/metayaml.h"
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/progress.h"
#include "base/util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define FP16_NEG_INF 0xfc00

/* ------------------------------------------------------------------ */
/* Finding the parts                                                   */

/* The runtime runs packages: the inventory lists those (anemll/inventory.h). */
typedef inv_file part_file;
typedef inventory part_list;

static char *pkg_path(const char *dir, const part_file *f)
{
	char *file = xasprintf("%s.mlpackage", f->base), *path = path_join(dir, file);
	free(file);
	return path;
}

/* The one file of `kind` (chunk c, 0 for unchunked) matching lut (-1: any). */
static const part_file *pick(const part_list *l, const char *dir, const char *kind, int chunk, int lut, int *ambiguous)
{
	const part_file *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const part_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) != 0 || pf->chunk != chunk || pf->rot || (lut >= 0 && pf->lut != lut))
			continue; /* split-rotate _rot files: found through meta.yaml */
		if (found) {
			*ambiguous = 1;
			errf("'%s': both %s.mlpackage and %s.mlpackage match: say which LUT variant to use", dir, found->base,
			     pf->base);
			return NULL;
		}
		found = pf;
	}
	return found;
}

/* Bytes of the weight file of a compiled model or a package (0 when it has none). */
static uint64_t weight_file_bytes(const char *path)
{
	const char *where[] = {"weights/weight.bin", "Data/com.apple.CoreML/weights/weight.bin"};
	uint64_t n = 0;
	for (size_t i = 0; i < sizeof where / sizeof where[0] && !n; i++) {
		char *w = path_join(path, where[i]);
		struct stat st;
		if (stat(w, &st) == 0 && S_ISREG(st.st_mode))
			n = (uint64_t)st.st_size;
		free(w);
	}
	return n;
}

static rt_model *load_path(smoke_parts *p, const char *path)
{
	rt_model *m = NULL;
	if (rt_model_open(path, &m) != 0)
		return NULL;
	p->owned = xrealloc(p->owned, sizeof *p->owned * (size_t)(p->nowned + 1));
	p->owned_bytes = xrealloc(p->owned_bytes, sizeof *p->owned_bytes * (size_t)(p->nowned + 1));
	p->owned_bytes[p->nowned] = weight_file_bytes(path);
	p->owned[p->nowned++] = m;
	return m;
}

static rt_model *load(smoke_parts *p, const char *dir, const part_file *f)
{
	char *path = pkg_path(dir, f);
	rt_model *m = load_path(p, path);
	free(path);
	return m;
}

static const part_file *need(const part_list *l, const char *dir, const char *kind, int chunk, int lut)
{
	int amb = 0;
	const part_file *pf = pick(l, dir, kind, chunk, lut, &amb);
	if (!pf && !amb && lut > 0 && strcmp(kind, "embeddings") == 0)
		pf = pick(l, dir, kind, chunk, 0, &amb); /* chat.py falls back to the plain table */
	if (!pf && !amb)
		errf("'%s': no %s part%s", dir, kind, chunk ? " for every chunk" : "");
	return pf;
}

static void alloc_chunks(smoke_parts *p, int n)
{
	p->nchunks = n;
	p->infer = xcalloc((size_t)n, sizeof *p->infer), p->prefill = xcalloc((size_t)n, sizeof *p->prefill);
	p->infer_fn = xcalloc((size_t)n, sizeof *p->infer_fn), p->prefill_fn = xcalloc((size_t)n, sizeof *p->prefill_fn);
	p->infer_rot = xcalloc((size_t)n, sizeof *p->infer_rot), p->prefill_rot = xcalloc((size_t)n, sizeof *p->prefill_rot);
	p->infer_rot_fn = xcalloc((size_t)n, sizeof *p->infer_rot_fn);
	p->prefill_rot_fn = xcalloc((size_t)n, sizeof *p->prefill_rot_fn);
	p->chunk_desc = xasprintf("%d chunk%s", n, n > 1 ? "s" : "");
}

static int has_function(const rt_model *m, const char *fn)
{
	for (int i = 0; m && i < rt_function_count(m); i++)
		if (streq(rt_function_name(m, i), fn))
			return 1;
	return 0;
}

/* The first of a, b (either may be NULL) that declares function fn. */
static rt_model *with_function(rt_model *a, rt_model *b, const char *fn)
{
	return a && has_function(a, fn) ? a : b && has_function(b, fn) ? b : NULL;
}

/* Chunk c (0-based) of a combined model, or of the ffn and pf files of
 * split rotate: infer* from ffn and prefill* from pf, as chat.py loads them.
 * ANEMLL's combine instead documents infer+prefill in one file and the
 * rotate pair in the _rot one, so a function missing where chat.py looks
 * is taken from the other file. */
static void set_combined(smoke_parts *p, int c, rt_model *ffn, rt_model *pf)
{
	p->infer[c] = with_function(ffn, pf, "infer"), p->prefill[c] = with_function(pf, ffn, "prefill");
	p->infer_fn[c] = "infer", p->prefill_fn[c] = "prefill";
	if ((p->infer_rot[c] = with_function(ffn, pf, "infer_rotate")))
		p->infer_rot_fn[c] = "infer_rotate";
	if ((p->prefill_rot[c] = with_function(pf, ffn, "prefill_rotate")))
		p->prefill_rot_fn[c] = "prefill_rotate";
}

/* Uncombined rotate parts of chunk c (1-based), when there. */
static int open_rotate_files(smoke_parts *p, const part_list *l, const char *dir, int c, int lut)
{
	int amb = 0;
	const part_file *ir = pick(l, dir, "FFN_rotate", c, lut, &amb);
	const part_file *pr = amb ? NULL : pick(l, dir, "prefill_rotate", c, lut, &amb);
	if (amb)
		return -1;
	if (ir && !(p->infer_rot[c - 1] = load(p, dir, ir)))
		return -1;
	if (pr && !(p->prefill_rot[c - 1] = load(p, dir, pr)))
		return -1;
	p->infer_rot_fn[c - 1] = p->prefill_rot_fn[c - 1] = "main";
	return 0;
}

static int open_chunk(smoke_parts *p, const part_list *l, const char *dir, int c, int lut)
{
	int amb = 0;
	const part_file *pf = pick(l, dir, "FFN_PF", c, lut, &amb);
	if (amb)
		return -1;
	if (pf) {
		rt_model *m = load(p, dir, pf);
		if (m)
			set_combined(p, c - 1, m, m);
		return m ? 0 : -1;
	}
	const part_file *ffn = need(l, dir, "FFN", c, lut), *pre = ffn ? need(l, dir, "prefill", c, ffn->lut) : NULL;
	if (!pre)
		return -1;
	p->infer[c - 1] = load(p, dir, ffn);
	p->prefill[c - 1] = p->infer[c - 1] ? load(p, dir, pre) : NULL;
	p->infer_fn[c - 1] = p->prefill_fn[c - 1] = "main";
	if (!p->prefill[c - 1])
		return -1;
	return open_rotate_files(p, l, dir, c, ffn->lut);
}

static int count_chunks(const part_list *l, int lut)
{
	int n = 0;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].nchunks && (lut < 0 || l->v[i].lut == lut) && l->v[i].chunk == 1) {
			if (n && n != l->v[i].nchunks)
				return errf("chunk files of %d and %d chunks are mixed", n, l->v[i].nchunks);
			n = l->v[i].nchunks;
		}
	return n;
}

/* The state input of fn whose name contains `what`, or NULL. */
static const rt_io *state_io(const rt_model *m, const char *fn, const char *what)
{
	const rt_io *in, *out;
	int nin, nout;
	if (!m || rt_function_io(m, fn, &in, &nin, &out, &nout) != 0)
		return NULL;
	for (int i = 0; i < nin; i++)
		if (in[i].is_state && strstr(in[i].name, what))
			return &in[i];
	return NULL;
}

/* Logit outputs of a head (or monolithic model): vocab, or argmax mode. */
static void read_vocab(smoke_parts *p, const rt_io *out, int nout)
{
	p->vocab = 0;
	for (int i = 0; i < nout; i++) {
		if (streq(out[i].name, "argmax_idx"))
			p->argmax_in_model = 1;
		else if (strncmp(out[i].name, "logits", 6) == 0 || streq(out[i].name, "output_logits"))
			p->vocab += (int)out[i].shape[out[i].rank - 1];
	}
}

/* Shapes the runtime contract needs, from the function signatures. */
static int read_shapes(smoke_parts *p)
{
	const rt_io *in, *out;
	int nin, nout;
	if (rt_function_io(p->prefill[0], p->prefill_fn[0], &in, &nin, &out, &nout) != 0)
		return -1;
	for (int i = 0; i < nin; i++) {
		if (streq(in[i].name, "hidden_states"))
			p->batch = (int)in[i].shape[1], p->hidden = (int)in[i].shape[2];
		if (p->mono && streq(in[i].name, "input_ids"))
			p->batch = (int)in[i].shape[1];
		if (streq(in[i].name, "causal_mask"))
			p->context = (int)in[i].shape[3];
	}
	if (p->mono ? rt_function_io(p->mono, p->infer_fn[0], &in, &nin, &out, &nout) != 0
		    : rt_function_io(p->lmhead, NULL, &in, &nin, &out, &nout) != 0)
		return -1;
	read_vocab(p, out, nout);
	if (p->batch <= 0 || (p->hidden <= 0 && !p->mono) || p->context <= 0 || (p->vocab <= 0 && !p->argmax_in_model))
		return errf("the parts do not have ANEMLL's inputs (%s, causal_mask) and outputs",
			    p->mono ? "input_ids" : "hidden_states");
	return 0;
}

/* The weights a decode step reads: the embeddings, the LM head and each
 * chunk's infer file, each file once (an uncombined prefill file, or a
 * split-rotate pf file, holds a second copy of its chunk's). */
static uint64_t decode_weight_bytes(const smoke_parts *p)
{
	uint64_t n = 0;
	for (int i = 0; i < p->nowned; i++) {
		int used = p->owned[i] == p->embed || p->owned[i] == p->lmhead;
		for (int c = 0; c < p->nchunks && !used; c++)
			used = p->owned[i] == p->infer[c];
		n += used ? p->owned_bytes[i] : 0;
	}
	return n;
}

/* After the chunks are open: the window, chat.py's rotate rule, the state. */
static int finish_open(smoke_parts *p, int window)
{
	p->weight_bytes = decode_weight_bytes(p);
	if (read_shapes(p) != 0)
		return -1;
	/* chat.py loads the rotate functions only when context > sliding window */
	p->sliding_window = window > 0 && p->context > window ? window : 0;
	for (int c = 0; !p->sliding_window && c < p->nchunks; c++)
		p->infer_rot[c] = p->prefill_rot[c] = NULL;
	/* One state for everything, made as chat.py does from the prefill
	 * function of the chunk that declares the global cache (Swift makes a
	 * monolithic model's from infer: the declarations are the same). */
	int g = 0;
	for (int c = 0; c < p->nchunks; c++)
		if (state_io(p->prefill[c], p->prefill_fn[c], "kv_cache_global")) {
			g = c;
			break;
		}
	p->state = p->mono ? rt_state_new(p->mono, p->infer_fn[0]) : rt_state_new(p->prefill[g], p->prefill_fn[g]);
	return p->state ? 0 : -1;
}

/* The window of a directory's conversion: the rows of its local cache. */
static int local_window(const smoke_parts *p)
{
	const rt_io *s = state_io(p->infer[0], p->infer_fn[0], "kv_cache_local");
	return s && s->rank == 4 ? (int)s->shape[2] : 0;
}

static void set_mono(smoke_parts *p, rt_model *m, const char *path)
{
	alloc_chunks(p, 1);
	free(p->chunk_desc);
	p->chunk_desc = xstrdup("monolithic");
	p->mono = m;
	set_combined(p, 0, m, m);
	p->embed_path = xstrdup(path), p->lmhead_path = xstrdup(path);
}

static int open_mono_dir(smoke_parts *p, const part_list *l, const char *dir, int lut)
{
	const part_file *f = need(l, dir, "monolithic_full", 0, lut);
	if (!f)
		return -1;
	char *path = pkg_path(dir, f);
	rt_model *m = load_path(p, path);
	if (m)
		set_mono(p, m, path);
	free(path);
	p->lut_bits = f->lut;
	return m ? finish_open(p, local_window(p)) : -1;
}

static int open_all(smoke_parts *p, const part_list *l, const char *dir, int lut_embed, int lut_ffn, int lut_lmhead)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->v[i].kind, "monolithic_full"))
			return open_mono_dir(p, l, dir, lut_ffn);
	const part_file *e = need(l, dir, "embeddings", 0, lut_embed), *h = e ? need(l, dir, "lm_head", 0, lut_lmhead) : NULL;
	if (!h)
		return -1;
	p->embed_path = pkg_path(dir, e);
	p->lmhead_path = pkg_path(dir, h);
	if (!(p->embed = load(p, dir, e)) || !(p->lmhead = load(p, dir, h)))
		return -1;
	int nchunks = count_chunks(l, lut_ffn);
	if (nchunks <= 0)
		return nchunks < 0 ? -1 : errf("'%s': no FFN chunk parts", dir);
	alloc_chunks(p, nchunks);
	for (int c = 1; c <= p->nchunks; c++)
		if (open_chunk(p, l, dir, c, lut_ffn) != 0)
			return -1;
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].chunk == 1 && (lut_ffn < 0 || l->v[i].lut == lut_ffn))
			p->lut_bits = l->v[i].lut;
	return finish_open(p, local_window(p));
}

/* Part `name` of dir: the .mlmodelc that meta.yaml names when p->compiled,
 * else the .mlpackage it was compiled from. */
static rt_model *load_named(smoke_parts *p, const char *dir, const char *name, char **path_out)
{
	char *path = metayaml_part_path(dir, name, p->compiled ? ".mlmodelc" : ".mlpackage");
	rt_model *m = path ? load_path(p, path) : NULL;
	if (path_out)
		*path_out = path;
	else
		free(path);
	return m;
}

/* Chunk c's file named from chunk 1's name (meta.yaml ffn or pf). */
static rt_model *load_chunk(smoke_parts *p, const char *dir, const char *first, int c)
{
	char *name = metayaml_chunk_name(first, c);
	rt_model *m = name ? load_named(p, dir, name, NULL) : NULL;
	free(name);
	return m;
}

static int open_meta_chunks(smoke_parts *p, const metayaml *m, const char *dir)
{
	alloc_chunks(p, m->num_chunks);
	for (int c = 1; c <= m->num_chunks; c++) {
		rt_model *ch = load_chunk(p, dir, m->ffn, c), *pf = ch && m->pf ? load_chunk(p, dir, m->pf, c) : ch;
		if (!pf)
			return -1;
		if (!with_function(ch, pf, "infer"))
			return errf("chunk %d of '%s' has no infer function: is it combined?", c, m->ffn);
		if (!with_function(pf, ch, "prefill"))
			return errf("chunk %d of '%s' has no prefill function: is it combined?", c, m->pf ? m->pf : m->ffn);
		set_combined(p, c - 1, ch, pf);
	}
	return 0;
}

/* sliding_window as chat.py reads meta.yaml. */
static int meta_window(const metayaml *m)
{
	if (m->sliding_window != META_ABSENT)
		return m->sliding_window;
	return m->model_prefix && strncmp(m->model_prefix, "gemma3", 6) == 0 ? 512 : 0;
}

static int open_meta_mono(smoke_parts *p, const metayaml *m, const char *dir, const char *meta_path)
{
	if (!m->monolithic_model)
		return errf("%s: monolithic_model is required", meta_path);
	char *path = NULL;
	rt_model *mm = load_named(p, dir, m->monolithic_model, &path);
	if (mm && !(has_function(mm, "infer") && has_function(mm, "prefill")))
		mm = NULL, errf("'%s' has no infer and prefill functions", path);
	if (mm)
		set_mono(p, mm, path);
	free(path);
	p->lut_bits = m->lut_bits > 0 ? m->lut_bits : 0;
	return mm ? finish_open(p, meta_window(m)) : -1;
}

static int open_meta_split(smoke_parts *p, const metayaml *m, const char *dir, const char *meta_path)
{
	if (!m->embeddings || !m->lm_head || !m->ffn || m->num_chunks < 1)
		return errf("%s: embeddings, lm_head, ffn and num_chunks are required", meta_path);
	if (!(p->embed = load_named(p, dir, m->embeddings, &p->embed_path)) ||
	    !(p->lmhead = load_named(p, dir, m->lm_head, &p->lmhead_path)))
		return -1;
	if (open_meta_chunks(p, m, dir) != 0)
		return -1;
	p->lut_bits = m->lut_ffn > 0 ? m->lut_ffn : 0;
	return finish_open(p, meta_window(m));
}

static int open_meta(smoke_parts *p, const char *meta_path, int compiled)
{
	memset(p, 0, sizeof *p);
	p->compiled = compiled;
	metayaml m;
	metayaml_init(&m);
	char *dir = metayaml_dir(meta_path);
	int rc = metayaml_read(meta_path, &m);
	if (rc == 0)
		rc = metayaml_is_monolithic(&m) ? open_meta_mono(p, &m, dir, meta_path) : open_meta_split(p, &m, dir, meta_path);
	if (rc == 0 && m.vocab_size > 0 && p->argmax_in_model)
		p->vocab = m.vocab_size;
	metayaml_release(&m);
	free(dir);
	if (rc != 0)
		smoke_parts_close(p);
	return rc;
}

int smoke_parts_open_meta(smoke_parts *p, const char *meta_path) { return open_meta(p, meta_path, 0); }

int smoke_parts_open_compiled(smoke_parts *p, const char *meta_path) { return open_meta(p, meta_path, 1); }

int smoke_parts_open(smoke_parts *p, const char *dir, const char *prefix, int lut_embed, int lut_ffn, int lut_lmhead)
{
	memset(p, 0, sizeof *p);
	part_list l;
	int rc = inventory_list(&l, dir, prefix, INV_PKG);
	if (rc == 0 && !prefix && l.n) {
		for (size_t i = 1; i < l.n; i++)
			if (strcmp(l.v[i].prefix, l.v[0].prefix) != 0)
				rc = errf("'%s' holds parts with prefixes '%s' and '%s': give --prefix", dir, l.v[0].prefix,
					  l.v[i].prefix);
	}
	if (rc == 0)
		rc = open_all(p, &l, dir, lut_embed, lut_ffn, lut_lmhead);
	inventory_release(&l);
	if (rc != 0)
		smoke_parts_close(p);
	return rc;
}

int smoke_parts_open_where(smoke_parts *p, const smoke_where *w, int vocab_size)
{
	int rc = w->meta ? open_meta(p, w->meta, w->compiled)
			 : smoke_parts_open(p, w->dir, w->prefix, w->lut_embed, w->lut_ffn, w->lut_lmhead);
	if (rc != 0)
		return -1;
	if (p->argmax_in_model && p->vocab <= 0)
		p->vocab = vocab_size; /* head offsets follow the model's vocabulary */
	if (p->vocab != vocab_size) {
		errf("%s: %d logits, but the model's vocabulary has %d tokens", p->lmhead_path, p->vocab, vocab_size);
		smoke_parts_close(p);
		return -1;
	}
	return 0;
}

void smoke_parts_close(smoke_parts *p)
{
	if (!p)
		return;
	rt_state_free(p->state);
	for (int i = 0; i < p->nowned; i++)
		rt_model_free(p->owned[i]);
	free(p->owned), free(p->owned_bytes), free(p->infer), free(p->prefill), free(p->infer_fn), free(p->prefill_fn);
	free(p->infer_rot), free(p->prefill_rot), free(p->infer_rot_fn), free(p->prefill_rot_fn);
	free(p->embed_path), free(p->lmhead_path), free(p->chunk_desc);
	memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ */
/* Running the contract                                                */

static void mask_rows(const smoke_parts *p, int row0, int nrows, uint16_t *out)
{
	for (int r = 0; r < nrows; r++)
		for (int c = 0; c < p->context; c++)
			out[(size_t)r * (size_t)p->context + (size_t)c] = c <= row0 + r ? 0 : FP16_NEG_INF;
}

/* Run fn of m and keep output 0 in *keep (the rest freed). */
static int run1(rt_model *m, const char *fn, rt_tensor *in, int nin, rt_state *s, rt_tensor *keep)
{
	rt_tensor *out;
	int nout;
	if (rt_run(m, fn, in, nin, s, &out, &nout) != 0)
		return -1;
	*keep = out[0];
	out[0] = (rt_tensor){0};
	rt_tensors_free(out, nout);
	return 0;
}

static int token_ids(const int32_t *tokens, int n, rt_tensor *ids)
{
	if (rt_tensor_alloc(ids, "input_ids", MIL_INT32, 2, (int64_t[]){1, n}) != 0)
		return -1;
	memcpy(ids->data, tokens, sizeof *tokens * (size_t)n);
	return 0;
}

static int embed(smoke_parts *p, const int32_t *tokens, int n, rt_tensor *hidden)
{
	rt_tensor ids;
	if (token_ids(tokens, n, &ids) != 0)
		return -1;
	int rc = run1(p->embed, NULL, &ids, 1, NULL, hidden);
	rt_tensor_release(&ids);
	return rc;
}

/* The function chunk c runs for n tokens from pos: chat.py's choice. */
static void chunk_fn(const smoke_parts *p, int c, int pos, int n, rt_model **m, const char **fn)
{
	int rotate = p->sliding_window && pos >= p->sliding_window;
	if (n == 1) {
		*m = rotate && p->infer_rot[c] ? p->infer_rot[c] : p->infer[c];
		*fn = rotate && p->infer_rot[c] ? p->infer_rot_fn[c] : p->infer_fn[c];
	} else {
		*m = rotate && p->prefill_rot[c] ? p->prefill_rot[c] : p->prefill[c];
		*fn = rotate && p->prefill_rot[c] ? p->prefill_rot_fn[c] : p->prefill_fn[c];
	}
}

/* position_ids, causal_mask rows and current_pos for n tokens from pos, in in[1..3]. */
static int position_inputs(const smoke_parts *p, int pos, int n, rt_tensor *in)
{
	int rc = rt_tensor_alloc(&in[1], "position_ids", MIL_INT32, 1, (int64_t[]){n});
	rc |= rt_tensor_alloc(&in[2], "causal_mask", MIL_FP16, 4, (int64_t[]){1, 1, n, p->context});
	rc |= rt_tensor_alloc(&in[3], "current_pos", MIL_INT32, 1, (int64_t[]){1});
	if (rc != 0)
		return -1;
	for (int i = 0; i < n; i++)
		((int32_t *)in[1].data)[i] = pos + i;
	mask_rows(p, pos, n, in[2].data);
	((int32_t *)in[3].data)[0] = pos;
	return 0;
}

/* hidden [1,n,H] at positions pos..pos+n-1 through every chunk (n = 1: infer; n = batch: prefill). */
static int chunks(smoke_parts *p, rt_tensor *hidden, int pos, int n)
{
	rt_tensor in[4] = {{0}};
	int rc = position_inputs(p, pos, n, in);
	for (int c = 0; c < p->nchunks && rc == 0; c++) {
		in[0] = *hidden;
		in[0].name = "hidden_states";
		rt_model *m;
		const char *fn;
		chunk_fn(p, c, pos, n, &m, &fn);
		rt_tensor next;
		rc = run1(m, fn, in, 4, p->state, &next);
		if (rc == 0) {
			rt_tensor_release(hidden);
			*hidden = next;
		}
	}
	for (int i = 1; i < 4; i++)
		rt_tensor_release(&in[i]);
	return rc;
}

/* The token an LM head's outputs pick; logits into out[vocab] unless argmax mode. */
static int pick_token(const smoke_parts *p, rt_tensor *res, int nres, float *out)
{
	if (p->argmax_in_model) {
		rt_tensor *idx = rt_tensors_find(res, nres, "argmax_idx"), *val = rt_tensors_find(res, nres, "argmax_val");
		int k = idx ? (int)rt_tensor_numel(idx) : 0, best = 0;
		for (int i = 1; val && i < k; i++)
			if (rt_tensor_get(val, (size_t)i) > rt_tensor_get(val, (size_t)best))
				best = i;
		/* the index is local to head `best`: add the sizes of the heads before it
		 * (vocab / K each, one more for the first vocab mod K) */
		int offset = 0;
		for (int i = 0; i < best; i++)
			offset += p->vocab / k + (i < p->vocab % k);
		return k && p->vocab > 0 ? offset + ((int32_t *)idx->data)[best] : errf("argmax head needs the vocabulary size");
	}
	size_t at = 0;
	for (int i = 0; i < nres; i++) {
		if (strncmp(res[i].name, "logits", 6) != 0 && !streq(res[i].name, "output_logits"))
			continue;
		for (size_t j = 0; j < rt_tensor_numel(&res[i]) && at < (size_t)p->vocab; j++)
			out[at++] = rt_tensor_get(&res[i], j);
	}
	if (at != (size_t)p->vocab)
		return errf("the LM head gave %zu logits, expected %d", at, p->vocab);
	return smoke_argmax(out, p->vocab);
}

/* LM head: logits into out[vocab] (or NULL in argmax mode); returns the token or -1. */
static int head(smoke_parts *p, const rt_tensor *hidden, float *out)
{
	rt_tensor in = *hidden, *res;
	int nres;
	in.name = "hidden_states";
	if (rt_run(p->lmhead, NULL, &in, 1, NULL, &res, &nres) != 0)
		return -1;
	int token = pick_token(p, res, nres, out);
	rt_tensors_free(res, nres);
	return token;
}

/* Monolithic: n tokens from pos through the one model; with `pick` (a
 * decode step) the next token, its logits into logits (NULL in argmax
 * mode); else 0. */
static int mono_run(smoke_parts *p, const int32_t *tokens, int pos, int n, int pick, float *logits)
{
	rt_tensor in[4] = {{0}}, *res;
	int nres, rc = token_ids(tokens + pos, n, &in[0]) | position_inputs(p, pos, n, in);
	rt_model *m;
	const char *fn;
	chunk_fn(p, 0, pos, n, &m, &fn);
	if (rc == 0 && (rc = rt_run(m, fn, in, 4, p->state, &res, &nres)) == 0) {
		if (pick)
			rc = pick_token(p, res, nres, logits);
		rt_tensors_free(res, nres);
	}
	for (int i = 0; i < 4; i++)
		rt_tensor_release(&in[i]);
	return rc;
}

/* Prompt token(s) from pos (n = 1 or batch) through the model, no LM head. */
static int feed(smoke_parts *p, const int32_t *tokens, int pos, int n)
{
	if (p->mono)
		return mono_run(p, tokens, pos, n, 0, NULL);
	rt_tensor h = {0}; /* released on every path, also when embed fails */
	int rc = embed(p, &tokens[pos], n, &h);
	if (rc == 0)
		rc = chunks(p, &h, pos, n);
	rt_tensor_release(&h);
	return rc;
}

/* One decode step: token[pos] at pos, logits (and hidden) of the next token. */
static int decode(smoke_parts *p, const int32_t *tokens, int pos, float *logits, float *hidden)
{
	if (p->mono)
		return mono_run(p, tokens, pos, 1, 1, logits);
	rt_tensor h = {0};
	if (embed(p, &tokens[pos], 1, &h) != 0 || chunks(p, &h, pos, 1) != 0)
		return rt_tensor_release(&h), -1;
	for (int i = 0; hidden && i < p->hidden; i++)
		hidden[i] = rt_tensor_get(&h, (size_t)i);
	int tok = head(p, &h, logits);
	rt_tensor_release(&h);
	return tok;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 when the decode step at pos goes through a rotating function. */
static int rotates(const smoke_parts *p, int pos)
{
	return p->sliding_window && pos >= p->sliding_window && p->infer_rot[0];
}

/* The prompt before the first decode step (chat.py run_prefill): full
 * batches through prefill when asked, the rest one at a time through infer,
 * every prompt token; the first decode step then runs the last one again,
 * as chat.py does. That rewrites the same KV slot: harmless in our packages,
 * whose rotate functions keep the local cache as a ring (graph.h), but
 * ANEMLL's shift their local cache once more, so they drift from there on.
 * SMOKE_ONCE runs every position once instead, the computation chat.py
 * means: the remainder stops before the last token, and a last full block
 * ending at the prompt's end goes token by token when the decode rotates. */
static int prompt(smoke_parts *p, const int32_t *tokens, int nprompt, int mode)
{
	int once = (mode & SMOKE_ONCE) != 0, pos = 0;
	for (; (mode & SMOKE_PREFILL) && pos + p->batch <= nprompt; pos += p->batch) {
		if (once && pos + p->batch == nprompt && rotates(p, nprompt - 1))
			break;
		if (feed(p, tokens, pos, p->batch) != 0)
			return -1;
	}
	for (; pos < nprompt - once; pos++)
		if (feed(p, tokens, pos, 1) != 0)
			return -1;
	return 0;
}

/* A local cache that would be written past its window without the rotate
 * functions: say so instead of failing inside the model. */
static int missing_rotation(const smoke_parts *p, int last_pos)
{
	const rt_io *local = state_io(p->infer[0], p->infer_fn[0], "kv_cache_local");
	int w = local && local->rank == 4 ? (int)local->shape[2] : 0;
	for (int c = 0; w && last_pos >= w && c < p->nchunks; c++)
		if (!p->infer_rot[c] || !p->prefill_rot[c])
			return errf("chunk %d has no %s function: positions from the sliding window (%d) on need the "
				    "rotate functions (convert with --rotate)", c + 1, p->infer_rot[c] ? "prefill_rotate" : "infer_rotate", w);
	return 0;
}

int smoke_step(smoke_parts *p, const int32_t *tokens, int pos, float *logits)
{
	if (pos < 0 || pos >= p->context)
		return errf("position %d is outside the context of %d", pos, p->context);
	if (missing_rotation(p, pos) != 0)
		return -1;
	return decode(p, tokens, pos, logits, NULL);
}

void smoke_restart(smoke_parts *p) { rt_state_clear(p->state); }

/* The reference beside the generation (smoke_generate_checked): it runs
 * the known positions in batches of FOLLOW_BATCH or more (ref_forward_n
 * reads each weight once per batch; the bits are those of one position at
 * a time), the rest once the generation is over. */
#define FOLLOW_BATCH 16
typedef struct follower {
	ref_model *ref;
	const smoke_run *run;
	int npos, vocab, hdim;
	float *logits, *hidden;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int known;      /* run->tokens[0..known) are final; -1: the generation failed */
	int rc;
	char err[1024]; /* the reference's error (errf's message is per thread) */
} follower;

static void publish(follower *f, int known)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->known = known;
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

/* Reference outputs of positions [pos, end) of run: logits and hidden
 * states from position nprompt - 1 on. */
static int reference_span(ref_model *ref, const smoke_run *run, int pos, int end, int vocab, float *logits, int hdim,
			  float *hidden)
{
	int first = run->nprompt - 1, skip = first > pos ? first - pos : 0, row = pos + skip - first;
	if (skip > end - pos)
		skip = end - pos;
	int rc = ref_forward_n(ref, run->tokens + pos, pos, end - pos, skip,
			       logits && row >= 0 ? logits + (size_t)row * (size_t)vocab : NULL,
			       hidden && hdim > 0 && row >= 0 ? hidden + (size_t)row * (size_t)hdim : NULL);
	if (rc == 0)
		progress_add(end - pos, 0);
	return rc;
}

static void *follow(void *arg)
{
	follower *f = arg;
	ref_reset(f->ref);
	for (int pos = 0; pos < f->npos;) {
		int want = pos + FOLLOW_BATCH < f->npos ? pos + FOLLOW_BATCH : f->npos;
		pthread_mutex_lock(&f->mu);
		while (f->known >= 0 && f->known < want)
			pthread_cond_wait(&f->cv, &f->mu);
		int known = f->known;
		pthread_mutex_unlock(&f->mu);
		if (known < 0)
			return NULL;
		int end = known < f->npos ? known : f->npos;
		if (reference_span(f->ref, f->run, pos, end, f->vocab, f->logits, f->hdim, f->hidden) != 0) {
			snprintf(f->err, sizeof f->err, "%s", errmsg());
			f->rc = -1;
			return NULL;
		}
		pos = end;
	}
	return NULL;
}

static int generate(smoke_parts *p, const int32_t *prompt_ids, int nprompt, int steps, int mode, smoke_run *out,
		    follower *f)
{
	memset(out, 0, sizeof *out);
	/* step s runs position nprompt + s - 1: every position stays below the context */
	if (nprompt < 1 || nprompt > p->context || nprompt + steps - 1 > p->context)
		return errf("prompt of %d tokens plus %d steps does not fit the context of %d", nprompt, steps, p->context);
	out->nprompt = nprompt;
	out->tokens = xmalloc(sizeof *out->tokens * (size_t)(nprompt + steps));
	memcpy(out->tokens, prompt_ids, sizeof *prompt_ids * (size_t)nprompt);
	if (!p->argmax_in_model)
		out->logits = xmalloc(sizeof *out->logits * (size_t)steps * (size_t)p->vocab);
	if (missing_rotation(p, steps > 1 ? nprompt + steps - 2 : nprompt - 1))
		return -1;
	/* p->hidden is 0 for a monolithic model: an empty buffer, never NULL */
	out->hidden = xmalloc(sizeof *out->hidden * (size_t)steps * (size_t)p->hidden);
	rt_state_clear(p->state);
	double t0 = now();
	pthread_t th;
	if (f) {
		f->run = out;
		f->known = nprompt;
		if (pthread_create(&th, NULL, follow, f) != 0)
			return errf("cannot start the reference thread");
	}
	int rc = prompt(p, out->tokens, nprompt, mode);
	for (int s = 0; rc == 0 && s < steps; s++) {
		int pos = nprompt + s; /* the step runs token[pos-1] at position pos-1 */
		float *l = out->logits ? out->logits + (size_t)s * (size_t)p->vocab : NULL;
		float *h = out->hidden + (size_t)s * (size_t)p->hidden;
		int tok = decode(p, out->tokens, pos - 1, l, h);
		if (tok < 0) {
			rc = -1;
			break;
		}
		out->tokens[pos] = tok;
		out->nsteps = s + 1;
		publish(f, pos + 1);
		progress_add(1, 0);
	}
	out->seconds = now() - t0;
	if (f) {
		if (rc != 0)
			publish(f, -1);
		pthread_join(th, NULL);
		if (rc == 0 && f->rc != 0)
			rc = errf("%s", f->err);
	}
	return rc;
}

int smoke_generate(smoke_parts *p, const int32_t *prompt_ids, int nprompt, int steps, int mode, smoke_run *out)
{
	return generate(p, prompt_ids, nprompt, steps, mode, out, NULL);
}

int smoke_generate_checked(smoke_parts *p, const int32_t *prompt_ids, int nprompt, int steps, int mode,
			   ref_model *ref, float *ref_logits, int hdim, float *ref_hidden, smoke_run *out)
{
	follower f = {.ref = ref, .npos = nprompt + steps - 1, .vocab = p->vocab, .hdim = hdim, .logits = ref_logits,
		      .hidden = ref_hidden};
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.cv, NULL);
	int rc = generate(p, prompt_ids, nprompt, steps, mode, out, &f);
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mu);
	return rc;
}

void smoke_run_release(smoke_run *r)
{
	if (!r)
		return;
	free(r->tokens), free(r->logits), free(r->hidden);
	memset(r, 0, sizeof *r);
}

int smoke_reference_hidden(ref_model *ref, const smoke_run *run, int vocab, float *logits, int hdim, float *hidden)
{
	ref_reset(ref);
	return reference_span(ref, run, 0, run->nprompt + run->nsteps - 1, vocab, logits, hdim, hidden);
}

int smoke_reference(ref_model *ref, const smoke_run *run, int vocab, float *logits)
{
	return smoke_reference_hidden(ref, run, vocab, logits, 0, NULL);
}

double smoke_cosine(const float *a, const float *b, int n)
{
	double ab = 0, aa = 0, bb = 0;
	for (int i = 0; i < n; i++)
		ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
	return aa == 0 && bb == 0 ? 1 : ab / sqrt(aa * bb);
}

/* ------------------------------------------------------------------ */
/* Comparison                                                          */

int smoke_argmax(const float *v, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i; /* first maximum, as numpy/torch argmax */
	return best;
}

double smoke_log_sum_exp(const float *x, int n)
{
	double m = x[smoke_argmax(x, n)], s = 0;
	for (int i = 0; i < n; i++)
		s += exp((double)x[i] - m);
	return m + log(s);
}

double smoke_kl(const float *p_logits, const float *q_logits, int n)
{
	double lp = smoke_log_sum_exp(p_logits, n), lq = smoke_log_sum_exp(q_logits, n), kl = 0;
	for (int i = 0; i < n; i++) {
		double a = (double)p_logits[i] - lp, b = (double)q_logits[i] - lq;
		kl += exp(a) * (a - b);
	}
	return kl < 0 ? 0 : kl;
}

void smoke_compare(const float *ref, const float *got, int steps, int vocab, smoke_metrics *m)
{
	memset(m, 0, sizeof *m);
	m->steps = steps;
	m->first_disagreement = -1;
	for (int s = 0; s < steps; s++) {
		const float *r = ref + (size_t)s * (size_t)vocab, *g = got + (size_t)s * (size_t)vocab;
		int same = smoke_argmax(r, vocab) == smoke_argmax(g, vocab);
		m->agree += same;
		if (!same && m->first_disagreement < 0)
			m->first_disagreement = s;
		double kl = smoke_kl(r, g, vocab);
		m->kl_mean += kl / steps;
		m->kl_max = kl > m->kl_max ? kl : m->kl_max;
		for (int i = 0; i < vocab; i++) {
			double d = fabs((double)r[i] - (double)g[i]);
			m->max_abs_diff = d > m->max_abs_diff ? d : m->max_abs_diff;
		}
	}
}
