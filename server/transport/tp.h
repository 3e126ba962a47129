/* Transport layer: UDP and TCP listeners (IPv4 and IPv6) on one libuv
 * loop.  It turns bytes into whole SIP messages (datagram = message; TCP
 * framed by Content-Length, RFC 3261 §18.3) and sends bytes back.  It knows
 * nothing of SIP beyond framing: no parsing, no transactions.
 *
 * Limits (message size, connection counts, idle and header-read timeouts)
 * are enforced here, before any parsing. */
#ifndef SD_TP_H
#define SD_TP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef enum { TP_UDP = 1, TP_TCP = 2 } tp_proto_t;

/* Where a message came from / where one is to go. */
typedef struct tp_peer {
	tp_proto_t proto;
	struct sockaddr_storage addr; /* remote address and port */
	uint64_t conn_id;             /* TCP connection id; 0 for UDP or "any" */
	int listener;                 /* index of the local listener (socket); for a
	                               * connection we opened, the first TCP listener
	                               * of its family, or -1 when there is none */
} tp_peer_t;

/* A zero field takes its default: 65535-byte messages, 16384 connections,
 * 256 per address, 600 s idle, 32 s (64*T1, RFC 3261 §17) to complete a
 * started message. */
typedef struct tp_limits {
	size_t max_msg_size;           /* bytes of one message (headers + body) */
	unsigned max_tcp_conns;        /* open TCP connections in total */
	unsigned max_tcp_conns_per_ip; /* open TCP connections per source address */
	unsigned tcp_idle_timeout_s;   /* close a connection idle this long */
	unsigned tcp_header_timeout_s; /* a started message must be complete within this */
} tp_limits_t;

/* Called once per complete message.  msg is borrowed for the duration of
 * the call, is NUL-terminated at msg[len], and may be modified in place. */
typedef void (*tp_recv_cb)(void *arg, const tp_peer_t *from, char *msg, size_t len);

/* Called when a framing error makes a TCP stream unusable (oversized
 * message -> -EMSGSIZE, unparsable Content-Length -> -EBADMSG) just before
 * the connection is closed, so the upper layer may answer 413/400 first
 * with tp_send().  head/len hold what was received so far (borrowed). */
typedef void (*tp_error_cb)(void *arg, const tp_peer_t *from, int err, const char *head, size_t len);

/* Sets up the module on loop (borrowed; must outlive tp_shutdown's close
 * callbacks).  limits may be NULL (all defaults).  recv_cb is required,
 * error_cb optional.  Returns 0, -EINVAL, -EALREADY (already initialised)
 * or -EBUSY (the previous tp_shutdown's handles are still closing: run the
 * loop first). */
int tp_init(uv_loop_t *loop, const tp_limits_t *limits, tp_recv_cb recv_cb,
	    tp_error_cb error_cb, void *arg);

/* Opens a listener.  host is a numeric IPv4/IPv6 address ("0.0.0.0", "::",
 * "127.0.0.1", "::1"); port 0 picks a free port.  Returns the listener
 * index (>= 0) or a negative errno. */
int tp_listen(tp_proto_t proto, const char *host, uint16_t port);

/* Local address of a listener (after port 0 was resolved). */
int tp_listener_addr(int listener, tp_proto_t *proto, struct sockaddr_storage *out);
int tp_listener_count(void);

/* Sends one message.  UDP: sendto from the listener's socket (to->listener,
 * or the first UDP listener of the address family when < 0).  TCP: over
 * to->conn_id while that connection is open; otherwise connects to
 * to->addr (a new connection, queued writes until connected).  The bytes
 * are copied; returns 0 or a negative errno (-ENOTCONN if the TCP
 * connection is gone and no address is known). */
int tp_send(const tp_peer_t *to, const char *data, size_t len);

/* As tp_send(), and for TCP stores in *conn_id (when not NULL) the id of
 * the connection the bytes were queued on -- a new one when tp_send had to
 * connect -- so the caller can later send over, or watch the close of, the
 * same flow (RFC 5626).  *conn_id is 0 for UDP or on error. */
int tp_send_ex(const tp_peer_t *to, const char *data, size_t len, uint64_t *conn_id);

/* Whether a TCP connection id still refers to an open connection. */
bool tp_conn_alive(uint64_t conn_id);

/* Callback when a TCP connection closes (e.g. for registrar bindings that
 * were reachable only through it).  Optional. */
typedef void (*tp_conn_closed_cb)(void *arg, uint64_t conn_id);
/* Call after tp_init (which clears it).  Runs from the connection's
 * uv_close callback, once per connection that tp_send/tp_send_ex or an
 * accept handed out, including outbound connections that failed. */
void tp_set_conn_closed_cb(tp_conn_closed_cb cb, void *arg);

/* Statistics for logs and benchmarks. */
typedef struct tp_stats {
	uint64_t udp_rx, udp_tx, tcp_rx, tcp_tx, dropped;
	unsigned tcp_conns;
} tp_stats_t;
void tp_get_stats(tp_stats_t *out);

/* Stops listening for new connections and datagrams (graceful shutdown
 * step 1); open connections may still deliver and send.  UDP sockets stop
 * reading but stay open, so tp_send over UDP keeps working. */
void tp_stop_listening(void);
/* Closes every handle (connections are closed at once; queued writes
 * are dropped).  The close callbacks run on the next uv_run, after which
 * uv_run returns and uv_loop_close() succeeds as far as this module is
 * concerned.  tp_send fails with -ESHUTDOWN afterwards.  Safe to call
 * from inside any transport callback. */
void tp_shutdown(void);

/* Formats an address as "1.2.3.4" or "::1" (no brackets) and returns the
 * port in *port (may be NULL).  Returns 0, -EAFNOSUPPORT or -ENOSPC. */
int tp_addr_to_str(const struct sockaddr_storage *sa, char *out, size_t outlen, uint16_t *port);
/* Parses numeric host + port into a sockaddr; returns 0 or -EINVAL.
 * "[::1]" (the bracketed form of a SIP URI) is accepted too. */
int tp_addr_from_str(const char *host, uint16_t port, struct sockaddr_storage *out);

#ifdef SD_TP_INTERNAL
/* ---- Private to server/transport (tp.c, udp.c, tcp.c) ----------------
 * Other modules must not define SD_TP_INTERNAL: nothing below is part of
 * the public surface and may change without notice.  It lives here only
 * because the module has no private header of its own yet. */

enum { TP_MAX_LISTENERS = 16 };

/* The module's state; one static instance in tp.c. */
struct tp_core {
	uv_loop_t *loop;
	tp_limits_t limits;
	tp_recv_cb recv_cb;
	tp_error_cb error_cb;
	void *arg;
	tp_conn_closed_cb closed_cb;
	void *closed_arg;
	tp_stats_t stats;
	unsigned open_handles; /* initialised handles whose close_cb has not run */
	bool initialised;
	bool shutting_down;
};

enum tp_listener_state { TP_L_NONE = 0, TP_L_OPEN, TP_L_CLOSING, TP_L_CLOSED };

/* One socket we listen on.  Heap-allocated, because a failed open must
 * still uv_close() its handle and the memory must outlive the close
 * callback; freed by that callback once the listener is detached from
 * the table (failed open, tp_shutdown). */
typedef struct tp_listener {
	struct tp_core *core;
	tp_proto_t proto;
	int index;
	enum tp_listener_state state;
	bool receiving; /* UDP reading / TCP accepting */
	bool detached;  /* no longer in the table: free in the close callback */
	struct sockaddr_storage addr; /* bound address, port resolved */
	void *impl;     /* udp.c: receive buffers (one malloc block) */
	union {
		uv_handle_t handle;
		uv_udp_t udp;
		uv_tcp_t tcp;
	} h;
} tp_listener_t;

/* tp.c */
/* First listener of proto and address family still open, or -1. */
int tp__find_listener(tp_proto_t proto, int family);
socklen_t tp__addr_len(const struct sockaddr *sa);

/* udp.c: opens, binds and starts reading; on error the caller closes
 * the handle if l->state became TP_L_OPEN. */
int tp__udp_open(tp_listener_t *l, const struct sockaddr *sa);
int tp__udp_send(tp_listener_t *l, const struct sockaddr *to, const char *data, size_t len);

/* tcp.c */
int tp__tcp_init(struct tp_core *core);
int tp__tcp_open(tp_listener_t *l, const struct sockaddr *sa); /* as tp__udp_open */
int tp__tcp_send(const tp_peer_t *to, const char *data, size_t len, uint64_t *conn_id);
bool tp__tcp_alive(uint64_t conn_id);
void tp__tcp_shutdown(void); /* closes every connection and the sweep timer */
#endif

#endif
