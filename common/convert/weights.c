/* weights.c: blob consts and palettized weights (see weights.h). */
#include "convert/weights.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/progress.h"
#include "base/util.h"
#include "base/calstats.h"
#include "convert/lutcache.h"
#include "convert/lutgptq.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <unistd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *weights_cache_dir(const char *output, const char *opt)
{
	if (opt && (streq(opt, "none") || !*opt))
		return NULL;
	return opt ? xstrdup(opt) : path_join(output, WEIGHTS_CACHE_SUBDIR);
}

void weights_init(weights_ctx *w, blob_writer *bw, const lut_spec *lut, int threads)
{
	memset(w, 0, sizeof *w);
	w->bw = bw;
	if (lut)
		w->lut = *lut;
	w->threads = threads;
}

void weights_release(weights_ctx *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nquality; i++)
		free(w->quality[i].name);
	free(w->quality);
	for (size_t i = 0; i < w->ntargets; i++)
		free(w->targets[i].source);
	free(w->targets);
	memset(w, 0, sizeof *w);
}

static mil_dtype index_dtype(int bits)
{
	switch (bits) {
	case 1: return MIL_UINT1;
	case 2: return MIL_UINT2;
	case 3: return MIL_UINT3;
	case 4: return MIL_UINT4;
	case 6: return MIL_UINT6;
	case 8: return MIL_UINT8;
	}
	BUG("unsupported LUT width %d", bits);
}

static int64_t numel(size_t rank, const int64_t *shape)
{
	int64_t n = 1;
	for (size_t i = 0; i < rank; i++)
		n *= shape[i];
	return n;
}

/* The const of a dense blob at metadata offset off. */
static const char *dense_const(weights_ctx *w, mil_block *b, const char *name, uint64_t off, size_t rank,
			       const int64_t *shape)
{
	size_t n = (size_t)numel(rank, shape);
	mil_type *t = mil_type_tensor(b->arena, MIL_FP16, rank, shape);
	mil_block_add_const(b, name, mil_value_blob(b->arena, t, NULL, off));
	w->n_dense++;
	w->dense_bytes += n * 2;
	info(2, "%s: fp16, %zu values", name, n); /* --verbose: every tensor as it is written */
	return mil_strdup(b->arena, name);
}

static const char *emit_dense(weights_ctx *w, mil_block *b, const char *name, const uint16_t *data, size_t rank,
			      const int64_t *shape)
{
	uint64_t off;
	if (blob_append_tensor(w->bw, MIL_FP16, data, (size_t)numel(rank, shape), &off) != 0)
		return NULL;
	return dense_const(w, b, name, off, rank, shape);
}

#define ROW_BLOCK_BYTES (4u << 20) /* per block of rows written at once */

/* One blob written a block of rows at a time. */
static const char *emit_dense_rows(weights_ctx *w, mil_block *b, const char *name, weights_rows_fn rows, void *ctx,
				   size_t rank, const int64_t *shape)
{
	uint64_t off, cols = (uint64_t)(numel(rank, shape) / (shape[0] ? shape[0] : 1));
	uint64_t step = cols ? ROW_BLOCK_BYTES / 2 / cols : 1;
	step = step ? step : 1;
	uint16_t *buf = xmalloc(xmul((size_t)(step * cols), 2) + 2);
	int rc = blob_begin(w->bw, mil_to_blob_dtype(MIL_FP16), (uint64_t)numel(rank, shape) * 2, 0, &off);
	if (rc != 0) {
		free(buf);
		return NULL;
	}
	for (uint64_t r = 0; rc == 0 && r < (uint64_t)shape[0]; r += step) {
		uint64_t n = (uint64_t)shape[0] - r < step ? (uint64_t)shape[0] - r : step;
		if (rows(ctx, r, n, buf) != 0) {
			free(buf);
			return NULL; /* mid-blob: the package is abandoned, blob_end would rightly object */
		}
		rc = blob_write(w->bw, buf, (size_t)(n * cols) * 2);
		progress_partial(n * cols * 2); /* a 1 GB embedding table is one item */
	}
	free(buf);
	if (blob_end(w->bw) != 0 || rc != 0)
		return NULL;
	return dense_const(w, b, name, off, rank, shape);
}

static void record_quality(weights_ctx *w, const char *name, int bits, double rel_rms, double snr_db)
{
	GROW(w->quality, w->quality_cap, w->nquality + 1);
	weights_quality *q = &w->quality[w->nquality++];
	q->name = xstrdup(name);
	q->bits = bits;
	q->group = w->lut.group;
	q->rel_rms = rel_rms;
	q->snr_db = snr_db;
	info(2, "%s: LUT%d group %d, relative RMS error %.4g", name, bits, w->lut.group, rel_rms);
}

/* The column weights of a tensor's palettization: the calibration
 * statistics of its input (E[x^2] per channel), floored at 1e-6 of their
 * mean so every column counts a little; NULL without statistics for it (the
 * embedding table, which is gathered, not multiplied). Caller frees. */
double *weights_column_weights(const struct calstats *stats, const char *name, int64_t per_channel)
{
	const double *v = stats ? calstats_find(stats, name, (uint64_t)per_channel) : NULL;
	if (!v)
		return NULL;
	double mean = 0;
	for (int64_t k = 0; k < per_channel; k++)
		mean += v[k] / (double)per_channel;
	double *c = xmalloc(xmul((size_t)per_channel, sizeof *c)), floor = mean > 0 ? 1e-6 * mean : 1;
	for (int64_t k = 0; k < per_channel; k++)
		c[k] = v[k] > floor ? v[k] : floor;
	return c;
}

const double *weights_xtx(const struct calstats *stats, const char *name, int64_t per_channel)
{
	if (!stats)
		return NULL;
	char *key = xasprintf("%s%s", name, CALSTATS_XTX_SUFFIX);
	const double *v = calstats_find(stats, key, (uint64_t)per_channel * (uint64_t)per_channel);
	free(key);
	return v;
}

/* packed: a cached result may come with its indices packed (r->packed). */
static int quantize_cached(const char *cache_dir, const char *name, const uint16_t *data, int64_t channels,
			   int64_t per_channel, const lut_spec *spec, const double *colw, const double *xtx, int threads,
			   int packed, lut_result *r)
{
	uint8_t key[32];
	if (cache_dir) {
		lutcache_key(data, channels, per_channel, spec->bits, spec->group, colw, xtx, key);
		if ((packed ? lutcache_load_packed : lutcache_load)(cache_dir, key, channels, per_channel, spec->bits,
								    spec->group, r))
			return 1;
	}
	if (lut_quantize_weighted(name, data, channels, per_channel, spec->bits, spec->group, colw, threads, r) != 0)
		return -1;
	if (xtx && lut_gptq(name, data, xtx, LUT_GPTQ_REFITS, threads, r) != 0) {
		lut_result_release(r);
		return -1;
	}
	if (cache_dir && lutcache_store(cache_dir, key, r) != 0)
		warn("cannot store LUT cache entry for '%s': %s", name, errmsg());
	return 0;
}

int weights_quantize_cached(const char *cache_dir, const char *name, const uint16_t *data, int64_t channels,
			    int64_t per_channel, const lut_spec *spec, const double *colw, const double *xtx, int threads,
			    lut_result *r)
{
	return quantize_cached(cache_dir, name, data, channels, per_channel, spec, colw, xtx, threads, 0, r);
}

/* The column weights of a tensor from the statistics (NULL: none) and, with
 * them, its input's second moments for GPTQ (*xtx, NULL: none), counted. */
static double *tensor_column_weights(weights_ctx *w, const char *source, int64_t per_channel, const double **xtx)
{
	char *key = w->alias ? xstrdup(CALSTATS_HEAD) : xstrndup(source, strcspn(source, " "));
	double *colw = weights_column_weights(w->stats, key, per_channel);
	*xtx = colw ? weights_xtx(w->stats, key, per_channel) : NULL;
	free(key);
	w->n_weighted += colw != NULL;
	w->n_gptq += *xtx != NULL;
	return colw;
}

/* Quantize through the cache, activation-aware when the statistics know the tensor. */
static int quantize(weights_ctx *w, const char *name, const char *source, const uint16_t *data, int64_t channels,
		    int64_t per_channel, lut_result *r)
{
	const double *xtx;
	double *colw = tensor_column_weights(w, source, per_channel, &xtx);
	int rc = quantize_cached(w->cache_dir, name, data, channels, per_channel, &w->lut, colw, xtx, w->threads, 1, r);
	free(colw);
	w->n_cached += rc == 1;
	return rc < 0 ? -1 : 0;
}

/* lut shape: rank + 2 dims, [groups, 1, ..., 1, 2^bits, 1] */
static mil_type *lut_type(mil_arena *a, size_t rank, int64_t groups, int bits)
{
	int64_t dims[16];
	ASSERT(rank + 2 <= 16);
	for (size_t i = 0; i < rank + 2; i++)
		dims[i] = 1;
	dims[0] = groups;
	dims[rank] = (int64_t)1 << bits;
	return mil_type_tensor(a, MIL_FP16, rank + 2, dims);
}

/* The constexpr_lut_to_dense op over the blobs at idx_off and lut_off, counted. */
static const char *palettized_op(weights_ctx *w, mil_block *b, const char *name, size_t rank, const int64_t *shape,
				 int bits, int64_t groups, uint64_t idx_off, uint64_t lut_off)
{
	mil_arena *a = b->arena;
	char *pname = xasprintf("%s_palettized", name);
	mil_op *op = mil_block_add_op(b, "constexpr_lut_to_dense", pname);
	mil_op_bind_value(op, "indices",
			  mil_value_blob(a, mil_type_tensor(a, index_dtype(bits), rank, shape), NULL, idx_off));
	mil_op_bind_value(op, "lut", mil_value_blob(a, lut_type(a, rank, groups, bits), NULL, lut_off));
	mil_op_add_output(op, pname, mil_type_tensor(a, MIL_FP16, rank, shape));
	char *out = mil_strdup(a, pname);
	free(pname);
	w->n_palettized++;
	w->palettized_bytes += blob_packed_size((size_t)numel(rank, shape), bits) + (size_t)(groups << bits) * 2;
	return out;
}

static const char *emit_palettized(weights_ctx *w, mil_block *b, const char *name, const char *source,
				   const uint16_t *data, size_t rank, const int64_t *shape)
{
	lut_result r;
	int64_t per_channel = numel(rank, shape) / shape[0];
	if (quantize(w, name, source, data, shape[0], per_channel, &r) != 0)
		return NULL;
	uint64_t idx_off, lut_off;
	size_t n = (size_t)(shape[0] * per_channel);
	int rc = r.packed ? blob_append_tensor(w->bw, index_dtype(r.bits), r.packed, n, &idx_off)
			  : blob_append_unpacked(w->bw, index_dtype(r.bits), r.indices, n, &idx_off);
	if (rc == 0)
		rc = blob_append_tensor(w->bw, MIL_FP16, r.lut, (size_t)(r.groups << r.bits), &lut_off);
	const char *out = NULL;
	if (rc == 0) {
		record_quality(w, name, r.bits, r.rel_rms, r.snr_db);
		out = palettized_op(w, b, name, rank, shape, r.bits, r.groups, idx_off, lut_off);
	}
	lut_result_release(&r);
	return out;
}

/* Rows per block of a streamed palettization: whole groups, about
 * ROW_BLOCK_BYTES of fp16, and a multiple of 8 values, so every block's
 * packed indices start on a byte boundary. */
static uint64_t palette_block_rows(uint64_t group, uint64_t per_channel)
{
	uint64_t step = ROW_BLOCK_BYTES / 2 / per_channel / group * group;
	step = step ? step : group;
	while ((step * per_channel) % 8)
		step += group;
	return step;
}

/* A palettized tensor (group > 0, dividing the channels) read, palettized
 * and written a block of whole groups at a time: memory is one block, its
 * indices and the tensor's tables (2^bits entries per group), never the
 * tensor. Groups are independent and the error figures are summed group
 * after group (lut_error), so the bytes and the figures are those of
 * palettizing it whole. Each block goes through the cache on its own. */
static const char *emit_palettized_rows(weights_ctx *w, mil_block *b, const char *name, const char *source,
					weights_rows_fn rows, void *ctx, size_t rank, const int64_t *shape)
{
	uint64_t C = (uint64_t)shape[0], K = (uint64_t)(numel(rank, shape) / shape[0]), G = (uint64_t)w->lut.group;
	uint64_t step = palette_block_rows(G, K);
	int bits = w->lut.bits;
	size_t nlut = (size_t)1 << bits;
	mil_dtype idt = index_dtype(bits);
	uint16_t *buf = xmalloc(xmul((size_t)(step < C ? step : C), (size_t)K * 2) + 2);
	uint16_t *lut = xcalloc((size_t)(C / G) * nlut, 2);
	const double *xtx;
	double *colw = tensor_column_weights(w, source, (int64_t)K, &xtx);
	lut_error err = {0, 0};
	uint64_t idx_off = 0, lut_off = 0, cached = 0, blocks = 0;
	int rc = blob_begin_unpacked(w->bw, idt, (size_t)(C * K), &idx_off);
	for (uint64_t r = 0; rc == 0 && r < C; r += step, blocks++) {
		uint64_t n = C - r < step ? C - r : step;
		lut_result br;
		rc = rows(ctx, r, n, buf);
		int q = rc == 0 ? quantize_cached(w->cache_dir, name, buf, (int64_t)n, (int64_t)K, &w->lut, colw,
						  xtx, w->threads, 1, &br)
				: -1;
		rc = q < 0 ? -1 : 0;
		if (rc == 0) {
			cached += q == 1;
			lut_error_add(&err, &br);
			memcpy(lut + (size_t)(r / G) * nlut, br.lut, (size_t)(n / G) * nlut * 2);
			/* (each block's indices start on a byte boundary: palette_block_rows) */
			rc = br.packed ? blob_write(w->bw, br.packed, blob_packed_size((size_t)(n * K), bits))
				       : blob_write_unpacked(w->bw, idt, br.indices, (size_t)(n * K));
			lut_result_release(&br);
		}
	}
	free(buf);
	free(colw);
	const char *out = NULL;
	/* a failure mid-blob abandons the package: blob_end would rightly object */
	if (rc == 0 && blob_end(w->bw) == 0 &&
	    blob_append_tensor(w->bw, MIL_FP16, lut, (size_t)(C / G) * nlut, &lut_off) == 0) {
		double rel_rms, snr_db;
		lut_error_finish(&err, &rel_rms, &snr_db);
		record_quality(w, name, bits, rel_rms, snr_db);
		w->n_cached += cached == blocks;
		out = palettized_op(w, b, name, rank, shape, bits, (int64_t)(C / G), idx_off, lut_off);
	}
	free(lut);
	return out;
}

int weights_lut_applies(const weights_ctx *w, size_t rank, const int64_t *shape)
{
	return w->lut.bits && lut_eligible((int)rank, shape) && numel(rank, shape) > w->lut_min_elements;
}

/* Check-only: a const var of the right type with no bytes behind it. */
static const char *emit_placeholder(weights_ctx *w, mil_block *b, const char *name, const char *source, size_t rank,
				    const int64_t *shape)
{
	if (weights_lut_applies(w, rank, shape)) {
		GROW(w->targets, w->targets_cap, w->ntargets + 1);
		w->targets[w->ntargets++] = (weights_target){xstrdup(source), w->lut_flag, w->lut, shape[0]};
	}
	mil_type *t = mil_type_tensor(b->arena, MIL_FP16, rank, shape);
	mil_block_add_const(b, name, mil_value_blob(b->arena, t, NULL, 0));
	w->n_planned++;
	w->planned_bytes += (uint64_t)numel(rank, shape) * 2;
	return mil_strdup(b->arena, name);
}

/* A tensor a LUT could palettize at all, whatever the spec. */
static int palettizable(const weights_ctx *w, size_t rank, const int64_t *shape)
{
	return lut_eligible((int)rank, shape) && numel(rank, shape) > w->lut_min_elements;
}

/* The override a tensor falls under, matched on its checkpoint name (the
 * source up to any note after a blank). */
static lut_override *override_of(const weights_ctx *w, const char *source, size_t rank, const int64_t *shape)
{
	if (!w->ov || !w->ov->n || !palettizable(w, rank, shape))
		return NULL;
	size_t n = strcspn(source, " ");
	char *name = xstrndup(source, n);
	lut_override *o = lut_overrides_find(w->ov, name, w->alias);
	free(name);
	return o;
}

static const char *emit_one(weights_ctx *w, mil_block *b, const char *name, const char *source, const uint16_t *data,
			    size_t rank, const int64_t *shape);

const char *weights_emit(weights_ctx *w, mil_block *b, const char *name, const char *source, const uint16_t *data,
			 size_t rank, const int64_t *shape)
{
	ASSERT(rank >= 1 && rank <= 8);
	lut_override *o = override_of(w, source, rank, shape);
	if (!o)
		return emit_one(w, b, name, source, data, rank, shape);
	lut_spec lut = w->lut;
	const char *flag = w->lut_flag;
	w->lut = o->spec;
	w->lut_flag = o->text;
	if (w->check_only)
		o->matched++;
	const char *v = emit_one(w, b, name, source, data, rank, shape);
	w->lut = lut;
	w->lut_flag = flag;
	return v;
}

static const char *emit_data(weights_ctx *w, mil_block *b, const char *name, const char *source,
			     const uint16_t *data, size_t rank, const int64_t *shape);

/* One tensor with the spec in force (check-only: its placeholder), counted in the progress report. */
static const char *emit_one(weights_ctx *w, mil_block *b, const char *name, const char *source, const uint16_t *data,
			    size_t rank, const int64_t *shape)
{
	if (w->check_only)
		return emit_placeholder(w, b, name, source, rank, shape);
	const char *var = emit_data(w, b, name, source, data, rank, shape);
	if (var)
		progress_add(1, (uint64_t)numel(rank, shape) * 2);
	return var;
}

/* The dense or palettized weight; NULL with errf() when the LUT's group does not fit. */
static const char *emit_data(weights_ctx *w, mil_block *b, const char *name, const char *source,
			     const uint16_t *data, size_t rank, const int64_t *shape)
{
	if (!weights_lut_applies(w, rank, shape))
		return emit_dense(w, b, name, data, rank, shape);
	if (w->lut.group > 0 && shape[0] % w->lut.group) {
		char spec[LUT_SPEC_BUFSIZE], div[128];
		const char *flag = w->lut_flag ? w->lut_flag : "--lut";
		int is_override = w->ov && strchr(flag, '=') != NULL; /* an override's text names its spec */
		errf("%s %s: %s has %lld output channels; groups that divide it: %s", is_override ? w->ov->flag : flag,
		     is_override ? flag : lut_spec_format(&w->lut, spec, sizeof spec), source, (long long)shape[0],
		     lut_divisors_text(shape[0], w->lut.group, div, sizeof div));
		return NULL;
	}
	return emit_palettized(w, b, name, source, data, rank, shape);
}

const char *weights_emit_rows(weights_ctx *w, mil_block *b, const char *name, const char *source,
			      weights_rows_fn rows, void *ctx, size_t rank, const int64_t *shape)
{
	ASSERT(rank >= 1 && rank <= 8);
	if (w->check_only) /* reads no data */
		return weights_emit(w, b, name, source, NULL, rank, shape);
	lut_override *o = override_of(w, source, rank, shape);
	lut_spec lut = w->lut;
	const char *flag = w->lut_flag, *v;
	if (o) {
		w->lut = o->spec;
		w->lut_flag = o->text;
	}
	if (!weights_lut_applies(w, rank, shape))
		v = emit_dense_rows(w, b, name, rows, ctx, rank, shape);
	else if (w->lut.group > 0 && shape[0] % w->lut.group == 0)
		v = emit_palettized_rows(w, b, name, source, rows, ctx, rank, shape);
	else { /* one table for the tensor needs it whole; a group that does not fit is refused */
		uint16_t *data = xmalloc(xmul((size_t)numel(rank, shape), 2) + 2);
		v = rows(ctx, 0, (uint64_t)shape[0], data) == 0 ? emit_data(w, b, name, source, data, rank, shape) : NULL;
		free(data);
	}
	if (v)
		progress_add(1, (uint64_t)numel(rank, shape) * 2);
	w->lut = lut;
	w->lut_flag = flag;
	return v;
}

static cJSON *quality_json(const weights_ctx *w)
{
	cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "tensors");
	double worst = 0, sum = 0;
	for (size_t i = 0; i < w->nquality; i++) {
		const weights_quality *q = &w->quality[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", q->name);
		cJSON_AddNumberToObject(o, "bits", q->bits);
		cJSON_AddNumberToObject(o, "group", (double)q->group);
		cJSON_AddNumberToObject(o, "rel_rms", q->rel_rms);
		if (isfinite(q->snr_db))
			cJSON_AddNumberToObject(o, "snr_db", q->snr_db);
		else
			cJSON_AddNullToObject(o, "snr_db"); /* lossless */
		cJSON_AddItemToArray(arr, o);
		worst = q->rel_rms > worst ? q->rel_rms : worst;
		sum += q->rel_rms;
	}
	cJSON_AddNumberToObject(root, "palettized", (double)w->n_palettized);
	if (w->ov && w->ov->n) {
		char *ov = lut_overrides_format(w->ov);
		cJSON_AddStringToObject(root, "lut_override", ov);
		free(ov);
	}
	if (w->stats) { /* activation-aware: which statistics, and how many tensors had some */
		char hex[65];
		sha256_hex(w->stats->digest, hex);
		cJSON_AddStringToObject(root, "calibration_sha256", hex);
		cJSON_AddNumberToObject(root, "activation_weighted", (double)w->n_weighted);
		if (w->n_gptq) /* only with calib --xtx statistics: sidecars without them stay as they were */
			cJSON_AddNumberToObject(root, "gptq", (double)w->n_gptq);
	}
	cJSON_AddNumberToObject(root, "dense", (double)w->n_dense);
	cJSON_AddNumberToObject(root, "worst_rel_rms", worst);
	cJSON_AddNumberToObject(root, "mean_rel_rms", w->nquality ? sum / (double)w->nquality : 0);
	return root;
}

int weights_write_quality(const weights_ctx *w, const char *path)
{
	if (!w->nquality) {
		unlink(path);
		return 0;
	}
	return write_json_atomic(path, quality_json(w));
}

void weights_summary(const weights_ctx *w, char *buf, size_t cap)
{
	double worst = 0;
	for (size_t i = 0; i < w->nquality; i++)
		if (w->quality[i].rel_rms > worst)
			worst = w->quality[i].rel_rms;
	if (w->n_palettized)
		snprintf(buf, cap,
			 "%zu tensors palettized (%zu from cache, %.1f MB, worst relative RMS error %.4f), %zu dense fp16 (%.1f MB)",
			 w->n_palettized, w->n_cached, w->palettized_bytes / 1e6, worst, w->n_dense, w->dense_bytes / 1e6);
	else
		snprintf(buf, cap, "%zu dense fp16 tensors (%.1f MB)", w->n_dense, w->dense_bytes / 1e6);
}
