/* The XCAP server (RFC 4825) on the HTTP server (server/http):
 *
 *   GET|PUT|DELETE /xcap-root/AUID/users/sip:USER@DOMAIN/DOC[/~~/SELECTOR]
 *   GET            /xcap-root/xcap-caps/global/index
 *
 * Application usages: resource-lists and rls-services (RFC 4826; whole
 * documents kept by the document store, presence/xcap_store.h),
 * pres-rules (RFC 5025; a view over the presence_rules table: GET
 * synthesises the document from the rules in memory, PUT replaces the
 * user's rows in one statement and the rules apply at once) and xcap-caps.
 *
 * HTTP digest authentication (RFC 7616) against the users table through
 * sd_authn, realm = the XUI's domain; a user may only touch their own
 * documents (403).  With auth off XCAP is open, as SIP is.
 *
 * A 2xx to a PUT or DELETE means committed in PostgreSQL; a write of a
 * document with another write of it in flight gets 503 Retry-After: 1,
 * the database unavailable 503 Retry-After: retry_after_s. */
#ifndef SD_XCAP_H
#define SD_XCAP_H

#include <stdbool.h>

#include "server/http/http.h"

typedef struct xcap_options {
	unsigned retry_after_s;
	unsigned nonce_ttl_s; /* as for SIP (nonce_ttl) */
	/* Whether a domain is ours (else 404 for its users); NULL = all. */
	bool (*is_local_domain)(const char *domain);
} xcap_options_t;

/* Prepares the statements (call before the database pool connects). */
int xcap_init(const xcap_options_t *opts);
/* The http_handler_cb to pass to http_init. */
void xcap_handle(void *arg, http_req_t *req);
void xcap_shutdown(void);

#endif
