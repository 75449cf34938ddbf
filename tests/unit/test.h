/* test.h: a minimal unit-test harness.
 *
 * Each check prints "ok <name>" or "FAIL <name>: <why>"; tests/run.sh counts
 * those lines. A test file defines test functions and a main that calls
 * RUN(fn) for each, then returns test_finish().
 */
#ifndef ANEMAKE_TEST_H
#define ANEMAKE_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failed, t_passed, t_skipped, t_cur_failed;
static const char *t_cur;

#define CHECK(c) do { if (!(c)) { printf("FAIL %s: %s:%d: %s\n", t_cur, __FILE__, __LINE__, #c); t_cur_failed = 1; } } while (0)
#define CHECKF(c, ...) do { if (!(c)) { printf("FAIL %s: %s:%d: ", t_cur, __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); t_cur_failed = 1; } } while (0)
#define CHECK_EQ_INT(a, b) CHECKF((long long)(a) == (long long)(b), "%s == %lld, expected %lld", #a, (long long)(a), (long long)(b))
#define CHECK_STR(a, b) CHECKF(strcmp((a), (b)) == 0, "%s == \"%s\", expected \"%s\"", #a, (a), (b))
#define SKIP(...) do { printf("skip %s: ", t_cur); printf(__VA_ARGS__); printf("\n"); t_skipped++; return; } while (0)

#define RUN(fn) do { \
	t_cur = #fn; t_cur_failed = 0; int t_sk = t_skipped; fn(); \
	if (t_skipped != t_sk) break; \
	if (t_cur_failed) t_failed++; else { t_passed++; printf("ok %s\n", #fn); } \
	fflush(stdout); } while (0)

static inline int test_finish(void)
{
	fflush(stdout);
	return t_failed ? 1 : 0;
}

/* Directory of the read-only shared material, or NULL when absent. */
static inline const char *test_shared(void)
{
	const char *s = getenv("SHARED");
	static char buf[4096];
	if (!s || !*s)
		s = "../shared";
	snprintf(buf, sizeof buf, "%s/spec", s);
	FILE *f = fopen(buf, "r");
	if (!f)
		return NULL;
	fclose(f);
	return s;
}

/* Run a shell command built from a printf format; system()'s status. */
#if defined(__GNUC__)
static inline int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
static inline int test_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* With mlmodel.h included before this header: the model.mlmodel of a
 * .mlpackage directory, or NULL after a failed check. */
#ifdef ANEMAKE_MLMODEL_H
#include "base/util.h"

static inline ml_model *test_package_model(const char *package)
{
	char *p = xasprintf("%s/Data/com.apple.CoreML/model.mlmodel", package);
	ml_model *m = NULL;
	if (ml_model_read(p, &m) != 0)
		CHECKF(0, "%s", errmsg());
	free(p);
	return m;
}
#endif

#endif
