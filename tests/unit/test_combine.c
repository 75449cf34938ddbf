/* test_combine.c: combine_packages() on real stage output, proven by running it.
 *
 * A random tiny Llama (2 layers, context 64, batch 8) is converted by $BIN/ffn
 * and $BIN/prefill with --lut 6 (2 chunks) and without LUT (1 chunk), then
 * each chunk is combined. Checked: the combined weight.bin is at most 5%
 * larger than the FFN's alone and holds no two equal blobs, all of them
 * referenced; functions, default, states and metadata; infer and prefill of
 * the combined package give bit-identical outputs and state to the sources'
 * main; embed + lmhead + combined chunks reproduce the fp32 reference
 * (100% top-1 over 8 steps); two combines are byte-identical; errors for
 * mismatched states, missing sources, duplicate names. With ../shared,
 * ANEMLL's own FFN + prefill combine to the description and metadata of
 * ANEMLL's combined package, with a weight.bin no larger than the FFN's.
 */
#include "base/fsutil.h"
#include "base/hash.h"
#include "checkpoint/hfmodel.h"
#include "coreml/blob.h"
#include "coreml/combine.h"
#include "coreml/mldump.h"
#include "coreml/mlmodel.h"
#include "verify/runtime.h"
#include "verify/smoke.h"
#include "test.h"
#include "base/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char g_tmp[] = "/tmp/anemake-combine-XXXXXX";

/* The chunks under test: ffn + prefill sources and the combined package. */
typedef struct chunk {
	const char *label;
	char *ffn, *prefill, *combined;
	int ok; /* combined successfully */
} chunk;

static chunk g_chunks[3];
#define NCHUNKS 3

/* ffn + prefill of fixture `model` into dir with extra flags. */
static int convert(const char *model, const char *dir, const char *flags)
{
	const char *bin = getenv("BIN");
	int rc = 0;
	for (int s = 0; s < 2; s++)
		rc |= test_sh("%s/%s --model %s/%s --output %s/%s --context-length 64 --batch-size 8 -q %s >/dev/null",
			      bin, s ? "prefill" : "ffn", g_tmp, model, g_tmp, dir, flags);
	return rc;
}

static char *pkg(const char *dir, const char *name) { return xasprintf("%s/%s/%s.mlpackage", g_tmp, dir, name); }

static uint64_t weight_size(const char *package)
{
	char *p = xasprintf("%s/Data/com.apple.CoreML/weights/weight.bin", package);
	struct stat st;
	uint64_t n = stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
	free(p);
	return n;
}

static int combine_pair(const char *ffn, const char *prefill, const char *out, combine_stats *st)
{
	combine_source src[2] = {{ffn, NULL, "infer"}, {prefill, NULL, "prefill"}};
	return combine_packages(out, src, 2, st);
}

/* ------------------------------------------------------------------ */

static void test_sizes(void)
{
	for (int i = 0; i < NCHUNKS; i++) {
		chunk *c = &g_chunks[i];
		combine_stats st;
		c->ok = combine_pair(c->ffn, c->prefill, c->combined, &st) == 0;
		CHECKF(c->ok, "%s: %s", c->label, errmsg());
		if (!c->ok)
			continue;
		uint64_t f = weight_size(c->ffn), p = weight_size(c->prefill), w = weight_size(c->combined);
		printf("# %s: FFN weight.bin %llu B, prefill %llu B, combined %llu B (saved %llu B of %llu B)\n", c->label,
		       (unsigned long long)f, (unsigned long long)p, (unsigned long long)w,
		       (unsigned long long)(f + p - w), (unsigned long long)(f + p));
		CHECKF(w <= f + f / 20, "%s: combined %llu B > FFN %llu B + 5%%", c->label, (unsigned long long)w,
		       (unsigned long long)f);
		CHECK(st.combined_bytes == w && st.source_bytes == f + p);
	}
}

/* mil_value_fn: count blob references per offset in refs (indexed like the reader's blobs). */
typedef struct refs_ctx {
	const blob_reader *r;
	int *used;
	int bad;
} refs_ctx;

static int count_ref(mil_value *v, void *ctx)
{
	refs_ctx *c = ctx;
	if (v->kind != MIL_VAL_BLOB)
		return 0;
	for (uint32_t i = 0; i < blob_reader_count(c->r); i++)
		if (blob_reader_info(c->r, i)->meta_offset == v->offset) {
			c->used[i]++;
			return 0;
		}
	c->bad++;
	return 0;
}

static void check_blobs(const chunk *c)
{
	char *path = xasprintf("%s/Data/com.apple.CoreML/weights/weight.bin", c->combined);
	blob_reader *r;
	if (blob_reader_open(path, &r) != 0) {
		CHECKF(0, "%s", errmsg());
		free(path);
		return;
	}
	uint32_t n = blob_reader_count(r);
	uint8_t(*d)[32] = xcalloc(n + 1, 32);
	for (uint32_t i = 0; i < n; i++) {
		const blob_info *b = blob_reader_info(r, i);
		sha256_ctx *h = sha256_new();
		uint32_t head[2] = {(uint32_t)b->dtype, b->padding_bits};
		sha256_update(h, head, sizeof head);
		sha256_update(h, blob_reader_data(r, b), (size_t)b->nbytes);
		sha256_final(h, d[i]);
		for (uint32_t j = 0; j < i; j++)
			CHECKF(memcmp(d[i], d[j], 32) != 0, "%s: blobs %u and %u are equal", c->label, j, i);
	}
	ml_model *m = test_package_model(c->combined);
	refs_ctx rc = {r, xcalloc(n + 1, sizeof(int)), 0};
	for (size_t f = 0; m && f < m->program->nfunctions; f++)
		mil_function_foreach_value(m->program->functions[f], count_ref, &rc);
	CHECKF(rc.bad == 0, "%s: %d blob references point at no blob", c->label, rc.bad);
	for (uint32_t i = 0; i < n; i++)
		CHECKF(rc.used[i] > 0, "%s: blob %u is never referenced", c->label, i);
	printf("# %s: %u distinct blobs\n", c->label, n);
	ml_model_free(m);
	free(rc.used), free(d), free(path);
	blob_reader_close(r);
}

static void test_blobs_distinct_and_used(void)
{
	for (int i = 0; i < NCHUNKS; i++)
		if (g_chunks[i].ok)
			check_blobs(&g_chunks[i]);
}

static int same_features(const ml_features *a, const ml_features *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const ml_array_type *x = ml_feature_array(a->v[i]), *y = ml_feature_array(b->v[i]);
		if (strcmp(a->v[i]->name, b->v[i]->name) != 0 || !x != !y || (x && (x->dtype != y->dtype || x->shape.n != y->shape.n)))
			return 0;
		if (x && x->shape.n && memcmp(x->shape.dims, y->shape.dims, x->shape.n * sizeof *x->shape.dims) != 0)
			return 0;
	}
	return 1;
}

static void check_description(const chunk *c)
{
	ml_model *m = test_package_model(c->combined), *f = test_package_model(c->ffn), *p = test_package_model(c->prefill);
	if (!m || !f || !p)
		goto out;
	const ml_description *d = m->desc;
	CHECK_EQ_INT(m->spec_version, 9);
	CHECK(d->top.input.n == 0 && d->top.output.n == 0 && d->top.state.n == 0);
	CHECK(d->nfunctions == 2 && streq(d->functions[0]->name, "infer") && streq(d->functions[1]->name, "prefill"));
	CHECK_STR(d->default_function, "infer");
	const ml_function_desc *src[2] = {&f->desc->top, &p->desc->top};
	for (size_t i = 0; i < 2 && d->nfunctions == 2; i++) {
		CHECKF(same_features(&d->functions[i]->input, &src[i]->input) &&
			       same_features(&d->functions[i]->output, &src[i]->output) &&
			       same_features(&d->functions[i]->state, &src[i]->state),
		       "%s: function %s differs from its source", c->label, d->functions[i]->name);
		CHECK(d->functions[i]->state.n == 1 && streq(d->functions[i]->state.v[0]->name, "model_model_kv_cache_0"));
	}
	CHECK(m->program->nfunctions == 2);
	for (size_t i = 0; i < m->program->nfunctions; i++)
		CHECK_STR(m->program->functions[i]->opset, "CoreML8");
	CHECK_STR(d->metadata->short_description, "Anemll Model: Multifunction FFN+Prefill");
	CHECK_STR(ml_model_user_meta(m, "com.anemll.batch_size"), "8");
	CHECK_STR(ml_model_user_meta(m, "com.anemll.context_length"), "64");
	CHECK(ml_model_user_meta(m, "com.anemll.functions") == NULL);
	CHECK_STR(d->metadata->author, f->desc->metadata->author);
out:
	ml_model_free(m), ml_model_free(f), ml_model_free(p);
}

static void test_description(void)
{
	for (int i = 0; i < NCHUNKS; i++)
		if (g_chunks[i].ok)
			check_description(&g_chunks[i]);
}

/* ------------------------------------------------------------------ */
/* Running: combined functions vs the sources' main                    */

static uint32_t g_rng = 12345;
static float rnd(void)
{
	g_rng = g_rng * 1664525u + 1013904223u;
	return (float)(g_rng >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* Inputs of `fn` for tokens at positions base..base+S-1, as chat.py passes them. */
static int make_inputs(rt_model *m, const char *fn, int base, rt_tensor **out)
{
	const rt_io *in, *o;
	int nin, nout, n = 0;
	if (rt_function_io(m, fn, &in, &nin, &o, &nout) != 0)
		return -1;
	rt_tensor *t = xcalloc((size_t)nin + 1, sizeof *t);
	for (int i = 0; i < nin; i++) {
		if (in[i].is_state)
			continue;
		rt_tensor *x = &t[n++];
		if (rt_tensor_alloc(x, in[i].name, in[i].dtype, in[i].rank, in[i].shape) != 0)
			return -1;
		size_t numel = rt_tensor_numel(x), cols = (size_t)in[i].shape[in[i].rank - 1];
		for (size_t e = 0; e < numel; e++) {
			float v = streq(in[i].name, "hidden_states") ? rnd()
				  : streq(in[i].name, "position_ids") ? (float)(base + (int)e)
				  : streq(in[i].name, "current_pos") ? (float)base
				  : (int)(e % cols) <= base + (int)(e / cols) ? 0.0f : -INFINITY;
			rt_tensor_set(x, e, v);
		}
	}
	*out = t;
	return n;
}

static int same_tensor(const rt_tensor *a, const rt_tensor *b)
{
	return a->dtype == b->dtype && a->rank == b->rank && memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
	       memcmp(a->data, b->data, rt_tensor_numel(a) * rt_dtype_size(a->dtype)) == 0;
}

/* Run fn_a of a and "main" of b on the same inputs; outputs and states must match bit for bit. */
static void run_both(rt_model *a, const char *fn_a, rt_state *sa, rt_model *b, rt_state *sb, int base, const char *what)
{
	rt_tensor *in, *oa = NULL, *ob = NULL;
	int nin = make_inputs(b, "main", base, &in), na = 0, nb = 0;
	CHECKF(nin > 0, "%s: %s", what, errmsg());
	if (nin <= 0)
		return;
	int ok = rt_run(a, fn_a, in, nin, sa, &oa, &na) == 0 && rt_run(b, "main", in, nin, sb, &ob, &nb) == 0;
	CHECKF(ok, "%s: %s", what, errmsg());
	CHECK(!ok || na == nb);
	for (int i = 0; ok && i < na && i < nb; i++)
		CHECKF(same_tensor(&oa[i], &ob[i]), "%s: output %s differs", what, oa[i].name);
	rt_tensor ta = {0}, tb = {0};
	CHECK(rt_state_read(sa, "model_model_kv_cache_0", &ta) == 0 && rt_state_read(sb, "model_model_kv_cache_0", &tb) == 0);
	CHECKF(ta.data && tb.data && same_tensor(&ta, &tb), "%s: state differs", what);
	rt_tensor_release(&ta), rt_tensor_release(&tb);
	for (int i = 0; i < nin; i++)
		rt_tensor_release(&in[i]);
	free(in);
	rt_tensors_free(oa, na), rt_tensors_free(ob, nb);
}

static void check_runtime(const chunk *c)
{
	rt_model *m = NULL, *f = NULL, *p = NULL;
	if (rt_model_open(c->combined, &m) || rt_model_open(c->ffn, &f) || rt_model_open(c->prefill, &p)) {
		CHECKF(0, "%s", errmsg());
		goto out;
	}
	CHECK_STR(rt_default_function(m), "infer");
	rt_state *sm = rt_state_new(m, "prefill"), *ss = rt_state_new(p, "main");
	char what[128];
	snprintf(what, sizeof what, "%s prefill", c->label);
	run_both(m, "prefill", sm, p, ss, 0, what);
	for (int pos = 8; pos < 11; pos++) {
		snprintf(what, sizeof what, "%s infer at %d", c->label, pos);
		run_both(m, "infer", sm, f, ss, pos, what);
	}
	rt_state_free(sm), rt_state_free(ss);
out:
	rt_model_free(m), rt_model_free(f), rt_model_free(p);
}

static void test_runtime_bit_identical(void)
{
	for (int i = 0; i < NCHUNKS; i++)
		if (g_chunks[i].ok)
			check_runtime(&g_chunks[i]);
}

/* ------------------------------------------------------------------ */
/* The whole model: embed + combined chunks + LM head vs the reference */

static void check_smoke(const char *dir, const char *label, int strict)
{
	static const int32_t prompt[11] = {1, 7, 19, 33, 48, 52, 66, 81, 90, 104, 117}; /* > one prefill batch */
	hf_model hf;
	smoke_parts p;
	char *model = xasprintf("%s/fx", g_tmp);
	if (hf_model_open(&hf, model) != 0 || smoke_parts_open(&p, dir, NULL, -1, -1, -1) != 0) {
		CHECKF(0, "%s", errmsg());
		free(model);
		return;
	}
	CHECK(streq(p.infer_fn[0], "infer") && streq(p.prefill_fn[0], "prefill") && p.infer[0] == p.prefill[0]);
	ref_options ro = {.context = 64, .threads = 1};
	ref_model *ref = ref_open(&hf, &ro);
	smoke_run run;
	float *want = xmalloc(sizeof(float) * 8 * (size_t)p.vocab);
	int ok = ref && smoke_generate(&p, prompt, 11, 8, 1, &run) == 0 && smoke_reference(ref, &run, p.vocab, want) == 0;
	CHECKF(ok, "%s: %s", label, errmsg());
	if (ok) {
		smoke_metrics mt;
		smoke_compare(want, run.logits, 8, p.vocab, &mt);
		printf("# %s: %d chunk(s), top-1 agreement %d/8, KL max %.3g, max |logit diff| %.4f\n", label, p.nchunks,
		       mt.agree, mt.kl_max, mt.max_abs_diff);
		CHECKF(mt.agree == 8, "%s: agreement %d/8", label, mt.agree);
		CHECKF(!strict || (mt.kl_max < 1e-3 && mt.max_abs_diff < 0.1), "%s: KL max %.3g, max diff %.3g", label,
		       mt.kl_max, mt.max_abs_diff);
		smoke_run_release(&run);
	}
	free(want), free(model);
	ref_close(ref);
	smoke_parts_close(&p);
	hf_model_close(&hf);
}

static void test_smoke_reference(void)
{
	const char *bin = getenv("BIN");
	for (int lut = 0; lut < 2; lut++) {
		char *dir = xasprintf("%s/smoke%s", g_tmp, lut ? "6" : "");
		CHECK_EQ_INT(test_sh("%s/embed --model %s/fx --output %s --batch-size 8 --context-length 64 -q >/dev/null && "
				     "%s/lmhead --model %s/fx --output %s --context-length 64 -q >/dev/null",
				     bin, g_tmp, dir, bin, g_tmp, dir),
			     0);
		for (int i = 0; i < NCHUNKS; i++) {
			const chunk *c = &g_chunks[i];
			if (!c->ok || (strstr(c->label, "lut6") != NULL) != lut)
				continue;
			char *base = path_basename(c->combined), *to = path_join(dir, base);
			CHECK_EQ_INT(test_sh("cp -r %s %s", c->combined, to), 0);
			free(base), free(to);
		}
		check_smoke(dir, lut ? "lut6 combined chunks" : "fp16 combined chunk", !lut);
		free(dir);
	}
}

/* ------------------------------------------------------------------ */

static int same_file(const char *a, const char *b)
{
	char *x, *y;
	size_t nx, ny;
	int same = read_file(a, FS_MAX_MODEL, &x, &nx) == 0 && read_file(b, FS_MAX_MODEL, &y, &ny) == 0 && nx == ny && memcmp(x, y, nx) == 0;
	free(x), free(y);
	return same;
}

static void test_deterministic(void)
{
	const chunk *c = &g_chunks[0];
	char *again = xasprintf("%s/again.mlpackage", g_tmp);
	CHECK(combine_pair(c->ffn, c->prefill, again, NULL) == 0);
	static const char *const files[] = {"Manifest.json", "Data/com.apple.CoreML/model.mlmodel",
					    "Data/com.apple.CoreML/weights/weight.bin"};
	for (int i = 0; i < 3; i++) {
		char *a = path_join(c->combined, files[i]), *b = path_join(again, files[i]);
		CHECKF(same_file(a, b), "%s differs between two combines", files[i]);
		free(a), free(b);
	}
	free(again);
}

static void test_errors(void)
{
	char *out = xasprintf("%s/bad.mlpackage", g_tmp), *kv1 = pkg("kv1", "llama_prefill_lut6_chunk_01of02");
	CHECK(combine_pair(g_chunks[0].ffn, kv1, out, NULL) != 0);
	CHECKF(strstr(errmsg(), "state 'model_model_kv_cache_0' is float16[4,2,64,16] in ") &&
		       strstr(errmsg(), "but float16[4,1,64,16] in "),
	       "message: %s", errmsg());
	char *none = xasprintf("%s/nowhere.mlpackage", g_tmp);
	CHECK(combine_pair(g_chunks[0].ffn, none, out, NULL) != 0);
	CHECKF(strstr(errmsg(), none) != NULL, "message: %s", errmsg());
	combine_source twice[2] = {{g_chunks[0].ffn, NULL, "infer"}, {g_chunks[0].prefill, NULL, "infer"}};
	CHECK(combine_packages(out, twice, 2, NULL) != 0 && strstr(errmsg(), "'infer' given twice"));
	combine_source nofn[1] = {{g_chunks[0].ffn, "decode", "infer"}};
	CHECK(combine_packages(out, nofn, 1, NULL) != 0 && strstr(errmsg(), "has no function 'decode'"));
	CHECK(!path_exists(out));
	free(out), free(kv1), free(none);
}

/* ------------------------------------------------------------------ */
/* ANEMLL's own packages                                               */

/* The listing lines before the first "program function" line. */
static char *description_lines(const char *text)
{
	const char *end = strstr(text, "\nprogram function");
	return xstrndup(text, end ? (size_t)(end - text + 1) : strlen(text));
}

static void test_anemll_reference(void)
{
	const char *sh_dir = test_shared();
	if (!sh_dir)
		SKIP("../shared not found");
	char *dir = xasprintf("%s/reference/anemll-llama-tiny", sh_dir);
	char *ffn = xasprintf("%s/packages/llama_FFN_lut6_chunk_01of01.mlpackage", dir);
	char *pre = xasprintf("%s/packages/llama_prefill_lut6_chunk_01of01.mlpackage", dir);
	char *lst = xasprintf("%s/listings/llama_FFN_PF_lut6_chunk_01of01.txt", dir);
	char *out = xasprintf("%s/ref_FFN_PF.mlpackage", g_tmp), *want = NULL, *text = NULL;
	size_t nwant, ntext;
	CHECK(combine_pair(ffn, pre, out, NULL) == 0 && read_file(lst, FS_MAX_MODEL, &want, &nwant) == 0);
	ml_model *m = test_package_model(out);
	FILE *f = open_memstream(&text, &ntext);
	if (m && want && f && mldump_listing(f, m) == 0 && fclose(f) == 0) {
		char *a = description_lines(text), *b = description_lines(want);
		CHECKF(streq(a, b), "description differs:\n%s\n--- ANEMLL's:\n%s", a, b);
		free(a), free(b);
	}
	char *theirs = xasprintf("%s/packages/llama_FFN_PF_lut6_chunk_01of01.mlpackage", dir);
	uint64_t wf = weight_size(ffn), wc = weight_size(out);
	printf("# ANEMLL reference: FFN weight.bin %llu B, ANEMLL's combined %llu B, ours %llu B\n", (unsigned long long)wf,
	       (unsigned long long)weight_size(theirs), (unsigned long long)wc);
	free(theirs);
	CHECKF(wc > 0 && wc <= wf, "combined %llu B > FFN %llu B", (unsigned long long)wc, (unsigned long long)wf);
	ml_model_free(m);
	free(text), free(want), free(dir), free(ffn), free(pre), free(lst), free(out);
}

/* ANEMLL's split-rotate _rot file from Gemma 3's 4-function chunk: the
 * rotate functions, the first one the default; sources whose descriptions
 * carry no "(A)" title give "Multifunction Combined" (as the monolithic and
 * rotate parts do in ANEMLL), the weights stay shared. */
static void test_rotate_pair_reference(void)
{
	const char *sh_dir = test_shared();
	if (!sh_dir)
		SKIP("../shared not found");
	char *src = xasprintf("%s/reference/anemll-gemma3-tiny/packages/gemma3_FFN_PF_lut6_chunk_02of02.mlpackage", sh_dir);
	char *out = xasprintf("%s/ref_rot.mlpackage", g_tmp);
	combine_source pair[2] = {{src, "infer_rotate", "infer_rotate"}, {src, "prefill_rotate", "prefill_rotate"}};
	CHECK(combine_packages(out, pair, 2, NULL) == 0);
	ml_model *m = test_package_model(out);
	if (m) {
		const ml_description *d = m->desc;
		CHECK(d->nfunctions == 2 && streq(d->functions[0]->name, "infer_rotate") &&
		      streq(d->functions[1]->name, "prefill_rotate"));
		CHECK_STR(d->default_function, "infer_rotate");
		CHECK_STR(d->metadata->short_description, "Anemll Model: Multifunction Combined");
		CHECK(d->nfunctions == 2 && d->functions[0]->state.n == 2);
	}
	uint64_t ws = weight_size(src), wo = weight_size(out);
	CHECKF(wo > 0 && wo <= ws, "rotate pair %llu B > source %llu B", (unsigned long long)wo, (unsigned long long)ws);
	ml_model_free(m);
	free(src), free(out);
}

/* ------------------------------------------------------------------ */

static void setup(void)
{
	const char *tb = getenv("TESTBIN");
	int rc = test_sh("%s/mkfixture --arch llama --layers 2 --seed 9 --out %s/fx >/dev/null", tb, g_tmp);
	rc |= test_sh("%s/mkfixture --arch llama --layers 2 --seed 9 --kv-heads 1 --out %s/fx_kv1 >/dev/null", tb, g_tmp);
	rc |= convert("fx", "lut6", "--lut 6 --chunk 2");
	rc |= convert("fx", "plain", "--chunk 1");
	rc |= convert("fx_kv1", "kv1", "--lut 6 --chunk 2");
	char *out = xasprintf("%s/out", g_tmp);
	if (rc || mkdir_p(out) != 0)
		printf("FAIL setup: converting the fixtures failed\n");
	free(out);
	static const char *const labels[NCHUNKS] = {"lut6 chunk 1/2", "lut6 chunk 2/2", "fp16 chunk 1/1"};
	for (int i = 0; i < NCHUNKS; i++) {
		const char *dir = i < 2 ? "lut6" : "plain";
		char *suffix = i < 2 ? xasprintf("_lut6_chunk_%02dof02", i + 1) : xstrdup("_chunk_01of01");
		char *f = xasprintf("llama_FFN%s", suffix), *p = xasprintf("llama_prefill%s", suffix),
		     *c = xasprintf("llama_FFN_PF%s", suffix);
		g_chunks[i] = (chunk){labels[i], pkg(dir, f), pkg(dir, p), xasprintf("%s/out/%s.mlpackage", g_tmp, c), 0};
		free(suffix), free(f), free(p), free(c);
	}
}

int main(void)
{
	if (!getenv("BIN") || !getenv("TESTBIN") || !mkdtemp(g_tmp)) {
		printf("skip test_combine: BIN/TESTBIN not set (run through tests/run.sh)\n");
		return 0;
	}
	setup();
	RUN(test_sizes);
	RUN(test_blobs_distinct_and_used);
	RUN(test_description);
	RUN(test_runtime_bit_identical);
	RUN(test_smoke_reference);
	RUN(test_deterministic);
	RUN(test_errors);
	RUN(test_anemll_reference);
	RUN(test_rotate_pair_reference);
	for (int i = 0; i < NCHUNKS; i++)
		free(g_chunks[i].ffn), free(g_chunks[i].prefill), free(g_chunks[i].combined);
	rm_rf(g_tmp);
	return test_finish();
}
