# pipeline_faults.sh: the make layer under copies, damage, edits, kills,
# concurrent runs, read-only and full disks, odd paths; and what it says.
#
# A copy of OUT never touches the original; a failed plan fails make (make -q
# too) with its real cause; damaged or deleted outputs make their step run
# again; an edit that restores the mtime is seen; temporaries of killed runs
# go; a second run into the same OUT is refused in one line; a model path
# with a space works; planning starts few processes, says what it hashes and
# what an interrupt did; make why says what changed in words.
. "$SRC/tests/cli/lib.sh"
STORIES=$SRC/tests/models/stories260K
MK=(make -C "$SRC" --no-print-directory PIPE_BIN="$BIN")
F=(LUT2=6,4 CHUNK=1 CONTEXT=64 BATCH=8 STEPS=8)
pipe() { "${MK[@]}" "$@"; }
# steps_run LOG: the steps a make run started, one per line
steps_run() { sed -n 's/^anemake: \(.*\) \.\.\.$/\1/p' "$1" | sort; }
steps() { printf '%s\n' "$err" >"$SCRATCH/.log"; steps_run "$SCRATCH/.log" | tr '\n' ',' | sed 's/,$//'; }
# sums DIR [outputs]: the SHA-256 of every file in DIR (with "outputs": but .anemake's)
sums() { (cd "$1" && find . ${2:+-path ./.anemake -prune -o} -type f -print | LC_ALL=C sort | xargs sha256sum); }
# dead_pid: the pid of a process that has ended
dead_pid() { sh -c 'echo $$'; }
is_root() { [ "$(id -u)" = 0 ]; }
PF=llama_FFN_PF_lut6_chunk_01of01

# --- a copy of OUT ------------------------------------------------------------------------
run pipe MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}"
[ "$rc" = 0 ] && ok converts || fail converts "exit $rc: $(printf '%s\n' "$err" | tail -n 3)"
sums a >a.sums
sums a outputs >a.outputs
cp -a a b
cp -a a c
pipe -q MODEL="$STORIES" OUT="$SCRATCH/c" "${F[@]}" 2>/dev/null
[ $? = 0 ] && ok copy_is_up_to_date || fail copy_is_up_to_date "make -q says the copy is out of date"
run pipe MODEL="$STORIES" OUT="$SCRATCH/b" "${F[@]}" LUT2=4,4
[ "$rc" = 0 ] && [ -e b/llama_FFN_PF_lut4_chunk_01of01.mlpackage ] && [ ! -e b/$PF.mlpackage ] &&
	ok copy_reconverts || fail copy_reconverts "exit $rc: $(ls b)"
d=$(diff a.sums <(sums a))
[ -z "$d" ] && ok copy_leaves_original || fail copy_leaves_original "$(echo "$d" | head -n 4 | tr '\n' ' ')"

# records that name something outside OUT (copied, edited, an older anemake's absolute paths)
mkdir -p victim.mlpackage victim2.mlpackage
echo ../victim.mlpackage >>b/.anemake/ffn-01of01.outputs
rm b/.anemake/combine-01of01.outputs
printf '%s\n' "$SCRATCH/victim2.mlpackage" "$SCRATCH/b/llama_FFN_PF_lut4_chunk_01of01.mlpackage" >b/.anemake/combine-01of01.paths
run pipe MODEL="$STORIES" OUT="$SCRATCH/b" "${F[@]}"
[ "$rc" = 0 ] && [ -d victim.mlpackage ] && [ -d victim2.mlpackage ] && ok record_outside_out_ignored ||
	fail record_outside_out_ignored "exit $rc: $(ls)"
[ ! -e b/llama_FFN_PF_lut4_chunk_01of01.mlpackage ] && ok old_record_inside_out_used || fail old_record_inside_out_used "$(ls b)"

# --- damaged or missing outputs --------------------------------------------------------------
truncate -s 100 a/$PF.mlpackage/Data/com.apple.CoreML/weights/weight.bin
pipe -q MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}" 2>/dev/null
[ $? != 0 ] && ok truncated_output_q || fail truncated_output_q "make -q returned 0"
# (the compiled part's weight.bin is the same file, a hard link: it is rewritten too)
run pipe MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}"
[ "$rc" = 0 ] && [ "$(steps)" = "combine chunk 01of01,compile" ] && [ -z "$(diff a.outputs <(sums a outputs))" ] &&
	ok truncated_output_rewritten || fail truncated_output_rewritten "exit $rc, ran: $(steps)"
rm a/$PF.mlmodelc/weights/weight.bin
pipe -q MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}" 2>/dev/null
[ $? != 0 ] && ok deleted_compiled_weight_q || fail deleted_compiled_weight_q "make -q returned 0"
run pipe MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}"
[ "$rc" = 0 ] && [ "$(steps)" = compile ] && [ -s a/$PF.mlmodelc/weights/weight.bin ] &&
	ok deleted_compiled_weight_rewritten || fail deleted_compiled_weight_rewritten "exit $rc, ran: $(steps)"
rm -r a/.anemake/ffn-01of01.stamp a/.anemake/build/llama_FFN_lut6_chunk_01of01.mlpackage
pipe -q MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}" 2>/dev/null
[ $? != 0 ] && ok deleted_stamp_and_package_q || fail deleted_stamp_and_package_q "make -q returned 0"
run pipe MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}"
[ "$rc" = 0 ] && [ "$(steps)" = "FFN chunk 01of01" ] && [ -d a/.anemake/build/llama_FFN_lut6_chunk_01of01.mlpackage ] &&
	ok deleted_stamp_and_package_rewritten || fail deleted_stamp_and_package_rewritten "exit $rc, ran: $(steps)"
pipe -q MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}" 2>/dev/null
[ $? = 0 ] && ok repaired_up_to_date || fail repaired_up_to_date "make -q says out of date"

# --- an edit in place that restores the mtime ------------------------------------------------
cp -r "$STORIES" m
pipe MODEL="$SCRATCH/m" OUT="$SCRATCH/e" "${F[@]}" >/dev/null 2>&1
touch -r m/model.safetensors when
sz=$(wc -c <m/model.safetensors)
byte=$(od -An -tu1 -j $((sz - 3)) -N1 m/model.safetensors | tr -d ' ')
printf "\\$(printf %o $((byte ^ 1)))" | dd of=m/model.safetensors bs=1 seek=$((sz - 3)) conv=notrunc 2>/dev/null
touch -r when m/model.safetensors
run pipe MODEL="$SCRATCH/m" OUT="$SCRATCH/e" "${F[@]}"
steps_e=$(steps)
[[ $steps_e == *embeddings* && $steps_e == *"FFN chunk 01of01"* ]] && ok edit_with_mtime_restored_noticed ||
	fail edit_with_mtime_restored_noticed "ran: $steps_e"

# --- temporaries of killed runs ------------------------------------------------------------------
dead=$(dead_pid)
mkdir -p a/x.mlpackage.tmp.$dead/Data
touch a/.anemake/y.args.tmp.$dead a/.anemake/lutcache/z.lut.tmp.$dead a/live.tmp.$$ outside.tmp.$dead
run pipe MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}"
left=$(find a -name "*.tmp.$dead")
[ "$rc" = 0 ] && [ -z "$left" ] && ok dead_temporaries_removed || fail dead_temporaries_removed "exit $rc: $left"
[ -e a/live.tmp.$$ ] && [ -e outside.tmp.$dead ] && ok live_and_outside_temporaries_kept ||
	fail live_and_outside_temporaries_kept "$(ls a outside.tmp.* 2>&1 | tr '\n' ' ')"
rm -f a/live.tmp.$$

# --- one run per OUT ---------------------------------------------------------------------------
setsid "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/k" "${F[@]}" >k1.out 2>k1.log &
first=$!
for ((i = 0; i < 600; i++)); do grep -q '^anemake: embeddings' k1.log 2>/dev/null && break; sleep 0.05; done
run pipe MODEL="$STORIES" OUT="$SCRATCH/k" "${F[@]}"
mine=$(printf '%s\n' "$err" | grep -c '^anemake')
[ "$rc" != 0 ] && [ "$mine" = 1 ] && printf '%s\n' "$err" | grep -q "^anemake: another run is using $SCRATCH/k (pid $first)\$" &&
	ok second_run_refused || fail second_run_refused "exit $rc: $err"
wait $first
[ $? = 0 ] && ok first_run_unhurt || fail first_run_unhurt "$(tail -n 3 k1.log)"
echo "$(dead_pid) 1" >k/.anemake/lock/owner
expect_ok stale_lock_taken_over pipe MODEL="$STORIES" OUT="$SCRATCH/k" "${F[@]}"
echo "$$ 1" >k/.anemake/lock/owner # a live pid, but another process than the one that locked
expect_ok reused_pid_lock_taken_over pipe MODEL="$STORIES" OUT="$SCRATCH/k" "${F[@]}"

# the build's flag file, written by several makes at once
for i in 1 2 3 4 5 6; do make -C "$SRC" --no-print-directory B="$SCRATCH/fb" "$SCRATCH/fb/FLAGS" >/dev/null 2>fb$i.err & done
bad=0
for j in $(jobs -p); do wait "$j" || bad=$((bad + 1)); done
[ $bad = 0 ] && ok concurrent_flags || fail concurrent_flags "$bad of 6 failed: $(cat fb*.err | head -n 2)"

# --- a read-only OUT, a full disk --------------------------------------------------------------------
# as_readonly DIR CMD...: run CMD with DIR read-only (a read-only bind mount as root, chmod otherwise)
as_readonly() {
	local d=$1
	shift
	if ! is_root; then chmod -R a-w "$d"; run "$@"; chmod -R u+w "$d"; return; fi
	run unshare -m bash -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"' _ "$d" "$@"
}
# plan_failed NAME: the last run failed, with REGEX as its cause and nothing stale said or left
plan_failed() {
	if [ "$rc" = 0 ]; then fail "$1" "exit 0: $err"
	elif ! printf '%s\n' "$err" | grep -Eq "$2"; then fail "$1" "no /$2/ in: $err"
	elif printf '%s\n' "$err" | grep -Eq 'No rule to make target|see above'; then fail "$1" "$err"
	elif [ -n "$(ls "$3" | grep 'plan\.mk\.tmp')" ]; then fail "$1" "left $(ls "$3")"
	else ok "$1"; fi
}
if is_root && ! unshare -m true 2>/dev/null; then
	skip readonly_out_fails "needs mount namespaces as root"
else
	as_readonly a "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}" LUT3=4
	plan_failed readonly_out_fails 'anemake: .*(Read-only file system|Permission denied)' a/.anemake
	as_readonly a "${MK[@]}" -q MODEL="$STORIES" OUT="$SCRATCH/a" "${F[@]}" LUT3=4
	[ "$rc" != 0 ] && ok readonly_out_q_fails || fail readonly_out_q_fails "make -q returned 0"
	[ -e a/llama_lm_head_lut6.mlpackage ] && ok readonly_out_untouched || fail readonly_out_untouched "$(ls a)"
	mkdir -p ro
	as_readonly ro "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/ro/x" "${F[@]}"
	plan_failed readonly_parent_fails 'anemake: OUT=.*/ro/x: cannot create it: (Read-only file system|Permission denied)' ro
fi
if ! is_root || ! unshare -m true 2>/dev/null; then
	skip full_disk_fails "needs root (a small tmpfs)"
else
	mkdir -p full
	unshare -m bash -c 'mount -t tmpfs -o size=24m tmpfs full || exit 3
		"$@" >/dev/null 2>&1 || exit 4
		dd if=/dev/zero of=full/fill bs=64k >/dev/null 2>&1
		"$@" LUT3=4 2>full.err; echo $? >full.rc
		"$@" -q LUT3=4 2>/dev/null; echo $? >fullq.rc
		ls -a full/x/.anemake >full.ls' _ "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/full/x" "${F[@]}"
	case $? in
	3) skip full_disk_fails "no tmpfs mount" ;;
	4) fail full_disk_fails "the conversion into a 24 MB tmpfs failed" ;;
	*)
		rc=$(cat full.rc) err=$(cat full.err)
		plan_failed full_disk_fails 'anemake: .*No space left on device' /dev/null
		[ "$(cat fullq.rc)" != 0 ] && ! grep -q 'plan\.mk\.tmp' full.ls && ok full_disk_q_fails ||
			fail full_disk_q_fails "make -q: $(cat fullq.rc); $(tr '\n' ' ' <full.ls)" ;;
	esac
fi

# --- paths with a space ---------------------------------------------------------------------------
# The default OUT is out/<model name> under the make directory: a copy of the make layer keeps it here.
mkdir tree
cp -r "$SRC/Makefile" "$SRC/models.mk" "$SRC/mk" tree/
cp -r "$STORIES" "my model"
run make -C tree --no-print-directory PIPE_BIN="$BIN" MODEL="$SCRATCH/my model" "${F[@]}"
[ "$rc" = 0 ] && grep -qE '"passed":[[:space:]]*true' tree/out/my_model/smoketest.json && ok model_path_with_space ||
	fail model_path_with_space "exit $rc: $(printf '%s\n' "$err" | tail -n 3)"
[ "$(ls tree/out)" = my_model ] && ! printf '%s\n' "$err" | grep -q warning && ok model_path_with_space_quiet ||
	fail model_path_with_space_quiet "$(ls tree/out) $(printf '%s\n' "$err" | grep -m 2 warning)"
expect_fail out_with_space_refused 2 "OUT=.*space" make -C tree --no-print-directory PIPE_BIN="$BIN" MODEL="$STORIES" \
	OUT="$SCRATCH/o u t" plan
[ ! -e "o u t" ] && [ ! -e o ] && ok out_with_space_leaves_nothing || fail out_with_space_leaves_nothing "$(ls)"

# --- an OUT that is not a conversion ----------------------------------------------------------------
# make writes into OUT, sweeps it for killed runs' temporaries and clean-model removes it: a folder
# holding anything else (the model's, a home, /) is refused before anything is written or removed.
mkdir -p foreign && echo keep >foreign/notes.txt && : >foreign/victim.tmp.$(dead_pid)
cp -r "$STORIES" model_copy
for o in foreign model_copy; do
	before=$(sums "$o")
	expect_fail out_not_conversion_$o 2 "^mk/pipeline.mk:[0-9]+: \*\*\* anemake: OUT=$SCRATCH/$o holds other files and no earlier conversion \(no .anemake in it\): give a new or empty folder" \
		"${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/$o" "${F[@]}"
	[ "$(sums "$o")" = "$before" ] && [ ! -e "$o/.anemake" ] && ok out_not_conversion_${o}_untouched ||
		fail out_not_conversion_${o}_untouched "$(ls -A "$o")"
done
expect_fail clean_model_not_conversion 2 "^mk/pipeline.mk:[0-9]+: \\*\\*\\* anemake: OUT=$SCRATCH/foreign is not a conversion \(no .anemake in it\): not removed" \
	"${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/foreign" clean-model
[ -f foreign/notes.txt ] && ok clean_model_not_conversion_kept || fail clean_model_not_conversion_kept "$(ls -A foreign)"
: >a_file
expect_fail out_is_a_file 2 "OUT=$SCRATCH/a_file is not a folder" "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/a_file" plan
# An empty OUT is taken (a first plan that fails leaves it empty: plan.sh); a later plan that
# fails leaves the conversion as it was.
mkdir empty
run pipe MODEL="$STORIES" OUT="$SCRATCH/empty" "${F[@]}" plan
[ "$rc" = 0 ] && [ -f empty/.anemake/plan.mk ] && ok empty_out_plans ||
	fail empty_out_plans "exit $rc: $err"
run pipe MODEL="$STORIES" OUT="$SCRATCH/empty" LUT2=7 plan
[ "$rc" != 0 ] && [ -f empty/.anemake/plan.mk ] && ok failed_replan_keeps_out || fail failed_replan_keeps_out "exit $rc, $(ls -A empty)"
# "." in OUT is nothing (its default DIST, OUT/hf_dist, is inside it)
run pipe MODEL="$STORIES" OUT="$SCRATCH/./dot/." "${F[@]}" plan
[ "$rc" = 0 ] && [ -d dot/.anemake ] && ok out_with_dot_segments || fail out_with_dot_segments "exit $rc: $err"

# --- planning: few processes, what it hashes, an interrupt ----------------------------------------
P=(LUT2=6,4 CHUNK=5 CONTEXT=64 BATCH=8)
if is_root && unshare -pf --mount-proc true 2>/dev/null; then
	# in a pid namespace of its own, the last pid given out is the number of processes started
	count() { unshare -pf --mount-proc bash -c '"$@" >/dev/null 2>&1; cat /proc/sys/kernel/ns_last_pid' _ "$@"; }
	n1=$(count "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/p" "${P[@]}" plan)
	n2=$(count "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/p" "${P[@]}" plan)
	echo "# processes for make plan with 5 chunks: $n1 the first time, $n2 then"
	[ "$n1" -lt 250 ] && [ "$n2" -lt 120 ] && ok plan_starts_few_processes || fail plan_starts_few_processes "$n1, then $n2"
else
	skip plan_starts_few_processes "needs a pid namespace (root)"
fi
# A fresh OUT's steps all run: their keys are computed beside their stages, the plan
# hashes nothing (a checkpoint of gigabytes while no stage runs); under make -j it
# hashes the inputs once, for the steps that start together. The key recorded is the same.
run env ANEMAKE_HASH_NOTE_MB=0 "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/f" "${P[@]}" plan
[ "$rc" = 0 ] && ! printf '%s\n' "$err" | grep -q "^anemake: hashing" && ok fresh_plan_hashes_nothing ||
	fail fresh_plan_hashes_nothing "$err"
run env ANEMAKE_HASH_NOTE_MB=0 "${MK[@]}" -j2 MODEL="$STORIES" OUT="$SCRATCH/h" "${P[@]}" plan
printf '%s\n' "$err" | grep -q "^anemake: hashing .*model.safetensors" && ok plan_says_what_it_hashes ||
	fail plan_says_what_it_hashes "$err"
run env ANEMAKE_HASH_NOTE_MB=0 "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/f" "${P[@]}" embed
[ "$rc" = 0 ] && printf '%s\n' "$err" | grep -q "^anemake: hashing .*model.safetensors" && cmp -s f/.anemake/embed.done h/.anemake/embed.key &&
	ok key_beside_stage_is_the_key || fail key_beside_stage_is_the_key "exit $rc: $(diff f/.anemake/embed.done h/.anemake/embed.key)"
# The compiled parts' weight.bin are the packages' own (hard links): known, not hashed again,
# then or by the next make.
run env ANEMAKE_HASH_NOTE_MB=0 "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/f" "${P[@]}" compile
[ "$rc" = 0 ] && ! printf '%s\n' "$err" | grep -q "^anemake: hashing .*mlmodelc/weights/weight.bin" &&
	[ -n "$(find f -path '*.mlmodelc/weights/weight.bin' -links 2)" ] && ok compiled_weights_not_hashed ||
	fail compiled_weights_not_hashed "exit $rc: $(printf '%s\n' "$err" | grep hashing)"
run env ANEMAKE_HASH_NOTE_MB=0 "${MK[@]}" MODEL="$STORIES" OUT="$SCRATCH/f" "${P[@]}" compile
[ "$rc" = 0 ] && ! printf '%s\n' "$err" | grep -q "^anemake: hashing" && ok compiled_then_nothing_hashed ||
	fail compiled_then_nothing_hashed "exit $rc: $(printf '%s\n' "$err" | grep hashing)"
if command -v sha256sum >/dev/null && command -v setsid >/dev/null; then
	mkdir slow
	printf '#!/bin/sh\nsleep 60\nexec %s "$@"\n' "$(command -v sha256sum)" >slow/sha256sum
	chmod +x slow/sha256sum
	PATH=$SCRATCH/slow:$PATH ANEMAKE_HASH_NOTE_MB=0 setsid perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die' \
		"${MK[@]}" -j2 MODEL="$STORIES" OUT="$SCRATCH/i" "${P[@]}" plan >i.out 2>i.log &
	pid=$!
	for ((i = 0; i < 600; i++)); do grep -q '^anemake: hashing' i.log 2>/dev/null && break; sleep 0.05; done
	kill -INT -- -"$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	[ "$rc" != 0 ] && grep -q '^anemake: planning interrupted' i.log && [ -z "$(find i -name '*.tmp.*')" ] &&
		ok plan_interrupt_says_so || fail plan_interrupt_says_so "exit $rc: $(cat i.log)"
else
	skip plan_interrupt_says_so "needs sha256sum and setsid"
fi

# --- make why, help, plan without MODEL, make variables in messages --------------------------------
W=(LUT2=6,4 CHUNK=2 CONTEXT=64 BATCH=8 STEPS=8)
pipe MODEL="$STORIES" OUT="$SCRATCH/w" "${W[@]}" >/dev/null 2>&1
run pipe MODEL="$STORIES" OUT="$SCRATCH/w" "${W[@]}" LUT2=4,4 why
printf '%s\n' "$out" >why.txt
grep -qx "ffn-01of02: runs again: LUT2 was '6,4', now '4,4'" why.txt && grep -qx 'embed: up to date' why.txt &&
	grep -q '^compile: runs after combine-01of02 combine-02of02' why.txt && ok why_in_words || fail why_in_words "$out"
! grep -Eq '[0-9a-f]{64}|first run' why.txt && ok why_no_hashes || fail why_no_hashes "$out"
run pipe MODEL="$STORIES" OUT="$SCRATCH/w" "${W[@]}" CHUNK=1 why
! printf '%s\n' "$out" | grep -q 'of02' && printf '%s\n' "$out" | grep -qx 'ffn-01of01: not run yet' &&
	ok why_only_this_plan || fail why_only_this_plan "$out"
run make -C "$SRC" --no-print-directory help
printf '%s\n' "$out" | grep -q 'make MODEL=<dir|org/name>' && ok help_shows_model || fail help_shows_model "$out"
# Every make variable README's make-interface table documents is named by make help too.
missing=
for v in $(sed -n '/^## The make interface/,/^## /p' "$SRC/README.md" | grep -oE '^\| `[A-Z_0-9]+`(, `[A-Z_0-9]+`)*' |
	grep -oE '[A-Z_0-9]+' | sort -u); do
	grep -qw "$v" <<<"$out" || missing+=" $v"
done
[ -z "$missing" ] && ok help_names_every_variable || fail help_names_every_variable "make help lacks:$missing"
expect_fail plan_needs_model 2 'make plan needs MODEL=' make -C "$SRC" --no-print-directory plan
run pipe MODEL="$STORIES" OUT="$SCRATCH/bad" LUT2=7
[ "$rc" != 0 ] && printf '%s\n' "$err" | grep -q 'LUT2' && ! printf '%s\n' "$err" | grep -q -- '--lut' &&
	ok plan_failure_names_make_variable || fail plan_failure_names_make_variable "$err"
finish
