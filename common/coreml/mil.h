/* mil.h: an ML Program (MIL.proto) in memory, its builder and its protobuf codec.
 *
 * This is the program half of a Core ML model (mlmodel.h holds the Model and
 * its description). Every later part of anemake works on these structures:
 * the graph builder appends ops, the CPU runtime walks them in order and
 * resolves bindings by name, the combine step copies functions between
 * programs and rewrites blob offsets, and mldump prints them.
 *
 * Shape of the data (MIL.proto field numbers in brackets, coreml-format.md 3):
 *
 *   mil_program      version[1], functions[2] (a map: name -> mil_function),
 *                    doc[3], attrs[4]
 *   mil_function     inputs[1] (mil_var: name + type; state inputs too),
 *                    opset[2], blocks[3] (map opset -> mil_block), attrs[4]
 *   mil_block        inputs[1], outputs[2] (var names), ops[3] in order, attrs[4]
 *   mil_op           type[1], inputs[2] (map param -> mil_arg), outputs[3],
 *                    blocks[4] (nested, for cond/while), attrs[5]
 *   mil_arg          one parameter's bindings[1]: several for variadic
 *                    parameters such as concat's `values`
 *   mil_binding      a var name[1] or a literal mil_value[2]
 *   mil_type         ValueType: tensor[1] (dtype, rank, dims, attrs), list[2],
 *                    tuple[3], dict[4], state[5] (wraps a tensor type)
 *   mil_value        doc[1], type[2], and an immediate[3] (tensor, tuple,
 *                    list, dict) or a blob-file reference[5] (file, offset)
 *
 * Immediate tensors keep the TensorValue member they came in (floats, ints,
 * bools, strings, longInts, doubles, bytes), so re-encoding is exact. The
 * constructors below pick the member coremltools uses for each dtype
 * (coreml-format.md 3): fp32 floats, fp64 doubles, bool bools, int32/int16/
 * uint16 ints, int64/uint64 longInts, string strings, and raw little-endian
 * bytes for fp16, bf16, int8, uint8, uint32, fp8 and the sub-byte types.
 * Blob data never lives here: a blob value is only (file name, offset of the
 * blob's metadata record in weight.bin).
 *
 * Maps are arrays kept in insertion (or decode) order; setting an existing
 * key replaces its value, as protobuf does for a repeated map key. The
 * encoder writes map entries sorted by key (bytewise) and every message's
 * fields in field-number order, omitting proto3 defaults, so identical
 * structures always give identical bytes.
 *
 * Memory. Everything is allocated from a mil_arena (usually the one owned by
 * the ml_model) and freed with it at once; nothing here is freed piecewise.
 * Every function that takes a string or an array copies it into the arena,
 * except where noted: a mil_type or mil_value passed to a builder function is
 * linked, not copied, so it must come from the same arena and should not be
 * shared between two places you intend to modify separately. Objects returned
 * as pointers (functions, blocks, ops, args, types, values) never move, so
 * pointers stay valid while more things are added. Elements of the plain
 * arrays (mil_var, mil_attr, mil_binding, mil_dim) may move when the array
 * grows. To modify a decoded program, assign fields directly; a replacement
 * string must be arena-owned (mil_strdup).
 *
 * String fields are never NULL: an absent proto3 string reads as "".
 * DataType numbers are kept as plain ints so unknown numbers survive a round
 * trip; compare them with the mil_dtype constants of dtype.h.
 */
#ifndef ANEMAKE_MIL_H
#define ANEMAKE_MIL_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "coreml/pb.h"

/* The weight file every blob value of a package refers to. */
#define MIL_WEIGHT_FILE "@model_path/weights/weight.bin"
/* Opset for iOS 18 / macOS 15 programs. */
#define MIL_OPSET_IOS18 "CoreML8"
/* Decoding refuses types, values and blocks nested deeper than this. */
#define MIL_MAX_DEPTH 64

/* ------------------------------------------------------------------ */
/* Arena                                                               */

typedef struct mil_arena mil_arena;

mil_arena *mil_arena_new(void);
void mil_arena_free(mil_arena *a); /* NULL-tolerant */
/* Zeroed memory aligned for any type; never NULL (aborts when out of memory). */
void *mil_alloc(mil_arena *a, size_t n);
void *mil_memdup(mil_arena *a, const void *p, size_t n);
/* NULL copies as "". */
char *mil_strdup(mil_arena *a, const char *s);
char *mil_strndup(mil_arena *a, const char *s, size_t n);
/* Bytes handed out so far (a rough memory figure). */
size_t mil_arena_used(const mil_arena *a);
/* Grow an arena array *p of *cap elements of size elem to hold need. */
void mil_grow(mil_arena *a, void **p, size_t *cap, size_t need, size_t elem);
#define MIL_GROW(a, arr, cap, need) mil_grow((a), (void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* String-keyed arrays (maps kept in insertion order). mil_find returns the
 * index of the first of n entries whose key equals key, or n if none. Entry
 * i starts at byte i * stride of v; its key is the const char * at byte off
 * of it or, when deref, of the struct it points to. mil_map_slot returns the
 * index of key's entry in the arena array *v, appending a zeroed entry with
 * an arena copy of key when absent. The macros take the element type and
 * the name of its key member. */
size_t mil_find(const void *v, size_t n, size_t stride, size_t off, int deref, const char *key);
size_t mil_map_slot(mil_arena *a, void **v, size_t *n, size_t *cap, size_t stride, size_t off, const char *key);
#define MIL_FIND(arr, n, type, member, key) mil_find((arr), (n), sizeof(type), offsetof(type, member), 0, (key))
#define MIL_FIND_PTR(arr, n, type, member, key) mil_find((arr), (n), sizeof(type *), offsetof(type, member), 1, (key))
#define MIL_MAP_SLOT(a, arr, n, cap, type, member, key) \
	mil_map_slot((a), (void **)&(arr), &(n), &(cap), sizeof(type), offsetof(type, member), (key))

/* ------------------------------------------------------------------ */
/* Types                                                               */

typedef struct mil_type mil_type;
typedef struct mil_value mil_value;
typedef struct mil_block mil_block;

typedef enum mil_type_kind {
	MIL_TYPE_NONE = 0, /* ValueType with no member set */
	MIL_TYPE_TENSOR = 1,
	MIL_TYPE_LIST = 2,
	MIL_TYPE_TUPLE = 3,
	MIL_TYPE_DICT = 4,
	MIL_TYPE_STATE = 5,
} mil_type_kind;

typedef enum mil_dim_kind {
	MIL_DIM_UNSET = 0,   /* Dimension with no member set */
	MIL_DIM_CONST = 1,   /* size */
	MIL_DIM_UNKNOWN = 2, /* symbolic; variadic for "any number of dims" */
} mil_dim_kind;

typedef struct mil_dim {
	int kind; /* mil_dim_kind */
	int variadic;
	uint64_t size;
} mil_dim;

/* map<string, Value> */
typedef struct mil_attr {
	const char *key;
	mil_value *value; /* never NULL (an entry without one decodes as an empty Value) */
} mil_attr;

typedef struct mil_attrs {
	size_t n, cap;
	mil_attr *v;
} mil_attrs;

struct mil_type {
	mil_type_kind kind;
	/* MIL_TYPE_TENSOR. rank is kept apart from ndims because the wire has
	 * both; constructors set rank = ndims (a scalar has rank 0, no dims). */
	int dtype; /* mil_dtype */
	int64_t rank;
	size_t ndims, dims_cap;
	mil_dim *dims;
	mil_attrs attrs;
	/* MIL_TYPE_STATE: the wrapped tensor type. MIL_TYPE_LIST: element type. */
	mil_type *wrapped;
	/* MIL_TYPE_LIST */
	int has_length;
	mil_dim length;
	/* MIL_TYPE_DICT */
	mil_type *key_type, *value_type;
	/* MIL_TYPE_TUPLE */
	size_t ntypes, types_cap;
	mil_type **types;
};

/* Tensor type; dims[i] < 0 makes dimension i unknown. dims may be NULL when rank is 0. */
mil_type *mil_type_tensor(mil_arena *a, mil_dtype dt, size_t rank, const int64_t *dims);
mil_type *mil_type_scalar(mil_arena *a, mil_dtype dt);
mil_type *mil_type_state(mil_arena *a, mil_type *wrapped);
mil_type *mil_type_list(mil_arena *a, mil_type *elem);
mil_type *mil_type_tuple(mil_arena *a, size_t n, mil_type *const *types);
mil_type *mil_type_dict(mil_arena *a, mil_type *key, mil_type *value);
/* Element count of a tensor type: 0 and *n, or -1 when a dim is not constant
 * (or the product overflows). A scalar has 1 element. */
int mil_type_numel(const mil_type *t, uint64_t *n);
/* Structural equality (NULL equals NULL). */
int mil_type_equal(const mil_type *x, const mil_type *y);
/* Deep copy into arena a (which may differ from the source's). */
mil_type *mil_type_copy(mil_arena *a, const mil_type *t);

/* ------------------------------------------------------------------ */
/* Values                                                              */

typedef enum mil_value_kind {
	MIL_VAL_NONE = 0,   /* neither immediateValue nor blobFileValue */
	MIL_VAL_TENSOR = 1, /* immediateValue.tensor */
	MIL_VAL_TUPLE = 2,  /* immediateValue.tuple: items */
	MIL_VAL_LIST = 3,   /* immediateValue.list: items */
	MIL_VAL_DICT = 4,   /* immediateValue.dictionary: keys[i] -> items[i] */
	MIL_VAL_BLOB = 5,   /* blobFileValue: file, offset */
} mil_value_kind;

/* TensorValue members, numbered as in MIL.proto. */
typedef enum mil_tv_field {
	MIL_TV_NONE = 0, /* TensorValue with no member set */
	MIL_TV_FLOATS = 1,
	MIL_TV_INTS = 2,
	MIL_TV_BOOLS = 3,
	MIL_TV_STRINGS = 4,
	MIL_TV_LONGINTS = 5,
	MIL_TV_DOUBLES = 6,
	MIL_TV_BYTES = 7,
} mil_tv_field;

typedef struct mil_tensor_value {
	mil_tv_field field;
	size_t n; /* number of values; for MIL_TV_BYTES the byte count */
	size_t cap; /* allocated elements (for appending) */
	union {
		float *floats;
		int32_t *ints;
		uint8_t *bools; /* 0 or 1 */
		const char **strings;
		int64_t *longints;
		double *doubles;
		uint8_t *bytes;
		void *any;
	} u;
} mil_tensor_value;

struct mil_value {
	const char *doc;
	mil_type *type; /* NULL when absent */
	mil_value_kind kind;
	mil_tensor_value tensor; /* MIL_VAL_TENSOR */
	/* MIL_VAL_TUPLE, MIL_VAL_LIST, MIL_VAL_DICT (keys only for DICT;
	 * a pair's key or value may be NULL when absent on the wire) */
	size_t n, cap;
	mil_value **items, **keys;
	/* MIL_VAL_BLOB */
	const char *file;
	uint64_t offset;
};

/* Immediate tensor of type t (a tensor type with constant dims) from data in
 * its natural C layout, using the TensorValue member of the spec table:
 *   fp32 float[], fp64 double[], bool uint8_t[] (0/1), int32 int32_t[],
 *   int16 int16_t[] / uint16 uint16_t[] (widened to ints), int64 int64_t[] /
 *   uint64 uint64_t[] (longInts), string const char *[], fp16/bf16 uint16_t[]
 *   (stored as little-endian bytes), int8/uint8/fp8 bytes, uint32 uint32_t[]
 *   (little-endian bytes), sub-byte types already packed LSB-first
 *   (mil_dtype_bytes(dt, n) bytes). data is copied. */
mil_value *mil_value_tensor(mil_arena *a, mil_type *t, const void *data);
/* Immediate with an explicit TensorValue member and count (n is a byte count
 * for MIL_TV_BYTES); data copied. For decoders and tests of odd encodings. */
mil_value *mil_value_raw(mil_arena *a, mil_type *t, mil_tv_field field, const void *data, size_t n);
/* Scalars (rank 0). fp16 takes the raw half bits. */
mil_value *mil_value_i32(mil_arena *a, int32_t v);
mil_value *mil_value_bool(mil_arena *a, int v);
mil_value *mil_value_str(mil_arena *a, const char *s);
mil_value *mil_value_fp16(mil_arena *a, uint16_t bits);
mil_value *mil_value_fp32(mil_arena *a, float v);
mil_value *mil_value_i64(mil_arena *a, int64_t v);
/* Vectors (rank 1, shape [n]). */
mil_value *mil_value_i32s(mil_arena *a, size_t n, const int32_t *v);
mil_value *mil_value_bools(mil_arena *a, size_t n, const uint8_t *v);
mil_value *mil_value_fp16s(mil_arena *a, size_t n, const uint16_t *bits);
mil_value *mil_value_fp32s(mil_arena *a, size_t n, const float *v);
/* Blob-file value: type t (e.g. uint6[64,64,1,1]), file NULL for
 * MIL_WEIGHT_FILE, offset = the blob's metadata offset in weight.bin. */
mil_value *mil_value_blob(mil_arena *a, mil_type *t, const char *file, uint64_t offset);
/* Tuple, list, dict: start empty, then append. Types are left to the caller
 * (mil_value_dict_str sets dict<string,string> as coremltools does). */
mil_value *mil_value_seq(mil_arena *a, mil_value_kind kind, mil_type *t);
void mil_value_push(mil_arena *a, mil_value *seq, mil_value *item);
mil_value *mil_value_dict_str(mil_arena *a);
/* Set key -> value in a dict whose keys are string scalars (replaces an equal key). */
void mil_value_dict_set_str(mil_arena *a, mil_value *dict, const char *key, const char *value);
/* Append a key/value pair to a dict (no check for an equal key). */
void mil_value_dict_add(mil_arena *a, mil_value *dict, mil_value *key, mil_value *value);
/* The string of a string scalar, or NULL when v is anything else. */
const char *mil_value_as_str(const mil_value *v);
/* Element i of an integer immediate (ints, longInts, or int8/uint8/uint32 bytes), as int64. */
int mil_value_get_int(const mil_value *v, size_t i, int64_t *out);
int mil_value_equal(const mil_value *x, const mil_value *y);
mil_value *mil_value_copy(mil_arena *a, const mil_value *v);

/* ------------------------------------------------------------------ */
/* Program, functions, blocks, ops                                     */

typedef struct mil_var {
	const char *name;
	mil_type *type; /* NULL when absent */
} mil_var;

typedef enum mil_binding_kind {
	MIL_BIND_NONE = 0,
	MIL_BIND_NAME = 1,
	MIL_BIND_VALUE = 2,
} mil_binding_kind;

typedef struct mil_binding {
	mil_binding_kind kind;
	const char *name; /* MIL_BIND_NAME */
	mil_value *value; /* MIL_BIND_VALUE (NULL only if absent on the wire) */
} mil_binding;

typedef struct mil_arg {
	const char *param;
	size_t n, cap;
	mil_binding *v;
} mil_arg;

typedef struct mil_op {
	mil_arena *arena;
	const char *type;
	size_t ninputs, inputs_cap;
	mil_arg **inputs;
	size_t noutputs, outputs_cap;
	mil_var *outputs;
	size_t nblocks, blocks_cap;
	mil_block **blocks;
	mil_attrs attrs;
} mil_op;

struct mil_block {
	mil_arena *arena;
	size_t ninputs, inputs_cap;
	mil_var *inputs;
	size_t noutputs, outputs_cap;
	const char **outputs;
	size_t nops, ops_cap;
	mil_op **ops;
	mil_attrs attrs;
};

/* One block_specializations entry. */
typedef struct mil_spec_block {
	const char *key;
	mil_block *block;
} mil_spec_block;

typedef struct mil_function {
	mil_arena *arena;
	const char *name; /* its key in Program.functions */
	size_t ninputs, inputs_cap;
	mil_var *inputs;
	const char *opset;
	size_t nblocks, blocks_cap;
	mil_spec_block *blocks;
	mil_attrs attrs;
} mil_function;

typedef struct mil_program {
	mil_arena *arena;
	int64_t version;
	size_t nfunctions, functions_cap;
	mil_function **functions;
	const char *doc;
	mil_attrs attrs;
} mil_program;

/* A program with version 1 (as coremltools writes), no functions. */
mil_program *mil_program_new(mil_arena *a);
/* Add (or replace) function `name` with `opset` (NULL: MIL_OPSET_IOS18) and
 * one empty block specialized for that opset. */
mil_function *mil_program_add_function(mil_program *p, const char *name, const char *opset);
mil_function *mil_program_find_function(const mil_program *p, const char *name);
/* Remove function `name`; returns 0, or -1 when absent. */
int mil_program_remove_function(mil_program *p, const char *name);
/* Deep-copy src into p under `name` (NULL: src's name), replacing any
 * function of that name. src may live in another arena. */
mil_function *mil_program_copy_function(mil_program *p, const mil_function *src, const char *name);
/* Program.attributes["buildInfo"][key] = value (dict<string,string>). */
void mil_program_set_build_info(mil_program *p, const char *key, const char *value);

/* Function inputs; states are inputs of mil_type_state type. t is linked. */
void mil_function_add_input(mil_function *f, const char *name, mil_type *t);
/* The body: the block specialized for f's opset, else the first one (NULL if none). */
mil_block *mil_function_block(const mil_function *f);

/* Append op `type`; `name` (NULL: none) becomes its `name` attribute, a
 * string scalar, as coremltools gives every op. */
mil_op *mil_block_add_op(mil_block *b, const char *type, const char *name);
/* `const` op: output `name` of val's type (copied), attributes name and val (linked). */
mil_op *mil_block_add_const(mil_block *b, const char *name, mil_value *val);
void mil_block_add_input(mil_block *b, const char *name, mil_type *t);
void mil_block_add_output(mil_block *b, const char *var);
/* The op with an output named `var` (its position in *index if non-NULL);
 * NULL when no op of b (nested blocks not searched) produces it. */
mil_op *mil_block_find_producer(const mil_block *b, const char *var, size_t *index);

/* Parameter `param` of op, created empty when absent. */
mil_arg *mil_op_arg(mil_op *op, const char *param);
/* Bind `param` to var `var` / literal v (linked), replacing earlier bindings. */
void mil_op_bind(mil_op *op, const char *param, const char *var);
void mil_op_bind_value(mil_op *op, const char *param, mil_value *v);
/* Variadic parameter: n bindings by name. */
void mil_op_bind_names(mil_op *op, const char *param, size_t n, const char *const *vars);
/* Append one binding to an argument (variadic parameters). */
void mil_arg_add_name(mil_arena *a, mil_arg *arg, const char *var);
void mil_arg_add_value(mil_arena *a, mil_arg *arg, mil_value *v);
void mil_op_add_output(mil_op *op, const char *name, mil_type *t);
void mil_op_set_attr(mil_op *op, const char *key, mil_value *v);
mil_block *mil_op_add_block(mil_op *op);
/* Lookups; NULL when absent. */
const mil_arg *mil_op_input(const mil_op *op, const char *param);
mil_value *mil_op_attr(const mil_op *op, const char *key);
/* The op's `name` attribute, or NULL. */
const char *mil_op_name(const mil_op *op);

/* Attribute maps: set (replace or append) and get (NULL when absent). */
void mil_attrs_set(mil_arena *a, mil_attrs *m, const char *key, mil_value *v);
mil_value *mil_attrs_get(const mil_attrs *m, const char *key);

/* Call fn on every value held by f's ops: attributes and literal bindings,
 * in op order, nested blocks included, and recursively on the items of
 * tuple/list/dict values (the container first). Stops at, and returns, the
 * first non-zero result of fn. For rewriting blob offsets and the like. */
typedef int (*mil_value_fn)(mil_value *v, void *ctx);
int mil_function_foreach_value(mil_function *f, mil_value_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Protobuf codec                                                      */

/* Append the fields of a Program message (no tag/length around it). */
void mil_program_encode(const mil_program *p, pb_buf *out);
/* Merge the Program message in data[0..n) into p (protobuf merge rules:
 * repeated fields append, scalars overwrite, map keys replace). Unknown
 * fields are skipped. Returns 0, or -1 with errf() on malformed input. */
int mil_program_decode(mil_program *p, const uint8_t *data, size_t n);
/* Decoding helpers shared with mlmodel.c: check a field's wire type; copy a
 * string field (a NUL inside is refused) into the arena; read a varint.
 * `what` names the field in the one-line error. */
int mil_pb_want(const pb_field *f, int wt, const char *what);
int mil_pb_str(mil_arena *a, const pb_field *f, const char **out, const char *what);
int mil_pb_u64(const pb_field *f, uint64_t *v, const char *what);
/* One map<string, V> entry f: its key[1] into *key (left as is when absent)
 * and every occurrence of its value[2] passed to val(ctx, obj, field, what).
 * names: the entry, its key and its value, for errors. */
typedef int (*mil_pb_field_fn)(void *ctx, void *obj, const pb_field *f, const char *what);
int mil_pb_entry(mil_arena *a, const pb_field *f, const char *const names[3], const char **key, mil_pb_field_fn val,
		 void *ctx, void *obj);
/* The same for one Value message (tests and tools). */
void mil_value_encode(const mil_value *v, pb_buf *out);
int mil_value_decode(mil_arena *a, const uint8_t *data, size_t n, mil_value **out);

#endif
