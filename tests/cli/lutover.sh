# lutover.sh: LUT overrides, activation-aware palettization and mixed
# precision (LUT_OVERRIDE, CALIB, LUT2=auto) on the bundled stories260K.
#
# Overrides: every error names the pattern (one that matches nothing, a
# group that does not divide, a bad spec), the stages write each tensor at
# its override's width and record the overrides in the package metadata and
# the quality sidecar; the plan refuses them before anything is built.
# Calibration: statistics from the reference, the weighted palettization the
# same for any thread count, different from the plain one, recorded.
# lutauto: a plan within the budget that the stages read back.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K
TEXT=$SRC/tests/data/calib-stories.txt
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
quality() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(' '.join('%s=%d,%d' % (t['name'].replace('model_model_layers_', 'L').replace('_weight', ''), t['bits'], t['group']) for t in d['tensors']))" "$1"; }

# --- errors name the pattern ---------------------------------------------------
expect_fail override_matches_nothing 1 "^ffn: --lut-override: 'layers\.27=none' applies to no tensor a LUT can palettize in .*stories260K" \
	"$BIN/ffn" --plan --model "$STORIES" --lut 4,4 --lut-override 'layers.0=6,4;layers.27=none'
expect_fail override_group 1 "^ffn: --lut-override: layers\.\*\.mlp=6,8: model\.layers\.0\.mlp\.gate_proj\.weight has 172 output channels; groups that divide it: 1, 2, 4; try layers\.\*\.mlp=6,4$" \
	"$BIN/ffn" --plan --model "$STORIES" --lut 4,4 --lut-override 'layers.*.mlp=6,8'
expect_fail override_spec 1 "^ffn: --lut-override: 'down_proj=5': bad LUT spec '5'" \
	"$BIN/ffn" --plan --model "$STORIES" --lut 4,4 --lut-override 'down_proj=5'
expect_fail override_syntax 1 "^lmhead: --lut-override: 'lm_head' is not PATTERN=SPEC$" \
	"$BIN/lmhead" --model "$STORIES" --output o --lut-override 'lm_head'
# a shadowed entry wins nothing: refused too
expect_fail override_shadowed 1 "'layers\.0=8' applies to no tensor" \
	"$BIN/ffn" --plan --model "$STORIES" --lut 4,4 --lut-override 'layers.0=8;layers.0-4=6,4'
run pipe OUT="$SCRATCH/r" MODEL="$STORIES" LUT_OVERRIDE='layers.9=8' plan
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q "^anemake: LUT_OVERRIDE: 'layers.9=8' applies to no tensor" &&
	[ -z "$(ls "$SCRATCH/r" 2>/dev/null | grep mlpackage)" ] && ok plan_refuses_override || fail plan_refuses_override "rc $rc: $err"

# --- every stage honours them ----------------------------------------------------
OV='layers.0-1=8;layers.*.mlp.down_proj=6;layers.4=none;lm_head=4,4'
expect_ok ffn_override "$BIN/ffn" --model "$STORIES" --output o --lut 4,4 --lut-override "$OV"
got=$(quality o/llama_FFN_lut4_chunk_01of01.quality.json)
want="L0_self_attn_q_proj=8,4 L0_self_attn_o_proj=8,4 L0_mlp_gate_proj=8,4 L0_mlp_up_proj=8,4 L0_mlp_down_proj=6,8 L1_self_attn_q_proj=8,4 L1_self_attn_o_proj=8,4 L1_mlp_gate_proj=8,4 L1_mlp_up_proj=8,4 L1_mlp_down_proj=6,8 L2_self_attn_q_proj=4,4 L2_self_attn_o_proj=4,4 L2_mlp_gate_proj=4,4 L2_mlp_up_proj=4,4 L2_mlp_down_proj=6,8 L3_self_attn_q_proj=4,4 L3_self_attn_o_proj=4,4 L3_mlp_gate_proj=4,4 L3_mlp_up_proj=4,4 L3_mlp_down_proj=6,8"
[ "$got" = "$want" ] && ok ffn_override_widths || fail ffn_override_widths "$got"
jq_get() { python3 -c "import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))" "$1" "$2"; }
[ "$(jq_get o/llama_FFN_lut4_chunk_01of01.quality.json lut_override)" = "layers.0-1=8,4;layers.*.mlp.down_proj=6;layers.4=none;lm_head=4,4" ] &&
	ok quality_records_overrides || fail quality_records_overrides "$(head -c 300 o/llama_FFN_lut4_chunk_01of01.quality.json)"
"$BIN/mldump" o/llama_FFN_lut4_chunk_01of01.mlpackage >l.txt 2>&1
grep -q 'meta "com.anemake.lut_override" = "layers.0-1=8,4;layers.\*.mlp.down_proj=6;layers.4=none;lm_head=4,4"' l.txt &&
	ok metadata_records_overrides || fail metadata_records_overrides "$(grep meta l.txt | tr '\n' ' ')"
expect_ok lmhead_override "$BIN/lmhead" --model "$STORIES" --output o --lut 6 --lut-override "$OV"
got=$(quality o/llama_lm_head_lut6.quality.json | tr ' ' '\n' | sort -u | sed 's/lm_head_[0-9]*/h/' | sort -u)
[ "$got" = "h=4,4" ] && ok lmhead_override_alias || fail lmhead_override_alias "$got"
expect_ok embed_override "$BIN/embed" --model "$STORIES" --output o --lut-override 'embed_tokens=6,4;layers.0=8'
[ "$(quality o/llama_embeddings.quality.json)" = "embed_tokens=6,4" ] && ok embed_override_widths ||
	fail embed_override_widths "$(quality o/llama_embeddings.quality.json)"
expect_ok mono_override "$BIN/ffn" --monolithic --model "$STORIES" --output m --lut 4,4 --lut-override 'embed_tokens=none;down_proj=8,4'
# (stories260K ties its head to the embeddings: embed_tokens matches the head as well)
[ "$(quality m/llama_monolithic_lut4.quality.json | tr ' ' '\n' | grep -c '=8,4$')" = 5 ] &&
	! quality m/llama_monolithic_lut4.quality.json | grep -q 'embed\|lm_head' &&
	ok mono_override_widths || fail mono_override_widths "$(quality m/llama_monolithic_lut4.quality.json)"

# --- calibration statistics --------------------------------------------------------
expect_ok calib "$BIN/calib" --model "$STORIES" --text "$TEXT" --output c.stats
[ "$out" = c.stats ] && ok calib_prints_path || fail calib_prints_path "$out"
expect_ok calib_again "$BIN/calib" --model "$STORIES" --text "$TEXT" --output c2.stats --threads 1
cmp -s c.stats c2.stats && ok calib_deterministic || fail calib_deterministic "differs with --threads 1"
expect_fail calib_needs_text 2 "text" "$BIN/calib" --model "$STORIES" --output c3.stats
expect_ok ffn_calib1 "$BIN/ffn" --model "$STORIES" --output w1 --lut 4,4 --calib-stats c.stats --threads 1 --lut-cache none
expect_ok ffn_calib2 "$BIN/ffn" --model "$STORIES" --output w2 --lut 4,4 --calib-stats c.stats --threads 3
expect_ok ffn_plain "$BIN/ffn" --model "$STORIES" --output w0 --lut 4,4 --lut-cache none
wb() { echo "$1"/llama_FFN_lut4_chunk_01of01.mlpackage/Data/com.apple.CoreML/weights/weight.bin; }
cmp -s "$(wb w1)" "$(wb w2)" && ok calib_threads_identical || fail calib_threads_identical "weights differ"
cmp -s "$(wb w1)" "$(wb w0)" && fail calib_changes_weights "same weights as without statistics" || ok calib_changes_weights
[ "$(jq_get w1/llama_FFN_lut4_chunk_01of01.quality.json activation_weighted)" = 25 ] &&
	[ "$(jq_get w1/llama_FFN_lut4_chunk_01of01.quality.json calibration_sha256 | grep -c '^[0-9a-f]\{64\}$')" = 1 ] &&
	ok quality_records_calibration || fail quality_records_calibration "$(head -c 400 w1/llama_FFN_lut4_chunk_01of01.quality.json)"
printf 'ANCALIB1 garbage' >bad.stats
expect_fail calib_stats_damaged 1 "^ffn: bad\.stats: not a calibration statistics file" "$BIN/ffn" --model "$STORIES" --output w3 --lut 4,4 --calib-stats bad.stats

# --- mixed precision ---------------------------------------------------------------
expect_ok lutauto "$BIN/lutauto" --model "$STORIES" --output a --calib-stats c.stats --text "$TEXT" --tokens 64 --budget auto:4,4 --plan a/plan.txt
n=$(grep -c '^model\.layers\.[0-4]\.[a-z_.]*\.weight=[2-8],\(4\|tensor\) # KL ' a/plan.txt)
[ "$n" = 25 ] && ok lutauto_plan_entries || fail lutauto_plan_entries "$n entries: $(head -n 5 a/plan.txt)"
used=$(sed -n 's/.*written \([0-9]*\) bytes.*/\1/p' a/plan.txt) budget=$(sed -n 's/.*per weight = \([0-9]*\) bytes.*/\1/p' a/plan.txt)
[ -n "$used" ] && [ "$used" -le "$budget" ] && ok lutauto_within_budget || fail lutauto_within_budget "$used > $budget"
expect_ok ffn_reads_plan "$BIN/ffn" --model "$STORIES" --output a --lut 4,4 --lut-override "@a/plan.txt" --calib-stats c.stats
grep -q '(25 from cache' <<<"$err" && ok ffn_plan_from_cache || fail ffn_plan_from_cache "$err"
run "$BIN/lutauto" --model "$STORIES" --output a --calib-stats c.stats --text "$TEXT" --tokens 8 --budget 2 --plan a/p2.txt
[ "$rc" = 1 ] && tail -n 1 <<<"$err" | grep -q "^lutauto: --budget 2: a budget of [0-9]* bytes is below the least any choice writes" && [ ! -e a/p2.txt ] &&
	ok lutauto_budget_small || fail lutauto_budget_small "rc $rc: $(tail -n 1 <<<"$err")"
# chunks of one conversion may differ in LUT groups under overrides (a plan can give every
# main-width tensor of a chunk one table per tensor): meta.yaml takes the first group of rows
expect_ok meta_mixed_groups pipe OUT="$SCRATCH/mg" MODEL="$STORIES" CONTEXT=64 BATCH=8 CHUNK=2 LUT2=4,4 \
	LUT_OVERRIDE='layers.0-2=4,tensor' meta
grep -q "lut_ffn: 4" "$SCRATCH/mg/meta.yaml" && ok meta_mixed_groups_lut || fail meta_mixed_groups_lut "$(grep lut "$SCRATCH/mg/meta.yaml")"

# --- GPTQ: second moments, error feedback ---------------------------------------------
expect_ok calib_xtx "$BIN/calib" --model "$STORIES" --text "$TEXT" --output x.stats --xtx
expect_ok calib_xtx_again "$BIN/calib" --model "$STORIES" --text "$TEXT" --output x2.stats --xtx --threads 1
cmp -s x.stats x2.stats && ok calib_xtx_deterministic || fail calib_xtx_deterministic "differs with --threads 1"
[ "$(stat -c %s x.stats)" -gt "$(stat -c %s c.stats)" ] && ok calib_xtx_larger || fail calib_xtx_larger "$(stat -c %s x.stats c.stats)"
expect_ok ffn_gptq1 "$BIN/ffn" --model "$STORIES" --output g1 --lut 4,4 --calib-stats x.stats --threads 1 --lut-cache none
expect_ok ffn_gptq2 "$BIN/ffn" --model "$STORIES" --output g2 --lut 4,4 --calib-stats x.stats --threads 3
cmp -s "$(wb g1)" "$(wb g2)" && ok gptq_threads_identical || fail gptq_threads_identical "weights differ"
cmp -s "$(wb g1)" "$(wb w1)" && fail gptq_changes_weights "same weights as CALIB alone" || ok gptq_changes_weights
[ "$(jq_get g1/llama_FFN_lut4_chunk_01of01.quality.json gptq)" = 25 ] &&
	[ "$(jq_get w1/llama_FFN_lut4_chunk_01of01.quality.json gptq)" = None ] &&
	ok quality_records_gptq || fail quality_records_gptq "$(head -c 400 g1/llama_FFN_lut4_chunk_01of01.quality.json)"
expect_ok lmhead_gptq "$BIN/lmhead" --model "$STORIES" --output g1 --lut 6 --calib-stats x.stats
[ "$(jq_get g1/llama_lm_head_lut6.quality.json gptq)" = "$(jq_get g1/llama_lm_head_lut6.quality.json palettized)" ] &&
	ok lmhead_gptq_all || fail lmhead_gptq_all "$(head -c 400 g1/llama_lm_head_lut6.quality.json)"
run pipe OUT="$SCRATCH/r" MODEL="$STORIES" GPTQ=1 plan
[ "$rc" != 0 ] && grep -q "^anemake: GPTQ=1 compensates errors on a calibration text's statistics: give CALIB=<text file>$" <<<"$err" &&
	ok gptq_needs_calib || fail gptq_needs_calib "rc $rc: $err"
run pipe OUT="$SCRATCH/r" MODEL="$STORIES" CALIB="$TEXT" GPTQ=yes plan
[ "$rc" != 0 ] && grep -q "^anemake: GPTQ=yes: give GPTQ=1 or nothing$" <<<"$err" &&
	ok gptq_value || fail gptq_value "rc $rc: $err"
run pipe OUT="$SCRATCH/r" MODEL="$STORIES" LUT2=auto:4 plan
[ "$rc" != 0 ] && grep -q "^anemake: LUT2=auto:4 measures each tensor on a calibration text: give CALIB=<text file>$" <<<"$err" &&
	ok auto_needs_calib || fail auto_needs_calib "rc $rc: $err"
finish
