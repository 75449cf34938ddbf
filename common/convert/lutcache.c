/* lutcache.c: palettization results cached by content (see lutcache.h). */
#include "convert/lutcache.h"
#include "convert/lutgptq.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "coreml/blob.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static const char MAGIC[8] = "ANLUTC1";
#define HDR_SIZE (8 + 32 + 4 + 4 + 8 * 5 + 8)

void lutcache_key(const uint16_t *w, int64_t channels, int64_t per_channel, int bits, int64_t group,
		  const double *colw, const double *xtx, uint8_t key[32])
{
	int64_t shape[4] = {channels, per_channel, bits, group};
	sha256_ctx *c = sha256_new();
	/* v2: the pruned DP breaks exact ties differently from v1's; entries
	 * of v1 are never reused, so a cache hit gives what a fresh run would. */
	sha256_update(c, "anemake-lut-v2 fp16", 20);
	sha256_update(c, shape, sizeof shape);
	sha256_update(c, w, (size_t)(channels * per_channel) * 2);
	if (colw) { /* activation-aware: the column weights' bytes too (unweighted keys unchanged) */
		sha256_update(c, "colw f64", 8);
		sha256_update(c, colw, (size_t)per_channel * sizeof *colw);
	}
	if (xtx) { /* GPTQ: its inputs and version */
		char tag[32];
		int n = snprintf(tag, sizeof tag, "gptq2 %d %d %g xtx f64", LUT_GPTQ_REFITS, LUT_GPTQ_DESCENT,
				 LUT_GPTQ_DAMP);
		sha256_update(c, tag, (size_t)n);
		sha256_update(c, xtx, (size_t)(per_channel * per_channel) * sizeof *xtx);
	}
	sha256_final(c, key);
}

static char *entry_path(const char *dir, const uint8_t key[32])
{
	char hex[65];
	sha256_hex(key, hex);
	char *name = xasprintf("%s.lut", hex);
	char *p = path_join(dir, name);
	free(name);
	return p;
}

static void put(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

static void get(const uint8_t **p, void *v, size_t n)
{
	memcpy(v, *p, n);
	*p += n;
}

/* Flag bit: the payload ends with each group's squared error and energy. */
#define HAS_GROUP_ERRORS 1u

static size_t payload_size(const lut_result *r, size_t *lut_bytes)
{
	*lut_bytes = (size_t)(r->groups << r->bits) * 2;
	return *lut_bytes + blob_packed_size((size_t)(r->channels * r->per_channel), r->bits);
}

static size_t errors_size(const lut_result *r)
{
	return (size_t)r->groups * 2 * sizeof(double);
}

int lutcache_store(const char *dir, const uint8_t key[32], const lut_result *r)
{
	size_t lut_bytes, raw_n = payload_size(r, &lut_bytes), packed_n = raw_n;
	uint32_t flags = r->group_sse && r->group_energy ? HAS_GROUP_ERRORS : 0;
	raw_n += flags ? errors_size(r) : 0;
	uint8_t *raw = xmalloc(raw_n);
	memcpy(raw, r->lut, lut_bytes);
	blob_pack_bits(r->indices, (size_t)(r->channels * r->per_channel), r->bits, raw + lut_bytes);
	if (flags) {
		memcpy(raw + packed_n, r->group_sse, errors_size(r) / 2);
		memcpy(raw + packed_n + errors_size(r) / 2, r->group_energy, errors_size(r) / 2);
	}
	size_t zcap = ZSTD_compressBound(raw_n);
	uint8_t *file = xmalloc(HDR_SIZE + zcap + 32), *p = file;
	size_t z = ZSTD_compress(file + HDR_SIZE, zcap, raw, raw_n, 3);
	free(raw);
	if (ZSTD_isError(z)) {
		free(file);
		return errf("lut cache: zstd: %s", ZSTD_getErrorName(z));
	}
	uint32_t bits = (uint32_t)r->bits;
	uint64_t zlen = z;
	put(&p, MAGIC, 8), put(&p, key, 32), put(&p, &bits, 4), put(&p, &flags, 4);
	put(&p, &r->channels, 8), put(&p, &r->per_channel, 8), put(&p, &r->group, 8);
	put(&p, &r->rel_rms, 8), put(&p, &r->snr_db, 8), put(&p, &zlen, 8);
	sha256(file, HDR_SIZE + z, file + HDR_SIZE + z);
	char *path = entry_path(dir, key);
	/* no fsync: a torn entry fails its checks and is computed again */
	int rc = mkdir_p(dir) == 0 ? write_file_atomic_nosync(path, file, HDR_SIZE + z + 32) : -1;
	free(path);
	free(file);
	return rc;
}

/* Header fields after the magic and key. */
typedef struct entry_hdr {
	uint32_t bits, flags;
	int64_t channels, per_channel, group;
	double rel_rms, snr_db;
	uint64_t zlen;
} entry_hdr;

static int check_entry(const uint8_t *f, size_t n, const uint8_t key[32], entry_hdr *h)
{
	if (n < HDR_SIZE + 32 || memcmp(f, MAGIC, 8) != 0 || memcmp(f + 8, key, 32) != 0)
		return 0;
	const uint8_t *p = f + 40;
	get(&p, &h->bits, 4), get(&p, &h->flags, 4), get(&p, &h->channels, 8);
	get(&p, &h->per_channel, 8), get(&p, &h->group, 8), get(&p, &h->rel_rms, 8);
	get(&p, &h->snr_db, 8), get(&p, &h->zlen, 8);
	if (h->zlen != n - HDR_SIZE - 32)
		return 0;
	uint8_t digest[32];
	sha256(f, HDR_SIZE + h->zlen, digest);
	return memcmp(digest, f + HDR_SIZE + h->zlen, 32) == 0;
}

static int unpack_entry(const uint8_t *z, size_t zlen, const entry_hdr *h, int packed, lut_result *r)
{
	int64_t g = h->group ? h->group : h->channels;
	lut_result t = {.bits = (int)h->bits, .channels = h->channels, .per_channel = h->per_channel,
			.group = g, .groups = h->channels / g, .rel_rms = h->rel_rms, .snr_db = h->snr_db};
	size_t lut_bytes, packed_n = payload_size(&t, &lut_bytes), n = (size_t)(t.channels * t.per_channel);
	size_t raw_n = packed_n + (h->flags & HAS_GROUP_ERRORS ? errors_size(&t) : 0);
	uint8_t *raw = xmalloc(raw_n);
	size_t got = ZSTD_decompress(raw, raw_n, z, zlen);
	if (ZSTD_isError(got) || got != raw_n) {
		free(raw);
		return 0;
	}
	t.lut = xmalloc(lut_bytes);
	memcpy(t.lut, raw, lut_bytes);
	if (packed) {
		t.packed = xmalloc(packed_n - lut_bytes + 1);
		memcpy(t.packed, raw + lut_bytes, packed_n - lut_bytes);
	} else {
		t.indices = xmalloc(n);
		blob_unpack_bits(raw + lut_bytes, n, t.bits, t.indices);
	}
	if (h->flags & HAS_GROUP_ERRORS) {
		size_t half = errors_size(&t) / 2;
		t.group_sse = xmalloc(half);
		t.group_energy = xmalloc(half);
		memcpy(t.group_sse, raw + packed_n, half);
		memcpy(t.group_energy, raw + packed_n + half, half);
	}
	free(raw);
	*r = t;
	return 1;
}

static int load(const char *dir, const uint8_t key[32], int64_t channels, int64_t per_channel, int bits,
		int64_t group, int packed, lut_result *r)
{
	char *path = entry_path(dir, key), *f;
	size_t n, lut_bytes;
	int found = 0;
	/* No entry for this tensor is larger than its compressed payload can be. */
	lut_result shape = {.bits = bits, .channels = channels, .per_channel = per_channel,
			    .groups = group ? channels / group : 1};
	size_t max = HDR_SIZE + ZSTD_compressBound(payload_size(&shape, &lut_bytes) + errors_size(&shape)) + 32;
	if (path_exists(path) && read_file(path, max, &f, &n) != 0)
		info(1, "lut cache entry: %s: recomputing it", errmsg());
	else if (path_exists(path)) {
		entry_hdr h;
		int ok = check_entry((uint8_t *)f, n, key, &h);
		/* every result carries its groups' errors: an entry of an earlier
		 * version, without them, is simply computed again (and replaced) */
		int old = ok && !(h.flags & HAS_GROUP_ERRORS);
		if (ok && !old && (int)h.bits == bits && h.channels == channels &&
		    h.per_channel == per_channel && (h.group == group || (group == 0 && h.group == channels)))
			found = unpack_entry((uint8_t *)f + HDR_SIZE, (size_t)h.zlen, &h, packed, r);
		if (!found && !old)
			info(1, "lut cache entry '%s' is damaged: recomputing it", path);
		free(f);
	}
	free(path);
	return found;
}

int lutcache_load(const char *dir, const uint8_t key[32], int64_t channels, int64_t per_channel, int bits,
		  int64_t group, lut_result *r)
{
	return load(dir, key, channels, per_channel, bits, group, 0, r);
}

int lutcache_load_packed(const char *dir, const uint8_t key[32], int64_t channels, int64_t per_channel, int bits,
			 int64_t group, lut_result *r)
{
	return load(dir, key, channels, per_channel, bits, group, 1, r);
}
