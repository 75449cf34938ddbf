# lmhead.sh: the lmhead stage as a user runs it.
#
# Against ANEMLL's LM head for the tiny reference Llama (skipped without
# ../shared): same description and metadata keys. On random fixtures: 8 and
# 16 splits including vocabularies not divisible by them (no row dropped),
# tied heads equal to the embedding table byte for byte, untied heads not,
# --argmax outputs, LUT runs and errors, determinism, a golden listing.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-llama-tiny

# sizes LISTING: the logits sizes of the description, comma-joined
sizes() { grep -o '^  output "logits[0-9]*" float16\[1,1,[0-9]*\]' "$1" | sed 's/.*,//; s/]//' | paste -sd, -; }
# head_bytes PKG LISTING: the raw fp16 rows of every LM-head split, in order
head_bytes() {
	grep -o 'lm_head_weight_[0-9]* = const() \[val=float16\[[0-9]*,[0-9]*,1,1\]@blob([0-9]*)' "$2" |
		sed 's/.*float16\[\([0-9]*\),\([0-9]*\),1,1\]@blob(\([0-9]*\))/\1 \2 \3/' |
		while read -r rows cols off; do
			tail -c +$((off + 65)) "$1/Data/com.apple.CoreML/weights/weight.bin" | head -c $((rows * cols * 2))
		done
}

# --- the reference tiny Llama ----------------------------------------------------
if have_shared; then
	expect_ok ref_lmhead "$BIN/lmhead" --model "$REF/model" --output ref --context-length 512 --lut 6
	[ "$out" = ref/llama_lm_head_lut6.mlpackage ] && ok ref_path || fail ref_path "stdout: $out"
	"$BIN/mldump" ref/llama_lm_head_lut6.mlpackage >ref.txt 2>&1
	d=$(diff <(desc "$REF/listings/llama_lm_head_lut6.txt") <(desc ref.txt))
	[ -z "$d" ] && ok ref_description || fail ref_description "$(echo "$d" | head -n 6 | tr '\n' ' ')"
	d=$(diff <(metakeys "$REF/listings/llama_lm_head_lut6.txt") <(metakeys ref.txt))
	[ -z "$d" ] && ok ref_metadata_keys || fail ref_metadata_keys "$(echo "$d" | tr '\n' ' ')"
	grep -q '"com.anemll.lm_head_chunk_sizes" = "32,32,32,32,32,32,32,32"' ref.txt && grep -q '"com.anemll.vocab_size" = "256"' ref.txt &&
		ok ref_sizes_meta || fail ref_sizes_meta "$(grep lm_head_chunk ref.txt)"
	# 32 x 64 = 2048 weights per split: at the threshold, so dense fp16 as in ANEMLL's
	[ "$(grep -c ' = conv(' ref.txt)" = 8 ] && ! grep -q constexpr ref.txt && ok ref_dense_splits || fail ref_dense_splits "palettized"
	protoc_ok ref_protoc ref/llama_lm_head_lut6.mlpackage
else
	skip reference "needs ../shared"
fi

# --- splits ------------------------------------------------------------------------------
"$TESTBIN/mkfixture" --arch llama --out fx_llama --vocab 300 --seed 3 >/dev/null
"$TESTBIN/mkfixture" --arch llama --out fx_llama_untied --vocab 300 --seed 3 --untied >/dev/null
"$TESTBIN/mkfixture" --arch qwen3 --out fx_qwen3 --vocab 300 --seed 3 >/dev/null
"$TESTBIN/mkfixture" --arch qwen2 --out fx_qwen2 --vocab 256 --seed 3 >/dev/null
expect_ok llama_300 "$BIN/lmhead" --model fx_llama --output o_llama --context-length 64
[ "$out" = o_llama/llama_lm_head.mlpackage ] && ok llama_path || fail llama_path "$out"
"$BIN/mldump" o_llama/llama_lm_head.mlpackage >l8.txt
[ "$(sizes l8.txt)" = 38,38,38,38,37,37,37,37 ] && ok llama_8_splits || fail llama_8_splits "$(sizes l8.txt)"
grep -q '"com.anemll.lm_head_chunk_sizes" = "38,38,38,38,37,37,37,37"' l8.txt && grep -q '"com.anemll.vocab_size" = "300"' l8.txt &&
	grep -q '"com.anemll.context_length" = "64"' l8.txt && ok llama_meta || fail llama_meta "$(grep meta l8.txt)"
expect_ok qwen3_300 "$BIN/lmhead" --model fx_qwen3 --output o_qwen3
"$BIN/mldump" o_qwen3/qwen_lm_head.mlpackage >l16.txt
[ "$(sizes l16.txt)" = 19,19,19,19,19,19,19,19,19,19,19,19,18,18,18,18 ] && ok qwen3_16_splits || fail qwen3_16_splits "$(sizes l16.txt)"
[ "$(sizes l16.txt | awk -F, '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }')" = 300 ] && ok qwen3_sizes_sum || fail qwen3_sizes_sum "$(sizes l16.txt)"
expect_ok qwen2_256 "$BIN/lmhead" --model fx_qwen2 --output o_qwen2
"$BIN/mldump" o_qwen2/qwen25_lm_head.mlpackage >q2.txt
[ "$(sizes q2.txt)" = "$(printf '16%.0s,' $(seq 16) | sed 's/,$//')" ] && ok qwen2_16_splits || fail qwen2_16_splits "$(sizes q2.txt)"
protoc_ok qwen2_protoc o_qwen2/qwen25_lm_head.mlpackage

# --- tied and untied heads ----------------------------------------------------------------
"$BIN/embed" --model fx_llama --output o_llama -q >/dev/null
table() { tail -c +129 "$1/Data/com.apple.CoreML/weights/weight.bin" | head -c $((300 * 64 * 2)); }
cmp -s <(head_bytes o_llama/llama_lm_head.mlpackage l8.txt) <(table o_llama/llama_embeddings.mlpackage) &&
	ok tied_head_is_embedding || fail tied_head_is_embedding "head rows differ from the embedding table"
expect_ok untied "$BIN/lmhead" --model fx_llama_untied --output o_untied
"$BIN/mldump" o_untied/llama_lm_head.mlpackage >lu.txt
[ "$(head_bytes o_untied/llama_lm_head.mlpackage lu.txt | wc -c)" = $((300 * 64 * 2)) ] &&
	! cmp -s <(head_bytes o_untied/llama_lm_head.mlpackage lu.txt) <(table o_llama/llama_embeddings.mlpackage) &&
	ok untied_head_is_lm_head || fail untied_head_is_lm_head "untied head equals the embeddings"

# --- argmax ------------------------------------------------------------------------------
expect_ok argmax "$BIN/lmhead" --model fx_qwen3 --output o_argmax --argmax
"$BIN/mldump" o_argmax/qwen_lm_head.mlpackage >am.txt
grep -q '^  output "argmax_idx" int32\[16\]$' am.txt && grep -q '^  output "argmax_val" float16\[16\]$' am.txt &&
	[ "$(grep -c '^  output ' am.txt)" = 2 ] && ok argmax_outputs || fail argmax_outputs "$(grep output am.txt)"
grep -q '"com.anemll.argmax_in_model" = "true"' am.txt && ! grep -q argmax_in_model l16.txt && ok argmax_meta || fail argmax_meta "meta"
[ "$(grep -c ' = reduce_argmax(' am.txt)" = 16 ] && [ "$(grep -c ' = gather_along_axis(' am.txt)" = 16 ] &&
	grep -q 'int32\[1,1,16\] argmax_idx_all = concat(' am.txt && ok argmax_ops || fail argmax_ops "ops"
protoc_ok argmax_protoc o_argmax/qwen_lm_head.mlpackage

# --- LUT and determinism --------------------------------------------------------------------
"$TESTBIN/mkfixture" --arch llama --out fx_llama320 --vocab 320 --seed 3 >/dev/null
expect_ok lut6 "$BIN/lmhead" --model fx_llama320 --output o_lut --lut 6
"$BIN/mldump" o_lut/llama_lm_head_lut6.mlpackage >lut.txt
[ "$(grep -c 'constexpr_lut_to_dense(indices=uint6\[40,64,1,1\]@blob([0-9]*), lut=float16\[5,1,1,1,64,1\]' lut.txt)" = 8 ] &&
	grep -q '"com.anemll.lut_bits" = "6"' lut.txt && ok lut6_palettized || fail lut6_palettized "$(grep -m1 constexpr lut.txt)"
expect_ok lut4_tensor "$BIN/lmhead" --model fx_llama --output o_lut --lut 4,t
"$BIN/mldump" o_lut/llama_lm_head_lut4.mlpackage >lut4.txt
[ "$(grep -c 'constexpr_lut_to_dense(indices=uint4\[3[78],64,1,1\]@blob([0-9]*), lut=float16\[1,1,1,1,16,1\]' lut4.txt)" = 8 ] &&
	ok lut4_per_tensor || fail lut4_per_tensor "$(grep -m1 constexpr lut4.txt)"
expect_ok lut4_qwen2 "$BIN/lmhead" --model fx_qwen2 --output o_lut --lut 4
mkdir -p badlut
expect_fail lut_bits_7 1 "^lmhead: --lut: .*'7'" "$BIN/lmhead" --model fx_llama --output badlut --lut 7
expect_fail lut_abc 1 "^lmhead: --lut: .*'abc'" "$BIN/lmhead" --model fx_llama --output badlut --lut abc
expect_fail lut_negative_group 1 "^lmhead: --lut: .*'4,-1'" "$BIN/lmhead" --model fx_llama --output badlut --lut 4,-1
expect_fail lut_group_not_dividing 1 "^lmhead: --lut 6,3: model\.embed_tokens\.weight rows 0-37 \(LM-head split 1 of 8\) has 38 output channels; groups that divide it: 1, 2; try --lut 6,1$" \
	"$BIN/lmhead" --model fx_llama --output badlut --lut 6,3
expect_fail lut_explicit_group_38_rows 1 "^lmhead: --lut 6,8: model\.embed_tokens\.weight rows 0-37 .* has 38 output channels; groups that divide it: 1, 2; try --lut 6,1$" \
	"$BIN/lmhead" --model fx_llama --output badlut --lut 6,8
# No group given: ANEMLL's 8 where it divides every head, else the largest that does (38 and 37 rows: 1).
expect_ok lut_default_group_fits "$BIN/lmhead" --model fx_llama --output o_fit --lut 6
grep -q '"group":[[:space:]]*1,' o_fit/llama_lm_head_lut6.quality.json && ! grep -q '"group":[[:space:]]*8' o_fit/llama_lm_head_lut6.quality.json &&
	ok lut_default_group_is_1 || fail lut_default_group_is_1 "$(head -c 300 o_fit/llama_lm_head_lut6.quality.json)"
no_artifacts lut_errors_leave_nothing badlut
"$BIN/lmhead" --model fx_qwen3 --output d1 --lut 4,4 --threads 1 -q >/dev/null
"$BIN/lmhead" --model fx_qwen3 --output d2 --lut 4,4 --threads 2 -q >/dev/null
[ -d d1/qwen_lm_head_lut4.mlpackage ] && diff -r d1 d2 >/dev/null && ok deterministic || fail deterministic "threads 1 vs 2 differ"

# --- usage ----------------------------------------------------------------------------------
expect_fail no_output 2 "^lmhead: --output is required" "$BIN/lmhead" --model fx_llama
expect_fail unknown_flag 2 "^lmhead: unknown option '--chunk'" "$BIN/lmhead" --model fx_llama --output x --chunk 2
"$BIN/lmhead" --help | grep -q -- '--argmax' && ok help_lists_argmax || fail help_lists_argmax "--help"

# --- golden ---------------------------------------------------------------------------------
"$BIN/lmhead" --model fx_llama --output g --context-length 64 --argmax -q >/dev/null
"$BIN/mldump" g/llama_lm_head.mlpackage >g.txt
golden golden_lmhead_llama g.txt lmhead_llama_v300_argmax.txt
finish
