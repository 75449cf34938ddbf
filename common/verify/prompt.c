/* prompt.c: --prompt / --text / BOS into token ids (see prompt.h). */
#include "verify/prompt.h"

#include "base/util.h"

#include <stdlib.h>
#include <string.h>

int prompt_check_template(const char *name)
{
	tok_chat family;
	if (name && tokenizer_chat_from_name(name, &family) != 0)
		return errf("--template: %s", errmsg());
	return 0;
}

static int bos_prompt(const hf_config *cfg, int32_t **ids, int *n)
{
	if (cfg->bos_token_id < 0)
		return errf("--prompt: the model has no BOS token: give the prompt ids");
	if (cfg->bos_token_id >= cfg->vocab_size)
		return errf("--prompt: the default prompt is the BOS token, but %s's bos_token_id %d is not below its "
			    "vocab_size %d: give the prompt ids",
			    cfg->path ? cfg->path : "config.json", cfg->bos_token_id, cfg->vocab_size);
	*ids = xmalloc(sizeof **ids);
	(*ids)[0] = cfg->bos_token_id, *n = 1;
	return 0;
}

static int id_prompt(const char *s, const hf_config *cfg, int32_t **out, int *n)
{
	int32_t *ids = xmalloc(sizeof *ids * (strlen(s) / 2 + 2));
	*n = 0;
	for (const char *p = s; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 0 || v >= cfg->vocab_size || (*end && *end != ',')) {
			free(ids);
			return errf("--prompt: '%s' is not a list of token ids below %d", s, cfg->vocab_size);
		}
		ids[(*n)++] = (int32_t)v;
		p = *end ? end + 1 : end;
	}
	if (!*n) {
		free(ids);
		return errf("--prompt: no token ids");
	}
	*out = ids;
	return 0;
}

/* The model's chat template (or --template), or the text as is. */
static int text_prompt(const prompt_spec *p, const tokenizer *tok, int32_t **ids, int *n)
{
	tok_chat family = p->no_template ? TOK_CHAT_NONE : tokenizer_chat_family(tok);
	if (p->template && tokenizer_chat_from_name(p->template, &family) != 0)
		return errf("--template: %s", errmsg());
	if (family == TOK_CHAT_UNKNOWN)
		return errf("--text: the model's chat template is not one anemake knows: give --template NAME or --no-template");
	size_t len;
	int rc = family == TOK_CHAT_NONE ? tokenizer_encode(tok, p->text, strlen(p->text), 0, ids, &len)
					 : tokenizer_chat_prompt(tok, family, NULL, p->text, TOK_CHAT_NO_THINK, ids, &len);
	if (rc != 0)
		return errf("--text: %s", errmsg());
	if (len == 0) {
		free(*ids);
		return errf("--text: the prompt has no tokens");
	}
	*n = (int)len;
	return 0;
}

int prompt_tokens(const prompt_spec *p, const tokenizer *tok, const hf_config *cfg, int32_t **ids, int *n)
{
	if (p->text && p->ids)
		return errf("give --text or --prompt, not both");
	if (p->text && !tok)
		return errf("--text: the model has no tokenizer.json");
	if (p->text)
		return text_prompt(p, tok, ids, n);
	return p->ids ? id_prompt(p->ids, cfg, ids, n) : bos_prompt(cfg, ids, n);
}
