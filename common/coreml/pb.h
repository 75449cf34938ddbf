/* pb.h: protobuf wire format, hand-written (the wire format is small).
 *
 * Encoding: a growable byte buffer. Nested messages are written in place:
 * pb_begin() reserves a one-byte length, pb_end() patches it (moving the body
 * when the length needs more bytes), so output is canonical protobuf.
 * Fields are written in the order the caller writes them; callers write them
 * in field-number order, as protobuf serializers do.
 *
 * Decoding: a cursor over bytes; pb_next() yields one field at a time and
 * checks every length against the bytes remaining. Unknown fields are the
 * caller's to skip (just don't look at them).
 *
 * Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
 */
#ifndef ANEMAKE_PB_H
#define ANEMAKE_PB_H

#include <stddef.h>
#include <stdint.h>

enum { PB_VARINT = 0, PB_FIXED64 = 1, PB_LEN = 2, PB_FIXED32 = 5 };

typedef struct pb_buf {
	uint8_t *data;
	size_t len, cap;
} pb_buf;

void pb_init(pb_buf *b);
void pb_release(pb_buf *b);
void pb_raw(pb_buf *b, const void *data, size_t n);
void pb_varint(pb_buf *b, uint64_t v);
void pb_tag(pb_buf *b, uint32_t field, int wiretype);

/* Scalar fields. Signed ints are sign-extended to 64 bits (protobuf int32/int64). */
void pb_put_uint(pb_buf *b, uint32_t field, uint64_t v);
void pb_put_int(pb_buf *b, uint32_t field, int64_t v);
void pb_put_bool(pb_buf *b, uint32_t field, int v);
void pb_put_float(pb_buf *b, uint32_t field, float v);
void pb_put_double(pb_buf *b, uint32_t field, double v);
void pb_put_bytes(pb_buf *b, uint32_t field, const void *data, size_t n);
void pb_put_string(pb_buf *b, uint32_t field, const char *s);

/* Packed repeated fields (written even when empty only if n > 0). */
void pb_put_packed_int64(pb_buf *b, uint32_t field, const int64_t *v, size_t n);
void pb_put_packed_int32(pb_buf *b, uint32_t field, const int32_t *v, size_t n);
void pb_put_packed_bool(pb_buf *b, uint32_t field, const uint8_t *v, size_t n);
void pb_put_packed_float(pb_buf *b, uint32_t field, const float *v, size_t n);
void pb_put_packed_double(pb_buf *b, uint32_t field, const double *v, size_t n);

/* Nested message: size_t m = pb_begin(b, field); ...write body...; pb_end(b, m); */
size_t pb_begin(pb_buf *b, uint32_t field);
void pb_end(pb_buf *b, size_t mark);

typedef struct pb_reader {
	const uint8_t *p, *end;
} pb_reader;

typedef struct pb_field {
	uint32_t field;
	int wt;
	uint64_t v;          /* PB_VARINT, PB_FIXED32, PB_FIXED64: the raw value */
	const uint8_t *data; /* PB_LEN: the payload */
	size_t len;
} pb_field;

pb_reader pb_reader_of(const void *data, size_t n);
/* 1: a field was read; 0: end of input; -1: malformed (errf set). */
int pb_next(pb_reader *r, pb_field *f);
/* Reader over a length-delimited field's payload. */
pb_reader pb_sub(const pb_field *f);
int pb_read_varint(pb_reader *r, uint64_t *v);

/* Typed views of a field; return -1 (errf) when the wire type is wrong. */
int pb_as_int64(const pb_field *f, int64_t *v);
int pb_as_float(const pb_field *f, float *v);
int pb_as_double(const pb_field *f, double *v);
/* A copy of a string field, NUL-terminated (caller frees). */
int pb_as_string(const pb_field *f, char **s);

/* Repeated numeric fields arrive packed (PB_LEN) or one per field; these
 * append every value of f to a growable array (*arr, *n, *cap). */
int pb_append_int64(const pb_field *f, int64_t **arr, size_t *n, size_t *cap);
int pb_append_float(const pb_field *f, float **arr, size_t *n, size_t *cap);
int pb_append_double(const pb_field *f, double **arr, size_t *n, size_t *cap);

#endif
