/* rt_ops_reduce.c: reductions and normalisations for the CPU runtime
 * (runtime.h): reduce_{sum,mean,max,min,prod,argmax,argmin}, softmax,
 * layer_norm and topk.
 *
 * The input is converted to fp32 once (attention scores of [1, heads, 64,
 * context] and hidden rows of [1, 64, 2H] are the large cases: well under
 * 100 MB), the reduced axes are brought into one contiguous block, and every
 * sum is accumulated in fp32 in index order, so results never depend on
 * threads or chunking. Results are rounded once to the output dtype.
 */
#define RT_INTERNAL
#include "verify/runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x as fp32, with the dims in `red` moved after the others (a transposed
 * copy only when they are not already one contiguous block): then element
 * (o, r, i) of the [outer, R, inner] view is at (o * R + r) * inner + i. */
typedef struct red_view {
	float *x;
	size_t outer, R, inner;
} red_view;

static void red_view_make(const rt_val *x, const int *red, red_view *v)
{
	int first = -1, last = -1, contiguous = 1;
	for (int d = 0; d < x->rank; d++)
		if (red[d]) {
			if (first < 0)
				first = d;
			else if (last != d - 1)
				contiguous = 0;
			last = d;
		}
	v->x = rt_alloc(x->numel * sizeof(float) + sizeof(float));
	rt_load_f32(x, 0, 1, x->numel, v->x);
	if (first < 0) { /* nothing reduced */
		v->outer = x->numel;
		v->R = v->inner = 1;
		return;
	}
	if (contiguous) {
		v->outer = rt_numel(first, x->shape);
		v->R = rt_numel(last - first + 1, x->shape + first);
		v->inner = rt_numel(x->rank - last - 1, x->shape + last + 1);
		return;
	}
	/* Kept dims first, then reduced ones, in order. */
	int64_t xs[RT_MAX_RANK], shape[RT_MAX_RANK], src[RT_MAX_RANK], dst[RT_MAX_RANK];
	int n = 0;
	rt_strides(x->rank, x->shape, xs);
	v->outer = v->R = 1;
	for (int pass = 0; pass < 2; pass++)
		for (int d = 0; d < x->rank; d++)
			if (red[d] == pass) {
				shape[n] = x->shape[d];
				src[n++] = xs[d];
				if (pass)
					v->R *= (size_t)x->shape[d];
				else
					v->outer *= (size_t)x->shape[d];
			}
	v->inner = 1;
	rt_strides(n, shape, dst);
	float *t = rt_alloc(x->numel * sizeof(float) + sizeof(float));
	rt_copy_strided(n, shape, t, dst, v->x, src, sizeof(float));
	free(v->x);
	v->x = t;
}

/* The reduced dims from an axes parameter (absent: all). */
static int red_axes(rt_exec *e, const rt_val *av, int rank, int *red)
{
	int64_t axes[RT_MAX_RANK];
	int n;
	for (int d = 0; d < rank; d++)
		red[d] = av == NULL;
	if (!av)
		return 0;
	if (rt_param_ints(e, av, "axes", axes, RT_MAX_RANK, &n) != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		int a = rt_axis(axes[i], rank);
		if (a < 0)
			return rt_err(e, "axis %lld out of range for rank %d", (long long)axes[i], rank);
		red[a] = 1;
	}
	return 0;
}

static void out_shape(const rt_val *x, const int *red, int keep, int *rank, int64_t *shape)
{
	*rank = 0;
	for (int d = 0; d < x->rank; d++)
		if (!red[d])
			shape[(*rank)++] = x->shape[d];
		else if (keep)
			shape[(*rank)++] = 1;
}

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_ARGMAX, R_ARGMIN };

static int numeric_x(rt_exec *e, const rt_val *x)
{
	if (!rt_dtype_size(x->dtype))
		return rt_err(e, "x is not a numeric tensor");
	return 0;
}

/* Reduce v into out[outer * inner]: sums accumulate in fp32 in r order. */
static void reduce_view(const red_view *v, int code, float *out)
{
	for (size_t o = 0; o < v->outer; o++)
		for (size_t i = 0; i < v->inner; i++) {
			const float *p = v->x + o * v->R * v->inner + i;
			float acc = code == R_PROD ? 1.0f : code == R_SUM || code == R_MEAN ? 0.0f : p[0];
			size_t best = 0;
			for (size_t r = 0; r < v->R; r++) {
				float a = p[r * v->inner];
				switch (code) {
				case R_SUM: case R_MEAN: acc += a; break;
				case R_PROD: acc *= a; break;
				case R_MAX: acc = a > acc || isnan(a) ? a : acc; break;
				case R_MIN: acc = a < acc || isnan(a) ? a : acc; break;
				case R_ARGMAX: if (a > acc) { acc = a; best = r; } break;
				case R_ARGMIN: if (a < acc) { acc = a; best = r; } break;
				}
			}
			if (code == R_MEAN)
				acc /= (float)v->R;
			if (code == R_ARGMAX || code == R_ARGMIN)
				acc = (float)best;
			out[o * v->inner + i] = acc;
		}
}

static int reduce_code(const char *type)
{
	static const char *names[] = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
				      "reduce_argmax", "reduce_argmin"};
	for (int i = 0; i < 7; i++)
		if (!strcmp(names[i], type))
			return i;
	return -1;
}

static int finish(rt_exec *e, const rt_op *op, const rt_val *x, const int *red, int keep, int code)
{
	int rank;
	int64_t shape[RT_MAX_RANK];
	red_view v;
	out_shape(x, red, keep, &rank, shape);
	rt_val *o = rt_out(e, op, 0, rank, shape);
	if (!o)
		return -1;
	if (x->numel == 0) {
		if (o->numel)
			return rt_err(e, "reduction of an empty tensor");
		return 0;
	}
	red_view_make(x, red, &v);
	float *r = rt_alloc(v.outer * v.inner * sizeof(float) + sizeof(float));
	reduce_view(&v, code, r);
	if (code == R_ARGMAX || code == R_ARGMIN)
		for (size_t i = 0; i < o->numel; i++)
			rt_set(o, i, r[i]);
	else
		rt_store_f32(o, 0, o->numel, r);
	free(r);
	free(v.x);
	return 0;
}

/* reduce_*(x, axes = all, keep_dims = false). */
static int k_reduce(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int red[RT_MAX_RANK], keep;
	if (numeric_x(e, x) != 0 || red_axes(e, rt_in(e, op, 1), x->rank, red) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 2), "keep_dims", 0, &keep) != 0)
		return -1;
	return finish(e, op, x, red, keep, reduce_code(op->type));
}

/* reduce_argmax/argmin(x, axis = -1, keep_dims = false): the first index of
 * the extreme value, in the declared integer dtype. */
static int k_arg(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t axis;
	int keep, red[RT_MAX_RANK] = {0};
	if (numeric_x(e, x) != 0 || rt_param_int(e, rt_in(e, op, 1), "axis", -1, &axis) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 2), "keep_dims", 0, &keep) != 0)
		return -1;
	int a = rt_axis(axis, x->rank);
	if (a < 0)
		return rt_err(e, "axis %lld out of range", (long long)axis);
	if (x->shape[a] == 0)
		return rt_err(e, "arg reduction over an empty axis");
	red[a] = 1;
	return finish(e, op, x, red, keep, reduce_code(op->type));
}

/* softmax(x, axis = -1): max-subtracted exp, sum in fp32, divide. */
static int k_softmax(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t axis;
	int red[RT_MAX_RANK] = {0};
	if (numeric_x(e, x) != 0 || rt_param_int(e, rt_in(e, op, 1), "axis", -1, &axis) != 0)
		return -1;
	int a = rt_axis(axis, x->rank);
	if (a < 0)
		return rt_err(e, "axis %lld out of range", (long long)axis);
	rt_val *o = rt_out(e, op, 0, x->rank, x->shape);
	if (!o || x->numel == 0)
		return o ? 0 : -1;
	red[a] = 1;
	red_view v;
	red_view_make(x, red, &v); /* one contiguous dim: no transposition */
	for (size_t p = 0; p < v.outer; p++)
		for (size_t i = 0; i < v.inner; i++) {
			float *q = v.x + p * v.R * v.inner + i, m = q[0], sum = 0;
			for (size_t r = 1; r < v.R; r++)
				m = q[r * v.inner] > m ? q[r * v.inner] : m;
			for (size_t r = 0; r < v.R; r++) {
				q[r * v.inner] = expf(q[r * v.inner] - m);
				sum += q[r * v.inner];
			}
			for (size_t r = 0; r < v.R; r++)
				q[r * v.inner] /= sum;
		}
	rt_store_f32(o, 0, o->numel, v.x);
	free(v.x);
	return 0;
}

/* layer_norm(x, axes = all, gamma, beta, epsilon = 1e-5):
 * (x - mean) / sqrt(var + eps) * gamma + beta over the axes, which must be
 * one contiguous block; gamma and beta have the shape of those dims. */
static int k_layer_norm(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *g = rt_in(e, op, 2), *b = rt_in(e, op, 3);
	int red[RT_MAX_RANK];
	float eps;
	if (numeric_x(e, x) != 0 || red_axes(e, rt_in(e, op, 1), x->rank, red) != 0 ||
	    rt_param_float(e, rt_in(e, op, 4), "epsilon", 1e-5f, &eps) != 0)
		return -1;
	for (int d = 0, seen = 0, gap = 0; d < x->rank; d++) {
		gap |= seen && !red[d];
		if (red[d] && gap)
			return rt_err(e, "axes must be contiguous");
		seen |= red[d];
	}
	rt_val *o = rt_out(e, op, 0, x->rank, x->shape);
	if (!o || x->numel == 0)
		return o ? 0 : -1;
	red_view v;
	red_view_make(x, red, &v);
	if ((g && g->numel != v.R) || (b && b->numel != v.R)) {
		free(v.x);
		return rt_err(e, "gamma/beta have %zu/%zu values for %zu normalised elements", g ? g->numel : v.R,
			      b ? b->numel : v.R, v.R);
	}
	float *gb = rt_alloc(2 * v.R * sizeof(float));
	for (size_t r = 0; r < v.R; r++) {
		gb[r] = g ? (float)rt_get(g, r) : 1.0f;
		gb[v.R + r] = b ? (float)rt_get(b, r) : 0.0f;
	}
	for (size_t p = 0; p < v.outer; p++)
		for (size_t i = 0; i < v.inner; i++) {
			/* mean, then the variance of the deviations: two fp32 sums */
			float *q = v.x + p * v.R * v.inner + i, mean = 0, var = 0;
			for (size_t r = 0; r < v.R; r++)
				mean += q[r * v.inner];
			mean /= (float)v.R;
			for (size_t r = 0; r < v.R; r++) {
				float d = q[r * v.inner] - mean;
				var += d * d;
			}
			float inv = 1.0f / sqrtf(var / (float)v.R + eps);
			for (size_t r = 0; r < v.R; r++)
				q[r * v.inner] = (q[r * v.inner] - mean) * inv * gb[r] + gb[v.R + r];
		}
	rt_store_f32(o, 0, o->numel, v.x);
	free(gb);
	free(v.x);
	return 0;
}

/* topk(x, k = 1, axis = -1, ascending = false): values and indices of the
 * k largest (smallest), ties to the lower index, always sorted. */
typedef struct topk_item {
	float v;
	int64_t i;
} topk_item;

static int topk_desc(const void *a, const void *b)
{
	const topk_item *x = a, *y = b;
	if (x->v != y->v)
		return x->v > y->v ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int topk_asc(const void *a, const void *b)
{
	const topk_item *x = a, *y = b;
	if (x->v != y->v)
		return x->v < y->v ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static int k_topk(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t k, axis, s[RT_MAX_RANK];
	int asc, red[RT_MAX_RANK] = {0};
	if (numeric_x(e, x) != 0 || rt_param_int(e, rt_in(e, op, 1), "k", 1, &k) != 0 ||
	    rt_param_int(e, rt_in(e, op, 2), "axis", -1, &axis) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 3), "ascending", 0, &asc) != 0)
		return -1;
	int a = rt_axis(axis, x->rank);
	if (a < 0)
		return rt_err(e, "axis %lld out of range", (long long)axis);
	if (k == -1)
		k = x->shape[a];
	if (k < 0 || k > x->shape[a])
		return rt_err(e, "k = %lld for a dim of %lld", (long long)k, (long long)x->shape[a]);
	memcpy(s, x->shape, sizeof s);
	s[a] = k;
	rt_val *ov = rt_out(e, op, 0, x->rank, s), *oi = NULL;
	if (!ov || (op->nout > 1 && !(oi = rt_out(e, op, 1, x->rank, s))))
		return -1;
	red[a] = 1;
	red_view v;
	red_view_make(x, red, &v);
	topk_item *it = rt_alloc(v.R * sizeof *it + sizeof *it);
	for (size_t p = 0; p < v.outer; p++)
		for (size_t i = 0; i < v.inner; i++) {
			for (size_t r = 0; r < v.R; r++) {
				it[r].v = v.x[(p * v.R + r) * v.inner + i];
				it[r].i = (int64_t)r;
			}
			qsort(it, v.R, sizeof *it, asc ? topk_asc : topk_desc);
			for (int64_t r = 0; r < k; r++) {
				size_t q = (p * (size_t)k + (size_t)r) * v.inner + i;
				rt_set(ov, q, it[r].v);
				if (oi)
					rt_set(oi, q, (double)it[r].i);
			}
		}
	free(it);
	free(v.x);
	return 0;
}

#define RED(name) {name, {"x", "axes", "keep_dims"}, 1, -1, 1, 1, k_reduce}

const rt_kernel rt_kernels_reduce[] = {
	RED("reduce_sum"), RED("reduce_mean"), RED("reduce_max"), RED("reduce_min"), RED("reduce_prod"),
	{"reduce_argmax", {"x", "axis", "keep_dims", "output_dtype"}, 1, -1, 1, 1, k_arg},
	{"reduce_argmin", {"x", "axis", "keep_dims", "output_dtype"}, 1, -1, 1, 1, k_arg},
	{"softmax", {"x", "axis"}, 1, -1, 1, 1, k_softmax},
	{"layer_norm", {"x", "axes", "gamma", "beta", "epsilon"}, 1, -1, 1, 1, k_layer_norm},
	{"topk", {"x", "k", "axis", "ascending", "sort", "return_indices", "output_indices_dtype"}, 1, -1, 1, 2,
	 k_topk},
	{NULL, {NULL}, 0, -1, 0, 0, NULL},
};
