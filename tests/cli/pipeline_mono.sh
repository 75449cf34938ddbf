# pipeline_mono.sh: make MODEL=... MONOLITHIC=1 end to end, as a user runs it.
#
# Llama and Qwen 3 fixtures, with and without ARGMAX=1: the steps monolithic,
# monolithic_prefill, combine, compile, meta, test; the tree holds exactly
# what ships of ANEMLL's convert_monolith.sh files (<p>_monolithic_full[_lut<b>]
# .mlpackage and .mlmodelc; its two parts are intermediates), the package has infer (default) and
# prefill, meta.yaml has the monolithic schema with the reference's key set
# (../shared), the smoketest passes, make -q is 0; CHUNK is ignored with a
# notice; LUT / LUT_LMHEAD name the files and meta's lut_bits / lut_lmhead;
# a chunked conversion in the same OUT leaves no stale chunk behind; Gemma 3
# above its window gets the rotate pair (four functions). ANEMLL's own tiny
# Llama with convert_monolith.sh's flags gives the interface, metadata keys
# and (but for paths) meta.yaml of ANEMLL's monolithic package. Needs
# ffn --monolithic: skipped with a reason otherwise.
. "$SRC/tests/cli/lib.sh"
MREF=$SHARED/reference/anemll-llama-tiny-monolithic
pipe() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" "$@"; }
steps_run() { sed -n 's/^anemake: \(.*\) \.\.\.$/\1/p' "$1" | sort; }
M=(MONOLITHIC=1 CONTEXT=64 BATCH=8 LUT=none STEPS=8)

if ! "$BIN/ffn" --help | grep -q -- '--monolithic'; then
	skip monolithic_pipeline "ffn has no --monolithic yet"
	finish
fi
"$TESTBIN/mkfixture" --arch llama --out ll --layers 2 --seed 1 >/dev/null
"$TESTBIN/mkfixture" --arch qwen3 --out q3 --layers 2 --seed 3 >/dev/null

# files PREFIX LUTSUFFIX [extra...]: what ships of what convert_monolith.sh leaves
files() {
	local p=$1 l=$2
	shift 2
	printf '%s\n' meta.yaml config.json tokenizer_config.json ${p}_monolithic_full$l.mlpackage ${p}_monolithic_full$l.mlmodelc "$@"
}
functions() { "$BIN/mldump" "$1" | grep -E '^(function|default)' | tr '\n' ' '; }

# --- llama and qwen3, logits heads --------------------------------------------------------
for a in ll:llama q3:qwen; do
	fx=${a%%:*} p=${a#*:} o=m_${a%%:*}
	run pipe MODEL="$SCRATCH/$fx" OUT="$SCRATCH/$o" "${M[@]}" CHUNK=3
	printf '%s\n' "$err" >$o.log
	if [ "$rc" = 0 ]; then ok "${fx}_converts"; else fail "${fx}_converts" "exit $rc: $(grep -v '^anemake' $o.log | tail -n 4)"; continue; fi
	[ "$(steps_run $o.log | tr '\n' ',')" = "combine,compile,meta.yaml,monolithic,monolithic prefill,smoketest," ] &&
		ok "${fx}_steps" || fail "${fx}_steps" "$(steps_run $o.log | tr '\n' ',')"
	grep -q '^anemake: MONOLITHIC=1 ignores CHUNK=3' $o.log && ok "${fx}_chunk_ignored_notice" || fail "${fx}_chunk_ignored_notice" "no notice"
	d=$(diff <(files $p "" smoketest.json | sort) <(ls $o | sort))
	[ -z "$d" ] && ok "${fx}_anemll_files" || fail "${fx}_anemll_files" "$(echo "$d" | tr '\n' ' ')"
	[ "$(functions $o/${p}_monolithic_full.mlpackage)" = 'function "infer" function "prefill" default "infer" ' ] &&
		ok "${fx}_functions" || fail "${fx}_functions" "$(functions $o/${p}_monolithic_full.mlpackage)"
	grep -qx '  model_type: monolithic' $o/meta.yaml && grep -qx "    monolithic_model: ${p}_monolithic_full.mlmodelc" $o/meta.yaml &&
		grep -qx '    lut_bits: none' $o/meta.yaml && ok "${fx}_meta_monolithic" || fail "${fx}_meta_monolithic" "$(sed -n '/parameters/,/^$/p' $o/meta.yaml | tr '\n' ' ')"
	same_meta_keys "${fx}_meta_keys_as_anemll" "$MREF/meta.yaml" $o/meta.yaml
	protoc_ok "${fx}_protoc" $o/${p}_monolithic_full.mlpackage
	grep -qE '"passed":[[:space:]]*true' $o/smoketest.json && ok "${fx}_smoketest_passes" || fail "${fx}_smoketest_passes" "$(grep -v '^anemake' $o.log | tail -n 3)"
	pipe -q MODEL="$SCRATCH/$fx" OUT="$SCRATCH/$o" "${M[@]}" CHUNK=3 2>/dev/null
	[ $? = 0 ] && ok "${fx}_make_q" || fail "${fx}_make_q" "make -q says out of date"
done

# --- ANEMLL's own tiny Llama with convert_monolith.sh's flags: its package and meta.yaml ------
if have_shared; then
	run pipe MODEL="$SHARED/reference/anemll-llama-tiny/model" OUT="$SCRATCH/ref" MONOLITHIC=1 LUT=6 CONTEXT=512 BATCH=64 meta
	[ "$rc" = 0 ] && ok ref_converts || fail ref_converts "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"
	"$BIN/mldump" ref/llama_monolithic_full_lut6.mlpackage >x.txt
	L=$MREF/listings/llama_monolithic_full_lut6.txt
	[ "$(desc "$L")" = "$(desc x.txt)" ] && [ "$(metakeys "$L")" = "$(metakeys x.txt)" ] &&
		[ "$(grep shortDescription "$L")" = "$(grep shortDescription x.txt)" ] && ok ref_interface ||
		fail ref_interface "$(diff <(desc "$L"; metakeys "$L") <(desc x.txt; metakeys x.txt) | head -n 4 | tr '\n' ' ')"
	d=$(diff <(as_runtimes_read "$MREF/meta.yaml") <(as_runtimes_read ref/meta.yaml))
	[ -z "$d" ] && ok ref_meta_yaml_as_anemll || fail ref_meta_yaml_as_anemll "$(echo "$d" | head -n 6 | tr '\n' ' ')"
else
	skip ref_monolithic "needs ../shared"
fi

# --- ARGMAX=1: the infer function outputs argmax_idx / argmax_val ------------------------
for a in ll:llama q3:qwen; do
	fx=${a%%:*} p=${a#*:} o=a_${a%%:*}
	run pipe MODEL="$SCRATCH/$fx" OUT="$SCRATCH/$o" "${M[@]}" ARGMAX=1 meta
	[ "$rc" = 0 ] && ok "${fx}_argmax_converts" || fail "${fx}_argmax_converts" "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"
	d=$(diff <(files $p "" | sort) <(ls $o | sort))
	[ -z "$d" ] && ok "${fx}_argmax_files" || fail "${fx}_argmax_files" "$(echo "$d" | tr '\n' ' ')"
	"$BIN/mldump" $o/${p}_monolithic_full.mlpackage | sed -n '/^function "infer"/,/^function "prefill"/p' >inf.txt
	grep -q '^  output "argmax_idx" int32' inf.txt && grep -qx '    argmax_in_model: true' $o/meta.yaml &&
		grep -qx '# argmax_in_model: true' $o/meta.yaml && ok "${fx}_argmax_meta" || fail "${fx}_argmax_meta" "$(grep argmax $o/meta.yaml | tr '\n' ' ')"
	run pipe MODEL="$SCRATCH/$fx" OUT="$SCRATCH/$o" "${M[@]}" ARGMAX=1
	if [ "$rc" = 0 ]; then ok "${fx}_argmax_smoketest"
	else fail "${fx}_argmax_smoketest" "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 2)"; fi
done

# --- LUT, LUT_LMHEAD: names and meta.yaml; a chunked conversion before it is cleared -------
run pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/lut" CONTEXT=64 BATCH=8 LUT2= LUT3= CHUNK=1 meta
[ "$rc" = 0 ] && ok chunked_first || fail chunked_first "exit $rc: $(printf '%s\n' "$err" | tail -n 2)"
run pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/lut" "${M[@]}" LUT=6 LUT_LMHEAD=none meta
[ "$rc" = 0 ] && ok lut_converts || fail lut_converts "exit $rc: $(printf '%s\n' "$err" | grep -v '^anemake' | tail -n 3)"
d=$(diff <(files qwen _lut6 | sort) <(ls lut | sort))
d+=$(diff <(printf '%s\n' qwen_monolithic{,_prefill}_lut6.{mlpackage,quality.json} | sort) <(ls lut/.anemake/build | sort))
[ -z "$d" ] && ok lut_files_no_stale_chunks || fail lut_files_no_stale_chunks "$(echo "$d" | tr '\n' ' ')"
grep -qx '    lut_bits: 6' lut/meta.yaml && grep -qx '    lut_lmhead: none' lut/meta.yaml && ! grep -q '^    lut_embeddings' lut/meta.yaml &&
	grep -qx '    monolithic_model: qwen_monolithic_full_lut6.mlmodelc' lut/meta.yaml && ok lut_meta ||
	fail lut_meta "$(grep -E 'lut|monolithic_model' lut/meta.yaml | tr '\n' ' ')"
run pipe MODEL="$SCRATCH/q3" OUT="$SCRATCH/lut" "${M[@]}" LUT=6 LUT_LMHEAD=4 meta
printf '%s\n' "$err" >lh.log
[ "$rc" = 0 ] && grep -qx '    lut_lmhead: 4' lut/meta.yaml && ok lut_lmhead_change || fail lut_lmhead_change "exit $rc: $(grep lut_lmhead lut/meta.yaml)"

# --- Gemma 3 above its window: the rotate pair, four functions ------------------------------
if "$BIN/ffn" --help | grep -q -- '--rotate'; then
	"$TESTBIN/mkfixture" --arch gemma3_text --out g3 --layers 3 --layer-types s,s,f --sliding-window 32 --seed 4 >/dev/null
	run pipe MODEL="$SCRATCH/g3" OUT="$SCRATCH/g" "${M[@]}" STEPS=36 PROMPT_IDS=2,17,33,49
	printf '%s\n' "$err" >g.log
	[ "$rc" = 0 ] && ok gemma_converts || fail gemma_converts "exit $rc: $(grep -v '^anemake' g.log | tail -n 3)"
	d=$(diff <(files gemma3 "" smoketest.json | sort) <(ls g | sort))
	[ -z "$d" ] && ok gemma_files || fail gemma_files "$(echo "$d" | tr '\n' ' ')"
	[ "$(functions g/gemma3_monolithic_full.mlpackage)" = 'function "infer" function "infer_rotate" function "prefill" function "prefill_rotate" default "infer" ' ] &&
		ok gemma_four_functions || fail gemma_four_functions "$(functions g/gemma3_monolithic_full.mlpackage)"
	[ "$(sed -n '/^    functions:/,/^$/p' g/meta.yaml | tr -d ' \n')" = 'functions:-infer-infer_rotate-prefill-prefill_rotate' ] &&
		grep -qx '    sliding_window: 32' g/meta.yaml && grep -qx '# rotate: true' g/meta.yaml && ok gemma_meta || fail gemma_meta "$(sed -n '/parameters/,$p' g/meta.yaml | tr '\n' ' ')"
	grep -qE '"passed":[[:space:]]*true' g/smoketest.json && ok gemma_smoketest_passes || fail gemma_smoketest_passes "$(grep -v '^anemake' g.log | tail -n 3)"
else
	skip gemma_monolithic "ffn has no --rotate yet"
fi
finish
