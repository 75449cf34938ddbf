# lib.sh: helpers for CLI tests (sourced by tests/cli/*.sh).
#
# Each case prints "ok NAME", "FAIL NAME: why" or "skip NAME: why" (tests/run.sh
# counts them). Environment: BIN, TESTBIN, SRC, SHARED, SCRATCH (the cwd).
# Golden files live in tests/cli/golden/; UPDATE_GOLDEN=1 rewrites them.

# Progress lines depend on the machine's speed (base/progress.h): none in
# what tests compare, unless a test asks for them.
export ANEMAKE_PROGRESS=0
unset ANEMAKE_STATS

_failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; _failed=1; }
skip() { echo "skip $1: $2"; }
finish() { exit $_failed; }

have_shared() { [ -d "$SHARED/spec" ]; }

# run CMD...: runs it, capturing stdout/stderr/status in $out $err $rc
run() {
	"$@" >"$SCRATCH/.out" 2>"$SCRATCH/.err"
	rc=$?
	out=$(cat "$SCRATCH/.out")
	err=$(cat "$SCRATCH/.err")
}

# expect_fail NAME STATUS REGEX CMD...: CMD exits STATUS with exactly one
# stderr line matching REGEX (sanitizer noise would fail this, on purpose).
expect_fail() {
	local name=$1 want=$2 re=$3
	shift 3
	run "$@"
	local lines
	lines=$(printf '%s' "$err" | grep -c '')
	if [ "$rc" != "$want" ]; then fail "$name" "exit $rc, expected $want; stderr: $err"
	elif [ "$lines" != 1 ]; then fail "$name" "expected one stderr line, got $lines: $err"
	elif ! printf '%s' "$err" | grep -Eq -- "$re"; then fail "$name" "stderr '$err' does not match /$re/"
	else ok "$name"; fi
}

# expect_ok NAME CMD...: CMD exits 0
expect_ok() {
	local name=$1
	shift
	run "$@"
	if [ "$rc" = 0 ]; then ok "$name"; else fail "$name" "exit $rc: $(printf '%s' "$err" | tail -n 3)"; fi
}

# golden NAME FILE GOLDEN: FILE equals tests/cli/golden/GOLDEN
golden() {
	local g=$SRC/tests/cli/golden/$3
	if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then mkdir -p "$(dirname "$g")"; cp "$2" "$g"; ok "$1 (golden updated)"; return; fi
	if [ ! -f "$g" ]; then fail "$1" "golden file $g missing (UPDATE_GOLDEN=1 creates it)"
	elif cmp -s "$2" "$g"; then ok "$1"
	else fail "$1" "differs from golden $3: $(diff "$g" "$2" | head -n 5 | tr '\n' ' ')"; fi
}

# The Core ML schema, for protoc checks.
PROTO=$SHARED/reference/coreml-proto

# no_artifacts NAME DIR: nothing package-like (final or temporary) in DIR
no_artifacts() {
	if [ -n "$(ls -A "$2" 2>/dev/null | grep -E 'mlpackage|\.tmp\.')" ]; then fail "$1" "left behind: $(ls "$2")"; else ok "$1"; fi
}

# protoc_ok NAME PKG: model.mlmodel decodes against Apple's schema
protoc_ok() {
	if ! have_shared || ! command -v protoc >/dev/null; then skip "$1" "needs ../shared and protoc"; return; fi
	if protoc --decode=CoreML.Specification.Model -I "$PROTO" "$PROTO/Model.proto" \
		<"$2/Data/com.apple.CoreML/model.mlmodel" >"$SCRATCH/decoded.txt" 2>"$SCRATCH/protoc.err" &&
		grep -q 'specificationVersion: 9' "$SCRATCH/decoded.txt"; then ok "$1"
	else fail "$1" "protoc: $(head -c 300 "$SCRATCH/protoc.err")"; fi
}

# desc LISTING: the interface lines of an mldump listing (description features, MIL signature)
desc() { grep -E '^(function|  (input|output|state) |program function|  in )' "$1"; }
# metakeys LISTING: metadata keys, without coremltools' own
metakeys() { grep -E '^  meta ' "$1" | grep -v 'com.github.apple.coremltools' | sed 's/ = .*//'; }

# yaml_keys META: the YAML keys (model_info, parameters) of a meta.yaml, sorted;
# comment_keys META: its "# key: value" header keys but for paths and the command line
yaml_keys() { sed -n '/^$/q; s/^\( *[a-z_]*\):.*/\1/p' "$1" | sort; }
comment_keys() { sed -n 's/^# \([a-z_0-9]*\): .*/\1/p' "$1" | grep -vxE 'model_path|output_dir|command_line|converter' | sort; }

# as_runtimes_read META: a meta.yaml less what differs from ANEMLL's by design and
# no runtime reads: the description's first line and author (ours name anemake), the
# comments naming the run's time, paths, command and converter
as_runtimes_read() {
	sed -e '/^  description: |$/{n;d;}' -e '/^  author: /d' "$1" |
		grep -vE '^# (Generated|model_path|output_dir|command_line|converter):'
}

# same_meta_keys NAME REF META: meta.yaml META has the keys of REF (a reference in ../shared)
same_meta_keys() {
	if ! have_shared; then skip "$1" "needs ../shared"; return; fi
	local d
	d=$(diff <(yaml_keys "$2") <(yaml_keys "$3"))$(diff <(comment_keys "$2") <(comment_keys "$3"))
	[ -z "$d" ] && ok "$1" || fail "$1" "$(echo "$d" | tr '\n' ' ')"
}
