/* Registrar (RFC 3261 §10.3): REGISTER handling over the location
 * service, with digest authentication through authn. */
#ifndef SD_REGISTRAR_H
#define SD_REGISTRAR_H

#include <stdbool.h>

#include "server/sip/txn.h"

typedef struct reg_options {
	unsigned min_expires, max_expires, default_expires;
	unsigned max_contacts;
	unsigned retry_after;
	/* Whether we are the registrar for a host (case-insensitive). */
	bool (*is_local_domain)(const char *host);
	/* Whether a Request-URI host names this registrar (a domain of ours
	 * or one of our addresses). */
	bool (*is_local_target)(const char *host);
} reg_options_t;

int reg_init(const reg_options_t *opts);

/* Router handler for REGISTER.  Answers t exactly once, possibly later
 * (after authentication and after the write committed). */
void reg_handle_register(txn_t *t, sipmsg_t *req);

#endif
