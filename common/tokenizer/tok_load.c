/* tok_load.c: tokenizer.json -> struct tokenizer.
 *
 * tokenizer.json (HuggingFace `tokenizers` serialization) is a JSON object:
 *   model          {"type": "BPE", "vocab": {token: id}, "merges": ["a b" |
 *                  ["a", "b"]], "unk_token", "byte_fallback", "fuse_unk",
 *                  "ignore_merges", "dropout", ...}
 *   added_tokens   [{"id", "content", "special", "lstrip", "rstrip",
 *                  "single_word", "normalized"}]
 *   normalizer, pre_tokenizer, post_processor, decoder: null or {"type": ...},
 *                  with "Sequence" holding a list of the same kind
 *   truncation, padding: must be null here (we encode whole texts)
 *
 * The file is untrusted (and fuzzed): every field is type-checked, every id
 * range-checked, every string checked to be UTF-8, and a problem becomes one
 * line "<file>: <field>: <problem>" through errf(). Components we do not
 * implement are refused as "unsupported <component> '<type>'" rather than
 * silently giving different ids from HuggingFace.
 */
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 8 }; /* Sequence nesting; real files use 1 */

/* ------------------------------------------------------------------------
 * Field access with messages */

static int bad(const tokenizer *t, const char *field, const char *fmt, ...) PRINTF_LIKE(3, 4);
static int bad(const tokenizer *t, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return errf("%s: %s: %s", t->name, field, msg);
}

/* A JSON string quoted for a message. */
static const char *q(const char *s) { return tok_quote(s, strlen(s)); }

static const cJSON *member(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static int absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* String member key of obj; optional ones give NULL when absent or null. */
static int get_str(const tokenizer *t, const cJSON *obj, const char *key, const char *path, int must,
		   const char **out)
{
	const cJSON *v = member(obj, key);

	*out = NULL;
	if (absent(v))
		return must ? bad(t, path, "missing '%s'", key) : 0;
	if (!cJSON_IsString(v))
		return bad(t, path, "'%s' is not a string", key);
	if (tok_utf8_check(v->valuestring, strlen(v->valuestring), NULL) < 0)
		return bad(t, path, "'%s' is not valid UTF-8", key);
	*out = v->valuestring;
	return 0;
}

static int get_bool(const tokenizer *t, const cJSON *obj, const char *key, const char *path, int def,
		    int *out)
{
	const cJSON *v = member(obj, key);

	*out = def;
	if (absent(v))
		return 0;
	if (!cJSON_IsBool(v))
		return bad(t, path, "'%s' is not true or false", key);
	*out = cJSON_IsTrue(v);
	return 0;
}

static int get_int(const tokenizer *t, const cJSON *v, const char *path, long lo, long hi, long *out)
{
	*out = 0;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
	    v->valuedouble != (double)(long)v->valuedouble)
		return bad(t, path, "expected an integer from %ld to %ld", lo, hi);
	*out = (long)v->valuedouble;
	return 0;
}

/* A string that is exactly one character (Metaspace, Strip). */
static int get_char(const tokenizer *t, const cJSON *obj, const char *key, const char *path,
		    const char **s, uint32_t *cp)
{
	if (get_str(t, obj, key, path, 1, s) < 0)
		return -1;
	size_t n = strlen(*s);
	if (!n || tok_utf8_next(*s, n, 0, cp) != n)
		return bad(t, path, "'%s' must be a single character", key);
	return 0;
}

/* {"String": s} or {"Regex": r} of Split and Replace. */
static int get_pattern(const tokenizer *t, const cJSON *obj, const char *path, const char **str,
		       int *is_regex)
{
	const cJSON *p = member(obj, "pattern");

	if (!cJSON_IsObject(p))
		return bad(t, path, "'pattern' is missing or not an object");
	*is_regex = member(p, "Regex") != NULL;
	if (get_str(t, p, *is_regex ? "Regex" : "String", path, 1, str) < 0)
		return -1;
	if (!**str)
		return bad(t, path, "empty pattern");
	return 0;
}

static const char *dup(tokenizer *t, const char *s) { return tok_arena_dup(&t->arena, s, strlen(s)); }

/* The type of a component and the list of a Sequence of them. */
static int get_type(const tokenizer *t, const cJSON *v, const char *path, int depth,
		    const char **type)
{
	if (!cJSON_IsObject(v))
		return bad(t, path, "not an object");
	if (depth > MAX_DEPTH)
		return bad(t, path, "Sequence nested too deeply");
	return get_str(t, v, "type", path, 1, type);
}

/* ------------------------------------------------------------------------
 * Model */

static int parse_model_options(tokenizer *t, const cJSON *m, const char **unk)
{
	const char *type, *s;
	const cJSON *dropout = member(m, "dropout");

	if (!cJSON_IsObject(m))
		return bad(t, "model", "missing or not an object");
	if (get_str(t, m, "type", "model", 0, &type) < 0)
		return -1;
	if (type && !streq(type, "BPE"))
		return errf("%s: unsupported model '%s'", t->name, q(type));
	if (!type && !member(m, "merges")) /* HF tells models apart by their fields */
		return errf("%s: unsupported model (no type and no merges)", t->name);
	if (!absent(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
		return errf("%s: unsupported model.dropout (random merges)", t->name);
	if (get_str(t, m, "continuing_subword_prefix", "model", 0, &s) < 0)
		return -1;
	if (s && *s)
		return errf("%s: unsupported model.continuing_subword_prefix '%s'", t->name, q(s));
	if (get_str(t, m, "end_of_word_suffix", "model", 0, &s) < 0)
		return -1;
	if (s && *s)
		return errf("%s: unsupported model.end_of_word_suffix '%s'", t->name, q(s));
	if (get_bool(t, m, "byte_fallback", "model", 0, &t->byte_fallback) < 0 ||
	    get_bool(t, m, "fuse_unk", "model", 0, &t->fuse_unk) < 0 ||
	    get_bool(t, m, "ignore_merges", "model", 0, &t->ignore_merges) < 0)
		return -1;
	return get_str(t, m, "unk_token", "model", 0, unk);
}

static int parse_vocab(tokenizer *t, const cJSON *vocab)
{
	size_t i = 0;

	if (!cJSON_IsObject(vocab))
		return bad(t, "model.vocab", "missing or not an object");
	for (const cJSON *e = vocab->child; e; e = e->next, i++) {
		char path[64];
		long id;
		size_t n = strlen(e->string);
		snprintf(path, sizeof path, "model.vocab entry %zu", i);
		if (tok_utf8_check(e->string, n, NULL) < 0)
			return bad(t, path, "token is not valid UTF-8");
		if (get_int(t, e, path, 0, INT32_MAX - 1, &id) < 0)
			return -1;
		tok_strmap_put(&t->vocab, &t->arena, e->string, n, (int32_t)id);
	}
	return 0;
}

static int parse_added(tokenizer *t, const cJSON *list)
{
	size_t i = 0;

	if (absent(list))
		return 0;
	if (!cJSON_IsArray(list))
		return bad(t, "added_tokens", "not a list");
	t->added = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *t->added);
	for (const cJSON *e = list->child; e; e = e->next, i++) {
		char path[64];
		const char *content;
		long id;
		int special, lstrip, rstrip, single, normalized;
		snprintf(path, sizeof path, "added_tokens[%zu]", i);
		if (!cJSON_IsObject(e))
			return bad(t, path, "not an object");
		if (get_str(t, e, "content", path, 1, &content) < 0 ||
		    get_int(t, member(e, "id"), path, 0, INT32_MAX - 1, &id) < 0 ||
		    get_bool(t, e, "special", path, 0, &special) < 0 ||
		    get_bool(t, e, "lstrip", path, 0, &lstrip) < 0 ||
		    get_bool(t, e, "rstrip", path, 0, &rstrip) < 0 ||
		    get_bool(t, e, "single_word", path, 0, &single) < 0 ||
		    get_bool(t, e, "normalized", path, !special, &normalized) < 0)
			return -1;
		if (!*content)
			return bad(t, path, "empty content");
		tok_added *a = &t->added[t->n_added++];
		a->len = strlen(content);
		a->content = tok_arena_dup(&t->arena, content, a->len);
		a->id = (int32_t)id;
		a->special = (uint8_t)special;
		a->lstrip = (uint8_t)lstrip;
		a->rstrip = (uint8_t)rstrip;
		a->single_word = (uint8_t)single;
		a->normalized = (uint8_t)normalized;
		tok_strmap_put(&t->added_ids, &t->arena, a->content, a->len, a->id);
	}
	return 0;
}

/* id -> token table over the vocab and the added tokens (which win). */
static int build_ids(tokenizer *t)
{
	long max = -1;
	size_t count = t->vocab.n + t->n_added;

	for (size_t i = 0; i < t->vocab.n; i++)
		if (t->vocab.ents[i].val > max)
			max = t->vocab.ents[i].val;
	for (size_t i = 0; i < t->n_added; i++)
		if (t->added[i].id > max)
			max = t->added[i].id;
	/* Real vocabularies are dense; this bounds the table by the file size. */
	if (max >= 0 && (size_t)max > 2 * count + 1024)
		return bad(t, "model.vocab", "ids are too sparse (highest %ld for %zu tokens)", max, count);
	t->n_tokens = (size_t)(max + 1);
	t->tokens = xcalloc(t->n_tokens + 1, sizeof *t->tokens);
	for (size_t i = 0; i < t->vocab.n; i++) {
		tok_token *k = &t->tokens[t->vocab.ents[i].val];
		if (!k->s)
			*k = (tok_token){t->vocab.ents[i].s, t->vocab.ents[i].len, 0, 0};
	}
	for (size_t i = 0; i < t->n_added; i++)
		t->tokens[t->added[i].id] =
			(tok_token){t->added[i].content, (uint32_t)t->added[i].len, 1, t->added[i].special};
	return 0;
}

/* One merge: "a b" (split at the first space) or ["a", "b"]. */
static int merge_parts(const tokenizer *t, const cJSON *e, const char *path, const char **a,
		       size_t *alen, const char **b)
{
	*a = *b = "";
	*alen = 0;
	if (cJSON_IsString(e)) {
		const char *sp = strchr(e->valuestring, ' ');
		if (!sp)
			return bad(t, path, "expected two tokens separated by a space");
		*a = e->valuestring;
		*alen = (size_t)(sp - e->valuestring);
		*b = sp + 1;
		return 0;
	}
	if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
	    cJSON_IsString(e->child->next)) {
		*a = e->child->valuestring;
		*alen = strlen(*a);
		*b = e->child->next->valuestring;
		return 0;
	}
	return bad(t, path, "expected \"a b\" or [\"a\", \"b\"]");
}

static int parse_merges(tokenizer *t, const cJSON *merges)
{
	tok_buf cat = {0};
	size_t i = 0;
	int rc = 0;

	if (absent(merges))
		return 0;
	if (!cJSON_IsArray(merges))
		return bad(t, "model.merges", "not a list");
	for (const cJSON *e = merges->child; e && rc == 0; e = e->next, i++) {
		char path[64];
		const char *a, *b;
		size_t alen;
		snprintf(path, sizeof path, "model.merges[%zu]", i);
		if (i >= INT32_MAX) {
			rc = bad(t, "model.merges", "too many merges");
			break;
		}
		if ((rc = merge_parts(t, e, path, &a, &alen, &b)) < 0)
			break;
		size_t blen = strlen(b);
		int32_t ia = tok_strmap_get(&t->vocab, a, alen), ib = tok_strmap_get(&t->vocab, b, blen);
		cat.len = 0;
		tok_buf_add(&cat, a, alen);
		tok_buf_add(&cat, b, blen);
		int32_t im = tok_strmap_get(&t->vocab, cat.p ? cat.p : "", cat.len);
		if (ia < 0)
			rc = bad(t, path, "token '%s' is not in model.vocab", tok_quote(a, alen));
		else if (ib < 0)
			rc = bad(t, path, "token '%s' is not in model.vocab", tok_quote(b, blen));
		else if (im < 0)
			rc = bad(t, path, "merged token '%s' is not in model.vocab",
				 tok_quote(cat.p, cat.len));
		else /* a repeated pair takes its last rank, as in HF's map */
			tok_u64map_put(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, (int32_t)i, im);
	}
	tok_buf_release(&cat);
	return rc;
}

static int model_lookups(tokenizer *t, const char *unk)
{
	for (int b = 0; b < 256; b++) {
		char name[8];
		snprintf(name, sizeof name, "<0x%02X>", b);
		t->byte_id[b] = tok_strmap_get(&t->vocab, name, 6);
	}
	if (unk && (t->unk_id = tok_strmap_get(&t->vocab, unk, strlen(unk))) < 0)
		return bad(t, "model.unk_token", "'%s' is not in model.vocab", q(unk));
	return 0;
}

/* ------------------------------------------------------------------------
 * Normalizer */

static void add_norm(tokenizer *t, tok_norm nm)
{
	t->norm = xrealloc(t->norm, (t->n_norm + 1) * sizeof *t->norm);
	t->norm[t->n_norm++] = nm;
}

static int parse_normalizer(tokenizer *t, const cJSON *v, const char *path, int depth)
{
	const char *type, *s, *content;
	int is_regex;

	if (absent(v))
		return 0;
	if (get_type(t, v, path, depth, &type) < 0)
		return -1;
	if (streq(type, "Sequence")) {
		const cJSON *list = member(v, "normalizers");
		size_t i = 0;
		if (!cJSON_IsArray(list))
			return bad(t, path, "'normalizers' is missing or not a list");
		for (const cJSON *e = list->child; e; e = e->next, i++) {
			char sub[256];
			snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
			if (parse_normalizer(t, e, sub, depth + 1) < 0)
				return -1;
		}
		return 0;
	}
	if (streq(type, "NFC")) {
		add_norm(t, (tok_norm){.type = TOK_NORM_NFC});
		return 0;
	}
	if (streq(type, "Prepend")) {
		if (get_str(t, v, "prepend", path, 1, &s) < 0)
			return -1;
		add_norm(t, (tok_norm){.type = TOK_NORM_PREPEND, .a = dup(t, s), .alen = strlen(s)});
		return 0;
	}
	if (streq(type, "Replace")) {
		if (get_pattern(t, v, path, &s, &is_regex) < 0 || get_str(t, v, "content", path, 1, &content) < 0)
			return -1;
		if (is_regex)
			return errf("%s: %s: unsupported normalizer 'Replace' with a regex", t->name, path);
		add_norm(t, (tok_norm){.type = TOK_NORM_REPLACE, .a = dup(t, s), .alen = strlen(s),
				       .b = dup(t, content), .blen = strlen(content)});
		return 0;
	}
	return errf("%s: %s: unsupported normalizer '%s'", t->name, path, q(type));
}

/* Added tokens go into the trie of the text they are matched on: the raw
 * input, or (normalized=true) the normalized pieces, with their content
 * normalized the same way. */
static int build_tries(tokenizer *t)
{
	for (size_t i = 0; i < t->n_added; i++) {
		tok_added *a = &t->added[i];
		if (!a->normalized) {
			tok_trie_insert(&t->raw_trie, a->content, a->len, (int32_t)i);
			continue;
		}
		tok_buf b = {0};
		if (tok_normalize(t, a->content, a->len, &b) < 0)
			return -1;
		a->norm = tok_arena_dup(&t->arena, b.p ? b.p : "", b.len);
		a->norm_len = b.len;
		if (b.len)
			tok_trie_insert(&t->norm_trie, a->norm, a->norm_len, (int32_t)i);
		tok_buf_release(&b);
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * Pre-tokenizer */

static void add_pre(tokenizer *t, tok_pre p)
{
	t->pre = xrealloc(t->pre, (t->n_pre + 1) * sizeof *t->pre);
	t->pre[t->n_pre++] = p;
}

static int parse_behavior(const tokenizer *t, const cJSON *v, const char *path, int *out)
{
	static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
				      "Contiguous"};
	const char *s;

	if (get_str(t, v, "behavior", path, 1, &s) < 0)
		return -1;
	for (int i = 0; i < 5; i++)
		if (streq(s, names[i])) {
			*out = i; /* enum tok_behavior is in the same order */
			return 0;
		}
	return errf("%s: %s: unsupported pre_tokenizer Split behavior '%s'", t->name, path, q(s));
}

static int parse_split(tokenizer *t, const cJSON *v, const char *path)
{
	tok_pre p = {.type = TOK_PRE_SPLIT};
	const char *pat;

	if (get_pattern(t, v, path, &pat, &p.is_regex) < 0 || parse_behavior(t, v, path, &p.behavior) < 0 ||
	    get_bool(t, v, "invert", path, 0, &p.invert) < 0)
		return -1;
	if (p.is_regex && tok_regex_find(pat, &p.re) < 0)
		return errf("%s: %s: unsupported pre_tokenizer Split regex '%s'", t->name, path, q(pat));
	p.str = dup(t, pat);
	p.slen = strlen(pat);
	add_pre(t, p);
	return 0;
}

/* Metaspace's prepend_scheme (default always); an explicit
 * add_prefix_space false (the older field) means never, as in HF. */
static int parse_prepend(const tokenizer *t, const cJSON *v, const char *path, int *out)
{
	const char *s;
	int add;

	if (get_str(t, v, "prepend_scheme", path, 0, &s) < 0 ||
	    get_bool(t, v, "add_prefix_space", path, 1, &add) < 0)
		return -1;
	if (!s || streq(s, "always"))
		*out = TOK_PREPEND_ALWAYS;
	else if (streq(s, "first"))
		*out = TOK_PREPEND_FIRST;
	else if (streq(s, "never"))
		*out = TOK_PREPEND_NEVER;
	else
		return bad(t, path, "unknown prepend_scheme '%s'", q(s));
	if (!add)
		*out = TOK_PREPEND_NEVER;
	return 0;
}

static int parse_pre(tokenizer *t, const cJSON *v, const char *path, int depth)
{
	const char *type, *s;
	uint32_t cp;

	if (absent(v))
		return 0;
	if (get_type(t, v, path, depth, &type) < 0)
		return -1;
	if (streq(type, "Sequence")) {
		const cJSON *list = member(v, "pretokenizers");
		size_t i = 0;
		if (!cJSON_IsArray(list))
			return bad(t, path, "'pretokenizers' is missing or not a list");
		for (const cJSON *e = list->child; e; e = e->next, i++) {
			char sub[256];
			snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
			if (parse_pre(t, e, sub, depth + 1) < 0)
				return -1;
		}
		return 0;
	}
	if (streq(type, "Split"))
		return parse_split(t, v, path);
	if (streq(type, "Digits")) { /* StarCoder's, Granite 3's: numbers split off before ByteLevel */
		int individual;
		if (get_bool(t, v, "individual_digits", path, 0, &individual) < 0)
			return -1;
		add_pre(t, (tok_pre){.type = TOK_PRE_DIGITS, .behavior = individual ? TOK_ISOLATED : TOK_CONTIGUOUS});
		return 0;
	}
	if (streq(type, "ByteLevel")) {
		tok_pre p = {.type = TOK_PRE_BYTELEVEL, .re = TOK_RE_GPT2};
		if (get_bool(t, v, "add_prefix_space", path, 1, &p.add_prefix_space) < 0 ||
		    get_bool(t, v, "use_regex", path, 1, &p.use_regex) < 0)
			return -1;
		add_pre(t, p);
		return 0;
	}
	if (streq(type, "Metaspace")) {
		tok_pre p = {.type = TOK_PRE_METASPACE};
		if (get_char(t, v, "replacement", path, &s, &cp) < 0 || parse_prepend(t, v, path, &p.prepend) < 0 ||
		    get_bool(t, v, "split", path, 1, &p.split) < 0)
			return -1;
		p.str = dup(t, s);
		p.slen = strlen(s);
		add_pre(t, p);
		return 0;
	}
	return errf("%s: %s: unsupported pre_tokenizer '%s'", t->name, path, q(type));
}

/* ------------------------------------------------------------------------
 * Post-processor */

/* Ids of a SpecialToken item of a template, from special_tokens. */
static int template_ids(tokenizer *t, const cJSON *specials, const char *name, const char *path,
			tok_ids *out)
{
	const cJSON *ids = member(member(specials, name), "ids");
	size_t k = 0;

	if (!cJSON_IsArray(ids))
		return bad(t, path, "special token '%s' has no ids in special_tokens", q(name));
	for (const cJSON *e = ids->child; e; e = e->next, k++) {
		long id;
		if (get_int(t, e, path, 0, (long)t->n_tokens - 1, &id) < 0)
			return -1;
		if (!t->tokens[id].s)
			return bad(t, path, "special token '%s': id %ld is not a token", q(name), id);
		tok_ids_add(out, (int32_t)id);
	}
	return 0;
}

/* TemplateProcessing's single template: ids before and after sequence A.
 * A later processor of a Sequence wraps the result of an earlier one. */
static int parse_template(tokenizer *t, const cJSON *v, const char *path)
{
	const cJSON *single = member(v, "single"), *specials = member(v, "special_tokens");
	tok_ids pre = {0}, suf = {0};
	int seen_a = 0, rc = 0;
	size_t i = 0;

	if (!cJSON_IsArray(single))
		return bad(t, path, "'single' is missing or not a list");
	for (const cJSON *e = single->child; e && rc == 0; e = e->next, i++) {
		char sub[256];
		const char *id;
		snprintf(sub, sizeof sub, "%s.single[%zu]", path, i);
		if (member(e, "SpecialToken")) {
			rc = get_str(t, member(e, "SpecialToken"), "id", sub, 1, &id);
			if (rc == 0)
				rc = template_ids(t, specials, id, sub, seen_a ? &suf : &pre);
		} else if (member(e, "Sequence")) {
			rc = get_str(t, member(e, "Sequence"), "id", sub, 1, &id);
			if (rc == 0 && (!streq(id, "A") || seen_a))
				rc = bad(t, sub, "a single template holds sequence A once");
			seen_a = 1;
		} else {
			rc = bad(t, sub, "neither SpecialToken nor Sequence");
		}
	}
	if (rc == 0 && !seen_a)
		rc = bad(t, path, "the single template has no sequence A");
	if (rc == 0) {
		tok_ids all = {0};
		for (size_t k = 0; k < t->n_prefix; k++)
			tok_ids_add(&pre, t->prefix[k]);
		for (size_t k = 0; k < t->n_suffix; k++)
			tok_ids_add(&all, t->suffix[k]);
		for (size_t k = 0; k < suf.n; k++)
			tok_ids_add(&all, suf.v[k]);
		free(t->prefix);
		free(t->suffix);
		t->prefix = pre.v;
		t->n_prefix = pre.n;
		t->suffix = all.v;
		t->n_suffix = all.n;
		pre.v = NULL;
	}
	free(pre.v);
	free(suf.v);
	return rc;
}

static int parse_post(tokenizer *t, const cJSON *v, const char *path, int depth)
{
	const char *type;

	if (absent(v))
		return 0;
	if (get_type(t, v, path, depth, &type) < 0)
		return -1;
	if (streq(type, "Sequence")) {
		const cJSON *list = member(v, "processors");
		size_t i = 0;
		if (!cJSON_IsArray(list))
			return bad(t, path, "'processors' is missing or not a list");
		for (const cJSON *e = list->child; e; e = e->next, i++) {
			char sub[256];
			snprintf(sub, sizeof sub, "%s.processors[%zu]", path, i);
			if (parse_post(t, e, sub, depth + 1) < 0)
				return -1;
		}
		return 0;
	}
	if (streq(type, "ByteLevel")) /* only trims offsets: no effect on ids */
		return 0;
	if (streq(type, "TemplateProcessing"))
		return parse_template(t, v, path);
	return errf("%s: %s: unsupported post_processor '%s'", t->name, path, q(type));
}

/* ------------------------------------------------------------------------
 * Decoder */

static void add_dec(tokenizer *t, tok_dec d)
{
	t->dec = xrealloc(t->dec, (t->n_dec + 1) * sizeof *t->dec);
	t->dec[t->n_dec++] = d;
}

static int parse_strip(tokenizer *t, const cJSON *v, const char *path)
{
	tok_dec d = {.type = TOK_DEC_STRIP};
	const char *s;
	long start, stop;

	if (get_char(t, v, "content", path, &s, &d.ch) < 0 ||
	    get_int(t, member(v, "start"), path, 0, 1 << 20, &start) < 0 ||
	    get_int(t, member(v, "stop"), path, 0, 1 << 20, &stop) < 0)
		return -1;
	d.start = (int)start;
	d.stop = (int)stop;
	add_dec(t, d);
	return 0;
}

static int parse_decoder(tokenizer *t, const cJSON *v, const char *path, int depth)
{
	const char *type, *s, *content;
	int is_regex;
	uint32_t cp;

	if (absent(v))
		return 0;
	if (get_type(t, v, path, depth, &type) < 0)
		return -1;
	t->has_decoder = 1;
	if (streq(type, "Sequence")) {
		const cJSON *list = member(v, "decoders");
		size_t i = 0;
		if (!cJSON_IsArray(list))
			return bad(t, path, "'decoders' is missing or not a list");
		for (const cJSON *e = list->child; e; e = e->next, i++) {
			char sub[256];
			snprintf(sub, sizeof sub, "%s.decoders[%zu]", path, i);
			if (parse_decoder(t, e, sub, depth + 1) < 0)
				return -1;
		}
		return 0;
	}
	if (streq(type, "ByteLevel")) {
		add_dec(t, (tok_dec){.type = TOK_DEC_BYTELEVEL});
	} else if (streq(type, "ByteFallback")) {
		add_dec(t, (tok_dec){.type = TOK_DEC_BYTEFALLBACK});
	} else if (streq(type, "Fuse")) {
		add_dec(t, (tok_dec){.type = TOK_DEC_FUSE});
	} else if (streq(type, "Strip")) {
		return parse_strip(t, v, path);
	} else if (streq(type, "Replace")) {
		if (get_pattern(t, v, path, &s, &is_regex) < 0 || get_str(t, v, "content", path, 1, &content) < 0)
			return -1;
		if (is_regex)
			return errf("%s: %s: unsupported decoder 'Replace' with a regex", t->name, path);
		add_dec(t, (tok_dec){.type = TOK_DEC_REPLACE, .a = dup(t, s), .alen = strlen(s),
				     .b = dup(t, content), .blen = strlen(content)});
	} else if (streq(type, "Metaspace")) {
		tok_dec d = {.type = TOK_DEC_METASPACE};
		if (get_char(t, v, "replacement", path, &s, &cp) < 0 || parse_prepend(t, v, path, &d.prepend) < 0)
			return -1;
		d.a = dup(t, s);
		d.alen = strlen(s);
		add_dec(t, d);
	} else {
		return errf("%s: %s: unsupported decoder '%s'", t->name, path, q(type));
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The whole file */

static int parse_root(tokenizer *t, const cJSON *root)
{
	const cJSON *model = member(root, "model");
	const char *unk = NULL;

	if (!cJSON_IsObject(root))
		return bad(t, "top level", "not a JSON object");
	if (!absent(member(root, "truncation")))
		return errf("%s: unsupported truncation (must be null)", t->name);
	if (!absent(member(root, "padding")))
		return errf("%s: unsupported padding (must be null)", t->name);
	if (parse_model_options(t, model, &unk) < 0 || parse_vocab(t, member(model, "vocab")) < 0 ||
	    parse_added(t, member(root, "added_tokens")) < 0 || build_ids(t) < 0 ||
	    parse_merges(t, member(model, "merges")) < 0 || model_lookups(t, unk) < 0 ||
	    parse_normalizer(t, member(root, "normalizer"), "normalizer", 0) < 0 || build_tries(t) < 0 ||
	    parse_pre(t, member(root, "pre_tokenizer"), "pre_tokenizer", 0) < 0 ||
	    parse_post(t, member(root, "post_processor"), "post_processor", 0) < 0 ||
	    parse_decoder(t, member(root, "decoder"), "decoder", 0) < 0)
		return -1;
	return 0;
}

int tok_parse(tokenizer *t, const char *json, size_t len)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);

	if (!root)
		return errf("%s: not valid JSON (at byte %zu)", t->name, end ? (size_t)(end - json) : (size_t)0);
	int rc = parse_root(t, root);
	cJSON_Delete(root);
	return rc;
}
