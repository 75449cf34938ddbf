/* fuzz_card.c: the source model's card (README.md front matter) on arbitrary text.
 *
 * dist carries license and base_model from it into the card it writes, so
 * our front matter must say the same values whatever the source's YAML
 * held (quotes, backslashes, control characters, YAML line breaks): reading
 * our own output back and writing it again gives the same bytes. Builds
 * under libFuzzer, or with tests/fuzz/driver.c supplying main.
 */
#include "base/util.h"
#include "dist/card.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *once = card_front_matter((const char *)data, size, "llama");
	char *twice = card_front_matter(once, strlen(once), "llama");
	if (strcmp(once, twice) != 0)
		BUG("the front matter does not read back:\n%s\n---- became ----\n%s", once, twice);
	free(once), free(twice);
	return 0;
}
