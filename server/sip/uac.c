/* Originating requests as client transactions (see uac.h). */
#include "server/sip/uac.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/base/log.h"

/* The local address the kernel picks for a destination, per family: one
 * entry each, for the last destination asked about (a server talks to
 * few distinct next hops per family in practice; a miss costs one
 * socket/connect/getsockname, no packet is sent). */
static struct {
	struct sockaddr_storage dst, local;
	bool valid;
} route_cache[2];

static bool is_wildcard(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (sa->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* The source address for dst: connect() on a UDP socket only selects a
 * route, it sends nothing. */
static int local_addr_for(const struct sockaddr_storage *dst, struct sockaddr_storage *out)
{
	int fi = dst->ss_family == AF_INET6 ? 1 : 0;
	if (route_cache[fi].valid && same_host(&route_cache[fi].dst, dst)) {
		*out = route_cache[fi].local;
		return 0;
	}
	int fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_storage to = *dst;
	/* Any port will do for route selection; port 0 is refused. */
	if (to.ss_family == AF_INET && ((struct sockaddr_in *)&to)->sin_port == 0)
		((struct sockaddr_in *)&to)->sin_port = htons(5060);
	if (to.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&to)->sin6_port == 0)
		((struct sockaddr_in6 *)&to)->sin6_port = htons(5060);
	socklen_t tl = to.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int err = 0;
	if (connect(fd, (struct sockaddr *)&to, tl) != 0) {
		err = -errno;
	} else {
		socklen_t ol = sizeof *out;
		if (getsockname(fd, (struct sockaddr *)out, &ol) != 0)
			err = -errno;
	}
	close(fd);
	if (err)
		return err;
	route_cache[fi].dst = *dst;
	route_cache[fi].local = *out;
	route_cache[fi].valid = true;
	return 0;
}

static int find_listener(tp_proto_t proto, int family)
{
	int n = tp_listener_count();
	for (int i = 0; i < n; i++) {
		tp_proto_t p;
		struct sockaddr_storage sa;
		if (tp_listener_addr(i, &p, &sa) == 0 && p == proto && sa.ss_family == family)
			return i;
	}
	return -1;
}

int uac_via_sent_by(const tp_peer_t *dst, char *hostport, size_t len, const char **transport)
{
	tp_proto_t proto = dst->proto;
	struct sockaddr_storage la;
	int idx = dst->listener;
	tp_proto_t lp;
	if (idx < 0 || tp_listener_addr(idx, &lp, &la) != 0 || lp != proto ||
	    la.ss_family != dst->addr.ss_family)
		idx = find_listener(proto, dst->addr.ss_family);
	if (idx < 0 || tp_listener_addr(idx, &lp, &la) != 0)
		return -ENETUNREACH;
	/* A listener bound to one address always gives the same sent-by:
	 * remember the last one instead of formatting it per request. */
	static struct {
		struct sockaddr_storage la;
		tp_proto_t proto;
		char hostport[96];
		bool valid;
	} last;
	bool wildcard = is_wildcard(&la);
	if (!wildcard && last.valid && last.proto == proto && memcmp(&last.la, &la, sizeof la) == 0) {
		if (strlen(last.hostport) >= len)
			return -ENOSPC;
		strcpy(hostport, last.hostport);
		*transport = proto == TP_TCP ? "TCP" : "UDP";
		return 0;
	}
	char ip[64];
	uint16_t port = 0;
	if (tp_addr_to_str(&la, ip, sizeof ip, &port) != 0)
		return -ENETUNREACH;
	if (wildcard) {
		struct sockaddr_storage local;
		if (local_addr_for(&dst->addr, &local) != 0 ||
		    tp_addr_to_str(&local, ip, sizeof ip, NULL) != 0)
			return -ENETUNREACH;
	}
	int n = la.ss_family == AF_INET6 ? snprintf(hostport, len, "[%s]:%u", ip, port)
					 : snprintf(hostport, len, "%s:%u", ip, port);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	*transport = proto == TP_TCP ? "TCP" : "UDP";
	if (!wildcard && (size_t)n < sizeof last.hostport) {
		last.la = la;
		last.proto = proto;
		memcpy(last.hostport, hostport, (size_t)n + 1);
		last.valid = true;
	}
	return 0;
}

int uac_build(const uac_request_t *r, const tp_peer_t *dst, const char *branch, buf_t *out)
{
	char sent_by[96];
	const char *transport = "UDP";
	int err = uac_via_sent_by(dst, sent_by, sizeof sent_by, &transport);
	if (err)
		return err;
	/* Appends, not printf: every relayed MESSAGE and NOTIFY is built here. */
	buf_reserve(out, 768 + r->bodylen);
	buf_puts(out, r->method);
	buf_put_lit(out, " ");
	buf_puts(out, r->ruri);
	buf_put_lit(out, " SIP/2.0\r\nVia: SIP/2.0/");
	buf_puts(out, transport);
	buf_put_lit(out, " ");
	buf_puts(out, sent_by);
	buf_put_lit(out, ";branch=");
	buf_puts(out, branch);
	buf_put_lit(out, "\r\n");
	if (r->vias_below)
		buf_puts(out, r->vias_below);
	buf_put_lit(out, "Max-Forwards: ");
	buf_put_uint(out, r->max_forwards < 0 ? 70u : (unsigned)r->max_forwards);
	buf_put_lit(out, "\r\n");
	if (r->route && *r->route) {
		buf_put_lit(out, "Route: ");
		buf_puts(out, r->route);
		buf_put_lit(out, "\r\n");
	}
	buf_put_lit(out, "From: ");
	buf_puts(out, r->from);
	buf_put_lit(out, "\r\nTo: ");
	buf_puts(out, r->to);
	buf_put_lit(out, "\r\nCall-ID: ");
	buf_puts(out, r->call_id);
	buf_put_lit(out, "\r\nCSeq: ");
	buf_put_uint(out, r->cseq);
	buf_put_lit(out, " ");
	buf_puts(out, r->method);
	buf_put_lit(out, "\r\n");
	if (r->contact) {
		buf_put_lit(out, "Contact: ");
		buf_puts(out, r->contact);
		buf_put_lit(out, "\r\n");
	}
	if (r->extra)
		buf_puts(out, r->extra);
	if (r->ctype && r->body) {
		buf_put_lit(out, "Content-Type: ");
		buf_puts(out, r->ctype);
		buf_put_lit(out, "\r\nContent-Length: ");
		buf_put_uint(out, r->bodylen);
		buf_put_lit(out, "\r\n\r\n");
		buf_append(out, r->body, r->bodylen);
	} else {
		buf_put_lit(out, "Content-Length: 0\r\n\r\n");
	}
	return out->err;
}

int uac_send(const uac_request_t *r, const tp_peer_t *dst, txn_response_cb cb, void *arg)
{
	char branch[48];
	if (r->light_response)
		txn_new_light_branch(branch, sizeof branch);
	else
		txn_new_branch(branch, sizeof branch);
	/* One reused buffer: the transaction keeps its own exact copy. */
	static buf_t b;
	buf_reset(&b);
	int err = uac_build(r, dst, branch, &b);
	if (!err)
		err = txn_client_start_flags(dst, branch, r->method, b.data, b.len, cb, arg,
					     r->light_response ? TXN_LIGHT_RESPONSE : 0);
	if (b.err || b.cap > 256 * 1024)
		buf_free(&b); /* after a failure or a huge body: start afresh */
	return err;
}

int uac_uri_dest(const char *uri, tp_peer_t *out)
{
	memset(out, 0, sizeof *out);
	out->listener = -1;
	out->proto = TP_UDP;
	osip_uri_t *u = NULL;
	if (osip_uri_init(&u) != 0)
		return -ENOMEM;
	int err = -EINVAL;
	if (osip_uri_parse(u, uri) != 0 || !u->host || !u->scheme)
		goto out;
	bool sips = strcasecmp(u->scheme, "sips") == 0;
	if (!sips && strcasecmp(u->scheme, "sip") != 0)
		goto out;
	osip_uri_param_t *tp = NULL;
	osip_uri_uparam_get_byname(u, "transport", &tp);
	if (sips || (tp && tp->gvalue && strcasecmp(tp->gvalue, "tcp") == 0))
		out->proto = TP_TCP;
	else if (tp && tp->gvalue && strcasecmp(tp->gvalue, "udp") != 0)
		goto out; /* tls, ws, sctp: not ours */
	unsigned long port = 5060;
	if (u->port && *u->port) {
		char *end;
		port = strtoul(u->port, &end, 10);
		if (*end || port == 0 || port > 65535)
			goto out;
	}
	err = tp_addr_from_str(u->host, (uint16_t)port, &out->addr);
out:
	osip_uri_free(u);
	return err;
}

int uac_binding_dest(const tp_peer_t *source, const char *contact, tp_peer_t *out)
{
	bool have_source = source && (source->addr.ss_family == AF_INET ||
				      source->addr.ss_family == AF_INET6);
	if (have_source && source->proto == TP_TCP && source->conn_id &&
	    tp_conn_alive(source->conn_id)) {
		*out = *source;
		return 0;
	}
	if (have_source && source->proto == TP_UDP) {
		*out = *source;
		out->conn_id = 0;
		return 0;
	}
	tp_peer_t c;
	if (contact && uac_uri_dest(contact, &c) == 0) {
		if (have_source && source->proto == TP_TCP)
			c.proto = TP_TCP; /* it registered over TCP: stay on TCP */
		*out = c;
		return 0;
	}
	return -EHOSTUNREACH;
}
