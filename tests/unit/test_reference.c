/* test_reference.c: the fp32 reference forward pass against known answers
 * and against an independent naive implementation.
 *
 * Known answers: stories260K (a real trained Llama; bf16 copy bundled in
 * tests/models, fp32 in ../shared) must give argmax 403 after BOS and
 * reproduce the 48-step greedy continuation of its README exactly.
 * Random fixtures (tests/tools/mkfixture: qwen2, qwen3, llama with none,
 * linear and llama3 rope_scaling) are run token by token through the KV
 * cache and compared at every position with a straightforward O(n^2)
 * full-sequence recomputation written here from the HF formulas, with its
 * own weights loaded to fp32 and RoPE frequencies computed in double.
 * Everything is tiny (hidden 64, 2 layers, 6 tokens) so it stays fast
 * under ASan.
 */
#include "base/fsutil.h"
#include "checkpoint/hfmodel.h"
#include "verify/reference.h"
#include "test.h"
#include "test_fixture.h"
#include "base/util.h"

#include <stdint.h>
#include <unistd.h>

static char g_tmp[256];

#define SEQ 6
static const int32_t g_seq[SEQ] = {1, 17, 42, 99, 5, 200};

/* stories260K README: greedy from BOS, 48 steps (ids after the BOS). */
static const int g_stories_greedy[48] = {
	403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
	401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
	328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267,
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static char *fixture(const char *name, const char *args) { return test_fixture(g_tmp, name, args); }

static void skip_no_mkfixture(void) { SKIP("TESTBIN not set: no mkfixture"); }

/* Fixture `name` (mkfixture args) opened into hf: 0, or -1 with the test
 * skipped (no mkfixture) or failed (the model does not open). */
static int open_fixture(hf_model *hf, const char *name, const char *args)
{
	char *dir = fixture(name, args);
	if (!dir) {
		skip_no_mkfixture();
		return -1;
	}
	int rc = hf_model_open(hf, dir);
	CHECKF(rc == 0, "%s", errmsg());
	free(dir);
	return rc;
}

/* The model in dir and its reference with `opt`; NULL with a failed check
 * and nothing open. */
static ref_model *open_ref(hf_model *hf, const char *dir, const ref_options *opt)
{
	if (hf_model_open(hf, dir) != 0) {
		CHECKF(0, "%s", errmsg());
		return NULL;
	}
	ref_model *m = ref_open(hf, opt);
	CHECKF(m != NULL, "%s", errmsg());
	if (!m)
		hf_model_close(hf);
	return m;
}

/* Open stories260K (bundled) with `opt`. */
static ref_model *open_stories(hf_model *hf, const ref_options *opt) { return open_ref(hf, "tests/models/stories260K", opt); }

static int argmax(const float *v, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, int n)
{
	double d = 0, s = 0;
	for (int i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		s = fmax(s, fabs((double)b[i]));
	}
	return s > 0 ? d / s : d;
}

/* ------------------------------------------------------------------ */
/* stories260K                                                         */

/* Logits after BOS and the greedy continuation; max/sum checked within
 * `tol` of the README's fp32 values (given to two decimals). */
static void stories(const char *dir, double tol_max, double tol_sum)
{
	hf_model hf;
	ref_options opt = {.context = 64, .threads = 1};
	ref_model *m = open_ref(&hf, dir, &opt);
	if (!m)
		return;
	int V = hf.cfg.vocab_size;
	float *logits = xmalloc((size_t)V * sizeof *logits);
	CHECK(ref_forward(m, 1, 0, logits, NULL) == 0);
	double sum = 0;
	for (int i = 0; i < V; i++)
		sum += logits[i];
	int best = argmax(logits, V);
	printf("# %s: after BOS argmax %d max %.6f sum %.6f\n", dir, best, logits[best], sum);
	CHECK_EQ_INT(best, 403);
	CHECKF(fabs(logits[best] - 17.02) <= tol_max, "max %.6f, expected 17.02", logits[best]);
	CHECKF(fabs(sum - -1070.17) <= tol_sum, "sum %.6f, expected -1070.17", sum);

	int tok = best, matched = 0;
	for (int pos = 1; pos <= 48 && matched == pos - 1; pos++) {
		if (tok == g_stories_greedy[pos - 1])
			matched++;
		if (pos < 48 && ref_forward(m, tok, pos, logits, NULL) == 0)
			tok = argmax(logits, V);
	}
	CHECKF(matched == 48, "greedy decoding matches the README for %d of 48 steps", matched);
	const float *peak = ref_layer_peaks(m);
	for (int l = 0; l < hf.cfg.num_hidden_layers; l++)
		CHECKF(peak[l] > 0.5f && peak[l] < 100, "layer %d peak %g", l, peak[l]);
	free(logits);
	ref_close(m);
	hf_model_close(&hf);
}

static void test_stories_bf16(void)
{
	/* bf16 rounding of the weights moves the logits by ~0.3% */
	stories("tests/models/stories260K", 0.1, 5.0);
}

static void test_stories_fp32(void)
{
	const char *sh = test_shared();
	if (!sh)
		SKIP("../shared not found");
	char *dir = xasprintf("%s/models/stories260K/fp32", sh);
	stories(dir, 0.01, 0.01);
	free(dir);
}

/* ------------------------------------------------------------------ */
/* A naive full-sequence forward pass (no cache), for cross-checking    */

/* The tensors of one layer, by index (absent ones NULL). */
enum { IN_NORM, POST_NORM, PRE_FF, POST_FF, Q_NORM, K_NORM, WQ, WK, WV, WO, BQ, BK, BV, BO,
       WG, WU, WD, BG, BU, BD, NPARTS };
static const char *const g_part_names[NPARTS] = {
	"input_layernorm.weight", "post_attention_layernorm.weight",
	"pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight",
	"self_attn.q_norm.weight", "self_attn.k_norm.weight",
	"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
	"self_attn.o_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias",
	"self_attn.v_proj.bias", "self_attn.o_proj.bias",
	"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
	"mlp.gate_proj.bias", "mlp.up_proj.bias", "mlp.down_proj.bias",
};

/* Tensor "<prefix><name>" as fp32, or NULL when absent. */
static float *load(const hf_model *hf, const char *name)
{
	char *full = xasprintf("%s%s", hf->prefix, name);
	const st_tensor *t = st_find(&hf->st, full);
	free(full);
	if (!t)
		return NULL;
	float *v = xmalloc((size_t)t->numel * sizeof *v);
	if (st_read_f32(t, v) != 0)
		BUG("%s", errmsg());
	return v;
}

static float *load_layer(const hf_model *hf, int l, const char *name)
{
	char *s = xasprintf("layers.%d.%s", l, name);
	float *v = load(hf, s);
	free(s);
	return v;
}

/* y[r] = sum_c W[r][c] x[c] (+ b[r]) */
static void linear(float *y, const float *w, const float *b, const float *x, int rows, int cols)
{
	for (int r = 0; r < rows; r++) {
		float s = 0;
		for (int c = 0; c < cols; c++)
			s += w[(size_t)r * cols + c] * x[c];
		y[r] = s + (b ? b[r] : 0);
	}
}

static void norm(float *y, const float *x, const float *w, int n, double eps)
{
	float ss = 0;
	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	float r = (float)(1 / sqrt(ss / n + eps));
	for (int i = 0; i < n; i++)
		y[i] = w[i] * x[i] * r;
}

/* inv_freq in double, straight from HF's definitions; local: Gemma3's
 * sliding-layer rotary embedding (rope_local_base_freq, no scaling); long:
 * longrope's long factors (else its short ones). */
static void naive_inv_freq(const hf_config *c, int local, int long_factors, double *inv)
{
	hf_rope_scaling none = {.kind = ROPE_NONE};
	const hf_rope_scaling *rs = local ? &none : &c->rope_scaling;
	double base = local ? c->rope_local_base_freq : c->rope_theta;
	int d = hf_config_rotary_dim(c);
	for (int i = 0; i < d / 2; i++) {
		double f = 1.0 / pow(base, 2.0 * i / d);
		if (rs->kind == ROPE_LONGROPE) {
			f /= long_factors ? rs->long_factor[i] : rs->short_factor[i];
		} else if (rs->kind == ROPE_LINEAR) {
			f /= rs->factor;
		} else if (rs->kind == ROPE_LLAMA3) {
			double old = rs->original_max_position_embeddings;
			double wavelen = 2 * M_PI / f;
			if (wavelen > old / rs->low_freq_factor) {
				f /= rs->factor;
			} else if (wavelen >= old / rs->high_freq_factor) {
				double s = (old / wavelen - rs->low_freq_factor) /
				           (rs->high_freq_factor - rs->low_freq_factor);
				f = (1 - s) * f / rs->factor + s * f;
			}
		}
		inv[i] = f;
	}
}

/* The first d dims of x rotated; cos and sin times mscale (longrope). */
static void naive_rope(float *x, const double *inv, int d, int pos, double mscale)
{
	for (int i = 0; i < d / 2; i++) {
		double c = cos(pos * inv[i]) * mscale, s = sin(pos * inv[i]) * mscale;
		float a = x[i], b = x[i + d / 2];
		x[i] = (float)(a * c - b * s);
		x[i + d / 2] = (float)(b * c + a * s);
	}
}

static float naive_act(const hf_config *c, float x)
{
	if (c->act == ACT_SILU)
		return x / (1 + expf(-x));
	return (float)(0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))));
}

/* Gemma's (1 + w) gains. */
static void plus_one(const hf_config *c, float *w, int n)
{
	for (int i = 0; w && c->arch->norm_plus_one && i < n; i++)
		w[i] += 1;
}

/* Logits [n][vocab] and final hidden states [n][hidden] of tokens[0..n). */
static void naive_forward(const hf_model *hf, const int32_t *tokens, int n, float *logits,
                          float *hidden)
{
	const hf_config *c = &hf->cfg;
	int H = c->hidden_size, I = c->intermediate_size, D = c->head_dim, V = c->vocab_size;
	int NH = c->num_attention_heads, NKV = c->num_key_value_heads, L = c->num_hidden_layers;
	float *emb = load(hf, "embed_tokens.weight");
	float *head = hf->lm_head_tied ? emb : NULL;
	if (!head) {
		head = xmalloc((size_t)V * H * sizeof *head);
		st_read_f32(hf->lm_head, head);
	}
	float *fnorm = load(hf, "norm.weight");
	plus_one(c, fnorm, H);
	const arch_info *a = c->arch;
	const hf_rope_scaling *rs = &c->rope_scaling;
	int R = hf_config_rotary_dim(c), longrope = rs->kind == ROPE_LONGROPE;
	double *inv = xmalloc((size_t)D / 2 * sizeof *inv), *inv_local = xmalloc((size_t)D / 2 * sizeof *inv);
	double *inv_long = xmalloc((size_t)D / 2 * sizeof *inv);
	naive_inv_freq(c, 0, 0, inv);
	naive_inv_freq(c, 1, 0, inv_local);
	naive_inv_freq(c, 0, 1, inv_long);
	double mscale = longrope ? rs->attention_factor : 1.0;
	float embed_scale = c->arch->embed_scale_sqrt_hidden ? sqrtf((float)H) : 1;
	if (a->mup_multipliers)
		embed_scale *= (float)c->embedding_multiplier;
	float rm = a->mup_multipliers ? (float)c->residual_multiplier : 1.0f;
	float *x = xcalloc((size_t)n * H, sizeof *x), *xn = xcalloc((size_t)H, sizeof *xn);
	float *q = xcalloc((size_t)n * NH * D, sizeof *q), *att = xcalloc((size_t)NH * D, sizeof *att);
	float *k = xcalloc((size_t)n * NKV * D, sizeof *k), *v = xcalloc((size_t)n * NKV * D, sizeof *v);
	float *g = xcalloc((size_t)I, sizeof *g), *u = xcalloc((size_t)I, sizeof *u);
	float *t = xcalloc((size_t)H, sizeof *t), *p = xcalloc((size_t)n, sizeof *p);
	for (int s = 0; s < n; s++)
		for (int i = 0; i < H; i++)
			x[(size_t)s * H + i] = emb[(size_t)tokens[s] * H + i] * embed_scale;
	for (int l = 0; l < L; l++) {
		float *w[NPARTS];
		for (int i = 0; i < NPARTS; i++) {
			w[i] = load_layer(hf, l, g_part_names[i]);
			if (i <= K_NORM)
				plus_one(c, w[i], i >= Q_NORM ? D : H);
		}
		if (a->fused_proj) { /* Phi3: q, k, v and gate, up are rows of two tensors */
			w[WQ] = load_layer(hf, l, "self_attn.qkv_proj.weight");
			w[WK] = w[WQ] + (size_t)NH * D * H;
			w[WV] = w[WK] + (size_t)NKV * D * H;
			w[WG] = load_layer(hf, l, "mlp.gate_up_proj.weight");
			w[WU] = w[WG] + (size_t)I * H;
		}
		int window = c->layer_sliding[l] ? c->sliding_window : 0, rope_on = hf_config_layer_rope(c, l);
		const double *li = window && c->arch->def.rope_local_base_freq ? inv_local : inv;
		/* projections, qk-norm and RoPE for the whole sequence */
		for (int s = 0; s < n; s++) {
			if (w[IN_NORM])
				norm(xn, x + (size_t)s * H, w[IN_NORM], H, c->rms_norm_eps);
			else /* OLMo 2: no pre-norm */
				memcpy(xn, x + (size_t)s * H, (size_t)H * sizeof *xn);
			float *qs = q + (size_t)s * NH * D, *ks = k + (size_t)s * NKV * D;
			linear(qs, w[WQ], w[BQ], xn, NH * D, H);
			linear(ks, w[WK], w[BK], xn, NKV * D, H);
			linear(v + (size_t)s * NKV * D, w[WV], w[BV], xn, NKV * D, H);
			if (a->qk_norm_full) {
				norm(qs, qs, w[Q_NORM], NH * D, c->rms_norm_eps);
				norm(ks, ks, w[K_NORM], NKV * D, c->rms_norm_eps);
			}
			const double *ri = longrope && s >= rs->original_max_position_embeddings ? inv_long : li;
			for (int h = 0; h < NH; h++) {
				if (w[Q_NORM] && !a->qk_norm_full)
					norm(qs + h * D, qs + h * D, w[Q_NORM], D, c->rms_norm_eps);
				if (rope_on)
					naive_rope(qs + h * D, ri, R, s, mscale);
			}
			for (int h = 0; h < NKV; h++) {
				if (w[K_NORM] && !a->qk_norm_full)
					norm(ks + h * D, ks + h * D, w[K_NORM], D, c->rms_norm_eps);
				if (rope_on)
					naive_rope(ks + h * D, ri, R, s, mscale);
			}
		}
		/* causal attention, every query against every allowed key */
		for (int s = 0; s < n; s++) {
			for (int h = 0; h < NH; h++) {
				int kh = h / (NH / NKV);
				float mx = -INFINITY, sum = 0;
				for (int j = 0; j < n; j++) {
					int visible = j <= s && (!window || s - j < window);
					float dot = 0;
					for (int i = 0; i < D; i++)
						dot += q[((size_t)s * NH + h) * D + i] * k[((size_t)j * NKV + kh) * D + i];
					float scaled = a->mup_multipliers ? dot * (float)c->attn_scale
									  : dot / sqrtf((float)c->query_pre_attn_scalar);
					p[j] = visible ? scaled : -INFINITY;
					mx = fmaxf(mx, p[j]);
				}
				for (int j = 0; j < n; j++)
					sum += p[j] = expf(p[j] - mx);
				for (int i = 0; i < D; i++) {
					float o = 0;
					for (int j = 0; j < n; j++)
						o += p[j] / sum * v[((size_t)j * NKV + kh) * D + i];
					att[h * D + i] = o;
				}
			}
			float *xs = x + (size_t)s * H;
			linear(t, w[WO], w[BO], att, H, NH * D);
			if (w[PRE_FF] || !w[IN_NORM]) /* Gemma3, OLMo 2: the attention output is normalised */
				norm(t, t, w[POST_NORM], H, c->rms_norm_eps);
			for (int i = 0; i < H; i++)
				xs[i] += t[i] * rm;
			if (w[IN_NORM])
				norm(xn, xs, w[PRE_FF] ? w[PRE_FF] : w[POST_NORM], H, c->rms_norm_eps);
			else
				memcpy(xn, xs, (size_t)H * sizeof *xn);
			linear(g, w[WG], w[BG], xn, I, H);
			linear(u, w[WU], w[BU], xn, I, H);
			for (int i = 0; i < I; i++)
				g[i] = naive_act(c, g[i]) * u[i];
			linear(t, w[WD], w[BD], g, H, I);
			if (w[POST_FF])
				norm(t, t, w[POST_FF], H, c->rms_norm_eps);
			for (int i = 0; i < H; i++)
				xs[i] += t[i] * rm;
		}
		if (a->fused_proj) /* rows of w[WQ] and w[WG] */
			w[WK] = w[WV] = w[WU] = NULL;
		for (int i = 0; i < NPARTS; i++)
			free(w[i]);
	}
	for (int s = 0; s < n; s++) {
		norm(hidden + (size_t)s * H, x + (size_t)s * H, fnorm, H, c->rms_norm_eps);
		linear(logits + (size_t)s * V, head, NULL, hidden + (size_t)s * H, V, H);
		for (int i = 0; a->mup_multipliers && i < V; i++)
			logits[(size_t)s * V + i] /= (float)c->logits_scaling;
	}
	if (head != emb)
		free(head);
	free(emb);
	free(fnorm);
	free(inv);
	free(inv_local);
	free(inv_long);
	free(x);
	free(xn);
	free(q);
	free(att);
	free(k);
	free(v);
	free(g);
	free(u);
	free(t);
	free(p);
}

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */

/* Logits [SEQ][vocab] of g_seq through the KV cache. */
static int run_seq(ref_model *m, int V, float *logits, float *hidden, int H)
{
	for (int s = 0; s < SEQ; s++)
		if (ref_forward(m, g_seq[s], s, logits + (size_t)s * V, hidden ? hidden + (size_t)s * H : NULL))
			return -1;
	return 0;
}

/* open_fixture, then with window > 0 the last layer slides over that many tokens. */
static int open_sliding(hf_model *hf, const char *name, const char *args, int window)
{
	if (open_fixture(hf, name, args) != 0)
		return -1;
	if (window) {
		hf->cfg.sliding_window = window;
		hf->cfg.layer_sliding[hf->cfg.num_hidden_layers - 1] = 1;
	}
	return 0;
}

/* Cached step-by-step logits vs the naive recomputation, plus determinism
 * (a second pass after ref_reset is bit-identical). `window` > 0 makes
 * the last layer slide over that many tokens; qpas > 0 overrides
 * query_pre_attn_scalar (mkfixture writes head_dim), qpas < 0 moves
 * longrope's original context to -qpas. */
static void cross_check_ex(const char *name, const char *args, int window, double qpas)
{
	hf_model hf;
	if (open_sliding(&hf, name, args, window) != 0)
		return;
	if (qpas > 0) {
		hf.cfg.query_pre_attn_scalar = qpas;
		hf.cfg.attn_scale = pow(qpas, -0.5);
	} else if (qpas < 0) { /* longrope: the original context moved to -qpas */
		hf.cfg.rope_scaling.original_max_position_embeddings = (int)-qpas;
	}
	int V = hf.cfg.vocab_size, H = hf.cfg.hidden_size;
	float *a = xmalloc((size_t)SEQ * V * sizeof *a), *b = xmalloc((size_t)SEQ * V * sizeof *b);
	float *ha = xmalloc((size_t)SEQ * H * sizeof *ha), *hb = xmalloc((size_t)SEQ * H * sizeof *hb);
	ref_options opt = {.context = 16, .threads = 1};
	ref_model *m = ref_open(&hf, &opt);
	CHECKF(m != NULL, "%s: %s", name, errmsg());
	if (m) {
		CHECKF(run_seq(m, V, a, ha, H) == 0, "%s", errmsg());
		naive_forward(&hf, g_seq, SEQ, b, hb);
		for (int s = 0; s < SEQ; s++) {
			double dl = rel_diff(a + (size_t)s * V, b + (size_t)s * V, V);
			double dh = rel_diff(ha + (size_t)s * H, hb + (size_t)s * H, H);
			CHECKF(dl <= 1e-5 && dh <= 1e-5, "%s pos %d: logits differ by %.3g, hidden by %.3g "
			       "(relative to max)", name, s, dl, dh);
		}
		ref_reset(m);
		CHECKF(run_seq(m, V, b, NULL, 0) == 0, "%s", errmsg());
		CHECKF(memcmp(a, b, (size_t)SEQ * V * sizeof *a) == 0, "%s: second run differs", name);
		ref_close(m);
	}
	free(a);
	free(b);
	free(ha);
	free(hb);
	hf_model_close(&hf);
}

static void cross_check(const char *name, const char *args, int window) { cross_check_ex(name, args, window, 0); }

static void test_llama(void) { cross_check("llama", "--arch llama --seed 3", 0); }
static void test_llama_untied_f32(void) { cross_check("llama-f32", "--arch llama --untied --dtype f32 --seed 4", 0); }
static void test_llama_f16(void) { cross_check("llama-f16", "--arch llama --dtype f16 --seed 5", 0); }
static void test_llama_rope_llama3(void) { cross_check("llama-l3", "--arch llama --seed 3 --rope-scaling llama3", 0); }
static void test_llama_rope_linear(void) { cross_check("llama-lin", "--arch llama --seed 3 --rope-scaling linear", 0); }
static void test_qwen2(void) { cross_check("qwen2", "--arch qwen2 --seed 6", 0); }
static void test_qwen2_sliding(void) { cross_check("qwen2", "--arch qwen2 --seed 6", 3); }
static void test_qwen3(void) { cross_check("qwen3", "--arch qwen3 --seed 7 --head-dim 24", 0); }
/* The Gemma 3 fixture of the tests below (one directory, so one set of arguments). */
#define G3_ARGS \
	"--arch gemma3_text --seed 8 --layers 3 --layer-types s,f,s --sliding-window 3 --rope-scaling linear --rope-factor 4"

/* Gemma 3: four norms, (1 + w) gains, GELU, sqrt(hidden) embeddings, a
 * window of 3 crossed by the 6 tokens, local RoPE unscaled on the sliding
 * layers and linear rope_scaling on the full one, scale 1/sqrt(24). */
static void test_gemma3(void) { cross_check_ex("gemma3", G3_ARGS, 0, 24); }
/* the multimodal layout (text_config, language_model.* tensors) */
static void test_gemma3_nested(void)
{
	cross_check_ex("gemma3-mm", "--arch gemma3 --seed 9 --layers 2 --layer-types s,f --sliding-window 4 "
	               "--head-dim 24", 0, 0);
}

/* The families ANEMLL lacks. Mistral: explicit head_dim, a window of 3
 * crossed by the 6 tokens; Granite: the four multipliers; OLMo 2: post
 * norms, q/k norms over the projection; SmolLM3: layer 3 without RoPE;
 * Phi3: fused projections, 3/4 of each head rotated, longrope with its
 * original context moved to 3 so that positions 3-5 take the long factors. */
static void test_mistral(void) { cross_check("mistral", "--arch mistral --seed 10 --head-dim 32 --sliding-window 3", 0); }
static void test_granite(void) { cross_check("granite", "--arch granite --seed 11", 0); }
static void test_olmo2(void) { cross_check("olmo2", "--arch olmo2 --seed 12", 0); }
static void test_smollm3(void) { cross_check("smollm3", "--arch smollm3 --seed 13", 0); }
static void test_phi3(void) { cross_check_ex("phi3", "--arch phi3 --seed 14 --sliding-window 4", 0, -3); }

/* Logits of g_seq for fixture `name`, with `opt`; NULL on failure. */
static float *seq_logits(const char *name, const char *args, const ref_options *opt, int *V)
{
	char *dir = fixture(name, args);
	if (!dir)
		return NULL;
	hf_model hf;
	float *out = NULL;
	if (hf_model_open(&hf, dir) == 0) {
		ref_model *m = ref_open(&hf, opt);
		*V = hf.cfg.vocab_size;
		out = xmalloc((size_t)SEQ * *V * sizeof *out);
		if (!m || run_seq(m, *V, out, NULL, 0) != 0) {
			CHECKF(0, "%s: %s", name, errmsg());
			free(out);
			out = NULL;
		}
		ref_close(m);
		hf_model_close(&hf);
	} else {
		CHECKF(0, "%s", errmsg());
	}
	free(dir);
	return out;
}

/* RoPE is the identity at position 0, so scaling leaves pos 0 bit-identical
 * and must change every later position. */
static void test_rope_scaling_changes_output(void)
{
	if (!getenv("TESTBIN"))
		SKIP("TESTBIN not set: no mkfixture");
	ref_options opt = {.context = 8, .threads = 1};
	ref_options compat = {.context = 8, .threads = 1, .rope_anemll_compat = 1};
	int V = 0;
	float *none = seq_logits("llama", "--arch llama --seed 3", &opt, &V);
	float *l3 = seq_logits("llama-l3", "--arch llama --seed 3 --rope-scaling llama3", &opt, &V);
	float *lin = seq_logits("llama-lin", "--arch llama --seed 3 --rope-scaling linear", &opt, &V);
	float *l3c = seq_logits("llama-l3", "--arch llama --seed 3 --rope-scaling llama3", &compat, &V);
	if (none && l3 && lin && l3c) {
		float *v[] = {l3, lin, l3c};
		const char *what[] = {"llama3", "linear", "llama3 (ANEMLL compat)"};
		for (int i = 0; i < 3; i++) {
			CHECKF(memcmp(none, v[i], (size_t)V * sizeof *none) == 0, "%s: pos 0 changed", what[i]);
			for (int s = 1; s < SEQ; s++)
				CHECKF(rel_diff(v[i] + (size_t)s * V, none + (size_t)s * V, V) > 1e-4,
				       "%s: pos %d same as without rope_scaling", what[i], s);
		}
		CHECKF(rel_diff(l3c + (size_t)5 * V, l3 + (size_t)5 * V, V) > 1e-4,
		       "ANEMLL's base*factor should differ from the llama3 formula");
	}
	free(none);
	free(l3);
	free(lin);
	free(l3c);
}

/* Row-split mat-vecs over threads give bit-identical results (this fixture
 * is wide enough for the LM head and MLP to be split). */
static void test_threads_identical(void)
{
	const char *args = "--arch qwen3 --seed 9 --vocab 2048 --intermediate 512 --untied";
	if (!getenv("TESTBIN"))
		SKIP("TESTBIN not set: no mkfixture");
	int V = 0;
	ref_options one = {.context = 8, .threads = 1}, three = {.context = 8, .threads = 3};
	float *a = seq_logits("wide", args, &one, &V);
	float *b = seq_logits("wide", args, &three, &V);
	if (a && b)
		CHECK(memcmp(a, b, (size_t)SEQ * V * sizeof *a) == 0);
	free(a);
	free(b);
}

/* The vector dot products (AVX2, when the CPU has it) give the bits of
 * the plain loop (ANEMAKE_REF_PLAIN=1) for bf16, f16 and f32 weights, with
 * rows whose length is not a multiple of 8 (hidden 84, head_dim 14). */
static void test_vector_dot_identical(void)
{
	if (!getenv("TESTBIN"))
		SKIP("TESTBIN not set: no mkfixture");
	const char *dt[] = {"bf16", "f16", "f32"};
	for (int i = 0; i < 3; i++) {
		char args[160], name[32];
		snprintf(args, sizeof args, "--arch llama --seed 11 --hidden 84 --heads 6 --kv-heads 2 --intermediate 300 "
			 "--vocab 515 --untied --dtype %s", dt[i]);
		snprintf(name, sizeof name, "dot-%s", dt[i]);
		int V = 0;
		ref_options one = {.context = 8, .threads = 1};
		setenv("ANEMAKE_REF_PLAIN", "1", 1);
		float *a = seq_logits(name, args, &one, &V);
		unsetenv("ANEMAKE_REF_PLAIN");
		float *b = seq_logits(name, args, &one, &V);
		if (a && b)
			CHECKF(memcmp(a, b, (size_t)SEQ * V * sizeof *a) == 0, "%s: vector and plain dots differ", dt[i]);
		free(a);
		free(b);
	}
}

/* ref_forward_n (teacher forcing, each weight read once for up to 64
 * positions) gives the bits of ref_forward position by position: logits
 * and hidden states from position 5 on, over 70 positions (two batches),
 * also resumed mid-sequence, with the wide vector kernel and the plain
 * dots, bf16/f16/f32 weights with odd row lengths, a sliding layer, 2 threads. */
static void batch_case(const char *name, const char *args, int window)
{
	enum { N = 70, FIRST = 5 };
	hf_model hf;
	if (open_sliding(&hf, name, args, window) != 0)
		return;
	int V = hf.cfg.vocab_size, H = hf.cfg.hidden_size;
	int32_t tok[N];
	for (int i = 0; i < N; i++)
		tok[i] = (int32_t)((i * 7919 + 13) % V);
	size_t nl = (size_t)(N - FIRST) * (size_t)V, nh = (size_t)(N - FIRST) * (size_t)H;
	float *a = xcalloc(nl, 4), *b = xcalloc(nl, 4), *ha = xcalloc(nh, 4), *hb = xcalloc(nh, 4);
	for (int plain = 0; plain < 2; plain++) {
		if (plain)
			setenv("ANEMAKE_REF_PLAIN", "1", 1);
		ref_options opt = {.context = 80, .threads = 2};
		ref_model *m = ref_open(&hf, &opt);
		unsetenv("ANEMAKE_REF_PLAIN");
		CHECKF(m != NULL, "%s: %s", name, errmsg());
		if (!m)
			break;
		for (int p = 0; p < N; p++) {
			int o = p - FIRST;
			CHECK(ref_forward(m, tok[p], p, o >= 0 ? a + (size_t)o * V : NULL, o >= 0 ? ha + (size_t)o * H : NULL) == 0);
		}
		ref_reset(m);
		memset(b, 0, nl * 4);
		CHECKF(ref_forward_n(m, tok, 0, N, FIRST, b, hb) == 0, "%s", errmsg());
		CHECKF(memcmp(a, b, nl * 4) == 0 && memcmp(ha, hb, nh * 4) == 0, "%s%s: one batch differs from one at a time",
		       name, plain ? " (plain dots)" : "");
		ref_reset(m);
		memset(b, 0, nl * 4);
		CHECK(ref_forward_n(m, tok, 0, 3, 3, NULL, NULL) == 0);
		CHECK(ref_forward_n(m, tok + 3, 3, N - 3, FIRST - 3, b, NULL) == 0);
		CHECKF(memcmp(a, b, nl * 4) == 0, "%s%s: a resumed batch differs", name, plain ? " (plain dots)" : "");
		ref_close(m);
	}
	free(a), free(b), free(ha), free(hb);
	hf_model_close(&hf);
}

static void test_batch_identical(void)
{
	batch_case("batch-bf16", "--arch llama --seed 11 --hidden 84 --heads 6 --kv-heads 2 --intermediate 300 --vocab 515 "
		   "--untied --dtype bf16", 0);
	batch_case("batch-f16", "--arch llama --seed 12 --hidden 84 --heads 6 --kv-heads 2 --intermediate 300 --vocab 515 "
		   "--dtype f16", 0);
	batch_case("batch-f32", "--arch qwen2 --seed 6 --dtype f32", 9);
	batch_case("batch-gemma3", G3_ARGS, 0);
}

/* ------------------------------------------------------------------ */
/* RoPE frequencies                                                    */

static int parse_cfg(hf_config *c, const char *model_type, const char *rope_scaling)
{
	char *json = xasprintf(
		"{\"model_type\": \"%s\", \"hidden_size\": 64, \"intermediate_size\": 128,"
		" \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
		" \"head_dim\": 16, \"vocab_size\": 256, \"rope_theta\": 500000.0,"
		" \"rope_scaling\": %s}", model_type, rope_scaling);
	int rc = hf_config_parse(c, json, strlen(json), "test/config.json");
	CHECKF(rc == 0, "%s", errmsg());
	free(json);
	return rc;
}

/* Each inv_freq within `tol` (relative) of expect(i). */
static void check_freqs(const float *got, const double *want, int n, double tol, const char *what)
{
	for (int i = 0; i < n; i++)
		CHECKF(fabs(got[i] - want[i]) <= tol * want[i], "%s: inv_freq[%d] = %.9g, expected %.9g",
		       what, i, got[i], want[i]);
}

static void test_rope_inv_freq(void)
{
	const char *l3 = "{\"rope_type\": \"llama3\", \"factor\": 32.0, \"low_freq_factor\": 1.0,"
	                 " \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192}";
	hf_config c;
	float got[8];
	double want[8];
	/* head_dim 16, theta 5e5: wavelengths 6.3 .. 4.7e6 cover all three
	 * llama3 bands (high-freq kept, 2048..8192 interpolated, long slowed). */
	if (parse_cfg(&c, "llama", l3) == 0) {
		CHECK(ref_rope_inv_freq(&c, 0, got) == 0);
		naive_inv_freq(&c, 0, 0, want);
		check_freqs(got, want, 8, 3e-7, "llama3");
		/* the bands by hand: i = 0 kept, i = 7 slowed 32x, i = 4 in between */
		CHECK(got[0] == 1.0f);
		CHECKF(fabs(got[7] - 1.0 / pow(5e5, 14.0 / 16) / 32) < 1e-6 * got[7], "%g", got[7]);
		double f4 = 1.0 / pow(5e5, 8.0 / 16), wl = 2 * M_PI / f4;
		CHECKF(wl > 2048 && wl < 8192, "i=4 wavelength %g not in the middle band", wl);
		CHECKF(got[4] < f4 && got[4] > f4 / 32, "inv_freq[4] %g not interpolated", got[4]);
		for (int i = 0; i < 8; i++)
			want[i] = 1.0 / pow(5e5 * 32, 2.0 * i / 16);
		CHECK(ref_rope_inv_freq(&c, 1, got) == 0);
		check_freqs(got, want, 8, 3e-7, "llama3, ANEMLL compat (theta * factor)");
		hf_config_release(&c);
	}
	if (parse_cfg(&c, "qwen2", "{\"type\": \"linear\", \"factor\": 4.0}") == 0) {
		CHECK(ref_rope_inv_freq(&c, 0, got) == 0);
		for (int i = 0; i < 8; i++)
			want[i] = 1.0 / pow(5e5, 2.0 * i / 16) / 4;
		check_freqs(got, want, 8, 3e-7, "linear");
		hf_config_release(&c);
	}
	/* ANEMLL's Qwen3 ignores rope_scaling */
	if (parse_cfg(&c, "qwen3", "{\"rope_type\": \"linear\", \"factor\": 4.0}") == 0) {
		CHECK(ref_rope_inv_freq(&c, 1, got) == 0);
		for (int i = 0; i < 8; i++)
			want[i] = 1.0 / pow(5e5, 2.0 * i / 16);
		check_freqs(got, want, 8, 3e-7, "qwen3, ANEMLL compat (scaling ignored)");
		hf_config_release(&c);
	}
	if (parse_cfg(&c, "llama", "{\"rope_type\": \"yarn\", \"factor\": 4.0}") == 0) {
		CHECK(ref_rope_inv_freq(&c, 0, got) == -1);
		CHECKF(strstr(errmsg(), "'yarn'") != NULL, "message: %s", errmsg());
		CHECK(ref_rope_inv_freq(&c, 1, got) == 0); /* ANEMLL: base * factor for anything */
		hf_config_release(&c);
	}
}

/* ------------------------------------------------------------------ */
/* Errors, peaks, options                                              */

static void test_softcapping_refused(void)
{
	hf_model hf;
	if (open_fixture(&hf, "gemma3-sc", "--arch gemma3_text --layers 2 --layer-types s,f") != 0)
		return;
	hf.cfg.has_final_logit_softcapping = 1;
	hf.cfg.final_logit_softcapping = 30;
	CHECK(ref_open(&hf, NULL) == NULL);
	CHECKF(strstr(errmsg(), "reference forward pass for gemma3 is not implemented yet (logit soft-capping)"),
	       "message: %s", errmsg());
	hf_model_close(&hf);
}

static void test_bad_input(void)
{
	hf_model hf;
	ref_options opt = {.context = 4, .threads = 1};
	ref_model *m = open_stories(&hf, &opt);
	if (!m)
		return;
	float logits[512];
	CHECK_EQ_INT(ref_context(m), 4);
	CHECK(ref_forward(m, 512, 0, logits, NULL) == -1);
	CHECKF(strstr(errmsg(), "token id 512 out of range"), "message: %s", errmsg());
	CHECK(ref_forward(m, -1, 0, logits, NULL) == -1);
	CHECK(ref_forward(m, 1, 1, logits, NULL) == -1); /* nothing cached yet */
	CHECKF(strstr(errmsg(), "position 1 out of range"), "message: %s", errmsg());
	for (int p = 0; p < 4; p++)
		CHECK(ref_forward(m, 1, p, NULL, NULL) == 0); /* NULL logits: no LM head */
	CHECK(ref_forward(m, 1, 4, logits, NULL) == -1);  /* context full */
	CHECK(ref_forward(m, 1, 2, logits, NULL) == 0);   /* rewinding is allowed */
	ref_close(m);
	ref_close(NULL);
	hf_model_close(&hf);

	/* defaults: context min(max_position_embeddings, 2048), threads per CPU */
	if (hf_model_open(&hf, "tests/models/stories260K") == 0) {
		ref_model *d = ref_open(&hf, NULL);
		CHECKF(d != NULL, "%s", errmsg());
		if (d) {
			CHECK_EQ_INT(ref_context(d), 512);
			CHECK(ref_forward(d, 1, 0, logits, NULL) == 0 && argmax(logits, 512) == 403);
		}
		ref_close(d);
		opt.context = -1;
		CHECK(ref_open(&hf, &opt) == NULL);
		hf_model_close(&hf);
	}
}

/* A tensor whose shape or dtype was tampered with after hf_model_open is
 * refused by name. */
static void test_bad_tensor(void)
{
	static const struct { uint64_t dim1; st_dtype dtype; const char *want; } cases[] = {
		{32, ST_BF16, "has shape [64,32], expected [64,64]"},
		{64, ST_I32, "has dtype I32"},
	};
	for (int i = 0; i < 2; i++) {
		hf_model hf;
		if (hf_model_open(&hf, "tests/models/stories260K") != 0) {
			CHECKF(0, "%s", errmsg());
			return;
		}
		for (size_t j = 0; j < hf.st.ntensors; j++) {
			st_tensor *t = &hf.st.tensors[j];
			if (strcmp(t->name, "model.layers.1.self_attn.q_proj.weight") == 0) {
				t->shape[1] = cases[i].dim1;
				t->dtype = cases[i].dtype;
			}
		}
		ref_options opt = {.context = 4, .threads = 1};
		CHECK(ref_open(&hf, &opt) == NULL);
		CHECKF(strstr(errmsg(), "'model.layers.1.self_attn.q_proj.weight'") &&
		       strstr(errmsg(), cases[i].want), "message: %s", errmsg());
		hf_model_close(&hf);
	}
}

/* Peaks accumulate over calls, survive ref_reset and clear on request;
 * hidden_out is the LM head's input. */
static void test_peaks_and_hidden(void)
{
	hf_model hf;
	ref_options opt = {.context = 8, .threads = 1};
	ref_model *m = open_stories(&hf, &opt);
	if (!m)
		return;
	int L = hf.cfg.num_hidden_layers, H = hf.cfg.hidden_size;
	float logits[512], hidden[64], first[8];
	CHECK(ref_forward(m, 1, 0, logits, hidden) == 0);
	memcpy(first, ref_layer_peaks(m), (size_t)L * sizeof *first);
	for (int p = 1; p < 8; p++)
		CHECK(ref_forward(m, g_stories_greedy[p - 1], p, NULL, NULL) == 0);
	const float *peak = ref_layer_peaks(m);
	for (int l = 0; l < L; l++)
		CHECKF(peak[l] >= first[l] && first[l] > 0, "layer %d: %g then %g", l, first[l], peak[l]);
	ref_reset(m);
	CHECK(ref_layer_peaks(m)[0] == peak[0]);
	ref_clear_peaks(m);
	CHECK(ref_layer_peaks(m)[L - 1] == 0);

	/* tied head: logit[403] = embed[403] . hidden */
	float row[64];
	st_read_rows_f32(hf.embed, 403, 1, row);
	double dot = 0;
	for (int i = 0; i < H; i++)
		dot += (double)row[i] * hidden[i];
	CHECKF(fabs(dot - logits[403]) < 1e-4, "embed[403].hidden = %g, logit %g", dot, logits[403]);
	ref_close(m);
	hf_model_close(&hf);
}


/* ANEMLL's Gemma 3 ignores rope_scaling: compat mode equals the model with
 * rope_scaling removed, bit for bit, and differs from HF's linear scaling
 * on the global layer from position 1 on. */
static void test_gemma3_anemll_rope(void)
{
	hf_model hf;
	if (open_fixture(&hf, "gemma3", G3_ARGS) != 0)
		return;
	int V = hf.cfg.vocab_size;
	float *hf_l = xmalloc((size_t)SEQ * V * sizeof(float)), *compat = xmalloc((size_t)SEQ * V * sizeof(float));
	float *plain = xmalloc((size_t)SEQ * V * sizeof(float));
	ref_options opt = {.context = 16, .threads = 1};
	float *out[3] = {hf_l, compat, plain};
	for (int i = 0; i < 3; i++) {
		opt.rope_anemll_compat = i == 1;
		if (i == 2)
			hf.cfg.rope_scaling.kind = ROPE_NONE;
		ref_model *m = ref_open(&hf, &opt);
		CHECKF(m && run_seq(m, V, out[i], NULL, 0) == 0, "%s", errmsg());
		ref_close(m);
	}
	CHECK(memcmp(compat, plain, (size_t)SEQ * V * sizeof(float)) == 0);
	CHECK(memcmp(hf_l, compat, (size_t)V * sizeof(float)) == 0); /* RoPE is the identity at 0 */
	CHECKF(rel_diff(hf_l + (size_t)(SEQ - 1) * V, compat + (size_t)(SEQ - 1) * V, V) > 1e-4,
	       "linear rope_scaling on the global layer changed nothing");
	free(hf_l), free(compat), free(plain);
	hf_model_close(&hf);
}

/* fp16 activations on a real model: close to fp32 (a few fp16 ulps of the
 * logits), not identical, everything finite. */
static void test_fp16_rounding(void)
{
	hf_model hf;
	ref_options opt = {.context = 8, .threads = 1};
	ref_model *a = open_stories(&hf, &opt);
	if (!a)
		return;
	opt.fp16_activations = 1;
	ref_model *b = ref_open(&hf, &opt);
	CHECKF(b != NULL, "%s", errmsg());
	float la[512], lb[512];
	double worst = 0;
	int differ = 0;
	for (int p = 0; b && p < 8; p++) {
		int32_t tok = p ? g_stories_greedy[p - 1] : 1;
		CHECK(ref_forward(a, tok, p, la, NULL) == 0 && ref_forward(b, tok, p, lb, NULL) == 0);
		worst = fmax(worst, rel_diff(lb, la, 512));
		differ |= memcmp(la, lb, sizeof la) != 0;
		CHECK(argmax(la, 512) == argmax(lb, 512));
	}
	printf("# stories260K fp16 activations vs fp32: logits differ by %.3g relative to max\n", worst);
	CHECKF(differ && worst < 2e-2, "fp16 emulation: relative difference %.3g", worst);
	CHECK(ref_first_nonfinite_layer(b) == -1);
	ref_close(a);
	ref_close(b);
	hf_model_close(&hf);
}

/* Point tensor `name` at gain values g (fp32), in place of the mapping. */
static void set_gain(hf_model *hf, const char *name, float *g, float v)
{
	char *full = xasprintf("%s%s", hf->prefix, name);
	for (size_t j = 0; j < hf->st.ntensors; j++) {
		st_tensor *t = &hf->st.tensors[j];
		if (strcmp(t->name, full) == 0) {
			for (uint64_t i = 0; i < t->numel; i++)
				g[i] = v;
			t->dtype = ST_F32;
			t->nbytes = t->numel * 4;
			t->data = (const uint8_t *)g;
			t->mapped = 0;
		}
	}
	free(full);
}

/* Logits of g_seq; returns the model's first non-finite layer (-2 on error)
 * and the peak of layer `l` in *peak. */
static int overflow_run(hf_model *hf, const ref_options *opt, float *logits, int l, float *peak)
{
	ref_model *m = ref_open(hf, opt);
	if (!m || run_seq(m, hf->cfg.vocab_size, logits, NULL, 0) != 0) {
		CHECKF(0, "%s", errmsg());
		ref_close(m);
		return -2;
	}
	int bad = ref_first_nonfinite_layer(m);
	*peak = ref_layer_peaks(m)[l];
	ref_clear_peaks(m);
	CHECK(ref_first_nonfinite_layer(m) == -1 && ref_layer_peaks(m)[l] == 0);
	ref_close(m);
	return bad;
}

static int all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/* A Gemma whose layer-1 post-feedforward gain is 1e5 pushes the residual
 * stream past 65504: fine in fp32, inf/NaN logits with fp16 activations
 * (first non-finite layer 1), finite again with ANEMLL's clamp or with
 * fp16_scale 0.05 (which scales the peak by 0.05). */
static void test_fp16_overflow(void)
{
	hf_model hf;
	if (open_fixture(&hf, "gemma3", G3_ARGS) != 0)
		return;
	float gain[64];
	set_gain(&hf, "layers.1.post_feedforward_layernorm.weight", gain, 1e5f);
	size_t n = (size_t)SEQ * (size_t)hf.cfg.vocab_size;
	float *l32 = xmalloc(n * sizeof(float)), *l16 = xmalloc(n * sizeof(float));
	float *lc = xmalloc(n * sizeof(float)), *ls = xmalloc(n * sizeof(float));
	float p32, p16, pc, ps;
	ref_options opt = {.context = 16, .threads = 1};
	CHECK_EQ_INT(overflow_run(&hf, &opt, l32, 1, &p32), -1);
	CHECKF(p32 > 65504 && isfinite(p32) && all_finite(l32, n), "fp32 peak %g", p32);
	opt.fp16_activations = 1;
	CHECK_EQ_INT(overflow_run(&hf, &opt, l16, 1, &p16), 1);
	CHECK(isinf(p16) && !all_finite(l16, n));
	opt.clamp = 60000;
	CHECK_EQ_INT(overflow_run(&hf, &opt, lc, 1, &pc), -1);
	CHECKF(pc == 60000 && all_finite(lc, n), "clamped peak %g", pc);
	opt.clamp = 0;
	opt.fp16_scale = 0.05;
	CHECK_EQ_INT(overflow_run(&hf, &opt, ls, 1, &ps), -1);
	CHECKF(all_finite(ls, n) && fabsf(ps / p32 - 0.05f) < 1e-3f, "scaled peak %g of %g", ps, p32);
	int agree = 0;
	for (int s = 0; s < SEQ; s++)
		agree += argmax(ls + (size_t)s * hf.cfg.vocab_size, hf.cfg.vocab_size) ==
		         argmax(l32 + (size_t)s * hf.cfg.vocab_size, hf.cfg.vocab_size);
	printf("# gemma3 overflow: fp32 peak %.4g; fp16: first non-finite layer 1; clamp 60000: finite; "
	       "fp16_scale 0.05: peak %.4g, top-1 %d/%d with fp32\n", p32, ps, agree, SEQ);
	CHECK(agree == SEQ);
	free(l32), free(l16), free(lc), free(ls);
	hf_model_close(&hf);
}

/* In fp32, fp16_scale changes the residual stream by alpha and the logits
 * only by the final norm's eps. */
static void test_fp16_scale(void)
{
	ref_options opt = {.context = 16, .threads = 1};
	int V = 0;
	float *a = seq_logits("gemma3", G3_ARGS, &opt, &V);
	opt.fp16_scale = 0.5;
	float *b = seq_logits("gemma3", G3_ARGS, &opt, &V);
	if (!a || !b) {
		free(a), free(b);
		if (!getenv("TESTBIN"))
			SKIP("TESTBIN not set: no mkfixture");
		return;
	}
	double d = rel_diff(b, a, SEQ * V);
	CHECKF(d < 1e-4 && memcmp(a, b, (size_t)SEQ * V * sizeof *a) != 0, "fp16_scale 0.5: logits differ by %.3g", d);
	free(a), free(b);
}

static void test_fp16_bad_options(void)
{
	hf_model hf;
	if (hf_model_open(&hf, "tests/models/stories260K") != 0) {
		CHECKF(0, "%s", errmsg());
		return;
	}
	static const struct { double clamp, scale; const char *want; } cases[] = {
		{-1, 0, "clamp -1 must be a non-negative number"},
		{NAN, 0, "clamp nan must be"},
		{0, 1.5, "fp16_scale 1.5 must be in (0, 1]"},
		{0, -0.5, "fp16_scale -0.5 must be in (0, 1]"},
		{0, 0.5, "fp16_scale needs post-attention and post-feedforward norms (Gemma 3); llama has none"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ref_options opt = {.context = 4, .threads = 1, .clamp = cases[i].clamp, .fp16_scale = cases[i].scale};
		CHECK(ref_open(&hf, &opt) == NULL);
		CHECKF(strstr(errmsg(), cases[i].want), "message: %s", errmsg());
	}
	hf_model_close(&hf);
}

/* A rope_scaling type HF defines but the reference does not compute. */
static void test_unknown_rope_refused(void)
{
	hf_model hf;
	if (hf_model_open(&hf, "tests/models/stories260K") != 0) {
		CHECKF(0, "%s", errmsg());
		return;
	}
	hf.cfg.rope_scaling.kind = ROPE_OTHER;
	hf.cfg.rope_scaling.type = xstrdup("dynamic");
	hf.cfg.rope_scaling.factor = 2;
	ref_options opt = {.context = 4, .threads = 1};
	CHECK(ref_open(&hf, &opt) == NULL);
	CHECKF(strstr(errmsg(), "rope_scaling type 'dynamic'"), "message: %s", errmsg());
	opt.rope_anemll_compat = 1;
	ref_model *m = ref_open(&hf, &opt);
	CHECKF(m != NULL, "%s", errmsg());
	ref_close(m);
	hf_model_close(&hf);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(g_tmp, sizeof g_tmp, "%s/anemake-ref-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(g_tmp)) {
		printf("FAIL setup: cannot create %s\n", g_tmp);
		return 1;
	}
	RUN(test_stories_bf16);
	RUN(test_stories_fp32);
	RUN(test_llama);
	RUN(test_llama_untied_f32);
	RUN(test_llama_f16);
	RUN(test_llama_rope_llama3);
	RUN(test_llama_rope_linear);
	RUN(test_qwen2);
	RUN(test_qwen2_sliding);
	RUN(test_qwen3);
	RUN(test_gemma3);
	RUN(test_gemma3_nested);
	RUN(test_mistral);
	RUN(test_granite);
	RUN(test_olmo2);
	RUN(test_smollm3);
	RUN(test_phi3);
	RUN(test_gemma3_anemll_rope);
	RUN(test_fp16_rounding);
	RUN(test_fp16_overflow);
	RUN(test_fp16_scale);
	RUN(test_fp16_bad_options);
	RUN(test_rope_scaling_changes_output);
	RUN(test_threads_identical);
	RUN(test_vector_dot_identical);
	RUN(test_batch_identical);
	RUN(test_rope_inv_freq);
	RUN(test_softcapping_refused);
	RUN(test_bad_input);
	RUN(test_bad_tensor);
	RUN(test_peaks_and_hidden);
	RUN(test_unknown_rope_refused);
	rm_rf(g_tmp);
	return test_finish();
}
