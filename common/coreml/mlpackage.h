/* mlpackage.h: .mlpackage directories: build one atomically, open one
 * (ours or coremltools') and resolve its weight files.
 *
 * A package is a directory; Core ML finds everything through Manifest.json.
 * anemake writes exactly what coremltools writes (coreml-format.md section 1),
 * with one difference: item identifiers are derived from content instead of
 * being random, so the same model gives a byte-identical package.
 *
 * On-disk layout:
 *
 *  1. Foo.mlpackage/                  (the name must end in ".mlpackage")
 *       Manifest.json
 *       Data/com.apple.CoreML/model.mlmodel      CoreML.Specification.Model
 *                                                protobuf, stored as given
 *       Data/com.apple.CoreML/weights/weight.bin MIL blob storage (blob.h)
 *     coremltools always lists the weights item for an ML Program, but
 *     creates weight.bin lazily on the first blob, so a model without blob
 *     weights gets an empty weights/ directory (older versions wrote a
 *     header-only file). We always write weight.bin, header-only (64 bytes)
 *     when there are no blobs: it is valid storage and keeps the layout
 *     fixed. The reader accepts both.
 *  2. Manifest.json is a JSON object, UTF-8, with three keys:
 *       "fileFormatVersion"   "1.0.0" (readers accept "1.<minor>.<patch>")
 *       "itemInfoEntries"     object: identifier -> item; each item has the
 *                             four strings "author", "description", "name"
 *                             and "path" (relative to Data/, may name a
 *                             directory, never absolute, never "..")
 *       "rootModelIdentifier" the identifier of the model.mlmodel item
 *     The items coremltools (and we) write:
 *       model:   author "com.apple.CoreML", description "CoreML Model
 *                Specification", name "model.mlmodel",
 *                path "com.apple.CoreML/model.mlmodel"
 *       weights: author "com.apple.CoreML", description "CoreML Model
 *                Weights", name "weights", path "com.apple.CoreML/weights"
 *                (the directory, not the file inside it)
 *  3. Text form (nlohmann::json dump(4) plus a newline, as coremltools): 4-space
 *     indent, keys sorted bytewise at every level (items too, by identifier),
 *     `"key": value`, '\n' line ends, a final '\n'. 617 bytes in all.
 *  4. Identifiers are 36-character uppercase UUID strings. Ours are RFC 9562
 *     version-8 (name-based, SHA-256) UUIDs: the first 16 bytes of
 *     SHA-256("anemake.mlpackage\0" name "\0" content digest), with the version
 *     nibble 8 and variant bits 10. The model's digest is the SHA-256 of
 *     model.mlmodel; the weights' is blob_writer_close()'s digest of weight.bin.
 *  5. In the model, a blob is named by fileName "@model_path/<rel>", where
 *     @model_path is the directory holding model.mlmodel; coremltools uses
 *     "@model_path/weights/weight.bin".
 */
#ifndef ANEMAKE_MLPACKAGE_H
#define ANEMAKE_MLPACKAGE_H

#include "coreml/blob.h"

#include <stddef.h>
#include <stdint.h>

#define MLPACKAGE_WEIGHTS_REF "@model_path/weights/weight.bin"

/* ------------------------------------------------------------------ */
/* Manifest.json                                                       */

typedef struct mlpackage_item {
	char *id;           /* key in itemInfoEntries */
	char *path;         /* relative to Data/ */
	char *name;
	char *author;
	char *description;
} mlpackage_item;

typedef struct mlpackage_manifest {
	char *version;          /* fileFormatVersion */
	mlpackage_item *items;  /* in file order */
	size_t n_items;
	size_t root;            /* index of rootModelIdentifier in items */
} mlpackage_manifest;

/* Parse and check Manifest.json text (item 2), without touching the file
 * system. `what` starts every error message, e.g. "package 'x': Manifest.json".
 * On failure m is left empty (release is still fine). */
int mlpackage_manifest_parse(const char *text, size_t n, const char *what, mlpackage_manifest *m);
void mlpackage_manifest_release(mlpackage_manifest *m);
/* The manifest text of item 3 for our two items; caller frees. */
char *mlpackage_manifest_format(const char *model_id, const char *weights_id);
/* The identifier of item 4 for the item called `name` with content `digest`. */
void mlpackage_item_id(const char *name, const uint8_t digest[32], char id[37]);

/* ------------------------------------------------------------------ */
/* Writer                                                              */

/* Usage:
 *   mlpackage_writer w;
 *   if (mlpackage_begin(&w, "out/x.mlpackage") != 0) fail;
 *   blob_append_tensor(w.weights, ...);     (any number, while encoding)
 *   if (mlpackage_commit(&w, model_bytes, n) != 0) fail;
 * or mlpackage_abort(&w) to give up. The package is built in
 * "<final>.tmp.<pid>/", which exit and SIGINT/SIGTERM/SIGHUP remove
 * (fsutil.h); commit swaps it in, so the final name always holds the old
 * package or the new one, never a partial one. */
typedef struct mlpackage_writer {
	blob_writer *weights;   /* public: Data/com.apple.CoreML/weights/weight.bin */
	char *final_path;       /* private */
	char *tmp;              /* private: the temporary directory */
} mlpackage_writer;

int mlpackage_begin(mlpackage_writer *w, const char *final_path);
/* Store the encoded model, finish weight.bin, write Manifest.json and move the
 * package into place. The writer is finished whatever the result; on failure
 * the temporary directory is gone and the old package (if any) untouched. */
int mlpackage_commit(mlpackage_writer *w, const void *model, size_t n);
/* Drop the package being built. Safe after commit or a failed begin. */
void mlpackage_abort(mlpackage_writer *w);

/* ------------------------------------------------------------------ */
/* Reader                                                              */

typedef struct mlpackage {
	char *path;                    /* the package directory */
	mlpackage_manifest manifest;
	const mlpackage_item *root;    /* the model item */
	const mlpackage_item *weights_item; /* the item named "weights", or NULL */
	uint8_t *model;                /* root model bytes (NUL after the end) */
	size_t model_size;
	blob_reader *weights;          /* <weights item>/weight.bin, or NULL */
	struct mlpackage_blobfile *files; /* private: open weight files */
	size_t n_files, cap_files;
} mlpackage;

/* Open a package: parse and check the manifest, check every item exists under
 * Data/ without escaping it, read the root model and open the weights item's
 * weight.bin when there is one. -1 with one errf() line naming the package. */
int mlpackage_open(const char *path, mlpackage *pkg);
void mlpackage_close(mlpackage *pkg);
/* The weight file a blobFileValue names ("@model_path/weights/weight.bin"),
 * opened on first use and owned by pkg. NULL with errf() when it cannot be. */
blob_reader *mlpackage_blob_file(mlpackage *pkg, const char *file_name);

#endif
