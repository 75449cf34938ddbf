/* graph_geom.c: the numbers a part's graph is laid out by, and the checks a
 * model must pass before one is built: which layers a chunk holds, the LM
 * head's split sizes, RoPE frequencies and fp16 tables, which cache slot a
 * layer uses. Below graph_layer.c and graph.c (both use it), above nothing
 * of the graph, so the layer code never reaches up into the part builders.
 */
#include "convert/graph.h"

#include "base/fp16.h"
#include "base/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Arithmetic                                                          */

void graph_chunk_layers(int n_layers, int n_chunks, int chunk, int *first, int *count)
{
	ASSERT(n_chunks >= 1 && n_chunks <= n_layers && chunk >= 0 && chunk < n_chunks);
	int base = n_layers / n_chunks, rem = n_layers % n_chunks;
	*first = chunk * base + (chunk < rem ? chunk : rem);
	*count = base + (chunk < rem);
}

void graph_lm_head_sizes(int vocab, int splits, int *sizes)
{
	ASSERT(splits >= 1 && vocab >= splits);
	for (int k = 0; k < splits; k++)
		sizes[k] = vocab / splits + (k < vocab % splits);
}

/* HF's _compute_llama3_parameters: keep high frequencies, divide low ones
 * by factor, interpolate smoothly in the band between. */
static void llama3_bands(const hf_rope_scaling *rs, int half, double *inv)
{
	double old = rs->original_max_position_embeddings, lo = rs->low_freq_factor, hi = rs->high_freq_factor;
	double low_freq_wavelen = old / lo, high_freq_wavelen = old / hi;
	for (int i = 0; i < half; i++) {
		double wavelen = 2 * M_PI / inv[i];
		if (wavelen < high_freq_wavelen)
			continue;
		if (wavelen > low_freq_wavelen) {
			inv[i] /= rs->factor;
			continue;
		}
		double smooth = (old / wavelen - lo) / (hi - lo);
		inv[i] = (1 - smooth) * inv[i] / rs->factor + smooth * inv[i];
	}
}

int graph_rope_inv_freq(const hf_rope_scaling *rs, double theta, int head_dim, double *inv_freq)
{
	if (head_dim < 2 || head_dim % 2)
		return errf("head_dim %d: RoPE needs an even head dimension", head_dim);
	int half = head_dim / 2;
	for (int i = 0; i < half; i++)
		inv_freq[i] = 1.0 / pow(theta, 2.0 * i / head_dim);
	switch (rs ? rs->kind : ROPE_NONE) {
	case ROPE_NONE:
		return 0;
	case ROPE_LINEAR: /* positions / factor, i.e. every frequency / factor */
		for (int i = 0; i < half; i++)
			inv_freq[i] /= rs->factor;
		return 0;
	case ROPE_LLAMA3:
		llama3_bands(rs, half, inv_freq);
		return 0;
	case ROPE_LONGROPE: /* the short factors: positions below the original context */
		if (rs->n_factors != half)
			return errf("rope_scaling longrope has %d factors for %d rotary dimensions", rs->n_factors, head_dim);
		for (int i = 0; i < half; i++)
			inv_freq[i] /= rs->short_factor[i];
		return 0;
	default:
		return errf("rope_scaling type '%s' is not supported (supported: default, linear, llama3, longrope)",
			    rs->type ? rs->type : "?");
	}
}

/* x rounded to the nearest fp16 (one rounding: going through float could
 * round twice). Table values lie in [-1, 1], far from overflow. */
static uint16_t fp16_nearest(double x)
{
	uint16_t h = f32_to_fp16((float)x, NULL), best = h;
	double err = fabs(fp16_to_f32(h) - x);
	for (int step = -1; step <= 1; step += 2) {
		uint16_t n = (uint16_t)(h + step);
		if (((n ^ h) & 0x8000) || (n & 0x7fff) >= 0x7c00)
			continue; /* across zero or into inf/NaN */
		double e = fabs(fp16_to_f32(n) - x);
		if (e < err || (e == err && !(n & 1)))
			best = n, err = e;
	}
	return best;
}

int graph_rope_tables_base(const hf_rope_scaling *rs, double theta, int d, int rows, uint16_t *cos_tab,
			   uint16_t *sin_tab)
{
	int half = d / 2;
	size_t n = (size_t)(half > 0 ? half : 1);
	double *inv = xmalloc(xmul(n, sizeof *inv)), *inv_long = xmalloc(xmul(n, sizeof *inv_long));
	if (graph_rope_inv_freq(rs, theta, d, inv) != 0) {
		free(inv);
		free(inv_long);
		return -1;
	}
	/* longrope: HF switches to the long factors once the sequence passes
	 * the original context; token by token that is per position, and its
	 * cos/sin carry attention_factor */
	int longrope = rs && rs->kind == ROPE_LONGROPE, from = longrope ? rs->original_max_position_embeddings : rows;
	double mscale = longrope ? rs->attention_factor : 1.0;
	for (int i = 0; i < half; i++)
		inv_long[i] = longrope ? inv[i] * rs->short_factor[i] / rs->long_factor[i] : inv[i];
	for (int p = 0; p < rows; p++)
		for (int j = 0; j < half; j++) {
			double a = p * (p < from ? inv[j] : inv_long[j]);
			size_t at = (size_t)p * (size_t)d + (size_t)j;
			cos_tab[at] = cos_tab[at + (size_t)half] = fp16_nearest(cos(a) * mscale);
			sin_tab[at] = sin_tab[at + (size_t)half] = fp16_nearest(sin(a) * mscale);
		}
	free(inv);
	free(inv_long);
	return 0;
}

int graph_rope_tables(const hf_config *c, int rows, uint16_t *cos_tab, uint16_t *sin_tab)
{
	if (graph_rope_tables_base(&c->rope_scaling, c->rope_theta, hf_config_rotary_dim(c), rows, cos_tab, sin_tab) != 0) {
		char *msg = xstrdup(errmsg());
		errf("%s: %s", c->path ? c->path : "config", msg);
		free(msg);
		return -1;
	}
	return 0;
}

int graph_local_cache(const hf_config *c, int context)
{
	if (c->arch->split_kv_cache)
		return 1;
	return graph_rotates(c, context);
}

int graph_rotates(const hf_config *c, int context)
{
	return c->arch->ring_cache && c->use_sliding_window && c->sliding_window > 0 && c->sliding_window < context;
}

int graph_band_window(const hf_config *c, int context)
{
	if (graph_local_cache(c, context) || !c->use_sliding_window || c->sliding_window <= 0 ||
	    c->sliding_window >= context)
		return 0;
	return c->sliding_window;
}

int graph_local_len(const hf_config *c, int context)
{
	if (!graph_local_cache(c, context))
		return 0;
	return c->sliding_window < context ? c->sliding_window : context;
}

int graph_cache_slot(const hf_config *c, int context, int layer, int *local, int *n_of_type)
{
	int split = graph_local_cache(c, context);
	int sliding = split && hf_config_layer_sliding(c, layer);
	int idx = 0, n = 0;
	for (int l = 0; l < c->num_hidden_layers; l++) {
		int same = !split || (hf_config_layer_sliding(c, l) != 0) == sliding;
		idx += same && l < layer;
		n += same;
	}
	if (local)
		*local = sliding;
	if (n_of_type)
		*n_of_type = n;
	return idx;
}

/* Gemma 3: two caches need a layer of each type; logit soft-capping is not built. */
static int check_split_cache(const hf_config *c, const char *cfg)
{
	int n_local = 0, L = c->num_hidden_layers;
	for (int l = 0; l < L; l++)
		n_local += hf_config_layer_sliding(c, l) != 0;
	if (c->sliding_window < 1)
		return errf("%s: %s needs a sliding_window", cfg, c->arch->name);
	if (n_local == 0 || n_local == L)
		return errf("%s: layer_types has %s: the local/global cache pair needs at least one of each "
			    "(sliding_attention and full_attention)",
			    cfg, n_local ? "no full_attention layer" : "no sliding_attention layer");
	if (c->has_attn_logit_softcapping || c->has_final_logit_softcapping)
		return errf("%s: %s is set: logit soft-capping is not supported", cfg,
			    c->has_attn_logit_softcapping ? "attn_logit_softcapping" : "final_logit_softcapping");
	return 0;
}

int graph_check_model(const hf_config *c, int context)
{
	const char *cfg = c->path ? c->path : "config";
	if (c->rope_scaling.kind == ROPE_OTHER)
		return errf("%s: rope_scaling type '%s' is not supported (supported: default, linear, llama3, longrope)",
			    cfg, c->rope_scaling.type ? c->rope_scaling.type : "?");
	if (c->head_dim < 2 || c->head_dim % 2)
		return errf("%s: head_dim %d must be even for RoPE", cfg, c->head_dim);
	if (c->num_key_value_heads < 1 || c->num_attention_heads % c->num_key_value_heads)
		return errf("%s: %d attention heads are not a multiple of %d key/value heads", cfg,
			    c->num_attention_heads, c->num_key_value_heads);
	if (c->arch->split_kv_cache)
		return check_split_cache(c, cfg);
	/* Other sliding-window layers keep the one cache and mask outside their
	 * window (graph_band_window), or with a ring cache a local cache of
	 * their own beyond it (graph_local_cache) */
	return 0;
}

int graph_check_rotate(const hf_config *c, int context, int batch, graph_mode mode)
{
	const char *cfg = c->path ? c->path : "config";
	if (!c->arch->ring_cache)
		return errf("--rotate: %s has no sliding-window cache to rotate (%s; families with one: %s)", cfg,
			    c->arch->name, arch_ring_list());
	if (!c->use_sliding_window || c->sliding_window <= 0)
		return errf("--rotate: %s sets no sliding_window: there is no local cache to rotate", cfg);
	if (context <= c->sliding_window)
		return errf("--rotate: --context-length %d is not beyond the sliding window %d of %s: the local cache "
			    "never rotates, so there is no rotate function",
			    context, c->sliding_window, cfg);
	if (mode == GRAPH_PREFILL && c->sliding_window % batch)
		return errf("--batch-size %d does not divide the sliding window %d of %s: chat.py's prefill batch at "
			    "positions [%d, %d) would straddle the window (use a --batch-size dividing %d)",
			    batch, c->sliding_window, cfg, c->sliding_window / batch * batch,
			    c->sliding_window / batch * batch + batch, c->sliding_window);
	return 0;
}
