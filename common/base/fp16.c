/* fp16.c: half and bfloat16 conversions (see fp16.h). */
#include "base/fp16.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

float fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	if (exp == 0x1f)
		return bits_f32(sign | 0x7f800000 | (man << 13));
	if (exp == 0) {
		/* subnormal: man * 2^-24, exact in fp32 */
		float v = (float)man * 5.9604644775390625e-8f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

float bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

uint16_t f32_to_fp16(float f, int *overflow)
{
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
	uint32_t a = u & 0x7fffffff;
	if (overflow)
		*overflow = 0;
	if (a > 0x7f800000) {
		if (overflow)
			*overflow = 1;
		return sign | 0x7e00;
	}
	/* 65520 is the midpoint between 65504 and 65536: it and above round to inf */
	if (a >= 0x477ff000) {
		if (overflow)
			*overflow = 1;
		return sign | 0x7bff;
	}
	if (a < 0x38800000) {
		/* result is subnormal or zero: scale so the rounding happens at 2^-24 */
		if (a < 0x33000000)
			return sign; /* below half the smallest subnormal */
		uint32_t man = (a & 0x7fffff) | 0x800000;
		int shift = 126 - (int)(a >> 23); /* 14..24 */
		uint32_t q = man >> shift;
		uint32_t rem = man & ((1u << shift) - 1);
		uint32_t half = 1u << (shift - 1);
		if (rem > half || (rem == half && (q & 1)))
			q++;
		return sign | (uint16_t)q;
	}
	uint32_t r = a - 0x38000000; /* rebias exponent 127 -> 15 */
	uint32_t q = r >> 13;
	uint32_t rem = r & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
		q++;
	return sign | (uint16_t)q;
}

size_t f32_array_to_fp16(const float *src, uint16_t *dst, size_t n)
{
	size_t clamped = 0;
	for (size_t i = 0; i < n; i++) {
		int of;
		dst[i] = f32_to_fp16(src[i], &of);
		clamped += (size_t)of;
	}
	return clamped;
}

size_t bf16_array_to_fp16(const uint16_t *src, uint16_t *dst, size_t n)
{
	size_t clamped = 0;
	for (size_t i = 0; i < n; i++) {
		int of;
		dst[i] = f32_to_fp16(bf16_to_f32(src[i]), &of);
		clamped += (size_t)of;
	}
	return clamped;
}

void fp16_array_to_f32(const uint16_t *src, float *dst, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = fp16_to_f32(src[i]);
}
