/* Unit tests of the dialog records (server/proxy/dlgtrack.c: forward-only
 * state merge, a late provisional after termination), the dialog
 * package's held changes and documents (presence/pkg_dialog.c) and the
 * call-completion bodies (presence/pkg_cc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "presence/pkgs.h"
#include "server/proxy/dlgtrack.h"
#include "server/sip/sipmsg.h"

static void state_advance(void **state)
{
	(void)state;
	assert_true(dlg_state_advance(DLG_TRYING, DLG_EARLY));
	assert_true(dlg_state_advance(DLG_PROCEEDING, DLG_CONFIRMED));
	assert_true(dlg_state_advance(DLG_EARLY, DLG_EARLY)); /* another To tag */
	assert_true(dlg_state_advance(DLG_CONFIRMED, DLG_TERMINATED));
	assert_false(dlg_state_advance(DLG_CONFIRMED, DLG_EARLY));
	assert_false(dlg_state_advance(DLG_CONFIRMED, DLG_CONFIRMED));
	/* The busy-lamp bug: nothing comes after terminated. */
	for (int s = DLG_TRYING; s <= DLG_TERMINATED; s++)
		assert_false(dlg_state_advance(DLG_TERMINATED, (dlg_state_t)s));
	assert_string_equal(dlg_state_name(DLG_EARLY), "early");
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

#define HDRS(tt) \
	"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx\r\n" \
	"From: <sip:alice@example.test>;tag=at\r\n" \
	"To: <sip:bob@example.test>" tt "\r\n" \
	"Call-ID: call-1\r\n"

static const char INVITE[] = "INVITE sip:bob@example.test SIP/2.0\r\n" HDRS("")
			     "CSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n";
static const char RINGING[] = "SIP/2.0 180 Ringing\r\n" HDRS(";tag=bt")
			      "CSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.2>\r\nContent-Length: 0\r\n\r\n";
static const char OK[] = "SIP/2.0 200 OK\r\n" HDRS(";tag=bt")
			 "CSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.2>\r\nContent-Length: 0\r\n\r\n";
/* The callee hangs up: its From is bob (tag bt), To alice (tag at). */
static const char BYE[] = "BYE sip:alice@10.0.0.1:5062 SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy\r\n"
			  "From: <sip:bob@example.test>;tag=bt\r\nTo: <sip:alice@example.test>;tag=at\r\n"
			  "Call-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";

typedef struct seen {
	int n;
	dlg_state_t last_state[2];
	const char *last_event[2];
	uint64_t last_seq;
	bool seq_grew;
	bool cc_call;
} seen_t;

static void on_change(void *arg, const dlg_record_t *r)
{
	seen_t *s = arg;
	int side = r->initiator ? 1 : 0;
	s->n++;
	s->last_state[side] = r->state;
	s->last_event[side] = r->event;
	s->seq_grew = s->seq_grew && r->seq > s->last_seq;
	s->last_seq = r->seq;
	s->cc_call = r->cc_call;
}

static void on_state(const dlg_record_t *r, void *arg) { *(dlg_state_t *)arg = r->state; }

static void tracker(void **state)
{
	(void)state;
	assert_int_equal(sipmsg_global_init(), 0);
	seen_t s = {.seq_grew = true};
	assert_int_equal(dlg_on_change(on_change, &s), 0);
	assert_int_equal(dlg_init(uv_default_loop()), 0);

	sipmsg_t *inv = parse(INVITE), *ring = parse(RINGING), *ok = parse(OK), *bye = parse(BYE);
	dlg_track_invite(inv, "sip:bob@example.test", "sip:alice@example.test");
	assert_int_equal(s.n, 2);
	assert_false(s.cc_call);
	assert_int_equal(dlg_active_count("sip:bob@example.test"), 1);
	assert_int_equal(dlg_active_count("sip:alice@example.test"), 1);
	dlg_track_invite(inv, "sip:bob@example.test", "sip:alice@example.test"); /* again: same call */
	assert_int_equal(s.n, 2);
	dlg_track_response(ring, 180);
	assert_int_equal(s.last_state[0], DLG_EARLY);
	assert_int_equal(s.last_state[1], DLG_EARLY);
	dlg_track_response(ok, 200);
	assert_int_equal(s.last_state[0], DLG_CONFIRMED);
	/* A retransmitted 180 after the 200: ignored. */
	int before = s.n;
	dlg_track_response(ring, 180);
	assert_int_equal(s.n, before);
	dlg_track_bye(bye);
	assert_int_equal(s.last_state[0], DLG_TERMINATED);
	assert_string_equal(s.last_event[0], "local-bye"); /* bob hung up */
	assert_string_equal(s.last_event[1], "remote-bye");
	assert_int_equal(dlg_active_count("sip:bob@example.test"), 0);
	/* The late provisional after termination resurrects nothing. */
	before = s.n;
	dlg_track_response(ring, 180);
	dlg_track_response(ok, 200);
	dlg_track_bye(bye);
	assert_int_equal(s.n, before);
	dlg_state_t st = DLG_TRYING;
	dlg_foreach("sip:bob@example.test", on_state, &st);
	assert_int_equal(st, DLG_TERMINATED);
	assert_true(s.seq_grew);
	assert_int_equal(dlg_record_count(), 2);

	sipmsg_free(inv);
	sipmsg_free(ring);
	sipmsg_free(ok);
	sipmsg_free(bye);
	dlg_shutdown();
	uv_run(uv_default_loop(), UV_RUN_NOWAIT); /* closes the timer */
}

static void rejected(void **state)
{
	(void)state;
	seen_t s = {.seq_grew = true};
	assert_int_equal(dlg_init(uv_default_loop()), 0);
	assert_int_equal(dlg_on_change(on_change, &s), 0);
	/* A CC call (RFC 6910): the Request-URI carries m=BS. */
	char cc[sizeof INVITE + 8];
	snprintf(cc, sizeof cc, "INVITE sip:bob@example.test;m=BS%s", INVITE + strlen("INVITE sip:bob@example.test"));
	sipmsg_t *inv = parse(cc);
	dlg_track_invite(inv, "sip:bob@example.test", NULL); /* a caller of another domain */
	assert_int_equal(s.n, 1);
	assert_true(s.cc_call);
	dlg_track_final(inv, 486, false);
	assert_int_equal(s.last_state[0], DLG_TERMINATED);
	assert_string_equal(s.last_event[0], "rejected");
	assert_int_equal(dlg_active_count("sip:bob@example.test"), 0);
	assert_int_equal(dlg_active_count("sip:alice@example.test"), 0);
	sipmsg_free(inv);
	dlg_shutdown();
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

static dlg_record_t rec(const char *id, dlg_state_t st, uint64_t seq)
{
	dlg_record_t r = {
		.id = id, .aor = "sip:bob@d", .peer_aor = "", .call_id = "c<1>", .local_tag = "l",
		.remote_tag = "r", .local_uri = "sip:bob@d", .remote_uri = "sip:alice@d",
		.remote_target = "", .state = st, .seq = seq,
	};
	return r;
}

static void pending_merge(void **state)
{
	(void)state;
	pending_t p = {0};
	dlg_record_t term = rec("d1", DLG_TERMINATED, 10), early = rec("d1", DLG_EARLY, 9);
	term.event = "remote-bye";
	assert_int_equal(dialog_pending_merge(&p, &term), 1);
	/* Older news (a lower sequence) never replaces what is held. */
	assert_int_equal(dialog_pending_merge(&p, &early), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.v[0].state, DLG_TERMINATED);
	dlg_record_t other = rec("d2", DLG_TRYING, 11);
	assert_int_equal(dialog_pending_merge(&p, &other), 1);
	assert_int_equal(p.n, 2);
	dlg_record_t newer = rec("d2", DLG_CONFIRMED, 12);
	assert_int_equal(dialog_pending_merge(&p, &newer), 1);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.v[1].state, DLG_CONFIRMED);

	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(dialoginfo_format("sip:bob@d", 7, false, p.v, p.n, &b), 0);
	const char *x = buf_cstr(&b);
	assert_non_null(strstr(x, "version=\"7\" state=\"partial\" entity=\"sip:bob@d\""));
	assert_non_null(strstr(x, "call-id=\"c&lt;1&gt;\" local-tag=\"l\" remote-tag=\"r\""));
	assert_non_null(strstr(x, "<state event=\"remote-bye\">terminated</state>"));
	assert_non_null(strstr(x, "<state>confirmed</state>"));
	assert_null(strstr(x, "<target")); /* no target known */
	buf_free(&b);
	dialog_pending_clear(&p);
	free(p.v);
}

static void cc_bodies(void **state)
{
	(void)state;
	bool susp = false;
	char why[80];
	assert_int_equal(cc_parse_state("cc-state: suspended\r\n", 21, &susp, why, sizeof why), 0);
	assert_true(susp);
	assert_int_equal(cc_parse_state("CC-State:queued\n", 16, &susp, why, sizeof why), 0);
	assert_false(susp);
	assert_int_equal(cc_parse_state("cc-state: ready\r\n", 17, &susp, why, sizeof why), -EINVAL);
	assert_int_equal(cc_parse_state("x: y\r\n", 6, &susp, why, sizeof why), -EINVAL);
	assert_int_equal(cc_parse_state("cc-state: queued\r\ncc-state: queued\r\n", 36, &susp, why, sizeof why),
			 -EINVAL);
	assert_int_equal(cc_parse_state("cc-state: q\0ueued\r\n", 19, &susp, why, sizeof why), -EINVAL);
	char big[2000];
	memset(big, 'a', sizeof big);
	assert_int_equal(cc_parse_state(big, sizeof big, &susp, why, sizeof why), -EMSGSIZE);
	buf_t b;
	buf_init(&b, 0);
	assert_int_equal(cc_format("ready", "sip:bob@d;m=BS", &b), 0);
	assert_string_equal(buf_cstr(&b), "cc-state: ready\r\ncc-service-retention: true\r\ncc-URI: sip:bob@d;m=BS\r\n");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_advance),
		cmocka_unit_test(tracker),
		cmocka_unit_test(rejected),
		cmocka_unit_test(pending_merge),
		cmocka_unit_test(cc_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
