/* test_mlmodelc_real.c: the compiled-model writer against real files from
 * Apple's compiler (../shared/reference/mlmodelc-real, README there).
 *
 * For every real folder with a coremldata.bin (coremltools add_model and
 * FluidAudio, coremlc 3402 and 3404, spec 7): our reader accepts it and our
 * writer re-encodes its description byte for byte; analytics/coremldata.bin
 * is rebuilt byte for byte from its modelHash; metadata.json is regenerated
 * byte for byte from the compiled model as mlmodelc_read loads it (the
 * description from coremldata.bin, the program from model.mil through the
 * model.mil reader), except where Apple's userDefinedMetadata order is its
 * hash map's and not a function of the keys.
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/mil.h"
#include "coreml/mlmodel.h"
#include "coreml/mlmodelc.h"
#include "coreml/pb.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static const char *const REAL[] = {
	"coremltools-add_model",
	"FluidAudio/b1661f0/Argmax.mlmodelc",
	"FluidAudio/b1661f0/TokenDurationPrediction.mlmodelc",
	"FluidAudio/b1661f0/TransposeEncoder.mlmodelc",
	"FluidAudio/f88b126/Argmax.mlmodelc",
	"FluidAudio/f88b126/TokenDurationPrediction.mlmodelc",
	"FluidAudio/f88b126/TransposeEncoder.mlmodelc",
};
#define NREAL (sizeof REAL / sizeof REAL[0])

static char *g_dir;
static char g_tmpdir[] = "/tmp/anemake-mlmodelc-real-XXXXXX";

static uint64_t le64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static char *real_file(const char *folder, const char *item)
{
	return xasprintf("%s/reference/mlmodelc-real/%s/%s", g_dir, folder, item);
}

static char *slurp(const char *folder, const char *item, size_t *n)
{
	char *p = real_file(folder, item), *data = NULL;
	if (read_file(p, FS_MAX_MODEL, &data, n) != 0)
		CHECKF(0, "%s: %s", p, errmsg());
	free(p);
	return data;
}

/* ------------------------------------------------------------------ */
/* coremldata.bin                                                      */

/* A protobuf field as bytes (tag, length, payload) for sorting. */
typedef struct entry {
	const uint8_t *p;
	size_t n;
} entry;

static int entry_cmp(const void *x, const void *y)
{
	const entry *a = x, *b = y;
	int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
	return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* The ModelDescription bytes with the userDefined entries of its metadata
 * (field 100.100, a map Apple writes in hash-map order) sorted; caller frees. */
static pb_buf canonical_description(const uint8_t *d, size_t n)
{
	pb_buf out;
	pb_init(&out);
	pb_reader r = pb_reader_of(d, n);
	pb_field f;
	const uint8_t *at = d;
	while (pb_next(&r, &f) == 1) {
		const uint8_t *end = f.wt == PB_LEN ? f.data + f.len : r.p;
		if (f.field != 100 || f.wt != PB_LEN) {
			pb_raw(&out, at, (size_t)(end - at));
			at = end;
			continue;
		}
		pb_raw(&out, at, (size_t)(f.data - at)); /* tag and length: the sizes do not change */
		entry e[64];
		size_t ne = 0;
		pb_reader s = pb_sub(&f);
		pb_field g;
		const uint8_t *sat = f.data;
		while (pb_next(&s, &g) == 1) {
			const uint8_t *send = g.wt == PB_LEN ? g.data + g.len : s.p;
			if (g.field == 100 && ne < 64)
				e[ne++] = (entry){sat, (size_t)(send - sat)};
			else
				pb_raw(&out, sat, (size_t)(send - sat));
			sat = send;
		}
		qsort(e, ne, sizeof e[0], entry_cmp);
		for (size_t i = 0; i < ne; i++)
			pb_raw(&out, e[i].p, e[i].n);
		at = end;
	}
	return out;
}

static void test_real_coremldata(void)
{
	int exact = 0;
	for (size_t i = 0; i < NREAL; i++) {
		size_t n;
		char *data = slurp(REAL[i], "coremldata.bin", &n);
		ml_model *m = NULL;
		CHECKF(data && mlmodelc_read_coremldata(data, n, &m) == 0, "%s: %s", REAL[i], errmsg());
		if (!m) {
			free(data);
			continue;
		}
		CHECKF(m->desc->nfunctions == 0 && !*m->desc->default_function, "%s: functions in the description", REAL[i]);
		pb_buf b;
		pb_init(&b);
		CHECK(mlmodelc_coremldata(m, &b) == 0);
		/* header, description length and trailer byte for byte; the description
		 * too, up to the order of the userDefined map entries */
		size_t dl = n > 0x53 ? (size_t)le64((const uint8_t *)data + 0x4b) : 0;
		int same_frame = b.len == n && dl + 0x53 + 16 == n && memcmp(b.data, data, 0x53) == 0 &&
				 memcmp(b.data + 0x53 + dl, data + 0x53 + dl, 16) == 0;
		CHECKF(same_frame, "%s: header or trailer differ", REAL[i]);
		if (same_frame) {
			pb_buf x = canonical_description((const uint8_t *)data + 0x53, dl), y = canonical_description(b.data + 0x53, dl);
			CHECKF(x.len == dl && y.len == dl && memcmp(x.data, y.data, dl) == 0, "%s: description differs", REAL[i]);
			pb_release(&x), pb_release(&y);
			exact += memcmp(b.data, data, n) == 0;
		}
		pb_release(&b);
		ml_model_free(m);
		free(data);
	}
	printf("# %d of %zu real coremldata.bin byte for byte; the others differ only in the userDefined entry order\n",
	       exact, NREAL);
}

/* ------------------------------------------------------------------ */
/* analytics/coremldata.bin                                            */

/* memmem without _GNU_SOURCE. */
static const char *find_bytes(const void *hay, size_t n, const char *needle, size_t k)
{
	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (memcmp((const char *)hay + i, needle, k) == 0)
			return (const char *)hay + i;
	return NULL;
}

static int b64_value(char c)
{
	const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(abc, c) : NULL;
	return p ? (int)(p - abc) : -1;
}

/* The 32 bytes of the real file's modelHash (44 base64 characters). */
static int real_hash(const char *data, size_t n, uint8_t out[32])
{
	const char *k = find_bytes(data, n, "modelHash", 9);
	if (!k || (size_t)(k - data) + 9 + 8 + 44 > n || k[9] != 44)
		return -1;
	const char *s = k + 17;
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (int i = 0; i < 44 && s[i] != '='; i++) {
		int v = b64_value(s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v, bits += 6;
		if (bits >= 8 && o < 32)
			out[o++] = (uint8_t)(acc >> (bits - 8)), bits -= 8;
	}
	return o == 32 ? 0 : -1;
}

static void test_real_analytics(void)
{
	for (size_t i = 0; i < NREAL; i++) {
		size_t n;
		char *data = slurp(REAL[i], "analytics/coremldata.bin", &n);
		uint8_t hash[32];
		CHECKF(data && real_hash(data, n, hash) == 0, "%s: no 44-character modelHash", REAL[i]);
		if (!data)
			continue;
		pb_buf b;
		pb_init(&b);
		mlmodelc_analytics(hash, &b);
		CHECKF(b.len == n && memcmp(b.data, data, n) == 0, "%s: our analytics differ (%zu vs %zu bytes)", REAL[i],
		       b.len, n);
		pb_release(&b);
		free(data);
	}
}

/* ------------------------------------------------------------------ */
/* metadata.json                                                       */

static int line_cmp(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* json with the members of userDefinedMetadata sorted (Apple writes them in
 * hash-map order: three orders of the same three keys occur); caller frees. */
static char *sorted_user_metadata(const char *json)
{
	const char *head = "\"userDefinedMetadata\" : {\n", *start = strstr(json, head);
	if (!start)
		return xstrdup(json);
	start += strlen(head);
	const char *end = strstr(start, "\n    }");
	if (!end)
		return xstrdup(json);
	char *body = xstrndup(start, (size_t)(end - start)), *lines[64];
	size_t n = 0;
	for (char *l = strtok(body, "\n"); l && n < 64; l = strtok(NULL, "\n")) {
		size_t k = strlen(l);
		if (k && l[k - 1] == ',')
			l[k - 1] = 0;
		lines[n++] = l;
	}
	qsort(lines, n, sizeof lines[0], line_cmp);
	char *mid = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *t = xasprintf("%s%s%s", mid, lines[i], i + 1 < n ? ",\n" : "");
		free(mid), mid = t;
	}
	char *out = xasprintf("%.*s%s%s", (int)(start - json), json, mid, end);
	free(mid), free(body);
	return out;
}

static void test_real_metadata(void)
{
	int exact = 0;
	for (size_t i = 0; i < NREAL; i++) {
		/* The whole compiled model read back as the runtime reads it:
		 * coremldata.bin's description and model.mil through milparse. */
		char *dir = real_file(REAL[i], ""), *want = NULL;
		size_t nj;
		want = slurp(REAL[i], "metadata.json", &nj);
		ml_model *m = NULL;
		if (!want || mlmodelc_read(dir, &m) != 0) {
			CHECKF(0, "%s: unreadable: %s", REAL[i], errmsg());
			free(dir), free(want);
			continue;
		}
		char *base = path_basename(REAL[i]), *dot = strchr(base, '.');
		if (dot)
			*dot = 0;
		int old_compiler = streq(base, "coremltools-add_model"); /* coremlc 3402 ends the file with a newline */
		char *cls = xstrdup(old_compiler ? "add_model" : base), *json = mlmodelc_metadata_json(m, cls);
		char *got = xasprintf("%s%s", json, old_compiler ? "\n" : "");
		char *a = sorted_user_metadata(got), *b = sorted_user_metadata(want);
		CHECKF(streq(a, b), "%s: metadata.json differs:\n%s\nwant:\n%s", REAL[i], got, want);
		exact += streq(got, want);
		free(a), free(b), free(got), free(json), free(cls), free(base);
		ml_model_free(m);
		free(dir), free(want);
	}
	printf("# %d of %zu real metadata.json byte for byte; the others differ only in the userDefinedMetadata order\n",
	       exact, NREAL);
}

/* ------------------------------------------------------------------ */
/* Key order: Foundation's hash table                                  */

static int str_cmp(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

/* Are keys, in this order, what a hash table of the size for their count
 * enumerates when they are inserted in this order or in sorted order? */
static int fits_hash_table(const char *const *keys, size_t n)
{
	const char **sorted = xcalloc(n + 1, sizeof *sorted);
	size_t *idx = xcalloc(n + 1, sizeof *idx);
	memcpy(sorted, keys, n * sizeof *keys);
	qsort(sorted, n, sizeof *sorted, str_cmp);
	int fits = 0;
	for (int pass = 0; pass < 2 && !fits; pass++) {
		const char *const *ins = pass ? sorted : keys;
		mlmodelc_hash_order(ins, n, idx);
		fits = 1;
		for (size_t i = 0; i < n && fits; i++)
			fits = ins[idx[i]] == keys[i];
	}
	free(sorted), free(idx);
	return mlmodelc_table_size(n) && fits;
}

/* Every object in j (itself and nested) fits; counts into *objects. */
static int objects_fit(const cJSON *j, const char *file, int *objects)
{
	int ok = 1;
	if (cJSON_IsObject(j)) {
		size_t n = (size_t)cJSON_GetArraySize(j), k = 0;
		const char **keys = xcalloc(n + 1, sizeof *keys);
		for (const cJSON *c = j->child; c; c = c->next)
			keys[k++] = c->string;
		if (n > 1) {
			(*objects)++;
			ok = fits_hash_table(keys, n);
			CHECKF(ok, "%s: the order of %s, %s, ... fits no hash-table insertion", file, keys[0], keys[1]);
		}
		free(keys);
	}
	for (const cJSON *c = j->child; c && (cJSON_IsObject(j) || cJSON_IsArray(j)); c = c->next)
		ok &= objects_fit(c, file, objects);
	return ok;
}

/* Every object of every real metadata.json (top level, features,
 * histograms of up to 28 ops, availability, userDefinedMetadata) is
 * ordered as a Foundation hash table of the expected size filled in some
 * order (its own, or sorted for availability): the model mlmodelc_meta.c
 * uses for key sets no real file shows. */
static void test_real_key_order(void)
{
	char *list = xasprintf("find '%s/reference/mlmodelc-real' -name '*metadata.json' | sort > '%s/list'", g_dir,
			       g_tmpdir);
	CHECK(test_sh("%s", list) == 0);
	char *lp = path_join(g_tmpdir, "list"), *text = NULL;
	size_t n;
	int files = 0, objects = 0;
	CHECK(read_file(lp, FS_MAX_TEXT, &text, &n) == 0);
	for (char *f = text ? strtok(text, "\n") : NULL; f; f = strtok(NULL, "\n")) {
		char *json = NULL;
		size_t nj;
		cJSON *doc = read_file(f, FS_MAX_MODEL, &json, &nj) == 0 ? cJSON_Parse(json) : NULL;
		CHECKF(doc, "%s does not parse", f);
		if (doc)
			objects_fit(doc, f, &objects), files++;
		cJSON_Delete(doc);
		free(json);
	}
	CHECK(files >= 17);
	/* the check can fail: add_model's top-level keys reversed fit no insertion order */
	static const char *const reversed[] = {"method", "generatedClassName", "inputSchema", "userDefinedMetadata",
					       "modelType", "availability", "stateSchema", "isUpdatable",
					       "computePrecision", "mlProgramOperationTypeHistogram", "specificationVersion",
					       "modelParameters", "outputSchema", "metadataOutputVersion"};
	CHECK(!fits_hash_table(reversed, sizeof reversed / sizeof reversed[0]));
	printf("# %d objects in %d real metadata.json files, every one in a hash-table order\n", objects, files);
	free(text), free(lp), free(list);
}

/* ------------------------------------------------------------------ */
/* Pieces named by the real files                                      */

static void test_histogram_keys(void)
{
	static const char *const cases[][3] = {
		{"CoreML6", "mul", "Ios16.mul"},        {"CoreML6", "slice_by_index", "SliceByIndex"},
		{"CoreML6", "transpose", "Transpose"},  {"CoreML7", "transpose", "Ios17.transpose"},
		{"CoreML7", "relu", "Ios16.relu"},      {"CoreML7", "range_1d", "Range1d"},
		{"CoreML7", "select", "Select"},        {"CoreML7", "gather_along_axis", "Ios17.gatherAlongAxis"},
		{"CoreML8", "relu", "Ios18.relu"},      {"CoreML7", "constexpr_affine_dequantize", "Ios16.constexprAffineDequantize"},
		{"CoreML8", "read_state", "Ios18.readState"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *k = mlmodelc_histogram_key(cases[i][0], cases[i][1]);
		CHECK_STR(k, cases[i][2]);
		free(k);
	}
}

int main(void)
{
	RUN(test_histogram_keys);
	const char *shared = test_shared();
	if (!shared) {
		printf("skip test_real_files: ../shared not found\n");
		return test_finish();
	}
	g_dir = xstrdup(shared);
	RUN(test_real_coremldata);
	RUN(test_real_analytics);
	RUN(test_real_metadata);
	if (mkdtemp(g_tmpdir)) {
		RUN(test_real_key_order);
		rm_rf(g_tmpdir);
	}
	free(g_dir);
	return test_finish();
}
