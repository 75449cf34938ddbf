/* test_safetensors.c: safetensors reading, conversion and refusal of bad files.
 *
 * Small checkpoints are written into a temporary directory by a writer in
 * this file (the format is simple enough that an independent writer is a
 * useful cross-check of the reader). Values are checked bit-exact for fp32
 * and against hand-worked round-to-nearest-even results for fp16; every bad
 * file must fail with the expected one-line message. The real stories260K
 * checkpoint (from ../shared) checks names, shapes and that its bf16 copy is
 * exactly the fp32 weights rounded to nearest even.
 */
#include "base/fp16.h"
#include "base/fsutil.h"
#include "checkpoint/safetensors.h"
#include "test.h"
#include "base/util.h"

#include <stdint.h>
#include <unistd.h>

static char g_tmp[256];

/* ------------------------------------------------------------------ */
/* A tiny writer                                                       */

typedef struct wt {
	const char *name;
	const char *dtype;
	int rank;
	uint64_t shape[4];
	const void *data;
	size_t nbytes;
} wt;

static char *tmp_path(const char *name)
{
	return path_join(g_tmp, name);
}

/* Header length (LE u64) + header + data, written verbatim. */
static void write_raw(const char *path, const char *header, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	ASSERT(f);
	uint64_t len = strlen(header);
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(len >> (8 * i));
	fwrite(le, 1, 8, f);
	fwrite(header, 1, (size_t)len, f);
	if (n)
		fwrite(data, 1, n, f);
	fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	ASSERT(f);
	fwrite(data, 1, n, f);
	fclose(f);
}

/* A well-formed file: tensors packed in order, header padded to 8 bytes. */
static void write_st(const char *path, const wt *t, int n)
{
	char hdr[8192];
	size_t h = (size_t)snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"format\":\"pt\"}");
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		h += (size_t)snprintf(hdr + h, sizeof hdr - h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
		                      t[i].name, t[i].dtype);
		for (int d = 0; d < t[i].rank; d++)
			h += (size_t)snprintf(hdr + h, sizeof hdr - h, "%s%llu", d ? "," : "",
			                      (unsigned long long)t[i].shape[d]);
		h += (size_t)snprintf(hdr + h, sizeof hdr - h, "],\"data_offsets\":[%zu,%zu]}", off,
		                      off + t[i].nbytes);
		off += t[i].nbytes;
	}
	h += (size_t)snprintf(hdr + h, sizeof hdr - h, "}");
	while (h % 8)
		hdr[h++] = ' ';
	hdr[h] = 0;
	uint8_t *data = xmalloc(off + 1);
	off = 0;
	for (int i = 0; i < n; i++) {
		memcpy(data + off, t[i].data, t[i].nbytes);
		off += t[i].nbytes;
	}
	write_raw(path, hdr, data, off);
	free(data);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */

static int same_bits(float a, float b)
{
	return memcmp(&a, &b, 4) == 0;
}

/* A file holding t alone, written as `file` and opened into m: t's tensor,
 * or NULL. The caller closes m. */
static const st_tensor *open_single(st_model *m, const wt *t, const char *file)
{
	char *p = tmp_path(file);
	write_st(p, t, 1);
	CHECKF(st_open(m, p) == 0, "%s", errmsg());
	free(p);
	return st_get(m, t->name);
}

/* a's n values read as f32 are want32 bit for bit; read as fp16 they are
 * want16, `want_clamped` of them clamped to the fp16 range. */
static void check_reads(const st_tensor *a, const float *want32, const uint16_t *want16, size_t n,
                        size_t want_clamped)
{
	float f[16];
	uint16_t h[16];
	size_t clamped = 99;
	ASSERT(n <= 16);
	CHECK(st_read_f32(a, f) == 0);
	for (size_t i = 0; i < n; i++)
		CHECKF(same_bits(f[i], want32[i]), "f32[%zu] %g, want %g", i, f[i], want32[i]);
	CHECK(st_read_fp16(a, h, &clamped) == 0);
	for (size_t i = 0; i < n; i++)
		CHECKF(h[i] == want16[i], "fp16[%zu] 0x%04x, want 0x%04x", i, h[i], want16[i]);
	CHECK_EQ_INT(clamped, want_clamped);
}

static void test_f32_values(void)
{
	const float v[10] = {1.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 0x1p-24f, 0x1p-25f,
	                     0x1.8p-24f, 65504.0f, 65520.0f, -1e30f, 1e38f};
	const uint16_t want[10] = {0x3c00, 0x3c00, 0x3c02, 0x0001, 0x0000,
	                           0x0002, 0x7bff, 0x7bff, 0xfbff, 0x7bff};
	wt t = {"a", "F32", 2, {2, 5}, v, sizeof v};
	st_model m;
	const st_tensor *a = open_single(&m, &t, "f32.safetensors");
	CHECK(a && a->dtype == ST_F32 && a->numel == 10 && a->rank == 2 && a->shape[1] == 5);
	if (a) {
		float f[10];
		uint16_t h[10];
		size_t clamped = 99;
		check_reads(a, v, want, 10, 3);
		/* second row alone: the last five values, two of them clamped */
		CHECK(st_read_rows_fp16(a, 1, 1, h, &clamped) == 0);
		CHECK(memcmp(h, want + 5, 5 * sizeof *h) == 0);
		CHECK_EQ_INT(clamped, 3);
		CHECK(st_read_rows_f32(a, 1, 1, f) == 0 && same_bits(f[0], v[5]));
		CHECK(st_read_rows_f32(a, 1, 2, f) != 0);
		CHECKF(strstr(errmsg(), "rows [1,3) out of range (2 rows)"), "%s", errmsg());
	}
	st_close(&m);
}

static void test_f16_values(void)
{
	/* 1, smallest subnormal, max, -max, -0, ~1/3: every finite half is exact */
	const uint16_t v[6] = {0x3c00, 0x0001, 0x7bff, 0xfbff, 0x8000, 0x3555};
	float f[6];
	for (int i = 0; i < 6; i++)
		f[i] = fp16_to_f32(v[i]);
	wt t = {"h", "F16", 1, {6}, v, sizeof v};
	st_model m;
	const st_tensor *a = open_single(&m, &t, "f16.safetensors");
	if (a)
		check_reads(a, f, v, 6, 0);
	st_close(&m);
}

/* NaN and infinities are refused by every read that meets one, with the
 * counts of the whole tensor; rows without any still read. */
static void test_nonfinite_refused(void)
{
	const float v[6] = {1, 2, 3, NAN, INFINITY, -INFINITY};
	const uint16_t h[4] = {0x3c00, 0x7e00, 0xfc00, 0x7c00};   /* 1, NaN, -inf, +inf */
	const uint16_t b[4] = {0x3f80, 0x3f80, 0x7fc0, 0xff80};   /* 1, 1, NaN, -inf */
	wt t[3] = {{"f", "F32", 2, {2, 3}, v, sizeof v}, {"h", "F16", 1, {4}, h, sizeof h},
	           {"b", "BF16", 2, {2, 2}, b, sizeof b}};
	const char *want[3] = {"has 1 NaN and 2 infinite values (of 6)", "has 1 NaN and 2 infinite values (of 4)",
	                       "has 1 NaN and 1 infinite values (of 4)"};
	for (int i = 0; i < 3; i++) {
		st_model m;
		char file[64];
		snprintf(file, sizeof file, "nonfinite%d.safetensors", i);
		const st_tensor *a = open_single(&m, &t[i], file);
		float f[6];
		uint16_t o[6];
		size_t clamped;
		CHECK(a && st_read_f32(a, f) != 0);
		CHECKF(strstr(errmsg(), want[i]) && strstr(errmsg(), "finite weights only"), "%s", errmsg());
		CHECK(a && st_read_fp16(a, o, &clamped) != 0 && strstr(errmsg(), want[i]));
		CHECKF(a && st_read_rows_f32(a, 0, 1, f) == 0, "%s", errmsg()); /* every first row is finite */
		CHECK(a && st_read_rows_fp16(a, 1, 1, o, &clamped) != 0);
		st_close(&m);
	}
}

static void test_bf16_values(void)
{
	/* 1, 2^-24, 2^-25 (tie -> 0), 1.5*2^-24 (tie -> 2), 99840 (overflow),
	 * 1+2^-7, -2^-14 (smallest normal half) */
	const uint16_t v[7] = {0x3f80, 0x3380, 0x3300, 0x33c0, 0x47c3, 0x3f81, 0xb880};
	const uint16_t want[7] = {0x3c00, 0x0001, 0x0000, 0x0002, 0x7bff, 0x3c08, 0x8400};
	float f[7];
	for (int i = 0; i < 7; i++) {
		uint32_t bits = (uint32_t)v[i] << 16;
		memcpy(&f[i], &bits, 4);
	}
	wt t = {"b", "BF16", 1, {7}, v, sizeof v};
	st_model m;
	const st_tensor *a = open_single(&m, &t, "bf16.safetensors");
	if (a)
		check_reads(a, f, want, 7, 1);
	st_close(&m);
}

/* Every finite bf16 pattern reads as fp16 exactly as the general rounding
 * converts it (the reader rebiases normal halves directly), and the clamped
 * count is that of the patterns beyond fp16. */
static void test_bf16_every_pattern(void)
{
	uint16_t *v = xmalloc(65536 * 2), *got = xmalloc(65536 * 2);
	size_t n = 0, want_clamped = 0, clamped = 0, bad = 0;
	for (uint32_t b = 0; b < 65536; b++) {
		if ((b & 0x7f80) != 0x7f80)
			v[n++] = (uint16_t)b;
	}
	wt t = {"b", "BF16", 1, {(uint64_t)n}, v, n * 2};
	st_model m;
	const st_tensor *a = open_single(&m, &t, "bf16all.safetensors");
	CHECKF(a && st_read_fp16(a, got, &clamped) == 0, "%s", errmsg());
	for (size_t i = 0; a && i < n; i++) {
		int of;
		uint16_t want = f32_to_fp16(bf16_to_f32(v[i]), &of);
		want_clamped += (size_t)of;
		bad += got[i] != want;
	}
	CHECKF(bad == 0, "%zu of %zu patterns differ", bad, n);
	CHECKF(clamped == want_clamped, "clamped %zu, want %zu", clamped, want_clamped);
	st_close(&m);
	free(v);
	free(got);
}

/* Other dtypes open (they are legitimate buffers) but do not convert. */
static void test_other_dtypes(void)
{
	const int64_t ids[4] = {0, 1, 2, 3};
	const float w[2] = {1, 2};
	wt t[2] = {{"model.rotary.position_ids", "I64", 2, {1, 4}, ids, sizeof ids},
	           {"model.norm.weight", "F32", 1, {2}, w, sizeof w}};
	char *p = tmp_path("i64.safetensors");
	write_st(p, t, 2);
	st_model m;
	CHECKF(st_open(&m, p) == 0, "%s", errmsg());
	const st_tensor *a = st_find(&m, "model.rotary.position_ids");
	CHECK(a && a->dtype == ST_I64 && a->nbytes == 32);
	float f[4];
	CHECK(a && st_read_f32(a, f) != 0);
	CHECKF(strstr(errmsg(), "has dtype I64; anemake converts only F32, F16 and BF16"), "%s",
	       errmsg());
	CHECK(st_find(&m, "nope") == NULL);
	CHECK(st_get(&m, "nope") == NULL);
	char want[512];
	snprintf(want, sizeof want, "tensor 'nope' not found in '%s'", p);
	CHECK_STR(errmsg(), want);
	st_close(&m);
	st_close(&m); /* idempotent */
	st_close(NULL);
	free(p);

	/* a header with metadata and no tensors is a valid, empty checkpoint */
	p = tmp_path("notensors.safetensors");
	write_raw(p, "{\"__metadata__\":{}}     ", NULL, 0);
	CHECKF(st_open(&m, p) == 0, "%s", errmsg());
	CHECK_EQ_INT(st_count(&m), 0);
	CHECK(st_find(&m, "a") == NULL);
	st_close(&m);
	free(p);
}

/* ------------------------------------------------------------------ */
/* Directories and shards                                              */

static const float g_vals[6] = {1, 2, 3, 4, 5, 6};

static char *make_dir(const char *name)
{
	char *d = tmp_path(name);
	ASSERT(mkdir_p(d) == 0);
	return d;
}

static void put(const char *dir, const char *file, const wt *t, int n)
{
	char *p = path_join(dir, file);
	write_st(p, t, n);
	free(p);
}

static void put_text(const char *dir, const char *file, const char *text)
{
	char *p = path_join(dir, file);
	write_bytes(p, text, strlen(text));
	free(p);
}

static void make_shards(const char *d)
{
	wt s1[2] = {{"model.embed_tokens.weight", "F32", 2, {2, 2}, g_vals, 16},
	            {"model.norm.weight", "F32", 1, {2}, g_vals + 4, 8}};
	wt s2[1] = {{"lm_head.weight", "F32", 2, {1, 2}, g_vals, 8}};
	put(d, "model-00001-of-00002.safetensors", s1, 2);
	put(d, "model-00002-of-00002.safetensors", s2, 1);
}

static const char *g_index =
	"{\"metadata\":{\"total_size\":32},\"weight_map\":{"
	"\"lm_head.weight\":\"model-00002-of-00002.safetensors\","
	"\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
	"\"model.norm.weight\":\"model-00001-of-00002.safetensors\"}}";

static void test_sharded_index(void)
{
	char *d = make_dir("sharded");
	make_shards(d);
	put_text(d, "model.safetensors.index.json", g_index);
	st_model m;
	CHECKF(st_open(&m, d) == 0, "%s", errmsg());
	CHECK_EQ_INT(st_count(&m), 3);
	if (st_count(&m) == 3) {
		/* iteration is by name */
		CHECK_STR(st_at(&m, 0)->name, "lm_head.weight");
		CHECK_STR(st_at(&m, 1)->name, "model.embed_tokens.weight");
		CHECK_STR(st_at(&m, 2)->name, "model.norm.weight");
		CHECK(strstr(st_at(&m, 0)->file, "model-00002-of-00002.safetensors") != NULL);
		float f[2];
		CHECK(st_read_f32(st_get(&m, "model.norm.weight"), f) == 0 && f[0] == 5 && f[1] == 6);
	}
	st_close(&m);
	free(d);
}

static void test_unindexed_dir(void)
{
	char *d = make_dir("unindexed");
	make_shards(d);
	st_model m;
	CHECKF(st_open(&m, d) == 0, "%s", errmsg());
	CHECK_EQ_INT(st_count(&m), 3);
	CHECK_EQ_INT(m.nfiles, 2);
	st_close(&m);
	free(d);
}

/* ------------------------------------------------------------------ */
/* Bad files: each must fail with its one-line message                 */

static void expect_fail(const char *path, const char *want)
{
	st_model m;
	int rc = st_open(&m, path);
	CHECKF(rc != 0, "%s: opened, expected failure '%s'", path, want);
	if (rc == 0) {
		st_close(&m);
		return;
	}
	CHECKF(strstr(errmsg(), want) != NULL, "message \"%s\" lacks \"%s\"", errmsg(), want);
	CHECKF(strchr(errmsg(), '\n') == NULL, "message spans lines: %s", errmsg());
	CHECK(m.ntensors == 0 && m.tensors == NULL); /* left empty */
}

/* A file holding `header` and `ndata` zero bytes of data. */
static char *bad_file(const char *name, const char *header, size_t ndata)
{
	char *p = tmp_path(name);
	uint8_t *zero = xcalloc(ndata + 1, 1);
	write_raw(p, header, zero, ndata);
	free(zero);
	return p;
}

static void expect_header(const char *name, const char *header, size_t ndata, const char *want)
{
	char *p = bad_file(name, header, ndata);
	expect_fail(p, want);
	free(p);
}

static void test_bad_framing(void)
{
	char *p = tmp_path("short.safetensors");
	write_bytes(p, "\x10\0\0\0\0", 5);
	expect_fail(p, "file too short for a safetensors header (5 bytes)");
	free(p);

	p = tmp_path("pastend.safetensors");
	uint8_t b[20] = {0xe8, 0x03}; /* header length 1000 */
	write_bytes(p, b, sizeof b);
	expect_fail(p, "header length 1000 past end of file (20 bytes)");
	free(p);

	p = tmp_path("huge.safetensors");
	uint8_t big[16] = {0, 0, 0, 0, 0, 0, 0, 0x10}; /* 2^60 */
	write_bytes(p, big, sizeof big);
	expect_fail(p, "exceeds the 100 MB limit");
	free(p);

	p = tmp_path("truncated.safetensors");
	write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "\0\0\0\0", 4);
	expect_fail(p, "tensor 'a': data_offsets [0,16] past end of data (4 bytes)");
	free(p);

	expect_header("notjson.safetensors", "{\"a\": [1,2", 0, "header is not valid JSON");
	expect_header("array.safetensors", "[1,2]", 0, "header is not a JSON object");
	expect_header("trailing.safetensors", "{} x", 0, "trailing bytes");
	expect_header("meta.safetensors", "{\"__metadata__\":{\"format\":1}}", 0,
	              "__metadata__ 'format' is not a string");
}

static void test_bad_offsets(void)
{
	char *p = bad_file("offsets.safetensors",
	                   "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[497],"
	                   "\"data_offsets\":[10,2000]}}", 1024);
	char want[512];
	snprintf(want, sizeof want,
	         "%s: tensor 'model.norm.weight': data_offsets [10,2000] past end of data (1024 bytes)",
	         p);
	st_model m;
	CHECK(st_open(&m, p) != 0);
	CHECK_STR(errmsg(), want);
	free(p);

	expect_header("backwards.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
	              "tensor 'a': data_offsets [8,4] end before begin");
	expect_header("size.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
	              "tensor 'a': shape [3] of F32 needs 12 bytes but data_offsets hold 8");
	expect_header("offs3.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
	              "data_offsets must be [begin, end]");
	expect_header("overlap.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
	              "tensors 'a' and 'b' overlap (bytes [0,8) and [4,12))");
}

static void test_bad_shapes(void)
{
	expect_header("overflow.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
	              "\"data_offsets\":[0,0]}}", 0,
	              "tensor 'a': element count of the shape overflows 64 bits");
	expect_header("byteoverflow.safetensors",
	              "{\"a\":{\"dtype\":\"F64\",\"shape\":[1073741824,1073741824],"
	              "\"data_offsets\":[0,0]}}", 0, "overflows 64 bits of bytes");
	expect_header("negative.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
	              "shape entry 0 is not a non-negative integer");
	expect_header("fraction.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0,
	              "shape entry 0 is not a non-negative integer");
	expect_header("rank9.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
	              "\"data_offsets\":[0,4]}}", 4, "shape has more than 8 dimensions");
	expect_header("dtype.safetensors",
	              "{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	              "tensor 'a': unknown dtype 'F17'");
	expect_header("nodtype.safetensors", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	              "tensor 'a': missing 'dtype'");
	expect_header("ctrl.safetensors",
	              "{\"a\\nb\":{\"dtype\":\"X\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
	              "tensor 'a?b': unknown dtype 'X'");
	expect_header("dup.safetensors",
	              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
	              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
	              "duplicate tensor 'a'");
}

static void test_prequantized(void)
{
	expect_header("fp8.safetensors",
	              "{\"model.layers.0.mlp.up_proj.weight\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],"
	              "\"data_offsets\":[0,4]}}", 4,
	              "tensor 'model.layers.0.mlp.up_proj.weight' (F8_E4M3) holds FP8/FP6/FP4 values: "
	              "the checkpoint is pre-quantized; anemake needs the original fp16/bf16/fp32 "
	              "weights");
	expect_header("int8.safetensors",
	              "{\"model.layers.0.mlp.up_proj.weight\":{\"dtype\":\"I8\",\"shape\":[4],"
	              "\"data_offsets\":[0,4]}}", 4, "(I8) holds 8-bit integer weights: the checkpoint "
	              "is pre-quantized");
	expect_header("gptq.safetensors",
	              "{\"model.layers.0.self_attn.q_proj.qweight\":{\"dtype\":\"I32\",\"shape\":[1],"
	              "\"data_offsets\":[0,4]}}", 4, "is a GPTQ/AWQ/FP8 quantization tensor: the "
	              "checkpoint is pre-quantized");
	expect_header("awq.safetensors",
	              "{\"model.layers.0.self_attn.q_proj.scales\":{\"dtype\":\"F16\",\"shape\":[2],"
	              "\"data_offsets\":[0,4]}}", 4, "pre-quantized");
	expect_header("fp8scale.safetensors",
	              "{\"model.layers.0.mlp.up_proj.weight_scale_inv\":{\"dtype\":\"F32\","
	              "\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "pre-quantized");
}

static void test_bad_shards(void)
{
	char *d = make_dir("missingfile");
	make_shards(d);
	put_text(d, "model.safetensors.index.json",
	         "{\"weight_map\":{\"a\":\"model-00003-of-00003.safetensors\"}}");
	expect_fail(d, "model-00003-of-00003.safetensors");
	expect_fail(d, "cannot open");
	free(d);

	d = make_dir("missingtensor");
	make_shards(d);
	put_text(d, "model.safetensors.index.json",
	         "{\"weight_map\":{\"model.ghost.weight\":\"model-00001-of-00002.safetensors\"}}");
	expect_fail(d, "lists tensor 'model.ghost.weight' in 'model-00001-of-00002.safetensors', "
	               "which has no such tensor");
	free(d);

	d = make_dir("wrongshard");
	make_shards(d);
	put_text(d, "model.safetensors.index.json",
	         "{\"weight_map\":{\"lm_head.weight\":\"model-00001-of-00002.safetensors\","
	         "\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}");
	expect_fail(d, "lists tensor 'lm_head.weight' in 'model-00001-of-00002.safetensors' but it "
	               "is in");
	free(d);

	d = make_dir("twice");
	make_shards(d);
	put_text(d, "model.safetensors.index.json",
	         "{\"weight_map\":{\"lm_head.weight\":\"model-00002-of-00002.safetensors\","
	         "\"lm_head.weight\":\"model-00002-of-00002.safetensors\"}}");
	expect_fail(d, "tensor 'lm_head.weight' is listed twice");
	free(d);

	d = make_dir("escape");
	make_shards(d);
	put_text(d, "model.safetensors.index.json",
	         "{\"weight_map\":{\"lm_head.weight\":\"../f32.safetensors\"}}");
	expect_fail(d, "is not a file inside the model directory");
	free(d);

	/* found by fuzz_shardindex: a newline in a shard name broke the one-line message */
	d = make_dir("newline");
	make_shards(d);
	put_text(d, "model.safetensors.index.json",
	         "{\"weight_map\":{\"lm_head.weight\":\"model-0000\\n2-of-00002.safetensors\"}}");
	expect_fail(d, "shard 'model-0000?2-of-00002.safetensors' is not a file inside the model directory");
	free(d);

	d = make_dir("crossdup");
	wt s1 = {"model.norm.weight", "F32", 1, {2}, g_vals, 8};
	put(d, "a.safetensors", &s1, 1);
	put(d, "b.safetensors", &s1, 1);
	expect_fail(d, "tensor 'model.norm.weight' is in both");
	free(d);

	d = make_dir("empty");
	expect_fail(d, "no *.safetensors files in");
	free(d);
}

/* ------------------------------------------------------------------ */
/* The real model                                                      */

static void check_stories(const st_model *m, st_dtype dt)
{
	CHECK_EQ_INT(st_count(m), 47);
	const st_tensor *e = st_get(m, "model.embed_tokens.weight");
	CHECK(e && e->dtype == dt && e->rank == 2 && e->shape[0] == 512 && e->shape[1] == 64);
	const st_tensor *k = st_get(m, "model.layers.4.self_attn.k_proj.weight");
	CHECK(k && k->rank == 2 && k->shape[0] == 32 && k->shape[1] == 64);
	const st_tensor *d = st_get(m, "model.layers.0.mlp.down_proj.weight");
	CHECK(d && d->shape[0] == 64 && d->shape[1] == 172);
	const st_tensor *n = st_get(m, "model.norm.weight");
	CHECK(n && n->rank == 1 && n->shape[0] == 64);
	CHECK(st_find(m, "lm_head.weight") == NULL); /* tied */
	for (size_t i = 1; i < st_count(m); i++)
		CHECK(strcmp(st_at(m, i - 1)->name, st_at(m, i)->name) < 0);
}

/* bf16 tensors must equal the fp32 ones rounded to nearest even, and rows
 * read piecewise must equal the whole-tensor read. */
static void compare_stories(const st_model *f32, const st_model *b16)
{
	for (size_t i = 0; i < st_count(f32); i++) {
		const st_tensor *a = st_at(f32, i), *b = st_find(b16, a->name);
		CHECKF(b && b->numel == a->numel, "%s", a->name);
		if (!b || b->numel != a->numel)
			continue;
		float *fa = xmalloc(a->numel * 4), *fb = xmalloc(a->numel * 4);
		uint16_t *h = xmalloc(a->numel * 2), *hr = xmalloc(a->numel * 2);
		CHECK(st_read_f32(a, fa) == 0 && st_read_f32(b, fb) == 0);
		size_t bad = 0, c1 = 0, c2 = 0;
		for (uint64_t j = 0; j < a->numel; j++)
			bad += bf16_to_f32(f32_to_bf16(fa[j])) != fb[j];
		CHECKF(bad == 0, "%s: %zu values differ from RNE(fp32)", a->name, bad);
		CHECK(st_read_fp16(a, h, &c1) == 0);
		uint64_t rows = st_rows(a), re = st_row_elems(a);
		for (uint64_t r = 0; r < rows; r += 3) {
			uint64_t nr = rows - r < 3 ? rows - r : 3;
			size_t c = 0;
			CHECK(st_read_rows_fp16(a, r, nr, hr + r * re, &c) == 0);
			c2 += c;
		}
		CHECKF(memcmp(h, hr, a->numel * 2) == 0 && c1 == 0 && c2 == 0, "%s rows", a->name);
		free(fa), free(fb), free(h), free(hr);
	}
}

static void test_stories260k(void)
{
	const char *sh = test_shared();
	if (!sh)
		SKIP("../shared not found");
	char *d32 = xasprintf("%s/models/stories260K/fp32", sh);
	char *d16 = xasprintf("%s/models/stories260K/bf16/model.safetensors", sh);
	st_model a, b;
	CHECKF(st_open(&a, d32) == 0, "%s", errmsg());
	CHECKF(st_open(&b, d16) == 0, "%s", errmsg());
	check_stories(&a, ST_F32);
	check_stories(&b, ST_BF16);
	if (st_count(&a) == 47 && st_count(&b) == 47)
		compare_stories(&a, &b);
	st_close(&a);
	st_close(&b);
	free(d32);
	free(d16);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(g_tmp, sizeof g_tmp, "%s/anemake-st-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(g_tmp)) {
		printf("FAIL setup: cannot create %s\n", g_tmp);
		return 1;
	}
	RUN(test_f32_values);
	RUN(test_f16_values);
	RUN(test_nonfinite_refused);
	RUN(test_bf16_values);
	RUN(test_bf16_every_pattern);
	RUN(test_other_dtypes);
	RUN(test_sharded_index);
	RUN(test_unindexed_dir);
	RUN(test_bad_framing);
	RUN(test_bad_offsets);
	RUN(test_bad_shapes);
	RUN(test_prequantized);
	RUN(test_bad_shards);
	RUN(test_stories260k);
	rm_rf(g_tmp);
	return test_finish();
}
