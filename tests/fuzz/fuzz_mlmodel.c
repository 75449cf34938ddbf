/* fuzz_mlmodel.c: model.mlmodel decoding, encoding and listing on arbitrary bytes.
 *
 * Whatever decodes must encode, decode again and re-encode to the same
 * bytes (our encoding is canonical, so it is a fixed point), and must list
 * without trouble. Anything else must fail with an error, never crash or
 * leak. Seeds: tests/fuzz/corpus/mlmodel/ (small reference packages and a
 * multifunction model with states built by the library).
 */
#include "base/util.h"
#include "coreml/mldump.h"
#include "coreml/mlmodel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ml_model *m = NULL, *m2 = NULL;
	if (ml_model_decode(data, size, &m) != 0)
		return 0;
	pb_buf b1, b2;
	pb_init(&b1);
	pb_init(&b2);
	ml_model_encode(m, &b1);
	if (ml_model_decode(b1.data, b1.len, &m2) != 0) {
		fprintf(stderr, "our own encoding does not decode: %s\n", errmsg());
		abort();
	}
	ml_model_encode(m2, &b2);
	if (b1.len != b2.len || (b1.len && memcmp(b1.data, b2.data, b1.len) != 0)) {
		fprintf(stderr, "encoding is not a fixed point (%zu vs %zu bytes)\n", b1.len, b2.len);
		abort();
	}
	FILE *null = fopen("/dev/null", "w");
	if (null) {
		mldump_listing(null, m);
		fclose(null);
	}
	pb_release(&b1);
	pb_release(&b2);
	ml_model_free(m);
	ml_model_free(m2);
	return 0;
}
