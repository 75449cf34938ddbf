/* mlmodel.h: a Core ML Model (Model.proto) in memory, and model.mlmodel bytes.
 *
 * model.mlmodel, the file inside Data/com.apple.CoreML/ of a .mlpackage, is
 * one serialized CoreML.Specification.Model message. anemake only writes and
 * reads ML Programs (coreml-format.md 2 and 3); the fields kept here are
 * (field numbers in brackets):
 *
 *   Model               specificationVersion[1] (9 for iOS 18), description[2],
 *                       isUpdatable[10], mlProgram[502] (a mil_program, mil.h)
 *   ModelDescription    input[1], output[10], predictedFeatureName[11],
 *                       predictedProbabilitiesName[12], state[13],
 *                       functions[20], defaultFunctionName[21],
 *                       trainingInput[50], metadata[100]
 *   FunctionDescription name[1], input[2], output[3], predictedFeatureName[4],
 *                       predictedProbabilitiesName[5], state[6]
 *   FeatureDescription  name[1], shortDescription[2], type[3]
 *   FeatureType         one of int64Type[1], doubleType[2], stringType[3],
 *                       imageType[4], multiArrayType[5], dictionaryType[6],
 *                       sequenceType[7], stateType[8]; isOptional[1000]
 *   ArrayFeatureType    shape[1] (packed int64), dataType[2] (ArrayDataType),
 *                       enumeratedShapes[21] {shapes[1] {shape[1]}} or
 *                       shapeRange[31] {sizeRanges[1] {lowerBound[1],
 *                       upperBound[2]}}, default intDefaultValue[41] or
 *                       floatDefaultValue[51] or doubleDefaultValue[61]
 *   StateFeatureType    arrayType[1]
 *   Metadata            shortDescription[1], versionString[2], author[3],
 *                       license[4], userDefined[100] (map<string,string>)
 *
 * A single-function model describes its features in the top-level
 * input/output/state lists (desc->top); a multifunction model leaves those
 * empty and has one ml_function_desc per program function, in program
 * order, plus defaultFunctionName. Image, dictionary and sequence feature
 * types are never produced by anemake: their messages are kept as raw bytes
 * and written back verbatim. Other Model types (neuralNetwork, pipeline...)
 * and unknown fields are skipped when decoding.
 *
 * Encoding is canonical: fields in field-number order, proto3 defaults
 * omitted, map entries sorted by key, so equal models give equal bytes.
 * Decoding accepts anything protobuf would (packed or unpacked repeated
 * fields, split messages, fields in any order) and rejects malformed input
 * with one errf() line; it never trusts a length or nesting depth.
 *
 * Memory: an ml_model owns one mil_arena (m->arena) holding the model, its
 * description and its program; ml_model_free() releases all of it. Strings
 * and arrays passed in are copied. Features, function descriptions and the
 * program never move once created. String fields are never NULL ("" when
 * unset); metadata and description are NULL when absent from the file (the
 * get-or-create accessors below make them).
 */
#ifndef ANEMAKE_MLMODEL_H
#define ANEMAKE_MLMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "coreml/mil.h"
#include "coreml/pb.h"

/* Specification version for iOS 18 / macOS 15 (states, multifunction). */
#define ML_SPEC_IOS18 9

typedef struct ml_shape {
	size_t n, cap;
	int64_t *dims;
} ml_shape;

typedef struct ml_size_range {
	uint64_t lower;
	int64_t upper; /* -1: unbounded */
} ml_size_range;

typedef enum ml_flex_kind {
	ML_FLEX_NONE = 0,
	ML_FLEX_ENUMERATED = 21,
	ML_FLEX_RANGE = 31,
} ml_flex_kind;

typedef enum ml_default_kind {
	ML_DEFAULT_NONE = 0,
	ML_DEFAULT_INT = 41,
	ML_DEFAULT_FLOAT = 51,
	ML_DEFAULT_DOUBLE = 61,
} ml_default_kind;

typedef struct ml_array_type {
	int dtype; /* array_dtype; a plain int so unknown numbers survive */
	ml_shape shape;
	ml_flex_kind flex;
	size_t nshapes, shapes_cap; /* ML_FLEX_ENUMERATED */
	ml_shape *shapes;
	size_t nranges, ranges_cap; /* ML_FLEX_RANGE: one per dimension */
	ml_size_range *ranges;
	ml_default_kind def;
	int32_t def_int;
	float def_float;
	double def_double;
} ml_array_type;

typedef enum ml_feature_kind {
	ML_FEAT_NONE = 0,
	ML_FEAT_INT64 = 1,
	ML_FEAT_DOUBLE = 2,
	ML_FEAT_STRING = 3,
	ML_FEAT_IMAGE = 4,
	ML_FEAT_ARRAY = 5,
	ML_FEAT_DICT = 6,
	ML_FEAT_SEQUENCE = 7,
	ML_FEAT_STATE = 8,
} ml_feature_kind;

typedef struct ml_feature_type {
	ml_feature_kind kind;
	/* ML_FEAT_ARRAY: the multiArrayType; ML_FEAT_STATE: its arrayType
	 * (NULL when the StateFeatureType has none). */
	ml_array_type *array;
	/* Other kinds: the member's message bytes, kept verbatim. */
	const uint8_t *raw;
	size_t raw_len;
	int is_optional;
} ml_feature_type;

typedef struct ml_feature {
	const char *name;
	const char *short_description;
	ml_feature_type *type; /* NULL when absent */
} ml_feature;

typedef struct ml_features {
	size_t n, cap;
	ml_feature **v;
} ml_features;

typedef struct ml_function_desc {
	const char *name;
	ml_features input, output, state;
	const char *predicted_feature, *predicted_probabilities;
} ml_function_desc;

typedef struct ml_kv {
	const char *key, *value;
} ml_kv;

typedef struct ml_metadata {
	const char *short_description, *version, *author, *license;
	size_t nuser, user_cap; /* userDefined, in insertion order */
	ml_kv *user;
} ml_metadata;

typedef struct ml_description {
	ml_function_desc top; /* input, output, state, predicted*; name unused */
	ml_features training_input;
	size_t nfunctions, functions_cap;
	ml_function_desc **functions;
	const char *default_function;
	ml_metadata *metadata; /* NULL when absent */
} ml_description;

typedef struct ml_model {
	mil_arena *arena;
	int32_t spec_version;
	ml_description *desc; /* NULL when absent */
	int is_updatable;
	mil_program *program; /* the mlProgram; NULL when absent */
} ml_model;

/* A model with an empty description and no program. */
ml_model *ml_model_new(int spec_version);
void ml_model_free(ml_model *m); /* NULL-tolerant */

/* Append the canonical encoding of m to out. Returns 0. */
int ml_model_encode(const ml_model *m, pb_buf *out);
/* Decode a model.mlmodel image; on failure *out is NULL and errf() says why. */
int ml_model_decode(const void *bytes, size_t n, ml_model **out);
/* read_file + ml_model_decode; the error names the path. */
int ml_model_read(const char *path, ml_model **out);

/* Get-or-create accessors. */
ml_description *ml_model_desc(ml_model *m);
ml_metadata *ml_model_metadata(ml_model *m);
/* The program; created empty (version 1) when absent. */
mil_program *ml_model_program(ml_model *m);

/* Function descriptions (multifunction models). */
ml_function_desc *ml_model_add_function(ml_model *m, const char *name);
ml_function_desc *ml_model_find_function(const ml_model *m, const char *name);
void ml_model_set_default_function(ml_model *m, const char *name);
/* Deep copy of src (from any model) appended to m's functions as `name` (NULL: src's name). */
ml_function_desc *ml_model_copy_function(ml_model *m, const ml_function_desc *src, const char *name);

/* Features of fd, or of the top-level description when fd is NULL.
 * Inputs and outputs are multiArrayType, states stateType{arrayType}; a
 * rank of 0 leaves the shape out (coremltools does so for outputs whose
 * shape is symbolic). */
ml_feature *ml_model_add_input(ml_model *m, ml_function_desc *fd, const char *name, array_dtype dt, size_t rank,
			       const int64_t *shape);
ml_feature *ml_model_add_output(ml_model *m, ml_function_desc *fd, const char *name, array_dtype dt, size_t rank,
				const int64_t *shape);
ml_feature *ml_model_add_state(ml_model *m, ml_function_desc *fd, const char *name, array_dtype dt, size_t rank,
			       const int64_t *shape);
/* Add one enumerated shape (makes the feature's flexibility enumerated). */
void ml_feature_add_enumerated_shape(ml_model *m, ml_feature *f, size_t rank, const int64_t *shape);
/* The array type of an array or state feature, else NULL. */
ml_array_type *ml_feature_array(const ml_feature *f);
ml_feature *ml_features_find(const ml_features *fs, const char *name);

/* Metadata: NULL arguments leave a field as it is. */
void ml_model_set_metadata(ml_model *m, const char *short_description, const char *version, const char *author,
			   const char *license);
/* userDefined[key] = value (replacing an existing key). */
void ml_model_set_user_meta(ml_model *m, const char *key, const char *value);
/* userDefined[key], or NULL. */
const char *ml_model_user_meta(const ml_model *m, const char *key);

#endif
