/* fsutil.c: checked I/O, temp-and-rename outputs, cleanup on signals. */
#define _XOPEN_SOURCE 700
#ifdef __linux__
#define _GNU_SOURCE /* copy_file_range */
#endif
#include "base/fsutil.h"
#include "base/util.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Cleanup registry                                                    */

#define MAX_TEMPS 64
static char *g_temps[MAX_TEMPS];
static volatile sig_atomic_t g_installed;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : errf("cannot stat '%s':", path);
	if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return errf("cannot remove '%s':", path);
	return 0;
}

static void remove_all_temps(void)
{
	for (int i = 0; i < MAX_TEMPS; i++)
		if (g_temps[i]) {
			rm_rf(g_temps[i]);
			free(g_temps[i]);
			g_temps[i] = NULL;
		}
}

static void on_signal(int sig)
{
	/* Best effort: removing files here is what keeps Ctrl-C from leaving
	 * partial artifacts; then die by the same signal. */
	for (int i = 0; i < MAX_TEMPS; i++)
		if (g_temps[i])
			rm_rf(g_temps[i]);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_handlers(void)
{
	if (g_installed)
		return;
	g_installed = 1;
	atexit(remove_all_temps);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
}

static void block_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, old);
}

void cleanup_register(const char *path)
{
	install_handlers();
	sigset_t old;
	block_signals(&old);
	int i = 0;
	while (i < MAX_TEMPS && g_temps[i])
		i++;
	if (i == MAX_TEMPS)
		BUG("too many live temporaries");
	g_temps[i] = xstrdup(path);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

void cleanup_unregister(const char *path)
{
	sigset_t old;
	block_signals(&old);
	for (int i = 0; i < MAX_TEMPS; i++)
		if (g_temps[i] && strcmp(g_temps[i], path) == 0) {
			free(g_temps[i]);
			g_temps[i] = NULL;
		}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* ------------------------------------------------------------------ */
/* Paths                                                               */

/* fd in's bytes from its offset on into fd out: the kernel's own copy where
 * there is one (Linux copy_file_range: no trip through user memory), else,
 * or when it refuses (another file system on older kernels), read and write
 * from where it stopped. */
static int copy_fd(int in, int out, const char *from, const char *to)
{
	enum { BLOCK = 1 << 20 };
#ifdef __linux__
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)1 << 30, 0);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			break; /* the offsets stay where it stopped */
	}
#endif
	char *buf = xmalloc(BLOCK);
	int rc = 0;
	while (rc == 0) {
		ssize_t n = read(in, buf, BLOCK);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno != EINTR)
				rc = errf("cannot read '%s':", from);
			continue;
		}
		for (ssize_t done = 0; rc == 0 && done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));
			if (w >= 0)
				done += w;
			else if (errno != EINTR)
				rc = errf("cannot write '%s':", to);
		}
	}
	free(buf);
	return rc;
}

int file_copy(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = in >= 0 ? open(to, O_WRONLY | O_CREAT | O_TRUNC, 0666) : -1;
	int rc = in < 0 ? errf("cannot open '%s':", from) : out < 0 ? errf("cannot create '%s':", to) : 0;
	if (rc == 0)
		rc = copy_fd(in, out, from, to);
	if (rc == 0 && fsync(out) != 0)
		rc = errf("cannot write '%s':", to);
	if (out >= 0 && close(out) != 0 && rc == 0)
		rc = errf("cannot write '%s':", to);
	if (in >= 0)
		close(in);
	return rc;
}

int file_link_or_copy(const char *from, const char *to)
{
	return link(from, to) == 0 ? 0 : file_copy(from, to);
}

int path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Directories mkdir_p_undoable made, in creation order (parents first). */
static char **g_made;
static size_t g_n_made;

static void remove_made(void)
{
	while (g_n_made) { /* children first; rmdir leaves a non-empty one alone */
		char *d = g_made[--g_n_made];
		rmdir(d);
		free(d);
	}
	free(g_made);
	g_made = NULL;
}

void mkdir_keep(void)
{
	for (size_t i = 0; i < g_n_made; i++)
		free(g_made[i]);
	g_n_made = 0;
}

static void made(const char *dir)
{
	static int registered;
	if (!registered) {
		registered = 1;
		atexit(remove_made);
	}
	g_made = xrealloc(g_made, (g_n_made + 1) * sizeof *g_made);
	g_made[g_n_made++] = xstrdup(dir);
}

/* mkdir one level: 0 when it exists afterwards (recorded when undoable and new). */
static int mkdir_one(const char *p, int undoable)
{
	if (mkdir(p, 0777) == 0) {
		if (undoable)
			made(p);
		return 0;
	}
	return errno == EEXIST ? 0 : -1;
}

static int mkdir_tree(const char *path, int undoable)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir_one(p, undoable) != 0) {
			errf("cannot create directory '%s':", p);
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = 0;
	if (mkdir_one(p, undoable) != 0)
		rc = errf("cannot create directory '%s':", p);
	else if (!is_dir(p))
		rc = errf("'%s' exists and is not a directory", p);
	free(p);
	return rc;
}

int mkdir_p(const char *path) { return mkdir_tree(path, 0); }

int mkdir_p_undoable(const char *path) { return mkdir_tree(path, 1); }

char *path_join(const char *a, const char *b)
{
	size_t n = strlen(a);
	while (n > 1 && a[n - 1] == '/')
		n--;
	while (*b == '/')
		b++;
	return xasprintf("%.*s/%s", (int)n, a, b);
}

char *path_basename(const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	size_t s = n;
	while (s > 0 && path[s - 1] != '/')
		s--;
	return xstrndup(path + s, n - s);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static void fsync_dir(const char *path)
{
	char *d = dir_of(path);
	int fd = open(d, O_RDONLY);
	if (fd >= 0) {
		fsync(fd); /* some filesystems refuse: the rename still happened */
		close(fd);
	}
	free(d);
}

/* ------------------------------------------------------------------ */
/* Whole files                                                         */

int read_file(const char *path, size_t max, char **data, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errf("cannot open '%s':", path);
	/* A symlink to /dev/zero or a FIFO would be read until memory runs out. */
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return errf("'%s' is not a regular file", path);
	}
	if ((uint64_t)st.st_size > max) {
		fclose(f);
		return errf("'%s' is %llu bytes, more than the %zu MB a file of its kind may have", path,
			    (unsigned long long)st.st_size, max >> 20);
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap)
			buf = xrealloc(buf, cap = xmul(cap, 2));
		size_t got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0 || len > max) /* it grew while being read */
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad || len > max) {
		free(buf);
		return bad ? errf("cannot read '%s'", path)
			   : errf("'%s' grew beyond %zu MB while being read", path, max >> 20);
	}
	buf[len] = 0;
	*data = buf;
	*n = len;
	return 0;
}

int fwrite_all(FILE *f, const void *data, size_t n, const char *what)
{
	if (n && fwrite(data, 1, n, f) != n)
		return errf("cannot write '%s':", what);
	return 0;
}

int fclose_checked(FILE *f, const char *what)
{
	int bad = fflush(f) != 0 || ferror(f);
	if (fclose(f) != 0 || bad)
		return errf("cannot write '%s':", what);
	return 0;
}

int stdout_close_checked(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return errf("cannot write standard output:");
	return 0;
}

int atomic_open(atomic_file *af, const char *path)
{
	af->path = xstrdup(path);
	af->tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	af->no_sync = 0;
	cleanup_register(af->tmp);
	int fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
	if (fd < 0 || !(af->f = fdopen(fd, "wb"))) {
		errf("cannot create '%s':", af->tmp);
		if (fd >= 0)
			close(fd);
		af->f = NULL;
		atomic_abort(af);
		return -1;
	}
	return 0;
}

int atomic_commit(atomic_file *af)
{
	int rc = 0;
	if (fflush(af->f) != 0 || ferror(af->f) || (!af->no_sync && fsync(fileno(af->f)) != 0))
		rc = errf("cannot write '%s':", af->path);
	if (fclose(af->f) != 0 && rc == 0)
		rc = errf("cannot write '%s':", af->path);
	af->f = NULL;
	if (rc == 0 && rename(af->tmp, af->path) != 0)
		rc = errf("cannot rename '%s' to '%s':", af->tmp, af->path);
	if (rc != 0) {
		atomic_abort(af);
		return rc;
	}
	if (!af->no_sync)
		fsync_dir(af->path);
	cleanup_unregister(af->tmp);
	free(af->tmp);
	free(af->path);
	af->tmp = af->path = NULL;
	return 0;
}

void atomic_abort(atomic_file *af)
{
	if (af->f)
		fclose(af->f);
	af->f = NULL;
	if (af->tmp) {
		unlink(af->tmp);
		cleanup_unregister(af->tmp);
	}
	free(af->tmp);
	free(af->path);
	af->tmp = af->path = NULL;
}

static int write_whole(const char *path, const void *data, size_t n, int no_sync)
{
	atomic_file af;
	if (atomic_open(&af, path) != 0)
		return -1;
	af.no_sync = no_sync;
	if (fwrite_all(af.f, data, n, path) != 0) {
		atomic_abort(&af);
		return -1;
	}
	return atomic_commit(&af);
}

int write_file_atomic(const char *path, const void *data, size_t n) { return write_whole(path, data, n, 0); }

int write_file_atomic_nosync(const char *path, const void *data, size_t n) { return write_whole(path, data, n, 1); }

/* ------------------------------------------------------------------ */
/* Temporary directories                                               */

int tmpdir_create(const char *final_path, char **tmp_out)
{
	char *tmp = xasprintf("%s.tmp.%ld", final_path, (long)getpid());
	cleanup_register(tmp);
	if (rm_rf(tmp) != 0 || mkdir(tmp, 0777) != 0) {
		errf("cannot create directory '%s':", tmp);
		cleanup_unregister(tmp);
		free(tmp);
		return -1;
	}
	*tmp_out = tmp;
	return 0;
}

int tmpdir_commit(const char *tmp, const char *final_path)
{
	char *old = xasprintf("%s.old.%ld", final_path, (long)getpid());
	sigset_t mask;
	int rc = 0;
	block_signals(&mask);
	int had_old = path_exists(final_path);
	if (had_old && rename(final_path, old) != 0)
		rc = errf("cannot move '%s' aside:", final_path);
	else if (rename(tmp, final_path) != 0) {
		rc = errf("cannot rename '%s' to '%s':", tmp, final_path);
		if (had_old)
			rename(old, final_path);
	}
	if (rc == 0) {
		cleanup_unregister(tmp);
		if (had_old)
			cleanup_register(old); /* removed below, or at exit if that fails */
	}
	sigprocmask(SIG_SETMASK, &mask, NULL);
	if (rc == 0 && had_old) {
		rm_rf(old);
		cleanup_unregister(old);
	}
	if (rc == 0)
		fsync_dir(final_path);
	free(old);
	return rc;
}

void tmpdir_abort(const char *tmp)
{
	rm_rf(tmp);
	cleanup_unregister(tmp);
}

int write_json_atomic(const char *path, cJSON *root)
{
	char *text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return errf("cannot format '%s'", path);
	size_t n = strlen(text);
	text[n] = '\n'; /* cJSON_Print leaves room for its NUL: reuse it for the newline */
	int rc = write_file_atomic(path, text, n + 1);
	cJSON_free(text);
	return rc;
}
