/* hfmodel.c: resolve a model argument offline and open config + weights.
 *
 * Resolution never touches the network: a directory is used as is; an
 * "org/name" id is looked up in the local HuggingFace cache (hub layout:
 * models--org--name/{refs/main, snapshots/<rev>/}). Opening checks every
 * tensor the architecture's traits call for (norms, projections, per-head
 * norms, biases) against the shapes config.json implies, so a wrong or
 * incomplete checkpoint fails here, in one line, before any stage work.
 */
#include "checkpoint/hfmodel.h"
#include "base/fsutil.h"
#include "base/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h> /* PATH_MAX */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Resolving "org/name" in the HuggingFace cache                       */

int hf_is_repo_id(const char *s)
{
	if (!*s || strchr("/~.", s[0]))
		return 0;
	const char *slash = strchr(s, '/');
	if (!slash || slash[1] == 0 || strchr(slash + 1, '/') || strstr(s, ".."))
		return 0;
	for (const char *p = s; *p; p++)
		if (!(p == slash || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("._-", *p)))
			return 0;
	return 1;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

char *hf_model_hub_id(const char *dir)
{
	char real[PATH_MAX];
	const char *path = realpath(dir, real) ? real : dir;
	const char *snap = strstr(path, "/snapshots/"), *start = snap;
	while (start && start > path && start[-1] != '/')
		start--;
	if (!snap || strncmp(start, "models--", 8) != 0)
		return NULL;
	char *repo = xstrndup(start + 8, (size_t)(snap - start - 8)), *sep = strstr(repo, "--");
	while (sep && strstr(sep + 2, "--"))
		sep = strstr(sep + 2, "--");
	char *id = sep && sep > repo && sep[2] ? (*sep = 0, xasprintf("%s/%s", repo, sep + 2)) : NULL;
	free(repo);
	return id;
}

/* A copy of a model directory under another name is the same model: its
 * converted names must not change with the folder's name. */
char *hf_model_identity(const char *dir)
{
	char *id = hf_model_hub_id(dir);
	if (id)
		return id;
	char *path = path_join(dir, "config.json"), *text;
	size_t n;
	if (path_exists(path) && read_file(path, FS_MAX_TEXT, &text, &n) == 0) {
		cJSON *root = cJSON_ParseWithLength(text, n);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
		if (cJSON_IsString(v) && hf_is_repo_id(v->valuestring))
			id = xstrdup(v->valuestring);
		cJSON_Delete(root);
		free(text);
	}
	free(path);
	return id;
}

/* The hub cache directory, as huggingface_hub computes it. */
static char *hub_cache_dir(void)
{
	const char *v;
	if ((v = env("HF_HUB_CACHE")) || (v = env("HUGGINGFACE_HUB_CACHE")))
		return xstrdup(v);
	if ((v = env("HF_HOME")))
		return path_join(v, "hub");
	if ((v = env("XDG_CACHE_HOME")))
		return path_join(v, "huggingface/hub");
	return path_join((v = env("HOME")) ? v : "~", ".cache/huggingface/hub");
}

/* The revision refs/main names, if it is a snapshot we have. */
static char *ref_main_snapshot(const char *repo, const char *snaps)
{
	char *ref = path_join(repo, "refs/main"), *text = NULL, *found = NULL;
	size_t n;
	if (path_exists(ref) && read_file(ref, FS_MAX_TEXT, &text, &n) == 0) {
		while (n && strchr(" \t\r\n", text[n - 1]))
			text[--n] = 0;
		if (n && !strchr(text, '/') && strcmp(text, ".") && strcmp(text, "..")) {
			char *dir = path_join(snaps, text);
			if (is_dir(dir))
				found = dir;
			else
				free(dir);
		}
	}
	free(text);
	free(ref);
	return found;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Only one snapshot: use it; several: list them in the error. */
static int only_snapshot(const char *id, const char *snaps, char **dir)
{
	DIR *d = opendir(snaps);
	if (!d)
		return errf("cannot open directory '%s':", snaps);
	char **names = NULL;
	size_t n = 0, cap = 0, len = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			GROW(names, cap, n + 1);
			names[n++] = xstrdup(e->d_name);
			len += strlen(e->d_name) + 2;
		}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof *names, cmp_str);
	int rc = 0;
	if (n == 1) {
		*dir = path_join(snaps, names[0]);
	} else {
		char *list = xcalloc(len + 1, 1);
		for (size_t i = 0; i < n; i++)
			strcat(strcat(list, i ? ", " : ""), names[i]);
		rc = n ? errf("model '%s': %zu snapshots in '%s' (%s) and refs/main names none of "
		              "them: pass the snapshot directory instead", id, n, snaps, list)
		       : errf("model '%s': no snapshot in '%s'; anemake never downloads: fetch it "
		              "with `huggingface-cli download %s`", id, snaps, id);
		free(list);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int from_cache(const char *id, char **dir)
{
	char *hub = hub_cache_dir();
	char *flat = xasprintf("models--%s", id);
	char *p = strchr(flat, '/');
	ASSERT(p);
	char *repo = xasprintf("%.*s--%s", (int)(p - flat), flat, p + 1);
	char *where = path_join(hub, repo);
	char *snaps = path_join(where, "snapshots");
	int rc = 0;
	if (!is_dir(snaps))
		rc = errf("model '%s' not found: no such directory, and not in the HuggingFace cache "
		          "(looked for '%s'); anemake never downloads: fetch it with "
		          "`huggingface-cli download %s`", id, snaps, id);
	else if (!(*dir = ref_main_snapshot(where, snaps)))
		rc = only_snapshot(id, snaps, dir);
	free(snaps);
	free(where);
	free(repo);
	free(flat);
	free(hub);
	return rc;
}

int hf_model_resolve(const char *arg, char **dir)
{
	*dir = NULL;
	if (is_dir(arg)) {
		*dir = xstrdup(arg);
		return 0;
	}
	if (path_exists(arg))
		return errf("model '%s' is not a directory", arg);
	if (!hf_is_repo_id(arg))
		return errf("model directory '%s' does not exist", arg);
	return from_cache(arg, dir);
}

/* ------------------------------------------------------------------ */
/* Required tensors                                                    */

/* One expected tensor: name suffix, whether the traits call for it, shape. */
typedef struct want {
	const char *suffix;
	int on;
	int rank;
	uint64_t d0, d1;
} want;

static int check_tensor(const hf_model *m, const char *name, int rank, uint64_t d0, uint64_t d1)
{
	const st_tensor *t = st_get(&m->st, name);
	if (!t || st_check_convertible(t) != 0)
		return -1;
	if (t->rank == rank && t->shape[0] == d0 && (rank == 1 || t->shape[1] == d1))
		return 0;
	char got[96], exp[64];
	if (rank == 1)
		snprintf(exp, sizeof exp, "[%llu]", (unsigned long long)d0);
	else
		snprintf(exp, sizeof exp, "[%llu,%llu]", (unsigned long long)d0, (unsigned long long)d1);
	return errf("%s: tensor '%s' has shape %s, but %s implies %s", t->file, name,
	            st_shape_str(t, got, sizeof got), m->cfg.path, exp);
}

static int check_layer(const hf_model *m, int layer)
{
	const hf_config *c = &m->cfg;
	const arch_info *a = c->arch;
	uint64_t H = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size;
	uint64_t D = (uint64_t)c->head_dim, Q = (uint64_t)c->num_attention_heads * D;
	uint64_t KV = (uint64_t)c->num_key_value_heads * D;
	int ab = c->attention_bias, mb = c->mlp_bias, split = !a->fused_proj;
	if (a->fused_proj && (ab || mb))
		return errf("%s: %s is true: biases of the fused qkv_proj / gate_up_proj are not supported",
		            c->path, ab ? "attention_bias" : "mlp_bias");
	const want w[] = {
		{"input_layernorm.weight", !a->post_norms, 1, H, 0},
		{"post_attention_layernorm.weight", 1, 1, H, 0},
		{"pre_feedforward_layernorm.weight", a->four_norms, 1, H, 0},
		{"post_feedforward_layernorm.weight", a->four_norms || a->post_norms, 1, H, 0},
		{"self_attn.q_proj.weight", split, 2, Q, H},
		{"self_attn.k_proj.weight", split, 2, KV, H},
		{"self_attn.v_proj.weight", split, 2, KV, H},
		{"self_attn.qkv_proj.weight", !split, 2, Q + 2 * KV, H},
		{"self_attn.o_proj.weight", 1, 2, H, Q},
		{"self_attn.q_norm.weight", a->qk_norm, 1, D, 0},
		{"self_attn.k_norm.weight", a->qk_norm, 1, D, 0},
		{"self_attn.q_norm.weight", a->qk_norm_full, 1, Q, 0},
		{"self_attn.k_norm.weight", a->qk_norm_full, 1, KV, 0},
		{"self_attn.q_proj.bias", ab, 1, Q, 0},
		{"self_attn.k_proj.bias", ab, 1, KV, 0},
		{"self_attn.v_proj.bias", ab, 1, KV, 0},
		{"self_attn.o_proj.bias", ab && a->o_bias_with_attention_bias, 1, H, 0},
		{"mlp.gate_proj.weight", split, 2, I, H},
		{"mlp.up_proj.weight", split, 2, I, H},
		{"mlp.gate_up_proj.weight", !split, 2, 2 * I, H},
		{"mlp.down_proj.weight", 1, 2, H, I},
		{"mlp.gate_proj.bias", mb, 1, I, 0},
		{"mlp.up_proj.bias", mb, 1, I, 0},
		{"mlp.down_proj.bias", mb, 1, H, 0},
	};
	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
		if (!w[i].on)
			continue;
		char *name = xasprintf("%slayers.%d.%s", m->prefix, layer, w[i].suffix);
		int rc = check_tensor(m, name, w[i].rank, w[i].d0, w[i].d1);
		free(name);
		if (rc)
			return -1;
	}
	return 0;
}

/* Where the decoder lives: the first prefix holding embed_tokens.weight.
 * Multimodal Gemma3 checkpoints use "language_model.model." (transformers
 * < 4.52) or "model.language_model." (later). */
static int find_prefix(hf_model *m)
{
	static const char *const flat[] = {"model.", NULL};
	static const char *const nested[] = {"language_model.model.", "model.language_model.",
	                                     "model.", NULL};
	const char *const *cand = *m->cfg.tensor_scope ? nested : flat;
	for (int i = 0; cand[i]; i++) {
		char *name = xasprintf("%sembed_tokens.weight", cand[i]);
		int found = st_find(&m->st, name) != NULL;
		free(name);
		if (found) {
			m->prefix = cand[i];
			return 0;
		}
	}
	return errf("tensor '%sembed_tokens.weight' not found in '%s'", cand[0], m->dir);
}

/* lm_head.weight, unless tied; an untied model without one reuses the
 * embeddings as ANEMLL does. */
static int find_head(hf_model *m)
{
	const hf_config *c = &m->cfg;
	const char *name = *c->tensor_scope ? "language_model.lm_head.weight" : "lm_head.weight";
	const st_tensor *t = NULL;
	if (!c->tie_word_embeddings && !(t = st_find(&m->st, name)))
		t = st_find(&m->st, name = "lm_head.weight");
	m->lm_head_tied = t == NULL;
	m->lm_head = t ? t : m->embed;
	if (!t)
		return 0;
	return check_tensor(m, name, 2, (uint64_t)c->vocab_size, (uint64_t)c->hidden_size);
}

static int check_tensors(hf_model *m)
{
	const hf_config *c = &m->cfg;
	if (find_prefix(m) != 0)
		return -1;
	char *emb = xasprintf("%sembed_tokens.weight", m->prefix);
	char *norm = xasprintf("%snorm.weight", m->prefix);
	int rc = check_tensor(m, emb, 2, (uint64_t)c->vocab_size, (uint64_t)c->hidden_size);
	if (rc == 0)
		rc = check_tensor(m, norm, 1, (uint64_t)c->hidden_size, 0);
	m->embed = st_find(&m->st, emb);
	m->norm = st_find(&m->st, norm);
	free(emb);
	free(norm);
	for (int l = 0; rc == 0 && l < c->num_hidden_layers; l++)
		rc = check_layer(m, l);
	return rc ? rc : find_head(m);
}

/* ------------------------------------------------------------------ */
/* Public                                                              */

int hf_model_open(hf_model *m, const char *dir)
{
	memset(m, 0, sizeof *m);
	m->dir = xstrdup(dir);
	char *cfg = path_join(dir, "config.json");
	int rc = hf_config_load(&m->cfg, cfg);
	free(cfg);
	if (rc == 0)
		rc = st_open(&m->st, dir);
	if (rc == 0)
		rc = check_tensors(m);
	if (rc)
		hf_model_close(m);
	return rc;
}

void hf_model_close(hf_model *m)
{
	if (!m)
		return;
	hf_config_release(&m->cfg);
	st_close(&m->st);
	free(m->dir);
	memset(m, 0, sizeof *m);
}

const st_tensor *hf_model_tensor(const hf_model *m, const char *suffix)
{
	char *name = xasprintf("%s%s", m->prefix, suffix);
	const st_tensor *t = st_find(&m->st, name);
	if (!t)
		errf("tensor '%s' not found in '%s'", name, m->dir);
	free(name);
	return t;
}

const st_tensor *hf_layer_tensor(const hf_model *m, int layer, const char *suffix)
{
	char *s = xasprintf("layers.%d.%s", layer, suffix);
	const st_tensor *t = hf_model_tensor(m, s);
	free(s);
	return t;
}

const st_tensor *hf_layer_proj(const hf_model *m, int layer, const char *suffix, uint64_t *row0, uint64_t *rows)
{
	const hf_config *c = &m->cfg;
	uint64_t D = (uint64_t)c->head_dim, Q = (uint64_t)c->num_attention_heads * D;
	uint64_t KV = (uint64_t)c->num_key_value_heads * D, I = (uint64_t)c->intermediate_size;
	static const char *const parts[] = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
	                                    "self_attn.v_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight"};
	const uint64_t begin[] = {0, Q, Q + KV, 0, I}, len[] = {Q, KV, KV, I, I};
	for (int i = 0; c->arch->fused_proj && i < 5; i++)
		if (streq(suffix, parts[i])) {
			*row0 = begin[i];
			*rows = len[i];
			return hf_layer_tensor(m, layer, i < 3 ? "self_attn.qkv_proj.weight" : "mlp.gate_up_proj.weight");
		}
	const st_tensor *t = hf_layer_tensor(m, layer, suffix);
	*row0 = 0;
	*rows = t ? t->shape[0] : 0;
	return t;
}
