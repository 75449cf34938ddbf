/* graph_internal.h: what the graph_*.c files share (not for stages).
 *
 * graph_ops.c emits single MIL ops and tracks every value's dtype and shape
 * (graph_val), so the layer code reads as the math it implements and never
 * spells a shape twice. graph_layer.c builds norms, attention, RoPE and the
 * MLP from those; graph.c puts layers together into chunks and LM heads.
 *
 * Naming. Every op gets the name of its output var: the current scope
 * (e.g. "layers_3_") followed by a short description ("q_rope"). The const
 * ops holding an op's parameters are called "<op>_<param>"; parameters that
 * are the same everywhere (conv strides, the -1 of the norm trick...) are
 * emitted once per function under a fixed name and shared. Weights keep
 * coremltools' names for ANEMLL's modules ("model_model_layers_0_self_attn_
 * q_proj_weight"), so parts of different functions line up by name.
 */
#ifndef ANEMAKE_GRAPH_INTERNAL_H
#define ANEMAKE_GRAPH_INTERNAL_H

#include "base/util.h"
#include "convert/graph.h"
#include "coreml/mil.h"

#define GRAPH_MAX_RANK 5

/* A MIL value: var name, dtype (mil_dtype) and constant shape. */
typedef struct graph_val {
	const char *name;
	int dtype;
	int rank;
	int64_t d[GRAPH_MAX_RANK];
} graph_val;

typedef struct graph_ctx {
	mil_arena *a;
	mil_block *b;
	weights_ctx *w;
	const hf_model *hf;
	const hf_config *c;
	char scope[64];           /* prefix of op names, "" at function level */
	const char **shared;      /* names of shared consts already emitted */
	size_t nshared, shared_cap;
	const char *zero_bias;    /* the shared zero bias of linear o_proj, once made */
} graph_ctx;

void graph_ctx_init(graph_ctx *g, mil_block *b, weights_ctx *w, const hf_model *hf);
void graph_ctx_release(graph_ctx *g);
/* Remove the read_state ops whose result nothing uses (the read after a
 * function's last cache write): coremltools removes them on re-save. */
void graph_drop_dead_reads(mil_block *b);
/* Op names from here on start with the formatted prefix. */
void graph_scope(graph_ctx *g, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* ---- values and constants ---- */

graph_val graph_val_make(const char *name, int dtype, int rank, const int64_t *dims);
/* scope + what, in the arena. */
const char *graph_name(graph_ctx *g, const char *what);
/* A const op called `name` (exactly) holding v; returns name. */
const char *graph_const(graph_ctx *g, const char *name, mil_value *v);
/* A const emitted at most once per function under `name`. */
const char *graph_shared(graph_ctx *g, const char *name, mil_value *v);
/* fp16 data as a const: a weight.bin blob when it has 10 or more elements
 * (as coremltools), an immediate otherwise. -1 on write errors. */
int graph_fp16_const(graph_ctx *g, const char *name, const uint16_t *data, int rank, const int64_t *dims,
		     graph_val *out);
/* An int32 tensor const called `name` (an immediate, as coremltools writes
 * int32 consts). */
graph_val graph_i32_const(graph_ctx *g, const char *name, const int32_t *data, int rank, const int64_t *dims);
/* A scalar const of x's float dtype (fp16 or fp32), shared by value. */
const char *graph_scalar(graph_ctx *g, int dtype, double v);
/* The shape of v as a mil_type. */
mil_type *graph_type(graph_ctx *g, const graph_val *v);

/* ---- ops: each returns its output, named graph_name(what) ---- */

/* add, sub, mul, real_div, mod (int32 too) with numpy broadcasting. */
graph_val graph_binary(graph_ctx *g, const char *type, const char *what, graph_val x, graph_val y);
/* equal, greater_equal, ... with numpy broadcasting: a bool output. */
graph_val graph_compare(graph_ctx *g, const char *type, const char *what, graph_val x, graph_val y);
/* cond ? a : b elementwise (cond bool), broadcasting all three. */
graph_val graph_select(graph_ctx *g, const char *what, graph_val cond, graph_val a, graph_val b);
/* x * c for a scalar constant c. */
graph_val graph_scale(graph_ctx *g, const char *what, graph_val x, double c);
/* exp, silu, ... (one input x, same shape). */
graph_val graph_unary(graph_ctx *g, const char *type, const char *what, graph_val x);
graph_val graph_gelu_tanh(graph_ctx *g, const char *what, graph_val x);
graph_val graph_cast(graph_ctx *g, const char *what, graph_val x, int dtype);
graph_val graph_reshape(graph_ctx *g, const char *what, graph_val x, int rank, const int64_t *dims);
graph_val graph_transpose(graph_ctx *g, const char *what, graph_val x, const int *perm);
/* x[begin:end] with constant bounds (end exclusive, one per axis). */
graph_val graph_slice(graph_ctx *g, const char *what, graph_val x, const int64_t *begin, const int64_t *end);
/* x[..., from:to] along the last axis. */
graph_val graph_slice_last(graph_ctx *g, const char *what, graph_val x, int64_t from, int64_t to);
graph_val graph_concat(graph_ctx *g, const char *what, int axis, int n, const graph_val *v);
/* 1x1 conv of x [1,Cin,1,S] with weight var [cout,Cin,1,1]; bias NULL: none. */
graph_val graph_conv(graph_ctx *g, const char *what, graph_val x, const char *weight, const char *bias, int64_t cout);
/* x [..., Din] times weight var [dout, Din]^T plus bias var [dout]. */
graph_val graph_linear(graph_ctx *g, const char *what, graph_val x, const char *weight, const char *bias,
		       int64_t dout);
graph_val graph_matmul(graph_ctx *g, const char *what, graph_val x, graph_val y, int transpose_y);
/* layer_norm over the last axis, no gamma/beta. */
graph_val graph_layer_norm(graph_ctx *g, const char *what, graph_val x, double eps);
/* reduce_max / reduce_sum over the last axis, keeping it. */
graph_val graph_reduce_last(graph_ctx *g, const char *type, const char *what, graph_val x);
/* x gathered along `axis` at int32 indices idx (output rank x.rank - 1 + idx.rank). */
graph_val graph_gather(graph_ctx *g, const char *what, graph_val x, graph_val idx, int axis);
graph_val graph_tile(graph_ctx *g, const char *what, graph_val x, const int64_t *reps);
graph_val graph_read_state(graph_ctx *g, const char *what, graph_val state);
void graph_write_state(graph_ctx *g, const char *what, graph_val state, graph_val data);
/* x with update written at [begin, end) (int32 vectors, may be runtime values). */
graph_val graph_slice_update(graph_ctx *g, const char *what, graph_val x, graph_val update, graph_val begin,
			     graph_val end);
/* softmax over the last axis, written out as ANEMLL's Llama does
 * (reduce_max, sub, exp, reduce_sum, real_div). */
graph_val graph_softmax(graph_ctx *g, const char *what, graph_val x);
/* reduce_argmax over the last axis, keeping it, int32 output. */
graph_val graph_argmax_last(graph_ctx *g, const char *what, graph_val x);
graph_val graph_gather_along_last(graph_ctx *g, const char *what, graph_val x, graph_val idx);
graph_val graph_identity(graph_ctx *g, const char *what, graph_val x);
/* Rename the output of the op that produced v (it must be the last op and
 * not yet used), e.g. to make it a function output. */
graph_val graph_rename_last(graph_ctx *g, graph_val v, const char *name);

/* ---- layer pieces (graph_layer.c) ---- */

/* [1,S,C] -> [1,C,1,S] and back: the layout of 1x1 convs. */
graph_val graph_to_channels(graph_ctx *g, const char *what, graph_val x);
graph_val graph_to_sequence(graph_ctx *g, const char *what, graph_val x);
/* RMSNorm of x over its last axis with checkpoint gain `tensor` (suffix of
 * hf_model_tensor, or a layer tensor when layer >= 0): the layer_norm trick.
 * graph_rms_norm_scaled multiplies the gain by `scale` (in fp32, before the
 * one rounding to fp16): the FP16 scaling's alpha * (1 + w). */
int graph_rms_norm(graph_ctx *g, const char *what, graph_val x, int layer, const char *tensor, graph_val *out);
int graph_rms_norm_scaled(graph_ctx *g, const char *what, graph_val x, int layer, const char *tensor, double scale,
			  graph_val *out);

/* Per-function RoPE rows: cos/sin halves [1,1,S,d/2] at the given positions,
 * from a table of `rows` positions with base theta and scaling rs; the
 * table consts are called "<tag>_cos_table" / "<tag>_sin_table". */
typedef struct graph_rope {
	graph_val cos_h, sin_h;
} graph_rope;
int graph_rope_rows(graph_ctx *g, graph_val positions, int rows, const hf_rope_scaling *rs, double theta,
		    const char *tag, graph_rope *out);

/* One KV cache as the layers of a function see it. */
typedef struct graph_kv {
	graph_val state, cache; /* cache: the latest read of state */
	graph_val first;        /* the function's first read of state, before any write */
	int64_t len;            /* slots attended: C, or the local window */
	int rotate;             /* a ring (rotate functions, local cache): position q in slot q mod len */
	graph_val ring_begin, ring_end; /* rotate: the slots [current_pos mod len, + S) written */
	graph_val mask;         /* additive mask [1,1,S,len] in the attention dtype
	                         * (prefill_rotate: [1,1,S,len+S], graph.c) */
	graph_rope rope;
	graph_val band;         /* the mask of sliding-window layers (graph_band_window), when has_band */
	int has_band;
	int used;               /* set up by the function's prologue */
} graph_kv;

typedef struct graph_layer_io {
	graph_mode mode;
	int seq;                /* S */
	int context;            /* C */
	int skip_mlp;           /* prefill of the model's last layer: its output is unused */
	double clamp;           /* clip after each residual add to [-clamp, clamp]; 0: none */
	double post_norm_scale; /* FP16 scaling alpha on the post norms' gains; 1: none */
	graph_val current_pos, pos_end;
	graph_kv kv[2];         /* [0] the unified (or Gemma's global) cache, [1] Gemma's local cache */
} graph_layer_io;

/* One decoder layer: h [1,S,H] -> *out. Updates the cache it writes. */
int graph_layer(graph_ctx *g, graph_layer_io *io, int layer, graph_val h, graph_val *out);

/* clip(x, -v, v). */
graph_val graph_clip(graph_ctx *g, const char *what, graph_val x, double v);
/* softmax over the last axis as one MIL op. */
graph_val graph_softmax_op(graph_ctx *g, const char *what, graph_val x);

/* A projection weight of layer `layer` (HF [out,in]) as a conv weight
 * [out,in,1,1], or 2-D for a linear; NULL with errf() on failure. */
const char *graph_proj_weight(graph_ctx *g, int layer, const char *suffix, int as_conv);
/* The same times scale (Granite's residual_multiplier folded into o_proj
 * and down_proj). Phi3's fused tensors are split here (hf_layer_proj). */
const char *graph_proj_weight_scaled(graph_ctx *g, int layer, const char *suffix, int as_conv, double scale);
/* Rows [row0, row0 + rows) of a 2-D tensor as fp16, times scale (in fp32,
 * rounded once) unless scale is 1; *clamped counts values beyond fp16. */
int graph_read_rows_scaled(const st_tensor *t, uint64_t row0, uint64_t rows, double scale, uint16_t *buf,
			   size_t *clamped);
/* A 1-D checkpoint tensor (bias) as an fp16 const; NULL when absent. */
const char *graph_vector(graph_ctx *g, int layer, const char *suffix, int plus_one, int *err);
/* The same with every value multiplied by scale after the plus one. */
const char *graph_vector_scaled(graph_ctx *g, int layer, const char *suffix, int plus_one, double scale, int *err);

#endif
