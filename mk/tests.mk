# tests.mk: the test suite (make check), fuzzing and benchmarks.
#
# check builds everything with ASan+UBSan and warnings as errors, then runs
# tests/run.sh: unit tests (tests/unit), stage CLI tests (tests/cli), the
# real-model tests (skipped with a notice when ../shared is absent) and a
# short run of every fuzz target.

SHARED ?= $(abspath ../shared)
# Where the sanitizer build of check goes (separate trees let several builds run at once).
CHECK_B ?= build/asan
# make fuzz: each target in rounds of FUZZ_ROUND seconds until a round adds no
# coverage, at most FUZZ_MAX_SECONDS (tests/fuzz/run.sh); FUZZ_SECONDS=N instead
# runs each for exactly N seconds.
FUZZ_ROUND ?= 30
FUZZ_MAX_SECONDS ?= 600
FUZZ_BRIEF ?= 4

.PHONY: check check-build fuzz-build fuzz bench

check:
	$(Q)mk/deps.sh install test
	$(Q)$(MAKE) --no-print-directory FLAVOR=asan WERROR=1 B=$(CHECK_B) check-build
# Real tokenizer.json files for the llama-spm, o200k and tekken vectors: need npm, never fail the build.
	$(Q)tests/tools/fetch-npm-tokenizer.sh --quiet llama2 $(CHECK_B)/tests/spm_js_to_json >/dev/null || true
	$(Q)for t in gpt4o mistral-nemo; do tests/tools/fetch-npm-tokenizer.sh --quiet $$t >/dev/null || true; done
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)BIN=$(CURDIR)/$(CHECK_B)/bin TESTBIN=$(CURDIR)/$(CHECK_B)/tests FUZZBIN=$(CURDIR)/$(FZ) \
	  FUZZ_SECONDS=$(FUZZ_BRIEF) SHARED=$(SHARED) tests/run.sh

check-build: $(STAGE_BINS) $(UNIT_BINS) $(TOOL_BINS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	$(Q)for f in $(FUZZ_BINS); do FUZZ_ROUND=$(FUZZ_ROUND) FUZZ_MAX_SECONDS=$(FUZZ_MAX_SECONDS) \
	  $(if $(FUZZ_SECONDS),FUZZ_SECONDS=$(FUZZ_SECONDS),FUZZ_PLATEAU=1) tests/fuzz/run.sh $$f || exit 1; done

bench:
	$(Q)$(MAKE) --no-print-directory FLAVOR=release check-build
	$(Q)BIN=$(CURDIR)/build/release/bin TESTBIN=$(CURDIR)/build/release/tests SHARED=$(SHARED) tests/bench.sh
