/* test_fixture.h: tiny random checkpoints for unit tests, written by
 * tests/tools/mkfixture (found through $TESTBIN, set by tests/run.sh).
 * Include after test.h; the test links libanemake (util, fsutil). */
#ifndef ANEMAKE_TEST_FIXTURE_H
#define ANEMAKE_TEST_FIXTURE_H

#include "base/fsutil.h"
#include "base/util.h"

#include <stdlib.h>

/* Write fixture `name` under `root` with mkfixture `args` (once; an existing
 * directory is reused). Returns its directory (caller frees), or NULL when
 * TESTBIN is not set (the caller skips). Failure to write is a FAIL. */
static inline char *test_fixture(const char *root, const char *name, const char *args)
{
	const char *bin = getenv("TESTBIN");
	if (!bin || !*bin)
		return NULL;
	char *dir = xasprintf("%s/%s", root, name);
	if (!is_dir(dir)) {
		char *cmd = xasprintf("'%s/mkfixture' --out '%s' %s >/dev/null", bin, dir, args);
		int rc = system(cmd);
		CHECKF(rc == 0, "%s: exit %d", cmd, rc);
		free(cmd);
	}
	return dir;
}

#endif
