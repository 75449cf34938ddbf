/* mlmodelc.c: the compiled-model layout written without Apple's compiler
 * (formats, renderings and what is unverified: see mlmodelc.h).
 *
 * Input: one .mlpackage (model.mlmodel of a few MB, weight.bin up to ~1 GB).
 * Output: X.mlmodelc/ with model.mil (text, ~100 bytes per op),
 * coremldata.bin (hundreds of bytes to a few KB), metadata.json (a few KB),
 * analytics/coremldata.bin (108 bytes) and weights/ copied byte for byte in
 * 1 MiB pieces. Sections follow the files in that order.
 */
#include "coreml/mlmodelc.h"
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "base/version.h"
#include "coreml/mil.h"
#include "coreml/miltext.h"
#include "coreml/mlpackage.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* mkdir */
#include <unistd.h>   /* fsync */

static uint64_t le_bytes(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

typedef struct str_pair {
	const char *k, *v;
} str_pair;

static int pair_cmp(const void *x, const void *y) { return strcmp(((const str_pair *)x)->k, ((const str_pair *)y)->k); }

/* ------------------------------------------------------------------ */
/* model.mil: the program as coremlc prints it (mlmodelc.h item 2)     */

/* buildInfo: the package's entries and the compiler's two, sorted. */
static mil_value *build_info(mil_arena *a, const mil_value *bi)
{
	size_t n = bi && bi->kind == MIL_VAL_DICT ? bi->n : 0, np = 0;
	str_pair *p = xcalloc(n + 2, sizeof *p);
	for (size_t i = 0; i < n; i++) {
		const char *k = mil_value_as_str(bi->keys[i]), *v = mil_value_as_str(bi->items[i]);
		if (k && v && strncmp(k, "coremlc-", 8) != 0)
			p[np++] = (str_pair){k, v};
	}
	p[np++] = (str_pair){"coremlc-component-MIL", MLMODELC_COREMLC_MIL};
	p[np++] = (str_pair){"coremlc-version", MLMODELC_COREMLC_VERSION};
	qsort(p, np, sizeof *p, pair_cmp);
	mil_value *d = mil_value_dict_str(a);
	for (size_t i = 0; i < np; i++)
		mil_value_dict_set_str(a, d, p[i].k, p[i].v);
	free(p);
	return d;
}

static mil_value *shape_value(mil_arena *a, const ml_shape *s)
{
	int32_t *v = mil_alloc(a, (s->n + 1) * sizeof *v);
	for (size_t i = 0; i < s->n; i++)
		v[i] = (int32_t)s->dims[i];
	return mil_value_i32s(a, s->n, v);
}

/* The EnumeratedShapes key of one shape: the first 8 hex digits of the
 * SHA-256 of "<input>:<d>,<d>,..." (coremlc's own key is an 8-hex-digit
 * hash of unknown input; see MLMODELC_UNVERIFIED). */
static const char *shape_key(mil_arena *a, const char *input, const ml_shape *s)
{
	char *text = xasprintf("%s:", input), key[9];
	for (size_t i = 0; i < s->n; i++) {
		char *t = xasprintf("%s%s%lld", text, i ? "," : "", (long long)s->dims[i]);
		free(text), text = t;
	}
	uint8_t h[32];
	sha256(text, strlen(text), h);
	snprintf(key, sizeof key, "%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
	free(text);
	return mil_strdup(a, key);
}

static int key_cmp(const void *x, const void *y)
{
	return strcmp(mil_value_as_str(*(mil_value *const *)x), mil_value_as_str(*(mil_value *const *)y));
}

/* ("EnumeratedShapes", {{key, {{input, [dims]}}}, ...}) for one input, keys sorted. */
static mil_value *enumerated_value(mil_arena *a, const ml_feature *f)
{
	const ml_array_type *at = f->type->array;
	mil_value *sets = mil_value_seq(a, MIL_VAL_DICT, NULL), **keys = mil_alloc(a, (at->nshapes + 1) * sizeof *keys);
	for (size_t i = 0; i < at->nshapes; i++)
		keys[i] = mil_value_str(a, shape_key(a, f->name, &at->shapes[i]));
	mil_value **order = mil_memdup(a, keys, (at->nshapes + 1) * sizeof *keys);
	qsort(order, at->nshapes, sizeof *order, key_cmp);
	for (size_t i = 0; i < at->nshapes; i++) {
		size_t j = 0;
		while (keys[j] != order[i])
			j++;
		mil_value *one = mil_value_seq(a, MIL_VAL_DICT, NULL);
		mil_value_dict_add(a, one, mil_value_str(a, f->name), shape_value(a, &at->shapes[j]));
		mil_value_dict_add(a, sets, order[i], one);
	}
	return sets;
}

/* {{input, [[lo, hi], ...]}} entries of a range input (hi -1: unbounded). */
static void add_ranges(mil_arena *a, mil_value *dims, const ml_feature *f)
{
	const ml_array_type *at = f->type->array;
	mil_value *l = mil_value_seq(a, MIL_VAL_LIST, NULL);
	for (size_t i = 0; i < at->nranges; i++) {
		int32_t r[2] = {(int32_t)at->ranges[i].lower, (int32_t)at->ranges[i].upper};
		mil_value_push(a, l, mil_value_i32s(a, 2, r));
	}
	mil_value_dict_add(a, dims, mil_value_str(a, f->name), l);
}

/* The type of FlexibleShapeInformation for enumerated or range inputs. */
static mil_type *flex_type(mil_arena *a, int enumerated)
{
	mil_type *str = mil_type_scalar(a, MIL_STRING);
	mil_type *shape = mil_type_tensor(a, MIL_INT32, 1, (const int64_t[]){-1});
	mil_type *range = mil_type_list(a, mil_type_tensor(a, MIL_INT32, 1, (const int64_t[]){2}));
	mil_type *second = enumerated ? mil_type_dict(a, str, mil_type_dict(a, str, shape)) : mil_type_dict(a, str, range);
	mil_type *parts[2] = {mil_type_tuple(a, 2, (mil_type *[]){str, mil_type_dict(a, str, shape)}),
			      mil_type_tuple(a, 2, (mil_type *[]){str, second})};
	return mil_type_tuple(a, 2, parts);
}

static mil_value *named_pair(mil_arena *a, const char *name, mil_value *v)
{
	mil_value *t = mil_value_seq(a, MIL_VAL_TUPLE, NULL);
	mil_value_push(a, t, mil_value_str(a, name));
	mil_value_push(a, t, v);
	return t;
}

/* The function attribute coremlc adds for flexible inputs: default shapes
 * and either the enumerated shapes (one input) or every input's ranges.
 * NULL when no input of fd is flexible. */
static int flexible_shape_info(mil_arena *a, const ml_function_desc *fd, const char *fn, mil_value **out)
{
	mil_value *defaults = mil_value_seq(a, MIL_VAL_DICT, NULL), *ranges = mil_value_seq(a, MIL_VAL_DICT, NULL);
	mil_value *sets = NULL;
	size_t nflex = 0, nenum = 0;
	*out = NULL;
	for (size_t i = 0; fd && i < fd->input.n; i++) {
		const ml_feature *f = fd->input.v[i];
		const ml_array_type *at = f->type && f->type->kind == ML_FEAT_ARRAY ? f->type->array : NULL;
		if (!at || at->flex == ML_FLEX_NONE)
			continue;
		nflex++;
		mil_value_dict_add(a, defaults, mil_value_str(a, f->name), shape_value(a, &at->shape));
		if (at->flex == ML_FLEX_ENUMERATED)
			nenum++, sets = enumerated_value(a, f);
		else
			add_ranges(a, ranges, f);
	}
	if (!nflex)
		return 0;
	if (nenum && nflex > 1)
		return errf("function '%s': enumerated shapes together with another flexible input have no known "
			    "model.mil form", fn);
	mil_value *v = mil_value_seq(a, MIL_VAL_TUPLE, flex_type(a, nenum != 0));
	mil_value_push(a, v, named_pair(a, "DefaultShapes", defaults));
	mil_value_push(a, v, nenum ? named_pair(a, "EnumeratedShapes", sets) : named_pair(a, "RangeDims", ranges));
	*out = v;
	return 0;
}

static const ml_function_desc *function_desc(const ml_model *m, const char *name)
{
	if (!m->desc)
		return NULL;
	if (!m->desc->nfunctions)
		return &m->desc->top;
	return ml_model_find_function(m, name);
}

/* A shallow copy of fn carrying its FlexibleShapeInformation, or fn itself. */
static int compiled_function(mil_arena *a, const ml_model *m, mil_function *fn, mil_function **out)
{
	mil_value *fsi;
	*out = fn;
	if (flexible_shape_info(a, function_desc(m, fn->name), fn->name, &fsi) != 0)
		return -1;
	if (!fsi)
		return 0;
	mil_function *c = mil_memdup(a, fn, sizeof *fn);
	c->attrs = (mil_attrs){0};
	for (size_t i = 0; i < fn->attrs.n; i++)
		mil_attrs_set(a, &c->attrs, fn->attrs.v[i].key, fn->attrs.v[i].value);
	mil_attrs_set(a, &c->attrs, "FlexibleShapeInformation", fsi);
	*out = c;
	return 0;
}

int mlmodelc_write_mil(FILE *f, const ml_model *m)
{
	const mil_program *p = m->program;
	if (!p)
		return errf("the model is not an ML Program");
	mil_arena *a = mil_arena_new();
	mil_program view = *p;
	view.attrs = (mil_attrs){0};
	for (size_t i = 0; i < p->attrs.n; i++)
		if (strcmp(p->attrs.v[i].key, "buildInfo") != 0)
			mil_attrs_set(a, &view.attrs, p->attrs.v[i].key, p->attrs.v[i].value);
	mil_attrs_set(a, &view.attrs, "buildInfo", build_info(a, mil_attrs_get(&p->attrs, "buildInfo")));
	view.functions = mil_alloc(a, (p->nfunctions + 1) * sizeof *view.functions);
	int rc = 0;
	for (size_t i = 0; i < p->nfunctions && rc == 0; i++)
		rc = compiled_function(a, m, p->functions[i], &view.functions[i]);
	if (rc == 0)
		rc = miltext_write(f, &view, &(mil_text_form){3, 0});
	mil_arena_free(a);
	return rc;
}

/* ------------------------------------------------------------------ */
/* coremldata.bin and analytics/coremldata.bin                         */

static void put_le(pb_buf *b, uint64_t v, int n)
{
	uint8_t x[8];
	for (int i = 0; i < n; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	pb_raw(b, x, (size_t)n);
}

static void put_zeros(pb_buf *b, size_t n)
{
	static const uint8_t z[32];
	pb_raw(b, z, n);
}

/* A u64 length and the bytes, the string form of both files. */
static void put_lstring(pb_buf *b, const char *s)
{
	put_le(b, strlen(s), 8);
	pb_raw(b, s, strlen(s));
}

/* The serialized ModelDescription, exactly the package's: coremlc keeps a
 * single-function description without functions (mlmodelc.h item 3). */
static int description_bytes(const ml_model *m, pb_buf *out)
{
	ml_model *tmp = ml_model_new(0);
	ml_description d = m->desc ? *m->desc : *ml_model_desc(tmp);
	tmp->desc = &d;
	pb_buf enc;
	pb_init(&enc);
	ml_model_encode(tmp, &enc);
	tmp->desc = NULL;
	ml_model_free(tmp);
	pb_reader r = pb_reader_of(enc.data ? enc.data : (const uint8_t *)"", enc.len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1)
		if (f.field == 2 && f.wt == PB_LEN)
			pb_raw(out, f.data, f.len);
	pb_release(&enc);
	return rc < 0 ? -1 : 0;
}

/* One trailer record per function; a description without functions counts one. */
static size_t trailer_records(const ml_description *d) { return d && d->nfunctions ? d->nfunctions : 1; }

uint32_t mlmodelc_field4(int spec_version) { return spec_version >= ML_SPEC_IOS18 ? (uint32_t)spec_version : 5; }

int mlmodelc_coremldata(const ml_model *m, pb_buf *out)
{
	pb_buf desc;
	pb_init(&desc);
	if (description_bytes(m, &desc) != 0) {
		pb_release(&desc);
		return -1;
	}
	put_le(out, MLMODELC_MLPROGRAM, 4);
	put_le(out, mlmodelc_field4(m->spec_version), 4);
	put_zeros(out, 20);
	put_lstring(out, "generic");
	put_le(out, (uint64_t)m->spec_version, 8);
	put_zeros(out, 24);
	put_le(out, desc.len, 8);
	pb_raw(out, desc.data, desc.len);
	for (size_t i = 0; i < trailer_records(m->desc); i++) {
		put_le(out, MLMODELC_MLPROGRAM, 4);
		put_zeros(out, MLMODELC_RECORD - 4);
	}
	pb_release(&desc);
	return 0;
}

/* The records after the description: whole 16-byte records, each 502 and zeros. */
static int check_trailer(const uint8_t *b, size_t n, size_t *records)
{
	if (n == 0 || n % MLMODELC_RECORD != 0)
		return errf("coremldata.bin: %zu bytes after the description are not whole %d-byte records", n,
			    MLMODELC_RECORD);
	for (size_t at = 0; at < n; at += MLMODELC_RECORD) {
		if (le_bytes(b + at, 4) != MLMODELC_MLPROGRAM)
			return errf("coremldata.bin: trailer record %zu does not start with 502", at / MLMODELC_RECORD);
		for (size_t i = 4; i < MLMODELC_RECORD; i++)
			if (b[at + i])
				return errf("coremldata.bin: trailer record %zu has non-zero padding", at / MLMODELC_RECORD);
	}
	*records = n / MLMODELC_RECORD;
	return 0;
}

int mlmodelc_read_coremldata(const void *data, size_t n, ml_model **out)
{
	const uint8_t *b = data;
	*out = NULL;
	if (n < MLMODELC_DESC_OFFSET + MLMODELC_RECORD)
		return errf("coremldata.bin: %zu bytes is too short", n);
	if (le_bytes(b, 4) != MLMODELC_MLPROGRAM || le_bytes(b + 0x1c, 8) != 7 || memcmp(b + 0x24, "generic", 7) != 0)
		return errf("coremldata.bin: not an ML Program header (502, \"generic\")");
	uint64_t spec = le_bytes(b + 0x2b, 8), len = le_bytes(b + 0x4b, 8);
	/* offset 4: 5 (spec 7) or the spec version (spec 9); either is accepted
	 * for any version, as no spec-8 file shows which one coremlc writes */
	uint64_t f4 = le_bytes(b + 4, 4);
	if (spec > 1000 || (f4 != 5 && f4 != spec))
		return errf("coremldata.bin: offset 4 holds %llu, neither 5 nor the specification version %llu",
			    (unsigned long long)f4, (unsigned long long)spec);
	if (len > n - MLMODELC_DESC_OFFSET - MLMODELC_RECORD)
		return errf("coremldata.bin: description length %llu does not fit %zu bytes", (unsigned long long)len, n);
	size_t records = 0;
	if (check_trailer(b + MLMODELC_DESC_OFFSET + len, n - MLMODELC_DESC_OFFSET - (size_t)len, &records) != 0)
		return -1;
	pb_buf model; /* Model { specificationVersion, description } around the bytes */
	pb_init(&model);
	pb_put_int(&model, 1, (int64_t)spec);
	pb_put_bytes(&model, 2, b + MLMODELC_DESC_OFFSET, (size_t)len);
	int rc = ml_model_decode(model.data, model.len, out);
	pb_release(&model);
	if (rc != 0)
		return errf("coremldata.bin: %s", errmsg());
	if (records != trailer_records((*out)->desc)) {
		rc = errf("coremldata.bin: %zu trailer records for a description of %zu function(s)", records,
			  trailer_records((*out)->desc));
		ml_model_free(*out);
		*out = NULL;
	}
	return rc;
}

/* Standard base64 with padding, as the real modelHash values are written. */
static char *base64(const uint8_t *b, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
		*o++ = abc[v >> 18 & 63], *o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	*o = 0;
	return out;
}

void mlmodelc_analytics(const uint8_t model_hash[32], pb_buf *out)
{
	char *hash = base64(model_hash, 32);
	put_lstring(out, "NeuralNetworkModelDetails");
	put_le(out, 2, 8);
	put_lstring(out, "containsCustomLayer");
	put_lstring(out, "0");
	put_lstring(out, "modelDimension");
	put_lstring(out, "0");
	put_lstring(out, "SpecificationDetails");
	put_le(out, 2, 8);
	put_lstring(out, "modelHash");
	put_lstring(out, hash);
	put_lstring(out, "modelName");
	put_lstring(out, "model");
	free(hash);
}

/* ------------------------------------------------------------------ */
/* The directory                                                       */

/* Write a whole file inside the temporary directory, synced. */
static int write_in(const char *dir, const char *name, const void *data, size_t n)
{
	char *path = path_join(dir, name);
	FILE *f = fopen(path, "wb");
	int rc = f ? 0 : errf("cannot create '%s':", path);
	if (rc == 0 && (fwrite_all(f, data, n, path) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = errf("cannot write '%s':", path);
	if (f && fclose_checked(f, path) != 0)
		rc = -1;
	free(path);
	return rc;
}

static int write_mil_file(const char *dir, const ml_model *m)
{
	char *path = path_join(dir, "model.mil");
	FILE *f = fopen(path, "w");
	int rc = f ? mlmodelc_write_mil(f, m) : errf("cannot create '%s':", path);
	if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = errf("cannot write '%s':", path);
	if (f && fclose_checked(f, path) != 0)
		rc = -1;
	free(path);
	return rc;
}

/* weights/: every regular file of the package's weights item, byte for byte:
 * hard links where the file system allows (a 1 GB part is not copied; every
 * package is written by temp and rename, so a later conversion gives the
 * package a new inode and leaves this one as compiled). */
static int copy_weights(const mlpackage *pkg, const char *dir)
{
	if (!pkg->weights_item)
		return 0;
	char *src = xasprintf("%s/Data/%s", pkg->path, pkg->weights_item->path), *dst = path_join(dir, "weights");
	DIR *d = opendir(src);
	int rc = !d ? errf("cannot open directory '%s':", src) : mkdir(dst, 0777) != 0 ? errf("cannot create '%s':", dst) : 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		char *from = path_join(src, e->d_name), *to = path_join(dst, e->d_name);
		struct stat st;
		if (e->d_name[0] != '.' && stat(from, &st) == 0 && S_ISREG(st.st_mode))
			rc = file_link_or_copy(from, to);
		free(from), free(to);
	}
	if (d)
		closedir(d);
	free(src), free(dst);
	return rc;
}

static int write_parts(const char *dir, const mlpackage *pkg, const ml_model *m, const char *class_name)
{
	pb_buf data, analytics;
	uint8_t hash[32];
	sha256(pkg->model, pkg->model_size, hash);
	pb_init(&data), pb_init(&analytics);
	mlmodelc_analytics(hash, &analytics);
	char *json = mlmodelc_metadata_json(m, class_name), *adir = path_join(dir, "analytics");
	int rc = write_mil_file(dir, m);
	if (rc == 0 && (rc = mlmodelc_coremldata(m, &data)) == 0)
		rc = write_in(dir, "coremldata.bin", data.data, data.len);
	if (rc == 0)
		rc = write_in(dir, "metadata.json", json, strlen(json));
	if (rc == 0 && mkdir(adir, 0777) != 0)
		rc = errf("cannot create '%s':", adir);
	if (rc == 0)
		rc = write_in(adir, "coremldata.bin", analytics.data, analytics.len);
	if (rc == 0)
		rc = copy_weights(pkg, dir);
	pb_release(&data), pb_release(&analytics);
	free(json), free(adir);
	return rc;
}

int mlmodelc_write(const char *pkg_path, const char *out_path)
{
	mlpackage pkg;
	if (mlpackage_open(pkg_path, &pkg) != 0)
		return -1;
	ml_model *m = NULL;
	char *tmp = NULL, *base = path_basename(out_path);
	char *dot = strrchr(base, '.');
	if (dot && strcmp(dot, ".mlmodelc") == 0)
		*dot = 0;
	int rc = ml_model_decode(pkg.model, pkg.model_size, &m);
	if (rc != 0)
		rc = errf("package '%s': %s", pkg_path, errmsg());
	if (rc == 0 && (rc = tmpdir_create(out_path, &tmp)) == 0) {
		rc = write_parts(tmp, &pkg, m, base);
		if (rc != 0)
			rc = errf("%s: %s", out_path, errmsg());
		if (rc == 0)
			rc = tmpdir_commit(tmp, out_path);
		if (rc != 0)
			tmpdir_abort(tmp);
	}
	free(tmp), free(base);
	ml_model_free(m);
	mlpackage_close(&pkg);
	return rc;
}
