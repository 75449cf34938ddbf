# preflight.sh: the FP16 preflight as a user runs it, and the smoketest's
# preflight section.
#
# A small llama fixture passes (golden JSON); fixtures built to overflow
# (mkfixture --residual-boost for llama, --post-norm-gain for Gemma 3) fail
# with exit 1 and one line naming the first overflow layer and the alpha,
# and the Gemma one passes once converted with that --fp16-scale; the clamp
# sweep's shape; bad input gives one line and the right exit code.
. "$SRC/tests/cli/lib.sh"
MK=$TESTBIN/mkfixture
PF=$BIN/preflight
STORIES=$SRC/tests/models/stories260K

# json_get FILE KEY: a top-level scalar of cJSON's formatted output
json_get() { grep -m1 "^	\"$2\":" "$1" | sed 's/^[^:]*:[[:space:]]*//; s/,$//; s/"//g'; }

"$MK" --arch llama --out fx --vocab 512 >/dev/null
"$MK" --arch llama --out fx_over --vocab 512 --residual-boost 30000 >/dev/null
"$MK" --arch gemma3_text --out gx_over --vocab 512 --post-norm-gain 30000 >/dev/null

# --- a model that fits -----------------------------------------------------------

expect_ok llama_passes "$PF" --model fx --prompt 1,5,7,9 --tokens 8 --json fx.json
golden llama_report fx.json preflight_llama.json
[ "$(printf '%s\n' "$out" | head -n 1)" = "layer       fp32 peak      fp16 peak  status" ] &&
	[ "$(printf '%s\n' "$out" | grep -c ' ok$')" = 2 ] && ok table_on_stdout || fail table_on_stdout "$out"
printf '%s\n' "$err" | grep -q '^preflight: fp32 reference: peak |x| .* at layer 1 ' &&
	printf '%s\n' "$err" | grep -q '^preflight: PASS' && ok summary_on_stderr || fail summary_on_stderr "$err"
run "$PF" --model fx --prompt 1,5,7,9 --tokens 8 -q
[ "$rc" = 0 ] && [ -z "$out$err" ] && ok quiet_is_quiet || fail quiet_is_quiet "exit $rc: $out $err"
run "$PF" --model fx --prompt 1,5,7,9 --tokens 8 --threads 1 --json fx1.json -q
cmp -s fx.json fx1.json && ok threads_same_report || fail threads_same_report "$(diff fx.json fx1.json | head -n 4)"

# the default prompt is ANEMLL's, through the model's tokenizer
expect_ok stories_default_prompt "$PF" --model "$STORIES" --tokens 4 --json st.json -q
[ "$(json_get st.json fp16_works)" = true ] && [ "$(json_get st.json recommended_fp16_scale)" = 1 ] &&
	ok stories_compatible || fail stories_compatible "$(head -c 400 st.json)"

# --- llama built to overflow: exit 1, one line -------------------------------------

expect_fail llama_overflow 1 '^preflight: the fp16 model overflows from layer 1 \(model\.layers\.1\): recommended alpha 0\.[0-9]{4} \(--fp16-scale needs Gemma 3\)' \
	"$PF" --model fx_over --prompt 1,5,7,9 --tokens 8 -q --json fx_over.json
[ "$(json_get fx_over.json fp16_works)" = false ] && [ "$(json_get fx_over.json bf16_works)" = true ] &&
	[ "$(json_get fx_over.json compatibility_score)" = 0.5 ] && grep -q '"fp16_overflow_layers":	\["model.layers.1"\]' fx_over.json &&
	ok llama_overflow_report || fail llama_overflow_report "$(head -c 600 fx_over.json)"
run "$PF" --model fx_over --prompt 1,5,7,9 --tokens 8
printf '%s\n' "$err" | grep -q '^preflight: first layer over 65504: 1$' &&
	printf '%s\n' "$err" | grep -q '^preflight: recommended alpha (--fp16-scale) 0\.[0-9]* = 50000 / peak$' &&
	printf '%s\n' "$out" | grep -q '^1 .* OVERFLOW$' && ok llama_overflow_summary || fail llama_overflow_summary "$out $err"
expect_fail llama_no_scaling 1 '^preflight: --fp16-scale: .*llama.*Gemma 3 only' \
	"$PF" --model fx_over --prompt 1,5,7,9 --fp16-scale 0.5
expect_ok llama_clamp_holds "$PF" --model fx_over --prompt 1,5,7,9 --tokens 8 --clamp 60000 -q

# --- Gemma 3 built to overflow, then scaled ------------------------------------------

expect_fail gemma_overflow 1 '^preflight: the fp16 model overflows from layer 3 \(model\.layers\.3\): recommended alpha 0\.[0-9]{4} \(convert with --fp16-scale\)' \
	"$PF" --model gx_over --prompt 2,5,7,9 --tokens 8 -q --json gx_over.json
alpha=$(json_get gx_over.json recommended_fp16_scale)
grep -q "\"Convert with --fp16-scale $(printf '%.4f' "$alpha") " gx_over.json && ok gemma_recommends_alpha ||
	fail gemma_recommends_alpha "alpha $alpha: $(grep -A3 recommendations gx_over.json)"
expect_ok gemma_scaled_passes "$PF" --model gx_over --prompt 2,5,7,9 --tokens 8 --fp16-scale "$alpha" --json gx_scaled.json -q
[ "$(json_get gx_scaled.json fp16_works)" = true ] && [ "$(json_get gx_scaled.json fp16_scale)" = "$alpha" ] &&
	grep -q '"fp16_overflow_layers":	\[\]' gx_scaled.json &&
	awk -v a="$alpha" -v b="$(json_get gx_scaled.json recommended_fp16_scale)" 'BEGIN { d = a - b; exit !(d < 1e-3 && d > -1e-3) }' &&
	ok gemma_scaled_report || fail gemma_scaled_report "$(tail -n 8 gx_scaled.json)"

# --- clamp sweep ---------------------------------------------------------------------

run "$PF" --model gx_over --prompt 2,5,7,9 --tokens 4 --sweep --json sweep.json
[ "$rc" = 1 ] && [ "$(printf '%s\n' "$out" | grep -cE '^[0-9]{5} +(PASS|FAIL) +[0-9.]+%$')" = 10 ] &&
	ok sweep_table || fail sweep_table "exit $rc: $out"
keys=$(grep -oE '^		"[0-9]+":' sweep.json | tr -d '\t":' | tr '\n' ' ')
[ "$keys" = "65000 60000 55000 50000 45000 40000 35000 30000 25000 20000 " ] && ok sweep_keys || fail sweep_keys "$keys"
[ "$(grep -c '"success":' sweep.json)" = 10 ] && [ "$(grep -c '"match_rate":' sweep.json)" = 10 ] &&
	[ "$(grep -c '"output":' sweep.json)" = 10 ] && ok sweep_entries || fail sweep_entries "$(head -c 600 sweep.json)"
expect_ok stories_sweep "$PF" --model "$STORIES" --tokens 4 --sweep --json stsw.json -q
grep -q '"output":	"[^"]' stsw.json && ok sweep_output_text || fail sweep_output_text "$(grep output stsw.json | head -n 2)"

# --- the smoketest's report ----------------------------------------------------------

"$BIN/embed" --model fx --output parts --batch-size 8 -q >/dev/null &&
	"$BIN/lmhead" --model fx --output parts -q >/dev/null &&
	"$BIN/ffn" --model fx --output parts --batch-size 8 -q >/dev/null &&
	"$BIN/prefill" --model fx --output parts --batch-size 8 -q >/dev/null && ok convert || fail convert "stages failed"
expect_ok smoketest_runs "$BIN/smoketest" --model fx --dir parts --prompt 1,5,7,9 --steps 6 --json smoke.json
printf '%s\n' "$out" | grep -qi 'preflight\|fp16' && fail smoketest_stdout_unchanged "$out" || ok smoketest_stdout_unchanged
section=$(sed -n '/^	"preflight":/,/^	}/p' smoke.json)
for k in layer_peaks fp16_overflow_layers fp16_first_nan_layer recommended_fp16_scale fp16_works; do
	printf '%s\n' "$section" | grep -q "^		\"$k\":" || missing="${missing:-} $k"
done
[ -z "${missing:-}" ] && printf '%s\n' "$section" | grep -q '"fp16_works":	true' && ok smoketest_preflight_section ||
	fail smoketest_preflight_section "missing${missing:-}: $section"
# the same code on the same prompt and steps: the peaks the preflight reports
"$PF" --model fx --prompt 1,5,7,9 --tokens 6 --json same.json -q 2>/dev/null
want=$(grep '"layer_peaks"' same.json | sed 's/.*://')
got=$(printf '%s\n' "$section" | grep '"layer_peaks"' | sed 's/.*://')
[ -n "$want" ] && [ "$want" = "$got" ] && ok smoketest_same_peaks || fail smoketest_same_peaks "preflight $want, smoketest $got"

# --- bad input -------------------------------------------------------------------------

expect_fail no_model 1 "^preflight: .*nope" "$PF" --model nope --prompt 1
expect_fail bad_scale_text 2 "^preflight: --fp16-scale: 'abc' is not auto or a number in \(0,1\]" "$PF" --model fx --fp16-scale abc
expect_fail bad_scale_zero 2 "^preflight: --fp16-scale: '0'" "$PF" --model fx --fp16-scale 0
expect_fail bad_scale_big 2 "^preflight: --fp16-scale: '1.5'" "$PF" --model fx --fp16-scale 1.5
expect_fail scale_auto_unknown 2 "^preflight: --fp16-scale auto: no entry for model 'gx_over'" "$PF" --model gx_over --fp16-scale auto
expect_fail bad_clamp 2 "^preflight: --clamp: '70000'" "$PF" --model fx --clamp 70000
expect_fail bad_tokens_zero 2 "^preflight: .*--tokens" "$PF" --model fx --tokens 0
expect_fail bad_tokens_text 2 "^preflight: .*--tokens" "$PF" --model fx --tokens x
expect_fail bad_template 2 "^preflight: --template: " "$PF" --model "$STORIES" --template jinja2
expect_fail text_and_prompt 2 "^preflight: give --text or --prompt, not both" "$PF" --model fx --text hi --prompt 1
expect_fail no_tokenizer 1 "^preflight: 'fx' has no tokenizer.json: give the prompt as --prompt IDS" "$PF" --model fx
expect_fail bad_prompt 1 "^preflight: --prompt: '1,x' is not a list of token ids below 512" "$PF" --model fx --prompt 1,x
expect_fail small_context 1 "^preflight: --context 4: the prompt \(4 tokens\) and 8 generated tokens need 11 positions" \
	"$PF" --model fx --prompt 1,5,7,9 --tokens 8 --context 4
run "$PF" --help
[ "$rc" = 0 ] && for f in --model --text --prompt --template --no-template --tokens --fp16-scale --clamp --sweep --context --json --quiet; do
	printf '%s\n' "$out" | grep -q -- "$f" || missing_help="${missing_help:-} $f"
done
[ "$rc" = 0 ] && [ -z "${missing_help:-}" ] && ok help || fail help "exit $rc, lacks${missing_help:-}"
finish
