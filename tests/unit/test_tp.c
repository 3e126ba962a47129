/* Integration tests for the transport layer on real sockets (127.0.0.1
 * and ::1, port 0).  The server side is the module under test, running on
 * a private uv loop; the client side is plain non-blocking POSIX sockets,
 * polled from the conditions the loop is run until.  Every wait is bounded
 * by a watchdog timer, and every test ends with tp_shutdown(), uv_run to
 * completion and uv_loop_close() == 0.
 *
 *   client (POSIX socket)            simpled transport (uv loop)
 *     | --- REGISTER (1 byte/write) --> | frame, assemble, recv_cb
 *     | <-- SIP/2.0 200 OK ------------ | tp_send over from->conn_id
 *     | --- 2 MB body ----------------> | error_cb(-EMSGSIZE) -> 413, close
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "server/transport/tp.h"

static const char REGISTER[] =
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKnashds7\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@example.com>\r\n"
    "From: <sip:bob@example.com>;tag=456248\r\n"
    "Call-ID: 843817637684230@998sdasdh09\r\n"
    "CSeq: 1826 REGISTER\r\n"
    "Contact: <sip:bob@127.0.0.1;transport=tcp>\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 5\r\n"
    "\r\n"
    "hello";

static const char OPTIONS[] =
    "OPTIONS sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK2\r\n"
    "Call-ID: opt-1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char OK200[] = "SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
static const char R413[] = "SIP/2.0 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n";

/* ---- fixture -------------------------------------------------------- */

enum reply_mode { REPLY_NONE, REPLY_ECHO, REPLY_ECHO_ANY_LISTENER, REPLY_200 };

struct rx {
	tp_peer_t peer;
	char *msg;
	size_t len;
};

static struct {
	struct rx rx[32];
	int nrx;
	int nerr;
	int last_err;
	tp_peer_t err_peer;
	int nclosed;
	uint64_t closed[32];
	enum reply_mode mode;
	bool reply_413;
	int send_err;
} S;

static uv_loop_t loop;
static uv_timer_t tick, watchdog;
static bool watchdog_fired;

static void on_recv(void *arg, const tp_peer_t *from, char *msg, size_t len)
{
	assert_ptr_equal(arg, &S);
	/* The contract: NUL-terminated at len, writable. */
	assert_int_equal(msg[len], '\0');
	if (S.nrx < (int)(sizeof S.rx / sizeof S.rx[0])) {
		struct rx *r = &S.rx[S.nrx++];
		r->peer = *from;
		r->msg = malloc(len + 1);
		memcpy(r->msg, msg, len + 1);
		r->len = len;
	}
	int err = 0;
	switch (S.mode) {
	case REPLY_ECHO:
		err = tp_send(from, msg, len);
		break;
	case REPLY_ECHO_ANY_LISTENER: {
		tp_peer_t to = *from;
		to.listener = -1;
		err = tp_send(&to, msg, len);
		break;
	}
	case REPLY_200:
		if (strncmp(msg, "SIP/2.0", 7) != 0)
			err = tp_send(from, OK200, strlen(OK200));
		break;
	default:
		break;
	}
	if (err)
		S.send_err = err;
}

static void on_error(void *arg, const tp_peer_t *from, int err, const char *head, size_t len)
{
	(void)head;
	(void)len;
	assert_ptr_equal(arg, &S);
	S.nerr++;
	S.last_err = err;
	S.err_peer = *from;
	assert_true(tp_conn_alive(from->conn_id));
	if (S.reply_413)
		S.send_err = tp_send(from, R413, strlen(R413));
}

static void on_closed(void *arg, uint64_t conn_id)
{
	assert_ptr_equal(arg, &S);
	if (S.nclosed < (int)(sizeof S.closed / sizeof S.closed[0]))
		S.closed[S.nclosed] = conn_id;
	S.nclosed++;
}

static void tick_cb(uv_timer_t *t) { (void)t; }

static void watchdog_cb(uv_timer_t *t)
{
	watchdog_fired = true;
	if (t->data)
		uv_stop(t->loop);
}

static void start(const tp_limits_t *lim)
{
	for (int i = 0; i < S.nrx; i++)
		free(S.rx[i].msg);
	memset(&S, 0, sizeof S);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(tp_init(&loop, lim, on_recv, on_error, &S), 0);
	tp_set_conn_closed_cb(on_closed, &S);
	uv_timer_init(&loop, &tick);
	uv_timer_init(&loop, &watchdog);
	watchdog.data = NULL;
	watchdog_fired = false;
}

/* Runs the loop until cond(arg) holds or ms pass; a 5 ms tick keeps the
 * loop waking so conditions on the client sockets get polled. */
static bool run_until(bool (*cond)(void *), void *arg, unsigned ms)
{
	watchdog_fired = false;
	uv_timer_start(&watchdog, watchdog_cb, ms, 0);
	uv_timer_start(&tick, tick_cb, 5, 5);
	bool ok;
	while (!(ok = cond(arg)) && !watchdog_fired)
		uv_run(&loop, UV_RUN_ONCE);
	uv_timer_stop(&watchdog);
	uv_timer_stop(&tick);
	return ok;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

static void run_for(unsigned ms) { run_until(never, NULL, ms); }

static void finish(void)
{
	tp_shutdown();
	uv_close((uv_handle_t *)&tick, NULL);
	/* The watchdog bounds the final run without keeping the loop alive
	 * itself: if a handle leaked, uv_stop ends the run and
	 * uv_loop_close() below reports it. */
	watchdog.data = &watchdog;
	watchdog_fired = false;
	uv_timer_start(&watchdog, watchdog_cb, 5000, 0);
	uv_unref((uv_handle_t *)&watchdog);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&watchdog, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_false(watchdog_fired);
	assert_int_equal(uv_loop_close(&loop), 0);
	for (int i = 0; i < S.nrx; i++)
		free(S.rx[i].msg);
	S.nrx = 0;
}

static bool have_rx(void *arg) { return S.nrx >= *(int *)arg; }
static bool have_err(void *arg) { (void)arg; return S.nerr > 0; }
static bool have_closed(void *arg) { return S.nclosed >= *(int *)arg; }

static void listener_sa(int idx, struct sockaddr_storage *ss, tp_proto_t want)
{
	tp_proto_t p;
	assert_int_equal(tp_listener_addr(idx, &p, ss), 0);
	assert_int_equal(p, want);
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	char host[64];
	uint16_t port = 0;
	assert_int_equal(tp_addr_to_str(ss, host, sizeof host, &port), 0);
	return port;
}

/* ---- client side: plain sockets --------------------------------------- */

struct client {
	int fd;
	char buf[16384];
	size_t len;
	bool eof;
};

static socklen_t ss_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Connects (blocking: on loopback the kernel completes the handshake from
 * the listen backlog without the server loop running), then goes
 * non-blocking.  TCP_NODELAY so each write is its own segment. */
static void client_connect(struct client *c, const struct sockaddr_storage *to)
{
	memset(c, 0, sizeof *c);
	c->fd = socket(to->ss_family, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	assert_int_equal(connect(c->fd, (const struct sockaddr *)to, ss_len(to)), 0);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static void client_send(struct client *c, const char *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			uv_run(&loop, UV_RUN_NOWAIT); /* let the server drain */
		} else {
			break; /* peer closed: callers check the outcome */
		}
	}
}

static void client_poll(struct client *c)
{
	while (!c->eof && c->len < sizeof c->buf - 1) {
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			c->eof = true;
		} else {
			break;
		}
	}
}

static void client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

struct want {
	struct client *c;
	size_t len;
};

static bool client_has(void *arg)
{
	struct want *w = arg;
	client_poll(w->c);
	return w->c->len >= w->len;
}

static bool client_eof(void *arg)
{
	struct client *c = arg;
	client_poll(c);
	return c->eof;
}

/* ---- UDP ---------------------------------------------------------------- */

static int udp_client(const struct sockaddr_storage *bind_to)
{
	int fd = socket(bind_to->ss_family, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	return fd;
}

struct dgram {
	int fd;
	char buf[70000];
	ssize_t len;
};

static bool dgram_in(void *arg)
{
	struct dgram *d = arg;
	d->len = recv(d->fd, d->buf, sizeof d->buf - 1, MSG_DONTWAIT);
	return d->len >= 0;
}

static void udp_echo(const char *host, enum reply_mode mode)
{
	int idx = tp_listen(TP_UDP, host, 0);
	assert_true(idx >= 0);
	struct sockaddr_storage srv;
	listener_sa(idx, &srv, TP_UDP);
	assert_true(sa_port(&srv) != 0);

	S.mode = mode;
	int rx0 = S.nrx;
	struct dgram d = {.fd = udp_client(&srv)};
	assert_int_equal(sendto(d.fd, OPTIONS, strlen(OPTIONS), 0, (struct sockaddr *)&srv, ss_len(&srv)),
			 (ssize_t)strlen(OPTIONS));
	assert_true(run_until(dgram_in, &d, 3000));
	assert_int_equal(d.len, (ssize_t)strlen(OPTIONS));
	assert_memory_equal(d.buf, OPTIONS, strlen(OPTIONS));
	assert_int_equal(S.nrx, rx0 + 1);
	assert_int_equal(S.rx[rx0].peer.proto, TP_UDP);
	assert_int_equal(S.rx[rx0].peer.listener, idx);
	assert_int_equal(S.rx[rx0].peer.conn_id, 0);
	assert_int_equal(S.send_err, 0);
	close(d.fd);
}

static void test_udp_echo_v4(void **state)
{
	(void)state;
	start(NULL);
	udp_echo("127.0.0.1", REPLY_ECHO);
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.udp_rx, 1);
	assert_int_equal(st.udp_tx, 1);
	finish();
}

static void test_udp_echo_any_listener(void **state)
{
	(void)state;
	start(NULL);
	/* A TCP listener first, so "first UDP listener" is not index 0. */
	assert_true(tp_listen(TP_TCP, "127.0.0.1", 0) >= 0);
	udp_echo("127.0.0.1", REPLY_ECHO_ANY_LISTENER);
	finish();
}

static bool ipv6_loopback_ok(void)
{
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof a);
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_loopback;
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static void test_udp_echo_v6(void **state)
{
	(void)state;
	if (!ipv6_loopback_ok()) {
		print_message("::1 not available, skipping IPv6 test\n");
		skip();
	}
	start(NULL);
	udp_echo("::1", REPLY_ECHO);
	finish();
}

/* "0.0.0.0" and "::" on one port (IPV6_V6ONLY), for UDP and TCP. */
static void test_dual_bind(void **state)
{
	(void)state;
	start(NULL);
	for (int proto = TP_UDP; proto <= TP_TCP; proto++) {
		int a = tp_listen((tp_proto_t)proto, "0.0.0.0", 0);
		assert_true(a >= 0);
		struct sockaddr_storage ss;
		listener_sa(a, &ss, (tp_proto_t)proto);
		uint16_t port = sa_port(&ss);
		int b = tp_listen((tp_proto_t)proto, "::", port);
		if (b < 0 && !ipv6_loopback_ok()) {
			print_message("no IPv6, skipping the \"::\" half\n");
			continue;
		}
		assert_true(b >= 0);
		listener_sa(b, &ss, (tp_proto_t)proto);
		assert_int_equal(sa_port(&ss), port);
		/* The same family and port twice is still a conflict. */
		assert_true(tp_listen((tp_proto_t)proto, "0.0.0.0", port) < 0);
	}
	finish();
}

static void test_udp_limits(void **state)
{
	(void)state;
	tp_limits_t lim = {.max_msg_size = 1024};
	start(&lim);
	int idx = tp_listen(TP_UDP, "127.0.0.1", 0);
	assert_true(idx >= 0);
	struct sockaddr_storage srv;
	listener_sa(idx, &srv, TP_UDP);
	int fd = udp_client(&srv);

	char big[2000];
	memset(big, 'A', sizeof big);
	sendto(fd, big, sizeof big, 0, (struct sockaddr *)&srv, ss_len(&srv));
	sendto(fd, "\r\n\r\n", 4, 0, (struct sockaddr *)&srv, ss_len(&srv));
	sendto(fd, OPTIONS, strlen(OPTIONS), 0, (struct sockaddr *)&srv, ss_len(&srv));
	int one = 1;
	assert_true(run_until(have_rx, &one, 3000));
	run_for(50);
	/* Only the real message arrives; the oversized one is counted. */
	assert_int_equal(S.nrx, 1);
	assert_int_equal(S.rx[0].len, strlen(OPTIONS));
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.udp_rx, 1);
	close(fd);
	finish();
}

/* ---- TCP ---------------------------------------------------------------- */

static int tcp_listener(const char *host, struct sockaddr_storage *srv)
{
	int idx = tp_listen(TP_TCP, host, 0);
	assert_true(idx >= 0);
	listener_sa(idx, srv, TP_TCP);
	return idx;
}

static void test_tcp_byte_at_a_time(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv;
	int idx = tcp_listener("127.0.0.1", &srv);
	S.mode = REPLY_200;
	struct client c;
	client_connect(&c, &srv);
	size_t n = strlen(REGISTER);
	for (size_t i = 0; i < n; i++) {
		client_send(&c, REGISTER + i, 1);
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_run(&loop, UV_RUN_NOWAIT);
		if (i + 1 < n)
			assert_int_equal(S.nrx, 0);
	}
	int one = 1;
	assert_true(run_until(have_rx, &one, 3000));
	assert_int_equal(S.rx[0].len, n);
	assert_string_equal(S.rx[0].msg, REGISTER);
	assert_int_equal(S.rx[0].peer.proto, TP_TCP);
	assert_int_equal(S.rx[0].peer.listener, idx);
	assert_true(S.rx[0].peer.conn_id != 0);
	assert_true(tp_conn_alive(S.rx[0].peer.conn_id));

	/* The reply went back over the same connection. */
	struct want w = {&c, strlen(OK200)};
	assert_true(run_until(client_has, &w, 3000));
	assert_memory_equal(c.buf, OK200, strlen(OK200));
	client_close(&c);
	finish();
}

static void test_tcp_two_in_one_write(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	struct client c;
	client_connect(&c, &srv);
	/* Keep-alive noise around and between, as a real stream may have. */
	char buf[4096];
	int n = snprintf(buf, sizeof buf, "\r\n%s%s", REGISTER, OPTIONS);
	client_send(&c, buf, (size_t)n);
	int two = 2;
	assert_true(run_until(have_rx, &two, 3000));
	assert_string_equal(S.rx[0].msg, REGISTER);
	assert_string_equal(S.rx[1].msg, OPTIONS);
	assert_int_equal(S.rx[0].peer.conn_id, S.rx[1].peer.conn_id);

	/* And a message split across two writes with the next one glued on. */
	size_t half = strlen(REGISTER) / 2;
	client_send(&c, REGISTER, half);
	run_for(30);
	n = snprintf(buf, sizeof buf, "%s%s", REGISTER + half, OPTIONS);
	client_send(&c, buf, (size_t)n);
	int four = 4;
	assert_true(run_until(have_rx, &four, 3000));
	assert_string_equal(S.rx[2].msg, REGISTER);
	assert_string_equal(S.rx[3].msg, OPTIONS);
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.tcp_rx, 4);
	assert_int_equal(st.tcp_conns, 1);
	client_close(&c);
	finish();
}

static void test_tcp_ping_pong(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	struct client c;
	client_connect(&c, &srv);
	/* RFC 5626 §4.4.1: CRLFCRLF -> CRLF, also when split in two. */
	client_send(&c, "\r\n\r\n", 4);
	struct want w = {&c, 2};
	assert_true(run_until(client_has, &w, 3000));
	assert_memory_equal(c.buf, "\r\n", 2);
	client_send(&c, "\r\n", 2);
	run_for(30);
	client_send(&c, "\r\n", 2);
	w.len = 4;
	assert_true(run_until(client_has, &w, 3000));
	assert_memory_equal(c.buf, "\r\n\r\n", 4);
	assert_int_equal(S.nrx, 0);
	client_close(&c);
	finish();
}

/* With linger, the client keeps its socket open after reading our
 * answer, so the server closes when its linger is over; otherwise the
 * client closes and the server sees EOF while draining. */
static void oversized(int want_err, const char *payload, size_t len, bool linger)
{
	tp_limits_t lim = {.max_msg_size = 1024};
	start(&lim);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	S.reply_413 = true;
	struct client c;
	client_connect(&c, &srv);
	client_send(&c, payload, len);
	assert_true(run_until(have_err, NULL, 3000));
	assert_int_equal(S.last_err, want_err);
	assert_int_equal(S.err_peer.proto, TP_TCP);
	assert_int_equal(S.send_err, 0);
	assert_int_equal(S.nrx, 0);
	/* The answer sent from error_cb arrives, then the connection ends. */
	assert_true(run_until(client_eof, &c, 5000));
	assert_true(c.len >= strlen(R413));
	assert_memory_equal(c.buf, R413, strlen(R413));
	if (!linger)
		client_close(&c);
	int one = 1;
	assert_true(run_until(have_closed, &one, 5000));
	assert_int_equal(S.closed[0], S.err_peer.conn_id);
	assert_false(tp_conn_alive(S.err_peer.conn_id));
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.tcp_conns, 0);
	client_close(&c);
	finish();
}

static void test_tcp_oversized_body(void **state)
{
	(void)state;
	char m[512];
	int n = snprintf(m, sizeof m, "MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 5000\r\n\r\nxx");
	oversized(-EMSGSIZE, m, (size_t)n, true);
}

static void test_tcp_oversized_headers(void **state)
{
	(void)state;
	char *m = malloc(3000);
	memcpy(m, "INVITE sip:a@b SIP/2.0\r\n", 24);
	for (size_t i = 24; i < 3000; i++)
		m[i] = (i % 50 == 49) ? '\n' : 'h';
	oversized(-EMSGSIZE, m, 3000, false);
	free(m);
}

static void test_tcp_bad_content_length(void **state)
{
	(void)state;
	const char m[] = "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -4\r\n\r\nabcd";
	oversized(-EBADMSG, m, strlen(m), false);
}

static bool stats_conns(void *arg)
{
	tp_stats_t st;
	tp_get_stats(&st);
	return st.tcp_conns == *(unsigned *)arg;
}

static void test_tcp_per_ip_cap(void **state)
{
	(void)state;
	tp_limits_t lim = {.max_tcp_conns_per_ip = 2};
	start(&lim);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	struct client c[3];
	client_connect(&c[0], &srv);
	client_connect(&c[1], &srv);
	unsigned two = 2;
	assert_true(run_until(stats_conns, &two, 3000));
	client_connect(&c[2], &srv);
	/* The third is accepted and closed at once. */
	assert_true(run_until(client_eof, &c[2], 3000));
	run_for(50);
	client_poll(&c[0]);
	client_poll(&c[1]);
	assert_false(c[0].eof);
	assert_false(c[1].eof);
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.tcp_conns, 2);
	/* A refused connection was never handed out: no close callback. */
	assert_int_equal(S.nclosed, 0);

	/* Freeing a slot lets the next one in. */
	client_close(&c[0]);
	int one = 1;
	assert_true(run_until(have_closed, &one, 3000));
	client_close(&c[2]);
	client_connect(&c[2], &srv);
	assert_true(run_until(stats_conns, &two, 3000));
	run_for(50);
	client_poll(&c[2]);
	assert_false(c[2].eof);
	for (int i = 0; i < 3; i++)
		client_close(&c[i]);
	finish();
}

static void test_tcp_total_cap(void **state)
{
	(void)state;
	tp_limits_t lim = {.max_tcp_conns = 1};
	start(&lim);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	struct client a, b;
	client_connect(&a, &srv);
	unsigned one = 1;
	assert_true(run_until(stats_conns, &one, 3000));
	client_connect(&b, &srv);
	assert_true(run_until(client_eof, &b, 3000));
	client_poll(&a);
	assert_false(a.eof);
	client_close(&a);
	client_close(&b);
	finish();
}

static void test_tcp_idle_timeout(void **state)
{
	(void)state;
	tp_limits_t lim = {.tcp_idle_timeout_s = 1};
	start(&lim);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	S.mode = REPLY_200;
	struct client c;
	client_connect(&c, &srv);
	client_send(&c, OPTIONS, strlen(OPTIONS));
	int one = 1;
	assert_true(run_until(have_rx, &one, 3000));
	uint64_t id = S.rx[0].peer.conn_id;
	uint64_t t0 = uv_now(&loop);
	assert_true(run_until(have_closed, &one, 4000));
	uint64_t waited = uv_now(&loop) - t0;
	assert_true(waited >= 900);
	assert_int_equal(S.closed[0], id);
	assert_false(tp_conn_alive(id));
	assert_true(run_until(client_eof, &c, 3000));
	client_close(&c);
	finish();
}

/* Slowloris: a started message that never completes is cut off after the
 * header timeout even though bytes keep trickling in. */
static void test_tcp_header_timeout(void **state)
{
	(void)state;
	tp_limits_t lim = {.tcp_idle_timeout_s = 30, .tcp_header_timeout_s = 1};
	start(&lim);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	struct client c;
	client_connect(&c, &srv);
	uint64_t t0 = uv_now(&loop);
	const char *p = REGISTER;
	int one = 1;
	while (S.nclosed == 0 && uv_now(&loop) - t0 < 5000) {
		if (*p && p[1]) /* never the last byte */
			client_send(&c, p++, 1);
		run_until(have_closed, &one, 100);
	}
	assert_int_equal(S.nclosed, 1);
	assert_true(uv_now(&loop) - t0 >= 900);
	assert_int_equal(S.nrx, 0);
	client_close(&c);
	finish();
}

/* tp_send with no connection: connects, queues until connected, and the
 * reply comes back over the new connection. */
static void test_tcp_outbound(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv;
	int idx = tcp_listener("127.0.0.1", &srv);
	S.mode = REPLY_200;

	tp_peer_t to;
	memset(&to, 0, sizeof to);
	to.proto = TP_TCP;
	to.addr = srv;
	to.listener = -1;
	uint64_t out_id = 0;
	assert_int_equal(tp_send_ex(&to, REGISTER, strlen(REGISTER), &out_id), 0);
	assert_true(out_id != 0);
	assert_true(tp_conn_alive(out_id));
	/* A second send before the connect completed reuses it (RFC 3261
	 * §18.1.1) and is queued behind the first. */
	uint64_t id2 = 0;
	assert_int_equal(tp_send_ex(&to, OPTIONS, strlen(OPTIONS), &id2), 0);
	assert_int_equal(id2, out_id);

	/* REGISTER and OPTIONS arrive on the accepted side; two 200s come
	 * back on the outbound side. */
	int four = 4;
	assert_true(run_until(have_rx, &four, 3000));
	int reqs = 0, resps = 0;
	uint64_t in_id = 0;
	for (int i = 0; i < S.nrx; i++) {
		if (strncmp(S.rx[i].msg, "SIP/2.0 200", 11) == 0) {
			resps++;
			assert_int_equal(S.rx[i].peer.conn_id, out_id);
			assert_int_equal(S.rx[i].peer.listener, idx);
		} else {
			reqs++;
			in_id = S.rx[i].peer.conn_id;
			assert_true(in_id != out_id);
			assert_int_equal(S.rx[i].peer.listener, idx);
		}
	}
	assert_int_equal(reqs, 2);
	assert_int_equal(resps, 2);
	assert_string_equal(S.rx[0].msg, REGISTER);
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.tcp_conns, 2);

	/* tp_shutdown closes both; each fires conn_closed_cb once. */
	finish();
	assert_int_equal(S.nclosed, 2);
	assert_true((S.closed[0] == out_id && S.closed[1] == in_id) ||
		    (S.closed[1] == out_id && S.closed[0] == in_id));
}

static void test_tcp_connect_refused(void **state)
{
	(void)state;
	start(NULL);
	/* A port nobody listens on: bind, learn it, close. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);

	tp_peer_t to;
	memset(&to, 0, sizeof to);
	to.proto = TP_TCP;
	memcpy(&to.addr, &a, sizeof a);
	to.listener = -1;
	uint64_t id = 0;
	assert_int_equal(tp_send_ex(&to, OPTIONS, strlen(OPTIONS), &id), 0);
	int one = 1;
	assert_true(run_until(have_closed, &one, 3000));
	assert_int_equal(S.closed[0], id);
	assert_false(tp_conn_alive(id));
	tp_stats_t st;
	tp_get_stats(&st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.tcp_conns, 0);

	/* No address and no connection: nothing to do. */
	tp_peer_t none;
	memset(&none, 0, sizeof none);
	none.proto = TP_TCP;
	none.conn_id = id;
	assert_int_equal(tp_send(&none, "x", 1), -ENOTCONN);
	finish();
}

/* tp_stop_listening: no new connections or datagrams; open connections
 * keep working and UDP can still send. */
static void test_stop_listening(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv, usrv;
	tcp_listener("127.0.0.1", &srv);
	int u = tp_listen(TP_UDP, "127.0.0.1", 0);
	assert_true(u >= 0);
	listener_sa(u, &usrv, TP_UDP);
	S.mode = REPLY_200;
	struct client c;
	client_connect(&c, &srv);
	client_send(&c, OPTIONS, strlen(OPTIONS));
	int one = 1;
	assert_true(run_until(have_rx, &one, 3000));

	tp_stop_listening();
	run_for(30);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&srv, ss_len(&srv)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(fd);

	struct dgram d = {.fd = udp_client(&usrv)};
	sendto(d.fd, OPTIONS, strlen(OPTIONS), 0, (struct sockaddr *)&usrv, ss_len(&usrv));
	run_for(50);
	assert_int_equal(S.nrx, 1);

	/* The open connection still delivers and answers. */
	c.len = 0;
	client_send(&c, REGISTER, strlen(REGISTER));
	int two = 2;
	assert_true(run_until(have_rx, &two, 3000));
	struct want w = {&c, 2 * strlen(OK200)};
	assert_true(run_until(client_has, &w, 3000));

	/* UDP still sends from the listener's socket. */
	struct sockaddr_storage me;
	socklen_t mlen = sizeof me;
	assert_int_equal(getsockname(d.fd, (struct sockaddr *)&me, &mlen), 0);
	tp_peer_t to;
	memset(&to, 0, sizeof to);
	to.proto = TP_UDP;
	to.addr = me;
	to.listener = u;
	assert_int_equal(tp_send(&to, OK200, strlen(OK200)), 0);
	assert_true(run_until(dgram_in, &d, 3000));
	assert_int_equal(d.len, (ssize_t)strlen(OK200));
	close(d.fd);
	client_close(&c);
	finish();
}

enum { CHUNK = 128 * 1024 };

struct sink {
	int fd;
	size_t got, want;
	bool bad;
};

/* Reads and checks the pattern: chunk i is all 'a' + i % 26. */
static bool sink_read(void *arg)
{
	struct sink *k = arg;
	static char tmp[65536];
	for (;;) {
		ssize_t n = recv(k->fd, tmp, sizeof tmp, MSG_DONTWAIT);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++, k->got++) {
			if (tmp[i] != (char)('a' + (k->got / CHUNK) % 26))
				k->bad = true;
		}
	}
	return k->got >= k->want;
}

/* Writes the socket cannot take at once are queued (uv_write) in order;
 * a peer that stops reading is cut off when the queue passes its cap. */
static void test_tcp_write_queue(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	struct client c;
	client_connect(&c, &srv);
	client_send(&c, OPTIONS, strlen(OPTIONS));
	int one = 1;
	assert_true(run_until(have_rx, &one, 3000));
	tp_peer_t to = S.rx[0].peer;

	char *chunk = malloc(CHUNK);
	assert_non_null(chunk);
	enum { N = 24 }; /* 3 MiB: more than the socket takes, under the cap */
	for (int i = 0; i < N; i++) {
		memset(chunk, 'a' + i % 26, CHUNK);
		assert_int_equal(tp_send(&to, chunk, CHUNK), 0);
	}
	struct sink k = {.fd = c.fd, .want = (size_t)N * CHUNK};
	assert_true(run_until(sink_read, &k, 10000));
	assert_false(k.bad);
	assert_int_equal(k.got, (size_t)N * CHUNK);

	/* Now the client stops reading. */
	int err = 0, sent = 0;
	for (; sent < 400 && !err; sent++) {
		memset(chunk, 'a' + sent % 26, CHUNK);
		err = tp_send(&to, chunk, CHUNK);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(err, -ENOBUFS);
	assert_true(run_until(have_closed, &one, 3000));
	assert_int_equal(S.closed[0], to.conn_id);
	assert_false(tp_conn_alive(to.conn_id));
	tp_stats_t st;
	tp_get_stats(&st);
	assert_true(st.dropped >= 1);
	free(chunk);
	client_close(&c);
	finish();
}

static void test_tcp_v6(void **state)
{
	(void)state;
	if (!ipv6_loopback_ok()) {
		print_message("::1 not available, skipping IPv6 test\n");
		skip();
	}
	start(NULL);
	struct sockaddr_storage srv;
	tcp_listener("::1", &srv);
	assert_int_equal(srv.ss_family, AF_INET6);
	S.mode = REPLY_200;
	struct client c;
	client_connect(&c, &srv);
	client_send(&c, REGISTER, strlen(REGISTER));
	struct want w = {&c, strlen(OK200)};
	assert_true(run_until(client_has, &w, 3000));
	assert_int_equal(S.rx[0].peer.addr.ss_family, AF_INET6);
	client_close(&c);
	finish();
}

/* tp_shutdown from inside recv_cb, with more messages still buffered in
 * the same read: nothing more is delivered and nothing leaks. */
static void shutdown_in_recv(void *arg, const tp_peer_t *from, char *msg, size_t len)
{
	(void)from;
	(void)msg;
	(void)len;
	(*(int *)arg)++;
	tp_shutdown();
}

static void test_shutdown_in_callback(void **state)
{
	(void)state;
	int calls = 0;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(tp_init(&loop, NULL, shutdown_in_recv, NULL, &calls), 0);
	struct sockaddr_storage srv;
	int idx = tp_listen(TP_TCP, "127.0.0.1", 0);
	assert_true(idx >= 0);
	listener_sa(idx, &srv, TP_TCP);
	struct client c;
	client_connect(&c, &srv);
	char buf[4096];
	int n = snprintf(buf, sizeof buf, "%s%s%s", OPTIONS, OPTIONS, OPTIONS);
	client_send(&c, buf, (size_t)n);
	/* The loop ends by itself once tp_shutdown closed everything; the
	 * unreferenced watchdog only bounds the wait if it does not. */
	uv_timer_init(&loop, &watchdog);
	watchdog.data = &watchdog;
	watchdog_fired = false;
	uv_timer_start(&watchdog, watchdog_cb, 5000, 0);
	uv_unref((uv_handle_t *)&watchdog);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&watchdog, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_false(watchdog_fired);
	assert_int_equal(calls, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
	tp_peer_t to;
	memset(&to, 0, sizeof to);
	to.proto = TP_TCP;
	assert_int_equal(tp_send(&to, "x", 1), -ESHUTDOWN);
	client_close(&c);
}

static void test_addr_helpers(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	char host[64];
	uint16_t port = 0;
	assert_int_equal(tp_addr_from_str("192.0.2.1", 5060, &ss), 0);
	assert_int_equal(tp_addr_to_str(&ss, host, sizeof host, &port), 0);
	assert_string_equal(host, "192.0.2.1");
	assert_int_equal(port, 5060);
	assert_int_equal(tp_addr_from_str("[2001:db8::1]", 5061, &ss), 0);
	assert_int_equal(tp_addr_to_str(&ss, host, sizeof host, &port), 0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 5061);
	assert_int_equal(tp_addr_from_str("::", 1, &ss), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(tp_addr_from_str("example.com", 1, &ss), -EINVAL);
	assert_int_equal(tp_addr_from_str("1.2.3", 1, &ss), -EINVAL);
	assert_int_equal(tp_addr_from_str("", 1, &ss), -EINVAL);
	assert_int_equal(tp_addr_to_str(&ss, host, sizeof host, &port), -EAFNOSUPPORT);
	assert_int_equal(tp_addr_from_str("10.0.0.1", 1, &ss), 0);
	assert_int_equal(tp_addr_to_str(&ss, host, 2, &port), -ENOSPC);

	/* Errors before init and on bad arguments. */
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(tp_init(&loop, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(tp_init(&loop, NULL, on_recv, NULL, &S), 0);
	assert_int_equal(tp_init(&loop, NULL, on_recv, NULL, &S), -EALREADY);
	assert_int_equal(tp_listen(TP_UDP, "not-an-ip", 0), -EINVAL);
	assert_int_equal(tp_listen((tp_proto_t)7, "127.0.0.1", 0), -EPROTONOSUPPORT);
	assert_int_equal(tp_listener_addr(3, NULL, &ss), -EINVAL);
	tp_peer_t to;
	memset(&to, 0, sizeof to);
	to.proto = TP_UDP;
	assert_int_equal(tp_send(&to, "x", 1), -EAFNOSUPPORT);
	assert_int_equal(tp_addr_from_str("127.0.0.1", 9, &to.addr), 0);
	to.listener = -1;
	assert_int_equal(tp_send(&to, "x", 1), -EADDRNOTAVAIL);
	tp_shutdown();
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* A listen failure (port in use) leaves nothing open. */
static void test_listen_conflict(void **state)
{
	(void)state;
	start(NULL);
	struct sockaddr_storage srv;
	tcp_listener("127.0.0.1", &srv);
	uint16_t port = sa_port(&srv);
	assert_true(tp_listen(TP_TCP, "127.0.0.1", port) < 0);
	assert_int_equal(tp_listener_count(), 1);
	int u = tp_listen(TP_UDP, "127.0.0.1", 0);
	assert_true(u >= 0);
	listener_sa(u, &srv, TP_UDP);
	assert_true(tp_listen(TP_UDP, "127.0.0.1", sa_port(&srv)) < 0);
	assert_int_equal(tp_listener_count(), 2);
	finish();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_helpers),
		cmocka_unit_test(test_udp_echo_v4),
		cmocka_unit_test(test_udp_echo_any_listener),
		cmocka_unit_test(test_udp_echo_v6),
		cmocka_unit_test(test_dual_bind),
		cmocka_unit_test(test_udp_limits),
		cmocka_unit_test(test_listen_conflict),
		cmocka_unit_test(test_tcp_byte_at_a_time),
		cmocka_unit_test(test_tcp_two_in_one_write),
		cmocka_unit_test(test_tcp_ping_pong),
		cmocka_unit_test(test_tcp_oversized_body),
		cmocka_unit_test(test_tcp_oversized_headers),
		cmocka_unit_test(test_tcp_bad_content_length),
		cmocka_unit_test(test_tcp_per_ip_cap),
		cmocka_unit_test(test_tcp_total_cap),
		cmocka_unit_test(test_tcp_idle_timeout),
		cmocka_unit_test(test_tcp_header_timeout),
		cmocka_unit_test(test_tcp_outbound),
		cmocka_unit_test(test_tcp_connect_refused),
		cmocka_unit_test(test_tcp_v6),
		cmocka_unit_test(test_stop_listening),
		cmocka_unit_test(test_tcp_write_queue),
		cmocka_unit_test(test_shutdown_in_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
