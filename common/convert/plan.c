/* plan.c: ANEMLL's chunk-size rule (see plan.h). */
#include "convert/plan.h"
#include "checkpoint/arch.h"
#include "base/fsutil.h"
#include "base/util.h"
#include "convert/graph.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t u(int v) { return v > 0 ? (uint64_t)v : 0; }

uint64_t plan_layer_bytes(const hf_config *c)
{
	uint64_t h = u(c->hidden_size), d = u(c->head_dim), q = u(c->num_attention_heads) * d,
		 kv = u(c->num_key_value_heads) * d, i = u(c->intermediate_size);
	uint64_t p = h * q + 2 * h * kv + q * h + 3 * h * i;
	if (c->attention_bias)
		p += q + 2 * kv + (c->arch->o_bias_with_attention_bias ? h : 0);
	if (c->mlp_bias)
		p += 2 * i + h;
	if (c->arch->qk_norm)
		p += 2 * d;
	if (c->arch->qk_norm_full)
		p += q + kv;
	p += 2 * h + (c->arch->four_norms ? 2 * h : 0);
	return p * 2;
}

uint64_t plan_max_chunk_bytes(const hf_config *c, int n, int lut_bits)
{
	int first, count;
	graph_chunk_layers(c->num_hidden_layers, n, 0, &first, &count); /* chunk 0 is the largest */
	uint64_t bytes = plan_layer_bytes(c) * u(count);
	return lut_bits > 0 && lut_bits < 16 ? bytes * (uint64_t)lut_bits / 16 : bytes;
}

int plan_recommend(const hf_config *c, int lut_bits, double max_chunk_mb, double overhead)
{
	for (int n = 1; n <= c->num_hidden_layers; n++) {
		double bytes = (double)plan_max_chunk_bytes(c, n, lut_bits) * overhead;
		if ((uint64_t)bytes <= (uint64_t)(max_chunk_mb * 1024 * 1024))
			return n;
	}
	return c->num_hidden_layers;
}

void plan_print(FILE *out, const hf_config *c, int lut_bits, double max_chunk_mb, double overhead)
{
	static const int luts[] = {16, 8, 6, 4};
	fprintf(out, "%s: %d layers, %.1f MB per layer (fp16)\n", c->model_type, c->num_hidden_layers,
		plan_layer_bytes(c) / 1048576.0);
	fprintf(out, "largest chunk in MB (x%.2f overhead):\n  chunks      fp16      LUT8      LUT6      LUT4\n", overhead);
	for (int n = 1; n <= 12 && n <= c->num_hidden_layers; n++) {
		fprintf(out, "  %6d", n);
		for (int k = 0; k < 4; k++)
			fprintf(out, "  %8.1f", (double)plan_max_chunk_bytes(c, n, luts[k]) * overhead / 1048576.0);
		fprintf(out, "\n");
	}
	fprintf(out, "recommended at %s with at most %g MB per chunk: %d chunk(s)\n",
		lut_bits > 0 && lut_bits < 16 ? "this LUT" : "fp16", max_chunk_mb,
		plan_recommend(c, lut_bits, max_chunk_mb, overhead));
}

/* "CONTEXT=32" (a make variable) or "--context-length 32" (a flag). */
static const char *named(const char *name, long v, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%ld", name, name[0] == '-' ? " " : "=", v);
	return buf;
}

/* The highest layer index any "<prefix>layers.N." tensor has, -1 when none. */
static int checkpoint_last_layer(const hf_model *hf)
{
	size_t plen = strlen(hf->prefix);
	int last = -1;
	for (size_t i = 0; i < hf->st.ntensors; i++) {
		const char *n = hf->st.tensors[i].name;
		if (strncmp(n, hf->prefix, plen) != 0 || strncmp(n + plen, "layers.", 7) != 0)
			continue;
		char *end;
		long k = strtol(n + plen + 7, &end, 10);
		if (end != n + plen + 7 && *end == '.' && k > last && k < INT32_MAX)
			last = (int)k;
	}
	return last;
}

static int check_sizes(const hf_model *hf, const plan_request *r)
{
	const hf_config *c = &hf->cfg;
	char a[64], b[64];
	if (r->batch > r->context)
		return errf("%s exceeds %s: a prefill batch must fit in the context", named(r->batch_name, r->batch, a, sizeof a),
			    named(r->context_name, r->context, b, sizeof b));
	if (c->max_position_embeddings > 0 && r->context > c->max_position_embeddings)
		return errf("%s exceeds the model's max_position_embeddings %d (%s)", named(r->context_name, r->context, a, sizeof a),
			    c->max_position_embeddings, c->path);
	/* chat.py's fill-mode prefill batches [kB, kB+B) must not straddle the window. */
	if (graph_local_cache(c, r->context) && r->context > c->sliding_window && c->sliding_window % r->batch)
		return errf("%s does not divide the sliding window %d of %s while %s exceeds it: chat.py's prefill batch "
			    "would straddle the window",
			    named(r->batch_name, r->batch, a, sizeof a), c->sliding_window, c->path,
			    named(r->context_name, r->context, b, sizeof b));
	return 0;
}

/* What the checkpoint holds against what config.json says of it. */
static int check_checkpoint(const hf_model *hf)
{
	const hf_config *c = &hf->cfg;
	if (c->bos_token_id >= c->vocab_size)
		return errf("%s: bos_token_id %d is not below vocab_size %d", c->path, c->bos_token_id, c->vocab_size);
	int last = checkpoint_last_layer(hf);
	if (last >= c->num_hidden_layers)
		return errf("%s: num_hidden_layers is %d, but %s holds layers up to %slayers.%d: they would be dropped",
			    c->path, c->num_hidden_layers, hf->st.where, hf->prefix, last);
	if (!c->tie_word_embeddings && hf->lm_head_tied)
		return errf("%s: tie_word_embeddings is false, but %s has no lm_head.weight", c->path, hf->st.where);
	return 0;
}

/* The tokenizer the smoketest and meta.yaml take, when there is one. */
static int check_tokenizer(const hf_model *hf)
{
	char *path = path_join(hf->dir, "tokenizer.json");
	int rc = 0;
	if (access(path, F_OK) == 0) {
		tokenizer *tok;
		rc = tokenizer_load_dir(hf->dir, &tok);
		if (rc == 0)
			tokenizer_free(tok);
	}
	free(path);
	return rc;
}

int plan_check(const hf_model *hf, const plan_request *r)
{
	if (check_sizes(hf, r) != 0 || check_checkpoint(hf) != 0 || check_tokenizer(hf) != 0)
		return -1;
	return 0;
}
