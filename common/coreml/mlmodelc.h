/* mlmodelc.h: write a compiled model (.mlmodelc directory) from a .mlpackage
 * without Apple's compiler.
 *
 * On a Mac the compile stage runs `xcrun coremlcompiler compile`; everywhere
 * else it writes the compiled layout itself, as far as coreml-format.md
 * section 8 establishes it. The .mlpackage stays the primary artifact: a
 * device can always compile it (MLModel.compileModel). Sizes: everything but
 * weight.bin is small (model.mil ~100 bytes per op, a few MB for a 1B-model
 * chunk); weights/weight.bin is the package's, up to ~1 GB (iOS) per part.
 *
 * Layout written (X = the package's base name):
 *
 *  1. X.mlmodelc/model.mil                the ML Program as text
 *     X.mlmodelc/coremldata.bin           header + ModelDescription
 *     X.mlmodelc/metadata.json            description for tools (JSON)
 *     X.mlmodelc/analytics/coremldata.bin one key/value section
 *     X.mlmodelc/weights/weight.bin       the package's weight files, byte for byte
 *     Built as "X.mlmodelc.tmp.<pid>/" and renamed into place (fsutil.h).
 *     No timestamps anywhere: the same package gives the same bytes.
 *
 *  2. model.mil: the package's program in coremlc's program 1.3 text
 *     (miltext.h has the grammar; the real files of
 *     ../shared/reference/mlmodelc-real round-trip through it), plus what
 *     the compiler adds:
 *      - buildInfo: the package's own entries and coremlc-component-MIL
 *        "3600.16.1", coremlc-version "3600.25.1", sorted by key. Why: every
 *        real file carries exactly the package's keys plus these two and
 *        nothing else, so a loader may rely on them; the values are those of
 *        the only compiler whose program 1.3 text we have (and write), so
 *        they name the dialect of this file. We add no key of our own
 *        (provenance is in the package's userDefinedMetadata, which
 *        metadata.json carries).
 *      - FlexibleShapeInformation on a function with flexible inputs: its
 *        DefaultShapes (the description's default shape per flexible input)
 *        and either EnumeratedShapes (one enumerated input: one entry per
 *        shape, keyed by an 8-hex-digit id, sorted by id) or RangeDims (every
 *        range input: [lower, upper] per dimension, upper -1 when unbounded).
 *        The ids are ours (SHA-256 of "<input>:<d>,<d>", first 8 hex
 *        digits): coremlc's are 8 hex digits of unknown origin. Enumerated
 *        shapes on more than one input, or mixed with ranges, are refused
 *        (no evidence of their form).
 *     Functions are written in name order (a proto map; the one real
 *     multifunction file is in name order too).
 *  3. coremldata.bin, little-endian ([obs] byte by byte for spec 7):
 *       0x00 u32 502 (the mlProgram Model field number), 0x04 u32 5 (see
 *       below), 0x08 20 zero bytes, 0x1C u64 7, 0x24 "generic", 0x2B u64
 *       specificationVersion, 0x33 24 zero bytes, 0x4B u64 L, 0x53 L bytes:
 *       a serialized CoreML.Specification.ModelDescription (the package's,
 *       plus functions/defaultFunctionName for a single-function model), then
 *       u32 502 and 12 zero bytes.
 *  4. analytics/coremldata.bin: strings as u64 length + bytes:
 *       "NeuralNetworkModelDetails", u64 2, "containsCustomLayer" "0",
 *       "modelDimension" "0".
 *  5. metadata.json: an array of one object, written as Apple's JSON writer
 *     writes it ("key" : value, two-space indent, empty arrays "[\n\n  ]",
 *     raw UTF-8 such as the U+00D7 of "MultiArray (Float16 1 × 10)", '/'
 *     escaped as "\/"), keys in this order:
 *     shortDescription/author/version/license (when set), metadataOutputVersion
 *     "3.0", outputSchema, modelParameters [], specificationVersion, functions
 *     (spec >= 9; per function: computePrecision, outputSchema, stateSchema,
 *     name, mlProgramOperationTypeHistogram, inputSchema, the order the
 *     third-party emitter reports for coremlc),
 *     defaultFunctionName, mlProgramOperationTypeHistogram, computePrecision,
 *     isUpdatable "0", stateSchema, availability (by spec version),
 *     modelType {name: "MLModelType_mlProgram"}, userDefinedMetadata (sorted),
 *     inputSchema, generatedClassName (X with non-identifier characters as
 *     '_'), method "predict". Top-level schemas and histogram are the
 *     default function's. Histogram keys are "Ios18.<op in lowerCamelCase>"
 *     (prefix from the function's opset, e.g. Ios18.readState), consts not
 *     counted. Feature entries: hasShapeFlexibility, isOptional, dataType,
 *     formattedType ("MultiArray (Float16 1 × 64)", "State (Float16 ...)"),
 *     shortDescription, shape ("[1, 64]"), name, type ("MultiArray", "State"),
 *     and for flexible inputs shapeFlexibility ("1 × 1 | 1 × 64") plus
 *     enumeratedShapes ("[[1, 1], [1, 64]]") or shapeRange.
 *     computePrecision: "Float16", or "Mixed (Float16, Int32)" etc. from the
 *     Float16/Float32/Int32 outputs of the non-const ops.
 *
 * UNVERIFIED (needs a Mac: compile a tiny package with coremlcompiler and
 * diff; the same list is printed by the compile stage, MLMODELC_UNVERIFIED):
 *   - coremldata.bin offset 4: 5 in the one real (spec 7) file; a
 *     third-party emitter writes the spec version there; we write 5;
 *   - coremldata.bin: whether coremlc adds `functions`/`defaultFunctionName`
 *     to a single-function model's description (we do, per that emitter);
 *   - analytics/coremldata.bin: the SpecificationDetails section (modelHash
 *     over unknown input, modelName) is left out; whether it is optional;
 *   - model.mil: the text of state inputs, read_state/write_state and
 *     constexpr_lut_to_dense (no public compiled stateful or palettized
 *     model); the EnumeratedShapes ids; RangeDims of an unbounded range;
 *   - metadata.json: the stateSchema entry format ("State (Float16 …)"), the
 *     functions/defaultFunctionName entries and their key order, histogram
 *     key spelling (camelCase, consts excluded; whether the prefix is the
 *     function's opset or the op's defining one, e.g. Ios16 for
 *     constexpr_lut_to_dense), computePrecision, the shapeFlexibility/
 *     enumeratedShapes keys of flexible inputs, shortDescription/author/
 *     version/license at the top level;
 *   - whether Core ML loads a .mlmodelc that carries no coremlc-made files
 *     beyond these five (and ANE pre-compilation of shared LUT weights).
 */
#ifndef ANEMAKE_MLMODELC_H
#define ANEMAKE_MLMODELC_H

#include <stddef.h>
#include <stdio.h>

#include "coreml/mlmodel.h"
#include "coreml/pb.h"

/* The model type word at both ends of coremldata.bin. */
#define MLMODELC_MLPROGRAM 502
/* coremldata.bin offset 4 (unverified: see above). */
#define MLMODELC_FIELD4 5
/* The compiler named in model.mil's buildInfo (item 2: why). */
#define MLMODELC_COREMLC_MIL "3600.16.1"
#define MLMODELC_COREMLC_VERSION "3600.25.1"
/* Offset of the embedded ModelDescription in coremldata.bin. */
#define MLMODELC_DESC_OFFSET 0x53

/* The unverified facts, one short phrase each; NULL-terminated. */
extern const char *const mlmodelc_unverified[];

/* Write out_path (e.g. "out/X.mlmodelc", replaced atomically) from the
 * package at pkg_path. -1 with one errf() line on failure. */
int mlmodelc_write(const char *pkg_path, const char *out_path);

/* The pieces, for tests and tools. */
/* model.mil text of m; -1 with errf() for something it cannot express or a write error. */
int mlmodelc_write_mil(FILE *out, const ml_model *m);
/* coremldata.bin bytes for model m (not modified), appended to out. */
int mlmodelc_coremldata(const ml_model *m, pb_buf *out);
/* metadata.json text; class_name is generatedClassName's source. Caller frees. */
char *mlmodelc_metadata_json(const ml_model *m, const char *class_name);
/* analytics/coremldata.bin bytes, appended to out. */
void mlmodelc_analytics(pb_buf *out);
/* Check a coremldata.bin image and decode its ModelDescription into a model
 * whose desc is it (no program). -1 with errf() on anything malformed. */
int mlmodelc_read_coremldata(const void *data, size_t n, ml_model **out);

/* Read the compiled model in folder dir: its description (coremldata.bin)
 * and program (model.mil) in one model; weights/weight.bin is left for the
 * caller. -1 with one errf() line naming the file on failure. */
int mlmodelc_read(const char *dir, ml_model **out);

#endif
