/* fuzz_shardindex.c: model.safetensors.index.json through st_open.
 *
 * The input is written as the index of a directory that holds two small
 * shards; st_open must refuse it with one error line or give a model whose
 * every tensor lies in a shard and whose names are sorted and unique.
 * Builds under libFuzzer, or with tests/fuzz/driver.c supplying main.
 */
#include "checkpoint/safetensors.h"
#include "fuzz_util.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A shard holding one tensor of 8 bytes. */
static void put_shard(const char *file, const char *tensor, const char *dtype, const char *shape)
{
	char hdr[256], buf[512];
	int h = snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[0,8]}}", tensor, dtype,
			 shape);
	while (h % 8)
		hdr[h++] = ' ';
	uint64_t len = (uint64_t)h;
	for (int i = 0; i < 8; i++)
		buf[i] = (char)(len >> (8 * i));
	memcpy(buf + 8, hdr, (size_t)h);
	memset(buf + 8 + h, 0x3c, 8);
	fuzz_put(file, buf, (size_t)h + 16);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		put_shard("model-00001-of-00002.safetensors", "model.embed_tokens.weight", "F32", "[2]");
		put_shard("model-00002-of-00002.safetensors", "model.norm.weight", "F16", "[2,2]");
		ready = 1;
	}
	fuzz_put("model.safetensors.index.json", data, size);
	st_model m;
	if (st_open(&m, fuzz_dir()) != 0) {
		fuzz_check_error_line();
		st_close(&m);
		return 0;
	}
	for (size_t i = 0; i < st_count(&m); i++) {
		const st_tensor *t = st_at(&m, i);
		ASSERT(t->name && t->file && t->data);
		ASSERT(i == 0 || strcmp(st_at(&m, i - 1)->name, t->name) < 0);
		ASSERT(st_find(&m, t->name) == t);
		float f[4];
		ASSERT(t->numel <= 4);
		if (st_read_f32(t, f) != 0)
			fuzz_check_error_line();
	}
	st_close(&m);
	return 0;
}
