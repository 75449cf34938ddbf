/* test_runtime.c: the CPU runtime op by op, on tiny programs.
 *
 * Each program is built with the mil.h builder, encoded as a model.mlmodel
 * and loaded back through rt_model_load (the real decode path); blob values
 * come from a weight.bin written to a scratch directory, and one test goes
 * through a whole .mlpackage. Expected values are computed by hand or by a
 * naive double-precision loop rounded like the runtime rounds. Covered:
 * broadcasting, fp16 rounding at op boundaries, every listed op, palettized
 * constants from blobs, states across runs, functions and models, thread
 * count independence, and the load/run error messages.
 */
#define RT_INTERNAL
#include "verify/runtime.h"

#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/blob.h"
#include "coreml/mil.h"
#include "coreml/mlmodel.h"
#include "coreml/mlpackage.h"
#include "test.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define SH(...) ((const int64_t[]){__VA_ARGS__})
#define NV(...) (sizeof((const float[]){__VA_ARGS__}) / sizeof(float))
#define FV(...) ((const float[]){__VA_ARGS__})

static char g_dir[256]; /* scratch directory */

/* ------------------------------------------------------------------ */
/* Building programs                                                   */

typedef struct tp {
	ml_model *mm;
	mil_arena *a;
	mil_function *f;
	mil_block *b;
} tp;

static tp tp_new(const char *fn)
{
	tp t;
	t.mm = ml_model_new(ML_SPEC_IOS18);
	t.a = t.mm->arena;
	t.f = mil_program_add_function(ml_model_program(t.mm), fn, NULL);
	t.b = mil_function_block(t.f);
	return t;
}

/* Another function in the same program; t then builds that one. */
static void tp_function(tp *t, const char *fn)
{
	t->f = mil_program_add_function(ml_model_program(t->mm), fn, NULL);
	t->b = mil_function_block(t->f);
}

static mil_type *ty(tp *t, int dt, int rank, const int64_t *shape)
{
	return mil_type_tensor(t->a, (mil_dtype)dt, (size_t)rank, shape);
}

static void tp_input(tp *t, const char *name, int dt, int rank, const int64_t *shape)
{
	mil_function_add_input(t->f, name, ty(t, dt, rank, shape));
}

static void tp_state(tp *t, const char *name, int rank, const int64_t *shape)
{
	mil_function_add_input(t->f, name, mil_type_state(t->a, ty(t, MIL_FP16, rank, shape)));
}

static void c_i32s(tp *t, const char *name, size_t n, const int32_t *v)
{
	mil_block_add_const(t->b, name, mil_value_i32s(t->a, n, v));
}

static void c_i32(tp *t, const char *name, int32_t v) { mil_block_add_const(t->b, name, mil_value_i32(t->a, v)); }
static void c_bool(tp *t, const char *name, int v) { mil_block_add_const(t->b, name, mil_value_bool(t->a, v)); }
static void c_str(tp *t, const char *name, const char *v) { mil_block_add_const(t->b, name, mil_value_str(t->a, v)); }
static void c_f32(tp *t, const char *name, float v) { mil_block_add_const(t->b, name, mil_value_fp32(t->a, v)); }

static void c_bools(tp *t, const char *name, size_t n, const uint8_t *v)
{
	mil_block_add_const(t->b, name, mil_value_bools(t->a, n, v));
}

/* A const tensor of dtype dt (fp16 / fp32 / int32) from float values. */
static void c_tensor(tp *t, const char *name, int dt, int rank, const int64_t *shape, const float *v)
{
	size_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= (size_t)shape[i];
	void *data = xmalloc(n * 4 + 4);
	for (size_t i = 0; i < n; i++) {
		if (dt == MIL_FP16)
			((uint16_t *)data)[i] = f32_to_fp16(v[i], NULL);
		else if (dt == MIL_FP32)
			((float *)data)[i] = v[i];
		else
			((int32_t *)data)[i] = (int32_t)v[i];
	}
	mil_block_add_const(t->b, name, mil_value_tensor(t->a, ty(t, dt, rank, shape), data));
	free(data);
}

/* op `type` with output `out` of the given type, then (param, var) pairs
 * up to NULL. A param given twice becomes a variadic argument. */
static mil_op *tp_op(tp *t, const char *type, const char *out, int dt, int rank, const int64_t *shape, ...)
{
	mil_op *op = mil_block_add_op(t->b, type, out);
	va_list ap;
	va_start(ap, shape);
	const char *p;
	while ((p = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		mil_arg_add_name(t->a, mil_op_arg(op, p), v);
	}
	va_end(ap);
	if (out)
		mil_op_add_output(op, out, ty(t, dt, rank, shape));
	return op;
}

static void tp_output(tp *t, const char *var) { mil_block_add_output(t->b, var); }

/* Encode, free the builder, load through the real decoder. */
static rt_model *tp_load(tp *t, blob_reader *w)
{
	pb_buf buf;
	pb_init(&buf);
	ml_model_encode(t->mm, &buf);
	ml_model_free(t->mm);
	t->mm = NULL;
	rt_model *m = NULL;
	if (rt_model_load(buf.data, buf.len, w, "test", &m) != 0)
		m = NULL;
	pb_release(&buf);
	return m;
}

/* ------------------------------------------------------------------ */
/* Tensors and checks                                                  */

static rt_tensor T(const char *name, int dt, int rank, const int64_t *shape, const float *v)
{
	rt_tensor t;
	if (rt_tensor_alloc(&t, name, dt, rank, shape) != 0)
		BUG("%s", errmsg());
	for (size_t i = 0; v && i < rt_tensor_numel(&t); i++)
		rt_tensor_set(&t, i, v[i]);
	return t;
}

/* rt_run, printing the error (as a "#" line) when it fails. */
static int run(rt_model *m, const char *fn, rt_tensor *in, int n, rt_state *s, rt_tensor **out, int *nout)
{
	int rc = rt_run(m, fn, in, n, s, out, nout);
	if (rc != 0)
		printf("# run failed: %s\n", errmsg());
	return rc;
}

/* Load t and run its main function once on in[0..nin): the outputs (for
 * rt_tensors_free(out, *nout)), or NULL after a failed check naming `what`.
 * The model is freed either way. */
static rt_tensor *load_run(tp *t, const char *what, rt_tensor *in, int nin, int *nout)
{
	rt_model *m = tp_load(t, NULL);
	CHECKF(m, "%s: %s", what, errmsg());
	rt_tensor *out = NULL;
	if (m && run(m, NULL, in, nin, NULL, &out, nout) != 0) {
		CHECKF(0, "%s failed", what);
		out = NULL;
	}
	rt_model_free(m);
	return out;
}

static void release_all(rt_tensor *t, int n)
{
	for (int i = 0; i < n; i++)
		rt_tensor_release(&t[i]);
}

static int shape_is(const rt_tensor *t, int rank, const int64_t *shape)
{
	if (t->rank != rank)
		return 0;
	for (int i = 0; i < rank; i++)
		if (t->shape[i] != shape[i])
			return 0;
	return 1;
}

/* Every value within tol (absolute) of want. */
#define CHECK_VALS(t, want, n, tol) check_vals(__LINE__, (t), (want), (n), (tol))
static void check_vals(int line, const rt_tensor *t, const float *want, size_t n, float tol)
{
	CHECKF(rt_tensor_numel(t) == n, "line %d: %zu values, expected %zu", line, rt_tensor_numel(t), n);
	for (size_t i = 0; i < n && i < rt_tensor_numel(t); i++) {
		float g = rt_tensor_get(t, i);
		int ok = (isnan(want[i]) && isnan(g)) || fabsf(g - want[i]) <= tol || g == want[i];
		CHECKF(ok, "line %d: [%zu] = %.9g, expected %.9g", line, i, g, want[i]);
		if (!ok)
			return;
	}
}

static float h(float x) { return fp16_to_f32(f32_to_fp16(x, NULL)); }

/* One-op program: inputs x (and y), output z; runs and checks z. */
static void unary_case(const char *type, int dt, int rank, const int64_t *shape, const float *x, const float *want,
		       float tol)
{
	tp t = tp_new("main");
	tp_input(&t, "x", dt, rank, shape);
	tp_op(&t, type, "z", dt, rank, shape, "x", "x", NULL);
	tp_output(&t, "z");
	rt_tensor in = T("x", dt, rank, shape, x), *out;
	int n;
	if ((out = load_run(&t, type, &in, 1, &n))) {
		CHECK_VALS(&out[0], want, rt_numel(rank, shape), tol);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

/* ------------------------------------------------------------------ */
/* Elementwise                                                         */

/* z = 2 * (a + b) * c with a [2,3], b [3], c [2,1]; ab = a + b. */
static tp broadcast_program(void)
{
	tp t = tp_new("main");
	tp_input(&t, "a", MIL_FP16, 2, SH(2, 3));
	tp_input(&t, "b", MIL_FP16, 1, SH(3));
	tp_input(&t, "c", MIL_FP16, 2, SH(2, 1));
	c_tensor(&t, "two", MIL_FP16, 0, NULL, FV(2));
	tp_op(&t, "add", "ab", MIL_FP16, 2, SH(2, 3), "x", "a", "y", "b", NULL);
	tp_op(&t, "mul", "abc", MIL_FP16, 2, SH(2, 3), "x", "ab", "y", "c", NULL);
	tp_op(&t, "mul", "z", MIL_FP32, 2, SH(2, 3), "x", "two", "y", "abc", NULL);
	return t;
}

static void test_broadcast_add_mul(void)
{
	tp t = broadcast_program();
	/* [2,1] + [2,3] is [2,3], but this op declares [2,2,3]: loading works, running refuses. */
	tp_op(&t, "add", "col", MIL_FP16, 3, SH(2, 2, 3), "x", "c", "y", "a", NULL);
	tp_output(&t, "z");
	rt_model *m = tp_load(&t, NULL);
	CHECKF(m, "%s", errmsg());
	if (!m)
		return;
	rt_tensor in[3] = {T("a", MIL_FP16, 2, SH(2, 3), FV(1, 2, 3, 4, 5, 6)), T("b", MIL_FP16, 1, SH(3), FV(10, 20, 30)),
			   T("c", MIL_FP16, 2, SH(2, 1), FV(1, -1))};
	rt_tensor *out;
	int n;
	CHECK(rt_run(m, NULL, in, 3, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "'col'") && strstr(errmsg(), "[2,3]") && strstr(errmsg(), "[2,2,3]"), "%s", errmsg());
	rt_model_free(m);

	t = broadcast_program();
	tp_output(&t, "z");
	tp_output(&t, "ab");
	if ((out = load_run(&t, "add_mul", in, 3, &n))) {
		CHECK_EQ_INT(n, 2);
		CHECK_STR(out[0].name, "z");
		CHECK_EQ_INT(out[0].dtype, MIL_FP32);
		CHECK(shape_is(&out[0], 2, SH(2, 3)));
		CHECK_VALS(&out[0], FV(22, 44, 66, -28, -50, -72), 6, 0);
		CHECK_STR(out[1].name, "ab");
		CHECK_VALS(&out[1], FV(11, 22, 33, 14, 25, 36), 6, 0);
		rt_tensors_free(out, n);
	}
	release_all(in, 3);
}

/* fp16 outputs are rounded to nearest even at every op boundary. */
static void test_fp16_rounding(void)
{
	tp t = tp_new("main");
	tp_input(&t, "a", MIL_FP16, 1, SH(4));
	tp_input(&t, "b", MIL_FP16, 1, SH(4));
	tp_op(&t, "add", "s", MIL_FP16, 1, SH(4), "x", "a", "y", "b", NULL);
	tp_op(&t, "sub", "d", MIL_FP16, 1, SH(4), "x", "s", "y", "a", NULL);
	tp_op(&t, "add", "s32", MIL_FP32, 1, SH(4), "x", "a", "y", "b", NULL);
	tp_output(&t, "s");
	tp_output(&t, "d");
	tp_output(&t, "s32");
	/* 1 + 2^-11 ties to 1; (1 + 2^-10) + 2^-11 ties up to 1 + 2^-9; 60000 + 10000 overflows. */
	rt_tensor in[2] = {T("a", MIL_FP16, 1, SH(4), FV(1, 1 + 0x1p-10f, 60000, -3)),
			   T("b", MIL_FP16, 1, SH(4), FV(0x1p-11f, 0x1p-11f, 10000, 0x1p-12f))};
	rt_tensor *out;
	int n;
	if ((out = load_run(&t, "add", in, 2, &n))) {
		const uint16_t *s = out[0].data;
		CHECK_EQ_INT(s[0], 0x3c00);
		CHECK_EQ_INT(s[1], 0x3c02);
		CHECK_EQ_INT(s[2], 0x7c00); /* inf, not clamped */
		CHECK_EQ_INT(s[3], f32_to_fp16(-3 + 0x1p-12f, NULL));
		/* (a + b) - a sees the rounded sum: 0 and 2^-10 instead of 2^-11. */
		CHECK_VALS(&out[1], FV(0, 0x1p-10f, INFINITY, 0), 4, 0);
		CHECK_VALS(&out[2], FV(1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 70000, -3 + 0x1p-12f), 4, 0);
		rt_tensors_free(out, n);
	}
	release_all(in, 2);
}

static void binary_case(const char *type, int dt, int odt, const float *x, const float *y, const float *want, size_t n)
{
	tp t = tp_new("main");
	tp_input(&t, "x", dt, 1, SH((int64_t)n));
	tp_input(&t, "y", dt, 1, SH((int64_t)n));
	tp_op(&t, type, "z", odt, 1, SH((int64_t)n), "x", "x", "y", "y", NULL);
	tp_output(&t, "z");
	rt_tensor in[2] = {T("x", dt, 1, SH((int64_t)n), x), T("y", dt, 1, SH((int64_t)n), y)}, *out;
	int k;
	if ((out = load_run(&t, type, in, 2, &k))) {
		CHECK_VALS(&out[0], want, n, 1e-3f);
		rt_tensors_free(out, k);
	}
	release_all(in, 2);
}

static void test_binary_ops(void)
{
	const float *x = FV(1, -2, 3, 0.5f), *y = FV(2, 2, -1, 0.5f);
	binary_case("sub", MIL_FP16, MIL_FP16, x, y, FV(-1, -4, 4, 0), 4);
	binary_case("real_div", MIL_FP16, MIL_FP16, x, y, FV(0.5f, -1, -3, 1), 4);
	binary_case("pow", MIL_FP32, MIL_FP32, FV(2, 3, 4, 9), FV(3, 2, 0.5f, 0.5f), FV(8, 9, 2, 3), 4);
	binary_case("maximum", MIL_FP16, MIL_FP16, x, y, FV(2, 2, 3, 0.5f), 4);
	binary_case("minimum", MIL_FP16, MIL_FP16, x, y, FV(1, -2, -1, 0.5f), 4);
	binary_case("less", MIL_FP16, MIL_BOOL, x, y, FV(1, 1, 0, 0), 4);
	binary_case("greater", MIL_FP16, MIL_BOOL, x, y, FV(0, 0, 1, 0), 4);
	binary_case("equal", MIL_FP16, MIL_BOOL, x, y, FV(0, 0, 0, 1), 4);
	binary_case("greater_equal", MIL_INT32, MIL_BOOL, FV(1, 2, 3, -4), FV(2, 2, 2, -5), FV(0, 1, 1, 1), 4);
	binary_case("logical_and", MIL_BOOL, MIL_BOOL, FV(1, 1, 0, 0), FV(1, 0, 1, 0), FV(1, 0, 0, 0), 4);
	binary_case("add", MIL_INT32, MIL_INT32, FV(1, -5, 7, 0), FV(2, 7, -7, 1024), FV(3, 2, 0, 1024), 4);
	/* mod and floor_div floor as numpy (np.mod, np.floor_divide, which
	 * coremltools' value inference uses): the remainder takes the divisor's
	 * sign; int32 stays exact (Gemma's ring slot current_pos mod W) */
	binary_case("mod", MIL_INT32, MIL_INT32, FV(7, -7, 7, -7), FV(3, 3, -3, -3), FV(1, 2, -2, -1), 4);
	binary_case("floor_div", MIL_INT32, MIL_INT32, FV(7, -7, 7, -7), FV(3, 3, -3, -3), FV(2, -3, -3, 2), 4);
	binary_case("mod", MIL_INT32, MIL_INT32, FV(0, 511, 512, 70000), FV(512, 512, 512, 512), FV(0, 511, 0, 368), 4);
	binary_case("mod", MIL_FP32, MIL_FP32, FV(5.5f, -5.5f, 5.5f, 6), FV(2, 2, -2, 3), FV(1.5f, 0.5f, -0.5f, 0), 4);
	binary_case("floor_div", MIL_FP16, MIL_FP16, FV(5.5f, -5.5f, 6, -0.5f), FV(2, 2, 3, 4), FV(2, -3, 2, -1), 4);
	/* int32 arithmetic is exact beyond 2^24 (where fp32 is not) */
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_INT32, 1, SH(2));
	c_i32s(&t, "y", 2, (int32_t[]){1, -3});
	tp_op(&t, "add", "z", MIL_INT32, 1, SH(2), "x", "x", "y", "y", NULL);
	tp_output(&t, "z");
	rt_tensor in = T("x", MIL_INT32, 1, SH(2), NULL), *out;
	int n;
	((int32_t *)in.data)[0] = 16777216;
	((int32_t *)in.data)[1] = 2000000001;
	if ((out = load_run(&t, "int32 add", &in, 1, &n))) {
		CHECK(((int32_t *)out[0].data)[0] == 16777217 && ((int32_t *)out[0].data)[1] == 1999999998);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

static void test_unary_ops(void)
{
	const int64_t *s = SH(4);
	const float *x = FV(-2, -0.5f, 0.25f, 3);
	float w[4];
	/* transcendental results may round either way of a double reference: 1 fp16 ulp */
	unary_case("rsqrt", MIL_FP16, 1, s, FV(2, 0.5f, 0.25f, 3), FV(0.70710678f, 1.41421356f, 2, 0.57735027f), 1e-3f);
	unary_case("sqrt", MIL_FP16, 1, s, FV(4, 2, 0.25f, 9), FV(2, 1.41421356f, 0.5f, 3), 1e-3f);
	for (int i = 0; i < 4; i++)
		w[i] = tanhf(x[i]);
	unary_case("tanh", MIL_FP16, 1, s, x, w, 2e-3f);
	for (int i = 0; i < 4; i++)
		w[i] = 1 / (1 + expf(-x[i]));
	unary_case("sigmoid", MIL_FP16, 1, s, x, w, 1e-3f);
	for (int i = 0; i < 4; i++)
		w[i] = x[i] / (1 + expf(-x[i]));
	unary_case("silu", MIL_FP16, 1, s, x, w, 2e-3f);
	unary_case("relu", MIL_FP16, 1, s, x, FV(0, 0, 0.25f, 3), 0);
	for (int i = 0; i < 4; i++)
		w[i] = expf(x[i]);
	unary_case("exp", MIL_FP16, 1, s, x, w, 2e-2f);
	unary_case("identity", MIL_FP16, 1, s, x, x, 0);
}

static void test_gelu_modes(void)
{
	const char *modes[] = {"EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION", NULL};
	const float x[5] = {-3, -1, 0, 0.5f, 2};
	for (int k = 0; k < 4; k++) {
		tp t = tp_new("main");
		tp_input(&t, "x", MIL_FP32, 1, SH(5));
		if (modes[k]) {
			c_str(&t, "mode", modes[k]);
			tp_op(&t, "gelu", "z", MIL_FP32, 1, SH(5), "x", "x", "mode", "mode", NULL);
		} else {
			tp_op(&t, "gelu", "z", MIL_FP32, 1, SH(5), "x", "x", NULL); /* default EXACT */
		}
		tp_output(&t, "z");
		float w[5];
		for (int i = 0; i < 5; i++) {
			double v = x[i];
			if (k == 1)
				w[i] = (float)(0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
			else if (k == 2)
				w[i] = (float)(v / (1 + exp(-1.702 * v)));
			else
				w[i] = (float)(0.5 * v * (1 + erf(v / sqrt(2))));
		}
		rt_tensor in = T("x", MIL_FP32, 1, SH(5), x), *out;
		int n;
		if ((out = load_run(&t, modes[k] ? modes[k] : "default mode", &in, 1, &n))) {
			CHECK_VALS(&out[0], w, 5, 1e-6f);
			rt_tensors_free(out, n);
		}
		rt_tensor_release(&in);
	}
	/* An unknown mode is a run-time error naming the op. */
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP32, 1, SH(5));
	c_str(&t, "mode", "FAST");
	tp_op(&t, "gelu", "z", MIL_FP32, 1, SH(5), "x", "x", "mode", "mode", NULL);
	tp_output(&t, "z");
	rt_model *m = tp_load(&t, NULL);
	rt_tensor in = T("x", MIL_FP32, 1, SH(5), x), *out;
	int n;
	CHECK(m && rt_run(m, NULL, &in, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "op 'z' (gelu)") && strstr(errmsg(), "FAST"), "%s", errmsg());
	rt_tensor_release(&in);
	rt_model_free(m);
}

static void test_select_clip_cast(void)
{
	tp t = tp_new("main");
	tp_input(&t, "c", MIL_BOOL, 2, SH(2, 1));
	tp_input(&t, "a", MIL_FP32, 1, SH(3));
	tp_input(&t, "b", MIL_FP32, 2, SH(2, 3));
	tp_op(&t, "select", "sel", MIL_FP32, 2, SH(2, 3), "cond", "c", "a", "a", "b", "b", NULL);
	c_f32(&t, "lo", -1);
	c_f32(&t, "hi", 2);
	tp_op(&t, "clip", "cl", MIL_FP32, 2, SH(2, 3), "x", "sel", "alpha", "lo", "beta", "hi", NULL);
	c_str(&t, "to_i32", "int32");
	c_str(&t, "to_i16", "int16");
	c_str(&t, "to_f16", "fp16");
	c_str(&t, "to_b", "bool");
	tp_input(&t, "f", MIL_FP32, 1, SH(7));
	tp_input(&t, "i", MIL_INT32, 1, SH(3));
	tp_op(&t, "cast", "fi", MIL_INT32, 1, SH(7), "x", "f", "dtype", "to_i32", NULL);
	tp_op(&t, "cast", "ii", MIL_INT16, 1, SH(3), "x", "i", "dtype", "to_i16", NULL);
	tp_op(&t, "cast", "fh", MIL_FP16, 1, SH(7), "x", "f", "dtype", "to_f16", NULL);
	tp_op(&t, "cast", "fb", MIL_BOOL, 1, SH(7), "x", "f", "dtype", "to_b", NULL);
	tp_op(&t, "cast", "ih", MIL_FP16, 1, SH(3), "x", "i", "dtype", "to_f16", NULL);
	const char *outs[] = {"sel", "cl", "fi", "ii", "fh", "fb", "ih"};
	for (int i = 0; i < 7; i++)
		tp_output(&t, outs[i]);
	rt_tensor in[5] = {T("c", MIL_BOOL, 2, SH(2, 1), FV(1, 0)), T("a", MIL_FP32, 1, SH(3), FV(-5, 1, 5)),
			   T("b", MIL_FP32, 2, SH(2, 3), FV(7, 8, 9, 0.5f, -0.5f, 10)),
			   T("f", MIL_FP32, 1, SH(7), FV(2.7f, -2.7f, 0.5f, -0.5f, 1e10f, NAN, 65520)),
			   T("i", MIL_INT32, 1, SH(3), FV(70000, -32769, 2049))};
	rt_tensor *out;
	int n;
	if ((out = load_run(&t, "select/clip/cast", in, 5, &n))) {
		CHECK_VALS(&out[0], FV(-5, 1, 5, 0.5f, -0.5f, 10), 6, 0);
		CHECK_VALS(&out[1], FV(-1, 1, 2, 0.5f, -0.5f, 2), 6, 0);
		/* fp -> int truncates toward zero, saturates, NaN -> 0 */
		const int32_t *fi = out[2].data;
		CHECK(fi[0] == 2 && fi[1] == -2 && fi[2] == 0 && fi[3] == 0 && fi[4] == INT32_MAX && fi[5] == 0 &&
		      fi[6] == 65520);
		/* int -> narrower int wraps like numpy astype */
		const int16_t *ii = out[3].data;
		CHECK(ii[0] == 4464 && ii[1] == 32767 && ii[2] == 2049);
		const uint16_t *fh = out[4].data;
		CHECK(fh[0] == f32_to_fp16(2.7f, NULL) && fh[4] == 0x7c00 && (fh[5] & 0x7c00) == 0x7c00 &&
		      (fh[5] & 0x3ff) && fh[6] == 0x7c00);
		CHECK_VALS(&out[5], FV(1, 1, 1, 1, 1, 1, 1), 7, 0);
		/* 2049 is not an fp16: nearest even is 2048 */
		CHECK_VALS(&out[6], FV(INFINITY, -32768, 2048), 3, 0);
		rt_tensors_free(out, n);
	}
	release_all(in, 5);
}

/* ------------------------------------------------------------------ */
/* Linear algebra                                                      */

static uint32_t g_rng = 12345;
static float frand(void)
{
	g_rng = g_rng * 1664525u + 1013904223u;
	return (float)((g_rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void fill_h(float *v, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		v[i] = h(frand() * scale);
}

/* conv x [1,Cin,H,W] with weight [Cout,Cin/g,kh,kw] in double, then fp16. */
static void conv_ref(const float *x, const float *w, const float *b, int Cin, int H, int W, int Cout, int g, int kh,
		     int kw, int sh, int sw, int ph, int pw, int dil, int OH, int OW, float *out)
{
	int cg = Cin / g, og = Cout / g;
	for (int o = 0; o < Cout; o++)
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				double acc = b ? b[o] : 0;
				for (int ci = 0; ci < cg; ci++)
					for (int a = 0; a < kh; a++)
						for (int c = 0; c < kw; c++) {
							int ih = oh * sh - ph + a * dil, iw = ow * sw - pw + c * dil;
							if (ih < 0 || ih >= H || iw < 0 || iw >= W)
								continue;
							acc += (double)w[((o * cg + ci) * kh + a) * kw + c] *
							       x[(((o / og) * cg + ci) * H + ih) * W + iw];
						}
				out[(o * OH + oh) * OW + ow] = h((float)acc);
			}
}

/* The largest difference in fp16 ulps (1 ulp where fp32 and double sums round apart). */
static int max_ulps(const rt_tensor *t, const float *want, size_t n)
{
	int worst = 0;
	for (size_t i = 0; i < n; i++) {
		int a = (int16_t)((const uint16_t *)t->data)[i], b = (int16_t)f32_to_fp16(want[i], NULL);
		a = a < 0 ? -(a & 0x7fff) : a;
		b = b < 0 ? -(b & 0x7fff) : b;
		worst = abs(a - b) > worst ? abs(a - b) : worst;
	}
	return worst;
}

static rt_tensor *run_conv(int Cin, int H, int W, int Cout, int g, int kh, int kw, const char *pad_type, int stride,
			   int dil, const int32_t *pad, int OH, int OW, const float *x, const float *w, const float *b,
			   int threads)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 4, SH(1, Cin, H, W));
	c_tensor(&t, "w", MIL_FP16, 4, SH(Cout, Cin / g, kh, kw), w);
	c_tensor(&t, "b", MIL_FP16, 1, SH(Cout), b);
	c_str(&t, "pt", pad_type);
	c_i32s(&t, "st", 2, (int32_t[]){stride, stride});
	c_i32s(&t, "dl", 2, (int32_t[]){dil, dil});
	c_i32s(&t, "pad", 4, pad);
	c_i32(&t, "g", g);
	tp_op(&t, "conv", "y", MIL_FP16, 4, SH(1, Cout, OH, OW), "x", "x", "weight", "w", "bias", "b", "pad_type", "pt",
	      "strides", "st", "dilations", "dl", "pad", "pad", "groups", "g", NULL);
	tp_output(&t, "y");
	rt_model *m = tp_load(&t, NULL);
	CHECKF(m, "%s", errmsg());
	if (!m)
		return NULL;
	rt_model_set_threads(m, threads);
	rt_tensor in = T("x", MIL_FP16, 4, SH(1, Cin, H, W), x), *out = NULL;
	int n;
	if (run(m, NULL, &in, 1, NULL, &out, &n) != 0)
		out = NULL;
	rt_tensor_release(&in);
	rt_model_free(m);
	return out;
}

static void test_conv(void)
{
	/* 1x1 (the fast path), big enough to be split over threads. */
	int Cin = 200, Cout = 100, P = 24;
	float *x = xmalloc(sizeof(float) * Cin * P), *w = xmalloc(sizeof(float) * Cin * Cout), b[100], *ref = xmalloc(sizeof(float) * Cout * P);
	fill_h(x, (size_t)Cin * P, 1);
	fill_h(w, (size_t)Cin * Cout, 0.2f);
	fill_h(b, 100, 1);
	const int32_t zero[4] = {0, 0, 0, 0};
	conv_ref(x, w, b, Cin, 1, P, Cout, 1, 1, 1, 1, 1, 0, 0, 1, 1, P, ref);
	rt_tensor *o1 = run_conv(Cin, 1, P, Cout, 1, 1, 1, "valid", 1, 1, zero, 1, P, x, w, b, 1);
	rt_tensor *o2 = run_conv(Cin, 1, P, Cout, 1, 1, 1, "valid", 1, 1, zero, 1, P, x, w, b, 2);
	if (o1 && o2) {
		int u = max_ulps(o1, ref, (size_t)Cout * P);
		CHECKF(u <= 1, "1x1 conv is %d fp16 ulps off the double reference", u);
		CHECK(memcmp(o1->data, o2->data, (size_t)Cout * P * 2) == 0); /* same bits for 1 and 2 threads */
	}
	rt_tensors_free(o1, 1);
	rt_tensors_free(o2, 1);
	/* 3x3, stride 2, "same" padding, 2 groups: the direct path. */
	float x2[4 * 5 * 6], w2[6 * 2 * 3 * 3], b2[6], r2[6 * 3 * 3];
	fill_h(x2, sizeof x2 / 4, 1);
	fill_h(w2, sizeof w2 / 4, 0.5f);
	fill_h(b2, 6, 1);
	/* same: out = ceil(5/2) = 3, ceil(6/2) = 3; total pad H = (3-1)*2+3-5 = 2 -> 1 before; W = 1 -> 0 before */
	conv_ref(x2, w2, b2, 4, 5, 6, 6, 2, 3, 3, 2, 2, 1, 0, 1, 3, 3, r2);
	rt_tensor *o3 = run_conv(4, 5, 6, 6, 2, 3, 3, "same", 2, 1, zero, 3, 3, x2, w2, b2, 1);
	if (o3) {
		int u = max_ulps(o3, r2, sizeof r2 / 4);
		CHECKF(u <= 1, "3x3 conv is %d ulps off", u);
	}
	rt_tensors_free(o3, 1);
	/* dilation 2 with custom padding (top 2, bottom 1, left 0, right 3):
	 * effective kernel 5; out H = (5+3-5)/1+1 = 4, W = (6+3-5)/1+1 = 5 */
	float r4[6 * 4 * 5];
	conv_ref(x2, w2, b2, 4, 5, 6, 6, 2, 3, 3, 1, 1, 2, 0, 2, 4, 5, r4);
	rt_tensor *o4 = run_conv(4, 5, 6, 6, 2, 3, 3, "custom", 1, 2, (int32_t[]){2, 1, 0, 3}, 4, 5, x2, w2, b2, 1);
	if (o4) {
		int u = max_ulps(o4, r4, sizeof r4 / 4);
		CHECKF(u <= 1, "dilated conv is %d ulps off", u);
	}
	rt_tensors_free(o4, 1);
	free(x);
	free(w);
	free(ref);
}

static void test_linear(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 3, SH(1, 2, 3));
	c_tensor(&t, "w", MIL_FP16, 2, SH(4, 3), FV(1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1));
	c_tensor(&t, "b", MIL_FP16, 1, SH(4), FV(0.5f, 0, 0, -1));
	tp_op(&t, "linear", "y", MIL_FP16, 3, SH(1, 2, 4), "x", "x", "weight", "w", "bias", "b", NULL);
	tp_op(&t, "linear", "y2", MIL_FP16, 3, SH(1, 2, 4), "x", "x", "weight", "w", NULL);
	tp_output(&t, "y");
	tp_output(&t, "y2");
	rt_tensor in = T("x", MIL_FP16, 3, SH(1, 2, 3), FV(1, 2, 3, -4, 5, 6)), *out;
	int n;
	if ((out = load_run(&t, "linear", &in, 1, &n))) {
		CHECK_VALS(&out[0], FV(1.5f, 2, 3, 5, -3.5f, 5, 6, 6), 8, 0);
		CHECK_VALS(&out[1], FV(1, 2, 3, 6, -4, 5, 6, 7), 8, 0);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

/* matmul with transposes and broadcast batch dims against a naive loop. */
static void matmul_case(int tx, int ty, int xr, const int64_t *xs, int yr, const int64_t *ys, int orank,
			const int64_t *os)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP32, xr, xs);
	tp_input(&t, "y", MIL_FP32, yr, ys);
	c_bool(&t, "tx", tx);
	c_bool(&t, "ty", ty);
	tp_op(&t, "matmul", "z", MIL_FP32, orank, os, "x", "x", "y", "y", "transpose_x", "tx", "transpose_y", "ty",
	      NULL);
	tp_output(&t, "z");
	size_t nx = rt_numel(xr, xs), ny = rt_numel(yr, ys), no = rt_numel(orank, os);
	float *xv = xmalloc(nx * 4), *yv = xmalloc(ny * 4), *want = xcalloc(no, 4);
	fill_h(xv, nx, 1);
	fill_h(yv, ny, 1);
	/* naive: views as [B, M, K] x [B, K, N] with broadcast of rank-3 shapes only */
	int64_t M = xr == 1 ? 1 : tx ? xs[xr - 1] : xs[xr - 2], K = xr == 1 ? xs[0] : tx ? xs[xr - 2] : xs[xr - 1];
	int64_t N = ty ? ys[yr - 2] : ys[yr - 1];
	size_t B = no / (size_t)(M * N), bx = nx / (size_t)(M * K), by = ny / (size_t)(K * N);
	for (size_t b = 0; b < B; b++)
		for (int64_t i = 0; i < M; i++)
			for (int64_t j = 0; j < N; j++) {
				double acc = 0;
				for (int64_t k = 0; k < K; k++) {
					size_t xo = (b % bx) * (size_t)(M * K), yo = (b % by) * (size_t)(K * N);
					float a = tx ? xv[xo + (size_t)(k * M + i)] : xv[xo + (size_t)(i * K + k)];
					float c = ty ? yv[yo + (size_t)(j * K + k)] : yv[yo + (size_t)(k * N + j)];
					acc += (double)a * c;
				}
				want[b * (size_t)(M * N) + (size_t)(i * N + j)] = (float)acc;
			}
	rt_tensor in[2] = {T("x", MIL_FP32, xr, xs, xv), T("y", MIL_FP32, yr, ys, yv)}, *out;
	int n;
	if ((out = load_run(&t, "matmul", in, 2, &n))) {
		CHECK(shape_is(&out[0], orank, os));
		CHECK_VALS(&out[0], want, no, 1e-4f);
		rt_tensors_free(out, n);
	}
	release_all(in, 2);
	free(xv);
	free(yv);
	free(want);
}

static void test_matmul(void)
{
	matmul_case(0, 0, 2, SH(3, 4), 2, SH(4, 5), 2, SH(3, 5));
	matmul_case(1, 0, 2, SH(4, 3), 2, SH(4, 5), 2, SH(3, 5));
	matmul_case(0, 1, 3, SH(2, 3, 4), 3, SH(2, 5, 4), 3, SH(2, 3, 5));
	matmul_case(1, 1, 3, SH(2, 4, 3), 2, SH(5, 4), 3, SH(2, 3, 5)); /* y broadcast over the batch */
	matmul_case(0, 1, 4, SH(1, 2, 3, 20), 4, SH(1, 2, 17, 20), 4, SH(1, 2, 3, 17));
	matmul_case(0, 0, 1, SH(4), 2, SH(4, 5), 1, SH(5)); /* rank-1 x */
}

static void test_sdpa(void)
{
	tp t = tp_new("main");
	tp_input(&t, "q", MIL_FP32, 3, SH(2, 3, 4));
	tp_input(&t, "k", MIL_FP32, 3, SH(2, 5, 4));
	tp_input(&t, "v", MIL_FP32, 3, SH(2, 5, 2));
	tp_input(&t, "mask", MIL_BOOL, 2, SH(3, 5));
	tp_op(&t, "scaled_dot_product_attention", "o", MIL_FP32, 3, SH(2, 3, 2), "query", "q", "key", "k", "value", "v",
	      "attn_mask", "mask", NULL);
	tp_output(&t, "o");
	float q[24], k[40], v[20], mk[15], want[12];
	fill_h(q, 24, 1);
	fill_h(k, 40, 1);
	fill_h(v, 20, 1);
	for (int l = 0; l < 3; l++)
		for (int s = 0; s < 5; s++)
			mk[l * 5 + s] = s <= l + 2;
	for (int b = 0; b < 2; b++)
		for (int l = 0; l < 3; l++) {
			double sc[5], mx = -1e30, sum = 0;
			for (int s = 0; s < 5; s++) {
				double d = 0;
				for (int e = 0; e < 4; e++)
					d += (double)q[(b * 3 + l) * 4 + e] * k[(b * 5 + s) * 4 + e];
				sc[s] = mk[l * 5 + s] ? d / 2 : -INFINITY;
				mx = sc[s] > mx ? sc[s] : mx;
			}
			for (int s = 0; s < 5; s++)
				sum += (sc[s] = exp(sc[s] - mx));
			for (int e = 0; e < 2; e++) {
				double acc = 0;
				for (int s = 0; s < 5; s++)
					acc += sc[s] / sum * v[(b * 5 + s) * 2 + e];
				want[(b * 3 + l) * 2 + e] = (float)acc;
			}
		}
	rt_tensor in[4] = {T("q", MIL_FP32, 3, SH(2, 3, 4), q), T("k", MIL_FP32, 3, SH(2, 5, 4), k),
			   T("v", MIL_FP32, 3, SH(2, 5, 2), v), T("mask", MIL_BOOL, 2, SH(3, 5), mk)};
	rt_tensor *out;
	int n;
	if ((out = load_run(&t, "sdpa", in, 4, &n))) {
		CHECK_VALS(&out[0], want, 12, 1e-5f);
		rt_tensors_free(out, n);
	}
	release_all(in, 4);
}

/* ------------------------------------------------------------------ */
/* Normalisation and reductions                                        */

static void test_layer_norm_softmax(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP32, 2, SH(2, 4));
	c_i32s(&t, "ax", 1, (int32_t[]){-1});
	c_i32s(&t, "ax0", 1, (int32_t[]){0});
	c_tensor(&t, "g", MIL_FP32, 1, SH(4), FV(1, 2, 3, 4));
	c_tensor(&t, "b", MIL_FP32, 1, SH(4), FV(0, 1, 0, -1));
	c_f32(&t, "eps", 0.5f);
	tp_op(&t, "layer_norm", "ln", MIL_FP32, 2, SH(2, 4), "x", "x", "axes", "ax", "gamma", "g", "beta", "b", "epsilon",
	      "eps", NULL);
	tp_op(&t, "layer_norm", "ln0", MIL_FP32, 2, SH(2, 4), "x", "x", "axes", "ax", NULL);
	c_i32(&t, "m1", -1);
	c_i32(&t, "z0", 0);
	tp_op(&t, "softmax", "sm", MIL_FP32, 2, SH(2, 4), "x", "x", "axis", "m1", NULL);
	tp_op(&t, "softmax", "sm0", MIL_FP32, 2, SH(2, 4), "x", "x", "axis", "z0", NULL);
	tp_output(&t, "ln");
	tp_output(&t, "ln0");
	tp_output(&t, "sm");
	tp_output(&t, "sm0");
	const float x[8] = {1, 2, 3, 4, -1, 0, 0, 5};
	float ln[8], ln0[8], sm[8], sm0[8];
	for (int r = 0; r < 2; r++) {
		double mean = 0, var = 0, mx = -1e9, sum = 0;
		for (int i = 0; i < 4; i++)
			mean += x[r * 4 + i] / 4.0;
		for (int i = 0; i < 4; i++)
			var += (x[r * 4 + i] - mean) * (x[r * 4 + i] - mean) / 4.0;
		for (int i = 0; i < 4; i++) {
			double nrm = (x[r * 4 + i] - mean) / sqrt(var + 0.5);
			ln[r * 4 + i] = (float)(nrm * (i + 1) + (i == 1 ? 1 : i == 3 ? -1 : 0));
			ln0[r * 4 + i] = (float)((x[r * 4 + i] - mean) / sqrt(var + 1e-5));
			mx = x[r * 4 + i] > mx ? x[r * 4 + i] : mx;
		}
		for (int i = 0; i < 4; i++)
			sum += exp(x[r * 4 + i] - mx);
		for (int i = 0; i < 4; i++)
			sm[r * 4 + i] = (float)(exp(x[r * 4 + i] - mx) / sum);
	}
	for (int c = 0; c < 4; c++) {
		double a = exp(x[c]), b = exp(x[4 + c]);
		sm0[c] = (float)(a / (a + b));
		sm0[4 + c] = (float)(b / (a + b));
	}
	rt_tensor in = T("x", MIL_FP32, 2, SH(2, 4), x), *out;
	int n;
	if ((out = load_run(&t, "layer_norm/softmax", &in, 1, &n))) {
		CHECK_VALS(&out[0], ln, 8, 1e-5f);
		CHECK_VALS(&out[1], ln0, 8, 1e-5f);
		CHECK_VALS(&out[2], sm, 8, 1e-6f);
		CHECK_VALS(&out[3], sm0, 8, 1e-6f);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

static void test_reductions(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 3, SH(2, 3, 2));
	c_i32s(&t, "a02", 2, (int32_t[]){0, 2});
	c_i32s(&t, "am1", 1, (int32_t[]){-1});
	c_i32s(&t, "a1", 1, (int32_t[]){1});
	c_bool(&t, "keep", 1);
	c_bool(&t, "nokeep", 0);
	c_i32(&t, "axis1", 1);
	tp_op(&t, "reduce_sum", "s02", MIL_FP16, 3, SH(1, 3, 1), "x", "x", "axes", "a02", "keep_dims", "keep", NULL);
	tp_op(&t, "reduce_mean", "mean", MIL_FP16, 2, SH(2, 3), "x", "x", "axes", "am1", "keep_dims", "nokeep", NULL);
	tp_op(&t, "reduce_max", "max", MIL_FP16, 3, SH(2, 1, 2), "x", "x", "axes", "a1", "keep_dims", "keep", NULL);
	tp_op(&t, "reduce_sum", "all", MIL_FP32, 0, NULL, "x", "x", NULL);
	tp_op(&t, "reduce_argmax", "am", MIL_INT32, 2, SH(2, 2), "x", "x", "axis", "axis1", NULL);
	const char *o[] = {"s02", "mean", "max", "all", "am"};
	for (int i = 0; i < 5; i++)
		tp_output(&t, o[i]);
	/* x[i][j][k] */
	const float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -11, 12};
	rt_tensor in = T("x", MIL_FP16, 3, SH(2, 3, 2), x), *out;
	int n;
	if ((out = load_run(&t, "reductions", &in, 1, &n))) {
		CHECK(shape_is(&out[0], 3, SH(1, 3, 1)));
		CHECK_VALS(&out[0], FV(1 + 2 + 7 + 8, 3 + 4 + 9 + 10, 5 + 6 - 11 + 12), 3, 0);
		CHECK_VALS(&out[1], FV(1.5f, 3.5f, 5.5f, 7.5f, 9.5f, 0.5f), 6, 0);
		CHECK_VALS(&out[2], FV(5, 6, 9, 12), 4, 0);
		CHECK(out[3].rank == 0);
		CHECK_VALS(&out[3], FV(56), 1, 0);
		CHECK_VALS(&out[4], FV(2, 2, 1, 2), 4, 0);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

static void test_topk(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP32, 2, SH(2, 4));
	c_i32(&t, "k", 2);
	mil_op *op = tp_op(&t, "topk", "vals", MIL_FP32, 2, SH(2, 2), "x", "x", "k", "k", NULL);
	mil_op_add_output(op, "idx", ty(&t, MIL_INT32, 2, SH(2, 2)));
	tp_output(&t, "vals");
	tp_output(&t, "idx");
	rt_tensor in = T("x", MIL_FP32, 2, SH(2, 4), FV(1, 5, 3, 5, -1, -2, 0, -3)), *out;
	int n;
	if ((out = load_run(&t, "topk", &in, 1, &n))) {
		CHECK_VALS(&out[0], FV(5, 5, 0, -1), 4, 0);
		CHECK_VALS(&out[1], FV(1, 3, 2, 0), 4, 0); /* ties: lower index first */
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

/* ------------------------------------------------------------------ */
/* Shape and indexing                                                  */

static float g_iota[64];

static void iota_init(void)
{
	for (int i = 0; i < 64; i++)
		g_iota[i] = (float)i;
}

/* slice_by_index of iota [4,5] (int32), optional params given as consts. */
static void slice_case(const int32_t *b, const int32_t *e, const int32_t *st, const uint8_t *bm, const uint8_t *em,
		       const uint8_t *sq, int orank, const int64_t *os, const float *want)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_INT32, 2, SH(4, 5));
	c_i32s(&t, "b", 2, b);
	c_i32s(&t, "e", 2, e);
	mil_op *op = tp_op(&t, "slice_by_index", "z", MIL_INT32, orank, os, "x", "x", "begin", "b", "end", "e", NULL);
	if (st) {
		c_i32s(&t, "st", 2, st);
		mil_op_bind(op, "stride", "st");
	}
	const uint8_t *masks[3] = {bm, em, sq};
	const char *names[3] = {"begin_mask", "end_mask", "squeeze_mask"};
	for (int i = 0; i < 3; i++)
		if (masks[i]) {
			c_bools(&t, names[i], 2, masks[i]);
			mil_op_bind(op, names[i], names[i]);
		}
	/* consts must come before the op: move the op to the end */
	mil_block *blk = t.b;
	for (size_t i = 0; i + 1 < blk->nops; i++)
		if (blk->ops[i] == op) {
			memmove(&blk->ops[i], &blk->ops[i + 1], (blk->nops - i - 1) * sizeof *blk->ops);
			blk->ops[blk->nops - 1] = op;
			break;
		}
	tp_output(&t, "z");
	rt_tensor in = T("x", MIL_INT32, 2, SH(4, 5), g_iota), *out;
	int n;
	if ((out = load_run(&t, "slice_by_index", &in, 1, &n))) {
		CHECK(shape_is(&out[0], orank, os));
		CHECK_VALS(&out[0], want, rt_numel(orank, os), 0);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

static void test_slice_by_index(void)
{
	iota_init();
	/* x[1:-1, ::2] */
	slice_case((int32_t[]){1, 0}, (int32_t[]){-1, 0}, (int32_t[]){1, 2}, NULL, (uint8_t[]){0, 1}, NULL, 2, SH(2, 3),
		   FV(5, 7, 9, 10, 12, 14));
	/* x[::-1, 3] (squeeze) */
	slice_case((int32_t[]){0, 3}, (int32_t[]){0, 0}, (int32_t[]){-1, 1}, (uint8_t[]){1, 0}, (uint8_t[]){1, 0},
		   (uint8_t[]){0, 1}, 1, SH(4), FV(18, 13, 8, 3));
	/* x[-1:, 1:100] (end beyond the dim is clamped); ANEMLL's begin 3 / end 1 with end_mask */
	slice_case((int32_t[]){-1, 1}, (int32_t[]){1, 100}, NULL, NULL, (uint8_t[]){1, 0}, NULL, 2, SH(1, 4),
		   FV(16, 17, 18, 19));
	/* x[3:0:-2, -2:] */
	slice_case((int32_t[]){3, -2}, (int32_t[]){0, 0}, (int32_t[]){-2, 1}, NULL, (uint8_t[]){0, 1}, NULL, 2, SH(2, 2),
		   FV(18, 19, 8, 9));
	/* empty: x[2:1, :] */
	slice_case((int32_t[]){2, 0}, (int32_t[]){1, 5}, NULL, NULL, NULL, NULL, 2, SH(0, 5), FV(0));
}

/* slice_update of a [2,3,4] fp16 tensor at runtime positions, and the
 * squeezed form. */
static void test_slice_update(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 3, SH(2, 3, 4));
	tp_input(&t, "u", MIL_FP16, 3, SH(1, 3, 2));
	tp_input(&t, "pos", MIL_INT32, 1, SH(1));
	tp_input(&t, "u2", MIL_FP16, 1, SH(4));
	c_i32s(&t, "one", 1, (int32_t[]){1});
	c_i32s(&t, "zero", 1, (int32_t[]){0});
	c_i32(&t, "ax", 0);
	c_bool(&t, "no", 0);
	tp_op(&t, "add", "pos1", MIL_INT32, 1, SH(1), "x", "pos", "y", "one", NULL);
	/* begin = [1, 0, pos], end = [2, 0, pos + 2], end_mask = [0, 1, 0] */
	tp_op(&t, "concat", "b", MIL_INT32, 1, SH(3), "values", "one", "values", "zero", "values", "pos", "axis", "ax",
	      "interleave", "no", NULL);
	c_i32s(&t, "two", 1, (int32_t[]){2});
	tp_op(&t, "add", "pe", MIL_INT32, 1, SH(1), "x", "pos1", "y", "one", NULL);
	tp_op(&t, "concat", "e", MIL_INT32, 1, SH(3), "values", "two", "values", "zero", "values", "pe", "axis", "ax",
	      "interleave", "no", NULL);
	c_bools(&t, "em", 3, (uint8_t[]){0, 1, 0});
	tp_op(&t, "slice_update", "y", MIL_FP16, 3, SH(2, 3, 4), "x", "x", "update", "u", "begin", "b", "end", "e",
	      "end_mask", "em", NULL);
	/* y[0, 2, :] = u2 via squeeze_mask */
	c_i32s(&t, "b2", 3, (int32_t[]){0, 2, 0});
	c_i32s(&t, "e2", 3, (int32_t[]){1, 3, 4});
	c_bools(&t, "sq", 3, (uint8_t[]){1, 1, 0});
	tp_op(&t, "slice_update", "y2", MIL_FP16, 3, SH(2, 3, 4), "x", "y", "update", "u2", "begin", "b2", "end", "e2",
	      "squeeze_mask", "sq", NULL);
	tp_output(&t, "y2");
	tp_output(&t, "y");
	rt_tensor in[4] = {T("x", MIL_FP16, 3, SH(2, 3, 4), NULL), T("u", MIL_FP16, 3, SH(1, 3, 2), FV(1, 2, 3, 4, 5, 6)),
			   T("pos", MIL_INT32, 1, SH(1), FV(1)), T("u2", MIL_FP16, 1, SH(4), FV(7, 8, 9, 10))};
	rt_tensor *out;
	int n;
	if ((out = load_run(&t, "slice_update", in, 4, &n))) {
		float want[24] = {0}, want2[24];
		want[12 + 1] = 1, want[12 + 2] = 2, want[16 + 1] = 3, want[16 + 2] = 4, want[20 + 1] = 5, want[20 + 2] = 6;
		memcpy(want2, want, sizeof want);
		want2[8] = 7, want2[9] = 8, want2[10] = 9, want2[11] = 10;
		CHECK_VALS(&out[0], want2, 24, 0);
		CHECK_VALS(&out[1], want, 24, 0); /* y is still alive: y2 must not have changed it */
		rt_tensors_free(out, n);
	}
	/* The input itself is never modified. */
	for (size_t i = 0; i < 24; i++)
		CHECK(rt_tensor_get(&in[0], i) == 0);
	release_all(in, 4);
}

static void test_gather(void)
{
	iota_init();
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 2, SH(3, 4));
	tp_input(&t, "i", MIL_INT32, 1, SH(2));
	tp_input(&t, "j", MIL_INT16, 2, SH(3, 2));
	c_i32(&t, "ax0", 0);
	c_i32(&t, "ax1", 1);
	c_i32(&t, "bd1", 1);
	tp_op(&t, "gather", "g0", MIL_FP16, 2, SH(2, 4), "x", "x", "indices", "i", "axis", "ax0", NULL);
	tp_op(&t, "gather", "g1", MIL_FP16, 3, SH(3, 3, 2), "x", "x", "indices", "j", "axis", "ax1", NULL);
	tp_op(&t, "gather", "gb", MIL_FP16, 2, SH(3, 2), "x", "x", "indices", "j", "axis", "ax1", "batch_dims", "bd1",
	      NULL);
	tp_op(&t, "gather_along_axis", "ga", MIL_FP16, 2, SH(3, 2), "x", "x", "indices", "j", "axis", "ax1", NULL);
	tp_output(&t, "g0");
	tp_output(&t, "g1");
	tp_output(&t, "gb");
	tp_output(&t, "ga");
	rt_model *m = tp_load(&t, NULL);
	CHECKF(m, "%s", errmsg());
	if (!m)
		return;
	rt_tensor in[3] = {T("x", MIL_FP16, 2, SH(3, 4), g_iota), T("i", MIL_INT32, 1, SH(2), FV(2, -3)),
			   T("j", MIL_INT16, 2, SH(3, 2), FV(0, -1, 3, 2, 1, 1))};
	rt_tensor *out;
	int n;
	if (run(m, NULL, in, 3, NULL, &out, &n) == 0) {
		CHECK_VALS(&out[0], FV(8, 9, 10, 11, 0, 1, 2, 3), 8, 0);
		CHECK_VALS(&out[1], FV(0, 3, 3, 2, 1, 1, 4, 7, 7, 6, 5, 5, 8, 11, 11, 10, 9, 9), 18, 0);
		CHECK_VALS(&out[2], FV(0, 3, 7, 6, 9, 9), 6, 0);
		CHECK_VALS(&out[3], FV(0, 3, 7, 6, 9, 9), 6, 0);
		rt_tensors_free(out, n);
	}
	/* out of range: an error naming the op, never a stray read */
	rt_tensor_set(&in[1], 0, 3);
	CHECK(rt_run(m, NULL, in, 3, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "op 'g0' (gather)") && strstr(errmsg(), "out of range"), "%s", errmsg());
	release_all(in, 3);
	rt_model_free(m);
}

static void test_concat_split_tile_transpose(void)
{
	iota_init();
	tp t = tp_new("main");
	tp_input(&t, "a", MIL_FP16, 2, SH(2, 2));
	tp_input(&t, "b", MIL_FP16, 2, SH(2, 3));
	c_i32(&t, "ax1", 1);
	c_i32(&t, "axm1", -1);
	c_bool(&t, "yes", 1);
	tp_op(&t, "concat", "cat", MIL_FP16, 2, SH(2, 5), "values", "a", "values", "b", "axis", "ax1", NULL);
	tp_op(&t, "concat", "il", MIL_FP16, 2, SH(2, 4), "values", "a", "values", "a", "axis", "axm1", "interleave",
	      "yes", NULL);
	c_i32s(&t, "sizes", 2, (int32_t[]){1, 4});
	mil_op *sp = tp_op(&t, "split", "s0", MIL_FP16, 2, SH(2, 1), "x", "cat", "split_sizes", "sizes", "axis", "ax1", NULL);
	mil_op_add_output(sp, "s1", ty(&t, MIL_FP16, 2, SH(2, 4)));
	c_i32(&t, "two", 2);
	mil_op *sp2 = tp_op(&t, "split", "h0", MIL_FP16, 2, SH(2, 2), "x", "il", "num_splits", "two", "axis", "ax1", NULL);
	mil_op_add_output(sp2, "h1", ty(&t, MIL_FP16, 2, SH(2, 2)));
	c_i32s(&t, "reps", 2, (int32_t[]){2, 2});
	tp_op(&t, "tile", "tl", MIL_FP16, 2, SH(4, 4), "x", "a", "reps", "reps", NULL);
	c_i32s(&t, "perm", 2, (int32_t[]){1, 0});
	tp_op(&t, "transpose", "tr", MIL_FP16, 2, SH(3, 2), "x", "b", "perm", "perm", NULL);
	const char *o[] = {"cat", "il", "s0", "s1", "h0", "h1", "tl", "tr"};
	for (int i = 0; i < 8; i++)
		tp_output(&t, o[i]);
	rt_tensor in[2] = {T("a", MIL_FP16, 2, SH(2, 2), FV(1, 2, 3, 4)), T("b", MIL_FP16, 2, SH(2, 3), g_iota)}, *out;
	int n;
	if ((out = load_run(&t, "concat/split/tile/transpose", in, 2, &n))) {
		CHECK_VALS(&out[0], FV(1, 2, 0, 1, 2, 3, 4, 3, 4, 5), 10, 0);
		CHECK_VALS(&out[1], FV(1, 1, 2, 2, 3, 3, 4, 4), 8, 0);
		CHECK_VALS(&out[2], FV(1, 3), 2, 0);
		CHECK_VALS(&out[3], FV(2, 0, 1, 2, 4, 3, 4, 5), 8, 0);
		CHECK_VALS(&out[4], FV(1, 1, 3, 3), 4, 0);
		CHECK_VALS(&out[5], FV(2, 2, 4, 4), 4, 0);
		CHECK_VALS(&out[6], FV(1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4), 16, 0);
		CHECK_VALS(&out[7], FV(0, 3, 1, 4, 2, 5), 6, 0);
		rt_tensors_free(out, n);
	}
	release_all(in, 2);
}

/* x [2,3,4] reshaped, expanded and squeezed back to [4,6] (q, qall) and r1
 * [2,6,2]; with bad_reshape also r3, a reshape of 24 values to [5,-1]. */
static tp reshape_program(int bad_reshape)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 3, SH(2, 3, 4));
	c_i32s(&t, "s1", 3, (int32_t[]){0, -1, 2});
	c_i32s(&t, "s2", 2, (int32_t[]){-1, 6});
	c_i32s(&t, "ax", 2, (int32_t[]){0, -1});
	c_i32s(&t, "sq", 3, (int32_t[]){0, 1, -1});
	tp_op(&t, "reshape", "r1", MIL_FP16, 3, SH(2, 6, 2), "x", "x", "shape", "s1", NULL);
	tp_op(&t, "reshape", "r2", MIL_FP16, 2, SH(4, 6), "x", "r1", "shape", "s2", NULL);
	tp_op(&t, "expand_dims", "e", MIL_FP16, 4, SH(1, 4, 6, 1), "x", "r2", "axes", "ax", NULL);
	tp_op(&t, "squeeze", "q", MIL_FP16, 2, SH(4, 6), "x", "e", "axes", "sq", NULL); /* axis 1 (size 4) stays */
	tp_op(&t, "squeeze", "qall", MIL_FP16, 2, SH(4, 6), "x", "e", NULL);
	if (bad_reshape) {
		c_i32s(&t, "bad", 2, (int32_t[]){5, -1});
		tp_op(&t, "reshape", "r3", MIL_FP16, 2, SH(5, 5), "x", "x", "shape", "bad", NULL);
	}
	tp_output(&t, "q");
	tp_output(&t, "qall");
	tp_output(&t, "r1");
	return t;
}

static void test_reshape_expand_squeeze(void)
{
	tp t = reshape_program(1);
	rt_model *m = tp_load(&t, NULL);
	CHECKF(m, "%s", errmsg());
	if (!m)
		return;
	iota_init();
	rt_tensor in = T("x", MIL_FP16, 3, SH(2, 3, 4), g_iota), *out;
	int n;
	/* r3 cannot infer its -1 (24 is not a multiple of 5): the run fails, naming it */
	CHECK(rt_run(m, NULL, &in, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "'r3' (reshape)"), "%s", errmsg());
	rt_model_free(m);

	t = reshape_program(0);
	if ((out = load_run(&t, "reshape", &in, 1, &n))) {
		CHECK(shape_is(&out[0], 2, SH(4, 6)));
		CHECK(shape_is(&out[2], 3, SH(2, 6, 2)));
		CHECK_VALS(&out[0], g_iota, 24, 0);
		CHECK_VALS(&out[1], g_iota, 24, 0);
		CHECK_VALS(&out[2], g_iota, 24, 0);
		rt_tensors_free(out, n);
	}
	rt_tensor_release(&in);
}

static void test_misc_generators(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 2, SH(3, 3));
	tp_input(&t, "n", MIL_INT32, 0, NULL);
	c_i32(&t, "lo", -1);
	c_i32(&t, "up", 0);
	tp_op(&t, "band_part", "bp", MIL_FP16, 2, SH(3, 3), "x", "x", "lower", "lo", "upper", "up", NULL);
	c_i32s(&t, "shape", 2, (int32_t[]){2, 2});
	c_tensor(&t, "val", MIL_FP16, 0, NULL, FV(-2.5f));
	tp_op(&t, "fill", "fl", MIL_FP16, 2, SH(2, 2), "shape", "shape", "value", "val", NULL);
	c_i32(&t, "start", 1);
	c_i32(&t, "step", 3);
	tp_op(&t, "range_1d", "rg", MIL_INT32, 1, SH(-1), "end", "n", "start", "start", "step", "step", NULL);
	c_i32s(&t, "b", 2, (int32_t[]){1, -2});
	c_i32s(&t, "sz", 2, (int32_t[]){-1, 2});
	tp_op(&t, "slice_by_size", "sbs", MIL_FP16, 2, SH(2, 2), "x", "x", "begin", "b", "size", "sz", NULL);
	tp_output(&t, "bp");
	tp_output(&t, "fl");
	tp_output(&t, "rg");
	tp_output(&t, "sbs");
	iota_init();
	rt_tensor in[2] = {T("x", MIL_FP16, 2, SH(3, 3), g_iota), T("n", MIL_INT32, 0, NULL, FV(11))}, *out;
	int n;
	if ((out = load_run(&t, "generators", in, 2, &n))) {
		CHECK_VALS(&out[0], FV(0, 0, 0, 3, 4, 0, 6, 7, 8), 9, 0);
		CHECK_VALS(&out[1], FV(-2.5f, -2.5f, -2.5f, -2.5f), 4, 0);
		CHECK(shape_is(&out[2], 1, SH(4)));
		CHECK_VALS(&out[2], FV(1, 4, 7, 10), 4, 0);
		CHECK_VALS(&out[3], FV(4, 5, 7, 8), 4, 0);
		rt_tensors_free(out, n);
	}
	release_all(in, 2);
}

/* ------------------------------------------------------------------ */
/* Palettized constants                                                */

static char *scratch(const char *name) { return path_join(g_dir, name); }

/* constexpr_lut_to_dense from blobs: uint4 per tensor (rank-4 lut for a
 * [4, 3] weight) and uint6 grouped (rank-6 lut [2,1,1,1,64,1] for a
 * [4, 3, 1, 1] weight), in two functions sharing the blobs. */
static void test_lut_to_dense(void)
{
	char *path = scratch("lut_weight.bin");
	blob_writer *bw = blob_writer_open(path);
	CHECKF(bw, "%s", errmsg());
	if (!bw) {
		free(path);
		return;
	}
	uint8_t i4[12], i6[12];
	uint16_t l4[16], l6[128];
	for (int i = 0; i < 12; i++) {
		i4[i] = (uint8_t)((i * 7) % 16);
		i6[i] = (uint8_t)((i * 37 + 5) % 64);
	}
	for (int i = 0; i < 16; i++)
		l4[i] = f32_to_fp16((float)i * 0.25f - 2, NULL);
	for (int i = 0; i < 128; i++)
		l6[i] = f32_to_fp16((float)i * 0.125f - 8, NULL);
	uint64_t o_i4, o_l4, o_i6, o_l6;
	int ok = blob_append_unpacked(bw, MIL_UINT4, i4, 12, &o_i4) == 0 &&
		 blob_append_tensor(bw, MIL_FP16, l4, 16, &o_l4) == 0 &&
		 blob_append_unpacked(bw, MIL_UINT6, i6, 12, &o_i6) == 0 &&
		 blob_append_tensor(bw, MIL_FP16, l6, 128, &o_l6) == 0;
	CHECK(ok && blob_writer_close(bw, NULL) == 0);
	blob_reader *r = NULL;
	CHECK(blob_reader_open(path, &r) == 0);
	tp t = tp_new("main");
	for (int fn = 0; fn < 2; fn++) {
		if (fn)
			tp_function(&t, "second");
		tp_input(&t, "x", MIL_FP16, 2, SH(1, 3));
		mil_op *a = mil_block_add_op(t.b, "constexpr_lut_to_dense", "w4");
		mil_op_bind_value(a, "indices", mil_value_blob(t.a, ty(&t, MIL_UINT4, 2, SH(4, 3)), NULL, o_i4));
		mil_op_bind_value(a, "lut", mil_value_blob(t.a, ty(&t, MIL_FP16, 4, SH(1, 1, 16, 1)), NULL, o_l4));
		mil_op_add_output(a, "w4", ty(&t, MIL_FP16, 2, SH(4, 3)));
		mil_op *b = mil_block_add_op(t.b, "constexpr_lut_to_dense", "w6");
		mil_op_bind_value(b, "indices", mil_value_blob(t.a, ty(&t, MIL_UINT6, 4, SH(4, 3, 1, 1)), NULL, o_i6));
		mil_op_bind_value(b, "lut", mil_value_blob(t.a, ty(&t, MIL_FP16, 6, SH(2, 1, 1, 1, 64, 1)), NULL, o_l6));
		mil_op_add_output(b, "w6", ty(&t, MIL_FP16, 4, SH(4, 3, 1, 1)));
		tp_op(&t, "linear", "y", MIL_FP16, 2, SH(1, 4), "x", "x", "weight", "w4", NULL);
		tp_output(&t, "y");
	}
	rt_model *m = tp_load(&t, r);
	CHECKF(m, "%s", errmsg());
	if (m) {
		for (int fn = 0; fn < 2; fn++) {
			const char *f = fn ? "second" : "main";
			rt_tensor w4, w6;
			CHECK(rt_model_constant(m, f, "w4", &w4) == 0);
			CHECK(rt_model_constant(m, f, "w6", &w6) == 0);
			for (int i = 0; i < 12; i++) {
				CHECK(((uint16_t *)w4.data)[i] == l4[i4[i]]);
				/* rows 0-1 use table 0, rows 2-3 table 1 */
				CHECK(((uint16_t *)w6.data)[i] == l6[(i / 6) * 64 + i6[i]]);
			}
			CHECK(shape_is(&w6, 4, SH(4, 3, 1, 1)));
			rt_tensor_release(&w4);
			rt_tensor_release(&w6);
			rt_tensor in = T("x", MIL_FP16, 2, SH(1, 3), FV(1, 0, 0)), *out;
			int n;
			if (run(m, f, &in, 1, NULL, &out, &n) == 0) {
				for (int j = 0; j < 4; j++)
					CHECK(((uint16_t *)out[0].data)[j] == l4[i4[j * 3]]);
				rt_tensors_free(out, n);
			}
			rt_tensor_release(&in);
		}
		rt_tensor bogus;
		CHECK(rt_model_constant(m, "main", "y", &bogus) != 0);
		rt_model_free(m);
	}
	/* A lut whose palette size does not match the index width is refused at load. */
	t = tp_new("main");
	mil_op *a = mil_block_add_op(t.b, "constexpr_lut_to_dense", "w");
	mil_op_bind_value(a, "indices", mil_value_blob(t.a, ty(&t, MIL_UINT6, 2, SH(4, 3)), NULL, o_i6));
	mil_op_bind_value(a, "lut", mil_value_blob(t.a, ty(&t, MIL_FP16, 4, SH(1, 1, 16, 1)), NULL, o_l4));
	mil_op_add_output(a, "w", ty(&t, MIL_FP16, 2, SH(4, 3)));
	tp_output(&t, "w");
	CHECK(tp_load(&t, r) == NULL);
	CHECKF(strstr(errmsg(), "op 'w'") && strstr(errmsg(), "palette"), "%s", errmsg());
	blob_reader_close(r);
	free(path);
}

/* The kernels that read palettized weights in place (linear, 1x1 conv,
 * matmul, gather) give the same bits as the same ops on the dense weight,
 * for every index width and for tables per tensor, per row group and per
 * (row, column) group, with rows and runs that start mid-byte: a [12, 52]
 * weight, 4-row groups, 13-column groups. */
static void lut_kernels_case(int bits, int rg, int cg)
{
	enum { N = 12, K = 52, M = 3 };
	mil_dtype it = bits == 1 ? MIL_UINT1 : bits == 2 ? MIL_UINT2 : bits == 3 ? MIL_UINT3 : bits == 4 ? MIL_UINT4
		       : bits == 6 ? MIL_UINT6 : MIL_UINT8;
	int np = 1 << bits, groups = rg * cg;
	uint8_t idx[N * K];
	uint16_t *table = xmalloc((size_t)groups * (size_t)np * 2);
	float dense[N * K], x[M * K];
	for (int i = 0; i < groups * np; i++)
		table[i] = f32_to_fp16((float)((i * 97) % 251) / 64.0f - 1.9f, NULL);
	for (int i = 0; i < N * K; i++) {
		idx[i] = (uint8_t)((i * 37 + i / 7) % np);
		int g = (i / K) / (N / rg) * cg + (i % K) / (K / cg);
		dense[i] = fp16_to_f32(table[g * np + idx[i]]);
	}
	fill_h(x, M * K, 1);
	char name[64];
	snprintf(name, sizeof name, "lutk_%d_%d_%d.bin", bits, rg, cg);
	char *path = scratch(name);
	blob_writer *bw = blob_writer_open(path);
	uint64_t oi, ol;
	int ok = bw && blob_append_unpacked(bw, it, idx, N * K, &oi) == 0 &&
		 blob_append_tensor(bw, MIL_FP16, table, (size_t)groups * (size_t)np, &ol) == 0;
	CHECKF(ok && blob_writer_close(bw, NULL) == 0, "%s", errmsg());
	blob_reader *r = NULL;
	CHECK(blob_reader_open(path, &r) == 0);
	tp t = tp_new("main");
	for (int fn = 0; fn < 2; fn++) {
		if (fn)
			tp_function(&t, "dense");
		tp_input(&t, "x", MIL_FP16, 2, SH(M, K));
		tp_input(&t, "x4", MIL_FP16, 4, SH(1, K, 1, M));
		tp_input(&t, "i", MIL_INT32, 1, SH(M));
		if (fn) {
			c_tensor(&t, "w", MIL_FP16, 2, SH(N, K), dense);
			c_tensor(&t, "w4", MIL_FP16, 4, SH(N, K, 1, 1), dense);
		} else {
			mil_op *a = mil_block_add_op(t.b, "constexpr_lut_to_dense", "w");
			mil_op_bind_value(a, "indices", mil_value_blob(t.a, ty(&t, it, 2, SH(N, K)), NULL, oi));
			mil_op_bind_value(a, "lut", mil_value_blob(t.a, ty(&t, MIL_FP16, 4, SH(rg, cg, np, 1)), NULL, ol));
			mil_op_add_output(a, "w", ty(&t, MIL_FP16, 2, SH(N, K)));
			a = mil_block_add_op(t.b, "constexpr_lut_to_dense", "w4");
			mil_op_bind_value(a, "indices", mil_value_blob(t.a, ty(&t, it, 4, SH(N, K, 1, 1)), NULL, oi));
			mil_op_bind_value(a, "lut", mil_value_blob(t.a, ty(&t, MIL_FP16, 6, SH(rg, cg, 1, 1, np, 1)), NULL, ol));
			mil_op_add_output(a, "w4", ty(&t, MIL_FP16, 4, SH(N, K, 1, 1)));
		}
		c_bool(&t, "ty", 1);
		c_i32(&t, "ax0", 0);
		tp_op(&t, "linear", "lin", MIL_FP16, 2, SH(M, N), "x", "x", "weight", "w", NULL);
		tp_op(&t, "conv", "cv", MIL_FP16, 4, SH(1, N, 1, M), "x", "x4", "weight", "w4", NULL);
		tp_op(&t, "matmul", "mm", MIL_FP16, 2, SH(M, N), "x", "x", "y", "w", "transpose_y", "ty", NULL);
		tp_op(&t, "matmul", "mw", MIL_FP16, 2, SH(N, N), "x", "w", "y", "w", "transpose_y", "ty", NULL);
		tp_op(&t, "gather", "ga", MIL_FP16, 2, SH(M, K), "x", "w", "indices", "i", "axis", "ax0", NULL);
		const char *outs[] = {"lin", "cv", "mm", "mw", "ga"};
		for (int o = 0; o < 5; o++)
			tp_output(&t, outs[o]);
	}
	rt_model *m = tp_load(&t, r);
	CHECKF(m, "%s", errmsg());
	float xv4[M * K];
	for (int k = 0; k < K; k++)
		for (int j = 0; j < M; j++)
			xv4[k * M + j] = x[j * K + k];
	rt_tensor in[3] = {T("x", MIL_FP16, 2, SH(M, K), x), T("x4", MIL_FP16, 4, SH(1, K, 1, M), xv4),
			   T("i", MIL_INT32, 1, SH(M), FV(11, 0, 5))};
	rt_tensor *a = NULL, *d = NULL;
	int na = 0, nd = 0;
	if (m && run(m, "main", in, 3, NULL, &a, &na) == 0 && run(m, "dense", in, 3, NULL, &d, &nd) == 0) {
		for (int o = 0; o < 5 && o < na && o < nd; o++)
			CHECKF(memcmp(a[o].data, d[o].data, rt_tensor_numel(&a[o]) * 2) == 0,
			       "%d-bit, %dx%d groups: %s differs from the dense weight's", bits, rg, cg, a[o].name);
		rt_tensor w;
		CHECK(rt_model_constant(m, "main", "w", &w) == 0);
		for (int i = 0; w.data && i < N * K; i++)
			CHECK(fp16_to_f32(((uint16_t *)w.data)[i]) == dense[i]);
		rt_tensor_release(&w);
	}
	rt_tensors_free(a, na);
	rt_tensors_free(d, nd);
	release_all(in, 3);
	rt_model_free(m);
	blob_reader_close(r);
	free(table);
	free(path);
}

static void test_lut_kernels(void)
{
	const int widths[] = {1, 2, 3, 4, 6, 8};
	for (int b = 0; b < 6; b++) {
		lut_kernels_case(widths[b], 1, 1);
		lut_kernels_case(widths[b], 3, 1);
		lut_kernels_case(widths[b], 3, 4);
	}
}

/* ------------------------------------------------------------------ */
/* States                                                              */

/* acc: state += x, output the new state; cache: the KV-cache pattern
 * read_state -> slice_update at pos -> write_state -> read_state. */
static void build_state_fns(tp *t)
{
	tp_input(t, "x", MIL_FP16, 2, SH(2, 4));
	tp_state(t, "kv", 2, SH(2, 4));
	tp_op(t, "read_state", "r", MIL_FP16, 2, SH(2, 4), "input", "kv", NULL);
	tp_op(t, "add", "s", MIL_FP16, 2, SH(2, 4), "x", "r", "y", "x", NULL);
	tp_op(t, "write_state", NULL, 0, 0, NULL, "input", "kv", "data", "s", NULL);
	tp_op(t, "read_state", "r2", MIL_FP16, 2, SH(2, 4), "input", "kv", NULL);
	tp_output(t, "r2");
	tp_output(t, "r");

	tp_function(t, "cache");
	tp_input(t, "v", MIL_FP16, 2, SH(2, 1));
	tp_input(t, "pos", MIL_INT32, 1, SH(1));
	tp_state(t, "kv", 2, SH(2, 4));
	c_i32s(t, "one", 1, (int32_t[]){1});
	c_i32s(t, "zero", 1, (int32_t[]){0});
	c_i32s(t, "two", 1, (int32_t[]){2});
	c_i32(t, "ax", 0);
	tp_op(t, "add", "p1", MIL_INT32, 1, SH(1), "x", "pos", "y", "one", NULL);
	tp_op(t, "concat", "b", MIL_INT32, 1, SH(2), "values", "zero", "values", "pos", "axis", "ax", NULL);
	tp_op(t, "concat", "e", MIL_INT32, 1, SH(2), "values", "two", "values", "p1", "axis", "ax", NULL);
	tp_op(t, "read_state", "r0", MIL_FP16, 2, SH(2, 4), "input", "kv", NULL);
	tp_op(t, "slice_update", "u", MIL_FP16, 2, SH(2, 4), "x", "r0", "update", "v", "begin", "b", "end", "e", NULL);
	tp_op(t, "write_state", NULL, 0, 0, NULL, "input", "kv", "data", "u", NULL);
	tp_op(t, "read_state", "r1", MIL_FP16, 2, SH(2, 4), "input", "kv", NULL);
	c_i32(t, "m1", -1);
	c_bool(t, "keep", 0);
	tp_op(t, "reduce_sum", "sum", MIL_FP16, 1, SH(2), "x", "r1", "axes", "one", NULL);
	tp_output(t, "sum");
}

static void test_state(void)
{
	tp t = tp_new("main");
	build_state_fns(&t);
	rt_model *m = tp_load(&t, NULL);
	CHECKF(m, "%s", errmsg());
	if (!m)
		return;
	rt_state *s = rt_state_new(m, NULL);
	CHECK(s && rt_state_count(s) == 1 && !strcmp(rt_state_name(s, 0), "kv"));
	rt_tensor x = T("x", MIL_FP16, 2, SH(2, 4), FV(1, 2, 3, 4, 5, 6, 7, 8)), *out;
	int n;
	for (int k = 1; k <= 2; k++)
		if (run(m, NULL, &x, 1, s, &out, &n) == 0) {
			float w[8], prev[8];
			for (int i = 0; i < 8; i++) {
				w[i] = (float)(k * (i + 1));
				prev[i] = (float)((k - 1) * (i + 1));
			}
			CHECK_VALS(&out[0], w, 8, 0);
			CHECK_VALS(&out[1], prev, 8, 0); /* read before the write: the old value */
			rt_tensors_free(out, n);
		}
	rt_tensor st;
	CHECK(rt_state_read(s, "kv", &st) == 0);
	CHECK_VALS(&st, FV(2, 4, 6, 8, 10, 12, 14, 16), 8, 0);
	/* The same state through another function (the in-place update path). */
	rt_tensor in[2] = {T("v", MIL_FP16, 2, SH(2, 1), FV(100, 200)), T("pos", MIL_INT32, 1, SH(1), FV(3))};
	if (run(m, "cache", in, 2, s, &out, &n) == 0) {
		CHECK_VALS(&out[0], FV(2 + 4 + 6 + 100, 10 + 12 + 14 + 200), 2, 0);
		rt_tensors_free(out, n);
	}
	rt_tensor st2;
	CHECK(rt_state_read(s, "kv", &st2) == 0);
	CHECK_VALS(&st2, FV(2, 4, 6, 100, 10, 12, 14, 200), 8, 0);
	CHECK_VALS(&st, FV(2, 4, 6, 8, 10, 12, 14, 16), 8, 0); /* earlier copies are untouched */
	/* The same state through a second, separately loaded model. */
	tp t2 = tp_new("main");
	build_state_fns(&t2);
	rt_model *m2 = tp_load(&t2, NULL);
	if (m2 && run(m2, NULL, &x, 1, s, &out, &n) == 0) {
		CHECK_VALS(&out[0], FV(3, 6, 9, 104, 15, 18, 21, 208), 8, 0);
		rt_tensors_free(out, n);
	}
	/* write_state from outside, then clear */
	CHECK(rt_state_write(s, "kv", &x) == 0);
	if (run(m, "cache", in, 2, s, &out, &n) == 0) {
		CHECK_VALS(&out[0], FV(1 + 2 + 3 + 100, 5 + 6 + 7 + 200), 2, 0);
		rt_tensors_free(out, n);
	}
	rt_state_clear(s);
	rt_tensor_release(&st2);
	CHECK(rt_state_read(s, "kv", &st2) == 0);
	CHECK_VALS(&st2, FV(0, 0, 0, 0, 0, 0, 0, 0), 8, 0);
	/* Missing or mismatched state is an error. */
	CHECK(rt_run(m, NULL, &x, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "needs state 'kv'"), "%s", errmsg());
	rt_tensor bad = T("x", MIL_FP16, 1, SH(8), NULL);
	CHECK(rt_state_write(s, "kv", &bad) != 0);
	rt_tensor_release(&bad);
	rt_tensor_release(&st);
	rt_tensor_release(&st2);
	release_all(in, 2);
	rt_tensor_release(&x);
	rt_state_free(s);
	rt_model_free(m);
	rt_model_free(m2);
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static void test_unsupported_ops(void)
{
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "cumsum", "a", MIL_FP16, 1, SH(4), "x", "x", NULL);
	tp_op(&t, "frobnicate", "b", MIL_FP16, 1, SH(4), "x", "a", NULL);
	tp_op(&t, "cumsum", "c", MIL_FP16, 1, SH(4), "x", "b", NULL);
	tp_output(&t, "c");
	tp_function(&t, "other");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "while_loop", "w", MIL_FP16, 1, SH(4), "x", "x", NULL);
	tp_output(&t, "w");
	CHECK(tp_load(&t, NULL) == NULL);
	const char *e = errmsg();
	CHECKF(strstr(e, "3 unsupported op types") && strstr(e, "cumsum (function 'main')") &&
	       strstr(e, "frobnicate (function 'main')") && strstr(e, "while_loop (function 'other')"), "%s", e);
	/* named once each */
	CHECKF(strstr(strstr(e, "cumsum") + 1, "cumsum") == NULL, "%s", e);
}

static void test_load_errors(void)
{
	/* unknown var */
	tp t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "exp", "y", MIL_FP16, 1, SH(4), "x", "nope", NULL);
	tp_output(&t, "y");
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "op 'y'") && strstr(errmsg(), "unknown var 'nope'"), "%s", errmsg());
	/* unknown and missing parameters */
	t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "exp", "y", MIL_FP16, 1, SH(4), "x", "x", "bogus", "x", NULL);
	tp_output(&t, "y");
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "unknown parameter 'bogus'"), "%s", errmsg());
	t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "add", "y", MIL_FP16, 1, SH(4), "x", "x", NULL);
	tp_output(&t, "y");
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "missing parameter 'y'"), "%s", errmsg());
	/* a var defined twice, an unsupported output dtype, a missing block output */
	t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "exp", "x", MIL_FP16, 1, SH(4), "x", "x", NULL);
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "defined twice"), "%s", errmsg());
	t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_op(&t, "exp", "y", MIL_FP64, 1, SH(4), "x", "x", NULL);
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "unsupported dtype fp64") || strstr(errmsg(), "unsupported dtype"), "%s", errmsg());
	t = tp_new("main");
	tp_input(&t, "x", MIL_FP16, 1, SH(4));
	tp_output(&t, "z");
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "unknown var 'z'"), "%s", errmsg());
	/* a blob without weights */
	t = tp_new("main");
	mil_block_add_const(t.b, "w", mil_value_blob(t.a, ty(&t, MIL_FP16, 1, SH(16)), NULL, 64));
	tp_output(&t, "w");
	CHECK(tp_load(&t, NULL) == NULL);
	CHECKF(strstr(errmsg(), "blob file"), "%s", errmsg());
	/* not a model at all */
	rt_model *m;
	CHECK(rt_model_load("\xff\xff\xff", 3, NULL, "junk", &m) != 0 && m == NULL);
	CHECK(rt_model_open("/nonexistent/x.mlpackage", &m) != 0 && m == NULL);
}

static void test_input_errors(void)
{
	tp t = tp_new("main");
	tp_input(&t, "ids", MIL_INT32, 2, SH(1, -1));
	tp_op(&t, "identity", "y", MIL_INT32, 2, SH(1, -1), "x", "ids", NULL);
	tp_output(&t, "y");
	rt_model *m = tp_load(&t, NULL);
	CHECKF(m, "%s", errmsg());
	if (!m)
		return;
	const rt_io *io;
	int nio;
	iota_init();
	CHECK(rt_function_io(m, NULL, &io, &nio, NULL, NULL) == 0 && nio == 1 && io[0].shape[1] == -1);
	CHECK(rt_function_count(m) == 1 && !strcmp(rt_function_name(m, 0), "main"));
	CHECK(!strcmp(rt_default_function(m), "main"));
	rt_tensor *out;
	int n;
	/* an unknown dim accepts any size */
	rt_tensor ok = T("ids", MIL_INT32, 2, SH(1, 7), g_iota);
	if (run(m, "main", &ok, 1, NULL, &out, &n) == 0) {
		CHECK(shape_is(&out[0], 2, SH(1, 7)));
		rt_tensors_free(out, n);
	}
	rt_tensor wrong_dt = T("ids", MIL_FP16, 2, SH(1, 7), NULL), wrong_shape = T("ids", MIL_INT32, 2, SH(2, 7), NULL);
	rt_tensor other = T("idz", MIL_INT32, 2, SH(1, 7), NULL);
	CHECK(rt_run(m, NULL, &wrong_dt, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "input 'ids': dtype fp16, expected int32") ||
	       strstr(errmsg(), "input 'ids': dtype float16, expected int32"), "%s", errmsg());
	CHECK(rt_run(m, NULL, &wrong_shape, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "shape [2,7], expected [1,-1]"), "%s", errmsg());
	CHECK(rt_run(m, NULL, &other, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "no input 'idz'"), "%s", errmsg());
	CHECK(rt_run(m, NULL, NULL, 0, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "needs input 'ids'"), "%s", errmsg());
	CHECK(rt_run(m, "nope", &ok, 1, NULL, &out, &n) != 0);
	CHECKF(strstr(errmsg(), "no function 'nope'"), "%s", errmsg());
	rt_tensor_release(&ok);
	rt_tensor_release(&wrong_dt);
	rt_tensor_release(&wrong_shape);
	rt_tensor_release(&other);
	rt_model_free(m);
}

/* ------------------------------------------------------------------ */
/* A real package on disk                                              */

static void test_package(void)
{
	char *pkg = scratch("rt.mlpackage");
	mlpackage_writer w;
	CHECKF(mlpackage_begin(&w, pkg) == 0, "%s", errmsg());
	float wv[16];
	uint16_t wh[16];
	for (int i = 0; i < 16; i++) {
		wv[i] = (float)(i % 5) - 2;
		wh[i] = f32_to_fp16(wv[i], NULL);
	}
	uint64_t off;
	CHECK(blob_append_tensor(w.weights, MIL_FP16, wh, 16, &off) == 0);
	ml_model *mm = ml_model_new(ML_SPEC_IOS18);
	mil_arena *a = mm->arena;
	mil_function *f = mil_program_add_function(ml_model_program(mm), "main", NULL);
	mil_block *b = mil_function_block(f);
	mil_function_add_input(f, "x", mil_type_tensor(a, MIL_FP16, 2, SH(1, 4)));
	mil_block_add_const(b, "w", mil_value_blob(a, mil_type_tensor(a, MIL_FP16, 2, SH(4, 4)), NULL, off));
	mil_op *op = mil_block_add_op(b, "linear", "y");
	mil_op_bind(op, "x", "x");
	mil_op_bind(op, "weight", "w");
	mil_op_add_output(op, "y", mil_type_tensor(a, MIL_FP16, 2, SH(1, 4)));
	mil_block_add_output(b, "y");
	pb_buf buf;
	pb_init(&buf);
	ml_model_encode(mm, &buf);
	CHECKF(mlpackage_commit(&w, buf.data, buf.len) == 0, "%s", errmsg());
	pb_release(&buf);
	ml_model_free(mm);
	rt_model *m;
	CHECKF(rt_model_open(pkg, &m) == 0, "%s", errmsg());
	if (m) {
		rt_tensor in = T("x", MIL_FP16, 2, SH(1, 4), FV(1, 2, 3, 4)), *out;
		int n;
		if (run(m, NULL, &in, 1, NULL, &out, &n) == 0) {
			float want[4];
			for (int r = 0; r < 4; r++)
				want[r] = wv[r * 4] + 2 * wv[r * 4 + 1] + 3 * wv[r * 4 + 2] + 4 * wv[r * 4 + 3];
			CHECK_VALS(&out[0], want, 4, 0);
			rt_tensors_free(out, n);
		}
		rt_tensor_release(&in);
		rt_model_free(m);
	}
	rm_rf(pkg);
	free(pkg);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(g_dir, sizeof g_dir, "%s/test_runtime.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(g_dir)) {
		printf("FAIL setup: mkdtemp\n");
		return 1;
	}
	RUN(test_broadcast_add_mul);
	RUN(test_fp16_rounding);
	RUN(test_binary_ops);
	RUN(test_unary_ops);
	RUN(test_gelu_modes);
	RUN(test_select_clip_cast);
	RUN(test_conv);
	RUN(test_linear);
	RUN(test_matmul);
	RUN(test_sdpa);
	RUN(test_layer_norm_softmax);
	RUN(test_reductions);
	RUN(test_topk);
	RUN(test_slice_by_index);
	RUN(test_slice_update);
	RUN(test_gather);
	RUN(test_concat_split_tile_transpose);
	RUN(test_reshape_expand_squeeze);
	RUN(test_misc_generators);
	RUN(test_lut_to_dense);
	RUN(test_lut_kernels);
	RUN(test_state);
	RUN(test_unsupported_ops);
	RUN(test_load_errors);
	RUN(test_input_errors);
	RUN(test_package);
	rm_rf(g_dir);
	return test_finish();
}
