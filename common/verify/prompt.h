/* prompt.h: the prompt of a program that runs a model (smoketest,
 * preflight) as token ids.
 *
 * Either comma-separated ids (--prompt), or text (--text) tokenized with the
 * model's tokenizer.json inside its chat template (tokenizer_chat_prompt;
 * --template NAME picks another, --no-template encodes the text as is), or,
 * with neither, the BOS token alone. Errors name the flag:
 *   "--prompt: 'x,1' is not a list of token ids below 512".
 */
#ifndef ANEMAKE_PROMPT_H
#define ANEMAKE_PROMPT_H

#include "checkpoint/hfconfig.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

typedef struct prompt_spec {
	const char *ids;      /* --prompt IDS, or NULL */
	const char *text;     /* --text PROMPT, or NULL (needs a tokenizer) */
	const char *template; /* --template NAME, or NULL: the tokenizer's */
	int no_template;      /* --no-template */
} prompt_spec;

/* Check --template NAME (NULL is fine): 0, or -1 with the reason recorded.
 * Programs call it while parsing, so a bad name is a usage error. */
int prompt_check_template(const char *name);

/* The prompt as ids (*ids: caller frees; *n >= 1). tok may be NULL when
 * p->text is NULL. 0, or -1 with one errf() line naming the flag. */
int prompt_tokens(const prompt_spec *p, const tokenizer *tok, const hf_config *cfg, int32_t **ids, int *n);

#endif
