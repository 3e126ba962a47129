/* Unit tests of buddy lists as RFC 4826 documents (presence/buddylist.c):
 * rls-services parsing, resource-list references, list resolution with
 * nesting and duplicates, and the edits simplectl makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presence/buddylist.h"
#include "presence/pidf.h"

static const char RL_DOC[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<rl:resource-lists xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n"
	" <rl:list name=\"friends\">\n"
	"  <rl:entry uri=\"sip:bob@example.test\"><rl:display-name>Bob</rl:display-name></rl:entry>\n"
	"  <rl:list name=\"inner\">\n"
	"   <rl:entry uri=\"sip:carol@example.test\"/>\n"
	"   <rl:entry uri=\"sip:bob@example.test\"/>\n"
	"  </rl:list>\n"
	"  <rl:external anchor=\"http://x/xcap-root/resource-lists/users/sip:z@x/index\"/>\n"
	" </rl:list>\n"
	" <rl:list name=\"work\"><rl:entry uri=\"sip:dave@example.test\"/></rl:list>\n"
	"</rl:resource-lists>\n";

static void ref_parse_forms(void **state)
{
	(void)state;
	rl_ref_t r;
	assert_int_equal(rl_ref_parse("http://xcap.example.test/xcap-root/resource-lists/users/"
				      "sip:Alice@Example.TEST/index/~~/resource-lists/"
				      "list%5b@name=%22friends%22%5d/list%5B2%5D",
				      &r),
			 0);
	assert_string_equal(r.owner, "Alice@example.test");
	assert_string_equal(r.doc, "index");
	assert_int_equal(r.depth, 2);
	assert_string_equal(r.name[0], "friends");
	assert_int_equal(r.pos[0], 0);
	assert_int_equal(r.pos[1], 2);
	assert_int_equal(rl_ref_parse("/xcap-root/resource-lists/users/sip:a@b/index", &r), 0);
	assert_int_equal(r.depth, 0);
	assert_int_equal(rl_ref_parse("/xcap-root/resource-lists/users/sip:a@b/index/~~/rl:resource-lists/"
				      "rl:list[@name='x y']",
				      &r),
			 0);
	assert_string_equal(r.name[0], "x y");
	/* Not a resource-lists reference, or a selector beyond lists. */
	assert_int_equal(rl_ref_parse("/xcap-root/pres-rules/users/sip:a@b/index", &r), -EINVAL);
	assert_int_equal(rl_ref_parse("/xcap-root/resource-lists/users/sip:a@b/index/~~/"
				      "resource-lists/list/entry",
				      &r),
			 -EINVAL);
	assert_int_equal(rl_ref_parse("/xcap-root/resource-lists/users/nobody/index", &r), -EINVAL);
	assert_int_equal(rl_ref_parse("/xcap-root/resource-lists/users/sip:a@b/in%00dex", &r), -EINVAL);
}

static void list_entries_flatten_and_dedupe(void **state)
{
	(void)state;
	rl_ref_t r;
	memset(&r, 0, sizeof r);
	r.depth = 1;
	strcpy(r.name[0], "friends");
	rl_entry_t *v;
	size_t n;
	assert_int_equal(rl_list_entries(RL_DOC, strlen(RL_DOC), &r, &v, &n), 0);
	assert_int_equal(n, 2); /* bob once, carol; the external list is not followed */
	assert_string_equal(v[0].uri, "sip:bob@example.test");
	assert_string_equal(v[0].name, "Bob");
	assert_string_equal(v[1].uri, "sip:carol@example.test");
	assert_null(v[1].name);
	rl_entries_free(v, n);
	strcpy(r.name[0], "nope");
	assert_int_equal(rl_list_entries(RL_DOC, strlen(RL_DOC), &r, &v, &n), -ENOENT);
	r.depth = 0; /* the whole document */
	assert_int_equal(rl_list_entries(RL_DOC, strlen(RL_DOC), &r, &v, &n), 0);
	assert_int_equal(n, 3);
	rl_entries_free(v, n);
	char name[64];
	assert_int_equal(rl_list_name(RL_DOC, strlen(RL_DOC), 2, name, sizeof name), 0);
	assert_string_equal(name, "work");
	assert_int_equal(rl_list_name(RL_DOC, strlen(RL_DOC), 3, name, sizeof name), -ENOENT);
}

static void services_parse(void **state)
{
	(void)state;
	static const char doc[] =
		"<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"\n"
		"   xmlns:rl=\"urn:ietf:params:xml:ns:resource-lists\">\n"
		" <service uri=\"sip:alice-friends@example.test\">\n"
		"  <resource-list> http://h/xcap-root/resource-lists/users/sip:alice@example.test/index"
		"/~~/resource-lists/list%5B@name=%22friends%22%5D </resource-list>\n"
		"  <packages><package>presence</package></packages>\n"
		" </service>\n"
		" <service uri=\"sip:alice-inline@example.test\">\n"
		"  <rl:list><rl:entry uri=\"sip:x@example.test\"/><rl:entry uri=\"sip:y@example.test\"/></rl:list>\n"
		" </service>\n"
		" <service uri=\"sip:alice-dialog@example.test\">\n"
		"  <rl:list/><packages><package>dialog</package></packages>\n"
		" </service>\n"
		"</rls-services>\n";
	rl_service_t *v;
	size_t n;
	char why[128];
	assert_int_equal(rls_services_parse(doc, strlen(doc), &v, &n, why, sizeof why), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].uri, "sip:alice-friends@example.test");
	assert_non_null(v[0].list_ref);
	assert_true(strncmp(v[0].list_ref, "http://h/", 9) == 0); /* trimmed */
	assert_true(v[0].presence);
	assert_null(v[1].list_ref);
	assert_int_equal(v[1].n, 2);
	assert_true(v[1].presence); /* no packages: any */
	assert_false(v[2].presence);
	rl_services_free(v, n);
	static const char bad[] = "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\"/>";
	assert_int_equal(rls_services_parse(bad, strlen(bad), &v, &n, why, sizeof why), -EINVAL);
	static const char noattr[] =
		"<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"><service/></rls-services>";
	assert_int_equal(rls_services_parse(noattr, strlen(noattr), &v, &n, why, sizeof why), -EINVAL);
	static const char xxe[] = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
				  "<rls-services xmlns=\"urn:ietf:params:xml:ns:rls-services\"/>";
	assert_int_equal(rls_services_parse(xxe, strlen(xxe), &v, &n, why, sizeof why), -EINVAL);
}

static void edits_round_trip(void **state)
{
	(void)state;
	buf_t a, b, c, ref, s1, s2;
	buf_init(&a, 0);
	buf_init(&b, 0);
	buf_init(&c, 0);
	buf_init(&ref, 0);
	buf_init(&s1, 0);
	buf_init(&s2, 0);
	assert_int_equal(rl_doc_add_entry(NULL, 0, "friends", "sip:bob@example.test", "Bob <&>", &a), 0);
	assert_int_equal(rl_doc_add_entry(a.data, a.len, "friends", "sip:carol@example.test", NULL, &b), 0);
	buf_t dup;
	buf_init(&dup, 0);
	assert_int_equal(rl_doc_add_entry(b.data, b.len, "friends", "sip:bob@example.test", NULL, &dup),
			 -EEXIST);
	buf_free(&dup);
	/* Edits keep what they do not touch: an existing prefixed document. */
	buf_t e;
	buf_init(&e, 0);
	assert_int_equal(rl_doc_add_entry(RL_DOC, strlen(RL_DOC), "work", "sip:erin@example.test", "Erin", &e), 0);
	assert_non_null(strstr(buf_cstr(&e), "rl:external"));
	assert_non_null(strstr(buf_cstr(&e), "sip:erin@example.test"));
	buf_free(&e);

	rl_ref_t r;
	assert_int_equal(rl_list_ref("http://127.0.0.1:8080/xcap-root", "alice@example.test", "friends", &ref), 0);
	assert_int_equal(rl_ref_parse(buf_cstr(&ref), &r), 0);
	assert_string_equal(r.owner, "alice@example.test");
	rl_entry_t *v;
	size_t n;
	assert_int_equal(rl_list_entries(b.data, b.len, &r, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "Bob <&>");
	rl_entries_free(v, n);

	assert_int_equal(rl_doc_del_entry(b.data, b.len, "friends", "sip:bob@example.test", &c), 0);
	assert_int_equal(rl_list_entries(c.data, c.len, &r, &v, &n), 0);
	assert_int_equal(n, 1);
	rl_entries_free(v, n);
	buf_t d;
	buf_init(&d, 0);
	assert_int_equal(rl_doc_del_entry(c.data, c.len, "friends", "sip:bob@example.test", &d), -ENOENT);
	buf_free(&d);

	assert_int_equal(rls_doc_add_service(NULL, 0, "sip:alice-friends@example.test", buf_cstr(&ref), &s1), 0);
	assert_int_equal(rls_doc_add_service(s1.data, s1.len, "sip:alice-friends@example.test", buf_cstr(&ref), &s2),
			 -EEXIST);
	rl_service_t *sv;
	char why[64];
	assert_int_equal(rls_services_parse(s1.data, s1.len, &sv, &n, why, sizeof why), 0);
	assert_int_equal(n, 1);
	assert_string_equal(sv[0].list_ref, buf_cstr(&ref));
	rl_services_free(sv, n);
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	buf_free(&ref);
	buf_free(&s1);
	buf_free(&s2);
}

int main(void)
{
	pidf_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ref_parse_forms),
		cmocka_unit_test(list_entries_flatten_and_dedupe),
		cmocka_unit_test(services_parse),
		cmocka_unit_test(edits_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
