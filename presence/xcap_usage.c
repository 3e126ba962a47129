/* XCAP application usages: see xcap_usage.h. */
#include "presence/xcap_usage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presence/pidf.h"

static const xcap_usage_t USAGES[] = {
	{XU_RESOURCE_LISTS, "resource-lists", "application/resource-lists+xml", XCAP_RL_NS, false},
	{XU_RLS_SERVICES, "rls-services", "application/rls-services+xml", XCAP_RLS_NS, false},
	{XU_PRES_RULES, "pres-rules", "application/auth-policy+xml", XCAP_PR_NS, false},
	{XU_XCAP_CAPS, "xcap-caps", "application/xcap-caps+xml", XCAP_CAPS_NS, true},
};

const xcap_usage_t *xcap_usage_find(const char *auid)
{
	for (size_t i = 0; i < sizeof USAGES / sizeof USAGES[0]; i++) {
		if (strcmp(USAGES[i].auid, auid) == 0)
			return &USAGES[i];
	}
	return NULL;
}

/* Writes s escaped for an attribute value or text. */
static void esc(buf_t *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(b, "&amp;"); break;
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		default: buf_append(b, s, 1);
		}
	}
}

void xcap_error_body(buf_t *out, const char *tag, const char *phrase)
{
	buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-error xmlns=\"" XCAP_ERROR_NS
		      "\"><");
	buf_puts(out, tag);
	if (phrase) {
		buf_puts(out, " phrase=\"");
		esc(out, phrase);
		buf_puts(out, "\"");
	}
	buf_puts(out, "/></xcap-error>\n");
}

/* 409 <uniqueness-failure><exists field="..."/></uniqueness-failure>. */
static int uniqueness(buf_t *err, const char *field)
{
	buf_puts(err, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xcap-error xmlns=\"" XCAP_ERROR_NS
		      "\"><uniqueness-failure><exists field=\"");
	esc(err, field);
	buf_puts(err, "\"/></uniqueness-failure></xcap-error>\n");
	return 409;
}

static int schema_error(buf_t *err, const char *phrase)
{
	xcap_error_body(err, "schema-validation-error", phrase);
	return 409;
}

static bool is_el(const xmlNode *n) { return n->type == XML_ELEMENT_NODE; }

/* Anything but elements and white space (comments are fine). */
static bool stray_text(const xmlNode *n)
{
	return (n->type == XML_TEXT_NODE && !xmlIsBlankNode((xmlNodePtr)n)) ||
	       n->type == XML_CDATA_SECTION_NODE;
}

static bool in_ns(const xmlNode *n, const char *ns)
{
	return n->ns && n->ns->href && strcmp((const char *)n->ns->href, ns) == 0;
}

/* Checks that attribute attr of the element children of list named local
 * are unique; returns 0 or the error. */
static int unique_attr(xmlNodePtr list, const char *local, const char *attr, buf_t *err)
{
	for (xmlNodePtr a = list->children; a; a = a->next) {
		if (!pidf_node_is(a, XCAP_RL_NS, local))
			continue;
		xmlChar *va = xmlGetNoNsProp(a, (const xmlChar *)attr);
		if (!va)
			continue;
		for (xmlNodePtr b = a->next; b; b = b->next) {
			if (!pidf_node_is(b, XCAP_RL_NS, local))
				continue;
			xmlChar *vb = xmlGetNoNsProp(b, (const xmlChar *)attr);
			bool same = vb && xmlStrEqual(va, vb);
			xmlFree(vb);
			if (same) {
				char field[600];
				snprintf(field, sizeof field, "%s[@%s=\"%s\"]/@%s", local, attr,
					 (const char *)va, attr);
				xmlFree(va);
				return uniqueness(err, field);
			}
		}
		xmlFree(va);
	}
	return 0;
}

static bool has_attr(xmlNodePtr n, const char *attr)
{
	xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)attr);
	bool ok = v && *v;
	xmlFree(v);
	return ok;
}

/* RFC 4826 §3.2 listType: display-name?, (list | external | entry |
 * entry-ref)*, any elements of other namespaces; uniqueness per §3.4.5. */
static int validate_list(xmlNodePtr list, unsigned depth, buf_t *err)
{
	if (depth > 16)
		return schema_error(err, "lists nested too deeply");
	bool seen_item = false, seen_name = false;
	for (xmlNodePtr c = list->children; c; c = c->next) {
		if (stray_text(c))
			return schema_error(err, "text inside a list");
		if (!is_el(c) || !in_ns(c, XCAP_RL_NS))
			continue;
		if (pidf_node_is(c, XCAP_RL_NS, "display-name")) {
			if (seen_item || seen_name)
				return schema_error(err, "display-name must come first, once");
			seen_name = true;
		} else if (pidf_node_is(c, XCAP_RL_NS, "list")) {
			seen_item = true;
			int r = validate_list(c, depth + 1, err);
			if (r)
				return r;
		} else if (pidf_node_is(c, XCAP_RL_NS, "entry")) {
			seen_item = true;
			if (!has_attr(c, "uri"))
				return schema_error(err, "entry without uri");
		} else if (pidf_node_is(c, XCAP_RL_NS, "entry-ref")) {
			seen_item = true;
			if (!has_attr(c, "ref"))
				return schema_error(err, "entry-ref without ref");
		} else if (pidf_node_is(c, XCAP_RL_NS, "external")) {
			seen_item = true;
			if (!has_attr(c, "anchor"))
				return schema_error(err, "external without anchor");
		} else {
			return schema_error(err, "unknown element in list");
		}
	}
	int r = unique_attr(list, "list", "name", err);
	if (!r)
		r = unique_attr(list, "entry", "uri", err);
	if (!r)
		r = unique_attr(list, "entry-ref", "ref", err);
	if (!r)
		r = unique_attr(list, "external", "anchor", err);
	return r;
}

static int validate_resource_lists(xmlNodePtr root, buf_t *err)
{
	if (!pidf_node_is(root, XCAP_RL_NS, "resource-lists"))
		return schema_error(err, "root must be resource-lists of " XCAP_RL_NS);
	for (xmlNodePtr c = root->children; c; c = c->next) {
		if (stray_text(c))
			return schema_error(err, "text inside resource-lists");
		if (!is_el(c) || !in_ns(c, XCAP_RL_NS))
			continue;
		if (!pidf_node_is(c, XCAP_RL_NS, "list"))
			return schema_error(err, "resource-lists holds only lists");
		int r = validate_list(c, 1, err);
		if (r)
			return r;
	}
	return unique_attr(root, "list", "name", err);
}

/* RFC 4826 §4: service uri unique, one list or resource-list, then
 * packages. */
static int validate_rls_services(xmlNodePtr root, buf_t *err)
{
	if (!pidf_node_is(root, XCAP_RLS_NS, "rls-services"))
		return schema_error(err, "root must be rls-services of " XCAP_RLS_NS);
	for (xmlNodePtr s = root->children; s; s = s->next) {
		if (stray_text(s))
			return schema_error(err, "text inside rls-services");
		if (!is_el(s) || !in_ns(s, XCAP_RLS_NS))
			continue;
		if (!pidf_node_is(s, XCAP_RLS_NS, "service"))
			return schema_error(err, "rls-services holds only services");
		xmlChar *uri = xmlGetNoNsProp(s, (const xmlChar *)"uri");
		if (!uri || !*uri) {
			xmlFree(uri);
			return schema_error(err, "service without uri");
		}
		for (xmlNodePtr o = s->next; o; o = o->next) {
			if (!pidf_node_is(o, XCAP_RLS_NS, "service"))
				continue;
			xmlChar *u2 = xmlGetNoNsProp(o, (const xmlChar *)"uri");
			bool same = u2 && xmlStrEqual(uri, u2);
			xmlFree(u2);
			if (same) {
				char field[600];
				snprintf(field, sizeof field, "rls-services/service[@uri=\"%s\"]/@uri",
					 (const char *)uri);
				xmlFree(uri);
				return uniqueness(err, field);
			}
		}
		xmlFree(uri);
		unsigned lists = 0, packages = 0;
		for (xmlNodePtr c = s->children; c; c = c->next) {
			if (stray_text(c))
				return schema_error(err, "text inside a service");
			if (!is_el(c))
				continue;
			if (pidf_node_is(c, XCAP_RLS_NS, "list") || pidf_node_is(c, XCAP_RL_NS, "list")) {
				if (packages)
					return schema_error(err, "list after packages");
				lists++;
				int r = validate_list(c, 1, err);
				if (r)
					return r;
			} else if (pidf_node_is(c, XCAP_RLS_NS, "resource-list")) {
				if (packages)
					return schema_error(err, "resource-list after packages");
				lists++;
				xmlChar *t = xmlNodeGetContent(c);
				bool empty = !t || !*t;
				xmlFree(t);
				if (empty)
					return schema_error(err, "empty resource-list");
			} else if (pidf_node_is(c, XCAP_RLS_NS, "packages")) {
				packages++;
				for (xmlNodePtr p = c->children; p; p = p->next) {
					if (stray_text(p))
						return schema_error(err, "text inside packages");
					if (is_el(p) && in_ns(p, XCAP_RLS_NS) &&
					    !pidf_node_is(p, XCAP_RLS_NS, "package"))
						return schema_error(err, "packages holds only package");
				}
			} else if (in_ns(c, XCAP_RLS_NS)) {
				return schema_error(err, "unknown element in service");
			}
		}
		if (lists != 1)
			return schema_error(err, "a service needs exactly one list or resource-list");
		if (packages > 1)
			return schema_error(err, "at most one packages element");
	}
	return 0;
}

int xcap_usage_validate(const xcap_usage_t *u, xmlDocPtr doc, buf_t *err)
{
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (!root)
		return schema_error(err, "empty document");
	switch (u->id) {
	case XU_RESOURCE_LISTS:
		return validate_resource_lists(root, err);
	case XU_RLS_SERVICES:
		return validate_rls_services(root, err);
	case XU_PRES_RULES: {
		rule_t *rules;
		size_t n;
		int r = xcap_presrules_parse(doc, &rules, &n, err);
		if (r == 0) {
			for (size_t i = 0; i < n; i++)
				free(rules[i].watcher);
			free(rules);
		}
		return r;
	}
	case XU_XCAP_CAPS:
		xcap_error_body(err, "constraint-failure", "xcap-caps is read-only");
		return 409;
	}
	return 0;
}

void xcap_caps_doc(buf_t *out)
{
	buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<xcap-caps xmlns=\"" XCAP_CAPS_NS "\">\n<auids>\n");
	for (size_t i = 0; i < sizeof USAGES / sizeof USAGES[0]; i++)
		buf_printf(out, "  <auid>%s</auid>\n", USAGES[i].auid);
	buf_puts(out, "</auids>\n<extensions/>\n<namespaces>\n");
	static const char *const NS[] = {XCAP_CAPS_NS, XCAP_ERROR_NS, XCAP_RL_NS, XCAP_RLS_NS,
					 XCAP_PR_NS, XCAP_CP_NS};
	for (size_t i = 0; i < sizeof NS / sizeof NS[0]; i++)
		buf_printf(out, "  <namespace>%s</namespace>\n", NS[i]);
	buf_puts(out, "</namespaces>\n</xcap-caps>\n");
}

/* --- pres-rules ----------------------------------------------------------- */

static const char *sub_handling(ev_auth_t a)
{
	switch (a) {
	case EV_AUTH_ALLOW: return "allow";
	case EV_AUTH_BLOCK: return "block";
	case EV_AUTH_POLITE: return "polite-block";
	default: return "confirm";
	}
}

/* RFC 5025 §3.2.1: block < polite-block < confirm < allow. */
static int permission(ev_auth_t a)
{
	switch (a) {
	case EV_AUTH_BLOCK: return 0;
	case EV_AUTH_POLITE: return 1;
	case EV_AUTH_ALLOW: return 3;
	default: return 2;
	}
}

void xcap_presrules_doc(const rule_t *rules, size_t n, buf_t *out)
{
	buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		      "<cr:ruleset xmlns=\"" XCAP_PR_NS "\" xmlns:cr=\"" XCAP_CP_NS "\">\n");
	for (size_t i = 0; i < n; i++) {
		buf_printf(out, " <cr:rule id=\"r%zu\">\n  <cr:conditions><cr:identity>", i + 1);
		const char *w = rules[i].watcher;
		if (strncmp(w, "sip:", 4) == 0) {
			buf_puts(out, "<cr:one id=\"");
			esc(out, w);
		} else {
			buf_puts(out, "<cr:many domain=\"");
			esc(out, w);
		}
		buf_printf(out, "\"/></cr:identity></cr:conditions>\n"
				"  <cr:actions><sub-handling>%s</sub-handling></cr:actions>\n"
				"  <cr:transformations/>\n </cr:rule>\n",
			   sub_handling(rules[i].action));
	}
	buf_puts(out, "</cr:ruleset>\n");
}

typedef struct rows {
	rule_t *v;
	size_t n, cap;
} rows_t;

static int rows_add(rows_t *r, const char *pattern, ev_auth_t a, buf_t *err)
{
	char w[512];
	if (rules_normalize_watcher(pattern, w, sizeof w) != 0) {
		xcap_error_body(err, "constraint-failure", "identity is not a SIP AOR or a domain");
		return 409;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->v[i].watcher, w) == 0) {
			if (permission(a) > permission(r->v[i].action))
				r->v[i].action = a;
			return 0;
		}
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		rule_t *p = realloc(r->v, cap * sizeof *p);
		if (!p)
			return 500;
		r->v = p;
		r->cap = cap;
	}
	if (!(r->v[r->n].watcher = strdup(w)))
		return 500;
	r->v[r->n++].action = a;
	return 0;
}

static int constraint(buf_t *err, const char *phrase)
{
	xcap_error_body(err, "constraint-failure", phrase);
	return 409;
}

static int parse_rule(xmlNodePtr rule, rows_t *rows, buf_t *err)
{
	xmlNodePtr identity = NULL;
	ev_auth_t action = EV_AUTH_BLOCK; /* no sub-handling: block (RFC 5025 §3.2.1) */
	for (xmlNodePtr c = rule->children; c; c = c->next) {
		if (stray_text(c))
			return schema_error(err, "text inside a rule");
		if (!is_el(c))
			continue;
		if (pidf_node_is(c, XCAP_CP_NS, "conditions")) {
			for (xmlNodePtr k = c->children; k; k = k->next) {
				if (!is_el(k))
					continue;
				if (!pidf_node_is(k, XCAP_CP_NS, "identity") || identity)
					return constraint(err, "only one identity condition is supported");
				identity = k;
			}
		} else if (pidf_node_is(c, XCAP_CP_NS, "actions")) {
			for (xmlNodePtr k = c->children; k; k = k->next) {
				if (!pidf_node_is(k, XCAP_PR_NS, "sub-handling"))
					continue;
				xmlChar *t = xmlNodeGetContent(k);
				char v[32] = "";
				if (t) {
					const char *s = (const char *)t;
					while (*s == ' ' || *s == '\n' || *s == '\t')
						s++;
					snprintf(v, sizeof v, "%s", s);
					size_t l = strlen(v);
					while (l && (v[l - 1] == ' ' || v[l - 1] == '\n' || v[l - 1] == '\t'))
						v[--l] = '\0';
				}
				xmlFree(t);
				if (strcmp(v, "allow") && strcmp(v, "block") && strcmp(v, "polite-block") &&
				    strcmp(v, "confirm"))
					return schema_error(err, "sub-handling must be allow, block, polite-block or confirm");
				rules_action_parse(v, &action);
			}
		} else if (!pidf_node_is(c, XCAP_CP_NS, "transformations")) {
			return schema_error(err, "unknown element in rule");
		}
	}
	if (!identity)
		return constraint(err, "a rule without an identity condition (everyone) is not supported; "
				       "use presence_default_policy");
	unsigned n = 0;
	for (xmlNodePtr k = identity->children; k; k = k->next) {
		if (!is_el(k))
			continue;
		const char *attr;
		if (pidf_node_is(k, XCAP_CP_NS, "one"))
			attr = "id";
		else if (pidf_node_is(k, XCAP_CP_NS, "many"))
			attr = "domain";
		else
			return schema_error(err, "identity holds one or many");
		for (xmlNodePtr e = k->children; e; e = e->next) {
			if (is_el(e))
				return constraint(err, "except is not supported");
		}
		xmlChar *v = xmlGetNoNsProp(k, (const xmlChar *)attr);
		if (!v || !*v) {
			xmlFree(v);
			return constraint(err, "many without domain (everyone) is not supported");
		}
		int r = rows_add(rows, (const char *)v, action, err);
		xmlFree(v);
		if (r)
			return r;
		n++;
	}
	if (n == 0)
		return schema_error(err, "empty identity");
	return 0;
}

int xcap_presrules_parse(xmlDocPtr doc, rule_t **out, size_t *n, buf_t *err)
{
	*out = NULL;
	*n = 0;
	xmlNodePtr root = xmlDocGetRootElement(doc);
	if (!root || !pidf_node_is(root, XCAP_CP_NS, "ruleset"))
		return schema_error(err, "root must be ruleset of " XCAP_CP_NS);
	rows_t rows = {0};
	int r = 0;
	for (xmlNodePtr c = root->children; c && !r; c = c->next) {
		if (stray_text(c))
			r = schema_error(err, "text inside ruleset");
		else if (!is_el(c))
			continue;
		else if (!pidf_node_is(c, XCAP_CP_NS, "rule") || !has_attr(c, "id"))
			r = schema_error(err, "ruleset holds only rules with an id");
		else
			r = parse_rule(c, &rows, err);
	}
	/* Rule ids are xs:ID: unique. */
	for (xmlNodePtr a = root->children; a && !r; a = a->next) {
		if (!pidf_node_is(a, XCAP_CP_NS, "rule"))
			continue;
		xmlChar *ia = xmlGetNoNsProp(a, (const xmlChar *)"id");
		for (xmlNodePtr b = a->next; b && !r; b = b->next) {
			if (!pidf_node_is(b, XCAP_CP_NS, "rule"))
				continue;
			xmlChar *ib = xmlGetNoNsProp(b, (const xmlChar *)"id");
			if (ia && ib && xmlStrEqual(ia, ib)) {
				char field[300];
				snprintf(field, sizeof field, "cr:ruleset/cr:rule[@id=\"%s\"]/@id", (const char *)ia);
				r = uniqueness(err, field);
			}
			xmlFree(ib);
		}
		xmlFree(ia);
	}
	if (r) {
		for (size_t i = 0; i < rows.n; i++)
			free(rows.v[i].watcher);
		free(rows.v);
		if (r == 500)
			xcap_error_body(err, "constraint-failure", "out of memory");
		return r == 500 ? 409 : r;
	}
	*out = rows.v;
	*n = rows.n;
	return 0;
}
