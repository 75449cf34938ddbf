/* runtime.c: load a Core ML ML Program and run it on the CPU (see runtime.h).
 *
 * Loading turns each program function into an array of slots (function
 * inputs, states, constants, op outputs) and an array of ops whose
 * parameters are slot numbers, so a run never looks a name up. Constants are
 * materialised here once: immediates decoded, fp16/fp32/int blobs used in
 * place from the mapped weight.bin, palettized weights (constexpr_lut_to_dense)
 * left palettized (rt_lut) for the kernels that expand rows on the fly
 * (conv, linear, matmul, gather), so a palettized model takes about the
 * size of its weight file; only palettes some other op reads, and vector
 * palettes, are dequantized, once per distinct (indices, lut) blob pair.
 *
 * Running walks the ops in order. Values live in reference-counted buffers:
 * views (reshape, squeeze, read_state...) share a buffer, every slot is
 * released right after its last use, and a value is only ever modified in
 * place when nobody else holds it. The KV cache update pattern coremltools
 * writes (read_state -> slice_update -> write_state) is recognised at load so
 * the update happens in the state's own buffer instead of copying the whole
 * cache twice per layer.
 *
 * Sections: elements and fp16; buffers and tensors; parallel ranges; loading
 * constants; loading functions; states; running; kernel helpers; state ops.
 */
#define RT_INTERNAL
#include "verify/runtime.h"

#include "base/util.h"
#include "base/workpool.h"
#include "base/fsutil.h"
#include "coreml/mlmodel.h"
#include "coreml/mlmodelc.h"
#include "coreml/mlpackage.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>     /* __get_cpuid: the F16C feature bit */
#include <immintrin.h> /* F16C conversions, used only when the CPU has them */
#define RT_X86 1
#endif

/* ------------------------------------------------------------------ */
/* Elements and fp16                                                   */

size_t rt_dtype_size(int dt)
{
	switch (dt) {
	case MIL_FP32: case MIL_INT32: return 4;
	case MIL_FP16: case MIL_INT16: case MIL_UINT16: return 2;
	case MIL_INT8: case MIL_UINT8: case MIL_BOOL: return 1;
	default: return 0;
	}
}

int rt_is_float(int dt) { return dt == MIL_FP16 || dt == MIL_FP32; }

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* Exact: em << 13 read as a float is the half's magnitude times 2^-112
 * (subnormal halves become fp32 subnormals), so one multiply rebiases it. */
float rt_h2f(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fff;
	if (em >= 0x7c00)
		return bits_f32(sign | 0x7f800000 | ((em & 0x3ff) << 13));
	float f = bits_f32(em << 13) * 0x1p112f;
	uint32_t u;
	memcpy(&u, &f, 4);
	return bits_f32(u | sign);
}

/* Round to nearest even; IEEE overflow to inf (Core ML arithmetic does not
 * clamp), NaN stays a quiet NaN with its sign. */
uint16_t rt_f2h(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffff;
	if (a >= 0x7f800000)
		return sign | (a > 0x7f800000 ? 0x7e00 : 0x7c00);
	if (a >= 0x477ff000) /* >= 65520, the midpoint to 2^16: rounds to inf */
		return sign | 0x7c00;
	if (a < 0x38800000) { /* below 2^-14: a subnormal half, m * 2^-24 */
		float v = bits_f32(a) * 0x1p24f; /* exact, < 1024 */
		v = (v + 0x1p23f) - 0x1p23f;    /* nearest even integer */
		return sign | (uint16_t)v;
	}
	uint32_t r = a - 0x38000000; /* exponent rebiased from 127 to 15 */
	uint32_t h = r >> 13, rem = r & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++;
	return sign | (uint16_t)h;
}

#ifdef RT_X86
static int g_f16c;
static pthread_once_t g_f16c_once = PTHREAD_ONCE_INIT;

static void detect_f16c(void)
{
	unsigned a, b, c, d;
	__builtin_cpu_init();
	/* avx2 also tells the OS saves the YMM state F16C needs. */
	g_f16c = __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

static int have_f16c(void)
{
	pthread_once(&g_f16c_once, detect_f16c);
	return g_f16c;
}

__attribute__((target("avx2,f16c"))) static void h2f_f16c(const uint16_t *src, float *dst, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
	for (; i < n; i++)
		dst[i] = rt_h2f(src[i]);
}

/* The F16C instruction rounds to nearest even and overflows to inf, as rt_f2h. */
__attribute__((target("avx2,f16c"))) static void f2h_f16c(const float *src, uint16_t *dst, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		dst[i] = rt_f2h(src[i]);
}
#endif

void rt_h2f_n(const uint16_t *src, float *dst, size_t n)
{
#ifdef RT_X86
	if (have_f16c()) {
		h2f_f16c(src, dst, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = rt_h2f(src[i]);
}

void rt_f2h_n(const float *src, uint16_t *dst, size_t n)
{
#ifdef RT_X86
	if (have_f16c()) {
		f2h_f16c(src, dst, n);
		return;
	}
#endif
	for (size_t i = 0; i < n; i++)
		dst[i] = rt_f2h(src[i]);
}

/* Float to integer the way coremltools' cast constant-folds it (numpy
 * astype): truncate toward zero. NaN gives 0 and values outside the type
 * saturate (numpy leaves those undefined). */
static int64_t to_int(double x, int64_t lo, int64_t hi)
{
	if (isnan(x))
		return 0;
	if (x <= (double)lo)
		return lo;
	if (x >= (double)hi)
		return hi;
	return (int64_t)x;
}

double rt_get(const rt_val *v, size_t i)
{
	switch (v->dtype) {
	case MIL_FP16: return rt_h2f(((const uint16_t *)v->data)[i]);
	case MIL_FP32: return ((const float *)v->data)[i];
	case MIL_INT32: return ((const int32_t *)v->data)[i];
	case MIL_INT16: return ((const int16_t *)v->data)[i];
	case MIL_UINT16: return ((const uint16_t *)v->data)[i];
	case MIL_INT8: return ((const int8_t *)v->data)[i];
	case MIL_UINT8: case MIL_BOOL: return ((const uint8_t *)v->data)[i];
	default: return 0;
	}
}

int64_t rt_get_i64(const rt_val *v, size_t i)
{
	switch (v->dtype) {
	case MIL_INT32: return ((const int32_t *)v->data)[i];
	case MIL_INT16: return ((const int16_t *)v->data)[i];
	case MIL_UINT16: return ((const uint16_t *)v->data)[i];
	case MIL_INT8: return ((const int8_t *)v->data)[i];
	case MIL_UINT8: case MIL_BOOL: return ((const uint8_t *)v->data)[i];
	default: return to_int(rt_get(v, i), INT64_MIN, INT64_MAX);
	}
}

void rt_set(rt_val *v, size_t i, double x)
{
	switch (v->dtype) {
	case MIL_FP16: ((uint16_t *)v->data)[i] = rt_f2h((float)x); break;
	case MIL_FP32: ((float *)v->data)[i] = (float)x; break;
	case MIL_INT32: ((int32_t *)v->data)[i] = (int32_t)to_int(x, INT32_MIN, INT32_MAX); break;
	case MIL_INT16: ((int16_t *)v->data)[i] = (int16_t)to_int(x, INT16_MIN, INT16_MAX); break;
	case MIL_UINT16: ((uint16_t *)v->data)[i] = (uint16_t)to_int(x, 0, UINT16_MAX); break;
	case MIL_INT8: ((int8_t *)v->data)[i] = (int8_t)to_int(x, INT8_MIN, INT8_MAX); break;
	case MIL_UINT8: ((uint8_t *)v->data)[i] = (uint8_t)to_int(x, 0, UINT8_MAX); break;
	case MIL_BOOL: ((uint8_t *)v->data)[i] = x != 0; break;
	default: break;
	}
}

/* Palettized: expanded in blocks through a small buffer (stride 0 or > 1
 * reads element by element; only the rare non-GEMM paths do that). */
static void lut_load_f32(const rt_lut *l, size_t off, size_t stride, size_t n, float *dst)
{
	if (stride == 1) {
		rt_lut_expand_f32(l, off, n, dst);
		return;
	}
	for (size_t i = 0; i < n; i++)
		rt_lut_expand_f32(l, off + i * stride, 1, dst + i);
}

void rt_load_f32(const rt_val *v, size_t off, size_t stride, size_t n, float *dst)
{
	if (v->lut) {
		lut_load_f32(v->lut, off, stride, n, dst);
	} else if (stride == 1 && v->dtype == MIL_FP16) {
		rt_h2f_n((const uint16_t *)v->data + off, dst, n);
	} else if (stride == 1 && v->dtype == MIL_FP32) {
		memcpy(dst, (const float *)v->data + off, n * sizeof(float));
	} else if (stride == 0) {
		float x = (float)rt_get(v, off);
		for (size_t i = 0; i < n; i++)
			dst[i] = x;
	} else {
		for (size_t i = 0; i < n; i++)
			dst[i] = (float)rt_get(v, off + i * stride);
	}
}

void rt_store_f32(rt_val *v, size_t off, size_t n, const float *src)
{
	if (v->dtype == MIL_FP16)
		rt_f2h_n(src, (uint16_t *)v->data + off, n);
	else if (v->dtype == MIL_FP32)
		memcpy((float *)v->data + off, src, n * sizeof(float));
	else
		for (size_t i = 0; i < n; i++)
			rt_set(v, off + i, src[i]);
}

void rt_load_f64(const rt_val *v, size_t off, size_t stride, size_t n, double *dst)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = rt_get(v, off + i * stride);
}

void rt_store_f64(rt_val *v, size_t off, size_t n, const double *src)
{
	for (size_t i = 0; i < n; i++)
		rt_set(v, off + i, src[i]);
}

size_t rt_numel(int rank, const int64_t *shape)
{
	size_t n = 1;
	for (int i = 0; i < rank; i++)
		n *= (size_t)shape[i];
	return n;
}

void rt_strides(int rank, const int64_t *shape, int64_t *strides)
{
	int64_t s = 1;
	for (int i = rank - 1; i >= 0; i--) {
		strides[i] = s;
		s *= shape[i];
	}
}

/* Innermost dimension as a tight loop (memcpy when contiguous on both sides). */
void rt_copy_strided(int rank, const int64_t *shape, void *dst, const int64_t *dst_strides, const void *src,
		     const int64_t *src_strides, size_t esize)
{
	if (rank == 0) {
		memcpy(dst, src, esize);
		return;
	}
	if (rt_numel(rank, shape) == 0)
		return;
	int64_t idx[RT_MAX_RANK] = {0};
	int last = rank - 1;
	int64_t n = shape[last], ds = dst_strides[last], ss = src_strides[last];
	for (;;) {
		int64_t doff = 0, soff = 0;
		for (int d = 0; d < last; d++) {
			doff += idx[d] * dst_strides[d];
			soff += idx[d] * src_strides[d];
		}
		char *dp = (char *)dst + doff * (int64_t)esize;
		const char *sp = (const char *)src + soff * (int64_t)esize;
		if (ds == 1 && ss == 1) {
			memcpy(dp, sp, (size_t)n * esize);
		} else if (esize == 2) {
			for (int64_t i = 0; i < n; i++)
				memcpy(dp + i * ds * 2, sp + i * ss * 2, 2);
		} else {
			for (int64_t i = 0; i < n; i++)
				memcpy(dp + i * ds * (int64_t)esize, sp + i * ss * (int64_t)esize, esize);
		}
		int d = last - 1;
		while (d >= 0 && ++idx[d] == shape[d])
			idx[d--] = 0;
		if (d < 0)
			break;
	}
}

const char *rt_shape_str(char *buf, size_t cap, int rank, const int64_t *shape)
{
	size_t len = (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < rank && len < cap; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", (long long)shape[i]);
	if (len < cap)
		snprintf(buf + len, cap - len, "]");
	return buf;
}

int rt_axis(int64_t a, int r)
{
	if (a < 0)
		a += r;
	return a < 0 || a >= r ? -1 : (int)a;
}

/* ------------------------------------------------------------------ */
/* Buffers and tensors                                                 */

#ifdef __GLIBC__
#include <malloc.h>
#endif

/* A decode step allocates and frees the same few MB (tiled KV caches,
 * activations) in every op. glibc serves blocks over 128 KB with fresh
 * mmaps and returns them on free, so every step page-faults them in again:
 * 40% of a 1B-shaped model's decode time on a VM (measured). Keep blocks up
 * to 32 MB in the heap instead, and up to 64 MB of free heap top. */
static pthread_once_t g_heap_once = PTHREAD_ONCE_INIT;

static void keep_heap(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

void *rt_alloc(size_t nbytes)
{
	pthread_once(&g_heap_once, keep_heap);
	void *p = NULL;
	size_t n = nbytes ? (nbytes + 63) & ~(size_t)63 : 64;
	if (n < nbytes || posix_memalign(&p, 64, n) != 0)
		die("out of memory (%zu bytes)", nbytes);
	return p;
}

static rt_buf *buf_new(size_t nbytes)
{
	rt_buf *b = xcalloc(1, sizeof *b);
	b->refs = 1;
	b->nbytes = nbytes;
	b->data = rt_alloc(nbytes);
	return b;
}

static void buf_unref(rt_buf *b)
{
	if (b && --b->refs == 0) {
		buf_unref(b->hold[0]);
		buf_unref(b->hold[1]);
		free(b->data);
		free(b);
	}
}

static void val_release(rt_val *v)
{
	buf_unref(v->buf);
	memset(v, 0, sizeof *v);
}

/* A new owned value of this dtype and shape (uninitialised data). */
static void val_alloc(rt_val *v, int dtype, int rank, const int64_t *shape)
{
	int64_t sh[RT_MAX_RANK];
	if (rank)
		memcpy(sh, shape, (size_t)rank * sizeof *shape); /* shape may be v->shape */
	memset(v, 0, sizeof *v);
	v->dtype = dtype;
	v->rank = rank;
	memcpy(v->shape, sh, (size_t)rank * sizeof *sh);
	v->numel = rt_numel(rank, shape);
	v->buf = buf_new(v->numel * rt_dtype_size(dtype));
	v->data = v->buf->data;
}

/* A shape from untrusted numbers: every dim >= 0 and the byte size fits. */
static int shape_ok(int rank, const int64_t *shape, size_t esize)
{
	uint64_t n = esize;
	if (rank < 0 || rank > RT_MAX_RANK)
		return 0;
	for (int i = 0; i < rank; i++)
		if (shape[i] < 0 || mul_u64(n, (uint64_t)shape[i], &n) != 0)
			return 0;
	return n <= (uint64_t)PTRDIFF_MAX;
}

int rt_tensor_alloc(rt_tensor *t, const char *name, int dtype, int rank, const int64_t *shape)
{
	memset(t, 0, sizeof *t);
	size_t es = rt_dtype_size(dtype);
	if (!es)
		return errf("tensor '%s': unsupported dtype %d", name ? name : "", dtype);
	if (!shape_ok(rank, shape, es))
		return errf("tensor '%s': bad shape (rank %d)", name ? name : "", rank);
	t->name = name ? xstrdup(name) : NULL;
	t->dtype = dtype;
	t->rank = rank;
	if (rank)
		memcpy(t->shape, shape, (size_t)rank * sizeof *shape);
	t->data = xcalloc(rt_numel(rank, shape) ? rt_numel(rank, shape) : 1, es);
	return 0;
}

void rt_tensor_release(rt_tensor *t)
{
	if (!t)
		return;
	free((void *)t->name);
	free(t->data);
	memset(t, 0, sizeof *t);
}

void rt_tensors_free(rt_tensor *ts, int n)
{
	if (!ts)
		return;
	for (int i = 0; i < n; i++)
		rt_tensor_release(&ts[i]);
	free(ts);
}

size_t rt_tensor_numel(const rt_tensor *t) { return rt_numel(t->rank, t->shape); }

static rt_val tensor_view(const rt_tensor *t)
{
	rt_val v = {.dtype = t->dtype, .rank = t->rank, .data = t->data};
	memcpy(v.shape, t->shape, sizeof v.shape);
	v.numel = rt_tensor_numel(t);
	return v;
}

float rt_tensor_get(const rt_tensor *t, size_t i)
{
	rt_val v = tensor_view(t);
	return (float)rt_get(&v, i);
}

void rt_tensor_set(rt_tensor *t, size_t i, float x)
{
	rt_val v = tensor_view(t);
	rt_set(&v, i, x);
}

rt_tensor *rt_tensors_find(rt_tensor *ts, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (ts[i].name && streq(ts[i].name, name))
			return &ts[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Parallel ranges (the threads are common/workpool.c's)               */

/* One rt_parallel call: [0, total) in units of grain, split into parts. */
typedef struct range_job {
	size_t total, grain;
	void (*fn)(void *, size_t, size_t);
	void *ctx;
} range_job;

/* Part i of parts; empty parts are skipped. */
static void range_part(void *arg, int i, int parts)
{
	const range_job *j = arg;
	size_t units = (j->total + j->grain - 1) / j->grain;
	size_t b = units * (size_t)i / (size_t)parts * j->grain;
	size_t e = units * (size_t)(i + 1) / (size_t)parts * j->grain;
	if (e > j->total)
		e = j->total;
	if (b < e)
		j->fn(j->ctx, b, e);
}

/* ------------------------------------------------------------------ */
/* Model structures                                                    */

typedef enum slot_kind { SLOT_INPUT, SLOT_STATE, SLOT_CONST, SLOT_OP } slot_kind;

typedef struct rt_slot {
	const char *name;
	slot_kind kind;
	const mil_type *type; /* declared tensor type (a state's wrapped type) */
	int index;            /* SLOT_INPUT/SLOT_STATE: position in the function's inputs */
	int producer;         /* SLOT_OP: op index */
	int nuses;
	int last_use;         /* op index; nops for block outputs; -1 unused */
	rt_val cval;          /* SLOT_CONST: the value (a reference held by the function) */
} rt_slot;

typedef struct rt_fn {
	const char *name;
	int nslots, slots_cap;
	rt_slot *slots;
	int nops;
	rt_op *ops;
	int nin, *in_slot; /* every function input, states included */
	rt_io *in;
	int nout, *out_slot;
	rt_io *out;
	int nrel_end, *rel_end; /* released when the run ends */
} rt_fn;

/* A dequantized palettized weight, shared between functions. */
typedef struct lut_cache {
	const void *reader;
	uint64_t idx_off, lut_off;
	rt_val val;
} lut_cache;

struct rt_model {
	char *what;
	ml_model *mm;
	mlpackage pkg;
	int has_pkg;
	blob_reader *weights;
	int owns_weights; /* a .mlmodelc's weights/weight.bin, opened here */
	int nfns;
	rt_fn *fns;
	const char *default_fn;
	lut_cache *cache;
	size_t ncache, cache_cap;
	int threads;
	workpool *pool;
};

struct rt_exec {
	rt_model *m;
	const rt_fn *fn;
	rt_val *vals;
	struct state_var **states; /* per function input index (states only) */
	int op_index;
};

typedef struct state_var {
	char *name;
	int rank;
	int64_t shape[RT_MAX_RANK];
	size_t numel;
	rt_buf *buf;
} state_var;

struct rt_state {
	int n;
	state_var *v;
};

/* Parallel range split over the model's threads (see rt_parallel). */
static void parallel_model(rt_model *m, size_t n, size_t grain, void (*fn)(void *, size_t, size_t), void *ctx)
{
	if (grain == 0)
		grain = 1;
	size_t units = (n + grain - 1) / grain;
	int parts = m->threads < 1 ? 1 : m->threads;
	if ((size_t)parts > units)
		parts = (int)units;
	if (parts <= 1) {
		if (n)
			fn(ctx, 0, n);
		return;
	}
	if (!m->pool)
		m->pool = workpool_new(m->threads - 1); /* fewer workers still give the same results */
	if (parts > workpool_size(m->pool) + 1)
		parts = workpool_size(m->pool) + 1;
	if (parts <= 1) {
		fn(ctx, 0, n);
		return;
	}
	range_job job = {.total = n, .grain = grain, .fn = fn, .ctx = ctx};
	workpool_run(m->pool, parts, range_part, &job);
}

void rt_parallel(rt_exec *e, size_t n, size_t grain, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx)
{
	parallel_model(e->m, n, grain, fn, ctx);
}

/* ------------------------------------------------------------------ */
/* Loading constants                                                   */

/* var name -> slot, for the duration of one function's load. */
typedef struct name_map {
	size_t cap; /* power of two */
	int *v;     /* slot + 1, 0 = empty */
} name_map;

/* What load functions need to report and resolve. */
typedef struct loader {
	rt_model *m;
	const char *fn;   /* function being loaded */
	const char *op;   /* op being loaded, or NULL */
	name_map map;
} loader;

static int lerr(loader *L, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int lerr(loader *L, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (L->op)
		return errf("%s: function '%s' op '%s': %s", L->m->what, L->fn, L->op, msg);
	return errf("%s: function '%s': %s", L->m->what, L->fn, msg);
}

/* The storage dtype of a MIL dtype: itself for storage types and strings,
 * uint8 for unsigned sub-byte types (unpacked), int8 for int4; 0 if none. */
static int storage_dtype(int dt)
{
	if (rt_dtype_size(dt) || dt == MIL_STRING)
		return dt;
	switch (dt) {
	case MIL_UINT1: case MIL_UINT2: case MIL_UINT3: case MIL_UINT4: case MIL_UINT6: return MIL_UINT8;
	case MIL_INT4: return MIL_INT8;
	default: return 0;
	}
}

static const char *dt_name(int dt)
{
	const char *s = mil_dtype_name((mil_dtype)dt);
	return s ? s : "unknown";
}

/* Rank and constant shape of a tensor type; -1 with the reason otherwise. */
static int type_shape(loader *L, const mil_type *t, const char *what, int *rank, int64_t *shape)
{
	if (!t || t->kind != MIL_TYPE_TENSOR)
		return lerr(L, "%s is not a tensor", what);
	if (t->ndims > RT_MAX_RANK)
		return lerr(L, "%s has rank %zu (at most %d supported)", what, t->ndims, RT_MAX_RANK);
	*rank = (int)t->ndims;
	for (size_t i = 0; i < t->ndims; i++) {
		if (t->dims[i].kind != MIL_DIM_CONST || t->dims[i].size > (uint64_t)INT32_MAX)
			return lerr(L, "%s has a non-constant dimension %zu", what, i);
		shape[i] = (int64_t)t->dims[i].size;
	}
	return 0;
}

/* Immediate tensor value -> v (storage dtype sdt). */
static int load_immediate(loader *L, const mil_value *mv, int dt, int sdt, rt_val *v, const char *what)
{
	const mil_tensor_value *tv = &mv->tensor;
	size_t n = v->numel;
	if (sdt == MIL_STRING) {
		if (tv->field != MIL_TV_STRINGS || tv->n != 1 || n != 1)
			return lerr(L, "%s: only single strings are supported", what);
		v->str = tv->u.strings[0];
		v->dtype = MIL_STRING;
		return 0;
	}
	/* Counts first: a bogus declared shape must not cause a huge allocation. */
	size_t want = tv->field == MIL_TV_BYTES ? mil_dtype_bytes((mil_dtype)dt, n) : n;
	if (tv->n != want)
		return lerr(L, "%s: %zu %s for %zu %s values", what, tv->n,
			    tv->field == MIL_TV_BYTES ? "bytes" : "values", n, dt_name(dt));
	val_alloc(v, sdt, v->rank, v->shape);
	if (tv->field == MIL_TV_BYTES) {
		if (sdt == dt) {
			memcpy(v->data, tv->u.bytes, want);
		} else if (dt == MIL_INT4) {
			blob_unpack_int4(tv->u.bytes, n, v->data);
		} else {
			blob_unpack_bits(tv->u.bytes, n, mil_dtype_bits((mil_dtype)dt), v->data);
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		double x;
		switch (tv->field) {
		case MIL_TV_FLOATS: x = tv->u.floats[i]; break;
		case MIL_TV_DOUBLES: x = tv->u.doubles[i]; break;
		case MIL_TV_INTS: x = tv->u.ints[i]; break;
		case MIL_TV_LONGINTS: x = (double)tv->u.longints[i]; break;
		case MIL_TV_BOOLS: x = tv->u.bools[i]; break;
		default:
			val_release(v);
			return lerr(L, "%s: unsupported immediate encoding %d", what, (int)tv->field);
		}
		rt_set(v, i, x);
	}
	return 0;
}

static blob_reader *value_reader(loader *L, const mil_value *mv)
{
	rt_model *m = L->m;
	if (m->has_pkg) {
		blob_reader *r = mlpackage_blob_file(&m->pkg, mv->file);
		if (!r)
			lerr(L, "%s", errmsg());
		return r;
	}
	if (!streq(mv->file, MIL_WEIGHT_FILE) || !m->weights) {
		lerr(L, "blob file \"%s\" is not available", mv->file);
		return NULL;
	}
	return m->weights;
}

/* The blob behind a blob value, checked against its declared type. */
static const blob_info *value_blob(loader *L, const mil_value *mv, int dt, size_t numel, blob_reader **rp,
				   const char *what)
{
	blob_reader *r = value_reader(L, mv);
	if (!r)
		return NULL;
	const blob_info *b = blob_reader_find(r, mv->offset);
	if (!b) {
		lerr(L, "%s: %s", what, errmsg());
		return NULL;
	}
	if (b->dtype != mil_to_blob_dtype((mil_dtype)dt) || b->n_elements != numel) {
		lerr(L, "%s: blob at offset %llu holds %llu elements of blob type %d, declared %zu %s", what,
		     (unsigned long long)mv->offset, (unsigned long long)b->n_elements, (int)b->dtype, numel,
		     dt_name(dt));
		return NULL;
	}
	*rp = r;
	return b;
}

/* Blob value -> v: byte-sized and wider types are used in place (read-only),
 * sub-byte types unpacked. */
static int load_blob(loader *L, const mil_value *mv, int dt, int sdt, rt_val *v, const char *what)
{
	blob_reader *r;
	const blob_info *b = value_blob(L, mv, dt, v->numel, &r, what);
	if (!b)
		return -1;
	const uint8_t *data = blob_reader_data(r, b);
	size_t es = rt_dtype_size(sdt);
	if (sdt == dt && ((uintptr_t)data % es) == 0) {
		v->dtype = sdt;
		v->data = (void *)data;
		return 0;
	}
	val_alloc(v, sdt, v->rank, v->shape);
	if (sdt == dt)
		memcpy(v->data, data, v->numel * es);
	else if (dt == MIL_INT4)
		blob_unpack_int4(data, v->numel, v->data);
	else
		blob_unpack_bits(data, v->numel, mil_dtype_bits((mil_dtype)dt), v->data);
	return 0;
}

/* Any tensor value (immediate or blob) -> v. */
static int load_value(loader *L, const mil_value *mv, rt_val *v, const char *what)
{
	memset(v, 0, sizeof *v);
	if (!mv || !mv->type)
		return lerr(L, "%s has no type", what);
	if (type_shape(L, mv->type, what, &v->rank, v->shape) != 0)
		return -1;
	int dt = mv->type->dtype, sdt = storage_dtype(dt);
	if (!sdt)
		return lerr(L, "%s: dtype %s is not supported", what, dt_name(dt));
	if (!shape_ok(v->rank, v->shape, 8))
		return lerr(L, "%s: shape too large", what);
	v->numel = rt_numel(v->rank, v->shape);
	v->dtype = sdt;
	if (mv->kind == MIL_VAL_TENSOR)
		return load_immediate(L, mv, dt, sdt, v, what);
	if (mv->kind == MIL_VAL_BLOB) {
		if (sdt == MIL_STRING)
			return lerr(L, "%s: a string blob", what);
		return load_blob(L, mv, dt, sdt, v, what);
	}
	return lerr(L, "%s is not a tensor value", what);
}

/* --- constexpr_lut_to_dense (iOS 18): out[p] = lut[group(p), idx[p], :] ---
 *
 * Scalar palettes stay palettized (rt_lut) for the kernels that read them
 * row by row (conv, linear, matmul, gather): memory is then the size of the
 * weight file. Any other use, and vector palettes, get the dense tensor,
 * made once per distinct (indices, lut) blob pair. */

static unsigned index_at(const uint8_t *p, int bits, size_t e)
{
	if (bits == 8)
		return p[e];
	size_t bit = e * (size_t)bits;
	unsigned v = p[bit >> 3];
	if ((bit & 7) + (size_t)bits > 8)
		v |= (unsigned)p[(bit >> 3) + 1] << 8;
	return (v >> (bit & 7)) & ((1u << bits) - 1);
}

/* Indices e0 .. e0+n-1 into out, one byte each. Bits are packed LSB first,
 * so 4/2-bit indices fill a byte from its low end and four 6-bit ones fill
 * three bytes read as one little-endian 24-bit word. */
static void unpack_indices(const uint8_t *p, int bits, size_t e0, size_t n, uint8_t *out)
{
	size_t i = 0;
	if (bits == 8) {
		memcpy(out, p + e0, n);
		return;
	}
	size_t per = bits == 6 ? 4 : bits == 4 || bits == 2 || bits == 1 ? 8 / (size_t)bits : 0;
	for (; i < n && (!per || (e0 + i) % per); i++)
		out[i] = (uint8_t)index_at(p, bits, e0 + i);
	if (per) {
		size_t e = e0 + i;
		if (bits == 6) {
			const uint8_t *q = p + e / 4 * 3;
			for (; i + 4 <= n; i += 4, q += 3) {
				uint32_t w = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16;
				out[i] = w & 63;
				out[i + 1] = (w >> 6) & 63;
				out[i + 2] = (w >> 12) & 63;
				out[i + 3] = (uint8_t)(w >> 18);
			}
		} else {
			const uint8_t *q = p + e / per;
			unsigned mask = (1u << bits) - 1;
			for (; i + per <= n; i += per, q++)
				for (size_t k = 0; k < per; k++)
					out[i + k] = (uint8_t)((*q >> (k * (size_t)bits)) & mask);
		}
	}
	for (; i < n; i++)
		out[i] = (uint8_t)index_at(p, bits, e0 + i);
}

/* The table of run o (multi-index over dims 0..last_grouped). */
const uint8_t *rt_lut_table(const rt_lut *l, size_t o)
{
	size_t rest = o, g = 0;
	for (int d = l->last_grouped; d >= 0; d--) {
		size_t pd = rest % (size_t)l->shape[d];
		rest /= (size_t)l->shape[d];
		g += pd / (size_t)l->block[d] * (size_t)l->gstride[d];
	}
	return l->table + g * l->np * l->es;
}

/* Every index is < np: lut_check made sure of it. */
void rt_lut_expand(const rt_lut *l, size_t off, size_t n, void *dst)
{
	uint8_t ix[256];
	uint8_t *d = dst;
	while (n) {
		size_t pos = off % l->inner, c = l->inner - pos;
		c = c < n ? c : n;
		c = c < sizeof ix ? c : sizeof ix;
		const uint8_t *table = rt_lut_table(l, off / l->inner);
		unpack_indices(l->idx, l->bits, off, c, ix);
		if (l->es == 2) {
			for (size_t k = 0; k < c; k++)
				memcpy(d + 2 * k, table + 2 * (size_t)ix[k], 2);
		} else {
			for (size_t k = 0; k < c; k++)
				memcpy(d + k * l->es, table + (size_t)ix[k] * l->es, l->es);
		}
		off += c;
		n -= c;
		d += c * l->es;
	}
}

/* n indices from element e (a multiple of 4 / 2 for 6- and 4-bit ones)
 * looked up in tf: unpacking and lookup in one pass, the GEMM's inner
 * loop for a palettized weight; returns how many it did (the rest goes
 * through unpack_indices). Plain loads beat AVX2 gathers here (measured:
 * 1.4 against 1.5 CPU s per token on a 1B-shaped LUT6 model). */
static size_t lookup_packed(const uint8_t *p, int bits, size_t e, size_t n, const float *tf, float *d)
{
	size_t i = 0;
	if (bits == 8) {
		for (p += e; i < n; i++)
			d[i] = tf[p[i]];
	} else if (bits == 6 && e % 4 == 0) {
		const uint8_t *q = p + e / 4 * 3;
		for (; i + 4 <= n; i += 4, q += 3) {
			uint32_t w = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16;
			d[i] = tf[w & 63];
			d[i + 1] = tf[(w >> 6) & 63];
			d[i + 2] = tf[(w >> 12) & 63];
			d[i + 3] = tf[w >> 18];
		}
	} else if (bits == 4 && e % 2 == 0) {
		const uint8_t *q = p + e / 2;
		for (; i + 2 <= n; i += 2, q++) {
			d[i] = tf[*q & 15];
			d[i + 1] = tf[*q >> 4];
		}
	}
	return i;
}

/* As rt_lut_expand, into fp32 (exact: every fp16 is an fp32). Each run's
 * table is converted once; the indices go through lookup_packed. */
void rt_lut_expand_f32(const rt_lut *l, size_t off, size_t n, float *dst)
{
	float tf[256];
	const uint8_t *last = NULL;
	uint8_t ix[256];
	while (n) {
		size_t pos = off % l->inner, c = l->inner - pos;
		c = c < n ? c : n;
		const uint8_t *table = rt_lut_table(l, off / l->inner);
		if (table != last) {
			if (l->dtype == MIL_FP16)
				rt_h2f_n((const uint16_t *)(const void *)table, tf, l->np);
			else
				memcpy(tf, table, l->np * sizeof(float));
			last = table;
		}
		size_t i = lookup_packed(l->idx, l->bits, off, c, tf, dst);
		while (i < c) {
			size_t k = c - i < sizeof ix ? c - i : sizeof ix;
			unpack_indices(l->idx, l->bits, off + i, k, ix);
			for (size_t j = 0; j < k; j++)
				dst[i + j] = tf[ix[j]];
			i += k;
		}
		off += c;
		n -= c;
		dst += c;
	}
}

/* Vector palettes (VECTOR_SIZE > 1): every index expands into vs entries
 * along vector_axis. Rare, so a plain element loop. */
static void lut_vector(const rt_lut *j, int va, size_t vs, int64_t *oshape, uint8_t *out)
{
	size_t n = rt_numel(j->rank, j->shape);
	int64_t ostr[RT_MAX_RANK];
	rt_strides(j->rank, oshape, ostr);
	for (size_t q = 0; q < n; q++) {
		size_t rest = q, g = 0, ooff = 0;
		int64_t p[RT_MAX_RANK];
		for (int d = j->rank - 1; d >= 0; d--) {
			p[d] = (int64_t)(rest % (size_t)j->shape[d]);
			rest /= (size_t)j->shape[d];
			g += (size_t)(p[d] / j->block[d]) * (size_t)j->gstride[d];
		}
		for (int d = 0; d < j->rank; d++)
			ooff += (size_t)((d == va ? p[d] * (int64_t)vs : p[d]) * ostr[d]);
		unsigned ix = index_at(j->idx, j->bits, q);
		const uint8_t *entry = j->table + (g * j->np + ix) * vs * j->es;
		for (size_t v = 0; v < vs; v++)
			memcpy(out + (ooff + v * (size_t)ostr[va]) * j->es, entry + v * j->es, j->es);
	}
}

/* One constexpr parameter: a literal value or a const slot. */
static const mil_binding *single_binding(const mil_op *op, const char *param)
{
	const mil_arg *a = mil_op_input(op, param);
	return a && a->n == 1 ? &a->v[0] : NULL;
}

typedef struct lut_src {
	rt_val val;           /* materialised, when not packed in place */
	const uint8_t *packed;
	int bits;              /* bits per stored element: 8 unless packed in place */
	int nbits;             /* the declared width (uint6 -> 6) */
	const mil_value *blob; /* the literal blob value, for caching */
	const blob_reader *reader;
} lut_src;

static int find_slot(loader *L, const rt_fn *f, const char *name);
static void lut_dense(rt_model *m, rt_val *v);

/* The indices or lut of a constexpr: packed sub-byte blobs stay packed. */
static int lut_input(loader *L, rt_fn *f, const mil_op *op, const char *param, lut_src *s)
{
	memset(s, 0, sizeof *s);
	const mil_binding *b = single_binding(op, param);
	if (!b)
		return lerr(L, "parameter '%s' must have exactly one binding", param);
	if (b->kind == MIL_BIND_NAME) {
		int slot = find_slot(L, f, b->name);
		if (slot < 0)
			return -1;
		if (f->slots[slot].kind != SLOT_CONST)
			return lerr(L, "parameter '%s' must be constant ('%s' is not)", param, b->name);
		if (f->slots[slot].cval.lut)
			lut_dense(L->m, &f->slots[slot].cval);
		s->val = f->slots[slot].cval;
		if (s->val.buf)
			s->val.buf->refs++; /* the palettized weight may outlive the slot's function */
		s->bits = 8;
		s->nbits = mil_dtype_bits((mil_dtype)f->slots[slot].type->dtype);
		s->packed = s->val.data;
		return 0;
	}
	const mil_value *mv = b->value;
	if (!mv || !mv->type || mv->type->kind != MIL_TYPE_TENSOR)
		return lerr(L, "parameter '%s' is not a tensor value", param);
	int dt = mv->type->dtype, bits = mil_dtype_bits((mil_dtype)dt);
	if (mv->kind == MIL_VAL_BLOB && dt != MIL_INT4 && bits < 8 && bits > 0) {
		int rank;
		int64_t shape[RT_MAX_RANK];
		if (type_shape(L, mv->type, param, &rank, shape) != 0)
			return -1;
		blob_reader *r;
		const blob_info *bi = value_blob(L, mv, dt, rt_numel(rank, shape), &r, param);
		if (!bi)
			return -1;
		s->val.dtype = MIL_UINT8;
		s->val.rank = rank;
		memcpy(s->val.shape, shape, sizeof shape);
		s->val.numel = rt_numel(rank, shape);
		s->packed = blob_reader_data(r, bi);
		s->bits = s->nbits = bits;
		s->blob = mv;
		s->reader = r;
		return 0;
	}
	if (load_value(L, mv, &s->val, param) != 0)
		return -1;
	if (mv->kind == MIL_VAL_BLOB) {
		s->blob = mv;
		s->reader = value_reader(L, mv);
	}
	s->bits = 8;
	s->nbits = bits;
	s->packed = s->val.data;
	return 0;
}

static int lut_check(loader *L, const lut_src *ix, const lut_src *lt, rt_lut *j, size_t *vs)
{
	int r = ix->val.rank;
	if (ix->val.dtype != MIL_UINT8 || !ix->packed)
		return lerr(L, "indices must be unsigned integers, not %s", dt_name(ix->val.dtype));
	if (lt->val.rank != r + 2 || !rt_dtype_size(lt->val.dtype) || lt->val.dtype == MIL_BOOL)
		return lerr(L, "lut must be a numeric tensor of rank %d (indices rank + 2)", r + 2);
	j->np = (size_t)lt->val.shape[r];
	*vs = (size_t)lt->val.shape[r + 1];
	if (ix->nbits < 1 || ix->nbits > 8 || j->np != (size_t)1 << ix->nbits)
		return lerr(L, "lut has %zu palette entries; %d-bit indices need %u", j->np, ix->nbits,
			    1u << ix->nbits);
	/* Unpacked indices of a narrower declared type may still hold larger values. */
	for (size_t i = 0; ix->bits == 8 && ix->nbits < 8 && i < ix->val.numel; i++)
		if (ix->packed[i] >= j->np)
			return lerr(L, "index %u at %zu is out of the lut's %zu entries", ix->packed[i], i, j->np);
	if (*vs < 1)
		return lerr(L, "lut has an empty vector dimension");
	int64_t g = 1;
	for (int d = r - 1; d >= 0; d--) {
		int64_t gd = lt->val.shape[d];
		if (gd < 1 || ix->val.shape[d] % gd != 0)
			return lerr(L, "lut dim %d (%lld) does not divide indices dim %lld", d, (long long)gd,
				    (long long)ix->val.shape[d]);
		j->block[d] = ix->val.shape[d] / gd;
		j->gstride[d] = g;
		g *= gd;
	}
	j->last_grouped = -1;
	for (int d = 0; d < r; d++)
		if (lt->val.shape[d] > 1)
			j->last_grouped = d;
	j->inner = rt_numel(r - j->last_grouped - 1, ix->val.shape + j->last_grouped + 1);
	return 0;
}

/* The (indices, lut) blob pair of a constexpr, when both are blobs of one
 * file: the key under which functions share its dense tensor. */
typedef struct lut_key {
	const void *reader;
	uint64_t idx_off, lut_off;
} lut_key;

static lut_cache *lut_cache_find(rt_model *m, const lut_key *k)
{
	for (size_t i = 0; k->reader && i < m->ncache; i++)
		if (m->cache[i].reader == k->reader && m->cache[i].idx_off == k->idx_off &&
		    m->cache[i].lut_off == k->lut_off)
			return &m->cache[i];
	return NULL;
}

static void lut_cache_add(rt_model *m, const lut_key *k, rt_val *v)
{
	if (!k->reader)
		return;
	GROW(m->cache, m->cache_cap, m->ncache + 1);
	lut_cache *c = &m->cache[m->ncache++];
	c->reader = k->reader;
	c->idx_off = k->idx_off;
	c->lut_off = k->lut_off;
	c->val = *v;
	v->buf->refs++;
}

/* The palettized value: an rt_lut in a buffer that holds the unpacked
 * indices and table (if any) alive. */
static void lut_val(rt_val *v, const rt_lut *j, lut_src *ix, lut_src *lt, const lut_key *k)
{
	memset(v, 0, sizeof *v);
	v->buf = buf_new(sizeof(rt_lut) + sizeof(lut_key));
	rt_lut *l = v->buf->data;
	*l = *j;
	memcpy(l + 1, k, sizeof *k);
	v->buf->hold[0] = ix->val.buf;
	v->buf->hold[1] = lt->val.buf;
	ix->val.buf = lt->val.buf = NULL; /* moved into the hold */
	v->lut = l;
	v->dtype = l->dtype;
	v->rank = l->rank;
	memcpy(v->shape, l->shape, sizeof v->shape);
	v->numel = rt_numel(l->rank, l->shape);
}

typedef struct dense_job {
	const rt_lut *l;
	uint8_t *out;
} dense_job;

static void dense_part(void *ctx, size_t b, size_t e)
{
	const dense_job *j = ctx;
	rt_lut_expand(j->l, b, e - b, j->out + b * j->l->es);
}

/* The dense tensor of a palettized value (shared through the cache). */
static void lut_dense(rt_model *m, rt_val *v)
{
	const rt_lut *l = v->lut;
	const lut_key *k = (const lut_key *)(l + 1);
	rt_val d;
	lut_cache *hit = lut_cache_find(m, k);
	if (hit) {
		d = hit->val;
		d.buf->refs++;
	} else {
		val_alloc(&d, l->dtype, l->rank, l->shape);
		parallel_model(m, d.numel, 65536, dense_part, &(dense_job){l, d.data});
		lut_cache_add(m, k, &d);
	}
	val_release(v);
	*v = d;
}

/* Materialise a constexpr_lut_to_dense op into v (palettized unless its
 * palettes are vectors). */
static int load_lut(loader *L, rt_fn *f, const mil_op *op, rt_val *v)
{
	rt_model *m = L->m;
	for (size_t i = 0; i < op->ninputs; i++) {
		const char *p = op->inputs[i]->param;
		if (!streq(p, "indices") && !streq(p, "lut") && !streq(p, "vector_axis"))
			return lerr(L, "unknown parameter '%s'", p);
	}
	lut_src ix, lt;
	if (lut_input(L, f, op, "indices", &ix) != 0)
		return -1;
	if (lut_input(L, f, op, "lut", &lt) != 0) {
		val_release(&ix.val);
		return -1;
	}
	int rc = -1;
	lut_key key = {0};
	if (ix.blob && lt.blob && ix.reader == lt.reader)
		key = (lut_key){ix.reader, ix.blob->offset, lt.blob->offset};
	rt_lut j = {.idx = ix.packed, .bits = ix.bits, .rank = ix.val.rank, .table = lt.val.data,
		    .dtype = lt.val.dtype};
	size_t vs = 1;
	if (lut_check(L, &ix, &lt, &j, &vs) != 0)
		goto out;
	memcpy(j.shape, ix.val.shape, sizeof j.shape);
	j.es = rt_dtype_size(lt.val.dtype);
	int64_t oshape[RT_MAX_RANK];
	memcpy(oshape, ix.val.shape, sizeof oshape);
	if (vs == 1) {
		if (!shape_ok(j.rank, oshape, j.es)) {
			lerr(L, "output too large");
			goto out;
		}
		lut_val(v, &j, &ix, &lt, &key);
		rc = 0;
		goto out;
	}
	lut_cache *hit = lut_cache_find(m, &key);
	if (hit) {
		*v = hit->val;
		v->buf->refs++;
		rc = 0;
		goto out;
	}
	int64_t a = 0;
	int va;
	const mil_binding *b = single_binding(op, "vector_axis");
	if (!b || b->kind != MIL_BIND_VALUE || mil_value_get_int(b->value, 0, &a) != 0 || (va = rt_axis(a, j.rank)) < 0) {
		lerr(L, "vector palettes need a constant vector_axis in range");
		goto out;
	}
	oshape[va] *= (int64_t)vs;
	if (!shape_ok(j.rank, oshape, j.es)) {
		lerr(L, "output too large");
		goto out;
	}
	val_alloc(v, lt.val.dtype, j.rank, oshape);
	lut_vector(&j, va, vs, oshape, v->data);
	lut_cache_add(m, &key, v);
	rc = 0;
out:
	val_release(&ix.val);
	val_release(&lt.val);
	return rc;
}

/* After a function's ops are bound: a palettized constant that anything
 * but a palette-reading kernel parameter uses (another op, a variadic
 * parameter, a block output) is made dense. */
static const struct {
	const char *type;
	unsigned params; /* bit i: kernel parameter i (rt_kernel.params order) */
} palette_readers[] = {
	{"conv", 1u << 1},             /* weight: GEMM rows (rt_ops_linalg.c), else rt_load_f32 */
	{"linear", 1u << 1},           /* weight */
	{"matmul", 1u << 0 | 1u << 1}, /* x and y: GEMM rows or rt_load_f32 */
	{"gather", 1u << 0},           /* x: only the rows asked for (embeddings) */
};

static unsigned palette_params(const rt_kernel *k)
{
	for (size_t i = 0; i < sizeof palette_readers / sizeof *palette_readers; i++)
		if (streq(palette_readers[i].type, k->type))
			return palette_readers[i].params;
	return 0;
}

static void densify_luts(rt_model *m, rt_fn *f)
{
	char *other = xcalloc((size_t)f->nslots + 1, 1);
	for (int i = 0; i < f->nops; i++) {
		const rt_op *o = &f->ops[i];
		unsigned ok = palette_params(o->k);
		for (int p = 0; p < RT_MAX_PARAMS; p++)
			if (o->in[p] >= 0 && !(ok >> p & 1))
				other[o->in[p]] = 1;
		for (int j = 0; j < o->nvar; j++)
			other[o->var[j]] = 1;
	}
	for (int i = 0; i < f->nout; i++)
		other[f->out_slot[i]] = 1;
	for (int s = 0; s < f->nslots; s++)
		if (f->slots[s].kind == SLOT_CONST && f->slots[s].cval.lut && other[s])
			lut_dense(m, &f->slots[s].cval);
	free(other);
}

/* ------------------------------------------------------------------ */
/* Loading functions                                                   */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static int map_find(const name_map *mp, const rt_fn *f, const char *name)
{
	if (!mp->cap)
		return -1;
	for (size_t i = name_hash(name) & (mp->cap - 1);; i = (i + 1) & (mp->cap - 1)) {
		int s = mp->v[i] - 1;
		if (s < 0)
			return -1;
		if (streq(f->slots[s].name, name))
			return s;
	}
}

/* Open addressing, kept at most half full. */
static void map_put(name_map *mp, const rt_fn *f, int slot)
{
	if ((size_t)(f->nslots + 1) * 2 > mp->cap) {
		name_map old = *mp;
		mp->cap = old.cap ? old.cap * 2 : 256;
		mp->v = xcalloc(mp->cap, sizeof *mp->v);
		for (size_t i = 0; i < old.cap; i++)
			if (old.v[i]) {
				size_t k = name_hash(f->slots[old.v[i] - 1].name) & (mp->cap - 1);
				while (mp->v[k])
					k = (k + 1) & (mp->cap - 1);
				mp->v[k] = old.v[i];
			}
		free(old.v);
	}
	size_t k = name_hash(f->slots[slot].name) & (mp->cap - 1);
	while (mp->v[k])
		k = (k + 1) & (mp->cap - 1);
	mp->v[k] = slot + 1;
}

static int find_slot(loader *L, const rt_fn *f, const char *name)
{
	int s = map_find(&L->map, f, name);
	if (s < 0)
		lerr(L, "unknown var '%s'", name);
	return s;
}

/* A new slot named `name`; -1 if the name is taken (or empty). */
static int add_slot(loader *L, rt_fn *f, const char *name, slot_kind kind, const mil_type *type)
{
	if (!name[0])
		return lerr(L, "a var without a name");
	if (map_find(&L->map, f, name) >= 0)
		return lerr(L, "var '%s' is defined twice", name);
	if (f->nslots == f->slots_cap) {
		f->slots_cap = f->slots_cap ? f->slots_cap * 2 : 64;
		f->slots = xrealloc(f->slots, (size_t)f->slots_cap * sizeof *f->slots);
	}
	rt_slot *s = &f->slots[f->nslots];
	memset(s, 0, sizeof *s);
	s->name = name;
	s->kind = kind;
	s->type = type;
	s->producer = -1;
	s->last_use = -1;
	map_put(&L->map, f, f->nslots);
	return f->nslots++;
}

/* A tensor type the runtime can hold: storage dtype, rank <= 8. */
static int check_tensor_type(loader *L, const mil_type *t, const char *what, int allow_unknown)
{
	if (!t || t->kind != MIL_TYPE_TENSOR)
		return lerr(L, "%s is not a tensor", what);
	if (!rt_dtype_size(t->dtype))
		return lerr(L, "%s has unsupported dtype %s", what, dt_name(t->dtype));
	if (t->ndims > RT_MAX_RANK)
		return lerr(L, "%s has rank %zu (at most %d supported)", what, t->ndims, RT_MAX_RANK);
	for (size_t i = 0; i < t->ndims; i++) {
		if (t->dims[i].kind == MIL_DIM_CONST && t->dims[i].size > (uint64_t)INT32_MAX)
			return lerr(L, "%s: dimension %zu is too large", what, i);
		if (t->dims[i].kind != MIL_DIM_CONST && (!allow_unknown || t->dims[i].variadic))
			return lerr(L, "%s: dimension %zu is not constant", what, i);
	}
	return 0;
}

static void io_from_type(rt_io *io, const char *name, const mil_type *t, int is_state)
{
	memset(io, 0, sizeof *io);
	io->name = name;
	io->is_state = is_state;
	io->dtype = t->dtype;
	io->rank = (int)t->ndims;
	for (size_t i = 0; i < t->ndims; i++)
		io->shape[i] = t->dims[i].kind == MIL_DIM_CONST ? (int64_t)t->dims[i].size : -1;
}

static int load_inputs(loader *L, rt_fn *f, const mil_function *mf)
{
	f->nin = (int)mf->ninputs;
	f->in = xcalloc(mf->ninputs + 1, sizeof *f->in);
	f->in_slot = xcalloc(mf->ninputs + 1, sizeof *f->in_slot);
	for (size_t i = 0; i < mf->ninputs; i++) {
		const mil_var *v = &mf->inputs[i];
		int is_state = v->type && v->type->kind == MIL_TYPE_STATE;
		const mil_type *t = is_state ? v->type->wrapped : v->type;
		char what[300];
		snprintf(what, sizeof what, "input '%s'", v->name);
		if (check_tensor_type(L, t, what, !is_state) != 0)
			return -1;
		if (is_state && t->dtype != MIL_FP16)
			return lerr(L, "state '%s' is %s; states must be fp16", v->name, dt_name(t->dtype));
		int s = add_slot(L, f, v->name, is_state ? SLOT_STATE : SLOT_INPUT, t);
		if (s < 0)
			return -1;
		f->slots[s].index = (int)i;
		f->in_slot[i] = s;
		io_from_type(&f->in[i], v->name, t, is_state);
	}
	return 0;
}

static int core_read_state(rt_exec *e, const rt_op *op);
static int core_write_state(rt_exec *e, const rt_op *op);

static const rt_kernel k_core[] = {
	{"read_state", {"input"}, 1, -1, 1, 1, core_read_state},
	{"write_state", {"input", "data"}, 3, -1, 0, 1, core_write_state},
	{NULL, {NULL}, 0, -1, 0, 0, NULL},
};

static const rt_kernel *find_kernel(const char *type)
{
	static const rt_kernel *const tables[] = {k_core, rt_kernels_elem, rt_kernels_shape, rt_kernels_reduce,
						  rt_kernels_linalg, NULL};
	for (int t = 0; tables[t]; t++)
		for (const rt_kernel *k = tables[t]; k->type; k++)
			if (streq(k->type, type))
				return k;
	return NULL;
}

static int is_constant_op(const char *type)
{
	return streq(type, "const") || streq(type, "constexpr_lut_to_dense");
}

/* A literal binding of an ordinary op becomes an anonymous constant slot. */
static int literal_slot(loader *L, rt_fn *f, const mil_value *mv, const char *param, int opi)
{
	char *name = xasprintf("<literal %d %s>", opi, param);
	const char *aname = mil_strdup(L->m->mm->arena, name);
	free(name);
	rt_val v;
	if (load_value(L, mv, &v, param) != 0)
		return -1;
	int s = add_slot(L, f, aname, SLOT_CONST, mv->type);
	if (s < 0) {
		val_release(&v);
		return -1;
	}
	f->slots[s].cval = v;
	return s;
}

static int bind_param(loader *L, rt_fn *f, rt_op *o, const mil_arg *a, int opi)
{
	const rt_kernel *k = o->k;
	int pi = -1;
	for (int i = 0; i < RT_MAX_PARAMS && k->params[i]; i++)
		if (streq(k->params[i], a->param))
			pi = i;
	if (pi < 0)
		return lerr(L, "unknown parameter '%s' for %s", a->param, k->type);
	if (pi != k->variadic && a->n != 1)
		return lerr(L, "parameter '%s' has %zu bindings", a->param, a->n);
	if (pi == k->variadic) {
		if (a->n == 0)
			return lerr(L, "parameter '%s' has no bindings", a->param);
		o->var = xcalloc(a->n, sizeof *o->var);
	}
	for (size_t j = 0; j < a->n; j++) {
		const mil_binding *b = &a->v[j];
		int s;
		if (b->kind == MIL_BIND_NAME)
			s = find_slot(L, f, b->name);
		else if (b->kind == MIL_BIND_VALUE)
			s = literal_slot(L, f, b->value, a->param, opi);
		else
			s = lerr(L, "parameter '%s' has an empty binding", a->param);
		if (s < 0)
			return -1;
		if (f->slots[s].kind == SLOT_STATE && !(streq(k->type, "read_state") || streq(k->type, "write_state")) )
			return lerr(L, "state '%s' can only be used by read_state and write_state", b->name);
		if (pi == k->variadic)
			o->var[o->nvar++] = s;
		else
			o->in[pi] = s;
	}
	return 0;
}

static int load_op_outputs(loader *L, rt_fn *f, rt_op *o, const mil_op *mo, int opi)
{
	if ((int)mo->noutputs < o->k->min_out || (int)mo->noutputs > o->k->max_out)
		return lerr(L, "%s has %zu outputs", o->k->type, mo->noutputs);
	o->nout = (int)mo->noutputs;
	o->out = xcalloc(mo->noutputs + 1, sizeof *o->out);
	o->out_type = xcalloc(mo->noutputs + 1, sizeof *o->out_type);
	for (size_t i = 0; i < mo->noutputs; i++) {
		char what[300];
		snprintf(what, sizeof what, "output '%s'", mo->outputs[i].name);
		if (check_tensor_type(L, mo->outputs[i].type, what, 1) != 0)
			return -1;
		int s = add_slot(L, f, mo->outputs[i].name, SLOT_OP, mo->outputs[i].type);
		if (s < 0)
			return -1;
		f->slots[s].producer = opi;
		o->out[i] = s;
		o->out_type[i] = mo->outputs[i].type;
	}
	return 0;
}

/* An ordinary op: kernel, parameters, outputs. */
static int load_op(loader *L, rt_fn *f, const mil_op *mo, int opi)
{
	rt_op *o = &f->ops[f->nops];
	memset(o, 0, sizeof *o);
	for (int i = 0; i < RT_MAX_PARAMS; i++)
		o->in[i] = -1;
	o->inplace_state = -1;
	o->type = mo->type;
	o->name = L->op;
	o->k = find_kernel(mo->type);
	ASSERT(o->k); /* unsupported ops were rejected before loading */
	f->nops++;
	if (mo->nblocks)
		return lerr(L, "nested blocks are not supported");
	for (size_t i = 0; i < mo->ninputs; i++)
		if (bind_param(L, f, o, mo->inputs[i], opi) != 0)
			return -1;
	for (int i = 0; i < RT_MAX_PARAMS && o->k->params[i]; i++)
		if ((o->k->required >> i & 1) && (i == o->k->variadic ? o->nvar == 0 : o->in[i] < 0))
			return lerr(L, "missing parameter '%s'", o->k->params[i]);
	return load_op_outputs(L, f, o, mo, opi);
}

/* A const or constexpr op: its value, checked against the declared type. */
static int load_constant_op(loader *L, rt_fn *f, const mil_op *mo)
{
	if (mo->noutputs != 1)
		return lerr(L, "%s has %zu outputs", mo->type, mo->noutputs);
	if (mo->nblocks)
		return lerr(L, "nested blocks are not supported");
	const mil_var *out = &mo->outputs[0];
	rt_val v;
	if (streq(mo->type, "const")) {
		if (mo->ninputs)
			return lerr(L, "const has inputs");
		if (load_value(L, mil_op_attr(mo, "val"), &v, "attribute 'val'") != 0)
			return -1;
	} else if (load_lut(L, f, mo, &v) != 0) {
		return -1;
	}
	int rank;
	int64_t shape[RT_MAX_RANK];
	const mil_type *t = out->type;
	int want = t && t->kind == MIL_TYPE_TENSOR ? storage_dtype(t->dtype) : 0;
	if (!want || type_shape(L, t, "the output", &rank, shape) != 0) {
		val_release(&v);
		return -1;
	}
	if (want != v.dtype || rank != v.rank || memcmp(shape, v.shape, (size_t)rank * sizeof *shape) != 0) {
		char a[128], b[128];
		rt_shape_str(a, sizeof a, rank, shape);
		rt_shape_str(b, sizeof b, v.rank, v.shape);
		val_release(&v);
		return lerr(L, "output '%s' is declared %s%s but its value is %s%s", out->name, dt_name(t->dtype), a,
			    dt_name(v.dtype), b);
	}
	int s = add_slot(L, f, out->name, SLOT_CONST, t);
	if (s < 0) {
		val_release(&v);
		return -1;
	}
	f->slots[s].cval = v;
	return 0;
}

static int load_outputs(loader *L, rt_fn *f, const mil_block *blk)
{
	f->nout = (int)blk->noutputs;
	f->out = xcalloc(blk->noutputs + 1, sizeof *f->out);
	f->out_slot = xcalloc(blk->noutputs + 1, sizeof *f->out_slot);
	for (size_t i = 0; i < blk->noutputs; i++) {
		int s = find_slot(L, f, blk->outputs[i]);
		if (s < 0)
			return -1;
		if (f->slots[s].kind == SLOT_STATE)
			return lerr(L, "output '%s' is a state", blk->outputs[i]);
		f->out_slot[i] = s;
		io_from_type(&f->out[i], f->slots[s].name, f->slots[s].type, 0);
	}
	return 0;
}

static void use_slot(rt_fn *f, int s, int opi)
{
	f->slots[s].nuses++;
	if (f->slots[s].last_use < opi)
		f->slots[s].last_use = opi;
}

/* Last uses, and the list of slots each op releases. */
static void plan_liveness(rt_fn *f)
{
	for (int i = 0; i < f->nops; i++) {
		rt_op *o = &f->ops[i];
		for (int p = 0; p < RT_MAX_PARAMS; p++)
			if (o->in[p] >= 0)
				use_slot(f, o->in[p], i);
		for (int j = 0; j < o->nvar; j++)
			use_slot(f, o->var[j], i);
	}
	for (int i = 0; i < f->nout; i++)
		use_slot(f, f->out_slot[i], f->nops);
	int *count = xcalloc((size_t)f->nops + 1, sizeof *count);
	for (int s = 0; s < f->nslots; s++) {
		rt_slot *sl = &f->slots[s];
		if (sl->kind == SLOT_OP && sl->last_use < sl->producer)
			sl->last_use = sl->producer; /* never used: freed right away */
		if (sl->kind != SLOT_STATE && sl->last_use >= 0 && sl->last_use < f->nops)
			count[sl->last_use]++;
		else if (sl->kind != SLOT_STATE)
			f->nrel_end++;
	}
	for (int i = 0; i < f->nops; i++)
		f->ops[i].rel = xcalloc((size_t)count[i] + 1, sizeof(int));
	f->rel_end = xcalloc((size_t)f->nrel_end + 1, sizeof(int));
	f->nrel_end = 0;
	for (int s = 0; s < f->nslots; s++) {
		rt_slot *sl = &f->slots[s];
		if (sl->kind == SLOT_STATE)
			continue;
		if (sl->last_use >= 0 && sl->last_use < f->nops) {
			rt_op *o = &f->ops[sl->last_use];
			o->rel[o->nrel++] = s;
		} else {
			f->rel_end[f->nrel_end++] = s;
		}
	}
	free(count);
}

/* slice_update(x = read_state(S)) at x's last use, whose result only feeds
 * write_state(S) with no other access to S in between, may update S's
 * buffer in place; rt_can_reuse checks at run time that nobody else holds it. */
static void plan_state_updates(rt_fn *f)
{
	for (int i = 0; i < f->nops; i++) {
		rt_op *o = &f->ops[i];
		if (!streq(o->type, "slice_update") || o->nout != 1 || o->in[0] < 0)
			continue;
		rt_slot *x = &f->slots[o->in[0]], *y = &f->slots[o->out[0]];
		if (x->kind != SLOT_OP || x->last_use != i || y->nuses != 1 || y->last_use >= f->nops)
			continue;
		const rt_op *rd = &f->ops[x->producer], *wr = &f->ops[y->last_use];
		if (!streq(rd->type, "read_state") || !streq(wr->type, "write_state") || wr->in[1] != o->out[0] ||
		    wr->in[0] != rd->in[0])
			continue;
		int st = rd->in[0], ok = 1;
		for (int k = i + 1; k < y->last_use && ok; k++)
			if (f->ops[k].in[0] == st && (streq(f->ops[k].type, "read_state") ||
						      streq(f->ops[k].type, "write_state")))
				ok = 0;
		if (ok)
			o->inplace_state = st;
	}
}

static int load_function(loader *L, rt_fn *f, const mil_function *mf)
{
	f->name = mf->name;
	const mil_block *blk = mil_function_block(mf);
	if (!blk)
		return lerr(L, "no block");
	if (load_inputs(L, f, mf) != 0)
		return -1;
	f->ops = xcalloc(blk->nops + 1, sizeof *f->ops);
	for (size_t i = 0; i < blk->nops; i++) {
		const mil_op *mo = blk->ops[i];
		L->op = mil_op_name(mo);
		if (!L->op || !L->op[0])
			L->op = mo->noutputs ? mo->outputs[0].name : mo->type;
		int rc = is_constant_op(mo->type) ? load_constant_op(L, f, mo) : load_op(L, f, mo, f->nops);
		if (rc != 0)
			return -1;
	}
	L->op = NULL;
	if (load_outputs(L, f, blk) != 0)
		return -1;
	densify_luts(L->m, f);
	plan_liveness(f);
	plan_state_updates(f);
	return 0;
}

static void free_function(rt_fn *f)
{
	for (int s = 0; s < f->nslots; s++)
		if (f->slots[s].kind == SLOT_CONST)
			val_release(&f->slots[s].cval);
	for (int i = 0; i < f->nops; i++) {
		free(f->ops[i].var);
		free(f->ops[i].out);
		free(f->ops[i].out_type);
		free(f->ops[i].rel);
	}
	free(f->ops);
	free(f->slots);
	free(f->in);
	free(f->in_slot);
	free(f->out);
	free(f->out_slot);
	free(f->rel_end);
}

/* Every op type the kernels cannot run, each named once with the function it
 * first appears in, in one message. */
static int check_op_types(rt_model *m)
{
	const mil_program *p = m->mm->program;
	char list[1536];
	size_t len = 0;
	int missing = 0;
	const char *seen[64];
	for (size_t i = 0; i < p->nfunctions; i++) {
		const mil_block *b = mil_function_block(p->functions[i]);
		for (size_t j = 0; b && j < b->nops; j++) {
			const char *t = b->ops[j]->type;
			if (is_constant_op(t) || find_kernel(t))
				continue;
			int dup = 0;
			for (int k = 0; k < missing && k < 64; k++)
				dup |= streq(seen[k], t);
			if (dup)
				continue;
			if (missing < 64)
				seen[missing] = t;
			missing++;
			int w = snprintf(list + len, sizeof list - len, "%s%s (function '%s')", len ? ", " : "", t,
					 p->functions[i]->name);
			if (w > 0 && (size_t)w < sizeof list - len)
				len += (size_t)w;
		}
	}
	if (missing)
		return errf("%s: %d unsupported op type%s: %s", m->what, missing, missing > 1 ? "s" : "", list);
	return 0;
}

static int default_threads(void)
{
	const char *e = getenv("ANEMAKE_THREADS");
	long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* Load m->mm (decoded already); on failure the model is freed. */
static int load_decoded(rt_model *m, rt_model **out)
{
	*out = NULL;
	m->threads = default_threads();
	if (!m->mm->program || m->mm->program->nfunctions == 0) {
		errf("%s: not an ML Program (no functions)", m->what);
		goto fail;
	}
	if (check_op_types(m) != 0)
		goto fail;
	const mil_program *p = m->mm->program;
	m->fns = xcalloc(p->nfunctions, sizeof *m->fns);
	for (size_t i = 0; i < p->nfunctions; i++) {
		loader L = {.m = m, .fn = p->functions[i]->name};
		int rc = load_function(&L, &m->fns[m->nfns++], p->functions[i]);
		free(L.map.v);
		if (rc != 0)
			goto fail;
	}
	const char *d = m->mm->desc ? m->mm->desc->default_function : "";
	m->default_fn = d && d[0] ? d : "main";
	*out = m;
	return 0;
fail:
	rt_model_free(m);
	return -1;
}

/* Decode and load; on failure the model is freed. */
static int load_model(rt_model *m, const void *bytes, size_t n, rt_model **out)
{
	if (ml_model_decode(bytes, n, &m->mm) == 0)
		return load_decoded(m, out);
	errf("%s: %s", m->what, errmsg());
	*out = NULL;
	rt_model_free(m);
	return -1;
}

/* A .mlmodelc folder: description and program from mlmodelc_read, blobs from
 * weights/weight.bin (absent when the program has no blob values). */
static int open_compiled(rt_model *m, rt_model **out)
{
	char *wpath = path_join(m->what, "weights/weight.bin");
	int rc = mlmodelc_read(m->what, &m->mm);
	if (rc == 0 && path_exists(wpath) && (rc = blob_reader_open(wpath, &m->weights)) == 0)
		m->owns_weights = 1;
	free(wpath);
	if (rc == 0)
		return load_decoded(m, out);
	*out = NULL;
	rt_model_free(m);
	return -1;
}

int rt_model_open(const char *path, rt_model **out)
{
	rt_model *m = xcalloc(1, sizeof *m);
	m->what = xstrdup(path);
	*out = NULL;
	char *mil = path_join(path, "model.mil");
	int compiled = is_dir(path) && path_exists(mil);
	free(mil);
	if (compiled)
		return open_compiled(m, out);
	if (mlpackage_open(path, &m->pkg) != 0) {
		free(m->what);
		free(m);
		return -1;
	}
	m->has_pkg = 1;
	return load_model(m, m->pkg.model, m->pkg.model_size, out);
}

int rt_model_load(const void *bytes, size_t n, blob_reader *weights, const char *what, rt_model **out)
{
	rt_model *m = xcalloc(1, sizeof *m);
	m->what = xstrdup(what ? what : "model");
	m->weights = weights;
	return load_model(m, bytes, n, out);
}

void rt_model_free(rt_model *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nfns; i++)
		free_function(&m->fns[i]);
	free(m->fns);
	for (size_t i = 0; i < m->ncache; i++)
		val_release(&m->cache[i].val);
	free(m->cache);
	workpool_free(m->pool);
	ml_model_free(m->mm);
	if (m->has_pkg)
		mlpackage_close(&m->pkg);
	if (m->owns_weights)
		blob_reader_close(m->weights);
	free(m->what);
	free(m);
}

void rt_model_set_threads(rt_model *m, int n)
{
	n = n < 1 ? 1 : n > 64 ? 64 : n;
	if (m->pool && workpool_size(m->pool) + 1 != n) {
		workpool_free(m->pool);
		m->pool = NULL;
	}
	m->threads = n;
}

int rt_function_count(const rt_model *m) { return m->nfns; }

const char *rt_function_name(const rt_model *m, int i) { return i >= 0 && i < m->nfns ? m->fns[i].name : NULL; }

const char *rt_default_function(const rt_model *m) { return m->default_fn; }

static const rt_fn *find_fn(const rt_model *m, const char *name)
{
	if (!name)
		name = m->default_fn;
	for (int i = 0; i < m->nfns; i++)
		if (streq(m->fns[i].name, name))
			return &m->fns[i];
	errf("%s: no function '%s'", m->what, name);
	return NULL;
}

int rt_function_io(const rt_model *m, const char *function, const rt_io **inputs, int *n_inputs,
		   const rt_io **outputs, int *n_outputs)
{
	const rt_fn *f = find_fn(m, function);
	if (!f)
		return -1;
	if (inputs)
		*inputs = f->in;
	if (n_inputs)
		*n_inputs = f->nin;
	if (outputs)
		*outputs = f->out;
	if (n_outputs)
		*n_outputs = f->nout;
	return 0;
}

/* A new owned tensor holding a copy of v. */
static void tensor_from_val(rt_tensor *t, const char *name, const rt_val *v)
{
	rt_tensor_alloc(t, name, v->dtype, v->rank, v->shape);
	if (v->lut)
		rt_lut_expand(v->lut, 0, v->numel, t->data);
	else
		memcpy(t->data, v->data, v->numel * rt_dtype_size(v->dtype));
}

int rt_model_constant(const rt_model *m, const char *function, const char *var, rt_tensor *out)
{
	memset(out, 0, sizeof *out);
	const rt_fn *f = find_fn(m, function);
	if (!f)
		return -1;
	for (int s = 0; s < f->nslots; s++)
		if (f->slots[s].kind == SLOT_CONST && streq(f->slots[s].name, var)) {
			if (!rt_dtype_size(f->slots[s].cval.dtype))
				return errf("%s: constant '%s' is a string", m->what, var);
			tensor_from_val(out, var, &f->slots[s].cval);
			return 0;
		}
	return errf("%s: function '%s' has no constant '%s'", m->what, f->name, var);
}

/* ------------------------------------------------------------------ */
/* States                                                              */

rt_state *rt_state_new(const rt_model *m, const char *function)
{
	const rt_fn *f = find_fn(m, function);
	if (!f)
		return NULL;
	rt_state *s = xcalloc(1, sizeof *s);
	s->v = xcalloc((size_t)f->nin + 1, sizeof *s->v);
	for (int i = 0; i < f->nin; i++) {
		const rt_io *io = &f->in[i];
		if (!io->is_state)
			continue;
		state_var *sv = &s->v[s->n++];
		sv->name = xstrdup(io->name);
		sv->rank = io->rank;
		memcpy(sv->shape, io->shape, sizeof sv->shape);
		sv->numel = rt_numel(io->rank, io->shape);
		sv->buf = buf_new(sv->numel * 2);
		memset(sv->buf->data, 0, sv->numel * 2);
	}
	return s;
}

void rt_state_free(rt_state *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		free(s->v[i].name);
		buf_unref(s->v[i].buf);
	}
	free(s->v);
	free(s);
}

int rt_state_count(const rt_state *s) { return s->n; }

const char *rt_state_name(const rt_state *s, int i) { return i >= 0 && i < s->n ? s->v[i].name : NULL; }

static state_var *state_find(const rt_state *s, const char *name)
{
	for (int i = 0; s && i < s->n; i++)
		if (streq(s->v[i].name, name))
			return &s->v[i];
	return NULL;
}

int rt_state_read(const rt_state *s, const char *name, rt_tensor *out)
{
	memset(out, 0, sizeof *out);
	state_var *sv = state_find(s, name);
	if (!sv)
		return errf("no state '%s'", name);
	rt_tensor_alloc(out, name, MIL_FP16, sv->rank, sv->shape);
	memcpy(out->data, sv->buf->data, sv->numel * 2);
	return 0;
}

/* A buffer of the state's size that nobody else holds. */
static void state_own(state_var *sv)
{
	if (sv->buf->refs > 1) {
		buf_unref(sv->buf);
		sv->buf = buf_new(sv->numel * 2);
	}
}

int rt_state_write(rt_state *s, const char *name, const rt_tensor *t)
{
	state_var *sv = state_find(s, name);
	if (!sv)
		return errf("no state '%s'", name);
	if (t->dtype != MIL_FP16 || t->rank != sv->rank ||
	    memcmp(t->shape, sv->shape, (size_t)sv->rank * sizeof *sv->shape) != 0)
		return errf("state '%s': the new value must be fp16 of the state's shape", name);
	state_own(sv);
	memcpy(sv->buf->data, t->data, sv->numel * 2);
	return 0;
}

void rt_state_clear(rt_state *s)
{
	for (int i = 0; s && i < s->n; i++) {
		state_own(&s->v[i]);
		memset(s->v[i].buf->data, 0, s->v[i].numel * 2);
	}
}

/* ------------------------------------------------------------------ */
/* Running                                                             */

static int bind_input(const rt_model *m, const rt_fn *f, const rt_io *io, const rt_tensor *t, rt_val *v)
{
	char got[128], want[128];
	if (t->dtype != io->dtype)
		return errf("%s: function '%s' input '%s': dtype %s, expected %s", m->what, f->name, io->name,
			    dt_name(t->dtype), dt_name(io->dtype));
	int ok = t->rank == io->rank && (t->data || rt_tensor_numel(t) == 0);
	for (int i = 0; ok && i < t->rank; i++)
		ok = t->shape[i] >= 0 && (io->shape[i] < 0 || io->shape[i] == t->shape[i]);
	if (!ok || !shape_ok(t->rank, t->shape, rt_dtype_size(t->dtype))) {
		rt_shape_str(got, sizeof got, t->rank, t->shape);
		rt_shape_str(want, sizeof want, io->rank, io->shape);
		return errf("%s: function '%s' input '%s': shape %s, expected %s (-1: any)", m->what, f->name,
			    io->name, got, want);
	}
	static char empty[8]; /* a non-NULL address for tensors without elements */
	*v = tensor_view(t);
	if (!v->data)
		v->data = empty;
	return 0;
}

/* Inputs by name, states by name; every function input must be provided. */
static int bind_all(rt_exec *e, const rt_tensor *inputs, int n, rt_state *state)
{
	const rt_fn *f = e->fn;
	const rt_model *m = e->m;
	for (int j = 0; j < n; j++) {
		int found = 0;
		for (int i = 0; i < f->nin && !found; i++)
			found = !f->in[i].is_state && inputs[j].name && streq(f->in[i].name, inputs[j].name);
		if (!found)
			return errf("%s: function '%s' has no input '%s'", m->what, f->name,
				    inputs[j].name ? inputs[j].name : "(null)");
	}
	for (int i = 0; i < f->nin; i++) {
		const rt_io *io = &f->in[i];
		if (io->is_state) {
			state_var *sv = state_find(state, io->name);
			if (!sv)
				return errf("%s: function '%s' needs state '%s'", m->what, f->name, io->name);
			if (sv->rank != io->rank || memcmp(sv->shape, io->shape, (size_t)io->rank * sizeof *io->shape))
				return errf("%s: function '%s': state '%s' has another shape", m->what, f->name,
					    io->name);
			e->states[i] = sv;
			continue;
		}
		const rt_tensor *t = NULL;
		for (int j = 0; j < n && !t; j++)
			if (inputs[j].name && streq(inputs[j].name, io->name))
				t = &inputs[j];
		if (!t)
			return errf("%s: function '%s' needs input '%s'", m->what, f->name, io->name);
		if (bind_input(m, f, io, t, &e->vals[f->in_slot[i]]) != 0)
			return -1;
	}
	return 0;
}

static void release_slot(rt_exec *e, int s)
{
	val_release(&e->vals[s]);
}

/* Outputs in block order; a buffer nobody else holds is handed over whole. */
static void collect_outputs(rt_exec *e, rt_tensor **outputs, int *n_outputs)
{
	const rt_fn *f = e->fn;
	rt_tensor *outs = xcalloc((size_t)f->nout + 1, sizeof *outs);
	for (int i = 0; i < f->nout; i++) {
		rt_val *v = &e->vals[f->out_slot[i]];
		rt_tensor *t = &outs[i];
		int again = 0; /* the same var listed twice: copy all but the last */
		for (int k = i + 1; k < f->nout; k++)
			again |= f->out_slot[k] == f->out_slot[i];
		if (v->buf && v->buf->refs == 1 && v->data == v->buf->data && !again) {
			t->name = xstrdup(f->out[i].name);
			t->dtype = v->dtype;
			t->rank = v->rank;
			memcpy(t->shape, v->shape, sizeof t->shape);
			t->data = v->buf->data;
			free(v->buf);
			memset(v, 0, sizeof *v);
		} else {
			tensor_from_val(t, f->out[i].name, v);
		}
	}
	*outputs = outs;
	*n_outputs = f->nout;
}

static int run_ops(rt_exec *e)
{
	const rt_fn *f = e->fn;
	for (int i = 0; i < f->nops; i++) {
		const rt_op *o = &f->ops[i];
		e->op_index = i;
		if (o->k->run(e, o) != 0)
			return -1;
		for (int j = 0; j < o->nout; j++)
			if (!e->vals[o->out[j]].data && o->out_type[j])
				return rt_err(e, "produced no output %d", j);
		for (int j = 0; j < o->nrel; j++)
			release_slot(e, o->rel[j]);
	}
	return 0;
}

int rt_run(rt_model *m, const char *function, const rt_tensor *inputs, int n_inputs, rt_state *state,
	   rt_tensor **outputs, int *n_outputs)
{
	*outputs = NULL;
	*n_outputs = 0;
	const rt_fn *f = find_fn(m, function);
	if (!f)
		return -1;
	rt_exec e = {.m = m, .fn = f, .op_index = -1};
	e.vals = xcalloc((size_t)f->nslots + 1, sizeof *e.vals);
	e.states = xcalloc((size_t)f->nin + 1, sizeof *e.states);
	int rc = bind_all(&e, inputs, n_inputs, state);
	for (int s = 0; s < f->nslots; s++)
		if (f->slots[s].kind == SLOT_CONST) {
			e.vals[s] = f->slots[s].cval;
			if (e.vals[s].buf)
				e.vals[s].buf->refs++;
		}
	if (rc == 0)
		rc = run_ops(&e);
	if (rc == 0)
		collect_outputs(&e, outputs, n_outputs);
	for (int s = 0; s < f->nslots; s++)
		release_slot(&e, s);
	free(e.vals);
	free(e.states);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Kernel helpers                                                      */

int rt_err(rt_exec *e, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const rt_op *o = e->op_index >= 0 ? &e->fn->ops[e->op_index] : NULL;
	if (!o)
		return errf("%s: function '%s': %s", e->m->what, e->fn->name, msg);
	return errf("%s: function '%s' op '%s' (%s): %s", e->m->what, e->fn->name, o->name, o->type, msg);
}

const rt_val *rt_in(rt_exec *e, const rt_op *op, int i)
{
	return op->in[i] < 0 ? NULL : &e->vals[op->in[i]];
}

const rt_val *rt_var(rt_exec *e, const rt_op *op, int j) { return &e->vals[op->var[j]]; }

int rt_out_dtype(const rt_op *op, int i) { return op->out_type[i]->dtype; }

/* The computed shape against the declared one (constant dims only). */
static int check_out_shape(rt_exec *e, const rt_op *op, int i, int rank, const int64_t *shape)
{
	const mil_type *t = op->out_type[i];
	int ok = (size_t)rank == t->ndims && shape_ok(rank, shape, rt_dtype_size(t->dtype));
	for (int d = 0; ok && d < rank; d++)
		ok = t->dims[d].kind != MIL_DIM_CONST || (int64_t)t->dims[d].size == shape[d];
	if (ok)
		return 0;
	char got[128], want[128];
	int64_t ws[RT_MAX_RANK];
	for (size_t d = 0; d < t->ndims && d < RT_MAX_RANK; d++)
		ws[d] = t->dims[d].kind == MIL_DIM_CONST ? (int64_t)t->dims[d].size : -1;
	rt_shape_str(got, sizeof got, rank, shape);
	rt_shape_str(want, sizeof want, (int)t->ndims, ws);
	return rt_err(e, "output '%s' has shape %s but is declared %s", e->fn->slots[op->out[i]].name, got, want);
}

rt_val *rt_out(rt_exec *e, const rt_op *op, int i, int rank, const int64_t *shape)
{
	if (check_out_shape(e, op, i, rank, shape) != 0)
		return NULL;
	rt_val *v = &e->vals[op->out[i]];
	val_release(v);
	val_alloc(v, op->out_type[i]->dtype, rank, shape);
	return v;
}

int rt_out_view(rt_exec *e, const rt_op *op, int i, const rt_val *src, int rank, const int64_t *shape)
{
	if (check_out_shape(e, op, i, rank, shape) != 0)
		return -1;
	if (src->dtype != rt_out_dtype(op, i))
		return rt_err(e, "input is %s but the output is declared %s", dt_name(src->dtype),
			      dt_name(rt_out_dtype(op, i)));
	if (rt_numel(rank, shape) != src->numel)
		return rt_err(e, "cannot view %zu elements as %zu", src->numel, rt_numel(rank, shape));
	rt_val *v = &e->vals[op->out[i]];
	rt_val copy = *src; /* src may be v itself */
	if (copy.buf)
		copy.buf->refs++;
	val_release(v);
	*v = copy;
	v->rank = rank;
	memcpy(v->shape, shape, (size_t)rank * sizeof *shape);
	return 0;
}

int rt_can_reuse(rt_exec *e, const rt_op *op, int param, int out)
{
	int s = op->in[param];
	if (s < 0)
		return 0;
	const rt_val *x = &e->vals[s];
	const rt_slot *sl = &e->fn->slots[s];
	if (!x->buf || sl->kind != SLOT_OP || sl->last_use != e->op_index || x->data != x->buf->data ||
	    x->dtype != rt_out_dtype(op, out))
		return 0;
	for (int p = 0; p < RT_MAX_PARAMS; p++)
		if (p != param && op->in[p] >= 0 && (op->in[p] == s || e->vals[op->in[p]].buf == x->buf))
			return 0;
	for (int j = 0; j < op->nvar; j++)
		if (op->var[j] == s || e->vals[op->var[j]].buf == x->buf)
			return 0;
	if (x->buf->refs == 1)
		return 1;
	if (op->inplace_state >= 0) {
		state_var *sv = e->states[e->fn->slots[op->inplace_state].index];
		return sv && sv->buf == x->buf && x->buf->refs == 2;
	}
	return 0;
}

rt_val *rt_out_reuse(rt_exec *e, const rt_op *op, int param, int out)
{
	rt_val *v = &e->vals[op->out[out]];
	rt_val x = e->vals[op->in[param]];
	if (check_out_shape(e, op, out, x.rank, x.shape) != 0)
		return NULL;
	x.buf->refs++;
	val_release(v);
	*v = x;
	return v;
}

int rt_param_ints(rt_exec *e, const rt_val *v, const char *what, int64_t *dst, int max, int *n)
{
	if (!v || v->rank > 1 || !rt_dtype_size(v->dtype) || rt_is_float(v->dtype) || v->dtype == MIL_BOOL)
		return rt_err(e, "'%s' must be an integer vector", what);
	if (v->numel > (size_t)max)
		return rt_err(e, "'%s' has %zu values (at most %d)", what, v->numel, max);
	for (size_t i = 0; i < v->numel; i++)
		dst[i] = rt_get_i64(v, i);
	*n = (int)v->numel;
	return 0;
}

int rt_param_int(rt_exec *e, const rt_val *v, const char *what, int64_t dflt, int64_t *out)
{
	*out = dflt;
	if (!v)
		return 0;
	if (v->numel != 1 || !rt_dtype_size(v->dtype) || rt_is_float(v->dtype) || v->dtype == MIL_BOOL)
		return rt_err(e, "'%s' must be one integer", what);
	*out = rt_get_i64(v, 0);
	return 0;
}

int rt_param_bool(rt_exec *e, const rt_val *v, const char *what, int dflt, int *out)
{
	*out = dflt;
	if (!v)
		return 0;
	if (v->numel != 1 || v->dtype != MIL_BOOL)
		return rt_err(e, "'%s' must be one bool", what);
	*out = ((const uint8_t *)v->data)[0] != 0;
	return 0;
}

int rt_param_bools(rt_exec *e, const rt_val *v, const char *what, int rank, int *dst)
{
	for (int i = 0; i < rank; i++)
		dst[i] = 0;
	if (!v)
		return 0;
	if (v->dtype != MIL_BOOL || v->numel != (size_t)rank)
		return rt_err(e, "'%s' must be %d bools", what, rank);
	for (int i = 0; i < rank; i++)
		dst[i] = ((const uint8_t *)v->data)[i] != 0;
	return 0;
}

int rt_param_float(rt_exec *e, const rt_val *v, const char *what, float dflt, float *out)
{
	*out = dflt;
	if (!v)
		return 0;
	if (v->numel != 1 || !rt_dtype_size(v->dtype) || v->dtype == MIL_BOOL)
		return rt_err(e, "'%s' must be one number", what);
	*out = (float)rt_get(v, 0);
	return 0;
}

const char *rt_param_str(rt_exec *e, const rt_val *v, const char *what, const char *dflt)
{
	if (!v)
		return dflt;
	if (v->dtype != MIL_STRING || !v->str) {
		rt_err(e, "'%s' must be a string", what);
		return NULL;
	}
	return v->str;
}

/* ------------------------------------------------------------------ */
/* State ops                                                           */

/* read_state: a view of the state's current buffer (buffers are never
 * changed under a holder, so later writes do not affect it). */
static int core_read_state(rt_exec *e, const rt_op *op)
{
	const rt_slot *sl = &e->fn->slots[op->in[0]];
	if (sl->kind != SLOT_STATE)
		return rt_err(e, "'input' must be a state ('%s' is not)", sl->name);
	state_var *sv = e->states[sl->index];
	rt_val v = {.dtype = MIL_FP16, .rank = sv->rank, .numel = sv->numel, .data = sv->buf->data, .buf = sv->buf};
	memcpy(v.shape, sv->shape, sizeof v.shape);
	return rt_out_view(e, op, 0, &v, sv->rank, sv->shape);
}

/* write_state: the state takes the data's buffer (shared, never copied),
 * or a copy when the data is borrowed. */
static int core_write_state(rt_exec *e, const rt_op *op)
{
	const rt_slot *sl = &e->fn->slots[op->in[0]];
	if (sl->kind != SLOT_STATE)
		return rt_err(e, "'input' must be a state ('%s' is not)", sl->name);
	state_var *sv = e->states[sl->index];
	const rt_val *d = rt_in(e, op, 1);
	if (d->dtype != MIL_FP16 || d->rank != sv->rank ||
	    memcmp(d->shape, sv->shape, (size_t)sv->rank * sizeof *sv->shape) != 0) {
		char got[128], want[128];
		rt_shape_str(got, sizeof got, d->rank, d->shape);
		rt_shape_str(want, sizeof want, sv->rank, sv->shape);
		return rt_err(e, "data is %s%s; state '%s' is fp16%s", dt_name(d->dtype), got, sv->name, want);
	}
	if (d->buf == sv->buf)
		return 0; /* updated in place */
	if (d->buf && d->data == d->buf->data) {
		d->buf->refs++;
		buf_unref(sv->buf);
		sv->buf = d->buf;
		return 0;
	}
	state_own(sv);
	memcpy(sv->buf->data, d->data, sv->numel * 2);
	return 0;
}
