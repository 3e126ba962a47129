/* XCAP (RFC 4825) addressing, pure: the document URI and the node
 * selector (§6), and the element/attribute engine that GET, PUT and
 * DELETE of a part of a document use (§7, §8.2), over libxml2 trees.  No
 * HTTP, no database, no event loop.
 *
 *   /xcap-root/AUID/users/XUI/DOCNAME[/~~/NODE-SELECTOR]
 *   /xcap-root/AUID/global/DOCNAME[/~~/NODE-SELECTOR]
 *
 * Node selector grammar (§6.3):
 *   node-selector     = element-selector ["/" terminal-selector]
 *   element-selector  = step *("/" step)
 *   step              = NameorAny ["[" position "]"] ["[" "@" QName "=" AttValue "]"]
 *   terminal-selector = "@" QName / "namespace::*"
 * Unprefixed element names are in the application usage's default
 * namespace; prefixes are bound by the query component's xmlns(p=uri)
 * parts (XPointer xmlns scheme, §6.4); unprefixed attribute names have no
 * namespace, as in XML. */
#ifndef SD_XCAP_PATH_H
#define SD_XCAP_PATH_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#define XCAP_ROOT "/xcap-root"
#define XCAP_MAX_STEPS 32
#define XCAP_NAME_MAX 128
#define XCAP_NS_MAX 256
#define XCAP_VALUE_MAX 512
#define XCAP_SEGMENT_MAX 256
#define XCAP_SELECTOR_MAX 4096
/* Parse limits of XCAP documents: 1 MiB (XSTORE_MAX_DOC), depth 32. */
#define XCAP_MAX_DOC (1u << 20)
#define XCAP_MAX_ELEMENTS 50000u

typedef struct xcap_uri {
	char auid[XCAP_SEGMENT_MAX];
	bool global;
	char xui[XCAP_SEGMENT_MAX];   /* "sip:alice@example.test" (as given) */
	char owner[XCAP_SEGMENT_MAX]; /* "alice@example.test", host lower-cased */
	char domain[XCAP_SEGMENT_MAX];/* "example.test": the digest realm */
	char doc[XCAP_SEGMENT_MAX];
	bool has_node;
	char node[XCAP_SELECTOR_MAX]; /* the node selector after "/~~/" */
} xcap_uri_t;

/* Splits a (percent-decoded) request path.  Returns 0, -ENOENT (not a
 * document URI under XCAP_ROOT: 404) or -EINVAL (malformed: 400; also an
 * XUI that is not sip:user@host), with why. */
int xcap_uri_parse(const char *path, xcap_uri_t *out, char *why, size_t whylen);

typedef struct xcap_step {
	bool any;                   /* "*" */
	char ns[XCAP_NS_MAX];       /* namespace URI ("" = none) */
	char local[XCAP_NAME_MAX];
	unsigned pos;               /* 1-based; 0 = no position predicate */
	bool has_attr;
	char attr_ns[XCAP_NS_MAX];
	char attr_local[XCAP_NAME_MAX];
	char attr_value[XCAP_VALUE_MAX];
} xcap_step_t;

typedef enum { XSEL_ELEMENT, XSEL_ATTRIBUTE, XSEL_NAMESPACES } xsel_kind_t;

typedef struct xcap_selector {
	xcap_step_t steps[XCAP_MAX_STEPS];
	size_t n;
	xsel_kind_t kind;
	char attr_ns[XCAP_NS_MAX];  /* terminal attribute selector */
	char attr_local[XCAP_NAME_MAX];
} xcap_selector_t;

/* Parses a node selector.  query is the request's query component (NULL
 * or "" when none), default_ns the application usage's default namespace.
 * Returns 0 or -EINVAL (400; an unbound prefix, bad syntax, too many
 * steps, a value too long), with why.  Bounded: never reads past the NUL,
 * never writes past out. */
int xcap_selector_parse(const char *sel, const char *query, const char *default_ns,
			xcap_selector_t *out, char *why, size_t whylen);

/* --- the engine ------------------------------------------------------------- */

/* The element selected by the first n steps, or NULL (none, or more than
 * one: RFC 4825 §6.3 then selects nothing). */
xmlNodePtr xcap_select(xmlDocPtr doc, const xcap_selector_t *sel, size_t n);

/* Results of the operations below. */
typedef enum {
	XCAP_OK = 0,
	XCAP_NOT_FOUND,       /* 404: nothing selected (GET/DELETE), or no parent (PUT) */
	XCAP_NOT_WELL_FORMED, /* 409 <not-well-formed/>: the body */
	XCAP_NOT_XML_FRAG,    /* 409 <not-xml-frag/>: the body is not one element */
	XCAP_NOT_XML_ATT,     /* 409 <not-xml-att-value/> */
	XCAP_CANNOT_INSERT,   /* 409 <cannot-insert/>: PUT would not be idempotent */
	XCAP_CANNOT_DELETE,   /* 409 <cannot-delete/>: DELETE would not be idempotent */
	XCAP_NOT_SUPPORTED,   /* 501: namespace::* on PUT/DELETE, ... */
	XCAP_NO_MEMORY,       /* 500 */
	XCAP_TOO_BIG,         /* 409 <not-well-formed/> beyond the size/depth limits */
} xcap_result_t;

/* GET of an element or attribute (or namespace bindings): appends to out
 * (NUL-terminated malloc'ed string, *outlen bytes) what the response body
 * carries.  Borrows doc. */
xcap_result_t xcap_get(xmlDocPtr doc, const xcap_selector_t *sel, char **out, size_t *outlen);

/* PUT of an element (body: one XML element, interpreted in the namespace
 * context of its parent in doc) or an attribute (body: the value, with
 * XML character/entity references).  Replaces what is selected or
 * creates it (§8.2.3: the parent must exist; a position predicate gives
 * where; otherwise after the last sibling).  Then the idempotency check:
 * the selector must select exactly what was put, else XCAP_CANNOT_INSERT
 * and doc is left as it was.  *created tells 201 from 200.  Changes doc
 * in place. */
xcap_result_t xcap_put(xmlDocPtr doc, const xcap_selector_t *sel, const char *body, size_t len,
		       bool *created);

/* DELETE of an element or attribute; afterwards the selector must select
 * nothing (else XCAP_CANNOT_DELETE and doc unchanged). */
xcap_result_t xcap_delete(xmlDocPtr doc, const xcap_selector_t *sel);

#endif
