/* RFC 3903 publications (see publish.h).  Processing follows §6 in
 * order: resource (404), Event (489), authentication (407/403),
 * SIP-If-Match (412), Expires (423), body type (415) and content (the
 * package validates: 400/403/413), then the write, then 200 with a new
 * SIP-ETag once committed. */
#include "presence/publish.h"

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
#include "server/auth/authn.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"
#include "server/router.h"

#define AOR_MAX 512
/* Publication changes are announced to the other nodes sharing the
 * database: payload "INSTANCE\nEVENT\nRESOURCE". */
#define PUB_CHANNEL "simpled_presence"

struct pres;

typedef struct pub {
	hnode_t enode;   /* by etag */
	struct pub *next; /* in its resource, creation order */
	struct pres *p;
	unsigned refs;
	const ev_package_t *pkg;
	char *id, *etag, *resource, *ctype, *body;
	size_t len;
	int64_t expires_at, created_us, modified_us;
	bool live, marked;
	bool foreign; /* replaced by another node's rows: never written again */
} pub_t;

typedef struct pres {
	hnode_t node;
	char *key; /* event "\n" resource */
	pub_t *head;
	unsigned count;
} pres_t;

static struct {
	uv_loop_t *loop;
	pub_options_t o;
	char *node_name;
	char instance[17]; /* this process, for the announcements */
	htable_t etags, res;
	unsigned long npubs;
	pbatch_t batch;
	uv_prepare_t prepare;
	uv_timer_t tick;
	size_t sweep_bucket;
	uint64_t last_purge;
	bool started, stopping;
} P;

static const char *const SQL_BATCH =
	"WITH del AS ("
	"  DELETE FROM presence_publications WHERE id = ANY($1::text[]) RETURNING 1),"
	" ins AS ("
	"  INSERT INTO presence_publications (id, etag, event, resource, content_type, body,"
	"     expires_at, created_us, modified_us, node)"
	"  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
	"     $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[], $11::text[])"
	"  ON CONFLICT (id) DO UPDATE SET etag = EXCLUDED.etag, content_type = EXCLUDED.content_type,"
	"     body = EXCLUDED.body, expires_at = EXCLUDED.expires_at,"
	"     modified_us = EXCLUDED.modified_us, node = EXCLUDED.node RETURNING 1),"
	/* Other nodes re-read these resources once this commits (the
	 * notifications are delivered at commit). */
	" ann AS (SELECT pg_notify('" PUB_CHANNEL "', p) FROM (SELECT DISTINCT unnest($12::text[]) AS p) q)"
	" SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ins), (SELECT count(*) FROM ann)";
static const char *const SQL_LOAD =
	"SELECT id, etag, event, resource, content_type, body, expires_at, created_us, modified_us"
	" FROM presence_publications WHERE expires_at > $1 ORDER BY created_us, id";
static const char *const SQL_RELOAD =
	"SELECT id, etag, event, resource, content_type, body, expires_at, created_us, modified_us"
	" FROM presence_publications WHERE event = $1 AND resource = $2 AND expires_at > $3"
	" ORDER BY created_us, id";
static const char *const SQL_PURGE =
	"DELETE FROM presence_publications WHERE ctid = ANY(ARRAY("
	"  SELECT ctid FROM presence_publications WHERE expires_at < $1 LIMIT 1000))";

enum { A_DEL, A_ID, A_ETAG, A_EVENT, A_RES, A_CTYPE, A_BODY, A_EXP, A_CREATED, A_MODIFIED, A_NODE, A_ANN, A_COUNT };

static int64_t now_s(void) { return (int64_t)time(NULL); }
static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- objects -------------------------------------------------------------- */

static void pub_unref(pub_t *x)
{
	if (!x || --x->refs > 0)
		return;
	free(x->id);
	free(x->etag);
	free(x->resource);
	free(x->ctype);
	free(x->body);
	free(x);
}

static bool etag_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, pub_t, enode)->etag, key) == 0;
}

static bool res_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, pres_t, node)->key, key) == 0;
}

static char *res_key(const char *event, const char *resource)
{
	size_t n = strlen(event) + strlen(resource) + 2;
	char *k = malloc(n);
	if (k)
		snprintf(k, n, "%s\n%s", event, resource);
	return k;
}

static pres_t *res_get(const char *event, const char *resource, bool create)
{
	char *k = res_key(event, resource);
	if (!k)
		return NULL;
	hnode_t *n = htable_find(&P.res, hash_str(k), res_eq, k);
	if (n) {
		free(k);
		return container_of(n, pres_t, node);
	}
	if (!create) {
		free(k);
		return NULL;
	}
	pres_t *p = calloc(1, sizeof *p);
	if (!p) {
		free(k);
		return NULL;
	}
	p->key = k;
	htable_insert(&P.res, &p->node, hash_str(k));
	return p;
}

static pub_t *find_etag(const char *etag)
{
	hnode_t *n = htable_find(&P.etags, hash_str(etag), etag_eq, etag);
	return n ? container_of(n, pub_t, enode) : NULL;
}

static void new_etag(pub_t *x)
{
	char tok[21];
	do {
		sip_random_token(tok, sizeof tok);
	} while (find_etag(tok));
	char *e = strdup(tok);
	if (!e)
		return; /* keep the old one */
	if (x->etag && x->live)
		htable_remove(&P.etags, &x->enode);
	free(x->etag);
	x->etag = e;
	if (x->live)
		htable_insert(&P.etags, &x->enode, hash_str(x->etag));
}

static int pub_link(pub_t *x)
{
	pres_t *p = res_get(x->pkg->name, x->resource, true);
	if (!p)
		return -ENOMEM;
	pub_t **pp = &p->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = x;
	x->next = NULL;
	x->p = p;
	p->count++;
	htable_insert(&P.etags, &x->enode, hash_str(x->etag));
	x->live = true;
	x->refs++;
	P.npubs++;
	return 0;
}

static void pub_unlink(pub_t *x)
{
	if (!x->live)
		return;
	x->live = false;
	pres_t *p = x->p;
	for (pub_t **pp = &p->head; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	x->next = NULL;
	x->p = NULL;
	p->count--;
	if (!p->head) {
		htable_remove(&P.res, &p->node);
		free(p->key);
		free(p);
	}
	htable_remove(&P.etags, &x->enode);
	P.npubs--;
	pub_unref(x);
}

unsigned pub_count(const char *event, const char *resource)
{
	pres_t *p = res_get(event, resource, false);
	return p ? p->count : 0;
}

void pub_foreach(const char *event, const char *resource, void (*fn)(const pub_doc_t *d, void *arg),
		 void *arg)
{
	pres_t *p = res_get(event, resource, false);
	for (pub_t *x = p ? p->head : NULL; x; x = x->next) {
		pub_doc_t d = {x->etag, x->ctype, x->body, x->len, x->created_us, x->modified_us, x->expires_at};
		fn(&d, arg);
	}
}

/* --- persistence ---------------------------------------------------------- */

static void row_taken(void *item) { ((pub_t *)item)->marked = false; }
static void row_done(void *item, int err)
{
	(void)err;
	pub_unref(item);
}

static void add_hex(buf_t *arr, const char *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	buf_t b;
	buf_init(&b, 0);
	buf_reserve(&b, 2 * len + 3);
	buf_puts(&b, "\\x");
	for (size_t i = 0; i < len && !b.err; i++) {
		char two[2] = {hex[(unsigned char)data[i] >> 4], hex[(unsigned char)data[i] & 15]};
		buf_append(&b, two, 2);
	}
	if (b.err)
		arr->err = b.err;
	else
		db_array_add(arr, buf_cstr(&b));
	buf_free(&b);
}

static void row_add(void *item, buf_t *a, int64_t now)
{
	pub_t *x = item;
	if (x->foreign)
		return;
	buf_t ann;
	buf_init(&ann, 0);
	buf_printf(&ann, "%s\n%s\n%s", P.instance, x->pkg->name, x->resource);
	if (ann.err)
		a[A_ANN].err = ann.err;
	else
		db_array_add(&a[A_ANN], buf_cstr(&ann));
	buf_free(&ann);
	if (!x->live || x->expires_at <= now) {
		db_array_add(&a[A_DEL], x->id);
		return;
	}
	char num[32];
	db_array_add(&a[A_ID], x->id);
	db_array_add(&a[A_ETAG], x->etag);
	db_array_add(&a[A_EVENT], x->pkg->name);
	db_array_add(&a[A_RES], x->resource);
	db_array_add(&a[A_CTYPE], x->ctype);
	add_hex(&a[A_BODY], x->body, x->len);
	snprintf(num, sizeof num, "%" PRId64, x->expires_at);
	db_array_add(&a[A_EXP], num);
	snprintf(num, sizeof num, "%" PRId64, x->created_us);
	db_array_add(&a[A_CREATED], num);
	snprintf(num, sizeof num, "%" PRId64, x->modified_us);
	db_array_add(&a[A_MODIFIED], num);
	db_array_add(&a[A_NODE], P.node_name);
}

static const pb_ops_t ROW_OPS = {
	.stmt = "pub_batch", .narrays = A_COUNT, .taken = row_taken, .add_row = row_add, .done = row_done,
};

static void mark_dirty(pub_t *x)
{
	if (x->marked)
		return;
	x->refs++;
	if (pb_mark(&P.batch, x) != 0) {
		pub_unref(x);
		return;
	}
	x->marked = true;
}

static void on_prepare(uv_prepare_t *h)
{
	(void)h;
	pb_flush(&P.batch);
}

/* --- PUBLISH -------------------------------------------------------------- */

enum op { OP_INITIAL, OP_REFRESH, OP_MODIFY, OP_REMOVE };

typedef struct preq {
	txn_t *t;
	const ev_package_t *pkg;
	char resource[AOR_MAX];
	char *if_match;
	uint32_t expires;
	enum op op;
	pub_t *pub;
	char *ctype;
	char pub_etag_after[24]; /* the etag this request gave */
	/* What a modify/refresh/remove replaced, restored when the write
	 * fails, so memory never keeps what the database refused. */
	struct {
		char *etag, *body, *ctype;
		size_t len;
		int64_t expires_at, modified_us;
	} old;
} preq_t;

static void preq_free(preq_t *r)
{
	txn_unref(r->t);
	pub_unref(r->pub);
	free(r->if_match);
	free(r->ctype);
	free(r->old.etag);
	free(r->old.body);
	free(r->old.ctype);
	free(r);
}

static void save_old(preq_t *r, pub_t *x)
{
	r->old.etag = x->etag ? strdup(x->etag) : NULL;
	r->old.expires_at = x->expires_at;
	r->old.modified_us = x->modified_us;
}

/* Puts back what the failed request changed (unless a later request has
 * changed the publication again: then memory holds that one's state). */
static void restore_old(preq_t *r, pub_t *x)
{
	switch (r->op) {
	case OP_INITIAL:
		if (x->live) {
			pub_unlink(x);
			mark_dirty(x);
		}
		return;
	case OP_REMOVE:
		if (!x->live && r->old.etag && !find_etag(r->old.etag) && pub_link(x) == 0)
			mark_dirty(x);
		return;
	case OP_MODIFY:
	case OP_REFRESH:
		if (!x->live || !r->old.etag || strcmp(x->etag, r->pub_etag_after) != 0)
			return;
		if (r->op == OP_MODIFY && r->old.body) {
			free(x->body);
			free(x->ctype);
			x->body = r->old.body;
			x->ctype = r->old.ctype;
			x->len = r->old.len;
			r->old.body = r->old.ctype = NULL;
			x->modified_us = r->old.modified_us;
		}
		htable_remove(&P.etags, &x->enode);
		free(x->etag);
		x->etag = r->old.etag;
		r->old.etag = NULL;
		htable_insert(&P.etags, &x->enode, hash_str(x->etag));
		x->expires_at = r->old.expires_at;
		mark_dirty(x);
		return;
	}
}

/* --- uncommitted changes per (event, resource) ---------------------------- */

typedef struct unsettled {
	hnode_t node;
	char *key; /* event "\n" resource */
	unsigned count;
	bool held; /* a NOTIFY waited for it */
} unsettled_t;

static htable_t unsettled_index;

static bool unsettled_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, unsettled_t, node)->key, key) == 0;
}

static unsettled_t *unsettled_find(const char *event, const char *resource, bool create)
{
	char key[1024];
	snprintf(key, sizeof key, "%s\n%s", event, resource);
	hnode_t *n = htable_find(&unsettled_index, hash_str(key), unsettled_eq, key);
	if (n || !create)
		return n ? container_of(n, unsettled_t, node) : NULL;
	unsettled_t *u = calloc(1, sizeof *u);
	if (!u || !(u->key = strdup(key))) {
		free(u);
		return NULL;
	}
	htable_insert(&unsettled_index, &u->node, hash_str(key));
	return u;
}

static void unsettled_begin(const char *event, const char *resource)
{
	unsettled_t *u = unsettled_find(event, resource, true);
	if (u)
		u->count++;
}

/* Returns true when the resource just settled and a NOTIFY waited. */
static bool unsettled_end(const char *event, const char *resource)
{
	unsettled_t *u = unsettled_find(event, resource, false);
	if (!u || --u->count > 0)
		return false;
	bool held = u->held;
	htable_remove(&unsettled_index, &u->node);
	free(u->key);
	free(u);
	return held;
}

static void free_unsettled(hnode_t *n, void *arg)
{
	(void)arg;
	unsettled_t *u = container_of(n, unsettled_t, node);
	free(u->key);
	free(u);
}

bool pub_hold_notify(const char *event, const char *resource)
{
	unsettled_t *u = unsettled_find(event, resource, false);
	if (!u)
		return false;
	u->held = true;
	return true;
}

static void reply_503(txn_t *t, const char *why)
{
	char extra[64];
	snprintf(extra, sizeof extra, "Retry-After: %u\r\n", P.o.retry_after);
	txn_reply(t, 503, why, extra, NULL, NULL, 0);
}

static void committed(void *arg, int err)
{
	preq_t *r = arg;
	pub_t *x = r->pub;
	bool held = unsettled_end(r->pkg->name, r->resource);
	if (err) {
		reply_503(r->t, "Service Unavailable - Database Unavailable");
		restore_old(r, x);
		/* NOTIFYs of this resource waited while the change was
		 * uncommitted (pub_hold_notify); the restored state is what
		 * they show. */
		ev_resource_changed(r->pkg, r->resource);
		preq_free(r);
		return;
	}
	char extra[128];
	if (r->op == OP_REMOVE)
		snprintf(extra, sizeof extra, "Expires: 0\r\n");
	else
		snprintf(extra, sizeof extra, "SIP-ETag: %s\r\nExpires: %u\r\n", x->etag, r->expires);
	txn_reply(r->t, 200, NULL, extra, NULL, NULL, 0);
	/* A refresh changes nothing a watcher sees, unless NOTIFYs waited
	 * for it to settle. */
	if (r->op != OP_REFRESH || held)
		ev_resource_changed(r->pkg, r->resource);
	preq_free(r);
}

static void process(preq_t *r, const char *auth_user)
{
	sipmsg_t *req = txn_request(r->t);
	osip_message_t *m = req->m;
	osip_body_t *body = NULL;
	osip_message_get_body(m, 0, &body);
	bool has_body = body && body->body && body->length > 0;
	pub_t *x = NULL;

	char publisher[AOR_MAX] = "";
	if (r->pkg->publish_by_watcher) {
		if (sip_uri_aor(m->from->url, publisher, sizeof publisher) != 0) {
			txn_reply(r->t, 400, "Bad Request - Malformed From", NULL, NULL, NULL, 0);
			goto out;
		}
		if (auth_user && *auth_user &&
		    (!m->from->url->username || strcmp(auth_user, m->from->url->username) != 0)) {
			txn_reply(r->t, 403, "Forbidden - Credentials Do Not Match From", NULL, NULL, NULL, 0);
			goto out;
		}
	} else if (auth_user && *auth_user &&
		   (!m->req_uri->username || strcmp(auth_user, m->req_uri->username) != 0)) {
		LOGI("publish", "%s may not publish for %s", auth_user, r->resource);
		txn_reply(r->t, 403, "Forbidden - Only The Presentity May Publish", NULL, NULL, NULL, 0);
		goto out;
	}
	if (r->if_match) {
		x = find_etag(r->if_match);
		if (!x || x->pkg != r->pkg || strcmp(x->resource, r->resource) != 0 ||
		    x->expires_at <= now_s()) {
			txn_reply(r->t, 412, NULL, NULL, NULL, NULL, 0);
			x = NULL;
			goto out;
		}
		r->op = r->expires == 0 ? OP_REMOVE : has_body ? OP_MODIFY : OP_REFRESH;
	} else {
		if (!has_body) {
			txn_reply(r->t, 400, "Bad Request - Initial PUBLISH Without Body", NULL, NULL, NULL, 0);
			goto out;
		}
		if (r->expires == 0) {
			txn_reply(r->t, 400, "Bad Request - Initial PUBLISH With Expires 0", NULL, NULL, NULL, 0);
			goto out;
		}
		r->op = OP_INITIAL;
	}
	if (r->expires != 0 && r->expires < P.o.min_expires) {
		char extra[64];
		snprintf(extra, sizeof extra, "Min-Expires: %u\r\n", P.o.min_expires);
		txn_reply(r->t, 423, NULL, extra, NULL, NULL, 0);
		x = NULL;
		goto out;
	}
	if (r->expires > P.o.max_expires)
		r->expires = P.o.max_expires;
	if (has_body && r->op != OP_REMOVE) {
		char why[160] = "";
		int code = r->pkg->publish_by_watcher && r->pkg->on_publish_by
				   ? r->pkg->on_publish_by(publisher, r->resource, r->ctype, body->body,
							   body->length, why, sizeof why)
			   : r->pkg->on_publish ? r->pkg->on_publish(r->resource, r->ctype, body->body,
								     body->length, why, sizeof why)
						: 0;
		if (code) {
			char reason[256];
			snprintf(reason, sizeof reason, "%s%s%s", sip_reason_phrase(code), why[0] ? " - " : "",
				 why);
			/* The reason phrase is one line of printable text. */
			for (char *p = reason; *p; p++) {
				if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
					*p = ' ';
			}
			LOGI("publish", "PUBLISH for %s refused: %d %s", r->resource, code, why);
			txn_reply(r->t, code, reason, NULL, NULL, NULL, 0);
			x = NULL;
			goto out;
		}
	}
	if (pb_overloaded(&P.batch)) {
		reply_503(r->t, "Service Unavailable - Too Many Pending Writes");
		x = NULL;
		goto out;
	}
	int64_t now = now_s();
	switch (r->op) {
	case OP_INITIAL: {
		if (P.o.max_per_resource && pub_count(r->pkg->name, r->resource) >= P.o.max_per_resource) {
			txn_reply(r->t, 403, "Forbidden - Too Many Publications", NULL, NULL, NULL, 0);
			goto out;
		}
		x = calloc(1, sizeof *x);
		if (!x)
			goto oom;
		x->refs = 1;
		x->pkg = r->pkg;
		char id[25];
		sip_random_token(id, sizeof id);
		x->id = strdup(id);
		x->resource = strdup(r->resource);
		x->ctype = strdup(r->ctype);
		x->body = malloc(body->length + 1);
		if (!x->id || !x->resource || !x->ctype || !x->body) {
			pub_unref(x);
			goto oom;
		}
		memcpy(x->body, body->body, body->length);
		x->body[body->length] = '\0';
		x->len = body->length;
		x->created_us = x->modified_us = now_us();
		x->expires_at = now + r->expires;
		new_etag(x);
		if (!x->etag || pub_link(x) != 0) {
			pub_unref(x);
			goto oom;
		}
		break;
	}
	case OP_MODIFY: {
		char *nb = malloc(body->length + 1);
		char *nc = strdup(r->ctype);
		if (!nb || !nc) {
			free(nb);
			free(nc);
			goto oom;
		}
		memcpy(nb, body->body, body->length);
		nb[body->length] = '\0';
		save_old(r, x);
		r->old.body = x->body;
		r->old.ctype = x->ctype;
		r->old.len = x->len;
		x->body = nb;
		x->ctype = nc;
		x->len = body->length;
		x->modified_us = now_us();
		x->expires_at = now + r->expires;
		new_etag(x);
		x->refs++;
		break;
	}
	case OP_REFRESH:
		save_old(r, x);
		x->expires_at = now + r->expires;
		new_etag(x);
		x->refs++;
		break;
	case OP_REMOVE:
		save_old(r, x);
		x->refs++;
		pub_unlink(x);
		break;
	}
	mark_dirty(x);
	r->pub = x;
	snprintf(r->pub_etag_after, sizeof r->pub_etag_after, "%s", x->etag);
	LOGD("publish", "%s %s for %s: etag %s", r->op == OP_INITIAL ? "new" : r->op == OP_MODIFY ? "modified"
						: r->op == OP_REFRESH ? "refreshed" : "removed",
	     r->pkg->name, r->resource, x->etag);
	if (pb_commit(&P.batch, committed, r) != 0) {
		reply_503(r->t, "Service Unavailable - Out Of Memory");
		goto out;
	}
	unsettled_begin(r->pkg->name, r->resource);
	return;
oom:
	txn_reply(r->t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
out:
	preq_free(r);
}

static void auth_done(void *arg, authn_result_t result, const char *user)
{
	preq_t *r = arg;
	if (result != AUTHN_OK || txn_answered(r->t)) {
		preq_free(r);
		return;
	}
	process(r, user ? user : "");
}

static bool type_accepted(const ev_package_t *pkg, const char *ctype)
{
	for (const char *const *t = pkg->publish_types; t && *t; t++) {
		if (strcasecmp(*t, ctype) == 0)
			return true;
	}
	return false;
}

void pub_handle_publish(txn_t *t, sipmsg_t *req)
{
	osip_message_t *m = req->m;
	char resource[AOR_MAX];
	if (!m->req_uri || !m->req_uri->host || !P.o.is_local_domain(m->req_uri->host) ||
	    sip_uri_aor(m->req_uri, resource, sizeof resource) != 0) {
		txn_reply(t, 404, "Not Found - Presentity Not Served Here", NULL, NULL, NULL, 0);
		return;
	}
	const char *ev = sipmsg_header(req, "event", "o");
	char pkgname[64], eid[128];
	const ev_package_t *pkg = NULL;
	if (ev && ev_parse_event(ev, pkgname, sizeof pkgname, eid, sizeof eid) == 0)
		pkg = ev_find_package(pkgname);
	if (!pkg || !pkg->publish_types) {
		char extra[600];
		snprintf(extra, sizeof extra, "Allow-Events: %s\r\n", router_allow_events());
		txn_reply(t, 489, NULL, extra, NULL, NULL, 0);
		return;
	}
	uint32_t expires = 0;
	int err = sipmsg_header_uint(req, "expires", &expires);
	if (err == -EINVAL) {
		txn_reply(t, 400, "Bad Request - Malformed Expires", NULL, NULL, NULL, 0);
		return;
	}
	if (err == -ENOENT)
		expires = P.o.default_expires;
	const char *im = sipmsg_header(req, "sip-if-match", NULL);
	char etag[128] = "";
	if (im) {
		while (*im == ' ' || *im == '\t')
			im++;
		size_t n = 0;
		while (im[n] && im[n] != ' ' && im[n] != '\t' && n < sizeof etag - 1) {
			etag[n] = im[n];
			n++;
		}
		etag[n] = '\0';
		if (!etag[0] || im[n] > ' ') {
			txn_reply(t, 400, "Bad Request - Malformed SIP-If-Match", NULL, NULL, NULL, 0);
			return;
		}
	}
	char ctype[128] = "";
	osip_body_t *body = NULL;
	osip_message_get_body(m, 0, &body);
	if (body && body->length > 0) {
		if (!m->content_type || !m->content_type->type || !m->content_type->subtype) {
			txn_reply(t, 400, "Bad Request - Body Without Content-Type", NULL, NULL, NULL, 0);
			return;
		}
		snprintf(ctype, sizeof ctype, "%s/%s", m->content_type->type, m->content_type->subtype);
		for (char *p = ctype; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!type_accepted(pkg, ctype)) {
			buf_t extra;
			buf_init(&extra, 0);
			buf_puts(&extra, "Accept: ");
			for (const char *const *ty = pkg->publish_types; *ty; ty++)
				buf_printf(&extra, "%s%s", ty == pkg->publish_types ? "" : ", ", *ty);
			buf_puts(&extra, "\r\n");
			txn_reply(t, 415, NULL, extra.err ? NULL : buf_cstr(&extra), NULL, NULL, 0);
			buf_free(&extra);
			return;
		}
	}
	if (P.stopping) {
		reply_503(t, "Service Unavailable - Shutting Down");
		return;
	}
	preq_t *r = calloc(1, sizeof *r);
	if (!r) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	r->t = t;
	txn_ref(t);
	r->pkg = pkg;
	r->expires = expires;
	snprintf(r->resource, sizeof r->resource, "%s", resource);
	r->if_match = etag[0] ? strdup(etag) : NULL;
	r->ctype = strdup(ctype);
	if ((etag[0] && !r->if_match) || !r->ctype) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		preq_free(r);
		return;
	}
	/* The presentity itself publishes: authenticate it (407) in the realm
	 * of its domain. */
	if (P.o.auth && authn_enabled()) {
		char realm[256], user[AUTH_USER_MAX];
		snprintf(realm, sizeof realm, "%s", m->req_uri->host);
		authn_result_t ar = authn_check(t, realm, true, user, sizeof user, auth_done, r);
		if (ar == AUTHN_OK)
			process(r, user);
		else if (ar == AUTHN_ANSWERED)
			preq_free(r);
		return;
	}
	process(r, "");
}

/* --- housekeeping ----------------------------------------------------------- */

static void purge_done(void *arg, int err, PGresult *res)
{
	(void)arg;
	if (!err && res && PQcmdTuples(res)[0] && strcmp(PQcmdTuples(res), "0") != 0)
		LOGD("publish", "purged %s expired publication row(s)", PQcmdTuples(res));
}

/* Picks expired publications and takes a reference on each. */
static bool pub_expired_pick(hnode_t *e, void *arg)
{
	pub_t *x = container_of(e, pub_t, enode);
	if (x->expires_at > *(int64_t *)arg)
		return false;
	x->refs++;
	return true;
}

/* Once a second: expire publications in a slice of the etag table and
 * announce each resource that changed; every 30 s purge up to 1000
 * expired rows. */
static void tick(uv_timer_t *h)
{
	(void)h;
	if (P.stopping)
		return;
	int64_t now = now_s();
	size_t n = 0;
	hnode_t **expired = htable_slice_collect(&P.etags, &P.sweep_bucket, 1024, pub_expired_pick, &now, &n);
	for (size_t i = 0; i < n; i++) {
		pub_t *x = container_of(expired[i], pub_t, enode);
		LOGD("publish", "publication %s of %s expired", x->etag, x->resource);
		pub_unlink(x);
		mark_dirty(x);
		ev_resource_changed(x->pkg, x->resource);
		pub_unref(x);
	}
	free(expired);
	uint64_t now_ms = uv_now(P.loop);
	if (now_ms - P.last_purge >= 30000 && db_is_up()) {
		P.last_purge = now_ms;
		char nowbuf[24];
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now);
		const char *params[1] = {nowbuf};
		db_exec("pub_purge", 1, params, purge_done, NULL);
	}
}

/* --- start and stop ----------------------------------------------------------- */

static void load_rows(PGresult *r);

/* Another node committed a change of (event, resource): replace what
 * memory holds with the table's rows and tell the watchers. */
typedef struct reload {
	char *event, *resource;
} reload_t;

static void reload_done(void *arg, int err, PGresult *res)
{
	reload_t *rl = arg;
	const ev_package_t *pkg = ev_find_package(rl->event);
	if (!err && res && P.started && pkg) {
		pres_t *p = res_get(rl->event, rl->resource, false);
		while (p && p->head) {
			pub_t *x = p->head;
			bool last = p->count == 1;
			x->foreign = true;
			pub_unlink(x); /* memory only: the row is the other node's */
			if (last)
				break;
		}
		load_rows(res);
		LOGD("publish", "%s of %s re-read after a change on another node", rl->event, rl->resource);
		ev_resource_changed(pkg, rl->resource);
	} else if (err) {
		LOGW("publish", "cannot re-read %s of %s (%d)", rl->event, rl->resource, err);
	}
	free(rl->event);
	free(rl->resource);
	free(rl);
}

static void on_announce(void *ctx, const char *channel, const char *payload)
{
	(void)ctx;
	(void)channel;
	const char *nl1 = payload ? strchr(payload, '\n') : NULL;
	const char *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
	if (!nl2 || !P.started || P.stopping)
		return;
	if ((size_t)(nl1 - payload) == strlen(P.instance) && strncmp(payload, P.instance, strlen(P.instance)) == 0)
		return; /* our own */
	reload_t *rl = calloc(1, sizeof *rl);
	if (!rl)
		return;
	rl->event = strndup(nl1 + 1, (size_t)(nl2 - nl1 - 1));
	rl->resource = strdup(nl2 + 1);
	char nowbuf[24];
	snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
	const char *params[3] = {rl->event, rl->resource, nowbuf};
	if (!rl->event || !rl->resource || db_exec("pub_reload", 3, params, reload_done, rl) != 0) {
		free(rl->event);
		free(rl->resource);
		free(rl);
	}
}

static void load_rows(PGresult *r)
{
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		const ev_package_t *pkg = ev_find_package(PQgetvalue(r, i, 2));
		if (!pkg || !pkg->publish_types)
			continue;
		pub_t *x = calloc(1, sizeof *x);
		if (!x)
			continue;
		x->refs = 1;
		x->pkg = pkg;
		x->id = strdup(PQgetvalue(r, i, 0));
		x->etag = strdup(PQgetvalue(r, i, 1));
		x->resource = strdup(PQgetvalue(r, i, 3));
		x->ctype = strdup(PQgetvalue(r, i, 4));
		size_t len = 0;
		unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 5), &len);
		if (raw) {
			x->body = malloc(len + 1);
			if (x->body) {
				memcpy(x->body, raw, len);
				x->body[len] = '\0';
				x->len = len;
			}
			PQfreemem(raw);
		}
		x->expires_at = strtoll(PQgetvalue(r, i, 6), NULL, 10);
		x->created_us = strtoll(PQgetvalue(r, i, 7), NULL, 10);
		x->modified_us = strtoll(PQgetvalue(r, i, 8), NULL, 10);
		if (!x->id || !x->etag || !x->resource || !x->ctype || !x->body || find_etag(x->etag) ||
		    pub_link(x) != 0) {
			pub_unref(x);
			continue;
		}
		pub_unref(x);
	}
}

static int startup_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	load_rows(r);
	return 0;
}

int pub_init(uv_loop_t *loop, const pub_options_t *opts, const char *conninfo)
{
	P.loop = loop;
	P.o = *opts;
	if (!P.o.default_expires)
		P.o.default_expires = 3600;
	if (!P.o.max_expires)
		P.o.max_expires = 3600;
	P.node_name = strdup(opts->node_name ? opts->node_name : "");
	pb_init(&P.batch, &ROW_OPS, "publication", 50000);
	int err = htable_init(&unsettled_index, 64);
	if (err)
		return err;
	err = htable_init(&P.etags, 1024);
	if (!err)
		err = htable_init(&P.res, 1024);
	if (!err)
		err = db_prepare("pub_batch", SQL_BATCH);
	if (!err)
		err = db_prepare("pub_purge", SQL_PURGE);
	if (!err)
		err = db_prepare("pub_reload", SQL_RELOAD);
	sip_random_token(P.instance, sizeof P.instance);
	if (err)
		return err;
	if (conninfo) {
		char nowbuf[24];
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
		const char *params[1] = {nowbuf};
		err = db_load_sync(conninfo, "publications", SQL_LOAD, 1, params, startup_rows, NULL);
		if (err)
			return err;
		LOGI("publish", "loaded %lu publication(s)", P.npubs);
	}
	uv_prepare_init(loop, &P.prepare);
	uv_prepare_start(&P.prepare, on_prepare);
	uv_unref((uv_handle_t *)&P.prepare);
	uv_timer_init(loop, &P.tick);
	uv_timer_start(&P.tick, tick, 1000, 1000);
	uv_unref((uv_handle_t *)&P.tick);
	P.last_purge = uv_now(loop);
	P.started = true;
	return db_listen(PUB_CHANNEL, on_announce, NULL);
}

void pub_stop(void)
{
	if (!P.started)
		return;
	pb_flush(&P.batch);
	P.stopping = true;
}

static void free_pub(hnode_t *n, void *arg)
{
	(void)arg;
	pub_unlink(container_of(n, pub_t, enode));
}

void pub_shutdown(void)
{
	if (!P.started)
		return;
	P.stopping = true;
	uv_prepare_stop(&P.prepare);
	uv_close((uv_handle_t *)&P.prepare, NULL);
	uv_timer_stop(&P.tick);
	uv_close((uv_handle_t *)&P.tick, NULL);
	pb_shutdown(&P.batch);
	htable_foreach(&unsettled_index, free_unsettled, NULL);
	htable_destroy(&unsettled_index);
	htable_foreach(&P.etags, free_pub, NULL);
	htable_destroy(&P.etags);
	htable_destroy(&P.res);
	free(P.node_name);
	P.node_name = NULL;
	P.started = false; /* the handles in P close on the next loop run */
}
