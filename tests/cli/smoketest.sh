# smoketest.sh: the smoketest stage as a user runs it.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K
conv() { # conv MODEL OUT [extra flags for ffn/prefill]
	local m=$1 o=$2; shift 2
	"$BIN/embed" --model "$m" --output "$o" --batch-size 8 -q >/dev/null &&
	"$BIN/lmhead" --model "$m" --output "$o" -q >/dev/null &&
	"$BIN/ffn" --model "$m" --output "$o" --batch-size 8 -q "$@" >/dev/null &&
	"$BIN/prefill" --model "$m" --output "$o" --batch-size 8 -q "$@" >/dev/null
}

conv "$STORIES" parts --chunk 2 && ok convert || fail convert "stages failed"
expect_ok stories_passes "$BIN/smoketest" --model "$STORIES" --dir parts --steps 48 --json report.json
printf '%s\n' "$out" | grep -q '^generated: 403,407,261,378,432,383,286,261,376,298,315,421,395,317,426,338,401,396,267,337,410,408,419,292,411,322,265,282,295,433,426,385,328,432,358,394,261,370,432,352,266,268,388,426,338,391,266,267$' &&
	ok stories_known_greedy_output || fail stories_known_greedy_output "$out"
printf '%s\n' "$out" | grep -q '^top-1 agreement 100.0% (48/48' && ok stories_agreement || fail stories_agreement "$out"
grep -q '"passed":	true' report.json && grep -q '"kl_mean"' report.json && grep -q '"last_hidden_cosine"' report.json && grep -q '"tokens_per_second"' report.json && ok json_report || fail json_report "$(head -c 300 report.json)"
expect_ok prompt_longer_than_batch "$BIN/smoketest" --model "$STORIES" --dir parts --prompt 1,403,407,261,378,432,383,286,261,376,298 --steps 8
expect_ok infer_only "$BIN/smoketest" --model "$STORIES" --dir parts --prompt 1,403,407,261,378,432,383,286,261,376,298 --steps 8 --no-prefill

# a conversion of another model must fail the comparison: exit 1
"$TESTBIN/mkfixture" --arch llama --out fxa --seed 1 --vocab 512 >/dev/null
"$TESTBIN/mkfixture" --arch llama --out fxb --seed 2 --vocab 512 >/dev/null
conv fxa parts_a
run "$BIN/smoketest" --model fxb --dir parts_a --steps 8
[ "$rc" = 1 ] && printf '%s\n' "$out" | grep -q '^FAIL' && ok wrong_model_fails || fail wrong_model_fails "exit $rc: $out $err"
expect_ok right_model_passes "$BIN/smoketest" --model fxa --dir parts_a --steps 8

mkdir -p empty
expect_fail no_parts 1 "^smoketest: 'empty': no embeddings part" "$BIN/smoketest" --model "$STORIES" --dir empty
expect_fail bad_prompt 1 "^smoketest: --prompt: 'x,1' is not a list of token ids" "$BIN/smoketest" --model "$STORIES" --dir parts --prompt x,1
expect_fail prompt_out_of_vocab 1 "^smoketest: --prompt: .*below 512" "$BIN/smoketest" --model "$STORIES" --dir parts --prompt 1,999
expect_fail too_long 1 "does not fit the context" "$BIN/smoketest" --model "$STORIES" --dir parts --steps 600
expect_fail no_dir 2 "^smoketest: give --meta or --dir" "$BIN/smoketest" --model "$STORIES"
expect_fail bad_threshold 2 "^smoketest: --max-kl: 'abc'" "$BIN/smoketest" --model "$STORIES" --dir parts --max-kl abc
finish
