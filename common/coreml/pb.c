/* pb.c: protobuf wire encoding and decoding (see pb.h). */
#include "coreml/pb.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

void pb_init(pb_buf *b) { memset(b, 0, sizeof *b); }

void pb_release(pb_buf *b)
{
	free(b->data);
	pb_init(b);
}

static void reserve(pb_buf *b, size_t extra)
{
	if (b->len + extra > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + extra)
			cap = xmul(cap, 2);
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
}

void pb_raw(pb_buf *b, const void *data, size_t n)
{
	reserve(b, n);
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t encode_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

void pb_varint(pb_buf *b, uint64_t v)
{
	reserve(b, 10);
	b->len += encode_varint(b->data + b->len, v);
}

void pb_tag(pb_buf *b, uint32_t field, int wiretype) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wiretype); }

void pb_put_uint(pb_buf *b, uint32_t field, uint64_t v)
{
	pb_tag(b, field, PB_VARINT);
	pb_varint(b, v);
}

void pb_put_int(pb_buf *b, uint32_t field, int64_t v) { pb_put_uint(b, field, (uint64_t)v); }
void pb_put_bool(pb_buf *b, uint32_t field, int v) { pb_put_uint(b, field, v ? 1 : 0); }

static void put_le(pb_buf *b, uint64_t v, int bytes)
{
	uint8_t tmp[8];
	for (int i = 0; i < bytes; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	pb_raw(b, tmp, (size_t)bytes);
}

void pb_put_float(pb_buf *b, uint32_t field, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	pb_tag(b, field, PB_FIXED32);
	put_le(b, u, 4);
}

void pb_put_double(pb_buf *b, uint32_t field, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	pb_tag(b, field, PB_FIXED64);
	put_le(b, u, 8);
}

void pb_put_bytes(pb_buf *b, uint32_t field, const void *data, size_t n)
{
	pb_tag(b, field, PB_LEN);
	pb_varint(b, n);
	pb_raw(b, data, n);
}

void pb_put_string(pb_buf *b, uint32_t field, const char *s) { pb_put_bytes(b, field, s, strlen(s)); }

size_t pb_begin(pb_buf *b, uint32_t field)
{
	pb_tag(b, field, PB_LEN);
	reserve(b, 1);
	b->data[b->len++] = 0;
	return b->len;
}

void pb_end(pb_buf *b, size_t mark)
{
	ASSERT(mark >= 1 && mark <= b->len);
	size_t body = b->len - mark;
	size_t need = varint_size(body);
	if (need > 1) {
		reserve(b, need - 1);
		memmove(b->data + mark + need - 1, b->data + mark, body);
		b->len += need - 1;
	}
	encode_varint(b->data + mark - 1, body);
}

void pb_put_packed_int64(pb_buf *b, uint32_t field, const int64_t *v, size_t n)
{
	if (!n)
		return;
	size_t m = pb_begin(b, field);
	for (size_t i = 0; i < n; i++)
		pb_varint(b, (uint64_t)v[i]);
	pb_end(b, m);
}

void pb_put_packed_int32(pb_buf *b, uint32_t field, const int32_t *v, size_t n)
{
	if (!n)
		return;
	size_t m = pb_begin(b, field);
	for (size_t i = 0; i < n; i++)
		pb_varint(b, (uint64_t)(int64_t)v[i]);
	pb_end(b, m);
}

void pb_put_packed_bool(pb_buf *b, uint32_t field, const uint8_t *v, size_t n)
{
	if (!n)
		return;
	size_t m = pb_begin(b, field);
	for (size_t i = 0; i < n; i++)
		pb_varint(b, v[i] ? 1 : 0);
	pb_end(b, m);
}

void pb_put_packed_float(pb_buf *b, uint32_t field, const float *v, size_t n)
{
	if (!n)
		return;
	pb_tag(b, field, PB_LEN);
	pb_varint(b, xmul(n, 4));
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		put_le(b, u, 4);
	}
}

void pb_put_packed_double(pb_buf *b, uint32_t field, const double *v, size_t n)
{
	if (!n)
		return;
	pb_tag(b, field, PB_LEN);
	pb_varint(b, xmul(n, 8));
	for (size_t i = 0; i < n; i++) {
		uint64_t u;
		memcpy(&u, &v[i], 8);
		put_le(b, u, 8);
	}
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

pb_reader pb_reader_of(const void *data, size_t n)
{
	static const uint8_t empty[1];
	if (!data) /* an empty pb_buf has no data: NULL + 0 would be undefined */
		data = empty, n = 0;
	pb_reader r = {(const uint8_t *)data, (const uint8_t *)data + n};
	return r;
}

int pb_read_varint(pb_reader *r, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		if (r->p >= r->end)
			return errf("protobuf: truncated varint");
		uint8_t byte = *r->p++;
		if (shift == 63 && byte > 1)
			return errf("protobuf: varint overflows 64 bits");
		x |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return errf("protobuf: varint longer than 10 bytes");
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int pb_next(pb_reader *r, pb_field *f)
{
	if (r->p >= r->end)
		return 0;
	uint64_t key;
	if (pb_read_varint(r, &key) != 0)
		return -1;
	if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return errf("protobuf: invalid field number %llu", (unsigned long long)(key >> 3));
	memset(f, 0, sizeof *f);
	f->field = (uint32_t)(key >> 3);
	f->wt = (int)(key & 7);
	size_t left = (size_t)(r->end - r->p);
	switch (f->wt) {
	case PB_VARINT:
		return pb_read_varint(r, &f->v) == 0 ? 1 : -1;
	case PB_FIXED64:
		if (left < 8)
			return errf("protobuf: truncated fixed64 in field %u", f->field);
		f->v = get_le(r->p, 8);
		r->p += 8;
		return 1;
	case PB_FIXED32:
		if (left < 4)
			return errf("protobuf: truncated fixed32 in field %u", f->field);
		f->v = get_le(r->p, 4);
		r->p += 4;
		return 1;
	case PB_LEN: {
		uint64_t n;
		if (pb_read_varint(r, &n) != 0)
			return -1;
		if (n > (uint64_t)(r->end - r->p))
			return errf("protobuf: field %u length %llu runs past the end", f->field, (unsigned long long)n);
		f->data = r->p;
		f->len = (size_t)n;
		r->p += n;
		return 1;
	}
	default:
		return errf("protobuf: unsupported wire type %d in field %u", f->wt, f->field);
	}
}

pb_reader pb_sub(const pb_field *f) { return pb_reader_of(f->data, f->wt == PB_LEN ? f->len : 0); }

int pb_as_int64(const pb_field *f, int64_t *v)
{
	if (f->wt != PB_VARINT)
		return errf("protobuf: field %u: expected a varint", f->field);
	*v = (int64_t)f->v;
	return 0;
}

int pb_as_float(const pb_field *f, float *v)
{
	if (f->wt != PB_FIXED32)
		return errf("protobuf: field %u: expected a float", f->field);
	uint32_t u = (uint32_t)f->v;
	memcpy(v, &u, 4);
	return 0;
}

int pb_as_double(const pb_field *f, double *v)
{
	if (f->wt != PB_FIXED64)
		return errf("protobuf: field %u: expected a double", f->field);
	memcpy(v, &f->v, 8);
	return 0;
}

int pb_as_string(const pb_field *f, char **s)
{
	if (f->wt != PB_LEN)
		return errf("protobuf: field %u: expected bytes", f->field);
	*s = xstrndup((const char *)f->data, f->len);
	return 0;
}

int pb_append_int64(const pb_field *f, int64_t **arr, size_t *n, size_t *cap)
{
	if (f->wt == PB_VARINT) {
		GROW(*arr, *cap, *n + 1);
		(*arr)[(*n)++] = (int64_t)f->v;
		return 0;
	}
	if (f->wt != PB_LEN)
		return errf("protobuf: field %u: expected packed varints", f->field);
	pb_reader r = pb_sub(f);
	while (r.p < r.end) {
		uint64_t v;
		if (pb_read_varint(&r, &v) != 0)
			return -1;
		GROW(*arr, *cap, *n + 1);
		(*arr)[(*n)++] = (int64_t)v;
	}
	return 0;
}

static int append_fixed(const pb_field *f, int size, void **arr, size_t *n, size_t *cap)
{
	int single = size == 4 ? PB_FIXED32 : PB_FIXED64;
	if (f->wt == single) {
		grow(arr, cap, *n + 1, (size_t)size);
		memcpy((char *)*arr + *n * (size_t)size, &f->v, (size_t)size); /* little-endian host */
		(*n)++;
		return 0;
	}
	if (f->wt != PB_LEN || f->len % (size_t)size)
		return errf("protobuf: field %u: malformed packed %s", f->field, size == 4 ? "floats" : "doubles");
	size_t k = f->len / (size_t)size;
	grow(arr, cap, *n + k, (size_t)size);
	if (f->len)
		memcpy((char *)*arr + *n * (size_t)size, f->data, f->len);
	*n += k;
	return 0;
}

int pb_append_float(const pb_field *f, float **arr, size_t *n, size_t *cap) { return append_fixed(f, 4, (void **)arr, n, cap); }
int pb_append_double(const pb_field *f, double **arr, size_t *n, size_t *cap) { return append_fixed(f, 8, (void **)arr, n, cap); }
