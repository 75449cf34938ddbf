/* lutcheck.c: the tensors each LUT spec applies to (see lutcheck.h). */
#include "convert/lutcheck.h"
#include "base/util.h"
#include "convert/graph.h"
#include "coreml/mlmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lutcheck_job {
	const hf_model *hf;
	const graph_mono_opts *o;
	lut_overrides *ov;
} lutcheck_job;

static lut_spec spec_of(const lutcheck_part *p)
{
	lut_spec none = {0};
	return p->spec ? *p->spec : none;
}

static int build_mono(ml_model *m, weights_ctx *w, const void *ctx)
{
	const lutcheck_job *j = ctx;
	w->ov = j->ov;
	for (size_t i = 0; j->ov && i < j->ov->n; i++)
		j->ov->v[i].matched = 0;
	return graph_build_monolithic(m, w, j->hf, j->o);
}

int lutcheck_collect(const hf_model *hf, const lutcheck *lc, weights_ctx *w)
{
	graph_mono_opts o = {.mode = GRAPH_DECODE, .context = lc->context, .batch = 1,
			     .lut_embed = spec_of(&lc->embed), .lut_ffn = spec_of(&lc->layers), .lut_head = spec_of(&lc->head),
			     .lut_embed_flag = lc->embed.name, .lut_ffn_flag = lc->layers.name, .lut_head_flag = lc->head.name};
	lutcheck_job j = {hf, &o, lc->ov};
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

/* "LUT2=4,8" (a make variable) or "--lut 4,8" (a flag); an override's
 * "PATTERN=SPEC" with its spec, as given or resolved. */
static const char *label(const char *name, const char *arg, const lut_spec *s, char *buf, size_t size)
{
	char spec[LUT_SPEC_BUFSIZE];
	const char *eq = strchr(name, '=');
	if (eq && !arg)
		snprintf(buf, size, "%.*s=%s", (int)(eq - name), name, lut_spec_format(s, spec, sizeof spec));
	else if (eq)
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "%s%s%s", name, name[0] == '-' ? " " : "=", arg ? arg : lut_spec_format(s, spec, sizeof spec));
	return buf;
}

static int resolve(lutcheck *lc, lutcheck_part *p, const weights_ctx *w);

/* An override as a part of its own: its text names its tensors and it. */
static int resolve_override(lutcheck *lc, lut_override *o, const weights_ctx *w, const hf_model *hf)
{
	if (!o->matched)
		return errf("%s: '%s' applies to no tensor a LUT can palettize in %s (no name matches it, or later "
			    "entries take every one; names look like %s)",
			    lc->ov->flag, o->text, hf->dir,
			    w->ntargets ? w->targets[0].source : "model.layers.0.mlp.down_proj.weight");
	if (!o->spec.bits || !o->spec.group)
		return 0;
	lutcheck_part p = {&o->spec, o->text, o->text};
	if (resolve(lc, &p, w) == 0)
		return 0;
	char *msg = xstrdup(errmsg());
	errf("%s: %s", lc->ov->flag, msg);
	free(msg);
	return -1;
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
		s->group = fit.group;
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
	if (!any && !(lc->ov && lc->ov->n))
		return 0;
	weights_ctx w = {0};
	int rc = lutcheck_collect(hf, lc, &w);
	for (int i = 0; rc == 0 && i < 3; i++)
		if (parts[i]->spec && parts[i]->spec->bits && parts[i]->spec->group)
			rc = resolve(lc, parts[i], &w);
	for (size_t i = 0; rc == 0 && lc->ov && i < lc->ov->n; i++)
		rc = resolve_override(lc, &lc->ov->v[i], &w, hf);
	weights_release(&w);
	return rc;
}
