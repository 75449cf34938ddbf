/* tok_internal.h: the insides of the tokenizer, shared by tokenizer.c and
 * the tok_*.c files; nothing outside them includes this.
 *
 * Map of the files:
 *   tok_load.c    tokenizer.json -> struct tokenizer (validation, messages)
 *   tok_bpe.c     hash maps, the added-token trie and the BPE merge loop
 *   tok_text.c    UTF-8, Unicode classes, NFC, the pre-tokenizer regexes
 *   tok_unicode.c generated Unicode tables
 *   tok_norm.c    the normalizer chain and the replace helper decoders share
 *   tok_config.c  tokenizer_config.json, generation_config.json, chat family
 *   tokenizer.c   (above these) public API: encode/decode pipelines, lookups
 *   tok_chat.c    (above tokenizer.c) chat prompts, stop tokens
 * Includes go one way: tokenizer.c uses tok_load, tok_norm, tok_config;
 * tok_chat.c uses tokenizer.c; nothing below calls up.
 */
#ifndef ANEMAKE_TOK_INTERNAL_H
#define ANEMAKE_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * Unicode tables (tok_unicode.c, generated) */

typedef struct tok_urange {
	uint32_t lo, hi, val;
} tok_urange;

typedef struct tok_utriple {
	uint32_t a, b, c;
} tok_utriple;

extern const char tok_unicode_version[];
extern const tok_urange tok_ucat_table[];
extern const size_t tok_ucat_table_len;
extern const tok_urange tok_ugc_table[]; /* 1 Lu, 2 Ll, 3 Lt, 4 Lm, 5 Lo, 6 M */
extern const size_t tok_ugc_table_len;
extern const tok_urange tok_ccc_table[];
extern const size_t tok_ccc_table_len;
extern const tok_utriple tok_decomp_table[];
extern const size_t tok_decomp_table_len;
extern const tok_utriple tok_comp_table[];
extern const size_t tok_comp_table_len;

/* ------------------------------------------------------------------------
 * Text helpers (tok_text.c) */

/* A growable byte string. */
typedef struct tok_buf {
	char *p;
	size_t len, cap;
} tok_buf;

void tok_buf_add(tok_buf *b, const void *p, size_t n);
void tok_buf_addc(tok_buf *b, char c);
void tok_buf_release(tok_buf *b);

/* A growable id array. */
typedef struct tok_ids {
	int32_t *v;
	size_t n, cap;
} tok_ids;

void tok_ids_add(tok_ids *a, int32_t id);

enum { TOK_OTHER = 0, TOK_LETTER = 1, TOK_NUMBER = 2 };
int tok_ucat(uint32_t cp);      /* TOK_LETTER (\p{L}), TOK_NUMBER (\p{N}) or TOK_OTHER */
int tok_is_space(uint32_t cp);  /* Unicode White_Space: the regex \s */

/* Decode the character at s[i] of valid UTF-8 (n bytes); returns its length. */
size_t tok_utf8_next(const char *s, size_t n, size_t i, uint32_t *cp);
/* Encode cp; returns the number of bytes written to out. */
size_t tok_utf8_put(char out[4], uint32_t cp);
/* 0 if s is valid UTF-8, else -1 with the offset of the bad byte in *bad. */
int tok_utf8_check(const char *s, size_t n, size_t *bad);
/* Append s with invalid sequences replaced by U+FFFD (Rust's from_utf8_lossy). */
void tok_utf8_lossy(tok_buf *out, const char *s, size_t n);

/* s quoted for a one-line message (escaped, cut; a per-thread buffer). */
const char *tok_quote(const char *s, size_t n);

/* Append the NFC form of valid UTF-8 s. */
void tok_nfc(const char *s, size_t n, tok_buf *out);

/* The pre-tokenizer regexes, matched by hand. */
typedef enum tok_regex {
	TOK_RE_GPT2,   /* ByteLevel's own: 's|'t|...| ?\p{L}+| ?\p{N}+|... */
	TOK_RE_LLAMA3, /* GPT-4 style, \p{N}{1,3} */
	TOK_RE_QWEN2,  /* the same with single digits */
	TOK_RE_O200K,  /* GPT-4o's (Phi-4-mini): words split by case, \p{N}{1,3} */
	TOK_RE_TEKKEN, /* Mistral-Nemo's: the same without contractions, single digits */
} tok_regex;

/* Which known regex a Split pattern is; -1 if none. */
int tok_regex_find(const char *pattern, tok_regex *out);
/* Length of the match starting at s[i], 0 if none (no pattern matches empty). */
size_t tok_regex_match(tok_regex re, const char *s, size_t n, size_t i);

/* The GPT-2 byte <-> character alphabet of byte-level BPE. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 for characters outside the alphabet */

/* ------------------------------------------------------------------------
 * Storage and hashing (tok_bpe.c) */

/* Bump allocator for the many small strings of a vocabulary. */
typedef struct tok_arena {
	char **blocks;
	size_t n_blocks, cap_blocks, used, size;
} tok_arena;

/* Copy n bytes plus a NUL into the arena. */
char *tok_arena_dup(tok_arena *a, const char *s, size_t n);
void tok_arena_release(tok_arena *a);

/* String -> id, open addressing; keys live in an arena. */
typedef struct tok_strent {
	const char *s;
	uint32_t len, hash;
	int32_t val;
} tok_strent;

typedef struct tok_strmap {
	tok_strent *ents;
	size_t n, cap_ents;
	uint32_t *slots; /* entry index + 1; 0 = empty */
	size_t n_slots;  /* power of two */
} tok_strmap;

int32_t tok_strmap_get(const tok_strmap *m, const char *s, size_t n);
/* Insert or overwrite. */
void tok_strmap_put(tok_strmap *m, tok_arena *a, const char *s, size_t n, int32_t val);
void tok_strmap_release(tok_strmap *m);

/* 64-bit key -> two int32 values, open addressing. */
typedef struct tok_u64ent {
	uint64_t key; /* UINT64_MAX = empty */
	int32_t a, b;
} tok_u64ent;

typedef struct tok_u64map {
	tok_u64ent *slots;
	size_t n, n_slots;
} tok_u64map;

const tok_u64ent *tok_u64map_get(const tok_u64map *m, uint64_t key);
void tok_u64map_put(tok_u64map *m, uint64_t key, int32_t a, int32_t b);
void tok_u64map_release(tok_u64map *m);

/* Byte trie of added-token contents, for longest-match search. */
typedef struct tok_trie {
	tok_u64map edges; /* (node << 8 | byte) -> child node in a */
	int32_t *term;    /* node -> index into tokenizer.added, -1 = none */
	size_t n_nodes, cap_nodes;
} tok_trie;

void tok_trie_insert(tok_trie *t, const char *s, size_t n, int32_t value);
void tok_trie_release(tok_trie *t);

/* ------------------------------------------------------------------------
 * The tokenizer */

typedef struct tok_token {
	const char *s; /* NULL: no token has this id */
	uint32_t len;
	uint8_t added, special;
} tok_token;

typedef struct tok_added {
	const char *content;
	size_t len;
	const char *norm; /* normalized content, for normalized tokens */
	size_t norm_len;
	int32_t id;
	uint8_t special, lstrip, rstrip, single_word, normalized;
} tok_added;

enum tok_norm_type { TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_NFC };

typedef struct tok_norm {
	int type;
	const char *a, *b; /* Prepend: a; Replace: a -> b */
	size_t alen, blen;
} tok_norm;

enum tok_pre_type { TOK_PRE_SPLIT, TOK_PRE_BYTELEVEL, TOK_PRE_METASPACE, TOK_PRE_DIGITS };
enum tok_behavior { TOK_REMOVED, TOK_ISOLATED, TOK_MERGED_PREV, TOK_MERGED_NEXT, TOK_CONTIGUOUS };
enum tok_prepend { TOK_PREPEND_NEVER, TOK_PREPEND_FIRST, TOK_PREPEND_ALWAYS };

typedef struct tok_pre {
	int type;
	int behavior;         /* Split; Digits: isolated (individual_digits) or contiguous */
	int invert;           /* Split: the gaps are the matches (behavior acts on them) */
	int is_regex;         /* Split: re, else the literal str */
	tok_regex re;         /* Split (regex), ByteLevel (use_regex: GPT-2) */
	const char *str;      /* Split literal; Metaspace replacement */
	size_t slen;
	int add_prefix_space; /* ByteLevel */
	int use_regex;        /* ByteLevel */
	int prepend;          /* Metaspace: enum tok_prepend */
	int split;            /* Metaspace */
} tok_pre;

enum tok_dec_type {
	TOK_DEC_BYTELEVEL, TOK_DEC_REPLACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE, TOK_DEC_STRIP,
	TOK_DEC_METASPACE
};

typedef struct tok_dec {
	int type;
	const char *a, *b; /* Replace: a -> b; Metaspace: a = replacement */
	size_t alen, blen;
	uint32_t ch;       /* Strip: the character */
	int start, stop;   /* Strip: how many at each end */
	int prepend;       /* Metaspace */
} tok_dec;

struct tokenizer {
	char *name; /* file name for messages */
	tok_arena arena;

	/* model: BPE */
	tok_strmap vocab;
	tok_u64map merges; /* (left id << 32 | right id) -> (rank, merged id) */
	int byte_fallback, fuse_unk, ignore_merges;
	int32_t unk_id;       /* -1: none */
	int32_t byte_id[256]; /* <0xNN> tokens for byte fallback, -1 if absent */

	tok_token *tokens; /* id -> text, for the vocab and the added tokens */
	size_t n_tokens;

	tok_added *added;
	size_t n_added;
	tok_strmap added_ids; /* content -> id */
	tok_trie raw_trie;    /* normalized=false tokens, matched on the input */
	tok_trie norm_trie;   /* normalized=true tokens, matched after normalizing */

	tok_norm *norm;
	size_t n_norm;
	tok_pre *pre;
	size_t n_pre;
	tok_dec *dec;
	size_t n_dec;
	int has_decoder; /* without one, tokens are joined with spaces */

	int32_t *prefix, *suffix; /* post-processor ids around the text */
	size_t n_prefix, n_suffix;

	/* tokenizer_config.json / generation_config.json */
	int32_t bos_id, eos_id;
	int32_t *eos_ids;
	size_t n_eos;
	tok_chat chat;
	int chat_bos; /* the model's template writes bos_token */
};

/* tok_load.c: fill t (already zeroed, name set) from tokenizer.json text. */
int tok_parse(tokenizer *t, const char *json, size_t len);

/* tok_bpe.c: append the BPE ids of one pre-tokenized piece. */
int tok_bpe(const tokenizer *t, const char *s, size_t n, tok_ids *out);

/* tok_norm.c: apply the normalizers to s, appending to out; -1 with errf()
 * if they blow the text up. */
int tok_normalize(const tokenizer *t, const char *s, size_t n, tok_buf *out);
/* Replace every occurrence of a (non-empty) in s by b, appending to out. */
void tok_replace_all(const char *s, size_t n, const char *a, size_t alen, const char *b, size_t blen,
		     tok_buf *out);
/* How much longer than its input a normalizer or decoder chain may make a
 * text before it is refused. */
size_t tok_growth_cap(size_t n);

/* tok_config.c: read tokenizer_config.json and generation_config.json of dir. */
int tok_read_configs(tokenizer *t, const char *dir);

#endif
