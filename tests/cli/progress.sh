# progress.sh: progress on stderr (base/progress.h) and make's step summary
# (base/runstats.h, mk/step.sh).
#
# ANEMAKE_PROGRESS=1 shows a line per tensor, part, function or token and a
# closing line, and changes no output byte; a short run by default shows
# nothing; every step make runs ends in one line with its wall time, CPU
# time and peak memory.
. "$SRC/tests/cli/lib.sh"
"$TESTBIN/mkfixture" --arch llama --out fx --layers 3 --seed 2 >/dev/null

# --- a stage: one line per tensor, same bytes ------------------------------------
ffn() { "$BIN/ffn" --model fx --output "$1" --lut 6 --chunk 1; }
ANEMAKE_PROGRESS=1 run ffn p1
printf '%s\n' "$err" >p1.err
ANEMAKE_PROGRESS=0 run ffn p0
printf '%s\n' "$err" >p0.err
# 3 layers of 7 tensors, each counted once, in order
n=$(grep -cE '^ffn: llama_FFN_lut6_chunk_01of01\.mlpackage: tensor [0-9]+ of 21, [0-9.]+ of [0-9.]+ MB, [0-9.]+ MB/s' p1.err)
last=$(grep -E ': tensor [0-9]+ of 21' p1.err | tail -n 1 | sed 's/.*tensor \([0-9]*\) of.*/\1/')
if [ "$n" = 21 ] && [ "$last" = 21 ] &&
	grep -qE '^ffn: llama_FFN_lut6_chunk_01of01\.mlpackage: 21 tensors, [0-9.]+ MB in [0-9.]+ s$' p1.err; then
	ok ffn_tensor_lines
else fail ffn_tensor_lines "$n lines, last $last: $(head -c 400 p1.err)"; fi
grep -qE ': tensor [0-9]+ of |: [0-9]+ tensors, ' p0.err && fail ffn_off_silent "$(cat p0.err)" || ok ffn_off_silent
diff -r p0 p1 >/dev/null && ok ffn_same_bytes || fail ffn_same_bytes "$(diff -r p0 p1 | head -n 3)"
# by default a run this short says nothing more than with progress off
(unset ANEMAKE_PROGRESS; "$BIN/ffn" --model fx --output pd --lut 6 --chunk 1 >/dev/null 2>pd.err)
diff <(sed 's/pd/p0/g' pd.err) p0.err >/dev/null && ok ffn_short_run_silent || fail ffn_short_run_silent "$(cat pd.err)"

# --- the pipeline: every stage reports, the summary of every step -----------------
pipe() {
	make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" MODEL="$SCRATCH/fx" OUT="$SCRATCH/$1" LUT2=6 CHUNK=2 \
		CONTEXT=64 BATCH=8 STEPS=4 PROMPT_IDS=1,2,3 MIN_AGREEMENT=0 MAX_KL=1e9 NEXT_STEPS= 2>"$1.err" >/dev/null
}
ANEMAKE_PROGRESS=1 pipe m1 && ok make_with_progress || fail make_with_progress "$(tail -n 5 m1.err)"
ANEMAKE_PROGRESS=0 pipe m0 && ok make_without_progress || fail make_without_progress "$(tail -n 5 m0.err)"
missing=
for re in '^embed: llama_embeddings\.mlpackage: tensor 1 of 1, ' '^lmhead: llama_lm_head_lut6\.mlpackage: tensor 8 of 8, ' \
	'^prefill: llama_prefill_lut6_chunk_02of02\.mlpackage: tensor [0-9]+ of [0-9]+, ' \
	'^combine: llama_FFN_PF_lut6_chunk_01of02\.mlpackage: function 2 of 2, ' '^compile: compile: part 4 of 4, [0-9.]+ of [0-9.]+ MB' \
	'^smoketest: runtime and reference: token 10 of 10, [0-9.]+ tokens/s$' '^smoketest: runtime and reference: 10 tokens in '; do
	grep -qE "$re" m1.err || missing="$missing /$re/"
done
[ -z "$missing" ] && ok every_stage_reports || fail every_stage_reports "missing$missing"
# (meta.yaml names its folder, smoketest.json the speed it measured)
if diff -r --exclude=.anemake --exclude=meta.yaml --exclude=smoketest.json m0 m1 >/dev/null &&
	diff m0/meta.yaml <(sed 's|/m1$|/m0|' m1/meta.yaml) >/dev/null &&
	diff <(grep -v tokens_per_second m0/smoketest.json) <(grep -v tokens_per_second m1/smoketest.json) >/dev/null
then ok make_same_bytes; else fail make_same_bytes "$(diff -r --exclude=.anemake m0 m1 | head -n 3)"; fi
# one summary per step: wall, CPU, peak RSS and, on Linux, peak anonymous memory
anon=
[ -r /proc/self/status ] && anon=', anonymous [0-9]+ MB'
started=$(grep -c '^anemake: .* \.\.\.$' m0.err)
summed=$(grep -cE "^anemake: .* done \([0-9]+\.[0-9] s, CPU [0-9]+\.[0-9] s, peak RSS [0-9]+ MB$anon\)\$" m0.err)
if [ "$started" -ge 9 ] && [ "$summed" = "$started" ]; then ok step_summaries
else fail step_summaries "$summed summaries of $started steps: $(grep '^anemake: .* done' m0.err | head -n 3)"; fi
grep -q 'stats.tmp' <(ls -a m0/.anemake) && fail no_stats_left "$(ls -a m0/.anemake)" || ok no_stats_left
finish
