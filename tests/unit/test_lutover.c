/* test_lutover.c: LUT overrides (patterns, parsing, precedence, format)
 * and the calibration statistics file. */
#include "base/calstats.h"
#include "base/util.h"
#include "convert/lutover.h"
#include "test.h"

#include <unistd.h>

static void test_pattern_match(void)
{
	const char *n = "model.layers.12.mlp.down_proj.weight";
	CHECK(lut_pattern_match("layers.12", n));
	CHECK(lut_pattern_match("layers.10-13", n));
	CHECK(!lut_pattern_match("layers.0-1", n));
	CHECK(lut_pattern_match("layers.*.mlp.down_proj", n));
	CHECK(lut_pattern_match("down_proj", n));
	CHECK(lut_pattern_match("*_proj", n));
	CHECK(lut_pattern_match("mlp", n));
	CHECK(!lut_pattern_match("layers.1", n)); /* whole components, not prefixes */
	CHECK(!lut_pattern_match("down", n));
	CHECK(!lut_pattern_match("layers.12.self_attn", n));
	CHECK(!lut_pattern_match("weight.extra", n));
	CHECK(lut_pattern_match("model.layers.12.mlp.down_proj.weight", n));
	CHECK(lut_pattern_match("layers.a-b", "model.layers.a-b")); /* not a range: a literal */
	CHECK(!lut_pattern_match("layers.0-1", "model.layers.a.x"));
	CHECK(!lut_pattern_match("layers.0-1", "model.layers.0-1.x")); /* a range matches numbers only */
}

static void test_parse_and_precedence(void)
{
	lut_overrides o = {0};
	CHECK_EQ_INT(lut_overrides_parse(" layers.0-1=8 ; layers.*.mlp.down_proj = 6,4;layers.1=none;lm_head=4,t",
					 "LUT_OVERRIDE", &o), 0);
	CHECK_EQ_INT(o.n, 4);
	lut_override *v = lut_overrides_find(&o, "model.layers.0.mlp.down_proj.weight", NULL);
	CHECK(v && v->spec.bits == 6 && v->spec.group == 4); /* the last match wins */
	v = lut_overrides_find(&o, "model.layers.1.mlp.down_proj.weight", NULL);
	CHECK(v && v->spec.bits == 0);
	v = lut_overrides_find(&o, "model.layers.0.self_attn.q_proj.weight", NULL);
	CHECK(v && v->spec.bits == 8 && v->spec.group_default);
	CHECK(!lut_overrides_find(&o, "model.layers.2.self_attn.q_proj.weight", NULL));
	v = lut_overrides_find(&o, "model.embed_tokens.weight", "lm_head");
	CHECK(v && v->spec.bits == 4 && v->spec.group == 0);
	char *f = lut_overrides_format(&o);
	CHECK_STR(f, "layers.0-1=8;layers.*.mlp.down_proj=6,4;layers.1=none;lm_head=4,tensor");
	free(f);
	lut_overrides_release(&o);
}

static void test_parse_errors(void)
{
	static const struct {
		const char *s, *want;
	} bad[] = {
		{"layers.0", "'layers.0' is not PATTERN=SPEC"},
		{"layers.0=5", "'layers.0=5': bad LUT spec"},
		{"=4", "'=4': the pattern is empty"},
		{"layers..0=4", "'layers..0=4': the pattern has an empty component"},
		{"layers/0=4", "may hold only"},
		{"@/nonexistent/plan.txt", "'@/nonexistent/plan.txt'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		lut_overrides o = {0};
		CHECKF(lut_overrides_parse(bad[i].s, "LUT_OVERRIDE", &o) == -1, "'%s' accepted", bad[i].s);
		CHECKF(strstr(errmsg(), bad[i].want) && strstr(errmsg(), "LUT_OVERRIDE"), "'%s': %s", bad[i].s, errmsg());
		lut_overrides_release(&o);
	}
}

static void test_file_entries(void)
{
	char path[] = "/tmp/test_lutover_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char *text = "# a plan\nmodel.layers.0.mlp.up_proj.weight=3 # why\n\nlayers.2=8,4\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	char *arg = xasprintf("@%s;layers.2=6", path);
	lut_overrides o = {0};
	CHECK_EQ_INT(lut_overrides_parse(arg, "--lut-override", &o), 0);
	CHECK_EQ_INT(o.n, 3);
	lut_override *v = lut_overrides_find(&o, "model.layers.2.mlp.up_proj.weight", NULL);
	CHECK(v && v->spec.bits == 6);
	v = lut_overrides_find(&o, "model.layers.0.mlp.up_proj.weight", NULL);
	CHECK(v && v->spec.bits == 3);
	lut_overrides_release(&o);
	free(arg);
	unlink(path);
}

static void test_calstats_roundtrip(void)
{
	char path[] = "/tmp/test_calstats_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	calstats s = {0}, r;
	double a[3] = {1.5, 0, 1e-300}, b[2] = {2, 3};
	calstats_set(&s, "model.layers.0.mlp.down_proj.weight", 3, a);
	calstats_set(&s, CALSTATS_HEAD, 2, b);
	s.tokens = 77;
	CHECK_EQ_INT(calstats_write(path, &s), 0);
	CHECK_EQ_INT(calstats_read(path, &r), 0);
	CHECK(r.tokens == 77 && r.n == 2 && memcmp(r.digest, s.digest, 32) == 0);
	const double *v = calstats_find(&r, "model.layers.0.mlp.down_proj.weight", 3);
	CHECK(v && v[0] == 1.5 && v[1] == 0 && v[2] == 1e-300);
	CHECK(!calstats_find(&r, "model.layers.0.mlp.down_proj.weight", 4)); /* wrong length: none */
	CHECK(!calstats_find(&r, "model.layers.1.mlp.down_proj.weight", 3));
	calstats_release(&r);
	/* one flipped byte: refused, naming the file */
	FILE *f = fopen(path, "r+b");
	CHECK(f && fseek(f, 30, SEEK_SET) == 0 && fputc('x', f) != EOF && fclose(f) == 0);
	CHECK_EQ_INT(calstats_read(path, &r), -1);
	CHECK(strstr(errmsg(), path) != NULL);
	calstats_release(&s);
	unlink(path);
}

int main(void)
{
	RUN(test_pattern_match);
	RUN(test_parse_and_precedence);
	RUN(test_parse_errors);
	RUN(test_file_entries);
	RUN(test_calstats_roundtrip);
	return test_finish();
}
