/* HTTP server on our loop (server/http): real sockets on 127.0.0.1, a
 * libuv client in the same loop, then a clean shutdown that leaves no
 * handle open (uv_loop_close == 0) and nothing leaked (ASan/LSan). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "server/base/buf.h"
#include "server/http/http.h"

static uv_loop_t loop;
static int handled;
static http_req_t *deferred;
static uv_timer_t defer_timer;
static uint64_t giveup_ms = 5000;

static void answer_deferred(uv_timer_t *t)
{
	(void)t;
	if (deferred)
		http_reply(deferred, 200, "ETag: \"late\"", "text/plain", "late\n", 5);
	deferred = NULL;
}

static void handler(void *arg, http_req_t *req)
{
	(void)arg;
	handled++;
	const char *path = http_req_path(req);
	if (!strcmp(path, "/later")) {
		deferred = req;
		uv_timer_start(&defer_timer, answer_deferred, 200, 0);
		return;
	}
	size_t blen;
	const char *body = http_req_body(req, &blen);
	const char *im = http_req_header(req, HTTP_H_IF_MATCH);
	char out[512];
	int n = snprintf(out, sizeof out, "%s %s ?%s if-match=%s body=%zu:%.*s\n",
			 http_req_method(req), path, http_req_query(req), im ? im : "-", blen,
			 (int)(blen > 64 ? 64 : blen), body);
	http_reply(req, 200, "ETag: \"e1\"\r\nX-Test: yes", "text/plain", out, (size_t)n);
}

/* --- a client on the same loop --------------------------------------- */

typedef struct client {
	uv_tcp_t tcp;
	uv_connect_t conn;
	uv_write_t wr;
	uv_timer_t giveup;
	const char *request;
	size_t reqlen;
	buf_t resp;
	bool close_early; /* close right after writing */
	bool done;
} client_t;

static void giveup_closed(uv_handle_t *h)
{
	client_t *c = h->data;
	c->done = true; /* both handles closed: c may be freed */
}

static void client_closed(uv_handle_t *h)
{
	client_t *c = h->data;
	uv_close((uv_handle_t *)&c->giveup, giveup_closed);
}

static void client_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h;
	static char area[65536];
	b->base = area;
	b->len = sz < sizeof area ? sz : sizeof area;
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	client_t *c = s->data;
	if (n > 0) {
		buf_append(&c->resp, b->base, (size_t)n);
		return;
	}
	if (n < 0 && !uv_is_closing((uv_handle_t *)s))
		uv_close((uv_handle_t *)s, client_closed);
}

static void client_written(uv_write_t *w, int status)
{
	client_t *c = w->data;
	assert_int_equal(status, 0);
	if (c->close_early) {
		uv_close((uv_handle_t *)&c->tcp, client_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
}

static void client_connected(uv_connect_t *req, int status)
{
	client_t *c = req->data;
	if (status != 0) {
		uv_close((uv_handle_t *)&c->tcp, client_closed);
		return;
	}
	uv_buf_t b = uv_buf_init((char *)c->request, (unsigned)c->reqlen);
	c->wr.data = c;
	uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, client_written);
}

static void client_timeout(uv_timer_t *t)
{
	client_t *c = t->data;
	if (!uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, client_closed);
}

/* Sends request and returns everything read until the server closes. */
static char *exchange(const char *request, size_t len, bool close_early)
{
	client_t *c = calloc(1, sizeof *c);
	c->request = request;
	c->reqlen = len;
	c->close_early = close_early;
	buf_init(&c->resp, 0);
	uv_tcp_init(&loop, &c->tcp);
	c->tcp.data = c;
	c->conn.data = c;
	uv_timer_init(&loop, &c->giveup);
	c->giveup.data = c;
	uv_timer_start(&c->giveup, client_timeout, giveup_ms, 0);
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", http_port(), &sa);
	assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&sa, client_connected), 0);
	while (!c->done)
		uv_run(&loop, UV_RUN_ONCE);
	buf_append(&c->resp, "", 1);
	size_t n;
	char *out = buf_steal(&c->resp, &n);
	free(c);
	return out;
}

static char *exchange_str(const char *request) { return exchange(request, strlen(request), false); }

static int setup(void **state)
{
	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &defer_timer);
	http_options_t o = {.listen = "127.0.0.1:0", .max_body = 1000, .idle_timeout_s = 5, .max_conns = 4};
	assert_int_equal(http_init(&loop, &o, handler, NULL), 0);
	assert_true(http_port() > 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	http_shutdown();
	uv_close((uv_handle_t *)&defer_timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	return 0;
}

static void test_get(void **state)
{
	(void)state;
	char *r = exchange_str("GET /a/b%5b1%5d?xmlns(p=urn:x) HTTP/1.1\r\nHost: x\r\n"
			       "If-Match: \"abc\"\r\nConnection: close\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "GET /a/b[1] ?xmlns(p=urn:x) if-match=\"abc\" body=0:"));
	assert_non_null(strcasestr(r, "etag: \"e1\""));
	assert_non_null(strcasestr(r, "x-test: yes"));
	free(r);
}

static void test_put_body(void **state)
{
	(void)state;
	char *r = exchange_str("PUT /doc HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
			       "Content-Type: application/xml\r\nConnection: close\r\n\r\nhello world");
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	assert_non_null(strstr(r, "PUT /doc ? if-match=- body=11:hello world"));
	free(r);
}

static void test_limits(void **state)
{
	(void)state;
	int before = handled;
	char *r = exchange_str("PUT /doc HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 413"));
	free(r);
	r = exchange_str("PUT /doc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 411"));
	free(r);
	/* A header block beyond max_header_bytes never reaches the handler. */
	size_t big = 20000;
	char *req = malloc(big + 100);
	int n = snprintf(req, 100, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + n, 'a', big);
	memcpy(req + n + big, "\r\n\r\n", 5);
	r = exchange(req, strlen(req), false);
	assert_null(strstr(r, "HTTP/1.1 200"));
	free(r);
	free(req);
	assert_int_equal(handled, before);
}

static void test_keepalive_and_deferred(void **state)
{
	(void)state;
	char *r = exchange_str("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
			       "GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_non_null(strstr(r, "GET /one"));
	assert_non_null(strstr(r, "late\n"));
	free(r);
}

static void test_client_gone_before_answer(void **state)
{
	(void)state;
	int before = handled;
	char *r = exchange("GET /later HTTP/1.1\r\nHost: x\r\n\r\n", 33, true);
	free(r);
	/* Let the server see the request, the close, then the late answer. */
	for (int i = 0; i < 50 && (handled == before || deferred); i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(10);
	}
	assert_int_equal(handled, before + 1);
	assert_null(deferred);
}

/* A request that never completes (slowloris) is closed after the idle
 * timeout (5 s here), not held forever. */
static void test_stalled_request_closed(void **state)
{
	(void)state;
	giveup_ms = 15000;
	uv_update_time(&loop);
	uint64_t t0 = uv_now(&loop);
	char *r = exchange_str("GET /slow HTTP/1.1\r\nHost: x\r\nX-A: b");
	uv_update_time(&loop);
	uint64_t dt = uv_now(&loop) - t0;
	giveup_ms = 5000;
	assert_null(strstr(r, "HTTP/1.1 200"));
	free(r);
	if (dt < 3000 || dt > 12000)
		fail_msg("stalled request closed after %llu ms (idle timeout 5 s)", (unsigned long long)dt);
}

static void idle_connected(uv_connect_t *req, int status)
{
	(void)req;
	assert_int_equal(status, 0);
}

/* max_conns: four idle connections fill the server; a fifth is refused
 * (closed without an answer); once they close, requests are served. */
static void test_connection_cap(void **state)
{
	(void)state;
	uv_tcp_t idle[4];
	uv_connect_t creq[4];
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", http_port(), &sa);
	for (int i = 0; i < 4; i++) {
		uv_tcp_init(&loop, &idle[i]);
		assert_int_equal(uv_tcp_connect(&creq[i], &idle[i], (struct sockaddr *)&sa, idle_connected), 0);
	}
	for (int i = 0; i < 20; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(5);
	}
	char *r = exchange_str("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_null(strstr(r, "HTTP/1.1 200"));
	free(r);
	for (int i = 0; i < 4; i++)
		uv_close((uv_handle_t *)&idle[i], NULL);
	for (int i = 0; i < 20; i++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		uv_sleep(5);
	}
	r = exchange_str("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200"));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_put_body),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_keepalive_and_deferred),
		cmocka_unit_test(test_client_gone_before_answer),
		cmocka_unit_test(test_connection_cap),
		cmocka_unit_test(test_stalled_request_closed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
