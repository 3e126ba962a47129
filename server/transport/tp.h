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
	int listener;                 /* index of the local listener (socket) */
} tp_peer_t;

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

/* Whether a TCP connection id still refers to an open connection. */
bool tp_conn_alive(uint64_t conn_id);

/* Callback when a TCP connection closes (e.g. for registrar bindings that
 * were reachable only through it).  Optional. */
typedef void (*tp_conn_closed_cb)(void *arg, uint64_t conn_id);
void tp_set_conn_closed_cb(tp_conn_closed_cb cb, void *arg);

/* Statistics for logs and benchmarks. */
typedef struct tp_stats {
	uint64_t udp_rx, udp_tx, tcp_rx, tcp_tx, dropped;
	unsigned tcp_conns;
} tp_stats_t;
void tp_get_stats(tp_stats_t *out);

/* Stops listening for new connections and datagrams (graceful shutdown
 * step 1); open connections may still deliver and send. */
void tp_stop_listening(void);
/* Closes every handle; the loop can then finish. */
void tp_shutdown(void);

/* Formats an address as "1.2.3.4" or "::1" (no brackets) and returns the port. */
int tp_addr_to_str(const struct sockaddr_storage *sa, char *out, size_t outlen, uint16_t *port);
/* Parses numeric host + port into a sockaddr; returns 0 or -EINVAL. */
int tp_addr_from_str(const char *host, uint16_t port, struct sockaddr_storage *out);

#endif
