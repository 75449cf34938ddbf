/* lutauto: the mixed-precision plan of make's LUT2=auto:BITS[,GROUP].
 *
 * Measures every layer tensor a LUT applies to at 2, 3, 4, 6 and 8 bits
 * (activation-aware, with the calibration statistics of `calib`): the mean
 * KL divergence of the model's next-token distributions on the calibration
 * text (its first --tokens tokens) when that tensor alone is palettized,
 * against the fp32 reference, and the bytes it would write, each width
 * with --budget's group and with one table per tensor; picks the widths that minimise the total error within BITS per
 * weight (lutauto.h) and writes them as LUT overrides (--plan FILE), which
 * ffn and prefill then read with --lut-override @FILE. The plan is printed
 * too. Results go through the LUT cache, so the conversion reuses them.
 */
#include "base/calstats.h"
#include "base/cli.h"
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "convert/lutauto.h"
#include "convert/lutcheck.h"
#include "convert/stage.h"
#include "convert/weights.h"
#include "coreml/blob.h"
#include "verify/calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
	stage_opts st; /* --model, --output, --calib-stats, --lut-cache, --threads, --context-length */
	const char *budget_arg, *plan, *text;
	int tokens;    /* of the text, for the sensitivities */
	double bits;   /* per weight */
	lut_spec spec; /* its group; bits are per tensor */
} options;

static void parse_budget(options *o)
{
	const char *s = o->budget_arg;
	if (strncmp(s, "auto:", 5) == 0)
		s += 5;
	char *end;
	o->bits = strtod(s, &end);
	if (end == s || !(o->bits >= 2 && o->bits <= 16) || (*end && *end != ','))
		die_usage("--budget: '%s' is not [auto:]BITS[,GROUP] with BITS per weight from 2 to 16", o->budget_arg);
	char *spec = xasprintf("8%s", end);
	if (lut_spec_parse(spec, &o->spec) != 0)
		die_usage("--budget: '%s': %s", o->budget_arg, errmsg());
	free(spec);
}

static void parse_args(int argc, char **argv, options *o)
{
	stage_opts_init(&o->st);
	o->tokens = 256;
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(&o->st),
		STAGE_OPT_OUTPUT(&o->st, 1),
		STAGE_OPT_CALIB_STATS(&o->st),
		{"budget", "[auto:]BITS[,GROUP]", CLI_STRING, &o->budget_arg, 1, 0, 0, "bits per weight, counted in bytes written (indices and tables), and the LUT group (default 8, or the largest below that fits)"},
		{"text", "FILE", CLI_STRING, &o->text, 1, 0, 0, "the calibration text (the one the statistics come from)"},
		{"tokens", "N", CLI_INT, &o->tokens, 0, 1, 65536, "tokens of the text each sensitivity is measured over, from its start (default 256)"},
		{"plan", "FILE", CLI_STRING, &o->plan, 1, 0, 0, "where to write the plan (LUT overrides, one tensor per line)"},
		STAGE_OPT_CONTEXT(&o->st, "context length the layers are checked at"),
		STAGE_OPT_LUT_CACHE(&o->st),
		STAGE_OPT_THREADS(&o->st),
	};
	const cli_spec spec = {
		.usage = "lutauto --model DIR --output DIR --calib-stats FILE --budget BITS[,GROUP] --plan FILE [options]",
		.summary = "Choose a LUT width from 2, 3, 4, 6, 8 for every layer tensor: the least total expected output error "
			   "on the calibration statistics within BITS per weight (indices and tables). Writes the plan as LUT "
			   "overrides for ffn/prefill --lut-override @FILE and prints it.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
	if (!o->st.calib_stats_arg)
		die_usage("--calib-stats is required: the errors are measured on calibration statistics");
	parse_budget(o);
}

/* The layer tensors a LUT applies to (as the stages decide), group resolved. */
static void layer_targets(options *o, weights_ctx *w)
{
	lutcheck lc = {.layers = {&o->spec, "--budget", o->budget_arg}, .context = o->st.context, .note_level = 2};
	if (lutcheck_run(&o->st.hf, &lc) != 0 || lutcheck_collect(&o->st.hf, &lc, w) != 0)
		die_err();
}

/* The mean KL on the text with this palettization of the tensor. */
static double sensitivity(calib_kl *k, const char *name, const lut_result *r)
{
	size_t n = (size_t)(r->channels * r->per_channel);
	uint16_t *d = xmalloc(xmul(n, sizeof *d));
	float *f = xmalloc(xmul(n, sizeof *f));
	if (lut_dequantize(r->lut, r->indices, r->bits, r->channels, r->per_channel, r->group, d) != 0)
		BUG("dequantizing a fresh palettization: %s", errmsg());
	for (size_t i = 0; i < n; i++)
		f[i] = fp16_to_f32(d[i]);
	double kl;
	if (calib_kl_measure(k, name, f, &kl) != 0)
		die_err();
	free(d);
	free(f);
	return kl;
}

static void measure(const options *o, const char *cache, calib_kl *k, const char *name, lutauto_tensor *t)
{
	const st_tensor *st = st_find(&o->st.hf.st, name);
	if (!st)
		BUG("tensor '%s' recorded by the builder is not in the checkpoint", name);
	int64_t C = (int64_t)st->shape[0], K = (int64_t)(st->numel / st->shape[0]);
	double *colw = weights_column_weights(o->st.stats, name, K);
	if (!colw)
		die("%s: no statistics of %lld input channels for '%s' (written for another model?)", o->st.calib_stats_arg,
		    (long long)K, name);
	uint16_t *data = xmalloc(xmul((size_t)st->numel, 2));
	size_t clamped = 0;
	if (st_read_fp16(st, data, &clamped) != 0)
		die_err();
	*t = (lutauto_tensor){.name = xstrdup(name), .weights = st->numel};
	/* each width with --budget's group and with one table per tensor */
	for (int g = 0; g < 2; g++)
		for (int b = 0; b < LUTAUTO_NWIDTHS && (g == 0 || o->spec.group != 0); b++) {
			lut_spec spec = {.bits = LUTAUTO_WIDTHS[b], .group = g ? 0 : o->spec.group};
			lut_result r;
			if (weights_quantize_cached(cache, name, data, C, K, &spec, colw, weights_xtx(o->st.stats, name, K),
						    o->st.threads, &r) < 0)
				die_err();
			t->opt[t->nopt++] = (lutauto_option){
				.bits = spec.bits, .group = spec.group, .err = sensitivity(k, name, &r),
				.bytes = blob_packed_size((size_t)st->numel, spec.bits) + ((uint64_t)r.groups << spec.bits) * 2,
			};
			lut_result_release(&r);
		}
	free(data);
	free(colw);
}

/* What one option everywhere would write and cost, for comparison. */
static void print_uniform(const lutauto_tensor *t, size_t n, uint64_t weights)
{
	for (int b = 0; n && b < t[0].nopt; b++) {
		uint64_t bytes = 0;
		double err = 0;
		for (size_t i = 0; i < n; i++)
			bytes += t[i].opt[b].bytes, err += t[i].opt[b].err;
		char spec[LUT_SPEC_BUFSIZE];
		lut_spec s = {.bits = t[0].opt[b].bits, .group = (int)t[0].opt[b].group};
		info(1, "  uniform LUT%s: %llu bytes (%.3f bits per weight), summed KL %.4g", lut_spec_format(&s, spec, sizeof spec),
		     (unsigned long long)bytes, 8.0 * (double)bytes / (double)weights, err);
	}
}

static void write_plan(const options *o, const lutauto_tensor *t, size_t n, uint64_t weights, uint64_t budget)
{
	uint64_t bytes = 0;
	double err = 0;
	for (size_t i = 0; i < n; i++)
		bytes += t[i].opt[t[i].choice].bytes, err += t[i].opt[t[i].choice].err;
	char hex[65];
	sha256_hex(o->st.stats->digest, hex);
	size_t cap = 4096 + n * 256, len = 0;
	char *text = xmalloc(cap);
	len += (size_t)snprintf(text + len, cap - len,
				"# anemake mixed-precision plan (lutauto --budget %s): %zu layer tensors, %llu weights\n"
				"# budget %.4g bits per weight = %llu bytes; written %llu bytes (%.3f bits per weight), "
				"summed KL %.6g\n# calibration statistics sha256 %s\n",
				o->budget_arg, n, (unsigned long long)weights, o->bits, (unsigned long long)budget,
				(unsigned long long)bytes, 8.0 * (double)bytes / (double)weights, err, hex);
	for (size_t i = 0; i < n; i++) {
		const lutauto_option *c = &t[i].opt[t[i].choice];
		char spec[LUT_SPEC_BUFSIZE];
		lut_spec s = {.bits = c->bits, .group = (int)c->group};
		len += (size_t)snprintf(text + len, cap - len, "%s=%s # KL %.6g, %llu bytes\n", t[i].name,
					lut_spec_format(&s, spec, sizeof spec), c->err, (unsigned long long)c->bytes);
	}
	fputs(text, stderr);
	if (write_file_atomic(o->plan, text, len) != 0)
		die_err();
	free(text);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	options o = {0};
	parse_args(argc, argv, &o);
	stage_open(&o.st);
	weights_ctx w;
	layer_targets(&o, &w);
	char *cache = weights_cache_dir(o.st.output, o.st.lut_cache);
	int32_t *ids;
	size_t nids;
	if (calib_tokens(o.text, &o.st.hf, (size_t)o.tokens, &ids, &nids) != 0)
		die_err();
	calib_kl *k = calib_kl_open(&o.st.hf, ids, nids, o.st.threads);
	if (!k)
		die_err();
	lutauto_tensor *t = xcalloc(w.ntargets ? w.ntargets : 1, sizeof *t);
	uint64_t weights = 0;
	for (size_t i = 0; i < w.ntargets; i++) {
		measure(&o, cache, k, w.targets[i].source, &t[i]);
		weights += t[i].weights;
	}
	if (!w.ntargets)
		die("%s: no layer tensor a LUT applies to", o.st.model);
	uint64_t budget = (uint64_t)(o.bits * (double)weights / 8);
	print_uniform(t, w.ntargets, weights);
	if (lutauto_choose(t, w.ntargets, budget) != 0)
		die("--budget %s: %s", o.budget_arg, errmsg());
	write_plan(&o, t, w.ntargets, weights, budget);
	printf("%s\n", o.plan);
	if (stdout_close_checked() != 0)
		die_err();
	for (size_t i = 0; i < w.ntargets; i++)
		free(t[i].name);
	free(t);
	free(cache);
	calib_kl_close(k);
	free(ids);
	weights_release(&w);
	stage_close(&o.st);
	return 0;
}
