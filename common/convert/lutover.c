/* lutover.c: LUT overrides by tensor pattern (see lutover.h). */
#include "convert/lutover.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* Nested @FILE includes deeper than this are refused (a file including itself). */
#define MAX_DEPTH 8

static int is_digits(const char *s, size_t n)
{
	if (n == 0 || n > 9)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* One pattern component p[0..pn) against one name component s[0..sn). */
static int component_match(const char *p, size_t pn, const char *s, size_t sn)
{
	const char *dash = memchr(p, '-', pn);
	if (dash && is_digits(p, (size_t)(dash - p)) && is_digits(dash + 1, pn - (size_t)(dash - p) - 1)) {
		if (!is_digits(s, sn))
			return 0;
		long lo = strtol(p, NULL, 10), hi = strtol(dash + 1, NULL, 10), v = strtol(s, NULL, 10);
		return v >= lo && v <= hi;
	}
	char pat[256], str[256];
	if (pn >= sizeof pat || sn >= sizeof str)
		return 0;
	memcpy(pat, p, pn), pat[pn] = 0;
	memcpy(str, s, sn), str[sn] = 0;
	return fnmatch(pat, str, 0) == 0;
}

/* Does the pattern match the name's components starting at s? */
static int match_at(const char *p, const char *s)
{
	for (;;) {
		const char *pe = strchr(p, '.'), *se = strchr(s, '.');
		size_t pn = pe ? (size_t)(pe - p) : strlen(p), sn = se ? (size_t)(se - s) : strlen(s);
		if (!component_match(p, pn, s, sn))
			return 0;
		if (!pe)
			return 1;
		if (!se)
			return 0;
		p = pe + 1;
		s = se + 1;
	}
}

int lut_pattern_match(const char *pattern, const char *name)
{
	for (const char *s = name; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
		if (match_at(pattern, s))
			return 1;
	return 0;
}

lut_override *lut_overrides_find(const lut_overrides *o, const char *name, const char *alias)
{
	for (size_t i = o ? o->n : 0; i-- > 0;)
		if (lut_pattern_match(o->v[i].pattern, name) || (alias && lut_pattern_match(o->v[i].pattern, alias)))
			return &o->v[i];
	return NULL;
}

static void trim(const char **b, const char **e)
{
	while (*b < *e && strchr(" \t\r", **b))
		(*b)++;
	while (*e > *b && strchr(" \t\r", (*e)[-1]))
		(*e)--;
}

/* A pattern: non-empty components of letters, digits, '_', '*', '?', '-'. */
static const char *pattern_problem(const char *p)
{
	if (!*p)
		return "the pattern is empty";
	for (const char *c = p; *c; c++) {
		if (*c == '.' && (c == p || c[1] == 0 || c[1] == '.'))
			return "the pattern has an empty component";
		if (!(*c == '.' || *c == '_' || *c == '*' || *c == '?' || *c == '-' || (*c >= '0' && *c <= '9') ||
		      (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			return "the pattern may hold only letters, digits, '_', '-', '*', '?' and '.'";
	}
	return NULL;
}

static int parse_text(const char *s, const char *flag, lut_overrides *o, int depth, const char *file);

static int parse_entry(const char *b, const char *e, const char *flag, lut_overrides *o, int depth, const char *file)
{
	char *entry = xstrndup(b, (size_t)(e - b));
	int rc = 0;
	const char *where = file ? file : "";
	if (entry[0] == '@') {
		char *data = NULL;
		size_t n;
		if (depth >= MAX_DEPTH)
			rc = errf("%s: '%s': @FILE nested too deep (a file including itself?)", flag, entry);
		else if (read_file(entry + 1, 1 << 24, &data, &n) != 0)
			rc = errf("%s: '%s': %s", flag, entry, errmsg());
		else
			rc = parse_text(data, flag, o, depth + 1, entry + 1);
		free(data);
		free(entry);
		return rc;
	}
	char *eq = strchr(entry, '=');
	if (!eq) {
		rc = errf("%s%s%s: '%s' is not PATTERN=SPEC", flag, *where ? " in " : "", where, entry);
		free(entry);
		return rc;
	}
	const char *pb = entry, *pe = eq;
	trim(&pb, &pe);
	char *pattern = xstrndup(pb, (size_t)(pe - pb));
	const char *why = pattern_problem(pattern);
	lut_spec spec;
	if (why)
		rc = errf("%s%s%s: '%s': %s", flag, *where ? " in " : "", where, entry, why);
	else if (lut_spec_parse(eq + 1, &spec) != 0)
		rc = errf("%s%s%s: '%s': %s", flag, *where ? " in " : "", where, entry, errmsg());
	if (rc == 0) {
		GROW(o->v, o->cap, o->n + 1);
		o->v[o->n++] = (lut_override){.pattern = pattern, .text = entry, .spec = spec};
		return 0;
	}
	free(pattern);
	free(entry);
	return rc;
}

static int parse_text(const char *s, const char *flag, lut_overrides *o, int depth, const char *file)
{
	while (*s) {
		size_t len = strcspn(s, "\n");
		const char *hash = file ? memchr(s, '#', len) : NULL; /* comments in files only */
		const char *end = hash ? hash : s + len;
		for (const char *b = s; b < end;) { /* the line's entries */
			const char *semi = memchr(b, ';', (size_t)(end - b)), *e = semi ? semi : end, *next = e + 1;
			trim(&b, &e);
			if (b < e && parse_entry(b, e, flag, o, depth, file) != 0)
				return -1;
			b = next;
		}
		s += len + (s[len] != 0);
	}
	return 0;
}

int lut_overrides_parse(const char *s, const char *flag, lut_overrides *o)
{
	o->flag = flag;
	return s ? parse_text(s, flag, o, 0, NULL) : 0;
}

void lut_overrides_release(lut_overrides *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n; i++)
		free(o->v[i].pattern), free(o->v[i].text);
	free(o->v);
	memset(o, 0, sizeof *o);
}

char *lut_overrides_format(const lut_overrides *o)
{
	size_t cap = 1;
	for (size_t i = 0; o && i < o->n; i++)
		cap += strlen(o->v[i].pattern) + LUT_SPEC_BUFSIZE + 2;
	char *out = xmalloc(cap), spec[LUT_SPEC_BUFSIZE];
	size_t len = 0;
	out[0] = 0;
	for (size_t i = 0; o && i < o->n; i++) {
		const lut_spec *sp = &o->v[i].spec;
		/* a spec that named no group and kept the default says so */
		if (sp->bits && sp->group_default && sp->group == LUT_SPEC_DEFAULT_GROUP)
			snprintf(spec, sizeof spec, "%d", sp->bits);
		else
			lut_spec_format(sp, spec, sizeof spec);
		len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", i ? ";" : "", o->v[i].pattern, spec);
	}
	return out;
}
