/* fsutil.h: checked file I/O and atomic outputs.
 *
 * Every artifact anemake writes appears under its final name only when it is
 * complete: files are written as "<path>.tmp.<pid>" and renamed; package
 * directories are built as "<dir>.tmp.<pid>/" and swapped into place with
 * signals blocked. Temporaries are registered so that exit, die() and
 * SIGINT/SIGTERM/SIGHUP remove them: an interrupted run leaves the old
 * artifact or the new one, never a partial one.
 */
#ifndef ANEMAKE_FSUTIL_H
#define ANEMAKE_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

/* Whole-file helpers. read_file reads a regular file of at most max bytes
 * (else one errf() line naming it: not a regular file, too large) and
 * NUL-terminates it (not counted in *n). The bounds by kind: */
#define FS_MAX_TEXT ((size_t)64 << 20)      /* config.json, tokenizer_config.json, generation_config.json, the shard index, chat templates, meta.yaml, Manifest.json */
#define FS_MAX_TOKENIZER ((size_t)1 << 30) /* tokenizer.json (Gemma 3's is 33 MB) */
#define FS_MAX_MODEL ((size_t)1 << 30)     /* a package's model.mlmodel (weights live in weight.bin) */
int read_file(const char *path, size_t max, char **data, size_t *n);
int write_file_atomic(const char *path, const void *data, size_t n);
/* The same without fsync: the rename still makes it all or nothing for
 * readers, but a crash may leave a torn file. Only for caches whose entries
 * verify themselves (lutcache.h), where waiting for the disk would cost
 * seconds per gigabyte and a torn entry is just computed again. */
int write_file_atomic_nosync(const char *path, const void *data, size_t n);

/* root printed as indented JSON plus a newline, written with
 * write_file_atomic; root is freed either way. 0, or -1 with errf(). */
struct cJSON;
int write_json_atomic(const char *path, struct cJSON *root);
/* Copy a regular file (fsynced; `to` is not atomic: use it inside a
 * temporary directory). */
int file_copy(const char *from, const char *to);
/* `to` with from's bytes: a hard link (the same inode, nothing copied) where
 * the file system allows one, else file_copy. Only for files that are
 * replaced by rename, never rewritten in place, as every output of anemake:
 * a later conversion then gives `from` a new inode and leaves `to` alone. */
int file_link_or_copy(const char *from, const char *to);
int path_exists(const char *path);
int is_dir(const char *path);
int mkdir_p(const char *path);
/* mkdir_p for an output directory: the directories this call creates are
 * removed again at exit, when still empty, unless mkdir_keep() ran first. A
 * stage that fails (die) then leaves no empty directory behind; one that
 * succeeds calls mkdir_keep(). */
int mkdir_p_undoable(const char *path);
void mkdir_keep(void);
int rm_rf(const char *path);
/* Join a and b with exactly one '/'; caller frees. */
char *path_join(const char *a, const char *b);
/* Last component of a path, without trailing slashes; caller frees. */
char *path_basename(const char *path);

/* Checked stream writes: record an error naming `what` on failure. */
int fwrite_all(FILE *f, const void *data, size_t n, const char *what);
int fclose_checked(FILE *f, const char *what);
/* Flush and check stdout; returns -1 (with errf) if anything was lost. */
int stdout_close_checked(void);

/* An output file written under a temporary name. */
typedef struct atomic_file {
	char *path;    /* final name */
	char *tmp;     /* temporary name */
	FILE *f;
	int no_sync;   /* set after atomic_open: commit without waiting for the disk */
} atomic_file;

int atomic_open(atomic_file *af, const char *path);
/* fsync, close and rename into place; frees af's strings. */
int atomic_commit(atomic_file *af);
/* Remove the temporary; frees af's strings. Safe after a failed commit. */
void atomic_abort(atomic_file *af);

/* A directory built under a temporary name (e.g. a .mlpackage). */
int tmpdir_create(const char *final_path, char **tmp_out);
/* Replace final_path (file, dir or nothing) by tmp atomically w.r.t. signals. */
int tmpdir_commit(const char *tmp, const char *final_path);
/* Remove a temporary directory and unregister it. */
void tmpdir_abort(const char *tmp);

/* Register/unregister a temporary path removed on exit or fatal signal. */
void cleanup_register(const char *path);
void cleanup_unregister(const char *path);

#endif
