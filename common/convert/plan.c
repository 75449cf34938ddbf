/* plan.c: ANEMLL's chunk-size rule (see plan.h). */
#include "convert/plan.h"
#include "checkpoint/arch.h"
#include "convert/graph.h"

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
