/* calstats.h: activation statistics of a calibration text, as a file.
 *
 * The fp32 reference runs over a calibration text once (verify/calib.h)
 * and records, for every linear layer, the mean square E[x_k^2] of each
 * channel k of its input over the text's tokens; the converters weight the
 * palettization of that layer's weight columns by them (lut.h,
 * lut_quantize_weighted). This file format is how the two meet: it sits
 * in base because verify and convert may not include each other.
 *
 * Entries are keyed by the checkpoint's tensor name
 * ("model.layers.0.mlp.down_proj.weight"), the LM head's input by
 * CALSTATS_HEAD ("lm_head", the head may be the tied embedding matrix);
 * optional second moments under "<name>#xtx" (below).
 *
 * File (all integers little-endian, doubles IEEE binary64 little-endian):
 *   8 bytes "ANCALIB1", u64 tokens, u64 entries, then per entry
 *   u32 name length, the name (no NUL), u64 n, n doubles;
 *   then 32 bytes: SHA-256 of everything before.
 * Written atomically; a file failing any check is refused, naming it.
 */
#ifndef ANEMAKE_CALSTATS_H
#define ANEMAKE_CALSTATS_H

#include <stddef.h>
#include <stdint.h>

#define CALSTATS_HEAD "lm_head"
/* With calib --xtx, "<name>#xtx" holds E[x x^T] of that input, n x n
 * row-major (n^2 values): GPTQ's second moments (convert/lutgptq.h). */
#define CALSTATS_XTX_SUFFIX "#xtx"

typedef struct calstats_entry {
	char *name;
	uint64_t n;
	double *v; /* [n] */
} calstats_entry;

typedef struct calstats {
	calstats_entry *e;
	size_t n, cap;
	uint64_t tokens;    /* calibration tokens the means are over */
	uint8_t digest[32]; /* SHA-256 of the file as read or written: its identity */
} calstats;

/* Add (or replace) entry name with a copy of v[0..n). */
void calstats_set(calstats *s, const char *name, uint64_t n, const double *v);
/* The values for name if its entry has exactly n of them, else NULL. */
const double *calstats_find(const calstats *s, const char *name, uint64_t n);
int calstats_write(const char *path, calstats *s);
int calstats_read(const char *path, calstats *s);
void calstats_release(calstats *s);

#endif
