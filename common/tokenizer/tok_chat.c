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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* strftime_now(fmt) of the templates, in English (the C locale): the UTC
 * date of SOURCE_DATE_EPOCH when set, so a prompt can be reproduced. */
static void add_today(tok_buf *b, const char *fmt)
{
	const char *env = getenv("SOURCE_DATE_EPOCH");
	char *end = NULL, buf[64];
	long long v = env && *env ? strtoll(env, &end, 10) : -1;
	time_t t = v >= 0 && end && !*end ? (time_t)v : time(NULL);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof buf, fmt, &tm))
		BUG("no date for the chat template");
	add_str(b, buf);
}

/* Mistral: the system prompt joins the user turn, as its templates do. */
static void render_mistral(tok_buf *b, tok_chat f, const char *system, const char *user)
{
	add_str(b, f == TOK_CHAT_MISTRAL_V1 ? " [INST] " : f == TOK_CHAT_MISTRAL_TEKKEN ? "[INST]" : "[INST] ");
	if (system) {
		add_str(b, system);
		add_str(b, "\n\n");
	}
	add_str(b, user);
	add_str(b, f == TOK_CHAT_MISTRAL || f == TOK_CHAT_MISTRAL_V1 ? " [/INST]" : "[/INST]");
}

static void render_granite(tok_buf *b, tok_chat f, const char *system, const char *user)
{
	const char *sep = f == TOK_CHAT_GRANITE33 ? " " : "\n";

	if (system || f != TOK_CHAT_GRANITE) {
		add_str(b, "<|start_of_role|>system<|end_of_role|>");
		if (system) {
			add_str(b, system);
		} else {
			add_str(b, "Knowledge Cutoff Date: April 2024.");
			add_str(b, sep);
			add_str(b, "Today's Date: ");
			add_today(b, "%B %d, %Y");
			add_str(b, ".");
			add_str(b, sep);
			add_str(b, "You are Granite, developed by IBM. You are a helpful AI assistant.");
		}
		add_str(b, "<|end_of_text|>\n");
	}
	add_str(b, "<|start_of_role|>user<|end_of_role|>");
	add_str(b, user);
	add_str(b, "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>");
}

static const char smollm3_think[] =
	"You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
	"thoroughly exploring questions through a systematic thinking process before providing the final precise and "
	"accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
	"reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
	"structure your response into two main sections: Thought and Solution using the specified format: <think> "
	"Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. "
	"Each step should include detailed considerations such as analysing questions, summarizing relevant findings, "
	"brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
	"previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
	"Thought section, systematically present the final solution that you deem correct. The Solution section should "
	"be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.";

/* SmolLM3's metadata system turn; its template leaves it without <|im_end|>. */
static void render_smollm3(tok_buf *b, const char *system, const char *user, int flags)
{
	int think = !(flags & TOK_CHAT_NO_THINK);

	add_str(b, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: ");
	add_today(b, "%d %B %Y");
	add_str(b, think ? "\nReasoning Mode: /think\n\n## Custom Instructions\n\n"
			 : "\nReasoning Mode: /no_think\n\n## Custom Instructions\n\n");
	add_str(b, system ? system
			  : think ? smollm3_think : "You are a helpful AI assistant named SmolLM, trained by Hugging Face.");
	add_str(b, "\n\n<|im_start|>user\n");
	add_str(b, user);
	add_str(b, "<|im_end|>\n<|im_start|>assistant\n");
	if (!think)
		add_str(b, "<think>\n\n</think>\n");
}

/* The Phi and Tulu turns: <|role|>, then a newline in all but Phi-4-mini. */
static void render_phi(tok_buf *b, tok_chat f, const char *system, const char *user)
{
	const char *nl = f == TOK_CHAT_PHI4_MINI ? "" : "\n", *end = f == TOK_CHAT_TULU ? "\n" : "<|end|>";

	if (system) {
		add_str(b, "<|system|>");
		add_str(b, nl);
		add_str(b, system);
		add_str(b, end);
		add_str(b, f == TOK_CHAT_PHI3 ? "\n" : "");
	}
	add_str(b, "<|user|>");
	add_str(b, nl);
	add_str(b, user);
	add_str(b, end);
	add_str(b, f == TOK_CHAT_PHI3 ? "\n<|assistant|>" : "<|assistant|>");
	add_str(b, nl);
}

static void render_phi4(tok_buf *b, const char *system, const char *user)
{
	if (system) {
		add_str(b, "<|im_start|>system<|im_sep|>");
		add_str(b, system);
		add_str(b, "<|im_end|>");
	}
	add_str(b, "<|im_start|>user<|im_sep|>");
	add_str(b, user);
	add_str(b, "<|im_end|><|im_start|>assistant<|im_sep|>");
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
	case TOK_CHAT_MISTRAL:
	case TOK_CHAT_MISTRAL_V1:
	case TOK_CHAT_MISTRAL_V3:
	case TOK_CHAT_MISTRAL_TEKKEN:
		render_mistral(b, f, system, user);
		break;
	case TOK_CHAT_GRANITE:
	case TOK_CHAT_GRANITE31:
	case TOK_CHAT_GRANITE33:
		render_granite(b, f, system, user);
		break;
	case TOK_CHAT_SMOLLM3:
		render_smollm3(b, system, user, flags);
		break;
	case TOK_CHAT_PHI3:
	case TOK_CHAT_PHI4_MINI:
	case TOK_CHAT_TULU:
		render_phi(b, f, system, user);
		break;
	case TOK_CHAT_PHI4:
		render_phi4(b, system, user);
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
		return errf("no chat format for this chat template (use one of %s)", tokenizer_chat_names());
	if ((f == TOK_CHAT_NONE || f == TOK_CHAT_MISTRAL) && system)
		return errf("chat format '%s' has no place for a system prompt", tokenizer_chat_name(f));
	if (f == TOK_CHAT_NONE) {
		add_str(&b, user);
	} else {
		render(&b, f, system, user, flags);
	}
	*text = b.p ? b.p : xcalloc(1, 1);
	return 0;
}

/* Special tokens each family's text relies on (Mistral's [INST] and Tulu's
 * <|user|> are plain text in some of their vocabularies). */
static int check_tokens(const tokenizer *t, tok_chat f, int flags)
{
	static const char *const need[][5] = {
		[TOK_CHAT_LLAMA3] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
				     "<|eot_id|>"},
		[TOK_CHAT_CHATML] = {"<|im_start|>", "<|im_end|>"},
		[TOK_CHAT_QWEN25] = {"<|im_start|>", "<|im_end|>"},
		[TOK_CHAT_QWEN3] = {"<|im_start|>", "<|im_end|>"},
		[TOK_CHAT_GEMMA3] = {"<bos>", "<start_of_turn>", "<end_of_turn>"},
		[TOK_CHAT_PHI3] = {"<|user|>", "<|end|>", "<|assistant|>"},
		[TOK_CHAT_PHI4_MINI] = {"<|user|>", "<|end|>", "<|assistant|>"},
		[TOK_CHAT_PHI4] = {"<|im_start|>", "<|im_sep|>", "<|im_end|>"},
		[TOK_CHAT_GRANITE] = {"<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"},
		[TOK_CHAT_GRANITE31] = {"<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"},
		[TOK_CHAT_GRANITE33] = {"<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"},
		[TOK_CHAT_SMOLLM3] = {"<|im_start|>", "<|im_end|>"},
	};

	for (int i = 0; f < TOK_CHAT_UNKNOWN && i < 5 && need[f][i]; i++)
		if (tok_strmap_get(&t->added_ids, need[f][i], strlen(need[f][i])) < 0)
			return errf("%s: chat format '%s' needs the added token '%s'", t->name,
				    tokenizer_chat_name(f), need[f][i]);
	if ((f == TOK_CHAT_QWEN3 || f == TOK_CHAT_SMOLLM3) && (flags & TOK_CHAT_NO_THINK) &&
	    tokenizer_token_to_id(t, "<think>") < 0)
		return errf("%s: chat format '%s' needs the token '<think>'", t->name, tokenizer_chat_name(f));
	return 0;
}

/* The BOS text a family's template opens with, "" for none. */
static int bos_text(const tokenizer *t, tok_chat f, const char **text)
{
	int mistral = f == TOK_CHAT_MISTRAL || f == TOK_CHAT_MISTRAL_V1 || f == TOK_CHAT_MISTRAL_V3 ||
		      f == TOK_CHAT_MISTRAL_TEKKEN;

	*text = "";
	if (!mistral && !((f == TOK_CHAT_PHI3 || f == TOK_CHAT_TULU) && t->chat_bos))
		return 0;
	if (!(*text = tokenizer_id_to_token(t, tokenizer_bos_id(t))))
		return errf("%s: chat format '%s' opens with the BOS token, and the tokenizer has none", t->name,
			    tokenizer_chat_name(f));
	return 0;
}

int tokenizer_chat_prompt(const tokenizer *t, tok_chat f, const char *system, const char *user,
			  int flags, int32_t **ids, size_t *n)
{
	char *text = NULL;
	const char *bos;

	*ids = NULL;
	*n = 0;
	if (tokenizer_chat_text(f, system, user, flags, &text) < 0 || check_tokens(t, f, flags) < 0 ||
	    bos_text(t, f, &bos) < 0) {
		free(text);
		return -1;
	}
	tok_buf b = {0};
	add_str(&b, bos);
	add_str(&b, text);
	int rc = tokenizer_encode(t, b.p, b.len, f == TOK_CHAT_NONE ? 0 : TOK_NO_ADD_SPECIAL, ids, n);
	tok_buf_release(&b);
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
	static const char *const names[] = {"<|endoftext|>", "<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>"};
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
