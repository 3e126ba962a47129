/* XCAP URIs, node selectors and the element/attribute engine (RFC 4825
 * §6-§8) on in-memory documents. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "presence/pidf.h"
#include "presence/xcap_path.h"

#define RL "urn:ietf:params:xml:ns:resource-lists"

static const char *DOC =
	"<?xml version=\"1.0\"?>\n"
	"<resource-lists xmlns=\"" RL "\" xmlns:x=\"urn:example:x\">"
	"<list name=\"friends\"><display-name>Friends</display-name>"
	"<entry uri=\"sip:bob@example.test\"><display-name>Bob</display-name></entry>"
	"<entry uri=\"sip:carol@example.test\" x:tag=\"t1\"/>"
	"</list>"
	"<list name=\"work\"/>"
	"</resource-lists>";

static xmlDocPtr parse(const char *s)
{
	xmlDocPtr d;
	char why[128];
	assert_int_equal(pidf_xml_parse(s, strlen(s), NULL, &d, why, sizeof why), 0);
	return d;
}

static void sel(const char *s, const char *q, xcap_selector_t *out)
{
	char why[128] = "";
	int rc = xcap_selector_parse(s, q, RL, out, why, sizeof why);
	if (rc)
		fail_msg("selector %s: %s", s, why);
}

static char *get(xmlDocPtr d, const char *s, const char *q)
{
	xcap_selector_t x;
	sel(s, q, &x);
	char *out = NULL;
	size_t n;
	return xcap_get(d, &x, &out, &n) == XCAP_OK ? out : NULL;
}

static void test_uri(void **state)
{
	(void)state;
	xcap_uri_t u;
	char why[128];
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/sip:Alice@Example.TEST/index",
					&u, why, sizeof why), 0);
	assert_string_equal(u.auid, "resource-lists");
	assert_string_equal(u.owner, "Alice@example.test");
	assert_string_equal(u.domain, "example.test");
	assert_string_equal(u.doc, "index");
	assert_false(u.has_node);
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/sip:a@b/index/~~/resource-lists/list[@name=\"x/y\"]",
					&u, why, sizeof why), 0);
	assert_true(u.has_node);
	assert_string_equal(u.node, "resource-lists/list[@name=\"x/y\"]");
	assert_int_equal(xcap_uri_parse("/xcap-root/xcap-caps/global/index", &u, why, sizeof why), 0);
	assert_true(u.global);
	assert_int_equal(xcap_uri_parse("/other/x", &u, why, sizeof why), -ENOENT);
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/sip:a@b", &u, why, sizeof why), -ENOENT);
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/sip:a@b/dir/index", &u, why, sizeof why), -ENOENT);
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/tel:123/index", &u, why, sizeof why), -EINVAL);
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/sip:nobody/index", &u, why, sizeof why), -EINVAL);
	assert_int_equal(xcap_uri_parse("/xcap-root/resource-lists/users/sip:a@b/index/~~/", &u, why, sizeof why), -EINVAL);
}

static void test_selector_syntax(void **state)
{
	(void)state;
	xcap_selector_t x;
	char why[128];
	sel("resource-lists/list[@name=\"friends\"]/entry[2]/@uri", NULL, &x);
	assert_int_equal(x.n, 3);
	assert_string_equal(x.steps[1].attr_value, "friends");
	assert_int_equal(x.steps[2].pos, 2);
	assert_int_equal(x.kind, XSEL_ATTRIBUTE);
	assert_string_equal(x.attr_local, "uri");
	assert_string_equal(x.attr_ns, "");
	sel("p:resource-lists/*[1][@name='w']", "xmlns(p=" RL ")xmlns(q=urn:q)", &x);
	assert_string_equal(x.steps[0].ns, RL);
	assert_true(x.steps[1].any);
	assert_int_equal(x.steps[1].pos, 1);
	sel("resource-lists/namespace::*", NULL, &x);
	assert_int_equal(x.kind, XSEL_NAMESPACES);
	static const char *const bad[] = {
		"", "/resource-lists", "resource-lists/", "resource-lists/list[0]",
		"resource-lists/list[@name=friends]", "resource-lists/list[@name=\"x]",
		"p:resource-lists", "resource-lists/@a/b", "resource-lists/list[1", "1abc",
		"resource-lists//list", "@uri", "resource-lists/list[@name=\"a&b\"]",
		"resource-lists/list[999999999]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (xcap_selector_parse(bad[i], NULL, RL, &x, why, sizeof why) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	}
	assert_int_equal(xcap_selector_parse("resource-lists", "garbage", RL, &x, why, sizeof why), -EINVAL);
	char deep[2000] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, i ? "/a" : "a");
	assert_int_equal(xcap_selector_parse(deep, NULL, RL, &x, why, sizeof why), -EINVAL);
}

static void test_get(void **state)
{
	(void)state;
	xmlDocPtr d = parse(DOC);
	char *s = get(d, "resource-lists/list[@name=\"friends\"]/entry[1]/display-name", NULL);
	assert_string_equal(s, "<display-name>Bob</display-name>");
	free(s);
	s = get(d, "resource-lists/list/entry[2]/@uri", NULL);
	assert_null(s); /* two lists: list selects nothing */
	s = get(d, "resource-lists/list[1]/entry[2]/@uri", NULL);
	assert_string_equal(s, "sip:carol@example.test");
	free(s);
	s = get(d, "resource-lists/list[1]/entry[2]/@y:tag", "xmlns(y=urn:example:x)");
	assert_string_equal(s, "t1");
	free(s);
	s = get(d, "resource-lists/*[2]", NULL);
	assert_string_equal(s, "<list name=\"work\"/>");
	free(s);
	assert_null(get(d, "resource-lists/list[@name=\"none\"]", NULL));
	/* Names are namespace-qualified: the wrong namespace selects nothing. */
	assert_null(get(d, "p:resource-lists", "xmlns(p=urn:other)"));
	s = get(d, "resource-lists/namespace::*", NULL);
	assert_non_null(strstr(s, "xmlns:x=\"urn:example:x\""));
	free(s);
	xmlFreeDoc(d);
}

static xcap_result_t put(xmlDocPtr d, const char *s, const char *body, bool *created)
{
	xcap_selector_t x;
	sel(s, NULL, &x);
	return xcap_put(d, &x, body, strlen(body), created);
}

static xcap_result_t del(xmlDocPtr d, const char *s)
{
	xcap_selector_t x;
	sel(s, NULL, &x);
	return xcap_delete(d, &x);
}

static void test_put_element(void **state)
{
	(void)state;
	xmlDocPtr d = parse(DOC);
	bool created;
	const char *e = "resource-lists/list[@name=\"work\"]/entry[@uri=\"sip:dan@example.test\"]";
	assert_int_equal(put(d, e, "<entry uri=\"sip:dan@example.test\"/>", &created), XCAP_OK);
	assert_true(created);
	char *s = get(d, e, NULL);
	/* Declarations the document already makes are not repeated. */
	assert_string_equal(s, "<entry uri=\"sip:dan@example.test\"/>");
	free(s);
	/* The fragment is in the document's default namespace. */
	xcap_selector_t x;
	sel(e, NULL, &x);
	xmlNodePtr n = xcap_select(d, &x, x.n);
	assert_string_equal((const char *)n->ns->href, RL);
	/* Replace (200): same selector, new content. */
	assert_int_equal(put(d, e, "<?xml version=\"1.0\"?><entry uri=\"sip:dan@example.test\"><display-name>Dan</display-name></entry>", &created), XCAP_OK);
	assert_false(created);
	/* Not idempotent: the body's uri differs from the predicate. */
	assert_int_equal(put(d, e, "<entry uri=\"sip:eve@example.test\"/>", &created), XCAP_CANNOT_INSERT);
	s = get(d, e, NULL);
	assert_non_null(strstr(s, "Dan"));
	free(s);
	/* Name mismatch also fails the check. */
	assert_int_equal(put(d, "resource-lists/list[@name=\"work\"]/entry[5]", "<list/>", &created), XCAP_CANNOT_INSERT);
	/* Position: entry[1] of friends inserted before the current first. */
	assert_int_equal(put(d, "resource-lists/list[1]/entry[1]", "<entry uri=\"sip:first@example.test\"/>", &created), XCAP_OK);
	assert_false(created); /* replaced the existing first entry */
	/* No parent. */
	assert_int_equal(put(d, "resource-lists/list[@name=\"none\"]/entry", "<entry uri=\"sip:x@y\"/>", &created), XCAP_NOT_FOUND);
	/* Bodies that are not one element. */
	assert_int_equal(put(d, "resource-lists/list[2]/entry[9]", "<entry/><entry/>", &created), XCAP_NOT_XML_FRAG);
	assert_int_equal(put(d, "resource-lists/list[2]/entry[9]", "text", &created), XCAP_NOT_XML_FRAG);
	assert_int_equal(put(d, "resource-lists/list[2]/entry[9]", "<entry>", &created), XCAP_NOT_WELL_FORMED);
	assert_int_equal(put(d, "resource-lists/list[2]/entry[9]",
			     "<!DOCTYPE a [<!ENTITY e 'x'>]><entry/>", &created), XCAP_NOT_WELL_FORMED);
	xmlFreeDoc(d);
}

static void test_put_attribute(void **state)
{
	(void)state;
	xmlDocPtr d = parse(DOC);
	bool created;
	assert_int_equal(put(d, "resource-lists/list[@name=\"work\"]/@x", "a &amp; b &#x41;", &created), XCAP_OK);
	assert_true(created);
	char *s = get(d, "resource-lists/list[@name=\"work\"]/@x", NULL);
	assert_string_equal(s, "a &amp; b A");
	free(s);
	/* Renaming the list through its own predicate is not idempotent. */
	assert_int_equal(put(d, "resource-lists/list[@name=\"work\"]/@name", "job", &created), XCAP_CANNOT_INSERT);
	assert_non_null(s = get(d, "resource-lists/list[@name=\"work\"]", NULL));
	free(s);
	assert_int_equal(put(d, "resource-lists/list[2]/@name", "job", &created), XCAP_OK);
	assert_false(created);
	assert_int_equal(put(d, "resource-lists/list[2]/@name", "a<b", &created), XCAP_NOT_XML_ATT);
	assert_int_equal(put(d, "resource-lists/list[2]/@name", "a&b", &created), XCAP_NOT_XML_ATT);
	assert_int_equal(put(d, "resource-lists/list[7]/@name", "x", &created), XCAP_NOT_FOUND);
	xmlFreeDoc(d);
}

static void test_delete(void **state)
{
	(void)state;
	xmlDocPtr d = parse(DOC);
	/* entry[1] of two: afterwards entry[1] would select the other one. */
	assert_int_equal(del(d, "resource-lists/list[1]/entry[1]"), XCAP_CANNOT_DELETE);
	assert_int_equal(del(d, "resource-lists/list[1]/entry[@uri=\"sip:bob@example.test\"]"), XCAP_OK);
	assert_null(get(d, "resource-lists/list[1]/entry[@uri=\"sip:bob@example.test\"]", NULL));
	char *s = get(d, "resource-lists/list[1]/entry/@uri", NULL);
	assert_string_equal(s, "sip:carol@example.test");
	free(s);
	assert_int_equal(del(d, "resource-lists/list[1]/entry/@uri"), XCAP_OK);
	assert_int_equal(del(d, "resource-lists/list[1]/entry/@uri"), XCAP_NOT_FOUND);
	assert_int_equal(del(d, "resource-lists/list[9]"), XCAP_NOT_FOUND);
	assert_int_equal(del(d, "resource-lists"), XCAP_CANNOT_DELETE);
	xmlFreeDoc(d);
}

int main(void)
{
	pidf_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri),          cmocka_unit_test(test_selector_syntax),
		cmocka_unit_test(test_get),          cmocka_unit_test(test_put_element),
		cmocka_unit_test(test_put_attribute), cmocka_unit_test(test_delete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
