/* test_mil.c: the MIL program builder, its canonical encoding and decoding.
 *
 * A small program is built with every kind of thing the graph builder uses
 * (state inputs, consts of each immediate kind, blob values bound literally
 * into a constexpr, a variadic concat, write_state without outputs, two
 * functions), encoded, decoded and re-encoded: the bytes must be identical
 * and every field must read back as set. Then copies, value walks, protobuf
 * merge rules and malformed input.
 */
#include "coreml/mil.h"
#include "test.h"
#include "base/util.h"

#include <stdint.h>

static mil_type *t4(mil_arena *a, mil_dtype dt, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
	return mil_type_tensor(a, dt, 4, (int64_t[]){d0, d1, d2, d3});
}

/* Function `name` of a one-layer-ish graph; `t` is its sequence length. */
static void build_function(mil_program *p, const char *name, int64_t t)
{
	mil_arena *a = p->arena;
	mil_function *f = mil_program_add_function(p, name, NULL);
	mil_function_add_input(f, "x", mil_type_tensor(a, MIL_FP16, 3, (int64_t[]){1, t, 64}));
	mil_function_add_input(f, "pos", mil_type_tensor(a, MIL_INT32, 1, (int64_t[]){-1}));
	mil_function_add_input(f, "kv", mil_type_state(a, t4(a, MIL_FP16, 4, 2, 512, 16)));
	mil_block *b = mil_function_block(f);

	mil_block_add_const(b, "axis", mil_value_i32(a, -1));
	mil_block_add_const(b, "perm", mil_value_i32s(a, 4, (int32_t[]){0, 3, 1, 2}));
	mil_block_add_const(b, "flag", mil_value_bool(a, 0));
	mil_block_add_const(b, "mask", mil_value_bools(a, 3, (uint8_t[]){1, 0, 1}));
	mil_block_add_const(b, "pad_type", mil_value_str(a, "valid"));
	mil_block_add_const(b, "scale", mil_value_fp16(a, 0x3c00));
	mil_block_add_const(b, "eps", mil_value_fp32s(a, 2, (float[]){1e-5f, 0.5f}));
	mil_block_add_const(b, "big", mil_value_i64(a, -5000000000LL));
	mil_block_add_const(b, "w", mil_value_blob(a, t4(a, MIL_FP16, 32, 64, 1, 1), NULL, 4288));

	mil_op *lut = mil_block_add_op(b, "constexpr_lut_to_dense", "q_palettized");
	mil_op_bind_value(lut, "indices", mil_value_blob(a, t4(a, MIL_UINT6, 64, 64, 1, 1), NULL, 64));
	mil_value *lv = mil_value_blob(a, mil_type_tensor(a, MIL_FP16, 6, (int64_t[]){8, 1, 1, 1, 64, 1}), NULL, 3200);
	mil_op_bind_value(lut, "lut", lv);
	mil_op_add_output(lut, "q_palettized", t4(a, MIL_FP16, 64, 64, 1, 1));

	mil_op *cat = mil_block_add_op(b, "concat", "cat");
	mil_op_bind_names(cat, "values", 2, (const char *[]){"x", "x"});
	mil_op_bind(cat, "axis", "axis");
	mil_op_bind(cat, "interleave", "flag");
	mil_op_add_output(cat, "cat", mil_type_tensor(a, MIL_FP16, 3, (int64_t[]){1, t, 128}));

	mil_op *rd = mil_block_add_op(b, "read_state", "read_0");
	mil_op_bind(rd, "input", "kv");
	mil_op_add_output(rd, "read_0", t4(a, MIL_FP16, 4, 2, 512, 16));
	mil_op *wr = mil_block_add_op(b, "write_state", "read_0_write_state");
	mil_op_bind(wr, "input", "kv");
	mil_op_bind(wr, "data", "read_0");
	mil_block_add_output(b, "cat");
}

static mil_program *build_program(mil_arena *a)
{
	mil_program *p = mil_program_new(a);
	build_function(p, "prefill", 64);
	build_function(p, "infer", 1);
	mil_program_set_build_info(p, "coremltools-version", "9.1");
	mil_program_set_build_info(p, "anemake", "0.1");
	return p;
}

static void encode(const mil_program *p, pb_buf *b)
{
	pb_init(b);
	mil_program_encode(p, b);
}

static int same_bytes(const pb_buf *x, const pb_buf *y) { return x->len == y->len && (!x->len || memcmp(x->data, y->data, x->len) == 0); }

static void test_roundtrip_bytes(void)
{
	mil_arena *a = mil_arena_new();
	mil_program *p = build_program(a);
	pb_buf b1, b2;
	encode(p, &b1);
	mil_program *q = mil_program_new(a);
	q->version = 0;
	CHECKF(mil_program_decode(q, b1.data, b1.len) == 0, "%s", errmsg());
	encode(q, &b2);
	CHECK(same_bytes(&b1, &b2));
	/* Deterministic: a second, independently built program gives the same bytes. */
	mil_arena *a2 = mil_arena_new();
	pb_buf b3;
	encode(build_program(a2), &b3);
	CHECK(same_bytes(&b1, &b3));
	pb_release(&b1);
	pb_release(&b2);
	pb_release(&b3);
	mil_arena_free(a2);
	mil_arena_free(a);
}

static mil_program *decoded(mil_arena *a)
{
	mil_program *p = build_program(a);
	pb_buf b;
	encode(p, &b);
	mil_program *q = mil_program_new(a);
	q->version = 0;
	if (mil_program_decode(q, b.data, b.len) != 0)
		q = NULL;
	pb_release(&b);
	return q;
}

static void test_fields_read_back(void)
{
	mil_arena *a = mil_arena_new();
	mil_program *p = decoded(a);
	CHECK(p != NULL);
	if (!p)
		goto out;
	CHECK_EQ_INT(p->version, 1);
	CHECK_EQ_INT(p->nfunctions, 2);
	mil_function *f = mil_program_find_function(p, "infer");
	CHECK(f != NULL && mil_program_find_function(p, "prefill") != NULL);
	if (!f)
		goto out;
	CHECK_STR(f->opset, "CoreML8");
	CHECK_EQ_INT(f->nblocks, 1);
	CHECK_STR(f->blocks[0].key, "CoreML8");
	CHECK_EQ_INT(f->ninputs, 3);
	CHECK_STR(f->inputs[1].name, "pos");
	CHECK_EQ_INT(f->inputs[1].type->dims[0].kind, MIL_DIM_UNKNOWN);
	mil_type *st = f->inputs[2].type;
	CHECK(st->kind == MIL_TYPE_STATE && st->wrapped->kind == MIL_TYPE_TENSOR);
	CHECK_EQ_INT(st->wrapped->dtype, MIL_FP16);
	CHECK_EQ_INT(st->wrapped->rank, 4);
	CHECK_EQ_INT(st->wrapped->dims[2].size, 512);

	mil_block *b = mil_function_block(f);
	CHECK_EQ_INT(b->nops, 13);
	CHECK_EQ_INT(b->noutputs, 1);
	CHECK_STR(b->outputs[0], "cat");
	size_t idx = 0;
	mil_op *op = mil_block_find_producer(b, "perm", &idx);
	CHECK(op && idx == 1 && strcmp(op->type, "const") == 0);
	CHECK_STR(mil_op_name(op), "perm");
	mil_value *v = mil_op_attr(op, "val");
	CHECK(v && v->kind == MIL_VAL_TENSOR && v->tensor.field == MIL_TV_INTS && v->tensor.n == 4);
	CHECK(v && v->tensor.u.ints[1] == 3);
	CHECK(mil_type_equal(op->outputs[0].type, v->type));

	v = mil_op_attr(mil_block_find_producer(b, "axis", NULL), "val");
	CHECK(v->type->rank == 0 && v->tensor.n == 1 && v->tensor.u.ints[0] == -1);
	v = mil_op_attr(mil_block_find_producer(b, "mask", NULL), "val");
	CHECK(v->tensor.field == MIL_TV_BOOLS && v->tensor.n == 3 && v->tensor.u.bools[0] == 1 && v->tensor.u.bools[1] == 0);
	v = mil_op_attr(mil_block_find_producer(b, "pad_type", NULL), "val");
	CHECK_STR(mil_value_as_str(v), "valid");
	v = mil_op_attr(mil_block_find_producer(b, "scale", NULL), "val");
	CHECK(v->tensor.field == MIL_TV_BYTES && v->tensor.n == 2 && v->tensor.u.bytes[0] == 0 && v->tensor.u.bytes[1] == 0x3c);
	v = mil_op_attr(mil_block_find_producer(b, "eps", NULL), "val");
	CHECK(v->tensor.field == MIL_TV_FLOATS && v->tensor.n == 2 && v->tensor.u.floats[0] == 1e-5f);
	v = mil_op_attr(mil_block_find_producer(b, "big", NULL), "val");
	CHECK(v->tensor.field == MIL_TV_LONGINTS && v->tensor.u.longints[0] == -5000000000LL);
	v = mil_op_attr(mil_block_find_producer(b, "w", NULL), "val");
	CHECK(v->kind == MIL_VAL_BLOB && v->offset == 4288 && strcmp(v->file, MIL_WEIGHT_FILE) == 0);

	op = mil_block_find_producer(b, "q_palettized", NULL);
	const mil_arg *arg = mil_op_input(op, "indices");
	CHECK(arg && arg->n == 1 && arg->v[0].kind == MIL_BIND_VALUE);
	CHECK(arg && arg->v[0].value->kind == MIL_VAL_BLOB && arg->v[0].value->offset == 64);
	CHECK(arg && arg->v[0].value->type->dtype == MIL_UINT6);
	CHECK_EQ_INT(op->attrs.n, 1); /* only `name` */

	op = mil_block_find_producer(b, "cat", NULL);
	arg = mil_op_input(op, "values");
	CHECK(arg && arg->n == 2 && arg->v[1].kind == MIL_BIND_NAME && strcmp(arg->v[1].name, "x") == 0);

	op = b->ops[b->nops - 1];
	CHECK_STR(op->type, "write_state");
	CHECK_EQ_INT(op->noutputs, 0);
	CHECK_STR(mil_op_input(op, "data")->v[0].name, "read_0");
	CHECK_STR(mil_op_name(op), "read_0_write_state");

	v = mil_attrs_get(&p->attrs, "buildInfo");
	CHECK(v && v->kind == MIL_VAL_DICT && v->n == 2);
	CHECK(v && strcmp(mil_value_as_str(v->keys[1]), "anemake") == 0 && strcmp(mil_value_as_str(v->items[1]), "0.1") == 0);
out:
	mil_arena_free(a);
}

static void test_value_constructors(void)
{
	mil_arena *a = mil_arena_new();
	mil_value *v = mil_value_tensor(a, mil_type_tensor(a, MIL_INT16, 1, (int64_t[]){2}), (int16_t[]){-3, 7});
	CHECK(v->tensor.field == MIL_TV_INTS && v->tensor.u.ints[0] == -3);
	v = mil_value_tensor(a, mil_type_tensor(a, MIL_UINT16, 1, (int64_t[]){1}), (uint16_t[]){65535});
	CHECK(v->tensor.field == MIL_TV_INTS && v->tensor.u.ints[0] == 65535);
	v = mil_value_tensor(a, mil_type_tensor(a, MIL_UINT32, 1, (int64_t[]){1}), (uint32_t[]){0x01020304});
	int64_t x = 0;
	CHECK(v->tensor.field == MIL_TV_BYTES && v->tensor.n == 4 && v->tensor.u.bytes[0] == 4);
	CHECK(mil_value_get_int(v, 0, &x) == 0 && x == 0x01020304);
	CHECK(mil_value_get_int(v, 1, &x) == -1);
	v = mil_value_tensor(a, mil_type_tensor(a, MIL_INT8, 1, (int64_t[]){2}), (int8_t[]){-1, 5});
	CHECK(mil_value_get_int(v, 0, &x) == 0 && x == -1);
	/* uint4: 3 elements packed LSB-first into 2 bytes */
	v = mil_value_tensor(a, mil_type_tensor(a, MIL_UINT4, 1, (int64_t[]){3}), (uint8_t[]){0x21, 0x03});
	CHECK(v->tensor.field == MIL_TV_BYTES && v->tensor.n == 2);
	v = mil_value_tensor(a, mil_type_tensor(a, MIL_FP64, 0, NULL), (double[]){0.25});
	CHECK(v->tensor.field == MIL_TV_DOUBLES && v->tensor.u.doubles[0] == 0.25);
	v = mil_value_tensor(a, mil_type_tensor(a, MIL_STRING, 1, (int64_t[]){2}), (const char *[]){"a", "bc"});
	CHECK(v->tensor.field == MIL_TV_STRINGS && strcmp(v->tensor.u.strings[1], "bc") == 0);
	CHECK(mil_value_as_str(v) == NULL);
	CHECK(mil_value_get_int(mil_value_i32s(a, 2, (int32_t[]){4, 9}), 1, &x) == 0 && x == 9);

	uint64_t n = 0;
	CHECK(mil_type_numel(t4(a, MIL_FP16, 2, 3, 4, 5), &n) == 0 && n == 120);
	CHECK(mil_type_numel(mil_type_scalar(a, MIL_FP16), &n) == 0 && n == 1);
	CHECK(mil_type_numel(mil_type_tensor(a, MIL_FP16, 2, (int64_t[]){1, -1}), &n) == -1);
	CHECK(!mil_type_equal(t4(a, MIL_FP16, 1, 2, 3, 4), t4(a, MIL_FP16, 1, 2, 3, 5)));
	CHECK(mil_type_equal(mil_type_state(a, t4(a, MIL_FP16, 1, 2, 3, 4)), mil_type_state(a, t4(a, MIL_FP16, 1, 2, 3, 4))));
	mil_value *d = mil_value_dict_str(a);
	mil_value_dict_set_str(a, d, "k", "v1");
	mil_value_dict_set_str(a, d, "k", "v2");
	CHECK(d->n == 1 && strcmp(mil_value_as_str(d->items[0]), "v2") == 0);
	mil_value *l = mil_value_seq(a, MIL_VAL_LIST, mil_type_list(a, mil_type_scalar(a, MIL_INT32)));
	mil_value_push(a, l, mil_value_i32(a, 1));
	mil_value_push(a, l, mil_value_i32(a, 2));
	mil_value *t = mil_value_seq(a, MIL_VAL_TUPLE, mil_type_tuple(a, 2, (mil_type *[]){d->type, l->type}));
	mil_value_push(a, t, d);
	mil_value_push(a, t, l);

	/* Nested values survive the codec and a copy into another arena. */
	pb_buf b1, b2;
	pb_init(&b1);
	pb_init(&b2);
	mil_value_encode(t, &b1);
	mil_value *back = NULL;
	CHECKF(mil_value_decode(a, b1.data, b1.len, &back) == 0, "%s", errmsg());
	CHECK(mil_value_equal(t, back));
	mil_arena *a2 = mil_arena_new();
	mil_value *copy = mil_value_copy(a2, back);
	mil_arena_free(a);
	mil_value_encode(copy, &b2);
	CHECK(same_bytes(&b1, &b2));
	pb_release(&b1);
	pb_release(&b2);
	mil_arena_free(a2);
}

static int shift_blobs(mil_value *v, void *ctx)
{
	if (v->kind == MIL_VAL_BLOB)
		v->offset += *(uint64_t *)ctx;
	return 0;
}

static int count_values(mil_value *v, void *ctx)
{
	(void)v;
	(*(int *)ctx)++;
	return 0;
}

static void test_copy_and_walk(void)
{
	mil_arena *a = mil_arena_new(), *a2 = mil_arena_new();
	mil_program *src = build_program(a);
	mil_program *dst = mil_program_new(a2);
	mil_function *f = mil_program_copy_function(dst, mil_program_find_function(src, "infer"), "infer_copy");
	CHECK_STR(f->name, "infer_copy");
	uint64_t delta = 1000;
	CHECK(mil_function_foreach_value(f, shift_blobs, &delta) == 0);
	mil_block *b = mil_function_block(f);
	CHECK_EQ_INT(mil_op_attr(mil_block_find_producer(b, "w", NULL), "val")->offset, 5288);
	const mil_arg *lut = mil_op_input(mil_block_find_producer(b, "q_palettized", NULL), "lut");
	CHECK_EQ_INT(lut->v[0].value->offset, 4200);
	/* the source is untouched */
	mil_block *sb = mil_function_block(mil_program_find_function(src, "infer"));
	CHECK_EQ_INT(mil_op_attr(mil_block_find_producer(sb, "w", NULL), "val")->offset, 4288);
	int nvalues = 0;
	mil_function_foreach_value(f, count_values, &nvalues);
	CHECK_EQ_INT(nvalues, 13 + 9 + 2); /* 13 names, 9 const vals, 2 literal bindings */
	mil_arena_free(a);
	/* the copy lives on in its own arena */
	CHECK_STR(mil_op_name(mil_function_block(f)->ops[0]), "axis");
	CHECK(mil_program_remove_function(dst, "infer_copy") == 0 && dst->nfunctions == 0);
	CHECK(mil_program_remove_function(dst, "infer_copy") == -1);
	mil_arena_free(a2);
}

static void test_map_replace_and_order(void)
{
	mil_arena *a = mil_arena_new();
	mil_program *p = mil_program_new(a);
	mil_function *f = mil_program_add_function(p, "main", NULL);
	mil_op *op = mil_block_add_op(mil_function_block(f), "add", "sum");
	mil_op_bind(op, "y", "b");
	mil_op_bind(op, "x", "a");
	mil_op_bind(op, "y", "c"); /* replaces */
	CHECK_EQ_INT(op->ninputs, 2);
	CHECK_STR(mil_op_input(op, "y")->v[0].name, "c");
	/* insertion order does not change the bytes */
	mil_program *q = mil_program_new(a);
	mil_function *g = mil_program_add_function(q, "main", NULL);
	mil_op *op2 = mil_block_add_op(mil_function_block(g), "add", "sum");
	mil_op_bind(op2, "x", "a");
	mil_op_bind(op2, "y", "c");
	pb_buf b1, b2;
	encode(p, &b1);
	encode(q, &b2);
	CHECK(same_bytes(&b1, &b2));
	/* adding a function of an existing name replaces it */
	mil_program_add_function(p, "main", NULL);
	CHECK_EQ_INT(p->nfunctions, 1);
	CHECK_EQ_INT(mil_function_block(mil_program_find_function(p, "main"))->nops, 0);
	pb_release(&b1);
	pb_release(&b2);
	mil_arena_free(a);
}

/* A Program with one function "f" whose block holds `op` (raw Operation bytes). */
static void wrap_op(pb_buf *b, const uint8_t *op, size_t n)
{
	pb_init(b);
	size_t e = pb_begin(b, 2);
	pb_put_string(b, 1, "f");
	size_t fn = pb_begin(b, 2);
	size_t s = pb_begin(b, 3);
	pb_put_string(b, 1, "CoreML8");
	size_t blk = pb_begin(b, 2);
	pb_put_bytes(b, 3, op, n);
	pb_end(b, blk);
	pb_end(b, s);
	pb_end(b, fn);
	pb_end(b, e);
}

static void test_merge_rules(void)
{
	mil_arena *a = mil_arena_new();
	/* Operation: type twice (last wins), an unknown field 9, two outputs, and
	 * the `x` input given twice (the later entry replaces the first). Packed
	 * dims split over two unpacked fields are fine too. */
	pb_buf op;
	pb_init(&op);
	pb_put_string(&op, 1, "old");
	pb_put_string(&op, 9, "ignored");
	pb_put_string(&op, 1, "relu");
	for (int i = 0; i < 2; i++) {
		size_t e = pb_begin(&op, 2);
		pb_put_string(&op, 1, "x");
		size_t arg = pb_begin(&op, 2);
		size_t bd = pb_begin(&op, 1);
		pb_put_string(&op, 1, i ? "second" : "first");
		pb_end(&op, bd);
		pb_end(&op, arg);
		pb_end(&op, e);
	}
	size_t o = pb_begin(&op, 3);
	pb_put_string(&op, 1, "y");
	size_t vt = pb_begin(&op, 2);
	size_t tt = pb_begin(&op, 1);
	pb_put_uint(&op, 1, MIL_FP16);
	pb_put_uint(&op, 2, 1);
	size_t dim = pb_begin(&op, 3);
	size_t c = pb_begin(&op, 1);
	pb_put_uint(&op, 1, 8);
	pb_end(&op, c);
	pb_end(&op, dim);
	pb_end(&op, tt);
	pb_end(&op, vt);
	pb_end(&op, o);
	pb_buf prog;
	wrap_op(&prog, op.data, op.len);
	mil_program *p = mil_program_new(a);
	CHECKF(mil_program_decode(p, prog.data, prog.len) == 0, "%s", errmsg());
	mil_op *d = p->nfunctions ? mil_function_block(p->functions[0])->ops[0] : NULL;
	CHECK(d != NULL);
	if (d) {
		CHECK_STR(d->type, "relu");
		CHECK_EQ_INT(d->ninputs, 1);
		CHECK_STR(d->inputs[0]->v[0].name, "second");
		CHECK(d->noutputs == 1 && d->outputs[0].type->dims[0].size == 8);
	}
	pb_release(&op);
	pb_release(&prog);
	mil_arena_free(a);
}

static void expect_error(const uint8_t *bytes, size_t n, const char *needle)
{
	mil_arena *a = mil_arena_new();
	mil_program *p = mil_program_new(a);
	int rc = mil_program_decode(p, bytes, n);
	CHECKF(rc == -1, "decoding succeeded, expected an error about '%s'", needle);
	if (rc == -1) {
		CHECKF(strstr(errmsg(), needle) != NULL, "error '%s' does not mention '%s'", errmsg(), needle);
		CHECK(strchr(errmsg(), '\n') == NULL);
	}
	mil_arena_free(a);
}

static void test_malformed(void)
{
	expect_error((const uint8_t *)"\x12\x05\x0a\x01", 4, "runs past the end");
	expect_error((const uint8_t *)"\x08", 1, "truncated varint");
	expect_error((const uint8_t *)"\x12\x02\x0a\x00\x1a", 5, "truncated");
	expect_error((const uint8_t *)"\x0a\x00", 2, "Program.version");   /* version as bytes */
	expect_error((const uint8_t *)"\x10\x01", 2, "Program.functions"); /* functions as varint */
	/* an op type with a NUL byte */
	pb_buf b;
	wrap_op(&b, (const uint8_t *)"\x0a\x03" "a\0b", 5);
	expect_error(b.data, b.len, "NUL");
	pb_release(&b);
	/* packed floats whose length is not a multiple of 4 */
	pb_buf v;
	pb_init(&v);
	size_t im = pb_begin(&v, 3);
	size_t t = pb_begin(&v, 1);
	size_t fl = pb_begin(&v, 1);
	pb_put_bytes(&v, 1, "\x00\x00\x80", 3);
	pb_end(&v, fl);
	pb_end(&v, t);
	pb_end(&v, im);
	mil_arena *a = mil_arena_new();
	mil_value *out;
	CHECK(mil_value_decode(a, v.data, v.len, &out) == -1 && strstr(errmsg(), "packed floats"));
	pb_release(&v);
	/* nesting: state types wrapping each other 100 deep */
	pb_buf deep;
	pb_init(&deep);
	size_t marks[201];
	marks[0] = pb_begin(&deep, 2); /* Value.type */
	for (int i = 1; i <= 200; i++)
		marks[i] = pb_begin(&deep, i % 2 ? 5 : 1); /* ValueType.stateType, StateType.wrappedType */
	for (int i = 200; i >= 0; i--)
		pb_end(&deep, marks[i]);
	CHECK(mil_value_decode(a, deep.data, deep.len, &out) == -1 && strstr(errmsg(), "nested deeper"));
	pb_release(&deep);
	mil_arena_free(a);
}

int main(void)
{
	RUN(test_roundtrip_bytes);
	RUN(test_fields_read_back);
	RUN(test_value_constructors);
	RUN(test_copy_and_walk);
	RUN(test_map_replace_and_order);
	RUN(test_merge_rules);
	RUN(test_malformed);
	return test_finish();
}
