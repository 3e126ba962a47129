/* Unit tests of the SIP message helpers: parse limits and errors, Via
 * received/rport, responses, destinations, raw error responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
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
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_raw_error),
		cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests_name("sipmsg", tests, NULL, NULL);
}
