/* fuzz_blob.c: the weight.bin reader on arbitrary bytes.
 *
 * Whatever it accepts must be safe to use: every blob's data is read in full,
 * sub-byte blobs are unpacked and packed again (the same bytes must come back,
 * up to the padding bits), and the file is rewritten with the blob writer,
 * which must put every blob at the same offset and read back identically.
 * Built with libFuzzer, or with tests/fuzz/driver.c supplying main.
 */
#include "base/util.h"
#include "coreml/blob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned g_sink; /* keeps touch() from being optimized away */

/* Sum every byte so that a read past the data would be caught by ASan. */
static unsigned touch(const uint8_t *p, size_t n)
{
	unsigned s = 0;
	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

static void check_repack(const blob_info *b, const uint8_t *d)
{
	int bits = mil_dtype_bits(blob_to_mil_dtype(b->dtype));
	if (bits >= 8 || b->nbytes == 0)
		return;
	uint8_t *v = xmalloc(b->n_elements + 1), *p = xmalloc(b->nbytes);
	blob_unpack_bits(d, b->n_elements, bits, v);
	blob_pack_bits(v, b->n_elements, bits, p);
	size_t last = b->nbytes - 1;
	uint8_t keep = (uint8_t)(0xFFu >> b->padding_bits);
	if (memcmp(p, d, last) != 0 || p[last] != (d[last] & keep))
		abort();
	free(v);
	free(p);
}

/* Rewrite every blob into f; return the new file's bytes (caller frees). */
static uint8_t *rewrite(const blob_reader *r, FILE *f, size_t *n)
{
	rewind(f);
	if (ftruncate(fileno(f), 0) != 0)
		abort();
	blob_writer *bw = blob_writer_open_file(f, "copy");
	for (uint32_t i = 0; i < blob_reader_count(r); i++) {
		const blob_info *b = blob_reader_info(r, i);
		uint64_t off;
		if (blob_append(bw, b->dtype, blob_reader_data(r, b), (size_t)b->nbytes, b->padding_bits, &off) != 0 ||
		    off != b->meta_offset)
			abort();
	}
	*n = (size_t)blob_writer_size(bw);
	if (blob_writer_close(bw, NULL) != 0)
		abort();
	uint8_t *buf = xmalloc(*n + 1);
	rewind(f);
	if (fread(buf, 1, *n, f) != *n)
		abort();
	return buf;
}

static void check_same(const blob_reader *a, const blob_reader *b)
{
	if (blob_reader_count(a) != blob_reader_count(b))
		abort();
	for (uint32_t i = 0; i < blob_reader_count(a); i++) {
		const blob_info *x = blob_reader_info(a, i), *y = blob_reader_info(b, i);
		if (x->meta_offset != y->meta_offset || x->dtype != y->dtype || x->nbytes != y->nbytes ||
		    x->padding_bits != y->padding_bits || x->n_elements != y->n_elements ||
		    memcmp(blob_reader_data(a, x), blob_reader_data(b, y), (size_t)x->nbytes) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *f;
	blob_reader *r;
	if (blob_reader_open_mem(data, size, "fuzz", &r) != 0) {
		if (strchr(errmsg(), '\n'))
			abort(); /* errors are one line */
		return 0;
	}
	for (uint32_t i = 0; i < blob_reader_count(r); i++) {
		const blob_info *b = blob_reader_info(r, i);
		const uint8_t *d = blob_reader_data(r, b);
		g_sink += touch(d, (size_t)b->nbytes);
		if (blob_reader_find(r, b->meta_offset) != b || blob_reader_find(r, b->meta_offset + 1))
			abort();
		check_repack(b, d);
	}
	if (!f && !(f = tmpfile()))
		abort();
	size_t n;
	uint8_t *copy = rewrite(r, f, &n);
	blob_reader *r2;
	if (n != size || blob_reader_open_mem(copy, n, "copy", &r2) != 0)
		abort();
	check_same(r, r2);
	blob_reader_close(r2);
	blob_reader_close(r);
	free(copy);
	return 0;
}
