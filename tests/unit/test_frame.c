/* Unit tests for server/transport/frame.c: SIP stream framing (RFC 3261
 * §18.3) and keep-alive recognition (RFC 5626 §4.4.1).
 *
 * Every input is copied into a heap block of exactly its length, so under
 * AddressSanitizer a read past len fails the test. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/transport/frame.h"

#define MAX 65535

static const char REGISTER[] =
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 192.0.2.4:5060;branch=z9hG4bKnashds7\r\n"
    "Max-Forwards: 70\r\n"
    "To: Bob <sip:bob@example.com>\r\n"
    "From: Bob <sip:bob@example.com>;tag=456248\r\n"
    "Call-ID: 843817637684230@998sdasdh09\r\n"
    "CSeq: 1826 REGISTER\r\n"
    "Contact: <sip:bob@192.0.2.4;transport=tcp>\r\n"
    "Expires: 7200\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, world!";

static const char OPTIONS_NOBODY[] =
    "OPTIONS sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 192.0.2.4;branch=z9hG4bK1\r\n"
    "Call-ID: a\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "\r\n";

/* frame_message over an exact-size copy of s[0..len). */
static ssize_t frame_n(const char *s, size_t len, size_t max)
{
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, s, len);
	ssize_t r = frame_message(p, len, max);
	free(p);
	return r;
}

static ssize_t frame_s(const char *s, size_t max) { return frame_n(s, strlen(s), max); }

static size_t skip_s(const char *s, int *ping)
{
	size_t len = strlen(s);
	char *p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, s, len);
	size_t r = frame_skip_keepalive(p, len, ping);
	free(p);
	return r;
}

/* A message with "Content-Length: <v>" and a 3-byte body "abc". */
static ssize_t frame_cl(const char *clhdr, size_t max)
{
	char m[512];
	snprintf(m, sizeof m, "MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n%s\r\n\r\nabc", clhdr);
	return frame_s(m, max);
}

/* Expected length of frame_cl(clhdr) with a body of `body` bytes. */
static ssize_t cl_len(const char *clhdr, size_t body)
{
	return (ssize_t)(strlen("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n") + strlen(clhdr) + 2 + body);
}

static void test_complete(void **state)
{
	(void)state;
	assert_int_equal(frame_s(REGISTER, MAX), (ssize_t)strlen(REGISTER));
	assert_int_equal(frame_s(OPTIONS_NOBODY, MAX), (ssize_t)strlen(OPTIONS_NOBODY));
	/* Trailing bytes of a next message do not change the answer. */
	char buf[2048];
	snprintf(buf, sizeof buf, "%sINVITE sip:x SIP/2.0\r\n", REGISTER);
	assert_int_equal(frame_s(buf, MAX), (ssize_t)strlen(REGISTER));
}

static void test_incomplete(void **state)
{
	(void)state;
	size_t n = strlen(REGISTER);
	assert_int_equal(frame_n(REGISTER, 0, MAX), 0);
	/* Headers not finished. */
	assert_int_equal(frame_n(REGISTER, 40, MAX), 0);
	/* Headers done, body short by one byte. */
	assert_int_equal(frame_n(REGISTER, n - 1, MAX), 0);
	/* Terminator cut after "\r\n\r". */
	const char *hdr_end = strstr(REGISTER, "\r\n\r\n");
	size_t cut = (size_t)(hdr_end - REGISTER) + 3;
	assert_int_equal(frame_n(REGISTER, cut, MAX), 0);
}

/* The real REGISTER split at every byte: below its length always "need
 * more", at its length the whole message -- both for the stateless call
 * and for the resumable one fed the growing prefix. */
static void test_split_every_byte(void **state)
{
	(void)state;
	size_t n = strlen(REGISTER);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(frame_n(REGISTER, k, MAX), 0);
	assert_int_equal(frame_n(REGISTER, n, MAX), (ssize_t)n);

	char *p = malloc(n);
	assert_non_null(p);
	memcpy(p, REGISTER, n);
	frame_state_t st;
	frame_state_init(&st);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(frame_message_resume(p, k, MAX, &st), 0);
	assert_int_equal(frame_message_resume(p, n, MAX, &st), (ssize_t)n);
	free(p);

	/* Two chunks at every split point, through the resumable API. */
	for (size_t k = 0; k <= n; k++) {
		frame_state_init(&st);
		ssize_t a = frame_message_resume(REGISTER, k, MAX, &st);
		ssize_t b = frame_message_resume(REGISTER, n, MAX, &st);
		assert_int_equal(a, k == n ? (ssize_t)n : 0);
		assert_int_equal(b, (ssize_t)n);
	}
}

static void test_back_to_back(void **state)
{
	(void)state;
	char buf[4096];
	size_t a = strlen(REGISTER), b = strlen(OPTIONS_NOBODY);
	memcpy(buf, REGISTER, a);
	memcpy(buf + a, OPTIONS_NOBODY, b);
	assert_int_equal(frame_n(buf, a + b, MAX), (ssize_t)a);
	assert_int_equal(frame_n(buf + a, b, MAX), (ssize_t)b);
	/* Reverse order: the body-less message first. */
	memcpy(buf, OPTIONS_NOBODY, b);
	memcpy(buf + b, REGISTER, a);
	assert_int_equal(frame_n(buf, a + b, MAX), (ssize_t)b);
	assert_int_equal(frame_n(buf + b, a, MAX), (ssize_t)a);
}

static void test_compact_and_spacing(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"l: 3", "L:3", "content-length:3", "CONTENT-LENGTH \t:  3 \t", "Content-Length: 003",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		assert_int_equal(frame_cl(ok[i], MAX), cl_len(ok[i], 3));
	/* Names that merely start like it are other headers: no body. */
	assert_int_equal(frame_cl("Lr: 3", MAX), cl_len("Lr: 3", 0));
	assert_int_equal(frame_cl("Content-Length-X: 3", MAX), cl_len("Content-Length-X: 3", 0));
	/* A folded continuation line is not a header of its own. */
	assert_int_equal(frame_cl("Subject: x\r\n l: 3", MAX), cl_len("Subject: x\r\n l: 3", 0));
}

static void test_bare_lf(void **state)
{
	(void)state;
	const char m[] = "MESSAGE sip:a@b SIP/2.0\nl: 2\n\nhi";
	assert_int_equal(frame_s(m, MAX), (ssize_t)strlen(m));
	const char mixed[] = "MESSAGE sip:a@b SIP/2.0\r\nl: 2\n\r\nhi";
	assert_int_equal(frame_s(mixed, MAX), (ssize_t)strlen(mixed));
}

static void test_duplicate(void **state)
{
	(void)state;
	const char *same = "Content-Length: 3\r\nl: 3";
	assert_int_equal(frame_cl(same, MAX), cl_len(same, 3));
	assert_int_equal(frame_cl("Content-Length: 3\r\nContent-Length: 4", MAX), -EBADMSG);
	assert_int_equal(frame_cl("l: 3\r\nContent-Length: 0", MAX), -EBADMSG);
}

static void test_bad_values(void **state)
{
	(void)state;
	assert_int_equal(frame_cl("Content-Length: -1", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: +3", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: abc", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: 0x3", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: 3 4", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: 3,3", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length:", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: ", MAX), -EBADMSG);
	/* Folding is not supported for the one header framing relies on. */
	assert_int_equal(frame_cl("Content-Length:\r\n 3", MAX), -EBADMSG);
	/* Overflow of 64 bits. */
	assert_int_equal(frame_cl("Content-Length: 18446744073709551616", MAX), -EBADMSG);
	assert_int_equal(frame_cl("Content-Length: 99999999999999999999999999", MAX), -EBADMSG);
	/* Leading zeros are still a small number. */
	const char *z = "Content-Length: 000000000000000000000000000003";
	assert_int_equal(frame_cl(z, MAX), cl_len(z, 3));
}

static void test_too_big(void **state)
{
	(void)state;
	/* Known to be too big as soon as the headers are in, before any
	 * body byte arrived. */
	const char m[] = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n";
	assert_int_equal(frame_s(m, MAX), -EMSGSIZE);
	/* Fits in 64 bits, not in any limit. */
	assert_int_equal(frame_cl("Content-Length: 18446744073709551615", MAX), -EMSGSIZE);
	assert_int_equal(frame_cl("Content-Length: 18446744073709551615", 0), -EMSGSIZE);

	/* Exact boundary: a message of max bytes is fine, one more is not. */
	size_t n = strlen(REGISTER);
	assert_int_equal(frame_s(REGISTER, n), (ssize_t)n);
	assert_int_equal(frame_s(REGISTER, n - 1), -EMSGSIZE);
	/* ...even when only the headers arrived so far. */
	const char *body = strstr(REGISTER, "\r\n\r\n") + 4;
	assert_int_equal(frame_n(REGISTER, (size_t)(body - REGISTER), n - 1), -EMSGSIZE);
	assert_int_equal(frame_n(REGISTER, (size_t)(body - REGISTER), n), 0);
}

static void test_missing_cl(void **state)
{
	(void)state;
	const char m[] = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
	assert_int_equal(frame_s(m, MAX), (ssize_t)strlen(m));
	/* Bytes after the empty line are the next message, not a body. */
	char buf[256];
	snprintf(buf, sizeof buf, "%sgarbage", m);
	assert_int_equal(frame_s(buf, MAX), (ssize_t)strlen(m));
	/* Content-Length in the start line or body is not a header. */
	const char sl[] = "OPTIONS sip:l:5@b SIP/2.0\r\nCall-ID: x\r\n\r\nl: 7\r\n";
	assert_int_equal(frame_s(sl, MAX), (ssize_t)(strlen(sl) - 6));
}

static void test_header_block_over_max(void **state)
{
	(void)state;
	enum { LIM = 1024 };
	char *p = malloc(4 * LIM);
	assert_non_null(p);
	memcpy(p, "INVITE sip:a@b SIP/2.0\r\n", 24);
	for (size_t i = 24; i < 4 * LIM; i++)
		p[i] = (i % 64 == 63) ? '\n' : 'X';
	assert_int_equal(frame_message(p, LIM - 1, LIM), 0);
	assert_int_equal(frame_message(p, LIM, LIM), -EMSGSIZE);
	assert_int_equal(frame_message(p, 4 * LIM, LIM), -EMSGSIZE);

	/* The resumable form gives the same answer and keeps it. */
	frame_state_t st;
	frame_state_init(&st);
	for (size_t k = 0; k < LIM; k++)
		assert_int_equal(frame_message_resume(p, k, LIM, &st), 0);
	assert_int_equal(frame_message_resume(p, LIM, LIM, &st), -EMSGSIZE);
	assert_int_equal(frame_message_resume(p, LIM + 10, LIM, &st), -EMSGSIZE);
	free(p);
}

/* A terminator ending exactly at max is accepted; one ending past it is
 * not, even though it starts inside. */
static void test_terminator_at_limit(void **state)
{
	(void)state;
	const char m[] = "OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n";
	size_t n = strlen(m);
	assert_int_equal(frame_s(m, n), (ssize_t)n);
	assert_int_equal(frame_s(m, n - 1), -EMSGSIZE);
	assert_int_equal(frame_s(m, n - 2), -EMSGSIZE);
}

static void test_keepalive(void **state)
{
	(void)state;
	int ping = -1;
	assert_int_equal(skip_s("", &ping), 0);
	assert_int_equal(ping, 0);
	assert_int_equal(skip_s("INVITE", &ping), 0);
	assert_int_equal(ping, 0);

	/* A complete ping. */
	assert_int_equal(skip_s("\r\n\r\n", &ping), 4);
	assert_int_equal(ping, 1);
	assert_int_equal(skip_s("\n\n", &ping), 2);
	assert_int_equal(ping, 1);
	/* Ping followed by a message. */
	assert_int_equal(skip_s("\r\n\r\nOPTIONS", &ping), 4);
	assert_int_equal(ping, 1);
	/* Stray CRLF before a message (RFC 3261 §7.5): noise, no pong. */
	assert_int_equal(skip_s("\r\nOPTIONS", &ping), 2);
	assert_int_equal(ping, 0);
	assert_int_equal(skip_s("\rOPTIONS", &ping), 1);
	assert_int_equal(ping, 0);

	/* Half a ping is kept for the next read... */
	assert_int_equal(skip_s("\r\n", &ping), 0);
	assert_int_equal(ping, 0);
	assert_int_equal(skip_s("\r\n\r", &ping), 0);
	assert_int_equal(ping, 0);
	assert_int_equal(skip_s("\r", &ping), 0);
	/* ...and a ping and a half keeps the half. */
	assert_int_equal(skip_s("\r\n\r\n\r\n", &ping), 4);
	assert_int_equal(ping, 1);
	assert_int_equal(skip_s("\r\n\r\n\r\n\r\n", &ping), 8);
	assert_int_equal(ping, 1);
	/* NULL ping pointer is allowed. */
	assert_int_equal(skip_s("\r\n\r\nX", NULL), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_split_every_byte),
		cmocka_unit_test(test_back_to_back),
		cmocka_unit_test(test_compact_and_spacing),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_missing_cl),
		cmocka_unit_test(test_header_block_over_max),
		cmocka_unit_test(test_terminator_at_limit),
		cmocka_unit_test(test_keepalive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
