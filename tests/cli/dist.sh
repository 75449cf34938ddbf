# dist.sh: make dist, ANEMLL's prepare_hf layout with a model card.
#
# Four conversions (stories260K chunked with LUTs, a monolithic Llama, a
# Qwen 3 with the argmax in its LM head, a Gemma 3 with SPLIT_ROTATE=1) go
# through `make ... dist`: DIST/standard and DIST/ios match the layout golden
# files (every path, every zip's entries), ship exactly the parts meta.yaml
# names, and the card states the smoketest's measurements (no KL for an
# argmax head, the Swift gap for split-rotate) and the source card's license
# and base_model. A second make does nothing; another NAME, or a preflight
# report appearing, reruns dist only (the card then states its verdict).
# Two runs into two paths, with other mtimes and another TZ, give
# byte-identical files. Bad input (no meta.yaml, a missing part, a weight
# over the limit, a stale smoketest report, a read-only DIST, a full disk)
# is refused with one line and nothing under the final names.
. "$SRC/tests/cli/lib.sh"
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
steps_run() { sed -n 's/^anemake: \(.*\) \.\.\.$/\1/p' "$1" | sort; }

if ! command -v zipinfo >/dev/null; then
	skip dist "needs zipinfo (unzip) to list the archives"
	finish
fi
# layout DIR: every path under DIR, then each archive's entries
layout() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort
	 for z in standard/*.zip; do echo "== $z"; zipinfo -1 "$z"; done)
}
# shipped OUT DIST: the .mlmodelc meta.yaml names (ffn/pf chunk 1 expanded) vs the archives
shipped() {
	local n first pf c
	n=$(sed -n 's/^    num_chunks: //p' "$1/meta.yaml")
	{
		sed -n 's/^    \(embeddings\|lm_head\|monolithic_model\): //p' "$1/meta.yaml"
		for key in ffn pf; do
			first=$(sed -n "s/^    $key: //p" "$1/meta.yaml")
			[ -n "$first" ] || continue
			for ((c = 1; c <= n; c++)); do echo "${first/_chunk_01of/_chunk_$(printf %02d $c)of}"; done
		done
	} | LC_ALL=C sort
}
check_shipped() {
	local d
	d=$(diff <(shipped "$2") <(cd "$3/standard" && ls *.zip | sed 's/\.zip$//' | LC_ALL=C sort))$(diff <(shipped "$2") <(cd "$3/ios" && ls -d *.mlmodelc | LC_ALL=C sort))
	[ -z "$d" ] && ok "$1" || fail "$1" "$(echo "$d" | tr '\n' ' ')"
}
card_has() { # NAME CARD FIXED-STRING...
	local name=$1 card=$2 s
	shift 2
	for s in "$@"; do grep -qF -- "$s" "$card" || { fail "$name" "no '$s' in the card"; return; }; done
	ok "$name"
}

# --- stories260K, chunked, LUT6 FFN and head, with a source card ----------------------
cp -r "$SRC/tests/models/stories260K" stories
printf -- '---\nlicense: mit\nbase_model:\n- karpathy/tinyllamas\ntags:\n- story\n---\n# stories260K\n' >stories/README.md
S=(MODEL="$SCRATCH/stories" OUT="$SCRATCH/s" LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=128 BATCH=16 STEPS=8 PROMPT="Once upon a time")
run pipe "${S[@]}" dist
printf '%s\n' "$err" >s.log
if [ "$rc" = 0 ]; then ok chunked_dist; else fail chunked_dist "exit $rc: $(grep -v '^anemake' s.log | tail -n 3)"; fi
layout s/hf_dist >s.layout
golden chunked_layout s.layout dist/chunked.txt
check_shipped chunked_ships_what_meta_names s s/hf_dist
grep -q '^dist: upload with: hf upload anemll/anemll-stories-ctx128_0.3.5 .*s/hf_dist/standard$' s.log &&
	ok prints_upload_command || fail prints_upload_command "$(grep upload s.log)"
printf '{\n  "tokenizer_class": "LlamaTokenizer",\n  "model_type": "llama"\n}' >want_config.json
cmp -s want_config.json s/hf_dist/standard/config.json && cmp -s want_config.json s/hf_dist/ios/config.json &&
	ok config_json_as_prepare_hf || fail config_json_as_prepare_hf "$(cat s/hf_dist/standard/config.json)"
cmp -s s/meta.yaml s/hf_dist/standard/meta.yaml && cmp -s s/tokenizer.json s/hf_dist/ios/tokenizer.json &&
	ok copies_meta_and_tokenizer || fail copies_meta_and_tokenizer "differ"
agree=$(sed -n 's/.*"top1_agreement":[[:space:]]*\([0-9.]*\).*/\1/p' s/smoketest.json | head -n 1)
pct=$(awk -v a="$agree" 'BEGIN { printf "%.1f%%", 100 * a }')
card_has chunked_card s/hf_dist/standard/README.md '| result | **PASS** |' "| top-1 agreement with fp32 | $pct" \
	'| decode steps | 8 |' 'KL divergence (fp32 to converted) | mean ' 'license: "mit"' '- "karpathy/tinyllamas"' \
	'library_name: coreml' '| `llama_FFN_PF_lut6_chunk_02of02.mlmodelc` | FFN chunk 2 | 6-bit, one LUT per 4 output channels |' \
	'python chat.py --meta ./meta.yaml' 'anemllcli --meta' 'ANEMLL Chat app' 'Once upon a time' \
	'make MODEL=<the source model> CONTEXT=128 BATCH=16 LUT1= LUT2=6,4 LUT3=6 CHUNK=2'
cmp -s s/hf_dist/standard/README.md s/hf_dist/ios/README.md && ok same_card_both_layouts || fail same_card_both_layouts differ

run pipe "${S[@]}" dist
printf '%s\n' "$err" >s2.log
[ "$rc" = 0 ] && [ -z "$(steps_run s2.log)" ] && ok second_make_does_nothing || fail second_make_does_nothing "$(steps_run s2.log | tr '\n' ,)"
run pipe "${S[@]}" NAME=my-model ORG=me dist
printf '%s\n' "$err" >s3.log
[ "$(steps_run s3.log)" = distribution ] && grep -q 'hf upload me/my-model ' s3.log && grep -qx '# my-model' s/hf_dist/standard/README.md &&
	ok name_reruns_dist_only || fail name_reruns_dist_only "$(steps_run s3.log | tr '\n' ,) $(grep upload s3.log)"

# NAME from the environment (some shells export the host name as NAME) is not the repository's.
NAME=envhost pipe "${S[@]}" dist >/dev/null 2>&1
grep -qx '# anemll-stories-ctx128_0.3.5' s/hf_dist/standard/README.md && ok name_not_from_environment ||
	fail name_not_from_environment "$(grep -m1 '^# ' s/hf_dist/standard/README.md)"

# A preflight report appears: dist reruns (alone) and the card states its verdict.
pipe "${S[@]}" preflight >/dev/null 2>&1
run pipe "${S[@]}" NAME=my-model ORG=me dist
printf '%s\n' "$err" >s4.log
[ "$(steps_run s4.log)" = distribution ] && grep -qF '| ANE compatible | yes' s/hf_dist/standard/README.md &&
	ok preflight_report_reruns_dist || fail preflight_report_reruns_dist "$(steps_run s4.log | tr '\n' ,) $(grep -A3 'FP16 range' s/hf_dist/standard/README.md)"

# --- byte-identical: two runs, two paths, other mtimes, another zone -------------------
cp -r s s_copy
rm -rf s_copy/hf_dist s_copy/.anemake
find s_copy -exec touch -d '2021-03-04 05:06:07' {} +
"$BIN/dist" -q --input s --output "$SCRATCH/r1" --name same --model "$SCRATCH/stories" >/dev/null 2>&1
TZ=America/New_York "$BIN/dist" -q --input s_copy --output "$SCRATCH/deeper/r2" --name same --model "$SCRATCH/stories" >/dev/null 2>&1
d=$(diff -r r1 deeper/r2 2>&1 | head -n 3)
[ -z "$d" ] && [ -n "$(ls r1/standard/*.zip 2>/dev/null)" ] && ok byte_identical_across_runs_and_paths || fail byte_identical_across_runs_and_paths "$d"
SOURCE_DATE_EPOCH=1700000000 "$BIN/dist" -q --input s --output "$SCRATCH/r3" --name same >/dev/null 2>&1
zipinfo r3/standard/llama_embeddings.mlmodelc.zip | grep -q '23-Nov-14 22:13' && zipinfo r1/standard/llama_embeddings.mlmodelc.zip | grep -q '80-Jan-01 00:00' &&
	ok source_date_epoch || fail source_date_epoch "$(zipinfo r3/standard/llama_embeddings.mlmodelc.zip | sed -n 3p)"
zipinfo r1/standard/llama_FFN_PF_lut6_chunk_01of02.mlmodelc.zip | grep -q 'rw-r--r--.* stor .*weights/weight.bin$' &&
	zipinfo r1/standard/llama_FFN_PF_lut6_chunk_01of02.mlmodelc.zip | grep -q 'rw-r--r--.* defX .*model.mil$' &&
	ok weight_stored_rest_deflated || fail weight_stored_rest_deflated "$(zipinfo r1/standard/llama_FFN_PF_lut6_chunk_01of02.mlmodelc.zip)"
unzip -tq r1/standard/llama_FFN_PF_lut6_chunk_01of02.mlmodelc.zip >/dev/null && ok unzip_tests_clean || fail unzip_tests_clean "$(unzip -t r1/standard/*chunk_01*.zip | tail -n 2)"

# Without a smoketest report the card claims nothing and dist says so.
cp -r s s_nosmoke
rm -rf s_nosmoke/hf_dist s_nosmoke/smoketest.json s_nosmoke/preflight.json
run "$BIN/dist" -q --input s_nosmoke
printf '%s' "$err" | grep -q 'no smoketest report' && grep -q '^Not measured: no smoketest report' s_nosmoke/hf_dist/standard/README.md &&
	! grep -q 'top-1 agreement' s_nosmoke/hf_dist/standard/README.md && ok no_report_claims_nothing ||
	fail no_report_claims_nothing "exit $rc: $err"

# A model from the HF cache: base_model is its hub id (the source card's own base_model is
# what that model derives from), the license still carried.
mkdir -p hub/models--karpathy--stories260K/snapshots/abc
cp stories/* hub/models--karpathy--stories260K/snapshots/abc/
HF_HUB_CACHE=$SCRATCH/hub "$BIN/dist" -q --input s --output "$SCRATCH/h" --model karpathy/stories260K >/dev/null 2>&1
grep -qx -- '- "karpathy/stories260K"' h/standard/README.md && ! grep -q tinyllamas h/standard/README.md &&
	grep -qx 'license: "mit"' h/standard/README.md && ok base_model_is_hub_id || fail base_model_is_hub_id "$(sed -n '1,/^# /p' h/standard/README.md | tr '\n' ' ')"

# --- bad input: one line, nothing under the final names ---------------------------------
nothing_written() { # NAME DIST
	local left
	left=$(find "$2" -mindepth 1 2>/dev/null | head -n 3)
	[ -z "$left" ] && ok "$1" || fail "$1" "left: $left"
}
mkdir empty
expect_fail no_meta_yaml 1 "'empty' has no meta.yaml" "$BIN/dist" -q --input empty --output "$SCRATCH/b1"
nothing_written no_meta_yaml_writes_nothing b1
cp -r s s_missing
rm -rf s_missing/hf_dist s_missing/llama_FFN_PF_lut6_chunk_02of02.mlmodelc
expect_fail missing_part 1 "llama_FFN_PF_lut6_chunk_02of02.mlmodelc' is missing: meta.yaml names it" \
	"$BIN/dist" -q --input s_missing --output "$SCRATCH/b2"
nothing_written missing_part_writes_nothing b2
expect_fail weight_over_limit 1 "weight.bin': [0-9]+ bytes .*over the 0.1 MB platform limit" \
	"$BIN/dist" -q --input s --output "$SCRATCH/b3" --max-weight-mb 0.1
nothing_written weight_over_limit_writes_nothing b3
cp -r s s_stale
rm -rf s_stale/hf_dist
sed -i 's/lm_head_lut6/lm_head_lut4/' s_stale/smoketest.json
expect_fail stale_smoketest 1 "tested 'llama_lm_head_lut4.mlmodelc', which meta.yaml does not name" \
	"$BIN/dist" -q --input s_stale --output "$SCRATCH/b4"
nothing_written stale_smoketest_writes_nothing b4
expect_fail bad_name 2 "--name: 'a/b' is not" "$BIN/dist" --input s --name a/b
# An earlier distribution survives a failed one untouched.
"$BIN/dist" -q --input s --output "$SCRATCH/keep" >/dev/null 2>&1
sum() { (cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum); }
before=$(sum keep)
run "$BIN/dist" -q --input s_missing --output "$SCRATCH/keep"
[ "$rc" = 1 ] && [ "$before" = "$(sum keep)" ] && [ -z "$(ls keep | grep -v '^\(standard\|ios\)$')" ] &&
	ok failure_keeps_old_distribution || fail failure_keeps_old_distribution "exit $rc; $(ls keep)"

mkdir -p ro full
if mount -t tmpfs -o size=64k,ro tmpfs ro 2>/dev/null; then
	expect_fail read_only_dist 1 "cannot create .*Read-only file system" "$BIN/dist" -q --input s --output "$SCRATCH/ro/d"
	nothing_written read_only_writes_nothing ro
	umount ro
else
	skip read_only_dist "cannot mount a read-only tmpfs (needs root)"
fi
if mount -t tmpfs -o size=64k tmpfs full 2>/dev/null; then
	expect_fail full_disk 1 "No space left on device" "$BIN/dist" -q --input s --output "$SCRATCH/full/d"
	left=$(find full -mindepth 2 | head -n 3)
	[ -z "$left" ] && ok full_disk_writes_nothing || fail full_disk_writes_nothing "left: $left"
	umount full
else
	skip full_disk "cannot mount a 64k tmpfs (needs root)"
fi

# --- monolithic, argmax, split-rotate ---------------------------------------------------
"$TESTBIN/mkfixture" --arch llama --out ll --layers 2 --seed 1 >/dev/null
run pipe MODEL="$SCRATCH/ll" OUT="$SCRATCH/m" MONOLITHIC=1 CONTEXT=64 BATCH=8 LUT=none STEPS=8 dist
if [ "$rc" = 0 ]; then ok monolithic_dist; else fail monolithic_dist "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"; fi
layout m/hf_dist >m.layout
golden monolithic_layout m.layout dist/monolithic.txt
check_shipped monolithic_ships_what_meta_names m m/hf_dist
card_has monolithic_card m/hf_dist/standard/README.md '| layout | monolithic: one model with 2 functions |' \
	'| `llama_monolithic_full.mlmodelc` | monolithic | none (fp16) |' '| result | **PASS** |' 'MONOLITHIC=1 LUT=none'

"$TESTBIN/mkfixture" --arch qwen3 --out q3 --layers 2 --seed 3 >/dev/null
run pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/a" ARGMAX=1 LUT2= LUT3= CHUNK=1 CONTEXT=64 BATCH=8 STEPS=8 dist
if [ "$rc" = 0 ]; then ok argmax_dist; else fail argmax_dist "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"; fi
layout a/hf_dist >a.layout
golden argmax_layout a.layout dist/argmax.txt
check_shipped argmax_ships_what_meta_names a a/hf_dist
card_has argmax_card a/hf_dist/standard/README.md '| LM head | argmax in the model' \
	'| KL divergence | not measured: the LM head returns argmax tokens, not logits |' ' ARGMAX=1'
grep -q 'KL divergence (fp32' a/hf_dist/standard/README.md && fail argmax_claims_no_kl "states a KL" || ok argmax_claims_no_kl

"$TESTBIN/mkfixture" --arch gemma3_text --out g3 --layers 3 --layer-types s,s,f --sliding-window 32 --seed 4 >/dev/null
run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/g" SPLIT_ROTATE=1 CHUNK=2 CONTEXT=64 BATCH=8 LUT1= LUT2= LUT3= STEPS=8 \
	PROMPT_IDS=2,17,33,49,65,81,97,113,129,145 dist
if [ "$rc" = 0 ]; then ok split_rotate_dist; else fail split_rotate_dist "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"; fi
layout g/hf_dist >g.layout
golden split_rotate_layout g.layout dist/split_rotate.txt
check_shipped split_rotate_ships_what_meta_names g g/hf_dist
printf '{\n  "tokenizer_class": "GemmaTokenizer",\n  "model_type": "gemma"\n}' >want_gemma.json
cmp -s want_gemma.json g/hf_dist/ios/config.json && ok gemma_config_json || fail gemma_config_json "$(cat g/hf_dist/ios/config.json)"
card_has split_rotate_card g/hf_dist/standard/README.md '| layout | 2 FFN chunks, each in two files (split rotate) |' \
	'| rotate functions of FFN chunk 2 |' 'does not load: use `chat.py`' '| sliding window | 32 |' 'SPLIT_ROTATE=1' \
	'## FP16 range'
# Last, as it moves s's distribution: DIST is a folder of OUT (make records and checks only what is in OUT): a nested
# one works, one outside is refused by the plan before anything runs.
run pipe "${S[@]}" DIST="$SCRATCH/s/ship/here" dist
[ "$rc" = 0 ] && [ -f s/ship/here/standard/meta.yaml ] && ok dist_nested_in_out || fail dist_nested_in_out "exit $rc: $(tail -n 2 <<<"$err")"
run pipe "${S[@]}" DIST="$SCRATCH/elsewhere" dist
[ "$rc" != 0 ] && grep -q "^anemake: DIST=$SCRATCH/elsewhere is not inside OUT=" <<<"$err" && [ ! -e elsewhere ] &&
	ok dist_outside_out_refused || fail dist_outside_out_refused "exit $rc: $err"
finish
