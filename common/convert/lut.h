/* lut.h: LUT palettization of fp16 weights (Core ML constexpr_lut_to_dense).
 *
 * A weight [C, ...] is viewed as C output channels (axis 0) of K elements
 * each. Channels are cut into contiguous groups of G (ANEMLL default 8;
 * G = 0 means one group for the whole tensor). Every group gets its own
 * lookup table of 2^b fp16 entries and every weight becomes a b-bit index
 * into its group's table, so out[c][k] = lut[c / G][idx[c][k]]
 * (coreml-format.md sections 5 and 6, anemll-interface.md section 4).
 *
 * The table is the optimal 1-D k-means of the group's values, as coremltools'
 * kmeans1d computes it, and the result is fully defined:
 *  - Values are clustered as distinct fp16 values weighted by their counts
 *    (-0 counts as +0). NaN or infinite weights are refused.
 *  - k = min(distinct values, 2^b). With fewer distinct values than entries
 *    the table holds exactly those values (lossless).
 *  - Clusters are contiguous runs of sorted values, chosen to minimise the
 *    squared error exactly (dynamic programming). Among equally good split
 *    points the leftmost is kept, i.e. the last cluster is made as long as
 *    possible, at every step, so ties always resolve the same way. No
 *    cluster is ever empty: there are exactly k.
 *  - Each entry is its cluster's weighted mean, computed in double and
 *    rounded to fp16 to nearest, ties to even. Entries are strictly
 *    ascending; a mean that rounds to -0 is stored as +0.
 *  - Unused entries (when k < 2^b) are 0, as in coremltools.
 *  - Each distinct value then takes the index of the nearest table entry,
 *    the lower index on a tie. Rounding may make a neighbouring entry
 *    closer than the cluster's own one; nearest assignment never does
 *    worse than keeping the clusters.
 * Results do not depend on the thread count.
 */
#ifndef ANEMAKE_LUT_H
#define ANEMAKE_LUT_H

#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------------------------
 * Spec: what the user asks for with --lut. */

/* bits 0 means "no LUT" (group is then 0 too). group 0 means per tensor. */
typedef struct lut_spec {
	int bits;  /* 0, or one of 1, 2, 3, 4, 6, 8 */
	int group; /* output channels per LUT; 0 = one LUT for the tensor */
	int group_default; /* 1: the spec named no group (group is then 8, or less: lut_group_fit) */
} lut_spec;

#define LUT_SPEC_DEFAULT_GROUP 8
/* Enough for any string lut_spec_format writes. */
#define LUT_SPEC_BUFSIZE 32

/* Parse ANEMLL's syntax: "none", "no", "false" or "" -> no LUT; "b" -> b bits,
 * group 8 (group_default set: where 8 does not divide every tensor the spec
 * applies to, the converters take the largest group below it that does,
 * lutcheck.h; ANEMLL writes such a model unquantized); "b,g" -> group g; "b,0", "b,tensor", "b,t" -> per tensor.
 * Keywords are case-insensitive and blanks around parts are ignored.
 * Returns 0, or -1 with errf() naming the bad spec. Whether g divides a
 * tensor's channel count is checked per tensor by lut_quantize. */
int lut_spec_parse(const char *s, lut_spec *out);

/* "none", "4,8" or "6,tensor": text that lut_spec_parse reads back. */
const char *lut_spec_format(const lut_spec *spec, char *buf, size_t size);

/* The largest group size <= max that divides n (n, max >= 1): 1 at worst. */
int64_t lut_group_fit(int64_t n, int64_t max);
/* "1, 2, 4": the divisors of n up to max, for messages. */
const char *lut_divisors_text(int64_t n, int64_t max, char *buf, size_t size);

/* 1 for the widths constexpr_lut_to_dense supports: 1, 2, 3, 4, 6, 8. */
int lut_bits_valid(int bits);

/* ----------------------------------------------------------------------------
 * Which tensors: coremltools compresses a const only when its rank is above
 * 1 and it has more than 2048 elements. Norm gains and biases never qualify. */

#define LUT_WEIGHT_THRESHOLD 2048
int lut_eligible(int rank, const int64_t *shape);

/* ----------------------------------------------------------------------------
 * Quantizer. */

typedef struct lut_result {
	int bits;            /* b; every table has 1 << b entries */
	int64_t channels;    /* C, the output-channel axis (axis 0) */
	int64_t per_channel; /* K, elements per channel (product of the other dims) */
	int64_t group;       /* channels per table; C when per tensor */
	int64_t groups;      /* C / group */
	uint16_t *lut;       /* [groups][1 << bits] fp16, ascending, unused entries 0 */
	uint8_t *indices;    /* [C * K] one index per weight, unpacked, row-major */
	/* Quality of the dequantized W' (summed per distinct value x count, in
	 * double, in group order): */
	double rel_rms; /* ||W - W'|| / ||W||; 0 if W = 0 */
	double snr_db;  /* 10 log10(||W||^2 / ||W - W'||^2); +inf when lossless */
	/* [groups] each group's ||W - W'||^2 and ||W||^2, which rel_rms and
	 * snr_db sum in group order (lut_error_add); NULL when not known (a
	 * result loaded from a cache entry of a whole tensor). */
	double *group_sse, *group_energy;
	/* The indices packed at `bits` per element (blob.h packing), set instead
	 * of `indices` by lutcache_load_packed: what weight.bin stores. */
	uint8_t *packed;
} lut_result;

/* The error figures of a tensor palettized a block of rows (whole groups)
 * at a time: add each block's result in row order, then lut_error_finish
 * gives the very rel_rms and snr_db of palettizing the tensor at once. */
typedef struct lut_error {
	double sse, energy;
} lut_error;
void lut_error_add(lut_error *e, const lut_result *r);
void lut_error_finish(const lut_error *e, double *rel_rms, double *snr_db);

/* Palettize the fp16 weight w viewed as [channels, per_channel] with `bits`
 * bits and `group` channels per table (0 = per tensor). threads = 0 uses
 * every online core; each thread takes a contiguous range of groups. Memory:
 * the result (one byte per weight) plus ~5 MB of scratch per thread, and
 * (k-1) x distinct values x 2 bytes of split points: up to 32 MB for an
 * 8-bit table over ~64K distinct values, ~0.5 MB for 4 bits, group 8.
 * `name` is only used in messages. Returns 0, or -1 with errf() for an
 * unsupported width, a group size that does not divide the channel count,
 * or a NaN/inf weight; *out is then left empty. Free with lut_result_release. */
int lut_quantize(const char *name, const uint16_t *w, int64_t channels, int64_t per_channel, int bits,
		 int64_t group, int threads, lut_result *out);

/* Activation-aware: the same with the error of weight [c][k] counted
 * colw[k] times (colw: [per_channel], positive, e.g. E[x_k^2] of the input
 * the weight multiplies), so each group's table minimises
 * sum colw[k] (W[c][k] - W'[c][k])^2, the expected squared output error
 * when input channels are uncorrelated. A distinct value's weight is the
 * sum of its elements' colw, added in element order; everything else
 * (ties, rounding, nearest assignment, thread independence) is as above.
 * rel_rms and snr_db stay unweighted. colw NULL: lut_quantize. */
int lut_quantize_weighted(const char *name, const uint16_t *w, int64_t channels, int64_t per_channel, int bits,
			  int64_t group, const double *colw, int threads, lut_result *out);

/* d (|d| <= 65504) as the fp16 a table entry holds: nearest, ties to even,
 * -0 as +0. */
uint16_t lut_round_fp16(double d);

/* Free what lut_quantize allocated and zero *r. NULL-tolerant. */
void lut_result_release(lut_result *r);

/* out[c][k] = lut[c / group][indices[c][k]] for every weight (group 0 = per
 * tensor). Returns -1 with errf() if an index does not fit in `bits` or the
 * shape is inconsistent. */
int lut_dequantize(const uint16_t *lut, const uint8_t *indices, int bits, int64_t channels,
		   int64_t per_channel, int64_t group, uint16_t *out);

/* ----------------------------------------------------------------------------
 * The clustering core, exposed for tests and other callers.
 *
 * Optimal weighted 1-D k-means of n distinct values x[0] < ... < x[n-1] with
 * weights w[i] > 0: splits them into m = min(k, n) contiguous clusters,
 * cluster c being x[bounds[c]] .. x[bounds[c+1]-1] (bounds has m+1 entries,
 * bounds[0] = 0, bounds[m] = n), minimising sum w (x - weighted mean)^2.
 * Returns m, or -1 with errf() for bad arguments (n or k < 1, n > 65536,
 * min(k, n) > 256 unless k >= n, x not strictly ascending or not finite,
 * w not positive). */
int lut_kmeans1d(const double *x, const double *w, int n, int k, int *bounds);

#endif
