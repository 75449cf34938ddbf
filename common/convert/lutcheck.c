/* lutcheck.c: the tensors each LUT spec applies to (see lutcheck.h). */
#include "convert/lutcheck.h"
#include "base/util.h"
#include "convert/graph.h"
#include "coreml/mlmodel.h"

#include <stdio.h>
#include <string.h>

typedef struct lutcheck_job {
	const hf_model *hf;
	const graph_mono_opts *o;
} lutcheck_job;

static lut_spec spec_of(const lutcheck_part *p)
{
	lut_spec none = {0};
	return p->spec ? *p->spec : none;
}

static int build_mono(ml_model *m, weights_ctx *w, const void *ctx)
{
	const lutcheck_job *j = ctx;
	return graph_build_monolithic(m, w, j->hf, j->o);
}

/* The whole model through the builder in check-only mode: w->targets. */
static int collect(const hf_model *hf, const lutcheck *lc, weights_ctx *w)
{
	graph_mono_opts o = {.mode = GRAPH_DECODE, .context = lc->context, .batch = 1,
			     .lut_embed = spec_of(&lc->embed), .lut_ffn = spec_of(&lc->layers), .lut_head = spec_of(&lc->head),
			     .lut_embed_flag = lc->embed.name, .lut_ffn_flag = lc->layers.name, .lut_head_flag = lc->head.name};
	lutcheck_job j = {hf, &o};
	return graph_dry_run(build_mono, &j, w);
}

static int64_t gcd64(int64_t a, int64_t b)
{
	while (b) {
		int64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* "LUT2=4,8" (a make variable) or "--lut 4,8" (a flag). */
static const char *label(const char *name, const char *arg, const lut_spec *s, char *buf, size_t size)
{
	char spec[LUT_SPEC_BUFSIZE];
	snprintf(buf, size, "%s%s%s", name, name[0] == '-' ? " " : "=", arg ? arg : lut_spec_format(s, spec, sizeof spec));
	return buf;
}

/* Resolve or check the spec named p->name over the tensors recorded under it. */
static int resolve(lutcheck *lc, lutcheck_part *p, const weights_ctx *w)
{
	lut_spec *s = p->spec;
	const weights_target *bad = NULL;
	int64_t gcd = 0;
	for (size_t i = 0; i < w->ntargets; i++) {
		const weights_target *t = &w->targets[i];
		if (!t->flag || !streq(t->flag, p->name))
			continue;
		gcd = gcd64(t->channels, gcd);
		if (!bad && t->channels % s->group)
			bad = t;
	}
	if (!bad)
		return 0;
	char given[96], fit_text[96];
	lut_spec fit = *s;
	fit.group = (int)lut_group_fit(gcd, s->group);
	label(p->name, NULL, &fit, fit_text, sizeof fit_text);
	if (s->group_default) {
		info(lc->note_level, "%s: group %d does not divide %s (%lld output channels): using %s", label(p->name, p->arg, s, given,
		     sizeof given), s->group, bad->source, (long long)bad->channels, fit_text);
		lutcheck_part *all[3] = {&lc->embed, &lc->layers, &lc->head};
		for (int i = 0; i < 3; i++)
			if (all[i]->spec && all[i]->spec->bits && streq(all[i]->name, p->name))
				all[i]->spec->group = fit.group;
		return 0;
	}
	char div[128];
	return errf("%s: %s has %lld output channels; groups that divide it: %s; try %s",
		    label(p->name, p->arg, s, given, sizeof given), bad->source, (long long)bad->channels,
		    lut_divisors_text(bad->channels, s->group, div, sizeof div), fit_text);
}

int lutcheck_run(const hf_model *hf, lutcheck *lc)
{
	lutcheck_part *parts[3] = {&lc->embed, &lc->layers, &lc->head};
	int any = 0;
	for (int i = 0; i < 3; i++) {
		if (!parts[i]->name)
			parts[i]->name = "--lut";
		any |= parts[i]->spec && parts[i]->spec->bits && parts[i]->spec->group;
	}
	if (!any)
		return 0;
	weights_ctx w = {0};
	int rc = collect(hf, lc, &w);
	for (int i = 0; rc == 0 && i < 3; i++)
		if (parts[i]->spec && parts[i]->spec->bits && parts[i]->spec->group)
			rc = resolve(lc, parts[i], &w);
	weights_release(&w);
	return rc;
}
