/* hfmodel.h: find a HuggingFace model on disk and open it in one call.
 *
 * A model argument is a directory, or a hub id "org/name" looked up OFFLINE
 * in the HuggingFace cache:
 *   $HF_HUB_CACHE (or legacy $HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub,
 *   else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub;
 *   inside it models--org--name/snapshots/<rev>/, where <rev> is the one
 *   refs/main names, else the only snapshot there is.
 * anemake never downloads anything: a missing model is an error that says
 * where it looked and how to fetch it.
 *
 * hf_model_open then reads config.json and the safetensors, and checks that
 * every tensor the architecture needs is present, convertible and shaped as
 * the config says, so stages can fetch tensors without further checks.
 * Tensor names: decoder tensors live under "model." ("language_model.model."
 * or "model.language_model." for multimodal Gemma3 checkpoints), the head is
 * "lm_head.weight" (optional: absent or tie_word_embeddings means the
 * embedding matrix is reused).
 */
#ifndef ANEMAKE_HFMODEL_H
#define ANEMAKE_HFMODEL_H

#include "checkpoint/hfconfig.h"
#include "checkpoint/safetensors.h"

/* "org/name": one slash, neither part empty, hub-legal characters only
 * (letters, digits, . _ -), no "..", and not a path (ANEMLL: no leading
 * '/', '~' or '.'). */
int hf_is_repo_id(const char *s);

/* Resolve a --model argument to a directory (caller frees *dir). */
int hf_model_resolve(const char *arg, char **dir);

/* "org/name" when dir (after realpath) is a snapshot in a HuggingFace cache,
 * .../models--org--name/snapshots/<rev>; else NULL. Caller frees. */
char *hf_model_hub_id(const char *dir);

/* The model's identity where it has one, as "org/name": its HF cache id,
 * else config.json's _name_or_path when that is a repo id; NULL otherwise
 * (then the directory's name is all there is). Caller frees. */
char *hf_model_identity(const char *dir);

typedef struct hf_model {
	char *dir;                 /* model directory */
	hf_config cfg;
	st_model st;
	const char *prefix;        /* decoder tensors are "<prefix>layers.N...", "<prefix>norm.weight" */
	const st_tensor *embed;    /* embed_tokens.weight [vocab, hidden] */
	const st_tensor *norm;     /* final norm.weight [hidden] */
	const st_tensor *lm_head;  /* [vocab, hidden]; == embed when tied */
	int lm_head_tied;
} hf_model;

/* Open the model in `dir` (see hf_model_resolve for arguments). 0, or -1
 * with one error line naming the file/tensor; *m is then released. */
int hf_model_open(hf_model *m, const char *dir);

/* Free everything; NULL-tolerant, idempotent. */
void hf_model_close(hf_model *m);

/* "<prefix><suffix>", e.g. suffix "norm.weight"; records an error naming
 * the tensor and the model directory when absent. */
const st_tensor *hf_model_tensor(const hf_model *m, const char *suffix);

/* "<prefix>layers.<layer>.<suffix>", e.g. suffix "self_attn.q_proj.weight". */
const st_tensor *hf_layer_tensor(const hf_model *m, int layer, const char *suffix);

/* A projection weight of layer `layer` by its unfused name
 * ("self_attn.q_proj.weight", "mlp.up_proj.weight", ...): the tensor that
 * holds it and its rows [*row0, *row0 + *rows) there. Phi3 (arch
 * fused_proj) stacks q, k, v in self_attn.qkv_proj and gate, up in
 * mlp.gate_up_proj; the converter splits them by rows. NULL with errf()
 * when the tensor is missing. */
const st_tensor *hf_layer_proj(const hf_model *m, int layer, const char *suffix, uint64_t *row0, uint64_t *rows);

#endif
