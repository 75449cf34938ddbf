/* tokenizer.h: HuggingFace tokenizer.json tokenizers (BPE) in C.
 *
 * Reads a tokenizer.json as written by HuggingFace `tokenizers` and encodes
 * and decodes text the way that library does, so a converted model can be
 * run on prompts and its output read back. Two BPE families are covered:
 *
 *  - byte-level BPE (Llama 3, Qwen 2/2.5/3, GPT-2, Granite, OLMo 2,
 *    Phi-4-mini, Mistral-Nemo): text is split by the
 *    model's pre-tokenizer regex, bytes are mapped to the GPT-2 byte alphabet,
 *    merges apply within each piece;
 *  - SentencePiece-style BPE (Llama 2, TinyLlama, Gemma, stories260K): spaces
 *    become U+2581 "▁", merges apply by rank, characters missing from the
 *    vocabulary fall back to <0xNN> byte tokens.
 *
 * Supported tokenizer.json components (anything else is refused at load time
 * with "unsupported <component> '<type>'"):
 *   model         BPE: vocab, merges ("a b" strings or [a, b] pairs),
 *                 byte_fallback, fuse_unk, unk_token, ignore_merges
 *   added_tokens  id, content, special, lstrip, rstrip, normalized, single_word
 *   normalizer    Sequence, Prepend, Replace (string pattern), NFC
 *   pre_tokenizer Sequence, ByteLevel (add_prefix_space, use_regex), Digits
 *                 (individual_digits), Metaspace
 *                 (prepend_scheme, split), Split (any behavior, invert) with
 *                 a string pattern or one of the regexes GPT-2, Llama 3 (GPT-4
 *                 style, \p{N}{1,3}), Qwen 2 (\p{N}), o200k (GPT-4o, Phi-4-mini:
 *                 words split by case) and tekken (Mistral-Nemo), matched by hand
 *   post_processor TemplateProcessing (single), ByteLevel, Sequence
 *   decoder       ByteLevel, Metaspace, Replace (string pattern), ByteFallback,
 *                 Fuse, Strip, Sequence
 *   truncation, padding must be null.
 *
 * Known limits: Unicode classes and NFC data are Unicode 14 (tok_unicode.c);
 * single_word takes letters, numbers and '_' as word characters; any
 * other regex is refused, not approximated.
 *
 * Text in and out is UTF-8; encoding refuses invalid UTF-8. Errors are
 * reported the project way: one line through errf() and a -1 return.
 * Results are allocated and owned by the caller (free()). A loaded
 * tokenizer is read-only, so threads may share it.
 */
#ifndef ANEMAKE_TOKENIZER_H
#define ANEMAKE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;

/* Load a tokenizer.json file. */
int tokenizer_load(const char *path, tokenizer **out);
/* Load from memory; name is used in error messages. */
int tokenizer_load_mem(const char *json, size_t len, const char *name, tokenizer **out);
/* Load <dir>/tokenizer.json plus, when present, <dir>/tokenizer_config.json
 * (bos/eos tokens, chat template; or <dir>/chat_template.jinja) and
 * <dir>/generation_config.json (eos_token_id, one or a list). */
int tokenizer_load_dir(const char *dir, tokenizer **out);
void tokenizer_free(tokenizer *tok); /* NULL is fine */

/* Encoding flags; 0 gives HuggingFace's defaults (add_special_tokens=True,
 * split_special_tokens=False). */
enum {
	TOK_NO_ADD_SPECIAL = 1, /* do not add the post-processor's BOS/EOS */
	TOK_SPLIT_SPECIAL = 2,  /* special-token text in the input is plain text */
};
/* Encode len bytes of UTF-8 text into *ids (*n of them; caller frees). */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int flags, int32_t **ids,
		     size_t *n);

/* Decoding flags. */
enum {
	TOK_SKIP_SPECIAL = 1, /* leave out added tokens marked special */
	TOK_DECODE_RAW = 2,   /* keep invalid or incomplete UTF-8 bytes instead of
			       * U+FFFD: for streaming, decode the whole sequence
			       * again and print only the new bytes */
};
/* Decode ids into NUL-terminated text (*len bytes without the NUL; len may
 * be NULL; caller frees). An id with no token is an error. */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, int flags, char **text,
		     size_t *len);

/* Lookups. Token text is as stored in tokenizer.json (byte-level tokens are
 * in the GPT-2 alphabet, SentencePiece ones use "▁"). */
int32_t tokenizer_token_to_id(const tokenizer *tok, const char *token); /* -1: none */
/* NUL-terminated text of id, owned by tok; NULL when id has no token. */
const char *tokenizer_id_to_token(const tokenizer *tok, int32_t id);
/* Size of the id space: highest id of the vocabulary or added tokens + 1. */
size_t tokenizer_vocab_size(const tokenizer *tok);
int tokenizer_is_special(const tokenizer *tok, int32_t id);
/* BOS: tokenizer_config's bos_token, else the token the post-processor puts
 * first; EOS: tokenizer_config's eos_token, else generation_config's first
 * eos_token_id, else the token the post-processor appends. -1 when unknown. */
int32_t tokenizer_bos_id(const tokenizer *tok);
int32_t tokenizer_eos_id(const tokenizer *tok);
/* Ids that end generation: the eos id(s) plus <|endoftext|>, <end_of_turn>,
 * <|eot_id|> and <|im_end|> when the vocabulary has them, without repeats.
 * Writes up to cap ids and returns how many there are. */
size_t tokenizer_stop_ids(const tokenizer *tok, int32_t *out, size_t cap);

/* Chat prompts: hand-written equivalents of the chat templates of the
 * model families anemake converts (no Jinja), for one user turn followed by
 * the assistant's generation prompt. */
typedef enum tok_chat {
	TOK_CHAT_NONE,    /* no template: the user text as is, BOS per post-processor */
	TOK_CHAT_LLAMA3,  /* <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n... */
	TOK_CHAT_CHATML,  /* <|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n */
	TOK_CHAT_QWEN25,  /* ChatML with Qwen 2.5's default system prompt */
	TOK_CHAT_QWEN3,   /* ChatML; TOK_CHAT_NO_THINK adds the empty think block */
	TOK_CHAT_GEMMA3,  /* <bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n */
	/* The families beyond ANEMLL. "BOS" marks templates that open with
	 * bos_token: tokenizer_chat_prompt writes the tokenizer's BOS text first
	 * (always for Mistral; for Phi-3 and Tulu when the model's template
	 * names bos_token), tokenizer_chat_text leaves it out. */
	TOK_CHAT_MISTRAL,        /* BOS [INST] ... [/INST]  (Mistral 7B v0.1 original) */
	TOK_CHAT_MISTRAL_V1,     /* BOS  [INST] ... [/INST] (mistralai's "v1", v0.1/v0.2 now) */
	TOK_CHAT_MISTRAL_V3,     /* BOS [INST] ...[/INST]   (v0.3, v7: Ministral, Small) */
	TOK_CHAT_MISTRAL_TEKKEN, /* BOS [INST]...[/INST]    (Mistral-Nemo) */
	TOK_CHAT_PHI3,      /* <|user|>\n...<|end|>\n<|assistant|>\n (Phi-3, Phi-3.5) */
	TOK_CHAT_PHI4_MINI, /* <|user|>...<|end|><|assistant|> */
	TOK_CHAT_PHI4,      /* <|im_start|>user<|im_sep|>...<|im_end|><|im_start|>assistant<|im_sep|> */
	TOK_CHAT_GRANITE,   /* <|start_of_role|>user<|end_of_role|>...<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|> */
	TOK_CHAT_GRANITE31, /* the same after Granite 3.1/3.2's default system turn (today's date) */
	TOK_CHAT_GRANITE33, /* Granite 3.3's: that turn's sentences joined by spaces, not newlines */
	TOK_CHAT_TULU,      /* <|user|>\n...\n<|assistant|>\n (OLMo 2) */
	TOK_CHAT_SMOLLM3,   /* ChatML after SmolLM3's metadata system turn (today's date,
			     * /think or with TOK_CHAT_NO_THINK /no_think and the empty think block) */
	TOK_CHAT_UNKNOWN, /* a template this code does not recognise */
} tok_chat;

/* Flags of tokenizer_chat_prompt. */
enum {
	TOK_CHAT_NO_THINK = 1, /* Qwen 3, SmolLM3: enable_thinking=False */
};

/* Family by name (tokenizer_chat_names() lists them), plus the aliases
 * qwen25, qwen, gemma, llama, olmo2; -1 with errf() for anything else. */
int tokenizer_chat_from_name(const char *name, tok_chat *out);
const char *tokenizer_chat_name(tok_chat family);
/* "none, llama3, chatml, ...": every family name, for messages. */
const char *tokenizer_chat_names(void);
/* Recognise a Jinja chat template's family from its text; NULL or "" gives
 * TOK_CHAT_NONE, an unrecognised template TOK_CHAT_UNKNOWN. */
tok_chat tokenizer_chat_detect(const char *chat_template);
/* Family found by tokenizer_load_dir (TOK_CHAT_NONE otherwise). */
tok_chat tokenizer_chat_family(const tokenizer *tok);
/* The prompt as text (caller frees); system may be NULL. Granite 3.1 and
 * SmolLM3 write today's date as their templates' strftime_now does: the
 * UTC date of SOURCE_DATE_EPOCH when set (reproducible prompts), else now. */
int tokenizer_chat_text(tok_chat family, const char *system, const char *user, int flags,
			char **text);
/* The prompt as ids, special tokens parsed; checks that the tokenizer has
 * the family's special tokens. */
int tokenizer_chat_prompt(const tokenizer *tok, tok_chat family, const char *system,
			  const char *user, int flags, int32_t **ids, size_t *n);

#endif
