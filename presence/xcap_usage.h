/* XCAP application usages (RFC 4825 §5, §12; RFC 4826 §3, §4; RFC 5025):
 * MIME types, default namespaces, validation with the XCAP error bodies
 * (RFC 4825 §11), and the pres-rules view over presence_rules rows.
 * Pure: libxml2 trees in, strings out; no HTTP, database or loop. */
#ifndef SD_XCAP_USAGE_H
#define SD_XCAP_USAGE_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

#include "presence/rules.h"
#include "server/base/buf.h"

#define XCAP_RL_NS "urn:ietf:params:xml:ns:resource-lists"
#define XCAP_RLS_NS "urn:ietf:params:xml:ns:rls-services"
#define XCAP_PR_NS "urn:ietf:params:xml:ns:pres-rules"
#define XCAP_CP_NS "urn:ietf:params:xml:ns:common-policy"
#define XCAP_CAPS_NS "urn:ietf:params:xml:ns:xcap-caps"
#define XCAP_ERROR_NS "urn:ietf:params:xml:ns:xcap-error"

typedef enum { XU_RESOURCE_LISTS, XU_RLS_SERVICES, XU_PRES_RULES, XU_XCAP_CAPS } xu_id_t;

typedef struct xcap_usage {
	xu_id_t id;
	const char *auid;
	const char *mime;       /* document content type */
	const char *default_ns; /* for node selectors */
	bool global_only;       /* xcap-caps */
} xcap_usage_t;

/* The usage of auid, or NULL (404). */
const xcap_usage_t *xcap_usage_find(const char *auid);

/* Validates a whole document of usage u.  Returns 0, or 409 with an
 * application/xcap-error+xml body appended to err (schema-validation-error,
 * uniqueness-failure with the offending field, constraint-failure). */
int xcap_usage_validate(const xcap_usage_t *u, xmlDocPtr doc, buf_t *err);

/* Appends <xcap-error><TAG/></xcap-error> (phrase: optional attribute). */
void xcap_error_body(buf_t *out, const char *tag, const char *phrase);

/* The xcap-caps document (§12.2). */
void xcap_caps_doc(buf_t *out);

/* pres-rules as a view over rules rows (RFC 5025, RFC 4745): one
 * cr:rule per watcher, identity one (AOR) or many (domain), sub-handling
 * allow/block/polite-block/confirm.  Rows are written in the order given
 * (sort them for a stable document and ETag). */
void xcap_presrules_doc(const rule_t *rules, size_t n, buf_t *out);

/* Parses a pres-rules document into rows (watcher normalised as
 * rules_normalize_watcher does; a watcher named by several rules gets the
 * most permissive action, RFC 4745 §10).  Returns 0 (*out malloc'ed,
 * free each watcher and the array), or 409 with an error body in err
 * (conditions other than identity, an empty identity or one with
 * except, ...). */
int xcap_presrules_parse(xmlDocPtr doc, rule_t **out, size_t *n, buf_t *err);

#endif
