#!/usr/bin/env bash
# run.sh FUZZER: run one fuzz target for $FUZZ_SECONDS over its seed corpus
# (tests/fuzz/corpus/<name>/) and print "ok <name>" or "FAIL <name>".
set -uo pipefail
f=$1 n=$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/corpus/${n#fuzz_}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null
# (no pipe into grep -q: under pipefail the fuzzer's SIGPIPE would read as "not libFuzzer")
help=$("$f" -help=1 2>&1 || true)
if [[ $help == *libFuzzer* ]]; then
	"$f" -max_total_time="${FUZZ_SECONDS:-4}" -timeout=10 -rss_limit_mb=2048 \
	     -artifact_prefix="$work/" "$work" >"$work/log" 2>&1
else
	FUZZ_SECONDS=${FUZZ_SECONDS:-4} "$f" "$work" >"$work/log" 2>&1
fi
rc=$?
if [ $rc = 0 ]; then
	echo "ok $n ($(grep -Eo 'Done [0-9]+ runs|[0-9]+ runs' "$work/log" | tail -n1))"
else
	echo "FAIL $n: crashed (status $rc)"; tail -n 30 "$work/log"
	exit 1
fi
