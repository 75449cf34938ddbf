/* calib.c: E[x^2] of every linear layer's input over a text (see calib.h). */
#include "verify/calib.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "tokenizer/tokenizer.h"
#include "verify/reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NSITES 4

/* Sums of x^2 (and with xtx of x x^T) per layer and site. */
typedef struct sums {
	int layers;
	int len[NSITES];
	double *s[NSITES]; /* [layers * len] */
	double *xx[NSITES]; /* [layers * len * len] or NULL */
} sums;

/* x x^T added to s [n][n]: the lower triangle, mirrored when read. */
static void add_outer(double *s, const float *x, int n)
{
	for (int i = 0; i < n; i++) {
		double xi = x[i];
		double *row = s + (size_t)i * (size_t)n;
		for (int j = 0; j <= i; j++)
			row[j] += xi * x[j];
	}
}

static void tap(void *ctx, int layer, ref_tap_site site, const float *x, int n)
{
	sums *t = ctx;
	ASSERT(site < NSITES && n == t->len[site] && layer < t->layers);
	double *s = t->s[site] + (size_t)layer * (size_t)n;
	for (int k = 0; k < n; k++)
		s[k] += (double)x[k] * x[k];
	if (t->xx[site])
		add_outer(t->xx[site] + (size_t)layer * (size_t)n * (size_t)n, x, n);
}

/* The tensors each site feeds. */
static const char *const SITE_TENSORS[NSITES][3] = {
	[REF_TAP_QKV] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"},
	[REF_TAP_O] = {"self_attn.o_proj.weight"},
	[REF_TAP_GATE_UP] = {"mlp.gate_proj.weight", "mlp.up_proj.weight"},
	[REF_TAP_DOWN] = {"mlp.down_proj.weight"},
};

int calib_tokens(const char *path, const hf_model *hf, size_t max, int32_t **ids, size_t *n)
{
	char *text = NULL;
	size_t len;
	tokenizer *tok = NULL;
	*ids = NULL;
	int rc = read_file(path, FS_MAX_TEXT, &text, &len);
	if (rc == 0)
		rc = tokenizer_load_dir(hf->dir, &tok);
	if (rc == 0)
		rc = tokenizer_encode(tok, text, len, 0, ids, n);
	if (rc == 0 && *n < 2)
		rc = errf("%s: fewer than two tokens", path);
	if (rc == 0 && max && *n > max)
		*n = max;
	tokenizer_free(tok);
	free(text);
	return rc;
}

static void put_means(calstats *out, const char *name, const double *sum, int n, size_t tokens)
{
	double *v = xmalloc(xmul((size_t)n, sizeof *v));
	for (int k = 0; k < n; k++)
		v[k] = sum[k] / (double)tokens;
	calstats_set(out, name, (uint64_t)n, v);
	free(v);
}

/* E[x x^T] from the lower triangle of its sums, as entry "<name>#xtx". */
static void put_xtx(calstats *out, const char *name, const double *sum, int n, size_t tokens)
{
	double *v = xmalloc(xmul(xmul((size_t)n, (size_t)n), sizeof *v));
	for (int i = 0; i < n; i++)
		for (int j = 0; j <= i; j++)
			v[(size_t)i * (size_t)n + (size_t)j] = v[(size_t)j * (size_t)n + (size_t)i] =
				sum[(size_t)i * (size_t)n + (size_t)j] / (double)tokens;
	char *key = xasprintf("%s%s", name, CALSTATS_XTX_SUFFIX);
	calstats_set(out, key, (uint64_t)n * (uint64_t)n, v);
	free(key);
	free(v);
}

/* Bytes the second moments of every site take while collected. */
static uint64_t xtx_bytes(const sums *t, int head)
{
	uint64_t b = (uint64_t)head * (uint64_t)head;
	for (int s = 0; s < NSITES; s++)
		b += (uint64_t)t->layers * (uint64_t)t->len[s] * (uint64_t)t->len[s];
	return b * sizeof(double);
}

/* The sums of a model's layer inputs, not yet allocated. */
static sums sums_shape(const hf_config *c)
{
	int H = c->hidden_size, Q = c->num_attention_heads * c->head_dim;
	return (sums){.layers = c->num_hidden_layers, .len = {[REF_TAP_QKV] = H, [REF_TAP_O] = Q,
							      [REF_TAP_GATE_UP] = H, [REF_TAP_DOWN] = c->intermediate_size}};
}

int calib_xtx_fits(const hf_config *c)
{
	sums t = sums_shape(c);
	uint64_t b = xtx_bytes(&t, c->hidden_size);
	if (b > CALIB_XTX_MAX_BYTES)
		return errf("second moments (GPTQ) of every linear layer's input would take %.1f GB (at most %.1f): "
			    "this model is too large for them",
			    (double)b / 1e9, CALIB_XTX_MAX_BYTES / 1e9);
	return 0;
}

int calib_collect(const hf_model *hf, const int32_t *ids, size_t n, int context, int threads, int xtx,
		  calstats *out)
{
	const hf_config *c = &hf->cfg;
	if (n == 0)
		return errf("calibration text: no tokens");
	int H = c->hidden_size;
	sums t = sums_shape(c);
	if (xtx && calib_xtx_fits(c) != 0)
		return -1;
	for (int s = 0; s < NSITES; s++) {
		t.s[s] = xcalloc(xmul((size_t)t.layers, (size_t)t.len[s]), sizeof(double));
		if (xtx)
			t.xx[s] = xcalloc(xmul(xmul((size_t)t.layers, (size_t)t.len[s]), (size_t)t.len[s]), sizeof(double));
	}
	ref_options ro = {.context = context, .threads = threads, .tap = tap, .tap_ctx = &t};
	ref_model *m = ref_open(hf, &ro);
	double *head = xcalloc((size_t)H, sizeof *head);
	double *head_xx = xtx ? xcalloc(xmul((size_t)H, (size_t)H), sizeof *head_xx) : NULL;
	float *hidden = xmalloc(xmul((size_t)H, sizeof *hidden));
	int rc = m ? 0 : -1, ctx = m ? ref_context(m) : 1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int pos = (int)(i % (size_t)ctx);
		if (pos == 0)
			ref_reset(m);
		rc = ref_forward(m, ids[i], pos, NULL, hidden);
		for (int k = 0; rc == 0 && k < H; k++)
			head[k] += (double)hidden[k] * hidden[k];
		if (rc == 0 && head_xx)
			add_outer(head_xx, hidden, H);
	}
	for (int l = 0; rc == 0 && l < t.layers; l++)
		for (int s = 0; s < NSITES; s++)
			for (int j = 0; j < 3 && SITE_TENSORS[s][j]; j++) {
				const st_tensor *w = hf_layer_tensor(hf, l, SITE_TENSORS[s][j]);
				if (w)
					put_means(out, w->name, t.s[s] + (size_t)l * (size_t)t.len[s], t.len[s], n);
				if (w && t.xx[s])
					put_xtx(out, w->name, t.xx[s] + (size_t)l * (size_t)t.len[s] * (size_t)t.len[s],
						t.len[s], n);
			}
	if (rc == 0) {
		put_means(out, CALSTATS_HEAD, head, H, n);
		if (head_xx)
			put_xtx(out, CALSTATS_HEAD, head_xx, H, n);
		out->tokens = n;
	}
	ref_close(m);
	for (int s = 0; s < NSITES; s++) {
		free(t.s[s]);
		free(t.xx[s]);
	}
	free(head);
	free(head_xx);
	free(hidden);
	return rc;
}

struct calib_kl {
	const hf_model *hf;
	const int32_t *ids;
	size_t n;
	int threads, vocab;
	float *ref_logp; /* [n][vocab] log-softmax of the reference */
	float *logits;   /* [vocab] */
};

/* log-softmax in place, in double. */
static void log_softmax(float *x, int n)
{
	double mx = -INFINITY, s = 0;
	for (int i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	for (int i = 0; i < n; i++)
		s += exp((double)x[i] - mx);
	double lse = mx + log(s);
	for (int i = 0; i < n; i++)
		x[i] = (float)((double)x[i] - lse);
}

/* Run the tokens through m; each step's log-probabilities go to `each`. */
static int run_window(calib_kl *k, ref_model *m, void (*each)(calib_kl *k, size_t i, void *arg), void *arg)
{
	for (size_t i = 0; i < k->n; i++) {
		if (ref_forward(m, k->ids[i], (int)i, k->logits, NULL) != 0)
			return -1;
		log_softmax(k->logits, k->vocab);
		each(k, i, arg);
	}
	return 0;
}

static void keep_ref(calib_kl *k, size_t i, void *arg)
{
	(void)arg;
	memcpy(k->ref_logp + i * (size_t)k->vocab, k->logits, (size_t)k->vocab * sizeof(float));
}

static void add_kl(calib_kl *k, size_t i, void *arg)
{
	const float *p = k->ref_logp + i * (size_t)k->vocab;
	double s = 0;
	for (int v = 0; v < k->vocab; v++)
		s += exp((double)p[v]) * ((double)p[v] - k->logits[v]);
	*(double *)arg += s;
}

calib_kl *calib_kl_open(const hf_model *hf, const int32_t *ids, size_t n, int threads)
{
	if (n == 0 || n > (1u << 20)) {
		errf("calibration text: %zu tokens for the sensitivity window", n);
		return NULL;
	}
	calib_kl *k = xcalloc(1, sizeof *k);
	*k = (calib_kl){.hf = hf, .ids = ids, .n = n, .threads = threads, .vocab = hf->cfg.vocab_size};
	k->ref_logp = xmalloc(xmul(n, xmul((size_t)k->vocab, sizeof(float))));
	k->logits = xmalloc(xmul((size_t)k->vocab, sizeof(float)));
	ref_options ro = {.context = (int)n, .threads = threads};
	ref_model *m = ref_open(hf, &ro);
	int rc = m ? run_window(k, m, keep_ref, NULL) : -1;
	ref_close(m);
	if (rc != 0) {
		calib_kl_close(k);
		return NULL;
	}
	return k;
}

int calib_kl_measure(calib_kl *k, const char *name, const float *w, double *kl)
{
	ref_options ro = {.context = (int)k->n, .threads = k->threads, .replace_name = name, .replace_data = w};
	ref_model *m = ref_open(k->hf, &ro);
	double sum = 0;
	int rc = m ? run_window(k, m, add_kl, &sum) : -1;
	ref_close(m);
	*kl = sum / (double)k->n;
	return rc;
}

void calib_kl_close(calib_kl *k)
{
	if (!k)
		return;
	free(k->ref_logp);
	free(k->logits);
	free(k);
}
