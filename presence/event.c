/* RFC 6665 event framework: SUBSCRIBE (§4.2.1), NOTIFY (§4.2.2), the
 * subscription dialog (§4.1.2, RFC 3261 §12), expiry, persistence and
 * the NOTIFY queue with rate control (see event.h).
 *
 * Memory holds every live subscription in three indexes:
 *   dialogs     (Call-ID, our tag, their tag, Event, id) -> subscription,
 *               for in-dialog SUBSCRIBEs (refresh, unsubscribe; 481);
 *   resources   (package, resource AOR) -> its subscriptions (fan-out of a change);
 *   watchers    watcher AOR -> its subscriptions (the per-watcher cap).
 * PostgreSQL holds one row per subscription, written in batches
 * (pbatch.h); an accepted SUBSCRIBE is answered only after its row
 * committed.
 *
 * NOTIFY queue.  A state change only marks the subscription (want) and
 * queues it; once per loop turn, just before the loop sleeps (uv_prepare),
 * every queued subscription gets ONE NOTIFY with the state of that moment,
 * so n changes in one turn cost one NOTIFY per watcher.  A subscription
 * whose previous NOTIFY is still outstanding is not sent again: its
 * completion sends the newest state (coalescing).  With notify_interval_ms
 * a dialog gets at most one NOTIFY per interval.  Every NOTIFY is its own
 * client transaction, so a watcher that times out delays nobody else.
 *
 * NOTIFY failures: 481 ends the subscription at once (§4.2.2); a timeout
 * or another non-2xx counts as a failure, and notify_max_failures (3)
 * consecutive failures end it; a failed NOTIFY makes the next one carry
 * full state.
 *
 * CSeq.  Our CSeq grows by one per NOTIFY for the dialog's whole life.
 * The row stores a high-water mark reserved ahead in blocks of CSEQ_BLOCK:
 * when a NOTIFY reaches the mark a new mark is written, and a restart
 * resumes from the stored mark, above anything sent before.
 *
 * Destination of a NOTIFY (RFC 3261 §12.2.1.1, §8.1.2): Request-URI is the
 * remote target (the SUBSCRIBE's Contact).  The route set is the
 * SUBSCRIBE's Record-Route in order (RFC 3261 §12.1.1: the UAS keeps the
 * order; it is the UAC that reverses); with a route set the NOTIFY goes to
 * the first route's address.  Without one it goes to where the SUBSCRIBE
 * came from (its UDP source or TCP connection) -- the flow that works
 * behind NAT; over TCP, when that connection is gone (restart), to the
 * Contact's address when it is numeric. */
#include "presence/event.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "presence/pbatch.h"
#include "presence/slab.h"
#include "server/auth/authn.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"
#include "server/registrar/location.h"
#include "server/router.h"
#include "server/sip/sipmsg.h"

#define MAX_PACKAGES 16
#define MAX_OBSERVERS 4
#define CSEQ_BLOCK 100
#define AOR_MAX 512
#define MAX_ROUTE_SET 8192

struct idx;

/* The part of a tp_peer_t a subscription keeps: tp_peer_t carries a
 * 128-byte sockaddr_storage, an IPv6 address needs 28. */
typedef struct sub_peer {
	uint64_t conn_id;
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a;
	int16_t listener;
	uint8_t proto;
} sub_peer_t;

/* A subscription is ONE allocation (slab.h): the struct, then its strings
 * packed behind it (their lengths are known when it is created and only
 * the contact ever changes; see sub_set_contact).  The resource and
 * watcher AORs are the keys of the index entries it holds (r_idx,
 * w_idx), shared by every subscription of that resource or watcher.
 * Memory matters here: a server holds hundreds of thousands of these. */
struct ev_sub {
	hnode_t dnode; /* dialogs */
	struct ev_sub *r_prev, *r_next, *w_prev, *w_next;
	struct idx *r_idx, *w_idx; /* held from creation to the last unref */
	struct ev_sub *q_next;
	const ev_package_t *pkg;
	const char *reason;
	void *data;
	char *id, *event_id, *call_id, *local_tag, *remote_tag, *local_uri, *remote_uri;
	char *route_set; /* NULL: none */
	char *contact;   /* the block's contact slot, or malloc'ed (contact_owned) */
	int64_t expires_at, created_at;
	uint64_t last_sent_ms;
	uint32_t cseq, cseq_mark, remote_cseq;
	uint32_t refs;
	uint32_t size;        /* bytes of the allocation */
	uint16_t contact_cap; /* bytes of the contact slot, the block's last */
	uint16_t failures;
	sub_peer_t source;
	uint8_t state; /* ev_state_t */
	uint8_t auth;  /* ev_auth_t */
	bool live : 1;      /* in the indexes */
	bool announced : 1; /* observers know it */
	bool marked : 1;    /* in the next write batch */
	bool fetch : 1;     /* Expires: 0 initial SUBSCRIBE: never stored */
	bool contact_owned : 1;
	/* NOTIFY machinery */
	bool queued : 1, want : 1, outstanding : 1, need_full : 1, final_sent : 1, later : 1;
};

/* One resource AOR of one event package name, or one watcher AOR (event
 * NULL): its linked subscriptions, and the key string every subscription
 * of it points to.  Resources are indexed per event name so that a
 * package visits only the subscriptions of its event (winfo looks for
 * the winfo subscribers among 1,000 presence watchers on every
 * SUBSCRIBE).  By name, not package: a list subscription (rls.c) has a
 * package of its own, unregistered, with the event name "presence". */
typedef struct idx {
	hnode_t node;
	const char *event; /* a package's name (static) */
	ev_sub_t *head;
	unsigned count; /* linked subscriptions (the per-watcher cap) */
	unsigned refs;  /* subscriptions holding it, linked or not */
	char key[];
} idx_t;

static struct {
	uv_loop_t *loop;
	ev_options_t o;
	char *node_name, *advertised_host;
	const ev_package_t *pkgs[MAX_PACKAGES];
	int npkgs;
	struct { ev_watch_cb cb; void *arg; } obs[MAX_OBSERVERS];
	int nobs;
	struct { ev_change_cb cb; void *arg; } chg[MAX_OBSERVERS];
	int nchg;
	ev_list_resolver list_resolver;
	htable_t dialogs, resources, watchers;
	unsigned long nsubs;
	pbatch_t batch;
	uv_prepare_t prepare;
	uv_timer_t tick, rate;
	bool rate_armed;
	ev_sub_t *q_head, **q_tail;
	unsigned notify_inflight; /* NOTIFY client transactions not finished */
	ev_sub_t **later;
	size_t nlater, caplater;
	size_t sweep_bucket;
	uint64_t last_purge;
	bool started, stopping;
} E;

static const char *const SQL_BATCH =
	"WITH del AS ("
	"  DELETE FROM presence_subscriptions WHERE id = ANY($1::text[]) RETURNING 1),"
	" ins AS ("
	"  INSERT INTO presence_subscriptions (id, event, event_id, resource, watcher, call_id,"
	"     local_tag, remote_tag, local_uri, remote_uri, contact, route_set, source, local_cseq,"
	"     remote_cseq, expires_at, state, node, created_at, updated_at)"
	"  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
	"     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],"
	"     $14::text[], $15::bigint[], $16::bigint[], $17::bigint[], $18::text[], $19::text[],"
	"     $20::bigint[], $21::bigint[])"
	"  ON CONFLICT (id) DO UPDATE SET contact = EXCLUDED.contact, route_set = EXCLUDED.route_set,"
	"     source = EXCLUDED.source,"
	"     local_cseq = GREATEST(presence_subscriptions.local_cseq, EXCLUDED.local_cseq),"
	"     remote_cseq = EXCLUDED.remote_cseq, expires_at = EXCLUDED.expires_at,"
	"     state = EXCLUDED.state, node = EXCLUDED.node, updated_at = EXCLUDED.updated_at"
	"  RETURNING 1)"
	" SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ins)";

#define SUB_COLUMNS                                                                              \
	"id, event, event_id, resource, watcher, call_id, local_tag, remote_tag, local_uri,"     \
	" remote_uri, contact, route_set, source, local_cseq, remote_cseq, expires_at, state,"   \
	" created_at"

static const char *const SQL_LOAD =
	"SELECT " SUB_COLUMNS " FROM presence_subscriptions WHERE expires_at > $1"
	" AND node IS NOT DISTINCT FROM $2 ORDER BY created_at";
static const char *const SQL_PURGE =
	"DELETE FROM presence_subscriptions WHERE ctid = ANY(ARRAY("
	"  SELECT ctid FROM presence_subscriptions WHERE expires_at < $1 LIMIT 1000))";

enum {
	A_DEL, A_ID, A_EVENT, A_EID, A_RES, A_WATCHER, A_CALLID, A_LTAG, A_RTAG, A_LURI, A_RURI,
	A_CONTACT, A_ROUTE, A_SOURCE, A_LCSEQ, A_RCSEQ, A_EXP, A_STATE, A_NODE, A_CREATED, A_UPDATED,
	A_COUNT
};

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* --- pure helpers -------------------------------------------------------- */

int ev_format_substate(ev_state_t st, const char *reason, int64_t expires_in, buf_t *out)
{
	if (expires_in < 0)
		expires_in = 0;
	switch (st) {
	case EV_STATE_ACTIVE:
		buf_printf(out, "active;expires=%" PRId64, expires_in);
		break;
	case EV_STATE_PENDING:
		buf_printf(out, "pending;expires=%" PRId64, expires_in);
		break;
	case EV_STATE_TERMINATED:
		buf_printf(out, "terminated;reason=%s", reason ? reason : "timeout");
		break;
	}
	return out->err;
}

static bool is_token_char(char c)
{
	return isalnum((unsigned char)c) || strchr("-.!%*_+`'~", c) != NULL;
}

int ev_parse_event(const char *value, char *pkg, size_t pkglen, char *id, size_t idlen)
{
	if (!value || pkglen == 0 || idlen == 0)
		return -EINVAL;
	const char *p = value;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t n = 0;
	while (p[n] && is_token_char(p[n]))
		n++;
	if (n == 0 || n >= pkglen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		pkg[i] = (char)tolower((unsigned char)p[i]);
	pkg[n] = '\0';
	id[0] = '\0';
	p += n;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return 0;
		if (*p != ';')
			return -EINVAL;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		const char *name = p;
		while (*p && is_token_char(*p))
			p++;
		size_t nl = (size_t)(p - name);
		while (*p == ' ' || *p == '\t')
			p++;
		const char *val = NULL;
		size_t vl = 0;
		if (*p == '=') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			val = p;
			while (*p && is_token_char(*p))
				p++;
			vl = (size_t)(p - val);
		}
		if (nl == 0)
			return -EINVAL;
		if (nl == 2 && strncasecmp(name, "id", 2) == 0) {
			if (!val || vl == 0 || vl >= idlen)
				return -EINVAL;
			memcpy(id, val, vl);
			id[vl] = '\0';
		}
	}
}

bool ev_accept_allows(const char *accept, const char *mime)
{
	const char *slash = strchr(mime, '/');
	if (!slash)
		return false;
	size_t tlen = (size_t)(slash - mime);
	const char *p = accept;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		size_t len = (size_t)(p - start);
		/* skip parameters up to the next comma */
		while (*p && *p != ',')
			p++;
		const char *s = memchr(start, '/', len);
		if (!s)
			continue;
		size_t t = (size_t)(s - start);
		size_t sublen = len - t - 1;
		bool type_ok = (t == 1 && start[0] == '*') || (t == tlen && strncasecmp(start, mime, t) == 0);
		bool sub_ok = (sublen == 1 && s[1] == '*') ||
			      (sublen == strlen(slash + 1) && strncasecmp(s + 1, slash + 1, sublen) == 0);
		if (type_ok && sub_ok)
			return true;
	}
	return false;
}

const char *ev_auth_name(ev_auth_t a)
{
	switch (a) {
	case EV_AUTH_ALLOW: return "allow";
	case EV_AUTH_BLOCK: return "block";
	case EV_AUTH_POLITE: return "polite-block";
	case EV_AUTH_PENDING: return "pending";
	}
	return "?";
}

/* --- accessors ----------------------------------------------------------- */

const ev_package_t *ev_sub_package(const ev_sub_t *s) { return s->pkg; }
const char *ev_sub_id(const ev_sub_t *s) { return s->id; }
const char *ev_sub_resource(const ev_sub_t *s) { return s->r_idx->key; }
const char *ev_sub_watcher(const ev_sub_t *s) { return s->w_idx->key; }
const char *ev_sub_watcher_uri(const ev_sub_t *s) { return s->w_idx->key; }
ev_state_t ev_sub_state(const ev_sub_t *s) { return s->state; }
ev_auth_t ev_sub_auth(const ev_sub_t *s) { return s->auth; }
const char *ev_sub_reason(const ev_sub_t *s) { return s->reason; }
uint32_t ev_sub_cseq(const ev_sub_t *s) { return s->cseq; }
bool ev_sub_full_state(const ev_sub_t *s) { return s->need_full; }
int64_t ev_sub_created(const ev_sub_t *s) { return s->created_at; }
int64_t ev_sub_expires_at(const ev_sub_t *s) { return s->expires_at; }
void *ev_sub_data(const ev_sub_t *s) { return s->data; }
void ev_sub_set_data(ev_sub_t *s, void *data) { s->data = data; }

/* --- packages and observers ---------------------------------------------- */

int ev_register_package(const ev_package_t *pkg)
{
	if (ev_find_package(pkg->name))
		return -EEXIST;
	if (E.npkgs >= MAX_PACKAGES)
		return -ENOSPC;
	E.pkgs[E.npkgs++] = pkg;
	router_add_event(pkg->name);
	for (const char *const *t = pkg->notify_types; t && *t; t++)
		router_add_accept(*t);
	return 0;
}

const ev_package_t *ev_find_package(const char *name)
{
	for (int i = 0; i < E.npkgs; i++) {
		if (strcasecmp(E.pkgs[i]->name, name) == 0)
			return E.pkgs[i];
	}
	return NULL;
}

void ev_set_list_resolver(ev_list_resolver fn) { E.list_resolver = fn; }

int ev_on_resource_change(ev_change_cb cb, void *arg)
{
	if (E.nchg == MAX_OBSERVERS)
		return -ENOSPC;
	E.chg[E.nchg].cb = cb;
	E.chg[E.nchg].arg = arg;
	E.nchg++;
	return 0;
}

static void resource_change_observers(const ev_package_t *pkg, const char *resource)
{
	for (int i = 0; i < E.nchg; i++)
		E.chg[i].cb(E.chg[i].arg, pkg, resource);
}

int ev_on_subscription(ev_watch_cb cb, void *arg)
{
	if (E.nobs >= MAX_OBSERVERS)
		return -ENOSPC;
	E.obs[E.nobs].cb = cb;
	E.obs[E.nobs].arg = arg;
	E.nobs++;
	return 0;
}

static void announce(ev_sub_t *s, const char *event)
{
	if (!s->announced || s->fetch)
		return;
	for (int i = 0; i < E.nobs; i++)
		E.obs[i].cb(E.obs[i].arg, s, event);
}

/* --- subscription objects ------------------------------------------------ */

static void sub_ref(ev_sub_t *s) { s->refs++; }

static size_t idx_size(size_t keylen) { return sizeof(idx_t) + keylen + 1; }

typedef struct idx_key {
	const char *event;
	const char *key;
} idx_key_t;

static bool idx_eq(const hnode_t *n, const void *key)
{
	const idx_t *x = container_of(n, idx_t, node);
	const idx_key_t *k = key;
	if (!x->event != !k->event || (k->event && strcasecmp(x->event, k->event) != 0))
		return false;
	return strcmp(x->key, k->key) == 0;
}

/* event: a package name (static), or NULL for the watchers index. */
static idx_t *idx_get(htable_t *t, const char *event, const char *key, bool create)
{
	idx_key_t k = {event, key};
	uint64_t h = hash_mix(hash_str(key), event ? hash_str_nocase(event) : 0);
	hnode_t *n = htable_find(t, h, idx_eq, &k);
	if (n)
		return container_of(n, idx_t, node);
	if (!create)
		return NULL;
	size_t len = strlen(key);
	idx_t *x = slab_alloc(idx_size(len));
	if (!x)
		return NULL;
	memset(x, 0, sizeof *x);
	x->event = event;
	memcpy(x->key, key, len + 1);
	htable_insert(t, &x->node, h);
	return x;
}

static idx_t *idx_hold(htable_t *t, const char *event, const char *key)
{
	idx_t *x = idx_get(t, event, key, true);
	if (x)
		x->refs++;
	return x;
}

static void idx_release(htable_t *t, idx_t *x)
{
	if (!x || --x->refs > 0)
		return;
	htable_remove(t, &x->node);
	slab_free(x, idx_size(strlen(x->key)));
}

static void sub_unref(ev_sub_t *s)
{
	if (!s || --s->refs > 0)
		return;
	if (s->pkg && s->pkg->sub_free && s->data)
		s->pkg->sub_free(s, s->data);
	idx_release(&E.resources, s->r_idx);
	idx_release(&E.watchers, s->w_idx);
	if (s->contact_owned)
		free(s->contact);
	slab_free(s, s->size);
}

static void peer_pack(sub_peer_t *d, const tp_peer_t *p)
{
	memset(d, 0, sizeof *d);
	d->proto = (uint8_t)p->proto;
	d->conn_id = p->conn_id;
	d->listener = p->listener >= INT16_MIN && p->listener <= INT16_MAX ? (int16_t)p->listener : -1;
	if (p->addr.ss_family == AF_INET6)
		memcpy(&d->a.in6, &p->addr, sizeof d->a.in6);
	else if (p->addr.ss_family == AF_INET)
		memcpy(&d->a.in, &p->addr, sizeof d->a.in);
}

static tp_peer_t peer_unpack(const sub_peer_t *d)
{
	tp_peer_t p;
	memset(&p, 0, sizeof p);
	p.proto = (tp_proto_t)d->proto;
	p.conn_id = d->conn_id;
	p.listener = d->listener;
	if (d->a.in.sin_family == AF_INET6)
		memcpy(&p.addr, &d->a.in6, sizeof d->a.in6);
	else if (d->a.in.sin_family == AF_INET)
		memcpy(&p.addr, &d->a.in, sizeof d->a.in);
	return p;
}

/* The strings of a new subscription; route_set may be NULL. */
typedef struct sub_strings {
	const char *id, *event_id, *resource, *watcher, *call_id, *local_tag, *remote_tag;
	const char *local_uri, *remote_uri, *route_set, *contact;
} sub_strings_t;

static char *pack(char **p, const char *v)
{
	if (!v)
		return NULL;
	size_t n = strlen(v) + 1;
	char *d = memcpy(*p, v, n);
	*p += n;
	return d;
}

/* A zeroed subscription holding one reference, its strings packed behind
 * it, and the index entries of its resource and watcher held (not
 * linked).  NULL when out of memory or too large. */
static ev_sub_t *sub_new(const ev_package_t *pkg, const sub_strings_t *v)
{
	const char *packed[] = {v->id,	       v->event_id,  v->call_id,   v->local_tag,
				v->remote_tag, v->local_uri, v->remote_uri, v->route_set};
	size_t size = sizeof(ev_sub_t), contact = strlen(v->contact) + 1;
	for (size_t i = 0; i < sizeof packed / sizeof packed[0]; i++)
		size += packed[i] ? strlen(packed[i]) + 1 : 0;
	if (contact > UINT16_MAX || size + contact > UINT32_MAX)
		return NULL;
	size += contact;
	ev_sub_t *s = slab_alloc(size);
	if (!s)
		return NULL;
	memset(s, 0, sizeof *s);
	s->size = (uint32_t)size;
	s->refs = 1;
	s->pkg = pkg;
	char *p = (char *)(s + 1);
	s->id = pack(&p, v->id);
	s->event_id = pack(&p, v->event_id);
	s->call_id = pack(&p, v->call_id);
	s->local_tag = pack(&p, v->local_tag);
	s->remote_tag = pack(&p, v->remote_tag);
	s->local_uri = pack(&p, v->local_uri);
	s->remote_uri = pack(&p, v->remote_uri);
	s->route_set = pack(&p, v->route_set);
	s->contact = pack(&p, v->contact);
	s->contact_cap = (uint16_t)contact;
	s->r_idx = idx_hold(&E.resources, pkg->name, v->resource);
	s->w_idx = s->r_idx ? idx_hold(&E.watchers, NULL, v->watcher) : NULL;
	if (!s->w_idx) {
		sub_unref(s);
		return NULL;
	}
	return s;
}

/* A refresh may bring a new Contact (the remote target, RFC 6665 §4.1.2.2;
 * the route set never changes): in place when it fits the slot, else on
 * the general heap.  0 or -ENOMEM (the old contact is kept). */
static int sub_set_contact(ev_sub_t *s, const char *c)
{
	if (strcmp(s->contact, c) == 0)
		return 0;
	size_t n = strlen(c) + 1;
	char *slot = (char *)s + s->size - s->contact_cap;
	char *d = n <= s->contact_cap ? slot : malloc(n);
	if (!d)
		return -ENOMEM;
	memcpy(d, c, n);
	if (s->contact_owned)
		free(s->contact);
	s->contact = d;
	s->contact_owned = d != slot;
	return 0;
}

/* The dialog index's key (RFC 6665 §4.1.2: Call-ID, both tags, Event and
 * its id), compared field by field instead of stored joined. */
typedef struct dlg_key {
	const char *call_id, *local_tag, *remote_tag, *event, *event_id;
} dlg_key_t;

static uint64_t dlg_hash(const dlg_key_t *k)
{
	uint64_t h = hash_str(k->call_id);
	h = hash_mix(h, hash_str(k->local_tag));
	h = hash_mix(h, hash_str(k->remote_tag));
	h = hash_mix(h, hash_str(k->event));
	return hash_mix(h, hash_str(k->event_id));
}

static dlg_key_t dlg_key_of(const ev_sub_t *s)
{
	return (dlg_key_t){s->call_id, s->local_tag, s->remote_tag, s->pkg->name, s->event_id};
}

static bool dlg_eq(const hnode_t *n, const void *key)
{
	const ev_sub_t *s = container_of(n, ev_sub_t, dnode);
	const dlg_key_t *k = key;
	return strcmp(s->call_id, k->call_id) == 0 && strcmp(s->local_tag, k->local_tag) == 0 &&
	       strcmp(s->remote_tag, k->remote_tag) == 0 && strcmp(s->pkg->name, k->event) == 0 &&
	       strcmp(s->event_id, k->event_id) == 0;
}

static int sub_link(ev_sub_t *s)
{
	idx_t *r = s->r_idx, *w = s->w_idx;
	s->r_next = r->head;
	if (r->head)
		r->head->r_prev = s;
	r->head = s;
	r->count++;
	s->w_next = w->head;
	if (w->head)
		w->head->w_prev = s;
	w->head = s;
	w->count++;
	dlg_key_t k = dlg_key_of(s);
	htable_insert(&E.dialogs, &s->dnode, dlg_hash(&k));
	s->live = true;
	sub_ref(s); /* the indexes' reference */
	E.nsubs++;
	return 0;
}

static void sub_unlink(ev_sub_t *s)
{
	if (!s->live)
		return;
	s->live = false;
	idx_t *r = s->r_idx, *w = s->w_idx;
	if (s->r_prev)
		s->r_prev->r_next = s->r_next;
	else
		r->head = s->r_next;
	if (s->r_next)
		s->r_next->r_prev = s->r_prev;
	r->count--;
	if (s->w_prev)
		s->w_prev->w_next = s->w_next;
	else
		w->head = s->w_next;
	if (s->w_next)
		s->w_next->w_prev = s->w_prev;
	w->count--;
	s->r_prev = s->r_next = s->w_prev = s->w_next = NULL;
	htable_remove(&E.dialogs, &s->dnode);
	E.nsubs--;
	sub_unref(s);
}

/* --- persistence --------------------------------------------------------- */

static void row_taken(void *item) { ((ev_sub_t *)item)->marked = false; }
static void row_done(void *item, int err)
{
	(void)err;
	sub_unref(item);
}

static void row_add(void *item, buf_t *a, int64_t now)
{
	ev_sub_t *s = item;
	if (s->state == EV_STATE_TERMINATED || s->fetch || s->expires_at <= now) {
		db_array_add(&a[A_DEL], s->id);
		return;
	}
	char num[32], src[96];
	db_array_add(&a[A_ID], s->id);
	db_array_add(&a[A_EVENT], s->pkg->name);
	db_array_add(&a[A_EID], s->event_id);
	db_array_add(&a[A_RES], s->r_idx->key);
	db_array_add(&a[A_WATCHER], s->w_idx->key);
	db_array_add(&a[A_CALLID], s->call_id);
	db_array_add(&a[A_LTAG], s->local_tag);
	db_array_add(&a[A_RTAG], s->remote_tag);
	db_array_add(&a[A_LURI], s->local_uri);
	db_array_add(&a[A_RURI], s->remote_uri);
	db_array_add(&a[A_CONTACT], s->contact);
	db_array_add(&a[A_ROUTE], s->route_set);
	tp_peer_t peer = peer_unpack(&s->source);
	if (loc_source_format(&peer, src, sizeof src) != 0)
		snprintf(src, sizeof src, "udp:0.0.0.0:5060");
	db_array_add(&a[A_SOURCE], src);
	snprintf(num, sizeof num, "%u", s->cseq_mark);
	db_array_add(&a[A_LCSEQ], num);
	snprintf(num, sizeof num, "%u", s->remote_cseq);
	db_array_add(&a[A_RCSEQ], num);
	snprintf(num, sizeof num, "%" PRId64, s->expires_at);
	db_array_add(&a[A_EXP], num);
	db_array_add(&a[A_STATE], s->state == EV_STATE_PENDING ? "pending" : "active");
	db_array_add(&a[A_NODE], E.node_name);
	snprintf(num, sizeof num, "%" PRId64, s->created_at);
	db_array_add(&a[A_CREATED], num);
	snprintf(num, sizeof num, "%" PRId64, now);
	db_array_add(&a[A_UPDATED], num);
}

static const pb_ops_t ROW_OPS = {
	.stmt = "ev_batch", .narrays = A_COUNT, .taken = row_taken, .add_row = row_add, .done = row_done,
};

static void mark_dirty(ev_sub_t *s)
{
	if (s->marked || s->fetch)
		return;
	sub_ref(s);
	if (pb_mark(&E.batch, s) != 0) {
		sub_unref(s);
		return;
	}
	s->marked = true;
}

/* --- NOTIFY queue -------------------------------------------------------- */

static void flush_notifies(void);

void ev_sub_schedule(ev_sub_t *s)
{
	if (s->final_sent || E.stopping)
		return;
	s->want = true;
	if (s->queued || s->later)
		return;
	s->queued = true;
	sub_ref(s);
	s->q_next = NULL;
	*E.q_tail = s;
	E.q_tail = &s->q_next;
}

static void host_of_listener(const tp_peer_t *src, char *host, size_t hostlen, uint16_t *port,
			     const char **transport)
{
	struct sockaddr_storage sa;
	tp_proto_t proto = src->proto;
	char ip[64] = "127.0.0.1";
	*port = 5060;
	int l = src->listener;
	if (l < 0) {
		/* A subscription reloaded after a restart: the first listener
		 * of the same transport and address family. */
		for (int i = 0; i < tp_listener_count(); i++) {
			if (tp_listener_addr(i, &proto, &sa) == 0 && proto == src->proto &&
			    sa.ss_family == src->addr.ss_family) {
				l = i;
				break;
			}
		}
	}
	if (l >= 0 && tp_listener_addr(l, &proto, &sa) == 0)
		tp_addr_to_str(&sa, ip, sizeof ip, port);
	*transport = src->proto == TP_TCP ? "TCP" : "UDP";
	if (E.advertised_host && *E.advertised_host)
		snprintf(host, hostlen, "%s", E.advertised_host);
	else if (strchr(ip, ':'))
		snprintf(host, hostlen, "[%s]", ip);
	else
		snprintf(host, hostlen, "%s", ip);
}

static void local_contact(const tp_peer_t *src, buf_t *out)
{
	char host[96];
	uint16_t port;
	const char *tr;
	host_of_listener(src, host, sizeof host, &port, &tr);
	buf_printf(out, "<sip:%s:%u%s>", host, port, src->proto == TP_TCP ? ";transport=tcp" : "");
}

/* Numeric host + port of a URI into dst->addr. */
static int uri_addr(const char *uri_str, tp_peer_t *dst)
{
	osip_uri_t *u = NULL;
	int err = -EINVAL;
	if (osip_uri_init(&u) != 0)
		return -ENOMEM;
	if (osip_uri_parse(u, uri_str) == 0 && u->host) {
		char host[64];
		snprintf(host, sizeof host, "%s", u->host);
		size_t n = strlen(host);
		if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
			memmove(host, host + 1, n - 2);
			host[n - 2] = '\0';
		}
		unsigned long port = u->port ? strtoul(u->port, NULL, 10) : 5060;
		if (port == 0 || port > 65535)
			port = 5060;
		osip_uri_param_t *tp = NULL;
		osip_uri_uparam_get_byname(u, "transport", &tp);
		if (tp_addr_from_str(host, (uint16_t)port, &dst->addr) == 0) {
			if (tp && tp->gvalue)
				dst->proto = strcasecmp(tp->gvalue, "tcp") == 0 ? TP_TCP : TP_UDP;
			err = 0;
		}
	}
	osip_uri_free(u);
	return err;
}

static void notify_dest(const ev_sub_t *s, tp_peer_t *dst)
{
	const tp_peer_t source = peer_unpack(&s->source);
	*dst = source;
	if (s->route_set) {
		/* First route: "<sip:host;lr>, <...>" */
		const char *lt = strchr(s->route_set, '<');
		const char *gt = lt ? strchr(lt, '>') : NULL;
		if (lt && gt && gt - lt - 1 < 1024) {
			char uri[1024];
			memcpy(uri, lt + 1, (size_t)(gt - lt - 1));
			uri[gt - lt - 1] = '\0';
			tp_peer_t d = source;
			if (uri_addr(uri, &d) == 0) {
				d.conn_id = 0;
				if (d.proto != source.proto)
					d.listener = -1;
				*dst = d;
			}
		}
		return;
	}
	if (dst->proto == TP_TCP && dst->conn_id && !tp_conn_alive(dst->conn_id)) {
		tp_peer_t d = source;
		d.conn_id = 0;
		if (uri_addr(s->contact, &d) == 0 && d.proto == TP_TCP)
			*dst = d;
	}
}

typedef struct notify_ctx {
	ev_sub_t *s;
	bool final;
	/* In the list of fresh NOTIFYs (sent less than NOTIFY_FRESH_MS ago,
	 * not answered): only those count against NOTIFY_MAX_INFLIGHT, so
	 * watchers that never answer cannot hold the budget of everyone. */
	bool counted;
	uint64_t sent_ms;
	struct notify_ctx *fprev, *fnext;
} notify_ctx_t;

static struct {
	notify_ctx_t *head, *tail;
} fresh;

static void fresh_remove(notify_ctx_t *c)
{
	if (!c->counted)
		return;
	if (c->fprev)
		c->fprev->fnext = c->fnext;
	else
		fresh.head = c->fnext;
	if (c->fnext)
		c->fnext->fprev = c->fprev;
	else
		fresh.tail = c->fprev;
	c->fprev = c->fnext = NULL;
	c->counted = false;
	E.notify_inflight--;
}

static void fresh_add(notify_ctx_t *c)
{
	c->counted = true;
	c->sent_ms = uv_now(E.loop);
	c->fprev = fresh.tail;
	c->fnext = NULL;
	if (fresh.tail)
		fresh.tail->fnext = c;
	else
		fresh.head = c;
	fresh.tail = c;
	E.notify_inflight++;
}

static void sub_terminate(ev_sub_t *s, const char *reason, bool notify);

static void notify_done(void *arg, const sipmsg_t *resp, int code, bool final)
{
	(void)resp;
	if (!final)
		return;
	notify_ctx_t *c = arg;
	ev_sub_t *s = c->s;
	s->outstanding = false;
	fresh_remove(c);
	if (!E.stopping) {
		if (code >= 200 && code < 300) {
			s->failures = 0;
		} else if (code == 481) {
			LOGI("event", "NOTIFY to %s for %s answered 481: subscription removed", s->w_idx->key,
			     s->r_idx->key);
			s->final_sent = true;
			sub_terminate(s, "timeout", false);
		} else {
			s->failures++;
			s->need_full = true;
			LOGI("event", "NOTIFY to %s for %s failed with %d (%u in a row)", s->w_idx->key,
			     s->r_idx->key, code, s->failures);
			if (s->failures >= E.o.notify_max_failures && !c->final) {
				s->final_sent = true;
				sub_terminate(s, "timeout", false);
			}
		}
		if (s->want && !s->final_sent)
			ev_sub_schedule(s);
	}
	sub_unref(s);
	free(c);
}

static uint32_t next_cseq(ev_sub_t *s)
{
	s->cseq++;
	if (s->cseq >= s->cseq_mark) {
		s->cseq_mark = s->cseq + CSEQ_BLOCK;
		if (s->state != EV_STATE_TERMINATED)
			mark_dirty(s);
	}
	return s->cseq;
}

static bool body_allowed(const ev_sub_t *s)
{
	if (s->auth == EV_AUTH_PENDING || s->auth == EV_AUTH_BLOCK)
		return false;
	if (s->state == EV_STATE_ACTIVE)
		return true;
	if (s->state == EV_STATE_TERMINATED)
		return !s->reason || strcmp(s->reason, "timeout") == 0;
	return false;
}

static int send_notify(ev_sub_t *s)
{
	tp_peer_t dst;
	notify_dest(s, &dst);
	char branch[48], host[96];
	uint16_t port;
	const char *tr;
	/* notify_done reads only the code: answers skip the full parse. */
	txn_new_light_branch(branch, sizeof branch);
	const tp_peer_t source = peer_unpack(&s->source);
	host_of_listener(&source, host, sizeof host, &port, &tr);
	if (dst.proto != source.proto)
		tr = dst.proto == TP_TCP ? "TCP" : "UDP";
	uint32_t cseq = next_cseq(s);
	bool final = s->state == EV_STATE_TERMINATED;

	buf_t body, msg;
	buf_init(&body, 0);
	buf_init(&msg, 0);
	const char *ctype = NULL;
	if (body_allowed(s) && s->pkg->body_for) {
		if (s->pkg->body_for(s, &body, &ctype) != 0 || body.err)
			buf_reset(&body);
	}
	s->need_full = false;

	buf_printf(&msg, "NOTIFY %s SIP/2.0\r\n", s->contact);
	buf_printf(&msg, "Via: SIP/2.0/%s %s:%u;branch=%s;rport\r\n", tr, host, port, branch);
	buf_puts(&msg, "Max-Forwards: 70\r\n");
	if (s->route_set)
		buf_printf(&msg, "Route: %s\r\n", s->route_set);
	buf_printf(&msg, "From: <%s>;tag=%s\r\n", s->local_uri, s->local_tag);
	buf_printf(&msg, "To: <%s>;tag=%s\r\n", s->remote_uri, s->remote_tag);
	buf_printf(&msg, "Call-ID: %s\r\n", s->call_id);
	buf_printf(&msg, "CSeq: %u NOTIFY\r\n", cseq);
	buf_puts(&msg, "Contact: ");
	local_contact(&source, &msg);
	buf_puts(&msg, "\r\n");
	buf_printf(&msg, "Event: %s%s%s\r\n", s->pkg->name, s->event_id[0] ? ";id=" : "", s->event_id);
	buf_puts(&msg, "Subscription-State: ");
	ev_format_substate(s->state, s->reason, s->expires_at - now_s(), &msg);
	buf_puts(&msg, "\r\n");
	buf_puts(&msg, "User-Agent: " SIP_SERVER_NAME "\r\n");
	if (s->pkg->extra_headers)
		buf_puts(&msg, s->pkg->extra_headers);
	if (body.len && ctype) {
		buf_printf(&msg, "Content-Type: %s\r\n", ctype);
		buf_printf(&msg, "Content-Length: %zu\r\n\r\n", body.len);
		buf_append(&msg, body.data, body.len);
	} else {
		buf_puts(&msg, "Content-Length: 0\r\n\r\n");
	}
	int err = msg.err;
	notify_ctx_t *c = NULL;
	if (!err) {
		c = calloc(1, sizeof *c);
		if (!c)
			err = -ENOMEM;
	}
	if (!err) {
		c->s = s;
		c->final = final;
		sub_ref(s);
		err = txn_client_start_flags(&dst, branch, "NOTIFY", msg.data, msg.len, notify_done, c,
					     TXN_LIGHT_RESPONSE);
		if (err) {
			sub_unref(s);
			free(c);
		} else {
			fresh_add(c);
		}
	}
	if (!err) {
		s->outstanding = true;
		s->last_sent_ms = uv_now(E.loop);
		if (final)
			s->final_sent = true;
		LOGD("event", "NOTIFY %u to %s for %s (%s)", cseq, s->w_idx->key, s->r_idx->key,
		     s->state == EV_STATE_ACTIVE ? "active" : s->state == EV_STATE_PENDING ? "pending"
											: "terminated");
	} else {
		LOGI("event", "cannot send NOTIFY to %s for %s: %s", s->w_idx->key, s->r_idx->key,
		     strerror(-err));
		s->need_full = true;
		if (final)
			s->final_sent = true; /* nothing else can be done for it */
	}
	buf_free(&body);
	buf_free(&msg);
	return err;
}

static void rate_fire(uv_timer_t *h)
{
	(void)h;
	E.rate_armed = false;
	ev_sub_t **later = E.later;
	size_t n = E.nlater;
	E.later = NULL;
	E.nlater = E.caplater = 0;
	for (size_t i = 0; i < n; i++) {
		ev_sub_t *s = later[i];
		s->later = false;
		if (s->want && !s->final_sent)
			ev_sub_schedule(s);
		sub_unref(s);
	}
	free(later);
	flush_notifies();
}

static void defer(ev_sub_t *s, uint64_t wait_ms)
{
	if (E.nlater == E.caplater) {
		size_t cap = E.caplater ? E.caplater * 2 : 32;
		ev_sub_t **p = realloc(E.later, cap * sizeof *p);
		if (!p) {
			send_notify(s);
			return;
		}
		E.later = p;
		E.caplater = cap;
	}
	sub_ref(s);
	s->later = true;
	E.later[E.nlater++] = s;
	if (!E.rate_armed) {
		E.rate_armed = true;
		uv_timer_start(&E.rate, rate_fire, wait_ms ? wait_ms : 1, 0);
	}
}

/* Backpressure: at most this many fresh NOTIFYs wait for their answer.  Beyond
 * it the queue waits (and coalesces: a subscription queued twice sends
 * only its newest state) instead of sending more, because NOTIFYs whose
 * 200s sit in our own socket queue would retransmit after T1 and feed an
 * overload with their own retransmissions. */
#define NOTIFY_MAX_INFLIGHT 2048
/* A NOTIFY unanswered after this long is retransmitting (or its watcher
 * is gone): it no longer counts against the budget. */
#define NOTIFY_FRESH_MS 1000

static void flush_notifies(void)
{
	uint64_t now_ms = uv_now(E.loop);
	while (fresh.head && now_ms - fresh.head->sent_ms >= NOTIFY_FRESH_MS)
		fresh_remove(fresh.head);
	ev_sub_t *s = E.q_head;
	E.q_head = NULL;
	E.q_tail = &E.q_head;
	uint64_t now = uv_now(E.loop);
	while (s) {
		if (E.notify_inflight >= NOTIFY_MAX_INFLIGHT && !E.stopping) {
			/* Put the rest back in front of anything queued
			 * meanwhile; the next loop turn goes on. */
			ev_sub_t *last = s;
			while (last->q_next)
				last = last->q_next;
			last->q_next = E.q_head;
			if (!E.q_head)
				E.q_tail = &last->q_next;
			E.q_head = s;
			return;
		}
		ev_sub_t *next = s->q_next;
		s->queued = false;
		s->q_next = NULL;
		if (s->want && !s->outstanding && !s->final_sent && !E.stopping &&
		    s->state != EV_STATE_TERMINATED && body_allowed(s) && s->pkg->hold_notify &&
		    s->pkg->hold_notify(s->r_idx->key)) {
			/* Uncommitted change: the package reschedules us once it
			 * is settled (s->want stays set). */
		} else if (s->want && !s->outstanding && !s->final_sent && !E.stopping) {
			uint64_t gap = E.o.notify_interval_ms;
			if (gap && s->last_sent_ms && now - s->last_sent_ms < gap &&
			    s->state != EV_STATE_TERMINATED) {
				defer(s, gap - (now - s->last_sent_ms));
			} else {
				s->want = false;
				send_notify(s);
			}
		}
		sub_unref(s);
		s = next;
	}
}

static void on_prepare(uv_prepare_t *h)
{
	(void)h;
	flush_notifies();
	pb_flush(&E.batch);
}

/* --- life cycle of a subscription ----------------------------------------- */

static void sub_terminate(ev_sub_t *s, const char *reason, bool notify)
{
	if (s->state == EV_STATE_TERMINATED)
		return;
	sub_ref(s);
	s->state = EV_STATE_TERMINATED;
	s->reason = reason;
	mark_dirty(s);
	announce(s, reason ? reason : "timeout");
	sub_unlink(s);
	if (notify)
		ev_sub_schedule(s);
	sub_unref(s);
}

void ev_foreach(const char *pkg_name, const char *resource, void (*fn)(ev_sub_t *sub, void *arg),
		void *arg)
{
	for (int i = 0; i < E.npkgs; i++) {
		if (pkg_name && strcasecmp(E.pkgs[i]->name, pkg_name) != 0)
			continue;
		/* Registered names are distinct (ev_register_package), and a
		 * list package shares its name with a registered one. */
		idx_t *r = idx_get(&E.resources, E.pkgs[i]->name, resource, false);
		for (ev_sub_t *s = r ? r->head : NULL; s;) {
			ev_sub_t *next = s->r_next;
			fn(s, arg);
			s = next;
		}
	}
}

/* Subscriptions of a resource, referenced, so callbacks may unlink them. */
static ev_sub_t **collect(const char *resource, size_t *n)
{
	idx_t *r[MAX_PACKAGES];
	size_t total = 0;
	*n = 0;
	for (int i = 0; i < E.npkgs; i++) {
		r[i] = idx_get(&E.resources, E.pkgs[i]->name, resource, false);
		total += r[i] ? r[i]->count : 0;
	}
	if (!total)
		return NULL;
	ev_sub_t **v = calloc(total, sizeof *v);
	if (!v)
		return NULL;
	for (int i = 0; i < E.npkgs; i++) {
		for (ev_sub_t *s = r[i] ? r[i]->head : NULL; s; s = s->r_next) {
			sub_ref(s);
			v[(*n)++] = s;
		}
	}
	return v;
}

void ev_sub_end(ev_sub_t *s, const char *reason)
{
	if (s && s->live)
		sub_terminate(s, reason, true);
}

void ev_resource_changed(const ev_package_t *pkg, const char *resource)
{
	if (pkg->changed)
		pkg->changed(resource);
	idx_t *r = idx_get(&E.resources, pkg->name, resource, false);
	for (ev_sub_t *s = r ? r->head : NULL; s; s = s->r_next) {
		if (s->pkg == pkg && s->state == EV_STATE_ACTIVE)
			ev_sub_schedule(s);
	}
	resource_change_observers(pkg, resource);
}

void ev_reauthorize(const char *resource)
{
	size_t n;
	ev_sub_t **v = collect(resource, &n);
	for (size_t i = 0; i < n; i++) {
		ev_sub_t *s = v[i];
		if (s->live && s->pkg->authorize && strcmp(s->w_idx->key, s->r_idx->key) != 0) {
			ev_auth_t na = s->pkg->authorize(s->w_idx->key, s->r_idx->key);
			if (na != s->auth) {
				LOGI("event", "%s -> %s (%s): %s -> %s", s->w_idx->key, s->r_idx->key, s->pkg->name,
				     ev_auth_name(s->auth), ev_auth_name(na));
				ev_state_t old = s->state;
				s->auth = na;
				if (na == EV_AUTH_BLOCK) {
					sub_terminate(s, "rejected", true);
				} else {
					s->state = na == EV_AUTH_PENDING ? EV_STATE_PENDING : EV_STATE_ACTIVE;
					s->need_full = true;
					mark_dirty(s);
					if (old != s->state)
						announce(s, s->state == EV_STATE_ACTIVE ? "approved" : "subscribe");
					ev_sub_schedule(s);
				}
			}
		}
		sub_unref(s);
	}
	free(v);
	resource_change_observers(NULL, resource);
}

/* --- SUBSCRIBE ------------------------------------------------------------ */

typedef struct sreq {
	txn_t *t;
	const ev_package_t *pkg;
	char event_id[128];
	uint32_t expires;
	ev_sub_t *sub;
	bool unsubscribe;
} sreq_t;

static void sreq_free(sreq_t *r)
{
	txn_unref(r->t);
	sub_unref(r->sub);
	free(r);
}

static void reply_503(txn_t *t, const char *why)
{
	char extra[64];
	snprintf(extra, sizeof extra, "Retry-After: %u\r\n", E.o.retry_after);
	txn_reply(t, 503, why, extra, NULL, NULL, 0);
}

static void reply_ok(sreq_t *r, uint32_t expires)
{
	buf_t extra;
	buf_init(&extra, 0);
	buf_printf(&extra, "Expires: %u\r\nContact: ", expires);
	local_contact(&txn_request(r->t)->src, &extra);
	buf_printf(&extra, "\r\n");
	const ev_package_t *pkg = r->sub ? r->sub->pkg : r->pkg;
	if (pkg->extra_headers)
		buf_puts(&extra, pkg->extra_headers);
	if (extra.err)
		txn_reply(r->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
	else
		txn_reply(r->t, 200, NULL, buf_cstr(&extra), NULL, NULL, 0);
	buf_free(&extra);
}

static char *uri_string(osip_uri_t *u)
{
	char *s = NULL;
	if (!u || osip_uri_to_str(u, &s) != 0 || !s)
		return NULL;
	char *copy = strdup(s);
	osip_free(s);
	return copy;
}

static char *route_set_of(const sipmsg_t *req)
{
	buf_t b;
	buf_init(&b, MAX_ROUTE_SET);
	int n = osip_list_size(&req->m->record_routes);
	for (int i = 0; i < n; i++) {
		osip_record_route_t *rr = osip_list_get(&req->m->record_routes, i);
		char *s = NULL;
		if (!rr || osip_record_route_to_str(rr, &s) != 0 || !s)
			continue;
		if (b.len)
			buf_puts(&b, ", ");
		buf_puts(&b, s);
		osip_free(s);
	}
	if (!b.len || b.err) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

static void initial_committed(void *arg, int err)
{
	sreq_t *r = arg;
	ev_sub_t *s = r->sub;
	if (err) {
		reply_503(r->t, "Service Unavailable - Database Unavailable");
		s->final_sent = true;
		sub_terminate(s, "deactivated", false);
	} else if (s->state == EV_STATE_TERMINATED) {
		/* Ended (rules) while its row was written: say so. */
		reply_ok(r, 0);
		ev_sub_schedule(s);
	} else {
		reply_ok(r, (uint32_t)(s->expires_at - now_s() > 0 ? s->expires_at - now_s() : 0));
		s->announced = true;
		announce(s, "subscribe");
		s->need_full = true;
		ev_sub_schedule(s);
	}
	sreq_free(r);
}

static void refresh_committed(void *arg, int err)
{
	sreq_t *r = arg;
	ev_sub_t *s = r->sub;
	if (err) {
		reply_503(r->t, "Service Unavailable - Database Unavailable");
	} else if (r->unsubscribe || s->state == EV_STATE_TERMINATED) {
		reply_ok(r, 0);
	} else {
		reply_ok(r, (uint32_t)(s->expires_at - now_s() > 0 ? s->expires_at - now_s() : 0));
	}
	/* RFC 6665 §4.2.1.2: a refresh (and an unsubscribe) triggers a
	 * NOTIFY with the current state. */
	s->need_full = true;
	ev_sub_schedule(s);
	sreq_free(r);
}

static ev_sub_t *find_dialog(const sipmsg_t *req, const char *event, const char *eid)
{
	const char *ltag = sipmsg_to_tag(req), *rtag = sipmsg_from_tag(req);
	const char *cid = sipmsg_call_id(req);
	if (!ltag || !rtag || !cid)
		return NULL;
	dlg_key_t k = {cid, ltag, rtag, event, eid};
	hnode_t *n = htable_find(&E.dialogs, dlg_hash(&k), dlg_eq, &k);
	return n ? container_of(n, ev_sub_t, dnode) : NULL;
}

static void process_in_dialog(sreq_t *r, const char *watcher)
{
	sipmsg_t *req = txn_request(r->t);
	ev_sub_t *s = find_dialog(req, r->pkg->name, r->event_id);
	if (!s) {
		txn_reply(r->t, 481, "Subscription Does Not Exist", NULL, NULL, NULL, 0);
		goto out;
	}
	if (strcmp(s->w_idx->key, watcher) != 0) {
		txn_reply(r->t, 403, "Forbidden - Not The Subscriber", NULL, NULL, NULL, 0);
		goto out;
	}
	if (req->cseq <= s->remote_cseq) {
		/* RFC 3261 §12.2.2 */
		txn_reply(r->t, 500, "Server Internal Error - CSeq Out Of Order", NULL, NULL, NULL, 0);
		goto out;
	}
	if (pb_overloaded(&E.batch)) {
		reply_503(r->t, "Service Unavailable - Too Many Pending Writes");
		goto out;
	}
	s->remote_cseq = req->cseq;
	osip_contact_t *ct = osip_list_get(&req->m->contacts, 0);
	if (ct && ct->url) {
		char *c = uri_string(ct->url);
		if (c && strlen(c) <= 1024)
			(void)sub_set_contact(s, c); /* out of memory: the old target stays */
		free(c);
	}
	peer_pack(&s->source, &req->src);
	sub_ref(s);
	r->sub = s;
	if (r->expires == 0) {
		r->unsubscribe = true;
		sub_terminate(s, "timeout", false);
	} else {
		s->expires_at = now_s() + r->expires;
		mark_dirty(s);
	}
	if (pb_commit(&E.batch, refresh_committed, r) != 0) {
		reply_503(r->t, "Service Unavailable - Out Of Memory");
		goto out;
	}
	return;
out:
	sreq_free(r);
}

static void process_initial(sreq_t *r, const char *watcher)
{
	sipmsg_t *req = txn_request(r->t);
	osip_message_t *m = req->m;
	char resource[AOR_MAX];
	ev_sub_t *s = NULL;
	if (!m->req_uri || !m->req_uri->host || !E.o.is_local_domain(m->req_uri->host) ||
	    sip_uri_aor(m->req_uri, resource, sizeof resource) != 0) {
		txn_reply(r->t, 404, "Not Found - Resource Not Served Here", NULL, NULL, NULL, 0);
		goto out;
	}
	bool self = strcmp(watcher, resource) == 0;
	if (r->pkg->self_only && !self) {
		LOGI("event", "%s may not subscribe to %s of %s", watcher, r->pkg->name, resource);
		txn_reply(r->t, 403, "Forbidden - Only The Resource May Subscribe", NULL, NULL, NULL, 0);
		goto out;
	}
	ev_auth_t auth = EV_AUTH_ALLOW;
	if (!self && r->pkg->authorize)
		auth = r->pkg->authorize(watcher, resource);
	if (auth == EV_AUTH_BLOCK) {
		LOGI("event", "%s blocked from %s (%s)", watcher, resource, r->pkg->name);
		txn_reply(r->t, 403, "Forbidden - Subscription Rejected", NULL, NULL, NULL, 0);
		goto out;
	}
	idx_t *w = idx_get(&E.watchers, NULL, watcher, false);
	if (r->expires && E.o.max_subs_per_watcher && w && w->count >= E.o.max_subs_per_watcher) {
		txn_reply(r->t, 403, "Forbidden - Too Many Subscriptions", NULL, NULL, NULL, 0);
		goto out;
	}
	if (r->expires && pb_overloaded(&E.batch)) {
		reply_503(r->t, "Service Unavailable - Too Many Pending Writes");
		goto out;
	}
	osip_contact_t *ct = osip_list_get(&m->contacts, 0);
	char id[25];
	sip_random_token(id, sizeof id);
	char *luri = uri_string(m->to->url), *ruri = uri_string(m->from->url);
	char *contact = uri_string(ct->url), *route_set = route_set_of(req);
	const char *call_id = sipmsg_call_id(req), *ltag = txn_to_tag(r->t);
	const char *rtag = sipmsg_from_tag(req);
	if (contact && strlen(contact) > 1024) {
		txn_reply(r->t, 400, "Bad Request - Contact URI Too Long", NULL, NULL, NULL, 0);
	} else if (luri && ruri && contact && call_id && ltag && rtag) {
		sub_strings_t v = {id,	 r->event_id, resource,	 watcher, call_id,  ltag,
				   rtag, luri,	      ruri,	 route_set, contact};
		s = sub_new(r->pkg, &v);
		if (!s)
			txn_reply(r->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
	} else {
		txn_reply(r->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
	}
	free(luri);
	free(ruri);
	free(contact);
	free(route_set);
	if (!s)
		goto out;
	peer_pack(&s->source, &req->src);
	s->cseq = 0;
	s->cseq_mark = CSEQ_BLOCK;
	s->remote_cseq = req->cseq;
	s->created_at = now_s();
	s->expires_at = s->created_at + r->expires;
	s->auth = auth;
	s->state = auth == EV_AUTH_PENDING ? EV_STATE_PENDING : EV_STATE_ACTIVE;
	s->need_full = true;
	if (r->expires == 0) {
		/* A fetch (RFC 6665 §4.4.3): one NOTIFY with the current
		 * state, terminated; nothing is stored. */
		s->fetch = true;
		s->state = EV_STATE_TERMINATED;
		s->reason = "timeout";
		reply_ok(r, 0);
		ev_sub_schedule(s);
		goto out;
	}
	if (sub_link(s) != 0) {
		txn_reply(r->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		goto out;
	}
	mark_dirty(s);
	LOGD("event", "new %s subscription %s: %s -> %s (%s, %u s)", s->pkg->name, s->id, watcher,
	     resource, ev_auth_name(auth), r->expires);
	r->sub = s;
	s = NULL;
	if (pb_commit(&E.batch, initial_committed, r) != 0) {
		reply_503(r->t, "Service Unavailable - Out Of Memory");
		sub_terminate(r->sub, "deactivated", false);
		goto out;
	}
	return;
out:
	sub_unref(s);
	sreq_free(r);
}

static void process(sreq_t *r, const char *auth_user)
{
	sipmsg_t *req = txn_request(r->t);
	char watcher[AOR_MAX];
	if (sip_uri_aor(req->m->from->url, watcher, sizeof watcher) != 0) {
		txn_reply(r->t, 400, "Bad Request - Invalid From URI", NULL, NULL, NULL, 0);
		sreq_free(r);
		return;
	}
	if (auth_user && *auth_user &&
	    (!req->m->from->url->username || strcmp(auth_user, req->m->from->url->username) != 0)) {
		LOGI("event", "%s may not subscribe as %s", auth_user, watcher);
		txn_reply(r->t, 403, "Forbidden - Credentials Do Not Match From", NULL, NULL, NULL, 0);
		sreq_free(r);
		return;
	}
	if (sipmsg_to_tag(req))
		process_in_dialog(r, watcher);
	else
		process_initial(r, watcher);
}

static void auth_done(void *arg, authn_result_t result, const char *user)
{
	sreq_t *r = arg;
	if (result != AUTHN_OK || txn_answered(r->t)) {
		sreq_free(r);
		return;
	}
	process(r, user ? user : "");
}

/* Whether some type of pkg is acceptable per the Accept headers. */
static bool accept_ok(const sipmsg_t *req, const ev_package_t *pkg)
{
	int n = osip_list_size(&req->m->accepts);
	if (n <= 0)
		return true; /* no Accept: the package default (RFC 6665 §7.2) */
	buf_t list;
	buf_init(&list, 8192);
	for (int i = 0; i < n; i++) {
		osip_accept_t *a = osip_list_get(&req->m->accepts, i);
		if (a && a->type && a->subtype)
			buf_printf(&list, "%s%s/%s", list.len ? ", " : "", a->type, a->subtype);
	}
	bool ok = false;
	if (!list.len) {
		ok = true; /* "Accept:" with nothing we could parse: be lenient */
	} else {
		for (const char *const *t = pkg->notify_types; t && *t && !ok; t++)
			ok = ev_accept_allows(buf_cstr(&list), *t);
	}
	buf_free(&list);
	return ok;
}

void ev_handle_subscribe(txn_t *t, sipmsg_t *req)
{
	char pkgname[64], eid[128];
	const char *ev = sipmsg_header(req, "event", "o");
	if (!ev) {
		char extra[600];
		snprintf(extra, sizeof extra, "Allow-Events: %s\r\n", router_allow_events());
		txn_reply(t, 489, "Bad Event - Missing Event Header", extra, NULL, NULL, 0);
		return;
	}
	if (ev_parse_event(ev, pkgname, sizeof pkgname, eid, sizeof eid) != 0) {
		txn_reply(t, 400, "Bad Request - Malformed Event", NULL, NULL, NULL, 0);
		return;
	}
	const ev_package_t *pkg = ev_find_package(pkgname);
	if (!pkg) {
		char extra[600];
		snprintf(extra, sizeof extra, "Allow-Events: %s\r\n", router_allow_events());
		txn_reply(t, 489, NULL, extra, NULL, NULL, 0);
		return;
	}
	if (!sipmsg_from_tag(req)) {
		txn_reply(t, 400, "Bad Request - Missing From Tag", NULL, NULL, NULL, 0);
		return;
	}
	bool in_dialog = sipmsg_to_tag(req) != NULL;
	if (!in_dialog) {
		osip_contact_t *ct = osip_list_get(&req->m->contacts, 0);
		if (!ct || !ct->url) {
			txn_reply(t, 400, "Bad Request - Missing Contact", NULL, NULL, NULL, 0);
			return;
		}
	}
	if (!in_dialog && E.list_resolver) {
		char target[AOR_MAX];
		const ev_package_t *lp = NULL;
		if (req->m->req_uri && req->m->req_uri->host &&
		    E.o.is_local_domain(req->m->req_uri->host) &&
		    sip_uri_aor(req->m->req_uri, target, sizeof target) == 0)
			lp = E.list_resolver(pkg, target);
		if (lp) {
			if (!sipmsg_has_option_tag(req, "supported", "k", "eventlist")) {
				/* RFC 4662 §4.1 */
				txn_reply(t, 421, "Extension Required - eventlist",
					  "Require: eventlist\r\n", NULL, NULL, 0);
				return;
			}
			pkg = lp;
		}
	}
	if (!accept_ok(req, pkg)) {
		buf_t extra;
		buf_init(&extra, 0);
		buf_puts(&extra, "Accept: ");
		for (const char *const *ty = pkg->notify_types; ty && *ty; ty++)
			buf_printf(&extra, "%s%s", ty == pkg->notify_types ? "" : ", ", *ty);
		buf_puts(&extra, "\r\n");
		txn_reply(t, 406, NULL, extra.err ? NULL : buf_cstr(&extra), NULL, NULL, 0);
		buf_free(&extra);
		return;
	}
	uint32_t expires = pkg->default_expires ? pkg->default_expires : 3600;
	int err = sipmsg_header_uint(req, "expires", &expires);
	if (err == -EINVAL) {
		txn_reply(t, 400, "Bad Request - Malformed Expires", NULL, NULL, NULL, 0);
		return;
	}
	if (err == -ENOENT)
		expires = pkg->default_expires ? pkg->default_expires : 3600;
	if (expires != 0 && expires < E.o.min_expires) {
		char extra[64];
		snprintf(extra, sizeof extra, "Min-Expires: %u\r\n", E.o.min_expires);
		txn_reply(t, 423, NULL, extra, NULL, NULL, 0);
		return;
	}
	if (expires > E.o.max_expires)
		expires = E.o.max_expires;
	if (E.stopping) {
		reply_503(t, "Service Unavailable - Shutting Down");
		return;
	}
	sreq_t *r = calloc(1, sizeof *r);
	if (!r) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	r->t = t;
	txn_ref(t);
	r->pkg = pkg;
	r->expires = expires;
	snprintf(r->event_id, sizeof r->event_id, "%s", eid);

	/* Local users authenticate (407, RFC 3261 §22.3: we answer as the
	 * presence agent on behalf of the resource); watchers of other
	 * domains cannot, and are subject to the resource's rules. */
	osip_uri_t *from = req->m->from->url;
	if (from && from->host && E.o.is_local_domain(from->host) && E.o.auth && authn_enabled()) {
		char realm[256], user[AUTH_USER_MAX];
		snprintf(realm, sizeof realm, "%s", from->host);
		authn_result_t ar = authn_check(t, realm, true, user, sizeof user, auth_done, r);
		if (ar == AUTHN_OK)
			process(r, user);
		else if (ar == AUTHN_ANSWERED)
			sreq_free(r);
		return;
	}
	process(r, "");
}

/* --- housekeeping --------------------------------------------------------- */

static void purge_done(void *arg, int err, PGresult *res)
{
	(void)arg;
	if (!err && res && PQcmdTuples(res)[0] && strcmp(PQcmdTuples(res), "0") != 0)
		LOGD("event", "purged %s expired subscription row(s)", PQcmdTuples(res));
}

/* Picks expired subscriptions and takes a reference on each. */
static bool sub_expired_pick(hnode_t *e, void *arg)
{
	ev_sub_t *s = container_of(e, ev_sub_t, dnode);
	if (s->expires_at > *(int64_t *)arg)
		return false;
	sub_ref(s);
	return true;
}

/* Once a second: expire subscriptions in a slice of the dialog table (a
 * quarter of the buckets, at least 1024), so the cost per tick is bounded;
 * every 30 s delete up to 1000 expired rows (left by a stop). */
static void tick(uv_timer_t *h)
{
	(void)h;
	if (E.stopping)
		return;
	int64_t now = now_s();
	size_t n = 0;
	hnode_t **expired = htable_slice_collect(&E.dialogs, &E.sweep_bucket, 1024, sub_expired_pick, &now, &n);
	for (size_t i = 0; i < n; i++) {
		ev_sub_t *s = container_of(expired[i], ev_sub_t, dnode);
		LOGD("event", "subscription %s (%s -> %s) expired", s->id, s->w_idx->key, s->r_idx->key);
		sub_terminate(s, "timeout", true);
		sub_unref(s);
	}
	free(expired);
	heap_release_tick();
	uint64_t now_ms = uv_now(E.loop);
	if (now_ms - E.last_purge >= 30000 && db_is_up()) {
		E.last_purge = now_ms;
		char nowbuf[24];
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now);
		const char *params[1] = {nowbuf};
		db_exec("ev_purge", 1, params, purge_done, NULL);
	}
}

/* --- start and stop ------------------------------------------------------- */

static const char *col(PGresult *r, int row, int c)
{
	return PQgetisnull(r, row, c) ? NULL : PQgetvalue(r, row, c);
}

static void load_rows(PGresult *r)
{
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		const ev_package_t *pkg = ev_find_package(PQgetvalue(r, i, 1));
		if (!pkg)
			continue;
		if (E.list_resolver) {
			const ev_package_t *lp = E.list_resolver(pkg, PQgetvalue(r, i, 3));
			if (lp)
				pkg = lp;
		}
		sub_strings_t v = {col(r, i, 0),  col(r, i, 2),	 col(r, i, 3), col(r, i, 4),
				   col(r, i, 5),  col(r, i, 6),	 col(r, i, 7), col(r, i, 8),
				   col(r, i, 9),  col(r, i, 11), col(r, i, 10)};
		if (!v.id || !v.event_id || !v.resource || !v.watcher || !v.call_id || !v.local_tag ||
		    !v.remote_tag || !v.local_uri || !v.remote_uri || !v.contact)
			continue;
		ev_sub_t *s = sub_new(pkg, &v);
		if (!s)
			continue;
		tp_peer_t src;
		memset(&src, 0, sizeof src);
		if (loc_source_parse(PQgetvalue(r, i, 12), &src) != 0)
			src.proto = TP_UDP;
		src.listener = -1;
		peer_pack(&s->source, &src);
		s->cseq = (uint32_t)strtoul(PQgetvalue(r, i, 13), NULL, 10);
		s->cseq_mark = s->cseq; /* the next NOTIFY reserves a new block */
		s->remote_cseq = (uint32_t)strtoul(PQgetvalue(r, i, 14), NULL, 10);
		s->expires_at = strtoll(PQgetvalue(r, i, 15), NULL, 10);
		s->created_at = strtoll(PQgetvalue(r, i, 17), NULL, 10);
		bool pending = strcmp(PQgetvalue(r, i, 16), "pending") == 0;
		s->auth = pending ? EV_AUTH_PENDING : EV_AUTH_ALLOW;
		s->state = pending ? EV_STATE_PENDING : EV_STATE_ACTIVE;
		s->announced = true;
		if (sub_link(s) != 0) {
			sub_unref(s);
			continue;
		}
		/* The rules are the truth (they may have changed while we were
		 * down; a polite block is stored as active): a watcher approved
		 * meanwhile becomes active and is told at once.  A block is
		 * applied by the next ev_reauthorize(). */
		if (pkg->authorize && strcmp(s->w_idx->key, s->r_idx->key) != 0) {
			ev_auth_t a = pkg->authorize(s->w_idx->key, s->r_idx->key);
			if (a != EV_AUTH_BLOCK && a != s->auth) {
				ev_state_t st = a == EV_AUTH_PENDING ? EV_STATE_PENDING : EV_STATE_ACTIVE;
				s->auth = a;
				if (st != s->state) {
					s->state = st;
					s->need_full = true;
					mark_dirty(s);
					ev_sub_schedule(s);
				}
			}
		}
		sub_unref(s); /* the indexes keep theirs */
	}
}

static int startup_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	load_rows(r);
	return 0;
}

int ev_init(uv_loop_t *loop, const ev_options_t *opts, const char *conninfo)
{
	E.loop = loop;
	E.o = *opts;
	if (!E.o.notify_max_failures)
		E.o.notify_max_failures = 3;
	if (!E.o.max_expires)
		E.o.max_expires = 3600;
	E.node_name = strdup(opts->node_name ? opts->node_name : "");
	E.advertised_host = opts->advertised_host ? strdup(opts->advertised_host) : NULL;
	E.q_tail = &E.q_head;
	pb_init(&E.batch, &ROW_OPS, "subscription", 50000);
	int err = htable_init(&E.dialogs, 1024);
	if (!err)
		err = htable_init(&E.resources, 1024);
	if (!err)
		err = htable_init(&E.watchers, 1024);
	if (!err)
		err = db_prepare("ev_batch", SQL_BATCH);
	if (!err)
		err = db_prepare("ev_purge", SQL_PURGE);
	if (err)
		return err;
	if (conninfo) {
		char nowbuf[24];
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
		/* A node serves the dialogs it created (several nodes may share
		 * the table). */
		const char *params[2] = {nowbuf, E.node_name};
		err = db_load_sync(conninfo, "subscriptions", SQL_LOAD, 2, params, startup_rows, NULL);
		if (err)
			return err;
		LOGI("event", "loaded %lu subscription(s)", E.nsubs);
	}
	uv_prepare_init(loop, &E.prepare);
	uv_prepare_start(&E.prepare, on_prepare);
	uv_unref((uv_handle_t *)&E.prepare);
	uv_timer_init(loop, &E.tick);
	uv_timer_start(&E.tick, tick, 1000, 1000);
	uv_unref((uv_handle_t *)&E.tick);
	uv_timer_init(loop, &E.rate);
	uv_unref((uv_handle_t *)&E.rate);
	E.last_purge = uv_now(loop);
	E.started = true;
	return 0;
}

void ev_stop(void)
{
	if (!E.started)
		return;
	/* Queue what is dirty now so db_shutdown commits it. */
	pb_flush(&E.batch);
	E.stopping = true;
}

static void free_dialog(hnode_t *n, void *arg)
{
	(void)arg;
	sub_unlink(container_of(n, ev_sub_t, dnode));
}

void ev_shutdown(void)
{
	if (!E.started)
		return;
	E.stopping = true;
	uv_prepare_stop(&E.prepare);
	uv_close((uv_handle_t *)&E.prepare, NULL);
	uv_timer_stop(&E.tick);
	uv_close((uv_handle_t *)&E.tick, NULL);
	uv_timer_stop(&E.rate);
	uv_close((uv_handle_t *)&E.rate, NULL);
	ev_sub_t *s = E.q_head;
	while (s) {
		ev_sub_t *next = s->q_next;
		s->queued = false;
		sub_unref(s);
		s = next;
	}
	E.q_head = NULL;
	E.q_tail = &E.q_head;
	for (size_t i = 0; i < E.nlater; i++)
		sub_unref(E.later[i]);
	free(E.later);
	pb_shutdown(&E.batch);
	htable_foreach(&E.dialogs, free_dialog, NULL);
	htable_destroy(&E.dialogs);
	htable_destroy(&E.resources);
	htable_destroy(&E.watchers);
	free(E.node_name);
	free(E.advertised_host);
	/* The handles embedded in E close on the next loop run: leave them
	 * (and the package table) alone. */
	E.node_name = E.advertised_host = NULL;
	E.later = NULL;
	E.nlater = E.caplater = 0;
	E.nsubs = 0;
	E.started = false;
}
