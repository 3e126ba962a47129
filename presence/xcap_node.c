/* XCAP element and attribute operations (RFC 4825 §7, §8.2): see
 * xcap_path.h.  Works on a libxml2 tree the caller parsed with
 * pidf_xml_parse (the project's safe settings); bodies of element PUTs go
 * through the same parser. */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/xmlsave.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pidf.h"
#include "presence/xcap_path.h"
#include "server/base/buf.h"

static bool name_matches(const xmlNode *n, const xcap_step_t *st)
{
	if (n->type != XML_ELEMENT_NODE)
		return false;
	if (st->any)
		return true;
	const char *ns = n->ns && n->ns->href ? (const char *)n->ns->href : "";
	return strcmp((const char *)n->name, st->local) == 0 && strcmp(ns, st->ns) == 0;
}

/* The attribute's value (a new string) or NULL. */
static xmlChar *attr_get(xmlNode *n, const char *ns, const char *local)
{
	return *ns ? xmlGetNsProp(n, (const xmlChar *)local, (const xmlChar *)ns)
		   : xmlGetNoNsProp(n, (const xmlChar *)local);
}

static bool attr_matches(xmlNode *n, const xcap_step_t *st)
{
	if (!st->has_attr)
		return true;
	xmlChar *v = attr_get(n, st->attr_ns, st->attr_local);
	bool ok = v && strcmp((const char *)v, st->attr_value) == 0;
	xmlFree(v);
	return ok;
}

/* The one child of parent that step st selects (NULL: none or several).
 * Position counts the siblings that match the name; the attribute test
 * applies after it, as XPath predicates do left to right. */
static xmlNodePtr select_child(xmlNodePtr first, const xcap_step_t *st)
{
	xmlNodePtr found = NULL;
	unsigned k = 0;
	for (xmlNodePtr c = first; c; c = c->next) {
		if (!name_matches(c, st))
			continue;
		k++;
		if (st->pos && k != st->pos)
			continue;
		if (!attr_matches(c, st))
			continue;
		if (found)
			return NULL; /* ambiguous: selects nothing (§6.3) */
		found = c;
	}
	return found;
}

xmlNodePtr xcap_select(xmlDocPtr doc, const xcap_selector_t *sel, size_t n)
{
	xmlNodePtr cur = NULL;
	/* The first step selects the root (the document node's child). */
	xmlNodePtr kids = doc->children;
	for (size_t i = 0; i < n; i++) {
		cur = select_child(kids, &sel->steps[i]);
		if (!cur)
			return NULL;
		kids = cur->children;
	}
	return cur;
}

/* Escapes text for an attribute value body (§7.2: the value as it would
 * appear between the quotes). */
static void escape_att(buf_t *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(b, "&amp;"); break;
		case '<': buf_puts(b, "&lt;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		default: buf_append(b, s, 1);
		}
	}
}

static xcap_result_t give(buf_t *b, char **out, size_t *outlen)
{
	buf_append(b, "", 1);
	if (b->err) {
		buf_free(b);
		return XCAP_NO_MEMORY;
	}
	*out = buf_steal(b, outlen);
	(*outlen)--;
	return XCAP_OK;
}

xcap_result_t xcap_get(xmlDocPtr doc, const xcap_selector_t *sel, char **out, size_t *outlen)
{
	xmlNodePtr el = xcap_select(doc, sel, sel->n);
	if (!el)
		return XCAP_NOT_FOUND;
	buf_t b;
	buf_init(&b, 0);
	if (sel->kind == XSEL_ATTRIBUTE) {
		xmlChar *v = attr_get(el, sel->attr_ns, sel->attr_local);
		if (!v)
			return XCAP_NOT_FOUND;
		escape_att(&b, (const char *)v);
		xmlFree(v);
		return give(&b, out, outlen);
	}
	if (sel->kind == XSEL_NAMESPACES) {
		/* §7.4: an element of the selected name carrying every
		 * namespace binding in scope. */
		xmlNsPtr *list = xmlGetNsList(doc, el);
		buf_puts(&b, "<");
		if (el->ns && el->ns->prefix)
			buf_printf(&b, "%s:", (const char *)el->ns->prefix);
		buf_puts(&b, (const char *)el->name);
		for (size_t i = 0; list && list[i]; i++) {
			buf_puts(&b, list[i]->prefix ? " xmlns:" : " xmlns");
			if (list[i]->prefix)
				buf_puts(&b, (const char *)list[i]->prefix);
			buf_puts(&b, "=\"");
			escape_att(&b, (const char *)list[i]->href);
			buf_puts(&b, "\"");
		}
		buf_puts(&b, "/>");
		xmlFree(list);
		return give(&b, out, outlen);
	}
	xmlBufferPtr xb = xmlBufferCreate();
	if (!xb)
		return XCAP_NO_MEMORY;
	if (xmlNodeDump(xb, doc, el, 0, 0) < 0) {
		xmlBufferFree(xb);
		return XCAP_NO_MEMORY;
	}
	buf_append(&b, xmlBufferContent(xb), (size_t)xmlBufferLength(xb));
	xmlBufferFree(xb);
	return give(&b, out, outlen);
}

/* --- PUT ------------------------------------------------------------------ */

/* Skips an XML declaration and white space at the start of the body. */
static const char *skip_prolog(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++;
	if (end - s > 5 && memcmp(s, "<?xml", 5) == 0) {
		const char *q = s;
		while (q + 1 < end && !(q[0] == '?' && q[1] == '>'))
			q++;
		if (q + 1 < end)
			s = q + 2;
	}
	return s;
}

/* Parses the body of an element PUT inside a wrapper that declares every
 * namespace in scope at parent, so "<entry uri='..'/>" means the entry of
 * the document's default namespace, as it would inside the document. */
static xcap_result_t parse_fragment(xmlDocPtr doc, xmlNodePtr parent, const char *body,
				    size_t len, xmlDocPtr *frag, xmlNodePtr *el)
{
	buf_t w;
	buf_init(&w, 0);
	buf_puts(&w, "<xcap-fragment");
	xmlNsPtr *list = xmlGetNsList(doc, parent);
	for (size_t i = 0; list && list[i]; i++) {
		buf_puts(&w, list[i]->prefix ? " xmlns:" : " xmlns");
		if (list[i]->prefix)
			buf_puts(&w, (const char *)list[i]->prefix);
		buf_puts(&w, "=\"");
		escape_att(&w, (const char *)list[i]->href);
		buf_puts(&w, "\"");
	}
	xmlFree(list);
	buf_puts(&w, ">");
	const char *start = skip_prolog(body, body + len);
	buf_append(&w, start, (size_t)(body + len - start));
	buf_puts(&w, "</xcap-fragment>");
	if (w.err) {
		buf_free(&w);
		return XCAP_NO_MEMORY;
	}
	char why[128];
	pidf_limits_t lim = {.max_size = w.len, .max_elements = XCAP_MAX_ELEMENTS};
	int err = pidf_xml_parse(w.data, w.len, &lim, frag, why, sizeof why);
	buf_free(&w);
	if (err == -E2BIG || err == -EMSGSIZE)
		return XCAP_TOO_BIG;
	if (err)
		return XCAP_NOT_WELL_FORMED;
	/* Exactly one element, and nothing but white space around it. */
	xmlNodePtr root = xmlDocGetRootElement(*frag);
	*el = NULL;
	for (xmlNodePtr c = root->children; c; c = c->next) {
		if (c->type == XML_ELEMENT_NODE) {
			if (*el)
				goto not_frag;
			*el = c;
		} else if (c->type == XML_TEXT_NODE) {
			if (!xmlIsBlankNode(c))
				goto not_frag;
		} else if (c->type != XML_COMMENT_NODE) {
			goto not_frag;
		}
	}
	if (*el)
		return XCAP_OK;
not_frag:
	xmlFreeDoc(*frag);
	*frag = NULL;
	return XCAP_NOT_XML_FRAG;
}

/* Where a new element for step st goes among parent's children: before
 * the pos-th sibling of that name when there is a position, else after
 * the last sibling of that name, else at the end. */
static void insert_new(xmlNodePtr parent, xmlNodePtr node, const xcap_step_t *st)
{
	xmlNodePtr last = NULL;
	unsigned k = 0;
	for (xmlNodePtr c = parent->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE)
			continue;
		bool same = st->any ? name_matches(c, st)
				    : (node->ns ? c->ns && xmlStrEqual(c->ns->href, node->ns->href)
						: !c->ns) &&
					  xmlStrEqual(c->name, node->name);
		if (!same)
			continue;
		k++;
		if (st->pos && k == st->pos) {
			xmlAddPrevSibling(c, node);
			return;
		}
		last = c;
	}
	if (last)
		xmlAddNextSibling(last, node);
	else
		xmlAddChild(parent, node);
}

/* Decodes an attribute value body: the five predefined entities and
 * character references; '<' and a bare '&' make it no AttValue. */
static int decode_att(const char *s, size_t len, buf_t *out)
{
	const char *end = s + len;
	while (s < end) {
		unsigned char c = (unsigned char)*s;
		if (c == '<' || c == '\0' || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
			return -EINVAL;
		if (c != '&') {
			buf_append(out, s++, 1);
			continue;
		}
		const char *semi = memchr(s, ';', (size_t)(end - s));
		if (!semi || semi - s > 10)
			return -EINVAL;
		size_t n = (size_t)(semi - s - 1);
		const char *e = s + 1;
		static const struct { const char *name, *ch; } ENT[] = {
			{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
		bool done = false;
		for (size_t i = 0; i < 5 && !done; i++) {
			if (strlen(ENT[i].name) == n && memcmp(e, ENT[i].name, n) == 0) {
				buf_puts(out, ENT[i].ch);
				done = true;
			}
		}
		if (!done) {
			if (n < 2 || e[0] != '#')
				return -EINVAL;
			char num[12];
			memcpy(num, e + 1, n - 1);
			num[n - 1] = '\0';
			char *endp;
			unsigned long cp = num[0] == 'x' ? strtoul(num + 1, &endp, 16)
							 : strtoul(num, &endp, 10);
			if (*endp || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
				return -EINVAL;
			char u[4];
			int k;
			if (cp < 0x80) {
				u[0] = (char)cp;
				k = 1;
			} else if (cp < 0x800) {
				u[0] = (char)(0xC0 | (cp >> 6));
				u[1] = (char)(0x80 | (cp & 0x3F));
				k = 2;
			} else if (cp < 0x10000) {
				u[0] = (char)(0xE0 | (cp >> 12));
				u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
				u[2] = (char)(0x80 | (cp & 0x3F));
				k = 3;
			} else {
				u[0] = (char)(0xF0 | (cp >> 18));
				u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
				u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
				u[3] = (char)(0x80 | (cp & 0x3F));
				k = 4;
			}
			buf_append(out, u, (size_t)k);
		}
		s = semi + 1;
	}
	buf_append(out, "", 1);
	return out->err ? -ENOMEM : 0;
}

static xcap_result_t put_attribute(xmlDocPtr doc, const xcap_selector_t *sel, const char *body,
				   size_t len, bool *created)
{
	xmlNodePtr el = xcap_select(doc, sel, sel->n);
	if (!el)
		return XCAP_NOT_FOUND;
	buf_t v;
	buf_init(&v, 0);
	if (decode_att(body, len, &v) != 0 || !xmlCheckUTF8((const xmlChar *)v.data)) {
		buf_free(&v);
		return XCAP_NOT_XML_ATT;
	}
	xmlChar *old = attr_get(el, sel->attr_ns, sel->attr_local);
	*created = old == NULL;
	xmlNsPtr ns = NULL;
	if (*sel->attr_ns) {
		ns = xmlSearchNsByHref(doc, el, (const xmlChar *)sel->attr_ns);
		if (!ns || !ns->prefix)
			ns = xmlNewNs(el, (const xmlChar *)sel->attr_ns, (const xmlChar *)"xa");
	}
	xmlSetNsProp(el, ns, (const xmlChar *)sel->attr_local, (const xmlChar *)v.data);
	/* Idempotency (§8.2.5): the selector must still reach this element
	 * (a predicate may test the attribute just changed). */
	if (xcap_select(doc, sel, sel->n) != el) {
		if (old)
			xmlSetNsProp(el, ns, (const xmlChar *)sel->attr_local, old);
		else if (ns)
			xmlUnsetNsProp(el, ns, (const xmlChar *)sel->attr_local);
		else
			xmlUnsetProp(el, (const xmlChar *)sel->attr_local);
		xmlFree(old);
		buf_free(&v);
		return XCAP_CANNOT_INSERT;
	}
	xmlFree(old);
	buf_free(&v);
	return XCAP_OK;
}

/* Points every use of from in the subtree of n at to. */
static void repoint_ns(xmlNodePtr n, xmlNsPtr from, xmlNsPtr to)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (n->ns == from)
			n->ns = to;
		for (xmlAttrPtr a = n->properties; a; a = a->next)
			if (a->ns == from)
				a->ns = to;
		repoint_ns(n->children, from, to);
	}
}

/* The copied fragment carries the declarations of the wrapper it was
 * parsed in; those the document already makes identically in scope are
 * dropped, so the stored document reads as if written by hand. */
static void drop_redundant_ns(xmlDocPtr doc, xmlNodePtr parent, xmlNodePtr el)
{
	xmlNsPtr *link = &el->nsDef;
	while (*link) {
		xmlNsPtr def = *link;
		xmlNsPtr outer = xmlSearchNs(doc, parent, def->prefix);
		if (outer && xmlStrEqual(outer->href, def->href)) {
			*link = def->next;
			def->next = NULL;
			el->ns = el->ns == def ? outer : el->ns;
			for (xmlAttrPtr a = el->properties; a; a = a->next)
				if (a->ns == def)
					a->ns = outer;
			repoint_ns(el->children, def, outer);
			xmlFreeNs(def);
		} else {
			link = &def->next;
		}
	}
}

xcap_result_t xcap_put(xmlDocPtr doc, const xcap_selector_t *sel, const char *body, size_t len,
		       bool *created)
{
	*created = false;
	if (sel->kind == XSEL_NAMESPACES || sel->n == 0)
		return XCAP_NOT_SUPPORTED;
	if (sel->kind == XSEL_ATTRIBUTE)
		return put_attribute(doc, sel, body, len, created);
	if (sel->n == 1)
		return XCAP_CANNOT_INSERT; /* the root: PUT the whole document instead */
	xmlNodePtr parent = xcap_select(doc, sel, sel->n - 1);
	if (!parent)
		return XCAP_NOT_FOUND;
	xmlDocPtr frag;
	xmlNodePtr fel;
	xcap_result_t r = parse_fragment(doc, parent, body, len, &frag, &fel);
	if (r != XCAP_OK)
		return r;
	xmlNodePtr copy = xmlDocCopyNode(fel, doc, 1);
	xmlFreeDoc(frag);
	if (!copy)
		return XCAP_NO_MEMORY;
	xmlNodePtr old = xcap_select(doc, sel, sel->n);
	if (old) {
		xmlReplaceNode(old, copy);
	} else {
		*created = true;
		insert_new(parent, copy, &sel->steps[sel->n - 1]);
	}
	drop_redundant_ns(doc, parent, copy);
	xmlReconciliateNs(doc, copy);
	if (xcap_select(doc, sel, sel->n) != copy) {
		/* Not idempotent (e.g. the body's name attribute differs from
		 * the predicate): put things back as they were. */
		if (old)
			xmlReplaceNode(copy, old);
		else
			xmlUnlinkNode(copy);
		xmlFreeNode(copy);
		*created = false;
		return XCAP_CANNOT_INSERT;
	}
	if (old)
		xmlFreeNode(old);
	return XCAP_OK;
}

xcap_result_t xcap_delete(xmlDocPtr doc, const xcap_selector_t *sel)
{
	if (sel->kind == XSEL_NAMESPACES || sel->n == 0)
		return XCAP_NOT_SUPPORTED;
	xmlNodePtr el = xcap_select(doc, sel, sel->n);
	if (!el)
		return XCAP_NOT_FOUND;
	if (sel->kind == XSEL_ATTRIBUTE) {
		xmlAttrPtr a = *sel->attr_ns ? xmlHasNsProp(el, (const xmlChar *)sel->attr_local,
							    (const xmlChar *)sel->attr_ns)
					     : xmlHasNsProp(el, (const xmlChar *)sel->attr_local, NULL);
		if (!a)
			return XCAP_NOT_FOUND;
		xmlChar *old = xmlNodeGetContent((xmlNodePtr)a);
		xmlNsPtr ns = a->ns;
		xmlRemoveProp(a);
		/* A predicate could now select another element that has
		 * the attribute: then the DELETE is not idempotent. */
		xmlNodePtr again = xcap_select(doc, sel, sel->n);
		xmlChar *still = again ? attr_get(again, sel->attr_ns, sel->attr_local) : NULL;
		if (still) {
			xmlFree(still);
			xmlSetNsProp(el, ns, (const xmlChar *)sel->attr_local, old);
			xmlFree(old);
			return XCAP_CANNOT_DELETE;
		}
		xmlFree(old);
		return XCAP_OK;
	}
	if (sel->n == 1)
		return XCAP_CANNOT_DELETE; /* the root: DELETE the document instead */
	xmlNodePtr parent = el->parent, next = el->next;
	xmlUnlinkNode(el);
	if (xcap_select(doc, sel, sel->n)) {
		/* e.g. entry[1] with two entries: another one would be
		 * selected afterwards, so the DELETE is not idempotent. */
		if (next)
			xmlAddPrevSibling(next, el);
		else
			xmlAddChild(parent, el);
		return XCAP_CANNOT_DELETE;
	}
	xmlFreeNode(el);
	return XCAP_OK;
}
