/* Aliases: extra names of a user (an extension number such as
 * sip:1001@example.test, another address).  Every request addressed to
 * an alias -- INVITE, MESSAGE, SUBSCRIBE, the target of a PUBLISH -- is
 * handled as if it were addressed to the user's AOR.
 *
 * The table (schema/004_proxy.sql, managed with `simplectl alias
 * add|del|list`) is held in memory: loaded synchronously by alias_init
 * (start-up, before the loop serves), then kept current through LISTEN
 * simpled_aliases -- a trigger announces every changed alias, the cascade
 * of a deleted user included, and the server re-reads that one row with
 * an asynchronous query.  A lookup is one hash probe and never waits. */
#ifndef SD_PROXY_ALIAS_H
#define SD_PROXY_ALIAS_H

#include <stddef.h>

#include "server/sip/sipmsg.h"

/* Loads the table (conninfo: libpq, synchronous -- start-up only; NULL
 * skips the load, for tests), prepares the refresh statement and LISTENs.
 * Returns 0 or -errno. */
int alias_init(const char *conninfo);
void alias_shutdown(void);

/* If aor ("sip:user@host", host lower-cased, as sip_uri_aor writes it) is
 * an alias, writes the user's AOR into out and returns 0; -ENOENT when it
 * is not an alias (out untouched), -ENOSPC when out is too small. */
int alias_resolve(const char *aor, char *out, size_t outlen);

/* For the router (every request): when the Request-URI of req is
 * user@domain and "sip:user@domain" is an alias, rewrites the URI's user
 * and host to the user's AOR in place (its parameters kept, a port
 * dropped: the alias names our domain), so every handler sees the user.
 * domain: the domain to look the alias up in (the Request-URI's host
 * when it is one of ours, the default domain when it is one of our
 * addresses).  Returns 1 when rewritten, 0 when not an alias, or a
 * negative errno (-ENOMEM). */
int alias_apply_ruri(sipmsg_t *req, const char *domain);

/* Adds or replaces / removes an entry in memory only (the NOTIFY path and
 * tests).  Returns 0 or -ENOMEM / -ENOENT. */
int alias_set(const char *alias, const char *target);
int alias_remove(const char *alias);
size_t alias_count(void);

#endif
