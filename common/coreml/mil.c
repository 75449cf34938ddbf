/* mil.c: ML Program structures, builder and protobuf codec (see mil.h).
 *
 * Sections in data-flow order: the arena every object lives in; types;
 * values; the program/function/block/op builder and lookups; deep copies;
 * the canonical encoder; the decoder. A converted model holds a few thousand
 * ops per function (a few hundred thousand protobuf fields), so everything
 * here is linear and allocation is a pointer bump.
 */
#include "coreml/mil.h"
#include "base/util.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Arena                                                               */

/* Chunks are 64 KiB; larger requests get a chunk of their own, linked
 * behind the current one so its free space is not abandoned. */
#define ARENA_CHUNK 65536
#define ARENA_ALIGN alignof(max_align_t)

typedef struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	max_align_t data[];
} arena_chunk;

struct mil_arena {
	arena_chunk *head;
	size_t used;
};

mil_arena *mil_arena_new(void) { return xcalloc(1, sizeof(mil_arena)); }

void mil_arena_free(mil_arena *a)
{
	if (!a)
		return;
	for (arena_chunk *c = a->head, *next; c; c = next) {
		next = c->next;
		free(c);
	}
	free(a);
}

static arena_chunk *chunk_new(size_t size)
{
	if (size > SIZE_MAX - sizeof(arena_chunk))
		BUG("arena request of %zu bytes", size);
	arena_chunk *c = xcalloc(1, sizeof(arena_chunk) + size);
	c->size = size;
	return c;
}

void *mil_alloc(mil_arena *a, size_t n)
{
	if (n > SIZE_MAX - ARENA_ALIGN)
		BUG("arena request of %zu bytes", n);
	n = n ? (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN : ARENA_ALIGN;
	a->used += n;
	arena_chunk *c = a->head;
	if (c && c->size - c->used >= n) {
		void *p = (char *)c->data + c->used;
		c->used += n;
		return p;
	}
	if (n > ARENA_CHUNK / 4 && c) {
		arena_chunk *big = chunk_new(n);
		big->used = n;
		big->next = c->next;
		c->next = big;
		return big->data;
	}
	c = chunk_new(n > ARENA_CHUNK ? n : ARENA_CHUNK);
	c->next = a->head;
	a->head = c;
	c->used = n;
	return c->data;
}

void *mil_memdup(mil_arena *a, const void *p, size_t n)
{
	void *q = mil_alloc(a, n);
	if (n)
		memcpy(q, p, n);
	return q;
}

char *mil_strndup(mil_arena *a, const char *s, size_t n)
{
	if (n == SIZE_MAX)
		BUG("string too long");
	char *q = mil_alloc(a, n + 1);
	if (n)
		memcpy(q, s, n);
	q[n] = 0;
	return q;
}

char *mil_strdup(mil_arena *a, const char *s) { return s ? mil_strndup(a, s, strlen(s)) : mil_strndup(a, "", 0); }

size_t mil_arena_used(const mil_arena *a) { return a->used; }

void mil_grow(mil_arena *a, void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	size_t ncap = *cap < 4 ? 4 : *cap;
	while (ncap < need)
		ncap = xmul(ncap, 2);
	void *q = mil_alloc(a, xmul(ncap, elem));
	if (*cap)
		memcpy(q, *p, *cap * elem);
	*p = q;
	*cap = ncap;
}

size_t mil_find(const void *v, size_t n, size_t stride, size_t off, int deref, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		const char *e = (const char *)v + i * stride, *name;
		if (deref) { /* the element is a pointer to the struct */
			const void *elem;
			memcpy(&elem, e, sizeof elem);
			e = elem;
		}
		memcpy(&name, e + off, sizeof name);
		if (strcmp(name, key) == 0)
			return i;
	}
	return n;
}

size_t mil_map_slot(mil_arena *a, void **v, size_t *n, size_t *cap, size_t stride, size_t off, const char *key)
{
	size_t i = mil_find(*v, *n, stride, off, 0, key);
	if (i < *n)
		return i;
	mil_grow(a, v, cap, i + 1, stride);
	char *e = (char *)*v + i * stride, *copy = mil_strdup(a, key);
	memset(e, 0, stride);
	memcpy(e + off, &copy, sizeof copy);
	(*n)++;
	return i;
}

/* ------------------------------------------------------------------ */
/* Types                                                               */

static mil_type *type_new(mil_arena *a, mil_type_kind kind)
{
	mil_type *t = mil_alloc(a, sizeof *t);
	t->kind = kind;
	return t;
}

mil_type *mil_type_tensor(mil_arena *a, mil_dtype dt, size_t rank, const int64_t *dims)
{
	mil_type *t = type_new(a, MIL_TYPE_TENSOR);
	t->dtype = (int)dt;
	t->rank = (int64_t)rank;
	t->ndims = t->dims_cap = rank;
	t->dims = mil_alloc(a, xmul(rank, sizeof(mil_dim)));
	for (size_t i = 0; i < rank; i++) {
		if (dims[i] < 0) {
			t->dims[i].kind = MIL_DIM_UNKNOWN;
		} else {
			t->dims[i].kind = MIL_DIM_CONST;
			t->dims[i].size = (uint64_t)dims[i];
		}
	}
	return t;
}

mil_type *mil_type_scalar(mil_arena *a, mil_dtype dt) { return mil_type_tensor(a, dt, 0, NULL); }

mil_type *mil_type_state(mil_arena *a, mil_type *wrapped)
{
	mil_type *t = type_new(a, MIL_TYPE_STATE);
	t->wrapped = wrapped;
	return t;
}

mil_type *mil_type_list(mil_arena *a, mil_type *elem)
{
	mil_type *t = type_new(a, MIL_TYPE_LIST);
	t->wrapped = elem;
	return t;
}

mil_type *mil_type_tuple(mil_arena *a, size_t n, mil_type *const *types)
{
	mil_type *t = type_new(a, MIL_TYPE_TUPLE);
	t->ntypes = t->types_cap = n;
	t->types = mil_memdup(a, types, xmul(n, sizeof *types));
	return t;
}

mil_type *mil_type_dict(mil_arena *a, mil_type *key, mil_type *value)
{
	mil_type *t = type_new(a, MIL_TYPE_DICT);
	t->key_type = key;
	t->value_type = value;
	return t;
}

int mil_type_numel(const mil_type *t, uint64_t *n)
{
	if (!t || t->kind != MIL_TYPE_TENSOR)
		return -1;
	uint64_t k = 1;
	for (size_t i = 0; i < t->ndims; i++)
		if (t->dims[i].kind != MIL_DIM_CONST || mul_u64(k, t->dims[i].size, &k) != 0)
			return -1;
	*n = k;
	return 0;
}

static int dim_equal(const mil_dim *x, const mil_dim *y)
{
	return x->kind == y->kind && !x->variadic == !y->variadic && x->size == y->size;
}

static int attrs_equal(const mil_attrs *x, const mil_attrs *y)
{
	if (x->n != y->n)
		return 0;
	for (size_t i = 0; i < x->n; i++)
		if (!mil_value_equal(x->v[i].value, mil_attrs_get(y, x->v[i].key)))
			return 0;
	return 1;
}

int mil_type_equal(const mil_type *x, const mil_type *y)
{
	if (!x || !y)
		return x == y;
	if (x->kind != y->kind || x->dtype != y->dtype || x->rank != y->rank || x->ndims != y->ndims ||
	    !x->has_length != !y->has_length || x->ntypes != y->ntypes)
		return 0;
	for (size_t i = 0; i < x->ndims; i++)
		if (!dim_equal(&x->dims[i], &y->dims[i]))
			return 0;
	if (x->has_length && !dim_equal(&x->length, &y->length))
		return 0;
	for (size_t i = 0; i < x->ntypes; i++)
		if (!mil_type_equal(x->types[i], y->types[i]))
			return 0;
	return attrs_equal(&x->attrs, &y->attrs) && mil_type_equal(x->wrapped, y->wrapped) &&
	       mil_type_equal(x->key_type, y->key_type) && mil_type_equal(x->value_type, y->value_type);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static mil_value *value_new(mil_arena *a, mil_type *t, mil_value_kind kind)
{
	mil_value *v = mil_alloc(a, sizeof *v);
	v->doc = "";
	v->file = "";
	v->type = t;
	v->kind = kind;
	return v;
}

/* Bytes per element of a TensorValue member (strings: a pointer). */
static size_t tv_elem_size(mil_tv_field field)
{
	switch (field) {
	case MIL_TV_FLOATS: case MIL_TV_INTS: return 4;
	case MIL_TV_BOOLS: case MIL_TV_BYTES: return 1;
	case MIL_TV_STRINGS: return sizeof(const char *);
	case MIL_TV_LONGINTS: case MIL_TV_DOUBLES: return 8;
	default: return 1;
	}
}

static void tv_copy(mil_arena *a, mil_tensor_value *dst, mil_tv_field field, const void *data, size_t n)
{
	dst->field = field;
	dst->n = dst->cap = n;
	dst->u.any = mil_alloc(a, xmul(n, tv_elem_size(field)));
	if (field == MIL_TV_STRINGS) {
		for (size_t i = 0; i < n; i++)
			dst->u.strings[i] = mil_strdup(a, ((const char *const *)data)[i]);
	} else if (n) {
		memcpy(dst->u.any, data, n * tv_elem_size(field));
	}
}

mil_value *mil_value_raw(mil_arena *a, mil_type *t, mil_tv_field field, const void *data, size_t n)
{
	ASSERT(field >= MIL_TV_NONE && field <= MIL_TV_BYTES);
	mil_value *v = value_new(a, t, MIL_VAL_TENSOR);
	tv_copy(a, &v->tensor, field, data, field == MIL_TV_NONE ? 0 : n);
	return v;
}

/* Little-endian bytes of n unsigned values of `width` bytes each. */
static uint8_t *le_bytes(mil_arena *a, const void *data, size_t n, int width)
{
	uint8_t *out = mil_alloc(a, xmul(n, (size_t)width));
	for (size_t i = 0; i < n; i++) {
		uint64_t x = width == 2 ? ((const uint16_t *)data)[i] : ((const uint32_t *)data)[i];
		for (int k = 0; k < width; k++)
			out[i * (size_t)width + (size_t)k] = (uint8_t)(x >> (8 * k));
	}
	return out;
}

static mil_value *value_bytes(mil_arena *a, mil_type *t, uint8_t *bytes, size_t n)
{
	mil_value *v = value_new(a, t, MIL_VAL_TENSOR);
	v->tensor.field = MIL_TV_BYTES;
	v->tensor.n = v->tensor.cap = n;
	v->tensor.u.bytes = bytes;
	return v;
}

/* int16/uint16 are stored widened in `ints`. */
static mil_value *value_widened(mil_arena *a, mil_type *t, const void *data, size_t n, int is_signed)
{
	mil_value *v = mil_value_raw(a, t, MIL_TV_INTS, NULL, 0);
	v->tensor.u.ints = mil_alloc(a, xmul(n, 4));
	v->tensor.n = v->tensor.cap = n;
	for (size_t i = 0; i < n; i++)
		v->tensor.u.ints[i] = is_signed ? ((const int16_t *)data)[i] : ((const uint16_t *)data)[i];
	return v;
}

mil_value *mil_value_tensor(mil_arena *a, mil_type *t, const void *data)
{
	uint64_t n64;
	if (mil_type_numel(t, &n64) != 0 || n64 > SIZE_MAX / 8)
		BUG("mil_value_tensor needs a tensor type with constant dims");
	size_t n = (size_t)n64;
	mil_value *v;
	switch ((mil_dtype)t->dtype) {
	case MIL_FP32: return mil_value_raw(a, t, MIL_TV_FLOATS, data, n);
	case MIL_FP64: return mil_value_raw(a, t, MIL_TV_DOUBLES, data, n);
	case MIL_INT32: return mil_value_raw(a, t, MIL_TV_INTS, data, n);
	case MIL_INT64: case MIL_UINT64: return mil_value_raw(a, t, MIL_TV_LONGINTS, data, n);
	case MIL_STRING: return mil_value_raw(a, t, MIL_TV_STRINGS, data, n);
	case MIL_INT16: return value_widened(a, t, data, n, 1);
	case MIL_UINT16: return value_widened(a, t, data, n, 0);
	case MIL_BOOL:
		v = mil_value_raw(a, t, MIL_TV_BOOLS, data, n);
		for (size_t i = 0; i < n; i++)
			v->tensor.u.bools[i] = v->tensor.u.bools[i] != 0;
		return v;
	case MIL_FP16: case MIL_BF16: return value_bytes(a, t, le_bytes(a, data, n, 2), n * 2);
	case MIL_UINT32: return value_bytes(a, t, le_bytes(a, data, n, 4), n * 4);
	case MIL_INT8: case MIL_UINT8: case MIL_FP8E4M3FN: case MIL_FP8E5M2:
	case MIL_INT4: case MIL_UINT1: case MIL_UINT2: case MIL_UINT3: case MIL_UINT4: case MIL_UINT6: {
		size_t nb = mil_dtype_bytes((mil_dtype)t->dtype, n);
		return value_bytes(a, t, mil_memdup(a, data, nb), nb);
	}
	default:
		BUG("no immediate encoding for dtype %d", t->dtype);
	}
}

mil_value *mil_value_i32(mil_arena *a, int32_t v) { return mil_value_tensor(a, mil_type_scalar(a, MIL_INT32), &v); }
mil_value *mil_value_fp16(mil_arena *a, uint16_t bits) { return mil_value_tensor(a, mil_type_scalar(a, MIL_FP16), &bits); }
mil_value *mil_value_fp32(mil_arena *a, float v) { return mil_value_tensor(a, mil_type_scalar(a, MIL_FP32), &v); }
mil_value *mil_value_i64(mil_arena *a, int64_t v) { return mil_value_tensor(a, mil_type_scalar(a, MIL_INT64), &v); }
mil_value *mil_value_str(mil_arena *a, const char *s) { return mil_value_tensor(a, mil_type_scalar(a, MIL_STRING), &s); }

mil_value *mil_value_bool(mil_arena *a, int v)
{
	uint8_t b = v != 0;
	return mil_value_tensor(a, mil_type_scalar(a, MIL_BOOL), &b);
}

static mil_type *vec_type(mil_arena *a, mil_dtype dt, size_t n)
{
	int64_t dim = (int64_t)n;
	return mil_type_tensor(a, dt, 1, &dim);
}

mil_value *mil_value_i32s(mil_arena *a, size_t n, const int32_t *v) { return mil_value_tensor(a, vec_type(a, MIL_INT32, n), v); }
mil_value *mil_value_bools(mil_arena *a, size_t n, const uint8_t *v) { return mil_value_tensor(a, vec_type(a, MIL_BOOL, n), v); }
mil_value *mil_value_fp16s(mil_arena *a, size_t n, const uint16_t *bits) { return mil_value_tensor(a, vec_type(a, MIL_FP16, n), bits); }
mil_value *mil_value_fp32s(mil_arena *a, size_t n, const float *v) { return mil_value_tensor(a, vec_type(a, MIL_FP32, n), v); }

mil_value *mil_value_blob(mil_arena *a, mil_type *t, const char *file, uint64_t offset)
{
	mil_value *v = value_new(a, t, MIL_VAL_BLOB);
	v->file = mil_strdup(a, file ? file : MIL_WEIGHT_FILE);
	v->offset = offset;
	return v;
}

mil_value *mil_value_seq(mil_arena *a, mil_value_kind kind, mil_type *t)
{
	ASSERT(kind == MIL_VAL_TUPLE || kind == MIL_VAL_LIST || kind == MIL_VAL_DICT);
	return value_new(a, t, kind);
}

/* Room for one more item (and key, for dicts). */
static void seq_reserve(mil_arena *a, mil_value *v)
{
	if (v->n < v->cap)
		return;
	size_t cap = v->cap;
	MIL_GROW(a, v->items, cap, v->n + 1);
	if (v->kind == MIL_VAL_DICT) {
		size_t kcap = v->cap;
		MIL_GROW(a, v->keys, kcap, cap);
	}
	v->cap = cap;
}

void mil_value_push(mil_arena *a, mil_value *seq, mil_value *item)
{
	ASSERT(item && (seq->kind == MIL_VAL_TUPLE || seq->kind == MIL_VAL_LIST));
	seq_reserve(a, seq);
	seq->items[seq->n++] = item;
}

void mil_value_dict_add(mil_arena *a, mil_value *dict, mil_value *key, mil_value *value)
{
	ASSERT(dict->kind == MIL_VAL_DICT);
	seq_reserve(a, dict);
	dict->keys[dict->n] = key;
	dict->items[dict->n++] = value;
}

mil_value *mil_value_dict_str(mil_arena *a)
{
	mil_type *t = mil_type_dict(a, mil_type_scalar(a, MIL_STRING), mil_type_scalar(a, MIL_STRING));
	return mil_value_seq(a, MIL_VAL_DICT, t);
}

void mil_value_dict_set_str(mil_arena *a, mil_value *dict, const char *key, const char *value)
{
	ASSERT(dict->kind == MIL_VAL_DICT);
	for (size_t i = 0; i < dict->n; i++) {
		const char *k = mil_value_as_str(dict->keys[i]);
		if (k && strcmp(k, key) == 0) {
			dict->items[i] = mil_value_str(a, value);
			return;
		}
	}
	mil_value_dict_add(a, dict, mil_value_str(a, key), mil_value_str(a, value));
}

const char *mil_value_as_str(const mil_value *v)
{
	if (!v || v->kind != MIL_VAL_TENSOR || v->tensor.field != MIL_TV_STRINGS || v->tensor.n != 1)
		return NULL;
	return v->tensor.u.strings[0];
}

int mil_value_get_int(const mil_value *v, size_t i, int64_t *out)
{
	if (!v || v->kind != MIL_VAL_TENSOR)
		return -1;
	const mil_tensor_value *tv = &v->tensor;
	int dt = v->type ? v->type->dtype : MIL_UNUSED;
	if (tv->field == MIL_TV_BYTES) {
		const uint8_t *p = tv->u.bytes;
		if ((dt == MIL_INT8 || dt == MIL_UINT8) && i < tv->n)
			*out = dt == MIL_INT8 ? (int8_t)p[i] : p[i];
		else if (dt == MIL_UINT32 && i < tv->n / 4)
			*out = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
		else
			return -1;
		return 0;
	}
	if (i >= tv->n)
		return -1;
	switch (tv->field) {
	case MIL_TV_INTS: *out = tv->u.ints[i]; return 0;
	case MIL_TV_LONGINTS: *out = tv->u.longints[i]; return 0;
	case MIL_TV_BOOLS: *out = tv->u.bools[i]; return 0;
	default: return -1;
	}
}

static int tensor_value_equal(const mil_tensor_value *x, const mil_tensor_value *y)
{
	if (x->field != y->field || x->n != y->n)
		return 0;
	if (x->field == MIL_TV_STRINGS) {
		for (size_t i = 0; i < x->n; i++)
			if (strcmp(x->u.strings[i], y->u.strings[i]) != 0)
				return 0;
		return 1;
	}
	return x->n == 0 || memcmp(x->u.any, y->u.any, x->n * tv_elem_size(x->field)) == 0;
}

int mil_value_equal(const mil_value *x, const mil_value *y)
{
	if (!x || !y)
		return x == y;
	if (x->kind != y->kind || strcmp(x->doc, y->doc) != 0 || !mil_type_equal(x->type, y->type))
		return 0;
	switch (x->kind) {
	case MIL_VAL_TENSOR:
		return tensor_value_equal(&x->tensor, &y->tensor);
	case MIL_VAL_BLOB:
		return x->offset == y->offset && strcmp(x->file, y->file) == 0;
	case MIL_VAL_TUPLE: case MIL_VAL_LIST: case MIL_VAL_DICT:
		if (x->n != y->n)
			return 0;
		for (size_t i = 0; i < x->n; i++)
			if (!mil_value_equal(x->items[i], y->items[i]) ||
			    (x->kind == MIL_VAL_DICT && !mil_value_equal(x->keys[i], y->keys[i])))
				return 0;
		return 1;
	default:
		return 1;
	}
}

/* ------------------------------------------------------------------ */
/* Program, functions, blocks, ops                                     */

static mil_block *block_new(mil_arena *a)
{
	mil_block *b = mil_alloc(a, sizeof *b);
	b->arena = a;
	return b;
}

static mil_function *function_new(mil_arena *a, const char *name)
{
	mil_function *f = mil_alloc(a, sizeof *f);
	f->arena = a;
	f->name = mil_strdup(a, name);
	f->opset = "";
	return f;
}

static mil_op *op_new(mil_arena *a)
{
	mil_op *op = mil_alloc(a, sizeof *op);
	op->arena = a;
	op->type = "";
	return op;
}

mil_program *mil_program_new(mil_arena *a)
{
	mil_program *p = mil_alloc(a, sizeof *p);
	p->arena = a;
	p->version = 1;
	p->doc = "";
	return p;
}

/* Put f into p's function map, replacing a function of the same name. */
static size_t find_function(const mil_program *p, const char *name)
{
	return MIL_FIND_PTR(p->functions, p->nfunctions, mil_function, name, name);
}

static void program_put(mil_program *p, mil_function *f)
{
	size_t i = find_function(p, f->name);
	if (i == p->nfunctions) {
		MIL_GROW(p->arena, p->functions, p->functions_cap, i + 1);
		p->nfunctions++;
	}
	p->functions[i] = f;
}

static void function_put_block(mil_function *f, const char *key, mil_block *b)
{
	size_t i = MIL_MAP_SLOT(f->arena, f->blocks, f->nblocks, f->blocks_cap, mil_spec_block, key, key);
	f->blocks[i].block = b;
}

mil_function *mil_program_add_function(mil_program *p, const char *name, const char *opset)
{
	mil_function *f = function_new(p->arena, name);
	f->opset = mil_strdup(p->arena, opset ? opset : MIL_OPSET_IOS18);
	function_put_block(f, f->opset, block_new(p->arena));
	program_put(p, f);
	return f;
}

mil_function *mil_program_find_function(const mil_program *p, const char *name)
{
	size_t i = find_function(p, name);
	return i < p->nfunctions ? p->functions[i] : NULL;
}

int mil_program_remove_function(mil_program *p, const char *name)
{
	size_t i = find_function(p, name);
	if (i == p->nfunctions)
		return -1;
	memmove(&p->functions[i], &p->functions[i + 1], (p->nfunctions - i - 1) * sizeof *p->functions);
	p->nfunctions--;
	return 0;
}

void mil_program_set_build_info(mil_program *p, const char *key, const char *value)
{
	mil_value *d = mil_attrs_get(&p->attrs, "buildInfo");
	if (!d || d->kind != MIL_VAL_DICT) {
		d = mil_value_dict_str(p->arena);
		mil_attrs_set(p->arena, &p->attrs, "buildInfo", d);
	}
	mil_value_dict_set_str(p->arena, d, key, value);
}

static void vars_push(mil_arena *a, mil_var **v, size_t *n, size_t *cap, const char *name, mil_type *t)
{
	mil_grow(a, (void **)v, cap, *n + 1, sizeof **v);
	(*v)[*n].name = mil_strdup(a, name);
	(*v)[*n].type = t;
	(*n)++;
}

void mil_function_add_input(mil_function *f, const char *name, mil_type *t)
{
	vars_push(f->arena, &f->inputs, &f->ninputs, &f->inputs_cap, name, t);
}

mil_block *mil_function_block(const mil_function *f)
{
	size_t i = MIL_FIND(f->blocks, f->nblocks, mil_spec_block, key, f->opset);
	if (i < f->nblocks)
		return f->blocks[i].block;
	return f->nblocks ? f->blocks[0].block : NULL;
}

static void block_push_op(mil_block *b, mil_op *op)
{
	MIL_GROW(b->arena, b->ops, b->ops_cap, b->nops + 1);
	b->ops[b->nops++] = op;
}

mil_op *mil_block_add_op(mil_block *b, const char *type, const char *name)
{
	mil_op *op = op_new(b->arena);
	op->type = mil_strdup(b->arena, type);
	if (name)
		mil_op_set_attr(op, "name", mil_value_str(b->arena, name));
	block_push_op(b, op);
	return op;
}

mil_op *mil_block_add_const(mil_block *b, const char *name, mil_value *val)
{
	mil_op *op = mil_block_add_op(b, "const", name);
	mil_op_add_output(op, name, mil_type_copy(b->arena, val->type));
	mil_op_set_attr(op, "val", val);
	return op;
}

void mil_block_add_input(mil_block *b, const char *name, mil_type *t)
{
	vars_push(b->arena, &b->inputs, &b->ninputs, &b->inputs_cap, name, t);
}

void mil_block_add_output(mil_block *b, const char *var)
{
	MIL_GROW(b->arena, b->outputs, b->outputs_cap, b->noutputs + 1);
	b->outputs[b->noutputs++] = mil_strdup(b->arena, var);
}

mil_op *mil_block_find_producer(const mil_block *b, const char *var, size_t *index)
{
	for (size_t i = 0; i < b->nops; i++) {
		const mil_op *op = b->ops[i];
		for (size_t k = 0; k < op->noutputs; k++) {
			if (strcmp(op->outputs[k].name, var) == 0) {
				if (index)
					*index = i;
				return b->ops[i];
			}
		}
	}
	return NULL;
}

static mil_arg *arg_new(mil_arena *a, const char *param)
{
	mil_arg *arg = mil_alloc(a, sizeof *arg);
	arg->param = mil_strdup(a, param);
	return arg;
}

/* Put arg into op's input map, replacing a parameter of the same name. */
static void op_put_arg(mil_op *op, mil_arg *arg)
{
	size_t i = MIL_FIND_PTR(op->inputs, op->ninputs, mil_arg, param, arg->param);
	if (i == op->ninputs) {
		MIL_GROW(op->arena, op->inputs, op->inputs_cap, i + 1);
		op->ninputs++;
	}
	op->inputs[i] = arg;
}

mil_arg *mil_op_arg(mil_op *op, const char *param)
{
	mil_arg *arg = (mil_arg *)mil_op_input(op, param);
	if (!arg) {
		arg = arg_new(op->arena, param);
		op_put_arg(op, arg);
	}
	return arg;
}

static mil_binding *arg_push(mil_arena *a, mil_arg *arg)
{
	MIL_GROW(a, arg->v, arg->cap, arg->n + 1);
	mil_binding *b = &arg->v[arg->n++];
	memset(b, 0, sizeof *b);
	return b;
}

void mil_arg_add_name(mil_arena *a, mil_arg *arg, const char *var)
{
	mil_binding *b = arg_push(a, arg);
	b->kind = MIL_BIND_NAME;
	b->name = mil_strdup(a, var);
}

void mil_arg_add_value(mil_arena *a, mil_arg *arg, mil_value *v)
{
	ASSERT(v);
	mil_binding *b = arg_push(a, arg);
	b->kind = MIL_BIND_VALUE;
	b->value = v;
}

void mil_op_bind(mil_op *op, const char *param, const char *var)
{
	mil_arg *arg = mil_op_arg(op, param);
	arg->n = 0;
	mil_arg_add_name(op->arena, arg, var);
}

void mil_op_bind_value(mil_op *op, const char *param, mil_value *v)
{
	mil_arg *arg = mil_op_arg(op, param);
	arg->n = 0;
	mil_arg_add_value(op->arena, arg, v);
}

void mil_op_bind_names(mil_op *op, const char *param, size_t n, const char *const *vars)
{
	mil_arg *arg = mil_op_arg(op, param);
	arg->n = 0;
	for (size_t i = 0; i < n; i++)
		mil_arg_add_name(op->arena, arg, vars[i]);
}

void mil_op_add_output(mil_op *op, const char *name, mil_type *t)
{
	vars_push(op->arena, &op->outputs, &op->noutputs, &op->outputs_cap, name, t);
}

void mil_op_set_attr(mil_op *op, const char *key, mil_value *v) { mil_attrs_set(op->arena, &op->attrs, key, v); }

mil_block *mil_op_add_block(mil_op *op)
{
	mil_block *b = block_new(op->arena);
	MIL_GROW(op->arena, op->blocks, op->blocks_cap, op->nblocks + 1);
	op->blocks[op->nblocks++] = b;
	return b;
}

const mil_arg *mil_op_input(const mil_op *op, const char *param)
{
	size_t i = MIL_FIND_PTR(op->inputs, op->ninputs, mil_arg, param, param);
	return i < op->ninputs ? op->inputs[i] : NULL;
}

mil_value *mil_op_attr(const mil_op *op, const char *key) { return mil_attrs_get(&op->attrs, key); }
const char *mil_op_name(const mil_op *op) { return mil_value_as_str(mil_op_attr(op, "name")); }

void mil_attrs_set(mil_arena *a, mil_attrs *m, const char *key, mil_value *v)
{
	ASSERT(v);
	size_t i = MIL_MAP_SLOT(a, m->v, m->n, m->cap, mil_attr, key, key);
	m->v[i].value = v;
}

mil_value *mil_attrs_get(const mil_attrs *m, const char *key)
{
	size_t i = MIL_FIND(m->v, m->n, mil_attr, key, key);
	return i < m->n ? m->v[i].value : NULL;
}

/* ------------------------------------------------------------------ */
/* Walking values                                                      */

static int visit_value(mil_value *v, mil_value_fn fn, void *ctx)
{
	if (!v)
		return 0;
	int rc = fn(v, ctx);
	if (rc || (v->kind != MIL_VAL_TUPLE && v->kind != MIL_VAL_LIST && v->kind != MIL_VAL_DICT))
		return rc;
	for (size_t i = 0; i < v->n && !rc; i++) {
		if (v->kind == MIL_VAL_DICT)
			rc = visit_value(v->keys[i], fn, ctx);
		if (!rc)
			rc = visit_value(v->items[i], fn, ctx);
	}
	return rc;
}

static int visit_block(mil_block *b, mil_value_fn fn, void *ctx)
{
	int rc = 0;
	for (size_t i = 0; i < b->nops && !rc; i++) {
		mil_op *op = b->ops[i];
		for (size_t k = 0; k < op->ninputs && !rc; k++)
			for (size_t j = 0; j < op->inputs[k]->n && !rc; j++)
				if (op->inputs[k]->v[j].kind == MIL_BIND_VALUE)
					rc = visit_value(op->inputs[k]->v[j].value, fn, ctx);
		for (size_t k = 0; k < op->attrs.n && !rc; k++)
			rc = visit_value(op->attrs.v[k].value, fn, ctx);
		for (size_t k = 0; k < op->nblocks && !rc; k++)
			rc = visit_block(op->blocks[k], fn, ctx);
	}
	return rc;
}

int mil_function_foreach_value(mil_function *f, mil_value_fn fn, void *ctx)
{
	int rc = 0;
	for (size_t i = 0; i < f->nblocks && !rc; i++)
		rc = visit_block(f->blocks[i].block, fn, ctx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Deep copies (into another arena)                                    */

static void attrs_copy(mil_arena *a, mil_attrs *dst, const mil_attrs *src)
{
	memset(dst, 0, sizeof *dst);
	for (size_t i = 0; i < src->n; i++)
		mil_attrs_set(a, dst, src->v[i].key, mil_value_copy(a, src->v[i].value));
}

mil_type *mil_type_copy(mil_arena *a, const mil_type *t)
{
	if (!t)
		return NULL;
	mil_type *c = type_new(a, t->kind);
	c->dtype = t->dtype;
	c->rank = t->rank;
	c->ndims = c->dims_cap = t->ndims;
	c->dims = mil_memdup(a, t->dims, xmul(t->ndims, sizeof(mil_dim)));
	attrs_copy(a, &c->attrs, &t->attrs);
	c->wrapped = mil_type_copy(a, t->wrapped);
	c->has_length = t->has_length;
	c->length = t->length;
	c->key_type = mil_type_copy(a, t->key_type);
	c->value_type = mil_type_copy(a, t->value_type);
	c->ntypes = c->types_cap = t->ntypes;
	c->types = mil_alloc(a, xmul(t->ntypes, sizeof(mil_type *)));
	for (size_t i = 0; i < t->ntypes; i++)
		c->types[i] = mil_type_copy(a, t->types[i]);
	return c;
}

mil_value *mil_value_copy(mil_arena *a, const mil_value *v)
{
	if (!v)
		return NULL;
	mil_value *c = value_new(a, mil_type_copy(a, v->type), v->kind);
	c->doc = mil_strdup(a, v->doc);
	c->file = mil_strdup(a, v->file);
	c->offset = v->offset;
	if (v->kind == MIL_VAL_TENSOR)
		tv_copy(a, &c->tensor, v->tensor.field, v->tensor.u.any, v->tensor.n);
	if (v->kind == MIL_VAL_TUPLE || v->kind == MIL_VAL_LIST || v->kind == MIL_VAL_DICT) {
		c->n = c->cap = v->n;
		c->items = mil_alloc(a, xmul(v->n, sizeof(mil_value *)));
		c->keys = v->kind == MIL_VAL_DICT ? mil_alloc(a, xmul(v->n, sizeof(mil_value *))) : NULL;
		for (size_t i = 0; i < v->n; i++) {
			c->items[i] = mil_value_copy(a, v->items[i]);
			if (c->keys)
				c->keys[i] = mil_value_copy(a, v->keys[i]);
		}
	}
	return c;
}

static void vars_copy(mil_arena *a, mil_var **dst, size_t *n, size_t *cap, const mil_var *src, size_t nsrc)
{
	for (size_t i = 0; i < nsrc; i++)
		vars_push(a, dst, n, cap, src[i].name, mil_type_copy(a, src[i].type));
}

static mil_block *block_copy(mil_arena *a, const mil_block *b);

static mil_op *op_copy(mil_arena *a, const mil_op *op)
{
	mil_op *c = op_new(a);
	c->type = mil_strdup(a, op->type);
	for (size_t i = 0; i < op->ninputs; i++) {
		const mil_arg *arg = op->inputs[i];
		mil_arg *ca = arg_new(a, arg->param);
		for (size_t k = 0; k < arg->n; k++) {
			mil_binding *b = arg_push(a, ca);
			b->kind = arg->v[k].kind;
			b->name = arg->v[k].name ? mil_strdup(a, arg->v[k].name) : NULL;
			b->value = mil_value_copy(a, arg->v[k].value);
		}
		op_put_arg(c, ca);
	}
	vars_copy(a, &c->outputs, &c->noutputs, &c->outputs_cap, op->outputs, op->noutputs);
	for (size_t i = 0; i < op->nblocks; i++) {
		MIL_GROW(a, c->blocks, c->blocks_cap, c->nblocks + 1);
		c->blocks[c->nblocks++] = block_copy(a, op->blocks[i]);
	}
	attrs_copy(a, &c->attrs, &op->attrs);
	return c;
}

static mil_block *block_copy(mil_arena *a, const mil_block *b)
{
	mil_block *c = block_new(a);
	vars_copy(a, &c->inputs, &c->ninputs, &c->inputs_cap, b->inputs, b->ninputs);
	for (size_t i = 0; i < b->noutputs; i++)
		mil_block_add_output(c, b->outputs[i]);
	for (size_t i = 0; i < b->nops; i++)
		block_push_op(c, op_copy(a, b->ops[i]));
	attrs_copy(a, &c->attrs, &b->attrs);
	return c;
}

mil_function *mil_program_copy_function(mil_program *p, const mil_function *src, const char *name)
{
	mil_arena *a = p->arena;
	mil_function *f = function_new(a, name ? name : src->name);
	vars_copy(a, &f->inputs, &f->ninputs, &f->inputs_cap, src->inputs, src->ninputs);
	f->opset = mil_strdup(a, src->opset);
	for (size_t i = 0; i < src->nblocks; i++)
		function_put_block(f, src->blocks[i].key, block_copy(a, src->blocks[i].block));
	attrs_copy(a, &f->attrs, &src->attrs);
	program_put(p, f);
	return f;
}

/* ------------------------------------------------------------------ */
/* Encoder: fields in field-number order, map entries sorted by key    */

typedef struct keyed {
	const char *key;
	size_t index;
} keyed;

static int keyed_cmp(const void *x, const void *y)
{
	const keyed *a = x, *b = y;
	int c = strcmp(a->key, b->key);
	return c ? c : (a->index > b->index) - (a->index < b->index);
}

/* The order in which to write n map entries whose keys are key(i). The
 * caller frees the result. */
static keyed *sorted_keys(size_t n, const char *(*key)(const void *map, size_t i), const void *map)
{
	keyed *k = xmalloc(xmul(n ? n : 1, sizeof *k));
	for (size_t i = 0; i < n; i++)
		k[i] = (keyed){key(map, i), i};
	qsort(k, n, sizeof *k, keyed_cmp);
	return k;
}

/* Writes the fields of the value message of entry i of a map. */
typedef void (*enc_entry_fn)(pb_buf *b, const void *map, size_t i);

/* The n entries {key[1], value[2]} of a map<string, message> in `field`,
 * sorted by key; key(map, i) is entry i's key, enc writes its value. */
static void enc_map(pb_buf *b, uint32_t field, size_t n, const char *(*key)(const void *map, size_t i),
		    enc_entry_fn enc, const void *map)
{
	if (!n)
		return;
	keyed *order = sorted_keys(n, key, map);
	for (size_t i = 0; i < n; i++) {
		size_t e = pb_begin(b, field);
		pb_put_string(b, 1, order[i].key); /* map entries always carry key and value */
		size_t v = pb_begin(b, 2);
		enc(b, map, order[i].index);
		pb_end(b, v);
		pb_end(b, e);
	}
	free(order);
}

static void enc_type(pb_buf *b, const mil_type *t);
static void enc_attrs(pb_buf *b, uint32_t field, const mil_attrs *m);
static void enc_block(pb_buf *b, const mil_block *blk);

static void enc_type_field(pb_buf *b, uint32_t field, const mil_type *t)
{
	if (!t)
		return;
	size_t m = pb_begin(b, field);
	enc_type(b, t);
	pb_end(b, m);
}

static void enc_dim(pb_buf *b, uint32_t field, const mil_dim *d)
{
	size_t m = pb_begin(b, field);
	if (d->kind == MIL_DIM_CONST) {
		size_t c = pb_begin(b, 1);
		if (d->size)
			pb_put_uint(b, 1, d->size);
		pb_end(b, c);
	} else if (d->kind == MIL_DIM_UNKNOWN) {
		size_t u = pb_begin(b, 2);
		if (d->variadic)
			pb_put_bool(b, 1, 1);
		pb_end(b, u);
	}
	pb_end(b, m);
}

static void enc_tensor_type(pb_buf *b, const mil_type *t)
{
	if (t->dtype)
		pb_put_int(b, 1, t->dtype);
	if (t->rank)
		pb_put_int(b, 2, t->rank);
	for (size_t i = 0; i < t->ndims; i++)
		enc_dim(b, 3, &t->dims[i]);
	enc_attrs(b, 4, &t->attrs);
}

/* The fields of a ValueType: one oneof member. */
static void enc_type(pb_buf *b, const mil_type *t)
{
	if (t->kind == MIL_TYPE_NONE)
		return;
	size_t m = pb_begin(b, (uint32_t)t->kind);
	switch (t->kind) {
	case MIL_TYPE_TENSOR:
		enc_tensor_type(b, t);
		break;
	case MIL_TYPE_LIST:
		enc_type_field(b, 1, t->wrapped);
		if (t->has_length)
			enc_dim(b, 2, &t->length);
		break;
	case MIL_TYPE_TUPLE:
		for (size_t i = 0; i < t->ntypes; i++) {
			size_t e = pb_begin(b, 1);
			if (t->types[i])
				enc_type(b, t->types[i]);
			pb_end(b, e);
		}
		break;
	case MIL_TYPE_DICT:
		enc_type_field(b, 1, t->key_type);
		enc_type_field(b, 2, t->value_type);
		break;
	case MIL_TYPE_STATE:
		enc_type_field(b, 1, t->wrapped);
		break;
	default:
		BUG("bad mil_type kind %d", (int)t->kind);
	}
	pb_end(b, m);
}

static void enc_tensor_value(pb_buf *b, const mil_tensor_value *tv)
{
	if (tv->field == MIL_TV_NONE)
		return;
	size_t m = pb_begin(b, (uint32_t)tv->field);
	switch (tv->field) {
	case MIL_TV_FLOATS: pb_put_packed_float(b, 1, tv->u.floats, tv->n); break;
	case MIL_TV_INTS: pb_put_packed_int32(b, 1, tv->u.ints, tv->n); break;
	case MIL_TV_BOOLS: pb_put_packed_bool(b, 1, tv->u.bools, tv->n); break;
	case MIL_TV_LONGINTS: pb_put_packed_int64(b, 1, tv->u.longints, tv->n); break;
	case MIL_TV_DOUBLES: pb_put_packed_double(b, 1, tv->u.doubles, tv->n); break;
	case MIL_TV_STRINGS:
		for (size_t i = 0; i < tv->n; i++)
			pb_put_string(b, 1, tv->u.strings[i]);
		break;
	case MIL_TV_BYTES:
		if (tv->n)
			pb_put_bytes(b, 1, tv->u.bytes, tv->n);
		break;
	default:
		BUG("bad TensorValue member %d", (int)tv->field);
	}
	pb_end(b, m);
}

static void enc_value_field(pb_buf *b, uint32_t field, const mil_value *v)
{
	size_t m = pb_begin(b, field);
	if (v)
		mil_value_encode(v, b);
	pb_end(b, m);
}

static void enc_immediate(pb_buf *b, const mil_value *v)
{
	size_t m = pb_begin(b, 3);
	size_t k = pb_begin(b, v->kind == MIL_VAL_TENSOR ? 1 : v->kind == MIL_VAL_TUPLE ? 2 : v->kind == MIL_VAL_LIST ? 3 : 4);
	if (v->kind == MIL_VAL_TENSOR) {
		enc_tensor_value(b, &v->tensor);
	} else if (v->kind == MIL_VAL_DICT) {
		for (size_t i = 0; i < v->n; i++) {
			size_t e = pb_begin(b, 1);
			if (v->keys[i])
				enc_value_field(b, 1, v->keys[i]);
			if (v->items[i])
				enc_value_field(b, 2, v->items[i]);
			pb_end(b, e);
		}
	} else {
		for (size_t i = 0; i < v->n; i++)
			enc_value_field(b, 1, v->items[i]);
	}
	pb_end(b, k);
	pb_end(b, m);
}

void mil_value_encode(const mil_value *v, pb_buf *b)
{
	if (v->doc[0])
		pb_put_string(b, 1, v->doc);
	enc_type_field(b, 2, v->type);
	switch (v->kind) {
	case MIL_VAL_NONE:
		break;
	case MIL_VAL_BLOB: {
		size_t m = pb_begin(b, 5);
		if (v->file[0])
			pb_put_string(b, 1, v->file);
		if (v->offset)
			pb_put_uint(b, 2, v->offset);
		pb_end(b, m);
		break;
	}
	default:
		enc_immediate(b, v);
	}
}

static const char *attr_key(const void *map, size_t i) { return ((const mil_attrs *)map)->v[i].key; }

static void enc_attr(pb_buf *b, const void *map, size_t i)
{
	const mil_value *v = ((const mil_attrs *)map)->v[i].value;
	if (v)
		mil_value_encode(v, b);
}

static void enc_attrs(pb_buf *b, uint32_t field, const mil_attrs *m) { enc_map(b, field, m->n, attr_key, enc_attr, m); }

static void enc_var(pb_buf *b, uint32_t field, const mil_var *v)
{
	size_t m = pb_begin(b, field);
	if (v->name[0])
		pb_put_string(b, 1, v->name);
	enc_type_field(b, 2, v->type);
	pb_end(b, m);
}

static void enc_arg(pb_buf *b, const mil_arg *arg)
{
	for (size_t i = 0; i < arg->n; i++) {
		const mil_binding *bd = &arg->v[i];
		size_t m = pb_begin(b, 1);
		if (bd->kind == MIL_BIND_NAME)
			pb_put_string(b, 1, bd->name); /* a oneof member is written even when empty */
		else if (bd->kind == MIL_BIND_VALUE)
			enc_value_field(b, 2, bd->value);
		pb_end(b, m);
	}
}

static const char *arg_key(const void *map, size_t i) { return ((const mil_op *)map)->inputs[i]->param; }
static void enc_input(pb_buf *b, const void *map, size_t i) { enc_arg(b, ((const mil_op *)map)->inputs[i]); }

static void enc_op(pb_buf *b, const mil_op *op)
{
	if (op->type[0])
		pb_put_string(b, 1, op->type);
	enc_map(b, 2, op->ninputs, arg_key, enc_input, op);
	for (size_t i = 0; i < op->noutputs; i++)
		enc_var(b, 3, &op->outputs[i]);
	for (size_t i = 0; i < op->nblocks; i++) {
		size_t m = pb_begin(b, 4);
		enc_block(b, op->blocks[i]);
		pb_end(b, m);
	}
	enc_attrs(b, 5, &op->attrs);
}

static void enc_block(pb_buf *b, const mil_block *blk)
{
	for (size_t i = 0; i < blk->ninputs; i++)
		enc_var(b, 1, &blk->inputs[i]);
	for (size_t i = 0; i < blk->noutputs; i++)
		pb_put_string(b, 2, blk->outputs[i]);
	for (size_t i = 0; i < blk->nops; i++) {
		size_t m = pb_begin(b, 3);
		enc_op(b, blk->ops[i]);
		pb_end(b, m);
	}
	enc_attrs(b, 4, &blk->attrs);
}

static const char *spec_key(const void *map, size_t i) { return ((const mil_function *)map)->blocks[i].key; }
static void enc_spec(pb_buf *b, const void *map, size_t i) { enc_block(b, ((const mil_function *)map)->blocks[i].block); }

static void enc_function(pb_buf *b, const mil_function *f)
{
	for (size_t i = 0; i < f->ninputs; i++)
		enc_var(b, 1, &f->inputs[i]);
	if (f->opset[0])
		pb_put_string(b, 2, f->opset);
	enc_map(b, 3, f->nblocks, spec_key, enc_spec, f);
	enc_attrs(b, 4, &f->attrs);
}

static const char *fn_key(const void *map, size_t i) { return ((const mil_program *)map)->functions[i]->name; }
static void enc_fn(pb_buf *b, const void *map, size_t i) { enc_function(b, ((const mil_program *)map)->functions[i]); }

void mil_program_encode(const mil_program *p, pb_buf *b)
{
	if (p->version)
		pb_put_int(b, 1, p->version);
	enc_map(b, 2, p->nfunctions, fn_key, enc_fn, p);
	if (p->doc[0])
		pb_put_string(b, 3, p->doc);
	enc_attrs(b, 4, &p->attrs);
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */

/* Decoding follows protobuf's merge rules, so a message split over several
 * occurrences of a field reads as one: repeated fields append, scalars and
 * oneof members overwrite (switching member starts it afresh), singular
 * submessages merge, and a repeated map key replaces the earlier entry.
 * Known fields with a wrong wire type are rejected; unknown fields skipped. */

typedef struct dec {
	mil_arena *a;
	int depth;
} dec;

int mil_pb_want(const pb_field *f, int wt, const char *what)
{
	if (f->wt == wt)
		return 0;
	return errf("%s: wire type %d where %d was expected", what, f->wt, wt);
}

int mil_pb_str(mil_arena *a, const pb_field *f, const char **out, const char *what)
{
	if (mil_pb_want(f, PB_LEN, what) != 0)
		return -1;
	if (f->len && memchr(f->data, 0, f->len))
		return errf("%s: string contains a NUL byte", what);
	*out = mil_strndup(a, (const char *)f->data, f->len);
	return 0;
}

int mil_pb_u64(const pb_field *f, uint64_t *v, const char *what)
{
	if (mil_pb_want(f, PB_VARINT, what) != 0)
		return -1;
	*v = f->v;
	return 0;
}

int mil_pb_entry(mil_arena *a, const pb_field *f, const char *const names[3], const char **key, mil_pb_field_fn val,
		 void *ctx, void *obj)
{
	if (mil_pb_want(f, PB_LEN, names[0]) != 0)
		return -1;
	pb_reader r = pb_sub(f);
	pb_field g;
	int rc;
	while ((rc = pb_next(&r, &g)) > 0) {
		if (g.field == 1 && mil_pb_str(a, &g, key, names[1]) != 0)
			return -1;
		if (g.field == 2 && val(ctx, obj, &g, names[2]) != 0)
			return -1;
	}
	return rc;
}

static int enter(dec *d, const char *what)
{
	if (++d->depth > MIL_MAX_DEPTH)
		return errf("MIL %s: nested deeper than %d levels", what, MIL_MAX_DEPTH);
	return 0;
}

static int dec_type(dec *d, mil_type *t, pb_reader r);
static int dec_value(dec *d, mil_value *v, pb_reader r);
static int dec_block(dec *d, mil_block *b, pb_reader r);

/* A singular submessage of type ValueType: merge into *slot (created when NULL). */
static int dec_type_into(dec *d, mil_type **slot, const pb_field *f, const char *what)
{
	if (mil_pb_want(f, PB_LEN, what) != 0)
		return -1;
	if (!*slot)
		*slot = type_new(d->a, MIL_TYPE_NONE);
	return dec_type(d, *slot, pb_sub(f));
}

static int dec_value_into(dec *d, mil_value **slot, const pb_field *f, const char *what)
{
	if (mil_pb_want(f, PB_LEN, what) != 0)
		return -1;
	if (!*slot)
		*slot = value_new(d->a, NULL, MIL_VAL_NONE);
	return dec_value(d, *slot, pb_sub(f));
}

static int dec_dim(mil_dim *dim, const pb_field *f)
{
	if (mil_pb_want(f, PB_LEN, "Dimension") != 0)
		return -1;
	pb_reader r = pb_sub(f), sub;
	pb_field g, h;
	int rc;
	while ((rc = pb_next(&r, &g)) > 0) {
		if (g.field != 1 && g.field != 2)
			continue;
		if (mil_pb_want(&g, PB_LEN, "Dimension") != 0)
			return -1;
		if ((int)g.field != dim->kind) { /* switching oneof member */
			dim->kind = (int)g.field;
			dim->size = 0;
			dim->variadic = 0;
		}
		sub = pb_sub(&g);
		while ((rc = pb_next(&sub, &h)) > 0) {
			uint64_t v;
			if (h.field != 1)
				continue;
			if (mil_pb_u64(&h, &v, "Dimension") != 0)
				return -1;
			if (dim->kind == MIL_DIM_CONST)
				dim->size = v;
			else
				dim->variadic = v != 0;
		}
		if (rc < 0)
			return -1;
	}
	return rc;
}

/* The map entries below call mil_pb_entry with ctx = the dec. */
static int dec_value_field(void *d, void *slot, const pb_field *f, const char *what)
{
	return dec_value_into(d, slot, f, what);
}

/* One map<string, Value> entry into m; the last entry of a key wins. */
static int dec_attr_entry(dec *d, mil_attrs *m, const pb_field *f)
{
	static const char *const names[] = {"attributes", "attributes key", "attributes value"};
	const char *key = "";
	mil_value *v = NULL;
	if (mil_pb_entry(d->a, f, names, &key, dec_value_field, d, &v) != 0)
		return -1;
	mil_attrs_set(d->a, m, key, v ? v : value_new(d->a, NULL, MIL_VAL_NONE));
	return 0;
}

static int dec_tensor_type(dec *d, mil_type *t, pb_reader r)
{
	pb_field f;
	int rc;
	uint64_t v;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			if (mil_pb_u64(&f, &v, "TensorType.dataType") != 0)
				return -1;
			t->dtype = (int)(int32_t)v;
			break;
		case 2:
			if (mil_pb_u64(&f, &v, "TensorType.rank") != 0)
				return -1;
			t->rank = (int64_t)v;
			break;
		case 3:
			MIL_GROW(d->a, t->dims, t->dims_cap, t->ndims + 1);
			memset(&t->dims[t->ndims], 0, sizeof(mil_dim));
			if (dec_dim(&t->dims[t->ndims++], &f) != 0)
				return -1;
			break;
		case 4:
			if (dec_attr_entry(d, &t->attrs, &f) != 0)
				return -1;
			break;
		}
	}
	return rc;
}

/* The body of the ValueType member t->kind. */
static int dec_type_member(dec *d, mil_type *t, pb_reader r)
{
	if (t->kind == MIL_TYPE_TENSOR)
		return dec_tensor_type(d, t, r);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		int err = 0;
		if (t->kind == MIL_TYPE_LIST && f.field == 1) {
			err = dec_type_into(d, &t->wrapped, &f, "ListType.type");
		} else if (t->kind == MIL_TYPE_LIST && f.field == 2) {
			if (!t->has_length)
				memset(&t->length, 0, sizeof t->length);
			t->has_length = 1;
			err = dec_dim(&t->length, &f);
		} else if (t->kind == MIL_TYPE_TUPLE && f.field == 1) {
			MIL_GROW(d->a, t->types, t->types_cap, t->ntypes + 1);
			t->types[t->ntypes] = NULL;
			err = dec_type_into(d, &t->types[t->ntypes++], &f, "TupleType.types");
		} else if (t->kind == MIL_TYPE_DICT && (f.field == 1 || f.field == 2)) {
			err = dec_type_into(d, f.field == 1 ? &t->key_type : &t->value_type, &f, "DictionaryType");
		} else if (t->kind == MIL_TYPE_STATE && f.field == 1) {
			err = dec_type_into(d, &t->wrapped, &f, "StateType.wrappedType");
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_type(dec *d, mil_type *t, pb_reader r)
{
	if (enter(d, "ValueType") != 0)
		return -1;
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field < 1 || f.field > 5)
			continue;
		if (mil_pb_want(&f, PB_LEN, "ValueType") != 0)
			return -1;
		if ((int)f.field != (int)t->kind) {
			memset(t, 0, sizeof *t);
			t->kind = (mil_type_kind)f.field;
		}
		if (dec_type_member(d, t, pb_sub(&f)) != 0)
			return -1;
	}
	d->depth--;
	return rc;
}

/* Number of varints in a packed payload (each ends in a byte < 0x80). */
static size_t count_varints(const pb_field *f)
{
	size_t k = 0;
	for (size_t i = 0; i < f->len; i++)
		k += f->data[i] < 0x80;
	return k;
}

/* Append the values of one field of a Repeated* message to tv. */
static int dec_tv_values(dec *d, mil_tensor_value *tv, const pb_field *f)
{
	size_t es = tv_elem_size(tv->field), k;
	int is_fixed = tv->field == MIL_TV_FLOATS || tv->field == MIL_TV_DOUBLES;
	int single = is_fixed ? (es == 4 ? PB_FIXED32 : PB_FIXED64) : PB_VARINT;
	if (f->wt == single) {
		k = 1;
	} else if (f->wt != PB_LEN) {
		return errf("MIL TensorValue: wire type %d in a repeated value", f->wt);
	} else if (is_fixed) {
		if (f->len % es)
			return errf("MIL TensorValue: packed %s of %zu bytes", es == 4 ? "floats" : "doubles", f->len);
		k = f->len / es;
	} else {
		k = count_varints(f);
	}
	if (!k)
		return 0;
	mil_grow(d->a, &tv->u.any, &tv->cap, tv->n + k, es);
	char *dst = (char *)tv->u.any + tv->n * es;
	if (f->wt == single && is_fixed) {
		memcpy(dst, &f->v, es); /* little-endian host */
	} else if (is_fixed) {
		memcpy(dst, f->data, f->len);
	} else {
		pb_reader r = {NULL, NULL}; /* a single varint has no payload to read */
		if (f->wt == PB_LEN)
			r = pb_sub(f);
		for (size_t i = 0; i < k; i++) {
			uint64_t v = f->v;
			if (f->wt == PB_LEN && pb_read_varint(&r, &v) != 0)
				return -1;
			if (tv->field == MIL_TV_INTS)
				tv->u.ints[tv->n + i] = (int32_t)v;
			else if (tv->field == MIL_TV_BOOLS)
				tv->u.bools[tv->n + i] = v != 0;
			else
				tv->u.longints[tv->n + i] = (int64_t)v;
		}
		if (r.p != r.end)
			return errf("MIL TensorValue: truncated packed varint");
	}
	tv->n += k;
	return 0;
}

static int dec_tensor_value(dec *d, mil_tensor_value *tv, pb_reader r)
{
	pb_field f, g;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field < 1 || f.field > 7)
			continue;
		if (mil_pb_want(&f, PB_LEN, "TensorValue") != 0)
			return -1;
		if ((int)f.field != (int)tv->field) {
			memset(tv, 0, sizeof *tv);
			tv->field = (mil_tv_field)f.field;
		}
		pb_reader sub = pb_sub(&f);
		while ((rc = pb_next(&sub, &g)) > 0) {
			if (g.field != 1)
				continue;
			if (tv->field == MIL_TV_STRINGS) {
				const char *s;
				if (mil_pb_str(d->a, &g, &s, "TensorValue.strings") != 0)
					return -1;
				MIL_GROW(d->a, tv->u.strings, tv->cap, tv->n + 1);
				tv->u.strings[tv->n++] = s;
			} else if (tv->field == MIL_TV_BYTES) {
				if (mil_pb_want(&g, PB_LEN, "TensorValue.bytes") != 0)
					return -1;
				tv->u.bytes = mil_memdup(d->a, g.data, g.len);
				tv->n = tv->cap = g.len;
			} else if (dec_tv_values(d, tv, &g) != 0) {
				return -1;
			}
		}
		if (rc < 0)
			return -1;
	}
	return rc;
}

/* Switch v to immediate member kind (keeping it when already that kind). */
static void value_switch(mil_value *v, mil_value_kind kind)
{
	if (v->kind == kind)
		return;
	v->kind = kind;
	memset(&v->tensor, 0, sizeof v->tensor);
	v->n = v->cap = 0;
	v->items = v->keys = NULL;
	v->file = "";
	v->offset = 0;
}

static int dec_dict_pair(dec *d, mil_value *v, const pb_field *f)
{
	if (mil_pb_want(f, PB_LEN, "DictionaryValue.values") != 0)
		return -1;
	pb_reader r = pb_sub(f);
	pb_field g;
	mil_value *key = NULL, *val = NULL;
	int rc;
	while ((rc = pb_next(&r, &g)) > 0) {
		if (g.field == 1 && dec_value_into(d, &key, &g, "KeyValuePair.key") != 0)
			return -1;
		if (g.field == 2 && dec_value_into(d, &val, &g, "KeyValuePair.value") != 0)
			return -1;
	}
	if (rc < 0)
		return -1;
	mil_value_dict_add(d->a, v, key, val);
	return 0;
}

static int dec_immediate(dec *d, mil_value *v, pb_reader r)
{
	static const mil_value_kind kinds[] = {MIL_VAL_NONE, MIL_VAL_TENSOR, MIL_VAL_TUPLE, MIL_VAL_LIST, MIL_VAL_DICT};
	pb_field f, g;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field < 1 || f.field > 4)
			continue;
		if (mil_pb_want(&f, PB_LEN, "ImmediateValue") != 0)
			return -1;
		value_switch(v, kinds[f.field]);
		if (v->kind == MIL_VAL_TENSOR) {
			if (dec_tensor_value(d, &v->tensor, pb_sub(&f)) != 0)
				return -1;
			continue;
		}
		pb_reader sub = pb_sub(&f);
		while ((rc = pb_next(&sub, &g)) > 0) {
			if (g.field != 1)
				continue;
			if (v->kind == MIL_VAL_DICT) {
				if (dec_dict_pair(d, v, &g) != 0)
					return -1;
				continue;
			}
			mil_value *item = NULL;
			if (dec_value_into(d, &item, &g, "ListValue.values") != 0)
				return -1;
			mil_value_push(d->a, v, item);
		}
		if (rc < 0)
			return -1;
	}
	return rc;
}

static int dec_blob(dec *d, mil_value *v, pb_reader r)
{
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) > 0) {
		if (f.field == 1 && mil_pb_str(d->a, &f, &v->file, "BlobFileValue.fileName") != 0)
			return -1;
		if (f.field == 2 && mil_pb_u64(&f, &v->offset, "BlobFileValue.offset") != 0)
			return -1;
	}
	return rc;
}

static int dec_value(dec *d, mil_value *v, pb_reader r)
{
	if (enter(d, "Value") != 0)
		return -1;
	pb_field f;
	int rc, err = 0;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			err = mil_pb_str(d->a, &f, &v->doc, "Value.docString");
			break;
		case 2:
			err = dec_type_into(d, &v->type, &f, "Value.type");
			break;
		case 3:
			if ((err = mil_pb_want(&f, PB_LEN, "Value.immediateValue")) == 0) {
				if (v->kind == MIL_VAL_BLOB)
					value_switch(v, MIL_VAL_NONE);
				err = dec_immediate(d, v, pb_sub(&f));
			}
			break;
		case 5:
			if ((err = mil_pb_want(&f, PB_LEN, "Value.blobFileValue")) == 0) {
				value_switch(v, MIL_VAL_BLOB);
				err = dec_blob(d, v, pb_sub(&f));
			}
			break;
		}
		if (err)
			return -1;
	}
	d->depth--;
	return rc;
}

int mil_value_decode(mil_arena *a, const uint8_t *data, size_t n, mil_value **out)
{
	dec d = {a, 0};
	*out = value_new(a, NULL, MIL_VAL_NONE);
	return dec_value(&d, *out, pb_reader_of(data ? (const void *)data : "", n));
}

/* A NamedValueType appended to a var array. */
static int dec_var(dec *d, mil_var **v, size_t *n, size_t *cap, const pb_field *f)
{
	if (mil_pb_want(f, PB_LEN, "NamedValueType") != 0)
		return -1;
	vars_push(d->a, v, n, cap, "", NULL);
	mil_var *var = &(*v)[*n - 1];
	pb_reader r = pb_sub(f);
	pb_field g;
	int rc;
	while ((rc = pb_next(&r, &g)) > 0) {
		if (g.field == 1 && mil_pb_str(d->a, &g, &var->name, "NamedValueType.name") != 0)
			return -1;
		if (g.field == 2 && dec_type_into(d, &var->type, &g, "NamedValueType.type") != 0)
			return -1;
	}
	return rc;
}

static int dec_binding(dec *d, mil_arg *arg, const pb_field *f)
{
	if (mil_pb_want(f, PB_LEN, "Argument.arguments") != 0)
		return -1;
	mil_binding *b = arg_push(d->a, arg);
	pb_reader r = pb_sub(f);
	pb_field g;
	int rc;
	while ((rc = pb_next(&r, &g)) > 0) {
		if (g.field == 1) {
			if (mil_pb_str(d->a, &g, &b->name, "Binding.name") != 0)
				return -1;
			b->kind = MIL_BIND_NAME;
			b->value = NULL;
		} else if (g.field == 2) {
			if (b->kind != MIL_BIND_VALUE)
				b->value = NULL;
			b->kind = MIL_BIND_VALUE;
			b->name = NULL;
			if (dec_value_into(d, &b->value, &g, "Binding.value") != 0)
				return -1;
		}
	}
	return rc;
}

/* An Argument message: its bindings appended to arg. */
static int dec_arg_field(void *d, void *arg, const pb_field *f, const char *what)
{
	if (mil_pb_want(f, PB_LEN, what) != 0)
		return -1;
	pb_reader r = pb_sub(f);
	pb_field g;
	int rc;
	while ((rc = pb_next(&r, &g)) > 0)
		if (g.field == 1 && dec_binding(d, arg, &g) != 0)
			return -1;
	return rc;
}

static int dec_op_input(dec *d, mil_op *op, const pb_field *f)
{
	static const char *const names[] = {"Operation.inputs", "Operation.inputs key", "Operation.inputs value"};
	mil_arg *arg = arg_new(d->a, "");
	if (mil_pb_entry(d->a, f, names, &arg->param, dec_arg_field, d, arg) != 0)
		return -1;
	op_put_arg(op, arg);
	return 0;
}

static int dec_op(dec *d, mil_op *op, pb_reader r)
{
	if (enter(d, "Operation") != 0)
		return -1;
	pb_field f;
	int rc, err = 0;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			err = mil_pb_str(d->a, &f, &op->type, "Operation.type");
			break;
		case 2:
			err = dec_op_input(d, op, &f);
			break;
		case 3:
			err = dec_var(d, &op->outputs, &op->noutputs, &op->outputs_cap, &f);
			break;
		case 4:
			if ((err = mil_pb_want(&f, PB_LEN, "Operation.blocks")) == 0)
				err = dec_block(d, mil_op_add_block(op), pb_sub(&f));
			break;
		case 5:
			err = dec_attr_entry(d, &op->attrs, &f);
			break;
		}
		if (err)
			return -1;
	}
	d->depth--;
	return rc;
}

static int dec_block(dec *d, mil_block *b, pb_reader r)
{
	if (enter(d, "Block") != 0)
		return -1;
	pb_field f;
	int rc, err = 0;
	const char *s;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			err = dec_var(d, &b->inputs, &b->ninputs, &b->inputs_cap, &f);
			break;
		case 2:
			if ((err = mil_pb_str(d->a, &f, &s, "Block.outputs")) == 0) {
				MIL_GROW(d->a, b->outputs, b->outputs_cap, b->noutputs + 1);
				b->outputs[b->noutputs++] = s;
			}
			break;
		case 3:
			if ((err = mil_pb_want(&f, PB_LEN, "Block.operations")) == 0) {
				mil_op *op = op_new(d->a);
				block_push_op(b, op);
				err = dec_op(d, op, pb_sub(&f));
			}
			break;
		case 4:
			err = dec_attr_entry(d, &b->attrs, &f);
			break;
		}
		if (err)
			return -1;
	}
	d->depth--;
	return rc;
}

static int dec_block_field(void *d, void *b, const pb_field *f, const char *what)
{
	return mil_pb_want(f, PB_LEN, what) != 0 ? -1 : dec_block(d, b, pb_sub(f));
}

/* A block_specializations entry; merging into an existing key's block is
 * not protobuf's rule (the last entry wins), so each entry starts afresh. */
static int dec_spec_entry(dec *d, mil_function *fn, const pb_field *f)
{
	static const char *const names[] = {"Function.block_specializations", "block_specializations key",
					    "block_specializations value"};
	const char *key = "";
	mil_block *b = block_new(d->a);
	if (mil_pb_entry(d->a, f, names, &key, dec_block_field, d, b) != 0)
		return -1;
	function_put_block(fn, key, b);
	return 0;
}

static int dec_function(dec *d, mil_function *fn, pb_reader r)
{
	pb_field f;
	int rc, err = 0;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			err = dec_var(d, &fn->inputs, &fn->ninputs, &fn->inputs_cap, &f);
			break;
		case 2:
			err = mil_pb_str(d->a, &f, &fn->opset, "Function.opset");
			break;
		case 3:
			err = dec_spec_entry(d, fn, &f);
			break;
		case 4:
			err = dec_attr_entry(d, &fn->attrs, &f);
			break;
		}
		if (err)
			return -1;
	}
	return rc;
}

static int dec_function_field(void *d, void *fn, const pb_field *f, const char *what)
{
	return mil_pb_want(f, PB_LEN, what) != 0 ? -1 : dec_function(d, fn, pb_sub(f));
}

static int dec_function_entry(dec *d, mil_program *p, const pb_field *f)
{
	static const char *const names[] = {"Program.functions", "Program.functions key", "Program.functions value"};
	mil_function *fn = function_new(d->a, "");
	if (mil_pb_entry(d->a, f, names, &fn->name, dec_function_field, d, fn) != 0)
		return -1;
	program_put(p, fn);
	return 0;
}

int mil_program_decode(mil_program *p, const uint8_t *data, size_t n)
{
	dec d = {p->arena, 0};
	pb_reader r = pb_reader_of(data ? (const void *)data : "", n); /* an empty pb_buf has no data */
	pb_field f;
	int rc, err = 0;
	uint64_t v;
	while ((rc = pb_next(&r, &f)) > 0) {
		switch (f.field) {
		case 1:
			if ((err = mil_pb_u64(&f, &v, "Program.version")) == 0)
				p->version = (int64_t)v;
			break;
		case 2:
			err = dec_function_entry(&d, p, &f);
			break;
		case 3:
			err = mil_pb_str(d.a, &f, &p->doc, "Program.docString");
			break;
		case 4:
			err = dec_attr_entry(&d, &p->attrs, &f);
			break;
		}
		if (err)
			return -1;
	}
	return rc;
}
