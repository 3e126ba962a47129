/* The resource list server (RFC 4662) for presence: a SUBSCRIBE to a
 * list service URI (rls-services, RFC 4826 §4) with "Supported:
 * eventlist" becomes one subscription whose NOTIFYs are
 * multipart/related: an RLMI document (application/rlmi+xml) and one
 * PIDF part per resource that has state.
 *
 *   xcap_store (rls-services, resource-lists of an owner)
 *        | change observer: the owner's services are rebuilt
 *        v
 *   services: uri -> {owner, resources[]}      members: resource -> services
 *        ^                                              |
 *        | ev_set_list_resolver: SUBSCRIBE to a         | ev_on_resource_change:
 *        | service uri gets pkg_rls_presence            | a buddy's presence or rules
 *        |                                              v changed -> dirty in each list
 *   list subscriptions (the event framework) <----- ev_sub_schedule: one NOTIFY per
 *                                                   loop turn, however many buddies changed
 *
 * Back-end state comes straight from the in-memory presence state
 * (pres_document, rules_eval): no SIP round trip to ourselves.  Buddies
 * in other domains are shown "pending": this server does not subscribe to
 * other presence servers (documented in docs/ARCHITECTURE.md).
 *
 * State shown per resource (RLMI instance state): rules say allow or
 * polite-block -> active with its PIDF (polite-block: the neutral closed
 * document); pending -> pending, no part; block -> terminated,
 * reason=rejected.  The first NOTIFY, a refresh, a NOTIFY after a failed
 * one, and any change of the list's membership carry full state; other
 * NOTIFYs carry the changed resources only.  The RLMI version is the
 * NOTIFY's CSeq, which grows by one per NOTIFY and keeps growing across
 * restarts. */
#include <errno.h>
#include <osipparser2/osip_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "presence/buddylist.h"
#include "presence/pkgs.h"
#include "presence/rules.h"
#include "presence/xcap_store.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/sip/sipmsg.h"

#define AOR_LEN 256

typedef struct svc {
	hnode_t node;
	char *uri;   /* AOR form: sip:alice-friends@example.test */
	char *owner; /* alice@example.test */
	char *watcher; /* sip:alice@example.test: who may subscribe */
	char *name;  /* list name for RLMI <name>, or NULL */
	rl_entry_t *res; /* uri in AOR form when it parses as one */
	size_t n;
	unsigned gen; /* grows when the membership changes */
	bool mark;    /* rebuild bookkeeping */
} svc_t;

typedef struct member {
	hnode_t node;
	char *resource;
	svc_t **v;
	size_t n, cap;
} member_t;

typedef struct lsub {
	unsigned gen; /* svc gen last sent in full */
	bool sent_full;
	char **dirty;
	size_t ndirty, cap;
} lsub_t;

static struct {
	htable_t svcs, members;
	bool (*is_local_domain)(const char *host);
	unsigned gen;
	bool started;
} RL;

static const char *const TYPES[] = {"multipart/related", "application/rlmi+xml",
				    "application/pidf+xml", NULL};

/* --- keys ---------------------------------------------------------------------- */

static bool svc_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, svc_t, node)->uri, key) == 0;
}

static svc_t *svc_find(const char *uri)
{
	hnode_t *n = htable_find(&RL.svcs, hash_str(uri), svc_eq, uri);
	return n ? container_of(n, svc_t, node) : NULL;
}

static bool member_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, member_t, node)->resource, key) == 0;
}

static member_t *member_find(const char *resource)
{
	hnode_t *n = htable_find(&RL.members, hash_str(resource), member_eq, resource);
	return n ? container_of(n, member_t, node) : NULL;
}

/* "sip:Bob@Example.TEST;x=y" -> "sip:Bob@example.test" (the framework's
 * resource form).  -EINVAL when not a sip(s) URI with a user. */
static int aor_of(const char *uri, char *out, size_t outlen)
{
	osip_uri_t *u = NULL;
	if (osip_uri_init(&u) != 0)
		return -ENOMEM;
	int err = osip_uri_parse(u, uri) == 0 ? sip_uri_aor(u, out, outlen) : -EINVAL;
	osip_uri_free(u);
	return err;
}

static const char *host_of(const char *aor)
{
	const char *at = strrchr(aor, '@');
	return at ? at + 1 : "";
}

/* --- the service table ------------------------------------------------------------ */

static void member_add(const char *resource, svc_t *s)
{
	member_t *m = member_find(resource);
	if (!m) {
		m = calloc(1, sizeof *m);
		if (!m || !(m->resource = strdup(resource))) {
			free(m);
			return;
		}
		htable_insert(&RL.members, &m->node, hash_str(resource));
	}
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i] == s)
			return;
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 4;
		svc_t **v = realloc(m->v, cap * sizeof *v);
		if (!v)
			return;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n++] = s;
}

static void member_del(const char *resource, svc_t *s)
{
	member_t *m = member_find(resource);
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i] == s) {
			m->v[i] = m->v[--m->n];
			break;
		}
	if (!m->n) {
		htable_remove(&RL.members, &m->node);
		free(m->v);
		free(m->resource);
		free(m);
	}
}

static void svc_set_resources(svc_t *s, rl_entry_t *res, size_t n)
{
	bool same = n == s->n;
	for (size_t i = 0; same && i < n; i++)
		same = strcmp(res[i].uri, s->res[i].uri) == 0 &&
		       ((!res[i].name && !s->res[i].name) ||
			(res[i].name && s->res[i].name && strcmp(res[i].name, s->res[i].name) == 0));
	if (same) {
		rl_entries_free(res, n);
		return;
	}
	for (size_t i = 0; i < s->n; i++)
		member_del(s->res[i].uri, s);
	rl_entries_free(s->res, s->n);
	s->res = res;
	s->n = n;
	for (size_t i = 0; i < n; i++)
		member_add(res[i].uri, s);
	s->gen = ++RL.gen;
}

static void svc_free(svc_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		member_del(s->res[i].uri, s);
	rl_entries_free(s->res, s->n);
	free(s->uri);
	free(s->owner);
	free(s->watcher);
	free(s->name);
	free(s);
}

/* Entries in AOR form (those that are SIP URIs; others kept as given, so
 * they show up as pending). */
static void normalise(rl_entry_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char aor[AOR_LEN];
		if (aor_of(v[i].uri, aor, sizeof aor) == 0) {
			char *c = strdup(aor);
			if (c) {
				free(v[i].uri);
				v[i].uri = c;
			}
		}
	}
}

/* Dedupes after normalisation: <sip:a@X> and <sip:a@x> are one buddy. */
static size_t dedupe(rl_entry_t *v, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(v[j].uri, v[i].uri) == 0;
		if (dup) {
			free(v[i].uri);
			free(v[i].name);
		} else {
			v[k++] = v[i];
		}
	}
	return k;
}

static int resolve(const char *owner, rl_service_t *sv, rl_entry_t **out, size_t *n, char **name)
{
	*name = NULL;
	if (!sv->list_ref) {
		*out = sv->entries;
		*n = sv->n;
		sv->entries = NULL;
		sv->n = 0;
		return 0;
	}
	rl_ref_t ref;
	if (rl_ref_parse(sv->list_ref, &ref) != 0) {
		LOGW("rls", "service %s: cannot follow resource-list %s", sv->uri, sv->list_ref);
		return -EINVAL;
	}
	if (strcmp(ref.owner, owner) != 0) {
		/* Another user's list would leak their buddies to this owner. */
		LOGW("rls", "service %s of %s refers to a list of %s: ignored", sv->uri, owner,
		     ref.owner);
		return -EPERM;
	}
	const xstore_doc_t *d = xstore_get("resource-lists", ref.owner, ref.doc);
	if (!d) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	if (ref.depth && ref.pos[ref.depth - 1] == 0)
		*name = strdup(ref.name[ref.depth - 1]);
	int err = rl_list_entries(d->body, d->len, &ref, out, n);
	if (err == -ENOENT) {
		*out = NULL;
		*n = 0;
		return 0;
	}
	return err;
}

typedef struct rebuild {
	const char *owner;
	char **vanished;
	size_t nvanished;
} rebuild_t;

static void apply_services_doc(const xstore_doc_t *doc, void *arg)
{
	rebuild_t *rb = arg;
	rl_service_t *sv = NULL;
	size_t n = 0;
	char why[160];
	if (rls_services_parse(doc->body, doc->len, &sv, &n, why, sizeof why) != 0) {
		LOGW("rls", "rls-services %s of %s unusable: %s", doc->name, doc->owner, why);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char uri[AOR_LEN];
		if (!sv[i].presence || aor_of(sv[i].uri, uri, sizeof uri) != 0 ||
		    !RL.is_local_domain(host_of(uri)))
			continue;
		svc_t *s = svc_find(uri);
		if (s && strcmp(s->owner, rb->owner) != 0) {
			LOGW("rls", "service %s of %s already belongs to %s: ignored", uri, rb->owner,
			     s->owner);
			continue;
		}
		rl_entry_t *res = NULL;
		size_t nres = 0;
		char *name = NULL;
		if (resolve(rb->owner, &sv[i], &res, &nres, &name) != 0) {
			res = NULL;
			nres = 0;
		}
		normalise(res, nres);
		nres = dedupe(res, nres);
		if (!s) {
			s = calloc(1, sizeof *s);
			size_t wl = strlen(rb->owner) + 5;
			if (!s || !(s->uri = strdup(uri)) || !(s->owner = strdup(rb->owner)) ||
			    !(s->watcher = malloc(wl))) {
				if (s) {
					free(s->uri);
					free(s->owner);
					free(s);
				}
				rl_entries_free(res, nres);
				free(name);
				continue;
			}
			snprintf(s->watcher, wl, "sip:%s", rb->owner);
			htable_insert(&RL.svcs, &s->node, hash_str(uri));
			LOGI("rls", "list service %s of %s", uri, rb->owner);
		}
		free(s->name);
		s->name = name;
		s->mark = false;
		svc_set_resources(s, res, nres);
	}
	rl_services_free(sv, n);
}

static void mark_owner(hnode_t *n, void *arg)
{
	rebuild_t *rb = arg;
	svc_t *s = container_of(n, svc_t, node);
	if (strcmp(s->owner, rb->owner) == 0)
		s->mark = true;
}

static void drop_marked(hnode_t *n, void *arg)
{
	rebuild_t *rb = arg;
	svc_t *s = container_of(n, svc_t, node);
	if (!s->mark)
		return;
	char **v = realloc(rb->vanished, (rb->nvanished + 1) * sizeof *v);
	if (v) {
		rb->vanished = v;
		v[rb->nvanished] = strdup(s->uri);
		if (v[rb->nvanished])
			rb->nvanished++;
	}
	LOGI("rls", "list service %s of %s removed", s->uri, s->owner);
	htable_remove(&RL.svcs, n);
	svc_free(s);
}

/* Schedules a NOTIFY (full state) for a list subscription of svc arg
 * whose membership changed since it was last told. */
static void schedule_if_changed(ev_sub_t *sub, void *arg)
{
	const svc_t *s = arg;
	const lsub_t *l = ev_sub_data(sub);
	if (ev_sub_package(sub) == &pkg_rls_presence && ev_sub_state(sub) == EV_STATE_ACTIVE &&
	    (!l || l->gen != s->gen))
		ev_sub_schedule(sub);
}

static void schedule_owner_svc(hnode_t *n, void *arg)
{
	svc_t *s = container_of(n, svc_t, node);
	if (strcmp(s->owner, arg) == 0)
		ev_foreach(pkg_rls_presence.name, s->uri, schedule_if_changed, s);
}

static void rebuild_owner(const char *owner)
{
	rebuild_t rb = { .owner = owner };
	htable_foreach(&RL.svcs, mark_owner, &rb);
	xstore_foreach("rls-services", owner, apply_services_doc, &rb);
	htable_foreach(&RL.svcs, drop_marked, &rb);
	/* Subscriptions to a service that is gone end (authorize now says
	 * block: terminated;reason=rejected). */
	for (size_t i = 0; i < rb.nvanished; i++) {
		ev_reauthorize(rb.vanished[i]);
		free(rb.vanished[i]);
	}
	free(rb.vanished);
}

static void on_doc_change(void *arg, const char *auid, const char *owner, const char *name,
			  const xstore_doc_t *doc)
{
	(void)arg;
	(void)name;
	(void)doc;
	if (strcmp(auid, "rls-services") != 0 && strcmp(auid, "resource-lists") != 0)
		return;
	char who[XSTORE_MAX_NAME];
	snprintf(who, sizeof who, "%s", owner);
	rebuild_owner(who);
	/* Lists whose membership changed tell their subscribers at once
	 * (body_for compares generations and sends full state). */
	htable_foreach(&RL.svcs, schedule_owner_svc, who);
}

/* --- following the buddies -------------------------------------------------------- */

static lsub_t *lsub_of(ev_sub_t *sub)
{
	lsub_t *l = ev_sub_data(sub);
	if (!l) {
		l = calloc(1, sizeof *l);
		if (l)
			ev_sub_set_data(sub, l);
	}
	return l;
}

static void lsub_mark(lsub_t *l, const char *resource)
{
	for (size_t i = 0; i < l->ndirty; i++)
		if (strcmp(l->dirty[i], resource) == 0)
			return;
	if (l->ndirty == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		char **v = realloc(l->dirty, cap * sizeof *v);
		if (!v)
			return;
		l->dirty = v;
		l->cap = cap;
	}
	char *c = strdup(resource);
	if (c)
		l->dirty[l->ndirty++] = c;
}

static void lsub_clear(lsub_t *l)
{
	for (size_t i = 0; i < l->ndirty; i++)
		free(l->dirty[i]);
	l->ndirty = 0;
}

static void mark_sub(ev_sub_t *sub, void *arg)
{
	const char *resource = arg;
	if (ev_sub_package(sub) != &pkg_rls_presence || ev_sub_state(sub) != EV_STATE_ACTIVE)
		return;
	lsub_t *l = lsub_of(sub);
	if (!l)
		return;
	lsub_mark(l, resource);
	ev_sub_schedule(sub);
}

static void on_resource_change(void *arg, const ev_package_t *pkg, const char *resource)
{
	(void)arg;
	if (pkg && pkg != &pkg_presence)
		return;
	member_t *m = member_find(resource);
	if (!m)
		return;
	/* A change that is not committed yet is told when it settles (the
	 * presence package calls ev_resource_changed again then). */
	if (pkg && pkg->hold_notify && pkg->hold_notify(resource))
		return;
	/* Copy: ev_foreach callbacks do not change the membership, but be
	 * safe against a rebuild from an observer. */
	size_t n = m->n;
	svc_t **v = malloc(n * sizeof *v);
	if (!v)
		return;
	memcpy(v, m->v, n * sizeof *v);
	for (size_t i = 0; i < n; i++)
		ev_foreach(pkg_rls_presence.name, v[i]->uri, mark_sub, (void *)resource);
	free(v);
}

/* --- the NOTIFY body ---------------------------------------------------------------- */

static void instance_id(const char *resource, char out[12])
{
	snprintf(out, 12, "r%08x", (unsigned)(hash_str(resource) & 0xffffffffu));
}

static void part_for(const svc_t *s, const rl_entry_t *e, rls_part_t *p, buf_t *doc)
{
	memset(p, 0, sizeof *p);
	p->uri = e->uri;
	p->name = e->name;
	if (strncmp(e->uri, "sip:", 4) != 0 || !RL.is_local_domain(host_of(e->uri))) {
		p->state = "pending"; /* not followed: see the header comment */
		return;
	}
	ev_auth_t a = strcmp(s->watcher, e->uri) == 0 ? EV_AUTH_ALLOW : rules_eval(e->uri, s->watcher);
	switch (a) {
	case EV_AUTH_PENDING:
		p->state = "pending";
		return;
	case EV_AUTH_BLOCK:
		p->state = "terminated";
		p->reason = "rejected";
		return;
	default:
		break;
	}
	size_t before = doc->len;
	int err = pres_document(e->uri, a, doc);
	if (err || doc->err) {
		doc->len = before;
		doc->err = 0;
		p->state = "pending";
		return;
	}
	p->state = "active";
	p->body_off = before;
	p->body_len = doc->len - before;
	p->body_type = "application/pidf+xml";
}

static int body_for(ev_sub_t *sub, buf_t *out, const char **ctype)
{
	static char ct[200];
	*ctype = NULL;
	svc_t *s = svc_find(ev_sub_resource(sub));
	lsub_t *l = lsub_of(sub);
	if (!s || !l)
		return -ENOENT;
	bool full = ev_sub_full_state(sub) || !l->sent_full || l->gen != s->gen;
	rls_part_t *parts = calloc(s->n ? s->n : 1, sizeof *parts);
	if (!parts)
		return -ENOMEM;
	buf_t docs;
	buf_init(&docs, 0);
	size_t np = 0;
	for (size_t i = 0; i < s->n; i++) {
		const rl_entry_t *e = &s->res[i];
		bool want = full;
		for (size_t k = 0; !want && k < l->ndirty; k++)
			want = strcmp(l->dirty[k], e->uri) == 0;
		if (!want)
			continue;
		part_for(s, e, &parts[np], &docs);
		instance_id(e->uri, parts[np].instance);
		np++;
	}
	lsub_clear(l);
	for (size_t i = 0; i < np; i++)
		if (parts[i].body_len)
			parts[i].body = docs.data + parts[i].body_off;
	char boundary[40];
	for (int attempt = 0; attempt < 4; attempt++) {
		char tok[20];
		sip_random_token(tok, sizeof tok);
		snprintf(boundary, sizeof boundary, "sd-%s", tok);
		/* The boundary must not occur in any part (RFC 2046 §5.1.1);
		 * random tokens make that vanishingly rare, but check. */
		if (!docs.len || !memmem(docs.data, docs.len, boundary, strlen(boundary)))
			break;
	}
	const char *cid = ev_sub_id(sub);
	int err = rls_format(s->uri, s->name, ev_sub_cseq(sub), full, parts, np, boundary, cid, out);
	if (!err) {
		snprintf(ct, sizeof ct,
			 "multipart/related;type=\"application/rlmi+xml\";start=\"<%s.%u@rlmi>\";"
			 "boundary=\"%s\"",
			 cid, ev_sub_cseq(sub), boundary);
		*ctype = ct;
		if (full) {
			l->sent_full = true;
			l->gen = s->gen;
		}
	}
	buf_free(&docs);
	free(parts);
	return err;
}

int rls_format(const char *list_uri, const char *list_name, uint32_t version, bool full,
	       const rls_part_t *parts, size_t n, const char *boundary, const char *cid_base,
	       buf_t *out)
{
	/* The RLMI part (RFC 4662 §5.2). */
	buf_printf(out, "--%s\r\n", boundary);
	buf_puts(out, "Content-Transfer-Encoding: binary\r\n");
	buf_printf(out, "Content-ID: <%s.%u@rlmi>\r\n", cid_base, version);
	buf_puts(out, "Content-Type: application/rlmi+xml;charset=\"UTF-8\"\r\n\r\n");
	buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	buf_puts(out, "<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"");
	xml_escape(out, list_uri);
	buf_printf(out, "\" version=\"%u\" fullState=\"%s\">\n", version, full ? "true" : "false");
	if (list_name && *list_name) {
		buf_puts(out, "  <name>");
		xml_escape(out, list_name);
		buf_puts(out, "</name>\n");
	}
	for (size_t i = 0; i < n; i++) {
		const rls_part_t *p = &parts[i];
		buf_puts(out, "  <resource uri=\"");
		xml_escape(out, p->uri);
		buf_puts(out, "\">\n");
		if (p->name && *p->name) {
			buf_puts(out, "    <name>");
			xml_escape(out, p->name);
			buf_puts(out, "</name>\n");
		}
		buf_printf(out, "    <instance id=\"%s\" state=\"%s\"", p->instance, p->state);
		if (p->reason)
			buf_printf(out, " reason=\"%s\"", p->reason);
		if (p->body_len)
			buf_printf(out, " cid=\"%s.%u.%zu@rlmi\"", cid_base, version, i);
		buf_puts(out, "/>\n  </resource>\n");
	}
	buf_puts(out, "</list>\n");
	/* One part per resource with state (RFC 2387: Content-ID matches the
	 * cid attribute, in angle brackets). */
	for (size_t i = 0; i < n; i++) {
		const rls_part_t *p = &parts[i];
		if (!p->body_len)
			continue;
		buf_printf(out, "\r\n--%s\r\n", boundary);
		buf_puts(out, "Content-Transfer-Encoding: binary\r\n");
		buf_printf(out, "Content-ID: <%s.%u.%zu@rlmi>\r\n", cid_base, version, i);
		buf_printf(out, "Content-Type: %s;charset=\"UTF-8\"\r\n\r\n", p->body_type);
		buf_append(out, p->body, p->body_len);
	}
	buf_printf(out, "\r\n--%s--\r\n", boundary);
	return out->err;
}

/* --- the package ---------------------------------------------------------------------- */

static ev_auth_t authorize(const char *watcher, const char *resource)
{
	svc_t *s = svc_find(resource);
	/* A list is its owner's: nobody else learns who is on it. */
	return s && strcmp(s->watcher, watcher) == 0 ? EV_AUTH_ALLOW : EV_AUTH_BLOCK;
}

static void sub_free(ev_sub_t *sub, void *data)
{
	(void)sub;
	lsub_t *l = data;
	if (!l)
		return;
	lsub_clear(l);
	free(l->dirty);
	free(l);
}

const ev_package_t pkg_rls_presence = {
	.name = "presence",
	.notify_types = TYPES,
	.default_expires = 3600,
	.authorize = authorize,
	.body_for = body_for,
	.sub_free = sub_free,
	.extra_headers = "Require: eventlist\r\n",
};

static const ev_package_t *resolver(const ev_package_t *pkg, const char *resource)
{
	if (pkg != &pkg_presence)
		return NULL;
	return svc_find(resource) ? &pkg_rls_presence : NULL;
}

typedef struct owners {
	char **v;
	size_t n;
} owners_t;

static void collect_owner(const xstore_doc_t *doc, void *arg)
{
	owners_t *o = arg;
	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->v[i], doc->owner) == 0)
			return;
	char **v = realloc(o->v, (o->n + 1) * sizeof *v);
	if (!v)
		return;
	o->v = v;
	if ((v[o->n] = strdup(doc->owner)) != NULL)
		o->n++;
}

static bool no_domain(const char *host)
{
	(void)host;
	return false;
}

int rls_init(bool (*is_local_domain)(const char *host))
{
	RL.is_local_domain = is_local_domain ? is_local_domain : no_domain;
	int err = htable_init(&RL.svcs, 256);
	if (!err)
		err = htable_init(&RL.members, 1024);
	if (err)
		return err;
	RL.started = true;
	owners_t o = { 0 };
	xstore_foreach("rls-services", NULL, collect_owner, &o);
	for (size_t i = 0; i < o.n; i++) {
		rebuild_owner(o.v[i]);
		free(o.v[i]);
	}
	free(o.v);
	LOGI("rls", "%zu list service(s)", RL.svcs.count);
	err = xstore_on_change(on_doc_change, NULL);
	if (!err)
		err = ev_on_resource_change(on_resource_change, NULL);
	if (!err)
		ev_set_list_resolver(resolver);
	return err;
}

static void free_svc_node(hnode_t *n, void *arg)
{
	(void)arg;
	htable_remove(&RL.svcs, n);
	svc_free(container_of(n, svc_t, node));
}

void rls_shutdown(void)
{
	if (!RL.started)
		return;
	ev_set_list_resolver(NULL);
	htable_foreach(&RL.svcs, free_svc_node, NULL);
	htable_destroy(&RL.svcs);
	htable_destroy(&RL.members);
	RL.started = false;
}
