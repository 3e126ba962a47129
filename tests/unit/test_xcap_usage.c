/* XCAP application usages (RFC 4826 resource-lists and rls-services
 * validation, RFC 5025 pres-rules view) on in-memory documents. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "presence/pidf.h"
#include "presence/xcap_usage.h"

static int validate(const char *auid, const char *xml, char **err)
{
	xmlDocPtr d;
	char why[128];
	assert_int_equal(pidf_xml_parse(xml, strlen(xml), NULL, &d, why, sizeof why), 0);
	buf_t b;
	buf_init(&b, 0);
	int r = xcap_usage_validate(xcap_usage_find(auid), d, &b);
	xmlFreeDoc(d);
	buf_append(&b, "", 1);
	size_t n;
	*err = buf_steal(&b, &n);
	return r;
}

#define RLH "<resource-lists xmlns=\"" XCAP_RL_NS "\">"
#define RLSH "<rls-services xmlns=\"" XCAP_RLS_NS "\" xmlns:rl=\"" XCAP_RL_NS "\">"

static void expect(const char *auid, const char *xml, int status, const char *in_err)
{
	char *err;
	int r = validate(auid, xml, &err);
	if (r != status || (in_err && !strstr(err, in_err)))
		fail_msg("%s: got %d (%s), want %d %s", xml, r, err, status, in_err ? in_err : "");
	free(err);
}

static void test_resource_lists(void **state)
{
	(void)state;
	expect("resource-lists", RLH "<list name=\"a\"><display-name>A</display-name><entry uri=\"sip:b@c\"/>"
				     "<list name=\"n\"><entry uri=\"sip:b@c\"/></list><external anchor=\"http://x\"/>"
				     "<entry-ref ref=\"a/b\"/></list><list name=\"b\"/></resource-lists>", 0, NULL);
	expect("resource-lists", RLH "<list name=\"a\"/><list name=\"a\"/></resource-lists>", 409,
	       "<uniqueness-failure><exists field=\"list[@name=&quot;a&quot;]/@name\"/>");
	expect("resource-lists", RLH "<list><entry uri=\"sip:b@c\"/><entry uri=\"sip:b@c\"/></list></resource-lists>",
	       409, "uniqueness-failure");
	expect("resource-lists", RLH "<list><entry/></list></resource-lists>", 409, "entry without uri");
	expect("resource-lists", RLH "<list><entry uri=\"sip:x@y\"/><display-name>late</display-name></list></resource-lists>",
	       409, "schema-validation-error");
	expect("resource-lists", RLH "<entry uri=\"sip:x@y\"/></resource-lists>", 409, "schema-validation-error");
	expect("resource-lists", RLH "text</resource-lists>", 409, "schema-validation-error");
	expect("resource-lists", "<resource-lists xmlns=\"urn:other\"/>", 409, "schema-validation-error");
	/* Elements of other namespaces are extensions (##other). */
	expect("resource-lists", RLH "<list><x:y xmlns:x=\"urn:x\"/></list></resource-lists>", 0, NULL);
}

static void test_rls_services(void **state)
{
	(void)state;
	expect("rls-services", RLSH "<service uri=\"sip:l@x\"><resource-list>http://h/x</resource-list>"
				    "<packages><package>presence</package></packages></service>"
				    "<service uri=\"sip:m@x\"><list><rl:entry uri=\"sip:a@b\"/></list></service></rls-services>",
	       0, NULL);
	expect("rls-services", RLSH "<service uri=\"sip:l@x\"/></rls-services>", 409, "exactly one list");
	expect("rls-services", RLSH "<service uri=\"sip:l@x\"><resource-list>u</resource-list></service>"
				    "<service uri=\"sip:l@x\"><resource-list>v</resource-list></service></rls-services>",
	       409, "uniqueness-failure");
	expect("rls-services", RLSH "<service><resource-list>u</resource-list></service></rls-services>", 409,
	       "service without uri");
	expect("rls-services", RLSH "<service uri=\"sip:l@x\"><packages/><resource-list>u</resource-list></service></rls-services>",
	       409, "after packages");
}

static void test_pres_rules(void **state)
{
	(void)state;
	rule_t in[] = {{"example.org", EV_AUTH_PENDING}, {"sip:bob@example.test", EV_AUTH_BLOCK},
		       {"sip:carol@example.test", EV_AUTH_POLITE}};
	buf_t doc;
	buf_init(&doc, 0);
	xcap_presrules_doc(in, 3, &doc);
	xmlDocPtr d;
	char why[128];
	assert_int_equal(pidf_xml_parse(doc.data, doc.len, NULL, &d, why, sizeof why), 0);
	rule_t *out;
	size_t n;
	buf_t err;
	buf_init(&err, 0);
	assert_int_equal(xcap_presrules_parse(d, &out, &n, &err), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(out[i].watcher, in[i].watcher);
		assert_int_equal(out[i].action, in[i].action);
		free(out[i].watcher);
	}
	free(out);
	xmlFreeDoc(d);
	buf_free(&doc);
	buf_free(&err);

	/* The most permissive action wins for a watcher named twice; a rule
	 * without sub-handling blocks. */
	const char *two = "<cr:ruleset xmlns=\"" XCAP_PR_NS "\" xmlns:cr=\"" XCAP_CP_NS "\">"
			  "<cr:rule id=\"a\"><cr:conditions><cr:identity><cr:one id=\"sip:Bob@EXAMPLE.test\"/></cr:identity></cr:conditions>"
			  "<cr:actions><sub-handling>allow</sub-handling></cr:actions></cr:rule>"
			  "<cr:rule id=\"b\"><cr:conditions><cr:identity><cr:one id=\"sip:Bob@example.test\"/>"
			  "<cr:many domain=\"*@Other.test\"/></cr:identity></cr:conditions></cr:rule></cr:ruleset>";
	assert_int_equal(pidf_xml_parse(two, strlen(two), NULL, &d, why, sizeof why), 0);
	buf_init(&err, 0);
	assert_int_equal(xcap_presrules_parse(d, &out, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(out[0].watcher, "sip:Bob@example.test");
	assert_int_equal(out[0].action, EV_AUTH_ALLOW);
	assert_string_equal(out[1].watcher, "other.test");
	assert_int_equal(out[1].action, EV_AUTH_BLOCK);
	for (size_t i = 0; i < n; i++)
		free(out[i].watcher);
	free(out);
	xmlFreeDoc(d);
	buf_free(&err);

	static const char *const bad[] = {
		"<cr:ruleset xmlns:cr=\"" XCAP_CP_NS "\"><cr:rule id=\"a\"/></cr:ruleset>",
		"<cr:ruleset xmlns:cr=\"" XCAP_CP_NS "\"><cr:rule id=\"a\"><cr:conditions><cr:sphere value=\"w\"/></cr:conditions></cr:rule></cr:ruleset>",
		"<cr:ruleset xmlns:cr=\"" XCAP_CP_NS "\"><cr:rule id=\"a\"><cr:conditions><cr:identity><cr:many/></cr:identity></cr:conditions></cr:rule></cr:ruleset>",
		"<cr:ruleset xmlns:cr=\"" XCAP_CP_NS "\"><cr:rule id=\"a\"><cr:conditions><cr:identity><cr:many domain=\"x\"><cr:except id=\"sip:a@x\"/></cr:many></cr:identity></cr:conditions></cr:rule></cr:ruleset>",
		"<cr:ruleset xmlns:cr=\"" XCAP_CP_NS "\" xmlns=\"" XCAP_PR_NS "\"><cr:rule id=\"a\"><cr:conditions><cr:identity><cr:one id=\"sip:a@x\"/></cr:identity></cr:conditions><cr:actions><sub-handling>maybe</sub-handling></cr:actions></cr:rule></cr:ruleset>",
		"<cr:ruleset xmlns:cr=\"" XCAP_CP_NS "\"><cr:rule id=\"a\"><cr:conditions><cr:identity><cr:one id=\"sip:a@x\"/></cr:identity></cr:conditions></cr:rule>"
		"<cr:rule id=\"a\"><cr:conditions><cr:identity><cr:one id=\"sip:b@x\"/></cr:identity></cr:conditions></cr:rule></cr:ruleset>",
		"<ruleset xmlns=\"urn:other\"/>",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *e;
		if (validate("pres-rules", bad[i], &e) != 409)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(e, "<xcap-error"));
		free(e);
	}
}

static void test_caps(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 0);
	xcap_caps_doc(&b);
	xmlDocPtr d;
	char why[128];
	assert_int_equal(pidf_xml_parse(b.data, b.len, NULL, &d, why, sizeof why), 0);
	assert_true(pidf_node_is(xmlDocGetRootElement(d), XCAP_CAPS_NS, "xcap-caps"));
	assert_non_null(strstr(b.data, "<auid>pres-rules</auid>"));
	xmlFreeDoc(d);
	buf_free(&b);
	assert_null(xcap_usage_find("nope"));
	assert_true(xcap_usage_find("xcap-caps")->global_only);
}

int main(void)
{
	pidf_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resource_lists),
		cmocka_unit_test(test_rls_services),
		cmocka_unit_test(test_pres_rules),
		cmocka_unit_test(test_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
