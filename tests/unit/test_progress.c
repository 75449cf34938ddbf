/* test_progress.c: the progress report (base/progress.h) on a fake clock, and
 * the exit report of ANEMAKE_STATS (base/runstats.h) of a child process. */
#include "base/progress.h"
#include "base/util.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static double t_now;
static double fake_clock(void) { return t_now; }

static char *g_text;
static size_t g_len;
static FILE *g_out;

/* Report into a memory buffer at fake time 0, the environment's mode set. */
static void start(int tty, const char *mode)
{
	if (mode)
		setenv("ANEMAKE_PROGRESS", mode, 1);
	else
		unsetenv("ANEMAKE_PROGRESS");
	free(g_text);
	g_text = NULL;
	g_out = open_memstream(&g_text, &g_len);
	progress_set_output(g_out, tty);
	progress_set_clock(fake_clock);
	t_now = 100;
}

/* What was written; the count of lines in *lines. */
static const char *written(int *lines)
{
	fflush(g_out);
	*lines = 0;
	for (size_t i = 0; i < g_len; i++)
		*lines += g_text[i] == '\n';
	return g_text;
}

static void stop(void)
{
	fclose(g_out);
	progress_set_output(NULL, 0);
	progress_set_clock(NULL);
	unsetenv("ANEMAKE_PROGRESS");
}

/* Tensors of 100 MB at times 100 + at[i]. */
static void work(const double *at, int n, int items)
{
	progress_begin("part.mlpackage", "tensor", (uint64_t)items, (uint64_t)items * 100000000u);
	for (int i = 0; i < n; i++) {
		t_now = 100 + at[i];
		progress_add(1, 100000000u);
	}
}

static void test_short_run_is_silent(void)
{
	start(0, NULL);
	const double at[] = {0.5, 1, 2.9};
	work(at, 3, 3);
	progress_end();
	int lines;
	CHECK_STR(written(&lines), "");
	stop();
}

static void test_plain_lines_every_few_seconds(void)
{
	start(0, NULL);
	const double at[] = {1, 2, 4, 5, 6, 13, 14.5, 20};
	work(at, 8, 10);
	t_now = 121;
	progress_end();
	int lines;
	const char *s = written(&lines);
	/* at 4 s (past the delay), at 14.5 (10 s later), then the closing line */
	CHECKF(lines == 3, "%d lines: %s", lines, s);
	CHECKF(strstr(s, ": part.mlpackage: tensor 3 of 10, 300 of 1000 MB, 75 MB/s, ETA 0:09\n") != NULL, "%s", s);
	CHECKF(strstr(s, ": part.mlpackage: tensor 7 of 10, 700 of 1000 MB, 48 MB/s, ETA 0:06\n") != NULL, "%s", s);
	CHECKF(strstr(s, ": part.mlpackage: 8 tensors, 800 MB in 21.0 s\n") != NULL, "%s", s);
	CHECK(strchr(s, '\r') == NULL);
	stop();
}

static void test_terminal_line_is_rewritten(void)
{
	start(1, NULL);
	const double at[] = {3, 3.1, 3.5, 4};
	work(at, 4, 4);
	progress_end();
	int lines;
	const char *s = written(&lines);
	/* drawn at 3 and 3.5 (0.1 is too soon), closed on the same line */
	CHECKF(lines == 1, "%d lines: %s", lines, s);
	CHECKF(strstr(s, "\r") == s, "%s", s);
	CHECKF(strstr(s, ": part.mlpackage: tensor 1 of 4, 100 of 400 MB, 33 MB/s, ETA 0:09\033[K\r") != NULL, "%s", s);
	CHECKF(strstr(s, "tensor 3 of 4") != NULL && strstr(s, "tensor 2 of 4") == NULL, "%s", s);
	CHECKF(strstr(s, "\r") != NULL && strstr(s, ": part.mlpackage: 4 tensors, 400 MB in 4.0 s\033[K\n") != NULL, "%s", s);
	stop();
}

static void test_environment_modes(void)
{
	start(0, "0");
	const double late[] = {50, 100};
	work(late, 2, 2);
	progress_end();
	int lines;
	CHECK_STR(written(&lines), "");
	stop();

	start(0, "1"); /* every item, from the start */
	const double early[] = {0.1, 0.2};
	work(early, 2, 2);
	progress_end();
	const char *s = written(&lines);
	CHECKF(lines == 3, "%d lines: %s", lines, s);
	CHECKF(strstr(s, "tensor 1 of 2, 100 of 200 MB, 1000 MB/s, ETA 0:00\n") != NULL, "%s", s);
	stop();
}

/* Items without bytes: the rate and ETA by items; a nested report only counts. */
static void test_items_and_nesting(void)
{
	start(0, "1");
	progress_begin("smoke", "token", 4, 0);
	progress_begin("inner", "tensor", 99, 99);
	t_now = 102;
	progress_add(1, 0);
	progress_end();
	t_now = 104;
	progress_add(1, 0);
	progress_end();
	int lines;
	const char *s = written(&lines);
	CHECKF(strstr(s, ": smoke: token 1 of 4, 0.5 tokens/s, ETA 0:06\n") != NULL, "%s", s);
	CHECKF(strstr(s, ": smoke: token 2 of 4, 0.5 tokens/s, ETA 0:04\n") != NULL, "%s", s);
	CHECKF(strstr(s, ": smoke: 2 tokens in 4.0 s\n") != NULL, "%s", s);
	CHECK(strstr(s, "inner") == NULL);
	stop();
}

/* A large item's parts move the line; the item's own count replaces them. */
static void test_partial_bytes(void)
{
	start(0, NULL);
	progress_begin("head", "tensor", 2, 200000000u);
	t_now = 102;
	progress_partial(30000000u);
	t_now = 104;
	progress_partial(20000000u); /* 50 MB at 4 s: shown (past the delay) */
	t_now = 110;
	progress_add(1, 100000000u);
	t_now = 115;
	progress_add(1, 100000000u); /* 200 MB at 15 s: 10 s after the last line */
	progress_end();
	int lines;
	const char *s = written(&lines);
	CHECKF(lines == 3, "%d lines: %s", lines, s);
	CHECKF(strstr(s, ": head: tensor 0 of 2, 50 of 200 MB, 12 MB/s, ETA 0:12\n") != NULL, "%s", s);
	CHECKF(strstr(s, ": head: tensor 2 of 2, 200 of 200 MB, 13 MB/s\n") != NULL, "%s", s);
	CHECKF(strstr(s, ": head: 2 tensors, 200 MB in 15.0 s\n") != NULL, "%s", s);
	stop();
}

/* A child with ANEMAKE_STATS set that holds 64 MB for a while: its report
 * says so, although the memory is freed before the exit (the peaks are
 * the kernel's high-water mark and the sampling thread's). */
static void test_runstats_child(void)
{
	char path[] = "/tmp/anemake_runstats_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		setenv("ANEMAKE_STATS", path, 1);
		set_progname("child");
		size_t n = 64u << 20;
		volatile char *p = malloc(n);
		for (size_t i = 0; i < n; i += 4096)
			p[i] = 1;
		usleep(50000);
		free((void *)p);
		exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	FILE *f = fopen(path, "r");
	double wall = 0, cpu = -1, rss = 0, anon = -1;
	int n = f ? fscanf(f, "wall_s=%lf cpu_s=%lf rss_mb=%lf anon_mb=%lf", &wall, &cpu, &rss, &anon) : 0;
	if (f)
		fclose(f);
	unlink(path);
	int linux_proc = access("/proc/self/status", R_OK) == 0;
	CHECKF(n == (linux_proc ? 4 : 3), "%d fields", n);
	CHECKF(wall >= 0.04 && wall < 60, "wall %g", wall);
	CHECKF(cpu >= 0, "cpu %g", cpu);
	CHECKF(rss >= 64 * 1.048576, "peak RSS %g MB", rss);
	if (linux_proc)
		CHECKF(anon >= 64 * 1.048576 && anon <= rss, "peak anonymous %g MB of %g", anon, rss);
}

int main(void)
{
	RUN(test_short_run_is_silent);
	RUN(test_plain_lines_every_few_seconds);
	RUN(test_terminal_line_is_rewritten);
	RUN(test_environment_modes);
	RUN(test_items_and_nesting);
	RUN(test_partial_bytes);
	RUN(test_runstats_child);
	free(g_text);
	return test_finish();
}
