/* PIDF: safe XML parsing, validation and composition of presence documents.
 *
 *   RFC 3863  Presence Information Data Format (presence, tuple, status,
 *             basic, contact, note; the entity attribute)
 *   RFC 4479  the presence data model (dm:person, dm:device, service =
 *             tuple; how to compose several sources is left to the
 *             server, cf. §3.5 on modeling ambiguity)
 *   RFC 4480  RPID (rich person/device elements, copied through verbatim)
 *
 * A pure library over libxml2: no SIP, no database, no event loop.  It is
 * the one place where the server turns untrusted XML into a tree, so
 * pidf_xml_parse() is also the parser for resource-lists, pres-rules and
 * dialog-info bodies.
 *
 * Errors are 0 or a negative errno.  Functions that take why/whylen write
 * a short English reason there (suitable for a SIP reason phrase or a
 * warning log line); libxml2 never writes to stderr on our behalf.
 * Mapping to SIP: -EMSGSIZE -> 413, -EPERM -> 403, -EINVAL and -E2BIG ->
 * 400, -ENOMEM -> 500.
 *
 * Thread use: the functions keep no shared mutable state apart from the
 * process-wide default limits (set once at start).  libxml2's error
 * handlers are thread-local and only changed for the duration of a call. */
#ifndef SD_PIDF_H
#define SD_PIDF_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/base/buf.h"

#define PIDF_NS      "urn:ietf:params:xml:ns:pidf"            /* RFC 3863 */
#define PIDF_DM_NS   "urn:ietf:params:xml:ns:pidf:data-model" /* RFC 4479 */
#define PIDF_RPID_NS "urn:ietf:params:xml:ns:pidf:rpid"       /* RFC 4480 */
#define PIDF_CAPS_NS "urn:ietf:params:xml:ns:pidf:caps"       /* RFC 5196 */

/* Bounds on one untrusted XML body.  Zero in a field means "use the
 * process default" for that field. */
typedef struct pidf_limits {
	size_t max_size;       /* bytes of input; default 64 KiB */
	unsigned max_depth;    /* element nesting, root = 1; default 32 */
	unsigned max_elements; /* elements in the document; default 2000 */
} pidf_limits_t;

#define PIDF_DEFAULT_MAX_SIZE     (64u * 1024u)
#define PIDF_DEFAULT_MAX_DEPTH    32u
#define PIDF_DEFAULT_MAX_ELEMENTS 2000u

/* Initialises libxml2 (xmlInitParser, version check) and the default
 * limits.  Call once at start, before any other pidf_ function; further
 * calls are harmless.  Returns 0. */
int pidf_init(void);

/* Replaces the process-wide defaults used when a pidf_limits_t is NULL
 * (or has zero fields) and by pidf_compose() when it re-reads stored
 * publications.  Zero fields keep the built-in defaults.  Call at start
 * or on configuration reload, from the loop thread. */
void pidf_set_default_limits(const pidf_limits_t *lim);
/* Copies the current defaults into *out. */
void pidf_get_default_limits(pidf_limits_t *out);

/* Parses untrusted XML safely:
 *   - the size is checked before libxml2 sees a byte (-EMSGSIZE);
 *   - any DOCTYPE (internal subset or external id) and any entity
 *     declaration stops the parser at once (-EINVAL): no entity is ever
 *     substituted or loaded, so XXE and "billion laughs" bodies fail in
 *     constant time;
 *   - no network access, no DTD loading, defaulting or validation;
 *   - element depth and count are checked while parsing, and the parser
 *     is stopped as soon as either limit is passed (-E2BIG), so deeply
 *     nested input costs neither stack nor time;
 *   - not well-formed input gives -EINVAL with libxml2's first message
 *     (and line) in why.
 * lim may be NULL for the defaults.  data need not be NUL-terminated.
 * On success returns 0 and *out is a new document the caller owns
 * (xmlFreeDoc).  On failure *out is NULL. */
int pidf_xml_parse(const char *data, size_t len, const pidf_limits_t *lim,
		   xmlDocPtr *out, char *why, size_t whylen);

/* Checks that doc is a PIDF document for expected_entity (RFC 3863 §4):
 *   - the root is {urn:ietf:params:xml:ns:pidf}presence (namespace URI
 *     and local name; the prefix is irrelevant);
 *   - it has an entity attribute;
 *   - every tuple has a non-empty id and exactly one status child, and a
 *     basic value, when present, is "open" or "closed";
 *   - the id attributes of tuple, dm:person and dm:device elements are
 *     unique within the document (they are all xs:ID).
 * Then the entity must equal expected_entity (see pidf_entity_equal);
 * expected_entity NULL skips that comparison.
 * Returns 0, -EINVAL (not PIDF or malformed; answer 400) or -EPERM (the
 * document describes someone else; answer 403).  Borrows doc. */
int pidf_validate(xmlDocPtr doc, const char *expected_entity, char *why, size_t whylen);

/* True when the two presentity URIs name the same presentity: sip:, sips:
 * and pres: are one scheme for this purpose (RFC 3863 gives the entity
 * as the presentity's pres: URI, SIP clients put their sip: AOR there);
 * the user part is compared case-sensitively after %-decoding (a
 * password after ':' is ignored), the host case-insensitively, ports
 * must match (absent only equals absent), and URI parameters and headers
 * are ignored (RFC 3261 §19.1.4 spirit, for an address of record).  URIs
 * of any other scheme, or sip/pres URIs that do not parse, are compared
 * as exact strings, the scheme case-insensitively.  Surrounding white
 * space is ignored.  NULL equals nothing. */
bool pidf_entity_equal(const char *a, const char *b);

/* One stored publication for pidf_compose(). */
typedef struct pidf_source {
	const char *data;   /* the document exactly as stored (borrowed) */
	size_t len;
	int64_t modified;   /* when it was last modified or refreshed with a
			     * body; any unit, only compared (e.g. µs since
			     * the epoch) */
	const char *etag;   /* SIP-ETag of the publication, for logs; may be
			     * NULL */
} pidf_source_t;

/* Composes the presence of entity from its publications with a simple
 * composition policy (RFC 4479 leaves the policy to the server).  The
 * output is one PIDF document whose root carries entity and contains, in
 * this order (the order of the RFC 3863 schema: tuples, notes, then
 * extensions):
 *   1. every tuple of every source, in source order;
 *   2. every presence-level note of every source, duplicates (same text
 *      and xml:lang) dropped;
 *   3. exactly one dm:person, taken from the source with the greatest
 *      `modified` that has one (ties: the later source in the array
 *      wins; the first person of that source is used) -- a person is
 *      about the human, so the newest statement replaces older ones
 *      rather than being merged; no person when no source has one;
 *   4. every dm:device of every source, in source order.
 * Other presence-level extension elements are not carried over.  Copied
 * elements keep their namespaces whatever prefixes the sources used:
 * each copy carries the declarations it needs, and only those the output
 * root already makes identically are dropped.  An xml:lang a copied
 * element inherited from its source's root is made explicit.  The id of
 * a tuple, person or device that is already used in the output (the
 * same tuple id in two publications) is made unique by a "-2", "-3"...
 * suffix; the first element, in the order above, keeps its id.  Pass
 * sources in a stable order (e.g. by creation time) so renamed ids are
 * stable across notifications.
 *
 * A source that no longer parses or is not PIDF is skipped with a
 * warning.  Sources are parsed with the process default limits.
 * The UTF-8 document, with an XML declaration, is appended to out.
 * Returns 0; -EINVAL when n == 0 (use pidf_basic_doc for a presentity
 * with no publication), an argument is NULL, entity is empty or not
 * valid UTF-8 XML text, or no source is usable;
 * -ENOMEM, or out->err.  Borrows everything. */
int pidf_compose(const char *entity, const pidf_source_t *sources, size_t n, buf_t *out);

/* Appends a minimal PIDF document to out: one tuple tuple_id whose basic
 * status is open or closed, with a contact element when contact_or_null
 * is given.  Used for presence derived from registrations and for the
 * "closed" document shown to politely blocked watchers.  Values are
 * escaped; entity and contact must be valid UTF-8 without characters
 * XML 1.0 cannot carry, and tuple_id must be an NCName (xs:ID).
 * Returns 0, -EINVAL (bad argument) or out->err.  Borrows everything. */
int pidf_basic_doc(const char *entity, bool open, const char *tuple_id,
		   const char *contact_or_null, buf_t *out);

/* Summarises a (validated) PIDF document: 1 when any tuple's basic status
 * is open, 0 when tuples carry basic values and all are closed, -ENOENT
 * when no tuple has a basic value, -EINVAL when doc is not PIDF,
 * -ENOMEM.  Borrows doc. */
int pidf_basic_status(xmlDocPtr doc);

/* True when node is an element with namespace URI ns and local name
 * local (prefixes are irrelevant).  For every XML consumer. */
bool pidf_node_is(const xmlNode *node, const char *ns, const char *local);

/* Appends doc serialised as UTF-8 with an XML declaration to out.
 * Returns 0, -ENOMEM or out->err.  Borrows doc. */
int pidf_serialize(xmlDocPtr doc, buf_t *out);

#endif
