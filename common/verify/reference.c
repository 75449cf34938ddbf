/* reference.c: fp32 forward pass over a mmapped HF checkpoint (see reference.h).
 *
 * Workload: one token per call; per token every weight matrix is read once
 * (mat-vec), so time is memory-bound (~1 s per token for a 1B bf16 model
 * on one core, microseconds for the 260K test model). Memory: the fp32 KV
 * cache [layers][kv_heads][context][head_dim] for K and for V, the norm
 * gains and biases in fp32 (a few * hidden * layers floats), and a handful
 * of activation vectors (hidden, heads * head_dim, intermediate, context);
 * the logits are written straight into the caller's buffer.
 *
 * Numerics follow transformers in float32: every activation is an fp32
 * vector and every elementwise step (norm, RoPE, SiLU/GELU, residual add)
 * rounds to fp32 as torch does (ref_options.fp16_activations rounds the
 * stored activations to fp16 on top, for the FP16 preflight). Dot products are the one place that differs by
 * design: products of two floats are exact in double, so they are summed
 * in double and rounded once to fp32. That is the exact dot product to far
 * below fp32 resolution, whatever the summation order; torch's fp32 BLAS
 * accumulation differs from it by ~1e-7 relative, which is the honest size
 * of "agreement with HF" (and the cost is small: the loop is bound by
 * reading the weights, ~3 GB/s of bf16 per core measured).
 *
 * Threads: a mat-vec of at least PAR_MIN elements is split by rows over a
 * small persistent pool (common/workpool.c). Each row is computed whole by
 * one thread with the same code, so the output is bit-identical for any
 * thread count.
 */
#include "verify/reference.h"
#include "base/fp16.h"
#include "base/util.h"
#include "base/workpool.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>   /* sysconf: online CPUs */

#define DEFAULT_CONTEXT 2048
#define MAX_THREADS 8          /* memory bandwidth saturates well before this */
#define PAR_MIN (1 << 15)      /* smaller mat-vecs cost less than waking the pool */

/* ------------------------------------------------------------------ */
/* Weight rows, converted in the inner loop                            */

/* Element loads from unaligned little-endian bytes; compilers turn the
 * byte assembly into one load. bf16 is the top half of an fp32. */
static inline float f32_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static inline float ld_f32(const uint8_t *p)
{
	return f32_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	                (uint32_t)p[3] << 24);
}

static inline float ld_bf16(const uint8_t *p)
{
	return f32_bits(((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16);
}

/* fp16 goes through a table (256 KB, filled once): exact, and cheaper in
 * the inner loop than decoding subnormals and specials. */
static float g_f16[65536];
static pthread_once_t g_f16_once = PTHREAD_ONCE_INIT;

static void fill_f16_table(void)
{
	for (uint32_t i = 0; i < 65536; i++)
		g_f16[i] = fp16_to_f32((uint16_t)i);
}

static inline float ld_f16(const uint8_t *p)
{
	return g_f16[(uint32_t)p[0] | (uint32_t)p[1] << 8];
}

/* Dot product of one weight row with x, summed in double (see top). Eight
 * independent accumulators: the loop is bound by the add latency
 * otherwise (four lanes measured 2.5x slower), and gcc -O2 vectorises the
 * inner loop over them. */
#define LANES 8
#define DEFINE_DOT(name, LOAD, SIZE)                                         \
	static float name(const uint8_t *w, const float *x, int n)           \
	{                                                                    \
		double a[LANES] = {0};                                       \
		int i = 0;                                                   \
		for (; i + LANES <= n; i += LANES, w += LANES * (SIZE))      \
			for (int j = 0; j < LANES; j++)                      \
				a[j] += (double)LOAD(w + j * (SIZE)) * x[i + j]; \
		for (; i < n; i++, w += (SIZE))                              \
			a[0] += (double)LOAD(w) * x[i];                      \
		double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); \
		return (float)s;                                             \
	}

DEFINE_DOT(dot_f32, ld_f32, 4)
DEFINE_DOT(dot_bf16, ld_bf16, 2)
DEFINE_DOT(dot_f16, ld_f16, 2)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define REF_AVX2 1
/* The same sums with AVX2, lane for lane: a[0..3] and a[4..7] are two
 * vectors of doubles. A product of two floats is exact in double, so the
 * adds are the only roundings and they happen in the same order: the bits
 * are those of the plain loop, three to four times faster (the plain loop
 * is bound by converting, not by memory). */
#define DEFINE_DOT_AVX2(name, LOAD8, LOAD, SIZE)                                                     \
	__attribute__((target("avx2,f16c"))) static float name(const uint8_t *w, const float *x, int n) \
	{                                                                                                \
		__m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();                              \
		int i = 0;                                                                               \
		for (; i + LANES <= n; i += LANES, w += LANES * (SIZE)) {                                \
			__m256 wv = LOAD8(w), xv = _mm256_loadu_ps(x + i);                               \
			__m256d pl = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(wv)),          \
			                           _mm256_cvtps_pd(_mm256_castps256_ps128(xv)));         \
			__m256d ph = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(wv, 1)),        \
			                           _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)));       \
			lo = _mm256_add_pd(lo, pl);                                                      \
			hi = _mm256_add_pd(hi, ph);                                                      \
		}                                                                                        \
		double a[LANES];                                                                         \
		_mm256_storeu_pd(a, lo);                                                                 \
		_mm256_storeu_pd(a + 4, hi);                                                             \
		for (; i < n; i++, w += (SIZE))                                                          \
			a[0] += (double)LOAD(w) * x[i];                                                  \
		double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));           \
		return (float)s;                                                                         \
	}

#define LD8_F32(w) _mm256_loadu_ps((const float *)(const void *)(w))
#define LD8_BF16(w) \
	_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(w))), 16))
#define LD8_F16(w) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w)))

DEFINE_DOT_AVX2(dot_f32_avx2, LD8_F32, ld_f32, 4)
DEFINE_DOT_AVX2(dot_bf16_avx2, LD8_BF16, ld_bf16, 2)
DEFINE_DOT_AVX2(dot_f16_avx2, LD8_F16, ld_f16, 2)

/* avx2 also tells the OS saves the YMM state; F16C from cpuid (clang's
 * __builtin_cpu_supports does not know it). */
static int have_avx2(void)
{
	unsigned a, b, c, d;
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

/* Several vectors against one row at a time (a teacher-forced batch reads
 * each weight once for all its tokens): the row's 8 elements in double fill
 * one 512-bit vector whose lanes are a[0..7] above, so every sum is the
 * one-vector dot's, bit for bit. xd: the vectors in double (exact). */
#define DEFINE_DOTS_512(name, LOAD8, LOAD, SIZE)                                                        \
	__attribute__((target("avx512f,avx2,f16c"))) static void name(const uint8_t *w0, const double *const *xd, \
								      int nx, int n, float *out)                  \
	{                                                                                                   \
		for (int b0 = 0; b0 < nx; b0 += 8) {                                                        \
			const double *x[8];                                                                 \
			for (int j = 0; j < 8; j++) /* missing vectors repeat the last one */               \
				x[j] = xd[b0 + j < nx ? b0 + j : nx - 1];                                   \
			__m512d a[8];                                                                       \
			for (int j = 0; j < 8; j++)                                                         \
				a[j] = _mm512_setzero_pd();                                                 \
			const uint8_t *w = w0;                                                              \
			int i = 0;                                                                          \
			for (; i + LANES <= n; i += LANES, w += LANES * (SIZE)) {                           \
				__m512d wd = _mm512_cvtps_pd(LOAD8(w));                                     \
				for (int j = 0; j < 8; j++) {                                               \
					__m512d p = _mm512_mul_pd(wd, _mm512_loadu_pd(x[j] + i));           \
					a[j] = _mm512_add_pd(a[j], p);                                      \
				}                                                                           \
			}                                                                                   \
			for (int j = 0; j < 8 && b0 + j < nx; j++) {                                        \
				double s[LANES];                                                            \
				_mm512_storeu_pd(s, a[j]);                                                  \
				const uint8_t *t = w;                                                       \
				for (int k = i; k < n; k++, t += (SIZE))                                    \
					s[0] += (double)LOAD(t) * x[j][k];                                  \
				out[b0 + j] = (float)(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))); \
			}                                                                                   \
		}                                                                                           \
	}

/* One vector, the same way: one 512-bit accumulator holds a[0..7]. */
#define DEFINE_DOT_512(name, LOAD8, LOAD, SIZE)                                                         \
	__attribute__((target("avx512f,avx2,f16c"))) static float name(const uint8_t *w, const float *x, int n) \
	{                                                                                                   \
		__m512d acc = _mm512_setzero_pd();                                                          \
		int i = 0;                                                                                  \
		for (; i + LANES <= n; i += LANES, w += LANES * (SIZE)) {                                   \
			__m512d p = _mm512_mul_pd(_mm512_cvtps_pd(LOAD8(w)), _mm512_cvtps_pd(_mm256_loadu_ps(x + i))); \
			acc = _mm512_add_pd(acc, p);                                                        \
		}                                                                                           \
		double a[LANES];                                                                            \
		_mm512_storeu_pd(a, acc);                                                                   \
		for (; i < n; i++, w += (SIZE))                                                             \
			a[0] += (double)LOAD(w) * x[i];                                                     \
		return (float)(((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])));         \
	}

DEFINE_DOT_512(dot_f32_512, LD8_F32, ld_f32, 4)
DEFINE_DOT_512(dot_bf16_512, LD8_BF16, ld_bf16, 2)
DEFINE_DOT_512(dot_f16_512, LD8_F16, ld_f16, 2)
DEFINE_DOTS_512(dots_f32_512, LD8_F32, ld_f32, 4)
DEFINE_DOTS_512(dots_bf16_512, LD8_BF16, ld_bf16, 2)
DEFINE_DOTS_512(dots_f16_512, LD8_F16, ld_f16, 2)

static int have_avx512(void)
{
	__builtin_cpu_init();
	return have_avx2() && __builtin_cpu_supports("avx512f");
}

#else
static int have_avx2(void) { return 0; }
static int have_avx512(void) { return 0; }
#endif

/* Dot product of two activation vectors, the same way. */
static float dot_ff(const float *a, const float *b, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return (float)s;
}

/* A weight matrix [rows, cols] left in the checkpoint's mapping. */
typedef struct ref_mat {
	const uint8_t *data;
	size_t row_bytes;
	int rows, cols;
	float (*dot)(const uint8_t *w, const float *x, int n);
	/* several vectors at once (AVX-512), or NULL: dot per vector */
	void (*dots)(const uint8_t *w, const double *const *xd, int nx, int n, float *out);
} ref_mat;

static void matvec_rows(const ref_mat *a, const float *x, float *y, int r0, int r1)
{
	for (int r = r0; r < r1; r++)
		y[r] = a->dot(a->data + (size_t)r * a->row_bytes, x, a->cols);
}

/* ------------------------------------------------------------------ */
/* Parallel mat-vec: part i of n takes a fixed slice of the rows       */

typedef struct matvec_job {
	const ref_mat *a;
	const float *x;
	float *y;
} matvec_job;

static void matvec_part(void *arg, int i, int parts)
{
	const matvec_job *j = arg;
	int rows = j->a->rows;
	int r0 = (int)((long long)rows * i / parts);
	int r1 = (int)((long long)rows * (i + 1) / parts);
	matvec_rows(j->a, j->x, j->y, r0, r1);
}

/* All `workers` threads or none: NULL with errf() when one cannot start. */
static workpool *pool_start(int workers)
{
	workpool *p = workpool_new(workers);
	if (workpool_size(p) < workers) {
		int e = errno;
		workpool_free(p);
		errno = e;
		errf("reference forward pass: cannot start a thread:");
		return NULL;
	}
	return p;
}

/* ------------------------------------------------------------------ */
/* The model                                                           */

/* One position's activations in a batch (ref_forward_n); the model's own
 * fields of the same names point at the current position's. */
typedef struct ref_slot {
	float *x, *xn, *q, *k, *v, *att_out, *tmp, *gate, *up, *cos, *sin, *cos_l, *sin_l;
} ref_slot;

#define REF_BATCH 64 /* positions per pass of ref_forward_n */

typedef struct ref_layer {
	ref_mat q, k, v, o, gate, up, down;
	float *in_norm, *post_norm;          /* [hidden] gains */
	float *pre_ff_norm, *post_ff_norm;   /* [hidden] gains (four_norms) or NULL */
	float *q_norm, *k_norm;              /* [head_dim] gains (qk_norm), [heads * head_dim]
	                                      * (qk_norm_full: OLMo 2) or NULL */
	float *q_bias, *k_bias, *v_bias, *o_bias;
	float *gate_bias, *up_bias, *down_bias;
	int window;                          /* sliding window in tokens, 0: full attention */
	int local_rope;                      /* rotates with the local (sliding-layer) RoPE */
	int nope;                            /* no RoPE at all (SmolLM3) */
} ref_layer;

struct ref_model {
	const hf_model *hf;
	int hidden, inter, layers, heads, kv_heads, head_dim, vocab, ctx;
	float eps;
	float attn_scale;                    /* query_pre_attn_scalar ** -0.5 (head_dim
	                                      * except Gemma3) */
	float embed_scale;                   /* 1, sqrt(hidden) (Gemma) or embedding_multiplier (Granite) */
	float residual_mult, logits_scaling; /* Granite, else 1 */
	int rot_dim;                         /* rotated dims per head (Phi3: partial_rotary_factor) */
	float *inv_long;                     /* longrope: the long factors' frequencies, used */
	int long_from;                       /* from this position on */
	float rope_mscale;                   /* longrope attention_factor on cos/sin, else 1 */
	arch_act act;
	ref_mat lm_head;                     /* [vocab, hidden]; may be the embedding matrix */
	const st_tensor *embed;
	float *final_norm;
	ref_layer *layer;
	float *inv_freq, *cos, *sin;         /* [head_dim / 2]: global RoPE */
	float *inv_local, *cos_l, *sin_l;    /* local RoPE (Gemma3 sliding layers) or NULL */
	int fp16;                            /* ref_options.fp16_activations */
	int scores_fp16;                     /* fp16 also rounds attention scores */
	float clamp;                         /* 0: off */
	float alpha;                         /* fp16_scale, 1: off */
	void (*tap)(void *, int, ref_tap_site, const float *, int); /* ref_options.tap */
	void *tap_ctx;
	const char *replace_name;            /* ref_options.replace_* */
	const float *replace_data;
	int first_bad;                       /* ref_first_nonfinite_layer */
	float *kcache, *vcache;              /* [layers][kv_heads][ctx][head_dim] */
	int filled;                          /* positions 0..filled-1 are cached */
	float *x, *xn, *q, *k, *v, *att_out, *tmp, *gate, *up, *scores;
	double *acc;                         /* [head_dim]: P.V accumulators */
	ref_slot *slot;                      /* ref_forward_n: per position; slot 0 is the fields above */
	double **xd;                         /* per slot: a mat-vec input in double (the wide kernel) */
	int nslots;
	float *peak;                         /* [layers] */
	workpool *pool;
};

static void matvec(ref_model *m, const ref_mat *a, const float *x, float *y)
{
	if (m->pool && (size_t)a->rows * (size_t)a->cols >= PAR_MIN)
		workpool_run(m->pool, workpool_size(m->pool) + 1, matvec_part, &(matvec_job){a, x, y});
	else
		matvec_rows(a, x, y, 0, a->rows);
}

/* Several vectors through one matrix, each weight row read once for all
 * of them: y[b] = a . x[b], every value the one matvec gives. */
typedef struct matvecs_job {
	const ref_mat *a;
	int n;
	float *const *x, *const *y;
	const double *const *xd;
} matvecs_job;

static void matvecs_part(void *arg, int i, int parts)
{
	const matvecs_job *j = arg;
	const ref_mat *a = j->a;
	int r0 = (int)((long long)a->rows * i / parts), r1 = (int)((long long)a->rows * (i + 1) / parts);
	float o[REF_BATCH];
	for (int r = r0; r < r1; r++) {
		const uint8_t *w = a->data + (size_t)r * a->row_bytes;
		if (a->dots) {
			a->dots(w, j->xd, j->n, a->cols, o);
			for (int b = 0; b < j->n; b++)
				j->y[b][r] = o[b];
		} else {
			for (int b = 0; b < j->n; b++)
				j->y[b][r] = a->dot(w, j->x[b], a->cols);
		}
	}
}

static void matvecs(ref_model *m, const ref_mat *a, float *const *x, float *const *y, int n)
{
	if (n == 1) {
		matvec(m, a, x[0], y[0]);
		return;
	}
	for (int b = 0; a->dots && b < n; b++)
		for (int i = 0; i < a->cols; i++)
			m->xd[b][i] = x[b][i];
	matvecs_job j = {a, n, x, y, (const double *const *)m->xd};
	if (m->pool)
		workpool_run(m->pool, workpool_size(m->pool) + 1, matvecs_part, &j);
	else
		matvecs_part(&j, 0, 1);
}

static void add_bias(float *y, const float *b, int n)
{
	if (b)
		for (int i = 0; i < n; i++)
			y[i] += b[i];
}

/* x rounded to fp16 as the Neural Engine stores it: nearest even, overflow
 * to +-inf (fp16.h's converter clamps instead; its flag tells us when). */
static inline float f16_round(float x)
{
	int ov;
	uint16_t h = f32_to_fp16(x, &ov);
	return ov && !isnan(x) ? copysignf(INFINITY, x) : g_f16[h];
}

/* An activation vector the ANE would store in fp16 (no-op in plain fp32). */
static void store(const ref_model *m, float *v, int n)
{
	for (int i = 0; m->fp16 && i < n; i++)
		v[i] = f16_round(v[i]);
}

/* ------------------------------------------------------------------ */
/* Opening: every tensor checked and bound once                        */

static int bind_mat(const st_tensor *t, int rows, int cols, ref_mat *out)
{
	if (!t)
		return -1; /* hf_*_tensor recorded which one is missing */
	char got[64];
	if (t->rank != 2 || t->shape[0] != (uint64_t)rows || t->shape[1] != (uint64_t)cols)
		return errf("%s: tensor '%s' has shape %s, expected [%d,%d]", t->file, t->name,
		            st_shape_str(t, got, sizeof got), rows, cols);
	size_t esize;
	int v = have_avx2() && !getenv("ANEMAKE_REF_PLAIN");
	switch (t->dtype) {
#ifdef REF_AVX2
	case ST_F32: out->dot = v ? dot_f32_avx2 : dot_f32; esize = 4; break;
	case ST_BF16: out->dot = v ? dot_bf16_avx2 : dot_bf16; esize = 2; break;
	case ST_F16: out->dot = v ? dot_f16_avx2 : dot_f16; esize = 2; break;
#else
	case ST_F32: out->dot = dot_f32; esize = 4; break;
	case ST_BF16: out->dot = dot_bf16; esize = 2; break;
	case ST_F16: out->dot = dot_f16; esize = 2; break;
#endif
	default:
		return errf("%s: tensor '%s' has dtype %s; the reference forward pass reads F32, F16 "
		            "and BF16", t->file, t->name, st_dtype_name(t->dtype));
	}
	out->dots = NULL;
#ifdef REF_AVX2
	if (v && have_avx512()) {
		out->dot = t->dtype == ST_F32 ? dot_f32_512 : t->dtype == ST_BF16 ? dot_bf16_512 : dot_f16_512;
		out->dots = t->dtype == ST_F32 ? dots_f32_512 : t->dtype == ST_BF16 ? dots_bf16_512 : dots_f16_512;
	}
#endif
	out->data = t->data;
	out->row_bytes = (size_t)cols * esize;
	out->rows = rows;
	out->cols = cols;
	return 0;
}

/* A 1-D tensor of n elements into fp32; gains of (1 + w) norms folded in,
 * which is exactly what HF computes in fp32. */
static int bind_vec(const st_tensor *t, int n, int plus_one, float scale, float **out)
{
	if (!t)
		return -1;
	char got[64];
	if (t->rank != 1 || t->shape[0] != (uint64_t)n)
		return errf("%s: tensor '%s' has shape %s, expected [%d]", t->file, t->name,
		            st_shape_str(t, got, sizeof got), n);
	float *v = xmalloc(xmul((size_t)n, sizeof *v));
	if (st_read_f32(t, v) != 0) {
		free(v);
		return -1;
	}
	for (int i = 0; plus_one && i < n; i++)
		v[i] = 1.0f + v[i];
	for (int i = 0; scale != 1.0f && i < n; i++)
		v[i] *= scale;
	*out = v;
	return 0;
}

/* A matrix that may be rows of a fused tensor (hf_layer_proj). */
static int bind_rows(const hf_model *hf, int l, const char *suffix, int rows, int cols, ref_mat *out)
{
	uint64_t row0, n;
	const st_tensor *t = hf_layer_proj(hf, l, suffix, &row0, &n);
	if (!t)
		return -1;
	if (n == t->shape[0])
		return bind_mat(t, rows, cols, out);
	if (t->rank != 2 || t->shape[1] != (uint64_t)cols || n != (uint64_t)rows || row0 + n > t->shape[0])
		return errf("%s: tensor '%s' cannot hold rows %llu-%llu of %d columns", t->file, t->name,
		            (unsigned long long)row0, (unsigned long long)(row0 + n - 1), cols);
	int rc = bind_mat(t, (int)t->shape[0], cols, out);
	if (rc == 0) {
		out->data += (size_t)row0 * out->row_bytes;
		out->rows = rows;
	}
	return rc;
}

/* One tensor a layer may have: bound when `on`. */
typedef struct ref_part {
	const char *suffix;
	int on;
	ref_mat *mat;      /* a matrix [rows, cols] ... */
	float **vec;       /* ... or a vector [rows] */
	int rows, cols;
	int gain;          /* a norm gain (1 + w for norm_plus_one architectures) */
	int scaled;        /* a post norm: its gain times fp16_scale */
} ref_part;

static int bind_layer(ref_model *m, int l)
{
	const hf_config *c = &m->hf->cfg;
	const arch_info *a = c->arch;
	ref_layer *y = &m->layer[l];
	int H = m->hidden, I = m->inter, D = m->head_dim;
	int Q = m->heads * D, KV = m->kv_heads * D;
	int ab = c->attention_bias, mb = c->mlp_bias, four = a->four_norms, post = a->post_norms;
	/* with four norms post_attention_layernorm is the attention output's
	 * norm, scaled by fp16_scale; otherwise it is the MLP's input norm
	 * (OLMo 2's post norms: the attention output's, unscaled) */
	const ref_part parts[] = {
		{"input_layernorm.weight", !post, NULL, &y->in_norm, H, 0, 1, 0},
		{"post_attention_layernorm.weight", 1, NULL, &y->post_norm, H, 0, 1, four},
		{"pre_feedforward_layernorm.weight", four, NULL, &y->pre_ff_norm, H, 0, 1, 0},
		{"post_feedforward_layernorm.weight", four || post, NULL, &y->post_ff_norm, H, 0, 1, four},
		{"self_attn.q_proj.weight", 1, &y->q, NULL, Q, H, 0, 0},
		{"self_attn.k_proj.weight", 1, &y->k, NULL, KV, H, 0, 0},
		{"self_attn.v_proj.weight", 1, &y->v, NULL, KV, H, 0, 0},
		{"self_attn.o_proj.weight", 1, &y->o, NULL, H, Q, 0, 0},
		{"self_attn.q_norm.weight", a->qk_norm, NULL, &y->q_norm, D, 0, 1, 0},
		{"self_attn.k_norm.weight", a->qk_norm, NULL, &y->k_norm, D, 0, 1, 0},
		{"self_attn.q_norm.weight", a->qk_norm_full, NULL, &y->q_norm, Q, 0, 1, 0},
		{"self_attn.k_norm.weight", a->qk_norm_full, NULL, &y->k_norm, KV, 0, 1, 0},
		{"self_attn.q_proj.bias", ab, NULL, &y->q_bias, Q, 0, 0, 0},
		{"self_attn.k_proj.bias", ab, NULL, &y->k_bias, KV, 0, 0, 0},
		{"self_attn.v_proj.bias", ab, NULL, &y->v_bias, KV, 0, 0, 0},
		{"self_attn.o_proj.bias", ab && a->o_bias_with_attention_bias, NULL, &y->o_bias, H, 0, 0, 0},
		{"mlp.gate_proj.weight", 1, &y->gate, NULL, I, H, 0, 0},
		{"mlp.up_proj.weight", 1, &y->up, NULL, I, H, 0, 0},
		{"mlp.down_proj.weight", 1, &y->down, NULL, H, I, 0, 0},
		{"mlp.gate_proj.bias", mb, NULL, &y->gate_bias, I, 0, 0, 0},
		{"mlp.up_proj.bias", mb, NULL, &y->up_bias, I, 0, 0, 0},
		{"mlp.down_proj.bias", mb, NULL, &y->down_bias, H, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		const ref_part *p = &parts[i];
		if (!p->on)
			continue;
		int rc = p->mat ? bind_rows(m->hf, l, p->suffix, p->rows, p->cols, p->mat)
		                : bind_vec(hf_layer_tensor(m->hf, l, p->suffix), p->rows, p->gain && a->norm_plus_one,
		                           p->scaled ? m->alpha : 1.0f, p->vec);
		if (rc)
			return -1;
		/* lutauto's candidate weight in place of a checkpoint tensor (fused ones are never replaced) */
		const st_tensor *t = p->mat && m->replace_name ? hf_layer_tensor(m->hf, l, p->suffix) : NULL;
		if (t && streq(t->name, m->replace_name)) {
			p->mat->data = (const uint8_t *)m->replace_data;
			p->mat->row_bytes = (size_t)p->cols * sizeof(float);
			p->mat->dot = dot_f32;
			p->mat->dots = NULL;
		}
	}
	y->window = hf_config_layer_sliding(c, l) ? c->sliding_window : 0;
	y->local_rope = y->window && m->inv_local;
	y->nope = !hf_config_layer_rope(c, l);
	return 0;
}

/* What the forward pass does not do yet, by trait; NULL when supported. */
static const char *missing_feature(const hf_config *c)
{
	if (c->has_attn_logit_softcapping || c->has_final_logit_softcapping)
		return "logit soft-capping";
	return NULL;
}

static int check_sizes(const ref_model *m, const hf_config *c)
{
	if (m->heads <= 0 || m->kv_heads <= 0 || m->heads % m->kv_heads != 0)
		return errf("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
		            c->path, m->heads, m->kv_heads);
	if (m->head_dim <= 0 || m->head_dim % 2 != 0)
		return errf("%s: head_dim %d must be even (RoPE rotates halves)", c->path, m->head_dim);
	if (m->hidden <= 0 || m->inter <= 0 || m->vocab <= 0 || m->layers <= 0)
		return errf("%s: sizes must be positive", c->path);
	return 0;
}

static void inv_freq_of(double base, const hf_rope_scaling *rs, int d, float *inv_freq);
static void longrope_inv_freq(double base, const double *factors, int d, float *inv_freq);

static int set_fp16_options(ref_model *m, const hf_config *c, const ref_options *opt)
{
	m->alpha = 1.0f;
	m->first_bad = -1;
	if (!opt)
		return 0;
	m->fp16 = opt->fp16_activations != 0;
	m->scores_fp16 = m->fp16 && !c->arch->attn_fp32;
	if (!(opt->clamp >= 0) || !(opt->clamp <= FLT_MAX))
		return errf("reference forward pass: clamp %g must be a non-negative number", opt->clamp);
	m->clamp = (float)opt->clamp;
	if (opt->fp16_scale != 0) {
		if (!(opt->fp16_scale > 0 && opt->fp16_scale <= 1))
			return errf("reference forward pass: fp16_scale %g must be in (0, 1]", opt->fp16_scale);
		if (!c->arch->four_norms)
			return errf("reference forward pass: fp16_scale needs post-attention and post-feedforward "
			            "norms (Gemma 3); %s has none", c->arch->name);
		m->alpha = (float)opt->fp16_scale;
	}
	return 0;
}

static int set_options(ref_model *m, const hf_config *c, const ref_options *opt)
{
	int ctx = opt ? opt->context : 0, threads = opt ? opt->threads : 0;
	if (ctx < 0 || threads < 0)
		return errf("reference forward pass: context %d and threads %d must not be negative",
		            ctx, threads);
	if (ctx == 0)
		ctx = c->max_position_embeddings < DEFAULT_CONTEXT ? c->max_position_embeddings
		                                                   : DEFAULT_CONTEXT;
	m->ctx = ctx > 0 ? ctx : DEFAULT_CONTEXT;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
	}
	if (threads > 64)
		threads = 64;
	if (set_fp16_options(m, c, opt) != 0)
		return -1;
	if (opt) {
		m->tap = opt->tap;
		m->tap_ctx = opt->tap_ctx;
		m->replace_name = opt->replace_name;
		m->replace_data = opt->replace_data;
	}
	if (threads > 1 && !(m->pool = pool_start(threads - 1)))
		return -1;
	if (c->arch->def.rope_local_base_freq > 0) {
		/* the architecture has a local RoPE for its sliding layers (Gemma3):
		 * HF builds it with rope_local_base_freq and default rope_type */
		m->inv_local = xcalloc((size_t)m->head_dim / 2, sizeof(float));
		inv_freq_of(c->rope_local_base_freq, NULL, m->head_dim, m->inv_local);
	}
	m->rope_mscale = 1.0f;
	m->long_from = INT32_MAX;
	const hf_rope_scaling *rs = &c->rope_scaling;
	if (rs->kind == ROPE_LONGROPE && !(opt && opt->rope_anemll_compat)) {
		/* HF switches to the long factors once the sequence passes the
		 * original context: token by token, from that position on */
		m->inv_long = xcalloc((size_t)m->head_dim / 2, sizeof(float));
		longrope_inv_freq(c->rope_theta, rs->long_factor, m->rot_dim, m->inv_long);
		m->long_from = rs->original_max_position_embeddings;
		m->rope_mscale = (float)rs->attention_factor;
	}
	return ref_rope_inv_freq(c, opt && opt->rope_anemll_compat, m->inv_freq);
}

static void alloc_state(ref_model *m)
{
	size_t H = (size_t)m->hidden, D = (size_t)m->head_dim;
	size_t cache = xmul(xmul((size_t)m->layers, (size_t)m->kv_heads), xmul((size_t)m->ctx, D));
	m->kcache = xcalloc(cache, sizeof(float));
	m->vcache = xcalloc(cache, sizeof(float));
	m->x = xcalloc(H, sizeof(float));
	m->xn = xcalloc(H, sizeof(float));
	m->tmp = xcalloc(H, sizeof(float));
	m->q = xcalloc((size_t)m->heads * D, sizeof(float));
	m->att_out = xcalloc((size_t)m->heads * D, sizeof(float));
	m->k = xcalloc((size_t)m->kv_heads * D, sizeof(float));
	m->v = xcalloc((size_t)m->kv_heads * D, sizeof(float));
	m->gate = xcalloc((size_t)m->inter, sizeof(float));
	m->up = xcalloc((size_t)m->inter, sizeof(float));
	m->scores = xcalloc((size_t)m->ctx, sizeof(float));
	m->acc = xcalloc(D, sizeof(double));
	m->cos = xcalloc(D / 2, sizeof(float));
	m->sin = xcalloc(D / 2, sizeof(float));
	m->cos_l = xcalloc(D / 2, sizeof(float));
	m->sin_l = xcalloc(D / 2, sizeof(float));
	m->peak = xcalloc((size_t)m->layers, sizeof(float));
}

/* The batch slots beyond slot 0 (grow_slots). */
static void free_slots(ref_model *m)
{
	for (int b = 1; b < m->nslots; b++) {
		float *v[] = {m->slot[b].x, m->slot[b].xn, m->slot[b].q, m->slot[b].k, m->slot[b].v,
			      m->slot[b].att_out, m->slot[b].tmp, m->slot[b].gate, m->slot[b].up, m->slot[b].cos,
			      m->slot[b].sin, m->slot[b].cos_l, m->slot[b].sin_l};
		for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
			free(v[i]);
	}
	for (int b = 0; m->xd && b < REF_BATCH; b++)
		free(m->xd[b]);
	free(m->xd);
	free(m->slot);
}

ref_model *ref_open(const hf_model *hf, const ref_options *opt)
{
	const hf_config *c = &hf->cfg;
	const char *why = missing_feature(c);
	if (why) {
		errf("reference forward pass for %s is not implemented yet (%s)", c->arch->name, why);
		return NULL;
	}
	pthread_once(&g_f16_once, fill_f16_table);
	ref_model *m = xcalloc(1, sizeof *m);
	m->hf = hf;
	m->hidden = c->hidden_size;
	m->inter = c->intermediate_size;
	m->layers = c->num_hidden_layers;
	m->heads = c->num_attention_heads;
	m->kv_heads = c->num_key_value_heads;
	m->head_dim = c->head_dim;
	m->vocab = c->vocab_size;
	m->eps = (float)c->rms_norm_eps;
	/* config value ** -0.5 in double, as Python evaluates it (hfconfig sets
	 * query_pre_attn_scalar = head_dim for every architecture but Gemma3) */
	m->attn_scale = c->attn_scale > 0 ? (float)c->attn_scale : (float)pow(c->query_pre_attn_scalar, -0.5);
	/* HF keeps sqrt(hidden) as a scalar and multiplies in the activation dtype */
	m->embed_scale = c->arch->embed_scale_sqrt_hidden ? (float)sqrt((double)m->hidden) : 1.0f;
	if (c->embedding_multiplier > 0) /* Granite */
		m->embed_scale *= (float)c->embedding_multiplier;
	m->residual_mult = c->residual_multiplier > 0 ? (float)c->residual_multiplier : 1.0f;
	m->logits_scaling = c->logits_scaling > 0 ? (float)c->logits_scaling : 1.0f;
	m->rot_dim = hf_config_rotary_dim(c);
	m->act = c->act;
	if (check_sizes(m, c) != 0) {
		free(m);
		return NULL;
	}
	m->inv_freq = xcalloc((size_t)m->head_dim / 2, sizeof(float));
	m->layer = xcalloc((size_t)m->layers, sizeof *m->layer);
	int rc = set_options(m, c, opt);
	if (rc == 0)
		rc = bind_vec(hf->norm, m->hidden, c->arch->norm_plus_one, 1.0f, &m->final_norm);
	if (rc == 0)
		rc = bind_mat(hf->lm_head, m->vocab, m->hidden, &m->lm_head);
	m->embed = hf->embed;
	if (rc == 0 && !(m->embed && m->embed->rank == 2 &&
	                 m->embed->shape[0] == (uint64_t)m->vocab &&
	                 m->embed->shape[1] == (uint64_t)m->hidden))
		rc = errf("%s: embedding matrix missing or not [%d,%d]", hf->dir, m->vocab, m->hidden);
	for (int l = 0; rc == 0 && l < m->layers; l++)
		rc = bind_layer(m, l);
	if (rc) {
		ref_close(m);
		return NULL;
	}
	alloc_state(m);
	return m;
}

void ref_close(ref_model *m)
{
	if (!m)
		return;
	workpool_free(m->pool);
	for (int l = 0; m->layer && l < m->layers; l++) {
		ref_layer *y = &m->layer[l];
		float *v[] = {y->in_norm, y->post_norm, y->pre_ff_norm, y->post_ff_norm, y->q_norm, y->k_norm, y->q_bias, y->k_bias,
		              y->v_bias, y->o_bias, y->gate_bias, y->up_bias, y->down_bias};
		for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
			free(v[i]);
	}
	free(m->layer);
	free(m->final_norm);
	free(m->inv_freq);
	free(m->inv_long);
	free(m->cos);
	free(m->sin);
	free(m->inv_local);
	free(m->cos_l);
	free(m->sin_l);
	free(m->kcache);
	free(m->vcache);
	free(m->x);
	free(m->xn);
	free(m->tmp);
	free(m->q);
	free(m->att_out);
	free(m->k);
	free(m->v);
	free(m->gate);
	free(m->up);
	free(m->scores);
	free(m->acc);
	free(m->peak);
	free_slots(m);
	free(m);
}

void ref_reset(ref_model *m)
{
	m->filled = 0;
}

int ref_context(const ref_model *m)
{
	return m->ctx;
}

const float *ref_layer_peaks(const ref_model *m)
{
	return m->peak;
}

void ref_clear_peaks(ref_model *m)
{
	memset(m->peak, 0, (size_t)m->layers * sizeof *m->peak);
	m->first_bad = -1;
}

int ref_first_nonfinite_layer(const ref_model *m)
{
	return m->first_bad;
}

/* ------------------------------------------------------------------ */
/* RoPE frequencies                                                    */

/* HF's llama3 band formula (_compute_llama3_parameters), step for step in
 * float32 as torch evaluates it: long wavelengths are slowed by `factor`,
 * short ones kept, the band between interpolated. */
static float llama3_band(float inv, const hf_rope_scaling *rs)
{
	const double two_pi = 2 * 3.14159265358979323846;
	double old = rs->original_max_position_embeddings;
	float factor = (float)rs->factor, low = (float)rs->low_freq_factor;
	float low_wavelen = (float)(old / rs->low_freq_factor);
	float high_wavelen = (float)(old / rs->high_freq_factor);
	float wavelen = (float)two_pi / inv;
	if (wavelen > low_wavelen)
		return inv / factor;
	if (wavelen < high_wavelen)
		return inv;
	float smooth = ((float)old / wavelen - low) /
	               (float)(rs->high_freq_factor - rs->low_freq_factor);
	return (1.0f - smooth) * inv / factor + smooth * inv;
}

/* ANEMLL 0.3.5 multiplies the base by rope_scaling.factor in its Llama and
 * Qwen2.5 models and ignores rope_scaling in Qwen3 and Gemma3 (section 2).
 * (The rope_scaling kinds are those of the config; ROPE_OTHER cannot reach
 * inv_freq_of: it is refused, or dropped in compat mode.) */
static int anemll_scales_base(const arch_info *a)
{
	return a->id == ARCH_LLAMA || a->id == ARCH_QWEN2;
}

/* Inverse frequencies of base with scaling rs (NULL: none; linear or llama3). */
static void inv_freq_of(double base, const hf_rope_scaling *rs, int d, float *inv_freq)
{
	/* torch: 1.0 / (base ** (arange(0, d, 2).float() / d)), all float32: the
	 * exponent rounds to fp32, the power is rounded to fp32 (computed in
	 * double here, i.e. correctly rounded), then the fp32 reciprocal. */
	float fbase = (float)base;
	for (int i = 0; i < d / 2; i++) {
		float e = (float)(2 * i) / (float)d;
		float p = (float)pow((double)fbase, (double)e);
		float f = 1.0f / p;
		if (rs && rs->kind == ROPE_LINEAR)
			f = f / (float)rs->factor;
		else if (rs && rs->kind == ROPE_LLAMA3)
			f = llama3_band(f, rs);
		inv_freq[i] = f;
	}
}

/* HF's longrope: 1 / (factor * base ** (2i/d)), in float32. */
static void longrope_inv_freq(double base, const double *factors, int d, float *inv_freq)
{
	float fbase = (float)base;
	for (int i = 0; i < d / 2; i++) {
		float p = (float)pow((double)fbase, (double)((float)(2 * i) / (float)d));
		inv_freq[i] = 1.0f / ((float)factors[i] * p);
	}
}

int ref_rope_inv_freq(const hf_config *c, int anemll_compat, float *inv_freq)
{
	const hf_rope_scaling *rs = &c->rope_scaling;
	int d = hf_config_rotary_dim(c);
	double base = c->rope_theta;
	hf_rope_kind kind = rs->kind;
	if (anemll_compat) {
		if (anemll_scales_base(c->arch) && rs->factor > 0)
			base *= rs->factor;
		kind = ROPE_NONE;
	} else if (kind == ROPE_LONGROPE) { /* the short factors: positions below the original context */
		longrope_inv_freq(base, rs->short_factor, d, inv_freq);
		return 0;
	} else if (kind == ROPE_OTHER) {
		return errf("%s: rope_scaling type '%s' is not supported by the reference forward "
		            "pass (supported: linear, llama3, longrope)", c->path, rs->type ? rs->type : "?");
	}
	inv_freq_of(base, kind == ROPE_NONE ? NULL : rs, d, inv_freq);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Blocks                                                              */

/* HF RMSNorm in fp32: w * (x * rsqrt(mean(x^2) + eps)); the mean of squares
 * is summed in double (torch sums fp32 pairwise: same value to ~1e-7). */
static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float r = 1.0f / sqrtf((float)(ss / n) + eps);
	for (int i = 0; i < n; i++)
		out[i] = w[i] * (x[i] * r);
}

/* Rotate-half RoPE: x*cos + rotate_half(x)*sin, rotate_half = cat(-x2, x1). */
static void rope(float *x, const float *cs, const float *sn, int d)
{
	int h = d / 2;
	for (int i = 0; i < h; i++) {
		float a = x[i], b = x[i + h];
		x[i] = a * cs[i] - b * sn[i];
		x[i + h] = b * cs[i] + a * sn[i];
	}
}

static float act(arch_act kind, float x)
{
	if (kind == ACT_SILU)
		return x / (1.0f + expf(-x));
	/* gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
	const float k = 0.7978845608028654f;
	return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

static float *cache_at(const ref_model *m, float *cache, int l, int kvh, int t)
{
	size_t i = (((size_t)l * (size_t)m->kv_heads + (size_t)kvh) * (size_t)m->ctx + (size_t)t);
	return cache + i * (size_t)m->head_dim;
}

/* Softmax(q.K^T * scale) . V for one query head over cached positions t0..pos. */
static void attend_head(ref_model *m, int l, int h, int t0, int pos)
{
	int D = m->head_dim, kvh = h / (m->heads / m->kv_heads);
	const float *qh = m->q + (size_t)h * D;
	float *s = m->scores, mx = -INFINITY;
	for (int t = t0; t <= pos; t++) {
		s[t] = dot_ff(qh, cache_at(m, m->kcache, l, kvh, t), D) * m->attn_scale;
		if (m->scores_fp16)
			s[t] = f16_round(s[t]);
		mx = s[t] > mx ? s[t] : mx;
	}
	double sum = 0;
	for (int t = t0; t <= pos; t++) {
		s[t] = expf(s[t] - mx);
		sum += s[t];
	}
	float fsum = (float)sum;
	memset(m->acc, 0, (size_t)D * sizeof *m->acc);
	for (int t = t0; t <= pos; t++) {
		float p = s[t] / fsum;
		const float *vt = cache_at(m, m->vcache, l, kvh, t);
		for (int i = 0; i < D; i++)
			m->acc[i] += (double)p * vt[i];
	}
	float *out = m->att_out + (size_t)h * D;
	for (int i = 0; i < D; i++)
		out[i] = (float)m->acc[i];
}

/* q or k heads [n][D]: per-head norm after projection (Qwen3, Gemma3), or
 * one norm over all n heads (OLMo 2), then RoPE on the first rot_dim dims
 * of each head (none in SmolLM3's NoPE layers). */
static void qk_heads(const ref_model *m, const ref_layer *y, float *x, int n, const float *gain)
{
	int D = m->head_dim, full = m->hf->cfg.arch->qk_norm_full;
	const float *cs = y->local_rope ? m->cos_l : m->cos, *sn = y->local_rope ? m->sin_l : m->sin;
	if (gain && full) {
		rmsnorm(x, x, gain, n * D, m->eps);
		store(m, x, n * D);
	}
	for (int h = 0; h < n; h++) {
		float *xh = x + (size_t)h * D;
		if (gain && !full) {
			rmsnorm(xh, xh, gain, D, m->eps);
			store(m, xh, D);
		}
		if (!y->nope)
			rope(xh, cs, sn, m->rot_dim);
		store(m, xh, D);
	}
}

/* Self-attention of layer l after its q/k/v projections of m->xn at pos:
 * biases, norms, RoPE, the cache, the heads; o_proj's input in m->att_out. */
static void attention(ref_model *m, int l, int pos)
{
	const ref_layer *y = &m->layer[l];
	int D = m->head_dim;
	add_bias(m->q, y->q_bias, m->heads * D);
	add_bias(m->k, y->k_bias, m->kv_heads * D);
	add_bias(m->v, y->v_bias, m->kv_heads * D);
	store(m, m->q, m->heads * D);
	store(m, m->k, m->kv_heads * D);
	store(m, m->v, m->kv_heads * D);
	qk_heads(m, y, m->q, m->heads, y->q_norm);
	qk_heads(m, y, m->k, m->kv_heads, y->k_norm);
	for (int h = 0; h < m->kv_heads; h++) {
		float *kh = m->k + (size_t)h * D;
		memcpy(cache_at(m, m->kcache, l, h, pos), kh, (size_t)D * sizeof(float));
		memcpy(cache_at(m, m->vcache, l, h, pos), m->v + (size_t)h * D, (size_t)D * sizeof(float));
	}
	/* HF's sliding mask keeps keys with pos - t < window */
	int t0 = y->window && pos >= y->window ? pos - y->window + 1 : 0;
	for (int h = 0; h < m->heads; h++)
		attend_head(m, l, h, t0, pos);
	store(m, m->att_out, m->heads * D);
	if (m->tap)
		m->tap(m->tap_ctx, l, REF_TAP_O, m->att_out, m->heads * D);
}

/* A projection's bias and fp16 store on its output in m->tmp. */
static void proj_out(ref_model *m, const float *bias)
{
	add_bias(m->tmp, bias, m->hidden);
	store(m, m->tmp, m->hidden);
}

/* act(gate) * up into m->gate, from the gate and up projections of m->xn. */
static void mlp(ref_model *m, int l)
{
	const ref_layer *y = &m->layer[l];
	add_bias(m->gate, y->gate_bias, m->inter);
	add_bias(m->up, y->up_bias, m->inter);
	store(m, m->gate, m->inter);
	store(m, m->up, m->inter);
	for (int i = 0; i < m->inter; i++)
		m->gate[i] = act(m->act, m->gate[i]) * m->up[i];
	store(m, m->gate, m->inter);
	if (m->tap)
		m->tap(m->tap_ctx, l, REF_TAP_DOWN, m->gate, m->inter);
}

/* RMSNorm into out, stored as the ANE would. */
static void norm_store(ref_model *m, float *out, const float *x, const float *gain)
{
	rmsnorm(out, x, gain, m->hidden, m->eps);
	store(m, out, m->hidden);
}

/* h += sublayer output in m->tmp (after its post norm, if the layer has
 * one), then ANEMLL's optional clamp and the fp16 store. */
static void residual_add(ref_model *m, const float *post_norm)
{
	int H = m->hidden;
	if (post_norm)
		norm_store(m, m->tmp, m->tmp, post_norm);
	for (int i = 0; m->residual_mult != 1.0f && i < H; i++)
		m->tmp[i] *= m->residual_mult; /* Granite: residual + out * residual_multiplier */
	float c = m->clamp;
	for (int i = 0; i < H; i++) {
		float v = m->x[i] + m->tmp[i];
		m->x[i] = c > 0 && v > c ? c : c > 0 && v < -c ? -c : v; /* NaN stays NaN, as in torch.clamp */
	}
	store(m, m->x, H);
}

/* Per-layer bookkeeping for the FP16 preflight: peak |h|, first inf/NaN. */
static void record_layer(ref_model *m, int l)
{
	float peak = m->peak[l];
	int bad = 0;
	for (int i = 0; i < m->hidden; i++) {
		float a = fabsf(m->x[i]);
		peak = a > peak ? a : peak; /* NaN never compares greater */
		bad |= !isfinite(a);
	}
	m->peak[l] = peak;
	if (bad && (m->first_bad < 0 || l < m->first_bad))
		m->first_bad = l;
}

/* cos/sin of position pos for one set of inverse frequencies, times
 * mscale (longrope's attention_factor, else 1). */
static void rope_table(const float *inv, int half, int pos, float mscale, float *cs, float *sn)
{
	/* HF: freqs = inv_freq * position in fp32, then cos/sin of that */
	for (int i = 0; i < half; i++) {
		float angle = inv[i] * (float)pos;
		cs[i] = cosf(angle) * mscale;
		sn[i] = sinf(angle) * mscale;
	}
}

/* ------------------------------------------------------------------ */
/* Forward                                                             */

/* The model's activation fields point at slot b's. */
static void use_slot(ref_model *m, int b)
{
	const ref_slot *t = &m->slot[b];
	m->x = t->x, m->xn = t->xn, m->q = t->q, m->k = t->k, m->v = t->v, m->att_out = t->att_out;
	m->tmp = t->tmp, m->gate = t->gate, m->up = t->up;
	m->cos = t->cos, m->sin = t->sin, m->cos_l = t->cos_l, m->sin_l = t->sin_l;
}

/* Slots 0..n-1 exist (slot 0 holds the buffers alloc_state made). */
static void grow_slots(ref_model *m, int n)
{
	if (!m->slot) {
		m->slot = xcalloc(REF_BATCH, sizeof *m->slot);
		m->xd = xcalloc(REF_BATCH, sizeof *m->xd);
		m->slot[0] = (ref_slot){m->x, m->xn, m->q, m->k, m->v, m->att_out, m->tmp, m->gate, m->up,
					m->cos, m->sin, m->cos_l, m->sin_l};
		m->nslots = 1;
	}
	size_t H = (size_t)m->hidden, D = (size_t)m->head_dim, QD = (size_t)m->heads * D, KD = (size_t)m->kv_heads * D;
	size_t I = (size_t)m->inter, widest = H > I ? H : I;
	widest = widest > QD ? widest : QD;
	for (int b = 0; b < n; b++)
		if (!m->xd[b])
			m->xd[b] = xcalloc(widest, sizeof(double));
	for (; m->nslots < n; m->nslots++)
		m->slot[m->nslots] = (ref_slot){xcalloc(H, 4), xcalloc(H, 4), xcalloc(QD, 4), xcalloc(KD, 4),
						xcalloc(KD, 4), xcalloc(QD, 4), xcalloc(H, 4), xcalloc(I, 4),
						xcalloc(I, 4), xcalloc(D / 2, 4), xcalloc(D / 2, 4), xcalloc(D / 2, 4),
						xcalloc(D / 2, 4)};
}

/* Field `off` of slots 0..n-1 (an offsetof(ref_slot, ...)). */
static float *const *slot_ptrs(const ref_model *m, int n, size_t off, float **out)
{
	for (int b = 0; b < n; b++)
		out[b] = *(float *const *)(const void *)((const char *)&m->slot[b] + off);
	return out;
}

#define SLOTS(f) slot_ptrs(m, n, offsetof(ref_slot, f), (float *[REF_BATCH]){0})

/* Token tokens[b]'s embedding and RoPE tables at pos0 + b into slot b. */
static int embed_slots(ref_model *m, const int32_t *tokens, int pos0, int n)
{
	int H = m->hidden, half = m->rot_dim / 2;
	for (int b = 0; b < n; b++) {
		use_slot(m, b);
		int pos = pos0 + b;
		if (st_read_rows_f32(m->embed, (uint64_t)tokens[b], 1, m->x) != 0)
			return -1;
		for (int i = 0; m->alpha != 1.0f && i < H; i++)
			m->x[i] *= m->alpha; /* --fp16-scale scales the embedding weights */
		for (int i = 0; m->embed_scale != 1.0f && i < H; i++)
			m->x[i] *= m->embed_scale;
		store(m, m->x, H);
		rope_table(m->inv_long && pos >= m->long_from ? m->inv_long : m->inv_freq, half, pos, m->rope_mscale,
			   m->cos, m->sin);
		if (m->inv_local)
			rope_table(m->inv_local, half, pos, 1.0f, m->cos_l, m->sin_l);
	}
	return 0;
}

/* The norm before a sublayer into m->xn (a copy for post-norm-only layers). */
static void sublayer_in(ref_model *m, const float *gain)
{
	if (gain)
		norm_store(m, m->xn, m->x, gain);
	else
		memcpy(m->xn, m->x, (size_t)m->hidden * sizeof *m->x);
}

/* Decoder layer l over slots 0..n-1 at positions pos0.. . pre-norm layers:
 * h += attn(in(h)); h += mlp(post_attention(h)); four norms:
 * post_attention normalises the attention output and pre/post_feedforward
 * wrap the MLP; post norms only (OLMo 2): h += post_attention(attn(h));
 * h += post_feedforward(mlp(h)). Between the projections every slot runs
 * alone, in position order (the cache then holds every earlier position). */
static void layer_n(ref_model *m, int l, int pos0, int n)
{
	const ref_layer *y = &m->layer[l];
	int four = y->pre_ff_norm != NULL, post = y->in_norm == NULL;
	for (int b = 0; b < n; b++) {
		use_slot(m, b);
		sublayer_in(m, post ? NULL : y->in_norm);
		if (m->tap)
			m->tap(m->tap_ctx, l, REF_TAP_QKV, m->xn, m->hidden);
	}
	matvecs(m, &y->q, SLOTS(xn), SLOTS(q), n);
	matvecs(m, &y->k, SLOTS(xn), SLOTS(k), n);
	matvecs(m, &y->v, SLOTS(xn), SLOTS(v), n);
	for (int b = 0; b < n; b++) {
		use_slot(m, b);
		attention(m, l, pos0 + b);
	}
	matvecs(m, &y->o, SLOTS(att_out), SLOTS(tmp), n);
	for (int b = 0; b < n; b++) {
		use_slot(m, b);
		proj_out(m, y->o_bias);
		residual_add(m, four || post ? y->post_norm : NULL);
		sublayer_in(m, post ? NULL : four ? y->pre_ff_norm : y->post_norm);
		if (m->tap)
			m->tap(m->tap_ctx, l, REF_TAP_GATE_UP, m->xn, m->hidden);
	}
	matvecs(m, &y->gate, SLOTS(xn), SLOTS(gate), n);
	matvecs(m, &y->up, SLOTS(xn), SLOTS(up), n);
	for (int b = 0; b < n; b++) {
		use_slot(m, b);
		mlp(m, l);
	}
	matvecs(m, &y->down, SLOTS(gate), SLOTS(tmp), n);
	for (int b = 0; b < n; b++) {
		use_slot(m, b);
		proj_out(m, y->down_bias);
		residual_add(m, four || post ? y->post_ff_norm : NULL);
		record_layer(m, l);
	}
}

/* Up to REF_BATCH positions; outputs from slot first_out on. */
static int forward_batch(ref_model *m, const int32_t *tokens, int pos0, int n, int first_out, float *logits,
			 float *hidden)
{
	int H = m->hidden;
	grow_slots(m, n);
	int rc = embed_slots(m, tokens, pos0, n);
	for (int l = 0; rc == 0 && l < m->layers; l++)
		layer_n(m, l, pos0, n);
	if (rc == 0)
		m->filled = pos0 + n;
	float *lrows[REF_BATCH];
	int nl = 0;
	for (int b = 0; rc == 0 && b < n; b++) {
		use_slot(m, b);
		norm_store(m, m->xn, m->x, m->final_norm);
		if (b >= first_out && hidden)
			memcpy(hidden + (size_t)(b - first_out) * (size_t)H, m->xn, (size_t)H * sizeof *hidden);
		if (b >= first_out && logits)
			lrows[nl++] = logits + (size_t)(b - first_out) * (size_t)m->vocab;
	}
	if (rc == 0 && nl) {
		matvecs(m, &m->lm_head, SLOTS(xn) + first_out, lrows, nl);
		for (int b = 0; b < nl; b++) {
			for (int i = 0; m->logits_scaling != 1.0f && i < m->vocab; i++)
				lrows[b][i] /= m->logits_scaling; /* Granite */
			store(m, lrows[b], m->vocab);
		}
	}
	use_slot(m, 0);
	return rc;
}

int ref_forward_n(ref_model *m, const int32_t *tokens, int pos0, int n, int first_out, float *logits, float *hidden)
{
	for (int b = 0; b < n; b++)
		if (tokens[b] < 0 || tokens[b] >= m->vocab)
			return errf("reference forward pass: token id %ld out of range [0, %d)", (long)tokens[b], m->vocab);
	if (pos0 < 0 || pos0 > m->filled || n < 0 || pos0 + n > m->ctx)
		return errf("reference forward pass: positions %d..%d out of range (%d cached, context %d)", pos0,
			    pos0 + n - 1, m->filled, m->ctx);
	/* taps see one position at a time, in order */
	int chunk = m->tap ? 1 : REF_BATCH;
	for (int c = 0; c < n; c += chunk) {
		int k = n - c < chunk ? n - c : chunk, f = first_out > c ? first_out - c : 0;
		f = f < k ? f : k;
		size_t row = f < k ? (size_t)(c + f - first_out) : 0; /* the chunk's first output row */
		if (forward_batch(m, tokens + c, pos0 + c, k, f, logits ? logits + row * (size_t)m->vocab : NULL,
				  hidden ? hidden + row * (size_t)m->hidden : NULL) != 0)
			return -1;
	}
	return 0;
}

int ref_forward(ref_model *m, int32_t token, int pos, float *logits_out, float *hidden_out)
{
	if (token < 0 || token >= m->vocab)
		return errf("reference forward pass: token id %ld out of range [0, %d)", (long)token,
		            m->vocab);
	if (pos < 0 || pos > m->filled || pos >= m->ctx)
		return errf("reference forward pass: position %d out of range (%d cached, context %d)",
		            pos, m->filled, m->ctx);
	return forward_batch(m, &token, pos, 1, 0, logits_out, hidden_out);
}
