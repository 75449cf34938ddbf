/* test_mlmodelc.c: the .mlmodelc writer (common/mlmodelc.h).
 *
 * model.mil text of a hand-built program covering every rendering the header
 * documents (scalars, vectors, hex floats, blobs, constexpr, state inputs,
 * write_state, variadic and multi-output ops), refusals (nested blocks,
 * unknown opsets); coremldata.bin and analytics bytes; and, on packages the
 * real stages write for a tiny Llama (embeddings, LUT6 LM head, combined
 * LUT6 chunk): the five items, weight.bin byte for byte, metadata.json
 * parsed with cJSON against the package description, the ModelDescription
 * in coremldata.bin decoded back, determinism and atomic replacement.
 */
#include "base/fsutil.h"
#include "coreml/combine.h"
#include "coreml/mlmodelc.h"
#include "coreml/mlpackage.h"
#include "test.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static char g_tmp[] = "/tmp/anemake-mlmodelc-XXXXXX";

static char *mil_text(const ml_model *m, int *rc)
{
	char *text = NULL;
	size_t n;
	FILE *f = open_memstream(&text, &n);
	*rc = mlmodelc_write_mil(f, m);
	fclose(f);
	return text;
}

/* ------------------------------------------------------------------ */
/* model.mil renderings                                                */

static ml_model *sample_model(void)
{
	ml_model *m = ml_model_new(9);
	mil_arena *a = m->arena;
	mil_program *p = ml_model_program(m);
	mil_program_set_build_info(p, "coremltools-version", "9.0");
	mil_function *fn = mil_program_add_function(p, "main", NULL);
	int64_t x_dims[2] = {1, -1}, kv_dims[2] = {2, 4}, w_dims[2] = {4, 4}, lut_dims[4] = {1, 1, 4, 1};
	mil_function_add_input(fn, "x", mil_type_tensor(a, MIL_FP16, 2, x_dims));
	mil_function_add_input(fn, "kv", mil_type_state(a, mil_type_tensor(a, MIL_FP16, 2, kv_dims)));
	mil_block *b = mil_function_block(fn);
	mil_block_add_const(b, "axis", mil_value_i32(a, -1));
	mil_block_add_const(b, "eps", mil_value_fp16(a, 0x0015)); /* 0x1.5p-20 */
	mil_block_add_const(b, "shape", mil_value_i32s(a, 2, (const int32_t[]){1, 4}));
	mil_block_add_const(b, "halves", mil_value_fp16s(a, 3, (const uint16_t[]){0x3800, 0xfc00, 0xbc00}));
	mil_block_add_const(b, "dt", mil_value_str(a, "fp\"32"));
	mil_block_add_const(b, "flag", mil_value_bool(a, 1));
	mil_block_add_const(b, "w", mil_value_blob(a, mil_type_tensor(a, MIL_FP16, 2, w_dims), NULL, 64));
	mil_op *lut = mil_block_add_op(b, "constexpr_lut_to_dense", "wq");
	mil_op_bind_value(lut, "lut", mil_value_blob(a, mil_type_tensor(a, MIL_FP16, 4, lut_dims), NULL, 192));
	mil_op_bind_value(lut, "indices", mil_value_blob(a, mil_type_tensor(a, MIL_UINT2, 2, w_dims), NULL, 320));
	mil_op_add_output(lut, "wq", mil_type_tensor(a, MIL_FP16, 2, w_dims));
	mil_op *cat = mil_block_add_op(b, "concat", "cat");
	mil_op_bind_names(cat, "values", 2, (const char *const[]){"x", "x"});
	mil_op_bind(cat, "axis", "axis");
	mil_op_bind(cat, "interleave", "flag");
	mil_op_add_output(cat, "cat", mil_type_tensor(a, MIL_FP16, 2, x_dims));
	mil_op *split = mil_block_add_op(b, "split", "parts");
	mil_op_bind(split, "x", "cat");
	mil_op_add_output(split, "p0", mil_type_tensor(a, MIL_FP16, 2, x_dims));
	mil_op_add_output(split, "p1", mil_type_tensor(a, MIL_FP16, 2, x_dims));
	mil_op *ws = mil_block_add_op(b, "write_state", "store");
	mil_op_bind(ws, "input", "kv");
	mil_op_bind(ws, "data", "wq");
	mil_block_add_output(b, "p0");
	return m;
}

static const char SAMPLE_MIL[] =
	"program(1.3)\n"
	"[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3600.16.1\"}, "
	"{\"coremlc-version\", \"3600.25.1\"}, {\"coremltools-version\", \"9.0\"}})]\n"
	"{\n"
	"    func main<ios18>(tensor<fp16, [1, ?]> x, state<tensor<fp16, [2, 4]>> kv) {\n"
	"            int32 axis = const()[name = string(\"axis\"), val = int32(-1)];\n"
	"            fp16 eps = const()[name = string(\"eps\"), val = fp16(0x1.5p-20)];\n"
	"            tensor<int32, [2]> shape = const()[name = string(\"shape\"), val = tensor<int32, [2]>([1, 4])];\n"
	"            tensor<fp16, [3]> halves = const()[name = string(\"halves\"), val = tensor<fp16, [3]>([0x1p-1, -inf, -0x1p+0])];\n"
	"            string dt = const()[name = string(\"dt\"), val = string(\"fp\\\"32\")];\n"
	"            bool flag = const()[name = string(\"flag\"), val = bool(true)];\n"
	"            tensor<fp16, [4, 4]> w = const()[name = string(\"w\"), val = tensor<fp16, [4, 4]>(BLOBFILE(path = "
	"string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];\n"
	"            tensor<fp16, [4, 4]> wq = constexpr_lut_to_dense(indices = tensor<uint2, [4, 4]>(BLOBFILE(path = "
	"string(\"@model_path/weights/weight.bin\"), offset = uint64(320))), lut = tensor<fp16, [1, 1, 4, 1]>(BLOBFILE("
	"path = string(\"@model_path/weights/weight.bin\"), offset = uint64(192))))[name = string(\"wq\")];\n"
	"            tensor<fp16, [1, ?]> cat = concat(axis = axis, interleave = flag, values = (x, x))[name = string(\"cat\")];\n"
	"            tensor<fp16, [1, ?]> p0, tensor<fp16, [1, ?]> p1 = split(x = cat)[name = string(\"parts\")];\n"
	"            write_state(data = wq, input = kv)[name = string(\"store\")];\n"
	"        } -> (p0);\n"
	"}";

static void test_mil_renderings(void)
{
	ml_model *m = sample_model();
	int rc;
	char *text = mil_text(m, &rc);
	CHECKF(rc == 0, "%s", errmsg());
	CHECKF(text && streq(text, SAMPLE_MIL), "model.mil:\n%s\nexpected:\n%s", text, SAMPLE_MIL);
	free(text);
	ml_model_free(m);
}

static void test_mil_functions_sorted(void)
{
	ml_model *m = sample_model();
	mil_program *p = m->program;
	mil_function *z = mil_program_copy_function(p, mil_program_find_function(p, "main"), "zeta");
	mil_program_copy_function(p, z, "alpha");
	int rc;
	char *text = mil_text(m, &rc);
	const char *a = strstr(text, "func alpha<ios18>"), *mn = strstr(text, "func main<ios18>"), *zz = strstr(text, "func zeta<ios18>");
	CHECK(rc == 0 && a && mn && zz && a < mn && mn < zz);
	CHECK(strstr(text, "        } -> (p0);\n    func main<ios18>") != NULL); /* no blank line between */
	free(text);
	ml_model_free(m);
}

/* Flexible inputs give the function coremlc's FlexibleShapeInformation. */
static void test_mil_flexible(void)
{
	ml_model *m = sample_model();
	ml_feature *x = ml_model_add_input(m, NULL, "x", ARRAY_FLOAT16, 2, (const int64_t[]){1, 1});
	ml_feature_add_enumerated_shape(m, x, 2, (const int64_t[]){1, 1});
	ml_feature_add_enumerated_shape(m, x, 2, (const int64_t[]){1, 64});
	int rc;
	char *text = mil_text(m, &rc);
	const char *want = "    func main<ios18>(tensor<fp16, [1, ?]> x, state<tensor<fp16, [2, 4]>> kv) "
			   "[FlexibleShapeInformation = tuple<tuple<string, dict<string, tensor<int32, [?]>>>, "
			   "tuple<string, dict<string, dict<string, tensor<int32, [?]>>>>>(((\"DefaultShapes\", "
			   "{{\"x\", [1, 1]}}), (\"EnumeratedShapes\", {{\"570f7d82\", {{\"x\", [1, 64]}}}, "
			   "{\"a8fc0270\", {{\"x\", [1, 1]}}}})))] {\n";
	CHECKF(rc == 0 && strstr(text, want), "model.mil:\n%s", text ? text : errmsg());
	free(text);
	x->type->array->flex = ML_FLEX_RANGE;
	x->type->array->ranges = mil_alloc(m->arena, 2 * sizeof *x->type->array->ranges);
	x->type->array->ranges[0] = (ml_size_range){1, 1};
	x->type->array->ranges[1] = (ml_size_range){1, -1};
	x->type->array->nranges = 2;
	text = mil_text(m, &rc);
	want = "[FlexibleShapeInformation = tuple<tuple<string, dict<string, tensor<int32, [?]>>>, tuple<string, "
	       "dict<string, list<tensor<int32, [2]>, ?>>>>(((\"DefaultShapes\", {{\"x\", [1, 1]}}), "
	       "(\"RangeDims\", {{\"x\", [[1, 1], [1, -1]]}})))] {\n";
	CHECKF(rc == 0 && strstr(text, want), "model.mil:\n%s", text ? text : errmsg());
	free(text);
	ml_model_free(m);
}

static void test_mil_refusals(void)
{
	ml_model *m = sample_model();
	mil_function *fn = mil_program_find_function(m->program, "main");
	mil_op *cond = mil_block_add_op(mil_function_block(fn), "cond", "branch");
	mil_op_add_block(cond);
	int rc;
	char *text = mil_text(m, &rc);
	CHECK(rc != 0 && strstr(errmsg(), "op 'branch' (cond) has nested blocks"));
	free(text);
	ml_model_free(m);
	m = sample_model();
	mil_program_find_function(m->program, "main")->opset = "CoreML99";
	text = mil_text(m, &rc);
	CHECK(rc != 0 && strstr(errmsg(), "opset 'CoreML99'"));
	free(text);
	ml_model_free(m);
}

/* ------------------------------------------------------------------ */
/* coremldata.bin, analytics                                           */

static uint64_t le(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* memmem without _GNU_SOURCE. */
static const char *find_bytes(const void *hay, size_t n, const char *needle, size_t k)
{
	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (memcmp((const char *)hay + i, needle, k) == 0)
			return (const char *)hay + i;
	return NULL;
}

/* The n bytes after the description of a coremldata.bin image. */
static size_t trailer_len(const pb_buf *b) { return b->len - 0x53 - (size_t)le(b->data + 0x4b, 8); }

static void test_coremldata_layout(void)
{
	ml_model *m = sample_model();
	int64_t shape[2] = {1, 4};
	ml_model_add_input(m, NULL, "x", ARRAY_FLOAT16, 2, shape);
	ml_model_add_output(m, NULL, "p0", ARRAY_FLOAT16, 2, shape);
	ml_model_set_user_meta(m, "k", "v");
	pb_buf b;
	pb_init(&b);
	CHECK(mlmodelc_coremldata(m, &b) == 0);
	const uint8_t *d = b.data;
	/* spec 9: the spec version at offset 4; one trailer record for a single function */
	CHECK(b.len > 0x53 + 16 && le(d, 4) == 502 && le(d + 4, 4) == 9 && le(d + 0x1c, 8) == 7);
	CHECK(memcmp(d + 0x24, "generic", 7) == 0 && le(d + 0x2b, 8) == 9 && trailer_len(&b) == 16);
	CHECK(le(d + b.len - 16, 4) == 502);
	for (size_t i = 8; i < 0x1c; i++)
		CHECK(d[i] == 0);
	ml_model *back;
	CHECKF(mlmodelc_read_coremldata(b.data, b.len, &back) == 0, "%s", errmsg());
	if (back) { /* the description as it is: no functions added */
		CHECK(back->spec_version == 9 && back->desc->top.input.n == 1 && streq(back->desc->top.input.v[0]->name, "x"));
		CHECK(back->desc->nfunctions == 0 && !*back->desc->default_function);
		CHECK_STR(ml_model_user_meta(back, "k"), "v");
	}
	ml_model_free(back);
	/* Damaged images are refused. */
	CHECK(mlmodelc_read_coremldata(b.data, 40, &back) != 0 && back == NULL);
	b.data[0] = 0;
	CHECK(mlmodelc_read_coremldata(b.data, b.len, &back) != 0 && strstr(errmsg(), "not an ML Program"));
	b.data[0] = 0xf6;
	b.data[4] = 5; /* 5 or the spec version: either is accepted */
	CHECK(mlmodelc_read_coremldata(b.data, b.len, &back) == 0 && back);
	ml_model_free(back);
	b.data[4] = 8;
	CHECK(mlmodelc_read_coremldata(b.data, b.len, &back) != 0 && strstr(errmsg(), "offset 4 holds 8, neither 5 nor"));
	b.data[4] = 9;
	b.data[0x4b] ^= 1;
	CHECK(mlmodelc_read_coremldata(b.data, b.len, &back) != 0 && strstr(errmsg(), "not whole 16-byte records"));
	b.data[0x4b] ^= 1;
	b.data[b.len - 1] = 1;
	CHECK(mlmodelc_read_coremldata(b.data, b.len, &back) != 0 && strstr(errmsg(), "non-zero padding"));
	pb_release(&b);
	ml_model_free(m);
}

/* A multifunction description: one trailer record per function, and the reader
 * refuses a record count that does not match. Spec 7 writes 5 at offset 4. */
static void test_coremldata_multifunction(void)
{
	ml_model *m = sample_model();
	int64_t shape[2] = {1, 4};
	for (int i = 0; i < 3; i++) {
		ml_function_desc *fd = ml_model_add_function(m, i == 0 ? "infer" : i == 1 ? "prefill" : "rotate");
		ml_model_add_input(m, fd, "x", ARRAY_FLOAT16, 2, shape);
	}
	ml_model_set_default_function(m, "infer");
	pb_buf b;
	pb_init(&b);
	CHECK(mlmodelc_coremldata(m, &b) == 0 && trailer_len(&b) == 3 * 16);
	for (size_t r = 0; r < 3; r++)
		CHECK(le(b.data + b.len - 48 + 16 * r, 4) == 502);
	ml_model *back = NULL;
	CHECKF(mlmodelc_read_coremldata(b.data, b.len, &back) == 0, "%s", errmsg());
	CHECK(back && back->desc->nfunctions == 3 && streq(back->desc->default_function, "infer"));
	ml_model_free(back);
	CHECK(mlmodelc_read_coremldata(b.data, b.len - 16, &back) != 0 &&
	      strstr(errmsg(), "2 trailer records for a description of 3 function(s)"));
	pb_release(&b);
	m->spec_version = 7;
	pb_init(&b);
	CHECK(mlmodelc_coremldata(m, &b) == 0 && le(b.data + 4, 4) == 5 && le(b.data + 0x2b, 8) == 7);
	CHECK(mlmodelc_read_coremldata(b.data, b.len, &back) == 0 && back && back->spec_version == 7);
	ml_model_free(back);
	pb_release(&b);
	ml_model_free(m);
}

static void test_analytics(void)
{
	pb_buf b;
	pb_init(&b);
	uint8_t hash[32] = {0x8c, 0x80, 0x4e};
	mlmodelc_analytics(hash, &b);
	CHECK_EQ_INT(b.len, 243);
	CHECK(le(b.data, 8) == 25 && memcmp(b.data + 8, "NeuralNetworkModelDetails", 25) == 0 && le(b.data + 33, 8) == 2);
	CHECK(find_bytes(b.data, b.len, "modelHash,\0\0\0\0\0\0\0jIBO", 21) != NULL);
	CHECK(memcmp(b.data + b.len - 22, "modelName\x05\0\0\0\0\0\0\0model", 22) == 0);
	pb_release(&b);
}

/* ------------------------------------------------------------------ */
/* Real packages                                                       */

static char *g_pkgs[3];  /* embeddings, LM head, combined chunk */

static int same_file(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t nx, ny;
	int same = read_file(a, FS_MAX_MODEL, &x, &nx) == 0 && read_file(b, FS_MAX_MODEL, &y, &ny) == 0 && nx == ny && memcmp(x, y, nx) == 0;
	free(x), free(y);
	return same;
}

static char *compiled_path(const char *package, const char *dir)
{
	char *base = path_basename(package);
	base[strlen(base) - strlen(".mlpackage")] = 0;
	char *out = xasprintf("%s/%s/%s.mlmodelc", g_tmp, dir, base);
	free(base);
	return out;
}

/* Names of the schema entries equal the features, in order. */
static int schema_matches(const cJSON *schema, const ml_features *fs, const char *type)
{
	if (!cJSON_IsArray(schema) || cJSON_GetArraySize(schema) != (int)fs->n)
		return 0;
	for (size_t i = 0; i < fs->n; i++) {
		const cJSON *e = cJSON_GetArrayItem(schema, (int)i);
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"), *t = cJSON_GetObjectItemCaseSensitive(e, "type");
		if (!cJSON_IsString(name) || !streq(name->valuestring, fs->v[i]->name) || !cJSON_IsString(t) ||
		    !streq(t->valuestring, type))
			return 0;
	}
	return 1;
}

static const char *json_str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static void check_metadata_json(const char *mlmodelc, const ml_model *m)
{
	char *path = path_join(mlmodelc, "metadata.json"), *text = NULL;
	size_t n;
	cJSON *doc = read_file(path, FS_MAX_MODEL, &text, &n) == 0 ? cJSON_Parse(text) : NULL;
	CHECKF(cJSON_IsArray(doc) && cJSON_GetArraySize(doc) == 1, "%s does not parse as [ {...} ]", path);
	const cJSON *o = cJSON_GetArrayItem(doc, 0);
	const ml_description *d = m->desc;
	const ml_function_desc *def = d->nfunctions ? d->functions[0] : &d->top;
	CHECK(cJSON_GetObjectItemCaseSensitive(o, "specificationVersion") &&
	      cJSON_GetObjectItemCaseSensitive(o, "specificationVersion")->valueint == 9);
	CHECK(schema_matches(cJSON_GetObjectItemCaseSensitive(o, "inputSchema"), &def->input, "MultiArray"));
	CHECK(schema_matches(cJSON_GetObjectItemCaseSensitive(o, "outputSchema"), &def->output, "MultiArray"));
	CHECK(schema_matches(cJSON_GetObjectItemCaseSensitive(o, "stateSchema"), &def->state, "State"));
	const cJSON *fns = cJSON_GetObjectItemCaseSensitive(o, "functions");
	/* a single-function package has no functions list, as coremlc keeps it */
	CHECK(d->nfunctions ? cJSON_IsArray(fns) && cJSON_GetArraySize(fns) == (int)d->nfunctions : fns == NULL);
	for (size_t i = 0; i < d->nfunctions && cJSON_GetArraySize(fns) == (int)d->nfunctions; i++) {
		const cJSON *f = cJSON_GetArrayItem(fns, (int)i);
		const ml_function_desc *fd = d->functions[i];
		CHECK_STR(json_str(f, "name"), fd->name);
		CHECK(schema_matches(cJSON_GetObjectItemCaseSensitive(f, "inputSchema"), &fd->input, "MultiArray"));
		CHECK(schema_matches(cJSON_GetObjectItemCaseSensitive(f, "stateSchema"), &fd->state, "State"));
	}
	CHECK_STR(json_str(o, "defaultFunctionName"), d->nfunctions ? d->default_function : "");
	CHECK(text[n - 1] == ']'); /* no final newline */
	CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "storagePrecision")));
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "mlProgramOperationTypeHistogram");
	CHECK(cJSON_IsObject(h) && !cJSON_GetObjectItemCaseSensitive(h, "Ios18.const"));
	const cJSON *ud = cJSON_GetObjectItemCaseSensitive(o, "userDefinedMetadata");
	CHECK_STR(json_str(ud, "com.anemll.context_length"), "64");
	CHECK_STR(json_str(cJSON_GetObjectItemCaseSensitive(o, "availability"), "iOS"), "18.0");
	CHECK_STR(json_str(o, "shortDescription"), d->metadata->short_description);
	cJSON_Delete(doc);
	free(text), free(path);
}

static void check_coremldata(const char *mlmodelc, ml_model *m)
{
	char *path = path_join(mlmodelc, "coremldata.bin"), *data = NULL;
	size_t n;
	ml_model *back = NULL;
	CHECK(read_file(path, FS_MAX_MODEL, &data, &n) == 0 && n > 4 && le((const uint8_t *)data, 4) == 502);
	CHECKF(data && mlmodelc_read_coremldata(data, n, &back) == 0, "%s: %s", path, errmsg());
	if (back) { /* exactly the package's description, single-function or not */
		pb_buf a, b;
		pb_init(&a), pb_init(&b);
		m->program = NULL; /* arena-owned: only hidden from the encoder */
		ml_model_encode(m, &a), ml_model_encode(back, &b);
		CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
		pb_release(&a), pb_release(&b);
	}
	ml_model_free(back);
	free(data), free(path);
}

static void check_compiled(const char *package)
{
	char *out = compiled_path(package, "c");
	CHECKF(mlmodelc_write(package, out) == 0, "%s: %s", package, errmsg());
	static const char *const items[] = {"model.mil", "coremldata.bin", "metadata.json", "analytics/coremldata.bin",
					    "weights/weight.bin"};
	for (int i = 0; i < 5; i++) {
		char *p = path_join(out, items[i]);
		CHECKF(path_exists(p), "%s missing", p);
		free(p);
	}
	char *w1 = xasprintf("%s/Data/com.apple.CoreML/weights/weight.bin", package), *w2 = path_join(out, "weights/weight.bin");
	CHECKF(same_file(w1, w2), "%s differs from the package's", w2);
	ml_model *m = test_package_model(package);
	if (m) {
		check_metadata_json(out, m);
		int rc;
		char *text = mil_text(m, &rc), *mil = NULL, *p = path_join(out, "model.mil");
		size_t n;
		CHECK(rc == 0 && read_file(p, FS_MAX_MODEL, &mil, &n) == 0 && streq(text, mil));
		free(text), free(mil), free(p);
		check_coremldata(out, m);
	}
	ml_model_free(m);
	free(w1), free(w2), free(out);
}

static void test_compiled_packages(void)
{
	for (int i = 0; i < 3; i++)
		check_compiled(g_pkgs[i]);
	char *mil = NULL, *p = xasprintf("%s/c/llama_FFN_PF_lut6_chunk_01of01.mlmodelc/model.mil", g_tmp);
	size_t n;
	CHECK(read_file(p, FS_MAX_MODEL, &mil, &n) == 0 && strstr(mil, "    func infer<ios18>(") && strstr(mil, "    func prefill<ios18>(") &&
	      strstr(mil, "state<tensor<fp16, [4, 2, 64, 16]>> model_model_kv_cache_0)"));
	free(mil), free(p);
	p = xasprintf("%s/c/llama_embeddings.mlmodelc/model.mil", g_tmp); /* input_ids: [1, 1] or [1, 8] */
	CHECK(read_file(p, FS_MAX_MODEL, &mil, &n) == 0 && strstr(mil, "[FlexibleShapeInformation = tuple<") &&
	      strstr(mil, "((\"DefaultShapes\", {{\"input_ids\", [1, 1]}}), (\"EnumeratedShapes\", {{\"") &&
	      strstr(mil, "{{\"input_ids\", [1, 8]}}") && mil[n - 1] == '}');
	free(mil), free(p);
	p = xasprintf("%s/c/llama_FFN_PF_lut6_chunk_01of01.mlmodelc/metadata.json", g_tmp);
	CHECK(read_file(p, FS_MAX_MODEL, &mil, &n) == 0 && strstr(mil, "\"Ios18.constexprLutToDense\" : ") &&
	      strstr(mil, "\"formattedType\" : \"State (Float16 4 \xc3\x97 2 \xc3\x97 64 \xc3\x97 16)\""));
	free(mil), free(p);
}

static void test_deterministic_and_atomic(void)
{
	char *a = compiled_path(g_pkgs[2], "c"), *b = compiled_path(g_pkgs[2], "d"), *dir = xasprintf("%s/d", g_tmp);
	char *stale = path_join(b, "stale");
	CHECK(mkdir_p(b) == 0 && write_file_atomic(stale, "x", 1) == 0);
	CHECK(mlmodelc_write(g_pkgs[2], b) == 0);
	CHECK(!path_exists(stale));
	static const char *const items[] = {"model.mil", "coremldata.bin", "metadata.json", "analytics/coremldata.bin",
					    "weights/weight.bin"};
	for (int i = 0; i < 5; i++) {
		char *x = path_join(a, items[i]), *y = path_join(b, items[i]);
		CHECKF(same_file(x, y), "%s differs between two writes", items[i]);
		free(x), free(y);
	}
	char *none = xasprintf("%s/none.mlpackage", g_tmp), *out = xasprintf("%s/d/none.mlmodelc", g_tmp);
	CHECK(mlmodelc_write(none, out) != 0 && strstr(errmsg(), none) && !path_exists(out));
	free(a), free(b), free(dir), free(stale), free(none), free(out);
}

static int setup(void)
{
	const char *bin = getenv("BIN"), *tb = getenv("TESTBIN");
	const char *common = "--context-length 64 -q >/dev/null";
	int rc = test_sh("%s/mkfixture --arch llama --layers 2 --seed 4 --out %s/fx >/dev/null", tb, g_tmp);
	rc |= test_sh("%s/embed --model %s/fx --output %s/p --batch-size 8 %s", bin, g_tmp, g_tmp, common);
	rc |= test_sh("%s/lmhead --model %s/fx --output %s/p --lut 6 %s", bin, g_tmp, g_tmp, common);
	rc |= test_sh("%s/ffn --model %s/fx --output %s/p --lut 6 --batch-size 8 %s", bin, g_tmp, g_tmp, common);
	rc |= test_sh("%s/prefill --model %s/fx --output %s/p --lut 6 --batch-size 8 %s", bin, g_tmp, g_tmp, common);
	g_pkgs[0] = xasprintf("%s/p/llama_embeddings.mlpackage", g_tmp);
	g_pkgs[1] = xasprintf("%s/p/llama_lm_head_lut6.mlpackage", g_tmp);
	g_pkgs[2] = xasprintf("%s/p/llama_FFN_PF_lut6_chunk_01of01.mlpackage", g_tmp);
	char *ffn = xasprintf("%s/p/llama_FFN_lut6_chunk_01of01.mlpackage", g_tmp);
	char *pre = xasprintf("%s/p/llama_prefill_lut6_chunk_01of01.mlpackage", g_tmp), *c = xasprintf("%s/c", g_tmp);
	combine_source src[2] = {{ffn, NULL, "infer"}, {pre, NULL, "prefill"}};
	rc |= combine_packages(g_pkgs[2], src, 2, NULL) | mkdir_p(c);
	free(ffn), free(pre), free(c);
	return rc;
}

int main(void)
{
	RUN(test_mil_renderings);
	RUN(test_mil_functions_sorted);
	RUN(test_mil_flexible);
	RUN(test_mil_refusals);
	RUN(test_coremldata_layout);
	RUN(test_coremldata_multifunction);
	RUN(test_analytics);
	if (!getenv("BIN") || !getenv("TESTBIN") || !mkdtemp(g_tmp)) {
		printf("skip test_compiled_packages: BIN/TESTBIN not set (run through tests/run.sh)\n");
		return test_finish();
	}
	if (setup() != 0)
		printf("FAIL setup: converting the fixture failed: %s\n", errmsg());
	RUN(test_compiled_packages);
	RUN(test_deterministic_and_atomic);
	for (int i = 0; i < 3; i++)
		free(g_pkgs[i]);
	rm_rf(g_tmp);
	return test_finish();
}
