/* card.h: the model card (README.md) of a distribution.
 *
 * ANEMLL's card is a fixed template with four numbers filled in. Ours
 * states what this conversion is and what was measured on it, and nothing
 * else:
 *   - YAML front matter: license (and license_name, license_link) and
 *     base_model carried from the source model's card (its README.md front
 *     matter), base_model preferably the source's hub id ("org/name", when
 *     it came from the HF cache), else the card's, else config.json's
 *     _name_or_path when that is a hub id; library_name coreml,
 *     pipeline_tag text-generation, tags (coreml, anemll, ane, the
 *     architecture). A value not found is left out, never guessed.
 *   - the conversion: layout, context, batch, LM head, sliding window, the
 *     FP16 scale and clamp, the converter, and the make flags that redo it;
 *   - every part: file, role, LUT (bits and group), size, zip size;
 *   - the smoketest report (smoketest.json): PASS/FAIL, the prompt (ids,
 *     and text when the tokenizer can decode it), steps, top-1 agreement,
 *     KL mean/max, max |logit diff|; an argmax head gives no logits, so no
 *     KL is stated. Without a report the card says that nothing was
 *     measured;
 *   - make eval's report (eval.json) when there and of these parts:
 *     the text, perplexity of the parts and of the fp32 reference, mean
 *     KL, top-1 agreement (one of an earlier conversion is left out);
 *   - the FP16 preflight when preflight.json is there, and the fp16
 *     emulation the smoketest ran on its own prompt;
 *   - how to run it: chat.py, the Swift CLI, the ANEMLL Chat app (and the
 *     Swift runtime's known gap: split-rotate files).
 * The text depends only on its inputs (no dates, no paths of this machine).
 */
#ifndef ANEMAKE_CARD_H
#define ANEMAKE_CARD_H

#include "dist/dist.h"

#include <stddef.h>

struct cJSON;

typedef struct card_input {
	const dist_plan *plan;     /* parts with their zip sizes */
	const char *model_dir;     /* the source checkpoint, or NULL */
	struct cJSON *smoketest;   /* the reports, or NULL: not measured / not run */
	struct cJSON *preflight;
	struct cJSON *eval;        /* make eval's report, or NULL */
} card_input;

/* Read the reports (each path may be NULL) into `in`, before anything is
 * written: -1 with errf() when one is not the JSON smoketest/preflight
 * write, or the smoketest report is of other parts (its LM head is not
 * meta.yaml's: a stale report; an eval report of other parts is dropped
 * with a warning). */
int card_reports(card_input *in, const char *smoketest, const char *preflight, const char *eval);
void card_input_release(card_input *in);

/* Our front matter for a source card's text (its license and base_model
 * carried; architecture may be NULL): the fuzzer's entry. Caller frees. */
char *card_front_matter(const char *readme, size_t n, const char *architecture);

/* The card's text (caller frees). */
void dist_card(const card_input *in, char **text);

#endif
