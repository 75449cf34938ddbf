/* calstats.c: the calibration statistics file (see calstats.h). */
#include "base/calstats.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

#define MAGIC "ANCALIB1"

void calstats_set(calstats *s, const char *name, uint64_t n, const double *v)
{
	calstats_entry *e = NULL;
	for (size_t i = 0; i < s->n && !e; i++)
		if (streq(s->e[i].name, name))
			e = &s->e[i];
	if (!e) {
		GROW(s->e, s->cap, s->n + 1);
		e = &s->e[s->n++];
		e->name = xstrdup(name);
	} else {
		free(e->v);
	}
	e->n = n;
	e->v = xmalloc(xmul((size_t)n ? (size_t)n : 1, sizeof *v));
	memcpy(e->v, v, (size_t)n * sizeof *v);
}

const double *calstats_find(const calstats *s, const char *name, uint64_t n)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (streq(s->e[i].name, name))
			return s->e[i].n == n ? s->e[i].v : NULL;
	return NULL;
}

void calstats_release(calstats *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].name), free(s->e[i].v);
	free(s->e);
	memset(s, 0, sizeof *s);
}

/* A growing little-endian byte buffer. */
typedef struct buf {
	uint8_t *p;
	size_t len, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
	GROW(b->p, b->cap, b->len + n);
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void put_u64(buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, 8);
}

int calstats_write(const char *path, calstats *s)
{
	buf b = {0};
	put(&b, MAGIC, 8);
	put_u64(&b, s->tokens);
	put_u64(&b, s->n);
	for (size_t i = 0; i < s->n; i++) {
		uint32_t len = (uint32_t)strlen(s->e[i].name);
		uint8_t l[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
		put(&b, l, 4);
		put(&b, s->e[i].name, len);
		put_u64(&b, s->e[i].n);
		for (uint64_t k = 0; k < s->e[i].n; k++) {
			uint64_t u;
			memcpy(&u, &s->e[i].v[k], 8);
			put_u64(&b, u);
		}
	}
	sha256(b.p, b.len, s->digest);
	put(&b, s->digest, 32);
	int rc = write_file_atomic(path, b.p, b.len);
	free(b.p);
	return rc;
}

/* A reader over the file's bytes; any overrun marks it bad. */
typedef struct rd {
	const uint8_t *p;
	size_t len, at;
	int bad;
} rd;

static const uint8_t *take(rd *r, size_t n)
{
	if (r->bad || n > r->len - r->at) {
		r->bad = 1;
		return NULL;
	}
	r->at += n;
	return r->p + r->at - n;
}

static uint64_t get_u64(rd *r)
{
	const uint8_t *x = take(r, 8);
	uint64_t v = 0;
	for (int i = 7; x && i >= 0; i--)
		v = v << 8 | x[i];
	return v;
}

static int parse(rd *r, calstats *s)
{
	s->tokens = get_u64(r);
	uint64_t n = get_u64(r);
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		const uint8_t *l = take(r, 4);
		uint32_t len = l ? (uint32_t)l[0] | (uint32_t)l[1] << 8 | (uint32_t)l[2] << 16 | (uint32_t)l[3] << 24 : 0;
		const uint8_t *name = take(r, len);
		uint64_t m = get_u64(r);
		if (r->bad || m > (r->len - r->at) / 8)
			return -1;
		double *v = xmalloc(xmul((size_t)m ? (size_t)m : 1, sizeof *v));
		for (uint64_t k = 0; k < m; k++) {
			uint64_t u = get_u64(r);
			memcpy(&v[k], &u, 8);
		}
		char *nm = xstrndup((const char *)name, len);
		calstats_set(s, nm, m, v);
		free(nm);
		free(v);
	}
	return r->bad || r->at != r->len ? -1 : 0;
}

int calstats_read(const char *path, calstats *s)
{
	memset(s, 0, sizeof *s);
	char *data;
	size_t n;
	if (read_file(path, (size_t)1 << 32, &data, &n) != 0)
		return -1;
	uint8_t sum[32];
	int rc = -1;
	if (n >= 8 + 32 && memcmp(data, MAGIC, 8) == 0) {
		sha256(data, n - 32, sum);
		rd r = {(const uint8_t *)data + 8, n - 8 - 32, 0, 0};
		if (memcmp(sum, data + n - 32, 32) == 0)
			rc = parse(&r, s);
	}
	free(data);
	if (rc != 0) {
		calstats_release(s);
		return errf("%s: not a calibration statistics file (" MAGIC "), or damaged", path);
	}
	memcpy(s->digest, sum, 32);
	return 0;
}
