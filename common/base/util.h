/* util.h: messages, exit codes, error propagation and checked allocation.
 *
 * Two tiers of failure (see README "Errors"):
 *  - bad input or environment: library code in common/ records one line with
 *    errf() and returns -1; the stage decides to die() with it (exit 1).
 *    Usage errors exit 2 through die_usage().
 *  - a broken invariant: ASSERT()/BUG() print file:line and abort.
 * Allocation failure is treated as an environment error and exits 1 at once,
 * so callers never check for NULL from x*alloc.
 */
#ifndef ANEMAKE_UTIL_H
#define ANEMAKE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define EXIT_DATA 1  /* bad input, runtime failure */
#define EXIT_USAGE 2 /* bad command line */

/* Name printed before every message; set once from argv[0] in main. */
void set_progname(const char *argv0);
const char *progname(void);

/* Verbosity: 0 errors only, 1 (default) progress, 2 chatty. */
extern int g_verbosity;

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* Print "prog: msg" and exit 1. A format ending in ':' appends strerror(errno). */
_Noreturn void die(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Print "prog: msg" plus a hint to --help and exit 2. */
_Noreturn void die_usage(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Print "prog: warning: msg" and continue. */
void warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Progress message at verbosity >= level, to stderr. */
void info(int level, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Record the current error (one line, no program name) and return -1.
 * A format ending in ':' appends strerror(errno). The message lives in a
 * thread-local buffer until the next errf() on the same thread. */
int errf(const char *fmt, ...) PRINTF_LIKE(1, 2);
int verrf(const char *fmt, va_list ap);
const char *errmsg(void);
/* Die with the recorded error message (exit 1). */
_Noreturn void die_err(void);

_Noreturn void bug_at(const char *file, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
#define BUG(...) bug_at(__FILE__, __LINE__, __VA_ARGS__)
#define ASSERT(c) ((c) ? (void)0 : bug_at(__FILE__, __LINE__, "assertion failed: %s", #c))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* n*size, aborting on overflow (for sizes computed from trusted values). */
size_t xmul(size_t n, size_t size);

/* Overflow-checked arithmetic for sizes computed from untrusted input:
 * return 0 and set *out, or return -1 on overflow. */
int mul_u64(uint64_t a, uint64_t b, uint64_t *out);
int add_u64(uint64_t a, uint64_t b, uint64_t *out);

/* Growable array helper: ensure *cap >= need elements of size elem. */
void grow(void **p, size_t *cap, size_t need, size_t elem);
#define GROW(arr, cap, need) grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

int has_suffix(const char *s, const char *suffix);
int streq(const char *a, const char *b);

#endif
