/* test_blob.c: weight.bin writer, reader and sub-byte packing.
 *
 * Packing is checked against hand-computed vectors from the format (section 4
 * of coreml-format.md) and against a naive bit-by-bit packer on random data;
 * files are checked byte by byte for layout (offsets, zero gaps, no trailing
 * bytes); the reader is fed one corruption at a time and must reject each
 * with one line naming the file; every reference weight.bin written by
 * coremltools must read cleanly.
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/blob.h"
#include "test.h"

#include <glob.h>
#include <stdint.h>
#include <unistd.h>

static char g_dir[256]; /* scratch directory */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static char *scratch(const char *name)
{
	return path_join(g_dir, name);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* The definition, one bit at a time: element i bit b is stream bit i*bits+b. */
static void naive_pack(const uint8_t *v, size_t n, int bits, uint8_t *out)
{
	memset(out, 0, blob_packed_size(n, bits));
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < bits; b++)
			if (v[i] >> b & 1) {
				size_t k = i * (size_t)bits + (size_t)b;
				out[k / 8] |= (uint8_t)(1u << (k % 8));
			}
}

/* ------------------------------------------------------------------ */
/* Packing                                                             */

static void check_pack(const uint8_t *vals, size_t n, int bits, const uint8_t *want, size_t nwant,
		       unsigned pad)
{
	uint8_t out[64];
	memset(out, 0xAA, sizeof out);
	CHECK_EQ_INT(blob_packed_size(n, bits), nwant);
	CHECK_EQ_INT(blob_padding_bits(n, bits), pad);
	blob_pack_bits(vals, n, bits, out);
	CHECKF(memcmp(out, want, nwant) == 0, "%d-bit packing of %zu values differs", bits, n);
	CHECKF(out[nwant] == 0xAA, "%d-bit packing wrote past its %zu bytes", bits, nwant);
}

static void test_pack_known_vectors(void)
{
	/* 4-bit: element 0 in the low nibble. */
	check_pack((const uint8_t[]){1, 2, 3}, 3, 4, (const uint8_t[]){0x21, 0x03}, 2, 4);
	/* 6-bit: element 1's low 2 bits are bits 6-7 of byte 0, its high 4 bits
	 * bits 0-3 of byte 1. 0x2B = 0b101011. */
	check_pack((const uint8_t[]){0x01, 0x2B}, 2, 6, (const uint8_t[]){0xC1, 0x0A}, 2, 4);
	check_pack((const uint8_t[]){63, 0, 63, 0}, 4, 6, (const uint8_t[]){0x3F, 0xF0, 0x03}, 3, 0);
	/* 3-bit straddling: 5 | 3<<3 | (6 & 3)<<6 = 0x9D, then 6>>2 = 1. */
	check_pack((const uint8_t[]){5, 3, 6}, 3, 3, (const uint8_t[]){0x9D, 0x01}, 2, 7);
	check_pack((const uint8_t[]){7, 7, 7, 7, 7, 7, 7, 7}, 8, 3, (const uint8_t[]){0xFF, 0xFF, 0xFF}, 3, 0);
	/* 2-bit: four per byte, LSB first. */
	check_pack((const uint8_t[]){1, 2, 3, 0, 3}, 5, 2, (const uint8_t[]){0x39, 0x03}, 2, 6);
	/* 1-bit. */
	check_pack((const uint8_t[]){1, 0, 1, 1, 0, 0, 0, 1, 1}, 9, 1, (const uint8_t[]){0x8D, 0x01}, 2, 7);
	/* 8-bit is a copy. */
	check_pack((const uint8_t[]){9, 200}, 2, 8, (const uint8_t[]){9, 200}, 2, 0);
	/* int4 is two's complement: -1 -> 0xF, -8 -> 0x8. */
	int8_t s4[3] = {-1, 7, -8};
	check_pack((const uint8_t *)s4, 3, 4, (const uint8_t[]){0x7F, 0x08}, 2, 4);
	int8_t back[3];
	blob_unpack_int4((const uint8_t[]){0x7F, 0x08}, 3, back);
	CHECK(back[0] == -1 && back[1] == 7 && back[2] == -8);
	/* Nothing packs to nothing. */
	CHECK_EQ_INT(blob_packed_size(0, 3), 0);
	CHECK_EQ_INT(blob_padding_bits(0, 3), 0);
}

static void test_pack_random_all_widths(void)
{
	static const int widths[] = {1, 2, 3, 4, 6, 8};
	enum { MAXN = 3000 };
	uint8_t *v = xmalloc(MAXN), *back = xmalloc(MAXN);
	uint8_t *got = xmalloc(MAXN), *want = xmalloc(MAXN);
	for (int w = 0; w < 6; w++) {
		int bits = widths[w];
		for (size_t n = 0; n < MAXN; n = n < 40 ? n + 1 : n * 3 + 7) {
			for (size_t i = 0; i < n; i++)
				v[i] = (uint8_t)(rnd() & ((1u << bits) - 1));
			size_t nb = blob_packed_size(n, bits);
			CHECK_EQ_INT(nb, (n * (size_t)bits + 7) / 8);
			naive_pack(v, n, bits, want);
			blob_pack_bits(v, n, bits, got);
			CHECKF(memcmp(got, want, nb) == 0, "%d-bit pack of %zu values", bits, n);
			blob_unpack_bits(got, n, bits, back);
			CHECKF(memcmp(back, v, n) == 0, "%d-bit unpack of %zu values", bits, n);
			if (nb && bits < 8) /* padding bits are zero */
				CHECK((got[nb - 1] >> (8 - blob_padding_bits(n, bits))) == 0 ||
				      blob_padding_bits(n, bits) == 0);
		}
	}
	/* High bits above the width are ignored when packing. */
	for (size_t i = 0; i < 64; i++)
		v[i] = (uint8_t)rnd();
	blob_pack_bits(v, 64, 3, got);
	for (size_t i = 0; i < 64; i++)
		v[i] &= 7;
	naive_pack(v, 64, 3, want);
	CHECK(memcmp(got, want, 24) == 0);
	free(v), free(back), free(got), free(want);
}

static void test_element_count(void)
{
	uint64_t n = 0;
	CHECK(blob_element_count(BLOB_UINT6, 4, 2, &n) == 0 && n == 5);
	CHECK(blob_element_count(BLOB_UINT3, 2, 7, &n) == 0 && n == 3);
	CHECK(blob_element_count(BLOB_FP16, 26, 0, &n) == 0 && n == 13);
	CHECK(blob_element_count(BLOB_FP32, 6, 0, &n) == -1);
	CHECK(blob_element_count(BLOB_UINT4, 2, 2, &n) == -1);
	CHECK(blob_element_count(BLOB_UINT3, 1, 3, &n) == -1);
	CHECK(blob_element_count(BLOB_UINT1, 0, 1, &n) == -1);
	CHECK(blob_element_count((blob_dtype)99, 4, 0, &n) == -1);
}

/* ------------------------------------------------------------------ */
/* Writer and file layout                                              */

/* Check the layout of a whole file: header, metadata, zero gaps, no tail. */
static void check_layout(const uint8_t *f, size_t size, uint32_t count)
{
	CHECK(size >= 64);
	if (size < 64)
		return;
	CHECK_EQ_INT(le32(f), count);
	CHECK_EQ_INT(le32(f + 4), 2);
	CHECK(all_zero(f + 8, 56));
	uint64_t end = 64;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t meta = (end + 63) / 64 * 64;
		CHECKF(meta + 64 <= size, "blob %u metadata at %llu past end", i, (unsigned long long)meta);
		if (meta + 64 > size)
			return;
		CHECKF(all_zero(f + end, meta - end), "gap before blob %u is not zero", i);
		CHECK_EQ_INT(le32(f + meta), 0xDEADBEEF);
		CHECK_EQ_INT(le64(f + meta + 16), meta + 64);
		CHECK(all_zero(f + meta + 32, 32));
		end = meta + 64 + le64(f + meta + 8);
	}
	CHECK_EQ_INT(end, size); /* no trailing padding */
}

static void test_exact_layout(void)
{
	char *path = scratch("layout.bin");
	blob_writer *bw = blob_writer_open(path);
	CHECK(bw != NULL);
	uint16_t h[3] = {0x3c00, 0x4000, 0xc000};
	uint8_t u4[3] = {1, 2, 3};
	uint64_t off0 = 0, off1 = 0, off2 = 0;
	CHECK(blob_append_tensor(bw, MIL_FP16, h, 3, &off0) == 0);
	CHECK(blob_append_unpacked(bw, MIL_UINT4, u4, 3, &off1) == 0);
	CHECK(blob_append(bw, BLOB_UINT8, u4, 0, 0, &off2) == 0); /* an empty blob */
	CHECK_EQ_INT(off0, 64);
	CHECK_EQ_INT(off1, 192); /* data 128..134, next 64-multiple */
	CHECK_EQ_INT(off2, 320); /* data 256..258 */
	CHECK_EQ_INT(blob_writer_count(bw), 3);
	CHECK_EQ_INT(blob_writer_size(bw), 384);
	CHECK(blob_writer_close(bw, NULL) == 0);

	char *f;
	size_t n;
	CHECK(read_file(path, FS_MAX_MODEL, &f, &n) == 0);
	const uint8_t *b = (const uint8_t *)f;
	CHECK_EQ_INT(n, 384);
	check_layout(b, n, 3);
	/* Blob 0: fp16, 6 bytes, data at 128, no padding. */
	CHECK_EQ_INT(le32(b + 64 + 4), BLOB_FP16);
	CHECK_EQ_INT(le64(b + 64 + 8), 6);
	CHECK_EQ_INT(le64(b + 64 + 16), 128);
	CHECK_EQ_INT(le64(b + 64 + 24), 0);
	CHECK(memcmp(b + 128, (const uint8_t[]){0x00, 0x3c, 0x00, 0x40, 0x00, 0xc0}, 6) == 0);
	/* Blob 1: uint4, 2 bytes, 4 padding bits. */
	CHECK_EQ_INT(le32(b + 192 + 4), BLOB_UINT4);
	CHECK_EQ_INT(le64(b + 192 + 8), 2);
	CHECK_EQ_INT(le64(b + 192 + 16), 256);
	CHECK_EQ_INT(le64(b + 192 + 24), 4);
	CHECK(b[256] == 0x21 && b[257] == 0x03);
	free(f);
	free(path);
}

/* Data for n elements of t: random raw bytes, or values in range (unpacked). */
static uint8_t *make_values(mil_dtype t, size_t n, size_t *nbytes)
{
	int bits = mil_dtype_bits(t);
	*nbytes = bits >= 8 ? n * (size_t)bits / 8 : n;
	uint8_t *v = xmalloc(*nbytes + 1);
	for (size_t i = 0; i < *nbytes; i++) {
		uint8_t r = (uint8_t)rnd();
		if (t == MIL_INT4)
			v[i] = (uint8_t)(int8_t)((r & 15) - 8);
		else
			v[i] = bits >= 8 ? r : (uint8_t)(r & ((1u << bits) - 1));
	}
	return v;
}

static const struct {
	mil_dtype t;
	size_t n;
} g_cases[] = {
	{MIL_FP16, 13}, {MIL_FP32, 7},   {MIL_UINT8, 101}, {MIL_INT8, 3},   {MIL_BF16, 5},
	{MIL_INT16, 9}, {MIL_UINT16, 11}, {MIL_INT32, 1},  {MIL_UINT32, 15}, {MIL_UINT1, 13},
	{MIL_UINT2, 7}, {MIL_UINT3, 11},  {MIL_UINT4, 9},  {MIL_UINT6, 5},   {MIL_INT4, 17},
	{MIL_UINT6, 1001}, {MIL_UINT3, 8}, {MIL_UINT1, 1},
};
#define NCASES (sizeof g_cases / sizeof g_cases[0])

static void check_blob_values(const blob_reader *r, const blob_info *b, mil_dtype t, size_t n,
			      const uint8_t *v, size_t nv)
{
	int bits = mil_dtype_bits(t);
	CHECK_EQ_INT(b->dtype, mil_to_blob_dtype(t));
	CHECK_EQ_INT(b->n_elements, n);
	CHECK_EQ_INT(b->nbytes, blob_packed_size(n, bits));
	CHECK_EQ_INT(b->padding_bits, bits < 8 ? blob_padding_bits(n, bits) : 0);
	const uint8_t *d = blob_reader_data(r, b);
	if (bits >= 8) {
		CHECKF(b->nbytes == nv && memcmp(d, v, nv) == 0, "%s data differs", mil_dtype_name(t));
		return;
	}
	uint8_t *back = xmalloc(n + 1);
	if (t == MIL_INT4)
		blob_unpack_int4(d, n, (int8_t *)back);
	else
		blob_unpack_bits(d, n, bits, back);
	CHECKF(memcmp(back, v, n) == 0, "%s values differ", mil_dtype_name(t));
	free(back);
}

static void test_roundtrip_every_dtype(void)
{
	char *path = scratch("all.bin");
	blob_writer *bw = blob_writer_open(path);
	uint8_t *vals[NCASES];
	size_t nv[NCASES];
	uint64_t offs[NCASES];
	for (size_t c = 0; c < NCASES; c++) {
		mil_dtype t = g_cases[c].t;
		size_t n = g_cases[c].n;
		int bits = mil_dtype_bits(t);
		vals[c] = make_values(t, n, &nv[c]);
		if (bits < 8 && c % 2) { /* pack here, append packed */
			uint8_t *p = xmalloc(blob_packed_size(n, bits) + 1);
			blob_pack_bits(vals[c], n, bits, p);
			CHECK(blob_append_tensor(bw, t, p, n, &offs[c]) == 0);
			free(p);
		} else
			CHECK(blob_append_unpacked(bw, t, vals[c], n, &offs[c]) == 0);
	}
	uint8_t digest[32];
	CHECK(blob_writer_close(bw, digest) == 0);

	char *f;
	size_t size;
	CHECK(read_file(path, FS_MAX_MODEL, &f, &size) == 0);
	check_layout((const uint8_t *)f, size, NCASES);
	free(f);

	blob_reader *r = NULL;
	CHECKF(blob_reader_open(path, &r) == 0, "%s", errmsg());
	if (r) {
		CHECK_EQ_INT(blob_reader_count(r), NCASES);
		for (size_t c = 0; c < NCASES; c++) {
			const blob_info *b = blob_reader_find(r, offs[c]);
			CHECK(b == blob_reader_info(r, (uint32_t)c));
			if (b)
				check_blob_values(r, b, g_cases[c].t, g_cases[c].n, vals[c], nv[c]);
		}
		blob_dtype dt;
		const void *data;
		size_t nb;
		unsigned pad;
		CHECK(blob_reader_get(r, offs[2], &dt, &data, &nb, &pad) == 0);
		CHECK(dt == BLOB_UINT8 && nb == 101 && pad == 0 && memcmp(data, vals[2], 101) == 0);
		CHECK(blob_reader_get(r, 65, NULL, NULL, NULL, NULL) == -1);
		CHECK(strstr(errmsg(), "no blob at offset 65") != NULL);
	}
	blob_reader_close(r);
	for (size_t c = 0; c < NCASES; c++)
		free(vals[c]);
	free(path);
}

static void test_streamed_equals_whole(void)
{
	char *a = scratch("whole.bin"), *b = scratch("stream.bin");
	enum { N = 100003 };
	uint8_t *v = xmalloc(N);
	for (size_t i = 0; i < N; i++)
		v[i] = (uint8_t)rnd();
	blob_writer *wa = blob_writer_open(a), *wb = blob_writer_open(b);
	uint64_t oa, ob;
	CHECK(blob_append(wa, BLOB_UINT8, v, N, 0, &oa) == 0);
	CHECK(blob_append(wa, BLOB_INT8, v, 17, 0, &oa) == 0);
	CHECK(blob_begin(wb, BLOB_UINT8, N, 0, &ob) == 0);
	for (size_t i = 0; i < N; i += 777)
		CHECK(blob_write(wb, v + i, N - i < 777 ? N - i : 777) == 0);
	CHECK(blob_end(wb) == 0);
	CHECK(blob_append(wb, BLOB_INT8, v, 17, 0, &ob) == 0);
	CHECK_EQ_INT(oa, ob);
	uint8_t da[32], db[32];
	CHECK(blob_writer_close(wa, da) == 0);
	CHECK(blob_writer_close(wb, db) == 0);
	CHECK(memcmp(da, db, 32) == 0);
	char *fa, *fb;
	size_t na, nb;
	CHECK(read_file(a, FS_MAX_MODEL, &fa, &na) == 0 && read_file(b, FS_MAX_MODEL, &fb, &nb) == 0);
	CHECK(na == nb && memcmp(fa, fb, na) == 0);
	free(fa), free(fb), free(v), free(a), free(b);
}

static void test_header_only_file(void)
{
	char *path = scratch("empty.bin");
	blob_writer *bw = blob_writer_open(path);
	CHECK(blob_writer_close(bw, NULL) == 0);
	char *f;
	size_t n;
	CHECK(read_file(path, FS_MAX_MODEL, &f, &n) == 0);
	CHECK_EQ_INT(n, 64);
	check_layout((const uint8_t *)f, n, 0);
	blob_reader *r = NULL;
	CHECK(blob_reader_open(path, &r) == 0);
	CHECK(r && blob_reader_count(r) == 0);
	blob_reader_close(r);
	free(f);
	free(path);
}

/* A writer on a caller's stream starts at its current position. */
static void test_writer_on_stream(void)
{
	FILE *f = tmpfile();
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("PREFIX", f);
	blob_writer *bw = blob_writer_open_file(f, "stream");
	float x[3] = {1, 2, 3};
	uint64_t off;
	CHECK(blob_append_tensor(bw, MIL_FP32, x, 3, &off) == 0 && off == 64);
	CHECK(blob_writer_close(bw, NULL) == 0);
	CHECK(ftell(f) == 6 + 140); /* left at the end */
	uint8_t buf[256];
	rewind(f);
	size_t n = fread(buf, 1, sizeof buf, f);
	CHECK_EQ_INT(n, 146);
	CHECK(memcmp(buf, "PREFIX", 6) == 0);
	check_layout(buf + 6, n - 6, 1);
	fclose(f);
}

static void test_writer_rejects_bad_calls(void)
{
	char *path = scratch("bad-calls.bin");
	blob_writer *bw = blob_writer_open(path);
	uint8_t v[4] = {1, 16, 2, 3};
	uint64_t off;
	CHECK(blob_append_unpacked(bw, MIL_UINT4, v, 4, &off) == -1);
	CHECK(strstr(errmsg(), "element 1") != NULL);
	int8_t s[2] = {3, -9};
	CHECK(blob_append_unpacked(bw, MIL_INT4, s, 2, &off) == -1);
	CHECK(strstr(errmsg(), "(-9)") != NULL);
	CHECK(blob_append(bw, BLOB_FP16, v, 4, 3, &off) == -1);  /* padding on fp16 */
	CHECK(blob_append(bw, BLOB_FP16, v, 3, 0, &off) == -1);  /* half an element */
	CHECK(blob_append(bw, BLOB_UINT4, v, 1, 8, &off) == -1); /* padding >= 8 */
	CHECK(blob_append_tensor(bw, MIL_FP64, v, 0, &off) == -1);
	CHECK_EQ_INT(blob_writer_count(bw), 0); /* nothing was written */
	CHECK(blob_append_unpacked(bw, MIL_UINT2, v, 1, &off) == 0 && off == 64);
	CHECK(blob_writer_close(bw, NULL) == 0);
	blob_reader *r = NULL;
	CHECK(blob_reader_open(path, &r) == 0 && blob_reader_count(r) == 1);
	blob_reader_close(r);
	blob_writer_abort(NULL);
	free(path);
}

/* A full disk is an error at append or close, never a silent short file. */
static void test_full_disk(void)
{
	if (access("/dev/full", W_OK) != 0)
		SKIP("no /dev/full");
	blob_writer *bw = blob_writer_open("/dev/full");
	CHECK(bw != NULL);
	if (!bw)
		return;
	enum { BIG = 3 << 20 };
	uint8_t *big = xcalloc(1, BIG);
	uint64_t off;
	int a = blob_append(bw, BLOB_UINT8, big, BIG, 0, &off);
	int c = blob_writer_close(bw, NULL);
	CHECK(a == -1 || c == -1);
	CHECK(c == -1);
	CHECKF(strstr(errmsg(), "/dev/full") != NULL, "%s", errmsg());
	free(big);

	bw = blob_writer_open("/dev/full"); /* small: fails only when flushed */
	CHECK(blob_append(bw, BLOB_UINT8, "abc", 3, 0, &off) == 0);
	CHECK(blob_writer_close(bw, NULL) == -1);
}

/* ------------------------------------------------------------------ */
/* Reader on hostile input                                             */

/* A valid file: fp16 x5 (meta 64, data 128..138), uint4 x3 (meta 192,
 * data 256..258). */
static uint8_t *valid_file(size_t *n)
{
	char *path = scratch("valid.bin");
	blob_writer *bw = blob_writer_open(path);
	uint16_t h[5] = {1, 2, 3, 4, 5};
	uint8_t u[3] = {1, 2, 3};
	uint64_t off;
	blob_append_tensor(bw, MIL_FP16, h, 5, &off);
	blob_append_unpacked(bw, MIL_UINT4, u, 3, &off);
	blob_writer_close(bw, NULL);
	char *f;
	if (read_file(path, FS_MAX_MODEL, &f, n) != 0)
		BUG("%s", errmsg());
	free(path);
	return (uint8_t *)f;
}

static void expect_reject(const uint8_t *buf, size_t n, const char *why, const char *want)
{
	blob_reader *r = NULL;
	int rc = blob_reader_open_mem(buf, n, "bad.bin", &r);
	CHECKF(rc == -1, "%s: accepted", why);
	if (rc == 0) {
		blob_reader_close(r);
		return;
	}
	const char *m = errmsg();
	CHECKF(strstr(m, "'bad.bin'") && strstr(m, want) && !strchr(m, '\n'),
	       "%s: message \"%s\" lacks \"%s\"", why, m, want);
}

static void test_reader_rejects(void)
{
	size_t n;
	uint8_t *good = valid_file(&n);
	CHECK_EQ_INT(n, 258);
	uint8_t *b = xmalloc(n + 64);
	blob_reader *r = NULL;
	CHECK(blob_reader_open_mem(good, n, "good.bin", &r) == 0);
	blob_reader_close(r);

#define MUTATE(why, want, stmt) \
	do { memcpy(b, good, n); size_t len = n; stmt; expect_reject(b, len, why, want); } while (0)
	MUTATE("version 3", "version 3", put32(b + 4, 3));
	MUTATE("version 1", "version 1", put32(b + 4, 1));
	MUTATE("bad sentinel", "offset 192: bad sentinel", put32(b + 192, 0xDEADBEEE));
	MUTATE("data offset", "data offset 129, expected 128", put64(b + 64 + 16, 129));
	MUTATE("offset past EOF", "offset 320 runs past the end", put32(b, 3));
	MUTATE("size past EOF", "run past the end", put64(b + 192 + 8, 1000));
	MUTATE("huge size", "run past the end", put64(b + 64 + 8, UINT64_MAX));
	MUTATE("padding 8", "8 or more", put64(b + 192 + 24, 8));
	MUTATE("huge padding", "8 or more", put64(b + 192 + 24, UINT64_MAX));
	MUTATE("padding not whole", "whole number", put64(b + 192 + 24, 2));
	MUTATE("padding on fp16", "byte-sized", put64(b + 64 + 24, 1));
	MUTATE("odd fp16 size", "whole number of elements", put64(b + 64 + 8, 9));
	MUTATE("unknown dtype", "unknown data type", put32(b + 64 + 4, 99));
	MUTATE("dtype 0", "unknown data type", put32(b + 64 + 4, 0));
	MUTATE("truncated header", "truncated header", len = 10);
	MUTATE("empty", "truncated header", len = 0);
	MUTATE("truncated data", "run past the end", len = 257);
	MUTATE("truncated metadata", "offset 192 runs past the end", len = 200);
	MUTATE("trailing byte", "1 bytes after", (b[n] = 0, len = n + 1));
	MUTATE("count too small", "after the end of the last of 1", put32(b, 1));
	MUTATE("count zero", "after the end of the last of 0", put32(b, 0));
	MUTATE("count huge", "runs past the end", put32(b, UINT32_MAX));
#undef MUTATE
	free(b);
	free(good);

	CHECK(blob_reader_open("no/such/weight.bin", &r) == -1);
	CHECK(strstr(errmsg(), "no/such/weight.bin") != NULL);
	CHECK(blob_reader_open(g_dir, &r) == -1);
	CHECK(strstr(errmsg(), "not a regular file") != NULL);
}

/* ------------------------------------------------------------------ */
/* Reference files written by coremltools                              */

static void test_reference_weight_files(void)
{
	const char *shared = test_shared();
	if (!shared)
		SKIP("no shared reference material");
	char *pattern = xasprintf("%s/reference/*/packages/*.mlpackage/Data/com.apple.CoreML/weights/weight.bin", shared);
	glob_t g;
	int found = glob(pattern, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
	free(pattern);
	CHECK(found > 0);
	for (int i = 0; i < found; i++) {
		const char *p = g.gl_pathv[i];
		blob_reader *r = NULL;
		CHECKF(blob_reader_open(p, &r) == 0, "%s", errmsg());
		if (!r)
			continue;
		CHECK(blob_reader_count(r) > 0);
		uint64_t expect = 64;
		for (uint32_t k = 0; k < blob_reader_count(r); k++) {
			const blob_info *b = blob_reader_info(r, k);
			CHECK_EQ_INT(b->meta_offset, expect);
			CHECK(b->dtype == BLOB_FP16 || b->dtype == BLOB_UINT6);
			/* Re-packing the unpacked indices gives the same bytes. */
			if (b->dtype == BLOB_UINT6) {
				uint8_t *v = xmalloc(b->n_elements + 1), *p6 = xmalloc(b->nbytes + 1);
				blob_unpack_bits(blob_reader_data(r, b), b->n_elements, 6, v);
				blob_pack_bits(v, b->n_elements, 6, p6);
				CHECK(memcmp(p6, blob_reader_data(r, b), b->nbytes) == 0);
				free(v), free(p6);
			}
			expect = (b->data_offset + b->nbytes + 63) / 64 * 64;
		}
		blob_reader_close(r);
	}
	if (found)
		globfree(&g);
}

int main(void)
{
	snprintf(g_dir, sizeof g_dir, "%s/anemake-test-blob-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(g_dir))
		die("cannot create a scratch directory:");
	RUN(test_pack_known_vectors);
	RUN(test_pack_random_all_widths);
	RUN(test_element_count);
	RUN(test_exact_layout);
	RUN(test_roundtrip_every_dtype);
	RUN(test_streamed_equals_whole);
	RUN(test_header_only_file);
	RUN(test_writer_on_stream);
	RUN(test_writer_rejects_bad_calls);
	RUN(test_full_disk);
	RUN(test_reader_rejects);
	RUN(test_reference_weight_files);
	rm_rf(g_dir);
	return test_finish();
}
