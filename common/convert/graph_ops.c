/* graph_ops.c: one MIL op at a time, with shapes tracked (graph_internal.h).
 *
 * Each helper appends one op (plus the const ops holding its parameters) to
 * the block being built and returns its output as a graph_val, whose shape
 * it computes from the inputs' shapes by the op's MIL definition
 * (coreml-format.md 5). Shapes are always constant: ANEMLL's parts have
 * fixed shapes per function, which is what the Neural Engine wants.
 * Nothing here touches the file system except graph_fp16_const, which
 * appends its data to the package's weight.bin.
 */
#include "convert/graph_internal.h"

#include "base/fp16.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Context, names, constants                                           */

void graph_ctx_init(graph_ctx *g, mil_block *b, weights_ctx *w, const hf_model *hf)
{
	memset(g, 0, sizeof *g);
	g->a = b->arena;
	g->b = b;
	g->w = w;
	g->hf = hf;
	g->c = hf ? &hf->cfg : NULL;
}

/* Is name an input of an op after ops[i], or an output of b? */
static int used_after(const mil_block *b, size_t i, const char *name)
{
	for (size_t k = 0; k < b->noutputs; k++)
		if (strcmp(b->outputs[k], name) == 0)
			return 1;
	for (size_t j = i + 1; j < b->nops; j++)
		for (size_t a = 0; a < b->ops[j]->ninputs; a++)
			for (size_t v = 0; v < b->ops[j]->inputs[a]->n; v++) {
				const mil_binding *x = &b->ops[j]->inputs[a]->v[v];
				if (x->kind == MIL_BIND_NAME && strcmp(x->name, name) == 0)
					return 1;
			}
	return 0;
}

void graph_drop_dead_reads(mil_block *b)
{
	for (size_t i = b->nops; i-- > 0;) {
		const mil_op *op = b->ops[i];
		if (strcmp(op->type, "read_state") != 0 || op->noutputs != 1 || used_after(b, i, op->outputs[0].name))
			continue;
		memmove(&b->ops[i], &b->ops[i + 1], (b->nops - i - 1) * sizeof b->ops[0]);
		b->nops--;
	}
}

void graph_ctx_release(graph_ctx *g)
{
	if (!g)
		return;
	free(g->shared);
	g->shared = NULL;
	g->nshared = g->shared_cap = 0;
}

void graph_scope(graph_ctx *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(g->scope, sizeof g->scope, fmt, ap);
	va_end(ap);
	ASSERT(n >= 0 && (size_t)n < sizeof g->scope);
}

graph_val graph_val_make(const char *name, int dtype, int rank, const int64_t *dims)
{
	ASSERT(rank >= 0 && rank <= GRAPH_MAX_RANK);
	graph_val v = {.name = name, .dtype = dtype, .rank = rank};
	for (int i = 0; i < rank; i++)
		v.d[i] = dims[i];
	return v;
}

const char *graph_name(graph_ctx *g, const char *what)
{
	size_t ls = strlen(g->scope), lw = strlen(what);
	char *s = mil_alloc(g->a, ls + lw + 1);
	memcpy(s, g->scope, ls);
	memcpy(s + ls, what, lw + 1);
	return s;
}

const char *graph_const(graph_ctx *g, const char *name, mil_value *v)
{
	mil_block_add_const(g->b, name, v);
	return mil_strdup(g->a, name);
}

const char *graph_shared(graph_ctx *g, const char *name, mil_value *v)
{
	for (size_t i = 0; i < g->nshared; i++)
		if (strcmp(g->shared[i], name) == 0)
			return g->shared[i];
	GROW(g->shared, g->shared_cap, g->nshared + 1);
	g->shared[g->nshared] = graph_const(g, name, v);
	return g->shared[g->nshared++];
}

int graph_fp16_const(graph_ctx *g, const char *name, const uint16_t *data, int rank, const int64_t *dims,
		     graph_val *out)
{
	mil_type *t = mil_type_tensor(g->a, MIL_FP16, (size_t)rank, dims);
	uint64_t n = 1, off;
	for (int i = 0; i < rank; i++)
		n *= (uint64_t)dims[i];
	mil_value *v;
	if (n >= 10) {
		if (blob_append_tensor(g->w->bw, MIL_FP16, data, (size_t)n, &off) != 0)
			return -1;
		v = mil_value_blob(g->a, t, NULL, off);
	} else {
		v = mil_value_tensor(g->a, t, data);
	}
	*out = graph_val_make(graph_const(g, name, v), MIL_FP16, rank, dims);
	return 0;
}

graph_val graph_i32_const(graph_ctx *g, const char *name, const int32_t *data, int rank, const int64_t *dims)
{
	mil_type *t = mil_type_tensor(g->a, MIL_INT32, (size_t)rank, dims);
	return graph_val_make(graph_const(g, name, mil_value_tensor(g->a, t, data)), MIL_INT32, rank, dims);
}

const char *graph_scalar(graph_ctx *g, int dtype, double v)
{
	char name[48];
	if (dtype == MIL_FP32) {
		float f = (float)v;
		uint32_t bits;
		memcpy(&bits, &f, 4);
		snprintf(name, sizeof name, "fp32_%08x", bits);
		return graph_shared(g, name, mil_value_fp32(g->a, f));
	}
	ASSERT(dtype == MIL_FP16);
	uint16_t h = f32_to_fp16((float)v, NULL);
	snprintf(name, sizeof name, "fp16_%04x", h);
	return graph_shared(g, name, mil_value_fp16(g->a, h));
}

mil_type *graph_type(graph_ctx *g, const graph_val *v)
{
	return mil_type_tensor(g->a, (mil_dtype)v->dtype, (size_t)v->rank, v->d);
}

/* The op producing `out`, whose name must already be set (graph_name): its
 * parameters' const ops have to be emitted before it, so helpers name the
 * output, make the consts, then add the op. */
static mil_op *op_add(graph_ctx *g, const char *type, const graph_val *out)
{
	mil_op *op = mil_block_add_op(g->b, type, out->name);
	mil_op_add_output(op, out->name, graph_type(g, out));
	return op;
}

/* A const parameter of op `op_name`, called "<op_name>_<param>". */
static const char *param(graph_ctx *g, const char *op_name, const char *param_name, mil_value *v)
{
	char *name = xasprintf("%s_%s", op_name, param_name);
	const char *r = graph_const(g, name, v);
	free(name);
	return r;
}

static mil_value *i32s(graph_ctx *g, int n, const int64_t *v)
{
	int32_t buf[GRAPH_MAX_RANK];
	ASSERT(n <= GRAPH_MAX_RANK);
	for (int i = 0; i < n; i++)
		buf[i] = (int32_t)v[i];
	return mil_value_i32s(g->a, (size_t)n, buf);
}

static const char *shared_false(graph_ctx *g) { return graph_shared(g, "const_false", mil_value_bool(g->a, 0)); }
static const char *shared_true(graph_ctx *g) { return graph_shared(g, "const_true", mil_value_bool(g->a, 1)); }

static const char *shared_last_axis(graph_ctx *g)
{
	int32_t m1 = -1;
	return graph_shared(g, "axes_last", mil_value_i32s(g->a, 1, &m1));
}

static int64_t numel(const graph_val *v)
{
	int64_t n = 1;
	for (int i = 0; i < v->rank; i++)
		n *= v->d[i];
	return n;
}

/* ------------------------------------------------------------------ */
/* Elementwise                                                         */

/* o's shape: o and x broadcast together (numpy rules), in place. */
static void broadcast_into(graph_val *o, const graph_val *x, const char *type, const char *what)
{
	int rank = o->rank > x->rank ? o->rank : x->rank;
	int64_t d[GRAPH_MAX_RANK];
	for (int i = 0; i < rank; i++) {
		int io = o->rank - rank + i, ix = x->rank - rank + i;
		int64_t a = io >= 0 ? o->d[io] : 1, b = ix >= 0 ? x->d[ix] : 1;
		if (a != b && a != 1 && b != 1)
			BUG("%s %s: shapes do not broadcast at axis %d (%lld vs %lld)", type, what, i, (long long)a,
			    (long long)b);
		d[i] = a == 1 ? b : a;
	}
	o->rank = rank;
	memcpy(o->d, d, sizeof(int64_t) * (size_t)rank);
}

/* x <type> y with numpy broadcasting, the output of dtype odt. */
static graph_val binary_to(graph_ctx *g, const char *type, const char *what, graph_val x, graph_val y, int odt)
{
	ASSERT(x.dtype == y.dtype);
	graph_val o = x;
	o.name = graph_name(g, what);
	o.dtype = odt;
	broadcast_into(&o, &y, type, what);
	mil_op *op = op_add(g, type, &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "y", y.name);
	return o;
}

graph_val graph_binary(graph_ctx *g, const char *type, const char *what, graph_val x, graph_val y)
{
	return binary_to(g, type, what, x, y, x.dtype);
}

graph_val graph_compare(graph_ctx *g, const char *type, const char *what, graph_val x, graph_val y)
{
	return binary_to(g, type, what, x, y, MIL_BOOL);
}

graph_val graph_select(graph_ctx *g, const char *what, graph_val cond, graph_val a, graph_val b)
{
	ASSERT(cond.dtype == MIL_BOOL && a.dtype == b.dtype);
	graph_val o = cond;
	o.name = graph_name(g, what);
	o.dtype = a.dtype;
	broadcast_into(&o, &a, "select", what);
	broadcast_into(&o, &b, "select", what);
	mil_op *op = op_add(g, "select", &o);
	mil_op_bind(op, "cond", cond.name);
	mil_op_bind(op, "a", a.name);
	mil_op_bind(op, "b", b.name);
	return o;
}

graph_val graph_scale(graph_ctx *g, const char *what, graph_val x, double c)
{
	graph_val s = graph_val_make(graph_scalar(g, x.dtype, c), x.dtype, 0, NULL);
	return graph_binary(g, "mul", what, x, s);
}

graph_val graph_unary(graph_ctx *g, const char *type, const char *what, graph_val x)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	mil_op *op = op_add(g, type, &o);
	mil_op_bind(op, "x", x.name);
	return o;
}

graph_val graph_gelu_tanh(graph_ctx *g, const char *what, graph_val x)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	const char *mode = graph_shared(g, "gelu_mode_tanh", mil_value_str(g->a, "TANH_APPROXIMATION"));
	mil_op *op = op_add(g, "gelu", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "mode", mode);
	return o;
}

graph_val graph_cast(graph_ctx *g, const char *what, graph_val x, int dtype)
{
	const char *dname = dtype == MIL_FP32 ? "fp32" : dtype == MIL_FP16 ? "fp16" : dtype == MIL_INT32 ? "int32" : NULL;
	ASSERT(dname);
	char cname[32];
	snprintf(cname, sizeof cname, "cast_to_%s", dname);
	const char *dt = graph_shared(g, cname, mil_value_str(g->a, dname));
	graph_val o = x;
	o.dtype = dtype;
	o.name = graph_name(g, what);
	mil_op *op = op_add(g, "cast", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "dtype", dt);
	return o;
}

graph_val graph_identity(graph_ctx *g, const char *what, graph_val x)
{
	return graph_unary(g, "identity", what, x);
}

/* ------------------------------------------------------------------ */
/* Shape                                                               */

graph_val graph_reshape(graph_ctx *g, const char *what, graph_val x, int rank, const int64_t *dims)
{
	graph_val o = graph_val_make(graph_name(g, what), x.dtype, rank, dims);
	ASSERT(numel(&o) == numel(&x));
	const char *shape = param(g, o.name, "shape", i32s(g, rank, dims));
	mil_op *op = op_add(g, "reshape", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "shape", shape);
	return o;
}

graph_val graph_transpose(graph_ctx *g, const char *what, graph_val x, const int *perm)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	int64_t p[GRAPH_MAX_RANK];
	for (int i = 0; i < x.rank; i++) {
		ASSERT(perm[i] >= 0 && perm[i] < x.rank);
		o.d[i] = x.d[perm[i]];
		p[i] = perm[i];
	}
	const char *pv = param(g, o.name, "perm", i32s(g, x.rank, p));
	mil_op *op = op_add(g, "transpose", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "perm", pv);
	return o;
}

graph_val graph_slice(graph_ctx *g, const char *what, graph_val x, const int64_t *begin, const int64_t *end)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	for (int i = 0; i < x.rank; i++) {
		ASSERT(0 <= begin[i] && begin[i] < end[i] && end[i] <= x.d[i]);
		o.d[i] = end[i] - begin[i];
	}
	const char *b = param(g, o.name, "begin", i32s(g, x.rank, begin));
	const char *e = param(g, o.name, "end", i32s(g, x.rank, end));
	mil_op *op = op_add(g, "slice_by_index", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "begin", b);
	mil_op_bind(op, "end", e);
	return o;
}

graph_val graph_slice_last(graph_ctx *g, const char *what, graph_val x, int64_t from, int64_t to)
{
	int64_t begin[GRAPH_MAX_RANK] = {0}, end[GRAPH_MAX_RANK];
	for (int i = 0; i < x.rank; i++)
		end[i] = x.d[i];
	begin[x.rank - 1] = from;
	end[x.rank - 1] = to;
	return graph_slice(g, what, x, begin, end);
}

graph_val graph_concat(graph_ctx *g, const char *what, int axis, int n, const graph_val *v)
{
	ASSERT(n >= 1 && n <= 64);
	int ax = axis < 0 ? v[0].rank + axis : axis;
	graph_val o = v[0];
	o.name = graph_name(g, what);
	const char *names[64];
	for (int i = 0; i < n; i++) {
		ASSERT(v[i].rank == o.rank && v[i].dtype == o.dtype);
		names[i] = v[i].name;
		if (i)
			o.d[ax] += v[i].d[ax];
	}
	char axname[24];
	snprintf(axname, sizeof axname, "axis_%s%d", axis < 0 ? "m" : "", axis < 0 ? -axis : axis);
	const char *av = graph_shared(g, axname, mil_value_i32(g->a, axis)), *il = shared_false(g);
	mil_op *op = op_add(g, "concat", &o);
	mil_op_bind_names(op, "values", (size_t)n, names);
	mil_op_bind(op, "axis", av);
	mil_op_bind(op, "interleave", il);
	return o;
}

graph_val graph_tile(graph_ctx *g, const char *what, graph_val x, const int64_t *reps)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	for (int i = 0; i < x.rank; i++)
		o.d[i] *= reps[i];
	const char *r = param(g, o.name, "reps", i32s(g, x.rank, reps));
	mil_op *op = op_add(g, "tile", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "reps", r);
	return o;
}

graph_val graph_rename_last(graph_ctx *g, graph_val v, const char *name)
{
	ASSERT(g->b->nops > 0);
	mil_op *op = g->b->ops[g->b->nops - 1];
	ASSERT(op->noutputs == 1 && strcmp(op->outputs[0].name, v.name) == 0);
	v.name = mil_strdup(g->a, name);
	op->outputs[0].name = v.name;
	mil_op_set_attr(op, "name", mil_value_str(g->a, name));
	return v;
}

/* ------------------------------------------------------------------ */
/* Linear algebra and normalisation                                    */

graph_val graph_conv(graph_ctx *g, const char *what, graph_val x, const char *weight, const char *bias, int64_t cout)
{
	ASSERT(x.rank == 4 && x.d[2] == 1);
	static const int32_t one2[2] = {1, 1}, zero4[4] = {0, 0, 0, 0};
	const char *strides = graph_shared(g, "conv_strides", mil_value_i32s(g->a, 2, one2));
	const char *pad_type = graph_shared(g, "conv_pad_type", mil_value_str(g->a, "valid"));
	const char *pad = graph_shared(g, "conv_pad", mil_value_i32s(g->a, 4, zero4));
	const char *dil = graph_shared(g, "conv_dilations", mil_value_i32s(g->a, 2, one2));
	const char *groups = graph_shared(g, "conv_groups", mil_value_i32(g->a, 1));
	graph_val o = x;
	o.name = graph_name(g, what);
	o.d[1] = cout;
	mil_op *op = op_add(g, "conv", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "weight", weight);
	if (bias)
		mil_op_bind(op, "bias", bias);
	mil_op_bind(op, "strides", strides);
	mil_op_bind(op, "pad_type", pad_type);
	mil_op_bind(op, "pad", pad);
	mil_op_bind(op, "dilations", dil);
	mil_op_bind(op, "groups", groups);
	return o;
}

graph_val graph_linear(graph_ctx *g, const char *what, graph_val x, const char *weight, const char *bias,
		       int64_t dout)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	o.d[x.rank - 1] = dout;
	mil_op *op = op_add(g, "linear", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "weight", weight);
	if (bias)
		mil_op_bind(op, "bias", bias);
	return o;
}

graph_val graph_matmul(graph_ctx *g, const char *what, graph_val x, graph_val y, int transpose_y)
{
	ASSERT(x.rank == y.rank && x.rank >= 2 && x.dtype == y.dtype);
	int r = x.rank;
	ASSERT(x.d[r - 1] == (transpose_y ? y.d[r - 1] : y.d[r - 2]));
	graph_val o = x;
	o.name = graph_name(g, what);
	for (int i = 0; i < r - 2; i++) {
		ASSERT(x.d[i] == y.d[i] || x.d[i] == 1 || y.d[i] == 1);
		o.d[i] = x.d[i] == 1 ? y.d[i] : x.d[i];
	}
	o.d[r - 1] = transpose_y ? y.d[r - 2] : y.d[r - 1];
	const char *tx = shared_false(g), *ty = transpose_y ? shared_true(g) : shared_false(g);
	mil_op *op = op_add(g, "matmul", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "y", y.name);
	mil_op_bind(op, "transpose_x", tx);
	mil_op_bind(op, "transpose_y", ty);
	return o;
}

graph_val graph_layer_norm(graph_ctx *g, const char *what, graph_val x, double eps)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	const char *axes = shared_last_axis(g), *e = graph_scalar(g, x.dtype, eps);
	mil_op *op = op_add(g, "layer_norm", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "axes", axes);
	mil_op_bind(op, "epsilon", e);
	return o;
}

graph_val graph_reduce_last(graph_ctx *g, const char *type, const char *what, graph_val x)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	o.d[x.rank - 1] = 1;
	const char *axes = shared_last_axis(g), *keep = shared_true(g);
	mil_op *op = op_add(g, type, &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "axes", axes);
	mil_op_bind(op, "keep_dims", keep);
	return o;
}

graph_val graph_softmax(graph_ctx *g, const char *what, graph_val x)
{
	char buf[64];
	snprintf(buf, sizeof buf, "%s_max", what);
	graph_val m = graph_reduce_last(g, "reduce_max", buf, x);
	snprintf(buf, sizeof buf, "%s_shifted", what);
	graph_val s = graph_binary(g, "sub", buf, x, m);
	snprintf(buf, sizeof buf, "%s_exp", what);
	graph_val e = graph_unary(g, "exp", buf, s);
	snprintf(buf, sizeof buf, "%s_sum", what);
	graph_val sum = graph_reduce_last(g, "reduce_sum", buf, e);
	return graph_binary(g, "real_div", what, e, sum);
}

graph_val graph_softmax_op(graph_ctx *g, const char *what, graph_val x)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	const char *ax = graph_shared(g, "axis_m1", mil_value_i32(g->a, -1));
	mil_op *op = op_add(g, "softmax", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "axis", ax);
	return o;
}

graph_val graph_clip(graph_ctx *g, const char *what, graph_val x, double v)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	const char *lo = graph_scalar(g, x.dtype, -v), *hi = graph_scalar(g, x.dtype, v);
	mil_op *op = op_add(g, "clip", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "alpha", lo);
	mil_op_bind(op, "beta", hi);
	return o;
}

/* ------------------------------------------------------------------ */
/* Indexing and state                                                  */

graph_val graph_gather(graph_ctx *g, const char *what, graph_val x, graph_val idx, int axis)
{
	graph_val o = {.name = graph_name(g, what), .dtype = x.dtype};
	for (int i = 0; i < axis; i++)
		o.d[o.rank++] = x.d[i];
	for (int i = 0; i < idx.rank; i++)
		o.d[o.rank++] = idx.d[i];
	for (int i = axis + 1; i < x.rank; i++)
		o.d[o.rank++] = x.d[i];
	ASSERT(o.rank <= GRAPH_MAX_RANK);
	const char *ax = param(g, o.name, "axis", mil_value_i32(g->a, axis));
	const char *bd = graph_shared(g, "gather_batch_dims", mil_value_i32(g->a, 0)), *vi = shared_false(g);
	mil_op *op = op_add(g, "gather", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "indices", idx.name);
	mil_op_bind(op, "axis", ax);
	mil_op_bind(op, "batch_dims", bd);
	mil_op_bind(op, "validate_indices", vi);
	return o;
}

graph_val graph_argmax_last(graph_ctx *g, const char *what, graph_val x)
{
	graph_val o = x;
	o.name = graph_name(g, what);
	o.dtype = MIL_INT32;
	o.d[x.rank - 1] = 1;
	const char *ax = graph_shared(g, "axis_m1", mil_value_i32(g->a, -1)), *keep = shared_true(g);
	const char *dt = graph_shared(g, "argmax_dtype", mil_value_str(g->a, "int32"));
	mil_op *op = op_add(g, "reduce_argmax", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "axis", ax);
	mil_op_bind(op, "keep_dims", keep);
	mil_op_bind(op, "output_dtype", dt);
	return o;
}

graph_val graph_gather_along_last(graph_ctx *g, const char *what, graph_val x, graph_val idx)
{
	graph_val o = idx;
	o.name = graph_name(g, what);
	o.dtype = x.dtype;
	const char *ax = graph_shared(g, "axis_m1", mil_value_i32(g->a, -1)), *vi = shared_false(g);
	mil_op *op = op_add(g, "gather_along_axis", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "indices", idx.name);
	mil_op_bind(op, "axis", ax);
	mil_op_bind(op, "validate_indices", vi);
	return o;
}

graph_val graph_read_state(graph_ctx *g, const char *what, graph_val state)
{
	graph_val o = state;
	o.name = graph_name(g, what);
	mil_op *op = op_add(g, "read_state", &o);
	mil_op_bind(op, "input", state.name);
	return o;
}

void graph_write_state(graph_ctx *g, const char *what, graph_val state, graph_val data)
{
	mil_op *op = mil_block_add_op(g->b, "write_state", graph_name(g, what));
	mil_op_bind(op, "data", data.name);
	mil_op_bind(op, "input", state.name);
}

graph_val graph_slice_update(graph_ctx *g, const char *what, graph_val x, graph_val update, graph_val begin,
			     graph_val end)
{
	ASSERT(x.rank == 4 && update.rank == 4 && begin.d[0] == 4 && end.d[0] == 4);
	static const int32_t one4[4] = {1, 1, 1, 1};
	static const uint8_t no4[4] = {0, 0, 0, 0};
	const char *stride = graph_shared(g, "update_stride", mil_value_i32s(g->a, 4, one4));
	const char *masks = graph_shared(g, "update_no_mask", mil_value_bools(g->a, 4, no4));
	graph_val o = x;
	o.name = graph_name(g, what);
	mil_op *op = op_add(g, "slice_update", &o);
	mil_op_bind(op, "x", x.name);
	mil_op_bind(op, "update", update.name);
	mil_op_bind(op, "begin", begin.name);
	mil_op_bind(op, "end", end.name);
	mil_op_bind(op, "stride", stride);
	mil_op_bind(op, "begin_mask", masks);
	mil_op_bind(op, "end_mask", masks);
	mil_op_bind(op, "squeeze_mask", masks);
	return o;
}
