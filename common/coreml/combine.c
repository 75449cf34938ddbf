/* combine.c: N functions of N packages into one multifunction package with
 * one deduplicated weight.bin (see combine.h for the contract).
 *
 * Inputs: the source .mlpackages (model.mlmodel of a few MB, weight.bin up to
 * the ~1 GB iOS limit each). Output: one .mlpackage whose weight.bin holds
 * each distinct blob once, so an FFN + prefill pair of one chunk costs about
 * what the FFN alone costs. Work: decode each source model, copy its function
 * into the new program, then walk the copied function's values and rewrite
 * every blob reference: look the blob's bytes (in the source's mapping) up
 * by a fingerprint, confirmed byte for byte, and either point at the copy
 * already written or stream the bytes into the new weight.bin.
 */
#include "coreml/combine.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/progress.h"
#include "base/util.h"
#include "coreml/blob.h"
#include "coreml/mil.h"
#include "coreml/mlmodel.h"
#include "coreml/mlpackage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* stat: source weight.bin sizes */

/* Bytes handed to blob_write at a time: bounds each write while the source
 * stays mapped (the kernel pages it in and out as needed). */
#define COPY_WINDOW ((size_t)1 << 20)

/* ------------------------------------------------------------------ */
/* Sources                                                             */

typedef struct source {
	const combine_source *spec;
	mlpackage pkg;
	ml_model *model;
	const mil_function *fn;     /* the function taken, in model->program */
	const ml_function_desc *fd; /* its description (the top level for a single-function model) */
} source;

/* The function a source contributes when the caller did not name one. */
static const char *default_function_name(const ml_model *m)
{
	if (m->program->nfunctions == 1)
		return m->program->functions[0]->name;
	if (m->desc && *m->desc->default_function)
		return m->desc->default_function;
	return "main";
}

static const ml_function_desc *find_description(const ml_model *m, const char *name)
{
	if (!m->desc)
		return NULL;
	if (m->desc->nfunctions)
		return ml_model_find_function(m, name);
	return &m->desc->top;
}

static int source_open(source *s, const combine_source *spec)
{
	s->spec = spec;
	if (mlpackage_open(spec->package, &s->pkg) != 0)
		return -1;
	if (ml_model_decode(s->pkg.model, s->pkg.model_size, &s->model) != 0)
		return errf("package '%s': %s", spec->package, errmsg());
	if (!s->model->program || !s->model->program->nfunctions)
		return errf("package '%s' is not an ML Program", spec->package);
	const char *name = spec->function ? spec->function : default_function_name(s->model);
	s->fn = mil_program_find_function(s->model->program, name);
	s->fd = find_description(s->model, name);
	if (!s->fn || !s->fd)
		return errf("package '%s' has no function '%s'", spec->package, name);
	return 0;
}

static void source_close(source *s)
{
	ml_model_free(s->model);
	mlpackage_close(&s->pkg);
}

/* Size of a package's weight.bin, 0 when it has none. */
static uint64_t weight_bin_size(const mlpackage *pkg)
{
	if (!pkg->weights_item)
		return 0;
	char *path = xasprintf("%s/Data/%s/weight.bin", pkg->path, pkg->weights_item->path);
	struct stat st;
	uint64_t n = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
	free(path);
	return n;
}

static uint64_t sources_weight_bytes(const source *src, size_t n)
{
	uint64_t total = 0;
	for (size_t i = 0; i < n; i++) {
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = streq(src[j].spec->package, src[i].spec->package);
		if (!seen)
			total += weight_bin_size(&src[i].pkg);
	}
	return total;
}

/* ------------------------------------------------------------------ */
/* States: one MLState must serve every function                       */

static void format_array(const ml_array_type *at, char *buf, size_t cap)
{
	if (!at) {
		snprintf(buf, cap, "untyped");
		return;
	}
	const char *dt = array_dtype_name((array_dtype)at->dtype);
	size_t len = (size_t)snprintf(buf, cap, "%s[", dt ? dt : "dtype?");
	for (size_t i = 0; i < at->shape.n && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", (long long)at->shape.dims[i]);
	if (len < cap)
		snprintf(buf + len, cap - len, "]");
}

static int array_equal(const ml_array_type *x, const ml_array_type *y)
{
	if (!x || !y)
		return x == y;
	if (x->dtype != y->dtype || x->shape.n != y->shape.n)
		return 0;
	return x->shape.n == 0 || memcmp(x->shape.dims, y->shape.dims, x->shape.n * sizeof *x->shape.dims) == 0;
}

/* The first state of a that b lacks, or NULL. */
static const ml_feature *missing_state(const source *a, const source *b)
{
	for (size_t i = 0; i < a->fd->state.n; i++)
		if (!ml_features_find(&b->fd->state, a->fd->state.v[i]->name))
			return a->fd->state.v[i];
	return NULL;
}

static int states_match(const source *a, const source *b)
{
	const ml_feature *f;
	if ((f = missing_state(a, b)) || (f = missing_state(b, a))) {
		const source *has = ml_features_find(&a->fd->state, f->name) ? a : b, *lacks = has == a ? b : a;
		return errf("'%s' (function %s) declares state '%s' but '%s' (function %s) does not: the combined "
			    "functions must share the same states",
			    has->spec->package, has->fn->name, f->name, lacks->spec->package, lacks->fn->name);
	}
	for (size_t i = 0; i < a->fd->state.n; i++) {
		const ml_feature *x = a->fd->state.v[i], *y = ml_features_find(&b->fd->state, x->name);
		if (array_equal(ml_feature_array(x), ml_feature_array(y)))
			continue;
		char fx[128], fy[128];
		format_array(ml_feature_array(x), fx, sizeof fx);
		format_array(ml_feature_array(y), fy, sizeof fy);
		return errf("state '%s' is %s in '%s' but %s in '%s': the combined functions must share the same states",
			    x->name, fx, a->spec->package, fy, b->spec->package);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Blobs: content-addressed copy into the new weight.bin               */

typedef struct blob_entry {
	uint8_t digest[32];  /* blob_digest: a fingerprint, not the identity */
	int used;
	uint64_t offset;     /* metadata offset in the combined weight.bin */
	const uint8_t *data; /* the first copy's bytes in its source mapping */
	uint64_t nbytes;
	uint32_t dtype, padding_bits;
} blob_entry;

typedef struct combiner {
	blob_writer *bw;
	mil_arena *arena;   /* the output model's */
	source *src;        /* the source whose function is being rewritten */
	blob_entry *table;  /* open addressing, cap a power of two, at most half full */
	size_t cap, used;
	combine_stats st;
} combiner;

/* A fingerprint of what makes two blobs interchangeable (type, padding,
 * size) and of a few samples of their bytes: equal blobs have equal ones.
 * The identity is the bytes themselves (blob_equal), so hashing every byte
 * (1.4 GB for a 1B model's chunk) would buy nothing: a blob that differs
 * from a stored one with the same fingerprint differs early in memcmp. */
enum { SAMPLE = 4096, SAMPLES = 8 };
static void blob_digest(const blob_info *b, const uint8_t *data, uint8_t out[32])
{
	uint8_t head[16];
	uint32_t dt = (uint32_t)b->dtype, pad = b->padding_bits;
	for (int i = 0; i < 4; i++)
		head[i] = (uint8_t)(dt >> (8 * i)), head[4 + i] = (uint8_t)(pad >> (8 * i));
	for (int i = 0; i < 8; i++)
		head[8 + i] = (uint8_t)(b->nbytes >> (8 * i));
	sha256_ctx *c = sha256_new();
	sha256_update(c, head, sizeof head);
	if (b->nbytes <= (uint64_t)SAMPLE * SAMPLES)
		sha256_update(c, data, (size_t)b->nbytes);
	else /* evenly spread, the first and the last included */
		for (uint64_t k = 0; k < SAMPLES; k++)
			sha256_update(c, data + (b->nbytes - SAMPLE) * k / (SAMPLES - 1), SAMPLE);
	sha256_final(c, out);
}

static int blob_equal(const blob_entry *e, const blob_info *b, const uint8_t *data)
{
	return e->nbytes == b->nbytes && e->dtype == (uint32_t)b->dtype && e->padding_bits == b->padding_bits &&
	       memcmp(e->data, data, (size_t)b->nbytes) == 0;
}

/* The entry holding this blob, else the free slot to store it in. */
static blob_entry *table_slot(blob_entry *table, size_t cap, const uint8_t digest[32], const blob_info *b,
			      const uint8_t *data)
{
	uint64_t h = 0;
	memcpy(&h, digest, sizeof h);
	for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!table[i].used || (b && memcmp(table[i].digest, digest, 32) == 0 && blob_equal(&table[i], b, data)))
			return &table[i];
}

static void table_grow(combiner *c)
{
	size_t cap = c->cap ? c->cap * 2 : 256;
	blob_entry *t = xcalloc(cap, sizeof *t);
	for (size_t i = 0; i < c->cap; i++)
		if (c->table[i].used) /* every stored blob differs from the others: a free slot each */
			*table_slot(t, cap, c->table[i].digest, NULL, NULL) = c->table[i];
	free(c->table);
	c->table = t, c->cap = cap;
}

static int copy_blob(blob_writer *bw, const blob_info *b, const uint8_t *data, uint64_t *offset)
{
	if (blob_begin(bw, b->dtype, b->nbytes, b->padding_bits, offset) != 0)
		return -1;
	for (uint64_t done = 0; done < b->nbytes;) {
		size_t n = b->nbytes - done < COPY_WINDOW ? (size_t)(b->nbytes - done) : COPY_WINDOW;
		if (blob_write(bw, data + done, n) != 0)
			return -1;
		done += n;
	}
	return blob_end(bw);
}

/* mil_value_fn: point one blob value at its single copy in the new file. */
static int rewrite_blob(mil_value *v, void *ctx)
{
	combiner *c = ctx;
	if (v->kind != MIL_VAL_BLOB)
		return 0;
	blob_reader *r = mlpackage_blob_file(&c->src->pkg, v->file); /* its error names the package */
	if (!r)
		return -1;
	const blob_info *b = blob_reader_find(r, v->offset);
	if (!b)
		return errf("package '%s' function %s: %s", c->src->spec->package, c->src->fn->name, errmsg());
	const uint8_t *data = blob_reader_data(r, b);
	uint8_t digest[32];
	blob_digest(b, data, digest);
	if (2 * (c->used + 1) > c->cap)
		table_grow(c);
	blob_entry *e = table_slot(c->table, c->cap, digest, b, data);
	if (!e->used) {
		if (copy_blob(c->bw, b, data, &e->offset) != 0)
			return -1;
		memcpy(e->digest, digest, 32);
		e->used = 1, e->data = data, e->nbytes = b->nbytes;
		e->dtype = (uint32_t)b->dtype, e->padding_bits = b->padding_bits;
		c->used++, c->st.blobs_written++;
	}
	v->offset = e->offset;
	v->file = mil_strdup(c->arena, MIL_WEIGHT_FILE);
	c->st.blob_refs++;
	progress_add(0, b->nbytes);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The combined model                                                  */

/* coremltools writes every function of a multifunction program at opset
 * CoreML8; relabel an older function (and the block keyed by its opset). */
static void set_opset_ios18(mil_function *f)
{
	if (streq(f->opset, MIL_OPSET_IOS18))
		return;
	for (size_t i = 0; i < f->nblocks; i++)
		if (streq(f->blocks[i].key, f->opset))
			f->blocks[i].key = mil_strdup(f->arena, MIL_OPSET_IOS18);
	f->opset = mil_strdup(f->arena, MIL_OPSET_IOS18);
}

static int arg_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_arg *const *)x)->param, (*(const mil_arg *const *)y)->param);
}

/* Parameters in name order, as the encoder writes them anyway (a proto map),
 * so blobs are visited, and laid out, in the order coremltools lays them out:
 * op by op, an op's parameters by name. */
static void sort_params(mil_block *b)
{
	for (size_t i = 0; i < b->nops; i++) {
		mil_op *op = b->ops[i];
		if (op->ninputs > 1)
			qsort(op->inputs, op->ninputs, sizeof *op->inputs, arg_cmp);
		for (size_t k = 0; k < op->nblocks; k++)
			sort_params(op->blocks[k]);
	}
}

static int add_function(ml_model *m, combiner *c, source *s)
{
	mil_function *f = mil_program_copy_function(ml_model_program(m), s->fn, s->spec->target);
	set_opset_ios18(f);
	for (size_t i = 0; i < f->nblocks; i++)
		sort_params(f->blocks[i].block);
	ml_model_copy_function(m, s->fd, s->spec->target);
	c->src = s;
	int rc = mil_function_foreach_value(f, rewrite_blob, c);
	progress_add(1, 0);
	return rc;
}

static ml_model *model_new(const source *src, size_t n)
{
	int spec = ML_SPEC_IOS18;
	for (size_t i = 0; i < n; i++)
		if (src[i].model->spec_version > spec)
			spec = src[i].model->spec_version;
	ml_model *m = ml_model_new(spec);
	mil_program *p = ml_model_program(m);
	const mil_program *first = src[0].model->program;
	p->version = first->version;
	p->doc = mil_strdup(m->arena, first->doc);
	for (size_t i = 0; i < first->attrs.n; i++)
		mil_attrs_set(m->arena, &p->attrs, first->attrs.v[i].key, mil_value_copy(m->arena, first->attrs.v[i].value));
	return m;
}

/* ------------------------------------------------------------------ */
/* Metadata: ANEMLL's AddCombinedMetadata                              */

static const ml_metadata *source_metadata(const source *s)
{
	return s->model->desc ? s->model->desc->metadata : NULL;
}

/* "Anemll Model: Multifunction FFN+Prefill" from "Anemll Model (FFN) ...",
 * "Anemll Model (Prefill) ..."; caller frees. */
static char *combined_description(const source *src, size_t n)
{
	char *titles = xstrdup(""), *tmp;
	int described = 0;
	for (size_t i = 0; i < n; i++) {
		const ml_metadata *md = source_metadata(&src[i]);
		described |= md && *md->short_description;
		const char *open = md ? strchr(md->short_description, '(') : NULL, *close = open ? strchr(open, ')') : NULL;
		if (!close)
			continue;
		char *t = xstrndup(open + 1, (size_t)(close - open - 1));
		char *padded = xasprintf("+%s+", titles), *needle = xasprintf("+%s+", t);
		if (!strstr(padded, needle)) {
			tmp = xasprintf("%s%s%s", titles, *titles ? "+" : "", t);
			free(titles), titles = tmp;
		}
		free(t), free(padded), free(needle);
	}
	if (*titles) {
		tmp = xasprintf("Anemll Model: Multifunction %s", titles);
	} else if (described) {
		/* "Anemll Model Part monolithic converted to CoreML", "... Part 2_rotate ...": no "(A)" */
		tmp = xstrdup("Anemll Model: Multifunction Combined");
	} else {
		tmp = xstrdup("Combined model with functions: ");
		for (size_t i = 0; i < n; i++) {
			char *s = xasprintf("%s%s%s", tmp, i ? "," : "", src[i].spec->target);
			free(tmp), tmp = s;
		}
	}
	free(titles);
	return tmp;
}

/* What AddMetadata re-applies: ANEMLL's keys and coremltools' provenance;
 * and anemake's own (com.anemake.*: the LUT overrides, the calibration). */
static int kept_user_key(const char *key)
{
	return strncmp(key, "com.anemll.", 11) == 0 || strncmp(key, "com.anemake.", 12) == 0 ||
	       streq(key, "com.github.apple.coremltools.source") ||
	       streq(key, "com.github.apple.coremltools.source_dialect") ||
	       streq(key, "com.github.apple.coremltools.version");
}

static void combine_metadata(ml_model *m, const source *src, size_t n)
{
	const char *version = NULL, *author = NULL, *license = NULL;
	for (size_t i = n; i-- > 0;) { /* backwards: the first non-empty one is set last */
		const ml_metadata *md = source_metadata(&src[i]);
		if (!md)
			continue;
		version = *md->version ? md->version : version;
		author = *md->author ? md->author : author;
		license = *md->license ? md->license : license;
	}
	char *desc = combined_description(src, n);
	ml_model_set_metadata(m, desc, version, author, license);
	free(desc);
	for (size_t i = 0; i < n; i++) {
		const ml_metadata *md = source_metadata(&src[i]);
		for (size_t k = 0; md && k < md->nuser; k++) {
			const ml_kv *kv = &md->user[k];
			const char *have = ml_model_user_meta(m, kv->key);
			if (*kv->value && kept_user_key(kv->key) && (!have || !*have))
				ml_model_set_user_meta(m, kv->key, kv->value);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Entry point                                                         */

/* Progress by function, and by the bytes of every blob each one refers to. */
static void begin_progress(const char *out_path, const source *src, size_t n)
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += weight_bin_size(&src[i].pkg);
	char *name = path_basename(out_path);
	progress_begin(name, "function", n, bytes);
	free(name);
}

static int write_combined(const char *out_path, source *src, size_t n, combine_stats *stats)
{
	mlpackage_writer pw;
	if (mlpackage_begin(&pw, out_path) != 0)
		return -1;
	ml_model *m = model_new(src, n);
	combiner c = {.bw = pw.weights, .arena = m->arena};
	int rc = 0;
	begin_progress(out_path, src, n);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = add_function(m, &c, &src[i]);
	progress_end();
	ml_model_set_default_function(m, src[0].spec->target);
	combine_metadata(m, src, n);
	c.st.combined_bytes = blob_writer_size(pw.weights);
	c.st.source_bytes = sources_weight_bytes(src, n);
	pb_buf bytes;
	pb_init(&bytes);
	if (rc == 0) {
		ml_model_encode(m, &bytes);
		rc = mlpackage_commit(&pw, bytes.data, bytes.len);
	} else {
		mlpackage_abort(&pw);
	}
	if (rc == 0 && stats)
		*stats = c.st;
	pb_release(&bytes);
	free(c.table);
	ml_model_free(m);
	return rc;
}

static int check_targets(const combine_source *spec, size_t n)
{
	if (n == 0)
		return errf("nothing to combine");
	for (size_t i = 0; i < n; i++) {
		if (!spec[i].target || !*spec[i].target)
			return errf("package '%s': no target function name", spec[i].package);
		for (size_t j = 0; j < i; j++)
			if (streq(spec[i].target, spec[j].target))
				return errf("function name '%s' given twice", spec[i].target);
	}
	return 0;
}

int combine_packages(const char *out_path, const combine_source *spec, size_t n, combine_stats *stats)
{
	if (check_targets(spec, n) != 0)
		return -1;
	source *src = xcalloc(n, sizeof *src);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = source_open(&src[i], &spec[i]);
	for (size_t i = 1; i < n && rc == 0; i++)
		rc = states_match(&src[0], &src[i]);
	if (rc == 0)
		rc = write_combined(out_path, src, n, stats);
	for (size_t i = 0; i < n; i++)
		source_close(&src[i]);
	free(src);
	return rc;
}
