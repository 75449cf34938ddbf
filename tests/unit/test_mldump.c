/* test_mldump.c: the listing printer against the reference listings.
 *
 * Every reference package (shared/reference/<dir>/packages/<name>.mlpackage)
 * is decoded and listed; the text must equal listings/<name>.txt byte for
 * byte. Listings whose package is not kept (the gemma3 per-mode parts) are
 * not compared. The renderings chosen for cases the references lack are
 * pinned down on a small hand-built model.
 */
#include "base/fsutil.h"
#include "coreml/mldump.h"
#include "coreml/mlmodel.h"
#include "test.h"
#include "base/util.h"

#include <dirent.h>
#include <stdint.h>

/* Listing of m as a malloc'd string. */
static char *listing_of(const ml_model *m)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (!f)
		return NULL;
	int rc = mldump_listing(f, m);
	fclose(f);
	if (rc != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* 0 when equal; else report the first differing line (1-based) of `what`. */
static int compare_text(const char *what, const char *got, const char *want)
{
	if (strcmp(got, want) == 0)
		return 0;
	int line = 1;
	const char *g = got, *w = want;
	while (*g && *g == *w) {
		if (*g == '\n') {
			line++;
			got = g + 1;
			want = w + 1;
		}
		g++, w++;
	}
	int gl = (int)strcspn(got, "\n"), wl = (int)strcspn(want, "\n");
	CHECKF(0, "%s: line %d differs:\n  got:  %.*s\n  want: %.*s", what, line, gl, got, wl, want);
	return -1;
}

/* Compare every package of reference dir `dir` with its listing; returns the number compared. */
static int check_reference_dir(const char *dir)
{
	const char *shared = test_shared();
	char *listings = xasprintf("%s/reference/%s/listings", shared, dir);
	DIR *d = opendir(listings);
	CHECKF(d != NULL, "cannot open %s", listings);
	int compared = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!has_suffix(e->d_name, ".txt"))
			continue;
		char *name = xstrndup(e->d_name, strlen(e->d_name) - 4);
		char *model = xasprintf("%s/reference/%s/packages/%s.mlpackage/Data/com.apple.CoreML/model.mlmodel", shared,
					dir, name);
		char *txt = xasprintf("%s/%s", listings, e->d_name);
		char *want = NULL, *got = NULL;
		size_t n;
		ml_model *m = NULL;
		if (path_exists(model)) {
			compared++;
			CHECKF(read_file(txt, FS_MAX_MODEL, &want, &n) == 0, "%s", errmsg());
			CHECKF(ml_model_read(model, &m) == 0, "%s", errmsg());
			if (want && m && (got = listing_of(m)))
				compare_text(name, got, want);
		}
		free(got);
		free(want);
		ml_model_free(m);
		free(txt);
		free(model);
		free(name);
	}
	if (d)
		closedir(d);
	free(listings);
	return compared;
}

static void test_llama_tiny(void)
{
	if (!test_shared())
		SKIP("shared material not found");
	int n = check_reference_dir("anemll-llama-tiny");
	CHECK_EQ_INT(n, 5);
}

static void test_gemma3_tiny(void)
{
	if (!test_shared())
		SKIP("shared material not found");
	int n = check_reference_dir("anemll-gemma3-tiny");
	CHECK_EQ_INT(n, 4); /* the 8 per-mode listings have no package */
}

static void test_llama_monolithic(void)
{
	if (!test_shared())
		SKIP("shared material not found");
	int n = check_reference_dir("anemll-llama-tiny-monolithic");
	CHECK_EQ_INT(n, 1);
}

/* A model using the renderings the references never need. */
static ml_model *odd_model(void)
{
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	mil_arena *a = m->arena;
	ml_feature *in = ml_model_add_input(m, NULL, "x", ARRAY_FLOAT32, 2, (int64_t[]){1, 4});
	ml_array_type *at = ml_feature_array(in);
	at->flex = ML_FLEX_RANGE;
	at->nranges = 2;
	at->ranges = mil_alloc(a, 2 * sizeof *at->ranges);
	at->ranges[0] = (ml_size_range){1, 1};
	at->ranges[1] = (ml_size_range){1, -1};
	in->type->is_optional = 1;
	in->short_description = "the \"input\"\n";
	ml_model_add_output(m, NULL, "y", ARRAY_FLOAT32, 0, NULL);
	ml_model_set_metadata(m, NULL, NULL, NULL, "MIT");

	mil_function *f = mil_program_add_function(ml_model_program(m), "main", NULL);
	mil_function_add_input(f, "x", mil_type_tensor(a, MIL_FP32, 2, (int64_t[]){1, -1}));
	mil_block *b = mil_function_block(f);
	mil_block_add_const(b, "c", mil_value_fp32s(a, 3, (float[]){0.1f, -2.5f, 1e20f}));
	mil_block_add_const(b, "s", mil_value_str(a, "tab\there\x01\xff"));
	mil_block_add_const(b, "w", mil_value_blob(a, mil_type_tensor(a, MIL_FP16, 1, (int64_t[]){16}), "other.bin", 128));
	mil_op *op = mil_block_add_op(b, "split", "split_0");
	mil_op_bind(op, "x", "x");
	mil_op_bind_value(op, "axis", mil_value_i32(a, 1));
	mil_op_set_attr(op, "extra", mil_value_bool(a, 1));
	mil_op_add_output(op, "p", mil_type_tensor(a, MIL_FP32, 2, (int64_t[]){1, 2}));
	mil_op_add_output(op, "q", mil_type_tensor(a, MIL_FP32, 2, (int64_t[]){1, 2}));
	mil_op *cond = mil_block_add_op(b, "cond", "cond_0");
	mil_block *inner = mil_op_add_block(cond);
	mil_op *id = mil_block_add_op(inner, "identity", "id_0");
	mil_op_bind(id, "x", "p");
	mil_op_add_output(id, "r", mil_type_tensor(a, MIL_FP32, 2, (int64_t[]){1, 2}));
	mil_block_add_output(inner, "r");
	mil_op_add_output(cond, "t", mil_type_tensor(a, MIL_FP32, 2, (int64_t[]){1, 2}));
	mil_block_add_output(b, "t");
	mil_block_add_output(b, "q");
	return m;
}

static void test_odd_renderings(void)
{
	ml_model *m = odd_model();
	char *got = listing_of(m);
	const char *want =
		"specificationVersion 9\n"
		"function \"<main>\"\n"
		"  input  \"x\" float32[1,4] range{1..1 1..} optional doc \"the \\\"input\\\"\\n\"\n"
		"  output \"y\" float32[]\n"
		"  meta license = \"MIT\"\n"
		"program function \"main\" opset \"CoreML8\"\n"
		"  in \"x\" float32[1,?]\n"
		"    float32[3] c = const() [val=float32[3](0.1,-2.5,1e+20)]\n"
		"    string[] s = const() [val=string[](\"tab\\there\\001\\377\")]\n"
		"    float16[16] w = const() [val=float16[16]@blob(\"other.bin\",128)]\n"
		"    float32[1,2] p, float32[1,2] q = split(axis=int32[](1), x=x) [extra=bool[](true)]\n"
		"    float32[1,2] t = cond()\n"
		"      block 0\n"
		"        float32[1,2] r = identity(x=p)\n"
		"        outputs: r\n"
		"    outputs: t, q\n"
		"  ops: cond:1, const:3, identity:1, split:1\n";
	CHECK(got != NULL);
	if (got)
		compare_text("odd model", got, want);
	free(got);
	ml_model_free(m);
}

static void test_quoting(void)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	/* fp16 1.0 = 00 3c; -1.0 = 00 bc; 0.2 = 66 32: protoc's CEscape forms */
	mldump_quoted(f, "\x00\x3c", 2);
	mldump_quoted(f, "\x00\xbc", 2);
	mldump_quoted(f, "\x88\x32\\'", 4);
	fclose(f);
	CHECK_STR(text, "\"\\000<\"\"\\000\\274\"\"\\2102\\\\\\'\"");
	free(text);
}

int main(void)
{
	RUN(test_llama_tiny);
	RUN(test_gemma3_tiny);
	RUN(test_llama_monolithic);
	RUN(test_odd_renderings);
	RUN(test_quoting);
	return test_finish();
}
