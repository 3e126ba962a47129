/* MESSAGE (RFC 3428) relay to local users, store and forward, and mailbox
 * counts (see messaging.h for the flows).
 *
 * Online relay is a stateful-proxy forward (RFC 3261 §16.6), not a B2BUA:
 * the request keeps its From, To, Call-ID, CSeq, every other header and
 * the body, gets our Via on top of the sender's, Max-Forwards - 1 and the
 * contact as Request-URI.  End-to-end semantics survive: a UA that
 * detects duplicates by Call-ID/CSeq, IMDN (RFC 5438) and anything the
 * two UAs agree on that we do not understand.  The sender gets the
 * final response of the winning branch (first 2xx, parallel forking).
 *
 * Stored messages have no waiting sender, so their delivery originates a
 * new request (uac.h): the original From (with its tag) and To, a Date
 * header with the time we received it (RFC 3261 §20.17), the original
 * Content-Type and body, a fresh Call-ID per attempt (CSeq 1), so a
 * retried delivery is a new request and not a retransmission the UA may
 * absorb.
 *
 * Who is a user (404 otherwise): an AOR in the users table, or one with
 * bindings right now, or one with stored messages.  With auth off this is
 * still the rule: an AOR that never had an account nor a registration is
 * unknown.  The users lookup is folded into the batched INSERT (rows of
 * unknown recipients are not inserted and are answered 404), so the store
 * path costs no extra query.
 *
 * Which failures mean "store": every branch ended with 408, 480, 5xx or
 * a transport error (txn reports 503), or the fork timer expired (a
 * contact that never answers would otherwise hold the sender past its own
 * Timer F).  Any other final response (e.g. 415, 488, 6xx) is a decision
 * of the recipient and is passed to the sender (6xx preferred).  isComposing
 * (RFC 3994) is never stored: an undeliverable one gets 480.
 *
 * Durability: a 202 is sent only after the row is committed; stored rows
 * are written once per loop turn in ONE statement (unnest arrays), with
 * one batch in flight, like the location service.  A row is deleted after
 * a 2xx from the recipient (deletes are batched the same way); if that
 * delete fails the message may be delivered again later: delivery is at
 * least once, never lost.  A late 2xx from a branch that the fork timer
 * already gave up on has the same effect (stored and delivered). */
#include "messaging/messaging.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/auth/authn.h"
#include "server/base/buf.h"
#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"
#include "server/registrar/location.h"
#include "server/sip/uac.h"

#define AOR_MAX 512
#define MAX_LISTENERS 8
#define MAX_BRANCHES 16
#define FETCH_PAGE 100
#define PURGE_BATCH 1000
#define PURGE_EVERY_MS 60000
#define MAX_PENDING_STORE 50000
#define NOTIFY_CHANNEL "simpled_messages"

/* --- state -------------------------------------------------------------- */

/* Stored messages of one recipient, and its delivery run. */
typedef struct mbox {
	hnode_t node;
	char *aor;
	unsigned count;       /* stored, not yet delivered */
	bool delivering;      /* a delivery run is active */
	bool fetching;        /* a page query is in flight */
	bool page_full;       /* the last page was full: there may be more */
	bool failed;          /* a message of this run failed: send no more */
	unsigned gen;         /* delivery run number */
	unsigned inflight;    /* messages of this run being delivered */
	int64_t last_id;      /* highest id fetched in this run */
	struct srow *rows, **rows_tail; /* fetched, not yet sent */
} mbox_t;

/* A stored message fetched for delivery. */
typedef struct srow {
	struct srow *next;
	int64_t id;
	char *sender, *to, *ctype;
	unsigned char *body;
	size_t bodylen;
	int64_t received_at;
} srow_t;

/* A message waiting for the store batch. */
typedef struct sitem {
	struct sitem *next;
	txn_t *t;
	char aor[AOR_MAX];
	char *user, *domain;
	bool known;
	char *sender, *to, *call_id, *ctype, *body;
	size_t bodylen;
	int64_t received_at;
} sitem_t;

typedef struct sbatch {
	sitem_t *items, **tail;
	unsigned n;
} sbatch_t;

/* One MESSAGE forked to the contacts of a recipient: an online relay
 * (t != NULL) or the delivery of a stored row (row != NULL). */
typedef struct fork {
	struct fork *tprev, *tnext; /* fork-timeout FIFO */
	bool in_timeouts;
	uint64_t deadline;
	unsigned refs;   /* pending branches + 1 while undecided */
	unsigned pending;
	bool decided;
	bool composing, no_store;
	txn_t *t;
	srow_t *row;
	unsigned gen;
	char aor[AOR_MAX];
	int best_code;   /* best non-retryable failure, 0 = none */
	char best_reason[96];
} fork_t;

typedef struct idlist {
	int64_t *ids;
	size_t n, cap;
} idlist_t;

typedef struct listener {
	msg_mailbox_cb cb;
	void *arg;
} listener_t;

static struct {
	msg_options_t o;
	bool up, closing;
	htable_t boxes;
	listener_t listeners[MAX_LISTENERS];
	int nlisteners;
	sbatch_t next;            /* waiting for the next store batch */
	sbatch_t *inflight;       /* being committed */
	idlist_t del_next;        /* delivered ids to delete */
	bool del_inflight;
	uv_prepare_t flush;
	uv_timer_t tick, kick;
	uint64_t last_purge;
	bool purge_inflight, purge_again;
	struct { fork_t *head, *tail; } timeouts;
	buf_t arr[12];
	buf_t fwd_vias, fwd_extra; /* reused by every relay: no allocation per MESSAGE */
	msg_stats_t stats;
} M;

static const char *const SQL_STORE =
	"WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[],"
	"   $5::text[], $6::text[], $7::text[], $8::text[], $9::bytea[], $10::bigint[], $11::bigint[])"
	"   WITH ORDINALITY AS v(recipient, username, domain, known, sender, to_hdr, call_id,"
	"                        ctype, body, received_at, expires_at, ord)),"
	" k AS (SELECT v.*, (v.known OR EXISTS (SELECT 1 FROM users u"
	"        WHERE u.username = v.username AND u.domain = v.domain)) AS ok FROM v),"
	" ins AS (INSERT INTO messages (recipient, sender, to_hdr, call_id, content_type, body,"
	"                               received_at, expires_at, node)"
	"   SELECT recipient, sender, to_hdr, call_id, ctype, body, received_at, expires_at, $12"
	"   FROM k WHERE ok ORDER BY ord RETURNING 1)"
	" SELECT ord FROM k WHERE NOT ok UNION ALL SELECT -count(*) FROM ins";
static const char *const SQL_FETCH =
	"SELECT id, sender, to_hdr, content_type, body, received_at FROM messages"
	" WHERE recipient = $1 AND id > $2 AND expires_at > $3 ORDER BY id LIMIT 100";
static const char *const SQL_DELETE = "DELETE FROM messages WHERE id = ANY($1::bigint[])";
static const char *const SQL_PURGE =
	"DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expires_at <= $1"
	" ORDER BY expires_at LIMIT 1000) RETURNING recipient";
static const char *const SQL_COUNT =
	"SELECT count(*) FROM messages WHERE recipient = $1 AND expires_at > $2";
static const char *const SQL_LOAD =
	"SELECT recipient, count(*) FROM messages WHERE expires_at > $1 GROUP BY recipient";

static int64_t now_s(void) { return (int64_t)time(NULL); }

static void deliver_pump(mbox_t *b);

/* --- mailboxes ---------------------------------------------------------- */

static bool box_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, mbox_t, node)->aor, key) == 0;
}

static mbox_t *box_find(const char *aor)
{
	hnode_t *n = htable_find(&M.boxes, hash_str(aor), box_eq, aor);
	return n ? container_of(n, mbox_t, node) : NULL;
}

static mbox_t *box_get(const char *aor)
{
	mbox_t *b = box_find(aor);
	if (b)
		return b;
	b = calloc(1, sizeof *b);
	if (!b || !(b->aor = strdup(aor))) {
		free(b);
		return NULL;
	}
	b->rows_tail = &b->rows;
	htable_insert(&M.boxes, &b->node, hash_str(aor));
	return b;
}

static void row_free(srow_t *r)
{
	if (!r)
		return;
	free(r->sender);
	free(r->to);
	free(r->ctype);
	if (r->body)
		PQfreemem(r->body);
	free(r);
}

static void box_clear_rows(mbox_t *b)
{
	while (b->rows) {
		srow_t *r = b->rows;
		b->rows = r->next;
		row_free(r);
	}
	b->rows_tail = &b->rows;
}

/* Frees an idle, empty mailbox so the table holds only AORs with mail. */
static void box_maybe_drop(mbox_t *b)
{
	if (b->count || b->delivering || b->fetching || b->inflight)
		return;
	box_clear_rows(b);
	htable_remove(&M.boxes, &b->node);
	free(b->aor);
	free(b);
}

static void announce(const char *aor, unsigned count)
{
	for (int i = 0; i < M.nlisteners; i++)
		M.listeners[i].cb(M.listeners[i].arg, aor, count, 0);
}

int msg_mailbox_count(const char *aor, unsigned *new_count, unsigned *old_count)
{
	mbox_t *b = box_find(aor);
	*new_count = b ? b->count : 0;
	if (old_count)
		*old_count = 0;
	return b && b->count ? 0 : -ENOENT;
}

int msg_on_mailbox_change(msg_mailbox_cb cb, void *arg)
{
	if (M.nlisteners >= MAX_LISTENERS)
		return -ENOSPC;
	M.listeners[M.nlisteners].cb = cb;
	M.listeners[M.nlisteners].arg = arg;
	M.nlisteners++;
	return 0;
}

void msg_get_stats(msg_stats_t *out) { *out = M.stats; }

/* --- helpers ------------------------------------------------------------ */

static void reply_503(txn_t *t, const char *why)
{
	char extra[64];
	snprintf(extra, sizeof extra, "Retry-After: %u\r\n", M.o.retry_after_s);
	txn_reply(t, 503, why, extra, NULL, NULL, 0);
}

static char *osip_str_dup(char *s)
{
	/* osip strings are freed with osip_free; ours with free. */
	char *d = s ? strdup(s) : NULL;
	osip_free(s);
	return d;
}

static char *from_str(const osip_from_t *f)
{
	char *s = NULL;
	if (!f || osip_from_to_str(f, &s) != 0)
		return NULL;
	return osip_str_dup(s);
}

static char *ctype_str(const osip_message_t *m)
{
	char *s = NULL;
	if (!m->content_type || osip_content_type_to_str(m->content_type, &s) != 0)
		return NULL;
	return osip_str_dup(s);
}

static bool is_composing(const osip_message_t *m)
{
	const osip_content_type_t *c = m->content_type;
	return c && c->type && c->subtype && strcasecmp(c->type, "application") == 0 &&
	       strcasecmp(c->subtype, "im-iscomposing+xml") == 0;
}

/* The body bytes of m.  A single part is libosip2's exact copy; a
 * multipart body is re-serialised by libosip2 (its boundaries are those
 * of the Content-Type, which is kept).  *owned is set when the caller
 * must free() the result. */
static const char *body_of(osip_message_t *m, size_t *len, char **owned)
{
	*owned = NULL;
	*len = 0;
	int n = osip_list_size(&m->bodies);
	if (n <= 0)
		return NULL;
	const osip_content_type_t *c = m->content_type;
	if (n == 1 && !(c && c->type && strcasecmp(c->type, "multipart") == 0)) {
		osip_body_t *b = osip_list_get(&m->bodies, 0);
		*len = b->length;
		return b->body;
	}
	char *all = NULL;
	size_t alen = 0;
	if (osip_message_to_str(m, &all, &alen) != 0 || !all)
		return NULL;
	const char *p = strstr(all, "\r\n\r\n");
	if (p) {
		p += 4;
		*len = alen - (size_t)(p - all);
		*owned = malloc(*len ? *len : 1);
		if (*owned)
			memcpy(*owned, p, *len);
	}
	osip_free(all);
	return *owned;
}

/* Every header of the request that a proxy forwards unchanged (RFC 3261
 * §16.6): all but Via, Max-Forwards, Route (we are its last hop),
 * Proxy-Authorization (consumed here, §22.3), From/To/Call-ID/CSeq and
 * Content-Type/-Length (uac writes those). */
static int forwarded_headers(osip_message_t *m, buf_t *vias, buf_t *extra)
{
	char *s;
	osip_list_iterator_t it;
	for (osip_via_t *v = osip_list_get_first(&m->vias, &it); v; v = osip_list_get_next(&it)) {
		if (osip_via_to_str(v, &s) != 0)
			return -ENOMEM;
		buf_printf(vias, "Via: %s\r\n", s);
		osip_free(s);
	}
	for (osip_contact_t *c = osip_list_get_first(&m->contacts, &it); c; c = osip_list_get_next(&it)) {
		if (osip_contact_to_str(c, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Contact: %s\r\n", s);
		osip_free(s);
	}
	for (osip_record_route_t *r = osip_list_get_first(&m->record_routes, &it); r;
	     r = osip_list_get_next(&it)) {
		if (osip_record_route_to_str(r, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Record-Route: %s\r\n", s);
		osip_free(s);
	}
	for (osip_authorization_t *a = osip_list_get_first(&m->authorizations, &it); a;
	     a = osip_list_get_next(&it)) {
		if (osip_authorization_to_str(a, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Authorization: %s\r\n", s);
		osip_free(s);
	}
	for (osip_accept_t *a = osip_list_get_first(&m->accepts, &it); a; a = osip_list_get_next(&it)) {
		if (osip_accept_to_str(a, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Accept: %s\r\n", s);
		osip_free(s);
	}
	for (osip_allow_t *a = osip_list_get_first(&m->allows, &it); a; a = osip_list_get_next(&it)) {
		if (osip_allow_to_str(a, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Allow: %s\r\n", s);
		osip_free(s);
	}
	for (osip_content_encoding_t *e = osip_list_get_first(&m->content_encodings, &it); e;
	     e = osip_list_get_next(&it)) {
		if (osip_content_encoding_to_str(e, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Content-Encoding: %s\r\n", s);
		osip_free(s);
	}
	for (osip_call_info_t *c = osip_list_get_first(&m->call_infos, &it); c; c = osip_list_get_next(&it)) {
		if (osip_call_info_to_str(c, &s) != 0)
			return -ENOMEM;
		buf_printf(extra, "Call-Info: %s\r\n", s);
		osip_free(s);
	}
	if (m->mime_version && m->mime_version->value)
		buf_printf(extra, "MIME-Version: %s\r\n", m->mime_version->value);
	for (osip_header_t *h = osip_list_get_first(&m->headers, &it); h; h = osip_list_get_next(&it)) {
		if (!h->hname || strcasecmp(h->hname, "max-forwards") == 0)
			continue;
		buf_printf(extra, "%s: %s\r\n", h->hname, h->hvalue ? h->hvalue : "");
	}
	return vias->err ? vias->err : extra->err;
}

/* The same from the header lines as received (sipmsg_t.hdrs): each line
 * copied, never re-serialised, so headers libosip2 files in lists of its
 * own are forwarded too (§16.6 wants every header kept). */
static int forwarded_headers_raw(const sipmsg_t *req, buf_t *vias, buf_t *extra)
{
	sipmsg_append_vias(req, vias);
	for (size_t i = 0; i < req->nhdrs; i++) {
		const sip_raw_hdr_t *h = &req->hdrs[i];
		switch (h->id) {
		case SIPH_OTHER:
			buf_append(extra, h->name, h->name_len);
			buf_put_lit(extra, ": ");
			buf_append(extra, h->value, h->value_len);
			buf_put_lit(extra, "\r\n");
			break;
		default:
			break; /* ours to write (Via, Max-Forwards, Route...) or uac's */
		}
	}
	return vias->err ? vias->err : extra->err;
}

/* --- fork timeouts ------------------------------------------------------ */

static void timeouts_remove(fork_t *f)
{
	if (!f->in_timeouts)
		return;
	if (f->tprev)
		f->tprev->tnext = f->tnext;
	else
		M.timeouts.head = f->tnext;
	if (f->tnext)
		f->tnext->tprev = f->tprev;
	else
		M.timeouts.tail = f->tprev;
	f->tprev = f->tnext = NULL;
	f->in_timeouts = false;
}

static void timeouts_push(fork_t *f)
{
	f->deadline = uv_now(M.o.loop) + M.o.fork_timeout_ms;
	f->tprev = M.timeouts.tail;
	f->tnext = NULL;
	if (M.timeouts.tail)
		M.timeouts.tail->tnext = f;
	else
		M.timeouts.head = f;
	M.timeouts.tail = f;
	f->in_timeouts = true;
}

static void fork_unref(fork_t *f)
{
	if (--f->refs)
		return;
	timeouts_remove(f);
	if (f->t)
		txn_unref(f->t);
	row_free(f->row);
	free(f);
}

/* --- store -------------------------------------------------------------- */

static void sitem_free(sitem_t *it)
{
	if (it->t)
		txn_unref(it->t);
	free(it->user);
	free(it->domain);
	free(it->sender);
	free(it->to);
	free(it->call_id);
	free(it->ctype);
	free(it->body);
	free(it);
}

/* Queues the request of t for the next store batch; t is answered (202,
 * 404 or 503) when the batch commits.  Takes a reference on t. */
static void store_enqueue(txn_t *t, const char *aor, bool known)
{
	if (M.next.n + (M.inflight ? M.inflight->n : 0) >= MAX_PENDING_STORE) {
		reply_503(t, "Service Unavailable - Too Many Pending Writes");
		return;
	}
	sipmsg_t *req = txn_request(t);
	osip_message_t *m = req->m;
	sitem_t *it = calloc(1, sizeof *it);
	if (!it)
		goto oom;
	snprintf(it->aor, sizeof it->aor, "%s", aor);
	const char *at = strchr(aor, '@');
	it->user = at ? strndup(aor + 4, (size_t)(at - aor - 4)) : NULL;
	it->domain = at ? strdup(at + 1) : NULL;
	it->known = known;
	/* From, To and Content-Type as received when the request has its raw
	 * lines: delivery later sends exactly what the sender wrote. */
	bool raw = req->hdrs && req->from_raw && req->to_raw;
	it->sender = raw ? strdup(req->from_raw) : from_str(m->from);
	it->to = raw ? strdup(req->to_raw) : from_str(m->to);
	it->call_id = strdup(sipmsg_call_id(req));
	const char *ct = raw && m->content_type ? sipmsg_raw_value(req, SIPH_CONTENT_TYPE) : NULL;
	it->ctype = ct ? strdup(ct) : ctype_str(m);
	char *owned;
	size_t blen;
	const char *body = body_of(m, &blen, &owned);
	it->body = malloc(blen * 2 + 3);
	if (!it->user || !it->domain || !it->sender || !it->to || !it->call_id || !it->body) {
		free(owned);
		sitem_free(it);
		goto oom;
	}
	/* bytea in hex input form, inside a text array element. */
	static const char hex[] = "0123456789abcdef";
	it->body[0] = '\\';
	it->body[1] = 'x';
	for (size_t i = 0; i < blen; i++) {
		it->body[2 + 2 * i] = hex[(unsigned char)body[i] >> 4];
		it->body[3 + 2 * i] = hex[(unsigned char)body[i] & 15];
	}
	it->body[2 + 2 * blen] = '\0';
	it->bodylen = blen;
	free(owned);
	it->received_at = now_s();
	it->t = t;
	txn_ref(t);
	*M.next.tail = it;
	M.next.tail = &it->next;
	M.next.n++;
	return;
oom:
	txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
}

static void store_done(void *arg, int err, PGresult *res)
{
	sbatch_t *b = arg;
	M.inflight = NULL;
	/* Positions (1-based) of rows refused as unknown recipients. */
	unsigned char *unknown = calloc(b->n + 1, 1);
	if (!err && res && unknown) {
		for (int i = 0; i < PQntuples(res); i++) {
			long long v = strtoll(PQgetvalue(res, i, 0), NULL, 10);
			if (v > 0 && (unsigned long long)v <= b->n)
				unknown[v] = 1;
		}
	}
	if (err)
		LOGW("messaging", "storing %u message(s) failed (%d); answering 503", b->n, err);
	unsigned pos = 0;
	for (sitem_t *it = b->items; it;) {
		sitem_t *next = it->next;
		pos++;
		if (M.closing) {
			/* Shutting down: the transaction layer ends t. */
		} else if (err || !unknown) {
			M.stats.store_failed++;
			reply_503(it->t, "Service Unavailable - Database Unavailable");
		} else if (unknown[pos]) {
			txn_reply(it->t, 404, "Not Found - No Such User", NULL, NULL, NULL, 0);
		} else {
			M.stats.stored++;
			txn_reply(it->t, 202, NULL, NULL, NULL, NULL, 0);
			mbox_t *box = box_get(it->aor);
			if (box) {
				box->count++;
				if (box->delivering)
					box->page_full = true; /* fetch again before the run ends */
				announce(box->aor, box->count);
				/* It may have registered while the row committed. */
				if (loc_find(box->aor))
					deliver_pump(box);
			}
		}
		sitem_free(it);
		it = next;
	}
	free(unknown);
	free(b);
}

static void store_flush(void)
{
	if (M.inflight || !M.next.items)
		return;
	sbatch_t *b = malloc(sizeof *b);
	if (!b)
		return;
	*b = M.next;
	memset(&M.next, 0, sizeof M.next);
	M.next.tail = &M.next.items;
	buf_t *a = M.arr;
	for (int i = 0; i < 11; i++) {
		buf_reset(&a[i]);
		db_array_begin(&a[i]);
	}
	char num[32];
	int64_t exp = now_s() + M.o.store_ttl_s;
	for (sitem_t *it = b->items; it; it = it->next) {
		db_array_add(&a[0], it->aor);
		db_array_add(&a[1], it->user);
		db_array_add(&a[2], it->domain);
		db_array_add(&a[3], it->known ? "t" : "f");
		db_array_add(&a[4], it->sender);
		db_array_add(&a[5], it->to);
		db_array_add(&a[6], it->call_id);
		db_array_add(&a[7], it->ctype);
		db_array_add(&a[8], it->body);
		snprintf(num, sizeof num, "%" PRId64, it->received_at);
		db_array_add(&a[9], num);
		snprintf(num, sizeof num, "%" PRId64, exp);
		db_array_add(&a[10], num);
	}
	const char *params[12];
	int err = 0;
	for (int i = 0; i < 11; i++) {
		db_array_end(&a[i]);
		if (a[i].err)
			err = a[i].err;
		params[i] = buf_cstr(&a[i]);
	}
	params[11] = M.o.node_name ? M.o.node_name : "";
	if (!err)
		err = db_exec("msg_store", 12, params, store_done, b);
	if (err) {
		M.inflight = b;
		store_done(b, err, NULL);
		return;
	}
	M.inflight = b;
}

/* --- deletes of delivered rows ------------------------------------------ */

static void del_done(void *arg, int err, PGresult *res)
{
	(void)res;
	idlist_t *l = arg;
	M.del_inflight = false;
	if (err)
		LOGW("messaging", "deleting %zu delivered message(s) failed (%d): they will be "
		     "delivered again", l->n, err);
	free(l->ids);
	free(l);
}

static void del_flush(void)
{
	if (M.del_inflight || !M.del_next.n)
		return;
	buf_t *a = &M.arr[11];
	buf_reset(a);
	db_array_begin(a);
	char num[32];
	for (size_t i = 0; i < M.del_next.n; i++) {
		snprintf(num, sizeof num, "%" PRId64, M.del_next.ids[i]);
		db_array_add(a, num);
	}
	db_array_end(a);
	idlist_t *l = malloc(sizeof *l);
	if (!l || a->err) {
		free(l);
		return;
	}
	*l = M.del_next;
	memset(&M.del_next, 0, sizeof M.del_next);
	const char *params[1] = {buf_cstr(a)};
	int err = db_exec("msg_delete", 1, params, del_done, l);
	if (err) {
		/* Kept for the next turn (the database may come back). */
		M.del_next = *l;
		free(l);
		return;
	}
	M.del_inflight = true;
}

static void on_prepare(uv_prepare_t *h)
{
	(void)h;
	store_flush();
	del_flush();
}

/* --- forking ------------------------------------------------------------ */

static bool retryable(int code)
{
	return code == 408 || code == 480 || (code >= 500 && code < 600);
}

static void deliver_result(fork_t *f, bool ok);

/* Every branch failed (or the fork timer fired): decide for the sender. */
static void fork_failed(fork_t *f)
{
	f->decided = true;
	timeouts_remove(f);
	if (f->row) {
		deliver_result(f, false);
	} else if (f->t && !M.closing) {
		if (f->best_code) {
			txn_reply(f->t, f->best_code, f->best_reason[0] ? f->best_reason : NULL, NULL, NULL,
				  NULL, 0);
		} else if (f->composing || f->no_store) {
			txn_reply(f->t, 480, "Temporarily Unavailable - Not Reachable", NULL, NULL, NULL, 0);
		} else {
			store_enqueue(f->t, f->aor, true);
		}
	}
	fork_unref(f); /* the undecided reference */
}

static void on_branch(void *arg, const sipmsg_t *resp, int code, bool final)
{
	fork_t *f = arg;
	if (!final)
		return;
	f->pending--;
	if (!f->decided) {
		if (code >= 200 && code < 300) {
			f->decided = true;
			timeouts_remove(f);
			if (f->row) {
				deliver_result(f, true);
			} else if (f->t && !M.closing) {
				M.stats.relayed++;
				txn_reply(f->t, code, resp && *resp->reason ? resp->reason : NULL, NULL, NULL, NULL, 0);
			}
			fork_unref(f); /* the undecided reference */
		} else {
			if (!retryable(code) && (!f->best_code || (code >= 600 && f->best_code < 600))) {
				f->best_code = code;
				snprintf(f->best_reason, sizeof f->best_reason, "%s",
					 resp ? resp->reason : "");
			}
			if (!f->pending)
				fork_failed(f);
		}
	}
	fork_unref(f); /* the branch's reference */
}

/* Sends r to every unexpired binding of a (Request-URI = the contact,
 * Route = its Path).  Returns the number of branches started. */

static unsigned fork_start(fork_t *f, const loc_aor_t *a, uac_request_t *r)
{
	unsigned n = 0;
	for (const loc_binding_t *b = a ? a->bindings : NULL; b && n < MAX_BRANCHES; b = b->next) {
		tp_peer_t dst;
		if (b->expires_at <= now_s() || uac_binding_dest(&b->source, b->contact, &dst) != 0)
			continue;
		r->ruri = b->contact;
		r->route = b->path; /* RFC 3327 §5.3: the Path is the route to it */
		f->refs++;
		f->pending++;
		int err = uac_send(r, &dst, on_branch, f);
		if (err) {
			LOGD("messaging", "cannot send to %s: %d", b->contact, err);
			f->refs--;
			f->pending--;
			continue;
		}
		n++;
	}
	return n;
}

static fork_t *fork_new(const char *aor)
{
	fork_t *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->refs = 1; /* undecided */
	size_t n = strlen(aor);
	if (n >= sizeof f->aor)
		n = sizeof f->aor - 1;
	memcpy(f->aor, aor, n); /* calloc'd: NUL-terminated */
	return f;
}

/* Forwards the MESSAGE of t to the bindings in a (proxy forward).  From
 * the raw header lines when the request has them (the fast path), else
 * from libosip2's re-serialisation. */
static void relay(txn_t *t, const char *aor, const loc_aor_t *a, bool no_store)
{
	sipmsg_t *req = txn_request(t);
	osip_message_t *m = req->m;
	buf_t *vias = &M.fwd_vias, *extra = &M.fwd_extra;
	buf_reset(vias);
	buf_reset(extra);
	bool raw = req->hdrs && req->from_raw && req->to_raw;
	char *from_owned = NULL, *to_owned = NULL, *ctype_owned = NULL, *owned = NULL;
	const char *from, *to, *ctype;
	int err;
	if (raw) {
		from = req->from_raw;
		to = req->to_raw;
		ctype = m->content_type ? sipmsg_raw_value(req, SIPH_CONTENT_TYPE) : NULL;
		err = forwarded_headers_raw(req, vias, extra);
	} else {
		from = from_owned = from_str(m->from);
		to = to_owned = from_str(m->to);
		ctype = ctype_owned = ctype_str(m);
		err = forwarded_headers(m, vias, extra);
	}
	size_t blen;
	const char *body = body_of(m, &blen, &owned);
	fork_t *f = fork_new(aor);
	if (!f || !from || !to || err != 0) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		free(f);
		goto out;
	}
	f->t = t;
	txn_ref(t);
	f->composing = is_composing(m);
	f->no_store = no_store;
	uint32_t mf = 70;
	if (sipmsg_header_uint(req, "max-forwards", &mf) != 0)
		mf = 70;
	uac_request_t r = {
		.method = "MESSAGE",
		.from = from,
		.to = to,
		.call_id = sipmsg_call_id(req),
		.cseq = req->cseq,
		.vias_below = buf_cstr(vias),
		.max_forwards = mf > 0 ? (int)mf - 1 : 0,
		.extra = buf_cstr(extra),
		.ctype = ctype,
		.body = body ? body : "",
		.bodylen = blen,
		.light_response = true,
	};
	if (!ctype)
		r.body = NULL;
	if (fork_start(f, a, &r) == 0) {
		fork_failed(f);
		goto out;
	}
	timeouts_push(f);
out:
	free(from_owned);
	free(to_owned);
	free(ctype_owned);
	free(owned);
}

/* Relaying to another domain (when allowed): one branch to the
 * Request-URI's numeric host; its answer goes back, nothing is stored. */
static void relay_foreign(txn_t *t)
{
	sipmsg_t *req = txn_request(t);
	char *ruri = NULL;
	if (osip_uri_to_str(req->m->req_uri, &ruri) != 0 || !ruri) {
		txn_reply(t, 500, NULL, NULL, NULL, NULL, 0);
		return;
	}
	tp_peer_t dst;
	if (uac_uri_dest(ruri, &dst) != 0) {
		osip_free(ruri);
		txn_reply(t, 502, "Bad Gateway - Cannot Resolve Destination", NULL, NULL, NULL, 0);
		return;
	}
	/* A binding-like view of the destination so the fork code serves. */
	loc_binding_t b = {.contact = ruri, .expires_at = now_s() + 60, .source = dst};
	loc_aor_t a = {.bindings = &b, .count = 1};
	relay(t, "", &a, true);
	osip_free(ruri);
}

/* --- delivery of stored messages ---------------------------------------- */

static char *dup_col(PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static void fetch_done(void *arg, int err, PGresult *res)
{
	char *aor = arg;
	mbox_t *b = M.closing ? NULL : box_find(aor);
	free(aor);
	if (!b)
		return;
	b->fetching = false;
	if (err) {
		LOGW("messaging", "cannot read stored messages of %s (%d)", b->aor, err);
		b->delivering = false;
		box_maybe_drop(b);
		return;
	}
	int n = PQntuples(res);
	b->page_full = n >= FETCH_PAGE;
	for (int i = 0; i < n; i++) {
		srow_t *r = calloc(1, sizeof *r);
		if (!r)
			break;
		r->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		r->sender = dup_col(res, i, 1);
		r->to = dup_col(res, i, 2);
		r->ctype = dup_col(res, i, 3);
		r->body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 4), &r->bodylen);
		r->received_at = strtoll(PQgetvalue(res, i, 5), NULL, 10);
		if (!r->sender || !r->to || !r->body) {
			row_free(r);
			break;
		}
		if (r->id > b->last_id)
			b->last_id = r->id;
		*b->rows_tail = r;
		b->rows_tail = &r->next;
	}
	if (n == 0 && b->last_id == 0 && b->count) {
		/* The count was stale (rows expired or were purged elsewhere). */
		b->count = 0;
		announce(b->aor, 0);
	}
	deliver_pump(b);
}

static void deliver_end(mbox_t *b)
{
	b->delivering = false;
	b->failed = false;
	b->page_full = false;
	b->last_id = 0;
	box_clear_rows(b);
	box_maybe_drop(b);
}

static void send_row(mbox_t *b, srow_t *row, const loc_aor_t *a)
{
	fork_t *f = fork_new(b->aor);
	if (!f) {
		row_free(row);
		b->failed = true;
		return;
	}
	f->row = row;
	f->gen = b->gen;
	char date[64], call_id[48], tok[25];
	time_t tt = (time_t)row->received_at;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	sip_random_token(tok, sizeof tok);
	snprintf(call_id, sizeof call_id, "sd-%s", tok);
	uac_request_t r = {
		.method = "MESSAGE",
		.from = row->sender,
		.to = row->to,
		.call_id = call_id,
		.cseq = 1,
		.max_forwards = 70,
		.extra = date,
		.ctype = row->ctype,
		.body = row->ctype ? (const char *)row->body : NULL,
		.bodylen = row->bodylen,
		.light_response = true,
	};
	b->inflight++;
	if (fork_start(f, a, &r) == 0) {
		fork_failed(f);
		return;
	}
	timeouts_push(f);
}

/* Sends the next stored messages while the window allows, fetches the
 * next page when the fetched ones are gone, ends the run when done. */
static void deliver_pump(mbox_t *b)
{
	if (M.closing)
		return;
	if (!b->delivering) {
		if (!b->count || b->fetching)
			return;
		b->delivering = true;
		b->failed = false;
		b->gen++;
		b->last_id = 0;
		b->page_full = true;
	}
	const loc_aor_t *a = loc_find(b->aor);
	if (!a)
		b->failed = true; /* unregistered meanwhile */
	while (!b->failed && b->rows && b->inflight < M.o.deliver_window) {
		srow_t *r = b->rows;
		b->rows = r->next;
		if (!b->rows)
			b->rows_tail = &b->rows;
		r->next = NULL;
		send_row(b, r, a);
	}
	if (b->inflight || b->fetching)
		return;
	if (!b->failed && !b->rows && b->page_full) {
		char *aor = strdup(b->aor);
		char idbuf[24], nowbuf[24];
		snprintf(idbuf, sizeof idbuf, "%" PRId64, b->last_id);
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
		const char *params[3] = {b->aor, idbuf, nowbuf};
		if (aor && db_exec("msg_fetch", 3, params, fetch_done, aor) == 0) {
			b->fetching = true;
			return;
		}
		free(aor);
	}
	if (!b->rows || b->failed)
		deliver_end(b);
}

static void deliver_result(fork_t *f, bool ok)
{
	if (M.closing)
		return; /* a 2xx now is delivered again after the restart */
	mbox_t *b = box_find(f->aor);
	if (ok) {
		M.stats.delivered++;
		idlist_t *l = &M.del_next;
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 64;
			int64_t *p = realloc(l->ids, cap * sizeof *p);
			if (p) {
				l->ids = p;
				l->cap = cap;
			}
		}
		if (l->n < l->cap)
			l->ids[l->n++] = f->row->id;
		LOGD("messaging", "stored message %" PRId64 " delivered to %s", f->row->id, f->aor);
	}
	if (!b)
		return;
	if (ok && b->count) {
		b->count--;
		announce(b->aor, b->count);
	}
	if (f->gen != b->gen)
		return;
	if (b->inflight)
		b->inflight--;
	if (!ok) {
		LOGI("messaging", "delivery of stored message %" PRId64 " to %s failed; kept",
		     f->row->id, f->aor);
		b->failed = true;
	}
	deliver_pump(b);
}

static void on_location_change(void *arg, const char *aor, const loc_aor_t *now)
{
	(void)arg;
	if (!now || !M.up)
		return;
	mbox_t *b = box_find(aor);
	if (b && b->count)
		deliver_pump(b);
}

/* --- housekeeping ------------------------------------------------------- */

static void purge_done(void *arg, int err, PGresult *res)
{
	(void)arg;
	M.purge_inflight = false;
	if (err || M.closing)
		return;
	int n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		mbox_t *b = box_find(PQgetvalue(res, i, 0));
		if (b && b->count) {
			b->count--;
			announce(b->aor, b->count);
			box_maybe_drop(b);
		}
	}
	M.stats.expired += (unsigned long)n;
	if (n)
		LOGI("messaging", "%d stored message(s) expired", n);
	M.purge_again = n >= PURGE_BATCH;
}

/* Every 100 ms: give up on forks whose contacts are silent.  Every
 * minute (or at once while a purge found a full batch): delete at most
 * 1000 expired messages. */
static void on_tick(uv_timer_t *h)
{
	(void)h;
	uint64_t now = uv_now(M.o.loop);
	while (M.timeouts.head && M.timeouts.head->deadline <= now) {
		fork_t *f = M.timeouts.head;
		timeouts_remove(f);
		LOGD("messaging", "no final answer from the contacts of %s in time", f->aor);
		fork_failed(f);
	}
	if (!M.purge_inflight && db_is_up() && (M.purge_again || now - M.last_purge >= PURGE_EVERY_MS)) {
		M.last_purge = now;
		M.purge_again = false;
		char nowbuf[24];
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
		const char *params[1] = {nowbuf};
		if (db_exec("msg_purge", 1, params, purge_done, NULL) == 0)
			M.purge_inflight = true;
	}
}

struct recount_ctx {
	char aor[AOR_MAX];
};

static void recount_done(void *arg, int err, PGresult *res)
{
	struct recount_ctx *c = arg;
	if (!err && !M.closing && PQntuples(res) == 1) {
		unsigned n = (unsigned)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
		mbox_t *b = n ? box_get(c->aor) : box_find(c->aor);
		if (b && b->count != n) {
			b->count = n;
			announce(b->aor, n);
		}
		if (b && n && loc_find(b->aor))
			deliver_pump(b);
		else if (b)
			box_maybe_drop(b);
	}
	free(c);
}

/* simplectl announces a purge (payload: the AOR): count it again. */
static void on_notify(void *arg, const char *channel, const char *payload)
{
	(void)arg;
	(void)channel;
	if (!payload || strncmp(payload, "sip:", 4) != 0 || strlen(payload) >= AOR_MAX)
		return;
	struct recount_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return;
	snprintf(c->aor, sizeof c->aor, "%s", payload);
	char nowbuf[24];
	snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
	const char *params[2] = {c->aor, nowbuf};
	if (db_exec("msg_count", 2, params, recount_done, c) != 0)
		free(c);
}

/* After start-up (the loop runs): deliver what was stored for users
 * whose bindings survived the restart. */
static void kick_one(hnode_t *n, void *arg)
{
	(void)arg;
	mbox_t *b = container_of(n, mbox_t, node);
	if (b->count && loc_find(b->aor))
		deliver_pump(b);
}

static void on_kick(uv_timer_t *h)
{
	(void)h;
	if (!db_is_up()) {
		uv_timer_start(&M.kick, on_kick, 1000, 0);
		return;
	}
	htable_foreach(&M.boxes, kick_one, NULL);
}

/* --- the MESSAGE handler ------------------------------------------------ */

typedef struct hctx {
	txn_t *t;
	char aor[AOR_MAX];
} hctx_t;

static void process(txn_t *t, const char *aor)
{
	const loc_aor_t *a = loc_find(aor);
	if (a && a->count) {
		relay(t, aor, a, false);
		return;
	}
	sipmsg_t *req = txn_request(t);
	if (is_composing(req->m)) {
		/* RFC 3994 §4: an indication is of no use later; never stored. */
		txn_reply(t, 480, "Temporarily Unavailable - Not Online", NULL, NULL, NULL, 0);
		return;
	}
	mbox_t *b = box_find(aor);
	store_enqueue(t, aor, b && b->count);
}

static void auth_done(void *arg, authn_result_t result, const char *user)
{
	hctx_t *c = arg;
	if (result == AUTHN_OK && !txn_answered(c->t) && !M.closing) {
		sipmsg_t *req = txn_request(c->t);
		const char *fu = req->m->from->url->username;
		if (authn_enabled() && (!user || !fu || strcmp(user, fu) != 0))
			txn_reply(c->t, 403, "Forbidden - Credentials Do Not Match From", NULL, NULL, NULL, 0);
		else
			process(c->t, c->aor);
	}
	txn_unref(c->t);
	free(c);
}

void msg_handle_message(txn_t *t, sipmsg_t *req)
{
	osip_message_t *m = req->m;
	osip_uri_t *ruri = m->req_uri;
	if (!M.up) {
		reply_503(t, "Service Unavailable - Messaging Not Ready");
		return;
	}
	/* Size: the body (the transport already bounds the whole message). */
	size_t blen = 0;
	for (int i = 0; i < osip_list_size(&m->bodies); i++) {
		osip_body_t *b = osip_list_get(&m->bodies, i);
		blen += b ? b->length : 0;
	}
	if (blen > M.o.max_size) {
		txn_reply(t, 413, "Request Entity Too Large - Message Too Large", NULL, NULL, NULL, 0);
		return;
	}
	if (!ruri || !ruri->host || !ruri->username || !*ruri->username) {
		txn_reply(t, 404, "Not Found - No User In Request-URI", NULL, NULL, NULL, 0);
		return;
	}
	/* The recipient: user@our-domain.  A Request-URI naming one of our
	 * addresses means the To domain if it is ours, else the default. */
	const char *domain = NULL;
	if (M.o.is_local_domain(ruri->host))
		domain = ruri->host;
	else if (M.o.is_local_address(ruri->host))
		domain = (m->to->url->host && M.o.is_local_domain(m->to->url->host)) ? m->to->url->host
										      : M.o.default_domain;
	if (!domain) {
		if (!M.o.relay) {
			txn_reply(t, 403, "Forbidden - Relaying Denied", NULL, NULL, NULL, 0);
			return;
		}
		relay_foreign(t);
		return;
	}
	hctx_t *c = calloc(1, sizeof *c);
	if (!c) {
		txn_reply(t, 500, "Server Internal Error - Out Of Memory", NULL, NULL, NULL, 0);
		return;
	}
	/* memcpy, not snprintf: this runs for every MESSAGE. */
	size_t ul = strlen(ruri->username), dl = strlen(domain);
	if (4 + ul + 1 + dl + 1 > sizeof c->aor) {
		free(c);
		txn_reply(t, 414, NULL, NULL, NULL, NULL, 0);
		return;
	}
	memcpy(c->aor, "sip:", 4);
	memcpy(c->aor + 4, ruri->username, ul);
	c->aor[4 + ul] = '@';
	for (size_t i = 0; i <= dl; i++)
		c->aor[5 + ul + i] = (char)tolower((unsigned char)domain[i]);
	c->t = t;
	txn_ref(t);
	/* Local senders prove who they are (407, RFC 3428 §8 and §11);
	 * senders of other domains cannot be challenged by us. */
	const char *fhost = m->from->url->host;
	if (!fhost || !M.o.is_local_domain(fhost)) {
		auth_done(c, AUTHN_OK, NULL);
		return;
	}
	char realm[256], user[AUTH_USER_MAX];
	size_t i = 0;
	for (; fhost[i] && i + 1 < sizeof realm; i++)
		realm[i] = (char)tolower((unsigned char)fhost[i]);
	realm[i] = '\0';
	authn_result_t r = authn_check(t, realm, true, user, sizeof user, auth_done, c);
	if (r == AUTHN_OK)
		auth_done(c, AUTHN_OK, user);
	else if (r == AUTHN_ANSWERED)
		auth_done(c, AUTHN_ANSWERED, NULL);
}

/* --- life cycle --------------------------------------------------------- */

static int count_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	unsigned long total = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		mbox_t *b = box_get(PQgetvalue(r, i, 0));
		if (b) {
			b->count = (unsigned)strtoul(PQgetvalue(r, i, 1), NULL, 10);
			total += b->count;
		}
	}
	LOGI("messaging", "%lu stored message(s) for %zu user(s)", total, M.boxes.count);
	return 0;
}

static int load_counts(const char *conninfo)
{
	char nowbuf[24];
	snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
	const char *params[1] = {nowbuf};
	return db_load_sync(conninfo, "mailbox counts", SQL_LOAD, 1, params, count_rows, NULL);
}

int msg_init(const msg_options_t *opts)
{
	/* Listeners may register before msg_init (presence starts first). */
	int nl = M.nlisteners;
	listener_t keep[MAX_LISTENERS];
	memcpy(keep, M.listeners, sizeof keep);
	memset(&M, 0, sizeof M);
	memcpy(M.listeners, keep, sizeof keep);
	M.nlisteners = nl;
	M.o = *opts;
	if (!M.o.max_size)
		M.o.max_size = 65536;
	if (!M.o.store_ttl_s)
		M.o.store_ttl_s = 7 * 24 * 3600;
	if (!M.o.deliver_window)
		M.o.deliver_window = 1;
	if (!M.o.fork_timeout_ms)
		M.o.fork_timeout_ms = 4000;
	if (!M.o.retry_after_s)
		M.o.retry_after_s = 5;
	if (!M.o.loop || !M.o.is_local_domain || !M.o.is_local_address)
		return -EINVAL;
	M.next.tail = &M.next.items;
	int err = htable_init(&M.boxes, 1024);
	if (err)
		return err;
	const char *const names[] = {"msg_store", "msg_fetch", "msg_delete", "msg_purge", "msg_count"};
	const char *const sqls[] = {SQL_STORE, SQL_FETCH, SQL_DELETE, SQL_PURGE, SQL_COUNT};
	for (size_t i = 0; i < sizeof names / sizeof names[0] && !err; i++)
		err = db_prepare(names[i], sqls[i]);
	if (!err && M.o.conninfo)
		err = load_counts(M.o.conninfo);
	if (!err)
		err = loc_on_change(on_location_change, NULL);
	if (!err)
		err = db_listen(NOTIFY_CHANNEL, on_notify, NULL);
	if (err)
		return err;
	uv_prepare_init(M.o.loop, &M.flush);
	uv_prepare_start(&M.flush, on_prepare);
	uv_unref((uv_handle_t *)&M.flush);
	uv_timer_init(M.o.loop, &M.tick);
	uv_timer_start(&M.tick, on_tick, 100, 100);
	uv_unref((uv_handle_t *)&M.tick);
	uv_timer_init(M.o.loop, &M.kick);
	uv_timer_start(&M.kick, on_kick, 200, 0);
	uv_unref((uv_handle_t *)&M.kick);
	M.last_purge = uv_now(M.o.loop) - PURGE_EVERY_MS + 2000; /* first purge soon after start */
	M.up = true;
	return 0;
}

static void free_box(hnode_t *n, void *arg)
{
	(void)arg;
	mbox_t *b = container_of(n, mbox_t, node);
	box_clear_rows(b);
	free(b->aor);
	free(b);
}

void msg_shutdown(void)
{
	if (!M.up)
		return;
	M.up = false;
	M.closing = true;
	uv_prepare_stop(&M.flush);
	uv_close((uv_handle_t *)&M.flush, NULL);
	uv_timer_stop(&M.tick);
	uv_close((uv_handle_t *)&M.tick, NULL);
	uv_timer_stop(&M.kick);
	uv_close((uv_handle_t *)&M.kick, NULL);
	/* Undecided forks: decided now (quietly: M.closing); the branches'
	 * references go when txn_shutdown reports their transactions. */
	while (M.timeouts.head) {
		fork_t *f = M.timeouts.head;
		timeouts_remove(f);
		f->decided = true;
		fork_unref(f);
	}
	for (sitem_t *it = M.next.items; it;) {
		sitem_t *next = it->next;
		sitem_free(it);
		it = next;
	}
	memset(&M.next, 0, sizeof M.next);
	htable_foreach(&M.boxes, free_box, NULL);
	htable_destroy(&M.boxes);
	free(M.del_next.ids);
	memset(&M.del_next, 0, sizeof M.del_next);
	for (size_t i = 0; i < sizeof M.arr / sizeof M.arr[0]; i++)
		buf_free(&M.arr[i]);
	buf_free(&M.fwd_vias);
	buf_free(&M.fwd_extra);
}
