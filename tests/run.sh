#!/usr/bin/env bash
# run.sh: run every test and print one closing line "N passed, N failed, N skipped".
#
# Protocol: a test program prints "ok NAME", "FAIL NAME: why" or "skip NAME: why"
# (and "# note" lines, shown as measurements)
# per case and exits non-zero when a case failed. Unit tests are binaries in
# $TESTBIN; CLI tests are tests/cli/*.sh, each run in its own scratch directory
# with BIN, TESTBIN, SHARED, SRC (repo root) and SCRATCH set.
# TESTS=regex runs only the tests whose names match.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export SRC=$(cd "$here/.." && pwd)
export BIN=${BIN:?} TESTBIN=${TESTBIN:?} SHARED=${SHARED:-$SRC/../shared}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
passed=0 failed=0 skipped=0 broken=()

[ -d "$SHARED/spec" ] || echo "notice: $SHARED not found: tests that need ../shared are skipped"

tally() { # name logfile status
	local p f s
	p=$(grep -c '^ok ' "$2"); f=$(grep -c '^FAIL ' "$2"); s=$(grep -c '^skip ' "$2")
	grep -E "^(FAIL|skip|#) " "$2" | sed "s|^|  [$1] |"
	if [ "$3" != 0 ] && [ "$f" = 0 ]; then
		f=1; echo "  [$1] FAIL: exited with status $3 (last lines below)"; tail -n 15 "$2" | sed 's/^/    /'
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	[ "$f" = 0 ] || broken+=("$1")
	printf '%-28s %3d ok %3d failed %3d skipped\n' "$1" "$p" "$f" "$s"
}

for t in "$TESTBIN"/test_*; do
	[ -x "$t" ] || continue
	n=$(basename "$t")
	[[ "$n" =~ ${TESTS:-.} ]] || continue
	(cd "$SRC" && "$t") >"$log/$n" 2>&1; tally "$n" "$log/$n" $?
done

for t in "$here"/cli/*.sh; do
	[ -f "$t" ] || continue
	n=$(basename "$t" .sh)
	[ "$n" != lib ] || continue # helpers sourced by the tests
	[[ "$n" =~ ${TESTS:-.} ]] || continue
	scratch=$(mktemp -d)
	(cd "$scratch" && SCRATCH=$scratch bash "$t") >"$log/$n" 2>&1; rc=$?
	tally "$n" "$log/$n" $rc
	rm -rf "$scratch"
done

if [ -n "${FUZZBIN:-}" ]; then
	for f in "$FUZZBIN"/fuzz_*; do
		[ -x "$f" ] || continue
		n=$(basename "$f")
		[[ "$n" =~ ${TESTS:-.} ]] || continue
		"$here/fuzz/run.sh" "$f" >"$log/$n" 2>&1; tally "$n" "$log/$n" $?
	done
fi

echo
[ ${#broken[@]} = 0 ] || echo "failing: ${broken[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
