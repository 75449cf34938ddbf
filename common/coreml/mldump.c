/* mldump.c: print the compact text listing of a model (format in mldump.h).
 *
 * The output must match the reference listings byte for byte, so every
 * separator here is deliberate. Sections: scalars and escaping, MIL types
 * and values, the description, the program.
 */
#include "coreml/mldump.h"
#include "base/util.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Scalars                                                             */

void mldump_quoted(FILE *out, const void *data, size_t n)
{
	const uint8_t *s = data;
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\n': fputs("\\n", out); break;
		case '\r': fputs("\\r", out); break;
		case '\t': fputs("\\t", out); break;
		case '"': fputs("\\\"", out); break;
		case '\'': fputs("\\'", out); break;
		case '\\': fputs("\\\\", out); break;
		default:
			if (s[i] < 0x20 || s[i] >= 0x7f)
				fprintf(out, "\\%03o", s[i]);
			else
				fputc(s[i], out);
		}
	}
	fputc('"', out);
}

static void put_str(FILE *out, const char *s) { mldump_quoted(out, s, strlen(s)); }

/* Shortest of two fixed precisions that reads back exactly, as protobuf's
 * SimpleFtoa / SimpleDtoa do. */
static void put_real(FILE *out, double v, int is_float)
{
	char buf[64];
	if (isnan(v)) {
		fputs("nan", out);
		return;
	}
	if (isinf(v)) {
		fputs(v < 0 ? "-inf" : "inf", out);
		return;
	}
	if (is_float) {
		snprintf(buf, sizeof buf, "%.*g", FLT_DIG, v);
		if (strtof(buf, NULL) != (float)v)
			snprintf(buf, sizeof buf, "%.*g", FLT_DIG + 3, v);
	} else {
		snprintf(buf, sizeof buf, "%.*g", DBL_DIG, v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, sizeof buf, "%.*g", DBL_DIG + 2, v);
	}
	fputs(buf, out);
}

static void put_dtype(FILE *out, const char *name, int number)
{
	if (name)
		fputs(name, out);
	else
		fprintf(out, "dtype<%d>", number);
}

/* ------------------------------------------------------------------ */
/* MIL types and values                                                */

static void put_dim(FILE *out, const mil_dim *d)
{
	if (d->kind == MIL_DIM_CONST)
		fprintf(out, "%" PRIu64, d->size);
	else if (d->kind == MIL_DIM_UNKNOWN)
		fputs(d->variadic ? "?*" : "?", out);
	else
		fputc('_', out);
}

void mldump_type(FILE *out, const mil_type *t)
{
	if (!t || t->kind == MIL_TYPE_NONE) {
		fputc('?', out);
		return;
	}
	switch (t->kind) {
	case MIL_TYPE_TENSOR:
		put_dtype(out, mil_dtype_name((mil_dtype)t->dtype), t->dtype);
		fputc('[', out);
		for (size_t i = 0; i < t->ndims; i++) {
			if (i)
				fputc(',', out);
			put_dim(out, &t->dims[i]);
		}
		fputc(']', out);
		break;
	case MIL_TYPE_STATE:
		fputs("state<", out);
		mldump_type(out, t->wrapped);
		fputc('>', out);
		break;
	case MIL_TYPE_LIST:
		fputs("list<", out);
		mldump_type(out, t->wrapped);
		if (t->has_length) {
			fputc(',', out);
			put_dim(out, &t->length);
		}
		fputc('>', out);
		break;
	case MIL_TYPE_TUPLE:
		fputs("tuple<", out);
		for (size_t i = 0; i < t->ntypes; i++) {
			if (i)
				fputc(',', out);
			mldump_type(out, t->types[i]);
		}
		fputc('>', out);
		break;
	case MIL_TYPE_DICT:
		fputs("dict<", out);
		mldump_type(out, t->key_type);
		fputc(',', out);
		mldump_type(out, t->value_type);
		fputc('>', out);
		break;
	default:
		fputc('?', out);
	}
}

static void put_tensor_elements(FILE *out, const mil_tensor_value *tv)
{
	if (tv->field == MIL_TV_BYTES) {
		mldump_quoted(out, tv->u.bytes, tv->n);
		return;
	}
	for (size_t i = 0; i < tv->n; i++) {
		if (i)
			fputc(',', out);
		switch (tv->field) {
		case MIL_TV_FLOATS: put_real(out, tv->u.floats[i], 1); break;
		case MIL_TV_DOUBLES: put_real(out, tv->u.doubles[i], 0); break;
		case MIL_TV_INTS: fprintf(out, "%" PRId32, tv->u.ints[i]); break;
		case MIL_TV_LONGINTS: fprintf(out, "%" PRId64, tv->u.longints[i]); break;
		case MIL_TV_BOOLS: fputs(tv->u.bools[i] ? "true" : "false", out); break;
		case MIL_TV_STRINGS: put_str(out, tv->u.strings[i]); break;
		default: break;
		}
	}
}

void mldump_value(FILE *out, const mil_value *v)
{
	if (!v) {
		fputc('?', out);
		return;
	}
	mldump_type(out, v->type);
	switch (v->kind) {
	case MIL_VAL_BLOB:
		if (strcmp(v->file, MIL_WEIGHT_FILE) == 0) {
			fprintf(out, "@blob(%" PRIu64 ")", v->offset);
		} else {
			fputs("@blob(", out);
			put_str(out, v->file);
			fprintf(out, ",%" PRIu64 ")", v->offset);
		}
		break;
	case MIL_VAL_TENSOR:
		fputc('(', out);
		put_tensor_elements(out, &v->tensor);
		fputc(')', out);
		break;
	case MIL_VAL_TUPLE: case MIL_VAL_LIST:
		fputc('(', out);
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				fputc(',', out);
			mldump_value(out, v->items[i]);
		}
		fputc(')', out);
		break;
	case MIL_VAL_DICT:
		fputc('{', out);
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				fputc(',', out);
			mldump_value(out, v->keys[i]);
			fputc(':', out);
			mldump_value(out, v->items[i]);
		}
		fputc('}', out);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Description                                                         */

static void put_shape(FILE *out, const ml_shape *s)
{
	fputc('[', out);
	for (size_t i = 0; i < s->n; i++)
		fprintf(out, "%s%" PRId64, i ? "," : "", s->dims[i]);
	fputc(']', out);
}

static void put_array_type(FILE *out, const ml_array_type *at)
{
	if (!at) {
		fputc('?', out);
		return;
	}
	put_dtype(out, array_dtype_name((array_dtype)at->dtype), at->dtype);
	put_shape(out, &at->shape);
	if (at->flex == ML_FLEX_ENUMERATED) {
		fputs(" enumerated{", out);
		for (size_t i = 0; i < at->nshapes; i++) {
			if (i)
				fputc(' ', out);
			put_shape(out, &at->shapes[i]);
		}
		fputc('}', out);
	} else if (at->flex == ML_FLEX_RANGE) {
		fputs(" range{", out);
		for (size_t i = 0; i < at->nranges; i++) {
			fprintf(out, "%s%" PRIu64 "..", i ? " " : "", at->ranges[i].lower);
			if (at->ranges[i].upper >= 0)
				fprintf(out, "%" PRId64, at->ranges[i].upper);
		}
		fputc('}', out);
	}
	if (at->def == ML_DEFAULT_NONE)
		return;
	fputs(" default=", out);
	if (at->def == ML_DEFAULT_INT)
		fprintf(out, "%" PRId32, at->def_int);
	else
		put_real(out, at->def == ML_DEFAULT_FLOAT ? at->def_float : at->def_double, at->def == ML_DEFAULT_FLOAT);
}

static void put_feature_type(FILE *out, const ml_feature_type *t)
{
	static const char *const names[] = {"?", "int64", "double", "string", "image", "", "dictionary", "sequence", ""};
	if (!t) {
		fputc('?', out);
		return;
	}
	if (t->kind == ML_FEAT_ARRAY) {
		put_array_type(out, t->array);
	} else if (t->kind == ML_FEAT_STATE) {
		fputs("state ", out);
		put_array_type(out, t->array);
	} else {
		fputs(t->kind <= ML_FEAT_STATE ? names[t->kind] : "?", out);
	}
	if (t->is_optional)
		fputs(" optional", out);
}

static void put_features(FILE *out, const char *label, const ml_features *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		const ml_feature *f = fs->v[i];
		fprintf(out, "  %s ", label);
		put_str(out, f->name);
		fputc(' ', out);
		put_feature_type(out, f->type);
		if (f->short_description[0]) {
			fputs(" doc ", out);
			put_str(out, f->short_description);
		}
		fputc('\n', out);
	}
}

static void put_named(FILE *out, const char *label, const char *value)
{
	if (!value[0])
		return;
	fprintf(out, "  %s ", label);
	put_str(out, value);
	fputc('\n', out);
}

static void put_function_desc(FILE *out, const char *name, const ml_function_desc *fd, const ml_features *train)
{
	fputs("function ", out);
	put_str(out, name);
	fputc('\n', out);
	put_features(out, "input ", &fd->input);
	put_features(out, "output", &fd->output);
	put_features(out, "state ", &fd->state);
	if (train)
		put_features(out, "train ", train);
	put_named(out, "predicted", fd->predicted_feature);
	put_named(out, "probabilities", fd->predicted_probabilities);
}

static int kv_cmp(const void *x, const void *y) { return strcmp(((const ml_kv *)x)->key, ((const ml_kv *)y)->key); }

static void put_meta(FILE *out, const char *label, const char *value)
{
	if (!value[0])
		return;
	fprintf(out, "  meta %s = ", label);
	put_str(out, value);
	fputc('\n', out);
}

static void put_metadata(FILE *out, const ml_metadata *md)
{
	put_meta(out, "shortDescription", md->short_description);
	put_meta(out, "versionString", md->version);
	put_meta(out, "author", md->author);
	put_meta(out, "license", md->license);
	if (!md->nuser)
		return;
	ml_kv *kv = xmalloc(xmul(md->nuser, sizeof *kv));
	memcpy(kv, md->user, md->nuser * sizeof *kv);
	qsort(kv, md->nuser, sizeof *kv, kv_cmp);
	for (size_t i = 0; i < md->nuser; i++) {
		fputs("  meta ", out);
		put_str(out, kv[i].key);
		fputs(" = ", out);
		put_str(out, kv[i].value);
		fputc('\n', out);
	}
	free(kv);
}

static int has_features(const ml_function_desc *fd)
{
	return fd->input.n || fd->output.n || fd->state.n || fd->predicted_feature[0] || fd->predicted_probabilities[0];
}

static void put_description(FILE *out, const ml_description *d)
{
	if (!d->nfunctions || has_features(&d->top) || d->training_input.n)
		put_function_desc(out, "<main>", &d->top, &d->training_input);
	for (size_t i = 0; i < d->nfunctions; i++)
		put_function_desc(out, d->functions[i]->name, d->functions[i], NULL);
	if (d->default_function[0]) {
		fputs("default ", out);
		put_str(out, d->default_function);
		fputc('\n', out);
	}
	if (d->metadata)
		put_metadata(out, d->metadata);
}

/* ------------------------------------------------------------------ */
/* Program                                                             */

static void indent(FILE *out, int n) { fprintf(out, "%*s", n, ""); }

static void put_binding(FILE *out, const mil_binding *b)
{
	if (b->kind == MIL_BIND_NAME)
		fputs(b->name, out);
	else if (b->kind == MIL_BIND_VALUE)
		mldump_value(out, b->value);
	else
		fputc('?', out);
}

static void put_arg(FILE *out, const mil_arg *arg)
{
	if (arg->n == 1) {
		put_binding(out, &arg->v[0]);
		return;
	}
	fputc('(', out);
	for (size_t i = 0; i < arg->n; i++) {
		if (i)
			fputc(',', out);
		put_binding(out, &arg->v[i]);
	}
	fputc(')', out);
}

static int arg_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_arg *const *)x)->param, (*(const mil_arg *const *)y)->param);
}

static int attr_cmp(const void *x, const void *y)
{
	return strcmp(((const mil_attr *)x)->key, ((const mil_attr *)y)->key);
}

static void put_params(FILE *out, const mil_op *op)
{
	if (!op->ninputs)
		return;
	const mil_arg **args = xmalloc(xmul(op->ninputs, sizeof *args));
	memcpy(args, op->inputs, op->ninputs * sizeof *args);
	qsort(args, op->ninputs, sizeof *args, arg_cmp);
	for (size_t i = 0; i < op->ninputs; i++) {
		fprintf(out, "%s%s=", i ? ", " : "", args[i]->param);
		put_arg(out, args[i]);
	}
	free(args);
}

/* Attributes other than `name` (which is the op's own name), in brackets. */
static void put_attrs(FILE *out, const mil_attrs *attrs)
{
	size_t n = 0;
	mil_attr *v = xmalloc(xmul(attrs->n ? attrs->n : 1, sizeof *v));
	for (size_t i = 0; i < attrs->n; i++)
		if (strcmp(attrs->v[i].key, "name") != 0)
			v[n++] = attrs->v[i];
	qsort(v, n, sizeof *v, attr_cmp);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "%s%s=", i ? ", " : " [", v[i].key);
		mldump_value(out, v[i].value);
	}
	if (n)
		fputc(']', out);
	free(v);
}

static void put_block(FILE *out, const mil_block *b, int ind);

static void put_op(FILE *out, const mil_op *op, int ind)
{
	indent(out, ind);
	for (size_t i = 0; i < op->noutputs; i++) {
		if (i)
			fputs(", ", out);
		mldump_type(out, op->outputs[i].type);
		fprintf(out, " %s", op->outputs[i].name);
	}
	fprintf(out, " = %s(", op->type);
	put_params(out, op);
	fputc(')', out);
	put_attrs(out, &op->attrs);
	fputc('\n', out);
	for (size_t i = 0; i < op->nblocks; i++) {
		indent(out, ind + 2);
		fprintf(out, "block %zu\n", i);
		put_block(out, op->blocks[i], ind + 4);
	}
}

static void put_block(FILE *out, const mil_block *b, int ind)
{
	for (size_t i = 0; i < b->ninputs; i++) {
		indent(out, ind);
		fputs("in ", out);
		put_str(out, b->inputs[i].name);
		fputc(' ', out);
		mldump_type(out, b->inputs[i].type);
		fputc('\n', out);
	}
	for (size_t i = 0; i < b->nops; i++)
		put_op(out, b->ops[i], ind);
	indent(out, ind);
	fputs("outputs:", out);
	for (size_t i = 0; i < b->noutputs; i++)
		fprintf(out, "%s %s", i ? "," : "", b->outputs[i]);
	fputc('\n', out);
}

/* Op types of b and its nested blocks, appended to *types. */
static void collect_types(const mil_block *b, const char ***types, size_t *n, size_t *cap)
{
	for (size_t i = 0; i < b->nops; i++) {
		GROW(*types, *cap, *n + 1);
		(*types)[(*n)++] = b->ops[i]->type;
		for (size_t k = 0; k < b->ops[i]->nblocks; k++)
			collect_types(b->ops[i]->blocks[k], types, n, cap);
	}
}

static int str_cmp(const void *x, const void *y) { return strcmp(*(const char *const *)x, *(const char *const *)y); }

static void put_histogram(FILE *out, const mil_function *f)
{
	const char **types = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < f->nblocks; i++)
		collect_types(f->blocks[i].block, &types, &n, &cap);
	if (n)
		qsort(types, n, sizeof *types, str_cmp);
	fputs("  ops:", out);
	for (size_t i = 0, run; i < n; i += run) {
		for (run = 1; i + run < n && strcmp(types[i], types[i + run]) == 0; run++)
			;
		fprintf(out, "%s %s:%zu", i ? "," : "", types[i], run);
	}
	fputc('\n', out);
	free(types);
}

static int spec_cmp(const void *x, const void *y)
{
	return strcmp(((const mil_spec_block *)x)->key, ((const mil_spec_block *)y)->key);
}

static void put_function(FILE *out, const mil_function *f)
{
	fputs("program function ", out);
	put_str(out, f->name);
	fputs(" opset ", out);
	put_str(out, f->opset);
	fputc('\n', out);
	for (size_t i = 0; i < f->ninputs; i++) {
		fputs("  in ", out);
		put_str(out, f->inputs[i].name);
		fputc(' ', out);
		mldump_type(out, f->inputs[i].type);
		fputc('\n', out);
	}
	int plain = f->nblocks == 1 && strcmp(f->blocks[0].key, f->opset) == 0;
	mil_spec_block *blocks = xmalloc(xmul(f->nblocks ? f->nblocks : 1, sizeof *blocks));
	if (f->nblocks)
		memcpy(blocks, f->blocks, f->nblocks * sizeof *blocks);
	qsort(blocks, f->nblocks, sizeof *blocks, spec_cmp);
	for (size_t i = 0; i < f->nblocks; i++) {
		if (!plain) {
			fputs("  block ", out);
			put_str(out, blocks[i].key);
			fputc('\n', out);
		}
		put_block(out, blocks[i].block, 4);
	}
	free(blocks);
	put_histogram(out, f);
}

static int function_cmp(const void *x, const void *y)
{
	return strcmp((*(const mil_function *const *)x)->name, (*(const mil_function *const *)y)->name);
}

static void put_program(FILE *out, const mil_program *p)
{
	if (!p->nfunctions)
		return;
	const mil_function **fns = xmalloc(xmul(p->nfunctions, sizeof *fns));
	memcpy(fns, p->functions, p->nfunctions * sizeof *fns);
	qsort(fns, p->nfunctions, sizeof *fns, function_cmp);
	for (size_t i = 0; i < p->nfunctions; i++)
		put_function(out, fns[i]);
	free(fns);
}

int mldump_listing(FILE *out, const ml_model *m)
{
	fprintf(out, "specificationVersion %" PRId32 "\n", m->spec_version);
	if (m->is_updatable)
		fputs("isUpdatable true\n", out);
	if (m->desc)
		put_description(out, m->desc);
	if (m->program)
		put_program(out, m->program);
	if (fflush(out) != 0 || ferror(out))
		return errf("writing the listing failed:");
	return 0;
}
