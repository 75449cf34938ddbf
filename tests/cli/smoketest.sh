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
printf '%s\n' "$out" | grep -q '^top-1 agreement 100.0% (48/48, first disagreement: none)' && ok stories_agreement || fail stories_agreement "$out"
grep -q '"passed":	true' report.json && grep -q '"kl_mean"' report.json && grep -q '"last_hidden_cosine"' report.json && grep -q '"tokens_per_second"' report.json && ok json_report || fail json_report "$(head -c 300 report.json)"
expect_ok prompt_longer_than_batch "$BIN/smoketest" --model "$STORIES" --dir parts --prompt 1,403,407,261,378,432,383,286,261,376,298 --steps 8
expect_ok infer_only "$BIN/smoketest" --model "$STORIES" --dir parts --prompt 1,403,407,261,378,432,383,286,261,376,298 --steps 8 --no-prefill

# an argmax LM head gives tokens, not logits: top-1 agreement only
cp -r parts parts_am && "$BIN/lmhead" --model "$STORIES" --output parts_am --argmax -q >/dev/null
expect_ok argmax_head_passes "$BIN/smoketest" --model "$STORIES" --dir parts_am --steps 48 --json am.json
printf '%s\n' "$out" | grep -q '^top-1 agreement 100.0% (48/48' && printf '%s\n' "$out" | grep -q 'KL not judged' &&
	grep -q '"kl_mean":	null' am.json && ok argmax_head_agreement || fail argmax_head_agreement "$out"

# a conversion of another model must fail the comparison: exit 1
"$TESTBIN/mkfixture" --arch llama --out fxa --seed 1 --vocab 512 >/dev/null
"$TESTBIN/mkfixture" --arch llama --out fxb --seed 2 --vocab 512 >/dev/null
conv fxa parts_a
run "$BIN/smoketest" --model fxb --dir parts_a --steps 8
[ "$rc" = 1 ] && printf '%s\n' "$out" | grep -q '^FAIL' && printf '%s\n' "$out" | grep -q 'first disagreement: step [0-9]' &&
	ok wrong_model_fails || fail wrong_model_fails "exit $rc: $out $err"
expect_ok right_model_passes "$BIN/smoketest" --model fxa --dir parts_a --steps 8

# Gemma 3 with the real Gemma 3 tokenizer: --text goes through its chat
# template, <bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n
# (ids from ../shared/tokenizers/gemma3/tokenizer.json).
if have_shared; then
	"$TESTBIN/mkfixture" --arch gemma3_text --out g3 --layers 2 --layer-types s,f --vocab 262144 --seed 3 >/dev/null &&
		cp "$SHARED"/tokenizers/gemma3/tokenizer.json "$SHARED"/tokenizers/gemma3/tokenizer_config.json g3/ &&
		conv g3 g3parts 2>/dev/null && ok gemma3_convert || fail gemma3_convert "stages failed"
	expect_ok gemma3_text_prompt "$BIN/smoketest" --model g3 --dir g3parts --text Hello --steps 4
	printf '%s\n' "$out" | grep -q '^prompt:    2,105,2364,107,9259,106,107,105,4368,107$' &&
		ok gemma3_chat_template_ids || fail gemma3_chat_template_ids "$out"

	# ANEMLL's own Gemma 3 (window 64, context 128, four functions) through its
	# meta.yaml, prefill blocks past the window, against the reference with
	# ANEMLL's semantics; and its monolithic Llama (LUT6) by directory.
	R=$SHARED/reference
	mkdir -p g3meta && cp "$R/anemll-gemma3-tiny/meta.yaml" g3meta/ &&
		for f in "$R"/anemll-gemma3-tiny/packages/*.mlpackage; do ln -s "$f" g3meta/; done
	ids=$(seq 0 99 | awk '{ printf "%s%d", (NR > 1 ? "," : ""), ($1 * 131 + 7) % 2176 }')
	expect_ok anemll_gemma3_meta "$BIN/smoketest" --model "$R/anemll-gemma3-tiny/model" --meta g3meta/meta.yaml \
		--anemll-rope --prompt "$ids" --steps 27 --json g3.json
	printf '%s\n' "$out" | grep -q '^parts: 2 chunks, context 128, batch 32$' && grep -q '"passed":	true' g3.json &&
		ok anemll_gemma3_report || fail anemll_gemma3_report "$out"
	expect_ok anemll_monolithic "$BIN/smoketest" --model "$R/anemll-llama-tiny/model" \
		--dir "$R/anemll-llama-tiny-monolithic/packages" --anemll-rope --steps 8 --json mono.json
	printf '%s\n' "$out" | grep -q '^parts: monolithic, context 512, batch 64$' && grep -q '"passed":	true' mono.json &&
		ok anemll_monolithic_report || fail anemll_monolithic_report "$out"
	mkdir -p monometa && cp "$R/anemll-llama-tiny-monolithic/meta.yaml" monometa/ &&
		ln -s "$R"/anemll-llama-tiny-monolithic/packages/*.mlpackage monometa/
	expect_ok anemll_monolithic_meta "$BIN/smoketest" --model "$R/anemll-llama-tiny/model" --meta monometa/meta.yaml \
		--anemll-rope --steps 8
else
	skip gemma3_and_monolithic "../shared not found"
fi

mkdir -p empty
expect_fail no_parts 1 "^smoketest: 'empty': no embeddings part" "$BIN/smoketest" --model "$STORIES" --dir empty
expect_fail bad_prompt 1 "^smoketest: --prompt: 'x,1' is not a list of token ids" "$BIN/smoketest" --model "$STORIES" --dir parts --prompt x,1
expect_fail prompt_out_of_vocab 1 "^smoketest: --prompt: .*below 512" "$BIN/smoketest" --model "$STORIES" --dir parts --prompt 1,999
expect_fail too_long 1 "does not fit the context" "$BIN/smoketest" --model "$STORIES" --dir parts --steps 600
# A default BOS outside the vocabulary: one line, as for --prompt ids (it crashed: a double free in feed).
rm -rf bos600 && cp -r "$STORIES" bos600 && sed -i.orig 's/"bos_token_id": 1,/"bos_token_id": 600,/' bos600/config.json
expect_fail bos_beyond_vocab 1 "^smoketest: --prompt: the default prompt is the BOS token, but .*bos600/config\.json's bos_token_id 600 is not below its vocab_size 512: give the prompt ids$" \
	"$BIN/smoketest" --model bos600 --dir parts
expect_fail no_dir 2 "^smoketest: give --meta or --dir" "$BIN/smoketest" --model "$STORIES"
expect_fail bad_threshold 2 "^smoketest: --max-kl: 'abc'" "$BIN/smoketest" --model "$STORIES" --dir parts --max-kl abc
finish
