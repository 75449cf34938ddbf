/* fuzz_miltext.c: model.mil parsing and printing on arbitrary text.
 *
 * Whatever parses must print, and the printed text must parse and print to
 * the same bytes again (printing is canonical, so it is a fixed point).
 * Anything else must fail with an error, never crash, leak or recurse
 * without bound. Seeds: tests/fuzz/corpus/miltext/ (programs 1.0 and 1.3 in
 * the renderings Apple's compiler uses).
 */
#include "base/util.h"
#include "coreml/miltext.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const char *text, size_t n, const char *what)
{
	mil_arena *a = mil_arena_new();
	mil_program *p;
	mil_text_form form;
	char *out = NULL;
	size_t len;
	if (miltext_parse(a, text, n, &p, &form) == 0) {
		FILE *f = open_memstream(&out, &len);
		if (miltext_write(f, p, &form) != 0) {
			fprintf(stderr, "%s text parses but does not print: %s\n", what, errmsg());
			abort();
		}
		fclose(f);
	} else if (strcmp(what, "input") != 0) {
		fprintf(stderr, "our own text does not parse: %s\n", errmsg());
		abort();
	}
	mil_arena_free(a);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *once = print((const char *)data, size, "input");
	if (!once)
		return 0;
	char *twice = print(once, strlen(once), "printed");
	if (strcmp(once, twice) != 0) {
		fprintf(stderr, "printing is not a fixed point:\n%s\n---\n%s\n", once, twice);
		abort();
	}
	free(once);
	free(twice);
	return 0;
}
