/* The stateful proxy (see proxy.h): RFC 3261 §16.3 (validation, loops),
 * §16.4 (Route preprocessing), §16.5-16.6 (targets, forwarding), §16.7
 * (responses, best final), §16.10 (CANCEL), §16.12 (loose routing),
 * §8.3 (redirect), RFC 3325 (P-Asserted-Identity), RFC 6026 (2xx
 * retransmissions relayed statelessly).
 *
 * A call context (call_t) lives while its client transactions run: it
 * holds a reference on the upstream server transaction, the received
 * request as text (the template every branch is rewritten from, fwd.h)
 * and one branch_t per target.  Each started branch holds a reference on
 * the context; the context frees itself when the last one ends.  INVITE
 * contexts are indexed by their server transaction so a CANCEL finds
 * them. */
#include "server/proxy/proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/auth/authn.h"
#include "server/base/buf.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/proxy/alias.h"
#include "server/proxy/directory.h"
#include "server/proxy/dlgtrack.h"
#include "server/proxy/fwd.h"
#include "server/registrar/location.h"
#include "server/sip/uac.h"

#define MOD "proxy"
#define AOR_MAX 512
#define MAX_BRANCHES 32

enum bstate { B_IDLE, B_CALLING, B_PROCEEDING, B_DONE };

typedef struct call call_t;

typedef struct branch {
	call_t *call;
	enum bstate state;
	int code;            /* final status (0 until then) */
	char *resp;          /* final non-2xx response text (our Via still on top) */
	size_t resp_len;
	char *req;           /* the request as sent (for its CANCEL) */
	size_t req_len;
	char *uri;           /* the new Request-URI, or NULL (loose routing: keep) */
	char *path;          /* Route values from the binding's Path, or NULL */
	tp_peer_t dst;
	float q;
	bool cancel_wanted;  /* CANCEL as soon as a provisional arrives (§9.1) */
	bool cancel_sent;
	bool given_up;       /* counted as 487 locally: its late final is ignored */
	char id[72];         /* branch parameter */
} branch_t;

struct call {
	hnode_t node;
	txn_t *st;
	bool invite, indexed;
	bool final_sent;     /* the server transaction has its final (or a 2xx) */
	bool got_2xx;
	bool cancelled;      /* caller's CANCEL, or a 6xx (§16.7 step 10) */
	unsigned refs;
	char *tmpl;          /* the received request, serialized */
	size_t tmpl_len;
	unsigned pop_routes;
	bool strict;
	bool add_rr;
	bool drop_auth, drop_identity;
	bool tracked;        /* an initial INVITE with dialog records (dlgtrack.h) */
	char *extra;         /* identity header lines, or NULL */
	uint32_t loop_hash;
	char method[32];     /* of the forwarded request */
	unsigned n, next;    /* branches; first not started */
	branch_t b[];
};

#define MAX_SELF 64

static struct {
	proxy_options_t o;
	/* Our own addresses: the listeners', and every interface address
	 * when one listens on a wildcard (our Via and Record-Route then
	 * carry the address the kernel picks, which must be recognised in
	 * Route headers, also after a restart). */
	char self[MAX_SELF][64];
	int nself;
	htable_t calls;      /* INVITE contexts by server transaction */
	bool up;
	proxy_stats_t stats;
} P;

/* --- small helpers ------------------------------------------------------ */

static uint16_t uri_port(const char *port)
{
	if (!port || !*port)
		return 5060;
	unsigned long p = strtoul(port, NULL, 10);
	return p > 0 && p < 65536 ? (uint16_t)p : 0;
}

static bool port_is_ours(uint16_t port)
{
	int n = tp_listener_count();
	for (int i = 0; i < n; i++) {
		tp_proto_t proto;
		struct sockaddr_storage sa;
		uint16_t lp = 0;
		char ip[64];
		if (tp_listener_addr(i, &proto, &sa) == 0 &&
		    tp_addr_to_str(&sa, ip, sizeof ip, &lp) == 0 && lp == port)
			return true;
	}
	return false;
}

static void self_load(void);

static bool host_is_self(const char *host)
{
	if (!P.nself)
		self_load(); /* first use: the listeners are open by now */
	char h[64];
	size_t n = strlen(host);
	if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof h) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		host = h;
	}
	for (int i = 0; i < P.nself; i++) {
		if (strcasecmp(P.self[i], host) == 0)
			return true;
	}
	return P.o.is_local_address(host);
}

static void self_add(const struct sockaddr_storage *sa)
{
	char ip[64];
	if (P.nself < MAX_SELF && tp_addr_to_str(sa, ip, sizeof ip, NULL) == 0)
		snprintf(P.self[P.nself++], sizeof P.self[0], "%s", ip);
}

/* Listener addresses; all interface addresses if one is a wildcard. */
static void self_load(void)
{
	bool wildcard = false;
	int n = tp_listener_count();
	for (int i = 0; i < n; i++) {
		tp_proto_t proto;
		struct sockaddr_storage sa;
		if (tp_listener_addr(i, &proto, &sa) != 0)
			continue;
		self_add(&sa);
		if ((sa.ss_family == AF_INET &&
		     ((struct sockaddr_in *)&sa)->sin_addr.s_addr == htonl(INADDR_ANY)) ||
		    (sa.ss_family == AF_INET6 &&
		     IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&sa)->sin6_addr)))
			wildcard = true;
	}
	if (!wildcard)
		return;
	uv_interface_address_t *ifs = NULL;
	int count = 0;
	if (uv_interface_addresses(&ifs, &count) != 0)
		return;
	for (int i = 0; i < count; i++) {
		struct sockaddr_storage sa;
		memset(&sa, 0, sizeof sa);
		if (ifs[i].address.address4.sin_family == AF_INET)
			memcpy(&sa, &ifs[i].address.address4, sizeof ifs[i].address.address4);
		else
			memcpy(&sa, &ifs[i].address.address6, sizeof ifs[i].address.address6);
		self_add(&sa);
	}
	uv_free_interface_addresses(ifs, count);
}

/* A URI that names this proxy: one of our addresses and ports, or one of
 * our domains without a user part (a Route/Record-Route value). */
static bool uri_is_us(const osip_uri_t *u)
{
	if (!u || !u->host)
		return false;
	if (host_is_self(u->host))
		return port_is_ours(uri_port(u->port));
	return P.o.is_local_domain(u->host) && (!u->username || !*u->username);
}

bool proxy_routes_to_us(const sipmsg_t *req)
{
	osip_route_t *r = osip_list_get(&req->m->routes, 0);
	return r && uri_is_us(r->url);
}

/* The AOR of a URI naming a local user (after alias resolution), or
 * false. */
static bool local_user_aor(const sipmsg_t *req, const osip_uri_t *u, char *aor, size_t len)
{
	if (!u || !u->host || !u->username || !*u->username)
		return false;
	const char *domain = NULL;
	if (P.o.is_local_domain(u->host)) {
		domain = u->host;
	} else if (uri_is_us(u)) {
		const char *th = req->m->to->url->host;
		domain = th && P.o.is_local_domain(th) ? th : P.o.default_domain;
	}
	if (!domain)
		return false;
	int n = snprintf(aor, len, "sip:%s@%s", u->username, domain);
	if (n < 0 || (size_t)n >= len)
		return false;
	for (char *p = strchr(aor, '@'); p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	char real[AOR_MAX];
	if (alias_resolve(aor, real, sizeof real) == 0)
		snprintf(aor, len, "%s", real);
	return true;
}

/* §16.6 step 8 / §16.3 step 4: a hash of what decides routing, carried
 * in our branch after a dot; a request that comes back with one of our
 * Vias carrying the same hash has looped. */
static uint32_t loop_hash(const sipmsg_t *req)
{
	uint64_t h = 1469598103934665603ULL;
	char *ruri = NULL;
	if (osip_uri_to_str(req->m->req_uri, &ruri) == 0 && ruri) {
		h = hash_mix(h, hash_str(ruri));
		osip_free(ruri);
	}
	const char *ft = sipmsg_from_tag(req), *tt = sipmsg_to_tag(req);
	h = hash_mix(h, hash_str(ft ? ft : ""));
	h = hash_mix(h, hash_str(tt ? tt : ""));
	h = hash_mix(h, hash_str(sipmsg_call_id(req)));
	h = hash_mix(h, req->cseq);
	h = hash_mix(h, (uint64_t)osip_list_size(&req->m->routes));
	for (int i = 0;; i++) {
		const char *pr = sipmsg_header_nth(req, "proxy-require", NULL, i);
		if (!pr)
			break;
		h = hash_mix(h, hash_str(pr));
	}
	return (uint32_t)(h ^ (h >> 32));
}

static bool looped(const sipmsg_t *req, uint32_t hash)
{
	char want[16];
	snprintf(want, sizeof want, ".%08x", hash);
	osip_list_iterator_t it;
	for (osip_via_t *v = osip_list_get_first(&req->m->vias, &it); v; v = osip_list_get_next(&it)) {
		if (!v->host || !host_is_self(v->host) || !port_is_ours(uri_port(v->port)))
			continue;
		osip_generic_param_t *br = NULL;
		osip_via_param_get_byname(v, "branch", &br);
		if (!br || !br->gvalue)
			continue;
		size_t n = strlen(br->gvalue);
		if (n > 9 && strcmp(br->gvalue + n - 9, want) == 0)
			return true;
	}
	return false;
}

static char *msg_text(const sipmsg_t *msg, size_t *len)
{
	char *s = NULL;
	size_t n = 0;
	if (osip_message_to_str(msg->m, &s, &n) != 0 || !s)
		return NULL;
	char *copy = malloc(n + 1);
	if (copy) {
		memcpy(copy, s, n);
		copy[n] = '\0';
		*len = n;
	}
	osip_free(s);
	return copy;
}

/* "sip:1.2.3.4:5060;transport=tcp;lr" for the side of a peer. */
static int rr_uri(const tp_peer_t *peer, char *out, size_t len)
{
	char hp[96];
	const char *tr = "UDP";
	int err = uac_via_sent_by(peer, hp, sizeof hp, &tr);
	if (err)
		return err;
	int n = snprintf(out, len, "<sip:%s%s;lr>", hp, peer->proto == TP_TCP ? ";transport=tcp" : "");
	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}

/* Where a request to uri goes: the REGISTER source of a binding with that
 * exact contact (a UA behind NAT is reached at its public mapping, also
 * for in-dialog requests to its Contact), else the URI's numeric host. */
static int dest_for_uri(const sipmsg_t *req, const char *uri, tp_peer_t *dst)
{
	char aor[AOR_MAX];
	const osip_uri_t *cand[2] = {req->m->to->url, req->m->from->url};
	for (int i = 0; i < 2; i++) {
		if (sip_uri_aor(cand[i], aor, sizeof aor) != 0)
			continue;
		const loc_aor_t *a = loc_find(aor);
		for (const loc_binding_t *b = a ? a->bindings : NULL; b; b = b->next) {
			if (strcmp(b->contact, uri) == 0)
				return uac_binding_dest(&b->source, b->contact, dst);
		}
	}
	return uac_uri_dest(uri, dst);
}

/* --- call contexts ------------------------------------------------------ */

static bool call_eq(const hnode_t *n, const void *key)
{
	return container_of(n, call_t, node)->st == key;
}

static uint64_t ptr_hash(const void *p) { return hash_bytes(&p, sizeof p); }

static call_t *call_find(txn_t *st)
{
	if (!P.up)
		return NULL;
	hnode_t *n = htable_find(&P.calls, ptr_hash(st), call_eq, st);
	return n ? container_of(n, call_t, node) : NULL;
}

static void call_unindex(call_t *c)
{
	if (c->indexed) {
		htable_remove(&P.calls, &c->node);
		c->indexed = false;
	}
}

static void call_unref(call_t *c)
{
	if (--c->refs > 0)
		return;
	call_unindex(c);
	for (unsigned i = 0; i < c->n; i++) {
		free(c->b[i].resp);
		free(c->b[i].req);
		free(c->b[i].uri);
		free(c->b[i].path);
	}
	free(c->tmpl);
	free(c->extra);
	txn_unref(c->st);
	P.stats.calls_live--;
	free(c);
}

static call_t *call_new(txn_t *st, const sipmsg_t *req, unsigned nbranches)
{
	call_t *c = calloc(1, sizeof *c + nbranches * sizeof(branch_t));
	if (!c)
		return NULL;
	c->tmpl = msg_text(req, &c->tmpl_len);
	if (!c->tmpl) {
		free(c);
		return NULL;
	}
	c->st = st;
	txn_ref(st);
	c->refs = 1;
	c->n = nbranches;
	c->invite = strcmp(req->method, "INVITE") == 0;
	snprintf(c->method, sizeof c->method, "%s", req->method);
	c->loop_hash = loop_hash(req);
	for (unsigned i = 0; i < nbranches; i++)
		c->b[i].call = c;
	if (c->invite) {
		htable_insert(&P.calls, &c->node, ptr_hash(st));
		c->indexed = true;
	}
	P.stats.calls_live++;
	return c;
}

/* Relays a downstream response (our Via removed) on the server
 * transaction.  new_code != 0 rewrites the status (503 -> 500). */
static int relay(call_t *c, const char *text, size_t len, int code, int new_code)
{
	buf_t b;
	buf_init(&b, 0);
	int err = fwd_response(text, len, new_code, new_code ? sip_reason_phrase(new_code) : NULL, &b);
	if (!err)
		err = txn_reply_raw(c->st, new_code ? new_code : code, b.data, b.len);
	buf_free(&b);
	return err;
}

static void cancel_done(void *arg, const sipmsg_t *resp, int code, bool final)
{
	(void)arg;
	(void)resp;
	(void)code;
	(void)final;
}

static void send_cancel(branch_t *b)
{
	if (b->cancel_sent || !b->req)
		return;
	b->cancel_sent = true;
	buf_t out;
	buf_init(&out, 0);
	int err = fwd_cancel(b->req, b->req_len, &out);
	if (!err)
		err = txn_client_start(&b->dst, b->id, "CANCEL", out.data, out.len, cancel_done, NULL);
	if (err)
		LOGD(MOD, "CANCEL of branch %s not sent: %d", b->id, err);
	buf_free(&out);
}

/* CANCELs every pending branch but `keep` (§16.7 step 10, §16.10).  A
 * branch that has not answered yet cannot be cancelled (§9.1): its
 * CANCEL goes out with its first provisional.  With give_up, such a branch
 * also counts as finished (487) so the caller's answer does not wait for
 * it. */
static void cancel_branches(call_t *c, const branch_t *keep, bool give_up)
{
	for (unsigned i = 0; i < c->n; i++) {
		branch_t *b = &c->b[i];
		if (b == keep || !c->invite)
			continue;
		if (b->state == B_IDLE) {
			b->state = B_DONE;
			b->code = 487;
			b->given_up = true;
		} else if (b->state == B_PROCEEDING) {
			send_cancel(b);
		} else if (b->state == B_CALLING) {
			b->cancel_wanted = true;
			if (give_up) {
				b->state = B_DONE;
				b->code = 487;
				b->given_up = true;
			}
		}
	}
}

static void start_group(call_t *c);

/* After a branch finished: start the next q group, or answer upstream
 * with the best final response (§16.7 step 6). */
static void check_complete(call_t *c)
{
	if (c->final_sent)
		return;
	for (unsigned i = 0; i < c->next; i++) {
		if (c->b[i].state != B_DONE)
			return;
	}
	if (!c->cancelled && c->next < c->n) {
		start_group(c);
		return;
	}
	c->final_sent = true;
	call_unindex(c);
	if (txn_answered(c->st))
		return;
	if (c->tracked) {
		/* Before the answer: sending the final frees the request.  Only
		 * the initial INVITE's: a failed re-INVITE ends no dialog. */
		int codes[MAX_BRANCHES];
		for (unsigned i = 0; i < c->n; i++)
			codes[i] = c->b[i].code;
		int best = fwd_best(codes, c->n);
		int code = best < 0 ? 408 : c->cancelled && codes[best] < 600 ? 487 : fwd_upstream_code(codes[best]);
		dlg_track_final(txn_request(c->st), code, c->cancelled && code == 487);
	}
	if (c->cancelled && c->invite) {
		/* Every branch ended after our CANCELs; if a 6xx made us cancel,
		 * that 6xx is the answer. */
		int codes[MAX_BRANCHES];
		for (unsigned i = 0; i < c->n; i++)
			codes[i] = c->b[i].code;
		int best = fwd_best(codes, c->n);
		if (best >= 0 && codes[best] >= 600 && c->b[best].resp) {
			relay(c, c->b[best].resp, c->b[best].resp_len, codes[best], 0);
			return;
		}
		txn_reply(c->st, 487, NULL, NULL, NULL, NULL, 0);
		return;
	}
	int codes[MAX_BRANCHES];
	for (unsigned i = 0; i < c->n; i++)
		codes[i] = c->b[i].code;
	int best = fwd_best(codes, c->n);
	if (best < 0) {
		txn_reply(c->st, 408, "Request Timeout - No Response", NULL, NULL, NULL, 0);
		return;
	}
	branch_t *b = &c->b[best];
	int up = fwd_upstream_code(b->code);
	if (b->resp && relay(c, b->resp, b->resp_len, b->code, up != b->code ? up : 0) == 0)
		return;
	/* No text (timeout, transport error) or unusable: our own answer. */
	txn_reply(c->st, up, NULL, NULL, NULL, NULL, 0);
}

static void on_branch(void *arg, const sipmsg_t *resp, int code, bool final)
{
	branch_t *b = arg;
	call_t *c = b->call;
	if (!final) {
		if (code <= 100)
			return; /* 100 is hop by hop (§16.7 step 5) */
		if (b->state == B_CALLING)
			b->state = B_PROCEEDING;
		if (b->cancel_wanted) {
			send_cancel(b);
			return;
		}
		if (!c->final_sent && resp) {
			size_t len = 0;
			char *text = msg_text(resp, &len);
			if (text && relay(c, text, len, code, 0) == 0 && c->tracked)
				dlg_track_response(resp, code);
			free(text);
		}
		return;
	}
	bool given_up = b->given_up;
	/* The client transaction gave up (Timer B, transport) on a branch
	 * that was ringing: CANCEL it, or the phone rings on (§16.8 asks
	 * for the same when Timer C fires). */
	if (!resp && b->state == B_PROCEEDING && c->invite)
		send_cancel(b);
	b->state = B_DONE;
	if (code >= 200 && code < 300) {
		b->code = code;
		/* Every 2xx goes upstream, even after another (§16.7 step 5);
		 * only after a non-2xx final is there no way to pass it on. */
		size_t len = 0;
		char *text = resp ? msg_text(resp, &len) : NULL;
		int err = text ? relay(c, text, len, code, 0) : -EINVAL;
		free(text);
		if (err)
			LOGW(MOD, "%d from branch %s could not be relayed (%d): the callee's dialog is orphaned",
			     code, b->id, err);
		else if (c->tracked)
			dlg_track_response(resp, code);
		if (!c->got_2xx)
			P.stats.forwarded++;
		c->got_2xx = true;
		c->final_sent = true;
		call_unindex(c);
		cancel_branches(c, b, false);
	} else if (!given_up) {
		b->code = code;
		if (resp) {
			free(b->resp);
			b->resp = msg_text(resp, &b->resp_len);
		}
		if (code >= 600 && c->invite && !c->cancelled) {
			c->cancelled = true;
			cancel_branches(c, b, true);
		}
	}
	free(b->req);
	b->req = NULL;
	check_complete(c);
	call_unref(c);
}

/* Sends one branch; on failure the branch is finished with 503 (not
 * reported through on_branch). */
static void branch_start(call_t *c, branch_t *b)
{
	b->state = B_CALLING;
	char via[256], hp[96];
	const char *tr = "UDP";
	char rr[512] = "";
	buf_t out;
	buf_init(&out, 0);
	int err = uac_via_sent_by(&b->dst, hp, sizeof hp, &tr);
	if (err)
		goto out;
	char rnd[48];
	txn_new_branch(rnd, sizeof rnd);
	snprintf(b->id, sizeof b->id, "%s.%08x", rnd, c->loop_hash);
	snprintf(via, sizeof via, "SIP/2.0/%s %s;branch=%s", tr, hp, b->id);
	if (c->add_rr) {
		/* Record-Route (§16.6 step 4): the address the callee reaches
		 * us at; when the caller's side differs (transport, family),
		 * a second entry for it (RFC 5658 double Record-Route). */
		sipmsg_t *req = txn_request(c->st);
		char out_side[160], in_side[160];
		if (rr_uri(&b->dst, out_side, sizeof out_side) == 0) {
			if (req && rr_uri(&req->src, in_side, sizeof in_side) == 0 &&
			    strcmp(in_side, out_side) != 0)
				snprintf(rr, sizeof rr, "%s, %s", out_side, in_side);
			else
				snprintf(rr, sizeof rr, "%s", out_side);
		}
	}
	fwd_req_t f = {
		.ruri = b->uri,
		.via = via,
		.pop_routes = c->pop_routes,
		.routes_first = b->path,
		.record_route = rr[0] ? rr : NULL,
		.extra = c->extra,
		.drop_proxy_auth = c->drop_auth,
		.drop_identity = c->drop_identity,
		.strict_ruri_pop = c->strict,
	};
	err = fwd_request(c->tmpl, c->tmpl_len, &f, &out);
	if (err)
		goto out;
	c->refs++;
	err = txn_client_start(&b->dst, b->id, c->method, out.data, out.len, on_branch, b);
	if (err) {
		c->refs--;
		goto out;
	}
	if (c->invite)
		b->req = buf_steal(&out, &b->req_len);
out:
	buf_free(&out);
	if (err) {
		LOGI(MOD, "branch to %s not started: %d", b->uri ? b->uri : "route", err);
		b->state = B_DONE;
		b->code = 503;
	}
}

/* Starts the next group of equal q (parallel inside, sequential across,
 * RFC 3261 §16.6 / §10.2.1.2). */
static void start_group(call_t *c)
{
	if (c->next >= c->n)
		return;
	float q = c->b[c->next].q;
	unsigned first = c->next;
	while (c->next < c->n && c->b[c->next].q == q)
		c->next++;
	c->refs++; /* branch_start may finish branches synchronously */
	for (unsigned i = first; i < c->next; i++)
		branch_start(c, &c->b[i]);
	check_complete(c);
	call_unref(c);
}

/* --- request handling --------------------------------------------------- */

typedef struct route_info {
	unsigned pop;     /* leading Route values naming us */
	bool strict;      /* previous hop was a strict router (§16.4) */
	const osip_uri_t *next; /* next hop: first Route left, or NULL (the R-URI) */
} route_info_t;

static void route_preprocess(const sipmsg_t *req, route_info_t *ri)
{
	memset(ri, 0, sizeof *ri);
	osip_message_t *m = req->m;
	int n = osip_list_size(&m->routes);
	/* Our Record-Route URIs have no user part: a Request-URI naming us
	 * without one came from a strict router (§16.4). */
	if (n > 0 && uri_is_us(m->req_uri) && (!m->req_uri->username || !*m->req_uri->username))
		ri->strict = true;
	int i = 0;
	for (; i < n; i++) {
		osip_route_t *r = osip_list_get(&m->routes, i);
		if (!r || !uri_is_us(r->url))
			break;
		ri->pop++;
	}
	int left = n - i - (ri->strict ? 1 : 0);
	if (left > 0) {
		osip_route_t *r = osip_list_get(&m->routes, i);
		ri->next = r ? r->url : NULL;
	}
}

static char *uri_str(const osip_uri_t *u)
{
	char *s = NULL;
	if (osip_uri_to_str(u, &s) != 0 || !s)
		return NULL;
	char *copy = strdup(s);
	osip_free(s);
	return copy;
}

/* One branch to the next hop given by the Route set or the Request-URI
 * (loose routing; no location lookup). */
static void forward_by_route(txn_t *t, sipmsg_t *req, const route_info_t *ri)
{
	tp_peer_t dst;
	int err;
	if (ri->next) {
		char *u = uri_str(ri->next);
		err = u ? uac_uri_dest(u, &dst) : -ENOMEM;
		free(u);
	} else if (ri->strict) {
		osip_route_t *last = osip_list_get(&req->m->routes, osip_list_size(&req->m->routes) - 1);
		char *u = last ? uri_str(last->url) : NULL;
		err = u ? dest_for_uri(req, u, &dst) : -EINVAL;
		free(u);
	} else {
		char *u = uri_str(req->m->req_uri);
		err = u ? dest_for_uri(req, u, &dst) : -ENOMEM;
		free(u);
	}
	if (err) {
		txn_reply(t, err == -ENOMEM ? 500 : 502, err == -ENOMEM ? NULL : "Bad Gateway - Next Hop Not Numeric",
			  NULL, NULL, NULL, 0);
		return;
	}
	call_t *c = call_new(t, req, 1);
	if (!c) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	c->pop_routes = ri->pop;
	c->strict = ri->strict;
	c->b[0].dst = dst;
	start_group(c);
	call_unref(c);
}

/* 302 with the contacts (§8.3, §10.2.1.2 q-values). */
static void redirect(txn_t *t, const loc_aor_t *a)
{
	buf_t extra;
	buf_init(&extra, 0);
	for (const loc_binding_t *b = a->bindings; b; b = b->next)
		buf_printf(&extra, "Contact: <%s>;q=%.3g\r\n", b->contact, (double)b->q);
	if (extra.err)
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
	else
		txn_reply(t, 302, NULL, extra.data, NULL, NULL, 0);
	buf_free(&extra);
	P.stats.redirected++;
}

/* Forks to the bindings of a local AOR (§16.5, §16.6). */
static void fork_to(txn_t *t, sipmsg_t *req, const route_info_t *ri, const char *aor,
		    const char *identity_aor)
{
	const loc_aor_t *a = loc_find(aor);
	if (!a || !a->count) {
		if (dir_find(aor))
			txn_reply(t, 480, "Temporarily Unavailable - Not Registered", NULL, NULL, NULL, 0);
		else
			txn_reply(t, 404, "Not Found - No Such User", NULL, NULL, NULL, 0);
		return;
	}
	bool initial = sipmsg_to_tag(req) == NULL;
	if (P.o.redirect && initial && strcmp(req->method, "INVITE") == 0) {
		redirect(t, a);
		return;
	}
	unsigned n = a->count < MAX_BRANCHES ? a->count : MAX_BRANCHES;
	call_t *c = call_new(t, req, n);
	if (!c) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	c->pop_routes = ri->pop;
	c->strict = ri->strict;
	c->add_rr = initial;
	c->drop_auth = identity_aor != NULL;
	if (identity_aor) {
		buf_t id;
		buf_init(&id, 0);
		if (dir_identity_headers(req, identity_aor, &id) == 0 && id.len) {
			c->extra = buf_steal(&id, NULL);
			c->drop_identity = true;
		}
		buf_free(&id);
	}
	unsigned k = 0;
	for (const loc_binding_t *lb = a->bindings; lb && k < n; lb = lb->next) {
		branch_t *b = &c->b[k];
		if (uac_binding_dest(&lb->source, lb->contact, &b->dst) != 0)
			continue;
		b->uri = strdup(lb->contact);
		b->path = lb->path ? strdup(lb->path) : NULL;
		b->q = lb->q;
		if (!b->uri || (lb->path && !b->path)) {
			free(b->uri);
			free(b->path);
			b->uri = b->path = NULL;
			continue;
		}
		k++;
	}
	c->n = k;
	if (!k) {
		txn_reply(t, 480, "Temporarily Unavailable - No Reachable Contact", NULL, NULL, NULL, 0);
		call_unref(c);
		return;
	}
	if (P.o.dialog_tracking && initial && c->invite) {
		const osip_uri_t *from = req->m->from->url;
		char caller[AOR_MAX];
		bool local_caller = from->host && P.o.is_local_domain(from->host) && from->username &&
				    sip_uri_aor(from, caller, sizeof caller) == 0;
		dlg_track_invite(req, aor, local_caller ? caller : NULL);
		c->tracked = true;
	}
	start_group(c);
	call_unref(c);
}

typedef struct actx {
	txn_t *t;
	route_info_t ri;
	char aor[AOR_MAX];
	char from_aor[AOR_MAX];
} actx_t;

static void after_auth(actx_t *a, const char *user)
{
	sipmsg_t *req = txn_request(a->t);
	if (!req || txn_answered(a->t))
		return;
	const char *fu = req->m->from->url->username;
	if (authn_enabled() && (!user || !fu || strcmp(user, fu) != 0)) {
		txn_reply(a->t, 403, "Forbidden - Credentials Do Not Match From", NULL, NULL, NULL, 0);
		return;
	}
	/* The Route set was parsed from this same request: recompute the
	 * pointer (it borrowed from req). */
	route_preprocess(req, &a->ri);
	fork_to(a->t, req, &a->ri, a->aor, a->from_aor[0] ? a->from_aor : NULL);
}

static void auth_done(void *arg, authn_result_t result, const char *user)
{
	actx_t *a = arg;
	if (result == AUTHN_OK && P.up)
		after_auth(a, user);
	txn_unref(a->t);
	free(a);
}

/* An initial request for a local user: authenticate a local caller
 * (407), then fork. */
static void initial_request(txn_t *t, sipmsg_t *req, const route_info_t *ri, const char *aor)
{
	const osip_uri_t *from = req->m->from->url;
	bool local_from = from->host && P.o.is_local_domain(from->host) && from->username;
	bool initial = sipmsg_to_tag(req) == NULL;
	if (!local_from || !initial) {
		fork_to(t, req, ri, aor, NULL);
		return;
	}
	actx_t *a = calloc(1, sizeof *a);
	if (!a) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	a->t = t;
	txn_ref(t);
	a->ri = *ri;
	snprintf(a->aor, sizeof a->aor, "%s", aor);
	if (sip_uri_aor(from, a->from_aor, sizeof a->from_aor) != 0)
		a->from_aor[0] = '\0';
	char realm[256], user[AUTH_USER_MAX] = "";
	snprintf(realm, sizeof realm, "%s", from->host);
	authn_result_t r = authn_check(t, realm, true, user, sizeof user, auth_done, a);
	if (r == AUTHN_PENDING)
		return;
	if (r == AUTHN_OK)
		after_auth(a, user);
	txn_unref(a->t);
	free(a);
}

void proxy_handle_request(txn_t *t, sipmsg_t *req)
{
	if (!P.up) {
		txn_reply(t, 503, "Service Unavailable - Proxy Not Ready", "Retry-After: 5\r\n", NULL, NULL, 0);
		return;
	}
	route_info_t ri;
	route_preprocess(req, &ri);
	uint32_t h = loop_hash(req);
	if (looped(req, h)) {
		txn_reply(t, 482, NULL, NULL, NULL, NULL, 0);
		return;
	}
	if (P.o.dialog_tracking && strcmp(req->method, "BYE") == 0)
		dlg_track_bye(req);
	bool routed = ri.pop > 0 || ri.strict;
	if (routed && ri.next) {
		/* More hops in the Route set: loose routing only (§16.12).
		 * A Route set whose top is not us is never followed: we are
		 * not an open relay. */
		forward_by_route(t, req, &ri);
		return;
	}
	const osip_uri_t *target = req->m->req_uri;
	char aor[AOR_MAX];
	if (!ri.strict && local_user_aor(req, target, aor, sizeof aor)) {
		initial_request(t, req, &ri, aor);
		return;
	}
	if (routed) {
		/* The Route set ended here: the Request-URI is the next hop
		 * (the remote target of a dialog we record-routed). */
		forward_by_route(t, req, &ri);
		return;
	}
	if (sipmsg_to_tag(req)) {
		txn_reply(t, 481, "Call/Transaction Does Not Exist - Not On The Route Set", NULL, NULL,
			  NULL, 0);
		return;
	}
	if (uri_is_us(target) || (target->host && P.o.is_local_domain(target->host)))
		txn_reply(t, 404, "Not Found - No User In Request-URI", NULL, NULL, NULL, 0);
	else
		txn_reply(t, 403, "Forbidden - Relaying Denied", NULL, NULL, NULL, 0);
}

void proxy_handle_cancel(txn_t *t, sipmsg_t *req)
{
	txn_t *inv = txn_find_invite(req);
	if (!inv) {
		txn_reply(t, 481, NULL, NULL, NULL, NULL, 0);
		return;
	}
	/* §16.10: the CANCEL is answered at once, hop by hop. */
	txn_reply(t, 200, NULL, NULL, NULL, NULL, 0);
	P.stats.cancelled++;
	call_t *c = call_find(inv);
	if (!c) {
		/* Not forked yet (authentication under way) or already over. */
		if (!txn_answered(inv))
			txn_reply(inv, 487, NULL, NULL, NULL, NULL, 0);
		return;
	}
	if (c->final_sent || c->cancelled)
		return;
	c->cancelled = true;
	c->refs++;
	cancel_branches(c, NULL, true);
	check_complete(c);
	call_unref(c);
}

/* --- stateless paths ---------------------------------------------------- */

void proxy_stray_ack(sipmsg_t *ack)
{
	route_info_t ri;
	buf_t out;
	buf_init(&out, 0);
	char *tmpl = NULL;
	size_t tlen = 0;
	if (!P.up)
		goto out;
	route_preprocess(ack, &ri);
	if (!ri.pop && !ri.strict)
		goto out; /* not on our Route set: not ours to forward */
	const char *mf = sipmsg_header(ack, "max-forwards", NULL);
	if (mf && strtol(mf, NULL, 10) <= 0)
		goto out;
	tp_peer_t dst;
	char *u = NULL;
	if (ri.next) {
		u = uri_str(ri.next);
	} else if (ri.strict) {
		osip_route_t *last = osip_list_get(&ack->m->routes, osip_list_size(&ack->m->routes) - 1);
		u = last ? uri_str(last->url) : NULL;
	} else {
		u = uri_str(ack->m->req_uri);
	}
	int err = u ? (ri.next ? uac_uri_dest(u, &dst) : dest_for_uri(ack, u, &dst)) : -ENOMEM;
	free(u);
	if (err)
		goto out;
	char hp[96], branch[48], via[200];
	const char *tr = "UDP";
	if (uac_via_sent_by(&dst, hp, sizeof hp, &tr) != 0)
		goto out;
	txn_new_branch(branch, sizeof branch);
	snprintf(via, sizeof via, "SIP/2.0/%s %s;branch=%s", tr, hp, branch);
	tmpl = msg_text(ack, &tlen);
	if (!tmpl)
		goto out;
	fwd_req_t f = {.via = via, .pop_routes = ri.pop, .strict_ruri_pop = ri.strict};
	if (fwd_request(tmpl, tlen, &f, &out) == 0 && tp_send(&dst, out.data, out.len) == 0)
		P.stats.stray_acks++;
out:
	free(tmpl);
	buf_free(&out);
	sipmsg_free(ack);
}

bool proxy_stray_response(const sipmsg_t *resp)
{
	if (!P.up || resp->is_request || strcmp(resp->method, "INVITE") != 0)
		return false;
	int code = resp->m->status_code;
	if (code < 200 || code >= 300)
		return false;
	const osip_via_t *top = resp->via;
	if (!top || !top->host || !host_is_self(top->host) || !port_is_ours(uri_port(top->port)))
		return false;
	osip_via_t *up = osip_list_get(&resp->m->vias, 1);
	if (!up || !up->host)
		return false;
	/* §18.2.2 / RFC 3581: received and rport of the upstream Via. */
	osip_generic_param_t *rec = NULL, *rport = NULL;
	osip_via_param_get_byname(up, "received", &rec);
	osip_via_param_get_byname(up, "rport", &rport);
	const char *host = rec && rec->gvalue ? rec->gvalue : up->host;
	uint16_t port = rport && rport->gvalue && *rport->gvalue ? uri_port(rport->gvalue) : uri_port(up->port);
	tp_peer_t dst;
	memset(&dst, 0, sizeof dst);
	dst.listener = -1;
	dst.proto = up->protocol && strcasecmp(up->protocol, "TCP") == 0 ? TP_TCP : TP_UDP;
	if (tp_addr_from_str(host, port, &dst.addr) != 0)
		return false;
	size_t len = 0;
	char *text = msg_text(resp, &len);
	if (!text)
		return false;
	buf_t out;
	buf_init(&out, 0);
	bool ok = fwd_response(text, len, 0, NULL, &out) == 0 && tp_send(&dst, out.data, out.len) == 0;
	if (ok)
		P.stats.stray_2xx++;
	buf_free(&out);
	free(text);
	return ok;
}

/* --- life cycle --------------------------------------------------------- */

int proxy_init(const proxy_options_t *opts)
{
	if (!opts || !opts->is_local_domain || !opts->is_local_address)
		return -EINVAL;
	memset(&P, 0, sizeof P);
	P.o = *opts;
	if (!P.o.default_domain)
		P.o.default_domain = "localhost";
	int err = htable_init(&P.calls, 1024);
	if (!err)
		err = alias_init(opts->conninfo);
	if (!err)
		err = dir_init(opts->conninfo);
	if (!err && P.o.dialog_tracking)
		err = P.o.loop ? dlg_init(P.o.loop) : -EINVAL;
	if (err)
		return err;
	P.up = true;
	LOGI(MOD, "proxy ready (%s mode, dialog tracking %s)", P.o.redirect ? "redirect" : "proxy",
	     P.o.dialog_tracking ? "on" : "off");
	return 0;
}

void proxy_shutdown(void)
{
	if (!P.up)
		return;
	P.up = false;
	alias_shutdown();
	dir_shutdown();
	dlg_shutdown();
	htable_destroy(&P.calls);
}

void proxy_get_stats(proxy_stats_t *out) { *out = P.stats; }
