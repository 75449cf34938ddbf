/* hash.h: SHA-256 (OpenSSL libcrypto) for content keys: LUT cache entries,
 * manifest ids, make stamps. */
#ifndef ANEMAKE_HASH_H
#define ANEMAKE_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct sha256_ctx sha256_ctx;

sha256_ctx *sha256_new(void);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
/* Finish into out[32] and free the context. */
void sha256_final(sha256_ctx *c, uint8_t out[32]);

void sha256(const void *data, size_t n, uint8_t out[32]);
/* Lower-case hex of 32 bytes into hex[65]. */
void sha256_hex(const uint8_t digest[32], char hex[65]);
/* Hash a whole file; returns -1 with errf() on failure. */
int sha256_file(const char *path, uint8_t out[32]);

#endif
