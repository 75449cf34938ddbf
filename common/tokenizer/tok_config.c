/* tok_config.c: what a model directory says about its tokenizer beyond
 * tokenizer.json: tokenizer_config.json gives bos_token and eos_token (a
 * string, or an object with "content" in older files) and chat_template (a
 * Jinja string, or a list of {"name", "template"}); chat_template.jinja may
 * hold the template instead. generation_config.json gives eos_token_id, one
 * id or a list (Llama 3.1 stops on three). The chat family is recognised
 * here, from marker strings in the template, since loading records it.
 * Below tokenizer.c (which calls tok_read_configs while loading).
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Families */

static const char *const chat_names[] = {
	[TOK_CHAT_NONE] = "none",         [TOK_CHAT_LLAMA3] = "llama3",
	[TOK_CHAT_CHATML] = "chatml",     [TOK_CHAT_QWEN25] = "qwen2.5",
	[TOK_CHAT_QWEN3] = "qwen3",       [TOK_CHAT_GEMMA3] = "gemma3",
	[TOK_CHAT_MISTRAL] = "mistral",   [TOK_CHAT_MISTRAL_V1] = "mistral-v1",
	[TOK_CHAT_MISTRAL_V3] = "mistral-v3", [TOK_CHAT_MISTRAL_TEKKEN] = "mistral-tekken",
	[TOK_CHAT_PHI3] = "phi3",         [TOK_CHAT_PHI4_MINI] = "phi4-mini",
	[TOK_CHAT_PHI4] = "phi4",         [TOK_CHAT_GRANITE] = "granite",
	[TOK_CHAT_GRANITE31] = "granite3.1", [TOK_CHAT_GRANITE33] = "granite3.3",
	[TOK_CHAT_TULU] = "tulu",
	[TOK_CHAT_SMOLLM3] = "smollm3",   [TOK_CHAT_UNKNOWN] = "unknown",
};

const char *tokenizer_chat_name(tok_chat f)
{
	return (unsigned)f <= TOK_CHAT_UNKNOWN ? chat_names[f] : "unknown";
}

const char *tokenizer_chat_names(void)
{
	return "none, llama3, chatml, qwen2.5, qwen3, gemma3, mistral, mistral-v1, mistral-v3, mistral-tekken, "
	       "phi3, phi4-mini, phi4, granite, granite3.1, granite3.3, tulu, smollm3";
}

int tokenizer_chat_from_name(const char *name, tok_chat *out)
{
	static const struct {
		const char *name;
		tok_chat f;
	} alias[] = {
		{"llama", TOK_CHAT_LLAMA3}, {"qwen", TOK_CHAT_QWEN3}, {"qwen25", TOK_CHAT_QWEN25},
		{"gemma", TOK_CHAT_GEMMA3}, {"olmo2", TOK_CHAT_TULU},
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
	return errf("unknown chat template '%s' (%s)", name, tokenizer_chat_names());
}

/* needle in tpl with its quotes as written, or with ' and " swapped (templates use both). */
static int has_quoted(const char *tpl, const char *needle)
{
	char alt[128];
	size_t n = strlen(needle);

	if (strstr(tpl, needle))
		return 1;
	ASSERT(n < sizeof alt);
	for (size_t i = 0; i <= n; i++)
		alt[i] = needle[i] == '\'' ? '"' : needle[i];
	return strstr(tpl, alt) != NULL;
}

/* Mistral's [INST] templates differ in the spaces around the text. */
static tok_chat detect_mistral(const char *tpl)
{
	static const struct {
		const char *quoted; /* the first of these the template has decides */
		tok_chat f;
	} shapes[] = {
		{"' [INST] '", TOK_CHAT_MISTRAL_V1}, {"' [/INST]'", TOK_CHAT_MISTRAL},
		{"'[INST] '", TOK_CHAT_MISTRAL_V3},  {"'[INST]'", TOK_CHAT_MISTRAL_TEKKEN},
	};

	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		if (has_quoted(tpl, shapes[i].quoted))
			return shapes[i].f;
	return TOK_CHAT_UNKNOWN;
}

/* Granite's default system turn: none (3.0), its sentences on lines (3.1,
 * 3.2) or on one line (3.3). */
static tok_chat detect_granite(const char *tpl)
{
	if (strstr(tpl, "Knowledge Cutoff Date: April 2024. Today's Date: "))
		return TOK_CHAT_GRANITE33;
	return strstr(tpl, "Knowledge Cutoff Date: April 2024") ? TOK_CHAT_GRANITE31 : TOK_CHAT_GRANITE;
}

static tok_chat detect_chatml(const char *tpl)
{
	if (strstr(tpl, "<|im_sep|>"))
		return TOK_CHAT_PHI4;
	if (strstr(tpl, "Reasoning Mode"))
		return TOK_CHAT_SMOLLM3;
	if (strstr(tpl, "enable_thinking") || strstr(tpl, "<think>"))
		return TOK_CHAT_QWEN3;
	if (strstr(tpl, "You are Qwen, created by Alibaba Cloud"))
		return TOK_CHAT_QWEN25;
	return TOK_CHAT_CHATML;
}

tok_chat tokenizer_chat_detect(const char *tpl)
{
	if (!tpl || !*tpl)
		return TOK_CHAT_NONE;
	if (strstr(tpl, "<|start_header_id|>"))
		return TOK_CHAT_LLAMA3;
	if (strstr(tpl, "<start_of_turn>"))
		return TOK_CHAT_GEMMA3;
	if (strstr(tpl, "<|start_of_role|>"))
		return detect_granite(tpl);
	if (strstr(tpl, "<|im_start|>"))
		return detect_chatml(tpl);
	if (strstr(tpl, "[INST]"))
		return detect_mistral(tpl);
	if (strstr(tpl, "<|end|>") && (strstr(tpl, "<|user|>") || has_quoted(tpl, "'<|' + message['role'] + '|>'")))
		return has_quoted(tpl, "|>' + message['content'] + '<|end|>'") ? TOK_CHAT_PHI4_MINI : TOK_CHAT_PHI3;
	if (strstr(tpl, "<|user|>") && strstr(tpl, "<|assistant|>"))
		return TOK_CHAT_TULU;
	return TOK_CHAT_UNKNOWN;
}

tok_chat tokenizer_chat_family(const tokenizer *t) { return t->chat; }
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
	if (read_file(*path, FS_MAX_TEXT, &data, &len) < 0)
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
	if (rc == 0 && !tpl && path_exists(jpath) && (rc = read_file(jpath, FS_MAX_TEXT, &jinja, &len)) == 0)
		tpl = jinja;
	if (rc == 0) {
		t->chat = tokenizer_chat_detect(tpl);
		t->chat_bos = tpl && strstr(tpl, "bos_token") != NULL;
	}
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
