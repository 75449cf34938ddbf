/* driver.c: stand-in for libFuzzer where clang is not available.
 * Replays every file of the corpus directory given as argv[1], then feeds
 * random byte-level mutations of them for $FUZZ_SECONDS seconds. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *load(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = malloc(1 << 20);
	*n = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

int main(int argc, char **argv)
{
	uint8_t *seeds[256];
	size_t sizes[256], nseeds = 0;
	DIR *d = argc > 1 ? opendir(argv[1]) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d)) && nseeds < 256) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
		if ((seeds[nseeds] = load(path, &sizes[nseeds])))
			LLVMFuzzerTestOneInput(seeds[nseeds], sizes[nseeds]), nseeds++;
	}
	if (d)
		closedir(d);
	const char *s = getenv("FUZZ_SECONDS");
	time_t end = time(NULL) + (s ? atoi(s) : 4);
	srand(1);
	long runs = 0;
	uint8_t buf[1 << 16];
	while (nseeds && time(NULL) < end) {
		size_t k = (size_t)rand() % nseeds, n = sizes[k] < sizeof buf ? sizes[k] : sizeof buf;
		memcpy(buf, seeds[k], n);
		for (int m = rand() % 8; m >= 0 && n; m--)
			buf[(size_t)rand() % n] = (uint8_t)rand();
		if (rand() % 4 == 0 && n)
			n = (size_t)rand() % n;
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	printf("Done %ld runs\n", runs);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i]);
	return 0;
}
