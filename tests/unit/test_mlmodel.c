/* test_mlmodel.c: Model encode/decode, the description helpers, and the
 * reference packages.
 *
 * A multifunction model (description functions, states, enumerated shapes,
 * metadata, a two-function program) must re-encode to identical bytes and
 * read back field by field; protoc must accept our bytes. Every reference
 * model.mlmodel must decode, re-encode to a model with the same listing and
 * size, and (when protoc is there) decode with protoc to the same text as the
 * original: coremltools writes map entries in hash order, we sort them, and
 * that is the only byte difference.
 */
#include "base/fsutil.h"
#include "coreml/mldump.h"
#include "coreml/mlmodel.h"
#include "test.h"
#include "base/util.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

static const int64_t kv_shape[4] = {4, 2, 512, 16};

static void describe_function(ml_model *m, const char *name, int64_t t)
{
	ml_function_desc *fd = ml_model_add_function(m, name);
	ml_model_add_input(m, fd, "hidden_states", ARRAY_FLOAT16, 3, (int64_t[]){1, t, 64});
	ml_model_add_input(m, fd, "current_pos", ARRAY_INT32, 1, (int64_t[]){1});
	ml_model_add_output(m, fd, "output_hidden_states", ARRAY_FLOAT16, 3, (int64_t[]){1, t, 64});
	ml_model_add_state(m, fd, "model_model_kv_cache_0", ARRAY_FLOAT16, 4, kv_shape);

	mil_arena *a = m->arena;
	mil_function *f = mil_program_add_function(ml_model_program(m), name, NULL);
	mil_function_add_input(f, "hidden_states", mil_type_tensor(a, MIL_FP16, 3, (int64_t[]){1, t, 64}));
	mil_function_add_input(f, "current_pos", mil_type_tensor(a, MIL_INT32, 1, (int64_t[]){1}));
	mil_function_add_input(f, "model_model_kv_cache_0", mil_type_state(a, mil_type_tensor(a, MIL_FP16, 4, kv_shape)));
	mil_block *b = mil_function_block(f);
	mil_op *op = mil_block_add_op(b, "identity", "output_hidden_states");
	mil_op_bind(op, "x", "hidden_states");
	mil_op_add_output(op, "output_hidden_states", mil_type_tensor(a, MIL_FP16, 3, (int64_t[]){1, t, 64}));
	mil_block_add_output(b, "output_hidden_states");
}

static ml_model *build_model(void)
{
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	describe_function(m, "infer", 1);
	describe_function(m, "prefill", 64);
	ml_model_set_default_function(m, "infer");
	ml_model_set_metadata(m, "Anemake FFN", "0.1", "anemake", NULL);
	ml_model_set_user_meta(m, "com.anemll.context_length", "256");
	ml_model_set_user_meta(m, "com.anemll.batch_size", "64");
	ml_model_set_user_meta(m, "com.anemll.context_length", "512"); /* replaces */
	mil_program_set_build_info(m->program, "coremltools-version", "9.1");
	return m;
}

static void encode(const ml_model *m, pb_buf *b)
{
	pb_init(b);
	ml_model_encode(m, b);
}

static int same_bytes(const pb_buf *x, const pb_buf *y) { return x->len == y->len && (!x->len || memcmp(x->data, y->data, x->len) == 0); }

static char *listing_of(const ml_model *m)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (f) {
		mldump_listing(f, m);
		fclose(f);
	}
	return text;
}

static void test_build_roundtrip(void)
{
	ml_model *m = build_model(), *d = NULL;
	pb_buf b1, b2;
	encode(m, &b1);
	CHECKF(ml_model_decode(b1.data, b1.len, &d) == 0, "%s", errmsg());
	if (!d)
		goto out;
	encode(d, &b2);
	CHECK(same_bytes(&b1, &b2));
	pb_release(&b2);

	CHECK_EQ_INT(d->spec_version, 9);
	CHECK(d->desc && d->desc->top.input.n == 0 && d->desc->nfunctions == 2);
	CHECK_STR(d->desc->default_function, "infer");
	ml_function_desc *fd = ml_model_find_function(d, "prefill");
	CHECK(fd && fd == d->desc->functions[1]);
	if (fd) {
		CHECK_EQ_INT(fd->input.n, 2);
		ml_array_type *at = ml_feature_array(ml_features_find(&fd->input, "hidden_states"));
		CHECK(at && at->dtype == ARRAY_FLOAT16 && at->shape.n == 3 && at->shape.dims[1] == 64);
		CHECK(fd->state.n == 1 && fd->state.v[0]->type->kind == ML_FEAT_STATE);
		at = ml_feature_array(fd->state.v[0]);
		CHECK(at && at->shape.n == 4 && at->shape.dims[2] == 512 && at->dtype == ARRAY_FLOAT16);
		CHECK_STR(fd->output.v[0]->name, "output_hidden_states");
	}
	ml_metadata *md = d->desc->metadata;
	CHECK(md != NULL);
	if (md) {
		CHECK_STR(md->short_description, "Anemake FFN");
		CHECK_STR(md->version, "0.1");
		CHECK_STR(md->author, "anemake");
		CHECK_STR(md->license, "");
		CHECK_EQ_INT(md->nuser, 2);
	}
	CHECK_STR(ml_model_user_meta(d, "com.anemll.context_length"), "512");
	CHECK(ml_model_user_meta(d, "missing") == NULL);
	CHECK(d->program && d->program->nfunctions == 2 && d->program->version == 1);
	CHECK(mil_program_find_function(d->program, "prefill") != NULL);
out:
	pb_release(&b1);
	ml_model_free(d);
	ml_model_free(m);
}

static void test_single_function_listing(void)
{
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	ml_feature *f = ml_model_add_input(m, NULL, "input_ids", ARRAY_INT32, 2, (int64_t[]){1, 1});
	ml_feature_add_enumerated_shape(m, f, 2, (int64_t[]){1, 1});
	ml_feature_add_enumerated_shape(m, f, 2, (int64_t[]){1, 64});
	ml_model_add_output(m, NULL, "hidden_states", ARRAY_FLOAT16, 0, NULL);
	ml_model_set_user_meta(m, "b", "2");
	ml_model_set_user_meta(m, "a", "1");
	char *text = listing_of(m);
	CHECK_STR(text, "specificationVersion 9\n"
			"function \"<main>\"\n"
			"  input  \"input_ids\" int32[1,1] enumerated{[1,1] [1,64]}\n"
			"  output \"hidden_states\" float16[]\n"
			"  meta \"a\" = \"1\"\n"
			"  meta \"b\" = \"2\"\n");
	free(text);
	ml_model_free(m);
}

static void test_copy_function_desc(void)
{
	ml_model *src = build_model(), *dst = ml_model_new(ML_SPEC_IOS18);
	ml_function_desc *fd = ml_model_copy_function(dst, ml_model_find_function(src, "infer"), "infer_rotate");
	ml_feature_add_enumerated_shape(src, ml_model_find_function(src, "infer")->input.v[0], 3, (int64_t[]){1, 2, 64});
	ml_model_free(src);
	CHECK_STR(fd->name, "infer_rotate");
	CHECK_EQ_INT(fd->input.n, 2);
	ml_array_type *at = ml_feature_array(fd->input.v[0]);
	CHECK(at->flex == ML_FLEX_NONE && at->shape.dims[2] == 64);
	CHECK(ml_feature_array(fd->state.v[0])->shape.dims[0] == 4);
	ml_model_free(dst);
}

/* Feature kinds anemake never makes are kept verbatim. */
static void test_raw_feature_types(void)
{
	pb_buf b;
	pb_init(&b);
	pb_put_uint(&b, 1, 4);
	size_t d = pb_begin(&b, 2);
	size_t in = pb_begin(&b, 1);
	pb_put_string(&b, 1, "image");
	size_t t = pb_begin(&b, 3);
	size_t img = pb_begin(&b, 4);
	pb_put_uint(&b, 1, 224);
	pb_put_uint(&b, 2, 224);
	pb_put_uint(&b, 3, 20);
	pb_end(&b, img);
	pb_put_bool(&b, 1000, 1);
	pb_end(&b, t);
	pb_end(&b, in);
	pb_end(&b, d);
	ml_model *m = NULL;
	CHECKF(ml_model_decode(b.data, b.len, &m) == 0, "%s", errmsg());
	if (m) {
		ml_feature *f = m->desc->top.input.v[0];
		CHECK(f->type->kind == ML_FEAT_IMAGE && f->type->is_optional && f->type->raw_len == 8);
		pb_buf b2;
		encode(m, &b2);
		CHECK(same_bytes(&b, &b2));
		pb_release(&b2);
		char *text = listing_of(m);
		CHECK(strstr(text, "  input  \"image\" image optional\n") != NULL);
		free(text);
	}
	ml_model_free(m);
	pb_release(&b);
}

static int have_protoc(void) { return system("protoc --version >/dev/null 2>&1") == 0; }

/* protoc's text decoding of `bytes` into *text (malloc'd); 0 when protoc exits 0. */
static int protoc_decode(const char *shared, const void *bytes, size_t n, char **text)
{
	char in[] = "/tmp/test_mlmodel_XXXXXX";
	int fd = mkstemp(in);
	if (fd < 0)
		return -1;
	int ok = write(fd, bytes, n) == (ssize_t)n;
	close(fd);
	char *out = xasprintf("%s.txt", in);
	char *cmd = xasprintf("protoc --decode=CoreML.Specification.Model -I %s/reference/coreml-proto "
			      "%s/reference/coreml-proto/Model.proto < %s > %s 2>&1",
			      shared, shared, in, out);
	int rc = ok ? system(cmd) : -1;
	size_t len;
	*text = NULL;
	if (read_file(out, FS_MAX_MODEL, text, &len) != 0)
		*text = NULL;
	unlink(in);
	unlink(out);
	free(cmd);
	free(out);
	return rc == 0 ? 0 : -1;
}

static void test_protoc_accepts_ours(void)
{
	const char *shared = test_shared();
	if (!shared)
		SKIP("shared material not found");
	if (!have_protoc())
		SKIP("protoc not installed");
	ml_model *m = build_model();
	pb_buf b;
	encode(m, &b);
	char *text = NULL;
	CHECKF(protoc_decode(shared, b.data, b.len, &text) == 0, "protoc failed: %s", text ? text : "");
	CHECK(text && strstr(text, "defaultFunctionName: \"infer\"") && strstr(text, "stateType {"));
	free(text);
	pb_release(&b);
	ml_model_free(m);
}

/* One reference model: decode, re-encode, decode again; returns 1 when the
 * re-encoding is byte-identical to the file. */
static int check_reference(const char *shared, const char *path, int protoc)
{
	char *orig = NULL, *l1 = NULL, *l2 = NULL, *t1 = NULL, *t2 = NULL;
	size_t n = 0;
	ml_model *m = NULL, *m2 = NULL;
	pb_buf b1, b2;
	pb_init(&b1);
	pb_init(&b2);
	int identical = 0;
	CHECKF(read_file(path, FS_MAX_MODEL, &orig, &n) == 0 && ml_model_decode(orig, n, &m) == 0, "%s: %s", path, errmsg());
	if (!m)
		goto out;
	ml_model_encode(m, &b1);
	CHECKF(b1.len == n, "%s: %zu bytes re-encoded as %zu", path, n, b1.len);
	identical = b1.len == n && memcmp(b1.data, orig, n) == 0;
	CHECKF(ml_model_decode(b1.data, b1.len, &m2) == 0, "%s: %s", path, errmsg());
	if (!m2)
		goto out;
	ml_model_encode(m2, &b2);
	CHECKF(same_bytes(&b1, &b2), "%s: encoding is not stable", path);
	l1 = listing_of(m);
	l2 = listing_of(m2);
	CHECKF(l1 && l2 && strcmp(l1, l2) == 0, "%s: listings differ after a round trip", path);
	if (protoc) {
		CHECK(protoc_decode(shared, orig, n, &t1) == 0 && protoc_decode(shared, b1.data, b1.len, &t2) == 0);
		CHECKF(t1 && t2 && strcmp(t1, t2) == 0, "%s: protoc text of the re-encoding differs", path);
	}
out:
	free(t1);
	free(t2);
	free(l1);
	free(l2);
	pb_release(&b1);
	pb_release(&b2);
	ml_model_free(m);
	ml_model_free(m2);
	free(orig);
	return identical;
}

static void test_reference_roundtrip(void)
{
	const char *shared = test_shared();
	if (!shared)
		SKIP("shared material not found");
	static const char *const dirs[] = {"anemll-llama-tiny", "anemll-gemma3-tiny", "anemll-llama-tiny-monolithic"};
	int protoc = have_protoc(), checked = 0, identical = 0;
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		char *pkgs = xasprintf("%s/reference/%s/packages", shared, dirs[i]);
		DIR *d = opendir(pkgs);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (!has_suffix(e->d_name, ".mlpackage"))
				continue;
			char *path = xasprintf("%s/%s/Data/com.apple.CoreML/model.mlmodel", pkgs, e->d_name);
			identical += check_reference(shared, path, protoc);
			checked++;
			free(path);
		}
		if (d)
			closedir(d);
		free(pkgs);
	}
	CHECK_EQ_INT(checked, 10);
	/* coremltools writes maps in hash order; we sort: same content, other order */
	printf("note: %d of %d reference models re-encode byte-identically%s\n", identical, checked,
	       protoc ? "; all decode with protoc to the same text" : "");
}

static void test_decode_errors(void)
{
	ml_model *m = (ml_model *)1;
	CHECK(ml_model_decode("\x0a\xff", 2, &m) == -1 && m == NULL);
	CHECK(strncmp(errmsg(), "not a valid Core ML model: ", 27) == 0);
	CHECK(ml_model_decode("\x12\x02\x08\x00", 4, &m) == -1); /* input as varint */
	CHECK(strstr(errmsg(), "FeatureDescription") != NULL);
	CHECK(ml_model_decode("", 0, &m) == 0 && m && !m->desc && !m->program);
	ml_model_free(m);
	CHECK(ml_model_read("/nonexistent/model.mlmodel", &m) == -1 && m == NULL);
	CHECK(strstr(errmsg(), "/nonexistent/model.mlmodel") != NULL);

	/* every truncation of a real model fails cleanly or decodes a prefix */
	ml_model *full = build_model();
	pb_buf b;
	encode(full, &b);
	for (size_t n = 0; n < b.len; n++) {
		if (ml_model_decode(b.data, n, &m) == 0)
			ml_model_free(m);
		else
			CHECKF(strchr(errmsg(), '\n') == NULL, "multi-line error: %s", errmsg());
	}
	pb_release(&b);
	ml_model_free(full);
}

int main(void)
{
	RUN(test_build_roundtrip);
	RUN(test_single_function_listing);
	RUN(test_copy_function_desc);
	RUN(test_raw_feature_types);
	RUN(test_protoc_accepts_ours);
	RUN(test_reference_roundtrip);
	RUN(test_decode_errors);
	return test_finish();
}
