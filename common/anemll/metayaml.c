/* metayaml.c: meta.yaml in memory, its exact text, and a checked reader
 * (format in metayaml.h).
 *
 * One table lists every key: its section (model_info or parameters), its
 * kind and where it lives in the struct. The writer walks the table in
 * ANEMLL's key order and sends events to libyaml's emitter; the reader loads
 * the file with libyaml's document loader and looks each key up in the same
 * table, so the two cannot drift apart. The troubleshooting block is made of
 * comments, which YAML parsers drop: it is written and read as plain text.
 * Files are a few KB; nothing here is performance-sensitive.
 */
#include "anemll/metayaml.h"
#include "anemll/anemll.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */
#include <yaml.h>

/* ------------------------------------------------------------------ */
/* The key table                                                       */

typedef enum fkind {
	F_STR,  /* char *, plain or quoted */
	F_TEXT, /* char *, a literal block (description) */
	F_INT,  /* int >= 0 */
	F_LUT,  /* int: bits 1..8, META_LUT_NONE ("none") */
	F_BOOL, /* int: 0/1 */
	F_INTS, /* int *, with a size_t count (lm_head_chunk_sizes) */
	F_STRS, /* char **, with a size_t count (functions) */
} fkind;

enum { SEC_INFO, SEC_PARAM };

typedef struct field {
	const char *key;
	int section;
	fkind kind;
	size_t off;   /* the value */
	size_t noff;  /* F_INTS/F_STRS: the count */
} field;

#define FS(sec, k, kind) {#k, sec, kind, offsetof(metayaml, k), 0}
#define FL(k, kind, n) {#k, SEC_PARAM, kind, offsetof(metayaml, k), offsetof(metayaml, n)}

/* model_info keys in ANEMLL's order, then parameters in ANEMLL's chunked
 * order with the monolithic-only keys where they fit best. */
static const field FIELDS[] = {
	FS(SEC_INFO, name, F_STR), FS(SEC_INFO, version, F_STR), FS(SEC_INFO, description, F_TEXT),
	FS(SEC_INFO, license, F_STR), FS(SEC_INFO, author, F_STR), FS(SEC_INFO, framework, F_STR),
	FS(SEC_INFO, language, F_STR), FS(SEC_INFO, architecture, F_STR), FS(SEC_INFO, model_type, F_STR),

	FS(SEC_PARAM, context_length, F_INT), FS(SEC_PARAM, batch_size, F_INT),
	FS(SEC_PARAM, lut_bits, F_LUT), FS(SEC_PARAM, lut_per_channel, F_INT),
	FS(SEC_PARAM, lut_embeddings, F_LUT), FS(SEC_PARAM, lut_embeddings_per_channel, F_INT),
	FS(SEC_PARAM, lut_ffn, F_LUT), FS(SEC_PARAM, lut_ffn_per_channel, F_INT),
	FS(SEC_PARAM, lut_lmhead, F_LUT), FS(SEC_PARAM, lut_lmhead_per_channel, F_INT),
	FS(SEC_PARAM, num_chunks, F_INT), FS(SEC_PARAM, model_prefix, F_STR),
	FS(SEC_PARAM, embeddings, F_STR), FS(SEC_PARAM, lm_head, F_STR), FS(SEC_PARAM, ffn, F_STR),
	FS(SEC_PARAM, pf, F_STR), FS(SEC_PARAM, monolithic_model, F_STR),
	FS(SEC_PARAM, split_lm_head, F_INT), FS(SEC_PARAM, argmax_in_model, F_BOOL),
	FS(SEC_PARAM, vocab_size, F_INT), FL(lm_head_chunk_sizes, F_INTS, n_lm_head_chunk_sizes),
	FS(SEC_PARAM, split_rotate, F_BOOL), FS(SEC_PARAM, sliding_window, F_INT),
	FS(SEC_PARAM, update_mask_prefill, F_BOOL), FS(SEC_PARAM, prefill_dynamic_slice, F_BOOL),
	FS(SEC_PARAM, single_cache, F_BOOL), FL(functions, F_STRS, n_functions),
};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

/* Parameter order of the two schemas (anemll-interface.md 7.1; generate_meta_yaml.py). */
static const char *const CHUNKED_ORDER[] = {
	"context_length", "batch_size", "lut_embeddings", "lut_embeddings_per_channel", "lut_ffn",
	"lut_ffn_per_channel", "lut_lmhead", "lut_lmhead_per_channel", "num_chunks", "model_prefix",
	"embeddings", "lm_head", "ffn", "pf", "split_lm_head", "argmax_in_model", "vocab_size",
	"lm_head_chunk_sizes", "split_rotate", "sliding_window", "update_mask_prefill",
	"prefill_dynamic_slice", "single_cache", NULL,
};
static const char *const MONO_ORDER[] = {
	"context_length", "batch_size", "lut_bits", "lut_per_channel", "lut_embeddings",
	"lut_embeddings_per_channel", "lut_lmhead", "lut_lmhead_per_channel", "model_prefix",
	"monolithic_model", "split_lm_head", "argmax_in_model", "vocab_size", "lm_head_chunk_sizes",
	"sliding_window", "update_mask_prefill", "prefill_dynamic_slice", "single_cache", NULL,
};
/* What chat.py reads with params[...] (KeyError without them). */
static const char *const CHUNKED_REQUIRED[] = {
	"lut_ffn", "lut_lmhead", "lut_embeddings", "num_chunks", "context_length", "batch_size", NULL,
};
static const char *const MONO_REQUIRED[] = {"context_length", "batch_size", NULL};

#define MAX_LIST 65536 /* list entries accepted when reading */

static const field *field_find(int section, const char *key)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (FIELDS[i].section == section && strcmp(FIELDS[i].key, key) == 0)
			return &FIELDS[i];
	return NULL;
}

static int *f_int(const metayaml *m, const field *f) { return (int *)((char *)m + f->off); }
static char **f_str(const metayaml *m, const field *f) { return (char **)((char *)m + f->off); }
static size_t *f_count(const metayaml *m, const field *f) { return (size_t *)((char *)m + f->noff); }
static int **f_ints(const metayaml *m, const field *f) { return (int **)((char *)m + f->off); }
static char ***f_strs(const metayaml *m, const field *f) { return (char ***)((char *)m + f->off); }

/* 1 when the field holds a value. */
static int f_present(const metayaml *m, const field *f)
{
	switch (f->kind) {
	case F_STR:
	case F_TEXT: return *f_str(m, f) != NULL;
	case F_INTS:
	case F_STRS: return *f_count(m, f) > 0;
	default: return *f_int(m, f) != META_ABSENT;
	}
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

void metayaml_init(metayaml *m)
{
	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < NFIELDS; i++)
		if (FIELDS[i].kind == F_INT || FIELDS[i].kind == F_LUT || FIELDS[i].kind == F_BOOL)
			*f_int(m, &FIELDS[i]) = META_ABSENT;
}

void metayaml_release(metayaml *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < NFIELDS; i++) {
		const field *f = &FIELDS[i];
		if (f->kind == F_STR || f->kind == F_TEXT)
			free(*f_str(m, f));
		else if (f->kind == F_INTS)
			free(*f_ints(m, f));
		else if (f->kind == F_STRS) {
			for (size_t j = 0; j < *f_count(m, f); j++)
				free((*f_strs(m, f))[j]);
			free(*f_strs(m, f));
		}
	}
	for (size_t i = 0; i < m->n_comments; i++)
		free(m->comments[i].key), free(m->comments[i].text);
	free(m->comments);
	free(m->generated);
	metayaml_init(m);
}

static int str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int field_equal(const metayaml *a, const metayaml *b, const field *f)
{
	switch (f->kind) {
	case F_STR:
	case F_TEXT: return str_eq(*f_str(a, f), *f_str(b, f));
	case F_INTS: {
		size_t n = *f_count(a, f);
		return n == *f_count(b, f) && (n == 0 || memcmp(*f_ints(a, f), *f_ints(b, f), n * sizeof(int)) == 0);
	}
	case F_STRS:
		if (*f_count(a, f) != *f_count(b, f))
			return 0;
		for (size_t j = 0; j < *f_count(a, f); j++)
			if (strcmp((*f_strs(a, f))[j], (*f_strs(b, f))[j]) != 0)
				return 0;
		return 1;
	default: return *f_int(a, f) == *f_int(b, f);
	}
}

int metayaml_equal(const metayaml *a, const metayaml *b)
{
	for (size_t i = 0; i < NFIELDS; i++)
		if (!field_equal(a, b, &FIELDS[i]))
			return 0;
	if (!str_eq(a->generated, b->generated) || a->n_comments != b->n_comments)
		return 0;
	for (size_t i = 0; i < a->n_comments; i++)
		if (strcmp(a->comments[i].key, b->comments[i].key) != 0 ||
		    strcmp(a->comments[i].text, b->comments[i].text) != 0)
			return 0;
	return 1;
}

int metayaml_is_monolithic(const metayaml *m)
{
	return m->model_type && strcmp(m->model_type, "monolithic") == 0;
}

void metayaml_set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? xstrdup(s) : NULL;
}

void metayaml_set_info(metayaml *m, const char *model_name)
{
	int mono = metayaml_is_monolithic(m);
	char *name = xasprintf("anemll-%s-ctx%d%s", model_name, m->context_length, mono ? "-monolithic" : "");
	/* ANEMLL's text says "Demonstarates running <M>" and "author: Anemll": no
	 * runtime reads either, so ours say who converted it. */
	char *desc = mono ? xasprintf("%s on the Apple Neural Engine as one model, converted by anemake %s\n"
				      "Context length: %d\nBatch size: %d\n"
				      "Type: Monolithic (single file with embed+FFN+lm_head)\n",
				      model_name, ANEMAKE_VERSION, m->context_length, m->batch_size)
			  : xasprintf("%s on the Apple Neural Engine, converted by anemake %s\nContext length: %d\n"
				      "Batch size: %d\nChunks: %d\n",
				      model_name, ANEMAKE_VERSION, m->context_length, m->batch_size, m->num_chunks);
	free(m->name), free(m->description);
	m->name = name, m->description = desc;
	metayaml_set_str(&m->version, ANEMLL_VERSION);
	metayaml_set_str(&m->license, "MIT");
	metayaml_set_str(&m->author, "anemake");
	metayaml_set_str(&m->framework, "Core ML");
	metayaml_set_str(&m->language, "Python");
}

void metayaml_add_comment_literal(metayaml *m, const char *key, const char *text)
{
	GROW(m->comments, m->comments_cap, m->n_comments + 1);
	m->comments[m->n_comments++] = (meta_comment){xstrdup(key), xstrdup(text)};
}

static char *quote_comment(const char *s);

void metayaml_add_comment(metayaml *m, const char *key, const char *value)
{
	char *text = quote_comment(value);
	metayaml_add_comment_literal(m, key, text);
	free(text);
}

const char *metayaml_comment(const metayaml *m, const char *key)
{
	for (size_t i = 0; i < m->n_comments; i++)
		if (strcmp(m->comments[i].key, key) == 0)
			return m->comments[i].text;
	return NULL;
}

void metayaml_set_chunk_sizes(metayaml *m, const int *sizes, size_t n)
{
	free(m->lm_head_chunk_sizes);
	m->lm_head_chunk_sizes = n ? xmalloc(n * sizeof *sizes) : NULL;
	if (n)
		memcpy(m->lm_head_chunk_sizes, sizes, n * sizeof *sizes);
	m->n_lm_head_chunk_sizes = n;
}

void metayaml_add_function(metayaml *m, const char *name)
{
	m->functions = xrealloc(m->functions, (m->n_functions + 1) * sizeof *m->functions);
	m->functions[m->n_functions++] = xstrdup(name);
}

/* s for an error line: at most 48 characters, control characters as '?'. */
static const char *shown(const char *s, char buf[64])
{
	size_t k = 0;
	for (; s[k] && k < 48; k++)
		buf[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
	snprintf(buf + k, 64 - k, "%s", s[k] ? "..." : "");
	return buf;
}

/* ------------------------------------------------------------------ */
/* Checks shared by the reader and the writer                          */

static int check_required(const metayaml *m, const char *label)
{
	const char *const *req = metayaml_is_monolithic(m) ? MONO_REQUIRED : CHUNKED_REQUIRED;
	for (; *req; req++)
		if (!f_present(m, field_find(SEC_PARAM, *req)))
			return errf("'%s': model_info.parameters.%s is missing (%s meta.yaml needs it)", label, *req,
				    metayaml_is_monolithic(m) ? "a monolithic" : "a chunked");
	return 0;
}

/* The LM-head sizes must agree with split_lm_head and vocab_size when given. */
static int check_lm_head(const metayaml *m, const char *label)
{
	size_t n = m->n_lm_head_chunk_sizes;
	if (!n)
		return 0;
	if (m->split_lm_head != META_ABSENT && (size_t)m->split_lm_head != n)
		return errf("'%s': model_info.parameters.lm_head_chunk_sizes has %zu entries but split_lm_head is %d",
			    label, n, m->split_lm_head);
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (uint64_t)m->lm_head_chunk_sizes[i];
	if (m->vocab_size != META_ABSENT && sum != (uint64_t)m->vocab_size)
		return errf("'%s': model_info.parameters.lm_head_chunk_sizes add up to %llu but vocab_size is %d", label,
			    (unsigned long long)sum, m->vocab_size);
	return 0;
}

/* A value the writer can put down: integers in range, LUT bits 1..8 or none. */
static int check_value(const metayaml *m, const field *f, const char *label)
{
	if (f->kind == F_INTS) {
		for (size_t i = 0; i < *f_count(m, f); i++)
			if ((*f_ints(m, f))[i] < 0)
				return errf("'%s': %s: negative entry %d", label, f->key, (*f_ints(m, f))[i]);
		return 0;
	}
	if (f->kind != F_INT && f->kind != F_LUT && f->kind != F_BOOL)
		return 0;
	int v = *f_int(m, f);
	int ok = v == META_ABSENT || (f->kind == F_INT && v >= 0) || (f->kind == F_LUT && v >= 0 && v <= 8) ||
		 (f->kind == F_BOOL && (v == 0 || v == 1));
	return ok ? 0 : errf("'%s': %s: %d is out of range", label, f->key, v);
}

/* ------------------------------------------------------------------ */
/* Scalars a YAML 1.1 reader would not take for strings                */

static int in_words(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return 1;
	return 0;
}

/* Numbers in any YAML 1.1 form (ints, floats, hex, octal, sexagesimal,
 * .inf/.nan) and dates, conservatively: quoting a string that would have
 * been read as a string anyway does no harm. "0.3.5" (two dots) stays plain. */
static int looks_numeric(const char *s)
{
	const char *p = s + (*s == '+' || *s == '-');
	static const char *const SPECIAL[] = {"inf", "Inf", "INF", "nan", "NaN", "NAN", NULL};
	if (*p == '.')
		return isdigit((unsigned char)p[1]) || in_words(p + 1, SPECIAL);
	if (!isdigit((unsigned char)*p))
		return 0;
	if (isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) && isdigit((unsigned char)p[3]) && p[4] == '-')
		return 1; /* a timestamp */
	int dots = 0;
	for (; *p; p++) {
		if (*p == '.')
			dots++;
		else if (!strchr("0123456789_:+-eExXoObBabcdefABCDEF", *p))
			return 0;
	}
	return dots <= 1;
}

static int yaml11_not_string(const char *s)
{
	static const char *const WORDS[] = {
		"", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
		"true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
		"<<", "=", NULL,
	};
	return in_words(s, WORDS) || looks_numeric(s);
}

/* ------------------------------------------------------------------ */
/* Writing: libyaml's emitter into a buffer                            */

typedef struct outbuf {
	char *data;
	size_t len, cap;
} outbuf;

static void out_put(outbuf *o, const void *p, size_t n)
{
	GROW(o->data, o->cap, o->len + n + 1);
	memcpy(o->data + o->len, p, n);
	o->len += n;
	o->data[o->len] = 0;
}

static void out_printf(outbuf *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void out_printf(outbuf *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char buf[64];
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	ASSERT(n >= 0 && (size_t)n < sizeof buf);
	out_put(o, buf, (size_t)n);
}

static int out_handler(void *data, unsigned char *buffer, size_t size)
{
	out_put(data, buffer, size);
	return 1;
}

typedef struct writer {
	const char *label;
	yaml_emitter_t em;
	outbuf out;
	int failed;
} writer;

static void emit(writer *w, yaml_event_t *ev)
{
	if (w->failed)
		yaml_event_delete(ev);
	else if (!yaml_emitter_emit(&w->em, ev)) /* takes ev, even on failure */
		w->failed = errf("'%s': libyaml cannot write it: %s", w->label,
				 w->em.problem ? w->em.problem : "unknown error");
}

static void emit_scalar(writer *w, const char *s, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, style))
		BUG("yaml_scalar_event_initialize");
	emit(w, &ev);
}

static void emit_int(writer *w, int v)
{
	char buf[16];
	snprintf(buf, sizeof buf, "%d", v);
	emit_scalar(w, buf, YAML_PLAIN_SCALAR_STYLE);
}

static void emit_map_start(writer *w)
{
	yaml_event_t ev;
	yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
	emit(w, &ev);
}

static void emit_map_end(writer *w)
{
	yaml_event_t ev;
	yaml_mapping_end_event_initialize(&ev);
	emit(w, &ev);
}

static void emit_value(writer *w, const metayaml *m, const field *f)
{
	int v = f->kind == F_INT || f->kind == F_LUT || f->kind == F_BOOL ? *f_int(m, f) : 0;
	switch (f->kind) {
	case F_STR: {
		const char *s = *f_str(m, f);
		emit_scalar(w, s, yaml11_not_string(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_PLAIN_SCALAR_STYLE);
		break;
	}
	case F_TEXT: emit_scalar(w, *f_str(m, f), YAML_LITERAL_SCALAR_STYLE); break;
	case F_INT: emit_int(w, v); break;
	case F_LUT:
		if (v == META_LUT_NONE)
			emit_scalar(w, "none", YAML_PLAIN_SCALAR_STYLE);
		else
			emit_int(w, v);
		break;
	case F_BOOL: emit_scalar(w, v ? "true" : "false", YAML_PLAIN_SCALAR_STYLE); break;
	case F_INTS: {
		yaml_event_t ev;
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE);
		emit(w, &ev);
		for (size_t i = 0; i < *f_count(m, f); i++)
			emit_int(w, (*f_ints(m, f))[i]);
		yaml_sequence_end_event_initialize(&ev);
		emit(w, &ev);
		break;
	}
	case F_STRS: BUG("block lists are written by hand");
	}
}

static void emit_field(writer *w, const metayaml *m, const field *f)
{
	if (!f_present(m, f) || f->kind == F_STRS)
		return;
	if (check_value(m, f, w->label) != 0) {
		w->failed = -1;
		return;
	}
	emit_scalar(w, f->key, YAML_PLAIN_SCALAR_STYLE);
	emit_value(w, m, f);
}

/* Parameters in the schema's order, then any other key that is set (so a
 * file read from anywhere writes back whole); functions come last, by hand. */
static void emit_params(writer *w, const metayaml *m)
{
	const char *const *order = metayaml_is_monolithic(m) ? MONO_ORDER : CHUNKED_ORDER;
	for (const char *const *k = order; *k; k++)
		emit_field(w, m, field_find(SEC_PARAM, *k));
	for (size_t i = 0; i < NFIELDS; i++) {
		const field *f = &FIELDS[i];
		int listed = 0;
		for (const char *const *k = order; *k && !listed; k++)
			listed = strcmp(*k, f->key) == 0;
		if (f->section == SEC_PARAM && !listed)
			emit_field(w, m, f);
	}
}

static void emit_document(writer *w, const metayaml *m)
{
	yaml_event_t ev;
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	emit(w, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	emit(w, &ev);
	emit_map_start(w);
	emit_scalar(w, "model_info", YAML_PLAIN_SCALAR_STYLE);
	emit_map_start(w);
	for (size_t i = 0; i < NFIELDS; i++)
		if (FIELDS[i].section == SEC_INFO)
			emit_field(w, m, &FIELDS[i]);
	emit_scalar(w, "parameters", YAML_PLAIN_SCALAR_STYLE);
	emit_map_start(w);
	emit_params(w, m);
	emit_map_end(w);
	emit_map_end(w);
	emit_map_end(w);
	yaml_document_end_event_initialize(&ev, 1);
	emit(w, &ev);
	yaml_stream_end_event_initialize(&ev);
	emit(w, &ev);
}

static int is_identifier(const char *s)
{
	if (!*s)
		return 0;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return 1;
}

/* ANEMLL indents list items under their key ("    functions:\n      - infer");
 * libyaml's emitter never does, so the list, always the last key, is written
 * here. Items must read back as the same plain strings. */
static int write_functions(outbuf *o, const metayaml *m, const char *label)
{
	if (!m->n_functions)
		return 0;
	out_put(o, "    functions:\n", 15);
	for (size_t i = 0; i < m->n_functions; i++) {
		const char *s = m->functions[i];
		if (!is_identifier(s) || yaml11_not_string(s))
			return errf("'%s': function name '%s' is not an identifier", label, shown(s, (char[64]){0}));
		out_put(o, "      - ", 8);
		out_put(o, s, strlen(s));
		out_put(o, "\n", 1);
	}
	return 0;
}

/* ANEMLL's rule for comment values (generate_meta_yaml.py escape_yaml_value). */
static int comment_needs_quotes(const char *s)
{
	static const char *const WORDS[] = {"true", "false", "null", "yes", "no", "on", "off", NULL};
	size_t n = strlen(s);
	if (!n || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t' || strchr("#!&*?|>[]{}@`", s[0]))
		return 1;
	char lower[8];
	if (n < sizeof lower) {
		for (size_t i = 0; i <= n; i++)
			lower[i] = (char)tolower((unsigned char)s[i]);
		if (in_words(lower, WORDS))
			return 1;
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || strchr(":#\"'\\", *p))
			return 1;
	return 0;
}

static char *quote_comment(const char *s)
{
	if (!comment_needs_quotes(s))
		return xstrdup(s);
	outbuf ob = {0}, *o = &ob;
	out_put(o, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : *p == '\r' ? "\\r"
				 : *p == '\t' ? "\\t" : NULL;
		if (esc)
			out_put(o, esc, 2);
		else if (*p < 0x20 || *p == 0x7f)
			out_printf(o, "\\x%02x", *p);
		else
			out_put(o, p, 1);
	}
	out_put(o, "\"", 1);
	return ob.data;
}

/* Comment text must stay on its line for YAML too ('\r' would end it). */
static int comment_text_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

#define RULE "# ============================================================================="
#define TITLE "# Conversion Parameters (for troubleshooting)"

static int write_comments(outbuf *o, const metayaml *m, const char *label)
{
	if (!m->generated && !m->n_comments)
		return 0;
	if (m->generated && !comment_text_ok(m->generated))
		return errf("'%s': the Generated timestamp holds a control character", label);
	static const char head[] = "\n" RULE "\n" TITLE "\n" RULE "\n";
	out_put(o, head, sizeof head - 1);
	if (m->generated) {
		out_put(o, "# Generated: ", 13);
		out_put(o, m->generated, strlen(m->generated));
		out_put(o, "\n", 1);
	}
	out_put(o, "#\n", 2);
	for (size_t i = 0; i < m->n_comments; i++) {
		if (!is_identifier(m->comments[i].key))
			return errf("'%s': comment key '%s' is not an identifier", label,
				    shown(m->comments[i].key, (char[64]){0}));
		if (!comment_text_ok(m->comments[i].text))
			return errf("'%s': comment '%s' holds a control character", label, m->comments[i].key);
		out_put(o, "# ", 2);
		out_put(o, m->comments[i].key, strlen(m->comments[i].key));
		out_put(o, ": ", 2);
		out_put(o, m->comments[i].text, strlen(m->comments[i].text));
		out_put(o, "\n", 1);
	}
	out_put(o, RULE "\n", sizeof RULE);
	return 0;
}

static int format_text(const metayaml *m, const char *label, char **text, size_t *len)
{
	*text = NULL, *len = 0;
	if (check_required(m, label) != 0 || check_lm_head(m, label) != 0)
		return -1;
	writer w = {.label = label};
	if (!yaml_emitter_initialize(&w.em))
		BUG("yaml_emitter_initialize");
	yaml_emitter_set_output(&w.em, out_handler, &w.out);
	yaml_emitter_set_indent(&w.em, 2);
	yaml_emitter_set_width(&w.em, -1);  /* never fold: prepare_hf.sh reads one line per key */
	yaml_emitter_set_unicode(&w.em, 1); /* UTF-8 as is, not \u escapes */
	emit_document(&w, m);
	yaml_emitter_delete(&w.em);
	/* After a "|+" description libyaml still ends the stream with a "..."
	 * marker, though more content followed it. The last scalar is always a
	 * parameter written plain or quoted, so the marker marks nothing: drop
	 * it (ANEMLL never writes one, and the functions list goes after it). */
	size_t n = w.out.len;
	if (!w.failed && n >= 5 && memcmp(w.out.data + n - 5, "\n...\n", 5) == 0)
		w.out.len -= 4, w.out.data[w.out.len] = 0;
	if (!w.failed && (w.out.len < 1 || w.out.data[w.out.len - 1] != '\n'))
		w.failed = errf("'%s': libyaml ended the document unexpectedly", label);
	if (!w.failed && (write_functions(&w.out, m, label) != 0 || write_comments(&w.out, m, label) != 0))
		w.failed = -1;
	if (w.failed) {
		free(w.out.data);
		return -1;
	}
	*text = w.out.data, *len = w.out.len;
	return 0;
}

int metayaml_format(const metayaml *m, char **text, size_t *len)
{
	return format_text(m, "meta.yaml", text, len);
}

int metayaml_write(const char *path, const metayaml *m)
{
	char *text;
	size_t len;
	if (format_text(m, path, &text, &len) != 0)
		return -1;
	int rc = write_file_atomic(path, text, len);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reading: libyaml's document loader, then the key table              */

typedef struct reader {
	yaml_document_t *doc;
	const char *label;
	uint64_t seen[2]; /* per section: bit i = FIELDS[i] already read */
} reader;

/* "'label' line N: path: message", one line. */
static int bad(const reader *r, const yaml_node_t *n, const char *path, const char *fmt, ...) PRINTF_LIKE(4, 5);
static int bad(const reader *r, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return errf("'%s' line %zu: %s: %s", r->label, n ? n->start_mark.line + 1 : 0, path, msg);
}

static int is_null(const yaml_node_t *n)
{
	static const char *const NULLS[] = {"", "~", "null", "Null", "NULL", NULL};
	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       in_words((const char *)n->data.scalar.value, NULLS);
}

/* What a node is, for messages: "a list", "nothing", "'abc'" (shortened, printable). */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (is_null(n))
		return "nothing";
	const unsigned char *s = n->data.scalar.value;
	size_t len = n->data.scalar.length, k = 0;
	int quoted = n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	k += (size_t)snprintf(buf, size, "%s'", quoted ? "the quoted string " : "");
	for (size_t i = 0; i < len && i < 32 && k + 5 < size; i++)
		buf[k++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	snprintf(buf + k, size - k, "%s'", len > 32 ? "..." : "");
	return buf;
}

static int expect(const reader *r, const yaml_node_t *n, const char *path, const char *what)
{
	char buf[96];
	return bad(r, n, path, "expected %s, found %s", what, describe(n, buf, sizeof buf));
}

/* A plain decimal integer >= 0. */
static int scalar_int(const yaml_node_t *n, int *out)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return -1;
	const unsigned char *s = n->data.scalar.value;
	size_t len = n->data.scalar.length;
	long long v = 0;
	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

static int read_int(const reader *r, const yaml_node_t *n, const char *path, int *out)
{
	return scalar_int(n, out) == 0 ? 0 : expect(r, n, path, "a non-negative integer");
}

static int read_lut(const reader *r, const yaml_node_t *n, const char *path, int *out)
{
	int v;
	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    strcasecmp((const char *)n->data.scalar.value, "none") == 0) {
		*out = META_LUT_NONE;
		return 0;
	}
	if (scalar_int(n, &v) == 0 && v >= 1 && v <= 8) {
		*out = v;
		return 0;
	}
	return expect(r, n, path, "LUT bits (1-8) or none");
}

static int read_bool(const reader *r, const yaml_node_t *n, const char *path, int *out)
{
	static const char *const T[] = {"true", "True", "TRUE", NULL}, *const F[] = {"false", "False", "FALSE", NULL};
	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		const char *s = (const char *)n->data.scalar.value;
		if (in_words(s, T) || in_words(s, F)) {
			*out = in_words(s, T);
			return 0;
		}
	}
	return expect(r, n, path, "true or false");
}

static int read_str(const reader *r, const yaml_node_t *n, const char *path, char **out)
{
	if (n->type != YAML_SCALAR_NODE)
		return expect(r, n, path, "a string");
	if (memchr(n->data.scalar.value, 0, n->data.scalar.length))
		return bad(r, n, path, "the string holds a NUL character");
	*out = xstrndup((const char *)n->data.scalar.value, n->data.scalar.length);
	return 0;
}

/* The items of a list, checked one by one. */
static int read_list(const reader *r, const yaml_node_t *n, const field *f, const char *path, metayaml *m)
{
	if (n->type != YAML_SEQUENCE_NODE)
		return expect(r, n, path, f->kind == F_INTS ? "a list of integers" : "a list of strings");
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > MAX_LIST)
		return bad(r, n, path, "more than %d entries", MAX_LIST);
	int *ints = f->kind == F_INTS && count ? xcalloc(count, sizeof *ints) : NULL;
	char **strs = f->kind == F_STRS && count ? xcalloc(count, sizeof *strs) : NULL;
	int rc = 0;
	for (size_t i = 0; i < count && rc == 0; i++) {
		yaml_node_t *item = yaml_document_get_node(r->doc, n->data.sequence.items.start[i]);
		char ipath[160];
		snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
		rc = f->kind == F_INTS ? read_int(r, item, ipath, &ints[i]) : read_str(r, item, ipath, &strs[i]);
	}
	if (rc == 0) {
		*f_count(m, f) = count;
		if (f->kind == F_INTS)
			*f_ints(m, f) = ints;
		else
			*f_strs(m, f) = strs;
		return 0;
	}
	for (size_t i = 0; strs && i < count; i++)
		free(strs[i]);
	free(ints), free(strs);
	return -1;
}

static int read_field(reader *r, const yaml_node_t *n, const field *f, const char *path, metayaml *m)
{
	size_t bit = (size_t)(f - FIELDS);
	if (r->seen[f->section] & (UINT64_C(1) << bit))
		return bad(r, n, path, "the key appears twice");
	r->seen[f->section] |= UINT64_C(1) << bit;
	if (is_null(n))
		return 0; /* key: (nothing) reads as absent, as chat.py's .get() sees it */
	switch (f->kind) {
	case F_STR:
	case F_TEXT: return read_str(r, n, path, f_str(m, f));
	case F_INT: return read_int(r, n, path, f_int(m, f));
	case F_LUT: return read_lut(r, n, path, f_int(m, f));
	case F_BOOL: return read_bool(r, n, path, f_int(m, f));
	default: return read_list(r, n, f, path, m);
	}
}

/* The value of key `key` in mapping n (NULL when absent); -1 when it appears twice. */
static int map_get(const reader *r, const yaml_node_t *n, const char *key, const char *path, yaml_node_t **out)
{
	*out = NULL;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
		if (!k || k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, key) != 0)
			continue;
		if (*out)
			return bad(r, k, path, "the key appears twice");
		*out = yaml_document_get_node(r->doc, p->value);
	}
	return 0;
}

/* Every known key of mapping n (section sec); unknown keys are skipped. */
static int read_section(reader *r, const yaml_node_t *n, int sec, const char *prefix, metayaml *m)
{
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(r->doc, p->key), *v = yaml_document_get_node(r->doc, p->value);
		if (!k || !v || k->type != YAML_SCALAR_NODE)
			continue;
		const field *f = field_find(sec, (const char *)k->data.scalar.value);
		char path[128];
		if (!f)
			continue;
		snprintf(path, sizeof path, "%s.%s", prefix, f->key);
		if (read_field(r, v, f, path, m) != 0)
			return -1;
	}
	return 0;
}

static int read_document(reader *r, metayaml *m)
{
	yaml_node_t *root = yaml_document_get_root_node(r->doc), *info, *params;
	if (!root)
		return errf("'%s': empty: expected a mapping with model_info", r->label);
	if (root->type != YAML_MAPPING_NODE)
		return expect(r, root, "top level", "a mapping with model_info");
	if (map_get(r, root, "model_info", "model_info", &info) != 0)
		return -1;
	if (!info)
		return errf("'%s': model_info is missing", r->label);
	if (info->type != YAML_MAPPING_NODE)
		return expect(r, info, "model_info", "a mapping");
	if (map_get(r, info, "parameters", "model_info.parameters", &params) != 0)
		return -1;
	if (!params)
		return errf("'%s': model_info.parameters is missing", r->label);
	if (params->type != YAML_MAPPING_NODE)
		return expect(r, params, "model_info.parameters", "a mapping");
	if (read_section(r, info, SEC_INFO, "model_info", m) != 0 ||
	    read_section(r, params, SEC_PARAM, "model_info.parameters", m) != 0)
		return -1;
	return check_required(m, r->label) == 0 && check_lm_head(m, r->label) == 0 ? 0 : -1;
}

static int parser_error(const yaml_parser_t *p, const char *label)
{
	return errf("'%s' line %zu: not valid YAML: %s%s%s", label, p->problem_mark.line + 1,
		    p->problem ? p->problem : "unknown error", p->context ? " " : "", p->context ? p->context : "");
}

/* Load the one document of the text (a second one is an error, as in PyYAML). */
static int load(const char *text, size_t len, const char *label, yaml_document_t *doc)
{
	yaml_parser_t p;
	if (!yaml_parser_initialize(&p))
		BUG("yaml_parser_initialize");
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	int rc = yaml_parser_load(&p, doc) ? 0 : parser_error(&p, label);
	if (rc == 0) {
		yaml_document_t next;
		if (!yaml_parser_load(&p, &next))
			rc = parser_error(&p, label);
		else {
			if (yaml_document_get_root_node(&next))
				rc = errf("'%s': more than one YAML document", label);
			yaml_document_delete(&next);
		}
		if (rc != 0)
			yaml_document_delete(doc);
	}
	yaml_parser_delete(&p);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reading the comment block                                           */

/* One line of text[*pos..len) (without '\n'); 0 at the end. */
static int next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n)
{
	if (*pos >= len)
		return 0;
	const char *s = text + *pos, *nl = memchr(s, '\n', len - *pos);
	*line = s;
	*n = nl ? (size_t)(nl - s) : len - *pos;
	*pos += *n + (nl != NULL);
	return 1;
}

static int line_is(const char *line, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(line, s, n) == 0;
}

/* "# ====..." */
static int is_rule(const char *line, size_t n)
{
	if (n < 3 || line[0] != '#' || line[1] != ' ')
		return 0;
	for (size_t i = 2; i < n; i++)
		if (line[i] != '=')
			return 0;
	return 1;
}

/* "# key: value" or "# key:" */
static void comment_entry(metayaml *m, const char *line, size_t n)
{
	size_t k = 2;
	if (n < 4 || line[0] != '#' || line[1] != ' ')
		return;
	while (k < n && (isalnum((unsigned char)line[k]) || line[k] == '_'))
		k++;
	if (k == 2 || k >= n || line[k] != ':' || (k + 1 < n && line[k + 1] != ' '))
		return;
	char *key = xstrndup(line + 2, k - 2);
	size_t v = k + 2 < n ? k + 2 : n;
	if (strcmp(key, "Generated") == 0) {
		free(m->generated);
		m->generated = xstrndup(line + v, n - v);
	} else {
		char *text = xstrndup(line + v, n - v);
		metayaml_add_comment_literal(m, key, text);
		free(text);
	}
	free(key);
}

static void read_comments(const char *text, size_t len, metayaml *m)
{
	size_t pos = 0, n;
	const char *line;
	while (next_line(text, len, &pos, &line, &n) && !line_is(line, n, TITLE))
		;
	if (pos >= len)
		return;
	size_t save = pos;
	if (next_line(text, len, &pos, &line, &n) && !is_rule(line, n))
		pos = save; /* the title's closing rule is optional */
	while (next_line(text, len, &pos, &line, &n) && n && line[0] == '#' && !is_rule(line, n))
		comment_entry(m, line, n);
}

int metayaml_parse(const char *text, size_t len, const char *label, metayaml *m)
{
	metayaml_init(m);
	yaml_document_t doc;
	if (load(text, len, label, &doc) != 0)
		return -1;
	reader r = {.doc = &doc, .label = label};
	int rc = read_document(&r, m);
	yaml_document_delete(&doc);
	if (rc == 0)
		read_comments(text, len, m);
	else
		metayaml_release(m);
	return rc;
}

int metayaml_read(const char *path, metayaml *m)
{
	char *text;
	size_t len;
	metayaml_init(m);
	if (read_file(path, FS_MAX_TEXT, &text, &len) != 0)
		return -1;
	int rc = metayaml_parse(text, len, path, m);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Finding parts                                                       */

char *metayaml_dir(const char *meta_path)
{
	const char *slash = strrchr(meta_path, '/');
	if (!slash)
		return xstrdup(".");
	return slash == meta_path ? xstrdup("/") : xstrndup(meta_path, (size_t)(slash - meta_path));
}

char *metayaml_chunk_name(const char *name, int chunk)
{
	const char *hit = NULL;
	for (const char *p = strstr(name, "_chunk_"); p; p = strstr(p + 1, "_chunk_")) {
		const char *d = p + 7;
		while (isdigit((unsigned char)*d))
			d++;
		if (d > p + 7 && strncmp(d, "of", 2) == 0)
			hit = p;
	}
	if (!hit) {
		errf("'%s' has no _chunk_NNof part to number the chunks by", shown(name, (char[64]){0}));
		return NULL;
	}
	const char *digits_end = hit + 7;
	while (isdigit((unsigned char)*digits_end))
		digits_end++;
	return xasprintf("%.*s%02d%s", (int)(hit + 7 - name), name, chunk, digits_end);
}

static char *strip_ext(const char *name)
{
	size_t n = strlen(name);
	if (has_suffix(name, ".mlmodelc"))
		return xstrndup(name, n - 9);
	if (has_suffix(name, ".mlpackage"))
		return xstrndup(name, n - 10);
	return xstrdup(name);
}

char *metayaml_part_path(const char *dir, const char *name, const char *ext)
{
	char *base = strip_ext(name);
	char *cand[3];
	int ncand = 0;
	if (ext)
		cand[ncand++] = xasprintf("%s%s", base, ext);
	else {
		cand[ncand++] = xstrdup(name);
		cand[ncand++] = xasprintf("%s.mlmodelc", base);
		cand[ncand++] = xasprintf("%s.mlpackage", base);
	}
	char *found = NULL;
	for (int i = 0; i < ncand && !found; i++) {
		char *p = path_join(dir, cand[i]);
		if (path_exists(p))
			found = p;
		else
			free(p);
	}
	if (!found)
		errf("'%s': no part '%s'%s", dir, shown(ext ? cand[0] : name, (char[64]){0}),
		     ext ? "" : " (tried it as named, .mlmodelc and .mlpackage)");
	for (int i = 0; i < ncand; i++)
		free(cand[i]);
	free(base);
	return found;
}
