/* metayaml.h: meta.yaml, the file through which ANEMLL's runtimes find a model.
 *
 * chat.py, the Swift CLI and the ANEMLL Chat app are given one path, the
 * meta.yaml of a converted model; everything else (part file names, LUT bits,
 * context length, batch size, LM-head split) comes from it. ANEMLL writes it
 * with f-strings (generate_meta_yaml.py) and prepare_hf.sh reads it back with
 * `grep key: | cut -d' ' -f N`, so the exact text matters, not only the YAML
 * it stands for. anemake writes the same text byte for byte (but for the
 * description and author, which say what converted it)
 * (anemll-interface.md 7.1; the meta.yaml files in ../shared/reference,
 * anemll-gemma3-tiny and anemll-llama-tiny-monolithic, are real ones).
 *
 * On-disk format (UTF-8, '\n' line ends, single spaces after every ':'):
 *
 *  1. A block mapping with one key, model_info, at column 0. Its keys are
 *     indented 2 spaces, in this order:
 *       name         anemll-<MODEL_NAME>-ctx<C>[-monolithic]
 *       version      0.3.5 (the ANEMLL release whose interface this is)
 *       description  a literal block (`|`), lines indented 4 spaces:
 *                    chunked:    <M> on the Apple Neural Engine, converted by
 *                                anemake <v>, Context length: <C>, Batch size:
 *                                <B>, Chunks: <N> (ANEMLL writes "Demonstarates
 *                                running <M> on Apple Neural Engine"; no runtime
 *                                reads the description)
 *                    monolithic: <M> on the Apple Neural Engine as one model,
 *                                converted by anemake <v>, Context length, Batch
 *                                size, Type: ...
 *       license MIT, author anemake (ANEMLL: Anemll; read by no runtime),
 *       framework Core ML, language Python
 *       architecture the source config's model_type (llama, qwen3, qwen2,
 *                    gemma3_text, ...)
 *       model_type   monolithic (monolithic schema only)
 *       parameters   a mapping, keys indented 4 spaces.
 *  2. parameters, chunked schema, in this order ([..]: only when set):
 *       context_length, batch_size     integers
 *       lut_embeddings, [lut_embeddings_per_channel], lut_ffn,
 *       [lut_ffn_per_channel], lut_lmhead, [lut_lmhead_per_channel]
 *                                      LUT bits (integer) or the word none;
 *                                      per_channel: the LUT group size (0:
 *                                      one LUT per tensor)
 *       num_chunks                     integer
 *       model_prefix                   file-name prefix
 *       embeddings, lm_head, ffn       part file names relative to the
 *                                      meta.yaml directory (.mlmodelc); ffn
 *                                      names chunk 1 ("_chunk_01ofNN"): the
 *                                      runtimes rewrite the number for the others
 *       [pf]                           split-rotate prefill file of chunk 1
 *       split_lm_head                  number of LM-head outputs
 *       [argmax_in_model]              true: outputs argmax_idx/argmax_val
 *       [vocab_size]                   integer
 *       [lm_head_chunk_sizes]          flow list: [a, b, ...]
 *       [split_rotate], [sliding_window], [update_mask_prefill],
 *       [prefill_dynamic_slice], [single_cache]
 *                                      booleans are written only as true
 *                                      (ANEMLL leaves false out), the window
 *                                      is an integer
 *  3. parameters, monolithic schema: context_length, batch_size, lut_bits,
 *     [lut_per_channel], [lut_embeddings, [lut_embeddings_per_channel]],
 *     [lut_lmhead, [lut_lmhead_per_channel]], model_prefix, monolithic_model,
 *     split_lm_head, [argmax_in_model], [vocab_size], [lm_head_chunk_sizes],
 *     [sliding_window], [update_mask_prefill], [prefill_dynamic_slice],
 *     [single_cache], functions (a block list, items indented 6 spaces).
 *  4. Optionally, after one empty line, the troubleshooting comment block:
 *       # =============================================================================
 *       # Conversion Parameters (for troubleshooting)
 *       # =============================================================================
 *       # Generated: <YYYY-MM-DD HH:MM:SS>      (only when known)
 *       #
 *       # <key>: <value>                        (one per entry, in order)
 *       # =============================================================================
 *     Entries come from ANEMLL's conversion info: booleans and numbers bare,
 *     strings as is unless YAML would misread them (empty, leading or
 *     trailing blank, a control character, a leading indicator such as '[',
 *     any of : # " ' \, or a word like true/null/yes): then double-quoted
 *     with \\ \" \n \r \t escaped (other control characters as \xNN, which
 *     ANEMLL would write raw and so break the file). The reader keeps each
 *     value's text verbatim.
 *
 * Strings in the YAML part are written plain when YAML reads them back as the
 * same string, else quoted (the emitter of libyaml decides what is legal; we
 * add quotes where a YAML 1.1 reader such as PyYAML would see a number, a
 * boolean or null). Any text writer here goes through libyaml's emitter; the
 * one hand-written piece is the functions list, whose items are checked to be
 * identifiers: libyaml cannot indent a block list under a key as ANEMLL does.
 *
 * Reading accepts ANEMLL's files and ours (any key order, unknown keys
 * ignored, comments anywhere) and refuses, with one errf() line naming the
 * file, the line and the key: invalid YAML, a root that is not a mapping,
 * model_info or parameters missing or not mappings, a key of the wrong type
 * (integers and booleans must be plain scalars), duplicate known keys, the
 * keys chat.py cannot do without (chunked: context_length, batch_size,
 * lut_embeddings, lut_ffn, lut_lmhead, num_chunks; monolithic:
 * context_length, batch_size), and LM-head sizes that contradict
 * split_lm_head or vocab_size.
 */
#ifndef ANEMAKE_METAYAML_H
#define ANEMAKE_METAYAML_H

#include <stddef.h>

#define META_ABSENT (-1)  /* an optional integer, boolean or LUT key not in the file */
#define META_LUT_NONE 0   /* lut_*: none */

typedef struct meta_comment {
	char *key;   /* an identifier: [A-Za-z0-9_]+ */
	char *text;  /* the value as written after "key: " (quoted when it had to be) */
} meta_comment;

typedef struct metayaml {
	/* model_info (strings: NULL when absent) */
	char *name, *version, *description, *license, *author, *framework, *language, *architecture;
	char *model_type;                /* "monolithic", or NULL for the chunked schema */

	/* model_info.parameters: integers are >= 0 or META_ABSENT; LUT keys are
	 * bits, META_LUT_NONE or META_ABSENT; booleans 1, 0 or META_ABSENT. */
	int context_length, batch_size;
	int lut_embeddings, lut_embeddings_per_channel;
	int lut_ffn, lut_ffn_per_channel;
	int lut_lmhead, lut_lmhead_per_channel;
	int lut_bits, lut_per_channel;   /* monolithic */
	int num_chunks;
	char *model_prefix;
	char *embeddings, *lm_head, *ffn, *pf;
	char *monolithic_model;
	int split_lm_head;
	int argmax_in_model;
	int vocab_size;
	int *lm_head_chunk_sizes;        /* NULL when absent */
	size_t n_lm_head_chunk_sizes;
	int split_rotate, sliding_window, update_mask_prefill, prefill_dynamic_slice, single_cache;
	char **functions;                /* monolithic; NULL when absent */
	size_t n_functions;

	/* The troubleshooting comment block (written when either is set). */
	char *generated;                 /* timestamp, or NULL */
	meta_comment *comments;
	size_t n_comments, comments_cap;
} metayaml;

/* Every field absent (NULL, META_ABSENT). */
void metayaml_init(metayaml *m);
/* Free what m owns and init it again; NULL-tolerant, idempotent. */
void metayaml_release(metayaml *m);
/* 1 when a and b hold the same values. */
int metayaml_equal(const metayaml *a, const metayaml *b);
int metayaml_is_monolithic(const metayaml *m);

/* Fill name, version, description, license, author, framework, language as
 * ANEMLL does for a model called model_name, from m's context_length,
 * batch_size, num_chunks and model_type (set those first). */
void metayaml_set_info(metayaml *m, const char *model_name);
/* Replace a string field (s copied; NULL clears). */
void metayaml_set_str(char **dst, const char *s);
/* Append one comment entry: a string, quoted by ANEMLL's rule when needed. */
void metayaml_add_comment(metayaml *m, const char *key, const char *value);
/* Append one comment entry written as is: numbers, true/false (ANEMLL
 * writes JSON booleans bare but quotes the string "true"). */
void metayaml_add_comment_literal(metayaml *m, const char *key, const char *text);
/* The text of comment `key` (first one), or NULL. */
const char *metayaml_comment(const metayaml *m, const char *key);
/* Set lm_head_chunk_sizes to a copy of sizes[0..n). */
void metayaml_set_chunk_sizes(metayaml *m, const int *sizes, size_t n);
/* Append one name to functions. */
void metayaml_add_function(metayaml *m, const char *name);

/* The exact text of m (caller frees *text). -1 with errf() when m cannot be
 * written as ANEMLL's layout: a required key missing, a negative number, a
 * function or comment key that is not an identifier, a newline in a comment
 * timestamp or a control character other than tab in a comment. */
int metayaml_format(const metayaml *m, char **text, size_t *len);
/* metayaml_format, then write `path` atomically (old file kept on failure). */
int metayaml_write(const char *path, const metayaml *m);

/* Parse meta.yaml text (text[len] need not be NUL); `label` names it in
 * messages (e.g. the path). On failure m is left empty (init) and errf()
 * holds one line. */
int metayaml_parse(const char *text, size_t len, const char *label, metayaml *m);
/* Read and parse a file; messages name the path. */
int metayaml_read(const char *path, metayaml *m);

/* Finding parts the way the runtimes do. */

/* Directory holding meta.yaml ("." for a bare file name); caller frees. */
char *metayaml_dir(const char *meta_path);
/* The file name of chunk `chunk` (1-based) from the name of chunk 1: the
 * digits after "_chunk_" (followed by "of") are rewritten, as chat.py and
 * the Swift runtime do. NULL with errf() when name has no "_chunk_NNof". */
char *metayaml_chunk_name(const char *name, int chunk);
/* Path of a part named `name` in dir. ext NULL: the first that exists of
 * name as given, <base>.mlmodelc, <base>.mlpackage (chat.py's order; base =
 * name without either extension); ext ".mlpackage" or ".mlmodelc": only
 * <base><ext>. NULL with errf() naming what was tried. Caller frees. */
char *metayaml_part_path(const char *dir, const char *name, const char *ext);

#endif
