# combine.sh: the combine stage as a user runs it.
#
# A random tiny Llama (2 layers, context 64, batch 8) converted in 2 chunks
# with --lut 6 and without: file names, stdout/stderr, weight.bin no larger
# than the FFN's, --chunk-no, --output, determinism, a golden description;
# Gemma-style 4-function combination, split rotate (FFN_PF + _rot), the
# monolithic combination (2 and 4 functions); errors: usage (exit 2), missing
# sources, mismatched states, ambiguous prefix/LUT/chunk count (exit 1, one
# line, nothing written). With ../shared: ANEMLL's own FFN + prefill give
# exactly ANEMLL's combined package listing and weight.bin.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-llama-tiny

# no_combined NAME DIR: no combined package (final or temporary) in DIR, which holds the sources
no_combined() {
	if [ -n "$(ls -A "$2" 2>/dev/null | grep -E 'FFN_PF|\.tmp\.')" ]; then fail "$1" "left behind: $(ls "$2")"; else ok "$1"; fi
}
wsize() { wc -c <"$1/Data/com.apple.CoreML/weights/weight.bin" | tr -d ' '; }
# conv MODEL OUT FLAGS...: ffn + prefill chunks
conv() {
	local m=$1 o=$2
	shift 2
	"$BIN/ffn" --model "$m" --output "$o" --context-length 64 --batch-size 8 -q "$@" >/dev/null &&
		"$BIN/prefill" --model "$m" --output "$o" --context-length 64 --batch-size 8 -q "$@" >/dev/null
}

"$TESTBIN/mkfixture" --arch llama --out fx --seed 3 >/dev/null
"$TESTBIN/mkfixture" --arch llama --out fx_kv1 --seed 3 --kv-heads 1 >/dev/null
conv fx parts --chunk 2 --lut 6 && conv fx plain --chunk 2 && ok convert || fail convert "stages failed"

# --- the normal run ---------------------------------------------------------------
expect_ok combine_lut6 "$BIN/combine" --input parts
[ "$out" = "parts/llama_FFN_PF_lut6_chunk_01of02.mlpackage
parts/llama_FFN_PF_lut6_chunk_02of02.mlpackage" ] && ok prints_paths || fail prints_paths "stdout: $out"
printf '%s' "$err" | grep -q 'saved [0-9]* bytes' && ok reports_saving || fail reports_saving "stderr: $err"
for c in 01 02; do
	f=$(wsize parts/llama_FFN_lut6_chunk_${c}of02.mlpackage) p=$(wsize parts/llama_FFN_PF_lut6_chunk_${c}of02.mlpackage)
	echo "# chunk $c: FFN weight.bin $f bytes, combined $p bytes"
	[ "$p" -le $((f + f / 20)) ] && ok "size_chunk_$c" || fail "size_chunk_$c" "combined $p bytes vs FFN $f"
done
[ -d parts/llama_FFN_lut6_chunk_01of02.mlpackage ] && [ -d parts/llama_prefill_lut6_chunk_02of02.mlpackage ] &&
	ok sources_kept || fail sources_kept "$(ls parts)"
"$BIN/mldump" parts/llama_FFN_PF_lut6_chunk_02of02.mlpackage >pf.txt
sed -n '1,/^program function/p' pf.txt | sed '$d' >pf_desc.txt
golden description pf_desc.txt combine_llama_lut6_chunk02_desc.txt
grep -c '^program function "\(infer\|prefill\)" opset "CoreML8"' pf.txt | grep -qx 2 && ok program_functions ||
	fail program_functions "$(grep '^program function' pf.txt)"

expect_ok combine_plain "$BIN/combine" --input plain --lut none --output plain_out --keep-sources
[ "$out" = "plain_out/llama_FFN_PF_chunk_01of02.mlpackage
plain_out/llama_FFN_PF_chunk_02of02.mlpackage" ] && ok output_dir || fail output_dir "stdout: $out"
[ "$(wsize plain_out/llama_FFN_PF_chunk_01of02.mlpackage)" -le "$(wsize plain/llama_FFN_chunk_01of02.mlpackage)" ] &&
	ok plain_size || fail plain_size "combined larger than the FFN"

expect_ok chunk_no "$BIN/combine" --input parts --output one --chunk-no 2
[ "$(ls one)" = llama_FFN_PF_lut6_chunk_02of02.mlpackage ] && ok chunk_no_only_k || fail chunk_no_only_k "$(ls one)"
"$BIN/combine" --input parts --output again -q >/dev/null
diff -r parts/llama_FFN_PF_lut6_chunk_01of02.mlpackage again/llama_FFN_PF_lut6_chunk_01of02.mlpackage >/dev/null &&
	diff -r parts/llama_FFN_PF_lut6_chunk_02of02.mlpackage again/llama_FFN_PF_lut6_chunk_02of02.mlpackage >/dev/null &&
	ok deterministic || fail deterministic "second run differs"

# --- Gemma-style: infer, infer_rotate, prefill, prefill_rotate ----------------------
mkdir -p rot
for p in FFN prefill; do
	cp -r parts/llama_${p}_lut6_chunk_01of02.mlpackage rot/
	cp -r parts/llama_${p}_lut6_chunk_01of02.mlpackage rot/llama_${p}_rotate_lut6_chunk_01of02.mlpackage
done
expect_ok rotate "$BIN/combine" --input rot --chunk 2 --chunk-no 1
"$BIN/mldump" rot/llama_FFN_PF_lut6_chunk_01of02.mlpackage >rot.txt
[ "$(grep '^function' rot.txt | tr '\n' ' ')" = 'function "infer" function "infer_rotate" function "prefill" function "prefill_rotate" ' ] &&
	grep -q '^default "infer"' rot.txt && grep -q 'shortDescription = "Anemll Model: Multifunction FFN+Prefill"' rot.txt &&
	ok rotate_functions || fail rotate_functions "$(grep -E '^(function|default)' rot.txt | tr '\n' ' ')"
[ "$(wsize rot/llama_FFN_PF_lut6_chunk_01of02.mlpackage)" = "$(wsize rot/llama_FFN_lut6_chunk_01of02.mlpackage)" ] &&
	ok rotate_shares_weights || fail rotate_shares_weights "weight.bin grew"
rm -r rot/llama_prefill_rotate_lut6_chunk_01of02.mlpackage rot/llama_FFN_PF_lut6_chunk_01of02.mlpackage
expect_fail rotate_half_missing 1 "^combine: missing source package 'rot/llama_prefill_rotate_lut6_chunk_01of02.mlpackage'$" \
	"$BIN/combine" --input rot --chunk 2 --chunk-no 1
no_combined rotate_half_missing_nothing rot

# --- split rotate: FFN_PF (infer, prefill) + FFN_PF..._rot (infer_rotate, prefill_rotate) --
mkdir -p split
for p in FFN prefill; do
	cp -r parts/llama_${p}_lut6_chunk_01of02.mlpackage split/
	cp -r parts/llama_${p}_lut6_chunk_01of02.mlpackage split/llama_${p}_rotate_lut6_chunk_01of02.mlpackage
done
expect_ok split_rotate "$BIN/combine" --input split --chunk 2 --chunk-no 1 --split-rotate
[ "$out" = "split/llama_FFN_PF_lut6_chunk_01of02.mlpackage
split/llama_FFN_PF_lut6_chunk_01of02_rot.mlpackage" ] && ok split_rotate_paths || fail split_rotate_paths "stdout: $out"
"$BIN/mldump" split/llama_FFN_PF_lut6_chunk_01of02.mlpackage >split.txt
"$BIN/mldump" split/llama_FFN_PF_lut6_chunk_01of02_rot.mlpackage >split_rot.txt
[ "$(grep -E '^(function|default)' split.txt | tr '\n' ' ')" = 'function "infer" function "prefill" default "infer" ' ] &&
	ok split_rotate_main_functions || fail split_rotate_main_functions "$(grep -E '^(function|default)' split.txt | tr '\n' ' ')"
# ANEMLL's _rot file: its first function is the default; sources without "(A)" titles.
[ "$(grep -E '^(function|default)' split_rot.txt | tr '\n' ' ')" = 'function "infer_rotate" function "prefill_rotate" default "infer_rotate" ' ] &&
	ok split_rotate_rot_functions || fail split_rotate_rot_functions "$(grep -E '^(function|default)' split_rot.txt | tr '\n' ' ')"
[ "$(wsize split/llama_FFN_PF_lut6_chunk_01of02_rot.mlpackage)" = "$(wsize split/llama_FFN_lut6_chunk_01of02.mlpackage)" ] &&
	ok split_rotate_shares_weights || fail split_rotate_shares_weights "weight.bin grew"
rm -r split/llama_FFN_PF_lut6_chunk_01of02*.mlpackage split/llama_FFN_rotate_lut6_chunk_01of02.mlpackage
expect_fail split_rotate_missing 1 "^combine: missing source package 'split/llama_FFN_rotate_lut6_chunk_01of02.mlpackage'$" \
	"$BIN/combine" --input split --chunk 2 --chunk-no 1 --split-rotate
no_combined split_rotate_missing_nothing split

# --- monolithic: <p>_monolithic[_prefill][_rotate] -> <p>_monolithic_full --------------
mkdir -p mono
cp -r parts/llama_FFN_lut6_chunk_01of02.mlpackage mono/llama_monolithic_lut6.mlpackage
cp -r parts/llama_prefill_lut6_chunk_01of02.mlpackage mono/llama_monolithic_prefill_lut6.mlpackage
expect_ok monolithic "$BIN/combine" --input mono --monolithic
[ "$out" = mono/llama_monolithic_full_lut6.mlpackage ] && ok monolithic_path || fail monolithic_path "stdout: $out"
"$BIN/mldump" mono/llama_monolithic_full_lut6.mlpackage >mono.txt
[ "$(grep -E '^(function|default)' mono.txt | tr '\n' ' ')" = 'function "infer" function "prefill" default "infer" ' ] &&
	ok monolithic_functions || fail monolithic_functions "$(grep -E '^(function|default)' mono.txt | tr '\n' ' ')"
cp -r parts/llama_FFN_lut6_chunk_01of02.mlpackage mono/llama_monolithic_rotate_lut6.mlpackage
cp -r parts/llama_prefill_lut6_chunk_01of02.mlpackage mono/llama_monolithic_prefill_rotate_lut6.mlpackage
expect_ok monolithic_rotate "$BIN/combine" --input mono --monolithic --lut 6 --prefix llama
"$BIN/mldump" mono/llama_monolithic_full_lut6.mlpackage >mono4.txt
[ "$(grep -E '^(function|default)' mono4.txt | tr '\n' ' ')" = 'function "infer" function "infer_rotate" function "prefill" function "prefill_rotate" default "infer" ' ] &&
	ok monolithic_rotate_functions || fail monolithic_rotate_functions "$(grep -E '^(function|default)' mono4.txt | tr '\n' ' ')"
[ "$(wsize mono/llama_monolithic_full_lut6.mlpackage)" = "$(wsize mono/llama_monolithic_lut6.mlpackage)" ] &&
	ok monolithic_shares_weights || fail monolithic_shares_weights "weight.bin grew"
rm -r mono/llama_monolithic_full_lut6.mlpackage mono/llama_monolithic_prefill_lut6.mlpackage
expect_fail monolithic_missing 1 "^combine: missing source package 'mono/llama_monolithic_prefill_lut6.mlpackage'$" \
	"$BIN/combine" --input mono --monolithic
[ -z "$(ls mono | grep -E 'full|\.tmp\.')" ] && ok monolithic_missing_nothing || fail monolithic_missing_nothing "$(ls mono)"
expect_fail monolithic_none 1 "^combine: 'parts': no <prefix>_monolithic\[_lut<b>\].mlpackage to combine$" \
	"$BIN/combine" --input parts --monolithic
expect_fail monolithic_chunk 2 "^combine: --monolithic: a monolithic model has no chunks" "$BIN/combine" --input mono --monolithic --chunk 2
expect_fail monolithic_split 2 "^combine: --split-rotate applies to chunked models only" \
	"$BIN/combine" --input mono --monolithic --split-rotate

# --- errors: one line, exit 1, nothing written -------------------------------------
mkdir -p miss && cp -r parts/llama_FFN_lut6_chunk_0[12]of02.mlpackage parts/llama_prefill_lut6_chunk_01of02.mlpackage miss/
expect_fail missing_prefill 1 "^combine: missing source package 'miss/llama_prefill_lut6_chunk_02of02.mlpackage'$" \
	"$BIN/combine" --input miss
no_combined missing_writes_nothing miss
mkdir -p empty
expect_fail no_ffn 1 "^combine: 'empty': no <prefix>_FFN\[_lut<b>\]_chunk_<ii>of<NN>.mlpackage to combine$" \
	"$BIN/combine" --input empty
expect_fail no_such_dir 1 "^combine: cannot open directory 'nowhere'" "$BIN/combine" --input nowhere
expect_fail lut_not_there 1 "^combine: 'parts': no llama_FFN_lut4_chunk_<ii>of<NN>.mlpackage to combine$" \
	"$BIN/combine" --input parts --lut 4

conv fx_kv1 kv1 --chunk 2 --lut 6
mkdir -p mism && cp -r parts/llama_FFN_lut6_chunk_01of02.mlpackage kv1/llama_prefill_lut6_chunk_01of02.mlpackage mism/
expect_fail state_mismatch 1 "^combine: state 'model_model_kv_cache_0' is float16\[4,2,64,16\] in '.*llama_FFN_lut6_chunk_01of02.mlpackage' but float16\[4,1,64,16\] in '.*llama_prefill_lut6_chunk_01of02.mlpackage': the combined functions must share the same states$" \
	"$BIN/combine" --input mism --chunk 2 --chunk-no 1
no_combined state_mismatch_writes_nothing mism

mkdir -p mixed && cp -r parts/llama_*_chunk_01of02.mlpackage plain/llama_*_chunk_01of02.mlpackage mixed/
expect_fail ambiguous_lut 1 "^combine: 'mixed' holds FFN chunks with LUT [06] and [06]: say which with --lut$" \
	"$BIN/combine" --input mixed --chunk 2
expect_ok lut_chosen "$BIN/combine" --input mixed --lut 6,8 --chunk 2 --chunk-no 1
mkdir -p prefixes && cp -r parts/llama_FFN_lut6_chunk_01of02.mlpackage prefixes/ &&
	cp -r parts/llama_FFN_lut6_chunk_01of02.mlpackage prefixes/tiny_FFN_lut6_chunk_01of02.mlpackage
expect_fail ambiguous_prefix 1 "^combine: 'prefixes' holds FFN chunks of prefixes '(llama|tiny)' and '(llama|tiny)': say which with --prefix$" \
	"$BIN/combine" --input prefixes
"$BIN/ffn" --model fx --output counts --context-length 64 --lut 6 -q >/dev/null && cp -r parts/llama_FFN_lut6_chunk_01of02.mlpackage counts/
expect_fail ambiguous_chunks 1 "^combine: 'counts' holds FFN chunks for [12] and [12] chunks: say which with --chunk$" \
	"$BIN/combine" --input counts
expect_fail chunk_no_beyond 1 "^combine: --chunk-no 3 is beyond the 2 chunks of 'parts'$" "$BIN/combine" --input parts --chunk-no 3

# --- usage errors: exit 2 ---------------------------------------------------------------
expect_fail no_input 2 "^combine: --input is required" "$BIN/combine"
expect_fail unknown_flag 2 "^combine: unknown option '--gemma3'" "$BIN/combine" --input parts --gemma3
expect_fail chunk_no_over_chunk 2 "^combine: --chunk-no 3 is beyond --chunk 2" "$BIN/combine" --input parts --chunk 2 --chunk-no 3
expect_fail bad_lut 2 "^combine: --lut: 'x' is not BITS" "$BIN/combine" --input parts --lut x
"$BIN/combine" --help | grep -q -- '--chunk-no K' && ok help_lists_flags || fail help_lists_flags "--help"

# --- ANEMLL's own packages: the same combined package ---------------------------------
if have_shared; then
	mkdir -p ref && cp -r "$REF"/packages/llama_FFN_lut6_chunk_01of01.mlpackage "$REF"/packages/llama_prefill_lut6_chunk_01of01.mlpackage ref/
	chmod -R u+w ref
	expect_ok ref_combine "$BIN/combine" --input ref --output ref_out
	"$BIN/mldump" ref_out/llama_FFN_PF_lut6_chunk_01of01.mlpackage >ref.txt
	d=$(diff "$REF/listings/llama_FFN_PF_lut6_chunk_01of01.txt" ref.txt)
	[ -z "$d" ] && ok ref_listing_identical || fail ref_listing_identical "$(echo "$d" | head -n 4 | tr '\n' ' ')"
	cmp -s "$REF/packages/llama_FFN_PF_lut6_chunk_01of01.mlpackage/Data/com.apple.CoreML/weights/weight.bin" \
		ref_out/llama_FFN_PF_lut6_chunk_01of01.mlpackage/Data/com.apple.CoreML/weights/weight.bin &&
		ok ref_weight_bin_identical || fail ref_weight_bin_identical "$(wsize ref_out/llama_FFN_PF_lut6_chunk_01of01.mlpackage) bytes"
	echo "# reference: FFN weight.bin $(wsize ref/llama_FFN_lut6_chunk_01of01.mlpackage) bytes, ANEMLL's combined $(wsize "$REF"/packages/llama_FFN_PF_lut6_chunk_01of01.mlpackage), ours $(wsize ref_out/llama_FFN_PF_lut6_chunk_01of01.mlpackage)"
else
	skip ref_combine "../shared not found"
fi
finish
