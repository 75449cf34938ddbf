/* test_inventory: finding the parts of a conversion's output folder by name
 * (anemll/inventory.h), as metagen and the smoketest's --dir do. The facts
 * read from the packages are covered by tests/cli/metagen.sh. */
#include "anemll/inventory.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static char *folder(const char *const *names, size_t n)
{
	char tmpl[] = "/tmp/test_inventory_XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	for (size_t i = 0; i < n; i++) {
		char *p = path_join(tmpl, names[i]);
		CHECK(mkdir_p(p) == 0);
		free(p);
	}
	return xstrdup(tmpl);
}

static const char *const NAMES[] = {
	"llama_lm_head_lut6.mlpackage", "llama_lm_head_lut6.mlmodelc", "llama_embeddings.mlmodelc",
	"llama_FFN_PF_lut4_chunk_02of02.mlpackage", "llama_FFN_PF_lut4_chunk_01of02.mlpackage",
	"llama_FFN_PF_lut4_chunk_01of02_rot.mlpackage", "llama_FFN_rotate_lut4_chunk_01of02.mlpackage",
	"my_model_monolithic_full.mlpackage", "llama_FFN_lut4.mlpackage" /* not chunked: no part */,
	"llama_embeddings_lut9.mlpackage" /* no such LUT */, "llama_FFN_PF_chunk_03of02.mlpackage", "meta.yaml",
	"llama_lm_head.txt",
};

static void test_names(void)
{
	char *dir = folder(NAMES, sizeof NAMES / sizeof NAMES[0]);
	inventory inv;
	CHECK(inventory_list(&inv, dir, "llama", INV_PKG | INV_MODELC) == 0);
	CHECK_EQ_INT(inv.n, 6);
	for (size_t i = 1; i < inv.n; i++) /* sorted: choices do not depend on readdir order */
		CHECK(strcmp(inv.v[i - 1].base, inv.v[i].base) < 0);
	const inv_file *h = inventory_find(&inv, "lm_head", 6, 0, 0, 0);
	CHECK(h && h->exts == (INV_PKG | INV_MODELC) && strcmp(h->prefix, "llama") == 0);
	const inv_file *e = inventory_find(&inv, "embeddings", 0, 0, 0, 0);
	CHECK(e && e->exts == INV_MODELC);
	CHECK(inventory_find(&inv, "FFN_PF", 4, 2, 2, 0) != NULL);
	const inv_file *r = inventory_find(&inv, "FFN_PF", 4, 1, 2, 1);
	CHECK(r && strcmp(r->base, "llama_FFN_PF_lut4_chunk_01of02_rot") == 0);
	CHECK(inventory_find(&inv, "FFN_rotate", 4, 1, 2, 0) != NULL);
	CHECK(inventory_find(&inv, "monolithic_full", 0, 0, 0, 0) == NULL); /* another prefix */
	inventory_release(&inv);
	rm_rf(dir);
	free(dir);
}

/* Without a prefix every part is listed, each with the prefix that leaves a
 * part name; asking for packages leaves out what is only compiled. */
static void test_any_prefix_packages(void)
{
	char *dir = folder(NAMES, sizeof NAMES / sizeof NAMES[0]);
	inventory inv;
	CHECK(inventory_list(&inv, dir, NULL, INV_PKG) == 0);
	CHECK_EQ_INT(inv.n, 6);
	CHECK(inventory_find(&inv, "embeddings", 0, 0, 0, 0) == NULL);
	const inv_file *m = inventory_find(&inv, "monolithic_full", 0, 0, 0, 0);
	CHECK(m && strcmp(m->prefix, "my_model") == 0 && m->exts == INV_PKG);
	const inv_file *h = inventory_find(&inv, "lm_head", 6, 0, 0, 0);
	CHECK(h && h->exts == INV_PKG);
	inventory_release(&inv);
	CHECK(inventory_list(&inv, "/nonexistent/dir", NULL, INV_PKG) != 0 && strstr(errmsg(), "/nonexistent/dir"));
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	RUN(test_names);
	RUN(test_any_prefix_packages);
	return test_finish();
}
