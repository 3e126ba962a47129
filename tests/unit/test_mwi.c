/* Unit tests of the message-summary package (RFC 3842): the strict
 * parser of application/simple-message-summary PUBLISH bodies, the
 * merge of several publications and the NOTIFY body composer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pkgs.h"

static int parse(const char *s, mwi_summary_t *out)
{
	char why[128] = "";
	return mwi_parse(s, strlen(s), out, why, sizeof why);
}

static void parse_rfc_example(void **state)
{
	(void)state;
	/* RFC 3842 §7.1 (the body of the example NOTIFY). */
	mwi_summary_t s;
	const char *body = "Messages-Waiting: yes\r\n"
			   "Message-Account: sip:alice@vmail.example.com\r\n"
			   "Voice-Message: 2/8 (0/2)\r\n";
	assert_int_equal(parse(body, &s), 0);
	assert_true(s.waiting);
	assert_int_equal(s.present, 1u << MWI_VOICE);
	assert_int_equal(s.c[MWI_VOICE].new_msgs, 2);
	assert_int_equal(s.c[MWI_VOICE].old_msgs, 8);
	assert_true(s.c[MWI_VOICE].urgent);
	assert_int_equal(s.c[MWI_VOICE].new_urgent, 0);
	assert_int_equal(s.c[MWI_VOICE].old_urgent, 2);
}

static void parse_variants(void **state)
{
	(void)state;
	mwi_summary_t s;
	/* Status only; names are case-insensitive; bare LF tolerated. */
	assert_int_equal(parse("messages-waiting:no\n", &s), 0);
	assert_false(s.waiting);
	assert_int_equal(s.present, 0);
	/* Several classes, white space around HCOLON, SLASH and parentheses. */
	assert_int_equal(parse("Messages-Waiting : yes\r\nvoice-message: 3 / 4\r\n"
			       "Fax-Message: 1/0 ( 1 / 0 )\r\nText-Message: 0/7\r\n", &s), 0);
	assert_int_equal(s.present, (1u << MWI_VOICE) | (1u << MWI_FAX) | (1u << MWI_TEXT));
	assert_false(s.c[MWI_VOICE].urgent);
	assert_int_equal(s.c[MWI_VOICE].new_msgs, 3);
	assert_int_equal(s.c[MWI_FAX].new_urgent, 1);
	assert_int_equal(s.c[MWI_TEXT].old_msgs, 7);
	/* Extension headers after an empty line: checked and ignored. */
	assert_int_equal(parse("Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n\r\n"
			       "To: <sip:alice@example.com>\r\nSubject: hi\r\n", &s), 0);
	assert_int_equal(s.c[MWI_VOICE].new_msgs, 1);
	/* Nine digits is the largest count. */
	assert_int_equal(parse("Messages-Waiting: yes\r\nVoice-Message: 999999999/0\r\n", &s), 0);
	assert_int_equal(s.c[MWI_VOICE].new_msgs, 999999999u);
}

static void parse_rejects(void **state)
{
	(void)state;
	mwi_summary_t s;
	static const char *const bad[] = {
		"",
		"Messages-Waiting: maybe\r\n",
		"Messages-Waiting: yes",                               /* no line end */
		"Voice-Message: 1/0\r\nMessages-Waiting: yes\r\n",     /* status not first */
		"Messages-Waiting: yes\r\nVoice-Message: 1\r\n",       /* no SLASH */
		"Messages-Waiting: yes\r\nVoice-Message: 1/\r\n",
		"Messages-Waiting: yes\r\nVoice-Message: -1/0\r\n",
		"Messages-Waiting: yes\r\nVoice-Message: 1/0 (1/0\r\n", /* unclosed */
		"Messages-Waiting: yes\r\nVoice-Message: 1/0 x\r\n",    /* trailing junk */
		"Messages-Waiting: yes\r\nVoice-Message: 1234567890/0\r\n", /* 10 digits */
		"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nVoice-Message: 2/0\r\n",
		"Messages-Waiting: yes\r\nSmell-Message: 1/0\r\n",     /* unknown class */
		"Messages-Waiting: yes\r\nVoice-Message 1/0\r\n",      /* no colon */
		"Messages-Waiting: yes\r\nMessage-Account: not a uri\r\n",
		"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\nMessage-Account: sip:a@b\r\n",
		"Messages-Waiting: yes\r\nMessage-Account: sip:a@b\r\nMessage-Account: sip:a@b\r\n",
		"Messages-Waiting: yes\r\n\r\n",                        /* empty extension part */
		"Messages-Waiting: yes\r\n\r\nTo: x\r\n\r\nTo: y\r\n",
		"Messages-Waiting: yes\r\n\r\n: x\r\n",
		"Messages-Waiting: yes\r\nVoice-Message: 1/0\x01\r\n", /* control character */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char why[128] = "";
		int err = mwi_parse(bad[i], strlen(bad[i]), &s, why, sizeof why);
		if (err != -EINVAL)
			fail_msg("case %zu (%s) gave %d", i, bad[i], err);
		assert_true(why[0] != '\0');
	}
	/* An embedded NUL is a control character, not an end of string. */
	const char nul[] = "Messages-Waiting: yes\r\nVoice\0-Message: 1/0\r\n";
	assert_int_equal(mwi_parse(nul, sizeof nul - 1, &s, NULL, 0), -EINVAL);
	assert_int_equal(mwi_parse(NULL, 0, &s, NULL, 0), -EINVAL);
}

static void parse_bounds(void **state)
{
	(void)state;
	mwi_summary_t s;
	/* Too many lines (all syntactically fine extension headers). */
	char *big = malloc(MWI_MAX_BODY + 64);
	assert_non_null(big);
	size_t n = (size_t)sprintf(big, "Messages-Waiting: no\r\n\r\n");
	for (int i = 0; i < MWI_MAX_LINES; i++)
		n += (size_t)sprintf(big + n, "X: %d\r\n", i);
	assert_int_equal(mwi_parse(big, n, &s, NULL, 0), -EMSGSIZE);
	/* Too many bytes. */
	memset(big, 'a', MWI_MAX_BODY + 1);
	assert_int_equal(mwi_parse(big, MWI_MAX_BODY + 1, &s, NULL, 0), -EMSGSIZE);
	free(big);
}

static void merge_and_format(void **state)
{
	(void)state;
	mwi_summary_t a, b, all;
	memset(&all, 0, sizeof all);
	assert_int_equal(parse("Messages-Waiting: no\r\nVoice-Message: 0/3\r\n", &a), 0);
	assert_int_equal(parse("Messages-Waiting: yes\r\nVoice-Message: 2/1 (1/0)\r\n", &b), 0);
	mwi_merge(&all, &a);
	mwi_merge(&all, &b);
	mwi_summary_t chat = {.present = 1u << MWI_TEXT, .c[MWI_TEXT] = {.new_msgs = 4}};
	mwi_merge(&all, &chat);
	buf_t out;
	buf_init(&out, 0);
	assert_int_equal(mwi_format("sip:bob@example.test", &all, &out), 0);
	assert_string_equal(buf_cstr(&out), "Messages-Waiting: yes\r\n"
					    "Message-Account: sip:bob@example.test\r\n"
					    "Voice-Message: 2/4 (1/0)\r\n"
					    "Text-Message: 4/0\r\n");
	/* What we compose, we parse. */
	mwi_summary_t back;
	assert_int_equal(mwi_parse(out.data, out.len, &back, NULL, 0), 0);
	assert_int_equal(back.c[MWI_VOICE].old_msgs, 4);

	/* Nothing new anywhere: no. */
	buf_reset(&out);
	mwi_summary_t none = {.present = 1u << MWI_TEXT};
	assert_int_equal(mwi_format("sip:bob@example.test", &none, &out), 0);
	assert_string_equal(buf_cstr(&out), "Messages-Waiting: no\r\n"
					    "Message-Account: sip:bob@example.test\r\n"
					    "Text-Message: 0/0\r\n");
	/* New messages make it yes even when no publication said so. */
	buf_reset(&out);
	none.c[MWI_TEXT].new_msgs = 1;
	mwi_format("sip:bob@example.test", &none, &out);
	assert_non_null(strstr(buf_cstr(&out), "Messages-Waiting: yes\r\n"));
	/* Counts saturate instead of wrapping. */
	mwi_summary_t x = {.present = 1u << MWI_VOICE, .c[MWI_VOICE] = {.new_msgs = UINT32_MAX - 1}};
	mwi_merge(&x, &x);
	assert_int_equal(x.c[MWI_VOICE].new_msgs, UINT32_MAX);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_rfc_example),
		cmocka_unit_test(parse_variants),
		cmocka_unit_test(parse_rejects),
		cmocka_unit_test(parse_bounds),
		cmocka_unit_test(merge_and_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
