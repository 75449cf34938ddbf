/* smoke.c: ANEMLL's inference contract through the CPU runtime, and the
 * comparison with the fp32 reference (see smoke.h). */
#include "smoke.h"
#include "anemll.h"
#include "fp16.h"
#include "fsutil.h"
#include "metayaml.h"
#include "util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FP16_NEG_INF 0xfc00

/* ------------------------------------------------------------------ */
/* Finding the parts                                                   */

typedef struct part_file {
	char *file;
	char *prefix;
	const char *kind; /* embeddings, lm_head, FFN_PF, FFN, prefill */
	int lut, chunk, nchunks;
} part_file;

static const char *const KINDS[] = {"_FFN_PF", "_FFN", "_prefill", "_embeddings", "_lm_head"};

/* Parse "<prefix>_<kind>[_lut<b>][_chunk_<ii>of<NN>].mlpackage"; 0 if not a part we run. */
static int parse_part(const char *file, part_file *pf)
{
	if (!has_suffix(file, ".mlpackage"))
		return 0;
	for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
		const char *at = strstr(file, KINDS[k]);
		if (!at || at == file)
			continue;
		const char *rest = at + strlen(KINDS[k]);
		int lut = 0, chunk = 0, n = 0, used = 0;
		if (sscanf(rest, "_lut%d%n", &lut, &used) == 1)
			rest += used;
		if (sscanf(rest, "_chunk_%dof%d%n", &chunk, &n, &used) == 2)
			rest += used;
		if (strcmp(rest, ".mlpackage") != 0)
			continue; /* rotate variants, _rot files, monolithic: not for this runner */
		*pf = (part_file){xstrdup(file), xstrndup(file, (size_t)(at - file)), KINDS[k] + 1, lut, chunk, n};
		return 1;
	}
	return 0;
}

typedef struct part_list {
	part_file *v;
	size_t n, cap;
} part_list;

static int list_parts(const char *dir, const char *prefix, part_list *l)
{
	DIR *d = opendir(dir);
	if (!d)
		return errf("cannot open directory '%s':", dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		part_file pf;
		if (!parse_part(e->d_name, &pf))
			continue;
		if (prefix && strcmp(prefix, pf.prefix) != 0) {
			free(pf.file), free(pf.prefix);
			continue;
		}
		GROW(l->v, l->cap, l->n + 1);
		l->v[l->n++] = pf;
	}
	closedir(d);
	return 0;
}

static void free_parts(part_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].file), free(l->v[i].prefix);
	free(l->v);
}

/* The one file of `kind` (chunk c, 0 for unchunked) matching lut (-1: any). */
static const part_file *pick(const part_list *l, const char *dir, const char *kind, int chunk, int lut, int *ambiguous)
{
	const part_file *found = NULL;
	for (size_t i = 0; i < l->n; i++) {
		const part_file *pf = &l->v[i];
		if (strcmp(pf->kind, kind) != 0 || pf->chunk != chunk || (lut >= 0 && pf->lut != lut))
			continue;
		if (found) {
			*ambiguous = 1;
			errf("'%s': both %s and %s match: say which LUT variant to use", dir, found->file, pf->file);
			return NULL;
		}
		found = pf;
	}
	return found;
}

static rt_model *load_path(smoke_parts *p, const char *path)
{
	rt_model *m = NULL;
	if (rt_model_open(path, &m) != 0)
		return NULL;
	p->owned = xrealloc(p->owned, sizeof *p->owned * (size_t)(p->nowned + 1));
	p->owned[p->nowned++] = m;
	return m;
}

static rt_model *load(smoke_parts *p, const char *dir, const char *file)
{
	char *path = path_join(dir, file);
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
	p->chunk_desc = xasprintf("%d chunk%s", n, n > 1 ? "s" : "");
}

static int open_chunk(smoke_parts *p, const part_list *l, const char *dir, int c, int lut)
{
	int amb = 0;
	const part_file *pf = pick(l, dir, "FFN_PF", c, lut, &amb);
	if (amb)
		return -1;
	if (pf) {
		rt_model *m = load(p, dir, pf->file);
		p->infer[c - 1] = p->prefill[c - 1] = m;
		p->infer_fn[c - 1] = "infer", p->prefill_fn[c - 1] = "prefill";
		return m ? 0 : -1;
	}
	const part_file *ffn = need(l, dir, "FFN", c, lut), *pre = ffn ? need(l, dir, "prefill", c, ffn->lut) : NULL;
	if (!pre)
		return -1;
	p->infer[c - 1] = load(p, dir, ffn->file);
	p->prefill[c - 1] = p->infer[c - 1] ? load(p, dir, pre->file) : NULL;
	p->infer_fn[c - 1] = p->prefill_fn[c - 1] = "main";
	return p->prefill[c - 1] ? 0 : -1;
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
		if (streq(in[i].name, "causal_mask"))
			p->context = (int)in[i].shape[3];
	}
	if (rt_function_io(p->lmhead, NULL, &in, &nin, &out, &nout) != 0)
		return -1;
	p->vocab = 0;
	for (int i = 0; i < nout; i++) {
		if (streq(out[i].name, "argmax_idx"))
			p->argmax_in_model = 1;
		else
			p->vocab += (int)out[i].shape[out[i].rank - 1];
	}
	if (p->batch <= 0 || p->hidden <= 0 || p->context <= 0 || (p->vocab <= 0 && !p->argmax_in_model))
		return errf("the parts do not have ANEMLL's inputs (hidden_states, causal_mask) and outputs");
	return 0;
}

static int open_all(smoke_parts *p, const part_list *l, const char *dir, int lut_embed, int lut_ffn, int lut_lmhead)
{
	const part_file *e = need(l, dir, "embeddings", 0, lut_embed), *h = e ? need(l, dir, "lm_head", 0, lut_lmhead) : NULL;
	if (!h)
		return -1;
	p->embed_path = path_join(dir, e->file), p->lmhead_path = path_join(dir, h->file);
	if (!(p->embed = load(p, dir, e->file)) || !(p->lmhead = load(p, dir, h->file)))
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
	if (read_shapes(p) != 0)
		return -1;
	/* One state for everything, made from chunk 0's prefill function, as chat.py does. */
	p->state = rt_state_new(p->prefill[0], p->prefill_fn[0]);
	return p->state ? 0 : -1;
}

/* The package of part `name` in dir (the runtime runs .mlpackage, the
 * source of the .mlmodelc that meta.yaml names). */
static rt_model *load_named(smoke_parts *p, const char *dir, const char *name, char **path_out)
{
	char *path = metayaml_part_path(dir, name, ".mlpackage");
	rt_model *m = path ? load_path(p, path) : NULL;
	if (path_out)
		*path_out = path;
	else
		free(path);
	return m;
}

static int open_meta_chunks(smoke_parts *p, const metayaml *m, const char *dir)
{
	alloc_chunks(p, m->num_chunks);
	for (int c = 1; c <= m->num_chunks; c++) {
		char *name = metayaml_chunk_name(m->ffn, c);
		rt_model *ch = name ? load_named(p, dir, name, NULL) : NULL;
		free(name);
		if (!ch)
			return -1;
		const rt_io *in, *out;
		int nin, nout;
		if (rt_function_io(ch, "infer", &in, &nin, &out, &nout) != 0 ||
		    rt_function_io(ch, "prefill", &in, &nin, &out, &nout) != 0)
			return errf("chunk %d of '%s' has no infer and prefill functions: is it combined?", c, m->ffn);
		p->infer[c - 1] = p->prefill[c - 1] = ch;
		p->infer_fn[c - 1] = "infer", p->prefill_fn[c - 1] = "prefill";
	}
	return 0;
}

int smoke_parts_open_meta(smoke_parts *p, const char *meta_path)
{
	memset(p, 0, sizeof *p);
	metayaml m;
	metayaml_init(&m);
	char *dir = metayaml_dir(meta_path);
	int rc = metayaml_read(meta_path, &m);
	if (rc == 0 && metayaml_is_monolithic(&m))
		rc = errf("%s: monolithic models are not supported by the smoketest yet", meta_path);
	if (rc == 0 && (!m.embeddings || !m.lm_head || !m.ffn || m.num_chunks < 1))
		rc = errf("%s: embeddings, lm_head, ffn and num_chunks are required", meta_path);
	if (rc == 0 && (!(p->embed = load_named(p, dir, m.embeddings, &p->embed_path)) ||
			!(p->lmhead = load_named(p, dir, m.lm_head, &p->lmhead_path))))
		rc = -1;
	if (rc == 0)
		rc = open_meta_chunks(p, &m, dir);
	p->lut_bits = m.lut_ffn > 0 ? m.lut_ffn : 0;
	if (rc == 0 && (rc = read_shapes(p)) == 0 && !(p->state = rt_state_new(p->prefill[0], p->prefill_fn[0])))
		rc = -1;
	if (rc == 0 && m.vocab_size > 0 && p->argmax_in_model)
		p->vocab = m.vocab_size;
	metayaml_release(&m);
	free(dir);
	if (rc != 0)
		smoke_parts_close(p);
	return rc;
}

int smoke_parts_open(smoke_parts *p, const char *dir, const char *prefix, int lut_embed, int lut_ffn, int lut_lmhead)
{
	memset(p, 0, sizeof *p);
	part_list l = {0};
	int rc = list_parts(dir, prefix, &l);
	if (rc == 0 && !prefix && l.n) {
		for (size_t i = 1; i < l.n; i++)
			if (strcmp(l.v[i].prefix, l.v[0].prefix) != 0)
				rc = errf("'%s' holds parts with prefixes '%s' and '%s': give --prefix", dir, l.v[0].prefix,
					  l.v[i].prefix);
	}
	if (rc == 0)
		rc = open_all(p, &l, dir, lut_embed, lut_ffn, lut_lmhead);
	free_parts(&l);
	if (rc != 0)
		smoke_parts_close(p);
	return rc;
}

void smoke_parts_close(smoke_parts *p)
{
	if (!p)
		return;
	rt_state_free(p->state);
	for (int i = 0; i < p->nowned; i++)
		rt_model_free(p->owned[i]);
	free(p->owned), free(p->infer), free(p->prefill), free(p->infer_fn), free(p->prefill_fn);
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

static int embed(smoke_parts *p, const int32_t *tokens, int n, rt_tensor *hidden)
{
	rt_tensor ids;
	if (rt_tensor_alloc(&ids, "input_ids", MIL_INT32, 2, (int64_t[]){1, n}) != 0)
		return -1;
	memcpy(ids.data, tokens, sizeof *tokens * (size_t)n);
	int rc = run1(p->embed, NULL, &ids, 1, NULL, hidden);
	rt_tensor_release(&ids);
	return rc;
}

/* hidden [1,n,H] at positions pos..pos+n-1 through every chunk (n = 1: infer; n = batch: prefill). */
static int chunks(smoke_parts *p, rt_tensor *hidden, int pos, int n)
{
	rt_tensor in[4];
	int rc = rt_tensor_alloc(&in[1], "position_ids", MIL_INT32, 1, (int64_t[]){n});
	rc |= rt_tensor_alloc(&in[2], "causal_mask", MIL_FP16, 4, (int64_t[]){1, 1, n, p->context});
	rc |= rt_tensor_alloc(&in[3], "current_pos", MIL_INT32, 1, (int64_t[]){1});
	if (rc != 0)
		return -1;
	for (int i = 0; i < n; i++)
		((int32_t *)in[1].data)[i] = pos + i;
	mask_rows(p, pos, n, in[2].data);
	((int32_t *)in[3].data)[0] = pos;
	for (int c = 0; c < p->nchunks && rc == 0; c++) {
		in[0] = *hidden;
		in[0].name = "hidden_states";
		rt_tensor next;
		rc = n == 1 ? run1(p->infer[c], p->infer_fn[c], in, 4, p->state, &next)
			    : run1(p->prefill[c], p->prefill_fn[c], in, 4, p->state, &next);
		if (rc == 0) {
			rt_tensor_release(hidden);
			*hidden = next;
		}
	}
	for (int i = 1; i < 4; i++)
		rt_tensor_release(&in[i]);
	return rc;
}

/* LM head: logits into out[vocab] (or NULL in argmax mode); returns the token or -1. */
static int head(smoke_parts *p, const rt_tensor *hidden, float *out)
{
	rt_tensor in = *hidden, *res;
	int nres;
	in.name = "hidden_states";
	if (rt_run(p->lmhead, NULL, &in, 1, NULL, &res, &nres) != 0)
		return -1;
	int token = -1;
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
		token = k && p->vocab > 0 ? offset + ((int32_t *)idx->data)[best] : errf("argmax head needs the vocabulary size");
	} else {
		size_t at = 0;
		for (int i = 0; i < nres; i++)
			for (size_t j = 0; j < rt_tensor_numel(&res[i]); j++)
				out[at++] = rt_tensor_get(&res[i], j);
		token = smoke_argmax(out, p->vocab);
	}
	rt_tensors_free(res, nres);
	return token;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Prompt positions [from, to) one at a time through infer, without the head. */
static int infer_range(smoke_parts *p, const int32_t *tokens, int from, int to)
{
	for (int pos = from; pos < to; pos++) {
		rt_tensor h;
		if (embed(p, &tokens[pos], 1, &h) != 0 || chunks(p, &h, pos, 1) != 0)
			return rt_tensor_release(&h), -1;
		rt_tensor_release(&h);
	}
	return 0;
}

static int prefill_blocks(smoke_parts *p, const int32_t *tokens, int nprompt, int *done)
{
	int pos = 0;
	for (; pos + p->batch <= nprompt; pos += p->batch) {
		rt_tensor h;
		if (embed(p, &tokens[pos], p->batch, &h) != 0 || chunks(p, &h, pos, p->batch) != 0)
			return rt_tensor_release(&h), -1;
		rt_tensor_release(&h);
	}
	*done = pos;
	return 0;
}

int smoke_generate(smoke_parts *p, const int32_t *prompt, int nprompt, int steps, int use_prefill, smoke_run *out)
{
	memset(out, 0, sizeof *out);
	if (nprompt < 1 || nprompt + steps > p->context)
		return errf("prompt of %d tokens plus %d steps does not fit the context of %d", nprompt, steps, p->context);
	out->nprompt = nprompt;
	out->tokens = xmalloc(sizeof *out->tokens * (size_t)(nprompt + steps));
	memcpy(out->tokens, prompt, sizeof *prompt * (size_t)nprompt);
	if (!p->argmax_in_model)
		out->logits = xmalloc(sizeof *out->logits * (size_t)steps * (size_t)p->vocab);
	out->hidden = xmalloc(sizeof *out->hidden * (size_t)steps * (size_t)p->hidden);
	rt_state_clear(p->state);
	double t0 = now();
	int done = 0;
	if ((use_prefill && prefill_blocks(p, out->tokens, nprompt, &done) != 0) ||
	    infer_range(p, out->tokens, done, nprompt - 1) != 0)
		return -1;
	for (int s = 0; s < steps; s++) {
		int pos = nprompt + s; /* the step runs token[pos-1] at position pos-1 */
		rt_tensor h;
		if (embed(p, &out->tokens[pos - 1], 1, &h) != 0 || chunks(p, &h, pos - 1, 1) != 0)
			return rt_tensor_release(&h), -1;
		for (int i = 0; i < p->hidden; i++)
			out->hidden[(size_t)s * (size_t)p->hidden + (size_t)i] = rt_tensor_get(&h, (size_t)i);
		int tok = head(p, &h, out->logits ? out->logits + (size_t)s * (size_t)p->vocab : NULL);
		rt_tensor_release(&h);
		if (tok < 0)
			return -1;
		out->tokens[pos] = tok;
		out->nsteps = s + 1;
	}
	out->seconds = now() - t0;
	return 0;
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
	for (int pos = 0; pos < run->nprompt + run->nsteps - 1; pos++) {
		int step = pos - (run->nprompt - 1);
		float *l = step >= 0 ? logits + (size_t)step * (size_t)vocab : NULL;
		float *h = step >= 0 && hidden ? hidden + (size_t)step * (size_t)hdim : NULL;
		if (ref_forward(ref, run->tokens[pos], pos, l, h) != 0)
			return -1;
	}
	return 0;
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

/* log-softmax normaliser in double */
static double log_sum_exp(const float *x, int n)
{
	double m = x[smoke_argmax(x, n)], s = 0;
	for (int i = 0; i < n; i++)
		s += exp((double)x[i] - m);
	return m + log(s);
}

double smoke_kl(const float *p_logits, const float *q_logits, int n)
{
	double lp = log_sum_exp(p_logits, n), lq = log_sum_exp(q_logits, n), kl = 0;
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
