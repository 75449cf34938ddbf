/* graph_layer.c: one decoder layer, ANE-shaped, for every architecture.
 *
 * Reads the layer's tensors from the checkpoint one at a time (each is
 * converted to fp16, written to weight.bin, palettized when a LUT applies,
 * and freed) and appends the ops of
 *
 *   h1  = h + o_proj(attention(rope(q), rope(k), v))   q,k,v from norm(h)
 *   out = h1 + down(act(gate(x)) * up(x))              x = norm(h1)
 *
 * in the layout ANEMLL uses: projections are 1x1 convs on [1,C,1,S], heads
 * are [1,n,S,d], the KV cache is one state [2L, kv, C, d] (Gemma 3: the
 * layer's local or global cache, graph.h) updated with read_state ->
 * slice_update -> write_state -> read_state, and attention runs over the
 * cache's slots with the additive causal mask. In the rotate functions
 * Gemma's local cache is a ring (position q in slot q mod W, graph.h):
 * writes go to their slots, nothing shifts; prefill_rotate attends the old
 * window plus the batch for exactness.
 * Residual adds are clipped when --clamp asks.
 * Architecture differences are traits (arch.h), each a branch at one place:
 * qk_norm (per-head RMSNorm before RoPE), attention_bias / mlp_bias (conv
 * biases), o_proj_linear (Llama's o_proj is a `linear`), attn_fp32 (Qwen
 * 2.5: scores, softmax and P.V in fp32), norm_plus_one and four_norms
 * (Gemma's (1+w) gains and post-attention / feed-forward norms, scaled by
 * the FP16 alpha), softmax_op (Gemma: MIL softmax), act; post_norms and
 * qk_norm_full (OLMo 2: norms after the sublayers, q/k norms over the whole
 * projection), NoPE layers (SmolLM3), a partial rotary width (Phi3),
 * fused_proj (Phi3's qkv_proj / gate_up_proj read by rows), Granite's
 * residual_multiplier folded into o_proj and down_proj, and the band mask
 * of sliding layers in the unified cache (graph.c).
 */
#include "convert/graph_internal.h"

#include "base/fp16.h"
#include "base/util.h"
#include "checkpoint/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Checkpoint tensors                                                  */

/* coremltools' name for a module of ANEMLL's wrapper: model_model_<dots as _>. */
static char *weight_name(int layer, const char *suffix)
{
	char *s = layer >= 0 ? xasprintf("model_model_layers_%d_%s", layer, suffix) : xasprintf("model_model_%s", suffix);
	for (char *p = s; *p; p++)
		if (*p == '.')
			*p = '_';
	return s;
}

static const st_tensor *find_tensor(const graph_ctx *g, int layer, const char *suffix)
{
	char *full = layer >= 0 ? xasprintf("%slayers.%d.%s", g->hf->prefix, layer, suffix)
				: xasprintf("%s%s", g->hf->prefix, suffix);
	const st_tensor *t = st_find(&g->hf->st, full);
	free(full);
	return t;
}

static void warn_clamped(const st_tensor *t, size_t clamped)
{
	if (clamped)
		warn("tensor '%s': %zu values beyond fp16 range clamped to +-65504", t->name, clamped);
}

const char *graph_proj_weight(graph_ctx *g, int layer, const char *suffix, int as_conv)
{
	return graph_proj_weight_scaled(g, layer, suffix, as_conv, 1.0);
}

int graph_read_rows_scaled(const st_tensor *t, uint64_t row0, uint64_t rows, double scale, uint16_t *buf,
			    size_t *clamped)
{
	if (scale == 1.0)
		return st_read_rows_fp16(t, row0, rows, buf, clamped);
	size_t n = xmul((size_t)rows, (size_t)t->shape[1]);
	float *f = xmalloc(xmul(n, sizeof *f));
	int rc = st_read_rows_f32(t, row0, rows, f);
	for (size_t i = 0; rc == 0 && i < n; i++)
		f[i] = (float)(f[i] * scale);
	if (rc == 0)
		*clamped += f32_array_to_fp16(f, buf, n);
	free(f);
	return rc;
}

const char *graph_proj_weight_scaled(graph_ctx *g, int layer, const char *suffix, int as_conv, double scale)
{
	uint64_t row0, rows;
	const st_tensor *t = hf_layer_proj(g->hf, layer, suffix, &row0, &rows);
	if (!t)
		return NULL;
	ASSERT(t->rank == 2);
	int check = g->w->check_only; /* the plan: shapes only, no data */
	uint16_t *buf = check ? NULL : xmalloc(xmul(xmul((size_t)rows, (size_t)t->shape[1]), 2));
	size_t clamped = 0;
	const char *v = NULL;
	if (check || graph_read_rows_scaled(t, row0, rows, scale, buf, &clamped) == 0) {
		warn_clamped(t, clamped);
		int64_t shape[4] = {(int64_t)rows, (int64_t)t->shape[1], 1, 1};
		char *name = weight_name(layer, suffix);
		char *source = rows == t->shape[0] ? NULL
			: xasprintf("%s rows %llu-%llu", t->name, (unsigned long long)row0, (unsigned long long)(row0 + rows - 1));
		v = weights_emit(g->w, g->b, name, source ? source : t->name, buf, as_conv ? 4 : 2, shape);
		free(source);
		free(name);
	}
	free(buf);
	return v;
}

const char *graph_vector(graph_ctx *g, int layer, const char *suffix, int plus_one, int *err)
{
	return graph_vector_scaled(g, layer, suffix, plus_one, 1.0, err);
}

const char *graph_vector_scaled(graph_ctx *g, int layer, const char *suffix, int plus_one, double scale, int *err)
{
	*err = 0;
	const st_tensor *t = find_tensor(g, layer, suffix);
	if (!t)
		return NULL;
	size_t n = (size_t)t->numel;
	float *f = xmalloc(xmul(n, sizeof *f));
	uint16_t *h = xmalloc(xmul(n, 2));
	graph_val v = {0};
	*err = st_read_f32(t, f);
	if (*err == 0) {
		/* Gemma's (1 + w) is taken in fp32 and rounded once, as HF does;
		 * the FP16 scaling's alpha * (1 + w) likewise. */
		for (size_t i = 0; plus_one && i < n; i++)
			f[i] += 1.0f;
		for (size_t i = 0; scale != 1.0 && i < n; i++)
			f[i] = (float)(f[i] * scale);
		warn_clamped(t, f32_array_to_fp16(f, h, n));
		char *name = weight_name(layer, suffix);
		int64_t dims[1] = {(int64_t)n};
		*err = graph_fp16_const(g, name, h, 1, dims, &v);
		free(name);
	}
	free(f);
	free(h);
	return *err ? NULL : v.name;
}

/* A 1-D tensor the config calls for (hf_model_open checked it is there). */
static const char *required_vector(graph_ctx *g, int layer, const char *suffix, int plus_one, double scale)
{
	int err;
	const char *v = graph_vector_scaled(g, layer, suffix, plus_one, scale, &err);
	if (!v && !err && layer >= 0)
		errf("tensor '%s' of layer %d not found in '%s'", suffix, layer, g->hf->dir);
	else if (!v && !err)
		errf("tensor '%s' not found in '%s'", suffix, g->hf->dir);
	return v;
}

/* ------------------------------------------------------------------ */
/* Layouts                                                             */

graph_val graph_to_channels(graph_ctx *g, const char *what, graph_val x)
{
	ASSERT(x.rank == 3);
	int64_t s = x.d[1], c = x.d[2];
	int64_t four[4] = {1, c, 1, s};
	if (s == 1)
		return graph_reshape(g, what, x, 4, four);
	static const int perm[3] = {0, 2, 1};
	char buf[64];
	snprintf(buf, sizeof buf, "%s_t", what);
	return graph_reshape(g, what, graph_transpose(g, buf, x, perm), 4, four);
}

graph_val graph_to_sequence(graph_ctx *g, const char *what, graph_val x)
{
	ASSERT(x.rank == 4 && x.d[2] == 1);
	int64_t c = x.d[1], s = x.d[3];
	int64_t seq[3] = {1, s, c}, chan[3] = {1, c, s};
	if (s == 1)
		return graph_reshape(g, what, x, 3, seq);
	static const int perm[3] = {0, 2, 1};
	char buf[64];
	snprintf(buf, sizeof buf, "%s_r", what);
	return graph_transpose(g, what, graph_reshape(g, buf, x, 3, chan), perm);
}

/* Conv output [1,n*d,1,S] as heads [1,n,S,d]. */
static graph_val to_heads(graph_ctx *g, const char *what, graph_val x, int64_t n, int64_t d)
{
	int64_t s = x.d[3];
	int64_t dec[4] = {1, n, 1, d}, pre[4] = {1, n, d, s};
	if (s == 1)
		return graph_reshape(g, what, x, 4, dec);
	static const int perm[4] = {0, 1, 3, 2};
	char buf[64];
	snprintf(buf, sizeof buf, "%s_r", what);
	return graph_transpose(g, what, graph_reshape(g, buf, x, 4, pre), perm);
}

/* ------------------------------------------------------------------ */
/* Norm and RoPE                                                       */

int graph_rms_norm(graph_ctx *g, const char *what, graph_val x, int layer, const char *tensor, graph_val *out)
{
	return graph_rms_norm_scaled(g, what, x, layer, tensor, 1.0, out);
}

int graph_rms_norm_scaled(graph_ctx *g, const char *what, graph_val x, int layer, const char *tensor, double scale,
			  graph_val *out)
{
	char buf[80];
	int64_t n = x.d[x.rank - 1];
	snprintf(buf, sizeof buf, "%s_neg", what);
	graph_val both[2] = {x, graph_scale(g, buf, x, -1.0)};
	snprintf(buf, sizeof buf, "%s_cat", what);
	graph_val cat = graph_concat(g, buf, -1, 2, both);
	/* mean(concat(x, -x)) is 0, so layer_norm divides by sqrt(mean(x^2) + eps). */
	snprintf(buf, sizeof buf, "%s_ln", what);
	graph_val ln = graph_layer_norm(g, buf, cat, g->c->rms_norm_eps);
	snprintf(buf, sizeof buf, "%s_half", what);
	graph_val half = graph_slice_last(g, buf, ln, 0, n);
	const char *gain = required_vector(g, layer, tensor, g->c->arch->norm_plus_one, scale);
	if (!gain)
		return -1;
	*out = graph_binary(g, "mul", what, half, graph_val_make(gain, MIL_FP16, 1, &n));
	return 0;
}

int graph_rope_rows(graph_ctx *g, graph_val positions, int rows, const hf_rope_scaling *rs, double theta,
		    const char *tag, graph_rope *out)
{
	int d = hf_config_rotary_dim(g->c);
	size_t n = xmul((size_t)rows, (size_t)d);
	uint16_t *cos_tab = xmalloc(xmul(n, 2)), *sin_tab = xmalloc(xmul(n, 2));
	int rc = graph_rope_tables_base(rs, theta, d, rows, cos_tab, sin_tab);
	graph_val ct, st;
	int64_t dims[3] = {1, rows, d};
	char b[4][64];
	const char *sfx[4] = {"cos_table", "sin_table", "cos", "sin"};
	for (int i = 0; i < 4; i++)
		snprintf(b[i], sizeof b[i], "%s_%s", tag, sfx[i]);
	if (rc == 0)
		rc = graph_fp16_const(g, b[0], cos_tab, 3, dims, &ct);
	if (rc == 0)
		rc = graph_fp16_const(g, b[1], sin_tab, 3, dims, &st);
	free(cos_tab);
	free(sin_tab);
	if (rc != 0)
		return -1;
	int64_t s = positions.d[0], four[4] = {1, 1, s, d};
	char rows_c[72], rows_s[72], half_c[72], half_s[72];
	snprintf(rows_c, sizeof rows_c, "%s_rows", b[2]);
	snprintf(rows_s, sizeof rows_s, "%s_rows", b[3]);
	snprintf(half_c, sizeof half_c, "%s_half", b[2]);
	snprintf(half_s, sizeof half_s, "%s_half", b[3]);
	graph_val c4 = graph_reshape(g, b[2], graph_gather(g, rows_c, ct, positions, 1), 4, four);
	graph_val s4 = graph_reshape(g, b[3], graph_gather(g, rows_s, st, positions, 1), 4, four);
	/* The tables repeat their first half (rotate-half layout): keep one. */
	out->cos_h = graph_slice_last(g, half_c, c4, 0, d / 2);
	out->sin_h = graph_slice_last(g, half_s, s4, 0, d / 2);
	return 0;
}

/* x [1,n,S,d] rotated: (x1 cos - x2 sin, x2 cos + x1 sin), halves x1, x2
 * of its first r dims (the tables' width: all of d but with Phi3's
 * partial_rotary_factor); the other d - r dims pass through. */
static graph_val rotate(graph_ctx *g, const char *what, graph_val x, const graph_rope *r)
{
	char b[6][64];
	int64_t d = r->cos_h.d[3] * 2;
	if (d < x.d[3]) {
		char in[64], rn[64], pn[64];
		snprintf(in, sizeof in, "%s_in", what);
		snprintf(rn, sizeof rn, "%s_rot", what);
		snprintf(pn, sizeof pn, "%s_pass", what);
		graph_val parts[2] = {rotate(g, rn, graph_slice_last(g, in, x, 0, d), r),
				      graph_slice_last(g, pn, x, d, x.d[3])};
		return graph_concat(g, what, -1, 2, parts);
	}
	const char *sfx[6] = {"x1", "x2", "x1c", "x2s", "x2c", "x1s"};
	for (int i = 0; i < 6; i++)
		snprintf(b[i], sizeof b[i], "%s_%s", what, sfx[i]);
	graph_val x1 = graph_slice_last(g, b[0], x, 0, d / 2), x2 = graph_slice_last(g, b[1], x, d / 2, d);
	graph_val a = graph_binary(g, "mul", b[2], x1, r->cos_h), bs = graph_binary(g, "mul", b[3], x2, r->sin_h);
	graph_val c = graph_binary(g, "mul", b[4], x2, r->cos_h), e = graph_binary(g, "mul", b[5], x1, r->sin_h);
	char lo[64], hi[64];
	snprintf(lo, sizeof lo, "%s_lo", what);
	snprintf(hi, sizeof hi, "%s_hi", what);
	graph_val halves[2] = {graph_binary(g, "sub", lo, a, bs), graph_binary(g, "add", hi, c, e)};
	return graph_concat(g, what, -1, 2, halves);
}

/* ------------------------------------------------------------------ */
/* Attention                                                           */

/* A 1x1-conv projection of xc with the layer's `name` weight (and bias),
 * both times scale. */
static int project(graph_ctx *g, int layer, const char *name, int has_bias, graph_val xc, int64_t cout,
		   double scale, graph_val *out)
{
	char suffix[64];
	snprintf(suffix, sizeof suffix, "%s.weight", name);
	const char *w = graph_proj_weight_scaled(g, layer, suffix, 1, scale);
	if (!w)
		return -1;
	const char *bias = NULL;
	if (has_bias) {
		snprintf(suffix, sizeof suffix, "%s.bias", name);
		if (!(bias = required_vector(g, layer, suffix, 0, scale)))
			return -1;
	}
	const char *dot = strrchr(name, '.');
	*out = graph_conv(g, dot ? dot + 1 : name, xc, w, bias, cout);
	return 0;
}

static graph_val i32x1(graph_ctx *g, int64_t v)
{
	char name[32];
	int32_t x = (int32_t)v;
	int64_t one = 1;
	snprintf(name, sizeof name, "i32x1_%d", x);
	return graph_val_make(graph_shared(g, name, mil_value_i32s(g->a, 1, &x)), MIL_INT32, 1, &one);
}

/* Write update [1,kv,S,d] into cache index idx at slots [current_pos,
 * +S), or, in a ring (kv->rotate), at [current_pos mod len, +S): one
 * slice_update either way, never a copy of the cache (chat.py's blocks
 * start at multiples of S, which divides len, so they never wrap). A ring
 * write of S > 1 rows (prefill_rotate) also returns in *ext the len slots as
 * they were before the write followed by the S new rows, [1,kv,len+S,d]:
 * the keys an exact window needs, as the first rows of the batch still see
 * positions the later rows overwrite. */
static void kv_write(graph_ctx *g, graph_layer_io *io, graph_kv *kv, const char *what, int64_t idx, graph_val update,
		     graph_val *ext)
{
	char bn[64], en[64], wn[64];
	snprintf(bn, sizeof bn, "%s_begin", what);
	snprintf(en, sizeof en, "%s_end", what);
	snprintf(wn, sizeof wn, "%s_write", what);
	int64_t S = update.d[2], kvh = update.d[1], d = update.d[3];
	if (kv->rotate && S > 1) {
		char on[64], xn[64];
		snprintf(on, sizeof on, "%s_window", what);
		snprintf(xn, sizeof xn, "%s_ext", what);
		int64_t ob[4] = {idx, 0, 0, 0}, oe[4] = {idx + 1, kvh, kv->len, d};
		graph_val parts[2] = {graph_slice(g, on, kv->cache, ob, oe), update};
		*ext = graph_concat(g, xn, 2, 2, parts);
	}
	graph_val zero = i32x1(g, 0);
	graph_val b[4] = {i32x1(g, idx), zero, kv->rotate ? kv->ring_begin : io->current_pos, zero};
	graph_val e[4] = {i32x1(g, idx + 1), i32x1(g, kvh), kv->rotate ? kv->ring_end : io->pos_end, i32x1(g, d)};
	graph_val begin = graph_concat(g, bn, 0, 4, b), end = graph_concat(g, en, 0, 4, e);
	graph_val upd = graph_slice_update(g, what, kv->cache, update, begin, end);
	graph_write_state(g, wn, kv->state, upd);
	snprintf(wn, sizeof wn, "%s_cache", what);
	kv->cache = graph_read_state(g, wn, kv->state);
}

/* Keys or values x [1,kv,T,d] in the attention dtype, repeated for GQA: [1,heads,T,d]. */
static graph_val kv_expand(graph_ctx *g, const char *what, graph_val x, int dtype)
{
	const hf_config *c = g->c;
	int64_t nkv = x.d[1], T = x.d[2], d = x.d[3];
	int64_t rep = c->num_attention_heads / nkv;
	char b[64];
	if (dtype != x.dtype) {
		snprintf(b, sizeof b, "%s_fp32", what);
		x = graph_cast(g, b, x, dtype);
	}
	if (rep == 1)
		return x;
	/* Each kv head repeated rep times in a row: query head q uses kv head q / rep. */
	int64_t split[4] = {nkv, 1, T, d}, reps[4] = {1, rep, 1, 1}, heads[4] = {1, nkv * rep, T, d};
	snprintf(b, sizeof b, "%s_split", what);
	x = graph_reshape(g, b, x, 4, split);
	snprintf(b, sizeof b, "%s_tiled", what);
	x = graph_tile(g, b, x, reps);
	return graph_reshape(g, what, x, 4, heads);
}

/* The kv->len attended slots of cache index idx, repeated for GQA: [1,heads,len,d]. */
static graph_val kv_read(graph_ctx *g, const graph_kv *kv, const char *what, int64_t idx, int dtype)
{
	int64_t begin[4] = {idx, 0, 0, 0}, end[4] = {idx + 1, g->c->num_key_value_heads, kv->len, g->c->head_dim};
	char b[64];
	snprintf(b, sizeof b, "%s_all", what);
	return kv_expand(g, what, graph_slice(g, b, kv->cache, begin, end), dtype);
}

/* OLMo 2's q/k norm over the whole projection x [1,n*d,1,S] (channels). */
static int norm_full(graph_ctx *g, const char *what, graph_val x, int layer, const char *tensor, graph_val *out)
{
	char b[64];
	snprintf(b, sizeof b, "%s_seq", what);
	graph_val y = graph_to_sequence(g, b, x);
	snprintf(b, sizeof b, "%s_out", what);
	if (graph_rms_norm(g, what, y, layer, tensor, &y) != 0)
		return -1;
	*out = graph_to_channels(g, b, y);
	return 0;
}

/* q, k, v [1,n,S,d] after norms and RoPE; k and v go to the cache. */
static int attention_inputs(graph_ctx *g, const graph_rope *rope, int layer, graph_val h, graph_val qkv[3])
{
	const hf_config *c = g->c;
	const arch_info *a = c->arch;
	int64_t nh = c->num_attention_heads, kv = c->num_key_value_heads, d = c->head_dim;
	graph_val xn = h, q, k, v;
	if (!a->post_norms && graph_rms_norm(g, "attn_norm", h, layer, "input_layernorm.weight", &xn) != 0)
		return -1;
	graph_val xc = graph_to_channels(g, "attn_in", xn);
	int ab = c->attention_bias;
	if (project(g, layer, "self_attn.q_proj", ab, xc, nh * d, 1.0, &q) != 0 ||
	    project(g, layer, "self_attn.k_proj", ab, xc, kv * d, 1.0, &k) != 0 ||
	    project(g, layer, "self_attn.v_proj", ab, xc, kv * d, 1.0, &v) != 0)
		return -1;
	if (a->qk_norm_full && (norm_full(g, "q_norm", q, layer, "self_attn.q_norm.weight", &q) != 0 ||
				norm_full(g, "k_norm", k, layer, "self_attn.k_norm.weight", &k) != 0))
		return -1;
	q = to_heads(g, "q", q, nh, d);
	k = to_heads(g, "k", k, kv, d);
	qkv[2] = to_heads(g, "v", v, kv, d);
	if (a->qk_norm &&
	    (graph_rms_norm(g, "q_norm", q, layer, "self_attn.q_norm.weight", &q) != 0 ||
	     graph_rms_norm(g, "k_norm", k, layer, "self_attn.k_norm.weight", &k) != 0))
		return -1;
	if (!hf_config_layer_rope(c, layer)) { /* SmolLM3's NoPE layers */
		qkv[0] = q;
		qkv[1] = k;
		return 0;
	}
	qkv[0] = rotate(g, "q_rope", q, rope);
	qkv[1] = rotate(g, "k_rope", k, rope);
	return 0;
}

/* ANEMLL's linear carries an explicit zero bias; one per function serves all layers. */
static const char *zero_bias(graph_ctx *g, int64_t n)
{
	if (g->zero_bias)
		return g->zero_bias;
	uint16_t *zero = xcalloc((size_t)n, 2);
	graph_val z;
	int rc = graph_fp16_const(g, "o_proj_zero_bias", zero, 1, &n, &z);
	free(zero);
	return rc ? NULL : (g->zero_bias = z.name);
}

/* Heads [1,n,S,d] through o_proj back to [1,S,H]. */
static int output_projection(graph_ctx *g, int layer, graph_val o, graph_val *out)
{
	const hf_config *c = g->c;
	int64_t n = o.d[1], s = o.d[2], d = o.d[3], H = c->hidden_size;
	const char *bias = NULL;
	double rm = c->residual_multiplier > 0 ? c->residual_multiplier : 1.0; /* Granite */
	if (c->attention_bias && c->arch->o_bias_with_attention_bias &&
	    !(bias = required_vector(g, layer, "self_attn.o_proj.bias", 0, rm)))
		return -1;
	const char *w = graph_proj_weight_scaled(g, layer, "self_attn.o_proj.weight", !c->arch->o_proj_linear, rm);
	if (!w)
		return -1;
	if (c->arch->o_proj_linear) {
		static const int perm[4] = {0, 2, 1, 3};
		int64_t flat[3] = {1, s, n * d};
		graph_val x = s == 1 ? o : graph_transpose(g, "attn_t", o, perm);
		x = graph_reshape(g, "attn_flat", x, 3, flat);
		if (!bias && !(bias = zero_bias(g, H)))
			return -1;
		*out = graph_linear(g, "o_proj", x, w, bias, H);
		return 0;
	}
	static const int perm[4] = {0, 1, 3, 2};
	int64_t chan[4] = {1, n * d, 1, s};
	graph_val x = s == 1 ? o : graph_transpose(g, "attn_t", o, perm);
	x = graph_reshape(g, "attn_flat", x, 4, chan);
	*out = graph_to_sequence(g, "o_proj_seq", graph_conv(g, "o_proj", x, w, bias, H));
	return 0;
}

/* The layer's cache (Gemma: local or global) and K/V indices in it: K at
 * idx, V at idx + n, n = layers of the cache's type (all layers when unified). */
static graph_kv *layer_cache(graph_ctx *g, graph_layer_io *io, int layer, int64_t *k_idx, int64_t *v_idx)
{
	int local, n;
	int idx = graph_cache_slot(g->c, io->context, layer, &local, &n);
	graph_kv *kv = &io->kv[local ? 1 : 0];
	ASSERT(kv->used);
	*k_idx = idx;
	*v_idx = idx + n;
	return kv;
}

static int attention(graph_ctx *g, graph_layer_io *io, int layer, graph_val h, graph_val *out)
{
	const hf_config *c = g->c;
	int dt = c->arch->attn_fp32 ? MIL_FP32 : MIL_FP16;
	int64_t ki, vi;
	graph_kv *kv = layer_cache(g, io, layer, &ki, &vi);
	graph_val qkv[3];
	if (attention_inputs(g, &kv->rope, layer, h, qkv) != 0)
		return -1;
	graph_val kx = {0}, vx = {0};
	kv_write(g, io, kv, "k_store", ki, qkv[1], &kx);
	kv_write(g, io, kv, "v_store", vi, qkv[2], &vx);
	/* prefill_rotate attends over the old window plus the batch (kv_write) */
	graph_val K = kx.name ? kv_expand(g, "k_cache", kx, dt) : kv_read(g, kv, "k_cache", ki, dt);
	graph_val V = vx.name ? kv_expand(g, "v_cache", vx, dt) : kv_read(g, kv, "v_cache", vi, dt);
	graph_val q = dt == MIL_FP32 ? graph_cast(g, "q_fp32", qkv[0], dt) : qkv[0];
	graph_val s = graph_matmul(g, "scores", q, K, 1);
	s = graph_scale(g, "scores_scaled", s, c->attn_scale > 0 ? c->attn_scale : 1.0 / sqrt(c->query_pre_attn_scalar));
	int band = kv->has_band && hf_config_layer_sliding(c, layer);
	s = graph_binary(g, "add", "scores_masked", s, band ? kv->band : kv->mask);
	graph_val p = c->arch->softmax_op ? graph_softmax_op(g, "probs", s) : graph_softmax(g, "probs", s);
	graph_val o = graph_matmul(g, "attn", p, V, 0);
	if (dt == MIL_FP32)
		o = graph_cast(g, "attn_fp16", o, MIL_FP16);
	graph_val y;
	if (output_projection(g, layer, o, &y) != 0)
		return -1;
	if ((c->arch->four_norms || c->arch->post_norms) &&
	    graph_rms_norm_scaled(g, "attn_post_norm", y, layer, "post_attention_layernorm.weight", io->post_norm_scale,
				  &y) != 0)
		return -1;
	*out = y;
	return 0;
}

/* ------------------------------------------------------------------ */
/* MLP and the layer                                                   */

static int mlp(graph_ctx *g, const graph_layer_io *io, int layer, graph_val h, graph_val *out)
{
	const hf_config *c = g->c;
	const arch_info *a = c->arch;
	int64_t I = c->intermediate_size, H = c->hidden_size;
	int mb = c->mlp_bias;
	graph_val xn = h, gate, up, down;
	const char *norm = a->four_norms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight";
	if (!a->post_norms && graph_rms_norm(g, "mlp_norm", h, layer, norm, &xn) != 0)
		return -1;
	graph_val xc = graph_to_channels(g, "mlp_in", xn);
	if (project(g, layer, "mlp.gate_proj", mb, xc, I, 1.0, &gate) != 0 ||
	    project(g, layer, "mlp.up_proj", mb, xc, I, 1.0, &up) != 0)
		return -1;
	graph_val act = a->act == ACT_GELU_TANH ? graph_gelu_tanh(g, "gate_act", gate) : graph_unary(g, "silu", "gate_act", gate);
	graph_val prod = graph_binary(g, "mul", "gated", act, up);
	double rm = c->residual_multiplier > 0 ? c->residual_multiplier : 1.0; /* Granite */
	if (project(g, layer, "mlp.down_proj", mb, prod, H, rm, &down) != 0)
		return -1;
	graph_val y = graph_to_sequence(g, "mlp_out", down);
	if ((a->four_norms || a->post_norms) &&
	    graph_rms_norm_scaled(g, "mlp_post_norm", y, layer, "post_feedforward_layernorm.weight", io->post_norm_scale,
				  &y) != 0)
		return -1;
	*out = y;
	return 0;
}

/* A residual add, clipped to [-clamp, clamp] when --clamp asks (FP16 safety). */
static graph_val residual(graph_ctx *g, const graph_layer_io *io, const char *what, graph_val x, graph_val y)
{
	if (!(io->clamp > 0))
		return graph_binary(g, "add", what, x, y);
	char buf[64];
	snprintf(buf, sizeof buf, "%s_sum", what);
	return graph_clip(g, what, graph_binary(g, "add", buf, x, y), io->clamp);
}

int graph_layer(graph_ctx *g, graph_layer_io *io, int layer, graph_val h, graph_val *out)
{
	graph_val attn, y;
	if (attention(g, io, layer, h, &attn) != 0)
		return -1;
	graph_val h1 = residual(g, io, "attn_residual", h, attn);
	if (io->skip_mlp) {
		*out = h1;
		return 0;
	}
	if (mlp(g, io, layer, h1, &y) != 0)
		return -1;
	*out = residual(g, io, "out", h1, y);
	return 0;
}
