# pipeline.mk: convert a model with the eight stages, resumable step by step.
#
#   make MODEL=<dir|org/name> [OUT=out/<name>] [CONTEXT=512] [BATCH=64] [LUT1=]
#        [LUT2=4] [LUT3=6] [CHUNK=2|auto] [MAX_CHUNK_MB=950] [PREFIX=] [ARGMAX=]
#
# Every step has a key (ST/NAME.key: its parameters, the SHA-256 of its
# program, of every input file and of the upstream steps' outputs, refreshed
# by mk/plan.sh on every make) and a stamp written last, only on success.
# make runs a step when its key or an upstream stamp is newer than its stamp;
# mk/step.sh then skips the work when the key equals that of its last success
# (an upstream step re-ran but wrote the same bytes: early cutoff). So an
# interrupted run resumes where it stopped, a second make does nothing
# (make -q returns 0), and touching a checkpoint without changing its bytes
# reruns nothing.

ifneq ($(MODEL),)
OUT ?= out/$(notdir $(patsubst %/,%,$(MODEL)))
ST := $(OUT)/.anemake
# The programs the pipeline runs (tests point this at the sanitizer build).
PIPE_BIN ?= bin
ARGMAX ?=
PREFIX ?=
MAX_WEIGHT_MB ?= 1024
STEPS ?= 16
PROMPT ?=
.DEFAULT_GOAL := convert

PLAN_ENV = BIN='$(PIPE_BIN)' MODEL='$(MODEL)' OUT='$(OUT)' ST='$(ST)' CONTEXT='$(CONTEXT)' BATCH='$(BATCH)' \
	LUT1='$(LUT1)' LUT2='$(LUT2)' LUT3='$(LUT3)' CHUNK='$(CHUNK)' MAX_CHUNK_MB='$(MAX_CHUNK_MB)' \
	PREFIX='$(PREFIX)' ARGMAX='$(ARGMAX)' MAX_WEIGHT_MB='$(MAX_WEIGHT_MB)' STEPS='$(STEPS)' PROMPT='$(PROMPT)'

# The plan is an included makefile: make refreshes it (and every key) first,
# even under -q and -n, and restarts only when its content changed.
-include $(ST)/plan.mk
$(ST)/plan.mk: FORCE $(if $(filter bin,$(PIPE_BIN)),all)
	@mkdir -p $(ST)
	$(Q)$(PLAN_ENV) mk/plan.sh

STEP = mk/step.sh $(ST)
COMMON_FLAGS = --model '$(MODEL_DIR)' --output '$(OUT)' --prefix $(PREFIX_EFF) --context-length $(CONTEXT)
chunk_no = $$((10\#$(firstword $(subst of, ,$(1)))))
CHUNK_STEPS = $(foreach s,$(1),$(foreach c,$(CHUNK_IDS),$(ST)/$(s)-$(c).stamp))

$(ST)/embed.stamp: $(ST)/embed.key
	$(Q)$(STEP) embed "embeddings" -- $(PIPE_BIN)/embed $(COMMON_FLAGS) --batch-size $(BATCH) \
	  $(if $(LUT1),--lut $(LUT1))

$(ST)/lmhead.stamp: $(ST)/lmhead.key
	$(Q)$(STEP) lmhead "LM head" -- $(PIPE_BIN)/lmhead $(COMMON_FLAGS) $(if $(LUT3),--lut $(LUT3)) \
	  $(if $(ARGMAX),--argmax)

$(ST)/ffn-%.stamp: $(ST)/ffn-%.key
	$(Q)$(STEP) ffn-$* "FFN chunk $*" -- $(PIPE_BIN)/ffn $(COMMON_FLAGS) --batch-size $(BATCH) \
	  --chunk $(NCHUNK) --chunk-no $(call chunk_no,$*) $(if $(LUT2),--lut $(LUT2))

$(ST)/prefill-%.stamp: $(ST)/prefill-%.key
	$(Q)$(STEP) prefill-$* "prefill chunk $*" -- $(PIPE_BIN)/prefill $(COMMON_FLAGS) --batch-size $(BATCH) \
	  --chunk $(NCHUNK) --chunk-no $(call chunk_no,$*) $(if $(LUT2),--lut $(LUT2))

$(ST)/combine-%.stamp: $(ST)/combine-%.key $(ST)/ffn-%.stamp $(ST)/prefill-%.stamp
	$(Q)$(STEP) combine-$* "combine chunk $*" -- $(PIPE_BIN)/combine --input '$(OUT)' --prefix $(PREFIX_EFF) \
	  $(if $(LUT2),--lut $(LUT2),--lut none) \
	  --chunk $(NCHUNK) --chunk-no $(call chunk_no,$*)

$(ST)/compile.stamp: $(ST)/compile.key $(ST)/embed.stamp $(ST)/lmhead.stamp $(foreach c,$(CHUNK_IDS),$(ST)/combine-$(c).stamp)
	$(Q)$(STEP) compile "compile" -- $(PIPE_BIN)/compile --max-weight-mb $(MAX_WEIGHT_MB) \
	  --input $$(cat $(ST)/embed.paths $(ST)/lmhead.paths $(foreach c,$(CHUNK_IDS),$(ST)/combine-$(c).paths))

$(ST)/meta.stamp: $(ST)/meta.key $(ST)/compile.stamp
	$(Q)$(STEP) meta "meta.yaml" -- $(PIPE_BIN)/metagen --model '$(MODEL_DIR)' --output '$(OUT)' --prefix $(PREFIX_EFF) \
	  --lut-embeddings $(or $(LUT1),none) --lut-ffn $(or $(LUT2),none) --lut-lmhead $(or $(LUT3),none) --chunks $(NCHUNK)

$(ST)/test.stamp: $(ST)/test.key $(ST)/meta.stamp
	$(Q)$(STEP) test "smoketest" -o '$(OUT)/smoketest.json' -- $(PIPE_BIN)/smoketest --model '$(MODEL_DIR)' \
	  --meta '$(OUT)/meta.yaml' --steps $(STEPS) $(if $(PROMPT),--text '$(PROMPT)') --json '$(OUT)/smoketest.json'

.PHONY: convert embed lmhead ffn prefill combine compile meta test plan why clean-model \
	$(foreach s,ffn prefill combine,$(foreach c,$(CHUNK_IDS),$(s)-$(firstword $(subst of, ,$(c)))))
convert test: $(ST)/test.stamp
embed: $(ST)/embed.stamp
lmhead: $(ST)/lmhead.stamp
ffn: $(call CHUNK_STEPS,ffn)
prefill: $(call CHUNK_STEPS,prefill)
combine: $(call CHUNK_STEPS,combine)
compile: $(ST)/compile.stamp
meta: $(ST)/meta.stamp
# One chunk at a time: make ffn-02, prefill-02, combine-02.
$(foreach s,ffn prefill combine,$(foreach c,$(CHUNK_IDS),$(eval $(s)-$(firstword $(subst of, ,$(c))): $(ST)/$(s)-$(c).stamp)))
plan:
	@cat $(ST)/plan.txt
why:
	@for k in $(ST)/*.key; do mk/key.sh why $$k; done
clean-model:
	rm -rf '$(OUT)'
endif
