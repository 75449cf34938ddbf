/* bench_runtime.c: tokens per second of the CPU runtime, of the fp32
 * reference, and of the two side by side (the smoketest's way), on a
 * converted model.
 *
 * Usage: bench_runtime [META [MODEL]], or BENCH_META=<OUT>/meta.yaml and
 * BENCH_MODEL=<checkpoint dir> (tests/bench.sh passes its end-to-end
 * conversion). BENCH_STEPS decode steps (default 8) after a one-token
 * prompt. For 1 thread and for every core it prints: load time, decode
 * tokens/s of the parts alone, of the reference alone, and of both at once
 * (smoke_generate_checked), and checks that every thread count gives the
 * same bits. Then VmHWM and RssAnon from /proc/self/status: a palettized
 * runtime should hold about its weight files (mapped, not anonymous).
 * Without a META it says so and exits 0. Run by make bench, never by
 * make check.
 */
#include "base/util.h"
#include "checkpoint/hfmodel.h"
#include "verify/reference.h"
#include "verify/smoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }
/* CPU seconds of the whole process: on a busy machine the wall clock says
 * how much of the cores we got, this how much work a token takes. */
static double cpu(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

/* "VmHWM 1234 MB, RssAnon 56 MB" from /proc/self/status (Linux). */
static void print_memory(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long hwm = -1, anon = -1;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "VmHWM: %ld", &hwm);
		sscanf(line, "RssAnon: %ld", &anon);
	}
	if (f)
		fclose(f);
	printf("runtime memory: VmHWM %.0f MB, RssAnon now %.0f MB\n", (double)hwm / 1024, (double)anon / 1024);
}

typedef struct result {
	smoke_run run;
	float *ref_logits;
	size_t nlogits; /* steps x vocab */
} result;

static void bench(const char *meta, hf_model *hf, int threads, int steps, int vocab_hint, result *out)
{
	char t[16];
	snprintf(t, sizeof t, "%d", threads);
	setenv("ANEMAKE_THREADS", t, 1);
	smoke_parts p;
	double t0 = now();
	if (smoke_parts_open_meta(&p, meta) != 0)
		die_err();
	double load = now() - t0;
	if (p.argmax_in_model && p.vocab <= 0)
		p.vocab = vocab_hint;
	const int32_t prompt[1] = {1};
	out->nlogits = (size_t)steps * (size_t)p.vocab;
	double c0 = cpu();
	if (smoke_generate(&p, prompt, 1, steps, 1, &out->run) != 0)
		die_err();
	printf("runtime %d thread%s: load %.1f s, %.2f tokens/s, %.2f CPU s per token (%d steps)\n", threads,
	       threads > 1 ? "s" : " ", load, out->run.nsteps / out->run.seconds, (cpu() - c0) / out->run.nsteps,
	       out->run.nsteps);
	if (hf) {
		ref_options ro = {.context = p.context, .threads = threads};
		ref_model *ref = ref_open(hf, &ro);
		size_t nl = (size_t)steps * (size_t)p.vocab;
		out->ref_logits = xmalloc(nl * sizeof(float));
		float *both = xmalloc(nl * sizeof(float));
		t0 = now();
		double c1 = cpu();
		if (!ref || smoke_reference(ref, &out->run, p.vocab, out->ref_logits) != 0)
			die_err();
		double tr = now() - t0, cr = cpu() - c1;
		smoke_run r2;
		t0 = now();
		if (smoke_generate_checked(&p, prompt, 1, steps, 1, ref, both, 0, NULL, &r2) != 0)
			die_err();
		double tb = now() - t0;
		printf("reference %d thread%s: %.2f tokens/s, %.2f CPU s per token; parts and reference side by side: "
		       "%.2f tokens/s\n", threads, threads > 1 ? "s" : " ", steps / tr, cr / steps, steps / tb);
		if (memcmp(both, out->ref_logits, nl * sizeof(float)) != 0 ||
		    memcmp(r2.tokens, out->run.tokens, (size_t)(1 + steps) * sizeof(int32_t)) != 0)
			die("side by side gave other results than one after the other");
		smoke_run_release(&r2);
		free(both);
		ref_close(ref);
	}
	smoke_parts_close(&p);
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	const char *meta = argc > 1 ? argv[1] : getenv("BENCH_META");
	const char *model = argc > 2 ? argv[2] : getenv("BENCH_MODEL");
	const char *st = getenv("BENCH_STEPS");
	int steps = st && atoi(st) > 0 ? atoi(st) : 8;
	if (!meta || !*meta) {
		printf("runtime: no conversion given (BENCH_META=<OUT>/meta.yaml [BENCH_MODEL=<checkpoint>])\n");
		return 0;
	}
	hf_model hf, *hp = NULL;
	if (model && *model) {
		if (hf_model_open(&hf, model) != 0)
			die_err();
		hp = &hf;
	}
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	result one = {0}, all = {0};
	bench(meta, hp, 1, steps, hp ? hf.cfg.vocab_size : 0, &one);
	if (ncpu > 1) {
		bench(meta, hp, ncpu, steps, hp ? hf.cfg.vocab_size : 0, &all);
		size_t nl = one.nlogits * sizeof(float);
		if (memcmp(one.run.tokens, all.run.tokens, (size_t)(1 + steps) * sizeof(int32_t)) != 0 ||
		    (one.run.logits && memcmp(one.run.logits, all.run.logits, nl) != 0) || /* argmax heads: none */
		    (hp && memcmp(one.ref_logits, all.ref_logits, nl) != 0))
			die("1 and %d threads gave different results", ncpu);
		smoke_run_release(&all.run);
		free(all.ref_logits);
	}
	smoke_run_release(&one.run);
	free(one.ref_logits);
	print_memory();
	if (hp)
		hf_model_close(hp);
	return 0;
}
