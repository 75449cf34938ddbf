/* inventory.h: what a conversion's output folder holds, and the facts its
 * packages state.
 *
 * A folder holds the parts of one or more conversions in ANEMLL's names
 * (anemll-interface.md 0; anemll.h):
 *   <p>_embeddings[_lut<b>]    <p>_lm_head[_lut<b>]    <p>_monolithic_full[_lut<b>]
 *   <p>_{FFN_PF,FFN,prefill,FFN_rotate,prefill_rotate}[_lut<b>]_chunk_<ii>of<NN>
 *   <p>_FFN_PF[_lut<b>]_chunk_<ii>of<NN>_rot          (split rotate)
 * each as a .mlpackage, its compiled .mlmodelc, or both. inventory_list()
 * finds them by name; metagen chooses among them and the smoketest runs them.
 *
 * The rest reads what meta.yaml states from the packages themselves (never
 * from flags that could disagree with them): LUT bits from the name, checked
 * against com.anemll.lut_bits and the palettized weights; the LUT group size
 * from the shapes of those weights (indices rows / LUT rows); context length
 * from the infer causal_mask [1,1,1,C]; batch from the prefill
 * hidden_states [1,B,H] (monolithic: input_ids [1,B]); the LM head's split
 * from its outputs (argmax heads: from its metadata). These readers serve
 * the stages: a package that contradicts itself or the others ends the
 * program with one line naming it (die), as any bad input does.
 */
#ifndef ANEMAKE_INVENTORY_H
#define ANEMAKE_INVENTORY_H

#include "coreml/mlmodel.h"

#include <stddef.h>

enum { INV_PKG = 1, INV_MODELC = 2 };

/* One part, however many of its extensions are there. */
typedef struct inv_file {
	char *base;        /* file name without extension */
	char *prefix;      /* the part of base before "_<kind>" */
	const char *kind;  /* embeddings, lm_head, FFN_PF, FFN, prefill, FFN_rotate, prefill_rotate, monolithic_full */
	int lut, chunk, nchunks, rot; /* lut 0: none; chunk, nchunks 0: unchunked */
	int exts;          /* INV_* present */
} inv_file;

typedef struct inventory {
	inv_file *v;       /* sorted by base, so choices do not depend on readdir order */
	size_t n, cap;
	char *dir;
} inventory;

/* The parts in dir whose extensions meet `exts` (INV_PKG, INV_MODELC or
 * both), with file prefix `prefix` (NULL: any; the prefix is then the
 * shortest that leaves a part name). -1 with errf() when dir cannot be read;
 * an empty inventory is no error. */
int inventory_list(inventory *inv, const char *dir, const char *prefix, int exts);
void inventory_release(inventory *inv);
/* The part of `kind` with exactly these numbers, or NULL. */
const inv_file *inventory_find(const inventory *inv, const char *kind, int lut, int chunk, int nchunks, int rot);
/* "no LUT" or "LUT <b>", for messages (a few may be in use at once). */
const char *inventory_lut_word(int bits);

/* One part read from its package. */
typedef struct inv_part {
	char *pkg_path;    /* <dir>/<base>.mlpackage: where the facts come from */
	char *file;        /* the name meta.yaml gives it (.mlmodelc, else .mlpackage) */
	ml_model *model;
	int lut;           /* from the name */
	int group;         /* LUT group size from the weights; -1 unknown */
} inv_part;

/* Read <base>.mlpackage (it must be there). The name is the .mlmodelc when
 * compiled, else with allow_uncompiled the .mlpackage (then *uncompiled = 1).
 * Name, metadata and weights must agree about the LUT (the monolithic model
 * mixes LUTs by design: inv_mono_luts). */
void inv_part_open(inv_part *p, const inventory *inv, const inv_file *f, int allow_uncompiled, int *uncompiled);
void inv_part_close(inv_part *p);
/* A com.anemll.* integer of p, or `absent`. */
int inv_meta_int(const inv_part *p, const char *key, int absent);
/* The shape of input (which 0), output (1) or state (2) `name` of function
 * fn (NULL: the top level); NULL when absent. */
const ml_shape *inv_feature_shape(const ml_model *m, const char *fn, int which, const char *name);
/* com.anemll.context_length, when stated, must be `context`. */
void inv_check_context(const inv_part *p, int context);

/* The FFN chunks of one LUT variant and chunk count. */
typedef struct inv_chunks {
	int n, lut, combined, group;
	inv_part *infer, *prefill;      /* per chunk; prefill == infer when combined */
	char *ffn_name, *pf_name;       /* as meta.yaml names chunk 1 */
	int context, batch, hidden, update_mask, single_cache;
} inv_chunks;

/* Every chunk of c1's set (combined FFN_PF, or FFN with its prefill files),
 * which must all be there and agree on context, batch, hidden size, LUT
 * group and their position in the metadata. */
void inv_chunks_open(inv_chunks *c, const inventory *inv, const inv_file *c1, int allow_uncompiled, int *uncompiled);
/* Split rotate: the _rot files of every chunk of c (r1: chunk 1's); sets pf_name. */
void inv_chunks_open_rot(inv_chunks *c, const inventory *inv, const inv_file *r1, int allow_uncompiled,
			 int *uncompiled);
void inv_chunks_close(inv_chunks *c);
/* One state for all layers (kv_cache_0) where the architecture could have a local/global pair. */
int inv_single_cache(const ml_model *m, const char *fn);
/* The embeddings must share the chunks' context and take their batch. */
void inv_check_embeddings(const inv_part *e, const inv_chunks *c);

/* The LM head: logits1..logitsK [1,1,n_k], or argmax_idx/argmax_val. */
typedef struct inv_head {
	int splits, vocab, argmax;
	int *sizes;
} inv_head;

/* The outputs of function fn of p (NULL: the only one). config_vocab is the
 * checkpoint's vocab_size (config_path names it): argmax heads default to it,
 * logit heads are warned about when they differ. Caller frees h->sizes. */
void inv_head_read(inv_head *h, const inv_part *p, const char *fn, int config_vocab, const char *config_path);
/* The chunked layout's LM head, which must take the chunks' hidden state. */
void inv_head_read_chunked(inv_head *h, const inv_part *p, const inv_chunks *c, int config_vocab,
			   const char *config_path);

/* The monolithic model: context, batch, prefill slicing, cache kind. */
typedef struct inv_mono_io {
	int context, batch, update_mask, single_cache;
} inv_mono_io;
void inv_mono_read_io(const inv_part *p, inv_mono_io *io);

/* LUT of one class of a monolithic model's weights; bits -1: none palettized. */
typedef struct inv_lut {
	int bits, group;
} inv_lut;
/* ANEMLL's --lut-embeddings/--lut-lmhead apply to the weights whose names
 * hold embed_tokens / lm_head; everything else has the main LUT. */
void inv_mono_luts(const inv_part *p, inv_lut *main, inv_lut *embed, inv_lut *head);

#endif
