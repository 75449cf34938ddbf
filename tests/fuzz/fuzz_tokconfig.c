/* fuzz_tokconfig.c: tokenizer_config.json and generation_config.json
 * through tokenizer_load_dir.
 *
 * The input is split at its first NUL byte: before it the text of
 * tokenizer_config.json, after it that of generation_config.json (absent
 * when there is no NUL). They sit next to a fixed tokenizer.json holding
 * every chat family's special tokens. Loading must fail with one error line
 * or give BOS/EOS/stop ids inside the vocabulary, a chat family in range,
 * and a chat prompt for that family that encodes to valid ids (or is
 * refused in one line). Builds under libFuzzer or with tests/fuzz/driver.c.
 */
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		char *json = fuzz_tokenizer_json();
		fuzz_put("tokenizer.json", json, strlen(json));
		free(json);
		ready = 1;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t n1 = nul ? (size_t)(nul - data) : size;
	fuzz_put("tokenizer_config.json", data, n1);
	fuzz_put("generation_config.json", nul ? nul + 1 : NULL, nul ? size - n1 - 1 : 0);
	tokenizer *t;
	if (tokenizer_load_dir(fuzz_dir(), &t) != 0) {
		fuzz_check_error_line();
		return 0;
	}
	int32_t nv = (int32_t)tokenizer_vocab_size(t), stop[16];
	ASSERT(tokenizer_bos_id(t) >= -1 && tokenizer_bos_id(t) < nv);
	ASSERT(tokenizer_eos_id(t) >= -1 && tokenizer_eos_id(t) < nv);
	size_t ns = tokenizer_stop_ids(t, stop, 16);
	for (size_t i = 0; i < ns && i < 16; i++)
		ASSERT(stop[i] >= 0 && stop[i] < nv);
	tok_chat f = tokenizer_chat_family(t);
	ASSERT(f >= TOK_CHAT_NONE && f <= TOK_CHAT_UNKNOWN);
	int32_t *ids;
	size_t n;
	if (f != TOK_CHAT_UNKNOWN) {
		if (tokenizer_chat_prompt(t, f, "Be brief.", "Hello", TOK_CHAT_NO_THINK, &ids, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				ASSERT(ids[i] >= 0 && ids[i] < nv);
			free(ids);
		} else {
			fuzz_check_error_line();
		}
	}
	tokenizer_free(t);
	return 0;
}
