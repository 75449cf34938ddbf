/* fuzz_config.c: config.json parsing on arbitrary text.
 *
 * Every input must be refused with one line of error or yield a config whose
 * invariants hold (positive sizes, heads divisible by kv heads, one layer
 * type per layer, an architecture from the table). Builds under libFuzzer,
 * or with tests/fuzz/driver.c supplying main.
 */
#include "base/util.h"
#include "checkpoint/hfconfig.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hf_config c;
	if (hf_config_parse(&c, (const char *)data, size, "fuzz/config.json") != 0) {
		ASSERT(strchr(errmsg(), '\n') == NULL);
		return 0;
	}
	ASSERT(c.arch && c.model_type && c.hidden_act);
	ASSERT(c.hidden_size > 0 && c.intermediate_size > 0 && c.vocab_size > 0);
	ASSERT(c.num_attention_heads % c.num_key_value_heads == 0 && c.head_dim % 2 == 0);
	ASSERT(c.rope_theta > 0 && c.rms_norm_eps > 0 && c.query_pre_attn_scalar > 0);
	ASSERT(c.n_eos == 0 || c.eos_token_ids);
	int sliding = 0;
	for (int i = 0; i < c.num_hidden_layers; i++)
		sliding += hf_config_layer_sliding(&c, i);
	ASSERT(sliding == 0 || (c.use_sliding_window && c.sliding_window > 0));
	ASSERT(c.act == c.arch->act);
	hf_config_release(&c);
	return 0;
}
