/* miltext.c: print an ML Program as model.mil text (grammar: miltext.h).
 *
 * One straight walk over the program; values recurse through their
 * containers (depth bounded by the decoder's MIL_MAX_DEPTH). Text is about
 * 100 bytes per op; immediates print every element.
 */
#include "coreml/miltext.h"
#include "base/fp16.h"
#include "base/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pr {
	FILE *f;
	int bare_scalars; /* program 1.3: int32, not tensor<int32, []> */
} pr;

static const char *const opset_tags[][2] = {
	{"CoreML5", "ios15"}, {"CoreML6", "ios16"}, {"CoreML7", "ios17"}, {"CoreML8", "ios18"}};

const char *miltext_opset_tag(const char *opset)
{
	for (size_t i = 0; i < sizeof opset_tags / sizeof opset_tags[0]; i++)
		if (strcmp(opset, opset_tags[i][0]) == 0)
			return opset_tags[i][1];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Types                                                               */

const char *miltext_dtype_name(int dt, char buf[MILTEXT_DTYPE_MAX])
{
	const char *n = mil_dtype_name((mil_dtype)dt);
	if (!n)
		snprintf(buf, MILTEXT_DTYPE_MAX, "dtype%d", dt);
	else if (strncmp(n, "float", 5) == 0)
		snprintf(buf, MILTEXT_DTYPE_MAX, "fp%s", n + 5);
	else
		snprintf(buf, MILTEXT_DTYPE_MAX, "%s", strcmp(n, "bfloat16") == 0 ? "bf16" : n);
	return buf;
}

static void put_dtype(FILE *f, int dt)
{
	char buf[MILTEXT_DTYPE_MAX];
	fputs(miltext_dtype_name(dt, buf), f);
}

static void put_dim(FILE *f, const mil_dim *d)
{
	if (d->kind == MIL_DIM_CONST)
		fprintf(f, "%llu", (unsigned long long)d->size);
	else
		fputs(d->variadic ? "?*" : "?", f);
}

static void put_type(const pr *p, const mil_type *t);

static void put_tensor_type(const pr *p, const mil_type *t)
{
	if (t->rank == 0 && t->ndims == 0 && p->bare_scalars) {
		put_dtype(p->f, t->dtype);
		return;
	}
	fputs("tensor<", p->f);
	put_dtype(p->f, t->dtype);
	fputs(", [", p->f);
	for (size_t i = 0; i < t->ndims; i++) {
		fputs(i ? ", " : "", p->f);
		put_dim(p->f, &t->dims[i]);
	}
	fputs("]>", p->f);
}

static void put_type(const pr *p, const mil_type *t)
{
	FILE *f = p->f;
	if (!t) {
		fputs("?", f);
		return;
	}
	switch (t->kind) {
	case MIL_TYPE_TENSOR: put_tensor_type(p, t); return;
	case MIL_TYPE_STATE: fputs("state<", f), put_type(p, t->wrapped), fputs(">", f); return;
	case MIL_TYPE_LIST:
		fputs("list<", f), put_type(p, t->wrapped), fputs(", ", f);
		if (t->has_length)
			put_dim(f, &t->length);
		else
			fputs("?", f);
		fputs(">", f);
		return;
	case MIL_TYPE_TUPLE:
		fputs("tuple<", f);
		for (size_t i = 0; i < t->ntypes; i++)
			fputs(i ? ", " : "", f), put_type(p, t->types[i]);
		fputs(">", f);
		return;
	case MIL_TYPE_DICT:
		fputs("dict<", f), put_type(p, t->key_type), fputs(", ", f), put_type(p, t->value_type), fputs(">", f);
		return;
	default: fputs("?", f); return;
	}
}

/* ------------------------------------------------------------------ */
/* Literals                                                            */

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

/* Hex floats are exact and are what coremlc writes (fp16(0x1.5p-17)). */
static void put_float(FILE *f, double x)
{
	if (isnan(x))
		fputs("nan", f);
	else if (isinf(x))
		fputs(x < 0 ? "-inf" : "inf", f);
	else
		fprintf(f, "%a", x);
}

/* Little-endian unsigned of nbytes at b. */
static uint64_t rd_le(const uint8_t *b, int nbytes)
{
	uint64_t v = 0;
	while (nbytes-- > 0)
		v = v << 8 | b[nbytes];
	return v;
}

/* Element i of a raw-bytes immediate (fp16, bf16, int8, uint32, sub-byte...). */
static void put_byte_element(FILE *f, const uint8_t *b, int dt, size_t i)
{
	int bits = mil_dtype_bits((mil_dtype)dt);
	switch (dt) {
	case MIL_FP16: put_float(f, fp16_to_f32((uint16_t)rd_le(b + 2 * i, 2))); return;
	case MIL_BF16: put_float(f, bf16_to_f32((uint16_t)rd_le(b + 2 * i, 2))); return;
	case MIL_INT8: fprintf(f, "%d", (int8_t)b[i]); return;
	case MIL_INT16: fprintf(f, "%d", (int16_t)rd_le(b + 2 * i, 2)); return;
	case MIL_INT32: fprintf(f, "%d", (int32_t)rd_le(b + 4 * i, 4)); return;
	default: break;
	}
	if (bits >= 8) {
		fprintf(f, "%llu", (unsigned long long)rd_le(b + (size_t)(bits / 8) * i, bits / 8));
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

/* Elements [*next, ...) as nested brackets over dims [d, ndims): one level
 * per dimension when every dimension is known, else one flat level. */
static void put_nested(FILE *f, const mil_value *v, size_t d, size_t *next, size_t n)
{
	const mil_type *t = v->type;
	uint64_t len = n;
	int nested = t && mil_type_numel(t, &len) == 0 && len == n;
	size_t count = nested ? (size_t)t->dims[d].size : n;
	fputs("[", f);
	for (size_t i = 0; i < count; i++) {
		fputs(i ? ", " : "", f);
		if (nested && d + 1 < t->ndims)
			put_nested(f, v, d + 1, next, n);
		else
			put_element(f, v, (*next)++);
	}
	fputs("]", f);
}

static int put_value(const pr *p, const mil_value *v, int typed);

static int put_tensor_literal(const pr *p, const mil_value *v)
{
	size_t n = 0, next = 0;
	if (tensor_count(v, &n) != 0)
		return -1;
	if (v->type && v->type->rank == 0 && v->type->ndims == 0) {
		if (n != 1)
			return errf("a scalar immediate holds %zu elements", n);
		put_element(p->f, v, 0);
	} else {
		put_nested(p->f, v, 0, &next, n);
	}
	return 0;
}

/* Items of a tuple/list/dict literal, untyped, between open and close. */
static int put_items(const pr *p, const mil_value *v, const char *open, const char *close)
{
	int rc = 0;
	fputs(open, p->f);
	for (size_t i = 0; i < v->n && rc == 0; i++) {
		fputs(i ? ", " : "", p->f);
		if (v->kind == MIL_VAL_DICT) {
			fputs("{", p->f);
			rc = put_value(p, v->keys[i], 0);
			fputs(", ", p->f);
			rc = rc ? rc : put_value(p, v->items[i], 0);
			fputs("}", p->f);
		} else {
			rc = put_value(p, v->items[i], 0);
		}
	}
	fputs(close, p->f);
	return rc;
}

static void put_typed_scalar(const pr *p, int dt, int is_str, const char *s, uint64_t u)
{
	mil_type t = {.kind = MIL_TYPE_TENSOR, .dtype = dt};
	put_type(p, &t);
	fputs("(", p->f);
	if (is_str)
		put_quoted(p->f, s);
	else
		fprintf(p->f, "%llu", (unsigned long long)u);
	fputs(")", p->f);
}

/* A value: "<type>(<literal>)" when typed, else the literal alone. */
static int put_value(const pr *p, const mil_value *v, int typed)
{
	int rc = 0;
	if (!v)
		return errf("a value is missing");
	if (typed)
		put_type(p, v->type), fputs("(", p->f);
	switch (v->kind) {
	case MIL_VAL_BLOB:
		fputs("BLOBFILE(path = ", p->f);
		put_typed_scalar(p, MIL_STRING, 1, v->file, 0);
		fputs(", offset = ", p->f);
		put_typed_scalar(p, MIL_UINT64, 0, NULL, v->offset);
		fputs(")", p->f);
		break;
	case MIL_VAL_TENSOR: rc = put_tensor_literal(p, v); break;
	case MIL_VAL_DICT: rc = put_items(p, v, "{", "}"); break;
	case MIL_VAL_TUPLE: rc = put_items(p, v, "(", ")"); break;
	case MIL_VAL_LIST: rc = put_items(p, v, "[", "]"); break;
	default: rc = errf("a value has neither an immediate nor a blob"); break;
	}
	if (typed)
		fputs(")", p->f);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Ops, functions, program                                             */

static int arg_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_arg *const *)x)->param, (*(const mil_arg *const *)y)->param);
}

static int attr_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_attr *const *)x)->key, (*(const mil_attr *const *)y)->key);
}

static int put_binding(const pr *p, const mil_binding *b)
{
	if (b->kind == MIL_BIND_NAME) {
		fputs(b->name, p->f);
		return 0;
	}
	return put_value(p, b->value, 1);
}

static int put_args(const pr *p, const mil_op *op)
{
	const mil_arg **args = xcalloc(op->ninputs + 1, sizeof *args);
	for (size_t i = 0; i < op->ninputs; i++)
		args[i] = op->inputs[i];
	qsort(args, op->ninputs, sizeof *args, arg_cmp);
	int rc = 0;
	for (size_t i = 0; i < op->ninputs && rc == 0; i++) {
		fprintf(p->f, "%s%s = %s", i ? ", " : "", args[i]->param, args[i]->n == 1 ? "" : "(");
		for (size_t j = 0; j < args[i]->n && rc == 0; j++)
			fputs(j ? ", " : "", p->f), rc = put_binding(p, &args[i]->v[j]);
		fputs(args[i]->n == 1 ? "" : ")", p->f);
	}
	free(args);
	return rc;
}

/* "[k = v, ...]" sorted by key; nothing when m is empty. */
static int put_attrs(const pr *p, const mil_attrs *m)
{
	if (!m->n)
		return 0;
	const mil_attr **at = xcalloc(m->n, sizeof *at);
	for (size_t i = 0; i < m->n; i++)
		at[i] = &m->v[i];
	qsort(at, m->n, sizeof *at, attr_cmp);
	int rc = 0;
	fputs("[", p->f);
	for (size_t i = 0; i < m->n && rc == 0; i++) {
		fprintf(p->f, "%s%s = ", i ? ", " : "", at[i]->key);
		rc = put_value(p, at[i]->value, 1);
	}
	fputs("]", p->f);
	free(at);
	return rc;
}

static int put_op(const pr *p, const mil_function *fn, const mil_op *op)
{
	if (op->nblocks)
		return errf("function '%s' op '%s' (%s) has nested blocks, which model.mil text does not support",
			    fn->name, mil_op_name(op) ? mil_op_name(op) : "?", op->type);
	fputs("            ", p->f);
	for (size_t i = 0; i < op->noutputs; i++) {
		fputs(i ? ", " : "", p->f);
		put_type(p, op->outputs[i].type);
		fprintf(p->f, " %s", op->outputs[i].name);
	}
	fprintf(p->f, "%s%s(", op->noutputs ? " = " : "", op->type);
	int rc = put_args(p, op);
	fputs(")", p->f);
	if (rc == 0)
		rc = put_attrs(p, &op->attrs);
	fputs(";\n", p->f);
	if (rc != 0)
		return errf("function '%s' op '%s': %s", fn->name, op->type, errmsg());
	return 0;
}

static int put_function(const pr *p, const mil_function *fn)
{
	const char *tag = miltext_opset_tag(fn->opset);
	const mil_block *b = mil_function_block(fn);
	if (!tag)
		return errf("function '%s': opset '%s' has no model.mil name", fn->name, fn->opset);
	if (!b)
		return errf("function '%s' has no body", fn->name);
	fprintf(p->f, "    func %s<%s>(", fn->name, tag);
	for (size_t i = 0; i < fn->ninputs; i++) {
		fputs(i ? ", " : "", p->f);
		put_type(p, fn->inputs[i].type);
		fprintf(p->f, " %s", fn->inputs[i].name);
	}
	fputs(fn->attrs.n ? ") " : ")", p->f);
	if (put_attrs(p, &fn->attrs) != 0)
		return errf("function '%s' attributes: %s", fn->name, errmsg());
	fputs(" {\n", p->f);
	for (size_t i = 0; i < b->nops; i++)
		if (put_op(p, fn, b->ops[i]) != 0)
			return -1;
	fputs("        } -> (", p->f);
	for (size_t i = 0; i < b->noutputs; i++)
		fprintf(p->f, "%s%s", i ? ", " : "", b->outputs[i]);
	fputs(");\n", p->f);
	return 0;
}

static int function_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_function *const *)x)->name, (*(const mil_function *const *)y)->name);
}

int miltext_write(FILE *f, const mil_program *prog, const mil_text_form *form)
{
	mil_text_form def = {3, 0};
	if (!form)
		form = &def;
	pr p = {f, form->minor != 0};
	fprintf(f, "program(1.%d)\n", form->minor);
	if (put_attrs(&p, &prog->attrs) != 0)
		return errf("program attributes: %s", errmsg());
	fputs(prog->attrs.n ? "\n{\n" : "{\n", f);
	const mil_function **fns = xcalloc(prog->nfunctions + 1, sizeof *fns);
	for (size_t i = 0; i < prog->nfunctions; i++)
		fns[i] = prog->functions[i];
	qsort(fns, prog->nfunctions, sizeof *fns, function_cmp);
	int rc = 0;
	for (size_t i = 0; i < prog->nfunctions && rc == 0; i++)
		rc = put_function(&p, fns[i]);
	free(fns);
	fputs(form->newline ? "}\n" : "}", f);
	if (rc == 0 && ferror(f))
		return errf("cannot write model.mil:");
	return rc;
}
