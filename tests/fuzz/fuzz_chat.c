/* fuzz_chat.c: chat templates and chat prompts.
 *
 * The input is split at its first NUL byte: a Jinja chat template, then the
 * user's text (empty without a NUL). The template's family is recognised;
 * then the prompt of every family is written as text and encoded with a
 * fixed tokenizer that has every family's special tokens: each must succeed
 * with ids inside the vocabulary that decode again, or fail in one line.
 * Builds under libFuzzer or with tests/fuzz/driver.c.
 */
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static tokenizer *t;
	if (!t) {
		char *json = fuzz_tokenizer_json();
		if (tokenizer_load_mem(json, strlen(json), "fuzz/tokenizer.json", &t) != 0)
			BUG("the fixed tokenizer does not load: %s", errmsg());
		free(json);
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t n1 = nul ? (size_t)(nul - data) : size;
	char *tpl = xmalloc(n1 + 1), *user = xstrdup("");
	memcpy(tpl, data, n1);
	tpl[n1] = 0;
	if (nul) {
		size_t n2 = size - n1 - 1;
		free(user);
		user = xmalloc(n2 + 1);
		memcpy(user, nul + 1, n2);
		user[n2] = 0; /* user text ends at its own first NUL, as a C string */
	}
	tok_chat detected = tokenizer_chat_detect(tpl);
	ASSERT(detected >= TOK_CHAT_NONE && detected <= TOK_CHAT_UNKNOWN);
	ASSERT(tokenizer_chat_name(detected) != NULL);
	int32_t nv = (int32_t)tokenizer_vocab_size(t);
	for (int f = TOK_CHAT_NONE; f < TOK_CHAT_UNKNOWN; f++) {
		char *text;
		if (tokenizer_chat_text((tok_chat)f, n1 ? tpl : NULL, user, TOK_CHAT_NO_THINK, &text) == 0)
			free(text);
		else
			fuzz_check_error_line();
		int32_t *ids;
		size_t n;
		if (tokenizer_chat_prompt(t, (tok_chat)f, NULL, user, f == TOK_CHAT_QWEN3 ? TOK_CHAT_NO_THINK : 0, &ids,
					  &n) != 0) {
			fuzz_check_error_line();
			continue;
		}
		for (size_t i = 0; i < n; i++)
			ASSERT(ids[i] >= 0 && ids[i] < nv);
		char *back;
		if (tokenizer_decode(t, ids, n, 0, &back, NULL) == 0)
			free(back);
		else
			fuzz_check_error_line();
		free(ids);
	}
	free(tpl);
	free(user);
	return 0;
}
