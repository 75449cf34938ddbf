/* test_weights.c: a tensor emitted through weights_emit_rows (read a block
 * of rows at a time) gives the very bytes and quality figures of
 * weights_emit over the whole tensor, dense, palettized in groups (the
 * rows asked for at once stay a block: the tensor is never held whole),
 * per tensor, from the LUT cache and with column weights; blob streaming
 * of unpacked indices equals blob_append_unpacked. */
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/weights.h"
#include "coreml/blob.h"
#include "coreml/mil.h"
#include "test.h"

#include <stdint.h>
#include <unistd.h>

static char g_tmp[] = "/tmp/anemake-weights-XXXXXX";

/* The tensor, served a block of rows at a time; the largest block asked for. */
typedef struct source {
	const uint16_t *data;
	uint64_t rows, cols, next, most;
	int out_of_order;
} source;

static int read_rows(void *ctx, uint64_t row0, uint64_t n, uint16_t *dst)
{
	source *s = ctx;
	s->out_of_order |= row0 != s->next || row0 + n > s->rows;
	s->next = row0 + n;
	s->most = n > s->most ? n : s->most;
	memcpy(dst, s->data + row0 * s->cols, (size_t)(n * s->cols) * 2);
	return 0;
}

typedef struct emitted {
	char *bytes;   /* weight.bin */
	size_t n;
	double rel_rms, snr_db;
	size_t cached, palettized;
	uint64_t most; /* rows asked for at once (streamed) */
} emitted;

/* Emit data [rows, cols] as "w" with lut, whole (src NULL) or streamed. */
static emitted emit(const uint16_t *data, int64_t rows, int64_t cols, const lut_spec *lut, const char *cache,
		    const char *file, int streamed)
{
	emitted e = {0};
	char *path = path_join(g_tmp, file);
	blob_writer *bw = blob_writer_open(path);
	ASSERT(bw);
	weights_ctx w;
	weights_init(&w, bw, lut, 2);
	w.cache_dir = cache;
	mil_arena *a = mil_arena_new();
	mil_program *p = mil_program_new(a);
	mil_block *b = mil_function_block(mil_program_add_function(p, "main", MIL_OPSET_IOS18));
	int64_t shape[2] = {rows, cols};
	source s = {data, (uint64_t)rows, (uint64_t)cols, 0, 0, 0};
	const char *v = streamed ? weights_emit_rows(&w, b, "w", "model.w", read_rows, &s, 2, shape)
				 : weights_emit(&w, b, "w", "model.w", data, 2, shape);
	CHECKF(v != NULL, "%s", errmsg());
	CHECK(!s.out_of_order && (!streamed || s.next == (uint64_t)rows));
	CHECK(blob_writer_close(bw, NULL) == 0);
	CHECK(read_file(path, (size_t)1 << 30, &e.bytes, &e.n) == 0);
	if (w.nquality) {
		e.rel_rms = w.quality[0].rel_rms;
		e.snr_db = w.quality[0].snr_db;
	}
	e.cached = w.n_cached;
	e.palettized = w.n_palettized;
	e.most = s.most;
	weights_release(&w);
	mil_arena_free(a);
	free(path);
	return e;
}

static int same(const emitted *x, const emitted *y)
{
	return x->n == y->n && memcmp(x->bytes, y->bytes, x->n) == 0 && x->rel_rms == y->rel_rms &&
	       (x->snr_db == y->snr_db || (isinf(x->snr_db) && isinf(y->snr_db)));
}

/* 1040 x 4096 N(0, 0.02): three blocks of whole groups of 8 rows (512, 512, 16). */
#define ROWS 1040
#define COLS 4096

static uint16_t *tensor(void)
{
	uint16_t *t = xmalloc((size_t)ROWS * COLS * 2);
	uint64_t z = 12345;
	for (size_t i = 0; i < (size_t)ROWS * COLS; i++) {
		z = z * 6364136223846793005ull + 1442695040888963407ull;
		double u = ((double)(z >> 11) * 0x1p-53 + (double)((z >> 3) & 0xff) / 256.0) / 2 - 0.5;
		t[i] = f32_to_fp16((float)(0.08 * u), NULL);
	}
	return t;
}

static void test_palettized_rows_streamed(void)
{
	uint16_t *t = tensor();
	lut_spec lut = {4, 8, 0};
	emitted whole = emit(t, ROWS, COLS, &lut, NULL, "whole.bin", 0);
	emitted rows = emit(t, ROWS, COLS, &lut, NULL, "rows.bin", 1);
	CHECK(whole.palettized == 1 && rows.palettized == 1);
	CHECKF(same(&whole, &rows), "streamed palettization differs (rel_rms %.17g vs %.17g)", rows.rel_rms,
	       whole.rel_rms);
	/* never the whole tensor at once: a block of whole groups */
	CHECKF(rows.most < ROWS && rows.most % 8 == 0, "asked for %llu rows at once", (unsigned long long)rows.most);
	/* through the cache: computed, then every block from it */
	char *cache = path_join(g_tmp, "lutcache");
	emitted c1 = emit(t, ROWS, COLS, &lut, cache, "c1.bin", 1);
	emitted c2 = emit(t, ROWS, COLS, &lut, cache, "c2.bin", 1);
	CHECK(same(&whole, &c1) && same(&whole, &c2));
	CHECK(c1.cached == 0 && c2.cached == 1);
	/* a whole-tensor result cached beside the blocks reads back the same */
	emitted c3 = emit(t, ROWS, COLS, &lut, cache, "c3.bin", 0);
	emitted c4 = emit(t, ROWS, COLS, &lut, cache, "c4.bin", 0);
	CHECK(same(&whole, &c3) && same(&whole, &c4) && c4.cached == 1);
	emitted *all[] = {&whole, &rows, &c1, &c2, &c3, &c4};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		free(all[i]->bytes);
	free(cache);
	free(t);
}

/* Per-tensor tables need the tensor whole; dense tensors stream; both as whole. */
static void test_other_specs_same_bytes(void)
{
	uint16_t *t = tensor();
	lut_spec specs[3] = {{0, 0, 0}, {2, 0, 0}, {8, 4, 0}};
	for (int i = 0; i < 3; i++) {
		emitted whole = emit(t, ROWS / 4, COLS, &specs[i], NULL, "whole.bin", 0);
		emitted rows = emit(t, ROWS / 4, COLS, &specs[i], NULL, "rows.bin", 1);
		CHECKF(same(&whole, &rows), "spec %d,%d: streamed bytes differ", specs[i].bits, specs[i].group);
		free(whole.bytes);
		free(rows.bytes);
	}
	/* a group that does not divide the rows: the same refusal */
	lut_spec bad = {4, 16, 0};
	for (int streamed = 0; streamed < 2; streamed++) {
		FILE *f = tmpfile();
		blob_writer *bw = blob_writer_open_file(f, "x");
		weights_ctx w;
		weights_init(&w, bw, &bad, 1);
		mil_arena *a = mil_arena_new();
		mil_block *b = mil_function_block(mil_program_add_function(mil_program_new(a), "main", MIL_OPSET_IOS18));
		int64_t shape[2] = {ROWS / 4, COLS};
		source s = {t, ROWS / 4, COLS, 0, 0, 0};
		const char *v = streamed ? weights_emit_rows(&w, b, "w", "model.w", read_rows, &s, 2, shape)
					 : weights_emit(&w, b, "w", "model.w", t, 2, shape);
		CHECKF(!v && strstr(errmsg(), "--lut 4,16: model.w has 260 output channels; groups that divide it"), "%s",
		       errmsg());
		blob_writer_abort(bw);
		fclose(f);
		weights_release(&w);
		mil_arena_free(a);
	}
	free(t);
}

/* blob_begin_unpacked + blob_write_unpacked in pieces == blob_append_unpacked. */
static void test_blob_unpacked_pieces(void)
{
	static const mil_dtype types[] = {MIL_UINT1, MIL_UINT2, MIL_UINT3, MIL_UINT4, MIL_UINT6, MIL_UINT8};
	static const int bits[] = {1, 2, 3, 4, 6, 8};
	enum { N = 1000 }; /* pieces of 8, 16, ... and a ragged last one */
	uint8_t v[N];
	for (int ti = 0; ti < 6; ti++) {
		for (int i = 0; i < N; i++)
			v[i] = (uint8_t)((i * 37 + 11) % (1 << bits[ti]));
		char *pa = path_join(g_tmp, "a.bin"), *pb = path_join(g_tmp, "b.bin");
		blob_writer *a = blob_writer_open(pa), *b = blob_writer_open(pb);
		uint64_t oa, ob;
		CHECK(blob_append_unpacked(a, types[ti], v, N, &oa) == 0);
		CHECK(blob_begin_unpacked(b, types[ti], N, &ob) == 0);
		for (size_t i = 0, k = 8; i < N; i += k, k += 8)
			CHECK(blob_write_unpacked(b, types[ti], v + i, i + k > N ? N - i : k) == 0);
		CHECK(blob_end(b) == 0 && oa == ob);
		CHECK(blob_writer_close(a, NULL) == 0 && blob_writer_close(b, NULL) == 0);
		char *x, *y;
		size_t nx, ny;
		CHECK(read_file(pa, 1 << 20, &x, &nx) == 0 && read_file(pb, 1 << 20, &y, &ny) == 0);
		CHECKF(nx == ny && memcmp(x, y, nx) == 0, "uint%d: pieces differ", bits[ti]);
		free(x), free(y), free(pa), free(pb);
	}
	/* a value out of range fails the write and the blob */
	char *pc = path_join(g_tmp, "c.bin");
	blob_writer *c = blob_writer_open(pc);
	uint64_t oc;
	uint8_t bad[8] = {0, 1, 2, 3, 4, 5, 6, 16};
	CHECK(blob_begin_unpacked(c, MIL_UINT4, 8, &oc) == 0);
	CHECK(blob_write_unpacked(c, MIL_UINT4, bad, 8) != 0 && strstr(errmsg(), "element 7"));
	CHECK(blob_end(c) != 0);
	blob_writer_abort(c);
	free(pc);
}

int main(void)
{
	if (!mkdtemp(g_tmp)) {
		printf("FAIL setup: cannot create %s\n", g_tmp);
		return 1;
	}
	RUN(test_palettized_rows_streamed);
	RUN(test_other_specs_same_bytes);
	RUN(test_blob_unpacked_pieces);
	rm_rf(g_tmp);
	return test_finish();
}
