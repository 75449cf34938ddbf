# models.mk: conversion defaults, per architecture where they differ.
#
# The architecture facts the programs need (file prefix, LM-head split count,
# config defaults) live in common/arch.c, next to the code that uses them;
# this file holds what make needs to drive a conversion. Every value can be
# overridden on the command line: make MODEL=... CONTEXT=1024 LUT2=6,4.

CONTEXT ?= 512
BATCH ?= 64
LUT1 ?=
LUT2 ?= 4
LUT3 ?= 6
CHUNK ?= 2
MAX_CHUNK_MB ?= 950
# MONOLITHIC=1 (ANEMLL's convert_monolith.sh): one LUT spec for the whole
# package, as its --lut (default 4); LUT_EMBED / LUT_LMHEAD override it for
# the embedding table / the LM head (its --lut-embeddings / --lut-lmhead).
LUT ?= 4
LUT_EMBED ?=
LUT_LMHEAD ?=

# The demo model shipped with the sources (MIT, see its README).
DEMO_MODEL := tests/models/stories260K
DEMO_OUT ?= out/demo
# make eval's default text for it: our own simple English stories (tests/data/README.md).
DEMO_EVAL := tests/data/eval-en.txt
