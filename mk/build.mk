# build.mk: compile common/ into a static library and link every program.
#
# One build directory per flavour (release, asan), so switching flavours never
# mixes objects. Flags are tracked in $(B)/FLAGS (rewritten only when they
# change, git's GIT-CFLAGS idea): a flag change rebuilds, a no-op does not.

FLAVOR ?= release
B ?= build/$(FLAVOR)

DEP_CFLAGS := $(shell pkg-config --cflags $(DEP_PKGS) 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs $(DEP_PKGS) 2>/dev/null) -lpthread -lm

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif
ifeq ($(FLAVOR),asan)
OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else
OPT := -O2 -g
LDSAN :=
endif
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) $(OPT) -Icommon $(DEP_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(LDSAN) $(LDFLAGS)

COMMON_SRC := $(sort $(wildcard common/*/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
STAGE_SRC := $(sort $(wildcard stages/*.c))
PROGRAMS := $(notdir $(STAGE_SRC:.c=))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB := $(B)/libanemake.a
BIN_B := $(B)/bin
STAGE_BINS := $(PROGRAMS:%=$(BIN_B)/%)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(B)/tests/%)

# Objects of programs and tests are intermediates of chained rules: keep them
# so rebuilds stay incremental. (Only these: a bare .SECONDARY: would make
# every target an intermediate, and make would not remake a missing stamp of
# the pipeline whose successors exist.)
.SECONDARY: $(STAGE_SRC:%.c=$(B)/%.o) $(UNIT_SRC:%.c=$(B)/%.o) $(TOOL_SRC:%.c=$(B)/%.o)

# Every file is written under a name of its own ($$$$: the recipe line's shell)
# and renamed into place, so makes that run at once never see each other's
# half-written files.
$(B)/FLAGS: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(DEP_LIBS)' > $@.tmp.$$$$ && \
	  if cmp -s $@.tmp.$$$$ $@; then rm -f $@.tmp.$$$$; else mv -f $@.tmp.$$$$ $@; fi

$(B)/%.o: %.c $(B)/FLAGS
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -MF $(@:.o=.d).tmp.$$$$ -MT $@ -c $< -o $@.tmp.$$$$ && \
	  mv -f $(@:.o=.d).tmp.$$$$ $(@:.o=.d) && mv -f $@.tmp.$$$$ $@

$(LIB): $(COMMON_OBJ)
	$(Q)$(AR) rcs $@.tmp.$$$$ $^ && mv -f $@.tmp.$$$$ $@

$(BIN_B)/%: $(B)/stages/%.o $(LIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) $< $(LIB) $(DEP_LIBS) -o $@.tmp.$$$$ && mv -f $@.tmp.$$$$ $@

$(B)/tests/%: $(B)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) $< $(LIB) $(DEP_LIBS) -o $@

$(B)/tests/%: $(B)/tests/tools/%.o $(LIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(ALL_LDFLAGS) $< $(LIB) $(DEP_LIBS) -o $@

-include $(COMMON_OBJ:.o=.d) $(STAGE_SRC:%.c=$(B)/%.d) $(UNIT_SRC:%.c=$(B)/%.d) $(TOOL_SRC:%.c=$(B)/%.d)

# Fuzz targets: libFuzzer when clang is there, else a replay-and-mutate driver.
FUZZ_CC ?= $(shell command -v clang 2>/dev/null)
FZ ?= build/fuzz
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(FZ)/%)
FZ_LIB := $(FZ)/libfuzzcommon.a
FZ_OBJ := $(COMMON_SRC:%.c=$(FZ)/obj/%.o)
ifneq ($(FUZZ_CC),)
# common/ is compiled once with coverage instrumentation, each target linked with libFuzzer;
# with the usual warnings as errors, so clang's view of common/ stays clean too.
FUZZ_BASE := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined -Icommon $(DEP_CFLAGS)
$(FZ)/obj/%.o: %.c $(wildcard common/*/*.h)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_BASE) $(WARN) -Werror -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/%: tests/fuzz/%.c $(FZ_LIB)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_BASE) -fsanitize=fuzzer $< $(FZ_LIB) $(DEP_LIBS) -o $@
else
FUZZ_BASE := $(filter-out -O2,$(ALL_CFLAGS)) -O1 -fsanitize=address,undefined -DFUZZ_STANDALONE
$(FZ)/obj/%.o: %.c $(wildcard common/*/*.h)
	@mkdir -p $(@D)
	$(Q)$(CC) $(FUZZ_BASE) -c $< -o $@
$(FZ)/%: tests/fuzz/%.c tests/fuzz/driver.c $(FZ_LIB)
	@mkdir -p $(@D)
	$(Q)$(CC) $(FUZZ_BASE) $< tests/fuzz/driver.c $(FZ_LIB) $(DEP_LIBS) -fsanitize=address,undefined -o $@
endif
$(FZ_LIB): $(FZ_OBJ)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

.PHONY: FORCE
FORCE:
