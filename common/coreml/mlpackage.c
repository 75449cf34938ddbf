/* mlpackage.c: write .mlpackage directories atomically and read them back.
 *
 * The layout and Manifest.json are documented at the top of mlpackage.h.
 * Writing: the package is built under "<final>.tmp.<pid>/" (fsutil removes it
 * on exit or a fatal signal), weight.bin streams blobs while the caller
 * encodes the model, and commit writes model.mlmodel and Manifest.json, then
 * swaps the directory into place. Reading: Manifest.json is parsed with
 * cJSON and checked before any path from it touches the file system; every
 * item must exist inside Data/ (symlinks included), and weight files are
 * opened with the validating blob reader.
 */
#include "coreml/mlpackage.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>     /* PATH_MAX */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>     /* realpath, qsort */
#include <string.h>
#include <unistd.h>     /* fsync */

#define AUTHOR "com.apple.CoreML"
#define MODEL_NAME "model.mlmodel"
#define WEIGHTS_NAME "weights"
#define WEIGHT_FILE "weight.bin"
#define MODEL_PATH_PREFIX "@model_path/"
/* Paths inside the package directory. */
#define MODEL_REL "Data/" AUTHOR "/" MODEL_NAME
#define WEIGHTS_DIR_REL "Data/" AUTHOR "/" WEIGHTS_NAME
#define WEIGHT_BIN_REL WEIGHTS_DIR_REL "/" WEIGHT_FILE

struct mlpackage_blobfile {
	char *rel;          /* normalized path relative to Data/ */
	blob_reader *r;
};

/* errf() for messages that quote strings from the package: control
 * characters (a "\n" inside a JSON key, say) become '?', so the error stays
 * one line whatever the manifest holds. */
static int bad(const char *fmt, ...) PRINTF_LIKE(1, 2);

static int bad(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	for (char *c = buf; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return errf("%s", buf);
}

/* ------------------------------------------------------------------ */
/* Relative paths from the manifest or the model                       */

/* Why a path from the package cannot be used as relative to Data/, or NULL. */
static const char *rel_path_problem(const char *p)
{
	if (!*p)
		return "is empty";
	if (*p == '/')
		return "is absolute";
	for (const char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return "has control characters";
	for (const char *s = p; *s;) {
		size_t len = strcspn(s, "/");
		if (len == 2 && s[0] == '.' && s[1] == '.')
			return "leaves the package (\"..\")";
		s += len;
		s += *s == '/';
	}
	return NULL;
}

/* Drop empty and "." components so equal paths compare equal; caller frees. */
static char *normalize_rel(const char *p)
{
	char *out = xmalloc(strlen(p) + 1);
	size_t n = 0;
	for (const char *s = p; *s;) {
		size_t len = strcspn(s, "/");
		if (len && !(len == 1 && *s == '.')) {
			if (n)
				out[n++] = '/';
			memcpy(out + n, s, len);
			n += len;
		}
		s += len;
		s += *s == '/';
	}
	out[n] = 0;
	return out;
}

/* ------------------------------------------------------------------ */
/* Manifest.json                                                       */

/* "1.<digits>.<digits>": the reader splits major.minor.patch; only major 1 exists. */
static int version_ok(const char *v)
{
	if (v[0] != '1' || v[1] != '.')
		return 0;
	const char *p = v + 2;
	for (int part = 0; part < 2; part++) {
		const char *start = p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == start || *p != (part == 0 ? '.' : '\0'))
			return 0;
		p++;
	}
	return 1;
}

/* A copy of obj[key] when it is a string, else NULL. */
static char *string_field(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) && v->valuestring ? xstrdup(v->valuestring) : NULL;
}

static int parse_item(const cJSON *e, const char *what, mlpackage_item *it)
{
	static const char *const keys[] = {"path", "name", "author", "description"};
	it->id = xstrdup(e->string);
	if (!cJSON_IsObject(e))
		return bad("%s: item \"%s\" is not an object", what, it->id);
	char **fields[] = {&it->path, &it->name, &it->author, &it->description};
	for (int k = 0; k < 4; k++)
		if (!(*fields[k] = string_field(e, keys[k])))
			return bad("%s: item \"%s\" has no \"%s\" string", what, it->id, keys[k]);
	const char *why = rel_path_problem(it->path);
	if (why)
		return bad("%s: item \"%s\": path \"%s\" %s", what, it->id, it->path, why);
	return 0;
}

static int cmp_item_id(const void *a, const void *b)
{
	return strcmp((*(const mlpackage_item *const *)a)->id, (*(const mlpackage_item *const *)b)->id);
}

/* Two entries with one key would make rootModelIdentifier ambiguous. */
static int check_unique_ids(const mlpackage_manifest *m, const char *what)
{
	const mlpackage_item **v = xmalloc(xmul(m->n_items, sizeof *v));
	for (size_t i = 0; i < m->n_items; i++)
		v[i] = &m->items[i];
	qsort(v, m->n_items, sizeof *v, cmp_item_id);
	int rc = 0;
	for (size_t i = 1; i < m->n_items && rc == 0; i++)
		if (strcmp(v[i - 1]->id, v[i]->id) == 0)
			rc = bad("%s: item \"%s\" appears twice", what, v[i]->id);
	free(v);
	return rc;
}

static int parse_items(const cJSON *entries, const char *what, mlpackage_manifest *m)
{
	if (!cJSON_IsObject(entries))
		return bad("%s: no \"itemInfoEntries\" object", what);
	size_t n = 0;
	for (const cJSON *e = entries->child; e; e = e->next)
		n++;
	m->items = xcalloc(n, sizeof *m->items);
	for (const cJSON *e = entries->child; e; e = e->next)
		if (parse_item(e, what, &m->items[m->n_items++]) != 0)
			return -1;
	return check_unique_ids(m, what);
}

static int parse_manifest_root(const cJSON *root, const char *what, mlpackage_manifest *m)
{
	if (!cJSON_IsObject(root))
		return bad("%s: not a JSON object", what);
	if (!(m->version = string_field(root, "fileFormatVersion")))
		return bad("%s: no \"fileFormatVersion\" string", what);
	if (!version_ok(m->version))
		return bad("%s: fileFormatVersion \"%s\" is not 1.<minor>.<patch>", what, m->version);
	if (parse_items(cJSON_GetObjectItemCaseSensitive(root, "itemInfoEntries"), what, m) != 0)
		return -1;
	char *id = string_field(root, "rootModelIdentifier");
	if (!id)
		return bad("%s: no \"rootModelIdentifier\" string", what);
	for (m->root = 0; m->root < m->n_items; m->root++)
		if (strcmp(m->items[m->root].id, id) == 0)
			break;
	int rc = 0;
	if (m->root == m->n_items)
		rc = bad("%s: rootModelIdentifier \"%s\" names no item", what, id);
	free(id);
	return rc;
}

int mlpackage_manifest_parse(const char *text, size_t n, const char *what, mlpackage_manifest *m)
{
	memset(m, 0, sizeof *m);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
	if (!root) {
		/* cJSON reports where it stopped; give that as a byte offset. */
		size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : n;
		return bad("%s: not valid JSON (at byte %zu)", what, at);
	}
	int rc = parse_manifest_root(root, what, m);
	cJSON_Delete(root);
	if (rc != 0)
		mlpackage_manifest_release(m);
	return rc;
}

void mlpackage_manifest_release(mlpackage_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_items; i++) {
		mlpackage_item *it = &m->items[i];
		free(it->id), free(it->path), free(it->name), free(it->author), free(it->description);
	}
	free(m->items);
	free(m->version);
	memset(m, 0, sizeof *m);
}

/* One item of mlpackage_manifest_format(); `leaf` is the name under com.apple.CoreML/. */
static char *format_item(const char *id, const char *description, const char *name)
{
	return xasprintf("        \"%s\": {\n"
			 "            \"author\": \"" AUTHOR "\",\n"
			 "            \"description\": \"%s\",\n"
			 "            \"name\": \"%s\",\n"
			 "            \"path\": \"" AUTHOR "/%s\"\n"
			 "        }",
			 id, description, name, name);
}

char *mlpackage_manifest_format(const char *model_id, const char *weights_id)
{
	int c = strcmp(model_id, weights_id);
	ASSERT(c != 0);
	char *model = format_item(model_id, "CoreML Model Specification", MODEL_NAME);
	char *weights = format_item(weights_id, "CoreML Model Weights", WEIGHTS_NAME);
	/* Keys are sorted bytewise, identifiers included (nlohmann's std::map). */
	char *text = xasprintf("{\n"
			       "    \"fileFormatVersion\": \"1.0.0\",\n"
			       "    \"itemInfoEntries\": {\n"
			       "%s,\n"
			       "%s\n"
			       "    },\n"
			       "    \"rootModelIdentifier\": \"%s\"\n"
			       "}\n",
			       c < 0 ? model : weights, c < 0 ? weights : model, model_id);
	free(model);
	free(weights);
	return text;
}

void mlpackage_item_id(const char *name, const uint8_t digest[32], char id[37])
{
	static const char domain[] = "anemake.mlpackage"; /* with its NUL */
	uint8_t h[32];
	sha256_ctx *c = sha256_new();
	sha256_update(c, domain, sizeof domain);
	sha256_update(c, name, strlen(name) + 1);
	sha256_update(c, digest, 32);
	sha256_final(c, h);
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x80); /* version 8 (RFC 9562, custom) */
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80); /* variant 10 */
	char *p = id;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		p += snprintf(p, 3, "%02X", h[i]);
	}
	*p = 0;
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

static void writer_release(mlpackage_writer *w)
{
	free(w->final_path);
	free(w->tmp);
	w->final_path = w->tmp = NULL;
	w->weights = NULL;
}

int mlpackage_begin(mlpackage_writer *w, const char *final_path)
{
	memset(w, 0, sizeof *w);
	size_t n = strlen(final_path);
	while (n > 1 && final_path[n - 1] == '/')
		n--;
	w->final_path = xstrndup(final_path, n);
	char *base = path_basename(w->final_path);
	int named_ok = has_suffix(base, ".mlpackage") && strcmp(base, ".mlpackage") != 0;
	free(base);
	if (!named_ok) {
		errf("package name '%s' does not end in .mlpackage", w->final_path);
		writer_release(w);
		return -1;
	}
	if (tmpdir_create(w->final_path, &w->tmp) != 0) {
		writer_release(w);
		return -1;
	}
	char *dir = path_join(w->tmp, WEIGHTS_DIR_REL);
	char *bin = path_join(w->tmp, WEIGHT_BIN_REL);
	if (mkdir_p(dir) == 0)
		w->weights = blob_writer_open(bin);
	free(dir);
	free(bin);
	if (!w->weights) {
		mlpackage_abort(w);
		return -1;
	}
	return 0;
}

/* Write tmp/rel completely and to stable storage before the directory swap. */
static int write_synced(const char *tmp, const char *rel, const void *data, size_t n)
{
	char *path = path_join(tmp, rel);
	FILE *f = fopen(path, "wb");
	int rc;
	if (!f)
		rc = errf("cannot create '%s':", path);
	else {
		rc = fwrite_all(f, data, n, path);
		if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
			rc = errf("cannot write '%s':", path);
		if (rc == 0)
			rc = fclose_checked(f, path);
		else
			fclose(f);
	}
	free(path);
	return rc;
}

static char *manifest_for(const void *model, size_t n, const uint8_t weights_digest[32])
{
	uint8_t md[32];
	char mid[37], wid[37];
	sha256(model, n, md);
	mlpackage_item_id(MODEL_NAME, md, mid);
	mlpackage_item_id(WEIGHTS_NAME, weights_digest, wid);
	return mlpackage_manifest_format(mid, wid);
}

int mlpackage_commit(mlpackage_writer *w, const void *model, size_t n)
{
	ASSERT(w->tmp && w->weights);
	uint8_t wd[32];
	blob_writer *bw = w->weights;
	w->weights = NULL;
	int rc = blob_writer_close(bw, wd);
	if (rc == 0)
		rc = write_synced(w->tmp, MODEL_REL, model, n);
	if (rc == 0) {
		char *text = manifest_for(model, n, wd);
		rc = write_synced(w->tmp, "Manifest.json", text, strlen(text));
		free(text);
	}
	if (rc == 0)
		rc = tmpdir_commit(w->tmp, w->final_path);
	if (rc != 0)
		tmpdir_abort(w->tmp);
	writer_release(w);
	return rc;
}

void mlpackage_abort(mlpackage_writer *w)
{
	if (!w)
		return;
	blob_writer_abort(w->weights);
	if (w->tmp)
		tmpdir_abort(w->tmp);
	writer_release(w);
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

/* Data/<rel> of the package must exist and, with symlinks resolved, stay
 * inside <package>/Data/. Returns the full path (caller frees) or NULL. */
static char *item_path(const mlpackage *pkg, const char *rel, const char *what)
{
	char *data = path_join(pkg->path, "Data");
	char *full = path_join(data, rel);
	char real_data[PATH_MAX], real_full[PATH_MAX];
	int ok = 0;
	if (!path_exists(full))
		bad("package '%s': %s 'Data/%s' does not exist", pkg->path, what, rel);
	else if (!realpath(data, real_data) || !realpath(full, real_full))
		bad("package '%s': cannot resolve 'Data/%s': %s", pkg->path, rel, strerror(errno));
	else if (strncmp(real_full, real_data, strlen(real_data)) != 0 ||
		 real_full[strlen(real_data)] != '/')
		bad("package '%s': %s 'Data/%s' leads outside Data/", pkg->path, what, rel);
	else
		ok = 1;
	free(data);
	if (!ok) {
		free(full);
		return NULL;
	}
	return full;
}

static int read_manifest(mlpackage *pkg)
{
	char *file = path_join(pkg->path, "Manifest.json");
	char *text = NULL, *what = NULL;
	size_t n = 0;
	int rc;
	if (!path_exists(file))
		rc = errf("package '%s': no Manifest.json", pkg->path);
	else if ((rc = read_file(file, FS_MAX_TEXT, &text, &n)) == 0) {
		what = xasprintf("package '%s': Manifest.json", pkg->path);
		rc = mlpackage_manifest_parse(text, n, what, &pkg->manifest);
	}
	free(file);
	free(text);
	free(what);
	return rc;
}

static int check_items(const mlpackage *pkg)
{
	for (size_t i = 0; i < pkg->manifest.n_items; i++) {
		const mlpackage_item *it = &pkg->manifest.items[i];
		char *what = xasprintf("item \"%s\"", it->id);
		char *full = item_path(pkg, it->path, what);
		free(what);
		if (!full)
			return -1;
		free(full);
	}
	return 0;
}

static int read_root_model(mlpackage *pkg)
{
	char *full = path_join(pkg->path, "Data");
	char *file = path_join(full, pkg->root->path);
	char *bytes = NULL;
	int rc;
	if (is_dir(file))
		rc = bad("package '%s': root model 'Data/%s' is a directory", pkg->path, pkg->root->path);
	else if ((rc = read_file(file, FS_MAX_MODEL, &bytes, &pkg->model_size)) == 0)
		pkg->model = (uint8_t *)bytes;
	free(full);
	free(file);
	return rc;
}

/* Open Data/<rel> as a weight file, or return the one already open. */
static blob_reader *open_blob_file(mlpackage *pkg, const char *rel)
{
	char *key = normalize_rel(rel);
	for (size_t i = 0; i < pkg->n_files; i++)
		if (strcmp(pkg->files[i].rel, key) == 0) {
			free(key);
			return pkg->files[i].r;
		}
	blob_reader *r = NULL;
	char *full = item_path(pkg, key, "weight file");
	if (full && blob_reader_open(full, &r) == 0) {
		GROW(pkg->files, pkg->cap_files, pkg->n_files + 1);
		pkg->files[pkg->n_files].rel = key;
		pkg->files[pkg->n_files++].r = r;
		key = NULL;
	}
	free(full);
	free(key);
	return r;
}

/* The weights item's weight.bin, when the package has one (see header, item 1). */
static int open_weights(mlpackage *pkg)
{
	for (size_t i = 0; i < pkg->manifest.n_items; i++)
		if (i != pkg->manifest.root && streq(pkg->manifest.items[i].name, WEIGHTS_NAME)) {
			pkg->weights_item = &pkg->manifest.items[i];
			break;
		}
	if (!pkg->weights_item)
		return 0;
	char *rel = xasprintf("%s/" WEIGHT_FILE, pkg->weights_item->path);
	char *full = path_join(pkg->path, "Data");
	char *file = path_join(full, rel);
	int rc = 0;
	if (path_exists(file) && !(pkg->weights = open_blob_file(pkg, rel)))
		rc = -1;
	free(rel);
	free(full);
	free(file);
	return rc;
}

int mlpackage_open(const char *path, mlpackage *pkg)
{
	memset(pkg, 0, sizeof *pkg);
	pkg->path = xstrdup(path);
	int rc;
	if (!path_exists(path))
		rc = errf("package '%s' does not exist", path);
	else if (!is_dir(path))
		rc = errf("package '%s' is not a directory", path);
	else if ((rc = read_manifest(pkg)) == 0 && (rc = check_items(pkg)) == 0) {
		pkg->root = &pkg->manifest.items[pkg->manifest.root];
		if ((rc = read_root_model(pkg)) == 0)
			rc = open_weights(pkg);
	}
	if (rc != 0)
		mlpackage_close(pkg);
	return rc;
}

void mlpackage_close(mlpackage *pkg)
{
	if (!pkg)
		return;
	for (size_t i = 0; i < pkg->n_files; i++) {
		free(pkg->files[i].rel);
		blob_reader_close(pkg->files[i].r);
	}
	free(pkg->files);
	free(pkg->model);
	mlpackage_manifest_release(&pkg->manifest);
	free(pkg->path);
	memset(pkg, 0, sizeof *pkg);
}

blob_reader *mlpackage_blob_file(mlpackage *pkg, const char *file_name)
{
	size_t np = strlen(MODEL_PATH_PREFIX);
	if (strncmp(file_name, MODEL_PATH_PREFIX, np) != 0) {
		bad("package '%s': weight file \"%s\" does not start with " MODEL_PATH_PREFIX,
		     pkg->path, file_name);
		return NULL;
	}
	const char *rest = file_name + np, *why = rel_path_problem(rest);
	if (why) {
		bad("package '%s': weight file \"%s\" %s", pkg->path, file_name, why);
		return NULL;
	}
	/* @model_path is the directory holding the root model. */
	const char *slash = strrchr(pkg->root->path, '/');
	char *rel = slash ? xasprintf("%.*s/%s", (int)(slash - pkg->root->path), pkg->root->path, rest)
			  : xstrdup(rest);
	blob_reader *r = open_blob_file(pkg, rel);
	free(rel);
	return r;
}
