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
 * Skipped when TESTBIN (for mkfixture) is not set.
 */
#include "graph.h"
#include "fp16.h"
#include "fsutil.h"
#include "hfmodel.h"
#include "mlpackage.h"
#include "reference.h"
#include "runtime.h"
#include "util.h"
#include "test.h"
#include "test_fixture.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

static char g_tmp[256];

static char *fixture(const char *name, const char *args) { return test_fixture(g_tmp, name, args); }

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
		char *dir = fixture(name, args);
		free(args), free(name);
		if (!dir)
			SKIP("TESTBIN not set: no mkfixture");
		hf_model hf;
		if (hf_model_open(&hf, dir) != 0) {
			CHECKF(0, "%s: %s", dir, errmsg());
			free(dir);
			continue;
		}
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
		free(dir);
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

static int run_head(const parts *p, const rt_tensor *h, float *logits)
{
	rt_tensor in = *h, *out = NULL;
	in.name = "hidden_states";
	int nout = 0, at = 0;
	if (rt_run(p->head, NULL, &in, 1, NULL, &out, &nout) != 0)
		return -1;
	for (int k = 0; k < nout; k++)
		for (size_t i = 0; i < rt_tensor_numel(&out[k]); i++)
			logits[at++] = rt_tensor_get(&out[k], i);
	rt_tensors_free(out, nout);
	return at == p->V ? 0 : errf("head gave %d logits, vocab %d", at, p->V);
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
		rc = run_head(p, &h, logits);
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
	char *dir = fixture(name, args);
	if (!dir)
		SKIP("TESTBIN not set: no mkfixture");
	parts p = {.tol_ref = tol_ref};
	if (lut)
		ASSERT(lut_spec_parse(lut, &p.lut) == 0);
	char *out = xasprintf("%s/%s_out", g_tmp, name);
	if (mkdir_p(out) != 0 || hf_model_open(&p.hf, dir) != 0) {
		CHECKF(0, "%s: %s", name, errmsg());
	} else {
		p.H = p.hf.cfg.hidden_size;
		p.V = p.hf.cfg.vocab_size;
		if (write_parts(&p, dir, out) != 0)
			CHECKF(0, "%s: %s", name, errmsg());
		else
			compare(&p, name);
	}
	parts_close(&p);
	free(out);
	free(dir);
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
	RUN(test_programs_well_formed);
	RUN(test_named_functions);
	RUN(test_numeric_llama);
	RUN(test_numeric_llama3_rope);
	RUN(test_numeric_qwen2);
	RUN(test_numeric_qwen3);
	RUN(test_numeric_lut);
	rm_rf(g_tmp);
	return test_finish();
}
