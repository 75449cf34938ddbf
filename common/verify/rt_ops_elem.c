/* rt_ops_elem.c: elementwise MIL ops for the CPU runtime (runtime.h).
 *
 * Binary arithmetic and comparisons with numpy broadcasting, unary math and
 * activations, select, clip and cast. Operands are fp16/fp32 in practice
 * (activations of [1, 64, H] at most per call), int32 for index arithmetic.
 * Float operands are computed in fp32 and rounded once to the output dtype
 * (fp16: nearest even); anything involving integers or bools is computed in
 * double, which is exact for int32. Work is done a row at a time through
 * small stack buffers, after merging dimensions that broadcast alike.
 */
#define RT_INTERNAL
#include "verify/runtime.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Broadcasting                                                        */

#define EW_MAX_IN 3
#define EW_CHUNK 1024

/* Output shape and per-operand element strides (0 along broadcast dims),
 * with adjacent dims merged where every operand allows it. */
typedef struct bcast {
	int n, rank;
	int64_t shape[RT_MAX_RANK];
	int64_t str[EW_MAX_IN][RT_MAX_RANK];
} bcast;

static int bcast_init(rt_exec *e, bcast *b, int n, const rt_val *const *v, int *orank, int64_t *oshape)
{
	int r = 0;
	for (int k = 0; k < n; k++)
		r = v[k]->rank > r ? v[k]->rank : r;
	for (int d = 0; d < r; d++) {
		int64_t o = 1;
		for (int k = 0; k < n; k++) {
			int kd = d - (r - v[k]->rank);
			int64_t s = kd < 0 ? 1 : v[k]->shape[kd];
			if (s != 1 && o != 1 && s != o)
				return rt_err(e, "shapes do not broadcast (dim %d: %lld vs %lld)", d, (long long)o,
					      (long long)s);
			if (s != 1)
				o = s;
		}
		oshape[d] = o;
	}
	*orank = r;
	/* Strides, then merge dims (dropping size-1 ones). */
	b->n = n;
	b->rank = 0;
	int64_t st[EW_MAX_IN][RT_MAX_RANK];
	for (int k = 0; k < n; k++) {
		int64_t s = 1;
		for (int d = r - 1; d >= 0; d--) {
			int kd = d - (r - v[k]->rank);
			int64_t dim = kd < 0 ? 1 : v[k]->shape[kd];
			st[k][d] = dim == 1 ? 0 : s;
			s *= dim;
		}
	}
	for (int d = 0; d < r; d++) {
		if (oshape[d] == 1)
			continue;
		int merge = b->rank > 0;
		for (int k = 0; merge && k < n; k++)
			merge = b->str[k][b->rank - 1] == st[k][d] * oshape[d];
		if (merge) {
			b->shape[b->rank - 1] *= oshape[d];
			for (int k = 0; k < n; k++)
				b->str[k][b->rank - 1] = st[k][d];
		} else {
			b->shape[b->rank] = oshape[d];
			for (int k = 0; k < n; k++)
				b->str[k][b->rank] = st[k][d];
			b->rank++;
		}
	}
	if (b->rank == 0) {
		b->rank = 1;
		b->shape[0] = 1;
		for (int k = 0; k < n; k++)
			b->str[k][0] = 0;
	}
	return 0;
}

typedef void (*row_fn)(void *ctx, const size_t *off, const int64_t *stride, size_t len, size_t out_off);

/* Call fn for every row of the innermost merged dim, in output order. */
static void bcast_rows(const bcast *b, row_fn fn, void *ctx)
{
	int last = b->rank - 1;
	int64_t idx[RT_MAX_RANK] = {0}, inner[EW_MAX_IN];
	size_t len = (size_t)b->shape[last], out = 0;
	for (int k = 0; k < b->n; k++)
		inner[k] = b->str[k][last];
	for (int d = 0; d < b->rank; d++)
		if (b->shape[d] == 0)
			return;
	for (;;) {
		size_t off[EW_MAX_IN];
		for (int k = 0; k < b->n; k++) {
			off[k] = 0;
			for (int d = 0; d < last; d++)
				off[k] += (size_t)(idx[d] * b->str[k][d]);
		}
		fn(ctx, off, inner, len, out);
		out += len;
		int d = last - 1;
		while (d >= 0 && ++idx[d] == b->shape[d])
			idx[d--] = 0;
		if (d < 0)
			break;
	}
}

/* ------------------------------------------------------------------ */
/* The operations                                                      */

enum ew_code {
	/* binary */
	EW_ADD, EW_SUB, EW_MUL, EW_DIV, EW_POW, EW_MAX, EW_MIN, EW_FLOORDIV, EW_MOD,
	EW_EQ, EW_NE, EW_LT, EW_LE, EW_GT, EW_GE, EW_AND, EW_OR, EW_XOR,
	/* ternary */
	EW_SELECT,
	/* unary */
	EW_EXP, EW_EXP2, EW_LOG, EW_SQRT, EW_RSQRT, EW_INV, EW_TANH, EW_SIGMOID, EW_SILU, EW_RELU,
	EW_GELU, EW_GELU_TANH, EW_GELU_SIGMOID, EW_SIN, EW_COS, EW_ERF, EW_ABS, EW_FLOOR, EW_CEIL,
	EW_ROUND, EW_SIGN, EW_SQUARE, EW_CLIP, EW_NOT, EW_IDENTITY,
};

typedef struct ew_ctx {
	int code, nin, dbl;
	const rt_val *in[EW_MAX_IN];
	rt_val *out;
	float p0, p1; /* epsilon, or clip's alpha and beta */
} ew_ctx;

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* One element in fp32. */
static float ew_f32(const ew_ctx *c, float a, float b, float s)
{
	switch (c->code) {
	case EW_POW: return powf(a, b);
	case EW_MAX: return a > b || isnan(a) ? a : b;
	case EW_MIN: return a < b || isnan(a) ? a : b;
	case EW_FLOORDIV: return floorf(a / b);
	case EW_MOD: return a - floorf(a / b) * b;
	case EW_EQ: return a == b;
	case EW_NE: return a != b;
	case EW_LT: return a < b;
	case EW_LE: return a <= b;
	case EW_GT: return a > b;
	case EW_GE: return a >= b;
	case EW_AND: return a != 0 && b != 0;
	case EW_OR: return a != 0 || b != 0;
	case EW_XOR: return (a != 0) != (b != 0);
	case EW_SELECT: return a != 0 ? b : s;
	case EW_EXP: return expf(a);
	case EW_EXP2: return exp2f(a);
	case EW_LOG: return logf(a + c->p0);
	case EW_SQRT: return sqrtf(a);
	case EW_RSQRT: return 1.0f / sqrtf(a + c->p0);
	case EW_INV: return 1.0f / (a + c->p0);
	case EW_TANH: return tanhf(a);
	case EW_SIGMOID: return sigmoidf(a);
	case EW_SILU: return a / (1.0f + expf(-a));
	case EW_RELU: return a > 0 || isnan(a) ? a : 0.0f;
	case EW_GELU: return 0.5f * a * (1.0f + erff(a * 0.70710678118654752f));
	case EW_GELU_TANH:
		return 0.5f * a * (1.0f + tanhf(0.79788456080286536f * (a + 0.044715f * a * a * a)));
	case EW_GELU_SIGMOID: return a * sigmoidf(1.702f * a);
	case EW_SIN: return sinf(a);
	case EW_COS: return cosf(a);
	case EW_ERF: return erff(a);
	case EW_ABS: return fabsf(a);
	case EW_FLOOR: return floorf(a);
	case EW_CEIL: return ceilf(a);
	case EW_ROUND: return nearbyintf(a); /* half to even, as numpy */
	case EW_SIGN: return a > 0 ? 1.0f : a < 0 ? -1.0f : a;
	case EW_SQUARE: return a * a;
	case EW_CLIP: return a < c->p0 ? c->p0 : a > c->p1 ? c->p1 : a;
	case EW_NOT: return a == 0;
	case EW_IDENTITY: return a;
	default: return 0;
	}
}

/* One element in double (integer and bool operands). */
static double ew_f64(const ew_ctx *c, double a, double b, double s)
{
	switch (c->code) {
	case EW_ADD: return a + b;
	case EW_SUB: return a - b;
	case EW_MUL: return a * b;
	case EW_DIV: return a / b;
	case EW_POW: return pow(a, b);
	case EW_MAX: return a > b || isnan(a) ? a : b;
	case EW_MIN: return a < b || isnan(a) ? a : b;
	case EW_FLOORDIV: return floor(a / b);
	case EW_MOD: return a - floor(a / b) * b;
	case EW_SELECT: return a != 0 ? b : s;
	case EW_ABS: return fabs(a);
	case EW_SIGN: return a > 0 ? 1.0 : a < 0 ? -1.0 : a;
	case EW_SQUARE: return a * a;
	case EW_RELU: return a > 0 ? a : 0.0;
	case EW_CLIP: return a < c->p0 ? c->p0 : a > c->p1 ? c->p1 : a;
	case EW_FLOOR: case EW_CEIL: case EW_ROUND: case EW_IDENTITY: return a;
	default: return ew_f32(c, (float)a, (float)b, (float)s);
	}
}

/* A chunk of fp32 values; the common arithmetic gets tight loops. */
static void apply_f32(const ew_ctx *c, const float *a, const float *b, const float *s, float *o, size_t n)
{
	switch (c->code) {
	case EW_ADD: for (size_t i = 0; i < n; i++) o[i] = a[i] + b[i]; break;
	case EW_SUB: for (size_t i = 0; i < n; i++) o[i] = a[i] - b[i]; break;
	case EW_MUL: for (size_t i = 0; i < n; i++) o[i] = a[i] * b[i]; break;
	case EW_DIV: for (size_t i = 0; i < n; i++) o[i] = a[i] / b[i]; break;
	default: for (size_t i = 0; i < n; i++) o[i] = ew_f32(c, a[i], b ? b[i] : 0, s ? s[i] : 0); break;
	}
}

static void ew_row(void *ctx, const size_t *off, const int64_t *stride, size_t len, size_t out_off)
{
	ew_ctx *c = ctx;
	for (size_t done = 0; done < len; done += EW_CHUNK) {
		size_t n = len - done < EW_CHUNK ? len - done : EW_CHUNK;
		if (!c->dbl) {
			float buf[EW_MAX_IN][EW_CHUNK], o[EW_CHUNK];
			for (int k = 0; k < c->nin; k++)
				rt_load_f32(c->in[k], off[k] + done * (size_t)stride[k], (size_t)stride[k], n, buf[k]);
			apply_f32(c, buf[0], c->nin > 1 ? buf[1] : NULL, c->nin > 2 ? buf[2] : NULL, o, n);
			rt_store_f32(c->out, out_off + done, n, o);
		} else {
			double buf[EW_MAX_IN][EW_CHUNK] = {{0}}, o[EW_CHUNK];
			for (int k = 0; k < c->nin; k++)
				rt_load_f64(c->in[k], off[k] + done * (size_t)stride[k], (size_t)stride[k], n, buf[k]);
			for (size_t i = 0; i < n; i++)
				o[i] = ew_f64(c, buf[0][i], buf[1][i], buf[2][i]);
			rt_store_f64(c->out, out_off + done, n, o);
		}
	}
}

static int numeric(const rt_val *v) { return rt_dtype_size(v->dtype) != 0; }

/* Broadcast nin operands, allocate the output, run the code over it. */
static int ew_run(rt_exec *e, const rt_op *op, ew_ctx *c)
{
	for (int k = 0; k < c->nin; k++)
		if (!numeric(c->in[k]))
			return rt_err(e, "operand %d is not a numeric tensor", k);
	bcast b = {0};
	int rank = 0;
	int64_t shape[RT_MAX_RANK];
	if (bcast_init(e, &b, c->nin, c->in, &rank, shape) != 0)
		return -1;
	int odt = rt_out_dtype(op, 0);
	c->dbl = !rt_is_float(odt) && odt != MIL_BOOL;
	for (int k = 0; k < c->nin; k++)
		if (!rt_is_float(c->in[k]->dtype) && !(c->code == EW_SELECT && k == 0))
			c->dbl = 1;
	if (!(c->out = rt_out(e, op, 0, rank, shape)))
		return -1;
	bcast_rows(&b, ew_row, c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Kernels                                                             */

static const struct { const char *type; int code; } g_binary[] = {
	{"add", EW_ADD}, {"sub", EW_SUB}, {"mul", EW_MUL}, {"real_div", EW_DIV}, {"pow", EW_POW},
	{"maximum", EW_MAX}, {"minimum", EW_MIN}, {"floor_div", EW_FLOORDIV}, {"mod", EW_MOD},
	{"equal", EW_EQ}, {"not_equal", EW_NE}, {"less", EW_LT}, {"less_equal", EW_LE},
	{"greater", EW_GT}, {"greater_equal", EW_GE}, {"logical_and", EW_AND}, {"logical_or", EW_OR},
	{"logical_xor", EW_XOR},
};

static const struct { const char *type; int code; } g_unary[] = {
	{"exp", EW_EXP}, {"exp2", EW_EXP2}, {"log", EW_LOG}, {"sqrt", EW_SQRT}, {"rsqrt", EW_RSQRT},
	{"inverse", EW_INV}, {"tanh", EW_TANH}, {"sigmoid", EW_SIGMOID}, {"silu", EW_SILU},
	{"relu", EW_RELU}, {"sin", EW_SIN}, {"cos", EW_COS}, {"erf", EW_ERF}, {"abs", EW_ABS},
	{"floor", EW_FLOOR}, {"ceil", EW_CEIL}, {"round", EW_ROUND}, {"sign", EW_SIGN},
	{"square", EW_SQUARE}, {"logical_not", EW_NOT},
};

static int code_of(const rt_op *op, int unary)
{
	size_t n = unary ? sizeof g_unary / sizeof *g_unary : sizeof g_binary / sizeof *g_binary;
	for (size_t i = 0; i < n; i++) {
		const char *t = unary ? g_unary[i].type : g_binary[i].type;
		if (!strcmp(t, op->type))
			return unary ? g_unary[i].code : g_binary[i].code;
	}
	return -1;
}

static int k_binary(rt_exec *e, const rt_op *op)
{
	ew_ctx c = {.code = code_of(op, 0), .nin = 2, .in = {rt_in(e, op, 0), rt_in(e, op, 1)}};
	return ew_run(e, op, &c);
}

/* Unary ops; rsqrt, inverse and log take an optional epsilon (coremltools
 * defaults 1e-12, 1e-4, 1e-45). */
static int k_unary(rt_exec *e, const rt_op *op)
{
	ew_ctx c = {.code = code_of(op, 1), .nin = 1, .in = {rt_in(e, op, 0)}};
	float dflt = c.code == EW_RSQRT ? 1e-12f : c.code == EW_INV ? 1e-4f : c.code == EW_LOG ? 1e-45f : 0.0f;
	if (rt_param_float(e, rt_in(e, op, 1), "epsilon", dflt, &c.p0) != 0)
		return -1;
	return ew_run(e, op, &c);
}

static int k_gelu(rt_exec *e, const rt_op *op)
{
	ew_ctx c = {.code = EW_GELU, .nin = 1, .in = {rt_in(e, op, 0)}};
	const char *mode = rt_param_str(e, rt_in(e, op, 1), "mode", "EXACT");
	if (!mode)
		return -1;
	if (!strcmp(mode, "TANH_APPROXIMATION"))
		c.code = EW_GELU_TANH;
	else if (!strcmp(mode, "SIGMOID_APPROXIMATION"))
		c.code = EW_GELU_SIGMOID;
	else if (strcmp(mode, "EXACT"))
		return rt_err(e, "unknown gelu mode '%s'", mode);
	return ew_run(e, op, &c);
}

static int k_clip(rt_exec *e, const rt_op *op)
{
	ew_ctx c = {.code = EW_CLIP, .nin = 1, .in = {rt_in(e, op, 0)}};
	if (rt_param_float(e, rt_in(e, op, 1), "alpha", 0, &c.p0) != 0 ||
	    rt_param_float(e, rt_in(e, op, 2), "beta", 0, &c.p1) != 0)
		return -1;
	return ew_run(e, op, &c);
}

static int k_select(rt_exec *e, const rt_op *op)
{
	ew_ctx c = {.code = EW_SELECT, .nin = 3, .in = {rt_in(e, op, 0), rt_in(e, op, 1), rt_in(e, op, 2)}};
	return ew_run(e, op, &c);
}

/* Wrap an integer into a narrower integer type as a C conversion (numpy
 * astype) does: keep the low bits, two's complement. */
static void set_wrapped(rt_val *o, size_t i, int64_t v)
{
	switch (o->dtype) {
	case MIL_INT32: ((int32_t *)o->data)[i] = (int32_t)(uint32_t)v; break;
	case MIL_INT16: ((int16_t *)o->data)[i] = (int16_t)(uint16_t)v; break;
	case MIL_UINT16: ((uint16_t *)o->data)[i] = (uint16_t)v; break;
	case MIL_INT8: ((int8_t *)o->data)[i] = (int8_t)(uint8_t)v; break;
	case MIL_UINT8: ((uint8_t *)o->data)[i] = (uint8_t)v; break;
	default: rt_set(o, i, (double)v); break;
	}
}

/* cast: floats round to nearest even (fp16) or convert exactly; float to
 * integer truncates toward zero, as coremltools' constant folding (numpy
 * astype) and torch's .int() which it lowers, saturating out of range;
 * integer to narrower integer wraps like astype; to bool is x != 0. */
static int k_cast(rt_exec *e, const rt_op *op)
{
	static const struct { const char *s; int dt; } names[] = {
		{"fp16", MIL_FP16}, {"fp32", MIL_FP32}, {"int32", MIL_INT32}, {"int16", MIL_INT16},
		{"int8", MIL_INT8}, {"uint8", MIL_UINT8}, {"uint16", MIL_UINT16}, {"bool", MIL_BOOL},
	};
	const rt_val *x = rt_in(e, op, 0);
	const char *s = rt_param_str(e, rt_in(e, op, 1), "dtype", NULL);
	if (!s)
		return -1;
	int dt = 0;
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(names[i].s, s))
			dt = names[i].dt;
	if (!dt)
		return rt_err(e, "cannot cast to '%s'", s);
	if (dt != rt_out_dtype(op, 0))
		return rt_err(e, "dtype '%s' does not match the declared output", s);
	if (!numeric(x))
		return rt_err(e, "x is not a numeric tensor");
	rt_val *o = rt_out(e, op, 0, x->rank, x->shape);
	if (!o)
		return -1;
	if (rt_is_float(x->dtype) && rt_is_float(dt)) {
		float buf[EW_CHUNK];
		for (size_t i = 0; i < x->numel; i += EW_CHUNK) {
			size_t n = x->numel - i < EW_CHUNK ? x->numel - i : EW_CHUNK;
			rt_load_f32(x, i, 1, n, buf);
			rt_store_f32(o, i, n, buf);
		}
	} else if (!rt_is_float(x->dtype) && !rt_is_float(dt) && dt != MIL_BOOL) {
		for (size_t i = 0; i < x->numel; i++)
			set_wrapped(o, i, rt_get_i64(x, i));
	} else {
		for (size_t i = 0; i < x->numel; i++)
			rt_set(o, i, rt_get(x, i));
	}
	return 0;
}

#define BIN(name) {name, {"x", "y"}, 3, -1, 1, 1, k_binary}
#define UN(name) {name, {"x"}, 1, -1, 1, 1, k_unary}
#define UN_EPS(name) {name, {"x", "epsilon"}, 1, -1, 1, 1, k_unary}

const rt_kernel rt_kernels_elem[] = {
	BIN("add"), BIN("sub"), BIN("mul"), BIN("real_div"), BIN("pow"), BIN("maximum"), BIN("minimum"),
	BIN("floor_div"), BIN("mod"), BIN("equal"), BIN("not_equal"), BIN("less"), BIN("less_equal"),
	BIN("greater"), BIN("greater_equal"), BIN("logical_and"), BIN("logical_or"), BIN("logical_xor"),
	UN("exp"), UN("exp2"), UN_EPS("log"), UN("sqrt"), UN_EPS("rsqrt"), UN_EPS("inverse"), UN("tanh"),
	UN("sigmoid"), UN("silu"), UN("relu"), UN("sin"), UN("cos"), UN("erf"), UN("abs"), UN("floor"),
	UN("ceil"), UN("round"), UN("sign"), UN("square"), UN("logical_not"),
	{"gelu", {"x", "mode"}, 1, -1, 1, 1, k_gelu},
	{"clip", {"x", "alpha", "beta"}, 7, -1, 1, 1, k_clip},
	{"select", {"cond", "a", "b"}, 7, -1, 1, 1, k_select},
	{"cast", {"x", "dtype"}, 3, -1, 1, 1, k_cast},
	{NULL, {NULL}, 0, -1, 0, 0, NULL},
};
