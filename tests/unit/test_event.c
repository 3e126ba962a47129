/* Unit tests of the pure parts of the event framework and its packages:
 * Subscription-State formatting, Event and Accept parsing (event.c),
 * rule matching (rules.c), the choice of the presence document
 * (pkg_presence.c) and watcherinfo documents (pkg_winfo.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presence/event.h"
#include "presence/pidf.h"
#include "presence/pkgs.h"
#include "presence/rules.h"

static void substate(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(ev_format_substate(EV_STATE_ACTIVE, NULL, 3600, &b), 0);
	assert_string_equal(buf_cstr(&b), "active;expires=3600");
	buf_reset(&b);
	ev_format_substate(EV_STATE_PENDING, NULL, 12, &b);
	assert_string_equal(buf_cstr(&b), "pending;expires=12");
	buf_reset(&b);
	/* A subscription past its time never shows a negative expiry. */
	ev_format_substate(EV_STATE_ACTIVE, NULL, -5, &b);
	assert_string_equal(buf_cstr(&b), "active;expires=0");
	buf_reset(&b);
	ev_format_substate(EV_STATE_TERMINATED, "rejected", 100, &b);
	assert_string_equal(buf_cstr(&b), "terminated;reason=rejected");
	buf_reset(&b);
	ev_format_substate(EV_STATE_TERMINATED, NULL, 100, &b);
	assert_string_equal(buf_cstr(&b), "terminated;reason=timeout");
	buf_free(&b);
}

static void parse_event(void **state)
{
	(void)state;
	char pkg[64], id[64];
	assert_int_equal(ev_parse_event("presence", pkg, sizeof pkg, id, sizeof id), 0);
	assert_string_equal(pkg, "presence");
	assert_string_equal(id, "");
	assert_int_equal(ev_parse_event("  Presence.WINFO ; id = abc ;foo", pkg, sizeof pkg, id, sizeof id), 0);
	assert_string_equal(pkg, "presence.winfo");
	assert_string_equal(id, "abc");
	assert_int_equal(ev_parse_event("presence;x=1;id=7", pkg, sizeof pkg, id, sizeof id), 0);
	assert_string_equal(id, "7");
	assert_int_equal(ev_parse_event("", pkg, sizeof pkg, id, sizeof id), -EINVAL);
	assert_int_equal(ev_parse_event("pres ence", pkg, sizeof pkg, id, sizeof id), -EINVAL);
	assert_int_equal(ev_parse_event("presence;id=", pkg, sizeof pkg, id, sizeof id), -EINVAL);
	assert_int_equal(ev_parse_event("presence;;", pkg, sizeof pkg, id, sizeof id), -EINVAL);
	char small[4];
	assert_int_equal(ev_parse_event("presence", small, sizeof small, id, sizeof id), -EINVAL);
}

static void accept_list(void **state)
{
	(void)state;
	assert_true(ev_accept_allows("application/pidf+xml", "application/pidf+xml"));
	assert_true(ev_accept_allows("text/plain, Application/PIDF+XML;q=0.5", "application/pidf+xml"));
	assert_true(ev_accept_allows("application/*", "application/pidf+xml"));
	assert_true(ev_accept_allows("*/*", "application/watcherinfo+xml"));
	assert_false(ev_accept_allows("text/plain", "application/pidf+xml"));
	assert_false(ev_accept_allows("application/pidf", "application/pidf+xml"));
	assert_false(ev_accept_allows("application/xpidf+xml", "application/pidf+xml"));
	assert_false(ev_accept_allows("", "application/pidf+xml"));
	assert_false(ev_accept_allows("text/*", "application/pidf+xml"));
}

static void rule_parse(void **state)
{
	(void)state;
	ev_auth_t a;
	assert_int_equal(rules_action_parse("allow", &a), 0);
	assert_int_equal(a, EV_AUTH_ALLOW);
	assert_int_equal(rules_action_parse("BLOCK", &a), 0);
	assert_int_equal(a, EV_AUTH_BLOCK);
	assert_int_equal(rules_action_parse("polite-block", &a), 0);
	assert_int_equal(a, EV_AUTH_POLITE);
	assert_int_equal(rules_action_parse("confirm", &a), 0);
	assert_int_equal(a, EV_AUTH_PENDING);
	assert_int_equal(rules_action_parse("maybe", &a), -EINVAL);
	assert_int_equal(rules_action_parse(NULL, &a), -EINVAL);

	char out[128];
	assert_int_equal(rules_normalize_watcher("sip:Bob@Example.COM", out, sizeof out), 0);
	assert_string_equal(out, "sip:Bob@example.com");
	assert_int_equal(rules_normalize_watcher("bob@example.com", out, sizeof out), 0);
	assert_string_equal(out, "sip:bob@example.com");
	assert_int_equal(rules_normalize_watcher("sips:bob@example.com", out, sizeof out), 0);
	assert_string_equal(out, "sip:bob@example.com");
	assert_int_equal(rules_normalize_watcher("*@Example.com", out, sizeof out), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(rules_normalize_watcher("EXAMPLE.org", out, sizeof out), 0);
	assert_string_equal(out, "example.org");
	assert_int_equal(rules_normalize_watcher("@example.org", out, sizeof out), -EINVAL);
	assert_int_equal(rules_normalize_watcher("bob@", out, sizeof out), -EINVAL);
	assert_int_equal(rules_normalize_watcher("", out, sizeof out), -EINVAL);
	char tiny[8];
	assert_int_equal(rules_normalize_watcher("bob@example.com", tiny, sizeof tiny), -ENOSPC);
}

static void rule_match(void **state)
{
	(void)state;
	rule_t rules[] = {
		{(char *)"example.com", EV_AUTH_POLITE},
		{(char *)"sip:bob@example.com", EV_AUTH_ALLOW},
		{(char *)"evil.org", EV_AUTH_BLOCK},
		{(char *)"sip:carol@evil.org", EV_AUTH_PENDING},
	};
	ev_auth_t a = EV_AUTH_ALLOW;
	/* Exact beats domain, whatever the order. */
	assert_true(rules_match(rules, 4, "sip:bob@example.com", &a));
	assert_int_equal(a, EV_AUTH_ALLOW);
	assert_true(rules_match(rules, 4, "sip:dave@example.com", &a));
	assert_int_equal(a, EV_AUTH_POLITE);
	assert_true(rules_match(rules, 4, "sip:carol@evil.org", &a));
	assert_int_equal(a, EV_AUTH_PENDING);
	assert_true(rules_match(rules, 4, "sip:eve@evil.org", &a));
	assert_int_equal(a, EV_AUTH_BLOCK);
	/* A domain rule is not a suffix match. */
	assert_false(rules_match(rules, 4, "sip:x@notexample.com", &a));
	assert_false(rules_match(rules, 4, "sip:x@sub.example.com", &a));
	assert_false(rules_match(rules, 0, "sip:bob@example.com", &a));
	/* The user part of an AOR is case-sensitive. */
	assert_true(rules_match(rules, 4, "sip:Bob@example.com", &a));
	assert_int_equal(a, EV_AUTH_POLITE);
}

static void doc_choice(void **state)
{
	(void)state;
	assert_int_equal(pres_doc_choice(EV_AUTH_POLITE, 3, 2), PRES_DOC_POLITE);
	assert_int_equal(pres_doc_choice(EV_AUTH_ALLOW, 1, 0), PRES_DOC_COMPOSED);
	/* A PUBLISH takes precedence over registrations. */
	assert_int_equal(pres_doc_choice(EV_AUTH_ALLOW, 2, 5), PRES_DOC_COMPOSED);
	assert_int_equal(pres_doc_choice(EV_AUTH_ALLOW, 0, 1), PRES_DOC_REGISTERED);
	assert_int_equal(pres_doc_choice(EV_AUTH_ALLOW, 0, 0), PRES_DOC_UNREGISTERED);
}

static void winfo(void **state)
{
	(void)state;
	winfo_entry_t e[] = {
		{"a1", "sip:bob@example.com", "active", "subscribe", 10, 3590},
		{"a2", "sip:x&<\"y\">@example.com", "terminated", "rejected", 5, 0},
	};
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(winfo_format("sip:alice@example.com", "presence", 7, false, e, 2, &b), 0);
	const char *s = buf_cstr(&b);
	assert_non_null(strstr(s, "xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"7\" state=\"partial\""));
	assert_non_null(strstr(s, "<watcher-list resource=\"sip:alice@example.com\" package=\"presence\">"));
	assert_non_null(strstr(s, "<watcher id=\"a1\" event=\"subscribe\" status=\"active\" "
				  "duration-subscribed=\"10\" expiration=\"3590\">sip:bob@example.com</watcher>"));
	/* Escaped, and no expiration on a terminated watcher. */
	assert_non_null(strstr(s, "status=\"terminated\" duration-subscribed=\"5\">sip:x&amp;&lt;&quot;y&quot;&gt;@"));
	/* Well-formed. */
	pidf_init();
	xmlDocPtr doc = NULL;
	char why[128];
	assert_int_equal(pidf_xml_parse(b.data, b.len, NULL, &doc, why, sizeof why), 0);
	xmlFreeDoc(doc);
	buf_reset(&b);
	assert_int_equal(winfo_format("sip:alice@example.com", "presence", 0, true, NULL, 0, &b), 0);
	assert_non_null(strstr(buf_cstr(&b), "version=\"0\" state=\"full\""));
	assert_int_equal(pidf_xml_parse(b.data, b.len, NULL, &doc, why, sizeof why), 0);
	xmlFreeDoc(doc);
	buf_free(&b);
}

static void escape(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 0);
	xml_escape(&b, "a<b>&'\"\x01z");
	assert_string_equal(buf_cstr(&b), "a&lt;b&gt;&amp;&apos;&quot;z");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(substate),   cmocka_unit_test(parse_event), cmocka_unit_test(accept_list),
		cmocka_unit_test(rule_parse), cmocka_unit_test(rule_match),  cmocka_unit_test(doc_choice),
		cmocka_unit_test(winfo),      cmocka_unit_test(escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
