/* tok_text.c: text machinery of the tokenizer: growable buffers, UTF-8,
 * Unicode letter/number/space classes, NFC normalization, the GPT-2 byte
 * alphabet and hand-written matchers for the pre-tokenizer regexes.
 *
 * No regex library is available, and only three patterns occur in the
 * tokenizers we support, so each is matched by a function that follows the
 * pattern's alternatives in order with the same backtracking outcome as a
 * leftmost-first regex engine (Oniguruma, which HuggingFace uses). The
 * Unicode data comes from the generated tables in tok_unicode.c.
 */
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Buffers */

void tok_buf_add(tok_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	GROW(b->p, b->cap, b->len + n + 1);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void tok_buf_addc(tok_buf *b, char c) { tok_buf_add(b, &c, 1); }

void tok_buf_release(tok_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

void tok_ids_add(tok_ids *a, int32_t id)
{
	GROW(a->v, a->cap, a->n + 1);
	a->v[a->n++] = id;
}

/* ------------------------------------------------------------------------
 * UTF-8 */

/* Length of the valid UTF-8 character at s[i], or 0 if there is none; then
 * *part is the length of the longest start of a valid sequence there (at
 * least 1), which is what one U+FFFD replaces. */
static size_t utf8_char(const uint8_t *s, size_t n, size_t i, size_t *part)
{
	uint8_t c = s[i], lo = 0x80, hi = 0xBF;
	size_t need;

	*part = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
		hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
	} else {
		return 0;
	}
	for (size_t k = 1; k <= need; k++) {
		if (i + k >= n || s[i + k] < lo || s[i + k] > hi)
			return 0;
		lo = 0x80;
		hi = 0xBF;
		*part = k + 1;
	}
	return need + 1;
}

size_t tok_utf8_next(const char *str, size_t n, size_t i, uint32_t *cp)
{
	const uint8_t *s = (const uint8_t *)str;
	size_t part, len = utf8_char(s, n, i, &part);

	/* Text is validated on the way in; stay safe on anything else. */
	if (!len) {
		*cp = 0xFFFD;
		return 1;
	}
	if (len == 1)
		*cp = s[i];
	else if (len == 2)
		*cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
	else if (len == 3)
		*cp = (uint32_t)(s[i] & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
	else
		*cp = (uint32_t)(s[i] & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
		      (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
	return len;
}

size_t tok_utf8_put(char out[4], uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

int tok_utf8_check(const char *s, size_t n, size_t *bad)
{
	size_t part;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_char((const uint8_t *)s, n, i, &part);
		if (!len) {
			if (bad)
				*bad = i;
			return -1;
		}
		i += len;
	}
	return 0;
}

void tok_utf8_lossy(tok_buf *out, const char *s, size_t n)
{
	size_t part;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_char((const uint8_t *)s, n, i, &part);
		if (len) {
			tok_buf_add(out, s + i, len);
			i += len;
		} else {
			tok_buf_add(out, "\xEF\xBF\xBD", 3);
			i += part;
		}
	}
}

/* s as it can be quoted in a one-line message: control bytes escaped, cut
 * after 60 bytes. The text lives in a per-thread buffer that the fourth
 * call after this one reuses. */
const char *tok_quote(const char *s, size_t n)
{
	static _Thread_local char bufs[4][80];
	static _Thread_local int k;
	char *buf = bufs[k = (k + 1) % 4];
	size_t o = 0;

	for (size_t i = 0; i < n && o < 60; i++) {
		uint8_t c = (uint8_t)s[i];
		if (c < 0x20 || c == 0x7F)
			o += (size_t)snprintf(buf + o, 80 - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	if (o >= 60)
		o = 60 + (size_t)snprintf(buf + 60, 20, "...");
	buf[o] = '\0';
	return buf;
}

/* ------------------------------------------------------------------------
 * Character classes */

static const tok_urange *range_find(const tok_urange *t, size_t n, uint32_t cp)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < t[mid].lo)
			hi = mid;
		else if (cp > t[mid].hi)
			lo = mid + 1;
		else
			return &t[mid];
	}
	return NULL;
}

int tok_ucat(uint32_t cp)
{
	if (cp < 0x80) {
		if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
			return TOK_LETTER;
		return cp >= '0' && cp <= '9' ? TOK_NUMBER : TOK_OTHER;
	}
	const tok_urange *r = range_find(tok_ucat_table, tok_ucat_table_len, cp);
	return r ? (int)r->val : TOK_OTHER;
}

int tok_is_space(uint32_t cp)
{
	/* PropList.txt White_Space: what \s means in Unicode regex engines. */
	if (cp <= 0x20)
		return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
	if (cp < 0x85)
		return 0;
	return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ------------------------------------------------------------------------
 * NFC: canonical decomposition, canonical ordering, canonical composition
 * (UAX #15). Text below U+0300 is always NFC already (the generator checks
 * this), which makes ASCII and Latin-1 a straight copy. */

enum {
	HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
	HANGUL_LN = 19, HANGUL_VN = 21, HANGUL_TN = 28, HANGUL_NN = 21 * 28, HANGUL_SN = 19 * 21 * 28
};

static int ccc(uint32_t cp)
{
	if (cp < 0x300)
		return 0;
	const tok_urange *r = range_find(tok_ccc_table, tok_ccc_table_len, cp);
	return r ? (int)r->val : 0;
}

static const tok_utriple *triple_find(const tok_utriple *t, size_t n, uint32_t a, uint32_t b)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t k = (uint64_t)t[mid].a << 32 | t[mid].b, want = (uint64_t)a << 32 | b;
		if (want < k)
			hi = mid;
		else if (want > k)
			lo = mid + 1;
		else
			return &t[mid];
	}
	return NULL;
}

typedef struct cp_buf {
	uint32_t *v;
	size_t n, cap;
} cp_buf;

static void cp_add(cp_buf *b, uint32_t cp)
{
	GROW(b->v, b->cap, b->n + 1);
	b->v[b->n++] = cp;
}

static void decompose(cp_buf *out, uint32_t cp, int depth)
{
	if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SN) {
		uint32_t s = cp - HANGUL_S;
		cp_add(out, HANGUL_L + s / HANGUL_NN);
		cp_add(out, HANGUL_V + s % HANGUL_NN / HANGUL_TN);
		if (s % HANGUL_TN)
			cp_add(out, HANGUL_T + s % HANGUL_TN);
		return;
	}
	/* The decomposition table is keyed by cp in its first column; search it
	 * as (cp, *) by looking for the first entry with a == cp. */
	size_t lo = 0, hi = tok_decomp_table_len;
	while (cp >= 0xC0 && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < tok_decomp_table[mid].a) {
			hi = mid;
		} else if (cp > tok_decomp_table[mid].a) {
			lo = mid + 1;
		} else {
			ASSERT(depth < 8); /* Unicode decompositions are shallow */
			decompose(out, tok_decomp_table[mid].b, depth + 1);
			if (tok_decomp_table[mid].c)
				decompose(out, tok_decomp_table[mid].c, depth + 1);
			return;
		}
	}
	cp_add(out, cp);
}

/* Stable sort of each run of non-starters by combining class. */
static void reorder(cp_buf *b)
{
	for (size_t i = 1; i < b->n; i++) {
		int c = ccc(b->v[i]);
		if (!c)
			continue;
		for (size_t j = i; j > 0; j--) {
			int p = ccc(b->v[j - 1]);
			if (p <= c)
				break;
			uint32_t t = b->v[j];
			b->v[j] = b->v[j - 1];
			b->v[j - 1] = t;
		}
	}
}

static uint32_t compose_pair(uint32_t a, uint32_t b)
{
	if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LN && b >= HANGUL_V && b < HANGUL_V + HANGUL_VN)
		return HANGUL_S + ((a - HANGUL_L) * HANGUL_VN + (b - HANGUL_V)) * HANGUL_TN;
	if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SN && (a - HANGUL_S) % HANGUL_TN == 0 &&
	    b > HANGUL_T && b < HANGUL_T + HANGUL_TN)
		return a + (b - HANGUL_T);
	const tok_utriple *t = triple_find(tok_comp_table, tok_comp_table_len, a, b);
	return t ? t->c : 0;
}

/* Canonical composition in place. */
static void compose(cp_buf *b)
{
	if (!b->n)
		return;
	size_t starter = 0, out = 1;
	int have_starter = ccc(b->v[0]) == 0, last = 0;

	for (size_t i = 1; i < b->n; i++) {
		uint32_t ch = b->v[i];
		int c = ccc(ch);
		uint32_t comp = have_starter ? compose_pair(b->v[starter], ch) : 0;
		/* Joins unless blocked: nothing between, or only marks of lower class. */
		if (comp && (last < c || last == 0)) {
			b->v[starter] = comp;
			continue;
		}
		if (!c) {
			starter = out;
			have_starter = 1;
		}
		last = c;
		b->v[out++] = ch;
	}
	b->n = out;
}

void tok_nfc(const char *s, size_t n, tok_buf *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((uint8_t)s[i] >= 0xCC) /* lead byte of U+0300 or above */
			break;
	if (i == n) { /* every character below U+0300 */
		tok_buf_add(out, s, n);
		return;
	}
	cp_buf b = {0};
	for (i = 0; i < n;) {
		uint32_t cp;
		i += tok_utf8_next(s, n, i, &cp);
		decompose(&b, cp, 0);
	}
	reorder(&b);
	compose(&b);
	for (i = 0; i < b.n; i++) {
		char enc[4];
		tok_buf_add(out, enc, tok_utf8_put(enc, b.v[i]));
	}
	free(b.v);
}

/* ------------------------------------------------------------------------
 * GPT-2 byte alphabet: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes (controls, space, DEL, NBSP, soft hyphen) are given the
 * characters U+0100.. in byte order. */

static int byte_is_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
	/* The unprintable bytes are 0x00-0x20, 0x7F-0xA0 and 0xAD, in that order. */
	if (byte_is_printable(b))
		return b;
	if (b <= 0x20)
		return 0x100 + b;
	if (b <= 0xA0)
		return 0x100 + 33 + (b - 0x7F);
	return 0x100 + 67;
}

int tok_cp_to_byte(uint32_t cp)
{
	if (cp < 0x100)
		return byte_is_printable(cp) ? (int)cp : -1;
	if (cp < 0x100 + 33)
		return (int)(cp - 0x100);
	if (cp < 0x100 + 67)
		return (int)(cp - 0x100 - 33 + 0x7F);
	return cp == 0x100 + 67 ? 0xAD : -1;
}

/* ------------------------------------------------------------------------
 * Pre-tokenizer regexes. The patterns, as tokenizer.json spells them: */

static const char re_gpt2[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char re_llama3[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
	"[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_qwen2[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
	"[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_o200k[] =
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
	"[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
	"[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char re_tekken[] =
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
	"\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int tok_regex_find(const char *pattern, tok_regex *out)
{
	if (streq(pattern, re_gpt2))
		*out = TOK_RE_GPT2;
	else if (streq(pattern, re_llama3))
		*out = TOK_RE_LLAMA3;
	else if (streq(pattern, re_qwen2))
		*out = TOK_RE_QWEN2;
	else if (streq(pattern, re_o200k))
		*out = TOK_RE_O200K;
	else if (streq(pattern, re_tekken))
		*out = TOK_RE_TEKKEN;
	else
		return -1;
	return 0;
}

/* A cursor over the text being matched. */
typedef struct rx {
	const char *s;
	size_t n;
} rx;

/* Character at i (its length in *len); 0 length at the end. */
static uint32_t at(const rx *r, size_t i, size_t *len)
{
	uint32_t cp = 0;
	*len = i < r->n ? tok_utf8_next(r->s, r->n, i, &cp) : 0;
	return cp;
}

static int is_other(uint32_t cp) { return !tok_is_space(cp) && tok_ucat(cp) == TOK_OTHER; }
static int is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/* End of the run of characters of class cls (TOK_LETTER...) from i. */
static size_t run_of(const rx *r, size_t i, int cls)
{
	size_t len;
	while (i < r->n && tok_ucat(at(r, i, &len)) == cls)
		i += len;
	return i;
}

/* End of the run of characters keep accepts from i. */
static size_t run_while(const rx *r, size_t i, int (*keep)(uint32_t))
{
	size_t len;
	while (i < r->n && keep(at(r, i, &len)))
		i += len;
	return i;
}

static size_t run_other(const rx *r, size_t i) { return run_while(r, i, is_other); }

/* 's|'t|'re|'ve|'m|'ll|'d after the apostrophe at i; length or 0. With
 * fold, case-insensitively (where 'ſ' U+017F folds to 's'). */
static size_t contraction(const rx *r, size_t i, int fold)
{
	size_t l1, l2 = 0;
	uint32_t a = at(r, i + 1, &l1), b = l1 ? at(r, i + 1 + l1, &l2) : 0;

	if (!l1)
		return 0;
	if (fold) {
		a = a < 0x80 ? (a | 0x20) : a == 0x17F ? 's' : a;
		b = b < 0x80 ? (b | 0x20) : b;
	}
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return 1 + l1;
	if (l1 && l2 && ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')))
		return 1 + l1 + l2;
	return 0;
}

/* The three whitespace alternatives shared by all patterns:
 * [\s*[\r\n]+ |] \s+(?!\S) | \s+ for the run of spaces starting at i. */
static size_t match_space(const rx *r, size_t i, int crlf_alt)
{
	size_t len, end = i, last_crlf = 0, last_start = i;
	int n_chars = 0;

	while (end < r->n) {
		uint32_t c = at(r, end, &len);
		if (!tok_is_space(c))
			break;
		if (is_crlf(c))
			last_crlf = end + len;
		last_start = end;
		end += len;
		n_chars++;
	}
	if (crlf_alt && last_crlf) /* \s*[\r\n]+ backtracks to the last newline */
		return last_crlf - i;
	if (end == r->n || n_chars == 1) /* \s+(?!\S) takes all; or a lone \s+ */
		return end - i;
	return last_start - i; /* leave the last space to the next word */
}

static size_t match_gpt2(const rx *r, size_t i)
{
	size_t len, len2, k;
	uint32_t c = at(r, i, &len);

	if (c == '\'' && (k = contraction(r, i, 0)))
		return k;
	size_t j = c == ' ' ? i + len : i; /* the optional leading space */
	uint32_t d = at(r, j, &len2);
	if (len2) {
		int cls = tok_ucat(d);
		if (cls != TOK_OTHER)
			return run_of(r, j, cls) - i;
		if (is_other(d))
			return run_other(r, j) - i;
	}
	if (tok_is_space(c))
		return match_space(r, i, 0);
	return 0;
}

/* The alternatives after the words, shared by cl100k and o200k:
 * \p{N}{1,max} | ?[^\s\p{L}\p{N}]+[\r\n]* ([\r\n/]* with slash) | spaces. */
static size_t match_rest(const rx *r, size_t i, int max_digits, int slash)
{
	size_t len, len2;
	uint32_t c = at(r, i, &len), d;

	if (tok_ucat(c) == TOK_NUMBER) {
		size_t j = i;
		for (int k = 0; k < max_digits && j < r->n && tok_ucat(at(r, j, &len2)) == TOK_NUMBER; k++)
			j += len2;
		return j - i;
	}
	size_t j = c == ' ' ? i + len : i;
	if (j < r->n && is_other(at(r, j, &len2))) {
		j = run_other(r, j);
		while (j < r->n && (is_crlf(d = at(r, j, &len2)) || (slash && d == '/')))
			j += len2;
		return j - i;
	}
	if (tok_is_space(c))
		return match_space(r, i, 1);
	return 0;
}

/* Llama 3 (max_digits 3) and Qwen 2 (max_digits 1). */
static size_t match_cl100k(const rx *r, size_t i, int max_digits)
{
	size_t len, len2, k;
	uint32_t c = at(r, i, &len);
	int cls = tok_ucat(c);

	if (c == '\'' && (k = contraction(r, i, 1)))
		return k;
	/* [^\r\n\p{L}\p{N}]?\p{L}+ */
	if (cls == TOK_LETTER)
		return run_of(r, i, TOK_LETTER) - i;
	if (!is_crlf(c) && cls != TOK_NUMBER && i + len < r->n &&
	    tok_ucat(at(r, i + len, &len2)) == TOK_LETTER)
		return run_of(r, i + len, TOK_LETTER) - i;
	return match_rest(r, i, max_digits, 0);
}

/* The case classes of o200k and tekken: [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
 * ("upper") and [\p{Ll}\p{Lm}\p{Lo}\p{M}] ("lower"); Lm, Lo and marks are both. */
enum { GC_LU = 1, GC_LL, GC_LT, GC_LM, GC_LO, GC_M };

static int gc_of(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= 'A' && cp <= 'Z' ? GC_LU : cp >= 'a' && cp <= 'z' ? GC_LL : 0;
	const tok_urange *u = range_find(tok_ugc_table, tok_ugc_table_len, cp);
	return u ? (int)u->val : 0;
}

static int is_upper(uint32_t cp)
{
	int g = gc_of(cp);
	return g && g != GC_LL;
}

static int is_lower(uint32_t cp)
{
	int g = gc_of(cp);
	return g && g != GC_LU && g != GC_LT;
}

/* End of upper*lower+ (lower_needed) or upper+lower* from j, 0 for no match.
 * The greedy upper* gives back characters until a lower one follows. */
static size_t case_word(const rx *r, size_t j, int lower_needed)
{
	size_t len, e = run_while(r, j, is_upper);
	if (!lower_needed)
		return e > j ? run_while(r, e, is_lower) : 0;
	for (size_t k = e;;) {
		if (k < r->n && is_lower(at(r, k, &len)))
			return run_while(r, k, is_lower);
		if (k == j)
			return 0;
		while (k > j && ((uint8_t)r->s[--k] & 0xC0) == 0x80) /* the character before */
			;
	}
}

/* [^\r\n\p{L}\p{N}]? then a case word, the optional character given back
 * when the word does not match after it; then the optional contraction. */
static size_t prefixed_case_word(const rx *r, size_t i, int lower_needed, int contractions)
{
	size_t len, k, m = 0;
	uint32_t c = at(r, i, &len);

	if (!is_crlf(c) && tok_ucat(c) == TOK_OTHER)
		m = case_word(r, i + len, lower_needed);
	if (!m)
		m = case_word(r, i, lower_needed);
	if (m && contractions && m < r->n && r->s[m] == '\'' && (k = contraction(r, m, 1)))
		m += k;
	return m ? m - i : 0;
}

/* o200k (contractions, max_digits 3) and tekken (neither, 1). */
static size_t match_o200k(const rx *r, size_t i, int contractions, int max_digits)
{
	size_t m;

	if ((m = prefixed_case_word(r, i, 1, contractions)) || (m = prefixed_case_word(r, i, 0, contractions)))
		return m;
	return match_rest(r, i, max_digits, 1);
}

size_t tok_regex_match(tok_regex re, const char *s, size_t n, size_t i)
{
	rx r = {s, n};

	if (i >= n)
		return 0;
	switch (re) {
	case TOK_RE_GPT2:
		return match_gpt2(&r, i);
	case TOK_RE_LLAMA3:
		return match_cl100k(&r, i, 3);
	case TOK_RE_QWEN2:
		return match_cl100k(&r, i, 1);
	case TOK_RE_O200K:
		return match_o200k(&r, i, 1, 3);
	case TOK_RE_TEKKEN:
		return match_o200k(&r, i, 0, 1);
	}
	BUG("unknown regex %d", (int)re);
}
