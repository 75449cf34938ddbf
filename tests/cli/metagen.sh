# metagen.sh: the metagen stage as a user runs it.
#
# Real layout: a llama fixture converted with embed, lmhead --lut 6, ffn and
# prefill --chunk 2 --lut 4, then combine and compile (when those programs
# are built; skipped otherwise) gives ANEMLL's layout (ffn names the
# .mlmodelc of the combined chunk 1), a golden meta.yaml, every key chat.py
# requires, prepare_hf.sh's grep|cut extraction, PyYAML's view (when python3
# has yaml), tokenizer files and config.json, byte-identical reruns. Before
# combining, with --allow-uncompiled: a qwen3 fixture with LUT groups and an
# argmax head (golden). ANEMLL's own Gemma 3 packages give ANEMLL's own
# meta.yaml, and its monolithic package its monolithic meta.yaml (with LUT
# overrides and the fp16_scale/clamp comments). Errors: one line, exit 1, no
# meta.yaml written, an old one untouched, no tokenizer file copied.
. "$SRC/tests/cli/lib.sh"
REF=$SHARED/reference/anemll-gemma3-tiny
COMMON=(--context-length 64)

# convert ARCH DIR LUT_EMBED LUT_LMHEAD LUT_FFN [lmhead flags...]: the separate parts
convert() {
	local arch=$1 dir=$2 le=$3 lh=$4 lf=$5
	shift 5
	"$TESTBIN/mkfixture" --arch "$arch" --out "fx_$arch" --seed 7 >/dev/null &&
		"$BIN/embed" --model "fx_$arch" --output "$dir" "${COMMON[@]}" --batch-size 8 ${le:+--lut $le} -q >/dev/null &&
		"$BIN/lmhead" --model "fx_$arch" --output "$dir" "${COMMON[@]}" ${lh:+--lut $lh} "$@" -q >/dev/null &&
		"$BIN/ffn" --model "fx_$arch" --output "$dir" "${COMMON[@]}" --batch-size 8 --chunk 2 --lut "$lf" -q >/dev/null &&
		"$BIN/prefill" --model "fx_$arch" --output "$dir" "${COMMON[@]}" --batch-size 8 --chunk 2 --lut "$lf" -q >/dev/null
}

# unchanged NAME FILE CONTENT: FILE still holds CONTENT
unchanged() { if [ "$(cat "$2" 2>/dev/null)" = "$3" ]; then ok "$1"; else fail "$1" "$2 changed or vanished"; fi; }
# no_temps NAME DIR: no temporary files left
no_temps() { if ls -A "$2" | grep -q '\.tmp\.'; then fail "$1" "left behind: $(ls "$2")"; else ok "$1"; fi; }
# field KEY FILE: what prepare_hf.sh reads for KEY (grep "KEY:" | cut -d' ' -f6)
field() { echo $(grep "$1:" "$2" | cut -d' ' -f"${3:-6}"); }

# --- llama, the real layout ---------------------------------------------------------
convert llama o_llama "" 6 4 || fail llama_convert "stages failed"
# What ANEMLL's step 7 copies (only those that exist) and what it must not invent.
printf '{"model": {}}\n' >fx_llama/tokenizer.json
printf '#version: 0.2\n' >fx_llama/merges.txt
printf '{{ messages }}\n' >fx_llama/chat_template.jinja
printf '{"bos_token_id": 1}\n' >fx_llama/generation_config.json
if [ -x "$BIN/combine" ] && [ -x "$BIN/compile" ]; then
	"$BIN/combine" --input o_llama >/dev/null 2>&1 || fail llama_combine "combine failed"
	"$BIN/compile" --input o_llama/llama_embeddings.mlpackage o_llama/llama_lm_head_lut6.mlpackage \
		o_llama/llama_FFN_PF_lut4_chunk_0{1,2}of02.mlpackage >/dev/null 2>&1 || fail llama_compile "compile failed"
	SOURCE_DATE_EPOCH=1700000000 expect_ok llama_metagen "$BIN/metagen" --model fx_llama --output o_llama \
		--command-line "make MODEL=fx_llama CONTEXT=64 BATCH=8"
	[ "$out" = o_llama/meta.yaml ] && ok llama_prints_path || fail llama_prints_path "stdout: $out"
	[ -z "$err" ] && ok llama_quiet || fail llama_quiet "stderr: $err"
	golden llama_golden o_llama/meta.yaml metagen_llama.yaml
	M=o_llama/meta.yaml
	grep -qx '    ffn: llama_FFN_PF_lut4_chunk_01of02.mlmodelc' $M && grep -qx '    embeddings: llama_embeddings.mlmodelc' $M &&
		grep -qx '    lm_head: llama_lm_head_lut6.mlmodelc' $M && ok llama_anemll_layout || fail llama_anemll_layout "$(grep -E 'ffn|embeddings|lm_head' $M)"
	# ANEMLL's boilerplate ("Demonstarates", author Anemll) is read by no runtime: ours is true.
	grep -qx '  author: anemake' $M && grep -qxE '    fx_llama on the Apple Neural Engine, converted by anemake [0-9.]+' $M &&
		! grep -qi 'Demonstarates\|Anemll$' $M && ok says_who_converted || fail says_who_converted "$(sed -n 4,10p $M)"
	grep -qx '# Generated: 2023-11-14 22:13:20' $M && ok source_date_epoch || fail source_date_epoch "$(grep Generated $M)"
	# Every key chat.py reads with params[...], at the 4-space indentation of the reference.
	missing=
	for k in lut_ffn lut_lmhead lut_embeddings num_chunks context_length batch_size; do
		grep -q "^    $k: " $M || missing="$missing $k"
	done
	[ -z "$missing" ] && ok chatpy_required_keys || fail chatpy_required_keys "missing:$missing"
	# prepare_hf.sh's extraction, verbatim.
	got="$(field name $M 4) $(field version $M 4) $(field context_length $M) $(field batch_size $M) $(field model_prefix $M)"
	got="$got $(field num_chunks $M) $(field lut_ffn $M) $(field lut_lmhead $M) $(field lut_embeddings $M)"
	[ "$got" = "anemll-fx_llama-ctx64 0.3.5 64 8 llama 2 4 6 none" ] && ok prepare_hf_extraction || fail prepare_hf_extraction "$got"
	for f in tokenizer.json tokenizer_config.json merges.txt chat_template.jinja generation_config.json; do
		cmp -s fx_llama/$f o_llama/$f || fail tokenizer_copied "$f not copied"
	done
	[ ! -e o_llama/vocab.json ] && [ ! -e o_llama/tokenizer.model ] && ok tokenizer_copied || fail tokenizer_copied "invented files"
	grep -q '"tokenizer_class": "LlamaTokenizer"' o_llama/config.json && ok config_json_created || fail config_json_created "$(cat o_llama/config.json)"
	# Determinism: no SOURCE_DATE_EPOCH, no timestamp; the same bytes every time.
	"$BIN/metagen" --model fx_llama --output o_llama >/dev/null 2>&1 && cp $M first.yaml &&
		"$BIN/metagen" --model fx_llama --output o_llama >/dev/null 2>&1 && cmp -s first.yaml $M &&
		! grep -q Generated $M && ok deterministic || fail deterministic "reruns differ or carry a time"
	# The name comes from the model's identity where it has one (config.json's
	# _name_or_path), so a copy of the model under another folder name converts alike.
	cp -r fx_llama "renamed copy"
	sed -i 's/^{/{"_name_or_path": "acme\/Tiny-1", /' "renamed copy/config.json"
	"$BIN/metagen" --model "renamed copy" --output o_llama >/dev/null 2>&1 && grep -q '^  name: anemll-acme-Tiny-1-ctx' $M &&
		ok name_from_identity || fail name_from_identity "$(grep -m1 'name:' $M)"
	"$BIN/metagen" --model fx_llama --output o_llama >/dev/null 2>&1
	printf '{"mine": true}\n' >o_llama/config.json
	"$BIN/metagen" --model fx_llama --output o_llama >/dev/null 2>&1
	unchanged config_json_kept o_llama/config.json '{"mine": true}'
	no_temps llama_no_temps o_llama
	# chat.py's YAML loader sees the same values.
	if python3 -c 'import yaml' 2>/dev/null; then
		py=$(python3 -c 'import sys, yaml; p = yaml.safe_load(open(sys.argv[1]))["model_info"]["parameters"]
print(p["context_length"], p["batch_size"], p["lut_embeddings"], p["lut_ffn"], p["lut_lmhead"], p["num_chunks"], p["ffn"], p["lm_head_chunk_sizes"], p["prefill_dynamic_slice"])' $M 2>&1)
		[ "$py" = "64 8 none 4 6 2 llama_FFN_PF_lut4_chunk_01of02.mlmodelc [32, 32, 32, 32, 32, 32, 32, 32] True" ] &&
			ok pyyaml_reads_it || fail pyyaml_reads_it "$py"
	else
		skip pyyaml_reads_it "python3 with yaml not installed"
	fi
	HAVE_COMPILED=1
else
	skip llama_real_layout "combine/compile not built"
	HAVE_COMPILED=
fi

# --- before combining: --allow-uncompiled --------------------------------------------
convert qwen3 o_qwen3 4,16 6 6,0 --argmax || fail qwen3_convert "stages failed"
expect_fail qwen3_needs_combined 1 "^metagen: 'o_qwen3' has qwen_FFN_lut6_chunk_01of02 but no combined qwen_FFN_PF chunks.*--allow-uncompiled" \
	"$BIN/metagen" --model fx_qwen3 --output o_qwen3
[ ! -e o_qwen3/meta.yaml ] && [ ! -e o_qwen3/config.json ] && ok qwen3_nothing_written || fail qwen3_nothing_written "$(ls o_qwen3)"
expect_ok qwen3_uncompiled "$BIN/metagen" --model fx_qwen3 --output o_qwen3 --allow-uncompiled
printf '%s' "$err" | grep -q "warning: no combined chunks: meta.yaml names qwen_FFN_lut6_chunk_01of02.mlpackage" &&
	ok qwen3_warns || fail qwen3_warns "stderr: $err"
golden qwen3_golden o_qwen3/meta.yaml metagen_qwen3_uncompiled.yaml
grep -q '^    lut_embeddings_per_channel: 16$' o_qwen3/meta.yaml && grep -q '^    lut_ffn_per_channel: 0$' o_qwen3/meta.yaml &&
	! grep -q lut_lmhead_per_channel o_qwen3/meta.yaml && ok lut_groups_from_weights || fail lut_groups_from_weights "$(grep per_channel o_qwen3/meta.yaml)"
grep -q '^    split_lm_head: 16$' o_qwen3/meta.yaml && grep -q '^    argmax_in_model: true$' o_qwen3/meta.yaml &&
	ok argmax_head || fail argmax_head "$(grep -E 'split|argmax' o_qwen3/meta.yaml)"
grep -q '"model_type": "qwen3"' o_qwen3/config.json && ok qwen3_config_json || fail qwen3_config_json "$(cat o_qwen3/config.json)"
# Selectors take ANEMLL's spec; a group given there must be the weights' group.
expect_ok selectors_match "$BIN/metagen" --model fx_qwen3 --output o_qwen3 --allow-uncompiled --lut-embeddings 4,16 \
	--lut-ffn 6,t --lut-lmhead 6 --chunks 2
cmp -s o_qwen3/meta.yaml "$SRC/tests/cli/golden/metagen_qwen3_uncompiled.yaml" && ok selectors_same_output || fail selectors_same_output "differs"
printf '%s' 'old' >o_qwen3/meta.yaml
expect_fail selector_group_mismatch 1 "^metagen: 'o_qwen3/qwen_embeddings_lut4.mlpackage': its LUT groups have 16 rows .*--lut-embeddings 4,8 says 8$" \
	"$BIN/metagen" --model fx_qwen3 --output o_qwen3 --allow-uncompiled --lut-embeddings 4,8
unchanged selector_group_old_kept o_qwen3/meta.yaml old
expect_fail selector_absent 1 "^metagen: 'o_qwen3' has no qwen_lm_head part with LUT 4 \(--lut-lmhead\)$" \
	"$BIN/metagen" --model fx_qwen3 --output o_qwen3 --allow-uncompiled --lut-lmhead 4
expect_ok static_slice "$BIN/metagen" --model fx_qwen3 --output o_qwen3 --allow-uncompiled --static-prefill-slice
! grep -q prefill_dynamic_slice o_qwen3/meta.yaml && grep -q '^# dynamic_prefill_slice: false$' o_qwen3/meta.yaml &&
	ok static_slice_omitted || fail static_slice_omitted "$(grep slice o_qwen3/meta.yaml)"

# --- the model name: org-name for an HF cache snapshot, or --model-name -----------------
snap=hub/models--acme--tiny-v2/snapshots/abc123
mkdir -p "$snap" hub/models--acme--tiny-v2/refs && cp fx_qwen3/* "$snap"/ && echo abc123 >hub/models--acme--tiny-v2/refs/main
HF_HUB_CACHE=$SCRATCH/hub expect_ok hf_cache_id "$BIN/metagen" --model acme/tiny-v2 --output o_qwen3 --allow-uncompiled
grep -qx '  name: anemll-acme-tiny-v2-ctx64' o_qwen3/meta.yaml && grep -qx '# model_path: acme/tiny-v2' o_qwen3/meta.yaml &&
	ok hf_cache_model_name || fail hf_cache_model_name "$(grep -E 'name:|model_path' o_qwen3/meta.yaml)"
expect_ok model_name_flag "$BIN/metagen" --model fx_qwen3 --output o_qwen3 --allow-uncompiled --model-name 'Tiny: Qwen'
grep -qx "  name: 'anemll-Tiny: Qwen-ctx64'" o_qwen3/meta.yaml && grep -qE '^    Tiny: Qwen on the Apple Neural Engine, converted by anemake' o_qwen3/meta.yaml &&
	ok model_name_quoted_when_needed || fail model_name_quoted_when_needed "$(grep -E 'name:|Engine' o_qwen3/meta.yaml)"

# --- ANEMLL's own packages give ANEMLL's own meta.yaml ---------------------------------
if have_shared; then
	mkdir -p g3
	for p in "$REF"/packages/*.mlpackage; do
		b=$(basename "$p" .mlpackage)
		ln -s "$p" "g3/$b.mlpackage" && mkdir "g3/$b.mlmodelc" # compiled names must exist; facts come from the package
	done
	expect_ok anemll_gemma3 "$BIN/metagen" --model "$REF/model" --output g3
	d=$(diff <(as_runtimes_read "$REF/meta.yaml" | sed '/^$/q') <(as_runtimes_read g3/meta.yaml | sed '/^$/q'))
	[ -z "$d" ] && ok anemll_gemma3_same_yaml || fail anemll_gemma3_same_yaml "$(echo "$d" | head -n 6 | tr '\n' ' ')"
	d=$(diff <(as_runtimes_read "$REF/meta.yaml") <(as_runtimes_read g3/meta.yaml))
	[ -z "$d" ] && ok anemll_gemma3_same_comments || fail anemll_gemma3_same_comments "$(echo "$d" | tr '\n' ' ')"
else
	skip anemll_gemma3 "needs ../shared"
fi

# --- ANEMLL's own monolithic package gives ANEMLL's own monolithic meta.yaml -------------
MREF=$SHARED/reference/anemll-llama-tiny-monolithic
if have_shared; then
	mkdir -p mono
	for p in "$MREF"/packages/*.mlpackage; do
		b=$(basename "$p" .mlpackage)
		ln -s "$p" "mono/$b.mlpackage" && mkdir "mono/$b.mlmodelc"
	done
	expect_fail mono_needs_flag 1 "^metagen: 'mono' holds the monolithic model llama_monolithic_full_lut6 and no FFN chunks: give --monolithic$" \
		"$BIN/metagen" --model "$SHARED/reference/anemll-llama-tiny/model" --output mono
	expect_ok anemll_mono "$BIN/metagen" --model "$SHARED/reference/anemll-llama-tiny/model" --output mono --monolithic
	d=$(diff <(as_runtimes_read "$MREF/meta.yaml") <(as_runtimes_read mono/meta.yaml))
	[ -z "$d" ] && ok anemll_mono_same_yaml || fail anemll_mono_same_yaml "$(echo "$d" | head -n 6 | tr '\n' ' ')"
	grep -qx '    model on the Apple Neural Engine as one model, converted by anemake [0-9.]*' mono/meta.yaml &&
		grep -qx '  author: anemake' mono/meta.yaml && ok mono_says_who_converted || fail mono_says_who_converted "$(sed -n 4,10p mono/meta.yaml)"
	# The LM-head splits (2048 elements) are not palettized: the selector names their LUT;
	# the embeddings are LUT6, so a selector saying otherwise is refused.
	expect_ok mono_lmhead_override "$BIN/metagen" --model "$SHARED/reference/anemll-llama-tiny/model" --output mono --monolithic \
		--lut-lmhead 4 --fp16-scale 0.5 --clamp 60000
	grep -qx '    lut_lmhead: 4' mono/meta.yaml && ! grep -q '^    lut_embeddings' mono/meta.yaml &&
		grep -qx '# fp16_scale: 0.5' mono/meta.yaml && grep -qx '# clamp: 60000' mono/meta.yaml &&
		grep -qx '# lut_lmhead: 4' mono/meta.yaml && ok mono_override_written || fail mono_override_written "$(grep -E 'lut|fp16|clamp' mono/meta.yaml)"
	cp mono/meta.yaml mono_before.yaml
	expect_fail mono_embed_mismatch 1 "^metagen: 'mono/llama_monolithic_full_lut6.mlpackage': its embedding weights are palettized with LUT 6, --lut-embeddings says LUT 4$" \
		"$BIN/metagen" --model "$SHARED/reference/anemll-llama-tiny/model" --output mono --monolithic --lut-embeddings 4
	cmp -s mono/meta.yaml mono_before.yaml && ok mono_mismatch_old_kept || fail mono_mismatch_old_kept "meta.yaml changed"
	expect_fail mono_no_chunks 2 "^metagen: --monolithic: a monolithic model has no chunks" \
		"$BIN/metagen" --model "$SHARED/reference/anemll-llama-tiny/model" --output mono --monolithic --split-rotate
else
	skip anemll_mono "needs ../shared"
fi

# --- errors: one line, exit 1, nothing written -----------------------------------------
OLD='old meta.yaml'
# broken NAME: a copy of a good output directory with an old meta.yaml in it
broken() {
	rm -rf "$1"
	if [ -n "$HAVE_COMPILED" ]; then cp -r o_llama "$1"; else cp -r o_qwen3 "$1"; fi
	rm -f "$1"/tokenizer.json "$1"/merges.txt
	printf '%s' "$OLD" >"$1/meta.yaml"
}
if [ -n "$HAVE_COMPILED" ]; then
	broken e_chunk; rm -rf e_chunk/llama_FFN_PF_lut4_chunk_02of02.*
	expect_fail missing_chunk 1 "^metagen: 'e_chunk/llama_FFN_PF_lut4_chunk_02of02.mlpackage' is missing: chunk 2 of 2$" \
		"$BIN/metagen" --model fx_llama --output e_chunk
	unchanged missing_chunk_old_kept e_chunk/meta.yaml "$OLD"
	[ ! -e e_chunk/tokenizer.json ] && ok missing_chunk_no_copy || fail missing_chunk_no_copy "tokenizer copied"
	broken e_lut
	for x in mlpackage mlmodelc; do mv e_lut/llama_lm_head_lut6.$x e_lut/llama_lm_head_lut4.$x; done
	expect_fail lut_name_vs_metadata 1 "^metagen: 'e_lut/llama_lm_head_lut4.mlpackage': the name says LUT 4 but its com.anemll.lut_bits metadata says LUT 6$" \
		"$BIN/metagen" --model fx_llama --output e_lut
	unchanged lut_old_kept e_lut/meta.yaml "$OLD"
	broken e_ffnlut
	for c in 01 02; do for x in mlpackage mlmodelc; do
		mv e_ffnlut/llama_FFN_PF_lut4_chunk_${c}of02.$x e_ffnlut/llama_FFN_PF_lut8_chunk_${c}of02.$x
	done; done
	expect_fail ffn_lut_name_vs_metadata 1 "^metagen: 'e_ffnlut/llama_FFN_PF_lut8_chunk_01of02.mlpackage': the name says LUT 8 but its com.anemll.lut_bits metadata says LUT 4$" \
		"$BIN/metagen" --model fx_llama --output e_ffnlut
	broken e_uncompiled; rm -rf e_uncompiled/llama_embeddings.mlmodelc
	expect_fail uncompiled 1 "^metagen: 'e_uncompiled/llama_embeddings.mlmodelc' is missing: compile the parts first \(or give --allow-uncompiled\)$" \
		"$BIN/metagen" --model fx_llama --output e_uncompiled
	unchanged uncompiled_old_kept e_uncompiled/meta.yaml "$OLD"
	broken e_pkg; rm -rf e_pkg/llama_lm_head_lut6.mlpackage
	expect_fail package_needed 1 "^metagen: 'e_pkg/llama_lm_head_lut6.mlpackage' is missing: metagen reads the facts" \
		"$BIN/metagen" --model fx_llama --output e_pkg
	broken e_two; cp -r e_two/llama_lm_head_lut6.mlpackage e_two/llama_lm_head.mlpackage
	expect_fail two_heads 1 "^metagen: 'e_two' holds both llama_lm_head and llama_lm_head_lut6: give --lut-lmhead BITS\|none to choose$" \
		"$BIN/metagen" --model fx_llama --output e_two
	expect_ok two_heads_chosen "$BIN/metagen" --model fx_llama --output e_two --lut-lmhead 6
	grep -qx '    lm_head: llama_lm_head_lut6.mlmodelc' e_two/meta.yaml && ok two_heads_choice_used || fail two_heads_choice_used "$(grep lm_head: e_two/meta.yaml)"
	broken e_rot
	expect_fail split_rotate_without_files 1 "^metagen: --split-rotate: 'e_rot' has no llama_FFN_PF_lut4_chunk_01of02_rot chunk files$" \
		"$BIN/metagen" --model fx_llama --output e_rot --split-rotate
	unchanged split_rotate_old_kept e_rot/meta.yaml "$OLD"
	broken e_mixed
	rm -rf e_mixed/llama_FFN_PF_lut4_chunk_02of02.mlmodelc
	expect_fail mixed_compiled 1 "^metagen: 'e_mixed/llama_FFN_PF_lut4_chunk_01of02.mlmodelc' is compiled but not every chunk is" \
		"$BIN/metagen" --model fx_llama --output e_mixed --allow-uncompiled
fi
mkdir -p e_empty
expect_fail no_parts 1 "^metagen: 'e_empty' holds no llama_\* parts" "$BIN/metagen" --model fx_llama --output e_empty
[ -z "$(ls -A e_empty)" ] && ok no_parts_nothing_written || fail no_parts_nothing_written "$(ls e_empty)"
expect_fail no_output_dir 1 "^metagen: output directory 'nowhere_out' does not exist" "$BIN/metagen" --model fx_llama --output nowhere_out
expect_fail missing_model 1 "^metagen: .*nowhere" "$BIN/metagen" --model ./nowhere --output o_qwen3
broken e_sde
fx=fx_$([ -n "$HAVE_COMPILED" ] && echo llama || echo qwen3)
SOURCE_DATE_EPOCH=soon expect_fail bad_source_date_epoch 1 "^metagen: SOURCE_DATE_EPOCH: 'soon' is not" \
	"$BIN/metagen" --model "$fx" --output e_sde --allow-uncompiled
unchanged bad_source_date_epoch_old_kept e_sde/meta.yaml "$OLD"

# --- usage errors: exit 2 ----------------------------------------------------------------
expect_fail no_output 2 "^metagen: --output is required" "$BIN/metagen" --model fx_llama
expect_fail bad_lut_selector 2 "^metagen: --lut-ffn: .*'x'" "$BIN/metagen" --model fx_llama --output o_qwen3 --lut-ffn x
"$BIN/metagen" --help | grep -q -- '--allow-uncompiled' && ok help_lists_flags || fail help_lists_flags "--help"
finish
