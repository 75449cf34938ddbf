/* fuzz_safetensors.c: the safetensors header parser on arbitrary bytes.
 *
 * The input is a whole file image (8-byte length, JSON header, data). It
 * must either be refused with one line of error or open cleanly; when it
 * opens, every tensor must be findable by name, lie inside the image, and
 * convert without faults, with the fp16 result equal to rounding the exact
 * fp32 result (the two conversion paths agree), or, when it holds a NaN or
 * an infinity, be refused by both in one line. Builds under libFuzzer, or
 * with tests/fuzz/driver.c supplying main.
 */
#include "base/fp16.h"
#include "base/util.h"
#include "checkpoint/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void convert_all(const st_tensor *t)
{
	if (st_check_convertible(t) != 0)
		return;
	size_t n = (size_t)t->numel;
	float *f = xmalloc(xmul(n, sizeof *f));
	uint16_t *h = xmalloc(xmul(n, sizeof *h));
	size_t clamped = 0, recount = 0;
	if (st_read_f32(t, f) != 0) { /* non-finite values: both paths refuse */
		ASSERT(strstr(errmsg(), "finite weights only") && !strchr(errmsg(), '\n'));
		ASSERT(st_read_fp16(t, h, &clamped) != 0);
		free(f);
		free(h);
		return;
	}
	ASSERT(st_read_fp16(t, h, &clamped) == 0);
	for (size_t i = 0; i < n; i++) {
		int of;
		uint16_t want = f32_to_fp16(f[i], &of);
		recount += (size_t)of;
		ASSERT(h[i] == want);
		ASSERT((h[i] & 0x7fff) != 0x7c00); /* never inf */
	}
	ASSERT(clamped == recount);
	/* the last row alone matches the tail of the whole read */
	uint64_t rows = st_rows(t), re = st_row_elems(t);
	if (rows > 0 && re > 0) {
		float *last = xmalloc(xmul((size_t)re, sizeof *last));
		ASSERT(st_read_rows_f32(t, rows - 1, 1, last) == 0);
		ASSERT(memcmp(last, f + (rows - 1) * re, (size_t)re * sizeof *last) == 0);
		free(last);
	}
	ASSERT(st_read_rows_f32(t, rows, 1, f) != 0);
	free(f);
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	st_model m;
	if (st_open_memory(&m, data, size, "fuzz.safetensors") != 0) {
		ASSERT(strchr(errmsg(), '\n') == NULL);
		return 0;
	}
	for (size_t i = 0; i < st_count(&m); i++) {
		const st_tensor *t = st_at(&m, i);
		ASSERT(st_find(&m, t->name) == t);
		ASSERT(t->data >= data && t->nbytes <= size &&
		       (size_t)(t->data - data) <= size - t->nbytes);
		convert_all(t);
	}
	st_close(&m);
	return 0;
}
