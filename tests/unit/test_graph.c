/* test_graph.c: the transformer graph builder (graph.h).
 *
 * Pure arithmetic: the chunk split, the LM-head split, RoPE inverse
 * frequencies (none, linear, llama3 at frequencies whose band is known,
 * recomputed here independently) and the fp16 cos/sin tables.
 *
 * Built programs: for random llama / qwen2 / qwen3 fixtures (written by
 * tests/tools/mkfixture into a scratch directory under $TMPDIR) every chunk,
 * decode and prefill, and the LM head must be well formed: each name a
 * binding uses is a function input or an earlier op's output, no output is
 * defined twice, the declared outputs exist.
 *
 * Numbers: ffn + prefill + lm_head packages (and the embeddings, written here
 * the same way) run through the CPU runtime (runtime.h): prefill then decode
 * must agree with decode-only token by token within fp16 noise, the state is
 * shared by every chunk and both functions, and decode-only logits must
 * follow the fp32 HF reference forward pass (reference.h).
 *
 * Gemma 3 (1, 2 and 3 chunks; layer_types given and the nested gemma3
 * layout with HF's every-6th rule; windows 8 and 16 < context 32): every
 * token through infer/infer_rotate must follow the fp32 reference; prefill
 * and prefill_rotate blocks then decode must give the same first-chunk
 * hidden states and logits as token by token to fp16 rounding (the exact
 * window of prefill_rotate over the ring; ANEMLL's inexact mask gave 13%
 * relative logits error here); running a position past the window twice
 * through infer_rotate, as chat.py does with the last prompt token, must
 * leave every later logit bit-identical (the ring rewrites its slot); FP16 scaling
 * must leave the logits unchanged to fp16 noise; --clamp must bound the
 * chunk outputs. Monolithic (llama, qwen3, gemma3 with rotate; logits and
 * argmax): the same logits as embed -> chunks -> LM head.
 * Skipped when TESTBIN (for mkfixture) is not set.
 */
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "checkpoint/hfmodel.h"
#include "convert/graph.h"
#include "coreml/mlpackage.h"
#include "verify/reference.h"
#include "verify/runtime.h"
#include "test.h"
#include "test_fixture.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

static char g_tmp[256];

static char *fixture(const char *name, const char *args) { return test_fixture(g_tmp, name, args); }

/* The fixture opened into hf: 0; 1 without mkfixture; -1 (a failed check) when it does not open. */
static int fixture_model(const char *name, const char *args, hf_model *hf)
{
	char *dir = fixture(name, args);
	if (!dir)
		return 1;
	int rc = hf_model_open(hf, dir) == 0 ? 0 : -1;
	CHECKF(rc == 0, "%s: %s", dir, errmsg());
	free(dir);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Arithmetic                                                          */

static void test_chunk_split(void)
{
	int first, count;
	graph_chunk_layers(7, 3, 0, &first, &count);
	CHECK(first == 0 && count == 3);
	graph_chunk_layers(7, 3, 1, &first, &count);
	CHECK(first == 3 && count == 2);
	graph_chunk_layers(7, 3, 2, &first, &count);
	CHECK(first == 5 && count == 2);
	graph_chunk_layers(2, 2, 1, &first, &count);
	CHECK(first == 1 && count == 1);
	/* Every split covers all layers in order; sizes differ by at most one,
	 * the larger ones first. */
	for (int L = 1; L <= 40; L++)
		for (int N = 1; N <= L; N++) {
			int next = 0, prev = L + 1;
			for (int c = 0; c < N; c++) {
				graph_chunk_layers(L, N, c, &first, &count);
				CHECKF(first == next && count >= L / N && count <= L / N + 1 && count <= prev,
				       "L=%d N=%d chunk %d: [%d,+%d)", L, N, c, first, count);
				next = first + count;
				prev = count;
			}
			CHECK(next == L);
		}
}

static void test_lm_head_sizes(void)
{
	int s[16];
	graph_lm_head_sizes(256, 8, s);
	for (int k = 0; k < 8; k++)
		CHECK_EQ_INT(s[k], 32);
	graph_lm_head_sizes(300, 16, s); /* 300 = 12 x 19 + 4 x 18 */
	for (int k = 0; k < 16; k++)
		CHECK_EQ_INT(s[k], k < 12 ? 19 : 18);
	graph_lm_head_sizes(151936, 16, s);
	CHECK_EQ_INT(s[0], 9496);
	CHECK_EQ_INT(s[15], 9496);
	graph_lm_head_sizes(259, 8, s); /* the case ANEMLL's Llama head drops 3 rows of */
	int sum = 0;
	for (int k = 0; k < 8; k++)
		sum += s[k];
	CHECK_EQ_INT(sum, 259);
	CHECK(s[0] == 33 && s[2] == 33 && s[3] == 32 && s[7] == 32);
}

static void test_rope_plain_and_linear(void)
{
	double inv[4];
	hf_rope_scaling none = {.kind = ROPE_NONE};
	CHECK(graph_rope_inv_freq(&none, 10000.0, 8, inv) == 0);
	CHECK(fabs(inv[0] - 1) < 1e-15 && fabs(inv[1] - 0.1) < 1e-15 && fabs(inv[2] - 0.01) < 1e-16 &&
	      fabs(inv[3] - 0.001) < 1e-17);
	CHECK(graph_rope_inv_freq(NULL, 10000.0, 8, inv) == 0 && fabs(inv[1] - 0.1) < 1e-15);
	hf_rope_scaling lin = {.kind = ROPE_LINEAR, .factor = 4};
	CHECK(graph_rope_inv_freq(&lin, 10000.0, 8, inv) == 0);
	CHECK(fabs(inv[0] - 0.25) < 1e-15 && fabs(inv[3] - 0.00025) < 1e-18);
	CHECK(graph_rope_inv_freq(&none, 10000.0, 7, inv) == -1);
}

/* Llama 3 bands for theta 500000, head_dim 16, factor 32, low 1, high 4,
 * original context 8192 (the reference model's config): wavelengths
 * 2 pi / 500000^(-i/8) are 6.3, 32.4, 167, 863 (high band: < 2048, kept),
 * 4443 (medium: blended), 22937, 118170, 608800 (low: > 8192, / 32). */
static void test_rope_llama3_bands(void)
{
	hf_rope_scaling rs = {.kind = ROPE_LLAMA3, .type = "llama3", .factor = 32, .low_freq_factor = 1,
			      .high_freq_factor = 4, .original_max_position_embeddings = 8192};
	double inv[8];
	CHECK(graph_rope_inv_freq(&rs, 500000.0, 16, inv) == 0);
	for (int i = 0; i < 8; i++) {
		double base = exp(-log(500000.0) * i / 8.0), want;
		if (i < 4)
			want = base;
		else if (i > 4)
			want = base / 32;
		else { /* smooth = (8192 / wavelength - 1) / 3; mix of base/32 and base */
			double smooth = (8192.0 * base / (2 * M_PI) - 1) / 3;
			want = (1 - smooth) * base / 32 + smooth * base;
			CHECK(smooth > 0.28 && smooth < 0.29);
		}
		CHECKF(fabs(inv[i] - want) <= 1e-12 * want, "i=%d: %.17g vs %.17g", i, inv[i], want);
	}
	/* Not ANEMLL's shortcut (base theta * factor). */
	CHECK(fabs(inv[1] - exp(-log(500000.0 * 32) / 8.0)) > 1e-3);
}

/* longrope: short factors below the original context, long from there on,
 * cos/sin times attention_factor; band windows only for unified caches. */
static void test_rope_longrope(void)
{
	double sf[2] = {1.0, 1.5}, lf[2] = {2.0, 8.0};
	hf_rope_scaling rs = {.kind = ROPE_LONGROPE, .type = "longrope", .short_factor = sf, .long_factor = lf,
			      .n_factors = 2, .original_max_position_embeddings = 8, .attention_factor = 1.25};
	double inv[2];
	CHECK(graph_rope_inv_freq(&rs, 10000.0, 4, inv) == 0 && fabs(inv[1] - 0.01 / 1.5) < 1e-15);
	uint16_t cs[16 * 4], sn[16 * 4];
	CHECK(graph_rope_tables_base(&rs, 10000.0, 4, 16, cs, sn) == 0);
	for (int p = 0; p < 16; p++)
		for (int j = 0; j < 4; j++) {
			double a = p * pow(10000.0, -2.0 * (j % 2) / 4) / (p < 8 ? sf[j % 2] : lf[j % 2]);
			CHECKF(fabs(fp16_to_f32(cs[p * 4 + j]) - 1.25 * cos(a)) <= 1e-3 &&
			       fabs(fp16_to_f32(sn[p * 4 + j]) - 1.25 * sin(a)) <= 1e-3, "p=%d j=%d", p, j);
		}
	rs.n_factors = 1;
	CHECK(graph_rope_inv_freq(&rs, 10000.0, 4, inv) == -1);
	unsigned char slide[2] = {1, 1};
	hf_config c = {.path = "x/config.json", .arch = arch_get(ARCH_MISTRAL), .head_dim = 8, .num_hidden_layers = 2,
		       .use_sliding_window = 1, .sliding_window = 16, .layer_sliding = slide};
	/* Mistral: the one cache within the window, a ring of 16 local slots beyond it */
	CHECK(graph_band_window(&c, 64) == 0 && graph_band_window(&c, 16) == 0);
	CHECK(graph_local_cache(&c, 64) && graph_rotates(&c, 64) && graph_local_len(&c, 64) == 16);
	CHECK(!graph_local_cache(&c, 16) && !graph_rotates(&c, 16) && graph_local_len(&c, 16) == 0);
	int local, n;
	CHECK(graph_cache_slot(&c, 64, 1, &local, &n) == 1 && local && n == 2);
	CHECK(graph_cache_slot(&c, 16, 1, &local, &n) == 1 && !local && n == 2);
	CHECK(graph_check_rotate(&c, 64, 8, GRAPH_PREFILL) == 0);
	c.use_sliding_window = 0, c.sliding_window = 0; /* sliding_window null */
	CHECK(!graph_local_cache(&c, 64) && graph_check_rotate(&c, 64, 8, GRAPH_DECODE) == -1 &&
	      strstr(errmsg(), "sets no sliding_window"));
	c.use_sliding_window = 1, c.sliding_window = 16;
	c.arch = arch_get(ARCH_QWEN2); /* no ring cache: the band mask */
	CHECK(graph_band_window(&c, 64) == 16 && graph_band_window(&c, 16) == 0 && !graph_local_cache(&c, 64));
	CHECK(graph_check_rotate(&c, 64, 8, GRAPH_DECODE) == -1 &&
	      strstr(errmsg(), "families with one: gemma3, mistral, phi3"));
	c.arch = arch_get(ARCH_GEMMA3);
	CHECK(graph_band_window(&c, 64) == 0); /* Gemma 3: its ring buffer */
}

static void test_rope_unknown_type(void)
{
	hf_rope_scaling rs = {.kind = ROPE_OTHER, .type = "yarn", .factor = 4};
	double inv[4];
	CHECK(graph_rope_inv_freq(&rs, 10000.0, 8, inv) == -1);
	CHECK(strstr(errmsg(), "'yarn'") != NULL);
	hf_config c = {.path = "x/config.json", .arch = arch_get(ARCH_LLAMA), .head_dim = 8, .num_attention_heads = 2,
		       .num_key_value_heads = 1, .rope_scaling = rs};
	CHECK(graph_check_model(&c, 64) == -1 && strstr(errmsg(), "yarn") && strstr(errmsg(), "x/config.json"));
	c.rope_scaling.kind = ROPE_NONE;
	CHECK(graph_check_model(&c, 64) == 0);
	c.arch = arch_get(ARCH_GEMMA3);
	CHECK(graph_check_model(&c, 64) == -1);
}

static void test_rope_tables(void)
{
	hf_config c = {.head_dim = 8, .rope_theta = 10000.0, .rope_scaling = {.kind = ROPE_LINEAR, .factor = 2}};
	uint16_t cs[40 * 8], sn[40 * 8];
	CHECK(graph_rope_tables(&c, 40, cs, sn) == 0);
	for (int p = 0; p < 40; p++)
		for (int j = 0; j < 8; j++) {
			double a = p / 2.0 * pow(10000.0, -2.0 * (j % 4) / 8);
			float gc = fp16_to_f32(cs[p * 8 + j]), gs = fp16_to_f32(sn[p * 8 + j]);
			/* nearest fp16: within half a unit in the last place (2^-11 relative) */
			CHECKF(fabs(gc - cos(a)) <= ldexp(fabs(cos(a)), -11) + 3e-8 &&
			       fabs(gs - sin(a)) <= ldexp(fabs(sin(a)), -11) + 3e-8, "p=%d j=%d", p, j);
		}
	CHECK(cs[0] == 0x3c00 && sn[0] == 0); /* position 0: cos 1, sin 0 */
}

/* ------------------------------------------------------------------ */
/* Well-formed programs                                                */

static int name_in(const char **names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return 1;
	return 0;
}

/* Every name bound is defined before, nothing defined twice. */
static void check_well_formed(const ml_model *m, const char *what)
{
	const mil_program *p = m->program;
	CHECKF(p && p->nfunctions == 1, "%s: one function", what);
	const mil_function *f = p->functions[0];
	const mil_block *b = mil_function_block(f);
	size_t cap = f->ninputs + b->nops + 1, n = 0;
	const char **names = xmalloc(cap * sizeof *names);
	for (size_t i = 0; i < f->ninputs; i++)
		names[n++] = f->inputs[i].name;
	int bad = 0;
	for (size_t i = 0; i < b->nops && !bad; i++) {
		const mil_op *op = b->ops[i];
		for (size_t a = 0; a < op->ninputs; a++)
			for (size_t k = 0; k < op->inputs[a]->n; k++) {
				const mil_binding *bd = &op->inputs[a]->v[k];
				if (bd->kind == MIL_BIND_NAME && !name_in(names, n, bd->name)) {
					CHECKF(0, "%s: op %zu (%s) uses '%s' before it is defined", what, i, op->type, bd->name);
					bad = 1;
				}
			}
		for (size_t o = 0; o < op->noutputs; o++) {
			if (name_in(names, n, op->outputs[o].name)) {
				CHECKF(0, "%s: '%s' defined twice", what, op->outputs[o].name);
				bad = 1;
			}
			ASSERT(n < cap);
			names[n++] = op->outputs[o].name;
		}
	}
	for (size_t i = 0; i < b->noutputs; i++)
		CHECKF(name_in(names, n, b->outputs[i]), "%s: output '%s' undefined", what, b->outputs[i]);
	free(names);
}

static size_t count_ops(const ml_model *m, const char *type)
{
	const mil_block *b = mil_function_block(m->program->functions[0]);
	size_t n = 0;
	for (size_t i = 0; i < b->nops; i++)
		n += strcmp(b->ops[i]->type, type) == 0;
	return n;
}

/* Build chunk `chunk` of `nchunks` (chunk 0: the LM head) into memory. */
static ml_model *build(const hf_model *hf, graph_mode mode, int chunk, int nchunks, int argmax)
{
	char *path = path_join(g_tmp, "weight.bin");
	blob_writer *bw = blob_writer_open(path);
	ASSERT(bw);
	weights_ctx w;
	lut_spec lut = {0};
	weights_init(&w, bw, &lut, 1);
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	graph_chunk_opts o = {.mode = mode, .context = 32, .batch = 8, .chunk = chunk, .nchunks = nchunks};
	int rc = chunk ? graph_build_chunk(m, &w, hf, &o) : graph_build_lm_head(m, &w, hf, argmax);
	CHECKF(rc == 0, "build: %s", errmsg());
	blob_writer_close(bw, NULL);
	weights_release(&w);
	free(path);
	return m;
}

static void test_programs_well_formed(void)
{
	const char *archs[3] = {"llama", "qwen2", "qwen3"};
	for (int a = 0; a < 3; a++) {
		char *args = xasprintf("--arch %s --layers 3 --seed 5", archs[a]);
		char *name = xasprintf("wf_%s", archs[a]);
		hf_model hf;
		int rc = fixture_model(name, args, &hf);
		free(args), free(name);
		if (rc == 1)
			SKIP("TESTBIN not set: no mkfixture");
		if (rc != 0)
			continue;
		for (int mode = 0; mode < 2; mode++)
			for (int c = 1; c <= 2; c++) {
				ml_model *m = build(&hf, mode ? GRAPH_PREFILL : GRAPH_DECODE, c, 2, 0);
				char what[64];
				snprintf(what, sizeof what, "%s %s chunk %d", archs[a], mode ? "prefill" : "decode", c);
				check_well_formed(m, what);
				/* chunk 1 has layers 0-1, chunk 2 layer 2: two write_state per layer */
				CHECK_EQ_INT(count_ops(m, "write_state"), c == 1 ? 4 : 2);
				CHECK_EQ_INT(count_ops(m, "linear"), a == 0 ? (c == 1 ? 2 : 1) : 0);
				CHECK(a == 1 ? count_ops(m, "cast") > 0 : count_ops(m, "cast") == 0);
				ml_model_free(m);
			}
		for (int argmax = 0; argmax < 2; argmax++) {
			ml_model *m = build(&hf, GRAPH_DECODE, 0, 1, argmax);
			check_well_formed(m, argmax ? "lm head argmax" : "lm head");
			CHECK_EQ_INT(count_ops(m, "conv"), a == 0 ? 8 : 16);
			CHECK_EQ_INT(count_ops(m, "reduce_argmax"), argmax ? (a == 0 ? 8 : 16) : 0);
			ml_model_free(m);
		}
		hf_model_close(&hf);
	}
}

/* ------------------------------------------------------------------ */
/* What coremltools' MIL loader accepts (issue 10)                     */

/* The type of name in fn: an input or an op output; NULL if none. */
static const mil_type *type_of(const mil_function *fn, const char *name)
{
	for (size_t i = 0; i < fn->ninputs; i++)
		if (strcmp(fn->inputs[i].name, name) == 0)
			return fn->inputs[i].type;
	const mil_block *b = mil_function_block(fn);
	for (size_t i = 0; i < b->nops; i++)
		for (size_t o = 0; o < b->ops[i]->noutputs; o++)
			if (strcmp(b->ops[i]->outputs[o].name, name) == 0)
				return b->ops[i]->outputs[o].type;
	return NULL;
}

static const char *bound_name(const mil_op *op, const char *param)
{
	const mil_arg *a = mil_op_input(op, param);
	return a && a->n == 1 && a->v[0].kind == MIL_BIND_NAME ? a->v[0].name : NULL;
}

/* Do a and b broadcast (numpy) to exactly t? coremltools infers select's
 * output from a and b alone. */
static int ab_broadcast_to(const mil_type *a, const mil_type *b, const mil_type *t)
{
	if (!a || !b || !t)
		return 0;
	size_t r = t->ndims;
	if (a->ndims > r || b->ndims > r)
		return 0;
	for (size_t i = 0; i < r; i++) {
		uint64_t want = t->dims[i].size, d = 1;
		const mil_type *x[2] = {a, b};
		for (int k = 0; k < 2; k++) {
			size_t off = r - x[k]->ndims;
			uint64_t v = i >= off ? x[k]->dims[i - off].size : 1;
			if (v != 1 && d != 1 && v != d)
				return 0;
			if (v != 1)
				d = v;
		}
		if (d != want)
			return 0;
	}
	return 1;
}

/* Every select's a and b broadcast to its output; every read_state is used
 * (the read after a function's last write of a cache is dead unless the
 * attention reads the cache back). */
static void check_loadable(const ml_model *m, const char *what)
{
	for (size_t f = 0; f < m->program->nfunctions; f++) {
		const mil_function *fn = m->program->functions[f];
		const mil_block *b = mil_function_block(fn);
		for (size_t i = 0; i < b->nops; i++) {
			const mil_op *op = b->ops[i];
			if (strcmp(op->type, "select") == 0) {
				const char *an = bound_name(op, "a"), *bn = bound_name(op, "b");
				CHECKF(an && bn && ab_broadcast_to(type_of(fn, an), type_of(fn, bn), op->outputs[0].type),
				       "%s: select '%s': a and b do not broadcast to its output", what, op->outputs[0].name);
			}
			if (strcmp(op->type, "read_state") != 0)
				continue;
			const char *out = op->outputs[0].name;
			int used = 0;
			for (size_t k = 0; k < b->noutputs; k++)
				used |= strcmp(b->outputs[k], out) == 0;
			for (size_t j = i + 1; j < b->nops; j++)
				for (size_t a = 0; a < b->ops[j]->ninputs; a++)
					for (size_t v = 0; v < b->ops[j]->inputs[a]->n; v++)
						used |= b->ops[j]->inputs[a]->v[v].kind == MIL_BIND_NAME &&
							strcmp(b->ops[j]->inputs[a]->v[v].name, out) == 0;
			CHECKF(used, "%s: read_state '%s' is dead (coremltools drops it on re-save)", what, out);
		}
	}
}

/* Every chunk and monolithic function variant: Llama (decode, prefill) and
 * Gemma 3 with its split cache (infer, infer_rotate, prefill, prefill_rotate). */
static void test_coremltools_loadable(void)
{
	static const char *const fx[2][2] = {
		{"wf_llama", "--arch llama --layers 3 --seed 5"},
		{"gemma_lt", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 --hidden 64 --intermediate 128 "
			     "--heads 4 --kv-heads 2 --head-dim 32 --vocab 300 --sliding-window 8"},
	};
	for (int a = 0; a < 2; a++) {
		hf_model hf;
		int frc = fixture_model(fx[a][0], fx[a][1], &hf);
		if (frc == 1)
			SKIP("TESTBIN not set: no mkfixture");
		if (frc != 0)
			continue;
		for (int v = 0; v < 4; v += a ? 1 : 2) /* rotate (odd v): Gemma 3 only */
			for (int c = 0; c <= 2; c++) { /* c 0: monolithic */
				char *path = path_join(g_tmp, "loadable.bin"), what[96];
				blob_writer *bw = blob_writer_open(path);
				weights_ctx w;
				weights_init(&w, bw, NULL, 1);
				ml_model *m = ml_model_new(ML_SPEC_IOS18);
				graph_mode mode = v >= 2 ? GRAPH_PREFILL : GRAPH_DECODE;
				int rotate = v % 2 == 1, rc;
				if (c) {
					graph_chunk_opts o = {.mode = mode, .context = 32, .batch = 8, .chunk = c, .nchunks = 2,
							      .rotate = rotate};
					rc = graph_build_chunk(m, &w, &hf, &o);
				} else {
					graph_mono_opts o = {.mode = mode, .context = 32, .batch = 8, .rotate = rotate};
					rc = graph_build_monolithic(m, &w, &hf, &o);
				}
				snprintf(what, sizeof what, "%s %s%s %s", fx[a][0], mode == GRAPH_PREFILL ? "prefill" : "infer",
					 rotate ? "_rotate" : "", c ? (c == 1 ? "chunk 1" : "chunk 2") : "monolithic");
				CHECKF(rc == 0, "%s: %s", what, errmsg());
				if (rc == 0)
					check_loadable(m, what);
				blob_writer_close(bw, NULL);
				weights_release(&w);
				ml_model_free(m);
				free(path);
			}
		hf_model_close(&hf);
	}
}

/* Named functions: infer and prefill in one model, each described. */
static void test_named_functions(void)
{
	char *dir = fixture("wf_llama", "--arch llama --layers 3 --seed 5");
	if (!dir)
		SKIP("TESTBIN not set: no mkfixture");
	hf_model hf;
	CHECKF(hf_model_open(&hf, dir) == 0, "%s", errmsg());
	char *path = path_join(g_tmp, "weight2.bin");
	blob_writer *bw = blob_writer_open(path);
	weights_ctx w;
	weights_init(&w, bw, NULL, 1);
	ml_model *m = ml_model_new(ML_SPEC_IOS18);
	graph_chunk_opts o = {.mode = GRAPH_DECODE, .context = 32, .batch = 8, .chunk = 2, .nchunks = 2, .function = "infer"};
	CHECK(graph_build_chunk(m, &w, &hf, &o) == 0);
	o.mode = GRAPH_PREFILL, o.function = "prefill";
	CHECK(graph_build_chunk(m, &w, &hf, &o) == 0);
	CHECK(m->program->nfunctions == 2 && m->desc->nfunctions == 2 && m->desc->top.input.n == 0);
	const ml_function_desc *inf = ml_model_find_function(m, "infer"), *pf = ml_model_find_function(m, "prefill");
	CHECK(inf && pf && inf->state.n == 1 && pf->state.n == 1 && pf->input.n == 4);
	CHECK(mil_program_find_function(m->program, "prefill") != NULL);
	const ml_array_type *out = pf ? ml_feature_array(pf->output.v[0]) : NULL;
	CHECK(out && out->shape.n == 3 && out->shape.dims[1] == 1);
	blob_writer_close(bw, NULL);
	weights_release(&w);
	ml_model_free(m);
	hf_model_close(&hf);
	free(path);
	free(dir);
}

/* ------------------------------------------------------------------ */
/* Numbers through the CPU runtime                                     */

#define CTX 32
#define BATCH 8
#define NCHUNK 2
#define NTOK 13

typedef struct parts {
	hf_model hf;
	rt_model *ffn[NCHUNK], *pf[NCHUNK], *head, *argmax;
	int H, V;
	lut_spec lut;
	double tol_ref; /* max relative logits difference to the fp32 reference */
	char *out;      /* the directory they were written to */
} parts;

static int write_parts(parts *p, const char *dir, const char *out)
{
	graph_write_opts wo = {.lut = p->lut, .threads = 1};
	for (int c = 1; c <= NCHUNK; c++)
		for (int mode = 0; mode < 2; mode++) {
			char *path = xasprintf("%s/%s_%d.mlpackage", out, mode ? "pf" : "ffn", c);
			graph_chunk_opts o = {.mode = mode ? GRAPH_PREFILL : GRAPH_DECODE, .context = CTX, .batch = BATCH,
					      .chunk = c, .nchunks = NCHUNK};
			int rc = graph_write_chunk(path, &p->hf, &o, &wo);
			if (rc == 0)
				rc = rt_model_open(path, mode ? &p->pf[c - 1] : &p->ffn[c - 1]);
			free(path);
			if (rc != 0)
				return -1;
		}
	int rc = 0;
	for (int argmax = 0; rc == 0 && argmax < 2; argmax++) {
		char *path = xasprintf("%s/head%d.mlpackage", out, argmax);
		rc = graph_write_lm_head(path, &p->hf, CTX, argmax, &wo);
		if (rc == 0)
			rc = rt_model_open(path, argmax ? &p->argmax : &p->head);
		free(path);
	}
	(void)dir;
	return rc;
}

static void parts_close(parts *p)
{
	for (int c = 0; c < NCHUNK; c++) {
		rt_model_free(p->ffn[c]);
		rt_model_free(p->pf[c]);
	}
	rt_model_free(p->head);
	rt_model_free(p->argmax);
	hf_model_close(&p->hf);
	free(p->out);
}

/* Fixture `name` written as parts (lut: NULL or a spec) to g_tmp/<name><suffix>
 * and opened: 0; 1 without mkfixture; -1, a failed check, when it does not
 * convert. parts_close releases p in every case. */
static int parts_open(parts *p, const char *name, const char *args, const char *lut, double tol_ref, const char *suffix)
{
	*p = (parts){.tol_ref = tol_ref};
	char *dir = fixture(name, args);
	if (!dir)
		return 1;
	if (lut)
		ASSERT(lut_spec_parse(lut, &p->lut) == 0);
	p->out = xasprintf("%s/%s%s", g_tmp, name, suffix);
	int rc = mkdir_p(p->out) != 0 || hf_model_open(&p->hf, dir) != 0 ? -1 : 0;
	if (rc == 0) {
		p->H = p->hf.cfg.hidden_size;
		p->V = p->hf.cfg.vocab_size;
		rc = write_parts(p, dir, p->out);
	}
	CHECKF(rc == 0, "%s: %s", name, errmsg());
	free(dir);
	return rc;
}

/* hidden [1,n,H] fp16: the embedding rows of ids (what the embed part
 * computes with a gather on the same fp16 table). */
static void embed(const parts *p, const int32_t *ids, int n, rt_tensor *t)
{
	int64_t shape[3] = {1, n, p->H};
	rt_tensor_alloc(t, "hidden_states", MIL_FP16, 3, shape);
	for (int i = 0; i < n; i++)
		ASSERT(st_read_rows_fp16(p->hf.embed, (uint64_t)ids[i], 1, (uint16_t *)t->data + (size_t)i * p->H, NULL) == 0);
}

/* One chunk call at positions [pos, pos + S); replaces *h by the output. */
static int run_chunk(rt_model *m, rt_state *s, rt_tensor *h, int pos)
{
	int S = (int)h->shape[1];
	rt_tensor in[4];
	in[0] = *h;
	in[0].name = "hidden_states";
	int64_t ps[1] = {S}, ms[4] = {1, 1, S, CTX}, one[1] = {1};
	rt_tensor_alloc(&in[1], "position_ids", MIL_INT32, 1, ps);
	rt_tensor_alloc(&in[2], "causal_mask", MIL_FP16, 4, ms);
	rt_tensor_alloc(&in[3], "current_pos", MIL_INT32, 1, one);
	for (int i = 0; i < S; i++) {
		((int32_t *)in[1].data)[i] = pos + i;
		for (int j = 0; j < CTX; j++)
			((uint16_t *)in[2].data)[i * CTX + j] = j <= pos + i ? 0 : 0xfc00; /* -inf */
	}
	((int32_t *)in[3].data)[0] = pos;
	rt_tensor *out = NULL;
	int nout = 0;
	int rc = rt_run(m, NULL, in, 4, s, &out, &nout);
	for (int i = 1; i < 4; i++)
		rt_tensor_release(&in[i]);
	if (rc != 0)
		return -1;
	rt_tensor_release(h);
	*h = out[0];
	out[0] = (rt_tensor){0};
	rt_tensors_free(out, nout);
	return 0;
}

/* The V logits of LM head `head` on hidden h (all of its split outputs, in order). */
static int run_head(rt_model *head, int V, const rt_tensor *h, float *logits)
{
	rt_tensor in = *h, *out = NULL;
	in.name = "hidden_states";
	int nout = 0, at = 0;
	if (rt_run(head, NULL, &in, 1, NULL, &out, &nout) != 0)
		return -1;
	for (int k = 0; k < nout; k++)
		for (size_t i = 0; i < rt_tensor_numel(&out[k]); i++)
			logits[at++] = rt_tensor_get(&out[k], i);
	rt_tensors_free(out, nout);
	return at == V ? 0 : errf("head gave %d logits, vocab %d", at, V);
}

/* The argmax head on hidden h picks, per split, the logits' maximum. */
static void check_argmax(const parts *p, const rt_tensor *h, const float *logits, const char *what)
{
	rt_tensor in = *h, *out = NULL;
	in.name = "hidden_states";
	int nout = 0, K = p->hf.cfg.arch->lm_head_splits, sizes[16];
	if (rt_run(p->argmax, NULL, &in, 1, NULL, &out, &nout) != 0 || nout != 2) {
		CHECKF(0, "%s argmax head: %s", what, errmsg());
		return;
	}
	graph_lm_head_sizes(p->V, K, sizes);
	const rt_tensor *idx = rt_tensors_find(out, nout, "argmax_idx"), *val = rt_tensors_find(out, nout, "argmax_val");
	CHECK(idx && val && idx->dtype == MIL_INT32 && rt_tensor_numel(idx) == (size_t)K);
	for (int k = 0, off = 0; idx && val && k < K; off += sizes[k++]) {
		int i = (int)rt_tensor_get(idx, (size_t)k);
		float best = logits[off];
		for (int j = 1; j < sizes[k]; j++)
			best = fmaxf(best, logits[off + j]);
		CHECKF(i >= 0 && i < sizes[k] && logits[off + i] == best && rt_tensor_get(val, (size_t)k) == best,
		       "%s head %d: argmax %d (%g), max %g", what, k + 1, i, rt_tensor_get(val, (size_t)k), best);
	}
	rt_tensors_free(out, nout);
}

/* Decode token t through every chunk: logits (may be NULL); with `what`,
 * the argmax head is checked against them too. */
static int decode(const parts *p, rt_state *s, int32_t id, int pos, float *logits, const char *what)
{
	rt_tensor h;
	embed(p, &id, 1, &h);
	int rc = 0;
	for (int c = 0; rc == 0 && c < NCHUNK; c++)
		rc = run_chunk(p->ffn[c], s, &h, pos);
	if (rc == 0 && logits)
		rc = run_head(p->head, p->V, &h, logits);
	if (rc == 0 && logits && what)
		check_argmax(p, &h, logits, what);
	rt_tensor_release(&h);
	return rc;
}

static double max_rel(const float *a, const float *b, int n, int *finite)
{
	double d = 0, m = 0;
	*finite = 1;
	for (int i = 0; i < n; i++) {
		*finite &= isfinite(a[i]) != 0;
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	return m > 0 ? d / m : d;
}

/* Prefill one batch then decode the rest, vs decode only, vs the reference. */
static void compare(parts *p, const char *what)
{
	int32_t ids[NTOK];
	for (int i = 0; i < NTOK; i++)
		ids[i] = (int32_t)((i * 37 + 11) % p->V);
	float *a = xmalloc(xmul((size_t)p->V, 4)), *b = xmalloc(xmul((size_t)p->V, 4)), *r = xmalloc(xmul((size_t)p->V, 4));
	rt_state *sa = rt_state_new(p->pf[0], "main"), *sb = rt_state_new(p->ffn[0], "main");
	ref_options ro = {.context = CTX, .threads = 1};
	ref_model *ref = ref_open(&p->hf, &ro);
	CHECKF(sa && sb && ref, "%s: %s", what, errmsg());
	rt_tensor h;
	embed(p, ids, BATCH, &h);
	int rc = 0;
	for (int c = 0; rc == 0 && c < NCHUNK; c++)
		rc = run_chunk(p->pf[c], sa, &h, 0);
	CHECKF(rc == 0 && h.shape[1] == 1, "%s prefill: %s", what, errmsg());
	rt_tensor_release(&h);
	double worst_ab = 0, worst_ref = 0;
	int finite = 1;
	for (int t = 0; rc == 0 && t < NTOK; t++) {
		rc = decode(p, sb, ids[t], t, b, t == NTOK - 1 ? what : NULL) || ref_forward(ref, ids[t], t, r, NULL);
		if (rc == 0 && t >= BATCH)
			rc = decode(p, sa, ids[t], t, a, NULL);
		CHECKF(rc == 0, "%s token %d: %s", what, t, errmsg());
		int f1 = 1, f2 = 1;
		if (rc == 0 && t >= BATCH)
			worst_ab = fmax(worst_ab, max_rel(a, b, p->V, &f1));
		if (rc == 0)
			worst_ref = fmax(worst_ref, max_rel(b, r, p->V, &f2));
		finite &= f1 & f2;
	}
	CHECKF(finite, "%s: non-finite logits", what);
	CHECKF(worst_ab < 2e-3, "%s: prefill+decode vs decode only: max rel diff %.3g", what, worst_ab);
	CHECKF(worst_ref < p->tol_ref, "%s: vs fp32 reference: max rel diff %.3g", what, worst_ref);
	/* Control: without the prompt's cache the same step gives other logits. */
	rt_state *empty = rt_state_new(p->ffn[0], "main");
	int f = 1;
	if (rc == 0 && empty && decode(p, empty, ids[NTOK - 1], NTOK - 1, a, NULL) == 0)
		CHECKF(max_rel(a, b, p->V, &f) > 1e-2, "%s: the KV cache makes no difference", what);
	rt_state_free(empty);
	if (getenv("GRAPH_VERBOSE"))
		printf("# %s: prefill vs decode %.3g, vs reference %.3g\n", what, worst_ab, worst_ref);
	ref_close(ref);
	rt_state_free(sa);
	rt_state_free(sb);
	free(a), free(b), free(r);
}

static void numeric(const char *name, const char *args, const char *lut, double tol_ref)
{
	parts p;
	int rc = parts_open(&p, name, args, lut, tol_ref, "_out");
	if (rc == 1)
		SKIP("TESTBIN not set: no mkfixture");
	if (rc == 0)
		compare(&p, name);
	parts_close(&p);
}

static void test_numeric_llama(void) { numeric("num_llama", "--arch llama --layers 3 --seed 3 --vocab 259", NULL, 1e-2); }
static void test_numeric_llama3_rope(void)
{
	numeric("num_llama3", "--arch llama --layers 3 --seed 4 --rope-scaling llama3 --rope-factor 8 --untied", NULL, 2e-2);
}
static void test_numeric_qwen2(void) { numeric("num_qwen2", "--arch qwen2 --layers 3 --seed 5 --vocab 300", NULL, 1e-2); }
static void test_numeric_qwen3(void)
{
	numeric("num_qwen3", "--arch qwen3 --layers 3 --seed 6 --heads 4 --kv-heads 1 --head-dim 32", NULL, 1e-2);
}
/* Palettized weights: the same agreement between the two paths; the
 * reference only loosely (6-bit weights). */
static void test_numeric_lut(void)
{
	numeric("num_lut", "--arch qwen3 --layers 3 --seed 8 --vocab 512 --intermediate 256", "6", 0.25);
}

/* ------------------------------------------------------------------ */
/* Gemma 3: split caches, rotate functions, FP16 scaling, clamp        */

#define G_B 4    /* prefill batch: divides the windows (8, 16) of the fixtures */
#define G_MAXCH 3

enum { G_INFER, G_INFER_ROT, G_PREFILL, G_PREFILL_ROT, G_NFN };

/* w: the sliding window; prefill blocks cover [0, pf_end): fill below w,
 * then three prefill_rotate blocks (window 8: at 8, 12, 16, ring slots 0, 4,
 * 0; window 16: at 16, 20, 24, slots 0, 4, 8); ntok tokens in all. */
typedef struct gparts {
	hf_model hf;
	int nchunks, H, V, w, pf_end, ntok;
	double alpha, clamp;
	rt_model *fn[G_NFN][G_MAXCH], *head;
} gparts;

static int g_write(gparts *p, const char *out)
{
	graph_write_opts wo = {.threads = 1};
	for (int f = 0; f < G_NFN; f++)
		for (int c = 1; c <= p->nchunks; c++) {
			char *path = xasprintf("%s/g%d_%d.mlpackage", out, f, c);
			graph_chunk_opts o = {.mode = f >= G_PREFILL ? GRAPH_PREFILL : GRAPH_DECODE, .context = CTX, .batch = G_B,
					      .chunk = c, .nchunks = p->nchunks, .rotate = f == G_INFER_ROT || f == G_PREFILL_ROT,
					      .fp16_scale = p->alpha, .clamp = p->clamp};
			int rc = graph_write_chunk(path, &p->hf, &o, &wo);
			if (rc == 0)
				rc = rt_model_open(path, &p->fn[f][c - 1]);
			free(path);
			if (rc != 0)
				return -1;
		}
	char *path = xasprintf("%s/ghead.mlpackage", out);
	int rc = graph_write_lm_head(path, &p->hf, CTX, 0, &wo);
	if (rc == 0)
		rc = rt_model_open(path, &p->head);
	free(path);
	return rc;
}

static void g_close(gparts *p)
{
	for (int f = 0; f < G_NFN; f++)
		for (int c = 0; c < G_MAXCH; c++)
			rt_model_free(p->fn[f][c]);
	rt_model_free(p->head);
	hf_model_close(&p->hf);
}

/* What the embed stage computes: fp16(w * alpha) gathered, times fp16 sqrt(H). */
static void g_embed(const gparts *p, const int32_t *ids, int n, rt_tensor *t)
{
	int64_t shape[3] = {1, n, p->H};
	rt_tensor_alloc(t, "hidden_states", MIL_FP16, 3, shape);
	float *row = xmalloc(xmul((size_t)p->H, sizeof *row));
	float scale = fp16_to_f32(f32_to_fp16(sqrtf((float)p->H), NULL));
	for (int i = 0; i < n; i++) {
		ASSERT(st_read_rows_f32(p->hf.embed, (uint64_t)ids[i], 1, row) == 0);
		uint16_t *dst = (uint16_t *)t->data + (size_t)i * (size_t)p->H;
		for (int j = 0; j < p->H; j++) {
			float w = p->alpha > 0 ? fp16_to_f32(f32_to_fp16((float)(row[j] * p->alpha), NULL))
					       : fp16_to_f32(f32_to_fp16(row[j], NULL));
			dst[j] = f32_to_fp16(w * scale, NULL);
		}
	}
	free(row);
}

/* Chunks of function f on h at position pos; the first chunk's output rows
 * go to hid1 (row r at hid1[(pos + r) * H]) when hid1 is set. */
static int g_chunks(const gparts *p, int f, rt_state *s, rt_tensor *h, int pos, float *hid1)
{
	for (int c = 0; c < p->nchunks; c++) {
		if (run_chunk(p->fn[f][c], s, h, pos) != 0)
			return -1;
		for (size_t i = 0; c == 0 && hid1 && i < rt_tensor_numel(h); i++)
			hid1[(size_t)pos * (size_t)p->H + i] = rt_tensor_get(h, i);
	}
	return 0;
}

/* Tokens [from, to) one at a time: infer below the window, infer_rotate from it. */
static int g_decode(const gparts *p, rt_state *s, const int32_t *ids, int from, int to, float *logits, float *hid1)
{
	for (int t = from; t < to; t++) {
		rt_tensor h;
		g_embed(p, ids + t, 1, &h);
		int rc = g_chunks(p, t < p->w ? G_INFER : G_INFER_ROT, s, &h, t, hid1);
		if (rc == 0 && logits)
			rc = run_head(p->head, p->V, &h, logits + (size_t)t * (size_t)p->V);
		rt_tensor_release(&h);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* chat.py's full batches over [0, end): prefill below the window, prefill_rotate from it. */
static int g_prefill(const gparts *p, rt_state *s, const int32_t *ids, int end, float *hid1)
{
	for (int pos = 0; pos + G_B <= end; pos += G_B) {
		rt_tensor h;
		g_embed(p, ids + pos, G_B, &h);
		int rc = g_chunks(p, pos < p->w ? G_PREFILL : G_PREFILL_ROT, s, &h, pos, hid1);
		rt_tensor_release(&h);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* max |a - b| over n values, relative to max |b|. */
static double g_rel(const float *a, const float *b, size_t n, double *absdiff)
{
	double d = 0, m = 0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, isfinite(a[i]) ? fabs((double)a[i] - b[i]) : INFINITY);
		m = fmax(m, fabs((double)b[i]));
	}
	if (absdiff)
		*absdiff = d;
	return m > 0 ? d / m : d;
}

typedef struct grun {
	float *logits, *hid1; /* [ntok][V], [ntok][H] */
} grun;

static void g_ids(int32_t *ids, int V)
{
	for (int i = 0; i < CTX; i++)
		ids[i] = (int32_t)((i * 53 + 7) % V);
}

/* Path A: every token through infer / infer_rotate. */
static int g_path_decode(const gparts *p, grun *r)
{
	int32_t ids[CTX];
	g_ids(ids, p->V);
	r->logits = xcalloc(xmul((size_t)p->ntok, (size_t)p->V), sizeof *r->logits);
	r->hid1 = xcalloc(xmul((size_t)p->ntok, (size_t)p->H), sizeof *r->hid1);
	rt_state *s = rt_state_new(p->fn[G_INFER][0], "main");
	int rc = s ? g_decode(p, s, ids, 0, p->ntok, r->logits, r->hid1) : -1;
	rt_state_free(s);
	return rc;
}

static void g_run_free(grun *r) { free(r->logits), free(r->hid1); }

/* Path B vs path A: prefill / prefill_rotate blocks then decode must give
 * the same hidden states and logits (the exact window mask). Not bit for
 * bit in general: a prefill_rotate row sums its softmax and P.V over the
 * keys [old window ; batch], infer_rotate over the ring in slot order, and
 * fp32 sums in another order can round differently to fp16 (measured 0 at
 * window 8, about one fp16 step at window 16). A wrong mask or slot is off
 * by far more (ANEMLL's mask: 13% of the logits here). */
static void g_check_prefill(const gparts *p, const grun *a, const char *what)
{
	int32_t ids[CTX];
	g_ids(ids, p->V);
	grun b = {xcalloc(xmul((size_t)p->ntok, (size_t)p->V), sizeof(float)),
		  xcalloc(xmul((size_t)p->ntok, (size_t)p->H), sizeof(float))};
	rt_state *s = rt_state_new(p->fn[G_PREFILL][0], "main");
	int rc = s ? g_prefill(p, s, ids, p->pf_end, p->nchunks > 1 ? b.hid1 : NULL) : -1;
	if (rc == 0)
		rc = g_decode(p, s, ids, p->pf_end, p->ntok, b.logits, NULL);
	CHECKF(rc == 0, "%s prefill path: %s", what, errmsg());
	double habs = 0, labs = 0, hrel = 0, lrel = 0;
	if (rc == 0 && p->nchunks > 1)
		hrel = g_rel(b.hid1, a->hid1, (size_t)p->pf_end * (size_t)p->H, &habs);
	for (int t = 0; getenv("GRAPH_VERBOSE") && t < p->pf_end; t++) {
		double d;
		g_rel(b.hid1 + (size_t)t * (size_t)p->H, a->hid1 + (size_t)t * (size_t)p->H, (size_t)p->H, &d);
		printf("#   position %d: chunk-1 max |diff| %.3g\n", t, d);
	}
	size_t off = (size_t)p->pf_end * (size_t)p->V, nl = (size_t)(p->ntok - p->pf_end) * (size_t)p->V;
	if (rc == 0)
		lrel = g_rel(b.logits + off, a->logits + off, nl, &labs);
	int same = rc == 0 && memcmp(b.logits + off, a->logits + off, nl * sizeof(float)) == 0 &&
		   (p->nchunks == 1 || memcmp(b.hid1, a->hid1, (size_t)p->pf_end * (size_t)p->H * sizeof(float)) == 0);
	CHECKF(hrel < 3e-3, "%s: prefill_rotate hidden states vs token by token: max |diff| %.3g (rel %.3g)", what, habs, hrel);
	CHECKF(lrel < 3e-3, "%s: logits after prefill_rotate vs token by token: max |diff| %.3g (rel %.3g)", what, labs, lrel);
	printf("# %s: prefill/prefill_rotate vs token by token (window %d): %s; chunk-1 hidden max |diff| %.3g (rel %.3g), "
	       "logits max |diff| %.3g (rel %.3g)\n", what, p->w, same ? "bit-identical" : "not bit-identical", habs, hrel,
	       labs, lrel);
	rt_state_free(s);
	g_run_free(&b);
}

/* Path C vs path A: chat.py runs its last prompt token again for the first
 * decode step; in the ring that rewrites the same slot with the same K/V,
 * so running position `twice` (>= the window) a second time changes no
 * later logit, bit for bit, and gives the same logits again. */
static void g_check_rerun(const gparts *p, const grun *a, int twice, const char *what)
{
	int32_t ids[CTX];
	g_ids(ids, p->V);
	float *c = xcalloc(xmul((size_t)p->ntok, (size_t)p->V), sizeof *c);
	rt_state *s = rt_state_new(p->fn[G_INFER][0], "main");
	int rc = s ? g_decode(p, s, ids, 0, twice + 1, c, NULL) : -1;
	if (rc == 0)
		rc = g_decode(p, s, ids, twice, twice + 1, c, NULL); /* the re-run: its logits overwrite c[twice] */
	if (rc == 0)
		rc = g_decode(p, s, ids, twice + 1, p->ntok, c, NULL);
	CHECKF(rc == 0, "%s re-run path: %s", what, errmsg());
	size_t from = (size_t)twice * (size_t)p->V, n = (size_t)(p->ntok - twice) * (size_t)p->V;
	int same = rc == 0 && memcmp(c + from, a->logits + from, n * sizeof *c) == 0;
	double d = 0;
	if (rc == 0)
		g_rel(c + from, a->logits + from, n, &d);
	CHECKF(same, "%s: position %d run twice through infer_rotate changes the logits after it (max |diff| %.3g)", what,
	       twice, d);
	printf("# %s: position %d twice through infer_rotate: logits of positions %d..%d %s\n", what, twice, twice,
	       p->ntok - 1, same ? "bit-identical" : "differ");
	rt_state_free(s);
	free(c);
}

/* Path A vs the fp32 reference, once reference.c runs Gemma 3. */
static void g_check_reference(gparts *p, const grun *a, const char *what)
{
	ref_options ro = {.context = CTX, .threads = 1};
	ref_model *ref = ref_open(&p->hf, &ro);
	if (!ref) {
		printf("# %s: reference not compared: %s\n", what, errmsg());
		return;
	}
	int32_t ids[CTX];
	g_ids(ids, p->V);
	float *r = xmalloc(xmul((size_t)p->V, sizeof *r));
	double worst = 0;
	for (int t = 0; t < p->ntok; t++) {
		if (ref_forward(ref, ids[t], t, r, NULL) != 0) {
			CHECKF(0, "%s reference token %d: %s", what, t, errmsg());
			break;
		}
		worst = fmax(worst, g_rel(a->logits + (size_t)t * (size_t)p->V, r, (size_t)p->V, NULL));
	}
	CHECKF(worst < 2e-2, "%s: vs fp32 reference: max rel diff %.3g", what, worst);
	printf("# %s: token by token vs fp32 reference: max rel diff %.3g\n", what, worst);
	free(r);
	ref_close(ref);
}

static int g_open(gparts *p, const char *name, const char *args, int nchunks, double alpha, double clamp)
{
	char *dir = fixture(name, args);
	if (!dir)
		return 1;
	*p = (gparts){.nchunks = nchunks, .alpha = alpha, .clamp = clamp};
	char *out = xasprintf("%s/%s_out_%d_%g_%g", g_tmp, name, nchunks, alpha, clamp);
	int rc = mkdir_p(out) != 0 || hf_model_open(&p->hf, dir) != 0 ? -1 : 0;
	if (rc == 0) {
		p->H = p->hf.cfg.hidden_size;
		p->V = p->hf.cfg.vocab_size;
		p->w = p->hf.cfg.sliding_window;
		p->pf_end = p->w + 3 * G_B;
		p->ntok = p->pf_end + 6 < CTX - 1 ? p->pf_end + 6 : CTX - 1;
		ASSERT(p->w % G_B == 0 && p->pf_end < p->ntok);
		rc = g_write(p, out);
	}
	CHECKF(rc == 0, "%s: %s", name, errmsg());
	free(out);
	free(dir);
	return rc;
}

static void gemma_numeric(const char *name, const char *args, int nchunks)
{
	gparts p;
	int rc = g_open(&p, name, args, nchunks, 0, 0);
	if (rc == 1)
		SKIP("TESTBIN not set: no mkfixture");
	grun a = {0};
	if (rc == 0 && g_path_decode(&p, &a) != 0) {
		CHECKF(0, "%s decode path: %s", name, errmsg());
		rc = -1;
	}
	char what[64];
	snprintf(what, sizeof what, "%s, %d chunks", name, nchunks);
	if (rc == 0) {
		g_check_prefill(&p, &a, what);
		g_check_rerun(&p, &a, p.w + 1, what);
		g_check_rerun(&p, &a, p.pf_end - 1, what);
		g_check_reference(&p, &a, what);
	}
	g_run_free(&a);
	g_close(&p);
}

#define G_FIX "--hidden 64 --intermediate 128 --heads 4 --kv-heads 2 --head-dim 32 --vocab 300 --sliding-window 8"
static void test_gemma_numeric_2chunks(void)
{
	gemma_numeric("gemma_lt", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 " G_FIX, 2);
}
static void test_gemma_numeric_3chunks(void)
{
	/* nested text_config, HF's every-6th-layer rule: layer 5 is global */
	gemma_numeric("gemma_mm", "--arch gemma3 --layers 7 --seed 22 " G_FIX, 3);
}
static void test_gemma_numeric_rope_scaling(void)
{
	/* global layers honour rope_scaling (as HF; ANEMLL ignores it), local ones never scale */
	gemma_numeric("gemma_rs", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 23 --rope-scaling linear "
				  "--rope-factor 8 " G_FIX, 2);
}
static void test_gemma_numeric_1chunk(void)
{
	gemma_numeric("gemma_lt", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 " G_FIX, 1);
}
static void test_gemma_numeric_window16(void)
{
	/* ring slots 0, 4, 8 of 16 for the rotated blocks: a block in the middle of the ring */
	gemma_numeric("gemma_w16", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 --hidden 64 "
				   "--intermediate 128 --heads 4 --kv-heads 2 --head-dim 32 --vocab 300 --sliding-window 16", 2);
}

/* FP16 scaling is weight-only and cancelled by the final norm: the logits
 * of scaled and unscaled conversions agree to fp16 noise. */
static void test_gemma_fp16_scale(void)
{
	gparts p, q;
	const char *args = "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 " G_FIX;
	int rc = g_open(&p, "gemma_lt", args, 2, 0, 0);
	if (rc == 1)
		SKIP("TESTBIN not set: no mkfixture");
	int rc2 = g_open(&q, "gemma_lt", args, 2, 0.25, 0);
	grun a = {0}, b = {0};
	if (rc == 0 && rc2 == 0 && g_path_decode(&p, &a) == 0 && g_path_decode(&q, &b) == 0) {
		double d, rel = g_rel(b.logits, a.logits, (size_t)p.ntok * (size_t)p.V, &d);
		double hd, hrel = g_rel(b.hid1, a.hid1, (size_t)p.ntok * (size_t)p.H, &hd);
		CHECKF(rel < 5e-3, "scaled vs unscaled logits: max |diff| %.3g (rel %.3g)", d, rel);
		/* the residual stream itself is scaled: chunk 1's output by about alpha */
		CHECKF(hrel > 0.5, "chunk-1 hidden states not scaled (rel diff %.3g)", hrel);
		printf("# fp16 scale 0.25: logits max |diff| %.3g (rel %.3g) vs unscaled\n", d, rel);
	} else {
		CHECKF(0, "fp16 scale: %s", errmsg());
	}
	g_run_free(&a), g_run_free(&b);
	g_close(&p), g_close(&q);
}

/* --clamp: a clip after every residual add, and chunk outputs within it. */
static void test_gemma_clamp(void)
{
	const double V = 4.0;
	gparts p;
	const char *args = "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 " G_FIX;
	int rc = g_open(&p, "gemma_lt", args, 2, 0, V);
	if (rc == 1)
		SKIP("TESTBIN not set: no mkfixture");
	grun a = {0};
	if (rc == 0 && g_path_decode(&p, &a) == 0) {
		float hi = 0;
		for (size_t i = 0; i < (size_t)p.ntok * (size_t)p.H; i++)
			hi = fmaxf(hi, fabsf(a.hid1[i]));
		CHECKF(hi <= V, "clamped chunk output reaches %g > %g", hi, V);
		CHECKF(hi >= V * 0.999, "the clamp never bit (max %g): pick a smaller V", hi);
		ml_model *m = NULL;
		char *path = path_join(g_tmp, "clampw.bin");
		blob_writer *bw = blob_writer_open(path);
		weights_ctx w;
		weights_init(&w, bw, NULL, 1);
		m = ml_model_new(ML_SPEC_IOS18);
		graph_chunk_opts o = {.mode = GRAPH_DECODE, .context = CTX, .chunk = 1, .nchunks = 2, .clamp = V};
		CHECK(graph_build_chunk(m, &w, &p.hf, &o) == 0);
		CHECK_EQ_INT(count_ops(m, "clip"), 6); /* layers 0-2, two residual adds each */
		blob_writer_close(bw, NULL);
		weights_release(&w);
		ml_model_free(m);
		free(path);
	} else {
		CHECKF(0, "clamp: %s", errmsg());
	}
	g_run_free(&a);
	g_close(&p);
}

/* Interface: both states in every chunk, local [2 n_local, kv, min(W, C), d]. */
static void test_gemma_interface(void)
{
	char *dir = fixture("gemma_lt", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 " G_FIX);
	if (!dir)
		SKIP("TESTBIN not set: no mkfixture");
	hf_model hf;
	CHECKF(hf_model_open(&hf, dir) == 0, "%s", errmsg());
	int local, n;
	CHECK(graph_cache_slot(&hf.cfg, 32, 3, &local, &n) == 2 && local && n == 3);
	CHECK(graph_cache_slot(&hf.cfg, 32, 4, &local, &n) == 1 && !local && n == 2);
	CHECK(graph_local_len(&hf.cfg, 32) == 8 && graph_local_len(&hf.cfg, 6) == 6);
	for (int c = 1; c <= 2; c++) {
		ml_model *m = build(&hf, GRAPH_DECODE, c, 2, 0);
		check_well_formed(m, "gemma chunk");
		const ml_function_desc *d = &m->desc->top;
		CHECK(d->state.n == 2);
		const ml_array_type *lo = d->state.n == 2 ? ml_feature_array(d->state.v[0]) : NULL;
		CHECK(lo && lo->shape.n == 4 && lo->shape.dims[0] == 6 && lo->shape.dims[2] == 8 && lo->shape.dims[3] == 32);
		CHECK(d->state.n == 2 && strcmp(d->state.v[0]->name, GRAPH_KV_LOCAL) == 0 &&
		      strcmp(d->state.v[1]->name, GRAPH_KV_GLOBAL) == 0);
		ml_model_free(m);
	}
	/* rotate needs context > window, and a batch dividing the window */
	CHECK(graph_check_rotate(&hf.cfg, 8, 4, GRAPH_DECODE) == -1 && strstr(errmsg(), "sliding window 8"));
	CHECK(graph_check_rotate(&hf.cfg, 32, 3, GRAPH_PREFILL) == -1 && strstr(errmsg(), "--batch-size 3"));
	CHECK(graph_check_rotate(&hf.cfg, 32, 4, GRAPH_PREFILL) == 0);
	hf_model_close(&hf);
	free(dir);
}

/* ------------------------------------------------------------------ */
/* Monolithic                                                          */

/* One monolithic call on ids[0..S) at position pos; outputs to *out. */
static int mono_run(rt_model *m, rt_state *s, const int32_t *ids, int S, int pos, rt_tensor **out, int *nout)
{
	rt_tensor in[4];
	int64_t is[2] = {1, S}, ps[1] = {S}, ms[4] = {1, 1, S, CTX}, one[1] = {1};
	rt_tensor_alloc(&in[0], "input_ids", MIL_INT32, 2, is);
	rt_tensor_alloc(&in[1], "position_ids", MIL_INT32, 1, ps);
	rt_tensor_alloc(&in[2], "causal_mask", MIL_FP16, 4, ms);
	rt_tensor_alloc(&in[3], "current_pos", MIL_INT32, 1, one);
	for (int i = 0; i < S; i++) {
		((int32_t *)in[0].data)[i] = ids[i];
		((int32_t *)in[1].data)[i] = pos + i;
		for (int j = 0; j < CTX; j++)
			((uint16_t *)in[2].data)[i * CTX + j] = j <= pos + i ? 0 : 0xfc00;
	}
	((int32_t *)in[3].data)[0] = pos;
	int rc = rt_run(m, NULL, in, 4, s, out, nout);
	for (int i = 0; i < 4; i++)
		rt_tensor_release(&in[i]);
	return rc;
}

static void mono_logits(const rt_tensor *out, int nout, float *logits)
{
	int at = 0;
	for (int k = 0; k < nout; k++)
		for (size_t i = 0; i < rt_tensor_numel(&out[k]); i++)
			logits[at++] = rt_tensor_get(&out[k], i);
}

typedef struct mono_parts {
	rt_model *infer, *argmax, *prefill;
} mono_parts;

static int mono_write(parts *p, const char *out, mono_parts *mp)
{
	graph_write_opts wo = {.lut = p->lut, .threads = 1};
	rt_model **dst[3] = {&mp->infer, &mp->argmax, &mp->prefill};
	for (int v = 0; v < 3; v++) {
		char *path = xasprintf("%s/mono%d.mlpackage", out, v);
		graph_mono_opts o = {.mode = v == 2 ? GRAPH_PREFILL : GRAPH_DECODE, .context = CTX, .batch = BATCH,
				     .argmax = v == 1, .lut_embed = p->lut, .lut_ffn = p->lut, .lut_head = p->lut};
		int rc = graph_write_monolithic(path, &p->hf, &o, &wo);
		if (rc == 0)
			rc = rt_model_open(path, dst[v]);
		free(path);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Monolithic infer (and after a monolithic prefill) vs embed -> chunks -> head. */
static void mono_compare(parts *p, mono_parts *mp, const char *what)
{
	int32_t ids[NTOK];
	for (int i = 0; i < NTOK; i++)
		ids[i] = (int32_t)((i * 29 + 5) % p->V);
	float *a = xmalloc(xmul((size_t)p->V, 4)), *b = xmalloc(xmul((size_t)p->V, 4)), *c = xmalloc(xmul((size_t)p->V, 4));
	rt_state *sa = rt_state_new(p->ffn[0], "main"), *sm = rt_state_new(mp->infer, "main"),
		 *sp = rt_state_new(mp->prefill, "main");
	rt_tensor *out = NULL;
	int nout = 0, rc = mono_run(mp->prefill, sp, ids, BATCH, 0, &out, &nout);
	CHECKF(rc == 0 && nout == p->hf.cfg.arch->lm_head_splits, "%s monolithic prefill: %s", what, errmsg());
	rt_tensors_free(out, nout);
	double worst = 0, worst_pf = 0;
	int f;
	for (int t = 0; rc == 0 && t < NTOK; t++) {
		rc = decode(p, sa, ids[t], t, a, NULL) || mono_run(mp->infer, sm, ids + t, 1, t, &out, &nout);
		if (rc == 0) {
			mono_logits(out, nout, b);
			rt_tensors_free(out, nout);
			worst = fmax(worst, max_rel(b, a, p->V, &f));
		}
		if (rc == 0 && t >= BATCH && (rc = mono_run(mp->infer, sp, ids + t, 1, t, &out, &nout)) == 0) {
			mono_logits(out, nout, c);
			rt_tensors_free(out, nout);
			worst_pf = fmax(worst_pf, max_rel(c, a, p->V, &f));
		}
		CHECKF(rc == 0, "%s token %d: %s", what, t, errmsg());
	}
	CHECKF(worst < 2e-3, "%s: monolithic infer vs chunked: max rel diff %.3g", what, worst);
	CHECKF(worst_pf < 2e-3, "%s: monolithic prefill + infer vs chunked: max rel diff %.3g", what, worst_pf);
	printf("# %s: monolithic vs chunked logits: max rel diff %.3g (after monolithic prefill %.3g)\n", what, worst,
	       worst_pf);
	rt_state_free(sa), rt_state_free(sm), rt_state_free(sp);
	free(a), free(b), free(c);
}

/* The argmax part picks, per split, the maximum of the infer part's logits. */
static void mono_check_argmax(parts *p, mono_parts *mp, const char *what)
{
	int32_t ids[3] = {3, 17, 40};
	float *l = xmalloc(xmul((size_t)p->V, 4));
	rt_state *s1 = rt_state_new(mp->infer, "main"), *s2 = rt_state_new(mp->argmax, "main");
	int K = p->hf.cfg.arch->lm_head_splits, sizes[16];
	graph_lm_head_sizes(p->V, K, sizes);
	for (int t = 0; t < 3; t++) {
		rt_tensor *o1 = NULL, *o2 = NULL;
		int n1 = 0, n2 = 0;
		if (mono_run(mp->infer, s1, ids + t, 1, t, &o1, &n1) != 0 || mono_run(mp->argmax, s2, ids + t, 1, t, &o2, &n2) != 0) {
			CHECKF(0, "%s argmax: %s", what, errmsg());
			break;
		}
		mono_logits(o1, n1, l);
		const rt_tensor *idx = rt_tensors_find(o2, n2, "argmax_idx"), *val = rt_tensors_find(o2, n2, "argmax_val");
		CHECK(n2 == 2 && idx && val && rt_tensor_numel(idx) == (size_t)K);
		for (int k = 0, off = 0; idx && val && k < K; off += sizes[k++]) {
			float best = l[off];
			for (int j = 1; j < sizes[k]; j++)
				best = fmaxf(best, l[off + j]);
			int i = (int)rt_tensor_get(idx, (size_t)k);
			CHECKF(i >= 0 && i < sizes[k] && l[off + i] == best && rt_tensor_get(val, (size_t)k) == best,
			       "%s token %d head %d: argmax %d, max %g", what, t, k + 1, i, best);
		}
		rt_tensors_free(o1, n1), rt_tensors_free(o2, n2);
	}
	rt_state_free(s1), rt_state_free(s2);
	free(l);
}

static void monolithic(const char *name, const char *args, const char *lut)
{
	parts p;
	int rc = parts_open(&p, name, args, lut, 1, "_mono");
	if (rc == 1)
		SKIP("TESTBIN not set: no mkfixture");
	mono_parts mp = {0};
	if (rc == 0 && mono_write(&p, p.out, &mp) != 0) {
		CHECKF(0, "%s: %s", name, errmsg());
	} else if (rc == 0) {
		mono_compare(&p, &mp, name);
		mono_check_argmax(&p, &mp, name);
	}
	rt_model_free(mp.infer), rt_model_free(mp.argmax), rt_model_free(mp.prefill);
	parts_close(&p);
}

static void test_monolithic_llama(void) { monolithic("num_llama", "--arch llama --layers 3 --seed 3 --vocab 259", NULL); }
static void test_monolithic_qwen3(void)
{
	monolithic("num_qwen3", "--arch qwen3 --layers 3 --seed 6 --heads 4 --kv-heads 1 --head-dim 32", NULL);
}

/* Gemma 3 monolithic: infer / infer_rotate token by token, and prefill /
 * prefill_rotate blocks then decode, vs the chunked conversion. */
static void test_monolithic_gemma(void)
{
	gparts p;
	int rc = g_open(&p, "gemma_lt", "--arch gemma3_text --layers 5 --layer-types s,f,s,s,f --seed 21 " G_FIX, 2, 0, 0);
	if (rc == 1)
		SKIP("TESTBIN not set: no mkfixture");
	grun a = {0};
	rt_model *m[G_NFN] = {0};
	for (int f = 0; rc == 0 && f < G_NFN; f++) {
		char *path = xasprintf("%s/gmono%d.mlpackage", g_tmp, f);
		graph_mono_opts o = {.mode = f >= G_PREFILL ? GRAPH_PREFILL : GRAPH_DECODE, .context = CTX, .batch = G_B,
				     .rotate = f == G_INFER_ROT || f == G_PREFILL_ROT};
		graph_write_opts wo = {.threads = 1};
		rc = graph_write_monolithic(path, &p.hf, &o, &wo) || rt_model_open(path, &m[f]);
		free(path);
	}
	if (rc == 0)
		rc = g_path_decode(&p, &a);
	CHECKF(rc == 0, "gemma monolithic: %s", errmsg());
	int32_t ids[CTX];
	g_ids(ids, p.V);
	float *l = xmalloc(xmul((size_t)p.V, 4));
	rt_state *s1 = rc == 0 ? rt_state_new(m[G_INFER], "main") : NULL, *s2 = rc == 0 ? rt_state_new(m[G_PREFILL], "main") : NULL;
	double worst = 0, worst_pf = 0;
	for (int pos = 0; rc == 0 && pos + G_B <= p.pf_end; pos += G_B) {
		rt_tensor *out = NULL;
		int nout = 0;
		rc = mono_run(m[pos < p.w ? G_PREFILL : G_PREFILL_ROT], s2, ids + pos, G_B, pos, &out, &nout);
		CHECK(rc != 0 || (nout == 1 && strcmp(out[0].name, "output_hidden_states") == 0));
		rt_tensors_free(out, nout);
	}
	for (int t = 0; rc == 0 && t < p.ntok; t++) {
		rt_state *st[2] = {s1, s2};
		for (int k = 0; rc == 0 && k < 2; k++) {
			if (k == 1 && t < p.pf_end)
				continue;
			rt_tensor *out = NULL;
			int nout = 0, f;
			rc = mono_run(m[t < p.w ? G_INFER : G_INFER_ROT], st[k], ids + t, 1, t, &out, &nout);
			if (rc == 0) {
				mono_logits(out, nout, l);
				double d = max_rel(l, a.logits + (size_t)t * (size_t)p.V, p.V, &f);
				*(k ? &worst_pf : &worst) = fmax(k ? worst_pf : worst, d);
			}
			rt_tensors_free(out, nout);
		}
	}
	CHECKF(rc == 0, "gemma monolithic run: %s", errmsg());
	CHECKF(worst < 2e-3 && worst_pf < 2e-3, "gemma monolithic vs chunked: %.3g, after prefill %.3g", worst, worst_pf);
	printf("# gemma monolithic vs chunked logits: max rel diff %.3g (after monolithic prefill_rotate %.3g)\n", worst,
	       worst_pf);
	rt_state_free(s1), rt_state_free(s2);
	free(l);
	for (int f = 0; f < G_NFN; f++)
		rt_model_free(m[f]);
	g_run_free(&a);
	g_close(&p);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(g_tmp, sizeof g_tmp, "%s/anemake-graph-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(g_tmp)) {
		printf("FAIL setup: cannot create %s\n", g_tmp);
		return 1;
	}
	RUN(test_chunk_split);
	RUN(test_lm_head_sizes);
	RUN(test_rope_plain_and_linear);
	RUN(test_rope_llama3_bands);
	RUN(test_rope_unknown_type);
	RUN(test_rope_tables);
	RUN(test_rope_longrope);
	RUN(test_programs_well_formed);
	RUN(test_named_functions);
	RUN(test_coremltools_loadable);
	RUN(test_numeric_llama);
	RUN(test_numeric_llama3_rope);
	RUN(test_numeric_qwen2);
	RUN(test_numeric_qwen3);
	RUN(test_numeric_lut);
	RUN(test_gemma_interface);
	RUN(test_gemma_numeric_2chunks);
	RUN(test_gemma_numeric_3chunks);
	RUN(test_gemma_numeric_1chunk);
	RUN(test_gemma_numeric_rope_scaling);
	RUN(test_gemma_numeric_window16);
	RUN(test_gemma_fp16_scale);
	RUN(test_gemma_clamp);
	RUN(test_monolithic_llama);
	RUN(test_monolithic_qwen3);
	RUN(test_monolithic_gemma);
	rm_rf(g_tmp);
	return test_finish();
}
