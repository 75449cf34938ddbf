/* combine.h: merge functions of several .mlpackages into one multifunction
 * package with one deduplicated weight.bin.
 *
 * This is ANEMLL's combine step (anemll-interface.md 3.5, 5.1, 12) done the
 * way coremltools' save_multifunction does it (coreml-format.md 7), in one
 * general form: take N (package, source function, target function name)
 * triples and write one package whose
 *   - Program holds the N functions under their target names, opset CoreML8,
 *     program version and attributes (buildInfo) of the first source;
 *   - ModelDescription lists them in `functions` in the order given, each
 *     with its inputs, outputs and states; top-level inputs/outputs/states
 *     stay empty; defaultFunctionName is the first target;
 *   - specificationVersion is max(sources, 9);
 *   - metadata is ANEMLL's AddCombinedMetadata: shortDescription
 *     "Anemll Model: Multifunction <A>+<B>" from the "(A)" part of each
 *     source's description (sources without one, such as Gemma's rotate
 *     parts, add nothing; descriptions without any "(A)", as the monolithic
 *     and the split-rotate _rot sources have, give "Anemll Model:
 *     Multifunction Combined"; no description at all gives "Combined model
 *     with functions: <targets>"); versionString, author and license are the first
 *     non-empty ones; userDefined keeps the com.anemll.* keys and coremltools'
 *     source/source_dialect/version keys, first non-empty value per key
 *     (other keys, e.g. conversion_date, are dropped as AddMetadata does);
 *   - weight.bin stores every distinct blob once. Identity is the content:
 *     dtype, padding bits, size and every byte (found through a SHA-256 of
 *     those and a few samples of the bytes, confirmed with memcmp), never
 *     the name; every blobFileValue of every function is
 *     rewritten to the offset of its single copy. Blobs are streamed from the
 *     sources' mmapped weight.bin into the new one in the order coremltools
 *     lays them out: function by function, op by op, an op's parameters by
 *     name, then its attributes (for ANEMLL's tiny Llama reference this gives
 *     a weight.bin byte-identical to coremltools' own). Identical inputs give
 *     a byte-identical package.
 *
 * ANEMLL's chunked combine is N = 2 (FFN main -> infer, prefill main ->
 * prefill); Gemma 3 adds infer_rotate and prefill_rotate (or, split, a
 * second package of those two); the monolithic combine uses the same call
 * with its own package names (stages/combine.c).
 *
 * Every source function must declare the same states (name, dtype, shape) as
 * the first one, since one MLState serves all of them at run time. Any
 * problem is one errf() line and -1; the output package appears atomically
 * (mlpackage.h) or not at all. Memory: the N decoded models (programs are a
 * few MB) plus a 1 MiB copy window; blobs are never loaded whole.
 */
#ifndef ANEMAKE_COMBINE_H
#define ANEMAKE_COMBINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct combine_source {
	const char *package;  /* path of a .mlpackage */
	const char *function; /* function to take; NULL: the package's only
	                         function, else its default, else "main" */
	const char *target;   /* its name in the combined package */
} combine_source;

typedef struct combine_stats {
	uint64_t source_bytes;   /* sum of the distinct source packages' weight.bin sizes */
	uint64_t combined_bytes; /* size of the combined weight.bin */
	uint32_t blob_refs;      /* blob values rewritten */
	uint32_t blobs_written;  /* distinct blobs stored */
} combine_stats;

/* Write the package out_path (a ".mlpackage" directory, replaced atomically)
 * from src[0..n). stats may be NULL. -1 with one errf() line naming the
 * package or function at fault. */
int combine_packages(const char *out_path, const combine_source *src, size_t n, combine_stats *stats);

#endif
