#!/usr/bin/env bash
# key.sh: content-hash keys for the conversion pipeline.
#
#   key.sh key KEYFILE ARGSFILE
#       ARGSFILE lists what a step depends on, one item a line:
#         param NAME=VALUE      a parameter
#         input PATH            a file or directory (hashed by content)
#       KEYFILE gets one sorted line per item, inputs with their SHA-256, and is
#       replaced only when its bytes change: make then sees it as unchanged and
#       skips the step when nothing that matters changed. The previous key is
#       kept as KEYFILE.prev for "why". Files are hashed once and cached by
#       (size, mtime, inode) in the statcache beside KEYFILE, so multi-GB
#       checkpoints are not re-read on every run.
#   key.sh out OUTFILE PATH...
#       OUTFILE: the SHA-256 over the given outputs, replaced only when it
#       changes, so a step that re-ran and wrote identical bytes does not make
#       the steps after it run (early cutoff).
#   key.sh why KEYFILE
#       What changed since the previous key.
set -euo pipefail

sha() { if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi; }
statline() { stat -c '%s %.9Y %i' "$1" 2>/dev/null || stat -f '%z %Fm %i' "$1"; }

# hash_file PATH: SHA-256 of a file through the stat cache
hash_file() {
	local f=$1 st h
	st=$(statline "$f")
	h=$(awk -F'\t' -v p="$f" -v s="$st" '$1 == p && $2 == s { h = $3 } END { print h }' "$cache")
	if [ -z "$h" ]; then
		h=$(sha <"$f")
		printf '%s\t%s\t%s\n' "$f" "$st" "$h" >>"$cache"
	fi
	echo "$h"
}

# hash_path PATH: a file's hash; a directory's is the hash of its sorted
# "relative-path hash" lines (temporaries excluded)
hash_path() {
	if [ -d "$1" ]; then
		(cd "$1" && find . -type f ! -name '*.tmp.*' | LC_ALL=C sort | while read -r f; do
			printf '%s %s\n' "$f" "$(hash_file "$PWD/$f")"; done) | sha
	elif [ -e "$1" ]; then hash_file "$1"
	else echo missing; fi
}

# replace_if_changed TMP FILE: move TMP over FILE unless they are equal
replace_if_changed() {
	if cmp -s "$1" "$2"; then rm -f "$1"; return 1; fi
	[ -f "$2" ] && cp -f "$2" "$2.prev"
	mv -f "$1" "$2"
}

# Interrupted, leave no temporaries.
trap 'rm -f "${tmp:-}"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cmd=${1:?usage: key.sh key|out|why ...}
shift
case "$cmd" in
key)
	keyfile=$1 args=$2
	cache=$(cd "$(dirname "$keyfile")" && pwd)/statcache
	touch "$cache"
	tmp=$keyfile.tmp.$$
	while read -r kind rest; do
		case "$kind" in
		param) echo "param $rest" ;;
		input) echo "input $rest $(hash_path "$rest")" ;;
		esac
	done <"$args" | LC_ALL=C sort >"$tmp"
	replace_if_changed "$tmp" "$keyfile" || true ;;
out)
	outfile=$1; shift
	cache=$(cd "$(dirname "$outfile")" && pwd)/statcache
	touch "$cache"
	tmp=$outfile.tmp.$$
	for f in "$@"; do echo "$(basename "$f") $(hash_path "$f")"; done | sha >"$tmp"
	replace_if_changed "$tmp" "$outfile" || true ;;
why)
	keyfile=$1 name=$(basename "$1" .key)
	if [ ! -f "$keyfile.prev" ]; then echo "$name: first run"
	else echo "$name:"; diff "$keyfile.prev" "$keyfile" | sed -n 's/^< /  was: /p; s/^> /  now: /p' || true; fi ;;
*) echo "usage: key.sh key|out|why ..." >&2; exit 2 ;;
esac
