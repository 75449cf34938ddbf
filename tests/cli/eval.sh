# eval.sh: the eval stage and make eval, as a user runs them.
#
# stories260K's parts (fp16, and LUT 4 in the layers) run over the first
# stories of tests/data/eval-en.txt in windows of 64: the reports and the
# tables equal their golden files, every token is scored once, the fp16
# parts predict as the reference does, LUT 4 worse; the bytes do not depend
# on the thread count. --table puts reports side by side, refusing reports
# of another text. Bad input is refused with one line naming it. Then make
# eval after a conversion (the bundled text by default for the bundled
# model, a rerun that does nothing, EVAL_OUTS), and the model card of dist
# showing the report, but not one of an earlier conversion.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
conv() { # conv OUT [flags for ffn/prefill]: stories260K's parts at context 64, two chunks
	local o=$1 c=(--model "$STORIES" --output "$1" --context-length 64 -q)
	shift
	"$BIN/embed" "${c[@]}" --batch-size 8 >/dev/null && "$BIN/lmhead" "${c[@]}" >/dev/null &&
		"$BIN/ffn" "${c[@]}" --batch-size 8 --chunk 2 --chunk-no 1 "$@" >/dev/null &&
		"$BIN/ffn" "${c[@]}" --batch-size 8 --chunk 2 --chunk-no 2 "$@" >/dev/null &&
		"$BIN/prefill" "${c[@]}" --batch-size 8 --chunk 2 --chunk-no 1 "$@" >/dev/null &&
		"$BIN/prefill" "${c[@]}" --batch-size 8 --chunk 2 --chunk-no 2 "$@" >/dev/null
}
# json_num FILE KEY: a number of a report
json_num() { sed -n "s/^	\"$2\":	\([-0-9.e+]*\),\{0,1\}\$/\1/p" "$1"; }

# the first four stories: about 600 tokens, ten windows of 64
awk 'NF == 0 { n++ } n < 4' "$SRC/tests/data/eval-en.txt" >text.txt
conv fp16 && conv lut4 --lut 4,4 && ok convert || fail convert "stages failed"

expect_ok fp16_runs "$BIN/eval" --model "$STORIES" --dir fp16 --text-file text.txt --json fp16.json
printf '%s\n' "$out" >fp16.table
golden fp16_report fp16.json eval_stories_fp16.json
golden fp16_table fp16.table eval_stories_fp16.txt
expect_ok lut4_runs "$BIN/eval" --model "$STORIES" --dir lut4 --text-file text.txt --json lut4.json --label "LUT2=4,4"
golden lut4_report lut4.json eval_stories_lut4.json

# Every token of the text is predicted once (the BOS starts each window of 63 text tokens).
"$BIN/eval" --model "$STORIES" --dir fp16 --text-file text.txt --check && ok check_passes || fail check_passes "--check refused"
n=$(json_num fp16.json tokens) w=$(json_num fp16.json windows)
[ "$n" -gt 500 ] && [ "$w" = $(((n + 62) / 63)) ] && ok every_token_once || fail every_token_once "$n tokens in $w windows"
# fp16 parts predict as the fp32 reference does; LUT 4 measurably worse, never better than it
awk -v a="$(json_num fp16.json perplexity)" -v b="$(json_num fp16.json reference_perplexity)" \
	-v k="$(json_num fp16.json kl_mean)" -v t="$(json_num fp16.json top1_agreement)" \
	'BEGIN { exit !(a / b < 1.001 && b / a < 1.001 && k < 1e-3 && t > 0.99) }' &&
	ok fp16_matches_reference || fail fp16_matches_reference "$(cat fp16.table)"
awk -v a="$(json_num lut4.json perplexity)" -v b="$(json_num fp16.json perplexity)" \
	-v k="$(json_num lut4.json kl_mean)" -v k0="$(json_num fp16.json kl_mean)" \
	-v r="$(json_num lut4.json reference_perplexity)" -v r0="$(json_num fp16.json reference_perplexity)" \
	'BEGIN { exit !(a > b && k > 10 * k0 && r == r0) }' && ok lut4_worse || fail lut4_worse "$(cat lut4.json)"

# The same bytes on one thread (runtime and reference) as on all.
ANEMAKE_THREADS=1 "$BIN/eval" -q --model "$STORIES" --dir lut4 --text-file text.txt --json t1.json --label "LUT2=4,4" --threads 1 &&
	cmp -s t1.json lut4.json && ok thread_count_invariant || fail thread_count_invariant "$(diff t1.json lut4.json | head -n 5)"
run "$BIN/eval" -q --model "$STORIES" --dir lut4 --text-file text.txt
[ "$rc" = 0 ] && [ -z "$out" ] && ok quiet_prints_nothing || fail quiet_prints_nothing "exit $rc: $out"

# Reports side by side; only of one text.
expect_ok table "$BIN/eval" --table fp16.json lut4.json
printf '%s\n' "$out" >both.table
golden table_two_variants both.table eval_stories_table.txt
head -c 1000 "$SRC/tests/data/eval-en.txt" >other.txt
"$BIN/eval" -q --model "$STORIES" --dir fp16 --text-file other.txt --json other.json
expect_fail table_other_text 1 "^eval: 'other\.json' measured another text than 'fp16\.json' \(other\.txt, not text\.txt\): evaluate both on the same EVAL$" \
	"$BIN/eval" --table fp16.json other.json
expect_fail table_missing_report 1 "^eval: .*'none\.json'.*: evaluate that conversion first \(make \.\.\. OUT=<its folder> EVAL=<text> eval\)$" \
	"$BIN/eval" --table fp16.json none.json
echo '{"label": "x"}' >notreport.json
expect_fail table_not_a_report 1 "^eval: 'notreport\.json' has no text: not an eval report$" "$BIN/eval" --table notreport.json
echo '[1' >broken.json
expect_fail table_broken_json 1 "^eval: 'broken\.json' is not an eval report \(a JSON object\)$" "$BIN/eval" --table broken.json

# Bad input: one line naming it, no report written.
: >empty.txt
printf 'Once upon a time.\n' >short.txt
printf 'Once\0upon' >nul.txt
mkdir -p adir nottok && cp "$STORIES"/config.json "$STORIES"/model.safetensors nottok/
E=("$BIN/eval" --model "$STORIES" --dir fp16 --json bad.json --text-file)
expect_fail missing_text 1 "^eval: --text-file: .*'nope\.txt'" "${E[@]}" nope.txt
expect_fail empty_text 1 "^eval: --text-file: 'empty\.txt': empty$" "${E[@]}" empty.txt
expect_fail nul_text 1 "^eval: --text-file: 'nul\.txt': not plain text \(a NUL byte at offset 4\)$" "${E[@]}" nul.txt
expect_fail too_few_tokens 1 "^eval: --text-file: 'short\.txt': [0-9]+ tokens, an evaluation needs at least 16$" "${E[@]}" short.txt
expect_fail text_is_a_dir 1 "^eval: --text-file: .*'adir'" "${E[@]}" adir
expect_fail no_tokenizer 1 "^eval: --text-file: 'nottok' has no tokenizer\.json to read the text with$" \
	"$BIN/eval" --model nottok --dir fp16 --text-file text.txt
[ ! -e bad.json ] && ok no_report_on_error || fail no_report_on_error "bad.json written"
cp -r fp16 argmax && "$BIN/lmhead" --model "$STORIES" --output argmax --context-length 64 --argmax -q >/dev/null
expect_fail argmax_head 1 "^eval: .*lm_head.*: the LM head gives argmax tokens, not logits: evaluate a conversion without ARGMAX$" \
	"$BIN/eval" --model "$STORIES" --dir argmax --text-file text.txt
expect_fail no_parts 2 "^eval: give --meta or --dir \(one of them\) \(see eval --help\)$" "$BIN/eval" --model "$STORIES" --text-file text.txt
expect_fail no_text 2 "^eval: give --model and --text-file \(see eval --help\)$" "$BIN/eval" --model "$STORIES" --dir fp16
expect_fail table_without_reports 2 "^eval: --table needs the reports to print \(see eval --help\)$" "$BIN/eval" --table
expect_fail stray_argument 2 "^eval: unexpected argument 'x\.json' \(reports go with --table\) \(see eval --help\)$" \
	"$BIN/eval" --model "$STORIES" --dir fp16 --text-file text.txt x.json

# make eval after a conversion (the bundled text by default for the bundled
# model: make -n shows it); a second make eval only prints the table; EVAL_OUTS
# adds other folders.
M=(MODEL="$STORIES" CONTEXT=64 BATCH=16 CHUNK=1 LUT2=4,4 LUT3=6 STEPS=4 NEXT_STEPS=)
run pipe "${M[@]}" OUT="$SCRATCH/m" -n eval
[ "$rc" = 0 ] && grep -q -- "--text-file 'tests/data/eval-en.txt'" <<<"$out" && ok make_eval_default_text ||
	fail make_eval_default_text "exit $rc: $out $err"
M+=(EVAL="$SCRATCH/text.txt")
run pipe "${M[@]}" OUT="$SCRATCH/m" eval
if [ "$rc" = 0 ] && grep -q '"text":	"text.txt"' m/eval.json && printf '%s\n' "$out" | grep -q '^text\.txt: [0-9]* tokens in [0-9]* windows of 64, stories260K$' &&
	printf '%s\n' "$out" | grep -q '^m  '; then ok make_eval; else fail make_eval "exit $rc: $out $(tail -n 3 <<<"$err")"; fi
run pipe "${M[@]}" OUT="$SCRATCH/m" eval
[ "$rc" = 0 ] && ! grep -q 'evaluation \.\.\.' <<<"$err" && grep -q '^m  ' <<<"$out" && ok make_eval_again_does_nothing ||
	fail make_eval_again_does_nothing "exit $rc: $err"
run pipe "${M[@]}" OUT="$SCRATCH/m6" LUT2=6,4 EVAL_LABEL=lut6 eval EVAL_OUTS="$SCRATCH/m"
[ "$rc" = 0 ] && [ "$(printf '%s\n' "$out" | grep -cE '^(lut6|m) ')" = 2 ] && ok make_eval_outs || fail make_eval_outs "exit $rc: $out $err"

# The card shows the report; after another conversion into the folder, not the old one.
if command -v zipinfo >/dev/null; then
	run pipe "${M[@]}" OUT="$SCRATCH/m" dist
	card=m/hf_dist/standard/README.md
	[ "$rc" = 0 ] && grep -q '^## Perplexity$' "$card" && grep -qE '^\| perplexity \| [0-9.]+ \| [0-9.]+ \|$' "$card" &&
		grep -q '`text.txt` ([0-9]* tokens, [0-9]* windows of 64 positions)' "$card" && ok card_shows_eval ||
		fail card_shows_eval "exit $rc: $(tail -n 3 <<<"$err")"
	run pipe "${M[@]}" OUT="$SCRATCH/m" LUT2=6,4 dist
	[ "$rc" = 0 ] && ! grep -q '^## Perplexity$' "$card" &&
		grep -q "eval.json' measured an earlier conversion (meta.yaml changed since): the model card leaves it out; rerun make eval$" <<<"$err" &&
		ok card_leaves_out_stale_eval || fail card_leaves_out_stale_eval "exit $rc: $err"
else
	skip card_shows_eval "needs zipinfo (unzip), as make dist does"
fi
finish
