/* The XCAP server (RFC 4825): see xcap.h.
 *
 *   request ─► xcap_uri_parse ─► usage ─► digest (authn_verify, maybe a
 *   query) ─► current document (store / pres-rules view) ─► If-Match /
 *   If-None-Match ─► GET: answer | PUT/DELETE: apply (xcap_node.c),
 *   validate (xcap_usage.c) ─► write ─► commit ─► 200/201 with the ETag
 */
#include "presence/xcap.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "presence/buddylist.h"
#include "presence/pidf.h"
#include "presence/rules.h"
#include "presence/xcap_path.h"
#include "presence/xcap_store.h"
#include "presence/xcap_usage.h"
#include "server/auth/auth.h"
#include "server/auth/authn.h"
#include "server/base/buf.h"
#include "server/base/log.h"
#include "server/db/db.h"

#define ETAG_MAX 80
#define MIME_EL "application/xcap-el+xml"
#define MIME_ATT "application/xcap-att+xml"
#define MIME_NS "application/xcap-ns+xml"
#define MIME_ERR "application/xcap-error+xml"
#define XCAP_RLS_AUID "rls-services"

static struct {
	xcap_options_t o;
	/* Presentities whose pres-rules write is in flight (few at once). */
	struct busy {
		struct busy *next;
		char owner[XCAP_SEGMENT_MAX];
	} *busy;
	bool ready;
} X;

typedef struct xreq {
	http_req_t *req;
	xcap_uri_t uri;
	const xcap_usage_t *u;
	xcap_selector_t sel;
	char method[8];
	char etag[ETAG_MAX]; /* of the current document, for every answer */
	bool created;
	char presentity[XCAP_SEGMENT_MAX + 8]; /* "sip:" owner */
	rule_t *rows; /* pres-rules being written */
	size_t nrows;
	buf_t a1, a2;  /* array literals of the rows */
} xreq_t;

static const char *const SQL_PRESRULES_PUT =
	"WITH d AS (DELETE FROM presence_rules WHERE presentity = $1"
	"           AND NOT (watcher = ANY($2::text[]))),"
	" i AS (INSERT INTO presence_rules (presentity, watcher, action)"
	"       SELECT $1, w, a FROM unnest($2::text[], $3::text[]) AS t(w, a)"
	"       ON CONFLICT (presentity, watcher) DO UPDATE SET action = EXCLUDED.action,"
	"       updated_at = extract(epoch FROM now())::bigint)"
	" SELECT pg_notify('" RULES_CHANNEL "', $1)";

static void xreq_free(xreq_t *x)
{
	for (size_t i = 0; i < x->nrows; i++)
		free(x->rows[i].watcher);
	free(x->rows);
	buf_free(&x->a1);
	buf_free(&x->a2);
	free(x);
}

/* --- answers ---------------------------------------------------------------- */

static void etag_header(char *out, size_t outlen, const char *etag);

static void finish(xreq_t *x, int status, const char *headers, const char *ctype, const char *body,
		   size_t len)
{
	LOGI("xcap", "%s %s %s%s%s -> %d", http_req_peer(x->req), x->method,
	     x->uri.auid[0] ? x->uri.auid : http_req_path(x->req), x->uri.owner[0] ? " " : "",
	     x->uri.owner, status);
	char h[ETAG_MAX + 16];
	if (!headers && x->etag[0]) {
		/* Errors carry the ETag of the document they left unchanged. */
		etag_header(h, sizeof h, x->etag);
		headers = h;
	}
	http_reply(x->req, status, headers, ctype, body, len);
	xreq_free(x);
}

static void finish_text(xreq_t *x, int status, const char *headers, const char *text)
{
	finish(x, status, headers, "text/plain", text, strlen(text));
}

/* 409 (or another status) with an XCAP error body. */
static void finish_error(xreq_t *x, int status, const char *tag, const char *phrase)
{
	buf_t b;
	buf_init(&b, 0);
	xcap_error_body(&b, tag, phrase);
	finish(x, status, NULL, MIME_ERR, b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void finish_unavailable(xreq_t *x, unsigned retry_after, const char *why)
{
	char h[64];
	snprintf(h, sizeof h, "Retry-After: %u", retry_after);
	finish_text(x, 503, h, why);
}

static void etag_header(char *out, size_t outlen, const char *etag)
{
	if (etag)
		snprintf(out, outlen, "ETag: \"%s\"", etag);
	else
		out[0] = '\0';
}

static void challenge(xreq_t *x, bool stale)
{
	char nonce[128], c1[512], c2[512], h[1100];
	auth_nonce_make(x->uri.domain, time(NULL), nonce, sizeof nonce);
	auth_challenge(AUTH_ALGO_SHA256, x->uri.domain, nonce, stale, c1, sizeof c1);
	auth_challenge(AUTH_ALGO_MD5, x->uri.domain, nonce, stale, c2, sizeof c2);
	snprintf(h, sizeof h, "WWW-Authenticate: %s\r\nWWW-Authenticate: %s", c1, c2);
	finish_text(x, 401, h, "authentication required\n");
}

/* --- conditional requests (RFC 7232) ------------------------------------------ */

/* Whether header value (a list of entity tags or "*") matches etag
 * (NULL: no current document).  Strong comparison. */
static bool etag_list_matches(const char *v, const char *etag)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v == '*')
		return etag != NULL;
	if (!etag)
		return false;
	size_t el = strlen(etag);
	for (const char *p = v; (p = strchr(p, '"')) != NULL;) {
		const char *q = strchr(p + 1, '"');
		if (!q)
			break;
		bool weak = p >= v + 2 && p[-1] == '/' && p[-2] == 'W';
		if (!weak && (size_t)(q - p - 1) == el && memcmp(p + 1, etag, el) == 0)
			return true;
		p = q + 1;
	}
	return false;
}

/* 0 to go on, else the status: 412, or 304 for a GET whose If-None-Match
 * matched. */
static int preconditions(xreq_t *x, const char *etag)
{
	const char *im = http_req_header(x->req, HTTP_H_IF_MATCH);
	const char *inm = http_req_header(x->req, HTTP_H_IF_NONE_MATCH);
	if (im && !etag_list_matches(im, etag))
		return 412;
	if (inm && etag_list_matches(inm, etag))
		return strcmp(x->method, "GET") == 0 ? 304 : 412;
	return 0;
}

/* --- the current document ------------------------------------------------------- */

static int cmp_rule(const void *a, const void *b)
{
	return strcmp(((const rule_t *)a)->watcher, ((const rule_t *)b)->watcher);
}

/* The pres-rules view of presentity: the document (appended to out) and
 * its ETag, a digest of the document and so of the rows.  Returns false
 * when the user has no rules (no document). */
static bool presrules_current(const char *presentity, buf_t *out, char *etag, size_t etaglen)
{
	size_t n;
	const rule_t *r = rules_get(presentity, &n);
	if (n == 0)
		return false;
	rule_t *sorted = malloc(n * sizeof *sorted);
	if (!sorted)
		return false;
	memcpy(sorted, r, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, cmp_rule);
	xcap_presrules_doc(sorted, n, out);
	free(sorted);
	char hex[AUTH_HEX_MAX];
	auth_hash_hex(AUTH_ALGO_SHA256, out->data, out->len, hex);
	snprintf(etag, etaglen, "pr-%.24s", hex);
	return true;
}

typedef struct current {
	bool exists;
	const char *body;
	size_t len;
	char etag[ETAG_MAX];
	buf_t own; /* pres-rules and xcap-caps: the synthesised body */
} current_t;

static void current_load(xreq_t *x, current_t *c)
{
	memset(c, 0, sizeof *c);
	buf_init(&c->own, 0);
	if (x->u->id == XU_XCAP_CAPS) {
		xcap_caps_doc(&c->own);
		char hex[AUTH_HEX_MAX];
		auth_hash_hex(AUTH_ALGO_SHA256, c->own.data, c->own.len, hex);
		snprintf(c->etag, sizeof c->etag, "caps-%.16s", hex);
		c->exists = strcmp(x->uri.doc, "index") == 0;
	} else if (x->u->id == XU_PRES_RULES) {
		c->exists = strcmp(x->uri.doc, "index") == 0 &&
			    presrules_current(x->presentity, &c->own, c->etag, sizeof c->etag);
	} else {
		const xstore_doc_t *d = xstore_get(x->u->auid, x->uri.owner, x->uri.doc);
		if (d) {
			c->exists = true;
			c->body = d->body;
			c->len = d->len;
			snprintf(c->etag, sizeof c->etag, "%s", d->etag);
		}
		return;
	}
	if (c->exists) {
		c->body = c->own.data;
		c->len = c->own.len;
	}
}

static int parse_doc(const char *body, size_t len, xmlDocPtr *doc)
{
	char why[160];
	pidf_limits_t lim = {.max_size = XCAP_MAX_DOC, .max_elements = XCAP_MAX_ELEMENTS};
	return pidf_xml_parse(body, len, &lim, doc, why, sizeof why);
}

/* --- writes -------------------------------------------------------------------- */

static void write_done(void *arg, int status, const char *etag)
{
	xreq_t *x = arg;
	if (status != 0) {
		LOGW("xcap", "write of %s/%s/%s failed (%d)", x->u->auid, x->uri.owner, x->uri.doc, status);
		finish_unavailable(x, X.o.retry_after_s, "database unavailable\n");
		return;
	}
	char h[ETAG_MAX + 16];
	etag_header(h, sizeof h, etag);
	finish(x, x->created ? 201 : 200, h[0] ? h : NULL, NULL, NULL, 0);
}

static bool busy_has(const char *owner)
{
	for (struct busy *b = X.busy; b; b = b->next)
		if (strcmp(b->owner, owner) == 0)
			return true;
	return false;
}

static void busy_set(const char *owner, bool on)
{
	if (on) {
		struct busy *b = calloc(1, sizeof *b);
		if (b) {
			snprintf(b->owner, sizeof b->owner, "%s", owner);
			b->next = X.busy;
			X.busy = b;
		}
		return;
	}
	for (struct busy **p = &X.busy; *p; p = &(*p)->next) {
		if (strcmp((*p)->owner, owner) == 0) {
			struct busy *b = *p;
			*p = b->next;
			free(b);
			return;
		}
	}
}

static void presrules_done(void *arg, int err, PGresult *res)
{
	(void)res;
	xreq_t *x = arg;
	busy_set(x->uri.owner, false);
	if (err) {
		LOGW("xcap", "pres-rules of %s not stored (%d)", x->presentity, err);
		finish_unavailable(x, X.o.retry_after_s, "database unavailable\n");
		return;
	}
	/* Committed: the rules apply now, the watchers are re-evaluated. */
	rules_replace(x->presentity, x->rows, x->nrows);
	buf_t doc;
	buf_init(&doc, 0);
	char etag[ETAG_MAX] = "", h[ETAG_MAX + 16] = "";
	if (presrules_current(x->presentity, &doc, etag, sizeof etag))
		etag_header(h, sizeof h, etag);
	buf_free(&doc);
	finish(x, x->created ? 201 : 200, h[0] ? h : NULL, NULL, NULL, 0);
}

/* Stores rows (the user's whole pres-rules) in one statement. */
static void presrules_write(xreq_t *x)
{
	if (busy_has(x->uri.owner)) {
		finish_unavailable(x, 1, "another write of this document is in progress\n");
		return;
	}
	buf_init(&x->a1, 0);
	buf_init(&x->a2, 0);
	db_array_begin(&x->a1);
	db_array_begin(&x->a2);
	for (size_t i = 0; i < x->nrows; i++) {
		db_array_add(&x->a1, x->rows[i].watcher);
		db_array_add(&x->a2, rules_action_name(x->rows[i].action));
	}
	db_array_end(&x->a1);
	db_array_end(&x->a2);
	if (x->a1.err || x->a2.err) {
		finish_text(x, 500, NULL, "out of memory\n");
		return;
	}
	const char *params[3] = {x->presentity, buf_cstr(&x->a1), buf_cstr(&x->a2)};
	int err = db_exec("xcap_presrules_put", 3, params, presrules_done, x);
	if (err) {
		finish_unavailable(x, X.o.retry_after_s, "database unavailable\n");
		return;
	}
	busy_set(x->uri.owner, true);
}

/* The new document (whole) is valid: store it. */
static void store_write(xreq_t *x, xmlDocPtr doc, const char *body, size_t len)
{
	if (x->u->id == XU_PRES_RULES) {
		buf_t err;
		buf_init(&err, 0);
		int r = xcap_presrules_parse(doc, &x->rows, &x->nrows, &err);
		if (r) {
			finish(x, r, NULL, MIME_ERR, err.data ? err.data : "", err.len);
			buf_free(&err);
			return;
		}
		buf_free(&err);
		presrules_write(x);
		return;
	}
	int err = xstore_put(x->u->auid, x->uri.owner, x->uri.doc, body, len, write_done, x);
	if (err == -EBUSY)
		finish_unavailable(x, 1, "another write of this document is in progress\n");
	else if (err == -EMSGSIZE)
		finish_text(x, 413, NULL, "document too large\n");
	else if (err)
		finish_unavailable(x, X.o.retry_after_s, "database unavailable\n");
}

static void store_delete(xreq_t *x)
{
	if (x->u->id == XU_PRES_RULES) {
		presrules_write(x); /* no rows */
		return;
	}
	int err = xstore_delete(x->u->auid, x->uri.owner, x->uri.doc, write_done, x);
	if (err == -EBUSY)
		finish_unavailable(x, 1, "another write of this document is in progress\n");
	else if (err == -ENOENT)
		finish_text(x, 404, NULL, "no such document\n");
	else if (err)
		finish_unavailable(x, X.o.retry_after_s, "database unavailable\n");
}

/* RFC 4826 §4.4.3: a service URI is unique across every rls-services
 * document of the server, not only within one.  Documents that do not
 * even contain the URI's text are skipped without parsing. */
typedef struct svc_scan {
	const xcap_uri_t *self;
	const char *uri;
	bool taken;
} svc_scan_t;

static void svc_scan_doc(const xstore_doc_t *d, void *arg)
{
	svc_scan_t *s = arg;
	if (s->taken || (strcmp(d->owner, s->self->owner) == 0 && strcmp(d->name, s->self->doc) == 0))
		return;
	if (!memmem(d->body, d->len, s->uri, strlen(s->uri)))
		return;
	rl_service_t *v;
	size_t n;
	char why[64];
	if (rls_services_parse(d->body, d->len, &v, &n, why, sizeof why) != 0)
		return;
	for (size_t i = 0; i < n && !s->taken; i++)
		s->taken = strcmp(v[i].uri, s->uri) == 0;
	rl_services_free(v, n);
}

/* 0, or 409 with the body in err when a service URI of doc is used by
 * another document. */
static int rls_uris_unique(xreq_t *x, xmlDocPtr doc, buf_t *err)
{
	xmlNodePtr root = xmlDocGetRootElement(doc);
	for (xmlNodePtr c = root ? root->children : NULL; c; c = c->next) {
		if (!pidf_node_is(c, XCAP_RLS_NS, "service"))
			continue;
		xmlChar *uri = xmlGetNoNsProp(c, (const xmlChar *)"uri");
		svc_scan_t s = {&x->uri, (const char *)uri, false};
		if (uri)
			xstore_foreach(XCAP_RLS_AUID, NULL, svc_scan_doc, &s);
		if (s.taken) {
			buf_puts(err, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-error xmlns=\""
				      XCAP_ERROR_NS "\"><uniqueness-failure><exists field=\"rls-services/service/@uri\"/>"
				      "</uniqueness-failure></xcap-error>\n");
			LOGI("xcap", "service URI %s is taken", (const char *)uri);
		}
		xmlFree(uri);
		if (s.taken)
			return 409;
	}
	return 0;
}

/* Validates the complete new document and writes it. */
static void validate_and_store(xreq_t *x, xmlDocPtr doc)
{
	buf_t err;
	buf_init(&err, 0);
	int r = xcap_usage_validate(x->u, doc, &err);
	if (!r && x->u->id == XU_RLS_SERVICES)
		r = rls_uris_unique(x, doc, &err);
	if (r) {
		LOGI("xcap", "%s/%s/%s refused: %.200s", x->u->auid, x->uri.owner, x->uri.doc,
		     err.data ? err.data : "");
		finish(x, r, NULL, MIME_ERR, err.data ? err.data : "", err.len);
		buf_free(&err);
		return;
	}
	buf_free(&err);
	buf_t out;
	buf_init(&out, XCAP_MAX_DOC + 1);
	if (pidf_serialize(doc, &out) != 0) {
		buf_free(&out);
		finish_error(x, 409, "constraint-failure", "document too large");
		return;
	}
	store_write(x, doc, out.data, out.len);
	buf_free(&out);
}

/* Content-Type without parameters equals mime (case-insensitive). */
static bool ctype_is(xreq_t *x, const char *mime)
{
	const char *ct = http_req_header(x->req, HTTP_H_CONTENT_TYPE);
	if (!ct)
		return false;
	size_t n = strcspn(ct, "; \t");
	return n == strlen(mime) && strncasecmp(ct, mime, n) == 0;
}

static const char *node_mime(const xcap_selector_t *s)
{
	return s->kind == XSEL_ATTRIBUTE ? MIME_ATT : s->kind == XSEL_NAMESPACES ? MIME_NS : MIME_EL;
}

static void result_error(xreq_t *x, xcap_result_t r, bool is_put)
{
	switch (r) {
	case XCAP_NOT_FOUND:
		if (is_put)
			finish_error(x, 409, "no-parent", "the parent of the selected node does not exist");
		else
			finish_text(x, 404, NULL, "the node selector selects nothing\n");
		return;
	case XCAP_NOT_WELL_FORMED: finish_error(x, 409, "not-well-formed", NULL); return;
	case XCAP_TOO_BIG: finish_error(x, 409, "not-well-formed", "too large or too deep"); return;
	case XCAP_NOT_XML_FRAG: finish_error(x, 409, "not-xml-frag", NULL); return;
	case XCAP_NOT_XML_ATT: finish_error(x, 409, "not-xml-att-value", NULL); return;
	case XCAP_CANNOT_INSERT: finish_error(x, 409, "cannot-insert", NULL); return;
	case XCAP_CANNOT_DELETE: finish_error(x, 409, "cannot-delete", NULL); return;
	case XCAP_NOT_SUPPORTED: finish_text(x, 501, NULL, "not supported for this selector\n"); return;
	default: finish_text(x, 500, NULL, "out of memory\n"); return;
	}
}

/* --- the operations --------------------------------------------------------------- */

static void do_request(xreq_t *x)
{
	current_t c;
	current_load(x, &c);
	if (c.exists)
		snprintf(x->etag, sizeof x->etag, "%s", c.etag);
	bool is_get = strcmp(x->method, "GET") == 0, is_put = strcmp(x->method, "PUT") == 0;
	char h[ETAG_MAX + 16];
	int pre = preconditions(x, c.exists ? c.etag : NULL);
	if (pre) {
		etag_header(h, sizeof h, c.exists ? c.etag : NULL);
		finish_text(x, pre, h[0] ? h : NULL, pre == 412 ? "precondition failed\n" : "");
		goto out;
	}
	if (x->u->id == XU_XCAP_CAPS && !is_get) {
		finish_text(x, 405, "Allow: GET", "xcap-caps is read-only\n");
		goto out;
	}
	if (!c.exists && !(is_put && !x->uri.has_node)) {
		finish_text(x, 404, NULL, "no such document\n");
		goto out;
	}
	etag_header(h, sizeof h, c.etag);
	if (is_get && !x->uri.has_node) {
		finish(x, 200, h, x->u->mime, c.body, c.len);
		goto out;
	}
	if (!is_get && !is_put && !x->uri.has_node) {
		store_delete(x);
		goto out;
	}
	size_t blen;
	const char *body = http_req_body(x->req, &blen);
	if (is_put && !x->uri.has_node) {
		if (!ctype_is(x, x->u->mime)) {
			finish_text(x, 415, NULL, "Content-Type must be the application usage's MIME type\n");
			goto out;
		}
		xmlDocPtr doc;
		int err = parse_doc(body, blen, &doc);
		if (err) {
			finish_error(x, 409, "not-well-formed",
				     err == -E2BIG || err == -EMSGSIZE ? "too large or too deep" : NULL);
			goto out;
		}
		x->created = !c.exists;
		validate_and_store(x, doc);
		xmlFreeDoc(doc);
		goto out;
	}
	/* A node of an existing document. */
	if (is_put && !ctype_is(x, node_mime(&x->sel))) {
		finish_text(x, 415, NULL, x->sel.kind == XSEL_ATTRIBUTE
						  ? "Content-Type must be " MIME_ATT "\n"
						  : "Content-Type must be " MIME_EL "\n");
		goto out;
	}
	xmlDocPtr doc;
	if (parse_doc(c.body, c.len, &doc) != 0) {
		finish_text(x, 500, NULL, "stored document does not parse\n");
		goto out;
	}
	xcap_result_t r;
	if (is_get) {
		char *s;
		size_t n;
		r = xcap_get(doc, &x->sel, &s, &n);
		if (r == XCAP_OK) {
			finish(x, 200, h, node_mime(&x->sel), s, n);
			free(s);
		}
	} else if (is_put) {
		r = xcap_put(doc, &x->sel, body, blen, &x->created);
		if (r == XCAP_OK)
			validate_and_store(x, doc);
	} else {
		r = xcap_delete(doc, &x->sel);
		if (r == XCAP_OK)
			validate_and_store(x, doc);
	}
	if (r != XCAP_OK)
		result_error(x, r, is_put);
	xmlFreeDoc(doc);
out:
	buf_free(&c.own);
}

/* --- authentication --------------------------------------------------------------- */

typedef struct authwait {
	xreq_t *x;
	bool stale;
	char username[AUTH_FIELD_MAX];
} authwait_t;

static void authorized(xreq_t *x, bool stale, const char *username, int result)
{
	if (result < 0) {
		finish_unavailable(x, X.o.retry_after_s, "database unavailable\n");
		return;
	}
	if (result == 0) {
		challenge(x, false);
		return;
	}
	if (stale) {
		challenge(x, true);
		return;
	}
	/* Only the owner: the user part of the XUI, in the realm checked. */
	const char *at = strrchr(x->uri.owner, '@');
	size_t ul = (size_t)(at - x->uri.owner);
	if (strlen(username) != ul || memcmp(username, x->uri.owner, ul) != 0) {
		LOGI("xcap", "%s may not access documents of %s", username, x->uri.owner);
		finish_text(x, 403, NULL, "you may only access your own documents\n");
		return;
	}
	do_request(x);
}

static void verify_done(void *arg, int result)
{
	authwait_t *w = arg;
	authorized(w->x, w->stale, w->username, result);
	free(w);
}

static void authenticate(xreq_t *x)
{
	if (!authn_enabled()) {
		do_request(x);
		return;
	}
	const char *h = http_req_header(x->req, HTTP_H_AUTHORIZATION);
	if (!h) {
		challenge(x, false);
		return;
	}
	auth_creds_t creds;
	int err = auth_parse_credentials(h, &creds);
	if (err == -ENOTSUP || (err == 0 && strcasecmp(creds.realm, x->uri.domain) != 0)) {
		challenge(x, false);
		return;
	}
	if (err) {
		finish_text(x, 400, NULL, "malformed Authorization header\n");
		return;
	}
	err = auth_nonce_check(creds.nonce, x->uri.domain, time(NULL), X.o.nonce_ttl_s);
	if (err == -EINVAL) {
		challenge(x, false);
		return;
	}
	bool stale = err == -ETIMEDOUT;
	authwait_t *w = calloc(1, sizeof *w);
	if (!w) {
		finish_text(x, 500, NULL, "out of memory\n");
		return;
	}
	w->x = x;
	w->stale = stale;
	snprintf(w->username, sizeof w->username, "%s", creds.username);
	int r = authn_verify(&creds, x->uri.domain, x->method, verify_done, w);
	if (r == -EINPROGRESS)
		return;
	authorized(x, stale, creds.username, r == 0 || r == 1 ? r : -EIO);
	free(w);
}

/* --- entry ------------------------------------------------------------------------ */

void xcap_handle(void *arg, http_req_t *req)
{
	(void)arg;
	xreq_t *x = calloc(1, sizeof *x);
	if (!x) {
		http_reply(req, 500, NULL, "text/plain", "out of memory\n", 14);
		return;
	}
	x->req = req;
	snprintf(x->method, sizeof x->method, "%s", http_req_method(req));
	char why[160] = "";
	int err = xcap_uri_parse(http_req_path(req), &x->uri, why, sizeof why);
	if (err) {
		char msg[200];
		snprintf(msg, sizeof msg, "%s\n", why);
		finish_text(x, err == -ENOENT ? 404 : 400, NULL, msg);
		return;
	}
	x->u = xcap_usage_find(x->uri.auid);
	if (!x->u || x->u->global_only != x->uri.global) {
		finish_text(x, 404, NULL, "no such application usage here\n");
		return;
	}
	if (x->u->id == XU_PRES_RULES && strcmp(x->uri.doc, "index") != 0) {
		/* The view over presence_rules is one document per user. */
		finish_text(x, 404, NULL, "pres-rules has only the document 'index'\n");
		return;
	}
	if (strcmp(x->method, "GET") && strcmp(x->method, "PUT") && strcmp(x->method, "DELETE")) {
		finish_text(x, 405, "Allow: GET, PUT, DELETE", "method not allowed\n");
		return;
	}
	if (x->uri.has_node &&
	    xcap_selector_parse(x->uri.node, http_req_query(req), x->u->default_ns, &x->sel, why,
				sizeof why) != 0) {
		char msg[200];
		snprintf(msg, sizeof msg, "bad node selector: %s\n", why);
		finish_text(x, 400, NULL, msg);
		return;
	}
	if (x->uri.global) {
		do_request(x); /* xcap-caps: public, read-only */
		return;
	}
	if (X.o.is_local_domain && !X.o.is_local_domain(x->uri.domain)) {
		finish_text(x, 404, NULL, "not a user of this server\n");
		return;
	}
	snprintf(x->presentity, sizeof x->presentity, "sip:%s", x->uri.owner);
	authenticate(x);
}

int xcap_init(const xcap_options_t *opts)
{
	X.o = *opts;
	int err = db_prepare("xcap_presrules_put", SQL_PRESRULES_PUT);
	if (err)
		return err;
	X.ready = true;
	return 0;
}

void xcap_shutdown(void)
{
	while (X.busy) {
		struct busy *b = X.busy;
		X.busy = b->next;
		free(b);
	}
	X.ready = false;
}
