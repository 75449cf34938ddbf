/* fuzz_metayaml.c: meta.yaml parsing on arbitrary text.
 *
 * Every input must be refused with one line of error, or parse to a struct
 * that the writer either refuses (one line) or writes as text that parses
 * back to an equal struct and writes again to the same bytes. Builds under
 * libFuzzer, or with tests/fuzz/driver.c supplying main.
 */
#include "anemll/metayaml.h"
#include "base/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	metayaml m;
	if (metayaml_parse((const char *)data, size, "fuzz/meta.yaml", &m) != 0) {
		ASSERT(strchr(errmsg(), '\n') == NULL);
		return 0;
	}
	ASSERT(m.context_length >= 0 && m.batch_size >= 0);
	if (m.ffn) {
		char *c2 = metayaml_chunk_name(m.ffn, 2);
		ASSERT(c2 || strchr(errmsg(), '\n') == NULL);
		free(c2);
	}
	char *t1, *t2;
	size_t n1, n2;
	if (metayaml_format(&m, &t1, &n1) != 0) {
		ASSERT(strchr(errmsg(), '\n') == NULL);
		metayaml_release(&m);
		return 0;
	}
	metayaml back;
	if (metayaml_parse(t1, n1, "fuzz/rewritten", &back) != 0)
		BUG("our own output does not parse: %s\n%.*s", errmsg(), (int)n1, t1);
	ASSERT(metayaml_equal(&m, &back));
	ASSERT(metayaml_format(&back, &t2, &n2) == 0);
	ASSERT(n1 == n2 && memcmp(t1, t2, n1) == 0);
	free(t1), free(t2);
	metayaml_release(&back);
	metayaml_release(&m);
	return 0;
}
