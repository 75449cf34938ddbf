/* embed: write the embeddings part of a model, ANEMLL's part 1.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache). Output: <output>/<prefix>_embeddings[_lut<b>].mlpackage with one
 * function, main:
 *   input  input_ids      int32 [1,1], enumerated shapes {[1,1], [1,BATCH]}
 *   output hidden_states  fp16 [1,S,H]  (= embed_tokens[input_ids]; Gemma 3
 *                                        multiplies by sqrt(H))
 * The table is vocab x hidden fp16 (up to ~1.3 GB for a 262K-token Gemma),
 * palettized with --lut; unpalettized it is streamed from the checkpoint a
 * block of rows at a time, so memory stays a few MB whatever its size. --fp16-scale ALPHA|auto (Gemma 3) multiplies the
 * table by alpha (in fp32, rounded once), ANEMLL's FP16 residual scaling;
 * the scaled table is never palettized, as ANEMLL (--lut then only names
 * the file, with a warning). --clamp is accepted and ignored (it applies to
 * the FFN chunks). The package path is printed on stdout.
 */
#include "base/fp16.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void parse_args(int argc, char **argv, stage_opts *o)
{
	const cli_opt opts[] = {
		STAGE_OPT_MODEL(o),
		STAGE_OPT_OUTPUT(o, 1),
		STAGE_OPT_QUALITY_DIR(o),
		STAGE_OPT_PREFIX(o),
		STAGE_OPT_BATCH(o, "prefill batch: input_ids also accepts [1,N]"),
		STAGE_OPT_CONTEXT(o, "context length recorded in the metadata"),
		STAGE_OPT_LUT(o, "the table"),
		STAGE_OPT_LUT_OVERRIDE(o),
		STAGE_OPT_FP16_SCALE(o, "the table x alpha (then never palettized)"),
		STAGE_OPT_CLAMP(o, "accepted for ANEMLL's command lines; applies to ffn/prefill only"),
		STAGE_OPT_THREADS(o),
		STAGE_OPT_LUT_CACHE(o),
	};
	const cli_spec spec = {
		.usage = "embed --model DIR --output DIR [options]",
		.summary = "Write <prefix>_embeddings[_lut<b>].mlpackage: token ids -> hidden states, as ANEMLL's part 1.",
		.opts = opts,
		.nopts = (int)(sizeof opts / sizeof opts[0]),
	};
	cli_parse(&spec, argc, argv, NULL, NULL);
}

/* The table, read a block of rows at a time as the package is written
 * (it is the largest tensor of most models: never held whole unless it is
 * palettized). Scaled rows go through fp32, so each value is rounded once. */
typedef struct table_reader {
	const st_tensor *t;
	double alpha;     /* > 0: --fp16-scale */
	float *f32;
	size_t f32_cap;
	size_t clamped;   /* values beyond fp16's range */
} table_reader;

static int read_rows(void *ctx, uint64_t row0, uint64_t n, uint16_t *dst)
{
	table_reader *r = ctx;
	if (r->alpha <= 0)
		return st_read_rows_fp16(r->t, row0, n, dst, &r->clamped);
	size_t m = (size_t)(n * (r->t->numel / r->t->shape[0]));
	GROW(r->f32, r->f32_cap, m);
	if (st_read_rows_f32(r->t, row0, n, r->f32) != 0)
		return -1;
	for (size_t i = 0; i < m; i++)
		r->f32[i] = (float)(r->f32[i] * r->alpha);
	r->clamped += f32_array_to_fp16(r->f32, dst, m);
	return 0;
}

/* What the build callback needs. */
typedef struct embed_job {
	const stage_opts *o;
	table_reader table;
} embed_job;

/* Description: what ANEMLL's runtimes see of the model. */
static void describe(ml_model *m, int batch)
{
	int64_t one[2] = {1, 1}, many[2] = {1, batch};
	ml_feature *in = ml_model_add_input(m, NULL, "input_ids", ARRAY_INT32, 2, one);
	ml_feature_add_enumerated_shape(m, in, 2, one);
	ml_feature_add_enumerated_shape(m, in, 2, many);
	ml_model_add_output(m, NULL, "hidden_states", ARRAY_FLOAT16, 0, NULL);
}

/* Program: hidden_states = gather(table, input_ids) [* sqrt(H)]. */
static int build_program(ml_model *m, weights_ctx *w, const void *ctx)
{
	embed_job *j = (embed_job *)ctx; /* the reader counts clamped values */
	const hf_model *hf = &j->o->hf;
	mil_arena *a = m->arena;
	w->lut_min_elements = hf->cfg.arch->lut_min_elements;
	describe(m, j->o->batch);
	mil_function *fn = mil_program_add_function(ml_model_program(m), "main", MIL_OPSET_IOS18);
	int64_t ids_dims[2] = {1, -1}, out_dims[3] = {1, -1, hf->cfg.hidden_size};
	mil_function_add_input(fn, "input_ids", mil_type_tensor(a, MIL_INT32, 2, ids_dims));
	mil_block *b = mil_function_block(fn);
	int64_t shape[2] = {(int64_t)hf->embed->shape[0], (int64_t)hf->embed->shape[1]};
	const char *tv = weights_emit_rows(w, b, "embed_tokens_weight", hf->embed->name, read_rows, &j->table, 2, shape);
	if (!tv)
		return -1;
	mil_block_add_const(b, "gather_axis_0", mil_value_i32(a, 0));
	mil_block_add_const(b, "gather_batch_dims_0", mil_value_i32(a, 0));
	mil_block_add_const(b, "gather_validate_indices_0", mil_value_bool(a, 0));
	int scaled = hf->cfg.arch->embed_scale_sqrt_hidden;
	const char *gathered = scaled ? "embeddings" : "hidden_states";
	mil_op *g = mil_block_add_op(b, "gather", gathered);
	mil_op_bind(g, "x", tv);
	mil_op_bind(g, "indices", "input_ids");
	mil_op_bind(g, "axis", "gather_axis_0");
	mil_op_bind(g, "batch_dims", "gather_batch_dims_0");
	mil_op_bind(g, "validate_indices", "gather_validate_indices_0");
	mil_op_add_output(g, gathered, mil_type_tensor(a, MIL_FP16, 3, out_dims));
	if (scaled) {
		uint16_t s = f32_to_fp16((float)sqrt((double)hf->cfg.hidden_size), NULL);
		mil_block_add_const(b, "embed_scale", mil_value_fp16(a, s));
		mil_op *mul = mil_block_add_op(b, "mul", "hidden_states");
		mil_op_bind(mul, "x", gathered);
		mil_op_bind(mul, "y", "embed_scale");
		mil_op_add_output(mul, "hidden_states", mil_type_tensor(a, MIL_FP16, 3, out_dims));
	}
	mil_block_add_output(b, "hidden_states");
	return 0;
}

int main(int argc, char **argv)
{
	set_progname(argv[0]);
	stage_opts o;
	stage_opts_init(&o);
	parse_args(argc, argv, &o);
	stage_open(&o);
	if (o.fp16_scale == 0) /* a scaled table is never palettized */
		stage_resolve_lut(&o, STAGE_LUT_EMBED);
	stage_part p;
	stage_part_paths(&o, "embeddings", 0, 0, &p);
	/* Granite's embedding_multiplier is folded into the table, as FP16 scaling's alpha */
	double em = o.hf.cfg.embedding_multiplier, alpha = o.fp16_scale;
	if (em > 0 && em != 1.0)
		alpha = (alpha > 0 ? alpha : 1.0) * em;
	embed_job j = {&o, {.t = o.hf.embed, .alpha = alpha}};
	anemll_meta meta = {.part_title = "Embeddings", .context_length = o.context, .lut_bits = o.lut.bits};
	graph_write_opts wo = stage_write_opts(&o, &p);
	if (o.fp16_scale > 0 && o.lut.bits) {
		/* ANEMLL leaves a scaled table unquantized; the name and metadata keep --lut's bits. */
		warn("--lut %s: the table is not palettized because --fp16-scale scales it (as ANEMLL)", o.lut_arg);
		wo.lut.bits = 0;
	}
	if (o.fp16_scale > 0)
		wo.ov = NULL; /* nor by an override */
	if (graph_write_package(p.package, build_program, &j, &meta, &wo) != 0)
		die_err();
	if (j.table.clamped)
		warn("tensor '%s': %zu values beyond fp16 range clamped to +-65504", o.hf.embed->name, j.table.clamped);
	info(1, "%s: %s", p.package, wo.summary);
	printf("%s\n", p.package);
	if (stdout_close_checked() != 0)
		die_err();
	free(j.table.f32);
	stage_part_release(&p);
	stage_close(&o);
	return 0;
}
