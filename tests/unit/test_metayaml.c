/* test_metayaml.c: meta.yaml writer and reader (common/metayaml.c).
 *
 * ANEMLL's own meta.yaml files (../shared/reference) must parse to the right
 * values and, written back, give the same bytes; our files must survive
 * write -> read -> write byte for byte with equal structs, in both schemas;
 * bad files must be refused with one line naming the file and the key.
 */
#include "anemll/metayaml.h"
#include "base/fsutil.h"
#include "base/version.h"
#include "test.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *ref_path(const char *dir)
{
	const char *shared = test_shared();
	return shared ? xasprintf("%s/reference/%s/meta.yaml", shared, dir) : NULL;
}

/* Parse text that must fail; return the error line (static copy). */
static const char *parse_error(const char *text)
{
	static char msg[512];
	metayaml m;
	int rc = metayaml_parse(text, strlen(text), "t/meta.yaml", &m);
	snprintf(msg, sizeof msg, "%s", rc == 0 ? "(parsed)" : errmsg());
	metayaml_release(&m);
	return msg;
}

#define CHECK_ERR(text, want)                                                                                  \
	do {                                                                                                   \
		const char *e = parse_error(text);                                                             \
		CHECKF(strstr(e, want) && strstr(e, "'t/meta.yaml'") && !strchr(e, '\n'),                     \
		       "error '%s' does not name '%s'", e, want);                                              \
	} while (0)

/* A chunked meta with every optional key set. */
static void full_chunked(metayaml *m)
{
	metayaml_init(m);
	m->context_length = 256, m->batch_size = 32, m->num_chunks = 2;
	metayaml_set_info(m, "acme-Tiny");
	metayaml_set_str(&m->architecture, "qwen3");
	m->lut_embeddings = 4, m->lut_embeddings_per_channel = 16;
	m->lut_ffn = 4, m->lut_ffn_per_channel = 0;
	m->lut_lmhead = META_LUT_NONE;
	metayaml_set_str(&m->model_prefix, "qwen");
	metayaml_set_str(&m->embeddings, "qwen_embeddings_lut4.mlmodelc");
	metayaml_set_str(&m->lm_head, "qwen_lm_head.mlmodelc");
	metayaml_set_str(&m->ffn, "qwen_FFN_PF_lut4_chunk_01of02.mlmodelc");
	metayaml_set_str(&m->pf, "qwen_FFN_PF_lut4_chunk_01of02_rot.mlmodelc");
	m->split_lm_head = 3, m->argmax_in_model = 1, m->vocab_size = 300;
	metayaml_set_chunk_sizes(m, (const int[]){100, 100, 100}, 3);
	m->split_rotate = 1, m->sliding_window = 128, m->update_mask_prefill = 1, m->single_cache = 1;
	m->generated = xstrdup("2026-01-02 03:04:05");
	metayaml_add_comment(m, "model_path", "/models/acme tiny");
	metayaml_add_comment(m, "command_line", "make MODEL=x LUT2=4,8 # with: colons");
	metayaml_add_comment(m, "odd", "tab\there \"quoted\" back\\slash \x01 ctl");
	metayaml_add_comment(m, "empty", "");
	metayaml_add_comment(m, "lm_head_chunk_sizes", "[100, 100, 100]");
	metayaml_add_comment(m, "flag", "True");
	metayaml_add_comment_literal(m, "argmax_in_model", "true");
}

static void full_monolithic(metayaml *m)
{
	metayaml_init(m);
	metayaml_set_str(&m->model_type, "monolithic");
	m->context_length = 512, m->batch_size = 64;
	metayaml_set_info(m, "model");
	metayaml_set_str(&m->architecture, "llama");
	m->lut_bits = 6, m->lut_per_channel = 4, m->lut_embeddings = 8, m->lut_lmhead = META_LUT_NONE;
	metayaml_set_str(&m->model_prefix, "llama");
	metayaml_set_str(&m->monolithic_model, "llama_monolithic_full_lut6.mlmodelc");
	m->split_lm_head = 8, m->vocab_size = 256, m->prefill_dynamic_slice = 1;
	metayaml_set_chunk_sizes(m, (const int[]){32, 32, 32, 32, 32, 32, 32, 32}, 8);
	const char *fns[] = {"infer", "infer_rotate", "prefill", "prefill_rotate"};
	for (int i = 0; i < 4; i++)
		metayaml_add_function(m, fns[i]);
}

/* format -> parse -> equal -> format gives the same bytes; returns the text. */
static char *round_trip(const metayaml *m)
{
	char *t1, *t2;
	size_t n1, n2;
	if (metayaml_format(m, &t1, &n1) != 0) {
		CHECKF(0, "format: %s", errmsg());
		return NULL;
	}
	metayaml back;
	int rc = metayaml_parse(t1, n1, "round-trip", &back);
	CHECKF(rc == 0, "parse: %s\n%s", errmsg(), t1);
	CHECK(rc != 0 || metayaml_equal(m, &back));
	if (rc == 0 && metayaml_format(&back, &t2, &n2) == 0) {
		CHECKF(n1 == n2 && memcmp(t1, t2, n1) == 0, "second write differs:\n%s\n---\n%s", t1, t2);
		free(t2);
	}
	metayaml_release(&back);
	return t1;
}

static void test_reference_gemma3(void)
{
	char *path = ref_path("anemll-gemma3-tiny");
	if (!path)
		SKIP("needs ../shared");
	metayaml m;
	CHECKF(metayaml_read(path, &m) == 0, "%s", errmsg());
	CHECK_STR(m.name, "anemll-model-ctx128");
	CHECK_STR(m.version, "0.3.5");
	CHECK_STR(m.architecture, "gemma3_text");
	CHECK(strstr(m.description, "Demonstarates running model") != NULL);
	CHECK(m.model_type == NULL && !metayaml_is_monolithic(&m));
	CHECK_EQ_INT(m.context_length, 128);
	CHECK_EQ_INT(m.batch_size, 32);
	CHECK_EQ_INT(m.lut_embeddings, META_LUT_NONE);
	CHECK_EQ_INT(m.lut_ffn, 6);
	CHECK_EQ_INT(m.lut_lmhead, 6);
	CHECK_EQ_INT(m.lut_ffn_per_channel, META_ABSENT);
	CHECK_EQ_INT(m.num_chunks, 2);
	CHECK_STR(m.model_prefix, "gemma3");
	CHECK_STR(m.embeddings, "gemma3_embeddings.mlmodelc");
	CHECK_STR(m.lm_head, "gemma3_lm_head_lut6.mlmodelc");
	CHECK_STR(m.ffn, "gemma3_FFN_PF_lut6_chunk_01of02.mlmodelc");
	CHECK(m.pf == NULL);
	CHECK_EQ_INT(m.split_lm_head, 16);
	CHECK_EQ_INT(m.argmax_in_model, META_ABSENT);
	CHECK_EQ_INT(m.vocab_size, 2176);
	CHECK_EQ_INT(m.n_lm_head_chunk_sizes, 16);
	for (size_t i = 0; i < m.n_lm_head_chunk_sizes; i++)
		CHECK_EQ_INT(m.lm_head_chunk_sizes[i], 136);
	CHECK_EQ_INT(m.sliding_window, 64);
	CHECK_EQ_INT(m.prefill_dynamic_slice, 1);
	CHECK_EQ_INT(m.update_mask_prefill, META_ABSENT);
	CHECK_STR(m.generated, "2026-11-23 18:42:35");
	CHECK_EQ_INT(m.n_comments, 20);
	if (m.n_comments == 20) {
		CHECK_STR(m.comments[0].key, "model_path");
		CHECK_STR(m.comments[2].key, "command_line");
		CHECK(strstr(m.comments[2].text, "--lut3 6 --chunk 2") != NULL);
		CHECK_STR(m.comments[19].key, "lm_head_chunk_sizes");
		CHECK(strncmp(m.comments[19].text, "\"[136, 136,", 11) == 0);
		CHECK_STR(metayaml_comment(&m, "argmax_in_model"), "false");
	}
	metayaml_release(&m);
	free(path);
}

static void test_reference_monolithic(void)
{
	char *path = ref_path("anemll-llama-tiny-monolithic");
	if (!path)
		SKIP("needs ../shared");
	metayaml m;
	CHECKF(metayaml_read(path, &m) == 0, "%s", errmsg());
	CHECK(metayaml_is_monolithic(&m));
	CHECK_STR(m.name, "anemll-model-ctx512-monolithic");
	CHECK_EQ_INT(m.context_length, 512);
	CHECK_EQ_INT(m.batch_size, 64);
	CHECK_EQ_INT(m.lut_bits, 6);
	CHECK_EQ_INT(m.lut_ffn, META_ABSENT);
	CHECK_STR(m.monolithic_model, "llama_monolithic_full_lut6.mlmodelc");
	CHECK_EQ_INT(m.split_lm_head, 8);
	CHECK_EQ_INT(m.n_functions, 2);
	if (m.n_functions == 2) {
		CHECK_STR(m.functions[0], "infer");
		CHECK_STR(m.functions[1], "prefill");
	}
	CHECK_EQ_INT(m.num_chunks, META_ABSENT);
	metayaml_release(&m);
	free(path);
}

/* Written back, ANEMLL's files come out byte for byte the same. */
static void test_reference_rewrites_identically(void)
{
	const char *dirs[] = {"anemll-gemma3-tiny", "anemll-llama-tiny-monolithic"};
	for (int i = 0; i < 2; i++) {
		char *path = ref_path(dirs[i]), *orig, *text;
		size_t n, len;
		if (!path)
			SKIP("needs ../shared");
		metayaml m;
		CHECK(read_file(path, FS_MAX_MODEL, &orig, &n) == 0);
		CHECKF(metayaml_parse(orig, n, path, &m) == 0, "%s", errmsg());
		CHECKF(metayaml_format(&m, &text, &len) == 0, "%s", errmsg());
		CHECKF(len == n && memcmp(text, orig, n) == 0, "%s differs when written back:\n%s", dirs[i], text);
		free(text), free(orig), free(path);
		metayaml_release(&m);
	}
}

static void test_round_trip_chunked(void)
{
	metayaml m;
	full_chunked(&m);
	char *text = round_trip(&m);
	if (text) {
		/* ANEMLL's layout: model_info keys at 2 spaces, parameters at 4, one line each. */
		const char *head = "model_info:\n  name: anemll-acme-Tiny-ctx256\n  version: 0.3.5\n  description: |\n"
				   "    acme-Tiny on the Apple Neural Engine, converted by anemake " ANEMAKE_VERSION "\n";
		CHECK(strncmp(text, head, strlen(head)) == 0);
		CHECK(strstr(text, "\n  parameters:\n    context_length: 256\n    batch_size: 32\n"
				   "    lut_embeddings: 4\n    lut_embeddings_per_channel: 16\n    lut_ffn: 4\n"
				   "    lut_ffn_per_channel: 0\n    lut_lmhead: none\n    num_chunks: 2\n") != NULL);
		CHECK(strstr(text, "    ffn: qwen_FFN_PF_lut4_chunk_01of02.mlmodelc\n    pf: qwen_FFN_PF_lut4_chunk_01of02_rot"
				   ".mlmodelc\n    split_lm_head: 3\n    argmax_in_model: true\n    vocab_size: 300\n"
				   "    lm_head_chunk_sizes: [100, 100, 100]\n    split_rotate: true\n    sliding_window: 128\n"
				   "    update_mask_prefill: true\n    single_cache: true\n\n# ====") != NULL);
		CHECK(strstr(text, "\n# Generated: 2026-01-02 03:04:05\n#\n# model_path: /models/acme tiny\n") != NULL);
		CHECK(strstr(text, "\n# command_line: \"make MODEL=x LUT2=4,8 # with: colons\"\n") != NULL);
		CHECK(strstr(text, "\n# odd: \"tab\\there \\\"quoted\\\" back\\\\slash \\x01 ctl\"\n") != NULL);
		CHECK(strstr(text, "\n# empty: \"\"\n# lm_head_chunk_sizes: \"[100, 100, 100]\"\n# flag: \"True\"\n"
				   "# argmax_in_model: true\n# ===") != NULL);
	}
	free(text);
	/* The same through a file. */
	char path[] = "/tmp/test_metayaml_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	metayaml back;
	CHECKF(metayaml_write(path, &m) == 0, "%s", errmsg());
	CHECKF(metayaml_read(path, &back) == 0, "%s", errmsg());
	CHECK(metayaml_equal(&m, &back));
	unlink(path);
	metayaml_release(&back);
	metayaml_release(&m);
}

static void test_round_trip_monolithic(void)
{
	metayaml m;
	full_monolithic(&m);
	char *text = round_trip(&m);
	if (text) {
		CHECK(strstr(text, "  architecture: llama\n  model_type: monolithic\n  parameters:\n    context_length: 512\n"
				   "    batch_size: 64\n    lut_bits: 6\n    lut_per_channel: 4\n    lut_embeddings: 8\n"
				   "    lut_lmhead: none\n    model_prefix: llama\n") != NULL);
		CHECK(strstr(text, "    prefill_dynamic_slice: true\n    functions:\n      - infer\n      - infer_rotate\n"
				   "      - prefill\n      - prefill_rotate\n") != NULL);
		CHECK(has_suffix(text, "      - prefill_rotate\n")); /* no comment block: nothing set */
		CHECK(strstr(text, "    model on the Apple Neural Engine as one model, converted by anemake " ANEMAKE_VERSION
				   "\n") != NULL);
		CHECK(strstr(text, "\n  author: anemake\n") != NULL && !strstr(text, "Anemll"));
	}
	free(text);
	/* A kept-newlines description: libyaml's "..." marker must not end up before the functions. */
	metayaml_set_str(&m.description, "two blank lines follow\n\n\n");
	text = round_trip(&m);
	CHECK(text && !strstr(text, "...") && has_suffix(text, "      - prefill_rotate\n"));
	free(text);
	metayaml_release(&m);
}

/* The conversion's FP16 settings as generate_meta_yaml.py writes them:
 * strings from the command line, plain unless YAML would misread them. */
static void test_fp16_comments(void)
{
	metayaml m;
	full_monolithic(&m);
	metayaml_add_comment(&m, "fp16_scale", "auto");
	metayaml_add_comment(&m, "clamp", "60000");
	metayaml_add_comment(&m, "lut_bits", "6,4");
	metayaml_add_comment_literal(&m, "rotate", "true");
	char *text = round_trip(&m);
	CHECK(text && strstr(text, "\n# fp16_scale: auto\n# clamp: 60000\n# lut_bits: 6,4\n# rotate: true\n"));
	CHECK_STR(metayaml_comment(&m, "fp16_scale"), "auto");
	free(text);
	metayaml_release(&m);
}

/* Strings YAML would read as something else are quoted; the rest stay plain. */
static void test_quoting(void)
{
	metayaml m;
	full_chunked(&m);
	metayaml_set_str(&m.model_prefix, "123");
	metayaml_set_str(&m.architecture, "yes");
	metayaml_set_str(&m.embeddings, "a: b");
	metayaml_set_str(&m.lm_head, "café_lm_head.mlmodelc");
	metayaml_set_str(&m.version, "0.3.5");
	metayaml_set_str(&m.license, "1.5");
	metayaml_set_str(&m.description, "ends with blank lines\n\n\n");
	m.single_cache = META_ABSENT;
	metayaml_set_str(&m.pf, "a...");
	char *text = round_trip(&m);
	if (text) {
		CHECK(strstr(text, "    model_prefix: \"123\"\n") != NULL);
		CHECK(strstr(text, "  architecture: \"yes\"\n") != NULL);
		CHECK(strstr(text, "    embeddings: 'a: b'\n") != NULL);
		CHECK(strstr(text, "    lm_head: café_lm_head.mlmodelc\n") != NULL);
		CHECK(strstr(text, "  version: 0.3.5\n") != NULL);
		CHECK(strstr(text, "  license: \"1.5\"\n") != NULL);
		CHECK(strstr(text, "  description: |+\n    ends with blank lines\n\n\n  license:") != NULL);
		CHECK(strstr(text, "    pf: a...\n") != NULL);
	}
	free(text);
	/* What the writer refuses. */
	char *t;
	size_t n;
	metayaml_add_comment(&m, "bad key", "x");
	CHECK(metayaml_format(&m, &t, &n) == -1 && strstr(errmsg(), "bad key"));
	metayaml_release(&m);
	full_chunked(&m);
	metayaml_add_comment_literal(&m, "cr", "a\rb");
	CHECK(metayaml_format(&m, &t, &n) == -1 && strstr(errmsg(), "comment 'cr' holds a control character"));
	metayaml_release(&m);
	full_monolithic(&m);
	metayaml_add_function(&m, "two words");
	CHECK(metayaml_format(&m, &t, &n) == -1 && strstr(errmsg(), "two words"));
	metayaml_release(&m);
	full_chunked(&m);
	m.lut_ffn = META_ABSENT;
	CHECK(metayaml_format(&m, &t, &n) == -1 && strstr(errmsg(), "lut_ffn is missing"));
	metayaml_release(&m);
}

static void test_unknown_keys_ignored(void)
{
	const char *text = "# a comment\nother: [1, 2]\nmodel_info:\n  name: x\n  extra: {a: 1}\n  parameters:\n"
			   "    context_length: 64\n    batch_size: 8\n    lut_embeddings: none\n    lut_ffn: none\n"
			   "    lut_lmhead: 8\n    num_chunks: 1\n    recommended_sampling:\n      temperature: 0.7\n"
			   "    tokenizer_path: .\n    argmax_in_model: False\n    embeddings:\n";
	metayaml m;
	CHECKF(metayaml_parse(text, strlen(text), "t", &m) == 0, "%s", errmsg());
	CHECK_EQ_INT(m.context_length, 64);
	CHECK_EQ_INT(m.lut_ffn, META_LUT_NONE);
	CHECK_EQ_INT(m.lut_lmhead, 8);
	CHECK_EQ_INT(m.argmax_in_model, 0);
	CHECK(m.embeddings == NULL); /* key without a value: absent */
	CHECK(m.n_comments == 0 && m.generated == NULL);
	metayaml_release(&m);
}

static void test_bad_files(void)
{
	const char *p = "model_info:\n  parameters:\n";
	const char *ok = "    batch_size: 8\n    lut_embeddings: none\n    lut_ffn: 4\n    lut_lmhead: 6\n    num_chunks: 2\n";
	char buf[1024];
	CHECK_ERR("- a\n- b\n", "top level: expected a mapping with model_info, found a list");
	CHECK_ERR("just text\n", "expected a mapping");
	CHECK_ERR("", "empty");
	CHECK_ERR("other: 1\n", "model_info is missing");
	CHECK_ERR("model_info: 5\n", "model_info: expected a mapping, found '5'");
	CHECK_ERR("model_info:\n  name: x\n", "model_info.parameters is missing");
	CHECK_ERR("model_info:\n  parameters: [1]\n", "model_info.parameters: expected a mapping, found a list");
	CHECK_ERR("model_info:\n  parameters: 5\n", "line 2: model_info.parameters: expected a mapping");
	/* p, then `line` (a context_length or nothing), ok and `extra`. */
	static const struct {
		const char *line, *extra, *want;
	} params[] = {
		{"    context_length: [1, 2]\n", "",
		 "line 3: model_info.parameters.context_length: expected a non-negative integer, found a list"},
		{"    context_length: \"512\"\n", "",
		 "context_length: expected a non-negative integer, found the quoted string '512'"},
		{"    context_length: -5\n", "", "context_length: expected a non-negative integer, found '-5'"},
		{"    context_length: 99999999999\n", "", "context_length: expected a non-negative integer"},
		{"    context_length: 512\n", "    lut_ffn: 4\n", "model_info.parameters.lut_ffn: the key appears twice"},
		{"    context_length: 512\n", "    split_rotate: yes\n", "split_rotate: expected true or false, found 'yes'"},
		{"    context_length: 512\n", "    model_prefix: [a]\n", "model_prefix: expected a string, found a list"},
		{"    context_length: 512\n", "    lm_head_chunk_sizes: [1, x]\n",
		 "lm_head_chunk_sizes[1]: expected a non-negative integer, found 'x'"},
		{"    context_length: 512\n", "    split_lm_head: 2\n    lm_head_chunk_sizes: [1, 2, 3]\n",
		 "lm_head_chunk_sizes has 3 entries but split_lm_head is 2"},
		{"    context_length: 512\n", "    vocab_size: 7\n    lm_head_chunk_sizes: [1, 2]\n",
		 "lm_head_chunk_sizes add up to 3 but vocab_size is 7"},
		{"", "", "model_info.parameters.context_length is missing"},
	};
	for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
		snprintf(buf, sizeof buf, "%s%s%s%s", p, params[i].line, ok, params[i].extra);
		CHECK_ERR(buf, params[i].want);
	}
	snprintf(buf, sizeof buf, "%s    context_length: 512\n%s", p, ok);
	CHECK(strcmp(parse_error(buf), "(parsed)") == 0);
	snprintf(buf, sizeof buf, "%s    context_length: 512\n%s    lut_ffn_per_channel: 0\n    lut_lmhead_per_channel: x\n",
		 p, "    batch_size: 8\n    lut_embeddings: none\n    lut_lmhead: 6\n    num_chunks: 2\n    lut_ffn: 9\n");
	CHECK_ERR(buf, "lut_ffn: expected LUT bits (1-8) or none, found '9'");
	snprintf(buf, sizeof buf, "model_info:\n  model_type: monolithic\n  parameters:\n    context_length: 8\n");
	CHECK_ERR(buf, "model_info.parameters.batch_size is missing (a monolithic");
	CHECK_ERR("model_info:\n  name: [unclosed\n", "not valid YAML");
	CHECK_ERR("model_info:\n  name: a\n\tbad: tab\n", "not valid YAML");
	CHECK_ERR("a: 1\n---\nb: 2\n", "more than one YAML document");
	CHECK_ERR("model_info:\n  name: \"a\\0b\"\n  parameters: {}\n", "model_info.name: the string holds a NUL");
	CHECK_ERR("model_info:\n  name: \x01\n", "not valid YAML");
}

/* What tests/cli/metagen.sh wrote (its golden files) reads back and rewrites identically. */
static void test_metagen_goldens(void)
{
	const char *files[] = {"tests/cli/golden/metagen_llama.yaml", "tests/cli/golden/metagen_qwen3_uncompiled.yaml"};
	for (int i = 0; i < 2; i++) {
		char *orig, *text;
		size_t n, len;
		metayaml m;
		if (read_file(files[i], FS_MAX_MODEL, &orig, &n) != 0)
			SKIP("%s", errmsg());
		CHECKF(metayaml_parse(orig, n, files[i], &m) == 0, "%s", errmsg());
		CHECK_EQ_INT(m.context_length, 64);
		CHECK_EQ_INT(m.batch_size, 8);
		CHECK_EQ_INT(m.num_chunks, 2);
		CHECK_EQ_INT(m.prefill_dynamic_slice, 1);
		char *c2 = m.ffn ? metayaml_chunk_name(m.ffn, 2) : NULL;
		CHECK(c2 && strstr(c2, "_chunk_02of02.") != NULL);
		free(c2);
		if (i == 0) {
			CHECK_STR(m.ffn, "llama_FFN_PF_lut4_chunk_01of02.mlmodelc");
			CHECK_EQ_INT(m.lut_ffn, 4);
			CHECK_EQ_INT(m.lut_embeddings, META_LUT_NONE);
			CHECK_EQ_INT(m.split_lm_head, 8);
		} else {
			CHECK_EQ_INT(m.lut_embeddings_per_channel, 16);
			CHECK_EQ_INT(m.lut_ffn_per_channel, 0);
			CHECK_EQ_INT(m.argmax_in_model, 1);
			CHECK_EQ_INT(m.n_lm_head_chunk_sizes, 16);
		}
		CHECKF(metayaml_format(&m, &text, &len) == 0, "%s", errmsg());
		CHECKF(len == n && memcmp(text, orig, n) == 0, "%s differs when written back", files[i]);
		free(text), free(orig);
		metayaml_release(&m);
	}
}

static void test_part_names(void)
{
	char *s = metayaml_chunk_name("llama_FFN_PF_lut4_chunk_01of02.mlmodelc", 2);
	CHECK(s && strcmp(s, "llama_FFN_PF_lut4_chunk_02of02.mlmodelc") == 0);
	free(s);
	s = metayaml_chunk_name("gemma3_FFN_PF_chunk_01of12_rot.mlmodelc", 11);
	CHECK(s && strcmp(s, "gemma3_FFN_PF_chunk_11of12_rot.mlmodelc") == 0);
	free(s);
	CHECK(metayaml_chunk_name("llama_FFN_PF.mlmodelc", 1) == NULL && strstr(errmsg(), "_chunk_NNof"));
	s = metayaml_dir("out/x/meta.yaml");
	CHECK_STR(s, "out/x");
	free(s);
	s = metayaml_dir("meta.yaml");
	CHECK_STR(s, ".");
	free(s);
	s = metayaml_dir("/meta.yaml");
	CHECK_STR(s, "/");
	free(s);

	char dir[] = "/tmp/test_metayaml_dir_XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *pkg = xasprintf("%s/a_lm_head.mlpackage", dir), *mc = xasprintf("%s/b.mlmodelc", dir);
	CHECK(mkdir_p(pkg) == 0 && mkdir_p(mc) == 0);
	s = metayaml_part_path(dir, "a_lm_head.mlmodelc", NULL); /* chat.py falls back to the package */
	CHECK(s && strcmp(s, pkg) == 0);
	free(s);
	s = metayaml_part_path(dir, "b", NULL);
	CHECK(s && strcmp(s, mc) == 0);
	free(s);
	CHECK(metayaml_part_path(dir, "b.mlmodelc", ".mlpackage") == NULL && strstr(errmsg(), "b.mlpackage"));
	CHECK(metayaml_part_path(dir, "c", NULL) == NULL && strstr(errmsg(), "no part 'c'"));
	rm_rf(dir);
	free(pkg), free(mc);
}

int main(void)
{
	RUN(test_reference_gemma3);
	RUN(test_reference_monolithic);
	RUN(test_reference_rewrites_identically);
	RUN(test_round_trip_chunked);
	RUN(test_round_trip_monolithic);
	RUN(test_fp16_comments);
	RUN(test_quoting);
	RUN(test_unknown_keys_ignored);
	RUN(test_bad_files);
	RUN(test_metagen_goldens);
	RUN(test_part_names);
	return test_finish();
}
