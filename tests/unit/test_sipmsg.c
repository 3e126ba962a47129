/* Unit tests of the SIP message helpers: parse limits and errors, Via
 * received/rport, responses, destinations, raw error responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/sip/sipmsg.h"

static const char REGISTER[] =
	"REGISTER sip:example.test SIP/2.0\r\n"
	"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-abc;rport\r\n"
	"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-second\r\n"
	"Max-Forwards: 70\r\n"
	"From: <sip:alice@example.test>;tag=ft1\r\n"
	"To: <sip:alice@example.test>\r\n"
	"Call-ID: cid-1@host\r\n"
	"CSeq: 7 REGISTER\r\n"
	"Contact: <sip:alice@10.0.0.1:5062>;expires=600\r\n"
	"Expires: 3600\r\n"
	"Require: path, foo\r\n"
	"Content-Length: 0\r\n\r\n";

static tp_peer_t peer_v4(const char *ip, uint16_t port)
{
	tp_peer_t p;
	memset(&p, 0, sizeof p);
	p.proto = TP_UDP;
	p.listener = -1;
	struct sockaddr_in *sin = (struct sockaddr_in *)&p.addr;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return p;
}

static sip_limits_t LIM = {.max_headers = 64, .max_body = 1024};

static sipmsg_t *parse_ok(const char *text)
{
	tp_peer_t p = peer_v4("192.0.2.7", 40000);
	sipmsg_t *m = NULL;
	char why[128] = "";
	int rc = sipmsg_parse(text, strlen(text), &p, &LIM, &m, why, sizeof why);
	if (rc != 0)
		fail_msg("parse failed: %d %s", rc, why);
	return m;
}

static int parse_err(const char *text, char *why, size_t whylen)
{
	tp_peer_t p = peer_v4("192.0.2.7", 40000);
	sipmsg_t *m = NULL;
	int rc = sipmsg_parse(text, strlen(text), &p, &LIM, &m, why, whylen);
	assert_null(m);
	return rc;
}

static void test_parse_register(void **state)
{
	(void)state;
	assert_int_equal(sipmsg_global_init(), 0);
	sipmsg_t *m = parse_ok(REGISTER);
	assert_true(m->is_request);
	assert_string_equal(m->method, "REGISTER");
	assert_string_equal(m->branch, "z9hG4bK-abc");
	assert_int_equal(m->cseq, 7);
	assert_string_equal(sipmsg_from_tag(m), "ft1");
	assert_null(sipmsg_to_tag(m));
	assert_string_equal(sipmsg_call_id(m), "cid-1@host");
	uint32_t e = 0;
	assert_int_equal(sipmsg_header_uint(m, "expires", &e), 0);
	assert_int_equal(e, 3600);
	char aor[128];
	assert_int_equal(sip_uri_aor(m->m->to->url, aor, sizeof aor), 0);
	assert_string_equal(aor, "sip:alice@example.test");
	/* Require: path is supported, foo is not. */
	const char *sup[] = {"path", NULL};
	char uns[64];
	assert_false(sipmsg_require_ok(m, sup, uns, sizeof uns));
	assert_string_equal(uns, "foo");
	assert_true(sipmsg_has_option_tag(m, "require", NULL, "PATH"));
	assert_true(sipmsg_has_option_tag(m, "require", NULL, "foo"));
	assert_false(sipmsg_has_option_tag(m, "require", NULL, "pat"));
	assert_false(sipmsg_has_option_tag(m, "supported", "k", "path"));
	sipmsg_free(m);
}

static void test_via_received_rport(void **state)
{
	(void)state;
	sipmsg_t *m = parse_ok(REGISTER);
	osip_generic_param_t *p = NULL;
	osip_via_param_get_byname(m->via, "received", &p);
	assert_non_null(p);
	assert_string_equal(p->gvalue, "192.0.2.7");
	osip_via_param_get_byname(m->via, "rport", &p);
	assert_non_null(p);
	assert_string_equal(p->gvalue, "40000");
	/* With rport, responses go to the source address and port. */
	tp_peer_t d;
	sipmsg_response_dest(m, &d);
	assert_int_equal(ntohs(((struct sockaddr_in *)&d.addr)->sin_port), 40000);
	sipmsg_free(m);

	/* Without rport: source address, Via port. */
	char *noport = strdup(REGISTER);
	char *r = strstr(noport, ";rport");
	memmove(r, r + 6, strlen(r + 6) + 1);
	m = parse_ok(noport);
	sipmsg_response_dest(m, &d);
	assert_int_equal(ntohs(((struct sockaddr_in *)&d.addr)->sin_port), 5062);
	sipmsg_free(m);
	free(noport);
}

static void test_build_response(void **state)
{
	(void)state;
	sipmsg_t *m = parse_ok(REGISTER);
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(sipmsg_build_response(m, 200, NULL, "tt9", "Expires: 5\r\n", NULL, NULL, 0, &b), 0);
	const char *s = buf_cstr(&b);
	assert_true(strncmp(s, "SIP/2.0 200 OK\r\n", 16) == 0);
	/* Both Vias, in order, the first with received and rport. */
	const char *v1 = strstr(s, "branch=z9hG4bK-abc");
	const char *v2 = strstr(s, "branch=z9hG4bK-second");
	assert_non_null(v1);
	assert_non_null(v2);
	assert_true(v1 < v2);
	assert_non_null(strstr(s, "received=192.0.2.7"));
	assert_non_null(strstr(s, "rport=40000"));
	assert_non_null(strstr(s, "tag=tt9"));
	assert_non_null(strstr(s, "CSeq: 7 REGISTER\r\n"));
	assert_non_null(strstr(s, "Call-ID: cid-1@host\r\n"));
	assert_non_null(strstr(s, "Expires: 5\r\n"));
	assert_non_null(strstr(s, "Content-Length: 0\r\n\r\n"));
	/* 100 Trying never gets a To tag. */
	buf_reset(&b);
	sipmsg_build_response(m, 100, NULL, "tt9", NULL, NULL, NULL, 0, &b);
	assert_null(strstr(buf_cstr(&b), "tag=tt9"));
	buf_free(&b);
	sipmsg_free(m);
}

static char *replace(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	assert_non_null(p);
	size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
	return out;
}

/* The Via lines written from the raw index equal those libosip2 writes
 * for the fixed Via (same parameters, same values), for the shapes the
 * index takes and the shapes it leaves to libosip2. */
static void vias_both_ways(const char *text, const char *want_top)
{
	sipmsg_t *m = parse_ok(text);
	buf_t raw, osip;
	buf_init(&raw, 0);
	buf_init(&osip, 0);
	assert_int_equal(sipmsg_append_vias(m, &raw), 0);
	sip_raw_hdr_t *keep = m->hdrs;
	m->hdrs = NULL; /* force the libosip2 path */
	assert_int_equal(sipmsg_append_vias(m, &osip), 0);
	m->hdrs = keep;
	if (want_top && strncmp(buf_cstr(&raw), want_top, strlen(want_top)) != 0)
		fail_msg("raw Vias:\n%s\nwanted:\n%s\nlibosip2:\n%s", buf_cstr(&raw), want_top, buf_cstr(&osip));
	/* Same number of Via lines, each with the same branch. */
	const char *r = buf_cstr(&raw), *o = buf_cstr(&osip);
	for (;;) {
		const char *rb = strstr(r, "branch="), *ob = strstr(o, "branch=");
		assert_true((rb == NULL) == (ob == NULL));
		if (!rb)
			break;
		assert_int_equal(strcspn(rb, ";,\r"), strcspn(ob, ";,\r"));
		assert_memory_equal(rb, ob, strcspn(rb, ";,\r"));
		r = rb + 7;
		o = ob + 7;
	}
	buf_free(&raw);
	buf_free(&osip);
	sipmsg_free(m);
}

static void test_raw_index(void **state)
{
	(void)state;
	sipmsg_t *m = parse_ok(REGISTER);
	assert_non_null(m->hdrs);
	assert_non_null(m->top_via);
	assert_string_equal(m->top_via, "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-abc;rport=40000"
					";received=192.0.2.7");
	assert_string_equal(sipmsg_raw_value(m, SIPH_CALL_ID), "cid-1@host");
	assert_string_equal(sipmsg_raw_value(m, SIPH_CSEQ), "7 REGISTER");
	assert_string_equal(m->from_raw, "<sip:alice@example.test>;tag=ft1");
	assert_null(sipmsg_raw_value(m, SIPH_ROUTE));
	sipmsg_free(m);
	vias_both_ways(REGISTER, "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-abc;rport=40000;"
				 "received=192.0.2.7\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-second\r\n");

	/* Compact name, two Vias on one line, rport in the middle, sent-by =
	 * the source (no received without rport). */
	char *t = replace(REGISTER, "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-abc;rport\r\n",
			  "v: SIP/2.0/UDP 192.0.2.7:5062;rport;branch=z9hG4bK-abc , SIP/2.0/UDP p;branch=z9hG4bK-p\r\n");
	vias_both_ways(t, "Via: SIP/2.0/UDP 192.0.2.7:5062;rport=40000;branch=z9hG4bK-abc;received=192.0.2.7, "
			  "SIP/2.0/UDP p;branch=z9hG4bK-p\r\n");
	free(t);
	t = replace(REGISTER, ";rport\r\n", "\r\n");
	char *t2 = replace(t, "10.0.0.1:5062", "192.0.2.7:5062");
	vias_both_ways(t2, "Via: SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK-abc\r\n");
	free(t);
	free(t2);

	/* A received parameter already there: libosip2 writes the top Via. */
	t = replace(REGISTER, ";rport\r\n", ";received=10.9.9.9;rport\r\n");
	m = parse_ok(t);
	assert_null(m->top_via);
	sipmsg_free(m);
	vias_both_ways(t, NULL);
	free(t);

	/* Folded lines: no raw index at all; responses still right. */
	t = replace(REGISTER, "Expires: 3600\r\n", "Expires:\r\n 3600\r\n");
	m = parse_ok(t);
	assert_null(m->hdrs);
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(sipmsg_build_response(m, 200, NULL, "x", NULL, NULL, NULL, 0, &b), 0);
	assert_non_null(strstr(buf_cstr(&b), "received=192.0.2.7"));
	assert_non_null(strstr(buf_cstr(&b), "From: <sip:alice@example.test>;tag=ft1\r\n"));
	buf_free(&b);
	sipmsg_free(m);
	free(t);
}

static const char RESPONSE[] =
	"SIP/2.0 486 Busy Here\r\n"
	"Via: SIP/2.0/UDP 10.0.0.1:5062;rport=5062;branch=z9hG4bK-r1, SIP/2.0/UDP x;branch=z9hG4bK-r0\r\n"
	"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-second\r\n"
	"From: <sip:alice@example.test>;tag=ft1\r\n"
	"To: <sip:bob@example.test>;tag=tt\r\n"
	"Call-ID: cid-1@host\r\n"
	"CSeq: 12 MESSAGE\r\n"
	"Content-Length: 0\r\n\r\n";

static void test_scan_response(void **state)
{
	(void)state;
	sip_resp_view_t v;
	assert_int_equal(sipmsg_scan_response(RESPONSE, strlen(RESPONSE), &LIM, &v), 0);
	assert_int_equal(v.status, 486);
	assert_int_equal(v.reason_len, 9);
	assert_memory_equal(v.reason, "Busy Here", 9);
	assert_int_equal(v.branch_len, 10);
	assert_memory_equal(v.branch, "z9hG4bK-r1", 10);
	assert_int_equal(v.method_len, 7);
	assert_memory_equal(v.method, "MESSAGE", 7);
	assert_int_equal(v.cseq, 12);
	/* Shapes left to the full parser. */
	static const struct { const char *from, *to; } odd[] = {
		{"Content-Length: 0\r\n", "Content-Length: 5\r\n"},    /* beyond what arrived */
		{"CSeq: 12 MESSAGE\r\n", "CSeq: 2147483648 MESSAGE\r\n"},
		{"CSeq: 12 MESSAGE\r\n", "CSeq: 12 MESSAGE\r\n\tx\r\n"}, /* folding */
		{"CSeq: 12 MESSAGE\r\n", "CSeq: 12 MESSAGE\r\nCSeq: 13 MESSAGE\r\n"},
		{"Call-ID: cid-1@host\r\n", ""},
		{"branch=z9hG4bK-r1", "branch="},
		{";branch=z9hG4bK-r1", ""},
		{"SIP/2.0 486", "SIP/2.0 099"},
		{"Busy Here", "Busy\001Here"},
		{"tag=tt", "tag=%00"},
		{"Content-Length: 0\r\n\r\n", "Content-Length: 0\n\n"},
		/* Top Vias libosip2 may read differently (found by fuzz_sipmsg). */
		{"SIP/2.0/UDP 10.0.0.1:5062;rport", "SIP/0.0/UDP 10.0.0.1:5062;rport"},
		{"branch=z9hG4bK-r1", "branch=z9hG4bK-r1 200 OK"},
		{"branch=z9hG4bK-r1", "BRANCH=z9hG4bK-r1"},
		{"branch=z9hG4bK-r1", "branch=z9hG4bK-r1;branch=z9hG4bK-r2"},
	};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		char *t = replace(RESPONSE, odd[i].from, odd[i].to);
		if (sipmsg_scan_response(t, strlen(t), &LIM, &v) == 0)
			fail_msg("case %zu scanned as plain", i);
		free(t);
	}
	/* The header limit applies. */
	sip_limits_t few = {.max_headers = 3, .max_body = 1024};
	assert_int_equal(sipmsg_scan_response(RESPONSE, strlen(RESPONSE), &few, &v), -EINVAL);
	/* Every prefix is refused or scanned within bounds (ASan checks). */
	for (size_t n = 0; n < strlen(RESPONSE); n++) {
		char *cut = malloc(n ? n : 1);
		memcpy(cut, RESPONSE, n);
		(void)sipmsg_scan_response(cut, n, &LIM, &v);
		free(cut);
	}
}

static void test_parse_errors(void **state)
{
	(void)state;
	char why[128];
	struct { const char *from, *to; int code; const char *reason; } cases[] = {
		{"Call-ID: cid-1@host\r\n", "", 400, "Call-ID"},
		{"CSeq: 7 REGISTER\r\n", "CSeq: 7 INVITE\r\n", 400, "CSeq"},
		{"CSeq: 7 REGISTER\r\n", "CSeq: 99999999999 REGISTER\r\n", 400, "CSeq"},
		{"CSeq: 7 REGISTER\r\n", "CSeq: -1 REGISTER\r\n", 400, "CSeq"},
		{"From: <sip:alice@example.test>;tag=ft1\r\n", "", 400, "From"},
		{"REGISTER sip:example.test SIP/2.0", "REGISTER mailto:x@example.test SIP/2.0", 416, "Scheme"},
		{"REGISTER sip:example.test SIP/2.0", "REGISTER sip:example.test SIP/3.0", 505, "Version"},
		{"Content-Length: 0", "Content-Length: 50", 400, "Content-Length"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *t = replace(REGISTER, cases[i].from, cases[i].to);
		why[0] = '\0';
		int rc = parse_err(t, why, sizeof why);
		if (rc != cases[i].code || !strstr(why, cases[i].reason))
			fail_msg("case %zu: got %d '%s'", i, rc, why);
		free(t);
	}
	assert_int_equal(parse_err("garbage\r\n\r\n", why, sizeof why), 400);
}

static void test_limits(void **state)
{
	(void)state;
	char why[128];
	/* 100 extra headers against a limit of 64. */
	char *many = malloc(65536);
	size_t hdr_end = strlen(REGISTER) - 4;
	memcpy(many, REGISTER, hdr_end);
	size_t n = hdr_end;
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(many + n, "\r\nX-H%d: v", i);
	strcpy(many + n, "\r\n\r\n");
	assert_int_equal(parse_err(many, why, sizeof why), 400);
	assert_string_equal(why, "Too Many Headers");
	/* A body over max_body gets 413. */
	char *big = replace(REGISTER, "Content-Length: 0\r\n\r\n", "Content-Length: 2000\r\n\r\n");
	size_t bl = strlen(big);
	big = realloc(big, bl + 2001);
	memset(big + bl, 'x', 2000);
	big[bl + 2000] = '\0';
	assert_int_equal(parse_err(big, why, sizeof why), 413);
	free(big);
	free(many);
}

static void test_raw_error(void **state)
{
	(void)state;
	const char *bad = "INVITE sip:bob@example.test SIP/2.0\r\n"
			  "v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
			  "f: <sip:a@example.test>;tag=1\r\n"
			  "t: <sip:bob@example.test>\r\n"
			  "i: abc\r\n"
			  "CSeq: x INVITE\r\n"
			  "CSeq: 2 INVITE\r\n\r\n";
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(sipmsg_raw_error_response(bad, strlen(bad), 400, "Bad Request - Malformed CSeq", &b), 0);
	const char *s = buf_cstr(&b);
	assert_true(strncmp(s, "SIP/2.0 400 Bad Request - Malformed CSeq\r\n", 42) == 0);
	assert_non_null(strstr(s, "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"));
	assert_non_null(strstr(s, "Call-ID: abc\r\n"));
	/* Only the first CSeq is copied. */
	assert_null(strstr(s, "CSeq: 2"));
	buf_free(&b);
	/* Responses and Via-less requests are never answered. */
	buf_init(&b, 0);
	assert_int_not_equal(sipmsg_raw_error_response("SIP/2.0 200 OK\r\nVia: x\r\n\r\n", 25, 400, "x", &b), 0);
	assert_int_not_equal(sipmsg_raw_error_response("OPTIONS sip:x SIP/2.0\r\nFrom: x\r\n\r\n", 34, 400, "x", &b), 0);
	buf_free(&b);
}

static void test_tokens(void **state)
{
	(void)state;
	char a[17], b[17];
	sip_random_token(a, sizeof a);
	sip_random_token(b, sizeof b);
	assert_int_equal(strlen(a), 16);
	assert_string_not_equal(a, b);
	assert_string_equal(sip_reason_phrase(423), "Interval Too Brief");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_register),
		cmocka_unit_test(test_via_received_rport),
		cmocka_unit_test(test_build_response),
		cmocka_unit_test(test_raw_index),
		cmocka_unit_test(test_scan_response),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_raw_error),
		cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests_name("sipmsg", tests, NULL, NULL);
}
