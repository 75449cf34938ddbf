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
# Tests run make as a user runs it, not as a child of `make -jN check`, whose
# jobserver they cannot reach (make would warn on stderr, which tests compare).
unset MAKEFLAGS MFLAGS MAKELEVEL
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
passed=0 failed=0 skipped=0 broken=()

[ -d "$SHARED/spec" ] || echo "notice: $SHARED not found: tests that need ../shared are skipped"

# One line per test file: "[i/N] name" as it starts (a long test shows what is
# running), its counts when it ends, then its FAIL/skip/# lines.
tally() { # name logfile status
	local p f s crashed=0
	p=$(grep -c '^ok ' "$2"); f=$(grep -c '^FAIL ' "$2"); s=$(grep -c '^skip ' "$2")
	if [ "$3" != 0 ] && [ "$f" = 0 ]; then crashed=1 f=1; fi
	printf '%3d ok %3d failed %3d skipped\n' "$p" "$f" "$s"
	grep -E "^(FAIL|skip|#) " "$2" | sed "s|^|  [$1] |"
	if [ $crashed = 1 ]; then
		echo "  [$1] FAIL: exited with status $3 (last lines below)"; tail -n 15 "$2" | sed 's/^/    /'
	fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	[ "$f" = 0 ] || broken+=("$1")
}

# The test files to run, in order: unit tests, CLI tests, fuzz targets.
todo=()
for t in "$TESTBIN"/test_*; do [ -x "$t" ] && todo+=("unit:$t"); done
for t in "$here"/cli/*.sh; do [ -f "$t" ] && [ "$(basename "$t")" != lib.sh ] && todo+=("cli:$t"); done
if [ -n "${FUZZBIN:-}" ]; then for f in "$FUZZBIN"/fuzz_*; do [ -x "$f" ] && todo+=("fuzz:$f"); done; fi
run=()
for e in "${todo[@]}"; do
	n=$(basename "${e#*:}" .sh)
	[[ "$n" =~ ${TESTS:-.} ]] && run+=("$e")
done

i=0
for e in "${run[@]}"; do
	kind=${e%%:*} t=${e#*:} n=$(basename "${e#*:}" .sh)
	i=$((i + 1))
	printf '[%d/%d] %-28s ' "$i" "${#run[@]}" "$n"
	case $kind in
	unit) (cd "$SRC" && "$t") >"$log/$n" 2>&1; rc=$? ;;
	cli)
		scratch=$(mktemp -d)
		(cd "$scratch" && SCRATCH=$scratch bash "$t") >"$log/$n" 2>&1; rc=$?
		rm -rf "$scratch" ;;
	fuzz) "$here/fuzz/run.sh" "$t" >"$log/$n" 2>&1; rc=$? ;;
	esac
	tally "$n" "$log/$n" $rc
done

echo
[ ${#broken[@]} = 0 ] || echo "failing: ${broken[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
