# anemake: HuggingFace checkpoint -> Core ML parts for the Apple Neural Engine.
#
#   make                 build every program into bin/
#   make check           build with ASan+UBSan and run every test
#   make demo            convert the bundled stories260K end to end
#   make bench           speed and memory figures, never part of check (BENCH=regex, BENCH_LAYERS=N)
#   make fuzz            each fuzz target until its coverage stops growing
#                        (FUZZ_ROUND=30 FUZZ_MAX_SECONDS=600; FUZZ_SECONDS=N: N each)
#   V=1                  show compiler command lines

# bash with -e so a failing line inside a multi-line recipe stops it.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# A failed recipe must not leave a half-written target behind.
.DELETE_ON_ERROR:
# Built-in implicit rules only slow make down here.
MAKEFLAGS += -r
.SUFFIXES:
.DEFAULT_GOAL := all

Q := $(if $(filter 1,$(V)),,@)
CC ?= cc
DEP_PKGS := libcjson yaml-0.1 libcrypto libzstd libzip

# Missing libraries are installed (Debian/Ubuntu, as root or with sudo) or
# named with the exact install command before anything is compiled.
ifeq ($(filter clean help,$(MAKECMDGOALS)),)
ifneq ($(shell mk/deps.sh check >/dev/null 2>&1 && echo ok),ok)
$(info anemake: some libraries are missing; trying to install them)
ifneq ($(shell mk/deps.sh install >&2 && echo ok),ok)
$(error missing libraries: install them with the command printed above)
endif
endif
endif

include mk/build.mk
include models.mk
include mk/tests.mk
include mk/pipeline.mk
include mk/demo.mk

.PHONY: all clean help
all: $(STAGE_BINS)
	@mkdir -p bin
	$(Q)for p in $(PROGRAMS); do cmp -s $(BIN_B)/$$p bin/$$p || \
	  { cp -f $(BIN_B)/$$p bin/$$p.tmp.$$$$ && mv -f bin/$$p.tmp.$$$$ bin/$$p; }; done

clean:
	rm -rf build bin

help:
	@sed -n '3,9p' Makefile | cut -c2-
	@sed -n '3,14p' mk/pipeline.mk | cut -c2-
