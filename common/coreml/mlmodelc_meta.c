/* mlmodelc_meta.c: metadata.json of a compiled model, a function of the
 * model's description and its in-memory MIL program only (mlmodelc.h item 5),
 * so the same code can regenerate a real file from its coremldata.bin and
 * model.mil.
 *
 * Apple writes every JSON object in the enumeration order of a Foundation
 * hash table: the real files fit CFStringHash of the keys, a table of the
 * next size from the list below, and linear probing, in every object whose
 * keys do not collide. Where keys collide, the order depends on the order
 * they were inserted, which differs between real files with one key set
 * (userDefinedMetadata: the three coremltools keys come in three orders). So
 * an object whose key set was observed is written in the observed order;
 * any other is written in the hash-table order with our insertion order.
 * Sizes: a few KB of text; one pass over the program's ops.
 */
#include "base/util.h"
#include "coreml/mil.h"
#include "coreml/mlmodelc.h"
#include "coreml/miltext.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h> /* ssize_t */
#include <stdlib.h>
#include <string.h>

#define MUL_SIGN "\xc3\x97" /* U+00D7, the separator of formattedType shapes */

/* ------------------------------------------------------------------ */
/* A JSON tree                                                         */

typedef enum jn_kind { JN_STR, JN_INT, JN_OBJ, JN_ARR } jn_kind;

typedef struct jn {
	jn_kind kind;
	char *text; /* JN_STR value, JN_INT digits */
	size_t n, cap;
	char **keys; /* JN_OBJ: member keys in insertion order */
	struct jn **kids;
} jn;

static jn *jn_new(jn_kind kind, char *text)
{
	jn *j = xcalloc(1, sizeof *j);
	j->kind = kind, j->text = text;
	return j;
}

static jn *jn_add(jn *o, const char *key, jn *kid)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 8;
		o->keys = xrealloc(o->keys, o->cap * sizeof *o->keys);
		o->kids = xrealloc(o->kids, o->cap * sizeof *o->kids);
	}
	o->keys[o->n] = key ? xstrdup(key) : NULL;
	o->kids[o->n++] = kid;
	return kid;
}

static void jn_str(jn *o, const char *key, const char *v) { jn_add(o, key, jn_new(JN_STR, xstrdup(v))); }
static void jn_int(jn *o, const char *key, long long v) { jn_add(o, key, jn_new(JN_INT, xasprintf("%lld", v))); }

static void jn_free(jn *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++)
		free(j->keys[i]), jn_free(j->kids[i]);
	free(j->keys), free(j->kids), free(j->text), free(j);
}

/* ------------------------------------------------------------------ */
/* Key order                                                           */

/* CFStringHash (CF's __CFStrHashCharacters) of the UTF-16 form of s. */
uint64_t mlmodelc_cf_hash(const char *s)
{
	size_t n = 0, cap = strlen(s) + 1;
	uint16_t *u = xmalloc(cap * 2 * sizeof *u);
	for (const unsigned char *c = (const unsigned char *)s; *c;) {
		uint32_t cp = *c++;
		int more = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : cp >= 0xc0 ? 1 : 0;
		cp &= more ? 0x3fu >> more : 0xffu;
		for (; more && (*c & 0xc0) == 0x80; more--)
			cp = cp << 6 | (*c++ & 0x3f);
		if (cp >= 0x10000)
			u[n++] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10)), cp = 0xdc00 + (cp & 0x3ff);
		u[n++] = (uint16_t)cp;
	}
	uint64_t r = n;
#define FOUR(p) (r = r * 67503105u + (uint64_t)(p)[0] * 16974593u + (uint64_t)(p)[1] * 66049u + (uint64_t)(p)[2] * 257u + (p)[3])
	if (n <= 96) {
		size_t i = 0;
		for (; i + 4 <= n; i += 4)
			FOUR(u + i);
		for (; i < n; i++)
			r = r * 257u + u[i];
	} else { /* the first, middle and last 32 characters */
		for (size_t i = 0; i < 32; i += 4)
			FOUR(u + i);
		for (size_t i = 0; i < 32; i += 4)
			FOUR(u + n / 2 - 16 + i);
		for (size_t i = 0; i < 32; i += 4)
			FOUR(u + n - 32 + i);
	}
#undef FOUR
	free(u);
	return r + (r << (n & 31));
}

/* Foundation's hash table sizes and the counts each holds. */
static const size_t TABLE_SIZE[] = {3, 7, 13, 23, 41, 71, 127, 191, 251, 383, 631, 1087, 1723, 2803};
static const size_t TABLE_HOLDS[] = {3, 6, 11, 19, 32, 52, 85, 118, 155, 237, 390, 672, 1065, 1732};

size_t mlmodelc_table_size(size_t n)
{
	size_t t = 0, nt = sizeof TABLE_SIZE / sizeof TABLE_SIZE[0];
	while (t + 1 < nt && TABLE_HOLDS[t] < n)
		t++;
	return TABLE_HOLDS[t] < n ? 0 : TABLE_SIZE[t];
}

void mlmodelc_hash_order(const char *const *keys, size_t n, size_t *idx)
{
	size_t size = mlmodelc_table_size(n), k = 0;
	if (!size) { /* beyond any real file: keep insertion order */
		for (size_t i = 0; i < n; i++)
			idx[i] = i;
		return;
	}
	size_t *slot = xmalloc(size * sizeof *slot);
	for (size_t s = 0; s < size; s++)
		slot[s] = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t s = (size_t)(mlmodelc_cf_hash(keys[i]) % size);
		while (slot[s] != SIZE_MAX)
			s = (s + 1) % size;
		slot[s] = i;
	}
	for (size_t s = 0; s < size; s++)
		if (slot[s] != SIZE_MAX)
			idx[k++] = slot[s];
	free(slot);
}

/* Orders seen in real files (mlmodelc.h item 5 names them), for key sets
 * whose keys collide in the hash table. Lists end with NULL; "" separates. */
#define BASE_HEAD "metadataOutputVersion", "outputSchema", "modelParameters", "specificationVersion"
#define BASE_TAIL "availability", "modelType"
static const char *const OBSERVED[] = {
	/* coremltools add_model, mlmodelc-export fp16-subnormal-cast */
	BASE_HEAD, "mlProgramOperationTypeHistogram", "computePrecision", "isUpdatable", "stateSchema", BASE_TAIL,
	"userDefinedMetadata", "inputSchema", "generatedClassName", "method", NULL,
	/* mlmodelc-export quantized-constexpr, FluidAudio streaming_encoder */
	"metadataOutputVersion", "storagePrecision", "outputSchema", "modelParameters", "specificationVersion",
	"mlProgramOperationTypeHistogram", "computePrecision", "isUpdatable", "stateSchema", BASE_TAIL,
	"userDefinedMetadata", "inputSchema", "generatedClassName", "method", NULL,
	/* FluidAudio b1661f0 Argmax, TokenDurationPrediction */
	"metadataOutputVersion", "shortDescription", "outputSchema", "modelParameters", "author", "specificationVersion",
	"mlProgramOperationTypeHistogram", "computePrecision", "isUpdatable", "stateSchema", BASE_TAIL, "inputSchema",
	"userDefinedMetadata", "generatedClassName", "method", NULL,
	/* FluidAudio 8842adb decoder, joint_decision, parakeet_eou_preprocessor */
	"metadataOutputVersion", "shortDescription", "outputSchema", "storagePrecision", "modelParameters", "author",
	"specificationVersion", "mlProgramOperationTypeHistogram", "computePrecision", "isUpdatable", "stateSchema",
	BASE_TAIL, "inputSchema", "userDefinedMetadata", "generatedClassName", "method", NULL,
	/* FluidAudio f88b126 (all three), b1661f0 TransposeEncoder */
	"shortDescription", "metadataOutputVersion", "outputSchema", "version", "modelParameters", "author",
	"specificationVersion", "mlProgramOperationTypeHistogram", "computePrecision", "stateSchema", "isUpdatable",
	BASE_TAIL, "inputSchema", "userDefinedMetadata", "generatedClassName", "method", NULL,
	/* mlmodelc-export flexible-multifunction (coremlc 3600) */
	BASE_HEAD, "functions", "mlProgramOperationTypeHistogram", "isUpdatable", "stateSchema", "availability",
	"computePrecision", "modelType", "inputSchema", "defaultFunctionName", "generatedClassName",
	"userDefinedMetadata", "method", NULL,
	/* its functions entries */
	"computePrecision", "outputSchema", "stateSchema", "name", "mlProgramOperationTypeHistogram", "inputSchema", NULL,
	/* a feature; a feature with shape ranges (TransposeEncoder, flexible-multifunction) */
	"hasShapeFlexibility", "isOptional", "dataType", "formattedType", "shortDescription", "shape", "name", "type",
	NULL,
	"dataType", "hasShapeFlexibility", "isOptional", "shapeFlexibility", "shapeRange", "formattedType", "type",
	"shape", "name", "shortDescription", NULL,
	/* availability (every real file) */
	"macOS", "tvOS", "visionOS", "watchOS", "iOS", "macCatalyst", NULL,
	"",
};

static ssize_t member_of(const jn *o, const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->keys[i], key) == 0)
			return (ssize_t)i;
	return -1;
}

/* The observed order of exactly o's keys, into idx; 0 if none was observed. */
static int observed_order(const jn *o, size_t *idx)
{
	for (const char *const *l = OBSERVED; **l; l++) {
		size_t k = 0;
		int all = 1;
		for (; *l; l++, k++) {
			ssize_t m = all && k < o->n ? member_of(o, *l) : -1;
			all = m >= 0;
			if (all)
				idx[k] = (size_t)m;
		}
		if (all && k == o->n)
			return 1;
	}
	return 0;
}

static void member_order(const jn *o, size_t *idx)
{
	if (!observed_order(o, idx))
		mlmodelc_hash_order((const char *const *)o->keys, o->n, idx);
}

/* ------------------------------------------------------------------ */
/* Writing the tree as Apple's JSON writer does                         */

typedef struct jw {
	char *s;
	size_t len, cap;
} jw;

static void jw_puts(jw *w, const char *s)
{
	size_t n = strlen(s);
	GROW(w->s, w->cap, w->len + n + 1);
	memcpy(w->s + w->len, s, n + 1);
	w->len += n;
}

static void jw_indent(jw *w, int depth)
{
	for (int i = 0; i < depth; i++)
		jw_puts(w, "  ");
}

/* JSON string; '/' escaped as Apple's writer does, UTF-8 passed through. */
static void jw_quoted(jw *w, const char *s)
{
	jw_puts(w, "\"");
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		char e[8] = {(char)*c, 0};
		if (*c == '"' || *c == '\\' || *c == '/')
			snprintf(e, sizeof e, "\\%c", *c);
		else if (*c == '\n')
			snprintf(e, sizeof e, "\\n");
		else if (*c < 0x20)
			snprintf(e, sizeof e, "\\u%04x", *c);
		jw_puts(w, e);
	}
	jw_puts(w, "\"");
}

/* "key" : value at depth; containers "{\n" members ",\n" ... "\n}", empty ones "[\n\n]". */
static void jw_node(jw *w, const jn *j, int depth)
{
	if (j->kind == JN_STR) {
		jw_quoted(w, j->text);
		return;
	}
	if (j->kind == JN_INT) {
		jw_puts(w, j->text);
		return;
	}
	size_t *idx = xcalloc(j->n + 1, sizeof *idx);
	if (j->kind == JN_OBJ)
		member_order(j, idx);
	else
		for (size_t i = 0; i < j->n; i++)
			idx[i] = i;
	jw_puts(w, j->kind == JN_OBJ ? "{\n" : "[\n");
	for (size_t i = 0; i < j->n; i++) {
		jw_puts(w, i ? ",\n" : "");
		jw_indent(w, depth + 1);
		if (j->kind == JN_OBJ)
			jw_quoted(w, j->keys[idx[i]]), jw_puts(w, " : ");
		jw_node(w, j->kids[idx[i]], depth + 1);
	}
	jw_puts(w, "\n");
	jw_indent(w, depth);
	jw_puts(w, j->kind == JN_OBJ ? "}" : "]");
	free(idx);
}

/* ------------------------------------------------------------------ */
/* Feature schemas                                                     */

static const char *data_type_name(int array_dt)
{
	switch (array_dt) {
	case ARRAY_FLOAT16: return "Float16";
	case ARRAY_FLOAT32: return "Float32";
	case ARRAY_DOUBLE: return "Double";
	case ARRAY_INT32: return "Int32";
	case ARRAY_INT8: return "Int8";
	default: return "Unknown";
	}
}

/* dims joined by sep, e.g. "1 × 10" or "1, 10"; caller frees. */
static char *join_dims(const ml_shape *s, const char *sep)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < s->n; i++) {
		char *t = xasprintf("%s%s%lld", out, i ? sep : "", (long long)s->dims[i]);
		free(out), out = t;
	}
	return out;
}

static char *bracketed(const ml_shape *s)
{
	char *d = join_dims(s, ", "), *out = xasprintf("[%s]", d);
	free(d);
	return out;
}

/* shapeFlexibility / enumeratedShapes or shapeRange of a flexible input:
 * "1 × 1 | 1 × 64", or per dimension "1 × 1...2048" (a fixed one bare). */
static void flexibility(jn *o, const ml_array_type *at)
{
	char *flex = xstrdup(""), *list = xstrdup(""), *t;
	int enumerated = at->flex == ML_FLEX_ENUMERATED;
	size_t n = enumerated ? at->nshapes : at->nranges;
	for (size_t i = 0; i < n; i++) {
		char *a, *b;
		if (enumerated) {
			a = join_dims(&at->shapes[i], " " MUL_SIGN " "), b = bracketed(&at->shapes[i]);
		} else {
			const ml_size_range *r = &at->ranges[i];
			a = r->upper == (int64_t)r->lower ? xasprintf("%llu", (unsigned long long)r->lower)
							   : xasprintf("%llu...%lld", (unsigned long long)r->lower, (long long)r->upper);
			b = xasprintf("[%llu, %lld]", (unsigned long long)r->lower, (long long)r->upper);
		}
		const char *sep = enumerated ? " | " : " " MUL_SIGN " ";
		t = xasprintf("%s%s%s", flex, i ? sep : "", a), free(flex), flex = t;
		t = xasprintf("%s%s%s", list, i ? ", " : "", b), free(list), list = t;
		free(a), free(b);
	}
	t = xasprintf("[%s]", list);
	jn_str(o, "shapeFlexibility", flex);
	jn_str(o, enumerated ? "enumeratedShapes" : "shapeRange", t);
	free(flex), free(list), free(t);
}

static const char *scalar_feature_name(const ml_feature *f)
{
	switch (f->type ? f->type->kind : ML_FEAT_NONE) {
	case ML_FEAT_INT64: return "Int64";
	case ML_FEAT_DOUBLE: return "Double";
	case ML_FEAT_STRING: return "String";
	case ML_FEAT_IMAGE: return "Image";
	case ML_FEAT_DICT: return "Dictionary";
	case ML_FEAT_SEQUENCE: return "Sequence";
	default: return "Unknown";
	}
}

static jn *feature(const ml_feature *f, int is_state)
{
	const ml_array_type *at = ml_feature_array(f);
	int flex = at && at->flex != ML_FLEX_NONE && !is_state;
	const char *kind = is_state ? "State" : at ? "MultiArray" : scalar_feature_name(f);
	char *dims = at ? join_dims(&at->shape, " " MUL_SIGN " ") : xstrdup("");
	char *formatted = at ? xasprintf("%s (%s%s%s)", kind, data_type_name(at->dtype), *dims ? " " : "", dims)
			     : xstrdup(kind);
	char *shape = at ? bracketed(&at->shape) : xstrdup("[]");
	jn *o = jn_new(JN_OBJ, NULL);
	jn_str(o, "hasShapeFlexibility", flex ? "1" : "0");
	jn_str(o, "isOptional", f->type && f->type->is_optional ? "1" : "0");
	if (at)
		jn_str(o, "dataType", data_type_name(at->dtype));
	jn_str(o, "formattedType", formatted);
	jn_str(o, "shortDescription", f->short_description);
	jn_str(o, "shape", shape);
	jn_str(o, "name", f->name);
	jn_str(o, "type", kind);
	if (flex)
		flexibility(o, at);
	free(dims), free(formatted), free(shape);
	return o;
}

static jn *features(const ml_features *fs, int is_state)
{
	jn *a = jn_new(JN_ARR, NULL);
	for (size_t i = 0; fs && i < fs->n; i++)
		jn_add(a, NULL, feature(fs->v[i], is_state));
	return a;
}

/* ------------------------------------------------------------------ */
/* Histogram                                                           */

/* Where Apple's key for an op differs from "<function opset>.<op>": the
 * op's own opset ("Ios16" for relu in an ios17 function), or "" for the
 * unprefixed UpperCamel keys (Identity, Select, ...), as in the real files.
 * opset NULL: any function opset before ios18 (no ios18 exception is known). */
static const struct {
	const char *op, *opset, *prefix;
} KEY_EXCEPTIONS[] = {
	{"slice_by_index", "ios16", ""}, {"transpose", "ios16", ""},
	{"identity", NULL, ""}, {"select", NULL, ""}, {"tile", NULL, ""}, {"split", NULL, ""}, {"pad", NULL, ""},
	{"stack", NULL, ""}, {"shape", NULL, ""}, {"range_1d", NULL, ""},
	{"relu", "ios17", "Ios16"}, {"sigmoid", "ios17", "Ios16"}, {"silu", "ios17", "Ios16"},
	{"softmax", "ios17", "Ios16"}, {"reduce_sum", "ios17", "Ios16"},
	{"constexpr_affine_dequantize", "ios17", "Ios16"},
};

/* "Ios18.sliceByIndex" for slice_by_index in an ios18 function; "Select". */
char *mlmodelc_histogram_key(const char *opset, const char *op)
{
	const char *tag = miltext_opset_tag(opset);
	char *own = xasprintf("I%s", tag ? tag + 1 : "os18");
	const char *prefix = own;
	for (size_t i = 0; i < sizeof KEY_EXCEPTIONS / sizeof KEY_EXCEPTIONS[0]; i++)
		if (strcmp(KEY_EXCEPTIONS[i].op, op) == 0 && tag && strcmp(tag, "ios18") != 0 &&
		    (!KEY_EXCEPTIONS[i].opset || strcmp(KEY_EXCEPTIONS[i].opset, tag) == 0))
			prefix = KEY_EXCEPTIONS[i].prefix;
	char *k = xasprintf("%s%s%s", prefix, *prefix ? "." : "", op), *o = k + strlen(prefix) + (*prefix ? 1 : 0);
	int upper = !*prefix;
	for (const char *c = op; *c; c++) {
		if (*c == '_' && c[1]) {
			upper = 1;
			continue;
		}
		*o++ = (char)(upper && *c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
		upper = 0;
	}
	*o = 0;
	free(own);
	return k;
}

/* Counts of the non-const ops, keys inserted in order of first use. */
static jn *histogram(const mil_function *fn)
{
	const mil_block *b = fn ? mil_function_block(fn) : NULL;
	jn *h = jn_new(JN_OBJ, NULL);
	for (size_t i = 0; b && i < b->nops; i++) {
		if (strcmp(b->ops[i]->type, "const") == 0)
			continue;
		char *key = mlmodelc_histogram_key(fn->opset, b->ops[i]->type);
		ssize_t m = member_of(h, key);
		if (m >= 0) {
			jn *c = h->kids[m];
			char *t = xasprintf("%lld", atoll(c->text) + 1);
			free(c->text), c->text = t;
		} else {
			jn_int(h, key, 1);
		}
		free(key);
	}
	return h;
}

/* ------------------------------------------------------------------ */
/* Precisions                                                          */

/* Apple's name of a dtype in computePrecision/storagePrecision ("Float16",
 * "Int32", "UInt16"); NULL for the types it does not count (bool, string). */
static const char *precision_name(int dt)
{
	static char buf[64][16];
	const char *n = mil_dtype_name((mil_dtype)dt);
	if (!n || strcmp(n, "bool") == 0 || strcmp(n, "string") == 0 || dt < 0 || dt >= 64)
		return NULL;
	const char *digits = n + strcspn(n, "0123456789");
	const char *word = strncmp(n, "float", 5) == 0 ? "Float" : strncmp(n, "bfloat", 6) == 0 ? "BFloat"
			   : strncmp(n, "uint", 4) == 0   ? "UInt"
			   : strncmp(n, "int", 3) == 0    ? "Int"
							  : NULL;
	if (!word)
		return n;
	snprintf(buf[dt], sizeof buf[dt], "%s%s", word, digits);
	return buf[dt];
}

typedef struct name_set {
	const char *v[32];
	size_t n;
} name_set;

static void set_add(name_set *s, const mil_type *t)
{
	while (t && t->kind == MIL_TYPE_STATE)
		t = t->wrapped;
	const char *name = t && t->kind == MIL_TYPE_TENSOR ? precision_name(t->dtype) : NULL;
	for (size_t i = 0; name && i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return;
	if (name && s->n < 32)
		s->v[s->n++] = name;
}

static int name_cmp(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

/* "Float16", or "Mixed (Float16, Int32)" with the names sorted. */
static char *precision_text(name_set *s)
{
	if (s->n == 0)
		return xstrdup("Float16");
	qsort(s->v, s->n, sizeof s->v[0], name_cmp);
	char *list = xstrdup("");
	for (size_t i = 0; i < s->n; i++) {
		char *t = xasprintf("%s%s%s", list, i ? ", " : "", s->v[i]);
		free(list), list = t;
	}
	if (s->n == 1)
		return list;
	char *out = xasprintf("Mixed (%s)", list);
	free(list);
	return out;
}

/* computePrecision: the dtypes of every value the function names (its
 * inputs and every op output, consts included): "Mixed (Float16, Int32)"
 * for a fp16 model with an int32 axis const, as in the real files. */
static char *compute_precision(const mil_function *fn)
{
	name_set s = {0};
	const mil_block *b = fn ? mil_function_block(fn) : NULL;
	for (size_t i = 0; fn && i < fn->ninputs; i++)
		set_add(&s, fn->inputs[i].type);
	for (size_t i = 0; b && i < b->nops; i++)
		for (size_t o = 0; o < b->ops[i]->noutputs; o++)
			set_add(&s, b->ops[i]->outputs[o].type);
	return precision_text(&s);
}

static void blob_types(const mil_value *v, name_set *s)
{
	if (v && v->kind == MIL_VAL_BLOB)
		set_add(s, v->type);
}

/* storagePrecision: the dtypes of the blob-file data of every function;
 * NULL when there is none (the key is left out then). */
static char *storage_precision(const mil_program *p)
{
	name_set s = {0};
	for (size_t f = 0; p && f < p->nfunctions; f++) {
		const mil_block *b = mil_function_block(p->functions[f]);
		for (size_t i = 0; b && i < b->nops; i++) {
			const mil_op *op = b->ops[i];
			for (size_t a = 0; a < op->attrs.n; a++)
				blob_types(op->attrs.v[a].value, &s);
			for (size_t a = 0; a < op->ninputs; a++)
				for (size_t k = 0; k < op->inputs[a]->n; k++)
					if (op->inputs[a]->v[k].kind != MIL_BIND_NAME)
						blob_types(op->inputs[a]->v[k].value, &s);
		}
	}
	return s.n ? precision_text(&s) : NULL;
}

/* ------------------------------------------------------------------ */
/* The document                                                        */

/* The functions the description names: its list, or the one function. */
typedef struct fn_view {
	const char *name;
	const ml_function_desc *fd;
	const mil_function *fn;
} fn_view;

static size_t function_views(const ml_model *m, const ml_description *d, fn_view **out)
{
	size_t n = d->nfunctions ? d->nfunctions : 1;
	fn_view *v = xcalloc(n, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		v[i].fd = d->nfunctions ? d->functions[i] : &d->top;
		if (d->nfunctions)
			v[i].name = d->functions[i]->name;
		else
			v[i].name = m->program && m->program->nfunctions == 1 ? m->program->functions[0]->name : "main";
		v[i].fn = m->program ? mil_program_find_function(m->program, v[i].name) : NULL;
	}
	*out = v;
	return n;
}

static jn *function_entry(const fn_view *v)
{
	jn *o = jn_new(JN_OBJ, NULL);
	jn_add(o, "computePrecision", jn_new(JN_STR, compute_precision(v->fn)));
	jn_add(o, "outputSchema", features(&v->fd->output, 0));
	jn_add(o, "stateSchema", features(&v->fd->state, 1));
	jn_str(o, "name", v->name);
	jn_add(o, "mlProgramOperationTypeHistogram", histogram(v->fn));
	jn_add(o, "inputSchema", features(&v->fd->input, 0));
	return o;
}

static jn *availability(int spec)
{
	static const char *const table[][6] = {
		/* macOS, tvOS, visionOS, watchOS, iOS, macCatalyst */
		{"13.0", "16.0", "1.0", "9.0", "16.0", "16.0"},  /* spec 7 [obs] */
		{"14.0", "17.0", "1.0", "10.0", "17.0", "17.0"}, /* spec 8 [obs] */
		{"15.0", "18.0", "2.0", "11.0", "18.0", "18.0"}, /* spec 9 [obs] */
	};
	static const char *const os[6] = {"macOS", "tvOS", "visionOS", "watchOS", "iOS", "macCatalyst"};
	int row = spec <= 7 ? 0 : spec == 8 ? 1 : 2;
	jn *o = jn_new(JN_OBJ, NULL);
	for (int i = 0; i < 6; i++)
		jn_str(o, os[i], table[row][i]);
	return o;
}

static jn *user_metadata(const ml_metadata *md)
{
	jn *o = jn_new(JN_OBJ, NULL);
	for (size_t i = 0; md && i < md->nuser; i++)
		jn_str(o, md->user[i].key, md->user[i].value);
	return o;
}

/* generatedClassName: the model name as an identifier. */
static char *class_identifier(const char *name)
{
	char *s = xasprintf("%s%s", name[0] >= '0' && name[0] <= '9' ? "_" : "", name);
	for (char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
			*c = '_';
	return s;
}

static void description_text(jn *o, const ml_metadata *md)
{
	const char *keys[4] = {"shortDescription", "author", "version", "license"};
	const char *vals[4] = {md->short_description, md->author, md->version, md->license};
	for (int i = 0; i < 4; i++)
		if (*vals[i])
			jn_str(o, keys[i], vals[i]);
}

static jn *document(const ml_model *m, const ml_description *d, const char *class_name)
{
	fn_view *v;
	size_t nv = function_views(m, d, &v), def = 0;
	for (size_t i = 0; i < nv; i++)
		if (*d->default_function && strcmp(v[i].name, d->default_function) == 0)
			def = i;
	jn *o = jn_new(JN_OBJ, NULL);
	if (d->metadata)
		description_text(o, d->metadata);
	jn_str(o, "metadataOutputVersion", "3.0");
	char *storage = storage_precision(m->program);
	if (storage)
		jn_add(o, "storagePrecision", jn_new(JN_STR, storage));
	jn_add(o, "outputSchema", features(&v[def].fd->output, 0));
	jn_add(o, "modelParameters", jn_new(JN_ARR, NULL));
	jn_int(o, "specificationVersion", m->spec_version);
	if (d->nfunctions) {
		jn *fns = jn_add(o, "functions", jn_new(JN_ARR, NULL));
		for (size_t i = 0; i < nv; i++)
			jn_add(fns, NULL, function_entry(&v[i]));
		jn_str(o, "defaultFunctionName", v[def].name);
	}
	jn_add(o, "mlProgramOperationTypeHistogram", histogram(v[def].fn));
	jn_add(o, "computePrecision", jn_new(JN_STR, compute_precision(v[def].fn)));
	jn_str(o, "isUpdatable", m->is_updatable ? "1" : "0");
	jn_add(o, "stateSchema", features(&v[def].fd->state, 1));
	jn_add(o, "availability", availability(m->spec_version));
	jn_str(jn_add(o, "modelType", jn_new(JN_OBJ, NULL)), "name", "MLModelType_mlProgram");
	jn_add(o, "userDefinedMetadata", user_metadata(d->metadata));
	jn_add(o, "inputSchema", features(&v[def].fd->input, 0));
	jn_add(o, "generatedClassName", jn_new(JN_STR, class_identifier(class_name)));
	jn_str(o, "method", "predict");
	free(v);
	return o;
}

char *mlmodelc_metadata_json(const ml_model *m, const char *class_name)
{
	ml_model *empty = ml_model_new(0);
	const ml_description *d = m->desc ? m->desc : ml_model_desc(empty);
	jn *top = jn_new(JN_ARR, NULL);
	jn_add(top, NULL, document(m, d, class_name));
	jw w = {0};
	jw_node(&w, top, 0);
	jn_free(top);
	ml_model_free(empty);
	return w.s;
}
