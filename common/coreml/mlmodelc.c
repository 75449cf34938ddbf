/* mlmodelc.c: the compiled-model layout written without Apple's compiler
 * (formats, renderings and what is unverified: see mlmodelc.h).
 *
 * Input: one .mlpackage (model.mlmodel of a few MB, weight.bin up to ~1 GB).
 * Output: X.mlmodelc/ with model.mil (text, ~100 bytes per op),
 * coremldata.bin (hundreds of bytes to a few KB), metadata.json (a few KB),
 * analytics/coremldata.bin (108 bytes) and weights/ copied byte for byte in
 * 1 MiB pieces. Sections follow the files in that order.
 */
#include "coreml/mlmodelc.h"
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/hash.h"
#include "base/util.h"
#include "base/version.h"
#include "coreml/mil.h"
#include "coreml/miltext.h"
#include "coreml/mlpackage.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* mkdir */
#include <unistd.h>   /* fsync */

const char *const mlmodelc_unverified[] = {
	"the coremldata.bin field at offset 4 (we write 5, as in the one real spec-7 file)",
	"functions/defaultFunctionName in the coremldata.bin description of single-function models",
	"the analytics SpecificationDetails section (its modelHash input is unknown; left out)",
	"the model.mil text of state inputs, read_state/write_state and constexpr_lut_to_dense, and the "
	"EnumeratedShapes ids of FlexibleShapeInformation",
	"the metadata.json stateSchema entry format, functions entries, histogram keys (camelCase, opset prefix) "
	"and computePrecision",
	"whether Core ML loads a .mlmodelc with only these five items",
	NULL,
};

#define COPY_BUF ((size_t)1 << 20)
#define MUL_SIGN "\xc3\x97" /* U+00D7, the separator of formattedType shapes */

static uint64_t le_bytes(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static const char *opset_tag(const char *opset) { return miltext_opset_tag(opset); }

typedef struct str_pair {
	const char *k, *v;
} str_pair;

static int pair_cmp(const void *x, const void *y) { return strcmp(((const str_pair *)x)->k, ((const str_pair *)y)->k); }

/* ------------------------------------------------------------------ */
/* model.mil: the program as coremlc prints it (mlmodelc.h item 2)     */

/* buildInfo: the package's entries and the compiler's two, sorted. */
static mil_value *build_info(mil_arena *a, const mil_value *bi)
{
	size_t n = bi && bi->kind == MIL_VAL_DICT ? bi->n : 0, np = 0;
	str_pair *p = xcalloc(n + 2, sizeof *p);
	for (size_t i = 0; i < n; i++) {
		const char *k = mil_value_as_str(bi->keys[i]), *v = mil_value_as_str(bi->items[i]);
		if (k && v && strncmp(k, "coremlc-", 8) != 0)
			p[np++] = (str_pair){k, v};
	}
	p[np++] = (str_pair){"coremlc-component-MIL", MLMODELC_COREMLC_MIL};
	p[np++] = (str_pair){"coremlc-version", MLMODELC_COREMLC_VERSION};
	qsort(p, np, sizeof *p, pair_cmp);
	mil_value *d = mil_value_dict_str(a);
	for (size_t i = 0; i < np; i++)
		mil_value_dict_set_str(a, d, p[i].k, p[i].v);
	free(p);
	return d;
}

static mil_value *shape_value(mil_arena *a, const ml_shape *s)
{
	int32_t *v = mil_alloc(a, (s->n + 1) * sizeof *v);
	for (size_t i = 0; i < s->n; i++)
		v[i] = (int32_t)s->dims[i];
	return mil_value_i32s(a, s->n, v);
}

/* The EnumeratedShapes key of one shape: the first 8 hex digits of the
 * SHA-256 of "<input>:<d>,<d>,..." (coremlc's own key is an 8-hex-digit
 * hash of unknown input; see MLMODELC_UNVERIFIED). */
static const char *shape_key(mil_arena *a, const char *input, const ml_shape *s)
{
	char *text = xasprintf("%s:", input), key[9];
	for (size_t i = 0; i < s->n; i++) {
		char *t = xasprintf("%s%s%lld", text, i ? "," : "", (long long)s->dims[i]);
		free(text), text = t;
	}
	uint8_t h[32];
	sha256(text, strlen(text), h);
	snprintf(key, sizeof key, "%02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
	free(text);
	return mil_strdup(a, key);
}

static int key_cmp(const void *x, const void *y)
{
	return strcmp(mil_value_as_str(*(mil_value *const *)x), mil_value_as_str(*(mil_value *const *)y));
}

/* ("EnumeratedShapes", {{key, {{input, [dims]}}}, ...}) for one input, keys sorted. */
static mil_value *enumerated_value(mil_arena *a, const ml_feature *f)
{
	const ml_array_type *at = f->type->array;
	mil_value *sets = mil_value_seq(a, MIL_VAL_DICT, NULL), **keys = mil_alloc(a, (at->nshapes + 1) * sizeof *keys);
	for (size_t i = 0; i < at->nshapes; i++)
		keys[i] = mil_value_str(a, shape_key(a, f->name, &at->shapes[i]));
	mil_value **order = mil_memdup(a, keys, (at->nshapes + 1) * sizeof *keys);
	qsort(order, at->nshapes, sizeof *order, key_cmp);
	for (size_t i = 0; i < at->nshapes; i++) {
		size_t j = 0;
		while (keys[j] != order[i])
			j++;
		mil_value *one = mil_value_seq(a, MIL_VAL_DICT, NULL);
		mil_value_dict_add(a, one, mil_value_str(a, f->name), shape_value(a, &at->shapes[j]));
		mil_value_dict_add(a, sets, order[i], one);
	}
	return sets;
}

/* {{input, [[lo, hi], ...]}} entries of a range input (hi -1: unbounded). */
static void add_ranges(mil_arena *a, mil_value *dims, const ml_feature *f)
{
	const ml_array_type *at = f->type->array;
	mil_value *l = mil_value_seq(a, MIL_VAL_LIST, NULL);
	for (size_t i = 0; i < at->nranges; i++) {
		int32_t r[2] = {(int32_t)at->ranges[i].lower, (int32_t)at->ranges[i].upper};
		mil_value_push(a, l, mil_value_i32s(a, 2, r));
	}
	mil_value_dict_add(a, dims, mil_value_str(a, f->name), l);
}

/* The type of FlexibleShapeInformation for enumerated or range inputs. */
static mil_type *flex_type(mil_arena *a, int enumerated)
{
	mil_type *str = mil_type_scalar(a, MIL_STRING);
	mil_type *shape = mil_type_tensor(a, MIL_INT32, 1, (const int64_t[]){-1});
	mil_type *range = mil_type_list(a, mil_type_tensor(a, MIL_INT32, 1, (const int64_t[]){2}));
	mil_type *second = enumerated ? mil_type_dict(a, str, mil_type_dict(a, str, shape)) : mil_type_dict(a, str, range);
	mil_type *parts[2] = {mil_type_tuple(a, 2, (mil_type *[]){str, mil_type_dict(a, str, shape)}),
			      mil_type_tuple(a, 2, (mil_type *[]){str, second})};
	return mil_type_tuple(a, 2, parts);
}

static mil_value *named_pair(mil_arena *a, const char *name, mil_value *v)
{
	mil_value *t = mil_value_seq(a, MIL_VAL_TUPLE, NULL);
	mil_value_push(a, t, mil_value_str(a, name));
	mil_value_push(a, t, v);
	return t;
}

/* The function attribute coremlc adds for flexible inputs: default shapes
 * and either the enumerated shapes (one input) or every input's ranges.
 * NULL when no input of fd is flexible. */
static int flexible_shape_info(mil_arena *a, const ml_function_desc *fd, const char *fn, mil_value **out)
{
	mil_value *defaults = mil_value_seq(a, MIL_VAL_DICT, NULL), *ranges = mil_value_seq(a, MIL_VAL_DICT, NULL);
	mil_value *sets = NULL;
	size_t nflex = 0, nenum = 0;
	*out = NULL;
	for (size_t i = 0; fd && i < fd->input.n; i++) {
		const ml_feature *f = fd->input.v[i];
		const ml_array_type *at = f->type && f->type->kind == ML_FEAT_ARRAY ? f->type->array : NULL;
		if (!at || at->flex == ML_FLEX_NONE)
			continue;
		nflex++;
		mil_value_dict_add(a, defaults, mil_value_str(a, f->name), shape_value(a, &at->shape));
		if (at->flex == ML_FLEX_ENUMERATED)
			nenum++, sets = enumerated_value(a, f);
		else
			add_ranges(a, ranges, f);
	}
	if (!nflex)
		return 0;
	if (nenum && nflex > 1)
		return errf("function '%s': enumerated shapes together with another flexible input have no known "
			    "model.mil form", fn);
	mil_value *v = mil_value_seq(a, MIL_VAL_TUPLE, flex_type(a, nenum != 0));
	mil_value_push(a, v, named_pair(a, "DefaultShapes", defaults));
	mil_value_push(a, v, nenum ? named_pair(a, "EnumeratedShapes", sets) : named_pair(a, "RangeDims", ranges));
	*out = v;
	return 0;
}

static const ml_function_desc *function_desc(const ml_model *m, const char *name)
{
	if (!m->desc)
		return NULL;
	if (!m->desc->nfunctions)
		return &m->desc->top;
	return ml_model_find_function(m, name);
}

/* A shallow copy of fn carrying its FlexibleShapeInformation, or fn itself. */
static int compiled_function(mil_arena *a, const ml_model *m, mil_function *fn, mil_function **out)
{
	mil_value *fsi;
	*out = fn;
	if (flexible_shape_info(a, function_desc(m, fn->name), fn->name, &fsi) != 0)
		return -1;
	if (!fsi)
		return 0;
	mil_function *c = mil_memdup(a, fn, sizeof *fn);
	c->attrs = (mil_attrs){0};
	for (size_t i = 0; i < fn->attrs.n; i++)
		mil_attrs_set(a, &c->attrs, fn->attrs.v[i].key, fn->attrs.v[i].value);
	mil_attrs_set(a, &c->attrs, "FlexibleShapeInformation", fsi);
	*out = c;
	return 0;
}

int mlmodelc_write_mil(FILE *f, const ml_model *m)
{
	const mil_program *p = m->program;
	if (!p)
		return errf("the model is not an ML Program");
	mil_arena *a = mil_arena_new();
	mil_program view = *p;
	view.attrs = (mil_attrs){0};
	for (size_t i = 0; i < p->attrs.n; i++)
		if (strcmp(p->attrs.v[i].key, "buildInfo") != 0)
			mil_attrs_set(a, &view.attrs, p->attrs.v[i].key, p->attrs.v[i].value);
	mil_attrs_set(a, &view.attrs, "buildInfo", build_info(a, mil_attrs_get(&p->attrs, "buildInfo")));
	view.functions = mil_alloc(a, (p->nfunctions + 1) * sizeof *view.functions);
	int rc = 0;
	for (size_t i = 0; i < p->nfunctions && rc == 0; i++)
		rc = compiled_function(a, m, p->functions[i], &view.functions[i]);
	if (rc == 0)
		rc = miltext_write(f, &view, &(mil_text_form){3, 0});
	mil_arena_free(a);
	return rc;
}

/* ------------------------------------------------------------------ */
/* metadata.json: a writer in the style of Apple's JSON output          */

#define JW_MAX_DEPTH 16

typedef struct jw {
	char *s;
	size_t len, cap;
	int depth;
	int count[JW_MAX_DEPTH]; /* members written so far at each depth */
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

/* Start a member (key NULL inside arrays) at the current depth. */
static void jw_member(jw *w, const char *key)
{
	jw_puts(w, w->count[w->depth]++ ? ",\n" : "\n");
	jw_indent(w, w->depth);
	if (key) {
		jw_quoted(w, key);
		jw_puts(w, " : ");
	}
}

static void jw_open(jw *w, const char *key, const char *brace)
{
	jw_member(w, key);
	jw_puts(w, brace);
	ASSERT(w->depth + 1 < JW_MAX_DEPTH);
	w->count[++w->depth] = 0;
}

static void jw_close(jw *w, const char *brace)
{
	jw_puts(w, w->count[w->depth] ? "\n" : "\n\n");
	jw_indent(w, --w->depth);
	jw_puts(w, brace);
}

static void jw_str(jw *w, const char *key, const char *v)
{
	jw_member(w, key);
	jw_quoted(w, v);
}

static void jw_int(jw *w, const char *key, long long v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", v);
	jw_member(w, key);
	jw_puts(w, buf);
}

/* ------------------------------------------------------------------ */
/* metadata.json: feature schemas                                      */

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

/* shapeFlexibility / enumeratedShapes / shapeRange of a flexible input. */
static void jw_flexibility(jw *w, const ml_array_type *at)
{
	char *flex = xstrdup(""), *list = xstrdup(""), *t;
	size_t n = at->flex == ML_FLEX_ENUMERATED ? at->nshapes : at->nranges;
	for (size_t i = 0; i < n; i++) {
		char *a, *b;
		if (at->flex == ML_FLEX_ENUMERATED) {
			a = join_dims(&at->shapes[i], " " MUL_SIGN " "), b = bracketed(&at->shapes[i]);
		} else {
			const ml_size_range *r = &at->ranges[i];
			a = xasprintf("%llu...%lld", (unsigned long long)r->lower, (long long)r->upper);
			b = xasprintf("[%llu, %lld]", (unsigned long long)r->lower, (long long)r->upper);
		}
		const char *sep = at->flex == ML_FLEX_ENUMERATED ? " | " : " " MUL_SIGN " ";
		t = xasprintf("%s%s%s", flex, i ? sep : "", a), free(flex), flex = t;
		t = xasprintf("%s%s%s", list, i ? ", " : "", b), free(list), list = t;
		free(a), free(b);
	}
	t = xasprintf("[%s]", list);
	jw_str(w, "shapeFlexibility", flex);
	jw_str(w, at->flex == ML_FLEX_ENUMERATED ? "enumeratedShapes" : "shapeRange", t);
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

static void jw_feature(jw *w, const ml_feature *f, int is_state)
{
	const ml_array_type *at = ml_feature_array(f);
	int flex = at && at->flex != ML_FLEX_NONE && !is_state;
	const char *kind = is_state ? "State" : at ? "MultiArray" : scalar_feature_name(f);
	char *dims = at ? join_dims(&at->shape, " " MUL_SIGN " ") : xstrdup("");
	char *formatted = at ? xasprintf("%s (%s%s%s)", kind, data_type_name(at->dtype), *dims ? " " : "", dims)
			     : xstrdup(kind);
	char *shape = at ? bracketed(&at->shape) : xstrdup("[]");
	jw_open(w, NULL, "{");
	jw_str(w, "hasShapeFlexibility", flex ? "1" : "0");
	jw_str(w, "isOptional", f->type && f->type->is_optional ? "1" : "0");
	if (at)
		jw_str(w, "dataType", data_type_name(at->dtype));
	jw_str(w, "formattedType", formatted);
	jw_str(w, "shortDescription", f->short_description);
	jw_str(w, "shape", shape);
	jw_str(w, "name", f->name);
	jw_str(w, "type", kind);
	if (flex)
		jw_flexibility(w, at);
	jw_close(w, "}");
	free(dims), free(formatted), free(shape);
}

static void jw_features(jw *w, const char *key, const ml_features *fs, int is_state)
{
	jw_open(w, key, "[");
	for (size_t i = 0; fs && i < fs->n; i++)
		jw_feature(w, fs->v[i], is_state);
	jw_close(w, "]");
}

/* ------------------------------------------------------------------ */
/* metadata.json: histogram, precision, the document                   */

typedef struct op_count {
	char *key; /* "Ios18.sliceByIndex" */
	int n;
} op_count;

static int count_cmp(const void *x, const void *y) { return strcmp(((const op_count *)x)->key, ((const op_count *)y)->key); }

/* "Ios18.constexprLutToDense" for constexpr_lut_to_dense in a CoreML8 function. */
static char *histogram_key(const char *opset, const char *op)
{
	const char *tag = opset_tag(opset);
	char *k = xasprintf("I%s.%s", tag ? tag + 1 : "os18", op), *o = strchr(k, '.') + 1;
	for (const char *c = op; *c; c++)
		if (*c == '_' && c[1])
			*o++ = (char)(c[1] >= 'a' && c[1] <= 'z' ? c[1] - 'a' + 'A' : c[1]), c++;
		else if (*c != '_')
			*o++ = *c;
	*o = 0;
	return k;
}

static void jw_histogram(jw *w, const mil_function *fn)
{
	const mil_block *b = fn ? mil_function_block(fn) : NULL;
	op_count *c = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; b && i < b->nops; i++) {
		if (strcmp(b->ops[i]->type, "const") == 0)
			continue;
		char *key = histogram_key(fn->opset, b->ops[i]->type);
		size_t j = 0;
		while (j < n && strcmp(c[j].key, key) != 0)
			j++;
		if (j < n) {
			c[j].n++, free(key);
			continue;
		}
		GROW(c, cap, n + 1);
		c[n++] = (op_count){key, 1};
	}
	if (n)
		qsort(c, n, sizeof *c, count_cmp);
	jw_open(w, "mlProgramOperationTypeHistogram", "{");
	for (size_t i = 0; i < n; i++)
		jw_int(w, c[i].key, c[i].n), free(c[i].key);
	jw_close(w, "}");
	free(c);
}

/* "Float16", or "Mixed (Float16, Int32)" from the outputs of the non-const ops. */
static void jw_precision(jw *w, const mil_function *fn)
{
	static const struct {
		int dt;
		const char *name;
	} kinds[] = {{MIL_FP16, "Float16"}, {MIL_FP32, "Float32"}, {MIL_INT32, "Int32"}};
	int seen[3] = {0}, nseen = 0;
	const mil_block *b = fn ? mil_function_block(fn) : NULL;
	for (size_t i = 0; b && i < b->nops; i++)
		for (size_t o = 0; o < b->ops[i]->noutputs && strcmp(b->ops[i]->type, "const") != 0; o++)
			for (int k = 0; k < 3; k++) {
				const mil_type *t = b->ops[i]->outputs[o].type;
				if (t && t->kind == MIL_TYPE_TENSOR && t->dtype == kinds[k].dt && !seen[k])
					seen[k] = 1, nseen++;
			}
	char buf[64] = "";
	for (int k = 0, j = 0; k < 3; k++)
		if (seen[k])
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", j++ ? ", " : "", kinds[k].name);
	char *v = nseen > 1 ? xasprintf("Mixed (%s)", buf) : xstrdup(nseen ? buf : "Float16");
	jw_str(w, "computePrecision", v);
	free(v);
}

/* The functions the description names: its list, or one from the top level. */
typedef struct fn_view {
	const char *name;
	const ml_function_desc *fd;
	const mil_function *fn;
} fn_view;

static const char *single_name(const ml_model *m)
{
	return m->program && m->program->nfunctions == 1 ? m->program->functions[0]->name : "main";
}

static size_t function_views(const ml_model *m, const ml_description *d, fn_view **out)
{
	size_t n = d->nfunctions ? d->nfunctions : 1;
	fn_view *v = xcalloc(n, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		v[i].fd = d->nfunctions ? d->functions[i] : &d->top;
		v[i].name = d->nfunctions ? d->functions[i]->name : single_name(m);
		v[i].fn = m->program ? mil_program_find_function(m->program, v[i].name) : NULL;
	}
	*out = v;
	return n;
}

static void jw_function(jw *w, const fn_view *v)
{
	jw_open(w, NULL, "{");
	jw_precision(w, v->fn);
	jw_features(w, "outputSchema", &v->fd->output, 0);
	jw_features(w, "stateSchema", &v->fd->state, 1);
	jw_str(w, "name", v->name);
	jw_histogram(w, v->fn);
	jw_features(w, "inputSchema", &v->fd->input, 0);
	jw_close(w, "}");
}

static void jw_availability(jw *w, int spec)
{
	static const char *const table[][6] = {
		/* macOS, tvOS, visionOS, watchOS, iOS, macCatalyst */
		{"13.0", "16.0", "1.0", "9.0", "16.0", "16.0"},  /* spec 7 [obs] */
		{"14.0", "17.0", "1.0", "10.0", "17.0", "17.0"}, /* spec 8 */
		{"15.0", "18.0", "2.0", "11.0", "18.0", "18.0"}, /* spec 9 [3p] */
	};
	static const char *const os[6] = {"macOS", "tvOS", "visionOS", "watchOS", "iOS", "macCatalyst"};
	int row = spec <= 7 ? 0 : spec == 8 ? 1 : 2;
	jw_open(w, "availability", "{");
	for (int i = 0; i < 6; i++)
		jw_str(w, os[i], table[row][i]);
	jw_close(w, "}");
}

static void jw_user_metadata(jw *w, const ml_metadata *md)
{
	size_t n = md ? md->nuser : 0;
	str_pair *p = xcalloc(n + 1, sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = (str_pair){md->user[i].key, md->user[i].value};
	if (n)
		qsort(p, n, sizeof *p, pair_cmp);
	jw_open(w, "userDefinedMetadata", "{");
	for (size_t i = 0; i < n; i++)
		jw_str(w, p[i].k, p[i].v);
	jw_close(w, "}");
	free(p);
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

static void jw_description_text(jw *w, const ml_metadata *md)
{
	if (!md)
		return;
	const char *keys[4] = {"shortDescription", "author", "version", "license"};
	const char *vals[4] = {md->short_description, md->author, md->version, md->license};
	for (int i = 0; i < 4; i++)
		if (*vals[i])
			jw_str(w, keys[i], vals[i]);
}

/* One straight pass over the document, in the key order of mlmodelc.h item 5. */
char *mlmodelc_metadata_json(const ml_model *m, const char *class_name)
{
	ml_model *empty = ml_model_new(0);
	const ml_description *d = m->desc ? m->desc : ml_model_desc(empty);
	fn_view *v;
	size_t nv = function_views(m, d, &v), def = 0;
	for (size_t i = 0; i < nv; i++)
		if (*d->default_function && strcmp(v[i].name, d->default_function) == 0)
			def = i;
	jw w = {0};
	jw_puts(&w, "[");
	w.count[++w.depth] = 0;
	jw_open(&w, NULL, "{");
	jw_description_text(&w, d->metadata);
	jw_str(&w, "metadataOutputVersion", "3.0");
	jw_features(&w, "outputSchema", &v[def].fd->output, 0);
	jw_open(&w, "modelParameters", "["), jw_close(&w, "]");
	jw_int(&w, "specificationVersion", m->spec_version);
	if (m->spec_version >= ML_SPEC_IOS18) {
		jw_open(&w, "functions", "[");
		for (size_t i = 0; i < nv; i++)
			jw_function(&w, &v[i]);
		jw_close(&w, "]");
		jw_str(&w, "defaultFunctionName", v[def].name);
	}
	jw_histogram(&w, v[def].fn);
	jw_precision(&w, v[def].fn);
	jw_str(&w, "isUpdatable", m->is_updatable ? "1" : "0");
	jw_features(&w, "stateSchema", &v[def].fd->state, 1);
	jw_availability(&w, m->spec_version);
	jw_open(&w, "modelType", "{"), jw_str(&w, "name", "MLModelType_mlProgram"), jw_close(&w, "}");
	jw_user_metadata(&w, d->metadata);
	jw_features(&w, "inputSchema", &v[def].fd->input, 0);
	char *cls = class_identifier(class_name);
	jw_str(&w, "generatedClassName", cls);
	jw_str(&w, "method", "predict");
	jw_close(&w, "}");
	jw_close(&w, "]");
	jw_puts(&w, "\n");
	free(cls), free(v);
	ml_model_free(empty);
	return w.s;
}

/* ------------------------------------------------------------------ */
/* coremldata.bin and analytics/coremldata.bin                         */

static void put_le(pb_buf *b, uint64_t v, int n)
{
	uint8_t x[8];
	for (int i = 0; i < n; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	pb_raw(b, x, (size_t)n);
}

static void put_zeros(pb_buf *b, size_t n)
{
	static const uint8_t z[32];
	pb_raw(b, z, n);
}

/* A u64 length and the bytes, the string form of both files. */
static void put_lstring(pb_buf *b, const char *s)
{
	put_le(b, strlen(s), 8);
	pb_raw(b, s, strlen(s));
}

/* The serialized ModelDescription: the package's, plus (spec >= 9) a
 * functions entry and defaultFunctionName for a single-function model.
 * Built on shallow copies, so m is not touched. */
static int description_bytes(const ml_model *m, pb_buf *out)
{
	ml_model *tmp = ml_model_new(0);
	ml_description d = m->desc ? *m->desc : *ml_model_desc(tmp);
	ml_function_desc single, *fdp = &single;
	if (d.nfunctions == 0 && m->spec_version >= ML_SPEC_IOS18) {
		single = d.top;
		single.name = single_name(m);
		d.functions = &fdp, d.nfunctions = 1;
		if (!*d.default_function)
			d.default_function = single.name;
	}
	tmp->desc = &d;
	pb_buf enc;
	pb_init(&enc);
	ml_model_encode(tmp, &enc);
	tmp->desc = NULL;
	ml_model_free(tmp);
	pb_reader r = pb_reader_of(enc.data ? enc.data : (const uint8_t *)"", enc.len);
	pb_field f;
	int rc;
	while ((rc = pb_next(&r, &f)) == 1)
		if (f.field == 2 && f.wt == PB_LEN)
			pb_raw(out, f.data, f.len);
	pb_release(&enc);
	return rc < 0 ? -1 : 0;
}

int mlmodelc_coremldata(const ml_model *m, pb_buf *out)
{
	pb_buf desc;
	pb_init(&desc);
	if (description_bytes(m, &desc) != 0) {
		pb_release(&desc);
		return -1;
	}
	put_le(out, MLMODELC_MLPROGRAM, 4);
	put_le(out, MLMODELC_FIELD4, 4);
	put_zeros(out, 20);
	put_lstring(out, "generic");
	put_le(out, (uint64_t)m->spec_version, 8);
	put_zeros(out, 24);
	put_le(out, desc.len, 8);
	pb_raw(out, desc.data, desc.len);
	put_le(out, MLMODELC_MLPROGRAM, 4);
	put_zeros(out, 12);
	pb_release(&desc);
	return 0;
}

int mlmodelc_read_coremldata(const void *data, size_t n, ml_model **out)
{
	const uint8_t *b = data;
	*out = NULL;
	if (n < MLMODELC_DESC_OFFSET + 16)
		return errf("coremldata.bin: %zu bytes is too short", n);
	if (le_bytes(b, 4) != MLMODELC_MLPROGRAM || le_bytes(b + 0x1c, 8) != 7 || memcmp(b + 0x24, "generic", 7) != 0)
		return errf("coremldata.bin: not an ML Program header (502, \"generic\")");
	uint64_t len = le_bytes(b + 0x4b, 8);
	if (len > n - MLMODELC_DESC_OFFSET - 16 || MLMODELC_DESC_OFFSET + len + 16 != n)
		return errf("coremldata.bin: description length %llu does not fit %zu bytes", (unsigned long long)len, n);
	if (le_bytes(b + MLMODELC_DESC_OFFSET + len, 4) != MLMODELC_MLPROGRAM)
		return errf("coremldata.bin: no closing 502 after the description");
	pb_buf model; /* Model { specificationVersion, description } around the bytes */
	pb_init(&model);
	pb_put_int(&model, 1, (int64_t)le_bytes(b + 0x2b, 8));
	pb_put_bytes(&model, 2, b + MLMODELC_DESC_OFFSET, (size_t)len);
	int rc = ml_model_decode(model.data, model.len, out);
	pb_release(&model);
	return rc == 0 ? 0 : errf("coremldata.bin: %s", errmsg());
}

void mlmodelc_analytics(pb_buf *out)
{
	put_lstring(out, "NeuralNetworkModelDetails");
	put_le(out, 2, 8);
	put_lstring(out, "containsCustomLayer");
	put_lstring(out, "0");
	put_lstring(out, "modelDimension");
	put_lstring(out, "0");
}

/* ------------------------------------------------------------------ */
/* The directory                                                       */

/* Write a whole file inside the temporary directory, synced. */
static int write_in(const char *dir, const char *name, const void *data, size_t n)
{
	char *path = path_join(dir, name);
	FILE *f = fopen(path, "wb");
	int rc = f ? 0 : errf("cannot create '%s':", path);
	if (rc == 0 && (fwrite_all(f, data, n, path) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = errf("cannot write '%s':", path);
	if (f && fclose_checked(f, path) != 0)
		rc = -1;
	free(path);
	return rc;
}

static int write_mil_file(const char *dir, const ml_model *m)
{
	char *path = path_join(dir, "model.mil");
	FILE *f = fopen(path, "w");
	int rc = f ? mlmodelc_write_mil(f, m) : errf("cannot create '%s':", path);
	if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		rc = errf("cannot write '%s':", path);
	if (f && fclose_checked(f, path) != 0)
		rc = -1;
	free(path);
	return rc;
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
	int rc = !in ? errf("cannot open '%s':", from) : !out ? errf("cannot create '%s':", to) : 0;
	char *buf = xmalloc(COPY_BUF);
	for (size_t n; rc == 0 && (n = fread(buf, 1, COPY_BUF, in)) > 0;)
		rc = fwrite_all(out, buf, n, to);
	if (rc == 0 && ferror(in))
		rc = errf("cannot read '%s':", from);
	if (rc == 0 && (fflush(out) != 0 || fsync(fileno(out)) != 0))
		rc = errf("cannot write '%s':", to);
	if (out && fclose_checked(out, to) != 0)
		rc = -1;
	if (in)
		fclose(in);
	free(buf);
	return rc;
}

/* weights/: every regular file of the package's weights item, byte for byte. */
static int copy_weights(const mlpackage *pkg, const char *dir)
{
	if (!pkg->weights_item)
		return 0;
	char *src = xasprintf("%s/Data/%s", pkg->path, pkg->weights_item->path), *dst = path_join(dir, "weights");
	DIR *d = opendir(src);
	int rc = !d ? errf("cannot open directory '%s':", src) : mkdir(dst, 0777) != 0 ? errf("cannot create '%s':", dst) : 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		char *from = path_join(src, e->d_name), *to = path_join(dst, e->d_name);
		struct stat st;
		if (e->d_name[0] != '.' && stat(from, &st) == 0 && S_ISREG(st.st_mode))
			rc = copy_file(from, to);
		free(from), free(to);
	}
	if (d)
		closedir(d);
	free(src), free(dst);
	return rc;
}

static int write_parts(const char *dir, const mlpackage *pkg, const ml_model *m, const char *class_name)
{
	pb_buf data, analytics;
	pb_init(&data), pb_init(&analytics);
	mlmodelc_analytics(&analytics);
	char *json = mlmodelc_metadata_json(m, class_name), *adir = path_join(dir, "analytics");
	int rc = write_mil_file(dir, m);
	if (rc == 0 && (rc = mlmodelc_coremldata(m, &data)) == 0)
		rc = write_in(dir, "coremldata.bin", data.data, data.len);
	if (rc == 0)
		rc = write_in(dir, "metadata.json", json, strlen(json));
	if (rc == 0 && mkdir(adir, 0777) != 0)
		rc = errf("cannot create '%s':", adir);
	if (rc == 0)
		rc = write_in(adir, "coremldata.bin", analytics.data, analytics.len);
	if (rc == 0)
		rc = copy_weights(pkg, dir);
	pb_release(&data), pb_release(&analytics);
	free(json), free(adir);
	return rc;
}

int mlmodelc_write(const char *pkg_path, const char *out_path)
{
	mlpackage pkg;
	if (mlpackage_open(pkg_path, &pkg) != 0)
		return -1;
	ml_model *m = NULL;
	char *tmp = NULL, *base = path_basename(out_path);
	char *dot = strrchr(base, '.');
	if (dot && strcmp(dot, ".mlmodelc") == 0)
		*dot = 0;
	int rc = ml_model_decode(pkg.model, pkg.model_size, &m);
	if (rc != 0)
		rc = errf("package '%s': %s", pkg_path, errmsg());
	if (rc == 0 && (rc = tmpdir_create(out_path, &tmp)) == 0) {
		rc = write_parts(tmp, &pkg, m, base);
		if (rc != 0)
			rc = errf("%s: %s", out_path, errmsg());
		if (rc == 0)
			rc = tmpdir_commit(tmp, out_path);
		if (rc != 0)
			tmpdir_abort(tmp);
	}
	free(tmp), free(base);
	ml_model_free(m);
	mlpackage_close(&pkg);
	return rc;
}
