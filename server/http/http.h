/* A small HTTP/1.1 server on the server's libuv loop, for XCAP (RFC
 * 4825) and later the WebSocket SIP transport (RFC 7118): libwebsockets
 * (Debian libwebsockets-dev, with its libuv event-library plugin) runs on
 * our loop as a foreign loop, so HTTP requests are callbacks on the same
 * thread as SIP, nothing is shared across threads and nothing blocks.
 *
 * libwebsockets parses the request line and headers (bounded by
 * max_header_bytes) and percent-decodes and normalises the path; this
 * module collects the body (bounded by max_body; 413 beyond, 411 for a
 * PUT/POST without Content-Length), counts connections (max_conns;
 * refused at accept beyond) and closes idle ones after idle_timeout_s.
 *
 * A request is handed to the handler once complete.  The handler owns it
 * until it calls http_reply exactly once, at once or later (after a
 * database round trip); if the client went away meanwhile, http_reply
 * only frees the request.  One request per connection is in progress at a
 * time (no pipelining beyond what libwebsockets buffers). */
#ifndef SD_HTTP_H
#define SD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct http_options {
	const char *listen;        /* "127.0.0.1:8080", "[::1]:8080", port 0 = any */
	unsigned max_conns;        /* open connections; 0 = 256 */
	unsigned idle_timeout_s;   /* keep-alive idle and stalled request; 0 = 30 */
	size_t max_body;           /* bytes; 0 = 1 MiB */
	unsigned max_header_bytes; /* request line + headers; 0 = 8 KiB */
} http_options_t;

typedef struct http_req http_req_t;

/* Called with every complete request (on the loop thread). */
typedef void (*http_handler_cb)(void *arg, http_req_t *req);

/* Starts listening.  Returns 0, -EINVAL (bad listen address) or -EIO
 * (libwebsockets could not create the context or bind). */
int http_init(uv_loop_t *loop, const http_options_t *opts, http_handler_cb cb, void *arg);
/* The bound port (useful with port 0), or -1 when not listening. */
int http_port(void);
/* Stops listening and closes every connection; requests still owned by a
 * handler stay valid until their http_reply.  The libuv handles close
 * asynchronously: keep running the loop until it has no handles left. */
void http_shutdown(void);

/* Request accessors; the strings are borrowed from req. */
typedef enum {
	HTTP_H_AUTHORIZATION,
	HTTP_H_IF_MATCH,
	HTTP_H_IF_NONE_MATCH,
	HTTP_H_CONTENT_TYPE,
	HTTP_H_HOST,
	HTTP_H_COUNT
} http_hdr_t;

/* "GET", "PUT", "DELETE", "POST", "HEAD", "OPTIONS", "PATCH" or "". */
const char *http_req_method(const http_req_t *req);
/* The percent-decoded path, without the query. */
const char *http_req_path(const http_req_t *req);
/* The query component after '?' ("" when none), as received. */
const char *http_req_query(const http_req_t *req);
/* The header value, or NULL when absent. */
const char *http_req_header(const http_req_t *req, http_hdr_t which);
const char *http_req_body(const http_req_t *req, size_t *len);
/* The client's address as text (for logs). */
const char *http_req_peer(const http_req_t *req);

/* Answers req and releases it.  headers: extra header lines "Name: value"
 * separated by "\r\n" (no trailing CRLF needed), or NULL; content_type
 * NULL when body is empty.  The reason phrase is the standard one. */
void http_reply(http_req_t *req, int status, const char *headers, const char *content_type,
		const char *body, size_t len);

#endif
