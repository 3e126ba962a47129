/* UDP transport (RFC 3261 §18): one uv_udp_t per listening address, a
 * datagram is one message.
 *
 * Receive: libuv reads into a per-listener area; with recvmmsg (libuv's
 * UV_UDP_RECVMMSG) one system call fills up to UDP_CHUNKS datagrams of
 * 64 KiB each, which matters at tens of thousands of messages per second.
 * Each datagram is copied into a NUL-terminated scratch buffer, so the
 * upper layer may parse it in place and the receive area is never lent
 * out.  Oversized or truncated datagrams are dropped and counted;
 * datagrams of nothing but CR/LF are keep-alives and ignored.
 *
 * Send: uv_udp_try_send first (no allocation, no queue); only when the
 * socket buffer is full (or earlier sends are still queued, which libuv
 * reports as EAGAIN to keep order) is the datagram copied and queued with
 * uv_udp_send. */
#define SD_TP_INTERNAL
#include "server/transport/tp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/htable.h"
#include "server/base/log.h"

enum {
	/* libuv's recvmmsg slices the buffer into chunks of this size. */
	UDP_CHUNK = 64 * 1024,
	UDP_CHUNKS = 8,
	/* Socket buffers big enough to ride out a burst while the loop is
	 * busy elsewhere; the kernel may cap them (net.core.rmem_max). */
	UDP_SOCKBUF = 4 * 1024 * 1024,
	/* Bytes that may wait in the user-space send queue per socket. */
	UDP_MAX_SEND_QUEUE = 8 * 1024 * 1024,
};

struct udp_impl {
	char *scratch;    /* max datagram + 1 for the NUL */
	size_t scratch_len;
	size_t area_len;
	char area[];      /* receive area handed to libuv */
};

struct udp_send_req {
	uv_udp_send_t req;
	size_t len;
	char data[];
};

static uint64_t last_drop_log;
static unsigned drops_unlogged;

static void udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	tp_listener_t *l = h->data;
	struct udp_impl *u = l->impl;
	(void)suggested;
	*b = uv_buf_init(u->area, (unsigned)u->area_len);
}

/* One warning per second at most: a flood of oversized datagrams must not
 * turn into a flood of log lines. */
static void log_drop(tp_listener_t *l, const struct sockaddr *from, size_t n, bool truncated)
{
	uint64_t now = uv_now(l->core->loop);
	if (last_drop_log && now - last_drop_log < 1000) {
		drops_unlogged++;
		return;
	}
	last_drop_log = now;
	char host[64];
	uint16_t port = 0;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, from, tp__addr_len(from));
	if (tp_addr_to_str(&ss, host, sizeof host, &port))
		strcpy(host, "?");
	LOGW("udp", "dropped %s datagram of %zu bytes from %s port %u (limit %zu; %u more since the last report)",
	     truncated ? "truncated" : "oversized", n, host, (unsigned)port,
	     l->core->limits.max_msg_size, drops_unlogged);
	drops_unlogged = 0;
}

static bool only_crlf(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			return false;
	}
	return true;
}

static void udp_on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *b, const struct sockaddr *addr,
			unsigned flags)
{
	tp_listener_t *l = h->data;
	struct tp_core *core = l->core;

	/* The area belongs to the listener, so the final "free the batch"
	 * call of recvmmsg has nothing to do. */
	if (flags & UV_UDP_MMSG_FREE)
		return;
	if (nread < 0) {
		/* ICMP errors surface here on some systems; a UDP server
		 * keeps serving everyone else. */
		LOGD("udp", "listener %d: receive error: %s", l->index, uv_strerror((int)nread));
		return;
	}
	if (!addr || nread == 0)
		return; /* nothing more to read now, or an empty datagram */
	if (!l->receiving || core->shutting_down)
		return;

	struct udp_impl *u = l->impl;
	size_t n = (size_t)nread;
	if ((flags & UV_UDP_PARTIAL) || n > core->limits.max_msg_size || n >= u->scratch_len) {
		core->stats.dropped++;
		log_drop(l, addr, n, (flags & UV_UDP_PARTIAL) != 0);
		return;
	}
	/* Keep-alives: RFC 5626 §4.4.2 specifies STUN for UDP flows, but
	 * many clients send the CRLF form of §4.4.1 over UDP too.  Neither
	 * is a SIP message; no answer is expected for a CRLF datagram. */
	if (only_crlf(b->base, n))
		return;
	/* A first byte of 0..3 is STUN (RFC 7983 §7), e.g. RFC 5626 §4.4.2
	 * keep-alives; no SIP message starts like that.  Not answered yet. */
	if ((unsigned char)b->base[0] < 4)
		return;

	memcpy(u->scratch, b->base, n);
	u->scratch[n] = '\0';

	tp_peer_t peer;
	memset(&peer, 0, sizeof peer);
	peer.proto = TP_UDP;
	memcpy(&peer.addr, addr, tp__addr_len(addr));
	peer.conn_id = 0;
	peer.listener = l->index;
	core->stats.udp_rx++;
	core->recv_cb(core->arg, &peer, u->scratch, n);
}

static void set_sockbufs(tp_listener_t *l)
{
	int v = UDP_SOCKBUF;
	int err = uv_recv_buffer_size(&l->h.handle, &v);
	if (err)
		LOGW("udp", "listener %d: SO_RCVBUF: %s", l->index, uv_strerror(err));
	v = UDP_SOCKBUF;
	err = uv_send_buffer_size(&l->h.handle, &v);
	if (err)
		LOGW("udp", "listener %d: SO_SNDBUF: %s", l->index, uv_strerror(err));
	int rcv = 0, snd = 0;
	uv_recv_buffer_size(&l->h.handle, &rcv);
	uv_send_buffer_size(&l->h.handle, &snd);
	LOGD("udp", "listener %d: socket buffers rcv=%d snd=%d", l->index, rcv, snd);
}

int tp__udp_open(tp_listener_t *l, const struct sockaddr *sa)
{
	struct tp_core *core = l->core;
	int err = uv_udp_init_ex(core->loop, &l->h.udp, (unsigned)sa->sa_family | UV_UDP_RECVMMSG);
	if (err)
		return err;
	l->h.udp.data = l;
	l->state = TP_L_OPEN;
	core->open_handles++;

	/* IPV6ONLY so "::" and "0.0.0.0" can both be bound on one port,
	 * each reporting its own family's addresses (no v4-mapped peers). */
	err = uv_udp_bind(&l->h.udp, sa, sa->sa_family == AF_INET6 ? UV_UDP_IPV6ONLY : 0);
	if (err)
		return err;
	set_sockbufs(l);

	int len = sizeof l->addr;
	err = uv_udp_getsockname(&l->h.udp, (struct sockaddr *)&l->addr, &len);
	if (err)
		return err;

	/* Without recvmmsg libuv reads one datagram per call, so one chunk
	 * is all it can use. */
	size_t chunks = uv_udp_using_recvmmsg(&l->h.udp) ? UDP_CHUNKS : 1;
	size_t area_len = chunks * UDP_CHUNK;
	size_t max = core->limits.max_msg_size < UDP_CHUNK ? core->limits.max_msg_size : UDP_CHUNK;
	struct udp_impl *u = malloc(sizeof *u + area_len + max + 1);
	if (!u)
		return -ENOMEM;
	u->area_len = area_len;
	u->scratch = u->area + area_len;
	u->scratch_len = max + 1;
	l->impl = u;

	err = uv_udp_recv_start(&l->h.udp, udp_alloc, udp_on_recv);
	if (err)
		return err;
	l->receiving = true;
	return 0;
}

static void udp_on_sent(uv_udp_send_t *req, int status)
{
	struct udp_send_req *s = container_of(req, struct udp_send_req, req);
	if (status < 0 && status != UV_ECANCELED)
		LOGD("udp", "send of %zu bytes failed: %s", s->len, uv_strerror(status));
	free(s);
}

int tp__udp_send(tp_listener_t *l, const struct sockaddr *to, const char *data, size_t len)
{
	struct tp_core *core = l->core;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	int r = uv_udp_try_send(&l->h.udp, &b, 1, to);
	if (r >= 0) {
		core->stats.udp_tx++;
		return 0;
	}
	if (r != UV_EAGAIN) {
		LOGD("udp", "sendto failed: %s", uv_strerror(r));
		return r;
	}
	if (uv_udp_get_send_queue_size(&l->h.udp) + len > UDP_MAX_SEND_QUEUE) {
		/* The peer network cannot keep up; UDP is lossy anyway and
		 * transactions retransmit (RFC 3261 §17.1.1.2). */
		core->stats.dropped++;
		return -ENOBUFS;
	}
	struct udp_send_req *s = malloc(sizeof *s + len);
	if (!s)
		return -ENOMEM;
	s->len = len;
	memcpy(s->data, data, len);
	b = uv_buf_init(s->data, (unsigned)len);
	r = uv_udp_send(&s->req, &l->h.udp, &b, 1, to, udp_on_sent);
	if (r) {
		free(s);
		return r;
	}
	core->stats.udp_tx++;
	return 0;
}
