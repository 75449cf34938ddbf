/* preflight.c: the FP16 preflight (see preflight.h).
 *
 * Sections: report lifetime; 1. weights; 2-4. runs of the reference;
 * 5. the verdict; output (JSON, text).
 */
#include "verify/preflight.h"

#include "base/util.h"
#include "verify/reference.h"
#include "verify/smoke.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* sysconf: online CPUs */

/* ------------------------------------------------------------------ */
/* Report lifetime                                                     */

void pf_report_init(pf_report *r, const hf_model *hf, const char *model_id, const pf_options *o)
{
	*r = (pf_report){0};
	r->model_id = xstrdup(model_id);
	r->layer_prefix = xasprintf("%slayers.", hf->prefix);
	r->nlayers = hf->cfg.num_hidden_layers;
	r->scalable = hf->cfg.arch->four_norms;
	r->fp16_scale = o->fp16_scale;
	r->clamp = o->clamp;
	r->weight_max_layer = xstrdup("");
	r->peaks = xcalloc((size_t)r->nlayers, sizeof *r->peaks);
	r->fp16_peaks = xcalloc((size_t)r->nlayers, sizeof *r->fp16_peaks);
	r->overflow = xcalloc((size_t)r->nlayers, 1);
	r->fp16_first_nonfinite = -1;
	r->peak_layer = r->first_overflow = -1;
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void pf_report_release(pf_report *r)
{
	free(r->model_id), free(r->layer_prefix), free(r->weight_max_layer);
	free(r->peaks), free(r->fp16_peaks), free(r->overflow), free(r->baseline);
	for (int i = 0; i < r->nsweep; i++)
		free(r->sweep[i].tokens);
	free_list(r->issues, r->nissues);
	free_list(r->recommendations, r->nrecommendations);
	*r = (pf_report){0};
}

char *pf_layer_name(const pf_report *r, int layer)
{
	return xasprintf("%s%d", r->layer_prefix, layer);
}

/* ------------------------------------------------------------------ */
/* 1. Weights                                                          */

/* The language model's tensors: those under the decoder prefix, and an
 * untied LM head (a vision tower of a multimodal checkpoint is not run). */
static int is_language_tensor(const hf_model *hf, const st_tensor *t)
{
	return !strncmp(t->name, hf->prefix, strlen(hf->prefix)) || (t == hf->lm_head && !hf->lm_head_tied);
}

/* max |x| of a tensor, read a block of rows at a time (never all of it);
 * NaN counts as infinitely large so that it is reported. */
static int tensor_max_abs(const st_tensor *t, double *out)
{
	uint64_t rows = st_rows(t), per = st_row_elems(t);
	uint64_t block = per >= 65536 ? 1 : 65536 / (per ? per : 1);
	float *buf = xmalloc(xmul((size_t)(block * (per ? per : 1)), sizeof *buf));
	double m = 0;
	for (uint64_t r0 = 0; r0 < rows; r0 += block) {
		uint64_t n = rows - r0 < block ? rows - r0 : block;
		if (st_read_rows_f32(t, r0, n, buf) != 0) {
			free(buf);
			return -1;
		}
		for (uint64_t i = 0; i < n * per; i++) {
			double a = fabs((double)buf[i]);
			m = isnan(a) ? INFINITY : (a > m ? a : m);
		}
	}
	free(buf);
	*out = m;
	return 0;
}

int pf_weights(pf_report *r, const hf_model *hf)
{
	for (size_t i = 0; i < st_count(&hf->st); i++) {
		const st_tensor *t = st_at(&hf->st, i);
		if (!is_language_tensor(hf, t))
			continue;
		double m;
		if (tensor_max_abs(t, &m) != 0)
			return -1;
		r->total_params += t->numel;
		r->weights_exceed_fp16 += !(m <= PF_FP16_MAX);
		if (m > r->weight_max_abs || !*r->weight_max_layer) {
			r->weight_max_abs = m;
			free(r->weight_max_layer);
			r->weight_max_layer = xstrdup(t->name);
		}
	}
	r->weights_checked = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* 2-4. Runs of the reference                                          */

static int all_finite(const float *v, int n)
{
	for (int i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/* Greedy generation as ANEMLL's checker does it: up to ntok steps, each
 * takes the argmax of the logits and stops at non-finite logits (*finite
 * = 0) or after the eos token. Fills out[0..*nout). */
static int generate(ref_model *m, int vocab, const int32_t *prompt, int nprompt, int ntok, int32_t eos,
		    int32_t *out, int *nout, int *finite)
{
	float *logits = xmalloc(xmul((size_t)vocab, sizeof *logits));
	int pos = nprompt - 1;
	*nout = 0, *finite = 1;
	/* the prompt but its last token at once: each weight read once, the same bits */
	int rc = ref_forward_n(m, prompt, 0, pos, pos, NULL, NULL);
	int32_t next = prompt[nprompt - 1];
	while (rc == 0 && *nout < ntok) {
		if ((rc = ref_forward(m, next, pos++, logits, NULL)) != 0)
			break;
		if (!all_finite(logits, vocab)) {
			*finite = 0;
			break;
		}
		out[(*nout)++] = next = smoke_argmax(logits, vocab);
		if (next == eos)
			break;
	}
	free(logits);
	return rc;
}

typedef struct pf_run_out {
	int32_t *tokens;
	int ntokens, finite, first_nonfinite;
	float *peaks; /* [layers], or NULL: not wanted */
} pf_run_out;

/* One run of the reference with these numerics over prompt + ntok tokens. */
static int run_once(const hf_model *hf, const pf_options *o, int fp16, double clamp, const int32_t *prompt,
		    int nprompt, int ntok, pf_run_out *out)
{
	int need = nprompt + ntok - 1;
	if (o->context && need > o->context)
		return errf("--context %d: the prompt (%d tokens) and %d generated tokens need %d positions",
			    o->context, nprompt, ntok, need);
	ref_options ro = {.context = o->context ? o->context : need, .threads = o->threads,
			  .fp16_activations = fp16, .clamp = clamp, .fp16_scale = o->fp16_scale};
	ref_model *m = ref_open(hf, &ro);
	if (!m)
		return -1;
	out->tokens = xmalloc(xmul((size_t)ntok, sizeof *out->tokens));
	int rc = generate(m, hf->cfg.vocab_size, prompt, nprompt, ntok, o->eos, out->tokens, &out->ntokens,
			  &out->finite);
	out->first_nonfinite = ref_first_nonfinite_layer(m);
	if (out->peaks)
		memcpy(out->peaks, ref_layer_peaks(m), (size_t)hf->cfg.num_hidden_layers * sizeof *out->peaks);
	ref_close(m);
	return rc;
}

/* ANEMLL's match rate: equal tokens over the shorter of the two runs. */
static double match_rate(const int32_t *a, int na, const int32_t *b, int nb)
{
	int n = na < nb ? na : nb, same = 0;
	for (int i = 0; i < n; i++)
		same += a[i] == b[i];
	return n ? (double)same / n : 0;
}

static void take_reference(pf_report *r, pf_run_out *out)
{
	free(r->baseline);
	r->baseline = out->tokens, r->nbaseline = out->ntokens;
	r->bf16_works = out->finite;
}

static void take_fp16(pf_report *r, pf_run_out *out)
{
	r->fp16_ran = 1;
	r->fp16_finite = out->finite;
	r->fp16_first_nonfinite = out->first_nonfinite;
	r->fp16_match_rate = out->finite ? match_rate(out->tokens, out->ntokens, r->baseline, r->nbaseline) : 0;
	free(out->tokens);
}

/* One run_once on a thread of its own. */
typedef struct pf_job {
	const hf_model *hf;
	pf_options o;
	int fp16;
	double clamp;
	const int32_t *prompt;
	int nprompt, rc;
	pf_run_out out;
	char err[512];
} pf_job;

static void *run_job(void *arg)
{
	pf_job *j = arg;
	j->rc = run_once(j->hf, &j->o, j->fp16, j->clamp, j->prompt, j->nprompt, j->o.tokens, &j->out);
	if (j->rc != 0)
		snprintf(j->err, sizeof j->err, "%s", errmsg());
	return NULL;
}

int pf_reference_fp16(pf_report *r, const hf_model *hf, const int32_t *prompt, int nprompt, const pf_options *o)
{
	/* The two runs share nothing but the mmapped checkpoint; each takes half
	 * the cores (the reference's results do not depend on its threads). */
	pf_options half = *o;
	if (!half.threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		half.threads = n >= 4 ? (int)(n / 2) : 1;
	}
	pf_job ref = {.hf = hf, .o = half, .prompt = prompt, .nprompt = nprompt, .out = {.peaks = r->peaks}};
	pf_job f16 = {.hf = hf, .o = half, .fp16 = 1, .clamp = o->clamp, .prompt = prompt, .nprompt = nprompt,
		      .out = {.peaks = r->fp16_peaks}};
	pthread_t t;
	int side = pthread_create(&t, NULL, run_job, &f16) == 0;
	run_job(&ref);
	if (side)
		pthread_join(t, NULL);
	else
		run_job(&f16);
	pf_job *bad = ref.rc ? &ref : f16.rc ? &f16 : NULL;
	if (bad) {
		free(ref.out.tokens), free(f16.out.tokens);
		return errf("%s", bad->err);
	}
	take_reference(r, &ref.out);
	take_fp16(r, &f16.out);
	return 0;
}

int pf_sweep(pf_report *r, const hf_model *hf, const int32_t *prompt, int nprompt, const pf_options *o)
{
	int ntok = o->tokens < PF_SWEEP_TOKENS ? o->tokens : PF_SWEEP_TOKENS;
	for (int cv = 65000; cv >= 20000 && r->nsweep < PF_SWEEP_MAX; cv -= 5000) {
		pf_run_out out = {0};
		if (run_once(hf, o, 1, cv, prompt, nprompt, ntok, &out) != 0) {
			free(out.tokens);
			return -1;
		}
		pf_sweep_result *s = &r->sweep[r->nsweep++];
		*s = (pf_sweep_result){.clamp = cv, .success = out.finite, .tokens = out.tokens, .ntokens = out.ntokens};
		if (s->success && s->ntokens)
			s->match_rate = match_rate(out.tokens, out.ntokens, r->baseline, r->nbaseline);
	}
	return 0;
}

int pf_run(pf_report *r, const hf_model *hf, const int32_t *prompt, int nprompt, const pf_options *o, int sweep)
{
	if (pf_weights(r, hf) != 0 || pf_reference_fp16(r, hf, prompt, nprompt, o) != 0 ||
	    (sweep && pf_sweep(r, hf, prompt, nprompt, o) != 0))
		return -1;
	pf_judge(r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* 5. The verdict                                                      */

static void PRINTF_LIKE(3, 4) add_line(char ***v, int *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	*v = xrealloc(*v, xmul((size_t)*n + 1, sizeof **v));
	(*v)[(*n)++] = xstrdup(buf);
}
#define ISSUE(r, ...) add_line(&(r)->issues, &(r)->nissues, __VA_ARGS__)
#define RECOMMEND(r, ...) add_line(&(r)->recommendations, &(r)->nrecommendations, __VA_ARGS__)

/* Peak layer, first layer over range, per-layer overflow, alpha. A layer
 * overflows as converted when the fp16 run overflowed there (inf), or when
 * its fp32 peak is over range and no clamp <= 65504 holds it (after the
 * first inf the fp16 run turns to NaN and hides later layers). The residual
 * scales linearly with alpha, so alpha_used * 50000 / peak is the alpha
 * relative to the unscaled checkpoint whatever --fp16-scale was (1 when the
 * peak is below 50000: no scaling needed). */
static void judge_peaks(pf_report *r)
{
	int clamped = r->clamp > 0 && r->clamp <= PF_FP16_MAX;
	r->peak_layer = r->first_overflow = -1;
	for (int l = 0; l < r->nlayers; l++) {
		float p = r->peaks[l];
		if (r->peak_layer < 0 || p > r->peaks[r->peak_layer])
			r->peak_layer = l;
		if (p > PF_FP16_MAX && r->first_overflow < 0)
			r->first_overflow = l;
		int fp16_over = r->fp16_ran && (r->fp16_peaks[l] > PF_FP16_MAX || l == r->fp16_first_nonfinite);
		r->overflow[l] = fp16_over || (p > PF_FP16_MAX && !clamped);
	}
	double peak = r->peak_layer < 0 ? 0 : r->peaks[r->peak_layer];
	double alpha = r->fp16_scale > 0 ? r->fp16_scale : 1;
	r->recommended_fp16_scale = peak > 0 && isfinite(peak) ? alpha * PF_TARGET_MAX / peak : 0;
	if (r->recommended_fp16_scale > 1) /* alpha is in (0, 1]: 1 is no scaling */
		r->recommended_fp16_scale = 1;
}

/* The clamp of the sweep with the best match rate above 50% (the first
 * of equals, as Python's max), or NULL. */
static const pf_sweep_result *best_clamp(const pf_report *r)
{
	const pf_sweep_result *best = NULL;
	for (int i = 0; i < r->nsweep; i++) {
		const pf_sweep_result *s = &r->sweep[i];
		if (s->success && s->match_rate > 0.5 && (!best || s->match_rate > best->match_rate))
			best = s;
	}
	return best;
}

/* What to do about residual overflow: our concrete flag where ANEMLL's
 * text says "consider residual scaling". */
static void recommend_scaling(pf_report *r)
{
	if (r->first_overflow < 0 || r->recommended_fp16_scale <= 0)
		return;
	double peak = r->peaks[r->peak_layer];
	ISSUE(r, "Residual accumulation overflow starting at layer %d (peak %.1f at layer %d, %.1fx FP16 max)",
	      r->first_overflow, peak, r->peak_layer, peak / PF_FP16_MAX);
	if (r->scalable)
		RECOMMEND(r, "Convert with --fp16-scale %.4f (weight-only residual scaling: peak -> %.0f)",
			  r->recommended_fp16_scale, PF_TARGET_MAX);
	else
		RECOMMEND(r, "Residual scaling (alpha %.4f) needs the post norms of Gemma 3; for this architecture "
			  "consider activation clamping (--sweep)", r->recommended_fp16_scale);
}

/* The score, as ANEMLL's generate_report. */
static void judge_score(pf_report *r)
{
	if (r->fp16_works) {
		r->ane_compatible = 1, r->score = 1.0;
		RECOMMEND(r, "Model is fully FP16 compatible - ready for ANE conversion");
	} else if (r->fp16_to_fp32_works) {
		r->score = 0.5;
		ISSUE(r, "FP16 computation overflows - weights are fine but activations exceed FP16 range");
		recommend_scaling(r);
		const pf_sweep_result *best = best_clamp(r);
		if (best) {
			RECOMMEND(r, "Apply activation clamping at %d (achieves %.0f%% match rate)", best->clamp,
				  100 * best->match_rate);
			r->score = 0.7;
		} else if (r->nsweep) {
			RECOMMEND(r, "No clamping value provides acceptable quality - %s",
				  r->scalable && r->first_overflow >= 0 ? "use --fp16-scale" : "model not suitable for ANE");
		} else {
			RECOMMEND(r, "Run clamp sweep (--sweep) to find if activation clamping can help");
		}
	} else {
		ISSUE(r, "Model fails in both FP16 and FP16->FP32 modes");
		RECOMMEND(r, "Model has fundamental precision issues - not suitable for ANE");
	}
	if (r->weights_exceed_fp16 > 0) {
		ISSUE(r, "%d weight tensors exceed FP16 range", r->weights_exceed_fp16);
		RECOMMEND(r, "Apply weight clipping before conversion");
	}
}

void pf_judge(pf_report *r)
{
	free_list(r->issues, r->nissues);
	free_list(r->recommendations, r->nrecommendations);
	r->issues = r->recommendations = NULL;
	r->nissues = r->nrecommendations = 0;
	r->ane_compatible = 0, r->score = 0;
	judge_peaks(r);
	/* fp16 weights: a value beyond 65504 becomes inf, whatever the compute */
	int weights_ok = r->weights_exceed_fp16 == 0, over = 0;
	for (int l = 0; l < r->nlayers; l++)
		over |= r->overflow[l];
	r->fp16_works = r->fp16_ran && r->fp16_finite && r->fp16_first_nonfinite < 0 && !over && weights_ok;
	r->fp16_to_fp32_works = r->bf16_works && weights_ok;
	judge_score(r);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

/* Six significant digits: enough for a report, and stable against the
 * last-bit differences between compilers' fp32 rounding. */
static double sig6(double v)
{
	if (!isfinite(v) || v == 0)
		return v;
	char buf[32];
	snprintf(buf, sizeof buf, "%.6g", v);
	return strtod(buf, NULL);
}

static cJSON *number_or_null(double v, int present)
{
	return present && isfinite(v) ? cJSON_CreateNumber(sig6(v)) : cJSON_CreateNull();
}

static cJSON *layer_names(const pf_report *r)
{
	cJSON *a = cJSON_CreateArray();
	for (int l = 0; l < r->nlayers; l++) {
		if (!r->overflow[l])
			continue;
		char *name = pf_layer_name(r, l);
		cJSON_AddItemToArray(a, cJSON_CreateString(name));
		free(name);
	}
	return a;
}

static cJSON *peaks_json(const pf_report *r)
{
	cJSON *a = cJSON_CreateArray();
	for (int l = 0; l < r->nlayers; l++)
		cJSON_AddItemToArray(a, number_or_null(r->peaks[l], 1));
	return a;
}

static void add_first_nan(cJSON *o, const pf_report *r)
{
	char *name = r->fp16_first_nonfinite < 0 ? xstrdup("") : pf_layer_name(r, r->fp16_first_nonfinite);
	cJSON_AddStringToObject(o, "fp16_first_nan_layer", name);
	free(name);
}

static cJSON *strings(char **v, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
	return a;
}

/* Keep the first n characters of UTF-8 text. */
static void cut_chars(char *s, int n)
{
	int k = 0;
	for (char *p = s; *p; p++)
		if (((unsigned char)*p & 0xC0) != 0x80 && k++ == n) {
			*p = 0;
			return;
		}
}

/* {"65000": {"success", "match_rate", "output"}, ...} as ANEMLL (which
 * also counts the clamped values; the reference does not). */
static cJSON *sweep_json(const pf_report *r, pf_decode_fn decode, const void *ctx)
{
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; i < r->nsweep; i++) {
		const pf_sweep_result *s = &r->sweep[i];
		char key[16];
		snprintf(key, sizeof key, "%d", s->clamp);
		cJSON *e = cJSON_AddObjectToObject(o, key);
		cJSON_AddBoolToObject(e, "success", s->success);
		cJSON_AddNumberToObject(e, "match_rate", sig6(s->match_rate));
		char *text = decode && s->success ? decode(ctx, s->tokens, s->ntokens) : NULL;
		if (text)
			cut_chars(text, 50); /* as ANEMLL */
		cJSON_AddStringToObject(e, "output", text ? text : "");
		free(text);
	}
	return o;
}

cJSON *pf_report_json(const pf_report *r, pf_decode_fn decode, const void *ctx)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "model_id", r->model_id);
	cJSON_AddNumberToObject(o, "total_params", (double)r->total_params);
	cJSON_AddNumberToObject(o, "weight_max_abs", sig6(r->weight_max_abs));
	cJSON_AddStringToObject(o, "weight_max_layer", r->weight_max_layer);
	cJSON_AddNumberToObject(o, "weights_exceed_fp16", r->weights_exceed_fp16);
	cJSON_AddBoolToObject(o, "bf16_works", r->bf16_works);
	cJSON_AddBoolToObject(o, "fp16_works", r->fp16_works);
	cJSON_AddBoolToObject(o, "fp16_to_fp32_works", r->fp16_to_fp32_works);
	add_first_nan(o, r);
	cJSON_AddItemToObject(o, "fp16_overflow_layers", layer_names(r));
	cJSON_AddBoolToObject(o, "ane_compatible", r->ane_compatible);
	cJSON_AddNumberToObject(o, "compatibility_score", r->score);
	cJSON_AddItemToObject(o, "issues", strings(r->issues, r->nissues));
	cJSON_AddItemToObject(o, "recommendations", strings(r->recommendations, r->nrecommendations));
	cJSON_AddItemToObject(o, "clamp_sweep", sweep_json(r, decode, ctx));
	/* ours */
	cJSON_AddItemToObject(o, "layer_peaks", peaks_json(r));
	cJSON_AddItemToObject(o, "recommended_fp16_scale", number_or_null(r->recommended_fp16_scale, r->recommended_fp16_scale > 0));
	cJSON_AddItemToObject(o, "fp16_scale", number_or_null(r->fp16_scale, r->fp16_scale > 0));
	cJSON_AddItemToObject(o, "clamp", number_or_null(r->clamp, r->clamp > 0));
	cJSON_AddNumberToObject(o, "fp16_match_rate", sig6(r->fp16_match_rate));
	return o;
}

cJSON *pf_report_json_brief(const pf_report *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "layer_peaks", peaks_json(r));
	cJSON_AddItemToObject(o, "fp16_overflow_layers", layer_names(r));
	add_first_nan(o, r);
	cJSON_AddItemToObject(o, "recommended_fp16_scale", number_or_null(r->recommended_fp16_scale, r->recommended_fp16_scale > 0));
	cJSON_AddBoolToObject(o, "fp16_works", r->fp16_works);
	return o;
}

void pf_print_summary(const pf_report *r, FILE *f, const char *prefix)
{
	if (r->weights_checked)
		fprintf(f, "%s: weights: %llu parameters, max |w| %.6g (%s), %d tensor%s beyond fp16\n", prefix,
			(unsigned long long)r->total_params, r->weight_max_abs, r->weight_max_layer,
			r->weights_exceed_fp16, r->weights_exceed_fp16 == 1 ? "" : "s");
	if (r->peak_layer >= 0)
		fprintf(f, "%s: fp32 reference: peak |x| %.6g at layer %d (%.3gx fp16 max)%s\n", prefix,
			r->peaks[r->peak_layer], r->peak_layer, r->peaks[r->peak_layer] / PF_FP16_MAX,
			r->bf16_works ? "" : ", non-finite logits");
	if (r->first_overflow >= 0)
		fprintf(f, "%s: first layer over 65504: %d\n", prefix, r->first_overflow);
	if (r->fp16_ran)
		fprintf(f, "%s: fp16 emulation: %s\n", prefix,
			r->fp16_works ? "finite, no layer over range" : r->fp16_first_nonfinite >= 0 ? "overflows" : "fails");
	if (r->recommended_fp16_scale > 0 && r->recommended_fp16_scale < 1)
		fprintf(f, "%s: recommended alpha (--fp16-scale) %.4f = %s50000 / peak\n", prefix,
			r->recommended_fp16_scale, r->fp16_scale > 0 ? "fp16-scale x " : "");
}

void pf_print_table(const pf_report *r, FILE *f)
{
	fprintf(f, "%-6s %14s %14s  %s\n", "layer", "fp32 peak", "fp16 peak", "status");
	for (int l = 0; l < r->nlayers; l++) {
		/* past the first inf the fp16 stream is NaN, which peaks ignore */
		double q = r->fp16_first_nonfinite >= 0 && l > r->fp16_first_nonfinite ? NAN : r->fp16_peaks[l];
		fprintf(f, "%-6d %14.6g %14.6g  %s\n", l, r->peaks[l], q, r->overflow[l] ? "OVERFLOW" : "ok");
	}
	if (r->nsweep)
		fprintf(f, "\n%-6s %8s %8s\n", "clamp", "status", "match");
	for (int i = 0; i < r->nsweep; i++) {
		const pf_sweep_result *s = &r->sweep[i];
		fprintf(f, "%-6d %8s %7.1f%%\n", s->clamp, s->success ? "PASS" : "FAIL", 100 * s->match_rate);
	}
}

char *pf_verdict_line(const pf_report *r)
{
	int l = -1;
	for (int i = 0; i < r->nlayers && l < 0; i++)
		if (r->overflow[i])
			l = i;
	char *where = l >= 0 ? xasprintf("overflows from layer %d (%s%d)", l, r->layer_prefix, l)
			     : xstrdup(r->weights_exceed_fp16 ? "has weights beyond fp16 range" : "gives non-finite logits in fp16");
	char *fix = r->recommended_fp16_scale > 0 && l >= 0
			    ? xasprintf(": recommended alpha %.4f (%s)", r->recommended_fp16_scale,
					r->scalable ? "convert with --fp16-scale" : "--fp16-scale needs Gemma 3")
			    : xstrdup("");
	char *line = xasprintf("the fp16 model %s%s (score %.1f)", where, fix, r->score);
	free(where), free(fix);
	return line;
}
