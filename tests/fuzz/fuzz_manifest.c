/* fuzz_manifest.c: Manifest.json parsing (mlpackage_manifest_parse) on
 * arbitrary text, without the file system checks of mlpackage_open.
 *
 * A manifest it accepts must hold what the header promises: a 1.x.y version,
 * a root index inside the items, four strings per item, unique identifiers
 * and relative paths that never climb out with "..". A rejected one must give
 * a one-line message. Built with libFuzzer, or with tests/fuzz/driver.c.
 */
#include "base/util.h"
#include "coreml/mlpackage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int climbs_out(const char *p)
{
	if (p[0] == '/' || p[0] == 0)
		return 1;
	for (const char *s = p; (s = strstr(s, "..")); s += 2)
		if ((s == p || s[-1] == '/') && (s[2] == 0 || s[2] == '/'))
			return 1;
	return 0;
}

static void check(const mlpackage_manifest *m)
{
	if (strncmp(m->version, "1.", 2) != 0 || m->root >= m->n_items)
		abort();
	for (size_t i = 0; i < m->n_items; i++) {
		const mlpackage_item *it = &m->items[i];
		if (!it->id || !it->path || !it->name || !it->author || !it->description || climbs_out(it->path))
			abort();
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->items[k].id, it->id) == 0)
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mlpackage_manifest m;
	if (mlpackage_manifest_parse((const char *)data, size, "fuzz", &m) != 0) {
		if (strchr(errmsg(), '\n') || strncmp(errmsg(), "fuzz: ", 6) != 0)
			abort();
		mlpackage_manifest_release(&m);
		return 0;
	}
	if (m.n_items <= 64) /* the uniqueness check above is quadratic */
		check(&m);
	mlpackage_manifest_release(&m);
	return 0;
}
