# demo.mk: convert the bundled stories260K end to end, then tell its story.
#
# stories260K's MLP has 172 channels, which LUT group 8 does not divide, so
# the FFN uses group 4; the LM head's 64-row splits take the default.
DEMO_FLAGS := MODEL=$(DEMO_MODEL) OUT=$(DEMO_OUT) LUT2=6,4 LUT3=6 CHUNK=2 CONTEXT=256 BATCH=32 STEPS=48 \
	PROMPT="Once upon a time"
# The programs it runs: bin/ (built first), or PIPE_BIN as the pipeline tests give it.
DEMO_BIN = $(or $(PIPE_BIN),bin)
.PHONY: demo
# -s: a rerun that has nothing to do says only that (step.sh), not make's "Nothing to be done".
demo: $(if $(PIPE_BIN),,all)
	$(Q)$(MAKE) --no-print-directory $(if $(filter 1,$(V)),,-s) $(DEMO_FLAGS) NEXT_STEPS=
	@echo
	@echo "demo: ANEMLL's layout is in $(DEMO_OUT)/ (meta.yaml, *.mlmodelc, *.mlpackage); the story it tells:"
	$(Q)$(DEMO_BIN)/smoketest --model $(DEMO_MODEL) --meta $(DEMO_OUT)/meta.yaml --text "Once upon a time" --steps 48 -q \
	  | sed -n 's/^text: *//p'
	$(Q)mk/next.sh $(DEMO_OUT) "Once upon a time" 'make $(DEMO_FLAGS) dist'
