/* fuzz_tokenizer.c: libFuzzer target for tokenizer.json loading, encoding
 * and decoding.
 *
 * The input is the text of a tokenizer.json. A file that does not load must
 * fail with one error line; one that loads is used to encode a few fixed
 * strings and the input's own bytes (when they are UTF-8), with and without
 * special tokens, and every result and the first ids of the vocabulary are
 * decoded again in every mode. Work per input stays small: the texts are
 * short and the input's bytes are cut at 512.
 */
#include "base/util.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_error_line(void)
{
	const char *m = errmsg();
	if (!m || !*m || strchr(m, '\n'))
		BUG("tokenizer error is not one line: '%s'", m ? m : "(null)");
}

static void round_trip(const tokenizer *t, const char *s, size_t n)
{
	static const int enc_flags[] = {0, TOK_NO_ADD_SPECIAL, TOK_SPLIT_SPECIAL};

	for (size_t f = 0; f < sizeof enc_flags / sizeof enc_flags[0]; f++) {
		int32_t *ids;
		size_t k;
		if (tokenizer_encode(t, s, n, enc_flags[f], &ids, &k) < 0) {
			check_error_line();
			continue;
		}
		for (int d = 0; d < 4; d++) {
			char *text;
			size_t len;
			if (tokenizer_decode(t, ids, k, d, &text, &len) < 0) {
				/* a hostile decoder chain may be refused, never our own ids */
				if (strstr(errmsg(), "no such token"))
					BUG("cannot decode ids the tokenizer produced: %s", errmsg());
				check_error_line();
				continue;
			}
			if (strlen(text) > len)
				BUG("decoded length is wrong");
			free(text);
		}
		free(ids);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const texts[] = {
		"Hello world", "  <s>Once upon\ta time</s>\n\n", "<|im_start|>user\nhi<|im_end|>",
		"e\xCC\x81 \xC3\xA9 \xF0\x9F\xA6\x99 \xE2\x96\x81 123456 it's", "",
	};
	tokenizer *t;

	if (tokenizer_load_mem((const char *)data, size, "fuzz.json", &t) < 0) {
		check_error_line();
		return 0;
	}
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
		round_trip(t, texts[i], strlen(texts[i]));
	round_trip(t, (const char *)data, size < 512 ? size : 512);

	size_t nv = tokenizer_vocab_size(t);
	int32_t ids[64];
	size_t k = 0;
	for (int32_t id = 0; (size_t)id < nv && k < 64; id++)
		if (tokenizer_id_to_token(t, id))
			ids[k++] = id;
	char *text;
	if (tokenizer_decode(t, ids, k, 0, &text, NULL) == 0)
		free(text);
	else if (strstr(errmsg(), "no such token"))
		BUG("cannot decode known ids: %s", errmsg());
	int32_t stop[16];
	tokenizer_stop_ids(t, stop, 16);
	(void)tokenizer_bos_id(t);
	tokenizer_free(t);
	return 0;
}
