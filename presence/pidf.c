/* PIDF over libxml2: the safe parser for every untrusted XML body, PIDF
 * validation (RFC 3863), composition of several publications into one
 * document (RFC 4479 data model) and the minimal documents the server writes
 * itself.  See pidf.h for the contracts.
 *
 * How the parser stays safe (libxml2 2.9 has neither per-context error
 * handlers nor XML_PARSE_NO_XXE):
 *   - the size is checked before libxml2 is involved;
 *   - a parser context of our own gets SAX hooks: internalSubset (called
 *     as soon as "<!DOCTYPE name ..." is read, before any "[...]" subset
 *     is parsed), externalSubset, entityDecl and resolveEntity stop the
 *     parser (xmlStopParser), so no declaration is ever looked at;
 *     getEntity only knows the five predefined entities;
 *   - startElementNs counts depth and elements and stops the parser the
 *     moment a limit is passed, so neither the tree nor the time grows
 *     with hostile input (libxml2's own cap of 256 levels never comes
 *     into play);
 *   - errors go to ctxt->sax->serror, and for the duration of the call
 *     the thread's structured and generic libxml2 handlers point to us
 *     too, so nothing reaches stderr; the first error becomes `why`. */
#include "presence/pidf.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/entities.h>
#include <libxml/hash.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlstring.h>

#include "server/base/log.h"

#define MOD "pidf"

#if LIBXML_VERSION >= 21200
typedef const xmlError *pidf_xml_error_t;
#else
typedef xmlErrorPtr pidf_xml_error_t;
#endif

static pidf_limits_t g_defaults = {
	.max_size = PIDF_DEFAULT_MAX_SIZE,
	.max_depth = PIDF_DEFAULT_MAX_DEPTH,
	.max_elements = PIDF_DEFAULT_MAX_ELEMENTS,
};
static bool g_ready;

/* ---- small helpers ---------------------------------------------------- */

/* Writes a reason into why.  The text may quote input (a tag name, an
 * id), and it ends up in a SIP reason phrase, so control characters are
 * replaced. */
static void set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	for (char *p = why; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
}

static bool xml_text_ok(const char *str);

static void clear_why(char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
}

bool pidf_node_is(const xmlNode *node, const char *ns, const char *local)
{
	if (!node || node->type != XML_ELEMENT_NODE || !local)
		return false;
	if (!xmlStrEqual(node->name, BAD_CAST local))
		return false;
	if (!ns)
		return node->ns == NULL || node->ns->href == NULL;
	return node->ns && node->ns->href && xmlStrEqual(node->ns->href, BAD_CAST ns);
}

/* First element child of parent named {ns}local, or NULL. */
static xmlNode *child_elem(const xmlNode *parent, const char *ns, const char *local)
{
	for (xmlNode *c = parent->children; c; c = c->next) {
		if (pidf_node_is(c, ns, local))
			return c;
	}
	return NULL;
}

static bool is_xml_space(xmlChar c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* True when the text content of node, without surrounding XML white
 * space, is exactly word. */
static int content_is(const xmlNode *node, const char *word, bool *out)
{
	xmlChar *s = xmlNodeGetContent(node);
	const xmlChar *b, *e;
	size_t wl = strlen(word);

	if (!s)
		return -ENOMEM;
	b = s;
	while (is_xml_space(*b))
		b++;
	e = b + xmlStrlen(b);
	while (e > b && is_xml_space(e[-1]))
		e--;
	*out = (size_t)(e - b) == wl && memcmp(b, word, wl) == 0;
	xmlFree(s);
	return 0;
}

/* Keeps libxml2 quiet for the duration of a call: the thread's generic
 * handler discards, the structured one goes to `st` (or discards). */
typedef struct xml_quiet {
	xmlGenericErrorFunc gen;
	void *gen_ctx;
	xmlStructuredErrorFunc st;
	void *st_ctx;
} xml_quiet_t;

static void xml_discard(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static void xml_discard_structured(void *ctx, pidf_xml_error_t err)
{
	(void)ctx;
	(void)err;
}

static void quiet_begin(xml_quiet_t *q, xmlStructuredErrorFunc st)
{
	q->gen = xmlGenericError;
	q->gen_ctx = xmlGenericErrorContext;
	q->st = xmlStructuredError;
	q->st_ctx = xmlStructuredErrorContext;
	xmlSetGenericErrorFunc(NULL, xml_discard);
	xmlSetStructuredErrorFunc(NULL, st ? st : xml_discard_structured);
}

static void quiet_end(const xml_quiet_t *q)
{
	xmlSetGenericErrorFunc(q->gen_ctx, q->gen);
	xmlSetStructuredErrorFunc(q->st_ctx, q->st);
}

/* ---- init and limits ---------------------------------------------------- */

int pidf_init(void)
{
	if (g_ready)
		return 0;
	LIBXML_TEST_VERSION;
	xmlInitParser();
	g_ready = true;
	return 0;
}

void pidf_set_default_limits(const pidf_limits_t *lim)
{
	g_defaults.max_size = lim && lim->max_size ? lim->max_size : PIDF_DEFAULT_MAX_SIZE;
	g_defaults.max_depth = lim && lim->max_depth ? lim->max_depth : PIDF_DEFAULT_MAX_DEPTH;
	g_defaults.max_elements =
	    lim && lim->max_elements ? lim->max_elements : PIDF_DEFAULT_MAX_ELEMENTS;
}

void pidf_get_default_limits(pidf_limits_t *out)
{
	*out = g_defaults;
}

static pidf_limits_t limits_resolve(const pidf_limits_t *lim)
{
	pidf_limits_t r = g_defaults;

	if (lim) {
		if (lim->max_size)
			r.max_size = lim->max_size;
		if (lim->max_depth)
			r.max_depth = lim->max_depth;
		if (lim->max_elements)
			r.max_elements = lim->max_elements;
	}
	return r;
}

/* ---- the safe parser ------------------------------------------------------ */

typedef struct parse_state {
	pidf_limits_t lim;
	unsigned depth;
	unsigned elements;
	int err;        /* our own reason to stop; 0 while none */
	bool have_why;  /* why holds the first reason already */
	char *why;
	size_t whylen;
	startElementNsSAX2Func start;
	endElementNsSAX2Func end;
} parse_state_t;

/* The parse in progress on this thread.  libxml2 hands its callbacks
 * either the parser context or whatever context a global handler was
 * registered with; one thread-local pointer serves both without caring
 * which.  A parse never runs user code that could start another one, but
 * the previous value is restored anyway. */
static _Thread_local parse_state_t *tl_parse;

static void parse_stop(void *ctx, int err, const char *reason)
{
	parse_state_t *st = tl_parse;

	if (st && !st->err) {
		st->err = err;
		set_why(st->why, st->whylen, "%s", reason);
		st->have_why = true;
	}
	xmlStopParser((xmlParserCtxtPtr)ctx);
}

static void parse_error(void *ctx, pidf_xml_error_t e)
{
	parse_state_t *st = tl_parse;
	char msg[160];
	size_t n;

	(void)ctx;
	if (!st || !e || st->have_why || e->level < XML_ERR_ERROR)
		return;
	snprintf(msg, sizeof msg, "%s", e->message ? e->message : "XML error");
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (e->line > 0)
		set_why(st->why, st->whylen, "XML line %d: %s", e->line, msg);
	else
		set_why(st->why, st->whylen, "XML: %s", msg);
	st->have_why = true;
}

static void sax_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
		      const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
		      int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
	parse_state_t *st = tl_parse;

	if (!st || st->err)
		return;
	if (++st->depth > st->lim.max_depth) {
		parse_stop(ctx, -E2BIG, "XML nested too deeply");
		return;
	}
	if (++st->elements > st->lim.max_elements) {
		parse_stop(ctx, -E2BIG, "XML has too many elements");
		return;
	}
	st->start(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
		  nb_defaulted, attributes);
}

static void sax_end(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
	parse_state_t *st = tl_parse;

	if (!st || st->err)
		return;
	if (st->depth)
		st->depth--;
	st->end(ctx, localname, prefix, uri);
}

static void sax_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
				const xmlChar *sys_id)
{
	(void)name;
	(void)ext_id;
	(void)sys_id;
	parse_stop(ctx, -EINVAL, "DOCTYPE not allowed");
}

static void sax_external_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
				const xmlChar *sys_id)
{
	(void)name;
	(void)ext_id;
	(void)sys_id;
	parse_stop(ctx, -EINVAL, "DOCTYPE not allowed");
}

static void sax_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
			    const xmlChar *system_id, xmlChar *content)
{
	(void)name;
	(void)type;
	(void)public_id;
	(void)system_id;
	(void)content;
	parse_stop(ctx, -EINVAL, "entity declarations not allowed");
}

static xmlParserInputPtr sax_resolve_entity(void *ctx, const xmlChar *public_id,
					    const xmlChar *system_id)
{
	(void)public_id;
	(void)system_id;
	parse_stop(ctx, -EINVAL, "external entities not allowed");
	return NULL;
}

static xmlEntityPtr sax_get_entity(void *ctx, const xmlChar *name)
{
	(void)ctx;
	return xmlGetPredefinedEntity(name);
}

static xmlEntityPtr sax_get_param_entity(void *ctx, const xmlChar *name)
{
	(void)ctx;
	(void)name;
	return NULL;
}

int pidf_xml_parse(const char *data, size_t len, const pidf_limits_t *lim, xmlDocPtr *out,
		   char *why, size_t whylen)
{
	parse_state_t st = { .why = why, .whylen = whylen };
	parse_state_t *prev = tl_parse;
	xmlParserCtxtPtr ctxt = NULL;
	xmlDocPtr doc = NULL;
	xml_quiet_t q;
	int rc = 0;
	/* No NOENT (entities are never substituted), no DTDLOAD/DTDATTR/
	 * DTDVALID, never RECOVER; NONET in case anything tried to load;
	 * NOCDATA turns CDATA sections into plain text for the readers. */
	const int opts = XML_PARSE_NONET | XML_PARSE_NOCDATA;

	clear_why(why, whylen);
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!data || len == 0) {
		set_why(why, whylen, "empty XML body");
		return -EINVAL;
	}
	st.lim = limits_resolve(lim);
	if (len > st.lim.max_size || len > INT_MAX) {
		set_why(why, whylen, "XML body larger than %zu bytes", st.lim.max_size);
		return -EMSGSIZE;
	}
	pidf_init();

	quiet_begin(&q, parse_error);
	tl_parse = &st;
	ctxt = xmlNewParserCtxt();
	if (!ctxt || !ctxt->sax) {
		rc = -ENOMEM;
		goto out;
	}
	st.start = ctxt->sax->startElementNs;
	st.end = ctxt->sax->endElementNs;
	if (!st.start || !st.end) {
		rc = -ENOMEM;
		goto out;
	}
	ctxt->sax->startElementNs = sax_start;
	ctxt->sax->endElementNs = sax_end;
	ctxt->sax->internalSubset = sax_internal_subset;
	ctxt->sax->externalSubset = sax_external_subset;
	ctxt->sax->entityDecl = sax_entity_decl;
	ctxt->sax->resolveEntity = sax_resolve_entity;
	ctxt->sax->getEntity = sax_get_entity;
	ctxt->sax->getParameterEntity = sax_get_param_entity;
	ctxt->sax->serror = parse_error;

	doc = xmlCtxtReadMemory(ctxt, data, (int)len, NULL, NULL, opts);
	if (st.err) {
		rc = st.err;
	} else if (ctxt->errNo == XML_ERR_NO_MEMORY) {
		rc = -ENOMEM;
	} else if (!doc || !ctxt->wellFormed || !ctxt->nsWellFormed) {
		/* nsWellFormed: an unbound prefix is an error for us too. */
		rc = -EINVAL;
	} else if (doc->intSubset || doc->extSubset) {
		/* Unreachable with the hooks above; kept as the last word. */
		rc = -EINVAL;
		set_why(why, whylen, "DOCTYPE not allowed");
	} else if (!xmlDocGetRootElement(doc)) {
		rc = -EINVAL;
	}

out:
	if (rc && !st.have_why && !(why && whylen && why[0]))
		set_why(why, whylen, rc == -ENOMEM ? "out of memory" : "XML not well-formed");
	if (ctxt)
		xmlFreeParserCtxt(ctxt);
	tl_parse = prev;
	quiet_end(&q);
	if (rc) {
		if (doc)
			xmlFreeDoc(doc);
		return rc;
	}
	*out = doc;
	return 0;
}

/* ---- presentity URI comparison --------------------------------------------- */

typedef struct uri_view {
	const char *s;   /* trimmed start */
	size_t len;      /* trimmed length */
	size_t scheme_len;
	bool sipish;     /* sip, sips or pres with a parsable authority */
	const char *user;
	size_t user_len; /* 0 and user NULL when there is no '@' */
	const char *host;
	size_t host_len;
	unsigned long port; /* 0 = absent */
} uri_view_t;

static bool is_scheme(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

static void uri_view(const char *s, uri_view_t *u)
{
	const char *e, *p, *at, *hp_end, *c;

	memset(u, 0, sizeof *u);
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	u->s = s;
	u->len = (size_t)(e - s);
	c = memchr(s, ':', u->len);
	if (!c)
		return;
	u->scheme_len = (size_t)(c - s);
	if (!is_scheme(s, u->scheme_len, "sip") && !is_scheme(s, u->scheme_len, "sips") &&
	    !is_scheme(s, u->scheme_len, "pres"))
		return;

	/* sip:[user[:password]@]host[:port][;params][?headers]  (RFC 3261
	 * §19.1.1); pres:[user@host][?headers]  (RFC 3859 §3).  The user
	 * part may hold ';' and '?' but never an unescaped '@', so the
	 * first '@' ends it. */
	p = c + 1;
	at = memchr(p, '@', (size_t)(e - p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		u->user = p;
		u->user_len = (size_t)((colon ? colon : at) - p);
		p = at + 1;
	}
	hp_end = p;
	while (hp_end < e && *hp_end != ';' && *hp_end != '?')
		hp_end++;
	if (p < hp_end && *p == '[') {
		const char *rb = memchr(p, ']', (size_t)(hp_end - p));
		if (!rb)
			return;
		u->host = p;
		u->host_len = (size_t)(rb + 1 - p);
		p = rb + 1;
	} else {
		u->host = p;
		while (p < hp_end && *p != ':')
			p++;
		u->host_len = (size_t)(p - u->host);
	}
	if (u->host_len == 0)
		return;
	if (p < hp_end) {
		if (*p != ':' || p + 1 == hp_end)
			return;
		for (p++; p < hp_end; p++) {
			if (*p < '0' || *p > '9')
				return;
			u->port = u->port * 10 + (unsigned long)(*p - '0');
			if (u->port > 65535)
				return;
		}
		if (u->port == 0)
			return;
	}
	u->sipish = true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Next byte of a %-encoded string; a malformed escape stands for itself. */
static int next_decoded(const char **p, const char *e)
{
	const char *s = *p;

	if (s >= e)
		return -1;
	if (*s == '%' && e - s >= 3 && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
		*p = s + 3;
		return hexval(s[1]) * 16 + hexval(s[2]);
	}
	*p = s + 1;
	return (unsigned char)*s;
}

static bool decoded_equal(const char *a, size_t al, const char *b, size_t bl)
{
	const char *ae = a + al, *be = b + bl;

	for (;;) {
		int ca = next_decoded(&a, ae);
		int cb = next_decoded(&b, be);
		if (ca != cb)
			return false;
		if (ca < 0)
			return true;
	}
}

bool pidf_entity_equal(const char *a, const char *b)
{
	uri_view_t ua, ub;

	if (!a || !b)
		return false;
	uri_view(a, &ua);
	uri_view(b, &ub);
	if (ua.sipish && ub.sipish) {
		if ((ua.user == NULL) != (ub.user == NULL))
			return false;
		if (ua.user && !decoded_equal(ua.user, ua.user_len, ub.user, ub.user_len))
			return false;
		return ua.host_len == ub.host_len &&
		       strncasecmp(ua.host, ub.host, ua.host_len) == 0 && ua.port == ub.port;
	}
	if (ua.sipish != ub.sipish)
		return false;
	/* Any other scheme: the scheme is case-insensitive (RFC 3986 §3.1),
	 * the rest is compared as is. */
	if (ua.len != ub.len || ua.scheme_len != ub.scheme_len)
		return false;
	return strncasecmp(ua.s, ub.s, ua.scheme_len) == 0 &&
	       memcmp(ua.s + ua.scheme_len, ub.s + ub.scheme_len, ua.len - ua.scheme_len) == 0;
}

/* ---- validation -------------------------------------------------------------- */

static int check_tuple(const xmlNode *t, char *why, size_t whylen)
{
	const xmlNode *status = NULL;
	unsigned nstatus = 0;

	for (const xmlNode *c = t->children; c; c = c->next) {
		if (pidf_node_is(c, PIDF_NS, "status")) {
			status = c;
			nstatus++;
		}
	}
	if (nstatus != 1) {
		set_why(why, whylen, "PIDF tuple needs exactly one status");
		return -EINVAL;
	}
	unsigned nbasic = 0;
	for (const xmlNode *c = status->children; c; c = c->next) {
		bool open, closed;
		int rc;

		if (!pidf_node_is(c, PIDF_NS, "basic"))
			continue;
		if (++nbasic > 1) {
			set_why(why, whylen, "PIDF status has more than one basic");
			return -EINVAL;
		}
		rc = content_is(c, "open", &open);
		if (rc == 0)
			rc = content_is(c, "closed", &closed);
		if (rc)
			return rc;
		if (!open && !closed) {
			set_why(why, whylen, "PIDF basic must be open or closed");
			return -EINVAL;
		}
	}
	return 0;
}

int pidf_validate(xmlDocPtr doc, const char *expected_entity, char *why, size_t whylen)
{
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	xmlHashTablePtr ids = NULL;
	xmlChar *entity = NULL;
	xml_quiet_t q;
	int rc = 0;

	clear_why(why, whylen);
	if (!pidf_node_is(root, PIDF_NS, "presence")) {
		set_why(why, whylen, "not a PIDF document");
		return -EINVAL;
	}
	quiet_begin(&q, NULL);
	entity = xmlGetNoNsProp(root, BAD_CAST "entity");
	if (!entity || !entity[0]) {
		set_why(why, whylen, "PIDF presence has no entity");
		rc = -EINVAL;
		goto out;
	}
	ids = xmlHashCreate(16);
	if (!ids) {
		rc = -ENOMEM;
		goto out;
	}
	for (xmlNode *c = root->children; c; c = c->next) {
		const char *kind;
		bool tuple = false;
		xmlChar *id;

		if (pidf_node_is(c, PIDF_NS, "tuple")) {
			kind = "tuple";
			tuple = true;
		} else if (pidf_node_is(c, PIDF_DM_NS, "person"))
			kind = "person";
		else if (pidf_node_is(c, PIDF_DM_NS, "device"))
			kind = "device";
		else
			continue;
		id = xmlGetNoNsProp(c, BAD_CAST "id");
		if (!id || !id[0]) {
			set_why(why, whylen, "PIDF %s without id", kind);
			rc = -EINVAL;
		} else if (xmlHashLookup(ids, id)) {
			set_why(why, whylen, "PIDF id \"%.40s\" used twice", (const char *)id);
			rc = -EINVAL;
		} else if (xmlHashAddEntry(ids, id, ids) != 0) {
			rc = -ENOMEM;
		} else if (tuple) {
			rc = check_tuple(c, why, whylen);
		}
		xmlFree(id);
		if (rc)
			goto out;
	}
	if (expected_entity && !pidf_entity_equal((const char *)entity, expected_entity)) {
		set_why(why, whylen, "PIDF entity does not match the presentity");
		rc = -EPERM;
	}
out:
	if (rc == -ENOMEM)
		set_why(why, whylen, "out of memory");
	if (ids)
		xmlHashFree(ids, NULL);
	xmlFree(entity);
	quiet_end(&q);
	return rc;
}

int pidf_basic_status(xmlDocPtr doc)
{
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	bool found = false;

	if (!pidf_node_is(root, PIDF_NS, "presence"))
		return -EINVAL;
	for (xmlNode *t = root->children; t; t = t->next) {
		xmlNode *status, *basic;
		bool open;

		if (!pidf_node_is(t, PIDF_NS, "tuple"))
			continue;
		status = child_elem(t, PIDF_NS, "status");
		basic = status ? child_elem(status, PIDF_NS, "basic") : NULL;
		if (!basic)
			continue;
		found = true;
		if (content_is(basic, "open", &open) != 0)
			return -ENOMEM;
		if (open)
			return 1;
	}
	return found ? 0 : -ENOENT;
}

/* ---- serialisation ------------------------------------------------------------ */

int pidf_serialize(xmlDocPtr doc, buf_t *out)
{
	xmlChar *mem = NULL;
	int size = 0;
	xml_quiet_t q;

	if (!doc || !out)
		return -EINVAL;
	quiet_begin(&q, NULL);
	xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
	quiet_end(&q);
	if (!mem || size <= 0) {
		xmlFree(mem);
		return -ENOMEM;
	}
	buf_append(out, mem, (size_t)size);
	xmlFree(mem);
	return out->err;
}

/* ---- composition --------------------------------------------------------------- */

typedef struct composer {
	xmlDocPtr doc;
	xmlNode *root;
	xmlHashTablePtr ids;   /* ids used in the output */
	xmlHashTablePtr notes; /* (text, lang) of presence-level notes */
} composer_t;

/* Drops the namespace declarations on the top element of a copy that the
 * output root already makes (same prefix, same URI: the PIDF default
 * namespace, dm:), and points the references in the copy at the root's
 * declarations.  Only the top element is looked at, so no declaration in
 * between can shadow the root's.  Purely cosmetic: the document is
 * correct without it. */
static void drop_redundant_ns(xmlNode *root, xmlNode *copy)
{
	enum { MAXMAP = 16 };
	xmlNsPtr from[MAXMAP], to[MAXMAP];
	size_t n = 0;
	xmlNsPtr *link = &copy->nsDef;

	while (*link && n < MAXMAP) {
		xmlNsPtr d = *link, r;

		for (r = root->nsDef; r; r = r->next) {
			if (xmlStrEqual(r->prefix, d->prefix) && xmlStrEqual(r->href, d->href))
				break;
		}
		if (!r) {
			link = &d->next;
			continue;
		}
		*link = d->next;
		d->next = NULL;
		from[n] = d;
		to[n] = r;
		n++;
	}
	if (n == 0)
		return;

	/* Iterative walk of the copy: elements and their attributes. */
	xmlNode *cur = copy;
	while (cur) {
		if (cur->type == XML_ELEMENT_NODE) {
			for (size_t i = 0; i < n; i++) {
				if (cur->ns == from[i])
					cur->ns = to[i];
			}
			for (xmlAttr *a = cur->properties; a; a = a->next) {
				for (size_t i = 0; i < n; i++) {
					if (a->ns == from[i])
						a->ns = to[i];
				}
			}
			if (cur->children) {
				cur = cur->children;
				continue;
			}
		}
		while (cur != copy && !cur->next)
			cur = cur->parent;
		if (cur == copy)
			break;
		cur = cur->next;
	}
	for (size_t i = 0; i < n; i++)
		xmlFreeNs(from[i]);
}

/* Makes the id attribute of copy unique in the output and records it. */
static int claim_id(composer_t *c, xmlNode *copy)
{
	xmlChar *id = xmlGetNoNsProp(copy, BAD_CAST "id");
	char *alt = NULL;
	int rc = 0;

	if (!id)
		return 0; /* validated sources always have one */
	if (xmlHashLookup(c->ids, id)) {
		size_t sz = (size_t)xmlStrlen(id) + 24;

		alt = malloc(sz);
		if (!alt) {
			rc = -ENOMEM;
			goto out;
		}
		/* Each used id blocks at most one suffix, so this ends. */
		for (unsigned k = 2;; k++) {
			snprintf(alt, sz, "%s-%u", (const char *)id, k);
			if (!xmlHashLookup(c->ids, BAD_CAST alt))
				break;
		}
		if (!xmlSetNsProp(copy, NULL, BAD_CAST "id", BAD_CAST alt)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (xmlHashAddEntry(c->ids, alt ? BAD_CAST alt : id, c->ids) != 0)
		rc = -ENOMEM;
out:
	free(alt);
	xmlFree(id);
	return rc;
}

/* Copies one top-level element of a source into the output. */
static int compose_copy(composer_t *c, xmlNode *orig, bool has_id)
{
	xmlNode *copy = xmlDocCopyNode(orig, c->doc, 1);
	xmlChar *lang;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	/* xml:lang inherited from the source's root would be lost with
	 * the root; make it explicit on the copy. */
	if (!xmlHasNsProp(orig, BAD_CAST "lang", XML_XML_NAMESPACE)) {
		lang = xmlNodeGetLang(orig);
		if (lang) {
			xmlNodeSetLang(copy, lang);
			xmlFree(lang);
		}
	}
	if (has_id) {
		rc = claim_id(c, copy);
		if (rc) {
			xmlFreeNode(copy);
			return rc;
		}
	}
	if (!xmlAddChild(c->root, copy)) {
		xmlFreeNode(copy);
		return -ENOMEM;
	}
	drop_redundant_ns(c->root, copy);
	/* One element per line keeps the output readable; white space
	 * between PIDF elements is insignificant. */
	xmlAddChild(c->root, xmlNewDocText(c->doc, BAD_CAST "\n"));
	return 0;
}

/* A presence-level note, unless the same text in the same language was
 * copied already. */
static int compose_note(composer_t *c, xmlNode *note)
{
	xmlChar *text = xmlNodeGetContent(note);
	xmlChar *lang = xmlNodeGetLang(note);
	const xmlChar *lk = lang ? lang : BAD_CAST "";
	int rc = 0;

	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	if (xmlHashLookup2(c->notes, text, lk))
		goto out;
	if (xmlHashAddEntry2(c->notes, text, lk, c->notes) != 0) {
		rc = -ENOMEM;
		goto out;
	}
	rc = compose_copy(c, note, false);
out:
	xmlFree(text);
	xmlFree(lang);
	return rc;
}

typedef int (*compose_each_cb)(composer_t *c, xmlNode *n);

static int copy_with_id(composer_t *c, xmlNode *n) { return compose_copy(c, n, true); }

/* Calls fn for every top-level {ns}local element of doc. */
static int for_each_top(composer_t *c, xmlDocPtr doc, const char *ns, const char *local,
			compose_each_cb fn)
{
	xmlNode *root = xmlDocGetRootElement(doc);

	for (xmlNode *n = root->children; n; n = n->next) {
		if (!pidf_node_is(n, ns, local))
			continue;
		int rc = fn(c, n);
		if (rc)
			return rc;
	}
	return 0;
}

int pidf_compose(const char *entity, const pidf_source_t *sources, size_t n, buf_t *out)
{
	composer_t c = { 0 };
	xmlDocPtr *docs = NULL;
	size_t usable = 0;
	size_t best = SIZE_MAX; /* source of the person; SIZE_MAX = none */
	xml_quiet_t q;
	int rc = 0;

	if (!entity || !entity[0] || !sources || n == 0 || !out || !xml_text_ok(entity))
		return -EINVAL;
	pidf_init();

	docs = calloc(n, sizeof *docs);
	if (!docs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char why[128];

		rc = pidf_xml_parse(sources[i].data, sources[i].len, NULL, &docs[i], why, sizeof why);
		if (rc == 0)
			rc = pidf_validate(docs[i], NULL, why, sizeof why);
		if (rc == -ENOMEM)
			goto out;
		if (rc) {
			LOGW(MOD, "compose %s: skipping publication %s: %s", entity,
			     sources[i].etag ? sources[i].etag : "-", why);
			xmlFreeDoc(docs[i]);
			docs[i] = NULL;
			continue;
		}
		usable++;
		/* Our policy: the person of the newest source wins; on a
		 * tie the later source (see pidf.h). */
		if (child_elem(xmlDocGetRootElement(docs[i]), PIDF_DM_NS, "person") &&
		    (best == SIZE_MAX || sources[i].modified >= sources[best].modified))
			best = i;
	}
	rc = 0;
	if (usable == 0) {
		rc = -EINVAL;
		goto out;
	}

	quiet_begin(&q, NULL);
	c.doc = xmlNewDoc(BAD_CAST "1.0");
	c.ids = xmlHashCreate(32);
	c.notes = xmlHashCreate(8);
	if (!c.doc || !c.ids || !c.notes)
		goto oom;
	c.root = xmlNewDocNode(c.doc, NULL, BAD_CAST "presence", NULL);
	if (!c.root)
		goto oom;
	xmlDocSetRootElement(c.doc, c.root);
	{
		xmlNsPtr pidf = xmlNewNs(c.root, BAD_CAST PIDF_NS, NULL);
		if (!pidf || !xmlNewNs(c.root, BAD_CAST PIDF_DM_NS, BAD_CAST "dm"))
			goto oom;
		xmlSetNs(c.root, pidf);
	}
	if (!xmlNewNsProp(c.root, NULL, BAD_CAST "entity", BAD_CAST entity))
		goto oom;
	xmlAddChild(c.root, xmlNewDocText(c.doc, BAD_CAST "\n"));

	/* The order of the RFC 3863 schema: tuple*, note*, then elements of
	 * other namespaces (RFC 4479 person and devices). */
	for (size_t i = 0; i < n && !rc; i++) {
		if (docs[i])
			rc = for_each_top(&c, docs[i], PIDF_NS, "tuple", copy_with_id);
	}
	for (size_t i = 0; i < n && !rc; i++) {
		if (docs[i])
			rc = for_each_top(&c, docs[i], PIDF_NS, "note", compose_note);
	}
	if (!rc && best != SIZE_MAX)
		rc = compose_copy(&c, child_elem(xmlDocGetRootElement(docs[best]), PIDF_DM_NS, "person"),
				  true);
	for (size_t i = 0; i < n && !rc; i++) {
		if (docs[i])
			rc = for_each_top(&c, docs[i], PIDF_DM_NS, "device", copy_with_id);
	}
	/* No xmlReconciliateNs(doc, root) here: each copy already declares
	 * every namespace it uses (xmlDocCopyNode puts the missing
	 * declarations on the copy's top element), so every reference is in
	 * scope.  xmlReconciliateNs would rebind all references to
	 * declarations on the root, inventing prefixes ("dm1") that it checks
	 * for collisions at the root only -- an inner xmlns:dm1 of the source
	 * then captures the reference and changes its namespace (see
	 * test_compose_ns_shadowing). */
	quiet_end(&q);
	if (!rc)
		rc = pidf_serialize(c.doc, out);
	goto out;

oom:
	quiet_end(&q);
	rc = -ENOMEM;
out:
	if (c.notes)
		xmlHashFree(c.notes, NULL);
	if (c.ids)
		xmlHashFree(c.ids, NULL);
	if (c.doc)
		xmlFreeDoc(c.doc);
	for (size_t i = 0; i < n; i++) {
		if (docs[i])
			xmlFreeDoc(docs[i]);
	}
	free(docs);
	return rc;
}

/* ---- documents we write ourselves ------------------------------------------------ */

/* True when s is UTF-8 made only of characters XML 1.0 can carry
 * (Char, XML 1.0 §2.2), overlong forms and surrogates excluded. */
static bool xml_text_ok(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s) {
		unsigned long cp;
		int n;

		if (*s < 0x80) {
			if (*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r')
				return false;
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0) {
			cp = *s & 0x1f;
			n = 1;
		} else if ((*s & 0xf0) == 0xe0) {
			cp = *s & 0x0f;
			n = 2;
		} else if ((*s & 0xf8) == 0xf0) {
			cp = *s & 0x07;
			n = 3;
		} else {
			return false;
		}
		for (int i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
			return false;
		if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff || cp > 0x10ffff)
			return false;
		s += n + 1;
	}
	return true;
}

/* Escapes for an attribute value in double quotes, keeping white space
 * characters through attribute-value normalisation (XML 1.0 §3.3.3). */
static void put_attr(buf_t *b, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep;

		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\t': rep = "&#9;"; break;
		case '\n': rep = "&#10;"; break;
		case '\r': rep = "&#13;"; break;
		default: continue;
		}
		buf_append(b, run, (size_t)(s - run));
		buf_puts(b, rep);
		run = s + 1;
	}
	buf_append(b, run, (size_t)(s - run));
}

/* Escapes for character data; CR as a reference so end-of-line handling
 * (XML 1.0 §2.11) does not eat it. */
static void put_text(buf_t *b, const char *s)
{
	const char *run = s;

	for (; *s; s++) {
		const char *rep;

		switch (*s) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '\r': rep = "&#13;"; break;
		default: continue;
		}
		buf_append(b, run, (size_t)(s - run));
		buf_puts(b, rep);
		run = s + 1;
	}
	buf_append(b, run, (size_t)(s - run));
}

int pidf_basic_doc(const char *entity, bool open, const char *tuple_id,
		   const char *contact_or_null, buf_t *out)
{
	if (!entity || !entity[0] || !tuple_id || !out)
		return -EINVAL;
	if (!xml_text_ok(entity) || (contact_or_null && !xml_text_ok(contact_or_null)))
		return -EINVAL;
	if (xmlValidateNCName(BAD_CAST tuple_id, 0) != 0)
		return -EINVAL;

	buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<presence xmlns=\"" PIDF_NS "\" entity=\"");
	put_attr(out, entity);
	buf_puts(out, "\">\n<tuple id=\"");
	put_attr(out, tuple_id);
	buf_puts(out, "\"><status><basic>");
	buf_puts(out, open ? "open" : "closed");
	buf_puts(out, "</basic></status>");
	if (contact_or_null) {
		buf_puts(out, "<contact>");
		put_text(out, contact_or_null);
		buf_puts(out, "</contact>");
	}
	buf_puts(out, "</tuple>\n</presence>\n");
	return out->err;
}
