/* lutcheck.h: every tensor a LUT spec applies to, and the group that fits.
 *
 * Which tensors get palettized is decided while a part is built (weights.h:
 * rank, size, the architecture's threshold; the LM head split into its
 * heads). lutcheck runs that same builder over the whole model, embeddings,
 * every layer and the LM head (graph_build_monolithic), in check-only mode:
 * shapes from the safetensors headers, no weight read or written, so it
 * takes a moment even for a large model, and the plan and the stages can
 * never disagree about a tensor.
 *
 * Then, per spec (parts sharing a name share the spec):
 *  - a group given explicitly must divide every tensor's output channels,
 *    else one errf() line: "LUT2=4,8: model.layers.0.mlp.gate_proj.weight
 *    has 172 output channels; groups that divide it: 1, 2, 4; try LUT2=4,4"
 *    (the suggestion divides every tensor of the spec);
 *  - a spec with no group (ANEMLL's default 8) takes the largest group <= 8
 *    dividing all of them, for every part of the model alike, with one info
 *    line when that is not 8 (ANEMLL writes such a model unquantized).
 * Each override (lutover.h) is a spec of its own over the tensors it wins;
 * one that wins none of the model's palettizable tensors is an error.
 */
#ifndef ANEMAKE_LUTCHECK_H
#define ANEMAKE_LUTCHECK_H

#include "checkpoint/hfmodel.h"
#include "convert/lut.h"
#include "convert/lutover.h"

typedef struct lutcheck_part {
	lut_spec *spec;   /* NULL or bits 0: not palettized; the group is resolved in place */
	const char *name; /* how messages name it: "--lut", "--lut-lmhead", "LUT2" (then NAME=ARG) */
	const char *arg;  /* the spec as given, for messages (NULL: formatted) */
} lutcheck_part;

typedef struct lutcheck {
	lutcheck_part embed, layers, head;
	lut_overrides *ov; /* NULL or none: no overrides; their groups are resolved in place */
	int context;
	int note_level; /* info() level of the line saying which group was chosen (the plan's 1, a stage's 2) */
} lutcheck;

/* The whole model through the builder in check-only mode: every tensor a
 * spec or override applies to in w->targets (w is initialised here; free
 * with weights_release). 0, or -1 with errf(). */
struct weights_ctx;
int lutcheck_collect(const hf_model *hf, const lutcheck *lc, struct weights_ctx *w);

/* 0 with every spec's group resolved, or -1 with one errf() line. */
int lutcheck_run(const hf_model *hf, lutcheck *lc);

#endif
