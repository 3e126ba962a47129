/* XCAP document URIs and node selectors (RFC 4825 §6): see xcap_path.h.
 * Pure string parsing with every output bounded; fuzzed by
 * tests/fuzz/fuzz_xcap_selector.c. */
#include "presence/xcap_path.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
	if (why && whylen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Copies [s, s+n) into out (size outlen) as a C string; -ENOSPC when it
 * does not fit, -EINVAL when it holds a NUL or is empty. */
static int copy_span(char *out, size_t outlen, const char *s, size_t n)
{
	if (n == 0 || memchr(s, '\0', n))
		return -EINVAL;
	if (n >= outlen)
		return -ENOSPC;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* The next path segment of *p (up to '/' or the end); advances past it
 * and its '/'.  Returns its length (0 when none). */
static size_t next_segment(const char **p, const char **seg)
{
	const char *s = *p, *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	*seg = s;
	*p = slash ? slash + 1 : s + n;
	return n;
}

int xcap_uri_parse(const char *path, xcap_uri_t *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	size_t rl = strlen(XCAP_ROOT);
	if (strncmp(path, XCAP_ROOT, rl) != 0 || path[rl] != '/') {
		fail(why, whylen, "not under %s", XCAP_ROOT);
		return -ENOENT;
	}
	const char *p = path + rl + 1, *seg;
	/* The node selector starts after the first "/~~/" (§6). */
	const char *sep = strstr(p, "/~~/");
	size_t doclen = sep ? (size_t)(sep - p) : strlen(p);
	if (sep) {
		if (copy_span(out->node, sizeof out->node, sep + 4, strlen(sep + 4)) != 0)
			return fail(why, whylen, "empty or oversized node selector");
		out->has_node = true;
	}
	char docpart[3 * XCAP_SEGMENT_MAX + 16];
	if (doclen >= sizeof docpart) {
		fail(why, whylen, "document URI too long");
		return -ENOENT;
	}
	memcpy(docpart, p, doclen);
	docpart[doclen] = '\0';
	p = docpart;

	size_t n = next_segment(&p, &seg);
	if (copy_span(out->auid, sizeof out->auid, seg, n) != 0) {
		fail(why, whylen, "no application usage");
		return -ENOENT;
	}
	n = next_segment(&p, &seg);
	if (n == 6 && memcmp(seg, "global", 6) == 0) {
		out->global = true;
	} else if (n == 5 && memcmp(seg, "users", 5) == 0) {
		n = next_segment(&p, &seg);
		if (copy_span(out->xui, sizeof out->xui, seg, n) != 0) {
			fail(why, whylen, "no user (XUI)");
			return -ENOENT;
		}
		/* XUI = the user's SIP AOR; owner = user@host, host lower-cased. */
		const char *u = out->xui;
		if (strncasecmp(u, "sip:", 4) == 0)
			u += 4;
		else if (strncasecmp(u, "sips:", 5) == 0)
			u += 5;
		else
			return fail(why, whylen, "XUI must be a sip: URI");
		const char *at = strrchr(u, '@');
		if (!at || at == u || !at[1] || strpbrk(u, ";?> \t\"<"))
			return fail(why, whylen, "XUI must be sip:user@host");
		snprintf(out->owner, sizeof out->owner, "%s", u);
		char *h = strrchr(out->owner, '@') + 1;
		for (; *h; h++)
			*h = (char)tolower((unsigned char)*h);
		snprintf(out->domain, sizeof out->domain, "%s", strrchr(out->owner, '@') + 1);
	} else {
		fail(why, whylen, "expected users/ or global/");
		return -ENOENT;
	}
	/* The document name: one segment (no sub-directories here). */
	n = next_segment(&p, &seg);
	if (copy_span(out->doc, sizeof out->doc, seg, n) != 0 || *p) {
		fail(why, whylen, "no document name, or a directory");
		return -ENOENT;
	}
	return 0;
}

/* --- node selectors ----------------------------------------------------- */

typedef struct nsmap {
	struct {
		char prefix[XCAP_NAME_MAX];
		char uri[XCAP_NS_MAX];
	} b[16];
	size_t n;
} nsmap_t;

/* The query's xmlns(prefix=uri) parts (XPointer xmlns() scheme). */
static int parse_query(const char *q, nsmap_t *m, char *why, size_t whylen)
{
	m->n = 0;
	if (!q)
		return 0;
	while (*q) {
		if (strncmp(q, "xmlns(", 6) != 0)
			return fail(why, whylen, "query: only xmlns(prefix=uri) parts are understood");
		q += 6;
		const char *eq = strchr(q, '='), *close = strchr(q, ')');
		if (!eq || !close || eq > close)
			return fail(why, whylen, "query: xmlns() needs prefix=uri");
		if (m->n == sizeof m->b / sizeof m->b[0])
			return fail(why, whylen, "query: too many namespace bindings");
		while (q < eq && *q == ' ')
			q++;
		if (copy_span(m->b[m->n].prefix, sizeof m->b[0].prefix, q, (size_t)(eq - q)) != 0 ||
		    copy_span(m->b[m->n].uri, sizeof m->b[0].uri, eq + 1, (size_t)(close - eq - 1)) != 0)
			return fail(why, whylen, "query: bad or oversized namespace binding");
		m->n++;
		q = close + 1;
		while (*q == '&' || *q == ' ')
			q++;
	}
	return 0;
}

static bool ncname_start(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static bool ncname_char(unsigned char c)
{
	return ncname_start(c) || isdigit(c) || c == '-' || c == '.';
}

/* Reads an NCName at *p into out; advances. */
static int read_ncname(const char **p, char *out, size_t outlen)
{
	const char *s = *p;
	if (!ncname_start((unsigned char)*s))
		return -EINVAL;
	while (ncname_char((unsigned char)**p))
		(*p)++;
	return copy_span(out, outlen, s, (size_t)(*p - s));
}

/* Reads a QName: prefix resolved through m; without a prefix, default_ns
 * (elements) or no namespace (attributes: default_ns NULL). */
static int read_qname(const char **p, const nsmap_t *m, const char *default_ns, char *ns,
		      char *local, char *why, size_t whylen)
{
	char first[XCAP_NAME_MAX];
	if (read_ncname(p, first, sizeof first) != 0)
		return fail(why, whylen, "bad or oversized name");
	if (**p != ':') {
		snprintf(ns, XCAP_NS_MAX, "%s", default_ns ? default_ns : "");
		snprintf(local, XCAP_NAME_MAX, "%s", first);
		return 0;
	}
	(*p)++;
	if (read_ncname(p, local, XCAP_NAME_MAX) != 0)
		return fail(why, whylen, "bad or oversized local name after '%s:'", first);
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->b[i].prefix, first) == 0) {
			snprintf(ns, XCAP_NS_MAX, "%s", m->b[i].uri);
			return 0;
		}
	}
	return fail(why, whylen, "namespace prefix '%s' is not bound in the query (xmlns())", first);
}

/* [@name="value"] or [@name='value'] after the '['. */
static int read_attr_test(const char **p, const nsmap_t *m, xcap_step_t *st, char *why,
			  size_t whylen)
{
	if (**p != '@')
		return fail(why, whylen, "expected @attribute in predicate");
	(*p)++;
	if (read_qname(p, m, NULL, st->attr_ns, st->attr_local, why, whylen) != 0)
		return -EINVAL;
	if (**p != '=')
		return fail(why, whylen, "expected '=' in attribute predicate");
	(*p)++;
	char q = **p;
	if (q != '"' && q != '\'')
		return fail(why, whylen, "attribute value must be quoted");
	(*p)++;
	const char *end = strchr(*p, q);
	if (!end)
		return fail(why, whylen, "unterminated attribute value");
	size_t n = (size_t)(end - *p);
	if (n >= sizeof st->attr_value)
		return fail(why, whylen, "attribute value too long");
	memcpy(st->attr_value, *p, n);
	st->attr_value[n] = '\0';
	/* The value is an XML AttValue: '<' and '&' would need references,
	 * which we do not expand (keeps selection exact and simple). */
	if (strpbrk(st->attr_value, "<&"))
		return fail(why, whylen, "attribute value with '<' or '&' is not supported");
	*p = end + 1;
	st->has_attr = true;
	if (**p != ']')
		return fail(why, whylen, "expected ']'");
	(*p)++;
	return 0;
}

static int read_step(const char **p, const nsmap_t *m, const char *default_ns, xcap_step_t *st,
		     char *why, size_t whylen)
{
	memset(st, 0, sizeof *st);
	if (**p == '*') {
		st->any = true;
		(*p)++;
	} else if (read_qname(p, m, default_ns, st->ns, st->local, why, whylen) != 0) {
		return -EINVAL;
	}
	if (**p != '[')
		return 0;
	(*p)++;
	if (isdigit((unsigned char)**p)) {
		unsigned long v = 0;
		while (isdigit((unsigned char)**p)) {
			v = v * 10 + (unsigned long)(**p - '0');
			if (v > 100000)
				return fail(why, whylen, "position too large");
			(*p)++;
		}
		if (v == 0 || **p != ']')
			return fail(why, whylen, "bad position predicate");
		(*p)++;
		st->pos = (unsigned)v;
		if (**p != '[')
			return 0;
		(*p)++;
	}
	return read_attr_test(p, m, st, why, whylen);
}

int xcap_selector_parse(const char *sel, const char *query, const char *default_ns,
			xcap_selector_t *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	nsmap_t m;
	if (parse_query(query, &m, why, whylen) != 0)
		return -EINVAL;
	if (strlen(sel) >= XCAP_SELECTOR_MAX)
		return fail(why, whylen, "node selector too long");
	const char *p = sel;
	if (*p == '/')
		return fail(why, whylen, "node selector must not start with '/'");
	for (;;) {
		if (*p == '@') {
			p++;
			if (out->n == 0 ||
			    read_qname(&p, &m, NULL, out->attr_ns, out->attr_local, why, whylen) != 0)
				return fail(why, whylen, "bad attribute selector");
			out->kind = XSEL_ATTRIBUTE;
			break;
		}
		if (strcmp(p, "namespace::*") == 0) {
			if (out->n == 0)
				return fail(why, whylen, "namespace::* needs an element");
			out->kind = XSEL_NAMESPACES;
			p += strlen(p);
			break;
		}
		if (out->n == XCAP_MAX_STEPS)
			return fail(why, whylen, "more than %d steps", XCAP_MAX_STEPS);
		if (read_step(&p, &m, default_ns, &out->steps[out->n], why, whylen) != 0)
			return -EINVAL;
		out->n++;
		if (*p == '\0')
			break;
		if (*p != '/')
			return fail(why, whylen, "unexpected '%c' in node selector", *p);
		p++;
	}
	if (*p)
		return fail(why, whylen, "trailing characters after the terminal selector");
	return 0;
}
