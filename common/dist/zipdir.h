/* zipdir.h: a directory tree as a reproducible zip archive (libzip), checked.
 *
 * prepare_hf.sh ships each compiled model as `zip -r <name>.mlmodelc.zip
 * <name>.mlmodelc`, run from the conversion directory: entries are paths
 * under "<name>.mlmodelc/", directories included, and ANEMLL's runtimes and
 * the Chat app unzip it beside meta.yaml. We write the same entries, but so
 * that the same tree gives the same bytes on any machine, path and clock:
 *   - entries sorted by path (bytes, as strcmp), each directory as "dir/";
 *   - every timestamp the caller's (SOURCE_DATE_EPOCH or a fixed date), as
 *     an MS-DOS time in UTC (libzip converts with localtime(), so the
 *     process runs with TZ=UTC0 while writing), no extra fields;
 *   - Unix permissions fixed: 0644 files, 0755 directories;
 *   - per entry, deflate or store: weight.bin (fp16 or palettized weights,
 *     the bulk of every model) is stored: deflate keeps 94% of a palettized
 *     one and 77% of fp16 random-normal weights, at 9 MiB/s of CPU on the
 *     test VM, which would make zipping a 1 GB chunk the slowest step of the
 *     pipeline (README, "Distribution", has the measurements); every other
 *     file (model.mil, JSON, protobuf) is deflated at zlib's default level
 *     (the same zlib version gives the same bytes).
 * Only regular files and directories are accepted (a symlink or a device is
 * an error naming it). Memory is bounded: libzip streams each file.
 *
 * The archive is written under "<path>.tmp.<pid>" and reopened: every entry
 * is checked against the tree (name, kind, size) and read through, so libzip
 * compares its CRC-32; only then is it renamed to <path>. On any failure
 * nothing is left under either name and errf() holds one line.
 */
#ifndef ANEMAKE_ZIPDIR_H
#define ANEMAKE_ZIPDIR_H

#include <stdint.h>
#include <time.h>

/* Zip the tree at `dir` as entries "<basename(dir)>/..." into `path`
 * (replaced atomically), every entry dated `mtime` (clamped to the DOS
 * range 1980..2107). *bytes, when not NULL, gets the archive's size. */
int zipdir_write(const char *dir, const char *path, time_t mtime, uint64_t *bytes);

/* Check an existing archive against the tree, as zipdir_write does before
 * renaming: same entries in the same order, sizes, kinds, and every CRC-32
 * read back. 0, or -1 with errf() naming the archive and the entry. */
int zipdir_verify(const char *dir, const char *path);

/* Total bytes of the regular files under dir (the same walk: a symlink or
 * a device is an error). */
int zipdir_size(const char *dir, uint64_t *bytes);

/* The timestamp for archives: SOURCE_DATE_EPOCH when set (a decimal number
 * of seconds; anything else is an error), else 1980-01-01 00:00:00 UTC. */
int zipdir_epoch(time_t *out);

#endif
