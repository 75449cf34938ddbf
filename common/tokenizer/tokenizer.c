/* tokenizer.c: encoding and decoding with a loaded tokenizer.json, following
 * the pipeline of HuggingFace `tokenizers` step by step:
 *
 *   encode: split out added tokens found in the raw text (longest match
 *           first) -> normalize each remaining piece -> split out added
 *           tokens that match normalized text -> pre-tokenize (regex split,
 *           byte mapping, Metaspace) -> BPE each piece -> add the
 *           post-processor's BOS/EOS
 *   decode: ids -> token strings -> the decoder chain (each decoder maps a
 *           list of strings to a list of strings) -> concatenation
 *
 * Intermediate pieces live in a piece list: one byte buffer plus spans, so a
 * text of any length costs a handful of allocations per stage. See
 * tok_internal.h for the file map.
 */
#include "tokenizer/tokenizer.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Loading and lookups */

static int load_finish(tokenizer *t, const char *json, size_t len, tokenizer **out)
{
	if (tok_parse(t, json, len) < 0) {
		tokenizer_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

static tokenizer *tok_new(const char *name)
{
	tokenizer *t = xcalloc(1, sizeof *t);
	t->name = xstrdup(name);
	t->unk_id = t->bos_id = t->eos_id = -1;
	return t;
}

int tokenizer_load_mem(const char *json, size_t len, const char *name, tokenizer **out)
{
	*out = NULL;
	return load_finish(tok_new(name ? name : "tokenizer.json"), json, len, out);
}

int tokenizer_load(const char *path, tokenizer **out)
{
	char *json;
	size_t len;

	*out = NULL;
	if (read_file(path, FS_MAX_TOKENIZER, &json, &len) < 0)
		return -1;
	int rc = load_finish(tok_new(path), json, len, out);
	free(json);
	return rc;
}

int tokenizer_load_dir(const char *dir, tokenizer **out)
{
	char *path = path_join(dir, "tokenizer.json");
	int rc = tokenizer_load(path, out);

	free(path);
	if (rc == 0 && tok_read_configs(*out, dir) < 0) {
		tokenizer_free(*out);
		*out = NULL;
		return -1;
	}
	return rc;
}

void tokenizer_free(tokenizer *t)
{
	if (!t)
		return;
	tok_strmap_release(&t->vocab);
	tok_u64map_release(&t->merges);
	tok_strmap_release(&t->added_ids);
	tok_trie_release(&t->raw_trie);
	tok_trie_release(&t->norm_trie);
	tok_arena_release(&t->arena);
	free(t->tokens);
	free(t->added);
	free(t->norm);
	free(t->pre);
	free(t->dec);
	free(t->prefix);
	free(t->suffix);
	free(t->eos_ids);
	free(t->name);
	free(t);
}

int32_t tokenizer_token_to_id(const tokenizer *t, const char *token)
{
	size_t n = strlen(token);
	int32_t id = tok_strmap_get(&t->added_ids, token, n);
	return id >= 0 ? id : tok_strmap_get(&t->vocab, token, n);
}

const char *tokenizer_id_to_token(const tokenizer *t, int32_t id)
{
	if (id < 0 || (size_t)id >= t->n_tokens)
		return NULL;
	return t->tokens[id].s;
}

size_t tokenizer_vocab_size(const tokenizer *t) { return t->n_tokens; }

int tokenizer_is_special(const tokenizer *t, int32_t id)
{
	return id >= 0 && (size_t)id < t->n_tokens && t->tokens[id].special;
}

int32_t tokenizer_bos_id(const tokenizer *t)
{
	if (t->bos_id >= 0)
		return t->bos_id;
	return t->n_prefix ? t->prefix[0] : -1;
}

int32_t tokenizer_eos_id(const tokenizer *t)
{
	if (t->eos_id >= 0)
		return t->eos_id;
	if (t->n_eos)
		return t->eos_ids[0];
	return t->n_suffix ? t->suffix[t->n_suffix - 1] : -1;
}

/* ------------------------------------------------------------------------
 * Piece lists */

typedef struct span {
	size_t off, len;
	int origin; /* starts at offset 0 of the input (Metaspace "first") */
} span;

typedef struct plist {
	tok_buf text;
	span *v;
	size_t n, cap;
} plist;

static void plist_add(plist *l, const char *s, size_t n, int origin)
{
	GROW(l->v, l->cap, l->n + 1);
	l->v[l->n++] = (span){l->text.len, n, origin};
	tok_buf_add(&l->text, s, n);
}

/* Append to the last piece (which must exist). */
static void plist_extend(plist *l, const char *s, size_t n)
{
	ASSERT(l->n);
	tok_buf_add(&l->text, s, n);
	l->v[l->n - 1].len += n;
}

static const char *piece(const plist *l, size_t i)
{
	return l->text.p ? l->text.p + l->v[i].off : "";
}

static void plist_release(plist *l)
{
	tok_buf_release(&l->text);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static void plist_swap(plist *a, plist *b)
{
	plist t = *a;
	*a = *b;
	*b = t;
}

/* ------------------------------------------------------------------------
 * Pre-tokenizers */

typedef struct seg {
	size_t start, end;
	int match;
} seg;

typedef struct segs {
	seg *v;
	size_t n, cap;
} segs;

static void seg_add(segs *g, size_t start, size_t end, int match)
{
	if (start == end)
		return;
	GROW(g->v, g->cap, g->n + 1);
	g->v[g->n++] = (seg){start, end, match};
}

/* Matches of a Split pattern in s, with the gaps between them; invert swaps
 * which of them count as matches, as HF's Invert pattern does (so Removed
 * with invert keeps just the matches: Xenova's GPT-4o tokenizer.json). */
static void find_segs(const tok_pre *p, const char *s, size_t n, segs *g)
{
	size_t i = 0, gap = 0;

	while (i < n) {
		size_t m = 0;
		if (p->type == TOK_PRE_DIGITS) { /* one \p{N} character (Rust's char::is_numeric) */
			uint32_t c;
			size_t len = tok_utf8_next(s, n, i, &c);
			m = tok_ucat(c) == TOK_NUMBER ? len : 0;
		} else if (p->is_regex)
			m = tok_regex_match(p->re, s, n, i);
		else if (i + p->slen <= n && memcmp(s + i, p->str, p->slen) == 0)
			m = p->slen;
		if (m) {
			seg_add(g, gap, i, p->invert);
			seg_add(g, i, i + m, !p->invert);
			i += m;
			gap = i;
		} else {
			uint32_t cp;
			i += tok_utf8_next(s, n, i, &cp);
		}
	}
	seg_add(g, gap, n, p->invert);
}

/* Join segments per the split behaviour, as HuggingFace folds them. */
static void join_segs(int behavior, segs *g)
{
	size_t out = 0;
	int prev_match = 0;

	if (behavior == TOK_MERGED_NEXT) /* the same fold, right to left */
		for (size_t i = 0; i < g->n / 2; i++) {
			seg t = g->v[i];
			g->v[i] = g->v[g->n - 1 - i];
			g->v[g->n - 1 - i] = t;
		}
	for (size_t i = 0; i < g->n; i++) {
		seg s = g->v[i];
		int join = 0;
		if (behavior == TOK_REMOVED && s.match)
			continue;
		if (behavior == TOK_MERGED_PREV || behavior == TOK_MERGED_NEXT)
			join = s.match && !prev_match && out;
		else if (behavior == TOK_CONTIGUOUS)
			join = s.match == prev_match && out;
		prev_match = s.match;
		if (!join)
			g->v[out++] = s;
		else if (behavior == TOK_MERGED_NEXT)
			g->v[out - 1].start = s.start;
		else
			g->v[out - 1].end = s.end;
	}
	g->n = out;
	if (behavior == TOK_MERGED_NEXT)
		for (size_t i = 0; i < g->n / 2; i++) {
			seg t = g->v[i];
			g->v[i] = g->v[g->n - 1 - i];
			g->v[g->n - 1 - i] = t;
		}
}

static void split_piece(const tok_pre *p, int behavior, const char *s, size_t n, int origin,
			plist *out)
{
	segs g = {0};

	find_segs(p, s, n, &g);
	join_segs(behavior, &g);
	for (size_t i = 0; i < g.n; i++)
		plist_add(out, s + g.v[i].start, g.v[i].end - g.v[i].start, origin && g.v[i].start == 0);
	free(g.v);
}

static void byte_level(const tok_pre *p, const char *s, size_t n, int origin, plist *out)
{
	tok_buf pre = {0};
	plist parts = {0};

	if (p->add_prefix_space && (n == 0 || s[0] != ' '))
		tok_buf_addc(&pre, ' ');
	tok_buf_add(&pre, s, n);
	if (p->use_regex) {
		tok_pre gpt2 = {.type = TOK_PRE_SPLIT, .is_regex = 1, .re = TOK_RE_GPT2};
		split_piece(&gpt2, TOK_ISOLATED, pre.p, pre.len, origin, &parts);
	} else {
		plist_add(&parts, pre.p, pre.len, origin);
	}
	for (size_t i = 0; i < parts.n; i++) {
		const char *q = piece(&parts, i);
		for (size_t k = 0; k < parts.v[i].len; k++) {
			char enc[4];
			size_t len = tok_utf8_put(enc, tok_byte_to_cp((uint8_t)q[k]));
			if (k == 0)
				plist_add(out, enc, len, parts.v[i].origin);
			else
				plist_extend(out, enc, len);
		}
	}
	plist_release(&parts);
	tok_buf_release(&pre);
}

static void metaspace(const tok_pre *p, const char *s, size_t n, int origin, plist *out)
{
	tok_buf b = {0}, pre = {0};

	tok_replace_all(s, n, " ", 1, p->str, p->slen, &b);
	int starts = b.len >= p->slen && memcmp(b.p, p->str, p->slen) == 0;
	if (!starts && (p->prepend == TOK_PREPEND_ALWAYS || (p->prepend == TOK_PREPEND_FIRST && origin))) {
		tok_buf_add(&pre, p->str, p->slen);
		tok_buf_add(&pre, b.p, b.len);
		tok_buf t = b;
		b = pre;
		pre = t;
	}
	if (p->split) {
		tok_pre rep = {.type = TOK_PRE_SPLIT, .str = p->str, .slen = p->slen};
		split_piece(&rep, TOK_MERGED_NEXT, b.p, b.len, origin, out);
	} else {
		plist_add(out, b.p, b.len, origin);
	}
	tok_buf_release(&b);
	tok_buf_release(&pre);
}

static void pre_tokenize(const tokenizer *t, plist *l)
{
	plist next = {0};

	for (size_t k = 0; k < t->n_pre; k++) {
		const tok_pre *p = &t->pre[k];
		for (size_t i = 0; i < l->n; i++) {
			const char *s = piece(l, i);
			size_t n = l->v[i].len;
			if (!n)
				continue;
			if (p->type == TOK_PRE_SPLIT || p->type == TOK_PRE_DIGITS)
				split_piece(p, p->behavior, s, n, l->v[i].origin, &next);
			else if (p->type == TOK_PRE_BYTELEVEL)
				byte_level(p, s, n, l->v[i].origin, &next);
			else
				metaspace(p, s, n, l->v[i].origin, &next);
		}
		plist_swap(l, &next);
		next.text.len = next.n = 0;
	}
	plist_release(&next);
}

/* ------------------------------------------------------------------------
 * Encoding */

/* Is the character ending before i, or starting at i, a word character? */
static int word_before(const char *s, size_t n, size_t i)
{
	uint32_t cp;

	if (i == 0)
		return 0;
	size_t b = i - 1;
	while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80)
		b--;
	tok_utf8_next(s, n, b, &cp);
	return tok_ucat(cp) != TOK_OTHER || cp == '_';
}

static int word_after(const char *s, size_t n, size_t i)
{
	uint32_t cp;

	if (i >= n)
		return 0;
	tok_utf8_next(s, n, i, &cp);
	return tok_ucat(cp) != TOK_OTHER || cp == '_';
}

/* Longest added token of trie tr matching s at i (index into t->added or
 * -1), honouring single_word; with split_special, special tokens are text. */
static int32_t added_at(const tokenizer *t, const tok_trie *tr, const char *s, size_t n, size_t i,
			int split_special)
{
	int32_t node = 0, best = -1;
	size_t best_end = 0;

	if (!tr->n_nodes)
		return -1;
	for (size_t k = i; k < n; k++) {
		const tok_u64ent *e = tok_u64map_get(&tr->edges, (uint64_t)node << 8 | (uint8_t)s[k]);
		if (!e)
			break;
		node = e->a;
		int32_t a = tr->term[node];
		if (a >= 0 && !(split_special && t->added[a].special)) {
			best = a;
			best_end = k + 1;
		}
	}
	if (best >= 0 && t->added[best].single_word &&
	    (word_before(s, n, i) || word_after(s, n, best_end)))
		return -1;
	return best;
}

/* Where an added token's match really starts and ends: lstrip and rstrip
 * take the whitespace around it along (not before from). */
static void strip_bounds(const tok_added *a, const char *s, size_t n, size_t from, size_t *start,
			 size_t *end)
{
	uint32_t cp;

	if (a->lstrip)
		while (*start > from) {
			size_t b = *start - 1;
			while (b > from && ((uint8_t)s[b] & 0xC0) == 0x80)
				b--;
			tok_utf8_next(s, n, b, &cp);
			if (!tok_is_space(cp))
				break;
			*start = b;
		}
	if (a->rstrip)
		while (*end < n) {
			size_t len = tok_utf8_next(s, n, *end, &cp);
			if (!tok_is_space(cp))
				break;
			*end += len;
		}
}

typedef int (*piece_fn)(const tokenizer *t, const char *s, size_t n, int origin, int flags,
			tok_ids *out);

/* Split s at the added tokens of trie tr: ids for the tokens, fn for the
 * text between them. */
static int split_added(const tokenizer *t, const tok_trie *tr, const char *s, size_t n, int origin,
		       int flags, piece_fn fn, tok_ids *out)
{
	size_t i = 0, from = 0;

	while (i < n) {
		int32_t a = added_at(t, tr, s, n, i, flags & TOK_SPLIT_SPECIAL);
		if (a < 0) {
			uint32_t cp;
			i += tok_utf8_next(s, n, i, &cp);
			continue;
		}
		const tok_added *ad = &t->added[a];
		size_t start = i, end = i + (tr == &t->raw_trie ? ad->len : ad->norm_len);
		strip_bounds(ad, s, n, from, &start, &end);
		if (start > from && fn(t, s + from, start - from, origin && from == 0, flags, out) < 0)
			return -1;
		tok_ids_add(out, ad->id);
		i = from = end;
	}
	if (n > from)
		return fn(t, s + from, n - from, origin && from == 0, flags, out);
	return 0;
}

/* Pre-tokenize and run BPE on normalized text without added tokens. */
static int model_piece(const tokenizer *t, const char *s, size_t n, int origin, int flags,
		       tok_ids *out)
{
	plist l = {0};
	int rc = 0;

	plist_add(&l, s, n, origin);
	pre_tokenize(t, &l);
	for (size_t i = 0; i < l.n && rc == 0; i++)
		rc = tok_bpe(t, piece(&l, i), l.v[i].len, out);
	plist_release(&l);
	return rc;
}

/* Text between raw added tokens: normalize, then look for normalized ones. */
static int normal_piece(const tokenizer *t, const char *s, size_t n, int origin, int flags,
			tok_ids *out)
{
	tok_buf norm = {0};
	int rc;

	rc = tok_normalize(t, s, n, &norm);
	if (rc == 0)
		rc = split_added(t, &t->norm_trie, norm.p, norm.len, origin, flags, model_piece, out);
	tok_buf_release(&norm);
	return rc;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int flags, int32_t **ids,
		     size_t *n)
{
	tok_ids out = {0};
	size_t bad;

	*ids = NULL;
	*n = 0;
	if (!text && len)
		return errf("%s: no text to encode", t->name);
	if (tok_utf8_check(text, len, &bad) < 0)
		return errf("%s: text to encode is not valid UTF-8 (byte %zu)", t->name, bad);
	if (!(flags & TOK_NO_ADD_SPECIAL))
		for (size_t i = 0; i < t->n_prefix; i++)
			tok_ids_add(&out, t->prefix[i]);
	if (split_added(t, &t->raw_trie, text, len, 1, flags, normal_piece, &out) < 0) {
		free(out.v);
		return -1;
	}
	if (!(flags & TOK_NO_ADD_SPECIAL))
		for (size_t i = 0; i < t->n_suffix; i++)
			tok_ids_add(&out, t->suffix[i]);
	if (!out.v)
		out.v = xmalloc(sizeof *out.v); /* a valid pointer even for no ids */
	*ids = out.v;
	*n = out.n;
	return 0;
}

/* ------------------------------------------------------------------------
 * Decoders: each maps the piece list in l to a new one. */

static void dec_byte_level(const plist *in, plist *out, int raw)
{
	tok_buf bytes = {0}, text = {0};

	for (size_t i = 0; i < in->n; i++) {
		const char *s = piece(in, i);
		size_t n = in->v[i].len, mark = bytes.len;
		for (size_t k = 0; k < n;) {
			uint32_t cp;
			k += tok_utf8_next(s, n, k, &cp);
			int b = tok_cp_to_byte(cp);
			if (b < 0) { /* not byte-level text: keep the token as it is */
				bytes.len = mark;
				tok_buf_add(&bytes, s, n);
				break;
			}
			tok_buf_addc(&bytes, (char)b);
		}
	}
	if (raw)
		plist_add(out, bytes.p, bytes.len, 0);
	else {
		tok_utf8_lossy(&text, bytes.p, bytes.len);
		plist_add(out, text.p, text.len, 0);
	}
	tok_buf_release(&bytes);
	tok_buf_release(&text);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Byte tokens gathered by dec_byte_fallback, as text. */
static void flush_bytes(tok_buf *bytes, plist *out, int raw)
{
	if (!bytes->len)
		return;
	if (raw || tok_utf8_check(bytes->p, bytes->len, NULL) == 0)
		plist_add(out, bytes->p, bytes->len, 0);
	else /* like HuggingFace: one U+FFFD per byte of a bad sequence */
		for (size_t i = 0; i < bytes->len; i++)
			plist_add(out, "\xEF\xBF\xBD", 3, 0);
	bytes->len = 0;
}

static void dec_byte_fallback(const plist *in, plist *out, int raw)
{
	tok_buf bytes = {0};

	for (size_t i = 0; i < in->n; i++) {
		const char *s = piece(in, i);
		int hi = -1, lo = -1;
		if (in->v[i].len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
			hi = hexval(s[3]);
			lo = hexval(s[4]);
		}
		if (hi >= 0 && lo >= 0) {
			tok_buf_addc(&bytes, (char)(hi << 4 | lo));
			continue;
		}
		flush_bytes(&bytes, out, raw);
		plist_add(out, s, in->v[i].len, 0);
	}
	flush_bytes(&bytes, out, raw);
	tok_buf_release(&bytes);
}

static void dec_strip(const tok_dec *d, const plist *in, plist *out)
{
	char enc[4];
	size_t clen = tok_utf8_put(enc, d->ch);

	for (size_t i = 0; i < in->n; i++) {
		const char *s = piece(in, i);
		size_t a = 0, b = in->v[i].len;
		for (int k = 0; k < d->start && b - a >= clen && memcmp(s + a, enc, clen) == 0; k++)
			a += clen;
		for (int k = 0; k < d->stop && b - a >= clen && memcmp(s + b - clen, enc, clen) == 0; k++)
			b -= clen;
		plist_add(out, s + a, b - a, 0);
	}
}

static void dec_metaspace(const tok_dec *d, const plist *in, plist *out)
{
	tok_buf b = {0};

	for (size_t i = 0; i < in->n; i++) {
		/* HF drops every replacement of the first token when prepending */
		int drop = i == 0 && d->prepend != TOK_PREPEND_NEVER;
		b.len = 0;
		tok_replace_all(piece(in, i), in->v[i].len, d->a, d->alen, drop ? "" : " ", drop ? 0 : 1, &b);
		plist_add(out, b.p ? b.p : "", b.len, 0);
	}
	tok_buf_release(&b);
}

static void decode_step(const tok_dec *d, const plist *in, plist *out, int raw)
{
	tok_buf b = {0};

	switch (d->type) {
	case TOK_DEC_BYTELEVEL:
		dec_byte_level(in, out, raw);
		break;
	case TOK_DEC_REPLACE:
		for (size_t i = 0; i < in->n; i++) {
			b.len = 0;
			tok_replace_all(piece(in, i), in->v[i].len, d->a, d->alen, d->b, d->blen, &b);
			plist_add(out, b.p ? b.p : "", b.len, 0);
		}
		break;
	case TOK_DEC_BYTEFALLBACK:
		dec_byte_fallback(in, out, raw);
		break;
	case TOK_DEC_FUSE:
		plist_add(out, in->text.p, in->text.len, 0);
		break;
	case TOK_DEC_STRIP:
		dec_strip(d, in, out);
		break;
	case TOK_DEC_METASPACE:
		dec_metaspace(d, in, out);
		break;
	default:
		BUG("decoder type %d", d->type);
	}
	tok_buf_release(&b);
}

int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int flags, char **text,
		     size_t *len)
{
	plist l = {0}, next = {0};
	tok_buf out = {0};

	*text = NULL;
	for (size_t i = 0; i < n; i++) {
		int32_t id = ids[i];
		if (id < 0 || (size_t)id >= t->n_tokens || !t->tokens[id].s) {
			plist_release(&l);
			return errf("%s: cannot decode id %d: no such token", t->name, (int)id);
		}
		if (!(flags & TOK_SKIP_SPECIAL) || !t->tokens[id].special)
			plist_add(&l, t->tokens[id].s, t->tokens[id].len, 0);
	}
	if (!t->has_decoder) { /* HF joins plain tokens with spaces */
		for (size_t i = 0; i < l.n; i++) {
			if (i)
				tok_buf_addc(&out, ' ');
			tok_buf_add(&out, piece(&l, i), l.v[i].len);
		}
	} else {
		size_t cap = tok_growth_cap(l.text.len);
		for (size_t k = 0; k < t->n_dec; k++) {
			decode_step(&t->dec[k], &l, &next, flags & TOK_DECODE_RAW);
			plist_swap(&l, &next);
			next.text.len = next.n = 0;
			if (l.text.len > cap) {
				plist_release(&l);
				plist_release(&next);
				return errf("%s: the decoders make %zu ids %zu bytes long", t->name, n,
					    l.text.len);
			}
		}
		tok_buf_add(&out, l.text.p, l.text.len);
	}
	plist_release(&l);
	plist_release(&next);
	if (!out.p)
		out.p = xcalloc(1, 1);
	*text = out.p;
	if (len)
		*len = out.len;
	return 0;
}
