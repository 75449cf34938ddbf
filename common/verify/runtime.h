/* runtime.h: run the MIL program of any .mlpackage on the CPU with Core ML's
 * fp16 semantics, so every conversion can be proven by executing it.
 *
 * What it does. rt_model_open() reads a package (ours or coremltools') or
 * a compiled .mlmodelc, resolves every function's block, turns every
 * binding (var name) into a slot index once, and materialises every
 * constant once:
 *  - immediate values are decoded into tensors;
 *  - blob values are used in place from the memory-mapped weight.bin (the
 *    package stays open and mapped for the life of the model);
 *  - constexpr_lut_to_dense stays palettized (indices and table in the
 *    mapped weight.bin) when only conv/linear weights, matmul operands or a
 *    gather's table read it: those kernels expand a few rows at a time, with
 *    exactly the values dequantizing would give. A palettized model thus
 *    takes about the size of its weight file plus the states. Palettes any
 *    other op reads, and vector palettes, are dequantized at load into a
 *    dense tensor (once per (indices, lut) blob pair shared by functions).
 * Every op type is checked against the kernel table at load: a package with
 * an op we cannot run fails to load with one message listing every missing
 * op type once, never a silent skip.
 *
 * Numerics. Tensors are stored in the dtype each op output declares: fp16
 * outputs are rounded to nearest even at the op boundary (IEEE: overflow
 * gives +-inf, unlike fp16.h's checkpoint converter, which clamps). Kernels
 * compute in fp32 and accumulate reductions and matmul/conv dot products in
 * fp32. That mirrors Core ML's fp16 compute precision closely enough to
 * compare against an fp32 reference; it is not bit-exact with the ANE.
 * Results do not depend on the thread count (each output element is
 * computed by one thread in a fixed order).
 *
 * Ops (coremltools' iOS 15-18 definitions, absent optional parameters take
 * coremltools' defaults): const, constexpr_lut_to_dense (iOS 18 form, scalar
 * and vector palettes), read_state, write_state; add sub mul real_div pow
 * maximum minimum floor_div mod equal not_equal less less_equal greater
 * greater_equal logical_and/or/xor/not select clip cast; exp exp2 log sqrt
 * rsqrt inverse tanh sigmoid silu relu gelu (3 modes) sin cos erf abs floor
 * ceil round sign square; conv (1-D/2-D, groups, strides, dilations, pad
 * types valid/same/same_lower/custom) linear matmul
 * scaled_dot_product_attention; reduce_sum/mean/max/min/prod/argmax/argmin
 * softmax layer_norm topk; reshape expand_dims squeeze identity transpose
 * concat split tile slice_by_index slice_by_size slice_update gather
 * gather_along_axis band_part fill range_1d. Choices where Core ML leaves
 * room: cast from float to integer truncates toward zero (what coremltools'
 * constant folding does with numpy astype) and saturates; integer to a
 * narrower integer wraps; an out-of-range gather index is always an error,
 * validate_indices or not (we never read outside a tensor).
 *
 * States. An rt_state holds named fp16 tensors (the KV caches). It is created
 * from one function's state declarations, zero-filled, and may be passed to
 * any function of any model whose states it has by name and shape, which is
 * how ANEMLL shares one cache across chunks and functions.
 *
 * Sizes. Programs have hundreds to a few thousand ops; the hot path is the
 * 1x1 conv / linear / matmul over fp16 weights (up to ~1B parameters), run
 * for a 64-token prefill and then token by token. Not thread-safe: one
 * rt_run at a time per model (kernels use the model's own worker threads).
 *
 * Usage:
 *   rt_model *m;  rt_state *s;  rt_tensor in[4], *out;  int nout;
 *   if (rt_model_open("x.mlpackage", &m)) die_err();
 *   s = rt_state_new(m, "prefill");
 *   rt_tensor_alloc(&in[0], "hidden_states", MIL_FP16, 3, (int64_t[]){1, 64, 64});
 *   ...fill the inputs...
 *   if (rt_run(m, "prefill", in, 4, s, &out, &nout)) die_err();
 *   ...use out[i] (name, dtype, shape, data)...
 *   rt_tensors_free(out, nout);
 */
#ifndef ANEMAKE_RUNTIME_H
#define ANEMAKE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "coreml/blob.h"

#define RT_MAX_RANK 8

/* ------------------------------------------------------------------ */
/* Tensors                                                             */

/* A dense row-major tensor. Storage dtypes: fp16 (raw uint16_t halves),
 * fp32, int32, int16, int8, uint16, uint8 and bool (one byte, 0 or 1).
 * Inputs of rt_run may point anywhere (the runtime only reads them);
 * tensors made by rt_tensor_alloc, rt_run or the state readers own their
 * name and data, released with rt_tensor_release / rt_tensors_free. */
typedef struct rt_tensor {
	const char *name;
	int dtype; /* mil_dtype */
	int rank;  /* 0 (scalar) .. RT_MAX_RANK */
	int64_t shape[RT_MAX_RANK];
	void *data;
} rt_tensor;

/* Bytes per element of a storage dtype; 0 when it is not one. */
size_t rt_dtype_size(int dtype);
/* Zero-filled tensor; name copied (NULL allowed). -1 with errf() for an
 * unsupported dtype, a bad rank or a negative/overflowing shape. */
int rt_tensor_alloc(rt_tensor *t, const char *name, int dtype, int rank, const int64_t *shape);
/* Free name and data of an owned tensor and zero it; NULL-tolerant. */
void rt_tensor_release(rt_tensor *t);
/* Release n owned tensors and free the array (rt_run's outputs). */
void rt_tensors_free(rt_tensor *ts, int n);
size_t rt_tensor_numel(const rt_tensor *t);
/* Element i as a float / set from a float (fp16 rounds to nearest even,
 * integers truncate toward zero and saturate, bool is v != 0). */
float rt_tensor_get(const rt_tensor *t, size_t i);
void rt_tensor_set(rt_tensor *t, size_t i, float v);
/* The tensor called name among ts[0..n), or NULL. */
rt_tensor *rt_tensors_find(rt_tensor *ts, int n, const char *name);

/* ------------------------------------------------------------------ */
/* Models                                                              */

typedef struct rt_model rt_model;
typedef struct rt_state rt_state;

/* Open and load a .mlpackage, or a compiled .mlmodelc folder (model.mil,
 * coremldata.bin for the description, weights/weight.bin). -1 with one
 * errf() line naming the package or file (and the function/op at fault) on
 * any problem. */
int rt_model_open(const char *path, rt_model **out);
/* Load from model.mlmodel bytes. Blob values must name
 * "@model_path/weights/weight.bin" and are read from `weights` (NULL when the
 * program has none), which must stay open until rt_model_free: fp16 blobs are
 * used in place. `what` names the model in messages. */
int rt_model_load(const void *bytes, size_t n, blob_reader *weights, const char *what, rt_model **out);
void rt_model_free(rt_model *m); /* NULL-tolerant; joins the worker threads */

/* Worker threads for the heavy kernels (default: $ANEMAKE_THREADS, else the
 * online CPUs). Results are identical for every count. */
void rt_model_set_threads(rt_model *m, int n);

int rt_function_count(const rt_model *m);
const char *rt_function_name(const rt_model *m, int i);
/* The description's defaultFunctionName, else "main". */
const char *rt_default_function(const rt_model *m);

/* What a function takes and gives, from its MIL signature. */
typedef struct rt_io {
	const char *name;
	int dtype;    /* mil_dtype */
	int rank;
	int64_t shape[RT_MAX_RANK]; /* -1: unknown (any size accepted) */
	int is_state;
} rt_io;
/* Inputs (states included, flagged) and outputs of `function` (NULL: the
 * default); the arrays belong to the model. -1 with errf() if no such function. */
int rt_function_io(const rt_model *m, const char *function, const rt_io **inputs, int *n_inputs,
		   const rt_io **outputs, int *n_outputs);

/* A copy of constant `var` of `function` (a const or constexpr output, as
 * materialised at load), for tests and comparisons. -1 with errf() if var is
 * not a constant. Release with rt_tensor_release. */
int rt_model_constant(const rt_model *m, const char *function, const char *var, rt_tensor *out);

/* Run `function` (NULL: the default). inputs are matched by name to the
 * function's non-state inputs: every one must be given, with its declared
 * dtype and each fixed dimension (unknown ones accept any size). State
 * inputs come from `state` by name (NULL is fine for a function without
 * states). On success *outputs is a new array of *n_outputs tensors in the
 * block's output order, named, in their declared dtypes; free it with
 * rt_tensors_free. On failure -1 with one errf() line naming the function,
 * the op and what is wrong; the state may then be partly updated. */
int rt_run(rt_model *m, const char *function, const rt_tensor *inputs, int n_inputs, rt_state *state,
	   rt_tensor **outputs, int *n_outputs);

/* ------------------------------------------------------------------ */
/* States                                                              */

/* Zero-filled fp16 states with `function`'s state declarations (full
 * declared shapes). NULL with errf() if the function does not exist. */
rt_state *rt_state_new(const rt_model *m, const char *function);
void rt_state_free(rt_state *s); /* NULL-tolerant */
int rt_state_count(const rt_state *s);
const char *rt_state_name(const rt_state *s, int i);
/* A copy of state `name`'s current value (release it). */
int rt_state_read(const rt_state *s, const char *name, rt_tensor *out);
/* Replace state `name` with t (fp16, the state's shape). */
int rt_state_write(rt_state *s, const char *name, const rt_tensor *t);
/* Reset every state to zeros. */
void rt_state_clear(rt_state *s);

/* ================================================================== */
/* Internal: shared by runtime.c and the kernels in rt_ops*.c only.    */
#ifdef RT_INTERNAL

#include <stdarg.h>
#include "base/util.h"
#include "coreml/mil.h"

/* A reference-counted buffer; data is 64-byte aligned. hold: buffers this
 * one points into (a palettized weight's indices and table when they were
 * unpacked at load), released with it. */
typedef struct rt_buf {
	size_t refs;
	size_t nbytes;
	void *data;
	struct rt_buf *hold[2];
} rt_buf;

/* A palettized constant left palettized (constexpr_lut_to_dense with scalar
 * palettes): dense element p is table[group(p)][index p]. Elements come in
 * runs of `inner` that share one table (the dims after the last grouped
 * one). Only the kernels runtime.c lists (palette_readers) ever see
 * one; they expand rows on the fly with rt_lut_expand, which gives exactly
 * the bits dequantizing at load gave. */
typedef struct rt_lut {
	int dtype;            /* of the table and the dense tensor: fp16 or fp32 */
	int rank;
	int64_t shape[RT_MAX_RANK], block[RT_MAX_RANK], gstride[RT_MAX_RANK];
	const uint8_t *idx;   /* packed indices (bits < 8) or one byte each */
	int bits;             /* bits per stored index: 8 when unpacked */
	int last_grouped;     /* last dim with more than one group, or -1 */
	size_t inner;         /* elements per run sharing one table */
	size_t np, es;        /* table entries, bytes per entry */
	const uint8_t *table; /* [groups][np] entries */
} rt_lut;

/* Dense elements [off, off + n) of l, in l's dtype, into dst. */
void rt_lut_expand(const rt_lut *l, size_t off, size_t n, void *dst);
/* The same as fp32. */
void rt_lut_expand_f32(const rt_lut *l, size_t off, size_t n, float *dst);
/* The table (np entries of es bytes) of the run holding dense element off is
 * rt_lut_table(l, off / l->inner). */
const uint8_t *rt_lut_table(const rt_lut *l, size_t run);
/* out[j] = the GEMM's dot product of a (pad8(K) fp32 values, zero past K,
 * 32-byte aligned) with dense elements [e0 + j * ldb, + K) of l, for
 * j < nr <= 8: exactly the bits of expanding the rows with
 * rt_lut_expand_f32 and summing in the kernel's 8 lanes. vector: 1 the
 * fused unpack-lookup-multiply kernel (-1 when this CPU or these rows
 * cannot take it; fp32 tables and 7 or 8 bits take at most 4 rows), 0 the
 * generic expansion (tests compare the two). */
int rt_lut_dot(const rt_lut *l, size_t e0, size_t ldb, size_t K, int nr, const float *a, float *out, int vector);
/* The same for nr <= 4 fp16 rows B + j * ldb of K values (the GEMM's
 * rows at decode for unpalettized weights and attention's keys). */
int rt_f16_dot(const uint16_t *B, size_t ldb, size_t K, int nr, const float *a, float *out, int vector);
/* c[n] = the GEMM's dot product of a (K fp32 values) with column n of y,
 * K rows of N fp16 (dtype MIL_FP16) or fp32 values, for every n < N. */
void rt_dot_cols(const float *a, size_t K, const void *y, int dtype, size_t N, float *c);

/* A value during a run: a tensor whose data either belongs to a buffer
 * (buf != NULL, shared by views such as reshape) or is borrowed read-only
 * (buf == NULL: an rt_run input or a blob in the mapped weight.bin). */
typedef struct rt_val {
	int dtype;
	int rank;
	int64_t shape[RT_MAX_RANK];
	size_t numel;
	void *data;      /* NULL: unset (or palettized) */
	rt_buf *buf;
	const char *str; /* MIL_STRING scalar (const parameters only) */
	const rt_lut *lut; /* palettized constant (data NULL): rt_load_f32 and
	                    * rt_lut_expand read it, nothing else */
} rt_val;

#define RT_MAX_PARAMS 12

typedef struct rt_exec rt_exec;
typedef struct rt_op rt_op;
typedef int (*rt_kernel_fn)(rt_exec *e, const rt_op *op);

/* One op type: its parameters in a fixed order (kernels index them with
 * their own enums), which are required, which one is variadic, and how many
 * outputs it has. */
typedef struct rt_kernel {
	const char *type;
	const char *params[RT_MAX_PARAMS]; /* NULL-terminated */
	unsigned required;                 /* bit i: params[i] must be bound */
	int variadic;                      /* index of the variadic parameter or -1 */
	int min_out, max_out;
	rt_kernel_fn run;
} rt_kernel;

/* An op after loading: bindings resolved to slots. */
struct rt_op {
	const rt_kernel *k;
	const char *type, *name;
	int in[RT_MAX_PARAMS];  /* slot per kernel parameter; -1 when absent */
	int nvar, *var;         /* slots bound to the variadic parameter */
	int nout, *out;         /* output slots */
	const mil_type **out_type;
	int nrel, *rel;         /* slots whose last use is this op */
	int inplace_state;      /* slice_update feeding only write_state of this state slot; else -1 */
};

/* Parameter i of the current op (NULL when absent). */
const rt_val *rt_in(rt_exec *e, const rt_op *op, int i);
/* The variadic parameter's j-th value. */
const rt_val *rt_var(rt_exec *e, const rt_op *op, int j);
/* The declared dtype of output i. */
int rt_out_dtype(const rt_op *op, int i);
/* Allocate output i with this shape in its declared dtype; the shape is
 * checked against the declared one. NULL with the error recorded. */
rt_val *rt_out(rt_exec *e, const rt_op *op, int i, int rank, const int64_t *shape);
/* Output i shares src's data with a new shape (same numel and dtype). */
int rt_out_view(rt_exec *e, const rt_op *op, int i, const rt_val *src, int rank, const int64_t *shape);
/* Record "<model>: function 'f' op 'name' (type): <msg>"; returns -1. */
int rt_err(rt_exec *e, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* The current value of state slot `slot`, and replacing it (read/write_state). */
int rt_state_get(rt_exec *e, int slot, rt_val *out);
int rt_state_put(rt_exec *e, int slot, const rt_val *v, int v_slot);
/* True when output i may take over x's buffer (x dies here and nobody else
 * holds it), or when op is a flagged state update whose x is the state's
 * own buffer about to be replaced. */
int rt_can_reuse(rt_exec *e, const rt_op *op, int param, int out);
/* Output i becomes x (param's value) itself, to be modified in place;
 * NULL with the error recorded if x's shape is not the declared one. */
rt_val *rt_out_reuse(rt_exec *e, const rt_op *op, int param, int out);

/* Constant parameters. */
int rt_param_ints(rt_exec *e, const rt_val *v, const char *what, int64_t *dst, int max, int *n);
int rt_param_int(rt_exec *e, const rt_val *v, const char *what, int64_t dflt, int64_t *out);
int rt_param_bool(rt_exec *e, const rt_val *v, const char *what, int dflt, int *out);
int rt_param_bools(rt_exec *e, const rt_val *v, const char *what, int rank, int *dst);
int rt_param_float(rt_exec *e, const rt_val *v, const char *what, float dflt, float *out);
const char *rt_param_str(rt_exec *e, const rt_val *v, const char *what, const char *dflt);
/* "[1,64,512]" into buf. */
const char *rt_shape_str(char *buf, size_t cap, int rank, const int64_t *shape);
/* Normalise axis a for rank r (negative counts from the end); -1 if out of range. */
int rt_axis(int64_t a, int r);

/* Elements. */
float rt_h2f(uint16_t h);
uint16_t rt_f2h(float f); /* nearest even, overflow -> inf */
void rt_h2f_n(const uint16_t *src, float *dst, size_t n);
void rt_f2h_n(const float *src, uint16_t *dst, size_t n);
int rt_is_float(int dtype);
double rt_get(const rt_val *v, size_t i);
int64_t rt_get_i64(const rt_val *v, size_t i);
void rt_set(rt_val *v, size_t i, double x); /* integers: truncate, saturate */
/* n elements from element off of v (stride 0 repeats one element) as
 * floats; v may be palettized. */
void rt_load_f32(const rt_val *v, size_t off, size_t stride, size_t n, float *dst);
void rt_store_f32(rt_val *v, size_t off, size_t n, const float *src);
void rt_load_f64(const rt_val *v, size_t off, size_t stride, size_t n, double *dst);
void rt_store_f64(rt_val *v, size_t off, size_t n, const double *src);
size_t rt_numel(int rank, const int64_t *shape);
/* Row-major element strides of a shape. */
void rt_strides(int rank, const int64_t *shape, int64_t *strides);
/* Copy a rank-r box of esize-byte elements between arbitrary element strides. */
void rt_copy_strided(int rank, const int64_t *shape, void *dst, const int64_t *dst_strides, const void *src,
		     const int64_t *src_strides, size_t esize);
/* Scratch memory, 64-byte aligned; free with free(). */
void *rt_alloc(size_t nbytes);
/* Split [0, n) over the model's threads; fn(ctx, begin, end) per part. */
void rt_parallel(rt_exec *e, size_t n, size_t grain, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx);

/* Kernel tables of the rt_ops*.c files. */
extern const rt_kernel rt_kernels_elem[];
extern const rt_kernel rt_kernels_shape[];
extern const rt_kernel rt_kernels_reduce[];
extern const rt_kernel rt_kernels_linalg[];

#endif /* RT_INTERNAL */
#endif
