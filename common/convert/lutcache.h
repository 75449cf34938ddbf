/* lutcache.h: palettization results cached on disk by content.
 *
 * Quantizing is where conversion time goes, and the same weights are
 * quantized again and again: by `ffn` and `prefill` for the same chunk, and
 * by every re-conversion of a model at another context length. So each
 * result is stored under a key that is the SHA-256 of everything it depends
 * on: a format tag, the fp16 tensor bytes, the shape [channels,
 * per_channel], bits and group size, and for activation-aware results the
 * column weights (lut_quantize_weighted) and with GPTQ the input's second
 * moments and the number of refits (lutgptq.h). The same key always gives byte-identical
 * results, which also makes the infer and prefill functions of a chunk hold
 * identical blobs (what combine's deduplication relies on).
 *
 * Entry file "<dir>/<key hex>.lut" (all integers little-endian):
 *   1. 8 bytes   magic "ANLUTC1\0"
 *   2. 32 bytes  the key
 *   3. u32 bits, u32 flags, i64 channels, i64 per_channel, i64 group,
 *      f64 rel_rms, f64 snr_db
 *   4. u64 Z: length of the zstd frame that follows
 *   5. Z bytes   zstd frame of: lut (groups * 2^bits fp16) then the indices
 *                packed LSB-first at `bits` per element (blob.h packing),
 *                then, with flag bit 0 (always written; entries of earlier
 *                versions have flags 0), each group's squared error (f64
 *                [groups]) and energy (f64 [groups]): what a tensor
 *                palettized in row blocks sums (lut_error_add)
 *   6. 32 bytes  SHA-256 of bytes 1..5
 * A missing, truncated or corrupted entry (any check failing) is treated as
 * absent: the caller recomputes and overwrites it, never uses it.
 * Entries are written to a temporary name and renamed.
 */
#ifndef ANEMAKE_LUTCACHE_H
#define ANEMAKE_LUTCACHE_H

#include "convert/lut.h"

#include <stdint.h>

/* Key for a tensor of `channels` x `per_channel` fp16 values; colw
 * [per_channel] or NULL (unweighted); xtx [per_channel]^2 or NULL (no GPTQ,
 * lutgptq.h; the key then is what it was before GPTQ existed). */
void lutcache_key(const uint16_t *w, int64_t channels, int64_t per_channel, int bits, int64_t group,
		  const double *colw, const double *xtx, uint8_t key[32]);
/* 1: *r filled from the cache; 0: no valid entry (r untouched). */
int lutcache_load(const char *dir, const uint8_t key[32], int64_t channels, int64_t per_channel, int bits,
		  int64_t group, lut_result *r);
/* The same with the indices left packed (r->packed, r->indices NULL), as
 * weight.bin stores them: no unpacking and packing again. */
int lutcache_load_packed(const char *dir, const uint8_t key[32], int64_t channels, int64_t per_channel, int bits,
			 int64_t group, lut_result *r);
/* Store r under key; -1 with errf() when the entry cannot be written. */
int lutcache_store(const char *dir, const uint8_t key[32], const lut_result *r);

#endif
