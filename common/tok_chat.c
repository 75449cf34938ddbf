/* tok_chat.c: what a model directory says about its tokenizer beyond
 * tokenizer.json, and chat prompts.
 *
 * tokenizer_config.json gives bos_token and eos_token (a string, or an
 * object with "content" in older files) and chat_template (a Jinja string,
 * or a list of {"name", "template"}); chat_template.jinja may hold the
 * template instead. generation_config.json gives eos_token_id, one id or a
 * list (Llama 3.1 stops on three).
 *
 * Chat templates are not interpreted: we recognise the family from marker
 * strings in the template and render one user turn with a hand-written
 * equivalent of that family's template (ANEMLL's chat.py sends only the
 * latest user message each turn, with add_generation_prompt=True). The text
 * is then encoded with special tokens parsed and no BOS added, as
 * apply_chat_template does, since each template writes its own BOS.
 */
#include "tok_internal.h"
#include "fsutil.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Families */

static const char *const chat_names[] = {
	[TOK_CHAT_NONE] = "none",     [TOK_CHAT_LLAMA3] = "llama3", [TOK_CHAT_CHATML] = "chatml",
	[TOK_CHAT_QWEN25] = "qwen2.5", [TOK_CHAT_QWEN3] = "qwen3",  [TOK_CHAT_GEMMA3] = "gemma3",
	[TOK_CHAT_UNKNOWN] = "unknown",
};

const char *tokenizer_chat_name(tok_chat f)
{
	return (unsigned)f <= TOK_CHAT_UNKNOWN ? chat_names[f] : "unknown";
}

int tokenizer_chat_from_name(const char *name, tok_chat *out)
{
	static const struct {
		const char *name;
		tok_chat f;
	} alias[] = {
		{"llama", TOK_CHAT_LLAMA3}, {"qwen", TOK_CHAT_QWEN3}, {"qwen25", TOK_CHAT_QWEN25},
		{"gemma", TOK_CHAT_GEMMA3},
	};

	for (int f = TOK_CHAT_NONE; f < TOK_CHAT_UNKNOWN; f++)
		if (streq(name, chat_names[f])) {
			*out = (tok_chat)f;
			return 0;
		}
	for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
		if (streq(name, alias[i].name)) {
			*out = alias[i].f;
			return 0;
		}
	return errf("unknown chat template '%s' (none, llama3, chatml, qwen2.5, qwen3, gemma3)", name);
}

tok_chat tokenizer_chat_detect(const char *tpl)
{
	if (!tpl || !*tpl)
		return TOK_CHAT_NONE;
	if (strstr(tpl, "<|start_header_id|>"))
		return TOK_CHAT_LLAMA3;
	if (strstr(tpl, "<start_of_turn>"))
		return TOK_CHAT_GEMMA3;
	if (strstr(tpl, "<|im_start|>")) {
		if (strstr(tpl, "enable_thinking") || strstr(tpl, "<think>"))
			return TOK_CHAT_QWEN3;
		if (strstr(tpl, "You are Qwen, created by Alibaba Cloud"))
			return TOK_CHAT_QWEN25;
		return TOK_CHAT_CHATML;
	}
	return TOK_CHAT_UNKNOWN;
}

tok_chat tokenizer_chat_family(const tokenizer *t) { return t->chat; }

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

/* ------------------------------------------------------------------------
 * Config files */

/* A token named by a config field: "text", {"content": "text"} or null. */
static int config_token(tokenizer *t, const char *file, const cJSON *cfg, const char *key,
			int32_t *id)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);

	if (cJSON_IsObject(v))
		v = cJSON_GetObjectItemCaseSensitive(v, "content");
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return errf("%s: %s: not a string", file, key);
	if ((*id = tokenizer_token_to_id(t, v->valuestring)) < 0)
		return errf("%s: %s: token '%s' is not in the vocabulary", file, key,
			    tok_quote(v->valuestring, strlen(v->valuestring)));
	return 0;
}

/* The default template of a config's chat_template (string or list). */
static const char *config_template(const cJSON *cfg)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *first = NULL;

	if (cJSON_IsString(v))
		return v->valuestring;
	if (!cJSON_IsArray(v))
		return NULL;
	for (const cJSON *e = v->child; e; e = e->next) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
		const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
		if (!cJSON_IsString(tpl))
			continue;
		if (cJSON_IsString(name) && streq(name->valuestring, "default"))
			return tpl->valuestring;
		if (!first)
			first = tpl;
	}
	return first ? first->valuestring : NULL;
}

/* Parse an optional JSON file of dir; *root NULL when it does not exist. */
static int read_json(const char *dir, const char *name, char **path, cJSON **root)
{
	char *data;
	size_t len;

	*root = NULL;
	*path = path_join(dir, name);
	if (!path_exists(*path))
		return 0;
	if (read_file(*path, &data, &len) < 0)
		return -1;
	*root = cJSON_ParseWithLength(data, len);
	free(data);
	if (!cJSON_IsObject(*root)) {
		cJSON_Delete(*root);
		*root = NULL;
		return errf("%s: not a JSON object", *path);
	}
	return 0;
}

static int read_tokenizer_config(tokenizer *t, const char *dir)
{
	char *path, *jpath = path_join(dir, "chat_template.jinja"), *jinja = NULL;
	const char *tpl = NULL;
	size_t len;
	cJSON *cfg;
	int rc = read_json(dir, "tokenizer_config.json", &path, &cfg);

	if (rc == 0 && cfg) {
		if (config_token(t, path, cfg, "bos_token", &t->bos_id) < 0 ||
		    config_token(t, path, cfg, "eos_token", &t->eos_id) < 0)
			rc = -1;
		tpl = config_template(cfg);
	}
	if (rc == 0 && !tpl && path_exists(jpath) && (rc = read_file(jpath, &jinja, &len)) == 0)
		tpl = jinja;
	if (rc == 0)
		t->chat = tokenizer_chat_detect(tpl);
	free(jinja);
	free(jpath);
	cJSON_Delete(cfg);
	free(path);
	return rc;
}

static int read_generation_config(tokenizer *t, const char *dir)
{
	char *path;
	cJSON *cfg;
	tok_ids ids = {0};
	int rc = read_json(dir, "generation_config.json", &path, &cfg);
	const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "eos_token_id") : NULL;

	if (v && !cJSON_IsNull(v)) {
		const cJSON *one = cJSON_IsArray(v) ? v->child : v;
		for (; rc == 0 && one; one = cJSON_IsArray(v) ? one->next : NULL) {
			double d = one->valuedouble;
			if (!cJSON_IsNumber(one) || !(d >= 0 && d < (double)t->n_tokens) ||
			    d != (double)(int32_t)d)
				rc = errf("%s: eos_token_id: not a token id", path);
			else
				tok_ids_add(&ids, (int32_t)d);
		}
	}
	t->eos_ids = ids.v;
	t->n_eos = ids.n;
	cJSON_Delete(cfg);
	free(path);
	return rc;
}

int tok_read_configs(tokenizer *t, const char *dir)
{
	if (read_tokenizer_config(t, dir) < 0 || read_generation_config(t, dir) < 0)
		return -1;
	return 0;
}
