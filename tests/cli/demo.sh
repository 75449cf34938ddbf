# demo.sh: make demo, as a newcomer's first command: it converts the bundled
# stories260K, tells its story and says how to run the result with ANEMLL's
# runtimes; a rerun does nothing and says only that (no make noise).
. "$SRC/tests/cli/lib.sh"
demo() { make -C "$SRC" --no-print-directory PIPE_BIN="$BIN" DEMO_OUT="$SCRATCH/demo" demo; }
steps_run() { sed -n 's/^anemake: \(.*\) \.\.\.$/\1/p' <<<"$1"; }
next_steps() { # NAME: the "what next" block names the commands and what was checked
	grep -qxF "    python3 tests/chat.py --meta $SCRATCH/demo/meta.yaml --prompt 'Once upon a time'" <<<"$out" &&
		grep -qxF "    swift run -c release anemllcli --meta $SCRATCH/demo/meta.yaml --prompt 'Once upon a time'" <<<"$out" &&
		grep -qE '^    make MODEL=.* OUT=.* dist$' <<<"$out" &&
		grep -qE '^    48 generated tokens, top-1 agreement [0-9.]+%, mean KL [0-9.e+-]+: passed' <<<"$out" &&
		ok "$1" || fail "$1" "$out"
}

run demo
[ "$rc" = 0 ] && grep -q '^Once upon a time, there was' <<<"$out" && ok demo_tells_story || fail demo_tells_story "exit $rc: $(tail -n 5 <<<"$err")"
next_steps demo_says_what_next
run demo
[ "$rc" = 0 ] && [ -z "$(steps_run "$err")" ] && ! grep -qE 'Nothing to be done|is up to date' <<<"$out$err" &&
	ok demo_rerun_quiet || fail demo_rerun_quiet "$out $err"
next_steps demo_rerun_says_what_next
finish
