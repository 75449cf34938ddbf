# pipeline.mk: convert a model with the stages, resumable step by step (then dist).
#
#   make MODEL=<dir|org/name> [OUT=out/<name>] [CONTEXT=512] [BATCH=64] [LUT1=]
#        [LUT2=4] [LUT3=6] [CHUNK=2|auto] [MAX_CHUNK_MB=950] [PREFIX=] [ARGMAX=]
#        [SPLIT_ROTATE=1] [FP16_SCALE=<alpha>|auto] [CLAMP=<v>]
#        [LUT_OVERRIDE='layers.0-1=8;layers.*.mlp.down_proj=6;lm_head=none']
#        [CALIB=<text file>] [LUT2=auto:<bits per weight>[,GROUP] (with CALIB)] [GPTQ=1 (with CALIB)]
#   make MODEL=... MONOLITHIC=1 [LUT=4] [LUT_EMBED=] [LUT_LMHEAD=] ...
#   make MODEL=... preflight
#   make MODEL=... dist [ORG=anemll] [DIST=OUT/hf_dist] [NAME=...]
#   smoketest: [STEPS=16] [PROMPT=text | PROMPT_IDS=1,2,3] [MIN_AGREEMENT=<percent>] [MAX_KL=<x>]
#     (thresholds: 85 and 0.3 with a LUT, else 100 and 0.01); compile: [MAX_WEIGHT_MB=1024]
#   make MODEL=... eval [EVAL=<text file>] [EVAL_LABEL=<name>] [EVAL_OUTS=<other OUT folders>]
#   make MODEL=... plan | why | test | embed | ffn-02 | clean-model ... (README.md: The make interface)
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
#
# Steps, chunked: embed, lmhead, ffn-<ii>of<NN>, prefill-<ii>of<NN> (+ for
# a ring cache (Gemma 3, Mistral, Phi3) with CONTEXT above its window ffn_rotate-.., prefill_rotate-..),
# combine-<ii>of<NN>, compile, meta, test. MONOLITHIC=1: monolithic,
# monolithic_prefill (+ monolithic_rotate, monolithic_prefill_rotate), combine,
# compile, meta, test. preflight (FP16 range check) runs only when asked for.

ifneq ($(MODEL),)
empty :=
space := $(empty) $(empty)
# A model path may hold spaces (every use of it is quoted); the default OUT
# replaces them, since make cannot name targets in a folder with a space.
OUT ?= out/$(subst ?,_,$(notdir $(patsubst %/,%,$(subst $(space),?,$(MODEL)))))
ifneq ($(words $(OUT)),1)
$(error anemake: OUT='$(OUT)' has a space; make cannot name files in it: choose an OUT without one)
endif
BAD_OUT_CHARS := ' : % \#
$(foreach c,$(BAD_OUT_CHARS),$(if $(findstring $(c),$(OUT)),$(error anemake: OUT=$(OUT) has a '$(c)'; make cannot name files in it: choose another OUT)))
ifneq ($(findstring ',$(MODEL)),)
$(error anemake: MODEL=$(MODEL) has a quote; rename the folder or link it under another name)
endif
# (override: ST or BUILD on the command line, BUILD=debug out of habit, must
# not move the state or the intermediates out of OUT)
override ST := $(OUT)/.anemake
# Intermediates (the FFN and prefill packages before combine, every part's
# .quality.json) live apart from what ships (README.md: The output folder).
override BUILD := $(ST)/build
# The programs the pipeline runs (tests point this at the sanitizer build).
PIPE_BIN ?= bin
ARGMAX ?=
PREFIX ?=
MAX_WEIGHT_MB ?= 1024
STEPS ?= 16
# The smoketest's thresholds, percent and mean KL (empty: its defaults, 100/85 and 0.01/0.3;
# MIN_AGREEMENT=0 MAX_KL=1e9 accept any numbers, e.g. those of a random-weight test model).
MIN_AGREEMENT ?=
MAX_KL ?=
# After the smoketest: how to run the result with ANEMLL's runtimes (mk/next.sh).
NEXT_STEPS ?= 1
PROMPT ?=
PROMPT_IDS ?=
SPLIT_ROTATE ?=
FP16_SCALE ?=
CLAMP ?=
MONOLITHIC ?=
LUT_OVERRIDE ?=
CALIB ?=
GPTQ ?=
.DEFAULT_GOAL := convert

# What MONOLITHIC=1 does not use, when given on the command line (plan.sh says so).
IGNORED = $(foreach v,CHUNK MAX_CHUNK_MB LUT1 LUT2 LUT3,$(if $(filter command line,$(origin $(v))),$(v)=$($(v))))
PLAN_ENV = BIN='$(PIPE_BIN)' MODEL='$(MODEL)' OUT='$(OUT)' ST='$(ST)' CONTEXT='$(CONTEXT)' BATCH='$(BATCH)' \
	LUT1='$(LUT1)' LUT2='$(LUT2)' LUT3='$(LUT3)' CHUNK='$(CHUNK)' MAX_CHUNK_MB='$(MAX_CHUNK_MB)' \
	PREFIX='$(PREFIX)' ARGMAX='$(ARGMAX)' MAX_WEIGHT_MB='$(MAX_WEIGHT_MB)' STEPS='$(STEPS)' PROMPT='$(PROMPT)' PROMPT_IDS='$(PROMPT_IDS)' \
	MIN_AGREEMENT='$(MIN_AGREEMENT)' MAX_KL='$(MAX_KL)' \
	SPLIT_ROTATE='$(SPLIT_ROTATE)' FP16_SCALE='$(FP16_SCALE)' CLAMP='$(CLAMP)' MONOLITHIC='$(MONOLITHIC)' \
	LUT='$(LUT)' LUT_EMBED='$(LUT_EMBED)' LUT_LMHEAD='$(LUT_LMHEAD)' IGNORED='$(if $(MONOLITHIC),$(IGNORED))' \
	LUT_OVERRIDE='$(LUT_OVERRIDE)' CALIB='$(CALIB)' GPTQ='$(GPTQ)'

# The plan is an included makefile: make refreshes it (and every key) first,
# even under -q and -n, and restarts only when its content changed (the
# restarted make does not plan again). A failed plan stops make there, -q
# and -n included. MAKE_PID: the make that holds OUT's lock (plan.sh).
MAKE_PID := $(shell echo $$PPID)
ifneq ($(filter-out clean-model help,$(or $(MAKECMDGOALS),convert)),)
# (an empty one at first, so a first plan that fails is not also reported as a
# missing file; and only in a folder that may be OUT: mk/claim-out.sh refuses
# others, else prints PLAN_NEW: the topmost folder made for it, which such a
# plan removes again, plan.sh)
ifeq ($(wildcard $(ST)/plan.mk),)
PLAN_NEW := $(shell mk/claim-out.sh '$(OUT)')
$(if $(filter anemake:,$(firstword $(PLAN_NEW))),$(error $(PLAN_NEW)))
endif
include $(ST)/plan.mk
endif
$(ST)/plan.mk: $(if $(MAKE_RESTARTS),,FORCE) $(if $(filter bin,$(PIPE_BIN)),all)
	$(Q)MAKE_PID=$(MAKE_PID) PLAN_NEW='$(PLAN_NEW)' \
	  PLAN_GOAL_ONLY=$(if $(filter-out plan,$(MAKECMDGOALS)),,$(filter plan,$(MAKECMDGOALS))) $(PLAN_ENV) mk/plan.sh

STEP = mk/step.sh $(ST)
COMMON_FLAGS = --model '$(MODEL_DIR)' --prefix $(PREFIX_EFF) --context-length $(CONTEXT) --lut-cache '$(ST)/lutcache'
# embed and lmhead write parts that ship; ffn and prefill write what combine reads.
SHIP_FLAGS = --output '$(OUT)' --quality-dir '$(BUILD)'
BUILD_FLAGS = --output '$(BUILD)'
SCALE_FLAGS = $(if $(FP16_SCALE),--fp16-scale $(FP16_SCALE))
CLAMP_FLAGS = $(if $(CLAMP),--clamp $(CLAMP))
# LUT2=auto:B[,G] (plan.mk: LUT2_AUTO, and LUT2_BASE, the width that names the parts): the
# layers take the mixed-precision plan BUILD/lut_plan.txt, then LUT_OVERRIDE's entries (which win).
LUT2_EFF = $(if $(LUT2_AUTO),$(LUT2_BASE),$(LUT2))
OVERRIDE_EFF = $(if $(LUT2_AUTO),@$(BUILD)/lut_plan.txt$(if $(LUT_OVERRIDE),;))$(LUT_OVERRIDE)
UOV_FLAGS = $(if $(LUT_OVERRIDE),--lut-override '$(LUT_OVERRIDE)')
CALIB_FLAGS = $(if $(CALIB),--calib-stats '$(BUILD)/calib.stats')
# The steps every part with palettized layer weights waits for.
LUT_STEPS = $(if $(CALIB),$(ST)/calib.stamp) $(if $(LUT2_AUTO),$(ST)/lutplan.stamp)

# Calibration statistics (CALIB): E[x^2] of every linear layer's input over the text, by
# the fp32 reference; keyed by the text's and the checkpoint's content.
$(ST)/calib.stamp: $(ST)/calib.key
	$(Q)$(STEP) calib "calibration statistics" -- $(PIPE_BIN)/calib --model '$(MODEL_DIR)' --text '$(CALIB)' \
	  --output '$(BUILD)/calib.stats' $(if $(GPTQ),--xtx)

# LUT2=auto:BITS[,GROUP]: each layer tensor's effect on the output (mean KL on the calibration
# text) at 2, 3, 4, 6 and 8 bits, with GROUP and per tensor; the choice with the least total
# within BITS per weight: BUILD/lut_plan.txt (lutauto).
$(ST)/lutplan.stamp: $(ST)/lutplan.key $(ST)/calib.stamp
	$(Q)$(STEP) lutplan "mixed-precision plan" -- $(PIPE_BIN)/lutauto --model '$(MODEL_DIR)' --output '$(BUILD)' --lut-cache '$(ST)/lutcache' \
	  --calib-stats '$(BUILD)/calib.stats' --text '$(CALIB)' --budget $(LUT2_AUTO) --plan '$(BUILD)/lut_plan.txt'
OV_FLAGS = $(if $(OVERRIDE_EFF),--lut-override '$(OVERRIDE_EFF)') $(CALIB_FLAGS)
META_LUT_FLAGS = $(if $(OVERRIDE_EFF),--lut-override '$(OVERRIDE_EFF)') $(if $(CALIB),--calib '$(CALIB)')
# The smoketest's and the preflight's prompt: text, or token ids (a checkpoint without tokenizer.json).
PROMPT_FLAGS = $(if $(PROMPT),--text '$(PROMPT)') $(if $(PROMPT_IDS),--prompt $(PROMPT_IDS))
chunk_no = $$((10\#$(firstword $(subst of, ,$(1)))))
CHUNK_STAGES = ffn prefill $(if $(ROTATE),ffn_rotate prefill_rotate)
CHUNK_STEPS = $(foreach s,$(1),$(foreach c,$(CHUNK_IDS),$(ST)/$(s)-$(c).stamp))
MONO_PARTS = monolithic monolithic_prefill $(if $(ROTATE),monolithic_rotate monolithic_prefill_rotate)
# stage_prog NAME: the program that writes a part (ffn or prefill), rotate_flag NAME: --rotate for *_rotate
stage_prog = $(if $(findstring prefill,$(1)),prefill,ffn)
rotate_flag = $(if $(findstring rotate,$(1)),--rotate)
label = $(subst ffn,FFN,$(subst _, ,$(1)))

ifeq ($(MONOLITHIC),)
# --- chunked (ANEMLL's convert_model.sh) ---------------------------------------------
$(ST)/embed.stamp: $(ST)/embed.key
	$(Q)$(STEP) embed "embeddings" -- $(PIPE_BIN)/embed $(COMMON_FLAGS) $(SHIP_FLAGS) --batch-size $(BATCH) \
	  $(if $(LUT1),--lut $(LUT1)) $(UOV_FLAGS) $(SCALE_FLAGS) $(CLAMP_FLAGS)

$(ST)/lmhead.stamp: $(ST)/lmhead.key $(if $(CALIB),$(ST)/calib.stamp)
	$(Q)$(STEP) lmhead "LM head" -- $(PIPE_BIN)/lmhead $(COMMON_FLAGS) $(SHIP_FLAGS) $(if $(LUT3),--lut $(LUT3)) $(UOV_FLAGS) $(CALIB_FLAGS) \
	  $(if $(ARGMAX),--argmax) $(CLAMP_FLAGS)

# ffn-01of02, prefill-01of02, ffn_rotate-01of02, prefill_rotate-01of02: one rule each
define chunk_rule
$$(ST)/$(1)-%.stamp: $$(ST)/$(1)-%.key $$(LUT_STEPS)
	$$(Q)$$(STEP) $(1)-$$* "$(call label,$(1)) chunk $$*" -- $$(PIPE_BIN)/$(call stage_prog,$(1)) $$(COMMON_FLAGS) $$(BUILD_FLAGS) \
	  --batch-size $$(BATCH) $(call rotate_flag,$(1)) --chunk $$(NCHUNK) --chunk-no $$(call chunk_no,$$*) \
	  $$(if $$(LUT2_EFF),--lut $$(LUT2_EFF)) $$(OV_FLAGS) $$(SCALE_FLAGS) $$(CLAMP_FLAGS)
endef
$(foreach s,ffn prefill ffn_rotate prefill_rotate,$(eval $(call chunk_rule,$(s))))
# Under make -j a prefill part waits for its FFN part (order only): it then finds every
# palettized tensor in the LUT cache instead of computing them again beside it.
$(foreach c,$(CHUNK_IDS),$(eval $(ST)/prefill-$(c).stamp: | $(ST)/ffn-$(c).stamp) \
  $(eval $(ST)/prefill_rotate-$(c).stamp: | $(ST)/ffn_rotate-$(c).stamp))

$(ST)/combine-%.stamp: $(ST)/combine-%.key $(foreach s,$(CHUNK_STAGES),$(ST)/$(s)-%.stamp)
	$(Q)$(STEP) combine-$* "combine chunk $*" -- $(PIPE_BIN)/combine --input '$(BUILD)' --output '$(OUT)' --prefix $(PREFIX_EFF) \
	  $(if $(LUT2_EFF),--lut $(LUT2_EFF),--lut none) $(if $(SPLIT_ROTATE),--split-rotate) \
	  --chunk $(NCHUNK) --chunk-no $(call chunk_no,$*)

$(ST)/compile.stamp: $(ST)/compile.key $(ST)/embed.stamp $(ST)/lmhead.stamp $(foreach c,$(CHUNK_IDS),$(ST)/combine-$(c).stamp)
	$(Q)$(STEP) compile "compile" -- $(PIPE_BIN)/compile --max-weight-mb $(MAX_WEIGHT_MB) \
	  --input $$(sed 's|^|$(OUT)/|' $(ST)/embed.outputs $(ST)/lmhead.outputs $(foreach c,$(CHUNK_IDS),$(ST)/combine-$(c).outputs))

$(ST)/meta.stamp: $(ST)/meta.key $(ST)/compile.stamp
	$(Q)$(STEP) meta "meta.yaml" -- $(PIPE_BIN)/metagen --model '$(MODEL_DIR)' --output '$(OUT)' --prefix $(PREFIX_EFF) \
	  --lut-embeddings $(or $(LUT1),none) --lut-ffn $(or $(LUT2_EFF),none) --lut-lmhead $(or $(LUT3),none) --chunks $(NCHUNK) \
	  $(if $(SPLIT_ROTATE),--split-rotate) $(SCALE_FLAGS) $(CLAMP_FLAGS) $(META_LUT_FLAGS)

PART_TARGETS = embed lmhead $(foreach s,$(CHUNK_STAGES) combine,$(s) $(foreach c,$(CHUNK_IDS),$(s)-$(firstword $(subst of, ,$(c)))))
embed: $(ST)/embed.stamp
lmhead: $(ST)/lmhead.stamp
$(foreach s,$(CHUNK_STAGES) combine,$(eval $(s): $(call CHUNK_STEPS,$(s))))
# One chunk at a time: make ffn-02, prefill-02, ffn_rotate-02, combine-02.
$(foreach s,$(CHUNK_STAGES) combine,$(foreach c,$(CHUNK_IDS),$(eval $(s)-$(firstword $(subst of, ,$(c))): $(ST)/$(s)-$(c).stamp)))
else
# --- monolithic (ANEMLL's convert_monolith.sh) ---------------------------------------
# ARGMAX concerns the infer parts only (prefill's logits are a by-product nobody reads).
MONO_FLAGS = $(if $(LUT),--lut $(LUT)) $(if $(LUT_EMBED),--lut-embeddings $(LUT_EMBED)) \
	$(if $(LUT_LMHEAD),--lut-lmhead $(LUT_LMHEAD))
MONO_STAMPS = $(foreach p,monolithic monolithic_prefill monolithic_rotate monolithic_prefill_rotate,$(ST)/$(p).stamp)

$(MONO_STAMPS): $(ST)/%.stamp: $(ST)/%.key $(LUT_STEPS)
	$(Q)$(STEP) $* "$(call label,$*)" -- $(PIPE_BIN)/$(call stage_prog,$*) --monolithic $(call rotate_flag,$*) \
	  $(COMMON_FLAGS) $(BUILD_FLAGS) --batch-size $(BATCH) $(MONO_FLAGS) $(OV_FLAGS) $(if $(ARGMAX),$(if $(findstring prefill,$*),,--argmax)) \
	  $(SCALE_FLAGS) $(CLAMP_FLAGS)
# (make -j: a prefill part after its infer part, which fills the LUT cache)
$(ST)/monolithic_prefill.stamp: | $(ST)/monolithic.stamp
$(ST)/monolithic_prefill_rotate.stamp: | $(ST)/monolithic_rotate.stamp

$(ST)/combine.stamp: $(ST)/combine.key $(foreach p,$(MONO_PARTS),$(ST)/$(p).stamp)
	$(Q)$(STEP) combine "combine" -- $(PIPE_BIN)/combine --monolithic --input '$(BUILD)' --output '$(OUT)' --prefix $(PREFIX_EFF) \
	  --lut $(or $(LUT),none)

$(ST)/compile.stamp: $(ST)/compile.key $(ST)/combine.stamp
	$(Q)$(STEP) compile "compile" -- $(PIPE_BIN)/compile --max-weight-mb $(MAX_WEIGHT_MB) --input $$(sed 's|^|$(OUT)/|' $(ST)/combine.outputs)

$(ST)/meta.stamp: $(ST)/meta.key $(ST)/compile.stamp
	$(Q)$(STEP) meta "meta.yaml" -- $(PIPE_BIN)/metagen --monolithic --model '$(MODEL_DIR)' --output '$(OUT)' \
	  --prefix $(PREFIX_EFF) --lut-ffn $(or $(LUT),none) $(if $(LUT_EMBED),--lut-embeddings $(LUT_EMBED)) \
	  $(if $(LUT_LMHEAD),--lut-lmhead $(LUT_LMHEAD)) $(SCALE_FLAGS) $(CLAMP_FLAGS) $(META_LUT_FLAGS)

PART_TARGETS = $(MONO_PARTS) combine
$(foreach p,$(MONO_PARTS),$(eval $(p): $(ST)/$(p).stamp))
combine: $(ST)/combine.stamp
endif

$(ST)/test.stamp: $(ST)/test.key $(ST)/meta.stamp
	$(Q)$(STEP) test "smoketest" -o '$(OUT)/smoketest.json' -- $(PIPE_BIN)/smoketest --model '$(MODEL_DIR)' \
	  --meta '$(OUT)/meta.yaml' --compiled --steps $(STEPS) $(PROMPT_FLAGS) $(SCALE_FLAGS) $(CLAMP_FLAGS) --json '$(OUT)/smoketest.json' \
	  $(if $(MIN_AGREEMENT),--min-agreement '$(MIN_AGREEMENT)') $(if $(MAX_KL),--max-kl '$(MAX_KL)')
	$(Q)$(if $(NEXT_STEPS),mk/next.sh '$(OUT)' '$(PROMPT)' || true)

# FP16 range check of the source model (ANEMLL's fp16_preflight.sh): exit 1
# when its activations overflow fp16 with these FP16_SCALE/CLAMP settings.
$(ST)/preflight.stamp: $(ST)/preflight.key
	$(Q)$(STEP) preflight "FP16 preflight" -o '$(OUT)/preflight.json' -- $(PIPE_BIN)/preflight --model '$(MODEL_DIR)' \
	  $(PROMPT_FLAGS) $(SCALE_FLAGS) $(CLAMP_FLAGS) --json '$(OUT)/preflight.json'

# The Hugging Face distribution (ANEMLL's prepare_hf.sh): DIST/standard (zipped
# parts) and DIST/ios, with a model card of the smoketest's measurements; after
# the smoketest, rerun when a part, meta.yaml, a report or a name changes.
# NAME only from the command line or a makefile: some shells export NAME (the host name).
ORG ?= anemll
DIST ?= $(OUT)/hf_dist
override NAME := $(if $(filter environment,$(origin NAME)),,$(NAME))
PLAN_ENV += ORG='$(ORG)' DIST='$(DIST)' NAME='$(NAME)'
$(ST)/dist.stamp: $(ST)/dist.key $(ST)/test.stamp
	$(Q)$(STEP) dist "distribution" -- $(PIPE_BIN)/dist --input '$(OUT)' --output '$(DIST)' --org '$(ORG)' \
	  $(if $(NAME),--name '$(NAME)') --model '$(MODEL_DIR)' --max-weight-mb $(MAX_WEIGHT_MB)
.PHONY: dist
dist: $(ST)/dist.stamp

# Perplexity, KL and top-1 agreement against the fp32 reference over the text EVAL
# (the bundled model's default: DEMO_EVAL), into OUT/eval.json; the table adds the
# eval.json of each EVAL_OUTS folder (variants evaluated on the same text).
EVAL ?= $(if $(filter $(DEMO_MODEL) $(CURDIR)/$(DEMO_MODEL),$(patsubst %/,%,$(MODEL))),$(DEMO_EVAL))
EVAL_LABEL ?=
EVAL_OUTS ?=
PLAN_ENV += EVAL='$(EVAL)' EVAL_LABEL='$(EVAL_LABEL)' EVAL_GOAL='$(filter eval,$(MAKECMDGOALS))'
$(ST)/eval.stamp: $(ST)/eval.key $(ST)/meta.stamp
	$(Q)$(STEP) eval "evaluation" -o '$(OUT)/eval.json' -- $(PIPE_BIN)/eval -q --model '$(MODEL_DIR)' \
	  --meta '$(OUT)/meta.yaml' --compiled --text-file '$(EVAL)' $(if $(EVAL_LABEL),--label '$(EVAL_LABEL)') \
	  --json '$(OUT)/eval.json'
eval: $(ST)/eval.stamp
	$(Q)$(PIPE_BIN)/eval --table '$(OUT)/eval.json' $(foreach o,$(EVAL_OUTS),'$(o)/eval.json')

.PHONY: convert compile meta test preflight eval plan why clean-model calib lutplan $(PART_TARGETS)
calib: $(ST)/calib.stamp
lutplan: $(ST)/lutplan.stamp
convert test: $(ST)/test.stamp
compile: $(ST)/compile.stamp
meta: $(ST)/meta.stamp
preflight: $(ST)/preflight.stamp
plan:
	@sed 's/^ffn: /anemake: /' $(ST)/plan.txt
why:
	@mk/key.sh why $(ST) $(PLAN_STEPS)
# (only a folder that anemake made: never one that holds anything else)
ifneq ($(filter clean-model,$(MAKECMDGOALS)),)
$(if $(shell [ -e '$(OUT)' ] && [ ! -d '$(OUT)/.anemake' ] && echo no),\
  $(error anemake: OUT=$(OUT) is not a conversion (no .anemake in it): not removed))
endif
clean-model:
	rm -rf '$(OUT)'
else
# Without MODEL these goals have nothing to work on: say so (make alone would say "No rule to make target").
MODEL_GOALS := convert plan why preflight eval calib lutplan embed lmhead ffn prefill ffn_rotate prefill_rotate combine compile meta test \
	monolithic monolithic_prefill monolithic_rotate monolithic_prefill_rotate clean-model
NEED_MODEL := $(filter $(MODEL_GOALS) $(foreach g,ffn prefill ffn_rotate prefill_rotate combine,$(g)-%),$(MAKECMDGOALS))
ifneq ($(NEED_MODEL),)
$(error anemake: make $(firstword $(NEED_MODEL)) needs MODEL=<dir|org/name> (make help shows the interface))
endif
endif
