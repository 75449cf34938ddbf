/* miltext.h: an ML Program as model.mil text, both ways (the program of a
 * compiled model, .mlmodelc/model.mil).
 *
 * The text is what Apple's compiler writes (../shared/reference/mlmodelc-real,
 * coremlc 3402 to 3600, program 1.0 and 1.3); every real file there parses
 * and prints back byte for byte (tests/unit/test_miltext.c). Grammar, with
 * the spacing printed (the reader accepts any blanks between tokens):
 *
 *   program(1.<minor>)
 *   [buildInfo = dict<string, string>({{"k", "v"}, ...})]     program attributes, sorted
 *   {
 *       func <name><ios18>(<type> <input>, ...) [<attr> = <value>, ...] {
 *               <type> <var>, ... = <op>(<param> = <arg>, ...)[<attr> = <value>, ...];
 *           } -> (<output>, ...);
 *       func ...                                               no blank line between functions
 *   }                                                          no newline after it (3402 writes one)
 *
 *  - functions sorted by name, an op's parameters and attributes sorted by
 *    name (all are proto maps); function attributes (FlexibleShapeInformation)
 *    only when the function has some; ops without outputs have no "... =",
 *    ops without attributes no brackets; several bindings of one parameter
 *    (concat's values) are parenthesized: (a, b). Nested blocks (cond,
 *    while) are refused both ways: no evidence of their text.
 *  - types: tensor<dt, [d, ?]>, state<T>, list<T, n|?>, tuple<A, B>,
 *    dict<K, V>; a rank-0 tensor is the bare dtype in program 1.3 and
 *    tensor<dt, []> in program 1.0 (the only difference between the two);
 *    dtypes fp16 fp32 fp64 bf16 int4/8/16/32/64 uint1/2/3/4/6/8/16/32/64 bool
 *    string fp8e4m3fn fp8e5m2.
 *  - values: typed where they stand alone, <type>(<literal>); inside a
 *    tuple/list/dict literal the elements are untyped (their type is the
 *    container's). Literals: a scalar element; tensors as nested brackets,
 *    one level per dimension ([[0, 1], [2, 3]]); tuples (a, b); lists [a, b];
 *    dicts {{k, v}, ...}; blobs BLOBFILE(path = string("<file>"),
 *    offset = uint64(N)). Floats are C99 hex floats (%a, exact: 0x1.5p-17),
 *    inf, -inf, nan; strings "..." with \" \\ \n \t and \ooo escapes.
 */
#ifndef ANEMAKE_MILTEXT_H
#define ANEMAKE_MILTEXT_H

#include <stddef.h>
#include <stdio.h>

#include "coreml/mil.h"

/* How a program is spelled, beyond the program itself. */
typedef struct mil_text_form {
	int minor;   /* program(1.<minor>): 0 spells scalar types tensor<dt, []>, else the bare dtype */
	int newline; /* a "\n" after the closing "}" (coremlc 3402) */
} mil_text_form;

/* The text of p in form (NULL: program 1.3, no final newline). -1 with one
 * errf() line for something the text cannot express, or a write error. */
int miltext_write(FILE *f, const mil_program *p, const mil_text_form *form);

/* Parse text[0..n) into a new program in arena a; its form in *form (may be
 * NULL). -1 with one errf() line "line L:C: expected ..." on bad input. */
int miltext_parse(mil_arena *a, const char *text, size_t n, mil_program **out, mil_text_form *form);

/* "ios18" for opset CoreML8 and so on; NULL when the opset has no text name. */
const char *miltext_opset_tag(const char *opset);

/* The text name of a dtype ("fp16" for MIL's float16, "bf16", "int32",
 * "dtype<N>" for an unknown number), in buf. */
#define MILTEXT_DTYPE_MAX 24
const char *miltext_dtype_name(int dt, char buf[MILTEXT_DTYPE_MAX]);

#endif
