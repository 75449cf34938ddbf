/* test_smoke.c: converted parts reproduce the fp32 reference.
 *
 * For llama, qwen2 and qwen3 fixtures converted by the real stages ($BIN)
 * with 1, 2 and 3 chunks, a prompt longer than one prefill block plus 8
 * decoded tokens run through the CPU runtime as chat.py does must give the
 * reference's logits within fp16 tolerance; the chunk count must not change
 * the logits beyond fp16 noise; prefill + infer must match infer only. And
 * the real stories260K reproduces its known greedy output. */
#include "fsutil.h"
#include "hfmodel.h"
#include "smoke.h"
#include "test.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>

static char g_tmp[] = "/tmp/anemake-smoke-XXXXXX";
#define STEPS 8
#define BATCH 8

static int sh(const char *fmt, const char *a, const char *b, const char *c)
{
	char *cmd = xasprintf(fmt, a, b, c);
	int rc = system(cmd);
	free(cmd);
	return rc;
}

/* Convert model into out with `chunks` chunks; lut: "" or e.g. "6,4" for FFN and LM head. */
static int convert_lut(const char *model, const char *out, int chunks, const char *lut)
{
	const char *bin = getenv("BIN");
	char n[16];
	snprintf(n, sizeof n, "%d", chunks);
	char *lutflag = *lut ? xasprintf("--lut %s", lut) : xstrdup("");
	char *common = xasprintf("--context-length 64 --quiet %s >/dev/null", lutflag);
	char *fmt = xasprintf("%%s/embed --model %%s --output %%s --batch-size %d %s", BATCH, common);
	int rc = sh(fmt, bin, model, out);
	free(fmt);
	fmt = xasprintf("%%s/lmhead --model %%s --output %%s --context-length 64 --quiet %s%.1s >/dev/null",
			*lut ? "--lut " : "", lut);
	rc |= sh(fmt, bin, model, out);
	free(fmt);
	for (int s = 0; s < 2; s++) {
		fmt = xasprintf("%%s/%s --model %%s --output %%s --chunk %s --batch-size %d %s", s ? "prefill" : "ffn", n,
				BATCH, common);
		rc |= sh(fmt, bin, model, out);
		free(fmt);
	}
	free(common), free(lutflag);
	return rc;
}

static int convert(const char *model, const char *out, int chunks) { return convert_lut(model, out, chunks, ""); }

static float *generate(const char *dir, const int32_t *prompt, int n, int use_prefill, smoke_run *run, int *vocab)
{
	smoke_parts p;
	if (smoke_parts_open(&p, dir, NULL, -1, -1, -1) != 0) {
		CHECKF(0, "%s: %s", dir, errmsg());
		return NULL;
	}
	*vocab = p.vocab;
	int rc = smoke_generate(&p, prompt, n, STEPS, use_prefill, run);
	CHECKF(rc == 0, "%s: %s", dir, errmsg());
	smoke_parts_close(&p);
	return rc == 0 ? run->logits : NULL;
}

static double max_diff(const float *a, const float *b, size_t n)
{
	double m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)a[i] - (double)b[i]));
	return m;
}

static void check_arch(const char *arch)
{
	static const int32_t prompt[11] = {1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41}; /* > BATCH */
	char *model = xasprintf("%s/%s", g_tmp, arch);
	CHECK_EQ_INT(sh("%s/mkfixture --arch %s --out %s --layers 3 --seed 11 >/dev/null", getenv("TESTBIN"), arch, model), 0);
	hf_model hf;
	if (hf_model_open(&hf, model) != 0) {
		CHECKF(0, "%s", errmsg());
		free(model);
		return;
	}
	ref_options ro = {.context = 64, .threads = 1};
	ref_model *ref = ref_open(&hf, &ro);
	smoke_run runs[3];
	float *first = NULL;
	for (int c = 1; c <= 3; c++) {
		char *out = xasprintf("%s/%s_c%d", g_tmp, arch, c);
		CHECK_EQ_INT(convert(model, out, c), 0);
		int vocab;
		float *got = generate(out, prompt, 11, 1, &runs[c - 1], &vocab);
		if (got && ref) {
			float *want = xmalloc(sizeof(float) * STEPS * (size_t)vocab);
			CHECK(smoke_reference(ref, &runs[c - 1], vocab, want) == 0);
			smoke_metrics m;
			smoke_compare(want, got, STEPS, vocab, &m);
			CHECKF(m.agree == STEPS && m.kl_max < 1e-3 && m.max_abs_diff < 0.1,
			       "%s %d chunks vs reference: agree %d/%d, KL max %.3g, max diff %.3g", arch, c, m.agree,
			       STEPS, m.kl_max, m.max_abs_diff);
			printf("# %s %d chunk(s): agree %d/%d, KL max %.2g, max |diff| %.3g\n", arch, c, m.agree, STEPS,
			       m.kl_max, m.max_abs_diff);
			if (!first)
				first = got;
			else
				CHECKF(max_diff(first, got, STEPS * (size_t)vocab) < 0.05, "%s: %d chunks differ from 1 by %.3g",
				       arch, c, max_diff(first, got, STEPS * (size_t)vocab));
			free(want);
		}
		if (c == 2) {
			smoke_run infer_only;
			float *io = generate(out, prompt, 11, 0, &infer_only, &vocab);
			CHECKF(io && got && max_diff(io, got, STEPS * (size_t)vocab) < 0.05,
			       "%s: prefill+infer differs from infer only", arch);
			smoke_run_release(&infer_only);
		}
		free(out);
	}
	for (int c = 0; c < 3; c++)
		smoke_run_release(&runs[c]);
	ref_close(ref);
	hf_model_close(&hf);
	free(model);
}

static void test_llama(void) { check_arch("llama"); }
static void test_qwen2(void) { check_arch("qwen2"); }
static void test_qwen3(void) { check_arch("qwen3"); }

static void test_stories_known_output(void)
{
	static const int32_t want[49] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
					 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
					 328, 432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267};
	char *out = xasprintf("%s/stories", g_tmp);
	CHECK_EQ_INT(convert("tests/models/stories260K", out, 2), 0);
	smoke_parts p;
	if (smoke_parts_open(&p, out, NULL, -1, -1, -1) != 0) {
		CHECKF(0, "%s", errmsg());
		free(out);
		return;
	}
	smoke_run run;
	CHECK(smoke_generate(&p, want, 1, 48, 1, &run) == 0);
	CHECK(run.nsteps == 48 && memcmp(run.tokens, want, sizeof want) == 0);
	smoke_run_release(&run);
	smoke_parts_close(&p);
	free(out);
}

/* Greedy from BOS for 48 steps, palettized FFN (group 4: stories260K's 172
 * MLP channels are not divisible by 8) and LM head, against the reference. */
static void check_stories_lut(const char *lut, double min_agree)
{
	char *out = xasprintf("%s/stories_lut%s", g_tmp, lut);
	CHECK_EQ_INT(convert_lut("tests/models/stories260K", out, 1, lut), 0);
	hf_model hf;
	smoke_parts p;
	if (hf_model_open(&hf, "tests/models/stories260K") != 0 || smoke_parts_open(&p, out, NULL, -1, -1, -1) != 0) {
		CHECKF(0, "%s", errmsg());
		free(out);
		return;
	}
	smoke_run run;
	int32_t bos = 1;
	ref_options ro = {.context = 64, .threads = 1};
	ref_model *ref = ref_open(&hf, &ro);
	float *want = xmalloc(sizeof(float) * 48 * (size_t)p.vocab);
	CHECK(ref && smoke_generate(&p, &bos, 1, 48, 1, &run) == 0 && smoke_reference(ref, &run, p.vocab, want) == 0);
	smoke_metrics m;
	smoke_compare(want, run.logits, 48, p.vocab, &m);
	printf("# stories260K LUT %s: top-1 agreement %.1f%% (%d/48), KL mean %.4f max %.4f, max |logit diff| %.3f\n", lut,
	       100.0 * m.agree / 48, m.agree, m.kl_mean, m.kl_max, m.max_abs_diff);
	CHECKF(m.agree >= min_agree * 48, "LUT %s: agreement %d/48 below %.0f%%", lut, m.agree, 100 * min_agree);
	free(want);
	ref_close(ref);
	smoke_run_release(&run);
	smoke_parts_close(&p);
	hf_model_close(&hf);
	free(out);
}

static void test_stories_lut4(void) { check_stories_lut("4,4", 0.85); }
static void test_stories_lut6(void) { check_stories_lut("6,4", 0.90); }

/* ANEMLL's own packages for the tiny Llama (LUT6, multifunction FFN_PF) run
 * through our runtime give the logits of the source model computed with
 * ANEMLL's RoPE convention (rope_theta x factor). */
static void test_anemll_reference_packages(void)
{
	const char *sh_dir = test_shared();
	if (!sh_dir)
		SKIP("../shared not found");
	char *dir = xasprintf("%s/reference/anemll-llama-tiny/packages", sh_dir);
	char *model = xasprintf("%s/reference/anemll-llama-tiny/model", sh_dir);
	hf_model hf;
	smoke_parts p;
	if (hf_model_open(&hf, model) != 0 || smoke_parts_open(&p, dir, NULL, -1, -1, -1) != 0) {
		CHECKF(0, "%s", errmsg());
		free(dir), free(model);
		return;
	}
	CHECK(p.nchunks == 1 && streq(p.infer_fn[0], "infer") && streq(p.prefill_fn[0], "prefill"));
	int32_t prompt[70];
	for (int i = 0; i < 70; i++)
		prompt[i] = (i * 37 + 1) % 256; /* longer than one 64-token prefill block */
	smoke_run run;
	ref_options ro = {.context = p.context, .threads = 1, .rope_anemll_compat = 1};
	ref_model *ref = ref_open(&hf, &ro);
	float *want = xmalloc(sizeof(float) * 8 * (size_t)p.vocab);
	CHECK(ref && smoke_generate(&p, prompt, 70, 8, 1, &run) == 0 && smoke_reference(ref, &run, p.vocab, want) == 0);
	smoke_metrics m;
	smoke_compare(want, run.logits, 8, p.vocab, &m);
	printf("# ANEMLL tiny llama packages: agreement %d/8, KL max %.3g, max |logit diff| %.4f\n", m.agree, m.kl_max,
	       m.max_abs_diff);
	CHECKF(m.agree == 8 && m.max_abs_diff < 0.1, "agreement %d/8, max diff %.3g", m.agree, m.max_abs_diff);
	free(want), free(dir), free(model);
	ref_close(ref);
	smoke_run_release(&run);
	smoke_parts_close(&p);
	hf_model_close(&hf);
}

int main(void)
{
	if (!getenv("BIN") || !getenv("TESTBIN") || !mkdtemp(g_tmp)) {
		printf("skip test_smoke: BIN/TESTBIN not set (run through tests/run.sh)\n");
		return 0;
	}
	RUN(test_stories_known_output);
	RUN(test_llama);
	RUN(test_qwen2);
	RUN(test_qwen3);
	RUN(test_stories_lut4);
	RUN(test_stories_lut6);
	RUN(test_anemll_reference_packages);
	rm_rf(g_tmp);
	return test_finish();
}
