#!/usr/bin/env python3
"""gen_unicode_tables.py: write common/tok_unicode.c, the Unicode data the
tokenizer needs, from Python's unicodedata module.

A developer tool, not part of the build: run it once when the Unicode version
should change and commit the result. The C project never needs Python.

    python3 tests/tools/gen_unicode_tables.py > common/tokenizer/tok_unicode.c

Tables (all sorted, searched by binary search):
  tok_ucat_table   ranges of the regex classes \\p{L} (letters, gc L*) and
                   \\p{N} (numbers, gc N*); everything else is "other"
  tok_ugc_table    ranges of the letter subclasses and marks the case-splitting
                   regexes (o200k, tekken) name: \\p{Lu} \\p{Ll} \\p{Lt} \\p{Lm}
                   \\p{Lo} \\p{M}
  tok_ccc_table    ranges of non-zero canonical combining class
  tok_decomp_table canonical decompositions cp -> a [b] (one level; the C code
                   recurses; Hangul syllables are algorithmic and left out)
  tok_comp_table   primary composites (a, b) -> cp, i.e. canonical pairs minus
                   the full composition exclusions, sorted by (a, b)
"""
import sys
import unicodedata

MAXCP = 0x110000


def is_surrogate(cp):
    return 0xD800 <= cp <= 0xDFFF


def ranges(valfn):
    """Collapse cp -> value (0 = absent) into (lo, hi, value) runs."""
    out = []
    for cp in range(MAXCP):
        v = 0 if is_surrogate(cp) else valfn(chr(cp))
        if v and out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        elif v:
            out.append([cp, cp, v])
    return out


def cat_class(ch):
    c = unicodedata.category(ch)
    return 1 if c[0] == 'L' else 2 if c[0] == 'N' else 0


GC = {'Lu': 1, 'Ll': 2, 'Lt': 3, 'Lm': 4, 'Lo': 5}


def gc_class(ch):
    c = unicodedata.category(ch)
    return GC.get(c, 6 if c[0] == 'M' else 0)


def canonical_decomp(cp):
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith('<'):
        return None
    return [int(x, 16) for x in d.split()]


def main():
    cats = ranges(cat_class)
    gcs = ranges(gc_class)
    cccs = ranges(unicodedata.combining)
    decomp, comp = [], []
    for cp in range(MAXCP):
        if is_surrogate(cp) or 0xAC00 <= cp <= 0xD7A3:
            continue
        d = canonical_decomp(cp)
        if d is None:
            continue
        assert 1 <= len(d) <= 2, hex(cp)
        decomp.append((cp, d[0], d[1] if len(d) == 2 else 0))
        # A primary composite survives NFC; excluded characters do not.
        if len(d) == 2 and unicodedata.normalize('NFC', chr(cp)) == chr(cp):
            comp.append((d[0], d[1], cp))
    comp.sort()
    # The C fast path treats text below U+0300 as already NFC: check that
    # nothing there combines or decomposes into something else.
    assert all(b >= 0x300 for _, b, _ in comp)
    assert all(lo >= 0x300 for lo, _, _ in cccs)
    for cp in range(0x300):
        assert unicodedata.normalize('NFC', chr(cp)) == chr(cp)

    w = sys.stdout.write
    w('/* tok_unicode.c: Unicode tables for the tokenizer (generated: do not edit).\n'
      ' *\n'
      ' * Written by tests/tools/gen_unicode_tables.py from Python %s unicodedata,\n'
      ' * Unicode %s. Letter/number classes drive the pre-tokenizer regexes\n'
      ' * (\\p{L}, \\p{N}); combining classes, canonical decompositions and primary\n'
      ' * composites drive NFC (Hangul is algorithmic, in tok_text.c). Regenerate with\n'
      ' *   python3 tests/tools/gen_unicode_tables.py > common/tokenizer/tok_unicode.c\n'
      ' */\n' % (sys.version.split()[0], unicodedata.unidata_version))
    w('#include "tokenizer/tok_internal.h"\n\n')
    w('const char tok_unicode_version[] = "%s";\n\n' % unicodedata.unidata_version)

    def table(name, typ, rows, comment):
        w('/* %s */\n' % comment)
        w('const %s %s[] = {\n' % (typ, name))
        line = '\t'
        for r in rows:
            item = '{0x%X, 0x%X, %d}, ' % tuple(r) if typ == 'tok_urange' else \
                '{0x%X, 0x%X, 0x%X}, ' % tuple(r)
            if len(line) + len(item) > 96:
                w(line.rstrip() + '\n')
                line = '\t'
            line += item
        w(line.rstrip() + '\n};\n')
        w('const size_t %s_len = sizeof %s / sizeof %s[0];\n\n' % (name, name, name))

    table('tok_ucat_table', 'tok_urange', cats, '{lo, hi, class}: 1 = letter (L*), 2 = number (N*)')
    table('tok_ugc_table', 'tok_urange', gcs,
          '{lo, hi, class}: 1 Lu, 2 Ll, 3 Lt, 4 Lm, 5 Lo, 6 mark (M*)')
    table('tok_ccc_table', 'tok_urange', cccs, '{lo, hi, ccc}: non-zero canonical combining classes')
    table('tok_decomp_table', 'tok_utriple', decomp,
          '{cp, a, b}: cp decomposes canonically to a b (b = 0: to a alone)')
    table('tok_comp_table', 'tok_utriple', comp, '{a, b, cp}: a b composes to cp (NFC), sorted by (a, b)')


if __name__ == '__main__':
    main()
