/* hash.c: SHA-256 through OpenSSL's EVP interface. */
#include "base/hash.h"
#include "base/util.h"

#include <openssl/evp.h>
#include <stdio.h>

struct sha256_ctx {
	EVP_MD_CTX *md;
};

sha256_ctx *sha256_new(void)
{
	sha256_ctx *c = xmalloc(sizeof *c);
	c->md = EVP_MD_CTX_new();
	if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		die("libcrypto cannot initialise SHA-256");
	return c;
}

void sha256_update(sha256_ctx *c, const void *data, size_t n)
{
	if (n && EVP_DigestUpdate(c->md, data, n) != 1)
		die("libcrypto SHA-256 update failed");
}

void sha256_final(sha256_ctx *c, uint8_t out[32])
{
	unsigned len = 32;
	if (EVP_DigestFinal_ex(c->md, out, &len) != 1 || len != 32)
		die("libcrypto SHA-256 final failed");
	EVP_MD_CTX_free(c->md);
	free(c);
}

void sha256(const void *data, size_t n, uint8_t out[32])
{
	sha256_ctx *c = sha256_new();
	sha256_update(c, data, n);
	sha256_final(c, out);
}

void sha256_hex(const uint8_t digest[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[digest[i] >> 4];
		hex[2 * i + 1] = digits[digest[i] & 15];
	}
	hex[64] = 0;
}

int sha256_file(const char *path, uint8_t out[32])
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errf("cannot open '%s':", path);
	sha256_ctx *c = sha256_new();
	char buf[1 << 16];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		sha256_update(c, buf, n);
	int bad = ferror(f);
	fclose(f);
	sha256_final(c, out);
	return bad ? errf("cannot read '%s'", path) : 0;
}
