/* dist.h: a conversion as ANEMLL ships it to Hugging Face (prepare_hf.sh).
 *
 * Input: a conversion directory (meta.yaml and what it names). Output, in
 * DIST (anemll-interface.md 11; prepare_hf.sh settles what the spec leaves
 * open):
 *   standard/  meta.yaml, the tokenizer files the conversion has,
 *              config.json as prepare_hf regenerates it, README.md (the
 *              model card, card.h), and each part as <name>.mlmodelc.zip;
 *   ios/       the same with each part as its .mlmodelc directory
 *              (ANEMLL Chat on iOS loads them unzipped).
 * The parts are exactly those meta.yaml names: chunked, the embeddings, the
 * LM head and FFN chunks 1..num_chunks (with split_rotate, each chunk's _rot
 * file too, found from `pf` as the runtimes do); monolithic, the one
 * monolithic_model. Unlike prepare_hf, which warns and ships what it finds,
 * every check comes first and any failure stops everything: a part missing
 * or not compiled (meta.yaml naming a .mlpackage), a weight.bin over the
 * platform limit, tokenizer_config.json missing (prepare_hf copies it
 * unconditionally; the runtimes need it), an archive that does not read
 * back. Both layouts are built as "<dir>.tmp.<pid>" and renamed only when
 * complete, so DIST never holds a half-written layout.
 * Not shipped: prepare_hf's copies of chat.py/chat_full.py (ANEMLL's code;
 * the card says where to get them), its README copy at the DIST root and
 * its zip of the whole standard/ folder (a second copy of every weight).
 */
#ifndef ANEMAKE_DIST_H
#define ANEMAKE_DIST_H

#include "anemll/metayaml.h"

#include <stdint.h>
#include <time.h>

typedef struct dist_part {
	char *file;            /* "<base>.mlmodelc", as meta.yaml names it */
	char *path;            /* in the conversion directory */
	const char *role;      /* "embeddings", "FFN chunk", "rotate functions of FFN chunk" (split rotate), "LM head", "monolithic" */
	int chunk;             /* 1-based for chunks, else 0 */
	int lut, lut_group;    /* bits (META_LUT_NONE: fp16) and meta's per_channel (META_ABSENT: not given) */
	uint64_t bytes;        /* the .mlmodelc directory, all files */
	uint64_t weight_bytes; /* weights/weight.bin (0 when absent) */
	uint64_t zip_bytes;    /* the archive, once written */
} dist_part;

typedef struct dist_plan {
	char *input;           /* the conversion directory */
	metayaml meta;
	dist_part *parts;
	size_t nparts;
	char **files;          /* tokenizer and support files present, in prepare_hf's order */
	size_t nfiles;
	char *name;            /* repository name (default: meta's name "_" version) */
	char *org;
} dist_plan;

/* Read <input>/meta.yaml and find what it names; check that every part is
 * a compiled .mlmodelc and every weight.bin is at most max_weight_mb.
 * name NULL: ANEMLL's default. 0, or -1 with errf() naming the file. */
int dist_plan_open(dist_plan *p, const char *input, const char *org, const char *name, double max_weight_mb);
void dist_plan_close(dist_plan *p);

/* prepare_hf's config.json for the iOS tokenizer (create_config_json.py:
 * json.dump with indent 2, no final newline): gemma/GemmaTokenizer when the
 * architecture starts with "gemma", else llama/LlamaTokenizer; for the
 * families ANEMLL lacks, which prepare_hf never saw, the architecture
 * table's (arch_tokenizer_config, as metagen writes it). Caller frees. */
char *dist_config_json(const metayaml *m);

/* The two layouts under construction: "<final>.tmp.<pid>" until committed. */
typedef struct dist_out {
	char *standard, *ios;          /* final paths */
	char *standard_tmp, *ios_tmp;  /* NULL once committed or aborted */
} dist_out;

/* Build everything but README.md in temporaries under `dist` (created when
 * missing): the files, config.json, the parts (zips dated mtime, each read
 * back). Fills each part's zip_bytes. On failure nothing is left. */
int dist_stage(dist_plan *p, const char *dist, time_t mtime, dist_out *o);
/* Write `card` as README.md into both, then rename both into place. */
int dist_commit(dist_out *o, const char *card);
/* Remove what is left of the temporaries and free o. */
void dist_out_release(dist_out *o);

#endif
