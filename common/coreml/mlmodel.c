/* mlmodel.c: the Model message, its description and metadata (see mlmodel.h).
 *
 * The program itself is mil.c's; this file builds, encodes and decodes the
 * envelope around it: specificationVersion, the feature descriptions of the
 * function(s), and the metadata that ANEMLL's runtimes read (context length,
 * batch size, chunk numbers...). Sections: construction and accessors,
 * copies, encoder, decoder.
 */
#include "coreml/mlmodel.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Construction and accessors                                          */

static ml_model *model_alloc(void)
{
	mil_arena *a = mil_arena_new();
	ml_model *m = mil_alloc(a, sizeof *m);
	m->arena = a;
	return m;
}

static void function_desc_init(ml_function_desc *fd)
{
	memset(fd, 0, sizeof *fd);
	fd->name = fd->predicted_feature = fd->predicted_probabilities = "";
}

static ml_description *desc_new(mil_arena *a)
{
	ml_description *d = mil_alloc(a, sizeof *d);
	function_desc_init(&d->top);
	d->default_function = "";
	return d;
}

static ml_metadata *metadata_new(mil_arena *a)
{
	ml_metadata *md = mil_alloc(a, sizeof *md);
	md->short_description = md->version = md->author = md->license = "";
	return md;
}

ml_model *ml_model_new(int spec_version)
{
	ml_model *m = model_alloc();
	m->spec_version = spec_version;
	m->desc = desc_new(m->arena);
	return m;
}

void ml_model_free(ml_model *m)
{
	if (m)
		mil_arena_free(m->arena); /* m itself lives in the arena */
}

ml_description *ml_model_desc(ml_model *m)
{
	if (!m->desc)
		m->desc = desc_new(m->arena);
	return m->desc;
}

ml_metadata *ml_model_metadata(ml_model *m)
{
	ml_description *d = ml_model_desc(m);
	if (!d->metadata)
		d->metadata = metadata_new(m->arena);
	return d->metadata;
}

mil_program *ml_model_program(ml_model *m)
{
	if (!m->program)
		m->program = mil_program_new(m->arena);
	return m->program;
}

static ml_function_desc *function_desc_new(mil_arena *a, const char *name)
{
	ml_function_desc *fd = mil_alloc(a, sizeof *fd);
	function_desc_init(fd);
	fd->name = mil_strdup(a, name);
	return fd;
}

static void desc_push_function(mil_arena *a, ml_description *d, ml_function_desc *fd)
{
	MIL_GROW(a, d->functions, d->functions_cap, d->nfunctions + 1);
	d->functions[d->nfunctions++] = fd;
}

ml_function_desc *ml_model_add_function(ml_model *m, const char *name)
{
	ml_function_desc *fd = function_desc_new(m->arena, name);
	desc_push_function(m->arena, ml_model_desc(m), fd);
	return fd;
}

ml_function_desc *ml_model_find_function(const ml_model *m, const char *name)
{
	const ml_description *d = m->desc;
	if (!d)
		return NULL;
	size_t i = MIL_FIND_PTR(d->functions, d->nfunctions, ml_function_desc, name, name);
	return i < d->nfunctions ? d->functions[i] : NULL;
}

void ml_model_set_default_function(ml_model *m, const char *name)
{
	ml_model_desc(m)->default_function = mil_strdup(m->arena, name);
}

static void features_push(mil_arena *a, ml_features *fs, ml_feature *f)
{
	MIL_GROW(a, fs->v, fs->cap, fs->n + 1);
	fs->v[fs->n++] = f;
}

static ml_feature *feature_new(mil_arena *a, const char *name)
{
	ml_feature *f = mil_alloc(a, sizeof *f);
	f->name = mil_strdup(a, name);
	f->short_description = "";
	return f;
}

static void shape_set(mil_arena *a, ml_shape *s, size_t rank, const int64_t *dims)
{
	s->n = s->cap = rank;
	s->dims = mil_memdup(a, dims, xmul(rank, sizeof(int64_t)));
}

static ml_feature *add_feature(ml_model *m, ml_features *fs, ml_feature_kind kind, const char *name, array_dtype dt,
			       size_t rank, const int64_t *shape)
{
	mil_arena *a = m->arena;
	ml_feature *f = feature_new(a, name);
	f->type = mil_alloc(a, sizeof(ml_feature_type));
	f->type->kind = kind;
	f->type->array = mil_alloc(a, sizeof(ml_array_type));
	f->type->array->dtype = (int)dt;
	shape_set(a, &f->type->array->shape, rank, shape);
	features_push(a, fs, f);
	return f;
}

static ml_function_desc *target(ml_model *m, ml_function_desc *fd) { return fd ? fd : &ml_model_desc(m)->top; }

ml_feature *ml_model_add_input(ml_model *m, ml_function_desc *fd, const char *name, array_dtype dt, size_t rank,
			       const int64_t *shape)
{
	return add_feature(m, &target(m, fd)->input, ML_FEAT_ARRAY, name, dt, rank, shape);
}

ml_feature *ml_model_add_output(ml_model *m, ml_function_desc *fd, const char *name, array_dtype dt, size_t rank,
				const int64_t *shape)
{
	return add_feature(m, &target(m, fd)->output, ML_FEAT_ARRAY, name, dt, rank, shape);
}

ml_feature *ml_model_add_state(ml_model *m, ml_function_desc *fd, const char *name, array_dtype dt, size_t rank,
			       const int64_t *shape)
{
	return add_feature(m, &target(m, fd)->state, ML_FEAT_STATE, name, dt, rank, shape);
}

ml_array_type *ml_feature_array(const ml_feature *f)
{
	if (!f->type || (f->type->kind != ML_FEAT_ARRAY && f->type->kind != ML_FEAT_STATE))
		return NULL;
	return f->type->array;
}

void ml_feature_add_enumerated_shape(ml_model *m, ml_feature *f, size_t rank, const int64_t *shape)
{
	ml_array_type *at = ml_feature_array(f);
	ASSERT(at);
	if (at->flex != ML_FLEX_ENUMERATED) {
		at->flex = ML_FLEX_ENUMERATED;
		at->nranges = 0;
	}
	MIL_GROW(m->arena, at->shapes, at->shapes_cap, at->nshapes + 1);
	shape_set(m->arena, &at->shapes[at->nshapes++], rank, shape);
}

ml_feature *ml_features_find(const ml_features *fs, const char *name)
{
	size_t i = MIL_FIND_PTR(fs->v, fs->n, ml_feature, name, name);
	return i < fs->n ? fs->v[i] : NULL;
}

void ml_model_set_metadata(ml_model *m, const char *short_description, const char *version, const char *author,
			   const char *license)
{
	ml_metadata *md = ml_model_metadata(m);
	if (short_description)
		md->short_description = mil_strdup(m->arena, short_description);
	if (version)
		md->version = mil_strdup(m->arena, version);
	if (author)
		md->author = mil_strdup(m->arena, author);
	if (license)
		md->license = mil_strdup(m->arena, license);
}

static void user_meta_set(mil_arena *a, ml_metadata *md, const char *key, const char *value)
{
	size_t i = MIL_MAP_SLOT(a, md->user, md->nuser, md->user_cap, ml_kv, key, key);
	md->user[i].value = mil_strdup(a, value);
}

void ml_model_set_user_meta(ml_model *m, const char *key, const char *value)
{
	user_meta_set(m->arena, ml_model_metadata(m), key, value);
}

const char *ml_model_user_meta(const ml_model *m, const char *key)
{
	const ml_metadata *md = m->desc ? m->desc->metadata : NULL;
	if (!md)
		return NULL;
	size_t i = MIL_FIND(md->user, md->nuser, ml_kv, key, key);
	return i < md->nuser ? md->user[i].value : NULL;
}

/* ------------------------------------------------------------------ */
/* Copies                                                              */

static ml_array_type *array_copy(mil_arena *a, const ml_array_type *src)
{
	if (!src)
		return NULL;
	ml_array_type *c = mil_memdup(a, src, sizeof *src);
	shape_set(a, &c->shape, src->shape.n, src->shape.dims);
	c->shapes = mil_alloc(a, xmul(src->nshapes, sizeof(ml_shape)));
	c->shapes_cap = src->nshapes;
	for (size_t i = 0; i < src->nshapes; i++)
		shape_set(a, &c->shapes[i], src->shapes[i].n, src->shapes[i].dims);
	c->ranges = mil_memdup(a, src->ranges, xmul(src->nranges, sizeof(ml_size_range)));
	c->ranges_cap = src->nranges;
	return c;
}

static void features_copy(mil_arena *a, ml_features *dst, const ml_features *src)
{
	for (size_t i = 0; i < src->n; i++) {
		const ml_feature *s = src->v[i];
		ml_feature *f = feature_new(a, s->name);
		f->short_description = mil_strdup(a, s->short_description);
		if (s->type) {
			f->type = mil_memdup(a, s->type, sizeof *s->type);
			f->type->array = array_copy(a, s->type->array);
			f->type->raw = mil_memdup(a, s->type->raw, s->type->raw_len);
		}
		features_push(a, dst, f);
	}
}

ml_function_desc *ml_model_copy_function(ml_model *m, const ml_function_desc *src, const char *name)
{
	mil_arena *a = m->arena;
	ml_function_desc *fd = function_desc_new(a, name ? name : src->name);
	features_copy(a, &fd->input, &src->input);
	features_copy(a, &fd->output, &src->output);
	features_copy(a, &fd->state, &src->state);
	fd->predicted_feature = mil_strdup(a, src->predicted_feature);
	fd->predicted_probabilities = mil_strdup(a, src->predicted_probabilities);
	desc_push_function(a, ml_model_desc(m), fd);
	return fd;
}

/* ------------------------------------------------------------------ */
/* Encoder                                                             */

static void put_str(pb_buf *b, uint32_t field, const char *s)
{
	if (s[0])
		pb_put_string(b, field, s);
}

static void enc_shape(pb_buf *b, uint32_t field, const ml_shape *s) { pb_put_packed_int64(b, field, s->dims, s->n); }

static void enc_array(pb_buf *b, const ml_array_type *at)
{
	enc_shape(b, 1, &at->shape);
	if (at->dtype)
		pb_put_int(b, 2, at->dtype);
	if (at->flex == ML_FLEX_ENUMERATED) {
		size_t m = pb_begin(b, 21);
		for (size_t i = 0; i < at->nshapes; i++) {
			size_t s = pb_begin(b, 1);
			enc_shape(b, 1, &at->shapes[i]);
			pb_end(b, s);
		}
		pb_end(b, m);
	} else if (at->flex == ML_FLEX_RANGE) {
		size_t m = pb_begin(b, 31);
		for (size_t i = 0; i < at->nranges; i++) {
			size_t s = pb_begin(b, 1);
			if (at->ranges[i].lower)
				pb_put_uint(b, 1, at->ranges[i].lower);
			if (at->ranges[i].upper)
				pb_put_int(b, 2, at->ranges[i].upper);
			pb_end(b, s);
		}
		pb_end(b, m);
	}
	if (at->def == ML_DEFAULT_INT)
		pb_put_int(b, 41, at->def_int);
	else if (at->def == ML_DEFAULT_FLOAT)
		pb_put_float(b, 51, at->def_float);
	else if (at->def == ML_DEFAULT_DOUBLE)
		pb_put_double(b, 61, at->def_double);
}

static void enc_feature_type(pb_buf *b, const ml_feature_type *t)
{
	if (t->kind == ML_FEAT_ARRAY || t->kind == ML_FEAT_STATE) {
		size_t m = pb_begin(b, (uint32_t)t->kind);
		size_t s = 0;
		if (t->kind == ML_FEAT_STATE && t->array)
			s = pb_begin(b, 1);
		if (t->array)
			enc_array(b, t->array);
		if (s)
			pb_end(b, s);
		pb_end(b, m);
	} else if (t->kind != ML_FEAT_NONE) {
		pb_put_bytes(b, (uint32_t)t->kind, t->raw, t->raw_len);
	}
	if (t->is_optional)
		pb_put_bool(b, 1000, 1);
}

static void enc_features(pb_buf *b, uint32_t field, const ml_features *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		const ml_feature *f = fs->v[i];
		size_t m = pb_begin(b, field);
		put_str(b, 1, f->name);
		put_str(b, 2, f->short_description);
		if (f->type) {
			size_t t = pb_begin(b, 3);
			enc_feature_type(b, f->type);
			pb_end(b, t);
		}
		pb_end(b, m);
	}
}

static void enc_function_desc(pb_buf *b, const ml_function_desc *fd)
{
	put_str(b, 1, fd->name);
	enc_features(b, 2, &fd->input);
	enc_features(b, 3, &fd->output);
	put_str(b, 4, fd->predicted_feature);
	put_str(b, 5, fd->predicted_probabilities);
	enc_features(b, 6, &fd->state);
}

static int kv_cmp(const void *x, const void *y) { return strcmp(((const ml_kv *)x)->key, ((const ml_kv *)y)->key); }

static void enc_metadata(pb_buf *b, const ml_metadata *md)
{
	put_str(b, 1, md->short_description);
	put_str(b, 2, md->version);
	put_str(b, 3, md->author);
	put_str(b, 4, md->license);
	if (!md->nuser)
		return;
	/* Keys are unique (setting one replaces it), so sorting a copy is enough. */
	ml_kv *sorted = xmalloc(xmul(md->nuser, sizeof *sorted));
	memcpy(sorted, md->user, md->nuser * sizeof *sorted);
	qsort(sorted, md->nuser, sizeof *sorted, kv_cmp);
	for (size_t i = 0; i < md->nuser; i++) {
		size_t m = pb_begin(b, 100);
		pb_put_string(b, 1, sorted[i].key); /* map entries always carry both */
		pb_put_string(b, 2, sorted[i].value);
		pb_end(b, m);
	}
	free(sorted);
}

static void enc_description(pb_buf *b, const ml_description *d)
{
	enc_features(b, 1, &d->top.input);
	enc_features(b, 10, &d->top.output);
	put_str(b, 11, d->top.predicted_feature);
	put_str(b, 12, d->top.predicted_probabilities);
	enc_features(b, 13, &d->top.state);
	for (size_t i = 0; i < d->nfunctions; i++) {
		size_t m = pb_begin(b, 20);
		enc_function_desc(b, d->functions[i]);
		pb_end(b, m);
	}
	put_str(b, 21, d->default_function);
	enc_features(b, 50, &d->training_input);
	if (d->metadata) {
		size_t m = pb_begin(b, 100);
		enc_metadata(b, d->metadata);
		pb_end(b, m);
	}
}

int ml_model_encode(const ml_model *m, pb_buf *out)
{
	if (m->spec_version)
		pb_put_int(out, 1, m->spec_version);
	if (m->desc) {
		size_t d = pb_begin(out, 2);
		enc_description(out, m->desc);
		pb_end(out, d);
	}
	if (m->is_updatable)
		pb_put_bool(out, 10, 1);
	if (m->program) {
		size_t p = pb_begin(out, 502);
		mil_program_encode(m->program, out);
		pb_end(out, p);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */

/* Same rules as mil.c's decoder: protobuf merge semantics, wrong wire types
 * rejected, unknown fields skipped. */


/* Append a repeated int64 field (packed or not) to s. */
static int dec_shape(mil_arena *a, ml_shape *s, const pb_field *f, const char *what)
{
	if (f->wt == PB_VARINT) {
		MIL_GROW(a, s->dims, s->cap, s->n + 1);
		s->dims[s->n++] = (int64_t)f->v;
		return 0;
	}
	if (mil_pb_want(f, PB_LEN, what) != 0)
		return -1;
	pb_reader r = pb_sub(f);
	while (r.p < r.end) {
		uint64_t v;
		if (pb_read_varint(&r, &v) != 0)
			return -1;
		MIL_GROW(a, s->dims, s->cap, s->n + 1);
		s->dims[s->n++] = (int64_t)v;
	}
	return 0;
}

static int dec_enumerated(mil_arena *a, ml_array_type *at, pb_reader r)
{
	pb_field f, g;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field != 1)
			continue;
		if (mil_pb_want(&f, PB_LEN, "EnumeratedShapes.shapes") != 0)
			return -1;
		MIL_GROW(a, at->shapes, at->shapes_cap, at->nshapes + 1);
		ml_shape *s = &at->shapes[at->nshapes++];
		memset(s, 0, sizeof *s);
		pb_reader sub = pb_sub(&f);
		while ((rc = pb_next(&sub, &g)) > 0)
			if (g.field == 1 && dec_shape(a, s, &g, "Shape.shape") != 0)
				return -1;
		if (rc < 0)
			return -1;
	}
	return rc;
}

static int dec_ranges(mil_arena *a, ml_array_type *at, pb_reader r)
{
	pb_field f, g;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field != 1)
			continue;
		if (mil_pb_want(&f, PB_LEN, "ShapeRange.sizeRanges") != 0)
			return -1;
		MIL_GROW(a, at->ranges, at->ranges_cap, at->nranges + 1);
		ml_size_range *sr = &at->ranges[at->nranges++];
		memset(sr, 0, sizeof *sr);
		pb_reader sub = pb_sub(&f);
		uint64_t v;
		while ((rc = pb_next(&sub, &g)) > 0) {
			if ((g.field == 1 || g.field == 2) && mil_pb_u64(&g, &v, "SizeRange") != 0)
				return -1;
			if (g.field == 1)
				sr->lower = v;
			else if (g.field == 2)
				sr->upper = (int64_t)v;
		}
		if (rc < 0)
			return -1;
	}
	return rc;
}

static int dec_default(ml_array_type *at, const pb_field *f)
{
	float fv;
	double dv;
	switch (f->field) {
	case 41:
		if (mil_pb_want(f, PB_VARINT, "ArrayFeatureType.intDefaultValue") != 0)
			return -1;
		at->def_int = (int32_t)f->v;
		break;
	case 51:
		if (pb_as_float(f, &fv) != 0)
			return -1;
		at->def_float = fv;
		break;
	default:
		if (pb_as_double(f, &dv) != 0)
			return -1;
		at->def_double = dv;
	}
	at->def = (ml_default_kind)f->field;
	return 0;
}

static int dec_array(mil_arena *a, ml_array_type *at, pb_reader r)
{
	pb_field f;
	int rc;
	uint64_t v;
	while ((rc = pb_next(&r, &f)) > 0) {
		int err = 0;
		switch (f.field) {
		case 1:
			err = dec_shape(a, &at->shape, &f, "ArrayFeatureType.shape");
			break;
		case 2:
			if ((err = mil_pb_u64(&f, &v, "ArrayFeatureType.dataType")) == 0)
				at->dtype = (int)(int32_t)v;
			break;
		case 21: case 31:
			if ((err = mil_pb_want(&f, PB_LEN, "ArrayFeatureType.ShapeFlexibility")) != 0)
				break;
			if ((int)at->flex != (int)f.field) { /* switching oneof member */
				at->flex = (ml_flex_kind)f.field;
				at->nshapes = at->nranges = 0;
			}
			err = f.field == 21 ? dec_enumerated(a, at, pb_sub(&f)) : dec_ranges(a, at, pb_sub(&f));
			break;
		case 41: case 51: case 61:
			err = dec_default(at, &f);
			break;
		}
		if (err)
			return -1;
	}
	return rc;
}

/* Merge a (nested) ArrayFeatureType into *slot, created when NULL. */
static int dec_array_into(mil_arena *a, ml_array_type **slot, const pb_field *f, const char *what)
{
	if (mil_pb_want(f, PB_LEN, what) != 0)
		return -1;
	if (!*slot)
		*slot = mil_alloc(a, sizeof(ml_array_type));
	return dec_array(a, *slot, pb_sub(f));
}

static int dec_state_type(mil_arena *a, ml_feature_type *t, pb_reader r)
{
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0)
		if (f.field == 1 && dec_array_into(a, &t->array, &f, "StateFeatureType.arrayType") != 0)
			return -1;
	return rc;
}

static int dec_feature_type(mil_arena *a, ml_feature_type *t, pb_reader r)
{
	pb_field f;
	int rc;
	uint64_t v;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field == 1000) {
			if (mil_pb_u64(&f, &v, "FeatureType.isOptional") != 0)
				return -1;
			t->is_optional = v != 0;
			continue;
		}
		if (f.field < 1 || f.field > 8)
			continue;
		if (mil_pb_want(&f, PB_LEN, "FeatureType") != 0)
			return -1;
		if ((int)t->kind != (int)f.field) { /* switching oneof member */
			t->kind = (ml_feature_kind)f.field;
			t->array = NULL;
			t->raw = NULL;
			t->raw_len = 0;
		}
		int err = 0;
		if (t->kind == ML_FEAT_ARRAY)
			err = dec_array_into(a, &t->array, &f, "FeatureType.multiArrayType");
		else if (t->kind == ML_FEAT_STATE)
			err = dec_state_type(a, t, pb_sub(&f));
		else {
			t->raw = mil_memdup(a, f.data, f.len);
			t->raw_len = f.len;
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_feature(mil_arena *a, ml_features *fs, const pb_field *f)
{
	if (mil_pb_want(f, PB_LEN, "FeatureDescription") != 0)
		return -1;
	ml_feature *feat = feature_new(a, "");
	features_push(a, fs, feat);
	pb_reader r = pb_sub(f);
	pb_field g;
	int rc, err = 0;
	while ((rc = pb_next(&r, &g)) > 0) {
		if (g.field == 1)
			err = mil_pb_str(a, &g, &feat->name, "FeatureDescription.name");
		else if (g.field == 2)
			err = mil_pb_str(a, &g, &feat->short_description, "FeatureDescription.shortDescription");
		else if (g.field == 3 && (err = mil_pb_want(&g, PB_LEN, "FeatureDescription.type")) == 0) {
			if (!feat->type)
				feat->type = mil_alloc(a, sizeof(ml_feature_type));
			err = dec_feature_type(a, feat->type, pb_sub(&g));
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_function_desc(mil_arena *a, ml_function_desc *fd, pb_reader r)
{
	pb_field f;
	int rc, err = 0;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1: err = mil_pb_str(a, &f, &fd->name, "FunctionDescription.name"); break;
		case 2: err = dec_feature(a, &fd->input, &f); break;
		case 3: err = dec_feature(a, &fd->output, &f); break;
		case 4: err = mil_pb_str(a, &f, &fd->predicted_feature, "FunctionDescription.predictedFeatureName"); break;
		case 5: err = mil_pb_str(a, &f, &fd->predicted_probabilities, "FunctionDescription.predictedProbabilitiesName"); break;
		case 6: err = dec_feature(a, &fd->state, &f); break;
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_str_field(void *a, void *out, const pb_field *f, const char *what) { return mil_pb_str(a, f, out, what); }

static int dec_user_entry(mil_arena *a, ml_metadata *md, const pb_field *f)
{
	static const char *const names[] = {"Metadata.userDefined", "Metadata.userDefined key", "Metadata.userDefined value"};
	const char *key = "", *value = "";
	if (mil_pb_entry(a, f, names, &key, dec_str_field, a, &value) != 0)
		return -1;
	user_meta_set(a, md, key, value);
	return 0;
}

static int dec_metadata(mil_arena *a, ml_metadata *md, pb_reader r)
{
	pb_field f;
	int rc, err = 0;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1: err = mil_pb_str(a, &f, &md->short_description, "Metadata.shortDescription"); break;
		case 2: err = mil_pb_str(a, &f, &md->version, "Metadata.versionString"); break;
		case 3: err = mil_pb_str(a, &f, &md->author, "Metadata.author"); break;
		case 4: err = mil_pb_str(a, &f, &md->license, "Metadata.license"); break;
		case 100: err = dec_user_entry(a, md, &f); break;
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_description(mil_arena *a, ml_description *d, pb_reader r)
{
	pb_field f;
	int rc, err = 0;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1: err = dec_feature(a, &d->top.input, &f); break;
		case 10: err = dec_feature(a, &d->top.output, &f); break;
		case 11: err = mil_pb_str(a, &f, &d->top.predicted_feature, "ModelDescription.predictedFeatureName"); break;
		case 12: err = mil_pb_str(a, &f, &d->top.predicted_probabilities, "ModelDescription.predictedProbabilitiesName"); break;
		case 13: err = dec_feature(a, &d->top.state, &f); break;
		case 20:
			if ((err = mil_pb_want(&f, PB_LEN, "ModelDescription.functions")) == 0) {
				ml_function_desc *fd = function_desc_new(a, "");
				desc_push_function(a, d, fd);
				err = dec_function_desc(a, fd, pb_sub(&f));
			}
			break;
		case 21: err = mil_pb_str(a, &f, &d->default_function, "ModelDescription.defaultFunctionName"); break;
		case 50: err = dec_feature(a, &d->training_input, &f); break;
		case 100:
			if ((err = mil_pb_want(&f, PB_LEN, "ModelDescription.metadata")) == 0) {
				if (!d->metadata)
					d->metadata = metadata_new(a);
				err = dec_metadata(a, d->metadata, pb_sub(&f));
			}
			break;
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_model(ml_model *m, pb_reader r)
{
	pb_field f;
	int rc, err = 0;
	uint64_t v;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			if ((err = mil_pb_u64(&f, &v, "Model.specificationVersion")) == 0)
				m->spec_version = (int32_t)v;
			break;
		case 2:
			if ((err = mil_pb_want(&f, PB_LEN, "Model.description")) == 0)
				err = dec_description(m->arena, ml_model_desc(m), pb_sub(&f));
			break;
		case 10:
			if ((err = mil_pb_u64(&f, &v, "Model.isUpdatable")) == 0)
				m->is_updatable = v != 0;
			break;
		case 502:
			if ((err = mil_pb_want(&f, PB_LEN, "Model.mlProgram")) != 0)
				break;
			if (!m->program) {
				m->program = mil_program_new(m->arena);
				m->program->version = 0; /* absent on the wire means 0 */
			}
			err = mil_program_decode(m->program, f.data, f.len);
			break;
		}
		if (err)
			return -1;
	}
	return rc;
}

int ml_model_decode(const void *bytes, size_t n, ml_model **out)
{
	ml_model *m = model_alloc();
	*out = NULL;
	if (dec_model(m, pb_reader_of(bytes ? bytes : "", n)) != 0) { /* an empty pb_buf has no data */
		char why[512];
		snprintf(why, sizeof why, "%s", errmsg());
		ml_model_free(m);
		return errf("not a valid Core ML model: %s", why);
	}
	*out = m;
	return 0;
}

int ml_model_read(const char *path, ml_model **out)
{
	char *data;
	size_t n;
	*out = NULL;
	if (read_file(path, FS_MAX_MODEL, &data, &n) != 0)
		return -1;
	int rc = ml_model_decode(data, n, out);
	free(data);
	if (rc != 0) {
		char why[512];
		snprintf(why, sizeof why, "%s", errmsg());
		return errf("%s: %s", path, why);
	}
	return 0;
}
