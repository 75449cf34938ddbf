/* test_mlpackage.c: .mlpackage writing (atomic, deterministic), reading
 * (ours and coremltools'), and rejection of malformed manifests.
 *
 * Everything happens in a scratch directory under $TMPDIR. The interruption
 * test forks a child that starts writing a package over an existing one and
 * blocks; the parent kills it with SIGINT and checks that the old package is
 * intact and no temporary directory is left.
 */
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "coreml/mlpackage.h"
#include "test.h"

#include <dirent.h>
#include <glob.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256]; /* scratch directory */

static char *scratch(const char *name)
{
	return path_join(g_dir, name);
}

static const char g_model[] = "\x08\x09\x12\x04" "fake model protobuf";

/* Write a package with two blobs; blob offsets go to offs[2] if not NULL. */
static int write_package(const char *path, const char *model, size_t n, uint64_t *offs)
{
	mlpackage_writer w;
	if (mlpackage_begin(&w, path) != 0)
		return -1;
	uint16_t h[7] = {1, 2, 3, 4, 5, 6, 7};
	uint8_t u6[5] = {63, 1, 2, 3, 40};
	uint64_t o[2];
	if (blob_append_tensor(w.weights, MIL_FP16, h, 7, &o[0]) != 0 ||
	    blob_append_unpacked(w.weights, MIL_UINT6, u6, 5, &o[1]) != 0) {
		mlpackage_abort(&w);
		return -1;
	}
	if (offs)
		memcpy(offs, o, sizeof o);
	return mlpackage_commit(&w, model, n);
}

/* Entries of dir whose names contain ".tmp." or ".old.": leftovers. */
static int leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strstr(e->d_name, ".tmp.") || strstr(e->d_name, ".old."))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* "relpath size sha256\n" for every file under dir, sorted; caller frees. */
static void listing_add(const char *root, const char *rel, char ***lines, size_t *n, size_t *cap)
{
	char *full = rel[0] ? path_join(root, rel) : xstrdup(root);
	DIR *d = opendir(full);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *sub = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		char *p = path_join(root, sub);
		if (is_dir(p)) {
			listing_add(root, sub, lines, n, cap);
		} else {
			uint8_t h[32];
			char hex[65];
			struct stat st;
			stat(p, &st);
			if (sha256_file(p, h) != 0)
				memset(h, 0, sizeof h);
			sha256_hex(h, hex);
			GROW(*lines, *cap, *n + 1);
			(*lines)[(*n)++] = xasprintf("%s %lld %s\n", sub, (long long)st.st_size, hex);
		}
		free(p);
		free(sub);
	}
	if (d)
		closedir(d);
	free(full);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *tree_listing(const char *dir)
{
	char **lines = NULL;
	size_t n = 0, cap = 0, len = 1;
	listing_add(dir, "", &lines, &n, &cap);
	qsort(lines, n, sizeof *lines, cmp_str);
	for (size_t i = 0; i < n; i++)
		len += strlen(lines[i]);
	char *out = xmalloc(len);
	out[0] = 0;
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		free(lines[i]);
	}
	free(lines);
	return out;
}

static int is_upper_uuid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	}
	return s[14] == '8' && strchr("89AB", s[19]) != NULL;
}

/* ------------------------------------------------------------------ */
/* Writing and reading our packages                                    */

static void test_write_and_read_back(void)
{
	char *path = scratch("a.mlpackage");
	uint64_t offs[2];
	CHECKF(write_package(path, g_model, sizeof g_model, offs) == 0, "%s", errmsg());
	CHECK_EQ_INT(offs[0], 64);
	mlpackage pkg;
	CHECKF(mlpackage_open(path, &pkg) == 0, "%s", errmsg());
	if (!pkg.path)
		return;
	CHECK(pkg.model_size == sizeof g_model && memcmp(pkg.model, g_model, sizeof g_model) == 0);
	CHECK_STR(pkg.root->name, "model.mlmodel");
	CHECK_STR(pkg.root->path, "com.apple.CoreML/model.mlmodel");
	CHECK_STR(pkg.root->description, "CoreML Model Specification");
	CHECK(pkg.weights_item && streq(pkg.weights_item->path, "com.apple.CoreML/weights"));
	CHECK_EQ_INT(pkg.manifest.n_items, 2);
	CHECK(is_upper_uuid(pkg.root->id) && is_upper_uuid(pkg.weights_item->id));
	CHECK(pkg.weights && blob_reader_count(pkg.weights) == 2);
	blob_reader *r = mlpackage_blob_file(&pkg, MLPACKAGE_WEIGHTS_REF);
	CHECK(r == pkg.weights);
	CHECK(mlpackage_blob_file(&pkg, "@model_path/./weights//weight.bin") == pkg.weights);
	const blob_info *b = r ? blob_reader_find(r, offs[1]) : NULL;
	CHECK(b && b->dtype == BLOB_UINT6 && b->n_elements == 5 && b->nbytes == 4);
	if (b) {
		uint8_t v[5];
		blob_unpack_bits(blob_reader_data(r, b), 5, 6, v);
		CHECK(v[0] == 63 && v[1] == 1 && v[4] == 40);
	}
	/* The manifest is the exact text, 617 bytes like coremltools'. */
	char *mf = path_join(path, "Manifest.json"), *text;
	size_t n;
	CHECK(read_file(mf, FS_MAX_MODEL, &text, &n) == 0);
	char *want = mlpackage_manifest_format(pkg.root->id, pkg.weights_item->id);
	CHECK_EQ_INT(n, 617);
	CHECK_STR(text, want);
	free(want), free(text), free(mf);
	mlpackage_close(&pkg);
	mlpackage_close(&pkg); /* twice is harmless */
	CHECK_EQ_INT(leftovers(g_dir), 0);
	free(path);
}

static void test_identical_input_identical_package(void)
{
	char *a = scratch("same1.mlpackage"), *b = scratch("same2.mlpackage");
	CHECK(write_package(a, g_model, sizeof g_model, NULL) == 0);
	CHECK(write_package(b, g_model, sizeof g_model, NULL) == 0);
	char *la = tree_listing(a), *lb = tree_listing(b);
	CHECK(strstr(la, "Manifest.json 617 ") != NULL);
	CHECK(strstr(la, "Data/com.apple.CoreML/weights/weight.bin ") != NULL);
	CHECK(strstr(la, "Data/com.apple.CoreML/model.mlmodel ") != NULL);
	CHECKF(strcmp(la, lb) == 0, "trees differ:\n%s---\n%s", la, lb);
	/* Other model bytes give other identifiers. */
	char *c = scratch("other.mlpackage");
	CHECK(write_package(c, "other", 5, NULL) == 0);
	char *lc = tree_listing(c);
	CHECK(strcmp(la, lc) != 0);
	free(la), free(lb), free(lc), free(a), free(b), free(c);
}

static void test_overwrite_existing(void)
{
	char *path = scratch("over.mlpackage");
	CHECK(write_package(path, "one", 3, NULL) == 0);
	CHECK(write_package(path, "two!", 4, NULL) == 0);
	mlpackage pkg;
	CHECK(mlpackage_open(path, &pkg) == 0);
	CHECK(pkg.model_size == 4 && memcmp(pkg.model, "two!", 4) == 0);
	mlpackage_close(&pkg);
	CHECK_EQ_INT(leftovers(g_dir), 0);
	/* A plain file under the final name is replaced too. */
	char *f = scratch("file.mlpackage");
	CHECK(write_file_atomic(f, "x", 1) == 0);
	CHECK(write_package(f, "three", 5, NULL) == 0);
	CHECK(is_dir(f));
	free(f);
	free(path);
}

static void test_abort_keeps_old_package(void)
{
	char *path = scratch("keep.mlpackage");
	CHECK(write_package(path, "old", 3, NULL) == 0);
	char *before = tree_listing(path);
	mlpackage_writer w;
	CHECK(mlpackage_begin(&w, path) == 0);
	uint64_t off;
	CHECK(blob_append_tensor(w.weights, MIL_UINT8, "0123456789", 10, &off) == 0);
	CHECK_EQ_INT(leftovers(g_dir), 1); /* the temporary directory, while building */
	mlpackage_abort(&w);
	mlpackage_abort(&w); /* twice is harmless */
	char *after = tree_listing(path);
	CHECK_STR(after, before);
	CHECK_EQ_INT(leftovers(g_dir), 0);
	free(before), free(after), free(path);
}

static void test_package_without_blobs(void)
{
	char *path = scratch("noblobs.mlpackage");
	mlpackage_writer w;
	CHECK(mlpackage_begin(&w, path) == 0);
	CHECK(mlpackage_commit(&w, g_model, sizeof g_model) == 0);
	char *bin = path_join(path, "Data/com.apple.CoreML/weights/weight.bin"), *f;
	size_t n;
	CHECK(read_file(bin, FS_MAX_MODEL, &f, &n) == 0);
	CHECK_EQ_INT(n, 64);
	free(f);
	mlpackage pkg;
	CHECK(mlpackage_open(path, &pkg) == 0);
	CHECK(pkg.weights && blob_reader_count(pkg.weights) == 0);
	mlpackage_close(&pkg);
	/* coremltools' style: a weights directory without weight.bin. */
	CHECK(unlink(bin) == 0);
	CHECKF(mlpackage_open(path, &pkg) == 0, "%s", errmsg());
	CHECK(pkg.weights_item != NULL && pkg.weights == NULL);
	CHECK(mlpackage_blob_file(&pkg, MLPACKAGE_WEIGHTS_REF) == NULL);
	CHECK(strstr(errmsg(), "does not exist") != NULL);
	mlpackage_close(&pkg);
	free(bin), free(path);
}

static void test_begin_rejects_bad_names(void)
{
	mlpackage_writer w;
	char *p = scratch("model.bin");
	CHECK(mlpackage_begin(&w, p) == -1);
	CHECK(strstr(errmsg(), ".mlpackage") != NULL);
	free(p);
	p = scratch(".mlpackage");
	CHECK(mlpackage_begin(&w, p) == -1);
	free(p);
	CHECK(mlpackage_begin(&w, "/nonexistent-dir/x/y.mlpackage") == -1);
	mlpackage_abort(&w);
	CHECK_EQ_INT(leftovers(g_dir), 0);
}

/* A child writing over an existing package is interrupted by SIGINT. */
static void test_sigint_leaves_no_partial_package(void)
{
	char *path = scratch("killed.mlpackage");
	CHECK(write_package(path, "old", 3, NULL) == 0);
	char *before = tree_listing(path);
	int ready[2], hold[2];
	CHECK(pipe(ready) == 0 && pipe(hold) == 0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		mlpackage_writer w;
		if (mlpackage_begin(&w, path) != 0)
			_exit(2);
		for (int i = 0; i < 3; i++)
			if (blob_append_tensor(w.weights, MIL_UINT8, "0123456789abcdef", 16, NULL) != 0)
				_exit(2);
		char c = 'r';
		if (write(ready[1], &c, 1) != 1)
			_exit(2);
		while (read(hold[0], &c, 1) < 0) /* block until killed */
			;
		_exit(3);
	}
	close(ready[1]);
	close(hold[0]);
	char c;
	CHECK(pid > 0 && read(ready[0], &c, 1) == 1);
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)pid);
	CHECK(is_dir(tmp)); /* the child was building here */
	kill(pid, SIGINT);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "child status 0x%x", status);
	CHECK(!path_exists(tmp));
	CHECK_EQ_INT(leftovers(g_dir), 0);
	char *after = tree_listing(path);
	CHECK_STR(after, before);
	close(ready[0]);
	close(hold[1]);
	free(before), free(after), free(tmp), free(path);
}

/* ------------------------------------------------------------------ */
/* Reference packages written by coremltools                           */

static void test_reference_packages(void)
{
	const char *shared = test_shared();
	if (!shared)
		SKIP("no shared reference material");
	char *pattern = xasprintf("%s/reference/*/packages/*.mlpackage", shared);
	glob_t g;
	int found = glob(pattern, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
	free(pattern);
	CHECK(found > 0);
	for (int i = 0; i < found; i++) {
		mlpackage pkg;
		const char *p = g.gl_pathv[i];
		CHECKF(mlpackage_open(p, &pkg) == 0, "%s", errmsg());
		if (!pkg.path)
			continue;
		struct stat st;
		char *model = path_join(p, "Data/com.apple.CoreML/model.mlmodel");
		CHECK(stat(model, &st) == 0 && (size_t)st.st_size == pkg.model_size);
		CHECK(pkg.model_size > 0 && pkg.model[0] == 0x08); /* field 1 varint: specificationVersion */
		CHECK(pkg.weights && blob_reader_count(pkg.weights) > 0);
		CHECK(mlpackage_blob_file(&pkg, MLPACKAGE_WEIGHTS_REF) == pkg.weights);
		/* Our formatter reproduces coremltools' manifest byte for byte. */
		char *mf = path_join(p, "Manifest.json"), *text;
		size_t n;
		CHECK(read_file(mf, FS_MAX_MODEL, &text, &n) == 0);
		char *ours = mlpackage_manifest_format(pkg.root->id, pkg.weights_item->id);
		CHECKF(strcmp(ours, text) == 0, "%s: manifest text differs", p);
		free(ours), free(text), free(mf), free(model);
		mlpackage_close(&pkg);
	}
	if (found)
		globfree(&g);
}

/* ------------------------------------------------------------------ */
/* Malformed packages                                                  */

static const char *const g_ok_manifest =
	"{\"fileFormatVersion\": \"1.0.0\", \"itemInfoEntries\": {"
	"\"M\": {\"author\": \"a\", \"description\": \"d\", \"name\": \"model.mlmodel\", \"path\": \"com.apple.CoreML/model.mlmodel\"},"
	"\"W\": {\"author\": \"a\", \"description\": \"d\", \"name\": \"weights\", \"path\": \"com.apple.CoreML/weights\"}},"
	"\"rootModelIdentifier\": \"M\"}";

/* g_ok_manifest with `from` replaced by `to`; caller frees. */
static char *edit(const char *from, const char *to)
{
	const char *at = strstr(g_ok_manifest, from);
	if (!at)
		BUG("'%s' not in the manifest", from);
	return xasprintf("%.*s%s%s", (int)(at - g_ok_manifest), g_ok_manifest, to, at + strlen(from));
}

static void expect_bad_package(const char *path, const char *manifest, const char *want)
{
	char *mf = path_join(path, "Manifest.json");
	if (write_file_atomic(mf, manifest, strlen(manifest)) != 0)
		BUG("%s", errmsg());
	free(mf);
	mlpackage pkg;
	int rc = mlpackage_open(path, &pkg);
	CHECKF(rc == -1, "accepted: %s", manifest);
	if (rc == 0) {
		mlpackage_close(&pkg);
		return;
	}
	const char *m = errmsg();
	CHECKF(strstr(m, path) && strstr(m, want) && !strchr(m, '\n'),
	       "message \"%s\" lacks \"%s\"", m, want);
}

static void test_malformed_manifests(void)
{
	char *path = scratch("bad.mlpackage");
	CHECK(write_package(path, g_model, sizeof g_model, NULL) == 0);
	mlpackage pkg;
	char *m;
	expect_bad_package(path, "{", "not valid JSON");
	/* The template that the cases below edit is itself fine. */
	char *mf = path_join(path, "Manifest.json");
	CHECK(write_file_atomic(mf, g_ok_manifest, strlen(g_ok_manifest)) == 0);
	CHECKF(mlpackage_open(path, &pkg) == 0, "%s", errmsg());
	mlpackage_close(&pkg);

	expect_bad_package(path, "[1, 2]", "not a JSON object");
	expect_bad_package(path, "{\"fileFormatVersion\": \"1.0.0\", \"itemInfoEntries\": [], \"rootModelIdentifier\": \"M\"}",
			   "no \"itemInfoEntries\" object");
	/* g_ok_manifest with `from` replaced by `to` fails with `want`. */
	static const struct {
		const char *from, *to, *want;
	} edits[] = {
		{"\"fileFormatVersion\": \"1.0.0\", ", "", "no \"fileFormatVersion\""},
		{"1.0.0", "2.0.0", "fileFormatVersion \"2.0.0\""},
		{"1.0.0", "1.0", "fileFormatVersion \"1.0\""},
		{"\"1.0.0\"", "100", "no \"fileFormatVersion\" string"},
		{",\"rootModelIdentifier\": \"M\"", "", "no \"rootModelIdentifier\""},
		{"\"rootModelIdentifier\": \"M\"", "\"rootModelIdentifier\": \"X\"", "rootModelIdentifier \"X\" names no item"},
		{"\"author\": \"a\", ", "", "item \"M\" has no \"author\" string"},
		{"\"name\": \"weights\"", "\"name\": 7", "item \"W\" has no \"name\" string"},
		{"com.apple.CoreML/weights", "com.apple.CoreML/../../etc", "leaves the package"},
		{"com.apple.CoreML/weights", "..", "leaves the package"},
		{"com.apple.CoreML/weights", "/etc", "is absolute"},
		{"com.apple.CoreML/weights", "", "is empty"},
		{"com.apple.CoreML/weights", "com.apple.CoreML/nothing", "'Data/com.apple.CoreML/nothing' does not exist"},
		{"\"W\": {", "\"M\": {", "item \"M\" appears twice"},
		{"\"W\": {\"author\": \"a\", \"description\": \"d\", \"name\": \"weights\", \"path\": \"com.apple.CoreML/weights\"}",
		 "\"W\": 3", "item \"W\" is not an object"},
		{"com.apple.CoreML/model.mlmodel", "com.apple.CoreML", "is a directory"},
	};
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		expect_bad_package(path, m = edit(edits[i].from, edits[i].to), edits[i].want);
		free(m);
	}

	/* A symlink that leads out of Data/. */
	char *link = path_join(path, "Data/escape");
	CHECK(symlink("/etc", link) == 0);
	expect_bad_package(path, m = edit("com.apple.CoreML/weights", "escape"), "leads outside Data/");
	free(m);
	unlink(link);
	free(link);

	/* Missing Manifest.json, missing package, a file instead of a directory. */
	CHECK(unlink(mf) == 0);
	CHECK(mlpackage_open(path, &pkg) == -1 && strstr(errmsg(), "no Manifest.json"));
	CHECK(mlpackage_open("no/such.mlpackage", &pkg) == -1 && strstr(errmsg(), "does not exist"));
	free(mf);
	mf = scratch("plain.mlpackage");
	CHECK(write_file_atomic(mf, "x", 1) == 0);
	CHECK(mlpackage_open(mf, &pkg) == -1 && strstr(errmsg(), "not a directory"));
	free(mf);
	free(path);
}

static void test_blob_file_names(void)
{
	char *path = scratch("names.mlpackage");
	CHECK(write_package(path, g_model, sizeof g_model, NULL) == 0);
	mlpackage pkg;
	CHECK(mlpackage_open(path, &pkg) == 0);
	CHECK(mlpackage_blob_file(&pkg, "weights/weight.bin") == NULL);
	CHECK(strstr(errmsg(), "does not start with @model_path/") != NULL);
	CHECK(mlpackage_blob_file(&pkg, "@model_path/../Manifest.json") == NULL);
	CHECK(strstr(errmsg(), "leaves the package") != NULL);
	CHECK(mlpackage_blob_file(&pkg, "@model_path//etc/passwd") == NULL);
	CHECK(mlpackage_blob_file(&pkg, "@model_path/weights/other.bin") == NULL);
	CHECK(strstr(errmsg(), "does not exist") != NULL);
	/* A second weight file beside the first is opened and kept. */
	char *other = path_join(path, "Data/com.apple.CoreML/weights/other.bin");
	blob_writer *bw = blob_writer_open(other);
	CHECK(blob_writer_close(bw, NULL) == 0);
	blob_reader *r = mlpackage_blob_file(&pkg, "@model_path/weights/other.bin");
	CHECK(r && r != pkg.weights && blob_reader_count(r) == 0);
	CHECK(mlpackage_blob_file(&pkg, "@model_path/weights/other.bin") == r);
	/* A weight file that is not blob storage. */
	char *model_ref = "@model_path/model.mlmodel";
	CHECK(mlpackage_blob_file(&pkg, model_ref) == NULL);
	CHECK(strstr(errmsg(), "model.mlmodel") != NULL);
	mlpackage_close(&pkg);
	free(other), free(path);
}

static void test_manifest_parse_in_memory(void)
{
	mlpackage_manifest m;
	CHECK(mlpackage_manifest_parse(g_ok_manifest, strlen(g_ok_manifest), "t", &m) == 0);
	CHECK_EQ_INT(m.n_items, 2);
	CHECK_STR(m.items[m.root].id, "M");
	CHECK_STR(m.version, "1.0.0");
	mlpackage_manifest_release(&m);
	/* Not NUL-terminated: only n bytes are read. */
	char buf[8] = {'{', '}', 'x', 'x', 'x', 'x', 'x', 'x'};
	CHECK(mlpackage_manifest_parse(buf, 2, "t", &m) == -1);
	CHECK_STR(errmsg(), "t: no \"fileFormatVersion\" string");
	CHECK(mlpackage_manifest_parse(buf, 0, "t", &m) == -1);
	mlpackage_manifest_release(&m);
	/* Our own format parses back to itself; a later 1.x version is accepted. */
	char *text = mlpackage_manifest_format("B-MODEL", "A-WEIGHTS");
	CHECK(strstr(text, "A-WEIGHTS") < strstr(text, "B-MODEL"));
	CHECK(mlpackage_manifest_parse(text, strlen(text), "t", &m) == 0);
	CHECK_STR(m.items[m.root].name, "model.mlmodel");
	CHECK_STR(m.items[m.root].id, "B-MODEL");
	mlpackage_manifest_release(&m);
	free(text);
	char *v = edit("1.0.0", "1.12.3");
	CHECK(mlpackage_manifest_parse(v, strlen(v), "t", &m) == 0);
	mlpackage_manifest_release(&m);
	free(v);
	/* Identifiers: deterministic, distinct per name and content. */
	uint8_t d[32] = {1}, e[32] = {2};
	char a[37], b[37], c[37], a2[37];
	mlpackage_item_id("model.mlmodel", d, a);
	mlpackage_item_id("model.mlmodel", d, a2);
	mlpackage_item_id("weights", d, b);
	mlpackage_item_id("model.mlmodel", e, c);
	CHECK(is_upper_uuid(a) && is_upper_uuid(b) && is_upper_uuid(c));
	CHECK(strcmp(a, a2) == 0 && strcmp(a, b) != 0 && strcmp(a, c) != 0);
}

int main(void)
{
	snprintf(g_dir, sizeof g_dir, "%s/anemake-test-mlpackage-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(g_dir))
		die("cannot create a scratch directory:");
	RUN(test_write_and_read_back);
	RUN(test_identical_input_identical_package);
	RUN(test_overwrite_existing);
	RUN(test_abort_keeps_old_package);
	RUN(test_package_without_blobs);
	RUN(test_begin_rejects_bad_names);
	RUN(test_sigint_leaves_no_partial_package);
	RUN(test_reference_packages);
	RUN(test_malformed_manifests);
	RUN(test_blob_file_names);
	RUN(test_manifest_parse_in_memory);
	rm_rf(g_dir);
	return test_finish();
}
