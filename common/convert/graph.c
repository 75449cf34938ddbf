/* graph.c: chunks of decoder layers and the LM head as ANEMLL parts.
 *
 * Puts the layer pieces of graph_layer.c together into whole functions
 * (inputs, RoPE rows, the KV state(s), N layers, the chunk's output), builds
 * the split LM head and the monolithic model, and writes each as a
 * single-function .mlpackage with ANEMLL's metadata (graph.h has the
 * interface). Also the pure arithmetic
 * every part agrees on: the chunk split, the LM-head split and the RoPE
 * tables.
 *
 * Sizes: a chunk's weight.bin is the sum of its layers' weights (fp16, or
 * bits/16 of that palettized) plus two RoPE tables of C x head_dim fp16; the
 * LM head's is vocab x hidden. Memory while building: one tensor at a time.
 */
#include "convert/graph.h"
#include "convert/graph_internal.h"

#include "anemll/anemll.h"
#include "base/calstats.h"
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/progress.h"
#include "base/util.h"
#include "coreml/blob.h"
#include "coreml/mlpackage.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Chunks                                                              */

enum { KV_GLOBAL = 0, KV_LOCAL = 1 }; /* graph_layer_io.kv[]: the unified cache is KV_GLOBAL */

typedef struct chunk_io {
	graph_val hidden, position_ids, mask, current_pos;
	graph_val state[2]; /* [KV_LOCAL] only with a local cache */
	int n_states;
} chunk_io;

/* A chunk's states: names, shapes and kinds (KV_LOCAL / KV_GLOBAL, the
 * unified cache counting as global). With a local cache (graph_local_cache)
 * ANEMLL's order, local first, then global; Gemma 3 declares both, the
 * other ring families the ones their layers use (Mistral, Phi3: every layer
 * slides, so the local cache alone, which chat.py calls 'local_only'). */
static int chunk_states(const hf_config *c, int C, const char **names, int64_t kv[2][4], int *kinds)
{
	int64_t kvh = c->num_key_value_heads, d = c->head_dim;
	if (!graph_local_cache(c, C)) {
		names[0] = GRAPH_KV_STATE;
		kinds[0] = KV_GLOBAL;
		int64_t u[4] = {2 * (int64_t)c->num_hidden_layers, kvh, C, d};
		memcpy(kv[0], u, sizeof u);
		return 1;
	}
	int n_local = 0, n_global = 0, n = 0;
	for (int l = 0; l < c->num_hidden_layers; l++)
		hf_config_layer_sliding(c, l) ? n_local++ : n_global++;
	int64_t lo[4] = {2 * (int64_t)n_local, kvh, graph_local_len(c, C), d}, gl[4] = {2 * (int64_t)n_global, kvh, C, d};
	if (n_local || c->arch->split_kv_cache) {
		names[n] = GRAPH_KV_LOCAL, kinds[n] = KV_LOCAL;
		memcpy(kv[n++], lo, sizeof lo);
	}
	if (n_global || c->arch->split_kv_cache) {
		names[n] = GRAPH_KV_GLOBAL, kinds[n] = KV_GLOBAL;
		memcpy(kv[n++], gl, sizeof gl);
	}
	return n;
}

/* What the runtimes see: description features (top level, or fd). The
 * monolithic parts declare their own inputs and outputs, then the states. */
static void describe_states(ml_model *m, ml_function_desc *fd, const hf_config *c, int C)
{
	const char *names[2];
	int64_t kv[2][4];
	int kinds[2];
	int n = chunk_states(c, C, names, kv, kinds);
	for (int i = 0; i < n; i++)
		ml_model_add_state(m, fd, names[i], ARRAY_FLOAT16, 4, kv[i]);
}

static void describe_chunk(ml_model *m, ml_function_desc *fd, const hf_config *c, int S, int S_out, int C)
{
	int64_t H = c->hidden_size;
	int64_t hid[3] = {1, S, H}, pos[1] = {S}, mask[4] = {1, 1, S, C}, cur[1] = {1}, out[3] = {1, S_out, H};
	ml_model_add_input(m, fd, "hidden_states", ARRAY_FLOAT16, 3, hid);
	ml_model_add_input(m, fd, "position_ids", ARRAY_INT32, 1, pos);
	ml_model_add_input(m, fd, "causal_mask", ARRAY_FLOAT16, 4, mask);
	ml_model_add_input(m, fd, "current_pos", ARRAY_INT32, 1, cur);
	ml_model_add_output(m, fd, "output_hidden_states", ARRAY_FLOAT16, 3, out);
	describe_states(m, fd, c, C);
}

static graph_val add_input(mil_function *fn, const char *name, int dtype, int rank, const int64_t *dims, int state)
{
	mil_type *t = mil_type_tensor(fn->arena, (mil_dtype)dtype, (size_t)rank, dims);
	mil_function_add_input(fn, name, state ? mil_type_state(fn->arena, t) : t);
	return graph_val_make(mil_strdup(fn->arena, name), dtype, rank, dims);
}

/* position_ids, causal_mask, current_pos and the states (after the first input). */
static void chunk_inputs_rest(mil_function *fn, const hf_config *c, int S, int C, chunk_io *in)
{
	int64_t pos[1] = {S}, mask[4] = {1, 1, S, C}, cur[1] = {1};
	in->position_ids = add_input(fn, "position_ids", MIL_INT32, 1, pos, 0);
	in->mask = add_input(fn, "causal_mask", MIL_FP16, 4, mask, 0);
	in->current_pos = add_input(fn, "current_pos", MIL_INT32, 1, cur, 0);
	const char *names[2];
	int64_t kv[2][4];
	int kinds[2];
	int n = chunk_states(c, C, names, kv, kinds);
	for (int i = 0; i < n; i++)
		in->state[kinds[i]] = add_input(fn, names[i], MIL_FP16, 4, kv[i], 1);
	in->n_states = n;
}

static chunk_io chunk_inputs(mil_function *fn, const hf_config *c, int S, int C)
{
	int64_t hid[3] = {1, S, c->hidden_size};
	chunk_io in = {0};
	in.hidden = add_input(fn, "hidden_states", MIL_FP16, 3, hid, 0);
	chunk_inputs_rest(fn, c, S, C, &in);
	return in;
}

/* W, the ring's length, as an int32 scalar const (once per function). */
static graph_val window_len(graph_ctx *g, const graph_kv *kv)
{
	return graph_val_make(graph_shared(g, "local_window", mil_value_i32(g->a, (int32_t)kv->len)), MIL_INT32, 0, NULL);
}

/* The ring slots a rotate function writes: [p mod W, p mod W + S) for
 * p = current_pos (kv->ring_begin, kv->ring_end). p >= 0, so floor and
 * truncating mod agree. */
static void ring_slots(graph_ctx *g, const chunk_io *in, int S, graph_kv *kv)
{
	int32_t s = S;
	int64_t one = 1;
	graph_val wv = window_len(g, kv);
	graph_val sv = graph_i32_const(g, "local_ring_rows", &s, 1, &one);
	kv->ring_begin = graph_binary(g, "mod", "local_ring_begin", in->current_pos, wv);
	kv->ring_end = graph_binary(g, "add", "local_ring_end", kv->ring_begin, sv);
}

/* The causal [1,1,B,B] part of prefill_rotate's mask: row i sees new row j <= i. */
static int batch_mask(graph_ctx *g, int B, graph_val *out)
{
	uint16_t *m = xmalloc(xmul(xmul((size_t)B, (size_t)B), 2));
	for (int i = 0; i < B; i++)
		for (int j = 0; j < B; j++)
			m[(size_t)i * (size_t)B + (size_t)j] = j <= i ? 0 : 0xfc00; /* -inf */
	int64_t dims[4] = {1, 1, B, B};
	int rc = graph_fp16_const(g, "local_batch_mask", m, 4, dims, out);
	free(m);
	return rc;
}

/* An additive mask [1,1,S,W] from a bool vis of that shape: 0 where
 * visible, -inf (as chat.py's causal mask) elsewhere. select's a and b
 * broadcast to its output by themselves (0 per row, -inf per slot), as
 * coremltools infers select's shape from a and b alone. Consts
 * <tag>_shown / <tag>_hidden, the select <tag>_mask. */
static int visible_mask(graph_ctx *g, const char *tag, graph_val vis, int S, int W, graph_val *out)
{
	int64_t slots[4] = {1, 1, 1, W}, rows[4] = {1, 1, S, 1};
	uint16_t *zeros = xcalloc((size_t)S, sizeof *zeros), *ninfs = xmalloc(xmul((size_t)W, sizeof *ninfs));
	for (int s = 0; s < W; s++)
		ninfs[s] = 0xfc00;
	char n[3][48];
	snprintf(n[0], sizeof n[0], "%s_shown", tag);
	snprintf(n[1], sizeof n[1], "%s_hidden", tag);
	snprintf(n[2], sizeof n[2], "%s_mask", tag);
	graph_val zero, ninf;
	int rc = graph_fp16_const(g, n[0], zeros, 4, rows, &zero);
	if (rc == 0)
		rc = graph_fp16_const(g, n[1], ninfs, 4, slots, &ninf);
	free(zeros), free(ninfs);
	if (rc == 0)
		*out = graph_select(g, n[2], vis, zero, ninf);
	return rc;
}

/* prefill_rotate's local mask [1,1,B,W+B] over the keys its local layers
 * attend: the W ring slots as they were before this call, then the B new
 * rows (positions p..p+B-1, p = current_pos >= W). Before the call slot s
 * holds position p - W + a(s), a(s) = (s - p) mod W, so row i (position
 * p+i) sees old slot s iff a(s) >= i + 1 (the positions (p+i-W, p)) and new
 * row j iff j <= i: W keys, exactly HF's window. The old part depends on p,
 * so it is computed here from current_pos (int32 mod, greater_equal,
 * select); the new part is a constant causal [B,B]. a(s) is taken as
 * (s + W - p mod W) mod W to keep every operand of mod non-negative. */
static int ring_window_mask(graph_ctx *g, const graph_kv *kv, int B, int dtype, graph_val *out)
{
	int W = (int)kv->len;
	int32_t *iota = xmalloc(xmul((size_t)W, sizeof *iota)), *need = xmalloc(xmul((size_t)B, sizeof *need));
	for (int s = 0; s < W; s++)
		iota[s] = s;
	for (int i = 0; i < B; i++)
		need[i] = i + 1;
	int64_t slots[4] = {1, 1, 1, W}, rows[4] = {1, 1, B, 1};
	graph_val wv = window_len(g, kv);
	graph_val sv = graph_i32_const(g, "local_slot_index", iota, 4, slots);
	graph_val nv = graph_i32_const(g, "local_row_need", need, 4, rows);
	free(iota), free(need);
	graph_val shift = graph_binary(g, "sub", "local_ring_shift", wv, kv->ring_begin);
	graph_val age = graph_binary(g, "add", "local_slot_age_raw", sv, shift);
	age = graph_binary(g, "mod", "local_slot_age", age, wv);
	graph_val vis = graph_compare(g, "greater_equal", "local_old_visible", age, nv);
	graph_val parts[2] = {{0}, {0}};
	if (visible_mask(g, "local_old", vis, B, W, &parts[0]) != 0 || batch_mask(g, B, &parts[1]) != 0)
		return -1;
	*out = graph_concat(g, "local_window_mask", 3, 2, parts);
	if (dtype != MIL_FP16)
		*out = graph_cast(g, "local_window_mask_fp32", *out, dtype);
	return 0;
}

/* The mask of sliding-window layers in the unified cache (graph_band_window:
 * Mistral, Phi3, Qwen with use_sliding_window): causal_mask plus -inf where
 * row i (position p + i, p = current_pos) would see slot t at or beyond the
 * window, p + i - t >= W. Computed from current_pos as t - (i - W + 1) >= p:
 * a [1,1,1,C] slot index less a [1,1,S,1] row offset, compared, made
 * additive (visible_mask) and added. The cache keeps all C slots. */
static int band_mask(graph_ctx *g, const chunk_io *in, int S, int C, int W, graph_kv *kv, int dtype)
{
	int32_t *slot = xmalloc(xmul((size_t)C, sizeof *slot)), *row = xmalloc(xmul((size_t)S, sizeof *row));
	for (int t = 0; t < C; t++)
		slot[t] = t;
	for (int i = 0; i < S; i++)
		row[i] = i - W + 1;
	int64_t slots[4] = {1, 1, 1, C}, rows[4] = {1, 1, S, 1};
	graph_val sv = graph_i32_const(g, "band_slot_index", slot, 4, slots);
	graph_val rv = graph_i32_const(g, "band_row_offset", row, 4, rows);
	free(slot), free(row);
	graph_val reach = graph_binary(g, "sub", "band_reach", sv, rv);
	graph_val vis = graph_compare(g, "greater_equal", "band_visible", reach, in->current_pos), band;
	if (visible_mask(g, "band_window", vis, S, C, &band) != 0)
		return -1;
	band = graph_binary(g, "add", "band_mask", in->mask, band);
	kv->band = dtype == MIL_FP16 ? band : graph_cast(g, "band_mask_fp32", band, dtype);
	kv->has_band = 1;
	return 0;
}

/* One cache's RoPE rows: local layers of a family with a local RoPE
 * (Gemma 3) use base rope_local_base_freq without scaling; the others
 * rope_theta with rope_scaling (ANEMLL ignores it). */
static int kv_rope(graph_ctx *g, const graph_chunk_opts *o, graph_val positions, int kind, graph_kv *kv)
{
	const hf_config *c = g->c;
	static const hf_rope_scaling none = {.kind = ROPE_NONE};
	int local = kind == KV_LOCAL && c->arch->def.rope_local_base_freq > 0;
	const char *tag = kind == KV_LOCAL ? "rope_local" : "rope";
	return graph_rope_rows(g, positions, o->context, local ? &none : &c->rope_scaling,
			       local ? c->rope_local_base_freq : c->rope_theta, tag, &kv->rope);
}

/* The rest of a cache's function-level values: the mask columns it
 * attends, the first read of its state. */
static int kv_setup(graph_ctx *g, const chunk_io *in, const graph_chunk_opts *o, int kind, graph_kv *kv)
{
	const hf_config *c = g->c;
	int local = kind == KV_LOCAL, dt = c->arch->attn_fp32 ? MIL_FP32 : MIL_FP16;
	kv->state = in->state[kind];
	kv->len = local ? graph_local_len(c, o->context) : o->context;
	kv->rotate = local && o->rotate;
	graph_val mask = in->mask;
	if (kv->rotate)
		ring_slots(g, in, o->mode == GRAPH_PREFILL ? o->batch : 1, kv);
	if (kv->rotate && o->mode == GRAPH_PREFILL) {
		if (ring_window_mask(g, kv, o->batch, dt, &kv->mask) != 0)
			return -1;
	} else {
		/* infer_rotate: row p >= W of causal_mask[..., :W] is all 0, and the
		 * ring holds exactly the positions (p-W, p] after the write */
		if (kv->len < o->context)
			mask = graph_slice_last(g, "local_mask", mask, 0, kv->len);
		kv->mask = dt == MIL_FP16 ? mask : graph_cast(g, local ? "local_mask_fp32" : "causal_mask_fp32", mask, dt);
	}
	kv->cache = kv->first = graph_read_state(g, local ? "kv_cache_local" : "kv_cache", kv->state);
	kv->used = 1;
	return 0;
}

/* Function-level values every layer shares: RoPE rows and masks of the
 * caches the chunk's layers use, the end of the KV write window. */
static int chunk_prologue(graph_ctx *g, const chunk_io *in, const graph_chunk_opts *o, int S, int first, int count,
			  graph_layer_io *io)
{
	int decode = o->mode == GRAPH_DECODE;
	*io = (graph_layer_io){.mode = o->mode, .seq = S, .context = o->context, .current_pos = in->current_pos,
			       .clamp = o->clamp, .post_norm_scale = o->fp16_scale > 0 ? o->fp16_scale : 1.0};
	int want[2] = {0, 0};
	for (int l = first; l < first + count; l++) {
		int local;
		graph_cache_slot(g->c, o->context, l, &local, NULL);
		want[local ? KV_LOCAL : KV_GLOBAL] = 1;
	}
	/* Decode takes its RoPE row at current_pos, as ANEMLL; position_ids is
	 * declared but unused there, and kept alive as ANEMLL's graph does. */
	graph_val positions = decode ? in->current_pos : in->position_ids;
	for (int k = 0; k < 2; k++)
		if (want[k] && kv_rope(g, o, positions, k, &io->kv[k]) != 0)
			return -1;
	if (decode)
		graph_identity(g, "position_ids_unused", in->position_ids);
	int32_t s = S;
	int64_t one = 1;
	graph_val sv = graph_val_make(graph_const(g, "seq_length", mil_value_i32s(g->a, 1, &s)), MIL_INT32, 1, &one);
	io->pos_end = graph_binary(g, "add", "pos_end", in->current_pos, sv);
	for (int k = 0; k < 2; k++)
		if (want[k] && kv_setup(g, in, o, k, &io->kv[k]) != 0)
			return -1;
	int W = graph_band_window(g->c, o->context), banded = 0;
	for (int l = first; W && l < first + count; l++)
		banded |= hf_config_layer_sliding(g->c, l);
	if (banded && band_mask(g, in, S, o->context, W, &io->kv[KV_GLOBAL], g->c->arch->attn_fp32 ? MIL_FP32 : MIL_FP16))
		return -1;
	return 0;
}

/* ANEMLL keeps both states of a local/global pair used in every chunk (a state a
 * function never touches would be dropped): 0 * one element of each,
 * added to the output. A state the chunk's layers use is touched through
 * their first read, so no read follows the last write of a state. */
static graph_val touch_states(graph_ctx *g, const chunk_io *in, const graph_layer_io *io, graph_val h)
{
	graph_val z[2];
	for (int k = 0; k < 2; k++) {
		const char *tag = k == KV_LOCAL ? "local" : "global";
		char buf[48];
		snprintf(buf, sizeof buf, "touch_%s_read", tag);
		graph_val st = io->kv[k].used ? io->kv[k].first : graph_read_state(g, buf, in->state[k]);
		int64_t b[4] = {0, 0, 0, 0}, e[4] = {1, 1, 1, 1}, one[3] = {1, 1, 1};
		snprintf(buf, sizeof buf, "touch_%s_one", tag);
		graph_val x = graph_slice(g, buf, st, b, e);
		snprintf(buf, sizeof buf, "touch_%s_r", tag);
		x = graph_reshape(g, buf, x, 3, one);
		snprintf(buf, sizeof buf, "touch_%s", tag);
		z[k] = graph_scale(g, buf, x, 0.0);
	}
	graph_val t = graph_binary(g, "add", "touch_states", z[0], z[1]);
	return graph_binary(g, "add", "touched", h, t);
}

/* The chunk's output: final norm (last chunk, decode), first position
 * (last chunk, prefill: runtimes ignore it), else the hidden states. */
static int chunk_epilogue(graph_ctx *g, const chunk_io *in, const graph_layer_io *io, const graph_chunk_opts *o,
			  graph_val h)
{
	const char *out = "output_hidden_states";
	int split = in->n_states == 2;
	graph_scope(g, "%s", "");
	if (o->chunk == o->nchunks && o->mode == GRAPH_PREFILL) {
		int64_t begin[3] = {0, 0, 0}, end[3] = {1, 1, h.d[2]};
		h = graph_slice(g, split ? "first_row" : out, h, begin, end);
	}
	if (split)
		h = touch_states(g, in, io, h);
	if (o->chunk == o->nchunks && o->mode == GRAPH_DECODE) {
		if (graph_rms_norm(g, out, h, -1, "norm.weight", &h) != 0)
			return -1;
	} else if (split || o->chunk != o->nchunks) {
		h = graph_rename_last(g, h, out);
	}
	mil_block_add_output(g->b, h.name);
	return 0;
}

/* Layers [first, first + count) on h. */
static int chunk_layers(graph_ctx *g, graph_layer_io *io, int first, int count, graph_val *h)
{
	int last_layer = g->c->num_hidden_layers - 1;
	for (int l = first; l < first + count; l++) {
		graph_scope(g, "layers_%d_", l);
		/* ANEMLL's Llama prefill skips the very last MLP: its output is unused. */
		io->skip_mlp = io->mode == GRAPH_PREFILL && l == last_layer;
		if (graph_layer(g, io, l, *h, h) != 0)
			return -1;
	}
	return 0;
}

static int chunk_body(graph_ctx *g, const chunk_io *in, const graph_chunk_opts *o, int S, int first, int count)
{
	graph_layer_io io;
	if (chunk_prologue(g, in, o, S, first, count, &io) != 0)
		return -1;
	graph_val h = in->hidden;
	if (chunk_layers(g, &io, first, count, &h) != 0)
		return -1;
	return chunk_epilogue(g, in, &io, o, h);
}

/* Checks every function variant shares: layers, batch, rotate, scaling. */
static int check_chunk_opts(const hf_config *c, const graph_chunk_opts *o, int nchunks)
{
	if (graph_check_model(c, o->context) != 0)
		return -1;
	if (nchunks < 1 || nchunks > c->num_hidden_layers)
		return errf("%d chunks requested, but the model has %d layers", nchunks, c->num_hidden_layers);
	int S = o->mode == GRAPH_DECODE ? 1 : o->batch;
	if (S < 1 || S > o->context)
		return errf("batch size %d must be between 1 and the context length %d", S, o->context);
	if (o->rotate && graph_check_rotate(c, o->context, o->batch, o->mode) != 0)
		return -1;
	if (o->fp16_scale > 0 && o->fp16_scale != 1.0 && !c->arch->four_norms)
		return errf("--fp16-scale: %s has no post-attention/post-feedforward norms to carry the scale "
			    "(Gemma 3 only)", c->arch->name);
	if (o->fp16_scale < 0 || o->fp16_scale > 1 || o->clamp < 0)
		return errf("--fp16-scale %g / --clamp %g out of range", o->fp16_scale, o->clamp);
	return 0;
}

int graph_build_chunk(ml_model *m, weights_ctx *w, const hf_model *hf, const graph_chunk_opts *o)
{
	const hf_config *c = &hf->cfg;
	if (check_chunk_opts(c, o, o->nchunks) != 0)
		return -1;
	ASSERT(o->chunk >= 1 && o->chunk <= o->nchunks && o->context >= 1);
	w->lut_min_elements = c->arch->lut_min_elements;
	int S = o->mode == GRAPH_DECODE ? 1 : o->batch;
	int first, count;
	graph_chunk_layers(c->num_hidden_layers, o->nchunks, o->chunk - 1, &first, &count);
	int S_out = o->mode == GRAPH_PREFILL && o->chunk == o->nchunks ? 1 : S;
	ml_function_desc *fd = o->function ? ml_model_add_function(m, o->function) : NULL;
	describe_chunk(m, fd, c, S, S_out, o->context);
	mil_function *fn = mil_program_add_function(ml_model_program(m), o->function ? o->function : "main",
						    MIL_OPSET_IOS18);
	chunk_io in = chunk_inputs(fn, c, S, o->context);
	graph_ctx g;
	graph_ctx_init(&g, mil_function_block(fn), w, hf);
	int rc = chunk_body(&g, &in, o, S, first, count);
	graph_drop_dead_reads(g.b);
	graph_ctx_release(&g);
	return rc;
}

/* ------------------------------------------------------------------ */
/* LM head                                                             */

/* Rows of one head split, read a block at a time (weights_emit_rows). */
typedef struct head_rows {
	const st_tensor *t;
	int64_t row0;
	double scale;
	size_t clamped;
} head_rows;

static int read_head_rows(void *ctx, uint64_t row0, uint64_t n, uint16_t *dst)
{
	head_rows *h = ctx;
	return graph_read_rows_scaled(h->t, (uint64_t)h->row0 + row0, n, h->scale, dst, &h->clamped);
}

/* Head k (1-based): rows [row0, row0 + n) of the head matrix as a 1x1 conv,
 * reshaped to logits<k> [1,1,n]. */
static int head_split(graph_ctx *g, graph_val x, int k, int64_t row0, int64_t n, graph_val *out)
{
	const st_tensor *t = g->hf->lm_head;
	int64_t H = g->c->hidden_size;
	/* Granite divides the logits by logits_scaling: folded into the rows */
	double ls = g->c->logits_scaling > 0 ? g->c->logits_scaling : 1.0;
	head_rows hr = {t, row0, 1.0 / ls, 0};
	char name[48], *source = xasprintf("%s rows %lld-%lld (LM-head split %d of %d)", t->name, (long long)row0,
					   (long long)(row0 + n - 1), k, arch_lm_head_splits(g->c->arch, g->c->vocab_size));
	int64_t shape[4] = {n, H, 1, 1};
	snprintf(name, sizeof name, "lm_head_weight_%d", k);
	g->w->alias = "lm_head"; /* overrides and statistics know the head by this name, tied or not */
	const char *w = weights_emit_rows(g->w, g->b, name, source, read_head_rows, &hr, 4, shape);
	g->w->alias = NULL;
	free(source);
	if (hr.clamped)
		warn("tensor '%s': %zu values beyond fp16 range clamped to +-65504", t->name, hr.clamped);
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

/* The head's outputs (top level or fd): logits1..K, or the argmax pair. */
static void describe_head_outputs(ml_model *m, ml_function_desc *fd, const int *sizes, int K, int argmax)
{
	int64_t kk[1] = {K};
	if (argmax) {
		ml_model_add_output(m, fd, "argmax_idx", ARRAY_INT32, 1, kk);
		ml_model_add_output(m, fd, "argmax_val", ARRAY_FLOAT16, 1, kk);
		return;
	}
	for (int k = 0; k < K; k++) {
		char name[32];
		int64_t dims[3] = {1, 1, sizes[k]};
		snprintf(name, sizeof name, "logits%d", k + 1);
		ml_model_add_output(m, fd, name, ARRAY_FLOAT16, 3, dims);
	}
}

/* The split head on h [1,1,H], its outputs added to the block. */
static int lm_head_body(graph_ctx *g, graph_val h, const int *sizes, int K, int argmax)
{
	int64_t chan[4] = {1, g->c->hidden_size, 1, 1};
	graph_val x = graph_reshape(g, "lm_head_in", h, 4, chan);
	graph_val *logits = xmalloc(xmul((size_t)K, sizeof *logits));
	int rc = 0;
	for (int k = 0, row = 0; rc == 0 && k < K; row += sizes[k++])
		rc = head_split(g, x, k + 1, row, sizes[k], &logits[k]);
	if (rc == 0 && argmax)
		head_argmax(g, logits, K);
	for (int k = 0; rc == 0 && !argmax && k < K; k++)
		mil_block_add_output(g->b, logits[k].name);
	free(logits);
	return rc;
}

int graph_build_lm_head(ml_model *m, weights_ctx *w, const hf_model *hf, int argmax)
{
	const hf_config *c = &hf->cfg;
	w->lut_min_elements = c->arch->lut_min_elements;
	int K = arch_lm_head_splits(c->arch, c->vocab_size), V = c->vocab_size;
	if (V < K)
		return errf("vocab_size %d is smaller than the %d LM-head splits", V, K);
	int *sizes = xmalloc(xmul((size_t)K, sizeof *sizes));
	graph_lm_head_sizes(V, K, sizes);
	int64_t hid[3] = {1, 1, c->hidden_size};
	ml_model_add_input(m, NULL, "hidden_states", ARRAY_FLOAT16, 3, hid);
	describe_head_outputs(m, NULL, sizes, K, argmax);
	mil_function *fn = mil_program_add_function(ml_model_program(m), "main", MIL_OPSET_IOS18);
	graph_val in = add_input(fn, "hidden_states", MIL_FP16, 3, hid, 0);
	graph_ctx g;
	graph_ctx_init(&g, mil_function_block(fn), w, hf);
	int rc = lm_head_body(&g, in, sizes, K, argmax);
	graph_ctx_release(&g);
	free(sizes);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Monolithic                                                          */

/* Rows of the embedding table, times alpha (when above 0) in fp32, rounded once. */
typedef struct embed_rows {
	const st_tensor *t;
	double alpha;
	float *row; /* [H] */
	size_t clamped;
} embed_rows;

static int read_embed_rows(void *ctx, uint64_t row0, uint64_t n, uint16_t *dst)
{
	embed_rows *e = ctx;
	uint64_t H = e->t->shape[1];
	for (uint64_t r = 0; r < n; r++) {
		if (st_read_rows_f32(e->t, row0 + r, 1, e->row) != 0)
			return -1;
		for (uint64_t j = 0; e->alpha > 0 && j < H; j++)
			e->row[j] = (float)(e->row[j] * e->alpha);
		e->clamped += f32_array_to_fp16(e->row, dst + r * H, (size_t)H);
	}
	return 0;
}

/* The embedding table [V,H] (x alpha when scaling, x Granite's
 * embedding_multiplier, in fp32, rounded once) gathered at input_ids, times
 * sqrt(H) for Gemma: hidden [1,S,H]. */
static int mono_embed(graph_ctx *g, graph_val ids, double alpha, graph_val *out)
{
	double em = g->c->embedding_multiplier;
	if (em > 0 && em != 1.0)
		alpha = (alpha > 0 ? alpha : 1.0) * em;
	const st_tensor *t = g->hf->embed;
	int64_t V = (int64_t)t->shape[0], H = (int64_t)t->shape[1];
	embed_rows er = {t, alpha, xmalloc(xmul((size_t)H, sizeof(float))), 0};
	int64_t shape[2] = {V, H};
	const char *tv = weights_emit_rows(g->w, g->b, "model_model_embed_tokens_weight", t->name, read_embed_rows, &er,
					   2, shape);
	free(er.row);
	if (er.clamped)
		warn("tensor '%s': %zu values beyond fp16 range clamped to +-65504", t->name, er.clamped);
	if (!tv)
		return -1;
	graph_val h = graph_gather(g, "embeddings", graph_val_make(tv, MIL_FP16, 2, shape), ids, 0);
	if (g->c->arch->embed_scale_sqrt_hidden)
		h = graph_scale(g, "embeddings_scaled", h, sqrt((double)H));
	*out = h;
	return 0;
}

static void describe_mono(ml_model *m, ml_function_desc *fd, const hf_config *c, const graph_mono_opts *o, int S,
			  const int *sizes, int K)
{
	int64_t ids[2] = {1, S}, pos[1] = {S}, mask[4] = {1, 1, S, o->context}, cur[1] = {1};
	ml_model_add_input(m, fd, "input_ids", ARRAY_INT32, 2, ids);
	ml_model_add_input(m, fd, "position_ids", ARRAY_INT32, 1, pos);
	ml_model_add_input(m, fd, "causal_mask", ARRAY_FLOAT16, 4, mask);
	ml_model_add_input(m, fd, "current_pos", ARRAY_INT32, 1, cur);
	if (o->mode == GRAPH_PREFILL && c->arch->split_kv_cache) {
		int64_t out[3] = {1, 1, c->hidden_size};
		ml_model_add_output(m, fd, "output_hidden_states", ARRAY_FLOAT16, 3, out);
	} else {
		describe_head_outputs(m, fd, sizes, K, o->argmax);
	}
	describe_states(m, fd, c, o->context);
}

/* After the layers: infer: final norm and the head; prefill (runtimes ignore
 * its output): row 0 without the final norm, through the head (Llama/Qwen)
 * or as output_hidden_states (Gemma 3). */
static int mono_epilogue(graph_ctx *g, const graph_mono_opts *o, graph_val h, const int *sizes, int K)
{
	graph_scope(g, "%s", "");
	if (o->mode == GRAPH_DECODE) {
		if (graph_rms_norm(g, "final_norm", h, -1, "norm.weight", &h) != 0)
			return -1;
	} else {
		int64_t begin[3] = {0, 0, 0}, end[3] = {1, 1, h.d[2]};
		int hidden_out = g->c->arch->split_kv_cache;
		h = graph_slice(g, hidden_out ? "output_hidden_states" : "first_row", h, begin, end);
		if (hidden_out) {
			mil_block_add_output(g->b, h.name);
			return 0;
		}
	}
	g->w->lut = o->lut_head;
	g->w->lut_flag = o->lut_head_flag;
	return lm_head_body(g, h, sizes, K, o->argmax);
}

static int mono_body(graph_ctx *g, mil_function *fn, const graph_mono_opts *o, int S, const int *sizes, int K)
{
	const hf_config *c = g->c;
	int64_t idd[2] = {1, S};
	graph_val ids = add_input(fn, "input_ids", MIL_INT32, 2, idd, 0), h;
	chunk_io in = {0};
	chunk_inputs_rest(fn, c, S, o->context, &in);
	g->w->lut = o->lut_embed;
	g->w->lut_flag = o->lut_embed_flag;
	if (mono_embed(g, ids, o->fp16_scale, &h) != 0)
		return -1;
	g->w->lut = o->lut_ffn;
	g->w->lut_flag = o->lut_ffn_flag;
	graph_chunk_opts co = {.mode = o->mode, .context = o->context, .batch = o->batch, .chunk = 1, .nchunks = 1,
			       .rotate = o->rotate, .fp16_scale = o->fp16_scale, .clamp = o->clamp};
	graph_layer_io io;
	if (chunk_prologue(g, &in, &co, S, 0, c->num_hidden_layers, &io) != 0 ||
	    chunk_layers(g, &io, 0, c->num_hidden_layers, &h) != 0)
		return -1;
	return mono_epilogue(g, o, h, sizes, K);
}

int graph_build_monolithic(ml_model *m, weights_ctx *w, const hf_model *hf, const graph_mono_opts *o)
{
	const hf_config *c = &hf->cfg;
	graph_chunk_opts co = {.mode = o->mode, .context = o->context, .batch = o->batch, .rotate = o->rotate,
			       .fp16_scale = o->fp16_scale, .clamp = o->clamp};
	if (check_chunk_opts(c, &co, 1) != 0)
		return -1;
	if (o->argmax && o->mode != GRAPH_DECODE)
		return errf("--argmax: only the monolithic infer function computes the argmax");
	int K = arch_lm_head_splits(c->arch, c->vocab_size), S = o->mode == GRAPH_DECODE ? 1 : o->batch;
	if (c->vocab_size < K)
		return errf("vocab_size %d is smaller than the %d LM-head splits", c->vocab_size, K);
	w->lut_min_elements = c->arch->lut_min_elements;
	int *sizes = xmalloc(xmul((size_t)K, sizeof *sizes));
	graph_lm_head_sizes(c->vocab_size, K, sizes);
	ml_function_desc *fd = o->function ? ml_model_add_function(m, o->function) : NULL;
	describe_mono(m, fd, c, o, S, sizes, K);
	mil_function *fn = mil_program_add_function(ml_model_program(m), o->function ? o->function : "main",
						    MIL_OPSET_IOS18);
	graph_ctx g;
	graph_ctx_init(&g, mil_function_block(fn), w, hf);
	int rc = mono_body(&g, fn, o, S, sizes, K);
	graph_drop_dead_reads(g.b);
	graph_ctx_release(&g);
	free(sizes);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Packages                                                            */

int graph_dry_run(graph_build_fn build, const void *ctx, weights_ctx *w)
{
	weights_init(w, NULL, NULL, 0);
	FILE *f = fopen("/dev/null", "w+b"); /* constants other than weights (RoPE tables) go nowhere */
	if (!f)
		return errf("/dev/null: %s", strerror(errno));
	blob_writer *bw = blob_writer_open_file(f, "/dev/null");
	if (!bw) {
		fclose(f);
		return -1;
	}
	w->bw = bw;
	w->check_only = 1;
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	int rc = build(m, w, ctx);
	ml_model_free(m);
	blob_writer_abort(bw);
	fclose(f);
	w->bw = NULL;
	return rc;
}

/* The progress report of a package: its tensors, named by the file. */
static void begin_progress(const char *path, graph_build_fn build, const void *ctx)
{
	weights_ctx plan;
	int known = graph_dry_run(build, ctx, &plan) == 0;
	char *name = path_basename(path);
	progress_begin(name, "tensor", known ? plan.n_planned : 0, known ? plan.planned_bytes : 0);
	free(name);
	weights_release(&plan);
}

int graph_write_package(const char *path, graph_build_fn build, const void *ctx, const anemll_meta *meta,
			graph_write_opts *wo)
{
	mlpackage_writer pw;
	if (mlpackage_begin(&pw, path) != 0)
		return -1;
	begin_progress(path, build, ctx);
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	weights_ctx w;
	weights_init(&w, pw.weights, &wo->lut, wo->threads);
	w.cache_dir = wo->cache_dir;
	w.ov = wo->ov;
	w.stats = wo->stats;
	int rc = build(m, &w, ctx);
	/* The quality file first: a package is never committed without it. */
	if (rc == 0 && wo->quality_path)
		rc = weights_write_quality(&w, wo->quality_path);
	if (rc == 0) {
		anemll_meta mt = *meta;
		char *ov = wo->ov && wo->ov->n ? lut_overrides_format(wo->ov) : NULL;
		char hex[65];
		if (wo->stats)
			sha256_hex(wo->stats->digest, hex);
		mt.lut_override = ov;
		mt.calibration = wo->stats ? hex : NULL;
		anemll_set_metadata(m, &mt);
		free(ov);
		pb_buf bytes;
		pb_init(&bytes);
		ml_model_encode(m, &bytes);
		rc = mlpackage_commit(&pw, bytes.data, bytes.len);
		pb_release(&bytes);
		if (rc != 0 && wo->quality_path)
			unlink(wo->quality_path);
	} else {
		char *msg = xstrdup(errmsg()); /* abort may overwrite the recorded error */
		mlpackage_abort(&pw);
		errf("%s", msg);
		free(msg);
	}
	weights_summary(&w, wo->summary, sizeof wo->summary);
	weights_release(&w);
	ml_model_free(m);
	progress_end();
	return rc;
}

typedef struct package_job {
	const hf_model *hf;
	const graph_chunk_opts *chunk; /* NULL: the LM head, or: */
	const graph_mono_opts *mono;   /* the monolithic model */
	int argmax;
} package_job;

static int build_part(ml_model *m, weights_ctx *w, const void *ctx)
{
	const package_job *j = ctx;
	if (j->mono)
		return graph_build_monolithic(m, w, j->hf, j->mono);
	return j->chunk ? graph_build_chunk(m, w, j->hf, j->chunk) : graph_build_lm_head(m, w, j->hf, j->argmax);
}

int graph_write_chunk(const char *path, const hf_model *hf, const graph_chunk_opts *o, graph_write_opts *wo)
{
	int prefill = o->mode == GRAPH_PREFILL;
	package_job j = {.hf = hf, .chunk = o};
	/* ANEMLL's rotate parts (2_rotate, 2_prefill_rotate) carry neither
	 * chunk_no/num_chunks nor batch_size. */
	anemll_meta meta = {.part_title = o->rotate ? NULL : prefill ? "Prefill" : "FFN",
			    .part = prefill ? "2_prefill_rotate" : "2_rotate",
			    .context_length = o->context, .batch_size = prefill && !o->rotate ? o->batch : 0,
			    .num_chunks = o->rotate ? 0 : o->nchunks, .chunk_no = o->rotate ? 0 : o->chunk,
			    .lut_bits = wo->lut.bits};
	return graph_write_package(path, build_part, &j, &meta, wo);
}

int graph_write_lm_head(const char *path, const hf_model *hf, int context, int argmax, graph_write_opts *wo)
{
	const hf_config *c = &hf->cfg;
	int K = arch_lm_head_splits(c->arch, c->vocab_size);
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

int graph_write_monolithic(const char *path, const hf_model *hf, const graph_mono_opts *o, graph_write_opts *wo)
{
	const hf_config *c = &hf->cfg;
	int K = arch_lm_head_splits(c->arch, c->vocab_size), prefill = o->mode == GRAPH_PREFILL;
	if (c->vocab_size < K)
		return errf("vocab_size %d is smaller than the %d LM-head splits", c->vocab_size, K);
	int *sizes = xmalloc(xmul((size_t)K, sizeof *sizes));
	graph_lm_head_sizes(c->vocab_size, K, sizes);
	package_job j = {.hf = hf, .mono = o};
	/* ANEMLL's monolithic infer records the head's split; its prefill the batch. */
	anemll_meta meta = {.part = prefill ? (o->rotate ? "monolithic_prefill_rotate" : "monolithic_prefill")
					    : (o->rotate ? "monolithic_rotate" : "monolithic"),
			    .context_length = o->context, .batch_size = prefill ? o->batch : 0,
			    .lut_bits = wo->lut.bits, .argmax_in_model = o->argmax,
			    .vocab_size = prefill ? 0 : c->vocab_size, .lm_head_chunk_sizes = prefill ? NULL : sizes,
			    .n_lm_head_chunks = prefill ? 0 : K};
	int rc = graph_write_package(path, build_part, &j, &meta, wo);
	free(sizes);
	return rc;
}
