/* Transaction layer tests over real UDP sockets on 127.0.0.1, with a
 * short T1 so that timers E, F, G, J and K run in milliseconds:
 *
 *   client socket            simpled tp + txn
 *     REGISTER  ----------->  new server transaction, 200
 *     REGISTER  ----------->  absorbed, 200 sent again
 *     (64*T1)                 Timer J: transaction gone
 *
 *     INVITE    ----------->  100 Trying (automatic), 486
 *               <-----------  486 retransmitted (Timer G) until
 *     ACK       ----------->  absorbed, retransmissions stop
 *
 *   txn_client_start MESSAGE -> silent socket: retransmitted, 408 (F)
 *   txn_client_start MESSAGE -> answering socket: one final callback */
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

#include "server/sip/txn.h"

#define T1 10

static uv_loop_t *loop;
static int listener;
static struct sockaddr_storage server_addr;
static uv_udp_t client;
static struct sockaddr_in client_addr;
static int n_rx_200, n_rx_486, n_rx_100, n_server_requests, n_rx_requests;
static int final_callbacks, last_code, n_rx_ack;
static bool client_answers;
static char last_request[4096];

static tp_peer_t peer_of(const struct sockaddr_storage *sa)
{
	tp_peer_t p;
	memset(&p, 0, sizeof p);
	p.proto = TP_UDP;
	p.listener = -1;
	p.addr = *sa;
	return p;
}

/* Server side: what the server core does, minus the router. */
static void on_server_msg(void *arg, const tp_peer_t *from, char *msg, size_t len)
{
	(void)arg;
	static const sip_limits_t lim = {64, 4096};
	sipmsg_t *m = NULL;
	char why[64];
	/* As server.c: answers of light transactions skip the full parse. */
	if (len >= 8 && memcmp(msg, "SIP/2.0 ", 8) == 0 && txn_client_match_raw(msg, len, from, &lim))
		return;
	if (sipmsg_parse(msg, len, from, &lim, &m, why, sizeof why) != 0)
		return;
	if (!m->is_request) {
		txn_client_match(m);
		sipmsg_free(m);
		return;
	}
	txn_t *t = NULL;
	txn_match_t r = txn_server_match(m, &t);
	if (r != TXN_MATCH_NEW) {
		sipmsg_free(m);
		return;
	}
	n_server_requests++;
	if (strcmp(m->method, "INVITE") == 0)
		txn_reply(t, 486, NULL, NULL, NULL, NULL, 0);
	else
		txn_reply(t, 200, NULL, NULL, NULL, NULL, 0);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h;
	static char mem[65536];
	(void)sz;
	b->base = mem;
	b->len = sizeof mem;
}

static void on_client_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
			   unsigned flags)
{
	(void)h;
	(void)flags;
	if (n <= 0 || !from)
		return;
	if (strncmp(b->base, "SIP/2.0 200", 11) == 0)
		n_rx_200++;
	else if (strncmp(b->base, "SIP/2.0 486", 11) == 0)
		n_rx_486++;
	else if (strncmp(b->base, "SIP/2.0 100", 11) == 0)
		n_rx_100++;
	else if (strncmp(b->base, "ACK ", 4) == 0) {
		n_rx_ack++;
	} else {
		/* A request from a client transaction of the server. */
		n_rx_requests++;
		size_t len = (size_t)n < sizeof last_request - 1 ? (size_t)n : sizeof last_request - 1;
		memcpy(last_request, b->base, len);
		last_request[len] = '\0';
		if (client_answers) {
			/* Answer 200 twice: the second is a retransmission. */
			const char *via = strstr(last_request, "Via:");
			const char *via_end = via ? strstr(via, "\r\n") : NULL;
			char resp[1024];
			bool invite = strncmp(last_request, "INVITE ", 7) == 0;
			int rl = snprintf(resp, sizeof resp,
					  "SIP/2.0 %s\r\n%.*s\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n"
					  "Call-ID: c1\r\nCSeq: 1 %s\r\nContent-Length: 0\r\n\r\n",
					  invite ? "486 Busy Here" : "200 OK", (int)(via_end - via), via,
					  invite ? "INVITE" : "MESSAGE");
			uv_buf_t ub = uv_buf_init(resp, (unsigned)rl);
			uv_udp_try_send(&client, &ub, 1, (const struct sockaddr *)&server_addr);
			uv_udp_try_send(&client, &ub, 1, (const struct sockaddr *)&server_addr);
		}
	}
}

static void client_send(const char *text)
{
	uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
	assert_true(uv_udp_try_send(&client, &b, 1, (const struct sockaddr *)&server_addr) > 0);
}

static void run_for(unsigned ms)
{
	uint64_t end = uv_now(loop) + ms;
	while (uv_now(loop) < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		uv_sleep(1);
		uv_update_time(loop);
	}
}

static int setup(void **state)
{
	(void)state;
	loop = uv_default_loop();
	sipmsg_global_init();
	tp_limits_t lim = {.max_msg_size = 65536, .max_tcp_conns = 16, .max_tcp_conns_per_ip = 16,
			   .tcp_idle_timeout_s = 60, .tcp_header_timeout_s = 10};
	assert_int_equal(tp_init(loop, &lim, on_server_msg, NULL, NULL), 0);
	listener = tp_listen(TP_UDP, "127.0.0.1", 0);
	assert_true(listener >= 0);
	tp_proto_t proto;
	assert_int_equal(tp_listener_addr(listener, &proto, &server_addr), 0);
	txn_timers_t tm = {T1, 4 * T1, 5 * T1};
	assert_int_equal(txn_init(loop, &tm), 0);
	uv_udp_init(loop, &client);
	uv_ip4_addr("127.0.0.1", 0, &client_addr);
	assert_int_equal(uv_udp_bind(&client, (const struct sockaddr *)&client_addr, 0), 0);
	int len = sizeof client_addr;
	uv_udp_getsockname(&client, (struct sockaddr *)&client_addr, &len);
	uv_udp_recv_start(&client, alloc_cb, on_client_recv);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	txn_shutdown();
	tp_shutdown();
	uv_close((uv_handle_t *)&client, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
	return 0;
}

static char *request(const char *method, const char *branch)
{
	static char buf[1024];
	snprintf(buf, sizeof buf,
		 "%s sip:bob@127.0.0.1 SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%s;rport\r\n"
		 "From: <sip:alice@example.test>;tag=a1\r\n"
		 "To: <sip:bob@example.test>\r\n"
		 "Call-ID: call-%s\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		 method, ntohs(client_addr.sin_port), branch, branch, method);
	return buf;
}

static void test_non_invite_retransmission(void **state)
{
	(void)state;
	n_rx_200 = n_server_requests = 0;
	char *req = strdup(request("REGISTER", "z9hG4bK-reg1"));
	client_send(req);
	run_for(30);
	client_send(req);
	run_for(30);
	assert_int_equal(n_server_requests, 1); /* the handler saw it once */
	assert_int_equal(n_rx_200, 2);          /* the 200 was repeated */
	txn_stats_t st;
	txn_get_stats(&st);
	assert_int_equal(st.server_live, 1);
	assert_true(st.retransmissions_absorbed >= 1);
	/* Timer J = 64*T1 = 640 ms, swept every 100 ms. */
	run_for(64 * T1 + 300);
	txn_get_stats(&st);
	assert_int_equal(st.server_live, 0);
	/* Now the same request is new again (the transaction is gone). */
	client_send(req);
	run_for(30);
	assert_int_equal(n_server_requests, 2);
	free(req);
	run_for(64 * T1 + 300);
}

static void test_invite_timer_g_and_ack(void **state)
{
	(void)state;
	n_rx_486 = n_rx_100 = 0;
	char *inv = strdup(request("INVITE", "z9hG4bK-inv1"));
	client_send(inv);
	run_for(100); /* G: 10, 20, 40 ms ... */
	assert_int_equal(n_rx_100, 1);
	assert_true(n_rx_486 >= 3);
	/* ACK for a non-2xx uses the INVITE's branch (RFC 3261 §17.1.1.3). */
	char *ack = strdup(request("ACK", "z9hG4bK-inv1"));
	client_send(ack);
	run_for(20);
	int after_ack = n_rx_486;
	run_for(200);
	assert_int_equal(n_rx_486, after_ack);
	free(inv);
	free(ack);
	run_for(64 * T1 + 300);
	txn_stats_t st;
	txn_get_stats(&st);
	assert_int_equal(st.server_live, 0);
}

static bool last_parsed;
static char last_reason[64];

static void on_client_result(void *arg, const sipmsg_t *resp, int code, bool final)
{
	(void)arg;
	if (final) {
		final_callbacks++;
		last_code = code;
		last_parsed = resp && resp->m;
		snprintf(last_reason, sizeof last_reason, "%s", resp ? resp->reason : "");
		if (resp)
			assert_int_equal(resp->status, code);
	}
}

static tp_peer_t client_peer(void)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, &client_addr, sizeof client_addr);
	return peer_of(&ss);
}

static void send_message_flags(const char *branch, unsigned flags)
{
	char req[1024];
	struct sockaddr_in *sin = (struct sockaddr_in *)&server_addr;
	int n = snprintf(req, sizeof req,
			 "MESSAGE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%u;branch=%s\r\n"
			 "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\n"
			 "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			 ntohs(sin->sin_port), branch);
	tp_peer_t dst = client_peer();
	assert_int_equal(txn_client_start_flags(&dst, branch, "MESSAGE", req, (size_t)n, on_client_result,
					       NULL, flags), 0);
}

static void send_message(const char *branch) { send_message_flags(branch, 0); }

static void test_client_timeout(void **state)
{
	(void)state;
	client_answers = false;
	final_callbacks = n_rx_requests = 0;
	char branch[64];
	txn_new_branch(branch, sizeof branch);
	assert_true(strncmp(branch, "z9hG4bK", 7) == 0);
	send_message(branch);
	run_for(64 * T1 + 300);
	assert_int_equal(final_callbacks, 1);
	assert_int_equal(last_code, 408);
	assert_true(n_rx_requests >= 4); /* E retransmitted */
}

static void test_client_answered(void **state)
{
	(void)state;
	client_answers = true;
	final_callbacks = n_rx_requests = 0;
	char branch[64];
	txn_new_branch(branch, sizeof branch);
	send_message(branch);
	run_for(100);
	assert_int_equal(final_callbacks, 1);
	assert_int_equal(last_code, 200);
	assert_int_equal(n_rx_requests, 1); /* no retransmission after the answer */
	run_for(64 * T1 + 300);
	assert_int_equal(final_callbacks, 1);
	txn_stats_t st;
	txn_get_stats(&st);
	assert_int_equal(st.client_live, 0);
}

/* A TXN_LIGHT_RESPONSE transaction with a light branch gets its answer
 * from the scan (no libosip2 message), once, and absorbs the
 * retransmitted 200 the same way; with another branch, or an ordinary
 * transaction, the parsed response. */
static void test_client_light(void **state)
{
	(void)state;
	client_answers = true;
	final_callbacks = n_rx_requests = 0;
	char branch[64];
	txn_new_light_branch(branch, sizeof branch);
	assert_true(strncmp(branch, TXN_LIGHT_BRANCH_MARK, strlen(TXN_LIGHT_BRANCH_MARK)) == 0);
	assert_true(strlen(branch) > strlen(TXN_LIGHT_BRANCH_MARK) + 16);
	send_message_flags(branch, TXN_LIGHT_RESPONSE);
	run_for(100);
	assert_int_equal(final_callbacks, 1);
	assert_int_equal(last_code, 200);
	assert_false(last_parsed);
	assert_string_equal(last_reason, "OK");
	assert_int_equal(n_rx_requests, 1);

	/* Light without the marked branch: answered through the full parse. */
	final_callbacks = n_rx_requests = 0;
	txn_new_branch(branch, sizeof branch);
	send_message_flags(branch, TXN_LIGHT_RESPONSE);
	run_for(100);
	assert_int_equal(final_callbacks, 1);
	assert_int_equal(last_code, 200);
	assert_true(last_parsed);

	final_callbacks = n_rx_requests = 0;
	txn_new_branch(branch, sizeof branch);
	send_message(branch);
	run_for(100);
	assert_int_equal(final_callbacks, 1);
	assert_true(last_parsed);
	assert_string_equal(last_reason, "OK");
	run_for(64 * T1 + 300);
	txn_stats_t st;
	txn_get_stats(&st);
	assert_int_equal(st.client_live, 0);

	/* INVITE cannot be light: its ACK needs the parsed To. */
	tp_peer_t dst = client_peer();
	assert_int_equal(txn_client_start_flags(&dst, "z9hG4bKx", "INVITE", "x", 1, on_client_result, NULL,
						TXN_LIGHT_RESPONSE), -EINVAL);
}

/* INVITE client: a 486 is ACKed by the transaction, and ACKed again when
 * the 486 is retransmitted (Timer D). */
static void test_invite_client_ack(void **state)
{
	(void)state;
	client_answers = true;
	final_callbacks = n_rx_requests = n_rx_ack = 0;
	char branch[64], req[1024];
	txn_new_branch(branch, sizeof branch);
	struct sockaddr_in *sin = (struct sockaddr_in *)&server_addr;
	int n = snprintf(req, sizeof req,
			 "INVITE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%u;branch=%s\r\n"
			 "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
			 "Route: <sip:proxy.example;lr>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
			 ntohs(sin->sin_port), branch);
	tp_peer_t dst = client_peer();
	assert_int_equal(txn_client_start(&dst, branch, "INVITE", req, (size_t)n, on_client_result, NULL), 0);
	run_for(100);
	assert_int_equal(final_callbacks, 1);
	assert_int_equal(last_code, 486);
	assert_int_equal(n_rx_requests, 1); /* no INVITE retransmission after the answer */
	assert_int_equal(n_rx_ack, 2);      /* one per 486 received */
	run_for(64 * T1 + 300);
	txn_stats_t st;
	txn_get_stats(&st);
	assert_int_equal(st.client_live, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_non_invite_retransmission),
		cmocka_unit_test(test_invite_timer_g_and_ack),
		cmocka_unit_test(test_client_timeout),
		cmocka_unit_test(test_client_answered),
		cmocka_unit_test(test_client_light),
		cmocka_unit_test(test_invite_client_ack),
	};
	return cmocka_run_group_tests_name("txn", tests, setup, teardown);
}
