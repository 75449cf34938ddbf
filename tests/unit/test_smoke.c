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

/* Convert model into out with `chunks` chunks. */
static int convert(const char *model, const char *out, int chunks)
{
	const char *bin = getenv("BIN");
	char n[16];
	snprintf(n, sizeof n, "%d", chunks);
	const char *common = "--context-length 64 --quiet >/dev/null";
	char *fmt = xasprintf("%%s/embed --model %%s --output %%s --batch-size %d %s", BATCH, common);
	int rc = sh(fmt, bin, model, out);
	free(fmt);
	fmt = xasprintf("%%s/lmhead --model %%s --output %%s %s", common);
	rc |= sh(fmt, bin, model, out);
	free(fmt);
	for (int s = 0; s < 2; s++) {
		fmt = xasprintf("%%s/%s --model %%s --output %%s --chunk %s --batch-size %d %s", s ? "prefill" : "ffn", n,
				BATCH, common);
		rc |= sh(fmt, bin, model, out);
		free(fmt);
	}
	return rc;
}

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
	rm_rf(g_tmp);
	return test_finish();
}
