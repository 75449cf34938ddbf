/* tok_norm.c: the normalizer chain of tokenizer.json (Prepend, Replace,
 * NFC), and the text helpers the decoders share with it. Below tokenizer.c
 * and tok_load.c, which both run it.
 */
#include "base/util.h"
#include "tokenizer/tok_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------
 * Normalizers */

/* Replace every occurrence of a (non-empty) in s by b, appending to out. */
void tok_replace_all(const char *s, size_t n, const char *a, size_t alen, const char *b,
			size_t blen, tok_buf *out)
{
	size_t i = 0, from = 0;

	while (i + alen <= n) {
		if (memcmp(s + i, a, alen) == 0) {
			tok_buf_add(out, s + from, i - from);
			tok_buf_add(out, b, blen);
			i += alen;
			from = i;
		} else {
			i++;
		}
	}
	tok_buf_add(out, s + from, n - from);
}

/* How much longer than its input a normalizer chain or a decoder chain may
 * make a text. Real ones add a prefix or turn " " into the 3 bytes of "▁";
 * chained Replace steps from a hostile file could grow it exponentially. */
size_t tok_growth_cap(size_t n) { return 16 * n + 4096; }

int tok_normalize(const tokenizer *t, const char *s, size_t n, tok_buf *out)
{
	tok_buf cur = {0}, next = {0};
	int rc = 0;

	tok_buf_add(&cur, s, n);
	for (size_t k = 0; k < t->n_norm && rc == 0; k++) {
		const tok_norm *nm = &t->norm[k];
		next.len = 0;
		switch (nm->type) {
		case TOK_NORM_PREPEND:
			if (cur.len) /* an empty piece stays empty */
				tok_buf_add(&next, nm->a, nm->alen);
			tok_buf_add(&next, cur.p, cur.len);
			break;
		case TOK_NORM_REPLACE:
			tok_replace_all(cur.p, cur.len, nm->a, nm->alen, nm->b, nm->blen, &next);
			break;
		case TOK_NORM_NFC:
			tok_nfc(cur.p, cur.len, &next);
			break;
		default:
			BUG("normalizer type %d", nm->type);
		}
		tok_buf t2 = cur;
		cur = next;
		next = t2;
		if (cur.len > tok_growth_cap(n))
			rc = errf("%s: the normalizers make a text of %zu bytes %zu bytes long", t->name, n,
				  cur.len);
	}
	if (rc == 0)
		tok_buf_add(out, cur.p, cur.len);
	tok_buf_release(&cur);
	tok_buf_release(&next);
	return rc;
}

