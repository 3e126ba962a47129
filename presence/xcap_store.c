/* The XCAP document store (see xcap_store.h). */
#include "presence/xcap_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/htable.h"
#include "server/base/log.h"
#include "server/db/db.h"

#define XSTORE_CHANNEL "simpled_xcap"
#define MAX_OBSERVERS 4

typedef struct xdoc {
	hnode_t node;
	xstore_doc_t pub; /* pub.body == NULL: no committed version (yet) */
	char *auid, *owner, *name;
	bool busy;         /* a write of ours is in flight */
	bool reload_again; /* an announcement arrived while busy */
	bool reloading;
	unsigned pins;     /* observers running: keep the node */
} xdoc_t;

typedef struct xwrite {
	xdoc_t *doc;
	char *body; /* NULL: delete */
	size_t len;
	char etag[40];
	xstore_done_cb done;
	void *arg;
} xwrite_t;

static struct {
	htable_t docs;
	struct { xstore_change_cb cb; void *arg; } obs[MAX_OBSERVERS];
	int nobs;
	bool started;
} XS;

static const char *const SQL_ALL = "SELECT auid, owner, name, etag, body FROM xcap_documents";
static const char *const SQL_ONE =
	"SELECT etag, body FROM xcap_documents WHERE auid = $1 AND owner = $2 AND name = $3";
static const char *const SQL_PUT =
	"INSERT INTO xcap_documents (auid, owner, name, etag, body) VALUES ($1, $2, $3, $4, $5) "
	"ON CONFLICT (auid, owner, name) DO UPDATE SET etag = EXCLUDED.etag, body = EXCLUDED.body, "
	"updated_at = extract(epoch FROM now())::bigint";
static const char *const SQL_DEL =
	"DELETE FROM xcap_documents WHERE auid = $1 AND owner = $2 AND name = $3";

/* --- the in-memory table ----------------------------------------------------- */

typedef struct dkey {
	const char *auid, *owner, *name;
} dkey_t;

static uint64_t key_hash(const char *auid, const char *owner, const char *name)
{
	return hash_mix(hash_mix(hash_str(auid), hash_str(owner)), hash_str(name));
}

static bool doc_eq(const hnode_t *n, const void *key)
{
	const xdoc_t *d = container_of(n, xdoc_t, node);
	const dkey_t *k = key;
	return strcmp(d->auid, k->auid) == 0 && strcmp(d->owner, k->owner) == 0 &&
	       strcmp(d->name, k->name) == 0;
}

static xdoc_t *doc_find(const char *auid, const char *owner, const char *name)
{
	dkey_t k = { auid, owner, name };
	hnode_t *n = htable_find(&XS.docs, key_hash(auid, owner, name), doc_eq, &k);
	return n ? container_of(n, xdoc_t, node) : NULL;
}

static xdoc_t *doc_get_or_add(const char *auid, const char *owner, const char *name)
{
	xdoc_t *d = doc_find(auid, owner, name);
	if (d)
		return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->auid = strdup(auid);
	d->owner = strdup(owner);
	d->name = strdup(name);
	if (!d->auid || !d->owner || !d->name) {
		free(d->auid);
		free(d->owner);
		free(d->name);
		free(d);
		return NULL;
	}
	d->pub.auid = d->auid;
	d->pub.owner = d->owner;
	d->pub.name = d->name;
	htable_insert(&XS.docs, &d->node, key_hash(auid, owner, name));
	return d;
}

static void doc_clear_version(xdoc_t *d)
{
	free((char *)d->pub.body);
	free((char *)d->pub.etag);
	d->pub.body = NULL;
	d->pub.etag = NULL;
	d->pub.len = 0;
}

/* Replaces the committed version (takes body; copies etag).  Returns
 * -ENOMEM and leaves the old version when the copy fails. */
static int doc_set_version(xdoc_t *d, char *body, size_t len, const char *etag)
{
	char *e = strdup(etag);
	if (!e) {
		free(body);
		return -ENOMEM;
	}
	doc_clear_version(d);
	d->pub.body = body;
	d->pub.len = len;
	d->pub.etag = e;
	return 0;
}

/* Drops a node with no committed version and nothing in flight. */
static void doc_maybe_free(xdoc_t *d)
{
	if (d->pub.body || d->busy || d->reloading || d->pins)
		return;
	htable_remove(&XS.docs, &d->node);
	free(d->auid);
	free(d->owner);
	free(d->name);
	free(d);
}

static void notify_observers(xdoc_t *d)
{
	/* Copies: an observer may write the document again. */
	char auid[XSTORE_MAX_NAME], owner[XSTORE_MAX_NAME], name[XSTORE_MAX_NAME];
	snprintf(auid, sizeof auid, "%s", d->auid);
	snprintf(owner, sizeof owner, "%s", d->owner);
	snprintf(name, sizeof name, "%s", d->name);
	d->pins++;
	for (int i = 0; i < XS.nobs; i++)
		XS.obs[i].cb(XS.obs[i].arg, auid, owner, name, d->pub.body ? &d->pub : NULL);
	d->pins--;
}

static bool name_ok(const char *s)
{
	if (!s || !*s || strlen(s) >= XSTORE_MAX_NAME)
		return false;
	/* The announcement payload is space-separated. */
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* --- reads ------------------------------------------------------------------------ */

const xstore_doc_t *xstore_get(const char *auid, const char *owner, const char *name)
{
	if (!XS.started || !auid || !owner || !name)
		return NULL;
	xdoc_t *d = doc_find(auid, owner, name);
	return d && d->pub.body ? &d->pub : NULL;
}

typedef struct foreach_ctx {
	const char *auid, *owner;
	const xstore_doc_t **hits;
	size_t n, cap;
} foreach_ctx_t;

static void foreach_collect(hnode_t *n, void *arg)
{
	foreach_ctx_t *c = arg;
	xdoc_t *d = container_of(n, xdoc_t, node);
	if (!d->pub.body || strcmp(d->auid, c->auid) != 0 || (c->owner && strcmp(d->owner, c->owner)))
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		const xstore_doc_t **h = realloc(c->hits, cap * sizeof(*h));
		if (!h)
			return;
		c->hits = h;
		c->cap = cap;
	}
	c->hits[c->n++] = &d->pub;
}

void xstore_foreach(const char *auid, const char *owner,
		    void (*fn)(const xstore_doc_t *doc, void *arg), void *arg)
{
	if (!XS.started || !auid)
		return;
	/* Collected first, so fn may start writes (which add nodes). */
	foreach_ctx_t c = { .auid = auid, .owner = owner };
	htable_foreach(&XS.docs, foreach_collect, &c);
	for (size_t i = 0; i < c.n; i++)
		fn(c.hits[i], arg);
	free(c.hits);
}

/* --- writes ----------------------------------------------------------------------- */

static void doc_reload(xdoc_t *d);

static void write_done(void *ctx, int err, PGresult *res)
{
	(void)res;
	xwrite_t *w = ctx;
	xdoc_t *d = w->doc;
	d->busy = false;
	int status = err ? (err == -ECANCELED ? -ECANCELED : -EIO) : 0;
	bool changed = false;
	if (!err) {
		bool put = w->body != NULL;
		if (put) {
			changed = doc_set_version(d, w->body, w->len, w->etag) == 0;
			w->body = NULL; /* taken, or freed on failure */
		} else {
			doc_clear_version(d);
			changed = true;
		}
		if (!changed)
			status = -ENOMEM;
		LOGI("xcap", "%s %s/%s/%s (etag %s)", put ? "stored" : "deleted", d->auid, d->owner,
		     d->name, d->pub.etag ? d->pub.etag : "-");
	} else {
		LOGW("xcap", "write of %s/%s/%s failed (%d): nothing changed", d->auid, d->owner,
		     d->name, err);
	}
	if (w->done)
		w->done(w->arg, status, status == 0 && d->pub.body ? d->pub.etag : NULL);
	free(w->body);
	free(w);
	if (changed)
		notify_observers(d);
	if (d->reload_again && XS.started) {
		d->reload_again = false;
		doc_reload(d);
	}
	doc_maybe_free(d);
}

static int start_write(const char *auid, const char *owner, const char *name, const char *body,
		       size_t len, xstore_done_cb done, void *arg)
{
	if (!XS.started)
		return -ENOTCONN;
	if (!name_ok(auid) || !name_ok(owner) || !name_ok(name))
		return -EINVAL;
	if (body && len > XSTORE_MAX_DOC)
		return -EMSGSIZE;
	if (body && memchr(body, '\0', len))
		return -EINVAL; /* PostgreSQL text cannot hold NUL */
	xdoc_t *d = body ? doc_get_or_add(auid, owner, name) : doc_find(auid, owner, name);
	if (!d || (!body && !d->pub.body))
		return body ? -ENOMEM : -ENOENT;
	if (d->busy)
		return -EBUSY;
	xwrite_t *w = calloc(1, sizeof(*w));
	if (!w) {
		doc_maybe_free(d);
		return -ENOMEM;
	}
	w->doc = d;
	w->done = done;
	w->arg = arg;
	if (body) {
		w->body = malloc(len + 1);
		if (!w->body) {
			free(w);
			doc_maybe_free(d);
			return -ENOMEM;
		}
		memcpy(w->body, body, len);
		w->body[len] = '\0';
		w->len = len;
		xstore_new_etag(w->etag, sizeof w->etag);
	}
	int err;
	if (body) {
		const char *p[5] = { auid, owner, name, w->etag, w->body };
		err = db_exec("xstore_put", 5, p, write_done, w);
	} else {
		const char *p[3] = { auid, owner, name };
		err = db_exec("xstore_del", 3, p, write_done, w);
	}
	if (err) {
		free(w->body);
		free(w);
		doc_maybe_free(d);
		return err;
	}
	d->busy = true;
	return 0;
}

int xstore_put(const char *auid, const char *owner, const char *name, const char *body,
	       size_t len, xstore_done_cb done, void *arg)
{
	if (!body)
		return -EINVAL;
	return start_write(auid, owner, name, body, len, done, arg);
}

int xstore_delete(const char *auid, const char *owner, const char *name, xstore_done_cb done,
		  void *arg)
{
	return start_write(auid, owner, name, NULL, 0, done, arg);
}

/* --- announcements from other writers ------------------------------------------------ */

static void reload_done(void *ctx, int err, PGresult *res)
{
	xdoc_t *d = ctx;
	d->reloading = false;
	if (err == -ECANCELED || !XS.started)
		return;
	if (err) {
		LOGW("xcap", "cannot re-read %s/%s/%s (%d)", d->auid, d->owner, d->name, err);
		doc_maybe_free(d);
		return;
	}
	if (d->busy) {
		/* Our own write decides the next version; read again after it. */
		d->reload_again = true;
		return;
	}
	bool changed = false;
	if (PQntuples(res) == 0) {
		if (d->pub.body) {
			doc_clear_version(d);
			changed = true;
		}
	} else {
		const char *etag = PQgetvalue(res, 0, 0);
		size_t len = (size_t)PQgetlength(res, 0, 1);
		if (!d->pub.etag || strcmp(d->pub.etag, etag) != 0) {
			char *body = malloc(len + 1);
			if (body) {
				memcpy(body, PQgetvalue(res, 0, 1), len);
				body[len] = '\0';
				changed = doc_set_version(d, body, len, etag) == 0;
			}
		}
	}
	if (changed) {
		LOGI("xcap", "reloaded %s/%s/%s (changed elsewhere)", d->auid, d->owner, d->name);
		notify_observers(d);
	}
	doc_maybe_free(d);
}

static void doc_reload(xdoc_t *d)
{
	if (d->reloading)
		return;
	if (d->busy) {
		d->reload_again = true;
		return;
	}
	const char *p[3] = { d->auid, d->owner, d->name };
	if (db_exec("xstore_one", 3, p, reload_done, d) == 0)
		d->reloading = true;
	else
		LOGW("xcap", "cannot re-read %s/%s/%s now", d->auid, d->owner, d->name);
}

static void on_notify(void *ctx, const char *channel, const char *payload)
{
	(void)ctx;
	(void)channel;
	char auid[XSTORE_MAX_NAME], owner[XSTORE_MAX_NAME], name[XSTORE_MAX_NAME];
	if (!payload || strlen(payload) >= XSTORE_MAX_NAME * 3 ||
	    sscanf(payload, "%255s %255s %255s", auid, owner, name) != 3)
		return;
	xdoc_t *d = doc_get_or_add(auid, owner, name);
	if (d) {
		doc_reload(d);
		doc_maybe_free(d);
	}
}

/* --- life cycle ----------------------------------------------------------------------- */

static int load_rows(void *ctx, PGresult *r)
{
	(void)ctx;
	int n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		xdoc_t *d = doc_get_or_add(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
					   PQgetvalue(r, i, 2));
		size_t len = (size_t)PQgetlength(r, i, 4);
		char *body = d ? malloc(len + 1) : NULL;
		if (!body)
			return -ENOMEM;
		memcpy(body, PQgetvalue(r, i, 4), len);
		body[len] = '\0';
		if (doc_set_version(d, body, len, PQgetvalue(r, i, 3)))
			return -ENOMEM;
	}
	LOGI("xcap", "loaded %d document(s)", n);
	return 0;
}

int xstore_init(uv_loop_t *loop, const char *conninfo)
{
	(void)loop;
	int err = htable_init(&XS.docs, 256);
	if (!err)
		err = db_prepare("xstore_one", SQL_ONE);
	if (!err)
		err = db_prepare("xstore_put", SQL_PUT);
	if (!err)
		err = db_prepare("xstore_del", SQL_DEL);
	if (!err && conninfo)
		err = db_load_sync(conninfo, "XCAP documents", SQL_ALL, 0, NULL, load_rows, NULL);
	XS.started = true; /* so shutdown frees a partial load */
	if (!err)
		err = db_listen(XSTORE_CHANNEL, on_notify, NULL);
	return err;
}

int xstore_on_change(xstore_change_cb cb, void *arg)
{
	if (XS.nobs == MAX_OBSERVERS)
		return -ENOSPC;
	XS.obs[XS.nobs].cb = cb;
	XS.obs[XS.nobs].arg = arg;
	XS.nobs++;
	return 0;
}

static void free_doc_node(hnode_t *n, void *arg)
{
	(void)arg;
	xdoc_t *d = container_of(n, xdoc_t, node);
	htable_remove(&XS.docs, n);
	doc_clear_version(d);
	free(d->auid);
	free(d->owner);
	free(d->name);
	free(d);
}

void xstore_shutdown(void)
{
	if (!XS.started)
		return;
	XS.started = false;
	htable_foreach(&XS.docs, free_doc_node, NULL);
	htable_destroy(&XS.docs);
	XS.nobs = 0;
}
