/* weights.h: put one weight tensor into a package being built.
 *
 * Every stage turns checkpoint tensors into MIL values the same way: the fp16
 * values go to weight.bin as a blob-backed `const`, or, when a LUT spec is in
 * force and the tensor is eligible (rank > 1, more than 2048 elements, as
 * coremltools decides, or more than lut_min_elements when that is larger:
 * ANEMLL's Gemma 3 converter palettizes only tensors above 8192), they are
 * palettized and become
 *   <name>_palettized = constexpr_lut_to_dense(indices = uint<b>[shape] blob,
 *                                              lut = fp16[groups,1,..,2^b,1] blob)
 * with the two blobs bound as literal values in the op, exactly as
 * coremltools writes iOS 18 programs (coreml-format.md 3, 5 and 6).
 * The output-channel axis is 0, groups are contiguous blocks of channels.
 *
 * Palettization results are cached by content (lutcache.h) when a cache
 * directory is set, so a tensor quantized once is never quantized again.
 * The quality of every palettized tensor is recorded (relative RMS error,
 * SNR) so stages can report it and write it next to the package.
 */
#ifndef ANEMAKE_WEIGHTS_H
#define ANEMAKE_WEIGHTS_H

#include "convert/lut.h"
#include "convert/lutover.h"
#include "coreml/blob.h"
#include "coreml/mil.h"

typedef struct weights_quality {
	char *name;
	int bits;
	int64_t group; /* channels per table; 0 = per tensor */
	double rel_rms, snr_db;
} weights_quality;

/* A tensor a LUT applies to, as a check-only pass records it. */
typedef struct weights_target {
	char *source;     /* the checkpoint's name, e.g. "model.layers.0.mlp.gate_proj.weight" */
	const char *flag; /* w->lut_flag when recorded */
	lut_spec lut;
	int64_t channels; /* output channels (axis 0) */
} weights_target;

typedef struct weights_ctx {
	blob_writer *bw;   /* the package's weight.bin */
	lut_spec lut;      /* bits 0: no palettization; a builder may switch it per part */
	int64_t lut_min_elements; /* palettize only above this many elements (0: lut_eligible's rule alone) */
	int threads;       /* for the quantizer; 0 = all cores */
	const char *cache_dir; /* NULL: no LUT cache */
	const char *lut_flag; /* how messages name lut's origin; NULL: "--lut" */
	/* Overrides by tensor pattern (lutover.h), NULL: none; they win over lut.
	 * Check-only builds count their matches in them. */
	lut_overrides *ov;
	const char *alias; /* another name overrides match the next tensor by ("lm_head") */
	/* Calibration statistics (calstats.h), NULL: none. A tensor with an
	 * entry for its input is palettized activation-aware. */
	const struct calstats *stats;
	size_t n_weighted;
	size_t n_gptq; /* of them, with GPTQ (the statistics have E[x x^T]: lutgptq.h) */
	/* Check only (the plan, lutcheck.h): no data is read or written; every
	 * tensor the LUT applies to is recorded instead of palettized. */
	int check_only;
	weights_target *targets;
	size_t ntargets, targets_cap;
	size_t n_planned;        /* check only: tensors emitted, and their fp16 bytes */
	uint64_t planned_bytes;  /* (what the real pass will write: progress totals) */
	size_t n_dense, n_palettized, n_cached;
	uint64_t dense_bytes, palettized_bytes;
	weights_quality *quality;
	size_t nquality, quality_cap;
} weights_ctx;

/* Where stages keep the LUT cache unless told otherwise: OUTPUT/.anemake/lutcache. */
#define WEIGHTS_CACHE_SUBDIR ".anemake/lutcache"
/* The cache directory for a stage's --lut-cache value (NULL: the default
 * under output; "none": no cache, returns NULL). Caller frees. */
char *weights_cache_dir(const char *output, const char *opt);

void weights_init(weights_ctx *w, blob_writer *bw, const lut_spec *lut, int threads);
void weights_release(weights_ctx *w);

/* 1 when a tensor of this shape gets palettized under w's current LUT. */
int weights_lut_applies(const weights_ctx *w, size_t rank, const int64_t *shape);

/* Emit weight `name` with fp16 values `data` (row-major, `shape`) into block
 * b; `source` names it as the checkpoint does, for messages. Each one
 * counts as a tensor of the stage's progress report (base/progress.h). Returns the
 * name of the var holding the dense weight (name, or name_palettized), owned
 * by b's arena; NULL with errf() on failure (the LUT group size not dividing
 * the channel count is one, naming lut_flag, the spec and the tensor). In
 * check-only mode data may be NULL: nothing is written, a placeholder var
 * is returned. */
/* Rows [row0, row0 + n) of a tensor (axis 0) as fp16 into dst; 0 or -1 with errf(). */
typedef int (*weights_rows_fn)(void *ctx, uint64_t row0, uint64_t n, uint16_t *dst);
/* As weights_emit, reading the values through rows(ctx, ..): the tensor is
 * never held whole (an embedding table or an LM head is the largest tensor
 * of a model). A dense one is written a block of rows at a time; a
 * palettized one is palettized a block of whole LUT groups at a time (its
 * indices written, its tables kept: 2^bits fp16 per group), except with one
 * table for the whole tensor (group 0), which needs it whole. Same bytes
 * and quality figures either way. */
const char *weights_emit_rows(weights_ctx *w, mil_block *b, const char *name, const char *source,
			      weights_rows_fn rows, void *ctx, size_t rank, const int64_t *shape);
const char *weights_emit(weights_ctx *w, mil_block *b, const char *name, const char *source, const uint16_t *data,
			 size_t rank, const int64_t *shape);

/* Palettize through the LUT cache (NULL: none), activation-aware when colw
 * is set (lut_quantize_weighted), then with GPTQ's error compensation when
 * xtx is set (lutgptq.h, LUT_GPTQ_REFITS). 1: from the cache, 0: computed
 * (and stored), -1 with errf(). */
int weights_quantize_cached(const char *cache_dir, const char *name, const uint16_t *data, int64_t channels,
			    int64_t per_channel, const lut_spec *spec, const double *colw, const double *xtx, int threads,
			    lut_result *r);

/* The column weights of tensor `name` (a checkpoint name, or CALSTATS_HEAD)
 * from calibration statistics: E[x^2] of its input per channel, floored at
 * 1e-6 of their mean so every column counts a little. NULL when stats is
 * NULL or has no entry of per_channel values for it. Caller frees. */
double *weights_column_weights(const struct calstats *stats, const char *name, int64_t per_channel);
/* The second moments E[x x^T] of tensor `name`'s input ([per_channel]^2,
 * owned by stats) when calib --xtx recorded them, else NULL. */
const double *weights_xtx(const struct calstats *stats, const char *name, int64_t per_channel);

/* Sidecar "<package base>.quality.json": one entry per palettized tensor
 * (name, bits, group, rel_rms, snr_db) and the totals, the overrides in
 * force (lut_override, canonical) and the calibration statistics'
 * SHA-256 with the count of activation-weighted tensors (and "gptq", the
 * count of those with GPTQ, when any); written atomically.
 * Nothing is written (and an old sidecar removed) when nothing was palettized. */
int weights_write_quality(const weights_ctx *w, const char *path);

/* One line summarising what was emitted, for a stage's progress output. */
void weights_summary(const weights_ctx *w, char *buf, size_t cap);

#endif
