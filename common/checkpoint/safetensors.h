/* safetensors.h: checkpoint tensors from *.safetensors files, memory-mapped.
 *
 * On-disk format of one file (all integers little-endian):
 *   1. u64 N: length of the header in bytes (anemake refuses N > 100 MB).
 *   2. N bytes of UTF-8 JSON: one object. Key "__metadata__" (optional) maps
 *      strings to strings; every other key is a tensor name mapping to
 *      {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, d1, ...],
 *       "data_offsets": [begin, end]}. Trailing spaces may pad the header.
 *   3. The data region: the rest of the file. A tensor's bytes are
 *      data[begin, end), row-major (C order), little-endian elements, and
 *      end - begin == product(shape) * element size. Byte ranges of
 *      different tensors never overlap; nothing is aligned.
 * A sharded checkpoint adds model.safetensors.index.json:
 *   {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>", ...}}.
 *
 * Opening a checkpoint maps each file read-only and validates every header
 * entry (see safetensors.c for the list); tensor bytes are only touched when
 * a caller converts them, so opening a 100 GB checkpoint costs its headers.
 * Every error is one line naming the file and the tensor.
 *
 * Only F32, F16 and BF16 convert (to fp32 exactly, or to fp16 rounding to
 * nearest even with overflow clamped and counted). Other dtypes are listed
 * but refuse to convert; FP8/INT8 weights and GPTQ/AWQ-style tensors make
 * the whole checkpoint refused as pre-quantized at open.
 */
#ifndef ANEMAKE_SAFETENSORS_H
#define ANEMAKE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_RANK 8
#define ST_MAX_HEADER ((uint64_t)100 << 20)

typedef enum st_dtype {
	ST_F32, ST_F16, ST_BF16, /* the convertible ones */
	ST_F64, ST_C64,
	ST_I8, ST_U8, ST_I16, ST_U16, ST_I32, ST_U32, ST_I64, ST_U64, ST_BOOL,
	ST_F8_E4M3, ST_F8_E5M2, ST_F8_E8M0, ST_F6_E2M3, ST_F6_E3M2, ST_F4,
	ST_DTYPE_COUNT
} st_dtype;

typedef struct st_tensor {
	const char *name;             /* as in the header */
	const char *file;             /* path of the file holding it (owned by the st_model) */
	st_dtype dtype;
	int rank;                     /* 0..ST_MAX_RANK */
	uint64_t shape[ST_MAX_RANK];
	uint64_t numel;               /* product of shape (1 for rank 0) */
	uint64_t nbytes;              /* == data_offsets end - begin */
	uint64_t offset;              /* begin, relative to the data region */
	const uint8_t *data;          /* raw little-endian bytes, unaligned */
	int mapped;                   /* data lies in our read-only file mapping */
} st_tensor;

typedef struct st_file st_file;   /* one mapped file (private) */

/* A checkpoint: the tensors of one file or of a directory. */
typedef struct st_model {
	char *where;                  /* the directory or file opened, for messages */
	st_file *files;
	size_t nfiles;
	st_tensor *tensors;           /* sorted by name (strcmp): the iteration order */
	size_t ntensors;
} st_model;

/* Open `path`: a *.safetensors file, or a directory holding either
 * model.safetensors.index.json plus its shards, or one or more *.safetensors
 * (all of them, in name order). Records an error and returns -1 on bad input;
 * *m is then empty (st_close is still allowed). */
int st_open(st_model *m, const char *path);

/* The same checks over a file image already in memory (header + data);
 * `label` names it in messages. The buffer must outlive *m. This is the
 * entry point the fuzzer drives; st_open uses it for every file. */
int st_open_memory(st_model *m, const void *buf, size_t size, const char *label);

/* Unmap and free; NULL-tolerant, and safe on a zeroed or failed st_model. */
void st_close(st_model *m);

/* Lookup by exact name: st_find returns NULL quietly, st_get records
 * "tensor 'x' not found in '<where>'" first. */
const st_tensor *st_find(const st_model *m, const char *name);
const st_tensor *st_get(const st_model *m, const char *name);

/* Deterministic iteration: for (i = 0; i < m->ntensors; i++) m->tensors[i],
 * or these helpers. */
size_t st_count(const st_model *m);
const st_tensor *st_at(const st_model *m, size_t i);

/* Rows are slices along the first dimension: a tensor of shape [r, ...] has
 * r rows of numel / r elements (a rank-0 tensor is one row of one element). */
uint64_t st_rows(const st_tensor *t);
uint64_t st_row_elems(const st_tensor *t);

/* Convert into caller buffers of numel (or nrows * row_elems) elements.
 * To fp32: exact. To fp16: round to nearest even; finite values whose
 * magnitude rounds past 65504 are clamped to +-65504 and counted in
 * *clamped (if non-NULL), never turned into inf. Return 0, or -1 with an
 * error naming file, tensor and reason (dtype that does not convert, rows
 * out of range, a NaN or infinite value in the rows read: the message
 * counts those of the whole tensor). */
int st_read_f32(const st_tensor *t, float *dst);
int st_read_fp16(const st_tensor *t, uint16_t *dst, size_t *clamped);
int st_read_rows_f32(const st_tensor *t, uint64_t row0, uint64_t nrows, float *dst);
int st_read_rows_fp16(const st_tensor *t, uint64_t row0, uint64_t nrows, uint16_t *dst,
                      size_t *clamped);

/* 0 when st_read_* accepts the dtype, else -1 with the reason recorded. */
int st_check_convertible(const st_tensor *t);

/* "F32", "BF16", ...; bits per element (4, 6, 8, ... 128). */
const char *st_dtype_name(st_dtype t);
int st_dtype_bits(st_dtype t);
/* dtype from its header string; -1 when unknown. */
int st_dtype_parse(const char *s, st_dtype *out);

/* "[512,64]" into buf (cap >= 8), truncated with "..." if needed. */
const char *st_shape_str(const st_tensor *t, char *buf, size_t cap);

#endif
