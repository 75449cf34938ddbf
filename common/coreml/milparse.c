/* milparse.c: read model.mil text into an ML Program (grammar: miltext.h).
 *
 * A recursive-descent parser over the whole text in memory (model.mil is a
 * few MB at most: ~100 bytes per op). Blanks between tokens are free; the
 * printer's spacing is recovered by printing. Nesting of types and values
 * is bounded by MIL_MAX_DEPTH, so outside input cannot exhaust the stack.
 * The first error stops the parse with "line L:C: expected ...".
 */
#include "coreml/miltext.h"
#include "base/fp16.h"
#include "base/util.h"
#include "coreml/blob.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct ps {
	const char *s;
	size_t n, i;
	mil_arena *a;
	int depth;
} ps;

/* One literal element before it is stored as its dtype. */
typedef union elem {
	double d;
	int64_t i;
	const char *s;
} elem;

typedef struct elems {
	size_t n, cap;
	elem *v;
} elems;

static int perr(const ps *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

static int perr(const ps *p, const char *fmt, ...)
{
	size_t line = 1, col = 1;
	for (size_t k = 0; k < p->i && k < p->n; k++)
		if (p->s[k] == '\n')
			line++, col = 1;
		else
			col++;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return errf("line %zu:%zu: %s", line, col, msg);
}

/* ------------------------------------------------------------------ */
/* Tokens                                                              */

static int peek(ps *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
	return p->i < p->n ? (unsigned char)p->s[p->i] : 0;
}

static int accept(ps *p, int c)
{
	if (peek(p) != c)
		return 0;
	p->i++;
	return 1;
}

static int expect(ps *p, int c, const char *where)
{
	return accept(p, c) ? 0 : perr(p, "expected '%c' %s", c, where);
}

/* "item, item, ... <close>" or "<close>" alone; item(p, ctx) parses one. */
typedef int (*item_fn)(ps *p, void *ctx);

static int parse_list(ps *p, int close, item_fn item, void *ctx, const char *where)
{
	if (accept(p, close))
		return 0;
	do
		if (item(p, ctx) != 0)
			return -1;
	while (accept(p, ','));
	return expect(p, close, where);
}

static int is_ident_char(int c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* An identifier at the cursor: its length (0 when none), cursor after it. */
static size_t ident(ps *p, const char **start)
{
	peek(p);
	*start = p->s + p->i;
	size_t k = 0;
	while (p->i + k < p->n && is_ident_char((unsigned char)p->s[p->i + k], k == 0))
		k++;
	p->i += k;
	return k;
}

static int word_is(const char *w, size_t len, const char *kw) { return strlen(kw) == len && memcmp(w, kw, len) == 0; }

static int expect_ident(ps *p, const char **out, const char *what)
{
	const char *w;
	size_t len = ident(p, &w);
	if (!len)
		return perr(p, "expected %s", what);
	*out = mil_strndup(p->a, w, len);
	return 0;
}

static int expect_word(ps *p, const char *kw, const char *where)
{
	size_t at = p->i;
	const char *w;
	size_t len = ident(p, &w);
	if (word_is(w, len, kw))
		return 0;
	p->i = at;
	peek(p);
	return perr(p, "expected '%s' %s", kw, where);
}

/* A decimal unsigned integer. */
static int unsigned_int(ps *p, uint64_t *v, const char *what)
{
	peek(p);
	size_t k = p->i;
	uint64_t x = 0;
	while (k < p->n && p->s[k] >= '0' && p->s[k] <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return perr(p, "%s is too large", what);
		x = x * 10 + (uint64_t)(p->s[k++] - '0');
	}
	if (k == p->i)
		return perr(p, "expected %s", what);
	p->i = k;
	*v = x;
	return 0;
}

/* The dtype called w, or -1. */
static int dtype_named(const char *w, size_t len)
{
	char buf[MILTEXT_DTYPE_MAX];
	for (int dt = 1; dt < 64; dt++)
		if (mil_dtype_name((mil_dtype)dt) && word_is(w, len, miltext_dtype_name(dt, buf)))
			return dt;
	return -1;
}

/* ------------------------------------------------------------------ */
/* Types                                                               */

static int parse_type(ps *p, mil_type **out);

static int parse_dim(ps *p, mil_dim *d)
{
	*d = (mil_dim){0};
	if (accept(p, '?')) {
		d->kind = MIL_DIM_UNKNOWN;
		if (p->i < p->n && p->s[p->i] == '*')
			d->variadic = 1, p->i++;
		return 0;
	}
	d->kind = MIL_DIM_CONST;
	return unsigned_int(p, &d->size, "a dimension (a number or '?')");
}

static int add_dim(ps *p, void *tensor)
{
	mil_type *t = tensor;
	mil_dim d;
	if (parse_dim(p, &d) != 0)
		return -1;
	MIL_GROW(p->a, t->dims, t->dims_cap, t->ndims + 1);
	t->dims[t->ndims++] = d;
	return 0;
}

static int parse_tensor_type(ps *p, mil_type **out)
{
	const char *w;
	if (expect(p, '<', "after 'tensor'") != 0)
		return -1;
	size_t len = ident(p, &w);
	int dt = dtype_named(w, len);
	if (dt < 0)
		return perr(p, "expected a dtype (fp16, int32, ...)");
	mil_type *t = mil_type_tensor(p->a, (mil_dtype)dt, 0, NULL);
	if (expect(p, ',', "after the dtype") != 0 || expect(p, '[', "before the dimensions") != 0 ||
	    parse_list(p, ']', add_dim, t, "after the dimensions") != 0)
		return -1;
	t->rank = (int64_t)t->ndims;
	*out = t;
	return expect(p, '>', "closing the tensor type");
}

static int add_member(ps *p, void *tuple)
{
	mil_type *t = tuple, *e;
	if (parse_type(p, &e) != 0)
		return -1;
	MIL_GROW(p->a, t->types, t->types_cap, t->ntypes + 1);
	t->types[t->ntypes++] = e;
	return 0;
}

static int parse_tuple_type(ps *p, mil_type **out)
{
	*out = mil_type_tuple(p->a, 0, NULL);
	if (expect(p, '<', "after 'tuple'") != 0)
		return -1;
	return parse_list(p, '>', add_member, *out, "closing the tuple type");
}

/* state<T>, list<T, n>, dict<K, V>: a keyword, then one or two types. */
static int parse_wrapper_type(ps *p, const char *kw, mil_type **out)
{
	mil_type *a, *b = NULL;
	if (expect(p, '<', kw[0] == 's' ? "after 'state'" : kw[0] == 'l' ? "after 'list'" : "after 'dict'") != 0 ||
	    parse_type(p, &a) != 0)
		return -1;
	if (kw[0] == 's') {
		*out = mil_type_state(p->a, a);
	} else if (kw[0] == 'l') {
		mil_dim len;
		if (expect(p, ',', "after the list's element type") != 0 || parse_dim(p, &len) != 0)
			return -1;
		*out = mil_type_list(p->a, a);
		(*out)->has_length = len.kind == MIL_DIM_CONST;
		(*out)->length = len;
	} else {
		if (expect(p, ',', "after the dict's key type") != 0 || parse_type(p, &b) != 0)
			return -1;
		*out = mil_type_dict(p->a, a, b);
	}
	return expect(p, '>', "closing the type");
}

static int parse_type(ps *p, mil_type **out)
{
	const char *w;
	if (++p->depth > MIL_MAX_DEPTH)
		return perr(p, "types nested deeper than %d", MIL_MAX_DEPTH);
	size_t at = p->i, len = ident(p, &w);
	int rc, dt;
	if (word_is(w, len, "tensor"))
		rc = parse_tensor_type(p, out);
	else if (word_is(w, len, "tuple"))
		rc = parse_tuple_type(p, out);
	else if (word_is(w, len, "state") || word_is(w, len, "list") || word_is(w, len, "dict"))
		rc = parse_wrapper_type(p, w[0] == 's' ? "s" : w[0] == 'l' ? "l" : "d", out);
	else if ((dt = dtype_named(w, len)) >= 0)
		*out = mil_type_scalar(p->a, (mil_dtype)dt), rc = 0;
	else
		p->i = at, peek(p), rc = perr(p, "expected a type");
	p->depth--;
	return rc;
}

/* Does a type start at the cursor (rather than a variable name)? */
static int type_ahead(ps *p)
{
	size_t at = p->i;
	const char *w;
	size_t len = ident(p, &w);
	int c = peek(p), yes = 0;
	if (word_is(w, len, "tensor") || word_is(w, len, "tuple") || word_is(w, len, "state") ||
	    word_is(w, len, "list") || word_is(w, len, "dict"))
		yes = c == '<';
	else if (len && dtype_named(w, len) >= 0)
		yes = c == '(';
	p->i = at;
	return yes;
}

/* ------------------------------------------------------------------ */
/* Literals                                                            */

static int parse_string(ps *p, const char **out)
{
	if (expect(p, '"', "opening a string") != 0)
		return -1;
	size_t span = 0; /* raw bytes up to the closing quote: the unescaped text is no longer */
	while (p->i + span < p->n && p->s[p->i + span] != '"')
		span += p->s[p->i + span] == '\\' ? 2 : 1;
	char *buf = xmalloc(span + 1);
	size_t len = 0;
	while (p->i < p->n && p->s[p->i] != '"') {
		char c = p->s[p->i++];
		if (c == '\\' && p->i < p->n) {
			char e = p->s[p->i++];
			if (e == 'n')
				c = '\n';
			else if (e == 't')
				c = '\t';
			else if (e >= '0' && e <= '7') {
				int v = e - '0';
				for (int k = 0; k < 2 && p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '7'; k++)
					v = v * 8 + (p->s[p->i++] - '0');
				c = (char)v;
			} else
				c = e;
		}
		if (c == 0) {
			free(buf);
			return perr(p, "a string holds a NUL byte");
		}
		buf[len++] = c;
	}
	*out = mil_strndup(p->a, buf, len);
	free(buf);
	if (p->i >= p->n)
		return perr(p, "expected '\"' closing the string");
	p->i++;
	return 0;
}

/* A number token: what strtod/strtoll may read ([-+0-9a-zA-Z.]). */
static size_t number_token(ps *p, char *buf, size_t cap)
{
	peek(p);
	size_t k = 0;
	while (p->i + k < p->n && k + 1 < cap) {
		char c = p->s[p->i + k];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
		      c == '+' || c == '.'))
			break;
		buf[k++] = c;
	}
	buf[k] = 0;
	return k;
}

static int parse_element(ps *p, int dt, elems *e)
{
	elem x = {0};
	char tok[64], *end;
	GROW(e->v, e->cap, e->n + 1);
	if (dt == MIL_STRING) {
		if (parse_string(p, &x.s) != 0)
			return -1;
	} else {
		size_t len = number_token(p, tok, sizeof tok);
		int bits = mil_dtype_bits((mil_dtype)dt);
		if (!len)
			return perr(p, "expected a %s element", dt == MIL_BOOL ? "true/false" : "number");
		if (dt == MIL_BOOL) {
			if (strcmp(tok, "true") != 0 && strcmp(tok, "false") != 0)
				return perr(p, "expected true or false");
			x.i = tok[0] == 't';
		} else if (mil_dtype_is_float((mil_dtype)dt)) {
			x.d = strtod(tok, &end);
			if (*end)
				return perr(p, "expected a float (hex, inf, -inf or nan)");
		} else if (dt == MIL_UINT64) {
			x.i = (int64_t)strtoull(tok, &end, 10);
			if (*end || tok[0] == '-')
				return perr(p, "expected a uint64");
		} else {
			x.i = strtoll(tok, &end, 10);
			int is_signed = dt == MIL_INT8 || dt == MIL_INT16 || dt == MIL_INT32 || dt == MIL_INT64 || dt == MIL_INT4;
			int64_t lo = !is_signed ? 0 : bits >= 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
			int64_t hi = bits >= 64 ? INT64_MAX : is_signed ? ((int64_t)1 << (bits - 1)) - 1 : ((int64_t)1 << bits) - 1;
			if (*end || bits == 0 || bits > 64 || x.i < lo || x.i > hi)
				return perr(p, "expected an integer in the range of %s", mil_dtype_name((mil_dtype)dt));
		}
		p->i += len;
	}
	e->v[e->n++] = x;
	return 0;
}

typedef struct nest {
	int rank;
	int64_t shape[MIL_MAX_DEPTH];
	int seen[MIL_MAX_DEPTH];
} nest;

/* [..] nested one level per dimension; every level must be rectangular. */
static int parse_nested(ps *p, int dt, elems *e, nest *ns, int level)
{
	if (level >= MIL_MAX_DEPTH)
		return perr(p, "a tensor literal nested deeper than %d", MIL_MAX_DEPTH);
	size_t at = (peek(p), p->i);
	if (expect(p, '[', "opening a tensor literal") != 0)
		return -1;
	int64_t count = 0;
	int sub = peek(p) == '[';
	if (peek(p) != ']') {
		do {
			if ((sub ? parse_nested(p, dt, e, ns, level + 1) : parse_element(p, dt, e)) != 0)
				return -1;
			count++;
		} while (accept(p, ','));
	}
	if (expect(p, ']', "closing a tensor literal") != 0)
		return -1;
	if (!sub && ns->rank < 0)
		ns->rank = level + 1;
	if ((!sub && ns->rank != level + 1) || (ns->seen[level] && ns->shape[level] != count)) {
		p->i = at;
		return perr(p, "a tensor literal is not rectangular");
	}
	ns->seen[level] = 1, ns->shape[level] = count;
	return 0;
}

/* Elements as dtype dt in their natural C layout (mil_value_tensor). */
static void *natural(mil_arena *a, int dt, const elems *e)
{
	size_t n = e->n;
	void *out = mil_alloc(a, (n + 1) * 8);
	uint8_t *sub = NULL;
	for (size_t i = 0; i < n; i++) {
		const elem *x = &e->v[i];
		switch (dt) {
		case MIL_FP32: ((float *)out)[i] = (float)x->d; break;
		case MIL_FP64: ((double *)out)[i] = x->d; break;
		case MIL_FP16:
			((uint16_t *)out)[i] = isnan(x->d)   ? 0x7e00
					       : isinf(x->d) ? (x->d < 0 ? 0xfc00 : 0x7c00)
							     : f32_to_fp16((float)x->d, NULL);
			break;
		case MIL_BF16: ((uint16_t *)out)[i] = f32_to_bf16((float)x->d); break;
		case MIL_BOOL: case MIL_UINT8: ((uint8_t *)out)[i] = (uint8_t)x->i; break;
		case MIL_INT8: ((int8_t *)out)[i] = (int8_t)x->i; break;
		case MIL_INT16: ((int16_t *)out)[i] = (int16_t)x->i; break;
		case MIL_UINT16: ((uint16_t *)out)[i] = (uint16_t)x->i; break;
		case MIL_INT32: ((int32_t *)out)[i] = (int32_t)x->i; break;
		case MIL_UINT32: ((uint32_t *)out)[i] = (uint32_t)x->i; break;
		case MIL_INT64: case MIL_UINT64: ((int64_t *)out)[i] = x->i; break;
		case MIL_STRING: ((const char **)out)[i] = x->s; break;
		default: /* sub-byte: packed below */
			if (!sub)
				sub = xcalloc(n + 1, 1);
			sub[i] = (uint8_t)x->i;
		}
	}
	if (sub) {
		blob_pack_bits(sub, n, mil_dtype_bits((mil_dtype)dt), out);
		free(sub);
	}
	return out;
}

static int parse_typed_value(ps *p, mil_value **out);

/* BLOBFILE(path = string("..."), offset = uint64(N)) */
static int parse_blob(ps *p, mil_type *t, mil_value **out)
{
	mil_value *path, *off;
	int64_t offset;
	if (expect(p, '(', "after BLOBFILE") != 0 || expect_word(p, "path", "in BLOBFILE") != 0 ||
	    expect(p, '=', "after 'path'") != 0 || parse_typed_value(p, &path) != 0 ||
	    expect(p, ',', "after the blob path") != 0 || expect_word(p, "offset", "in BLOBFILE") != 0 ||
	    expect(p, '=', "after 'offset'") != 0 || parse_typed_value(p, &off) != 0 ||
	    expect(p, ')', "closing BLOBFILE") != 0)
		return -1;
	if (!mil_value_as_str(path) || mil_value_get_int(off, 0, &offset) != 0 || !off->type ||
	    off->type->dtype != MIL_UINT64)
		return perr(p, "expected a string path and a uint64 offset in BLOBFILE");
	*out = mil_value_blob(p->a, t, mil_value_as_str(path), (uint64_t)offset);
	return 0;
}

/* A tensor literal of type t; untyped elements get t's dtype and their own shape. */
static int parse_tensor_literal(ps *p, mil_type *t, int typed, mil_value **out)
{
	elems e = {0};
	nest ns = {.rank = -1};
	int scalar = t->rank == 0 && t->ndims == 0;
	int rc = scalar ? parse_element(p, t->dtype, &e) : parse_nested(p, t->dtype, &e, &ns, 0);
	uint64_t want;
	int fixed = mil_type_numel(t, &want) == 0;
	if (rc == 0 && t->dtype == MIL_FP8E4M3FN)
		rc = perr(p, "fp8 immediates are not supported");
	if (rc == 0 && t->dtype == MIL_FP8E5M2)
		rc = perr(p, "fp8 immediates are not supported");
	if (rc == 0 && fixed && (want != e.n || (!scalar && (size_t)ns.rank != t->ndims)))
		rc = perr(p, "the literal has %zu elements in %d dimensions where its type needs %llu in %zu", e.n,
			  scalar ? 0 : ns.rank, (unsigned long long)want, t->ndims);
	for (int d = 0; rc == 0 && fixed && !scalar && d < ns.rank; d++)
		if ((uint64_t)ns.shape[d] != t->dims[d].size)
			rc = perr(p, "the literal's dimension %d is %lld where its type says %llu", d,
				  (long long)ns.shape[d], (unsigned long long)t->dims[d].size);
	if (rc == 0) {
		mil_type *shaped = fixed ? t : mil_type_tensor(p->a, (mil_dtype)t->dtype, (size_t)ns.rank, ns.shape);
		*out = mil_value_tensor(p->a, shaped, natural(p->a, t->dtype, &e));
		if (typed)
			(*out)->type = t;
	}
	free(e.v);
	return rc;
}

static int parse_literal(ps *p, mil_type *t, int typed, mil_value **out);

/* Items of a tuple (...), list [...] or dict {{k, v}, ...} literal. */
static int parse_items(ps *p, mil_type *t, mil_value *v)
{
	const char *close = t->kind == MIL_TYPE_TUPLE ? ")" : t->kind == MIL_TYPE_LIST ? "]" : "}";
	if (expect(p, t->kind == MIL_TYPE_TUPLE ? '(' : t->kind == MIL_TYPE_LIST ? '[' : '{', "opening a literal") != 0)
		return -1;
	if (peek(p) != close[0]) {
		do {
			mil_value *item, *key = NULL;
			if (t->kind == MIL_TYPE_TUPLE && v->n >= t->ntypes)
				return perr(p, "expected ')': the tuple type has %zu members", t->ntypes);
			mil_type *it = t->kind == MIL_TYPE_TUPLE ? t->types[v->n]
				       : t->kind == MIL_TYPE_LIST ? t->wrapped : t->value_type;
			if (t->kind == MIL_TYPE_DICT &&
			    (expect(p, '{', "opening a dict entry") != 0 || parse_literal(p, t->key_type, 0, &key) != 0 ||
			     expect(p, ',', "after a dict key") != 0))
				return -1;
			if (parse_literal(p, it, 0, &item) != 0)
				return -1;
			if (t->kind == MIL_TYPE_DICT) {
				if (expect(p, '}', "closing a dict entry") != 0)
					return -1;
				mil_value_dict_add(p->a, v, key, item);
			} else {
				mil_value_push(p->a, v, item);
			}
		} while (accept(p, ','));
	}
	if (t->kind == MIL_TYPE_TUPLE && v->n != t->ntypes)
		return perr(p, "expected %zu tuple members, found %zu", t->ntypes, v->n);
	return expect(p, close[0], "closing a literal");
}

static int parse_literal(ps *p, mil_type *t, int typed, mil_value **out)
{
	if (++p->depth > MIL_MAX_DEPTH)
		return perr(p, "values nested deeper than %d", MIL_MAX_DEPTH);
	int rc;
	size_t at = p->i;
	const char *w;
	size_t len;
	if (!t) {
		rc = perr(p, "expected a typed value");
	} else if (t->kind == MIL_TYPE_TENSOR) {
		len = ident(p, &w);
		if (word_is(w, len, "BLOBFILE"))
			rc = parse_blob(p, t, out);
		else
			p->i = at, rc = parse_tensor_literal(p, t, typed, out);
	} else if (t->kind == MIL_TYPE_TUPLE || t->kind == MIL_TYPE_LIST || t->kind == MIL_TYPE_DICT) {
		mil_value_kind k = t->kind == MIL_TYPE_TUPLE ? MIL_VAL_TUPLE
				   : t->kind == MIL_TYPE_LIST ? MIL_VAL_LIST
							      : MIL_VAL_DICT;
		*out = mil_value_seq(p->a, k, typed ? t : NULL);
		rc = parse_items(p, t, *out);
	} else {
		rc = perr(p, "a %s type has no literal", t->kind == MIL_TYPE_STATE ? "state" : "such");
	}
	p->depth--;
	return rc;
}

/* <type>(<literal>) */
static int parse_typed_value(ps *p, mil_value **out)
{
	mil_type *t;
	if (parse_type(p, &t) != 0 || expect(p, '(', "after a value's type") != 0 || parse_literal(p, t, 1, out) != 0)
		return -1;
	return expect(p, ')', "closing a value");
}

/* ------------------------------------------------------------------ */
/* Ops, functions, program                                             */

/* [k = v, ...] */
static int parse_attrs(ps *p, mil_attrs *m)
{
	if (expect(p, '[', "opening attributes") != 0)
		return -1;
	do {
		const char *key = NULL;
		mil_value *v = NULL;
		if (expect_ident(p, &key, "an attribute name") != 0 || expect(p, '=', "after an attribute name") != 0 ||
		    parse_typed_value(p, &v) != 0)
			return -1;
		if (mil_attrs_get(m, key))
			return perr(p, "attribute '%s' given twice", key);
		mil_attrs_set(p->a, m, key, v);
	} while (accept(p, ','));
	return expect(p, ']', "closing attributes");
}

static int parse_binding(ps *p, void *argp)
{
	mil_arg *arg = argp;
	if (type_ahead(p)) {
		mil_value *v = NULL;
		if (parse_typed_value(p, &v) != 0)
			return -1;
		mil_arg_add_value(p->a, arg, v);
		return 0;
	}
	const char *name = NULL;
	if (expect_ident(p, &name, "a variable name or a typed value") != 0)
		return -1;
	mil_arg_add_name(p->a, arg, name);
	return 0;
}

/* param = binding, or param = (binding, ...) */
static int parse_arg(ps *p, void *opp)
{
	mil_op *op = opp;
	const char *param = NULL;
	if (expect_ident(p, &param, "a parameter name") != 0 || expect(p, '=', "after a parameter name") != 0)
		return -1;
	if (mil_op_input(op, param))
		return perr(p, "parameter '%s' bound twice", param);
	mil_arg *arg = mil_op_arg(op, param);
	if (accept(p, '('))
		return parse_list(p, ')', parse_binding, arg, "closing the bindings");
	return parse_binding(p, arg);
}

/* Output declarations "T a, T b =", or nothing when the op has none. */
static int parse_outputs(ps *p, mil_var **outs, size_t *n, size_t *cap)
{
	size_t at = p->i;
	const char *w;
	if (ident(p, &w) && peek(p) == '(' && !type_ahead(p)) {
		p->i = at;
		return 0;
	}
	p->i = at;
	do {
		MIL_GROW(p->a, *outs, *cap, *n + 1);
		mil_var *v = &(*outs)[*n];
		if (parse_type(p, &v->type) != 0 || expect_ident(p, &v->name, "an output name") != 0)
			return -1;
		(*n)++;
	} while (accept(p, ','));
	return expect(p, '=', "after the op's outputs");
}

static int parse_op(ps *p, mil_block *b)
{
	mil_var *outs = NULL;
	size_t nout = 0, cap = 0;
	const char *type = NULL;
	if (parse_outputs(p, &outs, &nout, &cap) != 0 || expect_ident(p, &type, "an op type") != 0 ||
	    expect(p, '(', "after the op type") != 0)
		return -1;
	mil_op *op = mil_block_add_op(b, type, NULL);
	for (size_t i = 0; i < nout; i++)
		mil_op_add_output(op, outs[i].name, outs[i].type);
	if (parse_list(p, ')', parse_arg, op, "closing the op's parameters") != 0)
		return -1;
	if (peek(p) == '[' && parse_attrs(p, &op->attrs) != 0)
		return -1;
	if (peek(p) == '{')
		return perr(p, "nested blocks (cond, while) are not supported");
	return expect(p, ';', "ending the op");
}

static const char *opset_of(const char *tag, size_t len)
{
	static const char *const opsets[] = {"CoreML5", "CoreML6", "CoreML7", "CoreML8"};
	for (size_t i = 0; i < sizeof opsets / sizeof opsets[0]; i++) {
		const char *t = miltext_opset_tag(opsets[i]);
		if (word_is(tag, len, t))
			return opsets[i];
	}
	return NULL;
}

static int add_input(ps *p, void *fn)
{
	mil_type *t = NULL;
	const char *in = NULL;
	if (parse_type(p, &t) != 0 || expect_ident(p, &in, "an input name") != 0)
		return -1;
	mil_function_add_input(fn, in, t);
	return 0;
}

static int add_output(ps *p, void *block)
{
	const char *out = NULL;
	if (expect_ident(p, &out, "an output name") != 0)
		return -1;
	mil_block_add_output(block, out);
	return 0;
}

static int parse_function(ps *p, mil_program *prog)
{
	const char *name = NULL, *tag = NULL;
	if (expect_ident(p, &name, "a function name") != 0 || expect(p, '<', "after the function name") != 0)
		return -1;
	size_t at = (peek(p), p->i), len = ident(p, &tag);
	const char *opset = opset_of(tag, len);
	if (!opset) {
		p->i = at;
		return perr(p, "expected an opset (ios15, ios16, ios17, ios18)");
	}
	if (mil_program_find_function(prog, name))
		return perr(p, "function '%s' defined twice", name);
	mil_function *fn = mil_program_add_function(prog, name, opset);
	if (expect(p, '>', "after the opset") != 0 || expect(p, '(', "opening the function's inputs") != 0)
		return -1;
	if (parse_list(p, ')', add_input, fn, "closing the function's inputs") != 0)
		return -1;
	if (peek(p) == '[' && parse_attrs(p, &fn->attrs) != 0)
		return -1;
	if (expect(p, '{', "opening the function body") != 0)
		return -1;
	mil_block *b = mil_function_block(fn);
	while (peek(p) && peek(p) != '}')
		if (parse_op(p, b) != 0)
			return -1;
	if (expect(p, '}', "closing the function body") != 0 || expect(p, '-', "of '->'") != 0 ||
	    expect(p, '>', "of '->'") != 0 || expect(p, '(', "opening the function's outputs") != 0)
		return -1;
	if (parse_list(p, ')', add_output, b, "closing the function's outputs") != 0)
		return -1;
	return expect(p, ';', "after the function's outputs");
}

int miltext_parse(mil_arena *a, const char *text, size_t n, mil_program **out, mil_text_form *form)
{
	ps p = {text, n, 0, a, 0};
	uint64_t major, minor;
	mil_program *prog = mil_program_new(a);
	*out = NULL;
	if (expect_word(&p, "program", "at the start") != 0 || expect(&p, '(', "after 'program'") != 0)
		return -1;
	size_t at = (peek(&p), p.i);
	if (unsigned_int(&p, &major, "the program version") != 0 || expect(&p, '.', "in the program version") != 0 ||
	    unsigned_int(&p, &minor, "the program version") != 0 || expect(&p, ')', "after the program version") != 0)
		return -1;
	if (major != 1 || minor > 9)
		return p.i = at, perr(&p, "expected program version 1.0 to 1.9, not %llu.%llu", (unsigned long long)major,
			    (unsigned long long)minor);
	if (peek(&p) == '[' && parse_attrs(&p, &prog->attrs) != 0)
		return -1;
	if (expect(&p, '{', "opening the program") != 0)
		return -1;
	while (peek(&p) != '}') {
		if (expect_word(&p, "func", "or '}'") != 0 || parse_function(&p, prog) != 0)
			return -1;
	}
	p.i++;
	int newline = p.i < p.n && text[p.i] == '\n';
	if (peek(&p))
		return perr(&p, "expected the end of the file after the program's '}'");
	if (form)
		*form = (mil_text_form){(int)minor, newline};
	*out = prog;
	return 0;
}
