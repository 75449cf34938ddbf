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
#include "coreml/mlpackage.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h> /* mkdir */
#include <unistd.h>   /* fsync */

#define COPY_BUF ((size_t)1 << 20)

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
const char *mlmodelc_opset_tag(const char *opset)
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
	const char *tag = mlmodelc_opset_tag(fn->opset);
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

/* The serialized ModelDescription, exactly the package's: coremlc keeps a
 * single-function description without functions (mlmodelc.h item 3). */
static int description_bytes(const ml_model *m, pb_buf *out)
{
	ml_model *tmp = ml_model_new(0);
	ml_description d = m->desc ? *m->desc : *ml_model_desc(tmp);
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

/* One trailer record per function; a description without functions counts one. */
static size_t trailer_records(const ml_description *d) { return d && d->nfunctions ? d->nfunctions : 1; }

uint32_t mlmodelc_field4(int spec_version) { return spec_version >= ML_SPEC_IOS18 ? (uint32_t)spec_version : 5; }

int mlmodelc_coremldata(const ml_model *m, pb_buf *out)
{
	pb_buf desc;
	pb_init(&desc);
	if (description_bytes(m, &desc) != 0) {
		pb_release(&desc);
		return -1;
	}
	put_le(out, MLMODELC_MLPROGRAM, 4);
	put_le(out, mlmodelc_field4(m->spec_version), 4);
	put_zeros(out, 20);
	put_lstring(out, "generic");
	put_le(out, (uint64_t)m->spec_version, 8);
	put_zeros(out, 24);
	put_le(out, desc.len, 8);
	pb_raw(out, desc.data, desc.len);
	for (size_t i = 0; i < trailer_records(m->desc); i++) {
		put_le(out, MLMODELC_MLPROGRAM, 4);
		put_zeros(out, MLMODELC_RECORD - 4);
	}
	pb_release(&desc);
	return 0;
}

/* The records after the description: whole 16-byte records, each 502 and zeros. */
static int check_trailer(const uint8_t *b, size_t n, size_t *records)
{
	if (n == 0 || n % MLMODELC_RECORD != 0)
		return errf("coremldata.bin: %zu bytes after the description are not whole %d-byte records", n,
			    MLMODELC_RECORD);
	for (size_t at = 0; at < n; at += MLMODELC_RECORD) {
		if (le_bytes(b + at, 4) != MLMODELC_MLPROGRAM)
			return errf("coremldata.bin: trailer record %zu does not start with 502", at / MLMODELC_RECORD);
		for (size_t i = 4; i < MLMODELC_RECORD; i++)
			if (b[at + i])
				return errf("coremldata.bin: trailer record %zu has non-zero padding", at / MLMODELC_RECORD);
	}
	*records = n / MLMODELC_RECORD;
	return 0;
}

int mlmodelc_read_coremldata(const void *data, size_t n, ml_model **out)
{
	const uint8_t *b = data;
	*out = NULL;
	if (n < MLMODELC_DESC_OFFSET + MLMODELC_RECORD)
		return errf("coremldata.bin: %zu bytes is too short", n);
	if (le_bytes(b, 4) != MLMODELC_MLPROGRAM || le_bytes(b + 0x1c, 8) != 7 || memcmp(b + 0x24, "generic", 7) != 0)
		return errf("coremldata.bin: not an ML Program header (502, \"generic\")");
	uint64_t spec = le_bytes(b + 0x2b, 8), len = le_bytes(b + 0x4b, 8);
	/* offset 4: 5 (spec 7) or the spec version (spec 9); either is accepted
	 * for any version, as no spec-8 file shows which one coremlc writes */
	uint64_t f4 = le_bytes(b + 4, 4);
	if (spec > 1000 || (f4 != 5 && f4 != spec))
		return errf("coremldata.bin: offset 4 holds %llu, neither 5 nor the specification version %llu",
			    (unsigned long long)f4, (unsigned long long)spec);
	if (len > n - MLMODELC_DESC_OFFSET - MLMODELC_RECORD)
		return errf("coremldata.bin: description length %llu does not fit %zu bytes", (unsigned long long)len, n);
	size_t records = 0;
	if (check_trailer(b + MLMODELC_DESC_OFFSET + len, n - MLMODELC_DESC_OFFSET - (size_t)len, &records) != 0)
		return -1;
	pb_buf model; /* Model { specificationVersion, description } around the bytes */
	pb_init(&model);
	pb_put_int(&model, 1, (int64_t)spec);
	pb_put_bytes(&model, 2, b + MLMODELC_DESC_OFFSET, (size_t)len);
	int rc = ml_model_decode(model.data, model.len, out);
	pb_release(&model);
	if (rc != 0)
		return errf("coremldata.bin: %s", errmsg());
	if (records != trailer_records((*out)->desc)) {
		rc = errf("coremldata.bin: %zu trailer records for a description of %zu function(s)", records,
			  trailer_records((*out)->desc));
		ml_model_free(*out);
		*out = NULL;
	}
	return rc;
}

/* Standard base64 with padding, as the real modelHash values are written. */
static char *base64(const uint8_t *b, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
		*o++ = abc[v >> 18 & 63], *o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	*o = 0;
	return out;
}

void mlmodelc_analytics(const uint8_t model_hash[32], pb_buf *out)
{
	char *hash = base64(model_hash, 32);
	put_lstring(out, "NeuralNetworkModelDetails");
	put_le(out, 2, 8);
	put_lstring(out, "containsCustomLayer");
	put_lstring(out, "0");
	put_lstring(out, "modelDimension");
	put_lstring(out, "0");
	put_lstring(out, "SpecificationDetails");
	put_le(out, 2, 8);
	put_lstring(out, "modelHash");
	put_lstring(out, hash);
	put_lstring(out, "modelName");
	put_lstring(out, "model");
	free(hash);
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
	uint8_t hash[32];
	sha256(pkg->model, pkg->model_size, hash);
	pb_init(&data), pb_init(&analytics);
	mlmodelc_analytics(hash, &analytics);
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
