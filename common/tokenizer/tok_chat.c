/* tok_chat.c: chat prompts and stop tokens, above the tokenizer proper.
 *
 * Chat templates are not interpreted: the family (tok_config.c recognised it
 * from the template) selects a hand-written equivalent of that family's
 * template that renders one user turn (ANEMLL's chat.py sends only the
 * latest user message each turn, with add_generation_prompt=True). The text
 * is then encoded with special tokens parsed and no BOS added, as
 * apply_chat_template does, since each template writes its own BOS.
 */
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Rendering */

static int py_space(uint32_t cp)
{
	/* Jinja's trim is Python's str.strip(): White_Space plus U+001C..U+001F */
	return tok_is_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

/* Append s without leading and trailing whitespace. */
static void add_trimmed(tok_buf *b, const char *s)
{
	size_t n = strlen(s), start = 0, end = 0;
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t len = tok_utf8_next(s, n, i, &cp);
		if (!py_space(cp)) {
			if (end == 0)
				start = i;
			end = i + len;
		}
		i += len;
	}
	tok_buf_add(b, s + start, end - start);
}

static void add_str(tok_buf *b, const char *s) { tok_buf_add(b, s, strlen(s)); }

static const char qwen25_system[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

static void render_chatml(tok_buf *b, tok_chat f, const char *system, const char *user, int flags)
{
	if (!system && f == TOK_CHAT_QWEN25)
		system = qwen25_system;
	if (system) {
		add_str(b, "<|im_start|>system\n");
		add_str(b, system);
		add_str(b, "<|im_end|>\n");
	}
	add_str(b, "<|im_start|>user\n");
	add_str(b, user);
	add_str(b, "<|im_end|>\n<|im_start|>assistant\n");
	if (f == TOK_CHAT_QWEN3 && (flags & TOK_CHAT_NO_THINK))
		add_str(b, "<think>\n\n</think>\n\n");
}

static void render(tok_buf *b, tok_chat f, const char *system, const char *user, int flags)
{
	switch (f) {
	case TOK_CHAT_LLAMA3:
		add_str(b, "<|begin_of_text|>");
		if (system) {
			add_str(b, "<|start_header_id|>system<|end_header_id|>\n\n");
			add_trimmed(b, system);
			add_str(b, "<|eot_id|>");
		}
		add_str(b, "<|start_header_id|>user<|end_header_id|>\n\n");
		add_trimmed(b, user);
		add_str(b, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
		break;
	case TOK_CHAT_GEMMA3:
		/* Gemma has no system role: the template puts it before the first
		 * user message. */
		add_str(b, "<bos><start_of_turn>user\n");
		if (system) {
			add_str(b, system);
			add_str(b, "\n\n");
		}
		add_trimmed(b, user);
		add_str(b, "<end_of_turn>\n<start_of_turn>model\n");
		break;
	case TOK_CHAT_CHATML:
	case TOK_CHAT_QWEN25:
	case TOK_CHAT_QWEN3:
		render_chatml(b, f, system, user, flags);
		break;
	default:
		BUG("render family %d", (int)f);
	}
}

int tokenizer_chat_text(tok_chat f, const char *system, const char *user, int flags, char **text)
{
	tok_buf b = {0};

	*text = NULL;
	if (!user)
		user = "";
	if (tok_utf8_check(user, strlen(user), NULL) < 0 ||
	    (system && tok_utf8_check(system, strlen(system), NULL) < 0))
		return errf("chat prompt is not valid UTF-8");
	if (f == TOK_CHAT_UNKNOWN || (unsigned)f > TOK_CHAT_UNKNOWN)
		return errf("no chat format for this chat template (use one of none, llama3, chatml, "
			    "qwen2.5, qwen3, gemma3)");
	if (f == TOK_CHAT_NONE) {
		if (system)
			return errf("chat format 'none' has no place for a system prompt");
		add_str(&b, user);
	} else {
		render(&b, f, system, user, flags);
	}
	*text = b.p ? b.p : xcalloc(1, 1);
	return 0;
}

/* Special tokens each family's text relies on. */
static int check_tokens(const tokenizer *t, tok_chat f, int flags)
{
	static const char *const need[][5] = {
		[TOK_CHAT_LLAMA3] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
				     "<|eot_id|>"},
		[TOK_CHAT_CHATML] = {"<|im_start|>", "<|im_end|>"},
		[TOK_CHAT_QWEN25] = {"<|im_start|>", "<|im_end|>"},
		[TOK_CHAT_QWEN3] = {"<|im_start|>", "<|im_end|>"},
		[TOK_CHAT_GEMMA3] = {"<bos>", "<start_of_turn>", "<end_of_turn>"},
	};

	for (int i = 0; f < TOK_CHAT_UNKNOWN && i < 5 && need[f][i]; i++)
		if (tok_strmap_get(&t->added_ids, need[f][i], strlen(need[f][i])) < 0)
			return errf("%s: chat format '%s' needs the added token '%s'", t->name,
				    tokenizer_chat_name(f), need[f][i]);
	if (f == TOK_CHAT_QWEN3 && (flags & TOK_CHAT_NO_THINK) && tokenizer_token_to_id(t, "<think>") < 0)
		return errf("%s: chat format 'qwen3' needs the token '<think>'", t->name);
	return 0;
}

int tokenizer_chat_prompt(const tokenizer *t, tok_chat f, const char *system, const char *user,
			  int flags, int32_t **ids, size_t *n)
{
	char *text;

	*ids = NULL;
	*n = 0;
	if (tokenizer_chat_text(f, system, user, flags, &text) < 0 || check_tokens(t, f, flags) < 0) {
		free(text);
		return -1;
	}
	int rc = tokenizer_encode(t, text, strlen(text), f == TOK_CHAT_NONE ? 0 : TOK_NO_ADD_SPECIAL,
				  ids, n);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------------
 * Stop tokens */

static void stop_add(tok_ids *ids, int32_t id)
{
	if (id < 0)
		return;
	for (size_t i = 0; i < ids->n; i++)
		if (ids->v[i] == id)
			return;
	tok_ids_add(ids, id);
}

size_t tokenizer_stop_ids(const tokenizer *t, int32_t *out, size_t cap)
{
	static const char *const names[] = {"<|endoftext|>", "<end_of_turn>", "<|eot_id|>", "<|im_end|>"};
	tok_ids ids = {0};

	stop_add(&ids, tokenizer_eos_id(t));
	for (size_t i = 0; i < t->n_eos; i++)
		stop_add(&ids, t->eos_ids[i]);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		stop_add(&ids, tokenizer_token_to_id(t, names[i]));
	size_t n = ids.n;
	if (n)
		memcpy(out, ids.v, (n < cap ? n : cap) * sizeof *out);
	free(ids.v);
	return n;
}
