/* rt_ops_shape.c: data-movement MIL ops for the CPU runtime (runtime.h).
 *
 * Views (reshape, expand_dims, squeeze, identity) share the input's buffer;
 * everything else copies elements with rt_copy_strided: transpose, concat,
 * split, tile, the slicing ops, slice_update (in place when the input dies
 * here, which is how the KV cache is updated without a copy), gather,
 * gather_along_axis, band_part, fill and range_1d. Elements are moved as
 * bytes, so the input dtype must be the declared output dtype. Sizes are
 * those of activations and KV caches (up to tens of MB per op).
 */
#define RT_INTERNAL
#include "verify/runtime.h"

#include <math.h>
#include <string.h>

static const char *dtn(int dt)
{
	const char *s = mil_dtype_name((mil_dtype)dt);
	return s ? s : "?";
}

/* The input moved as bytes must already have the output's dtype. */
static int same_dtype(rt_exec *e, const rt_op *op, const rt_val *x, int out)
{
	if (!rt_dtype_size(x->dtype))
		return rt_err(e, "input is not a numeric tensor");
	if (x->dtype != rt_out_dtype(op, out))
		return rt_err(e, "input is %s but output %d is declared %s", dtn(x->dtype), out,
			      dtn(rt_out_dtype(op, out)));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Views                                                               */

/* reshape: 0 copies x's dim (when the ranks agree), one -1 is inferred. */
static int k_reshape(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t s[RT_MAX_RANK];
	int n, infer = -1;
	if (rt_param_ints(e, rt_in(e, op, 1), "shape", s, RT_MAX_RANK, &n) != 0)
		return -1;
	size_t known = 1;
	for (int i = 0; i < n; i++) {
		if (s[i] == 0) {
			if (n != x->rank)
				return rt_err(e, "shape has a 0 but its length %d is not x's rank %d", n, x->rank);
			s[i] = x->shape[i];
		}
		if (s[i] == -1) {
			if (infer >= 0)
				return rt_err(e, "shape has more than one -1");
			infer = i;
		} else if (s[i] < 0) {
			return rt_err(e, "shape has a negative dimension %lld", (long long)s[i]);
		} else {
			known *= (size_t)s[i];
		}
	}
	if (infer >= 0) {
		if (known == 0 || x->numel % known != 0)
			return rt_err(e, "cannot infer the -1 of shape for %zu elements", x->numel);
		s[infer] = (int64_t)(x->numel / known);
	}
	return rt_out_view(e, op, 0, x, n, s);
}

static int k_expand_dims(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t axes[RT_MAX_RANK], s[RT_MAX_RANK];
	int n;
	if (rt_param_ints(e, rt_in(e, op, 1), "axes", axes, RT_MAX_RANK, &n) != 0)
		return -1;
	int r = x->rank + n;
	if (r > RT_MAX_RANK)
		return rt_err(e, "result rank %d is above %d", r, RT_MAX_RANK);
	int isnew[RT_MAX_RANK] = {0};
	for (int i = 0; i < n; i++) {
		int a = rt_axis(axes[i], r);
		if (a < 0 || isnew[a])
			return rt_err(e, "bad or repeated axis %lld", (long long)axes[i]);
		isnew[a] = 1;
	}
	for (int d = 0, k = 0; d < r; d++)
		s[d] = isnew[d] ? 1 : x->shape[k++];
	return rt_out_view(e, op, 0, x, r, s);
}

/* squeeze: without axes every 1 goes; listed axes that are not 1 stay
 * (PyTorch's rule, which coremltools follows). */
static int k_squeeze(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	const rt_val *av = rt_in(e, op, 1);
	int64_t axes[RT_MAX_RANK], s[RT_MAX_RANK];
	int n = 0, drop[RT_MAX_RANK] = {0};
	if (av) {
		if (rt_param_ints(e, av, "axes", axes, RT_MAX_RANK, &n) != 0)
			return -1;
		for (int i = 0; i < n; i++) {
			int a = rt_axis(axes[i], x->rank);
			if (a < 0)
				return rt_err(e, "bad axis %lld", (long long)axes[i]);
			drop[a] = x->shape[a] == 1;
		}
	} else {
		for (int d = 0; d < x->rank; d++)
			drop[d] = x->shape[d] == 1;
	}
	int r = 0;
	for (int d = 0; d < x->rank; d++)
		if (!drop[d])
			s[r++] = x->shape[d];
	return rt_out_view(e, op, 0, x, r, s);
}

static int k_identity(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	return rt_out_view(e, op, 0, x, x->rank, x->shape);
}

/* ------------------------------------------------------------------ */
/* Copies                                                              */

static int k_transpose(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t perm[RT_MAX_RANK], s[RT_MAX_RANK], xs[RT_MAX_RANK], src[RT_MAX_RANK], dst[RT_MAX_RANK];
	int n, seen[RT_MAX_RANK] = {0};
	if (same_dtype(e, op, x, 0) != 0 || rt_param_ints(e, rt_in(e, op, 1), "perm", perm, RT_MAX_RANK, &n) != 0)
		return -1;
	if (n != x->rank)
		return rt_err(e, "perm has %d entries for rank %d", n, x->rank);
	rt_strides(x->rank, x->shape, xs);
	for (int i = 0; i < n; i++) {
		int p = rt_axis(perm[i], n);
		if (p < 0 || seen[p])
			return rt_err(e, "perm is not a permutation");
		seen[p] = 1;
		s[i] = x->shape[p];
		src[i] = xs[p];
	}
	rt_val *o = rt_out(e, op, 0, n, s);
	if (!o)
		return -1;
	rt_strides(n, s, dst);
	rt_copy_strided(n, s, o->data, dst, x->data, src, rt_dtype_size(x->dtype));
	return 0;
}

/* concat: interleave puts element i of every input next to each other
 * (out[i * n + j] = values[j][i] along axis). */
static int k_concat(rt_exec *e, const rt_op *op)
{
	const rt_val *v0 = rt_var(e, op, 0);
	int64_t axis, s[RT_MAX_RANK], os[RT_MAX_RANK], xs[RT_MAX_RANK];
	int inter;
	if (rt_param_int(e, rt_in(e, op, 1), "axis", 0, &axis) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 2), "interleave", 0, &inter) != 0)
		return -1;
	int r = v0->rank, a = rt_axis(axis, r);
	if (a < 0)
		return rt_err(e, "axis %lld out of range for rank %d", (long long)axis, r);
	memcpy(s, v0->shape, sizeof s);
	s[a] = 0;
	for (int j = 0; j < op->nvar; j++) {
		const rt_val *v = rt_var(e, op, j);
		if (same_dtype(e, op, v, 0) != 0)
			return -1;
		int ok = v->rank == r;
		for (int d = 0; ok && d < r; d++)
			ok = d == a || v->shape[d] == v0->shape[d];
		if (!ok || (inter && v->shape[a] != v0->shape[a]))
			return rt_err(e, "value %d has a shape that does not concatenate", j);
		s[a] += v->shape[a];
	}
	rt_val *o = rt_out(e, op, 0, r, s);
	if (!o)
		return -1;
	rt_strides(r, s, os);
	size_t es = rt_dtype_size(o->dtype);
	int64_t at = 0, dst[RT_MAX_RANK];
	memcpy(dst, os, sizeof dst);
	if (inter)
		dst[a] = os[a] * op->nvar;
	for (int j = 0; j < op->nvar; j++) {
		const rt_val *v = rt_var(e, op, j);
		rt_strides(r, v->shape, xs);
		int64_t off = inter ? j * os[a] : at * os[a];
		rt_copy_strided(r, v->shape, (char *)o->data + off * (int64_t)es, dst, v->data, xs, es);
		at += v->shape[a];
	}
	return 0;
}

/* split: split_sizes, or num_splits parts of ceil(dim / n) (the last one
 * smaller when it does not divide). */
static int k_split(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t axis, ns, sizes[64], xs[RT_MAX_RANK], s[RT_MAX_RANK];
	int n = op->nout;
	if (same_dtype(e, op, x, 0) != 0 || rt_param_int(e, rt_in(e, op, 3), "axis", 0, &axis) != 0)
		return -1;
	int a = rt_axis(axis, x->rank);
	if (a < 0)
		return rt_err(e, "axis %lld out of range", (long long)axis);
	if (n > 64)
		return rt_err(e, "more than 64 outputs");
	if (rt_in(e, op, 2)) {
		int k;
		if (rt_param_ints(e, rt_in(e, op, 2), "split_sizes", sizes, 64, &k) != 0)
			return -1;
		if (k != n)
			return rt_err(e, "%d split sizes for %d outputs", k, n);
	} else {
		if (rt_param_int(e, rt_in(e, op, 1), "num_splits", n, &ns) != 0)
			return -1;
		if (ns != n)
			return rt_err(e, "num_splits %lld for %d outputs", (long long)ns, n);
		int64_t each = (x->shape[a] + n - 1) / n;
		for (int i = 0; i < n; i++)
			sizes[i] = each < x->shape[a] - each * i ? each : x->shape[a] - each * i;
	}
	int64_t sum = 0;
	for (int i = 0; i < n; i++) {
		if (sizes[i] < 0)
			return rt_err(e, "negative split size");
		sum += sizes[i];
	}
	if (sum != x->shape[a])
		return rt_err(e, "split sizes add up to %lld, not %lld", (long long)sum, (long long)x->shape[a]);
	rt_strides(x->rank, x->shape, xs);
	size_t es = rt_dtype_size(x->dtype);
	int64_t at = 0;
	for (int i = 0; i < n; i++) {
		memcpy(s, x->shape, sizeof s);
		s[a] = sizes[i];
		if (same_dtype(e, op, x, i) != 0)
			return -1;
		rt_val *o = rt_out(e, op, i, x->rank, s);
		if (!o)
			return -1;
		int64_t os[RT_MAX_RANK];
		rt_strides(x->rank, s, os);
		rt_copy_strided(x->rank, s, o->data, os, (const char *)x->data + at * xs[a] * (int64_t)es, xs, es);
		at += sizes[i];
	}
	return 0;
}

/* tile: one strided copy of x per combination of repetitions. */
static int k_tile(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t reps[RT_MAX_RANK], s[RT_MAX_RANK], os[RT_MAX_RANK], xs[RT_MAX_RANK], at[RT_MAX_RANK] = {0};
	int n;
	if (same_dtype(e, op, x, 0) != 0 || rt_param_ints(e, rt_in(e, op, 1), "reps", reps, RT_MAX_RANK, &n) != 0)
		return -1;
	if (n != x->rank)
		return rt_err(e, "reps has %d entries for rank %d", n, x->rank);
	for (int d = 0; d < n; d++) {
		if (reps[d] < 1)
			return rt_err(e, "reps must be positive");
		s[d] = x->shape[d] * reps[d];
	}
	rt_val *o = rt_out(e, op, 0, n, s);
	if (!o || o->numel == 0)
		return o ? 0 : -1;
	rt_strides(n, s, os);
	rt_strides(n, x->shape, xs);
	size_t es = rt_dtype_size(x->dtype);
	for (;;) {
		int64_t off = 0;
		for (int d = 0; d < n; d++)
			off += at[d] * x->shape[d] * os[d];
		rt_copy_strided(n, x->shape, (char *)o->data + off * (int64_t)es, os, x->data, xs, es);
		int d = n - 1;
		while (d >= 0 && ++at[d] == reps[d])
			at[d--] = 0;
		if (d < 0)
			break;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Slicing                                                             */

/* Per dim: first index, step and count; squeezed dims have count 1. */
typedef struct slice_box {
	int rank;
	int64_t start[RT_MAX_RANK], step[RT_MAX_RANK], len[RT_MAX_RANK];
	int squeeze[RT_MAX_RANK];
} slice_box;

/* Python slice bounds for one dim of size n (slice.indices). */
static void slice_dim(int64_t n, int64_t b, int64_t en, int64_t step, int bm, int em, int64_t *start, int64_t *len)
{
	if (step > 0) {
		b = bm ? 0 : b < 0 ? (b + n < 0 ? 0 : b + n) : (b > n ? n : b);
		en = em ? n : en < 0 ? (en + n < 0 ? 0 : en + n) : (en > n ? n : en);
		*len = en > b ? (en - b + step - 1) / step : 0;
	} else {
		b = bm ? n - 1 : b < 0 ? (b + n < 0 ? -1 : b + n) : (b >= n ? n - 1 : b);
		en = em ? -1 : en < 0 ? (en + n < 0 ? -1 : en + n) : (en >= n ? n - 1 : en);
		*len = b > en ? (b - en - step - 1) / -step : 0;
	}
	*start = b;
}

/* slice_by_index / slice_update parameters, in the kernels' order after x:
 * begin, end, stride, begin_mask, end_mask, squeeze_mask at p0..p0+5. */
static int solve_slice(rt_exec *e, const rt_op *op, const rt_val *x, int p0, slice_box *sb)
{
	int r = x->rank, nb, ne, ns = r;
	int64_t b[RT_MAX_RANK], en[RT_MAX_RANK], st[RT_MAX_RANK];
	int bm[RT_MAX_RANK], em[RT_MAX_RANK];
	if (rt_param_ints(e, rt_in(e, op, p0), "begin", b, RT_MAX_RANK, &nb) != 0 ||
	    rt_param_ints(e, rt_in(e, op, p0 + 1), "end", en, RT_MAX_RANK, &ne) != 0)
		return -1;
	for (int d = 0; d < r; d++)
		st[d] = 1;
	if (rt_in(e, op, p0 + 2) && rt_param_ints(e, rt_in(e, op, p0 + 2), "stride", st, RT_MAX_RANK, &ns) != 0)
		return -1;
	if (nb != r || ne != r || ns != r)
		return rt_err(e, "begin, end and stride need %d entries", r);
	if (rt_param_bools(e, rt_in(e, op, p0 + 3), "begin_mask", r, bm) != 0 ||
	    rt_param_bools(e, rt_in(e, op, p0 + 4), "end_mask", r, em) != 0 ||
	    rt_param_bools(e, rt_in(e, op, p0 + 5), "squeeze_mask", r, sb->squeeze) != 0)
		return -1;
	sb->rank = r;
	for (int d = 0; d < r; d++) {
		int64_t n = x->shape[d];
		if (sb->squeeze[d]) {
			int64_t i = bm[d] ? 0 : b[d] < 0 ? b[d] + n : b[d];
			if (i < 0 || i >= n)
				return rt_err(e, "index %lld out of range for dim %d of size %lld", (long long)b[d], d,
					      (long long)n);
			sb->start[d] = i;
			sb->step[d] = 1;
			sb->len[d] = 1;
			continue;
		}
		if (st[d] == 0)
			return rt_err(e, "stride 0 in dim %d", d);
		sb->step[d] = st[d];
		slice_dim(n, b[d], en[d], st[d], bm[d], em[d], &sb->start[d], &sb->len[d]);
	}
	return 0;
}

/* The box as a base element offset and strides into x, and the output shape
 * without the squeezed dims. */
static int64_t box_strides(const slice_box *sb, const rt_val *x, int64_t *src, int *orank, int64_t *oshape)
{
	int64_t xs[RT_MAX_RANK], base = 0;
	rt_strides(x->rank, x->shape, xs);
	*orank = 0;
	for (int d = 0; d < sb->rank; d++) {
		base += sb->start[d] * xs[d];
		src[d] = xs[d] * sb->step[d];
		if (!sb->squeeze[d])
			oshape[(*orank)++] = sb->len[d];
	}
	return base;
}

static int k_slice_by_index(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	slice_box sb;
	int64_t src[RT_MAX_RANK], os[RT_MAX_RANK], dst[RT_MAX_RANK];
	int orank;
	if (same_dtype(e, op, x, 0) != 0 || solve_slice(e, op, x, 1, &sb) != 0)
		return -1;
	int64_t base = box_strides(&sb, x, src, &orank, os);
	rt_val *o = rt_out(e, op, 0, orank, os);
	if (!o)
		return -1;
	rt_strides(sb.rank, sb.len, dst); /* the box is laid out like the output */
	size_t es = rt_dtype_size(x->dtype);
	rt_copy_strided(sb.rank, sb.len, o->data, dst, (const char *)x->data + base * (int64_t)es, src, es);
	return 0;
}

/* slice_update: x with the box replaced by update (whose shape is the box
 * without squeezed dims). Written in place when x is not needed elsewhere. */
static int k_slice_update(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *u = rt_in(e, op, 1);
	slice_box sb;
	int64_t dst[RT_MAX_RANK], us[RT_MAX_RANK], src[RT_MAX_RANK];
	int orank;
	if (same_dtype(e, op, x, 0) != 0 || solve_slice(e, op, x, 2, &sb) != 0)
		return -1;
	if (u->dtype != x->dtype)
		return rt_err(e, "update is %s, x is %s", dtn(u->dtype), dtn(x->dtype));
	int64_t base = box_strides(&sb, x, dst, &orank, us);
	int ok = u->rank == orank;
	for (int d = 0; ok && d < orank; d++)
		ok = u->shape[d] == us[d];
	if (!ok) {
		char a[128], b[128];
		return rt_err(e, "update has shape %s but the slice is %s", rt_shape_str(a, sizeof a, u->rank, u->shape),
			      rt_shape_str(b, sizeof b, orank, us));
	}
	size_t es = rt_dtype_size(x->dtype);
	rt_val *o;
	if (rt_can_reuse(e, op, 0, 0)) {
		if (!(o = rt_out_reuse(e, op, 0, 0)))
			return -1;
	} else {
		if (!(o = rt_out(e, op, 0, x->rank, x->shape)))
			return -1;
		memcpy(o->data, x->data, x->numel * es);
	}
	int64_t ustr[RT_MAX_RANK];
	rt_strides(u->rank, u->shape, ustr);
	for (int d = 0, k = 0; d < sb.rank; d++)
		src[d] = sb.squeeze[d] ? 0 : ustr[k++];
	rt_copy_strided(sb.rank, sb.len, (char *)o->data + base * (int64_t)es, dst, u->data, src, es);
	return 0;
}

/* slice_by_size: size -1 takes the rest of the dim. */
static int k_slice_by_size(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t b[RT_MAX_RANK], sz[RT_MAX_RANK], xs[RT_MAX_RANK], os[RT_MAX_RANK];
	int nb, ns, r = x->rank;
	if (same_dtype(e, op, x, 0) != 0 || rt_param_ints(e, rt_in(e, op, 1), "begin", b, RT_MAX_RANK, &nb) != 0 ||
	    rt_param_ints(e, rt_in(e, op, 2), "size", sz, RT_MAX_RANK, &ns) != 0)
		return -1;
	if (nb != r || ns != r)
		return rt_err(e, "begin and size need %d entries", r);
	rt_strides(r, x->shape, xs);
	int64_t base = 0;
	for (int d = 0; d < r; d++) {
		if (b[d] < 0)
			b[d] += x->shape[d];
		if (sz[d] == -1)
			sz[d] = x->shape[d] - b[d];
		if (b[d] < 0 || sz[d] < 0 || b[d] + sz[d] > x->shape[d])
			return rt_err(e, "slice out of range in dim %d", d);
		base += b[d] * xs[d];
	}
	rt_val *o = rt_out(e, op, 0, r, sz);
	if (!o)
		return -1;
	rt_strides(r, sz, os);
	size_t es = rt_dtype_size(x->dtype);
	rt_copy_strided(r, sz, o->data, os, (const char *)x->data + base * (int64_t)es, xs, es);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Gathers                                                             */

/* An index into a dim of size n: negative counts from the end; anything
 * else out of range is an error whether or not validate_indices is set
 * (Core ML leaves it undefined; we never read outside the tensor). */
static int wrap_index(rt_exec *e, int64_t k, int64_t n, int64_t *out)
{
	if (k < 0)
		k += n;
	if (k < 0 || k >= n)
		return rt_err(e, "index %lld out of range for a dim of size %lld", (long long)(k < 0 ? k - n : k),
			      (long long)n);
	*out = k;
	return 0;
}

static int int_tensor(const rt_val *v) { return rt_dtype_size(v->dtype) && !rt_is_float(v->dtype) && v->dtype != MIL_BOOL; }

/* gather: out = x.shape[:axis] + indices.shape[batch_dims:] + x.shape[axis+1:]. */
static int k_gather(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *ix = rt_in(e, op, 1);
	int64_t axis, bd, s[RT_MAX_RANK];
	int val;
	if (same_dtype(e, op, x, 0) != 0 || rt_param_int(e, rt_in(e, op, 2), "axis", 0, &axis) != 0 ||
	    rt_param_int(e, rt_in(e, op, 3), "batch_dims", 0, &bd) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 4), "validate_indices", 0, &val) != 0)
		return -1;
	if (!int_tensor(ix))
		return rt_err(e, "indices must be integers");
	int a = rt_axis(axis, x->rank);
	if (bd < 0)
		bd += ix->rank;
	if (a < 0 || bd < 0 || bd > a || bd > ix->rank)
		return rt_err(e, "bad axis %lld / batch_dims %lld", (long long)axis, (long long)bd);
	int orank = a + (ix->rank - (int)bd) + (x->rank - a - 1);
	if (orank > RT_MAX_RANK)
		return rt_err(e, "result rank %d is above %d", orank, RT_MAX_RANK);
	for (int d = 0; d < bd; d++)
		if (ix->shape[d] != x->shape[d])
			return rt_err(e, "batch dim %d differs between x and indices", d);
	int r = 0;
	for (int d = 0; d < a; d++)
		s[r++] = x->shape[d];
	for (int d = (int)bd; d < ix->rank; d++)
		s[r++] = ix->shape[d];
	for (int d = a + 1; d < x->rank; d++)
		s[r++] = x->shape[d];
	rt_val *o = rt_out(e, op, 0, r, s);
	if (!o)
		return -1;
	size_t B = rt_numel((int)bd, x->shape), P = rt_numel(a - (int)bd, x->shape + bd);
	size_t D = (size_t)x->shape[a], I = rt_numel(x->rank - a - 1, x->shape + a + 1);
	size_t J = rt_numel(ix->rank - (int)bd, ix->shape + bd), es = rt_dtype_size(x->dtype);
	for (size_t b = 0; b < B; b++)
		for (size_t j = 0; j < J; j++) {
			int64_t k = 0;
			if (wrap_index(e, rt_get_i64(ix, b * J + j), (int64_t)D, &k) != 0)
				return -1;
			for (size_t p = 0; p < P; p++) {
				char *dst = (char *)o->data + (((b * P + p) * J + j) * I) * es;
				size_t src = ((b * P + p) * D + (size_t)k) * I;
				if (x->lut) /* a palettized table (embeddings): only the rows asked for */
					rt_lut_expand(x->lut, src, I, dst);
				else
					memcpy(dst, (const char *)x->data + src * es, I * es);
			}
		}
	return 0;
}

/* gather_along_axis: out has the indices' shape; along axis, out[.., j, ..]
 * = x[.., indices[.., j, ..], ..]. */
static int k_gather_along_axis(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *ix = rt_in(e, op, 1);
	int64_t axis;
	int val;
	if (same_dtype(e, op, x, 0) != 0 || rt_param_int(e, rt_in(e, op, 2), "axis", 0, &axis) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 3), "validate_indices", 0, &val) != 0)
		return -1;
	int a = rt_axis(axis, x->rank);
	if (!int_tensor(ix) || a < 0 || ix->rank != x->rank)
		return rt_err(e, "indices must be integers of x's rank, axis in range");
	for (int d = 0; d < x->rank; d++)
		if (d != a && ix->shape[d] != x->shape[d])
			return rt_err(e, "indices dim %d differs from x's", d);
	rt_val *o = rt_out(e, op, 0, ix->rank, ix->shape);
	if (!o)
		return -1;
	size_t outer = rt_numel(a, x->shape), inner = rt_numel(x->rank - a - 1, x->shape + a + 1);
	size_t dx = (size_t)x->shape[a], di = (size_t)ix->shape[a], es = rt_dtype_size(x->dtype);
	for (size_t p = 0; p < outer; p++)
		for (size_t j = 0; j < di; j++)
			for (size_t i = 0; i < inner; i++) {
				size_t q = (p * di + j) * inner + i;
				int64_t k = 0;
				if (wrap_index(e, rt_get_i64(ix, q), (int64_t)dx, &k) != 0)
					return -1;
				memcpy((char *)o->data + q * es, (const char *)x->data + ((p * dx + (size_t)k) * inner + i) * es,
				       es);
			}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Generators and masks                                                */

/* band_part: keep x[.., m, n] where (lower < 0 or m - n <= lower) and
 * (upper < 0 or n - m <= upper), zero elsewhere. */
static int k_band_part(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0);
	int64_t lo, up;
	if (same_dtype(e, op, x, 0) != 0 || rt_param_int(e, rt_in(e, op, 1), "lower", -1, &lo) != 0 ||
	    rt_param_int(e, rt_in(e, op, 2), "upper", -1, &up) != 0)
		return -1;
	if (x->rank < 2)
		return rt_err(e, "x needs rank >= 2");
	rt_val *o = rt_out(e, op, 0, x->rank, x->shape);
	if (!o)
		return -1;
	size_t M = (size_t)x->shape[x->rank - 2], N = (size_t)x->shape[x->rank - 1];
	size_t es = rt_dtype_size(x->dtype);
	for (size_t i = 0; i < x->numel; i++) {
		int64_t m = (int64_t)(i / N % M), n = (int64_t)(i % N);
		int keep = (lo < 0 || m - n <= lo) && (up < 0 || n - m <= up);
		if (keep)
			memcpy((char *)o->data + i * es, (const char *)x->data + i * es, es);
		else
			memset((char *)o->data + i * es, 0, es);
	}
	return 0;
}

static int k_fill(rt_exec *e, const rt_op *op)
{
	int64_t s[RT_MAX_RANK];
	int n;
	float v;
	if (rt_param_ints(e, rt_in(e, op, 0), "shape", s, RT_MAX_RANK, &n) != 0 ||
	    rt_param_float(e, rt_in(e, op, 1), "value", 0.0f, &v) != 0)
		return -1;
	for (int d = 0; d < n; d++)
		if (s[d] < 0)
			return rt_err(e, "negative dimension in shape");
	rt_val *o = rt_out(e, op, 0, n, s);
	if (!o)
		return -1;
	double x = rt_in(e, op, 1) ? rt_get(rt_in(e, op, 1), 0) : 0.0;
	for (size_t i = 0; i < o->numel; i++)
		rt_set(o, i, x);
	return 0;
}

/* range_1d: start, start + step, ... while < end (> end for a negative step). */
static int k_range_1d(rt_exec *e, const rt_op *op)
{
	const rt_val *ve = rt_in(e, op, 0), *vs = rt_in(e, op, 1), *vt = rt_in(e, op, 2);
	if (ve->numel != 1 || vs->numel != 1 || vt->numel != 1 || !rt_dtype_size(ve->dtype))
		return rt_err(e, "end, start and step must be scalars");
	double end = rt_get(ve, 0), start = rt_get(vs, 0), step = rt_get(vt, 0);
	if (step == 0 || isnan(end) || isnan(start) || isnan(step))
		return rt_err(e, "step must be non-zero");
	double cnt = ceil((end - start) / step);
	if (cnt < 0)
		cnt = 0;
	if (cnt > 1e9)
		return rt_err(e, "range too long");
	int64_t n = (int64_t)cnt;
	rt_val *o = rt_out(e, op, 0, 1, &n);
	if (!o)
		return -1;
	for (int64_t i = 0; i < n; i++)
		rt_set(o, (size_t)i, start + (double)i * step);
	return 0;
}

const rt_kernel rt_kernels_shape[] = {
	{"reshape", {"x", "shape"}, 3, -1, 1, 1, k_reshape},
	{"expand_dims", {"x", "axes"}, 3, -1, 1, 1, k_expand_dims},
	{"squeeze", {"x", "axes"}, 1, -1, 1, 1, k_squeeze},
	{"identity", {"x"}, 1, -1, 1, 1, k_identity},
	{"transpose", {"x", "perm"}, 3, -1, 1, 1, k_transpose},
	{"concat", {"values", "axis", "interleave"}, 3, 0, 1, 1, k_concat},
	{"split", {"x", "num_splits", "split_sizes", "axis"}, 9, -1, 1, 64, k_split},
	{"tile", {"x", "reps"}, 3, -1, 1, 1, k_tile},
	{"slice_by_index", {"x", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"}, 7, -1, 1, 1,
	 k_slice_by_index},
	{"slice_update",
	 {"x", "update", "begin", "end", "stride", "begin_mask", "end_mask", "squeeze_mask"}, 15, -1, 1, 1,
	 k_slice_update},
	{"slice_by_size", {"x", "begin", "size"}, 7, -1, 1, 1, k_slice_by_size},
	{"gather", {"x", "indices", "axis", "batch_dims", "validate_indices"}, 3, -1, 1, 1, k_gather},
	{"gather_along_axis", {"x", "indices", "axis", "validate_indices"}, 3, -1, 1, 1, k_gather_along_axis},
	{"band_part", {"x", "lower", "upper"}, 1, -1, 1, 1, k_band_part},
	{"fill", {"shape", "value"}, 1, -1, 1, 1, k_fill},
	{"range_1d", {"end", "start", "step"}, 7, -1, 1, 1, k_range_1d},
	{NULL, {NULL}, 0, -1, 0, 0, NULL},
};
