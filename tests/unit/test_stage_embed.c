/* test_stage_embed.c: what the embed stage writes, read back through our own
 * reader: the table blob equals the checkpoint tensor rounded to fp16, a
 * palettized table dequantizes to exactly lut[group][index], and the model
 * re-encodes to the same bytes; with --fp16-scale the table is the checkpoint
 * times alpha rounded once, never palettized; stage_fp16_scale's table.
 * Runs $BIN/embed (set by tests/run.sh). */
#include "base/fp16.h"
#include "base/fsutil.h"
#include "checkpoint/hfmodel.h"
#include "convert/lut.h"
#include "convert/stage.h"
#include "coreml/blob.h"
#include "coreml/mlmodel.h"
#include "coreml/mlpackage.h"
#include "test.h"
#include "base/util.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char g_tmp[] = "/tmp/anemake-embed-XXXXXX";

static int run_embed(const char *model, const char *extra)
{
	const char *bin = getenv("BIN");
	char *cmd = xasprintf("%s/embed --model %s --output %s --quiet %s >/dev/null", bin, model, g_tmp, extra);
	int rc = system(cmd);
	free(cmd);
	return rc;
}

/* The value bound to `param` of the op producing var, or of a const op. */
static const mil_value *const_value(const ml_model *m, const char *var, const char *param)
{
	mil_block *b = mil_function_block(mil_program_find_function(m->program, "main"));
	mil_op *op = mil_block_find_producer(b, var, NULL);
	if (!op)
		return NULL;
	if (streq(op->type, "const"))
		return mil_op_attr(op, "val");
	const mil_arg *a = mil_op_input(op, param);
	return a && a->n == 1 ? a->v[0].value : NULL;
}

static uint16_t *source_fp16(const char *model_dir, size_t *n)
{
	hf_model hf;
	if (hf_model_open(&hf, model_dir) != 0)
		return NULL;
	*n = (size_t)hf.embed->numel;
	uint16_t *t = xmalloc(*n * 2);
	if (st_read_fp16(hf.embed, t, NULL) != 0)
		free(t), t = NULL;
	hf_model_close(&hf);
	return t;
}

static ml_model *open_pkg(const char *name, mlpackage *pkg)
{
	char *path = path_join(g_tmp, name);
	ml_model *m = NULL;
	int ok = mlpackage_open(path, pkg) == 0 && ml_model_decode(pkg->model, pkg->model_size, &m) == 0;
	CHECKF(ok, "cannot open %s: %s", path, errmsg());
	free(path);
	if (!ok)
		return NULL;
	pb_buf again;
	pb_init(&again);
	ml_model_encode(m, &again);
	CHECKF(again.len == pkg->model_size && memcmp(again.data, pkg->model, again.len) == 0,
	       "%s does not re-encode to the same bytes", name);
	pb_release(&again);
	return m;
}

static void test_table_is_source_fp16(void)
{
	const char *model = "tests/models/stories260K";
	CHECK_EQ_INT(run_embed(model, ""), 0);
	mlpackage pkg;
	ml_model *m = open_pkg("llama_embeddings.mlpackage", &pkg);
	if (!m)
		return;
	size_t n;
	uint16_t *want = source_fp16(model, &n);
	const mil_value *v = const_value(m, "embed_tokens_weight", "val");
	CHECK(v && v->kind == MIL_VAL_BLOB);
	blob_dtype dt;
	const void *data;
	size_t nbytes;
	unsigned pad;
	if (want && v && blob_reader_get(pkg.weights, v->offset, &dt, &data, &nbytes, &pad) == 0) {
		CHECK_EQ_INT(dt, BLOB_FP16);
		CHECK_EQ_INT(nbytes, n * 2);
		CHECK(nbytes == n * 2 && memcmp(data, want, nbytes) == 0);
	} else {
		CHECKF(0, "table blob not found: %s", errmsg());
	}
	free(want);
	ml_model_free(m);
	mlpackage_close(&pkg);
}

static const void *blob_of(mlpackage *pkg, const mil_value *v, size_t *nbytes)
{
	blob_dtype dt;
	const void *data = NULL;
	unsigned pad;
	if (!v || v->kind != MIL_VAL_BLOB || blob_reader_get(pkg->weights, v->offset, &dt, &data, nbytes, &pad) != 0)
		return NULL;
	return data;
}

static void test_lut_table_dequantizes_exactly(void)
{
	const char *model = "tests/models/stories260K";
	CHECK_EQ_INT(run_embed(model, "--lut 6,16 --lut-cache none"), 0);
	mlpackage pkg;
	ml_model *m = open_pkg("llama_embeddings_lut6.mlpackage", &pkg);
	if (!m)
		return;
	size_t ni, nl, n = 512 * 64;
	const uint8_t *packed = blob_of(&pkg, const_value(m, "embed_tokens_weight_palettized", "indices"), &ni);
	const uint16_t *lut = blob_of(&pkg, const_value(m, "embed_tokens_weight_palettized", "lut"), &nl);
	CHECK(packed && lut);
	if (packed && lut) {
		CHECK_EQ_INT(ni, n * 6 / 8);
		CHECK_EQ_INT(nl, 512 / 16 * 64 * 2);
		uint8_t *idx = xmalloc(n);
		blob_unpack_bits(packed, n, 6, idx);
		uint16_t *deq = xmalloc(n * 2);
		CHECK(lut_dequantize(lut, idx, 6, 512, 64, 16, deq) == 0);
		int exact = 1;
		for (size_t i = 0; i < n; i++)
			exact &= deq[i] == lut[(i / 64 / 16) * 64 + idx[i]];
		CHECK(exact);
		/* and it is close to the source */
		size_t ns;
		uint16_t *src = source_fp16(model, &ns);
		double err = 0, ref = 0;
		for (size_t i = 0; src && i < n; i++) {
			double d = fp16_to_f32(deq[i]) - fp16_to_f32(src[i]);
			err += d * d, ref += (double)fp16_to_f32(src[i]) * fp16_to_f32(src[i]);
		}
		CHECKF(src && sqrt(err / ref) < 0.05, "relative RMS error %.4f", sqrt(err / ref));
		free(src), free(idx), free(deq);
	}
	ml_model_free(m);
	mlpackage_close(&pkg);
}

static void test_fixture_architectures(void)
{
	const char *tb = getenv("TESTBIN");
	static const char *arch[] = {"llama", "qwen2", "qwen3", "gemma3_text", "gemma3"};
	static const char *pkgname[] = {"llama_embeddings.mlpackage", "qwen25_embeddings.mlpackage",
					"qwen_embeddings.mlpackage", "gemma3_embeddings.mlpackage",
					"gemma3_embeddings.mlpackage"};
	for (int i = 0; i < 5; i++) {
		char *dir = xasprintf("%s/fx_%s", g_tmp, arch[i]);
		char *cmd = xasprintf("%s/mkfixture --arch %s --out %s --seed 3 >/dev/null", tb, arch[i], dir);
		CHECK_EQ_INT(system(cmd), 0);
		CHECK_EQ_INT(run_embed(dir, ""), 0);
		mlpackage pkg;
		ml_model *m = open_pkg(pkgname[i], &pkg);
		size_t n, nb;
		uint16_t *want = source_fp16(dir, &n);
		const void *got = m ? blob_of(&pkg, const_value(m, "embed_tokens_weight", "val"), &nb) : NULL;
		CHECKF(want && got && nb == n * 2 && memcmp(got, want, nb) == 0, "%s table differs", arch[i]);
		free(want), free(cmd), free(dir);
		if (m)
			ml_model_free(m), mlpackage_close(&pkg);
	}
}

/* --fp16-scale 0.5 --lut 6: fp16(w * 0.5) for every element, dense. */
static void test_fp16_scaled_table(void)
{
	const char *tb = getenv("TESTBIN");
	char *dir = xasprintf("%s/fx_scaled", g_tmp);
	char *cmd = xasprintf("%s/mkfixture --arch gemma3_text --out %s --seed 9 >/dev/null", tb, dir);
	CHECK_EQ_INT(system(cmd), 0);
	CHECK_EQ_INT(run_embed(dir, "--fp16-scale 0.5 --lut 6 2>/dev/null"), 0);
	mlpackage pkg;
	ml_model *m = open_pkg("gemma3_embeddings_lut6.mlpackage", &pkg);
	hf_model hf;
	if (m && hf_model_open(&hf, dir) == 0) {
		size_t n = (size_t)hf.embed->numel, nb = 0;
		float *f = xmalloc(n * sizeof *f);
		uint16_t *want = xmalloc(n * 2);
		CHECK(st_read_f32(hf.embed, f) == 0);
		for (size_t i = 0; i < n; i++)
			want[i] = f32_to_fp16(f[i] * 0.5f, NULL);
		const void *got = blob_of(&pkg, const_value(m, "embed_tokens_weight", "val"), &nb);
		CHECKF(got && nb == n * 2 && memcmp(got, want, nb) == 0, "scaled table differs");
		free(f), free(want);
		hf_model_close(&hf);
	} else {
		CHECKF(0, "scaled table: %s", errmsg());
	}
	if (m)
		ml_model_free(m), mlpackage_close(&pkg);
	free(cmd), free(dir);
}

static void test_fp16_scale_table(void)
{
	double a;
	CHECK(stage_fp16_scale("google/gemma-3-4b-it-qat-q4_0-unquantized", "auto", &a) == 0 && a == 0.1875);
	CHECK(stage_fp16_scale("/models/Gemma-3-4B-it", "auto", &a) == 0 && a == 0.5);
	CHECK(stage_fp16_scale("x/gemma-3-270m-it", "auto", &a) == 0 && a == 0.48);
	CHECK(stage_fp16_scale("google/gemma-3-1b-it", "auto", &a) == 0 && a == 0.82);
	CHECK(stage_fp16_scale("google/gemma-3n-e4b-it", "auto", &a) == 0 && a == 0.5);
	CHECK(stage_fp16_scale("google/gemma-3-12b-it", "auto", &a) == -1 && strstr(errmsg(), "give a number"));
	CHECK(stage_fp16_scale("m", "1", &a) == 0 && a == 1.0);
	CHECK(stage_fp16_scale("m", "0.25", &a) == 0 && a == 0.25);
	static const char *bad[] = {"0", "2", "abc", "-0.5", "1.0001", "nan", ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECKF(stage_fp16_scale("m", bad[i], &a) == -1 && strstr(errmsg(), "--fp16-scale"), "'%s' accepted", bad[i]);
}

int main(void)
{
	if (!getenv("BIN") || !getenv("TESTBIN") || !mkdtemp(g_tmp)) {
		printf("skip test_stage_embed: BIN/TESTBIN not set (run through tests/run.sh)\n");
		return 0;
	}
	RUN(test_table_is_source_fp16);
	RUN(test_lut_table_dequantizes_exactly);
	RUN(test_fixture_architectures);
	RUN(test_fp16_scaled_table);
	RUN(test_fp16_scale_table);
	rm_rf(g_tmp);
	return test_finish();
}
