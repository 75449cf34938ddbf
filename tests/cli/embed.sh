# embed.sh: the embed stage as a user runs it.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K

# --- the bundled stories260K ------------------------------------------------
expect_ok stories_converts "$BIN/embed" --model "$STORIES" --output out
[ "$out" = out/llama_embeddings.mlpackage ] && ok stories_prints_path || fail stories_prints_path "stdout: $out"
protoc_ok stories_protoc out/llama_embeddings.mlpackage
"$BIN/mldump" out/llama_embeddings.mlpackage >listing.txt 2>&1
golden stories_listing listing.txt embed_stories260K.txt
cp -r out/llama_embeddings.mlpackage first.mlpackage
"$BIN/embed" --model "$STORIES" --output out --quiet >/dev/null
cmp -s first.mlpackage/Data/com.apple.CoreML/weights/weight.bin out/llama_embeddings.mlpackage/Data/com.apple.CoreML/weights/weight.bin &&
	diff -r first.mlpackage out/llama_embeddings.mlpackage >/dev/null && ok deterministic || fail deterministic "second run differs"
expect_ok batch_and_prefix "$BIN/embed" --model "$STORIES" --output out2 --batch-size 32 --prefix tiny
"$BIN/mldump" out2/tiny_embeddings.mlpackage | grep -q 'enumerated{\[1,1\] \[1,32\]}' && ok batch_shape || fail batch_shape "no [1,32] shape"

# --- LUT -------------------------------------------------------------------------
expect_ok lut4 "$BIN/embed" --model "$STORIES" --output lut --lut 4
"$BIN/mldump" lut/llama_embeddings_lut4.mlpackage >lut4.txt
grep -q 'constexpr_lut_to_dense(indices=uint4\[512,64\]@blob(64), lut=float16\[64,1,16,1\]' lut4.txt && ok lut4_shapes || fail lut4_shapes "$(grep constexpr lut4.txt)"
grep -q '"com.anemll.lut_bits" = "4"' lut4.txt && ok lut4_metadata || fail lut4_metadata "no lut_bits"
protoc_ok lut4_protoc lut/llama_embeddings_lut4.mlpackage
"$BIN/embed" --model "$STORIES" --output t1 --lut 6,16 --threads 1 -q >/dev/null
"$BIN/embed" --model "$STORIES" --output t2 --lut 6,16 --threads 2 -q >/dev/null
diff -r t1 t2 >/dev/null && ok lut_threads_identical || fail lut_threads_identical "1 vs 2 threads differ"
[ -f lut/llama_embeddings_lut4.quality.json ] && grep -q '"rel_rms"' lut/llama_embeddings_lut4.quality.json &&
	ok lut_quality_sidecar || fail lut_quality_sidecar "no quality json"
expect_ok lut_quality_dir "$BIN/embed" --model "$STORIES" --output qd --quality-dir qd_reports --lut 4 --lut-cache none
[ -f qd_reports/llama_embeddings_lut4.quality.json ] && [ ! -e qd/llama_embeddings_lut4.quality.json ] &&
	cmp -s qd_reports/llama_embeddings_lut4.quality.json lut/llama_embeddings_lut4.quality.json &&
	diff -r qd/llama_embeddings_lut4.mlpackage lut/llama_embeddings_lut4.mlpackage >/dev/null &&
	ok quality_dir_holds_the_report || fail quality_dir_holds_the_report "$(ls qd qd_reports 2>&1 | tr '\n' ' ')"
# a --quality-dir that cannot be made, or a report that cannot be written: exit 1 and
# nothing left behind, not even the --output directory the run created (every stage)
touch not_a_dir
for s in embed lmhead ffn prefill; do
	expect_fail "${s}_quality_dir_unmakeable" 1 "cannot create directory 'not_a_dir/q'" \
		"$BIN/$s" --model "$STORIES" --output "qfail_$s/out" --quality-dir not_a_dir/q --lut 4 --lut-cache none
	[ ! -e "qfail_$s" ] && ok "${s}_quality_dir_fail_leaves_nothing" ||
		fail "${s}_quality_dir_fail_leaves_nothing" "$(find "qfail_$s" | tr '\n' ' ')"
done
mkdir -p qblock/llama_embeddings_lut4.quality.json/x
expect_fail quality_unwritable 1 "llama_embeddings_lut4.quality.json" \
	"$BIN/embed" --model "$STORIES" --output qfail_w --quality-dir qblock --lut 4 --lut-cache none
[ ! -e qfail_w ] && ok quality_unwritable_leaves_nothing || fail quality_unwritable_leaves_nothing "$(find qfail_w | tr '\n' ' ')"
cp -r lut/llama_embeddings_lut4.mlpackage lut_first.mlpackage
expect_ok lut_cache_hit "$BIN/embed" --model "$STORIES" --output lut --lut 4
printf '%s' "$err" | grep -q '1 from cache' && diff -r lut_first.mlpackage lut/llama_embeddings_lut4.mlpackage >/dev/null &&
	ok lut_cache_identical || fail lut_cache_identical "cache not used or output differs: $err"
entry=$(ls lut/.anemake/lutcache/*.lut)
printf 'garbage' | dd of="$entry" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_ok lut_cache_corrupt "$BIN/embed" --model "$STORIES" --output lut --lut 4
printf '%s' "$err" | grep -q 'damaged: recomputing' && diff -r lut_first.mlpackage lut/llama_embeddings_lut4.mlpackage >/dev/null &&
	ok lut_cache_corrupt_recomputed || fail lut_cache_corrupt_recomputed "$err"
head -c 50 "$entry" >"$entry.t" && mv "$entry.t" "$entry"
expect_ok lut_cache_truncated "$BIN/embed" --model "$STORIES" --output lut --lut 4
diff -r lut_first.mlpackage lut/llama_embeddings_lut4.mlpackage >/dev/null && ok lut_cache_truncated_same || fail lut_cache_truncated_same "differs"
expect_ok lut_per_tensor "$BIN/embed" --model "$STORIES" --output lutt --lut 2,t
mkdir -p badlut
expect_fail lut_bits_7 1 "^embed: --lut: .*'7'" "$BIN/embed" --model "$STORIES" --output badlut --lut 7
expect_fail lut_abc 1 "^embed: --lut: .*'abc'" "$BIN/embed" --model "$STORIES" --output badlut --lut abc
expect_fail lut_negative_group 1 "^embed: --lut: .*'4,-1'" "$BIN/embed" --model "$STORIES" --output badlut --lut 4,-1
expect_fail lut_group_not_dividing 1 "^embed: --lut 6,3: model\.embed_tokens\.weight has 512 output channels; groups that divide it: 1, 2; try --lut 6,2$" "$BIN/embed" --model "$STORIES" --output badlut --lut 6,3
no_artifacts lut_errors_leave_nothing badlut

# --- every fixture architecture ---------------------------------------------------
for arch in llama qwen2 qwen3 gemma3_text gemma3; do
	"$TESTBIN/mkfixture" --arch "$arch" --out "fx_$arch" --seed 7 --vocab 300 >/dev/null
	expect_ok "fixture_$arch" "$BIN/embed" --model "fx_$arch" --output "o_$arch"
	pkg=$(printf '%s' "$out")
	protoc_ok "fixture_${arch}_protoc" "$pkg"
	"$BIN/mldump" "$pkg" >"l_$arch.txt" 2>&1 || fail "fixture_${arch}_dump" "mldump failed"
done
[ -d o_llama/llama_embeddings.mlpackage ] && [ -d o_qwen2/qwen25_embeddings.mlpackage ] &&
	[ -d o_qwen3/qwen_embeddings.mlpackage ] && [ -d o_gemma3/gemma3_embeddings.mlpackage ] &&
	ok default_prefixes || fail default_prefixes "$(ls o_*)"
grep -q ' = mul(x=embeddings, y=embed_scale)' l_gemma3.txt && grep -q ' = mul(' l_gemma3_text.txt &&
	! grep -q ' = mul(' l_llama.txt && ok gemma_scales || fail gemma_scales "sqrt(H) scaling wrong"
"$TESTBIN/mkfixture" --arch qwen3 --out fx_shard --shards 3 --untied >/dev/null
expect_ok sharded "$BIN/embed" --model fx_shard --output o_shard

# --- HF cache id, resolved offline -------------------------------------------------
snap=hub/models--acme--tiny/snapshots/abc123
mkdir -p "$snap" hub/models--acme--tiny/refs && cp fx_llama/* "$snap"/ && echo abc123 >hub/models--acme--tiny/refs/main
HF_HUB_CACHE=$SCRATCH/hub expect_ok hf_cache_id "$BIN/embed" --model acme/tiny --output o_hub
HF_HUB_CACHE=$SCRATCH/hub expect_fail hf_cache_missing 1 "acme/absent.*never downloads" "$BIN/embed" --model acme/absent --output o_hub

# --- bad input: one line, exit 1, no package ----------------------------------------
mk() { rm -rf "$1"; cp -r fx_llama "$1"; }
st=model.safetensors
mk trunc; head -c 5000 fx_llama/$st >trunc/$st
mk hdrlen; printf '\377\377\377\377\000\000\000\000' | dd of=hdrlen/$st bs=1 count=8 conv=notrunc 2>/dev/null
mk past; size=$(wc -c <fx_llama/$st); head -c $((size - 10)) fx_llama/$st >past/$st
mk dtype; sed 's/"BF16"/"Q9_9"/' fx_llama/$st >dtype/$st
mk fp8; hdr='{"model.embed_tokens.weight":{"dtype":"F8_E4M3","shape":[4,4],"data_offsets":[0,16]}}    '
rm fp8/$st; { printf '\\%03o' ${#hdr} 0 0 0 0 0 0 0 | xargs -0 printf; printf '%s' "$hdr"; head -c 16 /dev/zero; } >fp8/$st
"$TESTBIN/mkfixture" --arch llama --out quant --quantized >/dev/null
"$TESTBIN/mkfixture" --arch llama --out missing --omit model.embed_tokens.weight >/dev/null
mk nofield; grep -v '"hidden_size"' fx_llama/config.json >nofield/config.json
mk notjson; echo '{"model_type": "llama",' >notjson/config.json
mkdir -p bad
expect_fail truncated_file 1 "^embed: .*model.safetensors" "$BIN/embed" --model trunc --output bad
expect_fail header_length_past_eof 1 "^embed: .*model.safetensors.*header" "$BIN/embed" --model hdrlen --output bad
expect_fail offsets_past_end 1 "^embed: .*model.safetensors.*tensor '" "$BIN/embed" --model past --output bad
expect_fail unknown_dtype 1 "^embed: .*Q9_9" "$BIN/embed" --model dtype --output bad
expect_fail fp8_tensors 1 "^embed: .*quantized" "$BIN/embed" --model fp8 --output bad
expect_fail quantization_config 1 "^embed: .*quantiz" "$BIN/embed" --model quant --output bad
expect_fail missing_tensor 1 "^embed: .*model.embed_tokens.weight" "$BIN/embed" --model missing --output bad
expect_fail missing_config_field 1 "^embed: .*hidden_size" "$BIN/embed" --model nofield --output bad
expect_fail config_not_json 1 "^embed: .*config.json" "$BIN/embed" --model notjson --output bad
expect_fail no_such_model 1 "^embed: .*nowhere" "$BIN/embed" --model ./nowhere --output bad
no_artifacts bad_input_leaves_nothing bad

# --- usage errors: exit 2 ------------------------------------------------------------
expect_fail no_model 2 "^embed: --model is required" "$BIN/embed" --output bad
expect_fail unknown_flag 2 "^embed: unknown option '--colour'" "$BIN/embed" --colour --model x --output bad
expect_fail bad_int 2 "^embed: --batch-size: 'abc' is not an integer" "$BIN/embed" --model x --output bad --batch-size abc
"$BIN/embed" --help | grep -q -- '--lut SPEC' && ok help_lists_flags || fail help_lists_flags "--help"
finish
