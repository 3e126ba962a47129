/* Request authentication for every module: finds the Digest credentials
 * of a request, looks the user up (in-memory cache in front of the users
 * table), verifies them with the digest module and answers the challenge
 * (401 for REGISTER, 407 otherwise) or the refusal itself.
 *
 * With auth off every request passes.  Credentials are cached for
 * user_cache_ttl seconds; simplectl announces changes on the
 * 'simpled_users' channel and the cached entry is dropped at once. */
#ifndef SD_AUTHN_H
#define SD_AUTHN_H

#include <stdbool.h>

#include "server/sip/txn.h"

#define AUTH_USER_MAX 256

typedef struct authn_options {
	bool enabled;
	unsigned nonce_ttl_s;
	unsigned cache_ttl_s;
	unsigned retry_after_s;
	const char *nonce_secret; /* NULL or "" = random */
} authn_options_t;

int authn_init(const authn_options_t *opts);
void authn_shutdown(void);

typedef enum {
	AUTHN_OK,        /* authenticated (or auth off); caller goes on */
	AUTHN_PENDING,   /* a database lookup is under way; cb runs later */
	AUTHN_ANSWERED,  /* a response (401/407/403/400/503) was sent; stop */
} authn_result_t;

/* Called once when authn_check returned AUTHN_PENDING, with AUTHN_OK or
 * AUTHN_ANSWERED.  user is the authenticated user name (borrowed; NULL
 * when auth is off). */
typedef void (*authn_cb)(void *arg, authn_result_t result, const char *user);

/* Authenticates the request of server transaction t for realm.  proxy
 * selects 407/Proxy-Authorization instead of 401/Authorization; realm
 * (a domain) is compared case-insensitively.  On
 * AUTHN_OK the authenticated user name is copied into user (empty when
 * auth is off).  While AUTHN_PENDING authn holds its own reference on t. */
authn_result_t authn_check(txn_t *t, const char *realm, bool proxy, char *user, size_t userlen,
			   authn_cb cb, void *arg);

bool authn_enabled(void);

/* The same check without a SIP transaction (HTTP digest for XCAP): the
 * caller parsed creds (auth_parse_credentials) and checked the nonce
 * (auth_nonce_check); this looks the user up in realm (cache, then the
 * users table) and checks the response for method.  Returns 1 (valid),
 * 0 (unknown user or wrong response), -EINPROGRESS (cb runs later,
 * exactly once, with 1, 0 or -EIO when the database failed), or
 * -ENOTCONN/-EAGAIN/-ENOMEM (nothing pending; the database is
 * unavailable).  creds and method are copied. */
typedef void (*authn_verify_cb)(void *arg, int result);
struct auth_creds;
int authn_verify(const struct auth_creds *creds, const char *realm, const char *method,
		 authn_verify_cb cb, void *arg);

/* Drops a cached user (LISTEN payload "user@domain"). */
void authn_forget(const char *user_at_domain);

#endif
