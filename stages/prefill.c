/* prefill: write the prefill chunks of a model's transformer layers, ANEMLL's part 2_prefill.
 *
 * Input: a HuggingFace checkpoint (directory or org/name in the local HF
 * cache; Llama, Qwen 2.5 or Qwen 3). Output, for each chunk i of N (or only
 * --chunk-no): <output>/<prefix>_prefill[_lut<b>]_chunk_<ii>of<NN>.mlpackage
 * with one function, main, that runs B = --batch-size prompt tokens through
 * the chunk's layers and fills their KV-cache slots:
 *   input  hidden_states        fp16  [1,B,H]
 *   input  position_ids         int32 [B]        (RoPE positions)
 *   input  causal_mask          fp16  [1,1,B,C]
 *   input  current_pos          int32 [1]        (first KV slot written)
 *   output output_hidden_states fp16  [1,B,H]; [1,1,H] in the last chunk,
 *                                                whose output runtimes ignore
 *   state  model_model_kv_cache_0 fp16 [2L,kv_heads,C,head_dim]
 * Weights are those of the ffn chunk (the model's last MLP is left out: its
 * output is never used), so sizes match ffn's. Package paths are printed on
 * stdout, one per line.
 */
#include "stage.h"

int main(int argc, char **argv) { return chunk_stage_main(argc, argv, GRAPH_PREFILL); }
