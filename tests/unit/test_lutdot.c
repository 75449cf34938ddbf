/* test_lutdot.c: the runtime's fused decode kernels against a plain
 * expansion summed lane by lane the way the GEMM kernel sums: lane l adds
 * a[k] * w[k] for k = l, l + 8, ... in order, then the lanes are added in a
 * fixed tree. rt_lut_dot (palettized rows): every index width, odd row
 * lengths, rows starting mid-byte, 1 to 8 rows, fp16 and fp32 tables, a
 * table per row or per group of rows; both the vector path (when the CPU
 * has it) and the generic one. rt_f16_dot (fp16 rows) and rt_dot_cols
 * (columns of a [K, N] matrix) the same way. */
#define RT_INTERNAL
#include "verify/runtime.h"

#include "base/fp16.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

/* Deterministic values that make an FMA or another summation order show. */
static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static float val(uint32_t *s) { return ((float)(rnd(s) % 200001) - 100000.0f) / 37813.0f; }

static void put_index(uint8_t *p, int bits, size_t e, unsigned v)
{
	size_t bit = e * (size_t)bits;
	for (int i = 0; i < bits; i++, bit++)
		if (v >> i & 1)
			p[bit / 8] |= (uint8_t)(1u << (bit % 8));
}

/* What expanding and the 8-lane kernel give. */
static float plain_dot(const float *a, const float *w, size_t K)
{
	float s[8] = {0};
	size_t Kp = (K + 7) & ~(size_t)7;
	for (size_t k = 0; k < Kp; k++) {
		float p = a[k] * (k < K ? w[k] : 0.0f);
		s[k % 8] += p;
	}
	return (((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])));
}

/* Cases the vector kernel took and refused, by kind. */
typedef struct ran {
	int vector;      /* any */
	int f16_refused; /* fp16 tables of 2-6 bits it should have taken */
} ran;

/* ROWS rows of K `bits` indices, rows ldb = K + skip apart starting at
 * element e0 (each row inside its own run of ldb elements); rows in groups
 * of `group` share a table (dtype fp16 or fp32). */
static void dot_case(int bits, size_t K, size_t skip, size_t e0, int dtype, int group, ran *rn)
{
	enum { ROWS = 11 };
	size_t ldb = K + skip, runs = e0 / ldb + ROWS + 1, n = runs * ldb, np = (size_t)1 << bits;
	size_t es = dtype == MIL_FP16 ? 2 : 4, ntab = runs / (size_t)group + 1;
	uint8_t *idx = calloc(n * (size_t)bits / 8 + 16, 1);
	uint8_t *table = malloc(ntab * np * es);
	float *dense = malloc(n * sizeof(float)), *a = rt_alloc(((K + 7) & ~(size_t)7) * sizeof(float));
	uint32_t s = (uint32_t)(bits * 7919 + K * 31 + e0 + (size_t)group);
	for (size_t i = 0; i < ntab * np; i++) {
		float v = val(&s);
		if (i % 29 == 3)
			v = -0.0f;
		if (dtype == MIL_FP16) {
			uint16_t h = f32_to_fp16(v, NULL);
			memcpy(table + 2 * i, &h, 2);
		} else {
			memcpy(table + 4 * i, &v, 4);
		}
	}
	for (size_t e = 0; e < n; e++) {
		unsigned ix = rnd(&s) % (unsigned)np;
		put_index(idx, bits, e, ix);
		const uint8_t *t = table + ((e / ldb / (size_t)group) * np + ix) * es;
		uint16_t h;
		memcpy(&h, t, 2);
		if (dtype == MIL_FP16)
			dense[e] = fp16_to_f32(h);
		else
			memcpy(&dense[e], t, 4);
	}
	for (size_t k = 0; k < ((K + 7) & ~(size_t)7); k++)
		a[k] = k < K ? val(&s) : 0.0f;
	rt_lut l = {.dtype = dtype, .rank = 2, .shape = {(int64_t)runs, (int64_t)ldb}, .block = {group, (int64_t)ldb},
		    .gstride = {1, 1}, .idx = idx, .bits = bits, .last_grouped = 0, .inner = ldb, .np = np, .es = es,
		    .table = table};
	/* rows start at e0 inside run e0 / ldb, and must fit in it */
	size_t first = e0 % ldb;
	if (first + K > ldb)
		first = 0;
	size_t r0 = e0 - e0 % ldb + first;
	for (int nr = 1; nr <= 8; nr++)
		for (int vec = 0; vec < 2; vec++) {
			float out[8] = {0};
			int rc = rt_lut_dot(&l, r0, ldb, K, nr, a, out, vec);
			if (vec && rc != 0) {
				rn->f16_refused += dtype == MIL_FP16 && bits <= 6;
				continue;
			}
			rn->vector |= vec;
			CHECK_EQ_INT(rc, 0);
			for (int j = 0; j < nr; j++) {
				float want = plain_dot(a, dense + r0 + (size_t)j * ldb, K);
				CHECKF(memcmp(&want, &out[j], 4) == 0,
				       "%s path, %d bits, K %zu, group %d, row %d of %d at %zu: %a, want %a",
				       vec ? "vector" : "generic", bits, K, group, j, nr, r0, (double)out[j], (double)want);
			}
		}
	free(idx);
	free(table);
	free(dense);
	free(a);
}

static void test_lut_dot(void)
{
	const int widths[] = {1, 2, 3, 4, 5, 6, 7, 8};
	/* around the 8-element blocks and the 32-element steps of the fp16
	 * kernel, and long rows whose last steps load fewer bytes */
	const size_t ks[] = {1, 5, 8, 9, 15, 16, 17, 23, 31, 32, 33, 63, 64, 65, 100, 2051};
	ran rn = {0};
	for (size_t b = 0; b < sizeof widths / sizeof widths[0]; b++)
		for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
			dot_case(widths[b], ks[k], 0, 0, MIL_FP16, 1, &rn);
			dot_case(widths[b], ks[k], 0, 0, MIL_FP16, 8, &rn);  /* one table for 8 rows */
			dot_case(widths[b], ks[k], 0, 16, MIL_FP16, 3, &rn); /* tables change inside pairs */
			dot_case(widths[b], ks[k], 3, 1, MIL_FP16, 1, &rn);  /* rows start mid-byte */
			dot_case(widths[b], ks[k], 3, 1, MIL_FP16, 8, &rn);
			dot_case(widths[b], ks[k], 5, 5, MIL_FP32, 1, &rn);
		}
	if (!rn.vector)
		printf("note test_lut_dot: this CPU has no fused vector kernel; the generic path was tested\n");
	else
		CHECKF(rn.f16_refused == 0, "the vector kernel refused %d cases of fp16 tables of 2-6 bits",
		       rn.f16_refused);
}

/* rt_f16_dot: nr fp16 rows of K values, ldb = K + skip apart. */
static void f16_case(size_t K, size_t skip, int *vector_ran)
{
	size_t ldb = K + skip, Kp = (K + 7) & ~(size_t)7;
	uint16_t *B = malloc(4 * ldb * sizeof(uint16_t));
	float *dense = malloc(4 * ldb * sizeof(float)), *a = rt_alloc(Kp * sizeof(float));
	uint32_t s = (uint32_t)(K * 131 + skip);
	for (size_t i = 0; i < 4 * ldb; i++) {
		B[i] = f32_to_fp16(i % 23 == 4 ? -0.0f : val(&s), NULL);
		dense[i] = fp16_to_f32(B[i]);
	}
	for (size_t k = 0; k < Kp; k++)
		a[k] = k < K ? val(&s) : 0.0f;
	for (int nr = 1; nr <= 4; nr++)
		for (int vec = 0; vec < 2; vec++) {
			float out[4] = {0};
			if (rt_f16_dot(B, ldb, K, nr, a, out, vec) != 0) {
				CHECK(vec);
				continue;
			}
			*vector_ran |= vec;
			for (int j = 0; j < nr; j++) {
				float want = plain_dot(a, dense + (size_t)j * ldb, K);
				CHECKF(memcmp(&want, &out[j], 4) == 0, "%s path, K %zu, row %d of %d: %a, want %a",
				       vec ? "vector" : "generic", K, j, nr, (double)out[j], (double)want);
			}
		}
	free(B);
	free(dense);
	free(a);
}

static void test_f16_dot(void)
{
	const size_t ks[] = {1, 7, 8, 9, 16, 64, 100, 2051};
	int vector_ran = 0;
	for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
		f16_case(ks[k], 0, &vector_ran);
		f16_case(ks[k], 5, &vector_ran);
	}
	if (!vector_ran)
		printf("note test_f16_dot: this CPU has no fused vector kernel; the generic path was tested\n");
}

/* rt_dot_cols on a [K, N] matrix (fp16 or fp32): column n as a row. */
static void cols_case(size_t K, size_t N, int dtype)
{
	size_t Kp = (K + 7) & ~(size_t)7;
	void *y = malloc(K * N * 4);
	float *col = malloc(Kp * sizeof(float)), *a = rt_alloc(Kp * sizeof(float)), *c = malloc(N * sizeof(float));
	float *dense = malloc(K * N * sizeof(float));
	uint32_t s = (uint32_t)(K * 977 + N + (size_t)dtype);
	for (size_t i = 0; i < K * N; i++) {
		float v = i % 19 == 2 ? -0.0f : val(&s);
		if (dtype == MIL_FP16) {
			uint16_t h = f32_to_fp16(v, NULL);
			((uint16_t *)y)[i] = h;
			v = fp16_to_f32(h);
		} else {
			((float *)y)[i] = v;
		}
		dense[i] = v;
	}
	for (size_t k = 0; k < Kp; k++)
		a[k] = k < K ? val(&s) : 0.0f;
	rt_dot_cols(a, K, y, dtype, N, c);
	for (size_t n = 0; n < N; n++) {
		for (size_t k = 0; k < K; k++)
			col[k] = dense[k * N + n];
		float want = plain_dot(a, col, K);
		CHECKF(memcmp(&want, &c[n], 4) == 0, "%s, K %zu, N %zu, column %zu: %a, want %a",
		       dtype == MIL_FP16 ? "fp16" : "fp32", K, N, n, (double)c[n], (double)want);
	}
	free(y);
	free(col);
	free(a);
	free(c);
	free(dense);
}

static void test_dot_cols(void)
{
	const size_t ks[] = {1, 8, 9, 64, 517}, ns[] = {1, 5, 8, 17, 64};
	for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
		for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
			cols_case(ks[i], ns[j], MIL_FP16);
			cols_case(ks[i], ns[j], MIL_FP32);
		}
}

/* Rows that cross into another table's run are refused by the vector path
 * (the caller expands them), never computed with the wrong table. */
static void test_lut_dot_crossing(void)
{
	uint8_t idx[64] = {0};
	uint16_t table[2 * 16];
	for (int i = 0; i < 32; i++)
		table[i] = f32_to_fp16((float)i, NULL);
	rt_lut l = {.dtype = MIL_FP16, .rank = 2, .shape = {2, 16}, .block = {1, 16}, .gstride = {1, 1}, .idx = idx,
		    .bits = 4, .last_grouped = 0, .inner = 16, .np = 16, .es = 2, .table = (const uint8_t *)table};
	float *a = rt_alloc(16 * sizeof(float)), out[4];
	for (int k = 0; k < 16; k++)
		a[k] = 1;
	CHECK(rt_lut_dot(&l, 8, 16, 16, 1, a, out, 1) == -1);
	CHECK(rt_lut_dot(&l, 8, 16, 16, 1, a, out, 0) == 0);
	CHECK(out[0] == 8 * 0.0f + 8 * 16.0f);
	free(a);
}

int main(void)
{
	RUN(test_lut_dot);
	RUN(test_lut_dot_crossing);
	RUN(test_f16_dot);
	RUN(test_dot_cols);
	return test_finish();
}
