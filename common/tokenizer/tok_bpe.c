/* tok_bpe.c: the data structures behind a BPE vocabulary and the merge loop.
 *
 * Sizes to plan for: Gemma 3 has 262,144 tokens and 514,906 merges, Llama 3
 * 128,256 tokens and 280,147 merges. Token strings go into an arena (one
 * malloc per megabyte, not per token); string -> id and (left, right) ->
 * (rank, merged id) are open-addressing hash tables kept at most half full.
 *
 * The merge loop is the one HuggingFace `tokenizers` runs: start from one
 * symbol per character (or per byte with byte fallback), keep every adjacent
 * pair that has a merge in a min-heap ordered by (rank, position), pop the
 * best, skip it if either side changed since it was pushed, merge, and push
 * the two new pairs around the result. O(n log n) in the piece length, which
 * matters for SentencePiece-style tokenizers whose pieces are whole texts.
 */
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Arena */

enum { ARENA_BLOCK = 1 << 20 };

char *tok_arena_dup(tok_arena *a, const char *s, size_t n)
{
	if (!a->n_blocks || a->used + n + 1 > a->size) {
		size_t size = n + 1 > ARENA_BLOCK ? n + 1 : ARENA_BLOCK;
		GROW(a->blocks, a->cap_blocks, a->n_blocks + 1);
		a->blocks[a->n_blocks++] = xmalloc(size);
		a->size = size;
		a->used = 0;
	}
	char *p = a->blocks[a->n_blocks - 1] + a->used;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	a->used += n + 1;
	return p;
}

void tok_arena_release(tok_arena *a)
{
	for (size_t i = 0; i < a->n_blocks; i++)
		free(a->blocks[i]);
	free(a->blocks);
	memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------------
 * Hashing */

static uint64_t mix64(uint64_t x)
{
	/* splitmix64's finalizer: spreads keys over the low bits we index by */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint32_t str_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ULL;
	}
	return (uint32_t)mix64(h);
}

/* ------------------------------------------------------------------------
 * String -> id */

static uint32_t *strmap_slot(const tok_strmap *m, const char *s, size_t n, uint32_t h)
{
	size_t mask = m->n_slots - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		uint32_t e = m->slots[i];
		if (!e)
			return &m->slots[i];
		const tok_strent *x = &m->ents[e - 1];
		if (x->hash == h && x->len == n && memcmp(x->s, s, n) == 0)
			return &m->slots[i];
	}
}

static void strmap_rehash(tok_strmap *m, size_t n_slots)
{
	free(m->slots);
	m->slots = xcalloc(n_slots, sizeof *m->slots);
	m->n_slots = n_slots;
	for (size_t e = 0; e < m->n; e++)
		*strmap_slot(m, m->ents[e].s, m->ents[e].len, m->ents[e].hash) = (uint32_t)(e + 1);
}

int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t n)
{
	if (!m->n_slots)
		return -1;
	uint32_t e = *strmap_slot(m, s, n, str_hash(s, n));
	return e ? m->ents[e - 1].val : -1;
}

void tok_strmap_put(tok_strmap *m, tok_arena *a, const char *s, size_t n, int32_t val)
{
	ASSERT(n < UINT32_MAX && m->n < UINT32_MAX - 1);
	if ((m->n + 1) * 2 > m->n_slots)
		strmap_rehash(m, m->n_slots ? m->n_slots * 2 : 64);
	uint32_t h = str_hash(s, n), *slot = strmap_slot(m, s, n, h);
	if (*slot) {
		m->ents[*slot - 1].val = val;
		return;
	}
	GROW(m->ents, m->cap_ents, m->n + 1);
	m->ents[m->n] = (tok_strent){tok_arena_dup(a, s, n), (uint32_t)n, h, val};
	*slot = (uint32_t)++m->n;
}

void tok_strmap_release(tok_strmap *m)
{
	free(m->ents);
	free(m->slots);
	memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------
 * u64 -> (a, b) */

static tok_u64ent *u64map_slot(const tok_u64map *m, uint64_t key)
{
	size_t mask = m->n_slots - 1;
	for (size_t i = mix64(key) & mask;; i = (i + 1) & mask)
		if (m->slots[i].key == key || m->slots[i].key == UINT64_MAX)
			return &m->slots[i];
}

static void u64map_rehash(tok_u64map *m, size_t n_slots)
{
	tok_u64ent *old = m->slots;
	size_t n_old = m->n_slots;

	m->slots = xmalloc(xmul(n_slots, sizeof *m->slots));
	for (size_t i = 0; i < n_slots; i++)
		m->slots[i].key = UINT64_MAX;
	m->n_slots = n_slots;
	for (size_t i = 0; i < n_old; i++)
		if (old[i].key != UINT64_MAX)
			*u64map_slot(m, old[i].key) = old[i];
	free(old);
}

const tok_u64ent *tok_u64map_get(const tok_u64map *m, uint64_t key)
{
	if (!m->n_slots)
		return NULL;
	const tok_u64ent *e = u64map_slot(m, key);
	return e->key == key ? e : NULL;
}

void tok_u64map_put(tok_u64map *m, uint64_t key, int32_t a, int32_t b)
{
	ASSERT(key != UINT64_MAX);
	if ((m->n + 1) * 2 > m->n_slots)
		u64map_rehash(m, m->n_slots ? m->n_slots * 2 : 64);
	tok_u64ent *e = u64map_slot(m, key);
	if (e->key != key)
		m->n++;
	*e = (tok_u64ent){key, a, b};
}

void tok_u64map_release(tok_u64map *m)
{
	free(m->slots);
	memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------
 * Added-token trie */

static int32_t trie_node(tok_trie *t)
{
	GROW(t->term, t->cap_nodes, t->n_nodes + 1);
	t->term[t->n_nodes] = -1;
	return (int32_t)t->n_nodes++;
}

void tok_trie_insert(tok_trie *t, const char *s, size_t n, int32_t value)
{
	int32_t node = t->n_nodes ? 0 : trie_node(t);

	for (size_t i = 0; i < n; i++) {
		uint64_t key = (uint64_t)node << 8 | (uint8_t)s[i];
		const tok_u64ent *e = tok_u64map_get(&t->edges, key);
		if (e) {
			node = e->a;
		} else {
			int32_t child = trie_node(t);
			tok_u64map_put(&t->edges, key, child, 0);
			node = child;
		}
	}
	t->term[node] = value;
}

void tok_trie_release(tok_trie *t)
{
	tok_u64map_release(&t->edges);
	free(t->term);
	memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------------
 * BPE */

typedef struct sym {
	int32_t id;
	int32_t prev, next; /* -1 at the ends */
	uint32_t len;       /* bytes covered; 0 once merged into its left neighbour */
} sym;

typedef struct cand {
	int32_t rank, pos, id; /* merge of symbol pos with its right neighbour */
} cand;

typedef struct word {
	sym *s;
	size_t n, cap;
	cand *heap;
	size_t nh, caph;
} word;

static void word_add(word *w, int32_t id, size_t len)
{
	GROW(w->s, w->cap, w->n + 1);
	w->s[w->n] = (sym){id, (int32_t)w->n - 1, (int32_t)w->n + 1, (uint32_t)len};
	w->n++;
}

static int cand_less(const cand *a, const cand *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(word *w, cand c)
{
	GROW(w->heap, w->caph, w->nh + 1);
	size_t i = w->nh++;
	while (i > 0 && cand_less(&c, &w->heap[(i - 1) / 2])) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = c;
}

static cand heap_pop(word *w)
{
	cand top = w->heap[0], last = w->heap[--w->nh];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->nh)
			break;
		if (c + 1 < w->nh && cand_less(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!cand_less(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->nh)
		w->heap[i] = last;
	return top;
}

/* Push the merge of symbol pos with its right neighbour, if there is one. */
static void push_pair(const tokenizer *t, word *w, int32_t pos)
{
	if (pos < 0 || w->s[pos].next < 0)
		return;
	uint64_t key = (uint64_t)(uint32_t)w->s[pos].id << 32 | (uint32_t)w->s[w->s[pos].next].id;
	const tok_u64ent *m = tok_u64map_get(&t->merges, key);
	if (m)
		heap_push(w, (cand){m->a, pos, m->b});
}

/* One symbol per character: its token, else its <0xNN> bytes, else unk
 * (runs of unknowns fused into one with fuse_unk); a character with none of
 * these is dropped, as HuggingFace does when there is no unk token. */
static void split_chars(const tokenizer *t, const char *s, size_t n, word *w)
{
	size_t unk_len = 0;

	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = tok_utf8_next(s, n, i, &cp), k;
		int32_t id = tok_strmap_get(&t->vocab, s + i, len);
		for (k = 0; id < 0 && t->byte_fallback && k < len; k++)
			if (t->byte_id[(uint8_t)s[i + k]] < 0)
				break;
		if (id >= 0 || (t->byte_fallback && k == len)) {
			if (unk_len)
				word_add(w, t->unk_id, unk_len);
			unk_len = 0;
			if (id >= 0)
				word_add(w, id, len);
			else
				for (k = 0; k < len; k++)
					word_add(w, t->byte_id[(uint8_t)s[i + k]], 1);
		} else if (t->unk_id >= 0) {
			if (unk_len && !t->fuse_unk) {
				word_add(w, t->unk_id, unk_len);
				unk_len = 0;
			}
			unk_len += len;
		}
		i += len;
	}
	if (unk_len)
		word_add(w, t->unk_id, unk_len);
	if (w->n)
		w->s[w->n - 1].next = -1;
}

static void merge_all(const tokenizer *t, word *w)
{
	for (size_t i = 0; i + 1 < w->n; i++)
		push_pair(t, w, (int32_t)i);
	while (w->nh) {
		cand c = heap_pop(w);
		sym *left = &w->s[c.pos];
		if (!left->len || left->next < 0)
			continue;
		sym *right = &w->s[left->next];
		uint64_t key = (uint64_t)(uint32_t)left->id << 32 | (uint32_t)right->id;
		const tok_u64ent *m = tok_u64map_get(&t->merges, key);
		if (!m || m->b != c.id)
			continue; /* stale: a neighbour changed since the push */
		left->id = c.id;
		left->len += right->len;
		left->next = right->next;
		right->len = 0;
		if (left->next >= 0)
			w->s[left->next].prev = c.pos;
		push_pair(t, w, left->prev);
		push_pair(t, w, c.pos);
	}
}

int tok_bpe(const tokenizer *t, const char *s, size_t n, tok_ids *out)
{
	if (!n)
		return 0;
	if (t->ignore_merges) {
		/* Llama 3: a piece that is a token is taken whole. */
		int32_t id = tok_strmap_get(&t->vocab, s, n);
		if (id >= 0) {
			tok_ids_add(out, id);
			return 0;
		}
	}
	if (n > INT32_MAX / 2)
		return errf("%s: text piece of %zu bytes is too long to encode", t->name, n);
	word w = {0};
	split_chars(t, s, n, &w);
	merge_all(t, &w);
	for (int32_t i = w.n ? 0 : -1; i >= 0; i = w.s[i].next)
		tok_ids_add(out, w.s[i].id);
	free(w.s);
	free(w.heap);
	return 0;
}
