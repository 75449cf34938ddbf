/* runstats.c: wall, CPU and peak memory of the process, at exit (see runstats.h). */
#include "base/runstats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static char *g_path;
static double g_start;
static atomic_long g_peak_anon_kb = -1; /* -1: not known (no /proc) */

static double monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* RssAnon of /proc/self/status in kB, -1 where there is none. */
static long rss_anon_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "RssAnon:", 8)) {
			kb = strtol(line + 8, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static void sample(void)
{
	long kb = rss_anon_kb(), old = atomic_load(&g_peak_anon_kb);
	while (kb > old && !atomic_compare_exchange_weak(&g_peak_anon_kb, &old, kb))
		;
}

static void *sampler(void *arg)
{
	(void)arg;
	struct timespec ts = {0, RUNSTATS_SAMPLE_MS * 1000000L};
	for (;;) {
		sample();
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static double cpu_seconds(int who)
{
	struct rusage ru;
	if (getrusage(who, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
	       1e-6 * (double)ru.ru_stime.tv_usec;
}

static double peak_rss_mb(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
#ifdef __APPLE__
	return (double)ru.ru_maxrss / 1e6; /* bytes */
#else
	return (double)ru.ru_maxrss * 1024 / 1e6; /* kB */
#endif
}

/* A report the runner cannot use is no reason to fail the program: errors are ignored. */
static void report(void)
{
	sample();
	FILE *f = fopen(g_path, "w");
	if (!f)
		return;
	fprintf(f, "wall_s=%.2f cpu_s=%.2f rss_mb=%.1f", monotonic() - g_start,
		cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN), peak_rss_mb());
	long anon = atomic_load(&g_peak_anon_kb);
	if (anon >= 0)
		fprintf(f, " anon_mb=%.1f", (double)anon * 1024 / 1e6);
	fputc('\n', f);
	fclose(f);
}

void runstats_start(void)
{
	const char *path = getenv("ANEMAKE_STATS");
	if (g_path || !path || !*path)
		return;
	g_path = strdup(path);
	if (!g_path)
		return;
	g_start = monotonic();
	sample();
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (atomic_load(&g_peak_anon_kb) >= 0)
		pthread_create(&t, &attr, sampler, NULL); /* without a thread the exit sample is all there is */
	pthread_attr_destroy(&attr);
	atexit(report);
}
