/* test_miltext.c: model.mil text both ways (common/coreml/miltext.h).
 *
 * Every model.mil Apple's compiler wrote in ../shared/reference/mlmodelc-real
 * parses and prints back byte for byte, and survives a protobuf round trip
 * on the way; the renderings real files have (nested tensor literals,
 * untyped container elements, function attributes, no blank line between
 * functions, no final newline) come out of hand-built programs; bad text
 * fails with one line naming line:column and what was expected.
 */
#include "base/fsutil.h"
#include "base/util.h"
#include "coreml/miltext.h"
#include "test.h"

#include <unistd.h> /* getpid */

static char *print_program(const mil_program *p, const mil_text_form *form, int *rc)
{
	char *text = NULL;
	size_t n;
	FILE *f = open_memstream(&text, &n);
	*rc = miltext_write(f, p, form);
	fclose(f);
	return text;
}

/* Parse text, print it back; the printed text (caller frees) or NULL. */
static char *reprint(const char *text, size_t n, mil_text_form *form)
{
	mil_arena *a = mil_arena_new();
	mil_program *p;
	char *out = NULL;
	int rc = miltext_parse(a, text, n, &p, form);
	if (rc == 0)
		out = print_program(p, form, &rc);
	if (rc != 0)
		free(out), out = NULL;
	mil_arena_free(a);
	return out;
}

/* The program through MIL.proto and back prints the same text. */
static int proto_round_trip(const char *text, size_t n, const char *path)
{
	mil_arena *a = mil_arena_new(), *b = mil_arena_new();
	mil_program *p, *q = mil_program_new(b);
	mil_text_form form;
	pb_buf buf;
	pb_init(&buf);
	int rc = miltext_parse(a, text, n, &p, &form);
	if (rc == 0) {
		mil_program_encode(p, &buf);
		rc = mil_program_decode(q, buf.data, buf.len);
	}
	char *x = NULL, *y = NULL;
	if (rc == 0)
		x = print_program(p, &form, &rc), y = print_program(q, &form, &rc);
	int same = rc == 0 && x && y && strcmp(x, y) == 0;
	CHECKF(same, "%s: the text differs after a protobuf round trip (%s)", path, rc ? errmsg() : "");
	free(x), free(y);
	pb_release(&buf);
	mil_arena_free(a), mil_arena_free(b);
	return same;
}

static void real_files_round_trip(void)
{
	const char *shared = test_shared();
	if (!shared)
		SKIP("../shared is absent");
	/* Per process: two test runs at once must not share the list. */
	char *listpath = xasprintf("/tmp/anemake-miltext-list.%ld", (long)getpid());
	char *cmd = xasprintf("find '%s/reference/mlmodelc-real' -name '*.mil' | sort > '%s'", shared, listpath);
	int nfiles = 0;
	CHECK(test_sh("%s", cmd) == 0);
	char *list = NULL;
	size_t ln;
	if (read_file(listpath, FS_MAX_TEXT, &list, &ln) == 0) {
		for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
			char *text;
			size_t n;
			mil_text_form form;
			if (read_file(line, FS_MAX_MODEL, &text, &n) != 0) {
				CHECKF(0, "%s", errmsg());
				continue;
			}
			char *out = reprint(text, n, &form);
			CHECKF(out, "%s: %s", line, errmsg());
			if (out && (strlen(out) != n || memcmp(out, text, n) != 0)) {
				size_t k = 0;
				while (k < n && out[k] == text[k])
					k++;
				CHECKF(0, "%s: differs at byte %zu: ...%.60s", line, k, out + (k > 20 ? k - 20 : 0));
			}
			if (out)
				proto_round_trip(text, n, line);
			nfiles++;
			free(out), free(text);
		}
	}
	remove(listpath);
	free(listpath);
	CHECKF(nfiles >= 15, "only %d model.mil files found", nfiles);
	free(list), free(cmd);
}

/* Two functions, a rank-2 literal, a typed dict with untyped items, a
 * function attribute, a blob and a variadic binding. */
static mil_program *sample(mil_arena *a)
{
	mil_program *p = mil_program_new(a);
	mil_program_set_build_info(p, "coremlc-version", "3600.25.1");
	for (int k = 0; k < 2; k++) {
		mil_function *fn = mil_program_add_function(p, k ? "b" : "a", "CoreML8");
		int64_t dims[2] = {2, 2};
		mil_function_add_input(fn, "x", mil_type_tensor(a, MIL_INT32, 2, dims));
		mil_block *b = mil_function_block(fn);
		mil_block_add_const(b, "m", mil_value_tensor(a, mil_type_tensor(a, MIL_INT32, 2, dims),
							     (const int32_t[]){0, 1, 2, 3}));
		mil_block_add_const(b, "w", mil_value_blob(a, mil_type_tensor(a, MIL_FP16, 2, dims), NULL, 64));
		mil_op *cat = mil_block_add_op(b, "concat", "cat");
		mil_op_bind_names(cat, "values", 2, (const char *const[]){"x", "m"});
		mil_op_bind_value(cat, "axis", mil_value_i32(a, 0));
		mil_op_add_output(cat, "y", mil_type_tensor(a, MIL_INT32, 2, (const int64_t[]){4, 2}));
		mil_block_add_output(b, "y");
		mil_type *str = mil_type_scalar(a, MIL_STRING);
		mil_value *d = mil_value_seq(a, MIL_VAL_DICT, mil_type_dict(a, str, mil_type_tensor(a, MIL_INT32, 1,
											    (const int64_t[]){-1})));
		mil_value_dict_add(a, d, mil_value_str(a, "x"), mil_value_i32s(a, 2, (const int32_t[]){2, 2}));
		mil_attrs_set(a, &fn->attrs, "Shapes", d);
	}
	return p;
}

static const char SAMPLE[] =
	"program(1.3)\n"
	"[buildInfo = dict<string, string>({{\"coremlc-version\", \"3600.25.1\"}})]\n"
	"{\n"
	"    func a<ios18>(tensor<int32, [2, 2]> x) [Shapes = dict<string, tensor<int32, [?]>>({{\"x\", [2, 2]}})] {\n"
	"            tensor<int32, [2, 2]> m = const()[name = string(\"m\"), val = tensor<int32, [2, 2]>([[0, 1], [2, 3]])];\n"
	"            tensor<fp16, [2, 2]> w = const()[name = string(\"w\"), val = tensor<fp16, [2, 2]>(BLOBFILE(path = "
	"string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];\n"
	"            tensor<int32, [4, 2]> y = concat(axis = int32(0), values = (x, m))[name = string(\"cat\")];\n"
	"        } -> (y);\n"
	"    func b<ios18>(tensor<int32, [2, 2]> x) [Shapes = dict<string, tensor<int32, [?]>>({{\"x\", [2, 2]}})] {\n"
	"            tensor<int32, [2, 2]> m = const()[name = string(\"m\"), val = tensor<int32, [2, 2]>([[0, 1], [2, 3]])];\n"
	"            tensor<fp16, [2, 2]> w = const()[name = string(\"w\"), val = tensor<fp16, [2, 2]>(BLOBFILE(path = "
	"string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];\n"
	"            tensor<int32, [4, 2]> y = concat(axis = int32(0), values = (x, m))[name = string(\"cat\")];\n"
	"        } -> (y);\n"
	"}";

static void renderings(void)
{
	mil_arena *a = mil_arena_new();
	int rc;
	char *text = print_program(sample(a), NULL, &rc);
	CHECKF(rc == 0, "%s", errmsg());
	CHECKF(text && strcmp(text, SAMPLE) == 0, "got:\n%s", text ? text : "(null)");
	mil_text_form form;
	char *again = text ? reprint(text, strlen(text), &form) : NULL;
	CHECKF(again && strcmp(again, SAMPLE) == 0, "reprinted:\n%s", again ? again : errmsg());
	CHECK(form.minor == 3 && form.newline == 0);
	free(text), free(again);
	mil_arena_free(a);
}

/* Program 1.0 spells scalars tensor<dt, []>, and 3402 ends with a newline. */
static void program_1_0(void)
{
	mil_arena *a = mil_arena_new();
	mil_program *p = mil_program_new(a);
	mil_function *fn = mil_program_add_function(p, "main", "CoreML6");
	mil_function_add_input(fn, "x", mil_type_scalar(a, MIL_FP16));
	mil_block *b = mil_function_block(fn);
	mil_block_add_const(b, "c", mil_value_fp16(a, 0x3c00));
	mil_block_add_output(b, "c");
	int rc;
	char *text = print_program(p, &(mil_text_form){0, 1}, &rc);
	const char *want = "program(1.0)\n{\n    func main<ios16>(tensor<fp16, []> x) {\n"
			   "            tensor<fp16, []> c = const()[name = tensor<string, []>(\"c\"), val = "
			   "tensor<fp16, []>(0x1p+0)];\n        } -> (c);\n}\n";
	CHECKF(rc == 0 && text && strcmp(text, want) == 0, "got:\n%s", text ? text : errmsg());
	free(text);
	mil_arena_free(a);
}

/* Bad text: one line naming where and what was expected. */
static void errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"", "line 1:1: expected 'program' at the start"},
		{"program(2.0)\n{\n}", "line 1:9: expected program version 1.0"},
		{"program(1.3)\n{\n    func main<ios99>() {\n", "line 3:15: expected an opset"},
		{"program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1]> x) {\n"
		 "            tensor<fp16, [2]> y = const()[val = tensor<fp16, [2]>([0x1p+0])];\n",
		 "line 4:75: the literal has 1 elements in 1 dimensions where its type needs 2 in 1"},
		{"program(1.3)\n{\n    func main<ios18>() {\n            tensor<int32, [2, 2]> m = const()[val = "
		 "tensor<int32, [2, 2]>([[0, 1], [2]])];\n",
		 "line 4:84: a tensor literal is not rectangular"},
		{"program(1.3)\n{\n    func main<ios18>() {\n            tensor<int8, []> m = const()[val = int8(300)];\n",
		 "line 4:53: expected an integer in the range of int8"},
		{"program(1.3)\n{\n    func main<ios18>() {\n        } -> ();\n}\nx", "line 6:1: expected the end of the file"},
		{"program(1.3)\n{\n    func main<ios18>() {\n            x = cond()[name = string(\"c\")] {", "line 4:13: expected a type"},
		{"program(1.3)\n{\n    func main<ios18>() {\n            cond(x = y) {", "line 4:25: nested blocks"},
		{"program(1.3)\n{\n    func main<ios18>() {\n            tensor<fp16, [1]> y = f(x = \"a)];",
		 "line 4:41: expected a variable name or a typed value"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		mil_arena *a = mil_arena_new();
		mil_program *p;
		int rc = miltext_parse(a, cases[i].text, strlen(cases[i].text), &p, NULL);
		CHECKF(rc != 0 && strstr(errmsg(), cases[i].want) && !strchr(errmsg(), '\n'), "case %zu: %s (want %s)", i,
		       rc ? errmsg() : "parsed", cases[i].want);
		mil_arena_free(a);
	}
}

/* The widest integers parse and print back (no shift past 63 bits). */
static void integer_extremes(void)
{
	const char *text = "program(1.3)\n{\n    func main<ios18>() {\n"
			   "            int64 a = const()[val = int64(-9223372036854775808)];\n"
			   "            uint64 b = const()[val = uint64(18446744073709551615)];\n"
			   "            tensor<int4, [2]> c = const()[val = tensor<int4, [2]>([-8, 7])];\n"
			   "        } -> (a);\n}";
	mil_text_form form;
	char *out = reprint(text, strlen(text), &form);
	CHECKF(out && strcmp(out, text) == 0, "%s", out ? out : errmsg());
	free(out);
}

/* Deep nesting is refused, not a stack overflow. */
static void deep_nesting(void)
{
	size_t depth = 100000;
	char *text = xmalloc(depth * 8 + 200);
	size_t n = (size_t)sprintf(text, "program(1.3)\n[a = ");
	for (size_t i = 0; i < depth; i++)
		n += (size_t)sprintf(text + n, "list<");
	mil_arena *a = mil_arena_new();
	mil_program *p;
	CHECK(miltext_parse(a, text, n, &p, NULL) != 0 && strstr(errmsg(), "nested deeper"));
	mil_arena_free(a);
	free(text);
}

int main(void)
{
	RUN(real_files_round_trip);
	RUN(renderings);
	RUN(program_1_0);
	RUN(errors);
	RUN(integer_extremes);
	RUN(deep_nesting);
	return test_finish();
}
