/* mlmodelc.h: write a compiled model (.mlmodelc directory) from a .mlpackage
 * without Apple's compiler.
 *
 * On a Mac the compile stage runs `xcrun coremlcompiler compile`; everywhere
 * else it writes the compiled layout itself, as far as the real compiled
 * files of ../shared/reference/mlmodelc-real establish it (they supersede
 * coreml-format.md section 8). The .mlpackage stays the primary artifact: a
 * device can always compile it (MLModel.compileModel). Sizes: everything but
 * weight.bin is small (model.mil ~100 bytes per op, a few MB for a 1B-model
 * chunk); weights/weight.bin is the package's, up to ~1 GB (iOS) per part.
 *
 * Layout written (X = the package's base name):
 *
 *  1. X.mlmodelc/model.mil                the ML Program as text
 *     X.mlmodelc/coremldata.bin           header + ModelDescription
 *     X.mlmodelc/metadata.json            description for tools (JSON)
 *     X.mlmodelc/analytics/coremldata.bin two key/value sections
 *     X.mlmodelc/weights/weight.bin       the package's weight files, byte for byte
 *                                         (hard links where the file system allows)
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
 *  3. coremldata.bin, little-endian ([obs]: byte by byte in every real
 *     spec-7 file of ../shared/reference/mlmodelc-real):
 *       0x00 u32 502 (the mlProgram Model field number), 0x04 u32 5 for
 *       spec 7 and 8, the spec version for spec >= 9 (mlmodelc_field4),
 *       0x08 20 zero bytes, 0x1C u64 7, 0x24 "generic", 0x2B u64
 *       specificationVersion, 0x33 24 zero bytes, 0x4B u64 L, 0x53 L bytes:
 *       the package's serialized CoreML.Specification.ModelDescription as it
 *       is (a single-function package keeps a description without
 *       functions/defaultFunctionName, as coremlc does), then one 16-byte
 *       record (u32 502 + 12 zero bytes) per function of the description
 *       (one when it has no functions list).
 *  4. analytics/coremldata.bin: strings as u64 length + bytes:
 *       "NeuralNetworkModelDetails", u64 2, "containsCustomLayer" "0",
 *       "modelDimension" "0", then "SpecificationDetails", u64 2,
 *       "modelHash" <base64 of a 32-byte hash>, "modelName" "model" (243
 *       bytes in every real file). Apple's hash input is unknown: ours is
 *       SHA-256 of the package's model.mlmodel.
 *  5. metadata.json (mlmodelc_meta.c): an array of one object, written as
 *     Apple's JSON writer writes it ("key" : value, two-space indent, empty
 *     containers "[\n\n  ]", raw UTF-8 such as the U+00D7 of
 *     "MultiArray (Float16 1 × 10)", '/' escaped as "\/", no final
 *     newline), computed from the description and the MIL program only.
 *     Keys: shortDescription/author/version/license (when set),
 *     metadataOutputVersion "3.0", storagePrecision (when the program has
 *     blob-file data: the dtype names of that data, "Mixed (...)" for
 *     several), outputSchema, modelParameters [], specificationVersion,
 *     functions and defaultFunctionName (only when the description has a
 *     functions list), mlProgramOperationTypeHistogram, computePrecision,
 *     isUpdatable "0", stateSchema, availability (by spec version),
 *     modelType {name: "MLModelType_mlProgram"}, userDefinedMetadata,
 *     inputSchema, generatedClassName (X with non-identifier characters as
 *     '_'), method "predict". Top-level schemas and histogram are the
 *     default function's.
 *     Object key order: the order observed in a real file with the same key
 *     set; otherwise the enumeration order of Foundation's hash table
 *     (CFStringHash, table sizes 3, 7, 13, 23, 41... by key count, linear
 *     probing) with keys inserted in the order above. Every one of the 144
 *     objects of the 17 real metadata.json files is in such an order
 *     (test_mlmodelc_real). Where keys collide, the order depends on the
 *     insertion order, which is not a function of the key set (the three
 *     coremltools userDefinedMetadata keys come in three orders; two top-
 *     level key sets need opposite orders of one pair), so Apple's order is
 *     not deterministic there: userDefinedMetadata is written in the
 *     description's order, histogram keys in order of first use.
 *     Histogram keys: "<function opset>.<op in lowerCamelCase>" ("Ios18.mul"),
 *     consts not counted, with the exceptions real ios16/ios17 files show
 *     (Ios16.relu in an ios17 function; unprefixed UpperCamel Identity,
 *     Select, Tile, Transpose, SliceByIndex, ...). computePrecision: the
 *     dtype names of every value a function names (inputs and op outputs,
 *     consts included; bool and string not counted), sorted, "Mixed (...)"
 *     for several. Feature entries: hasShapeFlexibility, isOptional,
 *     dataType, formattedType, shortDescription, shape ("[1, 64]"), name,
 *     type ("MultiArray", "State"), and for flexible inputs
 *     shapeFlexibility ("1 × 1 | 1 × 64", "1 × 1...2048") plus
 *     enumeratedShapes ("[[1, 1], [1, 64]]") or shapeRange.
 *
 * WHERE THE EVIDENCE IS SILENT (no public compiled stateful, palettized or
 * spec-8 coremldata.bin exists; the same list is printed by `compile --help`,
 * MLMODELC_SILENT); these are our choices, nothing more is claimed:
 *   - state inputs in model.mil and the metadata.json stateSchema entries
 *     (type "State", formattedType "State (Float16 …)");
 *   - how read_state, write_state and constexpr_lut_to_dense are named and
 *     counted in the histogram (Ios18.readState etc.: the ios18 rule);
 *   - storagePrecision of palettized weights (the dtype names of the blob
 *     data: "Mixed (Float16, UInt6)");
 *   - coremldata.bin offset 4 for spec 8 (5, as for spec 7);
 *   - the modelHash input (ours: SHA-256 of model.mlmodel);
 *   - key order of metadata.json objects whose key sets no real file has
 *     (every ANEMLL part: hash-table order, see item 5);
 *   - histogram prefixes of ios18 functions other than relu's "Ios18.";
 *   - model.mil: the EnumeratedShapes ids of FlexibleShapeInformation (ours:
 *     SHA-256 of "<input>:<d>,<d>", first 8 hex digits) and RangeDims of an
 *     unbounded range (-1);
 *   - whether Core ML loads a .mlmodelc with only these five items.
 */
#ifndef ANEMAKE_MLMODELC_H
#define ANEMAKE_MLMODELC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "coreml/mlmodel.h"
#include "coreml/pb.h"

/* The model type word at both ends of coremldata.bin. */
#define MLMODELC_MLPROGRAM 502
/* One trailer record after the description: u32 502 and 12 zero bytes. */
#define MLMODELC_RECORD 16
/* The compiler named in model.mil's buildInfo (item 2: why). */
#define MLMODELC_COREMLC_MIL "3600.16.1"
#define MLMODELC_COREMLC_VERSION "3600.25.1"
/* Offset of the embedded ModelDescription in coremldata.bin. */
#define MLMODELC_DESC_OFFSET 0x53

/* Where the evidence is silent (list above), as text for `compile --help`. */
#define MLMODELC_SILENT \
	"Where no real compiled file shows the layout (states, read_state/write_state, constexpr_lut_to_dense, " \
	"stateSchema, storagePrecision of palettized weights, offset 4 for spec 8, the modelHash input, key order " \
	"of unobserved key sets), the compiled layout is anemake's best-founded choice (common/coreml/mlmodelc.h)."

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
/* analytics/coremldata.bin bytes for a model whose hash is model_hash, appended to out. */
void mlmodelc_analytics(const uint8_t model_hash[32], pb_buf *out);
/* coremldata.bin offset 4 for a specification version. */
uint32_t mlmodelc_field4(int spec_version);
/* The metadata.json histogram key of op in a function of opset ("Ios18.readState"); caller frees. */
char *mlmodelc_histogram_key(const char *opset, const char *op);
/* CFStringHash of a UTF-8 string: the hash behind metadata.json's key order. */
uint64_t mlmodelc_cf_hash(const char *s);
/* The size of Foundation's hash table for n keys (3, 7, 13, 23, 41, ...); 0 beyond the table. */
size_t mlmodelc_table_size(size_t n);
/* idx[0..n): keys as such a table enumerates them, inserted in the order given. */
void mlmodelc_hash_order(const char *const *keys, size_t n, size_t *idx);
/* Check a coremldata.bin image and decode its ModelDescription into a model
 * whose desc is it (no program). Accepted: the header of item 3 with 5 or
 * the spec version at offset 4, then exactly one trailer record per
 * function (one without a functions list). -1 with errf() otherwise. */
int mlmodelc_read_coremldata(const void *data, size_t n, ml_model **out);

/* Read the compiled model in folder dir: its description (coremldata.bin)
 * and program (model.mil) in one model; weights/weight.bin is left for the
 * caller. -1 with one errf() line naming the file on failure. */
int mlmodelc_read(const char *dir, ml_model **out);

#endif
