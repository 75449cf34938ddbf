/* dtype.c: one table of Core ML element types (see dtype.h). */
#include "base/dtype.h"

static const struct {
	mil_dtype mil;
	blob_dtype blob;
	int bits;
	const char *name;
} types[] = {
	{MIL_BOOL, 0, 8, "bool"},
	{MIL_STRING, 0, 0, "string"},
	{MIL_FP16, BLOB_FP16, 16, "float16"},
	{MIL_FP32, BLOB_FP32, 32, "float32"},
	{MIL_FP64, 0, 64, "float64"},
	{MIL_BF16, BLOB_BF16, 16, "bfloat16"},
	{MIL_INT8, BLOB_INT8, 8, "int8"},
	{MIL_INT16, BLOB_INT16, 16, "int16"},
	{MIL_INT32, BLOB_INT32, 32, "int32"},
	{MIL_INT64, 0, 64, "int64"},
	{MIL_INT4, BLOB_INT4, 4, "int4"},
	{MIL_UINT8, BLOB_UINT8, 8, "uint8"},
	{MIL_UINT16, BLOB_UINT16, 16, "uint16"},
	{MIL_UINT32, BLOB_UINT32, 32, "uint32"},
	{MIL_UINT64, 0, 64, "uint64"},
	{MIL_UINT4, BLOB_UINT4, 4, "uint4"},
	{MIL_UINT2, BLOB_UINT2, 2, "uint2"},
	{MIL_UINT1, BLOB_UINT1, 1, "uint1"},
	{MIL_UINT6, BLOB_UINT6, 6, "uint6"},
	{MIL_UINT3, BLOB_UINT3, 3, "uint3"},
	{MIL_FP8E4M3FN, BLOB_FP8E4M3FN, 8, "float8e4m3fn"},
	{MIL_FP8E5M2, BLOB_FP8E5M2, 8, "float8e5m2"},
};
#define NTYPES (sizeof types / sizeof types[0])

static int find_mil(mil_dtype t)
{
	for (unsigned i = 0; i < NTYPES; i++)
		if (types[i].mil == t)
			return (int)i;
	return -1;
}

const char *mil_dtype_name(mil_dtype t)
{
	int i = find_mil(t);
	return i < 0 ? NULL : types[i].name;
}

int mil_dtype_bits(mil_dtype t)
{
	int i = find_mil(t);
	return i < 0 ? 0 : types[i].bits;
}

int mil_dtype_is_float(mil_dtype t)
{
	return t == MIL_FP16 || t == MIL_FP32 || t == MIL_FP64 || t == MIL_BF16 || t == MIL_FP8E4M3FN || t == MIL_FP8E5M2;
}

blob_dtype mil_to_blob_dtype(mil_dtype t)
{
	int i = find_mil(t);
	return i < 0 ? 0 : types[i].blob;
}

mil_dtype blob_to_mil_dtype(blob_dtype t)
{
	for (unsigned i = 0; i < NTYPES; i++)
		if (types[i].blob && types[i].blob == t)
			return types[i].mil;
	return MIL_UNUSED;
}

size_t mil_dtype_bytes(mil_dtype t, size_t n)
{
	size_t bits = (size_t)mil_dtype_bits(t);
	return (n * bits + 7) / 8;
}

static const struct {
	array_dtype a;
	mil_dtype m;
	const char *name;
} arrays[] = {
	{ARRAY_FLOAT32, MIL_FP32, "float32"}, {ARRAY_DOUBLE, MIL_FP64, "float64"},
	{ARRAY_INT32, MIL_INT32, "int32"},    {ARRAY_INT8, MIL_INT8, "int8"},
	{ARRAY_FLOAT16, MIL_FP16, "float16"},
};

const char *array_dtype_name(array_dtype t)
{
	for (unsigned i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
		if (arrays[i].a == t)
			return arrays[i].name;
	return NULL;
}

mil_dtype array_to_mil_dtype(array_dtype t)
{
	for (unsigned i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
		if (arrays[i].a == t)
			return arrays[i].m;
	return MIL_UNUSED;
}

array_dtype mil_to_array_dtype(mil_dtype t)
{
	for (unsigned i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
		if (arrays[i].m == t)
			return arrays[i].a;
	return ARRAY_INVALID;
}
