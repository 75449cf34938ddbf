/* test_fp16.c: fp16/bf16 conversions against exhaustive and known values. */
#include "base/fp16.h"
#include "test.h"

#include <stdint.h>

static void test_roundtrip_all_halves(void)
{
	for (uint32_t h = 0; h < 0x10000; h++) {
		if ((h & 0x7c00) == 0x7c00)
			continue; /* inf/nan handled separately */
		uint16_t back = f32_to_fp16(fp16_to_f32((uint16_t)h), NULL);
		CHECKF(back == h, "0x%04x -> %g -> 0x%04x", h, fp16_to_f32((uint16_t)h), back);
		if (back != h)
			return;
	}
}

static void test_ties_to_even(void)
{
	/* 1 + 2^-11 is halfway between 1 and 1+2^-10: rounds to even (1.0) */
	CHECK_EQ_INT(f32_to_fp16(1.0f + 0x1p-11f, NULL), 0x3c00);
	/* 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: rounds up to even */
	CHECK_EQ_INT(f32_to_fp16(1.0f + 3 * 0x1p-11f, NULL), 0x3c02);
	/* smallest subnormal and half of it */
	CHECK_EQ_INT(f32_to_fp16(0x1p-24f, NULL), 0x0001);
	CHECK_EQ_INT(f32_to_fp16(0x1p-25f, NULL), 0x0000);
	CHECK_EQ_INT(f32_to_fp16(0x1.8p-24f, NULL), 0x0002);
	CHECK_EQ_INT(f32_to_fp16(-2.0f, NULL), 0xc000);
}

static void test_overflow_clamps(void)
{
	int of;
	CHECK_EQ_INT(f32_to_fp16(65504.0f, &of), 0x7bff);
	CHECK_EQ_INT(of, 0);
	CHECK_EQ_INT(f32_to_fp16(65519.0f, &of), 0x7bff);
	CHECK_EQ_INT(of, 0);
	CHECK_EQ_INT(f32_to_fp16(65520.0f, &of), 0x7bff);
	CHECK_EQ_INT(of, 1);
	CHECK_EQ_INT(f32_to_fp16(-1e30f, &of), 0xfbff);
	CHECK_EQ_INT(of, 1);
	CHECK_EQ_INT(f32_to_fp16(INFINITY, &of), 0x7bff);
	CHECK_EQ_INT(of, 1);
}

static void test_bf16(void)
{
	uint16_t src[3] = {0x3f80, 0xc2f7, 0x7f7f}; /* 1.0, -123.5, ~3.4e38 */
	uint16_t dst[3];
	size_t clamped = bf16_array_to_fp16(src, dst, 3);
	CHECK_EQ_INT(dst[0], 0x3c00);
	CHECK(fp16_to_f32(dst[1]) == -123.5f);
	CHECK_EQ_INT(dst[2], 0x7bff);
	CHECK_EQ_INT(clamped, 1);
	CHECK_EQ_INT(f32_to_bf16(1.0f), 0x3f80);
}

int main(void)
{
	RUN(test_roundtrip_all_halves);
	RUN(test_ties_to_even);
	RUN(test_overflow_clamps);
	RUN(test_bf16);
	return test_finish();
}
