/* bench_lut.c: speed of LUT palettization on a realistic weight.
 *
 * Palettizes one Llama-3.2-1B FFN-shaped weight, 8192 x 2048 bf16 (32 MiB):
 * Gaussian values with std 0.02 plus 0.1% heavy-tailed outliers, from a
 * fixed seed, converted bf16 -> fp16 as the converter does. Runs 4 and 6
 * bits, group 8, with 1 thread and with every core, and prints one line per
 * configuration: MB/s of source (bf16) bytes by wall clock and per second
 * of CPU time (process CPU time, CLOCK_PROCESS_CPUTIME_ID: with one thread
 * the single-core speed even when other load on the machine skews the wall
 * clock; with several, the speed per core), the relative RMS error and
 * SNR, then the peak RSS. Run by tests/bench.sh (make bench),
 * never by make check. Optional arguments: channels per_channel (smaller
 * shapes for a quick look).
 */
#include "base/fp16.h"
#include "base/util.h"
#include "convert/lut.h"

#include <math.h>         /* sqrt, log, cos */
#include <stdio.h>        /* printf */
#include <stdlib.h>       /* atoll, free */
#include <string.h>       /* memcmp */
#include <sys/resource.h> /* getrusage */
#include <time.h>         /* clock_gettime, CLOCK_PROCESS_CPUTIME_ID */
#include <unistd.h>       /* sysconf */

static uint64_t seed = 20240601;

static double uniform(void)
{
	uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return ((double)((z ^ (z >> 31)) >> 11) + 0.5) * 0x1p-53;
}

static double gauss(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* bf16 weights like a trained FFN: N(0, 0.02), and one in a thousand an
 * outlier up to ~30 sigma (Cauchy-like tail). */
static uint16_t *make_weight(size_t n)
{
	uint16_t *bf = xmalloc(n * sizeof *bf);
	for (size_t i = 0; i < n; i++) {
		double v = 0.02 * gauss();
		if (uniform() < 0.001)
			v = 0.02 * gauss() / (uniform() + 0.033);
		bf[i] = f32_to_bf16((float)v);
	}
	return bf;
}

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	int64_t C = argc > 2 ? atoll(argv[1]) : 8192, K = argc > 2 ? atoll(argv[2]) : 2048;
	size_t n = (size_t)(C * K);
	uint16_t *bf = make_weight(n), *w = xmalloc(n * sizeof *w);
	bf16_array_to_fp16(bf, w, n);
	free(bf);
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	static const int bits[] = {4, 6};
	for (int bi = 0; bi < 2; bi++) {
		lut_result first = {0};
		for (int pass = 0; pass < 2; pass++) {
			int threads = pass ? ncpu : 1;
			lut_result r;
			double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
			if (lut_quantize("bench.ffn.weight", w, C, K, bits[bi], 8, threads, &r) < 0)
				die_err();
			double dt = clock_s(CLOCK_MONOTONIC) - t0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
			double mb = 2.0 * (double)n / 1e6;
			printf("lut %lldx%lld bf16 %d-bit group 8, %2d thread%s: %7.1f MB/s wall (%.3f s), %6.1f MB/s cpu "
			       "(%.3f s)  rel RMS %.5f  SNR %.2f dB\n",
			       (long long)C, (long long)K, bits[bi], threads, threads == 1 ? " " : "s", mb / dt, dt,
			       mb / cpu, cpu, r.rel_rms, r.snr_db);
			if (pass == 0) {
				first = r;
			} else {
				if (memcmp(first.indices, r.indices, n) || memcmp(first.lut, r.lut, (size_t)r.groups << bits[bi] << 1))
					die("results differ between 1 and %d threads", threads);
				lut_result_release(&r);
			}
		}
		lut_result_release(&first);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("lut peak RSS %.1f MB (weights %.1f MB fp16)\n", (double)ru.ru_maxrss / 1024, 2.0 * (double)n / 1e6 / 1.048576);
	free(w);
	return 0;
}
