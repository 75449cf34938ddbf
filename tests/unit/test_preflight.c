/* test_preflight.c: the FP16 preflight's verdict from hand-made results.
 *
 * pf_judge turns what the runs measured (weights, fp32 peaks, the fp16
 * run, the clamp sweep) into ANEMLL's score, issues and recommendations
 * plus the alpha; these cases fix that logic without a model: each
 * compatibility score (1.0 / 0.7 / 0.5 / 0.0), the alpha relative to the
 * unscaled checkpoint when --fp16-scale was given, a clamp that holds the
 * residual, the sweep's tie-break, and the JSON keys.
 */
#include "verify/preflight.h"
#include "test.h"
#include "base/util.h"

#include <cjson/cJSON.h>

#define LAYERS 4

/* A report as the runs leave it: fp32 peaks, the fp16 run finite and
 * over range nowhere (callers change what their case needs). */
static void fake(pf_report *r, const float *peaks, int scalable)
{
	*r = (pf_report){0};
	r->model_id = xstrdup("fake");
	r->layer_prefix = xstrdup("model.layers.");
	r->weight_max_layer = xstrdup("model.embed_tokens.weight");
	r->nlayers = LAYERS;
	r->scalable = scalable;
	r->peaks = xcalloc(LAYERS, sizeof *r->peaks);
	r->fp16_peaks = xcalloc(LAYERS, sizeof *r->fp16_peaks);
	r->overflow = xcalloc(LAYERS, 1);
	memcpy(r->peaks, peaks, LAYERS * sizeof *peaks);
	memcpy(r->fp16_peaks, peaks, LAYERS * sizeof *peaks);
	r->weights_checked = r->bf16_works = r->fp16_ran = r->fp16_finite = 1;
	r->fp16_first_nonfinite = -1;
}

/* The fp16 run overflowed at layer l: inf there, NaN (not counted) after. */
static void fp16_overflow_at(pf_report *r, int l)
{
	r->fp16_finite = 0;
	r->fp16_first_nonfinite = l;
	r->fp16_peaks[l] = INFINITY;
	for (int i = l + 1; i < LAYERS; i++)
		r->fp16_peaks[i] = 0;
}

static int has_line(char **v, int n, const char *part)
{
	for (int i = 0; i < n; i++)
		if (strstr(v[i], part))
			return 1;
	return 0;
}

static const float SAFE[LAYERS] = {3, 10, 40000, 1000};
static const float OVER[LAYERS] = {3, 10, 70000, 200000};

static void test_compatible(void)
{
	pf_report r;
	fake(&r, SAFE, 0);
	pf_judge(&r);
	CHECK(r.fp16_works && r.fp16_to_fp32_works && r.ane_compatible);
	CHECK(r.score == 1.0);
	CHECK_EQ_INT(r.peak_layer, 2);
	CHECK_EQ_INT(r.first_overflow, -1);
	CHECK(r.recommended_fp16_scale == 1); /* below 50000: no scaling needed */
	CHECK_EQ_INT(r.nissues, 0);
	CHECK(has_line(r.recommendations, r.nrecommendations, "fully FP16 compatible"));
	pf_report_release(&r);
}

static void test_overflow_scores_half(void)
{
	pf_report r;
	fake(&r, OVER, 1);
	fp16_overflow_at(&r, 2);
	pf_judge(&r);
	CHECK(!r.fp16_works && r.fp16_to_fp32_works && !r.ane_compatible);
	CHECK(r.score == 0.5);
	CHECK_EQ_INT(r.first_overflow, 2);
	CHECK_EQ_INT(r.peak_layer, 3);
	CHECK(fabs(r.recommended_fp16_scale - 0.25) < 1e-12);
	CHECK(r.overflow[2] && r.overflow[3] && !r.overflow[1]); /* layer 3 from its fp32 peak */
	CHECK(has_line(r.issues, r.nissues, "starting at layer 2"));
	CHECK(has_line(r.recommendations, r.nrecommendations, "--fp16-scale 0.2500"));
	CHECK(has_line(r.recommendations, r.nrecommendations, "--sweep"));
	char *line = pf_verdict_line(&r);
	CHECK(strstr(line, "from layer 2 (model.layers.2)") && strstr(line, "alpha 0.2500"));
	free(line);
	pf_report_release(&r);
}

static void test_not_scalable(void)
{
	pf_report r;
	fake(&r, OVER, 0);
	fp16_overflow_at(&r, 2);
	pf_judge(&r);
	CHECK(r.score == 0.5);
	CHECK(!has_line(r.recommendations, r.nrecommendations, "Convert with --fp16-scale"));
	CHECK(has_line(r.recommendations, r.nrecommendations, "needs the post norms of Gemma 3"));
	pf_report_release(&r);
}

/* With --fp16-scale 0.5 the peaks are halved; the alpha stays absolute. */
static void test_alpha_relative_to_checkpoint(void)
{
	pf_report r;
	const float half[LAYERS] = {1.5f, 5, 35000, 100000};
	fake(&r, half, 1);
	r.fp16_scale = 0.5;
	fp16_overflow_at(&r, 3);
	pf_judge(&r);
	CHECK(fabs(r.recommended_fp16_scale - 0.25) < 1e-12);
	CHECK_EQ_INT(r.first_overflow, 3);
	pf_report_release(&r);
}

/* A clamp <= 65504 holds the residual: fp32 peaks over range are not
 * overflows of the converted model, and a finite fp16 run passes. */
static void test_clamp_holds(void)
{
	pf_report r;
	fake(&r, OVER, 1);
	r.clamp = 60000;
	for (int l = 2; l < LAYERS; l++)
		r.fp16_peaks[l] = 60000;
	pf_judge(&r);
	CHECK(r.fp16_works && r.ane_compatible && r.score == 1.0);
	CHECK(!r.overflow[2] && !r.overflow[3]);
	CHECK_EQ_INT(r.first_overflow, 2); /* still reported: the fp32 residual exceeds */
	pf_report_release(&r);
}

/* A sweep clamp with > 50% match gives 0.7; the best rate wins, the
 * first (largest clamp) of equals, as Python's max. */
static void test_sweep_rescues(void)
{
	pf_report r;
	fake(&r, OVER, 0);
	fp16_overflow_at(&r, 2);
	const double rates[] = {0.4, 0.9, 0.9, 0.6};
	for (int i = 0; i < 4; i++)
		r.sweep[r.nsweep++] = (pf_sweep_result){.clamp = 65000 - 5000 * i, .success = 1, .match_rate = rates[i]};
	pf_judge(&r);
	CHECK(r.score == 0.7 && !r.ane_compatible);
	CHECK(has_line(r.recommendations, r.nrecommendations, "clamping at 60000 (achieves 90% match rate)"));
	pf_report_release(&r);
}

static void test_sweep_fails(void)
{
	pf_report r;
	fake(&r, OVER, 0);
	fp16_overflow_at(&r, 2);
	r.sweep[r.nsweep++] = (pf_sweep_result){.clamp = 65000, .success = 1, .match_rate = 0.5};
	r.sweep[r.nsweep++] = (pf_sweep_result){.clamp = 60000, .success = 0, .match_rate = 0};
	pf_judge(&r);
	CHECK(r.score == 0.5);
	CHECK(has_line(r.recommendations, r.nrecommendations, "not suitable for ANE"));
	pf_report_release(&r);
}

/* Weights beyond fp16: fp16 with fp32 compute fails too. */
static void test_weights_exceed(void)
{
	pf_report r;
	fake(&r, SAFE, 0);
	r.weights_exceed_fp16 = 2;
	pf_judge(&r);
	CHECK(!r.fp16_works && !r.fp16_to_fp32_works && r.score == 0.0);
	CHECK(has_line(r.issues, r.nissues, "2 weight tensors exceed FP16 range"));
	CHECK(has_line(r.recommendations, r.nrecommendations, "weight clipping"));
	CHECK(has_line(r.issues, r.nissues, "fails in both"));
	pf_report_release(&r);
}

static void test_fp32_not_finite(void)
{
	pf_report r;
	fake(&r, SAFE, 0);
	r.bf16_works = 0;
	fp16_overflow_at(&r, 1);
	pf_judge(&r);
	CHECK(r.score == 0.0 && !r.fp16_to_fp32_works);
	pf_report_release(&r);
}

/* Judging twice gives the same lists (no duplicates). */
static void test_judge_idempotent(void)
{
	pf_report r;
	fake(&r, OVER, 1);
	fp16_overflow_at(&r, 2);
	pf_judge(&r);
	int ni = r.nissues, nr = r.nrecommendations;
	pf_judge(&r);
	CHECK_EQ_INT(r.nissues, ni);
	CHECK_EQ_INT(r.nrecommendations, nr);
	pf_report_release(&r);
}

/* Spec 9's keys, in ANEMLL's order, then ours. */
static void test_json_keys(void)
{
	static const char *keys[] = {"model_id", "total_params", "weight_max_abs", "weight_max_layer",
		"weights_exceed_fp16", "bf16_works", "fp16_works", "fp16_to_fp32_works", "fp16_first_nan_layer",
		"fp16_overflow_layers", "ane_compatible", "compatibility_score", "issues", "recommendations",
		"clamp_sweep", "layer_peaks", "recommended_fp16_scale", "fp16_scale", "clamp", "fp16_match_rate"};
	pf_report r;
	fake(&r, OVER, 1);
	fp16_overflow_at(&r, 2);
	r.sweep[r.nsweep++] = (pf_sweep_result){.clamp = 65000, .success = 1, .match_rate = 0.75};
	pf_judge(&r);
	cJSON *j = pf_report_json(&r, NULL, NULL);
	int i = 0;
	for (cJSON *c = j->child; c; c = c->next, i++)
		CHECKF(i < 20 && !strcmp(c->string, keys[i]), "key %d is %s", i, c->string);
	CHECK_EQ_INT(i, 20);
	CHECK_STR(cJSON_GetObjectItem(j, "fp16_first_nan_layer")->valuestring, "model.layers.2");
	CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "fp16_overflow_layers")), 2);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "clamp")));
	cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "clamp_sweep"), "65000");
	CHECK(s && cJSON_IsTrue(cJSON_GetObjectItem(s, "success")) && cJSON_GetObjectItem(s, "match_rate")->valuedouble == 0.75);
	cJSON_Delete(j);
	pf_report_release(&r);
}

int main(void)
{
	RUN(test_compatible);
	RUN(test_overflow_scores_half);
	RUN(test_not_scalable);
	RUN(test_alpha_relative_to_checkpoint);
	RUN(test_clamp_holds);
	RUN(test_sweep_rescues);
	RUN(test_sweep_fails);
	RUN(test_weights_exceed);
	RUN(test_fp32_not_finite);
	RUN(test_judge_idempotent);
	RUN(test_json_keys);
	return test_finish();
}
