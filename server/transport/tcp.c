/* TCP transport (RFC 3261 §18): listeners, accepted and outbound
 * connections, stream framing (§18.3), keep-alive pongs (RFC 5626
 * §4.4.1) and the limits that keep one peer from starving the others.
 *
 * Connections are found by a 64-bit id that only ever grows (so a stale
 * id never names a newer connection) and by remote address (so a request
 * to a destination reuses the connection already open to it, §18.1.1).
 *
 * Reading: libuv reads into one shared 64 KiB buffer.  Complete messages
 * are delivered straight from it, NUL-terminated in place by saving and
 * restoring the byte after each message; only the trailing partial message
 * is copied into the connection's own buffer, and that buffer is given
 * back once empty, so an idle connection costs no input memory.  Framing
 * resumes where it stopped (frame_message_resume), so a message trickling
 * in one byte per segment costs O(n), not O(n^2).
 *
 * Timers: one repeating 1 s sweep, no timer per connection.  Three lists
 * are each ordered by the time an entry was (re)appended, so each sweep
 * only looks at entries that are due:
 *   idle    every live connection, moved to the tail on traffic either way;
 *           closed after tcp_idle_timeout_s without any;
 *   partial connections holding the start of a message; closed when it is
 *           not complete within tcp_header_timeout_s (slowloris);
 *   linger  connections draining after a framing error or EOF whose
 *           write side is shut down; closed after TCP_LINGER_MS.
 *
 * Life cycle of a connection:
 *
 *   accept / tp_send ──> CONNECTING ──connect_cb──> OPEN ──framing error,
 *        (queue writes)        │ failure             │    peer EOF──> DRAINING
 *                              v                     v                (writes flush,
 *                            CLOSED <──── idle, error, overflow,      shutdown, linger)
 *                              │          tp_shutdown                    │
 *                              v                                         │
 *                      uv_close ─> close_cb: conn_closed_cb, free  <─────┘
 *
 * Memory is released only in the uv_close callback, so a connection
 * closed from inside its own read callback (or from an upper-layer
 * callback running inside it) stays valid until libuv is done with it. */
#define SD_TP_INTERNAL
#include "server/transport/tp.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/buf.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/transport/frame.h"

enum {
	TCP_READ_SIZE = 64 * 1024,
	/* Bytes waiting for the socket per connection; a peer that does not
	 * read must not make us buffer without bound. */
	TCP_MAX_WQ = 4 * 1024 * 1024,
	TCP_SWEEP_MS = 1000,
	/* Connections closed per list per sweep, so a mass expiry is spread
	 * over several ticks instead of stalling the loop. */
	TCP_SWEEP_BATCH = 1024,
	TCP_LINGER_MS = 2000,
	TCP_KEEP_INBUF = 4096,
	TCP_BACKLOG = 511,
};

struct dlink {
	struct dlink *prev, *next;
};

/* A list position plus the time it was taken. */
struct tlink {
	struct dlink l; /* first member: a struct dlink * is a struct tlink * */
	uint64_t since;
};

enum conn_state { C_CONNECTING = 1, C_OPEN, C_DRAINING, C_CLOSED };

typedef struct tcp_conn {
	uv_tcp_t h;
	hnode_t by_id;
	hnode_t by_addr;
	struct tlink idle;  /* in T.idle while not CLOSED */
	struct tlink timer; /* in T.partial (OPEN) or T.linger (DRAINING) */
	uint64_t id;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} peer;
	buf_t in;           /* partial message carried over between reads */
	frame_state_t fs;   /* framing progress of in */
	buf_t *pend;        /* writes queued while connecting */
	size_t wq_bytes;    /* bytes handed to uv_write, not yet completed */
	unsigned pend_msgs;
	int listener;
	uint8_t state;
	bool indexed;       /* in T.by_id / T.by_addr */
	bool per_ip;        /* counted in T.by_ip */
	bool quiet;         /* never handed out: no conn_closed_cb */
	bool peer_eof;      /* the peer shut its write side down */
} tcp_conn_t;

struct ip_count {
	hnode_t node;
	uint8_t family;
	uint8_t addr[16];
	unsigned n;
};

struct addr_key {
	uint8_t family;
	uint16_t port; /* network order; 0 for per-IP keys */
	uint8_t addr[16];
};

struct wreq {
	uv_write_t req;
	size_t len;
	char data[];
};

static struct {
	struct tp_core *core;
	htable_t by_id, by_addr, by_ip;
	struct dlink idle, partial, linger;
	uv_timer_t sweep;
	bool ready;
	uint64_t last_reject_log;
	unsigned rejects_unlogged;
} T;

/* Never reset, so ids stay unique across tp_init/tp_shutdown cycles. */
static uint64_t next_conn_id = 1;

/* The shared read buffer: one byte more than libuv may fill, for the NUL
 * written after a message that ends exactly at the end of a read. */
static char rbuf[TCP_READ_SIZE + 1];

/* ---- small helpers ------------------------------------------------- */

static void dl_init(struct dlink *h) { h->prev = h->next = h; }

static bool dl_linked(const struct dlink *n) { return n->next != NULL; }

static void dl_remove(struct dlink *n)
{
	if (!dl_linked(n))
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

static void tl_append(struct dlink *head, struct tlink *t, uint64_t now)
{
	dl_remove(&t->l);
	t->since = now;
	t->l.prev = head->prev;
	t->l.next = head;
	head->prev->next = &t->l;
	head->prev = &t->l;
}

static uint64_t now_ms(void) { return uv_now(T.core->loop); }

static void make_key(const struct sockaddr *sa, bool with_port, struct addr_key *k)
{
	memset(k, 0, sizeof *k);
	k->family = (uint8_t)sa->sa_family;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		memcpy(k->addr, &in->sin_addr, 4);
		k->port = with_port ? in->sin_port : 0;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(k->addr, &in6->sin6_addr, 16);
		k->port = with_port ? in6->sin6_port : 0;
	}
}

static uint64_t key_hash(const struct addr_key *k)
{
	return hash_mix(hash_bytes(k->addr, sizeof k->addr), ((uint64_t)k->family << 16) | k->port);
}

static uint64_t id_hash(uint64_t id) { return hash_mix(0, id); }

static bool eq_id(const hnode_t *n, const void *key)
{
	return container_of(n, tcp_conn_t, by_id)->id == *(const uint64_t *)key;
}

static bool eq_addr(const hnode_t *n, const void *key)
{
	const tcp_conn_t *c = container_of(n, tcp_conn_t, by_addr);
	struct addr_key k;
	make_key(&c->peer.sa, true, &k);
	return memcmp(&k, key, sizeof k) == 0;
}

static bool eq_ip(const hnode_t *n, const void *key)
{
	const struct ip_count *ip = container_of(n, struct ip_count, node);
	const struct addr_key *k = key;
	return ip->family == k->family && memcmp(ip->addr, k->addr, sizeof ip->addr) == 0;
}

static void peer_str(const tcp_conn_t *c, char *out, size_t outlen, uint16_t *port)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, &c->peer, tp__addr_len(&c->peer.sa));
	if (tp_addr_to_str(&ss, out, outlen, port)) {
		snprintf(out, outlen, "?");
		*port = 0;
	}
}

static void conn_peer(const tcp_conn_t *c, tp_peer_t *p)
{
	memset(p, 0, sizeof *p);
	p->proto = TP_TCP;
	memcpy(&p->addr, &c->peer, tp__addr_len(&c->peer.sa));
	p->conn_id = c->id;
	p->listener = c->listener;
}

static tcp_conn_t *find_id(uint64_t id)
{
	hnode_t *n = htable_find(&T.by_id, id_hash(id), eq_id, &id);
	return n ? container_of(n, tcp_conn_t, by_id) : NULL;
}

static tcp_conn_t *find_addr(const struct sockaddr *sa)
{
	struct addr_key k;
	make_key(sa, true, &k);
	hnode_t *n = htable_find(&T.by_addr, key_hash(&k), eq_addr, &k);
	return n ? container_of(n, tcp_conn_t, by_addr) : NULL;
}

/* ---- per-address accounting ---------------------------------------- */

static struct ip_count *ip_find(const struct sockaddr *sa, bool create)
{
	struct addr_key k;
	make_key(sa, false, &k);
	uint64_t h = key_hash(&k);
	hnode_t *n = htable_find(&T.by_ip, h, eq_ip, &k);
	if (n || !create)
		return n ? container_of(n, struct ip_count, node) : NULL;
	struct ip_count *ip = calloc(1, sizeof *ip);
	if (!ip)
		return NULL;
	ip->family = k.family;
	memcpy(ip->addr, k.addr, sizeof ip->addr);
	htable_insert(&T.by_ip, &ip->node, h);
	return ip;
}

static void ip_release(const struct sockaddr *sa)
{
	struct ip_count *ip = ip_find(sa, false);
	if (ip && --ip->n == 0) {
		htable_remove(&T.by_ip, &ip->node);
		free(ip);
	}
}

/* ---- closing ------------------------------------------------------- */

static void conn_on_close(uv_handle_t *h)
{
	tcp_conn_t *c = container_of(h, tcp_conn_t, h);
	struct tp_core *core = T.core;
	if (!c->quiet && core->closed_cb)
		core->closed_cb(core->closed_arg, c->id);
	buf_free(&c->in);
	free(c);
	core->open_handles--;
}

static void conn_unindex(tcp_conn_t *c)
{
	if (!c->indexed)
		return;
	htable_remove(&T.by_id, &c->by_id);
	htable_remove(&T.by_addr, &c->by_addr);
	c->indexed = false;
}

/* Closes at once; idempotent.  Queued writes are cancelled by libuv
 * (their callbacks run with UV_ECANCELED before conn_on_close). */
static void conn_close(tcp_conn_t *c)
{
	if (c->state == C_CLOSED)
		return;
	conn_unindex(c);
	dl_remove(&c->idle.l);
	dl_remove(&c->timer.l);
	if (c->per_ip) {
		ip_release(&c->peer.sa);
		c->per_ip = false;
	}
	if (c->pend) {
		T.core->stats.dropped += c->pend_msgs;
		buf_free(c->pend);
		free(c->pend);
		c->pend = NULL;
	}
	T.core->stats.tcp_conns--;
	c->state = C_CLOSED;
	uv_close((uv_handle_t *)&c->h, conn_on_close);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
	tcp_conn_t *c = req->handle->data;
	free(req);
	if (c->state != C_DRAINING)
		return; /* closed meanwhile (status is UV_ECANCELED) */
	if (status < 0 || c->peer_eof) {
		conn_close(c); /* nothing more can come from the peer */
		return;
	}
	/* Our side is flushed and shut down.  Closing right away while the
	 * peer may still be sending would make the kernel answer with a RST
	 * that can destroy the response we just sent (e.g. a 413) before
	 * the peer reads it; so keep reading and discarding for a short
	 * linger, until the peer closes too. */
	tl_append(&T.linger, &c->timer, now_ms());
}

/* Graceful close: stop delivering, let queued writes flush, shut the write
 * side down, then linger.  The connection leaves the id table at once, so
 * tp_conn_alive() is false and tp_send no longer picks it. */
static void conn_drain(tcp_conn_t *c)
{
	if (c->state == C_CONNECTING) {
		conn_close(c);
		return;
	}
	if (c->state != C_OPEN)
		return;
	c->state = C_DRAINING;
	conn_unindex(c);
	dl_remove(&c->timer.l);
	uv_shutdown_t *req = malloc(sizeof *req);
	if (!req || uv_shutdown(req, (uv_stream_t *)&c->h, conn_on_shutdown) != 0) {
		free(req);
		conn_close(c);
	}
}

/* ---- writing ------------------------------------------------------- */

static void conn_touch(tcp_conn_t *c)
{
	if (c->state != C_CLOSED)
		tl_append(&T.idle, &c->idle, now_ms());
}

static void conn_on_write(uv_write_t *req, int status)
{
	struct wreq *w = container_of(req, struct wreq, req);
	tcp_conn_t *c = req->handle->data;
	c->wq_bytes -= w->len;
	free(w);
	if (status == UV_ECANCELED || c->state == C_CLOSED)
		return;
	if (status < 0) {
		LOGD("tcp", "conn %" PRIu64 ": write failed: %s", c->id, uv_strerror(status));
		conn_close(c);
		return;
	}
	conn_touch(c);
}

static int conn_overflow(tcp_conn_t *c, size_t more)
{
	char host[64];
	uint16_t port;
	peer_str(c, host, sizeof host, &port);
	LOGW("tcp", "conn %" PRIu64 " to %s port %u: %zu bytes would be queued (limit %u), closing",
	     c->id, host, (unsigned)port, more, (unsigned)TCP_MAX_WQ);
	T.core->stats.dropped++;
	conn_close(c);
	return -ENOBUFS;
}

/* Writes or queues one message; the bytes are copied when they cannot be
 * written at once.  Errors close the connection (a stream with half a
 * message written is unusable). */
static int conn_write(tcp_conn_t *c, const char *data, size_t len)
{
	if (len == 0)
		return 0;
	if (c->state == C_CONNECTING) {
		if (!c->pend) {
			c->pend = malloc(sizeof *c->pend);
			if (!c->pend)
				return -ENOMEM;
			buf_init(c->pend, TCP_MAX_WQ);
		}
		if (c->pend->len + len > TCP_MAX_WQ)
			return conn_overflow(c, c->pend->len + len);
		int err = buf_append(c->pend, data, len);
		if (err)
			return err;
		c->pend_msgs++;
		return 0;
	}
	if (c->state != C_OPEN)
		return -ENOTCONN;
	if (len > UINT32_MAX)
		return -EMSGSIZE;

	size_t done = 0;
	/* Only when nothing is queued: a direct write must not overtake
	 * bytes still waiting in libuv's queue. */
	if (c->wq_bytes == 0) {
		uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
		int n = uv_try_write((uv_stream_t *)&c->h, &b, 1);
		if (n >= 0) {
			done = (size_t)n;
		} else if (n != UV_EAGAIN) {
			LOGD("tcp", "conn %" PRIu64 ": write failed: %s", c->id, uv_strerror(n));
			conn_close(c);
			return n;
		}
		if (done == len) {
			conn_touch(c);
			return 0;
		}
	}
	size_t rest = len - done;
	if (c->wq_bytes + rest > TCP_MAX_WQ)
		return conn_overflow(c, c->wq_bytes + rest);
	struct wreq *w = malloc(sizeof *w + rest);
	if (!w) {
		conn_close(c);
		return -ENOMEM;
	}
	w->len = rest;
	memcpy(w->data, data + done, rest);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
	int err = uv_write(&w->req, (uv_stream_t *)&c->h, &b, 1, conn_on_write);
	if (err) {
		free(w);
		conn_close(c);
		return err;
	}
	c->wq_bytes += rest;
	return 0;
}

/* ---- reading ------------------------------------------------------- */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	*b = uv_buf_init(rbuf, TCP_READ_SIZE);
}

static void conn_framing_error(tcp_conn_t *c, int err, char *head, size_t len)
{
	struct tp_core *core = T.core;
	char host[64];
	uint16_t port;
	peer_str(c, host, sizeof host, &port);
	LOGW("tcp", "conn %" PRIu64 " from %s port %u: %s after %zu bytes, closing", c->id, host,
	     (unsigned)port, err == -EMSGSIZE ? "message too large" : "bad Content-Length", len);
	core->stats.dropped++;
	if (core->error_cb) {
		tp_peer_t peer;
		conn_peer(c, &peer);
		char saved = head[len];
		head[len] = '\0';
		core->error_cb(core->arg, &peer, err, head, len);
		head[len] = saved;
	}
	/* The stream position is lost: nothing after this can be framed.
	 * Drain rather than close so a 400/413 the upper layer just sent
	 * reaches the peer (RFC 3261 §18.3 leaves no other recovery). */
	conn_drain(c);
}

/* Frames and delivers every complete message in data[0..len); data[len]
 * must be writable.  Returns the bytes consumed; *moved is set when the
 * message start moved (a message or keep-alive bytes were consumed).
 * Stops early when a callback closed the connection. */
static size_t conn_process(tcp_conn_t *c, char *data, size_t len, frame_state_t *fs, bool *moved)
{
	struct tp_core *core = T.core;
	size_t off = 0;
	while (off < len && c->state == C_OPEN) {
		int ping = 0;
		size_t k = frame_skip_keepalive(data + off, len - off, &ping);
		if (k) {
			off += k;
			frame_state_init(fs);
			*moved = true;
		}
		if (ping) {
			/* RFC 5626 §4.4.1: a double-CRLF ping is answered
			 * with a single CRLF pong. */
			conn_write(c, "\r\n", 2);
			if (c->state != C_OPEN)
				break;
		}
		/* What is left starting with CR/LF is the unpaired tail of a
		 * keep-alive: wait for the next read. */
		if (off >= len || data[off] == '\r' || data[off] == '\n')
			break;
		ssize_t m = frame_message_resume(data + off, len - off, core->limits.max_msg_size, fs);
		if (m == 0)
			break;
		if (m < 0) {
			conn_framing_error(c, (int)m, data + off, len - off);
			return len;
		}
		size_t n = (size_t)m;
		char saved = data[off + n];
		data[off + n] = '\0';
		tp_peer_t peer;
		conn_peer(c, &peer);
		core->stats.tcp_rx++;
		core->recv_cb(core->arg, &peer, data + off, n);
		data[off + n] = saved;
		off += n;
		frame_state_init(fs);
		*moved = true;
	}
	return off;
}

/* Keeps the partial list in step with the input buffer: a connection is
 * on it exactly while a started message is buffered, stamped with the
 * time that message began. */
static void conn_update_partial(tcp_conn_t *c, bool moved)
{
	bool partial = c->in.len > 0 && c->in.data[0] != '\r' && c->in.data[0] != '\n';
	if (moved || !partial)
		dl_remove(&c->timer.l);
	if (partial && !dl_linked(&c->timer.l))
		tl_append(&T.partial, &c->timer, now_ms());
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	tcp_conn_t *c = s->data;
	if (nread == 0)
		return; /* EAGAIN */
	if (c->state == C_DRAINING) {
		/* Lingering: discard until the peer closes too. */
		if (nread < 0)
			conn_close(c);
		return;
	}
	if (c->state != C_OPEN)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			LOGD("tcp", "conn %" PRIu64 ": read: %s", c->id, uv_strerror((int)nread));
		/* A peer that half-closed may still read what we queued. */
		if (nread == UV_EOF) {
			c->peer_eof = true;
			conn_drain(c);
		}
		else
			conn_close(c);
		return;
	}
	conn_touch(c);

	size_t n = (size_t)nread;
	bool moved = false;
	if (c->in.len == 0) {
		frame_state_t fs;
		frame_state_init(&fs);
		size_t used = conn_process(c, b->base, n, &fs, &moved);
		if (c->state != C_OPEN)
			return;
		if (used < n) {
			if (buf_append(&c->in, b->base + used, n - used)) {
				LOGW("tcp", "conn %" PRIu64 ": out of memory for input, closing", c->id);
				conn_close(c);
				return;
			}
			c->fs = fs;
		}
	} else {
		if (buf_append(&c->in, b->base, n)) {
			LOGW("tcp", "conn %" PRIu64 ": out of memory for input, closing", c->id);
			conn_close(c);
			return;
		}
		size_t used = conn_process(c, c->in.data, c->in.len, &c->fs, &moved);
		if (c->state != C_OPEN)
			return;
		buf_consume(&c->in, used);
		if (c->in.len == 0 && c->in.cap > TCP_KEEP_INBUF)
			buf_free(&c->in);
	}
	conn_update_partial(c, moved);
}

/* ---- accepting ----------------------------------------------------- */

static void log_reject(const struct sockaddr *sa, const char *why)
{
	uint64_t now = now_ms();
	if (T.last_reject_log && now - T.last_reject_log < 1000) {
		T.rejects_unlogged++;
		return;
	}
	T.last_reject_log = now;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, sa, tp__addr_len(sa));
	char host[64];
	uint16_t port = 0;
	if (tp_addr_to_str(&ss, host, sizeof host, &port))
		snprintf(host, sizeof host, "?");
	if (T.rejects_unlogged)
		LOGW("tcp", "refused connection from %s port %u: %s (and %u more since the last report)",
		     host, (unsigned)port, why, T.rejects_unlogged);
	else
		LOGW("tcp", "refused connection from %s port %u: %s", host, (unsigned)port, why);
	T.rejects_unlogged = 0;
}

static tcp_conn_t *conn_new(void)
{
	tcp_conn_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	if (uv_tcp_init(T.core->loop, &c->h) != 0) {
		free(c);
		return NULL;
	}
	c->h.data = c;
	T.core->open_handles++;
	buf_init(&c->in, 0);
	frame_state_init(&c->fs);
	c->listener = -1;
	return c;
}

/* Makes a connection findable and subject to the timers. */
static void conn_register(tcp_conn_t *c)
{
	c->id = next_conn_id++;
	htable_insert(&T.by_id, &c->by_id, id_hash(c->id));
	struct addr_key k;
	make_key(&c->peer.sa, true, &k);
	htable_insert(&T.by_addr, &c->by_addr, key_hash(&k));
	c->indexed = true;
	T.core->stats.tcp_conns++;
	tl_append(&T.idle, &c->idle, now_ms());
}

/* Refuses an accepted socket: closed without ever being handed out. */
static void conn_reject(tcp_conn_t *c, const char *why)
{
	log_reject(&c->peer.sa, why);
	c->quiet = true;
	c->state = C_CLOSED;
	uv_close((uv_handle_t *)&c->h, conn_on_close);
}

static void on_connection(uv_stream_t *server, int status)
{
	tp_listener_t *l = server->data;
	struct tp_core *core = l->core;
	if (status < 0) {
		LOGW("tcp", "listener %d: accept: %s", l->index, uv_strerror(status));
		return;
	}
	tcp_conn_t *c = conn_new();
	if (!c) {
		/* libuv stops accepting on this listener until uv_accept is
		 * called, so this stalls it; there is no memory to do better. */
		LOGE("tcp", "listener %d: out of memory accepting a connection", l->index);
		return;
	}
	int err = uv_accept(server, (uv_stream_t *)&c->h);
	int len = sizeof c->peer;
	if (!err)
		err = uv_tcp_getpeername(&c->h, &c->peer.sa, &len);
	if (err) {
		LOGD("tcp", "listener %d: accept: %s", l->index, uv_strerror(err));
		c->quiet = true;
		c->state = C_CLOSED;
		uv_close((uv_handle_t *)&c->h, conn_on_close);
		return;
	}
	/* Refuse at once, before any byte is read: a flood must not make us
	 * spend memory or parsing on connections we will not keep. */
	if (core->stats.tcp_conns >= core->limits.max_tcp_conns) {
		conn_reject(c, "connection limit reached");
		return;
	}
	struct ip_count *ip = ip_find(&c->peer.sa, true);
	if (!ip) {
		conn_reject(c, "out of memory");
		return;
	}
	if (ip->n >= core->limits.max_tcp_conns_per_ip) {
		conn_reject(c, "per-address connection limit reached");
		return;
	}
	ip->n++;
	c->per_ip = true;
	c->listener = l->index;
	c->state = C_OPEN;
	conn_register(c);
	/* SIP messages are small and latency-bound; don't wait to coalesce. */
	uv_tcp_nodelay(&c->h, 1);
	err = uv_read_start((uv_stream_t *)&c->h, conn_alloc, conn_on_read);
	if (err) {
		LOGW("tcp", "conn %" PRIu64 ": read_start: %s", c->id, uv_strerror(err));
		conn_close(c);
	}
}

int tp__tcp_open(tp_listener_t *l, const struct sockaddr *sa)
{
	struct tp_core *core = l->core;
	/* _ex creates the socket now, so bind errors are about this bind. */
	int err = uv_tcp_init_ex(core->loop, &l->h.tcp, sa->sa_family);
	if (err)
		return err;
	l->h.tcp.data = l;
	l->state = TP_L_OPEN;
	core->open_handles++;
	/* IPV6ONLY so "::" and "0.0.0.0" can share a port number. */
	err = uv_tcp_bind(&l->h.tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
	if (err)
		return err;
	/* libuv may report a bind conflict (EADDRINUSE) only here. */
	err = uv_listen((uv_stream_t *)&l->h.tcp, TCP_BACKLOG, on_connection);
	if (err)
		return err;
	int len = sizeof l->addr;
	err = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&l->addr, &len);
	if (err)
		return err;
	l->receiving = true;
	return 0;
}

/* ---- connecting ---------------------------------------------------- */

static void conn_on_connect(uv_connect_t *req, int status)
{
	tcp_conn_t *c = req->handle->data;
	free(req);
	if (c->state != C_CONNECTING)
		return; /* closed meanwhile; status is UV_ECANCELED */
	if (status < 0) {
		char host[64];
		uint16_t port;
		peer_str(c, host, sizeof host, &port);
		LOGW("tcp", "conn %" PRIu64 ": connect to %s port %u failed: %s (%u queued messages dropped)",
		     c->id, host, (unsigned)port, uv_strerror(status), c->pend_msgs);
		conn_close(c);
		return;
	}
	c->state = C_OPEN;
	conn_touch(c);
	uv_tcp_nodelay(&c->h, 1);
	int err = uv_read_start((uv_stream_t *)&c->h, conn_alloc, conn_on_read);
	if (err) {
		LOGW("tcp", "conn %" PRIu64 ": read_start: %s", c->id, uv_strerror(err));
		conn_close(c);
		return;
	}
	buf_t *p = c->pend;
	c->pend = NULL;
	c->pend_msgs = 0;
	if (p) {
		conn_write(c, p->data, p->len);
		buf_free(p);
		free(p);
	}
}

static int conn_connect(const struct sockaddr *sa, tcp_conn_t **out)
{
	struct tp_core *core = T.core;
	if (core->stats.tcp_conns >= core->limits.max_tcp_conns)
		return -EMFILE;
	tcp_conn_t *c = conn_new();
	if (!c)
		return -ENOMEM;
	memcpy(&c->peer, sa, tp__addr_len(sa));
	c->listener = tp__find_listener(TP_TCP, sa->sa_family);
	uv_connect_t *req = malloc(sizeof *req);
	int err = req ? uv_tcp_connect(req, &c->h, sa, conn_on_connect) : -ENOMEM;
	if (err) {
		free(req);
		c->quiet = true;
		c->state = C_CLOSED;
		uv_close((uv_handle_t *)&c->h, conn_on_close);
		return err;
	}
	c->state = C_CONNECTING;
	conn_register(c);
	*out = c;
	return 0;
}

int tp__tcp_send(const tp_peer_t *to, const char *data, size_t len, uint64_t *conn_id)
{
	if (!T.ready)
		return -ESHUTDOWN;
	tcp_conn_t *c = NULL;
	const struct sockaddr *sa = (const struct sockaddr *)&to->addr;
	bool have_addr = sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
	if (to->conn_id)
		c = find_id(to->conn_id);
	/* RFC 3261 §18.1.1: reuse a connection already open to the
	 * destination before opening a new one. */
	if (!c && have_addr)
		c = find_addr(sa);
	if (!c) {
		if (!have_addr)
			return -ENOTCONN;
		int err = conn_connect(sa, &c);
		if (err) {
			LOGW("tcp", "cannot connect: %s", uv_strerror(err));
			return err;
		}
	}
	uint64_t id = c->id;
	int err = conn_write(c, data, len);
	if (err)
		return err;
	T.core->stats.tcp_tx++;
	if (conn_id)
		*conn_id = id;
	return 0;
}

bool tp__tcp_alive(uint64_t conn_id)
{
	return T.ready && find_id(conn_id) != NULL;
}

/* ---- housekeeping -------------------------------------------------- */

static unsigned sweep_list(struct dlink *head, size_t off, uint64_t timeout_ms, uint64_t now,
			   const char *why)
{
	unsigned n = 0;
	while (head->next != head && n < TCP_SWEEP_BATCH) {
		struct tlink *t = (struct tlink *)(void *)head->next;
		if (t->since + timeout_ms > now)
			break;
		tcp_conn_t *c = (tcp_conn_t *)(void *)((char *)t - off);
		char host[64];
		uint16_t port;
		peer_str(c, host, sizeof host, &port);
		LOGD("tcp", "conn %" PRIu64 " with %s port %u: %s, closing", c->id, host,
		     (unsigned)port, why);
		conn_close(c); /* unlinks it from every list */
		n++;
	}
	return n;
}

/* Duties, each bounded per tick by TCP_SWEEP_BATCH:
 *  - close connections idle longer than tcp_idle_timeout_s;
 *  - close connections whose started message is older than
 *    tcp_header_timeout_s (a peer dribbling bytes to hold a slot);
 *  - close draining connections whose linger is over. */
static void on_sweep(uv_timer_t *t)
{
	(void)t;
	struct tp_core *core = T.core;
	uint64_t now = now_ms();
	sweep_list(&T.idle, offsetof(tcp_conn_t, idle), (uint64_t)core->limits.tcp_idle_timeout_s * 1000,
		   now, "idle timeout");
	sweep_list(&T.partial, offsetof(tcp_conn_t, timer),
		   (uint64_t)core->limits.tcp_header_timeout_s * 1000, now, "incomplete message timeout");
	sweep_list(&T.linger, offsetof(tcp_conn_t, timer), TCP_LINGER_MS, now, "linger over");
}

static void sweep_on_close(uv_handle_t *h)
{
	(void)h;
	T.core->open_handles--;
}

int tp__tcp_init(struct tp_core *core)
{
	memset(&T, 0, sizeof T);
	T.core = core;
	dl_init(&T.idle);
	dl_init(&T.partial);
	dl_init(&T.linger);
	int err = htable_init(&T.by_id, 64);
	if (!err)
		err = htable_init(&T.by_addr, 64);
	if (!err)
		err = htable_init(&T.by_ip, 64);
	if (err)
		goto out;
	err = uv_timer_init(core->loop, &T.sweep);
	if (err)
		goto out;
	core->open_handles++;
	err = uv_timer_start(&T.sweep, on_sweep, TCP_SWEEP_MS, TCP_SWEEP_MS);
	if (err) {
		uv_close((uv_handle_t *)&T.sweep, sweep_on_close);
		goto out;
	}
	/* Housekeeping alone must not keep the loop alive: sockets do. */
	uv_unref((uv_handle_t *)&T.sweep);
	T.ready = true;
	return 0;
out:
	htable_destroy(&T.by_id);
	htable_destroy(&T.by_addr);
	htable_destroy(&T.by_ip);
	return err;
}

void tp__tcp_shutdown(void)
{
	if (!T.ready)
		return;
	T.ready = false;
	/* Every live connection (connecting, open or draining) is on the
	 * idle list; conn_close takes it off. */
	while (T.idle.next != &T.idle) {
		struct tlink *t = (struct tlink *)(void *)T.idle.next;
		conn_close(container_of(t, tcp_conn_t, idle));
	}
	uv_close((uv_handle_t *)&T.sweep, sweep_on_close);
	htable_destroy(&T.by_id);
	htable_destroy(&T.by_addr);
	htable_destroy(&T.by_ip);
}
