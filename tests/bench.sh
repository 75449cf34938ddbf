#!/usr/bin/env bash
# bench.sh: run every benchmark program and print what it reports.
#
# A benchmark is any executable $TESTBIN/bench_* (built from
# tests/tools/bench_*.c); adding one needs no change here. Each runs from
# the repository root with BIN, TESTBIN and SHARED set (make bench sets
# them) and prints its own figures. Benchmarks time things; tests never do.
# BENCH=regex runs only the benchmarks whose names match.
#
# Then whole conversions (make MODEL=...), each step's wall time, CPU time,
# peak RSS and peak anonymous memory (mk/step.sh's summary), and the whole
# make's wall and CPU time:
#   e2e       the bundled stories260K (BENCH_MODEL=<dir>: another checkpoint)
#   llama1b   a Llama-3.2-1B-shaped checkpoint (hidden 2048, 16 layers, 32/8
#             heads, intermediate 8192, vocab 128256, tied, bf16)
#   llama8b   a Llama-3.1-8B-shaped one (hidden 4096, 32/8 heads, intermediate
#             14336, vocab 128256, untied, bf16), BENCH_LAYERS of its 32
#             layers (default 32: 16 GB; 2 gives a 3 GB slice)
# at LUT2=6 LUT3=6 CHUNK=auto. Their weights are random but deterministic
# (mkfixture), generated once into BENCH_CACHE (default
# ~/.cache/anemake/bench, outside the repository) and reused; random
# weights fail the smoketest's thresholds, so it runs with MIN_AGREEMENT=0
# MAX_KL=1e9. Each conversion goes to a temporary folder, removed after.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SRC=$(cd "$here/.." && pwd)
export BIN=${BIN:?} TESTBIN=${TESTBIN:?} SHARED=${SHARED:-$SRC/../shared}
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/anemake/bench}
BENCH_LAYERS=${BENCH_LAYERS:-32}
echo "bench: $(uname -sm), $(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?') cores; load:$(uptime | sed 's/.*load average[s]*://')"
failed=()
for b in "$TESTBIN"/bench_*; do
	[ -x "$b" ] || continue
	n=$(basename "$b")
	[[ "$n" =~ ${BENCH:-.} ]] || continue
	echo "== $n"
	(cd "$SRC" && "$b") || { echo "$n: failed with status $?"; failed+=("$n"); }
done

# fixture NAME MKFIXTURE-ARGS...: the checkpoint's folder in the cache (on
# stdout), generated unless a complete one with these arguments is there.
fixture() {
	local dir=$BENCH_CACHE/$1 args
	shift
	args="$*"
	if [ "$(cat "$dir/.bench-args" 2>/dev/null)" != "$args" ]; then
		rm -f "$dir/.bench-args"
		mkdir -p "$dir" || return 1
		echo "generating $dir (mkfixture $args) ..." >&2
		local t0=$SECONDS
		"$TESTBIN/mkfixture" --arch llama --out "$dir" "$@" >&2 || return 1
		echo "$args" >"$dir/.bench-args"
		echo "generated in $((SECONDS - t0)) s: $(du -sh "$dir" | cut -f1)" >&2
	fi
	echo "$dir"
}

# table LOG: one row per step of a make run from its summary lines
table() {
	printf '  %-34s %9s %9s %10s %10s\n' step wall CPU "peak RSS" "peak anon"
	sed -n 's/^anemake: \(.*\) done (\(.*\))$/\1|\2/p' "$1" | while IFS='|' read -r label cost; do
		local w c r a
		w=$(sed -n 's/^\([0-9.]*\) s.*/\1/p' <<<"$cost")
		c=$(sed -n 's/.*CPU \([0-9.]*\) s.*/\1/p' <<<"$cost")
		r=$(sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p' <<<"$cost")
		a=$(sed -n 's/.*anonymous \([0-9]*\) MB.*/\1/p' <<<"$cost")
		printf '  %-34s %7s s %7s s %7s MB %7s MB\n' "$label" "${w:-?}" "${c:-?}" "${r:-?}" "${a:-?}"
	done
}

# bounded LOG LABEL MB: the step's peak anonymous memory is under MB (a
# bound, not a timing: embed and lmhead stream the table a block of rows at a
# time, so theirs does not grow with the vocabulary), else a failure
bounded() {
	local a
	a=$(sed -n "s/^anemake: $2 done (.*anonymous \([0-9]*\) MB.*/\1/p" "$1")
	[ -z "$a" ] && return 0 # not run, or no RssAnon here
	if [ "$a" -lt "$3" ]; then echo "  $2: peak anonymous $a MB, under $3 MB"; else
		echo "  $2: peak anonymous $a MB, over its bound of $3 MB"
		failed+=("$name-memory")
	fi
}

# convert NAME MODEL MAKE-VARS...: make MODEL=... end to end (release
# programs), its steps and totals; the smoketest's agreement line.
convert() {
	local name=$1 model=$2 out log rc
	shift 2
	echo "== $name: make MODEL=$model $*"
	out=$(mktemp -d) log=$(mktemp)
	local t0 u0 u1
	t0=$(date +%s.%N)
	times >"$log.t0" # (not in a $(...) subshell: that one has no children yet)
	(cd "$SRC" && make --no-print-directory PIPE_BIN="$BIN" MODEL="$model" OUT="$out" NEXT_STEPS= "$@") >"$log.out" 2>"$log"
	rc=$?
	times >"$log.t1"
	u0=$(tail -n 1 "$log.t0") u1=$(tail -n 1 "$log.t1")
	table "$log"
	bounded "$log" embeddings 64
	bounded "$log" "LM head" 64
	grep -h 'agreement' "$log.out" | sed 's/^/  /'
	[ $rc = 0 ] || { echo "$name: make failed with status $rc:"; tail -n 5 "$log" | sed 's/^/  /'; failed+=("$name"); }
	# children's CPU time: times' second line, "XmY.YYYs XmY.YYYs" (user, system)
	local cpu
	cpu=$(awk -v a="$u0" -v b="$u1" 'function s(t,  m) { split(t, m, /[ms]/); return m[1] * 60 + m[2] }
		BEGIN { split(a, x, " "); split(b, y, " "); printf "%.1f", s(y[1]) + s(y[2]) - s(x[1]) - s(x[2]) }')
	local peak
	peak=$(sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p' "$log" | sort -n | tail -n 1)
	local anon
	anon=$(sed -n 's/.*anonymous \([0-9]*\) MB.*/\1/p' "$log" | sort -n | tail -n 1)
	echo "  whole make: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s wall, $cpu s CPU," \
		"largest step peak RSS ${peak:-?} MB, peak anonymous ${anon:-?} MB; output $(du -sh "$out" | cut -f1)"
	echo "  load:$(uptime | sed 's/.*load average[s]*://')"
	# the runtime's and the reference's tokens/s on what was just converted
	if [ $rc = 0 ]; then
		"$TESTBIN/bench_runtime" "$out/meta.yaml" "$model" | sed 's/^/  /' || { echo "$name runtime: failed"; failed+=("$name-runtime"); }
	fi
	rm -rf "$out" "$log" "$log.out" "$log.t0" "$log.t1"
}

if [[ "e2e" =~ ${BENCH:-.} ]]; then
	convert e2e "${BENCH_MODEL:-$SRC/tests/models/stories260K}" LUT2=6,4 LUT3=6 CHUNK=2 STEPS=8
fi
# Llama 3 shapes; no tokenizer.json, so the prompt is token ids
LLAMA3="--heads 32 --kv-heads 8 --vocab 128256 --context 131072 --rope-scaling llama3 --dtype bf16"
LLAMA_RUN="LUT2=6 LUT3=6 CHUNK=auto PROMPT_IDS=128000,791,6864,315,9822,374 MIN_AGREEMENT=0 MAX_KL=1e9"
if [[ "llama1b" =~ ${BENCH:-.} ]]; then
	# shellcheck disable=SC2086
	if m=$(fixture llama1b --hidden 2048 --intermediate 8192 --layers 16 --tied --rope-factor 32 $LLAMA3); then
		convert llama1b "$m" $LLAMA_RUN
	else echo "llama1b: cannot generate the checkpoint"; failed+=(llama1b); fi
fi
if [[ "llama8b" =~ ${BENCH:-.} ]]; then
	# shellcheck disable=SC2086
	if m=$(fixture "llama8b-L$BENCH_LAYERS" --hidden 4096 --intermediate 14336 --layers "$BENCH_LAYERS" --untied \
		--rope-factor 8 $LLAMA3); then
		convert "llama8b ($BENCH_LAYERS of 32 layers)" "$m" $LLAMA_RUN
	else echo "llama8b: cannot generate the checkpoint"; failed+=(llama8b); fi
fi
# Quality of each palettization on stories260K, side by side (tests/tools/bench_quality.sh).
if [[ "quality" =~ ${BENCH:-.} ]]; then
	echo "== quality"
	"$here/tools/bench_quality.sh" || failed+=(quality)
fi
[ ${#failed[@]} = 0 ] || { echo "failing: ${failed[*]}"; exit 1; }
