# compile.sh: the compile stage as a user runs it.
#
# Parts of a random tiny Llama (1 layer, context 64, batch 8: embeddings, LUT6
# LM head, LUT6 combined chunk) compiled without Apple's compiler: the five
# items of the layout, weight.bin byte for byte, coremldata.bin header and
# its ModelDescription (protoc, with ../shared), golden model.mil and
# metadata.json, the once-per-run notice, determinism, --output, atomic
# replacement; split-rotate _rot and monolithic_full packages; the weight
# limit refusing before anything is written, naming the part; usage
# and input errors; and the Apple-compiler path through a fake xcrun.
. "$SRC/tests/cli/lib.sh"

no_compiled() { # NAME DIR: no .mlmodelc (final or temporary) in DIR
	if [ -n "$(ls -A "$2" 2>/dev/null | grep -E 'mlmodelc')" ]; then fail "$1" "left behind: $(ls "$2")"; else ok "$1"; fi
}
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
u64() { od -An -tu8 -j "$2" -N8 "$1" | tr -d ' '; }

"$TESTBIN/mkfixture" --arch llama --out fx --layers 1 --seed 5 >/dev/null
"$BIN/embed" --model fx --output p --batch-size 8 --context-length 64 -q >/dev/null &&
	"$BIN/lmhead" --model fx --output p --context-length 64 --lut 6 -q >/dev/null &&
	"$BIN/ffn" --model fx --output p --context-length 64 --batch-size 8 --lut 6 -q >/dev/null &&
	"$BIN/prefill" --model fx --output p --context-length 64 --batch-size 8 --lut 6 -q >/dev/null &&
	"$BIN/combine" --input p -q >/dev/null && ok convert || fail convert "stages failed"
E=p/llama_embeddings H=p/llama_lm_head_lut6 C=p/llama_FFN_PF_lut6_chunk_01of01

# --- compiled without Apple's compiler ----------------------------------------------
expect_ok compile_three "$BIN/compile" --input $E.mlpackage $H.mlpackage $C.mlpackage
[ "$out" = "$E.mlmodelc
$H.mlmodelc
$C.mlmodelc" ] && ok prints_paths || fail prints_paths "stdout: $out"
[ "$(printf '%s\n' "$err" | grep -c 'notice: no Apple compiler here: .*compile --help.*primary artifact')" = 1 ] &&
	[ "$(printf '%s\n' "$err" | grep notice | wc -c)" -lt 200 ] && ok notice_once_short || fail notice_once_short "stderr: $err"
"$BIN/compile" --help | grep -q 'storagePrecision of palettized weights' && ok help_names_silent_points ||
	fail help_names_silent_points "compile --help does not list where the evidence is silent"
for m in $E $H $C; do
	n=$(basename $m)
	for item in model.mil coremldata.bin metadata.json analytics/coremldata.bin weights/weight.bin; do
		[ -f $m.mlmodelc/$item ] || fail "layout_$n" "no $item"
	done
	[ "$(find $m.mlmodelc -type f | wc -l | tr -d ' ')" = 5 ] && ok "layout_$n" || fail "layout_$n" "$(find $m.mlmodelc -type f)"
	cmp -s $m.mlpackage/Data/com.apple.CoreML/weights/weight.bin $m.mlmodelc/weights/weight.bin &&
		ok "weights_$n" || fail "weights_$n" "weight.bin differs"
	d=$m.mlmodelc/coremldata.bin
	case $n in *FFN_PF*) nf=2 ;; *) nf=1 ;; esac # one trailer record per function
	[ "$(u32 $d 0)" = 502 ] && [ "$(u32 $d 4)" = 9 ] && [ "$(u64 $d 28)" = 7 ] && [ "$(u64 $d 43)" = 9 ] &&
		[ $((83 + $(u64 $d 75) + 16 * nf)) = "$(wc -c <$d | tr -d ' ')" ] &&
		[ "$(tail -c $((16 * nf)) $d | od -v -An -tu4 | tr -s ' \n' ' ')" = "$(for i in $(seq $nf); do printf ' 502 0 0 0'; done) " ] &&
		ok "coremldata_header_$n" || fail "coremldata_header_$n" "$(od -An -tx1 -N96 $d | tr -d '\n')"
	if have_shared && command -v protoc >/dev/null; then
		tail -c +84 $d | head -c "$(u64 $d 75)" |
			protoc --decode=CoreML.Specification.ModelDescription -I "$PROTO" "$PROTO/Model.proto" >desc_$n.txt 2>protoc.err
		if [ $nf = 1 ]; then # a single-function package keeps its description as it is
			[ -s desc_$n.txt ] && ! grep -q '^functions {' desc_$n.txt && ! grep -q '^defaultFunctionName' desc_$n.txt &&
				grep -q '^input {' desc_$n.txt
		else
			grep -q '^functions {' desc_$n.txt && grep -q '^defaultFunctionName: ' desc_$n.txt
		fi && ok "coremldata_protoc_$n" || fail "coremldata_protoc_$n" "$(head -c 300 protoc.err desc_$n.txt)"
	else
		skip "coremldata_protoc_$n" "needs ../shared and protoc"
	fi
	j=$m.mlmodelc/metadata.json
	[ "$(tail -c 1 $j)" = "]" ] && grep -q '^    "storagePrecision" : "' $j &&
		{ [ $nf = 2 ] || ! grep -q '"functions" :\|"defaultFunctionName" :' $j; } &&
		ok "metadata_$n" || fail "metadata_$n" "$(head -c 300 $j)"
done
if [ -f desc_llama_FFN_PF_lut6_chunk_01of01.txt ]; then
	grep -q '^  name: "prefill"' desc_llama_FFN_PF_lut6_chunk_01of01.txt && grep -q '^defaultFunctionName: "infer"' desc_llama_FFN_PF_lut6_chunk_01of01.txt &&
		ok coremldata_functions || fail coremldata_functions "no infer/prefill"
else
	skip coremldata_functions "needs ../shared and protoc"
fi
golden embed_model_mil $E.mlmodelc/model.mil compile_llama_embeddings_model.mil
golden embed_metadata $E.mlmodelc/metadata.json compile_llama_embeddings_metadata.json
golden chunk_model_mil $C.mlmodelc/model.mil compile_llama_FFN_PF_lut6_model.mil
golden chunk_metadata $C.mlmodelc/metadata.json compile_llama_FFN_PF_lut6_metadata.json
grep -q '^    func infer<ios18>(.*state<tensor<fp16, \[2, 2, 64, 16\]>> model_model_kv_cache_0) {$' $C.mlmodelc/model.mil &&
	grep -q '^            write_state(data = .*, input = model_model_kv_cache_0)\[name = string(".*")\];$' $C.mlmodelc/model.mil &&
	ok state_syntax || fail state_syntax "$(grep -m1 'func infer' $C.mlmodelc/model.mil)"

expect_ok output_dir "$BIN/compile" --input $C.mlpackage --output again -q
[ "$out" = again/llama_FFN_PF_lut6_chunk_01of01.mlmodelc ] && diff -r $C.mlmodelc "$out" >/dev/null &&
	ok deterministic || fail deterministic "second compile differs"
touch $C.mlmodelc/stale
expect_ok recompile "$BIN/compile" --input $C.mlpackage/ -q
[ ! -e $C.mlmodelc/stale ] && diff -r $C.mlmodelc again/llama_FFN_PF_lut6_chunk_01of01.mlmodelc >/dev/null &&
	ok replaced_atomically || fail replaced_atomically "stale file kept or output differs"
expect_ok macos_target "$BIN/compile" --input $E.mlpackage --target macos --output mac -q
# weight.bin is the package's own file (a hard link: nothing copied) on one file system,
# a copy of it on another.
W=Data/com.apple.CoreML/weights/weight.bin
[ $C.mlmodelc/weights/weight.bin -ef $C.mlpackage/$W ] && [ again/llama_FFN_PF_lut6_chunk_01of01.mlmodelc/weights/weight.bin -ef $C.mlpackage/$W ] &&
	ok weights_linked || fail weights_linked "$(ls -li $C.mlmodelc/weights/weight.bin $C.mlpackage/$W)"
other=/dev/shm
if [ -d $other ] && [ -w $other ] && [ "$(stat -c %d $other 2>/dev/null)" != "$(stat -c %d . 2>/dev/null)" ]; then
	o=$(mktemp -d $other/compile.XXXXXX)
	expect_ok other_fs "$BIN/compile" --input $C.mlpackage --output "$o" -q
	f=$o/llama_FFN_PF_lut6_chunk_01of01.mlmodelc/weights/weight.bin
	[ -f "$f" ] && ! [ "$f" -ef $C.mlpackage/$W ] && cmp -s "$f" $C.mlpackage/$W && diff -r $C.mlmodelc "${f%/weights/*}" >/dev/null &&
		ok weights_copied_across_fs || fail weights_copied_across_fs "$(ls -li "$f" 2>&1)"
	rm -rf "$o"
else
	skip weights_copied_across_fs "no other file system at $other"
fi

# --- the weight limit: refuse before writing anything ---------------------------------
mkdir -p lim
expect_fail limit_chunk 1 "^compile: 'llama_FFN_PF_lut6_chunk_01of01.mlpackage': weight.bin is [0-9]+ bytes \(0\.[0-9]+ MB\), over the 0\.035 MB limit for --max-weight-mb: convert with --chunk [0-9]+ or more$" \
	"$BIN/compile" --input $E.mlpackage $C.mlpackage --output lim --max-weight-mb 0.035
no_compiled limit_writes_nothing lim
want=$(awk -v b="$(wc -c <$C.mlpackage/Data/com.apple.CoreML/weights/weight.bin)" 'BEGIN { x = b / 1048576 / 0.035; c = int(x); if (c < x) c++; print c }')
printf '%s' "$err" | grep -q -- "--chunk $want or more" && ok limit_suggests_chunks || fail limit_suggests_chunks "want $want: $err"
expect_fail limit_embeddings 1 "^compile: 'llama_embeddings.mlpackage': weight.bin is .*: palettize it with a smaller --lut$" \
	"$BIN/compile" --input $E.mlpackage --output lim --max-weight-mb 0.001
no_compiled limit_embeddings_nothing lim

# --- split-rotate _rot and monolithic packages: compiled, and named when too big ------
cp -r $C.mlpackage p/llama_FFN_PF_lut6_chunk_01of01_rot.mlpackage
cp -r $C.mlpackage p/llama_monolithic_full_lut6.mlpackage
R=p/llama_FFN_PF_lut6_chunk_01of01_rot M=p/llama_monolithic_full_lut6
expect_ok compile_rot_mono "$BIN/compile" --input $R.mlpackage $M.mlpackage -q
for m in $R $M; do
	n=$(basename $m)
	[ "$(find $m.mlmodelc -type f | wc -l | tr -d ' ')" = 5 ] && cmp -s $m.mlpackage/Data/com.apple.CoreML/weights/weight.bin \
		$m.mlmodelc/weights/weight.bin && ok "layout_$n" || fail "layout_$n" "$(find $m.mlmodelc -type f)"
done
expect_fail limit_rot 1 "^compile: 'llama_FFN_PF_lut6_chunk_01of01_rot.mlpackage': weight.bin is .*: convert with --chunk [0-9]+ or more$" \
	"$BIN/compile" --input $R.mlpackage --output lim --max-weight-mb 0.035
expect_fail limit_monolithic 1 "^compile: 'llama_monolithic_full_lut6.mlpackage': weight.bin is .*: palettize it with a smaller --lut, or convert it chunked \(not monolithic\)$" \
	"$BIN/compile" --input $M.mlpackage --output lim --max-weight-mb 0.035
no_compiled limit_rot_mono_nothing lim

# --- errors ---------------------------------------------------------------------------
expect_fail missing_input 1 "^compile: package 'nope.mlpackage' does not exist$" "$BIN/compile" --input nope.mlpackage --output lim
expect_fail missing_second 1 "^compile: package 'nope.mlpackage' does not exist$" "$BIN/compile" --input $E.mlpackage nope.mlpackage --output lim
no_compiled missing_writes_nothing lim
expect_fail not_a_package 1 "^compile: 'fx' is not a .mlpackage$" "$BIN/compile" --input fx
expect_fail no_input 2 "^compile: --input is required" "$BIN/compile"
expect_fail bad_limit 2 "^compile: --max-weight-mb: 'abc' is not a number of megabytes" "$BIN/compile" --input $E.mlpackage --max-weight-mb abc
expect_fail negative_limit 2 "^compile: --max-weight-mb: '-1'" "$BIN/compile" --input $E.mlpackage --max-weight-mb -1
expect_fail bad_target 2 "^compile: --target: 'watchos' is not ios or macos" "$BIN/compile" --input $E.mlpackage --target watchos
"$BIN/compile" --help | grep -q -- '--max-weight-mb MB' && ok help_lists_flags || fail help_lists_flags "--help"

# --- with Apple's compiler (a stand-in xcrun) ------------------------------------------
mkdir -p fakebin
cat >fakebin/xcrun <<'EOF'
#!/bin/sh
case "$1 $2" in
"--find coremlcompiler") echo /usr/bin/coremlcompiler; exit 0 ;;
"coremlcompiler compile")
	[ -n "$FAKE_XCRUN_FAIL" ] && { echo "fake compiler failure" >&2; exit 3; }
	n=$(basename "$3" .mlpackage)
	mkdir -p "$4/$n.mlmodelc" && echo "$3" >"$4/$n.mlmodelc/compiled_by_fake" && echo "$4/$n.mlmodelc"
	exit 0 ;;
esac
exit 64
EOF
chmod +x fakebin/xcrun
PATH=$SCRATCH/fakebin:$PATH expect_ok xcrun_used "$BIN/compile" --input $E.mlpackage --output apple
[ "$out" = apple/llama_embeddings.mlmodelc ] && [ -f apple/llama_embeddings.mlmodelc/compiled_by_fake ] &&
	ok xcrun_output || fail xcrun_output "stdout: $out; $(ls -R apple)"
printf '%s' "$err" | grep -q notice && fail xcrun_no_notice "stderr: $err" || ok xcrun_no_notice
FAKE_XCRUN_FAIL=1 PATH=$SCRATCH/fakebin:$PATH run "$BIN/compile" --input $H.mlpackage --output apple
[ "$rc" = 1 ] && printf '%s' "$err" | tail -n 1 | grep -q "^compile: xcrun coremlcompiler compile '$H.mlpackage' failed (exit 3)$" &&
	[ "$(ls apple)" = llama_embeddings.mlmodelc ] && ok xcrun_failure || fail xcrun_failure "exit $rc: $err; $(ls apple)"
finish
