/* Location service: bindings in memory, batched write-through to
 * PostgreSQL (see location.h for the design). */
#include "server/registrar/location.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/base/buf.h"
#include "server/base/log.h"
#include "server/db/db.h"

#define MAX_LISTENERS 8

enum { DA, DC, IA, IC, IE, IQ, ICI, ICS, ISRC, IUA, IINST, IPATH, INODE, IUPD, NARR };

typedef struct dirty {
	hnode_t node;
	struct dirty *next;
	char *aor;
	char *contact;
	/* The binding as it was before this batch changed it (NULL: there
	 * was none), so that a failed batch can be undone in memory. */
	loc_binding_t *before;
} dirty_t;

typedef struct waiter {
	struct waiter *next;
	loc_commit_cb cb;
	void *arg;
} waiter_t;

typedef struct batch {
	dirty_t *rows;      /* keys written by this batch */
	waiter_t *waiters;
	waiter_t **waiters_tail;
	unsigned nrows;
} batch_t;

static struct {
	uv_loop_t *loop;
	loc_options_t opts;
	char *node_name;
	htable_t aors;
	unsigned long nbindings;
	/* Changes not yet sent. */
	htable_t dirty_index;
	batch_t next;
	/* The batch being committed, if any. */
	batch_t *inflight;
	uv_prepare_t flush;
	uv_timer_t tick;
	size_t sweep_bucket;
	uint64_t last_purge;
	struct { loc_change_cb cb; void *arg; } listeners[MAX_LISTENERS];
	int nlisteners;
	/* AORs whose memory must be re-read from the database (a batch
	 * failed); retried every tick until it works. */
	char **reload;
	size_t nreload, reload_cap;
	bool reload_inflight;
	buf_t arrays[NARR]; /* batch parameters, reused */
} L;

static const char *const SQL_BATCH =
	"WITH del AS ("
	"  DELETE FROM location l USING unnest($1::text[], $2::text[]) AS d(aor, contact)"
	"  WHERE l.aor = d.aor AND l.contact = d.contact RETURNING 1),"
	" ins AS ("
	"  INSERT INTO location (aor, contact, expires_at, q, call_id, cseq, source,"
	"                        user_agent, instance, path, node, updated_at)"
	"  SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::real[], $7::text[],"
	"                       $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[],"
	"                       $13::text[], $14::bigint[])"
	"  ON CONFLICT (aor, contact) DO UPDATE SET expires_at = EXCLUDED.expires_at,"
	"     q = EXCLUDED.q, call_id = EXCLUDED.call_id, cseq = EXCLUDED.cseq,"
	"     source = EXCLUDED.source, user_agent = EXCLUDED.user_agent,"
	"     instance = EXCLUDED.instance, path = EXCLUDED.path, node = EXCLUDED.node,"
	"     updated_at = EXCLUDED.updated_at RETURNING 1)"
	" SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM ins)";

#define LOC_COLUMNS "aor, contact, expires_at, q, call_id, cseq, source, user_agent, instance, path, updated_at"

static const char *const SQL_RELOAD =
	"SELECT " LOC_COLUMNS " FROM location WHERE aor = ANY($1::text[]) AND expires_at > $2";
static const char *const SQL_LOAD_ALL =
	"SELECT " LOC_COLUMNS " FROM location WHERE expires_at > $1";
/* Bounded purge: expired rows are harmless (loads filter them) but must
 * not accumulate; at most 1000 per run. */
static const char *const SQL_PURGE =
	"DELETE FROM location WHERE ctid = ANY(ARRAY("
	"  SELECT ctid FROM location WHERE expires_at < $1 LIMIT 1000))";

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* --- AOR table ---------------------------------------------------------- */

static bool aor_eq(const hnode_t *n, const void *key)
{
	return strcmp(container_of(n, loc_aor_t, node)->aor, key) == 0;
}

static loc_aor_t *aor_get(const char *aor)
{
	hnode_t *n = htable_find(&L.aors, hash_str(aor), aor_eq, aor);
	return n ? container_of(n, loc_aor_t, node) : NULL;
}

const loc_aor_t *loc_find(const char *aor) { return aor_get(aor); }

void loc_binding_free(loc_binding_t *b)
{
	if (!b)
		return;
	free(b->contact);
	free(b->call_id);
	free(b->user_agent);
	free(b->instance);
	free(b->path);
	free(b);
}

static void aor_free(loc_aor_t *a)
{
	loc_binding_t *b = a->bindings;
	while (b) {
		loc_binding_t *next = b->next;
		loc_binding_free(b);
		L.nbindings--;
		b = next;
	}
	free(a->aor);
	free(a);
}

static void aor_drop_if_empty(loc_aor_t *a)
{
	if (a->bindings)
		return;
	htable_remove(&L.aors, &a->node);
	aor_free(a);
}

/* Keeps the list ordered by q descending, newest first among equals, so
 * lookups hand out contacts in the order a forking proxy wants them. */
static void insert_sorted(loc_aor_t *a, loc_binding_t *b)
{
	loc_binding_t **pp = &a->bindings;
	while (*pp && ((*pp)->q > b->q || ((*pp)->q == b->q && (*pp)->updated_at > b->updated_at)))
		pp = &(*pp)->next;
	b->next = *pp;
	*pp = b;
	a->count++;
	L.nbindings++;
}

static loc_binding_t *unlink_binding(loc_aor_t *a, const char *contact)
{
	for (loc_binding_t **pp = &a->bindings; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->contact, contact) == 0) {
			loc_binding_t *b = *pp;
			*pp = b->next;
			b->next = NULL;
			a->count--;
			L.nbindings--;
			return b;
		}
	}
	return NULL;
}

/* --- dirty tracking ----------------------------------------------------- */

struct dirty_key {
	const char *aor, *contact;
};

static bool dirty_eq(const hnode_t *n, const void *key)
{
	const dirty_t *d = container_of(n, dirty_t, node);
	const struct dirty_key *k = key;
	return strcmp(d->aor, k->aor) == 0 && strcmp(d->contact, k->contact) == 0;
}

static uint64_t dirty_hash(const char *aor, const char *contact)
{
	return hash_mix(hash_str(aor), hash_str(contact));
}

static char *strdup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static loc_binding_t *binding_dup(const loc_binding_t *b)
{
	loc_binding_t *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	*c = *b;
	c->next = NULL;
	c->contact = strdup(b->contact);
	c->call_id = strdup(b->call_id);
	c->user_agent = strdup_or_null(b->user_agent);
	c->instance = strdup_or_null(b->instance);
	c->path = strdup_or_null(b->path);
	if (!c->contact || !c->call_id || (b->user_agent && !c->user_agent) ||
	    (b->instance && !c->instance) || (b->path && !c->path)) {
		loc_binding_free(c);
		return NULL;
	}
	return c;
}

static const loc_binding_t *binding_in(const loc_aor_t *a, const char *contact)
{
	for (const loc_binding_t *b = a ? a->bindings : NULL; b; b = b->next) {
		if (strcmp(b->contact, contact) == 0)
			return b;
	}
	return NULL;
}

/* Marks (aor, contact) dirty for the next batch; the first time in a
 * batch it also saves the binding as it is now (call it before the
 * change), to undo the change if the batch fails. */
static int mark_dirty(const char *aor, const char *contact)
{
	struct dirty_key k = {aor, contact};
	uint64_t h = dirty_hash(aor, contact);
	if (htable_find(&L.dirty_index, h, dirty_eq, &k))
		return 0;
	dirty_t *d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->aor = strdup(aor);
	d->contact = strdup(contact);
	const loc_binding_t *cur = binding_in(aor_get(aor), contact);
	if (cur)
		d->before = binding_dup(cur);
	if (!d->aor || !d->contact || (cur && !d->before)) {
		free(d->aor);
		free(d->contact);
		loc_binding_free(d->before);
		free(d);
		return -ENOMEM;
	}
	htable_insert(&L.dirty_index, &d->node, h);
	d->next = L.next.rows;
	L.next.rows = d;
	L.next.nrows++;
	return 0;
}

static void free_rows(dirty_t *d)
{
	while (d) {
		dirty_t *next = d->next;
		free(d->aor);
		free(d->contact);
		loc_binding_free(d->before);
		free(d);
		d = next;
	}
}

bool loc_overloaded(void)
{
	unsigned pending = L.next.nrows + (L.inflight ? L.inflight->nrows : 0);
	return L.opts.max_pending && pending >= L.opts.max_pending;
}

int loc_put(const char *aor, loc_binding_t *b)
{
	loc_aor_t *a = aor_get(aor);
	if (!a) {
		a = calloc(1, sizeof *a);
		if (!a)
			return -ENOMEM;
		a->aor = strdup(aor);
		if (!a->aor) {
			free(a);
			return -ENOMEM;
		}
		htable_insert(&L.aors, &a->node, hash_str(aor));
	}
	int err = mark_dirty(aor, b->contact);
	if (err) {
		loc_binding_free(b);
		aor_drop_if_empty(a);
		return err;
	}
	loc_binding_free(unlink_binding(a, b->contact));
	insert_sorted(a, b);
	return 0;
}

int loc_remove(const char *aor, const char *contact)
{
	loc_aor_t *a = aor_get(aor);
	if (!a)
		return -ENOENT;
	if (!binding_in(a, contact))
		return -ENOENT;
	int err = mark_dirty(aor, contact);
	if (err)
		return err;
	loc_binding_free(unlink_binding(a, contact));
	aor_drop_if_empty(a);
	return 0;
}

int loc_commit(loc_commit_cb cb, void *arg)
{
	waiter_t *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	*L.next.waiters_tail = w;
	L.next.waiters_tail = &w->next;
	return 0;
}

/* --- change listeners --------------------------------------------------- */

int loc_on_change(loc_change_cb cb, void *arg)
{
	if (L.nlisteners >= MAX_LISTENERS)
		return -ENOSPC;
	L.listeners[L.nlisteners].cb = cb;
	L.listeners[L.nlisteners].arg = arg;
	L.nlisteners++;
	return 0;
}

void loc_announce(const char *aor)
{
	const loc_aor_t *a = aor_get(aor);
	for (int i = 0; i < L.nlisteners; i++)
		L.listeners[i].cb(L.listeners[i].arg, aor, a);
}

/* --- sources ------------------------------------------------------------ */

int loc_source_format(const tp_peer_t *p, char *out, size_t len)
{
	char ip[64];
	uint16_t port = 0;
	if (tp_addr_to_str(&p->addr, ip, sizeof ip, &port) != 0)
		return -EINVAL;
	const char *proto = p->proto == TP_TCP ? "tcp" : "udp";
	int n = p->addr.ss_family == AF_INET6 ? snprintf(out, len, "%s:[%s]:%u", proto, ip, port)
					      : snprintf(out, len, "%s:%s:%u", proto, ip, port);
	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}

int loc_source_parse(const char *s, tp_peer_t *out)
{
	memset(out, 0, sizeof *out);
	out->listener = -1;
	if (strncmp(s, "udp:", 4) == 0)
		out->proto = TP_UDP;
	else if (strncmp(s, "tcp:", 4) == 0)
		out->proto = TP_TCP;
	else
		return -EINVAL;
	s += 4;
	char host[64];
	const char *colon;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof host)
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	unsigned long port = strtoul(colon + 1, NULL, 10);
	if (port == 0 || port > 65535)
		return -EINVAL;
	return tp_addr_from_str(host, (uint16_t)port, &out->addr);
}

/* --- loading rows ------------------------------------------------------- */

static char *dup_or_null(PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return NULL;
	return strdup(PQgetvalue(r, row, col));
}

/* Builds memory from result rows (columns in LOC_COLUMNS order). */
static void load_rows(PGresult *r)
{
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		loc_binding_t *b = calloc(1, sizeof *b);
		if (!b)
			continue;
		const char *aor = PQgetvalue(r, i, 0);
		b->contact = strdup(PQgetvalue(r, i, 1));
		b->expires_at = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		b->q = strtof(PQgetvalue(r, i, 3), NULL);
		b->call_id = strdup(PQgetvalue(r, i, 4));
		b->cseq = (uint32_t)strtoul(PQgetvalue(r, i, 5), NULL, 10);
		if (loc_source_parse(PQgetvalue(r, i, 6), &b->source) != 0)
			b->source.proto = TP_UDP;
		b->user_agent = dup_or_null(r, i, 7);
		b->instance = dup_or_null(r, i, 8);
		b->path = dup_or_null(r, i, 9);
		b->updated_at = strtoll(PQgetvalue(r, i, 10), NULL, 10);
		if (!b->contact || !b->call_id) {
			loc_binding_free(b);
			continue;
		}
		loc_aor_t *a = aor_get(aor);
		if (!a) {
			a = calloc(1, sizeof *a);
			if (!a || !(a->aor = strdup(aor))) {
				free(a);
				loc_binding_free(b);
				continue;
			}
			htable_insert(&L.aors, &a->node, hash_str(aor));
		}
		loc_binding_free(unlink_binding(a, b->contact));
		insert_sorted(a, b);
	}
}

/* --- flushing ----------------------------------------------------------- */

static void add_reload(const char *aor)
{
	for (size_t i = 0; i < L.nreload; i++) {
		if (strcmp(L.reload[i], aor) == 0)
			return;
	}
	if (L.nreload == L.reload_cap) {
		size_t cap = L.reload_cap ? L.reload_cap * 2 : 64;
		char **p = realloc(L.reload, cap * sizeof *p);
		if (!p)
			return;
		L.reload = p;
		L.reload_cap = cap;
	}
	char *dup = strdup(aor);
	if (dup)
		L.reload[L.nreload++] = dup;
}

struct reload_ctx {
	char **aors;
	size_t n;
};

static void reload_done(void *arg, int err, PGresult *res)
{
	struct reload_ctx *ctx = arg;
	L.reload_inflight = false;
	if (err) {
		/* Still down: keep them for the next tick. */
		for (size_t i = 0; i < ctx->n; i++) {
			add_reload(ctx->aors[i]);
			free(ctx->aors[i]);
		}
	} else {
		for (size_t i = 0; i < ctx->n; i++) {
			loc_aor_t *a = aor_get(ctx->aors[i]);
			if (a) {
				htable_remove(&L.aors, &a->node);
				aor_free(a);
			}
		}
		load_rows(res);
		for (size_t i = 0; i < ctx->n; i++) {
			loc_announce(ctx->aors[i]);
			free(ctx->aors[i]);
		}
		LOGI("location", "reloaded %zu address-of-record(s) after a failed write", ctx->n);
	}
	free(ctx->aors);
	free(ctx);
}

static void start_reload(void)
{
	if (L.reload_inflight || !L.nreload || !db_is_up())
		return;
	struct reload_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return;
	buf_t arr;
	buf_init(&arr, 0);
	db_array_begin(&arr);
	for (size_t i = 0; i < L.nreload; i++)
		db_array_add(&arr, L.reload[i]);
	db_array_end(&arr);
	char nowbuf[24];
	snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
	const char *params[2] = {buf_cstr(&arr), nowbuf};
	ctx->aors = L.reload;
	ctx->n = L.nreload;
	int err = arr.err ? arr.err : db_exec("loc_reload", 2, params, reload_done, ctx);
	buf_free(&arr);
	if (err) {
		free(ctx);
		return;
	}
	L.reload = NULL;
	L.nreload = L.reload_cap = 0;
	L.reload_inflight = true;
}

/* Puts every row of a batch back as it was before the batch (memory
 * only).  Rows are restored to their saved state whatever happened to
 * them since, so later batches must be undone first. */
static void undo_rows(dirty_t *rows)
{
	for (dirty_t *d = rows; d; d = d->next) {
		loc_aor_t *a = aor_get(d->aor);
		if (a) {
			loc_binding_free(unlink_binding(a, d->contact));
			aor_drop_if_empty(a);
		}
		if (d->before) {
			loc_binding_t *b = d->before;
			d->before = NULL;
			a = aor_get(d->aor);
			if (!a) {
				a = calloc(1, sizeof *a);
				if (!a || !(a->aor = strdup(d->aor))) {
					free(a);
					loc_binding_free(b);
					continue;
				}
				htable_insert(&L.aors, &a->node, hash_str(d->aor));
			}
			insert_sorted(a, b);
		}
		add_reload(d->aor);
	}
}

static void fail_waiters(waiter_t *w, int err)
{
	while (w) {
		waiter_t *next = w->next;
		w->cb(w->arg, err);
		free(w);
		w = next;
	}
}

static void finish_batch(batch_t *b, int err)
{
	if (err) {
		/* A 503 must mean "nothing changed": undo this batch in memory,
		 * and the changes queued behind it, which were built on top of
		 * it (newest first).  The AORs are re-read from the database
		 * as soon as it answers, in case the failed statement did
		 * commit before the connection broke. */
		dirty_t *pending = L.next.rows;
		waiter_t *pending_waiters = L.next.waiters;
		for (dirty_t *d = pending; d; d = d->next)
			htable_remove(&L.dirty_index, &d->node);
		memset(&L.next, 0, sizeof L.next);
		L.next.waiters_tail = &L.next.waiters;
		undo_rows(pending);
		undo_rows(b->rows);
		free_rows(pending);
		fail_waiters(pending_waiters, err);
	}
	waiter_t *w = b->waiters;
	while (w) {
		waiter_t *next = w->next;
		w->cb(w->arg, err);
		free(w);
		w = next;
	}
	free_rows(b->rows);
	free(b);
	if (err)
		start_reload();
}

static void batch_done(void *arg, int err, PGresult *res)
{
	batch_t *b = arg;
	(void)res;
	L.inflight = NULL;
	if (err)
		LOGW("location", "writing %u binding(s) failed (%d); answering 503", b->nrows, err);
	finish_batch(b, err);
}

static void flush(uv_prepare_t *h)
{
	(void)h;
	if (L.inflight || (!L.next.rows && !L.next.waiters))
		return;
	batch_t *b = calloc(1, sizeof *b);
	if (!b)
		return;
	*b = L.next;
	if (!b->waiters)
		b->waiters_tail = &b->waiters;
	memset(&L.next, 0, sizeof L.next);
	L.next.waiters_tail = &L.next.waiters;
	/* The keys leave the dirty index: new changes start a new batch. */
	for (dirty_t *d = b->rows; d; d = d->next)
		htable_remove(&L.dirty_index, &d->node);
	if (!b->rows) {
		finish_batch(b, 0);
		return;
	}

	/* The array buffers live as long as the process: a batch of
	 * thousands of rows makes them large, and freeing large blocks every
	 * loop turn makes glibc consolidate its free lists each time. */
	buf_t *arr = L.arrays;
	for (int i = 0; i < NARR; i++) {
		buf_reset(&arr[i]);
		db_array_begin(&arr[i]);
	}
	int64_t now = now_s();
	for (dirty_t *d = b->rows; d; d = d->next) {
		const loc_aor_t *a = aor_get(d->aor);
		const loc_binding_t *bd = NULL;
		for (const loc_binding_t *x = a ? a->bindings : NULL; x; x = x->next) {
			if (strcmp(x->contact, d->contact) == 0) {
				bd = x;
				break;
			}
		}
		if (!bd || bd->expires_at <= now) {
			db_array_add(&arr[DA], d->aor);
			db_array_add(&arr[DC], d->contact);
			continue;
		}
		char num[32], src[96];
		db_array_add(&arr[IA], d->aor);
		db_array_add(&arr[IC], bd->contact);
		snprintf(num, sizeof num, "%" PRId64, bd->expires_at);
		db_array_add(&arr[IE], num);
		snprintf(num, sizeof num, "%.3f", (double)bd->q);
		db_array_add(&arr[IQ], num);
		db_array_add(&arr[ICI], bd->call_id);
		snprintf(num, sizeof num, "%u", bd->cseq);
		db_array_add(&arr[ICS], num);
		if (loc_source_format(&bd->source, src, sizeof src) != 0)
			snprintf(src, sizeof src, "udp:0.0.0.0:5060");
		db_array_add(&arr[ISRC], src);
		db_array_add(&arr[IUA], bd->user_agent);
		db_array_add(&arr[IINST], bd->instance);
		db_array_add(&arr[IPATH], bd->path);
		db_array_add(&arr[INODE], L.node_name);
		snprintf(num, sizeof num, "%" PRId64, bd->updated_at);
		db_array_add(&arr[IUPD], num);
	}
	const char *params[NARR];
	int err = 0;
	for (int i = 0; i < NARR; i++) {
		db_array_end(&arr[i]);
		if (arr[i].err)
			err = arr[i].err;
		params[i] = buf_cstr(&arr[i]);
	}
	if (!err)
		err = db_exec("loc_batch", NARR, params, batch_done, b);
	if (err) {
		LOGW("location", "cannot write %u binding(s): %s", b->nrows,
		     err == -ENOTCONN ? "database unavailable" : strerror(-err));
		finish_batch(b, err);
		return;
	}
	L.inflight = b;
}

/* --- housekeeping ------------------------------------------------------- */

struct expire_ctx {
	int64_t now;
	char **changed;
	size_t n, cap;
};

static void expire_aor(loc_aor_t *a, struct expire_ctx *ctx)
{
	bool changed = false;
	for (loc_binding_t **pp = &a->bindings; *pp;) {
		if ((*pp)->expires_at <= ctx->now) {
			loc_binding_t *b = *pp;
			*pp = b->next;
			a->count--;
			L.nbindings--;
			loc_binding_free(b);
			changed = true;
		} else {
			pp = &(*pp)->next;
		}
	}
	if (!changed)
		return;
	if (ctx->n == ctx->cap) {
		size_t cap = ctx->cap ? ctx->cap * 2 : 16;
		char **p = realloc(ctx->changed, cap * sizeof *p);
		if (!p)
			return;
		ctx->changed = p;
		ctx->cap = cap;
	}
	ctx->changed[ctx->n++] = strdup(a->aor);
	aor_drop_if_empty(a);
}

static bool aor_has_expired(hnode_t *e, void *arg)
{
	int64_t now = *(int64_t *)arg;
	for (const loc_binding_t *b = container_of(e, loc_aor_t, node)->bindings; b; b = b->next) {
		if (b->expires_at <= now)
			return true;
	}
	return false;
}

static void purge_done(void *arg, int err, PGresult *res)
{
	(void)arg;
	if (!err && res && PQcmdTuples(res)[0] && strcmp(PQcmdTuples(res), "0") != 0)
		LOGD("location", "purged %s expired binding row(s)", PQcmdTuples(res));
}

/* Once a second: expire bindings in a slice of the table (a quarter of
 * the buckets, at least 1024), so the cost per tick stays bounded however
 * many AORs there are; retry reloads; every 30 s purge expired rows. */
static void tick(uv_timer_t *h)
{
	(void)h;
	struct expire_ctx ctx = {.now = now_s()};
	size_t n = 0;
	hnode_t **due = htable_slice_collect(&L.aors, &L.sweep_bucket, 1024, aor_has_expired, &ctx.now, &n);
	for (size_t i = 0; i < n; i++)
		expire_aor(container_of(due[i], loc_aor_t, node), &ctx);
	free(due);
	for (size_t i = 0; i < ctx.n; i++) {
		if (ctx.changed[i]) {
			LOGD("location", "binding(s) of %s expired", ctx.changed[i]);
			loc_announce(ctx.changed[i]);
			free(ctx.changed[i]);
		}
	}
	free(ctx.changed);
	start_reload();
	uint64_t now_ms = uv_now(L.loop);
	if (now_ms - L.last_purge >= 30000 && db_is_up()) {
		L.last_purge = now_ms;
		char nowbuf[24];
		snprintf(nowbuf, sizeof nowbuf, "%" PRId64, ctx.now);
		const char *params[1] = {nowbuf};
		db_exec("loc_purge", 1, params, purge_done, NULL);
	}
}

/* --- init --------------------------------------------------------------- */

static int startup_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	load_rows(r);
	return 0;
}

int loc_init(uv_loop_t *loop, const loc_options_t *opts, const char *conninfo)
{
	memset(&L, 0, sizeof L);
	L.loop = loop;
	L.opts = *opts;
	L.node_name = strdup(opts->node_name ? opts->node_name : "");
	L.next.waiters_tail = &L.next.waiters;
	int err = htable_init(&L.aors, 1024);
	if (!err)
		err = htable_init(&L.dirty_index, 1024);
	if (err)
		return err;
	err = db_prepare("loc_batch", SQL_BATCH);
	if (!err)
		err = db_prepare("loc_reload", SQL_RELOAD);
	if (!err)
		err = db_prepare("loc_purge", SQL_PURGE);
	if (err)
		return err;

	/* Start-up only: a synchronous read before the loop serves anyone. */
	char nowbuf[24];
	snprintf(nowbuf, sizeof nowbuf, "%" PRId64, now_s());
	const char *params[1] = {nowbuf};
	err = db_load_sync(conninfo, "bindings", SQL_LOAD_ALL, 1, params, startup_rows, NULL);
	if (err)
		return err;
	LOGI("location", "loaded %lu binding(s) of %zu address-of-record(s)", L.nbindings, L.aors.count);

	uv_prepare_init(loop, &L.flush);
	uv_prepare_start(&L.flush, flush);
	uv_unref((uv_handle_t *)&L.flush);
	uv_timer_init(loop, &L.tick);
	uv_timer_start(&L.tick, tick, 1000, 1000);
	uv_unref((uv_handle_t *)&L.tick);
	L.last_purge = uv_now(loop);
	return 0;
}

static void free_aor_node(hnode_t *n, void *arg)
{
	(void)arg;
	aor_free(container_of(n, loc_aor_t, node));
}

static void free_dirty_node(hnode_t *n, void *arg)
{
	(void)n;
	(void)arg;
}

void loc_shutdown(void)
{
	uv_prepare_stop(&L.flush);
	uv_close((uv_handle_t *)&L.flush, NULL);
	uv_timer_stop(&L.tick);
	uv_close((uv_handle_t *)&L.tick, NULL);
	htable_foreach(&L.aors, free_aor_node, NULL);
	htable_destroy(&L.aors);
	htable_foreach(&L.dirty_index, free_dirty_node, NULL);
	htable_destroy(&L.dirty_index);
	free_rows(L.next.rows);
	waiter_t *w = L.next.waiters;
	while (w) {
		waiter_t *next = w->next;
		w->cb(w->arg, -ECANCELED);
		free(w);
		w = next;
	}
	for (size_t i = 0; i < L.nreload; i++)
		free(L.reload[i]);
	free(L.reload);
	free(L.node_name);
	for (int i = 0; i < NARR; i++)
		buf_free(&L.arrays[i]);
}

unsigned long loc_aor_count(void) { return L.aors.count; }
unsigned long loc_binding_count(void) { return L.nbindings; }
