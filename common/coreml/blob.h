/* blob.h: weight.bin, Core ML's MIL blob storage (version 2): a streaming
 * writer, an mmap reader that validates hostile files, and sub-byte packing.
 *
 * Every weight of an ML Program lives in one weight.bin per package; the
 * model refers to a tensor by the offset of its metadata record. Files run
 * from kilobytes to many gigabytes, so the writer appends one tensor at a
 * time straight to disk (memory does not grow with the model) and the reader
 * maps the file instead of loading it.
 *
 * On-disk format (coreml-format.md section 4; all integers little-endian):
 *
 *  1. File header, 64 bytes at offset 0:
 *       0  u32  count     number of blobs in the file
 *       4  u32  version   always 2; anything else is rejected
 *       8  7 x u64        reserved, zero
 *  2. Blob i: a 64-byte metadata record at a 64-byte-aligned offset M_i,
 *     immediately followed by its data at M_i + 64:
 *       0  u32  sentinel  0xDEADBEEF
 *       4  u32  dtype     BlobDataType (blob_dtype in dtype.h, not MIL numbers)
 *       8  u64  sizeInBytes   data length; packed and rounded up to whole
 *                             bytes for sub-byte types
 *      16  u64  offset    absolute offset of the data, always M_i + 64
 *      24  u64  padding_size_in_bits  unused high bits of the last data
 *                             byte (sub-byte types only, else 0), < 8
 *      32  4 x u64        reserved, zero
 *  3. Placement: M_0 = 64 (data at 128); M_{i+1} is the end of blob i's data
 *     rounded up to a multiple of 64, the gap filled with zeros. The file ends
 *     right after the last blob's data: no trailing padding. The reader walks
 *     the blobs in exactly this way (Core ML's GetAllOffsets) and rejects a
 *     file whose walk does not end at end of file.
 *  4. Sub-byte types (uint1/2/3/4/6, int4) are a little-endian bit stream:
 *     element i occupies stream bits [i*n, i*n + n), least significant bit
 *     first, and stream bit k is bit (k mod 8) of byte k/8. So for 4 bits
 *     element 0 is the low nibble of byte 0; for 6 bits element 1 has its low
 *     2 bits in bits 6-7 of byte 0 and its high 4 bits in bits 0-3 of byte 1.
 *     int4 is two's complement. Element count = (size*8 - padding) / n.
 *  5. Byte-sized and wider types are raw little-endian element arrays (fp16
 *     and bf16 as raw halves); their size is a whole number of elements.
 *
 * What ends on disk when writing: the header is written at open with count 0
 * and the real count is written once, by blob_writer_close(). A writer that
 * never closed therefore leaves count 0 followed by blobs, which the reader
 * rejects (trailing bytes): an unfinished file can never pass for a good one.
 */
#ifndef ANEMAKE_BLOB_H
#define ANEMAKE_BLOB_H

#include "base/dtype.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BLOB_VERSION 2
#define BLOB_SENTINEL 0xDEADBEEFu
#define BLOB_ALIGN 64       /* alignment of every metadata record */
#define BLOB_HEADER_SIZE 64
#define BLOB_META_SIZE 64

/* ------------------------------------------------------------------ */
/* Sub-byte packing                                                    */

/* Bytes holding n elements of `bits` bits: ceil(n*bits/8), without overflow. */
size_t blob_packed_size(size_t n, int bits);
/* Unused bits in the last byte of n packed elements: (8 - n*bits mod 8) mod 8. */
unsigned blob_padding_bits(size_t n, int bits);

/* Pack n values (one per byte) of `bits` = 1, 2, 3, 4, 6 or 8 bits into
 * out[blob_packed_size(n, bits)], LSB-first (format item 4). Bits of a value
 * above `bits` are ignored, so int4 values (int8_t -8..7 cast to uint8_t) pack
 * as two's complement; padding bits come out zero. */
void blob_pack_bits(const uint8_t *vals, size_t n, int bits, uint8_t *out);
/* Inverse: n values of `bits` bits from packed[blob_packed_size(n, bits)]. */
void blob_unpack_bits(const uint8_t *packed, size_t n, int bits, uint8_t *vals);
/* As blob_unpack_bits(.., 4, ..) with sign extension, for int4. */
void blob_unpack_int4(const uint8_t *packed, size_t n, int8_t *vals);

/* Elements in a blob: for sub-byte types (nbytes*8 - padding)/bits, else
 * nbytes / element size. -1 with errf() when the numbers do not describe
 * whole elements (or the type is unknown). */
int blob_element_count(blob_dtype t, uint64_t nbytes, unsigned padding_bits, uint64_t *n);

/* ------------------------------------------------------------------ */
/* Writer                                                              */

typedef struct blob_writer blob_writer;

/* Create (truncate) path and write the header. NULL with errf() on failure. */
blob_writer *blob_writer_open(const char *path);
/* Write into an open, seekable stream starting at its current position (the
 * header is rewritten there at close). The stream stays the caller's: close
 * flushes it but neither fsyncs nor closes it. `name` is used in messages. */
blob_writer *blob_writer_open_file(FILE *f, const char *name);

/* Append one blob of nbytes bytes (already packed for sub-byte types, with
 * padding_bits unused bits in the last byte) and return its metadata offset,
 * the number the model stores in blobFileValue.offset. */
int blob_append(blob_writer *bw, blob_dtype t, const void *data, size_t nbytes,
		unsigned padding_bits, uint64_t *meta_offset);
/* Append n elements of a MIL type: byte-sized and wider types as raw
 * little-endian arrays, sub-byte types already packed (format item 4); size
 * and padding are computed from n. -1 if t cannot live in weight.bin. */
int blob_append_tensor(blob_writer *bw, mil_dtype t, const void *data, size_t n,
		       uint64_t *meta_offset);
/* As blob_append_tensor, but sub-byte types come unpacked, one value per byte
 * (int4 as int8_t -8..7); they are checked to fit, then packed in small
 * chunks while streaming. Nothing is written when a value is out of range. */
int blob_append_unpacked(blob_writer *bw, mil_dtype t, const void *vals, size_t n,
			 uint64_t *meta_offset);

/* Stream one blob in pieces (a tensor converted chunk by chunk):
 * blob_begin() writes the metadata, blob_write() calls must supply exactly
 * nbytes in total, blob_end() checks that they did. */
int blob_begin(blob_writer *bw, blob_dtype t, uint64_t nbytes, unsigned padding_bits,
	       uint64_t *meta_offset);
int blob_write(blob_writer *bw, const void *data, size_t n);
int blob_end(blob_writer *bw);

/* The same for a tensor given unpacked (blob_append_unpacked): blob_begin_unpacked
 * for n values of t, then blob_write_unpacked with pieces of a multiple of 8
 * values (the last one any), then blob_end. A value out of range fails the
 * write and the blob (blob_end returns -1). */
int blob_begin_unpacked(blob_writer *bw, mil_dtype t, size_t n, uint64_t *meta_offset);
int blob_write_unpacked(blob_writer *bw, mil_dtype t, const void *vals, size_t n);

uint32_t blob_writer_count(const blob_writer *bw);
/* Bytes written so far, which is the final file size once closed. */
uint64_t blob_writer_size(const blob_writer *bw);

/* Write the final count, flush and (for a file we opened) fsync and close.
 * Every write is checked: a full disk gives -1 and errf(), never a short file
 * reported as good. On success, digest (if not NULL) receives the SHA-256 of
 * everything after the 64-byte header, which determines the whole file.
 * Frees bw in every case. */
int blob_writer_close(blob_writer *bw, uint8_t digest[32]);
/* Stop without finishing; the partial file is left for the caller to remove
 * (it lives in a temporary directory). NULL is fine. */
void blob_writer_abort(blob_writer *bw);

/* ------------------------------------------------------------------ */
/* Reader                                                              */

typedef struct blob_info {
	uint64_t meta_offset;  /* offset of the metadata record: the model's key */
	uint64_t data_offset;  /* meta_offset + 64 */
	uint64_t nbytes;       /* sizeInBytes */
	uint64_t n_elements;   /* recovered from size, type and padding */
	blob_dtype dtype;
	unsigned padding_bits;
} blob_info;

typedef struct blob_reader blob_reader;

/* Map a weight.bin read-only and validate every blob (format items 1-5).
 * -1 with one errf() line naming the file and the offending offset. */
int blob_reader_open(const char *path, blob_reader **out);
/* The same over bytes in memory, which must outlive the reader (not copied).
 * `name` is used in messages. */
int blob_reader_open_mem(const void *data, size_t n, const char *name, blob_reader **out);
void blob_reader_close(blob_reader *r);

const char *blob_reader_name(const blob_reader *r);
uint32_t blob_reader_count(const blob_reader *r);
/* Blob i in file order, 0 <= i < count. */
const blob_info *blob_reader_info(const blob_reader *r, uint32_t i);
/* The blob whose metadata record is at meta_offset (the model's offset).
 * Any output pointer may be NULL. -1 with errf() when no blob starts there. */
int blob_reader_get(const blob_reader *r, uint64_t meta_offset, blob_dtype *dtype,
		    const void **data, size_t *nbytes, unsigned *padding_bits);
/* As blob_reader_get, returning the whole record; NULL with errf(). */
const blob_info *blob_reader_find(const blob_reader *r, uint64_t meta_offset);
/* Pointer to a blob's data (inside the mapping). */
const void *blob_reader_data(const blob_reader *r, const blob_info *b);

#endif
