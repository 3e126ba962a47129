/* uac tests over real sockets on 127.0.0.1 (short T1):
 *
 *   uac_send MESSAGE (listener 0.0.0.0) --UDP--> peer socket
 *        Via sent-by = 127.0.0.1:port, branch, Max-Forwards, body intact
 *                                         <---  200 OK
 *        callback: 200, exactly once
 *
 *   peer --TCP connect--> REGISTER-like request  (server records the source)
 *   uac_binding_dest(source) = that connection; uac_send over it --> peer
 *   peer closes; uac_binding_dest falls back to the Contact's address */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "server/sip/uac.h"

#define T1 10

static uv_loop_t *loop;
static int udp_listener, tcp_listener;
static uint16_t udp_port, tcp_port;
static uv_udp_t peer;
static struct sockaddr_in peer_addr;
static char peer_rx[8192];
static int peer_rx_count;
static int finals, last_code;
static tp_peer_t last_src; /* source of the last request the server got */
static int server_requests;

static void on_server_msg(void *arg, const tp_peer_t *from, char *msg, size_t len)
{
	(void)arg;
	static const sip_limits_t lim = {64, 65536};
	sipmsg_t *m = NULL;
	char why[64];
	if (sipmsg_parse(msg, len, from, &lim, &m, why, sizeof why) != 0)
		return;
	if (!m->is_request) {
		txn_client_match(m);
	} else {
		server_requests++;
		last_src = *from;
	}
	sipmsg_free(m);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h;
	(void)sz;
	static char mem[65536];
	b->base = mem;
	b->len = sizeof mem;
}

/* Answers text (a request) with a 200 copying its Via, From, To,
 * Call-ID and CSeq lines. */
static int answer_200(const char *req, char *resp, size_t len)
{
	buf_t b;
	buf_init(&b, 0);
	buf_puts(&b, "SIP/2.0 200 OK\r\n");
	const char *names[] = {"Via:", "From:", "To:", "Call-ID:", "CSeq:"};
	for (size_t i = 0; i < 5; i++) {
		const char *p = strstr(req, names[i]);
		const char *e = p ? strstr(p, "\r\n") : NULL;
		if (p && e)
			buf_append(&b, p, (size_t)(e - p) + 2);
	}
	buf_puts(&b, "Content-Length: 0\r\n\r\n");
	int n = snprintf(resp, len, "%s", buf_cstr(&b));
	buf_free(&b);
	return n;
}

static void on_peer_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from,
			 unsigned flags)
{
	(void)h;
	(void)flags;
	if (n <= 0 || !from)
		return;
	peer_rx_count++;
	size_t l = (size_t)n < sizeof peer_rx - 1 ? (size_t)n : sizeof peer_rx - 1;
	memcpy(peer_rx, b->base, l);
	peer_rx[l] = '\0';
	char resp[4096];
	int rl = answer_200(peer_rx, resp, sizeof resp);
	uv_buf_t ub = uv_buf_init(resp, (unsigned)rl);
	uv_udp_try_send(&peer, &ub, 1, from);
}

static void on_final(void *arg, const sipmsg_t *resp, int code, bool final)
{
	(void)arg;
	(void)resp;
	if (final) {
		finals++;
		last_code = code;
	}
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
	assert_int_equal(tp_init(loop, NULL, on_server_msg, NULL, NULL), 0);
	/* A wildcard listener: the Via must name the real source address. */
	udp_listener = tp_listen(TP_UDP, "0.0.0.0", 0);
	tcp_listener = tp_listen(TP_TCP, "127.0.0.1", 0);
	assert_true(udp_listener >= 0 && tcp_listener >= 0);
	struct sockaddr_storage sa;
	tp_proto_t p;
	tp_listener_addr(udp_listener, &p, &sa);
	udp_port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
	tp_listener_addr(tcp_listener, &p, &sa);
	tcp_port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
	txn_timers_t tm = {T1, 4 * T1, 5 * T1};
	assert_int_equal(txn_init(loop, &tm), 0);
	uv_udp_init(loop, &peer);
	uv_ip4_addr("127.0.0.1", 0, &peer_addr);
	assert_int_equal(uv_udp_bind(&peer, (const struct sockaddr *)&peer_addr, 0), 0);
	int len = sizeof peer_addr;
	uv_udp_getsockname(&peer, (struct sockaddr *)&peer_addr, &len);
	uv_udp_recv_start(&peer, alloc_cb, on_peer_recv);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	txn_shutdown();
	tp_shutdown();
	uv_close((uv_handle_t *)&peer, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
	return 0;
}

static void test_uri_dest(void **state)
{
	(void)state;
	tp_peer_t d;
	char ip[64];
	uint16_t port;
	assert_int_equal(uac_uri_dest("sip:bob@127.0.0.1:5070;transport=TCP", &d), 0);
	assert_int_equal(d.proto, TP_TCP);
	tp_addr_to_str(&d.addr, ip, sizeof ip, &port);
	assert_string_equal(ip, "127.0.0.1");
	assert_int_equal(port, 5070);
	assert_int_equal(uac_uri_dest("sip:[::1]", &d), 0);
	assert_int_equal(d.proto, TP_UDP);
	tp_addr_to_str(&d.addr, ip, sizeof ip, &port);
	assert_string_equal(ip, "::1");
	assert_int_equal(port, 5060);
	assert_int_equal(uac_uri_dest("sip:bob@host.example", &d), -EINVAL);
	assert_int_equal(uac_uri_dest("mailto:bob@127.0.0.1", &d), -EINVAL);
	assert_int_equal(uac_uri_dest("sip:bob@127.0.0.1;transport=ws", &d), -EINVAL);
}

static tp_peer_t udp_peer(void)
{
	tp_peer_t d;
	memset(&d, 0, sizeof d);
	d.proto = TP_UDP;
	d.listener = -1;
	memcpy(&d.addr, &peer_addr, sizeof peer_addr);
	return d;
}

static void test_via_wildcard(void **state)
{
	(void)state;
	tp_peer_t d = udp_peer();
	char hp[96];
	const char *tr = NULL;
	assert_int_equal(uac_via_sent_by(&d, hp, sizeof hp, &tr), 0);
	char want[96];
	snprintf(want, sizeof want, "127.0.0.1:%u", udp_port);
	assert_string_equal(hp, want);
	assert_string_equal(tr, "UDP");
	/* No IPv6 listener: no Via possible. */
	assert_int_equal(uac_uri_dest("sip:[::1]:5070", &d), 0);
	assert_int_equal(uac_via_sent_by(&d, hp, sizeof hp, &tr), -ENETUNREACH);
}

static void test_send_udp(void **state)
{
	(void)state;
	static const char body[] = "hello\0binary\r\n\r\nstill body";
	uac_request_t r = {
		.method = "MESSAGE",
		.ruri = "sip:bob@127.0.0.1",
		.from = "<sip:alice@example.test>;tag=a1",
		.to = "<sip:bob@example.test>",
		.call_id = "uac-test-1",
		.cseq = 7,
		.route = "<sip:proxy.example;lr>",
		.vias_below = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKorig\r\n",
		.max_forwards = -1,
		.extra = "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n",
		.ctype = "application/octet-stream",
		.body = body,
		.bodylen = sizeof body - 1,
	};
	finals = peer_rx_count = 0;
	tp_peer_t d = udp_peer();
	assert_int_equal(uac_send(&r, &d, on_final, NULL), 0);
	run_for(200);
	assert_int_equal(finals, 1);
	assert_int_equal(last_code, 200);
	assert_int_equal(peer_rx_count, 1);
	assert_true(strncmp(peer_rx, "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n", 35) == 0);
	char via[128];
	snprintf(via, sizeof via, "\r\nVia: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bK", udp_port);
	const char *top = strstr(peer_rx, via);
	const char *orig = strstr(peer_rx, "Via: SIP/2.0/UDP 192.0.2.1");
	assert_non_null(top);
	assert_non_null(orig);
	assert_true(top < orig); /* ours on top, the original below */
	assert_non_null(strstr(peer_rx, "\r\nMax-Forwards: 70\r\n"));
	assert_non_null(strstr(peer_rx, "\r\nRoute: <sip:proxy.example;lr>\r\n"));
	assert_non_null(strstr(peer_rx, "\r\nCSeq: 7 MESSAGE\r\n"));
	assert_non_null(strstr(peer_rx, "\r\nDate: Sat, 13 Nov 2010"));
	char cl[64];
	snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n\r\n", sizeof body - 1);
	const char *p = strstr(peer_rx, cl);
	assert_non_null(p);
	/* strstr stops at the NUL in the body: compare raw bytes. */
	assert_memory_equal(p + strlen(cl), body, 5);
	run_for(10 * T1);
	assert_int_equal(finals, 1);
}

static void test_send_timeout(void **state)
{
	(void)state;
	/* A port where nobody answers: Timer F, 408, once. */
	uv_udp_t silent;
	struct sockaddr_in sa;
	uv_udp_init(loop, &silent);
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_udp_bind(&silent, (const struct sockaddr *)&sa, 0);
	int len = sizeof sa;
	uv_udp_getsockname(&silent, (struct sockaddr *)&sa, &len);
	tp_peer_t d = udp_peer();
	memcpy(&d.addr, &sa, sizeof sa);
	uac_request_t r = {.method = "NOTIFY", .ruri = "sip:w@127.0.0.1", .from = "<sip:p@x>;tag=1",
			   .to = "<sip:w@x>;tag=2", .call_id = "uac-test-2", .cseq = 1,
			   .max_forwards = 10, .extra = "Event: presence\r\n"};
	finals = 0;
	assert_int_equal(uac_send(&r, &d, on_final, NULL), 0);
	run_for(64 * T1 + 300);
	assert_int_equal(finals, 1);
	assert_int_equal(last_code, 408);
	uv_close((uv_handle_t *)&silent, NULL);
	run_for(10);
}

/* A TCP peer with plain sockets (blocking, on this thread: the loop runs
 * between the calls). */
static int tcp_peer_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(tcp_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void test_binding_dest_tcp(void **state)
{
	(void)state;
	int fd = tcp_peer_connect();
	const char reg[] = "REGISTER sip:example.test SIP/2.0\r\n"
			   "Via: SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKreg1\r\n"
			   "From: <sip:bob@example.test>;tag=r1\r\nTo: <sip:bob@example.test>\r\n"
			   "Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
	server_requests = 0;
	assert_int_equal(write(fd, reg, sizeof reg - 1), (ssize_t)(sizeof reg - 1));
	for (int i = 0; i < 200 && !server_requests; i++)
		run_for(5);
	assert_int_equal(server_requests, 1);
	assert_int_equal(last_src.proto, TP_TCP);
	assert_true(last_src.conn_id != 0);

	const char *contact = "sip:bob@127.0.0.1:5099;transport=tcp";
	tp_peer_t d;
	assert_int_equal(uac_binding_dest(&last_src, contact, &d), 0);
	assert_true(d.conn_id == last_src.conn_id); /* the registered flow */

	uac_request_t r = {.method = "MESSAGE", .ruri = contact, .from = "<sip:a@x>;tag=1",
			   .to = "<sip:bob@example.test>", .call_id = "uac-test-3", .cseq = 1,
			   .max_forwards = -1, .ctype = "text/plain", .body = "hi", .bodylen = 2};
	finals = 0;
	assert_int_equal(uac_send(&r, &d, on_final, NULL), 0);
	char rx[4096];
	ssize_t got = 0;
	for (int i = 0; i < 200; i++) {
		run_for(5);
		ssize_t n = recv(fd, rx + got, sizeof rx - 1 - (size_t)got, MSG_DONTWAIT);
		if (n > 0)
			got += n;
		rx[got] = '\0';
		if (strstr(rx, "\r\n\r\nhi"))
			break;
	}
	assert_non_null(strstr(rx, "\r\n\r\nhi"));
	assert_non_null(strstr(rx, "Via: SIP/2.0/TCP 127.0.0.1:"));
	char resp[4096];
	int rl = answer_200(rx, resp, sizeof resp);
	assert_int_equal(write(fd, resp, (size_t)rl), rl);
	for (int i = 0; i < 200 && !finals; i++)
		run_for(5);
	assert_int_equal(finals, 1);
	assert_int_equal(last_code, 200);

	close(fd);
	for (int i = 0; i < 200 && tp_conn_alive(last_src.conn_id); i++)
		run_for(5);
	assert_false(tp_conn_alive(last_src.conn_id));
	assert_int_equal(uac_binding_dest(&last_src, contact, &d), 0);
	assert_int_equal(d.proto, TP_TCP);
	assert_true(d.conn_id == 0);
	char ip[64];
	uint16_t port;
	tp_addr_to_str(&d.addr, ip, sizeof ip, &port);
	assert_int_equal(port, 5099); /* the Contact's port, not the dead flow's */

	/* UDP source: the REGISTER's source (NAT), not the Contact. */
	tp_peer_t src = udp_peer();
	assert_int_equal(uac_binding_dest(&src, "sip:bob@10.0.0.7:5060", &d), 0);
	assert_memory_equal(&d.addr, &src.addr, sizeof(struct sockaddr_in));
	/* No source and a name: nothing to send to. */
	tp_peer_t none;
	memset(&none, 0, sizeof none);
	assert_int_equal(uac_binding_dest(&none, "sip:bob@host.example", &d), -EHOSTUNREACH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_dest),
		cmocka_unit_test(test_via_wildcard),
		cmocka_unit_test(test_send_udp),
		cmocka_unit_test(test_send_timeout),
		cmocka_unit_test(test_binding_dest_tcp),
	};
	return cmocka_run_group_tests_name("uac", tests, setup, teardown);
}
