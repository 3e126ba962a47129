/* Buddy lists as RFC 4826 documents (see buddylist.h). */
#include "presence/buddylist.h"

#include <ctype.h>
#include <errno.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "presence/pidf.h"
#include "presence/xcap_store.h"

/* Documents of a user's own lists may be larger than a PIDF body. */
static const pidf_limits_t LIMITS = { 1u << 20, 32, 20000 };

static void why_set(char *why, size_t whylen, const char *s)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", s);
}

void rl_entries_free(rl_entry_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].uri);
		free(v[i].name);
	}
	free(v);
}

void rl_services_free(rl_service_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].uri);
		free(v[i].list_ref);
		rl_entries_free(v[i].entries, v[i].n);
	}
	free(v);
}

static char *text_of(const xmlNode *n)
{
	xmlChar *t = xmlNodeGetContent(n);
	if (!t)
		return NULL;
	/* Trim: documents are often indented. */
	char *s = (char *)t, *e = s + strlen(s);
	while (*s && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	char *out = strndup(s, (size_t)(e - s));
	xmlFree(t);
	return out;
}

/* --- flattening ----------------------------------------------------------- */

typedef struct entries {
	rl_entry_t *v;
	size_t n, cap;
	int err;
} entries_t;

static bool entries_has(const entries_t *e, const char *uri)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->v[i].uri, uri) == 0)
			return true;
	return false;
}

static void entries_add(entries_t *e, const xmlNode *entry)
{
	xmlChar *uri = xmlGetProp(entry, (const xmlChar *)"uri");
	if (!uri || !*uri || entries_has(e, (const char *)uri) || e->n >= RL_MAX_ENTRIES) {
		xmlFree(uri);
		return;
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		rl_entry_t *v = realloc(e->v, cap * sizeof *v);
		if (!v) {
			e->err = -ENOMEM;
			xmlFree(uri);
			return;
		}
		e->v = v;
		e->cap = cap;
	}
	rl_entry_t *x = &e->v[e->n];
	x->uri = strdup((const char *)uri);
	x->name = NULL;
	xmlFree(uri);
	for (const xmlNode *c = entry->children; c; c = c->next)
		if (pidf_node_is(c, RL_NS, "display-name")) {
			x->name = text_of(c);
			break;
		}
	if (!x->uri) {
		free(x->name);
		e->err = -ENOMEM;
		return;
	}
	e->n++;
}

static void flatten(entries_t *e, const xmlNode *list)
{
	for (const xmlNode *c = list->children; c && !e->err; c = c->next) {
		if (pidf_node_is(c, RL_NS, "entry"))
			entries_add(e, c);
		else if (pidf_node_is(c, RL_NS, "list"))
			flatten(e, c); /* depth bounded by the parser */
		/* entry-ref and external point outside this document: not
		 * followed (documented in buddylist.h). */
	}
}

/* --- rls-services ------------------------------------------------------------ */

int rls_services_parse(const char *xml, size_t len, rl_service_t **out, size_t *n, char *why,
		       size_t whylen)
{
	*out = NULL;
	*n = 0;
	xmlDocPtr doc = NULL;
	int err = pidf_xml_parse(xml, len, &LIMITS, &doc, why, whylen);
	if (err)
		return err;
	xmlNode *root = xmlDocGetRootElement(doc);
	if (!root || !pidf_node_is(root, RLS_NS, "rls-services")) {
		why_set(why, whylen, "not an rls-services document");
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	size_t cap = 0;
	rl_service_t *v = NULL;
	for (xmlNode *s = root->children; s && !err; s = s->next) {
		if (!pidf_node_is(s, RLS_NS, "service"))
			continue;
		xmlChar *uri = xmlGetProp(s, (const xmlChar *)"uri");
		if (!uri || !*uri) {
			xmlFree(uri);
			why_set(why, whylen, "service without uri");
			err = -EINVAL;
			break;
		}
		if (*n == cap) {
			cap = cap ? 2 * cap : 4;
			rl_service_t *nv = realloc(v, cap * sizeof *nv);
			if (!nv) {
				xmlFree(uri);
				err = -ENOMEM;
				break;
			}
			v = nv;
		}
		rl_service_t *svc = &v[*n];
		memset(svc, 0, sizeof *svc);
		svc->uri = strdup((const char *)uri);
		xmlFree(uri);
		svc->presence = true;
		(*n)++;
		if (!svc->uri) {
			err = -ENOMEM;
			break;
		}
		bool saw_packages = false, saw_presence = false;
		for (xmlNode *c = s->children; c; c = c->next) {
			if (pidf_node_is(c, RLS_NS, "resource-list")) {
				free(svc->list_ref);
				svc->list_ref = text_of(c);
			} else if (pidf_node_is(c, RL_NS, "list")) {
				entries_t e = { 0 };
				flatten(&e, c);
				rl_entries_free(svc->entries, svc->n);
				svc->entries = e.v;
				svc->n = e.n;
				if (e.err)
					err = e.err;
			} else if (pidf_node_is(c, RLS_NS, "packages")) {
				saw_packages = true;
				for (xmlNode *p = c->children; p; p = p->next) {
					if (!pidf_node_is(p, RLS_NS, "package"))
						continue;
					char *t = text_of(p);
					if (t && strcasecmp(t, "presence") == 0)
						saw_presence = true;
					free(t);
				}
			}
		}
		svc->presence = !saw_packages || saw_presence;
	}
	xmlFreeDoc(doc);
	if (err) {
		rl_services_free(v, *n);
		*n = 0;
		return err;
	}
	*out = v;
	return 0;
}

/* --- references ---------------------------------------------------------------- */

static int pct_decode(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (const char *p = in; *p; p++) {
		char c = *p;
		if (c == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
			char h[3] = { p[1], p[2], 0 };
			c = (char)strtol(h, NULL, 16);
			p += 2;
			if (c == '\0')
				return -EINVAL;
		}
		if (o + 1 >= outlen)
			return -ENOSPC;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* One step "list", "rl:list", "list[@name="x"]", "list[3]". */
static int parse_step(const char *s, size_t len, rl_ref_t *r)
{
	const char *colon = memchr(s, ':', len);
	const char *br = memchr(s, '[', len);
	if (colon && (!br || colon < br)) {
		len -= (size_t)(colon + 1 - s);
		s = colon + 1;
		br = memchr(s, '[', len);
	}
	size_t nlen = br ? (size_t)(br - s) : len;
	if (nlen != 4 || strncmp(s, "list", 4) != 0 || r->depth >= RL_MAX_PATH)
		return -EINVAL;
	unsigned i = r->depth;
	r->name[i][0] = '\0';
	r->pos[i] = 0;
	if (br) {
		const char *end = s + len;
		if (end[-1] != ']')
			return -EINVAL;
		const char *p = br + 1, *q = end - 1;
		if (isdigit((unsigned char)*p)) {
			char *e;
			unsigned long v = strtoul(p, &e, 10);
			if (e != q || v == 0 || v > 100000)
				return -EINVAL;
			r->pos[i] = (unsigned)v;
		} else {
			static const char pfx[] = "@name=";
			if ((size_t)(q - p) < sizeof pfx + 1 || strncmp(p, pfx, sizeof pfx - 1) != 0)
				return -EINVAL;
			p += sizeof pfx - 1;
			char quote = *p;
			if ((quote != '"' && quote != '\'') || q[-1] != quote || q - p < 2)
				return -EINVAL;
			size_t vlen = (size_t)(q - 1 - (p + 1));
			if (vlen >= RL_NAME_MAX)
				return -EINVAL;
			memcpy(r->name[i], p + 1, vlen);
			r->name[i][vlen] = '\0';
		}
	} else {
		r->pos[i] = 1; /* "list" alone selects the only (first) list */
	}
	r->depth++;
	return 0;
}

int rl_ref_parse(const char *ref, rl_ref_t *out)
{
	memset(out, 0, sizeof *out);
	if (!ref)
		return -EINVAL;
	char buf[4096];
	if (pct_decode(ref, buf, sizeof buf) != 0)
		return -EINVAL;
	static const char key[] = "/resource-lists/users/";
	char *p = strstr(buf, key);
	if (!p)
		return -EINVAL;
	p += sizeof key - 1;
	char *slash = strchr(p, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	if (strncasecmp(p, "sips:", 5) == 0)
		p += 5;
	else if (strncasecmp(p, "sip:", 4) == 0)
		p += 4;
	char *at = strrchr(p, '@');
	if (!at || at == p || !at[1] || strlen(p) >= RL_NAME_MAX)
		return -EINVAL;
	for (char *h = at + 1; *h; h++)
		*h = (char)tolower((unsigned char)*h);
	snprintf(out->owner, sizeof out->owner, "%s", p);
	char *doc = slash + 1;
	char *sel = strstr(doc, "/~~/");
	if (sel)
		*sel = '\0';
	if (!*doc || strchr(doc, '/') || strlen(doc) >= RL_NAME_MAX)
		return -EINVAL;
	snprintf(out->doc, sizeof out->doc, "%s", doc);
	if (!sel)
		return 0;
	char *s = sel + 4;
	/* The first step is the document element. */
	char *e = strchr(s, '/');
	size_t flen = e ? (size_t)(e - s) : strlen(s);
	const char *colon = memchr(s, ':', flen);
	const char *local = colon ? colon + 1 : s;
	if ((size_t)(s + flen - local) != 14 || strncmp(local, "resource-lists", 14) != 0)
		return -EINVAL;
	while (e) {
		s = e + 1;
		/* A '/' inside a quoted name would split a step: names with '/'
		 * are not supported in references. */
		e = strchr(s, '/');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (!len || parse_step(s, len, out) != 0)
			return -EINVAL;
	}
	return 0;
}

static const xmlNode *select_list(const xmlNode *parent, const char *name, unsigned pos)
{
	unsigned k = 0;
	for (const xmlNode *c = parent->children; c; c = c->next) {
		if (!pidf_node_is(c, RL_NS, "list"))
			continue;
		k++;
		if (pos) {
			if (k == pos)
				return c;
			continue;
		}
		xmlChar *nm = xmlGetProp(c, (const xmlChar *)"name");
		bool hit = nm && strcmp((const char *)nm, name) == 0;
		xmlFree(nm);
		if (hit)
			return c;
	}
	return NULL;
}

int rl_list_entries(const char *xml, size_t len, const rl_ref_t *ref, rl_entry_t **out,
		    size_t *n)
{
	*out = NULL;
	*n = 0;
	xmlDocPtr doc = NULL;
	char why[128];
	int err = pidf_xml_parse(xml, len, &LIMITS, &doc, why, sizeof why);
	if (err)
		return err;
	const xmlNode *node = xmlDocGetRootElement(doc);
	if (!node || !pidf_node_is(node, RL_NS, "resource-lists")) {
		xmlFreeDoc(doc);
		return -EINVAL;
	}
	for (unsigned i = 0; i < ref->depth && node; i++)
		node = select_list(node, ref->name[i], ref->pos[i]);
	if (!node) {
		xmlFreeDoc(doc);
		return -ENOENT;
	}
	entries_t e = { 0 };
	flatten(&e, node);
	xmlFreeDoc(doc);
	if (e.err) {
		rl_entries_free(e.v, e.n);
		return e.err;
	}
	*out = e.v;
	*n = e.n;
	return 0;
}

int rl_list_name(const char *xml, size_t len, unsigned pos, char *out, size_t outlen)
{
	xmlDocPtr doc = NULL;
	char why[128];
	int err = pidf_xml_parse(xml, len, &LIMITS, &doc, why, sizeof why);
	if (err)
		return err;
	const xmlNode *root = xmlDocGetRootElement(doc);
	const xmlNode *l = root && pidf_node_is(root, RL_NS, "resource-lists")
				   ? select_list(root, NULL, pos)
				   : NULL;
	if (!l) {
		xmlFreeDoc(doc);
		return -ENOENT;
	}
	xmlChar *nm = xmlGetProp(l, (const xmlChar *)"name");
	snprintf(out, outlen, "%s", nm ? (const char *)nm : "");
	xmlFree(nm);
	xmlFreeDoc(doc);
	return 0;
}

/* --- editing ---------------------------------------------------------------------- */

/* Parses xml, or makes an empty document with root {ns}root_name. */
static int open_doc(const char *xml, size_t len, const char *ns, const char *root_name,
		    xmlDocPtr *out)
{
	char why[128];
	if (xml) {
		int err = pidf_xml_parse(xml, len, &LIMITS, out, why, sizeof why);
		if (err)
			return err;
		xmlNode *root = xmlDocGetRootElement(*out);
		if (!root || !pidf_node_is(root, ns, root_name)) {
			xmlFreeDoc(*out);
			*out = NULL;
			return -EINVAL;
		}
		return 0;
	}
	xmlDocPtr d = xmlNewDoc((const xmlChar *)"1.0");
	xmlNode *root = d ? xmlNewNode(NULL, (const xmlChar *)root_name) : NULL;
	xmlNsPtr n = root ? xmlNewNs(root, (const xmlChar *)ns, NULL) : NULL;
	if (!n) {
		xmlFreeNode(root);
		xmlFreeDoc(d);
		return -ENOMEM;
	}
	xmlSetNs(root, n);
	xmlDocSetRootElement(d, root);
	*out = d;
	return 0;
}

static xmlNode *find_entry(xmlNode *list, const char *uri)
{
	for (xmlNode *c = list->children; c; c = c->next) {
		if (!pidf_node_is(c, RL_NS, "entry"))
			continue;
		xmlChar *u = xmlGetProp(c, (const xmlChar *)"uri");
		bool hit = u && strcmp((const char *)u, uri) == 0;
		xmlFree(u);
		if (hit)
			return c;
	}
	return NULL;
}

int rl_doc_add_entry(const char *xml, size_t len, const char *list, const char *uri,
		     const char *name, buf_t *out)
{
	xmlDocPtr doc;
	int err = open_doc(xml, len, RL_NS, "resource-lists", &doc);
	if (err)
		return err;
	xmlNode *root = xmlDocGetRootElement(doc);
	xmlNode *l = (xmlNode *)select_list(root, list, 0);
	if (!l) {
		l = xmlNewChild(root, root->ns, (const xmlChar *)"list", NULL);
		if (!l || !xmlSetProp(l, (const xmlChar *)"name", (const xmlChar *)list)) {
			xmlFreeDoc(doc);
			return -ENOMEM;
		}
	}
	if (find_entry(l, uri)) {
		xmlFreeDoc(doc);
		return -EEXIST;
	}
	xmlNode *e = xmlNewChild(l, l->ns, (const xmlChar *)"entry", NULL);
	if (!e || !xmlSetProp(e, (const xmlChar *)"uri", (const xmlChar *)uri) ||
	    (name && *name && !xmlNewTextChild(e, l->ns, (const xmlChar *)"display-name",
					       (const xmlChar *)name))) {
		xmlFreeDoc(doc);
		return -ENOMEM;
	}
	err = pidf_serialize(doc, out);
	xmlFreeDoc(doc);
	return err;
}

int rl_doc_del_entry(const char *xml, size_t len, const char *list, const char *uri,
		     buf_t *out)
{
	if (!xml)
		return -ENOENT;
	xmlDocPtr doc;
	int err = open_doc(xml, len, RL_NS, "resource-lists", &doc);
	if (err)
		return err;
	xmlNode *l = (xmlNode *)select_list(xmlDocGetRootElement(doc), list, 0);
	xmlNode *e = l ? find_entry(l, uri) : NULL;
	if (!e) {
		xmlFreeDoc(doc);
		return -ENOENT;
	}
	xmlUnlinkNode(e);
	xmlFreeNode(e);
	err = pidf_serialize(doc, out);
	xmlFreeDoc(doc);
	return err;
}

int rls_doc_add_service(const char *xml, size_t len, const char *uri, const char *list_ref,
			buf_t *out)
{
	xmlDocPtr doc;
	int err = open_doc(xml, len, RLS_NS, "rls-services", &doc);
	if (err)
		return err;
	xmlNode *root = xmlDocGetRootElement(doc);
	for (xmlNode *c = root->children; c; c = c->next) {
		if (!pidf_node_is(c, RLS_NS, "service"))
			continue;
		xmlChar *u = xmlGetProp(c, (const xmlChar *)"uri");
		bool hit = u && strcmp((const char *)u, uri) == 0;
		xmlFree(u);
		if (hit) {
			xmlFreeDoc(doc);
			return -EEXIST;
		}
	}
	xmlNode *s = xmlNewChild(root, root->ns, (const xmlChar *)"service", NULL);
	xmlNode *pk = NULL;
	if (!s || !xmlSetProp(s, (const xmlChar *)"uri", (const xmlChar *)uri) ||
	    !xmlNewTextChild(s, root->ns, (const xmlChar *)"resource-list",
			     (const xmlChar *)list_ref) ||
	    !(pk = xmlNewChild(s, root->ns, (const xmlChar *)"packages", NULL)) ||
	    !xmlNewTextChild(pk, root->ns, (const xmlChar *)"package", (const xmlChar *)"presence")) {
		xmlFreeDoc(doc);
		return -ENOMEM;
	}
	err = pidf_serialize(doc, out);
	xmlFreeDoc(doc);
	return err;
}

static void pct_encode(buf_t *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@' || c == ':')
			buf_printf(out, "%c", c);
		else
			buf_printf(out, "%%%02X", c);
	}
}

int rl_list_ref(const char *root, const char *owner, const char *list, buf_t *out)
{
	buf_puts(out, root);
	buf_puts(out, "/resource-lists/users/sip:");
	pct_encode(out, owner);
	buf_puts(out, "/index/~~/resource-lists/list%5B@name=%22");
	pct_encode(out, list);
	buf_puts(out, "%22%5D");
	return out->err;
}

/* --- ETags (xcap_store.h; here so simplectl needs no server code) --- */

void xstore_new_etag(char *out, size_t outlen)
{
	unsigned char r[12];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		/* Uniqueness, not secrecy, is what an ETag needs. */
		static uint64_t counter;
		uint64_t t = (uint64_t)time(NULL) ^ (++counter << 32);
		memcpy(r, &t, sizeof t);
		memset(r + sizeof t, 0, sizeof r - sizeof t);
	}
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;
	for (; i < sizeof r && 2 * i + 2 < outlen; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	if (outlen)
		out[2 * i < outlen ? 2 * i : outlen - 1] = '\0';
}
