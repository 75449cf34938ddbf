/* evaluate.h: how well converted parts predict a text, beside the fp32
 * reference (make eval).
 *
 * The text's tokens are cut into windows of the context length. Each window
 * starts from empty caches with the BOS token, then the next context - 1
 * text tokens, so every text token is predicted exactly once, from the
 * window's tokens before it. A model without a BOS token starts each window
 * with the last token of the window before (scored there, not again), so
 * every token but the first is predicted. At each position the parts
 * (smoke_step: infer, then the LM head) and the reference (ref_forward) run
 * the same token (teacher forcing) and their predictions of the next text
 * token are scored: the negative log-likelihood of each (perplexity is
 * exp of the mean), KL(reference || parts) of the softmaxes, and whether
 * their top-1 tokens agree. Only one row of logits of each is held at any
 * time, whatever the text's length. Sums run in double in text order, so
 * the results do not depend on the thread count.
 */
#ifndef ANEMAKE_EVALUATE_H
#define ANEMAKE_EVALUATE_H

#include "verify/reference.h"
#include "verify/smoke.h"

#include <stddef.h>
#include <stdint.h>

/* Fewer scored tokens than this measure nothing worth a report. */
#define EVAL_MIN_TOKENS 16

typedef struct eval_stats {
	int context;             /* positions per window */
	long windows, tokens;    /* tokens: scored (predicted) ones */
	long agree;              /* top-1 of the parts == top-1 of the reference */
	double nll, ref_nll;     /* sums of -log p(next token): parts, reference */
	double kl, kl_max;       /* sum and max of KL(reference || parts) */
} eval_stats;

/* How many of n text tokens are scored: n with a BOS token, else n - 1. */
long eval_scored_tokens(size_t n, int has_bos);

/* Score ids[0..n) (the text, without BOS) in windows of p's context; bos < 0:
 * the model has none. The parts must give logits (not argmax mode) over
 * the reference's vocabulary. 0, or -1 with errf(). */
int eval_text(smoke_parts *p, ref_model *ref, const int32_t *ids, size_t n, int32_t bos, eval_stats *s);

/* exp(nll / tokens); NaN without tokens. */
double eval_perplexity(double nll, long tokens);

#endif
