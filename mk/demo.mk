# demo.mk: convert the bundled stories260K with the stages that exist so far.
.PHONY: demo
demo: all
	$(Q)mkdir -p $(DEMO_OUT)
	$(Q)bin/embed --model $(DEMO_MODEL) --output $(DEMO_OUT) --context-length $(CONTEXT) --batch-size $(BATCH)
	$(Q)bin/mldump $(DEMO_OUT)/llama_embeddings.mlpackage | head -n 20
	@echo "demo: embeddings written to $(DEMO_OUT); the FFN, LM head, combine, compile and meta.yaml steps are not built yet"
