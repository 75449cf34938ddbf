/* anemll.h: ANEMLL's conventions for the parts anemake writes.
 *
 * File names and package metadata must be exactly what ANEMLL 0.3.5 writes,
 * because its runtimes find parts by name and read `com.anemll.*` metadata as
 * a fallback (anemll-interface.md sections 0, 7.4 and 12):
 *   <prefix>_embeddings[_lut<b>]
 *   <prefix>_lm_head[_lut<b>]
 *   <prefix>_{FFN,prefill,FFN_PF,...}[_lut<b>]_chunk_<ii>of<NN>   (1-based, 2 digits)
 * The LUT group size never appears in names. Metadata: shortDescription
 * "Anemll Model (<Part>) converted to CoreML", author and com.anemll.info
 * naming the converter, versionString, and the com.anemll.* keys that apply.
 */
#ifndef ANEMAKE_ANEMLL_H
#define ANEMAKE_ANEMLL_H

#include "base/version.h"
#include "coreml/mlmodel.h"

/* Base name (no extension) of a part; chunk/nchunks 0 for unchunked parts,
 * lut_bits 0 for no LUT. Caller frees. */
char *anemll_part_name(const char *prefix, const char *part, int lut_bits, int chunk, int nchunks);

typedef struct anemll_meta {
	const char *part_title;  /* "Embeddings", "LM Head", "FFN", "Prefill" */
	const char *part;        /* without a title: ANEMLL's split_part ("2_rotate",
	                          * "monolithic", ...), described as "Part <part>" */
	int context_length;      /* 0: omit each number that is 0 */
	int batch_size;
	int num_chunks, chunk_no;
	int lut_bits;
	int argmax_in_model;
	int vocab_size;
	const int *lm_head_chunk_sizes;
	int n_lm_head_chunks;
	const char *functions;   /* comma-joined, multifunction packages only */
	/* anemake's own keys (com.anemake.*), NULL: absent */
	const char *lut_override; /* the LUT overrides in force, canonical */
	const char *calibration;  /* SHA-256 of the calibration statistics (activation-aware) */
} anemll_meta;

/* Set description metadata and com.anemll.* keys as ANEMLL's AddMetadata. */
void anemll_set_metadata(ml_model *m, const anemll_meta *meta);

#endif
