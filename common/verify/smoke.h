/* smoke.h: run converted parts the way ANEMLL's chat.py does, and compare
 * them with the fp32 reference.
 *
 * The parts of one conversion live in one directory (anemll-interface.md 0):
 *   <prefix>_embeddings[_lut<b>].mlpackage
 *   <prefix>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>.mlpackage   (functions infer, prefill)
 *   or, before combining, <prefix>_FFN[...]_chunk_... + <prefix>_prefill[...]_chunk_...
 *   <prefix>_lm_head[_lut<b>].mlpackage
 * plus, for sliding-window models (Gemma 3), the rotate variants: the
 * functions infer_rotate / prefill_rotate of the combined chunk, or before
 * combining <prefix>_FFN_rotate[...]_chunk_... / <prefix>_prefill_rotate[...].
 * A monolithic conversion is one file instead, <prefix>_monolithic_full
 * [_lut<b>].mlpackage (functions infer, prefill, maybe the rotate pair):
 * token ids in (input_ids), logits out (spec 1.6). Split-rotate `_rot`
 * files are found through meta.yaml (`pf`) only.
 * smoke_parts_open() finds them and loads them into the CPU runtime.
 *
 * smoke_generate() follows the inference contract (spec 10.3-10.5): one
 * state object shared by every chunk and function, made from the prefill
 * function of the first chunk that declares kv_cache_global (else chunk 1;
 * monolithic: from infer, as the Swift runtime does); full causal mask
 * [1,1,C,C] (0 on and below the diagonal, -inf above) sliced per call; only
 * full BATCH-sized blocks go through `prefill`, the rest of the prompt one
 * token at a time through `infer` without the LM head; then each decode step
 * runs token[pos-1] at position pos-1 through `infer` and the LM head and
 * picks the argmax (so the first step runs the last prompt token a second
 * time, exactly as chat.py does; SMOKE_ONCE avoids that). When
 * the model has a sliding window and rotate functions (chat.py loads them
 * when context > window), a call whose position (decode: pos-1; prefill:
 * the block start) is >= the window uses infer_rotate / prefill_rotate.
 *
 * smoke_reference() feeds the same tokens through the fp32 reference
 * (teacher forcing on what the parts generated), so the two can be compared
 * step by step without one divergence cascading.
 */
#ifndef ANEMAKE_SMOKE_H
#define ANEMAKE_SMOKE_H

#include "verify/reference.h"
#include "verify/runtime.h"

#include <stdint.h>

typedef struct smoke_parts {
	rt_model *embed, *lmhead;
	int nchunks;
	rt_model **infer, **prefill;           /* per chunk; the same model when combined */
	const char **infer_fn, **prefill_fn;   /* function names ("infer"/"prefill" or "main") */
	rt_model **owned;                      /* models to free */
	uint64_t *owned_bytes;                 /* the size of each one's weight.bin */
	int nowned;
	rt_state *state;
	rt_model **infer_rot, **prefill_rot;   /* per chunk; NULL: no rotate function */
	const char **infer_rot_fn, **prefill_rot_fn;
	int sliding_window;                    /* positions from here on use the rotate functions;
	                                        * 0: never (no window, or context <= window) */
	rt_model *mono;                        /* monolithic: the one model, also infer[0]/prefill[0];
	                                        * embed and lmhead are NULL, hidden is 0 */
	int context, batch, hidden, vocab; /* vocab: set it from the config in argmax mode */
	int argmax_in_model;
	int lut_bits;                          /* of the FFN chunks (0: none), from metadata */
	char *embed_path, *lmhead_path, *chunk_desc;
	int compiled;                          /* the parts are the .mlmodelc folders */
	uint64_t weight_bytes;                 /* weight.bin bytes of the embeddings, the LM head
	                                        * and each chunk's infer file (each file once) */
} smoke_parts;

/* Find and load the parts under dir with file prefix `prefix` (NULL: the only
 * prefix present). lut_* select among variants (-1: whatever is there, an
 * error when several are; a monolithic file is selected by lut_ffn). The
 * sliding window is the row count of the chunks' kv_cache_local state.
 * -1 with one errf() line on failure. */
int smoke_parts_open(smoke_parts *p, const char *dir, const char *prefix, int lut_embed, int lut_ffn,
		     int lut_lmhead);
/* The same, finding the parts through meta.yaml exactly as ANEMLL's
 * runtimes do (embeddings, lm_head, ffn chunk 1 renamed per chunk; combined
 * infer/prefill chunks; with `pf` (split rotate) infer/infer_rotate from the
 * ffn file and prefill/prefill_rotate from the pf file; model_type
 * monolithic: monolithic_model), loading the .mlpackage beside each
 * .mlmodelc. sliding_window as chat.py reads it: the meta.yaml key, else
 * 512 for a model_prefix starting with gemma3. */
int smoke_parts_open_meta(smoke_parts *p, const char *meta_path);
/* The same, loading the .mlmodelc folders meta.yaml names (what ANEMLL's
 * Swift runtime loads) instead of the packages beside them. */
int smoke_parts_open_compiled(smoke_parts *p, const char *meta_path);
void smoke_parts_close(smoke_parts *p);

/* Where a program's flags say the parts are: meta.yaml (its .mlmodelc
 * folders when compiled), or a directory with a prefix and LUT choices
 * (-1: whatever is there). */
typedef struct smoke_where {
	const char *meta, *dir, *prefix;
	int compiled, lut_embed, lut_ffn, lut_lmhead;
} smoke_where;
/* Open them as w says and check that the LM head covers the model's
 * vocabulary (an argmax head, which states no size, takes vocab_size).
 * -1 with one errf() line. */
int smoke_parts_open_where(smoke_parts *p, const smoke_where *w, int vocab_size);

typedef struct smoke_run {
	int nprompt, nsteps;
	int32_t *tokens;   /* prompt then generated, nprompt + nsteps */
	float *logits;     /* nsteps x vocab (NULL in argmax mode) */
	float *hidden;     /* nsteps x hidden: the LM head's input at each step
	                    * (a monolithic model has none: hidden is 0) */
	double seconds;    /* wall time of the generation */
} smoke_run;

/* Modes of smoke_generate (bits). By default chat.py's exact sequence: the
 * whole prompt through `infer` (chat.py without prefill_dynamic_slice), then
 * the first decode step runs the last prompt token again. SMOKE_PREFILL:
 * full batches through `prefill` first. The re-run rewrites the token's KV
 * slot: a no-op for the fill functions and for our rotate functions (a ring:
 * slot = position mod window), but ANEMLL's rotate functions shift their
 * local cache a second time, which loses the oldest position of the window
 * and holds the last one twice: their logits drift from then on.
 * SMOKE_ONCE runs every position exactly once (the last prompt token only
 * in the first decode step; a last full block ending at the prompt's end
 * goes token by token when that step rotates), the computation chat.py
 * means, to measure ANEMLL's packages without that drift. */
enum { SMOKE_PREFILL = 1, SMOKE_ONCE = 2 };

/* Generate `steps` tokens greedily after the prompt; mode: SMOKE_* bits
 * (1, i.e. true, is the usual prefill run). Positions stay below the
 * context: nprompt <= context and nprompt + steps - 1 <= context. */
int smoke_generate(smoke_parts *p, const int32_t *prompt, int nprompt, int steps, int mode, smoke_run *out);
void smoke_run_release(smoke_run *r);
/* smoke_generate and smoke_reference_hidden(ref, .., p->vocab, ref_logits,
 * hdim, ref_hidden) side by side: the reference runs in a second thread,
 * each position as soon as its token is known (the prompt at once, then one
 * step behind the parts), so the two share the cores. The results are
 * those of the two calls in turn. */
int smoke_generate_checked(smoke_parts *p, const int32_t *prompt, int nprompt, int steps, int mode,
			   ref_model *ref, float *ref_logits, int hdim, float *ref_hidden, smoke_run *out);

/* Teacher forcing, one position at a time: run tokens[pos] at pos through
 * `infer` and the LM head (the rotate functions past the sliding window),
 * its logits into logits[vocab] (NULL in argmax mode). The caches must
 * hold positions 0..pos-1 of the same tokens: start each sequence at pos 0
 * after smoke_restart(). The token the head picks, or -1 with errf(). */
int smoke_step(smoke_parts *p, const int32_t *tokens, int pos, float *logits);
/* Empty the caches (zeros) for a new sequence. */
void smoke_restart(smoke_parts *p);

/* logits[nsteps x vocab] of the reference along run's tokens. */
int smoke_reference(ref_model *ref, const smoke_run *run, int vocab, float *logits);
/* The same, also filling hidden[nsteps x H] with the reference's final
 * hidden state (after the final norm) at each step (hidden may be NULL;
 * hdim <= 0 also skips it: a monolithic model has no hidden output). */
int smoke_reference_hidden(ref_model *ref, const smoke_run *run, int vocab, float *logits, int hdim, float *hidden);
/* Cosine similarity of two vectors (1 when both are zero). */
double smoke_cosine(const float *a, const float *b, int n);

typedef struct smoke_metrics {
	int steps, agree;         /* top-1 agreement count */
	double kl_mean, kl_max;   /* KL(reference || parts) of the softmaxes */
	double max_abs_diff;      /* max |logit difference| */
	int first_disagreement;   /* step, or -1 */
} smoke_metrics;

void smoke_compare(const float *ref, const float *got, int steps, int vocab, smoke_metrics *m);
/* Per-step values for reports: top-1 ids and KL of step s. */
int smoke_argmax(const float *v, int n);
double smoke_kl(const float *p_logits, const float *q_logits, int n);
/* log(sum(exp(x))) in double: the log-softmax normaliser. */
double smoke_log_sum_exp(const float *x, int n);

#endif
