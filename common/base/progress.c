/* progress.c: the progress line of a long stage (see progress.h). */
#include "base/progress.h"
#include "base/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum mode { MODE_OFF, MODE_AUTO, MODE_EVERY_ITEM } mode;

static struct {
	pthread_mutex_t lock;
	int depth;    /* begins not yet ended; only the outermost reports */
	mode mode;
	char what[160], unit[24];
	uint64_t items, bytes, items_done, bytes_done;
	uint64_t partial; /* bytes of the item under way (progress_partial), until it is added */
	double start, last_shown;
	int shown;    /* something was printed: progress_end closes it */
	FILE *out;    /* NULL: stderr */
	int tty;      /* -1: isatty(out) */
	double (*now)(void);
} P = {.lock = PTHREAD_MUTEX_INITIALIZER, .tty = -1};

static double monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_set_clock(double (*now)(void)) { P.now = now; }

void progress_set_output(FILE *out, int tty)
{
	P.out = out;
	P.tty = out ? tty : -1;
}

static FILE *out(void) { return P.out ? P.out : stderr; }
static double now(void) { return P.now ? P.now() : monotonic(); }

static mode env_mode(void)
{
	const char *e = getenv("ANEMAKE_PROGRESS");
	if (g_verbosity < 1 || (e && streq(e, "0")))
		return MODE_OFF;
	return e && streq(e, "1") ? MODE_EVERY_ITEM : MODE_AUTO;
}

void progress_begin(const char *what, const char *unit, uint64_t items, uint64_t bytes)
{
	pthread_mutex_lock(&P.lock);
	if (P.depth++ == 0) {
		P.mode = env_mode();
		snprintf(P.what, sizeof P.what, "%s", what);
		snprintf(P.unit, sizeof P.unit, "%s", unit);
		P.items = items, P.bytes = bytes, P.items_done = P.bytes_done = P.partial = 0;
		P.start = P.last_shown = now();
		P.shown = 0;
		if (P.tty < 0)
			P.tty = isatty(fileno(out()));
	}
	pthread_mutex_unlock(&P.lock);
}

/* "0:13", "12:05", "1:02:05" */
static void clock_text(double s, char *buf, size_t cap)
{
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* Digits after the point: one below 10 (small sizes, slow rates), else none. */
static int decimals(double v) { return v < 10 ? 1 : 0; }

/* The current state: "tensor 3 of 9, 812 of 2400 MB, 120 MB/s, ETA 0:13". */
static void state_text(double t, char *buf, size_t cap)
{
	double el = t - P.start, done, total;
	int n = snprintf(buf, cap, "%s %llu of %llu", P.unit, (unsigned long long)P.items_done,
			 (unsigned long long)P.items);
	if (P.bytes) {
		double mb = P.bytes / 1e6;
		done = (double)(P.bytes_done + P.partial), total = (double)P.bytes;
		n += snprintf(buf + n, cap - (size_t)n, ", %.*f of %.*f MB", decimals(mb), done / 1e6, decimals(mb), mb);
		if (el > 0 && done > 0)
			n += snprintf(buf + n, cap - (size_t)n, ", %.*f MB/s", decimals(done / 1e6 / el), done / 1e6 / el);
	} else {
		done = (double)P.items_done, total = (double)P.items;
		if (el > 0 && done > 0)
			n += snprintf(buf + n, cap - (size_t)n, ", %.*f %ss/s", decimals(done / el), done / el, P.unit);
	}
	if (el > 0 && done > 0 && total > done) {
		char eta[32];
		clock_text((total - done) * el / done, eta, sizeof eta);
		snprintf(buf + n, cap - (size_t)n, ", ETA %s", eta);
	}
}

static void show(double t)
{
	char state[256];
	state_text(t, state, sizeof state);
	if (P.tty)
		fprintf(out(), "\r%s: %s: %s\033[K", progname(), P.what, state);
	else
		fprintf(out(), "%s: %s: %s\n", progname(), P.what, state);
	fflush(out());
	P.shown = 1;
	P.last_shown = t;
}

/* Count what was done; show it when it is time. */
static void advance(uint64_t items, uint64_t bytes, uint64_t partial)
{
	pthread_mutex_lock(&P.lock);
	if (P.depth > 0 && P.mode != MODE_OFF) {
		P.items_done += items, P.bytes_done += bytes;
		P.partial = items ? 0 : P.partial + partial;
		double t = now();
		int due = (P.mode == MODE_EVERY_ITEM && items) ||
			  (t - P.start >= PROGRESS_DELAY &&
			   (!P.shown || t - P.last_shown >= (P.tty ? PROGRESS_REDRAW : PROGRESS_EVERY)));
		if (due)
			show(t);
	}
	pthread_mutex_unlock(&P.lock);
}

void progress_add(uint64_t items, uint64_t bytes) { advance(items, bytes, 0); }
void progress_partial(uint64_t bytes) { advance(0, 0, bytes); }

void progress_end(void)
{
	pthread_mutex_lock(&P.lock);
	ASSERT(P.depth > 0);
	if (--P.depth == 0 && P.shown) {
		double el = now() - P.start;
		char size[64] = "";
		if (P.bytes_done)
			snprintf(size, sizeof size, ", %.*f MB", decimals(P.bytes_done / 1e6), P.bytes_done / 1e6);
		fprintf(out(), "%s%s: %s: %llu %s%s%s in %.1f s%s\n", P.tty ? "\r" : "", progname(), P.what,
			(unsigned long long)P.items_done, P.unit, P.items_done == 1 ? "" : "s", size, el,
			P.tty ? "\033[K" : "");
		fflush(out());
		P.shown = 0;
	}
	pthread_mutex_unlock(&P.lock);
}
