/* fuzz_util.h: what the file-based fuzz targets share.
 *
 * fuzz_dir(): a scratch directory made once per process (removed at exit),
 * where a target writes the input as the file a loader reads, so the real
 * entry point (st_open, tokenizer_load_dir) is what gets fuzzed.
 * fuzz_tokenizer_json(): a SentencePiece-style tokenizer.json with byte
 * fallback (any text encodes) whose added tokens are the special tokens of
 * every chat family, so configs and templates can name them.
 */
#ifndef ANEMAKE_FUZZ_UTIL_H
#define ANEMAKE_FUZZ_UTIL_H

#include "base/fsutil.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *g_fuzz_dir;

static void fuzz_dir_remove(void) { rm_rf(g_fuzz_dir); }

static const char *fuzz_dir(void)
{
	if (!g_fuzz_dir) {
		char tmpl[] = "/tmp/anemake-fuzz-XXXXXX";
		if (!mkdtemp(tmpl))
			BUG("mkdtemp failed");
		g_fuzz_dir = xstrdup(tmpl);
		atexit(fuzz_dir_remove);
	}
	return g_fuzz_dir;
}

/* Write data to fuzz_dir()/name (plainly: no fsync, thousands of times a
 * second), or remove it when data is NULL. */
static void fuzz_put(const char *name, const void *data, size_t n)
{
	char *p = path_join(fuzz_dir(), name);
	FILE *f = data ? fopen(p, "wb") : NULL;
	if (!data)
		remove(p);
	else if (!f || fwrite_all(f, data, n, p) != 0 || fclose_checked(f, p) != 0)
		BUG("cannot write %s", p);
	free(p);
}

static const char *const FUZZ_SPECIALS[] = {
	"<unk>", "<s>", "</s>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
	"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<think>",
	"</think>",
};
#define FUZZ_NSPECIALS (sizeof FUZZ_SPECIALS / sizeof FUZZ_SPECIALS[0])

/* The tokenizer.json text (caller frees): specials, then <0x00>..<0xFF>, "▁". */
static char *fuzz_tokenizer_json(void)
{
	size_t cap = 1 << 16, n = 0;
	char *s = xmalloc(cap);
	n += (size_t)snprintf(s + n, cap - n, "{\"version\":\"1.0\",\"added_tokens\":[");
	for (size_t i = 0; i < FUZZ_NSPECIALS; i++)
		n += (size_t)snprintf(s + n, cap - n, "%s{\"id\":%zu,\"content\":\"%s\",\"special\":true}", i ? "," : "", i,
				      FUZZ_SPECIALS[i]);
	n += (size_t)snprintf(s + n, cap - n,
			      "],\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
			      "\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
			      "\"pre_tokenizer\":null,\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\","
			      "\"pattern\":{\"String\":\"\\u2581\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":"
			      "\"Fuse\"}]},\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,"
			      "\"byte_fallback\":true,\"vocab\":{");
	for (size_t i = 0; i < FUZZ_NSPECIALS; i++)
		n += (size_t)snprintf(s + n, cap - n, "\"%s\":%zu,", FUZZ_SPECIALS[i], i);
	for (int b = 0; b < 256; b++)
		n += (size_t)snprintf(s + n, cap - n, "\"<0x%02X>\":%zu,", b, FUZZ_NSPECIALS + (size_t)b);
	n += (size_t)snprintf(s + n, cap - n, "\"\\u2581\":%zu},\"merges\":[]}}", FUZZ_NSPECIALS + 256);
	ASSERT(n < cap);
	return s;
}

/* errmsg() is one non-empty line. */
static void fuzz_check_error_line(void)
{
	const char *m = errmsg();
	if (!m || !*m || strchr(m, '\n'))
		BUG("error is not one line: '%s'", m ? m : "(null)");
}

#endif
