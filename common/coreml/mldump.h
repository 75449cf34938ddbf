/* mldump.h: a compact text listing of a Core ML model.
 *
 * The format is the one of shared/reference/<dir>/listings/<package>.txt
 * (one per reference package), so a package anemake writes can be diffed
 * line by line against what ANEMLL + coremltools wrote:
 *
 *   specificationVersion 9
 *   function "<main>"                          top-level features (or
 *   function "infer"                           one block per description
 *     input  "x" int32[1,1] enumerated{[1,1] [1,64]}        function)
 *     output "y" float16[]                     no shape: "[]"
 *     state  "kv" state float16[4,2,512,16]
 *   default "infer"                            defaultFunctionName, if set
 *     meta shortDescription = "..."            then versionString, author,
 *     meta "com.anemll.context_length" = "512" license; userDefined by key
 *   program function "main" opset "CoreML8"    functions sorted by name
 *     in "x" int32[1,?]                        unknown dims are "?"
 *     in "kv" state<float16[4,2,512,16]>
 *       int32[4] p = const() [val=int32[4](0,0,0,0)]
 *       float16[64,64,1,1] w = constexpr_lut_to_dense(indices=uint6[64,64,1,1]@blob(64), lut=...)
 *       float16[1,2] c = concat(axis=a, interleave=i, values=(x,y))
 *        = write_state(data=u, input=kv)       an op without outputs
 *       outputs: a, b
 *     ops: add:1, cast:3, const:9              histogram sorted by op type
 *
 * Op lines are "<outputs> = <type>(<params>)[ [<attrs>]]": parameters
 * sorted by name (protoc's text format sorts map keys), a name binding as
 * the name, a literal binding as its value, several bindings as (a,b); the
 * attributes other than `name` follow in brackets, sorted by key. Values are
 * "<type>(<elements>)" or "<type>@blob(<offset>)". Strings and raw bytes
 * (fp16 immediates) are quoted with protobuf's C escaping: \n \r \t \" \' \\
 * and three-digit octal for other bytes outside 0x20..0x7e.
 *
 * Renderings chosen here for cases the references never contain:
 *  - fp32/fp64 elements: "%.6g"/"%.15g", widened to 9/17 digits when that
 *    does not read back exactly (protobuf's SimpleFtoa/SimpleDtoa); inf,
 *    -inf, nan.
 *  - several outputs: "float16[2] a, float16[2] b = split(...)".
 *  - a blob in another file: @blob("file",offset).
 *  - types: variadic unknown dim "?*", unset dim "_", list<T> or
 *    list<T,len>, tuple<A,B>, dict<K,V>, no type "?", unknown dtype
 *    "dtype<N>". Tuple/list values "T(v1,v2)", dict values "T{k:v,k:v}", a
 *    value with neither immediate nor blob just its type.
 *  - feature types: " range{lo..hi ...}" (hi < 0: "lo.."), " default=v",
 *    " optional", " doc \"...\"" for a shortDescription; int64, double,
 *    string, image, dictionary, sequence for non-array features; trainingInput
 *    as "  train  ..." and predicted names as "  predicted \"x\"" /
 *    "  probabilities \"x\"" in the function they belong to; the top-level
 *    block "<main>" is printed when there is no functions list or when
 *    top-level features exist anyway; "isUpdatable true" after the version.
 *  - several block specializations (or one keyed differently from the
 *    opset): a line '  block "key"' before each block, sorted by key.
 *  - block inputs: "in" lines at the op indent; nested blocks of an op
 *    (cond, while): a line "block <i>" two columns deeper than the op, then
 *    the block two further. The histogram counts nested ops too.
 */
#ifndef ANEMAKE_MLDUMP_H
#define ANEMAKE_MLDUMP_H

#include <stddef.h>
#include <stdio.h>

#include "coreml/mil.h"
#include "coreml/mlmodel.h"

/* Print the listing of m; -1 with errf() when writing failed. */
int mldump_listing(FILE *out, const ml_model *m);
/* Pieces of it, for other tools' messages. */
void mldump_type(FILE *out, const mil_type *t);
void mldump_value(FILE *out, const mil_value *v);
void mldump_quoted(FILE *out, const void *data, size_t n);

#endif
