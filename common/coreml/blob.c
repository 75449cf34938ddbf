/* blob.c: weight.bin (MIL blob storage v2) writer, reader and bit packing.
 *
 * The format is documented at the top of blob.h. Sizes to expect: a few
 * hundred blobs per file, from a 64-element LUT to a vocab x hidden fp16
 * embedding table of a gigabyte or more. Packing runs over every palettized
 * weight of a model, so it works on eight values at a time (SWAR on a 64-bit
 * word); the reader runs over files from the wild (and the fuzzer), so every
 * number it reads is checked against the file size before use.
 */
#define _FILE_OFFSET_BITS 64
#include "coreml/blob.h"
#include "base/hash.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>   /* mmap */
#include <sys/stat.h>
#include <unistd.h>     /* fsync */

/* ------------------------------------------------------------------ */
/* Little-endian helpers (byte by byte, so the host's order never matters;
 * compilers turn these into single loads and stores on little-endian CPUs). */

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t align_up(uint64_t x)
{
	return (x + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN;
}

/* ------------------------------------------------------------------ */
/* Sub-byte packing                                                    */

size_t blob_packed_size(size_t n, int bits)
{
	/* n/8 groups of 8 elements take exactly `bits` bytes each. */
	return n / 8 * (size_t)bits + ((n % 8) * (size_t)bits + 7) / 8;
}

unsigned blob_padding_bits(size_t n, int bits)
{
	return (unsigned)((8 - (n % 8) * (size_t)bits % 8) % 8);
}

/* Eight values of b bits, one per byte of x, become the low 8*b bits of the
 * result in stream order: merge neighbouring bytes into 16-bit lanes, then
 * lanes into 32-bit lanes, then the two halves. Each step moves the upper
 * field of a lane down next to the lower one and masks off what it left. */
static inline uint64_t swar_pack8(uint64_t x, const int b)
{
	const uint64_t m1 = (1ull << b) - 1, m2 = (1ull << 2 * b) - 1, m4 = (1ull << 4 * b) - 1;
	const uint64_t r16 = 0x0001000100010001ull, r32 = 0x0000000100000001ull;
	x &= m1 * 0x0101010101010101ull;
	x = (x & m1 * r16) | ((x >> (8 - b)) & (m1 << b) * r16);
	x = (x & m2 * r32) | ((x >> (16 - 2 * b)) & (m2 << 2 * b) * r32);
	return (x & m4) | ((x >> (32 - 4 * b)) & (m4 << 4 * b));
}

/* Exact inverse of swar_pack8: the low 8*b bits of x to eight bytes. */
static inline uint64_t swar_unpack8(uint64_t x, const int b)
{
	const uint64_t m1 = (1ull << b) - 1, m2 = (1ull << 2 * b) - 1, m4 = (1ull << 4 * b) - 1;
	const uint64_t r16 = 0x0001000100010001ull, r32 = 0x0000000100000001ull;
	x = (x & m4) | ((x << (32 - 4 * b)) & m4 << 32);
	x = (x & m2 * r32) | ((x << (16 - 2 * b)) & (m2 << 16) * r32);
	return (x & m1 * r16) | ((x << (8 - b)) & (m1 << 8) * r16);
}

/* b is a constant at each call site below, so every width gets its own
 * straight-line loop. The last n%8 values go through a zero-filled group so
 * that the padding bits come out zero. */
static inline void pack_width(const uint8_t *v, size_t n, uint8_t *out, const int b)
{
	size_t groups = n / 8;
	for (size_t g = 0; g < groups; g++, v += 8, out += b) {
		uint64_t x = swar_pack8(get_le64(v), b);
		for (int k = 0; k < b; k++)
			out[k] = (uint8_t)(x >> 8 * k);
	}
	size_t rem = n % 8;
	if (rem) {
		uint8_t tmp[8] = {0};
		memcpy(tmp, v, rem);
		uint64_t x = swar_pack8(get_le64(tmp), b);
		for (size_t k = 0; k < (rem * (size_t)b + 7) / 8; k++)
			out[k] = (uint8_t)(x >> 8 * k);
	}
}

static inline void unpack_width(const uint8_t *p, size_t n, uint8_t *v, const int b)
{
	size_t groups = n / 8;
	for (size_t g = 0; g < groups; g++, p += b, v += 8) {
		uint64_t x = 0;
		for (int k = 0; k < b; k++)
			x |= (uint64_t)p[k] << 8 * k;
		put_le64(v, swar_unpack8(x, b));
	}
	size_t rem = n % 8;
	if (rem) {
		uint64_t x = 0;
		for (size_t k = 0; k < (rem * (size_t)b + 7) / 8; k++)
			x |= (uint64_t)p[k] << 8 * k;
		uint8_t tmp[8];
		put_le64(tmp, swar_unpack8(x, b));
		memcpy(v, tmp, rem);
	}
}

void blob_pack_bits(const uint8_t *vals, size_t n, int bits, uint8_t *out)
{
	switch (bits) {
	case 1: pack_width(vals, n, out, 1); break;
	case 2: pack_width(vals, n, out, 2); break;
	case 3: pack_width(vals, n, out, 3); break;
	case 4: pack_width(vals, n, out, 4); break;
	case 6: pack_width(vals, n, out, 6); break;
	case 8: if (n) memcpy(out, vals, n); break;
	default: BUG("cannot pack %d-bit values", bits);
	}
}

void blob_unpack_bits(const uint8_t *packed, size_t n, int bits, uint8_t *vals)
{
	switch (bits) {
	case 1: unpack_width(packed, n, vals, 1); break;
	case 2: unpack_width(packed, n, vals, 2); break;
	case 3: unpack_width(packed, n, vals, 3); break;
	case 4: unpack_width(packed, n, vals, 4); break;
	case 6: unpack_width(packed, n, vals, 6); break;
	case 8: if (n) memcpy(vals, packed, n); break;
	default: BUG("cannot unpack %d-bit values", bits);
	}
}

void blob_unpack_int4(const uint8_t *packed, size_t n, int8_t *vals)
{
	/* Unpack in place as unsigned nibbles, then sign-extend: (v ^ 8) - 8. */
	uint8_t *u = (uint8_t *)vals;
	blob_unpack_bits(packed, n, 4, u);
	for (size_t i = 0; i < n; i++)
		vals[i] = (int8_t)((int)(u[i] ^ 8) - 8);
}

/* ------------------------------------------------------------------ */
/* Types                                                               */

static int blob_bits(blob_dtype t)
{
	return mil_dtype_bits(blob_to_mil_dtype(t));
}

static const char *blob_type_name(blob_dtype t)
{
	const char *s = mil_dtype_name(blob_to_mil_dtype(t));
	return s ? s : "unknown";
}

/* Why (size, padding) cannot be a blob of type t, or NULL when it can. */
static const char *shape_problem(blob_dtype t, uint64_t nbytes, uint64_t padding)
{
	int bits = blob_bits(t);
	if (bits == 0)
		return "unknown data type";
	if (padding >= 8)
		return "padding of 8 or more bits";
	if (bits >= 8) {
		if (padding != 0)
			return "padding bits on a byte-sized type";
		if (nbytes % (uint64_t)(bits / 8) != 0)
			return "size is not a whole number of elements";
		return NULL;
	}
	if (nbytes > UINT64_MAX / 8 || nbytes * 8 < padding)
		return "more padding bits than data bits";
	if ((nbytes * 8 - padding) % (uint64_t)bits != 0)
		return "padding does not leave a whole number of elements";
	return NULL;
}

int blob_element_count(blob_dtype t, uint64_t nbytes, unsigned padding_bits, uint64_t *n)
{
	const char *why = shape_problem(t, nbytes, padding_bits);
	if (why)
		return errf("%s blob of %" PRIu64 " bytes with %u padding bits: %s",
			    blob_type_name(t), nbytes, padding_bits, why);
	int bits = blob_bits(t);
	*n = (nbytes * 8 - padding_bits) / (uint64_t)bits;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

struct blob_writer {
	FILE *f;
	int own;            /* opened by us: fsync and fclose at close */
	char *name;         /* for messages */
	off_t base;         /* stream position of the header */
	uint64_t pos;       /* bytes written, header included */
	uint32_t count;
	int failed;         /* a write failed: every later call fails too */
	int in_blob;        /* between blob_begin and blob_end */
	uint64_t remaining; /* data bytes the current blob still needs */
	sha256_ctx *sha;    /* over everything after the header */
};

static const uint8_t g_zeros[BLOB_ALIGN];

static int bw_fail(blob_writer *bw)
{
	bw->failed = 1;
	return errf("cannot write '%s':", bw->name);
}

static int bw_put(blob_writer *bw, const void *p, size_t n)
{
	if (bw->failed)
		return -1;
	if (n && fwrite(p, 1, n, bw->f) != n)
		return bw_fail(bw);
	sha256_update(bw->sha, p, n);
	bw->pos += n;
	return 0;
}

static void header_bytes(uint8_t h[BLOB_HEADER_SIZE], uint32_t count)
{
	memset(h, 0, BLOB_HEADER_SIZE);
	put_le32(h, count);
	put_le32(h + 4, BLOB_VERSION);
}

static blob_writer *bw_start(FILE *f, int own, const char *name)
{
	blob_writer *bw = xcalloc(1, sizeof *bw);
	bw->f = f;
	bw->own = own;
	bw->name = xstrdup(name);
	bw->base = ftello(f);
	bw->sha = sha256_new();
	uint8_t h[BLOB_HEADER_SIZE];
	header_bytes(h, 0);
	if (bw->base < 0 || fwrite(h, 1, sizeof h, f) != sizeof h) {
		bw_fail(bw);
		blob_writer_abort(bw);
		return NULL;
	}
	bw->pos = BLOB_HEADER_SIZE;
	return bw;
}

blob_writer *blob_writer_open(const char *path)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		errf("cannot create '%s':", path);
		return NULL;
	}
	/* Big sequential writes: a larger buffer saves syscalls on small blobs. */
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	return bw_start(f, 1, path);
}

blob_writer *blob_writer_open_file(FILE *f, const char *name)
{
	return bw_start(f, 0, name);
}

static void meta_bytes(uint8_t m[BLOB_META_SIZE], blob_dtype t, uint64_t nbytes,
		       uint64_t meta_offset, unsigned padding)
{
	memset(m, 0, BLOB_META_SIZE);
	put_le32(m, BLOB_SENTINEL);
	put_le32(m + 4, (uint32_t)t);
	put_le64(m + 8, nbytes);
	put_le64(m + 16, meta_offset + BLOB_META_SIZE);
	put_le64(m + 24, padding);
}

int blob_begin(blob_writer *bw, blob_dtype t, uint64_t nbytes, unsigned padding_bits,
	       uint64_t *meta_offset)
{
	ASSERT(!bw->in_blob);
	if (bw->failed)
		return -1;
	const char *why = shape_problem(t, nbytes, padding_bits);
	if (why)
		return errf("'%s': cannot append a %s blob of %" PRIu64 " bytes with %u padding bits: %s",
			    bw->name, blob_type_name(t), nbytes, padding_bits, why);
	if (bw->count == UINT32_MAX)
		return errf("'%s': too many blobs", bw->name);
	uint64_t meta = align_up(bw->pos);
	uint8_t m[BLOB_META_SIZE];
	meta_bytes(m, t, nbytes, meta, padding_bits);
	if (bw_put(bw, g_zeros, (size_t)(meta - bw->pos)) != 0 || bw_put(bw, m, sizeof m) != 0)
		return -1;
	bw->in_blob = 1;
	bw->remaining = nbytes;
	if (meta_offset)
		*meta_offset = meta;
	return 0;
}

int blob_write(blob_writer *bw, const void *data, size_t n)
{
	ASSERT(bw->in_blob);
	if (n > bw->remaining)
		BUG("'%s': blob data overruns its declared size by %" PRIu64 " bytes", bw->name,
		    (uint64_t)n - bw->remaining);
	bw->remaining -= n;
	return bw_put(bw, data, n);
}

int blob_end(blob_writer *bw)
{
	ASSERT(bw->in_blob);
	bw->in_blob = 0;
	if (bw->failed) /* a write failed part way: the caller stopped early */
		return -1;
	if (bw->remaining != 0)
		BUG("'%s': blob ended %" PRIu64 " bytes short of its declared size", bw->name,
		    bw->remaining);
	bw->count++;
	return 0;
}

int blob_append(blob_writer *bw, blob_dtype t, const void *data, size_t nbytes,
		unsigned padding_bits, uint64_t *meta_offset)
{
	if (blob_begin(bw, t, nbytes, padding_bits, meta_offset) != 0)
		return -1;
	int rc = blob_write(bw, data, nbytes);
	return blob_end(bw) != 0 ? -1 : rc;
}

/* Blob type and bit width for a MIL type, or -1 with errf(). */
static int tensor_type(const blob_writer *bw, mil_dtype t, blob_dtype *bt, int *bits)
{
	*bt = mil_to_blob_dtype(t);
	*bits = mil_dtype_bits(t);
	if (*bt == 0)
		return errf("'%s': type %s cannot be stored in a weight file", bw->name,
			    mil_dtype_name(t) ? mil_dtype_name(t) : "unknown");
	return 0;
}

int blob_append_tensor(blob_writer *bw, mil_dtype t, const void *data, size_t n,
		       uint64_t *meta_offset)
{
	blob_dtype bt;
	int bits;
	if (tensor_type(bw, t, &bt, &bits) != 0)
		return -1;
	if (bits >= 8)
		return blob_append(bw, bt, data, xmul(n, (size_t)bits / 8), 0, meta_offset);
	return blob_append(bw, bt, data, blob_packed_size(n, bits), blob_padding_bits(n, bits),
			   meta_offset);
}

/* Index of the first value that does not fit t's bits, or n. The common case
 * (all fit) is one branch-free OR over the array. */
static size_t first_out_of_range(mil_dtype t, const uint8_t *v, size_t n, int bits)
{
	/* int4 -8..7 maps to 0..15 by adding 8; uintN must be below 2^N. */
	uint8_t bias = t == MIL_INT4 ? 8 : 0, acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= (uint8_t)(v[i] + bias);
	if ((acc >> bits) == 0)
		return n;
	size_t i = 0;
	while (((uint8_t)(v[i] + bias) >> bits) == 0)
		i++;
	return i;
}

int blob_append_unpacked(blob_writer *bw, mil_dtype t, const void *vals, size_t n,
			 uint64_t *meta_offset)
{
	blob_dtype bt;
	int bits;
	if (tensor_type(bw, t, &bt, &bits) != 0)
		return -1;
	if (bits >= 8)
		return blob_append_tensor(bw, t, vals, n, meta_offset);
	const uint8_t *v = vals;
	size_t bad = first_out_of_range(t, v, n, bits);
	if (bad < n)
		return errf("'%s': element %zu of a %s tensor is out of range (%d)", bw->name, bad,
			    mil_dtype_name(t), t == MIL_INT4 ? (int)(int8_t)v[bad] : (int)v[bad]);
	if (blob_begin(bw, bt, blob_packed_size(n, bits), blob_padding_bits(n, bits),
		       meta_offset) != 0)
		return -1;
	int rc = blob_write_unpacked(bw, t, v, n);
	return blob_end(bw) != 0 ? -1 : rc;
}

int blob_begin_unpacked(blob_writer *bw, mil_dtype t, size_t n, uint64_t *meta_offset)
{
	blob_dtype bt;
	int bits;
	if (tensor_type(bw, t, &bt, &bits) != 0)
		return -1;
	if (bits >= 8)
		return blob_begin(bw, bt, xmul(n, (size_t)bits / 8), 0, meta_offset);
	return blob_begin(bw, bt, blob_packed_size(n, bits), blob_padding_bits(n, bits), meta_offset);
}

int blob_write_unpacked(blob_writer *bw, mil_dtype t, const void *vals, size_t n)
{
	int bits = mil_dtype_bits(t);
	if (bits >= 8)
		return blob_write(bw, vals, xmul(n, (size_t)bits / 8));
	const uint8_t *v = vals;
	size_t bad = first_out_of_range(t, v, n, bits);
	if (bad < n) {
		bw->failed = 1;
		return errf("'%s': element %zu of a %s tensor is out of range (%d)", bw->name, bad,
			    mil_dtype_name(t), t == MIL_INT4 ? (int)(int8_t)v[bad] : (int)v[bad]);
	}
	/* Chunks of a multiple of 8 values start on a byte boundary. */
	enum { CHUNK = 8192 };
	uint8_t buf[CHUNK];
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i += CHUNK) {
		size_t k = n - i < CHUNK ? n - i : CHUNK;
		blob_pack_bits(v + i, k, bits, buf);
		rc = blob_write(bw, buf, blob_packed_size(k, bits));
	}
	return rc;
}

uint32_t blob_writer_count(const blob_writer *bw) { return bw->count; }
uint64_t blob_writer_size(const blob_writer *bw) { return bw->pos; }

/* Rewrite the header with the final count and leave the stream at the end. */
static int write_final_header(blob_writer *bw)
{
	uint8_t h[BLOB_HEADER_SIZE];
	header_bytes(h, bw->count);
	if (fflush(bw->f) != 0 || fseeko(bw->f, bw->base, SEEK_SET) != 0 ||
	    fwrite(h, 1, sizeof h, bw->f) != sizeof h || fflush(bw->f) != 0 ||
	    fseeko(bw->f, 0, SEEK_END) != 0 || ferror(bw->f))
		return bw_fail(bw);
	return 0;
}

static int sync_and_close(blob_writer *bw)
{
	/* fsync fails with EINVAL on special files (/dev/null): nothing to sync. */
	int rc = 0;
	if (fsync(fileno(bw->f)) != 0 && errno != EINVAL)
		rc = bw_fail(bw);
	if (fclose(bw->f) != 0 && rc == 0)
		rc = bw_fail(bw);
	bw->f = NULL;
	return rc;
}

int blob_writer_close(blob_writer *bw, uint8_t digest[32])
{
	int rc = -1;
	if (bw->in_blob)
		errf("'%s': closed in the middle of a blob", bw->name);
	else if (!bw->failed)
		rc = write_final_header(bw);
	if (bw->own && bw->f) {
		if (rc == 0)
			rc = sync_and_close(bw);
		else
			fclose(bw->f);
	}
	uint8_t d[32];
	sha256_final(bw->sha, d);
	if (rc == 0 && digest)
		memcpy(digest, d, sizeof d);
	free(bw->name);
	free(bw);
	return rc;
}

void blob_writer_abort(blob_writer *bw)
{
	if (!bw)
		return;
	if (bw->own && bw->f)
		fclose(bw->f);
	uint8_t d[32];
	sha256_final(bw->sha, d); /* the only way hash.h frees a context */
	free(bw->name);
	free(bw);
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

struct blob_reader {
	char *name;
	const uint8_t *data;
	size_t size;
	void *map;          /* mmap'ed file, or NULL for caller's memory */
	size_t map_size;
	blob_info *blobs;
	size_t cap;
	uint32_t count;
};

static int bad_file(const blob_reader *r, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* One line: "weight file 'x': <what>". */
static int bad_file(const blob_reader *r, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	return errf("weight file '%s': %s", r->name, buf);
}

/* Read and check the metadata record of blob i at `meta`; fill *b. */
static int parse_meta(const blob_reader *r, uint32_t i, uint64_t meta, blob_info *b)
{
	if (meta > r->size || r->size - meta < BLOB_META_SIZE)
		return bad_file(r, "blob %u: metadata at offset %" PRIu64 " runs past the end of the file (%zu bytes)",
				i, meta, r->size);
	const uint8_t *m = r->data + meta;
	uint32_t sentinel = get_le32(m);
	uint64_t data_off = get_le64(m + 16), padding = get_le64(m + 24);
	b->meta_offset = meta;
	b->dtype = (blob_dtype)get_le32(m + 4);
	b->nbytes = get_le64(m + 8);
	if (sentinel != BLOB_SENTINEL)
		return bad_file(r, "blob %u at offset %" PRIu64 ": bad sentinel 0x%08x (expected 0xdeadbeef)",
				i, meta, sentinel);
	if (data_off != meta + BLOB_META_SIZE)
		return bad_file(r, "blob %u at offset %" PRIu64 ": data offset %" PRIu64 ", expected %" PRIu64,
				i, meta, data_off, meta + BLOB_META_SIZE);
	if (b->nbytes > r->size - data_off)
		return bad_file(r, "blob %u at offset %" PRIu64 ": %" PRIu64 " bytes of data run past the end of the file (%zu bytes)",
				i, meta, b->nbytes, r->size);
	const char *why = shape_problem(b->dtype, b->nbytes, padding);
	if (why)
		return bad_file(r, "blob %u at offset %" PRIu64 " (type %u %s, %" PRIu64 " bytes, %" PRIu64 " padding bits): %s",
				i, meta, (unsigned)b->dtype, blob_type_name(b->dtype), b->nbytes, padding, why);
	b->data_offset = data_off;
	b->padding_bits = (unsigned)padding;
	b->n_elements = (b->nbytes * 8 - padding) / (uint64_t)blob_bits(b->dtype);
	return 0;
}

/* Walk the blobs as Core ML's GetAllOffsets does (format item 3). */
static int validate(blob_reader *r)
{
	if (r->size < BLOB_HEADER_SIZE)
		return bad_file(r, "truncated header (%zu bytes, need %d)", r->size, BLOB_HEADER_SIZE);
	uint32_t count = get_le32(r->data), version = get_le32(r->data + 4);
	if (version != BLOB_VERSION)
		return bad_file(r, "storage version %u, expected %d", version, BLOB_VERSION);
	uint64_t meta = BLOB_HEADER_SIZE, end = BLOB_HEADER_SIZE;
	for (uint32_t i = 0; i < count; i++) {
		blob_info b;
		if (parse_meta(r, i, meta, &b) != 0)
			return -1;
		GROW(r->blobs, r->cap, (size_t)i + 1);
		r->blobs[i] = b;
		r->count = i + 1;
		end = b.data_offset + b.nbytes;
		meta = align_up(end);
	}
	if (end != r->size)
		return bad_file(r, "%" PRIu64 " bytes after the end of the last of %u blobs at offset %" PRIu64
				" (header count wrong or file not finished)", (uint64_t)r->size - end, count, end);
	return 0;
}

int blob_reader_open_mem(const void *data, size_t n, const char *name, blob_reader **out)
{
	blob_reader *r = xcalloc(1, sizeof *r);
	r->name = xstrdup(name);
	r->data = data;
	r->size = n;
	if (validate(r) != 0) {
		blob_reader_close(r);
		return -1;
	}
	*out = r;
	return 0;
}

/* Map path read-only; *map is NULL for an empty file (mmap refuses size 0). */
static int map_file(const char *path, void **map, size_t *size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return errf("cannot open '%s':", path);
	struct stat st;
	int rc = 0;
	*map = NULL;
	*size = 0;
	if (fstat(fd, &st) != 0)
		rc = errf("cannot stat '%s':", path);
	else if (!S_ISREG(st.st_mode))
		rc = errf("'%s' is not a regular file", path);
	else if ((uint64_t)st.st_size > SIZE_MAX)
		rc = errf("'%s' is too large to map", path);
	else if ((*size = (size_t)st.st_size) > 0) {
		*map = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (*map == MAP_FAILED) {
			*map = NULL;
			rc = errf("cannot map '%s':", path);
		}
	}
	close(fd);
	return rc;
}

int blob_reader_open(const char *path, blob_reader **out)
{
	void *map = NULL;
	size_t size = 0;
	if (map_file(path, &map, &size) != 0)
		return -1;
	static const uint8_t empty[1];
	blob_reader *r;
	if (blob_reader_open_mem(map ? map : empty, map ? size : 0, path, &r) != 0) {
		if (map)
			munmap(map, size);
		return -1;
	}
	r->map = map;
	r->map_size = size;
	*out = r;
	return 0;
}

void blob_reader_close(blob_reader *r)
{
	if (!r)
		return;
	if (r->map)
		munmap(r->map, r->map_size);
	free(r->blobs);
	free(r->name);
	free(r);
}

const char *blob_reader_name(const blob_reader *r) { return r->name; }
uint32_t blob_reader_count(const blob_reader *r) { return r->count; }

const blob_info *blob_reader_info(const blob_reader *r, uint32_t i)
{
	ASSERT(i < r->count);
	return &r->blobs[i];
}

const void *blob_reader_data(const blob_reader *r, const blob_info *b)
{
	return r->data + b->data_offset;
}

const blob_info *blob_reader_find(const blob_reader *r, uint64_t meta_offset)
{
	/* Offsets increase with the index: binary search. */
	size_t lo = 0, hi = r->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->blobs[mid].meta_offset < meta_offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < r->count && r->blobs[lo].meta_offset == meta_offset)
		return &r->blobs[lo];
	errf("weight file '%s': no blob at offset %" PRIu64, r->name, meta_offset);
	return NULL;
}

int blob_reader_get(const blob_reader *r, uint64_t meta_offset, blob_dtype *dtype,
		    const void **data, size_t *nbytes, unsigned *padding_bits)
{
	const blob_info *b = blob_reader_find(r, meta_offset);
	if (!b)
		return -1;
	if (dtype)
		*dtype = b->dtype;
	if (data)
		*data = blob_reader_data(r, b);
	if (nbytes)
		*nbytes = (size_t)b->nbytes;
	if (padding_bits)
		*padding_bits = b->padding_bits;
	return 0;
}
