/* stage.h: what the converting stages (embed, ffn, prefill, lmhead) share.
 *
 * Their flags follow ANEMLL's names and mean the same thing everywhere, so
 * they are declared once here (STAGE_OPT_* entries for a cli_opt table) and
 * their values checked once (stage_open): the LUT spec, the model resolved
 * (a directory, or org/name in the local HF cache) and opened, the default
 * prefix from the architecture table, the output directory created.
 * stage_part() names a part's files under the output directory.
 * chunk_stage_main() is the whole of ffn and prefill: they differ only in
 * which function of the chunk they build.
 */
#ifndef ANEMAKE_STAGE_H
#define ANEMAKE_STAGE_H

#include "base/cli.h"
#include "checkpoint/hfmodel.h"
#include "convert/graph.h"
#include "convert/lut.h"
#include "convert/weights.h"

typedef struct stage_opts {
	/* flags */
	const char *model, *output, *quality_dir, *prefix, *lut_arg, *lut_cache;
	const char *fp16_scale_arg, *clamp_arg;
	const char *lut_override_arg, *calib_stats_arg;
	const char *lut_override_name; /* how messages name --lut-override (set before stage_open; NULL: the flag) */
	int context, batch, threads;
	/* set by stage_open */
	lut_spec lut;
	double fp16_scale;      /* --fp16-scale resolved: alpha in (0,1], 0 when not given */
	double clamp;           /* --clamp V, 0 when not given */
	char *model_dir;
	hf_model hf;
	const char *prefix_eff; /* --prefix, else the architecture's */
	lut_overrides *ov;      /* --lut-override parsed, NULL when not given */
	struct calstats *stats; /* --calib-stats read, NULL when not given */
} stage_opts;

#define STAGE_OPT_MODEL(o) {"model", "DIR|ORG/NAME", CLI_STRING, &(o)->model, 1, 0, 0, "HuggingFace model directory, or an id in the local HF cache (never downloaded)"}
#define STAGE_OPT_OUTPUT(o, required) {"output", "DIR", CLI_STRING, &(o)->output, required, 0, 0, "directory to write into (created if missing)"}
#define STAGE_OPT_QUALITY_DIR(o) {"quality-dir", "DIR", CLI_STRING, &(o)->quality_dir, 0, 0, 0, "where each part's <name>.quality.json goes (default: --output; created if missing)"}
#define STAGE_OPT_PREFIX(o) {"prefix", "NAME", CLI_STRING, &(o)->prefix, 0, 0, 0, "file-name prefix (default by architecture: llama, qwen, qwen25, gemma3; the model_type for mistral, granite, olmo2, smollm3, phi3)"}
#define STAGE_OPT_CONTEXT(o, help) {"context-length", "N", CLI_INT, &(o)->context, 0, 1, 1 << 20, help " (default 512)"}
#define STAGE_OPT_BATCH(o, help) {"batch-size", "N", CLI_INT, &(o)->batch, 0, 1, 4096, help " (default 64)"}
#define STAGE_OPT_LUT(o, what) {"lut", "SPEC", CLI_STRING, &(o)->lut_arg, 0, 0, 0, "palettize " what ": BITS[,GROUP] (GROUP 0|t|tensor: per tensor; default group 8), or none"}
#define STAGE_OPT_LUT_OVERRIDE(o) {"lut-override", "PAT=SPEC;...", CLI_STRING, &(o)->lut_override_arg, 0, 0, 0, "LUT per tensor pattern over --lut's, the last match winning: e.g. 'layers.0-1=8;layers.*.mlp.down_proj=6;lm_head=none'; components literal (globs * ?), * or a range A-B; @FILE reads entries from FILE (README: LUT overrides)"}
#define STAGE_OPT_CALIB_STATS(o) {"calib-stats", "FILE", CLI_STRING, &(o)->calib_stats_arg, 0, 0, 0, "activation-aware palettization: weight each linear layer's k-means by its input's E[x^2] per channel from FILE (written by calib)"}
#define STAGE_OPT_LUT_CACHE(o) {"lut-cache", "DIR", CLI_STRING, &(o)->lut_cache, 0, 0, 0, "LUT cache directory (default OUTPUT/" WEIGHTS_CACHE_SUBDIR "; none: off)"}
#define STAGE_OPT_FP16_SCALE(o, what) {"fp16-scale", "ALPHA|auto", CLI_STRING, &(o)->fp16_scale_arg, 0, 0, 0, "Gemma 3 FP16 residual scaling, alpha in (0,1]: " what "; auto: ANEMLL's table by model name (gemma-3-270m 0.48, -1b 0.82, -4b-it-qat 0.1875, -4b 0.5, gemma-3n-E2B/E4B 0.5)"}
#define STAGE_OPT_CLAMP(o, what) {"clamp", "V", CLI_STRING, &(o)->clamp_arg, 0, 0, 0, "FP16 safety: " what}
#define STAGE_OPT_THREADS(o) {"threads", "N", CLI_INT, &(o)->threads, 0, 0, 1024, "quantizer threads (default 0: all cores); the output does not depend on it"}

/* --fp16-scale's alpha: a number in (0,1], or "auto": ANEMLL's table by a
 * case-insensitive substring of the model path or id (gemma-3-270m 0.48,
 * gemma-3-1b 0.82, gemma-3-4b-it-qat 0.1875, gemma-3-4b 0.5, gemma-3n-E2B and
 * gemma-3n-E4B 0.5). 0, or -1 with one errf() line naming the flag (a
 * usage error: a bad number, or auto without a match). The one place the
 * stages and the pipeline's preflight resolve it. */
int stage_fp16_scale(const char *model, const char *arg, double *alpha);
/* --clamp V: V in (0, 65504]; 0, or -1 with errf() naming the flag. */
int stage_clamp(const char *arg, double *v);

/* Defaults: context 512, batch 64, everything else unset. */
void stage_opts_init(stage_opts *o);
/* Parse the LUT spec, --fp16-scale and --clamp (usage errors exit 2),
 * resolve and open the model, pick the prefix, create the output and
 * quality directories (when set). Dies with one line on bad input. --fp16-scale on a model
 * without Gemma's post norms is bad data (exit 1). */
void stage_open(stage_opts *o);
void stage_close(stage_opts *o);
/* embed and lmhead: check --lut over the table's or the head's tensors and
 * resolve a spec without a group (lutcheck.h); dies with one line. */
typedef enum stage_lut_part { STAGE_LUT_EMBED, STAGE_LUT_HEAD } stage_lut_part;
void stage_resolve_lut(stage_opts *o, stage_lut_part part);

/* Files of part `part` (e.g. "FFN", chunk k of n; 0, 0 for unchunked):
 * "<output>/<base>.mlpackage" and "<quality-dir or output>/<base>.quality.json". */
typedef struct stage_part {
	char *package, *quality, *cache_dir;
} stage_part;
void stage_part_paths(const stage_opts *o, const char *part, int chunk, int nchunks, stage_part *p);
void stage_part_release(stage_part *p);
/* The write options for graph_write_*: LUT, threads, cache, sidecar. */
graph_write_opts stage_write_opts(const stage_opts *o, const stage_part *p);

/* ffn (GRAPH_DECODE) and prefill (GRAPH_PREFILL): parse the flags, plan the
 * chunks (--chunk N|auto, --plan for ffn), write each chunk and print its
 * path. --rotate writes the Gemma 3 rotate variant (<p>_FFN_rotate_...,
 * <p>_prefill_rotate_...); --monolithic the whole model in one package. */
int chunk_stage_main(int argc, char **argv, graph_mode mode);

#endif
