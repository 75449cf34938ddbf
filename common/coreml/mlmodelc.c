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
#include "base/util.h"
#include "base/version.h"
#include "coreml/mil.h"
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
	"the exact program(1.3) model.mil text for multifunction programs, state inputs, write_state and literals",
	"the metadata.json stateSchema entry format, functions entries, histogram keys (camelCase, opset prefix) "
	"and computePrecision",
	"whether Core ML loads a .mlmodelc with only these five items",
	NULL,
};

#define MUL_SIGN "\xc3\x97" /* U+00D7, the separator of formattedType shapes */

/* ------------------------------------------------------------------ */
/* model.mil: types and literals                                       */

/* "fp16" for MIL's float16, and so on (dtype.h names the long forms). */
static void put_dtype(FILE *f, int dt)
{
	const char *n = mil_dtype_name((mil_dtype)dt);
	if (!n)
		fprintf(f, "dtype%d", dt);
	else if (strncmp(n, "float", 5) == 0)
		fprintf(f, "fp%s", n + 5);
	else if (strcmp(n, "bfloat16") == 0)
		fputs("bf16", f);
	else
		fputs(n, f);
}

static void put_type(FILE *f, const mil_type *t);

static void put_dim(FILE *f, const mil_dim *d)
{
	if (d->kind == MIL_DIM_CONST)
		fprintf(f, "%llu", (unsigned long long)d->size);
	else
		fputs(d->variadic ? "?*" : "?", f);
}

static void put_tensor_type(FILE *f, const mil_type *t)
{
	if (t->rank == 0 && t->ndims == 0) { /* scalars are written bare in program 1.3 */
		put_dtype(f, t->dtype);
		return;
	}
	fputs("tensor<", f);
	put_dtype(f, t->dtype);
	fputs(", [", f);
	for (size_t i = 0; i < t->ndims; i++) {
		fputs(i ? ", " : "", f);
		put_dim(f, &t->dims[i]);
	}
	fputs("]>", f);
}

static void put_type(FILE *f, const mil_type *t)
{
	if (!t) {
		fputs("?", f);
		return;
	}
	switch (t->kind) {
	case MIL_TYPE_TENSOR: put_tensor_type(f, t); return;
	case MIL_TYPE_STATE: fputs("state<", f), put_type(f, t->wrapped), fputs(">", f); return;
	case MIL_TYPE_LIST:
		fputs("list<", f), put_type(f, t->wrapped), fputs(", ", f);
		if (t->has_length)
			put_dim(f, &t->length);
		else
			fputs("?", f);
		fputs(">", f);
		return;
	case MIL_TYPE_TUPLE:
		fputs("tuple<", f);
		for (size_t i = 0; i < t->ntypes; i++)
			fputs(i ? ", " : "", f), put_type(f, t->types[i]);
		fputs(">", f);
		return;
	case MIL_TYPE_DICT:
		fputs("dict<", f), put_type(f, t->key_type), fputs(", ", f), put_type(f, t->value_type), fputs(">", f);
		return;
	default: fputs("?", f); return;
	}
}

static void put_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if (*c == '\n')
			fputs("\\n", f);
		else if (*c == '\t')
			fputs("\\t", f);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(f, "\\%03o", *c);
		else
			fputc(*c, f);
	}
	fputc('"', f);
}

/* Hex floats are exact and are what program 1.3 text uses (fp16(0x1.5p-17)). */
static void put_float(FILE *f, double x)
{
	if (isnan(x))
		fputs("nan", f);
	else if (isinf(x))
		fputs(x < 0 ? "-inf" : "inf", f);
	else
		fprintf(f, "%a", x);
}

static uint64_t le_bytes(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* Element i of a raw-bytes immediate (fp16, bf16, int8, uint32, sub-byte...). */
static void put_byte_element(FILE *f, const uint8_t *b, int dt, size_t i)
{
	int bits = mil_dtype_bits((mil_dtype)dt);
	switch (dt) {
	case MIL_FP16: put_float(f, fp16_to_f32((uint16_t)le_bytes(b + 2 * i, 2))); return;
	case MIL_BF16: put_float(f, bf16_to_f32((uint16_t)le_bytes(b + 2 * i, 2))); return;
	case MIL_INT8: fprintf(f, "%d", (int8_t)b[i]); return;
	case MIL_INT16: fprintf(f, "%d", (int16_t)le_bytes(b + 2 * i, 2)); return;
	case MIL_INT32: fprintf(f, "%d", (int32_t)le_bytes(b + 4 * i, 4)); return;
	default: break;
	}
	if (bits >= 8) {
		fprintf(f, "%llu", (unsigned long long)le_bytes(b + (size_t)(bits / 8) * i, bits / 8));
		return;
	}
	unsigned v = 0; /* sub-byte: LSB-first bit stream (blob.h item 4) */
	for (int k = 0; k < bits; k++) {
		size_t bit = i * (size_t)bits + (size_t)k;
		v |= ((b[bit / 8] >> (bit % 8)) & 1u) << k;
	}
	fprintf(f, "%d", dt == MIL_INT4 && (v & 8) ? (int)v - 16 : (int)v);
}

static void put_element(FILE *f, const mil_value *v, size_t i)
{
	const mil_tensor_value *t = &v->tensor;
	int dt = v->type ? v->type->dtype : 0;
	switch (t->field) {
	case MIL_TV_FLOATS: put_float(f, t->u.floats[i]); return;
	case MIL_TV_DOUBLES: put_float(f, t->u.doubles[i]); return;
	case MIL_TV_INTS: fprintf(f, "%d", t->u.ints[i]); return;
	case MIL_TV_LONGINTS:
		if (dt == MIL_UINT64)
			fprintf(f, "%llu", (unsigned long long)t->u.longints[i]);
		else
			fprintf(f, "%lld", (long long)t->u.longints[i]);
		return;
	case MIL_TV_BOOLS: fputs(t->u.bools[i] ? "true" : "false", f); return;
	case MIL_TV_STRINGS: put_quoted(f, t->u.strings[i]); return;
	case MIL_TV_BYTES: put_byte_element(f, t->u.bytes, dt, i); return;
	default: return;
	}
}

/* Elements an immediate holds: its type's count, checked against the data. */
static int tensor_count(const mil_value *v, size_t *n)
{
	uint64_t want;
	const mil_tensor_value *t = &v->tensor;
	if (!v->type || mil_type_numel(v->type, &want) != 0)
		want = t->field == MIL_TV_BYTES ? 0 : t->n;
	int bits = v->type ? mil_dtype_bits((mil_dtype)v->type->dtype) : 0;
	uint64_t have = t->field != MIL_TV_BYTES ? t->n : bits ? (uint64_t)t->n * 8 / (uint64_t)bits : 0;
	if (t->field == MIL_TV_NONE)
		have = 0;
	if (want > have)
		return errf("an immediate value holds %llu elements where its type needs %llu",
			    (unsigned long long)have, (unsigned long long)want);
	*n = (size_t)want;
	return 0;
}

static int put_value(FILE *f, const mil_value *v);

static int put_tensor_value(FILE *f, const mil_value *v)
{
	size_t n = 0;
	if (tensor_count(v, &n) != 0)
		return -1;
	int scalar = !v->type || (v->type->rank == 0 && v->type->ndims == 0);
	put_type(f, v->type);
	fputs(scalar ? "(" : "([", f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ", " : "", f);
		put_element(f, v, i);
	}
	fputs(scalar ? ")" : "])", f);
	return 0;
}

static int put_value(FILE *f, const mil_value *v)
{
	int rc = 0;
	if (!v) {
		fputs("?", f);
		return 0;
	}
	switch (v->kind) {
	case MIL_VAL_BLOB:
		put_type(f, v->type);
		fputs("(BLOBFILE(path = string(", f);
		put_quoted(f, v->file);
		fprintf(f, "), offset = uint64(%llu)))", (unsigned long long)v->offset);
		return 0;
	case MIL_VAL_TENSOR: return put_tensor_value(f, v);
	case MIL_VAL_DICT:
		put_type(f, v->type), fputs("({", f);
		for (size_t i = 0; i < v->n && rc == 0; i++) {
			fputs(i ? ", {" : "{", f);
			rc = put_value(f, v->keys[i]);
			fputs(", ", f);
			rc = rc ? rc : put_value(f, v->items[i]);
			fputs("}", f);
		}
		fputs("})", f);
		return rc;
	case MIL_VAL_TUPLE:
	case MIL_VAL_LIST:
		put_type(f, v->type), fputs("([", f);
		for (size_t i = 0; i < v->n && rc == 0; i++)
			fputs(i ? ", " : "", f), rc = put_value(f, v->items[i]);
		fputs("])", f);
		return rc;
	default: put_type(f, v->type), fputs("()", f); return 0;
	}
}

/* ------------------------------------------------------------------ */
/* model.mil: ops, functions, program                                  */

static int arg_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_arg *const *)x)->param, (*(const mil_arg *const *)y)->param);
}

static int attr_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_attr *const *)x)->key, (*(const mil_attr *const *)y)->key);
}

static int put_binding(FILE *f, const mil_binding *b)
{
	if (b->kind == MIL_BIND_NAME) {
		fputs(b->name, f);
		return 0;
	}
	return put_value(f, b->value);
}

static int put_args(FILE *f, const mil_op *op)
{
	const mil_arg **args = xcalloc(op->ninputs + 1, sizeof *args);
	for (size_t i = 0; i < op->ninputs; i++)
		args[i] = op->inputs[i];
	qsort(args, op->ninputs, sizeof *args, arg_cmp);
	int rc = 0;
	for (size_t i = 0; i < op->ninputs && rc == 0; i++) {
		fprintf(f, "%s%s = %s", i ? ", " : "", args[i]->param, args[i]->n == 1 ? "" : "(");
		for (size_t j = 0; j < args[i]->n && rc == 0; j++)
			fputs(j ? ", " : "", f), rc = put_binding(f, &args[i]->v[j]);
		fputs(args[i]->n == 1 ? "" : ")", f);
	}
	free(args);
	return rc;
}

/* Attribute entries "k = v" sorted by key, without brackets; skip: a key left
 * out (NULL: none); sep_first: start with ", ". */
static int put_attr_entries(FILE *f, const mil_attrs *m, const char *skip, int sep_first)
{
	const mil_attr **at = xcalloc(m->n + 1, sizeof *at);
	size_t n = 0;
	for (size_t i = 0; i < m->n; i++)
		if (!skip || strcmp(m->v[i].key, skip) != 0)
			at[n++] = &m->v[i];
	qsort(at, n, sizeof *at, attr_cmp);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		fprintf(f, "%s%s = ", i || sep_first ? ", " : "", at[i]->key);
		rc = put_value(f, at[i]->value);
	}
	free(at);
	return rc;
}

static int put_op(FILE *f, const mil_function *fn, const mil_op *op)
{
	if (op->nblocks)
		return errf("function '%s' op '%s' (%s) has nested blocks, which model.mil writing does not support",
			    fn->name, mil_op_name(op) ? mil_op_name(op) : "?", op->type);
	fputs("            ", f);
	for (size_t i = 0; i < op->noutputs; i++) {
		fputs(i ? ", " : "", f);
		put_type(f, op->outputs[i].type);
		fprintf(f, " %s", op->outputs[i].name);
	}
	fprintf(f, "%s%s(", op->noutputs ? " = " : "", op->type);
	int rc = put_args(f, op);
	fputs(")", f);
	if (rc == 0 && op->attrs.n) {
		fputs("[", f);
		rc = put_attr_entries(f, &op->attrs, NULL, 0);
		fputs("]", f);
	}
	fputs(";\n", f);
	if (rc != 0)
		return errf("function '%s' op '%s': %s", fn->name, op->type, errmsg());
	return 0;
}

/* "ios18" for CoreML8 and so on; NULL for an opset without a text name. */
static const char *opset_tag(const char *opset)
{
	static const char *const tags[][2] = {
		{"CoreML5", "ios15"}, {"CoreML6", "ios16"}, {"CoreML7", "ios17"}, {"CoreML8", "ios18"}};
	for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
		if (strcmp(opset, tags[i][0]) == 0)
			return tags[i][1];
	return NULL;
}

static int put_function(FILE *f, const mil_function *fn)
{
	const char *tag = opset_tag(fn->opset);
	const mil_block *b = mil_function_block(fn);
	if (!tag)
		return errf("function '%s': opset '%s' has no model.mil name", fn->name, fn->opset);
	if (!b)
		return errf("function '%s' has no body", fn->name);
	fprintf(f, "    func %s<%s>(", fn->name, tag);
	for (size_t i = 0; i < fn->ninputs; i++) {
		fputs(i ? ", " : "", f);
		put_type(f, fn->inputs[i].type);
		fprintf(f, " %s", fn->inputs[i].name);
	}
	fputs(") {\n", f);
	for (size_t i = 0; i < b->nops; i++)
		if (put_op(f, fn, b->ops[i]) != 0)
			return -1;
	fputs("        } -> (", f);
	for (size_t i = 0; i < b->noutputs; i++)
		fprintf(f, "%s%s", i ? ", " : "", b->outputs[i]);
	fputs(");\n", f);
	return 0;
}

typedef struct str_pair {
	const char *k, *v;
} str_pair;

static int pair_cmp(const void *x, const void *y) { return strcmp(((const str_pair *)x)->k, ((const str_pair *)y)->k); }

/* [buildInfo = dict<string, string>({{"k", "v"}, ...})] with our version added. */
static void put_build_info(FILE *f, const mil_value *bi)
{
	size_t n = bi && bi->kind == MIL_VAL_DICT ? bi->n : 0, np = 0;
	str_pair *p = xcalloc(n + 1, sizeof *p);
	for (size_t i = 0; i < n; i++) {
		const char *k = mil_value_as_str(bi->keys[i]), *v = mil_value_as_str(bi->items[i]);
		if (k && v && strcmp(k, "anemake-version") != 0)
			p[np++] = (str_pair){k, v};
	}
	p[np++] = (str_pair){"anemake-version", ANEMAKE_VERSION};
	qsort(p, np, sizeof *p, pair_cmp);
	fputs("[buildInfo = dict<string, string>({", f);
	for (size_t i = 0; i < np; i++) {
		fputs(i ? ", {" : "{", f);
		put_quoted(f, p[i].k), fputs(", ", f), put_quoted(f, p[i].v), fputs("}", f);
	}
	fputs("})", f);
	free(p);
}

static int function_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_function *const *)x)->name, (*(const mil_function *const *)y)->name);
}

int mlmodelc_write_mil(FILE *f, const ml_model *m)
{
	const mil_program *p = m->program;
	if (!p)
		return errf("the model is not an ML Program");
	fputs("program(1.3)\n", f);
	put_build_info(f, mil_attrs_get(&p->attrs, "buildInfo"));
	if (put_attr_entries(f, &p->attrs, "buildInfo", 1) != 0)
		return errf("program attributes: %s", errmsg());
	fputs("]\n{\n", f);
	const mil_function **fns = xcalloc(p->nfunctions + 1, sizeof *fns);
	for (size_t i = 0; i < p->nfunctions; i++)
		fns[i] = p->functions[i];
	qsort(fns, p->nfunctions, sizeof *fns, function_cmp);
	int rc = 0;
	for (size_t i = 0; i < p->nfunctions && rc == 0; i++) {
		fputs(i ? "\n" : "", f);
		rc = put_function(f, fns[i]);
	}
	free(fns);
	fputs("}\n", f);
	if (rc == 0 && ferror(f))
		return errf("cannot write model.mil:");
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
			rc = file_copy(from, to);
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
