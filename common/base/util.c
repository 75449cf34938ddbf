/* util.c: messages, error recording and checked allocation (see util.h). */
#include "base/util.h"
#include "base/runstats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_progname = "anemake";
int g_verbosity = 1;

void set_progname(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	g_progname = slash ? slash + 1 : argv0;
	runstats_start(); /* every program passes here first: ANEMAKE_STATS covers them all */
}

const char *progname(void) { return g_progname; }

static void vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
	int saved = errno;
	vsnprintf(buf, cap, fmt, ap);
	size_t n = strlen(fmt);
	if (n > 0 && fmt[n - 1] == ':') {
		size_t used = strlen(buf);
		snprintf(buf + used, cap - used, " %s", strerror(saved));
	}
}

_Noreturn void die(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vformat(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", g_progname, buf);
	exit(EXIT_DATA);
}

_Noreturn void die_usage(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vformat(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s (see %s --help)\n", g_progname, buf, g_progname);
	exit(EXIT_USAGE);
}

void warn(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vformat(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: warning: %s\n", g_progname, buf);
}

void info(int level, const char *fmt, ...)
{
	if (g_verbosity < level)
		return;
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", g_progname, buf);
}

static _Thread_local char g_err[2048];

int verrf(const char *fmt, va_list ap)
{
	char buf[sizeof g_err];
	vformat(buf, sizeof buf, fmt, ap);
	memcpy(g_err, buf, sizeof g_err);
	return -1;
}

int errf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verrf(fmt, ap);
	va_end(ap);
	return -1;
}

const char *errmsg(void) { return g_err[0] ? g_err : "unknown error"; }

_Noreturn void die_err(void) { die("%s", errmsg()); }

_Noreturn void bug_at(const char *file, int line, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: BUG at %s:%d: %s\n", g_progname, file, line, buf);
	abort();
}

static void *check_alloc(void *p, size_t n)
{
	if (!p && n)
		die("out of memory allocating %zu bytes", n);
	return p;
}

void *xmalloc(size_t n) { return check_alloc(malloc(n ? n : 1), n); }
void *xcalloc(size_t n, size_t size) { return check_alloc(calloc(n ? n : 1, size ? size : 1), n * size); }
void *xrealloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1), n); }
char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = 0;
	return d;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	ASSERT(n >= 0);
	char *s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

size_t xmul(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		BUG("size overflow %zu * %zu", n, size);
	return n * size;
}

int mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	if (a && b > UINT64_MAX / a)
		return -1;
	*out = a * b;
	return 0;
}

int add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b > UINT64_MAX - a)
		return -1;
	*out = a + b;
	return 0;
}

void grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap : 8;
	while (n < need)
		n = xmul(n, 2);
	*p = xrealloc(*p, xmul(n, elem));
	memset((char *)*p + *cap * elem, 0, (n - *cap) * elem);
	*cap = n;
}

int has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }
