/* Transport core: module state, the listener table, send dispatch,
 * statistics, orderly shutdown and address helpers.  The sockets
 * themselves live in udp.c and tcp.c (RFC 3261 §18: UDP and TCP
 * transports; §18.1.1 / §18.2.2 decide which socket a message leaves on).
 *
 * Ownership: every libuv handle the module opens is counted in
 * core.open_handles and uncounted in its close callback, so tp_init can
 * refuse to reuse state while an old handle may still touch it, and
 * tp_shutdown followed by uv_run leaves nothing open on the loop. */
#define SD_TP_INTERNAL
#include "server/transport/tp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/log.h"

static struct tp_core core;
static tp_listener_t *listeners[TP_MAX_LISTENERS];
static int nlisteners;

socklen_t tp__addr_len(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return 0;
	}
}

int tp__find_listener(tp_proto_t proto, int family)
{
	for (int i = 0; i < nlisteners; i++) {
		const tp_listener_t *l = listeners[i];
		if (l && l->proto == proto && l->state == TP_L_OPEN && l->addr.ss_family == family)
			return i;
	}
	return -1;
}

static void listener_free(tp_listener_t *l)
{
	free(l->impl);
	free(l);
}

static void listener_on_close(uv_handle_t *h)
{
	tp_listener_t *l = h->data;
	l->state = TP_L_CLOSED;
	l->core->open_handles--;
	if (l->detached)
		listener_free(l);
}

/* Stops a listener for good.  uv_udp_recv_stop first: libuv's recvmmsg
 * loop keeps handing out the rest of a batch until recv_cb is cleared,
 * and uv_close alone does not clear it. */
static void listener_close(tp_listener_t *l)
{
	if (l->state != TP_L_OPEN)
		return;
	if (l->proto == TP_UDP)
		uv_udp_recv_stop(&l->h.udp);
	l->receiving = false;
	l->state = TP_L_CLOSING;
	uv_close(&l->h.handle, listener_on_close);
}

/* Takes a listener out of the table's ownership: freed now if its handle
 * is already gone (or never existed), else by its close callback. */
static void listener_detach(tp_listener_t *l)
{
	l->detached = true;
	if (l->state == TP_L_OPEN)
		listener_close(l);
	else if (l->state == TP_L_NONE || l->state == TP_L_CLOSED)
		listener_free(l);
	/* TP_L_CLOSING: listener_on_close frees it. */
}

int tp_init(uv_loop_t *loop, const tp_limits_t *limits, tp_recv_cb recv_cb,
	    tp_error_cb error_cb, void *arg)
{
	if (!loop || !recv_cb)
		return -EINVAL;
	if (core.initialised)
		return -EALREADY;
	if (core.open_handles)
		return -EBUSY;

	memset(&core, 0, sizeof core);
	memset(listeners, 0, sizeof listeners);
	nlisteners = 0;
	core.loop = loop;
	if (limits)
		core.limits = *limits;
	if (!core.limits.max_msg_size)
		core.limits.max_msg_size = 65535;
	if (!core.limits.max_tcp_conns)
		core.limits.max_tcp_conns = 16384;
	if (!core.limits.max_tcp_conns_per_ip)
		core.limits.max_tcp_conns_per_ip = 256;
	if (!core.limits.tcp_idle_timeout_s)
		core.limits.tcp_idle_timeout_s = 600;
	if (!core.limits.tcp_header_timeout_s)
		core.limits.tcp_header_timeout_s = 32;
	core.recv_cb = recv_cb;
	core.error_cb = error_cb;
	core.arg = arg;

	int err = tp__tcp_init(&core);
	if (err)
		return err;
	core.initialised = true;
	return 0;
}

void tp_set_conn_closed_cb(tp_conn_closed_cb cb, void *arg)
{
	core.closed_cb = cb;
	core.closed_arg = arg;
}

int tp_listen(tp_proto_t proto, const char *host, uint16_t port)
{
	if (!core.initialised)
		return -EINVAL;
	if (proto != TP_UDP && proto != TP_TCP)
		return -EPROTONOSUPPORT;
	if (nlisteners >= TP_MAX_LISTENERS)
		return -ENOSPC;

	struct sockaddr_storage sa;
	int err = tp_addr_from_str(host, port, &sa);
	if (err)
		return err;

	tp_listener_t *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->core = &core;
	l->proto = proto;
	l->index = nlisteners;
	if (proto == TP_UDP)
		err = tp__udp_open(l, (const struct sockaddr *)&sa);
	else
		err = tp__tcp_open(l, (const struct sockaddr *)&sa);
	if (err) {
		char host_s[INET6_ADDRSTRLEN];
		uint16_t p = 0;
		if (tp_addr_to_str(&sa, host_s, sizeof host_s, &p))
			strcpy(host_s, "?");
		LOGE("tp", "cannot listen on %s %s port %u: %s", proto == TP_UDP ? "udp" : "tcp",
		     host_s, (unsigned)p, uv_strerror(err));
		listener_detach(l);
		return err;
	}
	listeners[nlisteners++] = l;

	char host_s[INET6_ADDRSTRLEN];
	uint16_t bound = 0;
	if (tp_addr_to_str(&l->addr, host_s, sizeof host_s, &bound) == 0)
		LOGI("tp", "listening on %s %s port %u", proto == TP_UDP ? "udp" : "tcp", host_s,
		     (unsigned)bound);
	return l->index;
}

int tp_listener_addr(int listener, tp_proto_t *proto, struct sockaddr_storage *out)
{
	if (listener < 0 || listener >= nlisteners || !listeners[listener])
		return -EINVAL;
	const tp_listener_t *l = listeners[listener];
	if (proto)
		*proto = l->proto;
	if (out)
		*out = l->addr;
	return 0;
}

int tp_listener_count(void) { return nlisteners; }

int tp_send_ex(const tp_peer_t *to, const char *data, size_t len, uint64_t *conn_id)
{
	if (conn_id)
		*conn_id = 0;
	if (!core.initialised)
		return core.shutting_down ? -ESHUTDOWN : -EINVAL;
	if (!to || (!data && len))
		return -EINVAL;

	switch (to->proto) {
	case TP_UDP: {
		int family = to->addr.ss_family;
		if (family != AF_INET && family != AF_INET6)
			return -EAFNOSUPPORT;
		if (len == 0)
			return -EINVAL;
		int idx = to->listener;
		if (idx < 0) {
			/* RFC 3261 §18.1.1 leaves the choice of socket to us;
			 * the first UDP listener of the destination's family
			 * is the one a configuration names first. */
			idx = tp__find_listener(TP_UDP, family);
			if (idx < 0)
				return -EADDRNOTAVAIL;
		} else if (idx >= nlisteners || !listeners[idx] || listeners[idx]->proto != TP_UDP) {
			return -EINVAL;
		}
		tp_listener_t *l = listeners[idx];
		if (l->state != TP_L_OPEN)
			return -ESHUTDOWN;
		if (l->addr.ss_family != family)
			return -EAFNOSUPPORT;
		return tp__udp_send(l, (const struct sockaddr *)&to->addr, data, len);
	}
	case TP_TCP:
		return tp__tcp_send(to, data, len, conn_id);
	default:
		return -EPROTONOSUPPORT;
	}
}

int tp_send(const tp_peer_t *to, const char *data, size_t len)
{
	return tp_send_ex(to, data, len, NULL);
}

bool tp_conn_alive(uint64_t conn_id)
{
	return core.initialised && conn_id && tp__tcp_alive(conn_id);
}

void tp_get_stats(tp_stats_t *out)
{
	if (out)
		*out = core.stats;
}

/* Graceful shutdown, step 1: no new connections and no new datagrams.
 * UDP sockets stay open (only reading stops) so responses to transactions
 * still in flight can leave from the address the request came to
 * (RFC 3261 §18.2.2); TCP listening sockets are closed outright. */
void tp_stop_listening(void)
{
	for (int i = 0; i < nlisteners; i++) {
		tp_listener_t *l = listeners[i];
		if (!l || l->state != TP_L_OPEN)
			continue;
		if (l->proto == TP_UDP) {
			if (l->receiving)
				uv_udp_recv_stop(&l->h.udp);
			l->receiving = false;
		} else {
			listener_close(l);
		}
	}
}

void tp_shutdown(void)
{
	if (!core.initialised)
		return;
	core.initialised = false;
	core.shutting_down = true;
	tp__tcp_shutdown();
	for (int i = 0; i < nlisteners; i++) {
		if (listeners[i])
			listener_detach(listeners[i]);
		listeners[i] = NULL;
	}
	nlisteners = 0;
}

int tp_addr_to_str(const struct sockaddr_storage *sa, char *out, size_t outlen, uint16_t *port)
{
	if (!sa || !out || !outlen)
		return -EINVAL;
	const void *src;
	uint16_t p;
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		src = &in->sin_addr;
		p = ntohs(in->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		src = &in6->sin6_addr;
		p = ntohs(in6->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	if (outlen > (size_t)INT32_MAX)
		outlen = INT32_MAX;
	if (!inet_ntop(sa->ss_family, src, out, (socklen_t)outlen))
		return -ENOSPC;
	if (port)
		*port = p;
	return 0;
}

int tp_addr_from_str(const char *host, uint16_t port, struct sockaddr_storage *out)
{
	if (!host || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);

	/* Accept the bracketed form of RFC 3261 §25.1 (IPv6reference) too,
	 * since that is how an IPv6 address appears in a SIP URI or Via. */
	char tmp[INET6_ADDRSTRLEN + 16];
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		if (n - 2 >= sizeof tmp)
			return -EINVAL;
		memcpy(tmp, host + 1, n - 2);
		tmp[n - 2] = '\0';
		host = tmp;
	}
	if (strchr(host, ':')) {
		if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) != 0)
			return -EINVAL;
	} else {
		struct in_addr a;
		/* inet_pton takes only the dotted-quad form, unlike
		 * inet_aton's "127.1" or octal shorthands. */
		if (inet_pton(AF_INET, host, &a) != 1)
			return -EINVAL;
		struct sockaddr_in *in = (struct sockaddr_in *)out;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		in->sin_addr = a;
	}
	return 0;
}
