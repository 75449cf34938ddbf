/* graph.h: the transformer parts of ANEMLL's interface as MIL programs.
 *
 * One builder, parameterised by the architecture traits of arch.h, writes the
 * decoder layers of Llama, Qwen 2.5 and Qwen 3 the way ANEMLL feeds them to
 * the Neural Engine (anemll-interface.md 2 and 3, and the op listings in
 * shared/reference/anemll-llama-tiny/listings):
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
 *
 * Layers are split over chunks as ANEMLL does (the first L mod N chunks get
 * one more layer). Projections are 1x1 convs on [1,C,1,S] (Llama's o_proj a
 * `linear`), RMSNorm is layer_norm over concat(x, -x), RoPE uses constant
 * cos/sin tables computed here from the config (HF's formulas, including
 * the llama3 frequency bands, not ANEMLL's theta*factor shortcut).
 *
 * Weights are streamed: each tensor is read from the checkpoint, converted,
 * written to weight.bin (palettized when a LUT applies) and freed before the
 * next, so memory stays at the largest single tensor plus the MIL program.
 * Output is deterministic: the same model and options give the same bytes.
 */
#ifndef ANEMAKE_GRAPH_H
#define ANEMAKE_GRAPH_H

#include "anemll.h"
#include "hfconfig.h"
#include "hfmodel.h"
#include "lut.h"
#include "mlmodel.h"
#include "weights.h"

#include <stddef.h>
#include <stdint.h>

/* The state every chunk declares (coremltools' spelling of ANEMLL's
 * model.model.kv_cache_0; runtimes look for the substring "kv_cache_0"). */
#define GRAPH_KV_STATE "model_model_kv_cache_0"

/* ------------------------------------------------------------------ */
/* Pure arithmetic                                                     */

/* Layers [*first, *first + *count) of chunk `chunk` (0-based) out of
 * n_chunks: base = L / N, the first L mod N chunks one layer more.
 * Requires 1 <= n_chunks <= n_layers and 0 <= chunk < n_chunks. */
void graph_chunk_layers(int n_layers, int n_chunks, int chunk, int *first, int *count);

/* Rows of each LM-head split: vocab / splits, plus one for the first
 * vocab mod splits heads, so they sum to vocab. sizes has `splits` entries. */
void graph_lm_head_sizes(int vocab, int splits, int *sizes);

/* RoPE inverse frequencies theta^(-2i/d), i < head_dim/2, adjusted by
 * rope_scaling as HF does: linear divides by factor; llama3 divides the low
 * band (wavelength > original_max / low_freq_factor) by factor, keeps the
 * high band (wavelength < original_max / high_freq_factor) and blends in
 * between. An unknown scaling type is an error naming it. */
int graph_rope_inv_freq(const hf_rope_scaling *rs, double theta, int head_dim, double *inv_freq);

/* cos and sin tables, [rows][head_dim] fp16 each, row p column j =
 * cos/sin(p * inv_freq[j mod d/2]) (rotate-half layout: the two halves are
 * equal), computed in double and rounded once to fp16. */
int graph_rope_tables(const hf_config *c, int rows, uint16_t *cos_tab, uint16_t *sin_tab);

/* 0 when the builder supports this model at this context length
 * (architecture, RoPE type, head layout, sliding window), else -1 with one
 * errf() line naming what is not supported. */
int graph_check_model(const hf_config *c, int context);

/* ------------------------------------------------------------------ */
/* Builders                                                            */

typedef enum graph_mode {
	GRAPH_DECODE,  /* one token: ANEMLL's infer / FFN */
	GRAPH_PREFILL, /* `batch` tokens: ANEMLL's prefill */
} graph_mode;

typedef struct graph_chunk_opts {
	graph_mode mode;
	int context;          /* C: KV state length and mask width */
	int batch;            /* prefill tokens per call (B); ignored for decode */
	int chunk, nchunks;   /* chunk is 1-based, 1 <= chunk <= nchunks <= layers */
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

/* ------------------------------------------------------------------ */
/* Whole packages                                                      */

typedef struct graph_write_opts {
	lut_spec lut;              /* bits 0: fp16 weights */
	int threads;               /* quantizer threads, 0 = all cores */
	const char *cache_dir;     /* LUT cache (weights.h), NULL: none */
	const char *quality_path;  /* palettization sidecar JSON, NULL: none */
	char summary[256];         /* out: weights_summary() of the package */
} graph_write_opts;

/* Build a part's program and description into m, emitting weights through w. */
typedef int (*graph_build_fn)(ml_model *m, weights_ctx *w, const void *ctx);
/* Write a single-function package at `path`: build() fills the model, meta
 * its ANEMLL metadata; weights are palettized per wo (LUT cache, quality
 * sidecar, summary). Atomic: the package appears whole or not at all; -1
 * with errf() on failure (the error of build() is kept). */
int graph_write_package(const char *path, graph_build_fn build, const void *ctx, const anemll_meta *meta,
			graph_write_opts *wo);

/* Write one chunk as a single-function package at `path` with ANEMLL's
 * metadata (FFN or Prefill). The package appears atomically or not at all.
 * -1 with errf() on failure. */
int graph_write_chunk(const char *path, const hf_model *hf, const graph_chunk_opts *o, graph_write_opts *wo);

/* The LM head package; `context` goes into the metadata only. */
int graph_write_lm_head(const char *path, const hf_model *hf, int context, int argmax, graph_write_opts *wo);

#endif
