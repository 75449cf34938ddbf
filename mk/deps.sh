#!/usr/bin/env bash
# deps.sh: make sure the libraries anemake links against are present.
#   deps.sh check     exit 0 when pkg-config finds them all
#   deps.sh install   install what is missing (Debian/Ubuntu: apt, as root or via
#                     sudo), or print the exact command for this system and exit 1
set -euo pipefail
PKGS="libcjson yaml-0.1 libcrypto libzstd libzip"
DEB="pkg-config libcjson-dev libyaml-dev libssl-dev libzstd-dev libzip-dev"
DEB_TEST="protobuf-compiler clang"   # protoc checks our bytes; clang runs the fuzzers
BREW="pkg-config cjson libyaml openssl@3 zstd libzip"
BREW_TEST="protobuf"                 # clang comes with Xcode's command-line tools

missing() {
	command -v pkg-config >/dev/null 2>&1 || { echo pkg-config; return; }
	for p in $PKGS; do pkg-config --exists "$p" || echo "$p"; done
}

case "${1:-check}" in
check)
	m=$(missing)
	[ -z "$m" ] || { echo "missing: $(echo $m)" >&2; exit 1; } ;;
install)
	m=$(missing | tr '\n' ' ') m=${m% }
	want_test=${2:-}
	if [ -z "$m" ] && { [ -z "$want_test" ] || command -v protoc >/dev/null 2>&1; }; then exit 0; fi
	[ -n "$m" ] || m="protoc (for make check)"
	if [ "$(uname)" = Darwin ]; then
		echo "anemake needs: $m" >&2
		echo "install with:  brew install $BREW $BREW_TEST   ($BREW_TEST: for make check)" >&2
		exit 1
	fi
	pkgs="$DEB"
	[ -z "$want_test" ] || pkgs="$pkgs $DEB_TEST"
	if command -v apt-get >/dev/null 2>&1; then
		sudo=""
		if [ "$(id -u)" != 0 ]; then
			if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=sudo
			else
				echo "anemake needs: $m" >&2
				echo "install with:  sudo apt-get install -y $DEB $DEB_TEST   ($DEB_TEST: for make check)" >&2
				exit 1
			fi
		fi
		echo "installing: $pkgs" >&2
		$sudo apt-get update -qq >&2 || true
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $pkgs >&2
		exit 0
	fi
	echo "anemake needs the pkg-config modules: $m (cJSON, libyaml, OpenSSL libcrypto, zstd, libzip)" >&2
	echo "on Debian/Ubuntu: apt-get install -y $DEB $DEB_TEST; on Fedora: dnf install -y pkgconf cjson-devel libyaml-devel openssl-devel libzstd-devel libzip-devel protobuf-compiler clang ($DEB_TEST: for make check)" >&2
	exit 1 ;;
*) echo "usage: deps.sh check|install [test]" >&2; exit 2 ;;
esac
