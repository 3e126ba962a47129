/* Unit tests of the proxy's pure parts: request rewriting (RFC 3261
 * §16.6), loose and strict Route handling (§16.4), Record-Route, response
 * Via stripping (§16.7 step 3), the CANCEL of a branch (§9.1), the best
 * final response (§16.7 step 6), the alias table and the identity headers
 * from the user directory (RFC 3325). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/proxy/alias.h"
#include "server/proxy/directory.h"
#include "server/proxy/fwd.h"
#include "server/sip/sipmsg.h"

static const char INVITE[] =
    "INVITE sip:bob@example.test SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKcaller;received=192.0.2.7;rport=4000\r\n"
    "Route: <sip:127.0.0.1:5060;lr>\r\n"
    "Route: <sip:edge.example;lr>, <sip:core.example;lr>\r\n"
    "Record-Route: <sip:earlier.example;lr>\r\n"
    "Max-Forwards: 10\r\n"
    "From: \"A, B\" <sip:alice@example.test>;tag=1\r\n"
    "To: <sip:bob@example.test>\r\n"
    "Call-ID: abc@x\r\n"
    "CSeq: 7 INVITE\r\n"
    "Proxy-Authorization: Digest username=\"alice\"\r\n"
    "P-Asserted-Identity: <sip:forged@example.test>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 12\r\n"
    "\r\n"
    "v=0\r\no=x\r\n\r\n";

static const char *find(const buf_t *b, const char *s) { return strstr(buf_cstr((buf_t *)b), s); }

static void test_request_rewrite(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 0);
	fwd_req_t f = {
		.ruri = "sip:bob@198.51.100.9:5070",
		.via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours.0000abcd",
		.pop_routes = 1,
		.routes_first = "<sip:path.example;lr>",
		.record_route = "<sip:127.0.0.1:5060;lr>",
		.extra = "X-Extra: 1\r\n",
		.drop_proxy_auth = true,
		.drop_identity = true,
	};
	assert_int_equal(fwd_request(INVITE, sizeof INVITE - 1, &f, &b), 0);
	const char *s = buf_cstr(&b);
	/* Request-URI replaced; our Via first; the old Via kept with its
	 * received and rport (§16.6 step 8). */
	assert_true(strncmp(s, "INVITE sip:bob@198.51.100.9:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;"
			       "branch=z9hG4bKours.0000abcd\r\n", 95) == 0);
	assert_non_null(find(&b, "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKcaller;received=192.0.2.7;rport=4000\r\n"));
	/* Our Route popped; Path first, then the rest, in order. */
	assert_null(find(&b, "\nRoute: <sip:127.0.0.1"));
	const char *p = find(&b, "Route: <sip:path.example;lr>\r\n");
	const char *e = find(&b, "Route: <sip:edge.example;lr>\r\n");
	const char *c = find(&b, "Route: <sip:core.example;lr>\r\n");
	assert_non_null(p);
	assert_non_null(e);
	assert_non_null(c);
	assert_true(p < e && e < c);
	/* Record-Route: ours above the earlier one (§16.6 step 4). */
	const char *rr1 = find(&b, "Record-Route: <sip:127.0.0.1:5060;lr>");
	const char *rr2 = find(&b, "Record-Route: <sip:earlier.example;lr>");
	assert_non_null(rr1);
	assert_non_null(rr2);
	assert_true(rr1 < rr2);
	assert_non_null(find(&b, "Max-Forwards: 9\r\n"));
	assert_null(find(&b, "Max-Forwards: 10"));
	assert_null(find(&b, "Proxy-Authorization"));
	assert_null(find(&b, "forged"));
	assert_non_null(find(&b, "X-Extra: 1\r\n\r\n"));
	assert_non_null(find(&b, "From: \"A, B\" <sip:alice@example.test>;tag=1\r\n"));
	/* The body byte for byte. */
	assert_true(b.len > 12 && memcmp(s + b.len - 12, "v=0\r\no=x\r\n\r\n", 12) == 0);
	buf_free(&b);
}

static void test_request_keep_uri_and_mf_default(void **state)
{
	(void)state;
	static const char bye[] = "BYE sip:ua@198.51.100.9 SIP/2.0\n"
				  "v: SIP/2.0/UDP 10.0.0.1\n"
				  "f: <sip:a@x>;tag=1\nt: <sip:b@y>;tag=2\ni: c\nCSeq: 2 BYE\nl: 0\n\n";
	buf_t b;
	buf_init(&b, 0);
	fwd_req_t f = {.via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx"};
	assert_int_equal(fwd_request(bye, sizeof bye - 1, &f, &b), 0);
	assert_non_null(find(&b, "BYE sip:ua@198.51.100.9 SIP/2.0\r\n"));
	assert_non_null(find(&b, "Max-Forwards: 70\r\n"));
	assert_non_null(find(&b, "v: SIP/2.0/UDP 10.0.0.1\r\n")); /* compact Via kept below ours */
	assert_null(find(&b, "Record-Route"));
	buf_free(&b);

	buf_init(&b, 0);
	assert_int_equal(fwd_request("SIP/2.0 200 OK\r\n\r\n", 18, &f, &b), -EINVAL);
	assert_int_equal(fwd_request("BYE x SIP/2.0\r\nVia: a\r\n", 23, &f, &b), -EINVAL); /* no end */
	buf_free(&b);
}

static void test_request_strict_route(void **state)
{
	(void)state;
	/* The previous hop was a strict router: the Request-URI is our
	 * Record-Route URI and the real target is the last Route (§16.4). */
	static const char req[] = "BYE sip:127.0.0.1:5060;lr SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
				  "Route: <sip:next.example;lr>\r\n"
				  "Route: <sip:ua@198.51.100.9:5070>\r\n"
				  "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n"
				  "Content-Length: 0\r\n\r\n";
	buf_t b;
	buf_init(&b, 0);
	fwd_req_t f = {.via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx", .strict_ruri_pop = true};
	assert_int_equal(fwd_request(req, sizeof req - 1, &f, &b), 0);
	assert_non_null(find(&b, "BYE sip:ua@198.51.100.9:5070 SIP/2.0\r\n"));
	assert_non_null(find(&b, "Route: <sip:next.example;lr>\r\n"));
	assert_null(find(&b, "Route: <sip:ua@"));
	buf_free(&b);
}

static void test_response_strip_via(void **state)
{
	(void)state;
	static const char resp[] = "SIP/2.0 180 Ringing\r\n"
				   "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKours, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc\r\n"
				   "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKd\r\n"
				   "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
				   "Content-Length: 3\r\n\r\nabc";
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(fwd_response(resp, sizeof resp - 1, 0, NULL, &b), 0);
	assert_null(find(&b, "z9hG4bKours"));
	const char *v1 = find(&b, "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc\r\n");
	const char *v2 = find(&b, "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKd\r\n");
	assert_non_null(v1);
	assert_non_null(v2);
	assert_true(v1 < v2);
	assert_true(strncmp(buf_cstr(&b), "SIP/2.0 180 Ringing\r\n", 21) == 0);
	assert_true(memcmp(b.data + b.len - 7, "\r\n\r\nabc", 7) == 0);
	buf_free(&b);

	/* 503 goes upstream as 500 (§16.7 step 6). */
	static const char r503[] = "SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP us\r\nVia: SIP/2.0/UDP them\r\n"
				   "Retry-After: 5\r\nContent-Length: 0\r\n\r\n";
	buf_init(&b, 0);
	assert_int_equal(fwd_upstream_code(503), 500);
	assert_int_equal(fwd_upstream_code(486), 486);
	assert_int_equal(fwd_response(r503, sizeof r503 - 1, 500, "Server Internal Error", &b), 0);
	assert_true(strncmp(buf_cstr(&b), "SIP/2.0 500 Server Internal Error\r\nVia: SIP/2.0/UDP them\r\n", 58) == 0);
	assert_int_equal(fwd_status(b.data, b.len), 500);
	buf_free(&b);

	/* Only our Via: nowhere to relay it. */
	static const char one[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP us\r\nContent-Length: 0\r\n\r\n";
	buf_init(&b, 0);
	assert_int_equal(fwd_response(one, sizeof one - 1, 0, NULL, &b), -EINVAL);
	buf_free(&b);
}

static void test_cancel(void **state)
{
	(void)state;
	buf_t fwd, b;
	buf_init(&fwd, 0);
	buf_init(&b, 0);
	fwd_req_t f = {.ruri = "sip:bob@198.51.100.9:5070",
		       .via = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbr1",
		       .pop_routes = 1};
	assert_int_equal(fwd_request(INVITE, sizeof INVITE - 1, &f, &fwd), 0);
	assert_int_equal(fwd_cancel(fwd.data, fwd.len, &b), 0);
	const char *s = buf_cstr(&b);
	assert_true(strncmp(s, "CANCEL sip:bob@198.51.100.9:5070 SIP/2.0\r\n"
			       "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbr1\r\n", 92) == 0);
	assert_null(find(&b, "z9hG4bKcaller")); /* only the top Via (§9.1) */
	assert_non_null(find(&b, "Route: <sip:edge.example;lr>\r\n"));
	assert_non_null(find(&b, "CSeq: 7 CANCEL\r\n"));
	assert_non_null(find(&b, "Call-ID: abc@x\r\n"));
	assert_non_null(find(&b, "To: <sip:bob@example.test>\r\n"));
	assert_non_null(find(&b, "Content-Length: 0\r\n\r\n"));
	assert_null(find(&b, "v=0"));
	buf_reset(&b);
	assert_int_equal(fwd_cancel("BYE x SIP/2.0\r\n\r\n", 17, &b), -EINVAL);
	buf_free(&b);
	buf_free(&fwd);
}

static void test_best_response(void **state)
{
	(void)state;
	int a[] = {486, 404, 0};
	assert_int_equal(fwd_best(a, 3), 1); /* lowest code within 4xx */
	int b6[] = {486, 603, 302};
	assert_int_equal(fwd_best(b6, 3), 1); /* a 6xx wins */
	int c[] = {500, 486, 302};
	assert_int_equal(fwd_best(c, 3), 2); /* the lowest class */
	int d[] = {404, 407, 401};
	assert_int_equal(fwd_best(d, 3), 2); /* 401/407 let the caller retry */
	int e[] = {503, 408};
	assert_int_equal(fwd_best(e, 2), 1);
	int f[] = {0, 180, 200};
	assert_int_equal(fwd_best(f, 3), -1); /* nothing final and non-2xx */
	assert_int_equal(fwd_best(NULL, 0), -1);
}

static int collect(void *arg, const char *v, size_t vlen)
{
	buf_t *b = arg;
	buf_append(b, v, vlen);
	buf_puts(b, "|");
	return 0;
}

static void test_split_values(void **state)
{
	(void)state;
	buf_t b;
	buf_init(&b, 0);
	const char *v = " \"Doe, J\" <sip:a@x;p=1,2>;q=1 , <sip:b@y> ,,";
	fwd_split_values(v, strlen(v), collect, &b);
	assert_string_equal(buf_cstr(&b), "\"Doe, J\" <sip:a@x;p=1,2>;q=1|<sip:b@y>|");
	buf_free(&b);
}

static void test_alias(void **state)
{
	(void)state;
	char out[128];
	assert_int_equal(alias_init(NULL), 0);
	assert_int_equal(alias_resolve("sip:1001@example.test", out, sizeof out), -ENOENT);
	assert_int_equal(alias_set("sip:1001@example.test", "sip:alice@example.test"), 0);
	assert_int_equal(alias_resolve("sip:1001@example.test", out, sizeof out), 0);
	assert_string_equal(out, "sip:alice@example.test");
	assert_int_equal(alias_resolve("sip:1001@example.test", out, 5), -ENOSPC);
	assert_int_equal(alias_set("sip:1001@example.test", "sip:bob@example.test"), 0);
	assert_int_equal(alias_resolve("sip:1001@example.test", out, sizeof out), 0);
	assert_string_equal(out, "sip:bob@example.test");
	assert_int_equal(alias_count(), 1);

	/* The router's rewrite: R-URI sip:1001@EXAMPLE.test:5060;user=phone
	 * becomes sip:bob@example.test;user=phone. */
	static const char msg[] = "MESSAGE sip:1001@EXAMPLE.test:5060;user=phone SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
				  "From: <sip:a@x>;tag=1\r\nTo: <sip:1001@example.test>\r\n"
				  "Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
	static const sip_limits_t lim = {0, 0};
	tp_peer_t src;
	memset(&src, 0, sizeof src);
	tp_addr_from_str("10.0.0.1", 5060, &src.addr);
	sipmsg_t *m = NULL;
	char why[64];
	assert_int_equal(sipmsg_global_init(), 0);
	assert_int_equal(sipmsg_parse(msg, sizeof msg - 1, &src, &lim, &m, why, sizeof why), 0);
	assert_int_equal(alias_apply_ruri(m, "example.test"), 1);
	char *s = NULL;
	assert_int_equal(osip_uri_to_str(m->m->req_uri, &s), 0);
	assert_string_equal(s, "sip:bob@example.test;user=phone");
	osip_free(s);
	assert_int_equal(alias_apply_ruri(m, "example.test"), 0); /* bob is no alias */
	sipmsg_free(m);

	assert_int_equal(alias_remove("sip:1001@example.test"), 0);
	assert_int_equal(alias_remove("sip:1001@example.test"), -ENOENT);
	assert_int_equal(alias_resolve("sip:1001@example.test", out, sizeof out), -ENOENT);
	alias_shutdown();
}

static sipmsg_t *parse(const char *text)
{
	static const sip_limits_t lim = {0, 0};
	tp_peer_t src;
	memset(&src, 0, sizeof src);
	src.proto = TP_UDP;
	tp_addr_from_str("10.0.0.1", 5062, &src.addr);
	sipmsg_t *m = NULL;
	char why[64];
	assert_int_equal(sipmsg_parse(text, strlen(text), &src, &lim, &m, why, sizeof why), 0);
	return m;
}

static void test_identity(void **state)
{
	(void)state;
	assert_int_equal(sipmsg_global_init(), 0);
	assert_int_equal(dir_init(NULL), 0);
	assert_int_equal(dir_set("sip:alice@example.test", "Alice \"Al\" Doe", "https://example.test/a.png"), 0);
	assert_int_equal(dir_set("sip:bob@example.test", NULL, NULL), 0);
	sipmsg_t *m = parse(INVITE);
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(dir_identity_headers(m, "sip:alice@example.test", &b), 0);
	assert_string_equal(buf_cstr(&b),
			    "P-Asserted-Identity: \"Alice \\\"Al\\\" Doe\" <sip:alice@example.test>\r\n"
			    "Call-Info: <https://example.test/a.png>;purpose=icon\r\n");
	buf_reset(&b);
	assert_int_equal(dir_identity_headers(m, "sip:bob@example.test", &b), 0);
	assert_string_equal(buf_cstr(&b), "P-Asserted-Identity: <sip:bob@example.test>\r\n");
	buf_reset(&b);
	assert_int_equal(dir_identity_headers(m, "sip:nobody@example.test", &b), -ENOENT);
	assert_int_equal(b.len, 0);
	sipmsg_free(m);

	/* A request with its own icon keeps it: no second Call-Info. */
	char with_icon[sizeof INVITE + 64];
	const char *cut = strstr(INVITE, "Content-Type:");
	snprintf(with_icon, sizeof with_icon, "%.*sCall-Info: <http://x/y.png>;purpose=icon\r\n%s",
		 (int)(cut - INVITE), INVITE, cut);
	m = parse(with_icon);
	buf_reset(&b);
	assert_int_equal(dir_identity_headers(m, "sip:alice@example.test", &b), 0);
	assert_null(strstr(buf_cstr(&b), "Call-Info"));
	sipmsg_free(m);
	buf_free(&b);

	assert_true(dir_url_ok("https://example.test/a.png"));
	assert_false(dir_url_ok("https://x/a b"));
	assert_false(dir_url_ok("https://x/a>b"));
	assert_false(dir_name_ok("a\r\nInjected: 1"));
	assert_int_equal(dir_remove("sip:bob@example.test"), 0);
	assert_null(dir_find("sip:bob@example.test"));
	dir_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_rewrite),
		cmocka_unit_test(test_request_keep_uri_and_mf_default),
		cmocka_unit_test(test_request_strict_route),
		cmocka_unit_test(test_response_strip_via),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_best_response),
		cmocka_unit_test(test_split_values),
		cmocka_unit_test(test_alias),
		cmocka_unit_test(test_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
