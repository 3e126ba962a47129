/* Unit tests for server/auth: digest hashing against the published
 * examples (RFC 7616 §3.9.1, RFC 2617 §3.5, RFC 2069 §2.4), the
 * Authorization parser's edge cases, stateless nonces and the challenge
 * format.  Every string the parser sees in the truncation test sits in a
 * heap block of exactly its size, so ASan catches any read past the NUL. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/auth/auth.h"

/* RFC 7616 §3.9.1. */
#define RFC_USER "Mufasa"
#define RFC_PASS "Circle of Life"
#define RFC_REALM "http-auth@example.org"
#define RFC_NONCE "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
#define RFC_CNONCE "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
#define RFC_OPAQUE "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
#define RFC_URI "/dir/index.html"
#define RFC_MD5_HA1 "3d78807defe7de2157e2b0b6573a855f"
#define RFC_MD5_RESP "8ca523f5e9506fed4657c9700eebdbec"
#define RFC_SHA256_HA1 "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
#define RFC_SHA256_RESP "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"

/* The Authorization value of RFC 7616 §3.9.1, folded over lines as printed
 * there (CRLF + SP is one SP, RFC 3261 §7.3.1). */
#define RFC_HEADER(algo, resp)                                                     \
	"Digest username=\"" RFC_USER "\",\r\n"                                    \
	"       realm=\"" RFC_REALM "\",\r\n"                                      \
	"       uri=\"" RFC_URI "\",\r\n"                                          \
	"       algorithm=" algo ",\r\n"                                           \
	"       nonce=\"" RFC_NONCE "\",\r\n"                                      \
	"       nc=00000001,\r\n"                                                  \
	"       cnonce=\"" RFC_CNONCE "\",\r\n"                                    \
	"       qop=auth,\r\n"                                                     \
	"       response=\"" resp "\",\r\n"                                        \
	"       opaque=\"" RFC_OPAQUE "\""

/* A minimal valid header with one extra parameter spliced in front. */
#define MINIMAL(extra)                                                             \
	"Digest " extra "username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", " \
	"response=\"00000000000000000000000000000000\""

static int parse(const char *v)
{
	auth_creds_t c;

	return auth_parse_credentials(v, &c);
}

/* ---- hashing: published vectors ---- */

static void test_hash_hex_known(void **state)
{
	char out[AUTH_HEX_MAX];

	(void)state;
	auth_hash_hex(AUTH_ALGO_MD5, "", 0, out);
	assert_string_equal(out, "d41d8cd98f00b204e9800998ecf8427e");
	auth_hash_hex(AUTH_ALGO_SHA256, "abc", 3, out);
	assert_string_equal(out,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* An unknown algorithm gives "", which no check accepts. */
	auth_hash_hex((auth_algo_t)0, "abc", 3, out);
	assert_string_equal(out, "");
}

static void test_rfc7616_md5(void **state)
{
	char ha1[AUTH_HEX_MAX], resp[AUTH_HEX_MAX];

	(void)state;
	auth_ha1(AUTH_ALGO_MD5, RFC_USER, RFC_REALM, RFC_PASS, ha1);
	assert_string_equal(ha1, RFC_MD5_HA1);
	auth_response(AUTH_ALGO_MD5, ha1, RFC_NONCE, "00000001", RFC_CNONCE, "auth", "GET",
		      RFC_URI, resp);
	assert_string_equal(resp, RFC_MD5_RESP);
}

static void test_rfc7616_sha256(void **state)
{
	char ha1[AUTH_HEX_MAX], resp[AUTH_HEX_MAX];

	(void)state;
	auth_ha1(AUTH_ALGO_SHA256, RFC_USER, RFC_REALM, RFC_PASS, ha1);
	assert_string_equal(ha1, RFC_SHA256_HA1);
	auth_response(AUTH_ALGO_SHA256, ha1, RFC_NONCE, "00000001", RFC_CNONCE, "auth", "GET",
		      RFC_URI, resp);
	assert_string_equal(resp, RFC_SHA256_RESP);
}

/* RFC 2617 §3.5 (qop=auth) and RFC 2069 §2.4 (no qop), both MD5. */
static void test_rfc2617_and_rfc2069(void **state)
{
	char ha1[AUTH_HEX_MAX], resp[AUTH_HEX_MAX];

	(void)state;
	auth_ha1(AUTH_ALGO_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", ha1);
	auth_response(AUTH_ALGO_MD5, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001",
		      "0a4f113b", "auth", "GET", "/dir/index.html", resp);
	assert_string_equal(resp, "6629fae49393a05397450978507c4ef1");

	auth_ha1(AUTH_ALGO_MD5, "Mufasa", "testrealm@host.com", "CircleOfLife", ha1);
	auth_response(AUTH_ALGO_MD5, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", NULL, NULL, "",
		      "GET", "/dir/index.html", resp);
	assert_string_equal(resp, "1949323746fe6a43ef61f9606e7febea");
}

/* ---- parse + check, end to end on the RFC headers ---- */

static void test_rfc7616_header_md5(void **state)
{
	auth_creds_t c;

	(void)state;
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5", RFC_MD5_RESP), &c), 0);
	assert_string_equal(c.username, RFC_USER);
	assert_string_equal(c.realm, RFC_REALM);
	assert_string_equal(c.nonce, RFC_NONCE);
	assert_string_equal(c.uri, RFC_URI);
	assert_string_equal(c.response, RFC_MD5_RESP);
	assert_string_equal(c.cnonce, RFC_CNONCE);
	assert_string_equal(c.nc, "00000001");
	assert_string_equal(c.qop, "auth");
	assert_string_equal(c.opaque, RFC_OPAQUE);
	assert_int_equal(c.algo, AUTH_ALGO_MD5);
	assert_true(auth_check_response(&c, "GET", RFC_MD5_HA1));
	/* The method is part of A2: the same credentials do not fit a POST. */
	assert_false(auth_check_response(&c, "POST", RFC_MD5_HA1));
}

static void test_rfc7616_header_sha256(void **state)
{
	auth_creds_t c;

	(void)state;
	/* Algorithm names are case-insensitive. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("sha-256", RFC_SHA256_RESP), &c), 0);
	assert_int_equal(c.algo, AUTH_ALGO_SHA256);
	assert_true(auth_check_response(&c, "GET", RFC_SHA256_HA1));
	/* An MD5 HA1 is the wrong length for SHA-256. */
	assert_false(auth_check_response(&c, "GET", RFC_MD5_HA1));
}

static void test_check_hex_case_insensitive(void **state)
{
	auth_creds_t c;
	char upper[AUTH_HEX_MAX];

	(void)state;
	assert_int_equal(auth_parse_credentials(RFC_HEADER("SHA-256",
			 "753927FA0E85D155564E2E272A28D1802CA10DAF4496794697CF8DB5856CB6C1"), &c), 0);
	assert_true(auth_check_response(&c, "GET", RFC_SHA256_HA1));
	/* An HA1 stored in upper case works too. */
	for (size_t i = 0; i <= strlen(RFC_SHA256_HA1); i++)
		upper[i] = (char)((RFC_SHA256_HA1[i] >= 'a' && RFC_SHA256_HA1[i] <= 'f')
				  ? RFC_SHA256_HA1[i] - 32 : RFC_SHA256_HA1[i]);
	assert_true(auth_check_response(&c, "GET", upper));
}

static void test_wrong_password_fails(void **state)
{
	auth_creds_t c;
	char ha1[AUTH_HEX_MAX];

	(void)state;
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5", RFC_MD5_RESP), &c), 0);
	auth_ha1(AUTH_ALGO_MD5, RFC_USER, RFC_REALM, "Circle Of Life", ha1);
	assert_false(auth_check_response(&c, "GET", ha1));
	auth_ha1(AUTH_ALGO_MD5, RFC_USER, RFC_REALM, "", ha1);
	assert_false(auth_check_response(&c, "GET", ha1));
	auth_ha1(AUTH_ALGO_MD5, RFC_USER, RFC_REALM, RFC_PASS, ha1);
	assert_true(auth_check_response(&c, "GET", ha1));
}

static void test_check_rejects_bad_response(void **state)
{
	auth_creds_t c;

	(void)state;
	/* One digit off. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5",
			 "8ca523f5e9506fed4657c9700eebdbed"), &c), 0);
	assert_false(auth_check_response(&c, "GET", RFC_MD5_HA1));
	/* Not hex, right length. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5",
			 "8ca523f5e9506fed4657c9700eebdbeg"), &c), 0);
	assert_false(auth_check_response(&c, "GET", RFC_MD5_HA1));
	/* A prefix of the right answer. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5", "8ca523f5"), &c), 0);
	assert_false(auth_check_response(&c, "GET", RFC_MD5_HA1));
	/* An empty response. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5", ""), &c), 0);
	assert_false(auth_check_response(&c, "GET", RFC_MD5_HA1));
	/* A SHA-256 length response to an MD5 algorithm. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5", RFC_SHA256_RESP), &c), 0);
	assert_false(auth_check_response(&c, "GET", RFC_MD5_HA1));
	/* Bad HA1: wrong length, non-hex. */
	assert_int_equal(auth_parse_credentials(RFC_HEADER("MD5", RFC_MD5_RESP), &c), 0);
	assert_false(auth_check_response(&c, "GET", "3d78807defe7de2157e2b0b6573a855"));
	assert_false(auth_check_response(&c, "GET", "3d78807defe7de2157e2b0b6573a855fz"));
	assert_false(auth_check_response(&c, "GET", "zd78807defe7de2157e2b0b6573a855f"));
	assert_false(auth_check_response(NULL, "GET", RFC_MD5_HA1));
	assert_false(auth_check_response(&c, NULL, RFC_MD5_HA1));
	assert_false(auth_check_response(&c, "GET", NULL));
}

/* RFC 2069 form: no qop, no cnonce/nc; algorithm defaults to MD5. */
static void test_legacy_no_qop(void **state)
{
	auth_creds_t c;

	(void)state;
	assert_int_equal(auth_parse_credentials(
			 "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
			 "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", "
			 "response=\"1949323746fe6a43ef61f9606e7febea\", "
			 "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"", &c), 0);
	assert_int_equal(c.algo, AUTH_ALGO_MD5);
	assert_string_equal(c.qop, "");
	assert_string_equal(c.cnonce, "");
	assert_string_equal(c.nc, "");

	char ha1[AUTH_HEX_MAX];
	auth_ha1(AUTH_ALGO_MD5, "Mufasa", "testrealm@host.com", "CircleOfLife", ha1);
	assert_true(auth_check_response(&c, "GET", ha1));
	auth_ha1(AUTH_ALGO_MD5, "Mufasa", "testrealm@host.com", "circleoflife", ha1);
	assert_false(auth_check_response(&c, "GET", ha1));
}

/* A SIP client round trip: challenge, answer, check. */
static void test_round_trip_sip(void **state)
{
	char nonce[64], ha1[AUTH_HEX_MAX], resp[AUTH_HEX_MAX], hdr[1024];
	auth_creds_t c;
	const time_t now = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init("cluster secret"), 0);
	auth_nonce_make("example.com", now, nonce, sizeof nonce);
	auth_ha1(AUTH_ALGO_SHA256, "alice", "example.com", "s3cret", ha1);
	auth_response(AUTH_ALGO_SHA256, ha1, nonce, "0000000a", "xyz", "auth", "REGISTER",
		      "sip:example.com", resp);
	snprintf(hdr, sizeof hdr,
		 "Digest username=\"alice\",realm=\"example.com\",nonce=\"%s\","
		 "uri=\"sip:example.com\",response=\"%s\",algorithm=SHA-256,"
		 "cnonce=\"xyz\",qop=auth,nc=0000000a",
		 nonce, resp);
	assert_int_equal(auth_parse_credentials(hdr, &c), 0);
	assert_int_equal(auth_nonce_check(c.nonce, c.realm, now + 10, 300), 0);
	assert_true(auth_check_response(&c, "REGISTER", ha1));
	assert_false(auth_check_response(&c, "INVITE", ha1));
}

/* ---- parser edge cases ---- */

static void test_parse_escapes(void **state)
{
	auth_creds_t c;

	(void)state;
	/* \" and \\ are quoted-pairs; \a is just a. */
	assert_int_equal(auth_parse_credentials(
			 "Digest username=\"Mu\\\"fa\\\\sa\\a\", realm=\"r\\,x\", nonce=\"n\", "
			 "uri=\"sip:a@b\", response=\"\"", &c), 0);
	assert_string_equal(c.username, "Mu\"fa\\saa");
	assert_string_equal(c.realm, "r,x");
	/* Commas and '=' inside a quoted string are content, not syntax. */
	assert_int_equal(auth_parse_credentials(
			 "Digest username=\"a,b=c\", realm=\"r\", nonce=\"n\", uri=\"u\", "
			 "response=\"x\", opaque=\", , ,\"", &c), 0);
	assert_string_equal(c.username, "a,b=c");
	assert_string_equal(c.opaque, ", , ,");
	/* UTF-8 passes through unchanged. */
	assert_int_equal(auth_parse_credentials(
			 "Digest username=\"J\xc3\xa4s\xc3\xb8n\", realm=\"r\", nonce=\"n\", "
			 "uri=\"u\", response=\"x\"", &c), 0);
	assert_string_equal(c.username, "J\xc3\xa4s\xc3\xb8n");
	/* Backslash right before the end, and an unterminated string. */
	assert_int_equal(parse("Digest username=\"abc\\"), -EINVAL);
	assert_int_equal(parse("Digest username=\"abc"), -EINVAL);
	assert_int_equal(parse(MINIMAL("opaque=\"abc\\")), -EINVAL);
	/* Control characters are not qdtext, escaped or not. */
	assert_int_equal(parse(MINIMAL("opaque=\"a\nb\", ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("opaque=\"a\\\nb\", ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("opaque=\"a\x7f\", ")), -EINVAL);
}

static void test_parse_whitespace_and_case(void **state)
{
	auth_creds_t c;

	(void)state;
	/* Scheme and parameter names are case-insensitive; OWS around '=',
	 * tabs, empty list elements and a trailing comma are all fine. */
	assert_int_equal(auth_parse_credentials(
			 "  dIgEsT\tUserName = \"u\" ,, REALM=\t\"r\",\t, nonce =n,"
			 "URI=\"sip:x\" , Response = \"ab\" , ", &c), 0);
	assert_string_equal(c.username, "u");
	assert_string_equal(c.realm, "r");
	assert_string_equal(c.nonce, "n");
	assert_string_equal(c.uri, "sip:x");
	assert_string_equal(c.response, "ab");
	/* Values may be tokens. */
	assert_int_equal(auth_parse_credentials(
			 "Digest username=bob, realm=example.com, nonce=abc-_.~, uri=\"u\", "
			 "response=0123abcd, algorithm=\"MD5\", qop=\"AUTH\", nc=0000000F, "
			 "cnonce=c", &c), 0);
	assert_string_equal(c.username, "bob");
	assert_string_equal(c.nonce, "abc-_.~");
	assert_string_equal(c.qop, "auth");
	assert_string_equal(c.nc, "0000000F");
	assert_int_equal(c.algo, AUTH_ALGO_MD5);
}

static void test_parse_unknown_params_ignored(void **state)
{
	auth_creds_t c;

	(void)state;
	assert_int_equal(auth_parse_credentials(
			 MINIMAL("x-foo=bar, x-quoted=\"a, b=\\\"c\\\"\", x-foo=again, "
				 "username*=UTF-8''J%C3%A4s%C3%B8n, "), &c), 0);
	assert_string_equal(c.username, "u");
	/* An unknown value longer than any buffer is skipped, not copied. */
	char big[4096];
	memset(big, 'a', sizeof big);
	memcpy(big, "Digest x=\"", 10);
	const char tail[] = "\", username=u, realm=r, nonce=n, uri=u, response=x";
	memcpy(big + sizeof big - sizeof tail, tail, sizeof tail);
	assert_int_equal(auth_parse_credentials(big, &c), 0);
	assert_string_equal(c.realm, "r");
}

static void test_parse_missing_required(void **state)
{
	static const char *const params[] = {
		"username=\"u\"", "realm=\"r\"", "nonce=\"n\"", "uri=\"u\"", "response=\"x\"",
	};
	char buf[256];

	(void)state;
	/* Each of the five left out in turn. */
	for (size_t skip = 0; skip < 5; skip++) {
		strcpy(buf, "Digest ");
		for (size_t i = 0; i < 5; i++) {
			if (i == skip)
				continue;
			strcat(buf, params[i]);
			strcat(buf, ", ");
		}
		assert_int_equal(parse(buf), -EINVAL);
	}
	/* With qop=auth, cnonce and nc become required. */
	assert_int_equal(parse(MINIMAL("qop=auth, nc=00000001, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=\"c\", ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=\"c\", nc=00000001, ")), 0);
}

static void test_parse_overlong(void **state)
{
	char v[2048];
	char field[600];
	auth_creds_t c;

	(void)state;
	/* username: AUTH_FIELD_MAX - 1 characters fit, one more does not. */
	memset(field, 'a', AUTH_FIELD_MAX - 1);
	field[AUTH_FIELD_MAX - 1] = '\0';
	snprintf(v, sizeof v, "Digest username=\"%s\", realm=r, nonce=n, uri=u, response=x", field);
	assert_int_equal(auth_parse_credentials(v, &c), 0);
	assert_int_equal(strlen(c.username), AUTH_FIELD_MAX - 1);
	field[AUTH_FIELD_MAX - 1] = 'a';
	field[AUTH_FIELD_MAX] = '\0';
	snprintf(v, sizeof v, "Digest username=\"%s\", realm=r, nonce=n, uri=u, response=x", field);
	assert_int_equal(parse(v), -EINVAL);
	/* The same with a token value, and for nonce. */
	snprintf(v, sizeof v, "Digest username=u, realm=r, nonce=%s, uri=u, response=x", field);
	assert_int_equal(parse(v), -EINVAL);

	/* uri has twice the room. */
	memset(field, 'u', 2 * AUTH_FIELD_MAX - 1);
	field[2 * AUTH_FIELD_MAX - 1] = '\0';
	snprintf(v, sizeof v, "Digest username=u, realm=r, nonce=n, uri=\"%s\", response=x", field);
	assert_int_equal(parse(v), 0);
	field[2 * AUTH_FIELD_MAX - 1] = 'u';
	field[2 * AUTH_FIELD_MAX] = '\0';
	snprintf(v, sizeof v, "Digest username=u, realm=r, nonce=n, uri=\"%s\", response=x", field);
	assert_int_equal(parse(v), -EINVAL);

	/* response: 64 hex digits fit, 65 do not. */
	assert_int_equal(parse(MINIMAL("x=1, ")), 0);
	assert_int_equal(parse("Digest username=u, realm=r, nonce=n, uri=u, response="
			       "\"" RFC_SHA256_RESP "\""), 0);
	assert_int_equal(parse("Digest username=u, realm=r, nonce=n, uri=u, response="
			       "\"" RFC_SHA256_RESP "0\""), -EINVAL);
	/* nc, qop and algorithm have small buffers too. */
	assert_int_equal(parse(MINIMAL("nc=0000000000000001, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=\"authauthauthauthauthauthauthauth\", ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("algorithm=MD5MD5MD5MD5MD5MD5MD5MD5MD5MD5MD5, ")), -EINVAL);
	/* An escaped character counts once, not twice. */
	memset(field, 'a', AUTH_FIELD_MAX - 2);
	field[AUTH_FIELD_MAX - 2] = '\0';
	snprintf(v, sizeof v, "Digest username=\"%s\\b\", realm=r, nonce=n, uri=u, response=x",
		 field);
	assert_int_equal(auth_parse_credentials(v, &c), 0);
	assert_int_equal(c.username[AUTH_FIELD_MAX - 2], 'b');
}

static void test_parse_duplicates(void **state)
{
	(void)state;
	assert_int_equal(parse(MINIMAL("username=\"v\", ")), -EINVAL);
	/* Names are case-insensitive, so this is a duplicate too. */
	assert_int_equal(parse(MINIMAL("Realm=\"r\", ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("algorithm=MD5, algorithm=MD5, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=c, nc=00000001, nc=00000002, ")),
			 -EINVAL);
	/* Even an empty duplicate. */
	assert_int_equal(parse(MINIMAL("opaque=\"\", opaque=\"\", ")), -EINVAL);
}

static void test_parse_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"   ",
		"Digest",
		"Digest ",
		"Digest\t",
		"Digestusername=\"u\"",
		"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
		"Digets username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"",
		"Digest username",
		"Digest username=",
		"Digest username=,realm=r",
		"Digest =\"u\"",
		"Digest username\"u\"",
		"Digest username=\"u\" realm=\"r\", nonce=n, uri=u, response=x",
		"Digest username=\"u\"realm=\"r\", nonce=n, uri=u, response=x",
		"Digest username=u realm=r nonce=n uri=u response=x",
		"Digest username=sip:u, realm=r, nonce=n, uri=u, response=x",
		"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"; q=1",
		"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"\"",
		"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"\r\n",
		"Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"x\"\rX",
		"\"Digest\" username=\"u\"",
		",,,,",
		"Digest ,,,,",
		"Digest \"\"\"\"\"",
		"Digest \\\\\\\\",
	};

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (parse(bad[i]) != -EINVAL)
			fail_msg("accepted garbage #%zu: %s", i, bad[i]);
	}
	assert_int_equal(auth_parse_credentials(NULL, NULL), -EINVAL);
	assert_int_equal(parse(NULL), -EINVAL);
}

static void test_parse_algorithms(void **state)
{
	auth_creds_t c;

	(void)state;
	assert_int_equal(auth_parse_credentials(MINIMAL("algorithm=md5, "), &c), 0);
	assert_int_equal(c.algo, AUTH_ALGO_MD5);
	assert_int_equal(auth_parse_credentials(MINIMAL("algorithm=\"Sha-256\", "), &c), 0);
	assert_int_equal(c.algo, AUTH_ALGO_SHA256);
	assert_int_equal(auth_parse_credentials(MINIMAL(""), &c), 0);
	assert_int_equal(c.algo, AUTH_ALGO_MD5);

	assert_int_equal(parse(MINIMAL("algorithm=MD5-sess, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("algorithm=SHA-256-sess, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("algorithm=SHA-512-256, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("algorithm=SHA-512-256-sess, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("algorithm=AKAv1-MD5, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("algorithm=SHA256, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("algorithm=\"\", ")), -ENOTSUP);
	/* On error the output holds nothing from the header. */
	assert_int_equal(auth_parse_credentials(MINIMAL("algorithm=MD5-sess, "), &c), -ENOTSUP);
	assert_string_equal(c.username, "");
	assert_string_equal(c.response, "");

	auth_algo_t a = 0;
	assert_int_equal(auth_algo_parse("sha-256", &a), 0);
	assert_int_equal(a, AUTH_ALGO_SHA256);
	assert_int_equal(auth_algo_parse("MD5 ", &a), -ENOTSUP);
	assert_string_equal(auth_algo_name(AUTH_ALGO_MD5), "MD5");
	assert_string_equal(auth_algo_name(AUTH_ALGO_SHA256), "SHA-256");
	assert_string_equal(auth_algo_name((auth_algo_t)7), "");
}

static void test_parse_qop_nc_userhash(void **state)
{
	(void)state;
	assert_int_equal(parse(MINIMAL("qop=auth-int, cnonce=c, nc=00000001, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("qop=bogus, cnonce=c, nc=00000001, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=\"auth,auth-int\", cnonce=c, nc=00000001, ")),
			 -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=\"\", cnonce=c, nc=00000001, ")), -EINVAL);
	/* nc is exactly 8 hex digits. */
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=c, nc=0000001, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=c, nc=000000001, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=c, nc=0000000g, ")), -EINVAL);
	assert_int_equal(parse(MINIMAL("qop=auth, cnonce=c, nc=\"0000000a\", ")), 0);
	/* userhash=true would hide the username; false is the default. */
	assert_int_equal(parse(MINIMAL("userhash=true, ")), -ENOTSUP);
	assert_int_equal(parse(MINIMAL("userhash=\"FALSE\", ")), 0);
	assert_int_equal(parse(MINIMAL("userhash=maybe, ")), -EINVAL);
}

/* Every prefix of a valid header, each in a heap block of its exact size:
 * whatever the verdict, ASan sees no read past the NUL. */
static void test_parse_truncations(void **state)
{
	const char *full = RFC_HEADER("SHA-256", RFC_SHA256_RESP)
	    ", x=\"a\\\"b\", userhash=false";
	size_t n = strlen(full);

	(void)state;
	for (size_t len = 0; len <= n; len++) {
		char *s = malloc(len + 1);
		auth_creds_t c;
		int rc;

		assert_non_null(s);
		memcpy(s, full, len);
		s[len] = '\0';
		rc = auth_parse_credentials(s, &c);
		assert_true(rc == 0 || rc == -EINVAL || rc == -ENOTSUP);
		if (len == n)
			assert_int_equal(rc, 0);
		free(s);
	}
}

/* ---- nonces ---- */

static bool is_b64url(const char *s)
{
	for (; *s; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	}
	return true;
}

static void test_nonce_fresh_and_stale(void **state)
{
	char n[64];
	const time_t t = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init("s3cret"), 0);
	auth_nonce_make("example.com", t, n, sizeof n);
	assert_int_equal(strlen(n), AUTH_NONCE_LEN);
	assert_true(is_b64url(n));
	assert_int_equal(auth_nonce_check(n, "example.com", t, 300), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", t + 300, 300), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", t + 301, 300), -ETIMEDOUT);
	assert_int_equal(auth_nonce_check(n, "example.com", t + 86400 * 365, 300), -ETIMEDOUT);
	assert_int_equal(auth_nonce_check(n, "example.com", t + 1, 0), -ETIMEDOUT);
	/* Same secret, same time, same realm: same nonce (any node can
	 * check what another issued); another time gives another nonce. */
	char n2[64];
	auth_nonce_make("example.com", t, n2, sizeof n2);
	assert_string_equal(n, n2);
	auth_nonce_make("example.com", t + 1, n2, sizeof n2);
	assert_string_not_equal(n, n2);
}

static void test_nonce_future(void **state)
{
	char n[64];
	const time_t t = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init("s3cret"), 0);
	auth_nonce_make("example.com", t, n, sizeof n);
	/* A little clock skew between nodes is tolerated, more is not. */
	assert_int_equal(auth_nonce_check(n, "example.com", t - AUTH_NONCE_FUTURE_S, 300), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", t - AUTH_NONCE_FUTURE_S - 1, 300),
			 -EINVAL);
	assert_int_equal(auth_nonce_check(n, "example.com", 0, 300), -EINVAL);
	/* Timestamps around 0 and negative ones behave too. */
	auth_nonce_make("example.com", 0, n, sizeof n);
	assert_int_equal(auth_nonce_check(n, "example.com", 10, 300), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", -10, 300), -EINVAL);
	auth_nonce_make("example.com", -100, n, sizeof n);
	assert_int_equal(auth_nonce_check(n, "example.com", 0, 300), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", 1000, 300), -ETIMEDOUT);
}

static void test_nonce_forged(void **state)
{
	char n[64], f[64];
	const time_t t = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init("s3cret"), 0);
	auth_nonce_make("example.com", t, n, sizeof n);
	/* Any single character changed, in the timestamp or in the tag. */
	for (size_t i = 0; i < AUTH_NONCE_LEN; i++) {
		strcpy(f, n);
		f[i] = f[i] == 'A' ? 'B' : 'A';
		assert_int_equal(auth_nonce_check(f, "example.com", t, 300), -EINVAL);
	}
	/* Wrong length, wrong alphabet, padding, empty, NULL. */
	strcpy(f, n);
	f[AUTH_NONCE_LEN - 1] = '\0';
	assert_int_equal(auth_nonce_check(f, "example.com", t, 300), -EINVAL);
	strcpy(f, n);
	f[AUTH_NONCE_LEN] = 'A';
	f[AUTH_NONCE_LEN + 1] = '\0';
	assert_int_equal(auth_nonce_check(f, "example.com", t, 300), -EINVAL);
	strcpy(f, n);
	f[3] = '+';
	assert_int_equal(auth_nonce_check(f, "example.com", t, 300), -EINVAL);
	f[3] = '=';
	assert_int_equal(auth_nonce_check(f, "example.com", t, 300), -EINVAL);
	assert_int_equal(auth_nonce_check("", "example.com", t, 300), -EINVAL);
	assert_int_equal(auth_nonce_check(RFC_NONCE, "example.com", t, 300), -EINVAL);
	assert_int_equal(auth_nonce_check(NULL, "example.com", t, 300), -EINVAL);
	assert_int_equal(auth_nonce_check(n, NULL, t, 300), -EINVAL);
	/* A stale forgery is still a forgery, not "stale". */
	strcpy(f, n);
	f[AUTH_NONCE_LEN - 1] = f[AUTH_NONCE_LEN - 1] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_nonce_check(f, "example.com", t + 3600, 300), -EINVAL);
}

static void test_nonce_other_realm_or_secret(void **state)
{
	char n[64];
	const time_t t = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init("s3cret"), 0);
	auth_nonce_make("example.com", t, n, sizeof n);
	assert_int_equal(auth_nonce_check(n, "example.org", t, 300), -EINVAL);
	assert_int_equal(auth_nonce_check(n, "Example.com", t, 300), -EINVAL);
	assert_int_equal(auth_nonce_check(n, "", t, 300), -EINVAL);
	/* Another node with the same configured secret accepts it... */
	assert_int_equal(auth_nonce_init("s3cret"), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", t, 300), 0);
	/* ...a node with another secret does not. */
	assert_int_equal(auth_nonce_init("other"), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", t, 300), -EINVAL);
	/* Nor does a random secret. */
	assert_int_equal(auth_nonce_init(NULL), 0);
	assert_int_equal(auth_nonce_check(n, "example.com", t, 300), -EINVAL);
}

static void test_nonce_random_secret(void **state)
{
	char a[64], b[64];
	const time_t t = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init(NULL), 0);
	auth_nonce_make("r", t, a, sizeof a);
	assert_int_equal(auth_nonce_check(a, "r", t, 60), 0);
	assert_int_equal(auth_nonce_init(NULL), 0);
	auth_nonce_make("r", t, b, sizeof b);
	assert_int_equal(strlen(b), AUTH_NONCE_LEN);
	/* Same time, fresh random key: a different tag. */
	assert_string_not_equal(a, b);
	assert_int_equal(auth_nonce_check(a, "r", t, 60), -EINVAL);
	assert_int_equal(auth_nonce_check(b, "r", t, 60), 0);
	assert_int_equal(auth_nonce_init(""), -EINVAL);
}

static void test_nonce_make_limits(void **state)
{
	char n[64];
	char realm[AUTH_FIELD_MAX + 1];

	(void)state;
	assert_int_equal(auth_nonce_init("s3cret"), 0);
	/* Too small for 32 characters and the NUL: "" rather than a cut
	 * nonce. */
	memset(n, 'x', sizeof n);
	auth_nonce_make("r", 1, n, AUTH_NONCE_LEN);
	assert_string_equal(n, "");
	auth_nonce_make("r", 1, n, AUTH_NONCE_LEN + 1);
	assert_int_equal(strlen(n), AUTH_NONCE_LEN);
	/* The longest realm a parsed header can carry works; one more does
	 * not. */
	memset(realm, 'r', AUTH_FIELD_MAX - 1);
	realm[AUTH_FIELD_MAX - 1] = '\0';
	auth_nonce_make(realm, 1, n, sizeof n);
	assert_int_equal(strlen(n), AUTH_NONCE_LEN);
	assert_int_equal(auth_nonce_check(n, realm, 1, 60), 0);
	realm[AUTH_FIELD_MAX - 1] = 'r';
	realm[AUTH_FIELD_MAX] = '\0';
	auth_nonce_make(realm, 1, n, sizeof n);
	assert_string_equal(n, "");
	auth_nonce_make(NULL, 1, n, sizeof n);
	assert_string_equal(n, "");
}

/* ---- challenge ---- */

static void test_challenge_format(void **state)
{
	char out[256];

	(void)state;
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "example.com", "abcDEF-_", false, out,
					sizeof out), 0);
	assert_string_equal(out, "Digest realm=\"example.com\", nonce=\"abcDEF-_\", "
				 "algorithm=MD5, qop=\"auth\"");
	assert_int_equal(auth_challenge(AUTH_ALGO_SHA256, "example.com", "abc", true, out,
					sizeof out), 0);
	assert_string_equal(out, "Digest realm=\"example.com\", nonce=\"abc\", "
				 "algorithm=SHA-256, qop=\"auth\", stale=true");
	/* A realm with quote or backslash comes out as a valid quoted-string. */
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "a\"b\\c", "n", false, out, sizeof out),
			 0);
	assert_string_equal(out, "Digest realm=\"a\\\"b\\\\c\", nonce=\"n\", algorithm=MD5, "
				 "qop=\"auth\"");
}

static void test_challenge_limits(void **state)
{
	const char *want = "Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth\", stale=true";
	size_t need = strlen(want) + 1;
	char out[128];

	(void)state;
	/* Exactly enough room, then one byte less. */
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "r", "n", true, out, need), 0);
	assert_string_equal(out, want);
	memset(out, 'x', sizeof out);
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "r", "n", true, out, need - 1), -ENOSPC);
	assert_string_equal(out, "");
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "r", "n", true, out, 1), -ENOSPC);
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "r", "n", true, out, 0), -ENOSPC);
	/* No header injection through the realm or nonce. */
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "r\r\nX-Evil: 1", "n", false, out,
					sizeof out), -EINVAL);
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, "r", "n\n", false, out, sizeof out),
			 -EINVAL);
	assert_int_equal(auth_challenge((auth_algo_t)0, "r", "n", false, out, sizeof out),
			 -EINVAL);
	assert_int_equal(auth_challenge(AUTH_ALGO_MD5, NULL, "n", false, out, sizeof out),
			 -EINVAL);
}

/* The challenge we send, with a real nonce, answered and checked. */
static void test_challenge_nonce_round_trip(void **state)
{
	char nonce[64], chal[256];
	const time_t t = 1700000000;

	(void)state;
	assert_int_equal(auth_nonce_init(NULL), 0);
	auth_nonce_make("example.com", t, nonce, sizeof nonce);
	assert_int_equal(auth_challenge(AUTH_ALGO_SHA256, "example.com", nonce, false, chal,
					sizeof chal), 0);
	/* The nonce appears verbatim: base64url needs no escaping. */
	assert_non_null(strstr(chal, nonce));
	assert_int_equal(strlen(chal), strlen("Digest realm=\"example.com\", nonce=\"\", "
					      "algorithm=SHA-256, qop=\"auth\"") + AUTH_NONCE_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_hex_known),
		cmocka_unit_test(test_rfc7616_md5),
		cmocka_unit_test(test_rfc7616_sha256),
		cmocka_unit_test(test_rfc2617_and_rfc2069),
		cmocka_unit_test(test_rfc7616_header_md5),
		cmocka_unit_test(test_rfc7616_header_sha256),
		cmocka_unit_test(test_check_hex_case_insensitive),
		cmocka_unit_test(test_wrong_password_fails),
		cmocka_unit_test(test_check_rejects_bad_response),
		cmocka_unit_test(test_legacy_no_qop),
		cmocka_unit_test(test_round_trip_sip),
		cmocka_unit_test(test_parse_escapes),
		cmocka_unit_test(test_parse_whitespace_and_case),
		cmocka_unit_test(test_parse_unknown_params_ignored),
		cmocka_unit_test(test_parse_missing_required),
		cmocka_unit_test(test_parse_overlong),
		cmocka_unit_test(test_parse_duplicates),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_parse_algorithms),
		cmocka_unit_test(test_parse_qop_nc_userhash),
		cmocka_unit_test(test_parse_truncations),
		cmocka_unit_test(test_nonce_fresh_and_stale),
		cmocka_unit_test(test_nonce_future),
		cmocka_unit_test(test_nonce_forged),
		cmocka_unit_test(test_nonce_other_realm_or_secret),
		cmocka_unit_test(test_nonce_random_secret),
		cmocka_unit_test(test_nonce_make_limits),
		cmocka_unit_test(test_challenge_format),
		cmocka_unit_test(test_challenge_limits),
		cmocka_unit_test(test_challenge_nonce_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
