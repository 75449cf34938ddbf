/* safetensors.c: open, validate and convert safetensors checkpoints.
 *
 * Files are mapped read-only and never read whole: opening touches only the
 * headers (at most 100 MB each, typically tens of KB), so memory stays small
 * however large the checkpoint. The header is untrusted input and is checked
 * before anything points into the data region:
 *   - 8-byte length within the file and under ST_MAX_HEADER;
 *   - one JSON object, only whitespace after it; __metadata__ a string map;
 *   - per tensor: known dtype string, shape of <= 8 non-negative integers,
 *     data_offsets [begin,end] with begin <= end <= data size, and
 *     product(shape) * element size (overflow-checked) == end - begin;
 *   - no duplicate names (within a file or across shards), no overlapping
 *     byte ranges;
 *   - no pre-quantized weights (FP8/INT8 weights, GPTQ/AWQ/bitsandbytes
 *     tensors): those checkpoints lost the values anemake must quantize.
 * Every message is one line: "<file>: tensor '<name>': <what is wrong>".
 */
#include "checkpoint/safetensors.h"
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>   /* opendir: unindexed shards */
#include <fcntl.h>    /* open */
#include <math.h>     /* floor */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h> /* mmap */
#include <sys/stat.h>
#include <unistd.h>

struct st_file {
	char *path;           /* as given; st_tensor.file points here */
	const uint8_t *base;  /* file image */
	size_t size;
	void *map;            /* our mapping, or NULL for a caller's buffer */
};

/* ------------------------------------------------------------------ */
/* Dtypes                                                              */

static const struct {
	const char *name;
	int bits;
	int quantized; /* only ever used for quantized weights */
} g_dtypes[ST_DTYPE_COUNT] = {
	[ST_F32] = {"F32", 32, 0},        [ST_F16] = {"F16", 16, 0},
	[ST_BF16] = {"BF16", 16, 0},      [ST_F64] = {"F64", 64, 0},
	[ST_C64] = {"C64", 64, 0},        [ST_I8] = {"I8", 8, 0},
	[ST_U8] = {"U8", 8, 0},           [ST_I16] = {"I16", 16, 0},
	[ST_U16] = {"U16", 16, 0},        [ST_I32] = {"I32", 32, 0},
	[ST_U32] = {"U32", 32, 0},        [ST_I64] = {"I64", 64, 0},
	[ST_U64] = {"U64", 64, 0},        [ST_BOOL] = {"BOOL", 8, 0},
	[ST_F8_E4M3] = {"F8_E4M3", 8, 1}, [ST_F8_E5M2] = {"F8_E5M2", 8, 1},
	[ST_F8_E8M0] = {"F8_E8M0", 8, 1}, [ST_F6_E2M3] = {"F6_E2M3", 6, 1},
	[ST_F6_E3M2] = {"F6_E3M2", 6, 1}, [ST_F4] = {"F4", 4, 1},
};

const char *st_dtype_name(st_dtype t)
{
	return t >= 0 && t < ST_DTYPE_COUNT ? g_dtypes[t].name : "?";
}

int st_dtype_bits(st_dtype t)
{
	return t >= 0 && t < ST_DTYPE_COUNT ? g_dtypes[t].bits : 0;
}

int st_dtype_parse(const char *s, st_dtype *out)
{
	for (int i = 0; s && i < ST_DTYPE_COUNT; i++)
		if (strcmp(s, g_dtypes[i].name) == 0) {
			*out = (st_dtype)i;
			return 0;
		}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Message helpers                                                     */

/* Names come from the file: cut them short and mask control characters so
 * a hostile header cannot break the one-line message. */
#define QN 112
static const char *qs(const char *s, char buf[QN])
{
	size_t n = 0;
	for (; s[n] && n < QN - 4; n++)
		buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
	if (s[n])
		memcpy(buf + n, "...", 3), n += 3;
	buf[n] = 0;
	return buf;
}

const char *st_shape_str(const st_tensor *t, char *buf, size_t cap)
{
	ASSERT(cap >= 8);
	size_t n = 0;
	buf[n++] = '[';
	for (int i = 0; i < t->rank; i++) {
		char d[32];
		int k = snprintf(d, sizeof d, "%s%llu", i ? "," : "", (unsigned long long)t->shape[i]);
		if (n + (size_t)k + 2 > cap) {
			snprintf(buf + (n < cap - 5 ? n : cap - 5), 5, "...]");
			return buf;
		}
		memcpy(buf + n, d, (size_t)k);
		n += (size_t)k;
	}
	buf[n++] = ']';
	buf[n] = 0;
	return buf;
}

/* ------------------------------------------------------------------ */
/* One file image: header parsing                                      */

/* A JSON number that is an integer in [0, 2^53] (exact in a double). */
static int json_u64(const cJSON *j, uint64_t *out)
{
	if (!cJSON_IsNumber(j))
		return -1;
	double d = j->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d))
		return -1;
	*out = (uint64_t)d;
	return 0;
}

static int parse_dtype(const char *lbl, const char *qn, const cJSON *j, st_tensor *t)
{
	char q[QN];
	if (!cJSON_IsString(j))
		return errf("%s: tensor '%s': dtype must be a string", lbl, qn);
	st_dtype d;
	if (st_dtype_parse(j->valuestring, &d) != 0)
		return errf("%s: tensor '%s': unknown dtype '%s'", lbl, qn, qs(j->valuestring, q));
	t->dtype = d;
	return 0;
}

static int parse_shape(const char *lbl, const char *qn, const cJSON *j, st_tensor *t)
{
	if (!cJSON_IsArray(j))
		return errf("%s: tensor '%s': shape must be an array of integers", lbl, qn);
	uint64_t numel = 1;
	const cJSON *d;
	cJSON_ArrayForEach(d, j) {
		if (t->rank == ST_MAX_RANK)
			return errf("%s: tensor '%s': shape has more than %d dimensions", lbl, qn, ST_MAX_RANK);
		uint64_t v;
		if (json_u64(d, &v) != 0)
			return errf("%s: tensor '%s': shape entry %d is not a non-negative integer",
			            lbl, qn, t->rank);
		t->shape[t->rank++] = v;
		if (mul_u64(numel, v, &numel) != 0)
			return errf("%s: tensor '%s': element count of the shape overflows 64 bits", lbl, qn);
	}
	t->numel = numel;
	return 0;
}

static int parse_offsets(const char *lbl, const char *qn, const cJSON *j, uint64_t data_len,
                         st_tensor *t)
{
	uint64_t v[2];
	if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2 || json_u64(j->child, &v[0]) != 0 ||
	    json_u64(j->child->next, &v[1]) != 0)
		return errf("%s: tensor '%s': data_offsets must be [begin, end] with non-negative integers",
		            lbl, qn);
	if (v[0] > v[1])
		return errf("%s: tensor '%s': data_offsets [%llu,%llu] end before begin", lbl, qn,
		            (unsigned long long)v[0], (unsigned long long)v[1]);
	if (v[1] > data_len)
		return errf("%s: tensor '%s': data_offsets [%llu,%llu] past end of data (%llu bytes)",
		            lbl, qn, (unsigned long long)v[0], (unsigned long long)v[1],
		            (unsigned long long)data_len);
	t->offset = v[0];
	t->nbytes = v[1] - v[0];
	return 0;
}

/* Bytes the shape needs must be exactly the bytes the offsets give it. */
static int check_size(const char *lbl, const char *qn, st_tensor *t)
{
	char sh[96];
	uint64_t bits, need;
	if (mul_u64(t->numel, (uint64_t)st_dtype_bits(t->dtype), &bits) != 0)
		return errf("%s: tensor '%s': shape %s of %s overflows 64 bits of bytes", lbl, qn,
		            st_shape_str(t, sh, sizeof sh), st_dtype_name(t->dtype));
	if (bits % 8)
		return errf("%s: tensor '%s': %llu elements of %s do not fill whole bytes", lbl, qn,
		            (unsigned long long)t->numel, st_dtype_name(t->dtype));
	need = bits / 8;
	if (need != t->nbytes)
		return errf("%s: tensor '%s': shape %s of %s needs %llu bytes but data_offsets hold %llu",
		            lbl, qn, st_shape_str(t, sh, sizeof sh), st_dtype_name(t->dtype),
		            (unsigned long long)need, (unsigned long long)t->nbytes);
	return 0;
}

static int parse_entry(const char *lbl, const cJSON *e, const uint8_t *data, uint64_t data_len,
                       st_tensor *t)
{
	char qn[QN];
	qs(e->string, qn);
	if (!*e->string)
		return errf("%s: a tensor has an empty name", lbl);
	if (!cJSON_IsObject(e))
		return errf("%s: tensor '%s': entry is not an object", lbl, qn);
	static const char *const keys[] = {"dtype", "shape", "data_offsets"};
	const cJSON *f[3];
	for (int i = 0; i < 3; i++)
		if (!(f[i] = cJSON_GetObjectItemCaseSensitive(e, keys[i])))
			return errf("%s: tensor '%s': missing '%s'", lbl, qn, keys[i]);
	memset(t, 0, sizeof *t);
	if (parse_dtype(lbl, qn, f[0], t) || parse_shape(lbl, qn, f[1], t) ||
	    parse_offsets(lbl, qn, f[2], data_len, t) || check_size(lbl, qn, t))
		return -1;
	t->data = data + t->offset;
	return 0;
}

static int check_metadata(const char *lbl, const cJSON *meta)
{
	if (!cJSON_IsObject(meta))
		return errf("%s: __metadata__ is not an object", lbl);
	const cJSON *v;
	cJSON_ArrayForEach(v, meta)
		if (!cJSON_IsString(v)) {
			char q[QN];
			return errf("%s: __metadata__ '%s' is not a string", lbl, qs(v->string, q));
		}
	return 0;
}

/* Parse the JSON header of an image of `size` bytes; on success *root is
 * the object and *hlen its length. */
static int parse_header_json(const char *lbl, const uint8_t *base, size_t size, cJSON **root,
                             uint64_t *hlen)
{
	if (size < 8)
		return errf("%s: file too short for a safetensors header (%zu bytes)", lbl, size);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | base[i];
	if (n > ST_MAX_HEADER)
		return errf("%s: header length %llu exceeds the %llu MB limit", lbl,
		            (unsigned long long)n, (unsigned long long)(ST_MAX_HEADER >> 20));
	if (n > size - 8)
		return errf("%s: header length %llu past end of file (%zu bytes)", lbl,
		            (unsigned long long)n, size);
	/* cJSON may peek one byte past the length it is given: parse a
	 * NUL-terminated copy, not the mapping. */
	char *text = xstrndup((const char *)base + 8, (size_t)n);
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(text, (size_t)n, &end, 0);
	size_t at = end ? (size_t)(end - text) : 0;
	int rc = 0;
	if (!j)
		rc = errf("%s: header is not valid JSON (error near byte %zu of %llu)", lbl, at,
		          (unsigned long long)n);
	else if (!cJSON_IsObject(j))
		rc = errf("%s: header is not a JSON object", lbl);
	for (size_t i = at; rc == 0 && i < n; i++)
		if (!strchr(" \t\r\n", text[i]) || !text[i])
			rc = errf("%s: header has trailing bytes after the JSON object (byte %zu)", lbl, i);
	free(text);
	if (rc) {
		cJSON_Delete(j);
		return rc;
	}
	*root = j;
	*hlen = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Assembling a checkpoint                                             */

static int cmp_offset(const void *a, const void *b)
{
	const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 :
	       x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Tensors t[0..n) of one file must not share bytes (empty ones own none). */
static int check_overlaps(const char *lbl, st_tensor *t, size_t n)
{
	st_tensor **by = xmalloc(xmul(n, sizeof *by));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (t[i].nbytes)
			by[k++] = &t[i];
	qsort(by, k, sizeof *by, cmp_offset);
	int rc = 0;
	for (size_t i = 1; i < k && rc == 0; i++) {
		const st_tensor *a = by[i - 1], *b = by[i];
		if (b->offset < a->offset + a->nbytes) {
			char qa[QN], qb[QN];
			rc = errf("%s: tensors '%s' and '%s' overlap (bytes [%llu,%llu) and [%llu,%llu))",
			          lbl, qs(a->name, qa), qs(b->name, qb), (unsigned long long)a->offset,
			          (unsigned long long)(a->offset + a->nbytes),
			          (unsigned long long)b->offset, (unsigned long long)(b->offset + b->nbytes));
		}
	}
	free(by);
	return rc;
}

/* Parse one file image and append its tensors to m. */
static int add_image(st_model *m, const uint8_t *base, size_t size, const char *path, void *map)
{
	struct st_file *f;
	m->files = xrealloc(m->files, xmul(m->nfiles + 1, sizeof *m->files));
	f = &m->files[m->nfiles++];
	f->path = xstrdup(path);
	f->base = base;
	f->size = size;
	f->map = map;

	cJSON *root = NULL;
	uint64_t hlen = 0;
	if (parse_header_json(f->path, base, size, &root, &hlen) != 0)
		return -1;
	const uint8_t *data = base + 8 + hlen;
	uint64_t data_len = size - 8 - hlen;
	size_t first = m->ntensors, cap = m->ntensors;
	int rc = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, root) {
		if (strcmp(e->string, "__metadata__") == 0) {
			if ((rc = check_metadata(f->path, e)) != 0)
				break;
			continue;
		}
		GROW(m->tensors, cap, m->ntensors + 1);
		st_tensor *t = &m->tensors[m->ntensors];
		if ((rc = parse_entry(f->path, e, data, data_len, t)) != 0)
			break;
		t->name = xstrdup(e->string);
		t->file = f->path;
		t->mapped = f->map != NULL;
		m->ntensors++;
	}
	cJSON_Delete(root);
	if (rc == 0 && m->ntensors > first) /* tensors is NULL while empty: no NULL + 0 */
		rc = check_overlaps(f->path, m->tensors + first, m->ntensors - first);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	const st_tensor *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->file, y->file);
}

/* Tensor names marking GPTQ/AWQ, FP8 (scale tensors), bitsandbytes. */
static const char *quantized_name(const char *name)
{
	static const char *const last[] = {
		"qweight", "qzeros", "scales", "g_idx", "weight_scale", "weight_scale_inv",
		"input_scale", "weight_zero_point", "absmax", "quant_map", "SCB",
	};
	const char *dot = strrchr(name, '.');
	const char *tail = dot ? dot + 1 : name;
	for (size_t i = 0; i < sizeof last / sizeof last[0]; i++)
		if (strcmp(tail, last[i]) == 0)
			return "is a GPTQ/AWQ/FP8 quantization tensor";
	if (strncmp(tail, "quant_state", 11) == 0)
		return "is a bitsandbytes quantization tensor";
	return NULL;
}

static int check_not_quantized(const st_tensor *t)
{
	char qn[QN];
	const char *why = quantized_name(t->name);
	if (!why && g_dtypes[t->dtype].quantized)
		why = "holds FP8/FP6/FP4 values";
	if (!why && (t->dtype == ST_I8 || t->dtype == ST_U8) && has_suffix(t->name, ".weight"))
		why = "holds 8-bit integer weights";
	if (!why)
		return 0;
	return errf("%s: tensor '%s' (%s) %s: the checkpoint is pre-quantized; anemake needs "
	            "the original fp16/bf16/fp32 weights", t->file, qs(t->name, qn),
	            st_dtype_name(t->dtype), why);
}

/* After all files are in: sort by name, refuse duplicates and quantized
 * checkpoints. */
static int finish(st_model *m)
{
	if (m->ntensors > 1) /* qsort(NULL, 0) is undefined */
		qsort(m->tensors, m->ntensors, sizeof *m->tensors, cmp_name);
	for (size_t i = 0; i < m->ntensors; i++) {
		const st_tensor *t = &m->tensors[i];
		if (i > 0 && strcmp(t[-1].name, t->name) == 0) {
			char qn[QN];
			if (t[-1].file == t->file)
				return errf("%s: duplicate tensor '%s'", t->file, qs(t->name, qn));
			return errf("tensor '%s' is in both '%s' and '%s'", qs(t->name, qn), t[-1].file,
			            t->file);
		}
		if (check_not_quantized(t) != 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Opening files and directories                                       */

static int map_file(st_model *m, const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return errf("cannot open '%s':", path);
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return errf("'%s' is not a regular file", path);
	}
	size_t size = (size_t)st.st_size;
	void *map = NULL;
	if (size > 0 && (map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
		close(fd);
		return errf("cannot map '%s':", path);
	}
	close(fd); /* the mapping keeps the file */
	return add_image(m, map ? map : (const uint8_t *)"", size, path, map);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.safetensors in dir (regular files), sorted by name. */
static int list_shards(const char *dir, char ***names, size_t *n)
{
	DIR *d = opendir(dir);
	if (!d)
		return errf("cannot open directory '%s':", dir);
	size_t cap = 0;
	*names = NULL;
	*n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !has_suffix(e->d_name, ".safetensors"))
			continue;
		GROW(*names, cap, *n + 1);
		(*names)[(*n)++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (*n > 1)
		qsort(*names, *n, sizeof **names, cmp_str);
	return 0;
}

static void free_strs(char **s, size_t n)
{
	for (size_t i = 0; s && i < n; i++)
		free(s[i]);
	free(s);
}

static int open_unindexed(st_model *m, const char *dir)
{
	char **names;
	size_t n = 0;
	if (list_shards(dir, &names, &n) != 0)
		return -1;
	int rc = n ? 0 : errf("no *.safetensors files in '%s'", dir);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *p = path_join(dir, names[i]);
		rc = map_file(m, p);
		free(p);
	}
	free_strs(names, n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sharded checkpoints: model.safetensors.index.json                   */

typedef struct st_index_entry {
	char *name;  /* tensor */
	char *file;  /* shard holding it */
} st_index_entry;

typedef struct st_index {
	st_index_entry *e;  /* sorted by name */
	size_t n;
} st_index;

static void index_release(st_index *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->e[i].name);
		free(x->e[i].file);
	}
	free(x->e);
	memset(x, 0, sizeof *x);
}

/* A shard name must stay inside the model directory, and be printable:
 * messages name the file. */
static int bad_shard_name(const char *s)
{
	if (!*s || s[0] == '/')
		return 1;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return 1;
	for (const char *p = s; (p = strstr(p, "..")); p += 2)
		if ((p == s || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
			return 1;
	return 0;
}

static int index_read_map(st_index *x, const cJSON *map, const char *lbl)
{
	size_t cap = 0;
	const cJSON *e;
	cJSON_ArrayForEach(e, map) {
		char qn[QN], qf[QN];
		if (!cJSON_IsString(e))
			return errf("%s: weight_map entry '%s' is not a file name", lbl, qs(e->string, qn));
		if (bad_shard_name(e->valuestring))
			return errf("%s: tensor '%s': shard '%s' is not a file inside the model directory",
			            lbl, qs(e->string, qn), qs(e->valuestring, qf));
		GROW(x->e, cap, x->n + 1);
		x->e[x->n].name = xstrdup(e->string);
		x->e[x->n++].file = xstrdup(e->valuestring);
	}
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const st_index_entry *)a)->name, ((const st_index_entry *)b)->name);
}

static int index_parse(st_index *x, const char *text, size_t len, const char *lbl)
{
	memset(x, 0, sizeof *x);
	cJSON *root = cJSON_ParseWithLength(text, len);
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	int rc = 0;
	if (!root)
		rc = errf("%s: not valid JSON", lbl);
	else if (!cJSON_IsObject(map))
		rc = errf("%s: no weight_map object", lbl);
	else
		rc = index_read_map(x, map, lbl);
	cJSON_Delete(root);
	if (rc == 0 && x->n == 0)
		rc = errf("%s: weight_map is empty", lbl);
	if (rc == 0)
		qsort(x->e, x->n, sizeof *x->e, cmp_entry);
	for (size_t i = 1; rc == 0 && i < x->n; i++)
		if (strcmp(x->e[i - 1].name, x->e[i].name) == 0) {
			char qn[QN];
			rc = errf("%s: tensor '%s' is listed twice", lbl, qs(x->e[i].name, qn));
		}
	if (rc)
		index_release(x);
	return rc;
}

static int index_load(st_index *x, const char *path)
{
	char *text;
	size_t n;
	if (read_file(path, FS_MAX_TEXT, &text, &n) != 0)
		return -1;
	int rc = index_parse(x, text, n, path);
	free(text);
	return rc;
}

/* Each listed tensor must be in the shard the index names. */
static int index_verify(const st_model *m, const st_index *x, const char *dir, const char *lbl)
{
	for (size_t i = 0; i < x->n; i++) {
		char qn[QN];
		const st_index_entry *e = &x->e[i];
		const st_tensor *t = st_find(m, e->name);
		char *want = path_join(dir, e->file);
		int rc = 0;
		if (!t)
			rc = errf("%s: lists tensor '%s' in '%s', which has no such tensor", lbl,
			          qs(e->name, qn), e->file);
		else if (strcmp(t->file, want) != 0)
			rc = errf("%s: lists tensor '%s' in '%s' but it is in '%s'", lbl,
			          qs(e->name, qn), e->file, t->file);
		free(want);
		if (rc)
			return rc;
	}
	return 0;
}

static int open_indexed(st_model *m, const char *dir, const char *index_path)
{
	st_index x;
	if (index_load(&x, index_path) != 0)
		return -1;
	/* the distinct shards, in name order */
	char **shards = xmalloc(xmul(x.n, sizeof *shards));
	for (size_t i = 0; i < x.n; i++)
		shards[i] = x.e[i].file;
	qsort(shards, x.n, sizeof *shards, cmp_str);
	int rc = 0;
	for (size_t i = 0; i < x.n && rc == 0; i++) {
		if (i > 0 && strcmp(shards[i - 1], shards[i]) == 0)
			continue;
		char *p = path_join(dir, shards[i]);
		rc = map_file(m, p);
		free(p);
	}
	free(shards);
	if (rc == 0)
		rc = finish(m);
	if (rc == 0)
		rc = index_verify(m, &x, dir, index_path);
	index_release(&x);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Public: open / close / lookup                                       */

int st_open(st_model *m, const char *path)
{
	memset(m, 0, sizeof *m);
	m->where = xstrdup(path);
	int rc;
	if (!is_dir(path)) {
		rc = map_file(m, path);
		if (rc == 0)
			rc = finish(m);
	} else {
		char *index = path_join(path, "model.safetensors.index.json");
		if (path_exists(index))
			rc = open_indexed(m, path, index);
		else if ((rc = open_unindexed(m, path)) == 0)
			rc = finish(m);
		free(index);
	}
	if (rc)
		st_close(m);
	return rc;
}

int st_open_memory(st_model *m, const void *buf, size_t size, const char *label)
{
	memset(m, 0, sizeof *m);
	m->where = xstrdup(label);
	int rc = add_image(m, size ? buf : (const void *)"", size, label, NULL);
	if (rc == 0)
		rc = finish(m);
	if (rc)
		st_close(m);
	return rc;
}

void st_close(st_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++) {
		if (m->files[i].map)
			munmap(m->files[i].map, m->files[i].size);
		free(m->files[i].path);
	}
	for (size_t i = 0; i < m->ntensors; i++)
		free((char *)m->tensors[i].name);
	free(m->files);
	free(m->tensors);
	free(m->where);
	memset(m, 0, sizeof *m);
}

static int cmp_key(const void *key, const void *elem)
{
	return strcmp(key, ((const st_tensor *)elem)->name);
}

const st_tensor *st_find(const st_model *m, const char *name)
{
	if (!m->ntensors)
		return NULL;
	return bsearch(name, m->tensors, m->ntensors, sizeof *m->tensors, cmp_key);
}

const st_tensor *st_get(const st_model *m, const char *name)
{
	const st_tensor *t = st_find(m, name);
	if (!t)
		errf("tensor '%s' not found in '%s'", name, m->where ? m->where : "?");
	return t;
}

size_t st_count(const st_model *m) { return m->ntensors; }

const st_tensor *st_at(const st_model *m, size_t i)
{
	ASSERT(i < m->ntensors);
	return &m->tensors[i];
}

/* ------------------------------------------------------------------ */
/* Conversion                                                          */

uint64_t st_rows(const st_tensor *t) { return t->rank ? t->shape[0] : 1; }

uint64_t st_row_elems(const st_tensor *t)
{
	/* Not numel / shape[0]: shape[0] may be 0. Any prefix of this product
	 * was overflow-checked with numel, or a 0 came first and the (unsigned,
	 * well-defined) product is 0 from there on. */
	uint64_t n = 1;
	for (int i = 1; i < t->rank; i++)
		n *= t->shape[i];
	return n;
}

int st_check_convertible(const st_tensor *t)
{
	char qn[QN];
	if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16)
		return 0;
	if (g_dtypes[t->dtype].quantized || t->dtype == ST_I8 || t->dtype == ST_U8)
		return errf("%s: tensor '%s' is %s: quantized weights cannot be converted; anemake "
		            "needs the original fp16/bf16/fp32 weights", t->file, qs(t->name, qn),
		            st_dtype_name(t->dtype));
	return errf("%s: tensor '%s' has dtype %s; anemake converts only F32, F16 and BF16",
	            t->file, qs(t->name, qn), st_dtype_name(t->dtype));
}

static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static inline float le_f32(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	             (uint32_t)p[3] << 24;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static void to_f32(st_dtype dt, const uint8_t *src, float *dst, size_t n)
{
	if (dt == ST_F32)
		for (size_t i = 0; i < n; i++)
			dst[i] = le_f32(src + 4 * i);
	else if (dt == ST_F16)
		for (size_t i = 0; i < n; i++)
			dst[i] = fp16_to_f32(le16(src + 2 * i));
	else
		for (size_t i = 0; i < n; i++)
			dst[i] = bf16_to_f32(le16(src + 2 * i));
}

static size_t to_fp16(st_dtype dt, const uint8_t *src, uint16_t *dst, size_t n)
{
	size_t clamped = 0;
	int of = 0;
	for (size_t i = 0; i < n; i++) {
		if (dt == ST_F32) {
			dst[i] = f32_to_fp16(le_f32(src + 4 * i), &of);
		} else if (dt == ST_BF16) {
			/* Magnitudes that are normal halves (2^-14 up to 65280) convert
			 * exactly by rebiasing the exponent: the 7 mantissa bits fit in
			 * 10. The rest (zero, subnormal, beyond fp16) take the general
			 * rounding path. Same bits either way, several times faster. */
			uint16_t b = le16(src + 2 * i), a = b & 0x7fff;
			of = 0;
			if (a >= 0x3880 && a <= 0x477f)
				dst[i] = (uint16_t)((b & 0x8000) | (uint16_t)((a - 0x3800) << 3));
			else
				dst[i] = f32_to_fp16(bf16_to_f32(b), &of);
		} else {
			uint16_t h = le16(src + 2 * i);
			/* inf/NaN go through the clamping path; finite halves are exact */
			of = 0;
			dst[i] = (h & 0x7c00) == 0x7c00 ? f32_to_fp16(fp16_to_f32(h), &of) : h;
		}
		clamped += (size_t)of;
	}
	return clamped;
}

/* 1 for NaN or +-inf: the exponent all ones, in the element's own format. */
static int nonfinite_at(st_dtype dt, const uint8_t *p)
{
	if (dt == ST_F32)
		return (p[3] & 0x7f) == 0x7f && (p[2] & 0x80);
	if (dt == ST_BF16)
		return (p[1] & 0x7f) == 0x7f && (p[0] & 0x80);
	return (le16(p) & 0x7c00) == 0x7c00;
}

/* NaN and infinite values of the whole tensor (counted only once one is seen). */
static void count_nonfinite(const st_tensor *t, size_t *nan, size_t *inf)
{
	size_t w = (size_t)st_dtype_bits(t->dtype) / 8;
	*nan = *inf = 0;
	for (uint64_t i = 0; i < t->numel; i++) {
		const uint8_t *p = t->data + i * w;
		if (!nonfinite_at(t->dtype, p))
			continue;
		int mant = t->dtype == ST_F32 ? ((p[2] & 0x7f) | p[1] | p[0]) != 0
			   : t->dtype == ST_BF16 ? (p[0] & 0x7f) != 0 : (le16(p) & 0x3ff) != 0;
		*(mant ? nan : inf) += 1;
	}
}

/* Weights must be finite: a NaN or an infinity would go through the fp16
 * clamp (or the reference) into the package unnoticed. */
static int check_finite(const st_tensor *t, const uint8_t *src, uint64_t n)
{
	size_t w = (size_t)st_dtype_bits(t->dtype) / 8;
	uint64_t i = 0;
	while (i < n && !nonfinite_at(t->dtype, src + i * w))
		i++;
	if (i == n)
		return 0;
	size_t nan, inf;
	char qn[QN];
	count_nonfinite(t, &nan, &inf);
	return errf("%s: tensor '%s' has %zu NaN and %zu infinite values (of %llu): anemake converts finite weights only",
	            t->file, qs(t->name, qn), nan, inf, (unsigned long long)t->numel);
}

static int read_rows(const st_tensor *t, uint64_t row0, uint64_t nrows, void *dst, int fp16,
                     size_t *clamped)
{
	if (st_check_convertible(t) != 0)
		return -1;
	uint64_t rows = st_rows(t), re = st_row_elems(t);
	if (row0 > rows || nrows > rows - row0) {
		char qn[QN];
		return errf("%s: tensor '%s': rows [%llu,%llu) out of range (%llu rows)", t->file,
		            qs(t->name, qn), (unsigned long long)row0,
		            (unsigned long long)(row0 + nrows), (unsigned long long)rows);
	}
	/* in range, so both products are bounded by numel */
	uint64_t n = nrows * re, first = row0 * re;
	ASSERT(n <= SIZE_MAX);
	const uint8_t *src = t->data + first * (uint64_t)(st_dtype_bits(t->dtype) / 8);
	if (check_finite(t, src, n) != 0)
		return -1;
	size_t c = 0;
	if (fp16)
		c = to_fp16(t->dtype, src, dst, (size_t)n);
	else
		to_f32(t->dtype, src, dst, (size_t)n);
	if (clamped)
		*clamped = c;
	return 0;
}

/* A stage converts each tensor once: once it has, its pages of the mapped
 * checkpoint are dropped from the process (the file stays in the page
 * cache), so a stage's resident memory is its own buffers, not every
 * checkpoint page it has touched. Touching them again just refaults. */
static void drop_pages(const st_tensor *t)
{
	long page = sysconf(_SC_PAGESIZE);
	if (!t->mapped || page <= 0 || !t->nbytes)
		return;
	uintptr_t a = (uintptr_t)t->data & ~(uintptr_t)(page - 1);
	uintptr_t b = ((uintptr_t)t->data + (uintptr_t)t->nbytes + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
	madvise((void *)a, b - a, MADV_DONTNEED); /* advice only: failure changes nothing */
}

int st_read_f32(const st_tensor *t, float *dst)
{
	int rc = read_rows(t, 0, st_rows(t), dst, 0, NULL);
	drop_pages(t);
	return rc;
}

int st_read_fp16(const st_tensor *t, uint16_t *dst, size_t *clamped)
{
	int rc = read_rows(t, 0, st_rows(t), dst, 1, clamped);
	drop_pages(t);
	return rc;
}

int st_read_rows_f32(const st_tensor *t, uint64_t row0, uint64_t nrows, float *dst)
{
	return read_rows(t, row0, nrows, dst, 0, NULL);
}

int st_read_rows_fp16(const st_tensor *t, uint64_t row0, uint64_t nrows, uint16_t *dst,
                      size_t *clamped)
{
	return read_rows(t, row0, nrows, dst, 1, clamped);
}
