/* dtype.h: the element types of Core ML, in the two numberings it uses.
 *
 * MIL.proto's DataType numbers tensors in model.mlmodel; weight.bin's blob
 * metadata uses its own BlobDataType numbers (coreml-format.md section 4).
 * This file is the one place that maps between them and knows names and
 * bit widths.
 */
#ifndef ANEMAKE_DTYPE_H
#define ANEMAKE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum mil_dtype {
	MIL_UNUSED = 0, MIL_BOOL = 1, MIL_STRING = 2,
	MIL_FP16 = 10, MIL_FP32 = 11, MIL_FP64 = 12, MIL_BF16 = 13,
	MIL_INT8 = 21, MIL_INT16 = 22, MIL_INT32 = 23, MIL_INT64 = 24, MIL_INT4 = 25,
	MIL_UINT8 = 31, MIL_UINT16 = 32, MIL_UINT32 = 33, MIL_UINT64 = 34,
	MIL_UINT4 = 35, MIL_UINT2 = 36, MIL_UINT1 = 37, MIL_UINT6 = 38, MIL_UINT3 = 39,
	MIL_FP8E4M3FN = 40, MIL_FP8E5M2 = 41,
} mil_dtype;

typedef enum blob_dtype {
	BLOB_FP16 = 1, BLOB_FP32 = 2, BLOB_UINT8 = 3, BLOB_INT8 = 4, BLOB_BF16 = 5,
	BLOB_INT16 = 6, BLOB_UINT16 = 7, BLOB_INT4 = 8, BLOB_UINT1 = 9, BLOB_UINT2 = 10,
	BLOB_UINT4 = 11, BLOB_UINT3 = 12, BLOB_UINT6 = 13, BLOB_INT32 = 14, BLOB_UINT32 = 15,
	BLOB_FP8E4M3FN = 16, BLOB_FP8E5M2 = 17,
} blob_dtype;

/* Core ML ArrayFeatureType.ArrayDataType (model inputs/outputs/states). */
typedef enum array_dtype {
	ARRAY_INVALID = 0, ARRAY_FLOAT32 = 65568, ARRAY_DOUBLE = 65600,
	ARRAY_INT32 = 131104, ARRAY_INT8 = 131080, ARRAY_FLOAT16 = 65552,
} array_dtype;

/* Name as written in listings ("float16", "int32", "uint6", ...); NULL if unknown. */
const char *mil_dtype_name(mil_dtype t);
/* Bits per element (1..64); 0 for STRING/UNUSED/unknown. */
int mil_dtype_bits(mil_dtype t);
int mil_dtype_is_float(mil_dtype t);
/* Blob type for a MIL type, or 0 when it cannot live in weight.bin. */
blob_dtype mil_to_blob_dtype(mil_dtype t);
/* MIL type for a blob type, or MIL_UNUSED when unknown. */
mil_dtype blob_to_mil_dtype(blob_dtype t);
/* Bytes needed for n elements of t, sub-byte types packed: ceil(n*bits/8). */
size_t mil_dtype_bytes(mil_dtype t, size_t n);
/* Name for an ArrayDataType ("float16", "float32", "int32", ...); NULL if unknown. */
const char *array_dtype_name(array_dtype t);
mil_dtype array_to_mil_dtype(array_dtype t);
array_dtype mil_to_array_dtype(mil_dtype t);

#endif
