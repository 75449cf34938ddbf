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

#include "cli.h"
#include "graph.h"
#include "hfmodel.h"
#include "lut.h"
#include "weights.h"

typedef struct stage_opts {
	/* flags */
	const char *model, *output, *prefix, *lut_arg, *lut_cache;
	int context, batch, threads;
	/* set by stage_open */
	lut_spec lut;
	char *model_dir;
	hf_model hf;
	const char *prefix_eff; /* --prefix, else the architecture's */
} stage_opts;

#define STAGE_OPT_MODEL(o) {"model", "DIR|ORG/NAME", CLI_STRING, &(o)->model, 1, 0, 0, "HuggingFace model directory, or an id in the local HF cache (never downloaded)"}
#define STAGE_OPT_OUTPUT(o, required) {"output", "DIR", CLI_STRING, &(o)->output, required, 0, 0, "directory to write into (created if missing)"}
#define STAGE_OPT_PREFIX(o) {"prefix", "NAME", CLI_STRING, &(o)->prefix, 0, 0, 0, "file-name prefix (default by architecture: llama, qwen, qwen25, gemma3)"}
#define STAGE_OPT_CONTEXT(o, help) {"context-length", "N", CLI_INT, &(o)->context, 0, 1, 1 << 20, help " (default 512)"}
#define STAGE_OPT_BATCH(o, help) {"batch-size", "N", CLI_INT, &(o)->batch, 0, 1, 4096, help " (default 64)"}
#define STAGE_OPT_LUT(o, what) {"lut", "SPEC", CLI_STRING, &(o)->lut_arg, 0, 0, 0, "palettize " what ": BITS[,GROUP] (GROUP 0|t|tensor: per tensor; default group 8), or none"}
#define STAGE_OPT_LUT_CACHE(o) {"lut-cache", "DIR", CLI_STRING, &(o)->lut_cache, 0, 0, 0, "LUT cache directory (default OUTPUT/" WEIGHTS_CACHE_SUBDIR "; none: off)"}
#define STAGE_OPT_THREADS(o) {"threads", "N", CLI_INT, &(o)->threads, 0, 0, 1024, "quantizer threads (default 0: all cores); the output does not depend on it"}

/* Defaults: context 512, batch 64, everything else unset. */
void stage_opts_init(stage_opts *o);
/* Parse the LUT spec, resolve and open the model, pick the prefix, create
 * the output directory (when set). Dies with one line on bad input. */
void stage_open(stage_opts *o);
void stage_close(stage_opts *o);

/* Files of part `part` (e.g. "FFN", chunk k of n; 0, 0 for unchunked):
 * "<output>/<base>.mlpackage" and "<output>/<base>.quality.json". */
typedef struct stage_part {
	char *package, *quality, *cache_dir;
} stage_part;
void stage_part_paths(const stage_opts *o, const char *part, int chunk, int nchunks, stage_part *p);
void stage_part_release(stage_part *p);
/* The write options for graph_write_*: LUT, threads, cache, sidecar. */
graph_write_opts stage_write_opts(const stage_opts *o, const stage_part *p);

/* ffn (GRAPH_DECODE) and prefill (GRAPH_PREFILL): parse the flags, plan the
 * chunks (--chunk N|auto, --plan for ffn), write each chunk and print its path. */
int chunk_stage_main(int argc, char **argv, graph_mode mode);

#endif
