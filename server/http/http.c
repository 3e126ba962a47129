/* HTTP server on libwebsockets over our libuv loop: see http.h.
 *
 * libwebsockets drives one protocol callback; the events used here:
 *   FILTER_NETWORK_CONNECTION  connection cap (refused at accept)
 *   HTTP                       headers complete: method, path, limits
 *   HTTP_BODY / _COMPLETION    body chunks, bounded
 *   HTTP_WRITEABLE             our queued response is written
 *   CLOSED_HTTP                the connection went away: an answer still
 *                              owed by a handler is dropped when it comes
 * Requests live on the heap, not in libwebsockets' per-session data, so a
 * handler can hold one across loop turns whatever happens to the socket. */
#include "server/http/http.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/buf.h"
#include "server/base/log.h"

#define DEFAULT_MAX_CONNS 256u
#define DEFAULT_IDLE_S 30u
#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_HEADER 8192u
#define HEADER_VALUE_MAX 4096
#define PATH_MAX_BYTES 4096

struct conn;

struct http_req {
	struct lws *wsi; /* NULL once the connection closed */
	struct conn *conn;
	struct http_req *prev, *next; /* every live request, for http_shutdown */
	char method[8];
	char *path, *query;
	char *hdr[HTTP_H_COUNT];
	char peer[64];
	buf_t body;
	size_t expected; /* Content-Length */
	bool dispatched;
	/* The response, built by http_reply and written when writable;
	 * LWS_PRE bytes of headroom before the body, as lws_write wants. */
	int status;
	char *resp_headers;
	char *resp_ctype;
	unsigned char *resp; /* LWS_PRE + body */
	size_t resp_len;
	bool answered;
	bool close_after; /* refused by us: the rest of the request is unread */
};

typedef struct conn {
	http_req_t *req; /* the request in progress, or NULL */
} conn_t;

static struct {
	struct lws_context *ctx;
	struct lws_vhost *vh;
	http_options_t o;
	http_handler_cb cb;
	void *arg;
	unsigned conns;
	int port;
	char iface[64];
	http_req_t *live;
} H;

static http_req_t *req_new(struct lws *wsi, struct conn *c)
{
	http_req_t *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->wsi = wsi;
	r->conn = c;
	r->next = H.live;
	if (H.live)
		H.live->prev = r;
	H.live = r;
	return r;
}

static const enum lws_token_indexes HDR_TOKEN[HTTP_H_COUNT] = {
	[HTTP_H_AUTHORIZATION] = WSI_TOKEN_HTTP_AUTHORIZATION,
	[HTTP_H_IF_MATCH] = WSI_TOKEN_HTTP_IF_MATCH,
	[HTTP_H_IF_NONE_MATCH] = WSI_TOKEN_HTTP_IF_NONE_MATCH,
	[HTTP_H_CONTENT_TYPE] = WSI_TOKEN_HTTP_CONTENT_TYPE,
	[HTTP_H_HOST] = WSI_TOKEN_HOST,
};

static const struct {
	enum lws_token_indexes tok;
	const char *name;
} METHODS[] = {
	{WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_PUT_URI, "PUT"},
	{WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_POST_URI, "POST"},
	{WSI_TOKEN_HEAD_URI, "HEAD"},     {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
	{WSI_TOKEN_PATCH_URI, "PATCH"},
};

static void req_free(http_req_t *r)
{
	if (!r)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else if (H.live == r)
		H.live = r->next;
	if (r->next)
		r->next->prev = r->prev;
	free(r->path);
	free(r->query);
	for (int i = 0; i < HTTP_H_COUNT; i++)
		free(r->hdr[i]);
	buf_free(&r->body);
	free(r->resp_headers);
	free(r->resp_ctype);
	free(r->resp);
	free(r);
}

/* A copy of header tok, or NULL when absent; -1 in *bad when it is
 * longer than we accept. */
static char *copy_header(struct lws *wsi, enum lws_token_indexes tok, bool *bad)
{
	int n = lws_hdr_total_length(wsi, tok);
	if (n <= 0)
		return NULL;
	if (n >= HEADER_VALUE_MAX) {
		*bad = true;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		*bad = true;
		return NULL;
	}
	if (lws_hdr_copy(wsi, s, n + 1, tok) < 0) {
		free(s);
		*bad = true;
		return NULL;
	}
	return s;
}

/* libwebsockets splits the query at '&' into fragments (percent-decoded);
 * they are joined again here. */
static char *copy_query(struct lws *wsi)
{
	buf_t b;
	buf_init(&b, PATH_MAX_BYTES);
	char frag[PATH_MAX_BYTES];
	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0)
			break;
		if (i)
			buf_append(&b, "&", 1);
		buf_append(&b, frag, (size_t)n);
	}
	buf_append(&b, "", 1);
	if (b.err) {
		buf_free(&b);
		return NULL;
	}
	size_t len;
	return buf_steal(&b, &len);
}

/* Queues a response for the connection's request; written from
 * HTTP_WRITEABLE. */
static void queue_reply(http_req_t *r, int status, const char *headers, const char *ctype,
			const char *body, size_t len)
{
	r->status = status;
	r->resp_headers = headers ? strdup(headers) : NULL;
	r->resp_ctype = ctype ? strdup(ctype) : NULL;
	r->resp = malloc(LWS_PRE + len + 1);
	if (r->resp) {
		if (len)
			memcpy(r->resp + LWS_PRE, body, len);
		r->resp_len = len;
	}
	r->answered = true;
	lws_callback_on_writable(r->wsi);
}

void http_reply(http_req_t *r, int status, const char *headers, const char *ctype,
		const char *body, size_t len)
{
	if (!r->wsi) {
		/* The client left while the handler worked. */
		req_free(r);
		return;
	}
	queue_reply(r, status, headers, ctype, body, len);
}

static void dispatch(http_req_t *r)
{
	r->dispatched = true;
	H.cb(H.arg, r);
}

/* Adds "Name: value" lines of r->resp_headers. */
static int add_extra_headers(struct lws *wsi, const char *headers, unsigned char **p,
			     unsigned char *end)
{
	const char *s = headers;
	while (s && *s) {
		const char *eol = strstr(s, "\r\n");
		size_t linelen = eol ? (size_t)(eol - s) : strlen(s);
		const char *colon = memchr(s, ':', linelen);
		if (colon && colon > s) {
			char name[128];
			size_t nl = (size_t)(colon - s);
			if (nl + 2 > sizeof name)
				return -1;
			memcpy(name, s, nl);
			name[nl] = ':';
			name[nl + 1] = '\0';
			const char *v = colon + 1;
			while (v < s + linelen && *v == ' ')
				v++;
			if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
							(const unsigned char *)v,
							(int)(s + linelen - v), p, end))
				return -1;
		}
		s = eol ? eol + 2 : s + linelen;
	}
	return 0;
}

/* Writes the queued response; returns what the callback returns. */
static int write_reply(struct lws *wsi, conn_t *c)
{
	http_req_t *r = c->req;
	unsigned char hbuf[LWS_PRE + 2048];
	unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof hbuf - 1;
	if (!r->resp) {
		/* Out of memory while queueing: close rather than lie. */
		return -1;
	}
	if (lws_add_http_common_headers(wsi, (unsigned int)r->status, r->resp_ctype,
					(lws_filepos_t)r->resp_len, &p, end) ||
	    add_extra_headers(wsi, r->resp_headers, &p, end) ||
	    lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (r->resp_len &&
	    lws_write(wsi, r->resp + LWS_PRE, r->resp_len, LWS_WRITE_HTTP_FINAL) != (int)r->resp_len)
		return -1;
	bool close_after = r->close_after;
	c->req = NULL;
	req_free(r);
	if (close_after)
		return -1;
	/* Keep-alive: ready for the next request, or close. */
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Answers at once from inside the callback (limits, bad requests). */
static int refuse(struct lws *wsi, conn_t *c, int status, const char *why)
{
	LOGI("http", "%s: %d %s", c->req ? c->req->peer : "-", status, why);
	if (!c->req) {
		c->req = req_new(wsi, c);
		if (!c->req)
			return -1;
		buf_init(&c->req->body, 0);
	}
	c->req->dispatched = true;
	c->req->close_after = true;
	char body[256];
	int n = snprintf(body, sizeof body, "%s\n", why);
	queue_reply(c->req, status, "Connection: close", "text/plain", body, (size_t)n);
	return 0;
}

static int on_headers(struct lws *wsi, conn_t *c)
{
	http_req_t *r = req_new(wsi, c);
	if (!r)
		return -1;
	c->req = r;
	buf_init(&r->body, H.o.max_body + 1); /* + the NUL */
	lws_get_peer_simple(wsi, r->peer, sizeof r->peer);
	enum lws_token_indexes mtok = WSI_TOKEN_COUNT;
	for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++) {
		if (lws_hdr_total_length(wsi, METHODS[i].tok) > 0) {
			snprintf(r->method, sizeof r->method, "%s", METHODS[i].name);
			mtok = METHODS[i].tok;
			break;
		}
	}
	if (mtok == WSI_TOKEN_COUNT)
		return refuse(wsi, c, 501, "method not implemented");
	bool bad = false;
	r->path = copy_header(wsi, mtok, &bad);
	r->query = copy_query(wsi);
	for (int i = 0; i < HTTP_H_COUNT; i++)
		r->hdr[i] = copy_header(wsi, HDR_TOKEN[i], &bad);
	if (bad || !r->path || !r->query)
		return refuse(wsi, c, 431, "header too large");

	char cl[32];
	bool has_body_method = !strcmp(r->method, "PUT") || !strcmp(r->method, "POST");
	if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		char *endp;
		unsigned long long v = strtoull(cl, &endp, 10);
		if (*endp || endp == cl)
			return refuse(wsi, c, 400, "bad Content-Length");
		if (v > H.o.max_body)
			return refuse(wsi, c, 413, "body too large");
		r->expected = (size_t)v;
	} else if (has_body_method) {
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
			return refuse(wsi, c, 411, "chunked bodies are not accepted; send Content-Length");
		return refuse(wsi, c, 411, "Content-Length required");
	}
	if (r->expected == 0)
		dispatch(r);
	return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		    size_t len)
{
	conn_t *c = user;
	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		if (H.conns >= H.o.max_conns) {
			LOGW("http", "connection refused: %u open (max_conns)", H.conns);
			return 1;
		}
		return 0;
	case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
		/* Every accepted connection, before it sends anything (its
		 * per-session data does not exist yet, so the mark is the
		 * wsi's opaque pointer); paired with WSI_DESTROY. */
		if (lws_get_opaque_user_data(wsi) != &H) {
			lws_set_opaque_user_data(wsi, &H);
			H.conns++;
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		if (lws_get_opaque_user_data(wsi) == &H) {
			lws_set_opaque_user_data(wsi, NULL);
			H.conns--;
		}
		return 0;
	case LWS_CALLBACK_HTTP:
		if (c->req) /* a request while the previous one is owed: HTTP/1 keeps order */
			return -1;
		return on_headers(wsi, c);
	case LWS_CALLBACK_HTTP_BODY:
		if (!c->req || c->req->dispatched)
			return 0; /* refused already; discard */
		if (c->req->body.len + len > c->req->expected ||
		    buf_append(&c->req->body, in, len) != 0)
			return refuse(wsi, c, 413, "body too large");
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!c->req || c->req->dispatched)
			return 0;
		buf_append(&c->req->body, "", 1); /* NUL for convenience; not counted */
		if (c->req->body.err)
			return refuse(wsi, c, 413, "body too large");
		c->req->body.len--;
		dispatch(c->req);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (!c->req || !c->req->answered)
			return 0;
		return write_reply(wsi, c);
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (c && c->req) {
			http_req_t *r = c->req;
			c->req = NULL;
			r->conn = NULL;
			if (r->dispatched && !r->answered)
				r->wsi = NULL; /* the handler frees it in http_reply */
			else
				req_free(r);
		}
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols PROTOCOLS[] = {
	{"http", callback, sizeof(conn_t), 0, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
	char msg[512];
	snprintf(msg, sizeof msg, "%s", line);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	/* What libwebsockets calls errors are mostly a client's (a header
	 * too large): warnings for us. */
	(void)level;
	LOGW("lws", "%s", msg);
}

/* "ADDR:PORT" or "[V6]:PORT" into H.iface and *port. */
static int parse_listen(const char *s, int *port, bool *v6)
{
	const char *colon;
	size_t alen;
	const char *a = s;
	*v6 = false;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		a = s + 1;
		alen = (size_t)(rb - a);
		colon = rb + 1;
		*v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		alen = (size_t)(colon - s);
	}
	if (alen == 0 || alen >= sizeof H.iface)
		return -EINVAL;
	memcpy(H.iface, a, alen);
	H.iface[alen] = '\0';
	char *endp;
	long p = strtol(colon + 1, &endp, 10);
	if (*endp || endp == colon + 1 || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

int http_init(uv_loop_t *loop, const http_options_t *opts, http_handler_cb cb, void *arg)
{
	memset(&H, 0, sizeof H);
	H.o = *opts;
	if (!H.o.max_conns)
		H.o.max_conns = DEFAULT_MAX_CONNS;
	if (!H.o.idle_timeout_s)
		H.o.idle_timeout_s = DEFAULT_IDLE_S;
	if (!H.o.max_body)
		H.o.max_body = DEFAULT_MAX_BODY;
	if (!H.o.max_header_bytes)
		H.o.max_header_bytes = DEFAULT_MAX_HEADER;
	H.cb = cb;
	H.arg = arg;
	H.port = -1;
	int port;
	bool v6;
	if (!opts->listen || parse_listen(opts->listen, &port, &v6) != 0)
		return -EINVAL;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	void *loops[1] = {loop};
	info.foreign_loops = loops;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (!v6)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.count_threads = 1;
	info.timeout_secs = H.o.idle_timeout_s;
	/* Every header's bytes live in one area of this size. */
	info.max_http_header_data = (unsigned short)(H.o.max_header_bytes > 65535 ? 65535
										 : H.o.max_header_bytes);
	info.max_http_header_pool = (unsigned short)(H.o.max_conns > 65535 ? 65535 : H.o.max_conns);
	info.fd_limit_per_thread = 0;
	H.ctx = lws_create_context(&info);
	if (!H.ctx) {
		LOGE("http", "libwebsockets context creation failed");
		return -EIO;
	}
	struct lws_context_creation_info vi;
	memset(&vi, 0, sizeof vi);
	vi.port = port;
	vi.iface = H.iface;
	vi.protocols = PROTOCOLS;
	vi.vhost_name = "xcap";
	vi.keepalive_timeout = (int)H.o.idle_timeout_s;
	vi.timeout_secs = H.o.idle_timeout_s;
	vi.options = info.options & ~LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	vi.max_http_header_data = info.max_http_header_data;
	vi.max_http_header_pool = info.max_http_header_pool;
	H.vh = lws_create_vhost(H.ctx, &vi);
	if (!H.vh) {
		LOGE("http", "cannot listen on %s", opts->listen);
		lws_context_destroy(H.ctx);
		H.ctx = NULL;
		return -EIO;
	}
	H.port = lws_get_vhost_listen_port(H.vh);
	LOGI("http", "listening on %s (port %d)", H.iface, H.port);
	return 0;
}

int http_port(void) { return H.ctx ? H.port : -1; }

void http_shutdown(void)
{
	if (!H.ctx)
		return;
	/* Detach every request from its connection first: those a handler
	 * still owes an answer stay alive (http_reply frees them), the rest
	 * go now; libwebsockets then closes the connections. */
	for (http_req_t *r = H.live, *next; r; r = next) {
		next = r->next;
		if (r->conn)
			r->conn->req = NULL;
		r->conn = NULL;
		r->wsi = NULL;
		if (!r->dispatched || r->answered)
			req_free(r);
	}
	lws_context_destroy(H.ctx);
	H.ctx = NULL;
	H.port = -1;
}

const char *http_req_method(const http_req_t *r) { return r->method; }
const char *http_req_path(const http_req_t *r) { return r->path; }
const char *http_req_query(const http_req_t *r) { return r->query ? r->query : ""; }
const char *http_req_header(const http_req_t *r, http_hdr_t which)
{
	return (unsigned)which < HTTP_H_COUNT ? r->hdr[which] : NULL;
}
const char *http_req_body(const http_req_t *r, size_t *len)
{
	*len = r->body.len;
	return r->body.len ? (const char *)r->body.data : "";
}
const char *http_req_peer(const http_req_t *r) { return r->peer; }
