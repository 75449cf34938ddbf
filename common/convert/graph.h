/* graph.h: the transformer parts of ANEMLL's interface as MIL programs.
 *
 * One builder, parameterised by the architecture traits of arch.h, writes the
 * decoder layers of Llama, Qwen 2.5, Qwen 3 and Gemma 3 the way ANEMLL feeds
 * them to the Neural Engine (anemll-interface.md 2 and 3, and the op
 * listings in shared/reference/anemll-{llama,gemma3}-tiny/listings):
 *
 *   chunk i of N, decode ("infer", ANEMLL part 2) or prefill (part 2_prefill):
 *     input  hidden_states  fp16  [1,S,H]     S = 1 (decode) or B (prefill)
 *     input  position_ids   int32 [S]         decode: declared, unused
 *     input  causal_mask    fp16  [1,1,S,C]   additive: 0 visible, -inf not
 *     input  current_pos    int32 [1]         KV write offset; decode RoPE row
 *     output output_hidden_states fp16 [1,S,H]; the last chunk's decode
 *                           output is final-normed, its prefill output is
 *                           [1,1,H] (first position, unused by runtimes)
 *     state  model_model_kv_cache_0 fp16 [2L, kv_heads, C, head_dim]:
 *            K of layer l at index l, V at l + L, L = all layers of the model
 *   LM head (part 3):
 *     input  hidden_states fp16 [1,1,H]
 *     output logits1..logitsK fp16 [1,1,size_k], or with argmax
 *            argmax_idx int32 [K] (index within head k), argmax_val fp16 [K]
 *   monolithic (graph_build_monolithic below): embeddings, every layer and
 *     the LM head in one function, input_ids instead of hidden_states.
 *
 * Gemma 3 (arch trait split_kv_cache) declares two states in every chunk, in
 * this order:
 *     model_model_kv_cache_local  [2 n_local,  kv, W', d]  W' = min(window, C)
 *     model_model_kv_cache_global [2 n_global, kv, C,  d]
 * A layer's index in its cache is the number of earlier layers of the same
 * type (layer_types, or HF's every-6th rule); K at idx, V at idx + n of
 * that type. Every chunk reads one element of each state and adds 0 times
 * it to its output, as ANEMLL does, so both states are used everywhere.
 * Local layers use RoPE base rope_local_base_freq (no scaling) and attend
 * W' slots with causal_mask[..., :W']; global layers use rope_theta WITH
 * rope_scaling (ANEMLL ignores it) and attend all C. The local cache is a
 * ring: position q lives in slot q mod W in every function (below W that is
 * slot q, as ANEMLL's fill functions write it). Functions:
 *     infer / prefill         local K/V written at current_pos (positions < W)
 *     infer_rotate            (positions >= W) local K/V written at slot
 *                             current_pos mod W (one slice_update, no copy),
 *                             then all W slots attended with
 *                             causal_mask[..., :W] (row p >= W is all 0
 *                             there: the ring holds exactly (p-W, p]).
 *                             Running the same position again rewrites the
 *                             same slot: idempotent, so chat.py's re-run of
 *                             the last prompt token is harmless. Global K/V
 *                             at current_pos as always.
 *     prefill_rotate          B rows at p >= W (p % B == 0, W % B == 0):
 *                             written at slots [p mod W, p mod W + B) (never
 *                             wrapping); local layers attend the W slots as
 *                             they were before the call followed by the B
 *                             new rows, with a [1,1,B,W+B] mask computed from
 *                             current_pos: row i sees old slot s iff
 *                             (s - p) mod W >= i + 1 (slot s holds position
 *                             p - W + ((s - p) mod W)) and new row j iff
 *                             j <= i, i.e. exactly positions (p+i-W, p+i].
 * ANEMLL's rotate functions instead SHIFT the local cache left by 1 (or B)
 * and append: the same I/O and states, but chat.py's re-run of the last
 * prompt token (spec 10.5) shifts twice, so the window loses its oldest
 * position and holds the last one twice; and its prefill_rotate rows see all
 * W shifted slots, later rows of their own batch included. Ours are exact in
 * both cases. The interface (inputs, outputs, states, shapes) is ANEMLL's.
 * With C <= W there is nothing to rotate: the local cache is C long and
 * no rotate variant exists (graph_check_rotate).
 *
 * The other families with the arch trait ring_cache (Mistral, Phi3: every
 * layer slides) use the same ring beyond their window (C > W) and declare
 * the local cache alone, model_model_kv_cache_local [2L, kv, W, d] (chat.py
 * calls that 'local_only' and makes the one state from chunk 0), with
 * rope_theta and its scaling on every layer and the same four functions;
 * with C <= W the unified kv_cache_0 and no rotate variant, as without a
 * window (graph_local_cache). The last prefill chunk
 * skips the model's last MLP for every architecture (ANEMLL keeps Gemma's).
 *
 * FP16 safety (Gemma 3): fp16_scale alpha multiplies the post-attention and
 * post-feedforward norm gains, (1 + w) -> alpha (1 + w) (with the embedding
 * table x alpha in the embeddings part): the residual stream shrinks by
 * alpha and the final norm cancels it. clamp clips the hidden states to
 * [-V, V] after every residual add (any architecture).
 *
 * Layers are split over chunks as ANEMLL does (the first L mod N chunks get
 * one more layer). Projections are 1x1 convs on [1,C,1,S] (Llama's o_proj a
 * `linear`), RMSNorm is layer_norm over concat(x, -x), RoPE uses constant
 * cos/sin tables computed here from the config (HF's formulas, including
 * the llama3 frequency bands, not ANEMLL's theta*factor shortcut).
 *
 * Weights are streamed: each tensor is read from the checkpoint, converted,
 * written to weight.bin (palettized when a LUT applies: more than 2048
 * elements, 8192 for Gemma 3 as its converter) and freed before the next,
 * so memory stays at the largest single tensor plus the MIL program (the
 * monolithic embedding table is read whole, as the embed stage does).
 * Output is deterministic: the same model and options give the same bytes.
 */
#ifndef ANEMAKE_GRAPH_H
#define ANEMAKE_GRAPH_H

#include "anemll/anemll.h"
#include "checkpoint/hfconfig.h"
#include "checkpoint/hfmodel.h"
#include "convert/lut.h"
#include "convert/weights.h"
#include "coreml/mlmodel.h"

#include <stddef.h>
#include <stdint.h>

/* The state every chunk declares (coremltools' spelling of ANEMLL's
 * model.model.kv_cache_0; runtimes look for the substring "kv_cache_0"). */
#define GRAPH_KV_STATE "model_model_kv_cache_0"
/* Gemma 3's pair, declared by every chunk in this order. */
#define GRAPH_KV_LOCAL "model_model_kv_cache_local"
#define GRAPH_KV_GLOBAL "model_model_kv_cache_global"

typedef enum graph_mode {
	GRAPH_DECODE,  /* one token: ANEMLL's infer / FFN */
	GRAPH_PREFILL, /* `batch` tokens: ANEMLL's prefill */
} graph_mode;

/* ------------------------------------------------------------------ */
/* Pure arithmetic                                                     */

/* Layers [*first, *first + *count) of chunk `chunk` (0-based) out of
 * n_chunks: base = L / N, the first L mod N chunks one layer more.
 * Requires 1 <= n_chunks <= n_layers and 0 <= chunk < n_chunks. */
void graph_chunk_layers(int n_layers, int n_chunks, int chunk, int *first, int *count);

/* Rows of each LM-head split: vocab / splits, plus one for the first
 * vocab mod splits heads, so they sum to vocab. sizes has `splits` entries. */
void graph_lm_head_sizes(int vocab, int splits, int *sizes);

/* RoPE inverse frequencies theta^(-2i/d), i < d/2 (d: the rotary dims of a
 * head), adjusted by rope_scaling as HF does: linear divides by factor;
 * llama3 divides the low band (wavelength > original_max / low_freq_factor)
 * by factor, keeps the high band (wavelength < original_max /
 * high_freq_factor) and blends in between; longrope divides by its short
 * factors (the tables use the long ones from original_max on and scale
 * cos/sin by attention_factor). An unknown scaling type is an error naming it. */
int graph_rope_inv_freq(const hf_rope_scaling *rs, double theta, int head_dim, double *inv_freq);

/* cos and sin tables, [rows][head_dim] fp16 each, row p column j =
 * cos/sin(p * inv_freq[j mod d/2]) (rotate-half layout: the two halves are
 * equal), computed in double and rounded once to fp16. */
int graph_rope_tables(const hf_config *c, int rows, uint16_t *cos_tab, uint16_t *sin_tab);
/* The same for base theta and scaling rs (NULL or ROPE_NONE: none), head dim d. */
int graph_rope_tables_base(const hf_rope_scaling *rs, double theta, int d, int rows, uint16_t *cos_tab,
			   uint16_t *sin_tab);

/* 1 when the sliding-window layers keep a local cache of their own at
 * context C: always for Gemma 3 (split_kv_cache, ANEMLL's layout), and for
 * the other ring_cache families (Mistral, Phi3) when their window is set
 * and below C (graph_rotates); else the one unified cache. */
int graph_local_cache(const hf_config *c, int context);

/* 1 when rotate functions exist at context C: a ring_cache family whose
 * sliding_window is set and below C. */
int graph_rotates(const hf_config *c, int context);

/* Slots of the local cache at context C: min(sliding_window, C) (Gemma 3
 * within its window: C, where ANEMLL instead raises the context to the
 * window); 0 without a local cache (graph_local_cache). */
int graph_local_len(const hf_config *c, int context);

/* The window W of sliding-window layers in the unified cache (Qwen with
 * use_sliding_window; Mistral and Phi3 only if they had no ring cache) when
 * it hides something at context C (W < C), else 0. Such layers keep all C
 * slots and attend position t from position q only when q - t < W (HF's
 * window): a band mask computed in the graph from current_pos and added to
 * causal_mask. */
int graph_band_window(const hf_config *c, int context);

/* Where layer `layer` keeps K in its cache at context C (V at the result +
 * *n_of_type): the number of earlier layers of the same type (local/global
 * with a local cache; with the unified cache, every layer: the layer
 * index). *local (may be NULL) is 1 for a layer of the local cache. */
int graph_cache_slot(const hf_config *c, int context, int layer, int *local, int *n_of_type);

/* 0 when rotate variants exist for this model, context and batch (prefill:
 * batch must divide the window), else -1 with one errf() line naming why. */
int graph_check_rotate(const hf_config *c, int context, int batch, graph_mode mode);

/* 0 when the builder supports this model at this context length
 * (architecture, RoPE type, head layout, sliding window), else -1 with one
 * errf() line naming what is not supported. */
int graph_check_model(const hf_config *c, int context);

/* ------------------------------------------------------------------ */
/* Builders                                                            */

typedef struct graph_chunk_opts {
	graph_mode mode;
	int context;          /* C: KV state length and mask width */
	int batch;            /* prefill tokens per call (B); ignored for decode */
	int chunk, nchunks;   /* chunk is 1-based, 1 <= chunk <= nchunks <= layers */
	int rotate;           /* infer_rotate / prefill_rotate of a ring cache (graph_check_rotate) */
	double fp16_scale;    /* FP16 scaling alpha in (0,1] on the post norms; 0 or 1: none */
	double clamp;         /* clip after every residual add to [-clamp, clamp]; 0: none */
	const char *function; /* program function; NULL: "main" with the
	                         description at the top level, else a function
	                         description of that name (multifunction) */
} graph_chunk_opts;

/* Append the chunk's program function and its description to m; weights go
 * through w. -1 with errf() on bad input (a LUT group that does not divide a
 * tensor's channels names the flag and the tensor). */
int graph_build_chunk(ml_model *m, weights_ctx *w, const hf_model *hf, const graph_chunk_opts *o);

/* The LM head ("main", top-level description): K = arch lm_head_splits
 * logits outputs, or argmax_idx/argmax_val when argmax is set. The head
 * is lm_head.weight, or the embedding matrix when tied. */
int graph_build_lm_head(ml_model *m, weights_ctx *w, const hf_model *hf, int argmax);

/* The whole model in one function (ANEMLL's monolithic parts): token ids
 * -> embeddings -> every layer -> the LM head.
 *   input  input_ids    int32 [1,S]   S = 1 (infer) or B (prefill), fixed
 *   input  position_ids int32 [S], causal_mask fp16 [1,1,S,C], current_pos int32 [1]
 *   output logits1..K [1,1,size_k] (infer; prefill: of row 0, no final norm,
 *          the last MLP skipped: a by-product runtimes ignore), or with
 *          argmax (infer only) argmax_idx/argmax_val; Gemma 3 prefill:
 *          output_hidden_states [1,1,H] (row 0) instead of logits
 *   state  the chunked layout's state(s)
 * Each part has its own LUT: the embedding table (palettized along vocab
 * rows, gathered), the layers, the head; the builder switches w->lut. */
typedef struct graph_mono_opts {
	graph_mode mode;
	int context, batch;     /* as graph_chunk_opts */
	int rotate, argmax;
	double fp16_scale, clamp;
	lut_spec lut_embed, lut_ffn, lut_head; /* bits 0: fp16 */
	const char *lut_embed_flag, *lut_ffn_flag, *lut_head_flag; /* their flags, for messages; NULL: "--lut" */
	const char *function;   /* NULL: "main" at the top level */
} graph_mono_opts;

int graph_build_monolithic(ml_model *m, weights_ctx *w, const hf_model *hf, const graph_mono_opts *o);

/* ------------------------------------------------------------------ */
/* Whole packages                                                      */

typedef struct graph_write_opts {
	lut_spec lut;              /* bits 0: fp16 weights */
	int threads;               /* quantizer threads, 0 = all cores */
	const char *cache_dir;     /* LUT cache (weights.h), NULL: none */
	const char *quality_path;  /* palettization sidecar JSON, NULL: none */
	lut_overrides *ov;         /* LUT overrides by tensor pattern (lutover.h), NULL: none */
	const struct calstats *stats; /* calibration statistics: activation-aware palettization, NULL: none */
	char summary[256];         /* out: weights_summary() of the package */
} graph_write_opts;

/* Build a part's program and description into m, emitting weights through w. */
typedef int (*graph_build_fn)(ml_model *m, weights_ctx *w, const void *ctx);
/* build() in check-only mode (weights.h): nothing is read or written, w
 * (initialised here; the caller releases it) records the tensors and their
 * sizes. -1 with errf() when the build fails. */
int graph_dry_run(graph_build_fn build, const void *ctx, weights_ctx *w);
/* Write a single-function package at `path`: build() fills the model, meta
 * its ANEMLL metadata; weights are palettized per wo (LUT cache, quality
 * sidecar, summary). Its tensors are the items of a progress report
 * (base/progress.h), counted first by a dry run. Atomic: the package appears whole or not at all; -1
 * with errf() on failure (the error of build() is kept). */
int graph_write_package(const char *path, graph_build_fn build, const void *ctx, const anemll_meta *meta,
			graph_write_opts *wo);

/* Write one chunk as a single-function package at `path` with ANEMLL's
 * metadata (FFN or Prefill). The package appears atomically or not at all.
 * -1 with errf() on failure. */
int graph_write_chunk(const char *path, const hf_model *hf, const graph_chunk_opts *o, graph_write_opts *wo);

/* A monolithic package with ANEMLL's metadata (wo->lut names the bits in
 * the metadata; o's three specs are what is applied). */
int graph_write_monolithic(const char *path, const hf_model *hf, const graph_mono_opts *o, graph_write_opts *wo);

/* The LM head package; `context` goes into the metadata only. */
int graph_write_lm_head(const char *path, const hf_model *hf, int context, int argmax, graph_write_opts *wo);

#endif
