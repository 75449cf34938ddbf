/* zipdir.c: see zipdir.h. */
#include "dist/zipdir.h"

#include "base/fsutil.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#define DOS_MIN ((time_t)315532800)  /* 1980-01-01 00:00:00 UTC */
#define DOS_MAX ((time_t)4354819198) /* 2107-12-31 23:59:58 UTC */

typedef struct entry {
	char *name;      /* in the archive: "<root>/<rel>", "/" after directories */
	char *path;      /* on disk */
	uint64_t size;   /* files only */
	int is_dir;
} entry;

typedef struct entries {
	entry *v;
	size_t n, cap;
} entries;

static void add_entry(entries *e, char *name, char *path, uint64_t size, int is_dir)
{
	grow((void **)&e->v, &e->cap, e->n + 1, sizeof *e->v);
	e->v[e->n++] = (entry){name, path, size, is_dir};
}

static void free_entries(entries *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i].name), free(e->v[i].path);
	free(e->v);
	*e = (entries){0};
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

/* Depth first; `name` is the archive name of `path` (a directory). */
static int walk(entries *e, const char *path, const char *name)
{
	DIR *d = opendir(path);
	if (!d)
		return errf("cannot read directory '%s':", path);
	add_entry(e, xasprintf("%s/", name), xstrdup(path), 0, 1);
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (errno = 0, de = readdir(d))) {
		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		char *p = path_join(path, de->d_name), *n = xasprintf("%s/%s", name, de->d_name);
		struct stat st;
		if (lstat(p, &st) != 0)
			rc = errf("cannot stat '%s':", p);
		else if (S_ISDIR(st.st_mode))
			rc = walk(e, p, n);
		else if (S_ISREG(st.st_mode)) {
			add_entry(e, n, p, (uint64_t)st.st_size, 0);
			continue; /* e owns p and n */
		} else
			rc = errf("'%s' is neither a regular file nor a directory: a compiled model holds only those", p);
		free(p), free(n);
	}
	if (rc == 0 && errno != 0)
		rc = errf("cannot read directory '%s':", path);
	closedir(d);
	return rc;
}

static int list_tree(const char *dir, entries *e)
{
	*e = (entries){0};
	char *root = path_basename(dir);
	int rc = walk(e, dir, root);
	free(root);
	if (rc != 0)
		free_entries(e);
	else
		qsort(e->v, e->n, sizeof *e->v, by_name);
	return rc;
}

int zipdir_size(const char *dir, uint64_t *bytes)
{
	entries e;
	if (list_tree(dir, &e) != 0)
		return -1;
	*bytes = 0;
	for (size_t i = 0; i < e.n; i++)
		*bytes += e.v[i].size;
	free_entries(&e);
	return 0;
}

int zipdir_epoch(time_t *out)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	*out = DOS_MIN;
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || errno || v < 0)
		return errf("SOURCE_DATE_EPOCH='%s' is not a number of seconds", s);
	*out = (time_t)v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */

/* weight.bin holds the weights: stored (see zipdir.h); the rest deflated. */
static int compression_of(const entry *en)
{
	const char *slash = strrchr(en->name, '/');
	return streq(slash ? slash + 1 : en->name, "weight.bin") ? ZIP_CM_STORE : ZIP_CM_DEFLATE;
}

static int zip_fail(zip_t *za, const char *path, const char *what)
{
	return errf("cannot write '%s': %s: %s", path, what, zip_strerror(za));
}

static int add_one(zip_t *za, const entry *en, time_t mtime, const char *path)
{
	zip_int64_t i;
	if (en->is_dir)
		i = zip_dir_add(za, en->name, ZIP_FL_ENC_UTF_8);
	else {
		zip_source_t *src = zip_source_file(za, en->path, 0, -1);
		if (!src)
			return zip_fail(za, path, en->path);
		if ((i = zip_file_add(za, en->name, src, ZIP_FL_ENC_UTF_8)) < 0)
			zip_source_free(src);
	}
	if (i < 0)
		return zip_fail(za, path, en->name);
	zip_uint32_t mode = en->is_dir ? 040755u : 0100644u;
	if (zip_file_set_mtime(za, (zip_uint64_t)i, mtime, 0) != 0 ||
	    zip_file_set_external_attributes(za, (zip_uint64_t)i, 0, ZIP_OPSYS_UNIX, mode << 16 | (en->is_dir ? 0x10u : 0)) != 0 ||
	    (!en->is_dir && zip_set_file_compression(za, (zip_uint64_t)i, compression_of(en), 0) != 0))
		return zip_fail(za, path, en->name);
	return 0;
}

/* libzip turns times into DOS dates with localtime(): pin the zone to UTC
 * while it writes, so the bytes do not depend on where they were made. */
static int close_in_utc(zip_t *za)
{
	const char *tz = getenv("TZ");
	char *saved = tz ? xstrdup(tz) : NULL;
	setenv("TZ", "UTC0", 1);
	tzset();
	int rc = zip_close(za);
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	return rc;
}

static int write_entries(const entries *e, const char *tmp, time_t mtime)
{
	int err;
	zip_t *za = zip_open(tmp, ZIP_CREATE | ZIP_TRUNCATE, &err);
	if (!za) {
		zip_error_t ze;
		zip_error_init_with_code(&ze, err);
		errf("cannot create '%s': %s", tmp, zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return -1;
	}
	for (size_t i = 0; i < e->n; i++)
		if (add_one(za, &e->v[i], mtime, tmp) != 0) {
			zip_discard(za);
			return -1;
		}
	/* mtime is set on every entry, but the zone also decides the dates. */
	if (close_in_utc(za) != 0) {
		zip_fail(za, tmp, "writing the archive");
		zip_discard(za);
		return -1;
	}
	return 0;
}

static time_t clamp_dos(time_t t)
{
	return t < DOS_MIN ? DOS_MIN : t > DOS_MAX ? DOS_MAX : t;
}

int zipdir_write(const char *dir, const char *path, time_t mtime, uint64_t *bytes)
{
	entries e;
	if (list_tree(dir, &e) != 0)
		return -1;
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	cleanup_register(tmp);
	unlink(tmp);
	int rc = write_entries(&e, tmp, clamp_dos(mtime));
	if (rc == 0)
		rc = zipdir_verify(dir, tmp);
	struct stat st;
	if (rc == 0 && stat(tmp, &st) != 0)
		rc = errf("cannot stat '%s':", tmp);
	if (rc == 0 && bytes)
		*bytes = (uint64_t)st.st_size;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = errf("cannot rename '%s' to '%s':", tmp, path);
	if (rc != 0)
		unlink(tmp);
	cleanup_unregister(tmp);
	free(tmp);
	free_entries(&e);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reading back                                                        */

/* Read an entry to its end: libzip checks the CRC-32 there. */
static int read_through(zip_t *za, zip_uint64_t i, const char *path, const char *name, uint64_t want)
{
	zip_file_t *f = zip_fopen_index(za, i, 0);
	if (!f)
		return errf("'%s': cannot open entry '%s': %s", path, name, zip_strerror(za));
	enum { BUF = 1 << 20 };
	char *buf = xmalloc(BUF);
	uint64_t total = 0;
	zip_int64_t n;
	while ((n = zip_fread(f, buf, BUF)) > 0)
		total += (uint64_t)n;
	int rc = 0;
	if (n < 0)
		rc = errf("'%s': entry '%s' does not read back: %s", path, name, zip_error_strerror(zip_file_get_error(f)));
	else if (total != want)
		rc = errf("'%s': entry '%s' reads back as %llu bytes, the file has %llu", path, name,
			  (unsigned long long)total, (unsigned long long)want);
	free(buf);
	zip_fclose(f);
	return rc;
}

static int check_entry(zip_t *za, zip_uint64_t i, const entry *en, const char *path)
{
	zip_stat_t st;
	if (zip_stat_index(za, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) || !(st.valid & ZIP_STAT_SIZE))
		return errf("'%s': cannot read entry %llu: %s", path, (unsigned long long)i, zip_strerror(za));
	if (!streq(st.name, en->name))
		return errf("'%s': entry %llu is '%s', expected '%s'", path, (unsigned long long)i, st.name, en->name);
	if (st.size != (en->is_dir ? 0 : en->size))
		return errf("'%s': entry '%s' has %llu bytes, the file %llu", path, en->name, (unsigned long long)st.size,
			    (unsigned long long)en->size);
	return en->is_dir ? 0 : read_through(za, i, path, en->name, en->size);
}

int zipdir_verify(const char *dir, const char *path)
{
	entries e;
	if (list_tree(dir, &e) != 0)
		return -1;
	int err, rc = 0;
	zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &err);
	if (!za) {
		zip_error_t ze;
		zip_error_init_with_code(&ze, err);
		rc = errf("'%s' is not a readable zip archive: %s", path, zip_error_strerror(&ze));
		zip_error_fini(&ze);
	} else if ((uint64_t)zip_get_num_entries(za, 0) != e.n)
		rc = errf("'%s' has %lld entries, '%s' %zu", path, (long long)zip_get_num_entries(za, 0), dir, e.n);
	for (size_t i = 0; rc == 0 && i < e.n; i++)
		rc = check_entry(za, (zip_uint64_t)i, &e.v[i], path);
	if (za)
		zip_discard(za);
	free_entries(&e);
	return rc;
}
