/* graph.c: chunks of decoder layers and the LM head as ANEMLL parts.
 *
 * Puts the layer pieces of graph_layer.c together into whole functions
 * (inputs, RoPE rows, the KV state, N layers, the chunk's output), builds
 * the split LM head, and writes either as a single-function .mlpackage with
 * ANEMLL's metadata (graph.h has the interface). Also the pure arithmetic
 * every part agrees on: the chunk split, the LM-head split and the RoPE
 * tables.
 *
 * Sizes: a chunk's weight.bin is the sum of its layers' weights (fp16, or
 * bits/16 of that palettized) plus two RoPE tables of C x head_dim fp16; the
 * LM head's is vocab x hidden. Memory while building: one tensor at a time.
 */
#include "graph.h"
#include "graph_internal.h"

#include "anemll.h"
#include "fp16.h"
#include "mlpackage.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Arithmetic                                                          */

void graph_chunk_layers(int n_layers, int n_chunks, int chunk, int *first, int *count)
{
	ASSERT(n_chunks >= 1 && n_chunks <= n_layers && chunk >= 0 && chunk < n_chunks);
	int base = n_layers / n_chunks, rem = n_layers % n_chunks;
	*first = chunk * base + (chunk < rem ? chunk : rem);
	*count = base + (chunk < rem);
}

void graph_lm_head_sizes(int vocab, int splits, int *sizes)
{
	ASSERT(splits >= 1 && vocab >= splits);
	for (int k = 0; k < splits; k++)
		sizes[k] = vocab / splits + (k < vocab % splits);
}

/* HF's _compute_llama3_parameters: keep high frequencies, divide low ones
 * by factor, interpolate smoothly in the band between. */
static void llama3_bands(const hf_rope_scaling *rs, int half, double *inv)
{
	double old = rs->original_max_position_embeddings, lo = rs->low_freq_factor, hi = rs->high_freq_factor;
	double low_freq_wavelen = old / lo, high_freq_wavelen = old / hi;
	for (int i = 0; i < half; i++) {
		double wavelen = 2 * M_PI / inv[i];
		if (wavelen < high_freq_wavelen)
			continue;
		if (wavelen > low_freq_wavelen) {
			inv[i] /= rs->factor;
			continue;
		}
		double smooth = (old / wavelen - lo) / (hi - lo);
		inv[i] = (1 - smooth) * inv[i] / rs->factor + smooth * inv[i];
	}
}

int graph_rope_inv_freq(const hf_rope_scaling *rs, double theta, int head_dim, double *inv_freq)
{
	if (head_dim < 2 || head_dim % 2)
		return errf("head_dim %d: RoPE needs an even head dimension", head_dim);
	int half = head_dim / 2;
	for (int i = 0; i < half; i++)
		inv_freq[i] = 1.0 / pow(theta, 2.0 * i / head_dim);
	switch (rs ? rs->kind : ROPE_NONE) {
	case ROPE_NONE:
		return 0;
	case ROPE_LINEAR: /* positions / factor, i.e. every frequency / factor */
		for (int i = 0; i < half; i++)
			inv_freq[i] /= rs->factor;
		return 0;
	case ROPE_LLAMA3:
		llama3_bands(rs, half, inv_freq);
		return 0;
	default:
		return errf("rope_scaling type '%s' is not supported (supported: default, linear, llama3)",
			    rs->type ? rs->type : "?");
	}
}

/* x rounded to the nearest fp16 (one rounding: going through float could
 * round twice). Table values lie in [-1, 1], far from overflow. */
static uint16_t fp16_nearest(double x)
{
	uint16_t h = f32_to_fp16((float)x, NULL), best = h;
	double err = fabs(fp16_to_f32(h) - x);
	for (int step = -1; step <= 1; step += 2) {
		uint16_t n = (uint16_t)(h + step);
		if (((n ^ h) & 0x8000) || (n & 0x7fff) >= 0x7c00)
			continue; /* across zero or into inf/NaN */
		double e = fabs(fp16_to_f32(n) - x);
		if (e < err || (e == err && !(n & 1)))
			best = n, err = e;
	}
	return best;
}

int graph_rope_tables(const hf_config *c, int rows, uint16_t *cos_tab, uint16_t *sin_tab)
{
	int d = c->head_dim, half = d / 2;
	double *inv = xmalloc(xmul((size_t)(half > 0 ? half : 1), sizeof *inv));
	if (graph_rope_inv_freq(&c->rope_scaling, c->rope_theta, d, inv) != 0) {
		char *msg = xstrdup(errmsg());
		errf("%s: %s", c->path ? c->path : "config", msg);
		free(msg);
		free(inv);
		return -1;
	}
	for (int p = 0; p < rows; p++)
		for (int j = 0; j < half; j++) {
			double a = p * inv[j];
			size_t at = (size_t)p * (size_t)d + (size_t)j;
			cos_tab[at] = cos_tab[at + (size_t)half] = fp16_nearest(cos(a));
			sin_tab[at] = sin_tab[at + (size_t)half] = fp16_nearest(sin(a));
		}
	free(inv);
	return 0;
}

int graph_check_model(const hf_config *c, int context)
{
	const char *cfg = c->path ? c->path : "config";
	if (c->arch->id == ARCH_GEMMA3)
		return errf("%s: %s models are not supported by the transformer stages yet (sliding-window caches)",
			    cfg, c->arch->name);
	if (c->rope_scaling.kind == ROPE_OTHER)
		return errf("%s: rope_scaling type '%s' is not supported (supported: default, linear, llama3)", cfg,
			    c->rope_scaling.type ? c->rope_scaling.type : "?");
	if (c->head_dim < 2 || c->head_dim % 2)
		return errf("%s: head_dim %d must be even for RoPE", cfg, c->head_dim);
	if (c->num_key_value_heads < 1 || c->num_attention_heads % c->num_key_value_heads)
		return errf("%s: %d attention heads are not a multiple of %d key/value heads", cfg,
			    c->num_attention_heads, c->num_key_value_heads);
	/* A window at least as long as the context never hides anything. */
	if (c->use_sliding_window && c->sliding_window > 0 && c->sliding_window < context)
		return errf("%s: sliding-window attention (window %d < context %d) is not supported", cfg,
			    c->sliding_window, context);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Chunks                                                              */

typedef struct chunk_io {
	graph_val hidden, position_ids, mask, current_pos, state;
} chunk_io;

/* What the runtimes see: description features (top level, or fd). */
static void describe_chunk(ml_model *m, ml_function_desc *fd, const hf_config *c, int S, int S_out, int C)
{
	int64_t H = c->hidden_size;
	int64_t hid[3] = {1, S, H}, pos[1] = {S}, mask[4] = {1, 1, S, C}, cur[1] = {1}, out[3] = {1, S_out, H};
	int64_t kv[4] = {2 * (int64_t)c->num_hidden_layers, c->num_key_value_heads, C, c->head_dim};
	ml_model_add_input(m, fd, "hidden_states", ARRAY_FLOAT16, 3, hid);
	ml_model_add_input(m, fd, "position_ids", ARRAY_INT32, 1, pos);
	ml_model_add_input(m, fd, "causal_mask", ARRAY_FLOAT16, 4, mask);
	ml_model_add_input(m, fd, "current_pos", ARRAY_INT32, 1, cur);
	ml_model_add_output(m, fd, "output_hidden_states", ARRAY_FLOAT16, 3, out);
	ml_model_add_state(m, fd, GRAPH_KV_STATE, ARRAY_FLOAT16, 4, kv);
}

static graph_val add_input(mil_function *fn, const char *name, int dtype, int rank, const int64_t *dims, int state)
{
	mil_type *t = mil_type_tensor(fn->arena, (mil_dtype)dtype, (size_t)rank, dims);
	mil_function_add_input(fn, name, state ? mil_type_state(fn->arena, t) : t);
	return graph_val_make(mil_strdup(fn->arena, name), dtype, rank, dims);
}

static chunk_io chunk_inputs(mil_function *fn, const hf_config *c, int S, int C)
{
	int64_t H = c->hidden_size;
	int64_t hid[3] = {1, S, H}, pos[1] = {S}, mask[4] = {1, 1, S, C}, cur[1] = {1};
	int64_t kv[4] = {2 * (int64_t)c->num_hidden_layers, c->num_key_value_heads, C, c->head_dim};
	chunk_io in;
	in.hidden = add_input(fn, "hidden_states", MIL_FP16, 3, hid, 0);
	in.position_ids = add_input(fn, "position_ids", MIL_INT32, 1, pos, 0);
	in.mask = add_input(fn, "causal_mask", MIL_FP16, 4, mask, 0);
	in.current_pos = add_input(fn, "current_pos", MIL_INT32, 1, cur, 0);
	in.state = add_input(fn, GRAPH_KV_STATE, MIL_FP16, 4, kv, 1);
	return in;
}

/* Function-level values every layer shares: RoPE rows, the end of the KV
 * write window, the mask in the attention dtype, the first cache read. */
static int chunk_prologue(graph_ctx *g, const chunk_io *in, const graph_chunk_opts *o, int S, graph_layer_io *io)
{
	int decode = o->mode == GRAPH_DECODE;
	*io = (graph_layer_io){.mode = o->mode, .seq = S, .context = o->context, .current_pos = in->current_pos,
			       .state = in->state};
	/* Decode takes its RoPE row at current_pos, as ANEMLL; position_ids is
	 * declared but unused there, and kept alive as ANEMLL's graph does. */
	if (graph_rope_rows(g, decode ? in->current_pos : in->position_ids, o->context, &io->rope) != 0)
		return -1;
	if (decode)
		graph_identity(g, "position_ids_unused", in->position_ids);
	int32_t s = S;
	int64_t one = 1;
	graph_val sv = graph_val_make(graph_const(g, "seq_length", mil_value_i32s(g->a, 1, &s)), MIL_INT32, 1, &one);
	io->pos_end = graph_binary(g, "add", "pos_end", in->current_pos, sv);
	io->mask = g->c->arch->attn_fp32 ? graph_cast(g, "causal_mask_fp32", in->mask, MIL_FP32) : in->mask;
	io->cache = graph_read_state(g, "kv_cache", in->state);
	return 0;
}

/* The chunk's output: final norm (last chunk, decode), first position
 * (last chunk, prefill: runtimes ignore it), else the hidden states. */
static int chunk_epilogue(graph_ctx *g, const graph_chunk_opts *o, graph_val h)
{
	const char *out = "output_hidden_states";
	graph_scope(g, "%s", "");
	if (o->chunk == o->nchunks && o->mode == GRAPH_DECODE) {
		if (graph_rms_norm(g, out, h, -1, "norm.weight", &h) != 0)
			return -1;
	} else if (o->chunk == o->nchunks) {
		int64_t begin[3] = {0, 0, 0}, end[3] = {1, 1, h.d[2]};
		h = graph_slice(g, out, h, begin, end);
	} else {
		h = graph_rename_last(g, h, out);
	}
	mil_block_add_output(g->b, h.name);
	return 0;
}

static int chunk_body(graph_ctx *g, const chunk_io *in, const graph_chunk_opts *o, int S, int first, int count)
{
	graph_layer_io io;
	if (chunk_prologue(g, in, o, S, &io) != 0)
		return -1;
	graph_val h = in->hidden;
	int last_layer = g->c->num_hidden_layers - 1;
	for (int l = first; l < first + count; l++) {
		graph_scope(g, "layers_%d_", l);
		/* ANEMLL's Llama prefill skips the very last MLP: its output is unused. */
		io.skip_mlp = o->mode == GRAPH_PREFILL && l == last_layer;
		if (graph_layer(g, &io, l, h, &h) != 0)
			return -1;
	}
	return chunk_epilogue(g, o, h);
}

int graph_build_chunk(ml_model *m, weights_ctx *w, const hf_model *hf, const graph_chunk_opts *o)
{
	const hf_config *c = &hf->cfg;
	int L = c->num_hidden_layers;
	if (graph_check_model(c, o->context) != 0)
		return -1;
	if (o->nchunks < 1 || o->nchunks > L)
		return errf("%d chunks requested, but the model has %d layers", o->nchunks, L);
	ASSERT(o->chunk >= 1 && o->chunk <= o->nchunks && o->context >= 1);
	int S = o->mode == GRAPH_DECODE ? 1 : o->batch;
	if (S < 1 || S > o->context)
		return errf("batch size %d must be between 1 and the context length %d", S, o->context);
	int first, count;
	graph_chunk_layers(L, o->nchunks, o->chunk - 1, &first, &count);
	int S_out = o->mode == GRAPH_PREFILL && o->chunk == o->nchunks ? 1 : S;
	ml_function_desc *fd = o->function ? ml_model_add_function(m, o->function) : NULL;
	describe_chunk(m, fd, c, S, S_out, o->context);
	mil_function *fn = mil_program_add_function(ml_model_program(m), o->function ? o->function : "main",
						    MIL_OPSET_IOS18);
	chunk_io in = chunk_inputs(fn, c, S, o->context);
	graph_ctx g;
	graph_ctx_init(&g, mil_function_block(fn), w, hf);
	int rc = chunk_body(&g, &in, o, S, first, count);
	graph_ctx_release(&g);
	return rc;
}

/* ------------------------------------------------------------------ */
/* LM head                                                             */

/* Head k (1-based): rows [row0, row0 + n) of the head matrix as a 1x1 conv,
 * reshaped to logits<k> [1,1,n]. */
static int head_split(graph_ctx *g, graph_val x, int k, int64_t row0, int64_t n, graph_val *out)
{
	const st_tensor *t = g->hf->lm_head;
	int64_t H = g->c->hidden_size;
	uint16_t *buf = xmalloc(xmul(xmul((size_t)n, (size_t)H), 2));
	size_t clamped = 0;
	int rc = st_read_rows_fp16(t, (uint64_t)row0, (uint64_t)n, buf, &clamped);
	const char *w = NULL;
	if (rc == 0) {
		if (clamped)
			warn("tensor '%s': %zu values beyond fp16 range clamped to +-65504", t->name, clamped);
		char name[48];
		int64_t shape[4] = {n, H, 1, 1};
		snprintf(name, sizeof name, "lm_head_weight_%d", k);
		w = graph_emit_weight(g, name, buf, 4, shape);
	}
	free(buf);
	if (!w)
		return -1;
	char cname[32], lname[32];
	snprintf(cname, sizeof cname, "lm_head_conv_%d", k);
	snprintf(lname, sizeof lname, "logits%d", k);
	int64_t dims[3] = {1, 1, n};
	*out = graph_reshape(g, lname, graph_conv(g, cname, x, w, NULL, n), 3, dims);
	return 0;
}

/* argmax_idx int32 [K] (index inside each head) and argmax_val fp16 [K]. */
static void head_argmax(graph_ctx *g, const graph_val *logits, int K)
{
	graph_val *idx = xmalloc(xmul((size_t)K, sizeof *idx)), *val = xmalloc(xmul((size_t)K, sizeof *val));
	char name[48];
	for (int k = 0; k < K; k++) {
		snprintf(name, sizeof name, "argmax_idx_%d", k + 1);
		idx[k] = graph_argmax_last(g, name, logits[k]);
		snprintf(name, sizeof name, "argmax_val_%d", k + 1);
		val[k] = graph_gather_along_last(g, name, logits[k], idx[k]);
	}
	int64_t kk[1] = {K};
	graph_val i = graph_reshape(g, "argmax_idx", graph_concat(g, "argmax_idx_all", -1, K, idx), 1, kk);
	graph_val v = graph_reshape(g, "argmax_val", graph_concat(g, "argmax_val_all", -1, K, val), 1, kk);
	mil_block_add_output(g->b, i.name);
	mil_block_add_output(g->b, v.name);
	free(idx);
	free(val);
}

static void describe_lm_head(ml_model *m, const hf_config *c, const int *sizes, int K, int argmax)
{
	int64_t hid[3] = {1, 1, c->hidden_size}, kk[1] = {K};
	ml_model_add_input(m, NULL, "hidden_states", ARRAY_FLOAT16, 3, hid);
	if (argmax) {
		ml_model_add_output(m, NULL, "argmax_idx", ARRAY_INT32, 1, kk);
		ml_model_add_output(m, NULL, "argmax_val", ARRAY_FLOAT16, 1, kk);
		return;
	}
	for (int k = 0; k < K; k++) {
		char name[32];
		int64_t dims[3] = {1, 1, sizes[k]};
		snprintf(name, sizeof name, "logits%d", k + 1);
		ml_model_add_output(m, NULL, name, ARRAY_FLOAT16, 3, dims);
	}
}

int graph_build_lm_head(ml_model *m, weights_ctx *w, const hf_model *hf, int argmax)
{
	const hf_config *c = &hf->cfg;
	int K = c->arch->lm_head_splits, V = c->vocab_size;
	if (V < K)
		return errf("vocab_size %d is smaller than the %d LM-head splits", V, K);
	int *sizes = xmalloc(xmul((size_t)K, sizeof *sizes));
	graph_lm_head_sizes(V, K, sizes);
	describe_lm_head(m, c, sizes, K, argmax);
	mil_function *fn = mil_program_add_function(ml_model_program(m), "main", MIL_OPSET_IOS18);
	int64_t hid[3] = {1, 1, c->hidden_size}, chan[4] = {1, c->hidden_size, 1, 1};
	graph_val in = add_input(fn, "hidden_states", MIL_FP16, 3, hid, 0);
	graph_ctx g;
	graph_ctx_init(&g, mil_function_block(fn), w, hf);
	graph_val x = graph_reshape(&g, "lm_head_in", in, 4, chan);
	graph_val *logits = xmalloc(xmul((size_t)K, sizeof *logits));
	int rc = 0;
	for (int k = 0, row = 0; rc == 0 && k < K; row += sizes[k++])
		rc = head_split(&g, x, k + 1, row, sizes[k], &logits[k]);
	if (rc == 0 && argmax)
		head_argmax(&g, logits, K);
	for (int k = 0; rc == 0 && !argmax && k < K; k++)
		mil_block_add_output(g.b, logits[k].name);
	graph_ctx_release(&g);
	free(logits);
	free(sizes);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Packages                                                            */

int graph_write_package(const char *path, graph_build_fn build, const void *ctx, const anemll_meta *meta,
			graph_write_opts *wo)
{
	mlpackage_writer pw;
	if (mlpackage_begin(&pw, path) != 0)
		return -1;
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	weights_ctx w;
	weights_init(&w, pw.weights, &wo->lut, wo->threads);
	w.cache_dir = wo->cache_dir;
	int rc = build(m, &w, ctx);
	if (rc == 0) {
		anemll_set_metadata(m, meta);
		pb_buf bytes;
		pb_init(&bytes);
		ml_model_encode(m, &bytes);
		rc = mlpackage_commit(&pw, bytes.data, bytes.len);
		pb_release(&bytes);
	} else {
		char *msg = xstrdup(errmsg()); /* abort may overwrite the recorded error */
		mlpackage_abort(&pw);
		errf("%s", msg);
		free(msg);
	}
	if (rc == 0 && wo->quality_path)
		rc = weights_write_quality(&w, wo->quality_path);
	weights_summary(&w, wo->summary, sizeof wo->summary);
	weights_release(&w);
	ml_model_free(m);
	return rc;
}

typedef struct package_job {
	const hf_model *hf;
	const graph_chunk_opts *chunk; /* NULL: the LM head */
	int argmax;
} package_job;

static int build_part(ml_model *m, weights_ctx *w, const void *ctx)
{
	const package_job *j = ctx;
	return j->chunk ? graph_build_chunk(m, w, j->hf, j->chunk) : graph_build_lm_head(m, w, j->hf, j->argmax);
}

int graph_write_chunk(const char *path, const hf_model *hf, const graph_chunk_opts *o, graph_write_opts *wo)
{
	int prefill = o->mode == GRAPH_PREFILL;
	package_job j = {.hf = hf, .chunk = o};
	anemll_meta meta = {.part_title = prefill ? "Prefill" : "FFN", .context_length = o->context,
			    .batch_size = prefill ? o->batch : 0, .num_chunks = o->nchunks,
			    .chunk_no = o->chunk, .lut_bits = wo->lut.bits};
	return graph_write_package(path, build_part, &j, &meta, wo);
}

int graph_write_lm_head(const char *path, const hf_model *hf, int context, int argmax, graph_write_opts *wo)
{
	const hf_config *c = &hf->cfg;
	int K = c->arch->lm_head_splits;
	if (c->vocab_size < K)
		return errf("vocab_size %d is smaller than the %d LM-head splits", c->vocab_size, K);
	int *sizes = xmalloc(xmul((size_t)K, sizeof *sizes));
	graph_lm_head_sizes(c->vocab_size, K, sizes);
	package_job j = {.hf = hf, .argmax = argmax};
	anemll_meta meta = {.part_title = "LM Head", .context_length = context, .lut_bits = wo->lut.bits,
			    .argmax_in_model = argmax, .vocab_size = c->vocab_size,
			    .lm_head_chunk_sizes = sizes, .n_lm_head_chunks = K};
	int rc = graph_write_package(path, build_part, &j, &meta, wo);
	free(sizes);
	return rc;
}
