#!/usr/bin/env bash
# key.sh: content-hash keys and stamps for the conversion pipeline.
#
#   key.sh key KEYFILE PARAM=VALUE... -- INPUT...
#       Write KEYFILE: one sorted line per parameter ("param NAME=VALUE") and per
#       input ("input PATH SHA256"; a directory hashes every file below it).
#       KEYFILE is replaced only when its bytes change, so make sees it as
#       unchanged (and skips the step) when nothing that matters changed; the
#       previous key is kept as KEYFILE.prev for "why".
#       Large inputs are hashed once and cached by (size, mtime, inode) in
#       $KEY_STATCACHE (default: statcache beside KEYFILE).
#   key.sh stamp STAMPFILE KEYFILE OUTPUT...
#       Write STAMPFILE (atomically, last): SHA-256 over the key and the outputs.
#       A downstream step lists this stamp as an input: if this step re-ran but
#       wrote identical bytes, the stamp content is unchanged and so is the
#       downstream key (early cutoff).
#   key.sh why KEYFILE
#       Print what changed since the previous key.
set -euo pipefail

sha() { if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi; }
statline() { if stat -c '%s %.9Y %i' "$1" 2>/dev/null; then :; else stat -f '%z %Fm %i' "$1"; fi; }

# hash_file PATH: SHA-256 of a file through the stat cache
hash_file() {
	local f=$1 st cached
	st=$(statline "$f")
	cached=$(awk -v p="$f" -v s="$st" '$0 ~ /^/ { n=split($0,a,"\t"); if (a[1]==p && a[2]==s) h=a[3] } END { print h }' "$cache" 2>/dev/null || true)
	if [ -n "$cached" ]; then echo "$cached"; return; fi
	local h
	h=$(sha <"$f")
	printf '%s\t%s\t%s\n' "$f" "$st" "$h" >>"$cache"
	echo "$h"
}

# hash_path PATH: a file's hash, or for a directory the hash of its sorted
# "relative-path hash" lines
hash_path() {
	if [ -d "$1" ]; then
		(cd "$1" && find . -type f ! -name '*.tmp.*' | LC_ALL=C sort | while read -r f; do
			printf '%s %s\n' "$f" "$(sha <"$f")"; done) | sha
	elif [ -e "$1" ]; then hash_file "$1"
	else echo "missing"; fi
}

cmd=${1:?usage: key.sh key|stamp|why ...}
shift
case "$cmd" in
key)
	keyfile=$1; shift
	cache=${KEY_STATCACHE:-$(dirname "$keyfile")/statcache}
	touch "$cache"
	tmp=$keyfile.tmp.$$
	{
		while [ $# -gt 0 ] && [ "$1" != -- ]; do echo "param $1"; shift; done
		[ $# -gt 0 ] && shift
		for f in "$@"; do echo "input $f $(hash_path "$f")"; done
	} | LC_ALL=C sort >"$tmp"
	if cmp -s "$tmp" "$keyfile"; then rm -f "$tmp"
	else
		[ -f "$keyfile" ] && cp -f "$keyfile" "$keyfile.prev"
		mv -f "$tmp" "$keyfile"
	fi ;;
stamp)
	stamp=$1 keyfile=$2; shift 2
	cache=${KEY_STATCACHE:-$(dirname "$stamp")/statcache}
	touch "$cache"
	{ cat "$keyfile"; for f in "$@"; do echo "output $f $(hash_path "$f")"; done; } | sha >"$stamp.tmp.$$"
	mv -f "$stamp.tmp.$$" "$stamp" ;;
why)
	keyfile=$1
	if [ ! -f "$keyfile.prev" ]; then echo "$(basename "$keyfile" .key): first run"
	else diff "$keyfile.prev" "$keyfile" | sed -n 's/^< /  was: /p; s/^> /  now: /p' || true; fi ;;
*) echo "usage: key.sh key|stamp|why ..." >&2; exit 2 ;;
esac
