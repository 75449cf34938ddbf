/* evaluate.c: a text's windows through the parts and the reference (see evaluate.h). */
#include "verify/evaluate.h"

#include "base/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

long eval_scored_tokens(size_t n, int has_bos)
{
	return has_bos ? (long)n : n ? (long)n - 1 : 0;
}

double eval_perplexity(double nll, long tokens)
{
	return tokens > 0 ? exp(nll / (double)tokens) : NAN;
}

/* The prediction of win[pos + 1] after win[0..pos], by both models. */
static int score_position(smoke_parts *p, ref_model *ref, const int32_t *win, int pos, float *got, float *want,
			  eval_stats *s)
{
	if (smoke_step(p, win, pos, got) < 0 || ref_forward(ref, win[pos], pos, want, NULL) != 0)
		return -1;
	int v = p->vocab, next = win[pos + 1];
	s->nll += smoke_log_sum_exp(got, v) - (double)got[next];
	s->ref_nll += smoke_log_sum_exp(want, v) - (double)want[next];
	double kl = smoke_kl(want, got, v);
	s->kl += kl;
	s->kl_max = fmax(s->kl_max, kl);
	s->agree += smoke_argmax(want, v) == smoke_argmax(got, v);
	s->tokens++;
	return 0;
}

/* One window of len tokens from empty caches: positions 0..len-2 predict 1..len-1. */
static int score_window(smoke_parts *p, ref_model *ref, const int32_t *win, int len, float *got, float *want,
			eval_stats *s)
{
	smoke_restart(p);
	ref_reset(ref);
	for (int pos = 0; pos + 1 < len; pos++)
		if (score_position(p, ref, win, pos, got, want, s) != 0)
			return -1;
	s->windows++;
	return 0;
}

int eval_text(smoke_parts *p, ref_model *ref, const int32_t *ids, size_t n, int32_t bos, eval_stats *s)
{
	memset(s, 0, sizeof *s);
	s->context = p->context;
	if (p->argmax_in_model)
		return errf("the LM head gives argmax tokens, not logits: evaluate a conversion without ARGMAX");
	if (p->context < 2 || ref_context(ref) < p->context)
		return errf("a context of %d positions (the reference's: %d) cannot hold a window", p->context,
			    ref_context(ref));
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= p->vocab)
			return errf("token %d at %zu is outside the vocabulary of %d", ids[i], i, p->vocab);
	size_t step = (size_t)p->context - 1; /* text tokens each window adds */
	int32_t *win = xmalloc(sizeof *win * (size_t)p->context);
	float *got = xmalloc(sizeof *got * (size_t)p->vocab), *want = xmalloc(sizeof *want * (size_t)p->vocab);
	int rc = 0;
	for (size_t at = 0; rc == 0 && at < n; at += step) {
		size_t take = n - at < step ? n - at : step;
		int len = 0;
		if (bos >= 0)
			win[len++] = bos;
		else if (at > 0)
			win[len++] = ids[at - 1]; /* the last one of the window before: its context */
		memcpy(win + len, ids + at, sizeof *win * take);
		len += (int)take;
		if (len >= 2)
			rc = score_window(p, ref, win, len, got, want, s);
	}
	free(win), free(got), free(want);
	return rc;
}
