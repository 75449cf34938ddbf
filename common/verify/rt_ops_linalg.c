/* rt_ops_linalg.c: conv, linear, matmul and scaled_dot_product_attention
 * for the CPU runtime (runtime.h). This is the hot path.
 *
 * Workload: an LLM's projections as 1x1 convs or linears over fp16 weights
 * of up to ~1B parameters, for 1 (decode) or 64 (prefill) positions, plus
 * the attention matmuls ([heads, 64, d] x [heads, context, d]).
 *
 * Everything goes through one kernel: C[m][n] = sum_k A[m][k] * B[n][k] with
 * A the activations in fp32 (rows padded to a multiple of 8) and B the
 * weights, read row by row exactly as stored ([Cout, Cin] for conv and
 * linear), converted to fp32 four rows at a time into a small per-thread
 * buffer, and dotted with every row of A using 8 fp32 partial sums that are
 * added in a fixed order (palettized rows at decode skip the buffer: see
 * "Palettized rows" below). Output channels are split over the model's
 * threads; each C element is computed entirely by one thread in the same
 * order whatever the thread count, so results are deterministic. When the
 * CPU has AVX2 the same kernel runs with 256-bit vectors (no FMA, so both
 * builds give identical bits).
 */
#define RT_INTERNAL
#include "verify/runtime.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The dot-product kernel                                              */

typedef float v8f __attribute__((vector_size(32), may_alias));

#define HSUM8(s) ((((s)[0] + (s)[4]) + ((s)[1] + (s)[5])) + (((s)[2] + (s)[6]) + ((s)[3] + (s)[7])))

/* out[m * 4 + j] = dot(A[m], Bt[j]) for j < nb (<= 4), over Kp (a multiple
 * of 8) fp32 values; A rows and Bt rows are 32-byte aligned. The products
 * and sums are separate statements so no compiler fuses them into FMAs: the
 * fp32 accumulation order is fixed by this code alone. */
#define DOT_TILE_BODY                                                                                  \
	for (size_t m = 0; m < M; m++) {                                                               \
		const float *a = A + m * lda;                                                           \
		if (nb == 4) {                                                                          \
			v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                     \
			const float *b0 = Bt, *b1 = Bt + Kp, *b2 = Bt + 2 * Kp, *b3 = Bt + 3 * Kp;     \
			for (size_t k = 0; k < Kp; k += 8) {                                            \
				v8f x = *(const v8f *)(a + k);                                          \
				v8f p0 = x * *(const v8f *)(b0 + k);                                    \
				v8f p1 = x * *(const v8f *)(b1 + k);                                    \
				v8f p2 = x * *(const v8f *)(b2 + k);                                    \
				v8f p3 = x * *(const v8f *)(b3 + k);                                    \
				s0 += p0;                                                               \
				s1 += p1;                                                               \
				s2 += p2;                                                               \
				s3 += p3;                                                               \
			}                                                                               \
			out[m * 4 + 0] = HSUM8(s0);                                                     \
			out[m * 4 + 1] = HSUM8(s1);                                                     \
			out[m * 4 + 2] = HSUM8(s2);                                                     \
			out[m * 4 + 3] = HSUM8(s3);                                                     \
			continue;                                                                       \
		}                                                                                       \
		for (int j = 0; j < nb; j++) {                                                          \
			v8f s = {0};                                                                    \
			const float *b = Bt + (size_t)j * Kp;                                           \
			for (size_t k = 0; k < Kp; k += 8) {                                            \
				v8f p = *(const v8f *)(a + k) * *(const v8f *)(b + k);                  \
				s += p;                                                                 \
			}                                                                               \
			out[m * 4 + (size_t)j] = HSUM8(s);                                              \
		}                                                                                       \
	}

static void dot_tile_generic(const float *A, size_t lda, size_t M, const float *Bt, size_t Kp, int nb, float *out)
{
	DOT_TILE_BODY
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RT_AVX2 1
__attribute__((target("avx2"))) static void dot_tile_avx2(const float *A, size_t lda, size_t M, const float *Bt,
							 size_t Kp, int nb, float *out)
{
	DOT_TILE_BODY
}

static int g_avx2;
static pthread_once_t g_avx2_once = PTHREAD_ONCE_INIT;

static void detect_avx2(void)
{
	__builtin_cpu_init();
	g_avx2 = __builtin_cpu_supports("avx2");
}

static int use_avx2(void)
{
	pthread_once(&g_avx2_once, detect_avx2);
	return g_avx2;
}
#endif

static void dot_tile(const float *A, size_t lda, size_t M, const float *Bt, size_t Kp, int nb, float *out)
{
#ifdef RT_AVX2
	if (use_avx2()) {
		dot_tile_avx2(A, lda, M, Bt, Kp, nb, out);
		return;
	}
#endif
	dot_tile_generic(A, lda, M, Bt, Kp, nb, out);
}

/* ------------------------------------------------------------------ */
/* Palettized rows: unpack, look up and multiply in one pass            */

/* Decode (one activation row) spends its time here: expanding a weight row
 * into a buffer and reading it back costs more than the products. With
 * AVX-512 VBMI, 16 indices at a time are cut out of their packed bytes
 * (multishift), looked up in the row's fp32 table held in registers
 * (permutes), multiplied with the activations and summed into the same
 * 8 lanes in the same order as dot_tile: elements k..k+7 then k+8..k+15.
 * Products and sums stay separate instructions (no FMA), so the bits are
 * dot_tile's. Without VBMI (or on other CPUs) the rows are expanded. */

static size_t pad8(size_t k) { return (k + 7) & ~(size_t)7; }

/* The generic path: expand the rows, then dot_tile. */
static void lut_dot_expand(const rt_lut *l, size_t e0, size_t ldb, size_t K, int nr, const float *a, float *out,
			   float *bt)
{
	size_t Kp = pad8(K);
	for (int j = 0; j < nr; j++) {
		float *row = bt + (size_t)j * Kp;
		rt_lut_expand_f32(l, e0 + (size_t)j * ldb, K, row);
		memset(row + K, 0, (Kp - K) * sizeof(float));
	}
	dot_tile(a, Kp, 1, bt, Kp, nr, out);
}

#ifdef RT_AVX2
#include <immintrin.h>

#define RT_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"), always_inline)) static inline

static int g_vbmi;
static pthread_once_t g_vbmi_once = PTHREAD_ONCE_INIT;

static void detect_vbmi(void)
{
	__builtin_cpu_init();
	g_vbmi = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
		 __builtin_cpu_supports("avx512vbmi");
}

static int use_vbmi(void)
{
	pthread_once(&g_vbmi_once, detect_vbmi);
	return g_vbmi;
}

/* One row of the tile: where its indices start and its table. */
typedef struct lut_row {
	const uint8_t *p;  /* byte holding the row's first index */
	int r;             /* its first bit in that byte */
	size_t kload;      /* steps at k below this may load 16 bytes */
	__m128i shift;     /* multishift control: bit offsets of 8 indices in a qword */
	__m512 t[8];       /* the table, replicated to 16 entries when smaller */
	const float *tf;   /* the table as floats (8-bit indices: gathers) */
} lut_row;

/* 16 fp32 weights from n <= 16 indices at element k of the row (bits b);
 * lanes from n on are 0. */
RT_VBMI __m512 lut_row_load(const lut_row *r, int b, int np, size_t k, int n)
{
	const uint8_t *q = r->p + k * (size_t)b / 8; /* k is a multiple of 16: whole bytes */
	int nbytes = (r->r + n * b + 7) / 8;
	/* a plain load reads up to 16 - nbytes bytes more, within the row but
	 * its last steps (masked: never past the end of the indices) */
	__m128i raw = k <= r->kload ? _mm_loadu_si128((const __m128i *)(const void *)q)
					 : _mm_maskz_loadu_epi8((__mmask16)((1u << nbytes) - 1), q);
	/* indices 0-7 are in bytes 0..7, indices 8-15 in bytes b..b+7 */
	__m128i sel = _mm_set_epi64x(0x0706050403020100LL + 0x0101010101010101LL * b, 0x0706050403020100LL);
	__m128i bytes = _mm_shuffle_epi8(raw, sel);
	__m128i ix8 = _mm_multishift_epi64_epi8(r->shift, bytes);
	__m512i ix = _mm512_cvtepu8_epi32(ix8);
	__mmask16 live = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
	if (np <= 16)
		return _mm512_maskz_permutexvar_ps(live, ix, r->t[0]);
	if (np == 256)
		return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, _mm512_and_si512(ix, _mm512_set1_epi32(255)),
						r->tf, 4);
	__m512 v0 = _mm512_permutex2var_ps(r->t[0], ix, r->t[1]);
	if (np >= 64) {
		__m512 v1 = _mm512_permutex2var_ps(r->t[2], ix, r->t[3]);
		v0 = _mm512_mask_blend_ps(_mm512_test_epi32_mask(ix, _mm512_set1_epi32(32)), v0, v1);
	}
	if (np == 128) {
		__m512 v2 = _mm512_permutex2var_ps(r->t[4], ix, r->t[5]);
		__m512 v3 = _mm512_permutex2var_ps(r->t[6], ix, r->t[7]);
		v2 = _mm512_mask_blend_ps(_mm512_test_epi32_mask(ix, _mm512_set1_epi32(32)), v2, v3);
		v0 = _mm512_mask_blend_ps(_mm512_test_epi32_mask(ix, _mm512_set1_epi32(64)), v0, v2);
	}
	return _mm512_maskz_mov_ps(live, v0);
}

RT_VBMI __m256 hi8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

/* Four rows against a: acc[j] += a[k..k+7] * w[k..k+7], then k+8..k+15. */
RT_VBMI void lut_dot4(const lut_row *r, int b, int np, size_t K, const float *a, float *out)
{
	__m256 s[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
	size_t k = 0;
	for (; k + 16 <= K; k += 16) {
		__m512 x = _mm512_loadu_ps(a + k);
		if (k % 64 == 0)
			for (int j = 0; j < 4; j++)
				_mm_prefetch((const char *)r[j].p + k * (size_t)b / 8 + 512, _MM_HINT_T0);
		for (int j = 0; j < 4; j++) {
			__m512 p = _mm512_mul_ps(x, lut_row_load(&r[j], b, np, k, 16));
			s[j] = _mm256_add_ps(s[j], _mm512_castps512_ps256(p));
			s[j] = _mm256_add_ps(s[j], hi8(p));
		}
	}
	if (k < K) { /* a is zero-padded to a multiple of 8, the weights are 0 past K */
		int n = (int)(K - k);
		__m512 x = _mm512_maskz_loadu_ps((__mmask16)(n > 8 ? 0xffff : 0xff), a + k);
		for (int j = 0; j < 4; j++) {
			__m512 p = _mm512_mul_ps(x, lut_row_load(&r[j], b, np, k, n));
			s[j] = _mm256_add_ps(s[j], _mm512_castps512_ps256(p));
			if (n > 8)
				s[j] = _mm256_add_ps(s[j], hi8(p));
		}
	}
	for (int j = 0; j < 4; j++) {
		float v[8];
		_mm256_storeu_ps(v, s[j]);
		out[j] = HSUM8(v);
	}
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"))) static void
lut_row_setup(const rt_lut *l, size_t e, size_t K, lut_row *r, float *tf)
{
	size_t bit = e * (size_t)l->bits;
	r->p = l->idx + bit / 8;
	r->r = (int)(bit % 8);
	size_t rowbytes = (bit % 8 + K * (size_t)l->bits) / 8; /* whole bytes of the row */
	r->kload = rowbytes < 16 ? 0 : (rowbytes - 16) * 8 / (size_t)l->bits;
	uint8_t sh[16];
	for (int i = 0; i < 16; i++)
		sh[i] = (uint8_t)(bit % 8 + (size_t)(i % 8) * (size_t)l->bits);
	r->shift = _mm_loadu_si128((const __m128i *)sh);
	const uint8_t *table = rt_lut_table(l, e / l->inner);
	if (l->dtype == MIL_FP16)
		rt_h2f_n((const uint16_t *)(const void *)table, tf, l->np);
	else
		memcpy(tf, table, l->np * sizeof(float));
	for (size_t i = l->np; i < 16; i++) /* junk bits above the index select a copy */
		tf[i] = tf[i % l->np];
	r->tf = tf;
	for (size_t i = 0; i < 8 && i * 16 < (l->np < 16 ? 16 : l->np); i++)
		r->t[i] = _mm512_loadu_ps(tf + 16 * i);
}

/* Rows e0 + j * ldb (j < nr), each within one run of its table. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"))) static void
lut_dot_vbmi(const rt_lut *l, size_t e0, size_t ldb, size_t K, int nr, const float *a, float *out)
{
	lut_row r[4];
	float tf[4][256] __attribute__((aligned(64)));
	for (int j = 0; j < 4; j++) {
		if (j >= nr) /* missing rows repeat the last one */
			r[j] = r[j - 1];
		else
			lut_row_setup(l, e0 + (size_t)j * ldb, K, &r[j], tf[j]);
	}
	float o[4];
	switch (l->np) {
	case 2: case 4: case 8: case 16: lut_dot4(r, l->bits, 16, K, a, o); break;
	case 32: lut_dot4(r, l->bits, 32, K, a, o); break;
	case 64: lut_dot4(r, l->bits, 64, K, a, o); break;
	case 128: lut_dot4(r, l->bits, 128, K, a, o); break;
	default: lut_dot4(r, l->bits, 256, K, a, o); break;
	}
	memcpy(out, o, (size_t)nr * sizeof(float));
}

/* fp16 tables of up to 64 entries (2 to 6 bits, the common case) take a
 * cheaper route: the lookup is done in fp16, where a 64-entry table is two
 * registers and one word permute looks up 32 indices, and only then
 * converted to fp32 (exact). Rows go in pairs: a register holds 8 weights
 * of row A in its low half and the same 8 elements of row B in its high
 * half, multiplied by the activations duplicated into both halves; so one
 * 512-bit add advances both rows' 8-lane sums by one block, in dot_tile's
 * order, with no extraction. The indices of 32 elements of both rows are
 * loaded into one register (row A's bytes at 0, row B's at 32), a byte
 * permute gives each qword the bits of its 4 indices and a multishift puts
 * each index in the low byte of a word (the word permute ignores the high
 * byte's junk; smaller tables are replicated to cover the junk bits). */
enum { LUT_ROWS = 8 }; /* rows per call of the fused kernels */

typedef struct lut_pair {
	const uint8_t *p[2];  /* byte holding each row's first index */
	size_t kfull;         /* chunks at k below this may load 32 bytes of both rows */
	size_t nbytes[2];     /* bytes each row's indices touch */
	__m512i perm[2];      /* byte permutes for elements k..k+15 and k+16..k+31 */
	__m512i shift[2];     /* multishift controls for the same */
	__m512i t[2][2];      /* each row's fp16 table: entries 0-31 and 32-63 */
	int same;             /* both rows use one table */
	const uint8_t *tab;   /* row A's table */
	int r[2];             /* the rows' first bits in their first bytes */
} lut_pair;

/* The byte permutes and multishift controls of a pair whose rows start at
 * bits rA and rB of their first bytes. Register h, 128-bit lane L holds
 * block 2h + L / 2 of the 32 elements of row L & 1, each qword 4
 * consecutive indices. */
typedef struct pair_ctl {
	int b, r[2];
	__m512i perm[2], shift[2];
} pair_ctl;

static void pair_ctl_make(int b, int rA, int rB, pair_ctl *c)
{
	uint8_t perm[2][64], shift[2][64];
	c->b = b;
	c->r[0] = rA;
	c->r[1] = rB;
	for (int h = 0; h < 2; h++)
		for (int L = 0; L < 4; L++)
			for (int q = 0; q < 2; q++) {
				int row = L & 1, el = (2 * h + L / 2) * 8 + q * 4, bit0 = c->r[row] + el * b;
				uint8_t *pb = perm[h] + L * 16 + q * 8, *sb = shift[h] + L * 16 + q * 8;
				for (int i = 0; i < 8; i++)
					pb[i] = (uint8_t)((row * 32 + bit0 / 8 + i) & 63);
				for (int w = 0; w < 4; w++)
					sb[2 * w] = sb[2 * w + 1] = (uint8_t)(bit0 % 8 + w * b);
			}
	memcpy(c->perm, perm, sizeof perm);
	memcpy(c->shift, shift, sizeof shift);
}

/* An fp16 table of np <= 64 entries as 64 words (two registers), repeated
 * so that junk bits above an index select a copy. */
RT_VBMI void table64(const uint8_t *t, size_t np, __m512i *lo, __m512i *hi)
{
	switch (np) {
	case 64: *lo = _mm512_loadu_si512(t), *hi = _mm512_loadu_si512(t + 64); return;
	case 32: *lo = *hi = _mm512_loadu_si512(t); return;
	case 16: *lo = *hi = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)t)); return;
	case 8: *lo = *hi = _mm512_broadcast_i64x2(_mm_loadu_si128((const __m128i *)(const void *)t)); return;
	case 4: {
		uint64_t v;
		memcpy(&v, t, 8);
		*lo = *hi = _mm512_set1_epi64((long long)v);
		return;
	}
	default: {
		uint32_t v;
		memcpy(&v, t, 4);
		*lo = *hi = _mm512_set1_epi32((int)v);
		return;
	}
	}
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"))) static void
lut_pair_setup(const rt_lut *l, const size_t e[2], size_t K, lut_pair *pp)
{
	/* the controls depend on the rows' bit offsets only: all 0 for rows
	 * of whole bytes, so one thread rarely makes them twice */
	static _Thread_local pair_ctl ctl = {.b = 0};
	int b = l->bits, r[2];
	const uint8_t *tab[2];
	size_t kfull = K;
	for (int i = 0; i < 2; i++) {
		size_t bit = e[i] * (size_t)b;
		pp->p[i] = l->idx + bit / 8;
		r[i] = (int)(bit % 8);
		pp->nbytes[i] = (bit % 8 + K * (size_t)b + 7) / 8;
		/* chunk k reads bytes k * b / 8 .. + 32 */
		size_t ok = pp->nbytes[i] < 32 ? 0 : ((pp->nbytes[i] - 32) * 8 / (size_t)b / 32 + 1) * 32;
		kfull = ok < kfull ? ok : kfull;
		tab[i] = i && e[1] / l->inner == e[0] / l->inner ? tab[0] : rt_lut_table(l, e[i] / l->inner);
		table64(tab[i], l->np, &pp->t[i][0], &pp->t[i][1]);
	}
	pp->kfull = kfull;
	pp->same = tab[0] == tab[1];
	pp->tab = tab[0];
	pp->r[0] = r[0];
	pp->r[1] = r[1];
	if (ctl.b != b || ctl.r[0] != r[0] || ctl.r[1] != r[1])
		pair_ctl_make(b, r[0], r[1], &ctl);
	for (int h = 0; h < 2; h++) {
		pp->perm[h] = ctl.perm[h];
		pp->shift[h] = ctl.shift[h];
	}
}

/* Index bytes of elements k..k+31 of both rows: row A's at byte 0, B's at 32. */
RT_VBMI __m512i lut_pair_bytes(const lut_pair *pp, int b, size_t k)
{
	size_t o = k * (size_t)b / 8;
	if (k < pp->kfull)
		return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(pp->p[0] + o))),
					  _mm256_loadu_si256((const __m256i *)(const void *)(pp->p[1] + o)), 1);
	__m256i v[2];
	for (int i = 0; i < 2; i++) {
		size_t n = pp->nbytes[i] - o;
		__mmask32 m = n >= 32 ? 0xffffffffu : (1u << n) - 1;
		v[i] = _mm256_maskz_loadu_epi8(m, pp->p[i] + o);
	}
	return _mm512_inserti64x4(_mm512_castsi256_si512(v[0]), v[1], 1);
}

/* 32 fp16 weights: blocks 2h, 2h+1 of rows A and B, lanes [A, B, A, B]. */
RT_VBMI __m512i lut_pair_lookup(const lut_pair *pp, __m512i raw, int h, int np)
{
	__m512i ix = _mm512_multishift_epi64_epi8(pp->shift[h], _mm512_permutexvar_epi8(pp->perm[h], raw));
	__m512i f = np <= 32 ? _mm512_permutexvar_epi16(ix, pp->t[0][0])
			     : _mm512_permutex2var_epi16(pp->t[0][0], ix, pp->t[0][1]);
	if (pp->same)
		return f;
	__m512i g = np <= 32 ? _mm512_permutexvar_epi16(ix, pp->t[1][0])
			     : _mm512_permutex2var_epi16(pp->t[1][0], ix, pp->t[1][1]);
	return _mm512_mask_blend_epi16((__mmask32)0xff00ff00u, f, g);
}

/* acc += x * w block by block: the two halves of f in order. */
RT_VBMI __m512 lut_pair_acc(__m512 acc, __m512i f, __m512 x0, __m512 x1)
{
	__m512 w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(f));
	__m512 w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(f, 1));
	acc = _mm512_add_ps(acc, _mm512_mul_ps(x0, w0));
	return _mm512_add_ps(acc, _mm512_mul_ps(x1, w1));
}

RT_VBMI __m512 dup8(const float *a) { return _mm512_broadcast_f32x8(_mm256_loadu_ps(a)); }

/* The last K % 32 elements of the rows: expanded as the generic path does. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"))) static void
lut_pairs_tail(const rt_lut *l, const size_t *e, int npairs, size_t k, size_t K, const float *a, __m512 *acc)
{
	float w[LUT_ROWS][32];
	size_t n = K - k;
	for (int j = 0; j < 2 * npairs; j++) {
		memset(w[j], 0, sizeof w[j]);
		rt_lut_expand_f32(l, e[j] + k, n, w[j]);
	}
	for (size_t q = 0; q * 8 < n; q++) {
		__m512 x = dup8(a + k + 8 * q);
		for (int P = 0; P < npairs; P++) {
			__m512 wv = _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(w[2 * P] + 8 * q)),
						       _mm256_loadu_ps(w[2 * P + 1] + 8 * q), 1);
			acc[P] = _mm512_add_ps(acc[P], _mm512_mul_ps(x, wv));
		}
	}
}

/* npairs pairs of rows. With one: every pair uses pair 0's controls and
 * table (rows of whole bytes in one table group), which then stay in
 * registers. Each pair's sum is a dependency chain of 4 adds per 32
 * elements: more pairs run more chains side by side. */
RT_VBMI void lut_pairs_run(const rt_lut *l, const lut_pair *pp, const size_t *e, int npairs, int np, int one,
			   size_t K, const float *a, float *out)
{
	int b = l->bits;
	/* the next rows follow these in memory when ldb is K */
	size_t ahead = (e[2 * npairs - 1] - e[0] + K) * (size_t)b / 8, step = (size_t)npairs * 8 * (size_t)b;
	__m512 acc[LUT_ROWS / 2];
	for (int P = 0; P < npairs; P++)
		acc[P] = _mm512_setzero_ps();
	size_t k = 0;
	for (; k + 32 <= K; k += 32) {
		const char *next = (const char *)pp[0].p[0] + ahead + k / 32 * step;
		for (size_t o = 0; o < step; o += 64)
			_mm_prefetch(next + o, _MM_HINT_T0);
		__m512 x0 = dup8(a + k), x1 = dup8(a + k + 8), x2 = dup8(a + k + 16), x3 = dup8(a + k + 24);
		__m512i raw[LUT_ROWS / 2];
#pragma GCC unroll 4
		for (int P = 0; P < npairs; P++)
			raw[P] = lut_pair_bytes(&pp[P], b, k);
#pragma GCC unroll 4
		for (int P = 0; P < npairs; P++)
			acc[P] = lut_pair_acc(acc[P], lut_pair_lookup(&pp[one ? 0 : P], raw[P], 0, np), x0, x1);
#pragma GCC unroll 4
		for (int P = 0; P < npairs; P++)
			acc[P] = lut_pair_acc(acc[P], lut_pair_lookup(&pp[one ? 0 : P], raw[P], 1, np), x2, x3);
	}
	if (k < K)
		lut_pairs_tail(l, e, npairs, k, K, a, acc);
	for (int P = 0; P < npairs; P++) {
		float v[16];
		_mm512_storeu_ps(v, acc[P]);
		out[2 * P] = HSUM8(v);
		out[2 * P + 1] = HSUM8(v + 8);
	}
}

/* Rows e0 + j * ldb (j < nr <= LUT_ROWS), fp16 tables of up to 64 entries:
 * four pairs when there are more than four rows, else two. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"))) static void
lut_dot_f16(const rt_lut *l, size_t e0, size_t ldb, size_t K, int nr, const float *a, float *out)
{
	int npairs = nr > 4 ? 4 : 2, one = 1;
	size_t e[LUT_ROWS];
	for (int j = 0; j < 2 * npairs; j++) /* missing rows repeat the last one */
		e[j] = e0 + (size_t)(j < nr ? j : nr - 1) * ldb;
	lut_pair pp[LUT_ROWS / 2];
	for (int P = 0; P < npairs; P++) {
		lut_pair_setup(l, e + 2 * P, K, &pp[P]);
		one &= pp[P].same && pp[P].tab == pp[0].tab && pp[P].r[0] == pp[0].r[0] && pp[P].r[1] == pp[0].r[1];
	}
	float o[LUT_ROWS];
	if (npairs == 4 && one)
		l->np <= 32 ? lut_pairs_run(l, pp, e, 4, 32, 1, K, a, o) : lut_pairs_run(l, pp, e, 4, 64, 1, K, a, o);
	else if (npairs == 4)
		l->np <= 32 ? lut_pairs_run(l, pp, e, 4, 32, 0, K, a, o) : lut_pairs_run(l, pp, e, 4, 64, 0, K, a, o);
	else
		l->np <= 32 ? lut_pairs_run(l, pp, e, 2, 32, 0, K, a, o) : lut_pairs_run(l, pp, e, 2, 64, 0, K, a, o);
	memcpy(out, o, (size_t)nr * sizeof(float));
}

/* Rows of fp16 weights at decode (attention's keys, unpalettized models):
 * converted in registers instead of through a buffer, two rows per
 * register as above. A last partial block loads zeros, as the buffer's
 * padding would be. */
RT_VBMI __m512 f16_pair_block(const uint16_t *b0, const uint16_t *b1, size_t k, size_t K)
{
	if (k + 8 <= K)
		return _mm512_cvtph_ps(_mm256_inserti128_si256(
			_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(b0 + k))),
			_mm_loadu_si128((const __m128i *)(const void *)(b1 + k)), 1));
	__mmask8 m = (__mmask8)((1u << (K - k)) - 1);
	return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_maskz_loadu_epi16(m, b0 + k)),
						       _mm_maskz_loadu_epi16(m, b1 + k), 1));
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi"))) static void
f16_dot_vbmi(const uint16_t *B, size_t ldb, size_t K, int nr, const float *a, float *out)
{
	const uint16_t *b[4];
	for (int j = 0; j < 4; j++) /* missing rows repeat the last one */
		b[j] = B + (size_t)(j < nr ? j : nr - 1) * ldb;
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	for (size_t k = 0; k < K; k += 8) {
		__m512 x = dup8(a + k);
		s0 = _mm512_add_ps(s0, _mm512_mul_ps(x, f16_pair_block(b[0], b[1], k, K)));
		s1 = _mm512_add_ps(s1, _mm512_mul_ps(x, f16_pair_block(b[2], b[3], k, K)));
	}
	float v[32], o[4];
	_mm512_storeu_ps(v, s0);
	_mm512_storeu_ps(v + 16, s1);
	for (int j = 0; j < 4; j++)
		o[j] = HSUM8(v + 8 * j);
	memcpy(out, o, (size_t)nr * sizeof(float));
}
#endif

int rt_lut_dot(const rt_lut *l, size_t e0, size_t ldb, size_t K, int nr, const float *a, float *out, int vector)
{
	if (nr < 1 || nr > 8)
		return -1;
	if (vector) {
#ifdef RT_AVX2
		int f16 = l->dtype == MIL_FP16 && l->bits <= 6;
		if (!use_vbmi() || l->bits < 1 || l->bits > 8 || l->np != (size_t)1 << l->bits || !K || (!f16 && nr > 4))
			return -1;
		for (int j = 0; j < nr; j++)
			if ((e0 + (size_t)j * ldb) % l->inner + K > l->inner)
				return -1;
		if (f16)
			lut_dot_f16(l, e0, ldb, K, nr, a, out);
		else
			lut_dot_vbmi(l, e0, ldb, K, nr, a, out);
		return 0;
#else
		return -1;
#endif
	}
	float *bt = rt_alloc(4 * pad8(K) * sizeof(float));
	for (int j = 0; j < nr; j += 4)
		lut_dot_expand(l, e0 + (size_t)j * ldb, ldb, K, nr - j < 4 ? nr - j : 4, a, out + j, bt);
	free(bt);
	return 0;
}

int rt_f16_dot(const uint16_t *B, size_t ldb, size_t K, int nr, const float *a, float *out, int vector)
{
	if (vector) {
#ifdef RT_AVX2
		if (!use_vbmi() || !K || nr < 1 || nr > 4)
			return -1;
		f16_dot_vbmi(B, ldb, K, nr, a, out);
		return 0;
#else
		return -1;
#endif
	}
	size_t Kp = pad8(K);
	float *bt = rt_alloc(4 * Kp * sizeof(float));
	for (int j = 0; j < nr; j++) {
		rt_h2f_n(B + (size_t)j * ldb, bt + (size_t)j * Kp, K);
		memset(bt + (size_t)j * Kp + K, 0, (Kp - K) * sizeof(float));
	}
	dot_tile(a, Kp, 1, bt, Kp, nr, out);
	free(bt);
	return 0;
}

/* ------------------------------------------------------------------ */
/* GEMM over stored weight rows                                        */

typedef struct gemm {
	size_t M, N, K, Kp;
	const float *A;       /* M rows of Kp (zero-padded) */
	const void *B;        /* N rows of K values, row n at B + n * ldb elements */
	int b_dtype;          /* MIL_FP16 or MIL_FP32 */
	size_t ldb;
	const rt_lut *b_lut;  /* or palettized: row n at element b_off + n * ldb */
	size_t b_off;
	float *C;             /* C[m * ldcm + n * ldcn] */
	size_t ldcm, ldcn;
	const float *bias;    /* per n, or NULL */
} gemm;

/* Weight rows n .. n+nb-1 as fp32 rows of Kp into bt. */
static void gemm_rows(const gemm *g, size_t n, int nb, float *bt)
{
	for (int j = 0; j < nb; j++) {
		float *row = bt + (size_t)j * g->Kp;
		if (g->b_lut) /* exact: every fp16 entry is an fp32 */
			rt_lut_expand_f32(g->b_lut, g->b_off + (n + (size_t)j) * g->ldb, g->K, row);
		else if (g->b_dtype == MIL_FP16)
			rt_h2f_n((const uint16_t *)g->B + (n + (size_t)j) * g->ldb, row, g->K);
		else
			memcpy(row, (const float *)g->B + (n + (size_t)j) * g->ldb, g->K * sizeof(float));
		memset(row + g->K, 0, (g->Kp - g->K) * sizeof(float));
	}
}

/* At decode (one activation row), up to `most` rows from n through a
 * kernel that reads the stored weights directly; how many it did (0: none
 * applies). */
static int fused_rows(const gemm *g, size_t n, int most, float *out)
{
	if (g->M != 1)
		return 0;
	if (g->b_lut) {
		if (rt_lut_dot(g->b_lut, g->b_off + n * g->ldb, g->ldb, g->K, most, g->A, out, 1) == 0)
			return most;
		most = most < 4 ? most : 4; /* the fp32-table kernel takes 4 */
		return rt_lut_dot(g->b_lut, g->b_off + n * g->ldb, g->ldb, g->K, most, g->A, out, 1) == 0 ? most : 0;
	}
	most = most < 4 ? most : 4;
	if (g->b_dtype == MIL_FP16)
		return rt_f16_dot((const uint16_t *)g->B + n * g->ldb, g->ldb, g->K, most, g->A, out, 1) == 0 ? most : 0;
	return 0;
}

/* Output channels [n0, n1): four weight rows at a time (eight through the
 * palettized kernel). */
static void gemm_part(void *ctx, size_t n0, size_t n1)
{
	const gemm *g = ctx;
	float *bt = NULL; /* the fused paths need none */
	float *out = rt_alloc((g->M > 2 ? g->M : 2) * 4 * sizeof(float));
	for (size_t n = n0; n < n1;) {
		size_t left = n1 - n;
		int nb = fused_rows(g, n, left < 8 ? (int)left : 8, out);
		if (!nb) {
			nb = left < 4 ? (int)left : 4;
			if (!bt)
				bt = rt_alloc(4 * g->Kp * sizeof(float));
			gemm_rows(g, n, nb, bt);
			dot_tile(g->A, g->Kp, g->M, bt, g->Kp, nb, out);
		}
		for (size_t m = 0; m < g->M; m++)
			for (int j = 0; j < nb; j++) {
				float v = g->M == 1 ? out[j] : out[m * 4 + (size_t)j];
				if (g->bias)
					v += g->bias[n + (size_t)j];
				g->C[m * g->ldcm + (n + (size_t)j) * g->ldcn] = v;
			}
		n += (size_t)nb;
	}
	free(out);
	free(bt);
}

/* Split over threads only when there is enough work to pay for it. */
static void gemm_run(rt_exec *e, gemm *g)
{
	if ((double)g->M * (double)g->N * (double)g->K < 262144.0)
		gemm_part(g, 0, g->N);
	else
		rt_parallel(e, g->N, 16, gemm_part, g);
}

/* fp32 rows of Kp from an M x K matrix at x (element offset off) with row
 * stride rs and column stride cs, zero-padded. */
static float *rows_f32(const rt_val *x, size_t off, size_t M, size_t K, size_t rs, size_t cs)
{
	size_t Kp = pad8(K);
	float *a = rt_alloc(M * Kp * sizeof(float) + 32);
	if (rs == 1 && cs != 1) {
		/* A transposed read (x is [K, cs] with our rows as its columns):
		 * convert x's contiguous rows in bulk, then scatter them. */
		float *t = rt_alloc(M * sizeof(float) + 4);
		for (size_t k = 0; k < K; k++) {
			rt_load_f32(x, off + k * cs, 1, M, t);
			for (size_t m = 0; m < M; m++)
				a[m * Kp + k] = t[m];
		}
		free(t);
	}
	for (size_t m = 0; m < M; m++) {
		float *row = a + m * Kp;
		if (!(rs == 1 && cs != 1))
			rt_load_f32(x, off + m * rs, cs, K, row);
		memset(row + K, 0, (Kp - K) * sizeof(float));
	}
	return a;
}

/* Weights usable as stored rows: fp16 or fp32. */
static int weight_ok(rt_exec *e, const rt_val *w, const char *what)
{
	if (w->dtype != MIL_FP16 && w->dtype != MIL_FP32)
		return rt_err(e, "%s must be fp16 or fp32", what);
	return 0;
}

static float *bias_f32(rt_exec *e, const rt_val *b, size_t n)
{
	if (!b)
		return NULL;
	if (!rt_dtype_size(b->dtype) || b->numel != n) {
		rt_err(e, "bias has %zu values for %zu outputs", b->numel, n);
		return NULL;
	}
	float *f = rt_alloc(n * sizeof(float));
	rt_load_f32(b, 0, 1, n, f);
	return f;
}

/* ------------------------------------------------------------------ */
/* linear                                                              */

/* linear(x [.., Din], weight [Dout, Din], bias [Dout]) = x W^T + b. */
static int k_linear(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *w = rt_in(e, op, 1), *b = rt_in(e, op, 2);
	if (weight_ok(e, w, "weight") != 0 || !rt_is_float(x->dtype) || x->rank < 1 || w->rank != 2)
		return rt_err(e, "needs a float x of rank >= 1 and a float weight of rank 2");
	size_t K = (size_t)x->shape[x->rank - 1], N = (size_t)w->shape[0];
	if ((size_t)w->shape[1] != K)
		return rt_err(e, "weight has %lld inputs, x has %zu", (long long)w->shape[1], K);
	int64_t s[RT_MAX_RANK];
	memcpy(s, x->shape, sizeof s);
	s[x->rank - 1] = (int64_t)N;
	float *bias = NULL;
	if (b && !(bias = bias_f32(e, b, N)))
		return -1;
	rt_val *o = rt_out(e, op, 0, x->rank, s);
	if (!o) {
		free(bias);
		return -1;
	}
	size_t M = K ? x->numel / K : 0;
	gemm g = {.M = M, .N = N, .K = K, .Kp = pad8(K), .B = w->data, .b_dtype = w->dtype, .ldb = K,
		  .b_lut = w->lut, .ldcm = N, .ldcn = 1, .bias = bias};
	g.A = rows_f32(x, 0, M, K, K, 1);
	g.C = rt_alloc(M * N * sizeof(float) + 4);
	gemm_run(e, &g);
	rt_store_f32(o, 0, o->numel, g.C);
	free((void *)g.A);
	free(g.C);
	free(bias);
	return 0;
}

/* ------------------------------------------------------------------ */
/* conv                                                                */

typedef struct conv_geom {
	int sd;                   /* spatial dims: 1 or 2 */
	int64_t N, C, O, G;       /* batch, in channels, out channels, groups */
	int64_t in[2], k[2], out[2], stride[2], dil[2], pad0[2];
} conv_geom;

/* Output size and leading padding of every spatial dim (coremltools'
 * aggregated_pad: "same" puts the odd pixel at the end, "same_lower" at the
 * start). */
static int conv_pads(rt_exec *e, const rt_op *op, conv_geom *c)
{
	const char *pt = rt_param_str(e, rt_in(e, op, 4), "pad_type", "valid");
	int64_t pad[4] = {0}, v[2];
	int n;
	if (!pt)
		return -1;
	if (rt_in(e, op, 5)) {
		if (rt_param_ints(e, rt_in(e, op, 5), "pad", pad, 4, &n) != 0)
			return -1;
		if (n != 2 * c->sd)
			return rt_err(e, "pad needs %d values", 2 * c->sd);
	}
	for (int i = 0; i < 2; i++) {
		int64_t ke = (c->k[i] - 1) * c->dil[i] + 1, total;
		int pi = c->sd == 2 ? i : i - 1; /* which pad pair: a 1-D conv has only the width */
		if (pi < 0 || !strcmp(pt, "valid")) {
			total = 0;
			c->pad0[i] = 0;
		} else if (!strcmp(pt, "custom")) {
			c->pad0[i] = pad[2 * pi];
			total = pad[2 * pi] + pad[2 * pi + 1];
			if (pad[2 * pi] < 0 || pad[2 * pi + 1] < 0)
				return rt_err(e, "negative padding");
		} else if (!strcmp(pt, "same") || !strcmp(pt, "same_lower")) {
			int64_t s = c->stride[i];
			total = (c->in[i] + s - 1) / s * s - c->in[i] + ke - s;
			total = total < 0 ? 0 : total;
			c->pad0[i] = !strcmp(pt, "same") ? total / 2 : total - total / 2;
		} else {
			return rt_err(e, "unknown pad_type '%s'", pt);
		}
		v[i] = (c->in[i] + total - ke) / c->stride[i] + 1;
		if (c->in[i] + total < ke || v[i] <= 0)
			return rt_err(e, "kernel larger than the padded input");
		c->out[i] = v[i];
	}
	return 0;
}

static int conv_geometry(rt_exec *e, const rt_op *op, const rt_val *x, const rt_val *w, conv_geom *c)
{
	int64_t st[2] = {1, 1}, dl[2] = {1, 1}, g;
	int n;
	memset(c, 0, sizeof *c);
	c->sd = x->rank - 2;
	if (c->sd < 1 || c->sd > 2 || w->rank != x->rank)
		return rt_err(e, "only 1-D and 2-D convolutions (x rank 3 or 4, weight of the same rank)");
	if (rt_param_int(e, rt_in(e, op, 7), "groups", 1, &g) != 0)
		return -1;
	if (rt_in(e, op, 3) && (rt_param_ints(e, rt_in(e, op, 3), "strides", st, 2, &n) != 0 || n != c->sd))
		return rt_err(e, "strides needs %d values", c->sd);
	if (rt_in(e, op, 6) && (rt_param_ints(e, rt_in(e, op, 6), "dilations", dl, 2, &n) != 0 || n != c->sd))
		return rt_err(e, "dilations needs %d values", c->sd);
	c->N = x->shape[0];
	c->C = x->shape[1];
	c->O = w->shape[0];
	c->G = g;
	if (g < 1 || c->C % g || c->O % g || w->shape[1] * g != c->C)
		return rt_err(e, "weight [%lld, %lld, ..] does not fit %lld input channels in %lld groups",
			      (long long)w->shape[0], (long long)w->shape[1], (long long)c->C, (long long)g);
	for (int i = 0; i < c->sd; i++) {
		c->in[i] = x->shape[2 + i];
		c->k[i] = w->shape[2 + i];
		c->stride[i] = st[i];
		c->dil[i] = dl[i];
		if (st[i] < 1 || dl[i] < 1 || c->k[i] < 1)
			return rt_err(e, "strides, dilations and kernel sizes must be positive");
	}
	if (c->sd == 1) { /* treat 1-D as 2-D with height 1 */
		c->in[1] = c->in[0], c->k[1] = c->k[0], c->stride[1] = c->stride[0], c->dil[1] = c->dil[0];
		c->in[0] = c->k[0] = c->stride[0] = c->dil[0] = 1;
	}
	return 0;
}

/* 1x1, stride 1, no padding, one group: per batch item a GEMM of the
 * [positions, Cin] activations with the [Cout, Cin] weight. */
static void conv_1x1(rt_exec *e, const conv_geom *c, const rt_val *x, const rt_val *w, const float *bias, float *out)
{
	size_t P = (size_t)(c->in[0] * c->in[1]), K = (size_t)c->C, N = (size_t)c->O;
	for (int64_t b = 0; b < c->N; b++) {
		gemm g = {.M = P, .N = N, .K = K, .Kp = pad8(K), .B = w->data, .b_dtype = w->dtype, .ldb = K,
			  .b_lut = w->lut, .C = out + (size_t)b * N * P, .ldcm = 1, .ldcn = P, .bias = bias};
		g.A = rows_f32(x, (size_t)b * K * P, P, K, 1, P); /* transposed read: row p is x[b, :, p] */
		gemm_run(e, &g);
		free((void *)g.A);
	}
}

/* Any other conv: direct loops, each output accumulated in fp32 over
 * (ci, kh, kw) in that order. */
static void conv_direct(const conv_geom *c, const rt_val *x, const rt_val *w, const float *bias, float *out)
{
	size_t xn = x->numel, wn = w->numel;
	float *xf = rt_alloc(xn * sizeof(float) + 4), *wf = rt_alloc(wn * sizeof(float) + 4);
	rt_load_f32(x, 0, 1, xn, xf);
	rt_load_f32(w, 0, 1, wn, wf);
	int64_t cg = c->C / c->G, og = c->O / c->G, H = c->in[0], W = c->in[1], OH = c->out[0], OW = c->out[1];
	for (int64_t b = 0; b < c->N; b++)
		for (int64_t o = 0; o < c->O; o++) {
			int64_t g = o / og;
			for (int64_t oh = 0; oh < OH; oh++)
				for (int64_t ow = 0; ow < OW; ow++) {
					float acc = 0;
					for (int64_t ci = 0; ci < cg; ci++)
						for (int64_t kh = 0; kh < c->k[0]; kh++) {
							int64_t ih = oh * c->stride[0] - c->pad0[0] + kh * c->dil[0];
							if (ih < 0 || ih >= H)
								continue;
							for (int64_t kw = 0; kw < c->k[1]; kw++) {
								int64_t iw = ow * c->stride[1] - c->pad0[1] + kw * c->dil[1];
								if (iw < 0 || iw >= W)
									continue;
								float p = wf[((o * cg + ci) * c->k[0] + kh) * c->k[1] + kw] *
									  xf[((b * c->C + g * cg + ci) * H + ih) * W + iw];
								acc += p;
							}
						}
					if (bias)
						acc += bias[o];
					out[((b * c->O + o) * OH + oh) * OW + ow] = acc;
				}
		}
	free(xf);
	free(wf);
}

static int k_conv(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *w = rt_in(e, op, 1), *b = rt_in(e, op, 2);
	conv_geom c;
	if (!rt_is_float(x->dtype) || weight_ok(e, w, "weight") != 0)
		return rt_err(e, "x and weight must be fp16 or fp32");
	if (conv_geometry(e, op, x, w, &c) != 0 || conv_pads(e, op, &c) != 0)
		return -1;
	int64_t s[4] = {c.N, c.O, c.out[0], c.out[1]};
	if (c.sd == 1)
		s[2] = c.out[1];
	float *bias = NULL;
	if (b && !(bias = bias_f32(e, b, (size_t)c.O)))
		return -1;
	rt_val *o = rt_out(e, op, 0, x->rank, s);
	if (!o) {
		free(bias);
		return -1;
	}
	float *out = rt_alloc(o->numel * sizeof(float) + 4);
	int one = c.G == 1 && c.k[0] == 1 && c.k[1] == 1 && c.stride[0] == 1 && c.stride[1] == 1 &&
		  c.pad0[0] == 0 && c.pad0[1] == 0 && c.out[0] == c.in[0] && c.out[1] == c.in[1];
	if (one)
		conv_1x1(e, &c, x, w, bias, out);
	else
		conv_direct(&c, x, w, bias, out);
	rt_store_f32(o, 0, o->numel, out);
	free(out);
	free(bias);
	return 0;
}

/* ------------------------------------------------------------------ */
/* One activation row times a [K, N] matrix read row by row            */

/* c[n] = a . y[:, n] with the bits of dot_tile on y's columns: lane l of
 * column n sums a[k] * y[k][n] over k = l, l + 8, .. in order (the zero
 * padding past K adds +0 to sums that are never -0: no change), then the
 * lanes in HSUM8's tree. Vectorized across columns, so y (attention's
 * values at decode) is read in its own row order with no transposed
 * copy. */
#define DOT_COLS_BODY                                                                                  \
	size_t Np = pad8(N);                                                                            \
	float *acc = rt_alloc(8 * Np * sizeof(float)), *row = rt_alloc(Np * sizeof(float));             \
	memset(acc, 0, 8 * Np * sizeof(float));                                                         \
	memset(row, 0, Np * sizeof(float));                                                             \
	for (size_t k = 0; k < K; k++) {                                                                \
		float *s = acc + (k % 8) * Np;                                                          \
		v8f x = {a[k], a[k], a[k], a[k], a[k], a[k], a[k], a[k]};                               \
		if (dtype == MIL_FP16)                                                                  \
			rt_h2f_n((const uint16_t *)y + k * N, row, N);                                  \
		else                                                                                    \
			memcpy(row, (const float *)y + k * N, N * sizeof(float));                      \
		for (size_t n = 0; n < Np; n += 8) {                                                    \
			v8f p = x * *(const v8f *)(row + n);                                            \
			*(v8f *)(s + n) += p;                                                           \
		}                                                                                       \
	}                                                                                               \
	for (size_t n = 0; n < N; n++) {                                                                \
		const float *t = acc + n;                                                               \
		c[n] = (((t[0] + t[4 * Np]) + (t[Np] + t[5 * Np])) + ((t[2 * Np] + t[6 * Np]) + (t[3 * Np] + t[7 * Np]))); \
	}                                                                                               \
	free(acc);                                                                                      \
	free(row);

static void dot_cols_generic(const float *a, size_t K, const void *y, int dtype, size_t N, float *c)
{
	DOT_COLS_BODY
}

#ifdef RT_AVX2
__attribute__((target("avx2"))) static void dot_cols_avx2(const float *a, size_t K, const void *y, int dtype,
							  size_t N, float *c)
{
	DOT_COLS_BODY
}
#endif

void rt_dot_cols(const float *a, size_t K, const void *y, int dtype, size_t N, float *c)
{
#ifdef RT_AVX2
	if (use_avx2()) {
		dot_cols_avx2(a, K, y, dtype, N, c);
		return;
	}
#endif
	dot_cols_generic(a, K, y, dtype, N, c);
}

/* ------------------------------------------------------------------ */
/* matmul                                                              */

/* Batch offsets of a broadcast operand: its batch dims right-aligned to
 * the output's, stride 0 where it has size 1. */
static void batch_strides(const rt_val *v, int vb, int ob, size_t mat, int64_t *str)
{
	int64_t s = (int64_t)mat;
	for (int d = ob - 1; d >= 0; d--) {
		int vd = d - (ob - vb);
		int64_t dim = vd < 0 ? 1 : v->shape[vd];
		str[d] = dim == 1 ? 0 : s;
		s *= dim;
	}
}

typedef struct mm_shape {
	size_t M, K, N;
	int xb, yb, ob; /* batch ranks */
	int64_t oshape[RT_MAX_RANK];
	int orank;
} mm_shape;

/* numpy matmul shapes: a rank-1 x is [1, K], a rank-1 y is [K, 1], and the
 * added dims are dropped from the result. */
static int mm_solve(rt_exec *e, const rt_val *x, const rt_val *y, int tx, int ty, mm_shape *s)
{
	if (x->rank < 1 || y->rank < 1)
		return rt_err(e, "matmul operands need rank >= 1");
	int64_t xm = x->rank == 1 ? 1 : x->shape[x->rank - 2], xk = x->shape[x->rank - 1];
	int64_t yk = y->rank == 1 ? y->shape[0] : y->shape[y->rank - 2], yn = y->rank == 1 ? 1 : y->shape[y->rank - 1];
	if (tx && x->rank > 1) {
		int64_t t = xm;
		xm = xk;
		xk = t;
	}
	if (ty && y->rank > 1) {
		int64_t t = yk;
		yk = yn;
		yn = t;
	}
	if (xk != yk)
		return rt_err(e, "inner dims differ (%lld vs %lld)", (long long)xk, (long long)yk);
	s->M = (size_t)xm;
	s->K = (size_t)xk;
	s->N = (size_t)yn;
	s->xb = x->rank > 2 ? x->rank - 2 : 0;
	s->yb = y->rank > 2 ? y->rank - 2 : 0;
	s->ob = s->xb > s->yb ? s->xb : s->yb;
	for (int d = 0; d < s->ob; d++) {
		int xd = d - (s->ob - s->xb), yd = d - (s->ob - s->yb);
		int64_t a = xd < 0 ? 1 : x->shape[xd], b = yd < 0 ? 1 : y->shape[yd];
		if (a != b && a != 1 && b != 1)
			return rt_err(e, "batch dims do not broadcast (%lld vs %lld)", (long long)a, (long long)b);
		s->oshape[d] = a == 1 ? b : a;
	}
	s->orank = s->ob;
	if (x->rank > 1)
		s->oshape[s->orank++] = xm;
	if (y->rank > 1)
		s->oshape[s->orank++] = yn;
	return 0;
}

static int k_matmul(rt_exec *e, const rt_op *op)
{
	const rt_val *x = rt_in(e, op, 0), *y = rt_in(e, op, 1);
	int tx, ty;
	mm_shape s;
	if (!rt_is_float(x->dtype) || !rt_is_float(y->dtype))
		return rt_err(e, "matmul needs fp16 or fp32 operands");
	if (rt_param_bool(e, rt_in(e, op, 2), "transpose_x", 0, &tx) != 0 ||
	    rt_param_bool(e, rt_in(e, op, 3), "transpose_y", 0, &ty) != 0 || mm_solve(e, x, y, tx, ty, &s) != 0)
		return -1;
	rt_val *o = rt_out(e, op, 0, s.orank, s.oshape);
	if (!o)
		return -1;
	size_t nb = rt_numel(s.ob, s.oshape), M = s.M, K = s.K, N = s.N;
	int64_t xs[RT_MAX_RANK], ys[RT_MAX_RANK];
	batch_strides(x, s.xb, s.ob, M * K, xs);
	batch_strides(y, s.yb, s.ob, K * N, ys);
	float *c = rt_alloc(nb * M * N * sizeof(float) + 4);
	int64_t idx[RT_MAX_RANK] = {0};
	int yrows = ty && y->rank > 1; /* y stored [N, K]: its rows are usable as they are */
	for (size_t bi = 0; bi < nb; bi++) {
		size_t xo = 0, yo = 0;
		for (int d = 0; d < s.ob; d++) {
			xo += (size_t)(idx[d] * xs[d]);
			yo += (size_t)(idx[d] * ys[d]);
		}
		gemm g = {.M = M, .N = N, .K = K, .Kp = pad8(K), .C = c + bi * M * N, .ldcm = N, .ldcn = 1};
		g.A = tx && x->rank > 1 ? rows_f32(x, xo, M, K, 1, M) : rows_f32(x, xo, M, K, K, 1);
		float *bt = NULL;
		if (yrows && y->lut) {
			g.b_lut = y->lut;
			g.b_off = yo;
			g.b_dtype = y->dtype;
			g.ldb = K;
		} else if (yrows) {
			g.B = (const char *)y->data + yo * rt_dtype_size(y->dtype);
			g.b_dtype = y->dtype;
			g.ldb = K;
		} else if (M == 1 && y->data) {
			rt_dot_cols(g.A, K, (const char *)y->data + yo * rt_dtype_size(y->dtype), y->dtype, N, g.C);
			free((void *)g.A);
			goto next;
		} else {
			bt = rows_f32(y, yo, N, K, 1, N); /* row n is column n of y */
			g.B = bt;
			g.b_dtype = MIL_FP32;
			g.ldb = pad8(K);
		}
		gemm_run(e, &g);
		free((void *)g.A);
		free(bt);
	next:
		for (int d = s.ob - 1; d >= 0 && ++idx[d] == s.oshape[d]; d--)
			idx[d] = 0;
	}
	rt_store_f32(o, 0, o->numel, c);
	free(c);
	return 0;
}

/* ------------------------------------------------------------------ */
/* scaled_dot_product_attention (iOS 18)                               */

/* softmax(Q K^T / sqrt(E) + mask) V over query [.., L, E], key [.., S, E],
 * value [.., S, Ev]; a bool mask attends where true, a float mask is added.
 * The mask broadcasts to [.., L, S]. Everything in fp32. */
static int k_sdpa(rt_exec *e, const rt_op *op)
{
	const rt_val *q = rt_in(e, op, 0), *k = rt_in(e, op, 1), *v = rt_in(e, op, 2), *mk = rt_in(e, op, 3);
	if (!rt_is_float(q->dtype) || !rt_is_float(k->dtype) || !rt_is_float(v->dtype) || q->rank < 2 ||
	    k->rank != q->rank || v->rank != q->rank)
		return rt_err(e, "query, key and value must be float tensors of the same rank >= 2");
	int r = q->rank;
	size_t L = (size_t)q->shape[r - 2], E = (size_t)q->shape[r - 1], S = (size_t)k->shape[r - 2];
	size_t Ev = (size_t)v->shape[r - 1];
	for (int d = 0; d < r - 2; d++)
		if (k->shape[d] != q->shape[d] || v->shape[d] != q->shape[d])
			return rt_err(e, "batch dims of query, key and value differ");
	if ((size_t)k->shape[r - 1] != E || (size_t)v->shape[r - 2] != S)
		return rt_err(e, "key must be [.., S, %zu] and value [.., S, Ev]", E);
	int64_t ms[RT_MAX_RANK], s[RT_MAX_RANK];
	if (mk) {
		if (mk->rank > r || !rt_dtype_size(mk->dtype))
			return rt_err(e, "attn_mask has a bad rank or type");
		int64_t st = 1;
		for (int d = r - 1; d >= 0; d--) {
			int md = d - (r - mk->rank);
			int64_t dim = md < 0 ? 1 : mk->shape[md];
			int64_t want = d == r - 1 ? (int64_t)S : d == r - 2 ? (int64_t)L : q->shape[d];
			if (dim != 1 && dim != want)
				return rt_err(e, "attn_mask does not broadcast to the scores");
			ms[d] = dim == 1 ? 0 : st;
			st *= dim;
		}
	}
	memcpy(s, q->shape, sizeof s);
	s[r - 1] = (int64_t)Ev;
	rt_val *o = rt_out(e, op, 0, r, s);
	if (!o)
		return -1;
	size_t B = rt_numel(r - 2, q->shape);
	float *qf = rt_alloc(q->numel * 4 + 4), *kf = rt_alloc(k->numel * 4 + 4), *vf = rt_alloc(v->numel * 4 + 4);
	float *p = rt_alloc(S * 4 + 4), *of = rt_alloc(o->numel * 4 + 4);
	rt_load_f32(q, 0, 1, q->numel, qf);
	rt_load_f32(k, 0, 1, k->numel, kf);
	rt_load_f32(v, 0, 1, v->numel, vf);
	float scale = 1.0f / sqrtf((float)E);
	int64_t idx[RT_MAX_RANK] = {0};
	for (size_t b = 0; b < B; b++) {
		size_t moff = 0;
		for (int d = 0; mk && d < r - 2; d++)
			moff += (size_t)(idx[d] * ms[d]);
		for (size_t l = 0; l < L; l++) {
			float m = -INFINITY, sum = 0;
			for (size_t j = 0; j < S; j++) {
				float acc = 0; /* fp32 accumulation, as everywhere */
				for (size_t t = 0; t < E; t++) {
					float pr = qf[(b * L + l) * E + t] * kf[(b * S + j) * E + t];
					acc += pr;
				}
				acc *= scale;
				if (mk) {
					double mv = rt_get(mk, moff + l * (size_t)ms[r - 2] + j * (size_t)ms[r - 1]);
					if (mk->dtype == MIL_BOOL)
						acc = mv != 0 ? acc : -INFINITY;
					else
						acc += (float)mv;
				}
				p[j] = acc;
				m = acc > m ? acc : m;
			}
			for (size_t j = 0; j < S; j++) {
				p[j] = m == -INFINITY ? 0.0f : expf(p[j] - m);
				sum += p[j];
			}
			for (size_t t = 0; t < Ev; t++) {
				float acc = 0;
				for (size_t j = 0; j < S; j++) {
					float pr = p[j] * vf[(b * S + j) * Ev + t];
					acc += pr;
				}
				of[(b * L + l) * Ev + t] = sum > 0 ? acc / sum : 0.0f;
			}
		}
		for (int d = r - 3; d >= 0 && ++idx[d] == q->shape[d]; d--)
			idx[d] = 0;
	}
	rt_store_f32(o, 0, o->numel, of);
	free(qf);
	free(kf);
	free(vf);
	free(p);
	free(of);
	return 0;
}

const rt_kernel rt_kernels_linalg[] = {
	{"conv", {"x", "weight", "bias", "strides", "pad_type", "pad", "dilations", "groups"}, 3, -1, 1, 1, k_conv},
	{"linear", {"x", "weight", "bias"}, 3, -1, 1, 1, k_linear},
	{"matmul", {"x", "y", "transpose_x", "transpose_y"}, 3, -1, 1, 1, k_matmul},
	{"scaled_dot_product_attention", {"query", "key", "value", "attn_mask"}, 7, -1, 1, 1, k_sdpa},
	{NULL, {NULL}, 0, -1, 0, 0, NULL},
};
